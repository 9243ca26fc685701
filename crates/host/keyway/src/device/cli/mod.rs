//! The `keyway device` subcommands: argument definitions and handlers.
//! Every handler prints a few readable lines, or with `--json` exactly
//! one JSON object.
//!
//! Here: the arguments, the connection and owner checks, and [`run`];
//! `pair` pairing by setup code, `update` choosing and uploading an
//! envelope, `wait` the update's outcome, `print` the text output.

use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value as JsonValue, json};
use sha2::{Digest as _, Sha256};

use keyway_vendor::keys::{SigningKey, hex};

use super::client::{Client, ImageSlot, Map, UploadReport, map_to_json};
use super::paired::{PairedLockRecord, PairedLocks, locks_path};
use super::serial::TargetTransport;
use super::transport::Transport;
use super::{DeviceError, OwnerInfo};
use crate::terminal::{self, Newlines};

mod pair;
mod print;
mod update;
mod wait;

use pair::{pair_with_code, parse_key_id};
use print::*;
pub use update::{Candidate, PushError, PushReport, push_update, select_envelope, update};
pub use wait::{UpdateOutcome, Waited, wait_for, wait_outcome};

/// Arguments of `keyway device`.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// The lock's SMP address: udp:HOST:PORT, or serial:PATH (its serial
    /// port, 115200 8N1, MCUmgr's serial transport).
    #[arg(long, value_name = "udp:HOST:PORT|serial:PATH")]
    pub target: String,
    /// The owner's private key (PKCS#8 PEM, Ed25519, from `keyway keygen`):
    /// pairs by setup code, then every command runs sealed in a session
    /// with the lock recorded in OWNER.locks.json for this --target.
    #[arg(long, value_name = "OWNER.key")]
    pub owner_key: Option<PathBuf>,
    /// Insist on the session (it is the only way an owner key is used:
    /// with or without this flag, an owner key whose OWNER.locks.json
    /// holds no record for this --target is refused before anything is
    /// sent, except by `pair --setup-code`).
    #[arg(long)]
    pub session: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for each answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub timeout_ms: u64,
    /// Sends of a request before giving up (UDP loses datagrams).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub tries: u32,
    /// The largest SMP frame sent, header included.
    #[arg(long, value_name = "BYTES", default_value_t = super::UDP_MTU)]
    pub mtu: usize,
    /// What to do.
    #[command(subcommand)]
    pub command: DeviceCommand,
}

/// `keyway device` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Bolt, door, battery, running version, pending update, settings.
    Status,
    /// Throw the bolt (owner key, or the presence window).
    Lock,
    /// Draw the bolt (owner key, or the presence window).
    Unlock,
    /// Upload a signed envelope; the lock keeps it pending until the owner
    /// consents.
    Update(UpdateArgs),
    /// The pending update's release notes, CVE ids and severities.
    Notes,
    /// Accept or refuse the pending update (owner key).
    Consent {
        /// accept or refuse.
        #[arg(value_enum)]
        answer: ConsentArg,
    },
    /// The lock's audit log.
    #[command(subcommand)]
    Log(DeviceLogCommand),
    /// Pair --owner-key with the lock by the setup code on its label
    /// (needs the presence window: the lock's button); records the lock's
    /// device key in OWNER.locks.json, and owner commands to this --target
    /// then run in a session.
    Pair {
        /// The lock's setup code, as printed on its label (8 digits, e.g.
        /// 1234-5670).
        #[arg(long, value_name = "CODE")]
        setup_code: String,
        /// A name for the owner.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the lock's owners: key id, when paired, name (owner key).
    Owners,
    /// Remove the owner whose key id is KEYID (owner key); an owner may
    /// remove itself.
    Unpair {
        /// The owner's key id: 16 hex digits, as `owners` prints it.
        #[arg(value_name = "KEYID")]
        key_id: String,
    },
    /// Forget every owner (the presence window and the long press).
    FactoryReset,
    /// Change the update policy (owner key, or the presence window); with
    /// no option, show it.
    Settings(SettingsArgs),
    /// Ask the lock to echo TEXT (checks the link).
    Echo {
        /// The text.
        text: String,
    },
}

/// `keyway device log` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeviceLogCommand {
    /// Download the signed audit-log export into FILE.
    Export {
        /// Where to write it.
        file: PathBuf,
    },
}

/// Arguments of `keyway device update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Candidate envelopes (full and delta); the client uploads the one
    /// that fits the lock's installed image: a delta whose base the lock
    /// runs, else a full image, among those the lock does not hold yet.
    #[arg(value_name = "ENVELOPE", required = true)]
    pub envelopes: Vec<PathBuf>,
    /// Ask for a test boot right away (image state "test", then a reset),
    /// as `smpmgr upgrade` does: with the presence window open this is the
    /// consent of a person at the lock.
    #[arg(long)]
    pub install: bool,
    /// Wait for the outcome: the new version running and confirmed, or
    /// the update postponed or refused (exits non-zero when refused or
    /// when the time runs out).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub wait_seconds: u64,
}

/// Arguments of `keyway device settings`.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Install a release that fixes a high or critical CVE without asking.
    #[arg(long, value_enum, value_name = "on|off")]
    pub auto_install_cve: Option<OnOff>,
    /// Install only while the bolt is unlocked.
    #[arg(long, value_enum, value_name = "on|off")]
    pub install_needs_unlocked: Option<OnOff>,
}

/// `consent` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsentArg {
    /// Install the pending update.
    Accept,
    /// Do not install it.
    Refuse,
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

impl From<OnOff> for bool {
    fn from(v: OnOff) -> bool {
        v == OnOff::On
    }
}

/// A client for `a`'s target, with the owner key if given.
pub fn connect(a: &DeviceArgs) -> Result<Client<TargetTransport>> {
    let t = TargetTransport::connect(&a.target)
        .with_context(|| format!("--target {}", a.target))?
        .with_retry(Duration::from_millis(a.timeout_ms), a.tries)
        .with_mtu(a.mtu);
    owner_client(a, Client::new(t))
}

/// Why an owner key cannot be used for a command: the owner's paired-lock
/// file holds no record for the target (the key never paired with this
/// lock by setup code, or paired at another address). Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} holds no lock paired at {target}: this owner key has no session with that lock; pair first, with the lock's presence window open: `keyway device --target {target} --owner-key {} pair --setup-code CODE` (CODE: the 8 digits on the lock's label)",
    locks.display(),
    owner_key.display()
)]
pub struct NotPaired {
    /// The owner key (`--owner-key`).
    pub owner_key: PathBuf,
    /// Its paired-lock file.
    pub locks: PathBuf,
    /// The `--target`.
    pub target: String,
}

/// `c` with `a`'s owner key, in a session with the lock its paired-lock
/// file records for `a.target`; without a record, [`NotPaired`] (the
/// only command an unpaired owner key runs is `pair --setup-code`, in
/// the clear).
pub fn owner_client<T: Transport>(a: &DeviceArgs, mut c: Client<T>) -> Result<Client<T>> {
    let Some(k) = &a.owner_key else {
        if a.session {
            bail!("--session needs --owner-key: the owner key that paired with the lock");
        }
        return Ok(c);
    };
    // The key's own errors name the file.
    let key = SigningKey::load(k).context("--owner-key")?;
    c = c
        .with_owner(key)
        .with_context(|| format!("--owner-key {}", k.display()))?;
    if matches!(a.command, DeviceCommand::Pair { .. }) {
        return Ok(c);
    }
    let record = paired_locks(a, &c)?.and_then(|f| f.find(&a.target).cloned());
    match record {
        Some(r) => Ok(c.with_paired_lock(r.device_key)?),
        None => Err(NotPaired {
            owner_key: k.clone(),
            locks: locks_path(k),
            target: a.target.clone(),
        }
        .into()),
    }
}

/// The owner key's paired-lock file (`None` without an owner key).
fn paired_locks<T: Transport>(a: &DeviceArgs, c: &Client<T>) -> Result<Option<PairedLocks>> {
    let (Some(k), Some(id)) = (&a.owner_key, c.owner_key_id()) else {
        return Ok(None);
    };
    Ok(Some(PairedLocks::load(&locks_path(k), id)?))
}

/// Runs `keyway device`.
/// With `--json` a failure is printed too, as `{"command", "error"}`
/// (and the exit status is still non-zero).
pub fn run(a: &DeviceArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    finish(
        a,
        connect(a).and_then(|mut c| run_on(a, &mut c, out, err)),
        out,
    )
}

/// Runs `keyway device` on a client made elsewhere (an in-memory lock in
/// tests): [`owner_client`] then the command, printed as [`run`] does.
pub fn run_with<T: Transport>(
    a: &DeviceArgs,
    c: Client<T>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let result = owner_client(a, c).and_then(|mut c| run_on(a, &mut c, out, err));
    finish(a, result, out)
}

fn finish(a: &DeviceArgs, result: Result<JsonValue>, out: &mut dyn Write) -> Result<()> {
    match result {
        Ok(v) => {
            if a.json {
                writeln!(out, "{v}")?;
            }
            Ok(())
        }
        Err(e) => {
            if a.json {
                let v = json!({"command": command_name(&a.command), "error": format!("{e:#}")});
                writeln!(out, "{v}")?;
            }
            Err(e)
        }
    }
}

fn command_name(c: &DeviceCommand) -> &'static str {
    match c {
        DeviceCommand::Status => "status",
        DeviceCommand::Lock => "lock",
        DeviceCommand::Unlock => "unlock",
        DeviceCommand::Update(_) => "update",
        DeviceCommand::Notes => "notes",
        DeviceCommand::Consent { .. } => "consent",
        DeviceCommand::Log(_) => "log export",
        DeviceCommand::Pair { .. } => "pair",
        DeviceCommand::Owners => "owners",
        DeviceCommand::Unpair { .. } => "unpair",
        DeviceCommand::FactoryReset => "factory-reset",
        DeviceCommand::Settings(_) => "settings",
        DeviceCommand::Echo { .. } => "echo",
    }
}

fn run_on<T: Transport>(
    a: &DeviceArgs,
    c: &mut Client<T>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<JsonValue> {
    let j = a.json;
    let value = match &a.command {
        DeviceCommand::Status => {
            let s = c.status()?;
            if !j {
                print_map(&s, out)?;
            }
            with_command(command_name(&a.command), map_to_json(&s))
        }
        DeviceCommand::Lock | DeviceCommand::Unlock => {
            let locking = matches!(a.command, DeviceCommand::Lock);
            let s = if locking { c.lock()? } else { c.unlock()? };
            let bolt = text(&s, "bolt").unwrap_or_else(|| "?".into());
            if !j {
                writeln!(out, "bolt {bolt}")?;
            }
            with_command(command_name(&a.command), map_to_json(&s))
        }
        DeviceCommand::Update(u) => update(c, u, j, out, err)?,
        DeviceCommand::Notes => {
            let n = c.notes()?;
            if !j {
                print_notes(&n, out)?;
            }
            with_command("notes", map_to_json(&n))
        }
        DeviceCommand::Consent { answer } => {
            let accept = *answer == ConsentArg::Accept;
            let s = c.consent(accept)?;
            if !j {
                writeln!(
                    out,
                    "consent {}: update {}{}",
                    if accept { "given" } else { "refused" },
                    text(&s, "state").unwrap_or_else(|| "?".into()),
                    reason_suffix(&s)
                )?;
            }
            with_command("consent", map_to_json(&s))
        }
        DeviceCommand::Log(DeviceLogCommand::Export { file }) => {
            let bytes = c.log_export(&mut |_, _| {})?;
            std::fs::write(file, &bytes).with_context(|| format!("writing {}", file.display()))?;
            let check = format!(
                "keyway log verify {} --device-key DIR/device.pub",
                file.display()
            );
            if !j {
                writeln!(
                    out,
                    "{}: {} bytes of signed audit log; check it with\n  {check}\n(DIR/device.pub: the lock's device key, from its state directory)",
                    file.display(),
                    bytes.len()
                )?;
            }
            json!({"command": "log export", "file": file, "bytes": bytes.len(), "verify": check})
        }
        DeviceCommand::Pair { setup_code, name } => {
            pair_with_code(a, c, setup_code, name.as_deref(), out)?
        }
        DeviceCommand::Owners => {
            let owners = c.owners()?;
            let me = c.owner_key_id();
            if !j {
                print_owners(&owners, me, out)?;
            }
            json!({
                "command": "owners",
                "owners": owners.iter().map(|o| json!({
                    "key_id": hex(&o.key_id),
                    "name": o.name,
                    "paired": o.paired,
                    "this_key": me == Some(o.key_id),
                })).collect::<Vec<_>>(),
            })
        }
        DeviceCommand::Unpair { key_id } => {
            let id = parse_key_id(key_id)?;
            let left = c.unpair(id).map_err(|e| {
                // Decided on the typed refusal, never on the lock's words.
                if e.refusal() == Some(keyway_smp::Refusal::UnknownOwner) {
                    anyhow::Error::new(e).context(format!(
                        "no owner of this lock has key id {}: list them with `keyway device --owner-key KEY owners`",
                        hex(&id)
                    ))
                } else {
                    e.into()
                }
            })?;
            if !j {
                writeln!(
                    out,
                    "removed owner {}; the lock has {left} owner(s)",
                    hex(&id)
                )?;
            }
            json!({"command": "unpair", "key_id": hex(&id), "owners": left})
        }
        DeviceCommand::FactoryReset => {
            let r = c.factory_reset()?;
            if !j {
                writeln!(out, "factory reset: the lock forgot every owner")?;
            }
            with_command("factory-reset", map_to_json(&r))
        }
        DeviceCommand::Settings(s) => {
            let (auto, unlocked) = (
                s.auto_install_cve.map(bool::from),
                s.install_needs_unlocked.map(bool::from),
            );
            // Nothing to change: show them (status is open to anyone).
            let r = if auto.is_none() && unlocked.is_none() {
                c.status()?
            } else {
                c.settings(auto, unlocked)?
            };
            let m = match smp_get(&r, "settings") {
                Some(ciborium::Value::Map(m)) => m.clone(),
                _ => Map::new(),
            };
            if !j {
                print_map(&m, out)?;
            }
            json!({"command": "settings", "settings": map_to_json(&m)})
        }
        DeviceCommand::Echo { text } => {
            let r = c.echo(text)?;
            if !j {
                writeln!(out, "{}", terminal::line(&r))?;
            }
            json!({"command": "echo", "r": r})
        }
    };
    Ok(value)
}
