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
//!
//! Here: the arguments and [`run`]; `serve` the daemon, `import` the
//! offline bundle, `data` the data directory (token, first line, store).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Subcommand};

use keyway_hub::api::{Api, BundleRead, ReleasesIn, SourceError};
use keyway_hub::engine::{Hub, HubConfig, HubError, Incoming, IngestReport, SystemClock};
use keyway_hub::link::{Connector, LinkError, LockLink};
use keyway_hub::model::{LockRecord, ModelAnchors, ReleaseOrigin};
use keyway_hub::store::{PgStore, SqliteStore, Store, StoreError};
use keyway_tuf::jiff::Timestamp;
use keyway_tuf::{Mirror, Source};

use super::link::{HubIdentity, UdpConnector};

mod data;
mod import;
mod serve;

pub use data::*;
use import::import;
pub use import::{BundleReader, stale_warning};
use serve::serve;
pub use serve::{NoLocks, Setup, check_listen, serve_with, shutdown_signal, sync_tuf};

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
    Demo(HouseDemoArgs),
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
    /// The vendor's TUF repository (its metadata and targets base URL),
    /// synced every --sync-every seconds.
    #[arg(long, value_name = "URL")]
    pub tuf_url: Option<String>,
    /// The store and the TUF root.
    #[command(flatten)]
    pub stores: StoreArgs,
    /// Seconds between TUF syncs.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub sync_every: u64,
    /// Seconds between the engine's ticks (pending installs re-checked,
    /// audit logs fetched when due, opted-in fixes installed).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub tick_every: u64,
    /// Locks updated at once (a rollout's wave, a tick).
    #[arg(long, value_name = "K", default_value_t = 8)]
    pub concurrency: usize,
    /// Seconds between audit-log fetches of each lock.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub log_every: u64,
    /// Home Assistant over MQTT.
    #[command(flatten)]
    pub mqtt: MqttArgs,
    /// A lock model to add.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// What `hub serve` and `hub import` open in the hub's --data directory:
/// the store, and the TUF mirror that --tuf-root pins.
#[derive(Debug, Args, Clone, Default)]
pub struct StoreArgs {
    /// The store: a PostgreSQL URL (postgres://…) for hubs sharing one
    /// fleet view; default: SQLite in --data.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// The vendor's TUF root metadata (root.json), shipped with the hub:
    /// pinned if the hub has none pinned yet (later roots come through the
    /// chain); TUF syncs and offline bundles are verified against the pin.
    #[arg(long, value_name = "ROOT.json")]
    pub tuf_root: Option<PathBuf>,
}

/// Home Assistant's MQTT discovery, from the command line (`hub serve`
/// and `hub demo`).
#[derive(Debug, Args, Clone)]
pub struct MqttArgs {
    /// Home Assistant: publish every lock over MQTT discovery to this
    /// broker (mqtt://HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// The broker's user name.
    #[arg(long, value_name = "USER", requires = "mqtt")]
    pub mqtt_user: Option<String>,
    /// A file holding the broker's password (one line).
    #[arg(long, value_name = "FILE", requires = "mqtt_user")]
    pub mqtt_password_file: Option<PathBuf>,
    /// Home Assistant's discovery prefix.
    #[arg(long, value_name = "PREFIX", default_value = "homeassistant")]
    pub mqtt_prefix: String,
}

impl Default for MqttArgs {
    fn default() -> Self {
        MqttArgs {
            mqtt: None,
            mqtt_user: None,
            mqtt_password_file: None,
            mqtt_prefix: "homeassistant".into(),
        }
    }
}

impl MqttArgs {
    /// The bridge's options (`None`: no --mqtt); `addr` is the hub's own
    /// address, the base of each release's `release_url`.
    pub fn options(&self, addr: SocketAddr) -> Result<Option<keyway_hub::mqtt::MqttOptions>> {
        let Some(url) = &self.mqtt else {
            return Ok(None);
        };
        let mut o = keyway_hub::mqtt::MqttOptions::from_url(url)
            .map_err(|e| anyhow!("--mqtt {url}: {e}"))?
            .with_prefix(&self.mqtt_prefix)
            .map_err(|e| anyhow!("--mqtt-prefix {}: {e}", self.mqtt_prefix))?;
        if let (Some(u), Some(f)) = (&self.mqtt_user, &self.mqtt_password_file) {
            let pw = std::fs::read_to_string(f)
                .with_context(|| format!("--mqtt-password-file {}", f.display()))?;
            o.credentials = Some((u.clone(), pw.trim_end_matches(['\r', '\n']).to_string()));
        } else if let Some(u) = &self.mqtt_user {
            bail!("--mqtt-user {u}: give the broker's password with --mqtt-password-file FILE");
        }
        o.release_base = Some(format!("http://{addr}"));
        Ok(Some(o))
    }
}

/// A lock model's anchors, from the command line.
#[derive(Debug, Args, Clone, Default)]
pub struct ModelArgs {
    /// A lock model to add (or replace): its class name, with
    /// --vendor-domain and its --trust anchors; the hub keeps it.
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

impl ModelArgs {
    /// The model's anchors, the --trust files read (`None`: no --model).
    pub fn anchors(&self) -> Result<Option<ModelAnchors>> {
        let Some(class) = &self.model else {
            return Ok(None);
        };
        let trust_pems = self
            .trust
            .iter()
            .map(|p| {
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading --trust {}", p.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(ModelAnchors {
            class: class.clone(),
            vendor_domain: self.vendor_domain.clone().unwrap_or_default(),
            trust_pems,
            threshold: self.threshold,
        }))
    }
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
    /// The store and the TUF root.
    #[command(flatten)]
    pub stores: StoreArgs,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
    /// A lock model to add first.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Arguments of `keyway hub demo`.
#[derive(Debug, Args, Clone)]
pub struct HouseDemoArgs {
    /// Simulated locks in the house.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub locks: usize,
    /// Where the hub's API listens (loopback).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder for the house's keys, releases, repository, locks and hub
    /// (emptied first, if a previous demo made it; any other non-empty
    /// folder is refused).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Home Assistant over MQTT.
    #[command(flatten)]
    pub mqtt: MqttArgs,
}

impl Default for HouseDemoArgs {
    fn default() -> Self {
        HouseDemoArgs {
            locks: 3,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            dir: None,
            mqtt: MqttArgs::default(),
        }
    }
}

/// Runs `keyway hub`.
pub fn run(a: HubArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    match a.command {
        None => super::demo::run(&HouseDemoArgs::default(), out, err),
        Some(HubCommand::Demo(d)) => super::demo::run(&d, out, err),
        Some(HubCommand::Serve(s)) => serve(&s, out, err),
        Some(HubCommand::Import(i)) => import(&i, out),
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
