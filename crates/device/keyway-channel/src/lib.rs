//! Keyway's secure local channel: how an owner's client and a lock talk
//! over a radio link that an attacker shares (BLE, or UDP in the simulator).
//!
//! `#![no_std]`, no heap, sans-IO. Every function takes the bytes that
//! arrived and writes the bytes to send into fixed-size arrays or
//! caller-provided buffers; randomness comes in as a caller-supplied
//! [`CryptoRng`](rand_core::CryptoRng), time as milliseconds of the
//! lock's monotonic clock (or the client's own clock on the client side).
//! The crate holds no owner table, does no I/O and knows nothing of SMP
//! framing: the lock's agent carries these messages in SMP bodies.
//!
//! Both roles are here: the lock (SPAKE2+ *verifier*, handshake
//! *responder*) and the owner's client (SPAKE2+ *prover*, handshake
//! *initiator*).
//!
//! # The three layers
//!
//! 1. **Pairing** ([`pairing`]): the owner proves knowledge of the lock's
//!    8-digit setup code with SPAKE2+ (RFC 9383, on edwards25519:
//!    `SPAKE2+-edwards25519-SHA256-HKDF-SHA256-HMAC-SHA256`, [`pake25519`]),
//!    then the two sides swap their long-term Ed25519 public keys sealed under keys
//!    derived from the PAKE's shared secret. The lock stores only the
//!    SPAKE2+ verifier `(w0, L)` with the PBKDF2 salt and iteration count,
//!    never the code ([`code`]). A [`PairingGuard`] rate-limits wrong codes.
//! 2. **Sessions** ([`handshake`]): a SIGMA-I handshake in the shape of
//!    EDHOC method 0 (RFC 9528): ephemeral X25519 (RFC 7748), a SHA-256
//!    transcript hash, an HKDF-SHA256 key schedule, Ed25519 signatures by
//!    the lock's device key and the owner's key, identities encrypted.
//! 3. **Records** ([`record`]): ChaCha20-Poly1305 with one key per
//!    direction and 64-bit counters as nonces; replayed and stale requests
//!    are refused, every response binds the request it answers and carries
//!    the lock's clock. The lock keeps handshakes and sessions in a
//!    fixed-capacity [`SessionTable`] that refuses new handshakes when full
//!    rather than evicting a live one.
//!
//! FORMAT.md ("Secure local channel") gives the bytes of every message,
//! SECURITY.md the threat model.
//!
//! # One curve, and what is written here by hand
//!
//! Everything public-key in the channel runs on curve25519-dalek's
//! edwards25519 and its Montgomery form: SPAKE2+ ([`pake25519`]), the
//! session's X25519 ([`dh25519`]) and Ed25519 ([`ed25519`]: signing with
//! ed25519-dalek, verification as two single-scalar multiplications). The
//! lock core's code budget (issue 12: 128 KiB) does not hold two curve
//! implementations: the same operations on P-256 (`p256`, the `spake2plus`
//! crate) next to ed25519-compact cost 28 KB more (`scripts/curve-probe.sh`).
//! The `spake2plus` crate implements RFC 9383's P-256 suites only, so the
//! SPAKE2+ protocol layer is written here on the crate's group (its key
//! schedule is checked against RFC 9383's vector, the whole run against an
//! independent libsodium vector). The handshake and the record layer are
//! written here on `sha2`, `hkdf` and `chacha20poly1305`, because `lakers`
//! (EDHOC) brings its own crypto backends and buffers sized for CBOR
//! credentials, and no maintained `no_std` Noise crate signs with Ed25519
//! keys, the lock's existing identity.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod code;
mod crypto;
pub mod dh25519;
pub mod ed25519;
pub mod handshake;
pub mod pairing;
pub mod pake25519;
pub mod record;
pub mod table;
#[cfg(feature = "test-util")]
pub mod testing;

pub use code::{CodeError, SetupCode};
pub use ed25519::{OwnerSigner, SigningKey};
pub use handshake::{ClientHandshake, KeyId, key_id};
pub use pairing::{
    ClientPairing, GuardConfig, LockPairing, NewOwner, PairedLock, PairingGuard, StoredVerifier,
};
pub use rand_core;
pub use record::{ClientResponse, ClientSession, Opened, ResponseStatus};
pub use table::{MAX_SESSIONS_PER_OWNER, SessionId, SessionTable, TableConfig};

/// Everything the channel refuses, on either side.
///
/// One enum for both roles so the agent and the client match on the same
/// values; each variant says which side raises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// A message of the wrong length (either side): `expected` is the
    /// length the format fixes (or the least it takes), `actual` what came.
    Length {
        /// The length the format fixes, or the shortest it may be.
        expected: usize,
        /// The length that arrived.
        actual: usize,
    },
    /// An output buffer too small for the message (either side).
    BufferTooSmall {
        /// The bytes the message needs.
        needed: usize,
        /// The bytes the buffer has.
        actual: usize,
    },
    /// A version or kind byte this implementation does not speak.
    Unsupported(u8),
    /// A point the suite refuses: an edwards25519 encoding that is not
    /// canonical, off the curve or of small order, a SPAKE2+ share that
    /// only cancels the password's mask, or an X25519 key of small order
    /// (the all-zero shared secret).
    InvalidPoint,
    /// Pairing: the key confirmation failed: the other side holds another
    /// setup code (or the messages were altered). The lock counts it in its
    /// [`PairingGuard`]; the client tells the person to re-read the label.
    WrongCode,
    /// Pairing (lock): too many wrong codes; try again in `retry_in_ms`.
    Backoff {
        /// Milliseconds until the guard takes another attempt.
        retry_in_ms: u64,
    },
    /// Pairing (lock): so many wrong codes that pairing stays shut until a
    /// person re-opens the presence window at the lock.
    LockedOut,
    /// A message that does not fit the state the exchange is in (a second
    /// `Pake3`, a record for a handshake that has not finished, ...).
    UnexpectedMessage,
    /// Authenticated decryption failed: the message was forged or altered,
    /// or belongs to another session, direction or counter.
    Forged,
    /// Handshake (lock): the owner's proof does not open the session. The
    /// same value whether the key id is unknown or the signature is wrong,
    /// so a peer cannot learn which keys are paired.
    Refused,
    /// Handshake (client): the lock's signature does not verify under the
    /// device key learnt at pairing: it is not the paired lock.
    LockNotAuthenticated,
    /// Lock: no free slot for a new handshake; every slot holds a live
    /// handshake or session. Try again later.
    Busy,
    /// Lock: no session (or handshake) with this id; it expired, was
    /// closed, or the lock restarted. The client runs a new handshake.
    UnknownSession,
    /// Lock: a request counter not greater than the last one accepted: a
    /// replay (or reordering) of a request.
    Replay {
        /// The counter the request carried.
        counter: u64,
        /// The highest counter accepted so far in this session.
        last: u64,
    },
    /// Lock: the request's estimate of the lock's clock is more than the
    /// freshness limit away from the lock's clock: it was held back (or
    /// the client's view of the clock is too old). The lock answers with an
    /// authenticated [`ResponseStatus::Stale`] carrying its clock so the
    /// client can send a new request.
    Stale {
        /// The lock time the request carried (ms).
        echoed_ms: u64,
        /// The lock's clock when it arrived (ms).
        now_ms: u64,
    },
    /// Client: the lock answered an authenticated `Stale`: the request was
    /// not executed. Send a new request (the clock is re-synced).
    StaleAtLock,
    /// Client: a response arrived with no request outstanding.
    NoRequestOutstanding,
    /// A counter would wrap (2^64 records in one session); handshake again.
    CounterExhausted,
    /// Pairing: the owner's name is longer than [`pairing::NAME_MAX`] bytes
    /// or not UTF-8.
    BadName,
    /// An Ed25519 public key that does not decode, is not canonical or is
    /// of small order.
    BadKey,
    /// Pairing (client): the lock's `Params` ask for a PBKDF2 iteration
    /// count outside [`pairing::MIN_ITERATIONS`]..=[`pairing::MAX_ITERATIONS`].
    Iterations(u32),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Length { expected, actual } => {
                write!(f, "message of {actual} bytes, expected {expected}")
            }
            Self::BufferTooSmall { needed, actual } => {
                write!(f, "output buffer of {actual} bytes, {needed} needed")
            }
            Self::Unsupported(v) => write!(f, "unsupported version or kind {v:#04x}"),
            Self::InvalidPoint => f.write_str("not a valid curve25519 point"),
            Self::WrongCode => f.write_str("the setup code does not match"),
            Self::Backoff { retry_in_ms } => {
                write!(f, "too many wrong setup codes; retry in {retry_in_ms} ms")
            }
            Self::LockedOut => {
                f.write_str("too many wrong setup codes; re-open the presence window at the lock")
            }
            Self::UnexpectedMessage => f.write_str("message out of order"),
            Self::Forged => f.write_str("authentication failed (forged or altered message)"),
            Self::Refused => f.write_str("the owner's proof was refused"),
            Self::LockNotAuthenticated => {
                f.write_str("the lock did not prove the device key learnt at pairing")
            }
            Self::Busy => f.write_str("no free session slot; try again later"),
            Self::UnknownSession => f.write_str("no such session; run a new handshake"),
            Self::Replay { counter, last } => {
                write!(f, "replayed request: counter {counter} not above {last}")
            }
            Self::Stale { echoed_ms, now_ms } => write!(
                f,
                "stale request: lock time {echoed_ms} ms echoed, lock clock {now_ms} ms"
            ),
            Self::StaleAtLock => f.write_str("the lock found the request stale; send a new one"),
            Self::NoRequestOutstanding => f.write_str("response without a request"),
            Self::CounterExhausted => f.write_str("record counter exhausted; handshake again"),
            Self::BadName => f.write_str("owner name not UTF-8 or too long"),
            Self::BadKey => f.write_str("not an Ed25519 public key"),
            Self::Iterations(n) => write!(f, "PBKDF2 iteration count {n} out of range"),
        }
    }
}

/// Checks that `msg` is exactly `N` bytes and returns it as an array.
fn exact<const N: usize>(msg: &[u8]) -> Result<&[u8; N], Error> {
    msg.try_into().map_err(|_| Error::Length {
        expected: N,
        actual: msg.len(),
    })
}
