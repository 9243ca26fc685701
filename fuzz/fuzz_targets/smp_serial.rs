//! Fuzzes keyway-smp's serial transport decoder (`keyway_smp::serial`),
//! the bytes a lock's UART takes from anyone on the wire: console noise,
//! cut lines, bad base64, lying lengths, bad CRCs.
//!
//! The first byte picks the receive buffer's size (so declared lengths
//! both fit and overflow it); the rest is pushed byte by byte into one
//! decoder and, through `feed`, into another.
//!
//! Invariants: nothing panics; both ways of feeding yield the same
//! packets and errors; every packet fits the buffer and re-encodes into
//! lines of at most 127 bytes that decode to the same packet.
#![no_main]

use keyway_smp::serial::{Decoder, MAX_LINE, encode, encoded_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&size, input)) = data.split_first() else {
        return;
    };
    let cap = usize::from(size) * 8 + 3;
    let mut buf = vec![0u8; cap];
    let mut dec = Decoder::new(&mut buf);
    let mut by_byte = Vec::new();
    for &b in input {
        match dec.push(b) {
            Ok(Some(p)) => {
                assert!(p.len() + 2 <= cap);
                by_byte.push(Ok(p.to_vec()));
            }
            Ok(None) => {}
            Err(e) => by_byte.push(Err(e)),
        }
    }

    let mut buf2 = vec![0u8; cap];
    let mut dec2 = Decoder::new(&mut buf2);
    let mut by_feed = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (n, r) = dec2.feed(rest);
        assert!(n >= 1 && n <= rest.len());
        match r {
            Ok(Some(p)) => by_feed.push(Ok(p.to_vec())),
            Ok(None) => {}
            Err(e) => by_feed.push(Err(e)),
        }
        rest = &rest[n..];
    }
    assert_eq!(by_byte, by_feed);

    for p in by_byte.into_iter().flatten() {
        let mut lines = vec![0u8; encoded_len(p.len())];
        let n = encode(&p, &mut lines).expect("a decoded packet re-encodes");
        assert!(lines[..n].split_inclusive(|&b| b == b'\n').all(|l| l.len() <= MAX_LINE));
        let mut buf3 = vec![0u8; cap];
        let mut dec3 = Decoder::new(&mut buf3);
        let (_, r) = dec3.feed(&lines[..n]);
        assert_eq!(r, Ok(Some(&p[..])));
    }
});
