//! The hub's store hot paths on SQLite and PostgreSQL, side by side in one
//! run:
//!
//! ```text
//! eval "$(scripts/postgres.sh)"
//! cargo run --release -p keyway-hub --example store_bench
//! ```
//!
//! Each operation runs on both backends, interleaved (SQLite, PostgreSQL,
//! SQLite, …) so both see the same machine load; the table gives the
//! median and the 90th percentile per call and PostgreSQL's median over
//! SQLite's. Every write is durable on return in both (SQLite
//! `synchronous=FULL` in WAL mode, PostgreSQL `synchronous_commit=on`), so
//! the writes' times are mostly the disk's sync. The SQLite file is under
//! `target/` (the same disk as the PostgreSQL cluster that
//! `scripts/postgres.sh` starts there). Without `KEYWAY_TEST_POSTGRES` it
//! times SQLite alone and says so.
//!
//! Options: `--iters N` (writes per operation, default 200), `--dir DIR`
//! (where the SQLite file goes).

use std::time::{Duration, Instant};

use keyway_hub::model::*;
use keyway_hub::store::{PgStore, SqliteStore, Store};

fn dg(n: u64) -> Digest {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&n.to_be_bytes());
    d[8] = 0xbe;
    Digest(d)
}

fn release(n: u64, len: usize) -> Release {
    Release {
        digest: dg(n),
        target: format!("lock/{n}.suit"),
        class: "lock".into(),
        version: format!("1.{n}.0"),
        sequence: n,
        delta_base: None,
        notes: "Fixes the bolt's debounce.".into(),
        cves: vec![CveFix {
            id: "CVE-2026-0001".into(),
            severity: Severity::High,
        }],
        origin: ReleaseOrigin::Tuf {
            url: "https://updates.example/".into(),
        },
        added_at: 1_800_000_000,
        envelope: (0..len).map(|i| (i as u64 ^ n) as u8).collect(),
    }
}

fn record(id: LockId, n: u64) -> LockRecord {
    LockRecord {
        id,
        name: format!("door {id}"),
        address: format!("udp:10.0.{}.{}:1337", id / 250, id % 250),
        class: "lock".into(),
        device_key: Some([7; 32]),
        auto_install_critical: true,
        snapshot: Some(LockSnapshot {
            model: "nrf52840".into(),
            version: "1.2.0".into(),
            image: Some(dg(n)),
            update: UpdateState::Postponed {
                release: dg(1),
                reason: Postponement::BatteryLow {
                    have_mwh: n,
                    need_mwh: 900,
                },
            },
            battery_mwh: n,
            door: Door::Closed,
            bolt: Bolt::Locked,
            tamper: false,
        }),
        last_contact: Some(1_800_000_000 + n as i64),
        log: LogHealth::Intact {
            last_seq: n,
            at: 1_800_000_000,
        },
    }
}

/// The backends under test.
struct Backend {
    name: &'static str,
    store: Box<dyn Store>,
    locks: Vec<LockId>,
}

/// Times `f` on every backend, interleaved, `iters` times each.
fn time(
    backends: &mut [Backend],
    iters: u64,
    mut f: impl FnMut(&mut Backend, u64),
) -> Vec<Vec<Duration>> {
    let mut out = vec![Vec::new(); backends.len()];
    for i in 0..iters {
        for (b, o) in backends.iter_mut().zip(out.iter_mut()) {
            let t = Instant::now();
            f(b, i);
            o.push(t.elapsed());
        }
    }
    out
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let iters: u64 = arg("--iters").and_then(|v| v.parse().ok()).unwrap_or(200);
    let root = arg("--dir")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../target/store-bench")
        });
    std::fs::create_dir_all(&root).expect("create the bench directory");
    let dir = tempfile::tempdir_in(&root).expect("a temporary directory");
    let sqlite = SqliteStore::open(dir.path().join("hub.sqlite")).expect("open SQLite");
    let mut backends = vec![Backend {
        name: "SQLite",
        store: Box::new(sqlite),
        locks: Vec::new(),
    }];

    // PostgreSQL in a schema of its own, dropped at the end.
    let pg_base = std::env::var("KEYWAY_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty());
    let schema = format!("kwbench_{}", std::process::id());
    if let Some(base) = &pg_base {
        let mut admin = postgres::Client::connect(base, postgres::NoTls)
            .expect("connect to KEYWAY_TEST_POSTGRES");
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .expect("create the bench schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        backends.push(Backend {
            name: "PostgreSQL",
            store: Box::new(PgStore::connect(&url).expect("open PostgreSQL")),
            locks: Vec::new(),
        });
    } else {
        println!(
            "KEYWAY_TEST_POSTGRES is unset: SQLite only (eval \"$(scripts/postgres.sh)\" first for the side-by-side run)"
        );
    }

    // The fleet: 1,000 locks with full records, and a release to consent to.
    for b in backends.iter_mut() {
        b.store.put_release(&release(0, 1000)).unwrap();
        for n in 0..1000 {
            let id = b
                .store
                .add_lock(&NewLock {
                    name: format!("door {n}"),
                    address: "udp:10.0.0.1:1337".into(),
                    class: "lock".into(),
                })
                .unwrap();
            b.store.save_lock(&record(id, n)).unwrap();
            b.locks.push(id);
        }
    }

    let mut rows: Vec<(&str, Vec<Vec<Duration>>)> = Vec::new();
    rows.push((
        "save a lock record",
        time(&mut backends, iters, |b, i| {
            let id = b.locks[(i % 1000) as usize];
            b.store.save_lock(&record(id, i + 5000)).unwrap();
        }),
    ));
    rows.push((
        "put a consent",
        time(&mut backends, iters, |b, i| {
            b.store
                .put_consent(&Consent {
                    lock: b.locks[(i % 1000) as usize],
                    release: dg(0),
                    decision: Decision::Accept,
                    source: ConsentSource::Owner,
                    at: i as i64,
                })
                .unwrap();
        }),
    ));
    rows.push((
        "add an event",
        time(&mut backends, iters, |b, i| {
            b.store
                .add_event(&NewEvent {
                    at: i as i64,
                    lock: Some(b.locks[0]),
                    level: EventLevel::Info,
                    kind: "install_postponed",
                    message: "the bolt is locked: the install waits",
                })
                .unwrap();
        }),
    ));
    rows.push((
        "list 1,000 locks",
        time(&mut backends, (iters / 10).max(5), |b, _| {
            assert_eq!(b.store.locks().unwrap().len(), 1000);
        }),
    ));
    rows.push((
        "put a 100 KB release",
        time(&mut backends, iters, |b, i| {
            assert!(b.store.put_release(&release(i + 1, 100 * 1024)).unwrap());
        }),
    ));

    println!(
        "keyway-hub store, {iters} writes per operation (lists: {}), durable on return",
        (iters / 10).max(5)
    );
    let mut header = format!("{:<22}", "operation");
    for b in &backends {
        header += &format!(" | {:>10} median | {:>8} p90", b.name, b.name);
    }
    if backends.len() == 2 {
        header += " | PostgreSQL / SQLite";
    }
    println!("{header}");
    for (name, mut per) in rows {
        let mut line = format!("{name:<22}");
        let mut medians = Vec::new();
        for v in per.iter_mut() {
            let m = pct(v, 0.5);
            let p90 = pct(v, 0.9);
            medians.push(m);
            line += &format!(" | {:>17} | {:>12}", us(m), us(p90),);
        }
        if medians.len() == 2 {
            line += &format!(
                " | {:.2}×",
                medians[1].as_secs_f64() / medians[0].as_secs_f64()
            );
        }
        println!("{line}");
    }

    drop(backends);
    if let Some(base) = &pg_base
        && let Ok(mut admin) = postgres::Client::connect(base, postgres::NoTls)
    {
        let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
    }
}
