//! The thin shell: the files, the UDP socket, the control socket, the
//! clock, the RNG and the threads around the lock's brain, `keyway-agent`,
//! through [`crate::agent_shell`]: every datagram goes to `Agent::handle`,
//! the button to `Agent::button`, the agent's store to `agent-store.bin`
//! before each answer; the device core ([`Server`]: installer, boot,
//! confirm, audit log, policy, the bolt) serves what the agent authorized.
//! `main.rs` runs it
//! until the process is killed; the demo, the audit's tests and the
//! benchmarks run it in-process with [`start`] and stop it with
//! [`Running::power_off`], which is a power cut: the flash file holds
//! exactly what the flash held after the last operation.
//!
//! The control socket stands in for the lock's hardware (its button, its
//! keypad, the bolt) and carries no authentication, so only the lock's
//! own user may reach it: a Unix socket is bound inside a fresh 0700
//! directory, set to 0600 and only then renamed to its path (there is no
//! moment at which anyone else could connect), and a TCP control socket
//! listens only on a loopback address unless
//! [`Options::control_insecure_any_address`] says otherwise. The state
//! directory is made 0700 at every start ([`StateDir::secure`]).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};

use crate::agent_shell::{self, AgentLock};
use crate::server::Server;
use crate::state::{StateDir, wall_clock_secs};

mod control_socket;
pub use control_socket::{
    MAX_CONTROL_CONNECTIONS, MAX_CONTROL_LINE, bind_private_unix, check_control_addr,
    insecure_control_warning,
};
use control_socket::{accept_loop, button_line};

/// How to run a lock.
#[derive(Debug, Clone)]
pub struct Options {
    /// The state directory (from `keyway-lock provision`).
    pub state: PathBuf,
    /// The UDP address to serve SMP on (port 0: any free port).
    pub bind: SocketAddr,
    /// The control socket's TCP address, if any: a loopback address
    /// unless `control_insecure_any_address`.
    pub control: Option<SocketAddr>,
    /// Lets `control` listen on a non-loopback address, where anyone who
    /// can reach it can unlock the door (`--control-insecure-any-address`).
    pub control_insecure_any_address: bool,
    /// The control socket as a Unix domain socket at this path, if any
    /// (a stale socket file there is replaced).
    pub control_path: Option<PathBuf>,
    /// The lock model (`crate::policy::MODELS`; default `deadbolt-2`).
    pub model: String,
    /// Test flag: the physical-presence window is always open.
    pub presence_always_open: bool,
    /// Wrong PINs in a row before the keypad locks out.
    pub lockout_attempts: u16,
    /// How long the keypad stays locked out, in seconds.
    pub lockout_seconds: u64,
    /// Auto-relock delay after an unlock, in seconds (0: never).
    pub relock_seconds: u64,
    /// Print the lock's log lines on stderr.
    pub verbose: bool,
    /// The lock's behaviour: the real one, or a deliberate flaw.
    pub profile: crate::profile::Profile,
    /// Also serve SMP on a serial line: a pty whose slave this path
    /// links to (`--serial PATH`, [`crate::serial`]).
    pub serial: Option<PathBuf>,
}

/// The lock's brain (the agent) around its device core.
struct Core(Box<AgentLock>);

impl Core {
    fn server(&self) -> &Server {
        self.0.server()
    }
    fn server_mut(&mut self) -> &mut Server {
        self.0.server_mut()
    }
}

impl Options {
    /// The defaults for a lock in `state` serving on `bind`.
    pub fn new(state: impl Into<PathBuf>, bind: SocketAddr) -> Self {
        Options {
            state: state.into(),
            bind,
            control: None,
            control_insecure_any_address: false,
            control_path: None,
            model: crate::policy::MODELS[0].name.to_owned(),
            presence_always_open: false,
            lockout_attempts: 5,
            lockout_seconds: 300,
            relock_seconds: 30,
            verbose: false,
            profile: crate::profile::Profile::Default,
            serial: None,
        }
    }
}

/// The shell's network for the `cloud-verify` profile: a TCP connect to
/// the vendor server within 2 s (the only I/O a profile needs; the server
/// asks through [`crate::profile::VendorServer`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpVendorServer;

impl crate::profile::VendorServer for TcpVendorServer {
    fn reach(&mut self, server: &str) -> std::result::Result<(), String> {
        use std::net::{TcpStream, ToSocketAddrs as _};
        let addr = server
            .to_socket_addrs()
            .map_err(|e| format!("it does not resolve: {e}"))?
            .next()
            .ok_or("no address")?;
        TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The lock's core with its files and no sockets, threads or clock: what
/// [`start`] serves on UDP and the control sockets, and what a test drives
/// in memory with a clock of its own (`keyway-testkit`'s client-lock
/// pair). Every call takes the lock's clock, `now_ms`, in milliseconds
/// since power-on.
pub struct Shell {
    core: Core,
    dir: StateDir,
    start: Instant,
    /// The boot counter as `boot-count` stores it.
    boot_saved: u32,
    verbose: bool,
    /// The test flag `--presence-always-open` (the agent's window is
    /// pressed open again whenever it closed).
    presence_always_open: bool,
    /// The boot's one-line report.
    boot: String,
}

impl Shell {
    fn flush_log(&mut self) {
        for l in self.core.server_mut().take_log() {
            if self.verbose {
                eprintln!("keyway-lock: {l}");
            }
        }
    }

    /// Stores the agent's store (owners, consent, settings) and the PIN
    /// now if the request changed them: the shell calls it before it
    /// answers, so an answer that says an owner was removed (or paired)
    /// is never undone by a power cut right after it (`settle` would store
    /// them only after the answer).
    fn save_now(&mut self) {
        save_pin(self.core.server_mut(), &self.dir);
        self.save_store();
    }

    /// Writes the agent's store flash if the last call changed it.
    fn save_store(&mut self) {
        if let Some(bytes) = self.core.0.take_store_changes()
            && let Err(e) = self.dir.save_agent_store(bytes)
        {
            eprintln!("keyway-lock: saving the agent's store: {e:#}");
        }
    }

    /// After a request, control line or tick: its audit events are
    /// written (stamped with this boot), then a reset it asked for (or
    /// the power-on after a cut) runs, and what that boot logged is
    /// written too.
    fn settle(&mut self, before: (u64, u64), now: u64) {
        self.commit(before);
        let mid = self.core.server().core().flash_work();
        if self.core.server_mut().poll_reset().is_some()
            && let Err(e) = self.core.0.after_boot(now)
        {
            eprintln!("keyway-lock: the agent's boot: {e}");
        }
        self.core.0.after_tick();
        self.save_store();
        self.flush_log();
        self.commit(mid);
    }

    /// Writes the queued audit events, then saves the flash if `before`
    /// (the flash work before the request) changed.
    fn commit(&mut self, before: (u64, u64)) {
        let Shell {
            core,
            dir,
            boot_saved,
            ..
        } = self;
        let server = core.server_mut();
        // A reset or a power cut booted again: store the counter before
        // records carry it.
        if let Some(n) = server.core().boot_count()
            && n != *boot_saved
        {
            if let Err(e) = dir.set_boot_count(n) {
                eprintln!("keyway-lock: saving the boot counter: {e:#}");
                return;
            }
            *boot_saved = n;
        }
        save_pin(server, dir);
        if let Err(e) = server.core_mut().commit_audit(wall_clock_secs()) {
            // A planned power cut that fires during the append is the cut
            // doing its job, not a fault: said only when verbose.
            if self.verbose || server.core().powered() {
                eprintln!("keyway-lock: audit log: {e}");
            }
        }
        if server.core().flash_work() != before
            && let Err(e) = dir.save(server.core())
        {
            eprintln!("keyway-lock: saving the flash: {e:#}");
        }
    }
}

/// A lock running in this process.
#[derive(Debug)]
pub struct Running {
    /// Where it serves SMP.
    pub smp: SocketAddr,
    /// Where its control socket listens, if it has one.
    pub control: Option<SocketAddr>,
    /// Its Unix-domain control socket, if it has one.
    pub control_path: Option<PathBuf>,
    /// The serial port's pty (`/dev/pts/N`), if it has one.
    pub serial: Option<PathBuf>,
    /// The boot's one-line report.
    pub boot: String,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    /// Cuts the power: the threads stop between requests (the flash file
    /// holds what the flash held) and the sockets close.
    pub fn power_off(mut self) {
        self.halt();
    }

    /// Blocks until the lock stops (never, unless a thread fails).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(c) = self.control {
            // Wake the accept loop.
            let _ = std::net::TcpStream::connect_timeout(&c, Duration::from_millis(200));
        }
        if let Some(p) = &self.control_path {
            let _ = std::os::unix::net::UnixStream::connect(p);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Powers the lock in `o.state` on (the bootloader, then the
/// application's self-test and confirm) and serves it on its threads.
pub fn start(o: &Options) -> Result<Running> {
    if let Some(c) = o.control {
        check_control_addr(c, o.control_insecure_any_address)?;
    }
    let shell = Shell::open(o)?;
    let socket = UdpSocket::bind(o.bind).with_context(|| format!("binding UDP {}", o.bind))?;
    // The receive loop wakes up to see a power-off.
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let smp = socket.local_addr()?;
    let boot = shell.boot.clone();
    let shared = Arc::new(Mutex::new(shell));
    serve(o, socket, smp, boot, shared)
}

impl Shell {
    /// Powers the lock in `o.state` on (the bootloader, then the
    /// application's self-test and confirm), without serving it: the
    /// sockets in `o` are not bound.
    pub fn open(o: &Options) -> Result<Shell> {
        let dir = StateDir::new(&o.state);
        dir.secure()?;
        let model = crate::policy::model(&o.model).map_err(|e| anyhow!("--model: {e}"))?;
        let mut lock = dir.load()?;
        lock.profile = o.profile.clone();
        let (signer, kid) = dir.device_signer()?;
        lock.attach_audit(signer, dir.boot_count()?)
            .map_err(|e| anyhow!(e))?;
        // Power on: the bootloader, then the application (self-test, confirm).
        let boot = lock.power_on().map_err(|e| anyhow!("power on: {e}"))?;
        let boot_saved = lock.boot_count().unwrap_or(0);
        let boot = format!(
            "boot {boot_saved}: {:?} ({:?}); {}; device key {}",
            boot.decision.boot,
            boot.decision.reason,
            boot.app,
            keyway_vendor::keys::hex(&kid)
        );
        dir.set_boot_count(boot_saved)?;
        lock.commit_audit(wall_clock_secs())
            .map_err(|e| anyhow!(e))?;
        dir.save(&lock)?;
        let mut server = Server::new(lock);
        server.set_vendor_server(Box::new(TcpVendorServer));
        server.set_presence_always_open(o.presence_always_open);
        server.set_lock_config(crate::lock::Config {
            pin: dir.pin()?,
            max_attempts: o.lockout_attempts.max(1),
            lockout_ms: o.lockout_seconds.saturating_mul(1000),
            relock_ms: (o.relock_seconds > 0).then(|| o.relock_seconds.saturating_mul(1000)),
            ..crate::lock::Config::default()
        });
        server.set_model(model);
        let lock = AgentLock::new(
            server,
            dir.agent_store()?,
            dir.device_keypair()?,
            dir.setup_verifier()?.as_ref(),
            0,
        )
        .map_err(|e| anyhow!(e))?;
        let mut lock = Box::new(lock);
        // The verifier it stored at its first start, before any answer.
        if let Some(bytes) = lock.take_store_changes() {
            dir.save_agent_store(bytes)?;
        }
        Ok(Shell {
            core: Core(lock),
            dir,
            start: Instant::now(),
            boot_saved,
            verbose: o.verbose,
            presence_always_open: o.presence_always_open,
            boot,
        })
    }
}

/// Serves `shared` on `socket` and the control sockets in `o`.
fn serve(
    o: &Options,
    socket: UdpSocket,
    smp: SocketAddr,
    boot: String,
    shared: Arc<Mutex<Shell>>,
) -> Result<Running> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut control = None;
    if let Some(c) = o.control {
        let listener = TcpListener::bind(c).with_context(|| format!("binding control {c}"))?;
        control = Some(listener.local_addr()?);
        threads.push(accept_loop(
            move || listener.accept().map(|(s, _)| s),
            &shared,
            &stop,
        ));
    }
    if let Some(p) = &o.control_path {
        let listener = bind_private_unix(p)?;
        threads.push(accept_loop(
            move || listener.accept().map(|(s, _)| s),
            &shared,
            &stop,
        ));
    }
    {
        // The mechanism's timers (auto-relock).
        let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                let now = s.now_ms();
                s.tick(now);
            }
        }));
    }
    {
        let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || {
            smp_loop(&socket, &shared, &stop);
        }));
    }
    let serial = crate::serial::spawn(o.serial.as_deref(), &stop, o.verbose, &mut threads, {
        move |peer, frame, send| serve_frame(&shared, peer, frame, send)
    })?;
    Ok(Running {
        smp,
        control,
        control_path: o.control_path.clone(),
        serial,
        boot,
        stop,
        threads,
    })
}

fn smp_loop(socket: &UdpSocket, shared: &Arc<Mutex<Shell>>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if crate::nothing_yet(&e) => continue,
            Err(e) => {
                eprintln!("keyway-lock: receive: {e}");
                continue;
            }
        };
        let frame = buf.get(..n).unwrap_or(&[]);
        serve_frame(shared, agent_shell::peer_id(peer), frame, &mut |response| {
            if let Err(e) = socket.send_to(response, peer) {
                eprintln!("keyway-lock: send to {peer}: {e}");
            }
        });
    }
}

impl Shell {
    /// The lock's clock: milliseconds since [`Shell::open`].
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The boot's one-line report.
    pub fn boot(&self) -> &str {
        &self.boot
    }

    /// One SMP datagram from `peer` at `now_ms`: the answer to send back,
    /// `None` when there is none (no answer, or the power was cut
    /// mid-request). The flash, the agent's store and the audit log are
    /// stored before the answer is returned.
    pub fn smp(&mut self, peer: SocketAddr, frame: &[u8], now_ms: u64) -> Option<Vec<u8>> {
        self.smp_from(agent_shell::peer_id(peer), frame, now_ms)
    }

    /// [`Shell::smp`] for a peer already named by its id (the serial
    /// line's peer has no socket address).
    pub fn smp_from(
        &mut self,
        peer: keyway_agent::limits::PeerId,
        frame: &[u8],
        now_ms: u64,
    ) -> Option<Vec<u8>> {
        let s = self;
        let now = now_ms;
        let before = s.core.server().core().flash_work();
        s.core.server_mut().set_rtc(wall_clock_secs());
        let always_open = s.presence_always_open;
        let response = {
            let a = &mut s.core.0;
            // The test flag: a person keeps pressing the button.
            if always_open && !a.agent().window_open(now) {
                let _ = a.button(now, keyway_agent::agent::Press::Short);
            }
            let time = keyway_audit::Time {
                rtc: wall_clock_secs(),
                boot: a.server().core().boot_count().unwrap_or(0),
            };
            a.handle(peer, keyway_agent::agent::Now { ms: now, time }, frame)
                .answer
        };
        // A lock that lost power mid-request does not answer; one that
        // answers has stored a change of owners (and the agent's store)
        // first.
        let answer = if s.core.server().lost_power() {
            None
        } else {
            s.save_now();
            Some(response).filter(|r| !r.is_empty())
        };
        s.settle(before, now);
        answer
    }

    /// The mechanism's timers (auto-relock) at `now_ms`; a postponed
    /// install that may go ahead resets the lock.
    pub fn tick(&mut self, now_ms: u64) {
        let before = self.core.server().core().flash_work();
        self.core.server_mut().tick(now_ms);
        self.settle(before, now_ms);
    }

    /// One control line (the lock's buttons, keypad and sensors) at
    /// `now_ms`, and its answer.
    pub fn control(&mut self, line: &str, now_ms: u64) -> serde_json::Value {
        let s = self;
        let before = s.core.server().core().flash_work();
        let now = now_ms;
        let a = button_line(&mut s.core.0, line, now).unwrap_or_else(|| {
            crate::control::handle_line_in(
                s.core.server_mut(),
                line,
                now,
                wall_clock_secs(),
                &s.dir,
            )
        });
        s.settle(before, now);
        a
    }

    /// The device core, to look at.
    pub fn server(&self) -> &Server {
        self.core.server()
    }
}

/// One SMP request from `peer` in (a datagram, or a frame off the serial
/// line), its answer out through `send` (unless the power was cut
/// mid-request), then the reset it asked for.
fn serve_frame(
    shared: &Mutex<Shell>,
    peer: keyway_agent::limits::PeerId,
    frame: &[u8],
    send: &mut dyn FnMut(&[u8]),
) {
    let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let now = s.now_ms();
    if let Some(response) = s.smp_from(peer, frame, now) {
        send(&response);
    }
}

/// Writes the PIN if the server changed it since the last call (a
/// factory reset restores the default). The owners, consent and settings
/// live in the agent's store (`agent-store.bin`).
fn save_pin(server: &mut Server, dir: &StateDir) {
    if server.take_pin_changed() {
        let pin = server.mechanism().config().pin.clone();
        if let Err(e) = dir.set_pin(&pin) {
            eprintln!("keyway-lock: saving the PIN: {e:#}");
        }
    }
}
