//! Shared fixtures for the keyway-lock tests: a vendor key and the trust
//! that anchors it, signed releases, and SMP body helpers.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ciborium::Value;
use keyway_lock::device::Trust;
use keyway_lock::smp::{self, Header, Op};
use keyway_testkit::release::Vendor;
use keyway_vendor::encode::EnvelopeBuilder;
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

/// The `images` list of an image-state answer, each image's map.
pub fn images_in(m: &Map) -> Vec<Map> {
    smp::get(m, "images")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .map(|v| v.as_map().unwrap().clone())
        .collect()
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

/// Runs `cmd` (the lock binary) on `state` bound to an ephemeral loopback
/// port with `args`; returns it and the address it printed once it
/// listens.
pub fn start(
    mut cmd: Command,
    state: &Path,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
) -> (Running, String) {
    let mut child = cmd
        .arg("--state")
        .arg(state)
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let running = Running(child);
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "the lock exited");
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            return (running, addr.to_owned());
        }
    }
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
