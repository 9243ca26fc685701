//! The keypad's PIN lockout, the one implementation the lock firmware
//! (`lock-core`'s `Latch`) and the simulated lock (`keyway-lock`'s
//! `Mechanism`) share: wrong PINs in a row are counted and, from
//! [`Policy::after`] on, lock the keypad out; while it is locked out,
//! entries are refused and not counted. A right PIN resets the count.
//!
//! Two escalations, chosen by [`Policy::doubles`]:
//! * doubling (the firmware): the count survives the end of a lockout, so
//!   every further wrong PIN locks out again, for [`Policy::first_ms`]
//!   doubled once per wrong PIN past the threshold (at most
//!   [`MAX_DOUBLINGS`] times);
//! * repeating (the simulated lock's configuration): the end of a lockout
//!   starts the count again and every lockout lasts [`Policy::first_ms`].
//!
//! Pure logic on `now_ms` (a monotonic clock in milliseconds); what to log
//! is the caller's. Sums saturate at `u64::MAX`, the count at `u16::MAX`.

/// The most times a doubling lockout doubles (2^10 times the first).
pub const MAX_DOUBLINGS: u16 = 10;

/// What a keypad entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keypad {
    /// The PIN was right: the bolt is withdrawn.
    Unlocked,
    /// The PIN was wrong; `consecutive` wrong entries so far.
    Wrong {
        /// Wrong entries in a row.
        consecutive: u16,
        /// The keypad is now locked out for this long (ms).
        lockout_ms: Option<u64>,
    },
    /// The keypad is locked out: the entry was ignored.
    LockedOut {
        /// Milliseconds left.
        remaining_ms: u64,
    },
}

/// When the keypad locks out, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Wrong PINs in a row that lock the keypad out.
    pub after: u16,
    /// The (first) lockout in milliseconds.
    pub first_ms: u64,
    /// `true`: the count survives a lockout and each further wrong PIN
    /// doubles the wait; `false`: a lockout's end starts the count again.
    pub doubles: bool,
}

impl Policy {
    /// The lockout `failures` wrong PINs in a row start, if any.
    fn lockout_ms(&self, failures: u16) -> Option<u64> {
        (failures >= self.after).then(|| {
            if self.doubles {
                let doublings = (failures - self.after).min(MAX_DOUBLINGS);
                self.first_ms.saturating_mul(1 << doublings)
            } else {
                self.first_ms
            }
        })
    }
}

/// The keypad's state: wrong PINs in a row and the end of the lockout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lockout {
    failures: u16,
    /// Locked out while `now_ms` is below this (0: never locked out).
    until: u64,
}

impl Lockout {
    /// Wrong PINs in a row.
    pub fn failures(&self) -> u16 {
        self.failures
    }

    /// Milliseconds of lockout left at `now_ms` (0: not locked out).
    pub fn remaining_ms(&self, now_ms: u64) -> u64 {
        self.until.saturating_sub(now_ms)
    }

    /// Runs the clock to `now_ms`: under a repeating policy, the end of a
    /// lockout starts the count again.
    pub fn poll(&mut self, policy: &Policy, now_ms: u64) {
        if !policy.doubles && self.failures >= policy.after && self.until <= now_ms {
            *self = Lockout::default();
        }
    }

    /// A PIN entered at `now_ms`, `right` or not (compared by the caller,
    /// in constant time: [`pin_matches`]).
    pub fn enter(&mut self, policy: &Policy, right: bool, now_ms: u64) -> Keypad {
        self.poll(policy, now_ms);
        let remaining_ms = self.remaining_ms(now_ms);
        if remaining_ms > 0 {
            return Keypad::LockedOut { remaining_ms };
        }
        if right {
            self.failures = 0;
            return Keypad::Unlocked;
        }
        self.failures = self.failures.saturating_add(1);
        let lockout_ms = policy.lockout_ms(self.failures);
        if let Some(ms) = lockout_ms {
            self.until = now_ms.saturating_add(ms);
        }
        Keypad::Wrong {
            consecutive: self.failures,
            lockout_ms,
        }
    }
}

/// Whether `typed` is `pin`, compared without an early exit on the first
/// differing byte (nor on a length mismatch).
pub fn pin_matches(typed: &str, pin: &str) -> bool {
    let (a, b) = (typed.as_bytes(), pin.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOUBLING: Policy = Policy {
        after: 3,
        first_ms: 1000,
        doubles: true,
    };
    const REPEATING: Policy = Policy {
        doubles: false,
        ..DOUBLING
    };

    fn wrong(consecutive: u16, lockout_ms: Option<u64>) -> Keypad {
        Keypad::Wrong {
            consecutive,
            lockout_ms,
        }
    }

    /// Three wrong PINs at 0, 1 and 2 ms: locked out until 1002.
    fn locked_out(policy: &Policy) -> Lockout {
        let mut l = Lockout::default();
        for now in 0..3 {
            l.enter(policy, false, now);
        }
        l
    }

    #[test]
    fn locks_out_after_n_wrong_pins_under_either_policy() {
        for policy in [DOUBLING, REPEATING] {
            let mut l = Lockout::default();
            assert_eq!(l.enter(&policy, false, 0), wrong(1, None));
            assert_eq!(l.enter(&policy, false, 1), wrong(2, None));
            assert_eq!(l.enter(&policy, false, 2), wrong(3, Some(1000)));
            // Refused and not counted, even the right PIN.
            assert_eq!(
                l.enter(&policy, true, 1001),
                Keypad::LockedOut { remaining_ms: 1 }
            );
            assert_eq!((l.failures(), l.remaining_ms(1001)), (3, 1));
            assert_eq!(l.remaining_ms(1002), 0);
        }
    }

    #[test]
    fn after_a_lockout_doubling_keeps_the_count_and_repeating_starts_again() {
        // The policy, the count once the lockout is over, and three wrong
        // PINs then, at 5 s, 7 s and 11 s.
        for (policy, kept, then) in [
            (
                DOUBLING,
                3,
                [
                    wrong(4, Some(2000)),
                    wrong(5, Some(4000)),
                    wrong(6, Some(8000)),
                ],
            ),
            (
                REPEATING,
                0,
                [wrong(1, None), wrong(2, None), wrong(3, Some(1000))],
            ),
        ] {
            let mut l = locked_out(&policy);
            l.poll(&policy, 1001);
            assert_eq!(l.failures(), 3);
            l.poll(&policy, 1002);
            assert_eq!(l.failures(), kept);
            for (now, keypad) in [5_000, 7_000, 11_000].into_iter().zip(then) {
                assert_eq!(l.enter(&policy, false, now), keypad, "{policy:?} at {now}");
            }
        }
    }

    #[test]
    fn a_right_pin_resets_the_count() {
        for policy in [DOUBLING, REPEATING] {
            let mut l = Lockout::default();
            l.enter(&policy, false, 0);
            l.enter(&policy, false, 1);
            assert_eq!(l.enter(&policy, true, 2), Keypad::Unlocked);
            assert_eq!(l.failures(), 0);
            assert_eq!(l.enter(&policy, false, 3), wrong(1, None));
        }
    }

    #[test]
    fn large_counts_and_times_saturate() {
        // The count stops at u16::MAX; the wait at 2^10 times the first.
        let mut l = Lockout {
            failures: u16::MAX - 1,
            until: 0,
        };
        assert_eq!(
            l.enter(&DOUBLING, false, 0),
            wrong(u16::MAX, Some(1000 << MAX_DOUBLINGS))
        );
        assert_eq!(
            l.enter(&DOUBLING, false, 1 << 30),
            wrong(u16::MAX, Some(1000 << MAX_DOUBLINGS))
        );
        // A huge lockout or a late clock ends at u64::MAX.
        let huge = Policy {
            first_ms: u64::MAX / 2,
            ..DOUBLING
        };
        let mut l = Lockout {
            failures: 10,
            until: 0,
        };
        assert_eq!(l.enter(&huge, false, 7), wrong(11, Some(u64::MAX)));
        assert_eq!(l.remaining_ms(7), u64::MAX - 7);
        let mut l = Lockout::default();
        let late = u64::MAX - 10;
        for _ in 0..3 {
            l.enter(&REPEATING, false, late);
        }
        assert_eq!(l.remaining_ms(late), 10);
    }

    #[test]
    fn pins_match_only_whole() {
        assert!(pin_matches("1234", "1234"));
        for typed in ["123", "12345", "", "1234\0", "1235"] {
            assert!(!pin_matches(typed, "1234"), "{typed:?}");
        }
    }
}
