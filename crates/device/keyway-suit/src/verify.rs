//! The verifier: bytes and the device's trust state in, a verified manifest
//! or a precise error out. No clock, no I/O, no allocation.

use sha2::{Digest, Sha256};

use crate::auth::{SignerSet, Signers, authenticate};
use crate::envelope::{Envelope, IntegratedPayload};
use crate::error::Error;
use crate::keys::TrustAnchors;
use crate::keyset::KeySet;
use crate::manifest::{DeviceIdentity, ImageExpectation, Manifest, Member};
use crate::text::ReleaseNotes;

/// What the device has stored: the anti-rollback floor and the newest key
/// set it accepted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceState {
    /// The highest sequence number installed; an envelope must exceed it.
    /// `None` on a device that has never accepted a manifest.
    pub sequence_floor: Option<u64>,
    /// The stored key set, if any; its version is the key-set floor.
    pub keyset: Option<KeySet>,
}

impl DeviceState {
    /// A device with this floor and no key set.
    pub fn new(sequence_floor: u64) -> Self {
        DeviceState {
            sequence_floor: Some(sequence_floor),
            keyset: None,
        }
    }

    /// A device that has accepted nothing yet: any sequence number passes.
    pub fn fresh() -> Self {
        DeviceState::default()
    }

    /// The key-set version floor (0 without a key set).
    pub fn keyset_version(&self) -> u32 {
        self.keyset.as_ref().map_or(0, |k| k.version)
    }
}

/// An envelope whose signatures, anti-rollback, identity conditions, text
/// binding and severed members all verified. The payload is checked
/// separately, as it streams, with [`crate::PayloadVerifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<'a> {
    /// The decoded and run manifest.
    pub manifest: Manifest<'a>,
    /// `suit-manifest-sequence-number`.
    pub sequence: u64,
    /// SHA-256 over the bstr-wrapped manifest (what was signed).
    pub manifest_digest: [u8; 32],
    /// The distinct keys whose signatures counted.
    pub signers: Signers,
    /// The key-set version in force for this envelope (0: root keys).
    pub keyset_version: u32,
    /// A newer key set carried by the envelope, to store once the update is
    /// accepted.
    pub new_keyset: Option<KeySet>,
    /// The release notes, bound to the manifest by digest.
    pub notes: Option<ReleaseNotes<'a>>,
    /// The image the payload must match.
    pub payload: Option<ImageExpectation<'a>>,
    /// The integrated payload that carries it, if any.
    pub integrated: Option<IntegratedPayload<'a>>,
}

impl<'a> Verified<'a> {
    /// The integrated payload's bytes when all of them were in the buffer.
    pub fn integrated_payload(&self) -> Option<&'a [u8]> {
        self.integrated
            .filter(|p| p.is_complete())
            .map(|p| p.available)
    }
}

/// Verifies an envelope (or a prefix ending inside its last, integrated
/// payload) for a device with these anchors, identity and stored state.
pub fn verify_envelope<'a>(
    bytes: &'a [u8],
    anchors: &TrustAnchors,
    identity: &DeviceIdentity,
    state: &DeviceState,
) -> Result<Verified<'a>, Error> {
    let env = Envelope::decode(bytes)?;

    // 1. Which keys may sign: a newer key set in the envelope, the stored
    //    one, or (before any delegation) the root keys themselves.
    let mut new_keyset = None;
    if let Some(doc) = env.keyset {
        let offered = KeySet::from_document(doc, anchors)?;
        let stored = state.keyset_version();
        if offered.version < stored {
            return Err(Error::KeySetRollback {
                stored,
                got: offered.version,
            });
        }
        match &state.keyset {
            Some(s) if s.version == offered.version && s.digest != offered.digest => {
                return Err(Error::KeySetConflict {
                    version: offered.version,
                });
            }
            Some(s) if s.version == offered.version => {}
            _ => new_keyset = Some(offered),
        }
    }
    let active = new_keyset.as_ref().or(state.keyset.as_ref());
    let set = match active {
        Some(k) => SignerSet {
            keys: &k.signers,
            threshold: usize::from(k.threshold),
            revoked: &k.revoked,
            keyset: false,
        },
        None => SignerSet {
            keys: anchors.keys(),
            threshold: usize::from(anchors.threshold()),
            revoked: &[],
            keyset: false,
        },
    };

    // 2. Signatures over the manifest digest.
    let signers = authenticate(env.auth, env.manifest_wrapped, set)?;

    // 3. The manifest: anti-rollback first, then the severed members and
    //    the command sequences.
    let mut manifest = Manifest::decode(env.manifest)?;
    if let Some(floor) = state.sequence_floor {
        if manifest.sequence <= floor {
            return Err(Error::Rollback {
                floor,
                got: manifest.sequence,
            });
        }
    }
    let severed_install = severed(
        manifest.install,
        env.install_wrapped,
        crate::labels::MAN_INSTALL,
    )?;
    let severed_fetch = severed(
        manifest.payload_fetch,
        env.payload_fetch_wrapped,
        crate::labels::MAN_PAYLOAD_FETCH,
    )?;
    let notes = match (manifest.text, env.text_wrapped) {
        (None, None) => None,
        (None, Some(_)) => return Err(Error::UnboundText),
        (Some(Member::Inline(b)), _) => Some(ReleaseNotes::decode(b)?),
        (Some(Member::Severed(_)), None) => return Err(Error::TextMissing),
        (Some(Member::Severed(d)), Some(w)) => {
            if Sha256::digest(w).as_slice() != d {
                return Err(Error::TextDigestMismatch);
            }
            Some(ReleaseNotes::decode(env.text().ok_or(Error::TextMissing)?)?)
        }
    };
    manifest.run(identity, severed_install, severed_fetch)?;

    // 4. The payload named by the manifest must be the one the envelope
    //    carries, with the declared size.
    let payload = manifest.payload();
    let integrated = match payload.and_then(|p| p.uri) {
        Some(uri) if uri.starts_with('#') => {
            let p = env.payload_named(uri).ok_or(Error::PayloadMissing)?;
            if let Some(expected) = payload.and_then(|e| e.size) {
                if p.len > expected {
                    return Err(Error::PayloadTooLong { expected });
                }
                if p.len < expected {
                    return Err(Error::PayloadTruncated {
                        expected,
                        got: p.len,
                    });
                }
            }
            Some(p)
        }
        _ => None,
    };

    let mut manifest_digest = [0u8; 32];
    manifest_digest.copy_from_slice(&Sha256::digest(env.manifest_wrapped));
    Ok(Verified {
        sequence: manifest.sequence,
        manifest,
        manifest_digest,
        signers,
        keyset_version: active.map_or(0, |k| k.version),
        new_keyset,
        notes,
        payload,
        integrated,
    })
}

fn severed<'a>(
    member: Option<Member<'a>>,
    wrapped: Option<&'a [u8]>,
    key: i64,
) -> Result<Option<&'a [u8]>, Error> {
    match (member, wrapped) {
        (Some(Member::Severed(d)), Some(w)) => {
            if Sha256::digest(w).as_slice() != d {
                return Err(Error::SeveredDigestMismatch { key });
            }
            Ok(Envelope::inner(Some(w)))
        }
        _ => Ok(None),
    }
}
