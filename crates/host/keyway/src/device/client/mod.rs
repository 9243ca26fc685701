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
    MAX_BODY, MAX_FRAME, Message, Op, Refusal, Request, Version, img, keyway_group, os,
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

use super::transport::Transport;

mod calls;
mod channel;
mod error;
mod json;

pub use crate::terminal::printable;
use channel::{Channel, SEALED_OUTER};
pub use channel::{ChannelCounts, MAX_SEALED_REQUEST, PairingReport};
pub use error::{DeviceError, img_err, mgmt_err, os_err};
use error::{bounded, malformed, map_of, refusal, same_key_id, typed};
pub use json::{map_to_json, to_json};

/// A CBOR map body (the answers `keyway device` prints as JSON, and the
/// audit's raw requests).
pub type Map = Vec<(Value, Value)>;

/// The Keyway group's command ids (FORMAT.md, "The Keyway SMP group").
pub use keyway_smp::keyway_group::cmd as keyway_cmd;

/// The largest answer body the client reads (the header's 16-bit length).
pub const MAX_ANSWER: usize = u16::MAX as usize;
/// The largest audit-log export the client reassembles.
pub const MAX_LOG_EXPORT: u64 = 16 << 20;
/// The largest log chunk accepted in one answer.
pub const MAX_LOG_CHUNK: usize = 4096;

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
    /// [`crate::terminal::printable`] before printing).
    pub name: String,
    /// When it was paired, Unix seconds, if the lock knew the time then.
    pub paired: Option<u64>,
}

/// The client's clock for the channel: milliseconds, monotonic.
pub type Clock = Box<dyn FnMut() -> u64 + Send>;

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
    fn exchange(&mut self, out: &Outgoing<'_>) -> Result<Vec<u8>, DeviceError> {
        if self.sealed() {
            return self.sealed_exchange(out);
        }
        self.plain_exchange(out)
    }

    /// [`Client::exchange`] in the clear.
    fn plain_exchange(&mut self, out: &Outgoing<'_>) -> Result<Vec<u8>, DeviceError> {
        out.fits(MAX_FRAME, "the lock's buffer")?;
        let answer = self
            .transport
            .exchange(&out.frame, out.seq)
            .map_err(|why| DeviceError::Transport {
                what: out.what.to_owned(),
                why,
            })?;
        out.check(&answer)
    }

    fn next_seq(&mut self) -> u8 {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        seq
    }

    /// One typed request (SMPv2); returns the checked answer's body.
    fn call(&mut self, what: &str, req: &Request<'_>) -> Result<Vec<u8>, DeviceError> {
        let out = Outgoing::typed(what, req, self.next_seq())?;
        self.exchange(&out)
    }

    /// One typed request in the clear, also with a paired lock (the
    /// channel's own messages).
    fn call_plain(&mut self, what: &str, req: &Request<'_>) -> Result<Vec<u8>, DeviceError> {
        let out = Outgoing::typed(what, req, self.next_seq())?;
        self.plain_exchange(&out)
    }
}

/// A request frame on its way, and what its answer must match.
struct Outgoing<'a> {
    /// What the request is for, in words (errors name it).
    what: &'a str,
    /// The SMP frame.
    frame: Vec<u8>,
    /// Its sequence number.
    seq: u8,
    /// Its (op, group, command).
    key: (Op, u16, u8),
}

impl<'a> Outgoing<'a> {
    /// `req` as an SMPv2 frame with sequence `seq`.
    fn typed(what: &'a str, req: &Request<'_>, seq: u8) -> Result<Self, DeviceError> {
        let mut frame = vec![0u8; MAX_FRAME];
        let n = req
            .frame(&mut frame, Version::V2, seq)
            .map_err(|_| DeviceError::Usage {
                what: what.to_owned(),
                why: format!("the request exceeds the lock's buffer of {MAX_FRAME} bytes"),
            })?;
        frame.truncate(n);
        Ok(Outgoing {
            what,
            frame,
            seq,
            key: req.key(),
        })
    }

    /// A usage error unless the frame fits in `limit` bytes (`room`: where).
    fn fits(&self, limit: usize, room: &str) -> Result<(), DeviceError> {
        if self.frame.len() > limit {
            return Err(DeviceError::Usage {
                what: self.what.to_owned(),
                why: format!(
                    "a request of {} bytes exceeds {room} of {limit} bytes",
                    self.frame.len()
                ),
            });
        }
        Ok(())
    }

    /// Checks an answer frame against the request's (op, group, command,
    /// sequence) and for a refusal; returns its body.
    fn check(&self, answer: &[u8]) -> Result<Vec<u8>, DeviceError> {
        let (what, seq, (op, group, id)) = (self.what, self.seq, self.key);
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
}
