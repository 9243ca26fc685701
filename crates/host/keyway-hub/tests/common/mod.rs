//! Fixtures shared by the store tests: model values of every variant, and
//! a fresh store of either backend.

#![allow(dead_code)]

use keyway_hub::model::*;
use keyway_hub::store::{PgStore, SqliteStore, Store};

/// A digest made from a number (distinct numbers, distinct digests).
pub fn dg(n: u64) -> Digest {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&n.to_be_bytes());
    d[31] = 0xa5;
    Digest(d)
}

/// Release number `n` of `class` with sequence `seq`; its variants turn
/// with `n` (origin, delta base, CVEs) and its envelope is `env_len` bytes.
pub fn release(n: u64, class: &str, seq: u64, env_len: usize) -> Release {
    let sev = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    Release {
        digest: dg(n),
        target: format!("{class}/{n}.suit"),
        class: class.to_string(),
        version: format!("1.{n}.0"),
        sequence: seq,
        delta_base: (n % 2 == 1).then(|| dg(n + 1_000_000)),
        notes: format!("# Release {n}\n\nFixes things, \"quoted\" and ünïcode."),
        cves: (0..(n % 3))
            .map(|i| CveFix {
                id: format!("CVE-2026-{:04}", n * 10 + i),
                severity: sev[((n + i) % 4) as usize],
            })
            .collect(),
        origin: if n.is_multiple_of(2) {
            ReleaseOrigin::Tuf {
                url: "https://updates.example/repo".into(),
            }
        } else {
            ReleaseOrigin::Bundle {
                path: "/media/usb/bundle".into(),
            }
        },
        added_at: 1_800_000_000 + n as i64,
        envelope: (0..env_len).map(|i| (i as u64 ^ n) as u8).collect(),
    }
}

pub fn new_lock(n: u64) -> NewLock {
    NewLock {
        name: format!("door {n}"),
        address: format!("udp:192.0.2.{}:1337", n % 250),
        class: "nrf52840-lock".into(),
    }
}

/// Every [`UpdateState`] variant.
pub fn update_states() -> Vec<UpdateState> {
    vec![
        UpdateState::Confirmed,
        UpdateState::AwaitingConsent { release: dg(7) },
        UpdateState::Postponed {
            release: dg(8),
            reason: Postponement::BoltLocked,
        },
        UpdateState::Postponed {
            release: dg(9),
            reason: Postponement::BatteryLow {
                have_mwh: 10,
                need_mwh: u64::MAX,
            },
        },
        UpdateState::Installing { release: dg(10) },
        UpdateState::Trial {
            version: "2.0.0".into(),
        },
        UpdateState::Declined { release: dg(11) },
    ]
}

/// Every [`LogHealth`] variant.
pub fn log_healths() -> Vec<LogHealth> {
    vec![
        LogHealth::Unknown,
        LogHealth::Intact {
            last_seq: u64::MAX,
            at: 5,
        },
        LogHealth::Gap {
            held_to: 3,
            resumed_at: 9,
            at: 6,
        },
        LogHealth::Broken {
            reason: "the chain broke at record 4".into(),
            kind: Some(keyway_hub::link::LogBreak::Modified),
            at: 7,
        },
    ]
}

/// A lock record with the `k`th variants of everything nested.
pub fn lock_record(id: LockId, k: usize) -> LockRecord {
    let us = update_states();
    let lh = log_healths();
    LockRecord {
        id,
        name: format!("lock {id} v{k}"),
        address: format!("udp:[::1]:{}", 1000 + k),
        class: "nrf52840-lock".into(),
        device_key: k.is_multiple_of(2).then_some([k as u8; 32]),
        auto_install_critical: k.is_multiple_of(3),
        snapshot: (k % 5 != 4).then(|| LockSnapshot {
            model: "nrf52840".into(),
            version: format!("1.{k}.0"),
            image: (k % 2 == 1).then(|| dg(k as u64)),
            update: us[k % us.len()].clone(),
            battery_mwh: 1000 + k as u64,
            door: if k.is_multiple_of(2) {
                Door::Open
            } else {
                Door::Closed
            },
            bolt: if k.is_multiple_of(3) {
                Bolt::Locked
            } else {
                Bolt::Unlocked
            },
            tamper: k % 2 == 1,
        }),
        last_contact: k.is_multiple_of(2).then_some(1_800_000_000 + k as i64),
        log: lh[k % lh.len()].clone(),
    }
}

/// Every [`RolloutState`] and [`RolloutOutcome`] variant.
pub fn rollout(release: Digest, k: usize, locks: &[LockId]) -> Rollout {
    let states = [
        RolloutState::Running { wave: 2 },
        RolloutState::Stopped {
            wave: 1,
            failed: 3,
            of: 10,
        },
        RolloutState::Done,
    ];
    let outcomes = [
        RolloutOutcome::Waiting,
        RolloutOutcome::NeedsConsent,
        RolloutOutcome::Postponed {
            reason: Postponement::BoltLocked,
        },
        RolloutOutcome::Postponed {
            reason: Postponement::BatteryLow {
                have_mwh: 1,
                need_mwh: 2,
            },
        },
        RolloutOutcome::Updated,
        RolloutOutcome::Failed {
            reason: "the lock stopped answering".into(),
            code: "lock_unreachable".into(),
        },
    ];
    Rollout {
        id: 0,
        release,
        wave_size: 10 + k as u32,
        error_threshold_pct: 20,
        state: states[k % states.len()].clone(),
        locks: locks
            .iter()
            .enumerate()
            .map(|(i, l)| (*l, outcomes[(i + k) % outcomes.len()].clone()))
            .collect(),
        started_at: 1_800_000_100 + k as i64,
    }
}

pub fn model(class: &str, k: u8) -> ModelAnchors {
    ModelAnchors {
        class: class.into(),
        vendor_domain: "vendor.example".into(),
        trust_pems: (0..k)
            .map(|i| format!("-----BEGIN PUBLIC KEY-----\nkey{i}\n-----END PUBLIC KEY-----\n"))
            .collect(),
        threshold: k,
    }
}

/// `releases` as [`Store::releases`] lists them: those of `class` (every
/// class with `None`), newest sequence first and then by digest (as both
/// backends order them), without their envelopes.
pub fn listing<'a>(
    releases: impl IntoIterator<Item = &'a Release>,
    class: Option<&str>,
) -> Vec<Release> {
    let mut v: Vec<Release> = releases
        .into_iter()
        .filter(|r| class.is_none_or(|c| r.class == c))
        .map(|r| Release {
            envelope: Vec::new(),
            ..r.clone()
        })
        .collect();
    v.sort_by_key(|r| (std::cmp::Reverse(r.sequence), r.digest));
    v
}

/// The PostgreSQL URL of the test cluster, or `None` (and a line saying
/// the test is skipped) when `KEYWAY_TEST_POSTGRES` is unset.
pub fn pg_url(test: &str) -> Option<String> {
    match std::env::var("KEYWAY_TEST_POSTGRES") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "SKIPPED {test} on PostgreSQL: KEYWAY_TEST_POSTGRES is unset \
                 (run `eval \"$(scripts/postgres.sh)\"` to start a throwaway cluster)"
            );
            None
        }
    }
}

/// A fresh [`PgSchema`] for `test`, or `None` as [`pg_url`].
pub fn pg_schema(test: &str) -> Option<PgSchema> {
    pg_url(test).map(|u| PgSchema::new(&u))
}

/// A fresh schema in the test database, dropped when this is dropped:
/// tests run in parallel, each in its own schema (the URL's
/// `options=-c search_path=…`).
pub struct PgSchema {
    base: String,
    pub name: String,
    pub url: String,
}

impl PgSchema {
    pub fn new(base: &str) -> PgSchema {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "kwtest_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let mut c = postgres::Client::connect(base, postgres::NoTls)
            .expect("connect to the test PostgreSQL");
        c.batch_execute(&format!("CREATE SCHEMA {name}")).unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        PgSchema {
            base: base.to_string(),
            name,
            url,
        }
    }

    pub fn store(&self) -> PgStore {
        PgStore::connect(&self.url).expect("open the PostgreSQL store")
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.base, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
        }
    }
}

/// A fresh SQLite store in a temporary directory (kept alive with it).
pub fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path().join("hub.sqlite")).unwrap();
    (dir, s)
}

/// Runs `f` on a fresh SQLite store and (when configured) a fresh
/// PostgreSQL store.
pub fn each_backend(test: &str, f: impl Fn(&dyn Store)) {
    let (_d, s) = sqlite();
    f(&s);
    if let Some(url) = pg_url(test) {
        let schema = PgSchema::new(&url);
        let s = schema.store();
        f(&s);
    }
}

/// Writes one of everything (every table has a row); returns the lock's id.
pub fn fill(s: &dyn Store) -> LockId {
    s.put_model(&model("c", 1)).unwrap();
    s.put_release(&release(1, "c", 7, 5000)).unwrap();
    let l = s.add_lock(&new_lock(1)).unwrap();
    s.save_lock(&lock_record(l, 2)).unwrap();
    s.put_consent(&Consent {
        lock: l,
        release: dg(1),
        decision: Decision::Accept,
        source: ConsentSource::Owner,
        at: 3,
    })
    .unwrap();
    s.put_log(&LogExport {
        lock: l,
        fetched_at: 4,
        first_seq: 1,
        last_seq: 2,
        bytes: vec![9; 100],
    })
    .unwrap();
    let mut r = rollout(dg(1), 1, &[l]);
    r.id = s.create_rollout(&r).unwrap();
    s.add_event(&NewEvent {
        at: 5,
        lock: Some(l),
        level: EventLevel::Alert,
        kind: "log_gap",
        message: "a gap",
    })
    .unwrap();
    s.set_freshness(&Freshness {
        url: Some("u".into()),
        ..Freshness::default()
    })
    .unwrap();
    l
}

/// Asserts that `s` holds what [`fill`] wrote.
pub fn check_filled(s: &dyn Store) {
    assert_eq!(s.models().unwrap(), vec![model("c", 1)]);
    assert_eq!(s.release(&dg(1)).unwrap(), Some(release(1, "c", 7, 5000)));
    let locks = s.locks().unwrap();
    assert_eq!(locks.len(), 1);
    let l = locks[0].id;
    assert_eq!(locks[0], lock_record(l, 2));
    assert_eq!(s.consents(l).unwrap().len(), 1);
    assert_eq!(s.logs(l).unwrap()[0].bytes, vec![9; 100]);
    assert_eq!(s.rollouts().unwrap().len(), 1);
    assert_eq!(s.events(0, 10).unwrap()[0].kind, "log_gap");
    assert_eq!(s.freshness().unwrap().url.as_deref(), Some("u"));
}
