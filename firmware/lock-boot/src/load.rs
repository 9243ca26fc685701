//! The boot decision with RAM load: the image is copied into the
//! execution region as the verifier reads it, so what the verifier hashes
//! is the RAM copy, and the jump.

use core::ops::Range;

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use keyway_board::map::{self, APP_EXEC, APP_RAM};
use keyway_board::ram_flash::FlashError;
use keyway_board::semi_flash::SemiFlash;
use keyway_device::boot::{self, Boot, SlotCheck};
use keyway_device::install::SlotLayout;
use keyway_device::verified::{HEAD_BUF_LEN, SlotInfo, VerifiedSlot};

use crate::Device;

/// An image verified in RAM, ready to run.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    /// The slot it came from.
    pub slot: u8,
    /// Its manifest's sequence number.
    pub sequence: u64,
    /// Its size in bytes (from APP_EXEC's start).
    pub size: u32,
    /// Its initial stack pointer and reset vector.
    sp: u32,
    reset: u32,
}

/// What the bootloader does next.
pub enum Outcome {
    /// Jump to this image.
    Jump(Loaded),
    /// No image may run: recovery, and why.
    Recovery(&'static str),
}

/// The execution region as bytes.
fn exec_region() -> &'static mut [u8] {
    // SAFETY: APP_EXEC is RAM (QEMU's SSRAM1) that nothing else in the
    // bootloader uses (its code and data lie elsewhere, see map); the
    // bootloader is single-threaded and holds one such slice at a time.
    unsafe { core::slice::from_raw_parts_mut(APP_EXEC.start as *mut u8, APP_EXEC.len as usize) }
}

/// The flash as the verifier sees it while one slot is loaded: reads of
/// the slot's image area are copied into the execution region first and
/// served from there, so the verifier hashes the RAM copy. Everything
/// else reads from the flash; it writes nothing.
struct RamLoad<'a> {
    flash: &'a mut SemiFlash,
    image: Range<u32>,
    ram: &'a mut [u8],
    /// How far the copy reaches (bytes from APP_EXEC's start).
    loaded: u32,
}

impl ErrorType for RamLoad<'_> {
    type Error = FlashError;
}

impl ReadNorFlash for RamLoad<'_> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let end = offset
            .checked_add(bytes.len() as u32)
            .ok_or(FlashError::OutOfBounds { offset })?;
        if offset < self.image.start || end > self.image.end {
            return self.flash.read(offset, bytes);
        }
        let at = (offset - self.image.start) as usize;
        let ram = self
            .ram
            .get_mut(at..at + bytes.len())
            .ok_or(FlashError::OutOfBounds { offset })?;
        self.flash.read(offset, ram)?;
        bytes.copy_from_slice(ram);
        self.loaded = self.loaded.max(end - self.image.start);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.flash.capacity()
    }
}

impl NorFlash for RamLoad<'_> {
    const WRITE_SIZE: usize = SemiFlash::WRITE_SIZE;
    const ERASE_SIZE: usize = SemiFlash::ERASE_SIZE;

    fn erase(&mut self, from: u32, _to: u32) -> Result<(), FlashError> {
        Err(FlashError::Io { offset: from })
    }

    fn write(&mut self, offset: u32, _bytes: &[u8]) -> Result<(), FlashError> {
        Err(FlashError::Io { offset })
    }
}

/// The boot decision's slot check: loads the slot into RAM and verifies
/// it there; remembers which slot's verified copy the RAM holds.
pub struct Loading<'a> {
    layout: &'a SlotLayout,
    device: &'a Device,
    state: keyway_device::journal::PersistentState,
    /// The slot whose verified copy is in RAM, with what it verified as.
    pub in_ram: Option<(u8, SlotInfo)>,
    /// How far any copy reached (to clear the rest).
    high: u32,
}

impl<'a> Loading<'a> {
    /// Loads `slot` into RAM and verifies the copy.
    pub fn load(&mut self, flash: &mut SemiFlash, slot: u8) -> Option<SlotInfo> {
        self.in_ram = None;
        let place = self.layout.place::<SemiFlash>(slot)?;
        let mut view = RamLoad {
            flash,
            image: place.image.clone(),
            ram: exec_region(),
            loaded: 0,
        };
        let mut head = [0u8; HEAD_BUF_LEN];
        let info = VerifiedSlot::<256>::new(
            self.layout,
            &self.device.anchors,
            &self.device.identity,
            &self.state,
            None,
            &mut head,
        )
        .check(&mut view, slot);
        self.high = self.high.max(view.loaded);
        let info = info.ok()?;
        self.in_ram = Some((slot, info));
        Some(info)
    }
}

impl SlotCheck<SemiFlash> for Loading<'_> {
    fn verified(&mut self, flash: &mut SemiFlash, slot: u8) -> bool {
        self.load(flash, slot).is_some()
    }
}

/// Steps 1 to 4 of the crate documentation, up to the jump.
pub fn boot(flash: &mut SemiFlash, device: &Device) -> Outcome {
    let layout = map::layout();
    let mut journal = crate::journal(flash);
    let mut check = Loading {
        layout: &layout,
        device,
        state: *journal.state(),
        in_ram: None,
        high: 0,
    };
    let decision = match boot::boot(&mut journal, flash, &mut check) {
        Ok(d) => d,
        Err(_) => return Outcome::Recovery("the journal could not commit the decision"),
    };
    let Boot::Slot(slot) = decision.boot else {
        return Outcome::Recovery("no slot verified");
    };
    // The decision may have asked about the other slot last.
    let info = match check.in_ram {
        Some((s, info)) if s == slot => info,
        _ => {
            // A commit may have raised nothing the boot rule uses, but
            // verify against the state the journal holds now.
            check.state = *journal.state();
            match check.load(flash, slot) {
                Some(info) => info,
                None => return Outcome::Recovery("the chosen slot did not verify in RAM"),
            }
        }
    };
    let size = match u32::try_from(info.image_size) {
        Ok(s) if (8..=APP_EXEC.len).contains(&s) => s,
        _ => return Outcome::Recovery("image size out of the execution region"),
    };
    // Nothing but the verified image may lie in the execution region.
    let ram = exec_region();
    if let Some(rest) = ram.get_mut(size as usize..check.high.max(size) as usize) {
        rest.fill(0);
    }
    let word = |i: usize| u32::from_le_bytes([ram[i], ram[i + 1], ram[i + 2], ram[i + 3]]);
    let (sp, reset) = (word(0), word(4));
    // The initial SP may be the top of APP_RAM (one past its end).
    let sp_ok = sp > APP_RAM.start && sp <= APP_RAM.end() && sp.is_multiple_of(8);
    let reset_ok =
        reset & 1 == 1 && APP_EXEC.holds(reset & !1, 2) && (reset & !1) < APP_EXEC.start + size;
    if !sp_ok || !reset_ok {
        return Outcome::Recovery("the image's vector table is not an application's");
    }
    Outcome::Jump(Loaded {
        slot,
        sequence: info.sequence,
        size,
        sp,
        reset,
    })
}

/// Sets VTOR and MSP from the loaded image and jumps to its reset vector.
///
/// # Safety
///
/// `image` must come from [`boot`] in this boot (verified in RAM, vector
/// table checked), and nothing may have written the execution region since.
pub unsafe fn jump(image: &Loaded) -> ! {
    let _ = (image.sp, image.reset);
    // SAFETY: the caller's contract; VTOR takes a 128-byte aligned address
    // (APP_EXEC's start is 1 MiB aligned).
    unsafe {
        let scb = &*cortex_m::peripheral::SCB::PTR;
        scb.vtor.write(APP_EXEC.start);
        cortex_m::asm::dsb();
        cortex_m::asm::isb();
        cortex_m::asm::bootload(APP_EXEC.start as *const u32)
    }
}
