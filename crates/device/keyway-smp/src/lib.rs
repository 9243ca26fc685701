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
//!
//! Decoders never panic and never allocate: a body is at most what the
//! caller hands in, arrays are iterated lazily ([`seq::Seq`]) after one
//! validating pass, and every count read from the input is checked against
//! the bytes that remain before it is used.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod cbor;
pub mod err;
pub mod header;
pub mod img;
pub mod keyway_group;
pub mod os;
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

/// Every request Keyway serves.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Request<'a> {
    Echo(os::Echo<'a>),
    /// OS reset: the window, or an owner's `auth`.
    Reset(keyway_group::Signed),
    Params,
    Info(os::Info<'a>),
    ImageState,
    ImageStateWrite(img::StateWrite<'a>),
    Upload(img::Upload<'a>),
    Erase(img::Erase),
    Status(keyway_group::Signed),
    Lock(keyway_group::Signed),
    Unlock(keyway_group::Signed),
    Presence(keyway_group::Signed),
    Notes(keyway_group::Signed),
    Consent(keyway_group::Consent),
    Log(keyway_group::Log),
    Challenge,
    Pair(keyway_group::Pair<'a>),
    FactoryReset,
    Settings(keyway_group::SettingsReq),
    /// Pairing: the lock's PBKDF parameters (read, id 11).
    PakeParams,
    /// Pairing: `Pake1` (write, id 11).
    PakeStart(keyway_group::PakeStart<'a>),
    /// Pairing: `Pake3` (write, id 12).
    PakeFinish(keyway_group::PakeFinish<'a>),
    /// Session handshake: `msg1` (write, id 13).
    SessionStart(keyway_group::SessionStart<'a>),
    /// Session handshake: `msg3` (write, id 14).
    SessionFinish(keyway_group::SessionFinish<'a>),
    /// A sealed request in a session (write, id 15).
    Sealed(keyway_group::Sealed<'a>),
    /// The paired owners (read, id 16; an owner's `auth`, or a session).
    Owners(keyway_group::Signed),
    /// Remove an owner (write, id 17).
    Unpair(keyway_group::Unpair),
}

impl<'a> Request<'a> {
    /// The (op, group, command id) the request is sent with.
    pub fn key(&self) -> (Op, u16, u8) {
        use Op::{Read as R, Write as W};
        use group::{IMAGE, KEYWAY, OS};
        match self {
            Request::Echo(_) => (W, OS, os::cmd::ECHO),
            Request::Reset(_) => (W, OS, os::cmd::RESET),
            Request::Params => (R, OS, os::cmd::PARAMS),
            Request::Info(_) => (R, OS, os::cmd::INFO),
            Request::ImageState => (R, IMAGE, img::cmd::STATE),
            Request::ImageStateWrite(_) => (W, IMAGE, img::cmd::STATE),
            Request::Upload(_) => (W, IMAGE, img::cmd::UPLOAD),
            Request::Erase(_) => (W, IMAGE, img::cmd::ERASE),
            Request::Status(_) => (R, KEYWAY, keyway_group::cmd::STATUS),
            Request::Lock(_) => (W, KEYWAY, keyway_group::cmd::LOCK),
            Request::Unlock(_) => (W, KEYWAY, keyway_group::cmd::UNLOCK),
            Request::Presence(_) => (R, KEYWAY, keyway_group::cmd::PRESENCE),
            Request::Notes(_) => (R, KEYWAY, keyway_group::cmd::NOTES),
            Request::Consent(_) => (W, KEYWAY, keyway_group::cmd::CONSENT),
            Request::Log(_) => (R, KEYWAY, keyway_group::cmd::LOG),
            Request::Challenge => (R, KEYWAY, keyway_group::cmd::CHALLENGE),
            Request::Pair(_) => (W, KEYWAY, keyway_group::cmd::PAIR),
            Request::FactoryReset => (W, KEYWAY, keyway_group::cmd::FACTORY_RESET),
            Request::Settings(_) => (W, KEYWAY, keyway_group::cmd::SETTINGS),
            Request::PakeParams => (R, KEYWAY, keyway_group::cmd::PAKE_START),
            Request::PakeStart(_) => (W, KEYWAY, keyway_group::cmd::PAKE_START),
            Request::PakeFinish(_) => (W, KEYWAY, keyway_group::cmd::PAKE_FINISH),
            Request::SessionStart(_) => (W, KEYWAY, keyway_group::cmd::SESSION_START),
            Request::SessionFinish(_) => (W, KEYWAY, keyway_group::cmd::SESSION_FINISH),
            Request::Sealed(_) => (W, KEYWAY, keyway_group::cmd::SEALED),
            Request::Owners(_) => (R, KEYWAY, keyway_group::cmd::OWNERS),
            Request::Unpair(_) => (W, KEYWAY, keyway_group::cmd::UNPAIR),
        }
    }

    /// Decodes the body of a request with this op, group and command.
    pub fn decode(op: Op, group: u16, id: u8, body: &'a [u8]) -> Result<Self, RequestError> {
        use Op::{Read as R, Write as W};
        use group::{IMAGE, KEYWAY, OS};
        let empty = |r: Request<'a>| -> Result<Request<'a>, RequestError> {
            os::Empty::decode(body)?;
            Ok(r)
        };
        Ok(match (op, group, id) {
            (W, OS, os::cmd::ECHO) => Request::Echo(os::Echo::decode(body)?),
            (W, OS, os::cmd::RESET) => Request::Reset(keyway_group::Signed::decode(body)?),
            (R, OS, os::cmd::PARAMS) => return empty(Request::Params),
            (R, OS, os::cmd::INFO) => Request::Info(os::Info::decode(body)?),
            (R, IMAGE, img::cmd::STATE) => return empty(Request::ImageState),
            (W, IMAGE, img::cmd::STATE) => Request::ImageStateWrite(img::StateWrite::decode(body)?),
            (W, IMAGE, img::cmd::UPLOAD) => Request::Upload(img::Upload::decode(body)?),
            (W, IMAGE, img::cmd::ERASE) => Request::Erase(img::Erase::decode(body)?),
            (R, KEYWAY, keyway_group::cmd::STATUS) => {
                Request::Status(keyway_group::Signed::decode(body)?)
            }
            (W, KEYWAY, keyway_group::cmd::LOCK) => {
                Request::Lock(keyway_group::Signed::decode(body)?)
            }
            (W, KEYWAY, keyway_group::cmd::UNLOCK) => {
                Request::Unlock(keyway_group::Signed::decode(body)?)
            }
            (R, KEYWAY, keyway_group::cmd::PRESENCE) => {
                Request::Presence(keyway_group::Signed::decode(body)?)
            }
            (R, KEYWAY, keyway_group::cmd::NOTES) => {
                Request::Notes(keyway_group::Signed::decode(body)?)
            }
            (W, KEYWAY, keyway_group::cmd::CONSENT) => {
                Request::Consent(keyway_group::Consent::decode(body)?)
            }
            (R, KEYWAY, keyway_group::cmd::LOG) => Request::Log(keyway_group::Log::decode(body)?),
            (R, KEYWAY, keyway_group::cmd::CHALLENGE) => return empty(Request::Challenge),
            (W, KEYWAY, keyway_group::cmd::PAIR) => {
                Request::Pair(keyway_group::Pair::decode(body)?)
            }
            (W, KEYWAY, keyway_group::cmd::FACTORY_RESET) => return empty(Request::FactoryReset),
            (W, KEYWAY, keyway_group::cmd::SETTINGS) => {
                Request::Settings(keyway_group::SettingsReq::decode(body)?)
            }
            (R, KEYWAY, keyway_group::cmd::PAKE_START) => return empty(Request::PakeParams),
            (W, KEYWAY, keyway_group::cmd::PAKE_START) => {
                Request::PakeStart(keyway_group::PakeStart::decode(body)?)
            }
            (W, KEYWAY, keyway_group::cmd::PAKE_FINISH) => {
                Request::PakeFinish(keyway_group::PakeFinish::decode(body)?)
            }
            (W, KEYWAY, keyway_group::cmd::SESSION_START) => {
                Request::SessionStart(keyway_group::SessionStart::decode(body)?)
            }
            (W, KEYWAY, keyway_group::cmd::SESSION_FINISH) => {
                Request::SessionFinish(keyway_group::SessionFinish::decode(body)?)
            }
            (W, KEYWAY, keyway_group::cmd::SEALED) => {
                Request::Sealed(keyway_group::Sealed::decode(body)?)
            }
            (R, KEYWAY, keyway_group::cmd::OWNERS) => {
                Request::Owners(keyway_group::Signed::decode(body)?)
            }
            (W, KEYWAY, keyway_group::cmd::UNPAIR) => {
                Request::Unpair(keyway_group::Unpair::decode(body)?)
            }
            (op, group, id) => return Err(RequestError::NotSupported { op, group, id }),
        })
    }

    /// Writes the body.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        match self {
            Request::Echo(m) => m.encode(w),
            Request::Info(m) => m.encode(w),
            Request::ImageStateWrite(m) => m.encode(w),
            Request::Upload(m) => m.encode(w),
            Request::Erase(m) => m.encode(w),
            Request::Lock(m)
            | Request::Unlock(m)
            | Request::Reset(m)
            | Request::Status(m)
            | Request::Presence(m)
            | Request::Notes(m)
            | Request::Owners(m) => m.encode(w),
            Request::Consent(m) => m.encode(w),
            Request::Log(m) => m.encode(w),
            Request::Pair(m) => m.encode(w),
            Request::Settings(m) => m.encode(w),
            Request::PakeStart(m) => m.encode(w),
            Request::PakeFinish(m) => m.encode(w),
            Request::SessionStart(m) => m.encode(w),
            Request::SessionFinish(m) => m.encode(w),
            Request::Sealed(m) => m.encode(w),
            Request::Unpair(m) => m.encode(w),
            Request::Params
            | Request::ImageState
            | Request::Challenge
            | Request::FactoryReset
            | Request::PakeParams => os::Empty.encode(w),
        }
    }

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
        use Op::{Read as R, Write as W};
        use group::{IMAGE, KEYWAY, OS};
        let empty = |r: Response<'a>| -> Result<Answer<'a>, RequestError> {
            os::Empty::decode(body)?;
            Ok(Answer::Ok(r))
        };
        let r = match (op.response(), group, id) {
            (_, _, _) if !matches!(op, R | W) => {
                return Err(RequestError::NotSupported { op, group, id });
            }
            (Op::WriteRsp, OS, os::cmd::ECHO) => Response::Echo(os::EchoRsp::decode(body)?),
            (Op::WriteRsp, OS, os::cmd::RESET) => return empty(Response::Reset),
            (Op::ReadRsp, OS, os::cmd::PARAMS) => Response::Params(os::ParamsRsp::decode(body)?),
            (Op::ReadRsp, OS, os::cmd::INFO) => Response::Info(os::InfoRsp::decode(body)?),
            (_, IMAGE, img::cmd::STATE) => Response::ImageState(img::StateRsp::decode(body)?),
            (Op::WriteRsp, IMAGE, img::cmd::UPLOAD) => {
                Response::Upload(img::UploadRsp::decode(body)?)
            }
            (Op::WriteRsp, IMAGE, img::cmd::ERASE) => return empty(Response::Erase),
            (Op::ReadRsp, KEYWAY, keyway_group::cmd::STATUS)
            | (Op::WriteRsp, KEYWAY, keyway_group::cmd::LOCK)
            | (Op::WriteRsp, KEYWAY, keyway_group::cmd::UNLOCK) => {
                Response::Status(keyway_group::Status::decode(body)?)
            }
            (Op::ReadRsp, KEYWAY, keyway_group::cmd::PRESENCE) => {
                Response::Presence(keyway_group::Presence::decode(body)?)
            }
            (Op::ReadRsp, KEYWAY, keyway_group::cmd::NOTES) => {
                Response::Notes(keyway_group::Notes::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, keyway_group::cmd::CONSENT) => {
                Response::Consent(keyway_group::ConsentRsp::decode(body)?)
            }
            (Op::ReadRsp, KEYWAY, keyway_group::cmd::LOG) => {
                Response::Log(keyway_group::LogRsp::decode(body)?)
            }
            (Op::ReadRsp, KEYWAY, keyway_group::cmd::CHALLENGE) => {
                Response::Challenge(keyway_group::Challenge::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, keyway_group::cmd::PAIR) => {
                Response::Pair(keyway_group::PairRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, keyway_group::cmd::FACTORY_RESET) => {
                Response::FactoryReset(keyway_group::FactoryResetRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, keyway_group::cmd::SETTINGS) => {
                Response::Settings(keyway_group::SettingsRsp::decode(body)?)
            }
            (Op::ReadRsp, KEYWAY, keyway_group::cmd::PAKE_START) => {
                Response::PakeParams(keyway_group::PakeParams::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, keyway_group::cmd::PAKE_START) => {
                Response::PakeStart(keyway_group::PakeStartRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, keyway_group::cmd::PAKE_FINISH) => {
                Response::PakeFinish(keyway_group::PakeFinishRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, keyway_group::cmd::SESSION_START) => {
                Response::SessionStart(keyway_group::SessionStartRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, keyway_group::cmd::SESSION_FINISH) => {
                Response::SessionFinish(keyway_group::SessionFinishRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, keyway_group::cmd::SEALED) => {
                Response::Sealed(keyway_group::Sealed::decode(body)?)
            }
            (Op::ReadRsp, KEYWAY, keyway_group::cmd::OWNERS) => {
                Response::Owners(keyway_group::OwnersRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, keyway_group::cmd::UNPAIR) => {
                Response::Unpair(keyway_group::UnpairRsp::decode(body)?)
            }
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

/// Writes the answer frame to `request` into `out`: the response header
/// and `body` (a success or an error body). Returns its length.
pub fn answer_frame(
    out: &mut [u8],
    request: &Header,
    body: impl FnOnce(&mut Writer<'_>) -> Result<(), Error>,
) -> Result<usize, Error> {
    header::frame(out, request.response(), body)
}
