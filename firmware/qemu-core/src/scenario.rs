//! The run's fixed inputs, shared by the firmware and build.rs (which
//! records the owner's client's side of the same run on the host).

/// The code on the lock's label.
pub const CODE: u32 = 20_231_107;
/// A wrong code, its client's RNG seed, and the byte of the Pake3 it sends
/// (it cannot compute a right one).
pub const WRONG_CODE: u32 = 20_231_108;
pub const WRONG_RNG_SEED: u64 = 7;
pub const WRONG_PAKE3_BYTE: u8 = 0x42;
/// The lock's PBKDF2 salt for its pairing verifier.
pub const SALT: [u8; 16] = [0x5a; 16];
/// PBKDF2 iterations of this run's verifier: the client's minimum (the
/// lock never runs PBKDF2; the client's cost is not measured here).
pub const ITERATIONS: u32 = 1_000;
/// The owner's key.
pub const OWNER_SEED: [u8; 32] = [0x0a; 32];
/// The lock's RNG seeds (ChaCha20) before and after the reboot, and the
/// client's.
pub const LOCK_RNG_SEED: u64 = 2026;
pub const LOCK_RNG_SEED_2: u64 = 2027;
pub const CLIENT_RNG_SEED: u64 = 1207;
/// The client's RNG seeds for its two handshakes (their own, so the
/// checked build can rerun the client's side of a handshake on target and
/// open the lock's sealed answers).
pub const CLIENT_HS_SEED: u64 = 1208;
pub const CLIENT_HS_SEED_2: u64 = 1209;
/// The radio peers (hashed addresses): the owner's phone and someone
/// else trying a wrong setup code.
pub const OWNER_PEER: u64 = 0x0a11ce;
pub const WRONG_PEER: u64 = 0xbad;
/// The lock's monotonic clock (ms) at the handshake, before and after
/// the reboot (the clock restarts).
pub const LOCK_NOW_MS: u64 = 10_000;
pub const LOCK_NOW_2_MS: u64 = 3_000;
/// The owner's name.
pub const NAME: &str = "Alice";
/// Upload data bytes per SMP frame.
pub const UPLOAD_CHUNK: usize = 512;
/// Export bytes per log answer; the client asks for offsets k * LOG_CHUNK.
pub const LOG_CHUNK: usize = 256;
/// Log requests recorded (enough for the run's export).
pub const LOG_REQUESTS: usize = 12;

/// The time of request `k` of a session: the client's clock (ms since it
/// opened msg4) and so, on a link without delay, the lock's clock minus
/// the handshake's time.
pub const fn request_offset_ms(k: usize) -> u64 {
    100 * (k as u64 + 1)
}

/// Reads a recorded session: each request record as a 2-byte
/// little-endian length then its bytes.
pub struct Records<'a>(pub &'a [u8]);

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<2>()?;
        let n = usize::from(u16::from_le_bytes(*len));
        let (rec, rest) = rest.split_at_checked(n)?;
        self.0 = rest;
        Some(rec)
    }
}
