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
    /// The vendor's TUF repository (its metadata and targets base URL),
    /// synced every --sync-every seconds.
    #[arg(long, value_name = "URL")]
    pub tuf_url: Option<String>,
    /// The repository's trusted root metadata (root.json), shipped with
    /// the hub: pinned on first use (later roots come through the chain);
    /// offline bundles are verified against it too.
    #[arg(long, value_name = "ROOT.json")]
    pub tuf_root: Option<PathBuf>,
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
    /// The store, if not SQLite in --data (postgres://…).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// The vendor's TUF root (root.json) to trust, if the hub has none
    /// pinned yet (`hub serve --tuf-root` pins it).
    #[arg(long, value_name = "ROOT.json")]
    pub tuf_root: Option<PathBuf>,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
    /// A lock model to add first.
    #[command(flatten)]
    pub model: ModelArgs,
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
    /// (emptied first, if a previous demo made it; any other non-empty
    /// folder is refused).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Home Assistant over MQTT.
    #[command(flatten)]
    pub mqtt: MqttArgs,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
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
            let t = keyway_vendor::keys::hex(&b);
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

/// The SQLite store's file in the hub's directory.
pub const SQLITE_FILE: &str = "hub.sqlite";

/// The TUF mirror's directory in the hub's directory.
pub const TUF_DIR: &str = "tuf";

/// Where the store lives, for messages: the SQLite file, or the
/// PostgreSQL URL without its password.
#[derive(Debug, Clone)]
pub enum StoreAt {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(String),
}

/// Opens the store: PostgreSQL for a `postgres://` URL, else SQLite in
/// `data`. Call it outside the async runtime (the PostgreSQL client is
/// synchronous).
pub fn open_store(url: Option<&str>, data: &Path) -> Result<(Arc<dyn Store>, StoreAt)> {
    match url {
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            let s = PgStore::connect(u).map_err(|e| anyhow!("--store: {e}"))?;
            Ok((Arc::new(s), StoreAt::Postgres(redact(u))))
        }
        Some(u) => bail!(
            "--store {}: a PostgreSQL URL (postgres://…) or nothing (SQLite in --data)",
            redact(u)
        ),
        None => {
            let path = data.join(SQLITE_FILE);
            let s = SqliteStore::open(&path)
                .map_err(|e| store_error(e, &StoreAt::Sqlite(path.clone())))?;
            Ok((Arc::new(s), StoreAt::Sqlite(path)))
        }
    }
}

/// A URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The mount point and device of the filesystem holding `path`, from
/// `/proc/self/mounts` (the longest mount point that prefixes it).
pub fn disk_of(path: &Path) -> String {
    let p = path
        .canonicalize()
        .or_else(|_| {
            path.parent()
                .map_or_else(|| Ok(path.to_owned()), Path::canonicalize)
        })
        .unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let dev = f.next()?;
            let at = f.next()?.replace("\\040", " ");
            p.starts_with(&at).then_some((at, dev.to_owned()))
        })
        .max_by_key(|(at, _)| at.len())
        .map_or_else(
            || format!("the disk holding {}", p.display()),
            |(at, dev)| format!("the disk mounted at {at} ({dev})"),
        )
}

/// A store error as a sentence; a full disk names the disk.
pub fn store_error(e: StoreError, at: &StoreAt) -> anyhow::Error {
    match (&e, at) {
        (StoreError::Full(why), StoreAt::Sqlite(path)) => anyhow!(
            "{} is full: the hub's store {} could not grow ({why}); the call that hit it wrote \
             nothing and what was stored before is intact: free space there and try again",
            disk_of(path),
            path.display()
        ),
        (_, StoreAt::Sqlite(path)) => anyhow!("the hub's store {}: {e}", path.display()),
        (_, StoreAt::Postgres(url)) => anyhow!("the hub's store {url}: {e}"),
    }
}

/// A hub error as a sentence; a full store names the disk.
pub fn hub_error(e: HubError, at: &StoreAt) -> anyhow::Error {
    match e {
        HubError::Store(s) => store_error(s, at),
        e => anyhow!(e),
    }
}

/// The connector of a command that never talks to a lock (`hub import`):
/// every connection is refused, saying why.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLocks;

impl Connector for NoLocks {
    fn connect(&self, lock: &LockRecord) -> Result<Box<dyn LockLink>, LinkError> {
        Err(LinkError::Unreachable {
            address: format!("{} (keyway hub import talks to no lock)", lock.address),
        })
    }
}

/// The hub's TUF mirror in `data`: the pinned root there, or `root`
/// pinned now (TUF's bootstrap: later roots come through the chain).
pub fn mirror(data: &Path, root: Option<&Path>) -> Result<Option<Mirror>> {
    let dir = data.join(TUF_DIR);
    match Mirror::open(&dir) {
        Ok(m) => Ok(Some(m)),
        Err(_) => match root {
            Some(r) => {
                let bytes = std::fs::read(r)
                    .with_context(|| format!("reading --tuf-root {}", r.display()))?;
                Mirror::init(&dir, &bytes)
                    .map(Some)
                    .map_err(|e| anyhow!("--tuf-root {}: {e}", r.display()))
            }
            None => Ok(None),
        },
    }
}

/// One TUF sync (`Mirror::sync`: one verified refresh, then the targets
/// the hub does not hold yet, each verified against its signed length
/// and hash), handed to the engine's intake; the freshness recorded
/// either way.
pub async fn sync_tuf(hub: &Arc<Hub>, mirror: &Mirror, url: &str) -> Result<IngestReport> {
    let now = Timestamp::now();
    let result = async {
        let h = Arc::clone(hub);
        let held: std::collections::HashSet<String> =
            tokio::task::spawn_blocking(move || h.store().releases(None))
                .await??
                .into_iter()
                .map(|r| r.digest.to_hex())
                .collect();
        // One refresh, then the targets the hub does not hold yet.
        let synced = mirror
            .sync(Source::http(url), |t| !held.contains(&t.sha256), now)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let mut incoming = Vec::new();
        let mut failed = Vec::new();
        for (t, r) in synced.downloaded {
            match r {
                Ok(bytes) => incoming.push(Incoming {
                    target: t.name,
                    bytes,
                    origin: ReleaseOrigin::Tuf {
                        url: url.to_owned(),
                    },
                }),
                Err(e) => failed.push((t.name, e.to_string())),
            }
        }
        let h = Arc::clone(hub);
        let mut report = tokio::task::spawn_blocking(move || h.ingest(incoming)).await??;
        for (target, why) in failed {
            report.refused.push(keyway_hub::engine::Refused {
                message: format!("the TUF download failed: {why}"),
                reason: keyway_hub::engine::intake::Refusal::Malformed {
                    check: "tuf".into(),
                    message: why,
                },
                target,
            });
        }
        Ok::<_, anyhow::Error>((
            report,
            synced.versions.timestamp,
            synced.timestamp_expires.as_second(),
        ))
    }
    .await;
    let h = Arc::clone(hub);
    let url = url.to_owned();
    match result {
        Ok((report, v, exp)) => {
            tokio::task::spawn_blocking(move || h.record_tuf_fresh(&url, v, exp)).await??;
            Ok(report)
        }
        Err(e) => {
            let why = format!("{e:#}");
            tokio::task::spawn_blocking(move || h.record_tuf_error(&url, &why)).await??;
            Err(e)
        }
    }
}

/// Runs once the hub is up and before its first line (the demo house
/// adds and pairs its locks); returns what to print after the first line.
pub type Setup = Box<dyn FnOnce(Arc<Hub>, SocketAddr, String) -> Result<String> + Send>;

fn serve(a: &ServeArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    serve_with(a, out, err, None)
}

/// `keyway hub serve`, with the demo's `setup` (which also waits for the
/// first TUF sync before the first line).
pub fn serve_with(
    a: &ServeArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    setup: Option<Setup>,
) -> Result<()> {
    check_listen(a.listen, a.listen_insecure_any_address)?;
    data_dir(&a.data)?;
    let token = api_token(&a.data)?;
    let (store, at) = open_store(a.store.as_deref(), &a.data)?;
    let config = HubConfig {
        concurrency: a.concurrency.max(1),
        log_interval_secs: i64::try_from(a.log_every).unwrap_or(i64::MAX),
        ..HubConfig::default()
    };
    let identity = HubIdentity::load_or_create(&a.data).map_err(|e| anyhow!("{e}"))?;
    let hub = Arc::new(Hub::new(
        store,
        Arc::new(UdpConnector::new(identity)),
        Arc::new(SystemClock),
        config,
    ));
    if let Some(m) = a.model.anchors()? {
        hub.put_model(&m).map_err(|e| hub_error(e, &at))?;
    }
    let tuf = match (&a.tuf_url, mirror(&a.data, a.tuf_root.as_deref())?) {
        (Some(url), Some(m)) => Some((url.clone(), m)),
        (Some(url), None) => bail!(
            "--tuf-url {url}: the hub trusts no TUF root yet: give the vendor's root.json with --tuf-root"
        ),
        (None, _) => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the hub's runtime")?;
    let r = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen", a.listen))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            writeln!(
                err,
                "WARNING: the hub's API listens on {addr} (--listen-insecure-any-address): every host that reaches it may try the token"
            )?;
        }
        // Home Assistant: the bridge runs until the runtime stops.
        let _mqtt = match a.mqtt.options(addr)? {
            Some(o) => {
                writeln!(
                    err,
                    "keyway hub: Home Assistant discovery on {} (prefix {})",
                    a.mqtt.mqtt.as_deref().unwrap_or_default(),
                    a.mqtt.mqtt_prefix
                )?;
                Some(keyway_hub::mqtt::spawn(Arc::clone(&hub), o))
            }
            None => None,
        };
        if let Some((url, m)) = tuf {
            let (hub, every) = (Arc::clone(&hub), Duration::from_secs(a.sync_every.max(1)));
            let first = if setup.is_some() {
                // The demo: its releases are in before its first line.
                let r = sync_tuf(&hub, &m, &url).await.with_context(|| format!("syncing {url}"))?;
                writeln!(
                    err,
                    "keyway hub: TUF sync of {url}: {} imported, {} refused",
                    r.imported.len(),
                    r.refused.len()
                )?;
                every
            } else {
                Duration::ZERO
            };
            tokio::spawn(async move {
                tokio::time::sleep(first).await;
                loop {
                    match sync_tuf(&hub, &m, &url).await {
                        Ok(r) => eprintln!(
                            "keyway hub: TUF sync of {url}: {} imported, {} already held, {} refused",
                            r.imported.len(),
                            r.already_held.len(),
                            r.refused.len()
                        ),
                        Err(e) => eprintln!("keyway hub: TUF sync of {url} failed: {e:#}"),
                    }
                    tokio::time::sleep(every).await;
                }
            });
        }
        {
            let (hub, every) = (Arc::clone(&hub), Duration::from_secs(a.tick_every.max(1)));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let h = Arc::clone(&hub);
                    match tokio::task::spawn_blocking(move || h.tick()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => eprintln!("keyway hub: tick: {e}"),
                        Err(e) => eprintln!("keyway hub: tick: {e}"),
                    }
                }
            });
        }
        let guide = match setup {
            Some(f) => {
                let (h, t) = (Arc::clone(&hub), token.clone());
                tokio::task::spawn_blocking(move || f(h, addr, t)).await??
            }
            None => String::new(),
        };
        writeln!(out, "{}", first_line(addr, &token))?;
        write!(out, "{guide}")?;
        out.flush()?;
        {
            // Rollouts a previous run left mid-way (a SIGKILL) go on.
            let hub = Arc::clone(&hub);
            tokio::task::spawn_blocking(move || {
                if let Err(e) = hub.resume_rollouts() {
                    eprintln!("keyway hub: resuming rollouts: {e}");
                }
            });
        }
        let api = Api {
            hub: Arc::clone(&hub),
            releases_in: Some(Arc::new(BundleReader::new(&a.data))),
            token,
        };
        // The JSON API and the web UI on one port (the UI's pages call the
        // same actions as the API). A non-loopback address is one the UI's
        // DNS-rebinding guard must accept as a `Host`.
        let mut web = keyway_hub::web::WebOptions::default();
        if !addr.ip().is_loopback() {
            web.allowed_hosts.push(addr.to_string());
        }
        axum::serve(listener, keyway_hub::web::app(api, web))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving the API")
    });
    // A push in flight finishes its current step; consents are durable.
    rt.shutdown_timeout(Duration::from_secs(10));
    r
}

fn import(a: &ImportArgs, out: &mut dyn Write) -> Result<()> {
    data_dir(&a.data)?;
    let (store, at) = open_store(a.store.as_deref(), &a.data)?;
    let hub = Hub::new(
        store,
        Arc::new(NoLocks),
        Arc::new(SystemClock),
        HubConfig::default(),
    );
    if let Some(m) = a.model.anchors()? {
        hub.put_model(&m).map_err(|e| hub_error(e, &at))?;
    }
    let Some(mirror) = mirror(&a.data, a.tuf_root.as_deref())? else {
        bail!(
            "{}: the hub trusts no TUF root yet: give the vendor's root.json with --tuf-root (or run `keyway hub serve --tuf-root` once)",
            a.data.display()
        );
    };
    drop(mirror);
    let read = match BundleReader::new(&a.data).verify(&a.path) {
        Ok(r) => r,
        Err(e) => bail!("{e}"),
    };
    if read.versions.is_none() && read.accepted.is_empty() {
        // Nothing verified: every refusal, one a line, then the error.
        if a.json {
            let v = serde_json::json!({
                "bundle": a.path.display().to_string(),
                "metadata_verified": false,
                "imported": [],
                "already_held": [],
                "refused": read.refused.iter().map(tuf_refusal_json).collect::<Vec<_>>(),
            });
            writeln!(out, "{v}")?;
        } else {
            for r in &read.refused {
                writeln!(out, "refused {}: {r}", refusal_target(r))?;
            }
            writeln!(out, "{}: 0 imported, 0 already held", a.path.display())?;
        }
        bail!(
            "{}: nothing could be read: its TUF metadata did not verify against the hub's root (the reasons are above)",
            a.path.display()
        );
    }
    let staleness = read.staleness;
    let tuf_refused = read.refused;
    let origin = ReleaseOrigin::Bundle {
        path: a.path.display().to_string(),
    };
    let incoming = read
        .accepted
        .into_iter()
        .map(|t| Incoming {
            target: t.name,
            bytes: t.envelope,
            origin: origin.clone(),
        })
        .collect();
    let report = hub.ingest(incoming).map_err(|e| hub_error(e, &at))?;
    if a.json {
        let mut v = serde_json::json!({
            "bundle": a.path.display().to_string(),
            "metadata_verified": true,
            "imported": report.imported,
            "already_held": report.already_held,
            "refused": tuf_refused
                .iter()
                .map(tuf_refusal_json)
                .chain(report.refused.iter().map(|r| serde_json::json!({
                    "target": r.target, "stage": "envelope", "reason": r.reason, "message": r.message
                })))
                .collect::<Vec<_>>(),
        });
        if staleness.is_stale() {
            v["stale"] = serde_json::json!({
                "timestamp_expired_at": staleness.timestamp_expired_at.map(|t| t.to_string()),
                "snapshot_expired_at": staleness.snapshot_expired_at.map(|t| t.to_string()),
            });
        }
        writeln!(out, "{v}")?;
    } else {
        if let Some(t) = staleness.timestamp_expired_at {
            writeln!(out, "{}", stale_warning(t))?;
        }
        for i in &report.imported {
            writeln!(
                out,
                "imported {}: {} {} (sequence {}), {}",
                i.target, i.class, i.version, i.sequence, i.digest
            )?;
        }
        for t in &report.already_held {
            writeln!(out, "already held {t}")?;
        }
        for r in &tuf_refused {
            writeln!(out, "refused {}: {r}", refusal_target(r))?;
        }
        for r in &report.refused {
            writeln!(out, "refused {}: {}", r.target, r.message)?;
        }
        writeln!(
            out,
            "{}: {} imported, {} already held, {} refused",
            a.path.display(),
            report.imported.len(),
            report.already_held.len(),
            tuf_refused.len() + report.refused.len()
        )?;
    }
    Ok(())
}

/// Reads offline bundles for the hub (`keyway hub import` and the API's
/// `POST /api/imports`): the TUF metadata chain verified against the
/// hub's pinned root by `keyway-tuf`, then each target against its signed
/// length and hash; what passes goes to the engine's intake, which
/// verifies each envelope against its model's anchors.
#[derive(Debug, Clone)]
pub struct BundleReader {
    data: PathBuf,
}

impl BundleReader {
    /// The reader for the hub whose directory is `data` (its mirror in
    /// `data/tuf`).
    pub fn new(data: &Path) -> BundleReader {
        BundleReader {
            data: data.to_owned(),
        }
    }

    /// Verifies the bundle at `path` against the hub's pinned root:
    /// keyway-tuf's whole report (what verified, each refusal typed, the
    /// staleness of an old stick). `Err` when there is no bundle there or
    /// no pinned root.
    pub fn verify(&self, path: &Path) -> Result<keyway_tuf::BundleReport, SourceError> {
        if !path.is_dir() {
            return Err(SourceError::NotFound(path.display().to_string()));
        }
        let mirror = Mirror::open(&self.data.join(TUF_DIR)).map_err(|_| {
            SourceError::Refused(format!(
                "the hub at {} trusts no TUF root yet: give the vendor's root.json (--tuf-root)",
                self.data.display()
            ))
        })?;
        Ok(mirror.import_bundle(path, Timestamp::now()))
    }

    /// Reads `path` for the API; `Err` when nothing could be read at all
    /// (no bundle there, no pinned root, or metadata that does not
    /// verify: the error then names the first refusal and how many more).
    pub fn read(&self, path: &Path) -> Result<BundleRead, SourceError> {
        let report = self.verify(path)?;
        if report.versions.is_none() && report.accepted.is_empty() {
            // `SourceError::Refused` holds one sentence (keyway-hub's
            // type); `keyway hub import` prints every refusal.
            let first = report
                .refused
                .first()
                .map(|r| format!("{}: {r}", refusal_target(r)))
                .unwrap_or_else(|| "its metadata did not verify".into());
            let more = report.refused.len().saturating_sub(1);
            return Err(SourceError::Refused(if more == 0 {
                first
            } else {
                format!("{first} (and {more} more refusals: `keyway hub import` lists them)")
            }));
        }
        let origin = ReleaseOrigin::Bundle {
            path: path.display().to_string(),
        };
        Ok(BundleRead {
            incoming: report
                .accepted
                .into_iter()
                .map(|t| Incoming {
                    target: t.name,
                    bytes: t.envelope,
                    origin: origin.clone(),
                })
                .collect(),
            refused: report
                .refused
                .iter()
                .map(|r| (refusal_target(r), r.to_string()))
                .collect(),
        })
    }
}

/// The warning `keyway hub import` prints for a stick whose timestamp
/// expired.
pub fn stale_warning(expired_at: keyway_tuf::jiff::Timestamp) -> String {
    format!(
        "the bundle is old: its timestamp expired at {expired_at}; imported anyway, the locks' \
         anti-rollback makes old releases harmless"
    )
}

/// One TUF refusal in `keyway hub import --json`: its target, keyway-tuf's
/// stable code, and the sentence.
fn tuf_refusal_json(r: &keyway_tuf::Refusal) -> serde_json::Value {
    serde_json::json!({
        "target": refusal_target(r),
        "stage": "tuf",
        "code": r.code(),
        "message": r.to_string(),
    })
}

impl ReleasesIn for BundleReader {
    fn read_bundle(&self, path: &Path) -> Result<BundleRead, SourceError> {
        self.read(path)
    }
}

/// The target (or file) a bundle refusal is about.
fn refusal_target(r: &keyway_tuf::Refusal) -> String {
    use keyway_tuf::Refusal as R;
    match r {
        R::RootMissing { version, .. } | R::RootRejected { version, .. } => {
            format!("metadata/{version}.root.json")
        }
        R::Metadata { file, .. } => format!("metadata/{file}"),
        R::Unverified { target }
        | R::TargetMissing { target, .. }
        | R::TargetLength { target, .. }
        | R::TargetHash { target, .. }
        | R::TargetNoHash { target }
        | R::TargetTooLarge { target, .. }
        | R::TargetUnreadable { target, .. } => target.clone(),
    }
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
