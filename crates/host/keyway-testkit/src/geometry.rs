//! The flash geometries the power-cut sweeps iterate: one row per part,
//! after MCUboot's simulator (`sim_test!` runs every test on every row of
//! its device table).
//!
//! A part's write and erase sizes are const parameters of
//! [`SimFlash`], so the rows are not one type: each row is a
//! [`Part<W, E>`] constant, and a sweep is a function generic over them:
//!
//! ```
//! use keyway_testkit::geometry::{Part, EachPart, each_part};
//!
//! fn sweep<const W: usize, const E: usize>(part: &Part<W, E>) -> u64 {
//!     let flash = part.flash();
//!     assert_eq!(flash.geometry().name(), part.name);
//!     1
//! }
//!
//! // Every part in one test:
//! struct All(u64);
//! impl EachPart for All {
//!     fn part<const W: usize, const E: usize>(&mut self, part: &Part<W, E>) {
//!         self.0 += sweep(part);
//!     }
//! }
//! let mut all = All(0);
//! each_part(&mut all);
//! assert_eq!(all.0, 4);
//! ```
//!
//! or one `#[test]` per part (they then run in parallel), with
//! [`per_geometry!`](crate::per_geometry):
//!
//! ```
//! # use keyway_testkit::geometry::Part;
//! fn sweep<const W: usize, const E: usize>(part: &Part<W, E>) {
//!     let _flash = part.flash();
//! }
//! // The tests boot_power_cut_sweep::{nrf52840, stm32f4, small_pages, ecc32}:
//! keyway_testkit::per_geometry!(boot_power_cut_sweep => sweep);
//! # fn main() {}
//! ```
//!
//! Each row carries two layouts that fit the part: a direct A/B layout
//! (the boot and random-cut sweeps) and a swap layout (the swap sweep), and
//! a fixed seed for sampled sweeps. A sweep that needs another layout
//! builds it from the row's fields (`Part { direct: …, ..NRF52840 }`).

use core::ops::Range;

use keyway_device::install::{Mode, SlotLayout};
use keyway_device::journal::Config;
use keyway_sim::{Geometry, SimFlash};

/// One row of the table: a simulated NOR part and layouts that fit it.
#[derive(Clone, Debug)]
pub struct Part<const W: usize, const E: usize> {
    /// The part's name, as [`Geometry::name`] reports it (`"nrf52840"`).
    pub name: &'static str,
    /// The simulator's preset for the part.
    pub geometry: fn() -> Geometry,
    /// A direct A/B layout (two slots, the state journal apart), for the
    /// boot and random-cut sweeps.
    pub direct: SlotLayout,
    /// A swap layout (primary, secondary one sector larger, one manifest
    /// area), for the swap sweep.
    pub swap: SlotLayout,
    /// The fixed seed of sampled sweeps on this part (`KEYWAY_SEED`
    /// replaces it where a sweep reads it).
    pub seed: u64,
}

impl<const W: usize, const E: usize> Part<W, E> {
    /// An erased flash of this part.
    pub fn flash(&self) -> SimFlash<W, E> {
        SimFlash::new((self.geometry)()).expect("a row's const parameters fit its preset")
    }

    /// The part's write size (`W`).
    pub const fn write_size(&self) -> usize {
        W
    }

    /// The part's smallest erase size (`E`).
    pub const fn erase_size(&self) -> usize {
        E
    }
}

/// A swap layout of `slots` with the journal in `journal` and a manifest
/// area of `manifest_sectors` slot sectors.
const fn swap(slots: [Range<u32>; 2], journal: Config, manifest_sectors: u32) -> SlotLayout {
    SlotLayout {
        mode: Mode::Swap,
        ..SlotLayout::direct(slots, journal).with_manifest_sectors(manifest_sectors)
    }
}

/// nRF52840: 1 MiB of 4 KiB pages, 4-byte words written at most twice.
pub const NRF52840: Part<4, 4096> = Part {
    name: "nrf52840",
    geometry: Geometry::nrf52840,
    direct: SlotLayout::direct(
        [0x1_0000..0x3_0000, 0x3_0000..0x5_0000],
        // 4 records per page: the sweeps turn journal pages.
        Config::new(0xF_0000, 2).with_slot_size(1024),
    ),
    // 4 image sectors + 1 manifest sector; the secondary one sector larger.
    swap: swap(
        [0x1_0000..0x1_5000, 0x1_5000..0x1_B000],
        Config::new(0xF_E000, 2),
        1,
    ),
    seed: 0x4E52_4635_3238_3430,
};

/// STM32F4: a 1 MiB bank of 4 × 16 KiB, 1 × 64 KiB and 7 × 128 KiB
/// sectors. The slots lie in 128 KiB sectors (8 × the smallest erase
/// size), the journal in 16 KiB sectors.
pub const STM32F4: Part<4, 16384> = Part {
    name: "stm32f4",
    geometry: Geometry::stm32f4,
    // Slots in 128 KiB sectors 5 and 6, the journal in sectors 1 and 2.
    direct: SlotLayout::direct(
        [0x2_0000..0x4_0000, 0x4_0000..0x6_0000],
        Config::new(0x4000, 2).with_slot_size(4096),
    )
    .with_sector_size(128 * 1024),
    swap: swap(
        [0x4_0000..0x8_0000, 0x8_0000..0xE_0000],
        Config::new(0x4000, 2),
        1,
    )
    .with_sector_size(128 * 1024),
    seed: 0x5354_4D33_3246_3400,
};

/// Small pages: 512-byte pages, byte writes (a 4 KiB manifest area is 8
/// pages).
pub const SMALL_PAGES: Part<1, 512> = Part {
    name: "small-pages",
    geometry: Geometry::small_pages,
    direct: SlotLayout::direct([0x4000..0x8000, 0x8000..0xC000], Config::new(0x2_0000, 3)),
    // 10 image pages + 8 manifest pages; the secondary one page larger.
    swap: swap(
        [0x8000..0xA400, 0xA400..0xCA00],
        Config::new(0x3_F000, 4),
        8,
    ),
    seed: 0x534D_414C_4C00_0512,
};

/// ECC flash (STM32H7-like): 128 KiB sectors, 32-byte words programmed
/// once per erase; an interrupted program reads back as an ECC error.
pub const ECC32: Part<32, 131072> = Part {
    name: "ecc32",
    geometry: Geometry::ecc32,
    direct: SlotLayout::direct(
        [0..0x2_0000, 0x2_0000..0x4_0000],
        Config::new(0xC_0000, 2).with_slot_size(32 * 1024),
    ),
    swap: swap(
        [0x4_0000..0x8_0000, 0x8_0000..0xE_0000],
        Config::new(0, 2),
        1,
    ),
    seed: 0x4543_4333_3200_0032,
};

/// The names of every row, in table order.
pub const NAMES: [&str; 4] = [NRF52840.name, STM32F4.name, SMALL_PAGES.name, ECC32.name];

/// A sweep over every row: [`each_part`] calls [`EachPart::part`] once
/// per row, in table order.
pub trait EachPart {
    /// Run on one part.
    fn part<const W: usize, const E: usize>(&mut self, part: &Part<W, E>);
}

/// Calls `sweep` on every row of the table, in table order.
pub fn each_part(sweep: &mut impl EachPart) {
    sweep.part(&NRF52840);
    sweep.part(&STM32F4);
    sweep.part(&SMALL_PAGES);
    sweep.part(&ECC32);
}

/// One `#[test]` per row of the table, MCUboot's `sim_test!`: for each
/// `module => function`, a module `module` with the tests `nrf52840`,
/// `stm32f4`, `small_pages` and `ecc32`, each calling
/// `function(&PART)`. `function` is a function of the calling module,
/// generic as `fn f<const W: usize, const E: usize>(part: &Part<W, E>)`.
/// Test attributes (`#[ignore]`) go before the module name and apply to
/// every row.
#[macro_export]
macro_rules! per_geometry {
    ($( $(#[$attr:meta])* $module:ident => $function:ident ),* $(,)?) => {
        $(
            mod $module {
                #[test] $(#[$attr])*
                fn nrf52840() { super::$function(&$crate::geometry::NRF52840) }
                #[test] $(#[$attr])*
                fn stm32f4() { super::$function(&$crate::geometry::STM32F4) }
                #[test] $(#[$attr])*
                fn small_pages() { super::$function(&$crate::geometry::SMALL_PAGES) }
                #[test] $(#[$attr])*
                fn ecc32() { super::$function(&$crate::geometry::ECC32) }
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_device::journal::Journal;

    /// Every row's layouts fit its flash: the journal opens, the slots
    /// are inside the part and on its sector boundaries.
    struct Fits(usize);
    impl EachPart for Fits {
        fn part<const W: usize, const E: usize>(&mut self, part: &Part<W, E>) {
            let flash = part.flash();
            assert_eq!(flash.geometry().name(), part.name);
            let capacity = flash.as_bytes().len() as u32;
            for layout in [&part.direct, &part.swap] {
                Journal::open(&mut flash.clone(), layout.journal)
                    .unwrap_or_else(|e| panic!("{}: journal: {e:?}", part.name));
                let sector = layout.sector_size.unwrap_or(E as u32);
                for slot in &layout.slots {
                    assert!(slot.end <= capacity, "{}: {slot:?} outside", part.name);
                    assert_eq!(slot.start % sector, 0, "{}: {slot:?}", part.name);
                    assert_eq!(slot.end % sector, 0, "{}: {slot:?}", part.name);
                    let j = layout.journal.offset..layout.journal.offset + 1;
                    assert!(
                        j.end <= slot.start || j.start >= slot.end,
                        "{}: journal inside {slot:?}",
                        part.name
                    );
                }
                if layout.mode == Mode::Swap {
                    let [a, b] = &layout.slots;
                    assert_eq!(b.len() - a.len(), sector as usize, "{}", part.name);
                }
            }
            let _ = flash.geometry().sector_at(0);
            self.0 += 1;
        }
    }

    #[test]
    fn every_row_fits_its_part() {
        let mut fits = Fits(0);
        each_part(&mut fits);
        assert_eq!(fits.0, NAMES.len());
    }

    fn named<const W: usize, const E: usize>(part: &Part<W, E>) {
        assert!(NAMES.contains(&part.name));
    }

    crate::per_geometry!(per_geometry_expands => named);
}
