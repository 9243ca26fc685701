//! Arrays inside a message without a heap: a [`Seq`] is either the
//! caller's slice (to encode) or the array's bytes in the body (decoded
//! and validated once, then iterated).

use crate::cbor::{Error, Reader, Writer};

/// An item of an array in a message.
pub trait Item<'a>: Sized {
    /// Reads one item.
    fn read(r: &mut Reader<'a>) -> Result<Self, Error>;
    /// Writes one item.
    fn write(&self, w: &mut Writer<'_>) -> Result<(), Error>;
}

/// The items of an array field.
#[derive(Clone, Copy, Debug)]
pub enum Seq<'a, T> {
    /// Items the caller holds (encoding).
    Items(&'a [T]),
    /// Items in a decoded body: `count` items, validated, in `bytes`.
    Raw {
        /// The items' bytes (after the array head).
        bytes: &'a [u8],
        /// How many.
        count: usize,
    },
}

impl<'a, T: Item<'a> + Copy> Seq<'a, T> {
    /// Reads an array, at most `max` items, validating every item.
    pub fn read(r: &mut Reader<'a>, field: &'static str, max: usize) -> Result<Self, Error> {
        let n = crate::cbor::field(r.array(), field, "an array")?;
        if n > max {
            return Err(Error::Invalid {
                field,
                expected: "an array within the item limit",
            });
        }
        let start = r.position();
        let mut probe = r.clone();
        for _ in 0..n {
            T::read(&mut probe)?;
        }
        let all = r.raw_until(probe.position());
        *r = probe;
        let _ = start;
        Ok(Seq::Raw {
            bytes: all,
            count: n,
        })
    }

    /// Writes the array.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.array(self.len())?;
        for i in self.iter() {
            i.write(w)?;
        }
        Ok(())
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        match self {
            Seq::Items(s) => s.len(),
            Seq::Raw { count, .. } => *count,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items, in order.
    pub fn iter(&self) -> SeqIter<'a, T> {
        match *self {
            Seq::Items(s) => SeqIter::Items(s.iter()),
            Seq::Raw { bytes, count } => SeqIter::Raw {
                r: Reader::new(bytes),
                left: count,
            },
        }
    }
}

impl<'a, T: Item<'a> + Copy + PartialEq> PartialEq for Seq<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl<'a, T: Item<'a> + Copy + Eq> Eq for Seq<'a, T> {}

/// An iterator over a [`Seq`].
#[derive(Debug)]
pub enum SeqIter<'a, T> {
    /// Over a slice.
    Items(core::slice::Iter<'a, T>),
    /// Over validated bytes.
    Raw {
        /// The reader.
        r: Reader<'a>,
        /// Items left.
        left: usize,
    },
}

impl<'a, T: Item<'a> + Copy> Iterator for SeqIter<'a, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match self {
            SeqIter::Items(i) => i.next().copied(),
            SeqIter::Raw { r, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                // Validated when the Seq was read: cannot fail.
                T::read(r).ok()
            }
        }
    }
}
