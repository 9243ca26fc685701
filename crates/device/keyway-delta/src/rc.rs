//! The binary adaptive range coder (LZMA-style: 32-bit range, carry
//! propagation through a cached byte, 12-bit probabilities).

use crate::PatchError;

/// Bits of probability precision.
pub(crate) const PROB_BITS: u32 = 12;
/// A probability of one half.
pub(crate) const PROB_HALF: u16 = 1 << (PROB_BITS - 1);
const TOP: u32 = 1 << 24;

/// Adapts `p` (the probability of a 0 bit) towards the bit just coded.
#[inline]
fn adapt(p: &mut u16, bit: u32, shift: u32) {
    if bit == 0 {
        *p += ((1u16 << PROB_BITS) - *p) >> shift;
    } else {
        *p -= *p >> shift;
    }
}

/// One side of the coder: the modelling code is written once, generic over
/// this trait, so the encoder and the decoder cannot drift apart.
pub(crate) trait Coder {
    /// Codes `bit` (ignored when decoding) with the adaptive probability
    /// `p`, adapting at rate `shift`; returns the bit.
    fn bit(&mut self, p: &mut u16, shift: u32, bit: u32) -> Result<u32, PatchError>;
    /// Codes `bit` with a fixed probability of one half.
    fn direct(&mut self, bit: u32) -> Result<u32, PatchError>;
}

/// The range encoder. Writes bytes through `sink`.
pub(crate) struct RangeEncoder<W: FnMut(u8)> {
    low: u64,
    range: u32,
    cache: u8,
    cache_size: u64,
    sink: W,
}

impl<W: FnMut(u8)> RangeEncoder<W> {
    pub(crate) fn new(sink: W) -> Self {
        RangeEncoder {
            low: 0,
            range: u32::MAX,
            cache: 0,
            cache_size: 1,
            sink,
        }
    }

    fn shift_low(&mut self) {
        if self.low < 0xFF00_0000 || self.low >= 1 << 32 {
            let carry = (self.low >> 32) as u8;
            let mut temp = self.cache;
            loop {
                (self.sink)(temp.wrapping_add(carry));
                temp = 0xFF;
                self.cache_size -= 1;
                if self.cache_size == 0 {
                    break;
                }
            }
            self.cache = ((self.low >> 24) & 0xFF) as u8;
        }
        self.cache_size += 1;
        self.low = (self.low & 0x00FF_FFFF) << 8;
    }

    fn normalize(&mut self) {
        while self.range < TOP {
            self.range <<= 8;
            self.shift_low();
        }
    }

    /// Writes the last bytes. The decoder consumes exactly the bytes written.
    pub(crate) fn flush(mut self) {
        for _ in 0..5 {
            self.shift_low();
        }
    }
}

impl<W: FnMut(u8)> Coder for RangeEncoder<W> {
    #[inline]
    fn bit(&mut self, p: &mut u16, shift: u32, bit: u32) -> Result<u32, PatchError> {
        let bound = (self.range >> PROB_BITS) * u32::from(*p);
        if bit == 0 {
            self.range = bound;
        } else {
            self.low += u64::from(bound);
            self.range -= bound;
        }
        adapt(p, bit, shift);
        self.normalize();
        Ok(bit)
    }

    #[inline]
    fn direct(&mut self, bit: u32) -> Result<u32, PatchError> {
        self.range >>= 1;
        if bit != 0 {
            self.low += u64::from(self.range);
        }
        self.normalize();
        Ok(bit)
    }
}

/// Input bytes the decoder may hold: a patch chunk is copied in here and
/// decoded from it.
pub(crate) const IN_BUF: usize = 128;

/// The range decoder over a small input buffer. It never reads past the
/// bytes it was given: running out is [`PatchError::Truncated`].
pub(crate) struct RangeDecoder {
    range: u32,
    code: u32,
    buf: [u8; IN_BUF],
    start: u16,
    end: u16,
    /// Body bytes consumed so far.
    pub(crate) consumed: u64,
}

impl RangeDecoder {
    pub(crate) const fn new() -> Self {
        RangeDecoder {
            range: u32::MAX,
            code: 0,
            buf: [0; IN_BUF],
            start: 0,
            end: 0,
            consumed: 0,
        }
    }

    /// Bytes buffered and not yet consumed.
    pub(crate) fn available(&self) -> usize {
        usize::from(self.end - self.start)
    }

    /// Copies as much of `input` as fits; returns how many bytes it took.
    pub(crate) fn refill(&mut self, input: &[u8]) -> usize {
        if self.start > 0 {
            let (s, e) = (usize::from(self.start), usize::from(self.end));
            self.buf.copy_within(s..e, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let free = IN_BUF - usize::from(self.end);
        let n = free.min(input.len());
        let e = usize::from(self.end);
        self.buf[e..e + n].copy_from_slice(&input[..n]);
        self.end += n as u16;
        n
    }

    fn next_byte(&mut self) -> Result<u8, PatchError> {
        if self.start == self.end {
            return Err(PatchError::Truncated {
                patch_offset: self.consumed,
            });
        }
        let b = self.buf[usize::from(self.start)];
        self.start += 1;
        self.consumed += 1;
        Ok(b)
    }

    /// Reads the first five bytes of the body (the first is always 0).
    pub(crate) fn init(&mut self) -> Result<(), PatchError> {
        if self.next_byte()? != 0 {
            return Err(PatchError::Corrupt {
                patch_offset: 0,
                what: "range coder stream does not start with 0",
            });
        }
        for _ in 0..4 {
            self.code = (self.code << 8) | u32::from(self.next_byte()?);
        }
        Ok(())
    }

    #[inline]
    fn normalize(&mut self) -> Result<(), PatchError> {
        while self.range < TOP {
            self.range <<= 8;
            self.code = (self.code << 8) | u32::from(self.next_byte()?);
        }
        Ok(())
    }
}

impl Coder for RangeDecoder {
    #[inline]
    fn bit(&mut self, p: &mut u16, shift: u32, _bit: u32) -> Result<u32, PatchError> {
        let bound = (self.range >> PROB_BITS) * u32::from(*p);
        let bit = if self.code < bound {
            self.range = bound;
            0
        } else {
            self.code -= bound;
            self.range -= bound;
            1
        };
        adapt(p, bit, shift);
        self.normalize()?;
        Ok(bit)
    }

    #[inline]
    fn direct(&mut self, _bit: u32) -> Result<u32, PatchError> {
        self.range >>= 1;
        let bit = if self.code >= self.range {
            self.code -= self.range;
            1
        } else {
            0
        };
        self.normalize()?;
        Ok(bit)
    }
}
