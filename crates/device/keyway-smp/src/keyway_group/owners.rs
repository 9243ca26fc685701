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
        w.map(1 + usize::from(self.name.is_some()))?;
        w.entry_bytes("key", &self.key)?;
        if let Some(n) = self.name {
            w.entry_text("name", n)?;
        }
        Ok(())
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut key, mut name) = ([0; 32], None);
        let names = ["key", "name"];
        let seen = cbor::read_body(body, &names, &mut |i, n, r| {
            match i {
                0 => cbor::fill(r, n, "32 bytes (an Ed25519 public key)", &mut key)?,
                _ => name = Some(txt(r, n)?),
            }
            Ok(())
        })?;
        cbor::require(seen, 0b1, &names)?;
        Ok(Pair { key, name })
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
        w.map(1)?;
        w.entry_u64("owners", self.owners)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        Ok(FactoryResetRsp {
            owners: cbor::read_required(body, "owners", uint)?,
        })
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
        w.map(
            usize::from(self.auto_install_cve.is_some())
                + usize::from(self.install_needs_unlocked.is_some())
                + usize::from(self.auth.is_some()),
        )?;
        Auth::write_entry(self.auth.as_ref(), w)?;
        if let Some(v) = self.auto_install_cve {
            w.entry_bool("auto_install_cve", v)?;
        }
        if let Some(v) = self.install_needs_unlocked {
            w.entry_bool("install_needs_unlocked", v)?;
        }
        Ok(())
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let mut s = SettingsReq::default();
        let names = ["auto_install_cve", "install_needs_unlocked", "auth"];
        cbor::read_body(body, &names, &mut |i, name, r| {
            match i {
                0 => s.auto_install_cve = Some(flag(r, name)?),
                1 => s.install_needs_unlocked = Some(flag(r, name)?),
                _ => s.auth = Some(Auth::read(r)?),
            }
            Ok(())
        })?;
        Ok(s)
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
        w.map(1)?;
        w.text("settings")?;
        self.settings.write(w)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        Ok(SettingsRsp {
            settings: cbor::read_required(body, "settings", |r, _| Settings::read(r))?,
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
        w.map(2 + usize::from(self.paired.is_some()))?;
        w.entry_text("name", self.name)?;
        w.entry_bytes("key_id", &self.key_id)?;
        if let Some(p) = self.paired {
            w.entry_u64("paired", p)?;
        }
        Ok(())
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        let (mut id, mut name, mut paired) = (None, None, None);
        let names = ["owners.key_id", "owners.name", "owners.paired"];
        let mut e = |i, field_name, r: &mut Reader<'a>| {
            match i {
                0 => id = Some(fixed(r, field_name, "8 bytes")?),
                1 => {
                    let n = txt(r, field_name)?;
                    if n.len() > MAX_OWNER_NAME {
                        return Err(Error::Invalid {
                            field: field_name,
                            expected: "at most 64 bytes",
                        });
                    }
                    name = Some(n);
                }
                _ => paired = Some(uint(r, field_name)?),
            }
            Ok(())
        };
        field(
            cbor::read_fields(r, &names, 7, &mut e),
            "owners",
            "an array of maps",
        )?;
        Ok(OwnerEntry {
            key_id: cbor::need(id, "owners.key_id")?,
            name: cbor::need(name, "owners.name")?,
            paired,
        })
    }
}

/// `owners` answer: `{"owners": [owner, ...]}`, in pairing order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OwnersRsp<'a> {
    /// The paired owners (at most [`MAX_OWNERS`]).
    pub owners: Seq<'a, OwnerEntry<'a>>,
}

impl<'a> Message<'a> for OwnersRsp<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(1)?;
        w.text("owners")?;
        self.owners.write(w)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        Ok(OwnersRsp {
            owners: cbor::read_required(body, "owners", |r, name| Seq::read(r, name, MAX_OWNERS))?,
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
        w.map(1 + usize::from(self.auth.is_some()))?;
        Auth::write_entry(self.auth.as_ref(), w)?;
        w.entry_bytes("key_id", &self.key_id)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut key_id, mut auth) = ([0; 8], None);
        let names = ["key_id", "auth"];
        let seen = cbor::read_body(body, &names, &mut |i, name, r| {
            match i {
                0 => cbor::fill(r, name, "8 bytes", &mut key_id)?,
                _ => auth = Some(Auth::read(r)?),
            }
            Ok(())
        })?;
        cbor::require(seen, 0b1, &names)?;
        Ok(Unpair { key_id, auth })
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
