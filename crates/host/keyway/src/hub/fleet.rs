//! A fleet of simulated locks for the hub: the demo house's three doors
//! and the 1,000-lock scale run.
//!
//! Each lock is the real lock (`keyway-lock`'s shell around the agent and
//! the device core) on its own file-backed simulated flash, provisioned
//! the way the demo provisions its one lock (`crate::demo::provision`:
//! the vendor's root key as anchor, the signed factory image 1.4.0, a
//! setup code on its label), serving SMP on a loopback UDP port and its
//! hardware (the button, the keypad) on a loopback control socket. The
//! hub reaches it exactly as it would reach a lock on the LAN.
//!
//! The scale run (`examples/hub_fleet.rs`) runs the fleet in a process of
//! its own ([`serve`]), not in the hub's: the hub's peak RSS is then the
//! hub's alone, and the figure "RSS per lock" measures what the hub keeps
//! per lock, not the simulated locks' flash images. A lock costs three
//! threads (SMP, the control socket, the mechanism's timer) and two
//! sockets in that process.

use std::io::{BufRead as _, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};

/// The demo house's doors, in order; locks past these are `lock N`.
pub const HOUSE: [&str; 8] = [
    "front door",
    "back door",
    "garage",
    "side door",
    "patio",
    "basement",
    "shed",
    "gate",
];

/// The name of the `i`th lock (0-based).
pub fn lock_name(i: usize) -> String {
    HOUSE
        .get(i)
        .map_or_else(|| format!("lock {}", i + 1), |n| (*n).to_owned())
}

/// The state directory's name for a lock name (`front door` ->
/// `lock-front-door`).
fn state_name(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("lock-{slug}")
}

/// A provisioned, not yet running, lock.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// Its name.
    pub name: String,
    /// Its state directory.
    pub state: PathBuf,
}

/// Provisions `n` locks under `dir` from the vendor files in `vendor`
/// (made by `crate::demo::vendor_keys` and
/// `crate::demo::factory_release`), on `threads` threads; prints each
/// provisioning step to `out` when `verbose`.
pub fn provision(
    vendor: &Path,
    dir: &Path,
    n: usize,
    threads: usize,
    out: &mut dyn Write,
    verbose: bool,
) -> Result<Vec<Provisioned>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let all: Vec<Provisioned> = (0..n)
        .map(|i| {
            let name = lock_name(i);
            Provisioned {
                state: dir.join(state_name(&name)),
                name,
            }
        })
        .collect();
    if verbose {
        for p in &all {
            writeln!(out, "  {}:", p.name)?;
            crate::demo::provision(out, vendor, &p.state)?;
        }
        return Ok(all);
    }
    let threads = threads.clamp(1, 64);
    let chunk = all.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let jobs: Vec<_> = all
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || -> Result<()> {
                    for p in c {
                        crate::demo::provision(&mut std::io::sink(), vendor, &p.state)
                            .with_context(|| format!("provisioning {}", p.name))?;
                    }
                    Ok(())
                })
            })
            .collect();
        jobs.into_iter().try_for_each(|j| {
            j.join()
                .map_err(|_| anyhow!("a provisioning thread panicked"))?
        })
    })?;
    Ok(all)
}

/// One running lock.
pub struct FleetLock {
    /// Its name.
    pub name: String,
    /// Its SMP address, as the hub adds it (`udp:127.0.0.1:PORT`).
    pub address: String,
    /// Its control socket (the lock's hardware).
    pub control: SocketAddr,
    /// The setup code on its label.
    pub setup_code: String,
    /// Its state directory.
    pub state: PathBuf,
    running: keyway_lock::shell::Running,
}

impl std::fmt::Debug for FleetLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetLock")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl FleetLock {
    /// The line that describes it to another process (JSON).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "address": self.address,
            "control": self.control.to_string(),
            "setup_code": self.setup_code,
            "state": self.state.display().to_string(),
        })
    }

    /// Powers it off (the flash file holds what the flash held).
    pub fn stop(self) {
        self.running.power_off();
    }
}

/// Starts the provisioned locks on loopback. With `unlocked`, each
/// lock's bolt is withdrawn (the keypad PIN) and stays so (no
/// auto-relock), so an install the owner consents to is not postponed
/// by the bolt: the scale run measures updates, not doors.
pub fn start(locks: &[Provisioned], unlocked: bool) -> Result<Vec<FleetLock>> {
    let mut running = Vec::with_capacity(locks.len());
    for p in locks {
        let mut o =
            keyway_lock::shell::Options::new(&p.state, SocketAddr::from(([127, 0, 0, 1], 0)));
        o.control = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        if unlocked {
            o.relock_seconds = 0;
        }
        let r = keyway_lock::shell::start(&o).with_context(|| format!("starting {}", p.name))?;
        let control = r
            .control
            .ok_or_else(|| anyhow!("{} has no control socket", p.name))?;
        let code = keyway_lock::state::StateDir::new(&p.state)
            .setup_code()?
            .ok_or_else(|| anyhow!("{} has no setup code", p.name))?;
        if unlocked {
            hardware(
                control,
                &serde_json::json!({"cmd": "keypad", "pin": keyway_lock::lock::DEFAULT_PIN}),
            )
            .with_context(|| format!("unlocking {}", p.name))?;
        }
        running.push(FleetLock {
            name: p.name.clone(),
            address: format!("udp:{}", r.smp),
            control,
            setup_code: code.to_string(),
            state: p.state.clone(),
            running: r,
        });
    }
    Ok(running)
}

/// One line to a lock's control socket (its hardware), quietly; an
/// answer without `"ok": true` is an error naming the lock's answer.
pub fn hardware(control: SocketAddr, line: &serde_json::Value) -> Result<serde_json::Value> {
    crate::demo::at_lock(
        &mut std::io::sink(),
        control,
        &line.to_string(),
        &line.to_string(),
    )
}

/// Presses a lock's button: its presence window opens for `seconds`
/// (pairing needs it).
pub fn press_button(control: SocketAddr, seconds: u64) -> Result<()> {
    hardware(
        control,
        &serde_json::json!({"cmd": "presence", "seconds": seconds}),
    )
    .map(|_| ())
}

/// Raises the soft limit on open files to at least `want` (up to the
/// hard limit); returns the (soft, hard) limits now in force.
pub fn raise_fd_limit(want: u64) -> Result<(u64, u64)> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given; no other memory.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    if l.rlim_cur < want {
        let new = libc::rlimit {
            rlim_cur: want.min(l.rlim_max),
            rlim_max: l.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
        }
        l = new;
    }
    Ok((l.rlim_cur, l.rlim_max))
}

/// A process's resident set now and at its peak, KiB (`/proc/PID/status`:
/// VmRSS, VmHWM).
pub fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow!("{path} has no {name}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The disk space the files under `path` take (allocated blocks, bytes).
pub fn disk_use(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if m.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| disk_use(&e.path())).sum())
            .unwrap_or(0)
    } else {
        m.blocks() * 512
    }
}

/// Runs `n` locks as a process of their own for the scale run: provisions
/// them under `dir` from `vendor`, starts them unlocked, prints one JSON
/// line per lock ([`FleetLock::to_json`]) and then
/// `{"ready": N, "provision_s": …, "disk_bytes": …}`, and serves until its
/// standard input closes; then powers every lock off.
pub fn serve(vendor: &Path, dir: &Path, n: usize, out: &mut dyn Write) -> Result<()> {
    // Two sockets a lock, and the files it opens while it saves.
    let (soft, _) = raise_fd_limit(4 * n as u64 + 256)?;
    if soft < 2 * n as u64 + 64 {
        anyhow::bail!(
            "{n} locks need about {} open files; the limit is {soft} (raise it: ulimit -n)",
            2 * n + 64
        );
    }
    let t = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get());
    let provisioned = provision(vendor, dir, n, threads, &mut std::io::sink(), false)?;
    let provision_s = t.elapsed().as_secs_f64();
    let locks = start(&provisioned, true)?;
    for l in &locks {
        writeln!(out, "{}", l.to_json())?;
    }
    writeln!(
        out,
        "{}",
        serde_json::json!({
            "ready": locks.len(),
            "provision_s": provision_s,
            "disk_bytes": disk_use(dir),
            "fd_limit": soft,
        })
    )?;
    out.flush()?;
    // Until the parent closes our standard input (or goes away).
    let mut line = String::new();
    let stdin = std::io::stdin();
    while stdin.lock().read_line(&mut line).unwrap_or(0) > 0 {
        line.clear();
    }
    for l in locks {
        l.stop();
    }
    Ok(())
}
