//! The mirror's and the bundle reader's typed errors.
//!
//! Every variant carries the data a program decides on (which role, which
//! versions, when it expired, which URL, which limit); `Display` renders a
//! sentence that says what failed and what to do. Nothing here is meant to
//! be parsed.

use std::path::PathBuf;

/// Why a transport (HTTP or a directory) could not deliver a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The server sent more than the verified metadata allows: an
    /// endless-data attack, or a broken mirror. The download stopped at the
    /// limit.
    #[error(
        "{what} from {location} is longer than the {limit} bytes the signed metadata allows \
         (endless-data attack or a broken mirror); the download was stopped there"
    )]
    TooLong {
        /// The file.
        what: String,
        /// The URL or path.
        location: String,
        /// The limit, bytes.
        limit: u64,
    },
    /// The server answered with an error status.
    #[error("{location} answered HTTP {status}; check the repository URL and the server")]
    Status {
        /// The URL.
        location: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The connection failed or stalled.
    #[error("cannot reach {location} ({detail}); check the network and the repository URL")]
    Unreachable {
        /// The URL.
        location: String,
        /// The client library's description.
        detail: String,
    },
    /// A file could not be read from a directory source.
    #[error("cannot read {location} ({detail}); check the directory")]
    Read {
        /// The path.
        location: String,
        /// The OS error.
        detail: String,
    },
    /// A file the metadata requires is absent.
    #[error("{what} is missing from {location}; the repository or bundle is incomplete")]
    Missing {
        /// The file.
        what: String,
        /// The base URL or directory.
        location: String,
    },
}

/// Why a mirror operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// No mirror was initialised in the data directory.
    #[error(
        "{dir} holds no TUF mirror (no trusted root); initialise it with the vendor's root \
         version 1"
    )]
    NotInitialized {
        /// The mirror's directory.
        dir: PathBuf,
    },
    /// The trusted root given at initialisation is not a self-signed TUF root.
    #[error(
        "the trusted root is not a valid self-signed TUF root ({detail}); get root.json \
         version 1 from the vendor again"
    )]
    BadTrustedRoot {
        /// Why.
        detail: String,
    },
    /// The mirror's own files could not be read or written.
    #[error("cannot {action} {path}: {source}; check the hub's data directory")]
    Io {
        /// `read`, `write` or `create`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Metadata offered a lower version than the hub already trusts.
    #[error(
        "rollback refused: the repository offers {role} version {offered} but the hub already \
         trusts version {trusted}; the mirror is stale or hostile, try again later or another \
         mirror"
    )]
    Rollback {
        /// The role (`timestamp`, `snapshot`, `targets.json (via snapshot)`, …).
        role: String,
        /// The version the hub trusts.
        trusted: u64,
        /// The version offered.
        offered: u64,
    },
    /// A new root does not follow the trusted one by exactly one.
    #[error(
        "root version {offered} cannot follow trusted root version {trusted} (each root must \
         be the next version); the repository is broken or hostile"
    )]
    RootVersion {
        /// The trusted root version.
        trusted: u64,
        /// The version offered.
        offered: u64,
    },
    /// Metadata whose expiry has passed.
    #[error(
        "the repository's {role} metadata expired at {expired_at}; the vendor must re-sign it \
         (a freeze attack or an unmaintained repository); what the hub holds stays installable"
    )]
    Expired {
        /// The role.
        role: String,
        /// When it expired.
        expired_at: jiff::Timestamp,
    },
    /// Too few valid signatures.
    #[error(
        "{role} metadata carries {found} valid signature(s), {threshold} needed; it was not \
         signed by the vendor's keys: the repository is hostile or misconfigured"
    )]
    Signatures {
        /// The role.
        role: String,
        /// Valid signatures found.
        found: usize,
        /// Signatures required.
        threshold: usize,
    },
    /// The same key signed twice.
    #[error("{role} metadata is signed twice by key {key_id}; the repository is malformed")]
    DuplicateSignature {
        /// The role.
        role: String,
        /// The key id.
        key_id: String,
    },
    /// A file does not match what its parent role pins (length, hashes or
    /// version): mix-and-match, or a corrupted file.
    #[error(
        "the repository's files do not match each other ({detail}): a mix-and-match attack or \
         a half-published repository; try again later"
    )]
    Inconsistent {
        /// What the verifier found (for the log; never parsed).
        detail: String,
    },
    /// Metadata that is not valid TUF.
    #[error("malformed TUF metadata ({detail}); the repository is broken")]
    Malformed {
        /// Why.
        detail: String,
    },
    /// No refresh has succeeded yet.
    #[error("the mirror has not synced yet; refresh it first")]
    NotRefreshed,
    /// The target is not in the verified targets metadata.
    #[error("{target} is not a target of the repository; list the targets to see what it offers")]
    UnknownTarget {
        /// The target path.
        target: String,
    },
    /// The target is larger than the mirror accepts at all.
    #[error("{target} is {length} bytes, more than the {limit} the hub accepts for one release")]
    TargetTooLarge {
        /// The target path.
        target: String,
        /// Its signed length.
        length: u64,
        /// The hub's limit.
        limit: u64,
    },
    /// An error from the TUF library that none of the above describes.
    #[error("TUF verification failed: {detail}")]
    Other {
        /// The library's description.
        detail: String,
    },
}

impl MirrorError {
    /// A stable machine name for the error (for the hub's JSON API and
    /// events: clients decide on it, never on the sentence).
    pub fn code(&self) -> &'static str {
        match self {
            MirrorError::NotInitialized { .. } => "not_initialized",
            MirrorError::BadTrustedRoot { .. } => "bad_trusted_root",
            MirrorError::Io { .. } => "io",
            MirrorError::Transport(TransportError::TooLong { .. }) => "too_long",
            MirrorError::Transport(TransportError::Status { .. }) => "http_status",
            MirrorError::Transport(TransportError::Unreachable { .. }) => "unreachable",
            MirrorError::Transport(TransportError::Read { .. }) => "read",
            MirrorError::Transport(TransportError::Missing { .. }) => "missing",
            MirrorError::Rollback { .. } => "rollback",
            MirrorError::RootVersion { .. } => "root_version",
            MirrorError::Expired { .. } => "expired",
            MirrorError::Signatures { .. } => "signatures",
            MirrorError::DuplicateSignature { .. } => "duplicate_signature",
            MirrorError::Inconsistent { .. } => "inconsistent",
            MirrorError::Malformed { .. } => "malformed",
            MirrorError::NotRefreshed => "not_refreshed",
            MirrorError::UnknownTarget { .. } => "unknown_target",
            MirrorError::TargetTooLarge { .. } => "target_too_large",
            MirrorError::Other { .. } => "other",
        }
    }

    /// Maps the TUF library's error, taking a typed transport failure from
    /// the side channel when the library reports a transport error.
    pub(crate) fn from_tuf(e: sigstore_tuf::Error, transport: Option<TransportError>) -> Self {
        use sigstore_tuf::Error as E;
        match e {
            E::Rollback { role, trusted, new } => MirrorError::Rollback {
                role,
                trusted,
                offered: new,
            },
            E::BadRootVersion { trusted, new } => MirrorError::RootVersion {
                trusted,
                offered: new,
            },
            E::Expired { role, expires } => MirrorError::Expired {
                role,
                expired_at: expires,
            },
            E::ThresholdNotMet {
                role,
                found,
                threshold,
            } => MirrorError::Signatures {
                role,
                found,
                threshold,
            },
            E::DuplicateSignature { role, key_id } => {
                MirrorError::DuplicateSignature { role, key_id }
            }
            E::IntegrityMismatch(detail) => MirrorError::Inconsistent { detail },
            E::Malformed(detail) => MirrorError::Malformed { detail },
            E::Json(e) => MirrorError::Malformed {
                detail: e.to_string(),
            },
            E::NotRefreshed => MirrorError::NotRefreshed,
            E::TargetNotFound(target) => MirrorError::UnknownTarget { target },
            E::Transport { message, .. } => match transport {
                Some(t) => MirrorError::Transport(t),
                None => MirrorError::Transport(TransportError::Unreachable {
                    location: String::new(),
                    detail: message,
                }),
            },
            other => MirrorError::Other {
                detail: other.to_string(),
            },
        }
    }
}
