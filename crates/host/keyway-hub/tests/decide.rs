//! The pure decisions, each rule pinned at its boundaries.

use keyway_hub::engine::decide::*;
use keyway_hub::model::*;

fn rel(seq: u64, version: &str, delta_base: Option<Digest>, sev: Option<Severity>) -> Release {
    Release {
        digest: Digest([seq as u8 + if delta_base.is_some() { 100 } else { 0 }; 32]),
        target: format!("r{seq}"),
        class: "deadbolt-2".into(),
        version: version.into(),
        sequence: seq,
        delta_base,
        notes: String::new(),
        cves: sev
            .map(|s| {
                vec![CveFix {
                    id: "CVE-2026-0001".into(),
                    severity: s,
                }]
            })
            .unwrap_or_default(),
        origin: ReleaseOrigin::Bundle { path: "/x".into() },
        added_at: 0,
        envelope: Vec::new(),
    }
}

fn img(seq: u64) -> Digest {
    Digest([200 + seq as u8; 32])
}

fn known(r: Release) -> Known {
    let image = img(r.sequence);
    Known { release: r, image }
}

fn lock(seq_image: Option<Digest>, version: &str) -> LockRecord {
    LockRecord {
        id: 1,
        name: "front".into(),
        address: "a".into(),
        class: "deadbolt-2".into(),
        device_key: Some([1; 32]),
        auto_install_critical: true,
        snapshot: Some(LockSnapshot {
            model: "nrf52840".into(),
            version: version.into(),
            image: seq_image,
            update: UpdateState::Confirmed,
            battery_mwh: 1000,
            door: Door::Closed,
            bolt: Bolt::Unlocked,
            tamper: false,
        }),
        last_contact: None,
        log: LogHealth::Unknown,
    }
}

#[test]
fn wave_stop_rule_is_strictly_above_the_threshold() {
    let f = || RolloutOutcome::Failed {
        reason: "x".into(),
        code: "lock_refused".into(),
    };
    let u = || RolloutOutcome::Updated;
    // 1 of 4 = 25%: at a 25% threshold it continues, at 24% it stops.
    let wave = [f(), u(), u(), u()];
    assert_eq!(wave_verdict(&wave, 25), WaveVerdict::Continue);
    assert_eq!(
        wave_verdict(&wave, 24),
        WaveVerdict::Stop { failed: 1, of: 4 }
    );
    // Locks without consent and postponed ones are not failures.
    let wave = [
        RolloutOutcome::NeedsConsent,
        RolloutOutcome::Postponed {
            reason: Postponement::BoltLocked,
        },
    ];
    assert_eq!(wave_verdict(&wave, 0), WaveVerdict::Continue);
    assert_eq!(wave_verdict(&[f()], 100), WaveVerdict::Continue);
    assert_eq!(
        wave_verdict(&[f()], 99),
        WaveVerdict::Stop { failed: 1, of: 1 }
    );
}

#[test]
fn waves_cover_every_lock_once() {
    assert_eq!(wave_count(10, 3), 4);
    assert_eq!(wave_range(10, 3, 3), 9..10);
    assert_eq!(wave_range(10, 3, 4), 10..10);
    assert_eq!(wave_count(0, 3), 0);
    assert_eq!(wave_range(5, 0, 0), 0..1, "a wave size of 0 is taken as 1");
}

#[test]
fn log_continuity_rules() {
    assert_eq!(log_continuity(None, 1, 10), Continuity::Intact);
    assert_eq!(log_continuity(Some(10), 11, 20), Continuity::Intact);
    assert_eq!(
        log_continuity(Some(10), 5, 20),
        Continuity::Intact,
        "overlap is fine"
    );
    assert_eq!(
        log_continuity(Some(10), 11, 10),
        Continuity::Intact,
        "empty: nothing new"
    );
    assert_eq!(
        log_continuity(Some(10), 12, 20),
        Continuity::Gap {
            held_to: 10,
            resumed_at: 12
        }
    );
    assert!(matches!(
        log_continuity(Some(10), 1, 9),
        Continuity::Backwards { .. }
    ));
    assert!(matches!(
        log_continuity(None, 9, 3),
        Continuity::Backwards { .. }
    ));
}

#[test]
fn freshness_boundaries() {
    let f = Freshness {
        url: Some("u".into()),
        last_fresh_at: Some(1000),
        timestamp_version: Some(3),
        timestamp_expires: Some(5000),
        last_error: None,
    };
    assert_eq!(
        freshness(&f, 1100, 100),
        FreshnessState::Fresh { age_secs: 100 }
    );
    assert_eq!(
        freshness(&f, 1101, 100),
        FreshnessState::Stale { age_secs: 101 }
    );
    assert_eq!(
        freshness(&f, 5000, 10_000),
        FreshnessState::Expired { expired_at: 5000 }
    );
    assert_eq!(
        freshness(&Freshness::default(), 1, 1),
        FreshnessState::Never
    );
    assert!(!FreshnessState::Fresh { age_secs: 0 }.is_warning());
    assert!(FreshnessState::Stale { age_secs: 0 }.is_warning());
}

#[test]
fn upgrade_by_sequence_or_by_version_when_the_image_is_unknown() {
    let r = rel(5, "1.5.0", None, None);
    assert!(is_upgrade(&r, Some(4), "whatever"));
    assert!(!is_upgrade(&r, Some(5), "1.0.0"));
    assert!(is_upgrade(&r, None, "1.4.9"));
    assert!(!is_upgrade(&r, None, "1.5"));
    assert!(
        is_upgrade(&r, None, "factory"),
        "not comparable: offered, the lock decides"
    );
    assert!(same_version("1.2.0", "1.2"));
    assert!(!same_version("1.2.1", "1.2"));
}

#[test]
fn offers_pick_the_delta_for_the_running_image_then_the_full() {
    let k = vec![
        known(rel(2, "1.2.0", None, None)),
        known(rel(3, "1.3.0", None, Some(Severity::Medium))),
        known(rel(3, "1.3.0", Some(img(2)), Some(Severity::Medium))),
        known(rel(3, "1.3.0", Some(img(1)), Some(Severity::Medium))),
        known(rel(4, "1.4.0", Some(img(1)), Some(Severity::Critical))),
    ];
    let l = lock(Some(img(2)), "1.2.0");
    let o = offers(&k, &l);
    // Sequence 4 has only a delta for another base: not offered.
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!(o[0].release, k[1].release.digest);
    assert_eq!(
        o[0].envelopes,
        vec![k[2].release.digest, k[1].release.digest]
    );
    assert!(o[0].delta);
    assert!(!auto_consent(&l, &o[0]), "medium is not auto-consented");
    // A lock on base 1 gets the sequence-4 delta alone, and it is critical.
    let l1 = lock(Some(img(1)), "1.1.0");
    let o1 = offers(&k, &l1);
    assert_eq!(o1[0].sequence, 4);
    assert_eq!(o1[0].envelopes, vec![k[4].release.digest]);
    assert!(auto_consent(&l1, &o1[0]));
    let mut opted_out = l1.clone();
    opted_out.auto_install_critical = false;
    assert!(!auto_consent(&opted_out, &o1[0]));
    // Another model's lock gets nothing; a lock never heard from gets nothing.
    let mut other = l.clone();
    other.class = "other".into();
    assert!(offers(&k, &other).is_empty());
    let mut silent = l;
    silent.snapshot = None;
    assert!(offers(&k, &silent).is_empty());
}

#[test]
fn status_lies() {
    let k = vec![
        known(rel(2, "1.2.0", None, None)),
        known(rel(3, "1.3.0", None, None)),
    ];
    let s = |image: Option<Digest>, version: &str, update: UpdateState| LockSnapshot {
        model: "m".into(),
        version: version.into(),
        image,
        update,
        battery_mwh: 0,
        door: Door::Closed,
        bolt: Bolt::Locked,
        tamper: false,
    };
    let ok3 = s(Some(img(3)), "1.3.0", UpdateState::Confirmed);
    assert!(keyway_hub::engine::decide::status_lies(&k, None, &ok3, None).is_empty());
    let wrong = s(Some(img(3)), "1.2.0", UpdateState::Confirmed);
    assert!(matches!(
        keyway_hub::engine::decide::status_lies(&k, None, &wrong, None)[0],
        Lie::VersionContradictsImage { .. }
    ));
    let down = s(Some(img(2)), "1.2.0", UpdateState::Confirmed);
    assert!(matches!(
        keyway_hub::engine::decide::status_lies(&k, Some(&ok3), &down, None)[0],
        Lie::Downgrade { from: 3, to: 2 }
    ));
    // A trial that reverted is not a downgrade.
    let trial = s(
        Some(img(3)),
        "1.3.0",
        UpdateState::Trial {
            version: "1.3.0".into(),
        },
    );
    assert!(keyway_hub::engine::decide::status_lies(&k, Some(&trial), &down, None).is_empty());
    let d = Digest([1; 32]);
    assert!(matches!(
        keyway_hub::engine::decide::status_lies(&k, None, &down, Some((&d, &img(3))))[0],
        Lie::NotRunningPushed { .. }
    ));
}

#[test]
fn consent_decision_is_the_latest() {
    let d = Digest([1; 32]);
    let c = |decision, at| Consent {
        lock: 1,
        release: d,
        decision,
        source: ConsentSource::Owner,
        at,
    };
    assert_eq!(
        decision(&[c(Decision::Accept, 1), c(Decision::Decline, 2)], &d),
        Some(Decision::Decline)
    );
    assert_eq!(decision(&[], &d), None);
}

/// Rows stored before the typed codes (review 14, item 4) still decode:
/// a rollout's failure without `code`, a broken log without `kind`.
#[test]
fn rows_stored_without_the_typed_codes_still_decode() {
    let o: RolloutOutcome =
        serde_json::from_str(r#"{"outcome":"failed","reason":"lock 3: no answer"}"#).unwrap();
    assert_eq!(
        o,
        RolloutOutcome::Failed {
            reason: "lock 3: no answer".into(),
            code: String::new()
        }
    );
    let h: LogHealth =
        serde_json::from_str(r#"{"state":"broken","reason":"Forged: x","at":5}"#).unwrap();
    assert!(
        matches!(
            h,
            LogHealth::Broken {
                kind: None,
                at: 5,
                ..
            }
        ),
        "{h:?}"
    );
    // And the new ones carry their codes.
    let v = serde_json::to_value(LogHealth::Broken {
        reason: "Forged: x".into(),
        kind: Some(keyway_hub::link::LogBreak::OtherDevice),
        at: 5,
    })
    .unwrap();
    assert_eq!(v["kind"], "other_device");
}
