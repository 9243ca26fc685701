//! A thin, bounded reader over `minicbor::Decoder` that turns every decoding
//! failure into an [`Error::Malformed`] naming the part and offset.
//!
//! Keyway accepts definite-length arrays and maps only: every length is known
//! before it is used, and minicbor checks every byte and text string against
//! the input that remains.

use minicbor::Decoder;
use minicbor::data::Type;

use crate::error::{Error, Part};

/// A CBOR reader for one part of the envelope.
pub(crate) struct Reader<'b> {
    d: Decoder<'b>,
    part: Part,
}

impl<'b> Reader<'b> {
    pub(crate) fn new(bytes: &'b [u8], part: Part) -> Self {
        Reader {
            d: Decoder::new(bytes),
            part,
        }
    }

    fn bad(&self, expected: &'static str) -> Error {
        Error::Malformed {
            part: self.part,
            offset: self.d.position(),
            expected,
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.d.position()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.d.input().len().saturating_sub(self.d.position())
    }

    pub(crate) fn at_end(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), Error> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.bad("end of data"))
        }
    }

    pub(crate) fn datatype(&self) -> Result<Type, Error> {
        self.d.datatype().map_err(|_| self.bad("a CBOR item"))
    }

    /// A definite-length array; its length is bounded by the bytes left, so a
    /// huge declared length cannot make a loop run past the input.
    pub(crate) fn array(&mut self) -> Result<u64, Error> {
        match self.d.array() {
            Ok(Some(n)) if n <= self.remaining() as u64 => Ok(n),
            Ok(Some(_)) => Err(self.bad("an array no longer than the data")),
            _ => Err(self.bad("a definite-length array")),
        }
    }

    /// A definite-length map (bounded like [`Reader::array`]).
    pub(crate) fn map(&mut self) -> Result<u64, Error> {
        match self.d.map() {
            Ok(Some(n)) if n.saturating_mul(2) <= self.remaining() as u64 => Ok(n),
            Ok(Some(_)) => Err(self.bad("a map no longer than the data")),
            _ => Err(self.bad("a definite-length map")),
        }
    }

    /// A definite-length map whose length is not bounded by the bytes left
    /// (the envelope, whose payload may be streamed after this buffer).
    /// The caller's loop still stops at the end of the input.
    pub(crate) fn map_unbounded(&mut self) -> Result<u64, Error> {
        match self.d.map() {
            Ok(Some(n)) if n <= 64 => Ok(n),
            Ok(Some(_)) => Err(self.bad("an envelope of at most 64 members")),
            _ => Err(self.bad("a definite-length map")),
        }
    }

    /// Moves past `n` bytes that the caller has already checked are there.
    pub(crate) fn advance(&mut self, n: usize) {
        let p = self.d.position();
        self.d.set_position(p.saturating_add(n));
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        self.d.u64().map_err(|_| self.bad("an unsigned integer"))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, Error> {
        self.d.i64().map_err(|_| self.bad("an integer"))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, Error> {
        self.d.bool().map_err(|_| self.bad("a boolean"))
    }

    pub(crate) fn null(&mut self) -> Result<(), Error> {
        self.d.null().map_err(|_| self.bad("null"))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'b [u8], Error> {
        if self.datatype()? != Type::Bytes {
            return Err(self.bad("a definite-length byte string"));
        }
        self.d
            .bytes()
            .map_err(|_| self.bad("a complete byte string"))
    }

    /// A byte string of exactly `N` bytes, borrowed from the input.
    pub(crate) fn bytes_n<const N: usize>(
        &mut self,
        expected: &'static str,
    ) -> Result<&'b [u8; N], Error> {
        let at = self.d.position();
        let b = self.bytes()?;
        b.try_into().map_err(|_| Error::Malformed {
            part: self.part,
            offset: at,
            expected,
        })
    }

    pub(crate) fn str(&mut self) -> Result<&'b str, Error> {
        if self.datatype()? != Type::String {
            return Err(self.bad("a definite-length UTF-8 text string"));
        }
        self.d
            .str()
            .map_err(|_| self.bad("a complete UTF-8 text string"))
    }

    pub(crate) fn tag(&mut self) -> Result<u64, Error> {
        self.d
            .tag()
            .map(|t| t.as_u64())
            .map_err(|_| self.bad("a CBOR tag"))
    }

    /// Skips one item of any shape (iteratively inside minicbor: no
    /// recursion, so hostile nesting cannot exhaust the stack).
    pub(crate) fn skip(&mut self) -> Result<(), Error> {
        self.d.skip().map_err(|_| self.bad("a complete CBOR item"))
    }

    /// The raw bytes of the next item, skipped.
    pub(crate) fn raw_item(&mut self) -> Result<&'b [u8], Error> {
        let start = self.d.position();
        self.skip()?;
        self.d
            .input()
            .get(start..self.d.position())
            .ok_or_else(|| self.bad("a complete CBOR item"))
    }

    /// An integer map key, or the text key `TextKey`.
    pub(crate) fn key(&mut self) -> Result<Key<'b>, Error> {
        match self.datatype()? {
            Type::U8
            | Type::U16
            | Type::U32
            | Type::U64
            | Type::I8
            | Type::I16
            | Type::I32
            | Type::I64 => Ok(Key::Int(self.i64()?)),
            Type::Int => Err(self.bad("a map key within 64 bits")),
            Type::String => Ok(Key::Text(self.str()?)),
            _ => Ok(Key::Other(self.raw_item()?)),
        }
    }

    /// Reads the head of a definite-length byte string and returns its
    /// declared length without requiring the content to be present. Used to
    /// locate a streamed payload in an envelope prefix.
    pub(crate) fn bytes_head(&mut self) -> Result<u64, Error> {
        let input = self.d.input();
        let pos = self.d.position();
        let Some(&first) = input.get(pos) else {
            return Err(self.bad("a byte string"));
        };
        if first >> 5 != 2 {
            return Err(self.bad("a byte string"));
        }
        let info = first & 0x1f;
        let (len, head) = match info {
            0..=23 => (u64::from(info), 1),
            24..=27 => {
                let n = 1usize << (info - 24);
                let Some(b) = input.get(pos.saturating_add(1)..pos.saturating_add(1 + n)) else {
                    return Err(self.bad("a complete byte-string length"));
                };
                (
                    b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)),
                    1 + n,
                )
            }
            _ => return Err(self.bad("a definite-length byte string")),
        };
        self.d.set_position(pos.saturating_add(head));
        Ok(len)
    }
}

/// A map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key<'b> {
    Int(i64),
    Text(&'b str),
    Other(&'b [u8]),
}
