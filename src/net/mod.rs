//! The network stage: bring up the candidate NICs, race IPv4 and IPv6 on all of them at once,
//! keep the first configuration that reaches the metadata service, and put everything back
//! afterwards.
//!
//! - Candidates and what runs on each: `select.rs` (`--iface`, `ip=`, else every Ethernet
//!   NIC: DHCPv4, and IPv6 as the router asks), waited for (up to the deadline) while there
//!   are none, since udev may still be loading NIC drivers. Each down link gets optimistic
//!   DAD (`sysctl.rs`, which says why) and is set up (IFF_UP).
//! - IPv4 (`race.rs`, `config.rs`): DHCPv4 (`dhcp/`) once the link has carrier, or the static
//!   `ip=` address; a configuration is applied (MTU, address, routes: option 121, else a
//!   default route via option 3; a gateway outside the subnet gets an on-link host route
//!   first), one NIC at a time, and probed.
//! - IPv6 (`v6.rs`): the kernel makes the link-local address, takes router advertisements,
//!   does SLAAC and installs the routes they give; we send a Router Solicitation as soon as
//!   the link-local address is usable, read the RA's M/O flags back from the kernel, run
//!   DHCPv6 (`dhcp6/`) as they ask (or at once for `ip=dhcp6`) and add its addresses, add a
//!   static `ip=[v6]` address. Addresses and flags come from netlink dumps (`rtnl.rs`,
//!   `link.rs`), read again whenever the kernel's IPv6 notifications ring.
//! - A ready configuration is probed (`probe.rs`): a TCP connect to each metadata address of
//!   its family ([`Options::targets`]; a link-local one is tried on every NIC, with that NIC
//!   as its zone) through that NIC. The first connect wins, whichever family (see `race.rs`).
//!   The winner's IPv6 metadata address is pinned to it by a host route, so the fetch leaves
//!   by the NIC that reached it. One thread polls every socket: the time for eight NICs of
//!   which one answers is the time of that one (fedora-coreos-tracker#518 is what we avoid).
//!   Where the IPv4 service is each lease's own DHCP server ([`Options::lease_server_port`],
//!   CloudStack), a DHCPv4 lease is probed at port N of its server (option 54).
//! - Without DHCP (`linklocal.rs`, DigitalOcean): an IPv4 link-local address on the first
//!   candidate NIC, probed the same way; no race.
//! - [`Up`] undoes what was done when dropped: addresses and routes we added are removed, the
//!   MTU restored, links we set up set down again (which takes the kernel's SLAAC addresses
//!   and RA routes with them), sysctls restored, so the real root finds the links as they
//!   were. [`Up::keep`] leaves the winner configured (for `rd.neednet=1` or `ip=`, as dracut
//!   does); the losers are still put back.
//!
//! Every wait is bounded by the caller's [`Deadline`]. Not supported: renewing leases
//! (DHCPv4 or DHCPv6), DNS configuration in the initramfs (servers are reported, not
//! applied: metadata URLs are addresses), DHCPRELEASE and DHCPv6 RELEASE, DHCPv6 without an
//! RA that asks for it (unless `ip=dhcp6`), IPv6 prefix delegation, temporary addresses.

pub mod config;
pub mod link;
pub mod linklocal;
pub mod probe;
pub mod race;
pub mod report;
pub mod rtnl;
pub mod select;
pub mod sysctl;
pub mod v6;

pub use report::{LeaseReport, NicReport};

use crate::cmdline::Cmdline;
use crate::deadline::Deadline;
use crate::dhcp::client::RetryConfig;
use crate::dhcp::socket::DhcpSocket;
use crate::dhcp6::socket::Dhcp6Socket;
use crate::root::Root;
use config::Applied;
use link::Links;
use race::{Race, Slot};
use select::Plan;
use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How often the NIC list is read again while none is there.
const NIC_POLL: Duration = Duration::from_millis(100);

/// What to bring up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--iface`: only these NICs.
    pub ifaces: Vec<String>,
    /// The metadata service's addresses: a configuration wins when a TCP connection to one
    /// of them succeeds through it. An IPv6 link-local address with scope 0 is tried on
    /// every NIC; with a scope, only on that NIC. Empty (and no `lease_server_port`): the
    /// first configuration wins.
    pub targets: Vec<SocketAddr>,
    /// Without an IPv4 address in `targets`: the IPv4 service is this port of each DHCPv4
    /// lease's own server (option 54), so a lease wins when a TCP connection there succeeds
    /// through its NIC (CloudStack's virtual router). A static `ip=` has no such server.
    pub lease_server_port: Option<u16>,
    pub retry: RetryConfig,
    pub retry6: crate::dhcp6::client::RetryConfig,
}

/// Why no configuration was usable.
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

/// The network as the stage left it; put back on drop unless [`Up::keep`] was called.
pub struct Up {
    links: Links,
    /// Links we set up.
    raised: Vec<u32>,
    /// Sysctls we changed.
    saved: Vec<sysctl::Saved>,
    /// Everything we configured, per NIC.
    applied: Vec<Applied>,
    /// Host routes pinning the metadata address to the winner (removed even when kept).
    pins: Vec<Applied>,
    /// The winning NIC's index.
    winner: Option<u32>,
    keep: bool,
    /// The race's sockets, closed only when the stage is over (see `race.rs`).
    sockets: Vec<DhcpSocket>,
    sockets6: Vec<Dhcp6Socket>,
    pub lease: LeaseReport,
    /// The metadata address that answered, with the winner's zone for a link-local one.
    pub reached: Option<SocketAddr>,
}

impl Up {
    /// Nothing done yet on `links`, for a stage over `candidates`.
    fn new(links: Links, candidates: Vec<String>) -> Up {
        Up {
            links,
            raised: Vec::new(),
            saved: Vec::new(),
            applied: Vec::new(),
            pins: Vec::new(),
            winner: None,
            keep: false,
            sockets: Vec::new(),
            sockets6: Vec::new(),
            lease: LeaseReport::new(candidates),
            reached: None,
        }
    }

    /// Leave the winning NIC configured (`rd.neednet=1`, `ip=`).
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // Cleanup gets its own short deadline: the stage's may be spent.
        let d = Deadline::after(Duration::from_secs(2));
        let kept = |idx: u32| self.keep && Some(idx) == self.winner;
        for a in &self.pins {
            config::undo(&mut self.links, a, d);
        }
        for a in &self.applied {
            if !kept(a.ifindex) {
                config::undo(&mut self.links, a, d);
            }
        }
        for idx in &self.raised {
            if kept(*idx) {
                continue;
            }
            if let Err(e) = self.links.set_up(*idx, false, d) {
                log::warn!("net: setting link {idx} down: {e}");
            }
        }
        for s in &self.saved {
            s.restore();
        }
    }
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

/// Brings up the network under `deadline`. See the module docs.
pub fn bring_up(
    root: &Root,
    cmd: &Cmdline,
    opts: &Options,
    deadline: Deadline,
) -> Result<Up, NetError> {
    let started = Instant::now();
    let plans = wait_for_candidates(root, cmd, opts, deadline)?;
    let names: Vec<String> = plans.iter().map(|p| p.nic.name.clone()).collect();
    let what: Vec<String> = plans
        .iter()
        .map(|p| format!("{} ({})", p.nic.name, p.summary()))
        .collect();
    log::info!("net: racing on {}", what.join(", "));
    let links = Links::open().map_err(|e| NetError::Netlink(format!("netlink: {e}")))?;
    // From here on, dropping `up` puts the links back (early returns included).
    let mut up = Up::new(links, names);
    let doorbell = link::Doorbell::open()
        .map_err(|e| log::debug!("net: IPv6 notifications: {e}; polling instead"))
        .ok();
    let slots = raise(root, &mut up, plans, deadline);
    let mut race = Race::new(slots, doorbell, opts, started, deadline);
    let mut win = None;
    while !deadline.passed() {
        let now = Instant::now();
        let waiting = race.start_and_send(root, &mut up.links, now);
        race.refresh(&mut up.links, now);
        race.solicit();
        win = race.advance(&mut up.links, now);
        if win.is_some() || !race.active() {
            break;
        }
        let ready = race.wait(waiting, Instant::now());
        win = race.receive(&mut up.links, ready, Instant::now());
        if win.is_some() {
            break;
        }
    }
    let Some(w) = win else {
        let why = race.failure();
        let (applied, s4, s6) = race.into_parts();
        up.applied = applied;
        up.sockets = s4;
        up.sockets6 = s6;
        return Err(NetError::NoLease(why));
    };
    race.fill(&mut up.lease, &w);
    let winner = race.slots.get(w.slot).map(|s| s.plan.nic.clone());
    let (applied, s4, s6) = race.into_parts();
    up.applied = applied;
    up.sockets = s4;
    up.sockets6 = s6;
    up.reached = w.target;
    if let Some(nic) = winner {
        up.winner = Some(nic.ifindex);
        pin(&mut up, nic.ifindex, w.target, deadline);
        log::info!(
            "net: {} won over {} ({} {}) after {} ms",
            nic.name,
            w.family,
            w.method,
            w.address,
            up.lease.reach_ms
        );
    }
    Ok(up)
}

/// Sets the candidates' links up (optimistic DAD first, see `sysctl.rs`), recording what
/// to put back in `up`; the race's slots.
fn raise(root: &Root, up: &mut Up, plans: Vec<Plan>, deadline: Deadline) -> Vec<Slot> {
    let existing = up.links.addresses6(deadline).unwrap_or_default();
    let mut slots = Vec::new();
    for plan in plans {
        let nic = plan.nic.clone();
        let mut conf = sysctl::read_conf(root, &nic.name);
        let mut out = None;
        if !nic.up {
            let (saved, c) = sysctl::prepare(root, &nic.name);
            up.saved.extend(saved);
            conf = c;
            match up.links.set_up(nic.ifindex, true, deadline) {
                Ok(()) => up.raised.push(nic.ifindex),
                Err(e) => out = Some(format!("{}: set up: {e}", nic.name)),
            }
        }
        let mut v6 = v6::Nic6::new(plan.v6, conf);
        v6.existing = existing
            .iter()
            .filter(|a| a.ifindex == nic.ifindex && !a.link_local())
            .map(|a| a.address)
            .collect();
        slots.push(Slot::new(plan, v6, out));
    }
    slots
}

/// Pins an IPv6 metadata address to the winning NIC (see [`config::pin6`]).
fn pin(up: &mut Up, ifindex: u32, target: Option<SocketAddr>, deadline: Deadline) {
    let Some(SocketAddr::V6(t)) = target else {
        return;
    };
    if t.ip().is_unicast_link_local() {
        return; // the zone says which NIC
    }
    let mut a = Applied::new(ifindex);
    if let Err(e) = config::pin6(&mut up.links, &mut a, *t.ip(), deadline) {
        log::warn!("net: {e}");
    }
    up.pins.push(a);
}

/// The candidate NICs and their plans, waiting (bounded) for one to appear: udev may still
/// be loading NIC drivers.
fn wait_for_candidates(
    root: &Root,
    cmd: &Cmdline,
    opts: &Options,
    deadline: Deadline,
) -> Result<Vec<Plan>, NetError> {
    let mut nics = link::list(root);
    let mut cands = select::candidates(&nics, cmd, &opts.ifaces);
    while cands.is_empty() && !deadline.passed() {
        std::thread::sleep(NIC_POLL.min(deadline.remaining()));
        nics = link::list(root);
        cands = select::candidates(&nics, cmd, &opts.ifaces);
    }
    if cands.is_empty() {
        let found: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
        return Err(NetError::NoCandidates(format!(
            "no NIC to bring up (found: {})",
            if found.is_empty() {
                "none".to_string()
            } else {
                found.join(", ")
            }
        )));
    }
    Ok(cands)
}
