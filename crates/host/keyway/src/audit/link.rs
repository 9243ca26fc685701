//! The audit's two channels to a lock: SMP over UDP (the local interface
//! every Keyway lock has, framed by `keyway::smp`) and the optional
//! line-delimited JSON control socket (the lock's hardware: its button,
//! keypad, sensors and power, on the simulated lock).
//!
//! A thin adapter: one request per datagram, a timeout, and the Keyway
//! group's owner authentication (FORMAT.md, "The Keyway SMP group").

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use ciborium::Value;
use keyway::keys::SigningKey;
use keyway::smp::{self, Op, group, text};
use sha2::{Digest as _, Sha256};

/// Keyway group command ids (FORMAT.md).
pub mod kw {
    /// status (read).
    pub const STATUS: u8 = 0;
    /// lock (write, auth).
    pub const LOCK: u8 = 1;
    /// unlock (write, auth).
    pub const UNLOCK: u8 = 2;
    /// notes of the pending update (read).
    pub const NOTES: u8 = 4;
    /// consent (write, auth).
    pub const CONSENT: u8 = 5;
    /// chunked audit-log export (read).
    pub const LOG: u8 = 6;
    /// a nonce for owner auth (read).
    pub const CHALLENGE: u8 = 7;
    /// pair an owner (write, presence).
    pub const PAIR: u8 = 8;
    /// factory reset (write, presence and long press).
    pub const FACTORY_RESET: u8 = 9;
    /// settings (write, auth).
    pub const SETTINGS: u8 = 10;
}

/// The domain separation string of owner signatures.
const AUTH_CONTEXT: &[u8] = b"keyway-smp-auth-v1";
/// Bytes of image per upload request: the lock's body limit less the
/// request's other fields (and `auth` in the first chunk).
pub const CHUNK: usize = 1536;

/// A CBOR map body.
pub type Body = Vec<(Value, Value)>;

/// What a lock answered: its body, or an error with its code and reason.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A body without an error.
    Ok(Body),
    /// `{"rc", "rsn"}` (top level) or `{"err": {"group", "rc"}}`.
    Err {
        /// The group (`None`: a top-level SMP rc).
        group: Option<u16>,
        /// The code.
        rc: u64,
        /// The reason, if the lock gave one.
        reason: Option<String>,
    },
}

impl Answer {
    /// The body, or an error naming `what`, the code and the reason.
    pub fn ok(self, what: &str) -> Result<Body> {
        match self {
            Answer::Ok(b) => Ok(b),
            e => bail!("{what}: {}", e.describe()),
        }
    }

    /// One line: `ok`, or the error code and reason.
    pub fn describe(&self) -> String {
        match self {
            Answer::Ok(_) => "ok".to_owned(),
            Answer::Err { group, rc, reason } => {
                let code = match group {
                    None => format!("rc {rc} ({})", mgmt_name(*rc)),
                    Some(1) => format!("image group rc {rc} ({})", img_name(*rc)),
                    Some(g) => format!("group {g} rc {rc}"),
                };
                match reason {
                    Some(r) => format!("{code}: {r}"),
                    None => code,
                }
            }
        }
    }

    /// Whether the lock refused.
    pub fn is_err(&self) -> bool {
        matches!(self, Answer::Err { .. })
    }
}

fn mgmt_name(rc: u64) -> &'static str {
    match rc {
        1 => "UNKNOWN",
        2 => "NOMEM",
        3 => "EINVAL",
        4 => "TIMEOUT",
        5 => "NOENT",
        6 => "BADSTATE",
        7 => "EMSGSIZE",
        8 => "ENOTSUP",
        9 => "CORRUPT",
        10 => "BUSY",
        11 => "ACCESSDENIED",
        _ => "?",
    }
}

fn img_name(rc: u64) -> &'static str {
    match rc {
        3 => "NO_IMAGE",
        21 => "INVALID_LENGTH",
        22 => "INVALID_IMAGE_HEADER",
        24 => "INVALID_HASH",
        27 => "CURRENT_VERSION_IS_NEWER",
        28 => "IMAGE_ALREADY_PENDING",
        31 => "INVALID_IMAGE_DATA_OVERRUN",
        _ => "?",
    }
}

/// SMP over UDP to one lock.
#[derive(Debug)]
pub struct Smp {
    sock: UdpSocket,
    seq: u8,
    /// How long to wait for an answer.
    pub timeout: Duration,
}

impl Smp {
    /// A socket connected to `addr`.
    pub fn connect(addr: SocketAddr) -> Result<Smp> {
        let any: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let sock = UdpSocket::bind(any).context("binding a UDP socket")?;
        sock.connect(addr)
            .with_context(|| format!("connecting UDP to {addr}"))?;
        Ok(Smp {
            sock,
            seq: 0,
            timeout: Duration::from_secs(2),
        })
    }

    /// Sends one request and waits for its answer (`None`: no answer within
    /// the timeout, e.g. the lock lost power).
    pub fn try_request(&mut self, op: Op, grp: u16, id: u8, body: Body) -> Result<Option<Answer>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let frame = smp::encode_request(op, grp, id, seq, body);
        self.sock.send(&frame).context("sending an SMP request")?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock.set_read_timeout(Some(left))?;
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                // ECONNREFUSED from an earlier datagram: nobody listens (yet).
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(e) => return Err(e).context("receiving an SMP answer"),
            };
            let r = smp::decode_response(buf.get(..n).unwrap_or(&[]))
                .map_err(|e| anyhow!("the lock's answer is not an SMP response: {e}"))?;
            // A late answer to an earlier request: skip it.
            if r.header.seq != seq || r.header.group != grp || r.header.id != id {
                continue;
            }
            return Ok(Some(classify(r.body)));
        }
    }

    /// Sends one request; no answer is an error.
    pub fn request(&mut self, op: Op, grp: u16, id: u8, body: Body) -> Result<Answer> {
        self.try_request(op, grp, id, body)?.ok_or_else(|| {
            anyhow!(
                "no answer from the lock within {} ms (group {grp} command {id})",
                self.timeout.as_millis()
            )
        })
    }

    /// Waits until the lock answers an echo (after a reset or a power cut).
    pub fn wait_up(&mut self, within: Duration) -> Result<()> {
        let end = Instant::now() + within;
        let saved = self.timeout;
        self.timeout = Duration::from_millis(200);
        let r = loop {
            if let Some(Answer::Ok(_)) =
                self.try_request(Op::Write, group::OS, 0, vec![(text("d"), text("audit"))])?
            {
                break Ok(());
            }
            if Instant::now() > end {
                break Err(anyhow!(
                    "the lock did not answer an echo within {} s",
                    within.as_secs()
                ));
            }
        };
        self.timeout = saved;
        r
    }

    /// A fresh nonce from `challenge`.
    pub fn nonce(&mut self) -> Result<Vec<u8>> {
        let b = self
            .request(Op::Read, group::KEYWAY, kw::CHALLENGE, Vec::new())?
            .ok("challenge")?;
        smp::get_bytes(&b, "nonce")
            .map_err(|e| anyhow!("challenge: {e}"))?
            .map(<[u8]>::to_vec)
            .ok_or_else(|| anyhow!("challenge: the answer has no \"nonce\""))
    }

    /// `body` with an owner's `auth` for command `id` of group `grp`.
    pub fn authed(&mut self, owner: &SigningKey, grp: u16, id: u8, body: Body) -> Result<Body> {
        let nonce = self.nonce()?;
        Ok(sign_body(owner, grp, id, &nonce, body))
    }

    /// A Keyway-group write with the owner's auth.
    pub fn owner_write(&mut self, owner: &SigningKey, id: u8, body: Body) -> Result<Answer> {
        let b = self.authed(owner, group::KEYWAY, id, body)?;
        self.request(Op::Write, group::KEYWAY, id, b)
    }

    /// The Keyway group's `status`.
    pub fn status(&mut self) -> Result<Body> {
        self.request(Op::Read, group::KEYWAY, kw::STATUS, Vec::new())?
            .ok("status")
    }

    /// The image group's state read: the slots.
    pub fn images(&mut self) -> Result<Vec<SlotState>> {
        let b = self
            .request(Op::Read, group::IMAGE, 0, Vec::new())?
            .ok("image state")?;
        let Some(Value::Array(images)) = smp::get(&b, "images") else {
            bail!("image state: the answer has no \"images\" array");
        };
        let mut out = Vec::new();
        for i in images {
            let Value::Map(m) = i else { continue };
            let flag = |k: &str| smp::get_bool(m, k).ok().flatten().unwrap_or(false);
            out.push(SlotState {
                slot: smp::get_u64(m, "slot").ok().flatten().unwrap_or(0),
                version: smp::get_text(m, "version")
                    .ok()
                    .flatten()
                    .unwrap_or("")
                    .to_owned(),
                hash: smp::get_bytes(m, "hash")
                    .ok()
                    .flatten()
                    .unwrap_or(&[])
                    .to_vec(),
                active: flag("active"),
                confirmed: flag("confirmed"),
                pending: flag("pending"),
                bootable: flag("bootable"),
            });
        }
        Ok(out)
    }

    /// The running image (`None`: recovery).
    pub fn running(&mut self) -> Result<Option<SlotState>> {
        Ok(self.images()?.into_iter().find(|s| s.active))
    }

    /// Uploads `file` (an envelope) from the start, signing the first chunk
    /// with `owner` if given, else relying on the presence window. Each
    /// chunk is followed by `pace`, and `between(offset)` runs before each
    /// chunk (to cut power or sample latency mid-upload); it returns false
    /// to stop the upload there.
    pub fn upload(
        &mut self,
        file: &[u8],
        owner: Option<&SigningKey>,
        pace: Duration,
        between: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Upload> {
        let sha: [u8; 32] = Sha256::digest(file).into();
        let len = file.len() as u64;
        let mut off = 0u64;
        let mut first = true;
        let mut resumed_at = None;
        let mut requests = 0u32;
        loop {
            if !between(off) {
                return Ok(Upload::Stopped { at: off });
            }
            let end = usize::try_from(off)
                .unwrap_or(usize::MAX)
                .saturating_add(CHUNK)
                .min(file.len());
            let at = usize::try_from(off).unwrap_or(usize::MAX).min(end);
            let mut body = vec![
                (text("off"), Value::from(off)),
                (text("data"), Value::Bytes(file[at..end].to_vec())),
            ];
            if off == 0 {
                body.insert(0, (text("image"), Value::from(0u8)));
                body.push((text("len"), Value::from(len)));
                body.push((text("sha"), Value::Bytes(sha.to_vec())));
                if let Some(o) = owner {
                    body = self.authed(o, group::IMAGE, 1, body)?;
                }
            }
            requests += 1;
            let Some(a) = self.try_request(Op::Write, group::IMAGE, 1, body)? else {
                return Ok(Upload::NoAnswer { at: off, requests });
            };
            let b = match a {
                Answer::Ok(b) => b,
                e => {
                    return Ok(Upload::Refused {
                        at: off,
                        answer: e,
                        requests,
                    });
                }
            };
            let next = smp::get_u64(&b, "off")
                .map_err(|e| anyhow!("upload: {e}"))?
                .ok_or_else(|| anyhow!("upload: the answer at byte {off} has no \"off\""))?;
            if next > len {
                bail!("upload: the lock answered off {next}, past the file's {len} bytes");
            }
            // Off 0 answered with another offset: the lock continues a
            // download it already holds (a resume).
            if first && next != end as u64 {
                resumed_at = Some(next);
            }
            first = false;
            off = next;
            if off >= len {
                return Ok(Upload::Done {
                    resumed_at,
                    requests,
                });
            }
            if !pace.is_zero() {
                std::thread::sleep(pace);
            }
        }
    }
}

/// How an upload ended.
#[derive(Debug, Clone)]
pub enum Upload {
    /// Every byte was taken.
    Done {
        /// The lock continued from here instead of the start.
        resumed_at: Option<u64>,
        /// Requests sent.
        requests: u32,
    },
    /// The lock refused a chunk.
    Refused {
        /// The chunk's offset.
        at: u64,
        /// The refusal.
        answer: Answer,
        /// Requests sent.
        requests: u32,
    },
    /// No answer (a power cut).
    NoAnswer {
        /// The chunk's offset.
        at: u64,
        /// Requests sent.
        requests: u32,
    },
    /// The caller stopped it.
    Stopped {
        /// The next offset.
        at: u64,
    },
}

impl Upload {
    /// One line for the evidence.
    pub fn describe(&self, len: usize) -> String {
        match self {
            Upload::Done {
                resumed_at: Some(r),
                requests,
            } => format!("accepted: {len} bytes, resumed at byte {r}, {requests} requests"),
            Upload::Done { requests, .. } => {
                format!("accepted: {len} bytes in {requests} requests")
            }
            Upload::Refused { at, answer, .. } => {
                format!("refused at byte {at} of {len}: {}", answer.describe())
            }
            Upload::NoAnswer { at, .. } => format!("no answer at byte {at} of {len}"),
            Upload::Stopped { at } => format!("stopped at byte {at} of {len}"),
        }
    }
}

/// A slot as the image group lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    /// Physical slot.
    pub slot: u64,
    /// Its version.
    pub version: String,
    /// SHA-256 of the envelope.
    pub hash: Vec<u8>,
    /// Running.
    pub active: bool,
    /// Confirmed.
    pub confirmed: bool,
    /// Marked for a trial.
    pub pending: bool,
    /// Re-verifies.
    pub bootable: bool,
}

/// Adds an owner's `auth` to `body` (FORMAT.md: Ed25519 over the context,
/// the group, the command id, the nonce and the body's CBOR).
pub fn sign_body(owner: &SigningKey, grp: u16, id: u8, nonce: &[u8], mut body: Body) -> Body {
    let mut encoded = Vec::new();
    // Serializing a Value into a Vec cannot fail.
    let _ = ciborium::into_writer(&Value::Map(body.clone()), &mut encoded);
    let mut msg = AUTH_CONTEXT.to_vec();
    msg.extend_from_slice(&grp.to_be_bytes());
    msg.push(id);
    msg.extend_from_slice(nonce);
    msg.extend_from_slice(&encoded);
    let sig = owner.sign(&msg);
    body.push((
        text("auth"),
        Value::Map(vec![
            (text("key"), Value::Bytes(owner.raw_public_key_bytes())),
            (text("nonce"), Value::Bytes(nonce.to_vec())),
            (text("sig"), Value::Bytes(sig)),
        ]),
    ));
    body
}

fn classify(body: Body) -> Answer {
    if let Some(Value::Map(e)) = smp::get(&body, "err") {
        return Answer::Err {
            group: smp::get_u64(e, "group")
                .ok()
                .flatten()
                .and_then(|g| u16::try_from(g).ok()),
            rc: smp::get_u64(e, "rc").ok().flatten().unwrap_or(0),
            reason: smp::get_text(e, "rsn").ok().flatten().map(str::to_owned),
        };
    }
    match smp::get_u64(&body, "rc").ok().flatten() {
        Some(rc) if rc != 0 => Answer::Err {
            group: None,
            rc,
            reason: smp::get_text(&body, "rsn")
                .ok()
                .flatten()
                .map(str::to_owned),
        },
        _ => Answer::Ok(body),
    }
}

/// The control socket: one JSON object per line each way.
#[derive(Debug)]
pub struct Control {
    addr: SocketAddr,
    conn: Option<(TcpStream, BufReader<TcpStream>)>,
}

impl Control {
    /// A control channel to `addr` (connected on first use, again after a
    /// power cut closed it).
    pub fn new(addr: SocketAddr) -> Control {
        Control { addr, conn: None }
    }

    /// Sends `cmd` and returns the answer; an answer with `"ok": false` is
    /// an error naming the command.
    pub fn cmd(&mut self, cmd: &serde_json::Value) -> Result<serde_json::Value> {
        for attempt in 0..2 {
            if self.conn.is_none() {
                let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))
                    .with_context(|| format!("connecting to the control socket {}", self.addr))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.set_nodelay(true)?;
                let r = BufReader::new(s.try_clone()?);
                self.conn = Some((s, r));
            }
            let Some((w, r)) = self.conn.as_mut() else {
                continue;
            };
            let mut line = String::new();
            let sent = w.write_all(format!("{cmd}\n").as_bytes()).is_ok();
            if sent && r.read_line(&mut line).is_ok_and(|n| n > 0) {
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
            self.conn = None;
            if attempt == 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        bail!("control {cmd}: no answer from {}", self.addr)
    }
}
