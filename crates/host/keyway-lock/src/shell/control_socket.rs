//! The control socket's serving: connections accepted on their own
//! threads (at most [`MAX_CONTROL_CONNECTIONS`]), one bounded JSON line at
//! a time (at most [`MAX_CONTROL_LINE`] bytes), each answered on one line;
//! the button's lines go to the agent, the rest to
//! [`crate::control`]. The socket stands for the lock's hardware, so it is
//! as private as the hardware: a Unix socket in a private directory
//! ([`bind_private_unix`]), or TCP on loopback only unless told otherwise
//! ([`check_control_addr`]).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use anyhow::{Context as _, Result, anyhow};

use super::Shell;
use crate::agent_shell::AgentLock;

/// The longest control line taken, in bytes (a longer one is answered
/// with an error, never buffered whole).
pub const MAX_CONTROL_LINE: usize = 4096;

/// Control connections served at once; more are closed at once.
pub const MAX_CONTROL_CONNECTIONS: usize = 16;

/// Accepts control connections until the lock stops, each served on its
/// own thread, at most [`MAX_CONTROL_CONNECTIONS`] at once.
pub(super) fn accept_loop<S>(
    mut accept: impl FnMut() -> std::io::Result<S> + Send + 'static,
    shared: &Arc<Mutex<Shell>>,
    stop: &Arc<AtomicBool>,
) -> JoinHandle<()>
where
    S: std::io::Read + std::io::Write + Send + TryCloneStream + 'static,
{
    let (shared, stop) = (Arc::clone(shared), Arc::clone(stop));
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        loop {
            let conn = accept();
            if stop.load(Ordering::SeqCst) {
                return;
            }
            if let Ok(conn) = conn {
                if open.load(Ordering::SeqCst) >= MAX_CONTROL_CONNECTIONS {
                    drop(conn);
                    continue;
                }
                open.fetch_add(1, Ordering::SeqCst);
                serve_control(conn, &shared, &stop, &open);
            }
        }
    })
}

/// One line of at most `max` bytes from `r`: `Ok(None)` at the end,
/// `Ok(Some(Err(())))` for a longer line (read to its end in bounded
/// pieces and dropped).
fn read_line_bounded(
    r: &mut impl BufRead,
    max: usize,
) -> std::io::Result<Option<Result<Vec<u8>, ()>>> {
    let mut line = Vec::new();
    let n = std::io::Read::take(&mut *r, max as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Some(Ok(line)));
    }
    if line.len() <= max {
        // The last line, without a newline.
        return Ok(Some(Ok(line)));
    }
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                r.consume(i + 1);
                break;
            }
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    }
    Ok(Some(Err(())))
}

/// One control connection on its own thread: a JSON line in, a JSON
/// line out.
fn serve_control<S>(
    conn: S,
    shared: &Arc<Mutex<Shell>>,
    stop: &Arc<AtomicBool>,
    open: &Arc<std::sync::atomic::AtomicUsize>,
) where
    S: std::io::Read + std::io::Write + Send + 'static,
    S: TryCloneStream,
{
    let (shared, stop) = (Arc::clone(shared), Arc::clone(stop));
    /// Counts the connection closed however its thread ends.
    struct Open(Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let open = Open(Arc::clone(open));
    std::thread::spawn(move || {
        let _open = open;
        let Ok(mut out) = conn.try_clone_stream() else {
            return;
        };
        let mut reader = BufReader::new(conn);
        loop {
            let line = match read_line_bounded(&mut reader, MAX_CONTROL_LINE) {
                Ok(Some(l)) => l,
                Ok(None) | Err(_) => return,
            };
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok(line) = line else {
                let e = serde_json::json!({
                    "ok": false,
                    "error": format!("the line is over {MAX_CONTROL_LINE} bytes: refused"),
                });
                if out.write_all(format!("{e}\n").as_bytes()).is_err() {
                    return;
                }
                continue;
            };
            let line = String::from_utf8_lossy(&line);
            let answer = {
                let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                let now = s.now_ms();
                s.control(&line, now)
            };
            // One write per answer: a line written in pieces waits on
            // Nagle's algorithm and the peer's delayed ACK (~40 ms).
            if out.write_all(format!("{answer}\n").as_bytes()).is_err() {
                return;
            }
        }
    });
}

/// The control socket's button (`presence`, `long-press`,
/// `presence-close`) on a lock that
/// runs the agent: the press goes to the agent (the window it checks),
/// and the device core's window follows it. `None`: not a button line.
pub(super) fn button_line(
    lock: &mut AgentLock,
    line: &str,
    now_ms: u64,
) -> Option<serde_json::Value> {
    use keyway_agent::agent::Press;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let press = match v.get("cmd").and_then(serde_json::Value::as_str)? {
        "presence" => Press::Short,
        "long-press" => Press::Long,
        "presence-close" => {
            lock.close_window();
            return Some(serde_json::json!({"ok": true}));
        }
        _ => return None,
    };
    Some(match lock.button(now_ms, press) {
        Ok(()) => serde_json::json!({
            "ok": true,
            "presence_open": lock.agent().window_open(now_ms),
            "presence_seconds": keyway_agent::agent::Config::default().window_ms / 1000,
        }),
        Err(e) => serde_json::json!({"ok": false, "error": e}),
    })
}

/// A stream the control loop can read and answer at once.
pub(super) trait TryCloneStream: Sized {
    fn try_clone_stream(&self) -> std::io::Result<Self>;
}

impl TryCloneStream for std::net::TcpStream {
    fn try_clone_stream(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
}

impl TryCloneStream for std::os::unix::net::UnixStream {
    fn try_clone_stream(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
}

/// Refuses a TCP control address that is not loopback, unless `insecure`
/// (`--control-insecure-any-address`): the control socket unlocks the
/// door and opens the presence window for whoever reaches it.
pub fn check_control_addr(addr: SocketAddr, insecure: bool) -> Result<()> {
    if addr.ip().is_loopback() || insecure {
        return Ok(());
    }
    Err(anyhow!(
        "--control {addr}: the control socket stands in for the lock's hardware (unlock, presence \
         window, power cuts) with no authentication, so it listens only on loopback (127.0.0.1, ::1) \
         or a Unix socket path; to expose it to every host that can reach {} anyway, add \
         --control-insecure-any-address",
        addr.ip()
    ))
}

/// The warning `keyway-lock` prints when the control socket listens
/// beyond loopback.
pub fn insecure_control_warning(addr: SocketAddr) -> String {
    format!(
        "WARNING: the control socket listens on {addr} (--control-insecure-any-address): anyone who \
         can reach it can unlock the door, open the presence window and cut the power"
    )
}

/// Binds the control socket at `path`, mode 0600 before anyone can
/// connect: bound inside a new 0700 directory beside `path`, set to 0600,
/// then renamed into place (a stale socket there is replaced; anything
/// else there is refused).
pub fn bind_private_unix(path: &std::path::Path) -> Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
    if let Ok(m) = std::fs::symlink_metadata(path)
        && !m.file_type().is_socket()
    {
        anyhow::bail!(
            "the control socket {}: something other than a socket is there; refused",
            path.display()
        );
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("the control socket {}: no file name", path.display()))?;
    let mut private = None;
    for _ in 0..16 {
        let n = getrandom::u64().map_err(|e| anyhow!("randomness: {e}"))?;
        let d = parent.join(format!(".keyway-ctl-{n:016x}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => {
                private = Some(d);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| format!("creating {}", d.display()));
            }
        }
    }
    let private =
        private.ok_or_else(|| anyhow!("no free private directory in {}", parent.display()))?;
    let inner = private.join(name);
    let bound = (|| -> Result<std::os::unix::net::UnixListener> {
        let l = std::os::unix::net::UnixListener::bind(&inner)
            .with_context(|| format!("binding the control socket {}", path.display()))?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", inner.display()))?;
        std::fs::rename(&inner, path)
            .with_context(|| format!("moving the control socket to {}", path.display()))?;
        Ok(l)
    })();
    let _ = std::fs::remove_file(&inner);
    let _ = std::fs::remove_dir(&private);
    bound
}
