//! Check 1: the router unplugged. The run is offline: no route leaves
//! the network the audit runs in.

use super::*;

impl Session<'_> {
    pub(super) fn router_unplugged(&mut self) -> Check {
        if self.serial {
            return super::not_applicable(
                1,
                format!(
                    "not applicable on a serial line: the lock is reached on {}, not over a network, so this host's routes say nothing about it (unplug the lock's own uplinks, if it has any, for the run)",
                    self.addr
                ),
            );
        }
        let iso = netns::inspect();
        let mut ev = Vec::new();
        match (&self.o.namespace, iso.in_namespace) {
            (Ok(()), true) => ev.push(
                "the audit runs in its own network namespace (unshare -rn): only lo, brought up for the lock".into(),
            ),
            (Ok(()), false) => ev.push("the caller isolated the network".into()),
            (Err(why), _) => ev.push(format!("no network namespace: {why}")),
        }
        ev.push(format!("interfaces: {}", iso.interfaces.join(", ")));
        if iso.default_routes.is_empty() {
            ev.push("no default route in /proc/net/route or /proc/net/ipv6_route".into());
        }
        for r in &iso.default_routes {
            ev.push(format!("default route found: {r}"));
        }
        for (p, r) in &iso.probes {
            ev.push(format!("UDP connect to {p}: {r}"));
        }
        ev.push(format!("the lock answers on {} (echo)", self.addr));
        if let Some(c) = &self.control_addr {
            ev.push(format!("its control socket: {c}"));
        }
        if iso.no_route_out() {
            let summary = match self.o.target {
                // A lock in this process or on loopback runs on this host:
                // its routes are these.
                Target::Udp(a) if self.o.in_process || a.ip().is_loopback() => {
                    "no route out: only the lock is reachable"
                }
                // The audit sees its own host's routes, not a real lock's
                // radios: the tester must unplug the lock's router too.
                Target::Udp(_) | Target::Serial(_) => {
                    ev.push("the lock's own uplinks (its Wi-Fi router, a cellular modem) cannot be seen from here: unplug them for the run".into());
                    "no route out from this host: only the lock is reachable from here"
                }
            };
            pass(1, summary, ev)
        } else {
            let why = iso
                .default_routes
                .first()
                .cloned()
                .unwrap_or_else(|| "a public address is routable".into());
            fail(1, format!("the network is not unplugged: {why}"), ev)
        }
    }
}
