//! Which check an envelope failed: every verifier error maps to one
//! [`Check`], a typed value. The one-line verdict prints it
//! ([`Check::as_str`]), the lock logs it ([`Check::reject_reason`]), and
//! the `unsigned` profile and the hub decide on it; nobody matches the
//! words back.

use keyway_audit::RejectReason;
use keyway_suit as suit;

/// A check of `keyway_suit::verify_envelope`, named for the verdict
/// (`"signatures check failed: ..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// The envelope's CBOR: shape, lengths, duplicate keys.
    Decoding,
    /// The manifest's commands, parameters and conditions.
    Manifest,
    /// The signatures on the manifest.
    Signatures,
    /// A carried key set (its root signatures, version, threshold).
    KeySet,
    /// The sequence number against the floor.
    AntiRollback,
    /// Vendor and class against the device.
    Compatibility,
    /// The release notes (text map) and their CVEs.
    ReleaseNotes,
    /// Severed members other than the release notes.
    SeveredMembers,
    /// The payload's size and digest.
    Payload,
    /// A policy condition: use-before, trusted time, battery, consent.
    Policy,
}

impl Check {
    /// The check `e` failed.
    pub fn of(e: &suit::Error) -> Check {
        use suit::Error::*;
        match e {
            Malformed { .. }
            | TooMany { .. }
            | Missing { .. }
            | TrailingBytes { .. }
            | DuplicateKey { .. } => Check::Decoding,
            UnsupportedManifestVersion(_)
            | UnsupportedDigest(_)
            | UnsupportedCommand(_)
            | UnsupportedParameter(_)
            | UnsupportedMember(_)
            | UnsupportedAuthentication(_)
            | ParameterNotSet { .. }
            | BadComponentIndex(_)
            | Aborted
            | ConditionFailed { .. } => Check::Manifest,
            UnsupportedAlgorithm(_)
            | InvalidKey
            | ManifestDigestMismatch
            | BadSignature { .. }
            | BelowThreshold { keyset: false, .. }
            | DuplicateSigner { .. } => Check::Signatures,
            BelowThreshold { keyset: true, .. }
            | KeySetDigestMismatch
            | KeySetRollback { .. }
            | KeySetConflict { .. }
            | KeySetThreshold { .. } => Check::KeySet,
            Rollback { .. } => Check::AntiRollback,
            WrongVendor { .. } | WrongClass { .. } => Check::Compatibility,
            SeveredDigestMismatch { key: 23 }
            | SeveredMissing { key: 23 }
            | UnboundSevered { key: 23 }
            | BadCve
            | BadSeverity => Check::ReleaseNotes,
            SeveredDigestMismatch { .. } | SeveredMissing { .. } | UnboundSevered { .. } => {
                Check::SeveredMembers
            }
            PayloadTooLong { .. }
            | PayloadTruncated { .. }
            | PayloadDigestMismatch
            | PayloadMissing
            | NoPayloadExpectation => Check::Payload,
            Expired { .. } | NoTrustedTime | BatteryTooLow { .. } | NotAuthorized => Check::Policy,
        }
    }

    /// The check's name in the verdict (`"key set"`, `"anti-rollback"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Check::Decoding => "decoding",
            Check::Manifest => "manifest",
            Check::Signatures => "signatures",
            Check::KeySet => "key set",
            Check::AntiRollback => "anti-rollback",
            Check::Compatibility => "compatibility",
            Check::ReleaseNotes => "release notes",
            Check::SeveredMembers => "severed members",
            Check::Payload => "payload",
            Check::Policy => "policy",
        }
    }

    /// The audit log's reason for a refusal at this check. The log has
    /// no `manifest` or `severed members` reason: a manifest the lock
    /// cannot run is logged as `decoding`, a severed member as `payload`.
    pub const fn reject_reason(self) -> RejectReason {
        match self {
            Check::Signatures => RejectReason::Signatures,
            Check::KeySet => RejectReason::KeySet,
            Check::AntiRollback => RejectReason::AntiRollback,
            Check::Compatibility => RejectReason::Compatibility,
            Check::ReleaseNotes => RejectReason::ReleaseNotes,
            Check::Payload | Check::SeveredMembers => RejectReason::Payload,
            Check::Policy => RejectReason::Policy,
            Check::Decoding | Check::Manifest => RejectReason::Decoding,
        }
    }
}

impl core::fmt::Display for Check {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As its name ([`Check::as_str`]), the words the JSON has always carried.
impl serde::Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The check a verifier error failed, as a method on the error:
/// `e.check()`. (The error is the device crate's type, so the method
/// comes through this trait.)
pub trait FailedCheck {
    /// The check that failed.
    fn check(&self) -> Check;
}

impl FailedCheck for suit::Error {
    fn check(&self) -> Check {
        Check::of(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every check's words and reason, as the lock logged them when the
    /// words were matched back (`reject_reason` in keyway-lock).
    #[test]
    fn checks_keep_their_words_and_audit_reasons() {
        let rows = [
            (
                suit::Error::InvalidKey,
                "signatures",
                RejectReason::Signatures,
            ),
            (
                suit::Error::KeySetDigestMismatch,
                "key set",
                RejectReason::KeySet,
            ),
            (
                suit::Error::Rollback { floor: 2, got: 1 },
                "anti-rollback",
                RejectReason::AntiRollback,
            ),
            (
                suit::Error::BadCve,
                "release notes",
                RejectReason::ReleaseNotes,
            ),
            (
                suit::Error::SeveredMissing { key: 24 },
                "severed members",
                RejectReason::Payload,
            ),
            (
                suit::Error::PayloadMissing,
                "payload",
                RejectReason::Payload,
            ),
            (suit::Error::NoTrustedTime, "policy", RejectReason::Policy),
            (suit::Error::Aborted, "manifest", RejectReason::Decoding),
        ];
        for (e, words, reason) in rows {
            assert_eq!(e.check().as_str(), words, "{e:?}");
            assert_eq!(e.check().to_string(), words, "{e:?}");
            assert_eq!(e.check().reject_reason(), reason, "{e:?}");
        }
    }
}
