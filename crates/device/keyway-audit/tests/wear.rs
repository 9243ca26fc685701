//! Wear and append cost, measured on the simulator's counters.

mod common;

use common::{check_export, device_key, export, full_sweep, step};
use keyway_audit::record::MAX_RECORD_LEN;
use keyway_audit::{AuditLog, Config, Record, Time};
use keyway_sim::SimFlash;

/// Appends on a 32 KiB log area (8 × 4 KiB nRF52840 pages): erases per
/// page must differ by at most one. 100k appends in CI; 1M with
/// `KEYWAY_FULL_SWEEP=1` (BENCHMARKS.md records that run).
#[test]
fn wear_is_spread_evenly_over_the_ring() {
    let appends: u32 = if full_sweep() { 1_000_000 } else { 100_000 };
    let mut flash = SimFlash::<4, 4096>::nrf52840();
    let offset = 0x2_0000u32;
    let config = Config::new(offset, 8);
    let log = common::log_with(&mut flash, config, (0..appends).map(step));
    let first = (offset / 4096) as usize;
    let per_page = &flash.erase_counts()[first..first + 8];
    let (min, max) = (
        *per_page.iter().min().unwrap(),
        *per_page.iter().max().unwrap(),
    );
    let total: u64 = per_page.iter().map(|&c| u64::from(c)).sum();
    let checkpoints = log.next_seq() - appends;
    println!(
        "audit wear: {appends} appends on 8 x 4 KiB pages ({} slots of {} bytes per page): \
         {total} erases, per page min {min} max {max} {per_page:?}; {checkpoints} checkpoints; \
         {} bytes written; modeled flash time {:.1} s",
        log.slots_per_page(),
        log.stride(),
        flash.bytes_written(),
        flash.modeled_time().as_secs_f64()
    );
    assert!(max - min <= 1, "uneven wear: {per_page:?}");
    // Nothing outside the log area was touched.
    assert_eq!(
        flash
            .erase_counts()
            .iter()
            .map(|&c| u64::from(c))
            .sum::<u64>(),
        total
    );
    // At most one erase per filled page: the first pass erases nothing.
    let pages_filled = u64::from(log.next_seq()) / u64::from(log.slots_per_page());
    assert!(
        total <= pages_filled,
        "{total} erases for {pages_filled} filled pages"
    );
    // The log still verifies after all that wrapping.
    let bytes = export(&log, &mut flash, 1024, Time::default());
    let records = check_export(&bytes).unwrap();
    assert_eq!(records.last().unwrap().seq, log.next_seq() - 1);
}

/// One append is one write of exactly the record's length rounded up to
/// the write size (never the rest of the slot or page), and no erase;
/// a page turn adds one erase (only once the ring has wrapped) and a
/// checkpoint write.
#[test]
fn append_costs_one_write_of_its_size_and_erases_only_at_page_turns() {
    fn check<const W: usize, const E: usize>(mut flash: SimFlash<W, E>, config: Config, n: u32) {
        let name = flash.geometry().name().to_owned();
        let mut log = AuditLog::open(&mut flash, config).unwrap();
        let key = device_key();
        let (mut events, mut checkpoints, mut erases) = (0u64, 0u64, 0u64);
        for i in 0..n {
            let (t, e) = step(i);
            let before = flash.stats().clone();
            let seq_before = log.next_seq();
            log.append(&mut flash, &key, t, &e).unwrap();
            let after = flash.stats();
            let records = u64::from(log.next_seq() - seq_before);
            let writes = after.write_ops - before.write_ops;
            let erased = after.erase_ops - before.erase_ops;
            let bytes = after.bytes_written - before.bytes_written;
            // The event's own bytes, padded to the write size.
            let mut buf = [0u8; MAX_RECORD_LEN];
            let len = Record {
                seq: 0,
                time: t,
                prev: [0; 32],
                body: keyway_audit::Body::Event(e),
            }
            .encode(&mut buf);
            let event_bytes = len.div_ceil(W) * W;
            assert_eq!(writes, records, "{name}: append {i}: one write per record");
            if records == 1 {
                assert_eq!(bytes, event_bytes as u64, "{name}: append {i}");
            } else {
                // A checkpoint (140 bytes padded) was written first.
                assert_eq!(records, 2, "{name}: append {i}");
                assert_eq!(bytes, (event_bytes + MAX_RECORD_LEN.div_ceil(W) * W) as u64);
                checkpoints += 1;
            }
            assert!(erased <= 1, "{name}: append {i} erased {erased} pages");
            erases += erased;
            events += 1;
        }
        let turns = u64::from(log.next_seq()) / u64::from(log.slots_per_page());
        assert!(
            erases <= turns,
            "{name}: {erases} erases for {turns} page turns"
        );
        println!(
            "audit append cost ({name}): {events} appends, one write each of the record's \
             padded size ({}..{} bytes), {checkpoints} checkpoints, {erases} erases for \
             {turns} filled pages",
            (keyway_audit::record::MIN_RECORD_LEN).div_ceil(W) * W,
            (keyway_audit::record::HEADER_LEN + keyway_audit::event::MAX_EVENT_LEN + 4).div_ceil(W)
                * W
        );
    }
    check(
        SimFlash::<4, 4096>::nrf52840(),
        Config::new(0x2_0000, 8),
        2000,
    );
    check(
        SimFlash::<1, 512>::small_pages(),
        Config::new(0x1_0000, 4),
        200,
    );
    check(
        SimFlash::<32, 131072>::ecc32(),
        Config::new(0x2_0000, 2),
        3000,
    );
}
