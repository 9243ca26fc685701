//! The offline bundle (a USB stick): written by `keyway publish --bundle`,
//! read by `keyway hub import`. Corrupt sticks are refused item by item,
//! with a typed reason, and the good items still import.

mod common;

use common::*;
use keyway_tuf::{MirrorError, Refusal};

/// A repository with `n` releases and its bundle in `DIR/stick`.
fn stick(n: u64) -> (TestRepo, std::path::PathBuf) {
    let r = TestRepo::new(n);
    let out = r.dir.path().join("stick");
    let w = r.writer.write_bundle(&out).unwrap();
    assert_eq!(w.targets as u64, n);
    (r, out)
}

/// Writes `r`'s bundle to the stick `name` in `r`'s directory.
fn write_stick(r: &TestRepo, name: &str) -> std::path::PathBuf {
    let s = r.dir.path().join(name);
    r.writer.write_bundle(&s).unwrap();
    s
}

fn target_file(stick: &std::path::Path, seq: u64) -> std::path::PathBuf {
    let sha = sha256_hex(&envelope(seq, &[]));
    stick.join(format!("targets/deadbolt/{sha}.r{seq}.suit"))
}

/// Imports the stick `s` into a fresh mirror of `r` at `now`; nothing may
/// be accepted. The report (its first refusal says why).
fn refused(
    r: &TestRepo,
    s: &std::path::Path,
    now: keyway_tuf::jiff::Timestamp,
) -> keyway_tuf::BundleReport {
    let (_d, m) = r.mirror();
    let rep = m.import_bundle(s, now);
    assert!(rep.accepted.is_empty(), "{:?}", rep.describe());
    rep
}

/// Asserts that the report `rep`'s first refusal matches the pattern;
/// the report's sentences when it does not.
macro_rules! assert_first_refusal {
    ($rep:expr, $p:pat $(if $guard:expr)?) => {
        assert!(
            matches!($rep.refused.first(), Some($p) $(if $guard)?),
            "{:?}",
            $rep.describe()
        )
    };
}

/// [`assert_first_refusal!`] of a metadata refusal whose error matches the
/// pattern.
macro_rules! assert_metadata_refused {
    ($rep:expr, $p:pat $(if $guard:expr)?) => {
        assert_first_refusal!($rep, Refusal::Metadata { error: $p, .. } $(if $guard)?)
    };
}

#[test]
fn bundle_imports_every_release_with_no_network() {
    let (r, s) = stick(3);
    let (_d, m) = r.mirror();
    let rep = m.import_bundle(&s, t0());
    assert!(rep.refused.is_empty(), "{:?}", rep.describe());
    assert_eq!(rep.accepted.len(), 3);
    assert!(!rep.staleness.is_stale());
    let a = rep
        .accepted
        .iter()
        .find(|a| a.name == "deadbolt/r3.suit")
        .unwrap();
    assert_eq!(a.envelope, envelope(3, &[]));
    assert_eq!(a.summary.as_ref().unwrap().sequence, 3);
    // The verified metadata is now the hub's: listing and freshness see it.
    assert_eq!(m.targets().unwrap().len(), 3);
    assert!(m.freshness(t0()).fresh);
}

#[test]
fn old_stick_with_expired_timestamp_is_reported_stale_and_still_imports() {
    let (r, s) = stick(2);
    let (_d, m) = r.mirror();
    // 40 days later: timestamp (7 d) and snapshot (30 d) have expired;
    // targets (365 d) and root (365 d) have not.
    let later = day(40);
    let rep = m.import_bundle(&s, later);
    assert!(rep.refused.is_empty(), "{:?}", rep.describe());
    assert_eq!(rep.accepted.len(), 2);
    assert!(rep.staleness.timestamp_expired_at.is_some());
    assert!(rep.staleness.snapshot_expired_at.is_some());
    assert!(rep.describe().iter().any(|l| l.contains("old")));
    assert!(
        !m.freshness(later).fresh,
        "an old stick does not make the hub fresh"
    );
}

#[test]
fn stick_whose_targets_metadata_expired_is_refused() {
    // Targets valid 100 days, root 365: at day 150 only the targets (and
    // the relaxed timestamp and snapshot) have expired.
    let dir = tempfile::tempdir().unwrap();
    let expiries = keyway_tuf::Expiries {
        targets: 100 * 86_400,
        ..Default::default()
    };
    let mut w = keyway_tuf::RepoWriter::init(
        &dir.path().join("repo"),
        &dir.path().join("keys"),
        expiries,
        t0(),
    )
    .unwrap();
    w.add_envelopes(&[("r1.suit".into(), envelope(1, &[]))], t0())
        .unwrap();
    let s = dir.path().join("stick");
    w.write_bundle(&s).unwrap();
    let hub = tempfile::tempdir().unwrap();
    let m = keyway_tuf::Mirror::init(hub.path(), &w.first_root().unwrap()).unwrap();
    let rep = m.import_bundle(&s, day(150));
    assert!(rep.accepted.is_empty());
    assert_metadata_refused!(rep, MirrorError::Expired { role, .. } if role == "targets");
    // Within the 100 days the same stick imports (stale timestamp only).
    let rep = m.import_bundle(&s, day(50));
    assert_eq!(rep.accepted.len(), 1, "{:?}", rep.describe());
}

#[test]
fn truncated_target_is_refused_and_the_others_import() {
    let (r, s) = stick(3);
    let f = target_file(&s, 2);
    let b = std::fs::read(&f).unwrap();
    std::fs::write(&f, &b[..b.len() / 2]).unwrap();
    let (_d, m) = r.mirror();
    let rep = m.import_bundle(&s, t0());
    assert_eq!(rep.accepted.len(), 2, "{:?}", rep.describe());
    match rep.refused.as_slice() {
        [
            Refusal::TargetLength {
                target,
                signed,
                found,
            },
        ] => {
            assert_eq!(target, "deadbolt/r2.suit");
            assert_eq!(*found, *signed / 2);
        }
        other => panic!("expected one length refusal, got {other:?}"),
    }
}

#[test]
fn flipped_byte_in_a_target_is_refused_and_the_others_import() {
    let (r, s) = stick(3);
    let f = target_file(&s, 1);
    let mut b = std::fs::read(&f).unwrap();
    b[100] ^= 0x01;
    std::fs::write(&f, &b).unwrap();
    let (_d, m) = r.mirror();
    let rep = m.import_bundle(&s, t0());
    assert_eq!(rep.accepted.len(), 2, "{:?}", rep.describe());
    assert!(matches!(
        rep.refused.as_slice(),
        [Refusal::TargetHash { target, .. }] if target == "deadbolt/r1.suit"
    ));
    assert_eq!(rep.refused[0].code(), "target_hash");
    assert_eq!(rep.refused[0].item(), "deadbolt/r1.suit");
}

#[test]
fn missing_target_file_is_refused_and_the_others_import() {
    let (r, s) = stick(2);
    std::fs::remove_file(target_file(&s, 2)).unwrap();
    let (_d, m) = r.mirror();
    let rep = m.import_bundle(&s, t0());
    assert_eq!(rep.accepted.len(), 1);
    assert!(matches!(
        rep.refused.as_slice(),
        [Refusal::TargetMissing { .. }]
    ));
}

#[test]
fn missing_root_version_is_refused() {
    let mut r = TestRepo::new(1);
    r.writer.rotate_root(t0()).unwrap();
    r.writer.rotate_root(t0()).unwrap();
    r.add(2, t0());
    let s = write_stick(&r, "stick");
    std::fs::remove_file(s.join("metadata/2.root.json")).unwrap();
    let rep = refused(&r, &s, t0());
    assert_first_refusal!(
        rep,
        Refusal::RootMissing {
            version: 2,
            later: 3
        }
    );
    // Every target the stick names is listed as not imported.
    assert_eq!(
        rep.refused
            .iter()
            .filter(|r| matches!(r, Refusal::Unverified { .. }))
            .count(),
        2
    );
}

#[test]
fn swapped_root_is_refused() {
    let mut r = TestRepo::new(1);
    r.writer.rotate_root(t0()).unwrap();
    let s = write_stick(&r, "stick");
    // Root 2 of another vendor's repository, put in its place.
    let mut other = TestRepo::new(0);
    other.writer.rotate_root(t0()).unwrap();
    std::fs::copy(other.meta("2.root.json"), s.join("metadata/2.root.json")).unwrap();
    let rep = refused(&r, &s, t0());
    assert_first_refusal!(
        rep,
        Refusal::RootRejected {
            version: 2,
            error: MirrorError::Signatures { .. }
        }
    );
}

#[test]
fn truncated_targets_metadata_is_refused() {
    let (r, s) = stick(2);
    let name = format!("{}.targets.json", r.writer.versions().targets);
    let p = s.join("metadata").join(&name);
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 10]).unwrap();
    let rep = refused(&r, &s, t0());
    assert_metadata_refused!(rep, MirrorError::Inconsistent { .. });
}

#[test]
fn stick_older_than_what_the_hub_holds_is_a_refused_rollback() {
    let (mut r, old) = stick(1);
    r.add(2, t0());
    let new = write_stick(&r, "stick2");
    let (_d, m) = r.mirror();
    assert!(m.import_bundle(&new, t0()).refused.is_empty());
    let rep = m.import_bundle(&old, t0());
    assert!(rep.accepted.is_empty());
    assert_metadata_refused!(rep, MirrorError::Rollback { role, .. } if role == "timestamp");
}

#[test]
fn timestamp_with_a_forged_signature_on_a_stick_is_refused() {
    let (r, s) = stick(1);
    let mut signed = signed_of(&std::fs::read(s.join("metadata/timestamp.json")).unwrap());
    signed["expires"] = "2099-01-01T00:00:00Z".into();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    std::fs::write(
        s.join("metadata/timestamp.json"),
        sign_doc(&signed, &[&stranger]),
    )
    .unwrap();
    let rep = refused(&r, &s, t0());
    assert_metadata_refused!(rep, MirrorError::Signatures { .. });
    let first = &rep.refused[0];
    assert_eq!(
        (first.code(), first.item().as_str()),
        ("metadata_refused", "metadata/timestamp.json")
    );
    assert_eq!(first.error().map(MirrorError::code), Some("signatures"));
}

#[test]
fn bundle_then_online_refresh_keeps_the_floor() {
    // A stick newer than the online mirror: the mirror's older timestamp
    // is then a rollback.
    let (mut r, _) = stick(1);
    let stale_repo = r.dir.path().join("stale");
    copy_tree(&r.repo(), &stale_repo);
    r.add(2, t0());
    let s = write_stick(&r, "stick2");
    let (_d, m) = r.mirror();
    assert!(m.import_bundle(&s, t0()).refused.is_empty());
    let server = Server::start(stale_repo);
    assert!(matches!(
        block(m.refresh(server.source(), t0())),
        Err(MirrorError::Rollback { .. })
    ));
}

#[test]
fn oversized_target_on_a_stick_is_refused_without_reading_past_its_signed_length() {
    let (r, s) = stick(2);
    let f = target_file(&s, 1);
    let signed = std::fs::metadata(&f).unwrap().len();
    // A 64 MiB file (sparse) where a small envelope belongs.
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_len(64 << 20).unwrap();
    let (_d, m) = r.mirror();
    let rep = m.import_bundle(&s, t0());
    assert_eq!(rep.accepted.len(), 1);
    match rep.refused.as_slice() {
        [
            Refusal::TargetLength {
                found, signed: sl, ..
            },
        ] => {
            assert_eq!(*sl, signed);
            assert_eq!(
                *found,
                signed + 1,
                "the reader stops one byte past the signed length"
            );
        }
        other => panic!("expected one length refusal, got {other:?}"),
    }
}

#[test]
fn endless_timestamp_on_a_stick_is_refused_at_its_limit() {
    let (r, s) = stick(1);
    std::fs::write(s.join("metadata/timestamp.json"), vec![b' '; 1 << 20]).unwrap();
    let rep = refused(&r, &s, t0());
    assert_metadata_refused!(
        rep,
        MirrorError::Transport(keyway_tuf::TransportError::TooLong { limit: 16_384, .. })
    );
}
