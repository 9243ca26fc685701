//! What the agent asks of the lock around it: sensors, the running
//! firmware, the bolt's motor, and the commands the shell still serves.

use keyway_smp::cbor::Writer;
use keyway_smp::keyway_group::{Bolt, Door, UpdateSummary};
use keyway_smp::{MgmtErr, Refusal, Request};

use super::Authority;

/// The sensors, read when a command needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sensors {
    /// The bolt as its sensor reports it.
    pub bolt: Bolt,
    /// The door sensor.
    pub door: Door,
    /// Battery voltage, mV.
    pub battery_mv: u64,
    /// Battery energy left, mWh.
    pub battery_mwh: u64,
    /// The tamper switch tripped.
    pub tamper: bool,
    /// Seconds of keypad lockout left.
    pub lockout_s: u64,
}

/// The update waiting for consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Its envelope's SHA-256: consent is bound to it.
    pub digest: [u8; 32],
    /// Its manifest sequence number.
    pub sequence: u64,
    /// Whether its release notes were served to an owner (consent before
    /// that is refused with [`Refusal::NotesNotOffered`]).
    pub notes_offered: bool,
}

/// What the running firmware and the installer report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Firmware<'a> {
    /// The lock model.
    pub model: &'a str,
    /// The running release's version (`recovery` when none runs).
    pub version: &'a str,
    /// The running slot.
    pub slot: Option<u64>,
    /// The running image's SHA-256.
    pub image: Option<[u8; 32]>,
    /// The running image is on trial.
    pub trial: bool,
    /// The pending update's summary, for `status` and `consent` answers.
    pub update: Option<UpdateSummary<'a>>,
    /// The update waiting for consent.
    pub pending: Option<Pending>,
}

/// A request the agent has authorized, with the authority it was
/// authorized for: what [`Device::serve`] serves. The two travel together
/// because the authority is a property of the request as the agent
/// judged it (plain in the presence window, or sealed in an owner's
/// session), not something the shell chooses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Authorized<'a> {
    /// The typed request.
    pub request: &'a Request<'a>,
    /// Who it came from; [`permits`](super::permits) let it run.
    pub by: Authority,
}

/// A command the shell refused: the SMP code and the typed reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeError {
    /// The top-level `rc`.
    pub rc: MgmtErr,
    /// Keyway's typed refusal, if any.
    pub refusal: Option<Refusal>,
    /// The group's own error code (an MCUmgr group error, e.g. the image
    /// group's `CURRENT_VERSION_IS_NEWER`): an SMPv2 request is answered
    /// `err: {group, rc}` with it, as MCUmgr's standard tools expect; an
    /// SMPv1 request gets `rc` above.
    pub group_rc: Option<u16>,
}

impl ServeError {
    /// A refusal with the top-level `rc` alone: no typed refusal, no
    /// group code.
    pub const fn rc(rc: MgmtErr) -> Self {
        Self {
            rc,
            refusal: None,
            group_rc: None,
        }
    }
}

/// The lock around the agent. Every method is called synchronously inside
/// [`Agent::handle`](super::Agent::handle) and must not block on the
/// radio; on a lock they are register reads, the motor driver and the
/// installer, in the simulator memory.
pub trait Device {
    /// The sensors now.
    fn sensors(&self) -> Sensors;
    /// The running firmware and the pending update.
    fn firmware(&self) -> Firmware<'_>;
    /// Drives the bolt to `to` (an owner's session asked); returns the
    /// bolt as the sensor reports it afterwards, which is what the answer
    /// tells the owner.
    fn drive_bolt(&mut self, to: Bolt) -> Bolt;
    /// An OS reset was authorized (by the window or an owner, within the
    /// reset limit): the lock may still decline it with an error (e.g. an
    /// install its policy postpones: nothing resets now). `Ok`: the agent
    /// answers success and returns [`super::Event::Reset`]; the shell
    /// resets after sending. The default accepts.
    fn reset_requested(&mut self, by: Authority) -> Result<(), ServeError> {
        let _ = by;
        Ok(())
    }
    /// An owner's consent command was written to the store: `Some(digest)`
    /// accepted the pending update with that envelope digest, `None`
    /// refused it. The installer acts on it here (arms the install if its
    /// policy allows, or erases the refused update); the answer then
    /// reports [`Device::firmware`] as it stands afterwards. The default
    /// does nothing (the shell acts on [`super::Event::Consent`] instead).
    fn consent_stored(&mut self, digest: Option<[u8; 32]>) {
        let _ = digest;
    }
    /// Serves a command the agent has authorized (`call.by` is for whom)
    /// but does not implement itself yet: OS info, the image group (state,
    /// state write, upload, erase), release notes and the log export.
    /// Writes the answer body (a CBOR map) into `w`, or refuses. Bytes
    /// written before a refusal are discarded.
    fn serve(&mut self, call: Authorized<'_>, w: &mut Writer<'_>) -> Result<(), ServeError>;
}
