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
    /// Create a lock: its flash file, trust anchors, identity and setup
    /// code (printed like a label: `Setup code: 1234-5670`).
    Provision(ProvisionArgs),
    /// Send one action to a running lock's control socket and print the answer.
    ///
    /// Actions: presence (the button: the window opens for the lock's
    /// configured length, 120 s), presence-close, long-press, keypad PIN,
    /// lock, unlock, mechanical-key, door open|closed, tamper on|off,
    /// battery MV, cut-power --after-ops N | --mid-upload [BYTE],
    /// log-export NAME (written as STATE/exports/NAME), status,
    /// setup-code (the code on the lock's label).
    Ctl(CtlArgs),
}

#[derive(Debug, Args)]
struct CtlArgs {
    /// The control socket: HOST:PORT (TCP) or a path (Unix domain socket).
    #[arg(value_name = "SOCKET")]
    socket: String,
    /// The action and its arguments.
    #[arg(value_name = "ACTION", required = true, num_args = 1.., allow_hyphen_values = true)]
    action: Vec<String>,
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
    /// The factory firmware: a vendor-signed envelope programmed into slot 0,
    /// booted and confirmed. Without it the lock has no built-in image: it
    /// boots into recovery and installs the first verified upload at once.
    #[arg(long, visible_alias = "factory", value_name = "FW.suit")]
    firmware: Option<PathBuf>,
    /// The version the firmware's manifest must carry (X.Y.Z); refused otherwise.
    #[arg(long, value_name = "X.Y.Z", requires = "firmware")]
    version: Option<String>,
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
    /// The control socket (line-delimited JSON; it stands in for the
    /// lock's hardware and has no authentication): a path for a Unix
    /// domain socket (made mode 0600), or a loopback TCP HOST:PORT.
    #[arg(long, value_name = "HOST:PORT|PATH")]
    control: Option<String>,
    /// DANGER: let --control listen on a non-loopback TCP address, where
    /// anyone who can reach it can unlock the door.
    #[arg(long)]
    control_insecure_any_address: bool,
    /// The lock model: deadbolt-2 (2 x 3.6 V lithium, 18,720 mWh) or
    /// lever-4aa (4 x AA alkaline, 15,000 mWh); its battery model turns the
    /// measured mV into the mWh an update's minimum-battery asks for.
    #[arg(long, value_name = "NAME", default_value = "deadbolt-2")]
    model: String,
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
    /// A deliberately flawed lock for `keyway audit`: cloud-verify,
    /// no-rollback, unsigned, downgrade, forced, log-gaps or open-pairing
    /// (the agent brain's channel flaws).
    #[arg(long, value_name = "NAME", default_value = "default")]
    profile: String,
    /// With --profile cloud-verify: the vendor server it insists on
    /// reaching (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    vendor_server: Option<String>,
    /// Also serve SMP on a serial line, as MCUmgr's serial transport: the
    /// lock opens a pty pair and makes PATH a symlink to its slave
    /// (`smpmgr --port PATH`, `keyway device --target serial:PATH`).
    #[arg(long, value_name = "PATH")]
    serial: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.command {
        Some(Command::Provision(a)) => provision(&a),
        Some(Command::Ctl(a)) => ctl(&a),
        None => run(&cli.run),
    };
    if let Err(e) = r {
        eprintln!("keyway-lock: {e:#}");
        std::process::exit(1);
    }
}

fn provision(a: &ProvisionArgs) -> Result<()> {
    let dir = StateDir::new(&a.state);
    if let (Some(fw), Some(want)) = (&a.firmware, &a.version) {
        let env =
            std::fs::read(fw).with_context(|| format!("reading --firmware {}", fw.display()))?;
        let got = keyway_lock::suit::inspect(&env)
            .map_err(|e| {
                anyhow!(
                    "--firmware {}: {}",
                    fw.display(),
                    keyway_vendor::describe::describe(&e)
                )
            })?
            .manifest
            .version
            .map(|v| v.to_string());
        if got.as_deref() != Some(want.as_str()) {
            anyhow::bail!(
                "--firmware {} carries version {}, --version says {want}",
                fw.display(),
                got.as_deref().unwrap_or("(none)")
            );
        }
    }
    if a.state.join("flash.bin").exists() && !a.force {
        anyhow::bail!(
            "{} already holds a lock (flash.bin); pass --force to provision it again",
            a.state.display()
        );
    }
    dir.secure()?;
    dir.set_pin(&a.pin).context("--pin")?;
    let summary = dir.provision(
        &a.vendor_keys,
        a.threshold,
        &a.vendor_domain,
        &a.class,
        a.firmware.as_deref(),
        a.force,
    )?;
    let code = dir
        .setup_code()?
        .ok_or_else(|| anyhow!("provisioning made no setup code"))?;
    println!("provisioned {}: {summary}", a.state.display());
    // As a label prints it; the lock keeps only the verifier.
    println!("Setup code: {code}");
    println!(
        "(the lock stores only its SPAKE2+ verifier; the lab's copy of the label is {}, read it with `keyway-lock ctl SOCKET setup-code`)",
        a.state.join(keyway_lock::state::SETUP_CODE).display()
    );
    Ok(())
}

fn run(a: &RunArgs) -> Result<()> {
    let state = a
        .state
        .clone()
        .ok_or_else(|| anyhow!("--state DIR is required (or use `keyway-lock provision`)"))?;
    let (control, control_path) = match &a.control {
        None => (None, None),
        Some(c) => match c.parse::<SocketAddr>() {
            Ok(addr) => (Some(addr), None),
            Err(_) => (None, Some(PathBuf::from(c))),
        },
    };
    if let Some(addr) = control {
        shell::check_control_addr(addr, a.control_insecure_any_address)?;
        if !addr.ip().is_loopback() {
            eprintln!("keyway-lock: {}", shell::insecure_control_warning(addr));
        }
    }
    let mut profile =
        keyway_lock::profile::Profile::parse(&a.profile).map_err(|e| anyhow!("--profile: {e}"))?;
    if let (keyway_lock::profile::Profile::CloudVerify { server }, Some(v)) =
        (&mut profile, &a.vendor_server)
    {
        server.clone_from(v);
    }
    if profile != keyway_lock::profile::Profile::Default {
        eprintln!(
            "keyway-lock: FLAWED PROFILE {}: for audits only",
            profile.name()
        );
    }
    let running = shell::start(&shell::Options {
        state,
        bind: a.bind,
        control,
        control_insecure_any_address: a.control_insecure_any_address,
        control_path,
        model: a.model.clone(),
        presence_always_open: a.presence_always_open,
        lockout_attempts: a.lockout_attempts,
        lockout_seconds: a.lockout_seconds,
        relock_seconds: a.relock_seconds,
        verbose: true,
        profile,
        serial: a.serial.clone(),
    })?;
    eprintln!("keyway-lock: {}", running.boot);
    if let Some(c) = running.control {
        println!("control on {c}");
    }
    if let Some(p) = &running.control_path {
        println!("control on {}", p.display());
    }
    if let Some(p) = &running.serial {
        println!("serial on {}", p.display());
    }
    println!("listening on {}", running.smp);
    std::io::stdout().flush()?;
    running.wait();
    Ok(())
}

/// `keyway-lock ctl SOCKET ACTION [ARGS]`: one JSON line to the control
/// socket, its answer on stdout; a refused action exits 1.
fn ctl(a: &CtlArgs) -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    let line = keyway_lock::control::action_line(&a.action).map_err(|e| anyhow!(e))?;
    let answer = if let Ok(addr) = a.socket.parse::<SocketAddr>() {
        let mut s = std::net::TcpStream::connect(addr)
            .with_context(|| format!("connecting to the control socket {addr}"))?;
        s.write_all(format!("{line}\n").as_bytes())?;
        let mut r = String::new();
        BufReader::new(s).read_line(&mut r)?;
        r
    } else {
        let mut s = std::os::unix::net::UnixStream::connect(&a.socket)
            .with_context(|| format!("connecting to the control socket {}", a.socket))?;
        s.write_all(format!("{line}\n").as_bytes())?;
        let mut r = String::new();
        BufReader::new(s).read_line(&mut r)?;
        r
    };
    let answer = answer.trim();
    if answer.is_empty() {
        anyhow::bail!("the lock closed the control socket without answering");
    }
    println!("{answer}");
    let ok = serde_json::from_str::<serde_json::Value>(answer)
        .ok()
        .and_then(|v| v.get("ok").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
