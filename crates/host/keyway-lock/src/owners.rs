//! The lock's owners, their settings, and owner authentication, sans-IO:
//! time (milliseconds of a monotonic clock) and the nonce bytes are inputs.
//!
//! An owner is a paired Ed25519 public key. A request signed by an owner
//! carries `auth` = `{key, nonce, sig}` (FORMAT.md, "The Keyway SMP
//! group"): the nonce comes from `challenge`, is bound to the peer that
//! asked for it, lives [`NONCE_LIFE_MS`], and is consumed by the first
//! request of that peer whose `auth` is checked ([`Owners::verify`])
//! whether the signature verifies or not. The nonce table
//! ([`crate::peers::Nonces`]) gives each peer a share of its own, so one
//! peer's flood of challenges never evicts another's fresh nonce. The
//! signature covers the group, the command id, the nonce and the body
//! without `auth`, so a captured request cannot be replayed and a
//! signature cannot be moved to another command or body.
//!
//! No oracle: a key that is not paired, or not even a curve point, is
//! checked against a stand-in key with the same work as a paired one, and
//! gets the same refusal ([`AuthError::Refused`]) as a bad signature, so
//! nobody learns whether a key belongs to the lock.

use serde_json::{Value, json};

use crate::peers::{Nonces, NoncesBusy, Peer};

/// How long a challenge nonce lives.
pub const NONCE_LIFE_MS: u64 = 60_000;
/// Owners a lock holds at most.
pub const MAX_OWNERS: usize = 16;
/// The longest owner name, in bytes.
pub const MAX_NAME: usize = 64;
/// The domain-separation prefix of the signed message (keyway-smp).
pub use keyway_smp::auth::AUTH_CONTEXT;

/// The owner's update settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Install without asking when the release fixes a CVE of high or
    /// critical severity (default false).
    pub auto_install_cve: bool,
    /// Install only while the bolt is withdrawn (default true).
    pub install_needs_unlocked: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            auto_install_cve: false,
            install_needs_unlocked: true,
        }
    }
}

/// A paired owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The owner's Ed25519 public key.
    pub key: [u8; 32],
    /// A name for people (may be empty).
    pub name: String,
    /// When it was first paired, Unix time in seconds, if the lock knew
    /// the time then.
    pub paired: Option<u64>,
}

/// An owner's `auth` map, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Auth {
    /// The owner's public key.
    pub key: [u8; 32],
    /// The challenge nonce.
    pub nonce: [u8; 16],
    /// Ed25519 signature over [`auth_message`].
    pub sig: [u8; 64],
}

/// Why an `auth` was refused. Each names what failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The nonce was never issued, was already used, or was dropped.
    #[error("the nonce was not issued or was already used (a replay?); ask for a new challenge")]
    UnknownNonce,
    /// The nonce is older than [`NONCE_LIFE_MS`].
    #[error("the nonce expired {0} ms ago; ask for a new challenge")]
    ExpiredNonce(u64),
    /// The key is not an owner's, or the signature does not verify over
    /// this command and body: one refusal for both, so it tells nobody
    /// whether a key is paired.
    #[error(
        "the key is not an owner of this lock or the signature does not verify for this command and body"
    )]
    Refused,
}

/// The stand-in key an unknown key's signature is checked against (the
/// Ed25519 base point), so that refusal costs the same work.
const STAND_IN_KEY: [u8; 32] = [
    0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
    0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
];

/// The 8-byte key id of an owner key: SHA-256 of the key, first 8 bytes.
pub fn key_id(key: &[u8; 32]) -> [u8; 8] {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

/// The message an owner signs: `"keyway-smp-auth-v1" || group (u16 BE) ||
/// command id || nonce || body` where `body` is the CBOR encoding of the
/// request body without its `auth` entry.
pub fn auth_message(group: u16, id: u8, nonce: &[u8; 16], body: &[u8]) -> Vec<u8> {
    let mut m = keyway_smp::auth::prefix(group, id, nonce).to_vec();
    m.extend_from_slice(body);
    m
}

/// Owners, settings and outstanding nonces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owners {
    owners: Vec<Owner>,
    settings: Settings,
    /// The outstanding challenge nonces, per peer.
    nonces: Nonces,
    /// The pending update the owner consented to, by its envelope's
    /// SHA-256: stored with the owners (`owners.json`, written
    /// atomically) so a power cut or a reset before the install does not
    /// lose it.
    consent: Option<[u8; 32]>,
}

impl Owners {
    /// No owners, default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// The paired owners.
    pub fn owners(&self) -> &[Owner] {
        &self.owners
    }

    /// The settings.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Replaces the settings.
    pub fn set_settings(&mut self, s: Settings) {
        self.settings = s;
    }

    /// The SHA-256 of the envelope the owner consented to install.
    pub fn consent(&self) -> Option<[u8; 32]> {
        self.consent
    }

    /// Records (or with `None` forgets) the consent.
    pub fn set_consent(&mut self, hash: Option<[u8; 32]>) {
        self.consent = hash;
    }

    /// Issues `nonce` (fresh random bytes from the caller) to `peer` at
    /// `now_ms` (see [`Nonces::issue`]). Returns the seconds it lives.
    pub fn challenge(
        &mut self,
        peer: Peer,
        nonce: [u8; 16],
        now_ms: u64,
    ) -> Result<u64, NoncesBusy> {
        self.nonces.issue(peer, nonce, now_ms)?;
        Ok(NONCE_LIFE_MS / 1000)
    }

    /// Nonces outstanding (tests).
    pub fn outstanding(&self) -> usize {
        self.nonces.outstanding()
    }

    /// Checks `auth` from `peer` for the request `group`/`id` whose body
    /// without `auth` encodes to `body`. The nonce (issued to `peer`) is
    /// consumed first, whatever the outcome. Returns the owner's key id.
    pub fn verify(
        &mut self,
        peer: Peer,
        auth: &Auth,
        group: u16,
        id: u8,
        body: &[u8],
        now_ms: u64,
    ) -> Result<[u8; 8], AuthError> {
        let issued = self
            .nonces
            .take(peer, &auth.nonce)
            .ok_or(AuthError::UnknownNonce)?;
        let age = now_ms.saturating_sub(issued);
        if age >= NONCE_LIFE_MS {
            return Err(AuthError::ExpiredNonce(age - NONCE_LIFE_MS));
        }
        let paired = self.owners.iter().any(|o| o.key == auth.key);
        // Paired keys are curve points (`pair` checks): an unknown key, or
        // one that is not a point, is checked against the stand-in, with
        // the same work and the same refusal.
        let key = keyway_suit::PublicKey::from_raw(&auth.key)
            .ok()
            .filter(|_| paired)
            .or_else(|| keyway_suit::PublicKey::from_raw(&STAND_IN_KEY).ok())
            .ok_or(AuthError::Refused)?;
        let good = key.verify(&auth_message(group, id, &auth.nonce, body), &auth.sig);
        if !(good && paired) {
            return Err(AuthError::Refused);
        }
        Ok(key_id(&auth.key))
    }

    /// Pairs `key` (again: its name is updated). Refuses a key that is not
    /// a valid Ed25519 point, a name over [`MAX_NAME`] bytes, and a
    /// [`MAX_OWNERS`]th + 1 owner.
    pub fn pair(&mut self, key: [u8; 32], name: &str) -> Result<[u8; 8], String> {
        self.pair_at(key, name, None)
    }

    /// [`Owners::pair`], recording `paired` (Unix seconds) as the time a
    /// new owner was paired; pairing a key again keeps its first time.
    pub fn pair_at(
        &mut self,
        key: [u8; 32],
        name: &str,
        paired: Option<u64>,
    ) -> Result<[u8; 8], String> {
        if name.len() > MAX_NAME {
            return Err(format!(
                "the name has {} bytes, at most {MAX_NAME}",
                name.len()
            ));
        }
        if keyway_suit::PublicKey::from_raw(&key).is_err() {
            return Err("the key is not an Ed25519 public key".into());
        }
        if let Some(o) = self.owners.iter_mut().find(|o| o.key == key) {
            o.name = name.to_owned();
            o.paired = o.paired.or(paired);
        } else {
            if self.owners.len() >= MAX_OWNERS {
                return Err(format!("the lock holds {MAX_OWNERS} owners already"));
            }
            self.owners.push(Owner {
                key,
                name: name.to_owned(),
                paired,
            });
        }
        Ok(key_id(&key))
    }

    /// Removes the owner whose key id is `id` and returns it (`None`: no
    /// owner has that key id, nothing changed). Its signed requests are
    /// refused from then on, like any unpaired key's.
    pub fn remove(&mut self, id: &[u8; 8]) -> Option<Owner> {
        let at = self.owners.iter().position(|o| key_id(&o.key) == *id)?;
        Some(self.owners.remove(at))
    }

    /// Factory reset: no owners, default settings, no nonces.
    pub fn reset(&mut self) {
        *self = Owners::default();
    }

    /// `owners.json`: `{"owners": [{"key": hex, "name", "paired"?}],
    /// "settings": {…}}` (`paired`: Unix seconds, when known)
    /// and, while the owner's consent waits for its install,
    /// `"consent": hex` (the envelope's SHA-256).
    pub fn to_json(&self) -> String {
        let mut v = json!({
            "owners": self.owners.iter().map(|o| {
                let mut e = json!({
                    "key": keyway::keys::hex(&o.key),
                    "name": o.name,
                });
                if let (Some(p), Some(m)) = (o.paired, e.as_object_mut()) {
                    m.insert("paired".into(), Value::from(p));
                }
                e
            }).collect::<Vec<_>>(),
            "settings": {
                "auto_install_cve": self.settings.auto_install_cve,
                "install_needs_unlocked": self.settings.install_needs_unlocked,
            },
        });
        if let (Some(h), Some(m)) = (self.consent, v.as_object_mut()) {
            m.insert("consent".into(), Value::String(keyway::keys::hex(&h)));
        }
        v.to_string()
    }

    /// Reads `owners.json`, naming what is wrong.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("owners.json is not JSON: {e}"))?;
        let mut o = Owners::new();
        let list = v
            .get("owners")
            .and_then(Value::as_array)
            .ok_or("owners.json: \"owners\" is missing or not an array")?;
        for (i, e) in list.iter().enumerate() {
            let hex = e
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("owners.json: owner {i}: \"key\" is missing"))?;
            let key = parse_hex32(hex)
                .ok_or_else(|| format!("owners.json: owner {i}: \"key\" is not 64 hex digits"))?;
            let name = e.get("name").and_then(Value::as_str).unwrap_or("");
            let paired = match e.get("paired") {
                None | Some(Value::Null) => None,
                Some(p) => Some(p.as_u64().ok_or_else(|| {
                    format!("owners.json: owner {i}: \"paired\" is not a number of seconds")
                })?),
            };
            o.pair_at(key, name, paired)
                .map_err(|e| format!("owners.json: owner {i}: {e}"))?;
        }
        let flag = |k: &str, d: bool| -> Result<bool, String> {
            match v.get("settings").and_then(|s| s.get(k)) {
                None => Ok(d),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(format!("owners.json: settings.{k} is not a boolean")),
            }
        };
        o.consent = match v.get("consent") {
            None | Some(Value::Null) => None,
            Some(c) => Some(
                c.as_str()
                    .and_then(parse_hex32)
                    .ok_or("owners.json: \"consent\" is not 64 hex digits")?,
            ),
        };
        let d = Settings::default();
        o.settings = Settings {
            auto_install_cve: flag("auto_install_cve", d.auto_install_cve)?,
            install_needs_unlocked: flag("install_needs_unlocked", d.install_needs_unlocked)?,
        };
        Ok(o)
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway::keys::{Algorithm, SigningKey};

    const P: Peer = Peer::LOCAL;

    fn owner() -> (SigningKey, [u8; 32]) {
        let k = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let raw: [u8; 32] = k.raw_public_key_bytes().try_into().unwrap();
        (k, raw)
    }

    fn auth(k: &SigningKey, key: [u8; 32], nonce: [u8; 16], id: u8, body: &[u8]) -> Auth {
        let sig = k.sign(&auth_message(64, id, &nonce, body));
        Auth {
            key,
            nonce,
            sig: sig.try_into().unwrap(),
        }
    }

    #[test]
    fn a_signed_request_verifies_once() {
        let (k, key) = owner();
        let mut o = Owners::new();
        o.pair(key, "ann").unwrap();
        o.challenge(P, [1; 16], 1000).unwrap();
        let a = auth(&k, key, [1; 16], 2, b"\xa0");
        assert_eq!(o.verify(P, &a, 64, 2, b"\xa0", 2000), Ok(key_id(&key)));
        assert_eq!(
            o.verify(P, &a, 64, 2, b"\xa0", 2001),
            Err(AuthError::UnknownNonce)
        );
    }

    #[test]
    fn replayed_nonce_is_refused_even_after_a_failed_signature() {
        let (k, key) = owner();
        let mut o = Owners::new();
        o.pair(key, "").unwrap();
        o.challenge(P, [2; 16], 0).unwrap();
        let mut bad = auth(&k, key, [2; 16], 2, b"\xa0");
        bad.sig[0] ^= 1;
        assert_eq!(
            o.verify(P, &bad, 64, 2, b"\xa0", 10),
            Err(AuthError::Refused)
        );
        // The good signature comes too late: the nonce is spent.
        let good = auth(&k, key, [2; 16], 2, b"\xa0");
        assert_eq!(
            o.verify(P, &good, 64, 2, b"\xa0", 20),
            Err(AuthError::UnknownNonce)
        );
    }

    #[test]
    fn signature_moved_to_another_command_or_body_is_refused() {
        let (k, key) = owner();
        let mut o = Owners::new();
        o.pair(key, "").unwrap();
        o.challenge(P, [3; 16], 0).unwrap();
        o.challenge(P, [4; 16], 0).unwrap();
        let a = auth(&k, key, [3; 16], 1, b"\xa0");
        assert_eq!(o.verify(P, &a, 64, 2, b"\xa0", 1), Err(AuthError::Refused));
        let a = auth(&k, key, [4; 16], 10, b"\xa1\x01\xf5");
        assert_eq!(
            o.verify(P, &a, 64, 10, b"\xa1\x01\xf4", 1),
            Err(AuthError::Refused)
        );
    }

    #[test]
    fn expired_nonce_and_unpaired_key_are_refused() {
        let (k, key) = owner();
        let (k2, key2) = owner();
        let mut o = Owners::new();
        o.pair(key, "").unwrap();
        o.challenge(P, [5; 16], 0).unwrap();
        let a = auth(&k, key, [5; 16], 2, b"");
        assert_eq!(
            o.verify(P, &a, 64, 2, b"", NONCE_LIFE_MS + 5),
            Err(AuthError::ExpiredNonce(5))
        );
        o.challenge(P, [6; 16], 0).unwrap();
        let a = auth(&k2, key2, [6; 16], 2, b"");
        assert_eq!(o.verify(P, &a, 64, 2, b"", 1), Err(AuthError::Refused));
    }

    #[test]
    fn a_peer_holds_at_most_its_share_of_nonces_the_oldest_dropped() {
        use crate::peers::NONCES_PER_PEER;
        let (k, key) = owner();
        let mut o = Owners::new();
        o.pair(key, "").unwrap();
        for i in 0..10u8 {
            o.challenge(P, [i; 16], u64::from(i)).unwrap();
        }
        assert_eq!(o.outstanding(), NONCES_PER_PEER);
        let a = auth(&k, key, [0; 16], 2, b"");
        assert_eq!(
            o.verify(P, &a, 64, 2, b"", 20),
            Err(AuthError::UnknownNonce)
        );
        let a = auth(&k, key, [9; 16], 2, b"");
        assert!(o.verify(P, &a, 64, 2, b"", 20).is_ok());
    }

    #[test]
    fn owners_json_round_trips_and_bad_files_are_named() {
        let (_, key) = owner();
        let mut o = Owners::new();
        o.pair(key, "ann").unwrap();
        o.set_settings(Settings {
            auto_install_cve: true,
            install_needs_unlocked: false,
        });
        let back = Owners::from_json(&o.to_json()).unwrap();
        assert_eq!(back, o);
        o.set_consent(Some([0xab; 32]));
        let back = Owners::from_json(&o.to_json()).unwrap();
        assert_eq!(back.consent(), Some([0xab; 32]));
        let e = Owners::from_json(r#"{"owners":[{"key":"00"}]}"#).unwrap_err();
        assert!(e.contains("64 hex digits"), "{e}");
        let e =
            Owners::from_json(r#"{"owners":[],"settings":{"auto_install_cve":1}}"#).unwrap_err();
        assert!(e.contains("auto_install_cve"), "{e}");
        assert!(o.pair(key, &"x".repeat(65)).is_err());
    }

    #[test]
    fn paired_time_round_trips_and_a_re_pair_keeps_the_first() {
        let (_, a) = owner();
        let (_, b) = owner();
        let mut o = Owners::new();
        o.pair_at(a, "ann", Some(1_796_000_000)).unwrap();
        o.pair(b, "bob").unwrap();
        o.pair_at(a, "ann 2", Some(1_796_000_999)).unwrap();
        assert_eq!(o.owners()[0].paired, Some(1_796_000_000));
        assert_eq!(o.owners()[0].name, "ann 2");
        let back = Owners::from_json(&o.to_json()).unwrap();
        assert_eq!(back, o);
        assert_eq!(back.owners()[1].paired, None);
        let e = Owners::from_json(&o.to_json().replace("1796000000", "\"soon\"")).unwrap_err();
        assert!(e.contains("\"paired\""), "{e}");
    }

    #[test]
    fn remove_by_key_id_refuses_an_unknown_id_and_the_key_no_longer_verifies() {
        let (k, a) = owner();
        let (_, b) = owner();
        let mut o = Owners::new();
        o.pair(a, "ann").unwrap();
        o.pair(b, "bob").unwrap();
        assert_eq!(o.remove(&[0; 8]), None);
        assert_eq!(o.owners().len(), 2);
        let gone = o.remove(&key_id(&a)).unwrap();
        assert_eq!((gone.key, gone.name.as_str()), (a, "ann"));
        assert_eq!(o.owners().len(), 1);
        assert_eq!(o.remove(&key_id(&a)), None);
        o.challenge(P, [7; 16], 0).unwrap();
        let sig = auth(&k, a, [7; 16], 2, b"");
        assert_eq!(o.verify(P, &sig, 64, 2, b"", 1), Err(AuthError::Refused));
    }
}
