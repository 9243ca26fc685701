//! One store test suite, written once over `&dyn Store` and run on both
//! backends: `sqlite::NAME` always, `postgres::NAME` when
//! `KEYWAY_TEST_POSTGRES` names a database (each test in its own schema;
//! without it the PostgreSQL tests say they are skipped).

mod common;

use common::*;
use keyway_hub::model::*;
use keyway_hub::store::{Store, StoreError};

/// Generates `sqlite::$name` and `postgres::$name` for each suite function.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let (_dir, s) = super::common::sqlite();
                    super::$name(&s);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let Some(schema) = super::common::pg_schema(stringify!($name)) else { return };
                    let s = schema.store();
                    super::$name(&s);
                }
            )*
        }
    };
}

suite!(
    models_round_trip_and_replace,
    releases_round_trip_every_variant,
    releases_newest_sequence_first_per_class,
    put_release_is_idempotent,
    locks_round_trip_every_variant,
    save_lock_of_an_unknown_id_is_no_lock,
    lock_ids_are_never_reused,
    consents_round_trip_and_replace,
    consent_for_unknown_lock_or_release_is_typed,
    remove_lock_removes_its_consents_and_logs,
    logs_round_trip_oldest_first,
    rollouts_round_trip_newest_first,
    rollout_errors_are_typed,
    events_after_and_limit,
    freshness_round_trip,
    store_reopens_with_everything,
    text_with_a_nul_is_refused_alike_and_nothing_written,
    a_lease_has_one_holder_until_it_runs_out_or_is_given_up,
);

/// One claim on a lease: `try_lease(name, holder, now, until)`.
fn lease(
    s: &dyn Store,
    name: &str,
    holder: &str,
    now: i64,
    until: i64,
) -> Result<bool, StoreError> {
    s.try_lease(&LeaseClaim {
        name,
        holder,
        now,
        until,
    })
}

fn a_lease_has_one_holder_until_it_runs_out_or_is_given_up(s: &dyn Store) {
    assert!(lease(s, "rollout:1", "hub-a", 100, 200).unwrap());
    // Another holder waits while it runs…
    assert!(!lease(s, "rollout:1", "hub-b", 150, 300).unwrap());
    assert!(!lease(s, "rollout:1", "hub-b", 199, 300).unwrap());
    // …the holder renews it…
    assert!(lease(s, "rollout:1", "hub-a", 199, 400).unwrap());
    assert!(!lease(s, "rollout:1", "hub-b", 300, 500).unwrap());
    // …other names are independent…
    assert!(lease(s, "push:1", "hub-b", 300, 500).unwrap());
    // …a stranger cannot give it up…
    s.release_lease("rollout:1", "hub-b").unwrap();
    assert!(!lease(s, "rollout:1", "hub-b", 300, 500).unwrap());
    // …it is free once it ran out, or once its holder gives it up.
    assert!(lease(s, "rollout:1", "hub-b", 400, 500).unwrap());
    s.release_lease("rollout:1", "hub-b").unwrap();
    assert!(lease(s, "rollout:1", "hub-c", 401, 402).unwrap());
    // A NUL is refused like any text.
    assert!(matches!(
        lease(s, "x\0", "hub-a", 0, 1),
        Err(StoreError::NulInText { .. })
    ));
}

/// Two stores over one database (two hubs) race for one lease many times:
/// exactly one wins each round.
fn race_for_leases(a: &dyn Store, b: &dyn Store) {
    let rounds = 50;
    for round in 0..rounds {
        let name = format!("push:{round}");
        let (wa, wb) = std::thread::scope(|sc| {
            let ha = sc.spawn(|| lease(a, &name, "hub-a", 10, 1000).unwrap());
            let hb = sc.spawn(|| lease(b, &name, "hub-b", 10, 1000).unwrap());
            (ha.join().unwrap(), hb.join().unwrap())
        });
        assert!(wa ^ wb, "round {round}: a won {wa}, b won {wb}");
    }
    println!("{rounds} lease races, one winner each");
}

#[test]
fn sqlite_two_hubs_race_for_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    let a = keyway_hub::store::SqliteStore::open(&path).unwrap();
    let b = keyway_hub::store::SqliteStore::open(&path).unwrap();
    race_for_leases(&a, &b);
}

#[test]
fn postgres_two_hubs_race_for_a_lease() {
    let Some(schema) = pg_schema("postgres_two_hubs_race_for_a_lease") else {
        return;
    };
    race_for_leases(&schema.store(), &schema.store());
}

fn models_round_trip_and_replace(s: &dyn Store) {
    assert!(s.models().unwrap().is_empty());
    s.put_model(&model("b", 2)).unwrap();
    s.put_model(&model("a", 0)).unwrap();
    assert_eq!(s.models().unwrap(), vec![model("a", 0), model("b", 2)]);
    let mut b = model("b", 3);
    b.vendor_domain = "other.example".into();
    s.put_model(&b).unwrap();
    assert_eq!(s.models().unwrap(), vec![model("a", 0), b]);
}

fn releases_round_trip_every_variant(s: &dyn Store) {
    // n = 0..6 turns origin, delta base and 0..2 CVEs of every severity;
    // sequences at the ends of the u64 range.
    let seqs = [0, 1, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX, 42];
    let rels: Vec<Release> = (0..6)
        .map(|n| release(n, "c", seqs[n as usize], 100 * n as usize))
        .collect();
    for r in &rels {
        assert!(s.put_release(r).unwrap());
    }
    for r in &rels {
        assert_eq!(s.release(&r.digest).unwrap().as_ref(), Some(r));
    }
    assert_eq!(s.release(&dg(999)).unwrap(), None);
    let listed = s.releases(None).unwrap();
    assert_eq!(listed.len(), 6);
    for l in &listed {
        assert!(l.envelope.is_empty(), "listings carry no envelope");
        let mut full = rels.iter().find(|r| r.digest == l.digest).unwrap().clone();
        full.envelope.clear();
        assert_eq!(l, &full);
    }
}

fn releases_newest_sequence_first_per_class(s: &dyn Store) {
    let plan = [
        (1, "a", 5),
        (2, "b", 9),
        (3, "a", 7),
        (4, "a", u64::MAX),
        (5, "b", 1),
        (6, "a", 6),
    ];
    for (n, c, q) in plan {
        s.put_release(&release(n, c, q, 10)).unwrap();
    }
    let seqs = |class| -> Vec<u64> {
        s.releases(class)
            .unwrap()
            .iter()
            .map(|r| r.sequence)
            .collect()
    };
    assert_eq!(seqs(Some("a")), vec![u64::MAX, 7, 6, 5]);
    assert_eq!(seqs(Some("b")), vec![9, 1]);
    assert_eq!(seqs(None), vec![u64::MAX, 9, 7, 6, 5, 1]);
    assert!(seqs(Some("none")).is_empty());
    for r in s.releases(Some("b")).unwrap() {
        assert_eq!(r.class, "b");
    }
}

fn put_release_is_idempotent(s: &dyn Store) {
    let r = release(3, "c", 3, 1000);
    assert!(s.put_release(&r).unwrap());
    assert!(
        !s.put_release(&r).unwrap(),
        "the second put says it held it"
    );
    // The same digest from elsewhere does not replace what is held.
    let mut again = r.clone();
    again.origin = ReleaseOrigin::Bundle {
        path: "/elsewhere".into(),
    };
    assert!(!s.put_release(&again).unwrap());
    assert_eq!(s.release(&r.digest).unwrap(), Some(r));
    assert_eq!(s.releases(None).unwrap().len(), 1);
}

fn locks_round_trip_every_variant(s: &dyn Store) {
    assert!(s.locks().unwrap().is_empty());
    let ids: Vec<LockId> = (0..3).map(|n| s.add_lock(&new_lock(n)).unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    // A new lock: unpaired, nothing known.
    let fresh = s.lock(ids[0]).unwrap().unwrap();
    assert_eq!(
        fresh,
        LockRecord {
            id: ids[0],
            name: "door 0".into(),
            address: new_lock(0).address,
            class: "nrf52840-lock".into(),
            device_key: None,
            auto_install_critical: false,
            snapshot: None,
            last_contact: None,
            log: LogHealth::Unknown,
        }
    );
    // Every nested variant (k covers every UpdateState, LogHealth, door,
    // bolt, and the Nones).
    for k in 0..(7 * 4) {
        let rec = lock_record(ids[1], k);
        s.save_lock(&rec).unwrap();
        assert_eq!(s.lock(ids[1]).unwrap(), Some(rec), "variant {k}");
    }
    let all = s.locks().unwrap();
    assert_eq!(all.iter().map(|l| l.id).collect::<Vec<_>>(), ids);
    assert_eq!(s.lock(ids[2] + 1000).unwrap(), None);
}

fn save_lock_of_an_unknown_id_is_no_lock(s: &dyn Store) {
    let id = s.add_lock(&new_lock(1)).unwrap();
    match s.save_lock(&lock_record(id + 77, 1)) {
        Err(StoreError::NoLock(x)) => assert_eq!(x, id + 77),
        other => panic!("expected NoLock, got {other:?}"),
    }
    match s.remove_lock(id + 77) {
        Err(StoreError::NoLock(x)) => assert_eq!(x, id + 77),
        other => panic!("expected NoLock, got {other:?}"),
    }
    assert_eq!(s.locks().unwrap().len(), 1);
}

fn lock_ids_are_never_reused(s: &dyn Store) {
    // A consent given for a removed lock must never apply to a new one.
    let a = s.add_lock(&new_lock(1)).unwrap();
    let b = s.add_lock(&new_lock(2)).unwrap();
    s.remove_lock(b).unwrap();
    let c = s.add_lock(&new_lock(3)).unwrap();
    assert!(c > b && b > a, "{a} {b} {c}");
}

fn consents_round_trip_and_replace(s: &dyn Store) {
    let l = s.add_lock(&new_lock(1)).unwrap();
    let other = s.add_lock(&new_lock(2)).unwrap();
    for n in 1..=3 {
        s.put_release(&release(n, "c", n, 10)).unwrap();
    }
    let sources = [
        ConsentSource::Owner,
        ConsentSource::AutoCritical,
        ConsentSource::HomeAssistant,
    ];
    let mut want = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let c = Consent {
            lock: l,
            release: dg(i as u64 + 1),
            decision: if i == 1 {
                Decision::Decline
            } else {
                Decision::Accept
            },
            source: src.clone(),
            at: 100 + i as i64,
        };
        s.put_consent(&c).unwrap();
        want.push(c);
    }
    assert_eq!(s.consents(l).unwrap(), want);
    assert!(s.consents(other).unwrap().is_empty());
    // A second decision on the same lock and release replaces the first.
    let change = Consent {
        lock: l,
        release: dg(2),
        decision: Decision::Accept,
        source: ConsentSource::Owner,
        at: 200,
    };
    s.put_consent(&change).unwrap();
    let got = s.consents(l).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got.last(), Some(&change), "ordered by time: {got:?}");
    assert!(!got.contains(&want[1]));
}

fn consent_for_unknown_lock_or_release_is_typed(s: &dyn Store) {
    let l = s.add_lock(&new_lock(1)).unwrap();
    s.put_release(&release(1, "c", 1, 10)).unwrap();
    let mut c = Consent {
        lock: l + 5,
        release: dg(1),
        decision: Decision::Accept,
        source: ConsentSource::Owner,
        at: 1,
    };
    assert!(matches!(s.put_consent(&c), Err(StoreError::NoLock(x)) if x == l + 5));
    c.lock = l;
    c.release = dg(2);
    assert!(matches!(s.put_consent(&c), Err(StoreError::NoRelease(d)) if d == dg(2)));
    assert!(s.consents(l).unwrap().is_empty());
    let e = LogExport {
        lock: l + 5,
        fetched_at: 1,
        first_seq: 0,
        last_seq: 1,
        bytes: vec![1],
    };
    assert!(matches!(s.put_log(&e), Err(StoreError::NoLock(x)) if x == l + 5));
}

fn remove_lock_removes_its_consents_and_logs(s: &dyn Store) {
    let gone = s.add_lock(&new_lock(1)).unwrap();
    let kept = s.add_lock(&new_lock(2)).unwrap();
    s.put_release(&release(1, "c", 1, 10)).unwrap();
    for l in [gone, kept] {
        s.put_consent(&Consent {
            lock: l,
            release: dg(1),
            decision: Decision::Accept,
            source: ConsentSource::Owner,
            at: 1,
        })
        .unwrap();
        s.put_log(&LogExport {
            lock: l,
            fetched_at: 2,
            first_seq: 0,
            last_seq: 9,
            bytes: vec![l as u8; 50],
        })
        .unwrap();
    }
    s.remove_lock(gone).unwrap();
    assert_eq!(s.lock(gone).unwrap(), None);
    assert!(s.consents(gone).unwrap().is_empty());
    assert!(s.logs(gone).unwrap().is_empty());
    assert_eq!(s.consents(kept).unwrap().len(), 1);
    assert_eq!(s.logs(kept).unwrap().len(), 1);
    assert_eq!(s.locks().unwrap().len(), 1);
    // The release stays (other locks may want it).
    assert!(s.release(&dg(1)).unwrap().is_some());
}

fn logs_round_trip_oldest_first(s: &dyn Store) {
    let l = s.add_lock(&new_lock(1)).unwrap();
    let other = s.add_lock(&new_lock(2)).unwrap();
    let exports: Vec<LogExport> = (0..5u64)
        .map(|i| LogExport {
            lock: l,
            // Fetched-at times not in order: the order is the order kept.
            fetched_at: 1000 - i as i64,
            first_seq: i * 10,
            last_seq: if i == 4 { u64::MAX } else { i * 10 + 9 },
            bytes: (0..(i * 300)).map(|b| b as u8).collect(),
        })
        .collect();
    for e in &exports {
        s.put_log(e).unwrap();
    }
    assert_eq!(s.logs(l).unwrap(), exports);
    assert!(s.logs(other).unwrap().is_empty());
}

fn rollouts_round_trip_newest_first(s: &dyn Store) {
    s.put_release(&release(1, "c", 1, 10)).unwrap();
    let locks: Vec<LockId> = (0..6).map(|n| s.add_lock(&new_lock(n)).unwrap()).collect();
    assert!(s.rollouts().unwrap().is_empty());
    let mut made = Vec::new();
    for k in 0..3 {
        let mut r = rollout(dg(1), k, &locks);
        r.id = s.create_rollout(&r).unwrap();
        assert_eq!(s.rollout(r.id).unwrap().as_ref(), Some(&r));
        made.push(r);
    }
    let ids: Vec<i64> = s.rollouts().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![made[2].id, made[1].id, made[0].id]);
    // Saving replaces every field.
    let mut r = made[0].clone();
    r.state = RolloutState::Stopped {
        wave: 4,
        failed: 9,
        of: 10,
    };
    r.locks[0].1 = RolloutOutcome::Failed {
        reason: "timeout".into(),
        code: "no_outcome".into(),
    };
    r.wave_size = u32::MAX;
    r.error_threshold_pct = u8::MAX;
    s.save_rollout(&r).unwrap();
    assert_eq!(s.rollout(r.id).unwrap(), Some(r.clone()));
    assert_eq!(s.rollouts().unwrap()[2], r);
    assert_eq!(s.rollout(made[2].id + 100).unwrap(), None);
}

fn rollout_errors_are_typed(s: &dyn Store) {
    s.put_release(&release(1, "c", 1, 10)).unwrap();
    let r = rollout(dg(2), 0, &[]);
    assert!(matches!(s.create_rollout(&r), Err(StoreError::NoRelease(d)) if d == dg(2)));
    let mut r = rollout(dg(1), 0, &[]);
    r.id = s.create_rollout(&r).unwrap();
    let mut unknown = r.clone();
    unknown.id += 50;
    assert!(matches!(s.save_rollout(&unknown), Err(StoreError::NoRollout(x)) if x == r.id + 50));
    let mut bad = r.clone();
    bad.release = dg(3);
    assert!(matches!(s.save_rollout(&bad), Err(StoreError::NoRelease(d)) if d == dg(3)));
    assert_eq!(s.rollout(r.id).unwrap(), Some(r));
}

fn events_after_and_limit(s: &dyn Store) {
    assert!(s.events(0, 10).unwrap().is_empty());
    let levels = [EventLevel::Info, EventLevel::Warning, EventLevel::Alert];
    let mut ids = Vec::new();
    for i in 0..10i64 {
        let lock = (i % 2 == 0).then_some(i);
        ids.push(
            s.add_event(&NewEvent {
                at: 500 + i,
                lock,
                level: levels[i as usize % 3],
                kind: &format!("kind_{i}"),
                message: &format!("message {i} ✓"),
            })
            .unwrap(),
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let all = s.events(0, 100).unwrap();
    assert_eq!(all.len(), 10);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(
            e,
            &Event {
                id: ids[i],
                at: 500 + i as i64,
                lock: (i % 2 == 0).then_some(i as i64),
                level: levels[i % 3],
                kind: format!("kind_{i}"),
                message: format!("message {i} ✓"),
            }
        );
    }
    let page: Vec<i64> = s.events(ids[3], 4).unwrap().iter().map(|e| e.id).collect();
    assert_eq!(page, ids[4..8].to_vec());
    assert_eq!(s.events(ids[9], 4).unwrap(), vec![]);
    assert_eq!(s.events(ids[0], 0).unwrap(), vec![]);
    // Paging through with the cursor sees each event once.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let p = s.events(after, 3).unwrap();
        if p.is_empty() {
            break;
        }
        after = p.last().unwrap().id;
        seen.extend(p.into_iter().map(|e| e.id));
    }
    assert_eq!(seen, ids);
}

fn freshness_round_trip(s: &dyn Store) {
    assert_eq!(s.freshness().unwrap(), Freshness::default());
    let f = Freshness {
        url: Some("https://updates.example/".into()),
        last_fresh_at: Some(1_800_000_000),
        timestamp_version: Some(u64::MAX),
        timestamp_expires: Some(-5),
        last_error: Some("the timestamp expired".into()),
    };
    s.set_freshness(&f).unwrap();
    assert_eq!(s.freshness().unwrap(), f);
    s.set_freshness(&Freshness::default()).unwrap();
    assert_eq!(s.freshness().unwrap(), Freshness::default());
}

/// PostgreSQL's `text` cannot hold U+0000; SQLite's can. Both stores
/// refuse it in plain text columns the same way (typed, nothing written),
/// and keep it inside nested (JSON) values. A hostile repository's error
/// text or an owner's lock name cannot make one backend fail where the
/// other does not.
fn text_with_a_nul_is_refused_alike_and_nothing_written(s: &dyn Store) {
    let nul = |r: Result<_, StoreError>, what: &str| match r {
        Err(StoreError::NulInText { what: w }) => assert!(w.contains(what), "{w}"),
        other => panic!("{what}: expected NulInText, got {other:?}"),
    };
    let mut l = new_lock(1);
    l.name = "front\0door".into();
    nul(s.add_lock(&l).map(drop), "name");
    assert!(s.locks().unwrap().is_empty());
    let mut r = release(1, "c", 1, 10);
    r.notes = "fixes\0".into();
    nul(s.put_release(&r).map(drop), "notes");
    assert!(s.releases(None).unwrap().is_empty());
    assert!(s.releases(Some("c\0")).unwrap().is_empty());
    nul(
        s.add_event(&NewEvent {
            at: 1,
            lock: None,
            level: EventLevel::Info,
            kind: "k",
            message: "a\0b",
        })
        .map(drop),
        "message",
    );
    assert!(s.events(0, 10).unwrap().is_empty());
    let f = Freshness {
        last_error: Some("HTTP 500: \0".into()),
        ..Freshness::default()
    };
    nul(s.set_freshness(&f), "error");
    assert_eq!(s.freshness().unwrap(), Freshness::default());
    let mut m = model("c", 1);
    m.vendor_domain = "v\0".into();
    nul(s.put_model(&m), "vendor");
    // Inside JSON the NUL is escaped: kept on both.
    let id = s.add_lock(&new_lock(2)).unwrap();
    let mut rec = lock_record(id, 0);
    let snap = rec.snapshot.as_mut().unwrap();
    snap.model = "nrf\0".into();
    s.save_lock(&rec).unwrap();
    assert_eq!(s.lock(id).unwrap(), Some(rec.clone()));
    rec.name = "x\0".into();
    nul(s.save_lock(&rec), "name");
}

/// Everything written, read back after the store is reopened (SQLite: the
/// file; PostgreSQL: a new connection). `s` here is a fresh store; the
/// backends' own tests reopen.
fn store_reopens_with_everything(s: &dyn Store) {
    fill(s);
    check_filled(s);
}

#[test]
fn sqlite_reopens_with_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    {
        let s = keyway_hub::store::SqliteStore::open(&path).unwrap();
        fill(&s);
    }
    let s = keyway_hub::store::SqliteStore::open(&path).unwrap();
    check_filled(&s);
}

#[test]
fn postgres_reopens_with_everything() {
    let Some(schema) = pg_schema("postgres_reopens_with_everything") else {
        return;
    };
    fill(&schema.store());
    // Another hub on the same database sees the same fleet.
    check_filled(&schema.store());
}
