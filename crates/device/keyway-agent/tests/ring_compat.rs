//! `keyway-ring` fits the two record rings that came before it (issue 16:
//! one shared ring): regions written by the state journal
//! (`keyway-device`) and the audit log (`keyway-audit`) are read slot for
//! slot through a `Ring` with the same layout, and every record the ring
//! finds decodes with its own format's decoder and CRC. So both can move
//! onto the ring without a byte of their on-flash formats changing.

use keyway_audit::record::{MAX_RECORD_LEN, Record};
use keyway_audit::{AuditLog, Event, Signer, Time};
use keyway_device::journal::{self, Journal, PersistentState, RECORD_LEN};
use keyway_ring::{CRC, Config, MAX_AREA, Ring, Slot};
use keyway_sim::SimFlash;

/// A signer whose signatures nobody checks here.
struct Unchecked;

impl Signer for Unchecked {
    fn public_key(&self) -> [u8; 32] {
        [7; 32]
    }
    fn sign(&self, _: &[u8]) -> [u8; 64] {
        [9; 64]
    }
}

fn journal_through_ring<const W: usize, const E: usize>(
    mut flash: SimFlash<W, E>,
    config: journal::Config,
    commits: u32,
) {
    let name = flash.geometry().name().to_owned();
    let mut j = Journal::open(&mut flash, config).unwrap();
    for i in 0..commits {
        let state = PersistentState {
            floor: Some(u64::from(i)),
            keyset_version: i,
            ..PersistentState::default()
        };
        j.commit(&mut flash, &state).unwrap();
    }
    let ring = Ring::new(&flash, config, RECORD_LEN, 1).unwrap();
    assert_eq!(ring.area() as usize, j.record_len(), "{name}");
    assert_eq!(ring.slots_per_page(), j.slots_per_page(), "{name}");
    let mut buf = [0u8; MAX_AREA];
    let (mut records, mut newest) = (0u32, None);
    for page in 0..ring.pages() {
        for slot in 0..ring.slots_per_page() {
            if let Slot::Written(b) = ring.read(&mut flash, page, slot, &mut buf).unwrap() {
                assert_eq!(&b[..4], b"KWJ1", "{name}: page {page} slot {slot}");
                let crc = u32::from_le_bytes(b[RECORD_LEN - 4..RECORD_LEN].try_into().unwrap());
                assert_eq!(CRC.checksum(&b[..RECORD_LEN - 4]), crc, "{name}");
                PersistentState::decode(&b[12..RECORD_LEN - 4]).unwrap();
                let seq = u32::from_le_bytes(b[4..8].try_into().unwrap());
                newest = newest.max(Some(seq));
                records += 1;
            }
        }
    }
    assert_eq!(newest, j.sequence(), "{name}");
    // The last page turn left a whole page and the current page's records.
    let per_page = j.slots_per_page();
    assert_eq!(
        records,
        per_page * (config.pages - 1) + (commits - 1) % per_page + 1,
        "{name}"
    );
    println!("journal ({name}): {records} records read through the ring");
}

#[test]
fn the_state_journal_reads_through_the_ring() {
    journal_through_ring(
        SimFlash::<4, 4096>::nrf52840(),
        journal::Config::new(0xF_0000, 2),
        120,
    );
    journal_through_ring(
        SimFlash::<4, 4096>::nrf52840(),
        journal::Config::new(0xE_0000, 3).with_slot_size(1000),
        30,
    );
    journal_through_ring(
        SimFlash::<32, 131072>::ecc32(),
        journal::Config::new(0xC_0000, 2),
        3000,
    );
}

#[test]
fn the_audit_log_reads_through_the_ring() {
    let mut flash = SimFlash::<4, 4096>::nrf52840();
    let config = keyway_audit::Config::new(0xF_0000, 3);
    let mut log = AuditLog::open(&mut flash, config).unwrap();
    for i in 0..200u32 {
        let time = Time {
            rtc: u64::from(i),
            boot: 1,
        };
        let event = Event::OwnerPaired {
            owner: [i as u8; 8],
        };
        log.append(&mut flash, &Unchecked, time, &event).unwrap();
    }
    let ring = Ring::new(&flash, Config::new(0xF_0000, 3), MAX_RECORD_LEN, 3).unwrap();
    assert_eq!(ring.stride(), log.stride());
    assert_eq!(ring.slots_per_page(), log.slots_per_page());
    let mut buf = [0u8; MAX_AREA];
    let mut newest = None;
    let mut records = 0;
    for page in 0..ring.pages() {
        for slot in 0..ring.slots_per_page() {
            if let Slot::Written(b) = ring.read(&mut flash, page, slot, &mut buf).unwrap() {
                let (r, _) = Record::decode(b).unwrap();
                newest = newest.max(Some(r.seq));
                records += 1;
            }
        }
    }
    assert_eq!(newest, Some(log.next_seq() - 1));
    println!("audit log: {records} records read through the ring");
}
