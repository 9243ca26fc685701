//! `keyway hub demo` (and plain `keyway hub`): a demo house on loopback.
//!
//! 1. The vendor: a root key and two release signers, 2-of-2 under a key
//!    set, made with the same steps as `keyway demo`
//!    (`crate::demo::vendor_keys`); three signed releases: the factory
//!    image 1.4.0, 2.1.0 which fixes a CVE (its notes say so), and a
//!    delta 1.4.0→2.1.0 of the same release.
//! 2. The vendor's TUF repository: `keyway publish` writes the releases
//!    and their notes into a TUF repository directory (`keyway_tuf`), and
//!    the demo serves it over HTTP on loopback (tower-http's `ServeDir`),
//!    as a vendor's web server or bucket would.
//! 3. The house: N simulated locks ([`super::fleet`]), each provisioned
//!    with the vendor's root key, the factory image and a setup code on
//!    its label.
//! 4. The hub: `keyway hub serve` in this process, on loopback, syncing
//!    that repository, knowing the model's anchors; every lock is added
//!    and paired (its button pressed through its control socket, then its
//!    setup code).
//!
//! Its first line is the hub's address and token, then a short guide.
//! It runs until stopped (Ctrl-C, SIGTERM), then stops its locks cleanly.
//! Nothing leaves loopback: it runs under `unshare -rn`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};

use super::cli::HouseDemoArgs;

/// The default demo house folder: `target/keyway-hub-demo`.
pub fn default_dir() -> PathBuf {
    PathBuf::from("target").join("keyway-hub-demo")
}

/// The vendor's signed releases, by file.
#[derive(Debug, Clone)]
pub struct Releases {
    /// The factory image 1.4.0 (sequence 1).
    pub factory: PathBuf,
    /// 2.1.0, which fixes a CVE (sequence 2).
    pub fix: PathBuf,
    /// 2.1.0 as a delta from 1.4.0's image.
    pub delta: PathBuf,
    /// The root public key the locks trust.
    pub root_pub: PathBuf,
}

/// The vendor's side in `vendor`: keys and the three releases
/// ([`crate::demo`]'s steps 1 to 3, and the delta). Prints the commands
/// to `out`.
pub fn vendor(out: &mut dyn Write, vendor: &Path) -> Result<Releases> {
    std::fs::create_dir_all(vendor).with_context(|| format!("creating {}", vendor.display()))?;
    crate::demo::vendor_keys(out, vendor)?;
    crate::demo::factory_release(out, vendor)?;
    let fix = crate::demo::fix_release(out, vendor)?;
    let delta = vendor.join("release-2.1.0-delta.suit");
    let base = vendor.join("firmware-1.4.0.bin");
    crate::demo::sign(
        out,
        vendor,
        "2.1.0",
        "2",
        Some("CVE-2099-0001:high"),
        &["--delta-from", &base.to_string_lossy()],
        &delta.to_string_lossy(),
    )?;
    Ok(Releases {
        factory: vendor.join("release-1.4.0.suit"),
        fix: PathBuf::from(fix),
        delta,
        root_pub: vendor.join("root.pub"),
    })
}

/// Serves the files under `root` over HTTP on `listen` (a loopback
/// address), read-only, until the runtime stops: the vendor's web server
/// for its TUF repository. Returns the address it listens on.
pub async fn static_server(root: PathBuf, listen: SocketAddr) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the repository's server on {listen}"))?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(root));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("keyway hub demo: the repository's server stopped: {e}");
        }
    });
    Ok(addr)
}

/// Publishes the releases into a new TUF repository at `repo` (its
/// role keys in `keys`), as `keyway publish` does; returns the
/// repository's first root (what the hub pins).
pub fn publish(r: &Releases, repo: &Path, keys: &Path) -> Result<Vec<u8>> {
    use keyway_tuf::{Expiries, RepoWriter, jiff::Timestamp};
    let now = Timestamp::now();
    let mut w = RepoWriter::init(repo, keys, Expiries::default(), now)
        .map_err(|e| anyhow!("the demo's TUF repository: {e}"))?;
    let files = [&r.factory, &r.fix, &r.delta]
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::fs::read(p)
                .with_context(|| format!("reading {}", p.display()))
                .map(|b| (name, b))
        })
        .collect::<Result<Vec<_>>>()?;
    w.add_envelopes(&files, now)
        .map_err(|e| anyhow!("publishing the demo's releases: {e}"))?;
    w.first_root()
        .map_err(|e| anyhow!("the demo's TUF root: {e}"))
}

/// Serves `root` over HTTP on a loopback port, on a thread of its own,
/// for as long as the process runs; returns its address.
pub fn repository_server(root: PathBuf) -> Result<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("keyway-hub-demo-repository".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(anyhow!("the repository's runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let r = static_server(root, SocketAddr::from(([127, 0, 0, 1], 0))).await;
                let ok = r.is_ok();
                let _ = tx.send(r);
                if ok {
                    std::future::pending::<()>().await;
                }
            });
        })
        .context("starting the repository's server")?;
    rx.recv()
        .map_err(|_| anyhow!("the repository's server did not start"))?
}

/// Brings loopback up when it is down (a fresh `unshare -rn` namespace
/// starts with `lo` down); does nothing otherwise. Asks `ip`, which
/// answers for this process's network namespace (`/sys/class/net` shows
/// the namespace that mounted it).
fn loopback() {
    let up = std::process::Command::new("ip")
        .args(["-o", "link", "show", "lo"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .and_then(|t| {
            let flags = t.split_once('<')?.1.split_once('>')?.0.to_owned();
            Some(flags.split(',').any(|f| f == "UP"))
        })
        .unwrap_or(true);
    if !up {
        let _ = crate::audit::netns::loopback_up();
    }
}

/// A lock as the demo's setup needs it (sent to the hub's thread).
#[derive(Debug, Clone)]
struct Door {
    name: String,
    address: String,
    control: SocketAddr,
    setup_code: String,
}

/// Adds and pairs every door (the button pressed through its control
/// socket, then the setup code), and writes the guide.
fn pair_all(
    hub: &keyway_hub::engine::Hub,
    doors: &[Door],
    addr: SocketAddr,
    token: &str,
    repo: SocketAddr,
) -> Result<String> {
    use std::fmt::Write as _;
    let mut ids = Vec::new();
    for d in doors {
        let lock = hub
            .add_lock(&keyway_hub::model::NewLock {
                name: d.name.clone(),
                address: d.address.clone(),
                class: crate::demo::CLASS.to_owned(),
            })
            .map_err(|e| anyhow!("adding {}: {e}", d.name))?;
        super::fleet::press_button(d.control, 60)?;
        hub.pair(lock.id, &d.setup_code)
            .map_err(|e| anyhow!("pairing {}: {e}", d.name))?;
        super::fleet::hardware(d.control, &serde_json::json!({"cmd": "presence-close"}))?;
        ids.push(lock.id);
    }
    let first = ids.first().copied().unwrap_or(1);
    let offer = hub
        .updates(first)
        .map_err(|e| anyhow!("{e}"))?
        .into_iter()
        .next();
    let base = format!("http://{addr}");
    let mut g = String::new();
    let _ = writeln!(
        g,
        "The demo house: {} lock{} paired ({}), each running 1.4.0. The vendor's TUF repository at http://{repo}/ holds 1.4.0, 2.1.0 (fixes CVE-2099-0001, high) and a delta 1.4.0->2.1.0.",
        doors.len(),
        if doors.len() == 1 { "" } else { "s" },
        doors
            .iter()
            .map(|d| format!("{} at {}", d.name, d.address))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(g, "Talk to the hub (in another terminal):");
    let _ = writeln!(g, "  export HUB={base} TOKEN={token}");
    let _ = writeln!(
        g,
        "  curl -s -H \"Authorization: Bearer $TOKEN\" $HUB/api/locks              # the locks, their versions and state"
    );
    let _ = writeln!(
        g,
        "  curl -s -H \"Authorization: Bearer $TOKEN\" $HUB/api/locks/{first}/updates    # what 2.1.0 fixes, before you consent"
    );
    if let Some(o) = offer {
        let _ = writeln!(
            g,
            "  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"release\":\"{}\",\"decision\":\"accept\"}}' $HUB/api/locks/{first}/consents",
            o.release
        );
    }
    let _ = writeln!(
        g,
        "  curl -s -H \"Authorization: Bearer $TOKEN\" $HUB/api/locks/{first}/progress   # the push, live"
    );
    let _ = writeln!(
        g,
        "  curl -s -H \"Authorization: Bearer $TOKEN\" $HUB/api/events              # what the hub did and saw"
    );
    if let Some(d) = doors.first() {
        let _ = writeln!(
            g,
            "The {}'s bolt is thrown, so its install waits (postponed) until you unlock it at the lock: keyway-lock ctl {} keypad {}",
            d.name,
            d.control,
            keyway_lock::lock::DEFAULT_PIN
        );
    }
    let _ = writeln!(
        g,
        "The API's description: $HUB/api/openapi.json. Stop with Ctrl-C."
    );
    let _ = writeln!(
        g,
        "Or open $HUB/ in a browser on this machine and log in with the token: the locks, their updates and consent, the audit logs, imports."
    );
    Ok(g)
}

/// The file a demo house folder holds, so that a later demo may empty it.
pub const MARKER: &str = ".keyway-hub-demo";

/// Makes `dir` an empty demo house folder: a folder a previous demo made
/// (it holds [`MARKER`]) is emptied; a missing or empty one is made; any
/// other folder is refused, never removed.
pub fn clear_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow!("{}: cannot read: {e}", dir.display())),
        Ok(m) if !m.is_dir() => {
            return Err(anyhow!(
                "{}: not a folder; give the demo a folder of its own with --dir DIR",
                dir.display()
            ));
        }
        Ok(_) => {
            let empty = std::fs::read_dir(dir)
                .with_context(|| format!("{}: cannot read", dir.display()))?
                .next()
                .is_none();
            let ours = std::fs::symlink_metadata(dir.join(MARKER)).is_ok_and(|m| m.is_file());
            if !empty && !ours {
                return Err(anyhow!(
                    "{}: this folder is not empty and no keyway hub demo made it (no {MARKER} \
                     file in it), so the demo will not empty it; give the demo a new or empty \
                     folder with --dir DIR",
                    dir.display()
                ));
            }
            if ours {
                std::fs::remove_dir_all(dir)
                    .with_context(|| format!("{}: cannot clear", dir.display()))?;
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `keyway hub demo`: the next demo run empties this folder\n",
    )
    .with_context(|| format!("{}: cannot write {MARKER}", dir.display()))?;
    Ok(())
}

/// Runs the demo house until it is stopped.
pub fn run(a: &HouseDemoArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    super::cli::check_listen(a.listen, false)?;
    loopback();
    let dir = a.dir.clone().unwrap_or_else(default_dir);
    clear_dir(&dir)?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", dir.display()))?;
    let vendor_dir = dir.join("vendor");
    writeln!(
        err,
        "keyway hub demo: the vendor's keys and releases in {}",
        vendor_dir.display()
    )?;
    let releases = vendor(&mut std::io::sink(), &vendor_dir)?;
    let root = publish(
        &releases,
        &dir.join("repository"),
        &vendor_dir.join("tuf-keys"),
    )?;
    let root_json = vendor_dir.join("1.root.json");
    std::fs::write(&root_json, root)?;
    let repo = repository_server(dir.join("repository"))?;
    writeln!(
        err,
        "keyway hub demo: the vendor's TUF repository at http://{repo}/; {} locks in {}",
        a.locks,
        dir.join("locks").display()
    )?;
    let provisioned = super::fleet::provision(
        &vendor_dir,
        &dir.join("locks"),
        a.locks,
        2,
        &mut std::io::sink(),
        false,
    )?;
    let locks = super::fleet::start(&provisioned, false)?;
    let doors: Vec<Door> = locks
        .iter()
        .map(|l| Door {
            name: l.name.clone(),
            address: l.address.clone(),
            control: l.control,
            setup_code: l.setup_code.clone(),
        })
        .collect();
    let serve = super::cli::ServeArgs {
        data: dir.join("hub"),
        listen: a.listen,
        listen_insecure_any_address: false,
        stores: super::cli::StoreArgs {
            store: None,
            tuf_root: Some(root_json),
        },
        tuf_url: Some(format!("http://{repo}")),
        sync_every: 3600,
        tick_every: 5,
        concurrency: 8,
        log_every: 3600,
        mqtt: a.mqtt.clone(),
        model: super::cli::ModelArgs {
            model: Some(crate::demo::CLASS.to_owned()),
            vendor_domain: Some(crate::demo::VENDOR.to_owned()),
            trust: vec![releases.root_pub.clone()],
            threshold: 1,
        },
    };
    let setup: super::cli::Setup =
        Box::new(move |hub, addr, token| pair_all(&hub, &doors, addr, &token, repo));
    let r = super::cli::serve_with(&serve, out, err, Some(setup));
    for l in locks {
        l.stop();
    }
    r
}
