//! The streaming installer (direct A/B mode) on the simulated flash: a
//! 300 KiB install on the nRF52840 model with its costs against the
//! physical minimum, refusals of wrong images, and the exhaustive power-cut
//! sweep over every flash operation of an install, with nested cuts.
//!
//! By default the sweep covers nrf52840 (40 KiB image), small-pages
//! (16 KiB) and stm32f4 (40 KiB in a 128 KiB slot sector) with 2 sampled
//! nested cuts per first cut; `KEYWAY_FULL_SWEEP=1` grows the small-pages
//! image to 40 KiB, adds ecc32 and a 136 KiB stm32f4 image over two 128 KiB
//! slot sectors, and sweeps a second cut at every operation of each
//! recovery (one seeded cut kind each; 16 sampled for the 136 KiB image).

mod common;
use common::{CutError, Seeded, bytes, cuts, full_sweep, sha256};

use std::time::{Duration, Instant};

use keyway_device::install::{Arm, InstallError, Installer, LayoutError, SlotLayout, Target};
use keyway_device::journal::{self, Config, Download, Journal, PersistentState, TrialState};
use keyway_sim::{PowerCut, SimFlash};
use keyway_suit::ImageExpectation;
use keyway_testkit::geometry::Part;

type SimError = keyway_sim::Error;

/// Second cut points sampled per first cut (default mode).
const NESTED_SAMPLE: usize = 2;

/// The state before the update: a floor, a key set, `active` booted.
fn initial_state(active: u8) -> PersistentState {
    PersistentState {
        floor: Some(41),
        keyset_version: 3,
        active_slot: active,
        trial: TrialState::Confirmed,
        boot_attempts: 0,
        download: None,
        swap: None,
    }
}

/// A flash holding an old image in both slots (the active one, and an
/// older one in the inactive slot) and the initial state in the journal.
fn prepared<const W: usize, const E: usize>(
    mut flash: SimFlash<W, E>,
    layout: &SlotLayout,
    active: u8,
) -> SimFlash<W, E> {
    for (i, r) in layout.slots.iter().enumerate() {
        let old = bytes((r.end - r.start) as usize, 0xA0 + i as u64);
        flash.write(r.start, &old).unwrap();
    }
    let mut journal = Journal::open(&mut flash, layout.journal).unwrap();
    journal.commit(&mut flash, &initial_state(active)).unwrap();
    flash
}

fn slot_bytes<const W: usize, const E: usize>(
    flash: &SimFlash<W, E>,
    layout: &SlotLayout,
    slot: u8,
) -> Vec<u8> {
    let r = &layout.slots[usize::from(slot)];
    flash.as_bytes()[r.start as usize..r.end as usize].to_vec()
}

/// Pushes `image[installer.offset()..]` in `chunk`-byte pieces, then
/// finishes.
fn feed<const W: usize, const E: usize>(
    flash: &mut SimFlash<W, E>,
    journal: &mut Journal<SimFlash<W, E>>,
    mut installer: Installer<SimFlash<W, E>>,
    image: &[u8],
    chunk: usize,
) -> Result<u8, InstallError<SimError>> {
    let from = usize::try_from(installer.offset()).unwrap();
    for c in image[from..].chunks(chunk) {
        installer.push(flash, journal, c)?;
    }
    installer.finish(flash, journal, Arm::Now)
}

/// Installs `image` in `chunk`-byte pushes on `fresh` prepared with slot 0
/// active (stats reset after), and checks the outcome: slot 1 holds the
/// image, slot 0 is untouched, the journal records slot 1 `Pending` and
/// nothing else. Returns the flash and the journal's record length.
fn install_into_slot_1<const W: usize, const E: usize>(
    fresh: SimFlash<W, E>,
    layout: &SlotLayout,
    target: Target<'_>,
    image: &[u8],
    chunk: usize,
) -> (SimFlash<W, E>, usize) {
    let mut flash = prepared(fresh, layout, 0);
    let active_before = slot_bytes(&flash, layout, 0);
    flash.reset_stats();
    let mut journal = Journal::open(&mut flash, layout.journal).unwrap();
    let installer = Installer::<_>::begin(&mut flash, &mut journal, target).unwrap();
    assert_eq!(installer.slot(), 1);
    assert_eq!(
        feed(&mut flash, &mut journal, installer, image, chunk),
        Ok(1)
    );
    let installed = slot_bytes(&flash, layout, 1);
    assert_eq!(&installed[..image.len()], image, "chunk {chunk}");
    assert_eq!(
        slot_bytes(&flash, layout, 0),
        active_before,
        "active slot changed"
    );
    let reopened = Journal::open(&mut flash, layout.journal).unwrap();
    let want = PersistentState {
        trial: TrialState::Pending { slot: 1 },
        ..initial_state(0)
    };
    assert_eq!(*reopened.state(), want);
    (flash, reopened.record_len())
}

/// What the manifest says of the image: its `digest` and `size`.
fn expecting(digest: &[u8; 32], size: Option<u64>) -> ImageExpectation<'_> {
    ImageExpectation {
        digest,
        size,
        uri: None,
    }
}

fn nrf52840_layout() -> SlotLayout {
    SlotLayout::direct(
        [0x1_0000..0x7_0000, 0x7_0000..0xD_0000],
        Config::new(0xF_0000, 2),
    )
}

fn small_pages_layout() -> SlotLayout {
    SlotLayout::direct(
        [0x4000..0x1_0000, 0x1_0000..0x1_C000],
        Config::new(0x2_0000, 3),
    )
}

/// STM32F4: the journal in 16 KiB sectors 1–2 (0x4000..0xC000), two
/// slots of `sectors` 128 KiB sectors each from 0x20000 (sector 5 on).
fn stm32f4_layout(sectors: u32) -> SlotLayout {
    const SECTOR: u32 = 128 * 1024;
    let base = 0x2_0000;
    let len = sectors * SECTOR;
    // Two records per 16 KiB page: installs turn journal pages.
    SlotLayout::direct(
        [base..base + len, base + len..base + 2 * len],
        Config::new(0x4000, 2).with_slot_size(8192),
    )
    .with_sector_size(SECTOR)
}

fn ecc32_layout() -> SlotLayout {
    SlotLayout::direct([0..0x6_0000, 0x6_0000..0xC_0000], Config::new(0xC_0000, 2))
}

#[test]
fn installs_300_kib_on_nrf52840_near_the_physical_minimum() {
    let layout = nrf52840_layout();
    let image = bytes(300 * 1024, 7);
    let digest = sha256(&image);
    let manifest_digest = [0x5A; 32];
    let exp = expecting(&digest, Some(image.len() as u64));
    for chunk in [1usize, 244, 1472, 4096] {
        let (flash, record_len) = install_into_slot_1(
            SimFlash::<4, 4096>::nrf52840(),
            &layout,
            Target::new(&layout, &exp, manifest_digest),
            &image,
            chunk,
        );
        let target = &layout.slots[1];

        // Erases: one per sector of the image, none elsewhere but journal pages.
        let geometry = flash.geometry().clone();
        let image_end = target.start + image.len() as u32;
        let mut journal_erases = 0;
        let mut image_sectors = 0u32;
        for s in geometry.sectors() {
            let n = flash.erase_count(s.index);
            let in_journal = s.start >= layout.journal.offset
                && s.start < layout.journal.offset + layout.journal.pages * 4096;
            if in_journal {
                journal_erases += n;
            } else if s.start >= target.start && s.start < image_end {
                assert_eq!(n, 1, "sector {} erased {n} times", s.index);
                image_sectors += 1;
            } else {
                assert_eq!(n, 0, "sector {} erased {n} times", s.index);
            }
        }
        // Records: begin, one per sector boundary, finish.
        let records = 1 + u64::from(image_sectors) + 1;
        assert_eq!(
            flash.bytes_written(),
            image.len() as u64 + records * record_len as u64
        );

        // Modeled time against erasing the image's sectors once and
        // writing it once.
        let erase: Duration = geometry
            .sectors()
            .iter()
            .filter(|s| s.start >= target.start && s.start < image_end)
            .map(|s| s.erase_time)
            .sum();
        let minimum = erase + geometry.program_time() * (image.len() / 4) as u32;
        let modeled = flash.modeled_time();
        let ratio = modeled.as_secs_f64() / minimum.as_secs_f64();
        println!(
            "direct install, 300 KiB on nrf52840, {chunk}-byte chunks: {image_sectors} sectors \
             erased once each, {journal_erases} journal page erases, {} bytes written \
             ({records} journal records), modeled {:.3} s vs physical minimum {:.3} s: \
             ratio {ratio:.4}",
            flash.bytes_written(),
            modeled.as_secs_f64(),
            minimum.as_secs_f64()
        );
        assert!(ratio <= 1.05, "ratio {ratio} above 1.05");
    }
}

#[test]
fn stm32f4_install_erases_each_128_kib_slot_sector_once() {
    type F = SimFlash<4, 16384>;
    // Slots of two 128 KiB sectors; a 200 KiB image spans both sectors of
    // slot 1 (sectors 7 and 8 of the part) with a progress record between.
    let layout = stm32f4_layout(2);
    assert_eq!(layout.validate::<F>(1024 * 1024), Ok(()));
    let image = bytes(200 * 1024 + 12, 31);
    let digest = sha256(&image);
    let exp = expecting(&digest, Some(image.len() as u64));
    for chunk in [244usize, 4096] {
        let (flash, record_len) = install_into_slot_1(
            F::stm32f4(),
            &layout,
            Target::new(&layout, &exp, [0x44; 32]),
            &image,
            chunk,
        );

        // Every real sector of the part: slot 1's two 128 KiB sectors
        // erased exactly once, the active slot and everything else but the
        // journal's 16 KiB sectors never.
        let geometry = flash.geometry().clone();
        let j = layout.journal.offset..layout.journal.offset + 2 * 16384;
        let mut slot_sectors = 0;
        for s in geometry.sectors() {
            let n = flash.erase_count(s.index);
            if j.contains(&s.start) {
                assert_eq!(s.size, 16384);
                continue;
            }
            if layout.slots[1].contains(&s.start) {
                assert_eq!(s.size, 128 * 1024, "sector {}", s.index);
                assert_eq!(n, 1, "slot sector {} erased {n} times", s.index);
                slot_sectors += 1;
            } else {
                assert_eq!(n, 0, "sector {} ({:#x}) erased {n} times", s.index, s.start);
            }
        }
        assert_eq!(slot_sectors, 2);
        // Every word of the image programmed once.
        let start = layout.slots[1].start;
        for at in (0..image.len() as u32).step_by(4) {
            assert_eq!(flash.writes_at(start + at), 1, "word {at:#x}");
        }
        // Records: begin, the 128 KiB boundary, finish.
        assert_eq!(
            flash.bytes_written(),
            (image.len().div_ceil(4) * 4) as u64 + 3 * record_len as u64
        );
        println!(
            "direct install, 200 KiB on stm32f4 (128 KiB slot sectors), {chunk}-byte chunks: \
             {slot_sectors} slot sectors erased once each, active slot untouched, \
             {} bytes written, modeled {:.3} s",
            flash.bytes_written(),
            flash.modeled_time().as_secs_f64()
        );
    }
}

#[test]
fn refuses_wrong_images_and_bad_layouts() {
    let layout = nrf52840_layout();
    let image = bytes(40 * 1024 + 3, 9);
    let digest = sha256(&image);
    let md = [0x11; 32];
    let fresh = prepared(SimFlash::<4, 4096>::nrf52840(), &layout, 1);
    // A fresh copy of the prepared flash, its journal open.
    let opened = || {
        let mut flash = fresh.clone();
        let j = Journal::open(&mut flash, layout.journal).unwrap();
        (flash, j)
    };
    let not_pending = |flash: &mut SimFlash<4, 4096>| {
        let j = Journal::open(flash, layout.journal).unwrap();
        assert_eq!(
            *j.state(),
            initial_state(1),
            "the slot must not be installable"
        );
    };

    // Wrong digest: refused at finish, the download record cleared.
    let wrong = sha256(b"another image");
    let exp = expecting(&wrong, Some(image.len() as u64));
    let (mut flash, mut j) = opened();
    let inst = Installer::<_>::begin(&mut flash, &mut j, Target::new(&layout, &exp, md)).unwrap();
    assert_eq!(inst.slot(), 0);
    let err = feed(&mut flash, &mut j, inst, &image, 244).unwrap_err();
    assert_eq!(
        err,
        InstallError::Payload(keyway_suit::Error::PayloadDigestMismatch)
    );
    not_pending(&mut flash);

    // Declared size larger than what arrives: truncated at finish.
    let exp = expecting(&digest, Some(image.len() as u64 + 1));
    let (mut flash, mut j) = opened();
    let inst = Installer::<_>::begin(&mut flash, &mut j, Target::new(&layout, &exp, md)).unwrap();
    let err = feed(&mut flash, &mut j, inst, &image, 1472).unwrap_err();
    assert!(matches!(
        err,
        InstallError::Payload(keyway_suit::Error::PayloadTruncated { .. })
    ));
    not_pending(&mut flash);

    // Declared size smaller: the first extra byte is refused, the
    // installer refuses everything after.
    let exp = expecting(&digest, Some(image.len() as u64 - 1));
    let (mut flash, mut j) = opened();
    let mut inst =
        Installer::<_>::begin(&mut flash, &mut j, Target::new(&layout, &exp, md)).unwrap();
    let err = inst.push(&mut flash, &mut j, &image).unwrap_err();
    assert!(matches!(
        err,
        InstallError::Payload(keyway_suit::Error::PayloadTooLong { .. })
    ));
    assert_eq!(
        inst.push(&mut flash, &mut j, &[]),
        Err(InstallError::Aborted)
    );
    assert_eq!(
        inst.finish(&mut flash, &mut j, Arm::Now),
        Err(InstallError::Aborted)
    );
    let j = Journal::open(&mut flash, layout.journal).unwrap();
    assert_eq!(j.state().trial, TrialState::Confirmed);

    // Oversize for the slot: refused before any flash operation.
    let slot_len = layout.slots[0].end - layout.slots[0].start;
    let exp = expecting(&digest, Some(u64::from(slot_len) + 1));
    let mut flash = fresh.clone();
    let ops = flash.ops();
    let mut j = Journal::open(&mut flash, layout.journal).unwrap();
    let err =
        Installer::<_>::begin(&mut flash, &mut j, Target::new(&layout, &exp, md)).unwrap_err();
    assert_eq!(
        err,
        InstallError::ImageTooLarge {
            slot: 0,
            size: u64::from(slot_len) + 1,
            capacity: slot_len
        }
    );
    assert_eq!(flash.ops(), ops, "nothing written or erased");
    assert!(err.to_string().contains("too large for slot 0"));

    // No declared size: bounded by the slot while pushing.
    let big = bytes(slot_len as usize + 1, 3);
    let exp = expecting(&digest, None);
    let (mut flash, mut j) = opened();
    let mut inst =
        Installer::<_>::begin(&mut flash, &mut j, Target::new(&layout, &exp, md)).unwrap();
    let ops = flash.ops();
    let err = inst.push(&mut flash, &mut j, &big).unwrap_err();
    assert!(matches!(err, InstallError::ImageTooLarge { slot: 0, .. }));
    assert_eq!(flash.ops(), ops, "nothing written or erased");

    // Resume: nothing recorded, another manifest; resume_or_begin starts over.
    let exp = expecting(&digest, Some(image.len() as u64));
    let (mut flash, mut j) = opened();
    assert_eq!(
        Installer::<_>::resume(&mut flash, &mut j, Target::new(&layout, &exp, md)).unwrap_err(),
        InstallError::NoDownload
    );
    let mut inst =
        Installer::<_>::begin(&mut flash, &mut j, Target::new(&layout, &exp, md)).unwrap();
    inst.push(&mut flash, &mut j, &image[..9000]).unwrap();
    let other = [0x22; 32];
    assert_eq!(
        Installer::<_>::resume(&mut flash, &mut j, Target::new(&layout, &exp, other)).unwrap_err(),
        InstallError::OtherManifest { recorded: md }
    );
    let inst = Installer::<_>::resume_or_begin(
        &mut flash,
        &mut j,
        Target::new(&layout, &exp, other),
        None,
    )
    .unwrap();
    assert_eq!(inst.offset(), 0);
    assert_eq!(
        j.state().download,
        Some(Download {
            slot: 0,
            manifest_digest: other,
            offset: 0
        })
    );
    assert_eq!(feed(&mut flash, &mut j, inst, &image, 4096), Ok(0));
    assert_eq!(j.state().trial, TrialState::Pending { slot: 0 });

    // A new download clears an earlier Pending in the same commit.
    let inst = Installer::<_>::begin(&mut flash, &mut j, Target::new(&layout, &exp, md)).unwrap();
    assert_eq!(j.state().trial, TrialState::None);
    drop(inst);

    // While an image runs on trial, neither slot is overwritten.
    let (mut flash, mut j) = opened();
    for slot in [0, 1] {
        let trial = PersistentState {
            trial: TrialState::Trial {
                slot,
                attempts_left: 2,
            },
            ..initial_state(1)
        };
        j.commit(&mut flash, &trial).unwrap();
        let ops = flash.ops();
        assert_eq!(
            Installer::<_>::begin(&mut flash, &mut j, Target::new(&layout, &exp, md)).unwrap_err(),
            InstallError::TrialInProgress { slot }
        );
        assert_eq!(flash.ops(), ops, "slot {slot}: nothing written or erased");
    }

    // A buffer that does not fit the write and erase sizes.
    let (mut flash, mut j) = opened();
    assert!(matches!(
        Installer::<_, 100>::begin(&mut flash, &mut j, Target::new(&layout, &exp, md)),
        Err(InstallError::BufferSize(_))
    ));

    // Layouts.
    type F = SimFlash<4, 4096>;
    let cap = 1024 * 1024;
    let bad = |slots: [core::ops::Range<u32>; 2], journal: Config| {
        SlotLayout::direct(slots, journal)
            .validate::<F>(cap)
            .unwrap_err()
    };
    assert_eq!(layout.validate::<F>(cap), Ok(()));
    assert_eq!(
        bad([0x1000..0x1000, 0x2000..0x3000], layout.journal),
        LayoutError::EmptySlot { slot: 0 }
    );
    assert!(matches!(
        bad([0x1000..0x2000, 0x2000..0x3001], layout.journal),
        LayoutError::SlotNotAligned { slot: 1, .. }
    ));
    assert!(matches!(
        bad([0x1000..0x2000, 0x2000..0x10_1000], layout.journal),
        LayoutError::SlotOutOfBounds { slot: 1, .. }
    ));
    assert_eq!(
        bad([0x1000..0x3000, 0x2000..0x4000], layout.journal),
        LayoutError::SlotsOverlap
    );
    assert_eq!(
        bad([0x1000..0x2000, 0xE_0000..0xF_1000], layout.journal),
        LayoutError::SlotOverlapsJournal { slot: 1 }
    );
    assert!(matches!(
        bad([0x1000..0x2000, 0x2000..0x3000], Config::new(0xFF_F000, 2)),
        LayoutError::Journal(journal::ConfigError::OutOfBounds { .. })
    ));
}

/// One install run under test: what it installs and where.
struct Case<'a> {
    name: String,
    layout: SlotLayout,
    image: &'a [u8],
    digest: [u8; 32],
    manifest_digest: [u8; 32],
    active: u8,
    chunk: usize,
    /// Runs that began, resumed, or found the install complete.
    starts: std::cell::Cell<[u64; 3]>,
}

impl Case<'_> {
    fn target(&self) -> u8 {
        1 - self.active
    }

    fn exp(&self) -> ImageExpectation<'_> {
        expecting(&self.digest, Some(self.image.len() as u64))
    }

    /// Boots, opens the journal and installs (begin if nothing is
    /// recorded, resume otherwise, nothing if the install completed).
    fn run<const W: usize, const E: usize>(
        &self,
        flash: &mut SimFlash<W, E>,
        what: &str,
    ) -> Result<(), InstallError<SimError>> {
        let mut journal = match Journal::open(flash, self.layout.journal) {
            Ok(j) => j,
            Err(e) => panic!("{what}: open failed: {e:?}"),
        };
        let state = *journal.state();
        let target = self.target();
        let mut starts = self.starts.get();
        let kind = match state.download {
            None if state.trial == (TrialState::Pending { slot: target }) => 2,
            None => 0,
            Some(_) => 1,
        };
        starts[kind] += 1;
        self.starts.set(starts);
        let installer = match state.download {
            None if kind == 2 => return Ok(()),
            None => Installer::<_>::begin(
                flash,
                &mut journal,
                Target::new(&self.layout, &self.exp(), self.manifest_digest),
            )?,
            Some(_) => Installer::<_>::resume(
                flash,
                &mut journal,
                Target::new(&self.layout, &self.exp(), self.manifest_digest),
            )?,
        };
        feed(flash, &mut journal, installer, self.image, self.chunk).map(|_| ())
    }

    /// Asserts that `result` is a power cut.
    fn expect_cut(&self, result: Result<(), InstallError<SimError>>, what: &str) {
        assert!(
            result.is_cut(),
            "{what}: expected a power cut, got {result:?}"
        );
    }

    /// After a cut: the journal keeps the floor, key set and active slot,
    /// claims the slot installable only if `may_be_done`, and the active
    /// slot is untouched.
    fn check_after_cut<const W: usize, const E: usize>(
        &self,
        flash: &mut SimFlash<W, E>,
        active_before: &[u8],
        may_be_done: bool,
        what: &str,
    ) {
        flash.power_on();
        let j = Journal::open(flash, self.layout.journal)
            .unwrap_or_else(|e| panic!("{what}: open after the cut: {e:?}"));
        let s = *j.state();
        let init = initial_state(self.active);
        assert_eq!(
            (s.floor, s.keyset_version, s.active_slot),
            (init.floor, init.keyset_version, init.active_slot),
            "{what}"
        );
        if s.trial
            == (TrialState::Pending {
                slot: self.target(),
            })
        {
            assert!(may_be_done, "{what}: the slot is installable before finish");
            assert_eq!(s.download, None, "{what}");
        }
        assert_eq!(
            slot_bytes(flash, &self.layout, self.active),
            active_before,
            "{what}: active slot changed"
        );
    }

    /// The end state after a completed install.
    fn check_done<const W: usize, const E: usize>(
        &self,
        flash: &mut SimFlash<W, E>,
        active_before: &[u8],
        what: &str,
    ) {
        let j = Journal::open(flash, self.layout.journal).unwrap();
        assert_eq!(
            *j.state(),
            PersistentState {
                trial: TrialState::Pending {
                    slot: self.target()
                },
                ..initial_state(self.active)
            },
            "{what}: final state"
        );
        let installed = slot_bytes(flash, &self.layout, self.target());
        assert!(
            installed[..self.image.len()] == *self.image,
            "{what}: slot content"
        );
        assert_eq!(
            slot_bytes(flash, &self.layout, self.active),
            active_before,
            "{what}: active slot changed"
        );
        // Every word of the image was programmed once since its last erase.
        let start = self.layout.slots[usize::from(self.target())].start;
        for at in (0..self.image.len() as u32).step_by(W) {
            assert_eq!(flash.writes_at(start + at), 1, "{what}: word {at:#x}");
        }
    }
}

/// Which second cuts follow each first cut.
#[derive(Clone, Copy, Debug)]
enum Nested {
    /// One at every operation of the recovery.
    All,
    /// This many, at seeded operations of the recovery.
    Sample(usize),
}

impl Nested {
    /// Every recovery op in the full sweep, `NESTED_SAMPLE` by default.
    fn for_mode() -> Self {
        if full_sweep() {
            Nested::All
        } else {
            Nested::Sample(NESTED_SAMPLE)
        }
    }
}

/// Cuts the power at every op of `case`'s install on `fresh` (and during
/// recoveries, as `nested_mode` says); prints the scenarios and the time.
fn sweep<const W: usize, const E: usize>(fresh: SimFlash<W, E>, case: &Case, nested_mode: Nested) {
    let t = Instant::now();
    let name = &case.name;
    let base_flash = prepared(fresh, &case.layout, case.active);
    let active_before = slot_bytes(&base_flash, &case.layout, case.active);
    let base = base_flash.ops();

    // Dry run: count the install's ops.
    let mut dry = base_flash.clone();
    case.run(&mut dry, "dry run").unwrap();
    case.check_done(&mut dry, &active_before, "dry run");
    let total_ops = dry.ops() - base;
    let last = base + total_ops - 1;

    let full = full_sweep();
    let mut scenarios = 0u64;
    let mut nested = 0u64;
    for n in base..base + total_ops {
        for (k, first) in cuts(n).into_iter().enumerate() {
            let seed = n * 3 + k as u64;
            let what = format!("{name}: seed {seed}, cut {first:?}");
            let mut flash = base_flash.clone();
            flash.set_power_cut(PowerCut::new(seed).then(first));
            case.expect_cut(case.run(&mut flash, &what), &what);
            // Only a torn write of the final record may leave it valid.
            let may_be_done = n == last && k > 0;
            case.check_after_cut(&mut flash, &active_before, may_be_done, &what);
            let after_first = flash.clone();

            if let Err(e) = case.run(&mut flash, &what) {
                panic!("{what}: recovery failed: {e:?}");
            }
            case.check_done(&mut flash, &active_before, &what);
            scenarios += 1;

            // Nested: a second cut during the recovery.
            let rbase = after_first.ops();
            let recovery_ops = flash.ops() - rbase;
            let mut rng = Seeded::new(seed ^ 0xC0FF_EE00);
            let points: Vec<u64> = match nested_mode {
                Nested::All => (0..recovery_ops).collect(),
                Nested::Sample(_) if recovery_ops == 0 => Vec::new(),
                Nested::Sample(k) => (0..k).map(|_| rng.next() % recovery_ops).collect(),
            };
            for r in points {
                let kind = (rng.next() % 3) as usize;
                let second = cuts(rbase + r)[kind];
                let what = format!("{what}, then {second:?}");
                let mut flash = after_first.clone();
                flash.set_power_cut(PowerCut::new(seed.wrapping_mul(31) + r).then(second));
                case.expect_cut(case.run(&mut flash, &what), &what);
                let may_be_done = r == recovery_ops - 1 && kind > 0;
                case.check_after_cut(&mut flash, &active_before, may_be_done, &what);
                if let Err(e) = case.run(&mut flash, &what) {
                    panic!("{what}: second recovery failed: {e:?}");
                }
                case.check_done(&mut flash, &active_before, &what);
                scenarios += 1;
                nested += 1;
            }
        }
    }
    // Every first run begins (the dry run included); recoveries are the rest.
    let mut starts = case.starts.get();
    starts[0] -= 1 + (3 * total_ops);
    starts[0] += 1;
    println!(
        "install power-cut sweep ({name}, {} KiB image, {} mode, nested {nested_mode:?}): \
         {total_ops} ops, {scenarios} scenarios ({nested} with nested cuts), 0 failures; \
         recoveries: {} began again, {} resumed, {} found the install complete",
        case.image.len() / 1024,
        if full { "full" } else { "default" },
        starts[0] - 1,
        starts[1],
        starts[2],
    );
    assert!(starts[1] > 0, "{name}: no recovery resumed");
    assert!(scenarios > 0);
    println!("  ({:.1} s)", t.elapsed().as_secs_f64());
}

fn case<'a>(name: &str, layout: SlotLayout, image: &'a [u8], active: u8) -> Case<'a> {
    Case {
        name: name.to_owned(),
        layout,
        image,
        digest: sha256(image),
        manifest_digest: sha256(name.as_bytes()),
        active,
        chunk: 244,
        starts: std::cell::Cell::new([0; 3]),
    }
}

/// The install sweep on one row of the geometry table, with this file's
/// layouts for it; ecc32 runs with `KEYWAY_FULL_SWEEP=1`.
fn install_sweep_on<const W: usize, const E: usize>(part: &Part<W, E>) {
    let (image, layout, active) = match part.name {
        "nrf52840" => {
            // Journal slots 512 bytes apart (8 per page): the 12 records of
            // the install turn journal pages during the sweep.
            let mut layout = nrf52840_layout();
            layout.journal = layout.journal.with_slot_size(512);
            (bytes(40 * 1024, 21), layout, 1)
        }
        "small-pages" => {
            // Not a multiple of the 512-byte page: the last sector is
            // partial. 80 sectors in the full sweep, 32 by default.
            let kib = if full_sweep() { 40 } else { 16 };
            (bytes(kib * 1024 - 100, 22), small_pages_layout(), 0)
        }
        "ecc32" if !full_sweep() => {
            println!("install power-cut sweep (ecc32): skipped, set KEYWAY_FULL_SWEEP=1");
            return;
        }
        "ecc32" => (bytes(40 * 1024 + 17, 23), ecc32_layout(), 1),
        // stm32f4: slots in 128 KiB sectors (one erase call each), the
        // journal in two 16 KiB sectors. 40 KiB: the image sits in one slot
        // sector, so every resume starts from offset 0 and erases that
        // sector again.
        _ => (bytes(40 * 1024 + 6, 24), stm32f4_layout(1), 0),
    };
    sweep(
        part.flash(),
        &case(part.name, layout, &image, active),
        Nested::for_mode(),
    );
}

// The tests power_cut_sweep::{nrf52840, stm32f4, small_pages, ecc32}.
keyway_testkit::per_geometry!(power_cut_sweep => install_sweep_on);

#[test]
fn power_cut_sweep_stm32f4_over_two_slot_sectors() {
    if !full_sweep() {
        println!("install power-cut sweep (stm32f4, 136 KiB): skipped, set KEYWAY_FULL_SWEEP=1");
        return;
    }
    // 136 KiB over two 128 KiB slot sectors: a progress record at the
    // sector boundary, resumes from it. Second cuts sampled (16 per first
    // cut): every recovery op would be ~1.4 million scenarios.
    let image = bytes(136 * 1024 + 100, 25);
    sweep(
        SimFlash::<4, 16384>::stm32f4(),
        &case("stm32f4", stm32f4_layout(2), &image, 1),
        Nested::Sample(16),
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// No layout makes validation or `begin` panic; a layout that
        /// validates keeps every slot erase-aligned inside the flash.
        #[test]
        fn any_layout_is_checked(
            a in any::<(u32, u32)>(),
            b in any::<(u32, u32)>(),
            j in (any::<u32>(), 0u32..8),
        ) {
            let layout = SlotLayout::direct([a.0..a.1, b.0..b.1], Config::new(j.0, j.1));
            let mut flash = SimFlash::<1, 512>::small_pages();
            let cap = flash.as_bytes().len();
            if layout.validate::<SimFlash<1, 512>>(cap).is_ok() {
                for r in &layout.slots {
                    prop_assert!(r.start < r.end && r.end as usize <= cap);
                    prop_assert!(r.start % 512 == 0 && r.end % 512 == 0);
                }
            }
            if let Ok(mut journal) = Journal::open(&mut flash, layout.journal) {
                let digest = [0u8; 32];
                let exp = expecting(&digest, Some(1000));
                let _ = Installer::<_>::begin(&mut flash, &mut journal, Target::new(&layout, &exp, digest));
            }
        }

        /// Any split of the payload into chunks installs it; a declared
        /// size or digest that does not match is refused and the slot is
        /// never marked installable.
        #[test]
        fn any_chunking_and_any_declared_size(
            len in 0usize..6000,
            cuts in proptest::collection::vec(0usize..6000, 0..12),
            size_delta in prop_oneof![Just(0i64), -3i64..3],
            flip in any::<bool>(),
        ) {
            let layout = small_pages_layout();
            let image = bytes(len, len as u64);
            let mut digest = sha256(&image);
            if flip {
                digest[0] ^= 1;
            }
            let declared = (len as i64 + size_delta).max(0) as u64;
            let exp = expecting(&digest, Some(declared));
            let mut flash = SimFlash::<1, 512>::small_pages();
            let mut j = Journal::open(&mut flash, layout.journal).unwrap();
            let mut inst = Installer::<_>::begin(&mut flash, &mut j, Target::new(&layout, &exp, [7; 32])).unwrap();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(len)).collect();
            points.push(0);
            points.push(len);
            points.sort_unstable();
            let mut result = Ok(());
            for w in points.windows(2) {
                result = inst.push(&mut flash, &mut j, &image[w[0]..w[1]]);
                if result.is_err() {
                    break;
                }
            }
            let result = result.and_then(|()| inst.finish(&mut flash, &mut j, Arm::Now));
            let good = declared == len as u64 && !flip;
            prop_assert_eq!(result.is_ok(), good, "{:?}", result);
            let state = *Journal::open(&mut flash, layout.journal).unwrap().state();
            prop_assert_eq!(state.trial == TrialState::Pending { slot: 1 }, good);
            if good {
                let r = &layout.slots[1];
                prop_assert!(flash.as_bytes()[r.start as usize..r.start as usize + len] == image[..]);
            }
        }

        /// A recorded download with any offset resumes or is refused by
        /// name; never a panic, never a flash error.
        #[test]
        fn any_recorded_offset(offset in any::<u32>(), sectors in 0u32..0x30) {
            let layout = small_pages_layout();
            let image = bytes(0x5000, 5);
            let digest = sha256(&image);
            let exp = expecting(&digest, Some(0x5000));
            let mut flash = SimFlash::<1, 512>::small_pages();
            let mut j = Journal::open(&mut flash, layout.journal).unwrap();
            let md = [9; 32];
            for offset in [offset, sectors * 512] {
                let state = PersistentState {
                    download: Some(Download { slot: 1, manifest_digest: md, offset }),
                    ..PersistentState::default()
                };
                j.commit(&mut flash, &state).unwrap();
                match Installer::<_>::resume(&mut flash, &mut j, Target::new(&layout, &exp, md)) {
                    Ok(inst) => prop_assert!(offset % 512 == 0 && offset <= 0x5000 && inst.offset() == u64::from(offset)),
                    Err(InstallError::BadOffset { offset: o }) => prop_assert_eq!(o, offset),
                    Err(e) => prop_assert!(false, "{:?}", e),
                }
            }
        }
    }
}

/// `finish` with `Arm::Later` (the lock's consent policy): at every flash operation
/// of an install that ends with it, a power cut never leaves the new slot
/// armed (`Pending`), the active slot and the journal's floor, key set and
/// trial stay as they were, and the recovery (resume, or begin again when
/// nothing was recorded) ends with the image in its slot, unarmed.
#[test]
fn finish_arm_later_never_arms_the_slot_through_every_power_cut() {
    let layout = small_pages_layout();
    let image = bytes(12 * 1024, 77);
    let digest = sha256(&image);
    let exp = expecting(&digest, Some(image.len() as u64));
    let md = sha256(b"unarmed");
    let base_flash = prepared(SimFlash::<1, 512>::small_pages(), &layout, 0);
    let active_before = slot_bytes(&base_flash, &layout, 0);
    let holds_image =
        |flash: &SimFlash<1, 512>| slot_bytes(flash, &layout, 1)[..image.len()] == image[..];
    // Begin (or resume what the journal records), push, finish unarmed.
    let run = |flash: &mut SimFlash<1, 512>| -> Result<(), InstallError<SimError>> {
        let mut journal = Journal::open(flash, layout.journal).unwrap();
        let inst = match journal.state().download {
            Some(_) => Installer::<_>::resume(flash, &mut journal, Target::new(&layout, &exp, md))?,
            None if holds_image(flash) => return Ok(()),
            None => Installer::<_>::begin(flash, &mut journal, Target::new(&layout, &exp, md))?,
        };
        let mut inst = inst;
        let from = usize::try_from(inst.offset()).unwrap();
        for c in image[from..].chunks(244) {
            inst.push(flash, &mut journal, c)?;
        }
        assert_eq!(inst.finish(flash, &mut journal, Arm::Later)?, 1);
        Ok(())
    };
    let check = |flash: &mut SimFlash<1, 512>, done: bool, what: &str| {
        flash.power_on();
        let s = *Journal::open(flash, layout.journal).unwrap().state();
        assert_eq!(
            PersistentState {
                download: None,
                ..s
            },
            initial_state(0),
            "{what}: only the download record may differ"
        );
        assert_ne!(s.trial, TrialState::Pending { slot: 1 }, "{what}: armed");
        assert_eq!(slot_bytes(flash, &layout, 0), active_before, "{what}");
        if done {
            assert_eq!(s.download, None, "{what}");
            assert!(holds_image(flash), "{what}: slot content");
        }
    };
    let mut dry = base_flash.clone();
    run(&mut dry).unwrap();
    check(&mut dry, true, "dry run");
    let total = dry.ops() - base_flash.ops();
    let mut scenarios = 0;
    for n in base_flash.ops()..base_flash.ops() + total {
        for (k, cut) in cuts(n).into_iter().enumerate() {
            let what = format!("cut {cut:?}");
            let mut flash = base_flash.clone();
            flash.set_power_cut(PowerCut::new(n * 3 + k as u64).then(cut));
            assert!(run(&mut flash).is_err(), "{what}: no cut");
            check(&mut flash, false, &what);
            run(&mut flash).unwrap_or_else(|e| panic!("{what}: recovery: {e:?}"));
            check(&mut flash, true, &what);
            scenarios += 1;
        }
    }
    println!("finish(Arm::Later) power-cut sweep: {total} ops, {scenarios} scenarios, 0 failures");
    assert!(scenarios >= 3 * 12);
}
