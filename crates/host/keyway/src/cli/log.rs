//! `keyway log`: verify, show or make (for trying) a lock's exported
//! audit log.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use keyway_vendor::keys::{Algorithm, PublicKey, SigningKey, hex};

use super::files::{read_file, write_said};

/// `keyway log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Check the hash chain, checkpoints and signed head of an exported
    /// log: one line per break (record modified, deleted, reordered,
    /// inserted, truncated, signed by another key), then a summary; exits
    /// non-zero on any break.
    Verify(LogVerifyArgs),
    /// Print an exported log readably (no verification).
    Show(LogShowArgs),
    /// Build a demo log on a simulated lock's flash, signed by a device
    /// key, and write its export (for trying `verify` and `show`).
    DemoExport(LogDemoArgs),
}

/// Arguments of `keyway log verify`.
#[derive(Debug, Args)]
pub struct LogVerifyArgs {
    /// The exported log.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The lock's device public key, SPKI PEM (Ed25519).
    #[arg(long, value_name = "DEVICE.pub")]
    pub device_key: PathBuf,
}

/// Arguments of `keyway log show`.
#[derive(Debug, Args)]
pub struct LogShowArgs {
    /// The exported log.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only records with this sequence number or later.
    #[arg(long, value_name = "SEQ")]
    pub since: Option<u32>,
}

/// Arguments of `keyway log demo-export`.
#[derive(Debug, Args)]
pub struct LogDemoArgs {
    /// The device's private key, PKCS#8 PEM, Ed25519 (from `keyway keygen`).
    #[arg(long, value_name = "DEVICE.key")]
    pub key: PathBuf,
    /// Events to log.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub events: u32,
    /// 4 KiB flash pages in the log's ring (29 records each).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub pages: u32,
    /// Output file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
}

/// Runs `keyway log verify`.
pub fn verify(a: &LogVerifyArgs, out: &mut dyn Write) -> Result<()> {
    let key = PublicKey::load(&a.device_key)?;
    if key.algorithm() != Algorithm::Ed25519 {
        bail!(
            "{}: a device key is Ed25519, this is a {} key",
            a.device_key.display(),
            key.algorithm()
        );
    }
    let bytes = read_file(&a.file, "the audit log")?;
    let report = keyway_vendor::log::verify(&bytes, &key);
    for f in &report.findings {
        writeln!(out, "{}", f.message)?;
    }
    writeln!(out, "{}: {}", a.file.display(), report.summary(&key))?;
    if !report.intact() {
        bail!(
            "{}: audit log broken: {} finding(s)",
            a.file.display(),
            report.findings.len()
        );
    }
    Ok(())
}

/// Runs `keyway log show`.
pub fn show(a: &LogShowArgs, out: &mut dyn Write) -> Result<()> {
    let bytes = read_file(&a.file, "the audit log")?;
    let items = keyway_vendor::log::parse(&bytes);
    if a.json {
        let v = keyway_vendor::log::show_json(&items, a.since);
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        write!(out, "{}", keyway_vendor::log::show_text(&items, a.since))?;
    }
    Ok(())
}

/// Runs `keyway log demo-export`.
pub fn demo_export(a: &LogDemoArgs, out: &mut dyn Write) -> Result<()> {
    let SigningKey::Ed25519(k) = SigningKey::load(&a.key)? else {
        bail!("{}: a device key is Ed25519", a.key.display());
    };
    let signer = keyway_audit::Ed25519Signer::from_seed(k.to_bytes())
        .ok_or_else(|| anyhow::anyhow!("{}: unusable Ed25519 seed", a.key.display()))?;
    let bytes = keyway_vendor::log::demo_export(&signer, a.events, a.pages)?;
    write_said(
        &a.output,
        &bytes,
        true,
        out,
        format_args!(
            "{} events on {} simulated 4 KiB pages, signed by device key {}",
            a.events,
            a.pages,
            hex(&keyway_audit::record::key_id(
                &keyway_audit::Signer::public_key(&signer)
            ))
        ),
    )
}
