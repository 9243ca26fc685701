//! Pairing: SPAKE2+ with the setup code, then the long-term keys swapped
//! under the PAKE's key.
//!
//! # Messages (FORMAT.md has the bytes)
//!
//! ```text
//! lock   -> client  Params  21 B  0x02 || salt[16] || iterations u32 LE
//! client -> lock    Pake1   32 B  shareP (edwards25519, RFC 8032 encoding)
//! lock   -> client  Pake2   64 B  shareV[32] || confirmV[32]
//! client -> lock    Pake3  113 B  confirmP[32] || AEAD_c2l(owner key[32] || name len[1] || name[32]) || tag[16]
//! lock   -> client  Pake4   48 B  AEAD_l2c(device key[32]) || tag[16]
//! ```
//!
//! The suite is SPAKE2+ over edwards25519 with SHA-256, HKDF-SHA256 and
//! HMAC-SHA256 ([`crate::pake25519`]). `Params` version 2 names it;
//! version 1 was the P-256 suite (65-byte shares, a 97-byte record): a
//! client refuses any other version with [`Error::Unsupported`], and a lock
//! refuses a 65-byte `Pake1` with [`Error::Length`]. A verifier stored by
//! a version-1 lock cannot be converted (it is `w1·P` on another curve):
//! such a lock is provisioned again.
//!
//! The SPAKE2+ context is `SHA-256("keyway pairing v2" || Params)`, so
//! the PBKDF parameters the client used are bound into the transcript (as
//! Matter binds its PBKDFParamRequest/Response); both identities are empty.
//! After the confirmations, `K_shared` keys two one-shot AEADs:
//! `k = HKDF-SHA256(salt = none, ikm = K_shared)`, expanded with the labels
//! `"keyway pair c2l"` and `"keyway pair l2c"`; nonce 0, no AAD.
//!
//! # The verifier and the code
//!
//! `w0s || w1s = PBKDF2-HMAC-SHA256(pw', salt, iterations, 80 bytes)` with
//! `pw' = len(pw) || pw || len("") || len("")` (RFC 9383 section 3.2, empty
//! identities, lengths 8-byte little-endian) and `pw` the code's 8 ASCII
//! digits; `w0`, `w1` are the halves, read as little-endian integers
//! (RFC 8032's scalar encoding), reduced mod the group order. The lock
//! stores [`StoredVerifier`]: `w0`, `L = w1·P`, the salt and the iteration
//! count, never the code. [`DEFAULT_ITERATIONS`] is 100,000, Matter's upper
//! bound: the client pays it once per pairing (≈ 0.1 s on a phone), and
//! it multiplies the cost of guessing the code from a stolen verifier.
//!
//! # Online guessing and the [`PairingGuard`]
//!
//! An active attacker who sends `Pake1` built from a guessed code can test
//! that one guess offline against `confirmV` in `Pake2`, without ever
//! sending `Pake3`. So the lock charges the guard when it answers `Pake1`,
//! not when `Pake3` fails; a correct `Pake3` clears the count. The default
//! [`GuardConfig`]: three attempts free, then a wait of 1 s doubling per
//! further failure (1, 2, 4, ... 64 s), and after 10 failures no pairing
//! until a person re-opens the presence window ([`PairingGuard::reopen`]).
//! Ten guesses per press of the button against 99,999,988 codes: an
//! attacker needs about 5 million presses for an even chance.

use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::Sha256;
use zeroize::Zeroize;

use crate::pake25519::{
    self, CONFIRM_LEN, Context, POINT_LEN, PakeError, Prover, ProverSecret, Verifier,
    VerifierConfirming, VerifierRecord,
};

use crate::code::SetupCode;
use crate::crypto::{self, TAG};
use crate::{Error, exact};

/// Version byte of the pairing messages.
pub const VERSION: u8 = 2;
/// PBKDF2 salt length (Matter: 16 to 32 bytes).
pub const SALT_LEN: usize = 16;
/// Iterations of PBKDF2 the provisioning tool uses by default.
pub const DEFAULT_ITERATIONS: u32 = 100_000;
/// Fewest iterations a client accepts (Matter's lower bound).
pub const MIN_ITERATIONS: u32 = 1_000;
/// Most iterations a client accepts, so a forged `Params` cannot make it
/// spin for minutes (10× Matter's upper bound).
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Longest owner name, bytes of UTF-8.
pub const NAME_MAX: usize = 32;

/// `Params` length.
pub const PARAMS_LEN: usize = 1 + SALT_LEN + 4;
/// `Pake1` length.
pub const PAKE1_LEN: usize = POINT_LEN;
/// `Pake2` length.
pub const PAKE2_LEN: usize = POINT_LEN + CONFIRM_LEN;
/// The sealed owner identity in `Pake3`: key, name length, name.
const OWNER_PLAIN: usize = 32 + 1 + NAME_MAX;
/// `Pake3` length.
pub const PAKE3_LEN: usize = 32 + OWNER_PLAIN + TAG;
/// `Pake4` length.
pub const PAKE4_LEN: usize = 32 + TAG;
/// Stored verifier length: `w0[32] || L[32] || salt[16] || iterations u32 LE`.
pub const VERIFIER_LEN: usize = RECORD_LEN + SALT_LEN + 4;

const RECORD_LEN: usize = pake25519::RECORD_LEN;
const CONTEXT_LABEL: &[u8] = b"keyway pairing v2";

/// What the lock stores instead of the setup code: the SPAKE2+ record
/// `(w0, L)` plus the PBKDF2 salt and iteration count.
///
/// Anyone who reads it can test code guesses offline (PBKDF2 per guess), so
/// it belongs in the lock's protected storage; it cannot be used to pose
/// as the owner's client (that needs `w1`).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredVerifier {
    bytes: [u8; VERIFIER_LEN],
}

impl core::fmt::Debug for StoredVerifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StoredVerifier(..)")
    }
}

/// The 80 bytes of PBKDF2 output for `code` (see the module doc).
fn pbkdf(code: &SetupCode, salt: &[u8; SALT_LEN], iterations: u32) -> [u8; 80] {
    let mut input = [0u8; 32];
    input[..8].copy_from_slice(&8u64.to_le_bytes());
    input[8..16].copy_from_slice(&code.digits());
    // len(idProver) = len(idVerifier) = 0: the remaining 16 zero bytes.
    let mut out = [0u8; 80];
    pbkdf2::pbkdf2_hmac::<Sha256>(&input, salt, iterations, &mut out);
    out
}

impl StoredVerifier {
    /// Derives the verifier from the setup code at provisioning (host side,
    /// or a factory tool): PBKDF2 over the code with a per-lock random
    /// `salt`. `iterations` should be [`DEFAULT_ITERATIONS`]; the client
    /// refuses anything outside [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`].
    pub fn derive(code: &SetupCode, salt: &[u8; SALT_LEN], iterations: u32) -> Self {
        let mut output = pbkdf(code, salt, iterations);
        let secret = ProverSecret::from_pbkdf_output(&output)
            // A zero w0 or w1 needs PBKDF2 to hit the group order's
            // multiples: probability 2^-252. Fall back to an all-ones
            // output that is valid, so this never panics.
            .or_else(|_| ProverSecret::from_pbkdf_output(&[0xff; 80]))
            .ok();
        output.zeroize();
        let mut bytes = [0u8; VERIFIER_LEN];
        if let Some(secret) = secret {
            bytes[..RECORD_LEN].copy_from_slice(&secret.verifier_record().to_bytes());
        }
        bytes[RECORD_LEN..RECORD_LEN + SALT_LEN].copy_from_slice(salt);
        bytes[RECORD_LEN + SALT_LEN..].copy_from_slice(&iterations.to_le_bytes());
        Self { bytes }
    }

    /// Parses stored bytes, checking `w0` and `L`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bytes = *exact::<VERIFIER_LEN>(bytes)?;
        let this = Self { bytes };
        this.record()?;
        Ok(this)
    }

    /// The bytes to store.
    pub fn to_bytes(&self) -> [u8; VERIFIER_LEN] {
        self.bytes
    }

    /// The PBKDF2 salt.
    pub fn salt(&self) -> [u8; SALT_LEN] {
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(&self.bytes[RECORD_LEN..RECORD_LEN + SALT_LEN]);
        s
    }

    /// The PBKDF2 iteration count.
    pub fn iterations(&self) -> u32 {
        let mut i = [0u8; 4];
        i.copy_from_slice(&self.bytes[RECORD_LEN + SALT_LEN..]);
        u32::from_le_bytes(i)
    }

    fn record(&self) -> Result<VerifierRecord, Error> {
        let mut record = [0u8; RECORD_LEN];
        record.copy_from_slice(&self.bytes[..RECORD_LEN]);
        let parsed = VerifierRecord::from_bytes(&record).map_err(pake_error);
        record.zeroize();
        parsed
    }

    /// The `Params` message the lock sends when a pairing begins.
    pub fn params(&self) -> [u8; PARAMS_LEN] {
        let mut p = [0u8; PARAMS_LEN];
        p[0] = VERSION;
        p[1..].copy_from_slice(&self.bytes[RECORD_LEN..]);
        p
    }
}

/// The SPAKE2+ context for a run with these `Params`.
fn context_hash(params: &[u8; PARAMS_LEN]) -> [u8; 32] {
    crypto::sha256(&[CONTEXT_LABEL, params])
}

fn context(hash: &[u8; 32]) -> Context<'_> {
    Context {
        context: hash,
        prover_id: b"",
        verifier_id: b"",
    }
}

/// The two one-shot keys from `K_shared`: (client to lock, lock to client).
fn pairing_keys(shared: &[u8]) -> ([u8; 32], [u8; 32]) {
    let prk = Hkdf::<Sha256>::new(None, shared);
    (
        crypto::expand(&prk, b"keyway pair c2l", b""),
        crypto::expand(&prk, b"keyway pair l2c", b""),
    )
}

fn pake_error(e: PakeError) -> Error {
    match e {
        PakeError::ConfirmationFailed => Error::WrongCode,
        PakeError::Length { expected, actual } => Error::Length { expected, actual },
        PakeError::InvalidPoint | PakeError::DegenerateShare | PakeError::InvalidScalar => {
            Error::InvalidPoint
        }
    }
}

/// The rate limits of a [`PairingGuard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    /// Attempts that cost no wait.
    pub free_attempts: u32,
    /// The wait after the first failure past the free ones (ms); it doubles
    /// with each further failure.
    pub base_delay_ms: u64,
    /// The longest wait (ms).
    pub max_delay_ms: u64,
    /// After this many failures pairing stays shut until
    /// [`PairingGuard::reopen`].
    pub lockout_after: u32,
}

impl Default for GuardConfig {
    /// 3 free, then 1 s doubling up to 64 s, shut after 10.
    fn default() -> Self {
        Self {
            free_attempts: 3,
            base_delay_ms: 1_000,
            max_delay_ms: 64_000,
            lockout_after: 10,
        }
    }
}

/// Rate limit of pairing attempts (lock side). Time is an input.
///
/// An attempt is charged when the lock answers `Pake1` (that is when a
/// guess becomes testable) and cleared by a correct `Pake3`. The agent
/// should persist [`failures`](Self::failures) with the lock's state and
/// restore it with [`restore`](Self::restore) after a restart, so a power
/// cut does not reset the count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingGuard {
    config: GuardConfig,
    failures: u32,
    next_allowed_ms: u64,
}

impl PairingGuard {
    /// A guard with no failures.
    pub fn new(config: GuardConfig) -> Self {
        Self {
            config,
            failures: 0,
            next_allowed_ms: 0,
        }
    }

    /// A guard after a restart with `failures` counted before it: the full
    /// wait for that count starts at `now_ms`.
    pub fn restore(config: GuardConfig, failures: u32, now_ms: u64) -> Self {
        let mut g = Self::new(config);
        g.failures = failures;
        g.next_allowed_ms = now_ms.saturating_add(g.delay_ms());
        g
    }

    /// Failures (attempts not yet confirmed) counted.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The wait the current count imposes (ms).
    fn delay_ms(&self) -> u64 {
        if self.failures < self.config.free_attempts {
            return 0;
        }
        let doublings = (self.failures - self.config.free_attempts).min(32);
        self.config
            .base_delay_ms
            .saturating_mul(1u64 << doublings)
            .min(self.config.max_delay_ms)
    }

    /// Whether an attempt may start at `now_ms`.
    pub fn check(&self, now_ms: u64) -> Result<(), Error> {
        if self.failures >= self.config.lockout_after {
            return Err(Error::LockedOut);
        }
        if now_ms < self.next_allowed_ms {
            return Err(Error::Backoff {
                retry_in_ms: self.next_allowed_ms - now_ms,
            });
        }
        Ok(())
    }

    /// Charges an attempt at `now_ms` (counted as a failure until
    /// [`confirmed`](Self::confirmed)).
    fn charge(&mut self, now_ms: u64) {
        self.failures = self.failures.saturating_add(1);
        self.next_allowed_ms = now_ms.saturating_add(self.delay_ms());
    }

    /// The attempt proved the code: the count starts over.
    fn confirmed(&mut self) {
        self.failures = 0;
        self.next_allowed_ms = 0;
    }

    /// A person re-opened the presence window at the lock: lifts the
    /// lockout and the wait.
    pub fn reopen(&mut self) {
        self.confirmed();
    }
}

#[allow(clippy::large_enum_variant)]
enum LockState {
    Idle,
    Confirming(VerifierConfirming),
}

/// The owner the lock learnt from a successful pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOwner {
    /// The owner's Ed25519 public key.
    pub public_key: [u8; 32],
    name: [u8; NAME_MAX],
    name_len: u8,
}

impl NewOwner {
    /// The name the owner gave (UTF-8, at most [`NAME_MAX`] bytes).
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..usize::from(self.name_len)]).unwrap_or("")
    }

    /// The owner key's id.
    pub fn key_id(&self) -> crate::KeyId {
        crate::key_id(&self.public_key)
    }
}

/// The lock's side of one pairing (SPAKE2+ verifier).
pub struct LockPairing {
    state: LockState,
}

impl Default for LockPairing {
    fn default() -> Self {
        Self::new()
    }
}

impl LockPairing {
    /// A pairing waiting for `Pake1`. The agent sends
    /// [`StoredVerifier::params`] first, when the window is open.
    pub fn new() -> Self {
        Self {
            state: LockState::Idle,
        }
    }

    /// Takes `Pake1`, writes `Pake2` into `out`. Charges the guard (see the
    /// module doc). Refused with [`Error::Backoff`] or
    /// [`Error::LockedOut`] while the guard says so, before any work.
    pub fn pake1<R: CryptoRng + ?Sized>(
        &mut self,
        verifier: &StoredVerifier,
        guard: &mut PairingGuard,
        now_ms: u64,
        rng: &mut R,
        msg: &[u8],
        out: &mut [u8; PAKE2_LEN],
    ) -> Result<(), Error> {
        guard.check(now_ms)?;
        self.state = LockState::Idle;
        let share_p = exact::<PAKE1_LEN>(msg)?;
        let record = verifier.record()?;
        let ctx = context_hash(&verifier.params());
        let (session, share_v) = Verifier::start(&record, rng).map_err(pake_error)?;
        let (confirming, confirm_v) = session
            .receive(&context(&ctx), share_p)
            .map_err(pake_error)?;
        guard.charge(now_ms);
        out[..POINT_LEN].copy_from_slice(&share_v);
        out[POINT_LEN..].copy_from_slice(&confirm_v);
        self.state = LockState::Confirming(confirming);
        Ok(())
    }

    /// Takes `Pake3`; if `confirmP` proves the code, returns the new owner
    /// and writes `Pake4` (the lock's device key, sealed) into `out`. The
    /// agent then stores the owner, closes the window and logs the key id.
    /// A wrong code is [`Error::WrongCode`]; the run is over either way.
    pub fn pake3(
        &mut self,
        guard: &mut PairingGuard,
        msg: &[u8],
        device_public_key: &[u8; 32],
        out: &mut [u8; PAKE4_LEN],
    ) -> Result<NewOwner, Error> {
        let msg = exact::<PAKE3_LEN>(msg)?;
        let LockState::Confirming(confirming) =
            core::mem::replace(&mut self.state, LockState::Idle)
        else {
            return Err(Error::UnexpectedMessage);
        };
        let confirm_p: &[u8; CONFIRM_LEN] = exact(&msg[..CONFIRM_LEN])?;
        let mut shared = confirming.finish(confirm_p).map_err(pake_error)?;
        guard.confirmed();
        let (k_c2l, k_l2c) = pairing_keys(&shared);
        shared.zeroize();
        let mut plain = [0u8; OWNER_PLAIN];
        plain.copy_from_slice(&msg[32..32 + OWNER_PLAIN]);
        let tag: &[u8; TAG] = exact(&msg[32 + OWNER_PLAIN..])?;
        crypto::open(&k_c2l, 0, b"", &mut plain, tag)?;
        let name_len = plain[32];
        if usize::from(name_len) > NAME_MAX
            || core::str::from_utf8(&plain[33..33 + usize::from(name_len)]).is_err()
        {
            return Err(Error::BadName);
        }
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(&plain[..32]);
        if !crate::ed25519::valid_public_key(&public_key) {
            return Err(Error::BadKey);
        }
        let mut name = [0u8; NAME_MAX];
        name.copy_from_slice(&plain[33..]);
        out[..32].copy_from_slice(device_public_key);
        let tag = crypto::seal(&k_l2c, 0, b"", &mut out[..32]);
        out[32..].copy_from_slice(&tag);
        Ok(NewOwner {
            public_key,
            name,
            name_len,
        })
    }
}

// No heap to box into: the state lives inline, a few hundred bytes.
#[allow(clippy::large_enum_variant)]
enum ClientState {
    Started(Prover, [u8; 32]),
    Confirmed([u8; 32]),
    Done,
}

/// What the client learnt from a successful pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairedLock {
    /// The lock's device Ed25519 public key, authenticated by the code.
    pub device_public_key: [u8; 32],
}

/// The owner's client's side of one pairing (SPAKE2+ prover).
pub struct ClientPairing {
    state: ClientState,
}

impl ClientPairing {
    /// Takes the lock's `Params` and the code the person typed; runs
    /// PBKDF2 (the slow step) and returns the session and `Pake1`.
    pub fn start<R: CryptoRng + ?Sized>(
        code: &SetupCode,
        params: &[u8],
        rng: &mut R,
    ) -> Result<(Self, [u8; PAKE1_LEN]), Error> {
        let params = exact::<PARAMS_LEN>(params)?;
        if params[0] != VERSION {
            return Err(Error::Unsupported(params[0]));
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&params[1..1 + SALT_LEN]);
        let mut it = [0u8; 4];
        it.copy_from_slice(&params[1 + SALT_LEN..]);
        let iterations = u32::from_le_bytes(it);
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(Error::Iterations(iterations));
        }
        let mut output = pbkdf(code, &salt, iterations);
        let secret = ProverSecret::from_pbkdf_output(&output);
        output.zeroize();
        let ctx = context_hash(params);
        let (prover, share_p) =
            Prover::start(&secret.map_err(pake_error)?, rng).map_err(pake_error)?;
        Ok((
            Self {
                state: ClientState::Started(prover, ctx),
            },
            share_p,
        ))
    }

    /// Takes `Pake2`; if `confirmV` shows the lock holds the verifier of
    /// the same code, writes `Pake3` (with the owner's key and `name`
    /// sealed) into `out`. A wrong code is [`Error::WrongCode`].
    pub fn pake2(
        &mut self,
        msg: &[u8],
        owner_public_key: &[u8; 32],
        name: &str,
        out: &mut [u8; PAKE3_LEN],
    ) -> Result<(), Error> {
        let msg = exact::<PAKE2_LEN>(msg)?;
        if name.len() > NAME_MAX {
            return Err(Error::BadName);
        }
        let ClientState::Started(prover, ctx) =
            core::mem::replace(&mut self.state, ClientState::Done)
        else {
            return Err(Error::UnexpectedMessage);
        };
        let share_v: &[u8; POINT_LEN] = exact(&msg[..POINT_LEN])?;
        let confirm_v: &[u8; CONFIRM_LEN] = exact(&msg[POINT_LEN..])?;
        let (confirm_p, mut shared) = prover
            .finish(&context(&ctx), share_v, confirm_v)
            .map_err(pake_error)?;
        let (k_c2l, k_l2c) = pairing_keys(&shared);
        shared.zeroize();
        out[..32].copy_from_slice(&confirm_p);
        let plain = &mut out[32..32 + OWNER_PLAIN];
        plain.fill(0);
        plain[..32].copy_from_slice(owner_public_key);
        plain[32] = name.len() as u8;
        plain[33..33 + name.len()].copy_from_slice(name.as_bytes());
        let tag = crypto::seal(&k_c2l, 0, b"", plain);
        out[32 + OWNER_PLAIN..].copy_from_slice(&tag);
        self.state = ClientState::Confirmed(k_l2c);
        Ok(())
    }

    /// Takes `Pake4`: the lock's device key, authenticated by the code.
    pub fn pake4(&mut self, msg: &[u8]) -> Result<PairedLock, Error> {
        let msg = exact::<PAKE4_LEN>(msg)?;
        let ClientState::Confirmed(k_l2c) = core::mem::replace(&mut self.state, ClientState::Done)
        else {
            return Err(Error::UnexpectedMessage);
        };
        let mut key = [0u8; 32];
        key.copy_from_slice(&msg[..32]);
        let tag: &[u8; TAG] = exact(&msg[32..])?;
        crypto::open(&k_l2c, 0, b"", &mut key, tag)?;
        if !crate::ed25519::valid_public_key(&key) {
            return Err(Error::BadKey);
        }
        Ok(PairedLock {
            device_public_key: key,
        })
    }
}
