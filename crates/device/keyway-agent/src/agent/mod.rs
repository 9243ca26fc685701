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
//! The code is one module per job, each an `impl Agent` block: this
//! module holds the agent's state, its inputs and [`Agent::handle`]'s
//! dispatch; `config` and `outcome` the types the shell passes in and gets
//! back; `frames` the answer frames; `pairing`, `sessions` and `commands`
//! what each kind of request runs (the sections below); [`authority`] the
//! table of who may run what; [`device`] the shell's side.
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
mod commands;
mod config;
pub mod device;
#[cfg(feature = "flawed-profiles")]
pub mod flaws;
mod frames;
mod outcome;
mod pairing;
mod sessions;

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
use keyway_smp::keyway_group::{self, Bolt};
use keyway_smp::{
    FrameError, HEADER_LEN, Header, MAX_BODY, MAX_FRAME, MgmtErr, Refusal, Request, RequestError,
    Response, os,
};

pub use authority::{Authority, Denial, Need, need, permits};
pub use config::Config;
pub use device::{Authorized, Device, Firmware, Pending, Sensors, ServeError};
use frames::{error_frame, frame_rc, ok_frame, refuse_frame, verdict_secs};
pub use outcome::{Event, Outcome};
pub use pairing::store_verifier;

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
        let none = Outcome::answer;
        let (hdr, body) = match split_request(frame, MAX_BODY) {
            Ok(v) => v,
            // An answer sent to the lock gets none.
            Err((_, FrameError::WrongDirection { .. })) => return none(0),
            Err((Some(h), e)) => return none(error_frame(out, &h, frame_rc(&e), None, false)),
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
                keyway_group::cmd::SEALED,
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
            _ => {
                let call = Authorized {
                    request: &req,
                    by: who,
                };
                self.command(ctx, device, &hdr, call, out)
            }
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
                        &Response::Pair(keyway_group::PairRsp {
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
