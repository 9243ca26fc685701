//! Sentences for the device verifier's errors. The device's own `Display`
//! is terse to keep text out of the lock's image; the host says in full what
//! failed, from the data each [`keyway_suit::Error`] carries.

use keyway_suit::{Error, Limit, Part, SUPPORTED_ALGORITHMS};

/// The name of a part of an envelope, for sentences.
pub fn part_name(p: Part) -> &'static str {
    match p {
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
    }
}

/// The name of a bounded resource, for sentences.
pub fn limit_name(l: Limit) -> &'static str {
    match l {
        Limit::Signatures => "signatures",
        Limit::Keys => "keys",
        Limit::Revoked => "revoked keys",
        Limit::Components => "components",
        Limit::Nesting => "nested command sequences",
        Limit::Cves => "fixed CVEs",
        Limit::ProtectedHeader => "protected-header bytes",
        Limit::VersionParts => "version numbers",
        Limit::ComponentId => "component-identifier parts",
    }
}

fn uuid(b: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*b).hyphenated().to_string()
}

/// The name of a SUIT command (draft-ietf-suit-manifest-37 §8.4.9-8.4.11,
/// draft-ietf-suit-update-management, draft-ietf-suit-trust-domains), for
/// messages; `None` for a number no draft names.
pub fn command_name(c: i64) -> Option<&'static str> {
    Some(match c {
        1 => "condition-vendor-identifier",
        2 => "condition-class-identifier",
        3 => "condition-image-match",
        4 => "condition-use-before",
        5 => "condition-component-slot",
        6 => "condition-check-content",
        7 => "condition-dependency-integrity",
        8 => "condition-is-dependency",
        11 => "directive-process-dependency",
        12 => "directive-set-component-index",
        14 => "condition-abort",
        15 => "directive-try-each",
        18 => "directive-write",
        19 => "directive-set-parameters",
        20 => "directive-override-parameters",
        21 => "directive-fetch",
        22 => "directive-copy",
        23 => "directive-invoke",
        24 => "condition-device-identifier",
        25 => "condition-image-not-match",
        26 => "condition-minimum-battery",
        27 => "condition-update-authorized",
        28 => "condition-version",
        29 => "directive-wait",
        31 => "directive-swap",
        32 => "directive-run-sequence",
        33 => "directive-unlink",
        34 => "directive-override-multiple",
        35 => "directive-copy-params",
        -257 => "keyway-directive-apply-delta",
        c if c < -256 => "a custom command",
        _ => return None,
    })
}

/// The name of a SUIT manifest or envelope member, for messages.
pub fn member_name(key: i64) -> String {
    let name = match key {
        5 => "manifest-component-id",
        14 => "CoSWID",
        15 => "dependency-resolution",
        16 => "payload-fetch",
        18 => "candidate-verification",
        20 => "install",
        23 => "text",
        24 => "uninstall",
        _ => return format!("member {key}"),
    };
    format!("{name} ({key})")
}

fn command(c: i64) -> String {
    command_name(c).map_or(format!("{c}"), |n| format!("{c} ({n})"))
}

/// A verifier error as a sentence naming what failed, with its data.
pub fn describe(e: &Error) -> String {
    use Error::*;
    match e {
        Malformed {
            part,
            offset,
            expected,
        } => format!(
            "malformed {}: expected {expected} at byte {offset}",
            part_name(*part)
        ),
        TooMany { what, max } => {
            format!("too many {}: at most {max} accepted", limit_name(*what))
        }
        Missing { part, what } => format!("{} lacks {what}", part_name(*part)),
        TrailingBytes { count } => format!("{count} unexpected bytes after the envelope"),
        DuplicateKey { part, key } => format!("{} has key {key} twice", part_name(*part)),
        UnsupportedManifestVersion(v) => {
            format!("manifest version {v} is not supported (only 1)")
        }
        UnsupportedDigest(a) => {
            format!("digest algorithm {a} is not supported (only SHA-256, -16)")
        }
        UnsupportedAlgorithm(a) => {
            format!("COSE algorithm {a} is not supported by this build ({SUPPORTED_ALGORITHMS})")
        }
        UnsupportedAuthentication(t) => {
            let name = match *t {
                keyway_suit::labels::TAG_COSE_SIGN => "COSE_Sign",
                keyway_suit::labels::TAG_COSE_MAC0 => "COSE_Mac0",
                keyway_suit::labels::TAG_COSE_MAC => "COSE_Mac",
                _ => "tagged",
            };
            format!("{name} (tag {t}) authentication blocks are not supported (only COSE_Sign1)")
        }
        UnsupportedCommand(c) => format!(
            "SUIT command {} is unsupported by Keyway, so the manifest is refused",
            command(*c)
        ),
        UnsupportedParameter(p) => format!("SUIT parameter {p} is unsupported by Keyway"),
        UnsupportedMember(m) => format!(
            "manifest member {} is unsupported by Keyway, so the manifest is refused",
            member_name(*m)
        ),
        InvalidKey => "public key is not a valid curve point".into(),
        ManifestDigestMismatch => {
            "manifest digest mismatch: the manifest was modified after it was signed".into()
        }
        KeySetDigestMismatch => {
            "key-set digest mismatch: the key set was modified after it was signed".into()
        }
        BadSignature { key } => format!("signature by key {key} does not verify"),
        BelowThreshold {
            valid,
            required,
            unknown,
            revoked,
            keyset,
            anonymous,
        } => {
            let what = if *keyset { "key set" } else { "manifest" };
            let mut s = format!(
                "{what} has {valid} valid signature(s) from trusted keys, {required} required"
            );
            if let Some(k) = revoked {
                s += &format!("; signature by revoked key {k}");
            }
            if let Some(k) = unknown {
                s += &format!("; signature by unknown key {k}");
            }
            if *anonymous > 0 {
                s += &format!(
                    "; {anonymous} signature(s) without a key id verified under none of the trusted keys"
                );
            }
            s
        }
        DuplicateSigner { key } => {
            format!("key {key} signed more than once; a threshold counts distinct keys")
        }
        Rollback { floor, got } => {
            format!("rollback: sequence number {got} is not above the device's floor {floor}")
        }
        KeySetRollback { stored, got } => {
            format!("key-set rollback: version {got} is older than the stored version {stored}")
        }
        KeySetConflict { version } => {
            format!("key set version {version} differs from the stored key set of the same version")
        }
        KeySetThreshold { threshold, signers } => {
            format!("key set threshold {threshold} is impossible with {signers} signer(s)")
        }
        WrongVendor { got } => format!(
            "wrong vendor: manifest is for vendor {}, not this device's vendor",
            uuid(got)
        ),
        WrongClass { got } => format!(
            "wrong device class: manifest is for class {}, not this device's class",
            uuid(got)
        ),
        ParameterNotSet {
            command: c,
            parameter,
        } => format!(
            "SUIT command {} needs parameter {parameter}, which the manifest never sets, so it fails",
            command(*c)
        ),
        BadComponentIndex(i) => format!("component index {i} is out of range"),
        ConditionFailed { command } => format!("SUIT condition {command} failed on this device"),
        Aborted => "manifest aborted: a condition failed in every alternative".into(),
        SeveredDigestMismatch { key: 23 } => {
            "release notes do not match the manifest's text digest (mix-and-match)".into()
        }
        SeveredDigestMismatch { key } => format!(
            "severed {} does not match its digest in the manifest",
            member_name(*key)
        ),
        SeveredMissing { key } => format!(
            "the manifest binds a severed {} by digest, and the envelope lacks it",
            member_name(*key)
        ),
        UnboundSevered { key } => format!(
            "the envelope carries a severed {} that the manifest does not bind",
            member_name(*key)
        ),
        BadCve => "release notes: malformed CVE entry".into(),
        BadSeverity => "release notes: severity must be low, medium, high or critical".into(),
        PayloadTooLong { expected } => {
            format!("payload is longer than the manifest's image size of {expected} bytes")
        }
        PayloadTruncated { expected, got } => {
            format!("payload truncated: {got} of {expected} bytes")
        }
        PayloadDigestMismatch => {
            "payload digest mismatch: the payload is not the signed image".into()
        }
        PayloadMissing => "the manifest names an integrated payload that the envelope lacks".into(),
        NoPayloadExpectation => {
            "the manifest gives no image digest and size for the payload".into()
        }
        Expired { use_before, now } => {
            format!("expired: use-before {use_before} has passed (trusted time {now})")
        }
        NoTrustedTime => "the manifest has a use-before date and no trusted time was given".into(),
        BatteryTooLow {
            required_mwh,
            have_mwh,
        } => format!("battery too low: {have_mwh} mWh, the update needs {required_mwh} mWh"),
        NotAuthorized => "the owner has not authorised this update".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_suit::KeyId;

    #[test]
    fn errors_name_what_failed() {
        let e = Error::BelowThreshold {
            valid: 0,
            required: 1,
            unknown: Some(KeyId([0x3f, 0x2a, 1, 2, 3, 4, 5, 6])),
            anonymous: 0,
            revoked: None,
            keyset: false,
        };
        assert_eq!(
            describe(&e),
            "manifest has 0 valid signature(s) from trusted keys, 1 required; signature by unknown key 3f2a0102…"
        );
        assert_eq!(
            describe(&Error::Rollback { floor: 7, got: 5 }),
            "rollback: sequence number 5 is not above the device's floor 7"
        );
        assert_eq!(
            describe(&Error::WrongVendor { got: [0x12; 16] }),
            "wrong vendor: manifest is for vendor 12121212-1212-1212-1212-121212121212, not this device's vendor"
        );
        assert_eq!(
            describe(&Error::Malformed {
                part: Part::Authentication,
                offset: 3,
                expected: "map"
            }),
            "malformed authentication wrapper: expected map at byte 3"
        );
        assert_eq!(
            describe(&Error::PayloadTruncated {
                expected: 100_000,
                got: 99_990
            }),
            "payload truncated: 99990 of 100000 bytes"
        );
    }
}
