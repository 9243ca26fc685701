//! `keyway hub`: the commands.
//!
//! * `keyway hub serve --data DIR`: the daemon. It opens the store (a
//!   SQLite file in DIR, or `--store postgres://…`), makes or reads the
//!   API token (`DIR/api-token`, mode 0600), syncs the vendor's TUF
//!   repository on a schedule when one is configured, runs the engine's
//!   tick and serves the JSON API; its first line is the address and the
//!   token. SIGINT and SIGTERM stop it gracefully; a SIGKILL loses
//!   nothing, because every store call is durable before it returns.
//! * `keyway hub import PATH`: an offline bundle (a USB stick), verified
//!   as a TUF sync is, with no network: one line per item imported or
//!   refused, with the reason.
//! * `keyway hub demo` and plain `keyway hub`: the demo house
//!   ([`super::demo`]).
//!
//! The API serves on loopback unless `--listen-insecure-any-address`
//! says otherwise: the token is the only thing between the LAN and the
//! owner's consent.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Subcommand};

/// Arguments of `keyway hub`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HubArgs {
    /// What to do; with none, the demo house with its defaults.
    #[command(subcommand)]
    pub command: Option<HubCommand>,
}

/// `keyway hub` subcommands.
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Run the hub: its store, its TUF sync, its locks, its JSON API.
    Serve(ServeArgs),
    /// Import an offline bundle (`keyway publish --bundle`), from a
    /// directory or a mounted USB stick, with no network.
    Import(ImportArgs),
    /// A demo house: simulated locks, a local vendor repository, and a hub
    /// that manages them, all on loopback; runs until stopped.
    Demo(DemoArgs),
}

/// Arguments of `keyway hub serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The hub's directory: its SQLite store, its API token.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Where the JSON API listens (port 0: any free port; the first line
    /// says which).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Let the API listen beyond loopback, where every host that reaches
    /// it may try the token.
    #[arg(long)]
    pub listen_insecure_any_address: bool,
    /// The store: a PostgreSQL URL (postgres://…) for hubs sharing one
    /// fleet view; default: SQLite in --data.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// The vendor's TUF repository (its metadata and targets base URL).
    #[arg(long, value_name = "URL", requires = "tuf_root")]
    pub tuf_url: Option<String>,
    /// The repository's trusted root metadata (root.json), shipped with
    /// the hub.
    #[arg(long, value_name = "ROOT.json", requires = "tuf_url")]
    pub tuf_root: Option<PathBuf>,
    /// Seconds between TUF syncs.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub sync_every: u64,
    /// A lock model to add (or replace): its class name, with
    /// --vendor-domain and its --trust anchors.
    #[arg(long = "model", value_name = "CLASS", requires_all = ["vendor_domain", "trust"])]
    pub model: Option<String>,
    /// The model's vendor domain (`keyway sign --vendor-domain`).
    #[arg(long, value_name = "DOMAIN", requires = "model")]
    pub vendor_domain: Option<String>,
    /// A root public key (SPKI PEM) the model's locks trust (repeatable).
    #[arg(long, value_name = "ROOT.pub", requires = "model")]
    pub trust: Vec<PathBuf>,
    /// How many of the --trust keys must sign.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threshold: u8,
}

/// Arguments of `keyway hub import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The bundle: a directory, or a mounted stick's.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// The hub's directory (its SQLite store).
    #[arg(long, value_name = "DIR", default_value = "keyway-hub-data")]
    pub data: PathBuf,
    /// The store, if not SQLite in --data (postgres://…).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `keyway hub demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Simulated locks in the house.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub locks: usize,
    /// Where the hub's API listens (loopback).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder for the house's keys, releases, repository, locks and hub
    /// (emptied first).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            locks: 3,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            dir: None,
        }
    }
}

/// Runs `keyway hub`.
pub fn run(a: HubArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    match a.command {
        None => super::demo::run(&DemoArgs::default(), out, err),
        Some(HubCommand::Demo(d)) => super::demo::run(&d, out, err),
        Some(HubCommand::Serve(s)) => serve(&s, out, err),
        Some(HubCommand::Import(i)) => import(&i, out),
    }
}

/// Refuses an API address beyond loopback unless `insecure`.
pub fn check_listen(addr: SocketAddr, insecure: bool) -> Result<()> {
    if addr.ip().is_loopback() || insecure {
        return Ok(());
    }
    bail!(
        "--listen {addr}: the hub's API serves on loopback (127.0.0.1, ::1) by default, because \
         anyone who reaches it may try the token that consents to updates; to serve every host \
         that can reach {} anyway, add --listen-insecure-any-address (and put TLS in front)",
        addr.ip()
    )
}

/// The API token's file in the hub's directory.
pub const TOKEN_FILE: &str = "api-token";

/// Reads the hub's API token from `dir`, or makes one (32 random bytes,
/// hex) in a file created 0600 before it holds a byte. Refuses a token
/// file others may read.
pub fn api_token(dir: &Path) -> Result<String> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let path = dir.join(TOKEN_FILE);
    match std::fs::symlink_metadata(&path) {
        Ok(m) => {
            if !m.is_file() {
                bail!("{}: not a regular file; refused", path.display());
            }
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "{}: others may read the API token (mode {mode:03o}): chmod 600 it, or delete it \
                     for a new token",
                    path.display()
                );
            }
            let t = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let t = t.trim();
            if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "{}: not an API token (64 hex digits); delete it for a new token",
                    path.display()
                );
            }
            Ok(t.to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).map_err(|e| anyhow!("the API token needs randomness: {e}"))?;
            let t = keyway::keys::hex(&b);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(format!("{t}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(t)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Makes the hub's directory (0700: the store and the token are the
/// owner's).
pub fn data_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))
}

/// The first line of `keyway hub serve` and `keyway hub demo`: the API's
/// address and its token.
pub fn first_line(addr: SocketAddr, token: &str) -> String {
    format!("keyway hub: http://{addr}/ token {token}")
}

/// Reads [`first_line`] back: the API's base URL and the token.
pub fn parse_first_line(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("keyway hub: ")?;
    let (url, token) = rest.split_once(" token ")?;
    (url.starts_with("http://") && !token.is_empty() && !token.contains(' '))
        .then(|| (url.trim_end_matches('/').to_owned(), token.to_owned()))
}

fn serve(a: &ServeArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    check_listen(a.listen, a.listen_insecure_any_address)?;
    let _ = (out, err);
    Err(anyhow!(
        "keyway hub serve: the hub's engine is not wired in yet"
    ))
}

fn import(a: &ImportArgs, out: &mut dyn Write) -> Result<()> {
    let _ = out;
    Err(anyhow!(
        "keyway hub import {}: the bundle reader is not wired in yet",
        a.path.display()
    ))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM: the hub's graceful stop.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_reads_back() {
        let t = "ab".repeat(32);
        let l = first_line("127.0.0.1:8080".parse().unwrap(), &t);
        assert_eq!(
            parse_first_line(&l),
            Some(("http://127.0.0.1:8080".to_owned(), t))
        );
        assert_eq!(parse_first_line("keyway hub: ftp://x token y"), None);
    }

    #[test]
    fn listen_is_loopback_unless_told() {
        assert!(check_listen("127.0.0.1:1".parse().unwrap(), false).is_ok());
        assert!(check_listen("[::1]:1".parse().unwrap(), false).is_ok());
        let e = check_listen("0.0.0.0:8080".parse().unwrap(), false).unwrap_err();
        assert!(
            e.to_string().contains("--listen-insecure-any-address"),
            "{e}"
        );
        assert!(check_listen("0.0.0.0:8080".parse().unwrap(), true).is_ok());
    }

    #[test]
    fn the_token_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let t = api_token(d.path()).unwrap();
        assert_eq!(t.len(), 64);
        let mode = std::fs::metadata(d.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(api_token(d.path()).unwrap(), t);
        std::fs::set_permissions(
            d.path().join(TOKEN_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let e = api_token(d.path()).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
}
