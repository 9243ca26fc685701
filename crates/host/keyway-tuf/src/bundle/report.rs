//! What an import reports: per item, what the reader accepted and what it
//! refused and why, and how stale the timestamp and snapshot were.

use std::path::PathBuf;

use crate::error::{MirrorError, TransportError};
use crate::mirror::TrustedVersions;
use crate::summary::ReleaseSummary;

/// A target the bundle delivered, verified against the signed metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedTarget {
    /// The TUF target path.
    pub name: String,
    /// SHA-256 (hex) of the envelope.
    pub sha256: String,
    /// The envelope: the hub verifies it against the model's anchors next.
    pub envelope: Vec<u8>,
    /// The summary from the `custom` field (listing only).
    pub summary: Option<ReleaseSummary>,
}

/// Why one item of a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A root version is missing while a later one is present: the chain
    /// cannot be followed.
    #[error(
        "root version {version} is missing while version {later} is on the stick; the bundle \
         is incomplete: write it again with `keyway publish --bundle`"
    )]
    RootMissing {
        /// The missing version.
        version: u64,
        /// A later version present.
        later: u64,
    },
    /// A root version does not verify against the one before it (swapped or
    /// corrupt).
    #[error("root version {version} does not verify ({error}); nothing signed after it is trusted")]
    RootRejected {
        /// The version.
        version: u64,
        /// Why.
        error: MirrorError,
    },
    /// A metadata file was refused; no target can be trusted.
    #[error("{file} refused: {error}")]
    Metadata {
        /// The file (e.g. `metadata/timestamp.json`).
        file: String,
        /// Why.
        error: MirrorError,
    },
    /// A target not imported because the metadata chain failed.
    #[error("{target} not imported: the bundle's metadata did not verify (see above)")]
    Unverified {
        /// The target path.
        target: String,
    },
    /// A target file is missing from the stick.
    #[error("{target} is missing from the stick ({file}); copy the bundle again")]
    TargetMissing {
        /// The target path.
        target: String,
        /// The file expected.
        file: String,
    },
    /// A target file does not have its signed length (e.g. truncated).
    #[error(
        "{target} is {found} bytes on the stick but the signed metadata says {signed}: it was \
         truncated or altered; copy the bundle again"
    )]
    TargetLength {
        /// The target path.
        target: String,
        /// The signed length.
        signed: u64,
        /// What is on the stick; signed + 1 means "longer than signed" (the
        /// reader stops at the signed length).
        found: u64,
    },
    /// A target file's SHA-256 differs from the signed one.
    #[error(
        "{target} does not match its signed SHA-256 (expected {expected}, found {found}): the \
         file was altered; it was not imported"
    )]
    TargetHash {
        /// The target path.
        target: String,
        /// The signed digest.
        expected: String,
        /// The digest of the bytes on the stick.
        found: String,
    },
    /// A target the hub does not accept at all.
    #[error("{target} is {length} bytes, more than the {limit} the hub accepts for one release")]
    TargetTooLarge {
        /// The target path.
        target: String,
        /// Its signed length.
        length: u64,
        /// The limit.
        limit: u64,
    },
    /// A target whose file could not be read.
    #[error("{target} cannot be read: {error}")]
    TargetUnreadable {
        /// The target path.
        target: String,
        /// Why.
        error: TransportError,
    },
    /// A target entry with no SHA-256 to check it by.
    #[error("{target} has no signed SHA-256; the hub imports only hash-pinned targets")]
    TargetNoHash {
        /// The target path.
        target: String,
    },
}

impl Refusal {
    /// A stable machine name for the reason (for the hub's JSON API:
    /// clients decide on it, never on the sentence).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::RootMissing { .. } => "root_missing",
            Refusal::RootRejected { .. } => "root_rejected",
            Refusal::Metadata { .. } => "metadata_refused",
            Refusal::Unverified { .. } => "unverified",
            Refusal::TargetMissing { .. } => "target_missing",
            Refusal::TargetLength { .. } => "target_length",
            Refusal::TargetHash { .. } => "target_hash",
            Refusal::TargetTooLarge { .. } => "target_too_large",
            Refusal::TargetUnreadable { .. } => "target_unreadable",
            Refusal::TargetNoHash { .. } => "target_no_hash",
        }
    }

    /// The item refused: a target path, or a metadata file.
    pub fn item(&self) -> String {
        match self {
            Refusal::RootMissing { version, .. } | Refusal::RootRejected { version, .. } => {
                format!("metadata/{version}.root.json")
            }
            Refusal::Metadata { file, .. } => file.clone(),
            Refusal::Unverified { target }
            | Refusal::TargetMissing { target, .. }
            | Refusal::TargetLength { target, .. }
            | Refusal::TargetHash { target, .. }
            | Refusal::TargetTooLarge { target, .. }
            | Refusal::TargetUnreadable { target, .. }
            | Refusal::TargetNoHash { target } => target.clone(),
        }
    }

    /// The underlying metadata error, when the refusal is about metadata.
    pub fn error(&self) -> Option<&MirrorError> {
        match self {
            Refusal::RootRejected { error, .. } | Refusal::Metadata { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Metadata whose expiry the reader relaxes, reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Staleness {
    /// The bundle's timestamp expired at this moment (before `now`).
    pub timestamp_expired_at: Option<jiff::Timestamp>,
    /// The bundle's snapshot expired at this moment (before `now`).
    pub snapshot_expired_at: Option<jiff::Timestamp>,
}

impl Staleness {
    /// Whether anything was stale.
    pub fn is_stale(&self) -> bool {
        self.timestamp_expired_at.is_some() || self.snapshot_expired_at.is_some()
    }
}

/// What an import did.
#[derive(Debug)]
pub struct BundleReport {
    /// The bundle read.
    pub bundle: PathBuf,
    /// The versions the bundle's metadata verified at (None when the chain
    /// failed).
    pub versions: Option<TrustedVersions>,
    /// Expired timestamp or snapshot (a stale stick): reported, not refused.
    pub staleness: Staleness,
    /// Targets verified and delivered.
    pub accepted: Vec<AcceptedTarget>,
    /// Everything refused, each with its reason.
    pub refused: Vec<Refusal>,
}

impl BundleReport {
    /// Sentences for the owner: what was imported, what was refused and why.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!(
            "{}: {} release(s) verified, {} item(s) refused",
            self.bundle.display(),
            self.accepted.len(),
            self.refused.len()
        )];
        if let Some(t) = self.staleness.timestamp_expired_at {
            out.push(format!(
                "the bundle is old: its timestamp expired at {t}; its releases still verify and \
                 the locks refuse anything older than what they run"
            ));
        }
        if let Some(t) = self.staleness.snapshot_expired_at {
            out.push(format!(
                "the bundle's snapshot expired at {t} (allowed for offline bundles)"
            ));
        }
        out.extend(self.accepted.iter().map(|a| format!("verified {}", a.name)));
        out.extend(self.refused.iter().map(|r| format!("refused: {r}")));
        out
    }
}
