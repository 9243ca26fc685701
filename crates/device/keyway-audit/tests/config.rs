//! Configuration errors and the end of the sequence space: errors name
//! what is wrong, nothing panics.

mod common;

use common::{device_key, step};
use keyway_audit::record::MAX_RECORD_LEN;
use keyway_audit::{AuditLog, Body, Config, ConfigError, Error, Record, Time};
use keyway_sim::SimFlash;

#[test]
fn bad_regions_are_refused_by_name() {
    let mut flash = SimFlash::<4, 4096>::nrf52840();
    let open = |flash: &mut SimFlash<4, 4096>, c: Config| AuditLog::open(flash, c).map(|_| ());
    assert_eq!(
        open(&mut flash, Config::new(100, 2)),
        Err(Error::Config(ConfigError::OffsetNotAligned {
            offset: 100,
            erase_size: 4096
        }))
    );
    assert_eq!(
        open(&mut flash, Config::new(0, 1)),
        Err(Error::Config(ConfigError::TooFewPages { pages: 1 }))
    );
    assert_eq!(
        open(&mut flash, Config::new(0xFF000, 2)),
        Err(Error::Config(ConfigError::OutOfBounds {
            end: 0x10_1000,
            capacity: 0x10_0000
        }))
    );
    let msg = open(&mut flash, Config::new(0, 1)).unwrap_err().to_string();
    assert!(msg.contains("TooFewPages"), "{msg}");
    // A fresh region opens empty.
    let log = AuditLog::open(&mut flash, Config::new(0, 2)).unwrap();
    assert_eq!((log.next_seq(), *log.head()), (0, [0; 32]));
    assert_eq!((log.stride(), log.slots_per_page()), (140, 29));
}

#[test]
fn pages_too_small_for_three_records_are_refused() {
    // 256-byte sectors hold one 140-byte slot.
    let geometry = keyway_sim::Geometry::custom(256, 64, 1, 1.0, 10.0).unwrap();
    let mut flash = SimFlash::<1, 256>::new(geometry).unwrap();
    assert_eq!(
        AuditLog::open(&mut flash, Config::new(0, 4)).map(|_| ()),
        Err(Error::Config(ConfigError::PageTooSmall {
            page_size: 256,
            stride: 140,
            min_slots: 3
        }))
    );
}

#[test]
fn the_sequence_space_ends_with_an_error_not_a_wrap() {
    // A log whose newest record is u32::MAX - 3 (written directly).
    let mut flash = SimFlash::<4, 4096>::nrf52840();
    let (t, e) = step(0);
    let mut buf = [0xFFu8; 144];
    let n = Record {
        seq: u32::MAX - 3,
        time: t,
        prev: [9; 32],
        body: Body::Event(e),
    }
    .encode((&mut buf[..MAX_RECORD_LEN]).try_into().unwrap());
    flash.write(0, &buf[..n.div_ceil(4) * 4]).unwrap();
    let config = Config::new(0, 2);
    let mut log = AuditLog::open(&mut flash, config).unwrap();
    assert_eq!(log.next_seq(), u32::MAX - 2);
    let key = device_key();
    let time = Time { rtc: 1, boot: 1 };
    assert_eq!(log.append(&mut flash, &key, time, &e), Ok(u32::MAX - 2));
    assert_eq!(
        log.append(&mut flash, &key, time, &e),
        Err(Error::SequenceExhausted)
    );
    // Reopened, it stays closed.
    let mut log = AuditLog::open(&mut flash, config).unwrap();
    assert_eq!(
        log.append(&mut flash, &key, time, &e),
        Err(Error::SequenceExhausted)
    );
}
