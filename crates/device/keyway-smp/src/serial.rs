//! The MCUmgr SMP serial transport ("SMP over console"), as Zephyr's
//! `smp_uart`/`smp_shell`, MCUboot's serial recovery and `smpclient`'s
//! `SMPSerialTransport` speak it.
//!
//! # The format
//!
//! An SMP packet (8-byte header + CBOR body) travels as one *frame*:
//!
//! ```text
//! raw   = length (u16, big-endian) || packet || crc (u16, big-endian)
//! length = packet.len() + 2            (the packet and its CRC, not itself)
//! crc    = CRC-16/XMODEM(packet)       (poly 0x1021, init 0, no reflection)
//! ```
//!
//! `raw` is base64 encoded (standard alphabet, `=` padding) and cut into
//! *lines* of at most [`MAX_LINE`] (127) bytes: a 2-byte marker
//! ([`START`] `06 09` on the first line, [`CONTINUE`] `04 14` on the
//! others), at most 124 base64 characters, and `\n`. Each line holds a
//! whole number of base64 quanta, so each decodes on its own (that is how
//! Zephyr's receiver works). The encoder cuts `raw` into 93-byte pieces,
//! which gives output byte-identical to `smp.packet.encode(line_length=128)`
//! in `smpclient` and to Zephyr's `mcumgr_serial_tx_pkt`.
//!
//! # The decoder
//!
//! [`Decoder`] is a byte-at-a-time state machine over a buffer the caller
//! owns, so it works from a UART interrupt, a DMA ring or a host read
//! loop alike. Outside a line it skips console bytes (log output, a shell
//! prompt) until a marker, as `smp_shell` does; between the lines of one
//! frame it skips them too. Every length is bounded before it is used:
//!
//! * a line longer than [`MAX_LINE`] drops the frame ([`DecodeError::LineTooLong`]);
//! * the declared length is checked against the caller's buffer as soon as
//!   its two bytes are decoded ([`DecodeError::LengthTooLong`]), never
//!   used to size anything;
//! * a decoded byte past the declared length drops the frame
//!   ([`DecodeError::Overrun`]), so the buffer is never overrun;
//! * base64 is checked character by character; a line that ends inside a
//!   quantum, or padding that is not at a line's end, drops the frame;
//! * the CRC is checked before the packet is handed out.
//!
//! After an error the decoder has already reset itself; the caller keeps
//! pushing bytes and the next good frame decodes. Errors carry what was
//! seen, for a counter or a log line, never for a reply: the transport has
//! no way to answer a frame it could not read.
//!
//! CRC and base64 are written here rather than taken from the `crc` and
//! `base64` crates: the bitwise CRC costs a few dozen bytes where the
//! crate's table is 512, and `base64` decodes whole slices, which would
//! need a second, line-sized buffer to stream from a UART (the
//! bootloader's size budget is the reason for both).

use core::fmt;

/// The first line of a frame starts with these two bytes.
pub const START: [u8; 2] = [0x06, 0x09];
/// Every further line of a frame starts with these two bytes.
pub const CONTINUE: [u8; 2] = [0x04, 0x14];
/// The longest line: marker, base64 and `\n`.
pub const MAX_LINE: usize = 127;
/// Raw (decoded) bytes the encoder puts on one line: 124 base64 characters.
pub const LINE_RAW: usize = (MAX_LINE - 3) / 4 * 3;
/// The longest packet a frame can carry (its length field is 16 bits and
/// counts the CRC).
pub const MAX_PACKET: usize = u16::MAX as usize - 2;

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0, not reflected, no
/// final XOR): the check value of the serial frame.
pub const fn crc16(data: &[u8]) -> u16 {
    crc16_update(0, data)
}

const fn crc16_update(mut crc: u16, data: &[u8]) -> u16 {
    let mut i = 0;
    while i < data.len() {
        crc ^= (data[i] as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        i += 1;
    }
    crc
}

/// Bytes of every line [`encode`] writes for a packet of `packet_len`
/// bytes (markers, base64 and newlines).
pub const fn encoded_len(packet_len: usize) -> usize {
    let raw = packet_len + 4;
    let full = raw / LINE_RAW;
    let rest = raw % LINE_RAW;
    let mut len = full * MAX_LINE;
    if rest > 0 {
        len += 3 + rest.div_ceil(3) * 4;
    }
    len
}

/// The buffer a [`Decoder`] needs to take packets of up to `max_packet`
/// bytes: the packet and its CRC.
pub const fn rx_buf_len(max_packet: usize) -> usize {
    max_packet + 2
}

/// Why a packet could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The packet does not fit the frame's 16-bit length field.
    PacketTooLong {
        /// The packet's length.
        len: usize,
        /// The longest packet a frame carries ([`MAX_PACKET`]).
        max: usize,
    },
    /// The output buffer is too small for all the lines.
    BufferTooSmall {
        /// Bytes the lines need ([`encoded_len`]).
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PacketTooLong { len, max } => {
                write!(
                    f,
                    "SMP packet of {len} bytes exceeds the serial frame's {max}"
                )
            }
            Self::BufferTooSmall { needed, available } => write!(
                f,
                "serial frame needs {needed} bytes, the buffer has {available}"
            ),
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes one packet line by line, without a buffer for the whole frame
/// (a UART driver writes each line as it comes).
#[derive(Clone, Debug)]
pub struct Encoder<'p> {
    packet: &'p [u8],
    crc: u16,
    /// Next raw byte (0..packet.len() + 4) to encode.
    pos: usize,
}

impl<'p> Encoder<'p> {
    /// Starts encoding `packet`.
    pub fn new(packet: &'p [u8]) -> Result<Self, EncodeError> {
        if packet.len() > MAX_PACKET {
            return Err(EncodeError::PacketTooLong {
                len: packet.len(),
                max: MAX_PACKET,
            });
        }
        Ok(Self {
            packet,
            crc: crc16(packet),
            pos: 0,
        })
    }

    fn raw_len(&self) -> usize {
        self.packet.len() + 4
    }

    /// Raw byte `i` of `length || packet || crc`.
    fn raw(&self, i: usize) -> u8 {
        let n = self.packet.len();
        let len = (n + 2) as u16;
        match i {
            0 => (len >> 8) as u8,
            1 => len as u8,
            i if i < n + 2 => self.packet[i - 2],
            i if i == n + 2 => (self.crc >> 8) as u8,
            _ => self.crc as u8,
        }
    }

    /// Writes the next line into `line`; returns its length, or `None`
    /// once every line was written.
    pub fn next_line(&mut self, line: &mut [u8; MAX_LINE]) -> Option<usize> {
        let total = self.raw_len();
        if self.pos >= total {
            return None;
        }
        let marker = if self.pos == 0 { START } else { CONTINUE };
        line[..2].copy_from_slice(&marker);
        let end = (self.pos + LINE_RAW).min(total);
        let mut at = 2;
        while self.pos < end {
            let take = (end - self.pos).min(3);
            let mut chunk = [0u8; 3];
            for (k, c) in chunk.iter_mut().enumerate().take(take) {
                *c = self.raw(self.pos + k);
            }
            let v = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
            for k in 0..4 {
                line[at + k] = if k <= take {
                    B64[((v >> (18 - 6 * k)) & 0x3f) as usize]
                } else {
                    b'='
                };
            }
            at += 4;
            self.pos += take;
        }
        line[at] = b'\n';
        Some(at + 1)
    }
}

/// Encodes `packet` as a whole serial frame (every line) into `out`;
/// returns the bytes written ([`encoded_len`]).
pub fn encode(packet: &[u8], out: &mut [u8]) -> Result<usize, EncodeError> {
    let mut enc = Encoder::new(packet)?;
    let needed = encoded_len(packet.len());
    if out.len() < needed {
        return Err(EncodeError::BufferTooSmall {
            needed,
            available: out.len(),
        });
    }
    let mut line = [0u8; MAX_LINE];
    let mut at = 0;
    while let Some(n) = enc.next_line(&mut line) {
        out[at..at + n].copy_from_slice(&line[..n]);
        at += n;
    }
    Ok(at)
}

/// Why the decoder dropped a frame. The decoder has reset itself when it
/// returns one: keep pushing bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The declared length does not fit the caller's buffer.
    LengthTooLong {
        /// The frame's length field (packet + CRC).
        declared: u16,
        /// The most the buffer holds.
        max: usize,
    },
    /// The declared length cannot hold a CRC and a packet.
    LengthTooShort {
        /// The frame's length field.
        declared: u16,
    },
    /// A line ran past [`MAX_LINE`] bytes without its `\n`.
    LineTooLong {
        /// The longest line ([`MAX_LINE`]).
        max: usize,
    },
    /// A byte that is not base64 (nor the line's end) inside a line, or
    /// padding in the middle of a line, or non-zero padding bits.
    BadBase64 {
        /// The offending byte.
        byte: u8,
    },
    /// A line ended inside a base64 quantum (its characters are not a
    /// multiple of 4).
    TruncatedBase64 {
        /// Characters of the unfinished quantum (1 to 3).
        chars: u8,
    },
    /// The frame decoded to more bytes than its length field declared.
    Overrun {
        /// The frame's length field.
        declared: u16,
    },
    /// The CRC does not match the packet.
    BadCrc {
        /// The CRC the frame carries.
        expected: u16,
        /// The CRC of the packet received.
        computed: u16,
    },
    /// A new frame started before this one was complete.
    Interrupted {
        /// Packet and CRC bytes received.
        received: usize,
        /// The frame's length field (0 if it was not read yet).
        declared: u16,
    },
    /// A continuation line arrived with no frame in progress.
    UnexpectedContinuation,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LengthTooLong { declared, max } => write!(
                f,
                "serial frame declares {declared} bytes, the receive buffer holds {max}"
            ),
            Self::LengthTooShort { declared } => {
                write!(
                    f,
                    "serial frame declares {declared} bytes, too few for a packet and its CRC"
                )
            }
            Self::LineTooLong { max } => write!(f, "serial line longer than {max} bytes"),
            Self::BadBase64 { byte } => write!(f, "byte 0x{byte:02x} is not base64 here"),
            Self::TruncatedBase64 { chars } => {
                write!(f, "serial line ends {chars} characters into a base64 group")
            }
            Self::Overrun { declared } => {
                write!(
                    f,
                    "serial frame carries more than its declared {declared} bytes"
                )
            }
            Self::BadCrc { expected, computed } => write!(
                f,
                "serial frame CRC 0x{expected:04x} does not match the packet's 0x{computed:04x}"
            ),
            Self::Interrupted { received, declared } => write!(
                f,
                "serial frame cut off after {received} of {declared} bytes by a new frame"
            ),
            Self::UnexpectedContinuation => {
                write!(f, "serial continuation line with no frame in progress")
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Console bytes; no frame in progress.
    Console,
    /// Console bytes between the lines of a frame in progress.
    Between,
    /// Saw the first byte of a marker (`06` or `04`) at `Console`/`Between`.
    Marker { first: u8, in_frame: bool },
    /// Inside a line's base64.
    Line,
    /// A padded quantum ended the line's data; only `\r`/`\n` may follow.
    LineEnd,
    /// Dropping the rest of a bad line.
    Skip,
}

/// The streaming frame decoder (see the module documentation).
#[derive(Debug)]
pub struct Decoder<'b> {
    buf: &'b mut [u8],
    state: State,
    /// Bytes of the current line, marker included.
    line_len: usize,
    /// Pending base64 characters (6-bit values) and how many.
    quad: [u8; 4],
    quad_len: u8,
    /// `=` characters in the pending quantum.
    pad: u8,
    /// Length bytes decoded so far (0..=2) and the length itself.
    len_bytes: u8,
    declared: u16,
    /// Packet + CRC bytes in `buf`.
    received: usize,
    /// Length of the last complete packet (for the borrow handed out).
    ready: usize,
}

fn b64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

impl<'b> Decoder<'b> {
    /// A decoder that assembles frames in `buf`; it takes packets of up to
    /// `buf.len() - 2` bytes (see [`rx_buf_len`]).
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            state: State::Console,
            line_len: 0,
            quad: [0; 4],
            quad_len: 0,
            pad: 0,
            len_bytes: 0,
            declared: 0,
            received: 0,
            ready: 0,
        }
    }

    /// Drops any frame in progress.
    pub fn reset(&mut self) {
        self.state = State::Console;
        self.clear_frame();
    }

    fn clear_frame(&mut self) {
        self.line_len = 0;
        self.quad_len = 0;
        self.pad = 0;
        self.len_bytes = 0;
        self.declared = 0;
        self.received = 0;
    }

    /// True between a frame's start marker and its end (the bytes pushed
    /// belong, or may belong, to a frame).
    pub fn in_frame(&self) -> bool {
        !matches!(
            self.state,
            State::Console
                | State::Marker {
                    in_frame: false,
                    ..
                }
        )
    }

    /// Drops the frame in progress; the rest of the current line is skipped.
    fn fail(&mut self, e: DecodeError, skip_line: bool) -> Result<bool, DecodeError> {
        self.clear_frame();
        self.state = if skip_line {
            State::Skip
        } else {
            State::Console
        };
        Err(e)
    }

    /// Takes one decoded byte.
    fn raw_byte(&mut self, b: u8) -> Result<(), DecodeError> {
        if self.len_bytes < 2 {
            self.declared = (self.declared << 8) | u16::from(b);
            self.len_bytes += 1;
            if self.len_bytes == 2 {
                let d = self.declared;
                if usize::from(d) > self.buf.len() {
                    return Err(DecodeError::LengthTooLong {
                        declared: d,
                        max: self.buf.len(),
                    });
                }
                if d <= 2 {
                    return Err(DecodeError::LengthTooShort { declared: d });
                }
            }
            return Ok(());
        }
        if self.received >= usize::from(self.declared) {
            return Err(DecodeError::Overrun {
                declared: self.declared,
            });
        }
        self.buf[self.received] = b;
        self.received += 1;
        Ok(())
    }

    /// Decodes the full quantum in `quad` (`pad` trailing `=`).
    fn flush_quad(&mut self, pad: usize) -> Result<(), DecodeError> {
        let q = self.quad;
        let v = (u32::from(q[0]) << 18)
            | (u32::from(q[1]) << 12)
            | (u32::from(q[2]) << 6)
            | u32::from(q[3]);
        let n = 3 - pad;
        // Canonical encoding: the bits under the padding are zero.
        if v & ((1 << (8 * pad)) - 1) != 0 {
            return Err(DecodeError::BadBase64 { byte: b'=' });
        }
        self.quad_len = 0;
        for k in 0..n {
            self.raw_byte((v >> (16 - 8 * k)) as u8)?;
        }
        Ok(())
    }

    /// The line ended (`\n`): is the frame complete?
    fn end_line(&mut self) -> Result<bool, DecodeError> {
        if self.quad_len != 0 {
            let chars = self.quad_len;
            return self.fail(DecodeError::TruncatedBase64 { chars }, false);
        }
        self.line_len = 0;
        if self.len_bytes < 2 || self.received < usize::from(self.declared) {
            self.state = State::Between;
            return Ok(false);
        }
        let n = self.received - 2;
        let expected = u16::from_be_bytes([self.buf[n], self.buf[n + 1]]);
        let computed = crc16(&self.buf[..n]);
        if expected != computed {
            return self.fail(DecodeError::BadCrc { expected, computed }, false);
        }
        self.ready = n;
        self.clear_frame();
        self.state = State::Console;
        Ok(true)
    }

    /// One byte in; `Ok(true)` when a packet is ready in `buf[..ready]`.
    fn step(&mut self, byte: u8) -> Result<bool, DecodeError> {
        match self.state {
            State::Console | State::Between => {
                if byte == START[0] || byte == CONTINUE[0] {
                    let in_frame = self.state == State::Between;
                    self.state = State::Marker {
                        first: byte,
                        in_frame,
                    };
                }
                Ok(false)
            }
            State::Marker { first, in_frame } => {
                let back = if in_frame {
                    State::Between
                } else {
                    State::Console
                };
                if first == START[0] && byte == START[1] {
                    let interrupted = in_frame;
                    let (received, declared) = (self.received, self.declared);
                    self.clear_frame();
                    self.line_len = 2;
                    self.state = State::Line;
                    if interrupted {
                        return Err(DecodeError::Interrupted { received, declared });
                    }
                    Ok(false)
                } else if first == CONTINUE[0] && byte == CONTINUE[1] {
                    if !in_frame {
                        self.state = State::Skip;
                        return Err(DecodeError::UnexpectedContinuation);
                    }
                    self.line_len = 2;
                    self.state = State::Line;
                    Ok(false)
                } else {
                    self.state = back;
                    // The byte may itself start a marker.
                    self.step(byte)
                }
            }
            State::Line | State::LineEnd => {
                if byte == b'\n' {
                    return self.end_line();
                }
                self.line_len += 1;
                if self.line_len >= MAX_LINE {
                    // The `\n` would make the line longer than MAX_LINE.
                    return self.fail(DecodeError::LineTooLong { max: MAX_LINE }, true);
                }
                if byte == b'\r' {
                    return Ok(false);
                }
                if self.state == State::LineEnd {
                    return self.fail(DecodeError::BadBase64 { byte }, true);
                }
                if byte == b'=' {
                    // Padding: "xx==" or "xxx=".
                    if self.quad_len < 2 {
                        return self.fail(DecodeError::BadBase64 { byte }, true);
                    }
                    self.quad[usize::from(self.quad_len)] = 0;
                    self.quad_len += 1;
                    self.pad += 1;
                    if self.quad_len == 4 {
                        if let Err(e) = self.flush_quad(usize::from(self.pad)) {
                            return self.fail(e, true);
                        }
                        self.pad = 0;
                        self.state = State::LineEnd;
                    }
                    return Ok(false);
                }
                let Some(v) = b64_value(byte) else {
                    return self.fail(DecodeError::BadBase64 { byte }, true);
                };
                if self.pad != 0 {
                    // A character after "xx=": only '=' may follow.
                    return self.fail(DecodeError::BadBase64 { byte }, true);
                }
                self.quad[usize::from(self.quad_len)] = v;
                self.quad_len += 1;
                if self.quad_len == 4
                    && let Err(e) = self.flush_quad(0)
                {
                    return self.fail(e, true);
                }
                Ok(false)
            }
            State::Skip => {
                if byte == b'\n' {
                    self.state = State::Console;
                }
                Ok(false)
            }
        }
    }

    /// Takes one byte. `Ok(Some(packet))` when a whole SMP packet (its CRC
    /// checked and stripped) is ready; `Ok(None)` for console bytes and
    /// partial frames; `Err` when a frame was dropped (the decoder has
    /// reset itself).
    pub fn push(&mut self, byte: u8) -> Result<Option<&[u8]>, DecodeError> {
        if self.step(byte)? {
            Ok(Some(&self.buf[..self.ready]))
        } else {
            Ok(None)
        }
    }

    /// Takes bytes from `input` up to the end of the first packet or
    /// error; returns how many it took and what [`push`](Self::push)
    /// returned for the last one. Call again with the rest.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Result<Option<&[u8]>, DecodeError>) {
        for (i, &b) in input.iter().enumerate() {
            match self.step(b) {
                Ok(false) => {}
                Ok(true) => return (i + 1, Ok(Some(&self.buf[..self.ready]))),
                Err(e) => return (i + 1, Err(e)),
            }
        }
        (input.len(), Ok(None))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Every packet or error the decoder yields for `input`.
    fn decode_all(input: &[u8], cap: usize) -> Vec<Result<Vec<u8>, DecodeError>> {
        let mut buf = std::vec![0u8; cap];
        let mut dec = Decoder::new(&mut buf);
        let mut out = Vec::new();
        for &b in input {
            match dec.push(b) {
                Ok(Some(p)) => out.push(Ok(p.to_vec())),
                Ok(None) => {}
                Err(e) => out.push(Err(e)),
            }
        }
        out
    }

    fn frame(packet: &[u8]) -> Vec<u8> {
        let mut out = std::vec![0u8; encoded_len(packet.len())];
        let n = encode(packet, &mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }

    /// A first line carrying `raw` (length field, packet, CRC as given).
    fn raw_line(raw: &[u8]) -> Vec<u8> {
        let mut line = START.to_vec();
        for c in raw.chunks(3) {
            let mut q = [0u8; 3];
            q[..c.len()].copy_from_slice(c);
            let v = (u32::from(q[0]) << 16) | (u32::from(q[1]) << 8) | u32::from(q[2]);
            for k in 0..4 {
                line.push(if k <= c.len() {
                    B64[((v >> (18 - 6 * k)) & 0x3f) as usize]
                } else {
                    b'='
                });
            }
        }
        line.push(b'\n');
        line
    }

    /// Fixed vectors from smpclient's encoder, made with a venv pinned to
    /// smpclient 7.3.0 / smp 4.2.0 (the versions scripts/smp-interop.sh
    /// pins):
    /// `python3 -m venv v && v/bin/pip install smpclient==7.3.0`, then
    /// `list(smp.packet.encode(pkt, line_length=128))` for each packet
    /// (`echo` is `bytes(EchoWriteRequest(d="Hello world!", sequence=7))`).
    const VECTORS: &[(&str, &[&[u8]])] = &[
        (
            "0a00001000000700a161646c48656c6c6f20776f726c6421",
            &[b"\x06\x09ABoKAAAQAAAHAKFhZGxIZWxsbyB3b3JsZCFMxg==\x0a"],
        ),
        ("00", &[b"\x06\x09AAMAAAA=\x0a"]),
        (
            // bytes(range(89)): the raw frame is exactly one 93-byte line.
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758",
            &[
                b"\x06\x09AFsAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWOjs\x0a",
            ],
        ),
        (
            // bytes((i * 7 + 3) & 0xff for i in range(250)): three lines.
            "030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dce3eaf1f8ff060d141b222930373e454c535a61686f767d848b9299a0a7aeb5bcc3cad1d8dfe6edf4fb020910171e252c333a41484f565d646b727980878e959ca3aab1b8bfc6cdd4dbe2e9f0f7fe050c131a21282f363d444b525960676e757c838a91989fa6adb4bbc2c9d0d7dee5ecf3fa01080f161d242b323940474e555c636a71787f868d949ba2a9b0b7bec5ccd3dae1e8eff6fd040b121920272e353c434a51585f666d747b828990979ea5acb3bac1c8cfd6dde4ebf2f900070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2",
            &[
                b"\x06\x09APwDChEYHyYtNDtCSVBXXmVsc3qBiI+WnaSrsrnAx87V3OPq8fj/Bg0UGyIpMDc+RUxTWmFob3Z9hIuSmaCnrrW8w8rR2N/m7fT7AgkQFx4lLDM6QUhPVl1ka3J5\x0a",
                b"\x04\x14gIeOlZyjqrG4v8bN1Nvi6fD3/gUMExohKC82PURLUllgZ251fIOKkZifpq20u8LJ0Nfe5ezz+gEIDxYdJCsyOUBHTlVcY2pxeH+GjZSboqmwt77FzNPa4ejv9v0E\x0a",
                b"\x04\x14CxIZICcuNTxDSlFYX2ZtdHuCiZCXnqWss7rByM/W3eTr8vkABw4VHCMqMTg/Rk1UW2JpcHd+hYyTmqGor7a9xMvS6ps=\x0a",
            ],
        ),
    ];

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn crc16_is_xmodem() {
        // The CRC catalogue's check value of CRC-16/XMODEM.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn encoder_matches_smpclient_vectors_byte_for_byte() {
        for (hex, lines) in VECTORS {
            let packet = unhex(hex);
            let want: Vec<u8> = lines.concat();
            assert_eq!(frame(&packet), want, "packet {hex}");
            let mut enc = Encoder::new(&packet).unwrap();
            let mut line = [0u8; MAX_LINE];
            for expected in *lines {
                let n = enc.next_line(&mut line).unwrap();
                assert_eq!(&line[..n], *expected);
                assert!(n <= MAX_LINE);
            }
            assert_eq!(enc.next_line(&mut line), None);
        }
    }

    #[test]
    fn decoder_reads_smpclient_vectors() {
        for (hex, lines) in VECTORS {
            let packet = unhex(hex);
            let got = decode_all(&lines.concat(), rx_buf_len(packet.len()));
            assert_eq!(got, std::vec![Ok(packet)], "packet {hex}");
        }
    }

    #[test]
    fn decoder_reads_lines_padded_one_by_one_as_zephyr_may() {
        // Each line its own base64 with its own padding: raw cut at 2 and 3.
        let packet = b"\x0a\x00\x00\x01\x00\x00\x07\x00\xa0";
        let crc = crc16(packet).to_be_bytes();
        let mut raw = ((packet.len() + 2) as u16).to_be_bytes().to_vec();
        raw.extend_from_slice(packet);
        raw.extend_from_slice(&crc);
        let mut input = raw_line(&raw[..2]);
        let mut next = raw_line(&raw[2..]);
        next[..2].copy_from_slice(&CONTINUE);
        input.extend_from_slice(&next);
        assert_eq!(decode_all(&input, 64), std::vec![Ok(packet.to_vec())]);
    }

    #[test]
    fn encoder_refuses_what_does_not_fit() {
        let mut out = [0u8; 10];
        assert_eq!(
            encode(&[0; 9], &mut out),
            Err(EncodeError::BufferTooSmall {
                needed: encoded_len(9),
                available: 10
            })
        );
        static BIG: [u8; MAX_PACKET + 1] = [0; MAX_PACKET + 1];
        assert_eq!(
            Encoder::new(&BIG).err(),
            Some(EncodeError::PacketTooLong {
                len: MAX_PACKET + 1,
                max: MAX_PACKET
            })
        );
    }

    #[test]
    fn console_bytes_around_and_between_lines_are_skipped() {
        let packet: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let f = frame(&packet);
        let mut input = b"uart:~$ log: booting\r\n".to_vec();
        for line in f.split_inclusive(|&b| b == b'\n') {
            input.extend_from_slice(line);
            input.extend_from_slice(b"[00:00:01.000] <inf> app: tick\r\n");
        }
        assert_eq!(decode_all(&input, rx_buf_len(300)), std::vec![Ok(packet)]);
    }

    #[test]
    fn crlf_line_ends_are_taken() {
        let f = frame(b"\x01\x02\x03");
        let crlf: Vec<u8> = f
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    std::vec![b'\r', b'\n']
                } else {
                    std::vec![b]
                }
            })
            .collect();
        assert_eq!(
            decode_all(&crlf, 16),
            std::vec![Ok(b"\x01\x02\x03".to_vec())]
        );
    }

    #[test]
    fn a_new_start_drops_the_unfinished_frame_and_decodes_the_new_one() {
        let long = frame(&[7u8; 200]);
        let first_line = &long[..MAX_LINE];
        let mut input = first_line.to_vec();
        input.extend_from_slice(&frame(b"\x09\x08"));
        assert_eq!(
            decode_all(&input, 256),
            std::vec![
                Err(DecodeError::Interrupted {
                    received: LINE_RAW - 2,
                    declared: 202
                }),
                Ok(b"\x09\x08".to_vec())
            ]
        );
    }

    #[test]
    fn a_continuation_without_a_frame_is_dropped() {
        let mut input = CONTINUE.to_vec();
        input.extend_from_slice(b"AAAA\n");
        input.extend_from_slice(&frame(b"\x05"));
        assert_eq!(
            decode_all(&input, 16),
            std::vec![Err(DecodeError::UnexpectedContinuation), Ok(std::vec![5])]
        );
    }

    #[test]
    fn feed_stops_at_each_frame() {
        let mut input = frame(b"\x01");
        input.extend_from_slice(&frame(b"\x02\x02"));
        let mut buf = [0u8; 16];
        let mut dec = Decoder::new(&mut buf);
        let (n, r) = dec.feed(&input);
        assert_eq!(r, Ok(Some(&[1u8][..])));
        let (m, r) = dec.feed(&input[n..]);
        assert_eq!(r, Ok(Some(&[2u8, 2][..])));
        assert_eq!(n + m, input.len());
        assert!(!dec.in_frame());
    }

    // --- attacks: each fails without its defence ---

    #[test]
    fn attack_oversized_declared_length_is_refused_before_any_byte_is_stored() {
        // Declares 65535 bytes to a 64-byte buffer, then sends 200 bytes.
        let mut raw = std::vec![0xff, 0xff];
        raw.extend_from_slice(&[0x41; 200]);
        let mut input = Vec::new();
        for (i, c) in raw.chunks(LINE_RAW).enumerate() {
            let mut l = raw_line(c);
            if i > 0 {
                l[..2].copy_from_slice(&CONTINUE);
            }
            input.extend_from_slice(&l);
        }
        let got = decode_all(&input, 64);
        assert_eq!(
            got[0],
            Err(DecodeError::LengthTooLong {
                declared: 0xffff,
                max: 64
            })
        );
        assert!(got.iter().all(|r| r.is_err()), "{got:?}");
    }

    #[test]
    fn attack_more_bytes_than_declared_is_an_overrun_not_a_write_past_the_frame() {
        // Declares 4 bytes (2 of packet + CRC), carries 30.
        let mut raw = std::vec![0x00, 0x04];
        raw.extend_from_slice(&[0x11; 30]);
        assert_eq!(
            decode_all(&raw_line(&raw), 64),
            std::vec![Err(DecodeError::Overrun { declared: 4 })]
        );
    }

    #[test]
    fn attack_bad_crc_is_dropped() {
        let packet = b"\x0a\x00\x00\x01\x00\x00\x07\x00\xa0";
        let mut raw = ((packet.len() + 2) as u16).to_be_bytes().to_vec();
        raw.extend_from_slice(packet);
        let good = crc16(packet);
        raw.extend_from_slice(&(good ^ 0x0100).to_be_bytes());
        assert_eq!(
            decode_all(&raw_line(&raw), 64),
            std::vec![Err(DecodeError::BadCrc {
                expected: good ^ 0x0100,
                computed: good
            })]
        );
        // A flipped packet bit is caught the same way.
        let mut f = frame(packet);
        f[5] = if f[5] == b'A' { b'B' } else { b'A' };
        assert!(matches!(
            decode_all(&f, 64)[..],
            [Err(DecodeError::BadCrc { .. })]
        ));
    }

    #[test]
    fn attack_truncated_base64_line_is_dropped() {
        let f = frame(b"\x01\x02\x03\x04");
        // Cut one character before the newline.
        let mut cut = f[..f.len() - 2].to_vec();
        cut.push(b'\n');
        assert_eq!(
            decode_all(&cut, 64),
            std::vec![Err(DecodeError::TruncatedBase64 { chars: 3 })]
        );
        // Padding in the middle of a line.
        let mut mid = START.to_vec();
        mid.extend_from_slice(b"AA==AAAA\n");
        assert_eq!(
            decode_all(&mid, 64),
            std::vec![Err(DecodeError::BadBase64 { byte: b'A' })]
        );
    }

    #[test]
    fn attack_line_over_127_bytes_is_dropped() {
        // 2 + 128 base64 characters + '\n' = 131 bytes: one quantum too many.
        let raw: Vec<u8> = [0x00, 0x62].iter().copied().chain([0u8; 94]).collect();
        let line = raw_line(&raw);
        assert_eq!(line.len(), 131);
        let mut input = line;
        input.extend_from_slice(&frame(b"\x42"));
        assert_eq!(
            decode_all(&input, 256),
            std::vec![
                Err(DecodeError::LineTooLong { max: MAX_LINE }),
                Ok(std::vec![0x42])
            ]
        );
        // A line of exactly 127 bytes is taken (the smpclient vector).
        assert_eq!(VECTORS[2].1[0].len(), MAX_LINE);
    }

    #[test]
    fn attack_console_noise_flood_neither_blocks_nor_grows() {
        // 1 MiB of noise: every byte value, markers included, in runs
        // without and with newlines; then a frame decodes.
        let mut noise = Vec::with_capacity(1 << 20);
        let mut x: u32 = 0x1234_5678;
        while noise.len() < 1 << 20 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            noise.push(x as u8);
        }
        let packet = [0x5a; 40];
        let mut buf = [0u8; 64];
        let mut dec = Decoder::new(&mut buf);
        let mut errors = 0;
        for &b in &noise {
            if dec.push(b).is_err() {
                errors += 1;
            }
        }
        let mut got = None;
        for &b in b"\n".iter().chain(frame(&packet).iter()) {
            match dec.push(b) {
                Ok(Some(p)) => got = Some(p.to_vec()),
                Ok(None) => {}
                Err(_) => errors += 1,
            }
        }
        assert_eq!(got, Some(packet.to_vec()), "after {errors} dropped frames");
    }

    proptest! {
        #[test]
        fn round_trip_with_noise_and_chunking(
            packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..700), 1..4),
            noise in proptest::collection::vec(any::<u8>().prop_filter("no marker", |b| *b != 0x06 && *b != 0x04), 0..64),
            chunk in 1usize..300,
        ) {
            let mut input = Vec::new();
            for p in &packets {
                input.extend_from_slice(&noise);
                input.extend_from_slice(&frame(p));
            }
            let mut buf = [0u8; 702];
            let mut dec = Decoder::new(&mut buf);
            let mut got = Vec::new();
            for piece in input.chunks(chunk) {
                let mut rest = piece;
                while !rest.is_empty() {
                    let (n, r) = dec.feed(rest);
                    if let Some(p) = r.unwrap() {
                        got.push(p.to_vec());
                    }
                    rest = &rest[n..];
                }
            }
            prop_assert_eq!(got, packets);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_a_frame_after_a_newline_decodes(
            junk in proptest::collection::vec(any::<u8>(), 0..600),
            cap in 0usize..300,
        ) {
            let mut buf = std::vec![0u8; cap.max(8)];
            let mut dec = Decoder::new(&mut buf);
            for &b in &junk {
                let _ = dec.push(b);
            }
            let mut got = None;
            for &b in b"\n".iter().chain(frame(b"\x01\x02\x03").iter()) {
                if let Ok(Some(p)) = dec.push(b) {
                    got = Some(p.to_vec());
                }
            }
            prop_assert_eq!(got, Some(std::vec![1, 2, 3]));
        }

        #[test]
        fn encoded_lines_are_bounded_and_marked(len in 0usize..2000) {
            let packet = std::vec![0xa5u8; len];
            let f = frame(&packet);
            for (i, line) in f.split_inclusive(|&b| b == b'\n').enumerate() {
                prop_assert!(line.len() <= MAX_LINE);
                prop_assert_eq!(&line[..2], if i == 0 { &START } else { &CONTINUE });
            }
        }
    }
}
