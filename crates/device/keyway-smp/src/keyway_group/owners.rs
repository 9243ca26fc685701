//! Owners and their authority: `challenge` (id 7), `pair` (id 8),
//! `factory reset` (id 9), `settings` (id 10), `owners` (id 16) and
//! `unpair` (id 17).

use super::*;

/// `challenge` answer: `{"nonce": 16 bytes, "expires_s"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The nonce to sign with the next request.
    pub nonce: [u8; 16],
    /// Seconds it lives.
    pub expires_s: u64,
}

impl<'a> Message<'a> for Challenge {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_bytes_uint(w, ("nonce", &self.nonce), ("expires_s", self.expires_s))
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (nonce, expires_s) = read_bytes_uint(body, ("nonce", "16 bytes"), "expires_s")?;
        Ok(Challenge { nonce, expires_s })
    }
}

/// `pair` request: `{"key": 32 bytes, "name"?}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair<'a> {
    /// The owner's Ed25519 public key.
    pub key: [u8; 32],
    /// A name for people.
    pub name: Option<&'a str>,
}

impl<'a> Message<'a> for Pair<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, { "key" => self.key, "name" => self.name })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => Pair {
            key: "key" => |r, n| array(r, n, "32 bytes (an Ed25519 public key)"),
            name: "name" => text,
        })
    }
}

/// `pair` answer: `{"owners", "key_id": 8 bytes}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairRsp {
    /// Owners now paired.
    pub owners: u64,
    /// The new owner's key id (SHA-256 of the key, first 8 bytes).
    pub key_id: [u8; 8],
}

impl<'a> Message<'a> for PairRsp {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_bytes_uint(w, ("key_id", &self.key_id), ("owners", self.owners))
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (key_id, owners) = read_bytes_uint(body, ("key_id", "8 bytes"), "owners")?;
        Ok(PairRsp { owners, key_id })
    }
}

/// `factory reset` answer: `{"owners": 0}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FactoryResetRsp {
    /// Owners left (0).
    pub owners: u64,
}

impl<'a> Message<'a> for FactoryResetRsp {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, { "owners" => self.owners })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => FactoryResetRsp { owners: "owners" => uint })
    }
}

/// `settings` request: the settings to change, and an owner's `auth`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettingsReq {
    /// New `auto_install_cve`.
    pub auto_install_cve: Option<bool>,
    /// New `install_needs_unlocked`.
    pub install_needs_unlocked: Option<bool>,
    /// An owner's authentication.
    pub auth: Option<Auth>,
}

impl<'a> Message<'a> for SettingsReq {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, {
            "auth" => self.auth,
            "auto_install_cve" => self.auto_install_cve,
            "install_needs_unlocked" => self.install_needs_unlocked,
        })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => SettingsReq {
            auto_install_cve: "auto_install_cve" => flag,
            install_needs_unlocked: "install_needs_unlocked" => flag,
            auth: "auth" => owner_auth,
        })
    }
}

/// `settings` answer: `{"settings": {…}}`, all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingsRsp {
    /// The settings now.
    pub settings: Settings,
}

impl<'a> Message<'a> for SettingsRsp {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, { "settings" => self.settings })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => SettingsRsp {
            settings: "settings" => |r, _| Settings::read(r),
        })
    }
}

// ---------------------------------------------------------------------
// The secure channel's messages (ids 11 to 17): pairing by PAKE,
// sessions, sealed requests, the owner list and unpairing. The channel's
// own messages (`keyway-channel`) travel as byte strings; their lengths
// are checked by the channel, which fixes them, and here only bounded by
// the body.
// ---------------------------------------------------------------------

/// One paired owner in an `owners` answer:
/// `{"name", "key_id": 8 bytes, "paired"?}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerEntry<'a> {
    /// The owner's key id: the first 8 bytes of SHA-256 of its Ed25519
    /// public key (what `unpair` names).
    pub key_id: [u8; 8],
    /// The name given at pairing (may be empty; untrusted text: escape
    /// before printing), at most [`MAX_OWNER_NAME`] bytes.
    pub name: &'a str,
    /// When the owner was paired, Unix time in seconds, if the lock knew
    /// the time then.
    pub paired: Option<u64>,
}

impl<'a> Item<'a> for OwnerEntry<'a> {
    fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, {
            "name" => self.name,
            "key_id" => self.key_id,
            "paired" => self.paired,
        })
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        read_map!(r, 7, ("owners", "an array of maps") => OwnerEntry {
            key_id: "owners.key_id" => |r, name| array(r, name, "8 bytes"),
            name: "owners.name" => owner_name,
            paired: "owners.paired" => uint,
        })
    }
}

/// An owner's name: text of at most [`MAX_OWNER_NAME`] bytes.
fn owner_name<'a>(r: &mut Reader<'a>, name: &'static str) -> Result<&'a str, Error> {
    let n = text(r, name)?;
    if n.len() > MAX_OWNER_NAME {
        return Err(Error::Invalid {
            field: name,
            expected: "at most 64 bytes",
        });
    }
    Ok(n)
}

/// `owners` answer: `{"owners": [owner, ...]}`, in pairing order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OwnersRsp<'a> {
    /// The paired owners (at most [`MAX_OWNERS`]).
    pub owners: Seq<'a, OwnerEntry<'a>>,
}

impl<'a> Message<'a> for OwnersRsp<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, { "owners" => self.owners })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => OwnersRsp {
            owners: "owners" => |r, name| Seq::read(r, name, MAX_OWNERS),
        })
    }
}

/// `unpair` request: `{"key_id": 8 bytes, "auth"?}`: removes the owner
/// with that key id (an owner's signed request; an owner may remove
/// itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unpair {
    /// The key id of the owner to remove.
    pub key_id: [u8; 8],
    /// An owner's authentication.
    pub auth: Option<Auth>,
}

impl<'a> Message<'a> for Unpair {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, { "auth" => self.auth, "key_id" => self.key_id })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => Unpair {
            key_id: "key_id" => |r, name| array(r, name, "8 bytes"),
            auth: "auth" => owner_auth,
        })
    }
}

/// `unpair` answer: `{"key_id": 8 bytes, "owners"}`: the owner removed
/// and how many remain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnpairRsp {
    /// The key id of the owner removed.
    pub key_id: [u8; 8],
    /// Owners that remain.
    pub owners: u64,
}

impl<'a> Message<'a> for UnpairRsp {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_bytes_uint(w, ("key_id", &self.key_id), ("owners", self.owners))
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (key_id, owners) = read_bytes_uint(body, ("key_id", "8 bytes"), "owners")?;
        Ok(UnpairRsp { key_id, owners })
    }
}
