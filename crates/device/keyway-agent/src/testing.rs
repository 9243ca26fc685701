//! Test doubles for the lock around the agent (feature `test-util`; no
//! lock firmware enables it): the sensors, firmware summary and clock a
//! test lock reports, and a whole test lock ([`TestLock`]: its
//! [`Hardware`] and a [`TestShell`] serving the commands the agent passes
//! on), shared by this crate's tests, the fuzz targets, the host's
//! in-memory locks and the on-target harness (firmware/qemu-agent) so that
//! they describe the same lock.

use keyway_audit::Time;
use keyway_smp::cbor::Writer;
use keyway_smp::keyway_group::{self, Bolt, Door};
use keyway_smp::{MgmtErr, Response};

use crate::agent::{Authority, Authorized, Device, Firmware, Now, Pending, Sensors, ServeError};

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

/// A test lock's hardware in memory: the bolt (and how often it moved),
/// the door, and the update waiting for consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hardware {
    /// The bolt as its sensor reports it.
    pub bolt: Bolt,
    /// The door sensor.
    pub door: Door,
    /// The update waiting for consent.
    pub pending: Option<Pending>,
    /// How many times an owner's session drove the bolt.
    pub bolt_moves: u32,
}

impl Hardware {
    /// Bolt locked, door closed, nothing pending, the bolt never moved.
    pub const fn new() -> Self {
        Self {
            bolt: Bolt::Locked,
            door: Door::Closed,
            pending: None,
            bolt_moves: 0,
        }
    }
}

impl Default for Hardware {
    fn default() -> Self {
        Self::new()
    }
}

/// What a [`TestLock`] serves itself: the commands the agent passes on to
/// the shell ([`Device::serve`]) and whether it accepts a reset.
pub trait TestShell {
    /// [`Device::serve`], with the lock's hardware at hand: the answer
    /// that [`TestLock`] encodes (`None`: an empty map), or a refusal; the
    /// default answers every command with an empty map.
    fn serve(
        &mut self,
        hw: &mut Hardware,
        call: Authorized<'_>,
    ) -> Result<Option<Response<'_>>, ServeError> {
        let _ = (hw, call);
        Ok(None)
    }

    /// [`Device::reset_requested`]; the default accepts.
    fn reset_requested(&mut self, by: Authority) -> Result<(), ServeError> {
        let _ = by;
        Ok(())
    }
}

/// The bare shell: every command the agent passes on is answered with an
/// empty map, every reset accepted.
impl TestShell for () {}

/// A test lock: [`Hardware`] reported through [`sensors`] and
/// [`firmware`], the bolt driven in memory, and `shell` serving the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestLock<S> {
    /// The bolt, door and pending update.
    pub hw: Hardware,
    /// What serves the commands the agent passes on.
    pub shell: S,
}

impl<S: TestShell> Device for TestLock<S> {
    fn sensors(&self) -> Sensors {
        sensors(self.hw.bolt, self.hw.door)
    }
    fn firmware(&self) -> Firmware<'_> {
        firmware(self.hw.pending)
    }
    fn drive_bolt(&mut self, to: Bolt) -> Bolt {
        self.hw.bolt = to;
        self.hw.bolt_moves += 1;
        to
    }
    fn reset_requested(&mut self, by: Authority) -> Result<(), ServeError> {
        self.shell.reset_requested(by)
    }
    fn serve(&mut self, call: Authorized<'_>, w: &mut Writer<'_>) -> Result<(), ServeError> {
        // The empty map is written here rather than as a `Response`: a
        // second caller of `Response::encode` in the lock-only firmware
        // (firmware/qemu-agent) stops LLVM inlining it into the agent's
        // own, 608 B more code.
        match self.shell.serve(&mut self.hw, call)? {
            Some(rsp) => rsp.encode(w),
            None => w.map(0),
        }
        .map_err(|_| ServeError::rc(MgmtErr::NoMem))
    }
}

/// A test lock's release notes for its pending update (sequence 7,
/// version `2.0.0`, "fixes", no CVEs, no battery minimum, awaiting
/// consent); marks them offered, as serving them to an owner does.
pub fn release_notes(pending: &mut Option<Pending>) -> Response<'static> {
    if let Some(p) = pending {
        p.notes_offered = true;
    }
    Response::Notes(keyway_group::Notes {
        sequence: 7,
        version: "2.0.0",
        notes: "fixes",
        cves: keyway_smp::seq::Seq::Items(&[]),
        min_battery_mwh: None,
        state: keyway_group::UpdateState::AwaitingConsent,
        reason: None,
    })
}
