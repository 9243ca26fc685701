//! The simulated lock's serial SMP port (`keyway-lock --serial PATH`): a
//! pseudo-terminal pair standing in for the board's UART, speaking the
//! MCUmgr serial transport ([`keyway_smp::serial`]) exactly as the UDP
//! port speaks SMP datagrams, so `smpmgr --port`, `smpclient`'s
//! `SMPSerialTransport` and `keyway device --target serial:` can be tested
//! without the firmware.
//!
//! The lock holds the pty's master; `PATH` becomes a symlink to the slave
//! (`/dev/pts/N`), which a client opens like any serial port. The lock
//! keeps a slave descriptor open too, so the line stays up between
//! clients (with no slave open, Linux reports a hang-up on the master),
//! and sets the line raw (no echo, no newline translation) through it.
//!
//! The receive loop feeds every byte to the codec's streaming decoder,
//! which skips console bytes and drops bad frames (counted, said on stderr
//! when verbose); each whole SMP packet is served like a datagram, and the
//! answer goes back as base64 lines. The master is non-blocking: a client
//! that stops reading costs the lock at most a second per answer, never a
//! wedged thread holding the lock's state.

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use keyway_agent::limits::PeerId;
use keyway_smp::serial::{Decoder, Encoder, MAX_LINE, MAX_PACKET, rx_buf_len};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::{Mode, OFlags};
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{self, OptionalActions, SpecialCodeIndex};

/// The lock's end of the serial line.
#[derive(Debug)]
pub struct SerialPort {
    master: std::fs::File,
    /// Held open so the line stays up between clients.
    _slave: OwnedFd,
    /// The slave's path (`/dev/pts/N`), what clients open.
    pub pts: PathBuf,
    /// The symlink made to it, removed when the port is dropped.
    pub link: Option<PathBuf>,
}

impl Drop for SerialPort {
    fn drop(&mut self) {
        if let Some(l) = &self.link {
            let _ = std::fs::remove_file(l);
        }
    }
}

impl SerialPort {
    /// The lock's end of the line (non-blocking).
    pub fn master(&self) -> &std::fs::File {
        &self.master
    }
}

/// Opens a pty pair, sets its line raw at 115200 8N1, and (with `link`)
/// makes `link` a symlink to the slave (a stale file there is replaced).
pub fn open_pty(link: Option<&Path>) -> Result<SerialPort> {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .context("opening a pseudo-terminal")?;
    grantpt(&master).context("grantpt")?;
    unlockpt(&master).context("unlockpt")?;
    let name = ptsname(&master, Vec::new()).context("ptsname")?;
    let pts = PathBuf::from(name.to_string_lossy().into_owned());
    let slave = rustix::fs::open(
        &pts,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", pts.display()))?;
    let mut t = termios::tcgetattr(&slave).context("tcgetattr")?;
    t.make_raw();
    t.special_codes[SpecialCodeIndex::VMIN] = 1;
    t.special_codes[SpecialCodeIndex::VTIME] = 0;
    t.set_speed(115_200).context("setting 115200 baud")?;
    termios::tcsetattr(&slave, OptionalActions::Now, &t).context("tcsetattr")?;
    rustix::fs::fcntl_setfl(&master, OFlags::NONBLOCK).context("O_NONBLOCK")?;
    let link = match link {
        None => None,
        Some(l) => {
            match std::fs::symlink_metadata(l) {
                Ok(m) if m.file_type().is_symlink() || m.file_type().is_file() => {
                    std::fs::remove_file(l)
                        .with_context(|| format!("replacing {}", l.display()))?;
                }
                Ok(_) => anyhow::bail!("--serial {}: exists and is not a symlink", l.display()),
                Err(_) => {}
            }
            std::os::unix::fs::symlink(&pts, l)
                .with_context(|| format!("linking {} to {}", l.display(), pts.display()))?;
            Some(l.to_path_buf())
        }
    };
    Ok(SerialPort {
        master: std::fs::File::from(master),
        _slave: slave,
        pts,
        link,
    })
}

/// The peer the agent sees for the serial line (its rate limits and
/// sessions are per peer): one for the port, whoever holds it.
pub fn peer(port: &SerialPort) -> PeerId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"serial:"
        .iter()
        .chain(port.pts.as_os_str().as_encoded_bytes())
    {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    PeerId(h)
}

/// Writes `bytes` to the non-blocking master, waiting at most a second in
/// all for room (a client that stopped reading loses the answer).
fn write_all(master: &mut std::fs::File, mut bytes: &[u8]) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1);
    while !bytes.is_empty() {
        match master.write(bytes) {
            Ok(n) => bytes = bytes.get(n..).unwrap_or(&[]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client is not reading",
                    ));
                }
                let mut fds = [PollFd::new(&*master, PollFlags::OUT)];
                let t = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 20_000_000,
                };
                let _ = poll(&mut fds, Some(&t));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `packet` as the serial transport's lines.
pub fn send(master: &mut std::fs::File, packet: &[u8]) -> std::io::Result<()> {
    let mut enc = Encoder::new(packet)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut line = [0u8; MAX_LINE];
    let mut out = Vec::with_capacity(keyway_smp::serial::encoded_len(packet.len()));
    while let Some(n) = enc.next_line(&mut line) {
        out.extend_from_slice(line.get(..n).unwrap_or(&[]));
    }
    write_all(master, &out)
}

/// With a `link`, opens the port (a pty linked there) and serves it on a
/// thread pushed to `threads` until `stop`: `handle` gets the line's peer,
/// each packet and a function that sends the answer. Returns the pty's
/// path.
pub fn spawn(
    link: Option<&Path>,
    stop: &std::sync::Arc<AtomicBool>,
    verbose: bool,
    threads: &mut Vec<std::thread::JoinHandle<()>>,
    mut handle: impl FnMut(PeerId, &[u8], &mut dyn FnMut(&[u8])) + Send + 'static,
) -> Result<Option<PathBuf>> {
    let Some(link) = link else {
        return Ok(None);
    };
    let port = open_pty(Some(link))?;
    let pts = port.pts.clone();
    let stop = std::sync::Arc::clone(stop);
    threads.push(std::thread::spawn(move || {
        let p = peer(&port);
        serve(port, &stop, verbose, |frame, send| handle(p, frame, send));
    }));
    Ok(Some(pts))
}

/// Serves the port until `stop`: each whole SMP packet goes to `serve`,
/// with a function that sends an answer back on the line.
pub fn serve(
    mut port: SerialPort,
    stop: &AtomicBool,
    verbose: bool,
    mut handle: impl FnMut(&[u8], &mut dyn FnMut(&[u8])),
) {
    let mut rx = vec![0u8; rx_buf_len(MAX_PACKET)];
    let mut dec = Decoder::new(&mut rx);
    let mut chunk = [0u8; 4096];
    let mut dropped: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let ready = {
            let mut fds = [PollFd::new(&port.master, PollFlags::IN)];
            let t = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            poll(&mut fds, Some(&t)).unwrap_or(0)
        };
        if ready == 0 {
            continue;
        }
        let n = match port.master.read(&mut chunk) {
            Ok(0) => continue,
            Ok(n) => n,
            Err(e) if crate::nothing_yet(&e) => continue,
            Err(e) => {
                eprintln!("keyway-lock: serial {}: {e}", port.pts.display());
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let mut rest = chunk.get(..n).unwrap_or(&[]);
        while !rest.is_empty() {
            let (used, r) = dec.feed(rest);
            rest = rest.get(used..).unwrap_or(&[]);
            match r {
                Ok(Some(packet)) => {
                    let master = &mut port.master;
                    let pts = &port.pts;
                    handle(packet, &mut |answer| {
                        if let Err(e) = send(master, answer) {
                            eprintln!("keyway-lock: serial {}: answer dropped: {e}", pts.display());
                        }
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    dropped += 1;
                    if verbose {
                        eprintln!("keyway-lock: serial: frame dropped ({dropped} so far): {e}");
                    }
                }
            }
        }
    }
}
