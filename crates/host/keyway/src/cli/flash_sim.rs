//! `keyway flash-sim`: an update on the NOR flash model with the lock's
//! installer and bootloader (the work is `keyway_vendor::flashsim`).

use std::io::Write;

use anyhow::Result;
use clap::{Args, ValueEnum};

/// Update mode for `flash-sim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimModeArg {
    /// Direct A/B: write the inactive slot, activate by a journal record.
    Direct,
    /// Swap: stage in the secondary slot, the bootloader swaps it in.
    Swap,
}

/// Arguments of `keyway flash-sim`.
#[derive(Debug, Args)]
pub struct FlashSimArgs {
    /// Flash preset: nrf52840, stm32f4, small-pages or ecc32 (the defaults
    /// for the custom options below).
    #[arg(long, value_name = "NAME", default_value = "nrf52840")]
    pub geometry: String,
    /// Custom uniform page (erase sector) size in bytes: 256 to 262144, a
    /// power of two.
    #[arg(long, value_name = "B")]
    pub page_size: Option<u32>,
    /// Custom write unit in bytes: 1, 2, 4, 8, 16 or 32.
    #[arg(long, value_name = "B")]
    pub write_size: Option<usize>,
    /// Custom page erase time in milliseconds.
    #[arg(long, value_name = "MS")]
    pub erase_ms: Option<f64>,
    /// Custom program time per write unit in microseconds.
    #[arg(long, value_name = "US")]
    pub write_us: Option<f64>,
    /// Image size in KiB.
    #[arg(long, value_name = "N")]
    pub image_kib: u32,
    /// Update mode.
    #[arg(long, value_enum, default_value_t = SimModeArg::Direct)]
    pub mode: SimModeArg,
    /// Power-cut sweep: exhaustive (every flash op, 3 cut kinds) or
    /// random:N (N scenarios of 1-3 nested cuts).
    #[arg(long, value_name = "exhaustive|random:N")]
    pub power_cuts: Option<String>,
    /// Seed of the image payloads and the random cuts.
    #[arg(long, value_name = "S", default_value_t = 0x4B45_5957)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `keyway flash-sim`.
pub fn flash_sim(a: &FlashSimArgs, out: &mut dyn Write) -> Result<()> {
    let request = keyway_vendor::flashsim::SimRequest {
        geometry: a.geometry.clone(),
        page_size: a.page_size,
        write_size: a.write_size,
        erase_ms: a.erase_ms,
        write_us: a.write_us,
        image_kib: a.image_kib,
        mode: match a.mode {
            SimModeArg::Direct => keyway_device::install::Mode::Direct,
            SimModeArg::Swap => keyway_device::install::Mode::Swap,
        },
        power_cuts: a.power_cuts.clone(),
        seed: a.seed,
        json: a.json,
    };
    keyway_vendor::flashsim::run(&request, out)
}
