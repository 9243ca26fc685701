//! The persistent state journal: append-only, CRC-checked records in
//! ping-pong erase pages.
//!
//! # Layout
//!
//! The journal owns a region of `pages` erase sectors of
//! `F::ERASE_SIZE` bytes starting at `offset` (both given in a [`Config`]);
//! each sector is a *page*. A page is divided into slots of
//! [`Config::slot_size`] bytes (by default exactly one record), and each
//! slot holds at most one record. The region is a [`keyway_ring::Ring`]
//! (the record ring the audit log and the owner store share): the ring
//! checks the layout, addresses the slots, writes a record padded with one
//! `write` and finds the last used slot of a page; this module holds what
//! is the journal's own, the record format and the rules below.
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | magic `KWJ1` |
//! | 4 | 4 | record sequence number, u32 LE |
//! | 8 | 2 | state length, u16 LE (= [`PersistentState::ENCODED_LEN`]) |
//! | 10 | 2 | reserved, 0 |
//! | 12 | 67 | the encoded [`PersistentState`] |
//! | 79 | 4 | CRC-32 (ISO-HDLC) of bytes 0..79, LE |
//! | 83 | … | padding (the erased value) to a multiple of the write and read sizes |
//!
//! # Rules that make it power-fail safe
//!
//! * A record is programmed with **one** `write` of its whole padded size,
//!   into a slot that reads fully erased, so a torn write damages that
//!   record only. A written word is never written again before its page is
//!   erased.
//! * [`Journal::open`] takes the valid record (magic, length and CRC right,
//!   state decodes) with the highest sequence number. Torn or garbage
//!   records, and records that fail to read (an ECC error on a torn word),
//!   are skipped. The next record goes to the slot after the last slot of
//!   that page that is not erased.
//! * When the current page is full, [`Journal::commit`] erases the next page
//!   and writes the record as its first slot. The page that holds the
//!   newest valid record is never erased, so an interrupted erase or a torn
//!   write always leaves the previous state readable.
//! * Pages are used in turn, so erases spread evenly over the region.
//!
//! A commit that returns `Ok` is durable. A commit interrupted by a power
//! cut leaves either the previous state or the new one, as the next
//! [`Journal::open`] reports.

mod state;

use core::marker::PhantomData;

use embedded_storage::nor_flash::NorFlash;
use keyway_ring::{Ring, Slot};

/// Where the journal lives and how its slots are laid out: the ring's
/// region (its pages are the journal's erase sectors), as for the audit log
/// and the owner store. A larger slot than the padded record leaves the
/// rest of each slot erased: fewer records per page, so tests can turn
/// pages with few commits.
pub use keyway_ring::Config;
pub use keyway_ring::{ConfigError, FlashOp};
pub use state::{DecodeError, Download, PersistentState, SwapPhase, SwapProgress, TrialState};

/// The largest padded record this code handles: the record rounded up to
/// the flash's write and read sizes must fit (write sizes up to 256 bytes).
pub const MAX_RECORD_LEN: usize = keyway_ring::MAX_AREA;

/// The record bytes before padding: header, state and CRC.
pub const RECORD_LEN: usize = HEADER_LEN + PersistentState::ENCODED_LEN + CRC_LEN;

const MAGIC: [u8; 4] = *b"KWJ1";
const HEADER_LEN: usize = 12;
const CRC_LEN: usize = 4;
const CRC_AT: usize = HEADER_LEN + PersistentState::ENCODED_LEN;
/// CRC-32 (ISO-HDLC, bitwise: no table in flash), for journal records and
/// the manifest area: the one all Keyway flash records use.
pub(crate) use keyway_ring::CRC;

/// What a journal operation failed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JournalError<E> {
    /// The flash refused or failed an operation.
    Flash {
        /// Which operation.
        op: FlashOp,
        /// Its start offset in the flash.
        offset: u32,
        /// The driver's error.
        error: E,
    },
    /// The region or slot layout does not fit the flash.
    Config(ConfigError),
    /// The state to commit holds a slot number other than 0 or 1.
    InvalidState,
    /// The record sequence number reached `u32::MAX` (about four billion
    /// commits: far past any part's endurance).
    SequenceExhausted,
}

keyway_ring::store_error!(JournalError, "journal", |f| {
    JournalError::InvalidState => f.write_str("journal: state holds a slot other than 0/1"),
    JournalError::SequenceExhausted => f.write_str("journal: record sequence exhausted"),
});

/// Where the next record goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cursor {
    /// Into this slot of this page (full when `slot == slots_per_page`).
    Append { page: u32, slot: u32 },
    /// Erase this page first, then write its first slot.
    Fresh { page: u32 },
}

/// The state journal over a region of a `F: NorFlash`. It does not own the
/// flash: [`Journal::open`] and [`Journal::commit`] borrow it, so the same
/// flash can hold the image slots.
#[derive(Clone, Debug)]
pub struct Journal<F> {
    ring: Ring,
    state: PersistentState,
    /// The sequence number and page of the newest valid record.
    newest: Option<(u32, u32)>,
    cursor: Cursor,
    _flash: PhantomData<fn(&mut F)>,
}

impl<F: NorFlash> Journal<F> {
    /// Opens the journal in `config`'s region: scans every slot of every
    /// page and takes the valid record with the highest sequence number (on
    /// a tie, the one scanned last). A region with no valid record (a
    /// fresh, erased one) opens with [`PersistentState::default`].
    ///
    /// Reads only. A read error is taken as an invalid record, except when
    /// no slot of the region could be read at all: then the first error is
    /// returned, so an unreadable flash never looks like a fresh one (which
    /// would drop the anti-rollback floor).
    pub fn open(flash: &mut F, config: Config) -> Result<Self, JournalError<F::Error>> {
        let ring = Ring::new(flash, config, RECORD_LEN, 1)?;
        let mut journal = Self {
            ring,
            state: PersistentState::default(),
            newest: None,
            cursor: Cursor::Append { page: 0, slot: 0 },
            _flash: PhantomData,
        };
        let mut buf = [0u8; MAX_RECORD_LEN];
        let mut readable = false;
        let mut first_error = None;
        let mut best: Option<(u32, u32, PersistentState)> = None; // seq, page, state
        for page in 0..ring.pages() {
            for slot in 0..ring.slots_per_page() {
                match ring.read(flash, page, slot, &mut buf) {
                    Ok(read) => {
                        readable = true;
                        if let Slot::Written(bytes) = read
                            && let Some((seq, state)) = decode_record(bytes)
                            && best.is_none_or(|(s, _, _)| seq >= s)
                        {
                            best = Some((seq, page, state));
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        if !readable && let Some(e) = first_error {
            return Err(e.into());
        }
        match best {
            Some((seq, page, state)) => {
                journal.state = state;
                journal.newest = Some((seq, page));
                let next = journal.first_free_slot(flash, page, &mut buf);
                journal.cursor = Cursor::Append { page, slot: next };
            }
            None => {
                // Nothing to keep: write into page 0 if it is all erased,
                // otherwise erase it first.
                journal.cursor = if journal.first_free_slot(flash, 0, &mut buf) == 0 {
                    Cursor::Append { page: 0, slot: 0 }
                } else {
                    Cursor::Fresh { page: 0 }
                };
            }
        }
        Ok(journal)
    }

    /// The state of the newest valid record (or the last commit).
    pub fn state(&self) -> &PersistentState {
        &self.state
    }

    /// The sequence number of the newest valid record, `None` before the
    /// first commit.
    pub fn sequence(&self) -> Option<u32> {
        self.newest.map(|(seq, _)| seq)
    }

    /// The padded length of a record: the record area each slot reads.
    pub fn record_len(&self) -> usize {
        self.ring.area() as usize
    }

    /// Records per page.
    pub fn slots_per_page(&self) -> u32 {
        self.ring.slots_per_page()
    }

    /// Pages (erase sectors) in the region.
    pub fn pages(&self) -> u32 {
        self.ring.pages()
    }

    /// Makes `state` the persistent state: one record written with one
    /// `write`, into the next slot of the current page, or, when that page
    /// is full, as the first slot of the next page, which is erased first
    /// (one erase). The page holding the newest valid record is never
    /// erased. When this returns `Ok` the state is durable; if power fails
    /// inside it, the next [`Journal::open`] finds either the previous
    /// state or `state`.
    pub fn commit(
        &mut self,
        flash: &mut F,
        state: &PersistentState,
    ) -> Result<(), JournalError<F::Error>> {
        if !state.is_valid() {
            return Err(JournalError::InvalidState);
        }
        let seq = match self.newest {
            None => 0,
            Some((s, _)) => s.checked_add(1).ok_or(JournalError::SequenceExhausted)?,
        };
        let (page, slot) = match self.cursor {
            Cursor::Append { page, slot } if slot < self.ring.slots_per_page() => (page, slot),
            Cursor::Append { page, .. } => {
                let target = self.next_page(page);
                self.erase_page(flash, target)?;
                (target, 0)
            }
            Cursor::Fresh { page } => {
                self.erase_page(flash, page)?;
                (page, 0)
            }
        };
        let record = encode_record(seq, state);
        // Whatever happens to this write, its slot is used from now on.
        self.cursor = Cursor::Append {
            page,
            slot: slot + 1,
        };
        self.ring.write(flash, page, slot, &record)?;
        self.state = *state;
        self.newest = Some((seq, page));
        Ok(())
    }

    /// The page after `page` in turn that does not hold the newest record.
    fn next_page(&self, page: u32) -> u32 {
        let newest_page = self.newest.map(|(_, p)| p);
        let pages = self.ring.pages();
        (1..=pages)
            .map(|k| ((u64::from(page) + u64::from(k)) % u64::from(pages)) as u32)
            .find(|&p| Some(p) != newest_page)
            .unwrap_or(page)
    }

    fn erase_page(&mut self, flash: &mut F, page: u32) -> Result<(), JournalError<F::Error>> {
        // Until the erase completes, the page must be erased again first.
        self.cursor = Cursor::Fresh { page };
        Ok(self.ring.erase(flash, page)?)
    }

    /// The slot after the last one of `page` that is not erased (a slot
    /// that fails to read counts as used).
    fn first_free_slot(&self, flash: &mut F, page: u32, buf: &mut [u8; MAX_RECORD_LEN]) -> u32 {
        self.ring
            .last_used(flash, page, buf)
            .map_or(0, |slot| slot + 1)
    }
}

/// A record's bytes before padding.
fn encode_record(seq: u32, state: &PersistentState) -> [u8; RECORD_LEN] {
    let mut r = [0; RECORD_LEN];
    r[0..4].copy_from_slice(&MAGIC);
    r[4..8].copy_from_slice(&seq.to_le_bytes());
    r[8..10].copy_from_slice(&(PersistentState::ENCODED_LEN as u16).to_le_bytes());
    r[HEADER_LEN..CRC_AT].copy_from_slice(&state.encode());
    let crc = CRC.checksum(&r[..CRC_AT]);
    r[CRC_AT..RECORD_LEN].copy_from_slice(&crc.to_le_bytes());
    r
}

/// A record's sequence number and state, if `bytes` (at least
/// [`RECORD_LEN`] long) hold a valid one.
fn decode_record(bytes: &[u8]) -> Option<(u32, PersistentState)> {
    let r = bytes.get(..RECORD_LEN)?;
    if r.get(0..4)? != MAGIC {
        return None;
    }
    let seq = u32::from_le_bytes(r.get(4..8)?.try_into().ok()?);
    let len = u16::from_le_bytes(r.get(8..10)?.try_into().ok()?);
    if usize::from(len) != PersistentState::ENCODED_LEN || r.get(10..12)? != [0, 0] {
        return None;
    }
    let crc = u32::from_le_bytes(r.get(CRC_AT..RECORD_LEN)?.try_into().ok()?);
    if CRC.checksum(r.get(..CRC_AT)?) != crc {
        return None;
    }
    let state = PersistentState::decode(r.get(HEADER_LEN..CRC_AT)?).ok()?;
    Some((seq, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_corruption() {
        let state = PersistentState {
            floor: Some(7),
            keyset_version: 3,
            active_slot: 1,
            trial: TrialState::Trial {
                slot: 0,
                attempts_left: 2,
            },
            boot_attempts: 1,
            download: Some(Download {
                slot: 0,
                manifest_digest: [0xAB; 32],
                offset: 4096,
            }),
            swap: Some(SwapProgress {
                image_sectors: 75,
                phase: SwapPhase::Swapping {
                    step: 12,
                    saved: true,
                },
            }),
        };
        let bytes = state.encode();
        assert_eq!(PersistentState::decode(&bytes), Ok(state));
        for i in 0..bytes.len() {
            let mut b = bytes;
            b[i] ^= 0x80;
            // Either refused or a different state: never a panic, never the same.
            assert_ne!(PersistentState::decode(&b), Ok(state));
        }
        assert!(PersistentState::decode(&bytes[..10]).is_err());
    }
}
