//! Unit behaviour of the verifier's pieces that need no encoder: keys,
//! policy, payload streaming, release-note syntax, and decoders fed garbage.

use keyway_suit::*;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn expectation(payload: &[u8]) -> ImageExpectation<'static> {
    // The digest is borrowed (from the manifest, on a device); a test leaks it.
    let digest: &'static [u8; 32] = Box::leak(Box::new(Sha256::digest(payload).into()));
    ImageExpectation {
        digest,
        size: Some(payload.len() as u64),
        uri: Some("#firmware"),
    }
}

#[test]
fn payload_streams_in_chunks_and_matches() {
    let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    for chunk in [1, 63, 512, 4096, 10_000] {
        verify_payload(&expectation(&payload), &payload, chunk).unwrap();
    }
}

#[test]
fn truncated_payload_is_rejected() {
    let payload = vec![7u8; 1000];
    let err = verify_payload(&expectation(&payload), &payload[..999], 100).unwrap_err();
    assert_eq!(
        err,
        Error::PayloadTruncated {
            expected: 1000,
            got: 999
        }
    );
}

#[test]
fn endless_payload_is_cut_at_the_first_extra_byte() {
    let payload = vec![7u8; 1000];
    let exp = expectation(&payload);
    let mut v = PayloadVerifier::new(&exp);
    v.update(&payload).unwrap();
    assert_eq!(
        v.update(&[0]).unwrap_err(),
        Error::PayloadTooLong { expected: 1000 }
    );
    assert_eq!(v.received(), 1000);
}

#[test]
fn arbitrary_payload_of_the_right_size_is_rejected() {
    let payload = vec![7u8; 1000];
    let mut other = payload.clone();
    other[500] ^= 0x80;
    assert_eq!(
        verify_payload(&expectation(&payload), &other, 64).unwrap_err(),
        Error::PayloadDigestMismatch
    );
}

#[test]
fn policy_decides_from_inputs_only() {
    let p = PolicyConditions {
        use_before: Some(2_000),
        minimum_battery_mwh: Some(500),
        update_authorized: UpdateAuthorization::Required { priority: -1 },
    };
    let ok = PolicyInputs {
        now: Some(1_999),
        battery_mwh: 500,
        consent: true,
    };
    p.check(&ok).unwrap();
    assert_eq!(
        p.check(&PolicyInputs {
            now: Some(2_000),
            ..ok
        })
        .unwrap_err(),
        Error::Expired {
            use_before: 2_000,
            now: 2_000
        }
    );
    assert_eq!(
        p.check(&PolicyInputs { now: None, ..ok }).unwrap_err(),
        Error::NoTrustedTime
    );
    assert_eq!(
        p.check(&PolicyInputs {
            battery_mwh: 499,
            ..ok
        })
        .unwrap_err(),
        Error::BatteryTooLow {
            required_mwh: 500,
            have_mwh: 499
        }
    );
    assert_eq!(
        p.check(&PolicyInputs {
            consent: false,
            ..ok
        })
        .unwrap_err(),
        Error::NotAuthorized
    );
    // No conditions: nothing is required.
    PolicyConditions::default()
        .check(&PolicyInputs::default())
        .unwrap();
}

#[test]
fn key_ids_are_sha256_prefixes_and_display_short() {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let raw = sk.verifying_key().to_bytes();
    let key = PublicKey::from_raw(&raw).unwrap();
    let id = key.key_id();
    assert_eq!(id.0, Sha256::digest(raw)[..8]);
    let shown = id.to_string();
    assert_eq!(shown.chars().count(), 9, "{shown}");
    assert!(shown.ends_with('…'));
    assert_eq!(format!("{id:?}").len(), 16);
}

#[test]
fn invalid_public_keys_are_refused() {
    assert_eq!(
        PublicKey::from_raw(&[0u8; 31]).unwrap_err(),
        Error::InvalidKey
    );
    let mut not_on_curve = [0u8; 65];
    not_on_curve[0] = 4;
    not_on_curve[1] = 1;
    assert_eq!(
        PublicKey::from_raw(&not_on_curve).unwrap_err(),
        Error::InvalidKey
    );
    assert_eq!(
        PublicKey::from_raw(&[1u8; 65]).unwrap_err(),
        Error::InvalidKey
    );
}

#[test]
fn trust_anchors_refuse_impossible_thresholds_and_duplicates() {
    let k = PublicKey::from_raw(
        &ed25519_dalek::SigningKey::from_bytes(&[1; 32])
            .verifying_key()
            .to_bytes(),
    )
    .unwrap();
    assert!(matches!(
        TrustAnchors::new(&[k], 0),
        Err(Error::KeySetThreshold { .. })
    ));
    assert!(matches!(
        TrustAnchors::new(&[k], 2),
        Err(Error::KeySetThreshold { .. })
    ));
    assert!(matches!(
        TrustAnchors::new(&[k, k], 1),
        Err(Error::DuplicateSigner { .. })
    ));
    assert_eq!(TrustAnchors::new(&[k], 1).unwrap().threshold(), 1);
}

#[test]
fn cve_ids_and_severities_are_checked() {
    assert!(is_cve_id("CVE-2022-46480"));
    assert!(is_cve_id("CVE-2024-1234567"));
    assert!(!is_cve_id("CVE-22-46480"));
    assert!(!is_cve_id("CVE-2022-123"));
    assert!(!is_cve_id("cve-2022-46480"));
    assert!(!is_cve_id("CVE-2022-4648x"));
    assert_eq!(Severity::parse("critical").unwrap(), Severity::Critical);
    assert_eq!(Severity::parse("urgent").unwrap_err(), Error::BadSeverity);
    assert!(Severity::Critical > Severity::High);
}

#[test]
fn terse_errors_keep_their_data() {
    // Sentences are the host's (`keyway::check::describe`); the device's
    // Display is terse but still names what failed, with its data.
    let e = Error::BelowThreshold {
        valid: 0,
        required: 1,
        unknown: Some(KeyId([0x3f, 0x2a, 1, 2, 3, 4, 5, 6])),
        revoked: None,
        keyset: false,
        anonymous: 0,
    };
    assert_eq!(
        e.to_string(),
        "manifest signers 0 of 1; unknown key 3f2a0102…"
    );
    let anonymous = Error::BelowThreshold {
        valid: 0,
        required: 1,
        unknown: None,
        revoked: None,
        keyset: false,
        anonymous: 2,
    };
    assert_eq!(anonymous.to_string(), "manifest signers 0 of 1; 2 no kid");
    assert_eq!(
        Error::SeveredMissing { key: 20 }.to_string(),
        "severed 20 missing"
    );
    assert_eq!(
        Error::UnsupportedMember(15).to_string(),
        "unsupported member 15"
    );
    assert_eq!(
        Error::Rollback { floor: 7, got: 5 }.to_string(),
        "rollback: seq 5 <= floor 7"
    );
    assert_eq!(
        Error::BadSignature {
            key: KeyId([0x3f, 0x2a, 1, 2, 3, 4, 5, 6])
        }
        .to_string(),
        "bad signature by key 3f2a0102…"
    );
    assert_eq!(
        Error::KeySetRollback { stored: 3, got: 1 }.to_string(),
        "key-set rollback: 1 < 3"
    );
    assert_eq!(
        Error::PayloadTruncated {
            expected: 100_000,
            got: 99_990
        }
        .to_string(),
        "payload truncated: 99990 of 100000"
    );
    assert_eq!(
        Error::UnsupportedCommand(-3).to_string(),
        "unsupported command -3"
    );
    assert_eq!(
        Error::PayloadDigestMismatch.to_string(),
        "payload digest mismatch"
    );
    let m = Error::Malformed {
        part: Part::Manifest,
        offset: 12,
        expected: "map",
    }
    .to_string();
    assert!(
        m.contains("manifest") && m.contains("12") && m.contains("map"),
        "{m}"
    );
    let v = Error::WrongVendor { got: [0xab; 16] }.to_string();
    assert!(v.contains("vendor") && v.contains("abababab"), "{v}");
}

#[test]
fn huge_length_fields_are_refused_without_allocation() {
    // tag 107, map of 2^64-1 members.
    let bytes = [
        0xd8, 0x6b, 0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    assert!(matches!(
        Envelope::decode(&bytes),
        Err(Error::Malformed { .. })
    ));
    // tag 107, {2: bstr of 2^63 bytes}
    let bytes = [0xd8, 0x6b, 0xa1, 0x02, 0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0];
    assert!(matches!(
        Envelope::decode(&bytes),
        Err(Error::Malformed { .. })
    ));
    // An integrated payload claiming 2^64-1 bytes is located, not read.
    let bytes = [
        0xd8, 0x6b, 0xa1, 0x61, b'#', 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    assert!(matches!(
        Envelope::decode(&bytes),
        Err(Error::Missing { .. })
    ));
}

#[test]
fn empty_and_garbage_inputs_get_errors() {
    for bytes in [
        &[][..],
        &[0xff],
        &[0xd8, 0x6b],
        &[0xd8, 0x6c, 0xa0],
        b"hello world",
    ] {
        assert!(Envelope::decode(bytes).is_err());
    }
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let key = PublicKey::from_raw(&ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes()).unwrap();
        let anchors = TrustAnchors::new(&[key], 1).unwrap();
        let _ = Envelope::decode(&bytes);
        let _ = ReleaseNotes::decode(&bytes);
        let _ = KeySet::from_document(&bytes, &anchors);
        let _ = verify_envelope(&bytes, &anchors, &DeviceIdentity::ANY, &DeviceState::fresh());
    }

    #[test]
    fn mutated_draft_examples_never_panic_or_verify(pos in 0usize..923, bit in 0u8..8, n in 0u32..4) {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../../../shared/data/suit/example{n}.suit"));
        let Ok(original) = std::fs::read(&path) else { return Ok(()) };
        let mut bytes = original.clone();
        let pos = pos % bytes.len();
        let env = Envelope::decode(&original).unwrap();
        let start = env.manifest_wrapped.as_ptr() as usize - original.as_ptr() as usize;
        let in_manifest = (start..start + env.manifest_wrapped.len()).contains(&pos);
        bytes[pos] ^= 1 << bit;
        let pem = std::fs::read_to_string(path.with_file_name("example-public-key.pem")).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64_decode(&b64);
        let key = PublicKey::from_raw(&der[der.len() - 65..]).unwrap();
        let anchors = TrustAnchors::new(&[key], 1).unwrap();
        let r = verify_envelope(&bytes, &anchors, &DeviceIdentity::ANY, &DeviceState::fresh());
        // A flipped bit inside the signed manifest must never verify.
        if in_manifest {
            prop_assert!(r.is_err(), "bit {} of byte {} flipped in the manifest still verified", bit, pos);
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= u32::from(val(*c)) << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    out
}
