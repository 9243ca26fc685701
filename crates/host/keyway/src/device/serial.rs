//! SMP over a serial port (`serial:PATH`): the MCUmgr serial transport
//! ([`keyway_smp::serial`]) on a tty, 115200 baud, 8N1, raw.
//!
//! Stop and wait, one request in flight, as over UDP: the request goes out
//! as base64 lines; the answer is the first whole frame whose SMP header
//! carries the request's sequence number, group and command id (a late
//! answer to an earlier request that went unanswered in time, with the
//! same sequence number from a new client, is not this one's). Console output the lock prints
//! between frames (a boot banner, log lines) is skipped by the codec;
//! frames it drops (a bad CRC, a cut line) and answers with another
//! sequence number are counted in [`Stats::ignored`]. A request with no
//! answer within the timeout is sent again, at most `tries` times, like a
//! lost datagram.
//!
//! The port is set up with `rustix`'s termios (raw mode, 115200 baud, no
//! flow control, `VMIN = 0`, `VTIME = 1` so a read returns within 100 ms
//! and the loop can watch its deadline). `rustix` rather than
//! `serialport`: it is already in the workspace's dependency tree, it is
//! a safe wrapper (no `unsafe` here), and the simulated lock uses its pty
//! calls for the other end of the line.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keyway_smp::Header;
use keyway_smp::serial::{Decoder, MAX_PACKET, encode, encoded_len, rx_buf_len};
use rustix::termios::{self, ControlModes, OptionalActions, SpecialCodeIndex};

use super::transport::{Retry, Stats, Transport, TransportError, retry_methods};

/// The line rate: MCUmgr's serial default.
pub const BAUD: u32 = 115_200;
/// The default largest request frame over serial: Zephyr's default SMP
/// buffer (`CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE`, 384) is smaller, but
/// the Keyway lock takes a whole [`keyway_smp::MAX_FRAME`].
pub const SERIAL_MTU: usize = keyway_smp::MAX_FRAME;

/// SMP over a serial port: stop and wait, one request in flight.
#[derive(Debug)]
pub struct SerialTransport {
    port: File,
    path: PathBuf,
    /// The device `path` led to when it was opened: a lock restarted by
    /// its supervisor (an emulator after a power cut) comes back on a new
    /// pty with the symlink moved, and the transport then opens it again.
    opened: Option<PathBuf>,
    retry: Retry,
    mtu: usize,
    stats: Stats,
    rx: Vec<u8>,
    line: Vec<u8>,
}

/// Sets `port` to raw 115200 8N1 without flow control; reads return
/// within `VTIME` tenths of a second.
pub fn make_raw(port: &impl std::os::fd::AsFd, vtime: u8) -> std::io::Result<()> {
    let mut t = termios::tcgetattr(port)?;
    t.make_raw();
    t.control_modes
        .remove(ControlModes::CSTOPB | ControlModes::PARENB | ControlModes::CRTSCTS);
    t.control_modes
        .insert(ControlModes::CLOCAL | ControlModes::CREAD | ControlModes::CS8);
    t.special_codes[SpecialCodeIndex::VMIN] = 0;
    t.special_codes[SpecialCodeIndex::VTIME] = vtime;
    t.set_speed(BAUD)?;
    termios::tcsetattr(port, OptionalActions::Now, &t)?;
    Ok(())
}

/// Opens `path` raw at 115200 8N1 and drops what the line held before.
fn open_port(path: &Path) -> Result<File, (&'static str, std::io::Error)> {
    let port = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .map_err(|e| ("opening", e))?;
    make_raw(&port, 1).map_err(|e| ("setting 115200 8N1 raw on", e))?;
    // What the line held before we opened it is not an answer of ours.
    termios::tcflush(&port, termios::QueueSelector::IFlush).map_err(|e| ("flushing", e.into()))?;
    Ok(port)
}

impl SerialTransport {
    /// Opens the port again if its path now leads to another device: a
    /// lock restarted by its supervisor (an emulator after a power cut)
    /// comes back on a new pty with the link moved. The path cannot lead
    /// back to the hung-up pty's number while this transport holds it open
    /// (checked with QEMU: a restart while the old slave is open gets the
    /// next number). A retry on an unchanged path does *not* reopen: the
    /// reopen flushes the line's input, which can drop an answer that is
    /// arriving just as the wait ran out (then only the lock's refusal of
    /// the resent sealed record, a replay to it, came back: CI at 9f1bbbd,
    /// check 4). A path that leads nowhere yet is left alone: the request
    /// then goes unanswered.
    fn follow(&mut self) -> Result<(), TransportError> {
        let now = std::fs::canonicalize(&self.path).ok();
        if now.is_none() || now == self.opened {
            return Ok(());
        }
        match open_port(&self.path) {
            Ok(p) => {
                self.port = p;
                self.opened = now;
                Ok(())
            }
            Err((_, e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err((what, e)) => Err(self.io(what, e)),
        }
    }

    /// A transport on the serial port `target`: `serial:PATH` (a tty, a
    /// pty such as `/dev/pts/3`, or a symlink to one).
    pub fn connect(target: &str) -> Result<Self, TransportError> {
        let path = target.strip_prefix("serial:").unwrap_or(target);
        let io = |what, e: std::io::Error| TransportError::Io {
            what,
            peer: format!("serial:{path}"),
            error: e.to_string(),
        };
        if path.is_empty() {
            return Err(TransportError::Io {
                what: "opening",
                peer: target.to_owned(),
                error: "no path: give serial:PATH (e.g. serial:/dev/ttyACM0)".into(),
            });
        }
        let port = open_port(Path::new(path)).map_err(|(what, e)| io(what, e))?;
        Ok(SerialTransport {
            port,
            opened: std::fs::canonicalize(path).ok(),
            path: PathBuf::from(path),
            retry: Retry::default(),
            mtu: SERIAL_MTU,
            stats: Stats::default(),
            rx: vec![0; rx_buf_len(MAX_PACKET)],
            line: Vec::new(),
        })
    }

    retry_methods!();

    /// The largest request frame (at least a header and a small body).
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu.clamp(keyway_smp::HEADER_LEN + 32, MAX_PACKET);
        self
    }

    /// The port's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, what: &'static str, e: std::io::Error) -> TransportError {
        TransportError::Io {
            what,
            peer: format!("serial:{}", self.path.display()),
            error: e.to_string(),
        }
    }
}

impl Transport for SerialTransport {
    fn exchange(&mut self, frame: &[u8], seq: u8) -> Result<Vec<u8>, TransportError> {
        self.line.resize(encoded_len(frame.len()), 0);
        let n = encode(frame, &mut self.line).map_err(|e| TransportError::Io {
            what: "encoding a frame for",
            peer: format!("serial:{}", self.path.display()),
            error: e.to_string(),
        })?;
        // A fresh decoder per exchange: what a dropped earlier answer left
        // half-read cannot join this one.
        let mut rx = std::mem::take(&mut self.rx);
        let want = Header::decode(frame).ok().map(|h| (h.group, h.id));
        let r = self.exchange_with(frame.len(), n, (seq, want), &mut rx);
        self.rx = rx;
        r
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}

impl SerialTransport {
    fn exchange_with(
        &mut self,
        frame_len: usize,
        n: usize,
        (seq, want): (u8, Option<(u16, u8)>),
        rx: &mut [u8],
    ) -> Result<Vec<u8>, TransportError> {
        let mut dec = Decoder::new(rx);
        let mut chunk = [0u8; 4096];
        for attempt in 0..self.retry.tries {
            if attempt > 0 {
                self.stats.resends += 1;
            }
            self.follow()?;
            let lines = self.line.get(..n).unwrap_or(&[]);
            if let Err(e) = self.port.write_all(lines).and_then(|()| self.port.flush()) {
                // The other end closed (an emulator powered off): no
                // answer this time; the next try follows the path.
                if e.raw_os_error() == Some(libc::EIO) {
                    std::thread::sleep(self.retry.timeout.min(Duration::from_millis(200)));
                    continue;
                }
                return Err(self.io("writing to", e));
            }
            self.stats.frames_sent += 1;
            self.stats.packets_sent += n.div_ceil(keyway_smp::serial::MAX_LINE) as u64;
            self.stats.bytes_sent += frame_len as u64;
            let deadline = Instant::now() + self.retry.timeout;
            while Instant::now() < deadline {
                let got = match self.port.read(&mut chunk) {
                    Ok(0) => continue,
                    Ok(k) => k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // A pty whose other end is not open yet: wait on.
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    Err(e) => return Err(self.io("reading from", e)),
                };
                let mut rest = chunk.get(..got).unwrap_or(&[]);
                while !rest.is_empty() {
                    let (used, r) = dec.feed(rest);
                    rest = rest.get(used..).unwrap_or(&[]);
                    match r {
                        Ok(Some(p))
                            if Header::decode(p).is_ok_and(|h| {
                                h.seq == seq && want.is_none_or(|w| w == (h.group, h.id))
                            }) =>
                        {
                            self.stats.bytes_received += p.len() as u64;
                            return Ok(p.to_vec());
                        }
                        Ok(Some(_)) | Err(_) => self.stats.ignored += 1,
                        Ok(None) => {}
                    }
                }
            }
        }
        Err(self
            .retry
            .no_answer(format!("serial:{}", self.path.display())))
    }
}

/// The transport a `--target` names: `udp:HOST:PORT` (or `HOST:PORT`) or
/// `serial:PATH`.
#[derive(Debug)]
pub enum TargetTransport {
    /// SMP over UDP.
    Udp(super::transport::UdpTransport),
    /// SMP over a serial port.
    Serial(SerialTransport),
}

impl TargetTransport {
    /// Opens the transport `target` names.
    pub fn connect(target: &str) -> Result<Self, TransportError> {
        if target.starts_with("serial:") {
            SerialTransport::connect(target).map(Self::Serial)
        } else {
            super::transport::UdpTransport::connect(target).map(Self::Udp)
        }
    }

    /// Waits `timeout` for each answer and sends at most `tries` times.
    pub fn with_retry(self, timeout: Duration, tries: u32) -> Self {
        match self {
            Self::Udp(t) => Self::Udp(t.with_retry(timeout, tries)),
            Self::Serial(t) => Self::Serial(t.with_retry(timeout, tries)),
        }
    }

    /// As [`TargetTransport::with_retry`], on a transport in use.
    pub fn set_retry(&mut self, timeout: Duration, tries: u32) {
        match self {
            Self::Udp(t) => t.set_retry(timeout, tries),
            Self::Serial(t) => t.set_retry(timeout, tries),
        }
    }

    /// The wait and the sends per request now.
    pub fn retry(&self) -> (Duration, u32) {
        match self {
            Self::Udp(t) => t.retry(),
            Self::Serial(t) => t.retry(),
        }
    }

    /// The largest request frame.
    pub fn with_mtu(self, mtu: usize) -> Self {
        match self {
            Self::Udp(t) => Self::Udp(t.with_mtu(mtu)),
            Self::Serial(t) => Self::Serial(t.with_mtu(mtu)),
        }
    }

    /// The lock's address, as a target string.
    pub fn peer(&self) -> String {
        match self {
            Self::Udp(t) => format!("udp:{}", t.peer()),
            Self::Serial(t) => format!("serial:{}", t.path().display()),
        }
    }
}

impl Transport for TargetTransport {
    fn exchange(&mut self, frame: &[u8], seq: u8) -> Result<Vec<u8>, TransportError> {
        match self {
            Self::Udp(t) => t.exchange(frame, seq),
            Self::Serial(t) => t.exchange(frame, seq),
        }
    }

    fn mtu(&self) -> usize {
        match self {
            Self::Udp(t) => t.mtu(),
            Self::Serial(t) => t.mtu(),
        }
    }

    fn stats(&self) -> Stats {
        match self {
            Self::Udp(t) => t.stats(),
            Self::Serial(t) => t.stats(),
        }
    }
}
