//! One lock's update time through the hub's link, full image against
//! delta, side by side in one run: the figure the 1,000-lock ratio
//! divides by (wall time against one lock's update time × 1,000 ÷
//! concurrency).
//!
//! Each round provisions a fresh simulated lock (`keyway_lock::shell`,
//! in this process, SMP over loopback UDP) running the old image, pairs
//! the hub's identity with it by its setup code (not timed), then times,
//! through `keyway::hub::link::UdpLink` exactly as the hub calls it:
//! `push` (the sealed upload of the envelope, with the link's choice of
//! delta or full image) and `consent(true, ..)` until the lock runs the
//! new release confirmed (notes, consent, install, the lock's reset and
//! trial boot, its self-test confirm; the link polls every 10 ms). Full
//! and delta rounds alternate, so both see the same machine load.
//!
//! The images are the `shell-m4` pair (141,800 B, Cortex-M4) from
//! `../shared/data/firmware` when it is present, else a synthetic
//! 141,800-byte pair with the same kind of change (a few scattered edits).
//!
//! ```sh
//! cargo run --release -p keyway --example hub_link_bench            # 7 rounds
//! cargo run --release -p keyway --example hub_link_bench -- 3       # 3 rounds
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use keyway::hub::link::{HubIdentity, UdpLink};
use keyway_hub::link::{InstallOutcome, LockLink};
use keyway_lock::shell::{Options, Running, start};
use keyway_lock::state::StateDir;
use keyway_testkit::release::{CLASS, VENDOR, Vendor};
use keyway_vendor::keys::{Algorithm, SigningKey};

/// The old and new images, and where they came from.
fn images() -> Result<(Vec<u8>, Vec<u8>, String)> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/data/firmware/shell-m4");
    if dir.is_dir() {
        return Ok((
            std::fs::read(dir.join("old.bin"))?,
            std::fs::read(dir.join("new.bin"))?,
            "shell-m4 (../shared/data/firmware)".into(),
        ));
    }
    let old: Vec<u8> = (0..141_800usize)
        .map(|i| (i * 131 + i / 977) as u8)
        .collect();
    let mut new = old.clone();
    for at in (0..new.len()).step_by(9_973) {
        new[at] ^= 0x5a;
    }
    Ok((old, new, "synthetic 141,800 B (../shared absent)".into()))
}

fn control(lock: &Running, line: &str) -> Result<serde_json::Value> {
    use std::io::{BufRead as _, Write as _};
    let mut c = std::net::TcpStream::connect(lock.control.context("no control socket")?)?;
    writeln!(c, "{line}")?;
    let mut answer = String::new();
    std::io::BufReader::new(c).read_line(&mut answer)?;
    let v: serde_json::Value = serde_json::from_str(answer.trim())?;
    if v["ok"] != true {
        bail!("control {line}: {v}");
    }
    Ok(v)
}

/// One timed update of a fresh lock: (push s, consent-to-running s,
/// bytes sent, delta?).
fn round(
    vendor: &SigningKey,
    factory: &[u8],
    envelopes: &[&[u8]],
    hub: &HubIdentity,
) -> Result<(f64, f64, u64, bool)> {
    let tmp = tempfile::tempdir()?;
    let vendor_pub = tmp.path().join("vendor.pub");
    std::fs::write(&vendor_pub, vendor.public_key().to_spki_pem()?)?;
    let factory_file = tmp.path().join("factory.suit");
    std::fs::write(&factory_file, factory)?;
    let state = StateDir::new(tmp.path().join("lock"));
    std::fs::create_dir_all(tmp.path().join("lock"))?;
    state.provision(&[vendor_pub], 1, VENDOR, CLASS, Some(&factory_file), false)?;
    let code = state.new_setup_code()?;
    let mut o = Options::new(tmp.path().join("lock"), "127.0.0.1:0".parse()?);
    o.control = Some("127.0.0.1:0".parse()?);
    let lock = start(&o)?;
    control(&lock, r#"{"cmd":"unlock"}"#)?;
    control(&lock, r#"{"cmd":"presence","seconds":60}"#)?;
    let address = format!("udp:{}", lock.smp);
    let paired = UdpLink::udp(&address, hub, None, Duration::from_secs(2), 5)?
        .pair(&code.to_string())
        .map_err(|e| anyhow!("pairing: {e}"))?;
    let mut link = UdpLink::udp(
        &address,
        hub,
        Some(paired.device_key),
        Duration::from_secs(2),
        5,
    )?
    .with_poll(Duration::from_millis(10));
    // The session's handshake is part of every contact: not timed apart.
    let t0 = Instant::now();
    let pushed = link
        .push(envelopes, &mut |_, _| {})
        .map_err(|e| anyhow!("push: {e}"))?;
    let t1 = Instant::now();
    let outcome = link
        .consent(true, 120_000)
        .map_err(|e| anyhow!("consent: {e}"))?;
    let t2 = Instant::now();
    if outcome != InstallOutcome::Running {
        bail!("the update ended {outcome:?}");
    }
    lock.power_off();
    Ok((
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        pushed.bytes,
        pushed.delta,
    ))
}

/// (min, median, max).
fn spread(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()
        .context("the argument is the number of rounds")?
        .unwrap_or(7);
    let (old, new, source) = images()?;
    let vendor = Vendor::new();
    let hub = HubIdentity::from_key(SigningKey::generate(Algorithm::Ed25519)?)?;
    let factory = vendor.signed("1.0.0", 1, &old, None);
    let full = vendor.signed("1.1.0", 2, &new, None);
    let delta = vendor.signed("1.1.0", 2, &new, Some(&old));
    println!(
        "images: {source}; full envelope {} B, delta envelope {} B; {rounds} rounds each, alternating",
        full.len(),
        delta.len()
    );
    let mut t = [
        [Vec::new(), Vec::new(), Vec::new()],
        [Vec::new(), Vec::new(), Vec::new()],
    ];
    for r in 0..rounds {
        for (k, (name, cands)) in [
            ("full", vec![&full[..]]),
            ("delta", vec![&full[..], &delta[..]]),
        ]
        .into_iter()
        .enumerate()
        {
            let (push, install, bytes, is_delta) = round(&vendor.key, &factory, &cands, &hub)?;
            if is_delta != (k == 1) {
                bail!("the {name} round pushed delta={is_delta}");
            }
            println!(
                "round {r} {name:5}: {bytes} B pushed in {push:.3} s, consent to running {install:.3} s, total {:.3} s",
                push + install
            );
            t[k][0].push(push);
            t[k][1].push(install);
            t[k][2].push(push + install);
        }
    }
    let mut m = [[(0.0, 0.0, 0.0); 3]; 2];
    for k in 0..2 {
        for j in 0..3 {
            m[k][j] = spread(&mut t[k][j]);
        }
    }
    let cell = |(lo, mid, hi): (f64, f64, f64)| format!("{mid:.3} s ({lo:.3}–{hi:.3})");
    println!(
        "\n| | envelope | push | consent → running | one lock's update |\n|---|---|---|---|---|"
    );
    for (k, (name, len)) in [("full image", full.len()), ("delta", delta.len())]
        .into_iter()
        .enumerate()
    {
        println!(
            "| {name} | {len} B | {} | {} | {} |",
            cell(m[k][0]),
            cell(m[k][1]),
            cell(m[k][2])
        );
    }
    println!("(median (min–max) of {rounds} rounds each)");
    println!(
        "\ndelta / full (one lock's update, medians of {rounds} side-by-side rounds) = {:.3}",
        m[1][2].1 / m[0][2].1
    );
    Ok(())
}
