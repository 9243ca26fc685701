//! An in-memory client-lock pair with a fake clock, after quinn-proto's
//! `tests/util.rs` `Pair`: the owner's client (`keyway::device::Client`)
//! wired to a simulated lock's core ([`keyway_lock::shell::Shell`]) with
//! no socket and no thread, and time that moves only when the test moves
//! it.
//!
//! The lock is the same core `keyway-lock` serves on UDP
//! ([`keyway_lock::shell::start`]): its state directory, the agent, the
//! device core on its file-backed flash, the audit log; only the
//! socket, the threads and the wall clock are gone. A datagram becomes a
//! call ([`Shell::smp`]), the control socket's line a call
//! ([`Shell::control`]), and the lock's clock is the pair's
//! [`Clock`]: [`Pair::advance`] moves it and runs the lock's timers, so
//! a test of a five-minute lockout or a pairing back-off takes no time.
//!
//! [`MemoryTransport`] is a [`Transport`] like `UdpTransport`: stop and
//! wait, an exchange that gets no answer is sent again with the same
//! sequence number after the timeout (the clock moves by the timeout:
//! nothing waits), and after the last try it fails with
//! [`TransportError::NoAnswer`], as over UDP. A tamper hook rewrites
//! answers on their way (an attacker on the link).
//!
//! [`Lab`] is the provisioned lock both kinds of test start from: a
//! temporary state directory with a vendor key, a factory image and a
//! PIN, started in memory ([`Lab::pair`]) or on loopback UDP
//! ([`Lab::start`]) for the tests whose subject is the socket.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;

use keyway::device::{Client, Stats, Transport, TransportError};
use keyway_lock::shell::{Options, Running, Shell, start};
use keyway_lock::state::StateDir;
use keyway_smp::Header;

use crate::release::{CLASS, VENDOR, Vendor, payload};

/// The PIN a [`Lab`] lock is provisioned with.
pub const PIN: &str = "4711";
/// The size of a [`Lab`] lock's factory image (release 1.0.0).
pub const FACTORY_LEN: usize = 6000;

/// A fake clock in milliseconds, shared by a pair's transports and its
/// lock; it moves only by [`Clock::advance`] (and a transport's timeouts).
#[derive(Clone, Debug, Default)]
pub struct Clock(Rc<Cell<u64>>);

impl Clock {
    /// Now, in milliseconds since the lock powered on.
    pub fn now(&self) -> u64 {
        self.0.get()
    }

    /// Moves the clock on by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get().saturating_add(ms));
    }
}

/// A provisioned lock in a temporary directory and its vendor key.
pub struct Lab {
    /// The temporary directory (the lock's state is `lock/` in it).
    pub tmp: tempfile::TempDir,
    /// The vendor whose key the lock trusts.
    pub vendor: Vendor,
}

impl fmt::Debug for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_some(f, "Lab", &[("tmp", &self.tmp.path())])
    }
}

impl Lab {
    /// A lock provisioned with a fresh vendor key, the factory image
    /// 1.0.0 of [`FACTORY_LEN`] bytes of `payload(FACTORY_LEN,
    /// factory_sequence)` at `factory_sequence`, and the PIN [`PIN`].
    pub fn new(factory_sequence: u64) -> Lab {
        let vendor = Vendor::new();
        let image = vendor.signed(
            "1.0.0",
            factory_sequence,
            &payload(FACTORY_LEN, factory_sequence),
            None,
        );
        Lab::with_factory(vendor, &image).0
    }

    /// A lock provisioned for `vendor`'s key in a fresh temporary
    /// directory, with the envelope `factory` as its factory image and the
    /// PIN [`PIN`]; the lab and provisioning's summary.
    pub fn with_factory(vendor: Vendor, factory: &[u8]) -> (Lab, String) {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let lab = Lab { tmp, vendor };
        let vendor_pub = lab.write("vendor.pub", lab.vendor.public_pem().as_bytes());
        let factory = lab.write("factory.suit", factory);
        let dir = lab.state_dir();
        std::fs::create_dir_all(lab.state()).expect("the state directory");
        dir.set_pin(PIN).expect("the PIN");
        let summary = dir
            .provision(&[vendor_pub], 1, VENDOR, CLASS, Some(&factory), false)
            .expect("provisioning");
        (lab, summary)
    }

    /// The lock's state directory.
    pub fn state(&self) -> PathBuf {
        self.tmp.path().join("lock")
    }

    /// The lock's state directory, to read or provision.
    pub fn state_dir(&self) -> StateDir {
        StateDir::new(self.state())
    }

    /// The lock's options (bound to loopback, port 0); with `presence`,
    /// its physical-presence window is always open.
    pub fn options(&self, presence: bool) -> Options {
        let mut o = Options::new(self.state(), "127.0.0.1:0".parse().expect("an address"));
        o.presence_always_open = presence;
        o
    }

    /// Writes `bytes` to `name` in the temporary directory.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.tmp.path().join(name);
        std::fs::write(&p, bytes).expect("a file in the lab");
        p
    }

    /// Powers the lock on in memory.
    pub fn pair(&self, presence: bool) -> Pair {
        Pair::open(&self.options(presence))
    }

    /// Powers the lock on and serves it on loopback UDP (and a TCP
    /// control socket), on threads: for tests whose subject is the socket
    /// or the real command line.
    pub fn start(&self, presence: bool) -> Running {
        let mut o = self.options(presence);
        o.control = Some("127.0.0.1:0".parse().expect("an address"));
        start(&o).expect("the lock starts")
    }
}

/// The client's address as the lock sees it (the agent keys its peers by
/// address).
pub const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50_000);

/// A lock's core in memory and the clock it runs on.
#[derive(Clone)]
pub struct Pair {
    lock: Rc<RefCell<Shell>>,
    clock: Clock,
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_some(f, "Pair", &[("now", &self.clock.now())])
    }
}

impl Pair {
    /// Powers the lock in `o.state` on in memory (`o`'s sockets are not
    /// bound); the clock starts at 0.
    pub fn open(o: &Options) -> Pair {
        Pair {
            lock: Rc::new(RefCell::new(Shell::open(o).expect("the lock powers on"))),
            clock: Clock::default(),
        }
    }

    /// The lock's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now on the lock's clock, in milliseconds.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Moves the clock on by `ms` and runs the lock's timers (auto-relock,
    /// a postponed install), as its timer thread would.
    pub fn advance(&self, ms: u64) {
        self.clock.advance(ms);
        let now = self.clock.now();
        self.lock.borrow_mut().tick(now);
    }

    /// One control line (the lock's buttons, keypad, sensors) and its
    /// answer, as the control socket would carry them.
    pub fn control(&self, line: &str) -> String {
        let now = self.clock.now();
        self.lock.borrow_mut().control(line, now).to_string()
    }

    /// One datagram from `peer` and the lock's answer, if any.
    pub fn smp_from(&self, peer: SocketAddr, frame: &[u8]) -> Option<Vec<u8>> {
        let now = self.clock.now();
        self.lock.borrow_mut().smp(peer, frame, now)
    }

    /// One datagram from [`CLIENT`] and the lock's answer, if any.
    pub fn smp(&self, frame: &[u8]) -> Option<Vec<u8>> {
        self.smp_from(CLIENT, frame)
    }

    /// Runs `f` on the lock's core.
    pub fn with_lock<R>(&self, f: impl FnOnce(&mut Shell) -> R) -> R {
        f(&mut self.lock.borrow_mut())
    }

    /// A transport from [`CLIENT`] to this lock (UdpTransport's defaults:
    /// 500 ms timeout, 5 tries, a 1472-byte MTU).
    pub fn transport(&self) -> MemoryTransport {
        self.transport_from(CLIENT)
    }

    /// A transport from `peer` (another client, as the lock sees it).
    pub fn transport_from(&self, peer: SocketAddr) -> MemoryTransport {
        MemoryTransport {
            pair: self.clone(),
            peer,
            timeout_ms: 500,
            tries: 5,
            mtu: keyway::device::UDP_MTU,
            stats: Stats::default(),
            tamper: None,
            before: None,
        }
    }

    /// The owner's client on [`Pair::transport`].
    pub fn client(&self) -> Client<MemoryTransport> {
        Client::new(self.transport())
    }
}

/// Rewrites an answer on its way to the client.
pub type Tamper = Box<dyn FnMut(&mut Vec<u8>)>;

/// SMP to a [`Pair`]'s lock in memory: stop and wait, resends on the
/// fake clock.
pub struct MemoryTransport {
    pair: Pair,
    peer: SocketAddr,
    timeout_ms: u64,
    tries: u32,
    mtu: usize,
    stats: Stats,
    tamper: Option<Tamper>,
    before: Option<Box<dyn FnMut()>>,
}

impl fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: [(&str, &dyn fmt::Debug); 2] = [("peer", &self.peer), ("stats", &self.stats)];
        debug_some(f, "MemoryTransport", &fields)
    }
}

/// `name { field: value, .. }` with only `fields`: the Debug of a type
/// whose other fields hold a key, a closure or the lock itself.
fn debug_some(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    fields: &[(&str, &dyn fmt::Debug)],
) -> fmt::Result {
    let mut d = f.debug_struct(name);
    for (field, value) in fields {
        d.field(field, value);
    }
    d.finish_non_exhaustive()
}

impl MemoryTransport {
    /// Waits `timeout` ms (on the fake clock) for each answer and sends at
    /// most `tries` times (at least once).
    pub fn with_retry(mut self, timeout_ms: u64, tries: u32) -> Self {
        self.timeout_ms = timeout_ms;
        self.tries = tries.max(1);
        self
    }

    /// Frames of at most `mtu` bytes.
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }

    /// Every answer goes through `tamper` before the client reads it.
    pub fn with_tamper(mut self, tamper: impl FnMut(&mut Vec<u8>) + 'static) -> Self {
        self.tamper = Some(Box::new(tamper));
        self
    }

    /// `before` runs before each frame is sent: another client's
    /// requests interleaved with this one's (two sessions at once, with no
    /// thread).
    pub fn with_before(mut self, before: impl FnMut() + 'static) -> Self {
        self.before = Some(Box::new(before));
        self
    }

    /// The pair this transport reaches.
    pub fn pair(&self) -> &Pair {
        &self.pair
    }
}

impl Transport for MemoryTransport {
    fn exchange(&mut self, frame: &[u8], seq: u8) -> Result<Vec<u8>, TransportError> {
        for attempt in 0..self.tries {
            if let Some(b) = self.before.as_mut() {
                b();
            }
            if attempt > 0 {
                self.stats.resends += 1;
            }
            self.stats.frames_sent += 1;
            self.stats.packets_sent += 1;
            self.stats.bytes_sent += frame.len() as u64;
            let answer = self.pair.smp_from(self.peer, frame);
            if let Some(mut answer) = answer {
                if let Some(t) = self.tamper.as_mut() {
                    t(&mut answer);
                }
                match Header::decode(&answer) {
                    Ok(h) if h.seq == seq => {
                        self.stats.bytes_received += answer.len() as u64;
                        return Ok(answer);
                    }
                    _ => self.stats.ignored += 1,
                }
            }
            // Nothing usable came back: the timeout passes.
            self.pair.clock.advance(self.timeout_ms);
        }
        Err(TransportError::NoAnswer {
            peer: self.peer.to_string(),
            tries: self.tries,
            timeout_ms: self.timeout_ms,
        })
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}
