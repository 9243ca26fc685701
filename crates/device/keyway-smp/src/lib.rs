//! `keyway-smp`: the SMP (MCUmgr) protocol as Keyway speaks it, shared by
//! the lock, the owner's client, the audit and the coming hub.
//!
//! `#![no_std]`, no heap, sans-IO: bytes in, typed values out, and typed
//! values into the caller's buffer.
//!
//! * [`header`]: the 8-byte header of SMP versions 1 and 2, and the frame
//!   checks (op, version, lengths) as [`FrameError`]s.
//! * [`cbor`]: a bounded CBOR reader over borrowed bytes (definite lengths
//!   only, every length checked against the input, nesting bounded, no
//!   recursion) and a writer into `&mut [u8]` with deterministic output.
//! * [`os`], [`img`], [`keyway_group`]: typed bodies of every command Keyway speaks
//!   in the OS group (echo, reset, parameters, info), the image group
//!   (state, test, confirm, upload, erase) and the Keyway group 64
//!   (status, lock, unlock, presence, notes, consent, log export,
//!   challenge, pair, factory reset, settings; and the secure channel's
//!   pairing by PAKE, session handshake, sealed requests, the owner list
//!   and unpair, whose channel messages travel as byte strings).
//!   Each implements [`Message`]: `encode` for the side that sends it,
//!   `decode` for the side that receives it.
//! * [`Request`] and [`Response`]: a whole request or answer, dispatched
//!   by (op, group, command).
//! * [`err`]: `MGMT_ERR` codes, the image and OS groups' codes, the
//!   Keyway group's typed [`Refusal`]s, and the error bodies of both SMP
//!   versions ([`ErrorRsp`]).
//! * [`auth`]: the owner's signed message (pure bytes) and the `auth` map.
//! * `samples` (feature `samples`, tests and measurements only): one
//!   request of every kind, shared by the tests of
//!   keyway-smp and keyway-agent.
//!
//! Decoders never panic and never allocate: a body is at most what the
//! caller hands in, arrays are iterated lazily ([`seq::Seq`]) after one
//! validating pass, and every count read from the input is checked against
//! the bytes that remain before it is used.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod fields;
pub mod auth;
pub mod cbor;
pub mod err;
pub mod header;
pub mod img;
pub mod keyway_group;
pub mod os;
#[cfg(feature = "samples")]
pub mod samples;
pub mod seq;
pub mod serial;

pub use cbor::Error;
pub use err::{ErrorRsp, MgmtErr, Refusal};
pub use header::{FrameError, HEADER_LEN, Header, MAX_BODY, MAX_FRAME, Op, Version, group};

use cbor::Writer;

/// A typed body: a CBOR map.
pub trait Message<'a>: Sized {
    /// Writes the body map.
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error>;
    /// Reads a whole body (an empty body is an empty map); unknown fields
    /// are skipped, duplicated known fields refused.
    fn decode(body: &'a [u8]) -> Result<Self, Error>;

    /// Encodes into `out`; returns the length.
    fn encode_into(&self, out: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(out);
        self.encode(&mut w)?;
        Ok(w.len())
    }
}

/// Why a request could not be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// No such command (or not with this op): `ENOTSUP`.
    NotSupported {
        /// The op.
        op: Op,
        /// The group.
        group: u16,
        /// The command.
        id: u8,
    },
    /// The body does not decode: `EINVAL`.
    Body(Error),
}

impl core::fmt::Display for RequestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RequestError::NotSupported { op, group, id } => {
                write!(f, "group {group} command {id} ({op:?}) is not supported")
            }
            RequestError::Body(e) => write!(f, "{e}"),
        }
    }
}

impl From<Error> for RequestError {
    fn from(e: Error) -> Self {
        RequestError::Body(e)
    }
}

/// Writes [`Request`] and its `key`, `decode` and `encode` from one table:
/// each request's (op, group, command id) and body type stand once, so the
/// three cannot disagree. `bodies` carry a [`Message`]; `empty` ones carry
/// the empty map.
macro_rules! requests {
    (
        bodies { $( $(#[$bm:meta])* $b:ident($bt:ty) = ($bop:ident, $bg:ident, $bid:path), )* }
        empty { $( $(#[$em:meta])* $e:ident = ($eop:ident, $eg:ident, $eid:path), )* }
    ) => {
        /// Every request Keyway serves.
        #[allow(missing_docs)]
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum Request<'a> {
            $( $(#[$bm])* $b($bt), )*
            $( $(#[$em])* $e, )*
        }

        impl<'a> Request<'a> {
            /// The (op, group, command id) the request is sent with.
            pub fn key(&self) -> (Op, u16, u8) {
                use Op::{Read as R, Write as W};
                use group::{IMAGE, KEYWAY, OS};
                match self {
                    $( Request::$b(_) => ($bop, $bg, $bid), )*
                    $( Request::$e => ($eop, $eg, $eid), )*
                }
            }

            /// Decodes the body of a request with this op, group and command.
            pub fn decode(
                op: Op,
                group: u16,
                id: u8,
                body: &'a [u8],
            ) -> Result<Self, RequestError> {
                use Op::{Read as R, Write as W};
                use group::{IMAGE, KEYWAY, OS};
                Ok(match (op, group, id) {
                    $( ($bop, $bg, $bid) => Request::$b(<$bt>::decode(body)?), )*
                    $( ($eop, $eg, $eid) => {
                        os::Empty::decode(body)?;
                        Request::$e
                    } )*
                    (op, group, id) => return Err(RequestError::NotSupported { op, group, id }),
                })
            }

            /// Writes the body.
            pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
                match self {
                    $( Request::$b(m) => m.encode(w), )*
                    $( Request::$e )|* => os::Empty.encode(w),
                }
            }
        }
    };
}

requests! {
    bodies {
        Echo(os::Echo<'a>) = (W, OS, os::cmd::ECHO),
        /// OS reset: the window, or an owner's `auth`.
        Reset(keyway_group::Signed) = (W, OS, os::cmd::RESET),
        Info(os::Info<'a>) = (R, OS, os::cmd::INFO),
        ImageStateWrite(img::StateWrite<'a>) = (W, IMAGE, img::cmd::STATE),
        Upload(img::Upload<'a>) = (W, IMAGE, img::cmd::UPLOAD),
        Erase(img::Erase) = (W, IMAGE, img::cmd::ERASE),
        Status(keyway_group::Signed) = (R, KEYWAY, keyway_group::cmd::STATUS),
        Lock(keyway_group::Signed) = (W, KEYWAY, keyway_group::cmd::LOCK),
        Unlock(keyway_group::Signed) = (W, KEYWAY, keyway_group::cmd::UNLOCK),
        Presence(keyway_group::Signed) = (R, KEYWAY, keyway_group::cmd::PRESENCE),
        Notes(keyway_group::Signed) = (R, KEYWAY, keyway_group::cmd::NOTES),
        Consent(keyway_group::Consent) = (W, KEYWAY, keyway_group::cmd::CONSENT),
        Log(keyway_group::Log) = (R, KEYWAY, keyway_group::cmd::LOG),
        Pair(keyway_group::Pair<'a>) = (W, KEYWAY, keyway_group::cmd::PAIR),
        Settings(keyway_group::SettingsReq) = (W, KEYWAY, keyway_group::cmd::SETTINGS),
        /// Pairing: `Pake1` (write, id 11).
        PakeStart(keyway_group::PakeStart<'a>) = (W, KEYWAY, keyway_group::cmd::PAKE_START),
        /// Pairing: `Pake3` (write, id 12).
        PakeFinish(keyway_group::PakeFinish<'a>) = (W, KEYWAY, keyway_group::cmd::PAKE_FINISH),
        /// Session handshake: `msg1` (write, id 13).
        SessionStart(keyway_group::SessionStart<'a>) =
            (W, KEYWAY, keyway_group::cmd::SESSION_START),
        /// Session handshake: `msg3` (write, id 14).
        SessionFinish(keyway_group::SessionFinish<'a>) =
            (W, KEYWAY, keyway_group::cmd::SESSION_FINISH),
        /// A sealed request in a session (write, id 15).
        Sealed(keyway_group::Sealed<'a>) = (W, KEYWAY, keyway_group::cmd::SEALED),
        /// The paired owners (read, id 16; an owner's `auth`, or a session).
        Owners(keyway_group::Signed) = (R, KEYWAY, keyway_group::cmd::OWNERS),
        /// Remove an owner (write, id 17).
        Unpair(keyway_group::Unpair) = (W, KEYWAY, keyway_group::cmd::UNPAIR),
    }
    empty {
        Params = (R, OS, os::cmd::PARAMS),
        ImageState = (R, IMAGE, img::cmd::STATE),
        Challenge = (R, KEYWAY, keyway_group::cmd::CHALLENGE),
        FactoryReset = (W, KEYWAY, keyway_group::cmd::FACTORY_RESET),
        /// Pairing: the lock's PBKDF parameters (read, id 11).
        PakeParams = (R, KEYWAY, keyway_group::cmd::PAKE_START),
    }
}

impl<'a> Request<'a> {
    /// Writes the whole request frame (header with `version` and `seq`,
    /// then the body) into `out`; returns its length.
    pub fn frame(&self, out: &mut [u8], version: Version, seq: u8) -> Result<usize, Error> {
        let (op, group, id) = self.key();
        header::frame(out, Header::request(version, op, group, id, seq), |w| {
            self.encode(w)
        })
    }

    /// Whether the answer may carry Keyway's typed refusal (`kw-rc`):
    /// always for the Keyway group, which only Keyway's clients speak; for
    /// the standard groups only when the request asked with `"kw": true`
    /// (stock tools such as smpclient refuse unknown keys in an error).
    pub fn wants_typed_refusal(&self) -> bool {
        match self {
            Request::Upload(m) => m.kw,
            Request::ImageStateWrite(m) => m.kw,
            Request::Erase(m) => m.kw,
            r => r.key().1 == group::KEYWAY,
        }
    }

    /// The owner's `auth` the request carries, if any.
    pub fn auth(&self) -> Option<&auth::Auth> {
        match self {
            Request::Upload(m) => m.auth.as_ref(),
            Request::Erase(m) => m.auth.as_ref(),
            Request::Lock(m)
            | Request::Unlock(m)
            | Request::Reset(m)
            | Request::Status(m)
            | Request::Presence(m)
            | Request::Notes(m)
            | Request::Owners(m) => m.auth.as_ref(),
            Request::ImageStateWrite(m) => m.auth.as_ref(),
            Request::Log(m) => m.auth.as_ref(),
            Request::Consent(m) => m.auth.as_ref(),
            Request::Settings(m) => m.auth.as_ref(),
            Request::Unpair(m) => m.auth.as_ref(),
            _ => None,
        }
    }
}

/// Every successful answer Keyway sends.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Response<'a> {
    Echo(os::EchoRsp<'a>),
    Reset,
    Params(os::ParamsRsp),
    Info(os::InfoRsp<'a>),
    ImageState(img::StateRsp<'a>),
    Upload(img::UploadRsp),
    Erase,
    Status(keyway_group::Status<'a>),
    Presence(keyway_group::Presence),
    Notes(keyway_group::Notes<'a>),
    Consent(keyway_group::ConsentRsp<'a>),
    Log(keyway_group::LogRsp<'a>),
    Challenge(keyway_group::Challenge),
    Pair(keyway_group::PairRsp),
    FactoryReset(keyway_group::FactoryResetRsp),
    Settings(keyway_group::SettingsRsp),
    PakeParams(keyway_group::PakeParams<'a>),
    PakeStart(keyway_group::PakeStartRsp<'a>),
    PakeFinish(keyway_group::PakeFinishRsp<'a>),
    SessionStart(keyway_group::SessionStartRsp<'a>),
    SessionFinish(keyway_group::SessionFinishRsp<'a>),
    Sealed(keyway_group::Sealed<'a>),
    Owners(keyway_group::OwnersRsp<'a>),
    Unpair(keyway_group::UnpairRsp),
}

/// An answer: a typed success or an error body.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Answer<'a> {
    /// The command succeeded.
    Ok(Response<'a>),
    /// It was refused.
    Err(ErrorRsp<'a>),
}

impl<'a> Response<'a> {
    /// Decodes the answer to a request with this op, group and command:
    /// an error body (`rc` or `err` non-zero) first, then the typed body.
    pub fn decode(op: Op, group: u16, id: u8, body: &'a [u8]) -> Result<Answer<'a>, RequestError> {
        if let Some(e) = ErrorRsp::decode(body)? {
            return Ok(Answer::Err(e));
        }
        use Op::{Read as R, ReadRsp as RR, Write as W, WriteRsp as WR};
        use group::{IMAGE, KEYWAY, OS};
        use keyway_group::cmd as k;
        let empty = |r: Response<'a>| -> Result<Answer<'a>, RequestError> {
            os::Empty::decode(body)?;
            Ok(Answer::Ok(r))
        };
        let r = match (op.response(), group, id) {
            (_, _, _) if !matches!(op, R | W) => {
                return Err(RequestError::NotSupported { op, group, id });
            }
            (WR, OS, os::cmd::ECHO) => dec(body, Self::Echo)?,
            (WR, OS, os::cmd::RESET) => return empty(Self::Reset),
            (RR, OS, os::cmd::PARAMS) => dec(body, Self::Params)?,
            (RR, OS, os::cmd::INFO) => dec(body, Self::Info)?,
            (_, IMAGE, img::cmd::STATE) => dec(body, Self::ImageState)?,
            (WR, IMAGE, img::cmd::UPLOAD) => dec(body, Self::Upload)?,
            (WR, IMAGE, img::cmd::ERASE) => return empty(Self::Erase),
            (RR, KEYWAY, k::STATUS) | (WR, KEYWAY, k::LOCK | k::UNLOCK) => dec(body, Self::Status)?,
            (RR, KEYWAY, k::PRESENCE) => dec(body, Self::Presence)?,
            (RR, KEYWAY, k::NOTES) => dec(body, Self::Notes)?,
            (WR, KEYWAY, k::CONSENT) => dec(body, Self::Consent)?,
            (RR, KEYWAY, k::LOG) => dec(body, Self::Log)?,
            (RR, KEYWAY, k::CHALLENGE) => dec(body, Self::Challenge)?,
            (WR, KEYWAY, k::PAIR) => dec(body, Self::Pair)?,
            (WR, KEYWAY, k::FACTORY_RESET) => dec(body, Self::FactoryReset)?,
            (WR, KEYWAY, k::SETTINGS) => dec(body, Self::Settings)?,
            (RR, KEYWAY, k::PAKE_START) => dec(body, Self::PakeParams)?,
            (WR, KEYWAY, k::PAKE_START) => dec(body, Self::PakeStart)?,
            (WR, KEYWAY, k::PAKE_FINISH) => dec(body, Self::PakeFinish)?,
            (WR, KEYWAY, k::SESSION_START) => dec(body, Self::SessionStart)?,
            (WR, KEYWAY, k::SESSION_FINISH) => dec(body, Self::SessionFinish)?,
            (WR, KEYWAY, k::SEALED) => dec(body, Self::Sealed)?,
            (RR, KEYWAY, k::OWNERS) => dec(body, Self::Owners)?,
            (WR, KEYWAY, k::UNPAIR) => dec(body, Self::Unpair)?,
            (_, group, id) => return Err(RequestError::NotSupported { op, group, id }),
        };
        Ok(Answer::Ok(r))
    }

    /// Writes the body.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        match self {
            Response::Echo(m) => m.encode(w),
            Response::Reset | Response::Erase => os::Empty.encode(w),
            Response::Params(m) => m.encode(w),
            Response::Info(m) => m.encode(w),
            Response::ImageState(m) => m.encode(w),
            Response::Upload(m) => m.encode(w),
            Response::Status(m) => m.encode(w),
            Response::Presence(m) => m.encode(w),
            Response::Notes(m) => m.encode(w),
            Response::Consent(m) => m.encode(w),
            Response::Log(m) => m.encode(w),
            Response::Challenge(m) => m.encode(w),
            Response::Pair(m) => m.encode(w),
            Response::FactoryReset(m) => m.encode(w),
            Response::Settings(m) => m.encode(w),
            Response::PakeParams(m) => m.encode(w),
            Response::PakeStart(m) => m.encode(w),
            Response::PakeFinish(m) => m.encode(w),
            Response::SessionStart(m) => m.encode(w),
            Response::SessionFinish(m) => m.encode(w),
            Response::Sealed(m) => m.encode(w),
            Response::Owners(m) => m.encode(w),
            Response::Unpair(m) => m.encode(w),
        }
    }
}

/// Decodes a body as the message `variant` carries.
fn dec<'a, M: Message<'a>>(
    body: &'a [u8],
    variant: fn(M) -> Response<'a>,
) -> Result<Response<'a>, Error> {
    M::decode(body).map(variant)
}

/// Writes the answer frame to `request` into `out`: the response header
/// and `body` (a success or an error body). Returns its length.
pub fn answer_frame(
    out: &mut [u8],
    request: &Header,
    body: impl FnOnce(&mut Writer<'_>) -> Result<(), Error>,
) -> Result<usize, Error> {
    header::frame(out, request.response(), body)
}
