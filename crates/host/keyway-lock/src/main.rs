//! `keyway-lock`: the thin shell. Files, the UDP socket, the control
//! socket and the clock; everything the lock decides is in the library.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use clap::{Args, Parser, Subcommand};
use keyway_lock::server::Server;
use keyway_lock::state::{StateDir, wall_clock_secs};

/// A simulated Keyway smart lock, managed over SMP (MCUmgr) on UDP.
#[derive(Debug, Parser)]
#[command(name = "keyway-lock", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a lock: its flash file, trust anchors and identity.
    Provision(ProvisionArgs),
}

#[derive(Debug, Args)]
struct ProvisionArgs {
    /// The state directory to create.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// A vendor root public key, SPKI PEM (repeatable): the lock's immutable trust anchors.
    #[arg(long = "vendor-key", value_name = "V.pub", required = true)]
    vendor_keys: Vec<PathBuf>,
    /// Root signatures required.
    #[arg(long, value_name = "K", default_value_t = 1)]
    threshold: u8,
    /// The vendor's domain.
    #[arg(long, value_name = "DOMAIN")]
    vendor_domain: String,
    /// The device class.
    #[arg(long, value_name = "NAME")]
    class: String,
    /// A signed release to program at the factory (slot 0, confirmed).
    #[arg(long, value_name = "FW.suit")]
    factory: Option<PathBuf>,
    /// Overwrite an existing lock in DIR (a new device key too).
    #[arg(long)]
    force: bool,
    /// The keypad PIN (1 to 12 digits).
    #[arg(long, value_name = "DIGITS", default_value = keyway_lock::lock::DEFAULT_PIN)]
    pin: String,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The lock's state directory (from `keyway-lock provision`).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// The UDP address to serve SMP on (smpmgr always uses port 1337).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1337")]
    bind: SocketAddr,
    /// The control socket's TCP address (line-delimited JSON).
    #[arg(long, value_name = "ADDR")]
    control: Option<SocketAddr>,
    /// Test flag: the physical-presence window is always open.
    #[arg(long)]
    presence_always_open: bool,
    /// Wrong PINs in a row before the keypad locks out.
    #[arg(long, value_name = "N", default_value_t = 5)]
    lockout_attempts: u16,
    /// How long the keypad stays locked out.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    lockout_seconds: u64,
    /// Auto-relock delay after an unlock (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    relock_seconds: u64,
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.command {
        Some(Command::Provision(a)) => provision(&a),
        None => run(&cli.run),
    };
    if let Err(e) = r {
        eprintln!("keyway-lock: {e:#}");
        std::process::exit(1);
    }
}

fn provision(a: &ProvisionArgs) -> Result<()> {
    let dir = StateDir::new(&a.state);
    if a.state.join("flash.bin").exists() && !a.force {
        anyhow::bail!(
            "{} already holds a lock (flash.bin); pass --force to provision it again",
            a.state.display()
        );
    }
    std::fs::create_dir_all(&a.state).with_context(|| format!("creating {}", a.state.display()))?;
    dir.set_pin(&a.pin).context("--pin")?;
    let summary = dir.provision(
        &a.vendor_keys,
        a.threshold,
        &a.vendor_domain,
        &a.class,
        a.factory.as_deref(),
        a.force,
    )?;
    println!("provisioned {}: {summary}", a.state.display());
    Ok(())
}

struct Shared {
    server: Server,
    dir: StateDir,
    start: Instant,
    /// The boot counter as `boot-count` stores it.
    boot_saved: u32,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn flush_log(&mut self) {
        for l in self.server.take_log() {
            eprintln!("keyway-lock: {l}");
        }
    }

    /// Writes the queued audit events, then saves the flash if `before`
    /// (the flash work before the request) changed.
    fn commit(&mut self, before: (u64, u64)) {
        let Shared {
            server,
            dir,
            boot_saved,
            ..
        } = self;
        // A reset or a power cut booted again: store the counter before
        // records carry it.
        if let Some(n) = server.lock().boot_count()
            && n != *boot_saved
        {
            if let Err(e) = dir.set_boot_count(n) {
                eprintln!("keyway-lock: saving the boot counter: {e:#}");
                return;
            }
            *boot_saved = n;
        }
        if let Err(e) = server.lock_mut().commit_audit(wall_clock_secs()) {
            eprintln!("keyway-lock: audit log: {e}");
        }
        if server.lock().flash_work() != before
            && let Err(e) = dir.save(server.lock())
        {
            eprintln!("keyway-lock: saving the flash: {e:#}");
        }
    }
}

fn run(a: &RunArgs) -> Result<()> {
    let state = a
        .state
        .clone()
        .ok_or_else(|| anyhow!("--state DIR is required (or use `keyway-lock provision`)"))?;
    let dir = StateDir::new(&state);
    let mut lock = dir.load()?;
    let (signer, kid) = dir.device_signer()?;
    lock.attach_audit(signer, dir.boot_count()?)
        .map_err(|e| anyhow!(e))?;
    // Power on: the bootloader, then the application (self-test, confirm).
    let boot = lock.power_on().map_err(|e| anyhow!("power on: {e}"))?;
    eprintln!(
        "keyway-lock: boot {:?} ({:?}); {}",
        boot.decision.boot, boot.decision.reason, boot.app
    );
    let boot_saved = lock.boot_count().unwrap_or(0);
    eprintln!(
        "keyway-lock: boot {boot_saved}, device key {}",
        keyway::keys::hex(&kid)
    );
    dir.set_boot_count(boot_saved)?;
    lock.commit_audit(wall_clock_secs())
        .map_err(|e| anyhow!(e))?;
    dir.save(&lock)?;
    let mut server = Server::new(lock);
    server.set_presence_always_open(a.presence_always_open);
    server.set_lock_config(keyway_lock::lock::Config {
        pin: dir.pin()?,
        max_attempts: a.lockout_attempts.max(1),
        lockout_ms: a.lockout_seconds.saturating_mul(1000),
        relock_ms: (a.relock_seconds > 0).then(|| a.relock_seconds.saturating_mul(1000)),
        ..keyway_lock::lock::Config::default()
    });
    let socket = UdpSocket::bind(a.bind).with_context(|| format!("binding UDP {}", a.bind))?;
    let shared = Arc::new(Mutex::new(Shared {
        server,
        dir,
        start: Instant::now(),
        boot_saved,
    }));
    if let Some(c) = a.control {
        let listener = TcpListener::bind(c).with_context(|| format!("binding control {c}"))?;
        println!("control on {}", listener.local_addr()?);
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || control_loop(&listener, &shared));
    }
    {
        // The mechanism's timers (auto-relock).
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(250));
                let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                let before = s.server.lock().flash_work();
                let now = s.now_ms();
                s.server.tick(now);
                s.commit(before);
            }
        });
    }
    println!("listening on {}", socket.local_addr()?);
    std::io::stdout().flush()?;
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("keyway-lock: receive: {e}");
                continue;
            }
        };
        let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let before = s.server.lock().flash_work();
        let now = s.now_ms();
        let frame = buf.get(..n).unwrap_or(&[]);
        let response = s.server.handle(frame, now);
        // A lock that lost power mid-request does not answer.
        if !s.server.lost_power()
            && let Err(e) = socket.send_to(&response, peer)
        {
            eprintln!("keyway-lock: send to {peer}: {e}");
        }
        s.server.poll_reset();
        s.flush_log();
        s.commit(before);
    }
}

fn control_loop(listener: &TcpListener, shared: &Arc<Mutex<Shared>>) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            let Ok(mut out) = conn.try_clone() else {
                return;
            };
            // Lines are bounded: a longer one is cut at 4 KiB.
            let reader = BufReader::new(std::io::Read::take(conn, 1 << 20));
            for line in reader.lines() {
                let Ok(line) = line else { return };
                let line: String = line.chars().take(4096).collect();
                let answer = {
                    let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                    let before = s.server.lock().flash_work();
                    let now = s.now_ms();
                    let a = keyway_lock::control::handle_line_at(
                        &mut s.server,
                        &line,
                        now,
                        wall_clock_secs(),
                    );
                    s.commit(before);
                    a
                };
                if writeln!(out, "{answer}").is_err() {
                    return;
                }
            }
        });
    }
}
