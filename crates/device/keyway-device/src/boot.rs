//! Trial boot, confirm and revert in direct A/B mode: the bootloader's
//! decision and the application's confirm.
//!
//! # The bootloader
//!
//! [`decide`] is a pure function of the [`PersistentState`] and of whether
//! each slot holds a verified image. It returns a [`Decision`]: what to
//! boot, why, and the state to commit **before** booting (if any). [`boot`]
//! runs it over a [`Journal`]: it asks a [`SlotCheck`] only about the slots
//! the decision needs, commits the new state, and only then returns the
//! slot to jump to. The rules:
//!
//! * A slot that is not verified is never booted.
//! * `Pending { slot }` and `slot` verified: start a trial. Commit
//!   `Trial { slot, attempts_left: MAX_TRIAL_BOOTS }`, then boot `slot`.
//!   That boot is the first attempt: `attempts_left` counts the boots the
//!   trial has, including the one running.
//! * `Trial { slot, attempts_left }` (a boot during a trial: the image on
//!   trial did not confirm): one attempt is spent. If none is left
//!   (`attempts_left <= 1`), or `slot` fails verification, revert;
//!   otherwise commit `attempts_left - 1` and boot `slot`. A crash loop thus
//!   makes progress on every boot, and the image on trial gets at most
//!   [`MAX_TRIAL_BOOTS`] boots.
//! * Revert (also for a `Pending` slot that fails verification): commit
//!   `trial: TrialState::None` with `active_slot` unchanged, and boot the
//!   previous image by the next rule.
//! * `None` / `Confirmed`: boot `active_slot` if verified; else the other
//!   slot if verified, committing it as `active_slot` first (a download
//!   recorded into that slot is dropped in the same record); else
//!   [`Boot::Recovery`].
//!
//! When a revert finds the previous image no longer verified, the other
//! rule applies as written: the verified image that was on trial becomes
//! the active one (without raising the floor) rather than leaving the lock
//! in recovery. The [`MAX_TRIAL_BOOTS`] bound therefore holds whenever the
//! previous image still verifies.
//!
//! # Recovery
//!
//! [`Boot::Recovery`]: neither slot holds a verified image. The bootloader
//! stays in a recovery mode that accepts a local update:
//! [`Installer::begin`](crate::install::Installer::begin) can still write
//! the inactive slot (any trial was cleared by the decision's commit), and
//! its `Pending` record leads to a trial on the next boot.
//!
//! # Re-verification
//!
//! The bootloader must re-verify the image it is about to boot: its digest,
//! and the signature of its manifest against the trust anchors (and the
//! anti-rollback floor). [`boot`] asks a [`SlotCheck`];
//! [`VerifiedSlot`](crate::verified::VerifiedSlot) is the real one: it
//! reads the signed envelope head that
//! [`Installer::begin_with_manifest`](crate::install::Installer::begin_with_manifest)
//! stored in the slot's manifest area, verifies it with
//! `keyway_suit::verify_envelope` (boot rule: sequence `>=` the floor) and
//! streams the image through its digest. The decision only consumes the
//! answers; tests may supply other checks (closures).
//!
//! # The application
//!
//! The image on trial runs its self-test (motor, sensors, comms) and calls
//! [`confirm`] with the result. Only when every check passed and a trial is
//! running does it commit, in **one** journal record: `active_slot` = the
//! trial slot, `trial: Confirmed`, the anti-rollback floor raised to the
//! confirmed manifest's sequence number and the key-set version raised to
//! the confirmed one. Neither goes down: a lower value is refused. The floor
//! is raised only here. A failed self-test commits `attempts_left: 0` and
//! nothing else, so the next boot reverts (reboot to make it happen).
//!
//! Every commit is one journal record, so a power cut anywhere leaves
//! either the state before a step or the one after it; the
//! [`PersistentState::boot_attempts`] field is not used by this module.

use embedded_storage::nor_flash::NorFlash;

use crate::journal::{self, Journal, PersistentState, TrialState};

/// Boots an image on trial gets before the bootloader reverts it.
pub const MAX_TRIAL_BOOTS: u8 = 3;

/// Whether a slot holds a verified image: its digest and its manifest's
/// signatures checked against the trust anchors.
/// [`VerifiedSlot`](crate::verified::VerifiedSlot) implements it from the
/// manifest stored in the slot's manifest area.
///
/// Implemented for closures `FnMut(&mut F, u8) -> bool`.
pub trait SlotCheck<F> {
    /// Re-verifies the image in `slot` (0 or 1), reading it from `flash`.
    /// Any doubt (a read error, a missing manifest) is `false`.
    fn verified(&mut self, flash: &mut F, slot: u8) -> bool;
}

impl<F, T: FnMut(&mut F, u8) -> bool> SlotCheck<F> for T {
    fn verified(&mut self, flash: &mut F, slot: u8) -> bool {
        self(flash, slot)
    }
}

/// What the bootloader starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Boot {
    /// Jump to the image in this slot (0 or 1): it verified.
    Slot(u8),
    /// Neither slot holds a verified image: stay in the recovery mode that
    /// accepts a local update.
    Recovery,
}

/// Why a trial was reverted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevertCause {
    /// The image on trial used its [`MAX_TRIAL_BOOTS`] boots without
    /// confirming (or its self-test failed, which spends them all).
    AttemptsExhausted,
    /// The pending or trial image failed verification.
    Unverified,
    /// Swap mode: a revert that a power cut interrupted was finished (the
    /// journal keeps its progress, not its first cause).
    Resumed,
}

/// Why the bootloader decided what it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The active slot verified; nothing changes.
    Active,
    /// A pending image verified: its trial starts with this boot.
    StartTrial {
        /// The slot on trial.
        slot: u8,
        /// Boots the trial has, this one included.
        attempts_left: u8,
    },
    /// The image on trial did not confirm yet: one more attempt.
    ContinueTrial {
        /// The slot on trial.
        slot: u8,
        /// Boots the trial has left, this one included.
        attempts_left: u8,
    },
    /// The pending or trial image was dropped; the previous image boots
    /// (or, if it does not verify, the other slot or recovery).
    Reverted {
        /// The slot that was pending or on trial.
        slot: u8,
        /// Why.
        cause: RevertCause,
    },
    /// The active slot failed verification; the other slot verified and
    /// becomes the active one.
    FellBack {
        /// The slot that failed verification.
        unverified: u8,
    },
    /// Neither slot verified.
    NoVerifiedSlot,
}

/// The bootloader's decision: what to boot, why, and the state to commit
/// before booting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// What to start.
    pub boot: Boot,
    /// Why.
    pub reason: Reason,
    /// The state to commit before booting (`None`: nothing changes). Booting
    /// is correct only after this commit returned `Ok`.
    pub commit: Option<PersistentState>,
}

/// The bootloader's decision for `state`, where `slot_ok[i]` says whether
/// slot `i` holds a verified image. Pure: see the [module
/// documentation](self) for the rules. Never returns [`Boot::Slot`] for a
/// slot whose entry is `false`.
pub fn decide(state: &PersistentState, slot_ok: [bool; 2]) -> Decision {
    decide_with(state, |slot| {
        slot_ok.get(usize::from(slot)).copied().unwrap_or(false)
    })
}

/// [`decide`], asking `ok` about each slot at most once and only when the
/// rules need it.
fn decide_with(state: &PersistentState, ok: impl FnMut(u8) -> bool) -> Decision {
    let mut ok = Memo {
        ok,
        known: [None; 2],
    };
    match state.trial {
        TrialState::Pending { slot } => {
            if ok.get(slot) {
                let next = PersistentState {
                    trial: TrialState::Trial {
                        slot,
                        attempts_left: MAX_TRIAL_BOOTS,
                    },
                    ..*state
                };
                Decision {
                    boot: Boot::Slot(slot),
                    reason: Reason::StartTrial {
                        slot,
                        attempts_left: MAX_TRIAL_BOOTS,
                    },
                    commit: Some(next),
                }
            } else {
                revert(state, slot, RevertCause::Unverified, &mut ok)
            }
        }
        TrialState::Trial {
            slot,
            attempts_left,
        } => {
            if attempts_left <= 1 {
                revert(state, slot, RevertCause::AttemptsExhausted, &mut ok)
            } else if !ok.get(slot) {
                revert(state, slot, RevertCause::Unverified, &mut ok)
            } else {
                let attempts_left = attempts_left - 1;
                Decision {
                    boot: Boot::Slot(slot),
                    reason: Reason::ContinueTrial {
                        slot,
                        attempts_left,
                    },
                    commit: Some(PersistentState {
                        trial: TrialState::Trial {
                            slot,
                            attempts_left,
                        },
                        ..*state
                    }),
                }
            }
        }
        TrialState::None | TrialState::Confirmed => settle(*state, None, &mut ok),
    }
}

/// Clears the trial (active slot unchanged) and boots what [`settle`] finds.
fn revert<C: FnMut(u8) -> bool>(
    state: &PersistentState,
    slot: u8,
    cause: RevertCause,
    ok: &mut Memo<C>,
) -> Decision {
    let next = PersistentState {
        trial: TrialState::None,
        ..*state
    };
    settle(next, Some(Reason::Reverted { slot, cause }), ok)
}

/// The rule without a trial: the active slot, else the other one (recorded
/// as active), else recovery. `reverted` is set when `state` must be
/// committed anyway (it differs from the journal's).
fn settle<C: FnMut(u8) -> bool>(
    state: PersistentState,
    reverted: Option<Reason>,
    ok: &mut Memo<C>,
) -> Decision {
    let active = state.active_slot;
    let other = if active == 0 { 1 } else { 0 };
    let changed = reverted.map(|_| state);
    if ok.get(active) {
        return Decision {
            boot: Boot::Slot(active),
            reason: reverted.unwrap_or(Reason::Active),
            commit: changed,
        };
    }
    if ok.get(other) {
        let mut next = PersistentState {
            active_slot: other,
            ..state
        };
        if next.download.is_some_and(|d| d.slot == other) {
            next.download = None;
        }
        return Decision {
            boot: Boot::Slot(other),
            reason: reverted.unwrap_or(Reason::FellBack { unverified: active }),
            commit: Some(next),
        };
    }
    Decision {
        boot: Boot::Recovery,
        reason: reverted.unwrap_or(Reason::NoVerifiedSlot),
        commit: changed,
    }
}

/// Each slot's answer, asked at most once.
struct Memo<C> {
    ok: C,
    known: [Option<bool>; 2],
}

impl<C: FnMut(u8) -> bool> Memo<C> {
    fn get(&mut self, slot: u8) -> bool {
        let Some(known) = self.known.get_mut(usize::from(slot)) else {
            return false;
        };
        match *known {
            Some(v) => v,
            None => {
                let v = (self.ok)(slot);
                *known = Some(v);
                v
            }
        }
    }
}

/// The bootloader's step: decides from the journal's state, asking `check`
/// about the slots the decision needs (each at most once), commits the
/// decision's state, and returns the decision. Boot the returned slot only
/// on `Ok`; on an error nothing may be booted that the commit was to
/// guard (reset and run the bootloader again).
pub fn boot<F: NorFlash, C: SlotCheck<F>>(
    journal: &mut Journal<F>,
    flash: &mut F,
    check: &mut C,
) -> Result<Decision, journal::JournalError<F::Error>> {
    let state = *journal.state();
    let decision = decide_with(&state, |slot| check.verified(flash, slot));
    if let Some(next) = &decision.commit {
        journal.commit(flash, next)?;
    }
    Ok(decision)
}

/// The application's self-test, as it reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SelfTest {
    /// The bolt motor moved and reported its end positions.
    pub motor: bool,
    /// The door and bolt sensors answered.
    pub sensors: bool,
    /// The radio (or other link) works.
    pub comms: bool,
}

impl SelfTest {
    /// Every check passed: what a healthy lock reports.
    pub const PASS: SelfTest = SelfTest {
        motor: true,
        sensors: true,
        comms: true,
    };

    /// Every check passed.
    pub fn passed(&self) -> bool {
        self.motor && self.sensors && self.comms
    }
}

/// What the confirmed manifest raises the stored values to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Confirmation {
    /// The confirmed manifest's sequence number: the new anti-rollback floor.
    pub sequence: u64,
    /// The key-set version in force with it (`Verified::new_keyset`'s, or the
    /// current one).
    pub keyset_version: u32,
}

/// Why [`confirm`] did not confirm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfirmError<E> {
    /// No image runs on trial (the state's trial is shown). Nothing was
    /// committed.
    NoTrial {
        /// The journal's trial state.
        trial: TrialState,
    },
    /// The self-test failed: `attempts_left: 0` was committed, so the next
    /// boot reverts to the previous image.
    SelfTestFailed {
        /// The slot on trial.
        slot: u8,
        /// The report.
        self_test: SelfTest,
    },
    /// The trial was already marked for revert (`attempts_left: 0`, after a
    /// failed self-test): a later pass does not undo that. Nothing was
    /// committed.
    RevertScheduled {
        /// The slot on trial.
        slot: u8,
    },
    /// The sequence number is below the stored floor. Nothing was committed.
    FloorDown {
        /// The stored floor.
        floor: u64,
        /// The sequence number given.
        got: u64,
    },
    /// The key-set version is below the stored one. Nothing was committed.
    KeysetDown {
        /// The stored version.
        current: u32,
        /// The version given.
        got: u32,
    },
    /// The journal commit failed (for a failed self-test: the revert was
    /// not recorded either; the trial's attempts still bound it).
    Journal(journal::JournalError<E>),
}

wrap_error!(ConfirmError::Journal(journal::JournalError<E>));

impl<E: core::fmt::Debug> core::fmt::Display for ConfirmError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfirmError::NoTrial { trial } => write!(f, "confirm: no trial ({trial:?})"),
            ConfirmError::SelfTestFailed { slot, self_test } => write!(
                f,
                "confirm: slot {slot} self-test failed (motor {}, sensors {}, comms {}); reverting",
                self_test.motor, self_test.sensors, self_test.comms
            ),
            ConfirmError::RevertScheduled { slot } => {
                write!(f, "confirm: slot {slot} is already marked for revert")
            }
            ConfirmError::FloorDown { floor, got } => {
                write!(f, "confirm: seq {got} < floor {floor}")
            }
            ConfirmError::KeysetDown { current, got } => {
                write!(f, "confirm: key set v{got} < v{current}")
            }
            ConfirmError::Journal(e) => write!(f, "confirm: {e}"),
        }
    }
}

/// The application's confirm, run by the image on trial after its
/// self-test. See the [module documentation](self).
///
/// With a trial running and every check of `self_test` passed, commits in
/// one record: `active_slot` = the trial slot, `trial: Confirmed`,
/// `floor = Some(confirmation.sequence)` and
/// `keyset_version = confirmation.keyset_version`, and returns the
/// confirmed slot. A value below the stored one is refused before anything
/// is written ([`ConfirmError::FloorDown`], [`ConfirmError::KeysetDown`]);
/// an equal one is kept. A failed self-test commits only
/// `attempts_left: 0` ([`ConfirmError::SelfTestFailed`]).
pub fn confirm<F: NorFlash>(
    journal: &mut Journal<F>,
    flash: &mut F,
    self_test: SelfTest,
    confirmation: Confirmation,
) -> Result<u8, ConfirmError<F::Error>> {
    let state = *journal.state();
    let TrialState::Trial {
        slot,
        attempts_left,
    } = state.trial
    else {
        return Err(ConfirmError::NoTrial { trial: state.trial });
    };
    if attempts_left == 0 {
        return Err(ConfirmError::RevertScheduled { slot });
    }
    if !self_test.passed() {
        let next = PersistentState {
            trial: TrialState::Trial {
                slot,
                attempts_left: 0,
            },
            ..state
        };
        journal.commit(flash, &next)?;
        return Err(ConfirmError::SelfTestFailed { slot, self_test });
    }
    if let Some(floor) = state.floor
        && confirmation.sequence < floor
    {
        return Err(ConfirmError::FloorDown {
            floor,
            got: confirmation.sequence,
        });
    }
    if confirmation.keyset_version < state.keyset_version {
        return Err(ConfirmError::KeysetDown {
            current: state.keyset_version,
            got: confirmation.keyset_version,
        });
    }
    let next = PersistentState {
        active_slot: slot,
        trial: TrialState::Confirmed,
        floor: Some(confirmation.sequence),
        keyset_version: confirmation.keyset_version,
        ..state
    };
    journal.commit(flash, &next)?;
    Ok(slot)
}
