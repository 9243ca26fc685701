//! The lock's owner-facing persistent state, power-fail safe on NOR flash.
//!
//! [`Store`] keeps a [`State`]: the owners (at most [`MAX_OWNERS`]), the
//! consent to the pending update, the owner [`Settings`], the pairing
//! [`Verifier`] (the SPAKE2+ verifier the lock checks setup codes with) and
//! the count of wrong setup codes. It caches the whole state in RAM
//! (`Store` is about 1.1 KiB; the `ram_figures` test prints it) and writes
//! every change to flash before it reports success.
//!
//! # Design: a snapshot and its changes, on a record ring
//!
//! The store lives on a [`keyway_ring::Ring`]: `pages` erase sectors cut
//! into fixed-stride slots, one record per slot, each record written with
//! one `write` and checked by a CRC-32. A **page that is live** starts with
//! a *snapshot*: the whole state as records in slots `0..k`, sequence
//! numbers `s..s+k`, closed by an *end* record in slot `k` with sequence
//! `s+k` that counts them. After the snapshot, each change to the state is
//! **one record** in the next free slot of the live page (pair an owner,
//! remove one, grant or clear consent, new settings, a wrong code, …).
//!
//! When the live page has no free slot, the change is made by
//! **compaction**: the next page in the ring is erased and the state
//! *after* the change is written there as a new snapshot. Only the end
//! record makes that page live, so until it is written the old page, with
//! the state *before* the change, is the live one. The live page is never
//! erased.
//!
//! [`Store::open`] reads every slot, takes as live the page whose complete
//! snapshot has the highest end sequence number, replays the snapshot and
//! then each valid change record after it with a higher sequence number,
//! in slot order. Torn, garbage and unreadable slots (an ECC error on a
//! torn word) are skipped and never written again. So a power cut at any
//! instant leaves, after the next open, the state from before the change
//! being made or the state after it, never a mix of the two and never an
//! empty store: a change is either one record (valid or not) or a snapshot
//! (ended or not).
//!
//! Power cuts only ever tear the slot being written or the page being
//! erased, never a live snapshot. A read error inside a live page's
//! snapshot (a media fault, such as retention loss) makes that page not
//! live: the store then opens with the previous page's older state (or
//! empty on a first page). That is a failing part, not a power cut, and
//! is out of this design's reach.
//!
//! Opening reads every slot of the region once (54 slots of 148 bytes on
//! two nRF52840 pages).
//!
//! A change that returns an error other than a power cut may or may not
//! have reached the flash (a driver may fail after programming); the RAM
//! state stays the one before it, and the next open decides. Sequence
//! numbers and slots used by a failed write are never used again.
//!
//! # Record format
//!
//! (The codec is the `record` submodule; this module keeps the state, the
//! ring and the rules above.)
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | magic `KWO1` |
//! | 4 | 4 | sequence number, u32 LE |
//! | 8 | 1 | kind (below) |
//! | 9 | 1 | payload length `n` (exactly the kind's length) |
//! | 10 | n | payload |
//! | 10+n | 4 | CRC-32 (ISO-HDLC) of bytes 0..10+n, LE |
//! | 14+n | … | the erased value up to the write size; the slot's rest is unwritten |
//!
//! Kinds and payloads (integers little-endian; a `Time` is the RTC value
//! u64 then the boot counter u32, as in the audit log):
//!
//! | Kind | Name | n | Payload |
//! |---|---|---|---|
//! | 1 | owner | 86 | key (32 B), name length u8 (≤ 32), name (32 B) UTF-8 then zeros, added `Time` (12 B), paired-by tag u8 (0 setup code, 1 by an owner, 2 provisioning), that owner's key id (8 B) (zeros unless tag 1) |
//! | 2 | owner removed | 8 | key id |
//! | 3 | consent | 61 | update SHA-256 (32 B), sequence number u64, granted-by tag u8 (0 an owner, 1 presence window, 2 the auto-install setting), owner key id (8 B) (zeros unless tag 0), `Time` (12 B) |
//! | 4 | consent cleared | 0 | |
//! | 5 | settings | 1 | flags: bit 0 `auto_install_cve`, bit 1 `install_needs_unlocked`, other bits 0 |
//! | 6 | verifier | 101 | w0 (32 B, little-endian), L (32 B, an edwards25519 point), salt length u8 (≤ 32), salt (32 B) then zeros, iterations u32 (the P-256 suite's 134-byte verifier of channel version 1 is not decoded: such a lock is provisioned again) |
//! | 7 | verifier cleared | 0 | |
//! | 8 | wrong setup codes | 4 | the count, u32 |
//! | 9 | factory reset | 0 | everything back to [`State::default`] |
//! | 10 | snapshot end | 1 | the number of snapshot records before it |
//!
//! A snapshot is, in order: settings, wrong setup codes, the verifier (if
//! set), the consent (if any), each owner in table order, then the end: at
//! most [`MAX_SNAPSHOT`] records and the end. A page must therefore hold
//! at least [`MIN_SLOTS`] slots (the snapshot, its end and one change); the
//! stride is 148 bytes on parts with byte or word writes (27 slots in a
//! 4 KiB page), 160 on 32-byte-word parts.

use core::marker::PhantomData;

use embedded_storage::nor_flash::NorFlash;
use keyway_audit::Time;
use keyway_ring::{CRC, MAX_AREA, Ring, Slot};

pub use keyway_audit::record::key_id;
pub use keyway_ring::{Config, ConfigError, FlashOp};

mod record;

use record::{Change, decode_record, encode_record};

/// Owners a lock holds at most.
pub const MAX_OWNERS: usize = 8;
/// The longest owner name, in bytes of UTF-8.
pub const MAX_NAME: usize = 32;
/// The longest verifier salt, in bytes.
pub const MAX_SALT: usize = 32;
/// Records in the largest snapshot (before its end record).
pub const MAX_SNAPSHOT: usize = 4 + MAX_OWNERS;
/// The fewest slots a page must hold: the largest snapshot, its end and
/// one change.
pub const MIN_SLOTS: u32 = MAX_SNAPSHOT as u32 + 2;

/// An owner key's id: the first 8 bytes of the key's SHA-256 ([`key_id`]).
pub type KeyId = [u8; 8];

const MAGIC: [u8; 4] = *b"KWO1";
const HEADER_LEN: usize = 10;
const CRC_LEN: usize = 4;
#[cfg(test)]
const OWNER_LEN: usize = 86;
#[cfg(test)]
const CONSENT_LEN: usize = 61;
const VERIFIER_LEN: usize = 101;
/// The longest record: a verifier.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + VERIFIER_LEN + CRC_LEN;

/// An owner's name: at most [`MAX_NAME`] bytes of UTF-8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Name {
    len: u8,
    bytes: [u8; MAX_NAME],
}

impl Name {
    /// The name `s`, or `None` when it is longer than [`MAX_NAME`] bytes.
    pub fn new(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() > MAX_NAME {
            return None;
        }
        let mut bytes = [0; MAX_NAME];
        bytes[..b.len()].copy_from_slice(b);
        Some(Self {
            len: b.len() as u8,
            bytes,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Built from a `&str` or checked by `decode`; never fails.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

/// How an owner came to be paired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PairedBy {
    /// A person at the lock: the presence window and the setup code.
    SetupCode,
    /// Added by the paired owner with this key id.
    Owner(KeyId),
    /// At provisioning, before the lock left the factory or installer.
    Provisioning,
}

/// A paired owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    key: [u8; 32],
    id: KeyId,
    name: Name,
    added: Time,
    paired_by: PairedBy,
}

impl Owner {
    /// The owner's Ed25519 public key.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The key's id ([`key_id`]).
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The name for people (may be empty).
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// When the owner was paired (or last re-paired).
    pub fn added(&self) -> Time {
        self.added
    }

    /// Who or what paired the owner.
    pub fn paired_by(&self) -> PairedBy {
        self.paired_by
    }
}

/// Who consented to an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrantedBy {
    /// The paired owner with this key id, in a session.
    Owner(KeyId),
    /// A person at the lock, during the presence window.
    Presence,
    /// The owner's `auto_install_cve` setting.
    AutoInstall,
}

/// Consent to install one update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Consent {
    /// The update's SHA-256 (of its envelope, as the image group names it):
    /// consent is bound to these bytes, not to a version or a slot.
    pub digest: [u8; 32],
    /// The update's sequence number.
    pub sequence: u64,
    /// Who consented.
    pub granted_by: GrantedBy,
    /// When.
    pub time: Time,
}

/// The owners' update settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    /// Install without asking when the release fixes a CVE of high or
    /// critical severity (default false).
    pub auto_install_cve: bool,
    /// Install only while the bolt is withdrawn (default true).
    pub install_needs_unlocked: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            auto_install_cve: false,
            install_needs_unlocked: true,
        }
    }
}

/// The pairing verifier: what the lock keeps of its setup code (a SPAKE2+
/// verifier: `w0`, the point `L` uncompressed, the salt and the iteration
/// count of the password hash). Opaque bytes to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Verifier {
    w0: [u8; 32],
    l: [u8; 32],
    salt_len: u8,
    salt: [u8; MAX_SALT],
    iterations: u32,
}

impl Verifier {
    /// A verifier; `None` when the salt is longer than [`MAX_SALT`].
    pub fn new(w0: [u8; 32], l: [u8; 32], salt: &[u8], iterations: u32) -> Option<Self> {
        if salt.len() > MAX_SALT {
            return None;
        }
        let mut s = [0; MAX_SALT];
        s[..salt.len()].copy_from_slice(salt);
        Some(Self {
            w0,
            l,
            salt_len: salt.len() as u8,
            salt: s,
            iterations,
        })
    }

    /// `w0`.
    pub fn w0(&self) -> &[u8; 32] {
        &self.w0
    }

    /// `L`, an edwards25519 point (RFC 8032 encoding).
    pub fn l(&self) -> &[u8; 32] {
        &self.l
    }

    /// The password hash's salt.
    pub fn salt(&self) -> &[u8] {
        &self.salt[..usize::from(self.salt_len)]
    }

    /// The password hash's iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }
}

// The RAM cache stays small on every target (the lock core's budget is
// 32 KiB of RAM in all): the `ram_figures` test prints the sizes.
const _: () = assert!(core::mem::size_of::<State>() <= 1088);

/// Everything the store keeps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The owners, packed at the front in pairing order.
    owners: [Option<Owner>; MAX_OWNERS],
    consent: Option<Consent>,
    settings: Settings,
    verifier: Option<Verifier>,
    wrong_codes: u32,
}

impl Default for State {
    fn default() -> Self {
        Self {
            owners: [None; MAX_OWNERS],
            consent: None,
            settings: Settings::default(),
            verifier: None,
            wrong_codes: 0,
        }
    }
}

impl State {
    /// The owners, in pairing order.
    pub fn owners(&self) -> impl Iterator<Item = &Owner> {
        self.owners.iter().map_while(Option::as_ref)
    }

    /// How many owners are paired.
    pub fn owner_count(&self) -> usize {
        self.owners().count()
    }

    /// The owner with key id `id`.
    pub fn owner(&self, id: &KeyId) -> Option<&Owner> {
        self.owners().find(|o| o.id == *id)
    }

    /// The owner with this public key.
    pub fn owner_by_key(&self, key: &[u8; 32]) -> Option<&Owner> {
        self.owners().find(|o| o.key == *key)
    }

    /// The consent to the pending update, if any.
    pub fn consent(&self) -> Option<&Consent> {
        self.consent.as_ref()
    }

    /// The settings.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The pairing verifier, if the lock was provisioned with one.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_ref()
    }

    /// Wrong setup codes since the last success or reset of the count.
    pub fn wrong_codes(&self) -> u32 {
        self.wrong_codes
    }

    fn apply(&mut self, change: &Change) {
        match change {
            Change::Owner(o) => {
                if let Some(slot) = self
                    .owners
                    .iter_mut()
                    .find(|s| s.is_none_or(|e| e.key == o.key))
                {
                    *slot = Some(*o);
                }
            }
            Change::OwnerRemoved(id) => {
                let at = self.owners().position(|o| o.id == *id);
                if let Some(at) = at {
                    self.owners.copy_within(at + 1.., at);
                    self.owners[MAX_OWNERS - 1] = None;
                }
            }
            Change::Consent(c) => self.consent = Some(*c),
            Change::ConsentCleared => self.consent = None,
            Change::Settings(s) => self.settings = *s,
            Change::Verifier(v) => self.verifier = Some(*v),
            Change::VerifierCleared => self.verifier = None,
            Change::WrongCodes(n) => self.wrong_codes = *n,
            Change::Reset => *self = State::default(),
            Change::End(_) => {}
        }
    }

    /// Snapshot record `i` (settings, wrong codes, verifier, consent,
    /// owners), `None` past the last.
    fn snapshot(&self, i: usize) -> Option<Change> {
        let fixed = [
            Some(Change::Settings(self.settings)),
            Some(Change::WrongCodes(self.wrong_codes)),
            self.verifier.map(Change::Verifier),
            self.consent.map(Change::Consent),
        ];
        fixed
            .into_iter()
            .flatten()
            .chain(self.owners().copied().map(Change::Owner))
            .nth(i)
    }
}

keyway_ring::store_error! {
    /// What a store operation failed on (`Config` also when a page holds
    /// fewer than [`MIN_SLOTS`] slots).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Error<E> "owner store" {
        /// [`MAX_OWNERS`] owners are paired already.
        OwnersFull,
        /// The owner name has more than [`MAX_NAME`] bytes.
        NameTooLong {
            /// Its length in bytes.
            len: usize,
        },
        /// Another paired key has the same key id (a 64-bit collision: pair
        /// another key).
        KeyIdTaken {
            /// The id.
            id: KeyId,
        },
        /// No paired owner has this key id.
        UnknownOwner {
            /// The id.
            id: KeyId,
        },
        /// The record sequence number reached `u32::MAX` (four billion
        /// changes: far past any part's endurance).
        SequenceExhausted,
    }
    |f| {
        Error::OwnersFull => write!(
            f,
            "owner store: {MAX_OWNERS} owners are paired already; unpair one first"
        ),
        Error::NameTooLong { len } => write!(
            f,
            "owner store: the name has {len} bytes, at most {MAX_NAME}"
        ),
        Error::KeyIdTaken { id } => {
            write!(f, "owner store: another owner's key has the id {id:02x?}")
        },
        Error::UnknownOwner { id } => write!(f, "owner store: no owner has the key id {id:02x?}"),
        Error::SequenceExhausted => f.write_str("owner store: record sequence exhausted"),
    }
}

/// The owner store over a region of a `F: NorFlash`. It does not own the
/// flash: every operation borrows it.
#[derive(Clone, Debug)]
pub struct Store<F> {
    ring: Ring,
    state: State,
    /// The live page: the one with the newest complete snapshot.
    live: Option<u32>,
    /// The live page's next free slot (`slots_per_page`: full).
    next_slot: u32,
    /// The next record's sequence number: above every valid record's.
    next_seq: Option<u32>,
    _flash: PhantomData<fn(&mut F)>,
}

impl<F: NorFlash> Store<F> {
    /// Opens the store in `config`'s region (at least two sectors): reads
    /// every slot, takes the page with the newest complete snapshot as
    /// live, and replays it with the changes after it. A region with no
    /// complete snapshot (fresh, erased) opens with [`State::default`].
    ///
    /// Reads only. A slot that fails to read counts as used and invalid,
    /// unless no slot could be read at all: then the first error is
    /// returned, so an unreadable flash never looks like a fresh store.
    pub fn open(flash: &mut F, config: Config) -> Result<Self, Error<F::Error>> {
        let ring = Ring::new(flash, config, MAX_RECORD_LEN, MIN_SLOTS)?;
        let mut buf = [0u8; MAX_AREA];
        let mut readable = false;
        let mut first_error = None;
        let mut newest: Option<u32> = None;
        let mut live: Option<(u32, u32, u32)> = None; // end seq, page, snapshot records
        for page in 0..ring.pages() {
            // The snapshot at the page's start: its first sequence number,
            // and whether its slots are still being checked.
            let mut first: Option<u32> = None;
            let mut checking = true;
            for slot in 0..ring.slots_per_page() {
                let record = match ring.read(flash, page, slot, &mut buf) {
                    Ok(Slot::Erased) => {
                        readable = true;
                        None
                    }
                    Ok(Slot::Written(bytes)) => {
                        readable = true;
                        decode_record(bytes)
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                        None
                    }
                };
                if let Some(r) = &record {
                    newest = Some(newest.map_or(r.seq, |n| n.max(r.seq)));
                }
                if !checking {
                    continue;
                }
                // Slot `i` of a snapshot holds sequence number `first + i`;
                // the check stops at the first slot that does not.
                match record {
                    Some(r) => {
                        let f = *first.get_or_insert(r.seq);
                        if r.seq.checked_sub(f) != Some(slot) {
                            checking = false;
                        } else if let Change::End(count) = r.change {
                            checking = false;
                            if u32::from(count) == slot && live.is_none_or(|(e, _, _)| r.seq > e) {
                                live = Some((r.seq, page, slot));
                            }
                        } else if slot as usize >= MAX_SNAPSHOT {
                            checking = false;
                        }
                    }
                    None => checking = false,
                }
            }
        }
        if !readable && let Some(e) = first_error {
            return Err(e.into());
        }
        let mut store = Self {
            ring,
            state: State::default(),
            live: None,
            next_slot: 0,
            next_seq: match newest {
                None => Some(0),
                Some(n) => n.checked_add(1),
            },
            _flash: PhantomData,
        };
        if let Some((end, page, count)) = live {
            let mut last = end;
            for slot in 0..ring.slots_per_page() {
                let Ok(Slot::Written(bytes)) = ring.read(flash, page, slot, &mut buf) else {
                    continue;
                };
                let Some(r) = decode_record(bytes) else {
                    continue;
                };
                if slot < count || (slot > count && r.seq > last) {
                    store.state.apply(&r.change);
                    if slot > count {
                        last = r.seq;
                    }
                }
            }
            store.live = Some(page);
            store.next_slot = ring
                .last_used(flash, page, &mut buf)
                .map_or(0, |s| s + 1)
                .max(count + 1);
        }
        Ok(store)
    }

    /// The state (as of the last successful change).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The record ring's layout.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Pairs `key` named `name`, added at `added` by `paired_by`, and
    /// returns its key id. Pairing a paired key again replaces its name,
    /// time and origin. Refuses a name over [`MAX_NAME`] bytes, a
    /// ([`MAX_OWNERS`] + 1)th owner, and a key whose id another owner's key
    /// has. The key is not checked to be an Ed25519 point: the pairing
    /// protocol has proven it.
    pub fn pair(
        &mut self,
        flash: &mut F,
        key: &[u8; 32],
        name: &str,
        added: Time,
        paired_by: PairedBy,
    ) -> Result<KeyId, Error<F::Error>> {
        let name = Name::new(name).ok_or(Error::NameTooLong { len: name.len() })?;
        let id = key_id(key);
        if self.state.owners().any(|o| o.id == id && o.key != *key) {
            return Err(Error::KeyIdTaken { id });
        }
        if self.state.owner_by_key(key).is_none() && self.state.owner_count() >= MAX_OWNERS {
            return Err(Error::OwnersFull);
        }
        let owner = Owner {
            key: *key,
            id,
            name,
            added,
            paired_by,
        };
        self.commit(flash, &Change::Owner(owner))?;
        Ok(id)
    }

    /// Removes the owner with key id `id` and returns it.
    pub fn remove_owner(&mut self, flash: &mut F, id: &KeyId) -> Result<Owner, Error<F::Error>> {
        let owner = *self
            .state
            .owner(id)
            .ok_or(Error::UnknownOwner { id: *id })?;
        self.commit(flash, &Change::OwnerRemoved(*id))?;
        Ok(owner)
    }

    /// Records `consent` (replacing any earlier one).
    pub fn grant_consent(
        &mut self,
        flash: &mut F,
        consent: &Consent,
    ) -> Result<(), Error<F::Error>> {
        self.commit(flash, &Change::Consent(*consent))
    }

    /// Drops the consent (after its install, or when the pending update
    /// goes away). Writes nothing when there is none.
    pub fn clear_consent(&mut self, flash: &mut F) -> Result<(), Error<F::Error>> {
        self.commit(flash, &Change::ConsentCleared)
    }

    /// Replaces the settings (writes nothing when they are unchanged).
    pub fn set_settings(
        &mut self,
        flash: &mut F,
        settings: Settings,
    ) -> Result<(), Error<F::Error>> {
        self.commit(flash, &Change::Settings(settings))
    }

    /// Stores the pairing verifier (at provisioning).
    pub fn set_verifier(
        &mut self,
        flash: &mut F,
        verifier: &Verifier,
    ) -> Result<(), Error<F::Error>> {
        self.commit(flash, &Change::Verifier(*verifier))
    }

    /// Drops the pairing verifier.
    pub fn clear_verifier(&mut self, flash: &mut F) -> Result<(), Error<F::Error>> {
        self.commit(flash, &Change::VerifierCleared)
    }

    /// Counts one more wrong setup code and returns the count. Call it
    /// before answering the peer, so a power cut cannot forget the guess.
    pub fn record_wrong_code(&mut self, flash: &mut F) -> Result<u32, Error<F::Error>> {
        let n = self.state.wrong_codes.saturating_add(1);
        self.commit(flash, &Change::WrongCodes(n))?;
        Ok(n)
    }

    /// Sets the wrong-code count back to zero (a right code, or a person
    /// at the lock opening the presence window).
    pub fn clear_wrong_codes(&mut self, flash: &mut F) -> Result<(), Error<F::Error>> {
        self.commit(flash, &Change::WrongCodes(0))
    }

    /// Factory reset: no owners, no consent, default settings, no
    /// verifier, no wrong codes. One record.
    pub fn factory_reset(&mut self, flash: &mut F) -> Result<(), Error<F::Error>> {
        self.commit(flash, &Change::Reset)
    }

    /// Writes the state as a snapshot into the next page now (one erase,
    /// one write per snapshot record), leaving the whole live page free
    /// for changes. Changes compact on their own when the live page is
    /// full; this is for a quiet moment (or a test).
    pub fn compact(&mut self, flash: &mut F) -> Result<(), Error<F::Error>> {
        let state = self.state.clone();
        self.compact_to(flash, state)
    }

    /// Makes `change` durable, then applies it in RAM: one record in the
    /// live page, or, when it is full (or there is none), a compaction
    /// with the state after the change.
    fn commit(&mut self, flash: &mut F, change: &Change) -> Result<(), Error<F::Error>> {
        let mut next = self.state.clone();
        next.apply(change);
        if next == self.state {
            return Ok(());
        }
        match self.live {
            Some(page) if self.next_slot < self.ring.slots_per_page() => {
                let slot = self.next_slot;
                // Whatever happens to this write, its slot and sequence
                // number are used from now on.
                self.next_slot += 1;
                self.write(flash, page, slot, change)?;
                self.state = next;
                Ok(())
            }
            _ => self.compact_to(flash, next),
        }
    }

    /// Erases the page after the live one and writes `state` there as a
    /// snapshot; it becomes live with its end record.
    fn compact_to(&mut self, flash: &mut F, state: State) -> Result<(), Error<F::Error>> {
        let target = self
            .ring
            .next_page(self.live.unwrap_or(self.ring.pages() - 1));
        self.ring.erase(flash, target)?;
        let mut slot = 0;
        while let Some(change) = state.snapshot(slot as usize) {
            self.write(flash, target, slot, &change)?;
            slot += 1;
        }
        self.write(flash, target, slot, &Change::End(slot as u8))?;
        self.live = Some(target);
        self.next_slot = slot + 1;
        self.state = state;
        Ok(())
    }

    /// Writes one record with the next sequence number.
    fn write(
        &mut self,
        flash: &mut F,
        page: u32,
        slot: u32,
        change: &Change,
    ) -> Result<(), Error<F::Error>> {
        let seq = self.next_seq.ok_or(Error::SequenceExhausted)?;
        self.next_seq = seq.checked_add(1);
        let mut record = [0u8; MAX_RECORD_LEN];
        let n = encode_record(seq, change, &mut record);
        self.ring.write(flash, page, slot, &record[..n])?;
        Ok(())
    }
}
