//! The SQLite store: the hub's embedded default, one file.
//!
//! * **Durable on return.** The journal is a write-ahead log
//!   (`journal_mode=WAL`) with `synchronous=FULL`: SQLite syncs the WAL on
//!   every commit, so a call returns only once what it wrote survives a
//!   SIGKILL or a power cut. Every call that writes more than one row (or
//!   checks before it writes) runs in one transaction (`BEGIN IMMEDIATE`).
//! * **One connection** behind a [`Mutex`]: SQLite serialises writers
//!   anyway, and the hub's store calls are short. Reads see every write
//!   before them. A second process on the same file (`keyway hub import`
//!   while `serve` runs) waits up to five seconds for the file's lock.
//! * **Schema** in `schema_version` with forward migrations run on open, in
//!   one transaction; a store from a newer hub is refused.
//! * **Errors.** `SQLITE_FULL` (SQLite's answer to `ENOSPC`) is
//!   [`StoreError::Full`] and the transaction rolls back: nothing is
//!   written, and what was there stays. A value that does not decode (a
//!   wrong column type, a digest of the wrong length, JSON that is not the
//!   model's) is [`StoreError::Corrupt`]. Foreign keys are on, and the
//!   calls check them first so the error is typed
//!   ([`StoreError::NoLock`], [`StoreError::NoRelease`]).
//!
//! The schema and its migrations are in `schema`, the rows' decoding in
//! `rows`; this module opens the store and implements [`Store`].

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, ErrorCode, Transaction, params};

use super::codec::*;
use super::{Store, StoreError};
use crate::model::{
    Consent, Digest, Event, Freshness, LeaseClaim, LockId, LockRecord, LogExport, LogHealth,
    ModelAnchors, NewEvent, NewLock, Release, Rollout,
};

mod rows;
mod schema;
use super::decode::*;
use rows::{all, lock_exists, one, release_exists, rollout_exists};
use schema::{MIGRATIONS, create_private, migrate};

/// The hub's store in one SQLite file. See the module docs.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// A rusqlite error as the store's.
fn sq(e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match &e {
        E::SqliteFailure(f, _) => match f.code {
            ErrorCode::DiskFull => StoreError::Full(e.to_string()),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                corrupt("the database file", e.to_string())
            }
            _ => StoreError::Backend(e.to_string()),
        },
        E::InvalidColumnType(..)
        | E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::Utf8Error(..) => corrupt("a column", e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

impl SqliteStore {
    /// Opens (creating if absent) the store at `path`, migrating its schema
    /// forward. Fails with [`StoreError::TooNew`] on a store from a newer
    /// hub.
    ///
    /// A new file is created readable by its owner only (0600 on Unix;
    /// SQLite gives its `-wal` and `-shm` files the same mode): the store
    /// holds the house's audit logs, who opened which door when.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref();
        create_private(path)?;
        let conn = Connection::open(path).map_err(sq)?;
        SqliteStore::setup(conn, true)
    }

    /// A store in memory (for tests and demos): nothing survives the
    /// process.
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory().map_err(sq)?;
        SqliteStore::setup(conn, false)
    }

    fn setup(mut conn: Connection, file: bool) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sq)?;
        if file {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(sq)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Backend(format!(
                    "SQLite would not use a write-ahead log (journal_mode is {mode})"
                )));
            }
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sq)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sq)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    /// The schema version this hub writes.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection leaves no transaction open
        // (rusqlite rolls back on drop), so the connection is still good.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in an immediate transaction and commits.
    /// Writes a rollout's columns with `sql` in one transaction: `?1`…`?6`
    /// are its release, wave size, error threshold, state, locks and start;
    /// `?7` is `saved`, the id of the rollout an update saves, which must
    /// exist ([`StoreError::NoRollout`]). Its release must exist
    /// ([`StoreError::NoRelease`]). The rows changed and the last id
    /// inserted.
    fn write_rollout(
        &self,
        sql: &str,
        ro: &Rollout,
        saved: Option<i64>,
    ) -> Result<(usize, i64), StoreError> {
        let state = to_json("a rollout's state", &ro.state)?;
        let locks = to_json("a rollout's locks", &ro.locks)?;
        self.write(|tx| {
            if let Some(id) = saved
                && !rollout_exists(tx, id)?
            {
                return Err(StoreError::NoRollout(id));
            }
            if !release_exists(tx, &ro.release)? {
                return Err(StoreError::NoRelease(ro.release));
            }
            let params: [&dyn rusqlite::ToSql; 7] = [
                &&ro.release.0[..],
                &ro.wave_size,
                &ro.error_threshold_pct,
                &state,
                &locks,
                &ro.started_at,
                &saved,
            ];
            let n = tx
                .execute(sql, &params[..6 + usize::from(saved.is_some())])
                .map_err(sq)?;
            Ok((n, tx.last_insert_rowid()))
        })
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sq)?;
        let out = f(&tx)?;
        tx.commit().map_err(sq)?;
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn put_model(&self, m: &ModelAnchors) -> Result<(), StoreError> {
        check_model(m)?;
        let pems = to_json("a model's trust anchors", &m.trust_pems)?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO models (class, vendor_domain, trust_pems, threshold)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (class) DO UPDATE SET vendor_domain = excluded.vendor_domain,
                   trust_pems = excluded.trust_pems, threshold = excluded.threshold",
                params![m.class, m.vendor_domain, pems, m.threshold],
            )
            .map_err(sq)?;
            Ok(())
        })
    }

    fn models(&self) -> Result<Vec<ModelAnchors>, StoreError> {
        all(&self.conn(), "FROM models ORDER BY class", [])
    }

    fn put_release(&self, rel: &Release) -> Result<bool, StoreError> {
        check_release(rel)?;
        let cves = to_json("a release's CVEs", &rel.cves)?;
        let origin = to_json("a release's origin", &rel.origin)?;
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO releases (digest, target, class, version, sequence, delta_base,
                       notes, cves, origin, added_at, envelope)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (digest) DO NOTHING",
                    params![
                        &rel.digest.0[..],
                        rel.target,
                        rel.class,
                        rel.version,
                        seq_to_db(rel.sequence),
                        rel.delta_base.as_ref().map(|d| &d.0[..]),
                        rel.notes,
                        cves,
                        origin,
                        rel.added_at,
                        rel.envelope,
                    ],
                )
                .map_err(sq)?;
            Ok(n == 1)
        })
    }

    fn release(&self, d: &Digest) -> Result<Option<Release>, StoreError> {
        let rel = one::<WithEnvelope>(&self.conn(), "FROM releases WHERE digest = ?1", [&d.0[..]])?;
        Ok(rel.map(|r| r.0))
    }

    fn releases(&self, class: Option<&str>) -> Result<Vec<Release>, StoreError> {
        if class.is_some_and(|c| c.contains('\0')) {
            // No class holds a NUL (they are refused on the way in).
            return Ok(Vec::new());
        }
        let conn = self.conn();
        match class {
            Some(c) => all(
                &conn,
                "FROM releases WHERE class = ?1 ORDER BY sequence DESC, digest",
                [c],
            ),
            None => all(&conn, "FROM releases ORDER BY sequence DESC, digest", []),
        }
    }

    fn add_lock(&self, l: &NewLock) -> Result<LockId, StoreError> {
        check_lock(&l.name, &l.address, &l.class)?;
        let log = to_json("a lock's log health", &LogHealth::Unknown)?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO locks (name, address, class, device_key, auto_install_critical,
                   snapshot, last_contact, log)
                 VALUES (?1, ?2, ?3, NULL, 0, NULL, NULL, ?4)",
                params![l.name, l.address, l.class, log],
            )
            .map_err(sq)?;
            Ok(tx.last_insert_rowid())
        })
    }

    fn lock(&self, id: LockId) -> Result<Option<LockRecord>, StoreError> {
        one(&self.conn(), "FROM locks WHERE id = ?1", [id])
    }

    fn locks(&self) -> Result<Vec<LockRecord>, StoreError> {
        all(&self.conn(), "FROM locks ORDER BY id", [])
    }

    fn save_lock(&self, l: &LockRecord) -> Result<(), StoreError> {
        let (snapshot, log) = lock_json(l)?;
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE locks SET name = ?2, address = ?3, class = ?4, device_key = ?5,
                       auto_install_critical = ?6, snapshot = ?7, last_contact = ?8, log = ?9
                     WHERE id = ?1",
                    params![
                        l.id,
                        l.name,
                        l.address,
                        l.class,
                        l.device_key.as_ref().map(|k| &k[..]),
                        l.auto_install_critical,
                        snapshot,
                        l.last_contact,
                        log
                    ],
                )
                .map_err(sq)?;
            if n == 0 {
                return Err(StoreError::NoLock(l.id));
            }
            Ok(())
        })
    }

    fn remove_lock(&self, id: LockId) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM consents WHERE lock = ?1", [id])
                .map_err(sq)?;
            tx.execute("DELETE FROM logs WHERE lock = ?1", [id])
                .map_err(sq)?;
            let n = tx
                .execute("DELETE FROM locks WHERE id = ?1", [id])
                .map_err(sq)?;
            if n == 0 {
                return Err(StoreError::NoLock(id));
            }
            Ok(())
        })
    }

    fn put_consent(&self, c: &Consent) -> Result<(), StoreError> {
        let source = to_json("a consent's source", &c.source)?;
        self.write(|tx| {
            if !lock_exists(tx, c.lock)? {
                return Err(StoreError::NoLock(c.lock));
            }
            if !release_exists(tx, &c.release)? {
                return Err(StoreError::NoRelease(c.release));
            }
            tx.execute(
                "INSERT INTO consents (lock, release, decision, source, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (lock, release) DO UPDATE SET decision = excluded.decision,
                   source = excluded.source, at = excluded.at",
                params![
                    c.lock,
                    &c.release.0[..],
                    decision_to_db(c.decision),
                    source,
                    c.at
                ],
            )
            .map_err(sq)?;
            Ok(())
        })
    }

    fn consents(&self, lock: LockId) -> Result<Vec<Consent>, StoreError> {
        all(
            &self.conn(),
            "FROM consents WHERE lock = ?1 ORDER BY at, release",
            [lock],
        )
    }

    fn put_log(&self, e: &LogExport) -> Result<(), StoreError> {
        self.write(|tx| {
            if !lock_exists(tx, e.lock)? {
                return Err(StoreError::NoLock(e.lock));
            }
            tx.execute(
                "INSERT INTO logs (lock, fetched_at, first_seq, last_seq, bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    e.lock,
                    e.fetched_at,
                    u64_to_db(e.first_seq),
                    u64_to_db(e.last_seq),
                    e.bytes
                ],
            )
            .map_err(sq)?;
            Ok(())
        })
    }

    fn logs(&self, lock: LockId) -> Result<Vec<LogExport>, StoreError> {
        all(
            &self.conn(),
            "FROM logs WHERE lock = ?1 ORDER BY id",
            [lock],
        )
    }

    fn create_rollout(&self, ro: &Rollout) -> Result<i64, StoreError> {
        let (_, id) = self.write_rollout(
            "INSERT INTO rollouts (release, wave_size, error_threshold_pct, state, locks,
               started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            ro,
            None,
        )?;
        Ok(id)
    }

    fn save_rollout(&self, ro: &Rollout) -> Result<(), StoreError> {
        let (n, _) = self.write_rollout(
            "UPDATE rollouts SET release = ?1, wave_size = ?2, error_threshold_pct = ?3,
               state = ?4, locks = ?5, started_at = ?6
             WHERE id = ?7",
            ro,
            Some(ro.id),
        )?;
        if n == 0 {
            return Err(StoreError::NoRollout(ro.id));
        }
        Ok(())
    }

    fn rollout(&self, id: i64) -> Result<Option<Rollout>, StoreError> {
        one(&self.conn(), "FROM rollouts WHERE id = ?1", [id])
    }

    fn rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        all(&self.conn(), "FROM rollouts ORDER BY id DESC", [])
    }

    fn add_event(&self, e: &NewEvent<'_>) -> Result<i64, StoreError> {
        check_event(e)?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO events (at, lock, level, kind, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.at, e.lock, level_to_db(e.level), e.kind, e.message],
            )
            .map_err(sq)?;
            Ok(tx.last_insert_rowid())
        })
    }

    fn events(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        all(
            &self.conn(),
            "FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
            params![after, limit],
        )
    }

    fn freshness(&self) -> Result<Freshness, StoreError> {
        let f = one::<Freshness>(&self.conn(), "FROM freshness WHERE id = 1", [])?;
        Ok(f.unwrap_or_default())
    }

    fn set_freshness(&self, f: &Freshness) -> Result<(), StoreError> {
        check_freshness(f)?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO freshness (id, url, last_fresh_at, timestamp_version,
                   timestamp_expires, last_error)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET url = excluded.url,
                   last_fresh_at = excluded.last_fresh_at,
                   timestamp_version = excluded.timestamp_version,
                   timestamp_expires = excluded.timestamp_expires,
                   last_error = excluded.last_error",
                params![
                    f.url,
                    f.last_fresh_at,
                    f.timestamp_version.map(u64_to_db),
                    f.timestamp_expires,
                    f.last_error
                ],
            )
            .map_err(sq)?;
            Ok(())
        })
    }

    fn try_lease(&self, claim: &LeaseClaim<'_>) -> Result<bool, StoreError> {
        super::codec::check_lease(claim.name, claim.holder)?;
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                       until = excluded.until
                     WHERE leases.holder = excluded.holder OR leases.until <= ?4",
                    params![claim.name, claim.holder, claim.until, claim.now],
                )
                .map_err(sq)?;
            Ok(n == 1)
        })
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        super::codec::check_lease(name, holder)?;
        self.write(|tx| {
            tx.execute(
                "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
                params![name, holder],
            )
            .map_err(sq)?;
            Ok(())
        })
    }
}
