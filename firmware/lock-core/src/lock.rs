//! The lock firmware around the agent: what a lock keeps in RAM
//! ([`Lock`]) and its [`Device`] implementation ([`Shell`]), as a real
//! lock's firmware wires the device crates.
//!
//! * `keyway-agent`: [`Agent::handle`] takes every received SMP frame
//!   (pairing by setup code, the SIGMA-I handshake, sealed records with
//!   the commands in them), checks authority, limits and the owner
//!   [`store`](keyway_agent::store) (owners, consent, verifier, wrong-code
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
//! pairing verifier in the owner store) is not lock code: build.rs runs
//! the same device crates on the host and the lock starts from that flash
//! image, as a lock leaves the factory with its flash programmed.
//!
//! One NOR flash holds everything (journal, two slots, owner store, audit
//! log): the agent and the shell each hold a [`Shared`] handle to it, as
//! a lock's flash driver is one peripheral used by both.
//!
//! The entry points the harness calls are `#[inline(never)]`: a device
//! calls each from one place (its event loop), while the harness calls
//! them from several measured closures, each of which would otherwise get
//! its own inlined copy and inflate the code figure.

use core::cell::RefCell;
use core::ops::Range;

use chacha20::ChaCha20Rng;
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use keyway_agent::agent::{
    Agent, Authority, Config, Device, Event, Firmware, Now, Outcome, Pending, Press, Sensors,
    ServeError,
};
use keyway_agent::limits::PeerId;
use keyway_agent::store;
use keyway_audit::{
    AuditLog, Ed25519Signer, Event as Audit, Export, LockMethod, RejectReason, Time,
};
use keyway_channel::SigningKey as KeyPair;
use keyway_device::boot::{self, Confirmation, Decision, SelfTest};
use keyway_device::install::{Installer, SlotLayout};
use keyway_device::journal::{self, Journal, PersistentState, TrialState};
use keyway_device::verified::{SlotInfo, VerifiedSlot};
use keyway_smp::cbor::Writer;
use keyway_smp::err::img_rc;
use keyway_smp::kw::{self, Bolt, UpdateState, UpdateSummary};
use keyway_smp::{Message, MgmtErr, Refusal, Request, img};
use keyway_suit::{DeviceIdentity, DeviceState, TrustAnchors, Verified};
use sha2::{Digest, Sha256};

use crate::latch::Latch;
use crate::map::{FLASH_LEN, IMAGE_MAX, SECTOR, WORD, audit_region, layout, store_region};

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

/// A handle to the lock's one NOR flash (the agent's store and the
/// shell's journal, slots and audit log share it; every operation borrows
/// it for its own duration only).
pub struct Shared<'a, F>(pub &'a RefCell<F>);

impl<F> Clone for Shared<'_, F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F> Copy for Shared<'_, F> {}

/// A flash operation through a [`Shared`] handle failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedError<E> {
    /// The flash was borrowed already (never, on a single-threaded lock
    /// where no flash operation calls another).
    Busy,
    /// The driver's error.
    Flash(E),
}

impl<E: NorFlashError> NorFlashError for SharedError<E> {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SharedError::Busy => NorFlashErrorKind::Other,
            SharedError::Flash(e) => e.kind(),
        }
    }
}

/// The error of the lock's flash handle over the driver `F`.
pub type FlashError<F> = SharedError<<F as ErrorType>::Error>;

impl<F: NorFlash> Shared<'_, F> {
    fn with<T>(&self, f: impl FnOnce(&mut F) -> Result<T, F::Error>) -> Result<T, FlashError<F>> {
        let mut flash = self.0.try_borrow_mut().map_err(|_| SharedError::Busy)?;
        f(&mut flash).map_err(SharedError::Flash)
    }
}

impl<F: NorFlash> ErrorType for Shared<'_, F> {
    type Error = FlashError<F>;
}

impl<F: NorFlash> ReadNorFlash for Shared<'_, F> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.with(|f| f.read(offset, bytes))
    }
    fn capacity(&self) -> usize {
        FLASH_LEN
    }
}

impl<F: NorFlash> NorFlash for Shared<'_, F> {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.with(|f| f.erase(from, to))
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.with(|f| f.write(offset, bytes))
    }
}

/// What failed in a step outside the agent (`E`: the flash driver's
/// error).
#[derive(Debug)]
pub enum Fail<E> {
    /// The owner store.
    Store(store::Error<SharedError<E>>),
    /// The audit log.
    Audit(keyway_audit::Error<SharedError<E>>),
    /// The journal.
    Journal(journal::Error<SharedError<E>>),
    /// The verifier.
    Suit(keyway_suit::Error),
    /// A state the step needs is missing.
    State(&'static str),
}

macro_rules! from {
    ($($v:ident($t:ty)),*) => {$(
        impl<E> From<$t> for Fail<E> {
            fn from(e: $t) -> Self {
                Fail::$v(e)
            }
        }
    )*};
}
from!(
    Store(store::Error<SharedError<E>>),
    Audit(keyway_audit::Error<SharedError<E>>),
    Journal(journal::Error<SharedError<E>>),
    Suit(keyway_suit::Error)
);

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
    /// Where the head's release notes put the version and the notes.
    texts: (Range<usize>, Range<usize>),
}

/// The verified, complete update waiting for (or armed by) consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The slot it is in.
    pub slot: u8,
    /// Its manifest's sequence number.
    pub sequence: u64,
    /// The envelope's SHA-256, as the lock computed it.
    pub digest: [u8; 32],
    /// Its manifest digest (the image state's hash).
    pub manifest: [u8; 32],
    /// Whether the client's `sha` equalled it.
    pub matched: bool,
    /// Its release notes were served to an owner.
    pub notes_offered: bool,
    /// Consent armed it (the journal's trial is pending).
    pub armed: bool,
    /// Where its version and notes texts lie in the kept head.
    version: Range<usize>,
    notes: Range<usize>,
}

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
    /// A reset was accepted: the application resets after sending.
    pub reset_armed: bool,
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
    seed: [u8; 32],
) -> Result<(), Fail<F::Error>> {
    *agent = None;
    let key = device_key(seed)?;
    *agent = Some(Agent::new(
        flash,
        store_region(),
        key,
        Config::default(),
        0,
    )?);
    Ok(())
}

impl<'a, F: NorFlash> Lock<'a, F> {
    /// Power on, into `slot` (the lock's RAM, which a device would keep
    /// in a static): the trust anchor made from the vendor's raw Ed25519
    /// key, the agent (its owner store opened), the journal and the audit
    /// log opened from the flash; the RAM-only state fresh. Not inlined,
    /// so its temporaries leave the stack when it returns. The lock then
    /// runs [`Lock::boot`].
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub fn open_into(
        slot: &mut Option<Lock<'a, F>>,
        flash: Shared<'a, F>,
        root_key: &[u8],
        identity: DeviceIdentity,
        device_seed: [u8; 32],
        rng: ChaCha20Rng,
        boots: u32,
    ) -> Result<(), Fail<F::Error>> {
        let anchors =
            keyway_suit::PublicKey::from_raw(root_key).and_then(|k| TrustAnchors::new(&[k], 1))?;
        let layout = layout();
        let mut f = flash;
        *slot = Some(Lock {
            agent: None,
            shell: Shell {
                journal: Journal::open(&mut f, layout.journal)?,
                log: AuditLog::open(&mut f, audit_region())?,
                signer: Ed25519Signer::from_seed(device_seed).ok_or(Fail::State("device seed"))?,
                flash,
                anchors,
                identity,
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
                    texts: (0..0, 0..0),
                },
                pending: None,
                exporting: None,
                latch: Latch::default(),
                version: "",
                running: None,
                running_digest: None,
                reset_armed: false,
                reject: None,
                rtc_at_zero: RTC_AT_ZERO,
            },
            rng,
        });
        match slot {
            Some(lock) => start_agent(&mut lock.agent, flash, device_seed),
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
        start_agent(&mut self.agent, s.flash, seed)?;
        s.journal = Journal::open(&mut s.flash, s.layout.journal)?;
        s.log = AuditLog::open(&mut s.flash, audit_region())?;
        s.boots = boots;
        s.upload.installer = None;
        s.upload.total = 0;
        s.upload.head_len = 0;
        s.pending = None;
        s.exporting = None;
        self.rng = rng;
        Ok(())
    }

    /// The bootloader's decision, logged ([`Shell::boot`]).
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
        let o = agent.handle(peer, now, &mut self.rng, s, frame, out);
        if let Event::OwnerPaired { key_id } = o.event {
            // The owner is in the store already; a full log does not undo
            // the pairing.
            let _ = s.audit(&Audit::OwnerPaired { owner: key_id });
        }
        o
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
        let info = {
            let mut check = VerifiedSlot::<256>::new(
                &s.layout,
                &s.anchors,
                &s.identity,
                &state,
                None,
                &mut s.upload.head,
            );
            check.check(&mut s.flash, slot).ok()
        };
        s.running = info;
        s.running_digest = info.as_ref().and_then(|i| s.envelope_digest(slot, i));
        if let Some(i) = &info {
            let version = keyway_audit::Version::new(1, i.sequence as u8, 0);
            s.audit(&Audit::Boot { slot, version })?;
        }
        if let TrialState::Trial {
            slot,
            attempts_left,
        } = state.trial
        {
            s.audit(&Audit::OnTrial {
                slot,
                attempts_left,
            })?;
        }
        Ok(info)
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

    /// The self-test failed on trial: `boot::confirm` with the failure
    /// leaves no attempt (the bootloader reverts at the next reset);
    /// logged. The caller resets.
    #[inline(never)]
    pub fn self_test_failed(&mut self, now_ms: u64) -> Result<(), Fail<F::Error>> {
        let s = &mut self.shell;
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
        s.now_ms = now_ms;
        let to_slot = s.journal.state().active_slot;
        s.audit(&Audit::Reverted {
            to_slot,
            reason: keyway_audit::RevertReason::SelfTestFailed,
        })?;
        Ok(())
    }

    /// The running image's self-test passed: `boot::confirm` raises the
    /// floor; the consent is spent; logged.
    #[inline(never)]
    pub fn confirm(&mut self, now_ms: u64, sequence: u64) -> Result<u8, Fail<F::Error>> {
        let s = &mut self.shell;
        let pass = SelfTest {
            motor: true,
            sensors: true,
            comms: true,
        };
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
        let state = *self.journal.state();
        let (decision, running) = {
            let mut check = VerifiedSlot::<256>::new(
                &self.layout,
                &self.anchors,
                &self.identity,
                &state,
                None,
                &mut self.upload.head,
            );
            let decision = boot::boot(&mut self.journal, &mut self.flash, &mut check)?;
            let running = match decision.boot {
                boot::Boot::Slot(s) => check.check(&mut self.flash, s).ok(),
                boot::Boot::Recovery => None,
            };
            (decision, running)
        };
        if let (boot::Boot::Slot(slot), Some(info)) = (decision.boot, running) {
            let version = keyway_audit::Version::new(1, info.sequence as u8, 0);
            self.audit(&Audit::Boot { slot, version })?;
        }
        if let boot::Reason::StartTrial {
            slot,
            attempts_left,
        } = decision.reason
        {
            self.audit(&Audit::OnTrial {
                slot,
                attempts_left,
            })?;
        }
        Ok(Booted { decision, running })
    }

    /// An upload chunk: the head buffered until it holds the envelope up
    /// to its payload, verified, the installer begun; payload bytes pushed;
    /// the last chunk finishes the slot unarmed and makes it the pending
    /// update. A wrong offset gets the offset wanted (as MCUmgr does). Any
    /// failure drops the upload (and the installer's download record with
    /// it) and is logged. Returns the next offset and, at the end, whether
    /// the client's SHA-256 matched.
    fn upload(&mut self, u: &img::Upload<'_>) -> Result<(u64, Option<bool>), u16> {
        if u.off == 0 {
            let Some(len) = u.len else {
                return Err(img_rc::INVALID_LENGTH);
            };
            let capacity = u64::from(IMAGE_MAX) + SECTOR as u64;
            // The client's SHA-256 of the file (optional in MCUmgr).
            let sha: Option<[u8; 32]> = match u.sha {
                Some(s) => Some(s.try_into().map_err(|_| img_rc::INVALID_HASH)?),
                None => None,
            };
            if len > capacity {
                return Err(img_rc::INVALID_LENGTH);
            }
            self.upload.installer = None;
            self.upload.total = len;
            self.upload.next = 0;
            self.upload.sha = sha;
            self.upload.hasher = Sha256::new();
            self.upload.head_len = 0;
            self.upload.texts = (0..0, 0..0);
            self.pending = None;
        }
        if u.off != self.upload.next || self.upload.total == 0 {
            return Ok((self.upload.next, None));
        }
        if u.off + u.data.len() as u64 > self.upload.total {
            self.upload.total = 0;
            return Err(img_rc::INVALID_LENGTH);
        }
        self.reject = None;
        let r = self.take(u.data);
        if r.is_err() {
            self.upload.installer = None;
            self.upload.total = 0;
            let reason = self.reject.take().unwrap_or(RejectReason::Payload);
            let _ = self.audit(&Audit::UpdateRejected {
                sequence: self.upload.sequence,
                reason,
            });
        }
        r
    }

    fn take(&mut self, data: &[u8]) -> Result<(u64, Option<bool>), u16> {
        self.upload.hasher.update(data);
        self.upload.next += data.len() as u64;
        let installer_err = |_| img_rc::INVALID_HASH;
        // The installer is kept in the shell between chunks; its flash
        // handle type is the shell's (see `Upload::installer`).
        if let Some(installer) = self.upload.installer.as_mut() {
            installer
                .push(&mut self.flash, &mut self.journal, data)
                .map_err(installer_err)?;
        } else {
            // The head is buffered up to HEAD_MAX (a chunk may be larger:
            // its rest goes to the installer once the head verified).
            let from = self.upload.head_len;
            let k = data.len().min(HEAD_MAX - from);
            self.upload.head[from..from + k].copy_from_slice(&data[..k]);
            self.upload.head_len = from + k;
            self.begin()?;
            let rest = &data[k..];
            if !rest.is_empty() {
                // No installer yet: no envelope head fits HEAD_MAX (not
                // a SUIT envelope, e.g. an unsigned binary).
                let Some(installer) = self.upload.installer.as_mut() else {
                    self.reject = Some(RejectReason::Decoding);
                    return Err(img_rc::INVALID_IMAGE_HEADER);
                };
                installer
                    .push(&mut self.flash, &mut self.journal, rest)
                    .map_err(installer_err)?;
            }
        }
        if self.upload.next < self.upload.total {
            return Ok((self.upload.next, None));
        }
        let installer = self
            .upload
            .installer
            .take()
            .ok_or(img_rc::INVALID_IMAGE_HEADER)?;
        let slot = installer
            .finish_unarmed(&mut self.flash, &mut self.journal)
            .map_err(installer_err)?;
        let digest: [u8; 32] = core::mem::take(&mut self.upload.hasher).finalize().into();
        let matched = self.upload.sha.is_none_or(|s| s == digest);
        let sequence = self.upload.sequence;
        let manifest = self.upload.manifest;
        let (version, notes) = self.upload.texts.clone();
        self.pending = Some(Ready {
            slot,
            sequence,
            digest,
            manifest,
            matched,
            notes_offered: false,
            armed: false,
            version,
            notes,
        });
        self.audit(&Audit::UpdateVerified { sequence })
            .map_err(|_| img_rc::FLASH_WRITE_FAILED)?;
        Ok((self.upload.next, Some(matched)))
    }

    /// The identity an upload is verified for: the inactive slot.
    fn identity_for_upload(&self) -> DeviceIdentity {
        let mut identity = self.identity;
        identity.slot = Some(u64::from(1 - self.journal.state().active_slot.min(1)));
        identity
    }

    /// Once the buffered head reaches into the payload: verify it (update
    /// rule: above the floor, for the inactive slot), begin the installer
    /// with the head, push the payload bytes already received.
    #[inline(never)]
    fn begin(&mut self) -> Result<(), u16> {
        let head = &self.upload.head[..self.upload.head_len];
        let Ok(envelope) = keyway_suit::Envelope::decode(head) else {
            return Ok(()); // not yet: the head is still arriving
        };
        let Some(p) = envelope.payload else {
            return Err(img_rc::INVALID_IMAGE_HEADER);
        };
        let identity = self.identity_for_upload();
        let state = DeviceState {
            sequence_floor: self.journal.state().floor,
            keyset: None,
        };
        let mut verified = Verified::empty();
        if let Err(e) =
            keyway_suit::verify_envelope_into(&mut verified, head, &self.anchors, &identity, &state)
        {
            // The reason, to the client (the image group's code) and to
            // the audit log.
            let (rc, reason) = match e {
                keyway_suit::Error::Rollback { .. } => {
                    (img_rc::CURRENT_VERSION_IS_NEWER, RejectReason::AntiRollback)
                }
                keyway_suit::Error::BadSignature { .. }
                | keyway_suit::Error::BelowThreshold { .. }
                | keyway_suit::Error::ManifestDigestMismatch
                | keyway_suit::Error::UnsupportedAuthentication(_) => {
                    (img_rc::INVALID_HASH, RejectReason::Signatures)
                }
                keyway_suit::Error::WrongVendor { .. } | keyway_suit::Error::WrongClass { .. } => {
                    (img_rc::INVALID_IMAGE_HEADER, RejectReason::Compatibility)
                }
                _ => (img_rc::INVALID_IMAGE_HEADER, RejectReason::Decoding),
            };
            self.upload.sequence = 0;
            self.reject = Some(reason);
            return Err(rc);
        }
        let expectation = verified
            .payload
            .as_ref()
            .ok_or(img_rc::INVALID_IMAGE_HEADER)?;
        let mut installer = Installer::begin_with_manifest(
            &mut self.flash,
            &mut self.journal,
            &self.layout,
            expectation,
            verified.manifest_digest,
            &head[..p.offset],
        )
        .map_err(|_| img_rc::FLASH_WRITE_FAILED)?;
        installer
            .push(&mut self.flash, &mut self.journal, &head[p.offset..])
            .map_err(|_| img_rc::INVALID_HASH)?;
        let sequence = verified.sequence;
        self.upload.manifest = verified.manifest_digest;
        // The notes are served from the kept head (up to the payload).
        let base = head.as_ptr() as usize;
        let span = |s: Option<&str>| {
            s.map_or(0..0, |s| {
                let from = (s.as_ptr() as usize).wrapping_sub(base);
                from..from + s.len()
            })
        };
        let texts = verified
            .notes
            .map_or((0..0, 0..0), |n| (span(n.version), span(n.description)));
        drop(verified);
        self.upload.sequence = sequence;
        self.upload.texts = texts;
        self.upload.installer = Some(installer);
        self.upload.head_len = p.offset;
        let _ = self.audit(&Audit::DownloadStarted { sequence });
        Ok(())
    }

    fn text(&self, r: &Range<usize>) -> &str {
        self.upload
            .head
            .get(r.clone())
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// The export's next chunk at `off` (0 starts a new export; its length
    /// is counted first by a dry run of the same export).
    fn log_chunk(&mut self, off: u64, out: &mut [u8]) -> Result<(usize, u64), Fail<F::Error>> {
        if off == 0 {
            let export = self.log.export(self.time(self.now_ms));
            let mut probe = export.clone();
            let mut len = 0u64;
            loop {
                let n = probe.fill(&self.log, &mut self.flash, &self.signer, out)?;
                if n == 0 {
                    break;
                }
                len += n as u64;
            }
            self.exporting = Some(Exporting {
                export,
                pos: 0,
                len,
            });
        }
        let e = self
            .exporting
            .as_mut()
            .filter(|e| e.pos == off)
            .ok_or(Fail::State("export offset"))?;
        let n = e
            .export
            .fill(&self.log, &mut self.flash, &self.signer, out)?;
        e.pos += n as u64;
        Ok((n, e.len))
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
        let update = self.pending.as_ref().map(|p| UpdateSummary {
            sequence: p.sequence,
            version: self.text(&p.version),
            state: if p.armed {
                UpdateState::Installing
            } else {
                UpdateState::AwaitingConsent
            },
            reason: None,
            why: None,
            cves: 0,
            highest: None,
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

    /// The agent stored the owner's consent: arm the pending slot (the
    /// journal's trial is pending: the next reset boots it on trial), or
    /// drop a refused update.
    fn consent_stored(&mut self, digest: Option<[u8; 32]>) {
        let Some(p) = self.pending.as_ref() else {
            return;
        };
        if digest != Some(p.digest) {
            let sequence = p.sequence;
            let _ = self.audit(&Audit::ConsentRefused { sequence });
            self.pending = None;
            return;
        }
        self.arm();
        // The owner's consent installs: the lock resets into the trial
        // after sending the answer (the application acts on
        // `reset_armed`).
        self.reset_armed = self.pending.as_ref().is_some_and(|p| p.armed);
    }

    fn serve(
        &mut self,
        request: &Request<'_>,
        by: Authority,
        w: &mut Writer<'_>,
    ) -> Result<(), ServeError> {
        self.serve_request(request, by, w)
    }
}

impl<F: NorFlash> Shell<'_, F> {
    /// The image group's state answer: each slot re-verified from its
    /// stored manifest (bootable), its sequence number as the version,
    /// its manifest digest as the hash; active, pending (armed) and
    /// confirmed from the journal.
    fn image_state(&mut self, w: &mut Writer<'_>) -> Result<(), ServeError> {
        let state = *self.journal.state();
        let running = running_slot(&state);
        let mut infos: [Option<SlotInfo>; 2] = [None, None];
        {
            let mut check = VerifiedSlot::<256>::new(
                &self.layout,
                &self.anchors,
                &self.identity,
                &state,
                None,
                &mut self.upload.head,
            );
            for (slot, info) in infos.iter_mut().enumerate() {
                *info = check.check(&mut self.flash, slot as u8).ok();
            }
        }
        // An upload in progress keeps its head in the buffer just used.
        self.upload.head_len = 0;
        if self.upload.installer.is_none() {
            self.upload.total = 0;
        }
        let mut hashes = [[0u8; 32]; 2];
        for (i, info) in infos.iter_mut().enumerate() {
            let digest = info.as_ref().and_then(|x| self.envelope_digest(i as u8, x));
            match digest {
                Some(d) => hashes[i] = d,
                None => *info = None,
            }
        }
        let mut texts = [[0u8; 20]; 2];
        let mut lens = [0usize; 2];
        for (i, info) in infos.iter().enumerate() {
            if let Some(info) = info {
                lens[i] = decimal(info.sequence, &mut texts[i]);
            }
        }
        let [t0, t1] = &texts;
        let text = [
            core::str::from_utf8(&t0[..lens[0]]).unwrap_or(""),
            core::str::from_utf8(&t1[..lens[1]]).unwrap_or(""),
        ];
        let slot = |i: usize| {
            let info = infos[i].as_ref();
            img::ImageSlot {
                image: Some(0),
                slot: i as u64,
                version: text[i],
                hash: if info.is_some() {
                    &hashes[i][..]
                } else {
                    &[][..]
                },
                bootable: info.is_some(),
                pending: matches!(state.trial, TrialState::Pending { slot } if usize::from(slot) == i),
                confirmed: usize::from(state.active_slot) == i
                    && matches!(state.trial, TrialState::None | TrialState::Confirmed),
                active: usize::from(running) == i,
                permanent: false,
            }
        };
        let both = [slot(0), slot(1)];
        img::StateRsp {
            images: keyway_smp::seq::Seq::Items(&both),
        }
        .encode(w)
        .map_err(|_| NO_MEM)
    }

    /// An image state write: `confirm` with the running image (or no hash)
    /// is accepted (the lock confirms by its own self-test); a test of
    /// the pending update's hash (its envelope digest or its manifest
    /// digest) arms it.
    fn state_write(&mut self, sw: &img::StateWrite<'_>) -> Result<(), ServeError> {
        let bad = |code| refused(MgmtErr::Inval, None, Some(code));
        if sw.confirm == Some(true) {
            return match (sw.hash, self.running_digest) {
                (None, _) => Ok(()),
                (Some(h), Some(r)) if h == r => Ok(()),
                _ => Err(bad(img_rc::HASH_NOT_FOUND)),
            };
        }
        let Some(h) = sw.hash else {
            return Err(bad(img_rc::HASH_NOT_FOUND));
        };
        match &self.pending {
            Some(p) if h == p.digest || h == p.manifest => {
                self.arm();
                Ok(())
            }
            _ => Err(bad(img_rc::HASH_NOT_FOUND)),
        }
    }

    /// The SHA-256 of the envelope a verified slot holds: its stored
    /// head (the manifest area, the slot's last page) then its image, as
    /// the owner's client and MCUmgr's tools name an image (the file's
    /// hash). `None` if the area does not read.
    fn envelope_digest(&mut self, slot: u8, info: &SlotInfo) -> Option<[u8; 32]> {
        let range = self.layout.slots.get(usize::from(slot))?.clone();
        let area = range.end - SECTOR as u32;
        let mut header = [0u8; 16];
        self.flash.read(area, &mut header).ok()?;
        if header[..4] != *b"KWMF" {
            return None;
        }
        let n = u32::from_le_bytes(header[8..12].try_into().ok()?);
        if n as usize > SECTOR - 16 {
            return None;
        }
        let mut h = Sha256::new();
        let mut buf = [0u8; 256];
        for (from, len) in [(area + 16, u64::from(n)), (range.start, info.image_size)] {
            let mut done = 0u64;
            while done < len {
                let k = (len - done).min(buf.len() as u64) as usize;
                self.flash.read(from + done as u32, &mut buf[..k]).ok()?;
                h.update(&buf[..k]);
                done += k as u64;
            }
        }
        Some(h.finalize().into())
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
        let _ = self.audit(&Audit::ConsentGiven { sequence });
        if armed {
            let _ = self.audit(&Audit::UpdateInstalled { sequence, slot });
        }
    }

    fn serve_request(
        &mut self,
        request: &Request<'_>,
        _by: Authority,
        w: &mut Writer<'_>,
    ) -> Result<(), ServeError> {
        match request {
            Request::ImageState => self.image_state(w),
            Request::ImageStateWrite(sw) => {
                self.state_write(sw)?;
                self.image_state(w)
            }
            Request::Upload(u) => match self.upload(u) {
                Ok((off, matched)) => img::UploadRsp { off, matched }
                    .encode(w)
                    .map_err(|_| NO_MEM),
                Err(code) => Err(refused(MgmtErr::Inval, None, Some(code))),
            },
            Request::Notes(_) => {
                let Some(p) = self.pending.as_ref() else {
                    return Err(refused(MgmtErr::NoEnt, Some(Refusal::NothingPending), None));
                };
                let notes = kw::Notes {
                    sequence: p.sequence,
                    version: self.text(&p.version),
                    notes: self.text(&p.notes),
                    cves: keyway_smp::seq::Seq::Items(&[]),
                    min_battery_mwh: None,
                    state: if p.armed {
                        UpdateState::Installing
                    } else {
                        UpdateState::AwaitingConsent
                    },
                    reason: None,
                };
                notes.encode(w).map_err(|_| NO_MEM)?;
                if let Some(p) = self.pending.as_mut() {
                    p.notes_offered = true;
                }
                Ok(())
            }
            Request::Log(l) => {
                let mut chunk = [0u8; LOG_CHUNK];
                let (n, len) = self
                    .log_chunk(l.off, &mut chunk)
                    .map_err(|_| refused(MgmtErr::Inval, None, None))?;
                kw::LogRsp {
                    off: l.off,
                    len,
                    data: &chunk[..n],
                }
                .encode(w)
                .map_err(|_| NO_MEM)
            }
            _ => Err(refused(MgmtErr::NotSup, None, None)),
        }
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

/// `n` in decimal into `buf`; the length.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = 0;
    loop {
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        i += 1;
        if n == 0 {
            break;
        }
    }
    for j in 0..i {
        buf[j] = tmp[i - 1 - j];
    }
    i
}
