//! The owner's record of the locks it paired with: the lock's device key,
//! learnt from the setup-code pairing, stored next to the owner key.
//!
//! `keyway device --owner-key owner.key pair --setup-code CODE` writes
//! `owner.locks.json` beside `owner.key` ([`locks_path`]): one JSON object
//! (FORMAT.md, "The owner's paired-lock file"):
//!
//! ```json
//! {"format": "keyway-paired-locks", "version": 1,
//!  "owner_key_id": "<16 hex digits>",
//!  "locks": [{"target": "udp:127.0.0.1:7000",
//!             "device_key": "<64 hex digits: the lock's Ed25519 public key>",
//!             "device_key_id": "<16 hex digits>",
//!             "name": "front door", "paired": 1765000000}]}
//! ```
//!
//! `owner_key_id` binds the file to its owner key (a file copied beside
//! another key is refused); `device_key_id` is the first 8 bytes of
//! SHA-256 of `device_key` and must match it. One record per target:
//! pairing the same target again replaces its record. The file is written
//! whole to a temporary file created with mode 0600, synced, then renamed
//! over the old one, so a crash leaves the old file or the new one. The
//! device key is not a secret, but the list says which locks this key
//! opens, so the file is as private as the key. The reader bounds the
//! file (64 KiB, 256 locks) and checks every field.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use keyway_vendor::keys::hex;
use serde_json::{Value as JsonValue, json};

/// The `format` field.
pub const FORMAT: &str = "keyway-paired-locks";
/// The version written and read.
pub const VERSION: u64 = 1;
/// The largest file read.
pub const MAX_FILE: u64 = 64 * 1024;
/// The most locks in one file.
pub const MAX_LOCKS: usize = 256;

/// Why the paired-lock file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PairedError {
    /// Reading or writing failed.
    #[error("{path}: {what}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        error: String,
    },
    /// The file is not a paired-lock file this client reads.
    #[error(
        "{path}: not a usable paired-lock file: {why} (pair again with `keyway device --owner-key KEY pair --setup-code CODE`)"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The file belongs to another owner key.
    #[error(
        "{path}: written for owner key {file_key}, not for this key ({this_key}): use the owner key it was made with"
    )]
    OtherOwner {
        /// The file.
        path: PathBuf,
        /// The key id in the file.
        file_key: String,
        /// This owner key's id.
        this_key: String,
    },
}

/// One paired lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedLockRecord {
    /// The `--target` it was paired at (the record is found by it).
    pub target: String,
    /// The lock's device Ed25519 public key, authenticated by the setup
    /// code at pairing: every session must prove it.
    pub device_key: [u8; 32],
    /// The name the owner gave at pairing (the lock's owner list shows
    /// it), if any.
    pub name: Option<String>,
    /// When it was paired, Unix seconds.
    pub paired: u64,
}

impl PairedLockRecord {
    /// The device key's id: the first 8 bytes of its SHA-256.
    pub fn device_key_id(&self) -> [u8; 8] {
        keyway_channel::key_id(&self.device_key)
    }
}

/// The paired-lock file of one owner key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedLocks {
    /// Where it lives.
    pub path: PathBuf,
    /// The owner key's id it belongs to.
    pub owner_key_id: [u8; 8],
    /// The locks, in pairing order.
    pub locks: Vec<PairedLockRecord>,
}

/// `owner.key` → `owner.locks.json` (beside it).
pub fn locks_path(owner_key: &Path) -> PathBuf {
    owner_key.with_extension("locks.json")
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl PairedLocks {
    /// An empty file for the owner with `owner_key_id`, at `path`.
    pub fn empty(path: PathBuf, owner_key_id: [u8; 8]) -> Self {
        PairedLocks {
            path,
            owner_key_id,
            locks: Vec::new(),
        }
    }

    /// Reads `path` (none there: an empty list) for the owner with
    /// `owner_key_id`.
    pub fn load(path: &Path, owner_key_id: [u8; 8]) -> Result<Self, PairedError> {
        let io = |what, e: std::io::Error| PairedError::Io {
            path: path.to_owned(),
            what,
            error: e.to_string(),
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::empty(path.to_owned(), owner_key_id));
            }
            Err(e) => return Err(io("opening", e)),
        };
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_FILE + 1), &mut text)
            .map_err(|e| io("reading", e))?;
        let invalid = |why: String| PairedError::Invalid {
            path: path.to_owned(),
            why,
        };
        if text.len() as u64 > MAX_FILE {
            return Err(invalid(format!("longer than {MAX_FILE} bytes")));
        }
        let v: JsonValue = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
        if v["format"] != FORMAT {
            return Err(invalid(format!("\"format\" is not {FORMAT:?}")));
        }
        if v["version"] != VERSION {
            return Err(invalid(format!(
                "version {} (this client reads {VERSION})",
                v["version"]
            )));
        }
        let file_key = v["owner_key_id"]
            .as_str()
            .and_then(parse_hex::<8>)
            .ok_or_else(|| invalid("\"owner_key_id\" is not 16 hex digits".into()))?;
        if file_key != owner_key_id {
            return Err(PairedError::OtherOwner {
                path: path.to_owned(),
                file_key: hex(&file_key),
                this_key: hex(&owner_key_id),
            });
        }
        let list = v["locks"]
            .as_array()
            .ok_or_else(|| invalid("\"locks\" is not an array".into()))?;
        if list.len() > MAX_LOCKS {
            return Err(invalid(format!("more than {MAX_LOCKS} locks")));
        }
        let mut locks = Vec::with_capacity(list.len());
        for (i, l) in list.iter().enumerate() {
            let bad = |field: &str, want: &str| invalid(format!("locks[{i}].{field}: {want}"));
            let target = l["target"]
                .as_str()
                .filter(|t| !t.is_empty() && t.len() <= 256)
                .ok_or_else(|| bad("target", "a text of 1 to 256 bytes"))?
                .to_owned();
            let device_key = l["device_key"]
                .as_str()
                .and_then(parse_hex::<32>)
                .filter(keyway_channel::ed25519::valid_public_key)
                .ok_or_else(|| bad("device_key", "an Ed25519 public key in 64 hex digits"))?;
            let id = l["device_key_id"]
                .as_str()
                .and_then(parse_hex::<8>)
                .ok_or_else(|| bad("device_key_id", "16 hex digits"))?;
            if id != keyway_channel::key_id(&device_key) {
                return Err(bad("device_key_id", "the key id of device_key"));
            }
            let name = match &l["name"] {
                JsonValue::Null => None,
                JsonValue::String(s) if s.len() <= keyway_channel::pairing::NAME_MAX => {
                    Some(s.clone())
                }
                _ => return Err(bad("name", "a text of at most 32 bytes")),
            };
            let paired = l["paired"]
                .as_u64()
                .ok_or_else(|| bad("paired", "Unix seconds"))?;
            locks.push(PairedLockRecord {
                target,
                device_key,
                name,
                paired,
            });
        }
        Ok(PairedLocks {
            path: path.to_owned(),
            owner_key_id,
            locks,
        })
    }

    /// The record for `target`.
    pub fn find(&self, target: &str) -> Option<&PairedLockRecord> {
        self.locks.iter().find(|l| l.target == target)
    }

    /// Adds `record`, replacing the one for the same target.
    pub fn insert(&mut self, record: PairedLockRecord) {
        self.locks.retain(|l| l.target != record.target);
        self.locks.push(record);
    }

    /// The file's JSON.
    pub fn to_json(&self) -> JsonValue {
        json!({
            "format": FORMAT,
            "version": VERSION,
            "owner_key_id": hex(&self.owner_key_id),
            "locks": self.locks.iter().map(|l| json!({
                "target": l.target,
                "device_key": hex(&l.device_key),
                "device_key_id": hex(&l.device_key_id()),
                "name": l.name,
                "paired": l.paired,
            })).collect::<Vec<_>>(),
        })
    }

    /// Writes the file: a temporary file created 0600 beside it, synced,
    /// renamed over it.
    pub fn save(&self) -> Result<(), PairedError> {
        let io = |what, e: std::io::Error| PairedError::Io {
            path: self.path.clone(),
            what,
            error: e.to_string(),
        };
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        // A temporary file left by a crash: replace it.
        let _ = std::fs::remove_file(&tmp);
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o
            .open(&tmp)
            .map_err(|e| io("creating a temporary file for", e))?;
        let mut text = serde_json::to_vec_pretty(&self.to_json())
            .map_err(|e| io("encoding", std::io::Error::other(e)))?;
        text.push(b'\n');
        f.write_all(&text).map_err(|e| io("writing", e))?;
        f.sync_all().map_err(|e| io("syncing", e))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(|e| io("renaming the temporary file to", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(target: &str, tag: u8) -> PairedLockRecord {
        let kp = keyway_channel::SigningKey::from_bytes(&[tag; 32]);
        PairedLockRecord {
            target: target.into(),
            device_key: kp.verifying_key().to_bytes(),
            name: Some("front door".into()),
            paired: 1_765_000_000,
        }
    }

    #[test]
    fn paired_lock_file_round_trips_private_and_bound_to_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = locks_path(&dir.path().join("owner.key"));
        assert_eq!(path, dir.path().join("owner.locks.json"));
        let mut f = PairedLocks::load(&path, [1; 8]).unwrap();
        assert!(f.locks.is_empty());
        f.insert(record("udp:127.0.0.1:1", 1));
        f.insert(record("udp:127.0.0.1:2", 2));
        f.insert(record("udp:127.0.0.1:1", 3));
        f.save().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let g = PairedLocks::load(&path, [1; 8]).unwrap();
        assert_eq!(g, f);
        assert_eq!(g.locks.len(), 2);
        assert_eq!(
            g.find("udp:127.0.0.1:1"),
            Some(&record("udp:127.0.0.1:1", 3))
        );
        assert!(matches!(
            PairedLocks::load(&path, [2; 8]),
            Err(PairedError::OtherOwner { .. })
        ));
    }

    #[test]
    fn paired_lock_file_refuses_a_key_id_that_does_not_match_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.locks.json");
        let mut f = PairedLocks::empty(path.clone(), [1; 8]);
        f.insert(record("udp:h:1", 1));
        let mut v = f.to_json();
        v["locks"][0]["device_key_id"] = JsonValue::from("0000000000000000");
        std::fs::write(&path, v.to_string()).unwrap();
        let e = PairedLocks::load(&path, [1; 8]).unwrap_err();
        assert!(matches!(e, PairedError::Invalid { .. }), "{e}");
        std::fs::write(&path, vec![b' '; MAX_FILE as usize + 1]).unwrap();
        assert!(matches!(
            PairedLocks::load(&path, [1; 8]),
            Err(PairedError::Invalid { .. })
        ));
    }
}
