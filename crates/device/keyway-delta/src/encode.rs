//! The encoder: turns a list of [`Op`]s over a base and a new image into a
//! patch body. Heap-free like the decoder, and written over the same
//! private model code (generic over the coding direction), so the two cannot disagree; the host's
//! `keyway diff` finds the ops and calls [`encode_body`].

use crate::model::{Field, Model};
use crate::rc::RangeEncoder;

/// One patch op: move the base cursor by `seek`, copy `add` bytes from the
/// base at the cursor (plus a diff byte each, advancing the cursor), then
/// `extra` new bytes. The cursor starts at 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Op {
    /// The base cursor's move before the copy.
    pub seek: i64,
    /// Bytes copied from the base, each plus a diff byte.
    pub add: u32,
    /// New bytes.
    pub extra: u32,
}

/// Why ops cannot be encoded (a bug in the caller's diff).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncodeError {
    /// Op `index` copies outside the base or moves the cursor outside it.
    OutOfBase {
        /// The op.
        index: usize,
    },
    /// The ops do not produce exactly the new image.
    WrongLength {
        /// The op at which they went past it, or `ops.len()`.
        index: usize,
    },
    /// Op `index` produces nothing.
    Empty {
        /// The op.
        index: usize,
    },
    /// An image over 4 GiB.
    TooLarge,
}

/// Writes a patch body symbol by symbol, with no checks: the building
/// block of [`encode_body`], and the way tests and the fuzzer write
/// hostile patches (copies out of range, oversize lengths, too much
/// output). The caller writes, per op: [`Writer::seek`],
/// [`Writer::add_len`], that many [`Writer::diff`]s, [`Writer::extra_len`],
/// that many [`Writer::literal`]s.
pub struct Writer<W: FnMut(u8)> {
    rc: RangeEncoder<W>,
    model: Model,
}

impl<W: FnMut(u8)> Writer<W> {
    /// A writer whose bytes go to `sink`.
    pub fn new(sink: W) -> Self {
        Writer {
            rc: RangeEncoder::new(sink),
            model: Model::new(),
        }
    }

    // The model's errors come from decoding only: encoding never fails.

    /// Codes an op's seek.
    pub fn seek(&mut self, seek: i64) {
        let _ = self.model.seek(&mut self.rc, seek);
    }

    /// Codes an op's `add` length.
    pub fn add_len(&mut self, len: u32) {
        let _ = self.model.number(&mut self.rc, Field::Add, len);
    }

    /// Codes one diff byte `new - base`, given the base byte.
    pub fn diff(&mut self, base: u8, new: u8) {
        let _ = self.model.diff(&mut self.rc, base, new.wrapping_sub(base));
    }

    /// Codes an op's `extra` length.
    pub fn extra_len(&mut self, len: u32) {
        let _ = self.model.number(&mut self.rc, Field::Extra, len);
    }

    /// Codes one literal byte.
    pub fn literal(&mut self, b: u8) {
        let _ = self.model.literal(&mut self.rc, b);
    }

    /// Writes the coder's last bytes.
    pub fn finish(self) {
        self.rc.flush();
    }
}

/// Encodes `ops` turning `base` into `new`; writes the body's bytes to
/// `sink`. Refuses ops that do not produce exactly `new` from `base`.
pub fn encode_body(
    base: &[u8],
    new: &[u8],
    ops: &[Op],
    sink: impl FnMut(u8),
) -> Result<(), EncodeError> {
    if u32::try_from(base.len()).is_err() || u32::try_from(new.len()).is_err() {
        return Err(EncodeError::TooLarge);
    }
    let mut w = Writer::new(sink);
    let mut cursor: i64 = 0;
    let mut produced = 0usize;
    for (index, op) in ops.iter().enumerate() {
        if produced == new.len() {
            return Err(EncodeError::WrongLength { index });
        }
        if op.add == 0 && op.extra == 0 {
            return Err(EncodeError::Empty { index });
        }
        let (add, extra) = (op.add as usize, op.extra as usize);
        if produced + add + extra > new.len() {
            return Err(EncodeError::WrongLength { index });
        }
        let to = cursor.checked_add(op.seek).unwrap_or(-1);
        if to < 0 || to > base.len() as i64 {
            return Err(EncodeError::OutOfBase { index });
        }
        cursor = to;
        let start = cursor as usize;
        if start + add > base.len() {
            return Err(EncodeError::OutOfBase { index });
        }
        w.seek(op.seek);
        w.add_len(op.add);
        for i in 0..add {
            w.diff(base[start + i], new[produced + i]);
        }
        produced += add;
        cursor += add as i64;
        w.extra_len(op.extra);
        for &b in &new[produced..produced + extra] {
            w.literal(b);
        }
        produced += extra;
    }
    if produced != new.len() {
        return Err(EncodeError::WrongLength { index: ops.len() });
    }
    w.finish();
    Ok(())
}
