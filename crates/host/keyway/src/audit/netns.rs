//! "Router unplugged": the audit proves that nothing but the lock is
//! reachable. When it runs the lock itself it re-executes itself under
//! `unshare -rn` (a new user and network namespace holding only `lo`),
//! so the lock and the audit share a network with no route out; against
//! an external lock it proves that this host has no route out.
//!
//! The proof is read from the kernel, not assumed: no default route in
//! `/proc/net/route` or `/proc/net/ipv6_route`, and a UDP `connect` to a
//! public address fails with `ENETUNREACH` (a UDP connect only asks the
//! kernel for a route; nothing is sent).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;

/// Set in the environment of the audit re-executed inside the namespace.
pub const ENV_INSIDE: &str = "KEYWAY_AUDIT_NETNS";

/// Public addresses a UDP connect is tried against (DNS resolvers; no
/// packet is sent).
pub const PROBES: [&str; 2] = ["1.1.1.1:53", "[2606:4700:4700::1111]:53"];

/// What the host's network looks like from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// Whether this process runs in the namespace the audit made.
    pub in_namespace: bool,
    /// Why no namespace was made (when the audit wanted one).
    pub namespace_error: Option<String>,
    /// Default routes found, each described.
    pub default_routes: Vec<String>,
    /// Each probe and what the kernel said.
    pub probes: Vec<(String, String)>,
    /// Network interfaces present (`/proc/net/dev`).
    pub interfaces: Vec<String>,
}

impl Isolation {
    /// No default route and every probe unreachable.
    pub fn no_route_out(&self) -> bool {
        self.default_routes.is_empty() && self.probes.iter().all(|(_, r)| is_unreachable(r))
    }
}

fn is_unreachable(result: &str) -> bool {
    result.starts_with("unreachable")
}

/// Reads the routing tables and probes the public addresses.
pub fn inspect() -> Isolation {
    let mut default_routes = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/proc/net/route") {
        default_routes.extend(ipv4_defaults(&t));
    }
    if let Ok(t) = std::fs::read_to_string("/proc/net/ipv6_route") {
        default_routes.extend(ipv6_defaults(&t));
    }
    let probes = PROBES.iter().map(|p| ((*p).to_owned(), probe(p))).collect();
    let interfaces = std::fs::read_to_string("/proc/net/dev")
        .map(|t| {
            t.lines()
                .skip(2)
                .filter_map(|l| l.split(':').next())
                .map(|s| s.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    Isolation {
        in_namespace: std::env::var_os(ENV_INSIDE).is_some(),
        namespace_error: None,
        default_routes,
        probes,
        interfaces,
    }
}

/// `RTF_UP`.
const RTF_UP: u32 = 0x0001;
/// `RTF_REJECT`: an unreachable route, not a way out.
const RTF_REJECT: u32 = 0x0200;

/// The IPv4 default routes (destination and mask 0, up, not reject) in a
/// `/proc/net/route` table.
pub fn ipv4_defaults(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (iface, dest, gw, flags, mask) =
                (f.first()?, f.get(1)?, f.get(2)?, f.get(3)?, f.get(7)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = *dest == "00000000" && *mask == "00000000";
            (default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0).then(|| {
                let gw = u32::from_str_radix(gw, 16).map_or_else(
                    |_| (*gw).to_owned(),
                    |g| std::net::Ipv4Addr::from(g.swap_bytes()).to_string(),
                );
                format!("IPv4 default via {gw} dev {iface}")
            })
        })
        .collect()
}

/// The IPv6 default routes (`::/0`, up, not reject) in a
/// `/proc/net/ipv6_route` table.
pub fn ipv6_defaults(table: &str) -> Vec<String> {
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dest, plen, hop, flags, iface) =
                (f.first()?, f.get(1)?, f.get(4)?, f.get(8)?, f.get(9)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = dest.bytes().all(|b| b == b'0') && *plen == "00";
            (default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0)
                .then(|| format!("IPv6 default via {hop} dev {iface}"))
        })
        .collect()
}

/// Asks the kernel for a route to `addr` with a UDP connect.
fn probe(addr: &str) -> String {
    let Ok(a) = addr.parse::<SocketAddr>() else {
        return format!("not an address: {addr}");
    };
    let local = if a.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let sock = match UdpSocket::bind(local) {
        Ok(s) => s,
        // No IPv6 stack at all: no route either.
        Err(e) => return format!("unreachable (no socket: {e})"),
    };
    match sock.connect(a) {
        Ok(()) => format!(
            "ROUTED: the kernel has a route (local address {})",
            sock.local_addr()
                .map_or_else(|_| "?".to_owned(), |l| l.to_string())
        ),
        Err(e) if e.raw_os_error() == Some(101) => "unreachable (ENETUNREACH)".to_owned(),
        Err(e) if e.raw_os_error() == Some(97) => {
            "unreachable (EAFNOSUPPORT: no stack for this family)".to_owned()
        }
        Err(e) => format!("unreachable ({e})"),
    }
}

/// Whether `unshare -rn` works here: `Ok` or the reason it does not.
pub fn namespaces_permitted() -> Result<(), String> {
    match Command::new("unshare").args(["-rn", "true"]).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`unshare -rn` is not permitted here: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("`unshare` cannot run: {e}")),
    }
}

/// Re-executes this program with `args` under `unshare -rn`, with
/// [`ENV_INSIDE`] set, and returns its exit code; `Err` with the reason if
/// namespaces are not permitted (the caller then runs without one and
/// says so).
pub fn reexec_isolated(exe: &Path, args: &[std::ffi::OsString]) -> Result<i32, String> {
    namespaces_permitted()?;
    let status = Command::new("unshare")
        .arg("-rn")
        .arg("--")
        .arg(exe)
        .args(args)
        .env(ENV_INSIDE, "1")
        .status()
        .map_err(|e| format!("`unshare -rn {}` cannot run: {e}", exe.display()))?;
    Ok(status.code().unwrap_or(1))
}

/// Inside the namespace: bring `lo` up (it starts down), so the lock and
/// the audit can talk over loopback.
pub fn loopback_up() -> Result<(), String> {
    let o = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .output()
        .map_err(|e| format!("`ip link set lo up` cannot run: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip link set lo up` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_default_route_is_found_and_named() {
        let t = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(ipv4_defaults(t), ["IPv4 default via 192.0.2.1 dev eth0"]);
        let only_subnet = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                 eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        assert!(ipv4_defaults(only_subnet).is_empty());
    }

    #[test]
    fn ipv6_reject_default_is_not_a_way_out() {
        let t = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n\
                 00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        assert_eq!(
            ipv6_defaults(t),
            ["IPv6 default via fd000000000000000000000000000001 dev eth0"]
        );
        assert!(ipv6_defaults(t.lines().nth(1).unwrap_or("")).is_empty());
    }
}
