//! What the examples that drive `keyway-lock` over loopback UDP share
//! (`smp_bench`, `unlock_during_upload`): a lock provisioned with a setup
//! code in a temporary directory, the owner paired by that code (the
//! person at the lock opens the window on the control socket and reads
//! the label), sessions of that owner, fresh signed releases, and the
//! commander that times sealed unlocks and locks while uploads run.
//!
//! A lock keeps no older download over a newer one, so every upload is a
//! fresh release (the next sequence number), made before its clock
//! starts.

// Each example uses part of this module.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use keyway::device::{Client, UdpTransport};
use keyway_channel::SetupCode;
use keyway_lock::shell::{Options, Running, start};
use keyway_lock::state::StateDir;
use keyway_smp::MgmtErr;
use keyway_vendor::encode::EnvelopeBuilder;
use keyway_vendor::keys::{Algorithm, SigningKey};

pub const VENDOR: &str = "locks.example";
pub const CLASS: &str = "deadbolt-2";
/// The longest a phase runs.
pub const PHASE_LIMIT: Duration = Duration::from_secs(120);

/// A signed release `1.<sequence>.0` with a `len`-byte payload.
pub fn envelope(vendor: &SigningKey, sequence: u64, len: usize) -> Result<Vec<u8>> {
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

/// A provisioned state directory `dir/lock` (release 1.1.0, sequence 1,
/// confirmed) with a new setup code, which it returns (the label).
pub fn provision(dir: &Path, vendor: &SigningKey) -> Result<(StateDir, SetupCode)> {
    let vendor_pub = dir.join("vendor.pub");
    std::fs::write(&vendor_pub, vendor.public_key().to_spki_pem()?)?;
    let factory = dir.join("factory.suit");
    std::fs::write(&factory, envelope(vendor, 1, 8000)?)?;
    let state = StateDir::new(dir.join("lock"));
    std::fs::create_dir_all(dir.join("lock"))?;
    state.provision(&[vendor_pub], 1, VENDOR, CLASS, Some(&factory), true)?;
    let code = state.new_setup_code()?;
    Ok((state, code))
}

/// The lock on `state`, serving SMP and a control socket on loopback: the
/// running lock, its control address and its SMP target.
pub fn start_lock(state: std::path::PathBuf) -> Result<(Running, SocketAddr, String)> {
    let mut o = Options::new(state, "127.0.0.1:0".parse()?);
    o.control = Some("127.0.0.1:0".parse()?);
    let lock = start(&o)?;
    let ctl = lock.control.context("no control socket")?;
    let target = lock.smp.to_string();
    Ok((lock, ctl, target))
}

/// One line on the lock's control socket (its button and label).
pub fn control(addr: SocketAddr, line: &str) -> Result<serde_json::Value> {
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

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub type Owner = Client<UdpTransport>;

/// An owner paired with the lock at `target` by its setup code.
pub struct Paired {
    pub owner: SigningKey,
    pub device_key: [u8; 32],
    pub target: String,
}

impl Paired {
    /// Pairing: the person at the lock opens the window (`presence` on
    /// the control socket `ctl`) and reads the label (`setup-code`); a
    /// new owner key pairs with that code.
    pub fn pair(ctl: SocketAddr, target: &str) -> Result<Self> {
        let owner = SigningKey::generate(Algorithm::Ed25519)?;
        control(ctl, r#"{"cmd":"presence","seconds":60}"#)?;
        let code = control(ctl, r#"{"cmd":"setup-code"}"#)?;
        let code = code["setup_code"]
            .as_str()
            .context("the lock shows no setup code")?;
        let code = SetupCode::parse(code).map_err(|e| anyhow!("setup code {code:?}: {e:?}"))?;
        let mut p = Paired {
            owner,
            device_key: [0; 32],
            target: target.to_owned(),
        };
        p.device_key = Client::new(p.udp()?)
            .with_owner(p.owner.clone())?
            .pair_with_code(&code, "bench")?
            .device_key;
        Ok(p)
    }

    /// A UDP transport to the lock (2 s timeout, 5 tries).
    pub fn udp(&self) -> Result<UdpTransport> {
        Ok(UdpTransport::connect(&self.target)?.with_retry(Duration::from_secs(2), 5))
    }

    /// A client of this owner (its own socket) with a session open: every
    /// call runs sealed.
    pub fn session(&self) -> Result<Owner> {
        let mut c = Client::new(self.udp()?)
            .with_owner(self.owner.clone())?
            .with_paired_lock(self.device_key)?;
        c.open_session()?;
        if !c.sealed() {
            bail!("the owner's client did not open a session");
        }
        Ok(c)
    }
}

/// What the commander measured in one phase (milliseconds).
#[derive(Default)]
pub struct Latencies {
    pub unlock: Vec<f64>,
    pub lock: Vec<f64>,
    /// Commands sent while no upload was in flight (in an upload phase:
    /// run and checked, not counted in the figures).
    pub outside: usize,
}

/// The commander: a sealed unlock or lock every `period` (alternating, on
/// a fixed schedule), until `stop`. Every command must succeed. With
/// `in_flight`, a command counts only if an upload was in flight when it
/// was sent; `unlocks` counts the unlocks that counted.
pub fn commander(
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

/// A phase's parameters: at least `samples` counted unlocks (or
/// [`PHASE_LIMIT`]), `kib`-KiB releases, a command every `period_ms`.
pub struct PhaseArgs {
    pub samples: usize,
    pub kib: usize,
    pub period_ms: u64,
}

/// The uploader's side of a phase.
pub enum Uploader<'a> {
    Idle,
    Sealed(&'a mut Owner),
    Plain(&'a mut Owner),
}

pub struct Phase {
    pub name: &'static str,
    pub latencies: Latencies,
    pub uploads: usize,
    /// Bytes per second of each upload.
    pub rates: Vec<f64>,
    /// Uploads refused by the lock's rate limit (and begun again).
    pub waits: usize,
    pub secs: f64,
}

/// The phases of one run: their parameters, the vendor signing each
/// upload's fresh release, and the last sequence number signed.
pub struct Phases<'a> {
    pub args: &'a PhaseArgs,
    pub vendor: &'a SigningKey,
    pub sequence: u64,
}

impl Phases<'_> {
    /// One phase: the commander on `cmd` while `up` uploads fresh
    /// releases back to back (the next sequence each), until enough
    /// unlocks counted.
    pub fn run(
        &mut self,
        name: &'static str,
        cmd: Owner,
        up: Uploader<'_>,
    ) -> Result<(Owner, Phase)> {
        run_phase(name, cmd, up, self.args, self.vendor, &mut self.sequence)
    }
}

fn run_phase(
    name: &'static str,
    cmd: Owner,
    mut up: Uploader<'_>,
    a: &PhaseArgs,
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
        // A fresh release each time, made before the clock starts.
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

/// One line per phase: counts, unlock p50/p95/p99/max, lock p99, and the
/// uploads' median throughput.
pub fn report(p: &mut Phase) {
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
