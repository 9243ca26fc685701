//! The agent and owners' clients in memory, after quinn-proto's
//! `tests/util.rs` `Pair`: one agent on a simulated nRF52840 flash, a
//! fake device (bolt, door, pending update), one seeded RNG, a fake clock
//! for the lock and one for the clients. Clients speak only through SMP
//! frames (`keyway-smp`) carrying the channel's client side
//! (`keyway-channel`), as a real client would.

#![allow(dead_code)]

use keyway_agent::agent::{
    Agent, Authority, Authorized, Config, Event, OUT_LEN, Press, ServeError,
};
use keyway_agent::limits::PeerId;
use keyway_agent::testing::{Hardware, TestShell};
use keyway_agent::{store, testing};
use keyway_channel::SigningKey as KeyPair;
use keyway_channel::handshake::MSG3_LEN;
use keyway_channel::pairing::{MIN_ITERATIONS, PAKE1_LEN, PAKE3_LEN};
use keyway_channel::{ClientHandshake, ClientPairing, ClientSession, SetupCode, StoredVerifier};
use keyway_sim::SimFlash;
use keyway_smp::header::split_response;
use keyway_smp::keyway_group::{self, Bolt};
use keyway_smp::{Answer, MAX_BODY, MAX_FRAME, MgmtErr, Refusal, Request, Response, Version, img};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

pub type Flash = SimFlash<4, 4096>;
pub const REGION: store::Config = store::Config::new(0xF_8000, 2);
pub const CODE: u32 = 20_231_107;
pub const WRONG: u32 = 31_415_926;
pub const SLOTS: usize = 4;

pub const OWNER: PeerId = PeerId(1);
pub const STRANGER: PeerId = PeerId(666);

pub fn keypair(tag: u8) -> KeyPair {
    KeyPair::from_bytes(&[tag; 32])
}

pub fn kid(k: &KeyPair) -> [u8; 8] {
    keyway_channel::key_id(&k.verifying_key().to_bytes())
}

/// A lock's hardware and installer, in memory: the shared test lock
/// with [`Installer`] serving the rest.
pub type FakeDevice = testing::TestLock<Installer>;

/// The installer and the rest of the shell, in memory.
#[derive(Default)]
pub struct Installer {
    /// Commands served through `Device::serve`, with who they were for.
    pub served: Vec<(u16, u8, Authority)>,
    /// The installer refuses every upload chunk (a bad head, digest or
    /// size: the shell drops its upload).
    pub refuse_chunks: bool,
    /// The lock declines every authorized reset (an install its policy
    /// postpones).
    pub decline_resets: bool,
}

impl TestShell for Installer {
    fn reset_requested(&mut self, _by: Authority) -> Result<(), ServeError> {
        if self.decline_resets {
            return Err(ServeError::rc(MgmtErr::BadState));
        }
        Ok(())
    }
    fn serve(
        &mut self,
        hw: &mut Hardware,
        call: Authorized<'_>,
    ) -> Result<Option<Response<'_>>, ServeError> {
        let (_, g, id) = call.request.key();
        self.served.push((g, id, call.by));
        let rsp = match call.request {
            Request::Upload(_) if self.refuse_chunks => return Err(ServeError::rc(MgmtErr::Inval)),
            Request::ImageState | Request::ImageStateWrite(_) => {
                Response::ImageState(img::StateRsp {
                    images: keyway_smp::seq::Seq::Items(&[]),
                })
            }
            Request::Notes(_) => testing::release_notes(&mut hw.pending),
            Request::Info(_) => Response::Info(keyway_smp::os::InfoRsp { output: "KW-1" }),
            Request::Upload(u) => Response::Upload(img::UploadRsp {
                off: u.off + u.data.len() as u64,
                matched: None,
            }),
            Request::Erase(_) => Response::Erase,
            Request::Log(l) => Response::Log(keyway_group::LogRsp {
                off: l.off,
                len: 0,
                data: &[],
            }),
            _ => return Err(ServeError::rc(MgmtErr::NotSup)),
        };
        Ok(Some(rsp))
    }
}

/// An answer frame the client received.
#[derive(Clone, Debug)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub event: Event,
}

impl Reply {
    pub fn body(&self) -> &[u8] {
        split_response(&self.bytes, MAX_BODY + 64)
            .expect("an answer frame")
            .1
    }
    pub fn answer(&self) -> Answer<'_> {
        let (h, body) = split_response(&self.bytes, MAX_BODY + 64).expect("an answer frame");
        let op = match h.op {
            keyway_smp::Op::ReadRsp => keyway_smp::Op::Read,
            _ => keyway_smp::Op::Write,
        };
        Response::decode(op, h.group, h.id, body).expect("a decodable answer")
    }
    pub fn is_ok(&self) -> bool {
        matches!(self.answer(), Answer::Ok(_))
    }
    /// The typed refusal, if the answer is an error with one.
    pub fn refusal(&self) -> Option<Refusal> {
        match self.answer() {
            Answer::Err(e) => e.refusal,
            Answer::Ok(_) => None,
        }
    }
    /// The SMP rc, if an error.
    pub fn rc(&self) -> Option<u64> {
        match self.answer() {
            Answer::Err(e) => e.rc,
            Answer::Ok(_) => None,
        }
    }
    /// The channel message an answer to a pairing, handshake or sealed
    /// request carries (`Pake2`/`Pake4`, the PBKDF parameters, `msg2`,
    /// `msg4`, a sealed record); the refusal of any other answer.
    pub fn msg(&self) -> Result<Vec<u8>, Fail> {
        match self.answer() {
            Answer::Ok(Response::PakeParams(p)) => Ok(p.msg.to_vec()),
            Answer::Ok(Response::PakeStart(p)) => Ok(p.msg.to_vec()),
            Answer::Ok(Response::PakeFinish(p)) => Ok(p.msg.to_vec()),
            Answer::Ok(Response::SessionStart(m)) => Ok(m.msg.to_vec()),
            Answer::Ok(Response::SessionFinish(m)) => Ok(m.msg.to_vec()),
            Answer::Ok(Response::Sealed(m)) => Ok(m.msg.to_vec()),
            _ => Err(Fail::Refused(self.refusal(), self.rc())),
        }
    }
}

/// Why a client-side flow failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    /// The lock refused (typed refusal, rc).
    Refused(Option<Refusal>, Option<u64>),
    /// The channel refused on the client's side.
    Channel(keyway_channel::Error),
}

/// An owner's client: its key, the lock key learnt at pairing, a session.
pub struct Client {
    pub key: KeyPair,
    pub peer: PeerId,
    pub lock_key: Option<[u8; 32]>,
    pub session: Option<ClientSession>,
}

impl Client {
    pub fn new(tag: u8, peer: PeerId) -> Self {
        Self {
            key: keypair(tag),
            peer,
            lock_key: None,
            session: None,
        }
    }
}

pub struct Harness {
    pub agent: Agent<Flash, SLOTS>,
    pub device: FakeDevice,
    pub rng: ChaCha20Rng,
    pub lock_ms: u64,
    pub client_ms: u64,
    pub seq: u8,
}

pub use keyway_agent::testing::now;

impl Harness {
    /// A provisioned lock (setup code [`CODE`]), window closed, no owners.
    pub fn new(seed: u64) -> Self {
        Self::with_config(seed, Config::default())
    }

    pub fn with_config(seed: u64, config: Config) -> Self {
        Self::on_flash(seed, config, Flash::nrf52840())
    }

    /// A provisioned lock on `flash` (which may carry a power-cut plan).
    pub fn on_flash(seed: u64, config: Config, flash: Flash) -> Self {
        let mut agent = Agent::new(flash, REGION, keypair(0xd0), config, 1_000).unwrap();
        let code = SetupCode::new(CODE).unwrap();
        let v = StoredVerifier::derive(&code, &[7; 16], MIN_ITERATIONS);
        agent.provision(&v).unwrap();
        Self {
            agent,
            device: FakeDevice::default(),
            rng: ChaCha20Rng::seed_from_u64(seed),
            lock_ms: 1_000,
            client_ms: 50_000,
            seq: 0,
        }
    }

    /// A lock with `owner` paired (window opened, right code) and a
    /// session open for it.
    pub fn with_owner(seed: u64, owner: &mut Client) -> Self {
        let mut h = Self::in_window(seed);
        h.pair(owner, CODE, "Alice").unwrap();
        h.open_session(owner).unwrap();
        h
    }

    /// A lock no one has paired with, its presence window open (a person
    /// pressed the button).
    pub fn in_window(seed: u64) -> Self {
        let mut h = Self::new(seed);
        h.press(Press::Short);
        h
    }

    /// A lock with Alice (key tag `0x0a`, at [`OWNER`]) paired and in a
    /// session, and Alice.
    pub fn with_alice(seed: u64) -> (Self, Client) {
        let mut alice = Client::new(0x0a, OWNER);
        let h = Self::with_owner(seed, &mut alice);
        (h, alice)
    }

    pub fn advance(&mut self, ms: u64) {
        self.lock_ms += ms;
        self.client_ms += ms;
    }

    pub fn press(&mut self, p: Press) {
        self.agent.button(self.lock_ms, p).unwrap();
    }

    /// Delivers raw bytes from `peer`.
    pub fn send_raw(&mut self, peer: PeerId, frame: &[u8]) -> (Vec<u8>, Event) {
        let mut out = vec![0u8; OUT_LEN];
        let o = self.agent.handle(
            peer,
            now(self.lock_ms),
            &mut self.rng,
            &mut self.device,
            frame,
            &mut out,
        );
        out.truncate(o.len);
        (out, o.event)
    }

    pub fn frame(&mut self, req: &Request<'_>) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut buf = vec![0u8; MAX_FRAME];
        let n = req.frame(&mut buf, Version::V2, self.seq).unwrap();
        buf.truncate(n);
        buf
    }

    /// Sends a plain request from `peer`.
    pub fn send(&mut self, peer: PeerId, req: &Request<'_>) -> Reply {
        let f = self.frame(req);
        let (bytes, event) = self.send_raw(peer, &f);
        assert!(!bytes.is_empty(), "no answer to {req:?}");
        Reply { bytes, event }
    }

    /// The pairing flow of a client: params, Pake1, Pake3.
    pub fn pair(&mut self, c: &mut Client, code: u32, name: &str) -> Result<Reply, Fail> {
        let (cp, pake1) = self.begin_pairing(c.peer, code)?;
        let pake2 = self.pake_start(c.peer, &pake1)?;
        self.finish_pairing(c, cp, &pake2, name)
    }

    /// A client's pairing run with `code` begun from the lock's PBKDF
    /// parameters (asked as `peer`): the run and its `Pake1`, not sent.
    pub fn begin_pairing(
        &mut self,
        peer: PeerId,
        code: u32,
    ) -> Result<(ClientPairing, [u8; PAKE1_LEN]), Fail> {
        let params = self.params(peer)?;
        let code = SetupCode::new(code).unwrap();
        ClientPairing::start(&code, &params, &mut self.rng).map_err(Fail::Channel)
    }

    /// Asks for the lock's PBKDF parameters as `peer`.
    pub fn params(&mut self, peer: PeerId) -> Result<Vec<u8>, Fail> {
        self.send(peer, &Request::PakeParams).msg()
    }

    /// Ends the pairing run `cp` of client `c` after the lock's `Pake2`:
    /// `Pake3` for the client's key and `name`, then the lock's `Pake4`,
    /// which gives the client the lock's key. The `Pake3` answer.
    pub fn finish_pairing(
        &mut self,
        c: &mut Client,
        mut cp: ClientPairing,
        pake2: &[u8],
        name: &str,
    ) -> Result<Reply, Fail> {
        let mut pake3 = [0u8; PAKE3_LEN];
        cp.pake2(pake2, &c.key.verifying_key().to_bytes(), name, &mut pake3)
            .map_err(Fail::Channel)?;
        let r = self.send(
            c.peer,
            &Request::PakeFinish(keyway_group::PakeFinish { msg: &pake3 }),
        );
        let lock = cp.pake4(&r.msg()?).map_err(Fail::Channel)?;
        c.lock_key = Some(lock.device_public_key);
        Ok(r)
    }

    /// The session handshake with `signer` (normally the client's key).
    pub fn handshake_as(
        &mut self,
        c: &Client,
        signer: &dyn keyway_channel::OwnerSigner,
    ) -> Result<ClientSession, Fail> {
        let (hs, msg1) = ClientHandshake::start(&mut self.rng);
        let msg2 = self.session_start(c.peer, &msg1)?;
        self.finish_handshake(c, hs, &msg2, signer)
    }

    /// Sends `Pake1` from `peer`; the answer's `Pake2`.
    pub fn pake_start(&mut self, peer: PeerId, pake1: &[u8]) -> Result<Vec<u8>, Fail> {
        let req = Request::PakeStart(keyway_group::PakeStart { msg: pake1 });
        self.send(peer, &req).msg()
    }

    /// Sends the handshake's `msg1` from `peer`; the answer's `msg2`.
    pub fn session_start(&mut self, peer: PeerId, msg1: &[u8]) -> Result<Vec<u8>, Fail> {
        let req = Request::SessionStart(keyway_group::SessionStart { msg: msg1 });
        self.send(peer, &req).msg()
    }

    /// Ends the handshake `hs` of client `c` after the lock's `msg2`:
    /// `msg3` signed by `signer`, then the lock's `msg4` opened.
    pub fn finish_handshake(
        &mut self,
        c: &Client,
        hs: ClientHandshake,
        msg2: &[u8],
        signer: &dyn keyway_channel::OwnerSigner,
    ) -> Result<ClientSession, Fail> {
        let mut msg3 = [0u8; MSG3_LEN];
        let lock_key = c.lock_key.expect("paired");
        let mut s = hs
            .msg2(msg2, &lock_key, signer, &mut msg3)
            .map_err(Fail::Channel)?;
        let req = Request::SessionFinish(keyway_group::SessionFinish { msg: &msg3 });
        let mut msg4 = self.send(c.peer, &req).msg()?;
        s.open_response(self.client_ms, &mut msg4)
            .map_err(Fail::Channel)?;
        Ok(s)
    }

    pub fn open_session(&mut self, c: &mut Client) -> Result<(), Fail> {
        let key = c.key.clone();
        let s = self.handshake_as(c, &key)?;
        c.session = Some(s);
        Ok(())
    }

    /// Seals `req` in the client's session; returns the record.
    pub fn seal(&mut self, c: &mut Client, req: &Request<'_>) -> Vec<u8> {
        let inner = self.frame(req);
        let s = c.session.as_mut().expect("a session");
        let mut rec = vec![0u8; inner.len() + 64];
        let (_, n) = s.seal_request(self.client_ms, &inner, &mut rec).unwrap();
        rec.truncate(n);
        rec
    }

    /// Delivers a sealed record; returns the outer reply.
    pub fn deliver(&mut self, peer: PeerId, rec: &[u8]) -> Reply {
        self.send(peer, &Request::Sealed(keyway_group::Sealed { msg: rec }))
    }

    /// Opens the outer reply at the client: the inner answer frame.
    pub fn open(&mut self, c: &mut Client, outer: &Reply) -> Result<Reply, Fail> {
        let mut rec = outer.msg()?;
        let s = c.session.as_mut().expect("a session");
        let opened = s
            .open_response(self.client_ms, &mut rec)
            .map_err(Fail::Channel)?;
        Ok(Reply {
            bytes: rec[opened.payload].to_vec(),
            event: outer.event,
        })
    }

    /// A whole sealed request/answer; the inner answer.
    pub fn call(&mut self, c: &mut Client, req: &Request<'_>) -> Result<Reply, Fail> {
        let rec = self.seal(c, req);
        let outer = self.deliver(c.peer, &rec);
        self.open(c, &outer)
    }

    /// `c`'s session drives the bolt to `to` (an unlock or a lock), and
    /// the bolt is there.
    pub fn drive(&mut self, c: &mut Client, to: Bolt) {
        let req = match to {
            Bolt::Unlocked => unlock(),
            _ => lock(),
        };
        self.call(c, &req).unwrap();
        assert_eq!(self.device.hw.bolt, to);
    }
}

/// An owner's unlock (no `auth`: it comes in a session).
pub fn unlock() -> Request<'static> {
    Request::Unlock(keyway_group::Signed::default())
}

/// An owner's lock (no `auth`).
pub fn lock() -> Request<'static> {
    Request::Lock(keyway_group::Signed::default())
}

/// An owner's answer to the pending update (no `auth`).
pub fn consent(accept: bool) -> Request<'static> {
    Request::Consent(keyway_group::Consent { accept, auth: None })
}

/// An owner's removal of the owner `key_id` (no `auth`).
pub fn unpair(key_id: [u8; 8]) -> Request<'static> {
    Request::Unpair(keyway_group::Unpair { key_id, auth: None })
}

/// Every request Keyway speaks, one of each (bodies without `auth`), for
/// sweeps over the authority table: keyway-smp's shared sample.
pub fn every_request() -> Vec<Request<'static>> {
    keyway_smp::samples::requests(None).to_vec()
}

/// An image-upload chunk at `off` (with the total `len` and a fixed SHA
/// on the first), in the keyway group's sealed form when `kw`.
pub fn chunk(off: u64, len: Option<u64>, data: &'static [u8], kw: bool) -> Request<'static> {
    Request::Upload(keyway_smp::img::Upload {
        off,
        data,
        len,
        sha: len.map(|_| &[7u8; 32][..]),
        image: None,
        upgrade: None,
        auth: None,
        kw,
    })
}
