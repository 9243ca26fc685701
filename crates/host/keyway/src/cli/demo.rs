//! `keyway demo`: re-run itself in a network namespace with only
//! loopback (the router unplugged), then run [`crate::demo`] and print its
//! scorecard.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;

/// Arguments of `keyway demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's keys, releases, lock state and report (emptied first).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Stay in this machine's network instead of re-running under
    /// `unshare -rn` (the "router unplugged" line then says so).
    #[arg(long)]
    pub no_netns: bool,
}

/// Runs `keyway demo`.
pub fn demo(a: &DemoArgs, out: &mut dyn Write) -> Result<()> {
    let dir = a.dir.clone().unwrap_or_else(crate::demo::default_dir);
    let inside = std::env::var_os(crate::audit::netns::ENV_INSIDE).is_some();
    // Unplug the router: run this same command again in a network
    // namespace that holds only loopback.
    let mut namespace = None;
    if !inside && !a.no_netns {
        let exe = std::env::current_exe().context("finding the keyway executable")?;
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        match crate::audit::netns::reexec_isolated(&exe, &args) {
            Ok(0) => return Ok(()),
            Ok(code) => bail!("the demo in its network namespace exited with {code}"),
            Err(why) => {
                namespace = Some(Err(format!(
                    "{why}; the demo ran in this machine's network"
                )))
            }
        }
    }
    // With --no-netns too, the "router unplugged" line judges the network
    // the demo runs in: it passes only where no route leaves this machine.
    let namespace = match namespace {
        Some(n) => n,
        None => crate::demo::isolation(),
    };
    writeln!(
        out,
        "Keyway demo: an offline firmware update of a simulated lock, then its audit (files in {})",
        dir.display()
    )?;
    let outcome = crate::demo::run(&dir, namespace, out)?;
    crate::demo::print_scorecard(&outcome, out)?;
    let failed = outcome.lock_failures();
    if !failed.is_empty() {
        bail!("the lock failed: {}", failed.join("; "));
    }
    if !outcome.passed() {
        // Only the network failed: the demo's environment, not the lock.
        writeln!(
            out,
            "\nThe lock passed everything else, but this machine's network was not unplugged, \
             so \"router unplugged\" and audit check 1 FAIL: run the demo without --no-netns \
             where user namespaces are permitted (unshare -rn)."
        )?;
    }
    Ok(())
}
