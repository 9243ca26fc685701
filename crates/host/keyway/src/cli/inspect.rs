//! `keyway inspect`: what an envelope holds (structure and digests
//! checked, signatures not).

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

/// Arguments of `keyway inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The envelope.
    #[arg(value_name = "ENVELOPE")]
    pub envelope: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `keyway inspect`.
pub fn inspect(a: &InspectArgs, out: &mut dyn Write) -> Result<()> {
    // The head is enough: a large payload's tail is neither read nor held.
    let bytes = fs::File::open(&a.envelope)
        .and_then(|mut f| keyway_vendor::check::read_head(&mut f))
        .with_context(|| format!("{}: cannot read the envelope", a.envelope.display()))?;
    let j = keyway_vendor::check::inspect_json(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: {} check failed: {}",
            a.envelope.display(),
            keyway_vendor::check::Check::of(&e),
            keyway_vendor::describe::describe(&e)
        )
    })?;
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&j)?)?;
    } else {
        write!(out, "{}", keyway_vendor::check::inspect_text(&j))?;
    }
    Ok(())
}
