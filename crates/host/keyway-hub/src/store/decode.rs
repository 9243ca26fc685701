//! Rows back to the model's values, written once for both backends.
//!
//! A backend reads a column as a typed value ([`Columns`]; a read that
//! fails is that backend's error, as it always was); this module turns the
//! values into the model's, checking each (a value that does not decode is
//! [`StoreError::Corrupt`]). Each value's column list ([`FromRow::COLS`])
//! is next to the decoder that reads them by position.

use serde::de::DeserializeOwned;

use super::StoreError;
use super::codec::{
    decision_from_db, digest, from_json, key, level_from_db, seq_from_db, small, u64_from_db,
};
use crate::model::{
    Consent, Digest, Event, Freshness, LockRecord, LogExport, LogHealth, ModelAnchors, Release,
    Rollout,
};

/// A value both backends can read from a column.
pub(crate) trait Value:
    for<'a> postgres::types::FromSql<'a> + rusqlite::types::FromSql
{
}

impl<T> Value for T where T: for<'a> postgres::types::FromSql<'a> + rusqlite::types::FromSql {}

/// One fetched row, read by column position.
pub(crate) trait Columns {
    /// Column `i` as a `T`.
    fn col<T: Value>(&self, i: usize) -> Result<T, StoreError>;
    /// A `SMALLINT` column (PostgreSQL's 16 bits; SQLite has one integer
    /// type), widened.
    fn small_col(&self, i: usize) -> Result<i64, StoreError>;

    /// Column `i`, JSON text, as a `T` (`what` names it if it does not
    /// decode).
    fn json<T: DeserializeOwned>(&self, i: usize, what: &str) -> Result<T, StoreError> {
        from_json(what, &self.col::<String>(i)?)
    }

    /// Column `i`, a 32-byte blob, as a digest.
    fn digest(&self, i: usize, what: &str) -> Result<Digest, StoreError> {
        digest(what, &self.col::<Vec<u8>>(i)?)
    }
}

/// A model value read back from a row of its table.
pub(crate) trait FromRow: Sized {
    /// The columns it reads, in order (what follows `SELECT`).
    const COLS: &'static str;
    /// The value, from a row of [`Self::COLS`].
    fn from_row(r: &impl Columns) -> Result<Self, StoreError>;
}

impl FromRow for ModelAnchors {
    const COLS: &'static str = "class, vendor_domain, trust_pems, threshold";

    fn from_row(r: &impl Columns) -> Result<Self, StoreError> {
        Ok(ModelAnchors {
            class: r.col(0)?,
            vendor_domain: r.col(1)?,
            trust_pems: r.json(2, "a model's trust anchors")?,
            threshold: small("a model's threshold", r.small_col(3)?)?,
        })
    }
}

/// A release's columns but its envelope.
macro_rules! release_cols {
    () => {
        "digest, target, class, version, sequence, delta_base, notes, cves, origin, added_at"
    };
}

/// A release row (its envelope read separately).
impl FromRow for Release {
    const COLS: &'static str = release_cols!();

    fn from_row(r: &impl Columns) -> Result<Self, StoreError> {
        let base: Option<Vec<u8>> = r.col(5)?;
        Ok(Release {
            digest: r.digest(0, "a release's digest")?,
            target: r.col(1)?,
            class: r.col(2)?,
            version: r.col(3)?,
            sequence: seq_from_db(r.col(4)?),
            delta_base: base
                .map(|b| digest("a release's delta base", &b))
                .transpose()?,
            notes: r.col(6)?,
            cves: r.json(7, "a release's CVEs")?,
            origin: r.json(8, "a release's origin")?,
            added_at: r.col(9)?,
            envelope: Vec::new(),
        })
    }
}

impl FromRow for LockRecord {
    const COLS: &'static str =
        "id, name, address, class, device_key, auto_install_critical, snapshot, last_contact, log";

    fn from_row(r: &impl Columns) -> Result<Self, StoreError> {
        let key_bytes: Option<Vec<u8>> = r.col(4)?;
        let snapshot: Option<String> = r.col(6)?;
        Ok(LockRecord {
            id: r.col(0)?,
            name: r.col(1)?,
            address: r.col(2)?,
            class: r.col(3)?,
            device_key: key_bytes
                .map(|b| key("a lock's device key", &b))
                .transpose()?,
            auto_install_critical: r.col(5)?,
            snapshot: snapshot
                .map(|s| from_json("a lock's snapshot", &s))
                .transpose()?,
            last_contact: r.col(7)?,
            log: r.json::<LogHealth>(8, "a lock's log health")?,
        })
    }
}

impl FromRow for Consent {
    const COLS: &'static str = "lock, release, decision, source, at";

    fn from_row(r: &impl Columns) -> Result<Self, StoreError> {
        Ok(Consent {
            lock: r.col(0)?,
            release: r.digest(1, "a consent's release")?,
            decision: decision_from_db(&r.col::<String>(2)?)?,
            source: r.json(3, "a consent's source")?,
            at: r.col(4)?,
        })
    }
}

impl FromRow for LogExport {
    const COLS: &'static str = "lock, fetched_at, first_seq, last_seq, bytes";

    fn from_row(r: &impl Columns) -> Result<Self, StoreError> {
        Ok(LogExport {
            lock: r.col(0)?,
            fetched_at: r.col(1)?,
            first_seq: u64_from_db(r.col(2)?),
            last_seq: u64_from_db(r.col(3)?),
            bytes: r.col(4)?,
        })
    }
}

impl FromRow for Rollout {
    const COLS: &'static str =
        "id, release, wave_size, error_threshold_pct, state, locks, started_at";

    fn from_row(r: &impl Columns) -> Result<Self, StoreError> {
        Ok(Rollout {
            id: r.col(0)?,
            release: r.digest(1, "a rollout's release")?,
            wave_size: small("a rollout's wave size", r.col(2)?)?,
            error_threshold_pct: small("a rollout's error threshold", r.small_col(3)?)?,
            state: r.json(4, "a rollout's state")?,
            locks: r.json(5, "a rollout's locks")?,
            started_at: r.col(6)?,
        })
    }
}

impl FromRow for Event {
    const COLS: &'static str = "id, at, lock, level, kind, message";

    fn from_row(r: &impl Columns) -> Result<Self, StoreError> {
        Ok(Event {
            id: r.col(0)?,
            at: r.col(1)?,
            lock: r.col(2)?,
            level: level_from_db(&r.col::<String>(3)?)?,
            kind: r.col(4)?,
            message: r.col(5)?,
        })
    }
}

impl FromRow for Freshness {
    const COLS: &'static str =
        "url, last_fresh_at, timestamp_version, timestamp_expires, last_error";

    fn from_row(r: &impl Columns) -> Result<Self, StoreError> {
        Ok(Freshness {
            url: r.col(0)?,
            last_fresh_at: r.col(1)?,
            timestamp_version: r.col::<Option<i64>>(2)?.map(u64_from_db),
            timestamp_expires: r.col(3)?,
            last_error: r.col(4)?,
        })
    }
}

/// A release read with its envelope (only one release at a time is).
pub(crate) struct WithEnvelope(pub(crate) Release);

impl FromRow for WithEnvelope {
    const COLS: &'static str = concat!(release_cols!(), ", envelope");

    fn from_row(r: &impl Columns) -> Result<Self, StoreError> {
        let mut rel = Release::from_row(r)?;
        rel.envelope = r.col(10)?;
        Ok(Self(rel))
    }
}
