//! SysTick as an instruction meter under QEMU's `-icount shift=0` (one
//! instruction per tick of the core clock; feature `meter`, which owns the
//! SysTick handler). The 24-bit counter runs at the core clock; its wraps
//! are counted by the exception handler here. [`calibrate`] prints the
//! ticks of a loop of known length, which the scripts divide by.

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use cortex_m_semihosting::hprintln;

/// SysTick wraps (24-bit counter) since it was started.
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick, counting down from 2^24 - 1 at the core clock, stopped until
/// [`timed`]; `None` if the core peripherals were taken already.
pub fn systick() -> Option<SYST> {
    let mut syst = cortex_m::Peripherals::take()?.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(0x00FF_FFFF);
    syst.enable_interrupt();
    Some(syst)
}

/// Runs `f` with SysTick counting from its reload value; returns the
/// ticks it took.
pub fn timed<R>(syst: &mut SYST, f: impl FnOnce() -> R) -> (R, u64) {
    WRAPS.store(0, Ordering::Relaxed);
    syst.clear_current();
    syst.enable_counter();
    let r = f();
    let now = SYST::get_current();
    syst.disable_counter();
    let ticks =
        u64::from(WRAPS.load(Ordering::Relaxed)) * 0x0100_0000 + u64::from(0x00FF_FFFF - now);
    (r, ticks)
}

/// Times a loop of exactly 2,000,000 instructions (subs, bne) and prints
/// the ticks: the instructions per SysTick tick under `-icount`.
#[inline(never)]
pub fn calibrate(syst: &mut SYST) {
    let ((), ticks) = timed(syst, || {
        // SAFETY: a register-only countdown loop.
        unsafe {
            core::arch::asm!(
                "2:", "subs {n}, #1", "bne 2b",
                n = inout(reg) 1_000_000u32 => _,
                options(nomem, nostack)
            )
        }
    });
    hprintln!("SysTick ticks for 2000000 instructions: {}", ticks);
}
