//! `keyway hub demo` (and plain `keyway hub`): a demo house on loopback.
//!
//! 1. The vendor: a root key and two release signers, 2-of-2 under a key
//!    set, made with the same steps as `keyway demo`
//!    ([`crate::demo::vendor_keys`]); three signed releases: the factory
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

use anyhow::{Context as _, Result};

use super::cli::DemoArgs;

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

/// Runs the demo house until it is stopped.
pub fn run(a: &DemoArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let dir = a.dir.clone().unwrap_or_else(default_dir);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("{}: cannot clear", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", dir.display()))?;
    writeln!(err, "keyway hub demo: the vendor's keys and releases")?;
    let _releases = vendor(&mut std::io::sink(), &dir.join("vendor"))?;
    writeln!(err, "keyway hub demo: {} locks", a.locks)?;
    let provisioned = super::fleet::provision(
        &dir.join("vendor"),
        &dir.join("locks"),
        a.locks,
        2,
        &mut std::io::sink(),
        false,
    )?;
    let locks = super::fleet::start(&provisioned, false)?;
    for l in &locks {
        writeln!(
            err,
            "  {}: {} (setup code {})",
            l.name, l.address, l.setup_code
        )?;
    }
    let _ = out;
    for l in locks {
        l.stop();
    }
    anyhow::bail!("keyway hub demo: the hub is not wired in yet")
}
