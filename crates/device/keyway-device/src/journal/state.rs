//! [`PersistentState`] and its fixed, versioned byte layout.

/// What the lock keeps across power cycles. Fixed size, `Copy`, no heap.
///
/// [`PersistentState::default`] is the state of a lock that has never
/// committed anything: no anti-rollback floor, key-set version 0, slot 0
/// active, no trial, no boot attempts, no download in progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PersistentState {
    /// The anti-rollback floor: the sequence number of the last confirmed
    /// manifest. `None` until the first confirm; a manifest must exceed it.
    pub floor: Option<u64>,
    /// The version of the key set in force (0: none yet, the root keys sign).
    pub keyset_version: u32,
    /// The image slot the bootloader boots (0 or 1).
    pub active_slot: u8,
    /// Where a new image stands in its trial.
    pub trial: TrialState,
    /// Boots attempted since the last confirm.
    pub boot_attempts: u8,
    /// A download in progress, to resume after a power cut.
    pub download: Option<Download>,
    /// Swap mode only: where the staged image stands in its swap into the
    /// primary slot (see [`crate::swap`]). Always `None` in direct mode.
    pub swap: Option<SwapProgress>,
}

/// Swap mode: the image staged in the secondary slot and its swap with the
/// primary slot (see [`crate::swap`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SwapProgress {
    /// Sectors the new image occupies in the primary slot (its manifest
    /// area not counted). The swap moves these and the manifest area.
    pub image_sectors: u32,
    /// How far the swap has come.
    pub phase: SwapPhase,
}

/// The phases of a swap, each committed to the journal as it is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SwapPhase {
    /// The image is written and verified in the secondary slot's staging
    /// area; nothing moved yet.
    Staged,
    /// The swap runs: steps below `step` are complete; `saved` says whether
    /// step `step` already saved the primary sector into the secondary.
    Swapping {
        /// The step in progress (0-based, over the moved sectors).
        step: u32,
        /// The first half of `step` (primary sector saved) is done.
        saved: bool,
    },
    /// The swap is complete: the primary holds the new image, the secondary
    /// the previous one (for a revert).
    Swapped,
    /// The previous image is copied back into the primary: steps below
    /// `step` are complete.
    Reverting {
        /// The step in progress.
        step: u32,
    },
}

/// Where a new image stands between install and confirm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TrialState {
    /// No new image is waiting or on trial.
    #[default]
    None,
    /// An image in `slot` is installed and verified; the next boot tries it.
    Pending {
        /// The slot holding it (0 or 1).
        slot: u8,
    },
    /// The image in `slot` runs on trial.
    Trial {
        /// The slot holding it (0 or 1).
        slot: u8,
        /// Boots left before the bootloader reverts.
        attempts_left: u8,
    },
    /// The image on trial passed its self-test and was confirmed.
    Confirmed,
}

/// A payload being written into a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Download {
    /// The slot it is written into (0 or 1).
    pub slot: u8,
    /// The SHA-256 digest of the manifest it belongs to.
    pub manifest_digest: [u8; 32],
    /// Payload bytes already written and hashed.
    pub offset: u32,
}

/// Why bytes are not an encoded [`PersistentState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The input is not exactly [`PersistentState::ENCODED_LEN`] bytes.
    Length {
        /// The length required.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The layout version is not one this code reads.
    Version(u8),
    /// A field holds a value outside its range (a tag, a slot number, or
    /// non-zero bytes where the layout requires zeros).
    Field {
        /// The field's name.
        field: &'static str,
        /// Its byte offset in the encoding.
        offset: usize,
        /// The offending byte.
        value: u8,
    },
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Length { expected, got } => {
                write!(f, "state: {got} bytes, expected {expected}")
            }
            DecodeError::Version(v) => write!(f, "state: layout version {v}"),
            DecodeError::Field {
                field,
                offset,
                value,
            } => write!(f, "state: {field} {value:#04x} at {offset}"),
        }
    }
}

/// Byte offsets of the version-1 layout.
mod at {
    pub const VERSION: usize = 0;
    pub const FLOOR_TAG: usize = 1;
    pub const FLOOR: usize = 2; // u64
    pub const KEYSET: usize = 10; // u32
    pub const ACTIVE: usize = 14;
    pub const TRIAL_TAG: usize = 15;
    pub const TRIAL_SLOT: usize = 16;
    pub const TRIAL_ATTEMPTS: usize = 17;
    pub const BOOT_ATTEMPTS: usize = 18;
    pub const DL_TAG: usize = 19;
    pub const DL_SLOT: usize = 20;
    pub const DL_DIGEST: usize = 21; // [u8; 32]
    pub const DL_OFFSET: usize = 53; // u32
    pub const SWAP_TAG: usize = 57;
    pub const SWAP_SECTORS: usize = 58; // u32
    pub const SWAP_STEP: usize = 62; // u32
    pub const SWAP_SAVED: usize = 66;
    pub const END: usize = 67;
}

const SWAP_NONE: u8 = 0;
const SWAP_STAGED: u8 = 1;
const SWAP_SWAPPING: u8 = 2;
const SWAP_SWAPPED: u8 = 3;
const SWAP_REVERTING: u8 = 4;

const TRIAL_NONE: u8 = 0;
const TRIAL_PENDING: u8 = 1;
const TRIAL_TRIAL: u8 = 2;
const TRIAL_CONFIRMED: u8 = 3;

impl PersistentState {
    /// The layout version [`PersistentState::encode`] writes (byte 0).
    pub const VERSION: u8 = 2;

    /// The length of the encoding: 67 bytes.
    ///
    /// | Offset | Size | Field |
    /// |---|---|---|
    /// | 0 | 1 | layout version (1) |
    /// | 1 | 1 | floor present (0/1) |
    /// | 2 | 8 | floor, u64 LE (0 if absent) |
    /// | 10 | 4 | key-set version, u32 LE |
    /// | 14 | 1 | active slot (0/1) |
    /// | 15 | 1 | trial tag: 0 none, 1 pending, 2 trial, 3 confirmed |
    /// | 16 | 1 | trial slot (0/1; 0 for none/confirmed) |
    /// | 17 | 1 | trial attempts left (0 unless trial) |
    /// | 18 | 1 | boot attempts |
    /// | 19 | 1 | download present (0/1) |
    /// | 20 | 1 | download slot (0/1; 0 if absent) |
    /// | 21 | 32 | manifest digest (zeros if absent) |
    /// | 53 | 4 | download offset, u32 LE (0 if absent) |
    /// | 57 | 1 | swap tag: 0 none, 1 staged, 2 swapping, 3 swapped, 4 reverting |
    /// | 58 | 4 | swap image sectors, u32 LE (0 if none) |
    /// | 62 | 4 | swap step, u32 LE (0 unless swapping or reverting) |
    /// | 66 | 1 | swap step's first half done (0/1; 0 unless swapping) |
    ///
    /// The encoding is canonical: bytes that must be zero are checked, so
    /// `decode` accepts exactly the outputs of `encode`.
    pub const ENCODED_LEN: usize = at::END;

    /// Writes the fixed layout. Slot numbers are written as given; a state
    /// holding a slot above 1 encodes, but [`PersistentState::decode`]
    /// refuses it (the journal checks [`PersistentState::is_valid`] first).
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut b = [0u8; Self::ENCODED_LEN];
        b[at::VERSION] = Self::VERSION;
        if let Some(floor) = self.floor {
            b[at::FLOOR_TAG] = 1;
            b[at::FLOOR..at::KEYSET].copy_from_slice(&floor.to_le_bytes());
        }
        b[at::KEYSET..at::ACTIVE].copy_from_slice(&self.keyset_version.to_le_bytes());
        b[at::ACTIVE] = self.active_slot;
        match self.trial {
            TrialState::None => b[at::TRIAL_TAG] = TRIAL_NONE,
            TrialState::Pending { slot } => {
                b[at::TRIAL_TAG] = TRIAL_PENDING;
                b[at::TRIAL_SLOT] = slot;
            }
            TrialState::Trial {
                slot,
                attempts_left,
            } => {
                b[at::TRIAL_TAG] = TRIAL_TRIAL;
                b[at::TRIAL_SLOT] = slot;
                b[at::TRIAL_ATTEMPTS] = attempts_left;
            }
            TrialState::Confirmed => b[at::TRIAL_TAG] = TRIAL_CONFIRMED,
        }
        b[at::BOOT_ATTEMPTS] = self.boot_attempts;
        if let Some(d) = self.download {
            b[at::DL_TAG] = 1;
            b[at::DL_SLOT] = d.slot;
            b[at::DL_DIGEST..at::DL_OFFSET].copy_from_slice(&d.manifest_digest);
            b[at::DL_OFFSET..at::SWAP_TAG].copy_from_slice(&d.offset.to_le_bytes());
        }
        if let Some(sw) = self.swap {
            b[at::SWAP_SECTORS..at::SWAP_STEP].copy_from_slice(&sw.image_sectors.to_le_bytes());
            let (tag, step, saved) = match sw.phase {
                SwapPhase::Staged => (SWAP_STAGED, 0, false),
                SwapPhase::Swapping { step, saved } => (SWAP_SWAPPING, step, saved),
                SwapPhase::Swapped => (SWAP_SWAPPED, 0, false),
                SwapPhase::Reverting { step } => (SWAP_REVERTING, step, false),
            };
            b[at::SWAP_TAG] = tag;
            b[at::SWAP_STEP..at::SWAP_SAVED].copy_from_slice(&step.to_le_bytes());
            b[at::SWAP_SAVED] = u8::from(saved);
        }
        b
    }

    /// Whether every slot number in the state is 0 or 1, i.e. whether
    /// [`PersistentState::decode`] accepts its encoding.
    pub fn is_valid(&self) -> bool {
        let trial_ok = match self.trial {
            TrialState::Pending { slot } | TrialState::Trial { slot, .. } => slot <= 1,
            TrialState::None | TrialState::Confirmed => true,
        };
        self.active_slot <= 1 && trial_ok && self.download.is_none_or(|d| d.slot <= 1)
    }

    /// Reads the fixed layout. Any input that is not exactly an output of
    /// [`PersistentState::encode`] for a valid state is an error; nothing
    /// here panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b: &[u8; Self::ENCODED_LEN] = bytes.try_into().map_err(|_| DecodeError::Length {
            expected: Self::ENCODED_LEN,
            got: bytes.len(),
        })?;
        if b[at::VERSION] != Self::VERSION {
            return Err(DecodeError::Version(b[at::VERSION]));
        }
        let field = |field, offset: usize| DecodeError::Field {
            field,
            offset,
            value: b[offset],
        };
        let zeros = |name, range: core::ops::Range<usize>| match range.clone().find(|&i| b[i] != 0)
        {
            Some(i) => Err(field(name, i)),
            None => Ok(()),
        };
        let slot = |name, offset: usize| {
            if b[offset] <= 1 {
                Ok(b[offset])
            } else {
                Err(field(name, offset))
            }
        };

        let floor = match b[at::FLOOR_TAG] {
            0 => {
                zeros("absent floor", at::FLOOR..at::KEYSET)?;
                None
            }
            1 => Some(u64::from_le_bytes(le(b, at::FLOOR))),
            _ => return Err(field("floor tag", at::FLOOR_TAG)),
        };
        let keyset_version = u32::from_le_bytes(le(b, at::KEYSET));
        let active_slot = slot("active slot", at::ACTIVE)?;
        let trial = match b[at::TRIAL_TAG] {
            TRIAL_NONE | TRIAL_CONFIRMED => {
                zeros("trial fields", at::TRIAL_SLOT..at::BOOT_ATTEMPTS)?;
                if b[at::TRIAL_TAG] == TRIAL_NONE {
                    TrialState::None
                } else {
                    TrialState::Confirmed
                }
            }
            TRIAL_PENDING => {
                zeros("pending attempts", at::TRIAL_ATTEMPTS..at::BOOT_ATTEMPTS)?;
                TrialState::Pending {
                    slot: slot("trial slot", at::TRIAL_SLOT)?,
                }
            }
            TRIAL_TRIAL => TrialState::Trial {
                slot: slot("trial slot", at::TRIAL_SLOT)?,
                attempts_left: b[at::TRIAL_ATTEMPTS],
            },
            _ => return Err(field("trial tag", at::TRIAL_TAG)),
        };
        let boot_attempts = b[at::BOOT_ATTEMPTS];
        let download = match b[at::DL_TAG] {
            0 => {
                zeros("absent download", at::DL_SLOT..at::SWAP_TAG)?;
                None
            }
            1 => {
                let mut manifest_digest = [0u8; 32];
                manifest_digest.copy_from_slice(&b[at::DL_DIGEST..at::DL_OFFSET]);
                Some(Download {
                    slot: slot("download slot", at::DL_SLOT)?,
                    manifest_digest,
                    offset: u32::from_le_bytes(le(b, at::DL_OFFSET)),
                })
            }
            _ => return Err(field("download tag", at::DL_TAG)),
        };
        let image_sectors = u32::from_le_bytes(le(b, at::SWAP_SECTORS));
        let step = u32::from_le_bytes(le(b, at::SWAP_STEP));
        let phase = match b[at::SWAP_TAG] {
            SWAP_NONE => {
                zeros("absent swap", at::SWAP_SECTORS..at::END)?;
                None
            }
            SWAP_STAGED | SWAP_SWAPPED => {
                zeros("swap step", at::SWAP_STEP..at::END)?;
                Some(if b[at::SWAP_TAG] == SWAP_STAGED {
                    SwapPhase::Staged
                } else {
                    SwapPhase::Swapped
                })
            }
            SWAP_SWAPPING => Some(SwapPhase::Swapping {
                step,
                saved: match b[at::SWAP_SAVED] {
                    0 => false,
                    1 => true,
                    _ => return Err(field("swap saved flag", at::SWAP_SAVED)),
                },
            }),
            SWAP_REVERTING => {
                zeros("reverting saved flag", at::SWAP_SAVED..at::END)?;
                Some(SwapPhase::Reverting { step })
            }
            _ => return Err(field("swap tag", at::SWAP_TAG)),
        };
        let swap = phase.map(|phase| SwapProgress {
            image_sectors,
            phase,
        });
        Ok(Self {
            floor,
            keyset_version,
            active_slot,
            trial,
            boot_attempts,
            download,
            swap,
        })
    }
}

/// `N` bytes at `offset` of a fixed array whose layout guarantees they exist.
fn le<const N: usize>(b: &[u8; PersistentState::ENCODED_LEN], offset: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = b.get(offset..offset + N) {
        out.copy_from_slice(src);
    }
    out
}
