//! Fuzzes the envelope decoder and the whole verifier on arbitrary bytes.
//! The first byte picks a scenario so one target covers the decoder alone,
//! the verifier with root keys, and the verifier with a stored key set.
#![no_main]

use keyway_suit::*;
use libfuzzer_sys::fuzz_target;

/// The SUIT draft's example P-256 key (public, from the draft's examples),
/// so that seeds from the draft reach past the signature check.
const DRAFT_KEY: [u8; 65] = [
    0x04, 0x84, 0x96, 0x81, 0x1a, 0xae, 0x0b, 0xaa, 0xab, 0xd2, 0x61, 0x57, 0x18, 0x9e, 0xec, 0xda, 0x26,
    0xbe, 0xaa, 0x8b, 0xf1, 0x1b, 0x6f, 0x3f, 0xe6, 0xe2, 0xb5, 0x65, 0x9c, 0x85, 0xdb, 0xc0, 0xad,
    0x3b, 0x1f, 0x2a, 0x4b, 0x6c, 0x09, 0x81, 0x31, 0xc0, 0xa3, 0x6d, 0xac, 0xd1, 0xd7, 0x8b, 0xd3,
    0x81, 0xdc, 0xdf, 0xb0, 0x9c, 0x05, 0x2d, 0xb3, 0x39, 0x91, 0xdb, 0x73, 0x38, 0xb4, 0xa8, 0x96,
];

/// The public root key of the seeds in `fuzz/seeds/` (raw Ed25519, written
/// with them by `scripts/fuzz-seeds.sh`; the private key is not kept), so
/// mutated Keyway envelopes reach past the signature check.
const SEED_ROOT: &[u8; 32] = include_bytes!("../seed-root.pub");
/// The root-signed key set v3 the seeds carry.
const SEED_KEYSET: &[u8] = include_bytes!("../seeds/keyset-v3.cbor");

fn verify_all(bytes: &[u8], anchors: &TrustAnchors, state: &DeviceState) {
    if let Ok(v) = verify_envelope(bytes, anchors, &DeviceIdentity::ANY, state) {
        if let Some(p) = v.payload {
            let mut pv = PayloadVerifier::new(&p);
            for c in v.integrated_payload().unwrap_or(&[]).chunks(64) {
                if pv.update(c).is_err() {
                    break;
                }
            }
            let _ = pv.finish();
        }
        let _ = v.manifest.policy.check(&PolicyInputs::default());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else { return };
    let key = PublicKey::from_raw(&DRAFT_KEY).expect("valid key");
    let anchors = TrustAnchors::new(&[key], 1).expect("anchors");
    let seed_root = TrustAnchors::new(&[PublicKey::from_raw(SEED_ROOT).expect("valid key")], 1).expect("anchors");
    match mode % 6 {
        0 => {
            if let Ok(env) = Envelope::decode(bytes) {
                let _ = env.text();
            }
        }
        1 => {
            if let Ok(notes) = ReleaseNotes::decode(bytes) {
                for c in notes.cves() {
                    assert!(is_cve_id(c.id));
                }
            }
        }
        2 => {
            let _ = KeySet::from_document(bytes, &anchors);
            let _ = KeySet::from_document(bytes, &seed_root);
        }
        3 => verify_all(bytes, &anchors, &DeviceState::fresh()),
        4 => verify_all(bytes, &seed_root, &DeviceState::fresh()),
        _ => {
            let stored = KeySet::from_document(SEED_KEYSET, &seed_root).expect("seed key set verifies");
            let state = DeviceState { sequence_floor: Some(1), keyset: Some(stored) };
            verify_all(bytes, &seed_root, &state);
            let _ = inspect_envelope(bytes);
        }
    }
});
