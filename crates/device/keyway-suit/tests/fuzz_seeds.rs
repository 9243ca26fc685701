//! The envelope fuzz target's Keyway seeds (`fuzz/seeds/`, made by
//! `scripts/fuzz-seeds.sh`) verify as the target's modes use them, so
//! mutations start from envelopes that reach past every check. Seeds in an
//! older encoding (set-version as a bare array, CVEs under a text key) fail
//! here: the verifier refuses them at the manifest.

use std::path::PathBuf;

use keyway_suit::*;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../fuzz")
}

/// A seed without its mode byte, after checking that byte.
fn seed(name: &str, mode: u8) -> Vec<u8> {
    let bytes = std::fs::read(fuzz_dir().join("seeds").join(name))
        .unwrap_or_else(|e| panic!("fuzz/seeds/{name}: {e}"));
    assert_eq!(bytes.first(), Some(&mode), "{name}: mode byte");
    bytes[1..].to_vec()
}

#[test]
fn fuzz_seeds_verify_with_the_seed_root() {
    let root = std::fs::read(fuzz_dir().join("seed-root.pub")).unwrap();
    let anchors = TrustAnchors::new(&[PublicKey::from_raw(&root).unwrap()], 1).unwrap();
    let stored_doc = std::fs::read(fuzz_dir().join("seeds/keyset-v3.cbor")).unwrap();
    let stored = KeySet::from_document(&stored_doc, &anchors).unwrap();
    assert_eq!(stored.version, 3);
    assert_eq!(
        seed("m2-keyset.cbor", 2),
        stored_doc,
        "mode 2 seed is the stored key set"
    );
    let mut checked = 0;
    for kind in ["root", "keyset"] {
        let name = |m: u8| format!("m{m}-{kind}-release.suit");
        let env = seed(&name(4), 4);
        assert_eq!(seed(&name(0), 0), env);
        assert_eq!(seed(&name(5), 5), env);
        // Mode 0: the decoder alone.
        let decoded = Envelope::decode(&env).unwrap();
        assert!(decoded.text().is_some(), "{kind}: severed release notes");
        // Mode 4: the seed root, nothing stored.
        let v = verify_envelope(&env, &anchors, &DeviceIdentity::ANY, &DeviceState::fresh())
            .unwrap_or_else(|e| panic!("{kind} release, mode 4: {e}"));
        let notes = v.notes.expect("release notes");
        assert!(notes.cve_count() >= 1, "{kind}: CVEs under key -257");
        assert!(v.manifest.version.is_some(), "{kind}: set-version decodes");
        verify_payload(&v.payload.unwrap(), v.integrated_payload().unwrap(), 512).unwrap();
        checked += 1;
    }
    // Mode 5: the stored key set v3 and floor 1; the release signed under
    // it verifies.
    let state = DeviceState {
        sequence_floor: Some(1),
        keyset: Some(stored),
    };
    let env = seed("m5-keyset-release.suit", 5);
    verify_envelope(&env, &anchors, &DeviceIdentity::ANY, &state)
        .unwrap_or_else(|e| panic!("keyset release, mode 5: {e}"));
    checked += 1;
    println!("fuzz seeds: {checked} verifications");
}
