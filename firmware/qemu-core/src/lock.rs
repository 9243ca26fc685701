//! The lock core, wired by hand for this harness: what the lock keeps in
//! RAM ([`Lock`]) and the glue that the agent's dispatch
//! (`keyway-agent`'s `handle()`, being written elsewhere) will replace.
//!
//! Everything a lock's owner session touches is the real device code:
//!
//! * `keyway-channel`: [`LockPairing`] with a [`PairingGuard`] (SPAKE2+
//!   against the verifier kept in the owner store) and a [`SessionTable`]
//!   (SIGMA-I handshakes, sealed records, replay and freshness checks);
//! * `keyway-smp`: request frames split and decoded by [`Request::decode`]
//!   (every command the lock serves), answers encoded through
//!   [`Response`] and refusals through [`ErrorRsp`];
//! * `keyway-agent`: the owner [`Store`] (owners, consent, verifier,
//!   wrong-code count) on its NOR region, reopened from the flash at every
//!   boot; its limits: a [`PeerLimiter`] every request passes (a session
//!   is a peer here) and the [`CodeBackoff`] of wrong setup codes;
//! * `keyway-suit` (Ed25519 only): the envelope's head verified from the
//!   first upload chunks (a prefix that ends inside the payload);
//! * `keyway-device`: the [`Installer`] streaming the payload into the
//!   inactive slot (`finish_unarmed`: the owner's consent arms it), the
//!   [`Journal`], `boot::boot` with [`VerifiedSlot`] and `boot::confirm`;
//! * `keyway-audit`: the [`AuditLog`] with the device key's
//!   [`Ed25519Signer`], and its [`Export`] served in chunks.
//!
//! Every entry point the harness calls is `#[inline(never)]`: a device
//! calls each from one place (its event loop), while the harness calls
//! them from several measured closures, each of which would otherwise get
//! its own inlined copy and inflate the code figure.
//!
//! The glue ([`Lock::handle`]) is deliberately thin: one upload at a time,
//! consent arms the slot, the log export is sequential. The agent adds
//! the authority table, presence window, limits and the rest of the
//! commands on the same pieces.

use chacha20::ChaCha20Rng;
use ed25519_compact::KeyPair;
use keyway_agent::limits::{CodeBackoff, CodeVerdict, PeerId, PeerLimiter, Rate};
use keyway_agent::store::{self, Consent, GrantedBy, KeyId, PairedBy, Store};
use keyway_audit::{AuditLog, Ed25519Signer, Event, Export, RejectReason, Time};
use keyway_channel::handshake::{MSG2_LEN, MSG3_LEN};
use keyway_channel::pairing::{PAKE2_LEN, PAKE4_LEN, VERIFIER_LEN};
use keyway_channel::record::MSG4_LEN;
use keyway_channel::{
    Error as ChannelError, GuardConfig, LockPairing, NewOwner, PairingGuard, ResponseStatus,
    SessionTable, StoredVerifier, TableConfig,
};
use keyway_device::boot::{self, Confirmation, Decision, SelfTest};
use keyway_device::install::{Installer, Mode, SlotLayout};
use keyway_device::journal::{self, Journal, PersistentState, TrialState};
use keyway_device::verified::{SlotInfo, VerifiedSlot};
use keyway_smp::err::img_rc;
use keyway_smp::header::split_request;
use keyway_smp::{ErrorRsp, MAX_BODY, MgmtErr, Request, Response, group, img, kw};
use keyway_suit::{DeviceIdentity, DeviceState, TrustAnchors, Verified};
use sha2::{Digest, Sha256};

use crate::ram_flash::SECTOR;
use crate::{FLASH_SECTORS, Flash};

/// Sessions and handshakes the lock holds at once.
pub const SESSIONS: usize = 4;
/// The most envelope bytes before the payload that the lock buffers to
/// verify an upload's head (the run's head is printed).
pub const HEAD_MAX: usize = 1024;
/// Peers the request limiter tracks, and their rates (bursts of 16, one
/// more every 50 ms; peers without an entry share 8 per 100 ms).
pub const PEERS: usize = 8;
const PEER_RATE: Rate = Rate {
    burst: 16,
    interval_ms: 50,
};
const OVERFLOW_RATE: Rate = Rate {
    burst: 8,
    interval_ms: 100,
};
const PEER_IDLE_MS: u64 = 30_000;
/// The RTC value at the lock's clock 0 (for audit times).
const RTC_AT_ZERO: u64 = 1_795_564_800;

/// The flash map (4 KiB sectors): journal 2, slot 0 (3 image + 1
/// manifest), slot 1 (the same), owner store 2, audit log 4.
pub const JOURNAL: u32 = 0;
pub const SLOT0: u32 = 2;
pub const SLOT1: u32 = 6;
pub const STORE: u32 = 10;
pub const AUDIT: u32 = 12;
const _: () = assert!(AUDIT + 4 == FLASH_SECTORS);

const fn at(sector: u32) -> u32 {
    sector * SECTOR as u32
}

/// The A/B layout on the flash map.
pub const fn layout() -> SlotLayout {
    SlotLayout {
        slots: [at(SLOT0)..at(SLOT1), at(SLOT1)..at(STORE)],
        journal: journal::Config::new(at(JOURNAL), SLOT0 - JOURNAL),
        manifest_sectors: 1,
        sector_size: None,
        mode: Mode::Direct,
    }
}

/// What failed in a lock step the harness asserts on (printed with
/// `Debug` when a step fails).
#[allow(dead_code)]
#[derive(Debug)]
pub enum Fail {
    /// The owner store.
    Store(store::Error<crate::ram_flash::FlashError>),
    /// The audit log.
    Audit(keyway_audit::Error<crate::ram_flash::FlashError>),
    /// The journal.
    Journal(journal::Error<crate::ram_flash::FlashError>),
    /// The channel.
    Channel(ChannelError),
    /// The installer (factory provisioning).
    Install(keyway_device::install::Error<crate::ram_flash::FlashError>),
    /// The verifier (factory provisioning).
    Suit(keyway_suit::Error),
    /// A state the step needs is missing.
    State(&'static str),
    /// The peer is over its request rate (no answer).
    Limited,
    /// A setup code is not accepted now (the wrong-code backoff).
    Backoff(CodeVerdict),
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
    Store(store::Error<crate::ram_flash::FlashError>),
    Audit(keyway_audit::Error<crate::ram_flash::FlashError>),
    Journal(journal::Error<crate::ram_flash::FlashError>),
    Channel(ChannelError),
    Install(keyway_device::install::Error<crate::ram_flash::FlashError>),
    Suit(keyway_suit::Error)
);

/// What a request did, for the harness to assert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An upload chunk was taken: the next offset wanted.
    Uploading { off: u64 },
    /// The last chunk: the image is in `slot`, verified, unarmed;
    /// `matched`: the file's SHA-256 equals the client's `sha`.
    Uploaded { off: u64, slot: u8, matched: bool },
    /// The owner's consent was stored and the slot armed.
    Consented { slot: u8, sequence: u64 },
    /// A log export chunk: its offset, length, and the export's length.
    LogChunk { off: u64, n: usize, len: u64 },
    /// Refused with an SMP error answer (`rc`, the group's code).
    Refused { rc: MgmtErr, group_rc: u64 },
    /// The frame did not parse; no answer.
    Dropped,
}

/// An upload in progress (one at a time).
struct Upload {
    total: u64,
    next: u64,
    sha: [u8; 32],
    hasher: Sha256,
    head: [u8; HEAD_MAX],
    head_len: usize,
    installer: Option<Installer<Flash>>,
    sequence: u64,
    done: Option<u8>,
}

/// An export in progress.
struct Exporting {
    export: Export,
    pos: u64,
    len: u64,
}

/// The lock's RAM: its keys and trust, the opened journal, owner store
/// and audit log, the channel's state, an upload and an export.
pub struct Lock {
    anchors: TrustAnchors,
    identity: DeviceIdentity,
    layout: SlotLayout,
    device: KeyPair,
    signer: Ed25519Signer,
    pub journal: Journal<Flash>,
    pub store: Store<Flash>,
    pub log: AuditLog<Flash>,
    table: SessionTable<SESSIONS>,
    peers: PeerLimiter<PEERS>,
    codes: CodeBackoff,
    guard: PairingGuard,
    pairing: LockPairing,
    rng: ChaCha20Rng,
    /// The boot counter (audit times).
    boots: u32,
    upload: Upload,
    exporting: Option<Exporting>,
}

/// A boot: the reopened lock and the bootloader's decision.
pub struct Booted {
    pub decision: Decision,
    /// The booted slot's manifest, as the running image reads it.
    pub running: Option<SlotInfo>,
}

impl Lock {
    /// Power on, into `slot` (the lock's RAM, which a device would keep
    /// in a static): the trust anchor made from the vendor's raw Ed25519
    /// key, the journal, the owner store and the audit log opened from
    /// the flash; the RAM-only state (sessions, pairing, upload) fresh.
    /// Not inlined, so its temporaries leave the stack when it returns.
    /// The lock then runs [`Lock::boot`].
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub fn open_into(
        slot: &mut Option<Lock>,
        flash: &mut Flash,
        root_key: &[u8],
        identity: DeviceIdentity,
        device_seed: [u8; 32],
        rng: ChaCha20Rng,
        boots: u32,
    ) -> Result<(), Fail> {
        let anchors =
            keyway_suit::PublicKey::from_raw(root_key).and_then(|k| TrustAnchors::new(&[k], 1))?;
        let layout = layout();
        let store = Store::open(flash, store::Config::new(at(STORE), AUDIT - STORE))?;
        let codes = CodeBackoff::at_boot(store.state().wrong_codes(), 0);
        *slot = Some(Lock {
            journal: Journal::open(flash, layout.journal)?,
            store,
            peers: PeerLimiter::new(PEER_RATE, OVERFLOW_RATE, PEER_IDLE_MS, 0),
            codes,
            log: AuditLog::open(flash, keyway_audit::Config::new(at(AUDIT), 4))?,
            signer: Ed25519Signer::from_seed(device_seed).ok_or(Fail::State("device seed"))?,
            device: KeyPair::from_seed(ed25519_compact::Seed::new(device_seed)),
            anchors,
            identity,
            layout,
            table: SessionTable::new(TableConfig::default()),
            guard: PairingGuard::new(GuardConfig::default()),
            pairing: LockPairing::new(),
            rng,
            boots,
            upload: Upload {
                total: 0,
                next: 0,
                sha: [0; 32],
                hasher: Sha256::new(),
                head: [0; HEAD_MAX],
                head_len: 0,
                installer: None,
                sequence: 0,
                done: None,
            },
            exporting: None,
        });
        Ok(())
    }

    /// A reset, in place (the lock's RAM is reused, as on a device):
    /// the journal, owner store and audit log reopened from the flash,
    /// everything else back to power-on values.
    #[inline(never)]
    pub fn reset(&mut self, flash: &mut Flash, rng: ChaCha20Rng, boots: u32) -> Result<(), Fail> {
        self.journal = Journal::open(flash, self.layout.journal)?;
        self.store = Store::open(flash, store::Config::new(at(STORE), AUDIT - STORE))?;
        self.log = AuditLog::open(flash, keyway_audit::Config::new(at(AUDIT), 4))?;
        self.table = SessionTable::new(TableConfig::default());
        self.peers = PeerLimiter::new(PEER_RATE, OVERFLOW_RATE, PEER_IDLE_MS, 0);
        self.codes = CodeBackoff::at_boot(self.store.state().wrong_codes(), 0);
        self.guard = PairingGuard::new(GuardConfig::default());
        self.pairing = LockPairing::new();
        self.rng = rng;
        self.boots = boots;
        self.upload.installer = None;
        self.upload.total = 0;
        self.upload.head_len = 0;
        self.upload.done = None;
        self.exporting = None;
        Ok(())
    }

    /// The bootloader's decision (`boot::boot` with `VerifiedSlot`, the
    /// upload's head buffer lent for the stored manifests), then the boot
    /// (and a trial) logged in the audit log.
    #[inline(never)]
    pub fn boot(&mut self, flash: &mut Flash, now_ms: u64) -> Result<Booted, Fail> {
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
            let decision = boot::boot(&mut self.journal, flash, &mut check)?;
            let running = match decision.boot {
                boot::Boot::Slot(s) => check.check(flash, s).ok(),
                boot::Boot::Recovery => None,
            };
            (decision, running)
        };
        if let (boot::Boot::Slot(slot), Some(info)) = (decision.boot, running) {
            let version = keyway_audit::Version::new(1, info.sequence as u8, 0);
            self.audit(flash, now_ms, &Event::Boot { slot, version })?;
        }
        if let boot::Reason::StartTrial {
            slot,
            attempts_left,
        } = decision.reason
        {
            self.audit(
                flash,
                now_ms,
                &Event::OnTrial {
                    slot,
                    attempts_left,
                },
            )?;
        }
        Ok(Booted { decision, running })
    }

    /// The audit log's time for the lock's clock `now_ms`.
    pub fn time(&self, now_ms: u64) -> Time {
        Time {
            rtc: RTC_AT_ZERO + now_ms / 1000,
            boot: self.boots,
        }
    }

    fn audit(&mut self, flash: &mut Flash, now_ms: u64, event: &Event) -> Result<u32, Fail> {
        let t = self.time(now_ms);
        Ok(self.log.append(flash, &self.signer, t, event)?)
    }

    /// Factory provisioning: the pairing verifier into the owner store,
    /// `image` (a whole signed envelope) into slot 0 through the
    /// installer, slot 0 active and confirmed with the floor at its
    /// sequence number. Returns that sequence number.
    #[inline(never)]
    pub fn provision(
        &mut self,
        flash: &mut Flash,
        verifier: &[u8; VERIFIER_LEN],
        image: &[u8],
    ) -> Result<u64, Fail> {
        let v = store::Verifier::new(
            verifier[..32].try_into().unwrap_or([0; 32]),
            verifier[32..97].try_into().unwrap_or([0; 65]),
            &verifier[97..113],
            u32::from_le_bytes(verifier[113..117].try_into().unwrap_or([0; 4])),
        )
        .ok_or(Fail::State("verifier"))?;
        self.store.set_verifier(flash, &v)?;
        // Slot 1 marked active first, so slot 0 is the installer's target.
        let fresh = *self.journal.state();
        self.journal.commit(
            flash,
            &PersistentState {
                active_slot: 1,
                ..fresh
            },
        )?;
        let mut verified = Verified::empty();
        keyway_suit::verify_envelope_into(
            &mut verified,
            image,
            &self.anchors,
            &self.identity,
            &DeviceState::new(0),
        )?;
        let expectation = verified
            .payload
            .as_ref()
            .ok_or(Fail::State("factory image names no payload"))?;
        let (integrated, payload) = match (verified.integrated, verified.integrated_payload()) {
            (Some(i), Some(p)) => (i, p),
            _ => return Err(Fail::State("factory image has no integrated payload")),
        };
        let mut installer = Installer::<Flash>::begin_with_manifest(
            flash,
            &mut self.journal,
            &self.layout,
            expectation,
            verified.manifest_digest,
            &image[..integrated.offset],
        )?;
        installer.push(flash, &mut self.journal, payload)?;
        installer.finish_unarmed(flash, &mut self.journal)?;
        let state = *self.journal.state();
        self.journal.commit(
            flash,
            &PersistentState {
                active_slot: 0,
                trial: TrialState::Confirmed,
                floor: Some(verified.sequence),
                ..state
            },
        )?;
        Ok(verified.sequence)
    }

    /// Pairing, Pake1 -> Pake2: the verifier comes from the owner store.
    #[inline(never)]
    pub fn pake1(
        &mut self,
        now_ms: u64,
        pake1: &[u8],
        out: &mut [u8; PAKE2_LEN],
    ) -> Result<(), Fail> {
        match self.codes.check(now_ms) {
            CodeVerdict::Allowed => {}
            v => return Err(Fail::Backoff(v)),
        }
        let v = self
            .store
            .state()
            .verifier()
            .ok_or(Fail::State("no pairing verifier"))?;
        let mut bytes = [0u8; VERIFIER_LEN];
        bytes[..32].copy_from_slice(v.w0());
        bytes[32..97].copy_from_slice(v.l());
        bytes[97..113].copy_from_slice(v.salt());
        bytes[113..].copy_from_slice(&v.iterations().to_le_bytes());
        let verifier = StoredVerifier::from_bytes(&bytes)?;
        self.pairing.pake1(
            &verifier,
            &mut self.guard,
            now_ms,
            &mut self.rng,
            pake1,
            out,
        )?;
        Ok(())
    }

    /// Pairing, Pake3 -> Pake4: the new owner is stored (before the lock
    /// answers) and logged. Returns its key id.
    #[inline(never)]
    pub fn pake3(
        &mut self,
        flash: &mut Flash,
        now_ms: u64,
        pake3: &[u8],
        out: &mut [u8; PAKE4_LEN],
    ) -> Result<NewOwner, Fail> {
        let owner = match self
            .pairing
            .pake3(&mut self.guard, pake3, &self.device.pk, out)
        {
            Ok(o) => o,
            Err(e) => {
                // Counted in the store before the peer hears anything, so
                // a power cut cannot forget the guess.
                if e == ChannelError::WrongCode {
                    self.store.record_wrong_code(flash)?;
                    self.codes.failed(now_ms);
                }
                return Err(e.into());
            }
        };
        self.codes.succeeded();
        let t = self.time(now_ms);
        let id = self.store.pair(
            flash,
            &owner.public_key,
            owner.name(),
            t,
            PairedBy::SetupCode,
        )?;
        self.store.clear_wrong_codes(flash)?;
        self.audit(flash, now_ms, &Event::OwnerPaired { owner: id })?;
        Ok(owner)
    }

    /// Handshake, msg1 -> msg2.
    #[inline(never)]
    pub fn msg1(&mut self, now_ms: u64, msg1: &[u8], out: &mut [u8; MSG2_LEN]) -> Result<(), Fail> {
        self.table
            .handshake1(now_ms, &mut self.rng, &self.device, msg1, out)?;
        Ok(())
    }

    /// Handshake, msg3 -> msg4: the initiator must be an owner in the
    /// store.
    #[inline(never)]
    pub fn msg3(
        &mut self,
        now_ms: u64,
        msg3: &[u8; MSG3_LEN],
        out: &mut [u8; MSG4_LEN],
    ) -> Result<(), Fail> {
        let owners = self.store.state();
        self.table
            .handshake3(now_ms, msg3, |kid| owners.owner(kid).map(|o| *o.key()), out)?;
        Ok(())
    }

    /// One sealed request: opened by the session table, its SMP frame
    /// handled ([`Lock::handle`]), the answer (written in `plain`) sealed
    /// into `out`. Returns the sealed answer's length, the answer frame's
    /// and the outcome. Each session is a peer of the request limiter
    /// (on a radio the link's address would be).
    #[inline(never)]
    pub fn request(
        &mut self,
        flash: &mut Flash,
        now_ms: u64,
        record: &mut [u8],
        plain: &mut [u8],
        out: &mut [u8],
    ) -> Result<(usize, usize, Outcome), Fail> {
        let sid = keyway_channel::record::session_id_of(record)?;
        if !self
            .peers
            .check(PeerId(u64::from(sid)), now_ms)
            .is_allowed()
        {
            return Err(Fail::Limited);
        }
        let opened = self.table.open_request(now_ms, record)?;
        let frame = &record[opened.payload.clone()];
        let (n, outcome) = self.handle(flash, &opened.owner, now_ms, frame, plain);
        let m = self.table.seal_response(
            now_ms,
            opened.session,
            opened.counter,
            ResponseStatus::Ok,
            &plain[..n],
            out,
        )?;
        Ok((m, n, outcome))
    }

    /// The stand-in for the agent's dispatch: one SMP request frame from
    /// the session of owner `owner`, its answer frame into `out`.
    pub fn handle(
        &mut self,
        flash: &mut Flash,
        owner: &KeyId,
        now_ms: u64,
        frame: &[u8],
        out: &mut [u8],
    ) -> (usize, Outcome) {
        let (header, body) = match split_request(frame, MAX_BODY) {
            Ok(x) => x,
            Err(_) => return (0, Outcome::Dropped),
        };
        let refuse = |out: &mut [u8], rc: MgmtErr, group_rc: Option<(u16, u64)>| {
            let e = ErrorRsp {
                rc: Some(rc as u64),
                group: group_rc,
                rsn: None,
                refusal: None,
            };
            let n = keyway_smp::answer_frame(out, &header, |w| e.encode(w)).unwrap_or(0);
            (
                n,
                Outcome::Refused {
                    rc,
                    group_rc: group_rc.map_or(0, |g| g.1),
                },
            )
        };
        let request = match Request::decode(header.op, header.group, header.id, body) {
            Ok(r) => r,
            Err(keyway_smp::RequestError::NotSupported { .. }) => {
                return refuse(out, MgmtErr::NotSup, None);
            }
            Err(_) => return refuse(out, MgmtErr::Inval, None),
        };
        let answer = |out: &mut [u8], r: Response<'_>, o: Outcome| match keyway_smp::answer_frame(
            out,
            &header,
            |w| r.encode(w),
        ) {
            Ok(n) => (n, o),
            Err(_) => (0, Outcome::Dropped),
        };
        match request {
            Request::Upload(u) => match self.upload(flash, now_ms, &u) {
                Ok(o) => {
                    let (off, matched) = match o {
                        Outcome::Uploaded { off, matched, .. } => (off, Some(matched)),
                        Outcome::Uploading { off } => (off, None),
                        _ => (0, None),
                    };
                    answer(out, Response::Upload(img::UploadRsp { off, matched }), o)
                }
                Err(code) => refuse(out, MgmtErr::Inval, Some((group::IMAGE, u64::from(code)))),
            },
            Request::Consent(c) if c.accept => match self.consent(flash, owner, now_ms) {
                Ok(o) => answer(out, Response::Consent(kw::ConsentRsp { update: None }), o),
                Err(_) => refuse(out, MgmtErr::BadState, None),
            },
            Request::Log(l) => {
                let mut chunk = [0u8; crate::scenario::LOG_CHUNK];
                match self.log_chunk(flash, now_ms, l.off, &mut chunk) {
                    Ok((n, len)) => answer(
                        out,
                        Response::Log(kw::LogRsp {
                            off: l.off,
                            len,
                            data: &chunk[..n],
                        }),
                        Outcome::LogChunk { off: l.off, n, len },
                    ),
                    Err(_) => refuse(out, MgmtErr::Inval, None),
                }
            }
            _ => refuse(out, MgmtErr::NotSup, None),
        }
    }

    /// An upload chunk: the head buffered until it holds the envelope up
    /// to its payload, verified, the installer begun; payload bytes pushed;
    /// the last chunk finishes the slot unarmed. A wrong offset gets the
    /// offset wanted (as MCUmgr does). Any failure drops the upload (and
    /// the installer's download record with it) and is logged.
    fn upload(
        &mut self,
        flash: &mut Flash,
        now_ms: u64,
        u: &img::Upload<'_>,
    ) -> Result<Outcome, u16> {
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
            self.upload.done = None;
        }
        if u.off != self.upload.next || self.upload.total == 0 {
            return Ok(Outcome::Uploading {
                off: self.upload.next,
            });
        }
        if u.off + u.data.len() as u64 > self.upload.total {
            self.upload.total = 0;
            return Err(img_rc::INVALID_LENGTH);
        }
        let r = self.take(flash, now_ms, u.data);
        if r.is_err() {
            self.upload.installer = None;
            self.upload.total = 0;
            let _ = self.audit(
                flash,
                now_ms,
                &Event::UpdateRejected {
                    sequence: self.upload.sequence,
                    reason: RejectReason::Payload,
                },
            );
        }
        r
    }

    fn take(&mut self, flash: &mut Flash, now_ms: u64, data: &[u8]) -> Result<Outcome, u16> {
        self.upload.hasher.update(data);
        self.upload.next += data.len() as u64;
        let installer_err = |_| img_rc::INVALID_HASH;
        if let Some(installer) = self.upload.installer.as_mut() {
            installer
                .push(flash, &mut self.journal, data)
                .map_err(installer_err)?;
        } else {
            let (from, to) = (self.upload.head_len, self.upload.head_len + data.len());
            if to > HEAD_MAX {
                return Err(img_rc::INVALID_IMAGE_HEADER);
            }
            self.upload.head[from..to].copy_from_slice(data);
            self.upload.head_len = to;
            self.begin(flash, now_ms)?;
        }
        if self.upload.next < self.upload.total {
            return Ok(Outcome::Uploading {
                off: self.upload.next,
            });
        }
        let installer = self
            .upload
            .installer
            .take()
            .ok_or(img_rc::INVALID_IMAGE_HEADER)?;
        let slot = installer
            .finish_unarmed(flash, &mut self.journal)
            .map_err(installer_err)?;
        let sha: [u8; 32] = core::mem::take(&mut self.upload.hasher).finalize().into();
        let matched = sha == self.upload.sha;
        self.upload.done = Some(slot);
        let sequence = self.upload.sequence;
        self.audit(flash, now_ms, &Event::UpdateVerified { sequence })
            .map_err(|_| img_rc::FLASH_WRITE_FAILED)?;
        Ok(Outcome::Uploaded {
            off: self.upload.next,
            slot,
            matched,
        })
    }

    /// Once the buffered head reaches into the payload: verify it (update
    /// rule: above the floor, for the inactive slot), begin the installer
    /// with the head, push the payload bytes already received.
    #[inline(never)]
    fn begin(&mut self, flash: &mut Flash, now_ms: u64) -> Result<(), u16> {
        let head = &self.upload.head[..self.upload.head_len];
        let Ok(envelope) = keyway_suit::Envelope::decode(head) else {
            return Ok(()); // not yet: the head is still arriving
        };
        let Some(p) = envelope.payload else {
            return Err(img_rc::INVALID_IMAGE_HEADER);
        };
        let mut identity = self.identity;
        identity.slot = Some(u64::from(1 - self.journal.state().active_slot.min(1)));
        let state = DeviceState {
            sequence_floor: self.journal.state().floor,
            keyset: None,
        };
        let mut verified = Verified::empty();
        if let Err(e) =
            keyway_suit::verify_envelope_into(&mut verified, head, &self.anchors, &identity, &state)
        {
            let _ = e;
            return Err(img_rc::INVALID_IMAGE_HEADER);
        }
        let expectation = verified
            .payload
            .as_ref()
            .ok_or(img_rc::INVALID_IMAGE_HEADER)?;
        let mut installer = Installer::<Flash>::begin_with_manifest(
            flash,
            &mut self.journal,
            &self.layout,
            expectation,
            verified.manifest_digest,
            &head[..p.offset],
        )
        .map_err(|_| img_rc::FLASH_WRITE_FAILED)?;
        installer
            .push(flash, &mut self.journal, &head[p.offset..])
            .map_err(|_| img_rc::INVALID_HASH)?;
        let sequence = verified.sequence;
        drop(verified);
        self.upload.sequence = sequence;
        self.upload.installer = Some(installer);
        let _ = self.audit(flash, now_ms, &Event::DownloadStarted { sequence });
        Ok(())
    }

    /// Consent from owner `owner`: stored (bound to the upload's SHA-256)
    /// before the slot is armed (`TrialState::Pending`), and logged.
    fn consent(&mut self, flash: &mut Flash, owner: &KeyId, now_ms: u64) -> Result<Outcome, Fail> {
        let slot = self.upload.done.ok_or(Fail::State("no verified upload"))?;
        let sequence = self.upload.sequence;
        let consent = Consent {
            digest: self.upload.sha,
            sequence,
            granted_by: GrantedBy::Owner(*owner),
            time: self.time(now_ms),
        };
        self.store.grant_consent(flash, &consent)?;
        self.audit(flash, now_ms, &Event::ConsentGiven { sequence })?;
        let state = *self.journal.state();
        self.journal.commit(
            flash,
            &PersistentState {
                trial: TrialState::Pending { slot },
                ..state
            },
        )?;
        self.audit(flash, now_ms, &Event::UpdateInstalled { sequence, slot })?;
        self.upload.done = None;
        Ok(Outcome::Consented { slot, sequence })
    }

    /// The running image's self-test passed: `boot::confirm` raises the
    /// floor; the consent is spent; logged.
    #[inline(never)]
    pub fn confirm(&mut self, flash: &mut Flash, now_ms: u64, sequence: u64) -> Result<u8, Fail> {
        let pass = SelfTest {
            motor: true,
            sensors: true,
            comms: true,
        };
        let slot = boot::confirm(
            &mut self.journal,
            flash,
            pass,
            Confirmation {
                sequence,
                keyset_version: 0,
            },
        )
        .map_err(|_| Fail::State("confirm"))?;
        self.store.clear_consent(flash)?;
        self.audit(flash, now_ms, &Event::Confirmed { slot, sequence })?;
        Ok(slot)
    }

    /// The export's next chunk at `off` (0 starts a new export; its length
    /// is counted first by a dry run of the same export).
    fn log_chunk(
        &mut self,
        flash: &mut Flash,
        now_ms: u64,
        off: u64,
        out: &mut [u8],
    ) -> Result<(usize, u64), Fail> {
        if off == 0 {
            let export = self.log.export(self.time(now_ms));
            let mut probe = export.clone();
            let mut len = 0u64;
            loop {
                let n = probe.fill(&self.log, flash, &self.signer, out)?;
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
        let n = e.export.fill(&self.log, flash, &self.signer, out)?;
        e.pos += n as u64;
        Ok((n, e.len))
    }
}
