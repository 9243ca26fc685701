//! Two endpoints in memory, after quinn-proto's `tests/util.rs` `Pair`:
//! a lock (device key, stored verifier, pairing guard, session table) and
//! an owner's client, one seeded RNG, and a fake clock per side.

#![allow(dead_code)]

use keyway_channel::SigningKey as KeyPair;
use keyway_channel::handshake::{MSG2_LEN, MSG3_LEN};
use keyway_channel::pairing::{self, PAKE2_LEN, PAKE3_LEN, PAKE4_LEN};
use keyway_channel::record::MSG4_LEN;
use keyway_channel::{
    ClientHandshake, ClientPairing, ClientSession, Error, GuardConfig, KeyId, LockPairing,
    NewOwner, PairedLock, PairingGuard, SessionId, SessionTable, SetupCode, StoredVerifier,
    TableConfig, key_id,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

/// Iterations for tests: the client's minimum, so debug builds stay quick.
pub const TEST_ITERATIONS: u32 = pairing::MIN_ITERATIONS;
pub const CODE: u32 = 20_231_107;
pub const SLOTS: usize = 4;

pub fn keypair(tag: u8) -> KeyPair {
    KeyPair::from_bytes(&[tag; 32])
}

/// The lock's side.
pub struct Lock {
    pub device: KeyPair,
    pub verifier: StoredVerifier,
    pub guard: PairingGuard,
    pub pairing: LockPairing,
    pub table: SessionTable<SLOTS>,
    /// Paired owners: key id and public key (the agent's table).
    pub owners: Vec<(KeyId, [u8; 32])>,
    pub now_ms: u64,
}

impl Lock {
    pub fn lookup(&self) -> impl FnMut(&KeyId) -> Option<[u8; 32]> + '_ {
        |kid| {
            self.owners
                .iter()
                .find(|(k, _)| k == kid)
                .map(|(_, pk)| *pk)
        }
    }
}

/// The owner's client.
pub struct Client {
    pub owner: KeyPair,
    pub lock_key: Option<[u8; 32]>,
    pub now_ms: u64,
}

/// Each copy of `msg` with one byte at or after `from` XORed with `bits`,
/// and that byte's offset.
pub fn flipped(msg: &[u8], from: usize, bits: u8) -> impl Iterator<Item = (usize, Vec<u8>)> + '_ {
    (from..msg.len()).map(move |at| {
        let mut altered = msg.to_vec();
        altered[at] ^= bits;
        (at, altered)
    })
}

pub struct Pair {
    pub lock: Lock,
    pub client: Client,
    pub rng: ChaCha20Rng,
}

impl Pair {
    /// The lock's answer to a client's handshake `msg1` (its session
    /// table, device key and clock; the pair's RNG) into `out`.
    pub fn lock_handshake1(
        &mut self,
        msg1: &[u8],
        out: &mut [u8; MSG2_LEN],
    ) -> Result<SessionId, Error> {
        self.lock.table.handshake1(
            self.lock.now_ms,
            &mut self.rng,
            &self.lock.device,
            msg1,
            out,
        )
    }

    /// The lock's answer to the client's Pake1 `msg` (its pairing state,
    /// verifier, guard and clock; the pair's RNG) into `out`.
    pub fn lock_pake1(&mut self, msg: &[u8], out: &mut [u8; PAKE2_LEN]) -> Result<(), Error> {
        self.lock.pairing.pake1(
            &self.lock.verifier,
            &mut self.lock.guard,
            self.lock.now_ms,
            &mut self.rng,
            msg,
            out,
        )
    }

    /// The lock's answer to the client's Pake3 `msg` (its pairing run,
    /// guard and device key): the new owner, and Pake4 in `out`.
    pub fn lock_pake3(&mut self, msg: &[u8], out: &mut [u8; PAKE4_LEN]) -> Result<NewOwner, Error> {
        let device = self.lock.device.verifying_key().to_bytes();
        self.lock
            .pairing
            .pake3(&mut self.lock.guard, msg, &device, out)
    }

    pub fn new(seed: u64) -> Self {
        let code = SetupCode::new(CODE).unwrap();
        let verifier = StoredVerifier::derive(&code, &[7; 16], TEST_ITERATIONS);
        Pair {
            lock: Lock {
                device: keypair(0xd0),
                verifier,
                guard: PairingGuard::new(GuardConfig::default()),
                pairing: LockPairing::new(),
                table: SessionTable::new(TableConfig::default()),
                owners: Vec::new(),
                now_ms: 1_000_000,
            },
            client: Client {
                owner: keypair(0x0a),
                lock_key: None,
                now_ms: 5_000,
            },
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    /// Both clocks move by `ms`.
    pub fn advance(&mut self, ms: u64) {
        self.lock.now_ms += ms;
        self.client.now_ms += ms;
    }

    /// A whole pairing with `code`; on success the lock stores the owner and
    /// the client the lock's key. Returns the lock's and the client's results.
    pub fn pair(&mut self, code: u32, name: &str) -> Result<(NewOwner, PairedLock), Error> {
        let t = self.pair_transcript(code, name)?;
        Ok((t.owner, t.lock))
    }

    pub fn pair_transcript(&mut self, code: u32, name: &str) -> Result<PairingTranscript, Error> {
        let code = SetupCode::new(code).unwrap();
        let params = self.lock.verifier.params();
        let (mut client, pake1) = ClientPairing::start(&code, &params, &mut self.rng)?;
        let mut pake2 = [0u8; PAKE2_LEN];
        self.lock_pake1(&pake1, &mut pake2)?;
        let mut pake3 = [0u8; PAKE3_LEN];
        client.pake2(
            &pake2,
            &self.client.owner.verifying_key().to_bytes(),
            name,
            &mut pake3,
        )?;
        let mut pake4 = [0u8; PAKE4_LEN];
        let owner = self.lock_pake3(&pake3, &mut pake4)?;
        let lock = client.pake4(&pake4)?;
        self.lock.owners.push((owner.key_id(), owner.public_key));
        self.client.lock_key = Some(lock.device_public_key);
        Ok(PairingTranscript {
            params,
            pake1,
            pake2,
            pake3,
            pake4,
            owner,
            lock,
        })
    }

    /// Pairs with the right code (or panics).
    pub fn paired(seed: u64) -> Self {
        let mut p = Pair::new(seed);
        p.pair(CODE, "Alice").unwrap();
        p
    }

    /// Paired with the right code and in a session by the owner's key.
    pub fn in_session(seed: u64) -> (Self, ClientSession) {
        let mut p = Pair::paired(seed);
        let s = p.handshake().unwrap();
        (p, s)
    }

    /// A whole handshake by the client's owner key; returns the session.
    pub fn handshake(&mut self) -> Result<ClientSession, Error> {
        let owner = self.client.owner.clone();
        self.handshake_as(&owner)
    }

    pub fn handshake_as(&mut self, owner: &KeyPair) -> Result<ClientSession, Error> {
        let (hs, msg1) = ClientHandshake::start(&mut self.rng);
        let mut msg2 = [0u8; MSG2_LEN];
        self.lock_handshake1(&msg1, &mut msg2)?;
        self.finish_handshake(hs, &msg2, owner)
    }

    /// The lock's answer to a client's `msg3` (its session table, the
    /// paired owners, its clock): `msg4`.
    pub fn lock_handshake3(&mut self, msg3: &[u8]) -> Result<[u8; MSG4_LEN], Error> {
        let mut msg4 = [0u8; MSG4_LEN];
        let owners = self.lock.owners.clone();
        self.lock.table.handshake3(
            self.lock.now_ms,
            msg3,
            |kid| owners.iter().find(|(k, _)| k == kid).map(|(_, pk)| *pk),
            &mut msg4,
        )?;
        Ok(msg4)
    }

    /// Ends the client's handshake `hs` after the lock's `msg2`: `msg3`
    /// signed by `owner`, the lock's `msg4` opened.
    pub fn finish_handshake(
        &mut self,
        hs: ClientHandshake,
        msg2: &[u8],
        owner: &dyn keyway_channel::OwnerSigner,
    ) -> Result<ClientSession, Error> {
        let mut msg3 = [0u8; MSG3_LEN];
        let lock_key = self.client.lock_key.expect("paired");
        let mut session = hs.msg2(msg2, &lock_key, owner, &mut msg3)?;
        let mut msg4 = self.lock_handshake3(&msg3)?;
        session.open_response(self.client.now_ms, &mut msg4)?;
        Ok(session)
    }

    /// Opens a copy of `answer` at the client in `session`: its payload.
    pub fn open(&self, session: &mut ClientSession, answer: &[u8]) -> Result<Vec<u8>, Error> {
        let mut buf = answer.to_vec();
        let opened = session.open_response(self.client.now_ms, &mut buf)?;
        Ok(buf[opened.payload].to_vec())
    }

    /// The lock executes `request` (opened in place) and answers; the
    /// payload of the answer is `b"ok:" || request payload`. On `Stale` it
    /// answers the authenticated Stale. Returns the opened request or the
    /// error, and the response bytes (empty when the channel gives none).
    pub fn lock_serve(&mut self, request: &mut [u8]) -> (Result<Vec<u8>, Error>, Vec<u8>) {
        let now = self.lock.now_ms;
        let mut out = vec![0u8; request.len() + 64];
        match self.lock.table.open_request(now, request) {
            Ok(opened) => {
                let mut answer = b"ok:".to_vec();
                answer.extend_from_slice(&request[opened.payload.clone()]);
                let n = self
                    .lock
                    .table
                    .seal_response(
                        now,
                        opened.session,
                        opened.counter,
                        keyway_channel::ResponseStatus::Ok,
                        &answer,
                        &mut out,
                    )
                    .unwrap();
                out.truncate(n);
                (Ok(request[opened.payload].to_vec()), out)
            }
            Err(Error::Stale { echoed_ms, now_ms }) => {
                let sid = u32::from_le_bytes(request[..4].try_into().unwrap());
                let counter = u64::from_le_bytes(request[4..12].try_into().unwrap());
                let n = self
                    .lock
                    .table
                    .seal_response(
                        now,
                        sid,
                        counter,
                        keyway_channel::ResponseStatus::Stale,
                        &[],
                        &mut out,
                    )
                    .unwrap();
                out.truncate(n);
                (Err(Error::Stale { echoed_ms, now_ms }), out)
            }
            Err(e) => (Err(e), Vec::new()),
        }
    }

    /// The client seals `payload` as a request.
    pub fn request(&mut self, session: &mut ClientSession, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; payload.len() + 64];
        let (_, n) = session
            .seal_request(self.client.now_ms, payload, &mut out)
            .unwrap();
        out.truncate(n);
        out
    }

    /// The client asks `payload`; the lock's sealed answer, not yet opened.
    pub fn answer(&mut self, session: &mut ClientSession, payload: &[u8]) -> Vec<u8> {
        let mut req = self.request(session, payload);
        self.lock_serve(&mut req).1
    }

    /// One full request/response; returns the answer payload at the client.
    pub fn round_trip(
        &mut self,
        session: &mut ClientSession,
        payload: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut req = self.request(session, payload);
        let (served, resp) = self.lock_serve(&mut req);
        if let Err(e) = served
            && resp.is_empty()
        {
            return Err(e);
        }
        self.open(session, &resp)
    }
}

pub struct PairingTranscript {
    pub params: [u8; pairing::PARAMS_LEN],
    pub pake1: [u8; pairing::PAKE1_LEN],
    pub pake2: [u8; PAKE2_LEN],
    pub pake3: [u8; PAKE3_LEN],
    pub pake4: [u8; PAKE4_LEN],
    pub owner: NewOwner,
    pub lock: PairedLock,
}

pub fn kid(k: &KeyPair) -> KeyId {
    key_id(&k.verifying_key().to_bytes())
}
