//! Interoperability with the SUIT draft's own published examples
//! (draft-ietf-suit-manifest-37, `examples/`), signed with the draft's
//! P-256 example key. The files live in `../shared/data/suit` beside the
//! checkout; when they are absent these tests say so and pass vacuously.
//! Set `KEYWAY_SUIT_EXAMPLES` to a folder with more `exampleN.suit` files
//! (the draft also has examples 4 and 5) to check those too.

use std::path::PathBuf;

use keyway_suit::*;
use p256::pkcs8::DecodePublicKey;

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/data/suit");
    if p.join("example-public-key.pem").exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} is absent (the SUIT draft's examples live beside the checkout in CI)",
            p.display()
        );
        None
    }
}

fn anchors(dir: &std::path::Path) -> TrustAnchors {
    let pem = std::fs::read_to_string(dir.join("example-public-key.pem")).unwrap();
    let vk = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem).unwrap();
    let raw = vk.to_sec1_point(false);
    TrustAnchors::new(&[PublicKey::from_raw(raw.as_bytes()).unwrap()], 1).unwrap()
}

/// The vendor and class UUIDs the draft's examples use.
const VENDOR: [u8; 16] = [
    0xfa, 0x6b, 0x4a, 0x53, 0xd5, 0xad, 0x5f, 0xdf, 0xbe, 0x9d, 0xe6, 0x63, 0xe4, 0xd4, 0x1f, 0xfe,
];
const CLASS: [u8; 16] = [
    0x14, 0x92, 0xaf, 0x14, 0x25, 0x69, 0x5e, 0x48, 0xbf, 0x42, 0x9b, 0x2d, 0x51, 0xf2, 0xab, 0x45,
];

#[test]
fn published_examples_verify_and_decode() {
    let Some(dir) = shared() else { return };
    let key = anchors(&dir);
    let device = DeviceIdentity::new(VENDOR, CLASS);
    let expected_seq = [0u64, 1, 2, 3];
    for (n, seq) in expected_seq.iter().enumerate() {
        let bytes = std::fs::read(dir.join(format!("example{n}.suit"))).unwrap();
        let v = verify_envelope(&bytes, &key, &device, &DeviceState::fresh())
            .unwrap_or_else(|e| panic!("example{n}: {e}"));
        assert_eq!(v.sequence, *seq, "example{n} sequence");
        assert_eq!(v.signers.len(), 1);
        let c0 = &v.manifest.components[0];
        assert_eq!(c0.id, &[0x81, 0x41, 0x00], "example{n} component [h'00']");
        assert_eq!(c0.params.vendor_id, Some(&VENDOR));
        assert_eq!(c0.params.class_id, Some(&CLASS));
        let img = v.payload.expect("every example describes an image");
        assert_eq!(
            hex::encode(img.digest),
            "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"
        );
        assert_eq!(img.size, Some(34768));
    }
    // example1 fetches from a URI; example2 severs install and text.
    let b1 = std::fs::read(dir.join("example1.suit")).unwrap();
    let v1 = verify_envelope(&b1, &key, &device, &DeviceState::fresh()).unwrap();
    assert_eq!(v1.payload.unwrap().uri, Some("http://example.com/file.bin"));
    let b2 = std::fs::read(dir.join("example2.suit")).unwrap();
    let v2 = verify_envelope(&b2, &key, &device, &DeviceState::fresh()).unwrap();
    let notes = v2.notes.expect("example2 carries text");
    assert_eq!(notes.language, "en-US");
    assert!(
        notes
            .description
            .unwrap()
            .starts_with("## Example 2: Simultaneous Download")
    );
    assert_eq!(
        v2.payload.unwrap().uri,
        Some("http://example.com/very/long/path/to/file/file.bin")
    );
    assert_eq!(v2.manifest.reference_uri, Some("https://git.io/JJYoj"));
    // example3 chooses between two slots with try-each.
    let b3 = std::fs::read(dir.join("example3.suit")).unwrap();
    let mut slot1 = device;
    slot1.slot = Some(1);
    let v3 = verify_envelope(&b3, &key, &slot1, &DeviceState::fresh()).unwrap();
    let img = v3.payload.unwrap();
    assert_eq!(img.uri, Some("http://example.com/file2.bin"));
    assert_eq!(
        hex::encode(img.digest),
        "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff"
    );
    assert_eq!(img.size, Some(76834));
}

#[test]
fn published_examples_reject_rollback_and_other_devices() {
    let Some(dir) = shared() else { return };
    let bytes = std::fs::read(dir.join("example3.suit")).unwrap();
    let key = anchors(&dir);
    let err = verify_envelope(
        &bytes,
        &key,
        &DeviceIdentity::new(VENDOR, CLASS),
        &DeviceState::new(3),
    )
    .unwrap_err();
    assert_eq!(err, Error::Rollback { floor: 3, got: 3 });
    let mut other = CLASS;
    other[0] ^= 1;
    let err = verify_envelope(
        &bytes,
        &key,
        &DeviceIdentity::new(VENDOR, other),
        &DeviceState::fresh(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::WrongClass { .. }), "{err}");
    let mut tampered = bytes.clone();
    let last = tampered.len() - 20;
    tampered[last] ^= 0x01;
    assert!(
        verify_envelope(
            &tampered,
            &key,
            &DeviceIdentity::new(VENDOR, CLASS),
            &DeviceState::fresh()
        )
        .is_err()
    );
}

#[test]
fn other_draft_examples_verify_when_given() {
    let Some(dir) = std::env::var_os("KEYWAY_SUIT_EXAMPLES").map(PathBuf::from) else {
        eprintln!(
            "SKIP: set KEYWAY_SUIT_EXAMPLES to a folder of the draft's exampleN.suit files to check them all"
        );
        return;
    };
    let key_dir = shared().unwrap_or(dir.clone());
    let mut checked = 0;
    for n in 0..16 {
        if let Some((_, seq)) = verify_file_with(&dir, &key_dir, n) {
            assert_eq!(seq, u64::from(n));
            checked += 1;
        }
    }
    eprintln!("verified {checked} draft examples from {}", dir.display());
    assert!(checked > 0);

    // The in-place variant gives the same result, also when one `Verified`
    // is reused for envelopes with different numbers of components.
    let files: Vec<Vec<u8>> = (0..16)
        .filter_map(|n| std::fs::read(dir.join(format!("example{n}.suit"))).ok())
        .collect();
    let (key, device) = (anchors(&key_dir), DeviceIdentity::new(VENDOR, CLASS));
    let mut reused = Verified::empty();
    for bytes in files.iter().chain(files.iter().rev()) {
        let by_value = verify_envelope(bytes, &key, &device, &DeviceState::fresh()).unwrap();
        verify_envelope_into(&mut reused, bytes, &key, &device, &DeviceState::fresh()).unwrap();
        assert_eq!(reused, by_value);
    }
}

fn verify_file_with(
    dir: &std::path::Path,
    key_dir: &std::path::Path,
    n: u32,
) -> Option<(Vec<u8>, u64)> {
    let path = dir.join(format!("example{n}.suit"));
    let bytes = std::fs::read(&path).ok()?;
    let seq = verify_envelope(
        &bytes,
        &anchors(key_dir),
        &DeviceIdentity::new(VENDOR, CLASS),
        &DeviceState::fresh(),
    )
    .unwrap_or_else(|e| panic!("{} does not verify: {e}", path.display()))
    .sequence;
    Some((bytes, seq))
}
