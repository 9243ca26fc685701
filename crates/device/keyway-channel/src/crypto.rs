//! Small wrappers over the RustCrypto primitives the channel uses.

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::Error;

/// ChaCha20-Poly1305 tag length.
pub(crate) const TAG: usize = 16;

/// The 12-byte nonce for 64-bit counter `n`: four zero bytes, then `n`
/// little-endian (each key is used in one direction only).
fn nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::from(bytes)
}

/// Encrypts `buf` in place under `key` and nonce `n`, returning the tag.
pub(crate) fn seal(key: &[u8; 32], n: u64, aad: &[u8], buf: &mut [u8]) -> [u8; TAG] {
    let cipher = ChaCha20Poly1305::new(key.into());
    // Encryption fails only for plaintexts over 2^38 bytes.
    match cipher.encrypt_inout_detached(&nonce(n), aad, buf.into()) {
        Ok(tag) => tag.into(),
        Err(_) => [0; TAG],
    }
}

/// Decrypts `buf` in place if `tag` authenticates it; else [`Error::Forged`]
/// (and `buf` is left as it came).
pub(crate) fn open(
    key: &[u8; 32],
    n: u64,
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG],
) -> Result<(), Error> {
    let cipher = ChaCha20Poly1305::new(key.into());
    let tag = Tag::from(*tag);
    cipher
        .decrypt_inout_detached(&nonce(n), aad, buf.into(), &tag)
        .map_err(|_| Error::Forged)
}

/// HKDF-Expand(prk, label || context) into a 32-byte key.
pub(crate) fn expand(prk: &Hkdf<Sha256>, label: &[u8], context: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF's 255 * 32 limit.
    let _ = prk.expand_multi_info(&[label, context], &mut out);
    out
}

/// SHA-256 over the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}
