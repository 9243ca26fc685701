//! The keypad and the bolt: a PIN withdraws the bolt, wrong PINs lock the
//! keypad out for a while that doubles, the owner's commands and the
//! mechanical key move the bolt; the door, tamper and battery readings.
//! Pure logic on `now_ms`: the application feeds it the control channel's
//! lines (the hardware here) and writes what it returns to the audit log.

use keyway_agent::agent::Sensors;
use keyway_agent::keypad::{Lockout, Policy, pin_matches};
use keyway_audit::{Event as Audit, LockMethod};
use keyway_smp::keyway_group::{Bolt, Door};

/// Wrong PINs in a row before the keypad locks out.
pub const LOCKOUT_AFTER: u16 = 5;
/// The first lockout (ms); it doubles with each further wrong PIN.
pub const LOCKOUT_MS: u64 = 30_000;
/// The PIN until an owner sets another (the simulator's default).
pub const DEFAULT_PIN: &str = "1234";
/// The battery reading below which the lock logs `BatteryLow`.
pub const BATTERY_LOW_MV: u16 = 4_400;
/// The keypad's lockout: doubling (the count survives a lockout's end).
const KEYPAD: Policy = Policy {
    after: LOCKOUT_AFTER,
    first_ms: LOCKOUT_MS,
    doubles: true,
};

/// What a PIN did (keyway-agent's, shared with the simulated lock).
pub use keyway_agent::keypad::Keypad;

/// The bolt, the sensors and the keypad's state (RAM; the audit log keeps
/// the history).
#[derive(Clone, Debug)]
pub struct Latch {
    /// The bolt.
    pub bolt: Bolt,
    /// The door sensor.
    pub door: Door,
    /// The last battery reading (mV).
    pub battery_mv: u16,
    /// The tamper switch.
    pub tamper: bool,
    keypad: Lockout,
}

impl Default for Latch {
    fn default() -> Self {
        Latch {
            bolt: Bolt::Locked,
            door: Door::Closed,
            battery_mv: 6_000,
            tamper: false,
            keypad: Lockout::default(),
        }
    }
}

impl Latch {
    /// The sensors as the agent reports them.
    pub fn sensors(&self, now_ms: u64) -> Sensors {
        Sensors {
            bolt: self.bolt,
            door: self.door,
            battery_mv: u64::from(self.battery_mv),
            battery_mwh: u64::from(self.battery_mv) * 3 / 2,
            tamper: self.tamper,
            lockout_s: self.keypad.remaining_ms(now_ms).div_ceil(1000),
        }
    }

    /// Wrong PINs in a row.
    pub fn failures(&self) -> u16 {
        self.keypad.failures()
    }

    /// A PIN on the keypad (compared in constant time with `pin`); the
    /// event to log, if any.
    pub fn keypad(&mut self, typed: &str, pin: &str, now_ms: u64) -> (Keypad, Option<Audit>) {
        let keypad = self.keypad.enter(&KEYPAD, pin_matches(typed, pin), now_ms);
        let audit = match keypad {
            Keypad::Unlocked => {
                self.bolt = Bolt::Unlocked;
                Audit::Unlocked {
                    method: LockMethod::Keypad,
                }
            }
            Keypad::Wrong { consecutive, .. } => Audit::PinFailed { consecutive },
            Keypad::LockedOut { .. } => return (keypad, None),
        };
        (keypad, Some(audit))
    }

    /// Drives the bolt; the event to log if it moved.
    pub fn drive(&mut self, to: Bolt, method: LockMethod) -> Option<Audit> {
        if self.bolt == to {
            return None;
        }
        self.bolt = to;
        Some(match to {
            Bolt::Locked => Audit::Locked { method },
            _ => Audit::Unlocked { method },
        })
    }

    /// The tamper switch; the event to log if it changed.
    pub fn set_tamper(&mut self, on: bool) -> Option<Audit> {
        if self.tamper == on {
            return None;
        }
        self.tamper = on;
        Some(if on {
            Audit::TamperDetected { sensor: 0 }
        } else {
            Audit::TamperCleared { sensor: 0 }
        })
    }

    /// A battery reading; `BatteryLow` when it crosses below the level.
    pub fn set_battery(&mut self, mv: u16) -> Option<Audit> {
        let was_low = self.battery_mv < BATTERY_LOW_MV;
        self.battery_mv = mv;
        (mv < BATTERY_LOW_MV && !was_low).then_some(Audit::BatteryLow { millivolts: mv })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_wrong_pins_lock_the_keypad_out_and_the_wait_doubles() {
        let mut l = Latch::default();
        for i in 1..LOCKOUT_AFTER {
            let (k, e) = l.keypad("0000", DEFAULT_PIN, 0);
            assert_eq!(
                k,
                Keypad::Wrong {
                    consecutive: i,
                    lockout_ms: None
                }
            );
            assert_eq!(e, Some(Audit::PinFailed { consecutive: i }));
        }
        let (k, _) = l.keypad("0000", DEFAULT_PIN, 0);
        assert_eq!(
            k,
            Keypad::Wrong {
                consecutive: LOCKOUT_AFTER,
                lockout_ms: Some(LOCKOUT_MS)
            }
        );
        // Locked out: even the right PIN is not tried, nothing logged.
        let (k, e) = l.keypad(DEFAULT_PIN, DEFAULT_PIN, LOCKOUT_MS - 1);
        assert_eq!(k, Keypad::LockedOut { remaining_ms: 1 });
        assert_eq!(e, None);
        assert_eq!(l.bolt, Bolt::Locked);
        let (k, _) = l.keypad("0000", DEFAULT_PIN, LOCKOUT_MS);
        assert_eq!(
            k,
            Keypad::Wrong {
                consecutive: LOCKOUT_AFTER + 1,
                lockout_ms: Some(2 * LOCKOUT_MS)
            }
        );
        let (k, e) = l.keypad(DEFAULT_PIN, DEFAULT_PIN, 3 * LOCKOUT_MS);
        assert_eq!(k, Keypad::Unlocked);
        assert_eq!(
            e,
            Some(Audit::Unlocked {
                method: LockMethod::Keypad
            })
        );
        assert_eq!((l.bolt, l.failures()), (Bolt::Unlocked, 0));
    }

    #[test]
    fn a_pin_that_is_a_prefix_or_longer_is_wrong() {
        let mut l = Latch::default();
        for typed in ["123", "12345", "", "1234\0"] {
            assert!(matches!(
                l.keypad(typed, DEFAULT_PIN, 0).0,
                Keypad::Wrong { .. }
            ));
            l = Latch::default();
        }
    }

    #[test]
    fn sensors_log_changes_only() {
        let mut l = Latch::default();
        assert_eq!(l.set_tamper(false), None);
        assert_eq!(
            l.set_tamper(true),
            Some(Audit::TamperDetected { sensor: 0 })
        );
        assert_eq!(l.set_tamper(true), None);
        assert_eq!(l.set_battery(5_000), None);
        assert_eq!(
            l.set_battery(4_000),
            Some(Audit::BatteryLow { millivolts: 4_000 })
        );
        assert_eq!(l.set_battery(3_900), None);
        assert_eq!(l.drive(Bolt::Locked, LockMethod::OwnerCommand), None);
        assert_eq!(
            l.drive(Bolt::Unlocked, LockMethod::MechanicalKey),
            Some(Audit::Unlocked {
                method: LockMethod::MechanicalKey
            })
        );
    }
}
