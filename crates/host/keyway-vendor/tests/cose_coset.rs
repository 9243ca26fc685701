//! A second COSE implementation checks Keyway's signatures: `coset`
//! (Google's COSE crate) parses every COSE_Sign1 of an authentication
//! wrapper and builds the Sig_structure itself (RFC 9052 §4.4), and
//! ed25519-dalek / p256 check the signature over it with the signer's
//! public key. Nothing of Keyway's decoder, verifier or Sig_structure code
//! is used (the wrapper is taken apart with ciborium), so a mistake the
//! encoder and the verifier share would show here. pycose does the same in
//! CI (`scripts/suit-interop.sh`); this runs with `cargo test`.
//!
//! Checked: the COSE_Sign1 tag (18), the protected `alg` (-8/-19 Ed25519,
//! -9/-7 P-256, as `SignOptions` asks), the unprotected `kid` (the signer's
//! key id), a detached payload that is the wrapper's SUIT_Digest, that
//! digest's SHA-256 over the bstr-wrapped manifest (or key set), and the
//! signature. Each check can fail: a flipped signature bit and a changed
//! manifest are refused by the same code
//! (`coset_refuses_a_flipped_signature_bit_and_a_changed_manifest`).

use ciborium::Value;
use coset::{CoseSign1, TaggedCborSerializable, iana};
use keyway_vendor::encode::{
    Ed25519Alg, EnvelopeBuilder, KeySetBuilder, KeySetParams, P256Alg, ReleaseVersion, SignOptions,
};
use keyway_vendor::keys::{Algorithm, SigningKey};
use sha2::{Digest, Sha256};

fn decode(bytes: &[u8]) -> Value {
    ciborium::from_reader(bytes).expect("CBOR")
}

fn member(map: &Value, key: i64) -> &Value {
    map.as_map()
        .expect("map")
        .iter()
        .find(|(k, _)| k.as_integer() == Some(key.into()))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("member {key}"))
}

fn bytes(v: &Value) -> &[u8] {
    v.as_bytes().expect("bstr")
}

/// `covered` as a bstr (what a SUIT digest covers).
fn bstr_wrapped(covered: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(&Value::Bytes(covered.to_vec()), &mut out).unwrap();
    out
}

/// The envelope's authentication wrapper and manifest (its member 3).
fn auth_and_manifest(envelope: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let v = decode(envelope);
    let Value::Tag(107, inner) = v else {
        panic!("SUIT_Envelope tag 107")
    };
    (
        bytes(member(&inner, 2)).to_vec(),
        bytes(member(&inner, 3)).to_vec(),
    )
}

/// The COSE algorithm `opts` puts on `key`'s signatures.
fn expected_alg(key: &SigningKey, opts: &SignOptions) -> iana::Algorithm {
    match (key.algorithm(), opts.ed25519_alg, opts.p256_alg) {
        (Algorithm::Ed25519, Ed25519Alg::EdDsa, _) => iana::Algorithm::EdDSA,
        (Algorithm::Ed25519, Ed25519Alg::Ed25519, _) => iana::Algorithm::Ed25519,
        (Algorithm::P256, _, P256Alg::Esp256) => iana::Algorithm::ESP256,
        (Algorithm::P256, _, P256Alg::Es256) => iana::Algorithm::ES256,
    }
}

/// The raw signature over `tbs` by `key`, checked outside Keyway.
fn signature_ok(key: &SigningKey, sig: &[u8], tbs: &[u8]) -> Result<(), String> {
    let raw = key.raw_public_key_bytes();
    match key.algorithm() {
        Algorithm::Ed25519 => {
            let pk = ed25519_dalek::VerifyingKey::from_bytes(raw.as_slice().try_into().unwrap())
                .map_err(|e| e.to_string())?;
            let s = ed25519_dalek::Signature::from_slice(sig).map_err(|e| e.to_string())?;
            pk.verify_strict(tbs, &s).map_err(|e| e.to_string())
        }
        Algorithm::P256 => {
            use p256::ecdsa::signature::Verifier;
            let pk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&raw).map_err(|e| e.to_string())?;
            let s = p256::ecdsa::Signature::from_slice(sig).map_err(|e| e.to_string())?;
            pk.verify(tbs, &s).map_err(|e| e.to_string())
        }
    }
}

/// Checks an authentication wrapper over `covered` signed by `keys` (in
/// order) with `opts`, with coset; the first failure, named.
fn check_auth(
    auth: &[u8],
    covered: &[u8],
    keys: &[SigningKey],
    opts: &SignOptions,
) -> Result<usize, String> {
    let wrapper = decode(auth);
    let items = wrapper.as_array().ok_or("auth wrapper is not an array")?;
    let (digest_bstr, blocks) = items.split_first().ok_or("empty auth wrapper")?;
    let digest_bytes = bytes(digest_bstr);
    // The SUIT_Digest: [-16 (SHA-256), bstr] over the bstr-wrapped item.
    let digest = decode(digest_bytes);
    let d = digest.as_array().ok_or("SUIT_Digest is not an array")?;
    if d.first().and_then(Value::as_integer) != Some((-16).into()) {
        return Err("SUIT_Digest algorithm is not SHA-256 (-16)".into());
    }
    if d.get(1).and_then(Value::as_bytes).map(Vec::as_slice)
        != Some(&Sha256::digest(bstr_wrapped(covered))[..])
    {
        return Err("SUIT_Digest does not match the bstr-wrapped manifest".into());
    }
    if blocks.len() != keys.len() {
        return Err(format!("{} signatures, {} keys", blocks.len(), keys.len()));
    }
    for (n, (block, key)) in blocks.iter().zip(keys).enumerate() {
        // COSE_Sign1, tagged 18 (the SUIT CDDL's COSE_Sign1_Tagged).
        let sign1 = CoseSign1::from_tagged_slice(bytes(block))
            .map_err(|e| format!("signature {n}: coset: {e:?}"))?;
        let alg = sign1.protected.header.alg.clone();
        if alg != Some(coset::Algorithm::Assigned(expected_alg(key, opts))) {
            return Err(format!("signature {n}: protected alg {alg:?}"));
        }
        if opts.include_kid && sign1.unprotected.key_id != key.key_id()[..] {
            return Err(format!("signature {n}: kid is not the signer's key id"));
        }
        if sign1.payload.is_some() {
            return Err(format!("signature {n}: payload not detached"));
        }
        sign1
            .verify_detached_signature(digest_bytes, b"", |sig, tbs| signature_ok(key, sig, tbs))
            .map_err(|e| format!("signature {n}: {e}"))?;
    }
    Ok(blocks.len())
}

fn release(keys: Vec<SigningKey>, sign_options: SignOptions) -> EnvelopeBuilder {
    EnvelopeBuilder {
        sequence: 9,
        version: ReleaseVersion::new(3, 1, 0),
        vendor_domain: "locks.example".into(),
        class_name: "deadbolt-2".into(),
        notes: Some("# 3.1.0\n\nCOSE interop.".into()),
        payload: (0..5_000u32).map(|i| (i * 13) as u8).collect(),
        keys,
        sign_options,
        ..EnvelopeBuilder::default()
    }
}

fn options(ed25519_alg: Ed25519Alg, p256_alg: P256Alg, include_kid: bool) -> SignOptions {
    SignOptions {
        ed25519_alg,
        p256_alg,
        include_kid,
    }
}

#[test]
fn coset_verifies_every_signature_keyway_writes() {
    let ed = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let p = SigningKey::generate(Algorithm::P256).unwrap();
    let mut checked = 0;
    for (ea, pa, kid) in [
        (Ed25519Alg::EdDsa, P256Alg::Esp256, true),
        (Ed25519Alg::Ed25519, P256Alg::Es256, true),
        (Ed25519Alg::EdDsa, P256Alg::Esp256, false),
    ] {
        let opts = options(ea, pa, kid);
        for keys in [
            vec![ed.clone()],
            vec![p.clone()],
            vec![ed.clone(), p.clone()],
        ] {
            let env = release(keys.clone(), opts).build().unwrap().envelope;
            let (auth, manifest) = auth_and_manifest(&env);
            checked += check_auth(&auth, &manifest, &keys, &opts)
                .unwrap_or_else(|e| panic!("{opts:?}, {} key(s): {e}", keys.len()));
        }
    }
    // A key set document: root signatures over the bstr-wrapped key set.
    let root = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let opts = SignOptions::default();
    let doc = KeySetBuilder {
        roots: vec![root.clone()],
        keyset: KeySetParams {
            version: 2,
            threshold: 1,
            signers: vec![ed.public_key()],
            revoked: vec![],
        },
        sign_options: opts,
    }
    .build()
    .unwrap();
    let d = decode(&doc);
    checked += check_auth(bytes(member(&d, 1)), bytes(member(&d, 2)), &[root], &opts).unwrap();
    println!("coset: {checked} COSE_Sign1 signatures verified");
    assert_eq!(checked, 3 * 4 + 1);
}

#[test]
fn coset_refuses_a_flipped_signature_bit_and_a_changed_manifest() {
    let ed = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let p = SigningKey::generate(Algorithm::P256).unwrap();
    let opts = SignOptions::default();
    for key in [ed, p] {
        let env = release(vec![key.clone()], opts).build().unwrap().envelope;
        let (auth, manifest) = auth_and_manifest(&env);
        check_auth(&auth, &manifest, std::slice::from_ref(&key), &opts).unwrap();

        // The last byte of the wrapper is the signature's last byte.
        let mut bad = auth.clone();
        *bad.last_mut().unwrap() ^= 1;
        let e = check_auth(&bad, &manifest, std::slice::from_ref(&key), &opts).unwrap_err();
        assert!(e.starts_with("signature 0"), "{e}");

        let mut changed = manifest.clone();
        *changed.last_mut().unwrap() ^= 1;
        let e = check_auth(&auth, &changed, std::slice::from_ref(&key), &opts).unwrap_err();
        assert!(e.contains("SUIT_Digest does not match"), "{e}");
    }
}
