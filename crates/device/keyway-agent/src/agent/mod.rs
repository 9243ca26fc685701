//! The agent's dispatch: SMP frames in, answers and effects out.
//!
//! [`Agent`] owns the lock's owner-facing state and every limit around it:
//! the [`Store`] on its flash, the lock's device key, the pairing run and
//! its [`PairingGuard`], the [`SessionTable`] of handshakes and sessions,
//! the presence window, and the per-peer and reset limiters. It performs
//! no I/O: the shell passes each received frame with the peer it came
//! from ([`PeerId`], a hashed address), the time ([`Now`]), a random
//! source and the [`Device`] around it, and sends the answer the agent
//! writes into its buffer. The button is an input too
//! ([`Agent::button`]).
//!
//! # One frame
//!
//! [`Agent::handle`]:
//!
//! 1. splits the frame (`keyway-smp`: header checks, body at most
//!    [`MAX_BODY`]); a frame whose header does not decode, or a response,
//!    gets no answer; a bad length or version gets the SMP error;
//! 2. charges the peer's token bucket ([`PeerLimiter`]); a flooding peer
//!    is refused with [`Refusal::RateLimited`] and cannot use up anyone
//!    else's budget. A sealed record is charged only when it does not
//!    open: one that opens is an owner's traffic (uploads run sealed), and
//!    trying it costs one AEAD pass. A chunk of the peer's own upload in
//!    progress (a stock tool in the window) is not charged either;
//! 3. decodes the request into its typed form, and asks the authority
//!    table ([`authority`]) whether the sender may run it: a plain request
//!    counts as [`Authority::Window`] while the presence window is open
//!    and [`Authority::Anyone`] otherwise; a request sealed in a session
//!    counts as [`Authority::Owner`] with the session's key id, and
//!    nothing else makes an owner;
//! 4. runs it and writes the answer: a typed success, or an error body
//!    with `rc` and, for the Keyway group (or a request that asked with
//!    `"kw": true`), the typed refusal `kw-rc`;
//!    An OS reset while the window is open is allowed once per opening
//!    and closes the window (a person at the lock pays for each reset
//!    with a press); with the window shut, an owner's resets are charged
//!    to the [`ResetLimiter`] (one a minute, the first a minute after
//!    boot); anyone else's are refused;
//! 5. returns an [`Outcome`]: the answer's length and the [`Event`] the
//!    shell acts on after sending it (reset, factory reset) or records in
//!    the audit log (unlocked by, owner paired, consent, ...).
//!
//! # Pairing (ids 11 and 12)
//!
//! Needs the presence window **and** the setup code, proven by SPAKE2+
//! (`keyway-channel`) against the verifier in the store, so the lock
//! never holds the code. A plain read of id 11 gives the PBKDF parameters;
//! `Pake1` (write 11) and `Pake3` (write 12) follow. The run is **bound to
//! the peer that sent `Pake1`**: until it ends or times out
//! ([`Config::pairing_timeout_ms`]), another peer's `Pake1` or `Pake3` is
//! refused with [`Refusal::PairingBusy`] and leaves it untouched. Every
//! `Pake1` is charged to the [`PairingGuard`] *and* to the store's
//! wrong-code count before `Pake2` goes out (so a power cut forgets no
//! guess); after 3 free tries the waits double from 1 s, and 10 wrong
//! codes shut pairing until a person re-opens the window. A `Pake1`
//! byte-identical to the one that began the open run, from its peer, is a
//! retransmission (UDP lost the answer): it gets the same `Pake2` again,
//! neither restarting the run nor charging a guess. The agent keeps the
//! run's `Pake1` and `Pake2` (162 B) for that. A right code
//! stores the owner (a flash record: it survives a power cut), clears the
//! count, closes the window and yields [`Event::OwnerPaired`] with the new
//! owner's key id.
//!
//! # Sessions (ids 13, 14, 15)
//!
//! `msg1`/`msg3` of the SIGMA-I handshake (write 13 and 14) open a session
//! with a paired owner's key; an unpaired key and a bad proof get the same
//! [`Refusal::NotAuthorized`]. Each peer holds at most one unfinished
//! handshake (a new `msg1` from it abandons its previous one; the same
//! `msg1` again, a retransmission, gets the same `msg2` while the latest
//! handshake begun waits for its `msg3`: the agent keeps that one's
//! `msg1` and `msg2`, 223 B), and the
//! table never evicts a fresh handshake or a live session, so a flood of
//! handshakes from one peer cannot lock the owner out. A sealed record
//! (write 15, `{"rec": bstr}`) carries a whole SMP request frame; the
//! agent opens it (replayed, forged and out-of-order records are refused
//! with [`Refusal::RecordRefused`] and not run; a held-back one is
//! answered with the channel's authenticated *stale* status and not run),
//! runs it with the owner's authority, and seals the whole answer frame
//! back. OWNERS (read 16) lists the owners; UNPAIR (write 17) removes one
//! and closes its sessions (after sealing the answer to the request that
//! removed it).
//!
//! # Uploads
//!
//! An upload belongs to whoever began it (its first chunk, `off` 0): an
//! owner's session (by key id, so the owner's client may come back from
//! another address) or a peer in the window (by address). Another's chunk,
//! first chunk or erase is refused with [`Refusal::UploadBusy`] before the
//! shell sees it, so the upload is untouched; once it has been idle
//! [`UPLOAD_IDLE_MS`] a new first chunk may replace it. The last chunk
//! (by the length the first one declared) ends it.
//!
//! # Deliberate flaws (feature `flawed-profiles`)
//!
//! The simulator's `open-pairing` profile runs this agent with issue 12's
//! findings switched back on, so that `keyway audit` can be shown to fail
//! it: `flaws::Flaws` in [`Config`], consulted at the points marked
//! `FLAW` (pairing a plain `pair` in the window, the session table's
//! freshness, plain owner commands, the upload gate, the reset's authority
//! and limit, where consent is kept). The feature is off by default and
//! only `keyway-lock` enables it: a firmware build has none of this code.
//!
//! # Not here yet
//!
//! OS info, the image group's state, the upload's bytes, erase, release
//! notes and the log export are authorized (and uploads gated) here, then
//! served by the shell through [`Device::serve`] (the shell still drives
//! `keyway-device` and `keyway-audit`); consent is recorded here against
//! the pending update the shell reports ([`Device::firmware`]).

pub mod authority;
pub mod device;
#[cfg(feature = "flawed-profiles")]
pub mod flaws;

use embedded_storage::nor_flash::NorFlash;
use keyway_audit::Time;
use keyway_channel::SigningKey;
use keyway_channel::handshake::{MSG1_LEN, MSG2_LEN};
use keyway_channel::pairing::{PAKE1_LEN, PAKE2_LEN, PAKE4_LEN, SALT_LEN, VERIFIER_LEN};

// The store's copy of a verifier: w0 (32 B), L (32 B), salt, iterations.
const _: () = assert!(VERIFIER_LEN == 32 + 32 + SALT_LEN + 4);
use keyway_channel::rand_core::CryptoRng;
use keyway_channel::record::{MSG4_LEN, REQUEST_OVERHEAD, RESPONSE_OVERHEAD, session_id_of};
use keyway_channel::{
    GuardConfig, LockPairing, PairingGuard, ResponseStatus, SessionId, SessionTable,
    StoredVerifier, TableConfig,
};
use keyway_smp::cbor::Writer;
use keyway_smp::header::split_request;
use keyway_smp::kw::{self, Bolt};
use keyway_smp::{
    FrameError, HEADER_LEN, Header, MAX_BODY, MAX_FRAME, MgmtErr, Refusal, Request, RequestError,
    Response, os,
};

pub use authority::{Authority, Denial, Need, need, permits};
pub use device::{Device, Firmware, Pending, Sensors, ServeError};

use crate::limits::{PeerId, PeerLimiter, Rate, ResetLimiter, Verdict};
use crate::store::{self, Consent, GrantedBy, KeyId, MAX_OWNERS, PairedBy, Store, Verifier};

/// Peers the per-peer limiter tracks.
pub const PEERS: usize = 16;
/// An upload idle this long may be replaced by someone else's.
pub const UPLOAD_IDLE_MS: u64 = 30_000;
/// The smallest answer buffer [`Agent::handle`] needs for every answer:
/// a whole SMP frame.
pub const OUT_LEN: usize = MAX_FRAME;
/// The bytes a `sealed` body spends around its record: the map head, the
/// key `"rec"` and a byte string's 3-byte head.
const SEALED_WRAPPING: usize = 1 + 4 + 3;
/// The longest request frame a sealed record can carry: the outer body
/// stays within [`MAX_BODY`].
pub const MAX_SEALED_REQUEST: usize = MAX_BODY - SEALED_WRAPPING - REQUEST_OVERHEAD;
/// The longest answer frame a sealed record carries back (a longer
/// answer is not sent: the shell keeps its answers, such as log chunks,
/// below it).
pub const MAX_SEALED_ANSWER: usize = MAX_BODY - SEALED_WRAPPING - RESPONSE_OVERHEAD;

/// The agent's time limits and rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long a press of the button keeps the presence window open.
    pub window_ms: u64,
    /// A pairing run not finished by then may be taken by another peer.
    pub pairing_timeout_ms: u64,
    /// The session table's limits.
    pub table: TableConfig,
    /// The wrong-setup-code limits.
    pub guard: GuardConfig,
    /// Each peer's rate.
    pub peer_rate: Rate,
    /// The rate shared by peers that find no entry in the table.
    pub overflow_rate: Rate,
    /// Idle time after which a full entry may go to another peer.
    pub peer_idle_ms: u64,
    /// Deliberate flaws (the simulator's `open-pairing` profile; feature
    /// `flawed-profiles`, never in a firmware build).
    #[cfg(feature = "flawed-profiles")]
    pub flaws: flaws::Flaws,
}

impl Default for Config {
    /// A 120 s window, 30 s to finish a pairing, the channel's defaults,
    /// 10 requests a second per peer (bursts of 20).
    fn default() -> Self {
        Self {
            window_ms: 120_000,
            pairing_timeout_ms: 30_000,
            table: TableConfig::default(),
            guard: GuardConfig::default(),
            peer_rate: Rate {
                burst: 20,
                interval_ms: 100,
            },
            overflow_rate: Rate {
                burst: 20,
                interval_ms: 100,
            },
            peer_idle_ms: 60_000,
            #[cfg(feature = "flawed-profiles")]
            flaws: flaws::Flaws::NONE,
        }
    }
}

/// The time, as the shell reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Milliseconds of the lock's monotonic clock since boot.
    pub ms: u64,
    /// The wall time and boot counter recorded with owners and consent.
    pub time: Time,
}

/// A press of the lock's button.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Press {
    /// A short press: opens the presence window.
    Short,
    /// A long press: in an open window, allows a factory reset; with the
    /// window closed, it opens it like a short press.
    Long,
}

/// What happened, for the shell to act on (after sending the answer) and
/// to record in the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing to act on.
    None,
    /// An owner's session unlocked the door.
    Unlocked {
        /// The owner.
        by: KeyId,
    },
    /// An owner's session locked the door.
    Locked {
        /// The owner.
        by: KeyId,
    },
    /// Reset the lock (after sending the answer).
    Reset {
        /// Who asked.
        by: Authority,
    },
    /// A new owner paired with the setup code.
    OwnerPaired {
        /// Its key id.
        key_id: KeyId,
    },
    /// An owner removed an owner.
    OwnerRemoved {
        /// The removed owner.
        key_id: KeyId,
        /// The owner who removed it.
        by: KeyId,
    },
    /// An owner accepted or refused the pending update.
    Consent {
        /// Accepted (install) or refused (erase).
        accept: bool,
        /// The owner.
        by: KeyId,
    },
    /// An owner changed the settings.
    Settings {
        /// The owner.
        by: KeyId,
    },
    /// A factory reset: the owners, consent and settings are gone; the
    /// shell erases what else it keeps and resets.
    FactoryReset,
    /// A pairing attempt was charged (a guess at the setup code).
    PairingAttempt {
        /// Attempts not yet confirmed by a right code.
        failures: u32,
    },
    /// An owner opened a session.
    SessionOpened {
        /// The owner.
        owner: KeyId,
    },
}

/// What [`Agent::handle`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The answer's length in the output buffer (0: send nothing).
    pub len: usize,
    /// What the shell acts on or records.
    pub event: Event,
}

/// The presence window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    open_until_ms: u64,
    long_press: bool,
}

/// Who began the upload in progress: an owner (by key id, from any
/// address: a client that lost its socket goes on), or a peer in the
/// window (by address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Uploader {
    Owner(KeyId),
    Peer(PeerId),
}

/// The upload in progress, as far as the agent gates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct UploadBinding {
    by: Uploader,
    len: u64,
    last_ms: u64,
}

/// The pairing run and the peer it is bound to.
struct Run {
    pake: LockPairing,
    peer: Option<(PeerId, u64)>,
}

/// The lock agent (see the module doc). `N` is the number of session
/// slots (1 to 255).
pub struct Agent<F: NorFlash, const N: usize> {
    flash: F,
    store: Store<F>,
    device_key: SigningKey,
    config: Config,
    guard: PairingGuard,
    run: Run,
    table: SessionTable<N>,
    /// The peer that began the handshake in each slot.
    handshakes: [Option<(PeerId, SessionId)>; N],
    peers: PeerLimiter<PEERS>,
    resets: ResetLimiter,
    window: Window,
    upload: Option<UploadBinding>,
    /// The `Pake1` that began the open run and the `Pake2` answered: a
    /// retransmission gets the same answer. Meaningful only while
    /// [`Self::run_peer`] is some (both are set when a run opens). The
    /// message itself, not its SHA-256: 33 B more RAM, 316 B less code.
    pake_sent: ([u8; PAKE1_LEN], [u8; PAKE2_LEN]),
    /// The last handshake begun: its peer, session id, `msg1` and the
    /// `msg2` answered, so a retransmission of that `msg1` gets the same
    /// answer while the handshake waits for `msg3` (see the module doc).
    hs_sent: (PeerId, SessionId, [u8; MSG1_LEN], [u8; MSG2_LEN]),
    /// FLAW `ram_consent`: the consent held in RAM instead of the store.
    #[cfg(feature = "flawed-profiles")]
    ram_consent: Option<Consent>,
}

/// Where a request came from, inside the agent.
#[derive(Clone, Copy)]
struct Ctx {
    peer: PeerId,
    now: Now,
}

fn verdict_secs(v: Verdict) -> u64 {
    match v {
        Verdict::Allowed => 0,
        Verdict::Limited { retry_after_ms } => retry_after_ms.div_ceil(1000),
    }
}

/// The SMP code a refusal travels with.
fn rc_of(r: &Refusal) -> MgmtErr {
    match r {
        Refusal::RateLimited { .. } | Refusal::PairingBusy | Refusal::SessionsFull => MgmtErr::Busy,
        Refusal::UnknownSession
        | Refusal::UnknownOwner
        | Refusal::NothingPending
        | Refusal::NotProvisioned
        | Refusal::NoPairing
        | Refusal::NoExport => MgmtErr::NoEnt,
        Refusal::OwnersFull | Refusal::NotesNotOffered => MgmtErr::BadState,
        _ => MgmtErr::AccessDenied,
    }
}

/// Writes an error answer to `hdr` into `out`; 0 if it does not fit.
fn error_frame(
    out: &mut [u8],
    hdr: &Header,
    rc: MgmtErr,
    refusal: Option<Refusal>,
    typed: bool,
) -> usize {
    let refusal = refusal.filter(|_| typed);
    let body = keyway_smp::ErrorRsp {
        rc: Some(rc as u64),
        group: None,
        rsn: Some(refusal.map_or(rc.words(), |r| r.words())),
        refusal,
    };
    keyway_smp::answer_frame(out, hdr, |w| body.encode(w)).unwrap_or(0)
}

fn refuse_frame(out: &mut [u8], hdr: &Header, r: Refusal, typed: bool) -> usize {
    error_frame(out, hdr, rc_of(&r), Some(r), typed)
}

fn ok_frame(out: &mut [u8], hdr: &Header, rsp: &Response<'_>) -> usize {
    keyway_smp::answer_frame(out, hdr, |w| rsp.encode(w)).unwrap_or(0)
}

/// A `StoredVerifier` from the store's copy (`None`: not the channel's
/// salt length, so not a verifier the channel made).
fn stored_verifier(v: &Verifier) -> Option<StoredVerifier> {
    if v.salt().len() != SALT_LEN {
        return None;
    }
    let mut b = [0u8; VERIFIER_LEN];
    b[..32].copy_from_slice(v.w0());
    b[32..64].copy_from_slice(v.l());
    b[64..64 + SALT_LEN].copy_from_slice(v.salt());
    b[64 + SALT_LEN..].copy_from_slice(&v.iterations().to_le_bytes());
    StoredVerifier::from_bytes(&b).ok()
}

/// The store's copy of a channel verifier.
pub fn store_verifier(v: &StoredVerifier) -> Verifier {
    let b = v.to_bytes();
    let mut w0 = [0u8; 32];
    w0.copy_from_slice(&b[..32]);
    let mut l = [0u8; 32];
    l.copy_from_slice(&b[32..64]);
    // A 16-byte salt always fits the store's 32.
    Verifier::new(w0, l, &b[64..64 + SALT_LEN], v.iterations()).unwrap_or_else(|| {
        unreachable!("SALT_LEN is at most MAX_SALT");
    })
}

const _: () = assert!(SALT_LEN <= store::MAX_SALT);

impl<F: NorFlash, const N: usize> Agent<F, N> {
    /// Opens the store in `region` of `flash` and starts the agent at
    /// `now_ms` (after a boot): the wrong-code count read from the store
    /// restarts its wait, the reset limiter starts empty, the window is
    /// closed and there are no sessions.
    pub fn new(
        mut flash: F,
        region: store::Config,
        device_key: SigningKey,
        config: Config,
        now_ms: u64,
    ) -> Result<Self, store::Error<F::Error>> {
        let store = Store::open(&mut flash, region)?;
        let guard = PairingGuard::restore(config.guard, store.state().wrong_codes(), now_ms);
        #[cfg(feature = "flawed-profiles")]
        let config = {
            let mut c = config;
            if c.flaws.no_freshness {
                // FLAW `no_freshness`: a request held back for a day still
                // counts as fresh.
                c.table.freshness_ms = u64::MAX / 4;
                c.table.future_slack_ms = u64::MAX / 4;
            }
            c
        };
        Ok(Self {
            flash,
            store,
            device_key,
            config,
            guard,
            run: Run {
                pake: LockPairing::new(),
                peer: None,
            },
            table: SessionTable::new(config.table),
            handshakes: [None; N],
            peers: PeerLimiter::new(
                config.peer_rate,
                config.overflow_rate,
                config.peer_idle_ms,
                now_ms,
            ),
            resets: ResetLimiter::at_boot(now_ms),
            window: Window {
                open_until_ms: 0,
                long_press: false,
            },
            upload: None,
            pake_sent: ([0; PAKE1_LEN], [0; PAKE2_LEN]),
            hs_sent: (PeerId(0), 0, [0; MSG1_LEN], [0; MSG2_LEN]),
            #[cfg(feature = "flawed-profiles")]
            ram_consent: None,
        })
    }

    /// The stored state.
    pub fn state(&self) -> &store::State {
        self.store.state()
    }

    /// The flash the store lives on.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// Gives the flash back (a shell shutting down, a test's power cut).
    pub fn into_flash(self) -> F {
        self.flash
    }

    /// The lock's device public key (Ed25519).
    pub fn device_public_key(&self) -> [u8; 32] {
        self.device_key.verifying_key().to_bytes()
    }

    /// Stores the pairing verifier of the lock's setup code (provisioning).
    pub fn provision(&mut self, verifier: &StoredVerifier) -> Result<(), store::Error<F::Error>> {
        self.store
            .set_verifier(&mut self.flash, &store_verifier(verifier))
    }

    /// Records consent that did not come through an owner's session (the
    /// shell's: a person at the lock who tested or reset into the pending
    /// update in the presence window, or the owners' `auto_install_cve`
    /// setting). Written to the store before it returns: consent has one
    /// home, the store, which the installer reads.
    pub fn grant_consent(&mut self, consent: &Consent) -> Result<(), store::Error<F::Error>> {
        self.store_consent(Some(consent))
    }

    /// The consent the installer acts on: the store's (or, with the
    /// `ram_consent` flaw, the one held in RAM).
    pub fn consent(&self) -> Option<&Consent> {
        #[cfg(feature = "flawed-profiles")]
        if self.config.flaws.ram_consent {
            return self.ram_consent.as_ref();
        }
        self.store.state().consent()
    }

    /// Writes (`Some`) or clears (`None`) the consent record.
    fn store_consent(&mut self, consent: Option<&Consent>) -> Result<(), store::Error<F::Error>> {
        #[cfg(feature = "flawed-profiles")]
        if self.config.flaws.ram_consent {
            // FLAW `ram_consent`: nothing reaches the flash.
            self.ram_consent = consent.copied();
            return Ok(());
        }
        match consent {
            Some(c) => self.store.grant_consent(&mut self.flash, c),
            None => self.store.clear_consent(&mut self.flash),
        }
    }

    /// Drops the stored consent (the shell armed its install, or the
    /// update it names went away). Writes nothing when there is none.
    pub fn clear_consent(&mut self) -> Result<(), store::Error<F::Error>> {
        if self.consent().is_none() {
            return Ok(());
        }
        self.store_consent(None)
    }

    /// Whether the presence window is open at `now_ms`.
    pub fn window_open(&self, now_ms: u64) -> bool {
        now_ms < self.window.open_until_ms
    }

    /// Live sessions and unfinished handshakes at `now_ms`.
    pub fn sessions(&self, now_ms: u64) -> (usize, usize) {
        (self.table.sessions(now_ms), self.table.handshakes(now_ms))
    }

    /// The button was pressed at `now_ms`. A short press (or a long one
    /// with the window closed) opens the window for
    /// [`Config::window_ms`]; that is a person at the lock, so it also
    /// lifts the wrong-code lockout (the count is cleared in the store)
    /// and abandons any pairing run. A long press in an open window allows
    /// a factory reset until the window closes.
    pub fn button(&mut self, now_ms: u64, press: Press) -> Result<(), store::Error<F::Error>> {
        if press == Press::Long && self.window_open(now_ms) {
            self.window.long_press = true;
            return Ok(());
        }
        self.store.clear_wrong_codes(&mut self.flash)?;
        self.guard.reopen();
        self.run = Run {
            pake: LockPairing::new(),
            peer: None,
        };
        self.window = Window {
            open_until_ms: now_ms.saturating_add(self.config.window_ms),
            long_press: false,
        };
        Ok(())
    }

    /// Closes the presence window now (the person at the lock cancelled
    /// it; pairing closes it too). A long press given in it is forgotten.
    pub fn close_window(&mut self) {
        self.window = Window {
            open_until_ms: 0,
            long_press: false,
        };
    }

    /// Handles one received frame from `peer`; writes the answer into
    /// `out` (at least [`OUT_LEN`] bytes for every answer to fit; a
    /// shorter buffer gets no answer when it does not fit).
    pub fn handle<R: CryptoRng + ?Sized, D: Device>(
        &mut self,
        peer: PeerId,
        now: Now,
        rng: &mut R,
        device: &mut D,
        frame: &[u8],
        out: &mut [u8],
    ) -> Outcome {
        let none = |len| Outcome {
            len,
            event: Event::None,
        };
        let (hdr, body) = match split_request(frame, MAX_BODY) {
            Ok(v) => v,
            Err((Some(h), e)) => {
                let rc = match e {
                    FrameError::TooLong { .. } => MgmtErr::MsgSize,
                    FrameError::TooNew { .. } => MgmtErr::TooNew,
                    FrameError::WrongDirection { .. } => return none(0),
                    _ => MgmtErr::Inval,
                };
                return none(error_frame(out, &h, rc, None, false));
            }
            Err((None, _)) => return none(0),
        };
        let typed_group = hdr.group == keyway_smp::group::KEYWAY;
        // A sealed record is not charged up front: opening it costs one
        // AEAD pass (≈ 14k instructions), and one that opens is an owner's
        // traffic, which a bucket must not slow (uploads run sealed).
        // One that does not open is charged afterwards.
        let sealed = (hdr.op, hdr.group, hdr.id)
            == (
                keyway_smp::Op::Write,
                keyway_smp::group::KEYWAY,
                kw::cmd::SEALED,
            );
        // Nor is a chunk of this peer's own upload in progress (a stock
        // MCUmgr tool in the window): uploads go as fast as the link.
        let own_chunk = (hdr.op, hdr.group, hdr.id)
            == (
                keyway_smp::Op::Write,
                keyway_smp::group::IMAGE,
                keyway_smp::img::cmd::UPLOAD,
            )
            && self.upload.is_some_and(|b| b.by == Uploader::Peer(peer));
        let v = if sealed || own_chunk {
            Verdict::Allowed
        } else {
            self.peers.check(peer, now.ms)
        };
        if !v.is_allowed() {
            let r = Refusal::RateLimited {
                retry_s: verdict_secs(v),
            };
            return none(refuse_frame(out, &hdr, r, typed_group));
        }
        let req = match Request::decode(hdr.op, hdr.group, hdr.id, body) {
            Ok(r) => r,
            Err(RequestError::NotSupported { .. }) => {
                return none(error_frame(out, &hdr, MgmtErr::NotSup, None, false));
            }
            Err(RequestError::Body(_)) => {
                return none(error_frame(out, &hdr, MgmtErr::Inval, None, false));
            }
        };
        let who = if self.window_open(now.ms) {
            Authority::Window
        } else {
            Authority::Anyone
        };
        let ctx = Ctx { peer, now };
        #[cfg(feature = "flawed-profiles")]
        let who = match self.flawed(ctx, &hdr, &req, who, out) {
            Ok(who) => who,
            Err(outcome) => return outcome,
        };
        #[cfg(feature = "flawed-profiles")]
        let open_reset = self.config.flaws.open_reset && matches!(req, Request::Reset(_));
        #[cfg(not(feature = "flawed-profiles"))]
        let open_reset = false;
        if let Err(d) = permits(need(hdr.op, hdr.group, hdr.id), who, self.window.long_press)
            && !open_reset
        {
            return none(self.denied(out, &hdr, &req, d));
        }
        match req {
            Request::PakeParams => none(self.pake_params(&hdr, out)),
            Request::PakeStart(m) => self.pake_start(ctx, rng, &hdr, m.msg, out),
            Request::PakeFinish(m) => self.pake_finish(ctx, &hdr, m.msg, out),
            Request::SessionStart(m) => none(self.session_start(ctx, rng, &hdr, m.msg, out)),
            Request::SessionFinish(m) => self.session_finish(ctx, &hdr, m.msg, out),
            Request::Sealed(m) => {
                let (outcome, opened) = self.sealed(ctx, device, &hdr, m.msg, out);
                if !opened {
                    let _ = self.peers.check(peer, now.ms);
                }
                outcome
            }
            _ => self.command(ctx, device, &hdr, &req, who, out),
        }
    }

    /// The flaws' decision points before the authority table: a plain
    /// `pair` in the window pairs (`plain_pair`: `Err` carries its
    /// answer), and a plain owner command counts as the first owner's
    /// (`plain_owner`). Otherwise `who` as it was.
    #[cfg(feature = "flawed-profiles")]
    fn flawed(
        &mut self,
        ctx: Ctx,
        hdr: &Header,
        req: &Request<'_>,
        who: Authority,
        out: &mut [u8],
    ) -> Result<Authority, Outcome> {
        let f = self.config.flaws;
        if let Request::Pair(p) = req
            && f.plain_pair
            && who == Authority::Window
        {
            // FLAW `plain_pair`: the key is paired, no setup code.
            let paired = self.store.pair(
                &mut self.flash,
                &p.key,
                p.name.unwrap_or(""),
                ctx.now.time,
                PairedBy::SetupCode,
            );
            let (len, event) = match paired {
                Ok(key_id) => (
                    ok_frame(
                        out,
                        hdr,
                        &Response::Pair(kw::PairRsp {
                            owners: self.store.state().owner_count() as u64,
                            key_id,
                        }),
                    ),
                    Event::OwnerPaired { key_id },
                ),
                Err(store::Error::OwnersFull) => (
                    refuse_frame(out, hdr, Refusal::OwnersFull, true),
                    Event::None,
                ),
                Err(_) => (
                    error_frame(out, hdr, MgmtErr::Unknown, None, false),
                    Event::None,
                ),
            };
            return Err(Outcome { len, event });
        }
        if f.plain_owner
            && need(hdr.op, hdr.group, hdr.id) == Need::Owner
            && let Some(o) = self.store.state().owners().next()
        {
            // FLAW `plain_owner`: the radio is trusted.
            return Ok(Authority::Owner(o.id()));
        }
        Ok(who)
    }

    fn denied(&self, out: &mut [u8], hdr: &Header, req: &Request<'_>, d: Denial) -> usize {
        match d {
            Denial::NotSupported => error_frame(out, hdr, MgmtErr::NotSup, None, false),
            Denial::Refused(r) => refuse_frame(out, hdr, r, req.wants_typed_refusal()),
        }
    }

    // ----- pairing -------------------------------------------------------

    fn verifier(&self) -> Option<StoredVerifier> {
        self.store.state().verifier().and_then(stored_verifier)
    }

    #[inline(never)]
    fn pake_params(&self, hdr: &Header, out: &mut [u8]) -> usize {
        let Some(v) = self.verifier() else {
            return refuse_frame(out, hdr, Refusal::NotProvisioned, true);
        };
        let params = v.params();
        ok_frame(
            out,
            hdr,
            &Response::PakeParams(kw::PakeParams { msg: &params }),
        )
    }

    /// The peer the pairing run is bound to, if the run is still live.
    fn run_peer(&self, now_ms: u64) -> Option<PeerId> {
        self.run.peer.and_then(|(p, started)| {
            (now_ms.saturating_sub(started) <= self.config.pairing_timeout_ms).then_some(p)
        })
    }

    fn guard_refusal(e: keyway_channel::Error) -> Option<Refusal> {
        match e {
            keyway_channel::Error::Backoff { retry_in_ms } => Some(Refusal::RateLimited {
                retry_s: retry_in_ms.div_ceil(1000),
            }),
            keyway_channel::Error::LockedOut => Some(Refusal::PairingLockedOut),
            _ => None,
        }
    }

    #[inline(never)]
    fn pake_start<R: CryptoRng + ?Sized>(
        &mut self,
        ctx: Ctx,
        rng: &mut R,
        hdr: &Header,
        pake1: &[u8],
        out: &mut [u8],
    ) -> Outcome {
        let mut outcome = Outcome {
            len: 0,
            event: Event::None,
        };
        let Some(verifier) = self.verifier() else {
            outcome.len = refuse_frame(out, hdr, Refusal::NotProvisioned, true);
            return outcome;
        };
        if self.store.state().owner_count() >= MAX_OWNERS {
            outcome.len = refuse_frame(out, hdr, Refusal::OwnersFull, true);
            return outcome;
        }
        let again = match self.run_peer(ctx.now.ms) {
            Some(p) if p != ctx.peer => {
                outcome.len = refuse_frame(out, hdr, Refusal::PairingBusy, true);
                return outcome;
            }
            // Its own Pake1 again: the answer was lost, not a new guess.
            Some(_) => pake1 == self.pake_sent.0,
            None => false,
        };
        if !again {
            if let Err(e) = self.guard.check(ctx.now.ms) {
                let r = Self::guard_refusal(e).unwrap_or(Refusal::PairingLockedOut);
                outcome.len = refuse_frame(out, hdr, r, true);
                return outcome;
            }
            let before = self.guard.failures();
            let result = self.run.pake.pake1(
                &verifier,
                &mut self.guard,
                ctx.now.ms,
                rng,
                pake1,
                &mut self.pake_sent.1,
            );
            self.run.peer = None;
            if let Err(e) = result {
                outcome.len = match Self::guard_refusal(e) {
                    Some(r) => refuse_frame(out, hdr, r, true),
                    None => error_frame(out, hdr, MgmtErr::Inval, None, false),
                };
                return outcome;
            }
            // The attempt is charged: make it durable before the guess can
            // be tested against Pake2.
            if self.guard.failures() > before
                && self.store.record_wrong_code(&mut self.flash).is_err()
            {
                self.run.pake = LockPairing::new();
                outcome.len = error_frame(out, hdr, MgmtErr::Unknown, None, false);
                return outcome;
            }
            self.run.peer = Some((ctx.peer, ctx.now.ms));
            // (`pake1` took exactly `PAKE1_LEN` bytes.)
            if let Ok(p) = <[u8; PAKE1_LEN]>::try_from(pake1) {
                self.pake_sent.0 = p;
            }
            outcome.event = Event::PairingAttempt {
                failures: self.guard.failures(),
            };
        }
        let msg = &self.pake_sent.1;
        outcome.len = ok_frame(out, hdr, &Response::PakeStart(kw::PakeStartRsp { msg }));
        outcome
    }

    #[inline(never)]
    fn pake_finish(&mut self, ctx: Ctx, hdr: &Header, pake3: &[u8], out: &mut [u8]) -> Outcome {
        let mut outcome = Outcome {
            len: 0,
            event: Event::None,
        };
        match self.run_peer(ctx.now.ms) {
            Some(p) if p == ctx.peer => {}
            Some(_) => {
                outcome.len = refuse_frame(out, hdr, Refusal::PairingBusy, true);
                return outcome;
            }
            None => {
                self.run = Run {
                    pake: LockPairing::new(),
                    peer: None,
                };
                outcome.len = refuse_frame(out, hdr, Refusal::NoPairing, true);
                return outcome;
            }
        }
        let mut pake4 = [0u8; PAKE4_LEN];
        let result = self.run.pake.pake3(
            &mut self.guard,
            pake3,
            &self.device_key.verifying_key().to_bytes(),
            &mut pake4,
        );
        self.run.peer = None;
        let owner = match result {
            Ok(o) => o,
            Err(keyway_channel::Error::WrongCode) => {
                outcome.len = refuse_frame(out, hdr, Refusal::BadSetupCode, true);
                return outcome;
            }
            Err(_) => {
                outcome.len = refuse_frame(out, hdr, Refusal::NotAuthorized, true);
                return outcome;
            }
        };
        let paired = self.store.pair(
            &mut self.flash,
            &owner.public_key,
            owner.name(),
            ctx.now.time,
            PairedBy::SetupCode,
        );
        let key_id = match paired {
            Ok(id) => id,
            Err(store::Error::OwnersFull) => {
                outcome.len = refuse_frame(out, hdr, Refusal::OwnersFull, true);
                return outcome;
            }
            Err(store::Error::KeyIdTaken { .. }) => {
                outcome.len = refuse_frame(out, hdr, Refusal::NotAuthorized, true);
                return outcome;
            }
            Err(_) => {
                outcome.len = error_frame(out, hdr, MgmtErr::Unknown, None, false);
                return outcome;
            }
        };
        // The count is back to zero in the guard; the store follows (a
        // failure here only leaves a stricter count for the next boot).
        let _ = self.store.clear_wrong_codes(&mut self.flash);
        self.close_window();
        outcome.event = Event::OwnerPaired { key_id };
        outcome.len = ok_frame(
            out,
            hdr,
            &Response::PakeFinish(kw::PakeFinishRsp {
                msg: &pake4,
                key_id,
                owners: self.store.state().owner_count() as u64,
            }),
        );
        outcome
    }

    // ----- sessions ------------------------------------------------------

    #[inline(never)]
    fn session_start<R: CryptoRng + ?Sized>(
        &mut self,
        ctx: Ctx,
        rng: &mut R,
        hdr: &Header,
        msg1: &[u8],
        out: &mut [u8],
    ) -> usize {
        // Its own msg1 again while that handshake waits for msg3: the
        // answer was lost or late, so the same msg2, the handshake kept.
        let (peer, sid, sent1, sent2) = &self.hs_sent;
        if *peer == ctx.peer
            && msg1 == sent1
            && self.handshakes.get((*sid & 0xff) as usize) == Some(&Some((*peer, *sid)))
        {
            return ok_frame(
                out,
                hdr,
                &Response::SessionStart(kw::SessionStartRsp { msg: sent2 }),
            );
        }
        // One unfinished handshake per peer: its new one replaces its old.
        for h in self.handshakes.iter_mut() {
            if let Some((p, sid)) = *h
                && p == ctx.peer
            {
                if !self.table.is_session(sid, ctx.now.ms) {
                    self.table.close(sid);
                }
                *h = None;
            }
        }
        let mut msg2 = [0u8; keyway_channel::handshake::MSG2_LEN];
        match self
            .table
            .handshake1(ctx.now.ms, rng, &self.device_key, msg1, &mut msg2)
        {
            Ok(sid) => {
                if let Some(h) = self.handshakes.get_mut((sid & 0xff) as usize) {
                    *h = Some((ctx.peer, sid));
                }
                // (`handshake1` took exactly `MSG1_LEN` bytes.)
                if let Ok(m) = <[u8; MSG1_LEN]>::try_from(msg1) {
                    self.hs_sent = (ctx.peer, sid, m, msg2);
                }
                ok_frame(
                    out,
                    hdr,
                    &Response::SessionStart(kw::SessionStartRsp { msg: &msg2 }),
                )
            }
            Err(keyway_channel::Error::Busy) => refuse_frame(out, hdr, Refusal::SessionsFull, true),
            Err(_) => error_frame(out, hdr, MgmtErr::Inval, None, false),
        }
    }

    #[inline(never)]
    fn session_finish(&mut self, ctx: Ctx, hdr: &Header, msg3: &[u8], out: &mut [u8]) -> Outcome {
        let mut msg4 = [0u8; MSG4_LEN];
        let owners = self.store.state();
        let result = self.table.handshake3(
            ctx.now.ms,
            msg3,
            |kid| owners.owner(kid).map(|o| *o.key()),
            &mut msg4,
        );
        let (len, event) = match result {
            Ok((sid, owner)) => {
                if let Some(h) = self.handshakes.get_mut((sid & 0xff) as usize) {
                    *h = None;
                }
                (
                    ok_frame(
                        out,
                        hdr,
                        &Response::SessionFinish(kw::SessionFinishRsp { msg: &msg4 }),
                    ),
                    Event::SessionOpened { owner },
                )
            }
            Err(keyway_channel::Error::Refused) => (
                refuse_frame(out, hdr, Refusal::NotAuthorized, true),
                Event::None,
            ),
            Err(
                keyway_channel::Error::UnknownSession | keyway_channel::Error::UnexpectedMessage,
            ) => (
                refuse_frame(out, hdr, Refusal::UnknownSession, true),
                Event::None,
            ),
            Err(_) => (
                error_frame(out, hdr, MgmtErr::Inval, None, false),
                Event::None,
            ),
        };
        Outcome { len, event }
    }

    /// A sealed record: its answer, and whether it opened under a
    /// session's key (an owner's traffic, not charged to the peer).
    // Kept out of `handle` so its buffers are on the stack only on
    // this path (the paths' frames are not merged into one).
    #[inline(never)]
    fn sealed<D: Device>(
        &mut self,
        ctx: Ctx,
        device: &mut D,
        hdr: &Header,
        rec: &[u8],
        out: &mut [u8],
    ) -> (Outcome, bool) {
        let mut outcome = Outcome {
            len: 0,
            event: Event::None,
        };
        // The record is opened in place here, and the answer sealed here
        // after the request in it has run.
        let mut space = [0u8; MAX_BODY];
        let Some(buf) = space.get_mut(..rec.len()) else {
            outcome.len = refuse_frame(out, hdr, Refusal::RecordRefused, true);
            return (outcome, false);
        };
        buf.copy_from_slice(rec);
        let now = ctx.now.ms;
        let opened = match self.table.open_request(now, buf) {
            Ok(o) => o,
            Err(keyway_channel::Error::Stale { .. }) => {
                // Authenticated "stale": the client re-syncs and sends a
                // new request; this one did not run.
                let sid = session_id_of(rec).unwrap_or(0);
                let counter = rec
                    .get(4..12)
                    .and_then(|c| c.try_into().ok())
                    .map_or(0, u64::from_le_bytes);
                let mut sealed = [0u8; RESPONSE_OVERHEAD];
                outcome.len = match self.table.seal_response(
                    now,
                    sid,
                    counter,
                    ResponseStatus::Stale,
                    &[],
                    &mut sealed,
                ) {
                    Ok(n) => ok_frame(
                        out,
                        hdr,
                        &Response::Sealed(kw::Sealed { msg: &sealed[..n] }),
                    ),
                    Err(_) => refuse_frame(out, hdr, Refusal::RecordRefused, true),
                };
                return (outcome, true);
            }
            Err(keyway_channel::Error::UnknownSession) => {
                outcome.len = refuse_frame(out, hdr, Refusal::UnknownSession, true);
                return (outcome, false);
            }
            Err(_) => {
                outcome.len = refuse_frame(out, hdr, Refusal::RecordRefused, true);
                return (outcome, false);
            }
        };
        if self.store.state().owner(&opened.owner).is_none() {
            self.table.close_owner(&opened.owner);
            outcome.len = refuse_frame(out, hdr, Refusal::UnknownSession, true);
            return (outcome, false);
        }
        // The inner request: a whole SMP frame, run as the owner.
        // Its answer is written into `out` first (no third buffer), sealed
        // from there into the buffer the request was in (no longer
        // needed), then framed back into `out`.
        let who = Authority::Owner(opened.owner);
        let payload = buf.get(opened.payload.clone()).unwrap_or(&[]);
        let limit = out.len().min(MAX_SEALED_ANSWER);
        let (n, event) = match out.get_mut(..limit) {
            Some(o) => self.inner(ctx, device, payload, who, o),
            None => (0, Event::None),
        };
        outcome.event = event;
        let answer = out.get(..n).unwrap_or(&[]);
        outcome.len = match self.table.seal_response(
            now,
            opened.session,
            opened.counter,
            ResponseStatus::Ok,
            answer,
            &mut space,
        ) {
            Ok(m) => ok_frame(
                out,
                hdr,
                &Response::Sealed(kw::Sealed {
                    msg: space.get(..m).unwrap_or(&[]),
                }),
            ),
            Err(_) => refuse_frame(out, hdr, Refusal::RecordRefused, true),
        };
        // An owner removed (perhaps the sender itself) loses its sessions
        // once the answer is sealed.
        if let Event::OwnerRemoved { key_id, .. } = event {
            self.table.close_owner(&key_id);
        }
        (outcome, true)
    }

    /// Runs a request frame that came sealed; writes its answer frame.
    #[inline(never)]
    fn inner<D: Device>(
        &mut self,
        ctx: Ctx,
        device: &mut D,
        frame: &[u8],
        who: Authority,
        out: &mut [u8],
    ) -> (usize, Event) {
        let (hdr, body) = match split_request(frame, MAX_BODY) {
            Ok(v) => v,
            Err((Some(h), e)) => {
                let rc = match e {
                    FrameError::TooLong { .. } => MgmtErr::MsgSize,
                    FrameError::TooNew { .. } => MgmtErr::TooNew,
                    _ => MgmtErr::Inval,
                };
                return (error_frame(out, &h, rc, None, false), Event::None);
            }
            Err((None, _)) => return (0, Event::None),
        };
        let req = match Request::decode(hdr.op, hdr.group, hdr.id, body) {
            Ok(r) => r,
            Err(RequestError::NotSupported { .. }) => {
                return (
                    error_frame(out, &hdr, MgmtErr::NotSup, None, false),
                    Event::None,
                );
            }
            Err(RequestError::Body(_)) => {
                return (
                    error_frame(out, &hdr, MgmtErr::Inval, None, false),
                    Event::None,
                );
            }
        };
        if let Err(d) = permits(need(hdr.op, hdr.group, hdr.id), who, false) {
            return (self.denied(out, &hdr, &req, d), Event::None);
        }
        let o = self.command(ctx, device, &hdr, &req, who, out);
        (o.len, o.event)
    }

    // ----- commands ------------------------------------------------------

    fn status_rsp<'d>(&self, sensors: Sensors, fw: &Firmware<'d>, now_ms: u64) -> kw::Status<'d> {
        let s = self.store.state().settings();
        kw::Status {
            bolt: sensors.bolt,
            door: sensors.door,
            battery_mv: sensors.battery_mv,
            battery_mwh: sensors.battery_mwh,
            tamper: sensors.tamper,
            lockout_s: sensors.lockout_s,
            model: fw.model,
            version: fw.version,
            slot: fw.slot,
            image: fw.image,
            trial: fw.trial,
            presence_s: self
                .window
                .open_until_ms
                .saturating_sub(now_ms)
                .div_ceil(1000),
            owners: self.store.state().owner_count() as u64,
            update: fw.update,
            settings: kw::Settings {
                auto_install_cve: s.auto_install_cve,
                install_needs_unlocked: s.install_needs_unlocked,
            },
            device_key: Some(self.device_key.verifying_key().to_bytes()),
        }
    }

    /// Runs an authorized command (not a channel message).
    #[inline(never)]
    fn command<D: Device>(
        &mut self,
        ctx: Ctx,
        device: &mut D,
        hdr: &Header,
        req: &Request<'_>,
        who: Authority,
        out: &mut [u8],
    ) -> Outcome {
        let now = ctx.now;
        let typed = req.wants_typed_refusal();
        let by = match who {
            Authority::Owner(k) => Some(k),
            _ => None,
        };
        let mut event = Event::None;
        let len = match *req {
            Request::Echo(m) => ok_frame(out, hdr, &Response::Echo(os::EchoRsp { r: m.d })),
            Request::Params => ok_frame(
                out,
                hdr,
                &Response::Params(os::ParamsRsp {
                    buf_size: MAX_FRAME as u64,
                    buf_count: 1,
                }),
            ),
            Request::Presence(_) => ok_frame(
                out,
                hdr,
                &Response::Presence(kw::Presence {
                    open: self.window_open(now.ms),
                    remaining_s: self
                        .window
                        .open_until_ms
                        .saturating_sub(now.ms)
                        .div_ceil(1000),
                }),
            ),
            Request::Reset(_) => {
                // A reset while the window is open is paid for by the
                // press that opened it, and consumes it (below): one reset
                // per press, so a loop of resets needs a person at the
                // lock for each. (An owner's sealed reset in the window
                // counts the same: anyone in range could send a plain one
                // then.) With the window shut only an owner may reset,
                // from afar, and its resets are rate-limited.
                let in_window = self.window_open(now.ms);
                // FLAW `open_reset`: no limit either.
                #[cfg(feature = "flawed-profiles")]
                let unlimited = in_window || self.config.flaws.open_reset;
                #[cfg(not(feature = "flawed-profiles"))]
                let unlimited = in_window;
                let v = if unlimited {
                    Verdict::Allowed
                } else {
                    self.resets.check(now.ms)
                };
                if v.is_allowed() {
                    // The lock may decline (the reset of `smpmgr upgrade`
                    // in the window is the consent to install, and an
                    // install the policy postpones resets nothing now).
                    match device.reset_requested(who) {
                        Ok(()) => {
                            if in_window {
                                self.close_window();
                            }
                            event = Event::Reset { by: who };
                            ok_frame(out, hdr, &Response::Reset)
                        }
                        Err(e) => error_frame(out, hdr, e.rc, e.refusal, typed),
                    }
                } else {
                    let r = Refusal::RateLimited {
                        retry_s: verdict_secs(v),
                    };
                    refuse_frame(out, hdr, r, typed)
                }
            }
            Request::Status(_) => {
                let fw = device.firmware();
                let st = self.status_rsp(device.sensors(), &fw, now.ms);
                ok_frame(out, hdr, &Response::Status(st))
            }
            Request::Lock(_) | Request::Unlock(_) => {
                // Only an owner's session gets here (authority table).
                let Some(by) = by else {
                    return Outcome {
                        len: refuse_frame(out, hdr, Refusal::SessionRequired, true),
                        event,
                    };
                };
                let (to, e) = match req {
                    Request::Unlock(_) => (Bolt::Unlocked, Event::Unlocked { by }),
                    _ => (Bolt::Locked, Event::Locked { by }),
                };
                let bolt = device.drive_bolt(to);
                event = e;
                let fw = device.firmware();
                let mut st = self.status_rsp(device.sensors(), &fw, now.ms);
                st.bolt = bolt;
                ok_frame(out, hdr, &Response::Status(st))
            }
            Request::Consent(m) => {
                let Some(by) = by else {
                    return Outcome {
                        len: refuse_frame(out, hdr, Refusal::SessionRequired, true),
                        event,
                    };
                };
                let fw = device.firmware();
                match fw.pending {
                    None => refuse_frame(out, hdr, Refusal::NothingPending, true),
                    Some(p) if !p.notes_offered => {
                        refuse_frame(out, hdr, Refusal::NotesNotOffered, true)
                    }
                    Some(p) => {
                        let r = if m.accept {
                            self.store_consent(Some(&Consent {
                                digest: p.digest,
                                sequence: p.sequence,
                                granted_by: GrantedBy::Owner(by),
                                time: now.time,
                            }))
                        } else {
                            self.store_consent(None)
                        };
                        match r {
                            Ok(()) => {
                                event = Event::Consent {
                                    accept: m.accept,
                                    by,
                                };
                                // The installer acts on it now (arms the
                                // update, or erases the refused one), so
                                // the answer tells where it stands.
                                device.consent_stored(m.accept.then_some(p.digest));
                                let fw = device.firmware();
                                ok_frame(
                                    out,
                                    hdr,
                                    &Response::Consent(kw::ConsentRsp { update: fw.update }),
                                )
                            }
                            Err(_) => error_frame(out, hdr, MgmtErr::Unknown, None, false),
                        }
                    }
                }
            }
            Request::Settings(m) => {
                let Some(by) = by else {
                    return Outcome {
                        len: refuse_frame(out, hdr, Refusal::SessionRequired, true),
                        event,
                    };
                };
                let mut s = self.store.state().settings();
                if let Some(v) = m.auto_install_cve {
                    s.auto_install_cve = v;
                }
                if let Some(v) = m.install_needs_unlocked {
                    s.install_needs_unlocked = v;
                }
                match self.store.set_settings(&mut self.flash, s) {
                    Ok(()) => {
                        event = Event::Settings { by };
                        ok_frame(
                            out,
                            hdr,
                            &Response::Settings(kw::SettingsRsp {
                                settings: kw::Settings {
                                    auto_install_cve: s.auto_install_cve,
                                    install_needs_unlocked: s.install_needs_unlocked,
                                },
                            }),
                        )
                    }
                    Err(_) => error_frame(out, hdr, MgmtErr::Unknown, None, false),
                }
            }
            Request::Owners(_) => {
                let mut list = [kw::OwnerEntry {
                    key_id: [0; 8],
                    name: "",
                    paired: None,
                }; MAX_OWNERS];
                let mut n = 0;
                for (slot, o) in list.iter_mut().zip(self.store.state().owners()) {
                    // The store keeps the lock's RTC and boot count, not a
                    // calendar time: `paired` stays out.
                    *slot = kw::OwnerEntry {
                        key_id: o.id(),
                        name: o.name(),
                        paired: None,
                    };
                    n += 1;
                }
                ok_frame(
                    out,
                    hdr,
                    &Response::Owners(kw::OwnersRsp {
                        owners: keyway_smp::seq::Seq::Items(&list[..n]),
                    }),
                )
            }
            Request::Unpair(m) => {
                let Some(by) = by else {
                    return Outcome {
                        len: refuse_frame(out, hdr, Refusal::SessionRequired, true),
                        event,
                    };
                };
                match self.store.remove_owner(&mut self.flash, &m.key_id) {
                    Ok(_) => {
                        event = Event::OwnerRemoved {
                            key_id: m.key_id,
                            by,
                        };
                        ok_frame(
                            out,
                            hdr,
                            &Response::Unpair(kw::UnpairRsp {
                                key_id: m.key_id,
                                owners: self.store.state().owner_count() as u64,
                            }),
                        )
                    }
                    Err(store::Error::UnknownOwner { .. }) => {
                        refuse_frame(out, hdr, Refusal::UnknownOwner, true)
                    }
                    Err(_) => error_frame(out, hdr, MgmtErr::Unknown, None, false),
                }
            }
            Request::FactoryReset => match self.factory_reset() {
                Ok(()) => {
                    event = Event::FactoryReset;
                    ok_frame(
                        out,
                        hdr,
                        &Response::FactoryReset(kw::FactoryResetRsp { owners: 0 }),
                    )
                }
                Err(_) => error_frame(out, hdr, MgmtErr::Unknown, None, false),
            },
            Request::Upload(u) => {
                let me = match who {
                    Authority::Owner(k) => Uploader::Owner(k),
                    _ => Uploader::Peer(ctx.peer),
                };
                if let Some(r) = self.upload_gate(me, u.off, now.ms) {
                    refuse_frame(out, hdr, r, typed)
                } else {
                    let (len, ok) = Self::serve(device, hdr, req, who, typed, out);
                    if ok {
                        self.upload_took(me, &u, now.ms);
                    } else if self.upload.is_some_and(|b| b.by == me) {
                        // The shell refused the chunk and dropped the
                        // upload (a bad head, digest or size): it binds
                        // nobody any more, or the lock would refuse every
                        // other uploader for UPLOAD_IDLE_MS.
                        self.upload = None;
                    }
                    len
                }
            }
            Request::Erase(_) => {
                let me = match who {
                    Authority::Owner(k) => Uploader::Owner(k),
                    _ => Uploader::Peer(ctx.peer),
                };
                // Erasing the slot would destroy someone else's upload.
                if let Some(r) = self.upload_gate(me, 1, now.ms) {
                    refuse_frame(out, hdr, r, typed)
                } else {
                    let (len, ok) = Self::serve(device, hdr, req, who, typed, out);
                    if ok && self.upload.is_some_and(|b| b.by == me) {
                        self.upload = None;
                    }
                    len
                }
            }
            Request::Info(_)
            | Request::ImageState
            | Request::ImageStateWrite(_)
            | Request::Notes(_)
            | Request::Log(_) => Self::serve(device, hdr, req, who, typed, out).0,
            // Channel messages are handled before; anything else was
            // refused by the authority table.
            _ => error_frame(out, hdr, MgmtErr::NotSup, None, false),
        };
        Outcome { len, event }
    }

    /// Whether `me` may send an upload chunk at `off` now: `None` if so,
    /// else the refusal. An upload in progress belongs to whoever began it
    /// until it has been idle [`UPLOAD_IDLE_MS`]; then only a new first
    /// chunk (`off` 0) may replace it.
    fn upload_gate(&self, me: Uploader, off: u64, now_ms: u64) -> Option<Refusal> {
        // FLAW `any_chunk`: whoever sends a chunk, it goes in.
        #[cfg(feature = "flawed-profiles")]
        if self.config.flaws.any_chunk {
            return None;
        }
        let b = self.upload?;
        if b.by == me {
            return None;
        }
        let idle = now_ms.saturating_sub(b.last_ms) >= UPLOAD_IDLE_MS;
        (!idle || off != 0).then_some(Refusal::UploadBusy)
    }

    /// The shell took a chunk of `me`'s upload.
    fn upload_took(&mut self, me: Uploader, u: &keyway_smp::img::Upload<'_>, now_ms: u64) {
        if u.off == 0 {
            self.upload = Some(UploadBinding {
                by: me,
                len: u.len.unwrap_or(0),
                last_ms: now_ms,
            });
        } else if let Some(b) = self.upload.as_mut() {
            b.last_ms = now_ms;
        }
        // The last chunk ends it.
        if let Some(b) = self.upload
            && u.off.saturating_add(u.data.len() as u64) >= b.len
        {
            self.upload = None;
        }
    }

    /// The shell serves `req`; returns the answer's length and whether it
    /// is a success.
    fn serve<D: Device>(
        device: &mut D,
        hdr: &Header,
        req: &Request<'_>,
        who: Authority,
        typed: bool,
        out: &mut [u8],
    ) -> (usize, bool) {
        let Some((head, rest)) = out.split_at_mut_checked(HEADER_LEN) else {
            return (0, false);
        };
        let mut w = Writer::new(rest);
        match device.serve(req, who, &mut w) {
            Ok(()) => {
                let n = w.len();
                let Ok(len) = u16::try_from(n) else {
                    return (0, false);
                };
                let mut h = hdr.response();
                h.len = len;
                head.copy_from_slice(&h.encode());
                (HEADER_LEN + n, true)
            }
            Err(ServeError {
                group_rc: Some(g),
                refusal,
                ..
            }) if hdr.smp_version() == keyway_smp::Version::V2 => {
                let refusal = refusal.filter(|_| typed);
                let body = keyway_smp::ErrorRsp {
                    rc: None,
                    group: Some((hdr.group, u64::from(g))),
                    rsn: None,
                    refusal,
                };
                (
                    keyway_smp::answer_frame(out, hdr, |w| body.encode(w)).unwrap_or(0),
                    false,
                )
            }
            Err(e) => (error_frame(out, hdr, e.rc, e.refusal, typed), false),
        }
    }

    /// Factory reset, keeping the setup code's verifier (it is printed on
    /// the lock): consent cleared, settings back to their defaults, then
    /// each owner removed, one record each, so a power cut part way leaves
    /// fewer owners and the person repeats the reset.
    fn factory_reset(&mut self) -> Result<(), store::Error<F::Error>> {
        self.store.clear_consent(&mut self.flash)?;
        self.store
            .set_settings(&mut self.flash, store::Settings::default())?;
        self.store.clear_wrong_codes(&mut self.flash)?;
        loop {
            let first = self.store.state().owners().next().map(|o| o.id());
            let Some(id) = first else { break };
            self.store.remove_owner(&mut self.flash, &id)?;
            self.table.close_owner(&id);
        }
        self.close_window();
        self.run = Run {
            pake: LockPairing::new(),
            peer: None,
        };
        self.upload = None;
        Ok(())
    }
}

/// A flash handle of no size, to state the agent's own RAM at compile
/// time (a lock's flash driver is a zero-size or pointer-size handle).
mod size {
    use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};

    pub struct NoFlash;

    impl ErrorType for NoFlash {
        type Error = NorFlashErrorKind;
    }

    impl ReadNorFlash for NoFlash {
        const READ_SIZE: usize = 1;
        fn read(&mut self, _: u32, _: &mut [u8]) -> Result<(), Self::Error> {
            Err(NorFlashErrorKind::Other)
        }
        fn capacity(&self) -> usize {
            0
        }
    }

    impl NorFlash for NoFlash {
        const WRITE_SIZE: usize = 4;
        const ERASE_SIZE: usize = 4096;
        fn erase(&mut self, _: u32, _: u32) -> Result<(), Self::Error> {
            Err(NorFlashErrorKind::Other)
        }
        fn write(&mut self, _: u32, _: &[u8]) -> Result<(), Self::Error> {
            Err(NorFlashErrorKind::Other)
        }
    }

    /// The agent with 4 session slots, without its flash handle: 3,200
    /// bytes on thumbv7em-none-eabihf (and on x86-64; 408 B of it keep the last
    /// `Pake1`/`Pake2` and `msg1`/`msg2`, answered again to a
    /// retransmission); bounded here on every target.
    pub const AGENT_4: usize = core::mem::size_of::<super::Agent<NoFlash, 4>>();
    const _: () = assert!(AGENT_4 <= 3328);
}

/// The size of `Agent<F, 4>` without its flash handle, in bytes, on the
/// target this is built for.
pub const AGENT_RAM_4_SLOTS: usize = size::AGENT_4;
