//! The lock around `keyway-agent`: the agent is the lock's brain for
//! everything an owner or a person at the lock does over the radio
//! (pairing by setup code, sessions, sealed requests, authority, the
//! presence window, consent, settings, owners, resets, the factory reset,
//! per-peer limits, whose upload a chunk is), and this module is what a
//! firmware would put around it: the [`Device`] the agent asks
//! (sensors, the running firmware, the bolt's motor, and the commands the
//! agent authorizes but leaves to the lock: OS info, the image group,
//! release notes, the log export), the flash its store lives on, and the
//! acting on its [`Event`]s.
//!
//! **The store.** The agent's owners, consent, settings, the setup
//! code's verifier and the wrong-code count live in its own small NOR
//! flash ([`StoreFlash`]: 4 pages of 4 KiB with the nRF52840's timing),
//! which the shell keeps in the state directory as `agent-store.bin`
//! ([`STORE_FILE`], 0600). The lock's main flash (`flash.bin`) is full
//! (journal, two 500 KiB slots, the audit log); a second part is what a
//! lock with an external or reserved flash area does, and a store of its
//! own cannot be torn by the installer. The file is written after every
//! agent call that changed it, before the answer goes out (the agent
//! wrote the record before it answered: nothing it acknowledged lives
//! only in RAM).
//!
//! **Consent** has one home: the agent's store. An owner's consent
//! command is run and stored by the agent; the shell then tells the
//! installer ([`Server::adopt_consent`]), which arms the update when the
//! policy (battery, bolt) allows. Consent the lock grants itself (a
//! person at the lock who tests or resets into the pending update in the
//! window, the owners' `auto_install_cve` setting) is written to the
//! store by the shell ([`Agent::grant_consent`]); consent the installer
//! is done with (armed, refused, erased) is cleared there
//! ([`Agent::clear_consent`]). After every boot the installer takes the
//! stored consent again if it names the pending update. Settings the
//! same way: the agent stores them, the installer's policy reads them.
//!
//! **Provisioning.** The setup code's SPAKE2+ verifier that
//! `keyway-lock provision` made (`setup-verifier`) is given to the agent
//! at start ([`AgentLock::new`]) when its store holds another (or none).
//!
//! **The device core** stays the existing [`Server`] (installer, boot,
//! confirm, audit log, policy, the bolt's behaviour): the agent's
//! authorized requests reach it through `Server::serve_authorized`,
//! which skips the server's own authority checks and upload binding (the
//! agent made them).
//!
//! **The firmware's view is read lazily.** The agent asks
//! [`Device::firmware`] only for the answers that show it (status, lock,
//! unlock, consent). `LockDevice` reads it the first time it is asked in
//! a call, and again only after a command that may change it: the running
//! image's version and digest from one parse of its stored head (no image
//! read: the digest is the manifest's, which the boot verified), the
//! pending update from the installer's own record (made from the upload's
//! parse of the head, `Server::refresh_pending`). An upload's frames read
//! nothing for it: through the agent, an upload parses its head as often
//! as the device core alone (3 times) and reads its delta's base once
//! (keyway-lock `tests/server.rs`).

use keyway_agent::agent::{
    Agent, Authority, Authorized, Config, Device, Event, Firmware, Now, OUT_LEN, Pending, Press,
    Sensors, ServeError,
};
use keyway_agent::limits::PeerId;
use keyway_agent::store::{self, Consent, GrantedBy};
use keyway_audit::Time;
use keyway_channel::SigningKey as KeyPair;
use keyway_channel::StoredVerifier;
use keyway_sim::{Geometry, SimFlash};
use keyway_smp::cbor::Writer;
use keyway_smp::keyway_group::{self, Bolt, Door, UpdateSummary};
use keyway_smp::{MgmtErr, Version};
use sha2::{Digest as _, Sha256};
use std::cell::OnceCell;

use crate::server::{ConsentBy, ConsentChange, Fail, Server};

/// The agent store's flash: its own small part.
pub type StoreFlash = SimFlash<4, 4096>;
/// Pages of the store's flash (the store's ring uses them all).
pub const STORE_PAGES: u32 = 4;
/// The store's file in the state directory.
pub const STORE_FILE: &str = "agent-store.bin";
/// Session slots: sessions and handshakes at once. The owner's client
/// opens a session per command (`keyway device` is one process per
/// command) and the table never evicts a live session (idle limit 120 s),
/// so 4 slots (the firmware harness's figure) refuse the fifth command
/// within two minutes with `SessionsFull`; the simulator takes 32 until
/// the channel frees an owner's own idle sessions (notes/shell.md).
pub const SLOTS: usize = 32;

/// The store's region: the whole store flash.
pub fn store_region() -> store::Config {
    store::Config::new(0, STORE_PAGES)
}

/// The store flash's geometry.
pub fn store_geometry() -> Geometry {
    // 4 pages always make a valid nRF52840-timed part.
    Geometry::nrf52840_timing(STORE_PAGES).unwrap_or_else(|_| Geometry::nrf52840())
}

/// A fresh, erased store flash.
pub fn blank_store() -> Result<StoreFlash, String> {
    StoreFlash::new(store_geometry()).map_err(|e| format!("the agent store's flash: {e:?}"))
}

/// The store flash read back from its file's bytes.
pub fn store_from_bytes(bytes: Vec<u8>) -> Result<StoreFlash, String> {
    crate::device::sized_flash(store_geometry(), bytes, "the agent store", "its flash")
}

/// The transport peer as the agent's limits know it: a hash of the
/// source address.
pub fn peer_id(addr: std::net::SocketAddr) -> PeerId {
    let mut h = Sha256::new();
    h.update(addr.to_string().as_bytes());
    let d: [u8; 32] = h.finalize().into();
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    PeerId(u64::from_le_bytes(id))
}

/// The agent on `store` (the store region, `key`, `config`); the error
/// names the store as `what`.
fn open_agent(
    store: StoreFlash,
    key: &KeyPair,
    config: Config,
    now_ms: u64,
    what: &str,
) -> Result<Agent<StoreFlash, SLOTS>, String> {
    Agent::new(store, store_region(), key.clone(), config, now_ms)
        .map_err(|e| format!("{what}: {e}"))
}

/// The agent's configuration for the lock's `profile`: the defaults, with
/// the `open-pairing` profile's deliberate flaws switched on
/// ([`keyway_agent::agent::flaws`]).
pub fn agent_config(profile: &crate::profile::Profile) -> Config {
    let mut c = Config::default();
    if *profile == crate::profile::Profile::OpenPairing {
        c.flaws = keyway_agent::agent::flaws::Flaws::OPEN_PAIRING;
    }
    c
}

/// The lock: the agent and the device core it drives.
pub struct AgentLock {
    agent: Agent<StoreFlash, SLOTS>,
    server: Server,
    /// The lock's device key, for the agent a boot starts again.
    device_key: KeyPair,
    /// The store flash's operation count when it was last saved.
    saved_ops: u64,
}

impl std::fmt::Debug for AgentLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLock")
            .field("owners", &self.agent.state().owner_count())
            .finish_non_exhaustive()
    }
}

/// What one datagram did.
#[derive(Debug)]
pub struct Handled {
    /// The answer (empty: send nothing).
    pub answer: Vec<u8>,
    /// What the agent reported.
    pub event: Event,
}

impl AgentLock {
    /// The agent on `store` (its region: [`store_region`]) with the
    /// lock's `device_key`, around `server` (booted), at `now_ms`.
    /// `verifier`: the setup code's, from provisioning; stored if the
    /// store holds another or none. The installer takes the stored
    /// consent and settings.
    pub fn new(
        mut server: Server,
        store: StoreFlash,
        device_key: KeyPair,
        verifier: Option<&StoredVerifier>,
        now_ms: u64,
    ) -> Result<Self, String> {
        let config = agent_config(&server.core().profile);
        let mut agent = open_agent(store, &device_key, config, now_ms, "the agent's store")?;
        if let Some(v) = verifier {
            let want = keyway_agent::agent::store_verifier(v);
            if agent.state().verifier() != Some(&want) {
                agent
                    .provision(v)
                    .map_err(|e| format!("storing the setup code's verifier: {e}"))?;
            }
        }
        server.use_agent_store();
        // Whatever opening and provisioning wrote is saved by the first
        // `take_store_changes` (the flash counts operations from its load).
        let mut lock = AgentLock {
            agent,
            server,
            device_key,
            saved_ops: 0,
        };
        lock.adopt_store(false);
        lock.sync_consent();
        Ok(lock)
    }

    /// The device core.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The device core, mutably (the control socket, the clock's tick).
    pub fn server_mut(&mut self) -> &mut Server {
        &mut self.server
    }

    /// The agent.
    pub fn agent(&self) -> &Agent<StoreFlash, SLOTS> {
        &self.agent
    }

    /// The store flash's bytes if they changed since the last call (the
    /// shell writes them to [`STORE_FILE`]).
    pub fn take_store_changes(&mut self) -> Option<&[u8]> {
        let ops = self.agent.flash().ops();
        if ops == self.saved_ops {
            return None;
        }
        self.saved_ops = ops;
        Some(self.agent.flash().as_bytes())
    }

    /// The lock's button: `presence` is a short press, `long-press` a
    /// long one (a factory reset needs it in the window). The device
    /// core's window follows the agent's for what it still shows.
    pub fn button(&mut self, now_ms: u64, press: Press) -> Result<(), String> {
        self.agent
            .button(now_ms, press)
            .map_err(|e| format!("the button: storing the cleared wrong-code count: {e}"))?;
        match press {
            Press::Short => self
                .server
                .open_presence(now_ms, Config::default().window_ms),
            Press::Long => {
                if !self.server.presence_open(now_ms) {
                    self.server
                        .open_presence(now_ms, Config::default().window_ms);
                }
                self.server.long_press(now_ms);
            }
        }
        Ok(())
    }

    /// One datagram from `peer` at `now`: the agent's answer, after the
    /// event was acted on (except a reset, which the shell runs after
    /// sending: [`Server::poll_reset`], then [`AgentLock::after_boot`]).
    pub fn handle(&mut self, peer: PeerId, now: Now, frame: &[u8]) -> Handled {
        let mut out = vec![0u8; OUT_LEN];
        let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
        let outcome = {
            let mut device = LockDevice::new(&mut self.server, now.ms);
            self.agent
                .handle(peer, now, &mut rng, &mut device, frame, &mut out)
        };
        out.truncate(outcome.len);
        self.act(outcome.event);
        self.sync_consent();
        Handled {
            answer: out,
            event: outcome.event,
        }
    }

    /// After the device core booted (a reset, a power cut) at `now_ms`:
    /// the agent boots too (its RAM is gone: sessions, handshakes, the
    /// pairing run, the window, the rate limits; it reopens its store),
    /// and the installer takes the stored consent again.
    pub fn after_boot(&mut self, now_ms: u64) -> Result<(), String> {
        // Written before: the store's flash is what survives.
        self.sync_consent();
        let config = agent_config(&self.server.core().profile);
        let key = &self.device_key;
        let placeholder = open_agent(blank_store()?, key, config, now_ms, "the agent's store")?;
        let flash = std::mem::replace(&mut self.agent, placeholder).into_flash();
        let after = "the agent's store after a boot";
        self.agent = open_agent(flash, &self.device_key, config, now_ms, after)?;
        self.adopt_store(false);
        self.sync_consent();
        Ok(())
    }

    /// The person at the lock closed the presence window.
    pub fn close_window(&mut self) {
        self.agent.close_window();
        self.server.close_presence();
    }

    /// After the device core ran on its own (the clock's tick, the control
    /// socket): its consent changes go to the store.
    pub fn after_tick(&mut self) {
        self.sync_consent();
    }

    fn adopt_store(&mut self, announce: bool) {
        self.server.adopt_settings(self.agent.state().settings());
        let digest = self.agent.consent().map(|c| c.digest);
        self.server.adopt_consent(digest, announce);
    }

    /// Writes the installer's consent changes to the store.
    fn sync_consent(&mut self) {
        let Some(change) = self.server.take_consent_change() else {
            return;
        };
        let r = match change {
            ConsentChange::Cleared => self.agent.clear_consent(),
            ConsentChange::Granted {
                digest,
                sequence,
                by,
            } => self.agent.grant_consent(&Consent {
                digest,
                sequence,
                granted_by: match by {
                    ConsentBy::Owner(k) => GrantedBy::Owner(k),
                    ConsentBy::Presence => GrantedBy::Presence,
                    ConsentBy::AutoInstall => GrantedBy::AutoInstall,
                },
                time: Time {
                    rtc: crate::state::wall_clock_secs(),
                    boot: self.server.core().boot_count().unwrap_or(0),
                },
            }),
        };
        if let Err(e) = r {
            self.server
                .note_log(format!("storing consent in the agent's store: {e}"));
        }
    }

    fn act(&mut self, event: Event) {
        let hex = |k: &[u8; 8]| keyway_vendor::keys::hex(k);
        match event {
            Event::None | Event::Unlocked { .. } | Event::Locked { .. } => {}
            // Decided inside the call (`reset_requested`).
            Event::Reset { .. } => self.server.request_reset(),
            Event::OwnerPaired { key_id } => {
                self.server
                    .core_mut()
                    .note(keyway_audit::Event::OwnerPaired { owner: key_id });
                self.server.close_presence();
                self.server
                    .note_log(format!("owner {} paired with the setup code", hex(&key_id)));
            }
            Event::OwnerRemoved { key_id, by } => {
                self.server
                    .core_mut()
                    .note(keyway_audit::Event::OwnerRemoved { owner: key_id });
                self.server.note_log(format!(
                    "owner {} removed by owner {}",
                    hex(&key_id),
                    hex(&by)
                ));
            }
            // The installer took it inside the call (`consent_stored`).
            Event::Consent { .. } => {}
            Event::Settings { .. } => self.adopt_store(false),
            Event::FactoryReset => self.server.agent_factory_reset(),
            Event::PairingAttempt { failures } => self.server.note_log(format!(
                "pairing attempt: {failures} unconfirmed guess(es) at the setup code"
            )),
            Event::SessionOpened { owner } => self
                .server
                .note_log(format!("owner {} opened a session", hex(&owner))),
        }
    }
}

/// The [`Device`] the agent sees: the device core at one moment.
struct LockDevice<'a> {
    server: &'a mut Server,
    now_ms: u64,
    /// The firmware's view, read when the agent first asks for it in this
    /// call, forgotten after a command that may change it.
    view: OnceCell<FirmwareView>,
}

/// The running image and the pending update as `status` shows them
/// (owned strings the [`Firmware`] borrows).
struct FirmwareView {
    version: String,
    /// The running image's SHA-256 (not the envelope's): what a delta
    /// release's base must be, so the owner's client can choose a delta
    /// or the full image.
    image: Option<[u8; 32]>,
    update: Option<UpdateView>,
}

/// The pending update as `status` shows it.
struct UpdateView {
    sequence: u64,
    version: String,
    state: keyway_group::UpdateState,
    reason: Option<String>,
    why: Option<keyway_group::Postponement>,
    cves: u64,
    highest: Option<keyway_group::Severity>,
}

impl FirmwareView {
    /// Reads it: one parse of the running slot's stored head (its version
    /// and its image digest, as the manifest names them; no image read),
    /// and the installer's record of the pending update (no parse).
    fn read(server: &Server) -> Self {
        let lock = server.core();
        let (version, image) = match lock.running() {
            None => ("recovery".to_owned(), None),
            Some(s) => {
                let head = lock.head(s);
                let i = head
                    .as_deref()
                    .and_then(|h| crate::suit::inspect_slot(h, s).ok());
                match i {
                    Some(i) => (
                        i.manifest
                            .version
                            .map_or_else(|| "0.0.0".to_owned(), |v| v.to_string()),
                        i.delta.map(|d| d.out).or(i.payload).map(|p| *p.digest),
                    ),
                    None => (format!("slot{s}"), None),
                }
            }
        };
        let update =
            server
                .update_view()
                .map(
                    |(sequence, version, state, reason, cves, highest)| UpdateView {
                        sequence,
                        version,
                        state: keyway_group::UpdateState::parse(state)
                            .unwrap_or(keyway_group::UpdateState::AwaitingConsent),
                        reason: reason.as_ref().map(crate::policy::postponed_sentence),
                        why: reason.map(keyway_group::Postponement::from),
                        cves,
                        highest: highest.and_then(|h| {
                            keyway_group::Severity::parse(crate::policy::severity_name(h))
                        }),
                    },
                );
        FirmwareView {
            version,
            image,
            update,
        }
    }
}

impl<'a> LockDevice<'a> {
    fn new(server: &'a mut Server, now_ms: u64) -> Self {
        LockDevice {
            server,
            now_ms,
            view: OnceCell::new(),
        }
    }

    /// Forgets the firmware's view (a command may have changed it): the
    /// next [`Device::firmware`] reads it again.
    fn refresh(&mut self) {
        self.view.take();
    }
}

impl Device for LockDevice<'_> {
    fn sensors(&self) -> Sensors {
        let l = self.server.mechanism();
        let battery = self.server.model().battery;
        let mv = l.battery_mv().unwrap_or(battery.full_mv);
        Sensors {
            bolt: match l.bolt() {
                crate::lock::Bolt::Locked => Bolt::Locked,
                crate::lock::Bolt::Unlocked => Bolt::Unlocked,
            },
            door: match l.door() {
                crate::lock::Door::Open => Door::Open,
                crate::lock::Door::Closed => Door::Closed,
            },
            battery_mv: u64::from(mv),
            battery_mwh: battery.mwh(mv),
            tamper: l.tamper(),
            lockout_s: l
                .lockout_remaining(self.now_ms)
                .map_or(0, |ms| ms.div_ceil(1000)),
        }
    }

    fn firmware(&self) -> Firmware<'_> {
        let view = self.view.get_or_init(|| FirmwareView::read(self.server));
        let lock = self.server.core();
        let trial = !matches!(
            lock.state().trial,
            keyway_device::journal::TrialState::None
                | keyway_device::journal::TrialState::Confirmed
        );
        Firmware {
            model: self.server.model().name,
            version: &view.version,
            slot: lock.running().map(u64::from),
            image: view.image,
            trial,
            update: view.update.as_ref().map(|u| UpdateSummary {
                sequence: u.sequence,
                version: &u.version,
                state: u.state,
                reason: u.reason.as_deref(),
                why: u.why,
                cves: u.cves,
                highest: u.highest,
            }),
            pending: self.server.pending().map(|p| Pending {
                digest: p.hash,
                sequence: p.sequence,
                notes_offered: self.server.notes_offered(),
            }),
        }
    }

    fn drive_bolt(&mut self, to: Bolt) -> Bolt {
        let (latch, device) = self.server.mechanism_mut();
        for e in latch.owner(to == Bolt::Locked, self.now_ms) {
            device.note(e);
        }
        let bolt = match self.server.mechanism().bolt() {
            crate::lock::Bolt::Locked => Bolt::Locked,
            crate::lock::Bolt::Unlocked => Bolt::Unlocked,
        };
        self.refresh();
        bolt
    }

    fn reset_requested(&mut self, by: Authority) -> Result<(), ServeError> {
        let r = self
            .server
            .agent_reset(matches!(by, Authority::Window), by.owner(), self.now_ms);
        self.refresh();
        r.map_err(|_| ServeError::rc(MgmtErr::BadState))
    }

    fn consent_stored(&mut self, digest: Option<[u8; 32]>) {
        match digest {
            Some(d) => self.server.adopt_consent(Some(d), true),
            None => self.server.refuse_pending(),
        }
        self.refresh();
    }

    fn serve(&mut self, call: Authorized<'_>, w: &mut Writer<'_>) -> Result<(), ServeError> {
        // The typed request as the device core reads it: the same frame.
        let mut frame = vec![0u8; keyway_smp::MAX_FRAME];
        let n = call
            .request
            .frame(&mut frame, Version::V2, 0)
            .map_err(|_| ServeError::rc(MgmtErr::Inval))?;
        let legacy = crate::smp::decode_request(frame.get(..n).unwrap_or(&[]))
            .map_err(|_| ServeError::rc(MgmtErr::Inval))?;
        let result = self
            .server
            .serve_authorized(&legacy, call.by.owner(), self.now_ms);
        self.refresh();
        // The agent answers with codes (and Keyway's typed refusal); the
        // reason in words goes to the lock's log.
        let (g, id) = (legacy.header.group, legacy.header.id);
        match &result {
            Ok(_) => {}
            Err(Fail::Smp(rc, why)) => self.server.note_log(format!(
                "group {g} command {id}: rc {} ({rc:?}): {why}",
                *rc as u8
            )),
            Err(Fail::Os(rc, _, why)) => self
                .server
                .note_log(format!("os group command {id}: rc {rc}: {why}")),
            Err(Fail::Img(e)) => self.server.note_log(format!(
                "image group command {id}: rc {}: {}",
                e.rc, e.reason
            )),
        }
        match result {
            Ok(body) => {
                let mut bytes = Vec::new();
                ciborium::into_writer(&ciborium::Value::Map(body), &mut bytes)
                    .map_err(|_| ServeError::rc(MgmtErr::NoMem))?;
                w.raw(&bytes).map_err(|_| ServeError::rc(MgmtErr::MsgSize))
            }
            Err(Fail::Smp(rc, _)) => Err(ServeError::rc(rc)),
            // The group's own code goes to SMPv2 clients as `err`.
            Err(Fail::Os(group_rc, rc, _)) => Err(ServeError {
                rc,
                refusal: None,
                group_rc: Some(group_rc),
            }),
            Err(Fail::Img(e)) => Err(ServeError {
                rc: e.v1,
                refusal: e.refusal,
                group_rc: Some(e.rc),
            }),
        }
    }
}
