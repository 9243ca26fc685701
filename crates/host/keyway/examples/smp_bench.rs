//! The `keyway device` figures (issue 5 §9), printed by one run, on the
//! lock as it is now: `keyway-lock`'s brain is `keyway-agent`, the owner
//! pairs by the setup code, and every owner command (status, unlock,
//! upload, test boot) runs sealed in a session.
//!
//! 1. upload throughput of a ~300 KiB signed envelope to a lock run
//!    in-process over loopback UDP (frames of at most 1472 bytes): the
//!    owner's upload sealed in its session, as a ratio to raw UDP echo
//!    throughput (1472-byte datagrams, the same stop-and-wait pattern)
//!    measured side by side, rounds interleaved; each round also uploads
//!    the same size plain, as a stock MCUmgr tool does in the presence
//!    window (for the cost of the sealing); with the CPU time each upload
//!    took (client and lock together: loopback UDP is CPU-bound, so
//!    plain CPU / sealed CPU is the throughput ratio without the
//!    scheduling noise of a shared machine);
//! 2. unlock latency (p50, p99, max, samples) while the owner's sealed
//!    uploads run back to back: a second session of the same owner sends
//!    a sealed unlock or lock every `--period-ms` (`examples/common`'s
//!    commander, the one `unlock_during_upload` uses), and the same on the
//!    idle lock;
//! 3. modeled BLE mode, with MCUmgr's reassembly: the client reads the
//!    lock's MCUmgr parameters and sends SMP frames up to its buffer
//!    (`buf_size`, 2,056 bytes), each split into ATT writes of at most 244
//!    bytes (ATT MTU 247) that the lock reassembles, as Zephyr's
//!    `CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY` and `smpclient` do. Counted:
//!    the frames, packets and bytes the owner's client sends for the same
//!    envelope **on the sealed path** (the session's handshake, then every
//!    chunk as a record in a session frame; the test boot that is the
//!    owner's consent; the lock resets by itself; the state read after
//!    it, in a new session), to the lock's agent shell
//!    (`keyway_lock::agent_shell::AgentLock`: the agent around the real
//!    device core) in memory; and the same envelope's plain upload (a
//!    stock tool's, in the window). Link time: the frames' bytes plus 7
//!    bytes of L2CAP and ATT header a packet at 10 KB/s, plus a turnaround
//!    per frame (one response each); sealed / plain on that link; plus
//!    the nRF52840 flash time the simulated flash models for the download
//!    and the install at the reboot.
//!
//! ```text
//! cargo run --release -p keyway --example smp_bench [-- --rounds 7 --kib 300 --samples 200 --period-ms 20 --turnaround-ms 15]
//! ```

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use keyway::device::{Client, DeviceError, FnTransport, Stats, Transport};
use keyway_agent::agent::{Now, Press};
use keyway_agent::limits::PeerId;
use keyway_channel::SetupCode;
use keyway_lock::agent_shell::{self, AgentLock};
use keyway_lock::server::Server;
use keyway_smp::MgmtErr;
use keyway_vendor::keys::{Algorithm, SigningKey};

use common::{
    Owner, Paired, PhaseArgs, Phases, Uploader, control, envelope, median, percentile, provision,
    report, start_lock,
};

struct Args {
    rounds: usize,
    phase: PhaseArgs,
    turnaround_ms: f64,
}

fn args() -> Result<Args> {
    let mut a = Args {
        rounds: 7,
        phase: PhaseArgs {
            samples: 200,
            kib: 300,
            period_ms: 20,
        },
        turnaround_ms: 15.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--rounds" => a.rounds = v.parse().context("--rounds")?,
            "--kib" => a.phase.kib = v.parse().context("--kib")?,
            "--turnaround-ms" => a.turnaround_ms = v.parse().context("--turnaround-ms")?,
            "--samples" => a.phase.samples = v.parse().context("--samples")?,
            "--period-ms" => a.phase.period_ms = v.parse().context("--period-ms")?,
            _ => bail!(
                "unknown argument {k} (--rounds N, --kib N, --samples N, --period-ms MS, --turnaround-ms MS)"
            ),
        }
    }
    a.rounds = a.rounds.max(1);
    a.phase.samples = a.phase.samples.max(1);
    a.phase.kib = a.phase.kib.max(1);
    a.phase.period_ms = a.phase.period_ms.max(1);
    Ok(a)
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

/// The CPU time this process has used so far (s): the client and the
/// lock, which runs in-process, together.
fn cpu_s() -> f64 {
    // SAFETY: `getrusage` only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// One timed upload of `file`: bytes per second, the CPU time it took
/// (client and lock, s), requests, the largest chunk. A stock tool's
/// plain upload is charged to the lock's per-peer bucket and may be
/// refused `EBUSY`: it waits its turn (not timed) and begins again.
fn timed_upload(c: &mut Owner, file: &[u8]) -> Result<(f64, f64, u64, usize)> {
    let mut busy = 0;
    loop {
        let (t0, c0) = (Instant::now(), cpu_s());
        match c.upload(file, &mut |_, _| {}) {
            Ok(r) => {
                return Ok((
                    file.len() as f64 / t0.elapsed().as_secs_f64(),
                    cpu_s() - c0,
                    r.requests,
                    r.chunk,
                ));
            }
            Err(e) if e.rc() == Some(MgmtErr::Busy as u64) && busy < 20 => {
                busy += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn main() -> Result<()> {
    let a = args()?;
    let tmp = tempfile::tempdir()?;
    let vendor = SigningKey::generate(Algorithm::Ed25519)?;
    provision(tmp.path(), &vendor)?;
    let len = a.phase.kib * 1024 - 400;
    let mut sequence = 1;
    // A lock keeps no older download over a newer one: every upload is a
    // fresh release, made before the clocks start.
    let mut next = || -> Result<Vec<u8>> {
        sequence += 1;
        envelope(&vendor, sequence, len)
    };
    let rounds = (0..a.rounds)
        .map(|_| Ok([next()?, next()?]))
        .collect::<Result<Vec<_>>>()?;
    let file_len = rounds[0][0].len();

    // ---- 1 and 2: loopback UDP ------------------------------------------
    let (lock, ctl, target) = start_lock(tmp.path().join("lock"))?;
    // The owner pairs by the setup code (the window opened on the control
    // socket); two sessions of that owner: the uploader and the commander.
    let paired = Paired::pair(ctl, &target)?;
    let mut uploader = paired.session()?;
    let commander = paired.session()?;
    let mut stock = Client::new(paired.udp()?);
    // The stock tool's plain upload needs the window (a person at the lock).
    control(ctl, r#"{"cmd":"presence","seconds":120}"#)?;
    let stop_echo = Arc::new(AtomicBool::new(false));
    let (echo_addr, echo_thread) = echo_server(Arc::clone(&stop_echo))?;

    let (mut sealed_rates, mut plain_rates, mut raw_rates) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sealed_cpu, mut plain_cpu) = (Vec::new(), Vec::new());
    let (mut sealed_requests, mut plain_requests) = ((0, 0), (0, 0));
    for (round, [sealed_file, plain_file]) in rounds.iter().enumerate() {
        // The raw echo is short: its median of 15 runs.
        let mut raws = (0..15)
            .map(|_| raw_echo(echo_addr, file_len))
            .collect::<Result<Vec<_>>>()?;
        raw_rates.push(median(&mut raws));
        let (sealed, cpu, n, chunk) =
            timed_upload(&mut uploader, sealed_file).context("sealed upload")?;
        sealed_rates.push(sealed);
        sealed_cpu.push(cpu);
        sealed_requests = (n, chunk);
        let (plain, cpu, n, chunk) =
            timed_upload(&mut stock, plain_file).context("plain upload")?;
        plain_rates.push(plain);
        plain_cpu.push(cpu);
        plain_requests = (n, chunk);
        println!(
            "round {}: sealed upload {:.0} KB/s ({} resends so far), plain upload {:.0} KB/s, raw echo {:.0} KB/s",
            round + 1,
            sealed / 1e3,
            uploader.transport().stats().resends,
            plain / 1e3,
            raw_rates[round] / 1e3
        );
    }
    stop_echo.store(true, Ordering::SeqCst);
    let _ = echo_thread.join();
    let ratios = |num: &[f64], den: &[f64]| -> (f64, f64, f64) {
        let mut r: Vec<f64> = num.iter().zip(den).map(|(s, r)| s / r).collect();
        let m = median(&mut r);
        (m, r[0], r[r.len() - 1])
    };
    let sealed_raw = ratios(&sealed_rates, &raw_rates);
    let plain_raw = ratios(&plain_rates, &raw_rates);
    let sealed_plain = ratios(&sealed_rates, &plain_rates);
    // CPU: the inverse ratio of the CPU time is the throughput ratio a
    // CPU-bound loop would see.
    let cpu_ratio = ratios(&plain_cpu, &sealed_cpu);

    // The unlocks on the idle lock, then during sealed uploads.
    let mut phases = Phases {
        args: &a.phase,
        vendor: &vendor,
        sequence,
    };
    let (commander, mut idle) = phases.run("idle", commander, Uploader::Idle)?;
    let (commander, mut busy) =
        phases.run("sealed upload", commander, Uploader::Sealed(&mut uploader))?;
    let counts = (uploader.channel_counts(), commander.channel_counts());
    lock.power_off();

    let rounds = a.rounds;
    println!(
        "upload over loopback UDP, {file_len}-byte envelopes in frames <= 1472 bytes, medians over {rounds} rounds: \
         sealed (the owner's session) {:.0} KB/s in {} requests (data chunks of {} bytes), plain (a stock tool in the window) {:.0} KB/s in {} requests ({} bytes)",
        median(&mut sealed_rates) / 1e3,
        sealed_requests.0,
        sealed_requests.1,
        median(&mut plain_rates) / 1e3,
        plain_requests.0,
        plain_requests.1,
    );
    println!(
        "raw UDP echo, 1472-byte datagrams, stop-and-wait, same bytes: median {:.0} KB/s",
        median(&mut raw_rates) / 1e3
    );
    println!(
        "ratio sealed upload / raw echo: median of the per-round ratios {:.3} (range {:.3}-{:.3})",
        sealed_raw.0, sealed_raw.1, sealed_raw.2
    );
    println!(
        "ratio plain upload / raw echo: {:.3} ({:.3}-{:.3}); sealed / plain: {:.3} ({:.3}-{:.3})",
        plain_raw.0, plain_raw.1, plain_raw.2, sealed_plain.0, sealed_plain.1, sealed_plain.2
    );
    println!(
        "CPU per upload (client and lock, this process; median): sealed {:.2} ms ({:.1} us a request), plain {:.2} ms ({:.1} us a request); \
         plain CPU / sealed CPU {:.3} ({:.3}-{:.3})",
        median(&mut sealed_cpu) * 1e3,
        median(&mut sealed_cpu) * 1e6 / sealed_requests.0 as f64,
        median(&mut plain_cpu) * 1e3,
        median(&mut plain_cpu) * 1e6 / plain_requests.0 as f64,
        cpu_ratio.0,
        cpu_ratio.1,
        cpu_ratio.2
    );
    println!(
        "unlock latency, a sealed unlock or lock every {} ms from a second session of the owner:",
        a.phase.period_ms
    );
    report(&mut idle);
    report(&mut busy);
    println!(
        "unlock p99 during sealed uploads {:.2} ms (target <= 50 ms); channels: uploader {:?}, commander {:?}",
        percentile(&busy.latencies.unlock, 99.0),
        counts.0,
        counts.1
    );

    // ---- 3: modeled BLE -------------------------------------------------
    let env = envelope(&vendor, 2, len)?;
    ble_sealed(&tmp.path().join("ble"), &vendor, &env, a.turnaround_ms)
}

/// The ATT payload of one write: ATT MTU 247 less the Write Command's
/// opcode and handle.
const ATT_PAYLOAD: usize = 244;
/// The header each such packet carries on the link besides its payload:
/// L2CAP (4 bytes) and ATT (3 bytes); 244 + 7 = 251 bytes, one LE
/// link-layer PDU with data length extension.
const PACKET_HEADER: u64 = 7;
/// The modeled link's rate, bytes a second.
const LINK_RATE: f64 = 10_000.0;

/// What a transfer costs on the modeled link: (link s, turnaround s).
fn link_cost(s: &Stats, turnaround_ms: f64) -> (f64, f64) {
    (
        (s.bytes_sent + PACKET_HEADER * s.packets_sent) as f64 / LINK_RATE,
        s.frames_sent as f64 * turnaround_ms / 1e3,
    )
}

/// `b - a`, counter by counter.
fn minus(b: Stats, a: Stats) -> Stats {
    Stats {
        frames_sent: b.frames_sent - a.frames_sent,
        packets_sent: b.packets_sent - a.packets_sent,
        bytes_sent: b.bytes_sent - a.bytes_sent,
        resends: b.resends - a.resends,
        ignored: b.ignored - a.ignored,
        bytes_received: b.bytes_received - a.bytes_received,
    }
}

/// The lock's agent shell in memory, served as `keyway-lock`'s shell
/// serves a datagram (the agent, the audit records, a reset it asked for,
/// then the agent's boot), on the lock's clock.
struct Memory {
    lock: Mutex<AgentLock>,
    start: Instant,
}

impl Memory {
    /// The lock's clock (ms): past the agent's first minute after boot.
    fn now_ms(&self) -> u64 {
        120_000 + u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX / 2)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AgentLock> {
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, frame: &[u8]) -> Vec<u8> {
        let ms = self.now_ms();
        let mut l = self.lock();
        let rtc = keyway_lock::state::wall_clock_secs();
        let time = keyway_audit::Time {
            rtc,
            boot: l.server().core().boot_count().unwrap_or(0),
        };
        let answer = l.handle(PeerId(1), Now { ms, time }, frame).answer;
        let _ = l.server_mut().core_mut().commit_audit(rtc);
        if l.server_mut().poll_reset().is_some()
            && let Err(e) = l.after_boot(ms)
        {
            eprintln!("BLE model: the agent's boot: {e}");
        }
        l.server_mut().tick(ms);
        l.after_tick();
        let _ = l.server_mut().core_mut().commit_audit(rtc);
        answer
    }

    /// Modeled flash time (s): the lock's main flash, the agent's store.
    fn flash_s(&self) -> (f64, f64) {
        let l = self.lock();
        (
            l.server().core().flash().modeled_time().as_secs_f64(),
            l.agent().flash().modeled_time().as_secs_f64(),
        )
    }
}

/// The modeled BLE link to the lock in memory: frames of at most `frame`
/// bytes, carried in ATT writes of at most [`ATT_PAYLOAD`] bytes.
fn link(m: &Arc<Memory>, frame: usize) -> FnTransport<impl FnMut(&[u8]) -> Vec<u8> + use<>> {
    let m = Arc::clone(m);
    FnTransport::fragmenting(ATT_PAYLOAD, frame, move |frame: &[u8]| m.deliver(frame))
}

/// The frames, packets and bytes a stock tool's plain upload of `env`
/// sends in frames of at most `frame` bytes (answered by an endpoint that
/// takes every chunk; the lock's own answers are the same offsets).
fn ble_plain(env: &[u8], frame: usize) -> Result<(Stats, usize)> {
    let t = FnTransport::fragmenting(ATT_PAYLOAD, frame, |frame: &[u8]| {
        let Ok(req) = keyway_vendor::smp::decode_request(frame) else {
            return Vec::new();
        };
        let off = keyway_vendor::smp::get_u64(&req.body, "off")
            .ok()
            .flatten()
            .unwrap_or(0);
        let n = keyway_vendor::smp::get_bytes(&req.body, "data")
            .ok()
            .flatten()
            .map_or(0, <[u8]>::len) as u64;
        keyway_vendor::smp::encode_response(
            &req.header,
            vec![(
                keyway_vendor::smp::text("off"),
                ciborium::Value::from(off + n),
            )],
        )
    });
    let mut c = Client::new(t);
    let r = c
        .upload(env, &mut |_, _| {})
        .map_err(|e| anyhow!("modeled plain upload: {e}"))?;
    Ok((c.transport().stats(), r.chunk))
}

/// The owner's sealed update of `env` to a fresh lock in memory, counted.
fn ble_sealed(dir: &Path, vendor: &SigningKey, env: &[u8], turnaround_ms: f64) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let (state, code) = provision(dir, vendor)?;
    let mut device = state.load()?;
    let (signer, _) = state.device_signer()?;
    device
        .attach_audit(signer, state.boot_count()?)
        .map_err(|e| anyhow!(e))?;
    device.power_on().map_err(|e| anyhow!(e))?;
    let mut server = Server::new(device);
    // No auto-relock: the person's unlock below holds for the model.
    server.set_lock_config(keyway_lock::lock::Config {
        relock_ms: None,
        ..Default::default()
    });
    let start = Instant::now();
    let lock = AgentLock::new(
        server,
        agent_shell::blank_store().map_err(|e| anyhow!(e))?,
        state.device_keypair()?,
        state.setup_verifier()?.as_ref(),
        120_000,
    )
    .map_err(|e| anyhow!(e))?;
    let m = Arc::new(Memory {
        lock: Mutex::new(lock),
        start,
    });
    // Pairing (once per owner, not counted): a press opens the window, the
    // owner pairs by the code on the label; then the window closes: the
    // sealed path needs none.
    let owner = SigningKey::generate(Algorithm::Ed25519)?;
    {
        let ms = m.now_ms();
        m.lock().button(ms, Press::Short).map_err(|e| anyhow!(e))?;
    }
    // The client reads the lock's MCUmgr parameters first (anyone may):
    // its frames go up to the lock's buffer, split into ATT writes.
    let buf = Client::new(link(&m, ATT_PAYLOAD))
        .params()
        .map_err(|e| anyhow!("BLE model: the MCUmgr parameters: {e}"))?;
    let frame = usize::try_from(buf.buf_size)?;
    let device_key = pair(&m, &owner, &code, frame)?;
    {
        let mut l = m.lock();
        l.close_window();
        // A person at the door: the bolt withdrawn (a lock installs only
        // then).
        let ms = m.now_ms();
        let answer = keyway_lock::control::handle_line(l.server_mut(), r#"{"cmd":"unlock"}"#, ms);
        l.after_tick();
        if answer["ok"] != true {
            bail!("BLE model: unlock: {answer}");
        }
    }
    let mut ble = Client::new(link(&m, frame))
        .with_owner(owner)?
        .with_paired_lock(device_key)?;
    let sha: [u8; 32] =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(env)).into();
    let (f0, s0) = m.flash_s();
    ble.open_session()?;
    let hs = ble.transport().stats();
    let r = ble.upload(env, &mut |_, _| {})?;
    let up = ble.transport().stats();
    let (f1, _) = m.flash_s();
    // The owner's test boot in a session is its consent: the lock resets
    // into the update by itself.
    ble.image_test(&sha)?;
    let (f2, s2) = m.flash_s();
    // After the reset the agent knows no session: the client opens a new
    // one (the refused record, the handshake) and reads the state.
    let images = ble.image_state()?;
    if !images
        .iter()
        .any(|i| i.hash == sha && i.active && i.confirmed)
    {
        bail!("BLE model: the new image does not run confirmed after the reset: {images:?}");
    }
    let all = ble.transport().stats();
    let counts = ble.channel_counts();
    let upload = minus(up, hs);
    let (plain, plain_chunk) = ble_plain(env, frame)?;
    let (plain_link, plain_turn) = link_cost(&plain, turnaround_ms);
    let (up_link, up_turn) = link_cost(&upload, turnaround_ms);
    let (link_s, turn_s) = link_cost(&all, turnaround_ms);
    let (dl_flash, boot_flash) = (f1 - f0, f2 - f1);
    let store_flash = s2 - s0;
    println!(
        "BLE model: frames up to the lock's buffer (MCUmgr parameters: buf_size {}, buf_count {}), each in ATT writes of <= {ATT_PAYLOAD} bytes \
         the lock reassembles; the link carries {PACKET_HEADER} bytes of L2CAP and ATT header a packet at {LINK_RATE} B/s, {turnaround_ms} ms of turnaround a frame:",
        buf.buf_size, buf.buf_count
    );
    println!(
        "  plain upload (a stock tool in the window): {} frames, {} packets, {} bytes, largest data chunk {plain_chunk} bytes: link {:.1} s + turnaround {:.1} s = {:.1} s",
        plain.frames_sent,
        plain.packets_sent,
        plain.bytes_sent,
        plain_link,
        plain_turn,
        plain_link + plain_turn
    );
    println!(
        "  sealed upload (the owner's session, keyway-lock's agent shell in memory): {} frames, {} packets, {} bytes, largest data chunk {} bytes: link {:.1} s + turnaround {:.1} s = {:.1} s",
        upload.frames_sent,
        upload.packets_sent,
        upload.bytes_sent,
        r.chunk,
        up_link,
        up_turn,
        up_link + up_turn
    );
    println!(
        "  sealed / plain upload throughput on the modeled link: {:.3} ({:.3}x the frames, {:.3}x the packets, {:.3}x the bytes)",
        (plain_link + plain_turn) / (up_link + up_turn),
        upload.frames_sent as f64 / plain.frames_sent as f64,
        upload.packets_sent as f64 / plain.packets_sent as f64,
        upload.bytes_sent as f64 / plain.bytes_sent as f64
    );
    println!(
        "  the owner's whole update: session handshake {} frames ({} bytes), the upload, the test boot and the state read after the reset (a new session): \
         {} frames, {} packets, {} bytes; channel {counts:?}",
        hs.frames_sent, hs.bytes_sent, all.frames_sent, all.packets_sent, all.bytes_sent
    );
    println!(
        "  link {:.1} s + turnaround {} x {} ms = {:.1} s + nRF52840 flash: download {:.2} s, install at the reboot {:.2} s, agent store {:.3} s",
        link_s, all.frames_sent, turnaround_ms, turn_s, dl_flash, boot_flash, store_flash
    );
    println!(
        "  end to end {:.1} s ({:.1} s without the turnaround)",
        link_s + turn_s + dl_flash + boot_flash + store_flash,
        link_s + dl_flash + boot_flash + store_flash
    );
    Ok(())
}

/// Pairs `owner` with the lock in memory by `code`: its device key.
fn pair(m: &Arc<Memory>, owner: &SigningKey, code: &SetupCode, frame: usize) -> Result<[u8; 32]> {
    let r = Client::new(link(m, frame))
        .with_owner(owner.clone())?
        .pair_with_code(code, "bench")
        .map_err(|e: DeviceError| anyhow!("BLE model: pairing: {e}"))?;
    Ok(r.device_key)
}
