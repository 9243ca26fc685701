//! Upload throughput through a session against the plain (unencrypted)
//! path, measured side by side in one run (issue 12: ≥ 0.9×).
//!
//! The same 256 KiB goes to the agent as SMP image-upload chunks twice
//! per round: plain, in the presence window (what a stock MCUmgr tool
//! does today), and sealed in an owner's session (`Sealed`, id 15), each
//! chunk as large as its frame allows. Rounds alternate the two paths and
//! the medians are compared. Two figures:
//!
//! * CPU: the wall time of the whole exchange on this machine (client
//!   seal, agent `handle`, client open, for the sealed path; framing and
//!   `handle` for the plain one);
//! * on the air: the bytes each path sends per payload byte, with
//!   SMP frames of up to 2 KiB carried over a 244-byte-MTU BLE link at
//!   10,000 B/s and a 15 ms turnaround per answer (BENCHMARKS.md's model).
//!
//! `cargo bench -p keyway-agent --bench session_throughput`

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{Client, Harness, OWNER};
use keyway_agent::agent::{MAX_SEALED_REQUEST, Press};
use keyway_smp::{MAX_FRAME, Request, Version, img};

const TOTAL: usize = 256 * 1024;
const ROUNDS: usize = 9;

fn chunk(off: u64, total: u64, data: &[u8]) -> Request<'_> {
    Request::Upload(img::Upload {
        off,
        data,
        len: (off == 0).then_some(total),
        sha: (off == 0).then_some(&[7u8; 32][..]),
        image: (off == 0).then_some(0),
        upgrade: None,
        auth: None,
        kw: true,
    })
}

/// The most data a chunk at `off` carries in a frame of at most `limit`.
fn fit(off: u64, data: &[u8], limit: usize) -> usize {
    let mut buf = vec![0u8; MAX_FRAME * 2];
    let mut n = data.len().min(limit);
    while n > 0 {
        let len = chunk(off, TOTAL as u64, &data[..n])
            .frame(&mut buf, Version::V2, 0)
            .unwrap_or(usize::MAX);
        if len <= limit {
            return n;
        }
        n -= 1;
    }
    0
}

struct Run {
    time: Duration,
    frames: usize,
    bytes_on_air: usize,
}

fn upload(h: &mut Harness, owner: &mut Client, sealed: bool, data: &[u8]) -> Run {
    let limit = if sealed {
        MAX_SEALED_REQUEST
    } else {
        MAX_FRAME
    };
    let mut off = 0usize;
    let (mut frames, mut air) = (0, 0);
    let mut spent = Duration::ZERO;
    while off < TOTAL {
        let n = fit(off as u64, &data[off..], limit);
        assert!(n > 0);
        // The fake clock moves on so no limit is reached; the window is
        // re-opened as a person at the lock would hold it open.
        h.advance(150);
        if !sealed && frames % 200 == 0 {
            h.press(Press::Short);
        }
        let req = chunk(off as u64, TOTAL as u64, &data[off..off + n]);
        let t = Instant::now();
        let (sent, answer) = if sealed {
            let rec = h.seal(owner, &req);
            let outer = h.deliver(owner.peer, &rec);
            let inner = h.open(owner, &outer).expect("the sealed chunk is answered");
            assert!(inner.is_ok(), "sealed chunk at {off} refused");
            // The outer frame: SMP header, `{"rec": bstr}`, the record.
            (8 + 8 + rec.len(), outer.bytes.len())
        } else {
            let f = h.frame(&req);
            let r = h.send(OWNER, &req);
            assert!(r.is_ok(), "plain chunk at {off} refused: {:?}", r.rc());
            (f.len(), r.bytes.len())
        };
        spent += t.elapsed();
        frames += 1;
        air += sent + answer;
        off += n;
    }
    Run {
        time: spent,
        frames,
        bytes_on_air: air,
    }
}

/// Seconds on the modeled BLE link: every frame in 244-byte packets at
/// 10,000 B/s, plus 15 ms for each answer's turnaround.
fn ble_seconds(r: &Run) -> f64 {
    r.bytes_on_air as f64 / 10_000.0 + r.frames as f64 * 0.015
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let data: Vec<u8> = (0..TOTAL).map(|i| (i * 31 % 251) as u8).collect();
    let mut owner = Client::new(0x0a, OWNER);
    let mut h = Harness::with_owner(77, &mut owner);
    let (mut plain_t, mut sealed_t) = (Vec::new(), Vec::new());
    let (mut plain, mut sealed) = (None, None);
    for round in 0..ROUNDS {
        // Alternate which path goes first.
        for &s in if round % 2 == 0 {
            &[false, true]
        } else {
            &[true, false]
        } {
            let r = upload(&mut h, &mut owner, s, &data);
            if s {
                sealed_t.push(r.time);
                sealed = Some(r);
            } else {
                plain_t.push(r.time);
                plain = Some(r);
            }
        }
    }
    let (plain, sealed) = (plain.unwrap(), sealed.unwrap());
    let (pm, sm) = (median(plain_t), median(sealed_t));
    let mib = TOTAL as f64 / (1024.0 * 1024.0);
    println!(
        "session throughput: {ROUNDS} rounds of {} KiB each way, medians",
        TOTAL / 1024
    );
    for (label, run, t) in [("plain:", &plain, pm), ("sealed:", &sealed, sm)] {
        println!(
            "  {label:<7} {} frames, {:.1} ms CPU ({:.1} MiB/s), {} B on the air",
            run.frames,
            t.as_secs_f64() * 1e3,
            mib / t.as_secs_f64(),
            run.bytes_on_air
        );
    }
    println!(
        "  CPU throughput, sealed / plain: {:.3}x",
        pm.as_secs_f64() / sm.as_secs_f64()
    );
    println!(
        "  modeled BLE link: plain {:.2} s, sealed {:.2} s: sealed / plain throughput {:.3}x",
        ble_seconds(&plain),
        ble_seconds(&sealed),
        ble_seconds(&plain) / ble_seconds(&sealed)
    );
}
