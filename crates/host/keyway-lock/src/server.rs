//! The SMP server as a sans-IO state machine: request frame and the time
//! in, response frame out. The socket loop, the files and the clock live
//! in `main.rs`.

use ciborium::Value;
use keyway_device::manifest_area::MAX_MANIFEST_LEN;
use sha2::{Digest, Sha256};

use crate::device::{self, BootReport, ImgError, Lock, img_rc};
use crate::owners::Settings;
use crate::peers::Peer;
use crate::policy::{self, Model, Pending};
use crate::smp::{
    self, Header, MgmtErr, Op, Request, Version, get_bool, get_bytes, get_text, get_u64, group,
    text,
};

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

use keyway_smp::{img::cmd as img_cmd, os::cmd as os_cmd};
/// `OS_MGMT_ERR`: the format string names an unknown field.
const OS_INVALID_FORMAT: u16 = keyway_smp::err::os_rc::INVALID_FORMAT;

/// An upload in progress.
pub struct Upload {
    len: u64,
    sha: Option<[u8; 32]>,
    off: u64,
    hasher: Sha256,
    head: Vec<u8>,
    installer: Option<device::Download>,
    /// Begun with an owner's `auth` (not the presence window): the
    /// chunks that follow belong to it.
    by_owner: bool,
    /// The peer that began it: only its chunks are taken.
    peer: Peer,
    /// The owner who signed its first chunk, if one did.
    owner: Option<[u8; 8]>,
    /// When it last took a chunk (another peer may begin a new upload
    /// once it idled [`UPLOAD_IDLE_MS`]).
    last_ms: u64,
    /// The manifest's sequence number, once the head verified (for the
    /// audit log's record of a refused image).
    sequence: Option<u64>,
}

impl core::fmt::Debug for Upload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Upload")
            .field("len", &self.len)
            .field("off", &self.off)
            .field("streaming", &self.installer.is_some())
            .finish_non_exhaustive()
    }
}

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

pub(crate) type Body = Vec<(Value, Value)>;

/// Where a pending update stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct UpdateStatus {
    /// Consent was given to the pending update with this hash (its
    /// envelope's SHA-256, as the image group names it): bound to that
    /// envelope, not to its sequence number or slot, so another envelope
    /// in the slot needs consent of its own.
    pub(crate) consent: Option<[u8; 32]>,
    /// The notes were offered (`notes` read) for the update with this hash.
    pub(crate) notes_offered: Option<[u8; 32]>,
    /// Why the consented install waits (typed: the status reports it as
    /// `why`, and in words as `reason`).
    pub(crate) postponed: Option<policy::Postponed>,
    /// Armed: the lock resets into the trial.
    pub(crate) installing: bool,
}

/// Who gave a consent the server recorded itself (not an owner's
/// consent command, which the agent stores).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentBy {
    /// An owner's session (a test boot of the pending update).
    Owner([u8; 8]),
    /// A person at the lock (a test boot or reset in the window).
    Presence,
    /// The owners' `auto_install_cve` setting.
    AutoInstall,
}

/// The lock's SMP server.
#[derive(Debug)]
pub struct Server {
    lock: Lock,
    latch: crate::lock::Lock,
    upload: Option<Upload>,
    presence_until_ms: Option<u64>,
    presence_always: bool,
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
    /// Cut the power once the upload passes this byte (`None` inside:
    /// halfway).
    cut_mid_upload: Option<Option<u64>>,
    /// The `forced` profile's scheduled install: `Some(None)` once an
    /// upload completes, then the tick's time it goes ahead.
    forced_due: Option<Option<u64>>,
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
    /// A consent change for the agent's store (`Some(None)`: cleared).
    consent_change: Option<Option<([u8; 32], u64, ConsentBy)>>,
}

impl Server {
    /// A server for a booted lock.
    pub fn new(lock: Lock) -> Self {
        Server {
            lock,
            latch: crate::lock::Lock::new(crate::lock::Config::default()),
            upload: None,
            presence_until_ms: None,
            presence_always: false,
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

    /// Consent and settings live in the agent's store
    /// ([`crate::agent_shell`]): the server reports each consent change
    /// ([`Server::take_consent_change`]) for the shell to write there.
    pub fn use_agent_store(&mut self) {
        self.agent_store = true;
    }

    /// The consent change since the last call, for the agent's store:
    /// `Some(Some((digest, sequence, by)))` granted, `Some(None)` cleared.
    pub fn take_consent_change(&mut self) -> Option<Option<([u8; 32], u64, ConsentBy)>> {
        self.consent_change.take()
    }

    /// The consent the agent's store holds (after a boot, a restart, or
    /// an owner's consent command): taken if it names the pending update.
    /// `announce`: an owner just gave it (the audit log records it and the
    /// install is tried now).
    pub fn adopt_consent(&mut self, digest: Option<[u8; 32]>, announce: bool) {
        let Some(p) = &self.pending else { return };
        if digest != Some(p.hash) || self.update.consent == digest {
            return;
        }
        let sequence = p.sequence;
        self.update.consent = digest;
        if announce {
            self.lock
                .note(keyway_audit::Event::ConsentGiven { sequence });
            self.log.push(format!(
                "consent to install sequence {sequence}: the owner's consent command"
            ));
        }
        let _ = self.try_install();
    }

    /// The owners' settings, as the agent's store holds them; a pending
    /// update `auto_install_cve` now covers is consented to.
    pub fn adopt_settings(&mut self, settings: crate::owners::Settings) {
        if self.settings != settings {
            self.settings = settings;
            self.auto_consent();
        }
    }

    /// An owner refused the pending update (the agent's consent command
    /// with `accept` false): it is erased, as the old command did.
    pub fn refuse_pending(&mut self) {
        if let Err(e) = self.refuse_pending_update() {
            self.log
                .push(format!("erasing the refused update: {}", e.reason));
        }
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
        self.latch.set_pin(crate::lock::DEFAULT_PIN);
        self.lock.note(keyway_audit::Event::FactoryReset);
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
        self.latch.set_battery_low_mv(model.battery.low_mv);
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

    /// Cuts the power during the next flash operation once the upload
    /// passes byte `at` (`None`: halfway through it).
    pub fn cut_power_mid_upload(&mut self, at: Option<u64>) {
        self.cut_mid_upload = Some(at);
    }

    /// The complete, verified update waiting for consent.
    pub fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }

    /// Looks for a complete, verified, unarmed update in the slot that
    /// does not run (after a boot or an upload).
    pub(crate) fn refresh_pending(&mut self) {
        self.pending = None;
        let Some(running) = self.lock.running() else {
            return;
        };
        let st = self.lock.state();
        let other = 1 - running.min(1);
        // Nothing on trial or pending: `None` too (after a revert).
        if st.download.is_some_and(|d| d.slot == other)
            || !matches!(
                st.trial,
                keyway_device::journal::TrialState::Confirmed
                    | keyway_device::journal::TrialState::None
            )
        {
            return;
        }
        // One parse of the stored head serves the slot's view and the
        // pending update's notes.
        let Some(head) = self.lock.head(other) else {
            return;
        };
        let Ok(i) = crate::suit::inspect_slot(&head, other) else {
            return;
        };
        let Some(v) = self.lock.view_of(other, &head, &i) else {
            return;
        };
        if !v.bootable || v.pending || st.floor.is_some_and(|f| v.sequence <= f) {
            return;
        }
        self.pending = Some(Pending::from_inspected(other, v.hash, &i));
    }

    /// What the policy measures now.
    pub(crate) fn conditions(&self) -> policy::Conditions {
        let b = self.model.battery;
        policy::Conditions {
            battery_mwh: b.mwh(self.latch.battery_mv().unwrap_or(b.full_mv)),
            bolt_locked: self.latch.bolt() == crate::lock::Bolt::Locked,
        }
    }

    /// The owner's `auto_install_cve` consents to a pending update that
    /// fixes a high or critical CVE (after an upload, a setting change, or
    /// a boot that forgot an earlier consent); then installs it if the
    /// policy allows.
    pub(crate) fn auto_consent(&mut self) {
        if let Some(p) = &self.pending
            && policy::auto_consent(&self.settings, p)
        {
            self.consent(
                "the owner's auto_install_cve setting (a high or critical CVE fix)",
                ConsentBy::AutoInstall,
            );
        }
        let _ = self.try_install();
    }

    /// Stores the consent (in RAM for the device core's own tests; with
    /// the agent, in its store through [`Server::take_consent_change`],
    /// before the next reset runs): `None` forgets it.
    fn persist_consent(&mut self, hash: Option<[u8; 32]>) {
        if self.agent_store {
            // The agent's store holds consent: the shell applies the
            // change there (`take_consent_change`).
            if hash.is_none() {
                self.consent_change = Some(None);
            }
            return;
        }
        self.stored_consent = hash;
    }

    /// Forgets where the pending update stood, its stored consent too.
    pub(crate) fn clear_update(&mut self) {
        self.update = UpdateStatus::default();
        self.persist_consent(None);
    }

    /// The stored consent, if it names the pending update (after a boot
    /// or a restart forgot the one in RAM).
    fn restore_consent(&mut self) {
        if let Some(p) = &self.pending
            && self.stored_consent == Some(p.hash)
        {
            self.update.consent = Some(p.hash);
        }
    }

    /// Who gives a consent the server records itself.
    pub(crate) fn consent_by(&self, by_owner: bool) -> ConsentBy {
        match self.auth_key {
            Some(k) if by_owner => ConsentBy::Owner(k),
            _ => ConsentBy::Presence,
        }
    }

    /// Records consent for the pending update.
    pub(crate) fn consent(&mut self, how: &str, by: ConsentBy) {
        let Some(p) = &self.pending else { return };
        if self.update.consent != Some(p.hash) {
            let sequence = p.sequence;
            let hash = p.hash;
            self.update.consent = Some(hash);
            if self.agent_store {
                self.consent_change = Some(Some((hash, sequence, by)));
            }
            self.persist_consent(Some(hash));
            self.lock
                .note(keyway_audit::Event::ConsentGiven { sequence });
            self.log
                .push(format!("consent to install sequence {sequence}: {how}"));
        }
    }

    /// Installs the consented pending update if the policy allows it now:
    /// arms it for a trial boot and resets into it. `None`: nothing
    /// consented; `Err`: postponed (or refused by the slot), with why.
    pub(crate) fn try_install(&mut self) -> Option<Result<(), String>> {
        self.install(true)
    }

    /// As [`Server::try_install`]; with `reset_now` false the update is
    /// only armed and the next reset boots it (MCUboot's "test": a stock
    /// tool marks the image, then sends the reset that the presence window
    /// allows once).
    fn install(&mut self, reset_now: bool) -> Option<Result<(), String>> {
        let p = self.pending.clone()?;
        if self.update.consent != Some(p.hash) || self.update.installing {
            return None;
        }
        // PROFILE HOOK (cloud-verify): no install without the vendor server.
        if let Err(why) = self.lock.profile.before_install(self.vendor.as_mut()) {
            self.update.consent = None;
            self.persist_consent(None);
            self.log.push(why.clone());
            return Some(Err(why));
        }
        if let Err(why) =
            keyway_agent::policy::may_install(&self.settings, p.min_battery_mwh, &self.conditions())
        {
            let words = policy::postponed_sentence(&why);
            if self.update.postponed != Some(why) {
                self.log.push(format!(
                    "update {} (sequence {}) {words}",
                    p.version, p.sequence
                ));
            }
            self.update.postponed = Some(why);
            return Some(Err(words));
        }
        // PROFILE HOOK (no-rollback): the image is copied over the running
        // one instead of booting on trial from its own slot.
        let armed = if self.lock.profile == crate::profile::Profile::NoRollback {
            self.lock.install_in_place(p.slot)
        } else {
            self.lock.test(&p.hash).map_err(|e| e.reason)
        };
        if let Err(e) = armed {
            self.update.consent = None;
            self.persist_consent(None);
            return Some(Err(e));
        }
        self.update.postponed = None;
        self.update.installing = true;
        // Armed in the journal: the boot installs it from here on.
        self.persist_consent(None);
        self.lock.note(keyway_audit::Event::UpdateInstalled {
            sequence: p.sequence,
            slot: p.slot,
        });
        self.log.push(format!(
            "installing {} (sequence {}): slot {} armed for a trial boot; {}",
            p.version,
            p.sequence,
            p.slot,
            if reset_now {
                "resetting"
            } else {
                "the next reset boots it"
            }
        ));
        if reset_now {
            self.reset_pending = true;
        }
        Some(Ok(()))
    }

    /// The lock.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// The lock, mutably (control socket, tests).
    pub fn lock_mut(&mut self) -> &mut Lock {
        &mut self.lock
    }

    /// The lock's mechanism and sensors.
    pub fn latch(&self) -> &crate::lock::Lock {
        &self.latch
    }

    /// The lock's mechanism and sensors, and the device (to log what they
    /// did).
    pub fn latch_mut(&mut self) -> (&mut crate::lock::Lock, &mut Lock) {
        (&mut self.latch, &mut self.lock)
    }

    /// Replaces the mechanism's settings (the bolt starts locked).
    pub fn set_lock_config(&mut self, config: crate::lock::Config) {
        self.latch = crate::lock::Lock::new(config);
    }

    /// Runs the mechanism's timers (auto-relock) up to `now_ms`, queueing
    /// what they did on the audit log.
    pub fn tick(&mut self, now_ms: u64) {
        for e in self.latch.poll(now_ms) {
            self.lock.note(e);
        }
        // A postponed install goes ahead as soon as the policy allows it.
        if self.update.postponed.is_some() && !self.reset_pending {
            let _ = self.try_install();
        }
        // PROFILE HOOK (forced): the install it scheduled goes ahead, a
        // moment after the upload, without consent or policy.
        if let Some(due) = self.forced_due {
            let due = due.unwrap_or(now_ms + crate::profile::FORCED_DELAY_MS);
            self.forced_due = Some(Some(due));
            if now_ms >= due && !self.reset_pending {
                self.forced_due = None;
                if let Some(p) = self.pending.clone()
                    && self.lock.test(&p.hash).is_ok()
                {
                    self.update.installing = true;
                    self.lock.note(keyway_audit::Event::UpdateInstalled {
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
        self.presence_always = open;
    }

    /// Opens the physical-presence window (a button held on the lock)
    /// until `now_ms + duration_ms`.
    pub fn open_presence(&mut self, now_ms: u64, duration_ms: u64) {
        self.lock.note(keyway_audit::Event::PresenceWindowOpened {
            seconds: u16::try_from(duration_ms / 1000).unwrap_or(u16::MAX),
        });
        self.presence_until_ms = Some(now_ms.saturating_add(duration_ms));
        self.presence_opened_ms = Some(now_ms);
    }

    /// When the presence window closes (`None`: closed, or always open).
    pub(crate) fn presence_until_ms(&self) -> Option<u64> {
        if self.presence_always {
            None
        } else {
            self.presence_until_ms
        }
    }

    /// Adds a line to the lock's log.
    pub(crate) fn note_log(&mut self, line: String) {
        self.log.push(line);
    }

    /// Closes the presence window.
    pub fn close_presence(&mut self) {
        self.presence_until_ms = None;
    }

    /// Whether the presence window is open at `now_ms`.
    pub fn presence_open(&self, now_ms: u64) -> bool {
        self.presence_always || self.presence_until_ms.is_some_and(|t| now_ms < t)
    }

    /// The upload in progress.
    pub fn upload(&self) -> Option<&Upload> {
        self.upload.as_ref()
    }

    /// Log lines since the last call (refusals, resets, boots).
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// Whether the lock lost power while handling the last request (a cut
    /// planned with [`Lock::plan_power_cut`] fired): a real lock would not
    /// have answered, so the shell drops the response.
    pub fn lost_power(&self) -> bool {
        !self.lock.powered()
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
            self.presence_until_ms = None;
        }
        self.long_press_ms = None;
        // RAM is lost; the stored consent is not.
        self.update = UpdateStatus::default();
        self.export = None;
        self.export_peer = None;
        let r = self.lock.power_on();
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

    /// Runs a request the agent authorized (`by_owner`: an owner's
    /// session asked). OS resets are not here: the agent runs them
    /// ([`Server::agent_reset`]).
    fn dispatch(&mut self, r: &Request, by_owner: bool, now_ms: u64) -> Result<Body, Fail> {
        let h = r.header;
        let write = h.op == Op::Write;
        match (h.group, h.id) {
            (group::OS, os_cmd::ECHO) => {
                let d = get_text(&r.body, "d").map_err(inval)?.unwrap_or("");
                Ok(vec![(text("r"), text(d))])
            }
            (group::OS, os_cmd::PARAMS) if !write => Ok(vec![
                (text("buf_size"), Value::from(smp::MAX_FRAME as u64)),
                (text("buf_count"), Value::from(BUF_COUNT)),
            ]),
            (group::OS, os_cmd::INFO) if !write => {
                let f = get_text(&r.body, "format").map_err(inval)?.unwrap_or("s");
                self.info(f).map(|o| vec![(text("output"), text(&o))])
            }
            (group::IMAGE, img_cmd::STATE) if !write => Ok(self.state_body()),
            (group::IMAGE, img_cmd::STATE) => {
                let hash = get_bytes(&r.body, "hash").map_err(inval)?;
                let confirm = get_bool(&r.body, "confirm")
                    .map_err(inval)?
                    .unwrap_or(false);
                if confirm {
                    self.lock.confirm(hash)?;
                } else {
                    let hash =
                        hash.ok_or_else(|| inval("\"hash\" is required to test an image".into()))?;
                    if self.pending.as_ref().is_some_and(|p| p.hash[..] == *hash) {
                        // A test boot of the pending update is the consent
                        // of a person at the lock, or of the owner whose
                        // session asked (the agent let in nobody else).
                        let by = self.consent_by(by_owner);
                        self.consent(
                            if by_owner {
                                "an owner's test boot"
                            } else {
                                "a test boot asked for with the presence window open"
                            },
                            by,
                        );
                        // An owner's test boot resets at once; a stock
                        // tool's in the window is armed, and the reset it
                        // sends next boots it (the window allows one).
                        if let Some(Err(why)) = self.install(by_owner) {
                            return Err(Fail::Smp(
                                MgmtErr::BadState,
                                format!("{why} (consent kept: the lock installs by itself then)"),
                            ));
                        }
                    } else {
                        self.lock.test(hash)?;
                    }
                }
                Ok(self.state_body())
            }
            (group::IMAGE, img_cmd::UPLOAD) if write => {
                self.upload_chunk(&r.body, by_owner, now_ms)
            }
            (group::IMAGE, img_cmd::ERASE) if write => {
                let slot = get_u64(&r.body, "slot").map_err(inval)?;
                let slot = slot.map(|s| u8::try_from(s).unwrap_or(u8::MAX));
                // A refused erase (the running slot, a bad slot number)
                // changes nothing: the pending update, its consent and an
                // upload in progress stay.
                self.lock.erase(slot)?;
                self.upload = None;
                self.pending = None;
                self.clear_update();
                Ok(Vec::new())
            }
            (group::KEYWAY, _) => self.keyway(r, now_ms),
            (g, id) => Err(Fail::Smp(
                MgmtErr::NotSup,
                format!(
                    "group {g} command {id} ({}) is not supported",
                    if write { "write" } else { "read" }
                ),
            )),
        }
    }

    fn info(&self, format: &str) -> Result<String, Fail> {
        let release = match self.lock.running() {
            Some(s) => self.lock.version(s).unwrap_or_else(|| format!("slot{s}")),
            None => "recovery".to_owned(),
        };
        let all = "snrvbmpio";
        let mut want = [false; 9];
        for c in format.chars() {
            match c {
                'a' => want = [true; 9],
                c => match all.find(c) {
                    Some(i) => want[i] = true,
                    None => {
                        return Err(Fail::Os(
                            OS_INVALID_FORMAT,
                            MgmtErr::Inval,
                            format!("format character {c:?} is not one of {all}a"),
                        ));
                    }
                },
            }
        }
        let fields = [
            "Keyway".to_owned(),
            "keyway-lock".to_owned(),
            release,
            env!("CARGO_PKG_VERSION").to_owned(),
            String::new(),
            "nrf52840-sim".to_owned(),
            "cortex-m4".to_owned(),
            // The hardware platform: the simulator and the lock model.
            format!("keyway-sim/{}", self.model.name),
            "Keyway".to_owned(),
        ];
        Ok(fields
            .iter()
            .zip(want)
            .filter(|(f, w)| *w && !f.is_empty())
            .map(|(f, _)| f.as_str())
            .collect::<Vec<_>>()
            .join(" "))
    }

    fn state_body(&mut self) -> Body {
        let images = self
            .lock
            .views()
            .into_iter()
            .map(|v| {
                let mut m = vec![
                    (text("image"), Value::from(0u8)),
                    (text("slot"), Value::from(v.slot)),
                    (text("version"), text(&v.version)),
                    (text("hash"), Value::Bytes(v.hash.to_vec())),
                ];
                for (k, on) in [
                    ("bootable", v.bootable),
                    ("pending", v.pending),
                    ("confirmed", v.confirmed),
                    ("active", v.active),
                    ("permanent", false),
                ] {
                    m.push((text(k), Value::Bool(on)));
                }
                Value::Map(m)
            })
            .collect();
        vec![(text("images"), Value::Array(images))]
    }

    /// One upload request: `off`, `data`, and with `off` 0 `len` and
    /// optionally `sha`, `image`, `upgrade`.
    /// The manifest sequence number of the head `slot` stores (0: none).
    fn slot_sequence(&self, slot: u8) -> u64 {
        self.lock
            .head(slot)
            .and_then(|h| crate::suit::inspect(&h).ok().map(|i| i.manifest.sequence))
            .unwrap_or(0)
    }

    /// Logs an upload the installer refused for its image (`offered`: the
    /// sequence number its verified head carried).
    fn note_payload_rejection(&mut self, e: &ImgError, offered: Option<u64>) {
        if matches!(
            e.rc,
            img_rc::INVALID_HASH | img_rc::INVALID_IMAGE_DATA_OVERRUN | img_rc::INVALID_LENGTH
        ) {
            let sequence = offered.unwrap_or_else(|| {
                self.lock
                    .state()
                    .download
                    .map_or(0, |d| self.slot_sequence(d.slot))
            });
            self.lock.note(keyway_audit::Event::UpdateRejected {
                sequence,
                reason: keyway_audit::RejectReason::Payload,
            });
        }
    }

    /// A digest or size failure clears the journal's download record, so
    /// the same release never resumes on top of the bad bytes (after a
    /// restart too): it uploads again from its first byte.
    fn abandon_failed_download(&mut self, e: &ImgError) {
        if matches!(
            e.rc,
            img_rc::INVALID_HASH | img_rc::INVALID_IMAGE_DATA_OVERRUN | img_rc::INVALID_LENGTH
        ) && self.lock.powered()
            && let Err(why) = self.lock.abandon_download()
        {
            self.log
                .push(format!("clearing the failed download: {}", why.reason));
        }
    }

    fn upload_chunk(
        &mut self,
        body: &[(Value, Value)],
        by_owner: bool,
        now_ms: u64,
    ) -> Result<Body, Fail> {
        let off = get_u64(body, "off")
            .map_err(inval)?
            .ok_or_else(|| inval("\"off\" is missing".into()))?;
        let data = get_bytes(body, "data")
            .map_err(inval)?
            .ok_or_else(|| inval("\"data\" is missing".into()))?;
        if let Some(i) = get_u64(body, "image").map_err(inval)?
            && i > 1
        {
            return Err(ImgError::new(
                img_rc::INVALID_SLOT,
                MgmtErr::Inval,
                format!("image {i}: the lock has one image (0)"),
            )
            .into());
        }
        if off == 0 {
            let len = get_u64(body, "len")
                .map_err(inval)?
                .ok_or_else(|| inval("\"len\" is required with \"off\" 0".into()))?;
            if len == 0 || len > MAX_UPLOAD {
                return Err(ImgError::new(
                    img_rc::INVALID_IMAGE_TOO_LARGE,
                    MgmtErr::Inval,
                    format!("an upload of {len} bytes: the lock takes 1 to {MAX_UPLOAD}"),
                )
                .into());
            }
            let sha = match get_bytes(body, "sha").map_err(inval)? {
                None => None,
                Some(s) => Some(<[u8; 32]>::try_from(s).map_err(|_| {
                    ImgError::new(
                        img_rc::INVALID_HASH,
                        MgmtErr::Inval,
                        format!("\"sha\" has {} bytes, SHA-256 has 32", s.len()),
                    )
                })?),
            };
            // The same upload again: tell the client where to continue.
            if let Some(u) = self.upload.as_mut()
                && u.peer == self.peer
                && sha.is_some()
                && u.sha == sha
                && u.len == len
                && u.off > 0
            {
                u.by_owner |= by_owner;
                if by_owner && u.owner.is_none() {
                    u.owner = self.auth_key;
                }
                u.last_ms = now_ms;
                return Ok(vec![(text("off"), Value::from(u.off))]);
            }
            // Another peer's idle upload is replaced.
            if self.upload.as_ref().is_some_and(|u| u.peer != self.peer) {
                self.upload = None;
            }
            // A download the journal records (the upload in RAM was lost
            // to a power cut or a restart): continue it.
            if self.upload.is_none()
                && let Some((inst, head, image)) = self.lock.resume_download(data, len)
            {
                let mut hasher = Sha256::new();
                hasher.update(&head);
                hasher.update(&image);
                let off = (head.len() + image.len()) as u64;
                self.log.push(format!(
                    "upload resumed from the journal at byte {off} of {len}"
                ));
                self.upload = Some(Upload {
                    len,
                    sha,
                    off,
                    hasher,
                    head: Vec::new(),
                    installer: Some(device::Download::Full(Box::new(inst))),
                    by_owner,
                    peer: self.peer,
                    owner: self.auth_key.filter(|_| by_owner),
                    last_ms: now_ms,
                    sequence: crate::suit::inspect(&head)
                        .ok()
                        .map(|i| i.manifest.sequence),
                });
                return Ok(vec![(text("off"), Value::from(off))]);
            }
            self.upload = Some(Upload {
                len,
                sha,
                off: 0,
                hasher: Sha256::new(),
                head: Vec::new(),
                installer: None,
                by_owner,
                peer: self.peer,
                owner: self.auth_key.filter(|_| by_owner),
                last_ms: now_ms,
                sequence: None,
            });
        }
        let Some(u) = self.upload.as_mut() else {
            // No session (a reset or a restart lost it): start over.
            return Ok(vec![(text("off"), Value::from(0u8))]);
        };
        if off != u.off {
            // Out of order or repeated: the client continues from here.
            return Ok(vec![(text("off"), Value::from(u.off))]);
        }
        u.last_ms = now_ms;
        let end = off.saturating_add(data.len() as u64);
        if end > u.len {
            let e = ImgError::new(
                img_rc::INVALID_IMAGE_DATA_OVERRUN,
                MgmtErr::Inval,
                format!(
                    "data up to byte {end} overruns the declared length {}",
                    u.len
                ),
            );
            return Err(e.into());
        }
        if let Some(at) = self.cut_mid_upload {
            let at = at.unwrap_or(u.len / 2);
            if end > at {
                self.cut_mid_upload = None;
                self.lock.plan_power_cut(0, end);
                self.log.push(format!(
                    "power cut planned: the upload passes byte {at} (chunk {off}..{end})"
                ));
            }
        }
        let streaming = u.installer.is_some();
        let pending = self
            .pending
            .as_ref()
            .map(|p| (p.sequence, p.version.clone()));
        let result = feed(&mut self.lock, u, data, pending.as_ref());
        if !streaming && self.upload.as_ref().is_some_and(|u| u.installer.is_some()) {
            // The download began in the inactive slot: whatever waited
            // there for consent is gone.
            self.pending = None;
            self.clear_update();
        }
        if let Err(e) = result {
            let offered = self.upload.take().and_then(|u| u.sequence);
            self.note_payload_rejection(&e, offered);
            self.abandon_failed_download(&e);
            return Err(e.into());
        }
        let Some(u) = self.upload.as_mut() else {
            return Ok(Vec::new());
        };
        if u.off < u.len {
            return Ok(vec![(text("off"), Value::from(u.off))]);
        }
        // Complete.
        let Some(u) = self.upload.take() else {
            return Ok(Vec::new());
        };
        let len = u.len;
        // A lock in recovery runs nothing to protect: the upload is armed
        // at once. Otherwise it waits, unarmed, for consent.
        let arm = self.lock.running().is_none();
        let offered = u.sequence;
        let slot = finish(&mut self.lock, u, arm).inspect_err(|e| {
            self.note_payload_rejection(e, offered);
            self.abandon_failed_download(e);
        })?;
        // The head's sequence number, parsed when the upload began.
        let sequence = offered.unwrap_or_else(|| self.slot_sequence(slot));
        if arm {
            self.lock
                .note(keyway_audit::Event::UpdateInstalled { sequence, slot });
            self.log.push(format!(
                "upload of {len} bytes complete: slot {slot} armed (recovery); a reset boots it on trial"
            ));
        } else {
            self.clear_update();
            self.refresh_pending();
            self.log.push(format!(
                "upload of {len} bytes complete: slot {slot} holds sequence {sequence}, verified, awaiting consent"
            ));
            self.auto_consent();
            // PROFILE HOOK (forced): schedules the install on its own
            // timer (`tick`), no consent, no policy.
            if self.lock.profile == crate::profile::Profile::Forced {
                self.forced_due = Some(None);
            }
        }
        Ok(vec![
            (text("off"), Value::from(len)),
            (text("match"), Value::Bool(true)),
        ])
    }
}

/// Takes `data` at the upload's offset: buffers the head until it can be
/// verified, then streams into the installer. `pending`: the sequence
/// number and version of the update waiting for consent, which an upload
/// without an owner's `auth` may not replace with an older one.
fn feed(
    lock: &mut Lock,
    u: &mut Upload,
    data: &[u8],
    pending: Option<&(u64, String)>,
) -> Result<(), ImgError> {
    u.hasher.update(data);
    u.off += data.len() as u64;
    if let Some(inst) = u.installer.as_mut() {
        return lock.push(inst, data);
    }
    u.head.extend_from_slice(data);
    let need = usize::try_from(u.len)
        .unwrap_or(usize::MAX)
        .min(HEAD_WINDOW);
    if u.head.len() < need {
        return Ok(());
    }
    let trust = lock.update_trust();
    let mut state = lock.device_state();
    // PROFILE HOOK (downgrade): no anti-rollback floor.
    if lock.profile == crate::profile::Profile::Downgrade {
        state.sequence_floor = None;
    }
    let (inst, sequence) = begin(lock, u, &trust, &state, pending)?;
    u.sequence = sequence;
    u.installer = Some(inst);
    u.head = Vec::new();
    Ok(())
}

/// Verifies the buffered head and begins the download with it.
fn begin(
    lock: &mut Lock,
    u: &Upload,
    trust: &device::Trust,
    state: &keyway_suit::DeviceState,
    pending: Option<&(u64, String)>,
) -> Result<(device::Download, Option<u64>), ImgError> {
    use keyway_audit::{Event, RejectReason};
    // The head is verified once; only a refused head is inspected again,
    // for the sequence number and version the audit log's "offered"
    // record names.
    let offer_of = |m: &keyway_suit::Manifest<'_>| {
        (m.sequence, keyway_vendor::log::audit_version_of(m.version))
    };
    let verified = crate::suit::verify(&u.head, &trust.anchors, &trust.identity, state).map(|v| {
        (
            offer_of(&v.manifest),
            (v.payload, v.integrated, v.manifest_digest, v.delta),
        )
    });
    // PROFILE HOOK (unsigned): signatures that do not verify are ignored.
    let (offered, verified) = match verified {
        Ok((offer, v)) => (Some(offer), Ok(v)),
        Err(e) => {
            let inspected = crate::suit::inspect(&u.head);
            let offer = inspected.as_ref().ok().map(|i| offer_of(&i.manifest));
            let unsigned = lock.profile == crate::profile::Profile::Unsigned
                && matches!(
                    keyway_vendor::check::Check::of(&e),
                    keyway_vendor::check::Check::Signatures | keyway_vendor::check::Check::KeySet
                );
            match inspected {
                Ok(i) if unsigned => (
                    offer,
                    Ok((i.payload, i.integrated, i.manifest_digest, i.delta)),
                ),
                _ => (offer, Err(e)),
            }
        }
    };
    // The upload keeps the sequence number.
    let offered_sequence = offered.as_ref().map(|(s, _)| *s);
    let sequence = offered_sequence.unwrap_or(0);
    if let Some((sequence, version)) = offered {
        lock.note(Event::UpdateOffered { sequence, version });
    }
    let (payload, integrated, manifest_digest, delta) = verified.map_err(|e| {
        lock.note(Event::UpdateRejected {
            sequence,
            reason: device::reject_reason(&e),
        });
        let mut r = device::envelope_refusal(&e);
        if matches!(e, keyway_suit::Error::Malformed { .. }) && u.head.len() < u.len as usize {
            r.reason.push_str(&format!(
                " (within the first {} bytes, where the envelope head must end)",
                u.head.len()
            ));
        }
        r
    })?;
    let exp = payload.ok_or_else(|| {
        ImgError::new(
            img_rc::NO_IMAGE,
            MgmtErr::Inval,
            "the envelope's manifest names no image",
        )
    })?;
    let ip = integrated.ok_or_else(|| {
        ImgError::new(
            img_rc::INVALID_IMAGE_HEADER,
            MgmtErr::Inval,
            "the envelope does not carry its image (a detached payload cannot be uploaded)",
        )
    })?;
    let total = (ip.offset as u64).saturating_add(ip.len);
    if total != u.len {
        lock.note(Event::UpdateRejected {
            sequence,
            reason: RejectReason::Payload,
        });
        return Err(ImgError::new(
            img_rc::INVALID_LENGTH,
            MgmtErr::Inval,
            format!(
                "the envelope is {total} bytes (head {} + image {}), the upload declared {}",
                ip.offset, ip.len, u.len
            ),
        ));
    }
    if let Some(e) = downgrade_refusal(u.by_owner, sequence, pending) {
        lock.note(Event::UpdateRejected {
            sequence,
            reason: RejectReason::AntiRollback,
        });
        return Err(e);
    }
    let head = u.head.get(..ip.offset).unwrap_or(&[]);
    // A delta for another image than the running one: refused at the head,
    // before anything is written; the client sends the full image instead.
    if let Some(e) = delta.as_ref().and_then(|d| lock.delta_refusal(d)) {
        lock.note(Event::UpdateRejected {
            sequence,
            reason: RejectReason::Compatibility,
        });
        return Err(e);
    }
    lock.note(Event::UpdateVerified { sequence });
    let mut inst = lock.begin_download(&exp, delta.as_ref(), manifest_digest, head)?;
    lock.note(Event::DownloadStarted { sequence });
    let rest = u.head.get(ip.offset..).unwrap_or(&[]);
    lock.push(&mut inst, rest)?;
    Ok((inst, offered_sequence))
}

/// Why an upload of `sequence` may not begin: one made without an
/// owner's `auth` (the presence window, a stock MCUmgr tool) never
/// replaces a pending newer release with an older one. An owner may.
pub(crate) fn downgrade_refusal(
    by_owner: bool,
    sequence: u64,
    pending: Option<&(u64, String)>,
) -> Option<ImgError> {
    let (p, version) = pending?;
    (!by_owner && sequence < *p).then(|| {
        ImgError::new(
            img_rc::CURRENT_VERSION_IS_NEWER,
            MgmtErr::Inval,
            format!(
                "sequence {sequence} would replace the pending {version} (sequence {p}), which is newer; only an owner's signed upload may"
            ),
        )
    })
}

/// All bytes arrived: the file's SHA-256 must match `sha`, then the
/// installer checks the image digest and marks the slot pending.
fn finish(lock: &mut Lock, u: Upload, arm: bool) -> Result<u8, ImgError> {
    let got: [u8; 32] = u.hasher.finalize().into();
    if let Some(want) = u.sha
        && want != got
    {
        return Err(ImgError::new(
            img_rc::INVALID_HASH,
            MgmtErr::Inval,
            format!(
                "the upload's SHA-256 is {}, \"sha\" announced {}",
                keyway_vendor::keys::hex(&got),
                keyway_vendor::keys::hex(&want)
            ),
        ));
    }
    let inst = u.installer.ok_or_else(|| {
        ImgError::new(
            img_rc::INVALID_IMAGE_HEADER,
            MgmtErr::Inval,
            "the upload ended before its envelope head",
        )
    })?;
    let delta = matches!(inst, device::Download::Delta(_));
    let slot = if arm {
        lock.finish(inst)
    } else {
        lock.finish_unarmed(inst)
    }?;
    if delta {
        lock.note_delta_upload(slot, got);
    }
    Ok(slot)
}

/// The version a request was answered in (tests).
pub fn response_version(frame: &[u8]) -> Option<Version> {
    Header::decode(frame).ok().map(|h| h.smp_version())
}
