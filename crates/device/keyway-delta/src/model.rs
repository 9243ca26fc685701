//! The context model shared by the encoder and the decoder: which adaptive
//! probability codes each bit of a patch.
//!
//! A patch body is a sequence of ops `(add, extra, seek)`:
//! * `add` bytes are the base's bytes at the base cursor plus a *diff
//!   byte* each (mostly zero: the code did not change, or changed by the
//!   same amount as its neighbours);
//! * `extra` bytes are *literals*, new bytes;
//! * `seek` moves the base cursor (after it advanced by `add`).
//!
//! Diff bytes are coded as a zero flag in a context of the recent diff
//! bytes, the output position modulo 4 and the base byte, then, when not
//! zero, as "same as a recent non-zero diff byte" (a move-to-front list of
//! [`RECENT`] values, which catches pointers that all moved by the same
//! amount) or as a byte in a small context. Literals are coded as bytes in
//! the context of the output position mod 4 and the previous byte's top bit.

use crate::PatchError;
use crate::rc::{Coder, PROB_HALF};

/// Which number is being coded.
#[derive(Clone, Copy)]
pub(crate) enum Field {
    Add = 0,
    Extra = 1,
    Seek = 2,
}

const FIELDS: usize = 3;
/// Leading-bit positions 0..=32 use a 6-bit tree.
const NBITS_TREE: usize = 64;
/// Mantissa bits below the leading one that are modelled (the rest are direct).
const MANT_BITS: u32 = 2;
const MANT_TREE: usize = 1 << MANT_BITS;

/// Contexts of the zero flag of a diff byte.
const ZERO_CTX: usize = 512;
/// Contexts of the non-zero diff byte tree.
const DIFF_CTX: usize = 2;
/// Contexts of the literal byte tree.
const LIT_CTX: usize = 8;
/// Recently seen non-zero diff values, move-to-front.
pub(crate) const RECENT: usize = 8;

const SHIFT_FAST: u32 = 4;
const SHIFT: u32 = 4;

/// All adaptive probabilities and the context state.
pub(crate) struct Model {
    nbits: [[u16; NBITS_TREE]; FIELDS],
    mant: [[[u16; MANT_TREE]; 33]; FIELDS],
    sign: [u16; 2],
    zero: [u16; ZERO_CTX],
    recent_hit: [u16; 16],
    recent_idx: [[u16; RECENT]; 2],
    diff: [[u16; 256]; DIFF_CTX],
    lit: [[u16; 256]; LIT_CTX],
    recent: [u8; RECENT],
    /// The last four diff bytes, newest in the low byte.
    hist: u32,
    /// The previous output byte.
    prev: u8,
    /// Output bytes so far (only the low bits are used as context).
    pos: u32,
}

/// Codes `bits` bits of `value` (decoding: ignored) MSB first with a
/// binary tree of probabilities; returns the value.
#[inline]
fn tree<C: Coder>(
    c: &mut C,
    probs: &mut [u16],
    bits: u32,
    value: u32,
    shift: u32,
) -> Result<u32, PatchError> {
    let mut m = 1usize;
    for i in (0..bits).rev() {
        let b = c.bit(&mut probs[m], shift, (value >> i) & 1)?;
        m = (m << 1) | b as usize;
    }
    Ok(m as u32 - (1 << bits))
}

impl Model {
    pub(crate) const fn new() -> Self {
        Model {
            nbits: [[PROB_HALF; NBITS_TREE]; FIELDS],
            mant: [[[PROB_HALF; MANT_TREE]; 33]; FIELDS],
            sign: [PROB_HALF; 2],
            zero: [PROB_HALF; ZERO_CTX],
            recent_hit: [PROB_HALF; 16],
            recent_idx: [[PROB_HALF; RECENT]; 2],
            diff: [[PROB_HALF; 256]; DIFF_CTX],
            lit: [[PROB_HALF; 256]; LIT_CTX],
            recent: [0; RECENT],
            hist: 0,
            prev: 0,
            pos: 0,
        }
    }

    /// Codes an unsigned number: its bit length (0..=32), then the bits
    /// below the leading one.
    pub(crate) fn number<C: Coder>(
        &mut self,
        c: &mut C,
        field: Field,
        v: u32,
    ) -> Result<u32, PatchError> {
        let f = field as usize;
        let n = 32 - v.leading_zeros();
        let n = tree(c, &mut self.nbits[f], 6, n, SHIFT)?;
        if n > 32 {
            return Err(PatchError::Corrupt {
                patch_offset: 0,
                what: "number longer than 32 bits",
            });
        }
        if n <= 1 {
            return Ok(n);
        }
        let below = n - 1;
        let modelled = below.min(MANT_BITS);
        let top = tree(
            c,
            &mut self.mant[f][n as usize],
            modelled,
            (v >> (below - modelled)) & ((1 << modelled) - 1),
            SHIFT,
        )?;
        let mut r = (1u32 << modelled) | top;
        for i in (0..below - modelled).rev() {
            r = (r << 1) | c.direct((v >> i) & 1)?;
        }
        Ok(r)
    }

    /// Codes a signed seek.
    pub(crate) fn seek<C: Coder>(&mut self, c: &mut C, v: i64) -> Result<i64, PatchError> {
        let mag = self.number(
            c,
            Field::Seek,
            v.unsigned_abs().min(u64::from(u32::MAX)) as u32,
        )?;
        if mag == 0 {
            return Ok(0);
        }
        let neg = c.bit(&mut self.sign[0], SHIFT, u32::from(v < 0))?;
        Ok(if neg == 1 {
            -i64::from(mag)
        } else {
            i64::from(mag)
        })
    }

    /// Codes one diff byte `d` added to base byte `base`; returns the diff byte.
    pub(crate) fn diff<C: Coder>(&mut self, c: &mut C, base: u8, d: u8) -> Result<u8, PatchError> {
        let h = self.hist;
        let nz = (h & 0xFF != 0) as usize
            | (((h >> 8) & 0xFF != 0) as usize) << 1
            | (((h >> 16) & 0xFF != 0) as usize) << 2
            | (((h >> 24) & 0xFF != 0) as usize) << 3;
        let zctx = nz | ((self.pos & 3) as usize) << 4 | (usize::from(base >> 5)) << 6;
        let is_nz = c.bit(&mut self.zero[zctx], SHIFT_FAST, u32::from(d != 0))?;
        let out = if is_nz == 0 {
            0
        } else {
            // Same as a recent non-zero diff value?
            let want = self.recent.iter().position(|&r| r == d && r != 0);
            let hctx = (nz & 0x9) | ((self.pos & 3) as usize) << 2;
            let hit = c.bit(
                &mut self.recent_hit[hctx & 15],
                SHIFT,
                u32::from(want.is_some()),
            )?;
            let v = if hit == 1 {
                let idx = tree(
                    c,
                    &mut self.recent_idx[(nz >> 3) & 1],
                    RECENT.trailing_zeros(),
                    want.unwrap_or(0) as u32,
                    SHIFT,
                )? as usize;
                let v = self.recent[idx];
                if v == 0 {
                    return Err(PatchError::Corrupt {
                        patch_offset: 0,
                        what: "reference to an unset recent diff value",
                    });
                }
                self.recent.copy_within(0..idx, 1);
                v
            } else {
                let dctx = nz & 1;
                let v = tree(c, &mut self.diff[dctx], 8, u32::from(d), SHIFT)? as u8;
                if v == 0 {
                    return Err(PatchError::Corrupt {
                        patch_offset: 0,
                        what: "non-zero diff byte coded as 0",
                    });
                }
                self.recent.copy_within(0..RECENT - 1, 1);
                v
            };
            self.recent[0] = v;
            v
        };
        self.hist = (h << 8) | u32::from(out);
        self.prev = base.wrapping_add(out);
        self.pos = self.pos.wrapping_add(1);
        Ok(out)
    }

    /// Codes one literal byte.
    pub(crate) fn literal<C: Coder>(&mut self, c: &mut C, b: u8) -> Result<u8, PatchError> {
        let ctx = usize::from(self.prev >> 7) | ((self.pos & 3) as usize) << 1;
        let v = tree(c, &mut self.lit[ctx], 8, u32::from(b), SHIFT)? as u8;
        self.prev = v;
        self.pos = self.pos.wrapping_add(1);
        Ok(v)
    }
}
