//! The lock's behaviour: bolt, keypad, door and sensors, as a sans-IO state
//! machine. Time (milliseconds of a monotonic clock) is an input; every
//! input returns the audit events it caused, which the caller queues on
//! the device's log ([`crate::device::DeviceCore::note`]).
//!
//! * Keypad: the right PIN unlocks; [`Config::max_attempts`] wrong PINs in
//!   a row lock the keypad out for [`Config::lockout_ms`] (entries are
//!   refused, not counted, until it ends; then the count starts again).
//! * Owner commands lock and unlock; the mechanical key turns the bolt.
//! * Auto-relock: [`Config::relock_ms`] after an unlock, the bolt is thrown
//!   again, but never while the door is open: closing the door starts the
//!   delay again.
//! * Sensors: door open/closed, tamper on/off (logged on a change), battery
//!   in millivolts (logged once when it falls below
//!   [`Config::battery_low_mv`], re-armed 100 mV above it).

use keyway_agent::keypad::{Lockout, Policy, pin_matches};
use keyway_audit::{Event, LockMethod};

/// The PIN a lock gets when provisioning names none.
pub const DEFAULT_PIN: &str = "1234";

/// The lock's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The keypad PIN.
    pub pin: String,
    /// Wrong PINs in a row before the keypad locks out (default 5).
    pub max_attempts: u16,
    /// How long the keypad stays locked out (default 5 minutes).
    pub lockout_ms: u64,
    /// Auto-relock delay after an unlock; `None`: never (default 30 s).
    pub relock_ms: Option<u64>,
    /// The battery warning level (default 3300 mV).
    pub battery_low_mv: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pin: DEFAULT_PIN.to_owned(),
            max_attempts: 5,
            lockout_ms: 5 * 60 * 1000,
            relock_ms: Some(30_000),
            battery_low_mv: 3300,
        }
    }
}

/// The bolt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bolt {
    /// Thrown.
    Locked,
    /// Withdrawn.
    Unlocked,
}

/// The door sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// Open.
    Open,
    /// Closed.
    Closed,
}

/// What a keypad entry did (keyway-agent's, shared with the lock firmware).
pub use keyway_agent::keypad::Keypad;

/// The tamper sensor's number in the audit log.
pub const TAMPER_SENSOR: u8 = 1;

/// The lock's mechanism (bolt, keypad, door) and sensors: what a person
/// at the door works, as opposed to the [`crate::device::DeviceCore`] that
/// holds the firmware.
#[derive(Clone, Debug)]
pub struct Mechanism {
    config: Config,
    bolt: Bolt,
    door: Door,
    tamper: bool,
    battery_mv: Option<u16>,
    battery_warned: bool,
    keypad: Lockout,
    relock_at: Option<u64>,
}

impl Mechanism {
    /// A locked lock with its door closed.
    pub fn new(config: Config) -> Self {
        Mechanism {
            config,
            bolt: Bolt::Locked,
            door: Door::Closed,
            tamper: false,
            battery_mv: None,
            battery_warned: false,
            keypad: Lockout::default(),
            relock_at: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes the keypad PIN (a factory reset sets the default).
    pub fn set_pin(&mut self, pin: &str) {
        pin.clone_into(&mut self.config.pin);
    }

    /// Changes the battery warning level (the lock model's).
    pub fn set_battery_low_mv(&mut self, mv: u16) {
        self.config.battery_low_mv = mv;
    }

    /// The bolt.
    pub fn bolt(&self) -> Bolt {
        self.bolt
    }

    /// The door.
    pub fn door(&self) -> Door {
        self.door
    }

    /// Whether the tamper sensor is tripped.
    pub fn tamper(&self) -> bool {
        self.tamper
    }

    /// The last battery reading in millivolts.
    pub fn battery_mv(&self) -> Option<u16> {
        self.battery_mv
    }

    /// Wrong PINs in a row so far.
    pub fn failures(&self) -> u16 {
        self.keypad.failures()
    }

    /// The keypad lockout left at `now`, if any.
    pub fn lockout_remaining(&self, now: u64) -> Option<u64> {
        Some(self.keypad.remaining_ms(now)).filter(|&ms| ms > 0)
    }

    /// The keypad's lockout as configured: a fixed wait, after which the
    /// count starts again.
    fn keypad_policy(&self) -> Policy {
        Policy {
            after: self.config.max_attempts,
            first_ms: self.config.lockout_ms,
            doubles: false,
        }
    }

    /// Milliseconds until the auto-relock at `now`, if it is armed (`None`
    /// while the door is open).
    pub fn relock_remaining(&self, now: u64) -> Option<u64> {
        self.relock_at.map(|t| t.saturating_sub(now))
    }

    fn set_bolt(&mut self, bolt: Bolt, method: LockMethod, now: u64) -> Vec<Event> {
        self.relock_at = match bolt {
            Bolt::Unlocked if self.door == Door::Closed => {
                self.config.relock_ms.map(|d| now.saturating_add(d))
            }
            _ => None,
        };
        if self.bolt == bolt {
            return Vec::new();
        }
        self.bolt = bolt;
        vec![match bolt {
            Bolt::Locked => Event::Locked { method },
            Bolt::Unlocked => Event::Unlocked { method },
        }]
    }

    /// Runs the timers up to `now` (the auto-relock, the end of a lockout).
    pub fn poll(&mut self, now: u64) -> Vec<Event> {
        self.keypad.poll(&self.keypad_policy(), now);
        if self.bolt == Bolt::Unlocked
            && self.door == Door::Closed
            && self.relock_at.is_some_and(|t| t <= now)
        {
            return self.set_bolt(Bolt::Locked, LockMethod::AutoRelock, now);
        }
        Vec::new()
    }

    /// A PIN entered on the keypad.
    pub fn keypad(&mut self, pin: &str, now: u64) -> (Keypad, Vec<Event>) {
        let mut events = self.poll(now);
        let right = pin_matches(pin, &self.config.pin);
        let keypad = self.keypad.enter(&self.keypad_policy(), right, now);
        match keypad {
            Keypad::Unlocked => {
                events.extend(self.set_bolt(Bolt::Unlocked, LockMethod::Keypad, now))
            }
            Keypad::Wrong { consecutive, .. } => events.push(Event::PinFailed { consecutive }),
            Keypad::LockedOut { .. } => {}
        }
        (keypad, events)
    }

    /// The owner's lock (`true`) or unlock (`false`) command.
    pub fn owner(&mut self, lock: bool, now: u64) -> Vec<Event> {
        let mut events = self.poll(now);
        let bolt = if lock { Bolt::Locked } else { Bolt::Unlocked };
        events.extend(self.set_bolt(bolt, LockMethod::OwnerCommand, now));
        events
    }

    /// The mechanical key turned the cylinder: the bolt changes over.
    pub fn mechanical_key(&mut self, now: u64) -> Vec<Event> {
        let mut events = self.poll(now);
        let bolt = match self.bolt {
            Bolt::Locked => Bolt::Unlocked,
            Bolt::Unlocked => Bolt::Locked,
        };
        events.extend(self.set_bolt(bolt, LockMethod::MechanicalKey, now));
        events
    }

    /// The door sensor. Opening the door stops the auto-relock; closing it
    /// with the bolt withdrawn starts the delay again.
    pub fn door_sensor(&mut self, door: Door, now: u64) -> Vec<Event> {
        let events = self.poll(now);
        self.door = door;
        self.relock_at = match (door, self.bolt) {
            (Door::Closed, Bolt::Unlocked) => self.config.relock_ms.map(|d| now.saturating_add(d)),
            _ => None,
        };
        events
    }

    /// The tamper sensor.
    pub fn tamper_sensor(&mut self, on: bool, now: u64) -> Vec<Event> {
        let mut events = self.poll(now);
        if on != self.tamper {
            self.tamper = on;
            events.push(if on {
                Event::TamperDetected {
                    sensor: TAMPER_SENSOR,
                }
            } else {
                Event::TamperCleared {
                    sensor: TAMPER_SENSOR,
                }
            });
        }
        events
    }

    /// A battery reading in millivolts.
    pub fn battery(&mut self, millivolts: u16, now: u64) -> Vec<Event> {
        let mut events = self.poll(now);
        self.battery_mv = Some(millivolts);
        if millivolts < self.config.battery_low_mv {
            if !self.battery_warned {
                self.battery_warned = true;
                events.push(Event::BatteryLow { millivolts });
            }
        } else if millivolts >= self.config.battery_low_mv.saturating_add(100) {
            self.battery_warned = false;
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> Mechanism {
        Mechanism::new(Config::default())
    }

    #[test]
    fn right_pin_unlocks_and_resets_the_count() {
        let mut l = lock();
        let (k, e) = l.keypad("0000", 0);
        assert_eq!(
            k,
            Keypad::Wrong {
                consecutive: 1,
                lockout_ms: None
            }
        );
        assert_eq!(e, vec![Event::PinFailed { consecutive: 1 }]);
        let (k, e) = l.keypad(DEFAULT_PIN, 1000);
        assert_eq!(k, Keypad::Unlocked);
        assert_eq!(
            e,
            vec![Event::Unlocked {
                method: LockMethod::Keypad
            }]
        );
        assert_eq!(l.failures(), 0);
        assert_eq!(l.bolt(), Bolt::Unlocked);
    }

    #[test]
    fn five_wrong_pins_lock_the_keypad_out_for_five_minutes() {
        let mut l = lock();
        for i in 1..=4u16 {
            let (k, _) = l.keypad("9999", u64::from(i));
            assert!(matches!(
                k,
                Keypad::Wrong {
                    lockout_ms: None,
                    ..
                }
            ));
        }
        let (k, _) = l.keypad("9999", 10);
        assert_eq!(
            k,
            Keypad::Wrong {
                consecutive: 5,
                lockout_ms: Some(300_000)
            }
        );
        // Even the right PIN is ignored, and nothing is logged for it.
        let (k, e) = l.keypad(DEFAULT_PIN, 1_000);
        assert_eq!(
            k,
            Keypad::LockedOut {
                remaining_ms: 299_010
            }
        );
        assert!(e.is_empty());
        assert_eq!(l.bolt(), Bolt::Locked);
        assert_eq!(l.lockout_remaining(300_009), Some(1));
        // Over: the right PIN works and the count started again.
        let (k, _) = l.keypad(DEFAULT_PIN, 300_010);
        assert_eq!(k, Keypad::Unlocked);
        assert_eq!(l.lockout_remaining(300_010), None);
    }

    #[test]
    fn lockout_is_configurable_and_a_right_pin_breaks_the_streak() {
        let mut l = Mechanism::new(Config {
            max_attempts: 2,
            lockout_ms: 1000,
            ..Config::default()
        });
        l.keypad("1", 0);
        l.keypad(DEFAULT_PIN, 1);
        let (k, _) = l.keypad("1", 2);
        assert!(matches!(
            k,
            Keypad::Wrong {
                consecutive: 1,
                lockout_ms: None
            }
        ));
        let (k, _) = l.keypad("1", 3);
        assert!(matches!(
            k,
            Keypad::Wrong {
                lockout_ms: Some(1000),
                ..
            }
        ));
        assert_eq!(l.lockout_remaining(3), Some(1000));
        assert!(matches!(
            l.keypad("1", 1002).0,
            Keypad::LockedOut { remaining_ms: 1 }
        ));
        assert!(matches!(
            l.keypad("1", 1003).0,
            Keypad::Wrong { consecutive: 1, .. }
        ));
    }

    #[test]
    fn auto_relock_after_thirty_seconds() {
        let mut l = lock();
        assert_eq!(
            l.owner(false, 0),
            vec![Event::Unlocked {
                method: LockMethod::OwnerCommand
            }]
        );
        assert!(l.poll(29_999).is_empty());
        assert_eq!(
            l.poll(30_000),
            vec![Event::Locked {
                method: LockMethod::AutoRelock
            }]
        );
        assert_eq!(l.bolt(), Bolt::Locked);
        assert!(l.poll(60_000).is_empty());
    }

    #[test]
    fn no_auto_relock_while_the_door_is_open() {
        let mut l = lock();
        l.keypad(DEFAULT_PIN, 0);
        l.door_sensor(Door::Open, 5_000);
        assert!(l.poll(100_000).is_empty());
        assert_eq!(l.bolt(), Bolt::Unlocked);
        // Closing the door starts the delay again.
        l.door_sensor(Door::Closed, 200_000);
        assert!(l.poll(229_999).is_empty());
        assert_eq!(
            l.poll(230_000),
            vec![Event::Locked {
                method: LockMethod::AutoRelock
            }]
        );
    }

    #[test]
    fn auto_relock_can_be_disabled() {
        let mut l = Mechanism::new(Config {
            relock_ms: None,
            ..Config::default()
        });
        l.owner(false, 0);
        assert!(l.poll(u64::MAX).is_empty());
        assert_eq!(l.bolt(), Bolt::Unlocked);
    }

    #[test]
    fn mechanical_key_turns_the_bolt_over() {
        let mut l = lock();
        assert_eq!(
            l.mechanical_key(0),
            vec![Event::Unlocked {
                method: LockMethod::MechanicalKey
            }]
        );
        assert_eq!(
            l.mechanical_key(1),
            vec![Event::Locked {
                method: LockMethod::MechanicalKey
            }]
        );
        // Locking an already locked bolt logs nothing.
        assert!(l.owner(true, 2).is_empty());
    }

    #[test]
    fn tamper_and_battery_are_logged_on_a_change() {
        let mut l = lock();
        assert_eq!(
            l.tamper_sensor(true, 0),
            vec![Event::TamperDetected { sensor: 1 }]
        );
        assert!(l.tamper_sensor(true, 1).is_empty());
        assert_eq!(
            l.tamper_sensor(false, 2),
            vec![Event::TamperCleared { sensor: 1 }]
        );
        assert!(l.battery(3600, 3).is_empty());
        assert_eq!(
            l.battery(3250, 4),
            vec![Event::BatteryLow { millivolts: 3250 }]
        );
        assert!(l.battery(3200, 5).is_empty());
        assert!(l.battery(3350, 6).is_empty()); // within the hysteresis
        assert!(l.battery(3200, 7).is_empty());
        assert!(l.battery(3400, 8).is_empty()); // re-armed
        assert_eq!(
            l.battery(3100, 9),
            vec![Event::BatteryLow { millivolts: 3100 }]
        );
    }
}
