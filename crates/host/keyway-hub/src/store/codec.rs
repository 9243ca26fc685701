//! How the model's values become columns, shared by both backends.
//!
//! * Digests are 32-byte blobs (`BLOB` / `BYTEA`); anything else read back
//!   is [`StoreError::Corrupt`].
//! * A release's `sequence` is a `u64` and both databases have signed
//!   64-bit integers, so it is kept with its top bit flipped
//!   ([`seq_to_db`]): the mapping is order-preserving, so "newest sequence
//!   first" is a plain `ORDER BY sequence DESC` over the whole `u64` range.
//! * Other `u64`s that are never ordered by (audit-log sequence numbers,
//!   a timestamp's version, battery) are kept as the same 64 bits
//!   ([`u64_to_db`]).
//! * Small enums ([`EventLevel`], [`Decision`]) are their serde names as
//!   text; nested values are JSON (serde_json).
//! * Plain text holding a NUL character is refused by both backends
//!   ([`StoreError::NulInText`]): PostgreSQL's `text` cannot hold it, and
//!   the two stores keep exactly the same values. (Inside JSON a NUL is
//!   escaped, so nested values keep it.)

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use crate::model::{
    Decision, Digest, EventLevel, Freshness, LockRecord, ModelAnchors, NewEvent, Release,
};

/// The order-preserving map of a release sequence number to a signed
/// column.
pub(crate) fn seq_to_db(seq: u64) -> i64 {
    (seq ^ (1 << 63)) as i64
}

/// The inverse of [`seq_to_db`].
pub(crate) fn seq_from_db(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// A `u64` that is not ordered by, as the same 64 bits.
pub(crate) fn u64_to_db(v: u64) -> i64 {
    v as i64
}

/// The inverse of [`u64_to_db`].
pub(crate) fn u64_from_db(v: i64) -> u64 {
    v as u64
}

/// A small integer read back, checked against its type's range.
pub(crate) fn small<T: TryFrom<i64>>(what: &str, v: i64) -> Result<T, StoreError> {
    T::try_from(v).map_err(|_| corrupt(what, format!("{v} is out of range")))
}

/// A digest read back from a blob.
pub(crate) fn digest(what: &str, bytes: &[u8]) -> Result<Digest, StoreError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| {
        corrupt(
            what,
            format!("a digest is 32 bytes, this one {}", bytes.len()),
        )
    })?;
    Ok(Digest(arr))
}

/// A raw Ed25519 key read back from a blob.
pub(crate) fn key(what: &str, bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| {
        corrupt(
            what,
            format!("a device key is 32 bytes, this one {}", bytes.len()),
        )
    })
}

/// A value as JSON text.
pub(crate) fn to_json<T: Serialize + ?Sized>(what: &str, v: &T) -> Result<String, StoreError> {
    // Serialising the model cannot fail (no maps with non-string keys), but
    // say so as an error rather than panic.
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encoding {what}: {e}")))
}

/// A value from JSON text.
pub(crate) fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e.to_string()))
}

/// An event level's column text.
pub(crate) fn level_to_db(l: EventLevel) -> &'static str {
    match l {
        EventLevel::Info => "info",
        EventLevel::Warning => "warning",
        EventLevel::Alert => "alert",
    }
}

/// An event level from its column text.
pub(crate) fn level_from_db(s: &str) -> Result<EventLevel, StoreError> {
    match s {
        "info" => Ok(EventLevel::Info),
        "warning" => Ok(EventLevel::Warning),
        "alert" => Ok(EventLevel::Alert),
        other => Err(corrupt(
            "an event's level",
            format!("unknown level {other:?}"),
        )),
    }
}

/// A decision's column text.
pub(crate) fn decision_to_db(d: Decision) -> &'static str {
    match d {
        Decision::Accept => "accept",
        Decision::Decline => "decline",
    }
}

/// A decision from its column text.
pub(crate) fn decision_from_db(s: &str) -> Result<Decision, StoreError> {
    match s {
        "accept" => Ok(Decision::Accept),
        "decline" => Ok(Decision::Decline),
        other => Err(corrupt(
            "a consent's decision",
            format!("unknown decision {other:?}"),
        )),
    }
}

/// Refuses text PostgreSQL's `text` cannot hold (a NUL character), so
/// both backends keep exactly the same values.
pub(crate) fn text(what: &str, s: &str) -> Result<(), StoreError> {
    if s.contains('\0') {
        return Err(StoreError::NulInText {
            what: what.to_string(),
        });
    }
    Ok(())
}

/// A lease's name and holder.
pub(crate) fn check_lease(name: &str, holder: &str) -> Result<(), StoreError> {
    text("a lease's name", name)?;
    text("a lease's holder", holder)
}

/// The plain text columns of a model.
pub(crate) fn check_model(m: &ModelAnchors) -> Result<(), StoreError> {
    text("a model's class", &m.class)?;
    text("a model's vendor domain", &m.vendor_domain)
}

/// The plain text columns of a release.
pub(crate) fn check_release(r: &Release) -> Result<(), StoreError> {
    text("a release's target", &r.target)?;
    text("a release's class", &r.class)?;
    text("a release's version", &r.version)?;
    text("a release's notes", &r.notes)
}

/// The plain text columns of a lock.
pub(crate) fn check_lock(name: &str, address: &str, class: &str) -> Result<(), StoreError> {
    text("a lock's name", name)?;
    text("a lock's address", address)?;
    text("a lock's class", class)
}

/// A lock record's checked text and its JSON columns: the snapshot (if
/// any) and the log health.
pub(crate) fn lock_json(l: &LockRecord) -> Result<(Option<String>, String), StoreError> {
    check_lock(&l.name, &l.address, &l.class)?;
    let snapshot = l
        .snapshot
        .as_ref()
        .map(|s| to_json("a lock's snapshot", s))
        .transpose()?;
    Ok((snapshot, to_json("a lock's log health", &l.log)?))
}

/// The migrations a store at schema version `found` has yet to run, of
/// `migrations` (one per version): [`StoreError::TooNew`] for a store
/// written by a newer hub, [`StoreError::Corrupt`] for a negative version.
pub(crate) fn pending<'m>(
    found: i64,
    migrations: &'m [&'m str],
) -> Result<&'m [&'m str], StoreError> {
    let supported = migrations.len() as i64;
    if found > supported {
        return Err(StoreError::TooNew { found, supported });
    }
    usize::try_from(found)
        .map(|f| &migrations[f..])
        .map_err(|_| corrupt("the schema version", format!("{found}")))
}

/// The plain text columns of an event.
pub(crate) fn check_event(e: &NewEvent<'_>) -> Result<(), StoreError> {
    text("an event's kind", e.kind)?;
    text("an event's message", e.message)
}

/// The plain text columns of the freshness record.
pub(crate) fn check_freshness(f: &Freshness) -> Result<(), StoreError> {
    if let Some(u) = &f.url {
        text("the TUF repository's URL", u)?;
    }
    if let Some(e) = &f.last_error {
        text("the last sync's error", e)?;
    }
    Ok(())
}

/// A [`StoreError::Corrupt`].
pub(crate) fn corrupt(what: &str, why: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: what.to_string(),
        why: why.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_mapping_preserves_order_over_the_whole_u64_range() {
        let xs = [
            0u64,
            1,
            2,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        for w in xs.windows(2) {
            assert!(seq_to_db(w[0]) < seq_to_db(w[1]), "{} < {}", w[0], w[1]);
        }
        for x in xs {
            assert_eq!(seq_from_db(seq_to_db(x)), x);
        }
    }
}
