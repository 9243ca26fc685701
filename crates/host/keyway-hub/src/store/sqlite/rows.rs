//! Reading a row's columns, running a query, and the existence checks
//! that type a write's error; the rows' decoding is the shared `decode`.

use rusqlite::{Connection, OptionalExtension, Row};

use super::super::StoreError;
use super::super::decode::{Columns, FromRow, Value};
use crate::model::{Digest, LockId};

use super::sq;

/// Whether a `SELECT 1 …` finds a row.
fn exists(tx: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<bool, StoreError> {
    tx.query_row(sql, params, |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
        .map_err(sq)
}

pub(super) fn lock_exists(tx: &Connection, id: LockId) -> Result<bool, StoreError> {
    exists(tx, "SELECT 1 FROM locks WHERE id = ?1", [id])
}

pub(super) fn rollout_exists(tx: &Connection, id: i64) -> Result<bool, StoreError> {
    exists(tx, "SELECT 1 FROM rollouts WHERE id = ?1", [id])
}

pub(super) fn release_exists(tx: &Connection, d: &Digest) -> Result<bool, StoreError> {
    exists(tx, "SELECT 1 FROM releases WHERE digest = ?1", [&d.0[..]])
}

impl Columns for Row<'_> {
    fn col<T: Value>(&self, i: usize) -> Result<T, StoreError> {
        self.get(i).map_err(sq)
    }

    fn small_col(&self, i: usize) -> Result<i64, StoreError> {
        self.col(i)
    }
}

/// The first `T` a query returns, if any: `SELECT` its columns `rest`.
pub(super) fn one<T: FromRow>(
    conn: &Connection,
    rest: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>, StoreError> {
    Ok(all(conn, rest, params)?.into_iter().next())
}

/// Every `T` a query returns: `SELECT` its columns `rest`.
pub(super) fn all<T: FromRow>(
    conn: &Connection,
    rest: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {} {rest}", T::COLS))
        .map_err(sq)?;
    let mut rows = stmt.query(params).map_err(sq)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(sq)? {
        out.push(T::from_row(r)?);
    }
    Ok(out)
}
