//! Helpers shared by the codec and hostile-patch tests.
#![allow(dead_code)]

use core::convert::Infallible;

use keyway_delta::encode::Writer;
use keyway_delta::{Error, OutOfBounds, PatchHeader, Patcher, SliceBase};

pub type ApplyError = Error<OutOfBounds, Infallible>;

/// A header for `base` and an output of `out_size` bytes (digests are the
/// caller's business; the tests check bytes directly).
pub fn header(base: &[u8], out_size: u32) -> PatchHeader {
    PatchHeader {
        base_size: base.len() as u32,
        out_size,
        base_digest: [7; 32],
        out_digest: [0; 32],
    }
}

/// A body written symbol by symbol.
pub fn body(write: impl FnOnce(&mut Writer<&mut dyn FnMut(u8)>)) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut sink = |b: u8| bytes.push(b);
    let mut w: Writer<&mut dyn FnMut(u8)> = Writer::new(&mut sink);
    write(&mut w);
    w.finish();
    bytes
}

/// Applies `body` to `base`, feeding it in `chunk`-byte pieces; returns the
/// result and every byte the sink received.
pub fn apply(
    h: &PatchHeader,
    base: &[u8],
    body: &[u8],
    chunk: usize,
) -> (Result<(), ApplyError>, Vec<u8>) {
    let mut got = Vec::new();
    let mut p = Patcher::new(h, h.base_size, &h.base_digest).expect("same base");
    let mut out = |c: &[u8]| -> Result<(), Infallible> {
        got.extend_from_slice(c);
        Ok(())
    };
    let mut b = SliceBase(base);
    let mut r = Ok(());
    for c in body.chunks(chunk.max(1)) {
        r = p.feed(c, &mut b, &mut out);
        if r.is_err() {
            break;
        }
    }
    if r.is_ok() {
        r = p.finish(&mut b, &mut out);
    }
    (r, got)
}
