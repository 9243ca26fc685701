//! Identifiers and digests: the component ids, the vendor and class
//! UUIDs (UUIDv5 per the SUIT convention), SHA-256 and `SUIT_Digest`
//! encodings, and the release version `MAJOR.MINOR.PATCH`.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use super::EncodeError;
use crate::cbor::{Value, ValueExt};
use crate::labels as l;

/// Name (URI) of the integrated payload, the envelope's last member.
pub const PAYLOAD_KEY: &str = "#firmware";
/// The payload URI of a detached manifest when none is given: a relative
/// reference, resolved by whoever delivers the payload (a USB stick's
/// folder, the owner's app).
pub const DETACHED_PAYLOAD_URI: &str = "firmware.bin";

/// The single component's identifier, `[h'00']`.
pub fn component_id() -> Value {
    Value::Array(vec![Value::from(vec![0u8])])
}

/// A delta manifest's patch component, `['keyway-patch']`: the integrated
/// payload, a Keyway patch.
pub fn patch_component_id() -> Value {
    Value::Array(vec![Value::from(b"keyway-patch".to_vec())])
}

/// A delta manifest's base component, `['keyway-installed']`: the image the
/// lock runs (its active slot), which the patch applies to.
pub fn installed_component_id() -> Value {
    Value::Array(vec![Value::from(b"keyway-installed".to_vec())])
}

/// A release version `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ReleaseVersion {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
}

impl ReleaseVersion {
    /// A version from its three parts.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        ReleaseVersion {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for ReleaseVersion {
    type Err = EncodeError;

    /// Parses exactly three dot-separated decimal numbers without leading
    /// zeros, signs, whitespace or suffixes ("1.2.3" yes; "1.2", "v1.2.3",
    /// "1.02.3", "1.2.3-rc1" no).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || EncodeError::InvalidVersion(s.to_owned());
        let mut parts = [0u64; 3];
        let mut it = s.split('.');
        for part in &mut parts {
            let p = it.next().ok_or_else(bad)?;
            let ok = !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'));
            if !ok {
                return Err(bad());
            }
            *part = p.parse().map_err(|_| bad())?;
        }
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(ReleaseVersion::new(parts[0], parts[1], parts[2]))
    }
}

/// vendor-uuid = UUIDv5(DNS namespace, vendor domain).
pub fn vendor_uuid(vendor_domain: &str) -> [u8; 16] {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, vendor_domain.as_bytes()).into_bytes()
}

/// class-uuid = UUIDv5(vendor-uuid, class name).
pub fn class_uuid(vendor_uuid: &[u8; 16], class_name: &str) -> [u8; 16] {
    uuid::Uuid::new_v5(&uuid::Uuid::from_bytes(*vendor_uuid), class_name.as_bytes()).into_bytes()
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The encoded `SUIT_Digest` `[-16, h'SHA-256(bytes)']`.
pub fn suit_digest(bytes: &[u8]) -> Vec<u8> {
    suit_digest_of_hash(&sha256(bytes))
}

/// `bytes` encoded as a CBOR byte string (head included): what SUIT digests
/// cover for every embedded member (checked against the draft's examples).
pub fn bstr_wrapped(bytes: &[u8]) -> Vec<u8> {
    Value::from(bytes).to_bytes()
}

/// SHA-256 over `bytes` wrapped as a CBOR byte string.
pub fn wrapped_sha256(bytes: &[u8]) -> [u8; 32] {
    sha256(&bstr_wrapped(bytes))
}

/// The encoded `SUIT_Digest` for an already computed SHA-256 value.
pub fn suit_digest_of_hash(hash: &[u8]) -> Vec<u8> {
    Value::Array(vec![Value::from(l::COSE_ALG_SHA256), Value::from(hash)]).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;

    #[test]
    fn version_parsing() {
        assert_eq!("1.2.3".parse(), Ok(ReleaseVersion::new(1, 2, 3)));
        assert_eq!("0.0.0".parse(), Ok(ReleaseVersion::new(0, 0, 0)));
        assert_eq!(
            "10.20.300".parse::<ReleaseVersion>().unwrap().to_string(),
            "10.20.300"
        );
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "v1.2.3",
            "1.2.3-rc1",
            "1..3",
            "1.02.3",
            " 1.2.3",
            "1.2.+3",
            "1.2.-3",
            "1.2.x",
            "99999999999999999999.0.0",
        ] {
            assert_eq!(
                bad.parse::<ReleaseVersion>(),
                Err(EncodeError::InvalidVersion(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn uuids_follow_the_suit_convention() {
        // draft-ietf-suit-manifest examples: vendor ID = UUID5(DNS, "arm.com").
        let v = vendor_uuid("arm.com");
        assert_eq!(
            uuid::Uuid::from_bytes(v).to_string(),
            "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
        );
        // The class UUID is a v5 UUID in the vendor's namespace.
        let c = uuid::Uuid::from_bytes(class_uuid(&v, "deadbolt-v2"));
        assert_eq!(c.get_version_num(), 5);
        assert_eq!(
            c,
            uuid::Uuid::new_v5(&uuid::Uuid::from_bytes(v), b"deadbolt-v2")
        );
        assert_ne!(class_uuid(&v, "deadbolt-v2"), class_uuid(&v, "deadbolt-v3"));
        assert_ne!(
            class_uuid(&v, "deadbolt-v2"),
            class_uuid(&vendor_uuid("other.example"), "deadbolt-v2")
        );
    }
}
