//! Closed-form flash costs: the physical minimum of an install, and the
//! swap phase of MCUboot's swap-using-move and swap-using-scratch on the
//! same part and image.
//!
//! # The part
//!
//! [`Part`]: the slot sector size `S` (on the STM32F4, the 128 KiB sectors
//! the slots sit in), the write unit `w`, the erase time of one slot sector
//! `e` and the program time of one write unit `p`. A cost is
//! `erases × e + ceil(bytes / w) × p`. For an image of `L` bytes,
//! `n = ceil(L / S)` is the number of sectors it spans.
//!
//! # Physical minimum
//!
//! Writing the image once: erase its `n` sectors once and program its bytes
//! once, `n × e + ceil(L / w) × p`. Nothing real can do less.
//!
//! # MCUboot
//!
//! From MCUboot's `docs/design.md` (mcu-tools/mcuboot, read at commit
//! `2d4bacc3`, 2026-07-22; the older `00278cee` describes swap-scratch
//! the same way), sections "Swap using scratch",
//! "Swap using move (without using scratch)", "Image swapping", "Image
//! trailer" and "Swap status". Only the swap phase is counted (the
//! bootloader's work after the update was staged in the secondary slot),
//! as for Keyway's swap mode; the application's later `image_ok` write is
//! not. MCUboot copies only the sectors the image uses (design.md, "Image
//! swapping", second note), so both algorithms work on `n` sectors, and
//! copy whole sectors.
//!
//! * **swap-using-scratch** ("Image swapping", steps 2a–2i), per sector
//!   index from the last to the first: erase the scratch, copy secondary →
//!   scratch, status record (i); erase the secondary sector, copy primary →
//!   secondary, status (ii); erase the primary sector, copy scratch →
//!   primary, status (iii). With a one-sector scratch: `3n` sector erases
//!   plus the trailer sectors, `3n × S` bytes copied, the scratch erased `n`
//!   times (the most-worn sector; design.md: "the image/scratch ratio is
//!   the number of times the scratch will be erased on every upgrade").
//! * **swap-using-move** ("Swap using move"): move every used primary sector
//!   up by one (from the last down: erase sector `i + 1`, copy `i` → `i + 1`),
//!   then for `i` from 0: erase primary `i`, copy secondary `i` → primary
//!   `i`; erase secondary `i`, copy primary `i + 1` → secondary `i`. That is
//!   `3n` sector erases, `3n × S` bytes copied, and at most 2 erases of any
//!   sector (design.md: "two erase cycles on the primary slot and one on the
//!   secondary slot during each swap").
//! * **Status and trailer** (both, "Swap status", "Image trailer"): three
//!   swap-status records per sector index (`s = 3` for both algorithms),
//!   each one write unit; the trailer's magic (16 bytes), swap size (4
//!   bytes) and copy-done (1 byte), each rounded up to the write unit.
//!   Assumed (design.md does not count them): one erase each of the
//!   primary's and the secondary's trailer sector (the status area is
//!   initialised in the primary's trailer, the secondary's trailer is
//!   erased). MCUboot's real field alignment (`BOOT_MAX_ALIGN`) may pad
//!   these few bytes further; at most a few dozen bytes.
//!
//! No code of MCUboot is used: these are its documented algorithms, counted.

/// The part and slot sectors the costs are computed for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Part {
    /// The slot sector size in bytes.
    pub sector_size: u32,
    /// The write unit in bytes.
    pub write_size: u32,
    /// The erase time of one slot sector, in seconds.
    pub erase_s: f64,
    /// The program time of one write unit, in seconds.
    pub program_s: f64,
}

/// What an algorithm costs in flash work.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    /// The most erases any one sector receives.
    pub erases_per_sector_max: u32,
    /// Sector erases in all.
    pub erases_total: u64,
    /// Bytes programmed.
    pub bytes_written: u64,
    /// Modeled busy time in seconds.
    pub seconds: f64,
}

impl Part {
    /// Sectors an image of `len` bytes spans.
    pub fn sectors(&self, len: u64) -> u64 {
        len.div_ceil(u64::from(self.sector_size.max(1)))
    }

    /// `len` rounded up to the write unit.
    pub fn units(&self, len: u64) -> u64 {
        len.div_ceil(u64::from(self.write_size.max(1)))
    }

    fn cost(&self, erases_total: u64, erases_per_sector_max: u32, bytes: u64) -> Cost {
        Cost {
            erases_per_sector_max,
            erases_total,
            bytes_written: bytes,
            seconds: erases_total as f64 * self.erase_s + self.units(bytes) as f64 * self.program_s,
        }
    }

    /// Bytes of the trailer fields a swap writes: magic, swap size and
    /// copy-done, each rounded up to the write unit.
    fn trailer_bytes(&self) -> u64 {
        let w = u64::from(self.write_size.max(1));
        [16u64, 4, 1].iter().map(|&f| self.units(f) * w).sum()
    }

    /// Bytes of the `3n` swap-status records, one write unit each.
    fn status_bytes(&self, n: u64) -> u64 {
        3 * n * u64::from(self.write_size.max(1))
    }
}

/// The physical minimum: erase the image's sectors once, program its bytes
/// once.
pub fn physical_minimum(part: &Part, image_len: u64) -> Cost {
    let n = part.sectors(image_len);
    let bytes = part.units(image_len) * u64::from(part.write_size.max(1));
    part.cost(n, u32::from(n > 0), bytes)
}

/// MCUboot swap-using-move, swap phase (see the [module documentation](self)).
pub fn swap_move(part: &Part, image_len: u64) -> Cost {
    let n = part.sectors(image_len);
    let copied = 3 * n * u64::from(part.sector_size);
    let bytes = copied + part.status_bytes(n) + part.trailer_bytes();
    // Move: n erases (primary 1..=n); swap: 2n (primary 0..n, secondary
    // 0..n); two trailer sectors. Primary sectors 1..n get two.
    let max = if n >= 2 { 2 } else { 1 };
    part.cost(3 * n + 2, max, bytes)
}

/// MCUboot swap-using-scratch with a one-sector scratch, swap phase (see
/// the [module documentation](self)).
pub fn swap_scratch(part: &Part, image_len: u64) -> Cost {
    let n = part.sectors(image_len);
    let copied = 3 * n * u64::from(part.sector_size);
    let bytes = copied + part.status_bytes(n) + part.trailer_bytes();
    // Scratch n times, each used primary and secondary sector once, two
    // trailer sectors.
    let max = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    part.cost(3 * n + 2, max, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 KiB sectors, 4-byte writes, 10 ms per erase, 10 µs per write unit.
    const TINY: Part = Part {
        sector_size: 1024,
        write_size: 4,
        erase_s: 0.010,
        program_s: 0.000_010,
    };

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn physical_minimum_of_a_tiny_image() {
        // 2500 bytes: 3 sectors, 625 write units.
        let c = physical_minimum(&TINY, 2500);
        assert_eq!(
            (c.erases_total, c.erases_per_sector_max, c.bytes_written),
            (3, 1, 2500)
        );
        assert!(close(c.seconds, 3.0 * 0.010 + 625.0 * 0.000_010), "{c:?}");
        // A partial write unit is programmed whole.
        assert_eq!(physical_minimum(&TINY, 2501).bytes_written, 2504);
    }

    #[test]
    fn swap_move_of_a_tiny_image() {
        // n = 3: move 3 erases, swap 6, trailers 2 = 11; copies 3 × 3 × 1024
        // = 9216 bytes, 9 status records × 4 = 36, trailer 16 + 4 + 4 = 24.
        let c = swap_move(&TINY, 2500);
        assert_eq!(c.erases_total, 11);
        assert_eq!(c.erases_per_sector_max, 2);
        assert_eq!(c.bytes_written, 9216 + 36 + 24);
        assert!(close(c.seconds, 11.0 * 0.010 + (9276.0 / 4.0) * 0.000_010));
    }

    #[test]
    fn swap_scratch_of_a_tiny_image() {
        // Same erases and bytes; the scratch is erased once per sector.
        let c = swap_scratch(&TINY, 2500);
        assert_eq!(c.erases_total, 11);
        assert_eq!(c.erases_per_sector_max, 3);
        assert_eq!(c.bytes_written, 9276);
        assert!(close(c.seconds, swap_move(&TINY, 2500).seconds));
    }

    #[test]
    fn one_byte_writes_and_a_one_sector_image() {
        let part = Part {
            sector_size: 512,
            write_size: 1,
            erase_s: 0.004,
            program_s: 0.000_010,
        };
        // n = 1: 5 erases, 3 × 512 + 3 + 21 bytes.
        let m = swap_move(&part, 100);
        assert_eq!((m.erases_total, m.erases_per_sector_max), (5, 1));
        assert_eq!(m.bytes_written, 1536 + 3 + 21);
        let s = swap_scratch(&part, 100);
        assert_eq!((s.erases_total, s.erases_per_sector_max), (5, 1));
    }
}
