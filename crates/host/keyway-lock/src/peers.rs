//! Who is asking: [`Peer`], the transport's source of a request (on UDP
//! its address and port; on BLE a connection handle). Uploads and log
//! exports remember the peer that began them. The lock agent decides who
//! may ask what and how often (`keyway_agent::limits`: per-peer and reset
//! limits); every request it hands the device core comes as
//! [`Peer::LOCAL`].

/// The transport source of a request: 16 bytes of address (IPv4 mapped
/// into IPv6) and the port, big-endian; or any other 18-byte handle a
/// transport names its peers with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Peer(pub [u8; 18]);

impl Peer {
    /// The peer of every request the agent authorized (the agent keeps
    /// its own peers).
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
