//! Key sets: the `COSE_Key` encoding, the key-set body and document,
//! [`KeySetBuilder`] (validate, sign with the roots) and [`KeySetInfo`]
//! (parse a document's structure).

use super::{EncodeError, SignOptions, check_signing_keys, int, sign_digest, uint};
use crate::cbor::{Value, ValueExt};
use crate::keys::{Algorithm, KeyId, PublicKey, SigningKey, hex};
use crate::labels as l;

/// The `COSE_Key` of a public key: `{1: 1, -1: 6, -2: x}` (Ed25519) or
/// `{1: 2, -1: 1, -2: x, -3: y}` (P-256).
pub fn cose_key_value(key: &PublicKey) -> Value {
    let raw = key.raw_public_key_bytes();
    match key.algorithm() {
        Algorithm::Ed25519 => Value::Map(vec![
            (int(l::COSE_KEY_KTY), int(l::COSE_KTY_OKP)),
            (int(l::COSE_KEY_CRV), int(l::COSE_CRV_ED25519)),
            (int(l::COSE_KEY_X), Value::from(raw)),
        ]),
        Algorithm::P256 => Value::Map(vec![
            (int(l::COSE_KEY_KTY), int(l::COSE_KTY_EC2)),
            (int(l::COSE_KEY_CRV), int(l::COSE_CRV_P256)),
            (int(l::COSE_KEY_X), Value::from(&raw[1..33])),
            (int(l::COSE_KEY_Y), Value::from(&raw[33..65])),
        ]),
    }
}

/// The key-set body contents. [`encode_keyset`] does not validate them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetParams {
    /// Key-set version (anti-rollback for key sets).
    pub version: u64,
    /// Signatures required on a release.
    pub threshold: u64,
    /// Release signing keys.
    pub signers: Vec<PublicKey>,
    /// Revoked key ids.
    pub revoked: Vec<KeyId>,
}

/// Encodes `KeySet = {1: version, 2: threshold, 3: [+ COSE_Key], 4: [* kid]}`.
pub fn encode_keyset(p: &KeySetParams) -> Vec<u8> {
    Value::Map(vec![
        (int(l::KEYSET_VERSION), uint(p.version)),
        (int(l::KEYSET_THRESHOLD), uint(p.threshold)),
        (
            int(l::KEYSET_SIGNERS),
            Value::Array(p.signers.iter().map(cose_key_value).collect()),
        ),
        (
            int(l::KEYSET_REVOKED),
            Value::Array(p.revoked.iter().map(|k| Value::from(k.to_vec())).collect()),
        ),
    ])
    .to_bytes()
}

/// `{1: bstr(auth), 2: bstr(body)}`.
pub fn assemble_keyset_document(auth: &[u8], body: &[u8]) -> Vec<u8> {
    Value::Map(vec![
        (int(l::KEYSET_DOC_AUTH), Value::from(auth)),
        (int(l::KEYSET_DOC_BODY), Value::from(body)),
    ])
    .to_bytes()
}

/// Everything needed to build a root-signed key-set document.
#[derive(Debug, Clone)]
pub struct KeySetBuilder {
    /// Root keys that sign the document.
    pub roots: Vec<SigningKey>,
    /// The key set.
    pub keyset: KeySetParams,
    /// Signature options (Ed25519 label, kid).
    pub sign_options: SignOptions,
}

impl KeySetBuilder {
    /// Checks: at least one root and one signer, no duplicate roots or
    /// signers, no signer also revoked, 1 <= threshold <= signers.
    pub fn validate(&self) -> Result<(), EncodeError> {
        check_signing_keys(&self.roots)?;
        let ks = &self.keyset;
        if ks.signers.is_empty() {
            return Err(EncodeError::NoSigners);
        }
        let mut kids: Vec<KeyId> = Vec::new();
        for s in &ks.signers {
            let kid = s.key_id();
            if kids.contains(&kid) {
                return Err(EncodeError::DuplicateSigner(hex(&kid)));
            }
            if ks.revoked.contains(&kid) {
                return Err(EncodeError::SignerRevoked(hex(&kid)));
            }
            kids.push(kid);
        }
        if ks.threshold == 0 || ks.threshold > ks.signers.len() as u64 {
            return Err(EncodeError::InvalidThreshold {
                threshold: ks.threshold,
                signers: ks.signers.len(),
            });
        }
        Ok(())
    }

    /// Validates, encodes and signs the key-set document.
    pub fn build(&self) -> Result<Vec<u8>, EncodeError> {
        self.validate()?;
        let body = encode_keyset(&self.keyset);
        let auth = sign_digest(&body, &self.roots, &self.sign_options);
        Ok(assemble_keyset_document(&auth, &body))
    }
}

/// What a key-set document says (its structure only; the root signatures
/// are not verified here, that is the device verifier's job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetInfo {
    /// Key-set version.
    pub version: u64,
    /// Signature threshold.
    pub threshold: u64,
    /// Key ids of the signers.
    pub signer_kids: Vec<KeyId>,
    /// Revoked key ids.
    pub revoked: Vec<KeyId>,
    /// Number of root signatures.
    pub root_signatures: usize,
}

impl KeySetInfo {
    /// Parses the structure of a key-set document.
    pub fn parse(doc: &[u8]) -> Result<KeySetInfo, EncodeError> {
        let bad = |m: &str| EncodeError::InvalidKeySetDocument(m.to_owned());
        let top = Value::from_bytes(doc).map_err(|e| bad(&e.to_string()))?;
        if top.as_map().is_none() {
            return Err(bad("not a CBOR map"));
        }
        let auth = top
            .get_int(l::KEYSET_DOC_AUTH)
            .and_then(Value::decode_bstr)
            .ok_or_else(|| bad("member 1 (authentication) missing or not a byte string"))?
            .map_err(|e| bad(&format!("authentication: {e}")))?;
        let auth = auth
            .as_array()
            .filter(|a| a.len() >= 2)
            .ok_or_else(|| bad("authentication is not [digest, + signature]"))?;
        let body = top
            .get_int(l::KEYSET_DOC_BODY)
            .and_then(Value::decode_bstr)
            .ok_or_else(|| bad("member 2 (key set) missing or not a byte string"))?
            .map_err(|e| bad(&format!("key set: {e}")))?;
        let uint = |k: i64, name: &str| {
            body.get_int(k)
                .and_then(Value::as_integer)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    bad(&format!(
                        "key set {name} missing or not an unsigned integer"
                    ))
                })
        };
        let version = uint(l::KEYSET_VERSION, "version")?;
        let threshold = uint(l::KEYSET_THRESHOLD, "threshold")?;
        let signers = body
            .get_int(l::KEYSET_SIGNERS)
            .and_then(Value::as_array)
            .ok_or_else(|| bad("key set signers missing or not an array"))?;
        let mut signer_kids = Vec::new();
        for s in signers {
            let raw = cose_key_raw(s).ok_or_else(|| bad("a signer is not a valid COSE_Key"))?;
            signer_kids.push(crate::keys::key_id_of_raw(&raw));
        }
        let mut revoked = Vec::new();
        if let Some(r) = body.get_int(l::KEYSET_REVOKED) {
            for kid in r
                .as_array()
                .ok_or_else(|| bad("revoked list is not an array"))?
            {
                let kid: KeyId = kid
                    .as_bytes()
                    .and_then(|b| b.as_slice().try_into().ok())
                    .ok_or_else(|| bad("a revoked key id is not an 8-byte string"))?;
                revoked.push(kid);
            }
        }
        Ok(KeySetInfo {
            version,
            threshold,
            signer_kids,
            revoked,
            root_signatures: auth.len() - 1,
        })
    }
}

/// The raw public key (32-byte Ed25519 or 65-byte SEC1 P-256) in a
/// `COSE_Key`, if it has one of the two supported shapes.
pub fn cose_key_raw(key: &Value) -> Option<Vec<u8>> {
    let int = |k| key.get_int(k).and_then(Value::as_integer).map(i128::from);
    let bytes = |k| key.get_int(k).and_then(Value::as_bytes);
    match (int(l::COSE_KEY_KTY)?, int(l::COSE_KEY_CRV)?) {
        (kty, crv)
            if kty == i128::from(l::COSE_KTY_OKP) && crv == i128::from(l::COSE_CRV_ED25519) =>
        {
            let x = bytes(l::COSE_KEY_X)?;
            (x.len() == 32).then(|| x.to_vec())
        }
        (kty, crv) if kty == i128::from(l::COSE_KTY_EC2) && crv == i128::from(l::COSE_CRV_P256) => {
            let (x, y) = (bytes(l::COSE_KEY_X)?, bytes(l::COSE_KEY_Y)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut raw = vec![0x04];
            raw.extend_from_slice(x);
            raw.extend_from_slice(y);
            Some(raw)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;

    #[test]
    fn keyset_document_matches_format() {
        let roots = vec![key(Algorithm::Ed25519), key(Algorithm::P256)];
        let (e, p) = (key(Algorithm::Ed25519), key(Algorithm::P256));
        let old = key(Algorithm::Ed25519);
        let doc = KeySetBuilder {
            roots: roots.clone(),
            keyset: KeySetParams {
                version: 3,
                threshold: 2,
                signers: vec![e.public_key(), p.public_key()],
                revoked: vec![old.key_id()],
            },
            sign_options: SignOptions::default(),
        }
        .build()
        .unwrap();
        let top = decode(&doc);
        assert_eq!(keys_of(&top), vec![Value::from(1), Value::from(2)]);
        let body_bytes = top.get_int(2).unwrap().as_bytes().unwrap();
        let body = decode(body_bytes);
        assert_eq!(keys_of(&body), [1, 2, 3, 4].map(Value::from).to_vec());
        assert_eq!(body.get_int(1), Some(&Value::from(3)));
        assert_eq!(body.get_int(2), Some(&Value::from(2)));
        let praw = p.raw_public_key_bytes();
        assert_eq!(
            body.get_int(3),
            Some(&Value::Array(vec![
                Value::Map(vec![
                    (Value::from(1), Value::from(1)),
                    (Value::from(-1), Value::from(6)),
                    (Value::from(-2), Value::from(e.raw_public_key_bytes())),
                ]),
                Value::Map(vec![
                    (Value::from(1), Value::from(2)),
                    (Value::from(-1), Value::from(1)),
                    (Value::from(-2), Value::from(&praw[1..33])),
                    (Value::from(-3), Value::from(&praw[33..])),
                ]),
            ]))
        );
        assert_eq!(
            body.get_int(4),
            Some(&Value::Array(vec![Value::from(old.key_id().to_vec())]))
        );
        let auth = bstr_item(top.get_int(1).unwrap());
        let auth = auth.as_array().unwrap();
        assert_eq!(auth.len(), 3);
        let digest = auth[0].as_bytes().unwrap();
        assert_eq!(*digest, suit_digest(&bstr_wrapped(body_bytes)));
        check_sign1(auth[1].as_bytes().unwrap(), &roots[0], -8, digest);
        check_sign1(auth[2].as_bytes().unwrap(), &roots[1], -9, digest);

        let info = KeySetInfo::parse(&doc).unwrap();
        assert_eq!(
            info,
            KeySetInfo {
                version: 3,
                threshold: 2,
                signer_kids: vec![e.key_id(), p.key_id()],
                revoked: vec![old.key_id()],
                root_signatures: 2,
            }
        );
    }

    #[test]
    fn keyset_builder_rejects_bad_inputs() {
        let s = key(Algorithm::Ed25519).public_key();
        let mk = |threshold, signers: Vec<PublicKey>, revoked| KeySetBuilder {
            roots: vec![key(Algorithm::Ed25519)],
            keyset: KeySetParams {
                version: 1,
                threshold,
                signers,
                revoked,
            },
            sign_options: SignOptions::default(),
        };
        assert_eq!(
            mk(0, vec![s.clone()], vec![]).build(),
            Err(EncodeError::InvalidThreshold {
                threshold: 0,
                signers: 1
            })
        );
        assert_eq!(
            mk(2, vec![s.clone()], vec![]).build(),
            Err(EncodeError::InvalidThreshold {
                threshold: 2,
                signers: 1
            })
        );
        assert_eq!(mk(1, vec![], vec![]).build(), Err(EncodeError::NoSigners));
        assert!(matches!(
            mk(1, vec![s.clone(), s.clone()], vec![]).build(),
            Err(EncodeError::DuplicateSigner(_))
        ));
        assert!(matches!(
            mk(1, vec![s.clone()], vec![s.key_id()]).build(),
            Err(EncodeError::SignerRevoked(_))
        ));
        let mut no_roots = mk(1, vec![s], vec![]);
        no_roots.roots.clear();
        assert_eq!(no_roots.build(), Err(EncodeError::NoSigningKeys));
    }
}
