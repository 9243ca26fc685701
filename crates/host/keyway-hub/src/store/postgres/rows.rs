//! Reading a row's columns (a value of the wrong type is
//! [`StoreError::Corrupt`]); the rows' decoding is the shared `decode`.

use postgres::Row;
use postgres::types::FromSql;

use super::super::StoreError;
use super::super::codec::corrupt;
use super::super::decode::{Columns, Value};

/// A column read back; a value of the wrong type is corrupt.
pub(super) fn get<'a, T: FromSql<'a>>(r: &'a Row, i: usize) -> Result<T, StoreError> {
    r.try_get(i).map_err(|e| {
        corrupt(
            &format!("column {}", r.columns().get(i).map_or("?", |c| c.name())),
            e.to_string(),
        )
    })
}

impl Columns for Row {
    fn col<T: Value>(&self, i: usize) -> Result<T, StoreError> {
        get(self, i)
    }

    fn small_col(&self, i: usize) -> Result<i64, StoreError> {
        get::<i16>(self, i).map(i64::from)
    }
}

/// The id an `INSERT … RETURNING id` gave.
pub(super) fn returned_id(rows: &[Row]) -> Result<i64, StoreError> {
    match rows.first() {
        Some(r) => get(r, 0),
        None => Err(StoreError::Backend("INSERT … RETURNING gave no row".into())),
    }
}
