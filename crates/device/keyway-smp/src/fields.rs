//! The one codec every message map shares: [`read_map!`] reads a map into a
//! struct from a list of fields (key and reader each), [`write_map!`]
//! writes one from a list of entries (key and value each, in the
//! deterministic order), and [`message!`] declares a message with both
//! from one field list. A message states its fields once; the map walk
//! ([`cbor::read_fields`]), the duplicate and missing checks and the entry
//! count are the same code for all of them.

use crate::auth::Auth;
use crate::cbor::{self, Error, Reader, Writer};
use crate::seq::{Item, Seq};

/// A field's value after its map was read: a required field must have
/// been there ([`Error::Missing`] naming its key), an optional one
/// (`Option`) may be absent.
pub(crate) trait Slot<V>: Sized {
    /// The field of the value read (`None`: the key was absent).
    fn take(v: Option<V>, key: &'static str) -> Result<Self, Error>;
}

impl<V> Slot<V> for V {
    #[inline(always)]
    fn take(v: Option<V>, key: &'static str) -> Result<V, Error> {
        cbor::need(v, key)
    }
}

impl<V> Slot<V> for Option<V> {
    #[inline(always)]
    fn take(v: Option<V>, _: &'static str) -> Result<Option<V>, Error> {
        Ok(v)
    }
}

impl<'b, const N: usize> Slot<&'b [u8; N]> for [u8; N] {
    #[inline(always)]
    fn take(v: Option<&'b [u8; N]>, key: &'static str) -> Result<[u8; N], Error> {
        cbor::need(v, key).copied()
    }
}

impl<'b, const N: usize> Slot<&'b [u8; N]> for Option<[u8; N]> {
    #[inline(always)]
    fn take(v: Option<&'b [u8; N]>, _: &'static str) -> Result<Option<[u8; N]>, Error> {
        Ok(v.copied())
    }
}

/// A value [`write_map!`] writes as a map entry, its key then the value
/// (an absent `Option`: no entry).
pub(crate) trait Entry {
    /// Whether it writes an entry.
    fn present(&self) -> bool {
        true
    }
    /// Writes the entry `key: value` (nothing for an absent `Option`).
    fn write_entry(&self, w: &mut Writer<'_>, key: &str) -> Result<(), Error>;
}

impl Entry for u64 {
    fn write_entry(&self, w: &mut Writer<'_>, key: &str) -> Result<(), Error> {
        w.entry_u64(key, *self)
    }
}

impl Entry for bool {
    fn write_entry(&self, w: &mut Writer<'_>, key: &str) -> Result<(), Error> {
        w.entry_bool(key, *self)
    }
}

impl Entry for &str {
    fn write_entry(&self, w: &mut Writer<'_>, key: &str) -> Result<(), Error> {
        w.entry_text(key, self)
    }
}

impl Entry for &[u8] {
    fn write_entry(&self, w: &mut Writer<'_>, key: &str) -> Result<(), Error> {
        w.entry_bytes(key, self)
    }
}

impl<const N: usize> Entry for [u8; N] {
    fn write_entry(&self, w: &mut Writer<'_>, key: &str) -> Result<(), Error> {
        w.entry_bytes(key, self)
    }
}

/// An owner's `auth`, written by the one [`Auth::write_entry`] (its key is
/// always `"auth"`).
impl Entry for Option<Auth> {
    fn present(&self) -> bool {
        self.is_some()
    }
    fn write_entry(&self, w: &mut Writer<'_>, key: &str) -> Result<(), Error> {
        debug_assert_eq!(key, "auth");
        Auth::write_entry(self.as_ref(), w)
    }
}

impl<'a, T: Item<'a> + Copy> Entry for Seq<'a, T> {
    fn write_entry(&self, w: &mut Writer<'_>, key: &str) -> Result<(), Error> {
        w.text(key)?;
        self.write(w)
    }
}

// By value (`*self`): on the Cortex-M4 this compiles smaller than matching
// on the reference (firmware/smp-size).
impl<T: Entry + Copy> Entry for Option<T> {
    fn present(&self) -> bool {
        self.is_some()
    }
    fn write_entry(&self, w: &mut Writer<'_>, key: &str) -> Result<(), Error> {
        if let Some(v) = *self {
            v.write_entry(w, key)?;
        }
        Ok(())
    }
}

/// Reads a map into a struct, `Type { field: "key" => reader, … }`: one
/// field a key, `reader(r, name)` reading its value (`name` is the key as
/// listed, with any prefix; a reader may not bear a field's name, which
/// the macro binds to the value read). A field of type `Option` may be
/// absent; any other must be there ([`Error::Missing`], the first missing
/// in the order listed), unless `field(default)` gives the value it takes
/// when absent. Unknown keys are skipped, a known key twice is refused
/// ([`cbor::read_fields`]). Returns the error from the function it stands
/// in; evaluates to `Ok(Type { … })`.
///
/// * `read_map!(body => Type { … })`: a whole body ([`cbor::read_body`]);
/// * `read_map!(r, prefix, (outer, expected) => Type { … })`: a nested map
///   from the reader `r`, its keys the names after `prefix` bytes, a map's
///   type error reported as `outer` being `expected`.
macro_rules! read_map {
    ($body:expr => $ty:ident { $($f:ident $(($def:expr))? : $key:literal => $read:expr),* $(,)? }) => {{
        $(let mut $f = None;)*
        $crate::cbor::read_body($body, &[$($key),*], &mut read_map!(@value $($f => $read),*))?;
        Ok($ty { $($f: read_map!(@take $f, $key $(, $def)?)),* })
    }};
    ($r:expr, $prefix:literal, ($outer:literal, $expected:literal) => $ty:ident {
        $($f:ident $(($def:expr))? : $key:literal => $read:expr),* $(,)?
    }) => {{
        $(let mut $f = None;)*
        $crate::cbor::field(
            $crate::cbor::read_fields($r, &[$($key),*], $prefix, &mut read_map!(@value $($f => $read),*)),
            $outer,
            $expected,
        )?;
        Ok($ty { $($f: read_map!(@take $f, $key $(, $def)?)),* })
    }};
    // The closure that reads the value of the i-th key into the i-th field.
    (@value $($f:ident => $read:expr),*) => {
        |mut i, name, r| {
            $(
                if i == 0 {
                    $f = Some($read(r, name)?);
                    return Ok(());
                }
                i -= 1;
            )*
            let _ = i;
            Ok(())
        }
    };
    (@take $f:ident, $key:literal) => {
        $crate::fields::Slot::take($f, $key)?
    };
    (@take $f:ident, $key:literal, $def:expr) => {
        $f.unwrap_or($def)
    };
}

/// Writes a map of entries `key => value` (in the deterministic order the
/// caller lists them: shorter keys first, then bytewise): the map's head
/// with the count of the entries present ([`Entry`]), then each. Returns
/// the error from the function it stands in; evaluates to `Ok(())`.
macro_rules! write_map {
    ($w:expr, { $($key:literal => $v:expr),* $(,)? }) => {{
        use $crate::fields::Entry as _;
        let w: &mut $crate::cbor::Writer<'_> = $w;
        w.map(0 $(+ usize::from($v.present()))*)?;
        $($v.write_entry(w, $key)?;)*
        Ok(())
    }};
}

/// A field's unsigned integer.
pub(crate) fn uint(r: &mut Reader<'_>, name: &'static str) -> Result<u64, Error> {
    cbor::field(r.u64(), name, "an unsigned integer")
}

/// A field's bool.
pub(crate) fn flag(r: &mut Reader<'_>, name: &'static str) -> Result<bool, Error> {
    cbor::field(r.bool(), name, "a bool")
}

/// A field's text string.
pub(crate) fn text<'a>(r: &mut Reader<'a>, name: &'static str) -> Result<&'a str, Error> {
    cbor::field(r.text(), name, "a text string")
}

/// A field's byte string.
pub(crate) fn bytes<'a>(r: &mut Reader<'a>, name: &'static str) -> Result<&'a [u8], Error> {
    cbor::field(r.bytes(), name, "a byte string")
}

/// A field's `auth` map ([`Auth::read`]).
pub(crate) fn owner_auth(r: &mut Reader<'_>, _: &'static str) -> Result<Auth, Error> {
    Auth::read(r)
}

/// A field's byte string of exactly `N` bytes, borrowed (the field's
/// [`Slot`] copies it once, into the message).
#[inline(always)]
pub(crate) fn array<'a, const N: usize>(
    r: &mut Reader<'a>,
    name: &'static str,
    expected: &'static str,
) -> Result<&'a [u8; N], Error> {
    let b = cbor::field(r.bytes(), name, expected)?;
    b.try_into().map_err(|_| Error::Invalid {
        field: name,
        expected,
    })
}

/// Declares a message struct (`Clone, Copy, Debug, PartialEq, Eq`: a
/// message is plain data, compared by value) and its codec from one list
/// of fields:
///
/// ```text
/// message! {
///     /// docs, derives
///     pub struct Name<'a> {            // or `pub struct Name` (no lifetime)
///         /// docs
///         pub field: Type = "key" => reader,
///         pub other: Type = "key" or default => reader,
///     }
///     encode(m) { "key" => m.field, … }
/// }
/// ```
///
/// The fields, in the order listed, are what [`read_map!`] reads (a field
/// a key, its reader, and `or` the value it takes when absent); `encode`
/// lists the entries [`write_map!`] writes, in the deterministic order,
/// `m` the message. A `struct` implements [`Message`](crate::Message); one
/// declared `item(prefix, outer, expected) pub struct …` implements
/// [`Item`](crate::seq::Item), a map inside an array ([`read_map!`]'s
/// nested form).
macro_rules! message {
    (
        $(#[$attr:meta])*
        $(item($prefix:literal, $outer:literal, $expected:literal))?
        pub struct $name:ident $(<$lt:lifetime>)? {
            $($(#[$fattr:meta])* pub $f:ident: $t:ty = $key:literal $(or $def:expr)? => $read:expr),* $(,)?
        }
        encode($m:ident) { $($wk:literal => $wv:expr),* $(,)? }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name $(<$lt>)? {
            $($(#[$fattr])* pub $f: $t,)*
        }
        message!(@impl [$($prefix, $outer, $expected)?] $name $(<$lt>)?, $m,
            { $($wk => $wv),* }, { $($f $(($def))?: $key => $read),* });
    };
    // A body: `Message`.
    (@impl [] $($rest:tt)*) => {
        message!(@emit Message, encode, decode, body: &'a [u8], [body], $($rest)*);
    };
    // A map in an array: `Item`.
    (@impl [$prefix:literal, $outer:literal, $expected:literal] $($rest:tt)*) => {
        message!(@emit seq::Item, write, read, r: &mut $crate::cbor::Reader<'a>,
            [r, $prefix, ($outer, $expected)], $($rest)*);
    };
    (@emit $($tr:ident)::+, $enc:ident, $dec:ident, $arg:ident: $argt:ty, [$($head:tt)*],
        $name:ident $(<$lt:lifetime>)?, $m:ident, { $($w:tt)* }, { $($r:tt)* }) => {
        impl<'a> $crate::$($tr)::+<'a> for $name $(<$lt>)? {
            fn $enc(&self, w: &mut $crate::cbor::Writer<'_>) -> Result<(), $crate::cbor::Error> {
                let $m = self;
                write_map!(w, { $($w)* })
            }
            fn $dec($arg: $argt) -> Result<Self, $crate::cbor::Error> {
                read_map!($($head)* => $name { $($r)* })
            }
        }
    };
}
