//! Rows to the model's values (every column checked: a value that does
//! not decode is [`StoreError::Corrupt`]).

use rusqlite::{Connection, OptionalExtension, Row};

use super::super::StoreError;
use super::super::codec::{digest, from_json, key, seq_from_db, small};
use crate::model::{Digest, LockId, LockRecord, LogHealth, Release, Rollout};

use super::sq;

pub(super) fn lock_exists(tx: &Connection, id: LockId) -> Result<bool, StoreError> {
    tx.query_row("SELECT 1 FROM locks WHERE id = ?1", [id], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
        .map_err(sq)
}

pub(super) fn release_exists(tx: &Connection, d: &Digest) -> Result<bool, StoreError> {
    tx.query_row(
        "SELECT 1 FROM releases WHERE digest = ?1",
        [&d.0[..]],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
    .map_err(sq)
}

pub(super) const RELEASE_COLS: &str =
    "digest, target, class, version, sequence, delta_base, notes, cves, origin, added_at";

/// A release row (its envelope read separately).
pub(super) fn release_row(r: &Row<'_>) -> Result<Release, StoreError> {
    let d: Vec<u8> = r.get(0).map_err(sq)?;
    let base: Option<Vec<u8>> = r.get(5).map_err(sq)?;
    let cves: String = r.get(7).map_err(sq)?;
    let origin: String = r.get(8).map_err(sq)?;
    Ok(Release {
        digest: digest("a release's digest", &d)?,
        target: r.get(1).map_err(sq)?,
        class: r.get(2).map_err(sq)?,
        version: r.get(3).map_err(sq)?,
        sequence: seq_from_db(r.get(4).map_err(sq)?),
        delta_base: base
            .map(|b| digest("a release's delta base", &b))
            .transpose()?,
        notes: r.get(6).map_err(sq)?,
        cves: from_json("a release's CVEs", &cves)?,
        origin: from_json("a release's origin", &origin)?,
        added_at: r.get(9).map_err(sq)?,
        envelope: Vec::new(),
    })
}

pub(super) const LOCK_COLS: &str =
    "id, name, address, class, device_key, auto_install_critical, snapshot, last_contact, log";

pub(super) fn lock_row(r: &Row<'_>) -> Result<LockRecord, StoreError> {
    let key_bytes: Option<Vec<u8>> = r.get(4).map_err(sq)?;
    let snapshot: Option<String> = r.get(6).map_err(sq)?;
    let log: String = r.get(8).map_err(sq)?;
    Ok(LockRecord {
        id: r.get(0).map_err(sq)?,
        name: r.get(1).map_err(sq)?,
        address: r.get(2).map_err(sq)?,
        class: r.get(3).map_err(sq)?,
        device_key: key_bytes
            .map(|b| key("a lock's device key", &b))
            .transpose()?,
        auto_install_critical: r.get(5).map_err(sq)?,
        snapshot: snapshot
            .map(|s| from_json("a lock's snapshot", &s))
            .transpose()?,
        last_contact: r.get(7).map_err(sq)?,
        log: from_json::<LogHealth>("a lock's log health", &log)?,
    })
}

pub(super) const ROLLOUT_COLS: &str =
    "id, release, wave_size, error_threshold_pct, state, locks, started_at";

pub(super) fn rollout_row(r: &Row<'_>) -> Result<Rollout, StoreError> {
    let d: Vec<u8> = r.get(1).map_err(sq)?;
    let state: String = r.get(4).map_err(sq)?;
    let locks: String = r.get(5).map_err(sq)?;
    Ok(Rollout {
        id: r.get(0).map_err(sq)?,
        release: digest("a rollout's release", &d)?,
        wave_size: small("a rollout's wave size", r.get(2).map_err(sq)?)?,
        error_threshold_pct: small("a rollout's error threshold", r.get(3).map_err(sq)?)?,
        state: from_json("a rollout's state", &state)?,
        locks: from_json("a rollout's locks", &locks)?,
        started_at: r.get(6).map_err(sq)?,
    })
}

/// Runs a query and decodes every row with `f`.
/// The first row a query returns, if any.
pub(super) fn first<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    Ok(collect(conn, sql, params, f)?.into_iter().next())
}

pub(super) fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sq)?;
    let mut rows = stmt.query(params).map_err(sq)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(sq)? {
        out.push(f(r)?);
    }
    Ok(out)
}
