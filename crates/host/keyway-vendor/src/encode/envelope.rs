//! The envelope: [`assemble_envelope`] puts the members together, and
//! [`EnvelopeBuilder`] validates a release's inputs, makes the delta patch
//! if asked, and signs.

use super::{
    Cve, DETACHED_PAYLOAD_URI, DeltaParams, EncodeError, KeySetInfo, ManifestParams, PAYLOAD_KEY,
    ReleaseVersion, SignOptions, TextParams, check_signing_keys, class_uuid, encode_manifest,
    encode_text, int, sha256, sign_digest, update_priority, vendor_uuid, wrapped_sha256,
};
use crate::cbor::{Value, ValueExt};
use crate::keys::SigningKey;
use crate::labels as l;

/// `107({2: auth, 3: manifest, 23: text?, -19287: keyset?, "#firmware":
/// payload?})`, each member a byte string holding the given bytes, the
/// payload always last.
pub fn assemble_envelope(
    auth: &[u8],
    manifest: &[u8],
    text: Option<&[u8]>,
    keyset: Option<&[u8]>,
    payload: Option<&[u8]>,
) -> Vec<u8> {
    let mut m = vec![
        (int(l::ENV_AUTH), Value::from(auth)),
        (int(l::ENV_MANIFEST), Value::from(manifest)),
    ];
    if let Some(t) = text {
        m.push((int(l::ENV_TEXT), Value::from(t)));
    }
    if let Some(k) = keyset {
        m.push((int(l::ENV_KEYWAY_KEYSET), Value::from(k)));
    }
    if let Some(p) = payload {
        m.push((Value::from(PAYLOAD_KEY), Value::from(p)));
    }
    Value::Tag(l::TAG_ENVELOPE, Box::new(Value::Map(m))).to_bytes()
}

/// Where a release's payload travels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PayloadPlacement {
    /// In the envelope, its last member (`"#firmware"`, [`PAYLOAD_KEY`]).
    #[default]
    Integrated,
    /// Left out of the envelope; the manifest names this URI for it.
    Detached(String),
}

impl PayloadPlacement {
    /// Detached, at the default relative URI [`DETACHED_PAYLOAD_URI`].
    pub fn detached() -> Self {
        PayloadPlacement::Detached(DETACHED_PAYLOAD_URI.to_string())
    }
}

/// Everything needed to build and sign one release envelope.
#[derive(Debug, Clone, Default)]
pub struct EnvelopeBuilder {
    /// Anti-rollback sequence number.
    pub sequence: u64,
    /// Release version.
    pub version: ReleaseVersion,
    /// Vendor domain (vendor UUID name).
    pub vendor_domain: String,
    /// Optional human-readable vendor name for the text map.
    pub vendor_name: Option<String>,
    /// Class (model) name (class UUID name).
    pub class_name: String,
    /// Release notes (Markdown). `None`: no text map and no `23:` members.
    pub notes: Option<String>,
    /// Fixed CVEs (require notes).
    pub cves: Vec<Cve>,
    /// `use-before` (seconds since 1970).
    pub use_before: Option<u64>,
    /// Minimum battery (mWh).
    pub min_battery_mwh: Option<u64>,
    /// A key-set document to carry at `-19287`.
    pub keyset: Option<Vec<u8>>,
    /// Whether the payload travels in the envelope or apart from it.
    pub placement: PayloadPlacement,
    /// The firmware image.
    pub payload: Vec<u8>,
    /// Make a delta update: the image the lock runs now (the patch's
    /// base). The envelope then carries the patch from it to `payload`
    /// ([`crate::delta::diff()`]) and the manifest binds both images.
    pub delta_from: Option<Vec<u8>>,
    /// Signing keys, one `COSE_Sign1` each, in order.
    pub keys: Vec<SigningKey>,
    /// Signature options (Ed25519 label, kid).
    pub sign_options: SignOptions,
}

/// A built envelope and its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltEnvelope {
    /// The complete `SUIT_Envelope_Tagged`.
    pub envelope: Vec<u8>,
    /// The authentication wrapper bytes.
    pub auth: Vec<u8>,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// The text map bytes, if any.
    pub text: Option<Vec<u8>>,
    /// The embedded key-set document, if any.
    pub keyset: Option<Vec<u8>>,
    /// The delta patch (the payload) when built with `delta_from`.
    pub patch: Option<Vec<u8>>,
}

impl EnvelopeBuilder {
    /// Checks the inputs that the encoder cannot represent or that would be
    /// mistakes (no keys, duplicate keys, empty names, CVEs without notes,
    /// duplicate CVEs, a key-set document of the wrong shape).
    pub fn validate(&self) -> Result<(), EncodeError> {
        if self.vendor_domain.trim().is_empty() {
            return Err(EncodeError::Empty("the vendor domain"));
        }
        if self.class_name.trim().is_empty() {
            return Err(EncodeError::Empty("the class name"));
        }
        check_signing_keys(&self.keys)?;
        if !self.cves.is_empty() && self.notes.is_none() {
            return Err(EncodeError::CvesWithoutNotes);
        }
        for (n, c) in self.cves.iter().enumerate() {
            if self.cves[..n].iter().any(|o| o.id == c.id) {
                return Err(EncodeError::DuplicateCve(c.id.clone()));
            }
        }
        if let Some(ks) = &self.keyset {
            KeySetInfo::parse(ks)?;
        }
        Ok(())
    }

    /// The text map inputs, if release notes are given.
    pub fn text_params(&self) -> Option<TextParams> {
        self.notes.as_ref().map(|notes| TextParams {
            notes: notes.clone(),
            cves: self.cves.clone(),
            vendor_name: self.vendor_name.clone(),
            vendor_domain: self.vendor_domain.clone(),
            class_name: self.class_name.clone(),
            version: self.version,
        })
    }

    /// The manifest inputs, given the encoded text map (if any), for a
    /// full image (see [`EnvelopeBuilder::delta_manifest_params`]).
    pub fn manifest_params(&self, text: Option<&[u8]>) -> ManifestParams {
        let vendor = vendor_uuid(&self.vendor_domain);
        ManifestParams {
            manifest_version: 1,
            sequence: self.sequence,
            version: self.version,
            vendor_uuid: vendor,
            class_uuid: class_uuid(&vendor, &self.class_name),
            payload_digest: sha256(&self.payload),
            payload_size: self.payload.len() as u64,
            use_before: self.use_before,
            min_battery_mwh: self.min_battery_mwh,
            update_priority: update_priority(&self.cves),
            text_digest: text.map(wrapped_sha256),
            payload_uri: match &self.placement {
                PayloadPlacement::Integrated => PAYLOAD_KEY.to_string(),
                PayloadPlacement::Detached(uri) => uri.clone(),
            },
            delta: None,
        }
    }

    /// The manifest inputs for a delta update whose payload is `patch`,
    /// from `self.delta_from` (the base) to `self.payload`.
    pub fn delta_manifest_params(&self, text: Option<&[u8]>, patch: &[u8]) -> ManifestParams {
        let base = self.delta_from.as_deref().unwrap_or(&[]);
        ManifestParams {
            payload_digest: sha256(patch),
            payload_size: patch.len() as u64,
            delta: Some(DeltaParams {
                base_digest: sha256(base),
                base_size: base.len() as u64,
                out_digest: sha256(&self.payload),
                out_size: self.payload.len() as u64,
            }),
            ..self.manifest_params(text)
        }
    }

    /// Validates, encodes and signs. With `delta_from`, makes the patch
    /// first; the envelope's payload is then the patch.
    pub fn build(&self) -> Result<BuiltEnvelope, EncodeError> {
        self.validate()?;
        let text = self.text_params().map(|t| encode_text(&t));
        let patch = match &self.delta_from {
            Some(old) => Some(
                crate::delta::diff(old, &self.payload)
                    .map_err(|e| EncodeError::Delta(format!("{e:#}")))?,
            ),
            None => None,
        };
        let params = match &patch {
            Some(p) => self.delta_manifest_params(text.as_deref(), p),
            None => self.manifest_params(text.as_deref()),
        };
        let payload = patch.as_deref().unwrap_or(&self.payload);
        let manifest = encode_manifest(&params);
        let auth = sign_digest(&manifest, &self.keys, &self.sign_options);
        let envelope = assemble_envelope(
            &auth,
            &manifest,
            text.as_deref(),
            self.keyset.as_deref(),
            (self.placement == PayloadPlacement::Integrated).then_some(payload),
        );
        Ok(BuiltEnvelope {
            envelope,
            auth,
            manifest,
            text,
            keyset: self.keyset.clone(),
            patch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;

    #[test]
    fn envelope_structure_and_member_order() {
        let b = builder(vec![key(Algorithm::Ed25519)]);
        let keyset = KeySetBuilder {
            roots: vec![key(Algorithm::Ed25519)],
            keyset: KeySetParams {
                version: 1,
                threshold: 1,
                signers: vec![b.keys[0].public_key()],
                revoked: vec![],
            },
            sign_options: SignOptions::default(),
        }
        .build()
        .unwrap();
        let b = EnvelopeBuilder {
            keyset: Some(keyset.clone()),
            ..b
        };
        let built = b.build().unwrap();
        assert_eq!(&built.envelope[..2], &[0xd8, 0x6b], "tag 107");
        let env = decode(&built.envelope);
        let (tag, map) = env.as_tag().unwrap();
        assert_eq!(tag, l::TAG_ENVELOPE);
        assert_eq!(
            keys_of(map),
            vec![
                Value::from(2),
                Value::from(3),
                Value::from(23),
                Value::from(-19287),
                Value::from("#firmware")
            ]
        );
        assert_eq!(
            map.get_int(2).unwrap().as_bytes().unwrap().as_slice(),
            built.auth
        );
        assert_eq!(
            map.get_int(3).unwrap().as_bytes().unwrap().as_slice(),
            built.manifest
        );
        assert_eq!(
            map.get_int(23).unwrap().as_bytes().unwrap().as_slice(),
            built.text.as_deref().unwrap()
        );
        assert_eq!(
            map.get_int(-19287).unwrap().as_bytes().unwrap().as_slice(),
            keyset
        );
        // The payload is the last member, and the envelope ends with it.
        let (last_k, last_v) = map.as_map().unwrap().last().unwrap();
        assert_eq!(last_k, &Value::from(PAYLOAD_KEY));
        assert_eq!(last_v.as_bytes().unwrap().as_slice(), b.payload);
        assert!(built.envelope.ends_with(&b.payload));

        // Detached: same manifest, no payload member.
        let detached = EnvelopeBuilder {
            placement: PayloadPlacement::detached(),
            ..b.clone()
        }
        .build()
        .unwrap();
        // The detached manifest names where the payload comes from instead
        // of the integrated member.
        assert_ne!(detached.manifest, built.manifest);
        let dm = decode(&detached.manifest);
        let install = bstr_item(dm.get_int(20).unwrap());
        let params = install.as_array().unwrap()[3].clone();
        assert_eq!(params.get_int(21), Some(&Value::from(DETACHED_PAYLOAD_URI)));
        let env = decode(&detached.envelope);
        let map = env.as_tag().unwrap().1;
        assert!(map.get_text(PAYLOAD_KEY).is_none());
        assert_eq!(map.as_map().unwrap().len(), 4);

        // No notes: no text member and no text digest in the manifest.
        let plain = EnvelopeBuilder {
            notes: None,
            cves: vec![],
            keyset: None,
            ..b
        }
        .build()
        .unwrap();
        let env = decode(&plain.envelope);
        assert_eq!(
            keys_of(env.as_tag().unwrap().1),
            vec![Value::from(2), Value::from(3), Value::from("#firmware")]
        );
        assert!(decode(&plain.manifest).get_int(23).is_none());
    }

    #[test]
    fn builder_rejects_bad_inputs() {
        let k = key(Algorithm::Ed25519);
        let b = builder(vec![k.clone()]);
        let err = |b: EnvelopeBuilder| b.build().unwrap_err();
        assert_eq!(
            err(EnvelopeBuilder {
                keys: vec![],
                ..b.clone()
            }),
            EncodeError::NoSigningKeys
        );
        assert!(matches!(
            err(EnvelopeBuilder {
                keys: vec![k.clone(), k.clone()],
                ..b.clone()
            }),
            EncodeError::DuplicateSigningKey(_)
        ));
        assert_eq!(
            err(EnvelopeBuilder {
                notes: None,
                ..b.clone()
            }),
            EncodeError::CvesWithoutNotes
        );
        let dup = Cve::new("CVE-2024-12345", Severity::Low).unwrap();
        let mut cves = b.cves.clone();
        cves.push(dup);
        assert_eq!(
            err(EnvelopeBuilder { cves, ..b.clone() }),
            EncodeError::DuplicateCve("CVE-2024-12345".into())
        );
        assert_eq!(
            err(EnvelopeBuilder {
                vendor_domain: " ".into(),
                ..b.clone()
            }),
            EncodeError::Empty("the vendor domain")
        );
        assert!(matches!(
            err(EnvelopeBuilder {
                keyset: Some(vec![0xa0]),
                ..b.clone()
            }),
            EncodeError::InvalidKeySetDocument(_)
        ));
        assert!(matches!(
            err(EnvelopeBuilder {
                keyset: Some(b"garbage".to_vec()),
                ..b
            }),
            EncodeError::InvalidKeySetDocument(_)
        ));
    }
}
