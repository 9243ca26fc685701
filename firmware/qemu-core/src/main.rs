//! On-target run of the whole lock core (Cortex-M4, QEMU mps2-an386): one
//! owner session, in memory, every received frame through keyway-agent's
//! `Agent::handle` with the lock's `Device`: `firmware/lock-core`'s
//! `lock` module, the one lock-app runs (the installer, journal, boot and
//! audit log around the agent), on this harness's RAM flash and flash
//! map, without lock-core's `image-state` feature (the image group for
//! stock MCUmgr tools, which this session does not use).
//!
//! The session, each step asserted (the first failure prints `FAIL` and
//! exits with failure through semihosting):
//!
//! 1. factory: the stores opened on an erased flash, the pairing verifier
//!    stored, v1 (signed by the host CLI) installed into slot 0, confirmed;
//! 2. boot: `boot::boot` with `VerifiedSlot` boots v1;
//! 3. the button opens the presence window; someone else's wrong setup
//!    code: Pake1 charged to the owner store, Pake3 refused
//!    (`BadSetupCode`), no owner; then the owner pairs with the right code
//!    (SPAKE2+): stored in the owner store and logged, the count cleared,
//!    the window closed; Pake2 and Pake4 equal to the host's bytes;
//! 4. a session handshake (msg1..msg4) with the owner looked up in the
//!    store; msg2 and msg4 equal to the host's bytes;
//! 5. the upload of v2 as SMP image-upload frames sealed in session
//!    records: the head verified from the first chunks, the payload
//!    streamed by the `Installer` into slot 1, the file's SHA-256 matched;
//!    a replayed record is refused by the agent (`RecordRefused`) and
//!    changes nothing;
//! 6. the release notes of the verified update (sealed): served, which
//!    consent requires;
//! 7. the owner's consent (sealed): stored by the agent, slot 1 armed by
//!    the `Device`;
//! 8. the reboot: the agent, journal, owner store and audit log reopened
//!    from the flash, `boot::boot` starts the trial of v2; the consent and
//!    the owner survived;
//! 9. the self-test passes: `boot::confirm` raises the floor to 2, the
//!    consent is spent;
//! 10. a new session (the table is RAM; the owner comes from the store);
//! 11. the log export over sealed SMP log requests, reassembled: its head
//!     record names the log's chain head and count, and its signature
//!     verifies with the device key. The export is printed in hex for the
//!     host's `keyway log verify`. A log request past the end is refused
//!     with an SMP error answer (rc 3).
//!
//! The owner's client is recorded: build.rs ran its side on the host with
//! fixed seeds and the firmware replays its frames. In the checked build
//! the client also runs here, from the same seeds, to open the lock's
//! sealed answers (each of its records must equal the recorded one); the
//! `quiet` build (the code figure) has no client.
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

#[allow(dead_code)]
mod flash_map;
/// The lock core on this harness's flash.
#[cfg(not(feature = "baseline"))]
mod lock {
    pub use lock_core::lock::{HEAD_MAX, SESSIONS};
    /// The lock's RAM.
    pub type Lock<'a> = lock_core::lock::Lock<'a, crate::Flash>;
    /// The `Device`.
    pub type Shell<'a> = lock_core::lock::Shell<'a, crate::Flash>;
    /// The handle to the one flash.
    pub type Shared<'a> = lock_core::lock::Shared<'a, crate::Flash>;
    const _: () = assert!(lock_core::lock::LOG_CHUNK == crate::scenario::LOG_CHUNK);
}
use keyway_board::meter;
#[allow(dead_code)]
use keyway_board::ram_flash;
#[allow(dead_code)]
mod scenario;
#[allow(dead_code)]
use keyway_board::stack;
use meter::{calibrate, timed};

use core::cell::RefCell;
use core::fmt::Debug;

use cortex_m_rt::entry;
use cortex_m_semihosting::{hprint, hprintln};
use flash_map::FLASH_LEN;
use keyway_board::{exit, fail};
use ram_flash::RamFlash;
use scenario::*;

/// The lock's flash (`flash_map`).
pub type Flash = RamFlash<FLASH_LEN>;

/// Room for the client's copy of the export.
const EXPORT_MAX: usize = 4096;
/// The radio's receive buffer: the largest frame of the run (an upload
/// chunk's frame, sealed in a `sealed` frame).
const RX_MAX: usize = 768;

/// The fixtures (scripts/qemu-core.sh) and the client's messages as
/// build.rs recorded them on the host (`ALL`: every one of them, which
/// every build keeps in its image).
mod fixture {
    include!(concat!(env!("OUT_DIR"), "/recorded.rs"));
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
        let mut f = Some(f);
        let mut r = None;
        self.measure(row, &mut || r = f.take().map(|f| f()));
        r.unwrap_or_else(|| fail("a measured call did not run"))
    }

    /// The meter itself, not generic: one copy for every measured call
    /// (a copy per closure would be harness code in the code figure).
    #[inline(never)]
    fn measure(&mut self, row: &mut Row, f: &mut dyn FnMut()) {
        let syst = &mut self.syst;
        let (((), ticks), usage) = stack::measure(|| timed(syst, f));
        let ram = usage.total.saturating_sub(stack::stack_top() - self.base);
        row.calls += 1;
        row.ticks += ticks;
        row.stack = row.stack.max(usage.call);
        row.ram = row.ram.max(ram);
        if ram > self.peak {
            self.peak = ram;
            self.peak_step = row.name;
        }
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
    let flash = RefCell::new(Flash::new());
    // The flash as the factory programmed it (build.rs).
    {
        use embedded_storage::nor_flash::NorFlash;
        must(
            "factory image",
            flash.borrow_mut().write(0, fixture::FACTORY),
        );
    }
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
    let len = session(&flash, &mut export, &mut meter);
    hprintln!(
        "lock RAM on stack, peak: {} B (step {})",
        meter.peak,
        meter.peak_step
    );
    keyway_board::print_export(&export[..len]);
    let (erases, writes) = flash.borrow().ops();
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

/// The owner's client in the checked build: it reruns its side of each
/// handshake with the seeds build.rs used (so its session keys are the
/// host's), seals each recorded request again (the record must equal the
/// recorded one) and opens the lock's sealed answers. Not in the `quiet`
/// build: the client is not the lock.
#[cfg(not(any(feature = "baseline", feature = "quiet")))]
mod client {
    use super::*;
    use chacha20::ChaCha20Rng;
    use chacha20::rand_core::SeedableRng;
    use keyway_channel::handshake::MSG3_LEN;
    use keyway_channel::{ClientHandshake, ClientSession};
    use keyway_smp::header::{split_request, split_response};
    use keyway_smp::{Answer, MAX_BODY, MAX_FRAME, Op, Request, Response};

    /// What the client reads in an answer frame.
    pub fn answer<'a>(frame: &'a [u8], what: &str) -> Answer<'a> {
        let (h, body) = must(what, split_response(frame, MAX_BODY));
        // The answer is decoded by the request's op.
        let op = if h.op == Op::ReadRsp {
            Op::Read
        } else {
            Op::Write
        };
        must(what, Response::decode(op, h.group, h.id, body))
    }

    /// The request in a recorded frame.
    fn request<'a>(frame: &'a [u8], what: &str) -> Request<'a> {
        let (h, body) = must(what, split_request(frame, MAX_BODY));
        must(what, Request::decode(h.op, h.group, h.id, body))
    }

    /// msg1 again from the seed (it must equal the recorded frame's);
    /// the lock's msg2 in `out` (it must equal the host's) taken, msg3
    /// made (it must equal the recorded frame's).
    pub fn handshake1(
        seed: u64,
        msg1: &[u8],
        out: &[u8],
        msg2: &[u8],
        device_pk: &[u8; 32],
        msg3: &[u8],
    ) -> ClientSession {
        let (hs, m1) = ClientHandshake::start(&mut ChaCha20Rng::seed_from_u64(seed));
        check!(
            matches!(request(msg1, "msg1"), Request::SessionStart(r) if r.msg == m1),
            "the client's msg1 differs from the recorded one"
        );
        let Answer::Ok(Response::SessionStart(a)) = answer(out, "msg2") else {
            fail("no msg2")
        };
        check!(a.msg == msg2, "msg2 differs from the host's");
        let owner = keyway_channel::SigningKey::from_bytes(&OWNER_SEED);
        let mut m3 = [0u8; MSG3_LEN];
        let session = must("client: msg2", hs.msg2(a.msg, device_pk, &owner, &mut m3));
        check!(
            matches!(request(msg3, "msg3"), Request::SessionFinish(r) if r.msg == m3),
            "the client's msg3 differs from the recorded one"
        );
        session
    }

    /// The lock's msg4 in `out`: it must equal the host's and open.
    pub fn handshake3(mut session: ClientSession, out: &[u8], msg4: &[u8]) -> Client {
        let Answer::Ok(Response::SessionFinish(a)) = answer(out, "msg4") else {
            fail("no msg4")
        };
        check!(a.msg == msg4, "msg4 differs from the host's");
        let mut m4 = [0u8; 64];
        let Some(buf) = m4.get_mut(..a.msg.len()) else {
            fail("msg4 too long")
        };
        buf.copy_from_slice(a.msg);
        must("client: msg4", session.open_response(0, buf));
        Client {
            session,
            back: [0; MAX_FRAME],
        }
    }

    /// A client in a session.
    pub struct Client {
        session: ClientSession,
        back: [u8; MAX_FRAME],
    }

    impl Client {
        /// Seals request `k` again: the record must equal the recorded
        /// `sealed` frame's.
        pub fn seal(&mut self, k: usize, plain: &[u8], outer: &[u8]) {
            let mut rec = [0u8; MAX_FRAME];
            let (_, n) = must(
                "client seal",
                self.session
                    .seal_request(request_offset_ms(k), plain, &mut rec),
            );
            check!(
                matches!(request(outer, "sealed"), Request::Sealed(s) if s.msg == &rec[..n]),
                "the client's record differs from the recorded one"
            );
        }

        /// Opens the lock's sealed answer to request `k`.
        pub fn open(&mut self, k: usize, out: &[u8]) -> Answer<'_> {
            let Answer::Ok(Response::Sealed(s)) = answer(out, "sealed answer") else {
                fail("the answer is not sealed")
            };
            let n = s.msg.len();
            let Some(buf) = self.back.get_mut(..n) else {
                fail("sealed answer too long")
            };
            buf.copy_from_slice(s.msg);
            let r = must(
                "open the answer",
                self.session.open_response(request_offset_ms(k), buf),
            );
            answer(&self.back[r.payload], "the sealed answer")
        }
    }
}
/// The client's check of the export (not in the `quiet` build): records
/// back to back, the last one the export head, naming the log's chain
/// head and record count, signed by the device key.
#[cfg(not(any(feature = "baseline", feature = "quiet")))]
fn check_export(export: &[u8], lk: &lock::Lock, seed: [u8; 32]) {
    let log = &lk.shell.log;
    use keyway_audit::record::{Body, Record, record_len};
    let mut at = 0;
    let mut last = 0..0;
    while at < export.len() {
        let n = must("export record", record_len(&export[at..]));
        last = at..at + n;
        at += n;
    }
    let (head, _) = must("export head", Record::decode(&export[last]));
    let device = keyway_channel::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let signature_ok = head.signed_message().is_some_and(|(msg, signed)| {
        keyway_channel::ed25519::verify(&device, &msg, &signed.signature)
    });
    let ok = match head.body {
        Body::ExportHead(s) => {
            head.prev == *log.head() && s.count == log.next_seq() && signature_ok
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
fn session(flash: &RefCell<Flash>, export: &mut [u8], m: &mut Meter) -> usize {
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
    let mut flash = flash.borrow_mut();
    must("read", flash.read(0, &mut b));
    must("erase", flash.erase(0, flash_map::SECTOR as u32));
    must("write", flash.write(0, &b));
    ensure(n > 0, "fixtures");
    export[0] = core::hint::black_box(n as u8);
    1
}

// After the macros (`say!`, `check!`), which it uses.
#[cfg(not(feature = "baseline"))]
mod session;
#[cfg(not(feature = "baseline"))]
use session::session;
