//! Round trips through the encoder and the streaming decoder, and the
//! decoder's fixed RAM.

mod common;

use common::{apply, header};
use keyway_delta::{Op, Patcher, encode::encode_body};
use proptest::prelude::*;

#[test]
fn patcher_fits_in_8_kib() {
    let size = core::mem::size_of::<Patcher>();
    println!("size_of::<Patcher>() = {size} bytes");
    assert!(
        size <= 8 * 1024,
        "the patcher takes {size} bytes, over the 8 KiB budget"
    );
}

fn encode(base: &[u8], new: &[u8], ops: &[Op]) -> Vec<u8> {
    let mut body = Vec::new();
    encode_body(base, new, ops, |b| body.push(b)).expect("valid ops");
    body
}

#[test]
fn empty_output_round_trips() {
    let base = b"some base".to_vec();
    let body = encode(&base, &[], &[]);
    let (r, got) = apply(&header(&base, 0), &base, &body, 3);
    r.unwrap();
    assert!(got.is_empty());
}

#[test]
fn long_runs_round_trip() {
    // Longer than the buffers, with seeks back and forth.
    let base: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 300) as u8).collect();
    let mut new = base[5_000..12_000].to_vec();
    new.extend((0..3_000u32).map(|i| (i % 251) as u8));
    new.extend_from_slice(&base[0..4_000]);
    for b in new.iter_mut().step_by(97) {
        *b = b.wrapping_add(0x40);
    }
    let ops = [
        Op {
            seek: 5_000,
            add: 7_000,
            extra: 3_000,
        },
        Op {
            seek: -12_000,
            add: 4_000,
            extra: 0,
        },
    ];
    let body = encode(&base, &new, &ops);
    for chunk in [1, 7, 40, 244, 4096, body.len()] {
        let (r, got) = apply(&header(&base, new.len() as u32), &base, &body, chunk);
        r.unwrap();
        assert_eq!(got, new, "chunk {chunk}");
    }
}

#[test]
fn encoder_refuses_ops_that_do_not_fit() {
    let base = [1u8; 10];
    let new = [1u8; 10];
    let e = |ops: &[Op]| encode_body(&base, &new, ops, |_| {}).unwrap_err();
    use keyway_delta::encode::EncodeError::*;
    assert_eq!(
        e(&[Op {
            seek: 1,
            add: 10,
            extra: 0
        }]),
        OutOfBase { index: 0 }
    );
    assert_eq!(
        e(&[Op {
            seek: -1,
            add: 10,
            extra: 0
        }]),
        OutOfBase { index: 0 }
    );
    assert_eq!(
        e(&[Op {
            seek: 0,
            add: 5,
            extra: 0
        }]),
        WrongLength { index: 1 }
    );
    assert_eq!(
        e(&[Op {
            seek: 0,
            add: 0,
            extra: 0
        }]),
        Empty { index: 0 }
    );
    assert_eq!(
        e(&[Op {
            seek: 0,
            add: 6,
            extra: 6
        }]),
        WrongLength { index: 0 }
    );
}

/// A base and valid ops over it, with the new image they produce.
fn case() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, Vec<Op>)> {
    (
        prop::collection::vec(any::<u8>(), 0..1500),
        prop::collection::vec((any::<u32>(), 0u32..600, 0u32..80, any::<u64>()), 0..12),
    )
        .prop_map(|(base, raw)| {
            let (mut new, mut ops, mut cursor) = (Vec::new(), Vec::new(), 0i64);
            for (pos, add, extra, seed) in raw {
                let pos = (pos as usize % (base.len() + 1)) as i64;
                let add = add.min((base.len() as i64 - pos) as u32);
                let extra = if add + extra == 0 { 1 } else { extra };
                let mut x = seed;
                for i in 0..add as usize {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let d = if (x >> 60) == 0 { (x >> 32) as u8 } else { 0 };
                    new.push(base[pos as usize + i].wrapping_add(d));
                }
                for _ in 0..extra {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    new.push((x >> 40) as u8);
                }
                ops.push(Op {
                    seek: pos - cursor,
                    add,
                    extra,
                });
                cursor = pos + i64::from(add);
            }
            (base, new, ops)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_ops_round_trip((base, new, ops) in case(), chunk in 1usize..300) {
        let body = encode(&base, &new, &ops);
        let (r, got) = apply(&header(&base, new.len() as u32), &base, &body, chunk);
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(got, new);
    }
}
