//! The lock application: what lock-boot RAM-loads and jumps to.
//!
//! * **UART0**: the MCUmgr serial transport (`keyway_smp::serial`: SMP
//!   packets in base64 lines with CRC-16, as Zephyr's `smp_uart` and
//!   smpclient's serial transport frame them); every packet goes to
//!   `keyway-agent` (`lock_core::lock::Lock::handle`): pairing with the
//!   setup code in the presence window, owner sessions, sealed commands,
//!   the image upload (verified head, streamed payload), consent, the
//!   release notes, the audit log export, image state and reset for
//!   stock MCUmgr tools.
//! * **UART1**: the control channel ([`hw`]): JSON lines standing for the
//!   button, keypad, door, tamper, battery, the label and a power cut.
//! * **Flash**: the board's semihosting flash file (`keyway_board::
//!   semi_flash`, nRF52840 rules), path from the semihosting command line
//!   (`flash=PATH`), layout `lock_core::map`; the factory record in its
//!   page gives the trust anchor, identity, device key and RNG seed.
//! * **Time**: SysTick at 1 kHz (the core clock is 25 MHz) for the
//!   agent's windows and limits; the host's wall clock (semihosting
//!   `SYS_TIME`) read once at start as the RTC for the audit log.
//! * **Randomness**: ChaCha20 seeded with SHA-256 of the factory RNG seed,
//!   the audit log's head (a new record every boot, so no two boots share
//!   a seed), the host's time and clock (semihosting). On a real lock the
//!   seed comes from the TRNG; in the emulator this is the stand-in.
//!
//! At start: the boot is logged; on a trial boot the self-test runs (the
//! image must not carry `KEYWAY-SELF-TEST-FAIL` at offset 256 of its RAM
//! copy, i.e. `VTOR + 256`; the flash, both UARTs and the agent must be
//! up): passed → `boot::confirm` (the floor rises), failed → the failure
//! is recorded and the lock resets, and lock-boot reverts.
#![no_std]
#![no_main]

mod hw;

use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};

use chacha20::ChaCha20Rng;
use chacha20::rand_core::SeedableRng;
use cortex_m::peripheral::{SCB, syst::SystClkSource};
use cortex_m_rt::{entry, exception};
use embedded_storage::nor_flash::ReadNorFlash;
use keyway_agent::agent::Event;
use keyway_agent::limits::PeerId;
use keyway_board::semi_flash::SemiFlash;
use keyway_board::uart::Uart;
use keyway_board::{hprintln, semi};
use keyway_smp::serial::{Decoder, Encoder, MAX_LINE, rx_buf_len};
use lock_core::lock::{Lock, Shared};
use lock_core::map::{self, FACTORY_LEN, Factory};
use sha2::{Digest, Sha256};

// The board crate owns the memory map; lock-core's copy (for the host's
// provisioner) must agree.
const _: () = {
    use keyway_board::map as b;
    assert!(b::SECTOR as usize == map::SECTOR);
    assert!(b::FLASH_SECTORS == map::FLASH_SECTORS);
    assert!(b::JOURNAL == map::JOURNAL && b::SLOT0 == map::SLOT0 && b::SLOT1 == map::SLOT1);
    assert!(b::STORE == map::STORE && b::AUDIT == map::AUDIT && b::FREE == map::FACTORY);
    assert!(b::APP_EXEC.start == map::APP_LOAD);
};

/// This build's version text (`KEYWAY_APP_VERSION` at build time).
const VERSION: &str = match option_env!("KEYWAY_APP_VERSION") {
    Some(v) => v,
    None => "0.0.0-dev",
};
/// The marker a release that must fail its self-test carries at
/// [`SELF_TEST_FAIL_AT`] (keyway's `SELF_TEST_FAIL_MARKER`).
const SELF_TEST_FAIL_MARKER: &[u8] = b"KEYWAY-SELF-TEST-FAIL";
/// Its offset in the image (inside cortex-m-rt's interrupt table, whose
/// entries past the 16th are never enabled here).
const SELF_TEST_FAIL_AT: usize = 256;
/// The one serial peer (the cable).
const SERIAL_PEER: PeerId = PeerId(1);
/// Core clock (MPS2 AN386: 25 MHz).
const CORE_HZ: u32 = 25_000_000;

static MILLIS: AtomicU32 = AtomicU32::new(0);

/// The UARTs' receive interrupts only wake the main loop from `wfi`.
#[exception]
unsafe fn DefaultHandler(_irqn: i16) {
    keyway_board::uart::ack_interrupts();
}

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// The lock's monotonic clock (ms since start).
pub fn now_ms() -> u64 {
    u64::from(MILLIS.load(Ordering::Relaxed))
}

/// Counters of the serial port, for the throughput figure.
#[derive(Default, Clone, Copy)]
pub struct Wire {
    /// Bytes received on UART0.
    pub rx: u64,
    /// Bytes sent on UART0.
    pub tx: u64,
    /// SMP packets handled.
    pub packets: u64,
    /// Milliseconds spent handling packets (decode done to answer sent).
    pub busy_ms: u64,
    /// Frames the decoder dropped (bad CRC, base64, length).
    pub dropped: u64,
}

/// Paints the free stack (from the end of the statics up to just below
/// the current stack pointer) with `keyway_board::stack::PAINT`, so
/// [`peak_stack`] can tell the deepest the stack ever reached.
fn paint_stack() {
    let top = (cortex_m::register::msp::read() as usize - 64) & !3;
    let mut p = keyway_board::stack::stack_limit();
    while p < top {
        // SAFETY: [stack_limit, top) is free stack: above every static,
        // below the live frames; the SysTick handler's frame lands near
        // the stack pointer, above `top`.
        unsafe { core::ptr::write_volatile(p as *mut u32, keyway_board::stack::PAINT) };
        p += 4;
    }
}

/// The deepest the stack has reached since [`paint_stack`], in bytes
/// below its top (the lock's buffers and state in `main`'s frame
/// included).
pub fn peak_stack() -> usize {
    let mut p = keyway_board::stack::stack_limit();
    let top = keyway_board::stack::stack_top();
    // SAFETY: reads of the stack region, word aligned.
    while p < top
        && unsafe { core::ptr::read_volatile(p as *const u32) } == keyway_board::stack::PAINT
    {
        p += 4;
    }
    top - p
}

/// The statics' size (`.data` + `.bss` + `.uninit`): the stack's lowest
/// address minus the start of RAM.
pub fn statics() -> usize {
    keyway_board::stack::stack_limit() - keyway_board::map::APP_RAM.start as usize
}

#[entry]
fn main() -> ! {
    paint_stack();
    let mut cp = cortex_m::Peripherals::take().unwrap_or_else(|| keyway_board::fail("peripherals"));
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(CORE_HZ / 1000 - 1);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();

    let mut smp = Uart::take(0).unwrap_or_else(|| keyway_board::fail("UART0"));
    let mut ctl = Uart::take(1).unwrap_or_else(|| keyway_board::fail("UART1"));

    let mut line = [0u8; 256];
    let cmdline = semi::cmdline(&mut line).unwrap_or("");
    let path = semi::arg(cmdline, "flash").unwrap_or("flash.bin");
    let flash = SemiFlash::open(path, map::FLASH_LEN as u32)
        .unwrap_or_else(|| keyway_board::fail("the flash file does not open"));
    let cell = RefCell::new(flash);

    let mut record = [0u8; FACTORY_LEN];
    if cell
        .borrow_mut()
        .read(map::at(map::FACTORY), &mut record)
        .is_err()
    {
        keyway_board::fail("factory record: read failed");
    }
    let factory = match Factory::decode(&record) {
        Ok(f) => f,
        Err(e) => {
            hprintln!(
                "lock-app: factory record: {:?} (provision the flash first)",
                e
            );
            keyway_board::exit(false)
        }
    };

    // The RNG's seed and the audit times (see the module doc).
    let rtc = semihosting_time();
    let (head, boots) = {
        let mut f = Shared(&cell);
        match keyway_audit::AuditLog::open(&mut f, map::audit_region()) {
            Ok(log) => (*log.head(), log.next_seq()),
            Err(_) => ([0u8; 32], 0),
        }
    };
    let mut h = Sha256::new();
    h.update(b"keyway lock-app rng v1");
    h.update(factory.rng_seed);
    h.update(head);
    h.update(rtc.to_le_bytes());
    h.update(semihosting_clock().to_le_bytes());
    let rng = ChaCha20Rng::from_seed(h.finalize().into());

    let mut slot: Option<Lock<'_, SemiFlash>> = None;
    if let Err(e) = Lock::open_into(
        &mut slot,
        &map::LOCK_MAP,
        Shared(&cell),
        &factory.root_key,
        factory.identity(),
        factory.device_seed,
        rng,
        boots,
    ) {
        hprintln!("lock-app: power-on failed: {:?}", e);
        keyway_board::exit(false);
    }
    let Some(lock) = slot.as_mut() else {
        keyway_board::fail("power on")
    };
    lock.shell.version = VERSION;
    lock.shell.rtc_at_zero = rtc;

    let running = match lock.started(now_ms()) {
        Ok(r) => r,
        Err(e) => {
            hprintln!("lock-app: start failed: {:?}", e);
            keyway_board::exit(false)
        }
    };
    let sequence = running.as_ref().map_or(0, |r| r.sequence);
    let state = *lock.journal_state();
    let slot_no = lock_core::lock::running_slot(&state);
    if lock.on_trial() {
        if self_test_passes() {
            match lock.confirm(now_ms(), sequence) {
                Ok(s) => hprintln!(
                    "lock-app {}: self-test passed, slot {} confirmed (sequence {})",
                    VERSION,
                    s,
                    sequence
                ),
                Err(e) => hprintln!("lock-app {}: confirm failed: {:?}", VERSION, e),
            }
        } else {
            hprintln!(
                "lock-app {}: self-test FAILED on slot {}: reverting",
                VERSION,
                slot_no
            );
            if let Err(e) = lock.self_test_failed(now_ms()) {
                hprintln!("lock-app: recording the failure: {:?}", e);
            }
            SCB::sys_reset();
        }
    }
    hprintln!(
        "lock-app {}: running slot {} sequence {} ({:?})",
        VERSION,
        slot_no,
        sequence,
        lock.journal_state().trial
    );

    let mut rx = [0u8; rx_buf_len(keyway_smp::MAX_FRAME)];
    let mut dec = Decoder::new(&mut rx);
    let mut out = [0u8; keyway_agent::agent::OUT_LEN];
    let mut wire = Wire::default();
    let mut control = hw::Control::new();
    smp.enable_rx_interrupt();
    ctl.enable_rx_interrupt();
    loop {
        if !smp.rx_ready() && !ctl.rx_ready() {
            keyway_board::uart::wait_for_rx(&[&smp, &ctl]);
        }
        if let Some(b) = smp.try_read() {
            wire.rx += 1;
            match dec.push(b) {
                Ok(Some(packet)) => {
                    let t0 = now_ms();
                    wire.packets += 1;
                    let o = lock.handle(SERIAL_PEER, t0, packet, &mut out);
                    control.after_packet(lock, &cell);
                    if o.len > 0 {
                        send(&mut smp, &out[..o.len], &mut wire);
                    }
                    wire.busy_ms += now_ms() - t0;
                    let reset = matches!(o.event, Event::Reset { .. } | Event::FactoryReset);
                    if reset || core::mem::take(&mut lock.shell.reset_armed) {
                        hprintln!("lock-app: reset");
                        SCB::sys_reset();
                    }
                }
                Ok(None) => {}
                Err(_) => wire.dropped += 1,
            }
        }
        if let Some(b) = ctl.try_read()
            && let Some(answer) = control.push(b, lock, &cell, &factory, &wire)
        {
            ctl.write_all(answer);
            // An unlock at the lock installs a consented update.
            if core::mem::take(&mut lock.shell.reset_armed) {
                hprintln!("lock-app: reset");
                SCB::sys_reset();
            }
        }
    }
}

/// Sends an SMP packet as serial lines.
fn send(uart: &mut Uart, packet: &[u8], wire: &mut Wire) {
    let Ok(mut e) = Encoder::new(packet) else {
        return;
    };
    let mut l = [0u8; MAX_LINE];
    while let Some(n) = e.next_line(&mut l) {
        uart.write_all(&l[..n]);
        wire.tx += n as u64;
    }
}

/// The self-test of a trial boot: the image's own marker (read from its
/// RAM copy at VTOR). The flash, the UARTs and the agent are up already
/// (start fails before this otherwise).
fn self_test_passes() -> bool {
    // SAFETY: VTOR holds the vector table's address, which is the start
    // of this image, loaded in RAM by lock-boot; SELF_TEST_FAIL_AT plus
    // the marker lies inside cortex-m-rt's vector table (1 KiB).
    let vtor = unsafe { (*SCB::PTR).vtor.read() } as usize;
    let at = vtor + SELF_TEST_FAIL_AT;
    let image =
        unsafe { core::slice::from_raw_parts(at as *const u8, SELF_TEST_FAIL_MARKER.len()) };
    image != SELF_TEST_FAIL_MARKER
}

/// The host's wall clock (seconds since 1970), semihosting `SYS_TIME`.
fn semihosting_time() -> u64 {
    // SAFETY: SYS_TIME takes no argument block.
    unsafe { cortex_m_semihosting::syscall!(TIME) as u64 }
}

/// Centiseconds since QEMU started, semihosting `SYS_CLOCK`.
fn semihosting_clock() -> u64 {
    // SAFETY: SYS_CLOCK takes no argument block.
    unsafe { cortex_m_semihosting::syscall!(CLOCK) as u64 }
}
