//! Test doubles for the lock around the agent (feature `test-util`; no
//! lock firmware enables it): the sensors, firmware summary and clock a
//! test lock reports, shared by this crate's tests, the fuzz targets, the
//! host's in-memory locks and the on-target harness (firmware/qemu-agent)
//! so that they describe the same lock.

use keyway_audit::Time;
use keyway_smp::keyway_group::{Bolt, Door};

use crate::agent::{Firmware, Now, Pending, Sensors};

/// The wall time of a test lock at boot: [`now`]'s RTC at 0 ms.
pub const RTC_AT_BOOT: u64 = 1_760_000_000;

/// A test lock's sensors: `bolt` and `door` as given, a full battery
/// (5.9 V, 9 Wh), no tamper, no keypad lockout.
pub const fn sensors(bolt: Bolt, door: Door) -> Sensors {
    Sensors {
        bolt,
        door,
        battery_mv: 5_900,
        battery_mwh: 9_000,
        tamper: false,
        lockout_s: 0,
    }
}

/// A test lock's firmware: model `KW-1`, version `1.4.0` running from
/// slot 0 (image digest `[0x11; 32]`), not on trial, no update summary;
/// `pending` the update waiting for consent.
pub const fn firmware(pending: Option<Pending>) -> Firmware<'static> {
    Firmware {
        model: "KW-1",
        version: "1.4.0",
        slot: Some(0),
        image: Some([0x11; 32]),
        trial: false,
        update: None,
        pending,
    }
}

/// A test lock's clock `ms` milliseconds after boot: the RTC from
/// [`RTC_AT_BOOT`] in whole seconds, boot counter 1.
pub const fn now(ms: u64) -> Now {
    Now {
        ms,
        time: Time {
            rtc: RTC_AT_BOOT + ms / 1000,
            boot: 1,
        },
    }
}
