//! Fuzzes keyway-smp, the lock's protocol codec, with arbitrary frames:
//! the request splitter and every request decoder (the lock's side), and
//! the response decoders (the client's side). The first byte picks the
//! side.
//!
//! Invariants: nothing panics; a request that decodes re-encodes into a
//! frame that decodes to the same request (the codec round-trips), and
//! that frame is never longer than `MAX_FRAME`.
#![no_main]

use keyway_smp::header::split_request;
use keyway_smp::{MAX_BODY, MAX_FRAME, Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, frame)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Ok((h, body)) = split_request(frame, MAX_BODY) else {
            return;
        };
        let Ok(req) = Request::decode(h.op, h.group, h.id, body) else {
            return;
        };
        let mut out = [0u8; MAX_FRAME];
        let n = req
            .frame(&mut out, h.smp_version(), h.seq)
            .expect("a decoded request re-encodes within MAX_FRAME");
        assert!(n <= MAX_FRAME);
        let (h2, body2) = split_request(&out[..n], MAX_BODY).expect("re-encoded frame splits");
        let again = Request::decode(h2.op, h2.group, h2.id, body2).expect("re-encoded request decodes");
        assert_eq!(again, req, "the codec round-trips");
    } else if frame.len() >= 4 {
        // A response body for an arbitrary (op, group, id).
        let op = if frame[0] & 1 == 0 {
            keyway_smp::Op::Read
        } else {
            keyway_smp::Op::Write
        };
        let group = [0u16, 1, 64][usize::from(frame[1] % 3)];
        let _ = Response::decode(op, group, frame[2] % 20, &frame[3..]);
    }
});
