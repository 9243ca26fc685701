//! The 8-byte SMP header (Zephyr, "SMP Protocol Specification"):
//!
//! ```text
//! byte 0: res(3) | ver(2) | op(3)     byte 1: flags    bytes 2-3: data length (BE)
//! bytes 4-5: group id (BE)            byte 6: sequence byte 7: command id
//! ```
//!
//! `ver` is 0 for SMP version 1 (errors as a top-level `rc`) and 1 for SMP
//! version 2 (group errors as `err: {group, rc}`); 2 and 3 are reserved.
//! The reserved bits must be 0. No flags are defined: they are kept and
//! echoed but never acted on.

/// The header's length in bytes.
pub const HEADER_LEN: usize = 8;
/// The largest body a Keyway lock accepts (and advertises as `buf_size`
/// less the header). A request longer than this is refused with
/// `EMSGSIZE` before its body is decoded.
pub const MAX_BODY: usize = 2048;
/// The largest request frame: header and body.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_BODY;

/// `mcumgr_op_t`: the operation in the header's low 3 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Read request.
    Read = 0,
    /// Read response.
    ReadRsp = 1,
    /// Write request.
    Write = 2,
    /// Write response.
    WriteRsp = 3,
}

impl Op {
    /// The op of the 3 bits `b` (4 to 7 are undefined).
    pub fn from_bits(b: u8) -> Option<Op> {
        match b {
            0 => Some(Op::Read),
            1 => Some(Op::ReadRsp),
            2 => Some(Op::Write),
            3 => Some(Op::WriteRsp),
            _ => None,
        }
    }

    /// The response op of a request op (a response op maps to itself).
    pub fn response(self) -> Op {
        match self {
            Op::Read | Op::ReadRsp => Op::ReadRsp,
            Op::Write | Op::WriteRsp => Op::WriteRsp,
        }
    }

    /// Whether this is a response op.
    pub fn is_response(self) -> bool {
        matches!(self, Op::ReadRsp | Op::WriteRsp)
    }
}

/// The SMP protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// Header bits 0b00: SMP version 1 (errors as a top-level `rc`).
    V1 = 0,
    /// Header bits 0b01: SMP version 2 (group errors in `err`).
    V2 = 1,
}

/// SMP group ids.
pub mod group {
    /// OS management (`MGMT_GROUP_ID_OS`).
    pub const OS: u16 = 0;
    /// Image management (`MGMT_GROUP_ID_IMAGE`).
    pub const IMAGE: u16 = 1;
    /// Keyway's own group: MCUmgr reserves groups below 64 for its
    /// standard groups; 64 (`MGMT_GROUP_ID_PERUSER`) is the first a
    /// product may use. FORMAT.md, "The Keyway SMP group".
    pub const KEYWAY: u16 = 64;
}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// The operation.
    pub op: Op,
    /// The version bits (0: SMPv1, 1: SMPv2; 2 and 3 reserved, kept so the
    /// server can refuse them with `UNSUPPORTED_TOO_NEW`).
    pub version: u8,
    /// Flags (none defined; kept and echoed).
    pub flags: u8,
    /// Body length.
    pub len: u16,
    /// Group id.
    pub group: u16,
    /// Sequence number, echoed in the response.
    pub seq: u8,
    /// Command id within the group.
    pub id: u8,
}

/// Why a frame was refused before its body was looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer than 8 bytes.
    Short {
        /// Bytes received.
        got: usize,
    },
    /// Reserved header bits set, or op 4 to 7.
    BadOp {
        /// Byte 0.
        byte: u8,
    },
    /// A request was expected and this is a response op, or the reverse.
    WrongDirection {
        /// The op.
        op: Op,
    },
    /// Version bits 2 or 3.
    TooNew {
        /// The bits.
        version: u8,
    },
    /// The body is longer than the receiver's limit.
    TooLong {
        /// Declared or received body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The header's length does not match the bytes that followed it.
    LengthMismatch {
        /// The header's data length.
        declared: usize,
        /// The bytes after the header.
        got: usize,
    },
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            FrameError::Short { got } => {
                write!(
                    f,
                    "frame of {got} bytes is shorter than the 8-byte SMP header"
                )
            }
            FrameError::BadOp { byte } => write!(
                f,
                "SMP header byte 0 is {byte:#04x}: reserved bits or an undefined op (4-7)"
            ),
            FrameError::WrongDirection { op } => {
                if op.is_response() {
                    write!(f, "op {op:?} is a response, not a request")
                } else {
                    write!(f, "op {op:?} is a request, not a response")
                }
            }
            FrameError::TooNew { version } => write!(
                f,
                "SMP version bits {version} are reserved (0: SMPv1, 1: SMPv2)"
            ),
            FrameError::TooLong { len, max } => {
                write!(f, "body of {len} bytes exceeds the buffer of {max} bytes")
            }
            FrameError::LengthMismatch { declared, got } => write!(
                f,
                "header declares a {declared}-byte body, {got} bytes followed"
            ),
        }
    }
}

impl FrameError {
    /// The `MGMT_ERR` a server answers a frame error with.
    pub fn rc(&self) -> crate::MgmtErr {
        use crate::MgmtErr;
        match self {
            FrameError::TooLong { .. } => MgmtErr::MsgSize,
            FrameError::TooNew { .. } => MgmtErr::TooNew,
            FrameError::WrongDirection { .. } => MgmtErr::NotSup,
            FrameError::Short { .. }
            | FrameError::BadOp { .. }
            | FrameError::LengthMismatch { .. } => MgmtErr::Inval,
        }
    }
}

impl Header {
    /// Decodes the first 8 bytes of `bytes` (any version bits; see
    /// [`split_request`] and [`split_response`] for the checks).
    pub fn decode(bytes: &[u8]) -> Result<Header, FrameError> {
        let Some(&[b0, b1, l0, l1, g0, g1, seq, id]) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(FrameError::Short { got: bytes.len() });
        };
        let op = Op::from_bits(b0 & 0x07)
            .filter(|_| b0 & 0xE0 == 0)
            .ok_or(FrameError::BadOp { byte: b0 })?;
        Ok(Header {
            op,
            version: (b0 >> 3) & 0x03,
            flags: b1,
            len: u16::from_be_bytes([l0, l1]),
            group: u16::from_be_bytes([g0, g1]),
            seq,
            id,
        })
    }

    /// The 8 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [l0, l1] = self.len.to_be_bytes();
        let [g0, g1] = self.group.to_be_bytes();
        [
            ((self.version & 0x03) << 3) | self.op as u8,
            self.flags,
            l0,
            l1,
            g0,
            g1,
            self.seq,
            self.id,
        ]
    }

    /// A request header (`len` 0: [`frame`] sets it).
    pub fn request(version: Version, op: Op, group: u16, id: u8, seq: u8) -> Header {
        Header {
            op,
            version: version as u8,
            flags: 0,
            len: 0,
            group,
            seq,
            id,
        }
    }

    /// The header of the response to this request: the response op, the
    /// same group, sequence and command, version 0 or 1, no flags.
    pub fn response(&self) -> Header {
        Header {
            op: self.op.response(),
            version: self.version.min(1),
            flags: 0,
            len: 0,
            ..*self
        }
    }

    /// The SMP version (a reserved one counts as 2).
    pub fn smp_version(&self) -> Version {
        if self.version == 0 {
            Version::V1
        } else {
            Version::V2
        }
    }
}

/// A refused request frame: its header when it decoded, and why.
pub type Refused = (Option<Header>, FrameError);

/// Splits one request frame into its header and body, checking the op,
/// the version and the lengths (the body at most `max_body` bytes). On
/// failure the header is returned too when it decoded, so the server can
/// answer with the request's group, command and sequence.
pub fn split_request(bytes: &[u8], max_body: usize) -> Result<(Header, &[u8]), Refused> {
    let header = Header::decode(bytes).map_err(|e| (None, e))?;
    let fail = |e| (Some(header), e);
    if header.version > 1 {
        return Err(fail(FrameError::TooNew {
            version: header.version,
        }));
    }
    if header.op.is_response() {
        return Err(fail(FrameError::WrongDirection { op: header.op }));
    }
    let body = bytes.get(HEADER_LEN..).unwrap_or(&[]);
    check_len(&header, body, max_body).map_err(fail)?;
    Ok((header, body))
}

/// Splits one response frame into its header and body (at most
/// `max_body` bytes): the op must be a response and the length must match.
pub fn split_response(bytes: &[u8], max_body: usize) -> Result<(Header, &[u8]), FrameError> {
    let header = Header::decode(bytes)?;
    if !header.op.is_response() {
        return Err(FrameError::WrongDirection { op: header.op });
    }
    let body = bytes.get(HEADER_LEN..).unwrap_or(&[]);
    check_len(&header, body, max_body)?;
    Ok((header, body))
}

fn check_len(header: &Header, body: &[u8], max: usize) -> Result<(), FrameError> {
    let declared = usize::from(header.len);
    if declared > max || body.len() > max {
        return Err(FrameError::TooLong {
            len: declared.max(body.len()),
            max,
        });
    }
    if declared != body.len() {
        return Err(FrameError::LengthMismatch {
            declared,
            got: body.len(),
        });
    }
    Ok(())
}

/// Writes a frame into `out`: `header` with the length of the body that
/// `body` writes after it. Returns the frame's length.
pub fn frame(
    out: &mut [u8],
    mut header: Header,
    body: impl FnOnce(&mut crate::cbor::Writer<'_>) -> Result<(), crate::cbor::Error>,
) -> Result<usize, crate::cbor::Error> {
    let (head, rest) = out
        .split_at_mut_checked(HEADER_LEN)
        .ok_or(crate::cbor::Error::Full)?;
    let mut w = crate::cbor::Writer::new(rest);
    body(&mut w)?;
    let n = w.len();
    header.len = u16::try_from(n).map_err(|_| crate::cbor::Error::Full)?;
    head.copy_from_slice(&header.encode());
    Ok(HEADER_LEN + n)
}
