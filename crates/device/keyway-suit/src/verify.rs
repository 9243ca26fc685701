//! The verifier: bytes and the device's trust state in, a verified manifest
//! or a precise error out. No clock, no I/O, no allocation.

use sha2::{Digest, Sha256};

use crate::auth::{SignerSet, Signers, authenticate};
use crate::envelope::{Envelope, IntegratedPayload};
use crate::error::Error;
use crate::keys::TrustAnchors;
use crate::keyset::KeySet;
#[cfg(feature = "delta")]
use crate::manifest::DeltaBinding;
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
    /// For a delta update (the payload is a Keyway patch): the image it
    /// applies to and the image it produces. The device must refuse it
    /// unless its installed image is the base, check the patch header
    /// against it, and verify the written slot against `out`. (Feature
    /// `delta`.)
    #[cfg(feature = "delta")]
    pub delta: Option<DeltaBinding<'a>>,
}

impl<'a> Verified<'a> {
    /// The integrated payload's bytes when all of them were in the buffer.
    pub fn integrated_payload(&self) -> Option<&'a [u8]> {
        self.integrated
            .filter(|p| p.is_complete())
            .map(|p| p.available)
    }
}

impl Verified<'_> {
    /// Nothing verified yet: the value [`verify_envelope_into`] fills.
    pub const fn empty() -> Self {
        Verified {
            manifest: Manifest::empty(),
            sequence: 0,
            manifest_digest: [0; 32],
            signers: Signers::new(),
            keyset_version: 0,
            new_keyset: None,
            notes: None,
            payload: None,
            integrated: None,
            #[cfg(feature = "delta")]
            delta: None,
        }
    }
}

/// Verifies an envelope (or a prefix ending inside its last, integrated
/// payload) for a device with these anchors, identity and stored state.
///
/// Returning a [`Verified`] (about 1.5 KB on Cortex-M) by value may cost
/// the caller's stack a second copy; a device with a tight stack calls
/// [`verify_envelope_into`], which fills one the caller owns.
pub fn verify_envelope<'a>(
    bytes: &'a [u8],
    anchors: &TrustAnchors,
    identity: &DeviceIdentity,
    state: &DeviceState,
) -> Result<Verified<'a>, Error> {
    let mut v = Verified::empty();
    verify_envelope_into(&mut v, bytes, anchors, identity, state)?;
    Ok(v)
}

/// [`verify_envelope`] in place: fills `out` (whatever it held before) and
/// returns what failed, if anything; on an error `out` must not be used.
///
/// Every phase writes its part of the one [`Verified`] (the manifest is
/// decoded into its final place), so no large value is moved or copied.
/// Each phase (key set, signatures, manifest, release notes) is a separate
/// function that is never inlined, so their stack frames do not add up.
#[inline(never)]
pub fn verify_envelope_into<'a>(
    out: &mut Verified<'a>,
    bytes: &'a [u8],
    anchors: &TrustAnchors,
    identity: &DeviceIdentity,
    state: &DeviceState,
) -> Result<(), Error> {
    *out = Verified::empty();
    let v = out;
    let env = Envelope::decode(bytes)?;

    // 1. Which keys may sign: a newer key set in the envelope, the stored
    //    one, or (before any delegation) the root keys themselves.
    if let Some(doc) = env.keyset {
        offered_keyset(doc, anchors, state, &mut v.new_keyset)?;
    }
    let set = match v.new_keyset.as_ref().or(state.keyset.as_ref()) {
        Some(k) => {
            v.keyset_version = k.version;
            SignerSet {
                keys: &k.signers,
                threshold: usize::from(k.threshold),
                revoked: &k.revoked,
                keyset: false,
            }
        }
        None => SignerSet {
            keys: anchors.keys(),
            threshold: usize::from(anchors.threshold()),
            revoked: &[],
            keyset: false,
        },
    };

    // 2. Signatures over the manifest digest: the deepest call, made while
    //    this frame holds only the envelope's slices and the key set.
    v.signers = authenticate(env.auth, env.manifest_wrapped, set)?;

    // 3.-4.
    finish(v, &env, identity, state)
}

/// The manifest: anti-rollback first, then the severed members, the release
/// notes and the command sequences; then the payload it names.
#[inline(never)]
fn finish<'a>(
    v: &mut Verified<'a>,
    env: &Envelope<'a>,
    identity: &DeviceIdentity,
    state: &DeviceState,
) -> Result<(), Error> {
    v.manifest.decode_into(env.manifest)?;
    v.sequence = v.manifest.sequence;
    if let Some(floor) = state.sequence_floor
        && v.sequence <= floor
    {
        return Err(Error::Rollback {
            floor,
            got: v.sequence,
        });
    }
    v.notes = run_manifest(&mut v.manifest, env, identity)?;
    v.payload = v.manifest.payload();
    #[cfg(feature = "delta")]
    {
        v.delta = v.manifest.delta()?;
    }
    v.integrated = integrated(env, v.payload.as_ref())?;
    sha256_into(&mut v.manifest_digest, env.manifest_wrapped);
    Ok(())
}

/// A key set carried by the envelope, checked against the root anchors and
/// the stored key-set version; decoded in place into `out`, which is left
/// `Some` only when it is newer than the stored one.
#[inline(never)]
fn offered_keyset(
    doc: &[u8],
    anchors: &TrustAnchors,
    state: &DeviceState,
    out: &mut Option<KeySet>,
) -> Result<(), Error> {
    let offered = out.insert(KeySet::EMPTY);
    offered.read_document(doc, anchors)?;
    let stored = state.keyset_version();
    if offered.version < stored {
        return Err(Error::KeySetRollback {
            stored,
            got: offered.version,
        });
    }
    if let Some(s) = &state.keyset
        && s.version == offered.version
    {
        if s.digest != offered.digest {
            return Err(Error::KeySetConflict {
                version: offered.version,
            });
        }
        *out = None;
    }
    Ok(())
}

/// Checks the severed sequences and the release notes against their
/// digests, then runs the command sequences. Returns the notes.
#[inline(never)]
fn run_manifest<'a>(
    manifest: &mut Manifest<'a>,
    env: &Envelope<'a>,
    identity: &DeviceIdentity,
) -> Result<Option<ReleaseNotes<'a>>, Error> {
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
    let notes = notes(manifest, env)?;
    manifest.run(identity, severed_install, severed_fetch)?;
    Ok(notes)
}

/// The integrated payload the manifest fetches, with the declared size.
fn integrated<'a>(
    env: &Envelope<'a>,
    payload: Option<&ImageExpectation<'a>>,
) -> Result<Option<IntegratedPayload<'a>>, Error> {
    let Some(expect) = payload else {
        return Ok(None);
    };
    match expect.uri {
        Some(uri) if uri.starts_with('#') => {
            let p = env.payload_named(uri).ok_or(Error::PayloadMissing)?;
            match expect.size {
                Some(expected) if p.len > expected => Err(Error::PayloadTooLong { expected }),
                Some(expected) if p.len < expected => Err(Error::PayloadTruncated {
                    expected,
                    got: p.len,
                }),
                _ => Ok(Some(p)),
            }
        }
        _ => Ok(None),
    }
}

fn sha256_into(out: &mut [u8; 32], bytes: &[u8]) {
    *out = Sha256::digest(bytes).into();
}

/// An envelope decoded and its manifest run, with NO signature checked:
/// for tools that show what an envelope claims (`keyway inspect`). A lock
/// never acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected<'a> {
    /// The decoded and run manifest (identity conditions not checked).
    pub manifest: Manifest<'a>,
    /// SHA-256 over the bstr-wrapped manifest.
    pub manifest_digest: [u8; 32],
    /// The signature blocks as they claim to be.
    pub signatures: heapless::Vec<crate::auth::SignatureInfo, { crate::auth::MAX_SIGNATURES }>,
    /// The version of the carried key set, unverified.
    pub keyset_version: Option<u32>,
    /// The release notes, if present and bound by a matching digest.
    pub notes: Option<ReleaseNotes<'a>>,
    /// The image the payload must match.
    pub payload: Option<ImageExpectation<'a>>,
    /// The integrated payload, if any.
    pub integrated: Option<IntegratedPayload<'a>>,
    /// The delta binding, if the payload is a patch. (Feature `delta`.)
    #[cfg(feature = "delta")]
    pub delta: Option<DeltaBinding<'a>>,
}

/// Decodes an envelope for display, checking structure and digests but not
/// signatures, trust or rollback.
pub fn inspect_envelope(bytes: &[u8]) -> Result<Inspected<'_>, Error> {
    inspect_envelope_with(bytes, &DeviceIdentity::ANY)
}

/// [`inspect_envelope`] for a device with this identity: its conditions
/// (e.g. the component slot, which chooses a try-each alternative) are
/// checked. Still no signature, trust or rollback check.
pub fn inspect_envelope_with<'a>(
    bytes: &'a [u8],
    identity: &DeviceIdentity,
) -> Result<Inspected<'a>, Error> {
    let env = Envelope::decode(bytes)?;
    let signatures = crate::auth::list_signatures(env.auth)?;
    let keyset_version = match env.keyset {
        Some(doc) => Some(KeySet::peek_version(doc)?),
        None => None,
    };
    let mut manifest = Manifest::decode(env.manifest)?;
    let notes = run_manifest(&mut manifest, &env, identity)?;
    let payload = manifest.payload();
    #[cfg(feature = "delta")]
    let delta = manifest.delta()?;
    let integrated = payload
        .and_then(|p| p.uri)
        .and_then(|uri| env.payload_named(uri))
        .or(env.payload);
    let mut manifest_digest = [0u8; 32];
    sha256_into(&mut manifest_digest, env.manifest_wrapped);
    Ok(Inspected {
        manifest,
        manifest_digest,
        signatures,
        keyset_version,
        notes,
        payload,
        integrated,
        #[cfg(feature = "delta")]
        delta,
    })
}

/// The release notes, bound by digest (severed) or inline.
#[inline(never)]
fn notes<'a>(
    manifest: &Manifest<'a>,
    env: &Envelope<'a>,
) -> Result<Option<ReleaseNotes<'a>>, Error> {
    // Severed text follows the rule of every severable member.
    let severed = severed(manifest.text, env.text_wrapped, crate::labels::MAN_TEXT)?;
    Ok(match (manifest.text, severed) {
        (Some(Member::Inline(b)), _) | (_, Some(b)) => Some(ReleaseNotes::decode(b)?),
        _ => None,
    })
}

/// A severable member (draft-37 §8.6): bound by digest in the manifest, it
/// must be in the envelope and match; in the envelope, it must be bound.
/// Returns its inside when severed.
fn severed<'a>(
    member: Option<Member<'a>>,
    wrapped: Option<&'a [u8]>,
    key: i64,
) -> Result<Option<&'a [u8]>, Error> {
    match (member, wrapped) {
        (Some(Member::Severed(d)), Some(w)) => {
            if Sha256::digest(w)[..] != d[..] {
                return Err(Error::SeveredDigestMismatch { key });
            }
            Ok(Envelope::inner(Some(w)))
        }
        (Some(Member::Severed(_)), None) => Err(Error::SeveredMissing { key }),
        (_, Some(_)) => Err(Error::UnboundSevered { key }),
        _ => Ok(None),
    }
}
