//! Unlock latency during an upload, through the secure channel (issue 12:
//! "unlock p99 during an upload, still ≤ 50 ms").
//!
//! A `keyway-lock` (its brain is `keyway-agent`) serves
//! loopback UDP in this process. The owner pairs by the setup code, then
//! two clients of that owner each open their own session (an owner may
//! hold two):
//!
//! - the **uploader** sends releases back to back, each a fresh signed
//!   envelope of `--kib` KiB in sealed chunks (frames of at most 1472
//!   bytes, the client's UDP MTU);
//! - the **commander** sends a sealed `unlock` or `lock` every
//!   `--period-ms` (alternating, on a fixed schedule), and times each
//!   round trip.
//!
//! Three phases in one run, the same commander session throughout:
//!
//! 1. **idle**: no upload;
//! 2. **sealed upload**: the owner's upload through its session, the
//!    window closed (the path every owner command takes);
//! 3. **plain upload**: the same releases uploaded plain, as a stock
//!    MCUmgr tool does in the presence window (no session, no record
//!    sealing), the commands still sealed.
//!
//! In an upload phase a command counts only if it was sent while an
//! upload was in flight (the commands between two uploads run and must
//! succeed, but are not figures: a stock tool may start at most 10 uploads
//! a second, the lock's per-peer limit, and waits in between). Each phase
//! runs until `--samples` unlocks counted (or 120 s). Printed per phase:
//! unlocks and locks counted, unlock latency p50/p95/p99/max, and the
//! uploads' median throughput; then the ratios of the sealed-upload
//! phase's unlock p99 against the plain-upload phase's and the idle one's,
//! and the sealed/plain upload throughput ratio. Every command must
//! succeed (the bench fails otherwise). The figures are the simulator's on
//! loopback; one request is served at a time, so an unlock waits at most
//! for the chunk in progress.
//!
//! ```text
//! cargo run --release -p keyway --example unlock_during_upload [-- --samples 200 --kib 300 --period-ms 20]
//! ```

mod common;

use anyhow::{Context as _, Result, bail};
use keyway::device::Client;
use keyway_vendor::keys::{Algorithm, SigningKey};

use common::{
    Paired, Phase, PhaseArgs, Phases, Uploader, control, median, percentile, provision, report,
    start_lock,
};

fn args() -> Result<PhaseArgs> {
    let mut a = PhaseArgs {
        samples: 200,
        kib: 300,
        period_ms: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        // `cargo bench` passes `--bench`; it takes no value.
        if k == "--bench" {
            continue;
        }
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--samples" => a.samples = v.parse().context("--samples")?,
            "--kib" => a.kib = v.parse().context("--kib")?,
            "--period-ms" => a.period_ms = v.parse().context("--period-ms")?,
            _ => bail!("unknown argument {k} (--samples N, --kib N, --period-ms MS)"),
        }
    }
    a.samples = a.samples.max(1);
    a.kib = a.kib.max(1);
    a.period_ms = a.period_ms.max(1);
    Ok(a)
}

fn main() -> Result<()> {
    let a = args()?;
    let tmp = tempfile::tempdir()?;
    let vendor = SigningKey::generate(Algorithm::Ed25519)?;
    provision(tmp.path(), &vendor)?;
    let (lock, ctl, target) = start_lock(tmp.path().join("lock"))?;
    // Pairing: the person at the lock opens the window and reads the label.
    let paired = Paired::pair(ctl, &target)?;
    let mut uploader = paired.session()?;
    let commander = paired.session()?;
    let mut stock = Client::new(paired.udp()?);
    println!(
        "keyway-lock on {target}; {} KiB releases; a sealed unlock or lock every {} ms; {} unlocks per phase",
        a.kib, a.period_ms, a.samples
    );

    let mut phases = Phases {
        args: &a,
        vendor: &vendor,
        sequence: 1,
    };
    let (commander, mut idle) = phases.run("idle", commander, Uploader::Idle)?;
    let (commander, mut sealed) =
        phases.run("sealed upload", commander, Uploader::Sealed(&mut uploader))?;
    // The stock tool's path needs the window (a person at the lock).
    control(ctl, r#"{"cmd":"presence","seconds":120}"#)?;
    let (commander, mut plain) =
        phases.run("plain upload", commander, Uploader::Plain(&mut stock))?;
    let counts = commander.channel_counts();
    lock.power_off();

    for p in [&mut idle, &mut sealed, &mut plain] {
        report(p);
    }
    let p99 = |p: &Phase| percentile(&p.latencies.unlock, 99.0);
    println!(
        "unlock p99 during the sealed upload: {:.2} ms (target <= 50 ms); ratio to the plain upload's {:.2}x, to the idle lock's {:.2}x",
        p99(&sealed),
        p99(&sealed) / p99(&plain),
        p99(&sealed) / p99(&idle)
    );
    println!(
        "upload throughput sealed / plain (medians, same run): {:.3}",
        median(&mut sealed.rates) / median(&mut plain.rates)
    );
    println!("the commander's channel: {counts:?}");
    Ok(())
}
