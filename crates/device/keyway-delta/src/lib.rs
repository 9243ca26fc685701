//! # keyway-delta
//!
//! The lock side of Keyway's delta updates: a streaming patch decoder in a
//! fixed amount of RAM. `#![no_std]`, no heap, sans-IO: patch bytes go in
//! as they arrive ([`Patcher::feed`]), the old image is read through a
//! [`BaseReader`] (on a lock, the active slot), and the new image comes out
//! through a callback (on a lock, the installer writing the inactive slot).
//!
//! A patch is a [`PatchHeader`] (base size and SHA-256, output size and
//! SHA-256) and a body of bsdiff-style ops, a `seek` of the base cursor,
//! then `add` bytes copied from the base plus a diff byte each, then
//! `extra` new bytes, all coded with an adaptive binary range coder and a
//! context model (FORMAT.md and ARCHITECTURE.md, "Delta updates"). The decoder checks
//! every length against the base and the declared output size before it
//! produces a byte: no input makes it read outside the base, produce more
//! than the declared output, or panic. The caller checks the output's
//! digest (the installer's `PayloadVerifier`).
//!
//! ```
//! use keyway_delta::{encode, Op, PatchHeader, Patcher, SliceBase};
//! let base = b"hello, world".as_slice();
//! let new = b"hello, brave world".as_slice();
//! let ops = [Op { seek: 0, add: 7, extra: 6 }, Op { seek: 0, add: 5, extra: 0 }];
//! let mut body = [0u8; 64];
//! let mut n = 0;
//! encode::encode_body(base, new, &ops, |b| { if n < body.len() { body[n] = b; } n += 1; }).unwrap();
//! let header = PatchHeader { base_size: 12, out_size: 18, base_digest: [0; 32], out_digest: [0; 32] };
//! let mut p = Patcher::new(&header, 12, &[0; 32]).unwrap();
//! let mut got = [0u8; 18];
//! let mut at = 0;
//! let mut out = |c: &[u8]| -> Result<(), ()> { got[at..at + c.len()].copy_from_slice(c); at += c.len(); Ok(()) };
//! p.feed(&body[..n], &mut SliceBase(base), &mut out).unwrap();
//! p.finish(&mut SliceBase(base), &mut out).unwrap();
//! assert_eq!(&got, new);
//! ```
//!
//! # Delta updates
//!
//! Over Bluetooth a lock receives 5–15 KB/s; a delta patch carries only what
//! changed. The lock applies it as it streams in: the active slot is the
//! base, the output streams through the ordinary `Installer` into the
//! inactive slot (so it is hashed, resumable by sector, and marked `Pending`
//! only when its SHA-256 matches), and the patch header binds the base's size
//! and SHA-256, so a patch for another image is refused by `Patcher::new`
//! before anything is written.
//!
//! **Ops.** bsdiff's: `seek` the base cursor, copy `add` bytes from the base
//! plus a diff byte each, then `extra` new bytes. The seek comes first (unlike
//! bsdiff's control triple) so that the first op can start anywhere and an op
//! without `add` needs no seek. bsdiff's scan is kept because firmware changes
//! are mostly pointers and branch offsets that moved by the same amount: a
//! long approximate match with sparse non-zero diff bytes is far cheaper than
//! many exact matches. Its one parameter, the gain a new match needs before
//! it starts an op, is 4 instead of bsdiff's 8 because our ops are cheap
//! (range-coded): measured on the three pairs at 0–24 (BENCHMARKS.md), 4 was
//! best on the two large ones and within 10 bytes on the third. No knowledge
//! of the files or their instruction sets is used.
//!
//! **Coding, not LZ.** Detools compresses bsdiff's streams with a general
//! compressor (lzma, heatshrink, lz4). Those need a dictionary window to do
//! well (lzma's is megabytes; heatshrink and lz4 with a small window lose 30%),
//! and most of what they find in bsdiff output is runs of zeros and repeated
//! diff values. An adaptive binary range coder (LZMA's: 32-bit range, 12-bit
//! probabilities, carry through a cached byte) with a context model aimed at
//! those structures needs only its probability tables:
//!
//! * diff bytes: a zero flag in the context of which of the last 4 diff bytes
//!   were non-zero, the output position mod 4 (32-bit words) and the base
//!   byte's top 3 bits (512 contexts); a non-zero diff is first tried
//!   against a move-to-front list of the 8 last distinct non-zero diffs (a
//!   block of pointers that moved by the same amount repeats the same bytes),
//!   else coded as a byte in one of 2 contexts (was the previous diff zero);
//! * literals: a byte in one of 8 contexts, the output position mod 4 (16- and
//!   32-bit instruction and data alignment) and the previous byte's top bit;
//! * numbers (lengths, seek magnitudes): the bit length (6-bit tree per
//!   field), the 2 bits below the leading one modelled, the rest direct.
//!
//! Measured, the patches come out 7–25% smaller than detools' bsdiff+lzma on
//! all three pairs, with a decoder of 7,992 bytes of RAM. The RAM is spent
//! where measurements showed it pays: moving 1 KiB from the zero flags and
//! 1 KiB from the non-zero diff bytes to literal contexts by alignment saved
//! 1.2% and 3.4% on the two large pairs; a longer diff list, diff contexts by
//! word position and slower adaptation did not pay (BENCHMARKS.md). An LZ op copying from the output already written (the
//! inactive slot is readable) is the obvious next step for the literals
//! (a third of the esp8266 patch), at no RAM cost, but it complicates resuming
//! after a power cut; not done.
//!
//! **Streaming a range coder in fixed RAM.** The decoder owns a 128-byte input
//! buffer and only decodes a step (one number or one byte, at most 40 coded
//! bits, each reading at most one byte) while at least 40 bytes are buffered;
//! `finish` decodes the rest, where running out is `Truncated`. The encoder's
//! flush and the decoder's start are arranged (LZMA's) so the decoder consumes
//! exactly the bytes written: a byte more is `TrailingData`. Every op produces
//! at least one byte (`EmptyOp` otherwise), so no input can make it loop.
//!
//! **Signed delta releases.** `keyway sign --delta-from OLD.bin --firmware
//! NEW.bin` (`EnvelopeBuilder::delta_from`) makes the patch with `keyway
//! diff`'s encoder and signs a manifest that binds three components: the
//! produced image (component 0: digest and size, the same validate sequence a
//! full image has), the patch (component 1: the integrated payload, fetched
//! and image-matched) and the installed image it applies to (component 2:
//! an image-match on its digest and size), joined by Keyway's custom
//! `apply-delta` directive (FORMAT.md, "Delta manifest", with the draft's
//! sections). `keyway_suit` exposes them as `Verified::delta:
//! Option<DeltaBinding { base_digest, base_size, out }>`, `Verified::payload`
//! staying the patch; `keyway verify`/`inspect` show both and `verify` checks
//! the patch header against them.
//!
//! **On the lock: `keyway_device::delta::DeltaInstaller`** (sans-IO, no heap).
//! `begin(flash, journal, layout, &binding, &patch_expectation,
//! manifest_digest, head)` first hashes the active slot's first `base_size`
//! bytes and refuses another base (`DeltaError::WrongBase { expected, found }`)
//! before anything is written; then `Installer::begin_with_manifest` stores
//! the head and records the download with the *output* expectation. `push`
//! hashes the patch bytes against the payload digest, compares the first 80
//! with the header the binding implies (`DeltaError::Header { field }`), and
//! feeds the body to the `Patcher`, whose `BaseReader` reads the active slot
//! (`NorFlash::read`, aligned for read sizes up to 64 bytes) and whose output
//! goes to `Installer::push`; both borrow the flash through a
//! `core::cell::RefCell` (the patcher calls one at a time). `finish` checks
//! the patch's digest, then `Installer::finish` checks the produced image's
//! size and SHA-256 and only then records the slot `Pending`. The bootloader's
//! `VerifiedSlot` re-verifies such a slot against the binding's output. A
//! power cut while patching restarts the patch from its first byte (`begin`
//! again, never `Installer::resume`): the base is the active slot, which is
//! never written, so a restart is always possible (`tests/delta.rs` cuts
//! every flash operation of a delta install three ways, checks the old image
//! still boots and the retry produces the exact image). Resuming in the middle
//! would need the decoder's 8 KiB state saved at sector boundaries or a patch
//! cut into independently coded blocks (a small size cost); not done.
//! `keyway-lock` uses it for delta uploads (below, "keyway-lock: SMP").
//!
//! **RAM** (`size_of::<DeltaInstaller<_>>()` = 8,712 bytes on the nRF52840
//! flash: the patcher 7,992, the `Installer<256>` it drives 472 — its write
//! buffer 256 and the output's SHA-256 state — and 248 for the patch's
//! SHA-256 state, the expected header and cursors). The patcher alone
//! (`size_of::<Patcher>()` = 7,992 bytes, the 8 KiB budget for patcher and
//! decompressor, which are one): probability tables 7,388
//! (zero flags 1,024, non-zero diff bytes 1,024 and the recent-diff list's 64,
//! literals 4,096, numbers 1,180), input buffer 128, base read buffer 128,
//! output chunk 256, cursors and state about 100.
//! The decoder keeps nothing else; its stack use is small and it takes no
//! heap.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod encode;
mod header;
mod model;
mod rc;

pub use encode::Op;
pub use header::{HEADER_LEN, MAGIC, PatchHeader, VERSION};

use model::{Field, Model};
use rc::RangeDecoder;

/// Why a patch was refused. Offsets name where: `patch_offset` counts
/// bytes from the start of the patch (header included), `out_offset` the
/// bytes produced before the failing op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatchError {
    /// Fewer than [`HEADER_LEN`] bytes.
    HeaderTooShort {
        /// Bytes given.
        len: usize,
    },
    /// The patch does not start with [`MAGIC`].
    BadMagic,
    /// A format version this decoder does not read.
    UnsupportedVersion {
        /// The version in the header.
        got: u8,
    },
    /// The patch was made for a base of another size.
    WrongBaseSize {
        /// The base size the patch names.
        patch: u32,
        /// The size of the installed image.
        installed: u32,
    },
    /// The patch was made for a base with another SHA-256.
    WrongBaseDigest,
    /// An op would copy from outside the base.
    CopyOutOfRange {
        /// Output bytes produced before the op.
        out_offset: u32,
        /// The base offset the op starts at (may be negative).
        base_offset: i64,
        /// The op's length.
        len: u32,
        /// The base size.
        base_size: u32,
    },
    /// An op would produce more bytes than the header declares.
    OutputTooLong {
        /// Output bytes produced before the op.
        out_offset: u32,
        /// The op's length.
        len: u32,
        /// The declared output size.
        declared: u32,
    },
    /// An op that produces nothing (refused so that every op makes progress).
    EmptyOp {
        /// Output bytes produced before the op.
        out_offset: u32,
    },
    /// The patch ends before the declared output was produced.
    Truncated {
        /// Where the patch ended.
        patch_offset: u64,
    },
    /// Bytes follow the end of the coded stream.
    TrailingData {
        /// The first extra byte.
        patch_offset: u64,
    },
    /// The coded stream decodes to something no encoder writes.
    Corrupt {
        /// About where the decoder noticed.
        patch_offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A previous call failed; the patcher refuses further input.
    Failed,
}

impl core::fmt::Display for PatchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PatchError::HeaderTooShort { len } => {
                write!(f, "patch header: {len} < {HEADER_LEN} bytes")
            }
            PatchError::BadMagic => write!(f, "not a Keyway patch (bad magic)"),
            PatchError::UnsupportedVersion { got } => {
                write!(f, "patch format version {got} unsupported")
            }
            PatchError::WrongBaseSize { patch, installed } => {
                write!(
                    f,
                    "wrong base: patch is for a {patch}-byte image, installed image has {installed} bytes"
                )
            }
            PatchError::WrongBaseDigest => write!(
                f,
                "wrong base: SHA-256 of the installed image differs from the patch's base"
            ),
            PatchError::CopyOutOfRange {
                out_offset,
                base_offset,
                len,
                base_size,
            } => write!(
                f,
                "copy out of range at output offset {out_offset}: base [{base_offset}, +{len}) outside 0..{base_size}"
            ),
            PatchError::OutputTooLong {
                out_offset,
                len,
                declared,
            } => write!(
                f,
                "output too long at output offset {out_offset}: op of {len} bytes exceeds the declared {declared}"
            ),
            PatchError::EmptyOp { out_offset } => {
                write!(f, "empty op at output offset {out_offset}")
            }
            PatchError::Truncated { patch_offset } => {
                write!(f, "patch truncated at byte {patch_offset}")
            }
            PatchError::TrailingData { patch_offset } => {
                write!(f, "trailing data at patch byte {patch_offset}")
            }
            PatchError::Corrupt { patch_offset, what } => {
                write!(f, "corrupt patch near byte {patch_offset}: {what}")
            }
            PatchError::Failed => write!(f, "patcher already failed"),
        }
    }
}

/// A failure of [`Patcher::feed`] or [`Patcher::finish`]: the patch, the
/// base reader or the output sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error<B, O> {
    /// The patch was refused.
    Patch(PatchError),
    /// Reading the base failed.
    Base(B),
    /// Writing the output failed.
    Output(O),
}

impl<B, O> From<PatchError> for Error<B, O> {
    fn from(e: PatchError) -> Self {
        Error::Patch(e)
    }
}

/// Reads the base image (on a lock: the active slot).
pub trait BaseReader {
    /// Why a read failed.
    type Error;
    /// Fills `buf` with the base's bytes at `offset`. The patcher only asks
    /// for bytes inside the base size it was given.
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// A base held in memory.
pub struct SliceBase<'a>(pub &'a [u8]);

/// A read outside a [`SliceBase`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutOfBounds;

impl BaseReader for SliceBase<'_> {
    type Error = OutOfBounds;
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), OutOfBounds> {
        let start = offset as usize;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
            .ok_or(OutOfBounds)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Base bytes read at a time.
const BASE_BUF: usize = 128;
/// Output bytes handed to the sink at a time (the last chunk may be shorter).
pub const OUT_CHUNK: usize = 256;
/// The most patch bytes one decoding step can consume (a step codes at most
/// 40 bits, and each bit reads at most one byte).
const STEP_MAX: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Init,
    AddLen,
    Add { left: u32 },
    ExtraLen { add: u32 },
    Extra { left: u32 },
    Seek,
    Done,
}

/// The streaming patch decoder. Its size is fixed
/// (`size_of::<Patcher>()`, recorded in BENCHMARKS.md): every probability
/// table and buffer is inside it.
pub struct Patcher {
    model: Model,
    rc: RangeDecoder,
    phase: Phase,
    base_size: u32,
    out_size: u32,
    produced: u32,
    cursor: i64,
    win: [u8; BASE_BUF],
    win_start: u32,
    win_len: u32,
    out: [u8; OUT_CHUNK],
    out_len: usize,
    failed: bool,
}

impl Patcher {
    /// Starts applying a patch with `header` to the installed image of
    /// `base_size` bytes and SHA-256 `base_digest`. Refuses a patch made
    /// for another base before anything is read or written.
    pub fn new(
        header: &PatchHeader,
        base_size: u32,
        base_digest: &[u8; 32],
    ) -> Result<Patcher, PatchError> {
        header.check_base(base_size, base_digest)?;
        Ok(Patcher {
            model: Model::new(),
            rc: RangeDecoder::new(),
            phase: Phase::Init,
            base_size: header.base_size,
            out_size: header.out_size,
            produced: 0,
            cursor: 0,
            win: [0; BASE_BUF],
            win_start: 0,
            win_len: 0,
            out: [0; OUT_CHUNK],
            out_len: 0,
            failed: false,
        })
    }

    /// Output bytes produced so far (some may still be buffered until the
    /// next full chunk or [`Patcher::finish`]).
    pub fn produced(&self) -> u32 {
        self.produced
    }

    /// Whether the coded stream has ended (all output decoded).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Feeds the next chunk of the patch body (the bytes after the
    /// header), of any size. Output is passed to `out` in chunks of
    /// [`OUT_CHUNK`] bytes as it is decoded. Bytes that `out` received are
    /// only the output's prefix, not yet verified: the caller checks the
    /// whole output's SHA-256 (the installer does). After an error the
    /// output still buffered is dropped and every later call fails with
    /// [`PatchError::Failed`].
    pub fn feed<B: BaseReader, O>(
        &mut self,
        mut chunk: &[u8],
        base: &mut B,
        out: &mut impl FnMut(&[u8]) -> Result<(), O>,
    ) -> Result<(), Error<B::Error, O>> {
        self.guarded(false, |p| {
            loop {
                let n = p.rc.refill(chunk);
                chunk = &chunk[n..];
                while p.rc.available() >= STEP_MAX {
                    p.step(base, out)?;
                }
                if chunk.is_empty() {
                    return Ok(());
                }
            }
        })
    }

    /// Ends the patch: decodes what is buffered, checks that exactly the
    /// declared output was produced and that no byte follows the stream,
    /// and passes the last output chunk to `out`.
    pub fn finish<B: BaseReader, O>(
        &mut self,
        base: &mut B,
        out: &mut impl FnMut(&[u8]) -> Result<(), O>,
    ) -> Result<(), Error<B::Error, O>> {
        // A finished patcher takes no more input, whatever the outcome.
        self.guarded(true, |p| {
            while p.phase != Phase::Done {
                p.step(base, out)?;
            }
            if p.rc.available() != 0 {
                return Err(PatchError::TrailingData {
                    patch_offset: p.patch_offset(),
                }
                .into());
            }
            p.flush(out)
        })
    }

    fn patch_offset(&self) -> u64 {
        HEADER_LEN as u64 + self.rc.consumed
    }

    fn locate<B, O>(&self, e: Error<B, O>) -> Error<B, O> {
        match e {
            Error::Patch(PatchError::Corrupt { what, .. }) => Error::Patch(PatchError::Corrupt {
                patch_offset: self.patch_offset(),
                what,
            }),
            Error::Patch(PatchError::Truncated { .. }) => Error::Patch(PatchError::Truncated {
                patch_offset: self.patch_offset(),
            }),
            e => e,
        }
    }

    /// Runs `f` unless an earlier call failed. An error (or, with `last`,
    /// any outcome) leaves the patcher failed; errors get the patch offset.
    fn guarded<B, O>(
        &mut self,
        last: bool,
        f: impl FnOnce(&mut Self) -> Result<(), Error<B, O>>,
    ) -> Result<(), Error<B, O>> {
        if self.failed {
            return Err(PatchError::Failed.into());
        }
        let r = f(self);
        if last || r.is_err() {
            self.failed = true;
        }
        r.map_err(|e| self.locate(e))
    }

    fn flush<B, O>(
        &mut self,
        out: &mut impl FnMut(&[u8]) -> Result<(), O>,
    ) -> Result<(), Error<B, O>> {
        if self.out_len > 0 {
            out(&self.out[..self.out_len]).map_err(Error::Output)?;
            self.out_len = 0;
        }
        Ok(())
    }

    fn emit<B, O>(
        &mut self,
        b: u8,
        out: &mut impl FnMut(&[u8]) -> Result<(), O>,
    ) -> Result<(), Error<B, O>> {
        self.out[self.out_len] = b;
        self.out_len += 1;
        self.produced += 1;
        if self.out_len == OUT_CHUNK {
            self.flush(out)?;
        }
        Ok(())
    }

    fn base_byte<B: BaseReader, O>(
        &mut self,
        base: &mut B,
        at: u32,
    ) -> Result<u8, Error<B::Error, O>> {
        let rel = at.wrapping_sub(self.win_start);
        if rel >= self.win_len {
            let len = (self.base_size - at).min(BASE_BUF as u32);
            base.read(at, &mut self.win[..len as usize])
                .map_err(Error::Base)?;
            self.win_start = at;
            self.win_len = len;
            return Ok(self.win[0]);
        }
        Ok(self.win[rel as usize])
    }

    fn remaining(&self) -> u32 {
        self.out_size - self.produced
    }

    /// Decodes the length of an op of `field` (add or extra) and refuses
    /// one that would produce more than the declared output.
    fn op_len(&mut self, field: Field) -> Result<u32, PatchError> {
        let len = self.model.number(&mut self.rc, field, 0)?;
        if len > self.remaining() {
            return Err(PatchError::OutputTooLong {
                out_offset: self.produced,
                len,
                declared: self.out_size,
            });
        }
        Ok(len)
    }

    fn after_extra(&mut self) {
        self.phase = if self.produced == self.out_size {
            Phase::Done
        } else {
            Phase::Seek
        };
    }

    /// One decoding step: at most [`STEP_MAX`] patch bytes.
    fn step<B: BaseReader, O>(
        &mut self,
        base: &mut B,
        out: &mut impl FnMut(&[u8]) -> Result<(), O>,
    ) -> Result<(), Error<B::Error, O>> {
        match self.phase {
            Phase::Init => {
                self.rc.init()?;
                self.phase = if self.out_size == 0 {
                    Phase::Done
                } else {
                    Phase::Seek
                };
            }
            Phase::AddLen => {
                let len = self.op_len(Field::Add)?;
                if len > 0 && self.cursor + i64::from(len) > i64::from(self.base_size) {
                    return Err(PatchError::CopyOutOfRange {
                        out_offset: self.produced,
                        base_offset: self.cursor,
                        len,
                        base_size: self.base_size,
                    }
                    .into());
                }
                self.phase = if len == 0 {
                    Phase::ExtraLen { add: 0 }
                } else {
                    Phase::Add { left: len }
                };
            }
            Phase::Add { left } => {
                // The cursor is within 0..base_size: checked with the op's length.
                let at = self.cursor as u32;
                let b = self.base_byte(base, at)?;
                let d = self.model.diff(&mut self.rc, b, 0)?;
                self.emit(b.wrapping_add(d), out)?;
                self.cursor += 1;
                self.phase = if left == 1 {
                    Phase::ExtraLen { add: 1 }
                } else {
                    Phase::Add { left: left - 1 }
                };
            }
            Phase::ExtraLen { add } => {
                let len = self.op_len(Field::Extra)?;
                if len == 0 && add == 0 {
                    return Err(PatchError::EmptyOp {
                        out_offset: self.produced,
                    }
                    .into());
                }
                if len == 0 {
                    self.after_extra();
                } else {
                    self.phase = Phase::Extra { left: len };
                }
            }
            Phase::Extra { left } => {
                let b = self.model.literal(&mut self.rc, 0)?;
                self.emit(b, out)?;
                if left == 1 {
                    self.after_extra();
                } else {
                    self.phase = Phase::Extra { left: left - 1 };
                }
            }
            Phase::Seek => {
                let s = self.model.seek(&mut self.rc, 0)?;
                let to = self.cursor + s;
                if to < 0 || to > i64::from(self.base_size) {
                    return Err(PatchError::CopyOutOfRange {
                        out_offset: self.produced,
                        base_offset: to,
                        len: 0,
                        base_size: self.base_size,
                    }
                    .into());
                }
                self.cursor = to;
                self.phase = Phase::AddLen;
            }
            Phase::Done => {
                return Err(PatchError::TrailingData {
                    patch_offset: self.patch_offset(),
                }
                .into());
            }
        }
        Ok(())
    }
}
