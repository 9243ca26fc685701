//! Shared fixtures for the keyway-lock tests: a vendor key and the trust
//! that anchors it, signed releases, and SMP body helpers.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use ciborium::Value;
use keyway_device::journal::TrialState;
use keyway_lock::device::{self, DeviceCore, Trust};
use keyway_lock::smp::{self, HEADER_LEN, Header, Op};
use keyway_testkit::release::Vendor;
use keyway_vendor::encode::{EnvelopeBuilder, sha256};
use keyway_vendor::keys::SigningKey;

#[allow(unused_imports)]
pub use keyway_testkit::release::{CLASS, VENDOR, release};

/// The lock binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_keyway-lock");

/// An SMP body.
pub type Map = Vec<(Value, Value)>;

/// A CBOR text string.
pub fn t(s: &str) -> Value {
    Value::Text(s.into())
}

/// The top-level `rc` of an answer, if any.
pub fn rc(m: &Map) -> Option<u64> {
    smp::get_u64(m, "rc").unwrap()
}

/// A fresh Ed25519 vendor key and a lock's trust that anchors it (one
/// signature required) for [`VENDOR`] / [`CLASS`] (keyway-testkit's
/// [`Vendor`]).
pub fn vendor() -> (SigningKey, Trust) {
    let vendor = Vendor::new();
    let trust = vendor.trust();
    (vendor.key, trust)
}

/// The envelope of `payload` as `version`/`sequence` for [`VENDOR`] /
/// [`CLASS`], signed by `key`; `more` sets the other fields (notes, CVEs,
/// minimum battery, `delta_from`).
pub fn sign(
    key: &SigningKey,
    version: &str,
    sequence: u64,
    payload: Vec<u8>,
    more: EnvelopeBuilder,
) -> Vec<u8> {
    keyway_testkit::release::sign(key, version, sequence, &payload, more)
}

/// A device core on a blank flash with `trust`, `payload` signed by `key`
/// as 1.0.0 (sequence 1) installed and confirmed at the factory.
pub fn factory_core(key: &SigningKey, trust: Trust, payload: Vec<u8>) -> DeviceCore {
    let mut lock = DeviceCore::new(device::blank_flash(), trust, None).unwrap();
    lock.factory(&sign(key, "1.0.0", 1, payload, EnvelopeBuilder::default()))
        .unwrap();
    lock
}

/// An SMP frame of SMP `version` (no flags) with sequence number `seq`.
pub fn frame(op: Op, version: u8, group: u16, id: u8, seq: u8, body: Map) -> Vec<u8> {
    let mut data = Vec::new();
    ciborium::into_writer(&Value::Map(body), &mut data).unwrap();
    let h = Header {
        op,
        version,
        flags: 0,
        len: data.len() as u16,
        group,
        seq,
        id,
    };
    let mut f = h.encode().to_vec();
    f.extend_from_slice(&data);
    f
}

/// An SMP request frame (version 1, no flags) with sequence number `seq`.
pub fn request(op: Op, group: u16, id: u8, seq: u8, body: Map) -> Vec<u8> {
    frame(op, 1, group, id, seq, body)
}

/// What the first request of an upload declares besides `off` and
/// `data`: always `len` (the envelope's), `image` 0 when `image`, and
/// `sha` when given.
#[derive(Clone, Copy, Debug)]
pub struct First {
    /// Names image 0, as smpmgr does.
    pub image: bool,
    /// The SHA-256 the upload declares (`None`: none).
    pub sha: Option<[u8; 32]>,
}

impl First {
    /// `len` and the SHA-256 of `env`.
    pub fn sha(env: &[u8]) -> Self {
        First {
            image: false,
            sha: Some(sha256(env)),
        }
    }

    /// `len`, `image` 0 and the SHA-256 of `env`.
    pub fn image(env: &[u8]) -> Self {
        First {
            image: true,
            ..First::sha(env)
        }
    }
}

/// The body of an image-upload request: at most `n` of `env`'s bytes from
/// `at`, with what `first` declares on the first request.
pub fn upload_body(env: &[u8], at: usize, n: usize, first: Option<First>) -> Map {
    let end = (at + n).min(env.len());
    let mut m = vec![
        (t("off"), Value::from(at as u64)),
        (t("data"), Value::Bytes(env[at..end].to_vec())),
    ];
    if let Some(first) = first {
        m.push((t("len"), Value::from(env.len() as u64)));
        if first.image {
            m.push((t("image"), Value::from(0u8)));
        }
        if let Some(sha) = first.sha {
            m.push((t("sha"), Value::Bytes(sha.to_vec())));
        }
    }
    m
}

/// Uploads `env` in `n`-byte chunks, `first` declared on the first, each
/// body through `send` (which returns the answer's body), following the
/// lock's offsets while they move on; the last answer.
pub fn upload_by(env: &[u8], n: usize, first: First, mut send: impl FnMut(Map) -> Map) -> Map {
    let mut at = 0usize;
    loop {
        let m = send(upload_body(env, at, n, (at == 0).then_some(first)));
        match smp::get_u64(&m, "off").unwrap() {
            Some(o) if (o as usize) < env.len() && o as usize > at => at = o as usize,
            _ => return m,
        }
    }
}

/// The agent's answer to `f` at time 0: its header (whose length must be
/// the body's) and its body.
pub fn answer(s: &mut Shell, f: &[u8]) -> (Header, Map) {
    let r = s.handle(f, 0);
    let h = Header::decode(&r).unwrap();
    assert_eq!(usize::from(h.len), r.len() - HEADER_LEN, "response length");
    (h, smp::decode_body(&r[HEADER_LEN..]).unwrap())
}

/// Consent at the lock: the bolt withdrawn, then a test boot of `env`
/// (the window must be open); returns the answer.
pub fn consent_by_test(s: &mut Shell, env: &[u8]) -> Map {
    let (latch, _) = s.mechanism_mut();
    latch.owner(false, 0);
    let req = vec![(t("hash"), Value::Bytes(sha256(env).to_vec()))];
    answer(s, &request(Op::Write, 1, 0, 4, req)).1
}

/// Consent by a test boot of `env`, then an SMP reset: the new image
/// boots on trial in `slot`, self-tests and confirms, with the floor at
/// `sequence`.
pub fn consent_and_reset(s: &mut Shell, env: &[u8], slot: u8, sequence: u64) {
    let m = consent_by_test(s, env);
    assert!(smp::get(&m, "images").is_some(), "test boot refused: {m:?}");
    assert_eq!(s.core().state().trial, TrialState::Pending { slot });
    let (_, m) = answer(s, &request(Op::Write, 0, 5, 2, vec![]));
    assert!(m.is_empty(), "{m:?}");
    let boot = s.poll_reset().unwrap().unwrap();
    assert!(boot.app.contains("confirmed"), "{}", boot.app);
    let st = s.core().state();
    assert_eq!(
        (st.active_slot, st.trial, st.floor),
        (slot, TrialState::Confirmed, Some(sequence))
    );
}

/// The `images` list of an image-state answer, each image's map.
pub fn images_in(m: &Map) -> Vec<Map> {
    smp::get(m, "images")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .map(|v| v.as_map().unwrap().clone())
        .collect()
}

/// The image of `images` listed by `hash` (the SHA-256 of its envelope).
pub fn listed<'a>(images: &'a [Map], hash: &[u8]) -> Option<&'a Map> {
    images
        .iter()
        .find(|m| smp::get_bytes(m, "hash").unwrap() == Some(hash))
}

/// Kills the lock when the test ends, however it ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `keyway-lock ARGS` under umask 0 (the worst a caller can set).
pub fn lock_cmd() -> Command {
    let mut c = Command::new(BIN);
    // SAFETY: umask is async-signal-safe; nothing else runs before exec.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    c
}

/// Spawns `cmd` (the lock binary) on `state` bound to an ephemeral
/// loopback port with `args`, its stdout piped, its stderr to `stderr`.
pub fn spawn(
    mut cmd: Command,
    state: &Path,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    stderr: Stdio,
) -> Child {
    cmd.arg("--state")
        .arg(state)
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Runs `cmd` (the lock binary) on `state` bound to an ephemeral loopback
/// port with `args`; returns it and what follows `prefix` on the first
/// line of its stdout that starts with it.
pub fn start_until(
    cmd: Command,
    state: &Path,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    prefix: &str,
) -> (Running, String) {
    let mut child = spawn(cmd, state, args, Stdio::null());
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let running = Running(child);
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "the lock exited");
        if let Some(rest) = line.trim().strip_prefix(prefix) {
            return (running, rest.to_owned());
        }
    }
}

/// Runs `cmd` (the lock binary) on `state` bound to an ephemeral loopback
/// port with `args`; returns it and the address it printed once it
/// listens.
pub fn start(
    cmd: Command,
    state: &Path,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
) -> (Running, String) {
    start_until(cmd, state, args, "listening on ")
}

/// `cmd provision --state STATE --vendor-key VENDOR_PUB` for the tests'
/// vendor domain and class; the caller adds the rest.
pub fn provision_cmd(mut cmd: Command, state: &Path, vendor_pub: &Path) -> Command {
    cmd.args(["provision", "--state"])
        .arg(state)
        .arg("--vendor-key")
        .arg(vendor_pub)
        .args(["--vendor-domain", VENDOR, "--class", CLASS]);
    cmd
}

/// Asserts that a command succeeded, with its stderr if it did not.
#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `keyway-lock ctl TARGET WORDS…` (a socket's path or a TCP address).
pub fn ctl(
    target: impl AsRef<OsStr>,
    words: impl IntoIterator<Item = impl AsRef<OsStr>>,
) -> Output {
    Command::new(BIN)
        .arg("ctl")
        .arg(target)
        .args(words)
        .output()
        .unwrap()
}

/// A file at `path` that says "precious": what a test checks nothing
/// wrote through (see [`assert_untouched`]).
pub fn victim(path: PathBuf) -> PathBuf {
    std::fs::write(&path, "precious").unwrap();
    path
}

/// Asserts that the [`victim`] at `path` still says "precious".
#[track_caller]
pub fn assert_untouched(path: &Path) {
    assert_eq!(std::fs::read_to_string(path).unwrap(), "precious");
}

/// Every entry under `dir` (not following links), `dir` included.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The permission bits of `p` (not following a link).
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The device core behind the lock agent, as `keyway-lock` runs it: every
/// frame goes through `keyway-agent` (`AgentLock::handle`), which decides
/// authority and hands the device core what it authorized. A person at
/// the lock keeps pressing the button while the device core's presence
/// window is open (`set_presence_always_open`, `open_presence`), as the
/// shell's `--presence-always-open` does. Derefs to the device core.
pub struct Shell {
    pub lock: keyway_lock::agent_shell::AgentLock,
    now_ms: u64,
}

impl Shell {
    /// The agent around `server` (no setup code: these tests pair nobody).
    pub fn new(server: keyway_lock::server::Server) -> Self {
        let lock = keyway_lock::agent_shell::AgentLock::new(
            server,
            keyway_lock::agent_shell::blank_store().unwrap(),
            keyway_channel::SigningKey::from_bytes(&[0xd0; 32]),
            None,
            0,
        )
        .unwrap();
        Shell { lock, now_ms: 0 }
    }

    /// One frame from the person's tool at `now_ms`; the answer (empty:
    /// the agent answers nothing, e.g. to a frame whose header does not
    /// decode).
    pub fn handle(&mut self, frame: &[u8], now_ms: u64) -> Vec<u8> {
        self.now_ms = now_ms;
        if self.lock.server().presence_open(now_ms) && !self.lock.agent().window_open(now_ms) {
            self.lock
                .button(now_ms, keyway_agent::agent::Press::Short)
                .unwrap();
        }
        let now = keyway_agent::agent::Now {
            ms: now_ms,
            time: keyway_audit::Time {
                rtc: 1_760_000_000 + now_ms / 1000,
                boot: 1,
            },
        };
        self.lock
            .handle(keyway_agent::limits::PeerId(1), now, frame)
            .answer
    }

    /// A reset the last request asked for (or a power-on after a cut):
    /// the device core boots, then the agent.
    pub fn poll_reset(&mut self) -> Option<Result<keyway_lock::device::BootReport, String>> {
        let r = self.lock.server_mut().poll_reset();
        if r.is_some() {
            self.lock.after_boot(self.now_ms).unwrap();
        }
        r
    }
}

impl std::ops::Deref for Shell {
    type Target = keyway_lock::server::Server;
    fn deref(&self) -> &Self::Target {
        self.lock.server()
    }
}

impl std::ops::DerefMut for Shell {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.lock.server_mut()
    }
}
