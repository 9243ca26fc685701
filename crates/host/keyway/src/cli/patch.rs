//! `keyway patch`: apply a delta patch with the lock's decoder, on the
//! host or on the simulated flash with the lock's installer.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use super::files::{read_bounded, write_said};

/// Arguments of `keyway patch`.
#[derive(Debug, Args)]
pub struct PatchArgs {
    /// The image the patch was made for.
    pub old: PathBuf,
    /// The patch.
    pub patch: PathBuf,
    /// Where to write the new image.
    #[arg(short, long, value_name = "NEW")]
    pub output: PathBuf,
    /// Feed the patch in chunks of this many bytes, as a lock receives it.
    #[arg(long, value_name = "B", default_value_t = 244)]
    pub chunk: usize,
    /// Apply it as a lock does, on a simulated flash with the nRF52840's
    /// timing: the base read from slot 0, the output written into slot 1
    /// by the lock's installer; prints the modeled flash time.
    #[arg(long)]
    pub flash_sim: bool,
}

/// Runs `keyway patch`.
pub fn patch(a: &PatchArgs, out: &mut dyn Write) -> Result<()> {
    let old = read_bounded(
        &a.old,
        u64::from(keyway_vendor::delta::MAX_IMAGE),
        "the old image is",
    )?;
    let patch = read_bounded(&a.patch, keyway_vendor::delta::MAX_PATCH, "the patch is")?;
    let context = || format!("applying {} to {}", a.patch.display(), a.old.display());
    let new = if a.flash_sim {
        let start = std::time::Instant::now();
        let r =
            keyway_vendor::delta::apply_on_flash(&old, &patch, a.chunk).with_context(context)?;
        writeln!(
            out,
            "flash-sim (nRF52840 timing): {:.2} s modeled flash time, {} sector erases, {} bytes programmed; \
             host decode+simulation {:.2} s; at 10 KB/s the patch transfers in {:.1} s, the full image in {:.1} s",
            r.seconds,
            r.erases,
            r.bytes_written,
            start.elapsed().as_secs_f64(),
            patch.len() as f64 / 10_000.0,
            r.image.len() as f64 / 10_000.0
        )?;
        r.image
    } else {
        keyway_vendor::delta::apply(&old, &patch, a.chunk).with_context(context)?
    };
    write_said(
        &a.output,
        &new,
        false,
        out,
        format_args!(
            ", SHA-256 matches the patch header (decoder RAM {} bytes)",
            core::mem::size_of::<keyway_delta::Patcher>()
        ),
    )
}
