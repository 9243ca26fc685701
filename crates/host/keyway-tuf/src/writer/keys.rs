//! The role keys: one Ed25519 seed per role, hex, in the offline keys
//! directory (mode 0600), and signing a role's metadata with them over
//! canonical JSON.

use std::path::{Path, PathBuf};

use ed25519_dalek::Signer as _;
use serde_json::{Value, json};

use super::{PublishError, io, write_atomic};

/// One role's signing key.
pub(super) struct RoleKey {
    key: ed25519_dalek::SigningKey,
}

impl RoleKey {
    pub(super) fn generate() -> RoleKey {
        let mut seed = [0u8; 32];
        // The OS RNG failing is not recoverable; a key must not be weak.
        getrandom::fill(&mut seed).expect("the operating system's random number generator failed");
        RoleKey {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    pub(super) fn load(role: &'static str, path: &Path) -> Result<RoleKey, PublishError> {
        let bad = || PublishError::BadKey {
            role,
            path: path.to_owned(),
        };
        let text = std::fs::read_to_string(path).map_err(|_| bad())?;
        let raw = hex::decode(text.trim()).map_err(|_| bad())?;
        let seed: [u8; 32] = raw.try_into().map_err(|_| bad())?;
        Ok(RoleKey {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    pub(super) fn save(&self, path: &Path) -> Result<(), PublishError> {
        write_atomic(
            path,
            format!("{}\n", hex::encode(self.key.to_bytes())).as_bytes(),
        )?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(io("write", path))?;
        }
        Ok(())
    }

    /// The TUF key object.
    pub(super) fn tuf_key(&self) -> Value {
        json!({
            "keytype": "ed25519",
            "scheme": "ed25519",
            "keyval": { "public": hex::encode(self.key.verifying_key().to_bytes()) },
        })
    }

    /// The TUF key id: SHA-256 over the key object's canonical JSON (what
    /// securesystemslib computes; `sigstore_tuf::Key::key_id`).
    pub(super) fn key_id(&self) -> String {
        let key: sigstore_tuf::Key =
            serde_json::from_value(self.tuf_key()).expect("a well-formed TUF key object");
        key.key_id()
            .expect("an ed25519 key object encodes canonically")
    }
}

pub(super) fn key_path(keys: &Path, role: &str) -> PathBuf {
    keys.join(format!("{role}.key"))
}

/// Signs `signed` with `keys` into a TUF metadata document (canonical JSON).
pub(super) fn sign(
    role: &'static str,
    signed: &Value,
    keys: &[&RoleKey],
) -> Result<Vec<u8>, PublishError> {
    let encode = |v: &Value| {
        sigstore_tuf::canonical_json::to_canonical_bytes(v).map_err(|e| PublishError::Encode {
            role,
            detail: e.to_string(),
        })
    };
    let canonical = encode(signed)?;
    let signatures: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "keyid": k.key_id(),
                "sig": hex::encode(k.key.sign(&canonical).to_bytes()),
            })
        })
        .collect();
    encode(&json!({ "signatures": signatures, "signed": signed }))
}
