//! Shared test fixtures for the encoder's unit tests: a full builder, a
//! decoder, and an independent COSE_Sign1 check.

#![allow(dead_code)]

pub(super) use super::*;
pub(super) use crate::cbor::{Value, ValueExt};
pub(super) use crate::keys::{Algorithm, PublicKey, SigningKey};
pub(super) use crate::labels as l;
pub(super) use p256::ecdsa::signature::Verifier as _;
pub(super) use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
pub(super) use sha2::{Digest as _, Sha256};

pub(super) fn key(alg: Algorithm) -> SigningKey {
    SigningKey::generate(alg).unwrap()
}

pub(super) fn builder(keys: Vec<SigningKey>) -> EnvelopeBuilder {
    EnvelopeBuilder {
        sequence: 7,
        version: ReleaseVersion::new(1, 2, 3),
        vendor_domain: "keyway.example".into(),
        vendor_name: Some("Keyway Locks".into()),
        class_name: "deadbolt-v2".into(),
        notes: Some("# 1.2.3\n\nFixes.".into()),
        cves: vec![
            Cve::new("CVE-2024-12345", Severity::High).unwrap(),
            Cve::new("cve-2023-0001", Severity::Low).unwrap(),
        ],
        use_before: Some(1_900_000_000),
        min_battery_mwh: Some(500),
        keyset: None,
        placement: PayloadPlacement::Integrated,
        payload: (0..=255u8).cycle().take(3000).collect(),
        delta_from: None,
        keys,
        sign_options: SignOptions::default(),
    }
}

pub(super) fn decode(b: &[u8]) -> Value {
    Value::from_bytes(b).unwrap()
}

pub(super) fn bstr_item(v: &Value) -> Value {
    v.decode_bstr().expect("a byte string").unwrap()
}

pub(super) fn keys_of(v: &Value) -> Vec<Value> {
    v.as_map().unwrap().iter().map(|(k, _)| k.clone()).collect()
}

/// Checks one COSE_Sign1 block against an independent verifier.
pub(super) fn check_sign1(block: &[u8], signer: &SigningKey, expect_alg: i64, digest: &[u8]) {
    let v = decode(block);
    let (tag, inner) = v.as_tag().unwrap();
    assert_eq!(tag, 18);
    let parts = inner.as_array().unwrap();
    assert_eq!(parts.len(), 4);
    let protected = parts[0].as_bytes().unwrap();
    assert_eq!(
        decode(protected),
        Value::Map(vec![(Value::from(1), Value::from(expect_alg))])
    );
    let kid = parts[1].get_int(4).unwrap().as_bytes().unwrap();
    let raw = signer.raw_public_key_bytes();
    assert_eq!(kid, &Sha256::digest(&raw)[..8]);
    assert_eq!(parts[1].as_map().unwrap().len(), 1);
    assert_eq!(parts[2], Value::Null);
    let sig = parts[3].as_bytes().unwrap();
    assert_eq!(sig.len(), 64);

    // Sig_structure built by hand, not with `sig_structure`.
    fn bstr_header(len: usize) -> Vec<u8> {
        match len {
            0..=23 => vec![0x40 | len as u8],
            24..=255 => vec![0x58, len as u8],
            _ => panic!("test helper: unexpected length"),
        }
    }
    let mut tbs = vec![0x84, 0x6a];
    tbs.extend_from_slice(b"Signature1");
    tbs.extend(bstr_header(protected.len()));
    tbs.extend_from_slice(protected);
    tbs.push(0x40);
    tbs.extend(bstr_header(digest.len()));
    tbs.extend_from_slice(digest);
    assert_eq!(tbs, sig_structure(protected, digest));

    match signer.public_key() {
        PublicKey::Ed25519(_) => {
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&raw.try_into().unwrap()).unwrap();
            let s = ed25519_dalek::Signature::from_slice(sig).unwrap();
            vk.verify_strict(&tbs, &s).unwrap();
            assert!(vk.verify_strict(&tbs[1..], &s).is_err());
        }
        PublicKey::P256(_) => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&raw).unwrap();
            let s = p256::ecdsa::Signature::from_slice(sig).unwrap();
            vk.verify(&tbs, &s).unwrap();
            // ES256 = ECDSA over SHA-256(Sig_structure), r||s.
            vk.verify_prehash(&Sha256::digest(&tbs), &s).unwrap();
            assert!(vk.verify(&tbs[1..], &s).is_err());
        }
    }
}
