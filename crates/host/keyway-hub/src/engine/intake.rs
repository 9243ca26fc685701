//! Release intake: an envelope in, a verified [`Release`] (or a typed
//! refusal) out.
//!
//! The hub trusts nothing its repository or a USB stick says about an
//! envelope. It finds the model the envelope is for (its vendor and class
//! UUIDs against the models' domains and class names), verifies it with
//! `keyway_suit::verify_envelope` (the function the lock runs) against that
//! model's anchors, checks the integrated payload's digest and size (and a
//! delta's patch header) as `keyway verify` does, and only then takes the
//! version, notes, CVEs, sequence and delta base, from the verified
//! manifest. A compromised repository can at most withhold releases: one
//! it signs itself is refused here. Anti-rollback is each lock's: no floor
//! is applied.

use keyway_suit as suit;
use keyway_vendor::encode::{class_uuid, vendor_uuid};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::model::{CveFix, Digest, ModelAnchors, Release, ReleaseOrigin, UnixSecs};

/// The largest envelope the hub takes in (a lock image is far smaller).
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024 * 1024;

/// Why an envelope was refused (typed; `code` is the stable name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum IntakeRefusal {
    /// Larger than [`MAX_ENVELOPE_BYTES`].
    #[error("the envelope is {size} bytes; the hub takes at most {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The bound.
        max: usize,
    },
    /// It does not decode as a SUIT envelope.
    #[error("not a SUIT envelope the hub can read ({check} check): {message}")]
    Malformed {
        /// The check that failed.
        check: String,
        /// The verifier's reason.
        message: String,
    },
    /// No model the hub knows has its vendor and class.
    #[error(
        "no lock model here has vendor {vendor} and class {class}: add the model's anchors first"
    )]
    NoModel {
        /// The envelope's vendor UUID (hex).
        vendor: String,
        /// Its class UUID (hex).
        class: String,
    },
    /// The model's stored anchors do not load.
    #[error("the anchors of model {class} do not load: {message}")]
    BadAnchors {
        /// The model.
        class: String,
        /// Why.
        message: String,
    },
    /// `verify_envelope` refused it against the model's anchors.
    #[error(
        "the envelope does not verify against model {class}'s anchors ({check} check): {message}"
    )]
    Verification {
        /// The model.
        class: String,
        /// The check that failed (`signatures`, `key set`, …).
        check: keyway_vendor::check::Check,
        /// The verifier's reason.
        message: String,
    },
    /// The payload is not in the envelope: the hub must hold what it
    /// pushes.
    #[error("the envelope's payload is detached; the hub needs it integrated")]
    PayloadDetached,
    /// The integrated payload does not match the signed digest or size.
    #[error("the payload does not match the signed manifest: {message}")]
    Payload {
        /// Why.
        message: String,
    },
}

/// What intake learned from a verified envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The release record.
    pub release: Release,
    /// The image it installs (the payload, or a delta's output).
    pub image: Digest,
    /// The root-signed key set it carries, if any.
    pub keyset: Option<suit::KeySet>,
}

/// Loads a model's anchors into the verifier's form.
pub fn anchors(model: &ModelAnchors) -> Result<suit::TrustAnchors, IntakeRefusal> {
    let bad = |message: String| IntakeRefusal::BadAnchors {
        class: model.class.clone(),
        message,
    };
    let mut keys = Vec::new();
    for pem in &model.trust_pems {
        let k = keyway_vendor::keys::PublicKey::from_pem(pem.as_bytes())
            .map_err(|e| bad(e.to_string()))?;
        keys.push(
            suit::PublicKey::from_raw(&k.raw_public_key_bytes())
                .map_err(|e| bad(keyway_vendor::describe::describe(&e)))?,
        );
    }
    suit::TrustAnchors::new(&keys, model.threshold)
        .map_err(|e| bad(keyway_vendor::describe::describe(&e)))
}

/// The image an envelope installs, read without verifying (for envelopes
/// the store already holds, which were verified when they came in).
pub fn image_of(envelope: &[u8]) -> Option<Digest> {
    let i = suit::inspect_envelope(envelope).ok()?;
    match (i.delta, i.payload) {
        (Some(d), _) => Some(Digest(*d.out.digest)),
        (None, Some(p)) => Some(Digest(*p.digest)),
        (None, None) => None,
    }
}

/// The root-signed key set an envelope carries, if any and if it verifies
/// against `anchors`.
pub fn carried_keyset(envelope: &[u8], anchors: &suit::TrustAnchors) -> Option<suit::KeySet> {
    let doc = suit::Envelope::decode(envelope).ok()?.keyset?;
    suit::KeySet::from_document(doc, anchors).ok()
}

/// The key sets the hub has seen per model (class): the newest
/// root-signed key set carried by an envelope it took in. A release signed
/// by a delegated key need not carry the key set (the lock stored it from
/// an earlier release); the hub verifies such an envelope as a lock holding
/// that key set would.
pub type KeySets = std::collections::HashMap<String, suit::KeySet>;

/// Verifies one envelope against the models and makes its release record.
///
/// It is verified as a lock that has accepted nothing would (root keys, or
/// a key set the envelope carries); if that fails on signatures or the key
/// set and `keysets` holds a key set for its model, again as a lock
/// holding that key set.
pub fn verify(
    target: &str,
    bytes: &[u8],
    origin: ReleaseOrigin,
    models: &[ModelAnchors],
    keysets: &KeySets,
    now: UnixSecs,
) -> Result<Accepted, IntakeRefusal> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(IntakeRefusal::TooLarge {
            size: bytes.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    let malformed = |e: &suit::Error| IntakeRefusal::Malformed {
        check: keyway_vendor::check::Check::of(e).to_string(),
        message: keyway_vendor::describe::describe(e),
    };
    // Unverified: only to choose the model whose anchors decide.
    let inspected = suit::inspect_envelope(bytes).map_err(|e| malformed(&e))?;
    let c0 = inspected.manifest.components.first();
    let (vendor, class) = match c0.map(|c| (c.params.vendor_id, c.params.class_id)) {
        Some((Some(v), Some(c))) => (*v, *c),
        _ => {
            return Err(IntakeRefusal::NoModel {
                vendor: "none".into(),
                class: "none".into(),
            });
        }
    };
    let model = models
        .iter()
        .find(|m| {
            let v = vendor_uuid(&m.vendor_domain);
            v == vendor && class_uuid(&v, &m.class) == class
        })
        .ok_or_else(|| IntakeRefusal::NoModel {
            vendor: keyway_vendor::keys::hex(&vendor),
            class: keyway_vendor::keys::hex(&class),
        })?;
    let anchors = anchors(model)?;
    let identity = suit::DeviceIdentity::new(vendor, class);
    let first = suit::verify_envelope(bytes, &anchors, &identity, &suit::DeviceState::fresh());
    let v = match first {
        Ok(v) => v,
        Err(e) => {
            let retry = match (
                keyway_vendor::check::Check::of(&e),
                keysets.get(&model.class),
            ) {
                (
                    keyway_vendor::check::Check::Signatures | keyway_vendor::check::Check::KeySet,
                    Some(ks),
                ) => suit::verify_envelope(
                    bytes,
                    &anchors,
                    &identity,
                    &suit::DeviceState {
                        sequence_floor: None,
                        keyset: Some(ks.clone()),
                    },
                )
                .ok(),
                _ => None,
            };
            retry.ok_or_else(|| IntakeRefusal::Verification {
                class: model.class.clone(),
                check: keyway_vendor::check::Check::of(&e),
                message: keyway_vendor::describe::describe(&e),
            })?
        }
    };
    let expectation = v.payload.ok_or(IntakeRefusal::PayloadDetached)?;
    let ip = v.integrated.ok_or(IntakeRefusal::PayloadDetached)?;
    let payload_err = |e: suit::Error| IntakeRefusal::Payload {
        message: keyway_vendor::describe::describe(&e),
    };
    if !ip.is_complete() {
        return Err(payload_err(suit::Error::PayloadTruncated {
            expected: ip.len,
            got: ip.available.len() as u64,
        }));
    }
    let end = ip.offset as u64 + ip.len;
    if (bytes.len() as u64) > end {
        return Err(payload_err(suit::Error::TrailingBytes {
            count: (bytes.len() as u64 - end) as usize,
        }));
    }
    let mut pv = suit::PayloadVerifier::new(&expectation);
    pv.update(ip.available).map_err(payload_err)?;
    pv.finish().map_err(payload_err)?;
    // A delta's patch header must be the one the manifest binds (the lock
    // refuses it otherwise).
    if let Some(d) = v.delta.as_ref() {
        let expected =
            keyway_device::delta::expected_header(d).map_err(|f| IntakeRefusal::Payload {
                message: format!(
                    "the delta manifest's {} does not fit a patch header",
                    f.name()
                ),
            })?;
        keyway_device::delta::check_header(&expected.to_bytes(), 0, ip.available).map_err(|f| {
            IntakeRefusal::Payload {
                message: format!(
                    "the patch header's {} differs from the signed manifest's",
                    f.name()
                ),
            }
        })?;
    }
    let image = match v.delta.as_ref() {
        Some(d) => Digest(*d.out.digest),
        None => Digest(*expectation.digest),
    };
    let notes = v.notes.as_ref();
    let version = notes
        .and_then(|n| n.version.map(str::to_string))
        .or_else(|| v.manifest.version.map(|x| x.to_string()))
        .unwrap_or_else(|| format!("sequence {}", v.sequence));
    let release = Release {
        digest: Digest(Sha256::digest(bytes).into()),
        target: target.to_string(),
        class: model.class.clone(),
        version,
        sequence: v.sequence,
        delta_base: v.delta.as_ref().map(|d| Digest(*d.base_digest)),
        notes: notes
            .and_then(|n| n.description)
            .unwrap_or_default()
            .to_string(),
        cves: notes
            .map(|n| {
                n.cves()
                    .map(|c| CveFix {
                        id: c.id.to_string(),
                        severity: c.severity,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        origin,
        added_at: now,
        envelope: bytes.to_vec(),
    };
    Ok(Accepted {
        release,
        image,
        keyset: v.new_keyset,
    })
}
