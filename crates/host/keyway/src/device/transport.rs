//! Transports for SMP frames: UDP (timeouts, bounded resends with the same
//! sequence number, answers matched by sequence number), an in-memory
//! one that hands frames to a function (tests, the modeled BLE figures),
//! and [`Intercept`], another transport seen through a function (tests'
//! men in the middle and dying links).
//!
//! **Fragmentation (the modeled BLE link).** MCUmgr's Bluetooth transport
//! carries an SMP frame longer than one ATT write by splitting it into
//! writes of the link's packet size, with no framing of its own; the lock
//! reassembles them from the length in the SMP header (Zephyr's
//! `CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY`), up to the buffer it
//! advertises in the MCUmgr parameters (`buf_size`). Clients such as
//! `smpclient` send frames up to that buffer and split them the same way.
//! [`FnTransport::fragmenting`] models that link: its frames may be as
//! long as the lock's buffer, and [`Stats::packets_sent`] counts the
//! packet-sized writes that carry them.

use std::io::ErrorKind::{TimedOut, WouldBlock};
use std::net::{SocketAddr, ToSocketAddrs as _, UdpSocket};
use std::time::{Duration, Instant};

use keyway_smp::{HEADER_LEN, Header};

/// The default MTU for UDP: an Ethernet frame's IPv4 UDP payload. A whole
/// SMP frame (header and body) the client sends is at most this long.
pub const UDP_MTU: usize = 1472;
/// The largest datagram read: a response may carry up to 64 KiB of body.
pub const MAX_DATAGRAM: usize = HEADER_LEN + 65535;

/// Why an exchange got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Nothing matching came back within the timeout, after every resend.
    #[error(
        "no answer from {peer} after {tries} tries ({timeout_ms} ms each): is the lock running and is this its SMP port?"
    )]
    NoAnswer {
        /// The lock's address.
        peer: String,
        /// Sends, the first and the resends.
        tries: u32,
        /// The wait for each.
        timeout_ms: u64,
    },
    /// The socket failed.
    #[error("{what} {peer}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The lock's address.
        peer: String,
        /// The OS error.
        error: String,
    },
    /// The in-memory peer failed.
    #[error("{0}")]
    Peer(String),
}

/// The stop-and-wait of the UDP and serial transports: how long each
/// request waits for its answer and how many times it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// The wait for each answer (at least 1 ms).
    pub(crate) timeout: Duration,
    /// Sends, the first and the resends (at least one).
    pub(crate) tries: u32,
}

/// `with_retry`, `set_retry` and `retry` of a transport with a
/// `retry: Retry` field (UDP and serial): one set of methods for both.
macro_rules! retry_methods {
    () => {
        /// Waits `timeout` for each answer and sends at most `tries` times
        /// (at least once).
        pub fn with_retry(mut self, timeout: Duration, tries: u32) -> Self {
            self.set_retry(timeout, tries);
            self
        }

        /// As `with_retry`, on a transport in use: the same socket or port
        /// (for UDP the same source address, so the same peer to the lock
        /// and the same session) with another wait for the requests that
        /// follow.
        pub fn set_retry(&mut self, timeout: Duration, tries: u32) {
            self.retry = Retry::new(timeout, tries);
        }

        /// The wait and the sends per request now.
        pub fn retry(&self) -> (Duration, u32) {
            self.retry.get()
        }
    };
}
pub(crate) use retry_methods;

impl Retry {
    /// `timeout` and `tries`, raised to at least 1 ms and one send.
    pub(crate) fn new(timeout: Duration, tries: u32) -> Self {
        Self {
            timeout: timeout.max(Duration::from_millis(1)),
            tries: tries.max(1),
        }
    }

    /// The wait and the sends, as the transports report them.
    pub(crate) fn get(self) -> (Duration, u32) {
        (self.timeout, self.tries)
    }

    /// The error after every send to `peer` went unanswered.
    pub(crate) fn no_answer(self, peer: String) -> TransportError {
        TransportError::NoAnswer {
            peer,
            tries: self.tries,
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl Default for Retry {
    /// Half a second for each answer, five sends.
    fn default() -> Self {
        Self::new(Duration::from_millis(500), 5)
    }
}

/// What a transport sent and received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Request frames sent, resends included.
    pub frames_sent: u64,
    /// The link's packets that carried them: one a frame on UDP; on a
    /// fragmenting link ([`FnTransport::fragmenting`]) each frame in
    /// writes of at most the packet size.
    pub packets_sent: u64,
    /// Bytes of those frames.
    pub bytes_sent: u64,
    /// Resends after a timeout.
    pub resends: u64,
    /// Datagrams dropped unread: a wrong sequence number, another sender,
    /// shorter than a header.
    pub ignored: u64,
    /// Response bytes accepted.
    pub bytes_received: u64,
}

/// Sends one request frame and returns the response frame whose sequence
/// number is `seq`.
pub trait Transport {
    /// One exchange. The returned frame's header carries `seq`.
    fn exchange(&mut self, frame: &[u8], seq: u8) -> Result<Vec<u8>, TransportError>;
    /// The largest request frame the link carries.
    fn mtu(&self) -> usize;
    /// Counters so far.
    fn stats(&self) -> Stats;
}

/// SMP over UDP: stop and wait, one request in flight.
#[derive(Debug)]
pub struct UdpTransport {
    socket: UdpSocket,
    peer: SocketAddr,
    retry: Retry,
    mtu: usize,
    stats: Stats,
    buf: Vec<u8>,
}

impl UdpTransport {
    /// A transport to `target`: `udp:HOST:PORT` or `HOST:PORT`.
    pub fn connect(target: &str) -> Result<Self, TransportError> {
        if let Some(scheme) = ["tcp:", "ble:", "serial:", "unix:"]
            .iter()
            .find(|s| target.starts_with(**s))
        {
            return Err(TransportError::Io {
                what: "connecting to",
                peer: target.to_owned(),
                error: format!(
                    "{} targets are not supported: the lock's SMP runs on UDP (udp:HOST:PORT)",
                    scheme.trim_end_matches(':')
                ),
            });
        }
        let addr = target.strip_prefix("udp:").unwrap_or(target);
        let io = |what, error: std::io::Error| TransportError::Io {
            what,
            peer: addr.to_owned(),
            error: error.to_string(),
        };
        let peer = addr
            .to_socket_addrs()
            .map_err(|e| io("resolving", e))?
            .next()
            .ok_or_else(|| TransportError::Io {
                what: "resolving",
                peer: addr.to_owned(),
                error: "no address".into(),
            })?;
        let local: SocketAddr = if peer.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).map_err(|e| io("binding a socket for", e))?;
        Ok(UdpTransport {
            socket,
            peer,
            retry: Retry::default(),
            mtu: UDP_MTU,
            stats: Stats::default(),
            buf: vec![0; MAX_DATAGRAM],
        })
    }

    retry_methods!();

    /// The largest request frame (at least a header and a small body).
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu.max(HEADER_LEN + 32);
        self
    }

    /// The lock's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn io(&self, what: &'static str, e: std::io::Error) -> TransportError {
        TransportError::Io {
            what,
            peer: self.peer.to_string(),
            error: e.to_string(),
        }
    }
}

impl Transport for UdpTransport {
    fn exchange(&mut self, frame: &[u8], seq: u8) -> Result<Vec<u8>, TransportError> {
        for attempt in 0..self.retry.tries {
            if attempt > 0 {
                self.stats.resends += 1;
            }
            self.socket
                .send_to(frame, self.peer)
                .map_err(|e| self.io("sending to", e))?;
            self.stats.frames_sent += 1;
            self.stats.packets_sent += 1;
            self.stats.bytes_sent += frame.len() as u64;
            let deadline = Instant::now() + self.retry.timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                self.socket
                    .set_read_timeout(Some(left))
                    .map_err(|e| self.io("setting a timeout for", e))?;
                let (n, from) = match self.socket.recv_from(&mut self.buf) {
                    Ok(x) => x,
                    Err(e) if matches!(e.kind(), WouldBlock | TimedOut) => break,
                    // An ICMP "port unreachable" from an earlier send: wait on.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(self.io("receiving from", e)),
                };
                let got = self.buf.get(..n).unwrap_or(&[]);
                let ours = from == self.peer && Header::decode(got).is_ok_and(|h| h.seq == seq);
                if !ours {
                    self.stats.ignored += 1;
                    continue;
                }
                self.stats.bytes_received += n as u64;
                return Ok(got.to_vec());
            }
        }
        Err(self.retry.no_answer(self.peer.to_string()))
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}

/// A transport seen through a function: each exchange is
/// `f(inner, frame, seq)`, which may alter, hold back, drop or add frames
/// and answers around the inner transport's exchanges (a man in the
/// middle, a link that dies); the MTU and the counters are the inner
/// transport's.
pub struct Intercept<T, F> {
    /// The transport underneath.
    pub inner: T,
    f: F,
}

impl<T, F> std::fmt::Debug for Intercept<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intercept").finish_non_exhaustive()
    }
}

impl<T: Transport, F: FnMut(&mut T, &[u8], u8) -> Result<Vec<u8>, TransportError>> Intercept<T, F> {
    /// `inner`, each exchange through `f`.
    pub fn new(inner: T, f: F) -> Self {
        Intercept { inner, f }
    }
}

impl<T: Transport, F: FnMut(&mut T, &[u8], u8) -> Result<Vec<u8>, TransportError>> Transport
    for Intercept<T, F>
{
    fn exchange(&mut self, frame: &[u8], seq: u8) -> Result<Vec<u8>, TransportError> {
        (self.f)(&mut self.inner, frame, seq)
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

/// A transport that hands each frame to a function (a sans-IO server in
/// the same process): no loss, no timeouts.
pub struct FnTransport<F> {
    f: F,
    mtu: usize,
    /// The link's packet size when frames are split (`None`: one packet
    /// a frame).
    packet: Option<usize>,
    stats: Stats,
}

impl<F> std::fmt::Debug for FnTransport<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnTransport")
            .field("mtu", &self.mtu)
            .field("packet", &self.packet)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<F: FnMut(&[u8]) -> Vec<u8>> FnTransport<F> {
    /// Frames of at most `mtu` bytes go to `f`, which answers each.
    pub fn new(mtu: usize, f: F) -> Self {
        FnTransport {
            f,
            mtu: mtu.max(HEADER_LEN + 32),
            packet: None,
            stats: Stats::default(),
        }
    }

    /// Frames of at most `frame` bytes (the lock's advertised `buf_size`)
    /// go to `f`, each counted as the writes of at most `packet` bytes
    /// that carry it over a link that fragments (MCUmgr over BLE: the
    /// ATT payload, 244 bytes at an ATT MTU of 247), reassembled by the
    /// lock.
    pub fn fragmenting(packet: usize, frame: usize, f: F) -> Self {
        FnTransport {
            packet: Some(packet.max(1)),
            ..FnTransport::new(frame, f)
        }
    }
}

impl<F: FnMut(&[u8]) -> Vec<u8>> Transport for FnTransport<F> {
    fn exchange(&mut self, frame: &[u8], seq: u8) -> Result<Vec<u8>, TransportError> {
        self.stats.frames_sent += 1;
        self.stats.packets_sent += self
            .packet
            .map_or(1, |p| frame.len().div_ceil(p).max(1) as u64);
        self.stats.bytes_sent += frame.len() as u64;
        let r = (self.f)(frame);
        match Header::decode(&r) {
            Ok(h) if h.seq == seq => {
                self.stats.bytes_received += r.len() as u64;
                Ok(r)
            }
            Ok(h) => Err(TransportError::Peer(format!(
                "the answer carries sequence number {}, the request {seq}",
                h.seq
            ))),
            Err(e) => Err(TransportError::Peer(format!("the answer: {e}"))),
        }
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo of the request's header with an empty body.
    fn echo(frame: &[u8]) -> Vec<u8> {
        let mut h = Header::decode(frame).expect("a header");
        h.len = 0;
        h.encode().to_vec()
    }

    fn frame(len: usize, seq: u8) -> Vec<u8> {
        let mut f = vec![0u8; len];
        let h = Header {
            op: keyway_smp::Op::Write,
            version: 1,
            flags: 0,
            len: u16::try_from(len - HEADER_LEN).expect("a short body"),
            group: 1,
            seq,
            id: 1,
        };
        f[..HEADER_LEN].copy_from_slice(&h.encode());
        f
    }

    #[test]
    fn a_fragmenting_link_counts_packets_of_its_size() {
        let mut t = FnTransport::fragmenting(244, 2056, echo);
        assert_eq!(t.mtu(), 2056, "frames go up to the lock's buffer");
        for (len, seq) in [(2056, 0), (244, 1), (245, 2), (20, 3)] {
            t.exchange(&frame(len, seq), seq).expect("an answer");
        }
        let s = t.stats();
        assert_eq!(s.frames_sent, 4);
        // 2056 = 8 x 244 + 104: 9 writes; then 1, 2 and 1.
        assert_eq!(s.packets_sent, 9 + 1 + 2 + 1);
        assert_eq!(s.bytes_sent, 2056 + 244 + 245 + 20);
    }

    #[test]
    fn a_plain_link_counts_one_packet_a_frame() {
        let mut t = FnTransport::new(244, echo);
        t.exchange(&frame(200, 7), 7).expect("an answer");
        assert_eq!((t.stats().frames_sent, t.stats().packets_sent), (1, 1));
    }
}
