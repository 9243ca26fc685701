//! A bounded CBOR codec for SMP bodies: a [`Reader`] over borrowed bytes and
//! a [`Writer`] into the caller's buffer. No allocation, no recursion.
//!
//! The reader accepts what SMP bodies are made of: unsigned and negative
//! integers, definite-length byte and text strings (UTF-8 checked), arrays
//! and maps, `false`, `true` and `null`; [`Reader::skip`] also steps over
//! tags, floats and other simple values of fields it does not know.
//! Indefinite lengths are refused: every length is known before it is used
//! and is checked against the input that remains, so no count read from the
//! input sizes anything. Nesting is bounded by [`MAX_DEPTH`], walked with a
//! fixed stack instead of recursion.
//!
//! The writer always uses the shortest head (RFC 8949 §4.2.1, "core
//! deterministic encoding"); the message encoders in this crate write map
//! keys in the deterministic order (shorter first, then bytewise), so equal
//! messages encode to equal bytes.
//!
//! Message decoders read their maps through [`read_fields`]: a table of
//! the message's keys, matched by one shared loop that also skips unknown
//! keys and refuses duplicates, and a callback that reads the value of the
//! key at an index; [`require`] then names the first required key missing.
//! One copy of the key matching serves every message, where a string
//! `match` and a duplicate check per field used to be compiled into each
//! decoder: that was most of the lock's SMP code (the device's budget).
//!
//! This is the SMP counterpart of `keyway-suit`'s envelope reader: the same
//! ideas (definite lengths only, a counter-based skip, errors naming the
//! offset), with its own error type and the writer SMP needs. A shared
//! crate would need a common error type; the duplication is about 100 lines.

/// Nesting depth [`Reader::skip`] walks at most (the deepest Keyway body
/// is 3: a body map, an array, its entries' maps).
pub const MAX_DEPTH: usize = 8;

/// Why a body could not be decoded or encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The input ends inside an item.
    Truncated {
        /// Where the item starts.
        at: usize,
    },
    /// An item of another type than expected.
    Unexpected {
        /// Where the item starts.
        at: usize,
        /// What was expected.
        expected: &'static str,
    },
    /// Indefinite lengths, reserved values, or simple values SMP does not use.
    Unsupported {
        /// Where the item starts.
        at: usize,
    },
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep {
        /// Where the item starts.
        at: usize,
    },
    /// A text string that is not UTF-8.
    Utf8 {
        /// Where the item starts.
        at: usize,
    },
    /// Bytes after the body's map.
    Trailing {
        /// Where they start.
        at: usize,
    },
    /// A field a message needs is absent.
    Missing {
        /// The field's key.
        field: &'static str,
    },
    /// A field appears twice in one map.
    Duplicate {
        /// The field's key.
        field: &'static str,
    },
    /// A field's value has the wrong type, size or range.
    Invalid {
        /// The field's key.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// The writer's buffer is full.
    Full,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Error::Truncated { at } => write!(f, "the body ends inside the item at byte {at}"),
            Error::Unexpected { at, expected } => {
                write!(f, "byte {at}: expected {expected}")
            }
            Error::Unsupported { at } => write!(
                f,
                "byte {at}: indefinite length or a value SMP bodies do not use"
            ),
            Error::TooDeep { at } => {
                write!(f, "byte {at}: nested deeper than {MAX_DEPTH} levels")
            }
            Error::Utf8 { at } => write!(f, "byte {at}: text string is not UTF-8"),
            Error::Trailing { at } => write!(f, "bytes after the body's map, from byte {at}"),
            Error::Missing { field } => write!(f, "\"{field}\" is missing"),
            Error::Duplicate { field } => write!(f, "\"{field}\" appears twice"),
            Error::Invalid { field, expected } => {
                write!(f, "\"{field}\" is not {expected}")
            }
            Error::Full => write!(f, "the message does not fit the buffer"),
        }
    }
}

/// A CBOR item head: major type, argument, and where the item starts.
#[derive(Clone, Copy, Debug)]
struct Head {
    major: u8,
    arg: u64,
    start: usize,
}

/// A CBOR reader over borrowed bytes.
#[derive(Clone, Debug)]
pub struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'b [u8]) -> Self {
        Reader { buf: bytes, pos: 0 }
    }

    /// The offset of the next item.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), Error> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(Error::Trailing { at: self.pos })
        }
    }

    fn take(&mut self, n: usize, at: usize) -> Result<&'b [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated { at })?;
        let s = self.buf.get(self.pos..end).ok_or(Error::Truncated { at })?;
        self.pos = end;
        Ok(s)
    }

    /// Reads a head; the position moves past it (restored by callers on
    /// a type mismatch).
    fn head(&mut self) -> Result<Head, Error> {
        let start = self.pos;
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(Error::Truncated { at: start })?;
        self.pos += 1;
        let major = b >> 5;
        let info = b & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let n = 1usize << (info - 24);
                let s = self.take(n, start)?;
                s.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x))
            }
            _ => {
                self.pos = start;
                return Err(Error::Unsupported { at: start });
            }
        };
        Ok(Head { major, arg, start })
    }

    fn expect(&mut self, major: u8, expected: &'static str) -> Result<Head, Error> {
        let h = self.head()?;
        if h.major != major {
            self.pos = h.start;
            return Err(Error::Unexpected {
                at: h.start,
                expected,
            });
        }
        Ok(h)
    }

    /// The major type of the next item (`None` at the end).
    pub fn peek_major(&self) -> Option<u8> {
        self.buf.get(self.pos).map(|b| b >> 5)
    }

    /// An unsigned integer.
    pub fn u64(&mut self) -> Result<u64, Error> {
        Ok(self.expect(0, "an unsigned integer")?.arg)
    }

    /// A definite-length byte string, borrowed.
    pub fn bytes(&mut self) -> Result<&'b [u8], Error> {
        let h = self.expect(2, "a byte string")?;
        let n = usize::try_from(h.arg).map_err(|_| Error::Truncated { at: h.start })?;
        self.take(n, h.start).inspect_err(|_| self.pos = h.start)
    }

    /// A definite-length UTF-8 text string, borrowed.
    pub fn text(&mut self) -> Result<&'b str, Error> {
        let h = self.expect(3, "a text string")?;
        let n = usize::try_from(h.arg).map_err(|_| Error::Truncated { at: h.start })?;
        let s = self.take(n, h.start).inspect_err(|_| self.pos = h.start)?;
        core::str::from_utf8(s).map_err(|_| {
            self.pos = h.start;
            Error::Utf8 { at: h.start }
        })
    }

    /// `false` or `true`.
    pub fn bool(&mut self) -> Result<bool, Error> {
        let at = self.pos;
        match self.buf.get(at) {
            Some(0xf4) => {
                self.pos += 1;
                Ok(false)
            }
            Some(0xf5) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Err(Error::Unexpected {
                at,
                expected: "a bool",
            }),
            None => Err(Error::Truncated { at }),
        }
    }

    /// A definite-length array's item count (each item takes at least one
    /// byte: a count larger than what remains fails here).
    pub fn array(&mut self) -> Result<usize, Error> {
        let h = self.expect(4, "an array")?;
        self.count(h, 1)
    }

    /// A definite-length map's entry count (each entry takes at least two
    /// bytes: a count larger than what remains fails here).
    pub fn map(&mut self) -> Result<usize, Error> {
        let h = self.expect(5, "a map")?;
        self.count(h, 2)
    }

    fn count(&mut self, h: Head, per: u64) -> Result<usize, Error> {
        if h.arg.saturating_mul(per) > self.remaining() as u64 {
            self.pos = h.start;
            return Err(Error::Truncated { at: h.start });
        }
        usize::try_from(h.arg).map_err(|_| Error::Truncated { at: h.start })
    }

    /// Skips one item of any type, nested at most [`MAX_DEPTH`] levels,
    /// without recursion.
    pub fn skip(&mut self) -> Result<(), Error> {
        let start = self.pos;
        let r = self.skip_inner();
        if r.is_err() {
            self.pos = start;
        }
        r
    }

    fn skip_inner(&mut self) -> Result<(), Error> {
        // Items still to read at each open level.
        let mut stack = [0u64; MAX_DEPTH + 1];
        let mut depth = 0usize;
        stack[0] = 1;
        loop {
            while stack[depth] == 0 {
                if depth == 0 {
                    return Ok(());
                }
                depth -= 1;
            }
            stack[depth] -= 1;
            let h = self.head()?;
            let nested = match h.major {
                0 | 1 => 0,
                2 | 3 => {
                    let n = usize::try_from(h.arg).map_err(|_| Error::Truncated { at: h.start })?;
                    self.take(n, h.start)?;
                    if h.major == 3 {
                        let s = self.buf.get(self.pos - n..self.pos).unwrap_or(&[]);
                        core::str::from_utf8(s).map_err(|_| Error::Utf8 { at: h.start })?;
                    }
                    0
                }
                4 => h.arg,
                5 => h
                    .arg
                    .checked_mul(2)
                    .ok_or(Error::Truncated { at: h.start })?,
                6 => 1,
                // Major 7: simple values and floats (the head read the
                // float's bytes as its argument).
                _ => 0,
            };
            if nested > 0 {
                if nested > self.remaining() as u64 {
                    return Err(Error::Truncated { at: h.start });
                }
                if depth == MAX_DEPTH {
                    return Err(Error::TooDeep { at: h.start });
                }
                depth += 1;
                stack[depth] = nested;
            }
        }
    }

    /// The bytes from the position up to `end` (not consumed).
    pub fn raw_until(&self, end: usize) -> &'b [u8] {
        self.buf.get(self.pos..end).unwrap_or(&[])
    }

    /// The raw bytes of the next item (skipped).
    pub fn raw(&mut self) -> Result<&'b [u8], Error> {
        let start = self.pos;
        self.skip()?;
        Ok(self.buf.get(start..self.pos).unwrap_or(&[]))
    }
}

/// Reads a map whose known keys are the table `names` (one shared copy of
/// the key matching for every message, instead of a string `match` and a
/// duplicate check compiled into each decoder: the device's code budget).
///
/// A name matches the key equal to its bytes after the first `prefix`
/// (`"auth.key"` with `prefix` 5 matches the key `"key"`; errors name the
/// field `"auth.key"`). For a known key, `value(i, name, reader)` reads
/// the value of `names[i]`; an unknown key's value is skipped (stock tools
/// add their own fields); a known key seen a second time is
/// [`Error::Duplicate`], after its value was read (as [`set`] does). At
/// most 32 names. Fails on a non-text key. Returns the keys seen: bit `i`
/// for `names[i]` (see [`require`]).
pub fn read_fields<'b>(
    r: &mut Reader<'b>,
    names: &[&'static str],
    prefix: usize,
    value: &mut dyn FnMut(usize, &'static str, &mut Reader<'b>) -> Result<(), Error>,
) -> Result<u32, Error> {
    debug_assert!(names.len() <= 32);
    let n = r.map()?;
    let mut seen = 0u32;
    for _ in 0..n {
        let k = r.text()?.as_bytes();
        match names
            .iter()
            .enumerate()
            .find(|(_, f)| f.as_bytes().get(prefix..) == Some(k))
        {
            Some((i, &name)) => {
                value(i, name, r)?;
                let bit = 1u32 << (i & 31);
                if seen & bit != 0 {
                    return Err(Error::Duplicate { field: name });
                }
                seen |= bit;
            }
            None => r.skip()?,
        }
    }
    Ok(seen)
}

/// Fails with [`Error::Missing`] naming the first of the `required` keys
/// (bit `i` for `names[i]`) that is not in `seen` ([`read_fields`]).
pub fn require(seen: u32, required: u32, names: &[&'static str]) -> Result<(), Error> {
    let missing = required & !seen;
    match names.get(missing.trailing_zeros() as usize) {
        Some(&field) if missing != 0 => Err(Error::Missing { field }),
        _ => Ok(()),
    }
}

/// A byte string of exactly `out.len()` bytes, copied into `out` (one
/// copy for every length; [`fixed`] makes an array of each).
pub fn fill(
    r: &mut Reader<'_>,
    name: &'static str,
    expected: &'static str,
    out: &mut [u8],
) -> Result<(), Error> {
    let b = field(r.bytes(), name, expected)?;
    if b.len() != out.len() {
        return Err(Error::Invalid {
            field: name,
            expected,
        });
    }
    out.copy_from_slice(b);
    Ok(())
}

/// Reads one whole body map with [`read_fields`] (no prefix): an empty
/// body is an empty map; bytes after the map are refused.
pub fn read_body<'b>(
    body: &'b [u8],
    names: &[&'static str],
    value: &mut dyn FnMut(usize, &'static str, &mut Reader<'b>) -> Result<(), Error>,
) -> Result<u32, Error> {
    if body.is_empty() {
        return Ok(0);
    }
    let mut r = Reader::new(body);
    let seen = read_fields(&mut r, names, 0, value)?;
    r.finish()?;
    Ok(seen)
}

/// Reads a body map whose one known entry is `key` (others are skipped,
/// as [`read_body`] does), its value read by `value`: `None` when the
/// body lacks it.
pub fn read_single<'b, T>(
    body: &'b [u8],
    key: &'static str,
    mut value: impl FnMut(&mut Reader<'b>, &'static str) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    let mut v = None;
    read_body(body, &[key], &mut |_, name, r| {
        v = Some(value(r, name)?);
        Ok(())
    })?;
    Ok(v)
}

/// [`read_single`] for a required entry: [`Error::Missing`] without it.
pub fn read_required<'b, T>(
    body: &'b [u8],
    key: &'static str,
    value: impl FnMut(&mut Reader<'b>, &'static str) -> Result<T, Error>,
) -> Result<T, Error> {
    need(read_single(body, key, value)?, key)
}

/// Stores a field's value once: a second value for the same key is
/// [`Error::Duplicate`].
pub fn set<T>(slot: &mut Option<T>, field: &'static str, v: T) -> Result<bool, Error> {
    if slot.is_some() {
        return Err(Error::Duplicate { field });
    }
    *slot = Some(v);
    Ok(true)
}

/// A required field's value.
pub fn need<T>(slot: Option<T>, field: &'static str) -> Result<T, Error> {
    slot.ok_or(Error::Missing { field })
}

/// Maps a type error of a field's value to [`Error::Invalid`] naming it.
pub fn field<T>(
    r: Result<T, Error>,
    field: &'static str,
    expected: &'static str,
) -> Result<T, Error> {
    r.map_err(|e| match e {
        Error::Unexpected { .. } | Error::Utf8 { .. } => Error::Invalid { field, expected },
        other => other,
    })
}

/// A byte string of exactly `N` bytes.
pub fn fixed<const N: usize>(
    r: &mut Reader<'_>,
    name: &'static str,
    expected: &'static str,
) -> Result<[u8; N], Error> {
    let b = field(r.bytes(), name, expected)?;
    <[u8; N]>::try_from(b).map_err(|_| Error::Invalid {
        field: name,
        expected,
    })
}

/// A CBOR writer into a caller's buffer; shortest heads always.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Writer<'b> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, len: 0 }
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes written.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Appends raw bytes (an item already encoded).
    pub fn raw(&mut self, b: &[u8]) -> Result<(), Error> {
        let end = self.len.checked_add(b.len()).ok_or(Error::Full)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(Error::Full)?
            .copy_from_slice(b);
        self.len = end;
        Ok(())
    }

    fn head(&mut self, major: u8, arg: u64) -> Result<(), Error> {
        // The shortest head: the argument in the initial byte (< 24), or
        // 1, 2, 4 or 8 big-endian bytes after it (info 24 to 27).
        let (info, n) = match arg {
            0..=23 => (arg as u8, 0),
            24..=0xff => (24, 1),
            0x100..=0xffff => (25, 2),
            0x1_0000..=0xffff_ffff => (26, 4),
            _ => (27, 8),
        };
        let mut b = [0u8; 9];
        b[0] = major << 5 | info;
        let be = arg.to_be_bytes();
        b[1..=n].copy_from_slice(&be[8 - n..]);
        self.raw(&b[..=n])
    }

    /// An unsigned integer.
    pub fn u64(&mut self, n: u64) -> Result<(), Error> {
        self.head(0, n)
    }

    /// A byte string.
    pub fn bytes(&mut self, b: &[u8]) -> Result<(), Error> {
        self.head(2, b.len() as u64)?;
        self.raw(b)
    }

    /// A text string.
    pub fn text(&mut self, s: &str) -> Result<(), Error> {
        self.head(3, s.len() as u64)?;
        self.raw(s.as_bytes())
    }

    /// `false` or `true`.
    pub fn bool(&mut self, b: bool) -> Result<(), Error> {
        self.raw(&[if b { 0xf5 } else { 0xf4 }])
    }

    /// A map entry: the text `key`, then an unsigned integer. The
    /// `entry_*` writers are one call per entry in every encoder instead
    /// of two (the device's code budget).
    #[inline(never)]
    pub fn entry_u64(&mut self, key: &str, n: u64) -> Result<(), Error> {
        self.text(key)?;
        self.u64(n)
    }

    /// A map entry: the text `key`, then a byte string.
    #[inline(never)]
    pub fn entry_bytes(&mut self, key: &str, b: &[u8]) -> Result<(), Error> {
        self.text(key)?;
        self.bytes(b)
    }

    /// A map entry: the text `key`, then a text string.
    #[inline(never)]
    pub fn entry_text(&mut self, key: &str, s: &str) -> Result<(), Error> {
        self.text(key)?;
        self.text(s)
    }

    /// A map entry: the text `key`, then `false` or `true`.
    #[inline(never)]
    pub fn entry_bool(&mut self, key: &str, b: bool) -> Result<(), Error> {
        self.text(key)?;
        self.bool(b)
    }

    /// An array head of `n` items.
    pub fn array(&mut self, n: usize) -> Result<(), Error> {
        self.head(4, n as u64)
    }

    /// A map head of `n` entries.
    pub fn map(&mut self, n: usize) -> Result<(), Error> {
        self.head(5, n as u64)
    }
}

/// The encoded length of a byte string's head for `n` bytes.
pub fn bytes_head_len(n: usize) -> usize {
    match n {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_uses_shortest_heads() {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        for n in [0u64, 23, 24, 255, 256, 65535, 65536, u32::MAX as u64 + 1] {
            w.u64(n).unwrap();
        }
        assert_eq!(
            w.written(),
            [
                0x00, 0x17, 0x18, 0x18, 0x18, 0xff, 0x19, 0x01, 0x00, 0x19, 0xff, 0xff, 0x1a, 0x00,
                0x01, 0x00, 0x00, 0x1b, 0, 0, 0, 1, 0, 0, 0, 0
            ]
        );
        let mut r = Reader::new(&buf[..26]);
        for n in [0u64, 23, 24, 255, 256, 65535, 65536, u32::MAX as u64 + 1] {
            assert_eq!(r.u64().unwrap(), n);
        }
        r.finish().unwrap();
    }

    #[test]
    fn writer_refuses_to_overflow() {
        let mut buf = [0u8; 4];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.bytes(&[1, 2, 3, 4]), Err(Error::Full));
        assert_eq!(w.len(), 1, "the head fitted, the content did not");
    }

    #[test]
    fn reader_bounds_counts_and_depth() {
        // A map declaring 2^32 entries in 5 bytes.
        assert_eq!(
            Reader::new(&[0xba, 0xff, 0xff, 0xff, 0xff]).map(),
            Err(Error::Truncated { at: 0 })
        );
        // A byte string longer than the input.
        assert_eq!(
            Reader::new(&[0x5a, 0xff, 0xff, 0xff, 0xff, 1]).bytes(),
            Err(Error::Truncated { at: 0 })
        );
        // Nine nested arrays.
        let deep = [0x81u8, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x00];
        assert_eq!(Reader::new(&deep).skip(), Err(Error::TooDeep { at: 8 }));
        assert_eq!(Reader::new(&deep[1..]).skip(), Ok(()));
        // Indefinite lengths are refused.
        assert_eq!(
            Reader::new(&[0x9f, 0xff]).skip(),
            Err(Error::Unsupported { at: 0 })
        );
    }

    /// The shared key table: known keys by index (a prefix left out of
    /// the match but kept in errors), unknown keys skipped, a key twice
    /// refused after its value was read, non-text keys refused.
    #[test]
    fn read_fields_matches_the_table_and_refuses_duplicates() {
        let names = ["x.a", "x.bb"];
        let mut got = [0u64; 2];
        // {"bb": 2, "zz": [1], "a": 1}
        let body = [
            0xa3, 0x62, b'b', b'b', 0x02, 0x62, b'z', b'z', 0x81, 0x01, 0x61, b'a', 0x01,
        ];
        let mut r = Reader::new(&body);
        let seen = read_fields(&mut r, &names, 2, &mut |i, _, r| {
            got[i] = r.u64()?;
            Ok(())
        })
        .unwrap();
        r.finish().unwrap();
        assert_eq!((got, seen), ([1, 2], 0b11));
        assert_eq!(require(seen, 0b11, &names), Ok(()));
        assert_eq!(
            require(0b01, 0b11, &names),
            Err(Error::Missing { field: "x.bb" })
        );
        assert_eq!(
            require(0, 0b11, &names),
            Err(Error::Missing { field: "x.a" })
        );
        // {"a": 1, "a": 2}: the second is a duplicate, named with its prefix.
        let dup = [0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x02];
        let mut r = Reader::new(&dup);
        assert_eq!(
            read_fields(&mut r, &names, 2, &mut |_, _, r| r.u64().map(drop)),
            Err(Error::Duplicate { field: "x.a" })
        );
        // {"a": 1, "a": "s"}: the second value's own error comes first.
        let dup_bad = [0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x61, b's'];
        let mut r = Reader::new(&dup_bad);
        assert_eq!(
            read_fields(&mut r, &names, 2, &mut |_, name, r| {
                field(r.u64(), name, "an unsigned integer").map(drop)
            }),
            Err(Error::Invalid {
                field: "x.a",
                expected: "an unsigned integer"
            })
        );
        // "x.a" itself is not a key of this table (the prefix is left out).
        let full = [0xa1, 0x63, b'x', b'.', b'a', 0x01];
        let mut r = Reader::new(&full);
        read_fields(&mut r, &names, 2, &mut |_, _, _| panic!("matched")).unwrap();
        // {1: 1}: keys are text.
        assert_eq!(
            read_body(&[0xa1, 0x01, 0x01], &names, &mut |_, _, _| Ok(())),
            Err(Error::Unexpected {
                at: 1,
                expected: "a text string"
            })
        );
        assert_eq!(
            read_body(&[0xa0, 0x00], &names, &mut |_, _, _| Ok(())),
            Err(Error::Trailing { at: 1 })
        );
        assert_eq!(read_body(&[], &names, &mut |_, _, _| Ok(())), Ok(0));
    }
}
