//! On-target test of keyway-audit (Cortex-M4, QEMU mps2-an386).
//!
//! A RAM-backed NorFlash of 4 pages of 4 KiB (keyway-board's `RamFlash`:
//! 4-byte writes, bits only programmed 1 -> 0, whole-page erases, as the
//! nRF52840) holds the log.
//! The firmware appends 300 events (the ring wraps, with checkpoints signed
//! by the device key on the device), reopens the log, checks that it
//! continues, exports it in 64-byte chunks and prints the export as hex
//! between markers for scripts/qemu-audit.sh, which verifies it with
//! `keyway log verify`. It measures the stack of each call and exits
//! through semihosting: success only if every step worked and the stack
//! stayed within budget. No allocator is linked.

#![no_std]
#![no_main]
// The baseline build leaves the log (and the stack measurement) out.
#![cfg_attr(feature = "baseline", allow(dead_code, unused_imports))]

use keyway_board::stack;

use core::ptr::addr_of_mut;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use keyway_board::exit;
use keyway_board::ram_flash::RamFlash;

const PAGE: usize = 4096;
const PAGES: usize = 4;
const EVENTS: u32 = 300;
const CHUNK: usize = 64;

/// Stack budget for any one log call (append with a checkpoint signature,
/// export with the head signature): `KEYWAY_AUDIT_STACK_BUDGET` or 8 KiB.
const STACK_BUDGET: usize = keyway_board::budget!("KEYWAY_AUDIT_STACK_BUDGET", 8 * 1024);

static SEED: [u8; 32] = *keyway_board::fixture!("seed.bin");

/// The export (in .bss).
static mut EXPORT: [u8; PAGE * PAGES + 512] = [0; PAGE * PAGES + 512];

/// The log's flash (in `main`'s frame, above every measured call).
type Flash = RamFlash<{ PAGE * PAGES }>;

#[cfg(not(feature = "baseline"))]
fn event(i: u32) -> (keyway_audit::Time, keyway_audit::Event) {
    use keyway_audit::{Event, LockMethod, RejectReason, Time, Version};
    let t = Time {
        rtc: 1_795_564_800 + u64::from(i) * 60,
        boot: 1 + i / 100,
    };
    let e = match i % 10 {
        0 => Event::Boot {
            slot: 0,
            version: Version::new(2, 1, i as u16),
        },
        3 => Event::PinFailed {
            consecutive: (i % 7) as u16,
        },
        5 => Event::UpdateRejected {
            sequence: u64::from(i),
            reason: RejectReason::Signatures,
        },
        k if k % 2 == 1 => Event::Unlocked {
            method: LockMethod::Keypad,
        },
        _ => Event::Locked {
            method: LockMethod::AutoRelock,
        },
    };
    (t, e)
}

/// Runs the log; returns (export length, worst stack of an event append,
/// open, export fill, an append that signs a checkpoint) or a failure
/// message.
#[cfg(not(feature = "baseline"))]
fn run(flash: &mut Flash, out: &mut [u8]) -> Result<(usize, [usize; 4]), &'static str> {
    use keyway_audit::{AuditLog, Config, Ed25519Signer, Time};
    let signer = Ed25519Signer::from_seed(SEED).ok_or("bad seed")?;
    let config = Config::new(0, PAGES as u32);
    let mut worst = [0usize; 4];
    let (log, used) = stack::measure(|| AuditLog::open(flash, config));
    worst[1] = worst[1].max(used.call);
    let mut log = log.map_err(|_| "open failed")?;
    for i in 0..EVENTS {
        let (t, e) = event(i);
        if i == EVENTS / 2 {
            // A reboot halfway: the reopened log continues the chain.
            let (reopened, used) = stack::measure(|| AuditLog::open(flash, config));
            worst[1] = worst[1].max(used.call);
            let reopened = reopened.map_err(|_| "reopen failed")?;
            if reopened.next_seq() != log.next_seq() || reopened.head() != log.head() {
                return Err("reopened log differs");
            }
            log = reopened;
        }
        let before = log.next_seq();
        let (r, used) = stack::measure(|| log.append(flash, &signer, t, &e));
        r.map_err(|_| "append failed")?;
        // Two records: a checkpoint was signed and written first.
        let k = if log.next_seq() - before == 2 { 3 } else { 0 };
        worst[k] = worst[k].max(used.call);
    }
    let mut export = log.export(Time {
        rtc: 1_795_600_000,
        boot: 4,
    });
    let mut len = 0;
    loop {
        let end = (len + CHUNK).min(out.len());
        let (n, used) = stack::measure(|| export.fill(&log, flash, &signer, &mut out[len..end]));
        worst[2] = worst[2].max(used.call);
        let n = n.map_err(|_| "export failed")?;
        if n == 0 {
            break;
        }
        len += n;
        if len == out.len() {
            return Err("export larger than its buffer");
        }
    }
    Ok((len, worst))
}

/// The baseline: the same harness with an opaque stand-in for the log.
#[cfg(feature = "baseline")]
fn run(flash: &mut Flash, out: &mut [u8]) -> Result<(usize, [usize; 4]), &'static str> {
    use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
    let mut b = [0u8; 4];
    flash.read(0, &mut b).map_err(|_| "read")?;
    flash.write(0, &b).map_err(|_| "write")?;
    flash.erase(0, PAGE as u32).map_err(|_| "erase")?;
    out[0] = core::hint::black_box(SEED[0]);
    Ok((core::hint::black_box(1), [0; 4]))
}

#[entry]
fn main() -> ! {
    // SAFETY: main runs once; this static is used only here.
    let out = unsafe { &mut *addr_of_mut!(EXPORT) };
    let mut flash = Flash::new(); // a fresh, erased part
    let success = match run(&mut flash, out) {
        Ok((len, worst)) => {
            let (erases, writes) = flash.ops();
            hprintln!(
                "appended {} events on {} x {} B pages: {} writes, {} erases",
                EVENTS,
                PAGES,
                PAGE,
                writes,
                erases
            );
            hprintln!("stack append (worst, event only): {} bytes", worst[0]);
            hprintln!(
                "stack append (worst, with checkpoint signing): {} bytes",
                worst[3]
            );
            hprintln!("stack open: {} bytes", worst[1]);
            hprintln!(
                "stack export fill (worst, with head signing): {} bytes",
                worst[2]
            );
            hprintln!("export: {} bytes", len);
            keyway_board::print_export(&out[..len]);
            let within = worst.iter().all(|&w| w <= STACK_BUDGET);
            if !within {
                hprintln!("FAIL stack over budget {} bytes", STACK_BUDGET);
            }
            within && (cfg!(feature = "baseline") || erases > 0)
        }
        Err(why) => {
            hprintln!("FAIL {}", why);
            false
        }
    };
    exit(success)
}
