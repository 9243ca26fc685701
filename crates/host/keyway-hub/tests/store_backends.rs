//! What each backend promises beyond the shared suite: values changed
//! behind the hub's back are `Corrupt` (never a panic), a store from a
//! newer hub is refused, the PostgreSQL store works from the blocking
//! threads the hub calls it from, and hubs sharing one database see every
//! event through the `events(after, …)` cursor.

mod common;

use common::*;
use keyway_hub::model::*;
use keyway_hub::store::{PgStore, SqliteStore, Store, StoreError};

fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("{what}: expected Corrupt, got {other:?}"),
    }
}

/// The tampering statements (SQL both dialects accept) and the read each
/// one must make fail as Corrupt.
type Tamper = (
    &'static str,
    fn(&dyn Store, LockId) -> Result<(), StoreError>,
);

fn tampering() -> Vec<Tamper> {
    vec![
        ("UPDATE locks SET log = 'not json'", |s, l| {
            s.lock(l).map(drop)
        }),
        ("UPDATE locks SET snapshot = '{\"model\": 3}'", |s, _| {
            s.locks().map(drop)
        }),
        ("UPDATE releases SET cves = '[{\"id\": 1}]'", |s, _| {
            s.releases(None).map(drop)
        }),
        (
            "UPDATE releases SET origin = '{\"kind\": \"ftp\"}'",
            |s, _| s.release(&dg(1)).map(drop),
        ),
        ("UPDATE consents SET decision = 'maybe'", |s, l| {
            s.consents(l).map(drop)
        }),
        (
            "UPDATE consents SET source = '{\"by\": \"cat\"}'",
            |s, l| s.consents(l).map(drop),
        ),
        ("UPDATE rollouts SET state = '[]'", |s, _| {
            s.rollouts().map(drop)
        }),
        ("UPDATE rollouts SET wave_size = -1", |s, _| {
            s.rollouts().map(drop)
        }),
        ("UPDATE events SET level = 'loud'", |s, _| {
            s.events(0, 10).map(drop)
        }),
        ("UPDATE models SET threshold = 300", |s, _| {
            s.models().map(drop)
        }),
        ("UPDATE models SET trust_pems = '{'", |s, _| {
            s.models().map(drop)
        }),
    ]
}

#[test]
fn sqlite_value_changed_behind_the_hubs_back_is_corrupt_not_a_panic() {
    let mut n = 0;
    for (sql, read) in tampering().into_iter().chain([
        (
            "UPDATE releases SET digest = x'0011'",
            (|s: &dyn Store, _| s.releases(None).map(drop)) as fn(&dyn Store, LockId) -> _,
        ),
        ("UPDATE locks SET name = x'ff00'", |s, l| {
            s.lock(l).map(drop)
        }),
        ("UPDATE locks SET device_key = x'01'", |s, l| {
            s.lock(l).map(drop)
        }),
        ("UPDATE consents SET at = 'noon'", |s, l| {
            s.consents(l).map(drop)
        }),
    ]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.sqlite");
        let s = SqliteStore::open(&path).unwrap();
        let l = fill(&s);
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(&format!("PRAGMA foreign_keys=OFF; {sql}"))
            .unwrap();
        assert_corrupt(read(&s, l), sql);
        n += 1;
    }
    println!("{n} tampered values read back as Corrupt");
}

#[test]
fn postgres_value_changed_behind_the_hubs_back_is_corrupt_not_a_panic() {
    let Some(url) = pg_url("postgres_value_changed_behind_the_hubs_back_is_corrupt_not_a_panic")
    else {
        return;
    };
    let mut n = 0;
    for (sql, read) in tampering().into_iter().chain([
        (
            "ALTER TABLE consents DROP CONSTRAINT consents_release_fkey; \
             ALTER TABLE rollouts DROP CONSTRAINT rollouts_release_fkey; \
             UPDATE releases SET digest = '\\x0011'",
            (|s: &dyn Store, _| s.releases(None).map(drop)) as fn(&dyn Store, LockId) -> _,
        ),
        ("UPDATE locks SET device_key = '\\x01'", |s, l| {
            s.lock(l).map(drop)
        }),
    ]) {
        let schema = PgSchema::new(&url);
        let s = schema.store();
        let l = fill(&s);
        let mut raw = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
        raw.batch_execute(sql).unwrap();
        assert_corrupt(read(&s, l), sql);
        n += 1;
    }
    println!("{n} tampered values read back as Corrupt");
}

#[test]
fn sqlite_store_from_a_newer_hub_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    drop(SqliteStore::open(&path).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::TooNew { found, supported }) => {
            assert_eq!((found, supported), (99, SqliteStore::SCHEMA_VERSION))
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
}

#[test]
fn sqlite_file_that_is_not_a_database_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn postgres_store_from_a_newer_hub_is_refused() {
    let Some(schema) = pg_schema("postgres_store_from_a_newer_hub_is_refused") else {
        return;
    };
    drop(schema.store());
    let mut raw = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
    raw.batch_execute("UPDATE schema_version SET version = 99")
        .unwrap();
    match PgStore::connect(&schema.url) {
        Err(StoreError::TooNew { found, supported }) => {
            assert_eq!((found, supported), (99, PgStore::SCHEMA_VERSION))
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
}

#[test]
fn postgres_store_works_from_spawn_blocking() {
    let Some(schema) = pg_schema("postgres_store_works_from_spawn_blocking") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url2 = schema.url.clone();
    rt.block_on(async move {
        // Connect on one blocking thread, use it from others, as the hub's
        // API handlers do.
        let store = std::sync::Arc::new(
            tokio::task::spawn_blocking(move || PgStore::connect(&url2).unwrap())
                .await
                .unwrap(),
        );
        let mut tasks = Vec::new();
        for n in 0..8 {
            let s = store.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                s.add_lock(&new_lock(n)).unwrap()
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 8);
        let s = store.clone();
        let n = tokio::task::spawn_blocking(move || s.locks().unwrap().len())
            .await
            .unwrap();
        assert_eq!(n, 8);
    });
}

#[test]
fn sqlite_store_works_from_spawn_blocking() {
    let (_dir, s) = sqlite();
    let store = std::sync::Arc::new(s);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for n in 0..8 {
            let s = store.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                s.add_lock(&new_lock(n)).unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(store.locks().unwrap().len(), 8);
    });
}

/// Four hubs append events to one database while a client pages through
/// them with the `after` cursor, as the API's event feed does: it must see
/// every event. (Without `add_event`'s table lock, ids commit out of
/// order and the cursor can pass an id that commits later.)
#[test]
fn postgres_event_cursor_misses_nothing_while_several_hubs_append() {
    let Some(schema) = pg_schema("postgres_event_cursor_misses_nothing_while_several_hubs_append")
    else {
        return;
    };
    const HUBS: usize = 4;
    const EACH: usize = 150;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let seen = std::thread::scope(|sc| {
        for h in 0..HUBS {
            let hub = schema.store();
            let done = &done;
            sc.spawn(move || {
                for i in 0..EACH {
                    hub.add_event(&NewEvent {
                        at: i as i64,
                        lock: None,
                        level: EventLevel::Info,
                        kind: "tick",
                        message: &format!("{h}"),
                    })
                    .unwrap();
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let reader = schema.store();
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst) == HUBS;
            let page = reader.events(after, 1000).unwrap();
            if let Some(last) = page.last() {
                after = last.id;
            }
            seen.extend(page.into_iter().map(|e| e.id));
            if finished && reader.events(after, 1).unwrap().is_empty() {
                break seen;
            }
        }
    });
    let all: Vec<i64> = schema
        .store()
        .events(0, u32::MAX)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all.len(), HUBS * EACH);
    assert_eq!(
        seen.len(),
        all.len(),
        "the cursor skipped {} events",
        all.len() - seen.len()
    );
    assert_eq!(seen, all);
}

/// "Survives a restart" for the hub's side of PostgreSQL: when the server
/// drops the hub's connection (a restarted or failed-over database), the
/// call in flight fails with a typed error and the next call reconnects;
/// nothing committed is lost.
#[test]
fn postgres_store_reconnects_after_the_server_drops_its_connection() {
    let Some(url) = pg_url("postgres_store_reconnects_after_the_server_drops_its_connection")
    else {
        return;
    };
    let schema = PgSchema::new(&url);
    let app = format!("kwreconnect_{}", std::process::id());
    let s = PgStore::connect(&format!("{}&application_name={app}", schema.url)).unwrap();
    let id = s.add_lock(&new_lock(1)).unwrap();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap();
    assert_eq!(killed.len(), 1, "the hub's one connection");
    // The first call may see the dropped connection (a typed Backend
    // error, not a panic); the next reconnects.
    match s.locks() {
        Ok(_) | Err(StoreError::Backend(_)) => {}
        Err(e) => panic!("unexpected error {e:?}"),
    }
    assert_eq!(s.lock(id).unwrap().map(|l| l.id), Some(id));
    s.add_lock(&new_lock(2)).unwrap();
    assert_eq!(s.locks().unwrap().len(), 2);
}

/// `keyway hub import` may run while `keyway hub serve` holds the same
/// file: two handles writing at once wait for each other (busy timeout,
/// immediate transactions) instead of failing with "database is locked",
/// and each sees the other's writes.
#[test]
fn sqlite_two_handles_on_one_file_both_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    const EACH: u64 = 60;
    std::thread::scope(|sc| {
        for (h, s) in [(0u64, &a), (1, &b)] {
            sc.spawn(move || {
                for i in 0..EACH {
                    let n = h * 1000 + i;
                    s.put_release(&release(n, "c", n, 2000)).unwrap();
                    s.add_event(&NewEvent {
                        at: n as i64,
                        lock: None,
                        level: EventLevel::Info,
                        kind: "import",
                        message: "",
                    })
                    .unwrap();
                }
            });
        }
    });
    for s in [&a, &b] {
        assert_eq!(s.releases(None).unwrap().len() as u64, 2 * EACH);
        assert_eq!(s.events(0, 1000).unwrap().len() as u64, 2 * EACH);
    }
}

/// The store holds the house's audit logs (who opened which door when):
/// its files are the hub's alone, whatever the umask.
#[cfg(unix)]
#[test]
fn sqlite_store_files_are_private_to_the_hub() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    let s = SqliteStore::open(&path).unwrap();
    s.add_lock(&new_lock(1)).unwrap();
    let mut n = 0;
    for suffix in ["", "-wal", "-shm"] {
        let f = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", f.display());
        n += 1;
    }
    assert_eq!(n, 3);
}
