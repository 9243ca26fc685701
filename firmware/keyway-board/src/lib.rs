//! Firmware support for Keyway on the emulated lock board: QEMU
//! `mps2-an386` (an ARM MPS2 with the AN386 Cortex-M4 image),
//! `thumbv7em-none-eabihf`.
//!
//! One crate for what every firmware image in `firmware/` needs, so that
//! the on-target tests (`qemu-*`), the bootloader (`lock-boot`) and the
//! lock application (`lock-app`) share it instead of copying it:
//!
//! | module | what |
//! | --- | --- |
//! | this file | [`exit`], [`exit_code`], [`fail`]: the verdict through semihosting (QEMU's exit status); [`print_export`]: an export in hex for the host's `keyway log verify`; [`budget!`] and [`parse_u64`]: budgets compiled in from the build's environment; [`fixture!`]: a file the build script wrote into `OUT_DIR`; the HardFault and panic handlers (feature `handlers`, on by default; `fault-frame` prints the stacked registers; `panic-quiet` formats nothing, as a product build) |
//! | [`semi`] | semihosting calls: the command line (`-semihosting-config arg=...`), host files |
//! | [`stack`] | stack high-water by painting |
//! | [`meter`] | SysTick as an instruction meter under `-icount shift=0`, with its calibration loop (feature `meter`: it owns the SysTick handler) |
//! | [`ram_flash`] | a NOR flash in a RAM array with the rules of a real part and a power-cut switch (the tests' flash) |
//! | [`semi_flash`] | the board's flash: a NOR flash over a host file (semihosting file I/O) that persists across QEMU runs, with the nRF52840's rules enforced and an optional power cut after N operations |
//! | [`uart`] | polled drivers for the CMSDK APB UARTs (UART0: SMP, UART1: control channel) |
//! | [`map`] | the memory map for RAM load and the flash file's layout |
//!
//! # Memory maps
//!
//! This crate's build script writes the `memory.x` that cortex-m-rt's
//! `link.x` includes, chosen by one feature: `harness-map` (the tests:
//! 4 MiB code at 0, 4 MiB RAM at `0x2000_0000`), `boot-map` (the
//! bootloader) or `app-map` (the application, linked into its execution
//! region); see [`map`]. A binary enables exactly one (or none and brings
//! its own `memory.x`).
//!
//! # Porting
//!
//! Nothing above the [`semi_flash`] and [`uart`] drivers knows it runs in
//! QEMU: a real board implements `embedded_storage::nor_flash::NorFlash`
//! for its flash controller (e.g. embassy-nrf's `Nvmc`) and a byte UART,
//! and keeps the layout of [`map`] (or its own, with the same page size).
#![no_std]
#![warn(missing_docs)]

pub mod map;
#[cfg(feature = "meter")]
pub mod meter;
pub mod ram_flash;
pub mod semi;
pub mod semi_flash;
pub mod stack;
pub mod uart;

use cortex_m_semihosting::debug;
pub use cortex_m_semihosting::hprintln;

/// The decimal number at the start of `s` (its leading digits; 0 if
/// none), at compile time: a budget from the build's environment
/// ([`budget!`]) or a number in a fixture file.
pub const fn parse_u64(s: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v * 10 + (s[i] - b'0') as u64;
        i += 1;
    }
    v
}

/// A budget in bytes compiled into a harness: the environment variable
/// `$var` at build time (its script passes the budget it enforces), else
/// `$default`.
///
/// ```ignore
/// const STACK_BUDGET: usize = keyway_board::budget!("KEYWAY_AGENT_STACK_BUDGET", 16 * 1024);
/// ```
#[macro_export]
macro_rules! budget {
    ($var:literal, $default:expr) => {
        match option_env!($var) {
            Some(s) => $crate::parse_u64(s.as_bytes()) as usize,
            None => $default,
        }
    };
}

/// The bytes of the file `$name` that the calling crate's build script
/// wrote into its `OUT_DIR` (a fixture, a key, an id), as
/// `&'static [u8; N]`.
///
/// ```ignore
/// static ROOT_KEY: &[u8] = keyway_board::fixture!("root.pub");
/// const VENDOR_ID: [u8; 16] = *keyway_board::fixture!("vendor-id.bin");
/// ```
#[macro_export]
macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name))
    };
}

/// Ends the run: QEMU exits with status 0 if `success`, 1 otherwise.
pub fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without a semihosting host; the runner's timeout ends it.
    halt()
}

/// Ends the run with QEMU's exit status `code` (semihosting
/// `SYS_EXIT_EXTENDED`, reason `ADP_Stopped_ApplicationExit`): how the
/// flash's power cut ([`semi_flash::POWER_CUT_EXIT`]) is told apart from a
/// verdict.
pub fn exit_code(code: u32) -> ! {
    /// `ADP_Stopped_ApplicationExit`.
    const APPLICATION_EXIT: usize = 0x2_0026;
    /// `SYS_EXIT_EXTENDED`.
    const EXIT_EXTENDED: usize = 0x20;
    let block = [APPLICATION_EXIT, code as usize];
    // SAFETY: a semihosting call with a two-word parameter block that
    // lives across the call.
    unsafe { cortex_m_semihosting::syscall(EXIT_EXTENDED, &block) };
    halt()
}

/// Prints `FAIL: what` and ends the run with failure.
pub fn fail(what: &str) -> ! {
    hprintln!("FAIL: {}", what);
    exit(false)
}

/// Prints `bytes` in hex, 32 bytes a line, between the lines `BEGIN EXPORT`
/// and `END EXPORT`, where the scripts cut an audit export out of QEMU's
/// output (`qemu-audit`, `qemu-core`).
pub fn print_export(bytes: &[u8]) {
    hprintln!("BEGIN EXPORT");
    for line in bytes.chunks(32) {
        for b in line {
            cortex_m_semihosting::hprint!("{:02x}", b);
        }
        hprintln!();
    }
    hprintln!("END EXPORT");
}

/// Stops the CPU for good (interrupts off, wait for one forever).
pub fn halt() -> ! {
    cortex_m::interrupt::disable();
    loop {
        cortex_m::asm::wfi();
    }
}

#[cfg(feature = "handlers")]
mod handlers {
    use cortex_m_rt::{ExceptionFrame, exception};
    use cortex_m_semihosting::hprintln;

    /// With `fault-frame`: the stacked registers, for diagnosis.
    #[cfg(feature = "fault-frame")]
    #[exception]
    unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
        hprintln!("HARDFAULT: {:?}", frame);
        super::exit(false)
    }

    /// Without `fault-frame`: one line, no formatting code.
    #[cfg(not(feature = "fault-frame"))]
    #[exception]
    unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
        super::fail("hard fault")
    }

    /// The checked builds print the whole panic message.
    #[cfg(not(feature = "panic-quiet"))]
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        hprintln!("PANIC: {}", info);
        super::exit(false)
    }

    /// The measured builds format nothing, as a product lock that resets
    /// on a panic: formatting the message links `PanicInfo`'s `Display`,
    /// which is the harness's code, not the lock's.
    #[cfg(feature = "panic-quiet")]
    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        hprintln!("PANIC");
        super::exit(false)
    }
}
