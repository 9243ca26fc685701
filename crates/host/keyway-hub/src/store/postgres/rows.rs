//! Rows to the model's values (every column checked: a value that does
//! not decode is [`StoreError::Corrupt`]).

use postgres::Row;
use postgres::types::FromSql;

use super::super::StoreError;
use super::super::codec::{corrupt, digest, from_json, key, seq_from_db, small};
use crate::model::{LockRecord, LogHealth, Release, Rollout};

/// A column read back; a value of the wrong type is corrupt.
pub(super) fn get<'a, T: FromSql<'a>>(r: &'a Row, i: usize) -> Result<T, StoreError> {
    r.try_get(i).map_err(|e| {
        corrupt(
            &format!("column {}", r.columns().get(i).map_or("?", |c| c.name())),
            e.to_string(),
        )
    })
}

pub(super) const RELEASE_COLS: &str =
    "digest, target, class, version, sequence, delta_base, notes, cves, origin, added_at";

pub(super) fn release_row(r: &Row) -> Result<Release, StoreError> {
    let d: &[u8] = get(r, 0)?;
    let base: Option<&[u8]> = get(r, 5)?;
    let cves: &str = get(r, 7)?;
    let origin: &str = get(r, 8)?;
    Ok(Release {
        digest: digest("a release's digest", d)?,
        target: get(r, 1)?,
        class: get(r, 2)?,
        version: get(r, 3)?,
        sequence: seq_from_db(get(r, 4)?),
        delta_base: base
            .map(|b| digest("a release's delta base", b))
            .transpose()?,
        notes: get(r, 6)?,
        cves: from_json("a release's CVEs", cves)?,
        origin: from_json("a release's origin", origin)?,
        added_at: get(r, 9)?,
        envelope: Vec::new(),
    })
}

pub(super) const LOCK_COLS: &str =
    "id, name, address, class, device_key, auto_install_critical, snapshot, last_contact, log";

pub(super) fn lock_row(r: &Row) -> Result<LockRecord, StoreError> {
    let key_bytes: Option<&[u8]> = get(r, 4)?;
    let snapshot: Option<&str> = get(r, 6)?;
    let log: &str = get(r, 8)?;
    Ok(LockRecord {
        id: get(r, 0)?,
        name: get(r, 1)?,
        address: get(r, 2)?,
        class: get(r, 3)?,
        device_key: key_bytes
            .map(|b| key("a lock's device key", b))
            .transpose()?,
        auto_install_critical: get(r, 5)?,
        snapshot: snapshot
            .map(|s| from_json("a lock's snapshot", s))
            .transpose()?,
        last_contact: get(r, 7)?,
        log: from_json::<LogHealth>("a lock's log health", log)?,
    })
}

pub(super) const ROLLOUT_COLS: &str =
    "id, release, wave_size, error_threshold_pct, state, locks, started_at";

pub(super) fn rollout_row(r: &Row) -> Result<Rollout, StoreError> {
    let d: &[u8] = get(r, 1)?;
    let state: &str = get(r, 4)?;
    let locks: &str = get(r, 5)?;
    Ok(Rollout {
        id: get(r, 0)?,
        release: digest("a rollout's release", d)?,
        wave_size: small("a rollout's wave size", get::<i64>(r, 2)?)?,
        error_threshold_pct: small("a rollout's error threshold", i64::from(get::<i16>(r, 3)?))?,
        state: from_json("a rollout's state", state)?,
        locks: from_json("a rollout's locks", locks)?,
        started_at: get(r, 6)?,
    })
}

pub(super) fn collect<T>(
    rows: Vec<Row>,
    f: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(f).collect()
}
