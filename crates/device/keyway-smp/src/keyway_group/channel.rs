//! The secure channel's messages, each a body `{key: bstr}`: pairing by
//! PAKE (ids 11, 12), the session handshake (ids 13, 14) and sealed
//! records (id 15).

use super::*;

/// The byte string of a body `{key: bstr}` (one copy for every channel
/// message).
pub(super) fn one_bstr<'a>(body: &'a [u8], key: &[&'static str; 1]) -> Result<&'a [u8], Error> {
    let mut m = &[][..];
    let seen = cbor::read_body(body, key, &mut |_, name, r| {
        m = bytes(r, name)?;
        Ok(())
    })?;
    cbor::require(seen, 1, key)?;
    Ok(m)
}

macro_rules! one_bstr {
    ($(#[$m:meta])* $name:ident, $key:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<'a> {
            #[doc = concat!("The `", $key, "` byte string: the channel's message.")]
            pub msg: &'a [u8],
        }

        impl<'a> Message<'a> for $name<'a> {
            fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
                w.map(1)?;
                w.entry_bytes($key, self.msg)
            }
            fn decode(body: &'a [u8]) -> Result<Self, Error> {
                Ok($name {
                    msg: one_bstr(body, &[$key])?,
                })
            }
        }
    };
}

one_bstr!(
    /// `pake` read answer (id 11, read): `{"params": bstr}`, the lock's
    /// PBKDF parameters (`keyway-channel` `Params`, 21 bytes).
    PakeParams,
    "params"
);
one_bstr!(
    /// `pake` write request (id 11): `{"pake1": bstr}`, the client's
    /// SPAKE2+ share (`Pake1`, 32 bytes).
    PakeStart,
    "pake1"
);
one_bstr!(
    /// Answer to [`PakeStart`]: `{"pake2": bstr}` (`Pake2`, 64 bytes).
    PakeStartRsp,
    "pake2"
);
one_bstr!(
    /// `pake finish` request (id 12): `{"pake3": bstr}` (`Pake3`, 113
    /// bytes: the confirmation and the owner's key and name, sealed).
    PakeFinish,
    "pake3"
);
one_bstr!(
    /// `session` request (id 13): `{"msg1": bstr}` (33 bytes).
    SessionStart,
    "msg1"
);
one_bstr!(
    /// Answer to [`SessionStart`]: `{"msg2": bstr}` (124 bytes).
    SessionStartRsp,
    "msg2"
);
one_bstr!(
    /// `session finish` request (id 14): `{"msg3": bstr}` (92 bytes).
    SessionFinish,
    "msg3"
);
one_bstr!(
    /// Answer to [`SessionFinish`]: `{"msg4": bstr}` (29 bytes).
    SessionFinishRsp,
    "msg4"
);
one_bstr!(
    /// `sealed` request and answer (id 15): `{"rec": bstr}`, a channel
    /// record whose plaintext is a whole SMP request frame (request) or
    /// the whole answer frame (answer).
    Sealed,
    "rec"
);

message! {
    /// Answer to [`PakeFinish`]: `{"pake4": bstr, "key_id": 8 bytes,
    /// "owners"}`.
    pub struct PakeFinishRsp<'a> {
        /// `Pake4` (48 bytes: the lock's device key, sealed).
        pub msg: &'a [u8] = "pake4" => bytes,
        /// The new owner's key id.
        pub key_id: [u8; 8] = "key_id" => |r, name| array(r, name, "8 bytes"),
        /// Owners now paired.
        pub owners: u64 = "owners" => uint,
    }
    encode(m) { "pake4" => m.msg, "key_id" => m.key_id, "owners" => m.owners }
}
