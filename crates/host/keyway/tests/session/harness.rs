//! The real lock agent (`keyway-agent`) in memory behind the owner's
//! client, after quinn-proto's `tests/util.rs` `Pair`: one agent on a
//! simulated nRF52840 flash (`keyway-sim`), a fake device (bolt, door,
//! firmware summary, pending update), a seeded RNG, and one fake clock
//! read by the lock and (49 s ahead) by the client. The client reaches the
//! agent only through SMP frames on a [`Link`], a `Transport` whose
//! optional tap plays the man in the middle: it sees every request frame
//! and decides what (if anything) goes to the lock and what comes back.

#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keyway::device::{Client, Stats, Transport, TransportError};
use keyway_agent::agent::{Agent, Authorized, Config, Event, OUT_LEN, Press, ServeError};
use keyway_agent::limits::PeerId;
use keyway_agent::store;
use keyway_agent::testing::{self, Hardware, TestLock, TestShell, now};
use keyway_channel::SigningKey as KeyPair;
use keyway_channel::pairing::MIN_ITERATIONS;
use keyway_channel::{SetupCode, StoredVerifier};
use keyway_sim::SimFlash;
use keyway_smp::keyway_group;
use keyway_smp::{Header, Request, Response, img};

pub type Flash = SimFlash<4, 4096>;
pub const REGION: store::Config = store::Config::new(0xF_8000, 2);
pub const CODE: &str = "2023-1107";
pub const WRONG: &str = "3141-5926";
pub const SLOTS: usize = 4;
/// The client's clock runs this far ahead of the lock's (they never agree).
pub const CLIENT_AHEAD_MS: u64 = 49_000;

/// The lock's installer and audit log in memory, behind a test lock's
/// hardware (`device.hw`: bolt, door, pending update).
#[derive(Debug)]
pub struct Shell {
    /// The upload's bytes as received, at their offsets.
    pub uploaded: Vec<u8>,
    /// The audit log's export the lock serves.
    pub log: Vec<u8>,
}

/// The simulated lock's hardware and shell.
pub type FakeDevice = TestLock<Shell>;

impl Default for Shell {
    fn default() -> Self {
        Self {
            uploaded: Vec::new(),
            log: (0..3000u32).map(|i| (i * 7) as u8).collect(),
        }
    }
}

impl TestShell for Shell {
    fn serve(
        &mut self,
        hw: &mut Hardware,
        call: Authorized<'_>,
    ) -> Result<Option<Response<'_>>, ServeError> {
        let rsp = match call.request {
            Request::ImageState | Request::ImageStateWrite(_) => {
                Response::ImageState(img::StateRsp {
                    images: keyway_smp::seq::Seq::Items(&[]),
                })
            }
            Request::Notes(_) => testing::release_notes(&mut hw.pending),
            Request::Upload(u) => {
                let off = usize::try_from(u.off).unwrap();
                if off == 0 {
                    self.uploaded.clear();
                }
                if off != self.uploaded.len() {
                    return Err(ServeError::rc(keyway_smp::MgmtErr::Inval));
                }
                self.uploaded.extend_from_slice(u.data);
                Response::Upload(img::UploadRsp {
                    off: self.uploaded.len() as u64,
                    matched: None,
                })
            }
            Request::Log(l) => {
                let off = usize::try_from(l.off).unwrap().min(self.log.len());
                let end = (off + 1000).min(self.log.len());
                Response::Log(keyway_group::LogRsp {
                    off: off as u64,
                    len: self.log.len() as u64,
                    data: &self.log[off..end],
                })
            }
            _ => {
                return Err(ServeError::rc(keyway_smp::MgmtErr::NotSup));
            }
        };
        Ok(Some(rsp))
    }
}

pub fn device_keypair(tag: u8) -> KeyPair {
    KeyPair::from_bytes(&[tag; 32])
}

/// An agent on fresh flash with device key `tag`, booted at `ms` and
/// provisioned with the setup code [`CODE`].
fn provisioned(tag: u8, ms: u64) -> Agent<Flash, SLOTS> {
    let mut agent = Agent::new(
        Flash::nrf52840(),
        REGION,
        device_keypair(tag),
        Config::default(),
        ms,
    )
    .unwrap();
    let code = SetupCode::parse(CODE).unwrap();
    agent
        .provision(&StoredVerifier::derive(&code, &[7; 16], MIN_ITERATIONS))
        .unwrap();
    agent
}

/// The simulated lock: the agent, its device, its clock.
pub struct Lock {
    pub agent: Agent<Flash, SLOTS>,
    pub device: FakeDevice,
    pub rng: rand_chacha::ChaCha20Rng,
    /// The lock's monotonic clock (ms); the client reads it too.
    pub clock: Arc<AtomicU64>,
    pub device_tag: u8,
    /// Every event the agent returned, in order.
    pub events: Vec<Event>,
}

pub type Shared = Rc<RefCell<Lock>>;

impl Lock {
    /// A provisioned lock (setup code [`CODE`]) with device key `tag`.
    pub fn new(device_tag: u8, seed: u64) -> Shared {
        use rand_chacha::rand_core::SeedableRng as _;
        Rc::new(RefCell::new(Lock {
            agent: provisioned(device_tag, 1_000),
            device: FakeDevice::default(),
            rng: rand_chacha::ChaCha20Rng::seed_from_u64(seed),
            clock: Arc::new(AtomicU64::new(1_000)),
            device_tag,
            events: Vec::new(),
        }))
    }

    pub fn ms(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    pub fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn press(&mut self) {
        let ms = self.ms();
        self.agent.button(ms, Press::Short).unwrap();
    }

    pub fn long_press(&mut self) {
        let ms = self.ms();
        self.agent.button(ms, Press::Long).unwrap();
    }

    /// Power cut and boot: the same flash, a new agent (no sessions).
    pub fn restart(&mut self) {
        let ms = self.ms();
        let flash = std::mem::replace(
            &mut self.agent,
            Agent::new(
                Flash::nrf52840(),
                REGION,
                device_keypair(1),
                Config::default(),
                ms,
            )
            .unwrap(),
        )
        .into_flash();
        self.agent = Agent::new(
            flash,
            REGION,
            device_keypair(self.device_tag),
            Config::default(),
            ms,
        )
        .unwrap();
    }

    /// One frame from `peer` to the agent; its answer (empty: none).
    pub fn deliver(&mut self, peer: PeerId, frame: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; OUT_LEN];
        let ms = self.ms();
        let o = self.agent.handle(
            peer,
            now(ms),
            &mut self.rng,
            &mut self.device,
            frame,
            &mut out,
        );
        out.truncate(o.len);
        if o.event != Event::None {
            self.events.push(o.event);
        }
        out
    }
}

/// The man in the middle: gets the lock, the sender and the request
/// frame; returns the answer the client receives (`None`: nothing).
pub type Tap = Box<dyn FnMut(&mut Lock, PeerId, &[u8]) -> Option<Vec<u8>>>;

/// A client's link to the lock.
pub struct Link {
    pub lock: Shared,
    pub peer: PeerId,
    pub tap: Option<Tap>,
    /// Sends of the same frame before giving up (as UdpTransport's tries).
    pub tries: u32,
    stats: Stats,
}

impl Link {
    pub fn new(lock: &Shared, peer: PeerId) -> Self {
        Link {
            lock: lock.clone(),
            peer,
            tap: None,
            tries: 1,
            stats: Stats::default(),
        }
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("peer", &self.peer).finish()
    }
}

impl Transport for Link {
    fn exchange(&mut self, frame: &[u8], seq: u8) -> Result<Vec<u8>, TransportError> {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += frame.len() as u64;
        let mut lock = self.lock.borrow_mut();
        // As UdpTransport: the same frame again after a timeout.
        for _ in 0..self.tries {
            let answer = match &mut self.tap {
                Some(tap) => tap(&mut lock, self.peer, frame),
                None => Some(lock.deliver(self.peer, frame)),
            };
            let answer = answer.filter(|a| !a.is_empty());
            if let Some(a) = answer
                && Header::decode(&a).is_ok_and(|h| h.seq == seq)
            {
                self.stats.bytes_received += a.len() as u64;
                return Ok(a);
            }
            self.stats.resends += 1;
        }
        Err(TransportError::NoAnswer {
            peer: format!("{:?}", self.peer),
            tries: self.tries,
            timeout_ms: 500,
        })
    }
    fn mtu(&self) -> usize {
        keyway::device::UDP_MTU
    }
    fn stats(&self) -> Stats {
        self.stats
    }
}

/// The owner key `tag` as `keyway keygen` makes it (Ed25519).
pub fn owner_key(tag: u8) -> keyway_vendor::keys::SigningKey {
    keyway_vendor::keys::SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[tag; 32]))
}

pub fn owner_kid(tag: u8) -> [u8; 8] {
    keyway_channel::key_id(
        &ed25519_dalek::SigningKey::from_bytes(&[tag; 32])
            .verifying_key()
            .to_bytes(),
    )
}

/// A client of `lock` from `peer` with owner key `tag`, the channel's RNG
/// seeded and its clock the lock's plus [`CLIENT_AHEAD_MS`].
pub fn client(lock: &Shared, peer: PeerId, tag: u8) -> Client<Link> {
    let clock = lock.borrow().clock.clone();
    Client::new(Link::new(lock, peer))
        .with_owner(owner_key(tag))
        .unwrap()
        .with_channel_env(
            [tag; 32],
            Box::new(move || clock.load(Ordering::SeqCst) + CLIENT_AHEAD_MS),
        )
}

/// The window opened by a press on `lock`; the client of the owner `tag`
/// (not paired yet).
pub fn in_window(lock: &Shared, peer: PeerId, tag: u8) -> Client<Link> {
    lock.borrow_mut().press();
    client(lock, peer, tag)
}

/// `lock` with the owner `tag` paired by the setup code (window opened by
/// a press); the client, in session mode.
pub fn paired(lock: &Shared, peer: PeerId, tag: u8) -> Client<Link> {
    let mut c = in_window(lock, peer, tag);
    let r = c
        .pair_with_code(&SetupCode::parse(CODE).unwrap(), "Alice")
        .unwrap();
    c.with_paired_lock(r.device_key).unwrap()
}

/// Whether `frame` is a sealed record (Keyway group, id 15).
pub fn is_sealed(frame: &[u8]) -> bool {
    Header::decode(frame)
        .is_ok_and(|h| h.group == keyway_smp::group::KEYWAY && h.id == keyway_group::cmd::SEALED)
}

/// Asserts that `frame` is sealed or a session handshake (Keyway ids 13
/// and 14): nothing else goes in the clear.
pub fn assert_sealed_or_handshake(frame: &[u8]) {
    let h = Header::decode(frame).unwrap();
    assert!(
        is_sealed(frame) || matches!(h.id, 13 | 14),
        "sent in the clear: group {} id {}",
        h.group,
        h.id
    );
}

/// The agent behind a real UDP socket on loopback, as a lock shell would
/// run it (the monotonic clock, a hashed peer address), until `stop`.
pub struct UdpLock {
    pub addr: std::net::SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<FakeDevice>>,
}

impl UdpLock {
    /// Starts a provisioned lock (setup code [`CODE`]) with its presence
    /// window open.
    pub fn start(device_tag: u8) -> UdpLock {
        use rand_chacha::rand_core::SeedableRng as _;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let halt = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let ms = || 1_000 + start.elapsed().as_millis() as u64;
            let mut agent = provisioned(device_tag, ms());
            agent.button(ms(), Press::Short).unwrap();
            let mut device = FakeDevice::default();
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(u64::from(device_tag));
            let mut buf = vec![0u8; 4096];
            let mut out = vec![0u8; OUT_LEN];
            while !halt.load(Ordering::SeqCst) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let peer = PeerId(u64::from(from.port()));
                let o = agent.handle(peer, now(ms()), &mut rng, &mut device, &buf[..n], &mut out);
                if o.len > 0 {
                    let _ = socket.send_to(&out[..o.len], from);
                }
            }
            device
        });
        UdpLock {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it; its device (the bolt) as it ended.
    pub fn stop(mut self) -> FakeDevice {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}
