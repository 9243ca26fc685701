//! The boot chain's test application: linked to run at keyway-board's
//! `APP_EXEC` (feature `app-map`), where lock-boot copies it. It checks
//! that it runs where it was linked, with VTOR pointing at its own vector
//! table, prints `lock-boot-test-app: running` and ends the QEMU run with
//! success. scripts/qemu-boot-chain.sh signs its binary as the image.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use keyway_board::{exit, hprintln, map};

#[entry]
fn main() -> ! {
    // SAFETY: reads VTOR.
    let vtor = unsafe { (*cortex_m::peripheral::SCB::PTR).vtor.read() };
    let here = probe as *const () as u32;
    hprintln!(
        "lock-boot-test-app: running (main at {:#x}, VTOR {:#x})",
        here,
        vtor
    );
    let ok = vtor == map::APP_EXEC.start && map::APP_EXEC.holds(here & !1, 2);
    exit(ok)
}

/// A function whose address says where the code runs.
#[inline(never)]
fn probe() {}
