//! On-target run of the whole lock core (Cortex-M4, QEMU mps2-an386): one
//! owner session, in memory, through the real device crates (see
//! `lock.rs` for what is linked and the glue the agent will replace).
//!
//! The session, each step asserted (the first failure prints `FAIL` and
//! exits with failure through semihosting):
//!
//! 1. factory: the stores opened on an erased flash, the pairing verifier
//!    stored, v1 (signed by the host CLI) installed into slot 0, confirmed;
//! 2. boot: `boot::boot` with `VerifiedSlot` boots v1;
//! 3. a wrong setup code: refused, counted in the owner store, no owner;
//!    then pairing with the right code (SPAKE2+): the owner stored in the
//!    owner store and logged, the count cleared; Pake2 and Pake4 equal to
//!    the host's bytes;
//! 4. a session handshake (msg1..msg4) with the owner looked up in the
//!    store; msg2 and msg4 equal to the host's bytes;
//! 5. the upload of v2 as SMP image-upload frames sealed in session
//!    records: the head verified from the first chunks, the payload
//!    streamed by the `Installer` into slot 1, the file's SHA-256 matched;
//!    a replayed record is refused by the channel and changes nothing;
//! 6. the owner's consent (a sealed SMP request): stored, slot 1 armed;
//! 7. the reboot: journal, owner store and audit log reopened from the
//!    flash, `boot::boot` starts the trial of v2; the consent and the
//!    owner survived;
//! 8. the self-test passes: `boot::confirm` raises the floor to 2, the
//!    consent is spent;
//! 9. a new session (the table is RAM; the owner comes from the store);
//! 10. the log export over sealed SMP log requests, reassembled: its head
//!     record names the log's chain head and count, and its signature
//!     verifies with the device key. The export is printed in hex for the
//!     host's `keyway log verify`. A log request past the end is refused
//!     with an SMP error answer (rc 3).
//!
//! The owner's client does not run here: build.rs recorded its messages
//! on the host with the same seeds and the firmware replays them (as
//! firmware/qemu-channel's lock-only build does).
//!
//! Measured per step (one table row each): SysTick ticks (instructions
//! under `qemu -icount shift=0`, calibrated at the end with a loop of
//! known length), the stack the call used, and the lock's RAM on the
//! stack at its deepest: everything below the stack pointer at the entry
//! of [`session`] (the lock's state, its receive and answer buffers, and
//! the calls). The emulated NOR flash and the client's export copy live
//! in `main`'s frame, above that point: they stand for flash and for the
//! client. The script adds the statics (.data + .bss) for the RAM figure.

#![no_std]
#![no_main]
#![cfg_attr(
    feature = "baseline",
    allow(dead_code, unused_imports, unused_variables)
)]
#![cfg_attr(
    feature = "quiet",
    allow(
        dead_code,
        unused_imports,
        unused_variables,
        unused_mut,
        unreachable_code
    )
)]

#[cfg(not(feature = "baseline"))]
mod lock;
#[allow(dead_code)]
#[path = "../../qemu-boot/src/ram_flash.rs"]
mod ram_flash;
#[allow(dead_code)]
mod scenario;
#[allow(dead_code)]
#[path = "../../qemu-audit/src/stack.rs"]
mod stack;
#[path = "../../qemu-audit/src/meter.rs"]
mod meter;
use meter::{calibrate, timed};

use core::fmt::Debug;

use cortex_m_rt::{ExceptionFrame, entry, exception};
use cortex_m_semihosting::{debug, hprint, hprintln};
use ram_flash::{RamFlash, SECTOR};
use scenario::*;

/// The emulated NOR flash: 16 sectors of 4 KiB (see `lock::layout`).
pub const FLASH_SECTORS: u32 = 16;
/// Its size.
pub const FLASH_LEN: usize = FLASH_SECTORS as usize * SECTOR;
/// The lock's flash.
pub type Flash = RamFlash<FLASH_LEN>;

/// Room for the client's copy of the export.
const EXPORT_MAX: usize = 4096;
/// The largest request record of the run (an upload frame, sealed).
const RECORD_MAX: usize = 640;
/// The lock's answer buffers: the SMP frame and its sealed record.
const PLAIN_MAX: usize = 384;
const SEALED_MAX: usize = PLAIN_MAX + keyway_channel::record::RESPONSE_OVERHEAD;

/// The fixtures (scripts/qemu-core.sh) and the client's messages as
/// build.rs recorded them on the host.
mod fixture {
    macro_rules! rec {
        ($name:ident, $file:literal) => {
            pub static $name: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/", $file));
        };
    }
    rec!(DEVICE_SEED, "device.seed");
    rec!(ROOT_KEY, "root.pub");
    rec!(VENDOR_ID, "vendor-id.bin");
    rec!(CLASS_ID, "class-id.bin");
    rec!(V1, "v1.suit");
    rec!(V2, "v2.suit");
    rec!(VERIFIER, "verifier.bin");
    rec!(PAKE1W, "pake1w.bin");
    rec!(PAKE2W, "pake2w.bin");
    rec!(PAKE3W, "pake3w.bin");
    rec!(PAKE1, "pake1.bin");
    rec!(PAKE2, "pake2.bin");
    rec!(PAKE3, "pake3.bin");
    rec!(PAKE4, "pake4.bin");
    rec!(MSG1, "msg1.bin");
    rec!(MSG2, "msg2.bin");
    rec!(MSG3, "msg3.bin");
    rec!(MSG4, "msg4.bin");
    rec!(MSG1B, "msg1b.bin");
    rec!(MSG2B, "msg2b.bin");
    rec!(MSG3B, "msg3b.bin");
    rec!(MSG4B, "msg4b.bin");
    rec!(SESSION1, "session1.bin");
    rec!(SESSION2, "session2.bin");
    /// Every one of them: the baseline keeps them all in its image.
    #[cfg_attr(not(feature = "baseline"), allow(dead_code))]
    pub static ALL: [&[u8]; 24] = [
        PAKE1W,
        PAKE2W,
        PAKE3W,
        DEVICE_SEED,
        ROOT_KEY,
        VENDOR_ID,
        CLASS_ID,
        V1,
        V2,
        VERIFIER,
        PAKE1,
        PAKE2,
        PAKE3,
        PAKE4,
        MSG1,
        MSG2,
        MSG3,
        MSG4,
        MSG1B,
        MSG2B,
        MSG3B,
        MSG4B,
        SESSION1,
        SESSION2,
    ];
}

/// Ends the run through semihosting: QEMU exits with the verdict.
fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

fn fail(what: &str) -> ! {
    hprintln!("FAIL: {}", what);
    exit(false)
}

/// The value of a step that must work, or the run ends with its error.
fn must<T, E: Debug>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => core::hint::black_box(v),
        Err(e) => {
            // The errors' Debug code is not the lock's: only with the
            // `verbose` feature (the measured build leaves it out).
            #[cfg(feature = "verbose")]
            hprintln!("FAIL: {}: {:?}", what, e);
            #[cfg(not(feature = "verbose"))]
            {
                let _ = e;
                hprintln!(
                    "FAIL: {} (rebuild with --features verbose for the error)",
                    what
                );
            }
            exit(false)
        }
    }
}

/// Ends the run unless `ok`.
fn ensure(ok: bool, what: &str) {
    if !ok {
        fail(what);
    }
}

#[allow(unused_macros)]
/// A check of the harness: left out of the `quiet` build (the code-size
/// build: the same lock calls, their results through `black_box`).
macro_rules! check {
    ($ok:expr, $what:expr $(,)?) => {
        #[cfg(not(feature = "quiet"))]
        ensure($ok, $what);
    };
}

#[allow(unused_macros)]
/// A line of the harness's report: left out of the `quiet` build.
macro_rules! say {
    ($($t:tt)*) => {
        #[cfg(not(feature = "quiet"))]
        hprintln!($($t)*);
    };
}

/// One row of the table: a step's calls, summed.
struct Row {
    name: &'static str,
    calls: u32,
    ticks: u64,
    stack: usize,
    ram: usize,
}

impl Row {
    fn new(name: &'static str) -> Self {
        Row {
            name,
            calls: 0,
            ticks: 0,
            stack: 0,
            ram: 0,
        }
    }
}

/// Measures lock calls: ticks, the call's stack, and the lock's RAM on
/// the stack (below `base`, the stack pointer at the entry of
/// [`session`]).
struct Meter {
    syst: cortex_m::peripheral::SYST,
    base: usize,
    peak: usize,
    peak_step: &'static str,
}

impl Meter {
    fn call<R>(&mut self, row: &mut Row, f: impl FnOnce() -> R) -> R {
        let syst = &mut self.syst;
        let ((r, ticks), usage) = stack::measure(|| timed(syst, f));
        let ram = usage.total.saturating_sub(stack::stack_top() - self.base);
        row.calls += 1;
        row.ticks += ticks;
        row.stack = row.stack.max(usage.call);
        row.ram = row.ram.max(ram);
        if ram > self.peak {
            self.peak = ram;
            self.peak_step = row.name;
        }
        r
    }

    /// Measures one call as its own row and prints it.
    fn step<R>(&mut self, name: &'static str, f: impl FnOnce() -> R) -> R {
        let mut row = Row::new(name);
        let r = self.call(&mut row, f);
        print_row(&row);
        r
    }
}

fn print_row(row: &Row) {
    hprintln!(
        "step {}: {} calls, {} ticks, stack {} B, lock RAM on stack {} B",
        row.name,
        row.calls,
        row.ticks,
        row.stack,
        row.ram
    );
}

#[entry]
fn main() -> ! {
    let syst = meter::systick().unwrap_or_else(|| fail("peripherals"));
    // Both stand outside the lock's RAM: the NOR flash, and the client's
    // copy of the export.
    let mut flash = Flash::new();
    let mut export = [0u8; EXPORT_MAX];
    let mut meter = Meter {
        syst,
        base: 0,
        peak: 0,
        peak_step: "",
    };
    // The lock's RAM on the stack is what lies below this point: the
    // session's frame (the lock's state and buffers) and its calls.
    meter.base = sp();
    let len = session(&mut flash, &mut export, &mut meter);
    hprintln!(
        "lock RAM on stack, peak: {} B (step {})",
        meter.peak,
        meter.peak_step
    );
    hprintln!("BEGIN EXPORT");
    for line in export[..len].chunks(32) {
        for b in line {
            hprint!("{:02x}", b);
        }
        hprintln!();
    }
    hprintln!("END EXPORT");
    let (erases, writes) = flash.ops();
    hprintln!("flash: {} sector erases, {} writes", erases, writes);
    calibrate(&mut meter.syst);
    hprintln!("PASS");
    exit(true)
}

/// The stack pointer.
#[inline(always)]
fn sp() -> usize {
    cortex_m::register::msp::read() as usize
}

/// The owner session; returns the export's length (in `export`).
#[cfg(not(feature = "baseline"))]
#[inline(never)]
fn session(flash: &mut Flash, export: &mut [u8], m: &mut Meter) -> usize {
    use chacha20::ChaCha20Rng;
    use chacha20::rand_core::SeedableRng;
    use keyway_channel::Error as ChannelError;
    use keyway_channel::handshake::{MSG2_LEN, MSG3_LEN};
    use keyway_channel::pairing::{PAKE2_LEN, PAKE4_LEN, VERIFIER_LEN};
    use keyway_channel::record::MSG4_LEN;
    use keyway_device::boot::{Boot, Reason};
    use keyway_device::journal::TrialState;
    use keyway_smp::Message;
    use keyway_suit::DeviceIdentity;
    use lock::{Lock, Outcome};

    let seed: [u8; 32] = must("device seed", fixture::DEVICE_SEED.try_into());
    let identity = DeviceIdentity::new(
        must("vendor id", fixture::VENDOR_ID.try_into()),
        must("class id", fixture::CLASS_ID.try_into()),
    );
    let verifier: &[u8; VERIFIER_LEN] = must("verifier", fixture::VERIFIER.try_into());
    let rng = ChaCha20Rng::seed_from_u64;
    say!(
        "lock state: Lock {} B (Store {} B, AuditLog {} B, Journal {} B, SessionTable<{}> {} B, Installer {} B, LockPairing {} B, PairingGuard {} B, TrustAnchors {} B, ChaCha20Rng {} B); head buffer {} B; flash {} KiB outside",
        core::mem::size_of::<Lock>(),
        core::mem::size_of::<keyway_agent::store::Store<Flash>>(),
        core::mem::size_of::<keyway_audit::AuditLog<Flash>>(),
        core::mem::size_of::<keyway_device::journal::Journal<Flash>>(),
        lock::SESSIONS,
        core::mem::size_of::<keyway_channel::SessionTable<{ lock::SESSIONS }>>(),
        core::mem::size_of::<keyway_device::install::Installer<Flash>>(),
        core::mem::size_of::<keyway_channel::LockPairing>(),
        core::mem::size_of::<keyway_channel::PairingGuard>(),
        core::mem::size_of::<keyway_suit::TrustAnchors>(),
        core::mem::size_of::<ChaCha20Rng>(),
        lock::HEAD_MAX,
        FLASH_LEN / 1024
    );

    // 1. Factory.
    let mut lock_ram: Option<Lock> = None;
    must(
        "power on",
        Lock::open_into(
            &mut lock_ram,
            flash,
            fixture::ROOT_KEY,
            identity,
            seed,
            rng(LOCK_RNG_SEED),
            0,
        ),
    );
    let Some(lk) = lock_ram.as_mut() else {
        fail("power on")
    };
    let r = m.step("factory: first boot (erased flash)", || lk.boot(flash, 0));
    let b = must("first boot", r);
    check!(
        b.decision.boot == Boot::Recovery,
        "an erased lock must stay in recovery",
    );
    let seq = m.step("factory: provision (verifier, v1 into slot 0)", || {
        lk.provision(flash, verifier, fixture::V1)
    });
    let seq = must("provision", seq);
    check!(seq == 1, "v1 must have sequence 1");
    say!(
        "ok factory: recovery on an erased flash; verifier stored; v1 (seq 1) in slot 0, confirmed"
    );

    // 2. Boot v1 (a reset: the stores reopened from the flash).
    let r = m.step("reset + boot v1 (boot::boot, VerifiedSlot)", || {
        lk.reset(flash, rng(LOCK_RNG_SEED), 1)?;
        lk.boot(flash, 0)
    });
    let b = must("boot v1", r);
    check!(
        b.decision.boot == Boot::Slot(0)
            && b.decision.reason == Reason::Active
            && b.running.map(|i| i.sequence) == Some(1),
        "boot v1: slot 0, active, sequence 1",
    );
    say!("ok boot: Slot(0) (Active), running seq 1");

    // 3. Pairing: first a wrong code (refused, counted in the store),
    // then the right one.
    let now = LOCK_NOW_MS - 2_000;
    let mut pake2 = [0u8; PAKE2_LEN];
    let r = m.step("pair, wrong code: Pake1 -> Pake2", || {
        lk.pake1(now, fixture::PAKE1W, &mut pake2)
    });
    must("pake1 (wrong code)", r);
    check!(
        pake2[..] == *fixture::PAKE2W,
        "Pake2 (wrong code) differs from the host's"
    );
    let mut pake4 = [0u8; PAKE4_LEN];
    let r = m.step("pair, wrong code: Pake3 refused (counted)", || {
        lk.pake3(flash, now, fixture::PAKE3W, &mut pake4)
    });
    core::hint::black_box(&r);
    check!(
        matches!(r, Err(lock::Fail::Channel(ChannelError::WrongCode)))
            && lk.store.state().wrong_codes() == 1
            && lk.store.state().owner_count() == 0,
        "a wrong setup code must be refused, counted in the store, and pair no one",
    );
    say!("ok wrong code: refused (WrongCode), counted in the owner store (1), no owner");
    let now = LOCK_NOW_MS - 1_000;
    let r = m.step("pair: Pake1 -> Pake2 (SPAKE2+)", || {
        lk.pake1(now, fixture::PAKE1, &mut pake2)
    });
    must("pake1", r);
    check!(
        pake2[..] == *fixture::PAKE2,
        "Pake2 differs from the host's"
    );
    let r = m.step("pair: Pake3 -> Pake4 (owner stored, logged)", || {
        lk.pake3(flash, now, fixture::PAKE3, &mut pake4)
    });
    let owner = must("pake3", r);
    check!(
        pake4[..] == *fixture::PAKE4,
        "Pake4 differs from the host's"
    );
    let owner_id = owner.key_id();
    {
        let s = lk.store.state();
        let stored = s.owner(&owner_id);
        check!(
            s.owner_count() == 1
                && stored.is_some_and(|o| {
                    *o.key() == owner.public_key
                        && o.name() == NAME
                        && o.paired_by() == keyway_agent::store::PairedBy::SetupCode
                }),
            "the paired owner must be in the owner store",
        );
        check!(
            s.wrong_codes() == 0,
            "a right code clears the wrong-code count",
        );
    }
    #[cfg(not(feature = "quiet"))]
    {
        hprint!("ok pair: owner \"{}\", key id ", owner.name());
        for b in owner_id {
            hprint!("{:02x}", b);
        }
        hprintln!(", stored; Pake2, Pake4 as on the host");
    }

    // 4. Session.
    let now = LOCK_NOW_MS;
    let mut msg2 = [0u8; MSG2_LEN];
    let r = m.step("session: msg1 -> msg2", || {
        lk.msg1(now, fixture::MSG1, &mut msg2)
    });
    must("msg1", r);
    check!(msg2[..] == *fixture::MSG2, "msg2 differs from the host's");
    let msg3: &[u8; MSG3_LEN] = must("msg3", fixture::MSG3.try_into());
    let mut msg4 = [0u8; MSG4_LEN];
    let r = m.step("session: msg3 -> msg4 (owner from the store)", || {
        lk.msg3(now, msg3, &mut msg4)
    });
    must("msg3", r);
    check!(msg4[..] == *fixture::MSG4, "msg4 differs from the host's");
    say!("ok session: msg2, msg4 as on the host");

    // 5. Upload, 6. consent.
    let mut record = [0u8; RECORD_MAX];
    let mut plain = [0u8; PLAIN_MAX];
    let mut sealed = [0u8; SEALED_MAX];
    let records = Records(fixture::SESSION1).count();
    let chunks = records - 1;
    let total = fixture::V2.len() as u64;
    let mut row = Row::new("upload: SMP frames in session records");
    let mut first: Option<&[u8]> = None;
    for (k, rec) in Records(fixture::SESSION1).enumerate() {
        let now = LOCK_NOW_MS + request_offset_ms(k);
        check!(
            rec.len() <= RECORD_MAX,
            "a recorded request is larger than RECORD_MAX"
        );
        record[..rec.len()].copy_from_slice(rec);
        let r = if k < chunks {
            m.call(&mut row, || {
                lk.request(
                    flash,
                    now,
                    &mut record[..rec.len()],
                    &mut plain,
                    &mut sealed,
                )
            })
        } else {
            print_row(&row);
            say!(
                "ok upload: {} B in {} chunks of {} B",
                total,
                chunks,
                UPLOAD_CHUNK
            );
            // A replayed upload record: refused by the channel, nothing
            // changes.
            let replay = first.unwrap_or(&[]);
            record[..replay.len()].copy_from_slice(replay);
            let journal_before = *lk.journal.state();
            let r = lk.request(
                flash,
                now,
                &mut record[..replay.len()],
                &mut plain,
                &mut sealed,
            );
            core::hint::black_box(&r);
            check!(
                matches!(r, Err(lock::Fail::Channel(ChannelError::Replay { .. })))
                    && *lk.journal.state() == journal_before,
                "a replayed upload record must be refused and change nothing",
            );
            say!("ok replay: the first upload record again is refused (Replay), nothing changed");
            record[..rec.len()].copy_from_slice(rec);
            m.step("consent (stored, slot 1 armed)", || {
                lk.request(
                    flash,
                    now,
                    &mut record[..rec.len()],
                    &mut plain,
                    &mut sealed,
                )
            })
        };
        let (_, n, outcome) = must("request", r);
        check!(n > 0, "no answer");
        if k == 0 {
            first = Some(rec);
        }
        #[cfg(not(feature = "quiet"))]
        {
            let want_off = (((k + 1) * UPLOAD_CHUNK) as u64).min(total);
            let ok = if k + 1 < chunks {
                outcome == Outcome::Uploading { off: want_off }
            } else if k + 1 == chunks {
                outcome
                    == Outcome::Uploaded {
                        off: total,
                        slot: 1,
                        matched: true,
                    }
            } else {
                outcome
                    == Outcome::Consented {
                        slot: 1,
                        sequence: 2,
                    }
            };
            if !ok {
                #[cfg(feature = "verbose")]
                hprintln!("FAIL: request {}: {:?}", k, outcome);
                hprintln!("FAIL: request {}", k);
                fail("unexpected outcome");
            }
        }
    }
    {
        let c = lk.store.state().consent();
        check!(
            c.is_some_and(|c| {
                c.sequence == 2 && c.granted_by == keyway_agent::store::GrantedBy::Owner(owner_id)
            }) && lk.journal.state().trial == TrialState::Pending { slot: 1 },
            "consent stored and slot 1 pending",
        );
    }
    say!("ok consent: stored for seq 2 by the owner; journal Pending {{ slot: 1 }}");

    // 7. Reboot, 8. confirm.
    let now = LOCK_NOW_2_MS - 1_000;
    let r = m.step("reboot: reset + boot::boot starts the trial", || {
        lk.reset(flash, rng(LOCK_RNG_SEED_2), 2)?;
        lk.boot(flash, now)
    });
    let b = must("reboot", r);
    check!(
        b.decision.boot == Boot::Slot(1)
            && matches!(b.decision.reason, Reason::StartTrial { slot: 1, .. })
            && b.running.map(|i| i.sequence) == Some(2),
        "reboot: the trial of slot 1 (seq 2)",
    );
    check!(
        lk.store.state().owner(&owner_id).is_some() && lk.store.state().consent().is_some(),
        "the owner and the consent must survive the reboot",
    );
    say!(
        "ok reboot: Slot(1) (StartTrial {{ slot: 1 }}), running seq 2; owner and consent reopened from the flash"
    );
    let r = m.step("confirm (self-test passed)", || lk.confirm(flash, now, 2));
    let slot = must("confirm", r);
    let s = *lk.journal.state();
    check!(
        slot == 1
            && s.trial == TrialState::Confirmed
            && s.floor == Some(2)
            && lk.store.state().consent().is_none(),
        "confirm: slot 1 confirmed, floor 2, consent spent",
    );
    say!("ok confirm: slot 1, floor 2, consent spent");

    // 9. A new session.
    let now = LOCK_NOW_2_MS;
    let mut msg2 = [0u8; MSG2_LEN];
    let r = m.step("session again: msg1 -> msg2", || {
        lk.msg1(now, fixture::MSG1B, &mut msg2)
    });
    must("msg1 (after the reboot)", r);
    check!(
        msg2[..] == *fixture::MSG2B,
        "msg2 (after the reboot) differs from the host's"
    );
    let msg3: &[u8; MSG3_LEN] = must("msg3", fixture::MSG3B.try_into());
    let mut msg4 = [0u8; MSG4_LEN];
    let r = m.step("session again: msg3 -> msg4", || {
        lk.msg3(now, msg3, &mut msg4)
    });
    must("msg3 (after the reboot)", r);
    check!(
        msg4[..] == *fixture::MSG4B,
        "msg4 (after the reboot) differs from the host's"
    );
    say!("ok session after the reboot: msg2, msg4 as on the host");

    // 10. The log export.
    let mut row = Row::new("log export: SMP frames in session records");
    let mut len = 0usize;
    let mut used = 0;
    for (k, rec) in Records(fixture::SESSION2).enumerate() {
        used = k + 1;
        let now = LOCK_NOW_2_MS + request_offset_ms(k);
        record[..rec.len()].copy_from_slice(rec);
        let r = m.call(&mut row, || {
            lk.request(
                flash,
                now,
                &mut record[..rec.len()],
                &mut plain,
                &mut sealed,
            )
        });
        let (_, n, outcome) = must("log request", r);
        let Outcome::LogChunk {
            off,
            n: got,
            len: total,
        } = outcome
        else {
            #[cfg(feature = "verbose")]
            hprintln!("FAIL: log request {}: {:?}", k, outcome);
            hprintln!("FAIL: log request {}", k);
            fail("unexpected outcome");
        };
        // The client's side: the data out of the answer frame.
        #[cfg(not(feature = "quiet"))]
        {
            check!(off == len as u64 && got > 0, "log chunks in order");
            let rsp = must(
                "log answer",
                keyway_smp::kw::LogRsp::decode(&plain[keyway_smp::HEADER_LEN..n]),
            );
            check!(
                len + rsp.data.len() <= export.len() && rsp.data.len() == got,
                "the answer carries the chunk",
            );
            export[len..len + rsp.data.len()].copy_from_slice(rsp.data);
        }
        core::hint::black_box(n);
        len += got;
        if off + got as u64 >= total {
            break;
        }
    }
    print_row(&row);
    // The next recorded request asks past the end: refused with an SMP
    // error answer (the refusal path), sealed like any answer.
    let Some(rec) = Records(fixture::SESSION2).nth(used) else {
        fail("no log request left")
    };
    let now = LOCK_NOW_2_MS + request_offset_ms(used);
    record[..rec.len()].copy_from_slice(rec);
    let r = m.step("log request past the end (SMP error answer)", || {
        lk.request(
            flash,
            now,
            &mut record[..rec.len()],
            &mut plain,
            &mut sealed,
        )
    });
    let (_, n, outcome) = must("log request past the end", r);
    check!(
        outcome
            == Outcome::Refused {
                rc: keyway_smp::MgmtErr::Inval,
                group_rc: 0,
            },
        "a log request past the end must be refused",
    );
    #[cfg(not(feature = "quiet"))]
    {
        let e = must(
            "error answer",
            keyway_smp::ErrorRsp::decode(&plain[keyway_smp::HEADER_LEN..n]),
        );
        check!(
            e.is_some_and(|e| e.rc == Some(keyway_smp::MgmtErr::Inval as u64)),
            "the answer must be an SMP error body with rc 3 (EINVAL)",
        );
        say!("ok refusal: a log request past the end gets an SMP error answer (rc 3)");
    }
    core::hint::black_box(n);
    #[cfg(not(feature = "quiet"))]
    {
        check_export(&export[..len], lk, seed);
        say!(
            "ok log export: {} B; head signed by the device over the chain head ({} events)",
            len,
            lk.log.next_seq()
        );
    }
    len
}

/// The client's check of the export (not in the `quiet` build): records
/// back to back, the last one the export head, naming the log's chain
/// head and record count, signed by the device key.
#[cfg(not(any(feature = "baseline", feature = "quiet")))]
fn check_export(export: &[u8], lk: &lock::Lock, seed: [u8; 32]) {
    use ed25519_compact::{KeyPair, PublicKey as EdKey, Seed, Signature};
    use keyway_audit::record::{Body, Record, record_len};
    let mut at = 0;
    let mut last = 0..0;
    while at < export.len() {
        let n = must("export record", record_len(&export[at..]));
        last = at..at + n;
        at += n;
    }
    let (head, _) = must("export head", Record::decode(&export[last]));
    let device = KeyPair::from_seed(Seed::new(seed));
    let signature_ok = head.signed_message().is_some_and(|(msg, signed)| {
        EdKey::from_slice(&device.pk[..])
            .ok()
            .is_some_and(|pk| pk.verify(msg, &Signature::new(signed.signature)).is_ok())
    });
    let ok = match head.body {
        Body::ExportHead(s) => {
            head.prev == *lk.log.head() && s.count == lk.log.next_seq() && signature_ok
        }
        _ => false,
    };
    ensure(
        ok,
        "the export's head must name the log's chain head and count, signed by the device",
    );
}

/// The baseline: the same harness (meter, prints, flash, fixtures) with
/// no lock core.
#[cfg(feature = "baseline")]
#[inline(never)]
fn session(flash: &mut Flash, export: &mut [u8], m: &mut Meter) -> usize {
    use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
    let mut row = Row::new("baseline");
    let n = m.call(&mut row, || {
        let mut s = 0usize;
        for f in fixture::ALL.iter() {
            s += core::hint::black_box(*f)
                .iter()
                .map(|&b| usize::from(b))
                .sum::<usize>();
        }
        s += Records(core::hint::black_box(fixture::SESSION1)).count();
        s
    });
    print_row(&row);
    let mut b = [0u8; 4];
    must("read", flash.read(0, &mut b));
    must("erase", flash.erase(0, SECTOR as u32));
    must("write", flash.write(0, &b));
    ensure(n > 0, "fixtures");
    export[0] = core::hint::black_box(n as u8);
    1
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    fail("hard fault")
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("PANIC: {}", info);
    exit(false)
}
