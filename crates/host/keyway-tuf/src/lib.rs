//! Keyway's TUF side (host only).
//!
//! - [`writer`]: the repository writer behind `keyway publish` — TUF 1.0
//!   metadata (root, targets, snapshot, timestamp; consistent snapshots),
//!   Ed25519 over OLPC canonical JSON, static files any web server serves;
//!   root rotation; the offline bundle writer.
//! - [`mirror`]: the hub's mirror — sigstore-tuf's client (the Rust client
//!   on the TUF conformance report) over Keyway's bounded transport (HTTP or
//!   a directory), with an on-disk cache in the hub's data directory, target
//!   listing with Keyway's summaries, bounded downloads and a freshness
//!   report.
//! - [`bundle`]: the offline bundle reader (after Uptane PURE-2): verifies
//!   the chain from the hub's trusted root with no network and reports, per
//!   item, what it accepted and what it refused and why.
//! - [`summary`]: what each target's TUF `custom` field carries (class,
//!   version, sequence, delta base, CVEs) — for listing; the hub trusts only
//!   the signed envelope for what it installs.
//!
//! The TUF metadata protects the channel (freshness, rollback, mix-and-match,
//! endless data, key compromise of the mirror); the SUIT envelope's own
//! signatures, checked by the hub and again by the lock, protect the
//! firmware. A compromised repository or hub can at most withhold updates.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bundle;
pub mod error;
pub mod mirror;
pub mod summary;
pub mod writer;

pub use bundle::{AcceptedTarget, BundleReport, Refusal, Staleness};
pub use error::{MirrorError, TransportError};
pub use mirror::{
    Freshness, ListedTarget, MAX_TARGET_BYTES, Mirror, Refreshed, Session, Source, Synced,
    TrustedVersions,
};
pub use summary::{CveSummary, ReleaseSummary};
pub use writer::{BundleWritten, Expiries, PublishError, Published, RepoWriter, Versions};

/// Re-exported so callers name times and stores as the TUF client does.
pub use jiff;
pub use sigstore_tuf;
