//! Fuzzes the audit log: the record decoder on arbitrary bytes, and the
//! log itself on a flash whose contents are arbitrary (an attacker or a
//! failing part wrote them). The first byte picks the mode.
//!
//! Invariants checked on arbitrary flash contents: `open` never panics;
//! `append` never programs a byte twice (the flash model refuses it, so an
//! append must succeed); the export ends with the appended events, with
//! consecutive sequence numbers, each `prev` the hash of the record before,
//! and a head over the last one.
#![no_main]

use std::time::Duration;

use keyway_audit::record::record_hash;
use keyway_audit::{AuditLog, Body, Config, Ed25519Signer, Event, LockMethod, Record, Time};
use keyway_sim::{Geometry, GeometrySpec, SectorRun, SimFlash};
use libfuzzer_sys::fuzz_target;

const PAGE: usize = 512;
const PAGES: usize = 3;

/// Byte-written NOR with 512-byte pages that refuses to program a bit
/// back to 1 or to write a byte twice between erases.
fn geometry() -> Geometry {
    Geometry::new(GeometrySpec {
        name: "fuzz-audit".into(),
        sectors: vec![SectorRun { count: PAGES as u32, size: PAGE as u32, erase_time: Duration::ZERO }],
        write_size: 1,
        read_size: 1,
        erased: 0xFF,
        program_time: Duration::ZERO,
        max_writes_per_unit: Some(1),
        ecc: false,
    })
    .unwrap()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let mut at = 0;
        while at < bytes.len() {
            match Record::decode(&bytes[at..]) {
                Ok((_, n)) => at += n,
                Err(_) => at += 1,
            }
        }
        let _ = Event::decode(bytes);
        return;
    }
    let mut image = vec![0xFF; PAGE * PAGES];
    for (c, b) in image.iter_mut().zip(bytes) {
        *c = *b;
    }
    // Bytes the input did not cover read erased; a byte that reads erased
    // was never written, any other counts as written once.
    let mut flash = SimFlash::<1, PAGE>::from_bytes(geometry(), image).unwrap();
    let config = Config::new(0, PAGES as u32);
    let signer = Ed25519Signer::from_seed([7; 32]).unwrap();
    let mut log = AuditLog::open(&mut flash, config).expect("open on any contents");
    let events = [
        Event::Locked { method: LockMethod::Keypad },
        Event::FactoryReset,
        Event::PinFailed { consecutive: 9 },
        Event::Unlocked { method: LockMethod::MechanicalKey },
    ];
    let mut seqs = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let t = Time { rtc: i as u64, boot: 1 };
        match log.append(&mut flash, &signer, t, e) {
            Ok(seq) => seqs.push(seq),
            Err(keyway_audit::Error::SequenceExhausted) => return,
            Err(err) => panic!("append {i} on fuzzed flash: {err:?}"),
        }
    }
    let mut export = log.export(Time { rtc: 99, boot: 2 });
    let mut out = Vec::new();
    let mut buf = [0u8; 37];
    loop {
        let n = export.fill(&log, &mut flash, &signer, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let mut records = Vec::new();
    let mut at = 0;
    while at < out.len() {
        let (r, n) = Record::decode(&out[at..]).expect("export decodes");
        records.push((r, record_hash(&out[at..at + n])));
        at += n;
    }
    let (head, _) = records.pop().expect("a head");
    assert!(matches!(head.body, Body::ExportHead(_)));
    // The appended events are the export's last events (checkpoints may sit
    // between them), with the sequence numbers append returned; from the
    // first of them on, the records are consecutive and chained.
    let ours: Vec<&Record> = records
        .iter()
        .map(|(r, _)| r)
        .filter(|r| matches!(r.body, Body::Event(_)))
        .collect();
    let tail = &ours[ours.len() - events.len()..];
    for (k, (r, e)) in tail.iter().zip(&events).enumerate() {
        assert_eq!(r.body, Body::Event(*e));
        assert_eq!(r.seq, seqs[k]);
    }
    for w in records.windows(2) {
        let ((a, ha), (b, _)) = (&w[0], &w[1]);
        if b.seq > seqs[0] {
            assert_eq!(b.seq, a.seq + 1);
            assert_eq!(b.prev, *ha);
        }
    }
    assert_eq!(head.prev, records.last().unwrap().1);
});
