//! The streaming installer for direct A/B mode: writes a payload into the
//! inactive slot as it arrives, resumable after a power cut.
//!
//! # Direct A/B
//!
//! On MCUs that execute from either bank, an update is written once into
//! the slot that is not [`PersistentState::active_slot`], and activation is
//! a journal record: nothing is copied. [`Installer`] is a sans-IO state
//! machine driven by the caller, who owns the flash, the
//! [`Journal`] and the transport:
//!
//! 1. [`Installer::begin`] (or [`Installer::resume`] after a reboot);
//! 2. [`Installer::push`] for every chunk, of any size, as it arrives;
//! 3. [`Installer::finish`].
//!
//! # What it guarantees
//!
//! * Bytes go through a fixed buffer of `BUF` bytes (a multiple of
//!   `F::WRITE_SIZE` and `F::READ_SIZE` that divides `F::ERASE_SIZE`) and are
//!   hashed on the way by a [`PayloadVerifier`].
//! * Each `F::ERASE_SIZE` sector of the target slot is erased just before
//!   its first write, once per download (a resume erases the sector after
//!   the last recorded offset again). The active slot is never erased or
//!   written.
//! * At every sector boundary the progress is committed to the journal as
//!   [`Download`] `{ slot, manifest_digest, offset }`, after the sector's
//!   bytes were written: a power cut loses at most the sector in progress.
//! * Only [`Installer::finish`] with [`Arm::Now`], after the size and the SHA-256 digest
//!   matched, records the slot as installable
//!   ([`TrialState::Pending`]) with the same commit that clears the
//!   download. Before that nothing marks the slot installable; starting a
//!   download clears an earlier `Pending` in the commit that records it.
//! * No input makes it panic; every failure is an [`InstallError`] that names
//!   what failed.
//!
//! The signature over the manifest is checked before (by
//! `keyway_suit::verify_envelope`, which yields the [`ImageExpectation`]);
//! the manifest digest ties the recorded download to that manifest.

use core::marker::PhantomData;
use core::ops::Range;

use embedded_storage::nor_flash::NorFlash;
use keyway_suit::{ImageExpectation, PayloadVerifier};

use crate::journal::{
    self, Download, FlashOp, Journal, PersistentState, SwapPhase, SwapProgress, TrialState,
};
pub use crate::layout::{BufferSizeError, LayoutError, Mode, Place, SlotLayout};

/// The default write buffer: 256 bytes.
pub const DEFAULT_BUF: usize = 256;

/// What an install step failed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstallError<E> {
    /// The slot layout does not fit the flash.
    Layout(LayoutError),
    /// `BUF` is zero, not a multiple of the write and read sizes, or does
    /// not divide the erase size.
    BufferSize(BufferSizeError),
    /// The image (as declared, or as pushed so far) is larger than the
    /// target slot. Refused before anything is written.
    ImageTooLarge {
        /// The target slot (0 or 1).
        slot: u8,
        /// The image size in bytes (declared, or pushed so far).
        size: u64,
        /// The slot's image capacity in bytes (the slot less its manifest
        /// area).
        capacity: u32,
    },
    /// The payload does not match the manifest: too long, truncated, or
    /// digest mismatch (the verifier's error).
    Payload(keyway_suit::Error),
    /// The flash refused or failed an operation on the slot.
    Flash {
        /// Which operation.
        op: FlashOp,
        /// Its start offset in the flash.
        offset: u32,
        /// The driver's error.
        error: E,
    },
    /// A journal commit or read failed.
    Journal(journal::JournalError<E>),
    /// [`Installer::resume`]: the journal records no download.
    NoDownload,
    /// [`Installer::resume`]: the recorded download belongs to another
    /// manifest (start over with [`Installer::begin`]).
    OtherManifest {
        /// The manifest digest recorded in the journal.
        recorded: [u8; 32],
    },
    /// [`Installer::resume`]: the recorded download targets the active
    /// slot (start over with [`Installer::begin`]).
    OtherSlot {
        /// The slot recorded in the journal.
        recorded: u8,
        /// The inactive slot, which a download must target.
        inactive: u8,
    },
    /// [`Installer::resume`]: the recorded offset is not a sector boundary,
    /// or lies past the image or the slot (start over with
    /// [`Installer::begin`]).
    BadOffset {
        /// The offset recorded in the journal.
        offset: u32,
    },
    /// An image runs on trial: confirm or revert it before writing
    /// another (until then both slots are needed).
    TrialInProgress {
        /// The slot on trial.
        slot: u8,
    },
    /// An earlier error left this installer unusable: resume from the
    /// journal (or begin again).
    Aborted,
    /// [`Installer::begin_with_manifest`]: the layout reserves no manifest
    /// area (`manifest_sectors: 0`). Nothing was written.
    NoManifestArea,
    /// Swap mode: the journal records a swap or a revert in progress; the
    /// bootloader must finish it ([`crate::swap::boot`]) first.
    SwapInProgress,
    /// Swap mode: the journal's active slot is not the primary (0).
    SwapActiveSlot {
        /// The journal's active slot.
        active: u8,
    },
    /// [`Installer::begin_with_manifest`]: the envelope head is longer than
    /// [`MAX_MANIFEST_LEN`](crate::manifest_area::MAX_MANIFEST_LEN).
    /// Nothing was written.
    ManifestTooLarge {
        /// The head's length in bytes.
        len: usize,
        /// The largest head stored.
        max: usize,
    },
}

impl<E> InstallError<E> {
    /// Wraps the driver's error from `op` at `offset` (for `map_err`).
    fn flash(op: FlashOp, offset: u32) -> impl FnOnce(E) -> Self {
        move |error| InstallError::Flash { op, offset, error }
    }

    /// Whether [`Installer::resume`] failed because the journal's record
    /// cannot be continued (start over), not on the flash or the journal.
    fn starts_over(&self) -> bool {
        matches!(
            self,
            InstallError::NoDownload
                | InstallError::OtherManifest { .. }
                | InstallError::OtherSlot { .. }
                | InstallError::BadOffset { .. }
        )
    }
}

wrap_error!(
    InstallError::Layout(LayoutError),
    InstallError::Journal(journal::JournalError<E>),
);

impl<E: core::fmt::Debug> core::fmt::Display for InstallError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InstallError::Layout(e) => write!(f, "install: slot layout: {e:?}"),
            InstallError::BufferSize(e) => write!(f, "install: write buffer: {e:?}"),
            InstallError::ImageTooLarge {
                slot,
                size,
                capacity,
            } => write!(
                f,
                "install: image of {size} bytes too large for slot {slot} ({capacity} bytes)"
            ),
            InstallError::Payload(e) => write!(f, "install: {e}"),
            InstallError::Flash { op, offset, error } => {
                write!(f, "install: flash {op:?} at {offset:#x}: {error:?}")
            }
            InstallError::Journal(e) => write!(f, "install: {e}"),
            InstallError::NoDownload => f.write_str("install: no download to resume"),
            InstallError::OtherManifest { .. } => {
                f.write_str("install: the recorded download is for another manifest")
            }
            InstallError::OtherSlot { recorded, inactive } => write!(
                f,
                "install: the recorded download targets slot {recorded}, not inactive slot {inactive}"
            ),
            InstallError::BadOffset { offset } => {
                write!(
                    f,
                    "install: recorded download offset {offset:#x} is invalid"
                )
            }
            InstallError::TrialInProgress { slot } => {
                write!(f, "install: the image in slot {slot} is on trial")
            }
            InstallError::Aborted => f.write_str("install: aborted by an earlier error"),
            InstallError::NoManifestArea => {
                f.write_str("install: the slot layout reserves no manifest area")
            }
            InstallError::SwapInProgress => {
                f.write_str("install: a swap is in progress; the bootloader must finish it")
            }
            InstallError::SwapActiveSlot { active } => {
                write!(
                    f,
                    "install: swap mode needs active slot 0, the journal says {active}"
                )
            }
            InstallError::ManifestTooLarge { len, max } => write!(
                f,
                "install: envelope head of {len} bytes exceeds the manifest area's {max}"
            ),
        }
    }
}

/// What a download installs: the slot layout it writes into, and the image
/// and manifest that `keyway_suit::verify_envelope` verified. Given to
/// [`Installer::begin`], [`Installer::resume`] and the others alike: a
/// resumed download must name the same manifest it was begun for.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The flash's slot layout.
    pub layout: &'a SlotLayout,
    /// The image the verified manifest describes (its size and digest).
    pub expectation: &'a ImageExpectation<'a>,
    /// The verified manifest's digest: ties the journal's download record
    /// to that manifest.
    pub manifest_digest: [u8; 32],
}

impl<'a> Target<'a> {
    /// The target of a download of the image `expectation` describes, from
    /// the verified manifest whose digest is `manifest_digest`, into
    /// `layout`'s inactive slot.
    pub const fn new(
        layout: &'a SlotLayout,
        expectation: &'a ImageExpectation<'a>,
        manifest_digest: [u8; 32],
    ) -> Self {
        Self {
            layout,
            expectation,
            manifest_digest,
        }
    }
}

/// Whether [`Installer::finish`] arms the verified slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    /// Arm it: commit `trial: TrialState::Pending { slot }` (and, in swap
    /// mode, `swap: SwapProgress { phase: Staged, .. }`), so the next reset
    /// boots the new image on trial.
    Now,
    /// Leave it unarmed: the journal commits `download: None` and leaves
    /// `trial` (and, in swap mode, `swap`) as they were. A reset boots the
    /// running image again; the complete, verified image waits in its slot
    /// until the caller arms it (direct mode: commit
    /// `TrialState::Pending { slot }`, as the owner's consent does in
    /// `keyway-lock`). A power cut at any point leaves either the download
    /// record (a resume re-hashes and finishes again) or the unarmed slot;
    /// never an armed one.
    ///
    /// Meant for direct mode: in swap mode an unarmed slot is not staged
    /// (no `SwapProgress`), so arming it later is the caller's work.
    Later,
}

/// A download in progress into the inactive slot. See the [module
/// documentation](self).
///
/// `BUF` is the write buffer's size ([`DEFAULT_BUF`], 256 bytes): a
/// multiple of `F::WRITE_SIZE` and `F::READ_SIZE` that divides
/// `F::ERASE_SIZE`. The installer holds the buffer and a SHA-256 state; it
/// borrows the flash and the journal on each call.
#[derive(Clone)]
pub struct Installer<F, const BUF: usize = DEFAULT_BUF> {
    slot: u8,
    mode: Mode,
    /// The slot sector size (the erase unit).
    sector: u32,
    /// The image's first byte in the flash.
    start: u32,
    capacity: u32,
    manifest_digest: [u8; 32],
    verifier: PayloadVerifier,
    /// Bytes already written to the slot (a multiple of `BUF`).
    written: u32,
    buf: [u8; BUF],
    fill: usize,
    erased: u8,
    failed: bool,
    _flash: PhantomData<fn(&mut F)>,
}

impl<F, const BUF: usize> core::fmt::Debug for Installer<F, BUF> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Installer")
            .field("slot", &self.slot)
            .field("start", &self.start)
            .field("capacity", &self.capacity)
            .field("written", &self.written)
            .field("buffered", &self.fill)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<F: NorFlash, const BUF: usize> Installer<F, BUF> {
    /// Starts a download of the image `target` describes into the
    /// inactive slot.
    ///
    /// Checks the layout, the buffer size and that the declared image size
    /// fits the slot before touching the flash, then commits
    /// `Download { slot, manifest_digest, offset: 0 }` (clearing an earlier
    /// `Pending` install in the same record). Refused while an image runs
    /// on trial ([`InstallError::TrialInProgress`]). Nothing is
    /// erased yet: each sector is erased by [`Installer::push`] just before
    /// its first write.
    pub fn begin(
        flash: &mut F,
        journal: &mut Journal<F>,
        target: Target<'_>,
    ) -> Result<Self, InstallError<F::Error>> {
        Self::begin_inner(flash, journal, target, None)
    }

    /// [`Installer::begin`], storing `head` (the signed envelope head, see
    /// [`crate::manifest_area`]) in the target slot's manifest area, so that
    /// the bootloader can re-verify the slot with
    /// [`VerifiedSlot`](crate::verified::VerifiedSlot).
    ///
    /// After the checks of [`Installer::begin`], refuses a layout without a
    /// manifest area ([`InstallError::NoManifestArea`]) and a head longer than
    /// [`MAX_MANIFEST_LEN`](crate::manifest_area::MAX_MANIFEST_LEN)
    /// ([`InstallError::ManifestTooLarge`]) before touching the flash. Then erases
    /// the manifest area, writes the header and the head, and only then
    /// commits the download record; the slot becomes `Pending` later, in
    /// [`Installer::finish`]. A recorded download therefore always has its
    /// head stored. A power cut while the area is rewritten leaves the
    /// journal as it was: if it held this slot `Pending`, the slot's manifest
    /// is now gone or another one, so re-verification refuses the slot and
    /// the bootloader reverts it (the update is lost, never booted
    /// unverified). [`Installer::resume`] does not rewrite the area.
    pub fn begin_with_manifest(
        flash: &mut F,
        journal: &mut Journal<F>,
        target: Target<'_>,
        head: &[u8],
    ) -> Result<Self, InstallError<F::Error>> {
        Self::begin_inner(flash, journal, target, Some(head))
    }

    fn begin_inner(
        flash: &mut F,
        journal: &mut Journal<F>,
        target: Target<'_>,
        head: Option<&[u8]>,
    ) -> Result<Self, InstallError<F::Error>> {
        let mut installer = Self::prepare(flash, journal, target)?;
        let mut state = *journal.state();
        match state.trial {
            // Until a trial is confirmed or reverted, both slots matter:
            // the image on trial and the one to revert to.
            TrialState::Trial { slot, .. } => return Err(InstallError::TrialInProgress { slot }),
            TrialState::Pending { .. } => state.trial = TrialState::None,
            _ => {}
        }
        match state.swap.map(|s| s.phase) {
            // The bootloader finishes a swap or a revert before it boots
            // anything, so an application never sees one in progress.
            Some(SwapPhase::Swapping { .. } | SwapPhase::Reverting { .. }) => {
                return Err(InstallError::SwapInProgress);
            }
            // The secondary's previous contents (a staged image, or the
            // image a confirmed swap replaced) are about to be overwritten.
            Some(SwapPhase::Staged | SwapPhase::Swapped) => state.swap = None,
            None => {}
        }
        if let Some(head) = head {
            let area = target
                .layout
                .manifest_area::<F>(installer.slot)
                .ok_or(InstallError::NoManifestArea)?;
            let max = crate::manifest_area::MAX_MANIFEST_LEN;
            if head.len() > max {
                return Err(InstallError::ManifestTooLarge {
                    len: head.len(),
                    max,
                });
            }
            installer.write_manifest(flash, area, head)?;
        }
        state.download = Some(Download {
            slot: installer.slot,
            manifest_digest: target.manifest_digest,
            offset: 0,
        });
        journal.commit(flash, &state)?;
        Ok(installer)
    }

    /// Continues the download the journal records for
    /// `target.manifest_digest` (after a power cut or a reboot): re-hashes
    /// the bytes already in the slot (read back from the flash), so the
    /// final digest covers the whole image. The caller then pushes the
    /// payload from [`Installer::offset`] on. The sector after the recorded
    /// offset, which may be partly written, is erased again before its
    /// first write.
    ///
    /// Fails with [`InstallError::NoDownload`], [`InstallError::OtherManifest`],
    /// [`InstallError::OtherSlot`] or [`InstallError::BadOffset`] when the record cannot
    /// be continued: then start over with [`Installer::begin`] (or use
    /// [`Installer::resume_or_begin`]).
    pub fn resume(
        flash: &mut F,
        journal: &mut Journal<F>,
        target: Target<'_>,
    ) -> Result<Self, InstallError<F::Error>> {
        let mut installer = Self::prepare(flash, journal, target)?;
        let state = journal.state();
        let d = state.download.ok_or(InstallError::NoDownload)?;
        if d.manifest_digest != target.manifest_digest {
            return Err(InstallError::OtherManifest {
                recorded: d.manifest_digest,
            });
        }
        if d.slot != installer.slot {
            return Err(InstallError::OtherSlot {
                recorded: d.slot,
                inactive: installer.slot,
            });
        }
        let past_image = target
            .expectation
            .size
            .is_some_and(|s| u64::from(d.offset) > s);
        if !d.offset.is_multiple_of(installer.sector) || d.offset > installer.capacity || past_image
        {
            return Err(InstallError::BadOffset { offset: d.offset });
        }
        // Re-hash what the slot holds below the recorded offset.
        let mut at = 0u32;
        while at < d.offset {
            let n = (d.offset - at).min(BUF as u32);
            let offset = installer.start + at;
            let chunk = &mut installer.buf[..n as usize];
            flash
                .read(offset, chunk)
                .map_err(InstallError::flash(FlashOp::Read, offset))?;
            installer
                .verifier
                .update(chunk)
                .map_err(InstallError::Payload)?;
            at += n;
        }
        installer.written = d.offset;
        installer.buf = [installer.erased; BUF];
        Ok(installer)
    }

    /// [`Installer::resume`] if the journal records a download of this
    /// manifest that can be continued (with `head`, its head was stored
    /// before that record was made), otherwise [`Installer::begin`], or
    /// [`Installer::begin_with_manifest`] with `head`.
    pub fn resume_or_begin(
        flash: &mut F,
        journal: &mut Journal<F>,
        target: Target<'_>,
        head: Option<&[u8]>,
    ) -> Result<Self, InstallError<F::Error>> {
        match Self::resume(flash, journal, target) {
            Err(e) if e.starts_over() => Self::begin_inner(flash, journal, target, head),
            other => other,
        }
    }

    /// Erases the manifest area `area` and writes the header and `head`
    /// through the write buffer, padded to the write size.
    fn write_manifest(
        &mut self,
        flash: &mut F,
        area: Range<u32>,
        head: &[u8],
    ) -> Result<(), InstallError<F::Error>> {
        flash
            .erase(area.start, area.end)
            .map_err(InstallError::flash(FlashOp::Erase, area.start))?;
        let header = crate::manifest_area::header(head);
        let total = header.len() + head.len();
        let mut pos = 0usize;
        while pos < total {
            let n = (total - pos).min(BUF);
            self.buf = [self.erased; BUF];
            for (k, b) in self.buf.iter_mut().take(n).enumerate() {
                let at = pos + k;
                *b = match header.get(at) {
                    Some(h) => *h,
                    None => head.get(at - header.len()).copied().unwrap_or(self.erased),
                };
            }
            let len = (n.div_ceil(F::WRITE_SIZE) * F::WRITE_SIZE).min(BUF);
            let offset = area.start + pos as u32;
            let data = self.buf.get(..len).unwrap_or(&[]);
            flash
                .write(offset, data)
                .map_err(InstallError::flash(FlashOp::Write, offset))?;
            pos += n;
        }
        self.buf = [self.erased; BUF];
        Ok(())
    }

    /// The checks and the state shared by `begin` and `resume`.
    fn prepare(
        flash: &F,
        journal: &Journal<F>,
        target: Target<'_>,
    ) -> Result<Self, InstallError<F::Error>> {
        let Target {
            layout,
            expectation,
            manifest_digest,
        } = target;
        BufferSizeError::check::<F>(BUF, F::ERASE_SIZE).map_err(InstallError::BufferSize)?;
        layout.validate::<F>(flash.capacity())?;
        let active = journal.state().active_slot;
        let slot: u8 = match layout.mode {
            Mode::Direct if active == 0 => 1,
            Mode::Direct => 0,
            Mode::Swap if active == 0 => 1,
            Mode::Swap => return Err(InstallError::SwapActiveSlot { active }),
        };
        let place = layout
            .place::<F>(slot)
            .ok_or(InstallError::Layout(LayoutError::NoImageRoom { slot }))?;
        let capacity = place.image.end - place.image.start;
        if let Some(size) = expectation.size
            && size > u64::from(capacity)
        {
            return Err(InstallError::ImageTooLarge {
                slot,
                size,
                capacity,
            });
        }
        Ok(Self {
            slot,
            mode: layout.mode,
            sector: layout.sector_size::<F>(),
            start: place.image.start,
            capacity,
            manifest_digest,
            verifier: PayloadVerifier::new(expectation),
            written: 0,
            buf: [layout.journal.erased; BUF],
            fill: 0,
            erased: layout.journal.erased,
            failed: false,
            _flash: PhantomData,
        })
    }

    /// The slot being written (the inactive one).
    pub fn slot(&self) -> u8 {
        self.slot
    }

    /// Payload bytes accepted so far (written or buffered): the offset in
    /// the payload of the next byte to push.
    pub fn offset(&self) -> u64 {
        u64::from(self.written) + self.fill as u64
    }

    /// Accepts the next `chunk` of the payload, of any size: hashes it,
    /// buffers it and writes every full buffer to the slot (erasing each
    /// sector before its first write, committing the progress after its
    /// last). A byte past the declared size or past the slot fails at once.
    ///
    /// After any error the installer refuses further calls
    /// ([`InstallError::Aborted`]); continue with [`Installer::resume`].
    pub fn push(
        &mut self,
        flash: &mut F,
        journal: &mut Journal<F>,
        chunk: &[u8],
    ) -> Result<(), InstallError<F::Error>> {
        if self.failed {
            return Err(InstallError::Aborted);
        }
        let result = self.push_inner(flash, journal, chunk);
        self.failed = result.is_err();
        result
    }

    fn push_inner(
        &mut self,
        flash: &mut F,
        journal: &mut Journal<F>,
        chunk: &[u8],
    ) -> Result<(), InstallError<F::Error>> {
        let total = self.offset().saturating_add(chunk.len() as u64);
        if total > u64::from(self.capacity) {
            return Err(InstallError::ImageTooLarge {
                slot: self.slot,
                size: total,
                capacity: self.capacity,
            });
        }
        self.verifier.update(chunk).map_err(InstallError::Payload)?;
        let mut rest = chunk;
        while !rest.is_empty() {
            let room = BUF - self.fill;
            let n = room.min(rest.len());
            let (head, tail) = rest.split_at(n);
            if let Some(dst) = self.buf.get_mut(self.fill..self.fill + n) {
                dst.copy_from_slice(head);
            }
            self.fill += n;
            rest = tail;
            if self.fill == BUF {
                self.flush(flash, BUF)?;
                self.written += BUF as u32;
                self.fill = 0;
                if self.written.is_multiple_of(self.sector) {
                    self.commit_progress(flash, journal)?;
                }
            }
        }
        Ok(())
    }

    /// Writes `len` buffered bytes at the current write position, erasing
    /// the sector first when the position starts one.
    fn flush(&mut self, flash: &mut F, len: usize) -> Result<(), InstallError<F::Error>> {
        let at = self.start + self.written;
        if self.written.is_multiple_of(self.sector) {
            let end = at + self.sector;
            flash
                .erase(at, end)
                .map_err(InstallError::flash(FlashOp::Erase, at))?;
        }
        let data = self.buf.get(..len).unwrap_or(&[]);
        flash
            .write(at, data)
            .map_err(InstallError::flash(FlashOp::Write, at))?;
        self.buf = [self.erased; BUF];
        Ok(())
    }

    fn commit_progress(
        &mut self,
        flash: &mut F,
        journal: &mut Journal<F>,
    ) -> Result<(), InstallError<F::Error>> {
        let mut state: PersistentState = *journal.state();
        state.download = Some(Download {
            slot: self.slot,
            manifest_digest: self.manifest_digest,
            offset: self.written,
        });
        journal.commit(flash, &state)?;
        Ok(())
    }

    /// Writes the buffered tail (padded with the erased value to the write
    /// size), checks the size and the SHA-256 digest, and only then commits
    /// `download: None` and, as `arm` says, arms the slot ([`Arm::Now`]) or
    /// leaves it waiting ([`Arm::Later`]). Returns that slot.
    ///
    /// A payload that does not match is refused with [`InstallError::Payload`];
    /// the download record is then cleared (best effort) and the slot is
    /// not marked installable.
    pub fn finish(
        mut self,
        flash: &mut F,
        journal: &mut Journal<F>,
        arm: Arm,
    ) -> Result<u8, InstallError<F::Error>> {
        if self.failed {
            return Err(InstallError::Aborted);
        }
        if self.fill > 0 {
            let len = self.fill.div_ceil(F::WRITE_SIZE) * F::WRITE_SIZE;
            self.flush(flash, len.min(BUF))?;
            self.written += self.fill as u32;
            self.fill = 0;
        }
        let mut state = *journal.state();
        if let Err(e) = self.verifier.finish() {
            state.download = None;
            // Best effort: a stale record would only fail again on resume.
            let _ = journal.commit(flash, &state);
            return Err(InstallError::Payload(e));
        }
        state.download = None;
        if arm == Arm::Later {
            journal.commit(flash, &state)?;
            return Ok(self.slot);
        }
        state.trial = TrialState::Pending { slot: self.slot };
        if self.mode == Mode::Swap {
            state.swap = Some(SwapProgress {
                image_sectors: self.written.div_ceil(self.sector).max(1),
                phase: SwapPhase::Staged,
            });
        }
        journal.commit(flash, &state)?;
        Ok(self.slot)
    }
}
