//! The `keyway device` figures (issue 5 §9), printed by one run:
//!
//! 1. upload throughput of a ~300 KiB signed envelope to a lock run
//!    in-process over loopback UDP (frames of at most 1472 bytes), as a
//!    ratio to raw UDP echo throughput (1472-byte datagrams, the same
//!    stop-and-wait pattern) measured side by side, rounds interleaved;
//! 2. unlock latency (p50, p99, max, samples) while uploads run: a second
//!    thread unlocks every ~20 ms (the owner's sealed unlock, in a
//!    session with the lock it paired with by setup code; the keypad on
//!    the control socket if the lock shows no setup code);
//! 3. modeled BLE mode: the frames and bytes this client sends for the
//!    same envelope at MTU 244 (through the lock's real SMP server, in
//!    memory), at 10 KB/s, plus a per-response turnaround, plus the
//!    nRF52840 flash time the simulated flash models for the download and
//!    the install at the reboot.
//!
//! ```text
//! cargo run --release -p keyway --example smp_bench [-- --rounds 7 --kib 300 --samples 200 --turnaround-ms 15]
//! ```

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use keyway::encode::EnvelopeBuilder;
use keyway::keys::{Algorithm, SigningKey};
use keyway_agent::agent::{Now, Press};
use keyway_agent::limits::PeerId;
use keyway_cli::device::{Client, FnTransport, Transport, UdpTransport};
use keyway_lock::agent_shell::{AgentLock, blank_store};
use keyway_lock::server::Server;
use keyway_lock::shell::{Options, start};
use keyway_lock::state::StateDir;

const VENDOR: &str = "locks.example";
const CLASS: &str = "deadbolt-2";
const PIN: &str = "4711";

struct Args {
    rounds: usize,
    kib: usize,
    turnaround_ms: f64,
    samples: usize,
}

fn args() -> Result<Args> {
    let mut a = Args {
        rounds: 7,
        kib: 300,
        turnaround_ms: 15.0,
        samples: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--rounds" => a.rounds = v.parse().context("--rounds")?,
            "--kib" => a.kib = v.parse().context("--kib")?,
            "--turnaround-ms" => a.turnaround_ms = v.parse().context("--turnaround-ms")?,
            "--samples" => a.samples = v.parse().context("--samples")?,
            _ => {
                bail!("unknown argument {k} (--rounds N, --kib N, --turnaround-ms MS, --samples N)")
            }
        }
    }
    a.rounds = a.rounds.max(1);
    Ok(a)
}

fn envelope(vendor: &SigningKey, version: &str, sequence: u64, len: usize) -> Result<Vec<u8>> {
    Ok(EnvelopeBuilder {
        sequence,
        version: version.parse().map_err(|e| anyhow!("{e:?}"))?,
        vendor_domain: VENDOR.into(),
        class_name: CLASS.into(),
        payload: (0..len).map(|i| (i * 131 + i / 977) as u8).collect(),
        keys: vec![vendor.clone()],
        ..Default::default()
    }
    .build()?
    .envelope)
}

/// A provisioned state directory with 1.0.0 (sequence 1) confirmed.
fn provision(dir: &Path, vendor: &SigningKey) -> Result<StateDir> {
    let vendor_pub = dir.join("vendor.pub");
    std::fs::write(&vendor_pub, vendor.public_key().to_spki_pem()?)?;
    let factory = dir.join("factory.suit");
    std::fs::write(&factory, envelope(vendor, "1.0.0", 1, 8000)?)?;
    let state = StateDir::new(dir.join("lock"));
    std::fs::create_dir_all(dir.join("lock"))?;
    state.set_pin(PIN)?;
    state.provision(&[vendor_pub], 1, VENDOR, CLASS, Some(&factory), true)?;
    Ok(state)
}

/// A raw UDP echo server on loopback, until `stop`.
fn echo_server(stop: Arc<AtomicBool>) -> Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    let addr = s.local_addr()?;
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::SeqCst) {
            if let Ok((n, p)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], p);
            }
        }
    });
    Ok((addr, t))
}

/// Stop-and-wait echo of `bytes` in 1472-byte datagrams: bytes per second.
fn raw_echo(server: SocketAddr, bytes: usize) -> Result<f64> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.connect(server)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let out = [0x5Au8; 1472];
    let mut buf = [0u8; 2048];
    let n = bytes.div_ceil(1472);
    let start = Instant::now();
    for _ in 0..n {
        s.send(&out)?;
        let got = s.recv(&mut buf).context("raw echo: no answer")?;
        if got != out.len() {
            bail!("raw echo answered {got} bytes");
        }
    }
    Ok((n * 1472) as f64 / start.elapsed().as_secs_f64())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

/// The setup code the control socket shows (`None`: the lock has none).
fn setup_code(control: SocketAddr) -> Result<Option<keyway_channel::SetupCode>> {
    let conn = TcpStream::connect(control)?;
    let mut out = conn.try_clone()?;
    out.write_all(b"{\"cmd\":\"setup-code\"}\n")?;
    let line = BufReader::new(conn)
        .lines()
        .next()
        .context("control socket closed")??;
    let v: serde_json::Value = serde_json::from_str(&line)?;
    Ok(v.get("setup_code")
        .and_then(|c| c.as_str())
        .and_then(|c| keyway_channel::SetupCode::parse(c).ok()))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Unlocks every ~20 ms until `stop`; returns the latencies in ms.
fn unlocker(
    lock_smp: SocketAddr,
    control: SocketAddr,
    owner: Option<(SigningKey, [u8; 32])>,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Result<Vec<f64>>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        if let Some((owner, device_key)) = owner {
            let t =
                UdpTransport::connect(&lock_smp.to_string())?.with_retry(Duration::from_secs(2), 3);
            let mut c = Client::new(t)
                .with_owner(owner)?
                .with_paired_lock(device_key)?;
            while !stop.load(Ordering::SeqCst) {
                let t0 = Instant::now();
                c.unlock()?;
                samples.push(t0.elapsed().as_secs_f64() * 1e3);
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            let conn = TcpStream::connect(control)?;
            conn.set_nodelay(true)?;
            let mut out = conn.try_clone()?;
            let mut lines = BufReader::new(conn).lines();
            while !stop.load(Ordering::SeqCst) {
                let t0 = Instant::now();
                out.write_all(format!("{{\"cmd\":\"keypad\",\"pin\":\"{PIN}\"}}\n").as_bytes())?;
                let a = lines.next().context("control socket closed")??;
                samples.push(t0.elapsed().as_secs_f64() * 1e3);
                count.fetch_add(1, Ordering::SeqCst);
                if !a.contains("unlocked") {
                    bail!("keypad answered {a}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(samples)
    })
}

fn main() -> Result<()> {
    let a = args()?;
    let tmp = tempfile::tempdir()?;
    let vendor = SigningKey::generate(Algorithm::Ed25519)?;
    provision(tmp.path(), &vendor)?;
    // Each upload is a newer release than the last (sequence 2, 3, ...):
    // it replaces the pending one in slot 1. (The lock agent refuses a
    // window upload that is not newer than the pending update.)
    let len = a.kib * 1024 - 400;
    let release = |n: usize| envelope(&vendor, &format!("1.1.{n}"), 2 + n as u64, len);
    let first = release(0)?;
    let file_len = first.len();
    let mut next = 0usize;

    // ---- 1 and 2: loopback UDP ------------------------------------------
    let mut o = Options::new(tmp.path().join("lock"), "127.0.0.1:0".parse()?);
    o.presence_always_open = true;
    o.control = Some("127.0.0.1:0".parse()?);
    o.relock_seconds = 1;
    let lock = start(&o)?;
    let control = lock.control.context("no control socket")?;
    let mut c = Client::new(
        UdpTransport::connect(&lock.smp.to_string())?.with_retry(Duration::from_secs(2), 5),
    );
    // The owner's sealed unlock: pair by the setup code the control
    // socket shows (the label's), in the open presence window.
    let owner = match setup_code(control)? {
        Some(code) => {
            let key = SigningKey::generate(Algorithm::Ed25519)?;
            let r = Client::new(
                UdpTransport::connect(&lock.smp.to_string())?.with_retry(Duration::from_secs(2), 5),
            )
            .with_owner(key.clone())?
            .pair_with_code(&code, "bench")?;
            Some((key, r.device_key))
        }
        None => None,
    };
    let how = if owner.is_some() {
        "the owner's sealed SMP unlock, in a session"
    } else {
        "keypad PIN over the control socket (the lock has no Keyway group)"
    };
    let stop_echo = Arc::new(AtomicBool::new(false));
    let (echo_addr, echo_thread) = echo_server(Arc::clone(&stop_echo))?;

    let (mut smp_rates, mut raw_rates, mut latencies) = (Vec::new(), Vec::new(), Vec::new());
    let (mut requests, mut chunk) = (0, 0);
    for round in 0..a.rounds {
        // The raw echo is short: its median of 15 runs.
        let mut raws = (0..15)
            .map(|_| raw_echo(echo_addr, file_len))
            .collect::<Result<Vec<_>>>()?;
        raw_rates.push(median(&mut raws));
        let t0 = Instant::now();
        let env = release(next)?;
        next += 1;
        let r = c.upload(&env, &mut |_, _| {})?;
        let secs = t0.elapsed().as_secs_f64();
        smp_rates.push(file_len as f64 / secs);
        requests = r.requests;
        chunk = r.chunk;
        let s = c.transport().stats();
        println!(
            "round {}: upload {:.0} KB/s ({} requests, {} resends so far), raw echo {:.0} KB/s",
            round + 1,
            file_len as f64 / secs / 1e3,
            r.requests,
            s.resends,
            raw_rates[round] / 1e3
        );
    }
    stop_echo.store(true, Ordering::SeqCst);
    let _ = echo_thread.join();
    // The same unlocks on an idle lock, for reference: 1 s of them.
    let stop = Arc::new(AtomicBool::new(false));
    let idle = unlocker(
        lock.smp,
        control,
        owner.clone(),
        Arc::clone(&stop),
        Arc::new(AtomicUsize::new(0)),
    );
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    let mut idle = idle
        .join()
        .map_err(|_| anyhow!("unlock thread panicked"))??;
    idle.sort_by(f64::total_cmp);
    // Unlocks while uploads run back to back: at least `--samples`
    // samples, at most 60 s.
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(AtomicUsize::new(0));
    let unl = unlocker(
        lock.smp,
        control,
        owner.clone(),
        Arc::clone(&stop),
        Arc::clone(&samples),
    );
    let t0 = Instant::now();
    let mut uploads = 0;
    while t0.elapsed() < Duration::from_secs(60) {
        let env = release(next)?;
        next += 1;
        c.upload(&env, &mut |_, _| {})?;
        uploads += 1;
        if unl.is_finished() || samples.load(Ordering::SeqCst) >= a.samples {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    latencies.extend(
        unl.join()
            .map_err(|_| anyhow!("unlock thread panicked"))??,
    );
    lock.power_off();
    let mut ratios: Vec<f64> = smp_rates
        .iter()
        .zip(&raw_rates)
        .map(|(s, r)| s / r)
        .collect();
    let ratio = median(&mut ratios);
    let (lo, hi) = (ratios[0], ratios[ratios.len() - 1]);
    let (smp, raw) = (median(&mut smp_rates), median(&mut raw_rates));
    println!(
        "upload over loopback UDP, {file_len}-byte envelope in frames <= 1472 bytes ({requests} requests, data chunks of {chunk} bytes): median {:.0} KB/s over {} rounds",
        smp / 1e3,
        a.rounds
    );
    println!(
        "raw UDP echo, 1472-byte datagrams, stop-and-wait, same bytes: median {:.0} KB/s",
        raw / 1e3
    );
    println!(
        "ratio upload / raw echo: median of the per-round ratios {ratio:.3} (range {lo:.3}-{hi:.3})"
    );
    latencies.sort_by(f64::total_cmp);
    println!(
        "unlock latency during {uploads} back-to-back uploads ({how}): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} samples (target p99 <= 50 ms)",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
        latencies.len()
    );

    println!(
        "unlock latency on the idle lock: p50 {:.2} ms, p99 {:.2} ms, {} samples",
        percentile(&idle, 50.0),
        percentile(&idle, 99.0),
        idle.len()
    );

    // ---- 3: modeled BLE -------------------------------------------------
    // A fresh lock: 1.0.0 confirmed, slot 1 empty.
    let state = provision(tmp.path(), &vendor)?;
    let mut lock = state.load()?;
    let (signer, _) = state.device_signer()?;
    lock.attach_audit(signer, state.boot_count()?)
        .map_err(|e| anyhow!(e))?;
    lock.power_on().map_err(|e| anyhow!(e))?;
    let mut server = Server::new(lock);
    server.set_presence_always_open(true);
    // A person at the door: the bolt withdrawn (a lock installs only then).
    let answer = keyway_lock::control::handle_line(&mut server, r#"{"cmd":"unlock"}"#, 0);
    if answer["ok"] != true {
        bail!("BLE model: unlock: {answer}");
    }
    // Every frame through the lock agent, as `keyway-lock` runs it; the
    // person at the door keeps the presence window open.
    let agent = AgentLock::new(
        server,
        blank_store().map_err(|e| anyhow!(e))?,
        state.device_keypair()?,
        None,
        0,
    )
    .map_err(|e| anyhow!(e))?;
    let server = Arc::new(Mutex::new(agent));
    let peer = Arc::clone(&server);
    let flash_s = |s: &Arc<Mutex<AgentLock>>| -> Result<f64> {
        let s = s
            .lock()
            .map_err(|_| anyhow!("the lock's state mutex is poisoned (a thread panicked)"))?;
        Ok(s.server().lock().flash().modeled_time().as_secs_f64())
    };
    let t = FnTransport::new(244, move |frame: &[u8]| {
        let mut s = peer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.server().presence_open(0) && !s.agent().window_open(0) {
            let _ = s.button(0, Press::Short);
        }
        let now = Now {
            ms: 0,
            time: keyway_audit::Time {
                rtc: 1_760_000_000,
                boot: 1,
            },
        };
        let r = s.handle(PeerId(1), now, frame).answer;
        if s.server_mut().poll_reset().is_some() {
            let _ = s.after_boot(0);
        }
        let _ = s.server_mut().lock_mut().commit_audit(0);
        r
    });
    let mut ble = Client::new(t);
    let env = &first;
    let sha: [u8; 32] =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(env)).into();
    let f0 = flash_s(&server)?;
    let r = ble.upload(env, &mut |_, _| {})?;
    let up = ble.transport().stats();
    let f1 = flash_s(&server)?;
    ble.image_test(&sha)?;
    ble.reset()?;
    let f2 = flash_s(&server)?;
    let images = ble.image_state()?;
    let ok = images
        .iter()
        .any(|i| i.hash == sha && i.active && i.confirmed);
    if !ok {
        bail!("BLE model: the new image does not run confirmed after the reset");
    }
    let all = ble.transport().stats();
    let link_s = all.bytes_sent as f64 / 10_000.0;
    let turn_s = all.frames_sent as f64 * a.turnaround_ms / 1e3;
    let (dl_flash, boot_flash) = (f1 - f0, f2 - f1);
    println!(
        "BLE model, MTU 244: {} upload requests ({} bytes of frames for a {}-byte envelope, largest data chunk {} bytes); \
         with test+reset+state {} frames, {} bytes",
        up.frames_sent,
        up.bytes_sent,
        env.len(),
        r.chunk,
        all.frames_sent,
        all.bytes_sent
    );
    println!(
        "  link at 10 KB/s {:.1} s + turnaround {} x {} ms = {:.1} s + nRF52840 flash: download {:.2} s, install at the reboot {:.2} s",
        link_s, all.frames_sent, a.turnaround_ms, turn_s, dl_flash, boot_flash
    );
    println!(
        "  end to end {:.1} s ({:.1} s without the turnaround)",
        link_s + turn_s + dl_flash + boot_flash,
        link_s + dl_flash + boot_flash
    );
    Ok(())
}
