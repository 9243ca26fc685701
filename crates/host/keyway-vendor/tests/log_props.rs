//! Property tests of `keyway_vendor::log::verify`: any single tampering of an
//! intact export (wrapped, with checkpoints) is reported, never accepted;
//! and a lock whose flash is tampered with exports a log that fails too.

use std::sync::OnceLock;

use keyway_audit::record::MAX_RECORD_LEN;
use keyway_audit::{AuditLog, Config, Ed25519Signer, Record, Time};
use keyway_sim::Nrf52840Flash;
use keyway_vendor::keys::{Algorithm, PublicKey, SigningKey};
use keyway_vendor::log::{FindingKind, demo_event, demo_export, verify};
use proptest::prelude::*;

struct Fixture {
    key: PublicKey,
    signer: Ed25519Signer,
    records: Vec<Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let sk = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let SigningKey::Ed25519(k) = &sk else {
            unreachable!()
        };
        let signer = Ed25519Signer::from_seed(k.to_bytes()).unwrap();
        // 3 pages of 29 slots, 200 events: wrapped, checkpoints inside.
        let bytes = demo_export(&signer, 200, 3).unwrap();
        let mut records = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let (_, n) = Record::decode(&bytes[at..]).unwrap();
            records.push(bytes[at..at + n].to_vec());
            at += n;
        }
        Fixture {
            key: sk.public_key(),
            signer,
            records,
        }
    })
}

#[derive(Debug, Clone)]
enum Tamper {
    /// Remove records `from..from+len` (the head excluded).
    Delete { from: usize, len: usize },
    /// Swap two records.
    Swap { a: usize, b: usize },
    /// Change one record's RTC value (CRC recomputed).
    Modify { at: usize, delta: u64 },
    /// Insert a copy of record `src` with another RTC before `at`.
    Insert { src: usize, at: usize },
    /// Flip one bit anywhere in the file.
    Flip { byte: usize, bit: u8 },
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (0usize..1000, 1usize..6).prop_map(|(from, len)| Tamper::Delete { from, len }),
        (0usize..1000, 0usize..1000).prop_map(|(a, b)| Tamper::Swap { a, b }),
        (0usize..1000, 1u64..1000).prop_map(|(at, delta)| Tamper::Modify { at, delta }),
        (0usize..1000, 0usize..1000).prop_map(|(src, at)| Tamper::Insert { src, at }),
        (0usize..100_000, 0u8..8).prop_map(|(byte, bit)| Tamper::Flip { byte, bit }),
    ]
}

fn reencode(bytes: &[u8], f: impl FnOnce(&mut Record)) -> Vec<u8> {
    let mut r = Record::decode(bytes).unwrap().0;
    f(&mut r);
    let mut buf = [0u8; MAX_RECORD_LEN];
    let n = r.encode(&mut buf);
    buf[..n].to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_tampering_is_reported(t in tamper()) {
        let fx = fixture();
        let mut recs = fx.records.clone();
        let body = recs.len() - 1; // records before the head
        match t {
            Tamper::Delete { from, len } => {
                let from = from % body;
                let to = (from + len).min(body);
                recs.drain(from..to);
            }
            Tamper::Swap { a, b } => {
                let (a, b) = (a % body, b % body);
                prop_assume!(a != b);
                recs.swap(a, b);
            }
            Tamper::Modify { at, delta } => {
                let at = at % recs.len();
                recs[at] = reencode(&recs[at], |r| r.time.rtc = r.time.rtc.wrapping_add(delta));
            }
            Tamper::Insert { src, at } => {
                let fake = reencode(&recs[src % body], |r| r.time.rtc ^= 1);
                recs.insert(at % (body + 1), fake);
            }
            Tamper::Flip { byte, bit } => {
                let mut all = recs.concat();
                let byte = byte % all.len();
                all[byte] ^= 1 << bit;
                recs = vec![all];
            }
        }
        let report = verify(&recs.concat(), &fx.key);
        prop_assert!(!report.intact(), "{t:?} accepted");
    }
}

#[test]
fn the_untampered_fixture_verifies() {
    let fx = fixture();
    let report = verify(&fx.records.concat(), &fx.key);
    assert!(report.intact(), "{:?}", report.findings);
}

/// Builds a wrapped log on a simulated lock (4 pages) and returns the
/// flash, the log's config and how many events were appended.
fn lock_with_log(signer: &Ed25519Signer) -> (Nrf52840Flash, Config) {
    let mut flash = Nrf52840Flash::nrf52840();
    let config = Config::new(0x1_0000, 4);
    let mut log = AuditLog::open(&mut flash, config).unwrap();
    for i in 0..300 {
        let (t, e) = demo_event(i);
        log.append(&mut flash, signer, t, &e).unwrap();
    }
    (flash, config)
}

fn export_of(flash: &mut Nrf52840Flash, config: Config, signer: &Ed25519Signer) -> Vec<u8> {
    let log = AuditLog::open(flash, config).unwrap();
    let mut export = log.export(Time { rtc: 1, boot: 99 });
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = export.fill(&log, flash, signer, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn pages_erased_on_the_lock_beyond_rotation_are_detected() {
    let fx = fixture();
    let (mut flash, config) = lock_with_log(&fx.signer);
    let intact = export_of(&mut flash, config, &fx.signer);
    assert!(verify(&intact, &fx.key).intact());
    // The current page is the one after the newest record; the two pages
    // after it hold the oldest records. Erasing only the oldest is what
    // the lock itself may do next (its checkpoint is written): accepted.
    // Erasing the two oldest goes beyond the newest checkpoint: detected,
    // although the lock signs the export's head over what is left.
    let log = AuditLog::open(&mut flash, config).unwrap();
    let newest_page = (0..4u32)
        .find(|&p| {
            let from = 0x1_0000 + p * 4096;
            let bytes = &flash.as_bytes()[from as usize..from as usize + 4096];
            let want = log.next_seq() - 1;
            (0..29).any(|s| {
                Record::decode(&bytes[s * 140..(s + 1) * 140]).is_ok_and(|(r, _)| r.seq == want)
            })
        })
        .unwrap();
    let oldest = (newest_page + 1) % 4;
    let second = (newest_page + 2) % 4;
    let erase = |flash: &mut Nrf52840Flash, page: u32| {
        let from = 0x1_0000 + page * 4096;
        flash.erase(from, from + 4096).unwrap();
    };
    let mut one = flash.clone();
    erase(&mut one, oldest);
    let report = verify(&export_of(&mut one, config, &fx.signer), &fx.key);
    assert!(report.intact(), "{:?}", report.findings);

    let mut two = flash.clone();
    erase(&mut two, oldest);
    erase(&mut two, second);
    let report = verify(&export_of(&mut two, config, &fx.signer), &fx.key);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::Deleted && f.message.contains("newest checkpoint")),
        "{:?}",
        report.findings
    );
    // A page in the middle of the ring: a gap in the chain.
    let mut mid = flash.clone();
    erase(&mut mid, (newest_page + 3) % 4);
    let report = verify(&export_of(&mut mid, config, &fx.signer), &fx.key);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::Deleted),
        "{:?}",
        report.findings
    );
}
