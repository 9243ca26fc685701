//! Puts the `memory.x` chosen by this crate's `*-map` feature on the linker
//! search path (cortex-m-rt's `link.x` includes `memory.x`): the memory map
//! is written once, here, and documented in `src/map.rs`.
use std::{env, fs, path::PathBuf};

/// The on-target tests: roomy on purpose, the harnesses enforce budgets.
const HARNESS: &str = "/* keyway-board harness-map: QEMU mps2-an386 (Cortex-M4).
 *   0x0000_0000  ZBT SSRAM1, 4 MiB   - code memory (QEMU loads the ELF here)
 *   0x2000_0000  ZBT SSRAM2/3, 4 MiB - data memory
 * Budgets are enforced by the harness scripts, not by this map. */
MEMORY
{
  FLASH : ORIGIN = 0x00000000, LENGTH = 4M
  RAM   : ORIGIN = 0x20000000, LENGTH = 4M
}
";

/// The bootloader: its code where the board boots (QEMU loads it there),
/// its RAM at the top of SSRAM2/3, apart from the application's.
const BOOT: &str = "/* keyway-board boot-map (see keyway_board::map). The code region is larger
 * than the 64 KiB budget so that an over-budget build links and is measured. */
MEMORY
{
  FLASH : ORIGIN = 0x00000000, LENGTH = 256K
  RAM   : ORIGIN = 0x20300000, LENGTH = 1M
}
";

/// The application: linked to run where the bootloader copies it.
const APP: &str = "/* keyway-board app-map (see keyway_board::map): the bootloader copies the
 * verified image here (RAM load) and jumps to its vector table. */
MEMORY
{
  FLASH : ORIGIN = 0x00100000, LENGTH = 1M
  RAM   : ORIGIN = 0x20000000, LENGTH = 3M
}
";

fn main() {
    let feature = |f: &str| env::var_os(format!("CARGO_FEATURE_{f}")).is_some();
    let maps: Vec<&str> = [
        ("HARNESS_MAP", HARNESS),
        ("BOOT_MAP", BOOT),
        ("APP_MAP", APP),
    ]
    .into_iter()
    .filter(|(f, _)| feature(f))
    .map(|(_, m)| m)
    .collect();
    match maps.as_slice() {
        [] => {}
        [map] => {
            let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
            fs::write(out.join("memory.x"), map).unwrap();
            println!("cargo:rustc-link-search={}", out.display());
        }
        _ => panic!("keyway-board: enable at most one of harness-map, boot-map, app-map"),
    }
}
