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

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use keyway_audit::record::record_hash;
use keyway_audit::{AuditLog, Body, Config, Ed25519Signer, Event, LockMethod, Record, Time};
use libfuzzer_sys::fuzz_target;

const PAGE: usize = 512;
const PAGES: usize = 3;

/// Byte-written NOR with 512-byte pages that refuses to program a bit
/// back to 1 or to write a byte twice between erases.
struct Flash {
    cells: [u8; PAGE * PAGES],
    written: [bool; PAGE * PAGES],
}
impl ErrorType for Flash {
    type Error = NorFlashErrorKind;
}
impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NorFlashErrorKind> {
        let at = offset as usize;
        bytes.copy_from_slice(&self.cells[at..at + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        PAGE * PAGES
    }
}
impl NorFlash for Flash {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = PAGE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), NorFlashErrorKind> {
        let (from, to) = (from as usize, to as usize);
        assert!(from % PAGE == 0 && to % PAGE == 0 && from <= to && to <= PAGE * PAGES);
        self.cells[from..to].fill(0xFF);
        self.written[from..to].fill(false);
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), NorFlashErrorKind> {
        let at = offset as usize;
        for (i, &b) in bytes.iter().enumerate() {
            let c = &mut self.cells[at + i];
            if self.written[at + i] || *c & b != b {
                return Err(NorFlashErrorKind::Other);
            }
            *c = b;
            self.written[at + i] = true;
        }
        Ok(())
    }
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
    let mut flash = Flash { cells: [0xFF; PAGE * PAGES], written: [true; PAGE * PAGES] };
    for (c, b) in flash.cells.iter_mut().zip(bytes) {
        *c = *b;
    }
    // Bytes the input did not cover read erased and were never written.
    for (w, c) in flash.written.iter_mut().zip(flash.cells) {
        *w = c != 0xFF;
    }
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
