//! The owner's client's side of a pairing and of a session handshake, run
//! on the host with the lock's side (feature `channel`): the harnesses
//! that replay the client's messages on target (`qemu-channel`,
//! `qemu-core`) record them here and check the lock's answers against the
//! host's bytes. Every step must succeed: a failure panics the build script.

use keyway_channel::SigningKey;
use keyway_channel::handshake::{MSG1_LEN, MSG2_LEN, MSG3_LEN};
use keyway_channel::pairing::{PAKE1_LEN, PAKE2_LEN, PAKE3_LEN, PAKE4_LEN};
use keyway_channel::rand_core::CryptoRng;
use keyway_channel::record::MSG4_LEN;
use keyway_channel::{
    ClientHandshake, ClientPairing, ClientSession, GuardConfig, LockPairing, PairedLock,
    PairingGuard, SessionTable, SetupCode, StoredVerifier,
};

/// The lock's side of pairing: its pairing state and wrong-code guard,
/// its stored verifier, its device key and its CSPRNG.
pub struct LockSide<'a, R> {
    /// The pairing in progress.
    pub pairing: LockPairing,
    /// The wrong-code guard.
    pub guard: PairingGuard,
    /// The setup code's verifier the lock stores.
    pub verifier: &'a StoredVerifier,
    /// The device key.
    pub device: &'a SigningKey,
    /// The lock's CSPRNG.
    pub rng: &'a mut R,
}

impl<'a, R: CryptoRng> LockSide<'a, R> {
    /// A lock that has not paired yet (the default guard).
    pub fn new(verifier: &'a StoredVerifier, device: &'a SigningKey, rng: &'a mut R) -> Self {
        LockSide {
            pairing: LockPairing::new(),
            guard: PairingGuard::new(GuardConfig::default()),
            verifier,
            device,
            rng,
        }
    }
}

/// A pairing's four messages and what the client learnt.
pub struct Pairing {
    /// The client's Pake1.
    pub pake1: [u8; PAKE1_LEN],
    /// The lock's Pake2.
    pub pake2: [u8; PAKE2_LEN],
    /// The client's Pake3.
    pub pake3: [u8; PAKE3_LEN],
    /// The lock's Pake4.
    pub pake4: [u8; PAKE4_LEN],
    /// The lock's device key, as the client authenticated it.
    pub paired: PairedLock,
}

/// The owner (`owner`, named `name`) pairs with `code` against `lock`
/// (attempt 1 of its guard's window).
pub fn pair<L: CryptoRng, C: CryptoRng>(
    lock: &mut LockSide<'_, L>,
    code: &SetupCode,
    client_rng: &mut C,
    owner: &SigningKey,
    name: &str,
) -> Pairing {
    let (verifier, guard) = (lock.verifier, &mut lock.guard);
    let (mut client, pake1) = ClientPairing::start(code, &verifier.params(), client_rng).unwrap();
    let mut pake2 = [0u8; PAKE2_LEN];
    lock.pairing
        .pake1(verifier, guard, 1, lock.rng, &pake1, &mut pake2)
        .unwrap();
    let mut pake3 = [0u8; PAKE3_LEN];
    let owner_pk = owner.verifying_key().to_bytes();
    client.pake2(&pake2, &owner_pk, name, &mut pake3).unwrap();
    let mut pake4 = [0u8; PAKE4_LEN];
    let device_pk = lock.device.verifying_key().to_bytes();
    lock.pairing
        .pake3(&mut lock.guard, &pake3, &device_pk, &mut pake4)
        .unwrap();
    let paired = client.pake4(&pake4).unwrap();
    Pairing {
        pake1,
        pake2,
        pake3,
        pake4,
        paired,
    }
}

/// A session handshake's four messages and the client's session (msg4
/// not opened yet).
pub struct Handshake {
    /// The client's msg1.
    pub msg1: [u8; MSG1_LEN],
    /// The lock's msg2.
    pub msg2: [u8; MSG2_LEN],
    /// The client's msg3.
    pub msg3: [u8; MSG3_LEN],
    /// The lock's msg4.
    pub msg4: [u8; MSG4_LEN],
    /// The client's session.
    pub session: ClientSession,
}

/// The owner opens a session with the lock (its `table`, at `now` ms):
/// msg1 to msg4, the owner looked up by its key id.
#[allow(clippy::too_many_arguments)]
pub fn handshake<L: CryptoRng, C: CryptoRng, const N: usize>(
    table: &mut SessionTable<N>,
    now: u64,
    lock_rng: &mut L,
    client_rng: &mut C,
    device: &SigningKey,
    owner: &SigningKey,
    device_pk: &[u8; 32],
) -> Handshake {
    let (hs, msg1) = ClientHandshake::start(client_rng);
    let mut msg2 = [0u8; MSG2_LEN];
    table
        .handshake1(now, lock_rng, device, &msg1, &mut msg2)
        .unwrap();
    let mut msg3 = [0u8; MSG3_LEN];
    let session = hs.msg2(&msg2, device_pk, owner, &mut msg3).unwrap();
    let mut msg4 = [0u8; MSG4_LEN];
    let pk = owner.verifying_key().to_bytes();
    let kid = keyway_channel::key_id(&pk);
    table
        .handshake3(now, &msg3, |k| (*k == kid).then_some(pk), &mut msg4)
        .unwrap();
    Handshake {
        msg1,
        msg2,
        msg3,
        msg4,
        session,
    }
}
