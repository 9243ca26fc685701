//! The lock firmware around the agent: what a lock keeps in RAM
//! ([`Lock`]) and its [`Device`] implementation ([`Shell`]), as a real
//! lock's firmware wires the device crates.
//!
//! * `keyway-agent`: [`Agent::handle`] takes every received SMP frame
//!   (pairing by setup code, the SIGMA-I handshake, sealed records with
//!   the commands in them), checks authority, limits and the owner
//!   [`keyway_agent::store`] (owners, consent, verifier, wrong-code
//!   count) on its NOR region, and answers; the firmware passes it the
//!   peer, the time, the lock's CSPRNG and the [`Shell`];
//! * the [`Shell`] serves what the agent authorizes and leaves to the
//!   lock: the image upload (`keyway-suit`, Ed25519 only, verifies the
//!   envelope's head from the first chunks; `keyway-device`'s
//!   [`Installer`] streams the payload into the inactive slot, unarmed),
//!   the release notes of the verified update (consent needs them served
//!   first), the owner's consent (the agent stores it, the shell arms the
//!   slot in the [`Journal`]) and the log export (`keyway-audit`'s
//!   [`Export`], signed by the device key, in chunks);
//! * outside the agent: `boot::boot` with [`VerifiedSlot`] at every
//!   reset, the self-test's `boot::confirm`, and the audit records of what
//!   the agent reports ([`Event`]).
//!
//! Factory provisioning (v1 installed into slot 0 and confirmed, the
//! pairing verifier in the owner store) is not lock code: the host runs
//! the same device crates (`firmware/lock-provision`; the on-target
//! harness's build.rs) and the lock starts from that flash image, as a
//! lock leaves the factory with its flash programmed.
//!
//! One NOR flash holds everything (journal, two slots, owner store, audit
//! log), laid out by the [`FlashMap`] the lock is opened on: the agent
//! and the shell each hold a [`Shared`] handle to it, as a lock's flash
//! driver is one peripheral used by both.
//!
//! The entry points the harness calls are `#[inline(never)]`: a device
//! calls each from one place (its event loop), while the harness calls
//! them from several measured closures, each of which would otherwise get
//! its own inlined copy and inflate the code figure.

mod image;
pub use image::CVES_MAX;
mod fail;
pub use fail::Fail;
mod pending;
pub use pending::{Ready, VERSION_MAX, VersionText};
mod serve;
mod shared;
pub use shared::{FlashError, Shared, SharedError};
mod upload;

// They read the image state too.
#[cfg(all(test, feature = "image-state"))]
mod tests;

use core::ops::Range;

use chacha20::ChaCha20Rng;
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use keyway_agent::agent::{
    Agent, Authority, Authorized, Config, Device, Event, Firmware, Now, Outcome, Pending, Press,
    Sensors, ServeError,
};
use keyway_agent::limits::PeerId;
use keyway_audit::{
    AuditLog, Ed25519Signer, Event as Audit, Export, LockMethod, RejectReason, Time,
};
use keyway_channel::SigningKey as KeyPair;
use keyway_device::boot::{self, Confirmation, Decision, SelfTest};
use keyway_device::install::{Arm, Installer, SlotLayout, Target};
use keyway_device::journal::{Journal, PersistentState, TrialState};
use keyway_device::manifest_area::{self, HEADER_LEN as HEADER};
use keyway_device::verified::{SlotInfo, VerifiedSlot, boot_floor};
use keyway_smp::cbor::Writer;
use keyway_smp::err::img_rc;
use keyway_smp::keyway_group::{self, Bolt, UpdateSummary};
use keyway_smp::{Message, MgmtErr, Refusal, Request, img};
use keyway_suit::{DeviceIdentity, DeviceState, TrustAnchors, Verified};
use sha2::{Digest, Sha256};

use crate::latch::Latch;
use crate::map::{FlashMap, SECTOR};

/// Sessions and handshakes the lock holds at once.
pub const SESSIONS: usize = 4;
/// The most envelope bytes before the payload that the lock buffers to
/// verify an upload's head (it keeps them for the release notes).
pub const HEAD_MAX: usize = 1024;
/// Export bytes per log answer.
pub const LOG_CHUNK: usize = 256;
/// The RTC value at the lock's clock 0 (for audit times).
const RTC_AT_ZERO: u64 = 1_795_564_800;
/// The lock model reported to owners.
const MODEL: &str = "keyway-qemu-lock";

/// An upload in progress (one at a time; the agent decides whose).
pub struct Upload<'a, F: NorFlash> {
    total: u64,
    /// The next offset wanted.
    pub next: u64,
    sha: Option<[u8; 32]>,
    hasher: Sha256,
    head: [u8; HEAD_MAX],
    head_len: usize,
    installer: Option<Installer<Shared<'a, F>>>,
    sequence: u64,
    manifest: [u8; 32],
    /// The head's release notes' version text.
    version: VersionText,
    /// Whether this upload came in an owner's session (only an owner may
    /// replace a pending newer release with an older one).
    by_owner: bool,
}

/// The reason a consented update waits, in words.
const POSTPONED_LOCKED: &str = "postponed: the bolt is locked; unlock the door to install";

/// An export in progress.
struct Exporting {
    export: Export,
    pos: u64,
    len: u64,
}

/// The lock around the agent: the keys and trust, the opened journal and
/// audit log, the upload, the pending update and the export.
pub struct Shell<'a, F: NorFlash> {
    flash: Shared<'a, F>,
    anchors: TrustAnchors,
    identity: DeviceIdentity,
    /// Where the flash keeps what.
    map: FlashMap,
    layout: SlotLayout,
    signer: Ed25519Signer,
    /// The update journal.
    pub journal: Journal<Shared<'a, F>>,
    /// The audit log.
    pub log: AuditLog<Shared<'a, F>>,
    /// The boot counter (audit times).
    boots: u32,
    /// The time of the frame being handled.
    now_ms: u64,
    /// The upload in progress.
    pub upload: Upload<'a, F>,
    /// The verified update waiting for (or armed by) consent.
    pub pending: Option<Ready>,
    exporting: Option<Exporting>,
    /// The bolt, keypad and sensors.
    pub latch: Latch,
    /// The running image's version text (the build's).
    pub version: &'static str,
    /// The running image's manifest (the boot's check).
    pub running: Option<SlotInfo>,
    /// The running image's envelope digest.
    pub running_digest: Option<[u8; 32]>,
    /// The running image's version text (its signed release notes').
    pub running_version: VersionText,
    /// The owners' setting: a consented update installs only while the
    /// bolt is withdrawn (the agent's store; copied at every frame).
    pub needs_unlocked: bool,
    /// A reset was accepted: the application resets after sending.
    pub reset_armed: bool,
    /// An install was armed: the owner's consent is spent, and the lock
    /// clears it from the store ([`Lock::spend_consent`]).
    consent_spent: bool,
    /// Why the upload's head was refused (for the audit log).
    reject: Option<RejectReason>,
    /// The wall clock (seconds since 1970) at the lock's clock 0 (the
    /// RTC's reading at power-on).
    pub rtc_at_zero: u64,
}

/// The lock's RAM: the agent, the shell, the CSPRNG.
pub struct Lock<'a, F: NorFlash> {
    /// The agent (`None` only while power-on builds it).
    agent: Option<Agent<Shared<'a, F>, SESSIONS>>,
    /// The agent's `Device`.
    pub shell: Shell<'a, F>,
    rng: ChaCha20Rng,
}

/// A boot: the bootloader's decision and the booted slot's manifest.
pub struct Booted {
    /// The bootloader's decision.
    pub decision: Decision,
    /// The booted slot's manifest, as the running image reads it.
    pub running: Option<SlotInfo>,
}

/// The device key from its seed.
fn device_key<E>(seed: [u8; 32]) -> Result<KeyPair, Fail<E>> {
    // The all-zero seed refused, as the audit log's signer refuses it.
    if seed == [0; 32] {
        return Err(Fail::State("device seed"));
    }
    Ok(KeyPair::from_bytes(&seed))
}

/// The agent (re)started on its store at power-on and at every reset:
/// built in this frame and moved into `agent` once (one copy of
/// `Agent::new` linked; a chain of returned `Result<Agent>`s would put
/// several 2.8 KB copies on the reset's stack).
#[inline(never)]
fn start_agent<'a, F: NorFlash>(
    agent: &mut Option<Agent<Shared<'a, F>, SESSIONS>>,
    flash: Shared<'a, F>,
    map: &FlashMap,
    seed: [u8; 32],
) -> Result<(), Fail<F::Error>> {
    *agent = None;
    let key = device_key(seed)?;
    *agent = Some(Agent::new(
        flash,
        map.store_region(),
        key,
        Config::default(),
        0,
    )?);
    Ok(())
}

impl<'a, F: NorFlash> Lock<'a, F> {
    /// Power on, into `slot` (the lock's RAM, which a device would keep
    /// in a static), on the flash laid out as `map`: the trust anchor made from the vendor's raw Ed25519
    /// key, the agent (its owner store opened), the journal and the audit
    /// log opened from the flash; the RAM-only state fresh. Not inlined,
    /// so its temporaries leave the stack when it returns. The lock then
    /// runs [`Lock::boot`].
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub fn open_into(
        slot: &mut Option<Lock<'a, F>>,
        map: &FlashMap,
        flash: Shared<'a, F>,
        root_key: &[u8],
        identity: DeviceIdentity,
        device_seed: [u8; 32],
        rng: ChaCha20Rng,
        boots: u32,
    ) -> Result<(), Fail<F::Error>> {
        let anchors =
            keyway_suit::PublicKey::from_raw(root_key).and_then(|k| TrustAnchors::new(&[k], 1))?;
        let layout = map.layout();
        let mut f = flash;
        *slot = Some(Lock {
            agent: None,
            shell: Shell {
                journal: Journal::open(&mut f, layout.journal)?,
                log: AuditLog::open(&mut f, map.audit_region())?,
                signer: Ed25519Signer::from_seed(device_seed).ok_or(Fail::State("device seed"))?,
                flash,
                anchors,
                identity,
                map: *map,
                layout,
                boots,
                now_ms: 0,
                upload: Upload {
                    total: 0,
                    next: 0,
                    sha: None,
                    hasher: Sha256::new(),
                    head: [0; HEAD_MAX],
                    head_len: 0,
                    installer: None,
                    sequence: 0,
                    manifest: [0; 32],
                    version: VersionText::EMPTY,
                    by_owner: false,
                },
                pending: None,
                exporting: None,
                latch: Latch::default(),
                version: "",
                running: None,
                running_digest: None,
                running_version: VersionText::EMPTY,
                needs_unlocked: true,
                reset_armed: false,
                consent_spent: false,
                reject: None,
                rtc_at_zero: RTC_AT_ZERO,
            },
            rng,
        });
        match slot {
            Some(lock) => start_agent(&mut lock.agent, flash, map, device_seed),
            None => Err(Fail::State("power on")),
        }
    }

    /// A reset, in place (the lock's RAM is reused, as on a device): the
    /// agent restarted on its store, the journal and audit log reopened
    /// from the flash, everything else back to power-on values.
    #[inline(never)]
    pub fn reset(
        &mut self,
        seed: [u8; 32],
        rng: ChaCha20Rng,
        boots: u32,
    ) -> Result<(), Fail<F::Error>> {
        let s = &mut self.shell;
        start_agent(&mut self.agent, s.flash, &s.map, seed)?;
        s.journal = Journal::open(&mut s.flash, s.layout.journal)?;
        s.log = AuditLog::open(&mut s.flash, s.map.audit_region())?;
        s.boots = boots;
        s.upload.installer = None;
        s.upload.total = 0;
        s.upload.head_len = 0;
        s.pending = None;
        s.exporting = None;
        self.rng = rng;
        Ok(())
    }

    /// The bootloader's decision (`boot::boot` with `VerifiedSlot`), logged.
    #[inline(never)]
    pub fn boot(&mut self, now_ms: u64) -> Result<Booted, Fail<F::Error>> {
        self.shell.boot(now_ms)
    }

    /// A press of the lock's button (a person at the lock: the presence
    /// window opens for pairing).
    #[inline(never)]
    pub fn button(&mut self, now_ms: u64) -> Result<(), Fail<F::Error>> {
        Ok(self.agent_mut()?.button(now_ms, Press::Short)?)
    }

    /// One frame received from `peer`: the agent's dispatch, its answer
    /// in `out`; what it reports is recorded in the audit log.
    #[inline(never)]
    pub fn handle(&mut self, peer: PeerId, now_ms: u64, frame: &[u8], out: &mut [u8]) -> Outcome {
        let s = &mut self.shell;
        s.now_ms = now_ms;
        let now = Now {
            ms: now_ms,
            time: s.time(now_ms),
        };
        let Some(agent) = self.agent.as_mut() else {
            return Outcome {
                len: 0,
                event: Event::None,
            };
        };
        s.needs_unlocked = agent.state().settings().install_needs_unlocked;
        let o = agent.handle(peer, now, &mut self.rng, s, frame, out);
        if let Event::OwnerPaired { key_id } = o.event {
            // The owner is in the store already; a full log does not undo
            // the pairing.
            let _ = s.audit(&Audit::OwnerPaired { owner: key_id });
        }
        // A store that cannot be written keeps the consent; the next
        // frame tries again.
        let _ = self.spend_consent();
        o
    }

    /// The owner's consented update installs if the policy now allows it
    /// (call it whenever the bolt is withdrawn):
    /// [`Shell::install_if_allowed`], then the consent it spent is
    /// cleared from the store ([`Lock::spend_consent`]).
    pub fn install_if_allowed(&mut self) -> Result<(), Fail<F::Error>> {
        self.shell.install_if_allowed();
        self.spend_consent()
    }

    /// An armed install spends the owner's consent: it is cleared from
    /// the store at once, as keyway-lock does, so that a trial that
    /// reverts (a failed self-test, or a crash that lock-boot reverts
    /// before any self-test runs) is never installed again on that
    /// consent: offered again, it waits for a new one.
    pub(crate) fn spend_consent(&mut self) -> Result<(), Fail<F::Error>> {
        if core::mem::take(&mut self.shell.consent_spent)
            && let Some(agent) = self.agent.as_mut()
        {
            agent.clear_consent()?;
        }
        Ok(())
    }

    /// The agent.
    pub fn agent(&self) -> Option<&Agent<Shared<'a, F>, SESSIONS>> {
        self.agent.as_ref()
    }

    /// The agent, to press its button or close its window.
    pub fn agent_mut(&mut self) -> Result<&mut Agent<Shared<'a, F>, SESSIONS>, Fail<F::Error>> {
        self.agent.as_mut().ok_or(Fail::State("no agent"))
    }

    /// The journal's state.
    pub fn journal_state(&self) -> &PersistentState {
        self.shell.journal.state()
    }

    /// The export in progress: bytes served and its length (the quiet
    /// build, which has no client, follows the export with it).
    pub fn export_progress(&self) -> (u64, u64) {
        self.shell
            .exporting
            .as_ref()
            .map_or((0, 0), |e| (e.pos, e.len))
    }

    /// The application started (the bootloader ran `boot::boot` and
    /// loaded it): the running slot re-verified from its stored manifest
    /// (its sequence number and manifest digest for the image state), the
    /// boot and a trial logged. The bootloader never writes the audit log
    /// (it holds no device key); a revert it made shows here as a boot
    /// of the other slot with no trial.
    #[inline(never)]
    pub fn started(&mut self, now_ms: u64) -> Result<Option<SlotInfo>, Fail<F::Error>> {
        let s = &mut self.shell;
        s.now_ms = now_ms;
        let state = *s.journal.state();
        let slot = running_slot(&state);
        let info = s.check_slot(slot);
        s.running = info;
        s.running_digest = info.as_ref().and_then(|i| s.envelope_digest(slot, i));
        s.running_version = s.stored_version(slot);
        self.recover_pending(&state);
        let s = &mut self.shell;
        let booted = info.map(|_| (slot, s.running_version.audit()));
        let trial = match state.trial {
            TrialState::Trial {
                slot,
                attempts_left,
            } => Some((slot, attempts_left)),
            _ => None,
        };
        s.audit_boot(booted, trial)?;
        Ok(info)
    }

    /// At start: a verified update the other slot holds above the running
    /// release and the floor (uploaded before a reset or a power cut, not
    /// installed) is the pending update again, as its bytes are still in
    /// the flash; with the owner's consent if the store holds one for it
    /// (it then waits for the install policy, as before the cut).
    fn recover_pending(&mut self, state: &PersistentState) {
        let s = &mut self.shell;
        s.pending = None;
        if !matches!(state.trial, TrialState::None | TrialState::Confirmed) {
            return;
        }
        let slot = 1 - running_slot(state).min(1);
        let Some(info) = s.check_slot(slot) else {
            return;
        };
        let above = s.running.as_ref().map_or(0, |r| r.sequence);
        if info.sequence <= above.max(state.floor.unwrap_or(0)) {
            return;
        }
        let Some(digest) = s.envelope_digest(slot, &info) else {
            return;
        };
        let consented = self
            .agent
            .as_ref()
            .and_then(|a| a.consent())
            .is_some_and(|c| c.digest == digest);
        let version = s.stored_version(slot);
        s.pending = Some(Ready {
            slot,
            sequence: info.sequence,
            digest,
            manifest: info.manifest_digest,
            matched: true,
            notes_offered: false,
            armed: false,
            consented,
            version,
        });
    }

    /// The audit log's signed export, chunk by chunk: `off` 0 starts it;
    /// returns the chunk's length in `out` and the export's length.
    pub fn export_chunk(
        &mut self,
        now_ms: u64,
        off: u64,
        out: &mut [u8],
    ) -> Result<(usize, u64), Fail<F::Error>> {
        self.shell.now_ms = now_ms;
        self.shell.log_chunk(off, out)
    }

    /// Whether the running image is on trial.
    pub fn on_trial(&self) -> bool {
        matches!(self.shell.journal.state().trial, TrialState::Trial { .. })
    }

    /// The self-test failed on trial: the release's stored manifest is
    /// erased first (it no longer verifies, so no start offers it as the
    /// pending update again; uploaded anew, it is verified afresh), then
    /// `boot::confirm` with the failure leaves no attempt (the bootloader
    /// reverts at the next reset; a cut between the two reverts too, the
    /// slot unverified); the consent is spent; logged. The caller resets.
    #[inline(never)]
    pub fn self_test_failed(&mut self, now_ms: u64) -> Result<(), Fail<F::Error>> {
        let s = &mut self.shell;
        let TrialState::Trial { slot, .. } = s.journal.state().trial else {
            return Err(Fail::State("no trial"));
        };
        let area = s.manifest_area(slot).ok_or(Fail::State("slot"))?;
        let erased = s.flash.erase(area, area + SECTOR as u32);
        let fail = SelfTest {
            motor: true,
            sensors: true,
            comms: false,
        };
        let r = boot::confirm(
            &mut s.journal,
            &mut s.flash,
            fail,
            Confirmation {
                sequence: 0,
                keyset_version: 0,
            },
        );
        if !matches!(r, Err(boot::ConfirmError::SelfTestFailed { .. })) {
            return Err(Fail::State("self-test failure not recorded"));
        }
        if let Some(agent) = self.agent.as_mut() {
            agent.clear_consent()?;
        }
        let s = &mut self.shell;
        s.now_ms = now_ms;
        let to_slot = s.journal.state().active_slot;
        s.audit(&Audit::Reverted {
            to_slot,
            reason: keyway_audit::RevertReason::SelfTestFailed,
        })?;
        erased.map_err(|_| Fail::State("erasing the failed release's manifest"))
    }

    /// The running image's self-test passed: `boot::confirm` raises the
    /// floor; the consent is spent; logged.
    #[inline(never)]
    pub fn confirm(&mut self, now_ms: u64, sequence: u64) -> Result<u8, Fail<F::Error>> {
        let s = &mut self.shell;
        let pass = SelfTest::PASS;
        let slot = boot::confirm(
            &mut s.journal,
            &mut s.flash,
            pass,
            Confirmation {
                sequence,
                keyset_version: 0,
            },
        )
        .map_err(|_| Fail::State("confirm"))?;
        if let Some(agent) = self.agent.as_mut() {
            agent.clear_consent()?;
        }
        s.now_ms = now_ms;
        s.audit(&Audit::Confirmed { slot, sequence })?;
        Ok(slot)
    }
}

impl<F: NorFlash> Shell<'_, F> {
    /// The audit log's time for the lock's clock `now_ms`.
    pub fn time(&self, now_ms: u64) -> Time {
        Time {
            rtc: self.rtc_at_zero + now_ms / 1000,
            boot: self.boots,
        }
    }

    /// Records `event` in the audit log at `now_ms`.
    pub fn record(&mut self, now_ms: u64, event: &Audit) -> Result<u32, Fail<F::Error>> {
        self.now_ms = now_ms;
        self.audit(event)
    }

    fn audit(&mut self, event: &Audit) -> Result<u32, Fail<F::Error>> {
        let t = self.time(self.now_ms);
        Ok(self.log.append(&mut self.flash, &self.signer, t, event)?)
    }

    /// The bootloader's decision (`boot::boot` with `VerifiedSlot`, the
    /// upload's head buffer lent for the stored manifests), then the boot
    /// (and a trial) logged in the audit log.
    fn boot(&mut self, now_ms: u64) -> Result<Booted, Fail<F::Error>> {
        self.now_ms = now_ms;
        let (decision, running) = self.with_check(|check, flash, journal| {
            let decision = boot::boot(journal, flash, check)?;
            let running = match decision.boot {
                boot::Boot::Slot(s) => check.check(flash, s).ok(),
                boot::Boot::Recovery => None,
            };
            Ok::<_, Fail<F::Error>>((decision, running))
        })?;
        let booted = match (decision.boot, running) {
            (boot::Boot::Slot(slot), Some(_)) => Some((slot, self.stored_version(slot).audit())),
            _ => None,
        };
        let trial = match decision.reason {
            boot::Reason::StartTrial {
                slot,
                attempts_left,
            } => Some((slot, attempts_left)),
            _ => None,
        };
        self.audit_boot(booted, trial)?;
        Ok(Booted { decision, running })
    }

    /// Logs a boot: `booted`, the slot and version it runs (when it
    /// booted a verified image), then `trial`, the slot on trial and its
    /// boots left (when it is on one).
    fn audit_boot(
        &mut self,
        booted: Option<(u8, keyway_audit::Version)>,
        trial: Option<(u8, u8)>,
    ) -> Result<(), Fail<F::Error>> {
        if let Some((slot, version)) = booted {
            self.audit(&Audit::Boot { slot, version })?;
        }
        if let Some((slot, attempts_left)) = trial {
            self.audit(&Audit::OnTrial {
                slot,
                attempts_left,
            })?;
        }
        Ok(())
    }
}

const fn refused(rc: MgmtErr, refusal: Option<Refusal>, group_rc: Option<u16>) -> ServeError {
    ServeError {
        rc,
        refusal,
        group_rc,
    }
}

const NO_MEM: ServeError = refused(MgmtErr::NoMem, None, None);

impl<F: NorFlash> Device for Shell<'_, F> {
    /// The latch's readings (fed by the control channel).
    fn sensors(&self) -> Sensors {
        self.latch.sensors(self.now_ms)
    }

    fn firmware(&self) -> Firmware<'_> {
        let state = self.journal.state();
        let update = self.pending.as_ref().map(|p| {
            let (state, why) = p.state();
            UpdateSummary {
                sequence: p.sequence,
                version: p.version.as_str(),
                state,
                reason: why.map(|_| POSTPONED_LOCKED),
                why,
                cves: 0,
                highest: None,
            }
        });
        Firmware {
            model: MODEL,
            version: self.version,
            slot: Some(u64::from(running_slot(state))),
            image: self.running_digest,
            trial: !matches!(state.trial, TrialState::None | TrialState::Confirmed),
            update,
            pending: self.pending.as_ref().map(|p| Pending {
                digest: p.digest,
                sequence: p.sequence,
                notes_offered: p.notes_offered,
            }),
        }
    }

    /// The motor: the latch moves; logged.
    fn drive_bolt(&mut self, to: Bolt) -> Bolt {
        if let Some(e) = self.latch.drive(to, LockMethod::OwnerCommand) {
            let _ = self.audit(&e);
        }
        self.install_if_allowed();
        self.latch.bolt
    }

    /// A reset by the person at the lock (the window) is their consent to
    /// a verified upload waiting unarmed, as MCUmgr's tools reset after an
    /// upload: the slot is armed first; the application resets after the
    /// answer.
    fn reset_requested(&mut self, by: Authority) -> Result<(), ServeError> {
        if matches!(by, Authority::Window) && self.pending.as_ref().is_some_and(|p| !p.armed) {
            self.arm();
        }
        self.reset_armed = true;
        Ok(())
    }

    /// The agent stored the owner's consent: the pending update installs
    /// as soon as the policy allows ([`Shell::install_if_allowed`]); a
    /// refused update is dropped and its slot's manifest erased, so that
    /// no reset offers it again.
    fn consent_stored(&mut self, digest: Option<[u8; 32]>) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        if digest != Some(p.digest) {
            let (sequence, slot) = (p.sequence, p.slot);
            let _ = self.audit(&Audit::ConsentRefused { sequence });
            self.pending = None;
            if let Some(area) = self.manifest_area(slot) {
                let _ = self.flash.erase(area, area + SECTOR as u32);
            }
            return;
        }
        p.consented = true;
        self.install_if_allowed();
    }

    fn serve(&mut self, call: Authorized<'_>, w: &mut Writer<'_>) -> Result<(), ServeError> {
        self.serve_request(call, w)
    }
}

impl<F: NorFlash> Shell<'_, F> {
    /// The upload in progress: the next offset wanted and its length.
    pub fn upload_progress(&self) -> Option<(u64, u64)> {
        (self.upload.total > 0).then_some((self.upload.next, self.upload.total))
    }

    /// The owner's consented update installs once the policy allows it
    /// (the bolt withdrawn, unless the owners' setting says otherwise): it
    /// is armed and the lock resets into the trial after the answer it is
    /// sending (the application acts on `reset_armed`). Called when consent
    /// is stored and whenever the bolt is withdrawn.
    pub fn install_if_allowed(&mut self) {
        let waiting = self
            .pending
            .as_ref()
            .is_some_and(|p| p.consented && !p.armed);
        if !waiting || (self.needs_unlocked && self.latch.bolt == Bolt::Locked) {
            return;
        }
        self.arm();
        self.reset_armed = self.pending.as_ref().is_some_and(|p| p.armed);
    }

    /// `slot` re-verified from its stored manifest (the boot rule), the
    /// upload's head buffer lent for it.
    fn check_slot(&mut self, slot: u8) -> Option<SlotInfo> {
        self.with_check(|check, flash, _| check.check(flash, slot).ok())
    }

    /// Arms the pending update (consent): the journal's trial is pending,
    /// the next reset boots it on trial.
    fn arm(&mut self) {
        let Some(p) = self.pending.as_ref() else {
            return;
        };
        let (slot, sequence) = (p.slot, p.sequence);
        let state = *self.journal.state();
        let armed = self
            .journal
            .commit(
                &mut self.flash,
                &PersistentState {
                    trial: TrialState::Pending { slot },
                    ..state
                },
            )
            .is_ok();
        if let Some(p) = self.pending.as_mut() {
            p.armed = armed;
        }
        self.consent_spent |= armed;
        let _ = self.audit(&Audit::ConsentGiven { sequence });
        if armed {
            let _ = self.audit(&Audit::UpdateInstalled { sequence, slot });
        }
    }
}

impl<'a, F: NorFlash> Shell<'a, F> {
    /// Runs `f` with the bootloader's slot check (`VerifiedSlot` with the
    /// journal's floor; the upload's head buffer lent for the stored
    /// manifests), the flash and the journal.
    fn with_check<T>(
        &mut self,
        f: impl FnOnce(&mut VerifiedSlot<'_, 256>, &mut Shared<'a, F>, &mut Journal<Shared<'a, F>>) -> T,
    ) -> T {
        let state = *self.journal.state();
        let mut check = VerifiedSlot::<256>::new(
            &self.layout,
            &self.anchors,
            &self.identity,
            &state,
            None,
            &mut self.upload.head,
        );
        f(&mut check, &mut self.flash, &mut self.journal)
    }
}

/// The slot the running image was loaded from: the trial's, else the
/// active one.
pub fn running_slot(state: &PersistentState) -> u8 {
    match state.trial {
        TrialState::Trial { slot, .. } => slot,
        _ => state.active_slot,
    }
}
