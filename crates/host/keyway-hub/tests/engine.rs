//! The hub's engine over scripted locks and a real store: intake, pairing,
//! updates and consent, pushes with progress, postponed installs, auto
//! consent, rollouts in waves, audit logs, freshness and lying locks.

mod support;

use keyway_hub::engine::{HubError, InstallReport, Phase};
use keyway_hub::model::*;
use keyway_hub::store::StoreError;
use support::*;

// ----- intake --------------------------------------------------------------

#[test]
fn ingest_imports_a_verified_release_with_notes_and_cves() {
    let w = World::new();
    let env = envelope(
        &w.vendor.key,
        CLASS,
        3,
        &[("CVE-2026-1234", "critical")],
        None,
    );
    let r = w.ingest_one("r3.suit", env.clone());
    assert_eq!(r.imported.len(), 1, "{r:?}");
    let rel = w.store.release(&sha(&env)).unwrap().unwrap();
    assert_eq!(rel.sequence, 3);
    assert_eq!(rel.version, "1.3.0");
    assert_eq!(rel.class, CLASS);
    assert!(rel.notes.contains("Release 1.3.0"));
    assert_eq!(
        rel.cves,
        vec![CveFix {
            id: "CVE-2026-1234".into(),
            severity: Severity::Critical
        }]
    );
    assert_eq!(rel.delta_base, None);
    assert_eq!(rel.envelope, env);
    assert!(w.saw("release_imported"));
}

#[test]
fn ingest_counts_a_release_already_held() {
    let w = World::new();
    let env = envelope(&w.vendor.key, CLASS, 2, &[], None);
    w.ingest_one("a", env.clone());
    let r = w.ingest_one("a", env);
    assert!(r.imported.is_empty());
    assert_eq!(r.already_held, vec!["a".to_string()]);
}

/// A compromised TUF repository (valid TUF metadata over a target it signed
/// itself) can at most withhold: the envelope is refused against the
/// model's anchors and nothing is stored.
#[test]
fn ingest_refuses_a_tuf_valid_but_badly_signed_envelope() {
    let w = World::new();
    let attacker = Vendor::new();
    let env = envelope(
        &attacker.key,
        CLASS,
        9,
        &[("CVE-2026-0001", "critical")],
        None,
    );
    let r = w.ingest_one("evil.suit", env.clone());
    assert!(r.imported.is_empty());
    assert_eq!(r.refused.len(), 1);
    match &r.refused[0].reason {
        keyway_hub::engine::IntakeRefusal::Verification { check, .. } => {
            assert_eq!(check.as_str(), "signatures")
        }
        other => panic!("refused for the wrong reason: {other:?}"),
    }
    assert!(w.store.release(&sha(&env)).unwrap().is_none());
    assert!(w.store.releases(None).unwrap().is_empty());
    assert!(w.saw("release_refused"));
}

#[test]
fn ingest_refuses_an_envelope_for_an_unknown_model() {
    let w = World::new();
    let env = envelope(&w.vendor.key, "other-model", 2, &[], None);
    let r = w.ingest_one("x", env);
    assert!(matches!(
        r.refused[0].reason,
        keyway_hub::engine::IntakeRefusal::NoModel { .. }
    ));
}

#[test]
fn ingest_refuses_a_payload_that_does_not_match_its_manifest() {
    let w = World::new();
    let mut env = envelope(&w.vendor.key, CLASS, 2, &[], None);
    let n = env.len();
    env[n - 10] ^= 0xff; // inside the integrated payload: the signature still verifies
    let r = w.ingest_one("x", env.clone());
    assert!(
        matches!(
            r.refused[0].reason,
            keyway_hub::engine::IntakeRefusal::Payload { .. }
        ),
        "{:?}",
        r.refused
    );
    assert!(w.store.release(&sha(&env)).unwrap().is_none());
}

#[test]
fn ingest_refuses_trailing_bytes_and_garbage() {
    let w = World::new();
    let mut env = envelope(&w.vendor.key, CLASS, 2, &[], None);
    env.extend_from_slice(b"extra");
    let r = w
        .hub
        .ingest(vec![
            incoming("tail", env),
            incoming("junk", b"not cbor".to_vec()),
        ])
        .unwrap();
    assert_eq!(r.refused.len(), 2, "{r:?}");
    assert!(matches!(
        r.refused[1].reason,
        keyway_hub::engine::IntakeRefusal::Malformed { .. }
    ));
    assert!(w.store.releases(None).unwrap().is_empty());
}

#[test]
fn ingest_takes_a_delta_with_its_base() {
    let w = World::new();
    let env = envelope(&w.vendor.key, CLASS, 3, &[], Some(2));
    let r = w.ingest_one("d", env.clone());
    assert_eq!(r.imported.len(), 1, "{r:?}");
    let rel = w.store.release(&sha(&env)).unwrap().unwrap();
    assert_eq!(rel.delta_base, Some(sha(&image(2))));
}

// ----- locks -----------------------------------------------------------------

#[test]
fn pairing_needs_the_presence_window() {
    let w = World::new();
    let mut l = FakeLock::new(1);
    l.presence_open = false;
    w.fleet.add("udp:10.0.0.2:1337", l);
    let rec = w.added_lock("front", "udp:10.0.0.2:1337");
    let e = w.hub.pair(rec.id, "86420").unwrap_err();
    assert_eq!(e.code(), "presence_window_closed");
    assert_eq!(w.hub.lock(rec.id).unwrap().device_key, None);
    // The owner presses the button: it pairs.
    w.fleet
        .with("udp:10.0.0.2:1337", |l| l.presence_open = true);
    let rec = w.hub.pair(rec.id, "86420").unwrap();
    assert_eq!(rec.device_key, Some([7; 32]));
    assert_eq!(rec.snapshot.as_ref().unwrap().version, "1.1.0");
    assert_eq!(rec.last_contact, Some(T0));
}

#[test]
fn pairing_with_a_wrong_setup_code_is_refused() {
    let w = World::new();
    w.fleet.add("a", FakeLock::new(1));
    let rec = w.added_lock("front", "a");
    assert_eq!(
        w.hub.pair(rec.id, "00000").unwrap_err().code(),
        "wrong_setup_code"
    );
    assert_eq!(w.hub.lock(rec.id).unwrap().device_key, None);
    // An unpaired lock is never asked anything but pairing.
    assert_eq!(w.hub.refresh(rec.id).unwrap_err().code(), "lock_not_paired");
}

// ----- updates and consent -----------------------------------------------------

#[test]
fn updates_list_only_upgrades_of_the_locks_model() {
    let w = World::new();
    let other = Vendor::for_class("other-model");
    w.hub.put_model(&other.model).unwrap();
    w.releases(&[(1, &[]), (2, &[]), (3, &[("CVE-2026-0042", "high")])]);
    w.hub
        .ingest(vec![incoming(
            "o",
            envelope(&other.key, "other-model", 5, &[], None),
        )])
        .unwrap();
    let id = w.paired_lock("a", 2);
    let ups = w.hub.updates(id).unwrap();
    assert_eq!(ups.len(), 1, "{ups:?}");
    assert_eq!(ups[0].sequence, 3);
    assert_eq!(ups[0].max_severity, Some(Severity::High));
    assert_eq!(ups[0].cves[0].id, "CVE-2026-0042");
    assert!(!ups[0].delta);
}

#[test]
fn delta_offered_first_when_the_lock_runs_its_base() {
    let w = World::new();
    let full = envelope(&w.vendor.key, CLASS, 3, &[], None);
    let delta = envelope(&w.vendor.key, CLASS, 3, &[], Some(2));
    let stale_delta = envelope(&w.vendor.key, CLASS, 3, &[], Some(1));
    w.hub
        .ingest(vec![
            incoming("f", full.clone()),
            incoming("d", delta.clone()),
            incoming("s", stale_delta.clone()),
        ])
        .unwrap();
    w.releases(&[(2, &[])]);
    let a = w.paired_lock("a", 2);
    let ups = w.hub.updates(a).unwrap();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].release, sha(&full));
    assert_eq!(ups[0].envelopes, vec![sha(&delta), sha(&full)]);
    // The push sends the delta.
    w.accept(a, sha(&full));
    assert_eq!(
        w.hub.install(a, sha(&full)).unwrap(),
        InstallReport::Running
    );
    assert_eq!(w.fleet.get("a").uploads, vec![sha(&delta)]);
    // A lock on another base never gets a delta for another image.
    let b = w.paired_lock("b", 0);
    let ups = w.hub.updates(b).unwrap();
    assert_eq!(ups[0].envelopes, vec![sha(&full)]);
}

/// A UI bug (or a forged request) cannot force an update: a consent for a
/// release that is not one of the lock's updates is refused, nothing is
/// recorded and nothing is sent.
#[test]
fn consent_for_a_release_that_does_not_apply_is_refused() {
    let w = World::new();
    let d = w.releases(&[(1, &[]), (2, &[])]);
    let id = w.paired_lock("a", 2);
    for old in &d {
        let e = w
            .hub
            .consent(id, *old, Decision::Accept, ConsentSource::Owner)
            .unwrap_err();
        assert_eq!(e.code(), "release_not_applicable");
    }
    let e = w
        .hub
        .consent(id, Digest([9; 32]), Decision::Accept, ConsentSource::Owner)
        .unwrap_err();
    assert_eq!(e.code(), "unknown_release");
    assert!(w.store.consents(id).unwrap().is_empty());
    assert!(w.fleet.get("a").uploads.is_empty());
}

#[test]
fn install_without_consent_is_refused_and_sends_nothing() {
    let (w, d, id) = World::offering();
    assert_eq!(
        w.hub.install(id, d[0]).unwrap_err().code(),
        "consent_required"
    );
    w.hub
        .consent(id, d[0], Decision::Decline, ConsentSource::Owner)
        .unwrap();
    assert_eq!(
        w.hub.install(id, d[0]).unwrap_err().code(),
        "consent_required"
    );
    let l = w.fleet.get("a");
    assert!(l.uploads.is_empty());
    assert_eq!(l.consents, 0);
}

#[test]
fn install_pushes_with_progress_and_runs() {
    let w = World::new();
    let (d, id) = w.accepted_upgrade(Script::Honest);
    assert_eq!(w.hub.install(id, d[1]).unwrap(), InstallReport::Running);
    let p = w.hub.progress_of(id).unwrap();
    assert_eq!(p.phase, Phase::Done);
    assert!(p.total > 0 && p.done == p.total, "{p:?}");
    let rec = w.hub.lock(id).unwrap();
    assert_eq!(rec.snapshot.unwrap().version, "1.3.0");
    assert!(w.hub.updates(id).unwrap().is_empty());
    let kinds = w.kinds();
    for k in [
        "consent_accepted",
        "push_started",
        "push_done",
        "install_running",
    ] {
        assert!(kinds.contains(&k.to_string()), "{k} missing from {kinds:?}");
    }
    // The consent was durable before the push started.
    let ev = w.events();
    let c = ev
        .iter()
        .position(|e| e.kind == "consent_accepted")
        .unwrap();
    let p = ev.iter().position(|e| e.kind == "push_started").unwrap();
    assert!(c < p);
}

#[test]
fn push_failure_and_unreachable_lock_are_typed() {
    let w = World::new();
    let (d, id) = w.consented_lock("a");
    w.fleet.with("a", |l| l.script = Script::FailPush);
    assert_eq!(w.hub.install(id, d[0]).unwrap_err().code(), "lock_refused");
    assert_eq!(w.hub.progress_of(id).unwrap().phase, Phase::Failed);
    w.fleet.with("a", |l| l.script = Script::Unreachable);
    assert_eq!(
        w.hub.install(id, d[0]).unwrap_err().code(),
        "lock_unreachable"
    );
    assert_eq!(w.fleet.get("a").consents, 0);
}

#[test]
fn postponed_install_shows_its_reason_and_completes_on_a_later_tick() {
    let w = World::new();
    let (d, id) = w.accepted_upgrade(Script::Postpone);
    assert_eq!(
        w.hub.install(id, d[1]).unwrap(),
        InstallReport::Postponed {
            reason: Postponement::BoltLocked
        }
    );
    let p = w.hub.progress_of(id).unwrap();
    assert_eq!(p.phase, Phase::Postponed);
    assert_eq!(p.postponed, Some(Postponement::BoltLocked));
    assert!(matches!(
        w.hub.lock(id).unwrap().snapshot.unwrap().update,
        UpdateState::Postponed {
            reason: Postponement::BoltLocked,
            ..
        }
    ));
    // Still postponed on the next tick.
    w.clock.advance(60);
    w.hub.tick().unwrap();
    assert!(!w.saw("update_confirmed"));
    // The owner withdraws the bolt; the next tick sees the update run.
    w.fleet.with("a", |l| {
        l.script = Script::Honest;
        l.unbolt()
    });
    w.clock.advance(60);
    let t = w.hub.tick().unwrap();
    assert!(t.rechecked >= 1);
    assert!(w.saw("update_confirmed"), "{:?}", w.kinds());
    assert_eq!(w.version(id), "1.3.0");
    assert_eq!(w.hub.progress_of(id).unwrap().phase, Phase::Done);
}

#[test]
fn auto_install_only_high_or_critical_fixes_when_opted_in() {
    let w = World::new();
    let d = w.releases(&[(2, &[]), (3, &[("CVE-2026-0003", "medium")])]);
    let id = w.paired_lock("a", 2);
    // Not opted in: a critical fix waits for the owner.
    let crit = w.releases(&[(4, &[("CVE-2026-0004", "critical")])]);
    w.hub.tick().unwrap();
    assert!(w.fleet.get("a").uploads.is_empty());
    assert!(w.store.consents(id).unwrap().is_empty());
    // Opted in: the critical fix installs, with a durable AutoCritical consent.
    w.hub.set_auto_install(id, true).unwrap();
    let t = w.hub.tick().unwrap();
    assert_eq!(t.auto_installs, 1);
    let c = w.store.consents(id).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].release, crit[0]);
    assert_eq!(c[0].source, ConsentSource::AutoCritical);
    assert_eq!(w.fleet.get("a").seq, 4);
    // A medium fix never installs by itself.
    let _ = d;
    auto_install_sends_nothing(3, &[("CVE-2026-0003", "medium")], false);
}

#[test]
fn a_declined_critical_fix_is_never_auto_installed() {
    auto_install_sends_nothing(4, &[("CVE-2026-0004", "critical")], true);
}

/// A lock running 1.2.0 with auto-install on, and release 1.<seq>.0 fixing
/// `cves` held (declined by the owner if `declined`): a tick sends nothing.
fn auto_install_sends_nothing(seq: u64, cves: &[(&str, &str)], declined: bool) {
    let w = World::new();
    let d = w.releases(&[(seq, cves)]);
    let id = w.paired_lock("a", 2);
    if declined {
        w.hub
            .consent(id, d[0], Decision::Decline, ConsentSource::Owner)
            .unwrap();
    }
    w.hub.set_auto_install(id, true).unwrap();
    w.hub.tick().unwrap();
    assert!(w.fleet.get("a").uploads.is_empty());
}

// ----- rollouts ------------------------------------------------------------------

#[test]
fn rollout_never_installs_without_consent() {
    let w = World::new();
    let d = w.releases(&[(3, &[])]);
    let ids: Vec<LockId> = (0..4).map(|i| w.paired_lock(&format!("l{i}"), 2)).collect();
    w.accept(ids[1], d[0]);
    let r = w.hub.create_rollout(d[0], 2, 50, None).unwrap();
    let r = w.hub.run_rollout(r.id).unwrap();
    assert_eq!(r.state, RolloutState::Done);
    assert_eq!(r.locks[0].1, RolloutOutcome::NeedsConsent);
    assert_eq!(r.locks[1].1, RolloutOutcome::Updated);
    assert_eq!(r.locks[2].1, RolloutOutcome::NeedsConsent);
    for i in [0, 2, 3] {
        let l = w.fleet.get(&format!("l{i}"));
        assert!(l.uploads.is_empty() && l.consents == 0);
    }
    assert_eq!(w.store.rollout(r.id).unwrap().unwrap(), r);
}

#[test]
fn rollout_stops_when_a_wave_exceeds_the_threshold() {
    let w = World::new();
    let (d, _) = w.consented_locks(9);
    // Wave 0 (l0..l2): one failure of three = 33% <= 40%: continue.
    // Wave 1 (l3..l5): two failures of three = 67% > 40%: stop.
    w.fleet.with("l0", |l| l.script = Script::FailPush);
    w.fleet.with("l3", |l| l.script = Script::Unreachable);
    w.fleet.with("l4", |l| l.script = Script::Refuse);
    let r = w.hub.create_rollout(d[0], 3, 40, None).unwrap();
    let r = w.hub.run_rollout(r.id).unwrap();
    assert_eq!(
        r.state,
        RolloutState::Stopped {
            wave: 1,
            failed: 2,
            of: 3
        }
    );
    for i in 6..9 {
        assert_eq!(r.locks[i].1, RolloutOutcome::Waiting);
        assert!(w.fleet.get(&format!("l{i}")).uploads.is_empty());
    }
    assert_eq!(r.locks[1].1, RolloutOutcome::Updated);
    assert!(w.saw("rollout_stopped"));
    // Running it again does nothing more.
    let again = w.hub.run_rollout(r.id).unwrap();
    assert_eq!(again, r);
}

#[test]
fn rollout_postponed_locks_are_not_failures() {
    let w = World::with_config(keyway_hub::engine::HubConfig {
        install_wait_ms: 1,
        concurrency: 3,
        ..Default::default()
    });
    let (d, _) = w.consented_locks(6);
    for i in 0..3 {
        w.fleet
            .with(&format!("l{i}"), |l| l.script = Script::Postpone);
    }
    let r = w.hub.create_rollout(d[0], 3, 0, None).unwrap();
    let r = w.hub.run_rollout(r.id).unwrap();
    assert_eq!(r.state, RolloutState::Done);
    assert!(matches!(r.locks[0].1, RolloutOutcome::Postponed { .. }));
    assert_eq!(r.locks[5].1, RolloutOutcome::Updated);
}

#[test]
fn rollout_refuses_a_lock_of_another_model_and_bad_settings() {
    let (w, d, a) = World::offering();
    assert_eq!(
        w.hub.create_rollout(d[0], 0, 10, None).unwrap_err().code(),
        "invalid_value"
    );
    assert_eq!(
        w.hub.create_rollout(d[0], 1, 101, None).unwrap_err().code(),
        "invalid_value"
    );
    assert_eq!(
        w.hub
            .create_rollout(d[0], 1, 10, Some(&[a, 999]))
            .unwrap_err()
            .code(),
        "invalid_value"
    );
    let delta = envelope(&w.vendor.key, CLASS, 3, &[], Some(2));
    w.ingest_one("d", delta.clone());
    assert_eq!(
        w.hub
            .create_rollout(sha(&delta), 1, 10, None)
            .unwrap_err()
            .code(),
        "invalid_value"
    );
    assert!(w.store.rollouts().unwrap().is_empty());
}

// ----- audit logs ----------------------------------------------------------------

#[test]
fn log_fetch_keeps_it_intact_then_alerts_on_a_gap() {
    let (w, id) = World::with_lock();
    assert!(matches!(
        w.hub.fetch_log(id).unwrap(),
        LogHealth::Intact { last_seq: 10, .. }
    ));
    // Continues: records 11..=20.
    w.fleet.with("a", |l| l.log_last = 20);
    assert!(matches!(
        w.hub.fetch_log(id).unwrap(),
        LogHealth::Intact { last_seq: 20, .. }
    ));
    // The ring wrapped: the lock keeps only 30..=40.
    w.fleet.with("a", |l| {
        l.log_first = 30;
        l.log_last = 40
    });
    assert_eq!(
        w.hub.fetch_log(id).unwrap(),
        LogHealth::Gap {
            held_to: 20,
            resumed_at: 30,
            at: T0
        }
    );
    let alerts: Vec<Event> = w
        .events()
        .into_iter()
        .filter(|e| e.kind == "log_gap")
        .collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].level, EventLevel::Alert);
    assert_eq!(w.store.logs(id).unwrap().len(), 3);
}

#[test]
fn a_log_that_does_not_verify_is_broken_and_alerts() {
    let (w, id) = World::with_lock();
    w.fleet.with("a", |l| l.script = Script::LogBroken);
    assert!(matches!(
        w.hub.fetch_log(id).unwrap(),
        LogHealth::Broken { .. }
    ));
    assert!(matches!(
        w.hub.lock(id).unwrap().log,
        LogHealth::Broken { .. }
    ));
    assert!(
        w.events()
            .iter()
            .any(|e| e.kind == "log_broken" && e.level == EventLevel::Alert)
    );
    assert!(w.store.logs(id).unwrap().is_empty());
}

#[test]
fn tick_fetches_logs_on_their_schedule() {
    let (w, id) = World::with_lock();
    assert_eq!(w.hub.tick().unwrap().logs_fetched, 1);
    w.clock.advance(10);
    assert_eq!(w.hub.tick().unwrap().logs_fetched, 0);
    w.clock.advance(3600);
    assert_eq!(w.hub.tick().unwrap().logs_fetched, 1);
    assert_eq!(
        w.store.logs(id).unwrap().len(),
        1,
        "an empty export is not kept"
    );
    w.fleet.with("a", |l| l.log_last = 12);
    w.clock.advance(3600);
    assert_eq!(w.hub.tick().unwrap().logs_fetched, 1);
    assert_eq!(w.store.logs(id).unwrap().len(), 2);
}

// ----- lying locks ---------------------------------------------------------------

#[test]
fn lock_claiming_it_runs_the_pushed_release_but_reporting_its_old_image_is_an_alert() {
    let w = World::new();
    let (d, id) = w.accepted_upgrade(Script::LieRunning);
    let e = w.hub.install(id, d[1]).unwrap_err();
    assert_eq!(e.code(), "lock_lied");
    assert!(
        w.events()
            .iter()
            .any(|e| e.kind == "lock_lied" && e.level == EventLevel::Alert)
    );
    // Not acted on: the hub does not record it as running, and still offers it.
    assert_eq!(w.version(id), "1.2.0");
    assert_eq!(w.hub.updates(id).unwrap().len(), 1);
    // In a rollout it is a failure, not an update.
    let r = w.hub.create_rollout(d[1], 1, 100, Some(&[id])).unwrap();
    let r = w.hub.run_rollout(r.id).unwrap();
    assert!(matches!(r.locks[0].1, RolloutOutcome::Failed { .. }));
}

#[test]
fn lock_whose_version_contradicts_its_image_is_an_alert_and_not_kept() {
    let w = World::new();
    w.releases(&[(2, &[])]);
    let id = w.paired_lock("a", 2);
    let before = w.hub.lock(id).unwrap().snapshot;
    w.fleet.with("a", |l| l.script = Script::LieVersion);
    assert_eq!(w.hub.refresh(id).unwrap_err().code(), "lock_lied");
    assert_eq!(w.hub.lock(id).unwrap().snapshot, before);
    assert!(w.events().iter().any(|e| e.kind == "lock_lied"));
}

#[test]
fn lock_going_back_to_an_older_confirmed_image_is_a_lie() {
    let w = World::new();
    w.releases(&[(2, &[]), (3, &[])]);
    let id = w.paired_lock("a", 3);
    w.fleet.with("a", |l| l.seq = 2);
    assert_eq!(w.hub.refresh(id).unwrap_err().code(), "lock_lied");
    assert_eq!(w.version(id), "1.3.0");
}

#[test]
fn log_going_backwards_is_a_lie_and_not_kept() {
    let (w, id) = World::with_lock();
    w.hub.fetch_log(id).unwrap();
    w.fleet.with("a", |l| l.script = Script::LieLogBackwards);
    assert_eq!(w.hub.fetch_log(id).unwrap_err().code(), "lock_lied");
    assert_eq!(w.store.logs(id).unwrap().len(), 1);
    assert!(matches!(
        w.hub.lock(id).unwrap().log,
        LogHealth::Intact { last_seq: 10, .. }
    ));
}

// ----- freshness -----------------------------------------------------------------

#[test]
fn a_stale_view_warns_but_never_blocks_an_install() {
    let (w, d, id) = World::offering();
    w.hub
        .record_tuf_fresh("https://vendor.example/tuf", 7, T0 + 7 * 86400)
        .unwrap();
    assert_eq!(w.hub.freshness().unwrap().status.code(), "fresh");
    w.clock.advance(2 * 86400);
    w.hub
        .record_tuf_error("https://vendor.example/tuf", "connection refused")
        .unwrap();
    let f = w.hub.freshness().unwrap();
    assert_eq!(f.status.code(), "stale");
    assert!(f.warning);
    assert!(
        w.events()
            .iter()
            .any(|e| e.kind == "tuf_stale" && e.level == EventLevel::Warning)
    );
    // Installing what the hub holds still works.
    w.accept(id, d[0]);
    assert_eq!(w.hub.install(id, d[0]).unwrap(), InstallReport::Running);
    // Expired after the timestamp's expiry.
    w.clock.advance(6 * 86400);
    assert_eq!(w.hub.freshness().unwrap().status.code(), "expired");
    w.hub.tick().unwrap();
    assert!(w.saw("tuf_expired"));
}

#[test]
fn unknown_ids_are_typed_errors() {
    let w = World::new();
    assert_eq!(w.hub.lock(42).unwrap_err().code(), "unknown_lock");
    assert_eq!(w.hub.rollout(42).unwrap_err().code(), "unknown_rollout");
    assert!(matches!(w.hub.updates(42), Err(HubError::NoLock(42))));
}

#[test]
fn an_install_without_an_outcome_in_time_is_rechecked_on_ticks() {
    let w = World::new();
    let (d, id) = w.accepted_upgrade(Script::TimeOut);
    assert_eq!(w.hub.install(id, d[1]).unwrap(), InstallReport::Pending);
    assert_eq!(w.hub.progress_of(id).unwrap().phase, Phase::Installing);
    // In a rollout, no outcome in time counts as a failure (hawkBit's rule).
    let r = w.hub.create_rollout(d[1], 1, 100, Some(&[id])).unwrap();
    let r = w.hub.run_rollout(r.id).unwrap();
    assert!(matches!(r.locks[0].1, RolloutOutcome::Failed { .. }));
    // The lock finishes; the next tick sees it.
    w.fleet.with("a", |l| {
        l.script = Script::Honest;
        l.settle()
    });
    w.clock.advance(30);
    w.hub.tick().unwrap();
    assert!(w.saw("update_confirmed"));
    assert_eq!(w.version(id), "1.3.0");
}

#[test]
fn removing_a_lock_forgets_it_and_says_so() {
    let (w, id) = World::with_lock();
    w.hub.fetch_log(id).unwrap();
    w.hub.remove_lock(id).unwrap();
    assert_eq!(w.hub.lock(id).unwrap_err().code(), "unknown_lock");
    assert!(w.store.logs(id).unwrap().is_empty());
    assert!(w.saw("lock_removed"));
    assert_eq!(w.hub.remove_lock(id).unwrap_err().code(), "unknown_lock");
}

#[test]
fn a_link_that_sends_its_whole_ring_each_time_is_kept_once_per_new_record() {
    let (w, id) = World::with_lock();
    w.fleet.with("a", |l| l.whole_ring = true);
    w.hub.fetch_log(id).unwrap();
    assert!(matches!(
        w.hub.fetch_log(id).unwrap(),
        LogHealth::Intact { last_seq: 10, .. }
    ));
    assert_eq!(
        w.store.logs(id).unwrap().len(),
        1,
        "nothing new: not kept again"
    );
    w.fleet.with("a", |l| l.log_last = 11);
    w.hub.fetch_log(id).unwrap();
    assert_eq!(w.store.logs(id).unwrap().len(), 2);
    assert!(!w.saw("log_gap"));
}

/// A hub that stops mid-rollout (after wave 0 was saved) resumes at wave 1
/// over the same store, and the locks of wave 0 are not pushed again.
#[test]
fn a_rollout_resumes_after_a_restart_at_the_saved_wave() {
    let w = World::new();
    let (d, ids) = w.consented_locks(4);
    let mut r = w.hub.create_rollout(d[0], 2, 50, None).unwrap();
    // Wave 0 went, then the hub stopped: what it saved.
    for (i, id) in ids.iter().take(2).enumerate() {
        assert_eq!(w.hub.install(*id, d[0]).unwrap(), InstallReport::Running);
        r.locks[i].1 = RolloutOutcome::Updated;
    }
    r.state = RolloutState::Running { wave: 1 };
    w.store.save_rollout(&r).unwrap();
    // A new hub over the same store.
    let hub = keyway_hub::engine::Hub::new(
        w.store.clone(),
        std::sync::Arc::new(w.fleet.clone()),
        w.clock.clone(),
        keyway_hub::engine::HubConfig::default(),
    );
    let done = hub.resume_rollouts().unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].state, RolloutState::Done);
    assert!(
        done[0]
            .locks
            .iter()
            .all(|(_, o)| *o == RolloutOutcome::Updated)
    );
    assert_eq!(
        w.fleet.get("l0").uploads.len(),
        1,
        "wave 0 is not pushed again"
    );
    assert_eq!(w.fleet.get("l3").uploads.len(), 1);
    assert!(hub.resume_rollouts().unwrap().is_empty());
}

/// Two runs of one rollout at once (the API's background run and a resume)
/// push each lock once.
#[test]
fn a_rollout_is_not_run_twice_at_once() {
    let w = World::new();
    let d = w.releases(&[(3, &[])]);
    let ids: Vec<LockId> = (0..6).map(|i| w.paired_lock(&format!("l{i}"), 2)).collect();
    for (i, id) in ids.iter().enumerate() {
        w.accept(*id, d[0]);
        w.fleet.with(&format!("l{i}"), |l| l.upload_ms = 20);
    }
    let r = w.hub.create_rollout(d[0], 2, 50, None).unwrap();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| w.hub.run_rollout(r.id).unwrap());
        }
    });
    let r = w.hub.run_rollout(r.id).unwrap();
    assert_eq!(r.state, RolloutState::Done);
    for i in 0..6 {
        assert_eq!(w.fleet.get(&format!("l{i}")).uploads.len(), 1, "lock l{i}");
    }
    let kinds = w.kinds();
    let waves = kinds.iter().filter(|k| *k == "rollout_wave").count();
    assert_eq!(waves, 3, "each wave went once");
    assert_eq!(kinds.iter().filter(|k| *k == "rollout_done").count(), 1);
}

fn keyset_doc(
    root: &keyway_vendor::keys::SigningKey,
    signer: &keyway_vendor::keys::SigningKey,
    version: u64,
) -> Vec<u8> {
    keyway_vendor::encode::KeySetBuilder {
        roots: vec![root.clone()],
        keyset: keyway_vendor::encode::KeySetParams {
            version,
            threshold: 1,
            signers: vec![signer.public_key()],
            revoked: Vec::new(),
        },
        sign_options: Default::default(),
    }
    .build()
    .unwrap()
}

fn signed_by(key: &keyway_vendor::keys::SigningKey, seq: u64, keyset: Option<Vec<u8>>) -> Vec<u8> {
    keyway_vendor::encode::EnvelopeBuilder {
        sequence: seq,
        version: format!("1.{seq}.0").parse().unwrap(),
        vendor_domain: DOMAIN.into(),
        class_name: CLASS.into(),
        notes: Some("delegated".into()),
        payload: image(seq),
        keyset,
        keys: vec![key.clone()],
        ..Default::default()
    }
    .build()
    .unwrap()
    .envelope
}

/// A release signed by a delegated key need not carry the key set (a lock
/// stored it from an earlier release): the hub verifies it as such a lock
/// would, with the newest root-signed key set it has taken in. Without a
/// key set it holds, the same envelope is refused (no root key signed it),
/// and a key set signed by another root is never used.
#[test]
fn a_release_signed_by_a_delegated_key_verifies_with_the_key_set_taken_in_earlier() {
    use keyway_vendor::keys::{Algorithm, SigningKey};
    let w = World::new();
    let delegate = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let ks = keyset_doc(&w.vendor.key, &delegate, 1);
    let bare = signed_by(&delegate, 5, None);
    // Alone, the bare one does not verify.
    let r = w.ingest_one("bare", bare.clone());
    assert_eq!(r.refused.len(), 1, "{r:?}");
    // After the release that carries the key set (an earlier import), it does.
    let r = w
        .hub
        .ingest(vec![incoming(
            "carrier",
            signed_by(&delegate, 4, Some(ks.clone())),
        )])
        .unwrap();
    assert_eq!(r.imported.len(), 1, "{r:?}");
    let r = w.ingest_one("bare", bare);
    assert_eq!(r.imported.len(), 1, "{r:?}");
    // In one batch, the carrier first.
    let w2 = World::new();
    let ks2 = keyset_doc(&w2.vendor.key, &delegate, 1);
    let r = w2
        .hub
        .ingest(vec![
            incoming("carrier", signed_by(&delegate, 4, Some(ks2))),
            incoming("bare", signed_by(&delegate, 5, None)),
        ])
        .unwrap();
    assert_eq!(r.imported.len(), 2, "{r:?}");
    // A key set signed by another root is never used.
    let attacker = Vendor::new();
    let forged = keyset_doc(&attacker.key, &attacker.key, 9);
    let r = w
        .hub
        .ingest(vec![
            incoming("forged-ks", signed_by(&attacker.key, 6, Some(forged))),
            incoming("evil", signed_by(&attacker.key, 7, None)),
        ])
        .unwrap();
    assert_eq!(r.refused.len(), 2, "{r:?}");
}

// ----- retries of accepted updates (review 14, item 1) ----------------------

#[test]
fn an_accepted_consent_whose_push_failed_is_retried_on_a_later_tick() {
    let w = World::new();
    let (d, id) = w.consented_lock("a");
    w.fleet.with("a", |l| l.script = Script::Unreachable);
    assert_eq!(
        w.hub.install(id, d[0]).unwrap_err().code(),
        "lock_unreachable"
    );
    // Back in range, but within the backoff: nothing is sent yet.
    w.fleet.with("a", |l| l.script = Script::Honest);
    let t = w.hub.tick().unwrap();
    assert_eq!(t.installs_retried, 0, "{t:?}");
    assert!(w.fleet.get("a").uploads.is_empty());
    // After the backoff, the tick installs it with no new call.
    w.clock.advance(w.hub.config().retry_base_secs);
    let t = w.hub.tick().unwrap();
    assert_eq!(t.installs_retried, 1, "{t:?}");
    assert_eq!(w.fleet.get("a").seq, 3);
    assert_eq!(w.version(id), "1.3.0");
    // And never again.
    w.clock.advance(3600);
    assert_eq!(w.hub.tick().unwrap().installs_retried, 0);
    assert_eq!(w.fleet.get("a").uploads.len(), 1);
}

#[test]
fn the_retry_backs_off_and_a_restarted_hub_keeps_backing_off() {
    let w = World::new();
    let (d, id) = w.consented_lock("a");
    w.fleet.with("a", |l| l.script = Script::FailPush);
    let base = w.hub.config().retry_base_secs;
    assert!(w.hub.install(id, d[0]).is_err()); // failure 1
    w.clock.advance(base);
    assert_eq!(w.hub.tick().unwrap().installs_retried, 1); // failure 2: waits 2×base
    w.clock.advance(base);
    assert_eq!(w.hub.tick().unwrap().installs_retried, 0);
    // A new hub over the same store reads the failures from the events.
    let hub = keyway_hub::engine::Hub::new(
        w.store.clone(),
        std::sync::Arc::new(w.fleet.clone()),
        w.clock.clone(),
        w.hub.config().clone(),
    );
    assert_eq!(hub.tick().unwrap().installs_retried, 0, "restart hammers");
    w.clock.advance(base);
    w.fleet.with("a", |l| l.script = Script::Honest);
    assert_eq!(hub.tick().unwrap().installs_retried, 1);
    assert_eq!(w.fleet.get("a").seq, 3);
}

#[test]
fn a_hub_restarted_mid_upload_finishes_the_install_on_its_next_tick() {
    let w = World::new();
    let (_, id) = w.consented_lock("a");
    // The push began, then the hub was killed: no outcome was written.
    w.store
        .add_event(&NewEvent {
            at: w.hub.now(),
            lock: Some(id),
            level: EventLevel::Info,
            kind: "push_started",
            message: "pushing",
        })
        .unwrap();
    let hub = keyway_hub::engine::Hub::new(
        w.store.clone(),
        std::sync::Arc::new(w.fleet.clone()),
        w.clock.clone(),
        w.hub.config().clone(),
    );
    let t = hub.tick().unwrap();
    assert_eq!(t.installs_retried, 1, "{t:?}");
    assert_eq!(w.fleet.get("a").seq, 3);
    assert!(w.saw("install_running"));
}

#[test]
fn a_declined_or_no_longer_applicable_release_is_never_retried() {
    let w = World::new();
    let d = w.releases(&[(3, &[]), (4, &[])]);
    let a = w.paired_lock("a", 2);
    let b = w.paired_lock("b", 2);
    // a: accepted, then declined.
    w.accept(a, d[0]);
    w.clock.advance(1);
    w.hub
        .consent(a, d[0], Decision::Decline, ConsentSource::Owner)
        .unwrap();
    // b: accepted 1.3.0, then went to 1.4.0 some other way.
    w.accept(b, d[0]);
    w.fleet.with("b", |l| l.seq = 4);
    for _ in 0..3 {
        w.clock.advance(4000);
        let t = w.hub.tick().unwrap();
        assert_eq!(t.installs_retried, 0, "{t:?}");
    }
    assert!(w.fleet.get("a").uploads.is_empty());
    assert!(w.fleet.get("b").uploads.is_empty());
    assert_eq!(w.fleet.get("a").seq, 2);
}

#[test]
fn an_auto_consent_after_an_unreachable_tick_installs_on_a_later_one() {
    let w = World::new();
    let d = w.releases(&[(3, &[("CVE-2026-10001", "critical")])]);
    let id = w.paired_lock("a", 2);
    w.hub.set_auto_install(id, true).unwrap();
    // Reachable for its status, but the push fails.
    w.fleet.with("a", |l| l.script = Script::FailPush);
    let t = w.hub.tick().unwrap();
    assert_eq!(t.auto_installs, 1, "{t:?}");
    assert_eq!(w.fleet.get("a").seq, 2);
    w.fleet.with("a", |l| l.script = Script::Honest);
    w.clock.advance(w.hub.config().retry_base_secs);
    w.hub.tick().unwrap();
    assert_eq!(w.fleet.get("a").seq, 3, "{:?}", w.kinds());
    let _ = d;
}

// ----- tick isolation and concurrency (review 14, item 11) -----------------

#[test]
fn one_locks_error_does_not_stop_the_tick_for_the_others() {
    let w = World::new();
    let bad = w.paired_lock("a", 2);
    let good = w.paired_lock("b", 2);
    let hub = keyway_hub::engine::Hub::new(
        std::sync::Arc::new(FailSaves {
            inner: w.store.clone(),
            lock: bad,
        }),
        std::sync::Arc::new(w.fleet.clone()),
        w.clock.clone(),
        w.hub.config().clone(),
    );
    let t = hub.tick().expect("one lock's store error aborted the tick");
    assert_eq!(t.failed, 1, "{t:?}");
    assert_eq!(t.logs_fetched, 1, "{t:?}");
    assert!(matches!(
        w.hub.lock(good).unwrap().log,
        LogHealth::Intact { .. }
    ));
    let e = w
        .events()
        .into_iter()
        .find(|e| e.kind == "tick_failed")
        .expect("a tick_failed event");
    assert_eq!(e.lock, Some(bad));
    assert!(e.message.contains("store_failed"), "{}", e.message);
}

#[test]
fn a_tick_works_on_locks_concurrently() {
    let w = World::new(); // concurrency 4
    for i in 0..4 {
        w.paired_lock(&format!("l{i}"), 2);
    }
    w.fleet.with("l0", |l| l.script = Script::Unreachable);
    for i in 0..4 {
        w.fleet.with(&format!("l{i}"), |l| l.delay_ms = 150);
    }
    let t = w.hub.tick().unwrap();
    assert_eq!(t.unreachable, 1, "{t:?}");
    assert_eq!(t.logs_fetched, 3, "{t:?}");
    let max = w.fleet.1.max.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        max >= 2,
        "at most {max} lock answered at once: the tick is serial"
    );
}

/// A store that fails every `save_lock` of one lock (a corrupt row, a
/// constraint), delegating the rest.
struct FailSaves {
    inner: std::sync::Arc<dyn keyway_hub::store::Store>,
    lock: LockId,
}

impl keyway_hub::store::Store for FailSaves {
    fn put_model(&self, m: &ModelAnchors) -> Result<(), StoreError> {
        self.inner.put_model(m)
    }
    fn models(&self) -> Result<Vec<ModelAnchors>, StoreError> {
        self.inner.models()
    }
    fn put_release(&self, r: &Release) -> Result<bool, StoreError> {
        self.inner.put_release(r)
    }
    fn release(&self, d: &Digest) -> Result<Option<Release>, StoreError> {
        self.inner.release(d)
    }
    fn releases(&self, c: Option<&str>) -> Result<Vec<Release>, StoreError> {
        self.inner.releases(c)
    }
    fn add_lock(&self, l: &NewLock) -> Result<LockId, StoreError> {
        self.inner.add_lock(l)
    }
    fn lock(&self, id: LockId) -> Result<Option<LockRecord>, StoreError> {
        self.inner.lock(id)
    }
    fn locks(&self) -> Result<Vec<LockRecord>, StoreError> {
        self.inner.locks()
    }
    fn save_lock(&self, l: &LockRecord) -> Result<(), StoreError> {
        if l.id == self.lock {
            return Err(StoreError::Backend("row is corrupt".into()));
        }
        self.inner.save_lock(l)
    }
    fn remove_lock(&self, id: LockId) -> Result<(), StoreError> {
        self.inner.remove_lock(id)
    }
    fn put_consent(&self, c: &Consent) -> Result<(), StoreError> {
        self.inner.put_consent(c)
    }
    fn consents(&self, id: LockId) -> Result<Vec<Consent>, StoreError> {
        self.inner.consents(id)
    }
    fn put_log(&self, e: &LogExport) -> Result<(), StoreError> {
        self.inner.put_log(e)
    }
    fn logs(&self, id: LockId) -> Result<Vec<LogExport>, StoreError> {
        self.inner.logs(id)
    }
    fn create_rollout(&self, r: &Rollout) -> Result<i64, StoreError> {
        self.inner.create_rollout(r)
    }
    fn save_rollout(&self, r: &Rollout) -> Result<(), StoreError> {
        self.inner.save_rollout(r)
    }
    fn rollout(&self, id: i64) -> Result<Option<Rollout>, StoreError> {
        self.inner.rollout(id)
    }
    fn rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        self.inner.rollouts()
    }
    fn add_event(&self, e: &NewEvent<'_>) -> Result<i64, StoreError> {
        self.inner.add_event(e)
    }
    fn events(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.inner.events(after, limit)
    }
    fn freshness(&self) -> Result<Freshness, StoreError> {
        self.inner.freshness()
    }
    fn set_freshness(&self, f: &Freshness) -> Result<(), StoreError> {
        self.inner.set_freshness(f)
    }
    fn try_lease(&self, claim: &LeaseClaim<'_>) -> Result<bool, StoreError> {
        self.inner.try_lease(claim)
    }
    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.inner.release_lease(name, holder)
    }
}

// ----- typed reasons (review 14, item 4) -------------------------------------

#[test]
fn failures_carry_stable_codes_in_progress_reports_rollouts_and_logs() {
    let (w, d, a) = World::offering();
    let b = w.paired_lock("b", 2);
    for id in [a, b] {
        w.accept(id, d[0]);
    }
    // A push the lock refuses: the progress carries the hub error's code.
    w.fleet.with("a", |l| l.script = Script::FailPush);
    assert!(w.hub.install(a, d[0]).is_err());
    assert_eq!(
        w.hub.progress_of(a).unwrap().error_code,
        Some("lock_refused")
    );
    // An install the lock refuses (a reverted trial).
    w.fleet.with("a", |l| l.script = Script::Refuse);
    match w.hub.install(a, d[0]).unwrap() {
        InstallReport::Refused { code, .. } => assert_eq!(code, "install_refused"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w.hub.progress_of(a).unwrap().error_code,
        Some("install_refused")
    );
    // A rollout's failures: unreachable, and refused.
    w.fleet.with("b", |l| l.script = Script::Unreachable);
    let r = w.hub.create_rollout(d[0], 10, 100, None).unwrap();
    let r = w.hub.run_rollout(r.id).unwrap();
    let codes: Vec<String> = r
        .locks
        .iter()
        .map(|(_, o)| match o {
            RolloutOutcome::Failed { code, .. } => code.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(codes, vec!["install_refused", "lock_unreachable"]);
    // A broken log keeps the verifier's kind.
    w.fleet.with("a", |l| l.script = Script::LogBroken);
    match w.hub.fetch_log(a).unwrap() {
        LogHealth::Broken { kind, .. } => {
            assert_eq!(kind, Some(keyway_hub::link::LogBreak::Forged))
        }
        other => panic!("{other:?}"),
    }
}

// ----- two hubs on one store (review 14, item 5) -----------------------------

fn second_hub(w: &World, hub_id: &str) -> std::sync::Arc<keyway_hub::engine::Hub> {
    std::sync::Arc::new(keyway_hub::engine::Hub::new(
        w.store.clone(),
        std::sync::Arc::new(w.fleet.clone()),
        w.clock.clone(),
        keyway_hub::engine::HubConfig {
            hub_id: hub_id.into(),
            ..w.hub.config().clone()
        },
    ))
}

#[test]
fn two_hubs_on_one_store_do_not_push_a_lock_twice_at_once() {
    let w = World::new();
    let (d, id) = w.consented_lock("a");
    w.fleet.with("a", |l| l.upload_ms = 300);
    let b = second_hub(&w, "hub-b");
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| w.hub.install(id, d[0]));
        std::thread::sleep(std::time::Duration::from_millis(50));
        let hb = s.spawn(|| b.install(id, d[0]));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    // Whichever took the lease first pushed; the other heard `lock_busy`.
    let (won, lost) = if ra.is_ok() { (ra, rb) } else { (rb, ra) };
    assert!(matches!(won, Ok(InstallReport::Running)), "{won:?}");
    assert_eq!(lost.unwrap_err().code(), "lock_busy");
    assert_eq!(w.fleet.get("a").uploads.len(), 1);
    // The lease was given up: the next push goes.
    assert!(matches!(
        b.install(id, d[0]),
        Ok(InstallReport::AlreadyRunning)
    ));
}

#[test]
fn two_hubs_on_one_store_run_a_rollout_once() {
    let w = World::new();
    let d = w.releases(&[(3, &[])]);
    let ids: Vec<LockId> = (0..4).map(|i| w.paired_lock(&format!("l{i}"), 2)).collect();
    for id in &ids {
        w.accept(*id, d[0]);
        w.fleet.with(&format!("l{}", id - 1), |l| l.upload_ms = 100);
    }
    let r = w.hub.create_rollout(d[0], 2, 0, None).unwrap();
    let b = second_hub(&w, "hub-b");
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| w.hub.run_rollout(r.id).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(30));
        let hb = s.spawn(|| b.run_rollout(r.id).unwrap());
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let saved = w.hub.rollout(r.id).unwrap();
    assert_eq!(saved.state, RolloutState::Done, "{ra:?} {rb:?}");
    assert!(
        saved
            .locks
            .iter()
            .all(|(_, o)| *o == RolloutOutcome::Updated),
        "{saved:?}"
    );
    for i in 0..4 {
        assert_eq!(w.fleet.get(&format!("l{i}")).uploads.len(), 1, "l{i}");
    }
}

#[test]
fn a_hub_leaves_locks_another_hub_paired_alone_and_says_so_once() {
    let w = World::new();
    let d = w.releases(&[(3, &[("CVE-2026-10002", "critical")])]);
    let id = w.paired_lock("a", 2); // paired by hub "local"
    w.hub.set_auto_install(id, true).unwrap();
    w.fleet.with("a", |l| l.script = Script::Unreachable);
    let b = second_hub(&w, "hub-b");
    for _ in 0..3 {
        w.clock.advance(4000);
        let t = b.tick().unwrap();
        assert_eq!(t.other_hub, 1, "{t:?}");
        assert_eq!((t.rechecked, t.unreachable, t.auto_installs), (0, 0, 0));
    }
    let kinds = w.kinds();
    assert_eq!(
        kinds.iter().filter(|k| *k == "lock_of_another_hub").count(),
        1,
        "{kinds:?}"
    );
    assert!(
        !kinds.contains(&"lock_unreachable".to_string()),
        "{kinds:?}"
    );
    assert!(w.store.consents(id).unwrap().is_empty());
    // Its own hub still acts on it.
    w.fleet.with("a", |l| l.script = Script::Honest);
    let t = w.hub.tick().unwrap();
    assert_eq!(t.other_hub, 0);
    assert_eq!(w.fleet.get("a").seq, 3, "{:?}", w.kinds());
    let _ = d;
}

// ----- resuming a stopped rollout (review 14, item 12) -------------------------

#[test]
fn the_owner_resumes_a_stopped_rollout_at_its_next_wave() {
    let w = World::new();
    let (d, _) = w.consented_locks(4);
    w.fleet.with("l0", |l| l.script = Script::FailPush);
    let r = w.hub.create_rollout(d[0], 2, 0, None).unwrap();
    let r = w.hub.run_rollout(r.id).unwrap();
    assert!(
        matches!(r.state, RolloutState::Stopped { wave: 0, .. }),
        "{r:?}"
    );
    assert!(w.fleet.get("l2").uploads.is_empty());
    // Running it again does nothing: stopped is stopped…
    assert_eq!(w.hub.run_rollout(r.id).unwrap().state, r.state);
    // …until the owner resumes it.
    let r = w.hub.resume_rollout(r.id).unwrap();
    assert_eq!(r.state, RolloutState::Done, "{r:?}");
    assert!(matches!(r.locks[0].1, RolloutOutcome::Failed { .. }));
    assert_eq!(r.locks[2].1, RolloutOutcome::Updated);
    assert_eq!(w.fleet.get("l3").seq, 3);
    assert!(w.saw("rollout_resumed"));
    // A finished rollout does not resume.
    assert_eq!(
        w.hub.resume_rollout(r.id).unwrap_err().code(),
        "invalid_value"
    );
}
