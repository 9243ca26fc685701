//! The diff: bsdiff's method on a suffix array of the old image, coded
//! with the lock's own op model (`keyway_delta::encode`).

use anyhow::{Context, Result};
use keyway_delta::{Op, PatchHeader};

use super::sha256;

/// Bytes a new match must win over the current alignment before the diff
/// starts a new op for it. bsdiff uses 8; with the range-coded ops 4
/// measured best (BENCHMARKS.md, "Delta updates").
pub const MIN_GAIN: usize = 4;

/// The longest prefix of `needle` found in `old`, as (position, length),
/// by binary search over the suffix array `sa`.
fn longest_match(sa: &[i32], old: &[u8], needle: &[u8]) -> (usize, usize) {
    if sa.is_empty() || needle.is_empty() {
        return (0, 0);
    }
    let common = |p: usize| {
        old[p..]
            .iter()
            .zip(needle)
            .take_while(|(a, b)| a == b)
            .count()
    };
    // First suffix not below the needle; the longest match is it or the one before.
    let idx = sa.partition_point(|&p| &old[p as usize..] < needle);
    let mut best = (0, 0);
    for i in [idx.wrapping_sub(1), idx] {
        if let Some(&p) = sa.get(i) {
            let l = common(p as usize);
            if l > best.1 {
                best = (p as usize, l);
            }
        }
    }
    best
}

/// One run of the new image: `add` bytes against the old image at
/// `old_start`, then `extra` new bytes.
#[derive(Clone, Copy, Debug)]
struct Segment {
    old_start: usize,
    add: usize,
    extra: usize,
}

fn agree(old: &[u8], new: &[u8], o: isize, n: usize) -> bool {
    o >= 0 && (o as usize) < old.len() && old[o as usize] == new[n]
}

/// The segments that turn `old` into `new` (bsdiff's scan).
fn segments(old: &[u8], new: &[u8], min_gain: usize) -> Vec<Segment> {
    let mut sa = vec![0i32; old.len()];
    divsufsort::sort_in_place(old, &mut sa);
    let mut out = Vec::new();
    let (mut scan, mut len, mut pos) = (0usize, 0usize, 0usize);
    let (mut last_scan, mut last_pos, mut last_offset) = (0usize, 0usize, 0isize);
    while scan < new.len() {
        let mut old_score = 0usize;
        scan += len;
        let mut scsc = scan;
        while scan < new.len() {
            (pos, len) = longest_match(&sa, old, &new[scan..]);
            while scsc < scan + len {
                if agree(old, new, scsc as isize + last_offset, scsc) {
                    old_score += 1;
                }
                scsc += 1;
            }
            if (len == old_score && len != 0) || len > old_score + min_gain {
                break;
            }
            if agree(old, new, scan as isize + last_offset, scan) {
                old_score = old_score.saturating_sub(1);
            }
            scan += 1;
        }
        if len == old_score && scan != new.len() {
            continue;
        }
        // Extend the previous match forwards while at least half agrees.
        let (mut s, mut best, mut len_f) = (0isize, 0isize, 0usize);
        let mut i = 0;
        while last_scan + i < scan && last_pos + i < old.len() {
            if old[last_pos + i] == new[last_scan + i] {
                s += 1;
            }
            i += 1;
            if s * 2 - i as isize > best * 2 - len_f as isize {
                best = s;
                len_f = i;
            }
        }
        // Extend the new match backwards likewise.
        let mut len_b = 0usize;
        if scan < new.len() {
            let (mut s, mut best) = (0isize, 0isize);
            let mut i = 1;
            while scan >= last_scan + i && pos >= i {
                if old[pos - i] == new[scan - i] {
                    s += 1;
                }
                if s * 2 - i as isize > best * 2 - len_b as isize {
                    best = s;
                    len_b = i;
                }
                i += 1;
            }
        }
        // Where they overlap, split at the point that keeps most agreement.
        if last_scan + len_f > scan - len_b {
            let overlap = (last_scan + len_f) - (scan - len_b);
            let (mut s, mut best, mut len_s) = (0isize, 0isize, 0usize);
            for i in 0..overlap {
                if new[last_scan + len_f - overlap + i] == old[last_pos + len_f - overlap + i] {
                    s += 1;
                }
                if new[scan - len_b + i] == old[pos - len_b + i] {
                    s -= 1;
                }
                if s > best {
                    best = s;
                    len_s = i + 1;
                }
            }
            len_f = len_f + len_s - overlap;
            len_b -= len_s;
        }
        out.push(Segment {
            old_start: last_pos,
            add: len_f,
            extra: (scan - len_b) - (last_scan + len_f),
        });
        last_scan = scan - len_b;
        last_pos = pos - len_b;
        last_offset = pos as isize - scan as isize;
    }
    out
}

/// The ops that turn `old` into `new`.
pub fn ops(old: &[u8], new: &[u8]) -> Vec<Op> {
    ops_with(old, new, MIN_GAIN)
}

/// [`ops`] with another `min_gain`.
pub fn ops_with(old: &[u8], new: &[u8], min_gain: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut cursor = 0i64;
    for s in segments(old, new, min_gain) {
        if s.add == 0 && s.extra == 0 {
            continue;
        }
        let seek = if s.add == 0 {
            0
        } else {
            s.old_start as i64 - cursor
        };
        cursor += seek + s.add as i64;
        ops.push(Op {
            seek,
            add: s.add as u32,
            extra: s.extra as u32,
        });
    }
    ops
}

/// Makes a patch (header and body) that turns `old` into `new`.
pub fn diff(old: &[u8], new: &[u8]) -> Result<Vec<u8>> {
    encode(old, new, &ops(old, new))
}

/// Encodes `ops` as a patch.
pub fn encode(old: &[u8], new: &[u8], ops: &[Op]) -> Result<Vec<u8>> {
    let header = PatchHeader {
        base_size: u32::try_from(old.len()).context("old image over 4 GiB")?,
        out_size: u32::try_from(new.len()).context("new image over 4 GiB")?,
        base_digest: sha256(old),
        out_digest: sha256(new),
    };
    let mut patch = header.to_bytes().to_vec();
    keyway_delta::encode::encode_body(old, new, ops, |b| patch.push(b))
        .map_err(|e| anyhow::anyhow!("diff produced invalid ops: {e:?}"))?;
    Ok(patch)
}
