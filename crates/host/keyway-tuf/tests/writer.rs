//! The repository writer behind `keyway publish`.

mod common;

use common::*;
use keyway_tuf::{PublishError, ReleaseSummary, RepoWriter};

#[test]
fn publishing_appends_targets_and_bumps_targets_snapshot_timestamp() {
    let mut r = TestRepo::new(1);
    let v1 = r.writer.versions();
    r.add(2, t0());
    let v2 = r.writer.versions();
    assert_eq!(
        (v2.targets, v2.snapshot, v2.timestamp, v2.root),
        (v1.targets + 1, v1.snapshot + 1, v1.timestamp + 1, v1.root)
    );
    // Every version stays on disk (consistent snapshots); the new targets
    // keeps the old release.
    assert!(r.meta(&format!("{}.targets.json", v1.targets)).exists());
    let t = Forge::of(&r).signed(&format!("{}.targets.json", v2.targets));
    assert!(t["targets"]["deadbolt/r1.suit"].is_object());
    assert!(t["targets"]["deadbolt/r2.suit"].is_object());
    // Reopening sees the same state.
    let w = RepoWriter::open(&r.repo(), &r.dir.path().join("keys"), Default::default()).unwrap();
    assert_eq!(w.versions(), v2);
}

#[test]
fn same_name_with_other_bytes_is_refused_and_same_bytes_is_a_no_op() {
    let mut r = TestRepo::new(1);
    let before = r.writer.versions();
    let again = r
        .writer
        .add_envelopes(&[("r1.suit".into(), envelope(1, &[]))], t0())
        .unwrap();
    assert!(!again[0].new);
    assert_eq!(r.writer.versions(), before, "a no-op publishes nothing");
    assert!(matches!(
        r.writer
            .add_envelopes(&[("r1.suit".into(), envelope(2, &[]))], t0()),
        Err(PublishError::TargetExists { .. })
    ));
    // Two different envelopes under one name in one batch.
    assert!(matches!(
        r.writer.add_envelopes(
            &[
                ("x.suit".into(), envelope(3, &[])),
                ("x.suit".into(), envelope(4, &[]))
            ],
            t0()
        ),
        Err(PublishError::TargetExists { .. })
    ));
    assert_eq!(r.writer.versions(), before);
}

#[test]
fn custom_field_carries_class_version_sequence_and_cves() {
    let mut r = TestRepo::new(0);
    let env = envelope(
        7,
        &[("CVE-2026-1234", "critical"), ("CVE-2026-5678", "low")],
    );
    r.writer
        .add_envelopes(&[("r7.suit".into(), env.clone())], t0())
        .unwrap();
    let (_d, m) = r.mirror();
    let got = block(m.refresh(keyway_tuf::Source::dir(&r.repo()), t0())).unwrap();
    let s = got.targets[0].summary.clone().unwrap();
    assert_eq!(s.class, "deadbolt");
    assert_eq!(s.version, "1.0.7");
    assert_eq!(s.sequence, 7);
    assert_eq!(s.delta_base, None);
    assert_eq!(
        s.cves
            .iter()
            .map(|c| (c.id.as_str(), c.severity.as_str()))
            .collect::<Vec<_>>(),
        [("CVE-2026-1234", "critical"), ("CVE-2026-5678", "low")]
    );
    s.check_against("deadbolt/r7.suit", &env).unwrap();
    // A summary that lies about the sequence is caught against the envelope.
    let mut lie = s.clone();
    lie.sequence = 99;
    let e = lie.check_against("deadbolt/r7.suit", &env).unwrap_err();
    assert_eq!(e.field, "sequence");
}

#[test]
fn delta_envelope_summary_names_its_base() {
    let base = vec![1u8; 4096];
    let mut new = base.clone();
    new[100] = 9;
    let key =
        keyway_vendor::keys::SigningKey::generate(keyway_vendor::keys::Algorithm::Ed25519).unwrap();
    let env = keyway_vendor::encode::EnvelopeBuilder {
        sequence: 3,
        version: keyway_vendor::encode::ReleaseVersion::new(1, 1, 0),
        vendor_domain: "locks.example".into(),
        class_name: "deadbolt".into(),
        notes: Some("delta".into()),
        payload: new,
        delta_from: Some(base.clone()),
        keys: vec![key],
        ..Default::default()
    }
    .build()
    .unwrap()
    .envelope;
    let s = ReleaseSummary::of_envelope(&env).unwrap();
    assert_eq!(s.delta_base.as_deref(), Some(sha256_hex(&base).as_str()));
}

#[test]
fn keys_of_another_repository_are_refused() {
    let r = TestRepo::new(1);
    let other = TestRepo::new(0);
    assert!(matches!(
        RepoWriter::open(
            &r.repo(),
            &other.dir.path().join("keys"),
            Default::default()
        ),
        Err(PublishError::WrongKey { .. })
    ));
    assert!(matches!(
        RepoWriter::init(
            &r.repo(),
            &other.dir.path().join("keys2"),
            Default::default(),
            t0()
        ),
        Err(PublishError::AlreadyInitialized { .. })
    ));
}

#[test]
fn rotation_keeps_the_retired_key_and_the_new_one_signs_next() {
    let mut r = TestRepo::new(1);
    r.writer.rotate_root(t0()).unwrap();
    r.writer.rotate_root(t0()).unwrap();
    let keys = r.dir.path().join("keys");
    assert!(keys.join("root.retired-v1.key").exists());
    assert!(keys.join("root.retired-v2.key").exists());
    assert!(!keys.join("root.next.key").exists());
    let w = RepoWriter::open(&r.repo(), &keys, Default::default()).unwrap();
    assert_eq!(w.versions().root, 3);
}

#[test]
fn mirror_futures_are_send_for_the_hub_s_runtime() {
    fn send<T: Send>(_: &T) {}
    let r = TestRepo::new(0);
    let (_d, m) = r.mirror();
    let f = m.refresh(keyway_tuf::Source::dir(&r.repo()), t0());
    send(&f);
    let g = m.download(keyway_tuf::Source::dir(&r.repo()), "x", t0());
    send(&g);
}
