//! `keyway keygen`: a key pair in PEM files.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use keyway_vendor::keys::{self, Algorithm, hex};

/// Key algorithm for `keygen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgArg {
    /// Ed25519.
    Ed25519,
    /// ECDSA P-256.
    P256,
}

impl From<AlgArg> for Algorithm {
    fn from(a: AlgArg) -> Self {
        match a {
            AlgArg::Ed25519 => Algorithm::Ed25519,
            AlgArg::P256 => Algorithm::P256,
        }
    }
}

/// Arguments of `keyway keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Base name; writes NAME.key and NAME.pub (never overwrites).
    #[arg(value_name = "NAME")]
    pub name: PathBuf,
    /// Key algorithm.
    #[arg(long, value_enum, default_value_t = AlgArg::Ed25519)]
    pub alg: AlgArg,
}

/// Runs `keyway keygen`.
pub fn keygen(a: &KeygenArgs, out: &mut dyn Write) -> Result<()> {
    let files = keys::keygen(&a.name, a.alg.into())?;
    writeln!(
        out,
        "wrote {} and {} ({}, key id {})",
        files.private.display(),
        files.public.display(),
        Algorithm::from(a.alg),
        hex(&files.key_id)
    )?;
    Ok(())
}
