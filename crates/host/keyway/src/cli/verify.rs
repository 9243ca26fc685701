//! `keyway verify`: verify an envelope offline as a lock would.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

/// Arguments of `keyway verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The envelope.
    #[arg(value_name = "ENVELOPE")]
    pub envelope: PathBuf,
    /// Root public key, SPKI PEM, Ed25519 or P-256 (repeatable): the
    /// device's immutable trust anchors.
    #[arg(long = "trust", value_name = "ROOT.pub", required = true)]
    pub trust: Vec<PathBuf>,
    /// Root signatures required (for key sets, or manifests signed by root
    /// keys directly).
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub threshold: u8,
    /// The firmware of a detached envelope.
    #[arg(long, value_name = "FW")]
    pub payload: Option<PathBuf>,
    /// Check the vendor identity (with --class): the device's vendor domain.
    #[arg(long, value_name = "DOMAIN", requires = "class")]
    pub vendor_domain: Option<String>,
    /// Check the device class (with --vendor-domain).
    #[arg(long, value_name = "NAME", requires = "vendor_domain")]
    pub class: Option<String>,
    /// The device's anti-rollback floor: the sequence number must exceed it.
    #[arg(long, value_name = "N")]
    pub floor: Option<u64>,
    /// The key-set document the device has stored (its version is the floor
    /// for key sets).
    #[arg(long, value_name = "KEYSET")]
    pub stored_keyset: Option<PathBuf>,
    /// Trusted time for use-before, seconds since 1970 (default: this host's clock).
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub now: Option<u64>,
    /// The device's battery, to check minimum-battery.
    #[arg(long = "battery-mwh", value_name = "N")]
    pub battery_mwh: Option<u64>,
    /// The slot the update would be written to (a lock's inactive slot):
    /// chooses the try-each alternative whose component-slot condition
    /// holds. Without it every alternative is listed and the first one
    /// whose conditions hold is verified.
    #[arg(long, value_name = "N")]
    pub slot: Option<u64>,
}

/// Runs `keyway verify`.
pub fn verify(a: &VerifyArgs, out: &mut dyn Write) -> Result<()> {
    let identity = match (&a.vendor_domain, &a.class) {
        (Some(d), Some(c)) => {
            let v = keyway_vendor::encode::vendor_uuid(d);
            Some((v, keyway_vendor::encode::class_uuid(&v, c)))
        }
        _ => None,
    };
    let opts = keyway_vendor::check::VerifyOptions {
        trust: a.trust.clone(),
        threshold: a.threshold,
        payload: a.payload.clone(),
        identity,
        floor: a.floor,
        stored_keyset: a.stored_keyset.clone(),
        now: a.now,
        battery_mwh: a.battery_mwh,
        slot: a.slot,
    };
    match keyway_vendor::check::verify_file(&a.envelope, &opts) {
        Ok(summary) => {
            writeln!(out, "OK {}: {summary}", a.envelope.display())?;
            Ok(())
        }
        Err(r) => bail!("REJECTED {}: {r}", a.envelope.display()),
    }
}
