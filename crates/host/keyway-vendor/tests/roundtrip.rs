//! Property: whatever the vendor encoder writes, the device verifier reads
//! back exactly (decode(encode(x)) == x), for random releases.

use keyway_suit as suit;
use keyway_vendor::encode::{
    Cve, EnvelopeBuilder, ReleaseVersion, Severity, class_uuid, vendor_uuid,
};
use keyway_vendor::keys::{Algorithm, SigningKey};
use proptest::prelude::*;
use std::sync::OnceLock;

fn keys() -> &'static [SigningKey; 3] {
    static K: OnceLock<[SigningKey; 3]> = OnceLock::new();
    K.get_or_init(|| {
        [
            SigningKey::generate(Algorithm::Ed25519).unwrap(),
            SigningKey::generate(Algorithm::P256).unwrap(),
            SigningKey::generate(Algorithm::Ed25519).unwrap(),
        ]
    })
}

fn severity(n: u8) -> Severity {
    [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ][usize::from(n % 4)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn what_the_encoder_writes_the_verifier_reads(
        sequence in 1u64..u64::MAX,
        v in (0u64..1000, 0u64..1000, 0u64..1000),
        notes in "[ -~\n]{1,300}",
        cve_ids in proptest::collection::btree_set((1999u32..2100, 1000u32..9_999_999), 0..6),
        severities in proptest::collection::vec(0u8..4, 6),
        payload_len in 1usize..5000,
        use_before in proptest::option::of(1u64..u64::MAX),
        battery in proptest::option::of(0u64..100_000),
        signers in 1usize..=3,
    ) {
        let cves: Vec<Cve> = cve_ids
            .iter()
            .zip(&severities)
            .map(|((y, n), s)| Cve::new(&format!("CVE-{y}-{n:04}"), severity(*s)).unwrap())
            .collect();
        let payload: Vec<u8> = (0..payload_len).map(|i| (i * 31 % 251) as u8).collect();
        let b = EnvelopeBuilder {
            sequence,
            version: ReleaseVersion::new(v.0, v.1, v.2),
            vendor_domain: "locks.example".into(),
            class_name: "deadbolt-2".into(),
            notes: Some(notes.clone()),
            cves: cves.clone(),
            use_before,
            min_battery_mwh: battery,
            payload: payload.clone(),
            keys: keys()[..signers].to_vec(),
            ..EnvelopeBuilder::default()
        };
        let env = b.build().unwrap().envelope;
        let anchors = suit::TrustAnchors::new(
            &keys().iter().map(|k| suit::PublicKey::from_raw(&k.raw_public_key_bytes()).unwrap()).collect::<Vec<_>>(),
            signers as u8,
        ).unwrap();
        let vu = vendor_uuid("locks.example");
        let id = suit::DeviceIdentity::new(vu, class_uuid(&vu, "deadbolt-2"));
        let got = suit::verify_envelope(&env, &anchors, &id, &suit::DeviceState::new(sequence - 1)).unwrap();
        prop_assert_eq!(got.sequence, sequence);
        prop_assert_eq!(got.signers.len(), signers);
        let ver = got.manifest.version.unwrap();
        prop_assert_eq!(ver.parts(), &[v.0 as i64, v.1 as i64, v.2 as i64][..]);
        let n = got.notes.unwrap();
        prop_assert_eq!(n.description, Some(notes.as_str()));
        let read: Vec<(String, &str)> = n.cves().map(|c| (c.id.to_string(), c.severity.as_str())).collect();
        let want: Vec<(String, &str)> = cves.iter().map(|c| (c.id.clone(), c.severity.as_str())).collect();
        prop_assert_eq!(read, want);
        let exp = got.payload.unwrap();
        prop_assert_eq!(exp.size, Some(payload_len as u64));
        prop_assert_eq!(got.integrated_payload(), Some(&payload[..]));
        suit::verify_payload(&exp, &payload, 64).unwrap();
        prop_assert_eq!(got.manifest.policy.use_before, use_before);
        prop_assert_eq!(got.manifest.policy.minimum_battery_mwh, battery);
        prop_assert!(got.manifest.policy.update_authorized.is_required());
    }
}
