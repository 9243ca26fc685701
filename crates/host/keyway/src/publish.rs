//! `keyway publish`: add signed envelopes to the vendor's TUF repository
//! (static files any web server or bucket can serve), rotate its root key,
//! re-sign its timestamp, or write an offline bundle for a USB stick.
//!
//! ```text
//! keyway publish --repo REPO --keys KEYS --init                 create it
//! keyway publish --repo REPO --keys KEYS r1.suit r2.suit        add releases
//! keyway publish --repo REPO --keys KEYS --refresh-timestamp    re-sign (cron)
//! keyway publish --repo REPO --keys KEYS --rotate-root          new root key
//! keyway publish --repo REPO --keys KEYS --bundle /media/stick  offline bundle
//! ```
//!
//! The work is `keyway_tuf::RepoWriter`'s; this file maps arguments to it
//! and prints what changed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;

/// `keyway publish` arguments.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The repository directory (REPO/metadata, REPO/targets).
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// The directory of the repository's role keys (keep it off the web
    /// server; `--init` creates it).
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// Create the repository and its role keys.
    #[arg(long)]
    pub init: bool,
    /// Rotate the root key: root version N+1 signed by the old and new keys.
    #[arg(long)]
    pub rotate_root: bool,
    /// Re-sign the timestamp (next version, fresh expiry) without changes.
    #[arg(long)]
    pub refresh_timestamp: bool,
    /// Write an offline bundle (every root, the metadata and the targets)
    /// into this directory, after the other steps.
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Days the timestamp stays valid.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub timestamp_days: u32,
    /// Days the snapshot stays valid.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub snapshot_days: u32,
    /// Days the targets and root stay valid.
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    pub targets_days: u32,
    /// Signed envelopes (`keyway sign`) to add; published as
    /// CLASS/FILE-NAME.
    #[arg(value_name = "ENVELOPE")]
    pub envelopes: Vec<PathBuf>,
}

/// Runs `keyway publish`.
pub fn run(a: &PublishArgs, out: &mut dyn Write) -> Result<()> {
    let day = 86_400i64;
    let expiries = keyway_tuf::Expiries {
        root: i64::from(a.targets_days) * day,
        targets: i64::from(a.targets_days) * day,
        snapshot: i64::from(a.snapshot_days) * day,
        timestamp: i64::from(a.timestamp_days) * day,
    };
    if a.timestamp_days == 0 || a.snapshot_days == 0 || a.targets_days == 0 {
        bail!("expiry periods must be at least one day");
    }
    let now = keyway_tuf::jiff::Timestamp::now();
    let mut w = if a.init {
        let w = keyway_tuf::RepoWriter::init(&a.repo, &a.keys, expiries, now)?;
        writeln!(
            out,
            "created TUF repository {} (keys in {}); clients pin {}",
            a.repo.display(),
            a.keys.display(),
            a.repo.join("metadata/1.root.json").display()
        )?;
        w
    } else {
        keyway_tuf::RepoWriter::open(&a.repo, &a.keys, expiries)?
    };
    if a.rotate_root {
        let v = w.rotate_root(now)?;
        writeln!(
            out,
            "rotated the root key: root version {v} is signed by the old and the new key"
        )?;
    }
    if !a.envelopes.is_empty() {
        let mut inputs = Vec::with_capacity(a.envelopes.len());
        for p in &a.envelopes {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{} has no usable file name", p.display()))?;
            inputs.push((name.to_owned(), bytes));
        }
        for p in w.add_envelopes(&inputs, now)? {
            let s = &p.summary;
            let cves: Vec<String> = s
                .cves
                .iter()
                .map(|c| format!("{} ({})", c.id, c.severity))
                .collect();
            writeln!(
                out,
                "{} {}: {} version {} sequence {}{}{}",
                if p.new { "published" } else { "unchanged" },
                p.target,
                s.class,
                s.version,
                s.sequence,
                s.delta_base
                    .as_ref()
                    .map(|b| format!(", delta from {}", &b[..16.min(b.len())]))
                    .unwrap_or_default(),
                if cves.is_empty() {
                    String::new()
                } else {
                    format!(", fixes {}", cves.join(", "))
                }
            )?;
        }
    }
    if a.refresh_timestamp {
        let v = w.refresh_timestamp(now)?;
        writeln!(out, "re-signed the timestamp: version {v}")?;
    }
    let v = w.versions();
    writeln!(
        out,
        "repository {}: root {}, targets {}, snapshot {}, timestamp {}",
        a.repo.display(),
        v.root,
        v.targets,
        v.snapshot,
        v.timestamp
    )?;
    if let Some(dir) = &a.bundle {
        let b = w.write_bundle(dir)?;
        writeln!(
            out,
            "wrote offline bundle {}: {} release(s), {} file(s), {} bytes; import it with \
             `keyway hub import {}`",
            dir.display(),
            b.targets,
            b.files,
            b.bytes,
            dir.display()
        )?;
    }
    Ok(())
}
