//! The SMP server as a sans-IO state machine: request frame and the time
//! in, response frame out. The socket loop, the files and the clock live
//! in `main.rs`.
//!
//! * this module: the [`Server`] with its device core and mechanism, the
//!   presence window, resets and the tick;
//! * `requests`: the OS and image group commands the agent authorized;
//! * `upload`: the upload in progress and its chunks;
//! * `consent`: the pending update, consent and the install.

mod consent;
mod requests;
mod upload;

pub(crate) use consent::UpdateStatus;
pub use consent::{ConsentBy, ConsentChange};
pub use upload::{UploadCut, UploadSession};

use ciborium::Value;
use keyway_device::manifest_area::MAX_MANIFEST_LEN;

use crate::device::{BootReport, DeviceCore, ImgError};
use crate::owners::Settings;
use crate::peers::Peer;
use crate::policy::{self, Model, Pending};
use crate::smp::{Header, MgmtErr, Request, Version};

/// Bytes of an upload buffered before its envelope head is verified: a
/// stored head is at most `MAX_MANIFEST_LEN` bytes, so this many bytes
/// always hold the whole head and the payload's byte-string header.
pub const HEAD_WINDOW: usize = MAX_MANIFEST_LEN + 16;
/// The largest upload: a full slot's image and the largest head.
pub const MAX_UPLOAD: u64 = device_cap() + MAX_MANIFEST_LEN as u64;

const fn device_cap() -> u64 {
    126 * 4096
}

/// An upload that took no chunk for this long may be replaced by another
/// peer's (authorized) first chunk; until then it belongs to its peer.
pub const UPLOAD_IDLE_MS: u64 = 30_000;

/// `buf_count` advertised in the MCUmgr parameters.
pub const BUF_COUNT: u32 = 4;

/// `OS_MGMT_ERR`: the format string names an unknown field.
const OS_INVALID_FORMAT: u16 = keyway_smp::err::os_rc::INVALID_FORMAT;

/// Why a request failed, and in which form to answer.
pub(crate) enum Fail {
    /// A top-level SMP rc with a reason.
    Smp(MgmtErr, String),
    /// An image-group error.
    Img(ImgError),
    /// An OS-group error.
    Os(u16, MgmtErr, String),
}

impl From<ImgError> for Fail {
    fn from(e: ImgError) -> Self {
        Fail::Img(e)
    }
}

pub(crate) fn inval(what: String) -> Fail {
    Fail::Smp(MgmtErr::Inval, what)
}

/// ENOTSUP for the command `what`, a write or a read: "`what` (write)
/// `why`".
pub(crate) fn not_sup(what: std::fmt::Arguments<'_>, write: bool, why: &str) -> Fail {
    let op = if write { "write" } else { "read" };
    Fail::Smp(MgmtErr::NotSup, format!("{what} ({op}) {why}"))
}

pub(crate) type Body = Vec<(Value, Value)>;

/// The `forced` profile's install, scheduled once an upload completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ForcedInstall {
    /// Scheduled: the next tick sets its time.
    Scheduled,
    /// Goes ahead at this tick time.
    DueAt(u64),
}

/// The physical-presence window (a button held on the lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    /// Closed.
    Closed,
    /// Open until this time (ms of the shell's monotonic clock).
    Until(u64),
    /// Open for good (a test flag: `--presence-always-open`).
    Always,
}

/// The lock's SMP server.
#[derive(Debug)]
pub struct Server {
    /// The device core: flash, journal, bootloader, audit log.
    core: DeviceCore,
    /// The lock mechanism: bolt, keypad, door and sensors.
    mechanism: crate::lock::Mechanism,
    upload: Option<UploadSession>,
    /// The physical-presence window.
    presence: Presence,
    reset_pending: bool,
    log: Vec<String>,
    /// The owners' update settings (the agent's store holds them; the
    /// policy reads them here).
    pub(crate) settings: Settings,
    /// The consent the device core keeps when no agent's store is
    /// attached (the device core's own tests); with the agent, consent
    /// lives only in its store.
    stored_consent: Option<[u8; 32]>,
    /// The PIN changed (a factory reset): the shell stores it.
    pin_dirty: bool,
    pub(crate) model: Model,
    /// The complete, verified update waiting for consent.
    pub(crate) pending: Option<Pending>,
    pub(crate) update: UpdateStatus,
    pub(crate) presence_opened_ms: Option<u64>,
    pub(crate) long_press_ms: Option<u64>,
    /// The audit-log export served by the `log` command.
    pub(crate) export: Option<Vec<u8>>,
    rtc: Option<u64>,
    /// Cut the power once the upload passes this point.
    cut_mid_upload: Option<UploadCut>,
    /// The `forced` profile's scheduled install.
    forced_due: Option<ForcedInstall>,
    /// The transport peer of the request being handled.
    peer: Peer,
    /// The peer the log export in progress belongs to.
    pub(crate) export_peer: Option<Peer>,
    /// The key id of the owner who signed the request being handled.
    auth_key: Option<[u8; 8]>,
    /// The network the `cloud-verify` profile asks (the shell's).
    vendor: Box<dyn crate::profile::VendorServer>,
    /// Consent lives in the agent's store ([`Server::use_agent_store`]).
    agent_store: bool,
    /// A consent change for the agent's store.
    consent_change: Option<ConsentChange>,
}

impl Server {
    /// A server for a booted lock.
    pub fn new(core: DeviceCore) -> Self {
        Server {
            core,
            mechanism: crate::lock::Mechanism::new(crate::lock::Config::default()),
            upload: None,
            presence: Presence::Closed,
            reset_pending: false,
            log: Vec::new(),
            settings: Settings::default(),
            stored_consent: None,
            pin_dirty: false,
            model: policy::MODELS[0],
            pending: None,
            update: UpdateStatus::default(),
            presence_opened_ms: None,
            long_press_ms: None,
            export: None,
            rtc: None,
            cut_mid_upload: None,
            forced_due: None,
            peer: Peer::LOCAL,
            export_peer: None,
            auth_key: None,
            vendor: Box::new(crate::profile::Offline),
            agent_store: false,
            consent_change: None,
        }
        .with_pending()
    }

    fn with_pending(mut self) -> Self {
        self.refresh_pending();
        self
    }

    /// Whether the PIN changed since the last call (a factory reset
    /// restores the default): the shell stores it (`pin`).
    pub fn take_pin_changed(&mut self) -> bool {
        std::mem::take(&mut self.pin_dirty)
    }

    /// The agent answered an OS reset (the window's, `in_window`, or the
    /// owner `owner`'s): with the window open and an update pending, that
    /// reset is the consent of the person at the lock to install it
    /// (`smpmgr upgrade` uploads, then resets), as before the agent. The
    /// reset runs after the answer ([`Server::request_reset`], then
    /// [`Server::poll_reset`]); a postponed install keeps its consent and
    /// the reset is declined (`Err` with why: rc 6, as before the agent).
    pub fn agent_reset(
        &mut self,
        in_window: bool,
        owner: Option<[u8; 8]>,
        now_ms: u64,
    ) -> Result<(), String> {
        if in_window
            && self.presence_open(now_ms)
            && self.pending.is_some()
            && !self.update.installing
        {
            self.consent(
                "a reset asked for with the presence window open (smpmgr upgrade)",
                ConsentBy::Presence,
            );
            if let Some(Err(why)) = self.try_install() {
                let why = format!(
                    "{why} (consent kept: the lock installs and resets by itself then; no reset now)"
                );
                self.log.push(why.clone());
                return Err(why);
            }
        }
        if let Some(k) = owner {
            self.log.push(format!(
                "reset asked for by owner {}",
                keyway_vendor::keys::hex(&k)
            ));
        }
        Ok(())
    }

    /// Resets after the answer was sent ([`Server::poll_reset`]).
    pub fn request_reset(&mut self) {
        self.reset_pending = true;
    }

    /// The agent ran a factory reset (the window and the long press): the
    /// owners, consent and settings are gone from its store; the device
    /// core forgets the update's state and the PIN, and logs it.
    pub fn agent_factory_reset(&mut self) {
        self.long_press_ms = None;
        self.upload = None;
        self.clear_update();
        self.mechanism.set_pin(crate::lock::DEFAULT_PIN);
        self.core.note(keyway_audit::Event::FactoryReset);
        self.pin_dirty = true;
        self.log.push(
            "factory reset: owners, settings and PIN erased (firmware, anchors, audit log and device key kept)"
                .into(),
        );
    }

    /// Serves a request the agent authorized (`owner`: the session's
    /// owner; `None`: the presence window or anyone, as the agent's table
    /// allowed): the server's own checks of authority and of whose upload
    /// a chunk is are skipped, the agent made them.
    pub(crate) fn serve_authorized(
        &mut self,
        r: &Request,
        owner: Option<[u8; 8]>,
        now_ms: u64,
    ) -> Result<Body, Fail> {
        self.peer = Peer::LOCAL;
        self.auth_key = owner;
        self.dispatch(r, owner.is_some(), now_ms)
    }

    /// The pending update's summary as `status` shows it: (sequence,
    /// version, state, postponed reason, CVE count, highest severity).
    #[allow(clippy::type_complexity)]
    pub(crate) fn update_view(
        &self,
    ) -> Option<(
        u64,
        String,
        &'static str,
        Option<policy::Postponed>,
        u64,
        Option<keyway_suit::Severity>,
    )> {
        let p = self.pending.as_ref()?;
        let consented = self.update.consent == Some(p.hash);
        let state = if self.update.installing {
            "installing"
        } else if consented && self.update.postponed.is_some() {
            "postponed"
        } else {
            "awaiting-consent"
        };
        let reason = if state == "postponed" {
            self.update.postponed
        } else {
            None
        };
        Some((
            p.sequence,
            p.version.clone(),
            state,
            reason,
            p.cves.len() as u64,
            p.highest(),
        ))
    }

    /// Whether the release notes of the pending update were served.
    pub fn notes_offered(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| self.update.notes_offered == Some(p.hash))
    }

    /// The lock model (battery model, name in status and info).
    pub fn model(&self) -> Model {
        self.model
    }

    /// Sets the lock model; the battery warning level follows it.
    pub fn set_model(&mut self, model: Model) {
        self.model = model;
        self.mechanism.set_battery_low_mv(model.battery.low_mv);
    }

    /// The wall clock (seconds since 1970) for the audit-log export the
    /// `log` command makes; without it, `now_ms / 1000`.
    pub fn set_rtc(&mut self, secs: u64) {
        self.rtc = Some(secs);
    }

    pub(crate) fn rtc(&self, now_ms: u64) -> u64 {
        self.rtc.unwrap_or(now_ms / 1000)
    }

    /// The network the `cloud-verify` profile asks whether its vendor
    /// server answers (the shell's; the default is offline).
    pub fn set_vendor_server(&mut self, net: Box<dyn crate::profile::VendorServer>) {
        self.vendor = net;
    }

    /// The transport peer of the request being handled.
    pub(crate) fn peer(&self) -> Peer {
        self.peer
    }

    /// The button held 10 s (control socket `long-press`): with the
    /// presence window open it allows a factory reset.
    pub fn long_press(&mut self, now_ms: u64) {
        self.long_press_ms = Some(now_ms);
    }

    /// The device core (flash, journal, bootloader, audit log).
    pub fn core(&self) -> &DeviceCore {
        &self.core
    }

    /// The device core, mutably (control socket, tests).
    pub fn core_mut(&mut self) -> &mut DeviceCore {
        &mut self.core
    }

    /// The lock mechanism (bolt, keypad, door, sensors).
    pub fn mechanism(&self) -> &crate::lock::Mechanism {
        &self.mechanism
    }

    /// The lock mechanism, and the device core (to log what it did).
    pub fn mechanism_mut(&mut self) -> (&mut crate::lock::Mechanism, &mut DeviceCore) {
        (&mut self.mechanism, &mut self.core)
    }

    /// Replaces the mechanism's settings (the bolt starts locked).
    pub fn set_lock_config(&mut self, config: crate::lock::Config) {
        self.mechanism = crate::lock::Mechanism::new(config);
    }

    /// Runs the mechanism's timers (auto-relock) up to `now_ms`, queueing
    /// what they did on the audit log.
    pub fn tick(&mut self, now_ms: u64) {
        for e in self.mechanism.poll(now_ms) {
            self.core.note(e);
        }
        // A postponed install goes ahead as soon as the policy allows it.
        if self.update.postponed.is_some() && !self.reset_pending {
            let _ = self.try_install();
        }
        // PROFILE HOOK (forced): the install it scheduled goes ahead, a
        // moment after the upload, without consent or policy.
        if let Some(forced) = self.forced_due {
            let due = match forced {
                ForcedInstall::Scheduled => now_ms + crate::profile::FORCED_DELAY_MS,
                ForcedInstall::DueAt(due) => due,
            };
            self.forced_due = Some(ForcedInstall::DueAt(due));
            if now_ms >= due && !self.reset_pending {
                self.forced_due = None;
                if let Some(p) = self.pending.clone()
                    && self.core.test(&p.hash).is_ok()
                {
                    self.update.installing = true;
                    self.core.note(keyway_audit::Event::UpdateInstalled {
                        sequence: p.sequence,
                        slot: p.slot,
                    });
                    self.log
                        .push("forced profile: installing without consent; resetting".to_owned());
                    self.reset_pending = true;
                }
            }
        }
    }

    /// Keeps the physical-presence window open for good (a test flag).
    pub fn set_presence_always_open(&mut self, open: bool) {
        self.presence = if open {
            Presence::Always
        } else {
            Presence::Closed
        };
    }

    /// Opens the physical-presence window (a button held on the lock)
    /// until `now_ms + duration_ms`.
    pub fn open_presence(&mut self, now_ms: u64, duration_ms: u64) {
        self.core.note(keyway_audit::Event::PresenceWindowOpened {
            seconds: u16::try_from(duration_ms / 1000).unwrap_or(u16::MAX),
        });
        if self.presence != Presence::Always {
            self.presence = Presence::Until(now_ms.saturating_add(duration_ms));
        }
        self.presence_opened_ms = Some(now_ms);
    }

    /// When the presence window closes (`None`: closed, or always open).
    pub(crate) fn presence_until_ms(&self) -> Option<u64> {
        match self.presence {
            Presence::Until(t) => Some(t),
            Presence::Closed | Presence::Always => None,
        }
    }

    /// Adds a line to the lock's log.
    pub(crate) fn note_log(&mut self, line: String) {
        self.log.push(line);
    }

    /// Closes the presence window.
    pub fn close_presence(&mut self) {
        self.end_presence();
    }

    /// Ends a timed presence window (one kept open for good stays open).
    fn end_presence(&mut self) {
        if let Presence::Until(_) = self.presence {
            self.presence = Presence::Closed;
        }
    }

    /// Whether the presence window is open at `now_ms`.
    pub fn presence_open(&self, now_ms: u64) -> bool {
        match self.presence {
            Presence::Closed => false,
            Presence::Until(t) => now_ms < t,
            Presence::Always => true,
        }
    }

    /// Log lines since the last call (refusals, resets, boots).
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// Whether the lock lost power while handling the last request (a cut
    /// planned with [`DeviceCore::plan_power_cut`] fired): a real lock would not
    /// have answered, so the shell drops the response.
    pub fn lost_power(&self) -> bool {
        !self.core.powered()
    }

    /// Runs a reset a request asked for (after its response was sent), or
    /// the power-on after a power cut: the upload in RAM is lost, the
    /// bootloader runs, an image on trial self-tests and confirms.
    pub fn poll_reset(&mut self) -> Option<Result<BootReport, String>> {
        let cut = self.lost_power();
        if !std::mem::take(&mut self.reset_pending) && !cut {
            return None;
        }
        if cut {
            self.log
                .push("POWER CUT during a flash operation; power returns".to_owned());
        }
        self.upload = None;
        // A power cut ends the presence window. A reset (asked for with
        // authority, or the lock's own to install) keeps it until its
        // deadline, as retained RAM does across a soft reset: the person
        // at the lock is still there, and a reset cannot shut them out.
        if cut {
            self.end_presence();
        }
        self.long_press_ms = None;
        // RAM is lost; the stored consent is not.
        self.update = UpdateStatus::default();
        self.export = None;
        self.export_peer = None;
        let r = self.core.power_on();
        self.refresh_pending();
        self.restore_consent();
        self.auto_consent();
        match &r {
            Ok(b) => self.log.push(format!(
                "reset: boot {:?} ({:?}); {}",
                b.decision.boot, b.decision.reason, b.app
            )),
            Err(e) => self.log.push(format!("reset: {e}")),
        }
        Some(r)
    }
}

/// The version a request was answered in (tests).
pub fn response_version(frame: &[u8]) -> Option<Version> {
    Header::decode(frame).ok().map(|h| h.smp_version())
}
