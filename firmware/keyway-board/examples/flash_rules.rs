//! On-target check of the board's drivers: the semihosting flash's rules
//! (erase pages, word writes, program only clears bits, bounds), its
//! persistence across runs and its power cut, and the map's invariants.
//! Run by scripts/qemu-boot-chain.sh: first `phase=1` (writes a pattern),
//! then `phase=2` (a new QEMU run: the pattern is still there), then
//! `phase=3 cut=1` (the second write is torn and QEMU exits with status 3),
//! then `phase=4` (the torn word is there: half new, half old).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use keyway_board::ram_flash::FlashError;
use keyway_board::semi_flash::SemiFlash;
use keyway_board::{exit, fail, hprintln, semi};

const PATTERN: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0];

fn check(what: &str, ok: bool) {
    if ok {
        hprintln!("ok {}", what);
    } else {
        fail(what)
    }
}

#[entry]
fn main() -> ! {
    let mut line = [0u8; 128];
    let cmd = semi::cmdline(&mut line).unwrap_or("");
    let phase = semi::arg_u32(cmd, "phase").unwrap_or(1);
    let path = semi::arg(cmd, "flash").unwrap_or("flash-rules.bin");
    let Some(mut f) = SemiFlash::open(path, 8 * 4096) else {
        fail("open the flash file")
    };
    let mut buf = [0u8; 8];
    match phase {
        1 => {
            check("erase page 1", f.erase(4096, 8192).is_ok());
            f.read(4096, &mut buf).unwrap();
            check("erased reads 0xFF", buf == [0xFF; 8]);
            check("write a word pair", f.write(4096, &PATTERN).is_ok());
            check(
                "unaligned offset refused",
                f.write(4098, &[0; 4]) == Err(FlashError::NotAligned { offset: 4098 }),
            );
            check(
                "odd length refused",
                f.write(4104, &[0; 3]) == Err(FlashError::NotAligned { offset: 4104 }),
            );
            check(
                "setting a bit refused",
                f.write(4096, &[0xFF, 0x34, 0x56, 0x78])
                    == Err(FlashError::SetsBit { offset: 4096 }),
            );
            f.read(4096, &mut buf).unwrap();
            check("a refused write changed nothing", buf == PATTERN);
            check(
                "clearing more bits is allowed",
                f.write(4096, &[0x10, 0x34, 0x56, 0x78]).is_ok(),
            );
            check(
                "partial-page erase refused",
                f.erase(4096, 6144) == Err(FlashError::NotAligned { offset: 4096 }),
            );
            check(
                "out of bounds refused",
                f.write(8 * 4096, &[0; 4]) == Err(FlashError::OutOfBounds { offset: 8 * 4096 }),
            );
            check(
                "read past the end refused",
                f.read(8 * 4096 - 4, &mut buf)
                    == Err(FlashError::OutOfBounds {
                        offset: 8 * 4096 - 4,
                    }),
            );
        }
        2 => {
            f.read(4096, &mut buf).unwrap();
            check(
                "the write survived the restart",
                buf[..4] == [0x10, 0x34, 0x56, 0x78] && buf[4..] == PATTERN[4..],
            );
            check("erase page 2", f.erase(8192, 12288).is_ok());
        }
        3 => {
            let armed = f.cut_from_cmdline();
            check("cut armed from the command line", armed == Some(1));
            check("first write before the cut", f.write(8192, &[0; 4]).is_ok());
            // Torn: the first half of the range plus half a word.
            let _ = f.write(8196, &[0x00; 8]);
            fail("the power cut did not stop the run")
        }
        _ => {
            f.read(8196, &mut buf).unwrap();
            check(
                "the cut write is torn mid-word (6 of its 8 bytes)",
                buf == [0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
            );
        }
    }
    exit(true)
}
