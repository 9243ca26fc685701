//! Errors: one enum, each variant naming what failed, with the data needed
//! to say it in a sentence. Host crates print them with `Display`.

use core::fmt;

use crate::keys::KeyId;

/// Where in the envelope a decoding error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The outer SUIT envelope map.
    Envelope,
    /// The authentication wrapper.
    Authentication,
    /// A COSE_Sign1 authentication block.
    Signature,
    /// The manifest map.
    Manifest,
    /// `suit-common`.
    Common,
    /// A command sequence.
    Commands,
    /// A SUIT_Digest.
    Digest,
    /// The text map (release notes).
    Text,
    /// A key-set document.
    KeySet,
    /// A COSE_Key.
    Key,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Envelope => "envelope",
            Part::Authentication => "authentication wrapper",
            Part::Signature => "COSE_Sign1 block",
            Part::Manifest => "manifest",
            Part::Common => "suit-common",
            Part::Commands => "command sequence",
            Part::Digest => "digest",
            Part::Text => "release notes",
            Part::KeySet => "key-set document",
            Part::Key => "COSE_Key",
        })
    }
}

/// A bounded resource that an input tried to exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Signatures in one authentication wrapper.
    Signatures,
    /// Keys in a key set or in the root anchors.
    Keys,
    /// Revoked key ids in a key set.
    Revoked,
    /// Components in a manifest.
    Components,
    /// Nesting of try-each and run-sequence.
    Nesting,
    /// Fixed vulnerabilities listed in the release notes.
    Cves,
    /// A COSE protected header.
    ProtectedHeader,
    /// Integers in a version.
    VersionParts,
    /// Bytes in a component identifier.
    ComponentId,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Signatures => "signatures",
            Limit::Keys => "keys",
            Limit::Revoked => "revoked keys",
            Limit::Components => "components",
            Limit::Nesting => "nested command sequences",
            Limit::Cves => "fixed CVEs",
            Limit::ProtectedHeader => "protected-header bytes",
            Limit::VersionParts => "version numbers",
            Limit::ComponentId => "component-identifier parts",
        })
    }
}

/// Everything that can go wrong while decoding or verifying an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The CBOR is malformed or truncated at `offset` in the named part.
    Malformed {
        /// Which structure was being decoded.
        part: Part,
        /// Byte offset inside that structure.
        offset: usize,
        /// What was expected there.
        expected: &'static str,
    },
    /// A structure declares more items than Keyway accepts.
    TooMany {
        /// What was counted.
        what: Limit,
        /// The bound.
        max: usize,
    },
    /// A required member is absent.
    Missing {
        /// Which structure lacks it.
        part: Part,
        /// What is missing.
        what: &'static str,
    },
    /// Bytes follow the end of the envelope.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A map key appeared twice.
    DuplicateKey {
        /// Which structure.
        part: Part,
        /// The key.
        key: i64,
    },
    /// The manifest-version is not 1.
    UnsupportedManifestVersion(u64),
    /// A digest algorithm other than SHA-256.
    UnsupportedDigest(i64),
    /// A COSE algorithm Keyway does not verify.
    UnsupportedAlgorithm(i64),
    /// An authentication block that is not COSE_Sign1.
    UnsupportedAuthentication(&'static str),
    /// A SUIT command this verifier does not implement (the draft requires
    /// rejecting the manifest).
    UnsupportedCommand(i64),
    /// A SUIT parameter this verifier does not implement.
    UnsupportedParameter(i64),
    /// A public key that is not a valid point.
    InvalidKey,
    /// The digest in the authentication wrapper does not match the manifest.
    ManifestDigestMismatch,
    /// The digest in a key-set document does not match its body.
    KeySetDigestMismatch,
    /// A signature by a trusted key that does not verify.
    BadSignature {
        /// The key that supposedly signed.
        key: KeyId,
    },
    /// Not enough distinct trusted keys signed.
    BelowThreshold {
        /// Distinct valid signers found (at most [`crate::MAX_SIGNATURES`]).
        valid: u8,
        /// Signers required.
        required: u8,
        /// The first signature from a key that is not trusted, if any.
        unknown: Option<KeyId>,
        /// The first signature from a revoked key, if any.
        revoked: Option<KeyId>,
        /// Whether the signatures were over a key set (else a manifest).
        keyset: bool,
    },
    /// The same key signed more than once.
    DuplicateSigner {
        /// That key.
        key: KeyId,
    },
    /// Anti-rollback: the sequence number is not above the stored floor.
    Rollback {
        /// The stored floor.
        floor: u64,
        /// The envelope's sequence number.
        got: u64,
    },
    /// The key set is older than the one the device stores.
    KeySetRollback {
        /// Stored key-set version.
        stored: u32,
        /// Offered key-set version.
        got: u32,
    },
    /// A key set with the stored version but different contents.
    KeySetConflict {
        /// That version.
        version: u32,
    },
    /// A key set whose threshold is zero or above its signer count.
    KeySetThreshold {
        /// Threshold.
        threshold: u32,
        /// Signers.
        signers: usize,
    },
    /// The vendor-identifier condition failed. Only the manifest's UUID is
    /// kept (the device knows its own), which keeps `Error` small.
    WrongVendor {
        /// The manifest's vendor UUID.
        got: [u8; 16],
    },
    /// The class-identifier condition failed. Only the manifest's UUID is
    /// kept, as for [`Error::WrongVendor`].
    WrongClass {
        /// The manifest's class UUID.
        got: [u8; 16],
    },
    /// A condition refers to a parameter that was never set.
    ParameterNotSet {
        /// The condition.
        command: i64,
        /// The parameter it needs.
        parameter: i64,
    },
    /// The component index is out of range.
    BadComponentIndex(u64),
    /// A device condition (device identifier, component slot) failed.
    ConditionFailed {
        /// The condition's command number.
        command: i64,
    },
    /// `suit-condition-abort` ran, or every try-each alternative failed.
    Aborted,
    /// The severed text does not match the digest in the manifest.
    TextDigestMismatch,
    /// Text is present in the envelope but the manifest does not bind it.
    UnboundText,
    /// The manifest binds text by digest but the envelope lacks it.
    TextMissing,
    /// A severed sequence does not match its digest in the manifest.
    SeveredDigestMismatch {
        /// The manifest key.
        key: i64,
    },
    /// A malformed CVE entry.
    BadCve,
    /// A severity other than low, medium, high, critical.
    BadSeverity,
    /// The payload is larger than the manifest's image size.
    PayloadTooLong {
        /// The size the manifest allows.
        expected: u64,
    },
    /// The payload ended before the manifest's image size.
    PayloadTruncated {
        /// The size the manifest requires.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// The payload's SHA-256 differs from the manifest's.
    PayloadDigestMismatch,
    /// The manifest names an integrated payload the envelope lacks.
    PayloadMissing,
    /// The manifest describes no payload (no digest and size).
    NoPayloadExpectation,
    /// `use-before` has passed.
    Expired {
        /// The manifest's deadline (seconds since 1970).
        use_before: u64,
        /// The trusted time given.
        now: u64,
    },
    /// The manifest has `use-before` but no trusted time was given.
    NoTrustedTime,
    /// The battery is below the manifest's minimum.
    BatteryTooLow {
        /// Required mWh.
        required_mwh: u64,
        /// Available mWh.
        have_mwh: u64,
    },
    /// The owner has not authorised the update.
    NotAuthorized,
}

/// The COSE algorithms this build verifies (cargo features `ed25519`,
/// `es256`), for the unsupported-algorithm message.
const SUPPORTED_ALGORITHMS: &str = match (cfg!(feature = "ed25519"), cfg!(feature = "es256")) {
    (true, true) => "EdDSA -8, Ed25519 -19, ES256 -7",
    (true, false) => "EdDSA -8, Ed25519 -19",
    (false, true) => "ES256 -7",
    (false, false) => "none",
};

/// A UUID as 8-4-4-4-12 lower-case hex.
fn hex16(f: &mut fmt::Formatter<'_>, b: &[u8; 16]) -> fmt::Result {
    let mut at = 0;
    for len in [4, 2, 2, 2, 6] {
        if at > 0 {
            f.write_str("-")?;
        }
        crate::keys::write_hex(f, b.get(at..at + len).unwrap_or(&[]))?;
        at += len;
    }
    Ok(())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match self {
            Malformed {
                part,
                offset,
                expected,
            } => write!(f, "malformed {part}: expected {expected} at byte {offset}"),
            TooMany { what, max } => write!(f, "too many {what}: at most {max} accepted"),
            Missing { part, what } => write!(f, "{part} lacks {what}"),
            TrailingBytes { count } => write!(f, "{count} unexpected bytes after the envelope"),
            DuplicateKey { part, key } => write!(f, "{part} has key {key} twice"),
            UnsupportedManifestVersion(v) => {
                write!(f, "manifest version {v} is not supported (only 1)")
            }
            UnsupportedDigest(a) => write!(
                f,
                "digest algorithm {a} is not supported (only SHA-256, -16)"
            ),
            UnsupportedAlgorithm(a) => write!(
                f,
                "COSE algorithm {a} is not supported by this build ({SUPPORTED_ALGORITHMS})"
            ),
            UnsupportedAuthentication(k) => {
                write!(
                    f,
                    "{k} authentication blocks are not supported (only COSE_Sign1)"
                )
            }
            UnsupportedCommand(c) => write!(
                f,
                "SUIT command {c} is not supported, so the manifest is rejected"
            ),
            UnsupportedParameter(p) => write!(f, "SUIT parameter {p} is not supported"),
            InvalidKey => f.write_str("public key is not a valid curve point"),
            ManifestDigestMismatch => f.write_str(
                "manifest digest mismatch: the manifest was modified after it was signed",
            ),
            KeySetDigestMismatch => {
                f.write_str("key-set digest mismatch: the key set was modified after it was signed")
            }
            BadSignature { key } => write!(f, "signature by key {key} does not verify"),
            BelowThreshold {
                valid,
                required,
                unknown,
                revoked,
                keyset,
            } => {
                let what = if *keyset { "key set" } else { "manifest" };
                write!(
                    f,
                    "{what} has {valid} valid signature(s) from trusted keys, {required} required"
                )?;
                if let Some(k) = revoked {
                    write!(f, "; signature by revoked key {k}")?;
                }
                if let Some(k) = unknown {
                    write!(f, "; signature by unknown key {k}")?;
                }
                Ok(())
            }
            DuplicateSigner { key } => write!(
                f,
                "key {key} signed more than once; a threshold counts distinct keys"
            ),
            Rollback { floor, got } => write!(
                f,
                "rollback: sequence number {got} is not above the device's floor {floor}"
            ),
            KeySetRollback { stored, got } => write!(
                f,
                "key-set rollback: version {got} is older than the stored version {stored}"
            ),
            KeySetConflict { version } => write!(
                f,
                "key set version {version} differs from the stored key set of the same version"
            ),
            KeySetThreshold { threshold, signers } => write!(
                f,
                "key set threshold {threshold} is impossible with {signers} signer(s)"
            ),
            WrongVendor { got } => {
                f.write_str("wrong vendor: manifest is for vendor ")?;
                hex16(f, got)?;
                f.write_str(", not this device's vendor")
            }
            WrongClass { got } => {
                f.write_str("wrong device class: manifest is for class ")?;
                hex16(f, got)?;
                f.write_str(", not this device's class")
            }
            ParameterNotSet { command, parameter } => write!(
                f,
                "condition {command} needs parameter {parameter}, which the manifest never sets"
            ),
            BadComponentIndex(i) => write!(f, "component index {i} is out of range"),
            ConditionFailed { command } => {
                write!(f, "SUIT condition {command} failed on this device")
            }
            Aborted => f.write_str("manifest aborted: a condition failed in every alternative"),
            TextDigestMismatch => {
                f.write_str("release notes do not match the manifest's text digest (mix-and-match)")
            }
            UnboundText => {
                f.write_str("release notes are present but the manifest does not bind them")
            }
            TextMissing => f.write_str("manifest binds release notes that the envelope lacks"),
            SeveredDigestMismatch { key } => {
                write!(
                    f,
                    "severed member {key} does not match its digest in the manifest"
                )
            }
            BadCve => f.write_str("release notes: malformed CVE entry"),
            BadSeverity => {
                f.write_str("release notes: severity must be low, medium, high or critical")
            }
            PayloadTooLong { expected } => write!(
                f,
                "payload is longer than the manifest's image size of {expected} bytes"
            ),
            PayloadTruncated { expected, got } => {
                write!(f, "payload truncated: {got} of {expected} bytes")
            }
            PayloadDigestMismatch => {
                f.write_str("payload digest mismatch: the payload is not the signed image")
            }
            PayloadMissing => {
                f.write_str("the manifest names an integrated payload that the envelope lacks")
            }
            NoPayloadExpectation => {
                f.write_str("the manifest gives no image digest and size for the payload")
            }
            Expired { use_before, now } => write!(
                f,
                "expired: use-before {use_before} has passed (trusted time {now})"
            ),
            NoTrustedTime => {
                f.write_str("the manifest has a use-before date and no trusted time was given")
            }
            BatteryTooLow {
                required_mwh,
                have_mwh,
            } => write!(
                f,
                "battery too low: {have_mwh} mWh, the update needs {required_mwh} mWh"
            ),
            NotAuthorized => f.write_str("the owner has not authorised this update"),
        }
    }
}

impl core::error::Error for Error {}
