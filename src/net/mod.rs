//! The network stage: bring up candidate NICs, race DHCPv4 on all of them at once, configure
//! the first lease that reaches the metadata service, and put everything back afterwards.
//!
//! - Candidates: `select.rs`, waited for (up to the deadline) while there are none, since
//!   udev may still be loading NIC drivers. Each is set up (IFF_UP) if it was down; DHCP starts on it as
//!   soon as it has carrier. One thread polls every socket: the time for eight NICs of which
//!   one answers is the time of that one (fedora-coreos-tracker#518 is what we avoid).
//! - A lease is applied (MTU, address, routes: option 121, else a default route via option
//!   3; a gateway outside the subnet gets an on-link host route first), then, if a `target`
//!   is given, a TCP connection to it is tried. Success wins; failure undoes that NIC's
//!   configuration and the race goes on with the others.
//! - [`Up`] undoes what was done when dropped: routes and the address removed, links we set up
//!   set down again, so the real root finds the links as they were. [`Up::keep`] leaves the
//!   winner configured (for `rd.neednet=1` or `ip=`, as dracut does); the losers are still
//!   put back.
//!
//! Every wait is bounded by the caller's [`Deadline`]. Not supported: IPv6 (SLAAC, DHCPv6),
//! renewing leases, DNS configuration in the initramfs (servers are reported, not applied:
//! metadata URLs are addresses), releasing the lease (DHCPRELEASE).

pub mod link;
pub mod select;

use crate::cmdline::Cmdline;
use crate::dhcp::client::{Client, Event, Lease, RetryConfig};
use crate::dhcp::socket::DhcpSocket;
use crate::root::Root;
use crate::run::Deadline;
use link::{Links, Nic, RouteSpec};
use serde::Serialize;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// How often the NIC list is read again while none is there.
const NIC_POLL: Duration = Duration::from_millis(100);
/// How often links without carrier are looked at again.
const CARRIER_POLL: Duration = Duration::from_millis(20);
/// Longest wait for the metadata service's TCP port once a lease is applied.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What to bring up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--iface`: only these NICs.
    pub ifaces: Vec<String>,
    /// The metadata service: a lease wins when a TCP connection to it succeeds.
    pub target: Option<SocketAddr>,
    pub retry: RetryConfig,
}

/// The lease that won, as printed by `preroot net --json` and kept in the context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseReport {
    pub iface: String,
    pub mac: String,
    pub address: String,
    pub server: Ipv4Addr,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_secs: Option<u32>,
    /// NICs raced.
    pub candidates: Vec<String>,
    /// From the start of the stage to the ACK, and to the metadata service answering.
    pub lease_ms: u64,
    pub reach_ms: u64,
}

/// Why no lease was usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    NoCandidates(String),
    Netlink(String),
    /// The deadline passed; the message lists what each NIC got to.
    NoLease(String),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::NoCandidates(m) | NetError::Netlink(m) | NetError::NoLease(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for NetError {}

/// Configuration done on one NIC, to be undone.
#[derive(Debug, Default)]
struct Applied {
    ifindex: u32,
    address: Option<(Ipv4Addr, u8)>,
    routes: Vec<RouteSpec>,
}

/// The network as the stage left it; put back on drop unless [`Up::keep`] was called.
pub struct Up {
    links: Links,
    raised: Vec<u32>,
    winner: Applied,
    keep: bool,
    /// The race's sockets, closed only when the stage is over (see `bring_up`).
    sockets: Vec<DhcpSocket>,
    pub lease: LeaseReport,
}

impl Up {
    /// Leave the winning NIC configured (`rd.neednet=1`, `ip=`).
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // Cleanup gets its own short deadline: the stage's may be spent.
        let d = Deadline::after(Duration::from_secs(2));
        if !self.keep {
            undo(&mut self.links, &self.winner, d);
        }
        for idx in &self.raised {
            if self.keep && *idx == self.winner.ifindex {
                continue;
            }
            if let Err(e) = self.links.set_up(*idx, false, d) {
                log::warn!("net: setting link {idx} down: {e}");
            }
        }
    }
}

fn undo(links: &mut Links, a: &Applied, d: Deadline) {
    for r in a.routes.iter().rev() {
        let _ = links.route(false, r, d);
    }
    if let Some((addr, prefix)) = a.address {
        if let Err(e) = links.address(false, a.ifindex, addr, prefix, d) {
            log::warn!("net: removing {addr}/{prefix}: {e}");
        }
    }
}

fn in_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

fn apply(links: &mut Links, nic: &Nic, lease: &Lease, d: Deadline) -> Result<Applied, String> {
    let mut a = Applied {
        ifindex: nic.ifindex,
        ..Applied::default()
    };
    if let Some(mtu) = lease.mtu {
        links
            .set_mtu(nic.ifindex, u32::from(mtu), d)
            .map_err(|e| format!("{}: MTU {mtu}: {e}", nic.name))?;
    }
    links
        .address(true, nic.ifindex, lease.address, lease.prefix, d)
        .map_err(|e| format!("{}: address {}: {e}", nic.name, lease.address))?;
    a.address = Some((lease.address, lease.prefix));
    for (dest, prefix, gw) in lease.routes() {
        if let Some(gw) = gw.filter(|g| !in_subnet(*g, lease.address, lease.prefix)) {
            // GCE-style /32 leases: reach the gateway on the link first.
            let host = RouteSpec {
                ifindex: nic.ifindex,
                dest: gw,
                prefix: 32,
                gateway: None,
                metric: None,
            };
            if !a.routes.contains(&host) {
                links
                    .route(true, &host, d)
                    .map_err(|e| format!("{}: route to gateway {gw}: {e}", nic.name))?;
                a.routes.push(host);
            }
        }
        let r = RouteSpec {
            ifindex: nic.ifindex,
            dest,
            prefix,
            gateway: gw,
            metric: None,
        };
        links
            .route(true, &r, d)
            .map_err(|e| format!("{}: route {dest}/{prefix}: {e}", nic.name))?;
        a.routes.push(r);
    }
    Ok(a)
}

/// Is `addr` unreachable for lack of a route (so the network must be brought up first)?
pub fn needs_network(addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
        Ok(_) => false,
        Err(e) => matches!(
            e.raw_os_error(),
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) | Some(libc::EADDRNOTAVAIL)
        ),
    }
}

enum Slot {
    /// Waiting for carrier.
    Waiting(Nic),
    Running(Nic, DhcpSocket, Box<Client>),
    /// Out of the race, with why.
    Out(String),
}

fn seed(nic: &Nic) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's randomness: enough for a transaction id.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(&nic.mac);
    h.write_u32(nic.ifindex);
    h.finish()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Brings up the network under `deadline`. See the module docs.
pub fn bring_up(
    root: &Root,
    cmd: &Cmdline,
    opts: &Options,
    deadline: Deadline,
) -> Result<Up, NetError> {
    let started = Instant::now();
    // udev may still be loading NIC drivers: wait (bounded) for a candidate to appear.
    let mut nics = link::list(root);
    let mut cands = select::candidates(&nics, cmd, &opts.ifaces);
    while cands.is_empty() && !deadline.passed() {
        std::thread::sleep(NIC_POLL.min(deadline.remaining()));
        nics = link::list(root);
        cands = select::candidates(&nics, cmd, &opts.ifaces);
    }
    if cands.is_empty() {
        return Err(NetError::NoCandidates(format!(
            "no NIC to run DHCP on (found: {})",
            if nics.is_empty() {
                "none".to_string()
            } else {
                nics.iter()
                    .map(|n| n.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )));
    }
    let names: Vec<String> = cands.iter().map(|n| n.name.clone()).collect();
    log::info!("net: racing DHCPv4 on {}", names.join(", "));
    let mut links = Links::open().map_err(|e| NetError::Netlink(format!("netlink: {e}")))?;
    let mut raised = Vec::new();
    let mut slots = Vec::new();
    for nic in cands {
        if !nic.up {
            if let Err(e) = links.set_up(nic.ifindex, true, deadline) {
                slots.push(Slot::Out(format!("{}: set up: {e}", nic.name)));
                continue;
            }
            raised.push(nic.ifindex);
        }
        slots.push(Slot::Waiting(nic));
    }
    // From here on, dropping `up` puts the links back (early returns included).
    let mut up = Up {
        links,
        raised,
        winner: Applied::default(),
        keep: false,
        sockets: Vec::new(),
        lease: LeaseReport {
            iface: String::new(),
            mac: String::new(),
            address: String::new(),
            server: Ipv4Addr::UNSPECIFIED,
            routes: Vec::new(),
            dns: Vec::new(),
            domain: None,
            hostname: None,
            mtu: None,
            lease_secs: None,
            candidates: names,
            lease_ms: 0,
            reach_ms: 0,
        },
    };
    loop {
        let now = Instant::now();
        if deadline.passed() {
            break;
        }
        // Start DHCP on links that got carrier; send what is due.
        let mut waiting = false;
        for slot in &mut slots {
            if let Slot::Waiting(nic) = slot {
                if !link::has_carrier(root, &nic.name) {
                    waiting = true;
                    continue;
                }
                *slot = match DhcpSocket::open(nic.ifindex) {
                    Ok(s) => {
                        let c = Client::new(nic.mac, seed(nic), now, opts.retry);
                        Slot::Running(nic.clone(), s, Box::new(c))
                    }
                    Err(e) => Slot::Out(format!("{}: packet socket: {e}", nic.name)),
                };
            }
            if let Slot::Running(nic, sock, client) = slot {
                if let Some(p) = client.poll_transmit(now) {
                    if let Err(e) = sock.send(&p) {
                        log::debug!("net: {}: send: {e}", nic.name);
                    }
                }
            }
        }
        if !slots
            .iter()
            .any(|s| matches!(s, Slot::Waiting(_) | Slot::Running(..)))
        {
            break;
        }
        let next = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Running(_, _, c) => c.poll_at(),
                _ => None,
            })
            .min();
        let mut wait = deadline.remaining();
        if let Some(n) = next {
            wait = wait.min(n.saturating_duration_since(Instant::now()));
        }
        if waiting {
            wait = wait.min(CARRIER_POLL);
        }
        let running: Vec<usize> = slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| matches!(s, Slot::Running(..)).then_some(i))
            .collect();
        let fds: Vec<_> = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Running(_, sock, _) => Some(sock.as_fd()),
                _ => None,
            })
            .collect();
        let ready = if fds.is_empty() {
            std::thread::sleep(wait);
            Vec::new()
        } else {
            crate::sys::packet::poll_readable(&fds, wait).unwrap_or_default()
        };
        drop(fds);
        for (k, is_ready) in ready.into_iter().enumerate() {
            let Some(&i) = running.get(k) else { continue };
            if !is_ready {
                continue;
            }
            let Some(slot) = slots.get_mut(i) else {
                continue;
            };
            let Slot::Running(nic, sock, client) = slot else {
                continue;
            };
            let payloads = sock.drain().unwrap_or_default();
            for p in payloads {
                match client.process(&p, Instant::now()) {
                    Event::Offered(a) => log::debug!("net: {}: offered {a}", nic.name),
                    Event::Nak => log::info!("net: {}: DHCPNAK, starting over", nic.name),
                    Event::None => {}
                    Event::Bound(lease) => {
                        let lease_ms = ms(started.elapsed());
                        log::info!(
                            "net: {}: lease {}/{} from {} after {lease_ms} ms",
                            nic.name,
                            lease.address,
                            lease.prefix,
                            lease.server
                        );
                        let nic = nic.clone();
                        match try_lease(&mut up.links, &nic, &lease, opts.target, deadline) {
                            Ok(applied) => {
                                up.winner = applied;
                                fill_report(
                                    &mut up.lease,
                                    &nic,
                                    &lease,
                                    lease_ms,
                                    ms(started.elapsed()),
                                );
                                // Closing a packet socket waits for an RCU grace period:
                                // the sockets are closed with `up`, after the fetch.
                                up.sockets = slots
                                    .into_iter()
                                    .filter_map(|s| match s {
                                        Slot::Running(_, sock, _) => Some(sock),
                                        _ => None,
                                    })
                                    .collect();
                                return Ok(up);
                            }
                            Err(why) => {
                                log::warn!("net: {why}");
                                *slot = Slot::Out(why);
                            }
                        }
                        break;
                    }
                }
            }
        }
    }
    let mut detail: Vec<String> = slots
        .iter()
        .map(|s| match s {
            Slot::Waiting(n) => format!("{}: no carrier", n.name),
            Slot::Running(n, _, _) => format!("{}: no lease", n.name),
            Slot::Out(why) => why.clone(),
        })
        .collect();
    detail.sort();
    Err(NetError::NoLease(format!(
        "no usable DHCPv4 lease within {} ms ({})",
        ms(started.elapsed()),
        detail.join("; ")
    )))
}

/// Applies a lease and checks the metadata service answers through it; undone on failure.
fn try_lease(
    links: &mut Links,
    nic: &Nic,
    lease: &Lease,
    target: Option<SocketAddr>,
    deadline: Deadline,
) -> Result<Applied, String> {
    let applied = apply(links, nic, lease, deadline)?;
    let Some(target) = target else {
        return Ok(applied);
    };
    let limit = deadline.remaining().min(PROBE_TIMEOUT);
    match TcpStream::connect_timeout(&target, limit.max(Duration::from_millis(1))) {
        Ok(_) => Ok(applied),
        Err(e) => {
            undo(links, &applied, Deadline::after(Duration::from_secs(1)));
            Err(format!(
                "{}: lease {} does not reach {target}: {e}",
                nic.name, lease.address
            ))
        }
    }
}

fn fill_report(r: &mut LeaseReport, nic: &Nic, lease: &Lease, lease_ms: u64, reach_ms: u64) {
    r.iface = nic.name.clone();
    r.mac = nic.mac_text();
    r.address = format!("{}/{}", lease.address, lease.prefix);
    r.server = lease.server;
    r.routes = lease
        .routes()
        .iter()
        .map(|(d, p, gw)| match gw {
            Some(g) => format!("{d}/{p} via {g}"),
            None => format!("{d}/{p} on-link"),
        })
        .collect();
    r.dns = lease.dns.clone();
    r.domain = lease.domain.clone();
    r.hostname = lease.hostname.clone();
    r.mtu = lease.mtu;
    r.lease_secs = lease.lease_secs;
    r.lease_ms = lease_ms;
    r.reach_ms = reach_ms;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let a = Ipv4Addr::new(10, 0, 0, 5);
        assert!(in_subnet(Ipv4Addr::new(10, 0, 0, 1), a, 24));
        assert!(!in_subnet(Ipv4Addr::new(10, 0, 1, 1), a, 24));
        assert!(!in_subnet(Ipv4Addr::new(10, 0, 0, 1), a, 32));
        assert!(in_subnet(Ipv4Addr::new(1, 2, 3, 4), a, 0));
    }
}
