//! Property tests: random sequences of store calls give the same answers,
//! and leave the same observable state, as a simple in-memory model of the
//! [`Store`] contract (on SQLite always, on PostgreSQL when
//! `KEYWAY_TEST_POSTGRES` is set). Ids are the store's to choose; the model
//! only requires that they increase and are never reused.

mod common;

use std::collections::BTreeMap;

use common::*;
use keyway_hub::model::*;
use keyway_hub::store::{Store, StoreError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    PutModel(u8, u8),
    PutRelease(u64, u8),
    AddLock(u64),
    SaveLock(usize, usize),
    RemoveLock(usize),
    PutConsent(usize, u64, bool, u8, i64),
    PutLog(usize, u8, u64),
    CreateRollout(u64, usize),
    SaveRollout(usize, u64, usize),
    AddEvent(Option<usize>, u8, i64),
    SetFreshness(Option<u64>, bool),
    Events(usize, u32),
}

/// Release numbers 1..=6 (some never put: unknown releases), sequences
/// from a small set with ties and both ends of the range.
const SEQS: [u64; 5] = [0, 5, 5, i64::MAX as u64 + 3, u64::MAX];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u8..3, 0u8..3).prop_map(|(c, k)| Op::PutModel(c, k)),
        3 => (1u64..7, 0u8..5).prop_map(|(n, q)| Op::PutRelease(n, q)),
        3 => (0u64..100).prop_map(Op::AddLock),
        3 => (0usize..10, 0usize..40).prop_map(|(i, k)| Op::SaveLock(i, k)),
        1 => (0usize..10).prop_map(Op::RemoveLock),
        3 => (0usize..10, 1u64..7, any::<bool>(), 0u8..3, 0i64..4)
            .prop_map(|(i, n, d, s, at)| Op::PutConsent(i, n, d, s, at)),
        2 => (0usize..10, 0u8..40, any::<u64>()).prop_map(|(i, len, q)| Op::PutLog(i, len, q)),
        1 => (1u64..7, 0usize..6).prop_map(|(n, k)| Op::CreateRollout(n, k)),
        1 => (0usize..5, 1u64..7, 0usize..6).prop_map(|(i, n, k)| Op::SaveRollout(i, n, k)),
        2 => (proptest::option::of(0usize..10), 0u8..3, any::<i64>())
            .prop_map(|(l, v, at)| Op::AddEvent(l, v, at)),
        1 => (proptest::option::of(any::<u64>()), any::<bool>())
            .prop_map(|(v, e)| Op::SetFreshness(v, e)),
        1 => (0usize..12, 0u32..5).prop_map(|(i, n)| Op::Events(i, n)),
    ]
}

/// An error, comparable.
#[derive(Debug, PartialEq)]
#[allow(clippy::enum_variant_names)]
enum Err {
    NoLock(LockId),
    NoRelease(Digest),
    NoRollout(i64),
}

fn err(e: StoreError) -> Err {
    match e {
        StoreError::NoLock(x) => Err::NoLock(x),
        StoreError::NoRelease(d) => Err::NoRelease(d),
        StoreError::NoRollout(x) => Err::NoRollout(x),
        other => panic!("the store failed: {other}"),
    }
}

#[derive(Default)]
struct Model {
    models: BTreeMap<String, ModelAnchors>,
    releases: BTreeMap<Digest, Release>,
    locks: BTreeMap<LockId, LockRecord>,
    /// Every lock id the store gave, removed ones too.
    lock_ids: Vec<LockId>,
    consents: BTreeMap<(LockId, Digest), Consent>,
    logs: Vec<LogExport>,
    rollouts: BTreeMap<i64, Rollout>,
    rollout_ids: Vec<i64>,
    events: Vec<Event>,
    freshness: Freshness,
}

impl Model {
    /// The `i`th id given, or (past the end) one never given.
    fn lock_id(&self, i: usize) -> LockId {
        self.lock_ids
            .get(i)
            .copied()
            .unwrap_or(self.lock_ids.last().copied().unwrap_or(0) + 1000)
    }

    fn rollout_id(&self, i: usize) -> i64 {
        self.rollout_ids
            .get(i)
            .copied()
            .unwrap_or(self.rollout_ids.last().copied().unwrap_or(0) + 1000)
    }

    fn event_cursor(&self, i: usize) -> i64 {
        match i {
            0 => 0,
            i => self.events.get(i - 1).map_or(i64::MAX, |e| e.id),
        }
    }
}

fn release_n(n: u64, q: u8) -> Release {
    release(
        n,
        if n.is_multiple_of(2) { "even" } else { "odd" },
        SEQS[q as usize],
        64,
    )
}

fn apply(s: &dyn Store, m: &mut Model, op: &Op) {
    match *op {
        Op::PutModel(c, k) => {
            let a = model(["a", "b", "c"][c as usize], k);
            s.put_model(&a).unwrap();
            m.models.insert(a.class.clone(), a);
        }
        Op::PutRelease(n, q) => {
            let r = release_n(n, q);
            let fresh = !m.releases.contains_key(&r.digest);
            assert_eq!(s.put_release(&r).unwrap(), fresh);
            m.releases.entry(r.digest).or_insert(r);
        }
        Op::AddLock(n) => {
            let id = s.add_lock(&new_lock(n)).unwrap();
            assert!(m.lock_ids.iter().all(|x| *x < id), "lock id {id} reused");
            m.lock_ids.push(id);
            let mut rec = lock_record(id, 0);
            rec.name = format!("door {n}");
            rec.address = new_lock(n).address;
            rec.device_key = None;
            rec.auto_install_critical = false;
            rec.snapshot = None;
            rec.last_contact = None;
            rec.log = LogHealth::Unknown;
            m.locks.insert(id, rec);
        }
        Op::SaveLock(i, k) => {
            let id = m.lock_id(i);
            let rec = lock_record(id, k);
            let want = if let Some(held) = m.locks.get_mut(&id) {
                *held = rec.clone();
                Ok(())
            } else {
                Err(Err::NoLock(id))
            };
            assert_eq!(s.save_lock(&rec).map_err(err), want);
        }
        Op::RemoveLock(i) => {
            let id = m.lock_id(i);
            let want = if m.locks.remove(&id).is_some() {
                m.consents.retain(|(l, _), _| *l != id);
                m.logs.retain(|e| e.lock != id);
                Ok(())
            } else {
                Err(Err::NoLock(id))
            };
            assert_eq!(s.remove_lock(id).map_err(err), want);
        }
        Op::PutConsent(i, n, d, src, at) => {
            let c = Consent {
                lock: m.lock_id(i),
                release: dg(n),
                decision: if d {
                    Decision::Accept
                } else {
                    Decision::Decline
                },
                source: [
                    ConsentSource::Owner,
                    ConsentSource::AutoCritical,
                    ConsentSource::HomeAssistant,
                ][src as usize]
                    .clone(),
                at,
            };
            let want = if !m.locks.contains_key(&c.lock) {
                Err(Err::NoLock(c.lock))
            } else if !m.releases.contains_key(&c.release) {
                Err(Err::NoRelease(c.release))
            } else {
                m.consents.insert((c.lock, c.release), c.clone());
                Ok(())
            };
            assert_eq!(s.put_consent(&c).map_err(err), want);
        }
        Op::PutLog(i, len, q) => {
            let e = LogExport {
                lock: m.lock_id(i),
                fetched_at: len as i64,
                first_seq: q / 2,
                last_seq: q,
                bytes: vec![len; len as usize],
            };
            let want = if m.locks.contains_key(&e.lock) {
                m.logs.push(e.clone());
                Ok(())
            } else {
                Err(Err::NoLock(e.lock))
            };
            assert_eq!(s.put_log(&e).map_err(err), want);
        }
        Op::CreateRollout(n, k) => {
            let mut r = rollout(dg(n), k, &m.lock_ids);
            if m.releases.contains_key(&r.release) {
                let id = s.create_rollout(&r).unwrap();
                assert!(m.rollout_ids.iter().all(|x| *x < id));
                m.rollout_ids.push(id);
                r.id = id;
                m.rollouts.insert(id, r);
            } else {
                assert_eq!(
                    s.create_rollout(&r).map_err(err),
                    Err(Err::NoRelease(r.release))
                );
            }
        }
        Op::SaveRollout(i, n, k) => {
            let mut r = rollout(dg(n), k, &m.lock_ids);
            r.id = m.rollout_id(i);
            let want = if !m.rollouts.contains_key(&r.id) {
                Err(Err::NoRollout(r.id))
            } else if !m.releases.contains_key(&r.release) {
                Err(Err::NoRelease(r.release))
            } else {
                m.rollouts.insert(r.id, r.clone());
                Ok(())
            };
            assert_eq!(s.save_rollout(&r).map_err(err), want);
        }
        Op::AddEvent(l, v, at) => {
            let lock = l.map(|i| m.lock_id(i));
            let level = [EventLevel::Info, EventLevel::Warning, EventLevel::Alert][v as usize];
            let e = NewEvent {
                at,
                lock,
                level,
                kind: &format!("kind_{v}"),
                message: &format!("at {at}"),
            };
            let id = s.add_event(&e).unwrap();
            assert!(m.events.iter().all(|e| e.id < id));
            m.events.push(e.with_id(id));
        }
        Op::SetFreshness(v, e) => {
            let f = Freshness {
                url: v.map(|v| format!("https://r{v}.example/")),
                last_fresh_at: v.map(|v| v as i64),
                timestamp_version: v,
                timestamp_expires: v.map(|v| (v as i64).wrapping_neg()),
                last_error: e.then(|| "offline".to_string()),
            };
            s.set_freshness(&f).unwrap();
            m.freshness = f;
        }
        Op::Events(i, limit) => {
            let after = m.event_cursor(i);
            let want: Vec<Event> = m
                .events
                .iter()
                .filter(|e| e.id > after)
                .take(limit as usize)
                .cloned()
                .collect();
            assert_eq!(s.events(after, limit).unwrap(), want);
        }
    }
}

/// Everything the store shows equals the model.
fn check(s: &dyn Store, m: &Model) {
    assert_eq!(
        s.models().unwrap(),
        m.models.values().cloned().collect::<Vec<_>>()
    );
    for class in [None, Some("odd"), Some("even")] {
        let want = listing(m.releases.values(), class);
        assert_eq!(s.releases(class).unwrap(), want, "{class:?}");
    }
    for n in 1..7 {
        assert_eq!(s.release(&dg(n)).unwrap().as_ref(), m.releases.get(&dg(n)));
    }
    assert_eq!(
        s.locks().unwrap(),
        m.locks.values().cloned().collect::<Vec<_>>()
    );
    for &id in &m.lock_ids {
        assert_eq!(s.lock(id).unwrap().as_ref(), m.locks.get(&id));
        let mut cs: Vec<Consent> = m
            .consents
            .values()
            .filter(|c| c.lock == id)
            .cloned()
            .collect();
        cs.sort_by_key(|c| (c.at, c.release));
        assert_eq!(s.consents(id).unwrap(), cs);
        let logs: Vec<LogExport> = m.logs.iter().filter(|e| e.lock == id).cloned().collect();
        assert_eq!(s.logs(id).unwrap(), logs);
    }
    assert_eq!(
        s.rollouts().unwrap(),
        m.rollouts.values().rev().cloned().collect::<Vec<_>>()
    );
    for &id in &m.rollout_ids {
        assert_eq!(s.rollout(id).unwrap().as_ref(), m.rollouts.get(&id));
    }
    assert_eq!(s.events(0, u32::MAX).unwrap(), m.events);
    assert_eq!(s.freshness().unwrap(), m.freshness);
}

fn run(s: &dyn Store, ops: &[Op]) {
    let mut m = Model::default();
    for op in ops {
        apply(s, &mut m, op);
        check(s, &m);
    }
}

/// Runs `cases` random sequences on stores from `fresh`, and says how
/// many sequences and calls it checked.
fn sweep<S: Store>(name: &str, cases: u32, fresh: impl Fn() -> (Box<dyn std::any::Any>, S)) {
    use proptest::test_runner::{Config, TestRunner};
    let calls = std::cell::Cell::new(0usize);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..40), |ops| {
            let (_keep, s) = fresh();
            run(&s, &ops);
            calls.set(calls.get() + ops.len());
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    println!(
        "{name}: {cases} random sequences, {} calls, each matched the model",
        calls.get()
    );
}

#[test]
fn sqlite_matches_the_model() {
    sweep("sqlite_matches_the_model", 48, || {
        let (dir, s) = sqlite();
        (Box::new(dir) as Box<dyn std::any::Any>, s)
    });
}

#[test]
fn postgres_matches_the_model() {
    let Some(url) = pg_url("postgres_matches_the_model") else {
        return;
    };
    sweep("postgres_matches_the_model", 24, || {
        let schema = PgSchema::new(&url);
        let s = schema.store();
        (Box::new(schema) as Box<dyn std::any::Any>, s)
    });
}
