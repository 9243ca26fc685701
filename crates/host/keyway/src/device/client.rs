//! The SMP client: typed calls over a [`Transport`], the owner's secure
//! channel, and the lock's refusals turned into sentences.
//!
//! # The owner's channel
//!
//! Without an owner key a call goes in the clear: the lock answers what
//! the presence window (a person at the lock) or nobody's authority
//! allows. An owner uses **the secure channel** (the lock agent,
//! `keyway-agent`): the owner
//!   pairs once with the lock's setup code ([`Client::pair_with_code`]:
//!   read id 11 → `ClientPairing::start` → write 11 `{pake1}` → `pake2` →
//!   write 12 `{pake3}` → `pake4`, which yields the lock's device key).
//!   With that key ([`Client::with_paired_lock`]) every call runs *sealed*:
//!   a SIGMA-I handshake (ids 13, 14) proves the lock's device key and the
//!   owner's key, then each request frame travels as a sealed record
//!   (id 15) and only an answer that opens under the session's key, bound
//!   to the request's counter, is an answer. A forged, altered or replayed
//!   answer is [`DeviceError::Channel`] (never a success); a plain error in
//!   place of a sealed answer is an error too. The lock's authenticated
//!   *stale* status (the request was held back, not run) re-syncs the
//!   clock and the request goes once more with a new counter; the lock's
//!   `UnknownSession` refusal (it restarted, or the session expired) runs
//!   a new handshake and sends once more; its `RecordRefused` (UDP resent a
//!   record whose answer was lost: the lock took the copy for a replay)
//!   sends once more with a new counter. Those two refusals are plain, so a
//!   man in the middle can fake them after the lock ran a request: the
//!   command then runs at most twice, which leaves the state the owner
//!   asked for (every owner command sets a state: bolt, consent, settings,
//!   owners), and the client still reports only an answer that opened.
//!   Factory reset always goes in the clear (its authority is the person at
//!   the lock, not a session). A different lock (another device
//!   key) fails the handshake: [`keyway_channel::Error::LockNotAuthenticated`],
//!   and nothing is sent to it.
//!
//! There is no other owner path: the older signed requests (an `auth`
//! map signed over a `challenge` nonce, `pair OWNER.pub`) are gone, and
//! the lock answers those command ids `ENOTSUP`. An owner key without
//! the lock's device key runs nothing as an owner: the command line
//! refuses it before sending anything and says to pair by setup code
//! (`cli.rs`, [`super::cli::NotPaired`]).

use ciborium::Value;
use keyway_smp::header::split_response;
use keyway_smp::{
    ErrorRsp, MAX_BODY, MAX_FRAME, Message, Op, Refusal, Request, Version, group, img, kw, os,
};
use keyway_vendor::keys::SigningKey;
use keyway_vendor::smp;
use sha2::{Digest as _, Sha256};

use keyway_channel::handshake::MSG3_LEN;
use keyway_channel::pairing::PAKE3_LEN;
use keyway_channel::record::REQUEST_OVERHEAD;
use keyway_channel::{ClientHandshake, ClientPairing, ClientSession, SetupCode};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng as _, SeedableRng as _};

use super::transport::{Transport, TransportError};

/// A CBOR map body (the answers `keyway device` prints as JSON, and the
/// audit's raw requests).
pub type Map = Vec<(Value, Value)>;

/// The Keyway group's command ids (FORMAT.md, "The Keyway SMP group").
pub use keyway_smp::kw::cmd as keyway_cmd;

/// The largest answer body the client reads (the header's 16-bit length).
pub const MAX_ANSWER: usize = u16::MAX as usize;
/// The largest audit-log export the client reassembles.
pub const MAX_LOG_EXPORT: u64 = 16 << 20;
/// The largest log chunk accepted in one answer.
pub const MAX_LOG_CHUNK: usize = 4096;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No usable answer arrived.
    #[error("{what}: {why}")]
    Transport {
        /// The call.
        what: String,
        /// Why. (Not named `source`: the message already includes it, and
        /// a source would print it twice in an error chain.)
        why: TransportError,
    },
    /// The lock refused with a top-level SMP `rc`.
    #[error("{what}: refused: {reason} ({name}, rc {rc})")]
    Refused {
        /// The call.
        what: String,
        /// `mcumgr_err_t`.
        rc: u64,
        /// Its name.
        name: &'static str,
        /// The lock's `rsn`, or the code in words.
        reason: String,
        /// Keyway's typed refusal (`kw-rc`): what the client decides on
        /// (boxed: it holds two image digests).
        refusal: Option<Box<Refusal>>,
    },
    /// The lock refused with an SMPv2 group error.
    #[error("{what}: refused by the {group_name} group: {reason} (rc {rc})")]
    GroupRefused {
        /// The call.
        what: String,
        /// The group id.
        group: u64,
        /// The group's name.
        group_name: String,
        /// The group's code.
        rc: u64,
        /// The code in words (and the `rsn`, if the lock sent one).
        reason: String,
        /// Keyway's typed refusal (`kw-rc`): what the client decides on
        /// (boxed: it holds two image digests).
        refusal: Option<Box<Refusal>>,
    },
    /// The answer is not what the protocol allows.
    #[error("{what}: the lock's answer is malformed: {why}")]
    Malformed {
        /// The call.
        what: String,
        /// What is wrong with it.
        why: String,
    },
    /// The secure channel refused on the client's side: the lock did not
    /// prove the paired device key, an answer did not authenticate
    /// (forged, altered, replayed), the setup code does not match.
    #[error("{what}: {}", channel_words(*error))]
    Channel {
        /// The call.
        what: String,
        /// The channel's typed reason.
        error: keyway_channel::Error,
    },
    /// The client cannot make the request (a bad argument).
    #[error("{what}: {why}")]
    Usage {
        /// The call.
        what: String,
        /// Why.
        why: String,
    },
}

impl DeviceError {
    /// The top-level or group rc, if the lock refused.
    pub fn rc(&self) -> Option<u64> {
        match self {
            DeviceError::Refused { rc, .. } | DeviceError::GroupRefused { rc, .. } => Some(*rc),
            _ => None,
        }
    }

    /// Keyway's typed refusal, if the lock sent one.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            DeviceError::Refused { refusal, .. } | DeviceError::GroupRefused { refusal, .. } => {
                refusal.as_deref().copied()
            }
            _ => None,
        }
    }

    /// The channel's typed reason, if the channel refused at the client.
    pub fn channel(&self) -> Option<keyway_channel::Error> {
        match self {
            DeviceError::Channel { error, .. } => Some(*error),
            _ => None,
        }
    }

    /// Whether pairing failed because the setup code is wrong: the lock's
    /// typed refusal [`Refusal::BadSetupCode`] (kw-rc 15), or the client's
    /// own check of the lock's confirmation.
    pub fn wrong_setup_code(&self) -> bool {
        self.refusal() == Some(Refusal::BadSetupCode)
            || self.channel() == Some(keyway_channel::Error::WrongCode)
    }

    /// Whether the lock does not know the command (`ENOTSUP`).
    pub fn not_supported(&self) -> bool {
        matches!(self, DeviceError::Refused { rc: 8, .. })
    }

    /// Whether the lock refused for want of authority (`EACCESSDENIED`).
    pub fn access_denied(&self) -> bool {
        matches!(self, DeviceError::Refused { rc: 11, .. })
    }
}

/// The channel's refusals at the client as sentences that say what to do.
fn channel_words(e: keyway_channel::Error) -> String {
    use keyway_channel::Error as E;
    match e {
        E::LockNotAuthenticated => "the lock did not prove the device key recorded at pairing: this is not the lock this owner key paired with (an impostor, or a replaced lock); nothing was sent to it".into(),
        E::Forged => "the answer does not authenticate as the lock's answer to this request (forged, altered or replayed on the way): the command's outcome is unknown; check the lock with `status`".into(),
        E::StaleAtLock => "the lock refused the request as held back (stale), twice: nothing ran; check the link and try again".into(),
        E::WrongCode => "the setup code is wrong: re-read the code on the lock's label".into(),
        E::Iterations(n) => format!("the lock asks for {n} PBKDF2 iterations, outside what a client accepts: it is not a Keyway lock"),
        other => format!("the secure channel refused: {other}"),
    }
}

fn malformed(what: &str, why: impl Into<String>) -> DeviceError {
    DeviceError::Malformed {
        what: what.to_owned(),
        why: why.into(),
    }
}

/// `mcumgr_err_t` names and their meaning in words.
pub fn mgmt_err(rc: u64) -> (&'static str, &'static str) {
    keyway_smp::MgmtErr::from_code(rc).map_or(("EUNKNOWN", "an unknown result code"), |e| {
        (e.name(), e.words())
    })
}

/// An image-group (`IMG_MGMT_ERR`) code in words.
pub fn img_err(rc: u64) -> &'static str {
    keyway_smp::err::img_rc::words(rc)
}

/// An OS-group (`OS_MGMT_ERR`) code in words.
pub fn os_err(rc: u64) -> &'static str {
    keyway_smp::err::os_rc::words(rc)
}

/// The refusal in a response body, if any: the top-level `rc` (SMPv1 and
/// SMP-level errors), the SMPv2 group `err`, and Keyway's typed refusal.
fn refusal(what: &str, body: &[u8]) -> Result<(), DeviceError> {
    let Some(e) = ErrorRsp::decode(body).map_err(|e| malformed(what, e.to_string()))? else {
        return Ok(());
    };
    let rsn = e
        .rsn
        .map(|r| bounded(r.strip_prefix("refused: ").unwrap_or(r)));
    if let Some(rc) = e.rc.filter(|rc| *rc != 0) {
        let (name, words) = mgmt_err(rc);
        return Err(DeviceError::Refused {
            what: what.to_owned(),
            rc,
            name,
            reason: rsn.unwrap_or_else(|| words.to_owned()),
            refusal: e.refusal.map(Box::new),
        });
    }
    let (g, rc) = e.group.unwrap_or((0, 0));
    let (group_name, words) = match g {
        group::IMAGE => ("image".to_owned(), img_err(rc)),
        group::OS => ("OS".to_owned(), os_err(rc)),
        _ => (format!("{g}"), "an error code of that group"),
    };
    let mut reason = words.to_owned();
    if let Some(r) = e.rsn {
        reason = format!("{reason}: {}", bounded(r));
    }
    Err(DeviceError::GroupRefused {
        what: what.to_owned(),
        group: u64::from(g),
        group_name,
        rc,
        reason,
        refusal: e.refusal.map(Box::new),
    })
}

/// A typed answer body, or what is wrong with it.
fn typed<'a, T: Message<'a>>(what: &str, body: &'a [u8]) -> Result<T, DeviceError> {
    T::decode(body).map_err(|e| malformed(what, e.to_string()))
}

/// An answer body as a map, for printing (after its typed decode checked it).
fn map_of(what: &str, body: &[u8]) -> Result<Map, DeviceError> {
    smp::decode_body(body).map_err(|e| malformed(what, e.to_string()))
}

/// A lock's text, cut to 200 characters for an error message.
fn bounded(s: &str) -> String {
    let mut t = printable(&s.chars().take(200).collect::<String>(), false);
    if s.chars().nth(200).is_some() {
        t.push('…');
    }
    t
}

/// `s`, a text the lock sent, safe to print on a terminal: control
/// characters (an escape sequence could rewrite the screen, e.g. hide a
/// refusal) and bidirectional overrides are shown as `\u{..}` escapes;
/// with `newlines`, line breaks and tabs stay (release notes).
pub fn printable(s: &str, newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() || bidi) && !(newlines && matches!(c, '\n' | '\t')) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A slot as the image group reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSlot {
    /// The slot (0 or 1).
    pub slot: u64,
    /// The release version.
    pub version: String,
    /// The image hash: SHA-256 of the whole envelope for Keyway.
    pub hash: Vec<u8>,
    /// Verifies and may boot.
    pub bootable: bool,
    /// Marked for a test boot at the next reset.
    pub pending: bool,
    /// Confirmed.
    pub confirmed: bool,
    /// Running now.
    pub active: bool,
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadReport {
    /// The file's length.
    pub len: u64,
    /// Where the lock said to start (non-zero: an upload resumed).
    pub resumed_from: u64,
    /// Upload requests answered.
    pub requests: u64,
    /// The largest data chunk sent.
    pub chunk: usize,
}

/// An owner as the lock's `owners` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerInfo {
    /// Its key id: the first 8 bytes of SHA-256 of its Ed25519 public key.
    pub key_id: [u8; 8],
    /// The name given at pairing, as the lock sent it (escape with
    /// [`printable`] before printing).
    pub name: String,
    /// When it was paired, Unix seconds, if the lock knew the time then.
    pub paired: Option<u64>,
}

/// The client's clock for the channel: milliseconds, monotonic.
pub type Clock = Box<dyn FnMut() -> u64 + Send>;

/// The secure channel's state at the client.
struct Channel {
    /// The owner key as the channel signs with it.
    owner: keyway_channel::SigningKey,
    /// The lock's device key from pairing: set, every call runs sealed.
    lock_key: Option<[u8; 32]>,
    /// The session, once a handshake finished.
    session: Option<ClientSession>,
    rng: ChaCha20Rng,
    clock: Clock,
    counts: ChannelCounts,
}

/// What the channel did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    /// Handshakes finished.
    pub handshakes: u64,
    /// Sealed requests whose answer opened.
    pub sealed: u64,
    /// Requests sent again after the lock's authenticated stale status.
    pub stale_resends: u64,
    /// Handshakes run again after the lock's `UnknownSession`.
    pub session_restarts: u64,
    /// Requests sent anew after the lock's `RecordRefused` (a lost answer
    /// and the transport's resend of the same record).
    pub record_resends: u64,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field(
                "lock_key",
                &self.lock_key.map(|k| keyway_vendor::keys::hex(&k)),
            )
            .field("session", &self.session)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// What pairing with the setup code learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairingReport {
    /// The lock's device Ed25519 public key, authenticated by the code.
    pub device_key: [u8; 32],
    /// The owner's key id as the lock stored it.
    pub key_id: [u8; 8],
    /// Owners the lock has now.
    pub owners: u64,
}

/// The bytes a sealed request adds around its inner frame: the outer
/// header, the `{"rec": bstr}` wrapping (map head, key, a 3-byte bstr
/// head) and the record's overhead.
const SEALED_OUTER: usize = keyway_smp::HEADER_LEN + 8 + REQUEST_OVERHEAD;
/// The longest inner request frame the lock opens (keyway-agent's
/// `MAX_SEALED_REQUEST`).
pub const MAX_SEALED_REQUEST: usize = MAX_BODY - 8 - REQUEST_OVERHEAD;

/// An SMP client for one lock.
#[derive(Debug)]
pub struct Client<T> {
    transport: T,
    seq: u8,
    /// The owner key's Ed25519 public key.
    owner: Option<[u8; 32]>,
    channel: Option<Channel>,
}

impl<T: Transport> Client<T> {
    /// A client over `transport`, without an owner key.
    pub fn new(transport: T) -> Self {
        Client {
            transport,
            seq: 0,
            owner: None,
            channel: None,
        }
    }

    /// The owner key (Ed25519): pairing by setup code
    /// ([`Client::pair_with_code`]) and, with the lock's device key
    /// ([`Client::with_paired_lock`]), every call sealed in a session.
    pub fn with_owner(mut self, key: SigningKey) -> Result<Self, DeviceError> {
        let public: [u8; 32] =
            key.raw_public_key_bytes()
                .try_into()
                .map_err(|_| DeviceError::Usage {
                    what: "owner key".into(),
                    why: "an owner key must be Ed25519 (keyway keygen NAME)".into(),
                })?;
        if key.algorithm() != keyway_vendor::keys::Algorithm::Ed25519 {
            return Err(DeviceError::Usage {
                what: "owner key".into(),
                why: "an owner key must be Ed25519 (keyway keygen NAME)".into(),
            });
        }
        let keyway_vendor::keys::SigningKey::Ed25519(dalek) = &key else {
            return Err(DeviceError::Usage {
                what: "owner key".into(),
                why: "an owner key must be Ed25519 (keyway keygen NAME)".into(),
            });
        };
        let pair = keyway_channel::SigningKey::from_bytes(&dalek.to_bytes());
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| DeviceError::Usage {
            what: "owner key".into(),
            why: format!("the system's random number generator failed: {e}"),
        })?;
        let start = std::time::Instant::now();
        self.channel = Some(Channel {
            owner: pair,
            lock_key: None,
            session: None,
            rng: ChaCha20Rng::from_seed(seed),
            clock: Box::new(move || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)),
            counts: ChannelCounts::default(),
        });
        self.owner = Some(public);
        Ok(self)
    }

    /// Replaces the channel's randomness (a ChaCha20 seed) and clock
    /// (tests: a seeded RNG and a fake clock). Needs an owner key.
    pub fn with_channel_env(mut self, seed: [u8; 32], clock: Clock) -> Self {
        if let Some(ch) = &mut self.channel {
            ch.rng = ChaCha20Rng::from_seed(seed);
            ch.clock = clock;
        }
        self
    }

    /// Runs every call sealed in a session with the lock whose device key
    /// (from pairing, [`Client::pair_with_code`]) is `device_key`. Needs
    /// an owner key.
    pub fn with_paired_lock(mut self, device_key: [u8; 32]) -> Result<Self, DeviceError> {
        self.set_paired_lock(device_key)?;
        Ok(self)
    }

    /// [`Client::with_paired_lock`] on a client in place (after
    /// [`Client::pair_with_code`] on the same client).
    pub fn set_paired_lock(&mut self, device_key: [u8; 32]) -> Result<(), DeviceError> {
        let Some(ch) = &mut self.channel else {
            return Err(DeviceError::Usage {
                what: "session".into(),
                why: "a session needs the owner key (--owner-key)".into(),
            });
        };
        ch.lock_key = Some(device_key);
        ch.session = None;
        Ok(())
    }

    /// Whether calls run sealed in a session.
    pub fn sealed(&self) -> bool {
        self.channel.as_ref().is_some_and(|c| c.lock_key.is_some())
    }

    /// What the channel did so far.
    pub fn channel_counts(&self) -> ChannelCounts {
        self.channel.as_ref().map(|c| c.counts).unwrap_or_default()
    }

    /// Whether the client has an owner key.
    pub fn has_owner(&self) -> bool {
        self.owner.is_some()
    }

    /// The key id of the owner key.
    pub fn owner_key_id(&self) -> Option<[u8; 8]> {
        let o = self.owner.as_ref()?;
        let d = Sha256::digest(o);
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        Some(id)
    }

    /// The transport (its counters).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, to change it (tests: a man in the middle).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Sends `frame` (sequence `seq`) and checks the answer: the header
    /// must match (op, group, command, sequence) and the body must not be
    /// an error (`rc`, `err`: a [`DeviceError`] with the typed refusal).
    /// Returns the answer's body. With a paired lock the frame goes sealed
    /// in the session ([`Client::with_paired_lock`]).
    fn exchange(
        &mut self,
        what: &str,
        frame: &[u8],
        seq: u8,
        key: (Op, u16, u8),
    ) -> Result<Vec<u8>, DeviceError> {
        if self.sealed() {
            return self.sealed_exchange(what, frame, seq, key);
        }
        self.plain_exchange(what, frame, seq, key)
    }

    /// [`Client::exchange`] in the clear.
    fn plain_exchange(
        &mut self,
        what: &str,
        frame: &[u8],
        seq: u8,
        key: (Op, u16, u8),
    ) -> Result<Vec<u8>, DeviceError> {
        if frame.len() > MAX_FRAME {
            return Err(DeviceError::Usage {
                what: what.to_owned(),
                why: format!(
                    "a request of {} bytes exceeds the lock's buffer of {MAX_FRAME} bytes",
                    frame.len(),
                ),
            });
        }
        let answer = self
            .transport
            .exchange(frame, seq)
            .map_err(|why| DeviceError::Transport {
                what: what.to_owned(),
                why,
            })?;
        check_answer(what, &answer, seq, key)
    }

    fn next_seq(&mut self) -> u8 {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        seq
    }

    /// One typed request (SMPv2); returns the checked answer's body.
    fn call(&mut self, what: &str, req: &Request<'_>) -> Result<Vec<u8>, DeviceError> {
        let seq = self.next_seq();
        let frame = encode_frame(what, req, seq)?;
        self.exchange(what, &frame, seq, req.key())
    }

    /// One typed request in the clear, also with a paired lock (the
    /// channel's own messages).
    fn call_plain(&mut self, what: &str, req: &Request<'_>) -> Result<Vec<u8>, DeviceError> {
        let seq = self.next_seq();
        let frame = encode_frame(what, req, seq)?;
        self.plain_exchange(what, &frame, seq, req.key())
    }

    fn channel_mut(&mut self, what: &str) -> Result<&mut Channel, DeviceError> {
        self.channel.as_mut().ok_or_else(|| DeviceError::Usage {
            what: what.to_owned(),
            why: "the secure channel needs the owner key (--owner-key)".into(),
        })
    }

    /// Pairs this owner key with the lock by its setup code (the lock's
    /// presence window must be open): SPAKE2+ proves both sides hold the
    /// code, then the owner's key and `name` go to the lock and the lock's
    /// device key comes back, both sealed under the PAKE's keys. Keep
    /// [`PairingReport::device_key`] (the paired-lock file) and pass it to
    /// [`Client::with_paired_lock`].
    ///
    /// A wrong code is the lock's typed refusal [`Refusal::BadSetupCode`]
    /// (kw-rc 15): the client sees the lock's confirmation fail, and sends
    /// a `pake3` that cannot confirm so that the lock ends the run at once
    /// (the person may retry right away, from any address); if the lock
    /// does not answer that with kw-rc 15, the error is the client's own
    /// [`keyway_channel::Error::WrongCode`]. Either way
    /// [`DeviceError::wrong_setup_code`] holds.
    pub fn pair_with_code(
        &mut self,
        code: &SetupCode,
        name: &str,
    ) -> Result<PairingReport, DeviceError> {
        const WHAT: &str = "pair";
        let owner_pk = self.channel_mut(WHAT)?.owner.verifying_key().to_bytes();
        let b = self.call_plain(WHAT, &Request::PakeParams)?;
        let params: kw::PakeParams = typed(WHAT, &b)?;
        let ch = self.channel_mut(WHAT)?;
        let (mut pairing, pake1) =
            ClientPairing::start(code, params.msg, &mut ch.rng).map_err(|error| {
                DeviceError::Channel {
                    what: WHAT.into(),
                    error,
                }
            })?;
        let b = self.call_plain(WHAT, &Request::PakeStart(kw::PakeStart { msg: &pake1 }))?;
        let pake2: kw::PakeStartRsp = typed(WHAT, &b)?;
        let mut pake3 = [0u8; PAKE3_LEN];
        match pairing.pake2(pake2.msg, &owner_pk, name, &mut pake3) {
            Ok(()) => {}
            Err(keyway_channel::Error::WrongCode) => {
                // End the lock's run: a pake3 that cannot confirm.
                self.channel_mut(WHAT)?.rng.fill_bytes(&mut pake3);
                let end =
                    self.call_plain(WHAT, &Request::PakeFinish(kw::PakeFinish { msg: &pake3 }));
                return Err(match end {
                    Err(e) if e.refusal() == Some(Refusal::BadSetupCode) => e,
                    _ => DeviceError::Channel {
                        what: WHAT.into(),
                        error: keyway_channel::Error::WrongCode,
                    },
                });
            }
            Err(error) => {
                return Err(DeviceError::Channel {
                    what: WHAT.into(),
                    error,
                });
            }
        }
        let b = self.call_plain(WHAT, &Request::PakeFinish(kw::PakeFinish { msg: &pake3 }))?;
        let done: kw::PakeFinishRsp = typed(WHAT, &b)?;
        let lock = pairing
            .pake4(done.msg)
            .map_err(|error| DeviceError::Channel {
                what: WHAT.into(),
                error,
            })?;
        let mine = keyway_channel::key_id(&owner_pk);
        if done.key_id != mine {
            return Err(malformed(
                WHAT,
                format!(
                    "it reports pairing key id {}, this owner key is {}",
                    keyway_vendor::keys::hex(&done.key_id),
                    keyway_vendor::keys::hex(&mine)
                ),
            ));
        }
        Ok(PairingReport {
            device_key: lock.device_public_key,
            key_id: done.key_id,
            owners: done.owners,
        })
    }

    /// Opens a session with the paired lock (ids 13, 14): the lock proves
    /// the device key learnt at pairing, the owner proves its key. Calls
    /// open one when they need it; this opens a new one now.
    pub fn open_session(&mut self) -> Result<(), DeviceError> {
        const WHAT: &str = "session";
        let ch = self.channel_mut(WHAT)?;
        let Some(lock_key) = ch.lock_key else {
            return Err(DeviceError::Usage {
                what: WHAT.into(),
                why: "no paired lock: pair with the setup code first".into(),
            });
        };
        ch.session = None;
        let (hs, msg1) = ClientHandshake::start(&mut ch.rng);
        let b = self.call_plain(
            WHAT,
            &Request::SessionStart(kw::SessionStart { msg: &msg1 }),
        )?;
        let msg2: kw::SessionStartRsp = typed(WHAT, &b)?;
        let ch = self.channel_mut(WHAT)?;
        let mut msg3 = [0u8; MSG3_LEN];
        let channel_err = |error| DeviceError::Channel {
            what: WHAT.into(),
            error,
        };
        let mut session = hs
            .msg2(msg2.msg, &lock_key, &ch.owner, &mut msg3)
            .map_err(channel_err)?;
        let b = self.call_plain(
            WHAT,
            &Request::SessionFinish(kw::SessionFinish { msg: &msg3 }),
        )?;
        let msg4: kw::SessionFinishRsp = typed(WHAT, &b)?;
        let mut msg4 = msg4.msg.to_vec();
        let ch = self.channel_mut(WHAT)?;
        let now = (ch.clock)();
        session.open_response(now, &mut msg4).map_err(channel_err)?;
        ch.session = Some(session);
        ch.counts.handshakes += 1;
        Ok(())
    }

    /// [`Client::exchange`] sealed: the inner `frame` goes as a record in
    /// the session (opened first if there is none), and only a record that
    /// opens as the lock's answer to it counts; its inner frame is then
    /// checked like a plain answer. The lock's stale status sends it once
    /// more with a new counter; its `UnknownSession` refusal opens a new
    /// session and sends it once more; its `RecordRefused` refusal (the
    /// transport resent a record whose answer was lost) sends it once more
    /// with a new counter. Any other plain answer is an error.
    fn sealed_exchange(
        &mut self,
        what: &str,
        frame: &[u8],
        seq: u8,
        key: (Op, u16, u8),
    ) -> Result<Vec<u8>, DeviceError> {
        if frame.len() > MAX_SEALED_REQUEST {
            return Err(DeviceError::Usage {
                what: what.to_owned(),
                why: format!(
                    "a request of {} bytes exceeds the {MAX_SEALED_REQUEST} bytes a sealed record carries",
                    frame.len(),
                ),
            });
        }
        let channel_err = |error| DeviceError::Channel {
            what: what.to_owned(),
            error,
        };
        let mut stale_resend = true;
        let mut new_session = true;
        let mut record_resend = true;
        loop {
            if self.channel_mut(what)?.session.is_none() {
                self.open_session()?;
            }
            let ch = self.channel_mut(what)?;
            let now = (ch.clock)();
            let Some(session) = ch.session.as_mut() else {
                continue;
            };
            let mut rec = vec![0u8; frame.len() + REQUEST_OVERHEAD];
            let (_, n) = session
                .seal_request(now, frame, &mut rec)
                .map_err(channel_err)?;
            rec.truncate(n);
            let outer = match self.call_plain(what, &Request::Sealed(kw::Sealed { msg: &rec })) {
                Ok(b) => b,
                Err(e) if e.refusal() == Some(Refusal::UnknownSession) && new_session => {
                    // The lock restarted or the session expired: nothing ran.
                    new_session = false;
                    let ch = self.channel_mut(what)?;
                    ch.session = None;
                    ch.counts.session_restarts += 1;
                    continue;
                }
                Err(e) if e.refusal() == Some(Refusal::RecordRefused) && record_resend => {
                    // The lock took this record for a replay: over UDP, the
                    // transport's resend of a record whose answer was lost
                    // (the first copy ran). Send it anew, once, with a new
                    // counter: owner commands set a state, so running one
                    // twice leaves the state the owner asked for.
                    record_resend = false;
                    self.channel_mut(what)?.counts.record_resends += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let sealed: kw::Sealed = typed(what, &outer)?;
            let mut rec = sealed.msg.to_vec();
            let ch = self.channel_mut(what)?;
            let now = (ch.clock)();
            let Some(session) = ch.session.as_mut() else {
                continue;
            };
            let opened = match session.open_response(now, &mut rec) {
                Ok(o) => o,
                Err(keyway_channel::Error::StaleAtLock) if stale_resend => {
                    // Authenticated: the lock did not run it; the clock is
                    // re-synced and a new counter goes.
                    stale_resend = false;
                    ch.counts.stale_resends += 1;
                    continue;
                }
                Err(e) => return Err(channel_err(e)),
            };
            ch.counts.sealed += 1;
            let inner = rec.get(opened.payload).unwrap_or(&[]);
            return check_answer(what, inner, seq, key);
        }
    }

    /// One raw request with any body (the audit's deliberately odd
    /// requests) and its checked answer as a map.
    pub fn request(
        &mut self,
        what: &str,
        op: Op,
        group: u16,
        id: u8,
        body: Map,
    ) -> Result<Map, DeviceError> {
        let seq = self.next_seq();
        let frame = smp::encode_request(op, group, id, seq, body);
        let body = self.exchange(what, &frame, seq, (op, group, id))?;
        map_of(what, &body)
    }

    /// OS echo: the lock returns `d`.
    pub fn echo(&mut self, d: &str) -> Result<String, DeviceError> {
        let b = self.call("echo", &Request::Echo(os::Echo { d }))?;
        Ok(typed::<os::EchoRsp>("echo", &b)?.r.to_owned())
    }

    /// OS reset: the lock reboots after answering.
    pub fn reset(&mut self) -> Result<(), DeviceError> {
        // The window's, or (in a session) an owner's.
        let b = self.call("reset", &Request::Reset(kw::Signed::default()))?;
        typed::<os::Empty>("reset", &b).map(|_| ())
    }

    /// The MCUmgr parameters (OS group, command 6): the lock's SMP buffer
    /// size (`buf_size`, the longest frame it takes, header included) and
    /// count. A client on a link that fragments (BLE) sends frames up to
    /// `buf_size`, as `smpclient` does.
    pub fn params(&mut self) -> Result<os::ParamsRsp, DeviceError> {
        let b = self.call("parameters", &Request::Params)?;
        typed("parameters", &b)
    }

    /// The image group's slot list.
    pub fn image_state(&mut self) -> Result<Vec<ImageSlot>, DeviceError> {
        let b = self.call("image state", &Request::ImageState)?;
        parse_images("image state", &b)
    }

    /// Marks the image with `hash` for a test boot at the next reset.
    pub fn image_test(&mut self, hash: &[u8]) -> Result<Vec<ImageSlot>, DeviceError> {
        self.image_write("image test", hash, false)
    }

    /// Confirms the image with `hash` (the running one).
    pub fn image_confirm(&mut self, hash: &[u8]) -> Result<Vec<ImageSlot>, DeviceError> {
        self.image_write("image confirm", hash, true)
    }

    fn image_write(
        &mut self,
        what: &str,
        hash: &[u8],
        confirm: bool,
    ) -> Result<Vec<ImageSlot>, DeviceError> {
        let m = img::StateWrite {
            hash: Some(hash),
            confirm: Some(confirm),
            kw: true,
            auth: None,
        };
        let b = self.call(what, &Request::ImageStateWrite(m))?;
        parse_images(what, &b)
    }

    /// Uploads `file` (an envelope) in chunks that keep each frame within
    /// the transport's MTU, continuing from whatever offset the lock
    /// answers (a resumed upload starts where the lock's journal stands).
    /// `progress(done, total)` is called after every answer.
    pub fn upload(
        &mut self,
        file: &[u8],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<UploadReport, DeviceError> {
        const WHAT: &str = "upload";
        let len = file.len() as u64;
        if file.is_empty() {
            return Err(DeviceError::Usage {
                what: WHAT.into(),
                why: "the file is empty".into(),
            });
        }
        let sha: [u8; 32] = Sha256::digest(file).into();
        let mut budget = self
            .transport
            .mtu()
            .min(MAX_FRAME)
            .saturating_sub(keyway_smp::HEADER_LEN);
        if self.sealed() {
            // The inner frame travels in a record inside the outer frame.
            budget = (budget + keyway_smp::HEADER_LEN)
                .saturating_sub(SEALED_OUTER)
                .min(MAX_SEALED_REQUEST)
                .saturating_sub(keyway_smp::HEADER_LEN);
        }
        let mut report = UploadReport {
            len,
            resumed_from: 0,
            requests: 0,
            chunk: 0,
        };
        let mut off = 0u64;
        let mut stalled = 0u32;
        // Each answer either advances, or moves the offset: a bounded
        // number of requests for any lock.
        let limit = 3 * (len / 16 + 1) + 64;
        while report.requests < limit {
            let first = off == 0;
            let mut chunk = img::Upload {
                off,
                data: &[],
                len: first.then_some(len),
                sha: first.then_some(&sha[..]),
                image: first.then_some(0),
                upgrade: None,
                auth: None,
                kw: true,
            };
            let n = chunk_len(&chunk, budget).min(usize::try_from(len - off).unwrap_or(usize::MAX));
            if n == 0 {
                return Err(DeviceError::Usage {
                    what: WHAT.into(),
                    why: format!(
                        "an MTU of {} bytes leaves no room for data",
                        self.transport.mtu()
                    ),
                });
            }
            let start = usize::try_from(off).unwrap_or(usize::MAX);
            chunk.data = file.get(start..start + n).unwrap_or(&[]);
            report.chunk = report.chunk.max(n);
            let b = self.call(WHAT, &Request::Upload(chunk))?;
            report.requests += 1;
            let answer: img::UploadRsp = typed(WHAT, &b)?;
            let next = answer.off;
            if next > len {
                return Err(malformed(
                    WHAT,
                    format!("it answers offset {next}, past the file's {len} bytes"),
                ));
            }
            if first && next > n as u64 {
                report.resumed_from = next;
            }
            progress(next, len);
            if next == len {
                if answer.matched == Some(false) {
                    return Err(malformed(
                        WHAT,
                        "the lock reports the SHA-256 does not match",
                    ));
                }
                return Ok(report);
            }
            if next == off + n as u64 || next != off {
                stalled = 0;
            } else {
                stalled += 1;
                if stalled > 8 {
                    return Err(malformed(
                        WHAT,
                        format!("it keeps answering offset {next} without taking data"),
                    ));
                }
            }
            off = next;
        }
        Err(malformed(
            WHAT,
            format!("not complete after {} requests", report.requests),
        ))
    }

    /// The Keyway group's `status` (an owner's, in a session).
    pub fn status(&mut self) -> Result<Map, DeviceError> {
        let b = self.call("status", &Request::Status(kw::Signed::default()))?;
        typed::<kw::Status>("status", &b)?;
        map_of("status", &b)
    }

    /// The Keyway group's `status` body, checked with its typed decode
    /// (`keyway_smp::kw::Status::decode` reads it again without a copy):
    /// what a client decides on, typed.
    pub fn status_body(&mut self) -> Result<Vec<u8>, DeviceError> {
        let b = self.call("status", &Request::Status(kw::Signed::default()))?;
        typed::<kw::Status>("status", &b)?;
        Ok(b)
    }

    /// `consent`, answered as the body its typed decode checked
    /// (`keyway_smp::kw::ConsentRsp::decode`).
    pub fn consent_body(&mut self, accept: bool) -> Result<Vec<u8>, DeviceError> {
        let m = kw::Consent { accept, auth: None };
        let b = self.call("consent", &Request::Consent(m))?;
        typed::<kw::ConsentRsp>("consent", &b)?;
        Ok(b)
    }

    /// The running image's SHA-256 from `status` (`None` in recovery).
    pub fn running_image(&mut self) -> Result<Option<[u8; 32]>, DeviceError> {
        let b = self.call("status", &Request::Status(kw::Signed::default()))?;
        Ok(typed::<kw::Status>("status", &b)?.image)
    }

    /// `lock` (an owner's, in a session; or the presence window).
    pub fn lock(&mut self) -> Result<Map, DeviceError> {
        self.bolt("lock", Request::Lock(kw::Signed::default()))
    }

    /// `unlock` (an owner's, in a session; or the presence window).
    pub fn unlock(&mut self) -> Result<Map, DeviceError> {
        self.bolt("unlock", Request::Unlock(kw::Signed::default()))
    }

    fn bolt(&mut self, what: &str, req: Request<'_>) -> Result<Map, DeviceError> {
        let b = self.call(what, &req)?;
        typed::<kw::Status>(what, &b)?;
        map_of(what, &b)
    }

    /// `presence`: whether the window is open.
    pub fn presence(&mut self) -> Result<Map, DeviceError> {
        let b = self.call("presence", &Request::Presence(kw::Signed::default()))?;
        typed::<kw::Presence>("presence", &b)?;
        map_of("presence", &b)
    }

    /// `notes`: the pending update's release notes and CVEs.
    pub fn notes(&mut self) -> Result<Map, DeviceError> {
        let b = self.call("notes", &Request::Notes(kw::Signed::default()))?;
        typed::<kw::Notes>("notes", &b)?;
        map_of("notes", &b)
    }

    /// `consent`: accept or refuse the pending update.
    pub fn consent(&mut self, accept: bool) -> Result<Map, DeviceError> {
        let m = kw::Consent { accept, auth: None };
        let b = self.call("consent", &Request::Consent(m))?;
        typed::<kw::ConsentRsp>("consent", &b)?;
        map_of("consent", &b)
    }

    /// `owners`: the paired owners, in pairing order (an owner's read, in
    /// a session).
    pub fn owners(&mut self) -> Result<Vec<OwnerInfo>, DeviceError> {
        let b = self.call("owners", &Request::Owners(kw::Signed::default()))?;
        let r: kw::OwnersRsp = typed("owners", &b)?;
        Ok(r.owners
            .iter()
            .map(|o| OwnerInfo {
                key_id: o.key_id,
                name: o.name.to_owned(),
                paired: o.paired,
            })
            .collect())
    }

    /// `unpair`: removes the owner with `key_id` (an owner's request, in a
    /// session); returns how many owners remain. An unknown key id is the
    /// lock's typed refusal [`Refusal::UnknownOwner`].
    pub fn unpair(&mut self, key_id: [u8; 8]) -> Result<u64, DeviceError> {
        const WHAT: &str = "unpair";
        let m = kw::Unpair { key_id, auth: None };
        let b = self.call(WHAT, &Request::Unpair(m))?;
        let r: kw::UnpairRsp = typed(WHAT, &b)?;
        if r.key_id != key_id {
            return Err(malformed(
                WHAT,
                format!(
                    "it reports removing key id {}, the request named {}",
                    keyway_vendor::keys::hex(&r.key_id),
                    keyway_vendor::keys::hex(&key_id)
                ),
            ));
        }
        Ok(r.owners)
    }

    /// `factory reset` (the presence window and the long press). Always in
    /// the clear, also with a paired lock: its authority is the person at
    /// the lock, not an owner's session (the agent refuses it sealed).
    pub fn factory_reset(&mut self) -> Result<Map, DeviceError> {
        let b = self.call_plain("factory reset", &Request::FactoryReset)?;
        typed::<kw::FactoryResetRsp>("factory reset", &b)?;
        map_of("factory reset", &b)
    }

    /// `settings`: changes the given settings, returns them all.
    pub fn settings(
        &mut self,
        auto_install_cve: Option<bool>,
        install_needs_unlocked: Option<bool>,
    ) -> Result<Map, DeviceError> {
        let m = kw::SettingsReq {
            auto_install_cve,
            install_needs_unlocked,
            auth: None,
        };
        let b = self.call("settings", &Request::Settings(m))?;
        typed::<kw::SettingsRsp>("settings", &b)?;
        map_of("settings", &b)
    }

    /// The audit log's export file, reassembled from its chunks.
    /// `progress(done, total)` after every chunk.
    pub fn log_export(
        &mut self,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<u8>, DeviceError> {
        const WHAT: &str = "log export";
        let mut out: Vec<u8> = Vec::new();
        let mut total: Option<u64> = None;
        loop {
            let off = out.len() as u64;
            // Every chunk is an owner's request, in the session.
            let m = kw::Log { off, auth: None };
            let b = self.call(WHAT, &Request::Log(m))?;
            let chunk: kw::LogRsp = typed(WHAT, &b)?;
            if chunk.off != off {
                return Err(malformed(
                    WHAT,
                    format!("asked for offset {off}, the answer is at {}", chunk.off),
                ));
            }
            let len = chunk.len;
            if len > MAX_LOG_EXPORT {
                return Err(malformed(
                    WHAT,
                    format!(
                        "an export of {len} bytes exceeds the client's limit of {MAX_LOG_EXPORT}"
                    ),
                ));
            }
            match total {
                None => total = Some(len),
                Some(t) if t != len => {
                    return Err(malformed(
                        WHAT,
                        format!("the export's length changed from {t} to {len} bytes"),
                    ));
                }
                Some(_) => {}
            }
            let data = chunk.data;
            if data.len() > MAX_LOG_CHUNK || data.len() as u64 > len.saturating_sub(off) {
                return Err(malformed(
                    WHAT,
                    format!("a chunk of {} bytes at offset {off} of {len}", data.len()),
                ));
            }
            if data.is_empty() && off < len {
                return Err(malformed(
                    WHAT,
                    format!("an empty chunk at offset {off} of {len}"),
                ));
            }
            out.extend_from_slice(data);
            progress(out.len() as u64, len);
            if out.len() as u64 == len {
                return Ok(out);
            }
        }
    }
}

/// `req` as an SMPv2 frame with sequence `seq`.
fn encode_frame(what: &str, req: &Request<'_>, seq: u8) -> Result<Vec<u8>, DeviceError> {
    let mut buf = vec![0u8; MAX_FRAME];
    let n = req
        .frame(&mut buf, Version::V2, seq)
        .map_err(|_| DeviceError::Usage {
            what: what.to_owned(),
            why: format!("the request exceeds the lock's buffer of {MAX_FRAME} bytes"),
        })?;
    buf.truncate(n);
    Ok(buf)
}

/// Checks an answer frame against the request's (op, group, command,
/// sequence) and for a refusal; returns its body.
fn check_answer(
    what: &str,
    answer: &[u8],
    seq: u8,
    (op, group, id): (Op, u16, u8),
) -> Result<Vec<u8>, DeviceError> {
    let (h, body) = split_response(answer, MAX_ANSWER)
        .map_err(|e| malformed(what, smp::FrameError::from(e).to_string()))?;
    if h.seq != seq || h.group != group || h.id != id || h.op != op.response() {
        return Err(malformed(
            what,
            format!(
                "it answers group {} command {} (op {:?}, sequence {}), the request was group {group} command {id} (sequence {seq})",
                h.group, h.id, h.op, h.seq
            ),
        ));
    }
    refusal(what, body)?;
    Ok(body.to_vec())
}

/// The largest data chunk that keeps an upload body (`chunk` with its
/// data) within `budget` bytes.
fn chunk_len(chunk: &img::Upload<'_>, budget: usize) -> usize {
    let probe = img::Upload {
        data: &[],
        ..*chunk
    };
    let mut enc = [0u8; 256];
    let Ok(n) = probe.encode_into(&mut enc) else {
        return 0;
    };
    // The empty byte string's 1-byte head is in `n`.
    let fixed = n - 1;
    let budget = budget.min(MAX_BODY);
    (1..=3)
        .filter_map(|h| {
            let n = budget.checked_sub(fixed + h)?;
            (keyway_smp::cbor::bytes_head_len(n) <= h).then_some(n)
        })
        .max()
        .unwrap_or(0)
}

fn parse_images(what: &str, body: &[u8]) -> Result<Vec<ImageSlot>, DeviceError> {
    let st: img::StateRsp = typed(what, body)?;
    Ok(st
        .images
        .iter()
        .map(|i| ImageSlot {
            slot: i.slot,
            version: bounded(i.version),
            hash: i.hash.to_vec(),
            bootable: i.bootable,
            pending: i.pending,
            confirmed: i.confirmed,
            active: i.active,
        })
        .collect())
}

/// A CBOR value as JSON: byte strings as hex text, other keys as text.
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Integer(i) => {
            let i = i128::from(*i);
            i64::try_from(i)
                .map(J::from)
                .or_else(|_| u64::try_from(i).map(J::from))
                .unwrap_or(J::Null)
        }
        Value::Bytes(b) => J::String(keyway_vendor::keys::hex(b)),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Text(t) => J::String(t.clone()),
        Value::Bool(b) => J::Bool(*b),
        Value::Null => J::Null,
        Value::Tag(_, v) => to_json(v),
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => map_to_json(m),
        _ => J::Null,
    }
}

/// A body map as a JSON object.
pub fn map_to_json(m: &Map) -> serde_json::Value {
    serde_json::Value::Object(
        m.iter()
            .map(|(k, v)| {
                let key = match k {
                    Value::Text(t) => t.clone(),
                    other => to_json(other).to_string(),
                };
                (key, to_json(v))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_len_fills_the_budget_exactly() {
        for budget in [60usize, 100, 236, 300, 1464, 2048] {
            for off in [0u64, 23, 300, 70_000, 1 << 20] {
                let sha = [7u8; 32];
                let first = off == 0;
                let chunk = img::Upload {
                    off,
                    data: &[],
                    len: first.then_some(5000),
                    sha: first.then_some(&sha[..]),
                    image: first.then_some(0),
                    upgrade: None,
                    auth: None,
                    kw: true,
                };
                let n = chunk_len(&chunk, budget);
                if n == 0 {
                    continue;
                }
                let mut buf = vec![0u8; 4096];
                let data = vec![7u8; n + 1];
                let fits = img::Upload {
                    data: &data[..n],
                    ..chunk
                };
                let len = fits.encode_into(&mut buf).unwrap();
                assert!(len <= budget, "budget {budget}: {len} bytes");
                let over = img::Upload {
                    data: &data,
                    ..chunk
                };
                let len = over.encode_into(&mut buf).unwrap();
                assert!(len > budget, "budget {budget}: one more byte fits");
            }
        }
    }
}
