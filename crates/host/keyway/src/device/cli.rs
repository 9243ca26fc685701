//! The `keyway device` subcommands: argument definitions and handlers.
//! Every handler prints a few readable lines, or with `--json` exactly
//! one JSON object.

use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value as J, json};
use sha2::{Digest as _, Sha256};

use keyway_vendor::keys::{SigningKey, hex};

use super::client::{Client, ImageSlot, Map, UploadReport, map_to_json, printable};
use super::paired::{PairedLockRecord, PairedLocks, locks_path};
use super::serial::TargetTransport;
use super::transport::Transport;

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

fn finish(a: &DeviceArgs, result: Result<J>, out: &mut dyn Write) -> Result<()> {
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
) -> Result<J> {
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
                writeln!(out, "{}", printable(&r, false))?;
            }
            json!({"command": "echo", "r": r})
        }
    };
    Ok(value)
}

/// `pair --setup-code`: pairs the owner key by the lock's setup code and
/// records the lock's device key in the owner key's paired-lock file.
fn pair_with_code<T: Transport>(
    a: &DeviceArgs,
    c: &mut Client<T>,
    code: &str,
    name: Option<&str>,
    out: &mut dyn Write,
) -> Result<J> {
    let Some(k) = &a.owner_key else {
        bail!(
            "pair --setup-code needs --owner-key: the key to pair (make one with `keyway keygen NAME`)"
        );
    };
    let code = keyway_channel::SetupCode::parse(code.trim()).map_err(|e| {
        anyhow::anyhow!(
            "--setup-code {:?}: {e}: give the 8 digits on the lock's label",
            printable(code, false)
        )
    })?;
    let name = name.unwrap_or("");
    if name.len() > keyway_channel::pairing::NAME_MAX {
        bail!(
            "--name: at most {} bytes",
            keyway_channel::pairing::NAME_MAX
        );
    }
    let mut file = paired_locks(a, c)?.context("pair --setup-code needs --owner-key")?;
    let r = c.pair_with_code(&code, name).map_err(|e| {
        // Decided on the typed refusal, never on the lock's words.
        if e.wrong_setup_code() {
            anyhow::Error::new(e).context(
                "the setup code does not match this lock's: re-read the label and try again (the lock counts wrong codes and makes you wait after 3)",
            )
        } else if e.not_supported() {
            anyhow::Error::new(e).context(
                "this lock does not pair by setup code (no secure channel): it is not a lock this client can own",
            )
        } else {
            e.into()
        }
    })?;
    let paired = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    file.insert(PairedLockRecord {
        target: a.target.clone(),
        device_key: r.device_key,
        name: (!name.is_empty()).then(|| name.to_owned()),
        paired,
    });
    file.save()
        .with_context(|| "the lock paired this key, but its record could not be saved: pair again once the file can be written")?;
    let lock_id = keyway_channel::key_id(&r.device_key);
    if !a.json {
        writeln!(
            out,
            "paired {} (key id {}) with the lock whose device key id is {}; the lock has {} owner(s)\nrecorded in {}: owner commands to {} now run in a session",
            k.display(),
            hex(&r.key_id),
            hex(&lock_id),
            r.owners,
            file.path.display(),
            a.target
        )?;
    }
    Ok(json!({
        "command": "pair",
        "key_id": hex(&r.key_id),
        "owners": r.owners,
        "device_key": hex(&r.device_key),
        "device_key_id": hex(&lock_id),
        "record": file.path,
    }))
}

/// A key id as `owners` prints it: 16 hex digits (either case).
fn parse_key_id(s: &str) -> Result<[u8; 8]> {
    let bad = || {
        anyhow::anyhow!(
            "KEYID {:?}: give the owner's key id as 16 hex digits, as `keyway device owners` prints it",
            printable(s, false)
        )
    };
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut id = [0u8; 8];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(id)
}

/// The owners as a table: key id, when paired (UTC), name; the key the
/// client signed with is marked.
fn print_owners(
    owners: &[super::OwnerInfo],
    me: Option<[u8; 8]>,
    out: &mut dyn Write,
) -> Result<()> {
    writeln!(out, "{:<16}  {:<19}  NAME", "KEY ID", "PAIRED (UTC)")?;
    for o in owners {
        let paired = o
            .paired
            .map_or_else(|| "unknown".to_owned(), keyway_vendor::log::utc_date_time);
        let name = if o.name.is_empty() {
            "-".to_owned()
        } else {
            printable(&o.name, false)
        };
        let mine = if me == Some(o.key_id) {
            "  (this key)"
        } else {
            ""
        };
        writeln!(out, "{}  {paired:<19}  {name}{mine}", hex(&o.key_id))?;
    }
    writeln!(out, "{} owner(s)", owners.len())?;
    Ok(())
}

fn with_command(name: &str, mut v: J) -> J {
    if let Some(o) = v.as_object_mut() {
        o.insert("command".into(), J::from(name));
    }
    v
}

fn smp_get<'a>(m: &'a Map, k: &str) -> Option<&'a ciborium::Value> {
    keyway_vendor::smp::get(m, k)
}

/// A text field of the lock's answer, made safe to print (one line).
fn text(m: &Map, k: &str) -> Option<String> {
    keyway_vendor::smp::get_text(m, k)
        .ok()
        .flatten()
        .map(|t| printable(t, false))
}

/// ` (REASON)` for an update summary with a `reason`, without a repeated
/// "postponed: ".
fn reason_suffix(m: &Map) -> String {
    text(m, "reason")
        .map(|r| format!(" ({})", r.strip_prefix("postponed: ").unwrap_or(&r)))
        .unwrap_or_default()
}

fn uint(m: &Map, k: &str) -> Option<u64> {
    keyway_vendor::smp::get_u64(m, k).ok().flatten()
}

/// `key: value` lines; text values without quotes.
fn print_map(m: &Map, out: &mut dyn Write) -> Result<()> {
    for (k, v) in map_to_json(m).as_object().into_iter().flatten() {
        match v {
            J::String(t) => writeln!(out, "{}: {}", printable(k, false), printable(t, false))?,
            v => writeln!(out, "{}: {v}", printable(k, false))?,
        }
    }
    Ok(())
}

fn print_notes(n: &Map, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "pending update {} (sequence {}), {}{}",
        text(n, "version").unwrap_or_else(|| "?".into()),
        uint(n, "sequence").map_or_else(|| "?".into(), |s| s.to_string()),
        text(n, "state").unwrap_or_else(|| "?".into()),
        text(n, "reason")
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    )?;
    if let Some(ciborium::Value::Array(cves)) = smp_get(n, "cves") {
        for c in cves {
            if let Some(m) = c.as_map() {
                writeln!(
                    out,
                    "fixes {} ({})",
                    text(m, "id").unwrap_or_else(|| "?".into()),
                    text(m, "severity").unwrap_or_else(|| "?".into())
                )?;
            }
        }
    }
    if let Some(b) = uint(n, "min_battery_mwh") {
        writeln!(out, "needs {b} mWh of battery to install")?;
    }
    if let Ok(Some(notes)) = keyway_vendor::smp::get_text(n, "notes") {
        writeln!(out, "\n{}", printable(notes, true))?;
    }
    Ok(())
}

/// An envelope `update` may upload.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Where it was read from.
    pub path: PathBuf,
    /// The file.
    pub bytes: Vec<u8>,
    /// Its SHA-256: the image hash the lock reports once it holds it.
    pub sha: [u8; 32],
}

impl Candidate {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Candidate> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let sha = Sha256::digest(&bytes).into();
        Ok(Candidate {
            path: path.to_owned(),
            bytes,
            sha,
        })
    }
}

/// Chooses which candidate to upload, and says why: among those the lock
/// does not already hold (by the image state's hashes) and that are newer
/// (by manifest sequence) than every candidate it holds in a bootable slot
/// (an older release would replace a newer pending one), a delta whose base
/// is the lock's running image (`running`: the Keyway group status's
/// `image`), else a full image (`keyway_vendor::delta::choose`). Without
/// `running` (a lock without the Keyway group), the first full image.
pub fn select_envelope(
    candidates: &[Candidate],
    images: &[ImageSlot],
    running: Option<&[u8; 32]>,
) -> Result<(usize, String)> {
    let held_slot = |c: &Candidate| images.iter().find(|i| i.hash == c.sha);
    let held = |c: &Candidate| held_slot(c).is_some();
    let sequence = |c: &Candidate| {
        keyway_suit::inspect_envelope(&c.bytes)
            .ok()
            .map(|i| i.manifest.sequence)
    };
    let newest_held = candidates
        .iter()
        .filter(|c| held_slot(c).is_some_and(|i| i.bootable))
        .filter_map(sequence)
        .max();
    let older = |c: &Candidate| newest_held.is_some_and(|h| sequence(c).is_some_and(|s| s <= h));
    let fresh: Vec<usize> = (0..candidates.len())
        .filter(|&i| !held(&candidates[i]) && !older(&candidates[i]))
        .collect();
    if fresh.is_empty() {
        // Say where and how: an old release left in the inactive slot
        // (below the floor, not bootable) is "held" too, and the owner
        // needs a newer one, not a retry.
        let held_as = |c: &Candidate| {
            images.iter().find(|i| i.hash == c.sha).map_or_else(
                || c.path.display().to_string(),
                |i| {
                    let state = if i.active {
                        "running"
                    } else if i.pending {
                        "pending for the next boot"
                    } else if i.bootable {
                        "bootable, not armed"
                    } else {
                        "not bootable: refused by the lock's checks (an older release?)"
                    };
                    format!(
                        "{} in slot {} ({}, {state})",
                        c.path.display(),
                        i.slot,
                        i.version
                    )
                },
            )
        };
        let names = |keep: &dyn Fn(&Candidate) -> bool| {
            candidates
                .iter()
                .filter(|c| keep(c))
                .map(held_as)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let older = names(&|c| !held(c));
        bail!(
            "the lock already holds {}: nothing to upload{}",
            names(&held),
            if older.is_empty() {
                String::new()
            } else {
                format!(" ({older}: older than what it holds)")
            }
        );
    }
    let bytes: Vec<&[u8]> = fresh.iter().map(|&i| &candidates[i].bytes[..]).collect();
    if let Some(r) = running {
        let (k, why) = keyway_vendor::delta::choose(&bytes, r)?;
        return Ok((fresh[k], why));
    }
    let full = bytes
        .iter()
        .position(|b| keyway_suit::inspect_envelope(b).is_ok_and(|e| e.delta.is_none()));
    Ok((
        fresh[full.unwrap_or(0)],
        "the lock does not name its running image: the first full image".to_owned(),
    ))
}

/// Whether the lock refused a delta's head because it applies to another
/// image than the one the lock runs: Keyway's typed refusal
/// `DeltaWrongBase` (`kw-rc` 7), never the reason's words. The full image
/// is the one to send then (if it is bad too, the lock refuses it with its
/// own reason).
fn refused_delta_base(e: &super::DeviceError) -> bool {
    matches!(
        e.refusal(),
        Some(keyway_smp::Refusal::DeltaWrongBase { .. })
    )
}

/// Whether an envelope's payload is a delta patch.
fn is_delta(envelope: &[u8]) -> bool {
    keyway_suit::inspect_envelope(envelope).is_ok_and(|i| i.delta.is_some())
}

/// The running image's SHA-256 from the Keyway group status (`image`);
/// `None` on a lock without the group, in recovery, or (status is for
/// owners) without an owner key: then the full image goes.
fn running_image<T: Transport>(
    c: &mut Client<T>,
) -> std::result::Result<Option<[u8; 32]>, super::DeviceError> {
    match c.running_image() {
        Ok(i) => Ok(i),
        Err(e) if e.not_supported() || (e.access_denied() && !c.sealed()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What [`push_update`] uploaded.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// The candidate uploaded (an index into the candidates).
    pub chosen: usize,
    /// Why that one, in words.
    pub why: String,
    /// The upload.
    pub upload: UploadReport,
    /// The lock refused the delta first chosen for its base
    /// ([`keyway_smp::Refusal::DeltaWrongBase`]) and the full image went.
    pub fell_back: bool,
}

/// Why [`push_update`] uploaded nothing (typed: the hub decides on the
/// variant).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No candidate fits: the lock holds them (or newer ones), or none
    /// applies to it ([`select_envelope`]'s sentence).
    #[error("{0}")]
    NothingToUpload(String),
    /// The lock refused the delta for its base and no full image was
    /// among the candidates.
    #[error("uploading {name} (give the full image too, to fall back to it): {error}")]
    NoFullImage {
        /// The delta's name.
        name: String,
        /// The lock's refusal.
        error: super::DeviceError,
    },
    /// A call failed (the lock's typed refusal, the channel, the link).
    #[error("{context}: {error}")]
    Device {
        /// What was being done.
        context: String,
        /// The client's typed error.
        error: super::DeviceError,
    },
}

/// The update's upload, shared by `keyway device update` and the hub's
/// link: reads the lock's image state and running image, picks the
/// candidate ([`select_envelope`]: a delta for the running image, else a
/// full image), uploads it with `progress(done, total)`, and falls back
/// to a full image when the lock refuses the delta for its base (its
/// typed `DeltaWrongBase`, never its words): then `progress` starts again
/// from 0 with the full image's total.
pub fn push_update<T: Transport>(
    c: &mut Client<T>,
    candidates: &[Candidate],
    progress: &mut dyn FnMut(u64, u64),
) -> std::result::Result<PushReport, PushError> {
    let device = |context: &str| {
        let context = context.to_owned();
        move |error| PushError::Device { context, error }
    };
    let images = c.image_state().map_err(device("reading the image state"))?;
    let running = running_image(c).map_err(device("reading the running image"))?;
    let (chosen, why) = select_envelope(candidates, &images, running.as_ref())
        .map_err(|e| PushError::NothingToUpload(format!("{e:#}")))?;
    let pick = &candidates[chosen];
    match c.upload(&pick.bytes, progress) {
        Ok(upload) => Ok(PushReport {
            chosen,
            why,
            upload,
            fell_back: false,
        }),
        // The lock refused the delta for its base (its image changed since
        // the status, or it names no image): fall back to a full image.
        Err(e) if is_delta(&pick.bytes) && refused_delta_base(&e) => {
            let full = candidates
                .iter()
                .position(|c| !images.iter().any(|i| i.hash == c.sha) && !is_delta(&c.bytes));
            let Some(full) = full else {
                return Err(PushError::NoFullImage {
                    name: pick.path.display().to_string(),
                    error: e,
                });
            };
            let why = format!("the lock refused the delta ({e}); falling back to the full image");
            let pick = &candidates[full];
            let upload = c
                .upload(&pick.bytes, progress)
                .map_err(device(&format!("uploading {}", pick.path.display())))?;
            Ok(PushReport {
                chosen: full,
                why,
                upload,
                fell_back: true,
            })
        }
        Err(error) => Err(PushError::Device {
            context: format!("uploading {}", pick.path.display()),
            error,
        }),
    }
}

fn progress_bar(len: u64, json: bool) -> indicatif::ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "upload {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// `keyway device update` on `c`: picks the candidate (a delta for the
/// running image, else a full image; back to the full image if the lock
/// refuses the delta for its base), uploads it with a progress bar, and
/// with `--install`/`--wait` asks for the test boot and waits. Returns the
/// command's JSON summary.
pub fn update<T: Transport>(
    c: &mut Client<T>,
    u: &UpdateArgs,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<J> {
    let candidates = u
        .envelopes
        .iter()
        .map(|p| Candidate::load(p))
        .collect::<Result<Vec<_>>>()?;
    let bar = progress_bar(0, json);
    let start = Instant::now();
    let pushed = push_update(c, &candidates, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    let (why, report, pick) = (pushed.why, pushed.upload, &candidates[pushed.chosen]);
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    if !json {
        writeln!(out, "chose {}: {why}", pick.path.display())?;
        writeln!(
            out,
            "uploaded {} ({} bytes{}) in {:.1} s, {} requests; image hash {}",
            pick.path.display(),
            report.len,
            if report.resumed_from > 0 {
                format!(", resumed at byte {}", report.resumed_from)
            } else {
                String::new()
            },
            secs,
            report.requests,
            hex(&pick.sha)
        )?;
    }
    let mut v = json!({
        "command": "update",
        "envelope": pick.path,
        "bytes": report.len,
        "resumed_from": report.resumed_from,
        "requests": report.requests,
        "seconds": secs,
        "hash": hex(&pick.sha),
        "chosen_because": why,
    });
    // The pending update as the Keyway group sees it (absent on a lock
    // without it).
    let pending = pending_update(c)?;
    if let Some(p) = &pending {
        if !json {
            writeln!(
                out,
                "pending: {}{}",
                text(p, "state").unwrap_or_else(|| "?".into()),
                reason_suffix(p)
            )?;
        }
        v["pending"] = map_to_json(p);
    }
    let mut postponed = None;
    if u.install {
        match c.image_test(&pick.sha) {
            Ok(_) => {
                // An owner's test boot (in a session) is its consent: the
                // lock resets into it by itself. A test in the presence
                // window only arms it, as MCUboot's does: the reset the
                // window allows once boots it.
                if !c.sealed() {
                    c.reset()?;
                }
                if !json {
                    writeln!(out, "test boot requested; the lock resets")?;
                }
            }
            // Consent given, but the lock's state does not allow the
            // install now (the bolt, the battery): it installs later.
            Err(super::DeviceError::Refused { rc: 6, reason, .. }) => {
                if !json {
                    writeln!(out, "{reason}")?;
                }
                postponed = Some(reason);
            }
            Err(e) => return Err(e.into()),
        }
    } else if !u.wait && !json {
        writeln!(
            out,
            "next: `keyway device --owner-key OWNER.key notes`, then `keyway device --owner-key OWNER.key consent accept` (or --install while the lock's presence window is open)"
        )?;
    }
    if let Some(reason) = postponed {
        v["outcome"] = J::from("postponed");
        v["message"] = J::from(reason);
    } else if u.wait {
        let outcome = wait_outcome(c, &pick.sha, Duration::from_secs(u.wait_seconds), err)?;
        if !json {
            writeln!(out, "{}", outcome.message)?;
        }
        v["outcome"] = J::from(outcome.state);
        v["message"] = J::from(outcome.message.clone());
        if matches!(outcome.state, "refused" | "timeout") {
            bail!("{}", outcome.message);
        }
    }
    Ok(v)
}

/// The Keyway group's pending-update summary, or `None` on a lock without
/// the group, without a pending update, or (status is for owners) without
/// an owner key.
fn pending_update<T: Transport>(c: &mut Client<T>) -> Result<Option<Map>> {
    match c.status() {
        Ok(s) => Ok(match smp_get(&s, "update") {
            Some(ciborium::Value::Map(m)) => Some(m.clone()),
            _ => None,
        }),
        Err(e) if e.not_supported() || (e.access_denied() && !c.sealed()) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// How an update ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `running`, `postponed`, `refused` or `timeout`.
    pub state: &'static str,
    /// In words.
    pub message: String,
}

/// How an update ended, typed ([`wait_for`]): what the hub decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited {
    /// The image runs, confirmed.
    Running {
        /// Its version.
        version: String,
        /// Its slot.
        slot: u64,
    },
    /// The lock's policy postponed the install; it installs by itself
    /// once the reason clears.
    Postponed {
        /// Why, typed (`None`: a lock that reports it only in words).
        why: Option<keyway_smp::kw::Postponement>,
        /// Why, in the lock's words (for people).
        reason: String,
    },
    /// The lock no longer holds the upload (refused, or the trial failed
    /// and it rolled back), or the owner refused it.
    Refused {
        /// In words.
        message: String,
    },
    /// No outcome within the time given.
    TimedOut,
}

/// The pending update's state and its typed postponement from a status
/// body (`None`: nothing pending).
fn pending_state(
    body: &[u8],
) -> std::result::Result<
    Option<(
        keyway_smp::kw::UpdateState,
        Option<keyway_smp::kw::Postponement>,
        String,
    )>,
    super::DeviceError,
> {
    use keyway_smp::Message as _;
    let st = keyway_smp::kw::Status::decode(body).map_err(|e| super::DeviceError::Malformed {
        what: "status".into(),
        why: e.to_string(),
    })?;
    Ok(st.update.map(|u| {
        (
            u.state,
            u.why,
            u.reason.map(|r| printable(r, false)).unwrap_or_default(),
        )
    }))
}

/// Polls the lock every `poll` until the image `sha` runs confirmed, or
/// the pending update is postponed or refused, or `limit` passes; shared
/// by `keyway device update --wait` and the hub's link. A lock that is
/// rebooting does not answer: that is waited out. `note` hears each new
/// pending state (`awaiting-consent`, `installing`).
pub fn wait_for<T: Transport>(
    c: &mut Client<T>,
    sha: &[u8; 32],
    limit: Duration,
    poll: Duration,
    note: &mut dyn FnMut(keyway_smp::kw::UpdateState),
) -> std::result::Result<Waited, super::DeviceError> {
    use keyway_smp::kw::UpdateState as S;
    let start = Instant::now();
    let mut last_note = None;
    loop {
        match c.image_state() {
            Ok(images) => {
                if let Some(i) = images.iter().find(|i| i.hash == sha[..])
                    && i.active
                    && i.confirmed
                {
                    return Ok(Waited::Running {
                        version: i.version.clone(),
                        slot: i.slot,
                    });
                }
                if !images.iter().any(|i| i.hash == sha[..]) {
                    return Ok(Waited::Refused {
                        message: "the lock no longer holds the upload: it refused it or the trial failed and it rolled back".into(),
                    });
                }
            }
            Err(super::DeviceError::Transport { .. }) => {}
            Err(e) => return Err(e),
        }
        let pending = match c.status_body() {
            Ok(b) => pending_state(&b)?,
            // Rebooting, or a lock without the group (or, without a
            // session, status is for owners): the image state decides.
            Err(super::DeviceError::Transport { .. }) => None,
            Err(e) if e.not_supported() || (e.access_denied() && !c.sealed()) => None,
            Err(e) => return Err(e),
        };
        if let Some((state, why, reason)) = pending {
            match state {
                S::Postponed => return Ok(Waited::Postponed { why, reason }),
                S::Refused => {
                    return Ok(Waited::Refused {
                        message: format!(
                            "the owner refused the update{}",
                            if reason.is_empty() {
                                String::new()
                            } else {
                                format!(": {reason}")
                            }
                        ),
                    });
                }
                s if last_note != Some(s) => {
                    note(s);
                    last_note = Some(s);
                }
                _ => {}
            }
        }
        if start.elapsed() >= limit {
            return Ok(Waited::TimedOut);
        }
        std::thread::sleep(poll);
    }
}

/// Polls the lock until the image `sha` runs confirmed, or the pending
/// update is postponed or refused, or `limit` passes ([`wait_for`], in
/// words).
pub fn wait_outcome<T: Transport>(
    c: &mut Client<T>,
    sha: &[u8; 32],
    limit: Duration,
    err: &mut dyn Write,
) -> Result<Outcome> {
    let waited = wait_for(c, sha, limit, Duration::from_millis(200), &mut |s| {
        let _ = writeln!(err, "waiting: update {}", s.as_str());
    })?;
    Ok(match waited {
        Waited::Running { version, slot } => Outcome {
            state: "running",
            message: format!("the lock runs {version} (slot {slot}), confirmed"),
        },
        Waited::Postponed { reason, .. } => Outcome {
            state: "postponed",
            message: format!(
                "postponed: {}; the lock installs by itself once that holds",
                reason.strip_prefix("postponed: ").unwrap_or(&reason)
            ),
        },
        Waited::Refused { message } => Outcome {
            state: "refused",
            message,
        },
        Waited::TimedOut => Outcome {
            state: "timeout",
            message: format!(
                "no outcome after {} s: the update still waits for consent or for its install",
                limit.as_secs()
            ),
        },
    })
}
