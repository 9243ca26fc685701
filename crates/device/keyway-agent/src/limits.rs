//! Fixed-capacity limiters with time as an input.
//!
//! Every limiter here takes `now_ms`, milliseconds of the lock's monotonic
//! clock since boot, as an argument, and never allocates: their sizes are
//! fixed at compile time (see the `ram` test for the figures).
//!
//! * [`TokenBucket`] / [`Rate`]: the building block. The bucket holds
//!   *credit* in milliseconds, up to `burst × interval_ms`; time adds
//!   credit one for one, a request costs `interval_ms`. Integer math only.
//! * [`PeerLimiter`]: a token bucket per peer in a table of `N` peers. A
//!   peer is a [`PeerId`], an opaque small id (a hashed address). **A
//!   flooding peer cannot evict other peers' state**: a peer not in the
//!   table takes a free entry, or else an entry whose bucket is full again
//!   *and* that has been idle for [`PeerLimiter::idle_ms`] (such an entry
//!   holds nothing a fresh one would not); when there is none, every such
//!   new peer shares one *overflow* bucket. A peer with an entry is judged
//!   by its own bucket alone, so a flood from another id, known or new,
//!   never makes its requests fail. (Many forged ids can still starve the
//!   overflow bucket, and with it peers that have no entry: the secure
//!   channel's sessions, not addresses, are what owners are known by.)
//! * [`ResetLimiter`]: at most one reset per [`RESET_INTERVAL_MS`], across
//!   reboots without writing flash: its bucket starts *empty* at boot, so
//!   the first reset after a boot waits a full interval too. It is for
//!   the resets an owner's session asks for. A reset the presence window
//!   authorizes (a person at the lock, stock MCUmgr tools) is not charged
//!   here: the dispatch allows one per press of the button and closes the
//!   window with it, so a reset loop needs a press per reset.
//! * [`CodeBackoff`]: the wrong-setup-code backoff. The first
//!   [`FREE_FAILURES`] wrong codes cost nothing; after failure `f ≥ 3`
//!   the next attempt waits `2^(f-3)` × [`BASE_DELAY_MS`] (1 s, 2 s, 4 s,
//!   … 64 s after the 9th); after [`MAX_FAILURES`] (10) wrong codes
//!   pairing is locked out until a person re-opens the presence window.
//!   So one press of the lock's button buys an attacker at most 10
//!   guesses in no less than 127 s; against a 27-bit setup code that is a
//!   chance of 10 in 134 million per press. The count lives in the store
//!   ([`crate::store::Store::record_wrong_code`]), so a power cut or reset
//!   does not clear it, and a boot restarts the current delay.

/// Wrong setup codes that cost no delay.
pub const FREE_FAILURES: u32 = 3;
/// The delay after the 3rd wrong code; it doubles with each one after.
pub const BASE_DELAY_MS: u64 = 1_000;
/// Wrong setup codes after which pairing is locked out until the presence
/// window re-opens.
pub const MAX_FAILURES: u32 = 10;
/// The least time between two resets, and from boot to the first.
pub const RESET_INTERVAL_MS: u64 = 60_000;

/// A rate: bursts of up to `burst` requests, one more every `interval_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    /// The most requests allowed at once (after a quiet time).
    pub burst: u32,
    /// The time that pays for one request.
    pub interval_ms: u32,
}

impl Rate {
    /// The credit a full bucket holds.
    fn capacity(&self) -> u64 {
        u64::from(self.burst) * u64::from(self.interval_ms)
    }
}

/// A token bucket, as credit in milliseconds. Its [`Rate`] is passed to
/// each call (it is the same for a whole table), so the bucket is 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenBucket {
    credit: u64,
    at_ms: u64,
}

/// What a limiter answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Go ahead (the request's cost is taken).
    Allowed,
    /// Refused: ask again in this many milliseconds at the earliest.
    Limited {
        /// The wait.
        retry_after_ms: u64,
    },
}

impl Verdict {
    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed)
    }
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn full(rate: Rate, now_ms: u64) -> Self {
        Self {
            credit: rate.capacity(),
            at_ms: now_ms,
        }
    }

    /// An empty bucket at `now_ms`.
    pub fn empty(now_ms: u64) -> Self {
        Self {
            credit: 0,
            at_ms: now_ms,
        }
    }

    /// Adds the credit earned since the last call (a clock that goes back
    /// earns nothing).
    fn refill(&mut self, rate: Rate, now_ms: u64) {
        let earned = now_ms.saturating_sub(self.at_ms);
        self.credit = self.credit.saturating_add(earned).min(rate.capacity());
        self.at_ms = self.at_ms.max(now_ms);
    }

    /// Whether the bucket is full at `now_ms` (it then holds nothing a
    /// fresh bucket would not). Changes nothing.
    pub fn is_full(&self, rate: Rate, now_ms: u64) -> bool {
        let mut b = *self;
        b.refill(rate, now_ms);
        b.credit >= rate.capacity()
    }

    /// Takes one request's cost at `now_ms` if the bucket holds it.
    // Not inlined: the limiter takes from three buckets (an entry's, a
    // fresh one's, the overflow's) and each inlined copy is u64 code.
    #[inline(never)]
    pub fn take(&mut self, rate: Rate, now_ms: u64) -> Verdict {
        self.refill(rate, now_ms);
        let cost = u64::from(rate.interval_ms);
        if self.credit >= cost {
            self.credit -= cost;
            Verdict::Allowed
        } else {
            Verdict::Limited {
                retry_after_ms: cost - self.credit,
            }
        }
    }
}

/// An opaque small peer id: a hash of the peer's address, as the
/// transport computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerId(pub u64);

/// One table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Entry {
    peer: PeerId,
    bucket: TokenBucket,
    last_ms: u64,
}

/// Per-peer token buckets for `N` peers, and one overflow bucket shared by
/// the peers that find no entry (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerLimiter<const N: usize> {
    rate: Rate,
    overflow_rate: Rate,
    idle_ms: u64,
    entries: [Option<Entry>; N],
    overflow: TokenBucket,
}

impl<const N: usize> PeerLimiter<N> {
    /// An empty table at `now_ms`: each peer gets `rate`, the peers
    /// without an entry share `overflow_rate`, and an entry may be given
    /// to another peer once its bucket is full and it has been idle for
    /// `idle_ms`.
    pub fn new(rate: Rate, overflow_rate: Rate, idle_ms: u64, now_ms: u64) -> Self {
        Self {
            rate,
            overflow_rate,
            idle_ms,
            entries: [None; N],
            overflow: TokenBucket::full(overflow_rate, now_ms),
        }
    }

    /// The idle time after which a full entry may go to another peer.
    pub fn idle_ms(&self) -> u64 {
        self.idle_ms
    }

    /// Whether `peer` holds a table entry.
    pub fn has_entry(&self, peer: PeerId) -> bool {
        self.entries.iter().flatten().any(|e| e.peer == peer)
    }

    /// Charges one request from `peer` at `now_ms`: to its own bucket if
    /// it holds or can take an entry, else to the overflow bucket.
    pub fn check(&mut self, peer: PeerId, now_ms: u64) -> Verdict {
        let (rate, idle_ms) = (self.rate, self.idle_ms);
        if let Some(e) = self.entries.iter_mut().flatten().find(|e| e.peer == peer) {
            e.last_ms = e.last_ms.max(now_ms);
            return e.bucket.take(rate, now_ms);
        }
        // A free entry, or else the longest-idle entry that holds nothing.
        let free = self.entries.iter().position(Option::is_none);
        let reclaim = || {
            self.entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| e.map(|e| (i, e)))
                .filter(|(_, e)| {
                    now_ms.saturating_sub(e.last_ms) >= idle_ms && e.bucket.is_full(rate, now_ms)
                })
                .min_by_key(|(_, e)| e.last_ms)
                .map(|(i, _)| i)
        };
        match free.or_else(reclaim) {
            Some(i) => {
                let mut bucket = TokenBucket::full(rate, now_ms);
                let verdict = bucket.take(rate, now_ms);
                self.entries[i] = Some(Entry {
                    peer,
                    bucket,
                    last_ms: now_ms,
                });
                verdict
            }
            None => self.overflow.take(self.overflow_rate, now_ms),
        }
    }
}

/// At most one reset per [`RESET_INTERVAL_MS`], the first one a full
/// interval after boot. Make one at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResetLimiter {
    bucket: TokenBucket,
}

impl ResetLimiter {
    const RATE: Rate = Rate {
        burst: 1,
        interval_ms: RESET_INTERVAL_MS as u32,
    };

    /// The limiter at boot (`now_ms`, usually 0): empty, so a reset loop
    /// cannot run faster than one reset per interval.
    pub fn at_boot(now_ms: u64) -> Self {
        Self {
            bucket: TokenBucket::empty(now_ms),
        }
    }

    /// Charges one reset request at `now_ms`.
    pub fn check(&mut self, now_ms: u64) -> Verdict {
        self.bucket.take(Self::RATE, now_ms)
    }
}

/// What [`CodeBackoff::check`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodeVerdict {
    /// A setup code may be tried now.
    Allowed,
    /// Wait this long before the next try.
    Wait {
        /// The wait in milliseconds.
        ms: u64,
    },
    /// [`MAX_FAILURES`] wrong codes: no more tries until a person re-opens
    /// the presence window.
    LockedOut,
}

/// The wrong-setup-code backoff (numbers in the module documentation).
///
/// The count is persistent: the caller records each wrong code in the
/// store ([`crate::store::Store::record_wrong_code`]) *before* answering
/// the peer, then calls [`CodeBackoff::failed`]; at boot it makes the
/// backoff from the stored count ([`CodeBackoff::at_boot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CodeBackoff {
    failures: u32,
    last_failure_ms: u64,
}

impl CodeBackoff {
    /// The backoff at boot with the stored count: the delay for that count
    /// runs from `now_ms`.
    pub fn at_boot(stored_failures: u32, now_ms: u64) -> Self {
        Self {
            failures: stored_failures,
            last_failure_ms: now_ms,
        }
    }

    /// Wrong codes counted.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The wait after `failures` wrong codes (`None`: locked out).
    pub fn delay_after(failures: u32) -> Option<u64> {
        if failures >= MAX_FAILURES {
            None
        } else if failures < FREE_FAILURES {
            Some(0)
        } else {
            Some(BASE_DELAY_MS << (failures - FREE_FAILURES))
        }
    }

    /// Whether a setup code may be tried at `now_ms`.
    pub fn check(&self, now_ms: u64) -> CodeVerdict {
        match Self::delay_after(self.failures) {
            None => CodeVerdict::LockedOut,
            Some(delay) => {
                let since = now_ms.saturating_sub(self.last_failure_ms);
                if since >= delay {
                    CodeVerdict::Allowed
                } else {
                    CodeVerdict::Wait { ms: delay - since }
                }
            }
        }
    }

    /// One more wrong code at `now_ms`; returns the count.
    pub fn failed(&mut self, now_ms: u64) -> u32 {
        self.failures = self.failures.saturating_add(1);
        self.last_failure_ms = now_ms;
        self.failures
    }

    /// A right code: the count starts again (clear the store's too).
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// A person opened the presence window: the lockout ends and the count
    /// starts again (clear the store's too).
    pub fn window_opened(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 3,
        interval_ms: 100,
    };

    #[test]
    fn bucket_bursts_then_refills_one_per_interval() {
        let mut b = TokenBucket::full(RATE, 1000);
        for _ in 0..3 {
            assert_eq!(b.take(RATE, 1000), Verdict::Allowed);
        }
        assert_eq!(
            b.take(RATE, 1000),
            Verdict::Limited {
                retry_after_ms: 100
            }
        );
        assert_eq!(b.take(RATE, 1060), Verdict::Limited { retry_after_ms: 40 });
        assert_eq!(b.take(RATE, 1100), Verdict::Allowed);
        // A long quiet time fills it to the burst, no more.
        for _ in 0..3 {
            assert!(b.take(RATE, 1_000_000).is_allowed());
        }
        assert!(!b.take(RATE, 1_000_000).is_allowed());
        // A clock that goes back earns nothing and does not panic.
        assert!(!b.take(RATE, 5).is_allowed());
    }

    #[test]
    fn a_flooding_new_id_cannot_evict_an_active_peer() {
        let over = Rate {
            burst: 1,
            interval_ms: 1000,
        };
        let mut l = PeerLimiter::<2>::new(RATE, over, 10_000, 0);
        assert!(l.check(PeerId(1), 0).is_allowed());
        assert!(l.check(PeerId(2), 0).is_allowed());
        // Peer 3 finds no entry (both in use and not idle): overflow.
        assert!(l.check(PeerId(3), 1).is_allowed());
        for t in 2..500 {
            assert!(!l.check(PeerId(3), t).is_allowed());
            assert!(
                !l.check(PeerId(1000 + t), t).is_allowed(),
                "new ids share it"
            );
        }
        assert!(l.has_entry(PeerId(1)) && l.has_entry(PeerId(2)));
        assert!(!l.has_entry(PeerId(3)));
        assert!(l.check(PeerId(1), 500).is_allowed());
    }

    #[test]
    fn an_idle_full_entry_goes_to_a_new_peer() {
        let mut l = PeerLimiter::<1>::new(RATE, RATE, 10_000, 0);
        assert!(l.check(PeerId(1), 0).is_allowed());
        // Not idle long enough: peer 2 goes to the overflow bucket.
        assert!(l.check(PeerId(2), 9_999).is_allowed());
        assert!(l.has_entry(PeerId(1)));
        // Idle and full: it is taken over.
        assert!(l.check(PeerId(2), 10_000).is_allowed());
        assert!(l.has_entry(PeerId(2)) && !l.has_entry(PeerId(1)));
    }

    #[test]
    fn a_drained_entry_is_never_taken_over() {
        let mut l = PeerLimiter::<1>::new(RATE, RATE, 0, 0);
        for _ in 0..3 {
            assert!(l.check(PeerId(1), 0).is_allowed());
        }
        assert!(!l.check(PeerId(1), 0).is_allowed());
        // Peer 1's bucket is empty: peer 2 cannot take the entry, which
        // would give peer 1 a fresh burst on its return.
        assert!(l.check(PeerId(2), 1).is_allowed());
        assert!(l.has_entry(PeerId(1)));
        assert!(!l.check(PeerId(1), 1).is_allowed());
    }

    #[test]
    fn resets_wait_an_interval_from_boot_and_between() {
        let mut r = ResetLimiter::at_boot(0);
        assert_eq!(
            r.check(0),
            Verdict::Limited {
                retry_after_ms: RESET_INTERVAL_MS
            }
        );
        assert!(!r.check(RESET_INTERVAL_MS - 1).is_allowed());
        assert!(r.check(RESET_INTERVAL_MS).is_allowed());
        assert!(!r.check(RESET_INTERVAL_MS + 1).is_allowed());
        let mut r = ResetLimiter::at_boot(0);
        // However long the lock runs, one reset at a time.
        assert!(r.check(100 * RESET_INTERVAL_MS).is_allowed());
        assert!(!r.check(100 * RESET_INTERVAL_MS).is_allowed());
    }

    #[test]
    fn setup_code_backoff_numbers() {
        let delays: [Option<u64>; 11] =
            core::array::from_fn(|f| CodeBackoff::delay_after(f as u32));
        assert_eq!(
            delays,
            [
                Some(0),
                Some(0),
                Some(0),
                Some(1_000),
                Some(2_000),
                Some(4_000),
                Some(8_000),
                Some(16_000),
                Some(32_000),
                Some(64_000),
                None
            ]
        );
        // The fastest attacker: 10 guesses, then locked out.
        let mut b = CodeBackoff::at_boot(0, 0);
        let mut now = 0;
        let mut guesses = 0;
        loop {
            match b.check(now) {
                CodeVerdict::Allowed => {
                    guesses += 1;
                    b.failed(now);
                }
                CodeVerdict::Wait { ms } => now += ms,
                CodeVerdict::LockedOut => break,
            }
        }
        assert_eq!((guesses, now), (MAX_FAILURES, 127_000));
        assert_eq!(b.check(u64::MAX), CodeVerdict::LockedOut);
        b.window_opened();
        assert_eq!(b.check(now), CodeVerdict::Allowed);
    }

    #[test]
    fn a_boot_restarts_the_delay_of_the_stored_count() {
        let b = CodeBackoff::at_boot(5, 0);
        assert_eq!(b.check(0), CodeVerdict::Wait { ms: 4_000 });
        assert_eq!(b.check(4_000), CodeVerdict::Allowed);
        assert_eq!(
            CodeBackoff::at_boot(10, 0).check(1 << 40),
            CodeVerdict::LockedOut
        );
        let mut b = CodeBackoff::at_boot(4, 0);
        b.succeeded();
        assert_eq!(b.check(0), CodeVerdict::Allowed);
    }
}
