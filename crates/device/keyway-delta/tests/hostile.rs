//! Hostile patches: each is refused with an error that names what failed,
//! the sink never receives a byte past the declared output, and nothing
//! panics.

mod common;

use common::{apply, body, header};
use keyway_delta::encode::{Writer, encode_body};
use keyway_delta::{Error, HEADER_LEN, Op, PatchError, PatchHeader, Patcher, SliceBase};
use proptest::prelude::*;

fn base() -> Vec<u8> {
    (0..64u8).collect()
}

#[test]
fn copy_out_of_range_is_refused() {
    let base = base();
    // A copy that runs past the end of the base.
    let b = body(|w| {
        w.seek(60);
        w.add_len(8);
    });
    let (r, got) = apply(&header(&base, 100), &base, &b, 1);
    assert_eq!(
        r,
        Err(Error::Patch(PatchError::CopyOutOfRange {
            out_offset: 0,
            base_offset: 60,
            len: 8,
            base_size: 64
        }))
    );
    assert!(got.is_empty());
    // Seeks before the start and past the end.
    for seek in [-1i64, 65, i64::from(u32::MAX)] {
        let b = body(|w| {
            w.seek(seek);
            w.add_len(1);
        });
        let (r, got) = apply(&header(&base, 100), &base, &b, 5);
        assert!(
            matches!(r, Err(Error::Patch(PatchError::CopyOutOfRange { base_offset, .. })) if base_offset == seek),
            "seek {seek}: {r:?}"
        );
        assert!(got.is_empty());
    }
    // A later op that seeks before the start, after valid output.
    let b = body(|w| {
        w.seek(0);
        w.add_len(10);
        for i in 0..10 {
            w.diff(i, i);
        }
        w.extra_len(0);
        w.seek(-11);
    });
    let (r, got) = apply(&header(&base, 100), &base, &b, 3);
    assert!(matches!(
        r,
        Err(Error::Patch(PatchError::CopyOutOfRange {
            out_offset: 10,
            base_offset: -1,
            ..
        }))
    ));
    // Output is handed on in chunks; what the sink got is a prefix of the valid bytes.
    assert!((0..10u8).collect::<Vec<_>>().starts_with(&got));
}

#[test]
fn oversize_length_is_refused() {
    let base = base();
    for (add, extra) in [(u32::MAX, 0), (0, u32::MAX), (101, 0), (0, 101), (50, 51)] {
        let b = body(|w| {
            w.seek(0);
            w.add_len(add);
            for i in 0..add.min(50) {
                w.diff(i as u8, i as u8);
            }
            w.extra_len(extra);
        });
        let (r, got) = apply(&header(&base, 100), &base, &b, 16);
        let Err(Error::Patch(PatchError::OutputTooLong {
            out_offset,
            len,
            declared: 100,
        })) = r
        else {
            panic!("add {add} extra {extra}: {r:?}");
        };
        assert_eq!(
            (out_offset, len),
            if add > 100 {
                (0, add)
            } else {
                (add.min(50), extra)
            }
        );
        assert!(got.len() <= 100);
    }
}

#[test]
fn output_longer_than_declared_is_refused() {
    // A valid patch for 64 bytes, under a header that declares 63: the
    // decoder stops at the op that would write byte 64 and names it.
    let base = base();
    let new: Vec<u8> = base.iter().map(|b| b ^ 1).collect();
    let mut bytes = Vec::new();
    encode_body(
        &base,
        &new,
        &[Op {
            seek: 0,
            add: 40,
            extra: 24,
        }],
        |b| bytes.push(b),
    )
    .unwrap();
    // Declared 63: refused at the op that would write byte 64, after the
    // first op's 40 bytes; declared shorter still: refused at the first op.
    for (declared, out_offset, len) in [(63, 40, 24), (39, 0, 40)] {
        let (r, got) = apply(&header(&base, declared), &base, &bytes, 7);
        let e = PatchError::OutputTooLong {
            out_offset,
            len,
            declared,
        };
        assert_eq!(r, Err(Error::Patch(e)));
        assert!(new[..out_offset as usize].starts_with(&got), "{e:?}");
    }
    // Declared longer: the stream decodes past its end and is refused as truncated.
    let (r, got) = apply(&header(&base, 65), &base, &bytes, 7);
    assert!(
        matches!(r, Err(Error::Patch(PatchError::Truncated { .. }))),
        "{r:?}"
    );
    assert!(got.len() <= 65);
}

#[test]
fn truncated_patch_is_refused() {
    let base: Vec<u8> = (0..3000u32).map(|i| (i * 31 / 7) as u8).collect();
    let mut new = base[100..2100].to_vec();
    new.extend_from_slice(b"fresh bytes the base does not have");
    new[500] ^= 0x55;
    let ops = [Op {
        seek: 100,
        add: 2000,
        extra: 34,
    }];
    let mut bytes = Vec::new();
    encode_body(&base, &new, &ops, |b| bytes.push(b)).unwrap();
    let h = header(&base, new.len() as u32);
    assert_eq!(apply(&h, &base, &bytes, 13).0, Ok(()));
    for cut in 0..bytes.len() {
        let (r, got) = apply(&h, &base, &bytes[..cut], 13);
        assert!(
            matches!(r, Err(Error::Patch(PatchError::Truncated { patch_offset })) if patch_offset <= (HEADER_LEN + cut) as u64),
            "cut at {cut}: {r:?}"
        );
        assert!(got.len() < new.len());
    }
    // And a byte too many.
    let mut longer = bytes.clone();
    longer.push(0);
    let (r, _) = apply(&h, &base, &longer, 13);
    assert_eq!(
        r,
        Err(Error::Patch(PatchError::TrailingData {
            patch_offset: (HEADER_LEN + bytes.len()) as u64
        }))
    );
}

#[test]
fn patch_for_another_base_is_refused_before_writing() {
    let h = PatchHeader {
        base_digest: [1; 32],
        ..header(&[0; 64], 10)
    };
    assert_eq!(
        Patcher::new(&h, 65, &[1; 32]).err(),
        Some(PatchError::WrongBaseSize {
            patch: 64,
            installed: 65
        })
    );
    let mut other = [1; 32];
    other[31] = 2;
    assert_eq!(
        Patcher::new(&h, 64, &other).err(),
        Some(PatchError::WrongBaseDigest)
    );
    // No patcher exists, so nothing can be read or written; the right base is accepted.
    assert!(Patcher::new(&h, 64, &[1; 32]).is_ok());
}

#[test]
fn header_is_checked() {
    let h = PatchHeader {
        base_size: 1,
        out_size: 2,
        base_digest: [3; 32],
        out_digest: [4; 32],
    };
    let bytes = h.to_bytes();
    assert_eq!(PatchHeader::parse(&bytes), Ok(h));
    assert_eq!(
        PatchHeader::parse(&bytes[..79]),
        Err(PatchError::HeaderTooShort { len: 79 })
    );
    let mut bad = bytes;
    bad[0] = b'X';
    assert_eq!(PatchHeader::parse(&bad), Err(PatchError::BadMagic));
    let mut bad = bytes;
    bad[4] = 2;
    assert_eq!(
        PatchHeader::parse(&bad),
        Err(PatchError::UnsupportedVersion { got: 2 })
    );
    let mut bad = bytes;
    bad[6] = 1;
    assert!(matches!(
        PatchHeader::parse(&bad),
        Err(PatchError::Corrupt { .. })
    ));
}

#[test]
fn empty_op_is_refused() {
    let base = base();
    let b = body(|w: &mut Writer<_>| {
        w.seek(0);
        w.add_len(0);
        w.extra_len(0);
    });
    let (r, got) = apply(&header(&base, 10), &base, &b, 64);
    assert_eq!(r, Err(Error::Patch(PatchError::EmptyOp { out_offset: 0 })));
    assert!(got.is_empty());
}

#[test]
fn a_failed_patcher_refuses_more_input() {
    let base = base();
    let h = header(&base, 10);
    let mut p = Patcher::new(&h, 64, &h.base_digest).unwrap();
    let mut out = |_: &[u8]| -> Result<(), ()> { Ok(()) };
    let junk = [0xFFu8; 100];
    let r = p.feed(&junk, &mut SliceBase(&base), &mut out);
    assert!(
        matches!(r, Err(Error::Patch(PatchError::Corrupt { .. }))),
        "{r:?}"
    );
    assert_eq!(
        p.feed(&[0], &mut SliceBase(&base), &mut out),
        Err(Error::Patch(PatchError::Failed))
    );
    assert_eq!(
        p.finish(&mut SliceBase(&base), &mut out),
        Err(Error::Patch(PatchError::Failed))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Random bytes, and valid patches with random bytes overwritten: any
    /// result is fine except a panic or output past the declared size.
    #[test]
    fn corrupted_range_coder_stream_never_panics(
        junk in prop::collection::vec(any::<u8>(), 0..400),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        out_size in 0u32..3000,
        chunk in 1usize..200,
    ) {
        let base: Vec<u8> = (0..2000u32).map(|i| (i * 13 / 5) as u8).collect();
        let h = header(&base, out_size);
        let (_, got) = apply(&h, &base, &junk, chunk);
        prop_assert!(got.len() <= out_size as usize);

        let mut new = base[200..1200].to_vec();
        new.extend_from_slice(&junk);
        new[10] ^= 3;
        let ops = [Op { seek: 200, add: 1000, extra: junk.len() as u32 }];
        let mut bytes = Vec::new();
        encode_body(&base, &new, &ops, |b| bytes.push(b)).unwrap();
        for (at, v) in flips {
            let i = at % bytes.len();
            bytes[i] ^= v | 1;
        }
        let h = header(&base, new.len() as u32);
        let (_, got) = apply(&h, &base, &bytes, chunk);
        prop_assert!(got.len() <= new.len());
    }
}
