//! `keyway sign`: build and sign a firmware envelope (full or delta), and
//! the COSE algorithm labels the signing commands choose between.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};

use keyway_vendor::encode::{
    Cve, Ed25519Alg, EnvelopeBuilder, KeySetInfo, P256Alg, ReleaseVersion, SignOptions,
};
use keyway_vendor::keys::{SigningKey, hex};

use super::files::{load_unique, read_file, write_output};

/// COSE algorithm label for Ed25519 signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ed25519AlgArg {
    /// -8 (EdDSA, RFC 9053), which most COSE implementations verify.
    Eddsa,
    /// -19 (Ed25519, fully specified, RFC 9864), as the SUIT MTI profiles name it.
    Ed25519,
}

/// COSE algorithm label for P-256 signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum P256AlgArg {
    /// -9 (ESP256, fully specified, RFC 9864), as the SUIT MTI profiles name it.
    Esp256,
    /// -7 (ES256, RFC 9053), as in draft-ietf-suit-manifest's examples.
    Es256,
}

impl From<P256AlgArg> for P256Alg {
    fn from(a: P256AlgArg) -> Self {
        match a {
            P256AlgArg::Esp256 => P256Alg::Esp256,
            P256AlgArg::Es256 => P256Alg::Es256,
        }
    }
}

impl From<Ed25519AlgArg> for Ed25519Alg {
    fn from(a: Ed25519AlgArg) -> Self {
        match a {
            Ed25519AlgArg::Eddsa => Ed25519Alg::EdDsa,
            Ed25519AlgArg::Ed25519 => Ed25519Alg::Ed25519,
        }
    }
}

/// Arguments of `keyway sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Firmware image.
    #[arg(long, value_name = "FW")]
    pub firmware: PathBuf,
    /// Release version, MAJOR.MINOR.PATCH.
    #[arg(long, value_name = "X.Y.Z")]
    pub version: ReleaseVersion,
    /// Anti-rollback sequence number.
    #[arg(long, value_name = "N")]
    pub sequence: u64,
    /// Vendor domain (vendor UUID = UUIDv5(DNS, DOMAIN)).
    #[arg(long, value_name = "DOMAIN")]
    pub vendor_domain: String,
    /// Device class name (class UUID = UUIDv5(vendor UUID, NAME)).
    #[arg(long, value_name = "NAME")]
    pub class: String,
    /// Human-readable vendor name for the release notes.
    #[arg(long, value_name = "NAME")]
    pub vendor_name: Option<String>,
    /// Release notes (Markdown, UTF-8).
    #[arg(long, value_name = "NOTES.md")]
    pub notes: PathBuf,
    /// A fixed vulnerability, CVE-YYYY-NNNN:low|medium|high|critical (repeatable).
    #[arg(long = "cve", value_name = "ID:SEVERITY")]
    pub cves: Vec<Cve>,
    /// Signing key, PKCS#8 PEM (repeatable; one signature each).
    #[arg(long = "key", value_name = "KEY", required = true)]
    pub keys: Vec<PathBuf>,
    /// Key-set document to embed (from `keyway keyset`).
    #[arg(long, value_name = "KEYSET")]
    pub keyset: Option<PathBuf>,
    /// Do not install after this time (seconds since 1970).
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub use_before: Option<u64>,
    /// Minimum battery charge needed to install, in mWh.
    #[arg(long = "min-battery-mwh", value_name = "N")]
    pub min_battery_mwh: Option<u64>,
    /// Leave the firmware out of the envelope.
    #[arg(long, conflicts_with = "delta_from")]
    pub detached: bool,
    /// Make a delta update from the image the locks run now: the envelope
    /// carries a patch from OLD.bin to the firmware, and its manifest binds
    /// OLD.bin's digest and size (the base) and the firmware's (the output).
    #[arg(long, value_name = "OLD.bin")]
    pub delta_from: Option<PathBuf>,
    /// COSE algorithm label on Ed25519 signatures.
    #[arg(long, value_enum, default_value_t = Ed25519AlgArg::Eddsa)]
    pub ed25519_alg: Ed25519AlgArg,
    /// COSE algorithm label on P-256 signatures.
    #[arg(long = "p256-alg", value_enum, default_value_t = P256AlgArg::Esp256)]
    pub p256_alg: P256AlgArg,
    /// Leave the key id out of the signatures.
    #[arg(long)]
    pub no_kid: bool,
    /// Output envelope.
    #[arg(short = 'o', long = "output", value_name = "OUT.suit")]
    pub output: PathBuf,
}

/// Runs `keyway sign`.
pub fn sign(a: &SignArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let payload = read_file(&a.firmware, "the firmware")?;
    if payload.is_empty() {
        bail!("{}: the firmware image is empty", a.firmware.display());
    }
    let notes = String::from_utf8(read_file(&a.notes, "the release notes")?)
        .map_err(|_| anyhow::anyhow!("{}: release notes are not valid UTF-8", a.notes.display()))?;
    let signing_keys = load_unique(&a.keys, |p| SigningKey::load(p), SigningKey::key_id)?;
    let keyset = match &a.keyset {
        Some(p) => {
            let doc = read_file(p, "the key-set document")?;
            let info = KeySetInfo::parse(&doc).with_context(|| format!("{}", p.display()))?;
            for w in keyset_warnings(&info, &signing_keys) {
                writeln!(err, "warning: {}: {w}", p.display())?;
            }
            Some(doc)
        }
        None => None,
    };
    let delta_from = match &a.delta_from {
        Some(p) => Some(read_file(p, "the delta base image")?),
        None => None,
    };
    let builder = EnvelopeBuilder {
        sequence: a.sequence,
        version: a.version,
        vendor_domain: a.vendor_domain.clone(),
        vendor_name: a.vendor_name.clone(),
        class_name: a.class.clone(),
        notes: Some(notes),
        cves: a.cves.clone(),
        use_before: a.use_before,
        min_battery_mwh: a.min_battery_mwh,
        keyset,
        placement: if a.detached {
            keyway_vendor::encode::PayloadPlacement::Detached(a.firmware.file_name().map_or_else(
                || keyway_vendor::encode::DETACHED_PAYLOAD_URI.to_string(),
                |n| n.to_string_lossy().into_owned(),
            ))
        } else {
            keyway_vendor::encode::PayloadPlacement::Integrated
        },
        payload,
        delta_from,
        keys: signing_keys,
        sign_options: SignOptions {
            ed25519_alg: a.ed25519_alg.into(),
            p256_alg: a.p256_alg.into(),
            include_kid: !a.no_kid,
        },
    };
    let built = builder.build()?;
    write_output(&a.output, &built.envelope)?;
    if let (Some(patch), Some(old)) = (&built.patch, &builder.delta_from) {
        writeln!(
            out,
            "delta: patch {} bytes ({:.2}% of the {}-byte image), applies to {} ({} bytes)",
            patch.len(),
            100.0 * patch.len() as f64 / builder.payload.len().max(1) as f64,
            builder.payload.len(),
            hex(&keyway_vendor::encode::sha256(old)),
            old.len()
        )?;
    }
    writeln!(
        out,
        "wrote {} ({} bytes): version {}, sequence {}, {} signature(s){}",
        a.output.display(),
        built.envelope.len(),
        a.version,
        a.sequence,
        builder.keys.len(),
        if a.detached { ", payload detached" } else { "" }
    )?;
    Ok(())
}

/// Problems worth a warning when signing with an embedded key set: a
/// signing key that the key set does not list or has revoked, or fewer
/// listed signers than the threshold.
pub fn keyset_warnings(info: &KeySetInfo, keys: &[SigningKey]) -> Vec<String> {
    let mut w = Vec::new();
    let mut listed = 0u64;
    for k in keys {
        let kid = k.key_id();
        if info.revoked.contains(&kid) {
            w.push(format!(
                "signing key {} is revoked by this key set",
                hex(&kid)
            ));
        } else if info.signer_kids.contains(&kid) {
            listed += 1;
        } else {
            w.push(format!(
                "signing key {} is not a signer in this key set",
                hex(&kid)
            ));
        }
    }
    if listed < info.threshold {
        w.push(format!(
            "only {listed} of the signing keys are signers in this key set, which needs {}",
            info.threshold
        ));
    }
    w
}
