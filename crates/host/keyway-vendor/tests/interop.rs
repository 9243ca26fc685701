//! Interop: envelopes and key sets written by this encoder, checked by the
//! device verifier (`keyway_suit`).
//! Both follow the SUIT draft: digests cover the bstr-wrapped items, and a
//! severed `23:` is a bare `SUIT_Digest`.

use keyway_suit as suit;
use keyway_vendor::encode::{EnvelopeBuilder, ReleaseVersion, class_uuid, vendor_uuid};
use keyway_vendor::keys::{Algorithm, SigningKey};

mod common;

use common::{device_key, keyset_signed_by};

#[test]

fn encoder_output_verifies_on_the_device() {
    let e = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let p = SigningKey::generate(Algorithm::P256).unwrap();
    let root = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let keyset = keyset_signed_by(&[&root], 1, 2, &[&e, &p], &[]);
    let anchors = suit::TrustAnchors::new(&[device_key(&root)], 1).unwrap();
    let ks = suit::KeySet::from_document(&keyset, &anchors).unwrap();
    assert_eq!(ks.version, 1);

    let b = EnvelopeBuilder {
        sequence: 3,
        version: ReleaseVersion::new(1, 0, 0),
        vendor_domain: "keyway.example".into(),
        class_name: "deadbolt".into(),
        notes: Some("# 1.0.0".into()),
        keyset: Some(keyset),
        payload: vec![0xa5; 1000],
        keys: vec![e, p],
        ..EnvelopeBuilder::default()
    };
    let built = b.build().unwrap();
    let v = vendor_uuid("keyway.example");
    let id = suit::DeviceIdentity::new(v, class_uuid(&v, "deadbolt"));
    let ok =
        suit::verify_envelope(&built.envelope, &anchors, &id, &suit::DeviceState::new(0)).unwrap();
    assert_eq!(ok.sequence, 3);
    assert_eq!(ok.integrated_payload(), Some(&b.payload[..]));
}
