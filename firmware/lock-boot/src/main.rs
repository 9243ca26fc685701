//! Keyway's bootloader for the emulated lock (QEMU `mps2-an386`,
//! Cortex-M4): MCUboot's "RAM load" mode with Keyway's verifier.
//!
//! At reset:
//!
//! 1. open the board's flash (a host file through semihosting,
//!    [`keyway_board::semi_flash`]; `flash=PATH` on QEMU's semihosting
//!    command line, `flash.bin` by default; `cut=N` arms the power cut)
//!    and the boot journal on it;
//! 2. `keyway_device::boot::boot` decides what to boot with a
//!    [`load::Loading`] check: for each slot the decision asks about, the
//!    image is **copied into the application's execution region**
//!    ([`keyway_board::map::APP_EXEC`]) while `VerifiedSlot` reads it, and
//!    the verifier hashes the bytes *from RAM*, after they were copied: the
//!    signature, anti-rollback (boot rule) and the digest are checked on
//!    exactly the bytes that will run;
//! 3. if the chosen slot is not the one whose verified copy is in RAM
//!    (the decision asked about both), it is loaded and verified again;
//!    the recorded result must be the same manifest as the decision's;
//! 4. the vector table is checked (stack pointer in the application's RAM,
//!    reset vector inside the image, Thumb), VTOR and MSP are set, and the
//!    bootloader jumps.
//!
//! It never jumps to an image it did not verify, in RAM, in this boot.
//!
//! With no bootable image (`Boot::Recovery`) it enters serial recovery
//! ([`recovery`], feature `recovery`): MCUmgr SMP over UART0 with the
//! serial transport (`keyway_smp::serial`); an uploaded SUIT envelope is
//! verified (`keyway_suit`) and installed into a slot by the same
//! `Installer` the application uses; only the next boot's verification
//! makes it run.
//!
//! Output on semihosting: one line per step, and `boot: N ticks` (SysTick
//! under `-icount shift=0`: instructions from reset to the jump) with the
//! calibration line, for scripts/qemu-boot-chain.sh.

#![no_std]
#![no_main]

mod load;
#[cfg(feature = "recovery")]
mod recovery;

use cortex_m_rt::{entry, exception};
use keyway_board::semi_flash::SemiFlash;
use keyway_board::{fail, fixture, hprintln, map, meter, semi};
use keyway_device::journal::Journal;
use keyway_suit::{DeviceIdentity, PublicKey, TrustAnchors};

/// The vendor's Ed25519 public key (the trust anchor).
const ROOT_KEY: &[u8] = fixture!("root.pub");
/// The device's vendor and class ids.
const VENDOR_ID: [u8; 16] = *fixture!("vendor-id.bin");
const CLASS_ID: [u8; 16] = *fixture!("class-id.bin");

/// What the bootloader trusts and who the device is.
pub struct Device {
    /// The trust anchors (the vendor's key).
    pub anchors: TrustAnchors,
    /// The device's vendor and class.
    pub identity: DeviceIdentity,
}

/// The serial port's receive interrupt (recovery only) just wakes the
/// core from `wfi`.
#[exception]
unsafe fn DefaultHandler(_irqn: i16) {
    keyway_board::uart::ack_interrupts();
}

#[entry]
fn main() -> ! {
    let mut syst = meter::systick().unwrap_or_else(|| fail("peripherals"));
    let mut line = [0u8; 256];
    let cmd = semi::cmdline(&mut line).unwrap_or("");
    let path = semi::arg(cmd, "flash").unwrap_or("flash.bin");
    let calibrate = semi::arg_u32(cmd, "calibrate") == Some(1);
    let Some(mut flash) = SemiFlash::open(path, map::FLASH_SIZE) else {
        fail("cannot open the flash file")
    };
    if let Some(n) = flash.cut_from_cmdline() {
        hprintln!("lock-boot: power cut after {} flash operations", n);
    }
    let anchors = PublicKey::from_raw(ROOT_KEY)
        .and_then(|k| TrustAnchors::new(&[k], 1))
        .unwrap_or_else(|_| fail("trust anchor"));
    let device = Device {
        anchors,
        identity: DeviceIdentity::new(VENDOR_ID, CLASS_ID),
    };
    if calibrate {
        meter::calibrate(&mut syst);
    }
    let (outcome, ticks) = meter::timed(&mut syst, || load::boot(&mut flash, &device));
    match outcome {
        load::Outcome::Jump(image) => {
            hprintln!(
                "lock-boot: slot {} (sequence {}, {} bytes) verified in RAM; boot: {} ticks",
                image.slot,
                image.sequence,
                image.size,
                ticks
            );
            syst.disable_counter();
            syst.disable_interrupt();
            // SAFETY: `image` was copied into APP_EXEC and verified there
            // in this boot, and its vector table checked (load::jump).
            unsafe { load::jump(&image) }
        }
        load::Outcome::Recovery(why) => {
            hprintln!(
                "lock-boot: no bootable image ({}): serial recovery on UART0",
                why
            );
            recover(&mut flash, &device)
        }
    }
}

#[cfg(feature = "recovery")]
fn recover(flash: &mut SemiFlash, device: &Device) -> ! {
    recovery::run(flash, device)
}

#[cfg(not(feature = "recovery"))]
fn recover(_flash: &mut SemiFlash, _device: &Device) -> ! {
    keyway_board::exit(false)
}

/// Opens the journal (a reset reads it back from the flash).
pub fn journal(flash: &mut SemiFlash) -> Journal<SemiFlash> {
    Journal::open(flash, map::layout().journal).unwrap_or_else(|_| fail("journal"))
}
