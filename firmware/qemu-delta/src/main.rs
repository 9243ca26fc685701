//! On-target test of keyway-delta's decoder (Cortex-M4, QEMU mps2-an386).
//!
//! A RAM-backed NOR flash (keyway-board's `RamFlash`: 4 KiB sectors, 4-byte
//! writes that only clear bits) holds the base image in slot 0. The
//! firmware applies a real patch (made by `keyway diff` on the host,
//! embedded at build time) as a lock would: the `Patcher` reads the base
//! from slot 0 through `NorFlash::read`, and its output is written into
//! slot 1 (each sector erased before its first write), fed in 244-byte
//! pieces (a BLE packet's worth). It then hashes slot 1 and compares the
//! SHA-256 with the patch header's output digest.
//!
//! Run twice: once with the stack painted (the decoder's calls, `feed` and
//! `finish`, measured; the `Patcher`'s own 7,992 bytes live in `main`'s
//! frame and are reported apart), once with SysTick counting, for the
//! instruction count under `qemu -icount`. Exits through semihosting:
//! success only if the output matched and the stack stayed within budget.

#![no_std]
#![no_main]
#![cfg_attr(feature = "baseline", allow(dead_code, unused_imports))]

use keyway_board::meter;
#[allow(dead_code)]
use keyway_board::ram_flash;
#[allow(dead_code)]
use keyway_board::stack;
use meter::{calibrate, timed};

use core::cell::RefCell;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use keyway_board::fail;
use keyway_delta::{BaseReader, HEADER_LEN, PatchHeader, Patcher};
use ram_flash::{ERASED, RamFlash, SECTOR, WORD};
use sha2::{Digest, Sha256};

static OLD: &[u8] = keyway_board::fixture!("old.bin");
static PATCH: &[u8] = keyway_board::fixture!("patch.kwd");

const SLOT: usize = 8 * SECTOR;
const FLASH_LEN: usize = 2 * SLOT;
/// Patch bytes per `feed`, as a BLE link delivers them.
const CHUNK: usize = 244;
/// Output bytes per flash write (a multiple of the write unit).
const OUT_BUF: usize = 256;

/// Stack budget for one decoder call: `KEYWAY_DELTA_STACK_BUDGET` or 2 KiB.
const STACK_BUDGET: usize = keyway_board::budget!("KEYWAY_DELTA_STACK_BUDGET", 2048);

type Flash = RamFlash<FLASH_LEN>;

/// Slot 0 as the patcher's base.
struct Base<'a>(&'a RefCell<&'a mut Flash>);

impl BaseReader for Base<'_> {
    type Error = ();
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), ()> {
        self.0.borrow_mut().read(offset, buf).map_err(|_| ())
    }
}

/// Writes the output into slot 1 through a word-aligned buffer, erasing
/// each sector before its first write.
struct Out {
    buf: [u8; OUT_BUF],
    fill: usize,
    written: u32,
}

impl Out {
    const fn new() -> Self {
        Out {
            buf: [0; OUT_BUF],
            fill: 0,
            written: 0,
        }
    }

    fn push(&mut self, flash: &mut Flash, mut data: &[u8]) -> Result<(), ()> {
        while !data.is_empty() {
            let n = (OUT_BUF - self.fill).min(data.len());
            self.buf[self.fill..self.fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            data = &data[n..];
            if self.fill == OUT_BUF {
                self.flush(flash)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, flash: &mut Flash) -> Result<(), ()> {
        if self.fill == 0 {
            return Ok(());
        }
        let at = (SLOT as u32) + self.written;
        if (self.written as usize).is_multiple_of(SECTOR) {
            flash.erase(at, at + SECTOR as u32).map_err(|_| ())?;
        }
        let len = self.fill.div_ceil(WORD) * WORD;
        self.buf[self.fill..len].fill(ERASED);
        flash.write(at, &self.buf[..len]).map_err(|_| ())?;
        self.written += self.fill as u32;
        self.fill = 0;
        Ok(())
    }
}

/// Feeds the whole patch body, then finishes. Not inlined, so that the
/// stack measurement covers exactly the decoder's calls.
#[inline(never)]
fn apply(patcher: &mut Patcher, flash: &mut Flash, out: &mut Out) -> Result<(), ()> {
    let cell = RefCell::new(flash);
    let mut base = Base(&cell);
    let mut sink = |c: &[u8]| out.push(&mut cell.borrow_mut(), c);
    for c in PATCH[HEADER_LEN..].chunks(CHUNK) {
        patcher.feed(c, &mut base, &mut sink).map_err(|_| ())?;
    }
    patcher.finish(&mut base, &mut sink).map_err(|_| ())?;
    out.flush(&mut cell.borrow_mut())
}

/// The baseline: the same flash traffic with the base copied, no decoder.
#[inline(never)]
fn copy(flash: &mut Flash, out: &mut Out, len: usize) -> Result<(), ()> {
    let mut buf = [0u8; 128];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(buf.len());
        flash.read(at as u32, &mut buf[..n]).map_err(|_| ())?;
        out.push(flash, &buf[..n])?;
        at += n;
    }
    out.flush(flash)
}

fn sha256_of(flash: &mut Flash, start: usize, len: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut buf = [0u8; 128];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(buf.len());
        if flash.read((start + at) as u32, &mut buf[..n]).is_err() {
            fail("reading the flash");
        }
        h.update(&buf[..n]);
        at += n;
    }
    h.finalize().into()
}

/// A flash with the base in slot 0.
fn factory() -> Flash {
    let mut flash = Flash::new();
    let mut buf = [ERASED; OUT_BUF];
    for (i, c) in OLD.chunks(OUT_BUF).enumerate() {
        buf.fill(ERASED);
        buf[..c.len()].copy_from_slice(c);
        let len = c.len().div_ceil(WORD) * WORD;
        if flash.write((i * OUT_BUF) as u32, &buf[..len]).is_err() {
            fail("writing the base");
        }
    }
    flash
}

#[entry]
fn main() -> ! {
    let header = match PatchHeader::parse(PATCH) {
        Ok(h) => h,
        Err(_) => fail("patch header"),
    };
    if OLD.len() > SLOT || header.out_size as usize > SLOT {
        fail("images larger than a slot");
    }
    let mut flash = factory();
    let base_digest = sha256_of(&mut flash, 0, OLD.len());
    hprintln!(
        "delta: base {} B, patch {} B, output {} B; chunks of {} B",
        OLD.len(),
        PATCH.len(),
        header.out_size,
        CHUNK
    );

    #[cfg(not(feature = "baseline"))]
    {
        // 1. Apply with the stack painted.
        let mut patcher = match Patcher::new(&header, OLD.len() as u32, &base_digest) {
            Ok(p) => p,
            Err(_) => fail("the patch's base is not slot 0"),
        };
        let mut out = Out::new();
        let (r, usage) = stack::measure(|| apply(&mut patcher, &mut flash, &mut out));
        if r.is_err() {
            fail("applying the patch");
        }
        if sha256_of(&mut flash, SLOT, header.out_size as usize) != header.out_digest {
            fail("the output's SHA-256 differs from the patch header's");
        }
        hprintln!("output SHA-256 matches the patch header");
        hprintln!(
            "stack of the decoder's calls (feed, finish, flash writes): {} B (budget {}); Patcher state {} B (not on the measured stack)",
            usage.call,
            STACK_BUDGET,
            core::mem::size_of::<Patcher>()
        );
        if usage.call > STACK_BUDGET {
            fail("stack over budget");
        }

        // 2. Again, timed by SysTick (meaningful under qemu -icount).
        let mut flash = factory();
        let mut patcher = match Patcher::new(&header, OLD.len() as u32, &base_digest) {
            Ok(p) => p,
            Err(_) => fail("the patch's base is not slot 0"),
        };
        let mut out = Out::new();
        let mut syst = meter::systick().unwrap_or_else(|| fail("peripherals"));
        let (r, ticks) = timed(&mut syst, || apply(&mut patcher, &mut flash, &mut out));
        if r.is_err() {
            fail("applying the patch (timed)");
        }
        // The same flash traffic without the decoder: the base copied.
        let mut plain = factory();
        let mut out2 = Out::new();
        let (r, copy_ticks) = timed(&mut syst, || copy(&mut plain, &mut out2, OLD.len()));
        if r.is_err() {
            fail("copy (timed)");
        }
        hprintln!(
            "SysTick ticks, copy of the base with the same flash writes: {}",
            copy_ticks
        );
        calibrate(&mut syst);
        hprintln!("SysTick ticks for the whole apply: {}", ticks);
        if sha256_of(&mut flash, SLOT, header.out_size as usize) != header.out_digest {
            fail("the output's SHA-256 differs (timed run)");
        }
    }
    #[cfg(feature = "baseline")]
    {
        let mut out = Out::new();
        // The same timing code as the full build, so that the code-size
        // difference is the decoder's.
        let mut syst = meter::systick().unwrap_or_else(|| fail("peripherals"));
        let (r, ticks) = timed(&mut syst, || copy(&mut flash, &mut out, OLD.len()));
        if r.is_err() {
            fail("copy");
        }
        hprintln!("baseline: {:?}, {} ticks", &base_digest[..4], ticks);
        calibrate(&mut syst);
    }
    hprintln!("PASS");
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        core::hint::spin_loop();
    }
}
