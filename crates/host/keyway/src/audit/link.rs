//! The audit's two channels to a lock: SMP over UDP, through the owner's
//! client library ([`crate::device::Client`]: framing, owner
//! authentication, uploads, refusals as sentences), and the optional
//! line-delimited JSON control socket (the lock's hardware: its button,
//! keypad, sensors and power, on the simulated lock).
//!
//! The adapter adds what an audit needs on top of the client: an answer
//! that may be a refusal (evidence, not an error), "no answer" as an
//! outcome (a power cut), and short waits while a cut is expected.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use keyway_vendor::keys::SigningKey;
use keyway_vendor::smp::Op;

use crate::device::{Client, DeviceError, TargetTransport, TransportError};

/// The image group's slot list entry.
pub use crate::device::ImageSlot as SlotState;

/// Keyway group command ids the audit sends directly (FORMAT.md).
pub mod kw {
    /// status (read).
    pub const STATUS: u8 = 0;
    /// notes of the pending update (read).
    pub const NOTES: u8 = 4;
}

/// A CBOR map body.
pub type Body = Vec<(ciborium::Value, ciborium::Value)>;

/// What a lock answered: its body, or a refusal.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A body without an error.
    Ok(Body),
    /// A top-level `rc` or a group error.
    Err {
        /// The code.
        rc: u64,
        /// The client's sentence for it (the call, the group, the reason).
        sentence: String,
    },
}

impl Answer {
    /// The body, or an error naming the refusal.
    pub fn ok(self, what: &str) -> Result<Body> {
        match self {
            Answer::Ok(b) => Ok(b),
            Answer::Err { sentence, .. } => bail!("{what}: {sentence}"),
        }
    }

    /// One line: `ok`, or the refusal.
    pub fn describe(&self) -> String {
        match self {
            Answer::Ok(_) => "ok".to_owned(),
            Answer::Err { sentence, .. } => sentence.clone(),
        }
    }

    /// Whether the lock refused.
    pub fn is_err(&self) -> bool {
        matches!(self, Answer::Err { .. })
    }
}

/// A call's outcome: answered (maybe a refusal), or no answer at all.
fn outcome(r: Result<Body, DeviceError>) -> Result<Option<Answer>> {
    match r {
        Ok(b) => Ok(Some(Answer::Ok(b))),
        Err(e @ (DeviceError::Refused { .. } | DeviceError::GroupRefused { .. })) => {
            Ok(Some(Answer::Err {
                rc: e.rc().unwrap_or(0),
                sentence: e.to_string(),
            }))
        }
        Err(DeviceError::Transport {
            why: TransportError::NoAnswer { .. },
            ..
        }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// SMP to one lock, as one owner (or none).
#[derive(Debug)]
pub struct Smp {
    /// The target string (`udp:H:P`, `serial:PATH`).
    addr: String,
    owner: Option<SigningKey>,
    /// The lock's device key, when the owner paired by its setup code:
    /// owner commands run in a session that proves it.
    paired: Option<[u8; 32]>,
    timeout: Duration,
    /// A short, single wait while a power cut is expected.
    window: Option<Duration>,
    client: Client<TargetTransport>,
}

/// How often a request is sent before it counts as unanswered, outside
/// the windows where a power cut is expected.
const TRIES: u32 = 3;

impl Smp {
    /// A client for the lock at `target` (`udp:HOST:PORT` or
    /// `serial:PATH`), without an owner key.
    pub fn connect(target: &str) -> Result<Smp> {
        let timeout = Duration::from_millis(700);
        let addr = target.to_owned();
        Ok(Smp {
            client: build(&addr, None, None, timeout, TRIES)?,
            addr,
            owner: None,
            paired: None,
            timeout,
            window: None,
        })
    }

    fn rebuild(&mut self) -> Result<()> {
        let (t, n) = match self.window {
            Some(t) => (t, 1),
            None => (self.timeout, TRIES),
        };
        self.client = build(&self.addr, self.owner.clone(), self.paired, t, n)?;
        Ok(())
    }

    /// The lock's device key the owner paired with (`None`: no session;
    /// the owner's commands go in the clear, and the lock refuses them).
    pub fn set_paired(&mut self, device_key: Option<[u8; 32]>) -> Result<()> {
        self.paired = device_key;
        self.rebuild()
    }

    /// The owner's client (its session, if paired).
    pub fn client(&mut self) -> &mut Client<TargetTransport> {
        &mut self.client
    }

    /// The lock's device key the owner paired with by the setup code.
    pub fn paired(&self) -> Option<[u8; 32]> {
        self.paired
    }

    /// Pairs `key` by the lock's setup `code` (the presence window must
    /// be open); on success the owner's commands run in sessions with the
    /// device key the pairing authenticated.
    pub fn pair_by_code(
        &mut self,
        key: &SigningKey,
        code: &keyway_channel::SetupCode,
    ) -> Result<Answer> {
        let mut c = build(&self.addr, Some(key.clone()), None, self.timeout, TRIES)?;
        match c.pair_with_code(code, "keyway-audit") {
            Ok(r) => {
                self.owner = Some(key.clone());
                self.paired = Some(r.device_key);
                self.rebuild()?;
                Ok(Answer::Ok(vec![(
                    ciborium::Value::Text("owners".into()),
                    ciborium::Value::from(r.owners),
                )]))
            }
            Err(e) => outcome(Err(e))?
                .ok_or_else(|| anyhow!("no answer from the lock at {} (pair)", self.addr)),
        }
    }

    /// Uses `owner` as the owner key from now on (its commands run in a
    /// session once [`Smp::set_paired`] names the lock's device key).
    pub fn set_owner(&mut self, owner: Option<SigningKey>) -> Result<()> {
        self.owner = owner;
        self.rebuild()
    }

    /// While a power cut is expected (`Some`): each request waits this
    /// long once, and no answer is an outcome, not a reason to resend.
    /// With an owner in a session the client (its socket, its session
    /// with the lock) stays: a lock that runs the agent limits handshakes
    /// from new addresses. Otherwise a new client (a new socket: the old
    /// lock limits each address's requests).
    pub fn set_window(&mut self, window: Option<Duration>) -> Result<()> {
        self.window = window;
        if self.paired.is_none() {
            return self.rebuild();
        }
        let (t, n) = match window {
            Some(t) => (t, 1),
            None => (self.timeout, TRIES),
        };
        self.client.transport_mut().set_retry(t, n);
        Ok(())
    }

    /// Runs `f` with a client that waits `timeout` once, without
    /// resending: the window in which a power cut is expected.
    pub fn once<R>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&mut Client<TargetTransport>) -> R,
    ) -> Result<R> {
        if self.paired.is_none() {
            let mut c = build(&self.addr, self.owner.clone(), None, timeout, 1)?;
            return Ok(f(&mut c));
        }
        // The same client (socket and session), waiting once.
        let before = self.client.transport_mut().retry();
        self.client.transport_mut().set_retry(timeout, 1);
        let r = f(&mut self.client);
        self.client.transport_mut().set_retry(before.0, before.1);
        Ok(r)
    }

    /// Sends one request and waits for its answer (`None`: no answer,
    /// e.g. the lock lost power).
    pub fn try_request(&mut self, op: Op, grp: u16, id: u8, body: Body) -> Result<Option<Answer>> {
        outcome(self.client.request("request", op, grp, id, body))
    }

    /// [`Smp::try_request`] with a single short wait.
    pub fn try_request_once(
        &mut self,
        timeout: Duration,
        op: Op,
        grp: u16,
        id: u8,
        body: Body,
    ) -> Result<Option<Answer>> {
        self.once(timeout, |c| {
            outcome(c.request("request", op, grp, id, body))
        })?
    }

    /// Sends one request; no answer is an error.
    pub fn request(&mut self, op: Op, grp: u16, id: u8, body: Body) -> Result<Answer> {
        self.try_request(op, grp, id, body)?.ok_or_else(|| {
            anyhow!(
                "no answer from the lock at {} (group {grp} command {id})",
                self.addr
            )
        })
    }

    /// Waits until the lock answers an echo (after a reset or a power cut).
    pub fn wait_up(&mut self, within: Duration) -> Result<()> {
        let end = Instant::now() + within;
        loop {
            // A serial line at 115200 baud to an emulated lock answers
            // slower than a datagram on loopback.
            let wait = if self.addr.starts_with("serial:") {
                Duration::from_millis(1000)
            } else {
                Duration::from_millis(200)
            };
            let up = self.once(wait, |c| c.echo("audit").is_ok())?;
            if up {
                return Ok(());
            }
            if Instant::now() > end {
                bail!(
                    "the lock at {} did not answer an echo within {} s",
                    self.addr,
                    within.as_secs()
                );
            }
        }
    }

    /// An owner command (lock, unlock, consent): `Err` only when the
    /// request could not be made or went unanswered.
    pub fn owner_call(
        &mut self,
        f: impl FnOnce(&mut Client<TargetTransport>) -> Result<Body, DeviceError>,
    ) -> Result<Answer> {
        outcome(f(&mut self.client))?
            .ok_or_else(|| anyhow!("no answer from the lock at {}", self.addr))
    }

    /// The Keyway group's `status`.
    pub fn status(&mut self) -> Result<Body> {
        Ok(self.client.status()?)
    }

    /// The image group's state read: the slots.
    pub fn images(&mut self) -> Result<Vec<SlotState>> {
        Ok(self.client.image_state()?)
    }

    /// The running image (`None`: recovery).
    pub fn running(&mut self) -> Result<Option<SlotState>> {
        Ok(self.images()?.into_iter().find(|s| s.active))
    }

    /// The audit-log export file, over the Keyway group's `log` command.
    pub fn log_export(&mut self) -> Result<Vec<u8>> {
        Ok(self.client.log_export(&mut |_, _| {})?)
    }

    /// The attack the channel checks try: a plain Keyway-group `pair`
    /// (command 8) carrying only `key`'s public key, no setup code and no
    /// session. The owner's client no longer sends it; a lock that pairs
    /// on it has an open pairing (check 13).
    pub fn pair(&mut self, key: &SigningKey) -> Result<Answer> {
        let raw: [u8; 32] = key
            .raw_public_key_bytes()
            .try_into()
            .map_err(|_| anyhow!("an owner key must be Ed25519"))?;
        let body = vec![
            (
                keyway_vendor::smp::text("key"),
                ciborium::Value::Bytes(raw.to_vec()),
            ),
            (
                keyway_vendor::smp::text("name"),
                keyway_vendor::smp::text("keyway-audit"),
            ),
        ];
        self.request(
            Op::Write,
            keyway_vendor::smp::group::KEYWAY,
            keyway_smp::keyway_group::cmd::PAIR,
            body,
        )
    }

    /// Uploads `file` (an envelope) as the owner (or, without one, in the
    /// presence window), through the client's upload. `between(offset)`
    /// runs after each answer (to cut power or sample latency mid-upload),
    /// then `pace` passes.
    pub fn upload(
        &mut self,
        file: &[u8],
        pace: Duration,
        between: &mut dyn FnMut(u64) -> bool,
    ) -> Result<UploadOutcome> {
        let mut at = 0u64;
        let mut progress = |done: u64, _total: u64| {
            at = done;
            between(done);
            if !pace.is_zero() {
                std::thread::sleep(pace);
            }
        };
        let r = self.client.upload(file, &mut progress);
        Ok(match r {
            Ok(rep) => UploadOutcome::Done {
                resumed_at: (rep.resumed_from > 0).then_some(rep.resumed_from),
                requests: u32::try_from(rep.requests).unwrap_or(u32::MAX),
            },
            Err(e) => match outcome(Err(e))? {
                Some(answer) => UploadOutcome::Refused { at, answer },
                None => UploadOutcome::NoAnswer { at },
            },
        })
    }
}

fn build(
    addr: &str,
    owner: Option<SigningKey>,
    paired: Option<[u8; 32]>,
    timeout: Duration,
    tries: u32,
) -> Result<Client<TargetTransport>> {
    let t = TargetTransport::connect(addr)?.with_retry(timeout, tries);
    let c = Client::new(t);
    Ok(match (owner, paired) {
        (Some(k), Some(d)) => c.with_owner(k)?.with_paired_lock(d)?,
        (Some(k), None) => c.with_owner(k)?,
        (None, _) => c,
    })
}

/// How an upload ended.
#[derive(Debug, Clone)]
pub enum UploadOutcome {
    /// Every byte was taken.
    Done {
        /// The lock continued from here instead of the start.
        resumed_at: Option<u64>,
        /// Requests sent.
        requests: u32,
    },
    /// The lock refused a chunk.
    Refused {
        /// The last offset it had taken.
        at: u64,
        /// The refusal.
        answer: Answer,
    },
    /// No answer (a power cut).
    NoAnswer {
        /// The last offset it had taken.
        at: u64,
    },
}

impl UploadOutcome {
    /// One line for the evidence.
    pub fn describe(&self, len: usize) -> String {
        match self {
            UploadOutcome::Done {
                resumed_at: Some(r),
                requests,
            } => format!("accepted: {len} bytes, resumed at byte {r}, {requests} requests"),
            UploadOutcome::Done { requests, .. } => {
                format!("accepted: {len} bytes in {requests} requests")
            }
            UploadOutcome::Refused { at, answer } => {
                format!("refused after byte {at} of {len}: {}", answer.describe())
            }
            UploadOutcome::NoAnswer { at } => format!("no answer after byte {at} of {len}"),
        }
    }
}

/// The longest control answer line the audit reads.
const MAX_LINE: usize = 64 * 1024;

/// The longest the audit waits for one control answer line, however
/// slowly its bytes trickle in.
const LINE_WAIT: Duration = Duration::from_secs(5);

/// Reads one answer line: bounded in length ([`MAX_LINE`]) and in time
/// ([`LINE_WAIT`]), so a hostile lock can make the audit neither read
/// forever nor hold a huge line. `None`: the connection closed first.
fn read_line(r: &mut BufReader<Conn>) -> Result<Option<Vec<u8>>> {
    let end = Instant::now() + LINE_WAIT;
    let mut line = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "no complete answer line within {} s ({} bytes so far)",
                LINE_WAIT.as_secs(),
                line.len()
            );
        }
        r.get_ref().set_read_timeout(Some(left))?;
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A timeout or a reset: no answer on this connection.
            Err(_) => return Ok(None),
        };
        if buf.is_empty() {
            return Ok(None);
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > MAX_LINE {
            bail!("the answer is longer than {MAX_LINE} bytes");
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            return Ok(Some(line));
        }
    }
}

/// Where a lock's control socket listens: a TCP address or a Unix socket
/// path (`keyway-lock --control` takes either).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlAddr {
    /// `HOST:PORT`.
    Tcp(SocketAddr),
    /// A filesystem path.
    Unix(PathBuf),
}

impl ControlAddr {
    /// `HOST:PORT` (resolved) or, failing that, a path to an existing
    /// socket; the error names both readings.
    pub fn parse(s: &str) -> Result<ControlAddr> {
        use std::net::ToSocketAddrs as _;
        if let Ok(mut a) = s.to_socket_addrs()
            && let Some(a) = a.next()
        {
            return Ok(ControlAddr::Tcp(a));
        }
        let p = PathBuf::from(s);
        if p.exists() {
            return Ok(ControlAddr::Unix(p));
        }
        bail!("--control {s:?}: neither HOST:PORT nor an existing Unix socket path")
    }

    fn connect(&self) -> std::io::Result<Conn> {
        match self {
            ControlAddr::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, Duration::from_secs(2))?;
                s.set_nodelay(true)?;
                Ok(Conn::Tcp(s))
            }
            ControlAddr::Unix(p) => UnixStream::connect(p).map(Conn::Unix),
        }
    }
}

impl std::fmt::Display for ControlAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlAddr::Tcp(a) => write!(f, "tcp:{a}"),
            ControlAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl From<SocketAddr> for ControlAddr {
    fn from(a: SocketAddr) -> Self {
        ControlAddr::Tcp(a)
    }
}

/// A connected control socket.
#[derive(Debug)]
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(t),
            Conn::Unix(s) => s.set_read_timeout(t),
        }
    }

    fn try_clone(&self) -> std::io::Result<Conn> {
        match self {
            Conn::Tcp(s) => s.try_clone().map(Conn::Tcp),
            Conn::Unix(s) => s.try_clone().map(Conn::Unix),
        }
    }
}

impl std::io::Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl std::io::Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}

/// The control socket: one JSON object per line each way.
///
/// Handles made by [`Control::share`] use one connection, one command at
/// a time: an emulated lock's control channel is a UART behind QEMU's
/// socket chardev, which serves a single client, so the audit's threads
/// (the unlock sampler, the tamper during an upload) must not each open
/// their own.
#[derive(Debug)]
pub struct Control {
    addr: ControlAddr,
    conn: std::sync::Arc<std::sync::Mutex<Option<Connected>>>,
}

/// A control connection: its writer and its buffered reader.
type Connected = (Conn, BufReader<Conn>);

impl Control {
    /// A control channel to `addr` (connected on first use, again after a
    /// power cut closed it).
    pub fn new(addr: impl Into<ControlAddr>) -> Control {
        Control {
            addr: addr.into(),
            conn: std::sync::Arc::default(),
        }
    }

    /// Another handle on the same connection (commands from either wait
    /// for the other's answer).
    pub fn share(&self) -> Control {
        Control {
            addr: self.addr.clone(),
            conn: std::sync::Arc::clone(&self.conn),
        }
    }

    /// Sends `cmd` and returns the answer; an answer with `"ok": false` is
    /// an error naming the command.
    pub fn cmd(&mut self, cmd: &serde_json::Value) -> Result<serde_json::Value> {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for attempt in 0..2 {
            if conn.is_none() {
                let s = self
                    .addr
                    .connect()
                    .with_context(|| format!("connecting to the control socket {}", self.addr))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                let r = BufReader::new(s.try_clone()?);
                *conn = Some((s, r));
            }
            let Some((w, r)) = conn.as_mut() else {
                continue;
            };
            let sent = w.write_all(format!("{cmd}\n").as_bytes()).is_ok();
            let read = if sent { read_line(r) } else { Ok(None) };
            if let Some(line) = read.with_context(|| format!("control {cmd}"))? {
                let line = String::from_utf8_lossy(&line);
                let v: serde_json::Value = serde_json::from_str(line.trim())
                    .with_context(|| format!("control answer to {cmd} is not JSON: {line:?}"))?;
                if v.get("ok") == Some(&serde_json::Value::Bool(false)) {
                    bail!(
                        "control {cmd}: {}",
                        v.get("error").and_then(|e| e.as_str()).unwrap_or("refused")
                    );
                }
                return Ok(v);
            }
            *conn = None;
            if attempt == 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        bail!("control {cmd}: no answer from {}", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::net::TcpListener;

    /// A control socket that answers `reply` to the first line it reads.
    fn hostile(reply: Vec<u8>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut b = [0u8; 256];
                let _ = s.read(&mut b);
                let _ = s.write_all(&reply);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        addr
    }

    /// A lock that answers an endless line is refused at the bound, by
    /// name, instead of filling the audit's memory.
    #[test]
    fn endless_control_answer_is_cut_at_the_bound() {
        let addr = hostile(vec![b'x'; MAX_LINE + 10]);
        let e = Control::new(addr)
            .cmd(&serde_json::json!({"cmd": "status"}))
            .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("longer than 65536 bytes"), "{msg}");
        assert!(msg.contains("status"), "{msg}");
    }

    /// An answer that is not JSON is an error naming the command.
    #[test]
    fn garbage_control_answer_names_the_command() {
        let addr = hostile(b"\x1b[2J not json\n".to_vec());
        let e = Control::new(addr)
            .cmd(&serde_json::json!({"cmd": "keypad"}))
            .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("keypad") && msg.contains("not JSON"), "{msg}");
    }
}
