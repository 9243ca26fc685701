//! The PostgreSQL store: hubs of a property manager sharing one fleet view.
//!
//! * **Client.** The synchronous `postgres` crate (the blocking wrapper of
//!   `tokio-postgres`, which runs its own small runtime per connection).
//!   The [`Store`] trait is synchronous and the hub calls it from blocking
//!   threads (`tokio::task::spawn_blocking`), where blocking on that
//!   private runtime is allowed; a sync facade written here over
//!   `tokio-postgres` would be the same thing with more code. (The tests
//!   call the store from inside `spawn_blocking` to hold this.) Calling it
//!   from an async task directly would panic in `postgres`, as any
//!   blocking call there would stall the runtime: the hub never does.
//! * **One connection per hub** behind a [`Mutex`], reopened when the
//!   server closed it (a restarted database). Several hubs share the
//!   database, so nothing is cached in the process: every call reads the
//!   database.
//! * **Ids from sequences** (`GENERATED ALWAYS AS IDENTITY`): two hubs
//!   adding locks at once get distinct ids.
//! * **Event ids in commit order.** `events(after, limit)` is a cursor: a
//!   client that read up to id N asks for ids above N. Sequence values are
//!   taken at insert but become visible at commit, so two hubs inserting at
//!   once could commit id 8 before id 7, and a reader between the two
//!   commits would skip 7 forever. `add_event` therefore takes the events
//!   table's `EXCLUSIVE` lock (readers are not blocked) for its short
//!   transaction, so ids become visible in order.
//! * **Transactions** wherever a call writes more than one row
//!   (`remove_lock`) or must see one state (the schema migration, under a
//!   transaction-scoped advisory lock so hubs starting together migrate
//!   once). References are foreign keys, and a violation names its
//!   constraint, so a consent for a lock that another hub just removed is
//!   [`StoreError::NoLock`], not a race.
//! * **Durable on return**: the session sets `synchronous_commit = on`
//!   (whatever the database's default), so a commit returns once its WAL
//!   record is flushed.
//! * **Errors.** SQLSTATE class 53 `disk_full` / `insufficient_resources`
//!   is [`StoreError::Full`]; a value that does not decode is
//!   [`StoreError::Corrupt`].
//!
//! The schema and its migrations are in `schema`, the rows' decoding in
//! `rows`; this module connects and implements [`Store`].

use std::sync::{Mutex, MutexGuard};

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row};

use super::codec::*;
use super::{Store, StoreError};
use crate::model::{
    Consent, Digest, Event, Freshness, LeaseClaim, LockId, LockRecord, LogExport, LogHealth,
    ModelAnchors, NewEvent, NewLock, Release, Rollout,
};

mod rows;
mod schema;
use super::decode::*;
use rows::{get, returned_id};
use schema::{MIGRATIONS, migrate};

/// A statement's parameters.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The hub's store in a PostgreSQL database. See the module docs.
pub struct PgStore {
    config: postgres::Config,
    /// `None` only while reconnecting and once dropped.
    client: Mutex<Option<Client>>,
}

/// The connection, held for one call.
struct Conn<'a>(MutexGuard<'a, Option<Client>>);

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        // Invariant: `PgStore::client` returns a `Conn` only once the slot
        // holds a client.
        self.0.as_ref().expect("PgStore::client connected")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("PgStore::client connected")
    }
}

impl Drop for PgStore {
    /// Closing a `postgres::Client` blocks on its private runtime, which
    /// panics inside an async context, where the hub's last handle on
    /// the store may well drop (an axum state at shutdown). The client is
    /// closed on a thread of its own instead.
    fn drop(&mut self) {
        let slot = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.take() {
            let _ = std::thread::spawn(move || drop(c)).join();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// A PostgreSQL error as the store's.
fn pg(e: postgres::Error) -> StoreError {
    match e.code() {
        Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::INSUFFICIENT_RESOURCES => {
            StoreError::Full(e.to_string())
        }
        Some(c) if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => {
            corrupt("the database", e.to_string())
        }
        _ => match e.as_db_error() {
            Some(db) => StoreError::Backend(db.to_string()),
            None => StoreError::Backend(e.to_string()),
        },
    }
}

/// A failed write's error: the typed one `keys` gives for the foreign key
/// it broke, else the backend's.
fn write_err<const N: usize>(e: postgres::Error, keys: [(&str, StoreError); N]) -> StoreError {
    let broke = broken_fkey(&e).map(str::to_owned);
    match broke.and_then(|k| keys.into_iter().find(|(n, _)| *n == k)) {
        Some((_, typed)) => typed,
        None => pg(e),
    }
}

/// The foreign key a failed write broke, if that is why it failed.
fn broken_fkey(e: &postgres::Error) -> Option<&str> {
    if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
        e.as_db_error().and_then(|d| d.constraint())
    } else {
        None
    }
}

fn connect(config: &postgres::Config) -> Result<Client, StoreError> {
    let mut c = config.connect(NoTls).map_err(pg)?;
    c.batch_execute("SET synchronous_commit = on").map_err(pg)?;
    Ok(c)
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host/db`, or
    /// the key-value form), migrating its schema forward. Fails with
    /// [`StoreError::TooNew`] on a database a newer hub migrated.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("the PostgreSQL URL does not parse: {e}")))?;
        if config.get_application_name().is_none() {
            config.application_name("keyway-hub");
        }
        let mut client = connect(&config)?;
        migrate(&mut client)?;
        Ok(PgStore {
            config,
            client: Mutex::new(Some(client)),
        })
    }

    /// The schema version this hub writes.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// The connection, reopened if the server closed it.
    fn client(&self) -> Result<Conn<'_>, StoreError> {
        let mut g = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if g.as_ref().is_none_or(|c| c.is_closed()) {
            *g = None;
            *g = Some(connect(&self.config)?);
        }
        Ok(Conn(g))
    }

    fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        self.client()?.query(sql, params).map_err(pg)
    }

    /// The first `T` a query returns, if any: `SELECT` its columns `rest`.
    fn one<T: FromRow>(&self, rest: &str, params: Params<'_>) -> Result<Option<T>, StoreError> {
        Ok(self.all(rest, params)?.into_iter().next())
    }

    /// Every `T` a query returns: `SELECT` its columns `rest`.
    fn all<T: FromRow>(&self, rest: &str, params: Params<'_>) -> Result<Vec<T>, StoreError> {
        let rows = self.query(&format!("SELECT {} {rest}", T::COLS), params)?;
        rows.iter().map(T::from_row).collect()
    }

    /// Writes a rollout's columns with `sql`: `$1`…`$6` are its release,
    /// wave size, error threshold, state, locks and start; `$7` is `saved`,
    /// the id of the rollout an update saves. A release that does not exist
    /// is [`StoreError::NoRelease`].
    fn write_rollout(
        &self,
        sql: &str,
        ro: &Rollout,
        saved: Option<i64>,
    ) -> Result<Vec<Row>, StoreError> {
        let state = to_json("a rollout's state", &ro.state)?;
        let locks = to_json("a rollout's locks", &ro.locks)?;
        let params: [&(dyn ToSql + Sync); 7] = [
            &&ro.release.0[..],
            &i64::from(ro.wave_size),
            &i16::from(ro.error_threshold_pct),
            &state,
            &locks,
            &ro.started_at,
            &saved,
        ];
        let n = 6 + usize::from(saved.is_some());
        self.client()?.query(sql, &params[..n]).map_err(|e| {
            write_err(
                e,
                [("rollouts_release_fkey", StoreError::NoRelease(ro.release))],
            )
        })
    }

    fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        self.client()?.execute(sql, params).map_err(pg)
    }
}

impl Store for PgStore {
    fn put_model(&self, m: &ModelAnchors) -> Result<(), StoreError> {
        check_model(m)?;
        let pems = to_json("a model's trust anchors", &m.trust_pems)?;
        self.execute(
            "INSERT INTO models (class, vendor_domain, trust_pems, threshold)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (class) DO UPDATE SET vendor_domain = excluded.vendor_domain,
               trust_pems = excluded.trust_pems, threshold = excluded.threshold",
            &[&m.class, &m.vendor_domain, &pems, &i16::from(m.threshold)],
        )?;
        Ok(())
    }

    fn models(&self) -> Result<Vec<ModelAnchors>, StoreError> {
        self.all("FROM models ORDER BY class", &[])
    }

    fn put_release(&self, rel: &Release) -> Result<bool, StoreError> {
        check_release(rel)?;
        let cves = to_json("a release's CVEs", &rel.cves)?;
        let origin = to_json("a release's origin", &rel.origin)?;
        let n = self.execute(
            "INSERT INTO releases (digest, target, class, version, sequence, delta_base,
               notes, cves, origin, added_at, envelope)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (digest) DO NOTHING",
            &[
                &&rel.digest.0[..],
                &rel.target,
                &rel.class,
                &rel.version,
                &seq_to_db(rel.sequence),
                &rel.delta_base.as_ref().map(|d| &d.0[..]),
                &rel.notes,
                &cves,
                &origin,
                &rel.added_at,
                &rel.envelope,
            ],
        )?;
        Ok(n == 1)
    }

    fn release(&self, d: &Digest) -> Result<Option<Release>, StoreError> {
        let rel = self.one::<WithEnvelope>("FROM releases WHERE digest = $1", &[&&d.0[..]])?;
        Ok(rel.map(|r| r.0))
    }

    fn releases(&self, class: Option<&str>) -> Result<Vec<Release>, StoreError> {
        if class.is_some_and(|c| c.contains('\0')) {
            // No class holds a NUL (they are refused on the way in).
            return Ok(Vec::new());
        }
        match class {
            Some(c) => self.all(
                "FROM releases WHERE class = $1 ORDER BY sequence DESC, digest",
                &[&c],
            ),
            None => self.all("FROM releases ORDER BY sequence DESC, digest", &[]),
        }
    }

    fn add_lock(&self, l: &NewLock) -> Result<LockId, StoreError> {
        check_lock(&l.name, &l.address, &l.class)?;
        let log = to_json("a lock's log health", &LogHealth::Unknown)?;
        let rows = self.query(
            "INSERT INTO locks (name, address, class, device_key, auto_install_critical,
               snapshot, last_contact, log)
             VALUES ($1, $2, $3, NULL, FALSE, NULL, NULL, $4) RETURNING id",
            &[&l.name, &l.address, &l.class, &log],
        )?;
        returned_id(&rows)
    }

    fn lock(&self, id: LockId) -> Result<Option<LockRecord>, StoreError> {
        self.one("FROM locks WHERE id = $1", &[&id])
    }

    fn locks(&self) -> Result<Vec<LockRecord>, StoreError> {
        self.all("FROM locks ORDER BY id", &[])
    }

    fn save_lock(&self, l: &LockRecord) -> Result<(), StoreError> {
        let (snapshot, log) = lock_json(l)?;
        let n = self.execute(
            "UPDATE locks SET name = $2, address = $3, class = $4, device_key = $5,
               auto_install_critical = $6, snapshot = $7, last_contact = $8, log = $9
             WHERE id = $1",
            &[
                &l.id,
                &l.name,
                &l.address,
                &l.class,
                &l.device_key.as_ref().map(|k| &k[..]),
                &l.auto_install_critical,
                &snapshot,
                &l.last_contact,
                &log,
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NoLock(l.id));
        }
        Ok(())
    }

    fn remove_lock(&self, id: LockId) -> Result<(), StoreError> {
        let mut c = self.client()?;
        let mut tx = c.transaction().map_err(pg)?;
        tx.execute("DELETE FROM consents WHERE lock = $1", &[&id])
            .map_err(pg)?;
        tx.execute("DELETE FROM logs WHERE lock = $1", &[&id])
            .map_err(pg)?;
        let n = tx
            .execute("DELETE FROM locks WHERE id = $1", &[&id])
            .map_err(pg)?;
        if n == 0 {
            return Err(StoreError::NoLock(id));
        }
        tx.commit().map_err(pg)
    }

    fn put_consent(&self, c: &Consent) -> Result<(), StoreError> {
        let source = to_json("a consent's source", &c.source)?;
        let r = self.client()?.execute(
            "INSERT INTO consents (lock, release, decision, source, at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (lock, release) DO UPDATE SET decision = excluded.decision,
               source = excluded.source, at = excluded.at",
            &[
                &c.lock,
                &&c.release.0[..],
                &decision_to_db(c.decision),
                &source,
                &c.at,
            ],
        );
        r.map(drop).map_err(|e| {
            write_err(
                e,
                [
                    ("consents_lock_fkey", StoreError::NoLock(c.lock)),
                    ("consents_release_fkey", StoreError::NoRelease(c.release)),
                ],
            )
        })
    }

    fn consents(&self, lock: LockId) -> Result<Vec<Consent>, StoreError> {
        self.all(
            "FROM consents WHERE lock = $1 ORDER BY at, release",
            &[&lock],
        )
    }

    fn put_log(&self, e: &LogExport) -> Result<(), StoreError> {
        let r = self.client()?.execute(
            "INSERT INTO logs (lock, fetched_at, first_seq, last_seq, bytes)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &e.lock,
                &e.fetched_at,
                &u64_to_db(e.first_seq),
                &u64_to_db(e.last_seq),
                &e.bytes,
            ],
        );
        r.map(drop)
            .map_err(|err| write_err(err, [("logs_lock_fkey", StoreError::NoLock(e.lock))]))
    }

    fn logs(&self, lock: LockId) -> Result<Vec<LogExport>, StoreError> {
        self.all("FROM logs WHERE lock = $1 ORDER BY id", &[&lock])
    }

    fn create_rollout(&self, ro: &Rollout) -> Result<i64, StoreError> {
        let rows = self.write_rollout(
            "INSERT INTO rollouts (release, wave_size, error_threshold_pct, state, locks,
               started_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            ro,
            None,
        )?;
        returned_id(&rows)
    }

    fn save_rollout(&self, ro: &Rollout) -> Result<(), StoreError> {
        let rows = self.write_rollout(
            "UPDATE rollouts SET release = $1, wave_size = $2, error_threshold_pct = $3,
               state = $4, locks = $5, started_at = $6
             WHERE id = $7 RETURNING id",
            ro,
            Some(ro.id),
        )?;
        if rows.is_empty() {
            return Err(StoreError::NoRollout(ro.id));
        }
        Ok(())
    }

    fn rollout(&self, id: i64) -> Result<Option<Rollout>, StoreError> {
        self.one("FROM rollouts WHERE id = $1", &[&id])
    }

    fn rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        self.all("FROM rollouts ORDER BY id DESC", &[])
    }

    fn add_event(&self, e: &NewEvent<'_>) -> Result<i64, StoreError> {
        check_event(e)?;
        let mut c = self.client()?;
        let mut tx = c.transaction().map_err(pg)?;
        tx.batch_execute("LOCK TABLE events IN EXCLUSIVE MODE")
            .map_err(pg)?;
        let rows = tx
            .query(
                "INSERT INTO events (at, lock, level, kind, message)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&e.at, &e.lock, &level_to_db(e.level), &e.kind, &e.message],
            )
            .map_err(pg)?;
        let id = match rows.first() {
            Some(r) => get(r, 0)?,
            None => return Err(StoreError::Backend("INSERT … RETURNING gave no row".into())),
        };
        tx.commit().map_err(pg)?;
        Ok(id)
    }

    fn events(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.all(
            "FROM events WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after, &i64::from(limit)],
        )
    }

    fn freshness(&self) -> Result<Freshness, StoreError> {
        let f = self.one::<Freshness>("FROM freshness WHERE id = 1", &[])?;
        Ok(f.unwrap_or_default())
    }

    fn set_freshness(&self, f: &Freshness) -> Result<(), StoreError> {
        check_freshness(f)?;
        self.execute(
            "INSERT INTO freshness (id, url, last_fresh_at, timestamp_version,
               timestamp_expires, last_error)
             VALUES (1, $1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET url = excluded.url,
               last_fresh_at = excluded.last_fresh_at,
               timestamp_version = excluded.timestamp_version,
               timestamp_expires = excluded.timestamp_expires,
               last_error = excluded.last_error",
            &[
                &f.url,
                &f.last_fresh_at,
                &f.timestamp_version.map(u64_to_db),
                &f.timestamp_expires,
                &f.last_error,
            ],
        )?;
        Ok(())
    }

    fn try_lease(&self, claim: &LeaseClaim<'_>) -> Result<bool, StoreError> {
        super::codec::check_lease(claim.name, claim.holder)?;
        // One statement: PostgreSQL's ON CONFLICT takes the row lock, so two
        // hubs racing for a free or expired lease cannot both win.
        let n = self.execute(
            "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
               until = excluded.until
             WHERE leases.holder = excluded.holder OR leases.until <= $4",
            &[&claim.name, &claim.holder, &claim.until, &claim.now],
        )?;
        Ok(n == 1)
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        super::codec::check_lease(name, holder)?;
        self.execute(
            "DELETE FROM leases WHERE name = $1 AND holder = $2",
            &[&name, &holder],
        )?;
        Ok(())
    }
}
