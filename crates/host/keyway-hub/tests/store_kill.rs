//! "All state survives a restart and a kill: a SIGKILL at any point loses
//! no release, lock record, consent or log."
//!
//! The parent test runs a child process (this test binary again, running
//! only `kill_child_writer`) that writes releases, locks, lock records,
//! consents, logs, rollouts and events to one store in a loop and prints
//! an `ACK …` line after each call returns. At a random moment the parent
//! SIGKILLs it, reopens the store (it must open cleanly; SQLite's
//! `integrity_check` must say ok) and checks that every acknowledged write
//! is there, exactly. Several rounds on the same store; the seed is
//! printed (`KEYWAY_KILL_SEED` replays it).
//!
//! On SQLite always; on PostgreSQL when `KEYWAY_TEST_POSTGRES` is set
//! (there the kill cuts the client mid-transaction, and the server must
//! keep every commit it acknowledged and nothing half-done).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use keyway_hub::model::*;
use keyway_hub::store::{PgStore, SqliteStore, Store};

const ROUNDS: u64 = 6;
const CHILD_ENV: &str = "KEYWAY_KILL_CHILD";

/// The key of iteration `i` in round `r` (distinct across rounds).
fn key(r: u64, i: u64) -> u64 {
    r * 1_000_000 + i
}

fn consent(lock: LockId, k: u64) -> Consent {
    Consent {
        lock,
        release: dg(k),
        decision: if k.is_multiple_of(3) {
            Decision::Decline
        } else {
            Decision::Accept
        },
        source: ConsentSource::Owner,
        at: k as i64,
    }
}

fn export(lock: LockId, k: u64) -> LogExport {
    LogExport {
        lock,
        fetched_at: k as i64,
        first_seq: k,
        last_seq: k + 5,
        bytes: (0..(k % 700 + 200)).map(|b| (b ^ k) as u8).collect(),
    }
}

fn open(target: &str) -> Box<dyn Store> {
    if let Some(path) = target.strip_prefix("sqlite:") {
        Box::new(SqliteStore::open(path).expect("the SQLite store opens cleanly after a kill"))
    } else if let Some(url) = target.strip_prefix("postgres:") {
        Box::new(PgStore::connect(url).expect("the PostgreSQL store opens after a kill"))
    } else {
        panic!("unknown target {target}")
    }
}

/// The child: writes until killed. Does nothing in a normal test run.
#[test]
fn kill_child_writer() {
    let Ok(target) = std::env::var(CHILD_ENV) else {
        return;
    };
    let r: u64 = std::env::var("KEYWAY_KILL_ROUND").unwrap().parse().unwrap();
    let s = open(&target);
    let out = std::io::stdout();
    let ack = |line: String| {
        let mut o = out.lock();
        writeln!(o, "ACK {line}").unwrap();
        o.flush().unwrap();
    };
    for i in 0..100_000u64 {
        let k = key(r, i);
        s.put_release(&release(k, "c", k, 3000)).unwrap();
        ack(format!("release {k}"));
        let id = s.add_lock(&new_lock(k)).unwrap();
        ack(format!("lock {k} {id}"));
        s.save_lock(&lock_record(id, i as usize)).unwrap();
        ack(format!("save {k} {id} {i}"));
        s.put_consent(&consent(id, k)).unwrap();
        ack(format!("consent {k} {id}"));
        s.put_log(&export(id, k)).unwrap();
        ack(format!("log {k} {id}"));
        let ro = s
            .create_rollout(&rollout(dg(k), i as usize, &[id]))
            .unwrap();
        ack(format!("rollout {k} {ro} {i} {id}"));
        let ev = s
            .add_event(&NewEvent {
                at: k as i64,
                lock: Some(id),
                level: EventLevel::Warning,
                kind: "tick",
                message: &k.to_string(),
            })
            .unwrap();
        ack(format!("event {k} {ev} {id}"));
    }
}

/// Checks one acknowledged write; returns what kind it was.
fn check_ack(s: &dyn Store, line: &str) -> &'static str {
    let f: Vec<&str> = line.split(' ').collect();
    let n = |i: usize| -> i64 { f[i].parse().unwrap() };
    let k = n(1) as u64;
    match f[0] {
        "release" => {
            assert_eq!(
                s.release(&dg(k)).unwrap(),
                Some(release(k, "c", k, 3000)),
                "{line}"
            );
            "release"
        }
        "lock" => {
            let rec = s.lock(n(2)).unwrap();
            assert!(rec.is_some(), "{line}: the lock is gone");
            "lock"
        }
        "save" => {
            assert_eq!(
                s.lock(n(2)).unwrap(),
                Some(lock_record(n(2), n(3) as usize)),
                "{line}"
            );
            "lock record"
        }
        "consent" => {
            assert!(
                s.consents(n(2)).unwrap().contains(&consent(n(2), k)),
                "{line}"
            );
            "consent"
        }
        "log" => {
            assert!(s.logs(n(2)).unwrap().contains(&export(n(2), k)), "{line}");
            "log"
        }
        "rollout" => {
            let mut want = rollout(dg(k), n(3) as usize, &[n(4)]);
            want.id = n(2);
            assert_eq!(s.rollout(n(2)).unwrap(), Some(want), "{line}");
            "rollout"
        }
        "event" => {
            let ev = s.events(n(2) - 1, 1).unwrap();
            assert_eq!(
                ev,
                vec![Event {
                    id: n(2),
                    at: k as i64,
                    lock: Some(n(3)),
                    level: EventLevel::Warning,
                    kind: "tick".into(),
                    message: k.to_string(),
                }],
                "{line}"
            );
            "event"
        }
        other => panic!("unknown ack {other}"),
    }
}

/// A small PRNG (xorshift64*): the kill moments.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn kill_rounds(target: &str, check_file: impl Fn()) {
    let seed = std::env::var("KEYWAY_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("kill seed {seed} (KEYWAY_KILL_SEED={seed} replays the moments)");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    let mut total = 0usize;
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for r in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "kill_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, target)
            .env("KEYWAY_KILL_ROUND", r.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("ACK ")
                    && tx.send(a.to_string()).is_err()
                {
                    break;
                }
            }
        });
        // Wait for the first acknowledged write, then kill after a random
        // 0..=400 ms (some rounds mid-iteration, some just after start).
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the child acknowledges a write within a minute");
        let delay = Duration::from_millis(rng.next() % 401);
        let t = Instant::now();
        while t.elapsed() < delay {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child was killed");
        reader.join().unwrap();
        let acks: Vec<String> = std::iter::once(first).chain(rx.try_iter()).collect();
        check_file();
        let s = open(target);
        for a in &acks {
            *kinds.entry(check_ack(s.as_ref(), a)).or_default() += 1;
        }
        println!(
            "round {r}: killed after {delay:?}, {} acknowledged writes all there",
            acks.len()
        );
        total += acks.len();
    }
    println!("{ROUNDS} kills, {total} acknowledged writes checked: {kinds:?}");
}

#[test]
fn sqlite_sigkill_at_random_moments_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    let target = format!("sqlite:{}", path.display());
    kill_rounds(&target, || {
        let raw = rusqlite::Connection::open(&path).unwrap();
        let ok: String = raw
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "SQLite's integrity check after the kill");
    });
}

#[test]
fn postgres_sigkill_at_random_moments_loses_no_acknowledged_write() {
    let Some(schema) = pg_schema("postgres_sigkill_at_random_moments_loses_no_acknowledged_write")
    else {
        return;
    };
    let target = format!("postgres:{}", schema.url);
    kill_rounds(&target, || {});
}
