//! The lock's fixed-capacity table of handshakes and sessions.
//!
//! `SessionTable<N>` holds up to `N` (at most 255) slots, each free, a
//! handshake between `msg2` and `msg3`, or an established session. A
//! session id is `generation << 8 | slot`: the slot finds it in O(1), the
//! generation (drawn at random on every use of the slot, never the one it
//! had) makes an old id miss, also after a reboot empties the table.
//!
//! **Floods.** A new handshake takes a free slot, or else a slot whose
//! handshake is older than `handshake_timeout_ms` or whose session has been
//! idle longer than `idle_limit_ms`. It never takes a fresh handshake or a
//! live session: when none is free or expired the answer is
//! [`Error::Busy`], before any cryptography is done. An attacker who
//! floods `msg1` can at worst fill the table with handshakes that expire
//! after `handshake_timeout_ms`; sessions already open are untouched, and
//! the agent's per-peer limits (which know the radio peers) keep one peer
//! from taking every slot.

use crate::ed25519::SigningKey;
use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::Error;
use crate::handshake::{self, KeyId, LockPending, MSG2_LEN};
use crate::record::{self, MSG4_LEN, Opened, ResponseStatus};

/// A session id as it travels (u32, little-endian).
pub type SessionId = u32;

/// The table's time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableConfig {
    /// A handshake not finished by then may be evicted (ms).
    pub handshake_timeout_ms: u64,
    /// A session idle that long expires (ms).
    pub idle_limit_ms: u64,
    /// How far behind the lock's clock a request's estimate may be (ms).
    pub freshness_ms: u64,
    /// How far ahead of the lock's clock a request's estimate may be (ms).
    pub future_slack_ms: u64,
}

impl Default for TableConfig {
    /// 10 s to finish a handshake, 120 s idle, 5 s freshness, 1 s slack.
    fn default() -> Self {
        Self {
            handshake_timeout_ms: 10_000,
            idle_limit_ms: 120_000,
            freshness_ms: 5_000,
            future_slack_ms: 1_000,
        }
    }
}

/// The most live sessions one owner holds: a new one closes that owner's
/// least recently used session beyond this, so a client that opens a
/// session per command (the CLI) cannot fill the table by itself, while
/// two clients of one owner at once (an upload and an unlock) both keep
/// theirs.
pub const MAX_SESSIONS_PER_OWNER: usize = 2;

struct Established {
    owner: KeyId,
    c2l: [u8; 32],
    l2c: [u8; 32],
    /// Highest request counter accepted.
    last: u64,
    /// The counter whose response is still to be sealed.
    pending: Option<u64>,
    last_active_ms: u64,
}

impl Drop for Established {
    fn drop(&mut self) {
        self.c2l.zeroize();
        self.l2c.zeroize();
    }
}

#[allow(clippy::large_enum_variant)]
enum State {
    Free,
    Handshake {
        pending: LockPending,
        started_ms: u64,
    },
    Session(Established),
}

struct Slot {
    generation: u32,
    state: State,
}

/// The lock's handshakes and sessions (see the module doc).
pub struct SessionTable<const N: usize> {
    config: TableConfig,
    slots: [Slot; N],
}

impl<const N: usize> SessionTable<N> {
    /// An empty table. `N` must be 1..=255 (checked at compile time).
    pub fn new(config: TableConfig) -> Self {
        const { assert!(N >= 1 && N <= 255, "SessionTable holds 1 to 255 slots") };
        Self {
            config,
            slots: core::array::from_fn(|_| Slot {
                generation: 0,
                state: State::Free,
            }),
        }
    }

    /// The table's limits.
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    fn expired(&self, slot: &Slot, now_ms: u64) -> bool {
        match &slot.state {
            State::Free => true,
            State::Handshake { started_ms, .. } => {
                now_ms.saturating_sub(*started_ms) > self.config.handshake_timeout_ms
            }
            State::Session(s) => {
                now_ms.saturating_sub(s.last_active_ms) > self.config.idle_limit_ms
            }
        }
    }

    /// The slot index for `sid`, if that id is current.
    fn index(&self, sid: SessionId) -> Option<usize> {
        let i = (sid & 0xff) as usize;
        let slot = self.slots.get(i)?;
        (slot.generation == sid >> 8 && !matches!(slot.state, State::Free)).then_some(i)
    }

    /// Number of slots holding an established, unexpired session.
    pub fn sessions(&self, now_ms: u64) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, State::Session(_)) && !self.expired(s, now_ms))
            .count()
    }

    /// Number of slots holding an unexpired handshake.
    pub fn handshakes(&self, now_ms: u64) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, State::Handshake { .. }) && !self.expired(s, now_ms))
            .count()
    }

    /// Whether `sid` names a live session.
    pub fn is_session(&self, sid: SessionId, now_ms: u64) -> bool {
        self.index(sid).is_some_and(|i| {
            matches!(self.slots[i].state, State::Session(_))
                && !self.expired(&self.slots[i], now_ms)
        })
    }

    /// Takes `msg1`: claims a slot (free or expired, else [`Error::Busy`]
    /// before any cryptography), writes `msg2` into `out`.
    pub fn handshake1<R: CryptoRng + ?Sized>(
        &mut self,
        now_ms: u64,
        rng: &mut R,
        device_key: &SigningKey,
        msg1: &[u8],
        out: &mut [u8; MSG2_LEN],
    ) -> Result<SessionId, Error> {
        handshake::check_msg1(msg1)?;
        let i = (0..N)
            .find(|&i| matches!(self.slots[i].state, State::Free))
            .or_else(|| (0..N).find(|&i| self.expired(&self.slots[i], now_ms)))
            .ok_or(Error::Busy)?;
        let slot = &mut self.slots[i];
        slot.state = State::Free;
        // A random generation, not a counter from 0: after a reboot the
        // table starts empty, and a counter would hand the first new
        // session the id an old client still holds (its record would then
        // be refused as forged instead of missing as unknown).
        let mut generation = rng.next_u32() & 0x00ff_ffff;
        if generation == slot.generation {
            generation = (generation + 1) & 0x00ff_ffff;
        }
        slot.generation = generation;
        let sid = (slot.generation << 8) | i as u32;
        let pending = handshake::lock_msg1(rng, device_key, sid, msg1, out)?;
        slot.state = State::Handshake {
            pending,
            started_ms: now_ms,
        };
        Ok(sid)
    }

    /// Takes `msg3`: authenticates the owner through `lookup` (key id to
    /// public key; the table holds no owners), establishes the session and
    /// writes `msg4` (the response to counter 0, with the lock's clock)
    /// into `out`. Any failure frees the slot; an unknown key and a wrong
    /// signature are both [`Error::Refused`].
    pub fn handshake3(
        &mut self,
        now_ms: u64,
        msg3: &[u8],
        mut lookup: impl FnMut(&KeyId) -> Option<[u8; 32]>,
        out: &mut [u8; MSG4_LEN],
    ) -> Result<(SessionId, KeyId), Error> {
        let sid = record::session_id_of(msg3)?;
        let i = self.index(sid).ok_or(Error::UnknownSession)?;
        if self.expired(&self.slots[i], now_ms) {
            self.slots[i].state = State::Free;
            return Err(Error::UnknownSession);
        }
        let State::Handshake { pending, .. } = &self.slots[i].state else {
            return Err(Error::UnexpectedMessage);
        };
        let result = handshake::lock_msg3(pending, msg3, &mut lookup);
        let (owner, c2l, l2c) = match result {
            Ok(v) => v,
            Err(e) => {
                self.slots[i].state = State::Free;
                return Err(e);
            }
        };
        record::lock_seal_response(&l2c, sid, 0, ResponseStatus::Ok, now_ms, &[], out)?;
        // The owner is proven: its sessions beyond the newest
        // `MAX_SESSIONS_PER_OWNER - 1` give way, least recently used first.
        self.trim_owner(&owner, i);
        self.slots[i].state = State::Session(Established {
            owner,
            c2l,
            l2c,
            last: 0,
            pending: None,
            last_active_ms: now_ms,
        });
        Ok((sid, owner))
    }

    /// Opens a request in place (see [`crate::record`]). On
    /// success the caller executes the payload (`buf[opened.payload]`,
    /// authorized as `opened.owner`) and answers with
    /// [`seal_response`](Self::seal_response). On [`Error::Stale`] the
    /// caller answers `seal_response(.., ResponseStatus::Stale, &[])` so
    /// the client re-syncs. Replays, forgeries and unknown sessions get no
    /// answer from the channel.
    pub fn open_request(&mut self, now_ms: u64, buf: &mut [u8]) -> Result<Opened, Error> {
        let sid = record::session_id_of(buf)?;
        let i = self.index(sid).ok_or(Error::UnknownSession)?;
        if self.expired(&self.slots[i], now_ms) {
            self.slots[i].state = State::Free;
            return Err(Error::UnknownSession);
        }
        let freshness = self.config.freshness_ms;
        let slack = self.config.future_slack_ms;
        let State::Session(s) = &mut self.slots[i].state else {
            return Err(Error::UnexpectedMessage);
        };
        let (counter, estimate, payload) = record::lock_open_request(&s.c2l, sid, s.last, buf)?;
        s.last = counter;
        s.pending = Some(counter);
        s.last_active_ms = now_ms;
        if now_ms > estimate.saturating_add(freshness) || estimate > now_ms.saturating_add(slack) {
            return Err(Error::Stale {
                echoed_ms: estimate,
                now_ms,
            });
        }
        Ok(Opened {
            session: sid,
            owner: s.owner,
            counter,
            payload,
        })
    }

    /// Seals the answer to request `counter` of session `sid` (the one
    /// just opened) into `out`; returns its length. Each counter is
    /// answered at most once ([`Error::UnexpectedMessage`] otherwise), so
    /// no response nonce repeats.
    pub fn seal_response(
        &mut self,
        now_ms: u64,
        sid: SessionId,
        counter: u64,
        status: ResponseStatus,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let i = self.index(sid).ok_or(Error::UnknownSession)?;
        let State::Session(s) = &mut self.slots[i].state else {
            return Err(Error::UnknownSession);
        };
        if s.pending != Some(counter) {
            return Err(Error::UnexpectedMessage);
        }
        let len = record::lock_seal_response(&s.l2c, sid, counter, status, now_ms, payload, out)?;
        s.pending = None;
        Ok(len)
    }

    /// Closes a session or abandons a handshake (unpairing its owner,
    /// for one).
    pub fn close(&mut self, sid: SessionId) {
        if let Some(i) = self.index(sid) {
            self.slots[i].state = State::Free;
        }
    }

    /// Closes `owner`'s least recently used session (other than slot
    /// `keep`) if it holds [`MAX_SESSIONS_PER_OWNER`] others: one pass,
    /// as every new session keeps the count within the limit.
    fn trim_owner(&mut self, owner: &KeyId, keep: usize) {
        let mut count = 0;
        let mut oldest: Option<(usize, u64)> = None;
        for (j, slot) in self.slots.iter().enumerate() {
            if let State::Session(s) = &slot.state
                && j != keep
                && &s.owner == owner
            {
                count += 1;
                if oldest.is_none_or(|(_, t)| s.last_active_ms < t) {
                    oldest = Some((j, s.last_active_ms));
                }
            }
        }
        if let Some((j, _)) = oldest
            && count >= MAX_SESSIONS_PER_OWNER
        {
            self.slots[j].state = State::Free;
        }
    }

    /// Closes every session of `owner` (after it was unpaired).
    pub fn close_owner(&mut self, owner: &KeyId) {
        for slot in &mut self.slots {
            if matches!(&slot.state, State::Session(s) if &s.owner == owner) {
                slot.state = State::Free;
            }
        }
    }
}
