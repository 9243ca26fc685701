//! The repository writer behind `keyway publish`.
//!
//! A Keyway TUF repository is a directory of static files any web server or
//! bucket can serve:
//!
//! ```text
//! REPO/metadata/1.root.json … N.root.json   every root version (clients chain them)
//! REPO/metadata/root.json                   a copy of the newest root
//! REPO/metadata/V.targets.json              every targets version
//! REPO/metadata/V.snapshot.json             every snapshot version
//! REPO/metadata/timestamp.json              the newest timestamp (never prefixed)
//! REPO/targets/CLASS/SHA256.FILE            each envelope, hash-prefixed
//! ```
//!
//! TUF 1.0 metadata with `consistent_snapshot: true`: metadata files are
//! version-prefixed and target files hash-prefixed, so a client that reads
//! while the vendor publishes never mixes two versions. Every role is one
//! Ed25519 key (threshold 1), signed over OLPC canonical JSON
//! (`sigstore_tuf::canonical_json`, the encoder the client verifies with).
//!
//! The role keys are 32-byte Ed25519 seeds, hex, one file per role in a keys
//! directory the vendor keeps offline from the web server (`root.key`,
//! `targets.key`, `snapshot.key`, `timestamp.key`; created by
//! [`RepoWriter::init`], mode 0600). [`RepoWriter::rotate_root`] writes root
//! version N+1 with a new root key, signed by the old and the new key (the
//! TUF root-rotation rule), and retires the old key file.
//!
//! Publishing order makes every intermediate state consistent: target files
//! first, then the targets, snapshot and finally the timestamp (each written
//! to a temporary file and renamed), so a reader sees either the old
//! timestamp (and everything it pins) or the new one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::summary::ReleaseSummary;

mod keys;
mod offline;

use keys::{RoleKey, key_path, sign};
pub use offline::{BUNDLE_MARKER, BundleWritten};

/// The TUF specification version the writer follows.
pub const SPEC_VERSION: &str = "1.0.31";

/// The four top-level roles.
pub const ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// How long each role's metadata stays valid after it is signed, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiries {
    /// Root (365 days by default).
    pub root: i64,
    /// Targets (365 days).
    pub targets: i64,
    /// Snapshot (30 days).
    pub snapshot: i64,
    /// Timestamp (7 days): the vendor re-signs it with
    /// `keyway publish --refresh-timestamp` before it runs out.
    pub timestamp: i64,
}

impl Default for Expiries {
    fn default() -> Self {
        const DAY: i64 = 86_400;
        Expiries {
            root: 365 * DAY,
            targets: 365 * DAY,
            snapshot: 30 * DAY,
            timestamp: 7 * DAY,
        }
    }
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}; check the path and its permissions")]
    Io {
        /// What was being done (`read`, `write`, `create`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `--init` on a directory that already holds a repository.
    #[error(
        "{repo} already holds a TUF repository (metadata/root.json exists); publish into it \
         without --init"
    )]
    AlreadyInitialized {
        /// The repository directory.
        repo: PathBuf,
    },
    /// No repository at the path.
    #[error("{repo} holds no TUF repository (no metadata/root.json); create one with --init")]
    NotInitialized {
        /// The repository directory.
        repo: PathBuf,
    },
    /// A role key file is missing or not a 32-byte hex seed.
    #[error(
        "the {role} key {path} is missing or is not 64 hex digits; restore it from the \
         vendor's key backup"
    )]
    BadKey {
        /// The role.
        role: &'static str,
        /// The key file.
        path: PathBuf,
    },
    /// A role key does not match the key the repository's root names.
    #[error(
        "the {role} key in {keys} is not the one the repository's root {root_version} names; \
         use the keys directory this repository was created with"
    )]
    WrongKey {
        /// The role.
        role: &'static str,
        /// The keys directory.
        keys: PathBuf,
        /// The root version.
        root_version: u64,
    },
    /// A metadata file in the repository is not what the writer wrote.
    #[error("{path} is not valid TUF metadata ({detail}); restore the repository from its backup")]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An envelope that cannot be read as SUIT.
    #[error("{file}: {source}")]
    BadEnvelope {
        /// The envelope's file name.
        file: String,
        /// Why.
        source: crate::summary::SummaryError,
    },
    /// A target name that is already published with other contents.
    #[error(
        "{target} is already published with different contents; publish the new envelope \
         under a new file name"
    )]
    TargetExists {
        /// The target path.
        target: String,
    },
    /// A file name that cannot be a target path component.
    #[error(
        "{name:?} cannot name a target (use letters, digits, '.', '-', '_' only, not starting \
         with '.')"
    )]
    BadName {
        /// The name.
        name: String,
    },
    /// The canonical JSON encoder refused the metadata (a bug).
    #[error("cannot encode {role} metadata as canonical JSON: {detail}")]
    Encode {
        /// The role.
        role: &'static str,
        /// Why.
        detail: String,
    },
}

/// What publishing one envelope produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The TUF target path (`CLASS/FILE`).
    pub target: String,
    /// SHA-256 of the envelope, hex.
    pub sha256: String,
    /// Its length.
    pub length: u64,
    /// The summary written to its `custom` field.
    pub summary: ReleaseSummary,
    /// False when the same bytes were already published under this name.
    pub new: bool,
}

/// The versions the repository's metadata is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// Root.
    pub root: u64,
    /// Targets.
    pub targets: u64,
    /// Snapshot.
    pub snapshot: u64,
    /// Timestamp.
    pub timestamp: u64,
}

/// A TUF repository directory open for publishing.
#[derive(Debug)]
pub struct RepoWriter {
    repo: PathBuf,
    keys: PathBuf,
    expiries: Expiries,
    root: Value,
    targets: BTreeMap<String, Value>,
    versions: Versions,
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> PublishError + 'a {
    move |source| PublishError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file, an fsync and a
/// rename, so a reader (or a power cut) sees the old file or the new one.
pub(crate) fn write_atomic_io(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp-keyway");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// [`write_atomic_io`] with the writer's error.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    write_atomic_io(path, bytes).map_err(io("write", path))
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A TUF `expires` string for `now + secs`, whole seconds, UTC (`…Z`).
fn expires(now: jiff::Timestamp, secs: i64) -> String {
    let t = jiff::Timestamp::from_second(now.as_second().saturating_add(secs))
        .unwrap_or(jiff::Timestamp::MAX);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn read_json(path: &Path) -> Result<Value, PublishError> {
    let bytes = std::fs::read(path).map_err(io("read", path))?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("signed").cloned())
        .ok_or_else(|| PublishError::BadMetadata {
            path: path.to_owned(),
            detail: "not a signed JSON document".into(),
        })
}

fn version_of(v: &Value, path: &Path) -> Result<u64, PublishError> {
    v.get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| PublishError::BadMetadata {
            path: path.to_owned(),
            detail: "no version".into(),
        })
}

/// The version of `role` that `doc` (a timestamp or snapshot read from
/// `path`) pins.
fn pinned_version(doc: &Value, path: &Path, role: &str) -> Result<u64, PublishError> {
    doc.pointer(&format!("/meta/{role}.json/version"))
        .and_then(Value::as_u64)
        .ok_or_else(|| PublishError::BadMetadata {
            path: path.to_owned(),
            detail: format!("no {role}.json pin"),
        })
}

/// A snapshot's or timestamp's pin on the role below it, `file`: the
/// document's version, length and SHA-256 (TUF `METAFILES`), as the
/// `meta` member.
fn pin(file: &str, version: u64, doc: &[u8]) -> (&'static str, Value) {
    let meta = json!({
        "version": version,
        "length": doc.len(),
        "hashes": { "sha256": sha256_hex(doc) },
    });
    ("meta", json!({ file: meta }))
}

/// Whether `name` is safe as one path component of a target.
fn good_component(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl RepoWriter {
    /// Creates a repository at `repo` with fresh role keys in `keys` (root
    /// version 1, empty targets, snapshot and timestamp version 1).
    pub fn init(
        repo: &Path,
        keys: &Path,
        expiries: Expiries,
        now: jiff::Timestamp,
    ) -> Result<RepoWriter, PublishError> {
        if repo.join("metadata/root.json").exists() {
            return Err(PublishError::AlreadyInitialized {
                repo: repo.to_owned(),
            });
        }
        std::fs::create_dir_all(keys).map_err(io("create", keys))?;
        for role in ROLES {
            RoleKey::generate().save(&key_path(keys, role))?;
        }
        let mut w = RepoWriter {
            repo: repo.to_owned(),
            keys: keys.to_owned(),
            expiries,
            root: Value::Null,
            targets: BTreeMap::new(),
            versions: Versions {
                root: 0,
                targets: 0,
                snapshot: 0,
                timestamp: 0,
            },
        };
        let root_key = w.key("root")?;
        w.write_root(1, &[&root_key], None, now)?;
        w.publish_targets(now)?;
        Ok(w)
    }

    /// Opens the repository at `repo` with the role keys in `keys`.
    pub fn open(repo: &Path, keys: &Path, expiries: Expiries) -> Result<RepoWriter, PublishError> {
        let meta = repo.join("metadata");
        let root_path = meta.join("root.json");
        if !root_path.exists() {
            return Err(PublishError::NotInitialized {
                repo: repo.to_owned(),
            });
        }
        let root = read_json(&root_path)?;
        let ts_path = meta.join("timestamp.json");
        let ts = read_json(&ts_path)?;
        let snapshot_v = pinned_version(&ts, &ts_path, "snapshot")?;
        let snap_path = meta.join(format!("{snapshot_v}.snapshot.json"));
        let snap = read_json(&snap_path)?;
        let targets_v = pinned_version(&snap, &snap_path, "targets")?;
        let targets_path = meta.join(format!("{targets_v}.targets.json"));
        let targets_doc = read_json(&targets_path)?;
        let targets = targets_doc
            .get("targets")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let versions = Versions {
            root: version_of(&root, &root_path)?,
            targets: targets_v,
            snapshot: snapshot_v,
            timestamp: version_of(&ts, &ts_path)?,
        };
        let w = RepoWriter {
            repo: repo.to_owned(),
            keys: keys.to_owned(),
            expiries,
            root,
            targets,
            versions,
        };
        // Refuse early a keys directory that does not belong to this root.
        for role in ROLES {
            w.key(role)?;
        }
        Ok(w)
    }

    /// The repository directory.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// The metadata versions now.
    pub fn versions(&self) -> Versions {
        self.versions
    }

    /// The bytes of root version 1: what a client pins (`keyway tuf-client
    /// init`, the hub's trusted root).
    pub fn first_root(&self) -> Result<Vec<u8>, PublishError> {
        let p = self.repo.join("metadata/1.root.json");
        std::fs::read(&p).map_err(io("read", &p))
    }

    /// The published targets and their summaries (from the writer's view).
    pub fn targets(&self) -> impl Iterator<Item = (&str, Option<ReleaseSummary>)> {
        self.targets
            .iter()
            .map(|(k, v)| (k.as_str(), ReleaseSummary::from_custom(v.get("custom"))))
    }

    /// Loads a role's key and checks that the root names it.
    fn key(&self, role: &'static str) -> Result<RoleKey, PublishError> {
        let k = RoleKey::load(role, &key_path(&self.keys, role))?;
        if !self.root.is_null() {
            let id = k.key_id();
            let named = self
                .root
                .pointer(&format!("/roles/{role}/keyids"))
                .and_then(Value::as_array)
                .is_some_and(|ids| ids.iter().any(|i| i.as_str() == Some(&id)));
            if !named {
                return Err(PublishError::WrongKey {
                    role,
                    keys: self.keys.clone(),
                    root_version: self.versions.root,
                });
            }
        }
        Ok(k)
    }

    /// Writes root `version` naming the current key of each role (root's
    /// from `keys/root.key` unless `new_root_key`), signed by `signers`.
    fn write_root(
        &mut self,
        version: u64,
        signers: &[&RoleKey],
        new_root_key: Option<&RoleKey>,
        now: jiff::Timestamp,
    ) -> Result<(), PublishError> {
        let mut keys = serde_json::Map::new();
        let mut roles = serde_json::Map::new();
        for role in ROLES {
            let loaded;
            let k = match new_root_key {
                Some(k) if role == "root" => k,
                _ => {
                    loaded = RoleKey::load(role, &key_path(&self.keys, role))?;
                    &loaded
                }
            };
            let id = k.key_id();
            keys.insert(id.clone(), k.tuf_key());
            roles.insert(role.into(), json!({ "keyids": [id], "threshold": 1 }));
        }
        let signed = json!({
            "_type": "root",
            "spec_version": SPEC_VERSION,
            "version": version,
            "expires": expires(now, self.expiries.root),
            "consistent_snapshot": true,
            "keys": keys,
            "roles": roles,
        });
        let doc = sign("root", &signed, signers)?;
        let meta = self.repo.join("metadata");
        write_atomic(&meta.join(format!("{version}.root.json")), &doc)?;
        write_atomic(&meta.join("root.json"), &doc)?;
        self.root = signed;
        self.versions.root = version;
        Ok(())
    }

    /// Adds envelopes (file name, bytes) as targets `CLASS/FILE` with their
    /// summaries, and publishes new targets, snapshot and timestamp versions.
    /// An envelope already published with the same bytes is a no-op for it;
    /// the same name with other bytes is refused (nothing is written).
    pub fn add_envelopes(
        &mut self,
        envelopes: &[(String, Vec<u8>)],
        now: jiff::Timestamp,
    ) -> Result<Vec<Published>, PublishError> {
        let mut out = Vec::with_capacity(envelopes.len());
        let mut staged: Vec<(String, PathBuf, &Vec<u8>, Value, String)> = Vec::new();
        for (file, bytes) in envelopes {
            if !good_component(file) {
                return Err(PublishError::BadName { name: file.clone() });
            }
            let summary =
                ReleaseSummary::of_envelope(bytes).map_err(|source| PublishError::BadEnvelope {
                    file: file.clone(),
                    source,
                })?;
            let class = if good_component(&summary.class) {
                summary.class.clone()
            } else {
                return Err(PublishError::BadName {
                    name: summary.class.clone(),
                });
            };
            let target = format!("{class}/{file}");
            let sha256 = sha256_hex(bytes);
            let existing = self
                .targets
                .get(&target)
                .and_then(|t| t.pointer("/hashes/sha256"))
                .and_then(Value::as_str);
            let staged_hash = staged
                .iter()
                .find(|(t, ..)| *t == target)
                .map(|(.., h)| h.as_str());
            let new = match existing.or(staged_hash) {
                Some(h) if h == sha256 => false,
                Some(_) => return Err(PublishError::TargetExists { target }),
                None => true,
            };
            if new {
                staged.push((
                    target.clone(),
                    self.repo
                        .join("targets")
                        .join(&class)
                        .join(format!("{sha256}.{file}")),
                    bytes,
                    json!({
                        "length": bytes.len(),
                        "hashes": { "sha256": sha256 },
                        "custom": summary.to_custom(),
                    }),
                    sha256.clone(),
                ));
            }
            out.push(Published {
                target,
                sha256,
                length: bytes.len() as u64,
                summary,
                new,
            });
        }
        if staged.is_empty() {
            return Ok(out);
        }
        for (target, path, bytes, entry, _) in staged {
            write_atomic(&path, bytes)?;
            self.targets.insert(target, entry);
        }
        self.publish_targets(now)?;
        Ok(out)
    }

    /// Writes `role`'s metadata at `version`, expiring `expiry` seconds
    /// after `now`, with its one role-specific member (`targets` or
    /// `meta`), signed with the role's key: as `VERSION.ROLE.json`, but the
    /// timestamp as `timestamp.json` (TUF's consistent snapshots). Returns
    /// the document.
    fn publish_role(
        &self,
        role: &'static str,
        version: u64,
        expiry: i64,
        now: jiff::Timestamp,
        (member, value): (&str, Value),
    ) -> Result<Vec<u8>, PublishError> {
        let key = self.key(role)?;
        let mut signed = json!({
            "_type": role,
            "spec_version": SPEC_VERSION,
            "version": version,
            "expires": expires(now, expiry),
        });
        signed[member] = value;
        let doc = sign(role, &signed, &[&key])?;
        let file = match role {
            "timestamp" => "timestamp.json".to_owned(),
            _ => format!("{version}.{role}.json"),
        };
        write_atomic(&self.repo.join("metadata").join(file), &doc)?;
        Ok(doc)
    }

    /// Publishes the next targets, snapshot and timestamp versions.
    fn publish_targets(&mut self, now: jiff::Timestamp) -> Result<(), PublishError> {
        let tv = self.versions.targets + 1;
        let body = ("targets", json!(self.targets));
        let doc = self.publish_role("targets", tv, self.expiries.targets, now, body)?;
        self.versions.targets = tv;
        let sv = self.versions.snapshot + 1;
        let pins = pin("targets.json", tv, &doc);
        let doc = self.publish_role("snapshot", sv, self.expiries.snapshot, now, pins)?;
        self.versions.snapshot = sv;
        self.publish_timestamp(&doc, now)
    }

    /// Publishes the next timestamp version over `snapshot_doc`, the
    /// current snapshot.
    fn publish_timestamp(
        &mut self,
        snapshot_doc: &[u8],
        now: jiff::Timestamp,
    ) -> Result<(), PublishError> {
        let v = self.versions.timestamp + 1;
        let pins = pin("snapshot.json", self.versions.snapshot, snapshot_doc);
        self.publish_role("timestamp", v, self.expiries.timestamp, now, pins)?;
        self.versions.timestamp = v;
        Ok(())
    }

    /// Re-signs the timestamp (next version, fresh expiry) over the current
    /// snapshot: what a vendor runs on a schedule so clients see the
    /// repository is alive.
    pub fn refresh_timestamp(&mut self, now: jiff::Timestamp) -> Result<u64, PublishError> {
        let p = self
            .repo
            .join("metadata")
            .join(format!("{}.snapshot.json", self.versions.snapshot));
        let snapshot_doc = std::fs::read(&p).map_err(io("read", &p))?;
        self.publish_timestamp(&snapshot_doc, now)?;
        Ok(self.versions.timestamp)
    }

    /// Rotates the root key: generates a new one, writes root version N+1
    /// naming it, signed by the old and the new root key, and keeps the old
    /// key as `root.retired-vN.key`. Returns the new root version.
    /// Clients that trust any earlier root chain to it.
    pub fn rotate_root(&mut self, now: jiff::Timestamp) -> Result<u64, PublishError> {
        let old = self.key("root")?;
        let n = self.versions.root;
        // The old key is kept first, the new one staged beside it; root
        // N+1 is written before the new key takes the role's file name, so
        // a crash leaves either root N with its key or root N+1 with both
        // keys on disk (`root.next.key` is then the one to rename).
        old.save(&self.keys.join(format!("root.retired-v{n}.key")))?;
        let new = RoleKey::generate();
        let staged = self.keys.join("root.next.key");
        new.save(&staged)?;
        self.write_root(n + 1, &[&old, &new], Some(&new), now)?;
        std::fs::rename(&staged, key_path(&self.keys, "root")).map_err(io("write", &staged))?;
        Ok(n + 1)
    }
}

/// Where a consistent-snapshot repository stores target `path` with SHA-256
/// `hash`: the hash prefixes the file name, not the directory
/// (`dir/HASH.name`).
pub fn consistent_target_path(path: &str, hash: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{hash}.{name}"),
        None => format!("{hash}.{path}"),
    }
}
