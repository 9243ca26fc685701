//! Round trips and page turns on every geometry preset, with the costs
//! read from the simulator's counters.

mod common;

use std::time::Duration;

use common::scripted;
use keyway_device::journal::{
    Config, ConfigError, FlashOp, Journal, JournalError, PersistentState, RECORD_LEN, TrialState,
};
use keyway_sim::{Geometry, GeometrySpec, SectorRun, SimFlash};
use keyway_testkit::geometry::Part;

/// Commits `rounds` full cycles of the region, reopening now and then,
/// and checks the state, the write and erase costs and the wear spread.
fn wrap_around<const W: usize, const E: usize>(
    mut flash: SimFlash<W, E>,
    config: Config,
    rounds: u32,
) {
    let name = flash.geometry().name().to_owned();
    let first_sector = flash
        .geometry()
        .sector_at(config.offset)
        .expect("region inside the flash")
        .index;
    let mut journal = Journal::open(&mut flash, config).expect("fresh region opens");
    assert_eq!(*journal.state(), PersistentState::default());
    assert_eq!(journal.sequence(), None);
    let record_len = journal.record_len();
    assert_eq!(record_len, RECORD_LEN.div_ceil(W) * W, "{name}");
    let slots = journal.slots_per_page();
    let pages = journal.pages();
    let total = slots * pages * rounds + slots / 2;
    flash.reset_stats();
    for i in 0..total {
        let state = scripted(i);
        let before = flash.stats().clone();
        journal.commit(&mut flash, &state).unwrap();
        let after = flash.stats();
        assert_eq!(
            after.write_ops - before.write_ops,
            1,
            "{name} commit {i}: one write"
        );
        assert_eq!(
            after.bytes_written - before.bytes_written,
            record_len as u64,
            "{name} commit {i}: the padded record"
        );
        // A fresh region needs no erase; then one erase per page turn.
        let turns_page = i > 0 && i.is_multiple_of(slots);
        assert_eq!(
            after.erase_ops - before.erase_ops,
            u64::from(turns_page),
            "{name} commit {i}: erase only on a page turn"
        );
        assert_eq!(*journal.state(), state);
        assert_eq!(journal.sequence(), Some(i));
        if i % 97 == 13 || i + 1 == total {
            journal = Journal::open(&mut flash, config).unwrap();
            assert_eq!(*journal.state(), state, "{name}: reopen after commit {i}");
            assert_eq!(journal.sequence(), Some(i));
        }
    }
    // Erases per page: (total - 1) / slots page turns, spread in turn.
    let erases: Vec<u32> = (0..pages as usize)
        .map(|p| flash.erase_count(first_sector + p))
        .collect();
    let turns = (total - 1) / slots;
    assert_eq!(erases.iter().sum::<u32>(), turns, "{name}: {erases:?}");
    let (lo, hi) = (erases.iter().min().unwrap(), erases.iter().max().unwrap());
    assert!(hi - lo <= 1, "{name}: uneven wear {erases:?}");
    // No word of the region was ever programmed twice between erases.
    for at in (config.offset..config.offset + pages * E as u32).step_by(W) {
        assert!(flash.writes_at(at) <= 1, "{name}: word {at:#x} rewritten");
    }
    println!(
        "{name}: {total} commits, {slots} slots/page × {pages} pages, record {record_len} B, erases per page {erases:?}"
    );
}

/// [`wrap_around`] on one row of the geometry table, for each journal
/// region (and rounds) this file runs on that part.
fn wrap_around_on<const W: usize, const E: usize>(part: &Part<W, E>) {
    let runs = match part.name {
        "nrf52840" => vec![
            (Config::new(0xF_0000, 2), 6),
            (Config::new(0xE_0000, 3), 4),
            // Sparse slots.
            (Config::new(0, 4).with_slot_size(1000), 25),
        ],
        // The journal lives in two of the 16 KiB sectors.
        "stm32f4" => vec![(Config::new(0x8000, 2), 4)],
        "small-pages" => vec![(Config::new(0x1000, 2), 40), (Config::new(0x1000, 5), 20)],
        _ => vec![
            (Config::new(0xC_0000, 2), 3),
            // Sparse slots.
            (Config::new(0x2_0000, 2).with_slot_size(8192), 25),
        ],
    };
    for (config, rounds) in runs {
        wrap_around(part.flash(), config, rounds);
    }
}

// The tests wrap_around::{nrf52840, stm32f4, small_pages, ecc32}.
keyway_testkit::per_geometry!(wrap_around => wrap_around_on);

#[test]
fn zero_erased_flash() {
    let geometry = Geometry::new(GeometrySpec {
        name: "zero-erased".into(),
        sectors: vec![SectorRun {
            count: 8,
            size: 1024,
            erase_time: Duration::from_millis(5),
        }],
        write_size: 8,
        read_size: 1,
        erased: 0x00,
        program_time: Duration::from_micros(10),
        max_writes_per_unit: Some(1),
        ecc: false,
    })
    .unwrap();
    let flash = SimFlash::<8, 1024>::new(geometry).unwrap();
    wrap_around(flash, Config::new(2048, 2).with_erased_value(0x00), 10);
}

#[test]
fn garbage_region_opens_fresh_and_is_erased_before_use() {
    let geometry = Geometry::small_pages();
    let mut image = vec![0xFF; geometry.capacity() as usize];
    let mut x = 0x1234_5678u32;
    for b in &mut image[0x400..0x800] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let mut flash = SimFlash::<1, 512>::from_bytes(geometry, image).unwrap();
    let config = Config::new(0x400, 2);
    let mut journal = Journal::open(&mut flash, config).unwrap();
    assert_eq!(*journal.state(), PersistentState::default());
    let s = scripted(5);
    journal.commit(&mut flash, &s).unwrap();
    assert_eq!(
        flash.stats().erase_ops,
        1,
        "page 0 erased before the first record"
    );
    assert_eq!(*Journal::open(&mut flash, config).unwrap().state(), s);
}

#[test]
fn configuration_is_validated() {
    let mut flash = SimFlash::<4, 4096>::nrf52840();
    let open = |flash: &mut SimFlash<4, 4096>, c| Journal::open(flash, c).map(|_| ()).unwrap_err();
    assert_eq!(
        open(&mut flash, Config::new(100, 2)),
        JournalError::Config(ConfigError::OffsetNotAligned {
            offset: 100,
            erase_size: 4096
        })
    );
    assert_eq!(
        open(&mut flash, Config::new(0, 1)),
        JournalError::Config(ConfigError::TooFewPages { pages: 1 })
    );
    assert_eq!(
        open(&mut flash, Config::new(0xFF000, 2)),
        JournalError::Config(ConfigError::OutOfBounds {
            end: 0x101000,
            capacity: 0x100000
        })
    );
    for slot_size in [70, 78, 8192] {
        assert_eq!(
            open(&mut flash, Config::new(0, 2).with_slot_size(slot_size)),
            JournalError::Config(ConfigError::BadSlotSize {
                slot_size,
                record_len: 84
            })
        );
    }
    // An invalid state is refused before anything is written.
    let mut journal = Journal::open(&mut flash, Config::new(0, 2)).unwrap();
    let bad = PersistentState {
        trial: TrialState::Pending { slot: 2 },
        ..PersistentState::default()
    };
    assert_eq!(
        journal.commit(&mut flash, &bad),
        Err(JournalError::InvalidState)
    );
    assert_eq!(flash.ops(), 0);
}

#[test]
fn flash_errors_name_the_operation_and_offset() {
    // The stm32f4 region starts in the 16 KiB sectors but its second page
    // would be half of the 64 KiB sector: the erase is refused by the part.
    let mut flash = SimFlash::<4, 16384>::stm32f4();
    let config = Config::new(0xC000, 2).with_slot_size(8192);
    let mut journal = Journal::open(&mut flash, config).unwrap();
    journal.commit(&mut flash, &scripted(1)).unwrap();
    journal.commit(&mut flash, &scripted(2)).unwrap();
    match journal.commit(&mut flash, &scripted(3)) {
        Err(JournalError::Flash {
            op: FlashOp::Erase,
            offset: 0x10000,
            ..
        }) => {}
        other => panic!("expected an erase error at 0x10000, got {other:?}"),
    }
    // The state is unchanged and still on flash.
    assert_eq!(*journal.state(), scripted(2));
    assert_eq!(
        *Journal::open(&mut flash, config).unwrap().state(),
        scripted(2)
    );
}
