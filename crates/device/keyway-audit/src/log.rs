//! The audit log over a ring of `NorFlash` pages: append, open, export.
//!
//! # Layout
//!
//! The log owns `pages` erase sectors of `F::ERASE_SIZE` bytes from
//! `offset` ([`Config`]). Each page is cut into slots of a fixed stride:
//! [`MAX_RECORD_LEN`] rounded up to the write and read sizes (140 bytes on
//! byte- or word-written parts, 160 on a part with 32-byte words). A slot
//! holds at most one record; the bytes after the last slot of a page are
//! never used. ([`Config::with_slot_size`] spaces the slots further apart;
//! the record format does not change.)
//!
//! The region is a [`keyway_ring::Ring`], the record ring the state
//! journal and the owner store share: the ring checks the layout
//! ([`ConfigError`]), addresses the slots, writes a record padded with one
//! `write` and finds the last used slot of a page. This module holds what
//! is the log's own: the hash chain, the checkpoints and the export.
//!
//! # Rules that make it power-fail safe
//!
//! * A record is programmed with **one** `write` of its bytes padded to
//!   the write size, into a slot that reads fully erased. A torn write
//!   damages that record only: its CRC fails and it is skipped. No byte
//!   is ever programmed twice between erases: a slot that was written to,
//!   even torn, is never written again.
//! * [`AuditLog::open`] scans every slot and takes the valid record with
//!   the highest sequence number as the newest; the next record goes into
//!   the slot after the last non-erased slot of its page, with the next
//!   sequence number and the newest record's hash as `prev`. A record lost
//!   to a cut therefore leaves no hole in the chain: its sequence number is
//!   used again by the next append.
//! * When a page is full, the log turns to the next page in the ring,
//!   erasing it first unless it reads fully erased. That page holds the
//!   oldest records.
//! * **Checkpoints.** Before a page holding valid records is erased, the
//!   log must hold a signed checkpoint whose `retained` sequence is at
//!   least the first record that survives the erase. The checkpoint for
//!   the next victim page is written as soon as the log starts a page (its
//!   first slot), not in a slot reserved at the end: if that write is
//!   torn, the next append writes it again in the next slot, so a power
//!   cut can never leave a page to erase without a durable checkpoint
//!   while slots remain. A verifier accepts a log that starts at or before
//!   the newest checkpoint's `retained` sequence.

use core::marker::PhantomData;

use embedded_storage::nor_flash::NorFlash;
use keyway_ring::{FlashError, MAX_AREA, Ring};

use crate::event::Event;
use crate::record::{
    Body, Hash, Kind, MAX_RECORD_LEN, Record, Signed, Time, key_id, record_hash, signing_message,
};
use crate::sign::Signer;

pub use keyway_ring::{Config, ConfigError, FlashOp};

/// The largest slot stride this code handles (write sizes up to 256 bytes).
pub const MAX_STRIDE: usize = MAX_AREA;

/// The fewest slots a page holds: a checkpoint and two events.
const MIN_SLOTS: u32 = 3;

keyway_ring::store_error! {
    /// What a log operation failed on.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Error<E> "audit log" {
        /// The sequence number reached `u32::MAX - 1`: the log is closed.
        SequenceExhausted,
    }
    |f| {
        Error::SequenceExhausted => f.write_str("audit log: sequence numbers exhausted"),
    }
}

/// What a slot holds.
enum Slot {
    /// Every byte reads erased.
    Erased,
    /// A valid stored record (event or checkpoint) of this length.
    Valid(Record, usize),
    /// Something else: torn or garbage.
    Used,
}

/// Whether the page being filled needs a checkpoint before its next event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CheckpointDue {
    /// Not known since the page turned: find out (reads the next page).
    Unknown,
    /// A checkpoint must be written first.
    Yes,
    /// The log holds the checkpoint the next erase needs (or it erases nothing).
    No,
}

/// The tamper-evident audit log over a region of a `F: NorFlash`. It does
/// not own the flash: every operation borrows it.
#[derive(Clone, Debug)]
pub struct AuditLog<F> {
    ring: Ring,
    /// The sequence number of the next record.
    next_seq: u32,
    /// The hash of the newest record (zeros before the first).
    head: Hash,
    /// The page being filled and its next free slot (slots per page: full).
    page: u32,
    slot: u32,
    /// The `retained` sequence of the newest valid checkpoint.
    checkpoint_retained: Option<u32>,
    /// Whether a checkpoint must be written before the next event (cached
    /// until the page turns).
    checkpoint_due: CheckpointDue,
    _flash: PhantomData<fn(&mut F)>,
}

impl<F: NorFlash> AuditLog<F> {
    /// Opens the log in `config`'s region: scans every slot, takes the
    /// valid record with the highest sequence number as the newest, and
    /// the newest valid checkpoint. Reads only. A slot that fails to read
    /// (an ECC error on a torn word) counts as used and invalid, unless no
    /// slot could be read at all: then the first error is returned.
    pub fn open(flash: &mut F, config: Config) -> Result<Self, Error<F::Error>> {
        let ring = Ring::new(flash, config, MAX_RECORD_LEN, MIN_SLOTS)?;
        let mut log = Self {
            ring,
            next_seq: 0,
            head: [0; 32],
            page: 0,
            slot: 0,
            checkpoint_retained: None,
            checkpoint_due: CheckpointDue::Unknown,
            _flash: PhantomData,
        };
        let mut readable = false;
        let mut first_error = None;
        let mut newest: Option<(u32, u32)> = None; // seq, page
        // The newest record's bytes, for the chain head.
        let mut newest_bytes = [0u8; MAX_RECORD_LEN];
        let mut newest_len = 0;
        let mut checkpoint: Option<(u32, u32)> = None; // seq, retained
        let mut buf = [0u8; MAX_AREA];
        for page in 0..ring.pages() {
            for slot in 0..ring.slots_per_page() {
                match log.read_slot(flash, page, slot, &mut buf) {
                    Ok(s) => {
                        readable = true;
                        if let Slot::Valid(r, len) = s {
                            if newest.is_none_or(|(n, _)| r.seq > n) {
                                newest = Some((r.seq, page));
                                newest_bytes[..len].copy_from_slice(&buf[..len]);
                                newest_len = len;
                            }
                            if let Body::Checkpoint(c) = r.body
                                && checkpoint.is_none_or(|(n, _)| r.seq > n)
                            {
                                checkpoint = Some((r.seq, c.retained));
                            }
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
        log.checkpoint_retained = checkpoint.map(|(_, r)| r);
        match newest {
            Some((seq, page)) => {
                log.head = record_hash(&newest_bytes[..newest_len]);
                log.next_seq = seq.saturating_add(1);
                log.page = page;
                log.slot = ring.last_used(flash, page, &mut buf).map_or(0, |s| s + 1);
            }
            None => {
                // Nothing to keep: the first append turns to page 0,
                // erasing it unless it reads erased.
                log.page = ring.pages() - 1;
                log.slot = ring.slots_per_page();
            }
        }
        Ok(log)
    }

    /// The sequence number the next record gets: the number of records
    /// appended so far (checkpoints included).
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// The chain head: the hash of the newest record (zeros before the first).
    pub fn head(&self) -> &Hash {
        &self.head
    }

    /// The `retained` sequence of the newest checkpoint: records before it
    /// may have been rotated out.
    pub fn checkpoint_retained(&self) -> Option<u32> {
        self.checkpoint_retained
    }

    /// The slot stride: the distance between records in a page.
    pub fn stride(&self) -> u32 {
        self.ring.stride()
    }

    /// Slots per page.
    pub fn slots_per_page(&self) -> u32 {
        self.ring.slots_per_page()
    }

    /// Pages in the ring.
    pub fn pages(&self) -> u32 {
        self.ring.pages()
    }

    /// The bytes an append of a record of `len` bytes programs: `len`
    /// rounded up to the write size.
    pub fn write_len(len: usize) -> usize {
        len.div_ceil(F::WRITE_SIZE) * F::WRITE_SIZE
    }

    /// Appends `event` at `time` and returns its sequence number. One
    /// `write` of the record's padded bytes; when the page is full, first
    /// one erase of the next page (unless it reads erased); when the log
    /// starts a page whose successor holds records, first a checkpoint
    /// signed by `signer`. When this returns `Ok` the record is durable; a
    /// power cut inside it loses at most this record (and a checkpoint
    /// being written, which the next append writes again).
    pub fn append<S: Signer + ?Sized>(
        &mut self,
        flash: &mut F,
        signer: &S,
        time: Time,
        event: &Event,
    ) -> Result<u32, Error<F::Error>> {
        // A turn, a checkpoint, at most one more turn and checkpoint (a
        // checkpoint written into the last slot), then the event.
        for _ in 0..4 {
            if self.slot >= self.ring.slots_per_page() {
                self.turn(flash)?;
            }
            if !self.checkpoint_needed(flash) {
                break;
            }
            self.write_checkpoint(flash, signer, time)?;
        }
        if self.slot >= self.ring.slots_per_page() {
            self.turn(flash)?;
        }
        let seq = self.next_seq;
        self.write_record(
            flash,
            &Record {
                seq,
                time,
                prev: self.head,
                body: Body::Event(*event),
            },
        )?;
        Ok(seq)
    }

    /// Starts an export of the records oldest to newest, ended by a head
    /// signed at `time` (see [`Export`]). Do not append while an export is
    /// in progress: an append that erases a page drops records from it.
    pub fn export(&self, time: Time) -> Export {
        Export {
            page: 0,
            slot: 0,
            stop: self.next_seq,
            head: self.head,
            last: None,
            first: None,
            time,
            pending: [0; MAX_RECORD_LEN],
            pending_len: 0,
            pending_pos: 0,
            state: ExportState::Records,
        }
    }

    fn checkpoint_needed(&mut self, flash: &mut F) -> bool {
        let needed = match self.checkpoint_due {
            CheckpointDue::Yes => return true,
            CheckpointDue::No => return false,
            CheckpointDue::Unknown => {
                let victim = self.ring.next_page(self.page);
                self.first_valid_seq(flash, victim).is_some() && {
                    let required = self.required_retained(flash, victim);
                    self.checkpoint_retained.is_none_or(|r| r < required)
                }
            }
        };
        self.checkpoint_due = if needed {
            CheckpointDue::Yes
        } else {
            CheckpointDue::No
        };
        needed
    }

    /// The first sequence number that survives erasing `victim`: the
    /// first valid record of the page after it, or the next record's.
    fn required_retained(&self, flash: &mut F, victim: u32) -> u32 {
        self.first_valid_seq(flash, self.ring.next_page(victim))
            .unwrap_or(self.next_seq)
    }

    fn write_checkpoint<S: Signer + ?Sized>(
        &mut self,
        flash: &mut F,
        signer: &S,
        time: Time,
    ) -> Result<(), Error<F::Error>> {
        let victim = self.ring.next_page(self.page);
        let retained = self.required_retained(flash, victim);
        let seq = self.next_seq;
        let record = signed_record(Kind::Checkpoint, seq, time, self.head, retained, signer);
        self.checkpoint_due = CheckpointDue::Unknown;
        self.write_record(flash, &record)?;
        self.checkpoint_retained = Some(retained);
        self.checkpoint_due = CheckpointDue::No;
        Ok(())
    }

    /// Erases the next page unless it reads erased, and makes it current.
    fn turn(&mut self, flash: &mut F) -> Result<(), Error<F::Error>> {
        let victim = self.ring.next_page(self.page);
        let mut buf = [0u8; MAX_AREA];
        if self.ring.last_used(flash, victim, &mut buf).is_some() {
            self.ring.erase(flash, victim)?;
        }
        self.page = victim;
        self.slot = 0;
        self.checkpoint_due = CheckpointDue::Unknown;
        Ok(())
    }

    fn write_record(&mut self, flash: &mut F, record: &Record) -> Result<(), Error<F::Error>> {
        if self.next_seq >= u32::MAX - 1 {
            return Err(Error::SequenceExhausted);
        }
        let mut bytes = [0u8; MAX_RECORD_LEN];
        let n = record.encode(&mut bytes);
        let slot = self.slot;
        // Whatever happens to this write, its slot is used from now on.
        self.slot += 1;
        self.ring.write(flash, self.page, slot, &bytes[..n])?;
        self.head = record_hash(&bytes[..n]);
        self.next_seq = record.seq + 1;
        Ok(())
    }

    /// The sequence number of the first valid record in `page`.
    fn first_valid_seq(&self, flash: &mut F, page: u32) -> Option<u32> {
        let mut buf = [0u8; MAX_AREA];
        (0..self.ring.slots_per_page()).find_map(|slot| {
            match self.read_slot(flash, page, slot, &mut buf) {
                Ok(Slot::Valid(r, _)) => Some(r.seq),
                _ => None,
            }
        })
    }

    /// Reads `slot` of `page` and decodes what it holds; a valid record's
    /// bytes are `buf[..len]`.
    fn read_slot(
        &self,
        flash: &mut F,
        page: u32,
        slot: u32,
        buf: &mut [u8; MAX_AREA],
    ) -> Result<Slot, FlashError<F::Error>> {
        Ok(match self.ring.read(flash, page, slot, buf)? {
            keyway_ring::Slot::Erased => Slot::Erased,
            keyway_ring::Slot::Written(bytes) => match Record::decode(bytes) {
                Ok((r, len)) if r.kind() != Kind::ExportHead => Slot::Valid(r, len),
                _ => Slot::Used,
            },
        })
    }
}

/// A checkpoint or export head signed by `signer`.
fn signed_record<S: Signer + ?Sized>(
    kind: Kind,
    seq: u32,
    time: Time,
    head: Hash,
    retained: u32,
    signer: &S,
) -> Record {
    let mut signed = Signed {
        count: seq,
        retained,
        key_id: key_id(&signer.public_key()),
        signature: [0; 64],
    };
    let message = signing_message(kind, seq, time, &head, &signed);
    signed.signature = signer.sign(&message);
    Record {
        seq,
        time,
        prev: head,
        body: match kind {
            Kind::ExportHead => Body::ExportHead(signed),
            _ => Body::Checkpoint(signed),
        },
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExportState {
    Records,
    Head,
    Done,
}

/// A sans-IO export in progress: [`Export::fill`] writes the next bytes of
/// the export file into a caller buffer, any size, so a transport can send
/// it in chunks. The file is the log's valid records, oldest to newest,
/// each as its unpadded bytes, then an export head (kind 3) signed at
/// export time over the chain head, the record count and the first
/// sequence number exported. Its state is about 270 bytes.
#[derive(Clone, Debug)]
pub struct Export {
    /// Pages visited, counted from the oldest (the one after the current).
    page: u32,
    slot: u32,
    /// The log's next sequence number when the export started.
    stop: u32,
    head: Hash,
    last: Option<u32>,
    first: Option<u32>,
    time: Time,
    pending: [u8; MAX_RECORD_LEN],
    pending_len: usize,
    pending_pos: usize,
    state: ExportState,
}

impl Export {
    /// Writes the next export bytes into `out`; returns how many (0 when
    /// the export is complete). Reads the log's slots in ring order from
    /// the oldest page, skipping erased, torn and stale slots.
    pub fn fill<F: NorFlash, S: Signer + ?Sized>(
        &mut self,
        log: &AuditLog<F>,
        flash: &mut F,
        signer: &S,
        out: &mut [u8],
    ) -> Result<usize, Error<F::Error>> {
        let mut written = 0;
        while written < out.len() {
            if self.pending_pos < self.pending_len {
                let n = (self.pending_len - self.pending_pos).min(out.len() - written);
                out[written..written + n]
                    .copy_from_slice(&self.pending[self.pending_pos..self.pending_pos + n]);
                self.pending_pos += n;
                written += n;
                continue;
            }
            match self.state {
                ExportState::Records => self.next_record(log, flash)?,
                ExportState::Head => {
                    let retained = self.first.unwrap_or(self.stop);
                    let record = signed_record(
                        Kind::ExportHead,
                        self.stop,
                        self.time,
                        self.head,
                        retained,
                        signer,
                    );
                    self.pending_len = record.encode(&mut self.pending);
                    self.pending_pos = 0;
                    self.state = ExportState::Done;
                }
                ExportState::Done => break,
            }
        }
        Ok(written)
    }

    /// Loads the next valid record into `pending`, or moves to the head.
    fn next_record<F: NorFlash>(
        &mut self,
        log: &AuditLog<F>,
        flash: &mut F,
    ) -> Result<(), Error<F::Error>> {
        let mut buf = [0u8; MAX_AREA];
        let (pages, slots) = (log.ring.pages(), log.ring.slots_per_page());
        while self.page < pages {
            let page = (log.page + 1 + self.page) % pages;
            while self.slot < slots {
                let slot = self.slot;
                self.slot += 1;
                if let Ok(Slot::Valid(r, len)) = log.read_slot(flash, page, slot, &mut buf)
                    && r.seq < self.stop
                    && self.last.is_none_or(|l| r.seq > l)
                {
                    self.last = Some(r.seq);
                    self.first.get_or_insert(r.seq);
                    self.pending[..len].copy_from_slice(&buf[..len]);
                    self.pending_len = len;
                    self.pending_pos = 0;
                    return Ok(());
                }
            }
            self.page += 1;
            self.slot = 0;
        }
        self.state = ExportState::Head;
        Ok(())
    }
}
