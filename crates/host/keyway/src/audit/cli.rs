//! `keyway audit`: its arguments and handler.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;

use super::{Options, Report, Target, netns, report};

/// Arguments of `keyway audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The lock's SMP address: `udp:HOST:PORT`, or `serial:PATH` (a tty or
    /// pty, the MCUmgr serial transport; checks whose subject is the IP
    /// network or a second peer are then N/A).
    #[arg(
        long,
        value_name = "udp:HOST:PORT|serial:PATH",
        required_unless_present = "lock_state",
        conflicts_with = "lock_state"
    )]
    pub target: Option<String>,
    /// Run a simulated lock from this provisioned state directory
    /// (`keyway-lock provision`) in the audit's own unplugged network (the
    /// command's lab starts it and audits it over `udp:`).
    #[arg(long, value_name = "DIR")]
    pub lock_state: Option<PathBuf>,
    /// With --lock-state: run it as one of keyway-lock's deliberately
    /// flawed profiles.
    #[arg(long, value_name = "NAME", requires = "lock_state")]
    pub lock_profile: Option<String>,
    /// The vendor's signing key (PKCS#8 PEM) for the lock's anchors: the
    /// audit signs the genuine and doctored releases it needs. Repeat it
    /// for a threshold of release signers (with --keyset).
    #[arg(
        long = "vendor-key",
        value_name = "V.key",
        required_unless_present = "update"
    )]
    pub vendor_keys: Vec<PathBuf>,
    /// The key-set document delegating to the --vendor-key signers,
    /// embedded in every release the audit signs.
    #[arg(long, value_name = "KEYSET", requires = "vendor_keys")]
    pub keyset: Option<PathBuf>,
    /// Vendor-signed envelopes to use when you do not hold the vendor key
    /// (checks that need a fresh signature are then SKIP).
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with = "vendor_keys")]
    pub update: Vec<PathBuf>,
    /// The lock's control socket (`HOST:PORT` or a Unix socket path), if it
    /// offers one.
    #[arg(long, value_name = "ADDR")]
    pub control: Option<String>,
    /// An owner key already paired with the lock (PKCS#8 PEM).
    #[arg(long, value_name = "OWNER.key")]
    pub owner_key: Option<PathBuf>,
    /// The lock's setup code from its label (default: read through the
    /// control socket's `setup-code`). The audit pairs its own owner key
    /// with it for the channel checks.
    #[arg(long, value_name = "CODE")]
    pub setup_code: Option<String>,
    /// The lock's device public key from its provisioning (with
    /// --target): its audit log is verified against it, not against the
    /// key the lock announces.
    #[arg(long, value_name = "DEVICE.pub")]
    pub device_key: Option<PathBuf>,
    /// The lock's vendor domain (with --target).
    #[arg(long, value_name = "DOMAIN")]
    pub vendor_domain: Option<String>,
    /// The lock's class, its model (with --target).
    #[arg(long, value_name = "NAME")]
    pub class: Option<String>,
    /// The first sequence number to sign (default: above the lock's floor
    /// with --lock-state, else the current Unix time).
    #[arg(long, value_name = "N")]
    pub sequence: Option<u64>,
    /// The keypad PIN (default: the state directory's with --lock-state,
    /// else 1234, `audit::DEFAULT_PIN`).
    #[arg(long, value_name = "DIGITS")]
    pub pin: Option<String>,
    /// Size of the images the audit signs.
    #[arg(long, value_name = "KIB", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=400))]
    pub image_kib: u32,
    /// The firmware (a raw binary) the audit's genuine releases carry, for
    /// a lock that boots real code (the emulated lock's lock-app); without
    /// it they carry a generated image of --image-kib.
    #[arg(long, value_name = "FIRMWARE.bin", requires = "vendor_keys")]
    pub image: Option<PathBuf>,
    /// Write the self-contained HTML report here.
    #[arg(long, value_name = "report.html")]
    pub report: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Where the run's files go (audit-log exports).
    #[arg(long, value_name = "DIR", default_value = "target/keyway-audit")]
    pub out: PathBuf,
    /// Do not make a network namespace for a launched lock (check 1 then
    /// proves there is no route out, or fails).
    #[arg(long)]
    pub no_netns: bool,
    /// Progress on stderr.
    #[arg(long, short)]
    pub verbose: bool,
    /// How long the lock may take to answer again after a reset or a
    /// power cut the audit causes.
    #[arg(long, value_name = "SECONDS", default_value_t = super::DEFAULT_BOOT_SECONDS,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub boot_seconds: u64,
}

fn parse_target(t: &str) -> Result<Target> {
    if let Some(path) = t.strip_prefix("serial:") {
        if path.is_empty() {
            bail!("--target {t:?}: expected serial:PATH (a tty or pty)");
        }
        return Ok(Target::Serial(PathBuf::from(path)));
    }
    let rest = t
        .strip_prefix("udp:")
        .ok_or_else(|| anyhow!("--target {t:?}: expected udp:HOST:PORT or serial:PATH"))?;
    let a: SocketAddr = rest
        .to_socket_addrs()
        .with_context(|| format!("--target {t:?}: HOST:PORT does not resolve"))?
        .next()
        .ok_or_else(|| anyhow!("--target {t:?}: no address"))?;
    Ok(Target::Udp(a))
}

/// Runs `keyway audit --target`. Exits non-zero (an error) if any check
/// FAILs.
///
/// `--lock-state` is not served here: the audit does not start locks.
/// The command line sends it to the lab (`src/lab.rs`), which starts the
/// simulated lock and then uses [`isolate`], [`options`] and [`finish`]
/// as this does.
pub fn audit(a: &AuditArgs, out: &mut dyn Write) -> Result<()> {
    if a.lock_state.is_some() {
        bail!(
            "--lock-state: the audit does not start locks; run it through the keyway command (its lab starts the simulated lock)"
        );
    }
    let Some(namespace) = isolate(a)? else {
        return Ok(());
    };
    let target = match &a.target {
        Some(t) => parse_target(t)?,
        None => bail!("give --target udp:HOST:PORT, --target serial:PATH or --lock-state DIR"),
    };
    let o = options(a, target, namespace)?;
    let r = super::run(&o)?;
    finish(a, &r, out)
}

/// The unplugged network for the run: a lock started in this process
/// (`--lock-state`) and the audit move into their own network namespace,
/// by running this same command again under `unshare -rn`
/// ([`netns::reexec_isolated`]). Returns `None` when that child ran the
/// audit (this process then has nothing left to do; a child that failed
/// exits with its code), else the outcome for [`Options::namespace`].
/// Call it before starting the lock: it must start inside.
pub fn isolate(a: &AuditArgs) -> Result<Option<Result<(), String>>> {
    let inside = std::env::var_os(netns::ENV_INSIDE).is_some();
    let mut namespace = Err("the lock is external: the audit cannot move it into a namespace; it proves there is no route out instead".to_owned());
    if a.lock_state.is_some() {
        if a.no_netns {
            namespace = Err("--no-netns".to_owned());
        } else if inside {
            namespace = netns::loopback_up();
        } else {
            let exe = std::env::current_exe().context("finding the keyway executable")?;
            let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
            match netns::reexec_isolated(&exe, &args) {
                Ok(0) => return Ok(None),
                // The audit inside already said what failed.
                Ok(code) => std::process::exit(code),
                Err(why) => namespace = Err(format!("{why}; running in the host's network")),
            }
        }
    }
    Ok(Some(namespace))
}

/// The run's [`Options`] from the arguments, against `target`.
pub fn options(a: &AuditArgs, target: Target, namespace: Result<(), String>) -> Result<Options> {
    let mut o = Options::new(target, &a.out);
    o.control = a
        .control
        .as_deref()
        .map(super::link::ControlAddr::parse)
        .transpose()?;
    o.vendor_keys = a.vendor_keys.clone();
    o.keyset = a.keyset.clone();
    o.updates = a.update.clone();
    o.owner_key = a.owner_key.clone();
    o.setup_code = a.setup_code.clone();
    o.device_key = a.device_key.clone();
    o.vendor_domain = a.vendor_domain.clone();
    o.class = a.class.clone();
    o.sequence = a.sequence;
    o.pin = a.pin.clone();
    o.image_len = a.image_kib as usize * 1024;
    o.image = a.image.clone();
    o.namespace = namespace;
    o.verbose = a.verbose;
    o.boot_wait = std::time::Duration::from_secs(a.boot_seconds);
    Ok(o)
}

/// Prints the scorecard (table or JSON), writes the HTML report if asked,
/// and fails if any check FAILed.
pub fn finish(a: &AuditArgs, r: &Report, out: &mut dyn Write) -> Result<()> {
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report::json(r))?)?;
    } else {
        write!(out, "{}", report::table(r))?;
    }
    if let Some(p) = &a.report {
        std::fs::write(p, report::html(r))
            .with_context(|| format!("writing --report {}", p.display()))?;
        if !a.json {
            writeln!(out, "HTML report: {}", p.display())?;
        }
    }
    let (_, fail, _) = r.counts();
    if fail > 0 {
        bail!("{fail} check(s) FAILED");
    }
    Ok(())
}
