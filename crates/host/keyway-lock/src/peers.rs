//! Who is asking, and how much each asker may take, sans-IO and with fixed
//! capacity (so it ports to the no_std lock agent unchanged: no heap, the
//! time in milliseconds is an input).
//!
//! These serve [`crate::server::Server::handle`], the device core's own
//! entry for its tests; `keyway-lock` runs every frame through the lock
//! agent, whose per-peer and reset limits are `keyway_agent::limits`.
//!
//! * [`Peer`]: the transport's source of a request (on UDP its address and
//!   port; on BLE a connection handle). Uploads and log exports remember
//!   the peer that began them.
//! * [`RateLimits`]: a token bucket per peer ([`RATE_PEERS`] peers
//!   tracked, the least recently seen one forgotten first: forgetting a
//!   peer gives it a full bucket, never fewer tokens), so one peer's flood
//!   is refused with `EBUSY` before it costs the others anything.
//! * [`ResetLimit`]: resets reboot the whole lock, so they share one
//!   bucket across all peers.

/// The transport source of a request: 16 bytes of address (IPv4 mapped
/// into IPv6) and the port, big-endian; or any other 18-byte handle a
/// transport names its peers with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Peer(pub [u8; 18]);

impl Peer {
    /// The peer of [`crate::server::Server::handle`] (in-memory callers
    /// that do not name one).
    pub const LOCAL: Peer = Peer([0; 18]);
}

impl From<std::net::SocketAddr> for Peer {
    fn from(a: std::net::SocketAddr) -> Self {
        let ip = match a.ip() {
            std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            std::net::IpAddr::V6(v6) => v6,
        };
        let mut b = [0u8; 18];
        b[..16].copy_from_slice(&ip.octets());
        b[16..].copy_from_slice(&a.port().to_be_bytes());
        Peer(b)
    }
}

/// A token bucket: `burst` tokens, one more every `refill_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    tokens: u32,
    last_ms: u64,
}

impl Bucket {
    /// A full bucket at `now_ms`.
    pub fn full(burst: u32, now_ms: u64) -> Self {
        Bucket {
            tokens: burst,
            last_ms: now_ms,
        }
    }

    /// Takes a token at `now_ms` if there is one.
    pub fn take(&mut self, burst: u32, refill_ms: u64, now_ms: u64) -> bool {
        let refill_ms = refill_ms.max(1);
        let earned = now_ms.saturating_sub(self.last_ms) / refill_ms;
        if earned > 0 {
            self.tokens = self
                .tokens
                .saturating_add(u32::try_from(earned).unwrap_or(u32::MAX))
                .min(burst);
            self.last_ms = self.last_ms.saturating_add(earned * refill_ms);
        }
        if now_ms < self.last_ms {
            // A clock that went back: start again from now.
            self.last_ms = now_ms;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// Peers whose buckets are tracked at once.
pub const RATE_PEERS: usize = 16;
/// Requests one peer may make in a burst.
pub const RATE_BURST: u32 = 64;
/// One more request per this many ms (50 requests a second, sustained).
pub const RATE_REFILL_MS: u64 = 20;

/// Per-peer request limits (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RateLimits {
    peers: [Option<(Peer, Bucket, u64)>; RATE_PEERS],
}

impl RateLimits {
    /// Whether `peer` may make one more request at `now_ms` (a token is
    /// taken if so).
    pub fn allow(&mut self, peer: Peer, now_ms: u64) -> bool {
        let at = match self
            .peers
            .iter()
            .position(|p| p.is_some_and(|(q, _, _)| q == peer))
        {
            Some(i) => i,
            None => {
                // A free entry, or the least recently seen peer's.
                let i = self
                    .peers
                    .iter()
                    .position(Option::is_none)
                    .or_else(|| {
                        self.peers
                            .iter()
                            .enumerate()
                            .filter_map(|(i, p)| p.map(|(_, _, seen)| (i, seen)))
                            .min_by_key(|&(_, seen)| seen)
                            .map(|(i, _)| i)
                    })
                    .unwrap_or(0);
                if let Some(p) = self.peers.get_mut(i) {
                    *p = Some((peer, Bucket::full(RATE_BURST, now_ms), now_ms));
                }
                i
            }
        };
        match self.peers.get_mut(at) {
            Some(Some((_, bucket, seen))) => {
                *seen = now_ms;
                bucket.take(RATE_BURST, RATE_REFILL_MS, now_ms)
            }
            _ => true,
        }
    }
}

/// Resets in a burst, over all peers.
pub const RESET_BURST: u32 = 4;
/// One more reset per this many ms.
pub const RESET_REFILL_MS: u64 = 10_000;

/// The lock-wide reset limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetLimit(Option<Bucket>);

impl ResetLimit {
    /// Whether a reset may run at `now_ms` (a token is taken if so).
    pub fn allow(&mut self, now_ms: u64) -> bool {
        self.0
            .get_or_insert(Bucket::full(RESET_BURST, now_ms))
            .take(RESET_BURST, RESET_REFILL_MS, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Peer {
        Peer([n; 18])
    }

    #[test]
    fn buckets_refill_and_peers_are_limited_apart() {
        let mut r = RateLimits::default();
        let granted = (0..200).filter(|i| r.allow(p(1), i * 5)).count();
        // 64 in the burst, then one per 20 ms over ~1 s.
        assert!((64..=64 + 51).contains(&granted), "{granted}");
        assert!(r.allow(p(2), 1000));
        let mut l = ResetLimit::default();
        assert_eq!((0..10).filter(|_| l.allow(0)).count(), RESET_BURST as usize);
        assert!(l.allow(RESET_REFILL_MS));
    }
}
