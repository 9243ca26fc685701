//! `keyway keyset`: build a root-signed key-set document.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use keyway_vendor::encode::{KeySetBuilder, KeySetParams, SignOptions};
use keyway_vendor::keys::{PublicKey, SigningKey};

use super::files::{load_unique, write_said};
use super::sign::Ed25519AlgArg;

/// Arguments of `keyway keyset`.
#[derive(Debug, Args)]
pub struct KeysetArgs {
    /// Root private key that signs the key set (repeatable).
    #[arg(long = "root", value_name = "ROOT.key", required = true)]
    pub roots: Vec<PathBuf>,
    /// Release signer public key (repeatable).
    #[arg(long = "signer", value_name = "SIGNER.pub", required = true)]
    pub signers: Vec<PathBuf>,
    /// Signatures a release needs (1..=number of signers).
    #[arg(long, value_name = "K")]
    pub threshold: u64,
    /// Key-set version (must increase with every new key set).
    #[arg(long, value_name = "N")]
    pub version: u64,
    /// Public key to revoke (repeatable).
    #[arg(long = "revoke", value_name = "OLD.pub")]
    pub revoke: Vec<PathBuf>,
    /// COSE algorithm label on Ed25519 signatures.
    #[arg(long, value_enum, default_value_t = Ed25519AlgArg::Eddsa)]
    pub ed25519_alg: Ed25519AlgArg,
    /// Output key-set document.
    #[arg(short = 'o', long = "output", value_name = "KEYSET")]
    pub output: PathBuf,
}

/// Runs `keyway keyset`.
pub fn keyset(a: &KeysetArgs, out: &mut dyn Write) -> Result<()> {
    // Cheap argument checks first, before any file is read.
    if a.threshold == 0 || a.threshold > a.signers.len() as u64 {
        bail!(
            "--threshold {} is invalid: it must be between 1 and the number of --signer keys ({})",
            a.threshold,
            a.signers.len()
        );
    }
    let roots = load_unique(&a.roots, |p| SigningKey::load(p), SigningKey::key_id)?;
    let signers = load_unique(&a.signers, |p| PublicKey::load(p), PublicKey::key_id)?;
    let revoked_keys = load_unique(&a.revoke, |p| PublicKey::load(p), PublicKey::key_id)?;
    for (path, r) in a.revoke.iter().zip(&revoked_keys) {
        if signers.contains(r) {
            bail!(
                "{}: this key is both a --signer and revoked",
                path.display()
            );
        }
    }
    let builder = KeySetBuilder {
        roots,
        keyset: KeySetParams {
            version: a.version,
            threshold: a.threshold,
            signers,
            revoked: revoked_keys.iter().map(PublicKey::key_id).collect(),
        },
        sign_options: SignOptions {
            ed25519_alg: a.ed25519_alg.into(),
            ..SignOptions::default()
        },
    };
    let doc = builder.build()?;
    write_said(
        &a.output,
        &doc,
        true,
        out,
        format_args!(
            "key-set version {}, {} signer(s), threshold {}, {} revoked, {} root signature(s)",
            a.version,
            builder.keyset.signers.len(),
            a.threshold,
            builder.keyset.revoked.len(),
            builder.roots.len()
        ),
    )
}
