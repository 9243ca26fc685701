//! Owners and their authority: `challenge` (id 7), `pair` (id 8),
//! `factory reset` (id 9), `settings` (id 10), `owners` (id 16) and
//! `unpair` (id 17).

use super::*;

message! {
    /// `challenge` answer: `{"nonce": 16 bytes, "expires_s"}`.
    pub struct Challenge {
        /// Seconds it lives.
        pub expires_s: u64 = "expires_s" => uint,
        /// The nonce to sign with the next request.
        pub nonce: [u8; 16] = "nonce" => |r, n| array(r, n, "16 bytes"),
    }
    encode(m) { "nonce" => m.nonce, "expires_s" => m.expires_s }
}

message! {
    /// `pair` request: `{"key": 32 bytes, "name"?}`.
    pub struct Pair<'a> {
        /// The owner's Ed25519 public key.
        pub key: [u8; 32] = "key" => |r, n| array(r, n, "32 bytes (an Ed25519 public key)"),
        /// A name for people.
        pub name: Option<&'a str> = "name" => text,
    }
    encode(m) { "key" => m.key, "name" => m.name }
}

message! {
    /// `pair` answer: `{"owners", "key_id": 8 bytes}`.
    pub struct PairRsp {
        /// Owners now paired.
        pub owners: u64 = "owners" => uint,
        /// The new owner's key id (SHA-256 of the key, first 8 bytes).
        pub key_id: [u8; 8] = "key_id" => |r, n| array(r, n, "8 bytes"),
    }
    encode(m) { "key_id" => m.key_id, "owners" => m.owners }
}

message! {
    /// `factory reset` answer: `{"owners": 0}`.
    pub struct FactoryResetRsp {
        /// Owners left (0).
        pub owners: u64 = "owners" => uint,
    }
    encode(m) { "owners" => m.owners }
}

message! {
    /// `settings` request: the settings to change, and an owner's `auth`.
    #[derive(Default)]
    pub struct SettingsReq {
        /// New `auto_install_cve`.
        pub auto_install_cve: Option<bool> = "auto_install_cve" => flag,
        /// New `install_needs_unlocked`.
        pub install_needs_unlocked: Option<bool> = "install_needs_unlocked" => flag,
        /// An owner's authentication.
        pub auth: Option<Auth> = "auth" => owner_auth,
    }
    encode(m) {
        "auth" => m.auth,
        "auto_install_cve" => m.auto_install_cve,
        "install_needs_unlocked" => m.install_needs_unlocked,
    }
}

message! {
    /// `settings` answer: `{"settings": {…}}`, all of them.
    pub struct SettingsRsp {
        /// The settings now.
        pub settings: Settings = "settings" => |r, _| Settings::read(r),
    }
    encode(m) { "settings" => m.settings }
}

// ---------------------------------------------------------------------
// The secure channel's messages (ids 11 to 17): pairing by PAKE,
// sessions, sealed requests, the owner list and unpairing. The channel's
// own messages (`keyway-channel`) travel as byte strings; their lengths
// are checked by the channel, which fixes them, and here only bounded by
// the body.
// ---------------------------------------------------------------------

message! {
    /// One paired owner in an `owners` answer:
    /// `{"name", "key_id": 8 bytes, "paired"?}`.
    item(7, "owners", "an array of maps")
    pub struct OwnerEntry<'a> {
        /// The owner's key id: the first 8 bytes of SHA-256 of its Ed25519
        /// public key (what `unpair` names).
        pub key_id: [u8; 8] = "owners.key_id" => |r, name| array(r, name, "8 bytes"),
        /// The name given at pairing (may be empty; untrusted text: escape
        /// before printing), at most [`MAX_OWNER_NAME`] bytes.
        pub name: &'a str = "owners.name" => owner_name,
        /// When the owner was paired, Unix time in seconds, if the lock knew
        /// the time then.
        pub paired: Option<u64> = "owners.paired" => uint,
    }
    encode(m) { "name" => m.name, "key_id" => m.key_id, "paired" => m.paired }
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

message! {
    /// `owners` answer: `{"owners": [owner, ...]}`, in pairing order.
    pub struct OwnersRsp<'a> {
        /// The paired owners (at most [`MAX_OWNERS`]).
        pub owners: Seq<'a, OwnerEntry<'a>> = "owners" => |r, name| Seq::read(r, name, MAX_OWNERS),
    }
    encode(m) { "owners" => m.owners }
}

message! {
    /// `unpair` request: `{"key_id": 8 bytes, "auth"?}`: removes the owner
    /// with that key id (an owner's signed request; an owner may remove
    /// itself).
    pub struct Unpair {
        /// The key id of the owner to remove.
        pub key_id: [u8; 8] = "key_id" => |r, name| array(r, name, "8 bytes"),
        /// An owner's authentication.
        pub auth: Option<Auth> = "auth" => owner_auth,
    }
    encode(m) { "auth" => m.auth, "key_id" => m.key_id }
}

message! {
    /// `unpair` answer: `{"key_id": 8 bytes, "owners"}`: the owner removed
    /// and how many remain.
    pub struct UnpairRsp {
        /// Owners that remain.
        pub owners: u64 = "owners" => uint,
        /// The key id of the owner removed.
        pub key_id: [u8; 8] = "key_id" => |r, n| array(r, n, "8 bytes"),
    }
    encode(m) { "key_id" => m.key_id, "owners" => m.owners }
}
