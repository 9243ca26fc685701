//! `keyway tuf-client`: the hub's TUF client behind the command-line
//! protocol of theupdateframework/tuf-conformance (its `CLIENT-CLI.md`),
//! so the client the hub syncs with can be run through that suite.
//!
//! ```text
//! keyway tuf-client --metadata-dir DIR init TRUSTED_ROOT
//! keyway tuf-client --metadata-dir DIR --metadata-url URL refresh
//! keyway tuf-client --metadata-dir DIR --metadata-url URL --target-name PATH…
//!                   --target-base-url URL --target-dir DIR download
//! ```
//!
//! It drives [`keyway_tuf::Session`] — the same sigstore-tuf workflow and
//! bounded transport as the hub's [`keyway_tuf::Mirror`] — with a metadata
//! store that keeps what the protocol requires in `DIR`: the trusted
//! metadata under non-versioned names (`root.json`, `timestamp.json`,
//! `snapshot.json`, `targets.json`, `ROLE.json` for delegated roles) and
//! nothing else. Exit code 0 on success, 1 on any failure (the error's
//! sentence on stderr).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use keyway_tuf::sigstore_tuf::{self, MetadataStore};

/// `keyway tuf-client` arguments (tuf-conformance's client CLI).
#[derive(Debug, Args)]
pub struct TufClientArgs {
    /// Where the client keeps the metadata it trusts (non-versioned names).
    #[arg(long, value_name = "DIR")]
    pub metadata_dir: PathBuf,
    /// Base URL of the repository's metadata.
    #[arg(long, value_name = "URL")]
    pub metadata_url: Option<String>,
    /// A target to download (repeatable; processed in order).
    #[arg(long = "target-name", value_name = "PATH")]
    pub target_names: Vec<String>,
    /// Base URL of the repository's targets.
    #[arg(long, value_name = "URL")]
    pub target_base_url: Option<String>,
    /// Where downloaded, verified targets are written.
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// The protocol's command.
    #[command(subcommand)]
    pub command: TufClientCommand,
}

/// The protocol's three commands.
#[derive(Debug, Subcommand)]
pub enum TufClientCommand {
    /// Trust TRUSTED_ROOT (copied to DIR/root.json; no network).
    Init {
        /// The initial trusted root.json.
        trusted_root: PathBuf,
    },
    /// Update the top-level metadata by the TUF client workflow.
    Refresh,
    /// Refresh, then download each --target-name into --target-dir.
    Download,
}

/// The metadata directory as the protocol wants it: only non-versioned
/// names at the top level. Versioned copies (`N.root.json`,
/// `N.snapshot.json`) and cached targets are not kept: the suite reads
/// this directory to see what the client trusts.
struct FlatStore {
    dir: PathBuf,
}

impl MetadataStore for FlatStore {
    fn load(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        if !is_flat(name) {
            return Ok(None);
        }
        match std::fs::read(self.dir.join(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(sigstore_tuf::Error::io(format!("reading {name}"), e)),
        }
    }

    fn store(&self, name: &str, bytes: &[u8]) -> sigstore_tuf::Result<()> {
        if !is_flat(name) {
            return Ok(());
        }
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| sigstore_tuf::Error::io(format!("writing {name}"), e))
    }
}

/// A top-level, non-versioned metadata name (`root.json`, `role1.json`;
/// not `2.root.json`, not `targets/…`).
fn is_flat(name: &str) -> bool {
    // Delegated role names arrive percent-encoded by the client (`/` is
    // `%2F`), so a name without `/` stays in the directory, even one that
    // starts with dots (`..%2Frole.json`).
    !name.contains('/')
        && name.ends_with(".json")
        && !name
            .split('.')
            .next()
            .is_some_and(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()))
}

/// Runs `keyway tuf-client`.
pub fn run(a: &TufClientArgs) -> Result<()> {
    match &a.command {
        TufClientCommand::Init { trusted_root } => init(&a.metadata_dir, trusted_root),
        TufClientCommand::Refresh => runtime()?.block_on(refresh(a)),
        TufClientCommand::Download => runtime()?.block_on(download(a)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init(dir: &Path, trusted_root: &Path) -> Result<()> {
    let bytes = std::fs::read(trusted_root)
        .with_context(|| format!("cannot read the trusted root {}", trusted_root.display()))?;
    sigstore_tuf::TrustedMetadataSet::from_root(&bytes).map_err(|e| {
        keyway_tuf::MirrorError::BadTrustedRoot {
            detail: e.to_string(),
        }
    })?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("root.json"), &bytes)
        .with_context(|| format!("cannot write {}/root.json", dir.display()))?;
    Ok(())
}

fn session(a: &TufClientArgs) -> Result<keyway_tuf::Session> {
    let Some(url) = &a.metadata_url else {
        bail!("--metadata-url is required for refresh and download");
    };
    let root = std::fs::read(a.metadata_dir.join("root.json")).with_context(|| {
        format!(
            "{} holds no trusted root; run `keyway tuf-client --metadata-dir {} init ROOT` first",
            a.metadata_dir.display(),
            a.metadata_dir.display()
        )
    })?;
    let source = keyway_tuf::Source::Http {
        metadata_url: url.clone(),
        targets_url: a.target_base_url.clone().unwrap_or_default(),
    };
    Ok(keyway_tuf::Session::new(
        &root,
        source,
        FlatStore {
            dir: a.metadata_dir.clone(),
        },
    )?)
}

async fn refresh(a: &TufClientArgs) -> Result<()> {
    let mut s = session(a)?;
    s.refresh(keyway_tuf::jiff::Timestamp::now()).await?;
    Ok(())
}

async fn download(a: &TufClientArgs) -> Result<()> {
    if a.target_names.is_empty() {
        bail!("download needs at least one --target-name");
    }
    let Some(target_dir) = &a.target_dir else {
        bail!("download needs --target-dir");
    };
    if a.target_base_url.is_none() {
        bail!("download needs --target-base-url");
    }
    let mut s = session(a)?;
    let now = keyway_tuf::jiff::Timestamp::now();
    s.refresh(now).await?;
    for name in &a.target_names {
        let info = s.target_info(name, now).await?;
        let out = target_dir.join(local_name(name));
        // Already downloaded with matching length and hashes: no transfer.
        if let Ok(existing) = std::fs::read(&out)
            && matches(&existing, &info)
        {
            continue;
        }
        let bytes = s.download_info(&info, name).await?;
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

/// Where target `name` is stored in the target directory: the target path
/// percent-encoded into one file name, so no target path can climb out of
/// the directory and two targets never share a file.
fn local_name(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    if s.starts_with('.') {
        s.replace_range(0..1, "%2E");
    }
    s
}

fn matches(bytes: &[u8], info: &sigstore_tuf::TargetFile) -> bool {
    use sha2::Digest as _;
    bytes.len() as u64 == info.length
        && info.hashes.get("sha256").is_some_and(|h| {
            h.eq_ignore_ascii_case(&keyway_vendor::keys::hex(&sha2::Sha256::digest(bytes)))
        })
}
