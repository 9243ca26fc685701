//! Swap mode: for images linked to one address (the primary slot, 0). The
//! update is staged in the secondary slot (1) while the application runs,
//! and the bootloader swaps it in, at most **one erase per sector per slot**
//! for the swap, resumable after a power cut at any instant, and swaps the
//! previous image back by itself when the trial fails.
//!
//! # Where the bytes go
//!
//! Let `S` be the slot sector size, `m` the manifest sectors and `k` the
//! sectors the new image occupies. The swap moves `n = m + k` *moved
//! sectors*: logical sector `j < m` is the primary's manifest area sector
//! `j`, logical sector `m + i` is the primary's image sector `i`. The
//! secondary slot is used one sector in ([`SlotLayout::place`]):
//!
//! ```text
//! secondary: [ spare | new manifest (m) | new image (k) | ... ]
//!              Q[0]    Q[1] ..            Q[m+1] ..
//! ```
//!
//! so secondary sector `Q[j + 1]` holds the new contents of logical `j`.
//! The installer writes it there as it downloads ([`crate::install`]), and
//! records `swap: Staged { image_sectors: k }` with `Pending { slot: 1 }`.
//!
//! # The swap (bootloader)
//!
//! Step `j` for `j` in `0..n`, `P[j]` being the primary sector of logical `j`:
//!
//! 1. *save*: erase `Q[j]`, copy `P[j]` into it, commit
//!    `Swapping { step: j, saved: true }`. `Q[j]` is free: the spare for
//!    `j = 0`, otherwise the new contents of logical `j - 1`, which step
//!    `j - 1` already copied into the primary.
//! 2. *install*: erase `P[j]`, copy `Q[j + 1]` into it, commit
//!    `Swapping { step: j + 1, saved: false }` (for the last step:
//!    `Swapped` together with `Trial { slot: 0, .. }`).
//!
//! Each primary sector and each secondary sector is erased once: the
//! shifted staging (the idea behind MCUboot's swap-using-offset,
//! `MCUBOOT_SWAP_USING_OFFSET`, which its release notes describe as writing
//! the update "in the second sector in the update slot") makes the move of
//! the primary image that MCUboot's swap-using-move needs (a second erase
//! of every primary sector) unnecessary, and no scratch sector is erased
//! per step as in swap-using-scratch. Unlike MCUboot, the progress lives in
//! the state journal rather than in slot trailers, the manifest area moves
//! with the image, and the staged image is verified before anything moves. After the swap the previous image's moved
//! sectors are in `Q[0..n]` in logical order; its sectors beyond `k` (if it
//! was longer) never left the primary.
//!
//! # Power cuts
//!
//! Each half step is idempotent given the journal record before it: a
//! *save* reads `P[j]`, which is intact until the *install* half of the
//! same step begins, and that begins only after `saved: true` is committed;
//! an *install* reads `Q[j + 1]`, which no step touches before step
//! `j + 1`. The journal keeps the previous or the next record across any
//! cut, so [`boot`] resumes a swap from where its journal says and runs it
//! to the end before it boots anything: the primary is never booted while
//! it holds a mix of the two images.
//!
//! # Trial, revert and confirm
//!
//! * Before a swap starts, the staged image is verified ([`SlotCheck`] for
//!   slot 1). An unverified staged image is dropped, never moved.
//! * After the swap, the primary is re-verified (slot 0) and boots on
//!   trial, with [`MAX_TRIAL_BOOTS`] boots as in direct mode.
//! * A trial that runs out of boots (a failed self-test spends them all,
//!   see [`crate::boot::confirm`]) or whose image fails verification is
//!   reverted: step `j` erases `P[j]` and copies the saved `Q[j]` back,
//!   committing `Reverting { step: j + 1 }`; the last step commits
//!   `swap: None, trial: None`. Reverting reads only the secondary, which
//!   it never writes, so every step is idempotent.
//! * [`crate::boot::confirm`] confirms as in direct mode (active slot 0,
//!   the floor raised).
//! * Only the primary is ever booted. When it does not verify and no swap
//!   or revert can help, the bootloader stays in [`Boot::Recovery`], where
//!   the installer still stages a local update.

use embedded_storage::nor_flash::NorFlash;

use crate::boot::{Boot, Decision, MAX_TRIAL_BOOTS, Reason, RevertCause, SlotCheck};
use crate::install::{BufferSizeError, LayoutError, Mode, SlotLayout};
use crate::journal::{
    self, FlashOp, Journal, PersistentState, SwapPhase, SwapProgress, TrialState,
};

/// The default copy buffer of [`boot`]: 256 bytes.
pub const DEFAULT_BUF: usize = 256;

/// What the swap bootloader failed on. After any error, reset and run
/// [`boot`] again: the journal says where to resume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapError<E> {
    /// The slot layout does not fit the flash.
    Layout(LayoutError),
    /// The layout is not in [`Mode::Swap`].
    NotSwapMode,
    /// The copy buffer `BUF` is zero, not a multiple of the write and read
    /// sizes, or does not divide the slot sector size.
    BufferSize(BufferSizeError),
    /// A journal commit or read failed.
    Journal(journal::JournalError<E>),
    /// The flash refused or failed an operation.
    Flash {
        /// Which operation.
        op: FlashOp,
        /// Its start offset in the flash.
        offset: u32,
        /// The driver's error.
        error: E,
    },
}

impl<E> SwapError<E> {
    /// Wraps the driver's error from `op` at `offset` (for `map_err`).
    fn flash(op: FlashOp, offset: u32) -> impl FnOnce(E) -> Self {
        move |error| SwapError::Flash { op, offset, error }
    }
}

wrap_error!(SwapError::Journal(journal::JournalError<E>));

impl<E: core::fmt::Debug> core::fmt::Display for SwapError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SwapError::Layout(e) => write!(f, "swap: slot layout: {e:?}"),
            SwapError::NotSwapMode => f.write_str("swap: the slot layout is not in swap mode"),
            SwapError::BufferSize(e) => write!(f, "swap: copy buffer: {e:?}"),
            SwapError::Journal(e) => write!(f, "swap: {e}"),
            SwapError::Flash { op, offset, error } => {
                write!(f, "swap: flash {op:?} at {offset:#x}: {error:?}")
            }
        }
    }
}

/// The sectors a swap moves, from the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    sector: u32,
    primary: u32,
    secondary: u32,
    /// Primary sectors (image and manifest area).
    primary_sectors: u32,
    manifest_sectors: u32,
    /// Moved sectors: manifest area + image.
    moved: u32,
    erased: u8,
}

impl Plan {
    /// The plan for an image of `image_sectors` sectors, `None` when the
    /// layout cannot move that many (a record that does not fit the
    /// layout is never acted on).
    fn new<F: NorFlash>(layout: &SlotLayout, image_sectors: u32) -> Option<Plan> {
        let sector = layout.sector_size::<F>();
        let [p, q] = &layout.slots;
        let primary_sectors = (p.end - p.start) / sector;
        let secondary_sectors = (q.end - q.start) / sector;
        let m = layout.manifest_sectors;
        let moved = m.checked_add(image_sectors)?;
        let fits = image_sectors >= 1
            && moved <= primary_sectors
            && moved.checked_add(1)? <= secondary_sectors;
        fits.then_some(Plan {
            sector,
            primary: p.start,
            secondary: q.start,
            primary_sectors,
            manifest_sectors: m,
            moved,
            erased: layout.journal.erased,
        })
    }

    /// The primary sector of logical sector `j`: the manifest area first,
    /// then the image.
    fn primary_at(&self, j: u32) -> u32 {
        let index = if j < self.manifest_sectors {
            self.primary_sectors - self.manifest_sectors + j
        } else {
            j - self.manifest_sectors
        };
        self.primary + index * self.sector
    }

    /// Secondary sector `i` (`Q[i]`).
    fn secondary_at(&self, i: u32) -> u32 {
        self.secondary + i * self.sector
    }
}

/// The bootloader's step in swap mode: finishes a swap or a revert that a
/// power cut interrupted, starts the swap of a staged image, counts and
/// ends trials, and returns what to boot. See the [module
/// documentation](self).
///
/// `check` is asked about slot 0 (the primary) and slot 1 (the staged
/// image), at most once per slot and state, and only when the rules need it.
/// Every state change is committed to the journal before the flash work it
/// guards, and the returned [`Decision::commit`] is the last state committed
/// (`None`: nothing changed). Boot the returned slot only on `Ok`.
///
/// `BUF` is the copy buffer ([`DEFAULT_BUF`]): a multiple of `F::WRITE_SIZE`
/// and `F::READ_SIZE` that divides the slot sector size. Chunks that read
/// fully erased are not programmed again.
pub fn boot<F: NorFlash, C: SlotCheck<F>, const BUF: usize>(
    journal: &mut Journal<F>,
    flash: &mut F,
    layout: &SlotLayout,
    check: &mut C,
) -> Result<Decision, SwapError<F::Error>> {
    if layout.mode != Mode::Swap {
        return Err(SwapError::NotSwapMode);
    }
    layout
        .validate::<F>(flash.capacity())
        .map_err(SwapError::Layout)?;
    BufferSizeError::check::<F>(BUF, layout.sector_size::<F>() as usize)
        .map_err(SwapError::BufferSize)?;
    let mut buf = [0u8; BUF];
    let mut run = Run {
        journal,
        flash,
        layout,
        buf: &mut buf,
        committed: None,
    };
    run.boot(check)
}

/// One run of the swap bootloader.
struct Run<'a, F: NorFlash> {
    journal: &'a mut Journal<F>,
    flash: &'a mut F,
    layout: &'a SlotLayout,
    buf: &'a mut [u8],
    committed: Option<PersistentState>,
}

impl<F: NorFlash> Run<'_, F> {
    fn commit(&mut self, state: PersistentState) -> Result<(), SwapError<F::Error>> {
        self.journal.commit(self.flash, &state)?;
        self.committed = Some(state);
        Ok(())
    }

    fn decision(&self, boot: Boot, reason: Reason) -> Decision {
        Decision {
            boot,
            reason,
            commit: self.committed,
        }
    }

    fn boot<C: SlotCheck<F>>(&mut self, check: &mut C) -> Result<Decision, SwapError<F::Error>> {
        let state = *self.journal.state();
        let plan = state
            .swap
            .and_then(|s| Some((s, Plan::new::<F>(self.layout, s.image_sectors)?)));
        match (state.swap.map(|s| s.phase), plan) {
            (Some(SwapPhase::Swapping { step, saved }), Some((s, plan))) => {
                self.swap(&plan, s.image_sectors, step, saved)?;
                self.after_swap(check)
            }
            (Some(SwapPhase::Reverting { step }), Some((_, plan))) => {
                self.revert(&plan, step)?;
                Ok(self.settle(check, Some((0, RevertCause::Resumed))))
            }
            _ => self.decide(check, state),
        }
    }

    /// The rules when no swap or revert is in progress.
    fn decide<C: SlotCheck<F>>(
        &mut self,
        check: &mut C,
        state: PersistentState,
    ) -> Result<Decision, SwapError<F::Error>> {
        let staged = state
            .swap
            .filter(|s| s.phase == SwapPhase::Staged)
            .and_then(|s| {
                Some((
                    s.image_sectors,
                    Plan::new::<F>(self.layout, s.image_sectors)?,
                ))
            });
        let swapped = state
            .swap
            .filter(|s| s.phase == SwapPhase::Swapped)
            .and_then(|s| Plan::new::<F>(self.layout, s.image_sectors));
        match state.trial {
            TrialState::Pending { slot } => {
                if let (1, Some((k, plan))) = (slot, staged)
                    && check.verified(self.flash, 1)
                {
                    self.commit(PersistentState {
                        swap: Some(SwapProgress {
                            image_sectors: k,
                            phase: SwapPhase::Swapping {
                                step: 0,
                                saved: false,
                            },
                        }),
                        ..state
                    })?;
                    self.swap(&plan, k, 0, false)?;
                    return self.after_swap(check);
                }
                // Unverified, or a record this layout cannot act on: drop
                // it; nothing was moved.
                self.commit(PersistentState {
                    trial: TrialState::None,
                    swap: None,
                    ..state
                })?;
                Ok(self.settle(check, Some((slot, RevertCause::Unverified))))
            }
            TrialState::Trial {
                slot,
                attempts_left,
            } => {
                let cause = if attempts_left <= 1 {
                    Some(RevertCause::AttemptsExhausted)
                } else if !check.verified(self.flash, 0) {
                    Some(RevertCause::Unverified)
                } else {
                    None
                };
                match (cause, swapped) {
                    (None, _) => {
                        let attempts_left = attempts_left - 1;
                        self.commit(PersistentState {
                            trial: TrialState::Trial {
                                slot: 0,
                                attempts_left,
                            },
                            ..state
                        })?;
                        Ok(self.decision(
                            Boot::Slot(0),
                            Reason::ContinueTrial {
                                slot: 0,
                                attempts_left,
                            },
                        ))
                    }
                    (Some(cause), Some(plan)) => {
                        self.start_revert(&plan, state)?;
                        Ok(self.settle(check, Some((slot, cause))))
                    }
                    (Some(cause), None) => {
                        // Nothing to swap back: end the trial.
                        self.commit(PersistentState {
                            trial: TrialState::None,
                            ..state
                        })?;
                        Ok(self.settle(check, Some((slot, cause))))
                    }
                }
            }
            TrialState::None | TrialState::Confirmed => Ok(self.settle(check, None)),
        }
    }

    /// After a swap: the primary holds the new image, committed as on
    /// trial. Boot it if it verifies, else swap the previous one back.
    fn after_swap<C: SlotCheck<F>>(
        &mut self,
        check: &mut C,
    ) -> Result<Decision, SwapError<F::Error>> {
        let state = *self.journal.state();
        if check.verified(self.flash, 0) {
            return Ok(self.decision(
                Boot::Slot(0),
                Reason::StartTrial {
                    slot: 0,
                    attempts_left: MAX_TRIAL_BOOTS,
                },
            ));
        }
        match state
            .swap
            .and_then(|s| Plan::new::<F>(self.layout, s.image_sectors))
        {
            Some(plan) => {
                self.start_revert(&plan, state)?;
                Ok(self.settle(check, Some((0, RevertCause::Unverified))))
            }
            None => Ok(self.settle(check, Some((0, RevertCause::Unverified)))),
        }
    }

    fn start_revert(
        &mut self,
        plan: &Plan,
        state: PersistentState,
    ) -> Result<(), SwapError<F::Error>> {
        let image_sectors = plan.moved - plan.manifest_sectors;
        self.commit(PersistentState {
            trial: TrialState::None,
            swap: Some(SwapProgress {
                image_sectors,
                phase: SwapPhase::Reverting { step: 0 },
            }),
            ..state
        })?;
        self.revert(plan, 0)
    }

    /// Runs the swap from `step` (its first half done if `saved`) to the
    /// end; the last commit records `Swapped` and the trial.
    fn swap(
        &mut self,
        plan: &Plan,
        image_sectors: u32,
        step: u32,
        saved: bool,
    ) -> Result<(), SwapError<F::Error>> {
        let progress = |phase| {
            Some(SwapProgress {
                image_sectors,
                phase,
            })
        };
        let mut saved = saved;
        for j in step..plan.moved {
            let p = plan.primary_at(j);
            if !saved {
                self.copy_sector(plan, p, plan.secondary_at(j))?;
                let state = *self.journal.state();
                self.commit(PersistentState {
                    swap: progress(SwapPhase::Swapping {
                        step: j,
                        saved: true,
                    }),
                    ..state
                })?;
            }
            saved = false;
            self.copy_sector(plan, plan.secondary_at(j + 1), p)?;
            let state = *self.journal.state();
            let next = if j + 1 == plan.moved {
                PersistentState {
                    active_slot: 0,
                    trial: TrialState::Trial {
                        slot: 0,
                        attempts_left: MAX_TRIAL_BOOTS,
                    },
                    swap: progress(SwapPhase::Swapped),
                    ..state
                }
            } else {
                PersistentState {
                    swap: progress(SwapPhase::Swapping {
                        step: j + 1,
                        saved: false,
                    }),
                    ..state
                }
            };
            self.commit(next)?;
        }
        Ok(())
    }

    /// Copies the saved previous image back from `step` to the end; the
    /// last commit clears the swap.
    fn revert(&mut self, plan: &Plan, step: u32) -> Result<(), SwapError<F::Error>> {
        let image_sectors = plan.moved - plan.manifest_sectors;
        for j in step..plan.moved {
            self.copy_sector(plan, plan.secondary_at(j), plan.primary_at(j))?;
            let state = *self.journal.state();
            let next = if j + 1 == plan.moved {
                PersistentState {
                    trial: TrialState::None,
                    swap: None,
                    ..state
                }
            } else {
                PersistentState {
                    swap: Some(SwapProgress {
                        image_sectors,
                        phase: SwapPhase::Reverting { step: j + 1 },
                    }),
                    ..state
                }
            };
            self.commit(next)?;
        }
        Ok(())
    }

    /// Erases the sector at `to` and copies the sector at `from` into it,
    /// skipping chunks that read fully erased.
    fn copy_sector(&mut self, plan: &Plan, from: u32, to: u32) -> Result<(), SwapError<F::Error>> {
        self.flash
            .erase(to, to + plan.sector)
            .map_err(SwapError::flash(FlashOp::Erase, to))?;
        let mut at = 0u32;
        let len = self.buf.len() as u32;
        while at < plan.sector {
            let src = from + at;
            self.flash
                .read(src, self.buf)
                .map_err(SwapError::flash(FlashOp::Read, src))?;
            if self.buf.iter().any(|b| *b != plan.erased) {
                let dst = to + at;
                self.flash
                    .write(dst, self.buf)
                    .map_err(SwapError::flash(FlashOp::Write, dst))?;
            }
            at += len;
        }
        Ok(())
    }

    /// No trial any more: boot the primary if it verifies, else recovery.
    /// `reverted` names the trial that ended, if any.
    fn settle<C: SlotCheck<F>>(
        &mut self,
        check: &mut C,
        reverted: Option<(u8, RevertCause)>,
    ) -> Decision {
        let reason = reverted.map(|(slot, cause)| Reason::Reverted { slot, cause });
        if check.verified(self.flash, 0) {
            self.decision(Boot::Slot(0), reason.unwrap_or(Reason::Active))
        } else {
            self.decision(Boot::Recovery, reason.unwrap_or(Reason::NoVerifiedSlot))
        }
    }
}
