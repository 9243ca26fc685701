//! The TUF attacks against the hub's mirror, over a real HTTP server (a
//! std TcpListener thread serving the repository `keyway publish` wrote,
//! with per-path lies). Each test names the attack and asserts the typed
//! refusal; without the defence the refresh or download would succeed.

mod common;

use common::*;
use keyway_tuf::{MirrorError, TransportError};

#[test]
fn honest_repository_lists_targets_with_summaries_and_downloads() {
    let r = TestRepo::new(3);
    let s = &Served::new(&r);
    let got = s.refresh().unwrap();
    assert_eq!(got.targets.len(), 3);
    // The 7-day timestamp signed at t0.
    assert_eq!(got.timestamp_expires, day(7));
    let t = got
        .targets
        .iter()
        .find(|t| t.name == "deadbolt/r2.suit")
        .unwrap();
    let summary = t.summary.as_ref().unwrap();
    assert_eq!((summary.class.as_str(), summary.sequence), ("deadbolt", 2));
    let bytes = s.download("deadbolt/r2.suit").unwrap();
    assert_eq!(bytes, envelope(2, &[]));
    assert!(s.m.freshness(t0()).fresh);
    // Listing from the cache needs no network.
    assert_eq!(s.m.targets().unwrap().len(), 3);
    // One sync downloads only what the hub wants (here: what it lacks).
    let held = got.targets[0].sha256.clone();
    let synced = block(s.m.sync(s.server.source(), |t| t.sha256 != held, t0())).unwrap();
    assert_eq!(synced.listed.len(), 3);
    assert_eq!(synced.downloaded.len(), 2);
    assert!(synced.downloaded.iter().all(|(_, r)| r.is_ok()));
}

#[test]
fn rollback_to_an_older_timestamp_is_refused() {
    let mut r = TestRepo::new(1);
    let old = std::fs::read(r.meta("timestamp.json")).unwrap();
    r.add(2, t0());
    let s = &Served::synced(&r);
    s.server
        .answer("/metadata/timestamp.json", Answer::Bytes(old));
    let e = s.refresh().unwrap_err();
    assert!(
        matches!(&e, MirrorError::Rollback { role, trusted, offered }
            if role == "timestamp" && offered < trusted),
        "{e:?}"
    );
}

/// `s`'s next refresh is refused as a rollback of a role named `role…`.
fn assert_rollback(s: &Served, role: &str) {
    let e = s.refresh().unwrap_err();
    assert!(
        matches!(&e, MirrorError::Rollback { role: r, .. } if r.starts_with(role)),
        "{e:?}"
    );
}

#[test]
fn rollback_of_snapshot_via_a_newer_timestamp_is_refused() {
    let r = TestRepo::republished();
    let s = &Served::synced(&r);
    // A newer timestamp (the attacker holds the timestamp key) pinning the
    // older snapshot version 2.
    let f = Forge::of(&r);
    let ts = f.signed("timestamp.json")["version"].as_u64().unwrap();
    let old_snap = f.read("2.snapshot.json");
    s.server.answer(
        "/metadata/timestamp.json",
        Answer::Bytes(f.timestamp(ts + 1, 2, &old_snap, LATER)),
    );
    assert_rollback(s, "snapshot");
}

#[test]
fn rollback_of_targets_via_a_newer_snapshot_is_refused() {
    let r = TestRepo::republished();
    let s = &Served::synced(&r);
    // Snapshot and timestamp keys held: a newer snapshot naming the older
    // targets version 2, under a newer timestamp.
    let f = Forge::of(&r);
    let ts = f.signed("timestamp.json");
    let (tsv, sv) = (
        ts["version"].as_u64().unwrap(),
        ts["meta"]["snapshot.json"]["version"].as_u64().unwrap(),
    );
    let old_targets = f.read("2.targets.json");
    let snap = f.snapshot(sv + 1, 2, &old_targets, LATER);
    std::fs::write(f.meta.join(format!("{}.snapshot.json", sv + 1)), &snap).unwrap();
    std::fs::write(
        f.meta.join("timestamp.json"),
        f.timestamp(tsv + 1, sv + 1, &snap, LATER),
    )
    .unwrap();
    assert_rollback(s, "targets");
}

#[test]
fn freeze_with_an_expired_timestamp_is_refused_and_reported_stale() {
    let r = TestRepo::new(1);
    let s = &Served::synced(&r);
    // Eight days later the mirror still serves the same (7-day) timestamp.
    let later = day(8);
    match s.refresh_at(later) {
        Err(MirrorError::Expired { role, expired_at }) => {
            assert_eq!(role, "timestamp");
            assert!(expired_at < later);
        }
        other => panic!("expected an expired-timestamp refusal, got {other:?}"),
    }
    let f = s.m.freshness(later);
    assert!(!f.fresh, "a frozen view must be reported stale");
    assert_eq!(f.last_fresh_at, Some(t0()));
    assert!(
        f.describe(later).starts_with("stale"),
        "{}",
        f.describe(later)
    );
    // Staleness never removes what the hub holds.
    assert_eq!(s.m.targets().unwrap().len(), 1);
}

#[test]
fn mix_and_match_snapshot_naming_a_targets_version_the_timestamp_did_not_pin() {
    let r = TestRepo::republished();
    let s = &Served::new(&r);
    // A validly signed snapshot (snapshot key held) of the pinned version
    // but naming the older targets version 2: the timestamp pinned other
    // bytes.
    let f = Forge::of(&r);
    let sv = f.signed("timestamp.json")["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let mixed = f.snapshot(sv, 2, &f.read("2.targets.json"), LATER);
    s.server.answer(
        &format!("/metadata/{sv}.snapshot.json"),
        Answer::Bytes(mixed),
    );
    match s.refresh() {
        Err(MirrorError::Inconsistent { .. }) => {}
        other => panic!("expected a mix-and-match refusal, got {other:?}"),
    }
}

#[test]
fn mix_and_match_older_targets_served_under_the_pinned_name() {
    let r = TestRepo::republished();
    let s = &Served::new(&r);
    let f = Forge::of(&r);
    s.server.answer(
        "/metadata/3.targets.json",
        Answer::Bytes(f.read("2.targets.json")),
    );
    match s.refresh() {
        Err(MirrorError::Inconsistent { .. }) => {}
        other => panic!("expected a mix-and-match refusal, got {other:?}"),
    }
}

#[test]
fn endless_target_download_stops_at_the_signed_length() {
    let r = TestRepo::new(1);
    let (t, got) = Served::new(&r).download_first(Answer::Endless);
    match got {
        Err(MirrorError::Transport(TransportError::TooLong { limit, .. })) => {
            assert_eq!(limit, t.length, "the limit is the signed length");
        }
        other => panic!("expected the download to stop at the signed length, got {other:?}"),
    }
}

#[test]
fn endless_timestamp_stops_at_the_role_limit() {
    let r = TestRepo::new(1);
    let s = &Served::new(&r);
    s.server.answer("/metadata/timestamp.json", Answer::Endless);
    match s.refresh() {
        Err(MirrorError::Transport(TransportError::TooLong { limit, .. })) => {
            assert_eq!(limit, 16_384);
        }
        other => panic!("expected the timestamp download to stop at its limit, got {other:?}"),
    }
}

#[test]
fn timestamp_signed_by_a_foreign_key_is_refused() {
    let r = TestRepo::new(1);
    let s = &Served::new(&r);
    let f = Forge::of(&r);
    let mut signed = f.signed("timestamp.json");
    signed["version"] = (signed["version"].as_u64().unwrap() + 1).into();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    s.server.answer(
        "/metadata/timestamp.json",
        Answer::Bytes(sign_doc(&signed, &[&stranger])),
    );
    assert_eq!(signature_refusal(s.refresh()), ("timestamp".into(), 0, 1));
}

#[test]
fn targets_below_a_threshold_of_two_is_refused() {
    let r = TestRepo::new(1);
    // Root 2 requires two targets keys; the repository then publishes
    // targets signed by one.
    let f = Forge::of(&r);
    let root_key = f.key("root");
    let second = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let mut root = f.signed("1.root.json");
    root["version"] = 2.into();
    let id2 = key_id(&second);
    root["keys"][&id2] = serde_json::json!({"keytype": "ed25519", "scheme": "ed25519",
        "keyval": {"public": hex::encode(second.verifying_key().to_bytes())}});
    root["roles"]["targets"]["keyids"]
        .as_array_mut()
        .unwrap()
        .push(id2.into());
    root["roles"]["targets"]["threshold"] = 2.into();
    let doc = sign_doc(&root, &[&root_key]);
    std::fs::write(f.meta.join("2.root.json"), &doc).unwrap();
    std::fs::write(f.meta.join("root.json"), &doc).unwrap();
    let t = f.next_targets();
    f.publish(t, &[&f.key("targets")], LATER);
    let s = &Served::new(&r);
    assert_eq!(signature_refusal(s.refresh()), ("targets".into(), 1, 2));
    // Both keys sign: accepted.
    let t = f.next_targets();
    f.publish(t, &[&f.key("targets"), &second], LATER);
    s.refresh().unwrap();
}

#[test]
fn expired_targets_metadata_is_refused() {
    let r = TestRepo::new(1);
    let f = Forge::of(&r);
    let mut t = f.next_targets();
    t["expires"] = "2026-12-06T00:00:00Z".into();
    f.publish(t, &[&f.key("targets")], LATER);
    let s = &Served::new(&r);
    match s.refresh() {
        Err(MirrorError::Expired { role, .. }) => assert_eq!(role, "targets"),
        other => panic!("expected an expired-targets refusal, got {other:?}"),
    }
}

#[test]
fn target_whose_hash_does_not_match_is_refused() {
    let r = TestRepo::new(1);
    let mut evil = envelope(1, &[]);
    let last = evil.len() - 1;
    evil[last] ^= 1;
    match Served::new(&r).download_first(Answer::Bytes(evil)).1 {
        Err(MirrorError::Inconsistent { .. }) => {}
        other => panic!("expected a hash refusal, got {other:?}"),
    }
}

#[test]
fn rotated_root_is_followed_and_old_key_alone_is_refused() {
    let mut r = TestRepo::new(1);
    let f = Forge::of(&r);
    let old_root_key = f.key("root");
    assert_eq!(r.writer.rotate_root(t0()).unwrap(), 2);
    r.add(2, t0());
    let s = &Served::new(&r);
    let got = s.refresh().unwrap();
    assert_eq!(got.versions.root, 2);
    assert_eq!(got.targets.len(), 2);
    // A root 3 signed by the retired key alone (not by the root 2 key).
    let mut root = f.signed("2.root.json");
    root["version"] = 3.into();
    s.server.answer(
        "/metadata/3.root.json",
        Answer::Bytes(sign_doc(&root, &[&old_root_key])),
    );
    assert_eq!(signature_refusal(s.refresh()).0, "root");
}

#[test]
fn offline_directory_refresh_verifies_like_http() {
    let r = TestRepo::new(2);
    let (_d, m) = r.mirror();
    let got = block(m.refresh(keyway_tuf::Source::dir(&r.repo()), t0())).unwrap();
    assert_eq!(got.targets.len(), 2);
    // A flipped byte in the directory's targets metadata is refused.
    let f = Forge::of(&r);
    let name = format!("{}.targets.json", got.versions.targets);
    let mut b = f.read(&name);
    b[10] ^= 0x20;
    std::fs::write(f.meta.join(&name), b).unwrap();
    let (_d2, m2) = r.mirror();
    assert!(block(m2.refresh(keyway_tuf::Source::dir(&r.repo()), t0())).is_err());
}

#[test]
fn cache_keeps_only_the_current_role_files_over_many_syncs() {
    let mut r = TestRepo::new(1);
    let s = &Served::new(&r);
    for seq in 2..=6 {
        r.add(seq, t0());
        let synced = block(s.m.sync(s.server.source(), |_| true, t0())).unwrap();
        assert!(synced.downloaded.iter().all(|(_, r)| r.is_ok()));
    }
    let mut names: Vec<String> = std::fs::read_dir(s.m.dir().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // No versioned snapshot per refresh, no second copy of every envelope.
    assert_eq!(
        names,
        [
            "root.json",
            "root_history",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );
}
