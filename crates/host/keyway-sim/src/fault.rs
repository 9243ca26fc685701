//! Power-cut plans: where the power fails, and what an interrupted
//! operation leaves behind.

use std::collections::VecDeque;

use crate::error::OpKind;

/// What a write interrupted by a power cut leaves in its range.
///
/// In both modes a byte only ever moves from its old value toward the
/// value the write asked for, bit by bit: a torn write never sets a bit the
/// write itself could not set. A "partially programmed" byte has a random
/// subset of the bits the write had to program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteTear {
    /// The write stopped at a random byte: the bytes before it are
    /// programmed, that byte partially, the bytes after it untouched.
    Prefix,
    /// Each write unit independently ended up programmed, partially
    /// programmed or untouched (one chance in three each).
    Subset,
}

/// What an erase interrupted by a power cut leaves behind.
///
/// An erase over several sectors erases them in address order: the sectors
/// before the one in progress (chosen at random) are erased, the ones after
/// it untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EraseTear {
    /// The sector in progress is partially erased: a random subset of its
    /// programmed bits is back in the erased state.
    Partial,
    /// The sector in progress holds random bytes (erase algorithms
    /// pre-program and then erase, so any pattern is possible).
    Random,
}

/// How a cut meets the operation it targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cut {
    /// Power fails just before the operation: it does not happen and is
    /// not counted.
    Before,
    /// Power fails while the operation runs. It is counted, its effect is
    /// partial as the tear modes say, and it returns [`crate::Error::PowerCut`].
    /// Which mode applies depends on whether the operation turns out to be
    /// a write or an erase, so an exhaustive sweep need not know.
    During {
        /// The effect on a write.
        write: WriteTear,
        /// The effect on an erase.
        erase: EraseTear,
    },
}

/// One planned power failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CutPoint {
    /// The 0-based index of the erase/write operation it hits, counted over
    /// the flash's whole life as [`crate::SimFlash::ops`] counts it (power
    /// cycles do not reset the count). After a `Before` cut at `n`,
    /// recovery's first operation is again number `n`; after a `During`
    /// cut it is `n + 1`.
    pub op: u64,
    /// Before or during the operation.
    pub cut: Cut,
}

impl CutPoint {
    /// The three ways a sweep cuts operation `op`: before it; during it
    /// with a prefix-torn write or a partial erase; during it with a
    /// subset-torn write or an erase that leaves random contents.
    pub fn three_ways(op: u64) -> [CutPoint; 3] {
        [
            CutPoint {
                op,
                cut: Cut::Before,
            },
            CutPoint {
                op,
                cut: Cut::During {
                    write: WriteTear::Prefix,
                    erase: EraseTear::Partial,
                },
            },
            CutPoint {
                op,
                cut: Cut::During {
                    write: WriteTear::Subset,
                    erase: EraseTear::Random,
                },
            },
        ]
    }
}

/// A sequence of power cuts with the seed that decides every random choice
/// an interrupted operation makes.
///
/// The cuts fire in order, each once. A cut fires at the first operation
/// whose index is at least its `op` while it is the next pending cut, so a
/// plan may hold several cuts for nested failures: cut during the install,
/// then again during the recovery that follows [`crate::SimFlash::power_on`].
/// The same plan on the same operation sequence always gives the same
/// flash contents: the random choices of a cut at operation `n` come from
/// a ChaCha8 stream keyed by `(seed, n)`, independent of other cuts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PowerCut {
    seed: u64,
    cuts: VecDeque<CutPoint>,
}

impl PowerCut {
    /// An empty plan (the power never fails) with this seed.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            cuts: VecDeque::new(),
        }
    }

    /// Adds a cut just before operation `op`.
    pub fn before(mut self, op: u64) -> Self {
        self.cuts.push_back(CutPoint {
            op,
            cut: Cut::Before,
        });
        self
    }

    /// Adds a cut while operation `op` runs.
    pub fn during(mut self, op: u64, write: WriteTear, erase: EraseTear) -> Self {
        self.cuts.push_back(CutPoint {
            op,
            cut: Cut::During { write, erase },
        });
        self
    }

    /// Adds any cut point.
    pub fn then(mut self, point: CutPoint) -> Self {
        self.cuts.push_back(point);
        self
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The cuts that have not fired yet, in order.
    pub fn pending(&self) -> impl Iterator<Item = &CutPoint> {
        self.cuts.iter()
    }

    /// Whether every cut has fired.
    pub fn is_done(&self) -> bool {
        self.cuts.is_empty()
    }

    /// The next cut if it targets operation `op`, removed from the plan.
    pub(crate) fn take_if_due(&mut self, op: u64) -> Option<CutPoint> {
        if self.cuts.front().is_some_and(|c| c.op <= op) {
            self.cuts.pop_front()
        } else {
            None
        }
    }
}

/// A cut that happened, for test reports ("seed 7, cut during op 41, an
/// erase of 0x4000..0x5000").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CutEvent {
    /// The index of the operation it hit.
    pub op: u64,
    /// Before or during it.
    pub cut: Cut,
    /// Whether that operation was a write or an erase.
    pub kind: OpKind,
    /// The operation's start offset.
    pub offset: u32,
    /// Its length in bytes.
    pub len: u32,
}
