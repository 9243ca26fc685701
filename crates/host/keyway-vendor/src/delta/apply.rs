//! Applying a patch: in memory with the lock's [`Patcher`], or on a
//! simulated nRF52840 flash through the lock's installer.

use anyhow::{Context, Result, bail};
use keyway_delta::{HEADER_LEN, PatchHeader, Patcher, SliceBase};

use super::{check_sizes, sha256};

/// Applies `patch` to `old` with the lock's decoder, feeding the patch in
/// `chunk`-byte pieces; checks the output's size and SHA-256.
pub fn apply(old: &[u8], patch: &[u8], chunk: usize) -> Result<Vec<u8>> {
    let header = PatchHeader::parse(patch).map_err(|e| anyhow::anyhow!("{e}"))?;
    check_sizes(old.len(), &header)?;
    let base_size = u32::try_from(old.len()).context("old image over 4 GiB")?;
    let mut p =
        Patcher::new(&header, base_size, &sha256(old)).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Grows as the decoder produces bytes (at most the declared size,
    // which `check_sizes` bounded): never sized from the header.
    let mut new = Vec::new();
    let mut out = |c: &[u8]| -> Result<(), core::convert::Infallible> {
        new.extend_from_slice(c);
        Ok(())
    };
    let mut base = SliceBase(old);
    for c in patch[HEADER_LEN..].chunks(chunk.max(1)) {
        p.feed(c, &mut base, &mut out).map_err(describe)?;
    }
    p.finish(&mut base, &mut out).map_err(describe)?;
    if sha256(&new) != header.out_digest {
        bail!("patched image's SHA-256 differs from the patch header's");
    }
    Ok(new)
}

fn describe<B: core::fmt::Debug, O: core::fmt::Debug>(
    e: keyway_delta::Error<B, O>,
) -> anyhow::Error {
    match e {
        keyway_delta::Error::Patch(p) => anyhow::anyhow!("patch refused: {p}"),
        keyway_delta::Error::Base(b) => anyhow::anyhow!("reading the old image failed: {b:?}"),
        keyway_delta::Error::Output(o) => anyhow::anyhow!("writing the new image failed: {o:?}"),
    }
}

/// A flash of `sectors` 4 KiB sectors with the nRF52840's rules and timing
/// (85 ms per erase, 41 µs per 4-byte word), as large as the images need.
pub(super) fn nrf52840_timing(sectors: u32) -> Result<keyway_sim::Geometry> {
    keyway_sim::Geometry::nrf52840_timing(sectors).map_err(|e| anyhow::anyhow!("geometry: {e:?}"))
}

/// What applying a patch on the simulated flash cost.
#[derive(Clone, Debug)]
pub struct FlashApply {
    /// The new image as the installer wrote it into the inactive slot.
    pub image: Vec<u8>,
    /// Modeled flash busy time (erases and writes) of the install.
    pub seconds: f64,
    /// Sector erases.
    pub erases: u64,
    /// Bytes programmed (image and journal).
    pub bytes_written: u64,
}

/// Applies `patch` on the lock's path: the base in slot 0 of a simulated
/// flash with the nRF52840's timing (4 KiB sectors erased in 85 ms, 4-byte
/// words programmed in 41 µs; as many sectors as the two images need, which
/// may be more than the real part's 1 MiB), read by the [`Patcher`] from
/// the flash while its output streams through the lock's `Installer` into
/// slot 1, the patch fed in `chunk`-byte pieces. The installer checks the
/// output's size and SHA-256 against the patch header.
pub fn apply_on_flash(old: &[u8], patch: &[u8], chunk: usize) -> Result<FlashApply> {
    use std::cell::RefCell;

    use keyway_device::install::{Arm, Installer, Mode, SlotLayout, Target};
    use keyway_device::journal::{self, Journal, PersistentState};
    use keyway_sim::SimFlash;

    const SECTOR: u32 = 4096;
    let header = PatchHeader::parse(patch).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The flash is allocated whole, for both slots: sizes first.
    check_sizes(old.len(), &header)?;
    let base_size = u32::try_from(old.len()).context("old image over 4 GiB")?;
    let sectors = |len: u32| len.div_ceil(SECTOR).max(1);
    let (n0, n1) = (sectors(base_size), sectors(header.out_size));
    let journal_sectors = 2;
    let geometry = nrf52840_timing(journal_sectors + n0 + n1)?;
    let mut flash =
        SimFlash::<4, 4096>::new(geometry).map_err(|e| anyhow::anyhow!("flash: {e:?}"))?;
    let s0 = journal_sectors * SECTOR;
    let s1 = s0 + n0 * SECTOR;
    let layout = SlotLayout {
        slots: [s0..s1, s1..s1 + n1 * SECTOR],
        journal: journal::Config {
            offset: 0,
            pages: journal_sectors,
            slot_size: None,
            erased: 0xFF,
        },
        manifest_sectors: 0,
        sector_size: None,
        mode: Mode::Direct,
    };
    let f = |what: &'static str| move |e: &dyn std::fmt::Debug| anyhow::anyhow!("{what}: {e:?}");
    // The factory state: the base in slot 0, active.
    flash.erase(s0, s1).map_err(|e| f("erase slot 0")(&e))?;
    // Whole words from `old` itself, the last one padded (no second copy).
    let whole = old.len() - old.len() % 4;
    flash
        .write(s0, &old[..whole])
        .map_err(|e| f("write slot 0")(&e))?;
    if whole < old.len() {
        let mut last = [0xFF; 4];
        last[..old.len() - whole].copy_from_slice(&old[whole..]);
        flash
            .write(s0 + whole as u32, &last)
            .map_err(|e| f("write slot 0")(&e))?;
    }
    let mut journal = Journal::open(&mut flash, layout.journal).map_err(|e| f("journal")(&e))?;
    journal
        .commit(&mut flash, &PersistentState::default())
        .map_err(|e| f("journal")(&e))?;
    flash.reset_stats();

    let expectation = keyway_suit::ImageExpectation {
        digest: &header.out_digest,
        size: Some(u64::from(header.out_size)),
        uri: None,
    };
    let mut installer = Installer::<_, 256>::begin(
        &mut flash,
        &mut journal,
        Target::new(&layout, &expectation, [0; 32]),
    )
    .map_err(|e| f("installer")(&e))?;
    let mut p =
        Patcher::new(&header, base_size, &sha256(old)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let flash = RefCell::new(flash);
    let journal = RefCell::new(journal);

    struct Slot0<'a>(&'a RefCell<SimFlash<4, 4096>>, u32);
    impl keyway_delta::BaseReader for Slot0<'_> {
        type Error = keyway_sim::Error;
        fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error> {
            self.0.borrow_mut().read(self.1 + offset, buf)
        }
    }
    let mut base = Slot0(&flash, s0);
    let mut out = |c: &[u8]| installer.push(&mut flash.borrow_mut(), &mut journal.borrow_mut(), c);
    for c in patch[HEADER_LEN..].chunks(chunk.max(1)) {
        p.feed(c, &mut base, &mut out).map_err(describe)?;
    }
    p.finish(&mut base, &mut out).map_err(describe)?;
    let mut flash = flash.into_inner();
    let mut journal = journal.into_inner();
    let slot = installer
        .finish(&mut flash, &mut journal, Arm::Now)
        .map_err(|e| f("installer finish (size and SHA-256)")(&e))?;
    if slot != 1 {
        bail!("installed into slot {slot}, expected 1");
    }
    let stats = flash.stats().clone();
    let start = s1 as usize;
    let image = flash.as_bytes()[start..start + header.out_size as usize].to_vec();
    Ok(FlashApply {
        image,
        seconds: stats.modeled_time.as_secs_f64(),
        erases: stats.sector_erases.iter().map(|&e| u64::from(e)).sum(),
        bytes_written: stats.bytes_written,
    })
}
