//! The PostgreSQL schema: its forward migrations, run on connect in one
//! transaction under an advisory lock (hubs sharing the database).

use postgres::Client;

use super::super::StoreError;
use super::super::codec::pending;

use super::pg;
use super::rows::get;

/// The schema's migrations, in order: the store's version is how many
/// have run. The same tables as the SQLite store's.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE models (
        class TEXT PRIMARY KEY,
        vendor_domain TEXT NOT NULL,
        trust_pems TEXT NOT NULL,
        threshold SMALLINT NOT NULL
     );
     CREATE TABLE releases (
        digest BYTEA PRIMARY KEY,
        target TEXT NOT NULL,
        class TEXT NOT NULL,
        version TEXT NOT NULL,
        sequence BIGINT NOT NULL,
        delta_base BYTEA,
        notes TEXT NOT NULL,
        cves TEXT NOT NULL,
        origin TEXT NOT NULL,
        added_at BIGINT NOT NULL,
        envelope BYTEA NOT NULL
     );
     CREATE INDEX releases_by_class ON releases (class, sequence);
     CREATE INDEX releases_by_sequence ON releases (sequence);
     CREATE TABLE locks (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL,
        address TEXT NOT NULL,
        class TEXT NOT NULL,
        device_key BYTEA,
        auto_install_critical BOOLEAN NOT NULL,
        snapshot TEXT,
        last_contact BIGINT,
        log TEXT NOT NULL
     );
     CREATE TABLE consents (
        lock BIGINT NOT NULL CONSTRAINT consents_lock_fkey REFERENCES locks (id) ON DELETE CASCADE,
        release BYTEA NOT NULL CONSTRAINT consents_release_fkey REFERENCES releases (digest),
        decision TEXT NOT NULL,
        source TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (lock, release)
     );
     CREATE TABLE logs (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        lock BIGINT NOT NULL CONSTRAINT logs_lock_fkey REFERENCES locks (id) ON DELETE CASCADE,
        fetched_at BIGINT NOT NULL,
        first_seq BIGINT NOT NULL,
        last_seq BIGINT NOT NULL,
        bytes BYTEA NOT NULL
     );
     CREATE INDEX logs_by_lock ON logs (lock, id);
     CREATE TABLE rollouts (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        release BYTEA NOT NULL CONSTRAINT rollouts_release_fkey REFERENCES releases (digest),
        wave_size BIGINT NOT NULL,
        error_threshold_pct SMALLINT NOT NULL,
        state TEXT NOT NULL,
        locks TEXT NOT NULL,
        started_at BIGINT NOT NULL
     );
     CREATE TABLE events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at BIGINT NOT NULL,
        lock BIGINT,
        level TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL
     );
     CREATE TABLE freshness (
        id SMALLINT PRIMARY KEY CHECK (id = 1),
        url TEXT,
        last_fresh_at BIGINT,
        timestamp_version BIGINT,
        timestamp_expires BIGINT,
        last_error TEXT
     );",
    // 2: leases (hubs sharing one store take turns on a rollout or a lock).
    "CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until BIGINT NOT NULL
     );",
];

/// The advisory-lock key the schema migration holds ("keyw").
pub(super) const MIGRATION_LOCK: i64 = 0x6b65_7977;

pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .map_err(pg)?;
    let rows = tx
        .query("SELECT version FROM schema_version", &[])
        .map_err(pg)?;
    let found: i64 = match rows.first() {
        Some(r) => get(r, 0)?,
        None => 0,
    };
    for m in pending(found, MIGRATIONS)? {
        tx.batch_execute(m).map_err(pg)?;
    }
    let supported = MIGRATIONS.len() as i64;
    if found == 0 {
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&supported],
        )
        .map_err(pg)?;
    } else if found < supported {
        tx.execute("UPDATE schema_version SET version = $1", &[&supported])
            .map_err(pg)?;
    }
    tx.commit().map_err(pg)
}
