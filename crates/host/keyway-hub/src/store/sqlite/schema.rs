//! The SQLite schema: its forward migrations, run on open in one
//! transaction, and the store file created private to its owner.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::super::StoreError;
use super::super::codec::pending;

use super::sq;

/// The schema's migrations, in order: the store's version is how many
/// have run.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE models (
        class TEXT PRIMARY KEY,
        vendor_domain TEXT NOT NULL,
        trust_pems TEXT NOT NULL,
        threshold INTEGER NOT NULL
     );
     CREATE TABLE releases (
        digest BLOB PRIMARY KEY,
        target TEXT NOT NULL,
        class TEXT NOT NULL,
        version TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        delta_base BLOB,
        notes TEXT NOT NULL,
        cves TEXT NOT NULL,
        origin TEXT NOT NULL,
        added_at INTEGER NOT NULL,
        envelope BLOB NOT NULL
     );
     CREATE INDEX releases_by_class ON releases (class, sequence);
     CREATE INDEX releases_by_sequence ON releases (sequence);
     CREATE TABLE locks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        address TEXT NOT NULL,
        class TEXT NOT NULL,
        device_key BLOB,
        auto_install_critical INTEGER NOT NULL,
        snapshot TEXT,
        last_contact INTEGER,
        log TEXT NOT NULL
     );
     CREATE TABLE consents (
        lock INTEGER NOT NULL REFERENCES locks (id) ON DELETE CASCADE,
        release BLOB NOT NULL REFERENCES releases (digest),
        decision TEXT NOT NULL,
        source TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (lock, release)
     );
     CREATE TABLE logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        lock INTEGER NOT NULL REFERENCES locks (id) ON DELETE CASCADE,
        fetched_at INTEGER NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        bytes BLOB NOT NULL
     );
     CREATE INDEX logs_by_lock ON logs (lock, id);
     CREATE TABLE rollouts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        release BLOB NOT NULL REFERENCES releases (digest),
        wave_size INTEGER NOT NULL,
        error_threshold_pct INTEGER NOT NULL,
        state TEXT NOT NULL,
        locks TEXT NOT NULL,
        started_at INTEGER NOT NULL
     );
     CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        lock INTEGER,
        level TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL
     );
     CREATE TABLE freshness (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        url TEXT,
        last_fresh_at INTEGER,
        timestamp_version INTEGER,
        timestamp_expires INTEGER,
        last_error TEXT
     );",
    // 2: leases (hubs sharing one store take turns on a rollout or a lock).
    "CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until INTEGER NOT NULL
     );",
];

/// Creates `path` empty with mode 0600 if it does not exist.
pub(super) fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.raw_os_error() == Some(28) => Err(StoreError::Full(format!(
            "creating {}: {e}",
            path.display()
        ))),
        Err(e) => Err(StoreError::Backend(format!(
            "creating {}: {e}",
            path.display()
        ))),
    }
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sq)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(sq)?;
    let found: Option<i64> = tx
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()
        .map_err(sq)?;
    let found = found.unwrap_or(0);
    for m in pending(found, MIGRATIONS)? {
        tx.execute_batch(m).map_err(sq)?;
    }
    let supported = MIGRATIONS.len() as i64;
    if found == 0 {
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [supported],
        )
        .map_err(sq)?;
    } else if found < supported {
        tx.execute("UPDATE schema_version SET version = ?1", [supported])
            .map_err(sq)?;
    }
    tx.commit().map_err(sq)
}
