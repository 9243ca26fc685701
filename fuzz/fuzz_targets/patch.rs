//! The delta patch decoder on hostile input: whatever the bytes, the
//! patcher never panics, never asks the base reader for bytes outside the
//! base, and never hands the sink more than the declared output.
//!
//! Input: 2 bytes of base size and 2 of output size (little-endian, small
//! so that the decoder reaches deep states), 1 byte of chunk size, then the
//! patch body. Half of the runs write the body through the encoder's
//! `Writer` from the input's symbols instead (seeks, lengths, diffs,
//! literals), so that well-formed streams with hostile values are covered
//! as well as random range-coder bytes.
#![no_main]

use keyway_delta::encode::Writer;
use keyway_delta::{BaseReader, PatchHeader, Patcher};
use libfuzzer_sys::fuzz_target;

struct Base<'a>(&'a [u8]);

impl BaseReader for Base<'_> {
    type Error = ();
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), ()> {
        let start = offset as usize;
        let end = start.checked_add(buf.len()).expect("read length overflows");
        assert!(end <= self.0.len(), "read outside the base: {start}..{end} of {}", self.0.len());
        buf.copy_from_slice(&self.0[start..end]);
        Ok(())
    }
}

fn symbols(data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut sink = |b: u8| body.push(b);
    let mut w = Writer::new(&mut sink);
    let mut it = data.chunks(5);
    while let Some(c) = it.next() {
        let mut v = [0u8; 5];
        v[..c.len()].copy_from_slice(c);
        let n = u32::from_le_bytes([v[1], v[2], v[3], v[4]]);
        match v[0] % 6 {
            0 => w.seek(i64::from(n as i32)),
            1 => w.add_len(n % 512),
            2 => w.extra_len(n % 512),
            3 => w.diff(v[1], v[2]),
            4 => w.literal(v[1]),
            _ => w.add_len(n),
        }
    }
    w.finish();
    body
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let base_size = u16::from_le_bytes([data[0], data[1]]) as u32 % 4096;
    let out_size = u16::from_le_bytes([data[2], data[3]]) as u32 % 8192;
    let chunk = usize::from(data[4]).max(1);
    let body = if data[5] & 1 == 1 { symbols(&data[6..]) } else { data[6..].to_vec() };
    let base: Vec<u8> = (0..base_size).map(|i| (i * 7) as u8).collect();
    let header = PatchHeader { base_size, out_size, base_digest: [0; 32], out_digest: [0; 32] };
    let mut p = Patcher::new(&header, base_size, &[0; 32]).expect("same base");
    let mut produced = 0usize;
    let mut out = |c: &[u8]| -> Result<(), ()> {
        produced += c.len();
        assert!(produced <= out_size as usize, "output past the declared size");
        Ok(())
    };
    let mut b = Base(&base);
    for c in body.chunks(chunk) {
        if p.feed(c, &mut b, &mut out).is_err() {
            return;
        }
    }
    if p.finish(&mut b, &mut out).is_ok() {
        assert_eq!(produced, out_size as usize, "finish accepted a short output");
    }
});
