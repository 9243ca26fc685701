//! The encoder: turns a list of [`Op`]s over a base and a new image into a
//! patch body. Heap-free like the decoder, and written over the same
//! [`model`](crate) code, so the two cannot disagree; the host's
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

/// Encodes `ops` turning `base` into `new`; writes the body's bytes to `sink`.
pub fn encode_body(
    base: &[u8],
    new: &[u8],
    ops: &[Op],
    sink: impl FnMut(u8),
) -> Result<(), EncodeError> {
    if u32::try_from(base.len()).is_err() || u32::try_from(new.len()).is_err() {
        return Err(EncodeError::TooLarge);
    }
    let mut rc = RangeEncoder::new(sink);
    let mut m = Model::new();
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
        let to = cursor + op.seek;
        if to < 0 || to > base.len() as i64 {
            return Err(EncodeError::OutOfBase { index });
        }
        // The model's errors are decoder-only: the encoder never fails.
        let _ = m.seek(&mut rc, op.seek);
        cursor = to;
        let start = cursor as usize;
        if add > 0 && start + add > base.len() {
            return Err(EncodeError::OutOfBase { index });
        }
        let _ = m.number(&mut rc, Field::Add, op.add);
        for i in 0..add {
            let b = base[start + i];
            let _ = m.diff(&mut rc, b, new[produced + i].wrapping_sub(b));
        }
        produced += add;
        cursor += add as i64;
        let _ = m.number(&mut rc, Field::Extra, op.extra);
        for i in 0..extra {
            let _ = m.literal(&mut rc, new[produced + i]);
        }
        produced += extra;
    }
    if produced != new.len() {
        return Err(EncodeError::WrongLength { index: ops.len() });
    }
    rc.flush();
    Ok(())
}
