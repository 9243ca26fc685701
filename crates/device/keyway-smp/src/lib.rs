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
//! * [`os`], [`img`], [`kw`]: typed bodies of every command Keyway speaks
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
pub mod kw;
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
    Reset(kw::Signed),
    Params,
    Info(os::Info<'a>),
    ImageState,
    ImageStateWrite(img::StateWrite<'a>),
    Upload(img::Upload<'a>),
    Erase(img::Erase),
    Status(kw::Signed),
    Lock(kw::Signed),
    Unlock(kw::Signed),
    Presence(kw::Signed),
    Notes(kw::Signed),
    Consent(kw::Consent),
    Log(kw::Log),
    Challenge,
    Pair(kw::Pair<'a>),
    FactoryReset,
    Settings(kw::SettingsReq),
    /// Pairing: the lock's PBKDF parameters (read, id 11).
    PakeParams,
    /// Pairing: `Pake1` (write, id 11).
    PakeStart(kw::PakeStart<'a>),
    /// Pairing: `Pake3` (write, id 12).
    PakeFinish(kw::PakeFinish<'a>),
    /// Session handshake: `msg1` (write, id 13).
    SessionStart(kw::SessionStart<'a>),
    /// Session handshake: `msg3` (write, id 14).
    SessionFinish(kw::SessionFinish<'a>),
    /// A sealed request in a session (write, id 15).
    Sealed(kw::Sealed<'a>),
    /// The paired owners (read, id 16; an owner's `auth`, or a session).
    Owners(kw::Signed),
    /// Remove an owner (write, id 17).
    Unpair(kw::Unpair),
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
            Request::Status(_) => (R, KEYWAY, kw::cmd::STATUS),
            Request::Lock(_) => (W, KEYWAY, kw::cmd::LOCK),
            Request::Unlock(_) => (W, KEYWAY, kw::cmd::UNLOCK),
            Request::Presence(_) => (R, KEYWAY, kw::cmd::PRESENCE),
            Request::Notes(_) => (R, KEYWAY, kw::cmd::NOTES),
            Request::Consent(_) => (W, KEYWAY, kw::cmd::CONSENT),
            Request::Log(_) => (R, KEYWAY, kw::cmd::LOG),
            Request::Challenge => (R, KEYWAY, kw::cmd::CHALLENGE),
            Request::Pair(_) => (W, KEYWAY, kw::cmd::PAIR),
            Request::FactoryReset => (W, KEYWAY, kw::cmd::FACTORY_RESET),
            Request::Settings(_) => (W, KEYWAY, kw::cmd::SETTINGS),
            Request::PakeParams => (R, KEYWAY, kw::cmd::PAKE_START),
            Request::PakeStart(_) => (W, KEYWAY, kw::cmd::PAKE_START),
            Request::PakeFinish(_) => (W, KEYWAY, kw::cmd::PAKE_FINISH),
            Request::SessionStart(_) => (W, KEYWAY, kw::cmd::SESSION_START),
            Request::SessionFinish(_) => (W, KEYWAY, kw::cmd::SESSION_FINISH),
            Request::Sealed(_) => (W, KEYWAY, kw::cmd::SEALED),
            Request::Owners(_) => (R, KEYWAY, kw::cmd::OWNERS),
            Request::Unpair(_) => (W, KEYWAY, kw::cmd::UNPAIR),
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
            (W, OS, os::cmd::RESET) => Request::Reset(kw::Signed::decode(body)?),
            (R, OS, os::cmd::PARAMS) => return empty(Request::Params),
            (R, OS, os::cmd::INFO) => Request::Info(os::Info::decode(body)?),
            (R, IMAGE, img::cmd::STATE) => return empty(Request::ImageState),
            (W, IMAGE, img::cmd::STATE) => Request::ImageStateWrite(img::StateWrite::decode(body)?),
            (W, IMAGE, img::cmd::UPLOAD) => Request::Upload(img::Upload::decode(body)?),
            (W, IMAGE, img::cmd::ERASE) => Request::Erase(img::Erase::decode(body)?),
            (R, KEYWAY, kw::cmd::STATUS) => Request::Status(kw::Signed::decode(body)?),
            (W, KEYWAY, kw::cmd::LOCK) => Request::Lock(kw::Signed::decode(body)?),
            (W, KEYWAY, kw::cmd::UNLOCK) => Request::Unlock(kw::Signed::decode(body)?),
            (R, KEYWAY, kw::cmd::PRESENCE) => Request::Presence(kw::Signed::decode(body)?),
            (R, KEYWAY, kw::cmd::NOTES) => Request::Notes(kw::Signed::decode(body)?),
            (W, KEYWAY, kw::cmd::CONSENT) => Request::Consent(kw::Consent::decode(body)?),
            (R, KEYWAY, kw::cmd::LOG) => Request::Log(kw::Log::decode(body)?),
            (R, KEYWAY, kw::cmd::CHALLENGE) => return empty(Request::Challenge),
            (W, KEYWAY, kw::cmd::PAIR) => Request::Pair(kw::Pair::decode(body)?),
            (W, KEYWAY, kw::cmd::FACTORY_RESET) => return empty(Request::FactoryReset),
            (W, KEYWAY, kw::cmd::SETTINGS) => Request::Settings(kw::SettingsReq::decode(body)?),
            (R, KEYWAY, kw::cmd::PAKE_START) => return empty(Request::PakeParams),
            (W, KEYWAY, kw::cmd::PAKE_START) => Request::PakeStart(kw::PakeStart::decode(body)?),
            (W, KEYWAY, kw::cmd::PAKE_FINISH) => Request::PakeFinish(kw::PakeFinish::decode(body)?),
            (W, KEYWAY, kw::cmd::SESSION_START) => {
                Request::SessionStart(kw::SessionStart::decode(body)?)
            }
            (W, KEYWAY, kw::cmd::SESSION_FINISH) => {
                Request::SessionFinish(kw::SessionFinish::decode(body)?)
            }
            (W, KEYWAY, kw::cmd::SEALED) => Request::Sealed(kw::Sealed::decode(body)?),
            (R, KEYWAY, kw::cmd::OWNERS) => Request::Owners(kw::Signed::decode(body)?),
            (W, KEYWAY, kw::cmd::UNPAIR) => Request::Unpair(kw::Unpair::decode(body)?),
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
    Status(kw::Status<'a>),
    Presence(kw::Presence),
    Notes(kw::Notes<'a>),
    Consent(kw::ConsentRsp<'a>),
    Log(kw::LogRsp<'a>),
    Challenge(kw::Challenge),
    Pair(kw::PairRsp),
    FactoryReset(kw::FactoryResetRsp),
    Settings(kw::SettingsRsp),
    PakeParams(kw::PakeParams<'a>),
    PakeStart(kw::PakeStartRsp<'a>),
    PakeFinish(kw::PakeFinishRsp<'a>),
    SessionStart(kw::SessionStartRsp<'a>),
    SessionFinish(kw::SessionFinishRsp<'a>),
    Sealed(kw::Sealed<'a>),
    Owners(kw::OwnersRsp<'a>),
    Unpair(kw::UnpairRsp),
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
            (Op::ReadRsp, KEYWAY, kw::cmd::STATUS)
            | (Op::WriteRsp, KEYWAY, kw::cmd::LOCK)
            | (Op::WriteRsp, KEYWAY, kw::cmd::UNLOCK) => {
                Response::Status(kw::Status::decode(body)?)
            }
            (Op::ReadRsp, KEYWAY, kw::cmd::PRESENCE) => {
                Response::Presence(kw::Presence::decode(body)?)
            }
            (Op::ReadRsp, KEYWAY, kw::cmd::NOTES) => Response::Notes(kw::Notes::decode(body)?),
            (Op::WriteRsp, KEYWAY, kw::cmd::CONSENT) => {
                Response::Consent(kw::ConsentRsp::decode(body)?)
            }
            (Op::ReadRsp, KEYWAY, kw::cmd::LOG) => Response::Log(kw::LogRsp::decode(body)?),
            (Op::ReadRsp, KEYWAY, kw::cmd::CHALLENGE) => {
                Response::Challenge(kw::Challenge::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, kw::cmd::PAIR) => Response::Pair(kw::PairRsp::decode(body)?),
            (Op::WriteRsp, KEYWAY, kw::cmd::FACTORY_RESET) => {
                Response::FactoryReset(kw::FactoryResetRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, kw::cmd::SETTINGS) => {
                Response::Settings(kw::SettingsRsp::decode(body)?)
            }
            (Op::ReadRsp, KEYWAY, kw::cmd::PAKE_START) => {
                Response::PakeParams(kw::PakeParams::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, kw::cmd::PAKE_START) => {
                Response::PakeStart(kw::PakeStartRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, kw::cmd::PAKE_FINISH) => {
                Response::PakeFinish(kw::PakeFinishRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, kw::cmd::SESSION_START) => {
                Response::SessionStart(kw::SessionStartRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, kw::cmd::SESSION_FINISH) => {
                Response::SessionFinish(kw::SessionFinishRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, kw::cmd::SEALED) => Response::Sealed(kw::Sealed::decode(body)?),
            (Op::ReadRsp, KEYWAY, kw::cmd::OWNERS) => {
                Response::Owners(kw::OwnersRsp::decode(body)?)
            }
            (Op::WriteRsp, KEYWAY, kw::cmd::UNPAIR) => {
                Response::Unpair(kw::UnpairRsp::decode(body)?)
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
