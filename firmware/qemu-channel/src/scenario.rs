//! The run's fixed inputs, shared by the firmware and build.rs (which
//! records the client's side of the same run for the lock-only build).

/// The code on the label.
pub const CODE: u32 = 20_231_107;
/// A wrong code.
pub const WRONG: u32 = 20_231_108;
/// The lock's PBKDF2 salt.
pub const SALT: [u8; 16] = [0x5a; 16];
/// PBKDF2 iterations of this run's verifier: the client's minimum, since
/// the client's PBKDF2 is not what this harness measures (the lock never
/// runs it).
pub const ITERATIONS: u32 = 1_000;
/// Seeds of the lock's device key and the owner's key.
pub const DEVICE_SEED: [u8; 32] = [0xd0; 32];
pub const OWNER_SEED: [u8; 32] = [0x0a; 32];
/// Seeds of the lock's and the client's RNGs (ChaCha20).
pub const LOCK_RNG_SEED: u64 = 2026;
pub const CLIENT_RNG_SEED: u64 = 1207;
/// The lock's clock during the run (ms) and the client's.
pub const LOCK_NOW_MS: u64 = 10_000;
pub const CLIENT_NOW_MS: u64 = 100;
/// The request: an SMP-sized body (the channel does not look inside).
pub const REQUEST: &[u8] = b"\x02\x00\x00\x10\x00\x40\x0a\x00\xa1\x63cmd\x66unlock";
/// The owner's name.
pub const NAME: &str = "Alice";
