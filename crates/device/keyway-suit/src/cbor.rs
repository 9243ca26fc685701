//! A small, bounded CBOR reader that turns every decoding failure into an
//! [`Error::Malformed`] naming the part and offset.
//!
//! Keyway accepts definite-length items only: every length is known before
//! it is used and is checked against the input that remains, text strings
//! are checked to be UTF-8, and [`Reader::skip`] walks nested items with a
//! counter instead of recursion. A failed read leaves the position where
//! the item starts, which is the offset the error names.

use crate::error::{Error, Limit, Part};

/// The kind of the next item, as far as the decoders need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    /// An unsigned or negative integer.
    Int,
    /// A definite-length byte string.
    Bytes,
    /// A definite-length text string.
    String,
    /// A definite-length array.
    Array,
    /// A definite-length map.
    Map,
    /// A tag.
    Tag,
    /// `false` or `true`.
    Bool,
    /// `null`.
    Null,
    /// Anything else (floats, other simple values, indefinite lengths).
    Other,
}

/// A CBOR head: major type, argument, head length.
#[derive(Clone, Copy)]
struct Head {
    major: u8,
    arg: u64,
    len: usize,
}

/// A CBOR reader for one part of the envelope.
pub(crate) struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
    part: Part,
}

impl<'b> Reader<'b> {
    pub(crate) fn new(bytes: &'b [u8], part: Part) -> Self {
        Reader {
            buf: bytes,
            pos: 0,
            part,
        }
    }

    fn bad(&self, expected: &'static str) -> Error {
        Error::Malformed {
            part: self.part,
            offset: self.pos,
            expected,
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
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

    /// The head at the current position; `None` if it is truncated, or an
    /// indefinite length or a reserved encoding.
    fn peek(&self) -> Option<Head> {
        let rest = self.buf.get(self.pos..)?;
        let (&first, tail) = rest.split_first()?;
        let (major, info) = (first >> 5, first & 0x1f);
        let (arg, len) = match info {
            0..=23 => (u64::from(info), 1),
            24..=27 => {
                let n = 1usize << (info - 24);
                let b = tail.get(..n)?;
                (
                    b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)),
                    1 + n,
                )
            }
            _ => return None,
        };
        Some(Head { major, arg, len })
    }

    /// Consumes a head of this major type and returns its argument.
    fn head(&mut self, major: u8, expected: &'static str) -> Result<u64, Error> {
        match self.peek() {
            Some(h) if h.major == major => {
                self.pos += h.len;
                Ok(h.arg)
            }
            _ => Err(self.bad(expected)),
        }
    }

    pub(crate) fn datatype(&self) -> Result<Type, Error> {
        // From the first byte, as the item's own read then checks the rest;
        // an indefinite length is `Other` (and refused by that read).
        let Some(&first) = self.buf.get(self.pos) else {
            return Err(self.bad("a CBOR item"));
        };
        Ok(match (first >> 5, first & 0x1f) {
            (_, 28..=31) => Type::Other,
            (0 | 1, _) => Type::Int,
            (2, _) => Type::Bytes,
            (3, _) => Type::String,
            (4, _) => Type::Array,
            (5, _) => Type::Map,
            (6, _) => Type::Tag,
            (7, 20 | 21) => Type::Bool,
            (7, 22) => Type::Null,
            _ => Type::Other,
        })
    }

    /// The count in an array (major 4) or map (major 5) head: at most
    /// `max`, and `n * min_len` bytes at most after the head (`min_len`:
    /// the fewest bytes an item takes; 0 puts no bound). Otherwise the
    /// reader stays before the head and the error expects `bound`.
    /// (Inlined: called, it cost the verifier 384 B of firmware.)
    #[inline(always)]
    fn count(
        &mut self,
        major: u8,
        expected: &'static str,
        max: u64,
        min_len: u64,
        bound: &'static str,
    ) -> Result<usize, Error> {
        let at = self.pos;
        let n = self.head(major, expected)?;
        if n <= max && n.saturating_mul(min_len) <= self.remaining() as u64 {
            Ok(n as usize)
        } else {
            self.pos = at;
            Err(self.bad(bound))
        }
    }

    /// A definite-length array; its length is bounded by the bytes left, so a
    /// huge declared length cannot make a loop run past the input.
    pub(crate) fn array(&mut self) -> Result<usize, Error> {
        self.count(4, "array", u64::MAX, 1, "array len <= data")
    }

    /// A definite-length array of at most `max` items ([`Error::TooMany`]
    /// counting `what` above it). The manifest's version and component-id
    /// reads keep their own checks: through this call (inlined into
    /// `Manifest::decode_into`) they cost the verifier 184 B of firmware.
    pub(crate) fn array_at_most(&mut self, max: usize, what: Limit) -> Result<usize, Error> {
        let n = self.array()?;
        if n > max {
            return Err(Error::TooMany { what, max });
        }
        Ok(n)
    }

    /// A definite-length map (bounded like [`Reader::array`]).
    pub(crate) fn map(&mut self) -> Result<usize, Error> {
        self.count(5, "map", u64::MAX, 2, "map len <= data")
    }

    /// A definite-length map whose length is not bounded by the bytes left
    /// (the envelope, whose payload may be streamed after this buffer).
    /// The caller's loop still stops at the end of the input.
    pub(crate) fn map_unbounded(&mut self) -> Result<usize, Error> {
        self.count(5, "map", 64, 0, "<= 64 members")
    }

    /// Moves past `n` bytes that the caller has already checked are there.
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n);
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        self.head(0, "uint")
    }

    pub(crate) fn i64(&mut self) -> Result<i64, Error> {
        match self.peek() {
            Some(h) if h.major <= 1 && h.arg <= i64::MAX as u64 => {
                self.pos += h.len;
                // -1 - n for a negative integer: !n.
                let v = h.arg as i64;
                Ok(if h.major == 0 { v } else { !v })
            }
            _ => Err(self.bad("an integer")),
        }
    }

    /// A simple value (major type 7) with this additional information.
    fn simple(&mut self, info: u8, expected: &'static str) -> Result<(), Error> {
        if self.buf.get(self.pos) == Some(&(0xe0 | info)) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.bad(expected))
        }
    }

    pub(crate) fn bool(&mut self) -> Result<bool, Error> {
        if self.simple(21, "a boolean").is_ok() {
            return Ok(true);
        }
        self.simple(20, "a boolean").map(|()| false)
    }

    pub(crate) fn null(&mut self) -> Result<(), Error> {
        self.simple(22, "null")
    }

    /// The content of a definite-length string of this major type.
    fn string(&mut self, major: u8, expected: &'static str) -> Result<&'b [u8], Error> {
        let at = self.pos;
        let len = self.head(major, expected)?;
        let content = usize::try_from(len)
            .ok()
            .and_then(|l| self.buf.get(self.pos..)?.get(..l));
        match content {
            Some(c) => {
                self.pos += c.len();
                Ok(c)
            }
            None => {
                self.pos = at;
                Err(self.bad(if major == 2 {
                    "complete bstr"
                } else {
                    "utf-8 text"
                }))
            }
        }
    }

    pub(crate) fn bytes(&mut self) -> Result<&'b [u8], Error> {
        self.string(2, "bstr")
    }

    /// A byte string of exactly `N` bytes, borrowed from the input.
    pub(crate) fn bytes_n<const N: usize>(
        &mut self,
        expected: &'static str,
    ) -> Result<&'b [u8; N], Error> {
        let at = self.pos;
        let b = self.bytes()?;
        b.try_into().map_err(|_| Error::Malformed {
            part: self.part,
            offset: at,
            expected,
        })
    }

    pub(crate) fn str(&mut self) -> Result<&'b str, Error> {
        let at = self.pos;
        let b = self.string(3, "text")?;
        core::str::from_utf8(b).map_err(|_| {
            self.pos = at;
            self.bad("utf-8 text")
        })
    }

    pub(crate) fn tag(&mut self) -> Result<u64, Error> {
        self.head(6, "a CBOR tag")
    }

    /// Skips one item of any shape. Iterative (a count of the items still
    /// to skip, never above the bytes left), so hostile nesting cannot
    /// exhaust the stack. Text strings are checked to be UTF-8.
    pub(crate) fn skip(&mut self) -> Result<(), Error> {
        let start = self.pos;
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let ok = match self.peek() {
                Some(h) => {
                    match h.major {
                        2 | 3 => {
                            let r = self.string(h.major, "");
                            r.is_ok_and(|s| h.major == 2 || core::str::from_utf8(s).is_ok())
                        }
                        // Tags, simple values and floats: the head only
                        // (a tag's item follows).
                        6 | 7 | 0 | 1 => {
                            self.pos += h.len;
                            pending += u64::from(h.major == 6);
                            true
                        }
                        // Arrays and maps: their items follow.
                        _ => {
                            self.pos += h.len;
                            let items = h.arg.saturating_mul(if h.major == 5 { 2 } else { 1 });
                            pending = pending.saturating_add(items);
                            pending <= self.remaining() as u64
                        }
                    }
                }
                None => false,
            };
            if !ok {
                self.pos = start;
                return Err(self.bad("cbor item"));
            }
        }
        Ok(())
    }

    /// The raw bytes of the next item, skipped.
    pub(crate) fn raw_item(&mut self) -> Result<&'b [u8], Error> {
        let start = self.pos;
        self.skip()?;
        self.buf
            .get(start..self.pos)
            .ok_or_else(|| self.bad("cbor item"))
    }

    /// An integer map key, or the text key `TextKey`.
    pub(crate) fn key(&mut self) -> Result<Key<'b>, Error> {
        match self.datatype()? {
            Type::Int => match self.i64() {
                Ok(k) => Ok(Key::Int(k)),
                Err(_) => Err(self.bad("64-bit key")),
            },
            Type::String => Ok(Key::Text(self.str()?)),
            _ => Ok(Key::Other(self.raw_item()?)),
        }
    }

    /// Reads the head of a definite-length byte string and returns its
    /// declared length without requiring the content to be present. Used to
    /// locate a streamed payload in an envelope prefix.
    pub(crate) fn bytes_head(&mut self) -> Result<u64, Error> {
        self.head(2, "bstr")
    }
}

/// Records an integer map key below 64 in `seen`; meeting it a second
/// time is [`Error::DuplicateKey`].
pub(crate) fn first_time(seen: &mut u64, key: i64, part: Part) -> Result<(), Error> {
    if (0..64).contains(&key) {
        let bit = 1u64 << key;
        if *seen & bit != 0 {
            return Err(Error::DuplicateKey { part, key });
        }
        *seen |= bit;
    }
    Ok(())
}

/// A map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key<'b> {
    Int(i64),
    Text(&'b str),
    Other(&'b [u8]),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> Reader<'_> {
        Reader::new(bytes, Part::Manifest)
    }

    #[test]
    fn integers_cover_the_i64_range_only() {
        let mut r = reader(&[0x1b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.i64(), Ok(i64::MAX));
        let mut r = reader(&[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.i64(), Ok(i64::MIN));
        let mut r = reader(&[0x38, 0x63]);
        assert_eq!(r.i64(), Ok(-100));
        let mut r = reader(&[0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert!(r.i64().is_err());
        assert_eq!(r.position(), 0, "a failed read does not move");
        assert_eq!(r.u64(), Ok(1 << 63));
        assert!(reader(&[0x20]).u64().is_err());
        assert!(reader(&[0x19, 0x01]).u64().is_err(), "truncated head");
    }

    #[test]
    fn strings_are_bounded_and_checked() {
        let mut r = reader(&[0x43, 1, 2, 3, 0x62, b'h', b'i']);
        assert_eq!(r.bytes(), Ok(&[1u8, 2, 3][..]));
        assert_eq!(r.str(), Ok("hi"));
        assert!(r.finish().is_ok());
        assert!(reader(&[0x44, 1, 2, 3]).bytes().is_err());
        assert!(reader(&[0x62, 0xff, 0xfe]).str().is_err());
        assert!(
            reader(&[0x5f, 0x41, 0, 0xff]).bytes().is_err(),
            "indefinite"
        );
        assert!(reader(&[0x62, b'h', b'i']).bytes().is_err(), "wrong type");
    }

    #[test]
    fn lengths_are_bounded_by_the_input() {
        assert_eq!(reader(&[0x82, 1, 2]).array(), Ok(2));
        assert!(reader(&[0x83, 1, 2]).array().is_err());
        assert!(reader(&[0x9f, 1, 0xff]).array().is_err());
        assert_eq!(reader(&[0xa1, 1, 2]).map(), Ok(1));
        assert!(reader(&[0xa2, 1, 2]).map().is_err());
        assert!(reader(&[0xbf, 0xff]).map().is_err());
    }

    #[test]
    fn skip_walks_nested_items_without_recursion() {
        // [1, {2: h'00', "a": [true, null]}, tag 24(3), 1.5] then 7.
        let item = [
            0x84, 0x01, 0xa2, 0x02, 0x41, 0x00, 0x61, b'a', 0x82, 0xf5, 0xf6, 0xd8, 0x18, 0x03,
            0xf9, 0x3e, 0x00, 0x07,
        ];
        let mut r = reader(&item);
        assert_eq!(r.raw_item(), Ok(&item[..17]));
        assert_eq!(r.u64(), Ok(7));
        // Deep nesting: a thousand one-element arrays around 0.
        let mut deep = [0x81u8; 1001];
        deep[1000] = 0;
        let mut r = reader(&deep);
        assert!(r.skip().is_ok());
        assert!(r.at_end());
        // Truncated, indefinite and reserved items fail and do not move.
        for bad in [
            &[0x82, 0x01][..],
            &[0x9f, 0xff],
            &[0x5f, 0xff],
            &[0xfc],
            &[0x62, b'a'],
        ] {
            let mut r = reader(bad);
            assert!(r.skip().is_err(), "{bad:x?}");
            assert_eq!(r.position(), 0);
        }
    }

    #[test]
    fn keys_and_types() {
        let mut r = reader(&[0x20, 0x61, b'k', 0x41, 0x00, 0xf4, 0xf6]);
        assert_eq!(r.key(), Ok(Key::Int(-1)));
        assert_eq!(r.key(), Ok(Key::Text("k")));
        assert_eq!(r.key(), Ok(Key::Other(&[0x41, 0x00][..])));
        assert_eq!(r.datatype(), Ok(Type::Bool));
        assert_eq!(r.bool(), Ok(false));
        assert_eq!(r.datatype(), Ok(Type::Null));
        assert_eq!(r.null(), Ok(()));
        assert!(r.datatype().is_err());
        let mut r = reader(&[0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(r.key().is_err());
    }
}
