//! The lock firmware around the agent: what a lock keeps in RAM
//! ([`Lock`]) and its [`Device`] implementation ([`Shell`]), as a real
//! lock's firmware wires the device crates.
//!
//! Why one file of over 600 lines: it is one job, the glue whose code the
//! lock core's size figure measures (`scripts/qemu-core.sh`), kept whole
//! so the measured unit is easy to read. `firmware/lock-core` holds the
//! application's generalised copy (any flash, image state, the control
//! channel); moving this harness onto it would link the image-state group
//! into the figure.
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
use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use keyway_agent::agent::{
    Agent, Authority, Config, Device, Event, Firmware, Now, Outcome, Pending, Press, Sensors,
    ServeError,
};
use keyway_agent::limits::PeerId;
use keyway_agent::store;
use keyway_audit::{AuditLog, Ed25519Signer, Event as Audit, Export, RejectReason, Time};
use keyway_channel::SigningKey as KeyPair;
use keyway_device::boot::{self, Confirmation, Decision, SelfTest};
use keyway_device::install::{Installer, SlotLayout};
use keyway_device::journal::{self, Journal, PersistentState, TrialState};
use keyway_device::verified::{SlotInfo, VerifiedSlot};
use keyway_smp::cbor::Writer;
use keyway_smp::err::img_rc;
use keyway_smp::keyway_group::{self, Bolt, Door, UpdateState, UpdateSummary};
use keyway_smp::{Message, MgmtErr, Refusal, Request, img};
use keyway_suit::{DeviceIdentity, DeviceState, TrustAnchors, Verified};
use sha2::{Digest, Sha256};

use crate::Flash;
use crate::flash_map::{FLASH_LEN, SECTOR, SLOT0, SLOT1, at, audit_region, layout, store_region};
use crate::ram_flash::{FlashError, WORD};

/// Sessions and handshakes the lock holds at once.
pub const SESSIONS: usize = 4;
/// The most envelope bytes before the payload that the lock buffers to
/// verify an upload's head (it keeps them for the release notes).
pub const HEAD_MAX: usize = 1024;
/// Export bytes per log answer.
pub const LOG_CHUNK: usize = crate::scenario::LOG_CHUNK;
/// The RTC value at the lock's clock 0 (for audit times).
const RTC_AT_ZERO: u64 = 1_795_564_800;
/// The lock model reported to owners.
const MODEL: &str = "qemu-test-lock";

/// A handle to the lock's one NOR flash (the agent's store and the
/// shell's journal, slots and audit log share it; every operation borrows
/// it for its own duration only).
#[derive(Clone, Copy)]
pub struct Shared<'a>(pub &'a RefCell<Flash>);

impl Shared<'_> {
    fn with<T>(
        &self,
        offset: u32,
        f: impl FnOnce(&mut Flash) -> Result<T, FlashError>,
    ) -> Result<T, FlashError> {
        // Never busy: the lock is single-threaded and no flash operation
        // calls another.
        let mut flash = self
            .0
            .try_borrow_mut()
            .map_err(|_| FlashError::PowerCut { offset })?;
        f(&mut flash)
    }
}

impl ErrorType for Shared<'_> {
    type Error = FlashError;
}

impl ReadNorFlash for Shared<'_> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.with(offset, |f| f.read(offset, bytes))
    }
    fn capacity(&self) -> usize {
        FLASH_LEN
    }
}

impl NorFlash for Shared<'_> {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.with(from, |f| f.erase(from, to))
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.with(offset, |f| f.write(offset, bytes))
    }
}

/// What failed in a step outside the agent (printed with `Debug` when a
/// step fails, in the `verbose` build).
#[allow(dead_code)]
#[derive(Debug)]
pub enum Fail {
    /// The owner store.
    Store(store::Error<FlashError>),
    /// The audit log.
    Audit(keyway_audit::Error<FlashError>),
    /// The journal.
    Journal(journal::JournalError<FlashError>),
    /// The installer (factory provisioning).
    Install(keyway_device::install::InstallError<FlashError>),
    /// The verifier (factory provisioning).
    Suit(keyway_suit::Error),
    /// A state the step needs is missing.
    State(&'static str),
}

macro_rules! from {
    ($($v:ident($t:ty)),*) => {$(
        impl From<$t> for Fail {
            fn from(e: $t) -> Self {
                Fail::$v(e)
            }
        }
    )*};
}
from!(
    Store(store::Error<FlashError>),
    Audit(keyway_audit::Error<FlashError>),
    Journal(journal::JournalError<FlashError>),
    Install(keyway_device::install::InstallError<FlashError>),
    Suit(keyway_suit::Error)
);

/// An upload in progress (one at a time; the agent decides whose).
pub struct Upload<'a> {
    total: u64,
    /// The next offset wanted.
    pub next: u64,
    sha: [u8; 32],
    hasher: Sha256,
    head: [u8; HEAD_MAX],
    head_len: usize,
    installer: Option<Installer<Shared<'a>>>,
    sequence: u64,
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
pub struct Shell<'a> {
    flash: Shared<'a>,
    anchors: TrustAnchors,
    identity: DeviceIdentity,
    layout: SlotLayout,
    signer: Ed25519Signer,
    pub journal: Journal<Shared<'a>>,
    pub log: AuditLog<Shared<'a>>,
    /// The boot counter (audit times).
    boots: u32,
    /// The time of the frame being handled.
    now_ms: u64,
    pub upload: Upload<'a>,
    pub pending: Option<Ready>,
    exporting: Option<Exporting>,
}

/// The lock's RAM: the agent, the shell, the CSPRNG.
pub struct Lock<'a> {
    /// The agent (`None` only while power-on builds it).
    agent: Option<Agent<Shared<'a>, SESSIONS>>,
    pub shell: Shell<'a>,
    rng: ChaCha20Rng,
}

/// A boot: the bootloader's decision and the booted slot's manifest.
pub struct Booted {
    pub decision: Decision,
    /// The booted slot's manifest, as the running image reads it.
    pub running: Option<SlotInfo>,
}

/// The device key from its seed.
fn device_key(seed: [u8; 32]) -> Result<KeyPair, Fail> {
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
fn start_agent<'a>(
    agent: &mut Option<Agent<Shared<'a>, SESSIONS>>,
    flash: Shared<'a>,
    seed: [u8; 32],
) -> Result<(), Fail> {
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

impl<'a> Lock<'a> {
    /// Power on, into `slot` (the lock's RAM, which a device would keep
    /// in a static): the trust anchor made from the vendor's raw Ed25519
    /// key, the agent (its owner store opened), the journal and the audit
    /// log opened from the flash; the RAM-only state fresh. Not inlined,
    /// so its temporaries leave the stack when it returns. The lock then
    /// runs [`Lock::boot`].
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub fn open_into(
        slot: &mut Option<Lock<'a>>,
        flash: Shared<'a>,
        root_key: &[u8],
        identity: DeviceIdentity,
        device_seed: [u8; 32],
        rng: ChaCha20Rng,
        boots: u32,
    ) -> Result<(), Fail> {
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
                    sha: [0; 32],
                    hasher: Sha256::new(),
                    head: [0; HEAD_MAX],
                    head_len: 0,
                    installer: None,
                    sequence: 0,
                    texts: (0..0, 0..0),
                },
                pending: None,
                exporting: None,
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
    pub fn reset(&mut self, seed: [u8; 32], rng: ChaCha20Rng, boots: u32) -> Result<(), Fail> {
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
    pub fn boot(&mut self, now_ms: u64) -> Result<Booted, Fail> {
        self.shell.boot(now_ms)
    }

    /// A press of the lock's button (a person at the lock: the presence
    /// window opens for pairing).
    #[inline(never)]
    pub fn button(&mut self, now_ms: u64) -> Result<(), Fail> {
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
    pub fn agent(&self) -> Option<&Agent<Shared<'a>, SESSIONS>> {
        self.agent.as_ref()
    }

    fn agent_mut(&mut self) -> Result<&mut Agent<Shared<'a>, SESSIONS>, Fail> {
        self.agent.as_mut().ok_or(Fail::State("no agent"))
    }

    /// The journal's state.
    pub fn journal_state(&self) -> &PersistentState {
        self.shell.journal.state()
    }

    /// The export in progress: bytes served and its length (the quiet
    /// build, which has no client, follows the export with it).
    #[cfg_attr(not(feature = "quiet"), allow(dead_code))]
    pub fn export_progress(&self) -> (u64, u64) {
        self.shell
            .exporting
            .as_ref()
            .map_or((0, 0), |e| (e.pos, e.len))
    }

    /// The running image's self-test passed: `boot::confirm` raises the
    /// floor; the consent is spent; logged.
    #[inline(never)]
    pub fn confirm(&mut self, now_ms: u64, sequence: u64) -> Result<u8, Fail> {
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

impl Shell<'_> {
    /// The audit log's time for the lock's clock `now_ms`.
    pub fn time(&self, now_ms: u64) -> Time {
        Time {
            rtc: RTC_AT_ZERO + now_ms / 1000,
            boot: self.boots,
        }
    }

    fn audit(&mut self, event: &Audit) -> Result<u32, Fail> {
        let t = self.time(self.now_ms);
        Ok(self.log.append(&mut self.flash, &self.signer, t, event)?)
    }

    /// The bootloader's decision (`boot::boot` with `VerifiedSlot`, the
    /// upload's head buffer lent for the stored manifests), then the boot
    /// (and a trial) logged in the audit log.
    fn boot(&mut self, now_ms: u64) -> Result<Booted, Fail> {
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
            let (Some(len), Some(sha)) = (u.len, u.sha) else {
                return Err(img_rc::INVALID_LENGTH);
            };
            let capacity = u64::from(at(SLOT1) - at(SLOT0));
            let sha: [u8; 32] = sha.try_into().map_err(|_| img_rc::INVALID_HASH)?;
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
        let r = self.take(u.data);
        if r.is_err() {
            self.upload.installer = None;
            self.upload.total = 0;
            let _ = self.audit(&Audit::UpdateRejected {
                sequence: self.upload.sequence,
                reason: RejectReason::Payload,
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
            let (from, to) = (self.upload.head_len, self.upload.head_len + data.len());
            if to > HEAD_MAX {
                return Err(img_rc::INVALID_IMAGE_HEADER);
            }
            self.upload.head[from..to].copy_from_slice(data);
            self.upload.head_len = to;
            self.begin()?;
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
        let matched = digest == self.upload.sha;
        let sequence = self.upload.sequence;
        let (version, notes) = self.upload.texts.clone();
        self.pending = Some(Ready {
            slot,
            sequence,
            digest,
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
        if keyway_suit::verify_envelope_into(&mut verified, head, &self.anchors, &identity, &state)
            .is_err()
        {
            return Err(img_rc::INVALID_IMAGE_HEADER);
        }
        let expectation = verified
            .payload
            .as_ref()
            .ok_or(img_rc::INVALID_IMAGE_HEADER)?;
        let mut installer = Installer::<Shared>::begin_with_manifest(
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
    fn log_chunk(&mut self, off: u64, out: &mut [u8]) -> Result<(usize, u64), Fail> {
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

impl Device for Shell<'_> {
    /// QEMU has no sensors: a closed, locked door on a full battery.
    fn sensors(&self) -> Sensors {
        Sensors {
            bolt: Bolt::Locked,
            door: Door::Closed,
            battery_mv: 6_000,
            battery_mwh: 9_000,
            tamper: false,
            lockout_s: 0,
        }
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
            // The running release's version text is not kept (the boot
            // check reads the sequence number only).
            version: "",
            slot: Some(u64::from(state.active_slot)),
            image: None,
            trial: !matches!(state.trial, TrialState::None | TrialState::Confirmed),
            update,
            pending: self.pending.as_ref().map(|p| Pending {
                digest: p.digest,
                sequence: p.sequence,
                notes_offered: p.notes_offered,
            }),
        }
    }

    /// No motor here: the bolt stays where it is.
    fn drive_bolt(&mut self, _to: Bolt) -> Bolt {
        Bolt::Locked
    }

    /// The agent stored the owner's consent: arm the pending slot (the
    /// journal's trial is pending: the next reset boots it on trial), or
    /// drop a refused update.
    fn consent_stored(&mut self, digest: Option<[u8; 32]>) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        if digest != Some(p.digest) {
            self.pending = None;
            return;
        }
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

    fn serve(
        &mut self,
        request: &Request<'_>,
        _by: Authority,
        w: &mut Writer<'_>,
    ) -> Result<(), ServeError> {
        match request {
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
                let notes = keyway_group::Notes {
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
                keyway_group::LogRsp {
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
