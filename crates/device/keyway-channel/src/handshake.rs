//! The session handshake: SIGMA-I in the shape of EDHOC method 0
//! (RFC 9528, signature/signature) and TLS 1.3.
//!
//! ```text
//! client -> lock  msg1  33 B  0x02 || X[32]
//! lock -> client  msg2 124 B  sid u32 LE || Y[32] || AEAD_K2(kid_L[8] || sig_L[64]) || tag[16]
//! client -> lock  msg3  92 B  sid u32 LE || AEAD_K3(kid_O[8] || sig_O[64]) || tag[16]
//! lock -> client  msg4  29 B  the response to request counter 0 (see `record`): status Ok and the lock's clock
//! ```
//!
//! * `X = X25519(x, 9)`, `Y = X25519(y, 9)`: ephemeral X25519 keys
//!   (RFC 7748, 32 bytes), fresh per handshake; `G = X25519(x, Y) =
//!   X25519(y, X)`, refused when all zero (a peer key of small order).
//!   X25519 because the lock already carries curve25519 arithmetic for
//!   SPAKE2+ and Ed25519: one curve's code in flash. Version 2; version 1
//!   was the same handshake on P-256 (65-byte keys): a `msg1` starting
//!   with any other version byte is refused [`Error::Unsupported`].
//! * `TH2 = SHA-256("keyway session v2" || msg1 || sid || Y)`,
//!   `PRK = HKDF-Extract(salt = TH2, IKM = G)`.
//! * `K2 = HKDF-Expand(PRK, "k2" || TH2, 32)`; the lock signs
//!   `"keyway session v2 lock" || TH2 || kid_L` with its device key and
//!   sends key id and signature encrypted under `K2` (nonce 0, AAD `TH2`).
//! * `TH3 = SHA-256(TH2 || ciphertext2 || tag2)`,
//!   `K3 = HKDF-Expand(PRK, "k3" || TH3, 32)`; the owner signs
//!   `"keyway session v2 owner" || TH3 || kid_O` and sends it encrypted
//!   under `K3` (nonce 0, AAD `TH3`).
//! * `TH4 = SHA-256(TH3 || ciphertext3 || tag3)`; the record keys are
//!   `HKDF-Expand(PRK, "c2l" || TH4, 32)` (client to lock) and
//!   `HKDF-Expand(PRK, "l2c" || TH4, 32)` (lock to client).
//!
//! As SIGMA-I: each signature covers both ephemeral keys (through the
//! transcript hash) and the signer's identity; the AEAD under a key from
//! `G` plays SIGMA's MAC, binding the identity to the key exchange; both
//! identities travel encrypted (the lock's under `K2`, which a passive
//! observer cannot compute, the owner's under `K3`, which only someone
//! who completed the exchange with the authenticated lock can). The key
//! ids are `SHA-256(public key)[..8]`, as elsewhere in Keyway.
//!
//! The lock finds the owner's public key through a caller-supplied lookup.
//! An unknown key id and a wrong signature both give [`Error::Refused`],
//! and the lock verifies a signature in both cases (against a fixed dummy
//! key when the id is unknown), so neither the answer nor the work tells a
//! prober whether a key is paired.

use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::Sha256;
use zeroize::Zeroize;

use crate::dh25519;
use crate::ed25519::{self, OwnerSigner, SigningKey};

use crate::crypto::{self, TAG};
use crate::record::ClientSession;
use crate::{Error, exact};

/// Version byte that starts `msg1`.
pub const VERSION: u8 = 2;
/// An ephemeral X25519 key.
const KEY: usize = dh25519::KEY_LEN;
/// `msg1` length.
pub const MSG1_LEN: usize = 1 + KEY;
/// The encrypted identity in `msg2` and `msg3`: key id and signature.
const ID_PLAIN: usize = 8 + 64;
/// `msg2` length.
pub const MSG2_LEN: usize = 4 + KEY + ID_PLAIN + TAG;
/// Where the encrypted identity starts in `msg2`.
const ID2: usize = 4 + KEY;
/// `msg3` length.
pub const MSG3_LEN: usize = 4 + ID_PLAIN + TAG;

const TH_LABEL: &[u8] = b"keyway session v2";
const LOCK_SIG_LABEL: &[u8] = b"keyway session v2 lock";
const OWNER_SIG_LABEL: &[u8] = b"keyway session v2 owner";
const SIG_MSG_LEN: usize = 23 + 32 + 8;

/// A key id: the first 8 bytes of SHA-256 over the raw Ed25519 public key.
pub type KeyId = [u8; 8];

/// The key id of `public_key`.
pub fn key_id(public_key: &[u8; 32]) -> KeyId {
    let h = crypto::sha256(&[public_key]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[..8]);
    id
}

/// The Ed25519 base point: a valid public key the lock verifies against
/// when the owner's key id is unknown, so an unknown key costs the same
/// work as a known one. Its result is ignored.
const DUMMY_KEY: [u8; 32] = [
    0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
    0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
];

/// The message a signature covers: label, transcript hash, signer's key id.
fn sig_message(label: &[u8], th: &[u8; 32], kid: &KeyId) -> ([u8; SIG_MSG_LEN], usize) {
    let mut m = [0u8; SIG_MSG_LEN];
    let n = label.len();
    m[..n].copy_from_slice(label);
    m[n..n + 32].copy_from_slice(th);
    m[n + 32..n + 40].copy_from_slice(kid);
    (m, n + 40)
}

fn sign(key: &SigningKey, label: &[u8], th: &[u8; 32], kid: &KeyId) -> [u8; 64] {
    let (m, n) = sig_message(label, th, kid);
    ed25519::sign(key, &m[..n])
}

fn verify(pk: &[u8; 32], label: &[u8], th: &[u8; 32], kid: &KeyId, sig: &[u8]) -> bool {
    let (m, n) = sig_message(label, th, kid);
    ed25519::verify(pk, &m[..n], sig)
}

/// An ephemeral X25519 secret: 32 bytes from the caller's RNG, wiped when
/// dropped.
struct Ephemeral([u8; KEY]);

impl Ephemeral {
    fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut secret = [0u8; KEY];
        rng.fill_bytes(&mut secret);
        Self(secret)
    }

    fn public_key(&self) -> [u8; KEY] {
        dh25519::public_key(&self.0)
    }
}

impl Drop for Ephemeral {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// `(PRK, TH2)` from the X25519 result and the transcript so far; the
/// all-zero result (a peer key of small order) is [`Error::InvalidPoint`].
fn schedule2(
    secret: &Ephemeral,
    peer: &[u8; KEY],
    msg1: &[u8; MSG1_LEN],
    sid: &[u8; 4],
    y: &[u8; KEY],
) -> Result<([u8; 32], [u8; 32]), Error> {
    let th2 = crypto::sha256(&[TH_LABEL, msg1, sid, y]);
    let mut shared = dh25519::shared(&secret.0, peer)?;
    let (prk, _) = Hkdf::<Sha256>::extract(Some(&th2), &shared);
    shared.zeroize();
    Ok((prk.into(), th2))
}

fn hkdf(prk: &[u8; 32]) -> Hkdf<Sha256> {
    // A 32-byte PRK is always accepted (the hash's output length).
    Hkdf::<Sha256>::from_prk(prk).unwrap_or_else(|_| Hkdf::<Sha256>::new(None, prk))
}

/// The record keys `(client to lock, lock to client)` after `msg3`.
pub(crate) fn record_keys(prk: &[u8; 32], th4: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let h = hkdf(prk);
    (
        crypto::expand(&h, b"c2l", th4),
        crypto::expand(&h, b"l2c", th4),
    )
}

/// What the lock keeps between `msg2` and `msg3`.
#[derive(Clone)]
pub(crate) struct LockPending {
    prk: [u8; 32],
    th3: [u8; 32],
}

impl Drop for LockPending {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.prk);
    }
}

/// Lock: the version byte, then the length of `msg1`: a peer of another
/// version gets a typed refusal naming it, whatever its message's length.
pub(crate) fn check_msg1(msg1: &[u8]) -> Result<&[u8; MSG1_LEN], Error> {
    match msg1.first() {
        Some(&VERSION) => exact::<MSG1_LEN>(msg1),
        Some(&v) => Err(Error::Unsupported(v)),
        None => Err(Error::Length {
            expected: MSG1_LEN,
            actual: 0,
        }),
    }
}

/// Lock: takes `msg1`, writes `msg2` for session id `sid`.
pub(crate) fn lock_msg1<R: CryptoRng + ?Sized>(
    rng: &mut R,
    device_key: &SigningKey,
    sid: u32,
    msg1: &[u8],
    out: &mut [u8; MSG2_LEN],
) -> Result<LockPending, Error> {
    let msg1 = check_msg1(msg1)?;
    let mut x = [0u8; KEY];
    x.copy_from_slice(&msg1[1..]);
    let secret = Ephemeral::generate(rng);
    let y = secret.public_key();
    let sid = sid.to_le_bytes();
    let (prk, th2) = schedule2(&secret, &x, msg1, &sid, &y)?;
    let k2 = crypto::expand(&hkdf(&prk), b"k2", &th2);
    let kid = key_id(&ed25519::public_key(device_key));
    out[..4].copy_from_slice(&sid);
    out[4..ID2].copy_from_slice(&y);
    let plain = &mut out[ID2..ID2 + ID_PLAIN];
    plain[..8].copy_from_slice(&kid);
    plain[8..].copy_from_slice(&sign(device_key, LOCK_SIG_LABEL, &th2, &kid));
    let tag = crypto::seal(&k2, 0, &th2, plain);
    out[ID2 + ID_PLAIN..].copy_from_slice(&tag);
    let th3 = crypto::sha256(&[&th2, &out[ID2..]]);
    Ok(LockPending { prk, th3 })
}

/// Lock: takes `msg3` (its session id already matched to `pending`);
/// returns the owner's key id and the record keys, or [`Error::Refused`].
pub(crate) fn lock_msg3(
    pending: &LockPending,
    msg3: &[u8],
    lookup: &mut dyn FnMut(&KeyId) -> Option<[u8; 32]>,
) -> Result<(KeyId, [u8; 32], [u8; 32]), Error> {
    let msg3 = exact::<MSG3_LEN>(msg3)?;
    let k3 = crypto::expand(&hkdf(&pending.prk), b"k3", &pending.th3);
    let mut plain = [0u8; ID_PLAIN];
    plain.copy_from_slice(&msg3[4..4 + ID_PLAIN]);
    let tag: &[u8; TAG] = exact(&msg3[4 + ID_PLAIN..])?;
    crypto::open(&k3, 0, &pending.th3, &mut plain, tag)?;
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&plain[..8]);
    let found = lookup(&kid);
    let pk = found.unwrap_or(DUMMY_KEY);
    // Verify in both cases; only then look at whether the key was known.
    let ok = verify(&pk, OWNER_SIG_LABEL, &pending.th3, &kid, &plain[8..]);
    if !(ok & found.is_some()) {
        return Err(Error::Refused);
    }
    let th4 = crypto::sha256(&[&pending.th3, &msg3[4..]]);
    let (c2l, l2c) = record_keys(&pending.prk, &th4);
    Ok((kid, c2l, l2c))
}

/// The owner's client's side of a handshake.
pub struct ClientHandshake {
    secret: Ephemeral,
    msg1: [u8; MSG1_LEN],
}

impl ClientHandshake {
    /// Starts a handshake: a fresh ephemeral key and `msg1`.
    pub fn start<R: CryptoRng + ?Sized>(rng: &mut R) -> (Self, [u8; MSG1_LEN]) {
        let secret = Ephemeral::generate(rng);
        let mut msg1 = [0u8; MSG1_LEN];
        msg1[0] = VERSION;
        msg1[1..].copy_from_slice(&secret.public_key());
        (Self { secret, msg1 }, msg1)
    }

    /// Takes `msg2`: checks that the lock proved `device_public_key` (the
    /// key learnt at pairing), writes `msg3` signed by `owner` into `out`,
    /// and returns the session, waiting for `msg4`
    /// ([`ClientSession::open_response`]).
    pub fn msg2(
        self,
        msg2: &[u8],
        device_public_key: &[u8; 32],
        owner: &(impl OwnerSigner + ?Sized),
        out: &mut [u8; MSG3_LEN],
    ) -> Result<ClientSession, Error> {
        let msg2 = exact::<MSG2_LEN>(msg2)?;
        let mut sid = [0u8; 4];
        sid.copy_from_slice(&msg2[..4]);
        let mut y = [0u8; KEY];
        y.copy_from_slice(&msg2[4..ID2]);
        let (prk, th2) = schedule2(&self.secret, &y, &self.msg1, &sid, &y)?;
        let h = hkdf(&prk);
        let k2 = crypto::expand(&h, b"k2", &th2);
        let mut plain = [0u8; ID_PLAIN];
        plain.copy_from_slice(&msg2[ID2..ID2 + ID_PLAIN]);
        let tag: &[u8; TAG] = exact(&msg2[ID2 + ID_PLAIN..])?;
        crypto::open(&k2, 0, &th2, &mut plain, tag)?;
        let mut kid_l = [0u8; 8];
        kid_l.copy_from_slice(&plain[..8]);
        if kid_l != key_id(device_public_key)
            || !verify(device_public_key, LOCK_SIG_LABEL, &th2, &kid_l, &plain[8..])
        {
            return Err(Error::LockNotAuthenticated);
        }
        let th3 = crypto::sha256(&[&th2, &msg2[ID2..]]);
        let k3 = crypto::expand(&h, b"k3", &th3);
        let kid_o = key_id(&owner.public_key());
        out[..4].copy_from_slice(&sid);
        let plain = &mut out[4..4 + ID_PLAIN];
        plain[..8].copy_from_slice(&kid_o);
        let (m, n) = sig_message(OWNER_SIG_LABEL, &th3, &kid_o);
        plain[8..].copy_from_slice(&owner.sign(&m[..n]));
        let tag = crypto::seal(&k3, 0, &th3, plain);
        out[4 + ID_PLAIN..].copy_from_slice(&tag);
        let th4 = crypto::sha256(&[&th3, &out[4..]]);
        let (c2l, l2c) = record_keys(&prk, &th4);
        Ok(ClientSession::new(u32::from_le_bytes(sid), c2l, l2c))
    }
}
