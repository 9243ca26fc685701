//! Errors: one enum, each variant naming what failed, with the data needed
//! to say it in a sentence. `Display` is terse (short fixed strings and the
//! data, to keep text out of the device image); host crates render
//! sentences (`keyway::check::describe`).

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
            Part::Authentication => "auth",
            Part::Signature => "sign1",
            Part::Manifest => "manifest",
            Part::Common => "common",
            Part::Commands => "commands",
            Part::Digest => "digest",
            Part::Text => "text",
            Part::KeySet => "key set",
            Part::Key => "key",
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
            Limit::Revoked => "revoked",
            Limit::Components => "components",
            Limit::Nesting => "nesting",
            Limit::Cves => "CVEs",
            Limit::ProtectedHeader => "protected",
            Limit::VersionParts => "version parts",
            Limit::ComponentId => "component id",
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
    /// An authentication block that is not COSE_Sign1: its CBOR tag
    /// (98 COSE_Sign, 17 COSE_Mac0, 97 COSE_Mac).
    UnsupportedAuthentication(u64),
    /// A SUIT command this verifier does not implement (the draft requires
    /// rejecting the manifest).
    UnsupportedCommand(i64),
    /// A SUIT parameter this verifier does not implement.
    UnsupportedParameter(i64),
    /// A manifest member this verifier does not implement (e.g. 15,
    /// dependency resolution): refused, as it may be recipient-necessary.
    UnsupportedMember(i64),
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
        /// Signatures without a key id that verified under no trusted key.
        anonymous: u8,
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
    /// A severed sequence does not match its digest in the manifest.
    SeveredDigestMismatch {
        /// The manifest key.
        key: i64,
    },
    /// The manifest binds a severed member by digest (draft-37 §8.6) but
    /// the envelope lacks it.
    SeveredMissing {
        /// The member's key (16 payload fetch, 20 install, 23 text).
        key: i64,
    },
    /// The envelope carries a severed member that the manifest does not
    /// bind by digest.
    UnboundSevered {
        /// The member's key.
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
/// `es256`), for host messages about [`Error::UnsupportedAlgorithm`].
pub const SUPPORTED_ALGORITHMS: &str = match (cfg!(feature = "ed25519"), cfg!(feature = "es256")) {
    (true, true) => "EdDSA -8, Ed25519 -19, ES256 -7",
    (true, false) => "EdDSA -8, Ed25519 -19",
    (false, true) => "ES256 -7",
    (false, false) => "none",
};

/// Fragments shared by the terse messages, written where a template has
/// byte `FRAGMENT + i`.
const FRAGMENTS: [&str; 4] = ["unsupported ", " digest mismatch", " key ", "key-set "];
/// Template bytes below this are numbers: 1 and 2 the first and second
/// (unsigned), 3 and 4 the same signed; from it up, [`FRAGMENTS`].
const FRAGMENT: u8 = 5;

/// Writes `t`, putting in the numbers and fragments it marks.
fn template(f: &mut fmt::Formatter<'_>, t: &str, x: u64, y: u64) -> fmt::Result {
    let mut rest = t.as_bytes();
    while let Some(at) = rest
        .iter()
        .position(|&b| b < FRAGMENT + FRAGMENTS.len() as u8)
    {
        let (text, tail) = rest.split_at(at);
        f.write_str(core::str::from_utf8(text).unwrap_or(""))?;
        let mark = tail.first().copied().unwrap_or(0);
        rest = tail.get(1..).unwrap_or(&[]);
        if mark >= FRAGMENT {
            f.write_str(FRAGMENTS.get(usize::from(mark - FRAGMENT)).unwrap_or(&""))?;
            continue;
        }
        let v = if mark & 1 == 1 { x } else { y };
        if mark > 2 && (v as i64) < 0 {
            // Signed: through the u64 formatter, so no i64 one is linked.
            f.write_str("-")?;
            fmt::Display::fmt(&(v as i64).unsigned_abs(), f)?;
        } else {
            fmt::Display::fmt(&v, f)?;
        }
    }
    f.write_str(core::str::from_utf8(rest).unwrap_or(""))
}

/// Terse: what failed and its data, in short fixed strings. Hosts render
/// full sentences (`keyway::check::describe`).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        let u = |v: &usize| *v as u64;
        let i = |v: &i64| *v as u64;
        // Template (see `template`) and its numbers; variants with a part,
        // limit, key id or UUID write those first.
        let (t, x, y): (&str, u64, u64) = match self {
            Malformed {
                part,
                offset,
                expected,
            } => {
                f.write_str("malformed ")?;
                fmt::Display::fmt(part, f)?;
                template(f, " @\x01: ", u(offset), 0)?;
                (expected, 0, 0)
            }
            TooMany { what, max } => {
                f.write_str("too many ")?;
                fmt::Display::fmt(what, f)?;
                (" > \x01", u(max), 0)
            }
            Missing { part, what } => {
                fmt::Display::fmt(part, f)?;
                f.write_str(" lacks ")?;
                (what, 0, 0)
            }
            TrailingBytes { count } => ("trailing bytes \x01", u(count), 0),
            DuplicateKey { part, key } => {
                fmt::Display::fmt(part, f)?;
                (": duplicate key \x03", i(key), 0)
            }
            UnsupportedManifestVersion(v) => ("\x05manifest version \x01", *v, 0),
            UnsupportedDigest(a) => ("\x05digest \x03", i(a), 0),
            UnsupportedAlgorithm(a) => ("\x05alg \x03", i(a), 0),
            UnsupportedAuthentication(t) => ("\x05auth tag \x01", *t, 0),
            UnsupportedCommand(c) => ("\x05command \x03", i(c), 0),
            UnsupportedParameter(p) => ("\x05parameter \x03", i(p), 0),
            UnsupportedMember(m) => ("\x05member \x03", i(m), 0),
            InvalidKey => ("invalid key", 0, 0),
            ManifestDigestMismatch => ("manifest\x06", 0, 0),
            KeySetDigestMismatch => ("\x08\x06", 0, 0),
            BadSignature { key } | DuplicateSigner { key } => {
                template(
                    f,
                    if matches!(self, BadSignature { .. }) {
                        "bad signature by\x07"
                    } else {
                        "duplicate signer\x07"
                    },
                    0,
                    0,
                )?;
                fmt::Display::fmt(key, f)?;
                ("", 0, 0)
            }
            BelowThreshold {
                valid,
                required,
                unknown,
                revoked,
                keyset,
                anonymous,
            } => {
                template(
                    f,
                    if *keyset {
                        "\x08signers \x01 of \x02"
                    } else {
                        "manifest signers \x01 of \x02"
                    },
                    u64::from(*valid),
                    u64::from(*required),
                )?;
                for (what, k) in [("; revoked\x07", revoked), ("; unknown\x07", unknown)] {
                    if let Some(k) = k {
                        template(f, what, 0, 0)?;
                        fmt::Display::fmt(k, f)?;
                    }
                }
                if *anonymous > 0 {
                    ("; \x01 no kid", u64::from(*anonymous), 0)
                } else {
                    ("", 0, 0)
                }
            }
            Rollback { floor, got } => ("rollback: seq \x01 <= floor \x02", *got, *floor),
            KeySetRollback { stored, got } => (
                "\x08rollback: \x01 < \x02",
                u64::from(*got),
                u64::from(*stored),
            ),
            KeySetConflict { version } => ("\x08conflict v\x01", u64::from(*version), 0),
            KeySetThreshold { threshold, signers } => (
                "\x08threshold \x01 of \x02",
                u64::from(*threshold),
                u(signers),
            ),
            WrongVendor { got } | WrongClass { got } => {
                f.write_str(if matches!(self, WrongVendor { .. }) {
                    "wrong vendor "
                } else {
                    "wrong class "
                })?;
                crate::keys::write_hex(f, got)?;
                ("", 0, 0)
            }
            ParameterNotSet { command, parameter } => (
                "condition \x03 unset parameter \x04",
                i(command),
                i(parameter),
            ),
            BadComponentIndex(c) => ("bad component \x01", *c, 0),
            ConditionFailed { command } => ("condition \x03 failed", i(command), 0),
            Aborted => ("aborted", 0, 0),
            SeveredDigestMismatch { key } => ("severed \x03\x06", i(key), 0),
            SeveredMissing { key } => ("severed \x03 missing", i(key), 0),
            UnboundSevered { key } => ("unbound \x03", i(key), 0),
            BadCve => ("bad CVE", 0, 0),
            BadSeverity => ("bad severity", 0, 0),
            PayloadTooLong { expected } => ("payload too long: max \x01", *expected, 0),
            PayloadTruncated { expected, got } => {
                ("payload truncated: \x01 of \x02", *got, *expected)
            }
            PayloadDigestMismatch => ("payload\x06", 0, 0),
            PayloadMissing => ("payload missing", 0, 0),
            NoPayloadExpectation => ("no payload digest", 0, 0),
            Expired { use_before, now } => ("expired: \x01 < now \x02", *use_before, *now),
            NoTrustedTime => ("no trusted time", 0, 0),
            BatteryTooLow {
                required_mwh,
                have_mwh,
            } => ("battery mWh \x01 < \x02", *have_mwh, *required_mwh),
            NotAuthorized => ("not authorised", 0, 0),
        };
        template(f, t, x, y)
    }
}

impl core::error::Error for Error {}
