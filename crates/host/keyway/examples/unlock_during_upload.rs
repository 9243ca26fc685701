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

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use keyway::encode::EnvelopeBuilder;
use keyway::keys::{Algorithm, SigningKey};
use keyway_channel::SetupCode;
use keyway_cli::device::{Client, UdpTransport};
use keyway_lock::shell::{Options, start};
use keyway_lock::state::StateDir;
use keyway_smp::MgmtErr;

const VENDOR: &str = "locks.example";
const CLASS: &str = "deadbolt-2";
/// The longest a phase runs.
const PHASE_LIMIT: Duration = Duration::from_secs(120);

struct Args {
    samples: usize,
    kib: usize,
    period_ms: u64,
}

fn args() -> Result<Args> {
    let mut a = Args {
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

fn envelope(vendor: &SigningKey, sequence: u64, len: usize) -> Result<Vec<u8>> {
    Ok(EnvelopeBuilder {
        sequence,
        version: format!("1.{sequence}.0")
            .parse()
            .map_err(|e| anyhow!("{e:?}"))?,
        vendor_domain: VENDOR.into(),
        class_name: CLASS.into(),
        payload: (0..len)
            .map(|i| (i * 131 + i / 977 + sequence as usize) as u8)
            .collect(),
        keys: vec![vendor.clone()],
        ..Default::default()
    }
    .build()?
    .envelope)
}

/// A provisioned state directory (1.1.0 confirmed) with a setup code.
fn provision(dir: &Path, vendor: &SigningKey) -> Result<()> {
    let vendor_pub = dir.join("vendor.pub");
    std::fs::write(&vendor_pub, vendor.public_key().to_spki_pem()?)?;
    let factory = dir.join("factory.suit");
    std::fs::write(&factory, envelope(vendor, 1, 8000)?)?;
    let state = StateDir::new(dir.join("lock"));
    std::fs::create_dir_all(dir.join("lock"))?;
    state.provision(&[vendor_pub], 1, VENDOR, CLASS, Some(&factory), true)?;
    state.new_setup_code()?;
    Ok(())
}

/// One line on the lock's control socket (its button and label).
fn control(addr: SocketAddr, line: &str) -> Result<serde_json::Value> {
    let mut c = TcpStream::connect(addr)?;
    c.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    BufReader::new(c).read_line(&mut answer)?;
    let v: serde_json::Value = serde_json::from_str(answer.trim())
        .with_context(|| format!("the control socket answered {answer:?}"))?;
    if v["ok"] != true {
        bail!("control {line}: {v}");
    }
    Ok(v)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

type Owner = Client<UdpTransport>;

/// What the commander measured in one phase (milliseconds).
#[derive(Default)]
struct Latencies {
    unlock: Vec<f64>,
    lock: Vec<f64>,
    /// Commands sent while no upload was in flight (in an upload phase:
    /// run and checked, not counted in the figures).
    outside: usize,
}

/// The commander: a sealed unlock or lock every `period` (alternating, on
/// a fixed schedule), until `stop`. Every command must succeed. With
/// `in_flight`, a command counts only if an upload was in flight when it
/// was sent; `unlocks` counts the unlocks that counted.
fn commander(
    mut c: Owner,
    period: Duration,
    stop: Arc<AtomicBool>,
    in_flight: Option<Arc<AtomicBool>>,
    unlocks: Arc<AtomicUsize>,
) -> JoinHandle<Result<(Owner, Latencies)>> {
    std::thread::spawn(move || {
        let mut l = Latencies::default();
        let start = Instant::now();
        let (mut n, mut slot) = (0u64, 0u32);
        while !stop.load(Ordering::SeqCst) {
            let counts = in_flight.as_ref().is_none_or(|f| f.load(Ordering::SeqCst));
            let t0 = Instant::now();
            if n % 2 == 0 {
                c.unlock().context("a sealed unlock during the phase")?;
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                if counts {
                    l.unlock.push(ms);
                    unlocks.fetch_add(1, Ordering::SeqCst);
                }
            } else {
                c.lock().context("a sealed lock during the phase")?;
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                if counts {
                    l.lock.push(ms);
                }
            }
            if !counts {
                l.outside += 1;
            }
            n += 1;
            // The next slot of the schedule; a late command takes the
            // next free one.
            slot += 1;
            let now = start.elapsed();
            if period * slot < now {
                slot = u32::try_from(now.as_nanos() / period.as_nanos() + 1).unwrap_or(u32::MAX);
            }
            std::thread::sleep((period * slot).saturating_sub(now));
        }
        Ok((c, l))
    })
}

/// The uploader's side of a phase.
enum Uploader<'a> {
    Idle,
    Sealed(&'a mut Owner),
    Plain(&'a mut Owner),
}

struct Phase {
    name: &'static str,
    latencies: Latencies,
    uploads: usize,
    /// Bytes per second of each upload.
    rates: Vec<f64>,
    /// Uploads refused by the lock's rate limit (and begun again).
    waits: usize,
    secs: f64,
}

fn run_phase(
    name: &'static str,
    cmd: Owner,
    mut up: Uploader<'_>,
    a: &Args,
    vendor: &SigningKey,
    sequence: &mut u64,
) -> Result<(Owner, Phase)> {
    let stop = Arc::new(AtomicBool::new(false));
    let unlocks = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let th = commander(
        cmd,
        Duration::from_millis(a.period_ms),
        Arc::clone(&stop),
        (!matches!(up, Uploader::Idle)).then(|| Arc::clone(&in_flight)),
        Arc::clone(&unlocks),
    );
    let len = a.kib * 1024 - 400;
    let (mut uploads, mut rates, mut waits) = (0, Vec::new(), 0);
    let mut result = Ok(());
    while !th.is_finished()
        && unlocks.load(Ordering::SeqCst) < a.samples
        && t0.elapsed() < PHASE_LIMIT
    {
        let c = match &mut up {
            Uploader::Idle => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Uploader::Sealed(c) | Uploader::Plain(c) => c,
        };
        // A fresh release each time (a lock keeps no older download over
        // a newer one); made before the clock starts.
        *sequence += 1;
        let file = envelope(vendor, *sequence, len)?;
        let u0 = Instant::now();
        in_flight.store(true, Ordering::SeqCst);
        let r = c.upload(&file, &mut |_, _| {});
        in_flight.store(false, Ordering::SeqCst);
        match r {
            Ok(_) => {}
            // The lock's per-peer bucket (10 requests a second, bursts of
            // 20): a plain upload's first chunk is charged to it, so a
            // stock tool starting more than 10 uploads a second waits its
            // turn (`EBUSY`); the commands sent meanwhile do not count.
            Err(e) if e.rc() == Some(MgmtErr::Busy as u64) => {
                waits += 1;
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                result = Err(anyhow!("{e:?}").context(format!("{name}: upload {}", uploads + 1)));
                break;
            }
        }
        rates.push(file.len() as f64 / u0.elapsed().as_secs_f64());
        uploads += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let (cmd, mut latencies) = th
        .join()
        .map_err(|_| anyhow!("the commander thread panicked"))??;
    result?;
    latencies.unlock.sort_by(f64::total_cmp);
    latencies.lock.sort_by(f64::total_cmp);
    Ok((
        cmd,
        Phase {
            name,
            latencies,
            uploads,
            rates,
            waits,
            secs: t0.elapsed().as_secs_f64(),
        },
    ))
}

fn report(p: &mut Phase) {
    let u = &p.latencies.unlock;
    println!(
        "{:<14} {:>4} unlocks, {:>4} locks ({} more outside uploads) in {:>5.1} s, {:>3} uploads: unlock p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms; lock p99 {:.2} ms{}",
        p.name,
        u.len(),
        p.latencies.lock.len(),
        p.latencies.outside,
        p.secs,
        p.uploads,
        percentile(u, 50.0),
        percentile(u, 95.0),
        percentile(u, 99.0),
        u.last().copied().unwrap_or(f64::NAN),
        percentile(&p.latencies.lock, 99.0),
        if p.rates.is_empty() {
            String::new()
        } else {
            format!(
                "; upload median {:.0} KB/s, {} starts refused EBUSY",
                median(&mut p.rates) / 1e3,
                p.waits
            )
        }
    );
}

fn main() -> Result<()> {
    let a = args()?;
    let tmp = tempfile::tempdir()?;
    let vendor = SigningKey::generate(Algorithm::Ed25519)?;
    provision(tmp.path(), &vendor)?;
    let mut o = Options::new(tmp.path().join("lock"), "127.0.0.1:0".parse()?);
    o.control = Some("127.0.0.1:0".parse()?);
    let lock = start(&o)?;
    let ctl = lock.control.context("no control socket")?;
    let target = lock.smp.to_string();
    let udp = || -> Result<UdpTransport> {
        Ok(UdpTransport::connect(&target)?.with_retry(Duration::from_secs(2), 5))
    };

    // Pairing: the person at the lock opens the window and reads the label.
    let owner = SigningKey::generate(Algorithm::Ed25519)?;
    control(ctl, r#"{"cmd":"presence","seconds":60}"#)?;
    let code = control(ctl, r#"{"cmd":"setup-code"}"#)?;
    let code = code["setup_code"]
        .as_str()
        .context("the lock shows no setup code")?;
    let code = SetupCode::parse(code).map_err(|e| anyhow!("setup code {code:?}: {e:?}"))?;
    let paired = Client::new(udp()?)
        .with_owner(owner.clone())?
        .pair_with_code(&code, "bench")?;
    let session = || -> Result<Owner> {
        let mut c = Client::new(udp()?)
            .with_owner(owner.clone())?
            .with_paired_lock(paired.device_key)?;
        c.open_session()?;
        Ok(c)
    };
    let mut uploader = session()?;
    let commander = session()?;
    if !(uploader.sealed() && commander.sealed()) {
        bail!("the owner's clients did not open sessions");
    }
    let mut stock = Client::new(udp()?);
    let mut sequence = 1;
    println!(
        "keyway-lock on {target}; {} KiB releases; a sealed unlock or lock every {} ms; {} unlocks per phase",
        a.kib, a.period_ms, a.samples
    );

    let (commander, mut idle) = run_phase(
        "idle",
        commander,
        Uploader::Idle,
        &a,
        &vendor,
        &mut sequence,
    )?;
    let (commander, mut sealed) = run_phase(
        "sealed upload",
        commander,
        Uploader::Sealed(&mut uploader),
        &a,
        &vendor,
        &mut sequence,
    )?;
    // The stock tool's path needs the window (a person at the lock).
    control(ctl, r#"{"cmd":"presence","seconds":120}"#)?;
    let (commander, mut plain) = run_phase(
        "plain upload",
        commander,
        Uploader::Plain(&mut stock),
        &a,
        &vendor,
        &mut sequence,
    )?;
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
