//! `keyway-lock`: the thin shell. Files, the UDP socket, the control
//! socket and the clock; everything the lock decides is in the library.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow};
use clap::{Args, Parser, Subcommand};
use keyway_lock::shell;
use keyway_lock::state::StateDir;

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

fn run(a: &RunArgs) -> Result<()> {
    let state = a
        .state
        .clone()
        .ok_or_else(|| anyhow!("--state DIR is required (or use `keyway-lock provision`)"))?;
    let running = shell::start(&shell::Options {
        state,
        bind: a.bind,
        control: a.control,
        presence_always_open: a.presence_always_open,
        lockout_attempts: a.lockout_attempts,
        lockout_seconds: a.lockout_seconds,
        relock_seconds: a.relock_seconds,
        verbose: true,
    })?;
    eprintln!("keyway-lock: {}", running.boot);
    if let Some(c) = running.control {
        println!("control on {c}");
    }
    println!("listening on {}", running.smp);
    std::io::stdout().flush()?;
    running.wait();
    Ok(())
}
