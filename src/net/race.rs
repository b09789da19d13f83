//! The race: every candidate NIC, IPv4 and IPv6, in one thread and one `poll`.
//!
//! Per NIC ([`Slot`]): DHCPv4 (or a static IPv4 `ip=`) once the link has carrier; IPv6 as
//! the kernel shows it ([`Nic6`]: our Router Solicitation, DHCPv6 as the RA asks, static
//! `ip=`), refreshed by dumps whenever the kernel's IPv6 notifications ring the
//! [`Doorbell`]. A configuration that is ready is probed ([`Probe`]: a TCP connect to each
//! metadata address of its family, through that NIC); the first probe that connects wins,
//! whichever NIC and family it came by (happy eyeballs without a head start: the first
//! family that answers is used). IPv6 probes run on every NIC at once; IPv4 configurations
//! are applied one at a time (their default routes would replace each other) and undone when
//! their probe fails. The IPv4 service may instead be each lease's own DHCP server
//! ([`Options::lease_server_port`], CloudStack): each lease is then probed at its server.
//! Without a metadata address (`preroot net`), the first configuration wins as it is: a
//! DHCPv4 lease applied, a usable global IPv6 address, a static `ip=`.
//!
//! Every wait is the deadline's, or shorter: DHCP retransmissions, probe limits, carrier
//! checks, the next IPv6 probe. Nothing here blocks but `poll` and the netlink requests (each
//! under the deadline).

use super::config::{self, Applied, V4Config};
use super::link::{self, Doorbell, Links, Nic};
use super::probe::{Outcome, Probe, PROBE_PARALLEL, PROBE_TIMEOUT};
use super::report::{Dhcp6Report, LeaseReport, NicReport};
use super::rtnl::{Addr6, RTPROT_RA};
use super::select::Plan;
use super::v6::{Nic6, Origin};
use super::Options;
use crate::deadline::Deadline;
use crate::dhcp::client::{Client, Event, Lease};
use crate::dhcp::socket::DhcpSocket;
use crate::dhcp6;
use crate::dhcp6::socket::Dhcp6Socket;
use crate::root::Root;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// How often links without carrier are looked at again.
pub(super) const CARRIER_POLL: Duration = Duration::from_millis(20);
/// How long after a failed IPv6 probe the same NIC tries that address again.
const PROBE_RETRY: Duration = Duration::from_millis(500);
/// After a probe that could not start (no route yet), the next try.
const PROBE_SOON: Duration = Duration::from_millis(100);
/// IPv6 state is dumped at least this often while it matters (the doorbell is the fast
/// path; this covers a kernel that does not notify, or a doorbell that failed to open).
const REFRESH_EVERY: Duration = Duration::from_millis(500);

pub(super) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn seed(nic: &Nic) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's randomness: enough for transaction ids.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(&nic.mac);
    h.write_u32(nic.ifindex);
    h.finish()
}

/// IPv4 on one NIC.
enum V4 {
    /// Neither DHCPv4 nor a static address.
    Off,
    /// Waiting for carrier.
    Idle,
    Running(Box<Client>),
    /// A configuration waiting for its turn to be applied.
    Ready(V4Config),
    /// Applied; its probes are under way.
    Probing(Applied, Vec<Probe>),
    /// A lease that reaches nothing we look for (the metadata service is IPv6 only).
    Unneeded(V4Config),
    Failed(String),
}

/// One candidate NIC.
pub struct Slot {
    pub plan: Plan,
    carrier: bool,
    /// When the link had carrier (ms since the start).
    carrier_ms: Option<u64>,
    /// Why the NIC is out of the race before it started (set up failed).
    out: Option<String>,
    v4: V4,
    dhcp4: Option<DhcpSocket>,
    lease4: Option<(Lease, u64)>,
    pub v6: Nic6,
    dhcp6: Option<(Dhcp6Socket, Box<dhcp6::client::Client>)>,
    /// IPv6 addresses and routes we added (DHCPv6 leases, static `ip=`).
    applied6: Applied,
    static6_tried: bool,
    probes6: Vec<Probe>,
    /// When each IPv6 target may be probed again from this NIC.
    retry6: Vec<(SocketAddr, Instant)>,
    /// The last IPv6 probe failure, for the fate line.
    probe_note: Option<String>,
}

impl Slot {
    pub fn new(plan: Plan, v6: Nic6, out: Option<String>) -> Slot {
        let v4 = if plan.dhcp4 || plan.static4.is_some() {
            V4::Idle
        } else {
            V4::Off
        };
        let ifindex = plan.nic.ifindex;
        Slot {
            plan,
            carrier: false,
            carrier_ms: None,
            out,
            v4,
            dhcp4: None,
            lease4: None,
            v6,
            dhcp6: None,
            applied6: Applied::new(ifindex),
            static6_tried: false,
            probes6: Vec::new(),
            retry6: Vec::new(),
            probe_note: None,
        }
    }

    fn name(&self) -> &str {
        &self.plan.nic.name
    }

    fn live(&self) -> bool {
        self.out.is_none()
    }

    /// The IPv6 targets this NIC can try now, with their zone filled in.
    fn targets6<'a>(&'a self, targets: &'a [SocketAddr]) -> impl Iterator<Item = SocketAddr> + 'a {
        let idx = self.plan.nic.ifindex;
        targets.iter().filter_map(move |t| match t {
            SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() => {
                if v6.scope_id() != 0 && v6.scope_id() != idx {
                    return None;
                }
                self.v6.can_reach(true).then_some(())?;
                Some(SocketAddr::V6(SocketAddrV6::new(
                    *v6.ip(),
                    v6.port(),
                    0,
                    idx,
                )))
            }
            SocketAddr::V6(_) => {
                self.v6.can_reach(false).then_some(())?;
                Some(*t)
            }
            SocketAddr::V4(_) => None,
        })
    }

    /// May a(nother) probe to `t` start now: none in flight and the retry time passed, or
    /// the newest in flight is older than `PROBE_AGAIN` and there is room beside it.
    fn probe_due(&self, t: SocketAddr, now: Instant) -> bool {
        self.next_probe(t, now).is_some_and(|at| now >= at)
    }

    /// When a(nother) probe to `t` may start (`now` if at once); `None` while the parallel
    /// probes are all under way.
    fn next_probe(&self, t: SocketAddr, now: Instant) -> Option<Instant> {
        let inflight: Vec<&Probe> = self.probes6.iter().filter(|p| p.to == t).collect();
        match inflight.iter().map(|p| p.again_at()).max() {
            None => Some(self.retry_at(t).unwrap_or(now)),
            Some(_) if inflight.len() >= PROBE_PARALLEL => None,
            Some(at) => Some(at),
        }
    }

    fn retry_at(&self, t: SocketAddr) -> Option<Instant> {
        self.retry6.iter().find(|(a, _)| *a == t).map(|(_, at)| *at)
    }

    fn set_retry(&mut self, t: SocketAddr, at: Instant) {
        self.retry6.retain(|(a, _)| *a != t);
        self.retry6.push((t, at));
    }

    /// What IPv4 gave this NIC, for the report.
    fn ipv4_text(&self) -> Option<String> {
        let how = if self.lease4.is_some() {
            "dhcp4"
        } else {
            "static"
        };
        let text = match &self.v4 {
            V4::Ready(c) | V4::Unneeded(c) => format!("{}/{}", c.address, c.prefix),
            V4::Probing(applied, _) => {
                let a = applied.addresses.first()?;
                format!("{}/{}", a.address, a.prefix)
            }
            _ => {
                let (l, _) = self.lease4.as_ref()?;
                format!("{}/{}", l.address, l.prefix)
            }
        };
        Some(format!("{text} {how}"))
    }

    /// What became of this NIC, in a few words.
    fn fate(&self) -> String {
        if let Some(why) = &self.out {
            return why.clone();
        }
        if !self.carrier {
            return format!("{}: no carrier", self.name());
        }
        let v4 = match &self.v4 {
            V4::Off => None,
            V4::Idle => Some("IPv4: not started".to_string()),
            V4::Running(c) => Some(c.describe()),
            V4::Ready(c) => Some(format!("IPv4: {} waiting for its turn", c.address)),
            V4::Probing(_, _) => Some("IPv4: probing".to_string()),
            V4::Unneeded(c) => Some(format!("IPv4: {} (no IPv4 service to reach)", c.address)),
            V4::Failed(why) => Some(why.clone()),
        };
        let mut parts: Vec<String> = v4.into_iter().collect();
        parts.push(self.v6.fate());
        if let Some(p) = &self.probe_note {
            parts.push(format!("last IPv6 probe {p}"));
        }
        format!("{}: {}", self.name(), parts.join("; "))
    }

    fn report(&self) -> NicReport {
        NicReport {
            iface: self.name().to_string(),
            carrier_ms: self.carrier_ms,
            ipv4: self.ipv4_text(),
            ipv6: self.v6.report(),
            ra: self.v6.ra(),
            ra_ms: self.v6.ra_ms,
            dhcp6: match (&self.v6.dhcp6, &self.v6.lease) {
                (Some(mode), Some(l)) => {
                    Some(Dhcp6Report::new(*mode, l, self.v6.dhcp6_ms.unwrap_or(0)))
                }
                _ => None,
            },
            ipv6_ready_ms: self.v6.ready_ms,
            fate: self.fate(),
        }
    }
}

/// The configuration that won.
pub struct Win {
    pub slot: usize,
    pub family: &'static str,
    pub method: &'static str,
    pub address: String,
    /// The metadata address reached (with its zone), if one was looked for.
    pub target: Option<SocketAddr>,
    /// When the winning configuration was ready (ms since the start).
    pub ready_ms: u64,
}

/// The race's state.
pub struct Race {
    pub slots: Vec<Slot>,
    started: Instant,
    deadline: Deadline,
    targets4: Vec<SocketAddr>,
    targets6: Vec<SocketAddr>,
    /// Without IPv4 targets: each lease's own DHCP server on this port ([`Options`]).
    lease_server_port: Option<u16>,
    /// A metadata address is looked for (else the first configuration wins).
    want_target: bool,
    retry4: crate::dhcp::client::RetryConfig,
    retry6: dhcp6::client::RetryConfig,
    doorbell: Option<Doorbell>,
    refresh_at: Instant,
    /// NICs with an IPv4 configuration waiting to be applied, in the order they got it.
    queue4: VecDeque<usize>,
    /// Sockets of finished DHCPv4 clients: closing a packet socket waits for an RCU grace
    /// period, so they are closed with the stage, after the fetch.
    pub spent4: Vec<DhcpSocket>,
}

/// What one `poll` said, by what it was asked about.
pub struct Ready {
    doorbell: bool,
    dhcp4: Vec<usize>,
    dhcp6: Vec<usize>,
    probes: Vec<(usize, usize, bool)>,
}

impl Race {
    /// The race over `slots`; `doorbell` was opened before the links went up, so nothing
    /// the kernel says about them is missed.
    pub fn new(
        slots: Vec<Slot>,
        doorbell: Option<Doorbell>,
        opts: &Options,
        started: Instant,
        deadline: Deadline,
    ) -> Race {
        let (targets4, targets6) = opts.targets.iter().partition(|t| t.is_ipv4());
        Race {
            slots,
            started,
            deadline,
            targets4,
            targets6,
            lease_server_port: opts.lease_server_port,
            want_target: !opts.targets.is_empty() || opts.lease_server_port.is_some(),
            retry4: opts.retry,
            retry6: opts.retry6,
            doorbell,
            refresh_at: started,
            queue4: VecDeque::new(),
            spent4: Vec::new(),
        }
    }

    fn ms(&self) -> u64 {
        ms(self.started.elapsed())
    }

    fn end(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.deadline.remaining()).unwrap_or(now)
    }

    /// Is any NIC still in the race?
    pub fn active(&self) -> bool {
        self.slots.iter().any(Slot::live)
    }

    /// Starts what waits for carrier, and sends what is due. True while some link still
    /// waits for carrier.
    pub fn start_and_send(&mut self, root: &Root, links: &mut Links, now: Instant) -> bool {
        let mut waiting = false;
        let at = ms(self.started.elapsed());
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if !slot.live() {
                continue;
            }
            if !slot.carrier {
                if !link::has_carrier(root, slot.name()) {
                    waiting = true;
                    continue;
                }
                slot.carrier = true;
                slot.carrier_ms = Some(at);
                self.refresh_at = now;
                start_v4(slot, i, &mut self.queue4, self.retry4, now);
            }
            if let (V4::Running(client), Some(sock)) = (&mut slot.v4, &slot.dhcp4) {
                if let Some(p) = client.poll_transmit(now) {
                    if let Err(e) = sock.send(&p) {
                        log::debug!("net: {}: send: {e}", slot.plan.nic.name);
                    }
                }
            }
            if let Some((sock, client)) = &mut slot.dhcp6 {
                if let Some(p) = client.poll_transmit(now) {
                    if let Err(e) = sock.send(&p) {
                        log::debug!("net: {e}");
                    }
                }
            }
            if let Some(s) = slot.plan.static6.filter(|_| !slot.static6_tried) {
                slot.static6_tried = true;
                self.refresh_at = now;
                let optimistic = slot.v6.conf.optimistic;
                let r =
                    config::apply6_static(links, &mut slot.applied6, &s, optimistic, self.deadline);
                if let Some(spec) = slot
                    .applied6
                    .addresses
                    .iter()
                    .find(|a| a.address == s.address)
                {
                    slot.v6.added.push((*spec, Origin::Static));
                }
                if let Err(e) = r {
                    log::warn!("net: {}: static {}: {e}", slot.plan.nic.name, s.address);
                    slot.v6.dhcp6_note = Some(format!("static {}: {e}", s.address));
                }
            }
        }
        waiting
    }

    /// Reads the kernel's IPv6 state when it changed (or now and then), and does what it
    /// makes due: our Router Solicitation, a DHCPv6 client.
    pub fn refresh(&mut self, links: &mut Links, now: Instant) {
        let rang = self.doorbell.as_ref().is_some_and(Doorbell::rang);
        if !rang && now < self.refresh_at {
            return;
        }
        self.refresh_at = now.checked_add(REFRESH_EVERY).unwrap_or(now);
        let d = self.deadline;
        let addrs = links.addresses6(d).unwrap_or_else(|e| {
            log::debug!("net: IPv6 address dump: {e}");
            Vec::new()
        });
        let flags = links.flags6(d).unwrap_or_default();
        let routes = links.routes6(d).unwrap_or_default();
        let at = self.ms();
        let end = self.end();
        for slot in self.slots.iter_mut().filter(|s| s.live() && s.carrier) {
            let idx = slot.plan.nic.ifindex;
            let mine: Vec<Addr6> = addrs.iter().filter(|a| a.ifindex == idx).copied().collect();
            let f = flags.iter().find(|(i, _)| *i == idx).map_or(0, |(_, f)| *f);
            let router = routes.iter().find_map(|r| match r.gateway {
                Some(IpAddr::V6(gw))
                    if r.oif == Some(idx) && r.dst_len == 0 && r.proto == RTPROT_RA =>
                {
                    Some(gw)
                }
                _ => None,
            });
            slot.v6.observe(mine, f, router, at);
            if let Some(mode) = slot.v6.dhcp6_due() {
                slot.v6.dhcp6 = Some(mode);
                match Dhcp6Socket::open(slot.name(), idx) {
                    Ok(sock) => {
                        let nic = &slot.plan.nic;
                        let c =
                            dhcp6::client::Client::new(nic.mac, mode, seed(nic), now, self.retry6)
                                .with_deadline(end);
                        log::debug!("net: {}: DHCPv6 {mode:?}", nic.name);
                        slot.dhcp6 = Some((sock, Box::new(c)));
                    }
                    Err(e) => slot.v6.dhcp6_note = Some(format!("DHCPv6 socket: {e}")),
                }
            }
        }
    }

    /// Sends the Router Solicitations of ours that are due (see `v6.rs`).
    pub fn solicit(&mut self) {
        let at = self.ms();
        for slot in self.slots.iter_mut().filter(|s| s.live() && s.carrier) {
            if !slot.v6.rs_due(at) {
                continue;
            }
            let idx = slot.plan.nic.ifindex;
            match crate::sys::nicsock::send_router_solicitation(&slot.plan.nic.name, idx) {
                Ok(()) => slot.v6.rs_done(at),
                // The link-local address went tentative again: the next refresh tells.
                Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
                Err(e) => {
                    log::debug!("net: {e}");
                    slot.v6.rs_sent = u32::MAX;
                }
            }
        }
    }

    /// Applies the next IPv4 configuration in line, starts the probes that are due, checks
    /// the ones past their limit; the winner if there is one.
    pub fn advance(&mut self, links: &mut Links, now: Instant) -> Option<Win> {
        if let Some(w) = self.next_v4(links, now) {
            return Some(w);
        }
        let end = self.end();
        let limit = now.checked_add(PROBE_TIMEOUT).unwrap_or(now).min(end);
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            if !slot.live() || !slot.carrier {
                continue;
            }
            if !self.want_target {
                if let Some(w) = unprobed_win6(slot, i) {
                    return Some(w);
                }
                continue;
            }
            let due: Vec<SocketAddr> = slot
                .targets6(&self.targets6)
                .filter(|t| slot.probe_due(*t, now))
                .collect();
            for t in due {
                match Probe::start(t, &slot.plan.nic.name, limit) {
                    Ok(p) => slot.probes6.push(p),
                    Err(e) => {
                        log::debug!("net: {}: probe {t}: {e}", slot.plan.nic.name);
                        slot.set_retry(t, now.checked_add(PROBE_SOON).unwrap_or(now));
                    }
                }
            }
            let targets4 = targets4_of(slot, &self.targets4, self.lease_server_port);
            again_v4(slot, &targets4, now, limit);
        }
        self.check_probes(links, None, now)
    }

    /// With no IPv4 configuration being probed, applies the next one in line.
    fn next_v4(&mut self, links: &mut Links, now: Instant) -> Option<Win> {
        if self.slots.iter().any(|s| matches!(s.v4, V4::Probing(..))) {
            return None;
        }
        while let Some(i) = self.queue4.pop_front() {
            let end = self.end();
            let limit = now.checked_add(PROBE_TIMEOUT).unwrap_or(now).min(end);
            let want = self.want_target;
            let at = self.ms();
            let d = self.deadline;
            let slot = self.slots.get_mut(i)?;
            let targets4 = targets4_of(slot, &self.targets4, self.lease_server_port);
            let V4::Ready(c) = std::mem::replace(&mut slot.v4, V4::Off) else {
                continue;
            };
            if want && targets4.is_empty() {
                slot.v4 = V4::Unneeded(c);
                continue;
            }
            let applied = match config::apply4(links, &slot.plan.nic, &c, d) {
                Ok(a) => a,
                Err(why) => {
                    log::warn!("net: {why}");
                    slot.v4 = V4::Failed(why);
                    continue;
                }
            };
            let ready_ms = slot.lease4.as_ref().map_or(at, |(_, m)| *m);
            let method = if slot.lease4.is_some() {
                "dhcp4"
            } else {
                "static"
            };
            let address = format!("{}/{}", c.address, c.prefix);
            if !want {
                slot.v4 = V4::Probing(applied, Vec::new());
                return Some(Win {
                    slot: i,
                    family: "ipv4",
                    method,
                    address,
                    target: None,
                    ready_ms,
                });
            }
            let mut probes = Vec::new();
            for t in &targets4 {
                match Probe::start(*t, &slot.plan.nic.name, limit) {
                    Ok(p) => probes.push(p),
                    Err(e) => log::debug!("net: {}: probe {t}: {e}", slot.plan.nic.name),
                }
            }
            slot.v4 = V4::Probing(applied, probes);
            // A configuration whose probes could not even start fails at once.
            if let Some(w) = self.check_probes(links, Some(i), now) {
                return Some(w);
            }
            if matches!(self.slots.get(i).map(|s| &s.v4), Some(V4::Probing(..))) {
                return None;
            }
        }
        None
    }

    /// Looks at every probe (`ready` from `poll`, else only their limits): the first that
    /// reached its target wins; failed IPv4 configurations are undone.
    fn check_probes(
        &mut self,
        links: &mut Links,
        only: Option<usize>,
        now: Instant,
    ) -> Option<Win> {
        self.check_with(links, only, &[], now)
    }

    fn check_with(
        &mut self,
        links: &mut Links,
        only: Option<usize>,
        ready: &[(usize, usize, bool)],
        now: Instant,
    ) -> Option<Win> {
        let is_ready = |i: usize, k: usize, v4: bool| ready.contains(&(i, k, v4));
        let at = self.ms();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            // IPv6 probes: outcomes by their index at poll time, then acted upon.
            let outcomes: Vec<Outcome> = slot
                .probes6
                .iter()
                .enumerate()
                .map(|(k, p)| p.check(is_ready(i, k, false), now))
                .collect();
            let mut keep = Vec::new();
            for (p, o) in std::mem::take(&mut slot.probes6).into_iter().zip(outcomes) {
                match o {
                    Outcome::Pending => keep.push(p),
                    Outcome::Reached => return Some(win6(slot, i, p.to, at)),
                    Outcome::Failed(e) => {
                        log::debug!("net: {}: {}: {e}", slot.plan.nic.name, p.to);
                        slot.set_retry(p.to, now.checked_add(PROBE_RETRY).unwrap_or(now));
                        slot.probe_note = Some(format!("{}: {e}", p.to));
                    }
                }
            }
            slot.probes6 = keep;
            if let Some(w) = check_v4(slot, i, links, is_ready(i, 0, true), now, at) {
                return Some(w);
            }
        }
        None
    }
}

/// The IPv4 configuration's probes on `slot`: a win, or, once all failed, the configuration
/// undone and the NIC's IPv4 out of the race.
fn check_v4(
    slot: &mut Slot,
    i: usize,
    links: &mut Links,
    ready: bool,
    now: Instant,
    at: u64,
) -> Option<Win> {
    let V4::Probing(_, probes) = &mut slot.v4 else {
        return None;
    };
    let mut failures = Vec::new();
    let mut reached = None;
    probes.retain(|p| match p.check(ready, now) {
        Outcome::Pending => true,
        Outcome::Reached => {
            reached = Some(p.to);
            true
        }
        Outcome::Failed(e) => {
            failures.push(format!("{}: {e}", p.to));
            false
        }
    });
    if let Some(to) = reached {
        let (address, method) = match &slot.lease4 {
            Some((l, _)) => (format!("{}/{}", l.address, l.prefix), "dhcp4"),
            None => (
                slot.plan
                    .static4
                    .map(|s| format!("{}/{}", s.address, s.prefix))
                    .unwrap_or_default(),
                "static",
            ),
        };
        return Some(Win {
            slot: i,
            family: "ipv4",
            method,
            address,
            target: Some(to),
            ready_ms: slot.lease4.as_ref().map_or(at, |(_, m)| *m),
        });
    }
    if !probes.is_empty() {
        return None;
    }
    let V4::Probing(applied, _) = std::mem::replace(&mut slot.v4, V4::Off) else {
        return None;
    };
    config::undo(links, &applied, Deadline::after(Duration::from_secs(1)));
    let addr = applied
        .addresses
        .first()
        .map(|a| a.address.to_string())
        .unwrap_or_default();
    let why = format!(
        "{}: IPv4 {addr} does not reach {}",
        slot.plan.nic.name,
        if failures.is_empty() {
            "the metadata service".to_string()
        } else {
            failures.join(", ")
        }
    );
    log::warn!("net: {why}");
    slot.v4 = V4::Failed(why);
    None
}

/// The IPv4 addresses a configuration of `slot` is probed at: the service's, else port
/// `lease_server_port` of the slot's own DHCPv4 server (option 54: CloudStack's virtual
/// router serves metadata there), else none. A static `ip=`, or a lease without a server
/// address, has no server to try.
fn targets4_of(
    slot: &Slot,
    targets4: &[SocketAddr],
    lease_server_port: Option<u16>,
) -> Vec<SocketAddr> {
    if !targets4.is_empty() {
        return targets4.to_vec();
    }
    match (lease_server_port, &slot.lease4) {
        (Some(port), Some((lease, _))) if !lease.server.is_unspecified() => {
            vec![SocketAddr::from((lease.server, port))]
        }
        _ => Vec::new(),
    }
}

/// Beside IPv4 probes still pending after `PROBE_AGAIN`, starts another to the same address.
fn again_v4(slot: &mut Slot, targets4: &[SocketAddr], now: Instant, limit: Instant) {
    let name = slot.plan.nic.name.clone();
    let V4::Probing(_, probes) = &mut slot.v4 else {
        return;
    };
    for t in targets4 {
        let inflight: Vec<&Probe> = probes.iter().filter(|p| p.to == *t).collect();
        let newest = inflight.iter().map(|p| p.again_at()).max();
        if inflight.len() >= PROBE_PARALLEL || newest.is_none_or(|at| now < at) {
            continue;
        }
        match Probe::start(*t, &name, limit) {
            Ok(p) => probes.push(p),
            Err(e) => log::debug!("net: {name}: probe {t}: {e}"),
        }
    }
}

/// Starts IPv4 on a NIC that just got carrier: its static address (queued), or DHCPv4.
fn start_v4(
    slot: &mut Slot,
    i: usize,
    queue4: &mut VecDeque<usize>,
    retry: crate::dhcp::client::RetryConfig,
    now: Instant,
) {
    if !matches!(slot.v4, V4::Idle) {
        return;
    }
    if let Some(c) = slot
        .plan
        .static4
        .and_then(|s| V4Config::from_static(&s, slot.plan.mtu))
    {
        slot.v4 = V4::Ready(c);
        queue4.push_back(i);
        return;
    }
    let nic = &slot.plan.nic;
    slot.v4 = match DhcpSocket::open(nic.ifindex) {
        Ok(s) => {
            slot.dhcp4 = Some(s);
            V4::Running(Box::new(Client::new(nic.mac, seed(nic), now, retry)))
        }
        Err(e) => V4::Failed(format!("{}: packet socket: {e}", nic.name)),
    };
}

/// A win over IPv6 through `slot` to `to`.
fn win6(slot: &Slot, i: usize, to: SocketAddr, at: u64) -> Win {
    let ll = matches!(to, SocketAddr::V6(v6) if v6.ip().is_unicast_link_local());
    let (addr, method) = if ll {
        (slot.v6.link_local(), Origin::LinkLocal)
    } else {
        (
            slot.v6.global(),
            slot.v6.global_origin().unwrap_or(Origin::Slaac),
        )
    };
    Win {
        slot: i,
        family: "ipv6",
        method: method.name(),
        address: addr
            .map(|a| format!("{}/{}", a.address, a.prefix))
            .unwrap_or_default(),
        target: Some(to),
        ready_ms: if ll {
            at
        } else {
            slot.v6.ready_ms.unwrap_or(at)
        },
    }
}

/// Without a metadata address: a usable global IPv6 address wins, when IPv6 is this NIC's
/// business (not `ip=dhcp` alone).
fn unprobed_win6(slot: &Slot, i: usize) -> Option<Win> {
    let ours = slot.plan.v6 != super::select::V6Plan::Kernel || slot.plan.static6.is_some();
    let a = slot.v6.global().filter(|_| ours)?;
    Some(Win {
        slot: i,
        family: "ipv6",
        method: slot.v6.global_origin().unwrap_or(Origin::Slaac).name(),
        address: format!("{}/{}", a.address, a.prefix),
        target: None,
        ready_ms: slot.v6.ready_ms.unwrap_or(0),
    })
}

impl Race {
    /// Waits for a reply, a probe, the kernel's notification, the next retransmission or
    /// check, or the deadline.
    pub fn wait(&self, waiting_for_carrier: bool, now: Instant) -> Ready {
        let mut wait = self.deadline.remaining();
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                wait = wait.min(t.saturating_duration_since(now));
            }
        };
        at(Some(self.refresh_at).filter(|_| self.v6_pending()));
        for s in self.slots.iter().filter(|s| s.live()) {
            let rs = s.v6.rs_next().map(Duration::from_millis);
            at(rs.and_then(|d| self.started.checked_add(d)));
        }
        for s in self.slots.iter().filter(|s| s.live()) {
            if let V4::Running(c) = &s.v4 {
                at(c.poll_at());
            }
            if let Some((_, c)) = &s.dhcp6 {
                at(c.poll_at());
            }
            for p in &s.probes6 {
                at(Some(p.until()));
            }
            if let V4::Probing(_, probes) = &s.v4 {
                for p in probes {
                    at(Some(p.until()));
                }
            }
            if self.want_target {
                for t in s.targets6(&self.targets6) {
                    at(s.next_probe(t, now));
                }
            }
            if let V4::Probing(_, probes) = &s.v4 {
                if probes.len() < PROBE_PARALLEL {
                    at(probes.iter().map(Probe::again_at).max());
                }
            }
        }
        if waiting_for_carrier {
            wait = wait.min(CARRIER_POLL);
        }
        let mut fds: Vec<(BorrowedFd<'_>, bool)> = Vec::new();
        let mut what: Vec<(u8, usize, usize)> = Vec::new();
        if let Some(d) = &self.doorbell {
            fds.push((d.as_fd(), false));
            what.push((0, 0, 0));
        }
        for (i, s) in self.slots.iter().enumerate().filter(|(_, s)| s.live()) {
            if let (V4::Running(_), Some(sock)) = (&s.v4, &s.dhcp4) {
                fds.push((sock.as_fd(), false));
                what.push((1, i, 0));
            }
            if let Some((sock, c)) = &s.dhcp6 {
                if c.lease().is_none() {
                    fds.push((sock.as_fd(), false));
                    what.push((2, i, 0));
                }
            }
            for (k, p) in s.probes6.iter().enumerate() {
                fds.push((p.as_fd(), true));
                what.push((3, i, k));
            }
            if let V4::Probing(_, probes) = &s.v4 {
                for p in probes {
                    fds.push((p.as_fd(), true));
                    what.push((4, i, 0));
                }
            }
        }
        let mut r = Ready {
            doorbell: false,
            dhcp4: Vec::new(),
            dhcp6: Vec::new(),
            probes: Vec::new(),
        };
        if fds.is_empty() {
            std::thread::sleep(wait);
            return r;
        }
        let ready = crate::sys::packet::poll(&fds, wait).unwrap_or_default();
        for ((kind, i, k), ok) in what.into_iter().zip(ready) {
            if !ok {
                continue;
            }
            match kind {
                0 => r.doorbell = true,
                1 => r.dhcp4.push(i),
                2 => r.dhcp6.push(i),
                3 => r.probes.push((i, k, false)),
                _ => r.probes.push((i, 0, true)),
            }
        }
        r
    }

    /// Does IPv6 still need the kernel's state read (some live NIC without a usable
    /// global address, or a DHCPv6 exchange to start)?
    fn v6_pending(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.live() && s.carrier && !s.v6.conf.disabled && s.v6.global().is_none())
    }

    /// Feeds what `poll` said was ready; the winner if a probe connected (or, without a
    /// target, a configuration came).
    pub fn receive(&mut self, links: &mut Links, ready: Ready, now: Instant) -> Option<Win> {
        if ready.doorbell {
            self.refresh_at = now;
        }
        let at = self.ms();
        for i in ready.dhcp4 {
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            let (V4::Running(client), Some(sock)) = (&mut slot.v4, &slot.dhcp4) else {
                continue;
            };
            let mut bound = None;
            for p in sock.drain().unwrap_or_default() {
                match client.process(&p, Instant::now()) {
                    Event::Offered(a) => log::debug!("net: {}: offered {a}", slot.plan.nic.name),
                    Event::Nak => log::info!("net: {}: DHCPNAK, starting over", slot.plan.nic.name),
                    Event::None => {}
                    Event::Bound(lease) => {
                        bound = Some(lease);
                        break;
                    }
                }
            }
            let Some(lease) = bound else { continue };
            log::info!(
                "net: {}: lease {}/{} from {} after {at} ms",
                slot.plan.nic.name,
                lease.address,
                lease.prefix,
                lease.server
            );
            for c in &lease.cuts {
                log::warn!("net: {}: DHCPv4 lease: {c}", slot.plan.nic.name);
            }
            slot.v4 = V4::Ready(V4Config::from_lease(&lease));
            slot.lease4 = Some((lease, at));
            if let Some(s) = slot.dhcp4.take() {
                self.spent4.push(s);
            }
            self.queue4.push_back(i);
        }
        for i in ready.dhcp6 {
            if let Some(slot) = self.slots.get_mut(i) {
                receive6(slot, links, self.deadline, at);
                self.refresh_at = now;
            }
        }
        if let Some(w) = self.next_v4(links, now) {
            return Some(w);
        }
        if ready.probes.is_empty() {
            return None;
        }
        self.check_with(links, None, &ready.probes, now)
    }

    /// Why nothing was usable: one line naming each NIC's fate.
    pub fn failure(&self) -> String {
        let mut detail: Vec<String> = self.slots.iter().map(Slot::fate).collect();
        detail.sort();
        format!(
            "no usable network within {} ms ({})",
            self.ms(),
            detail.join("; ")
        )
    }

    /// Every NIC's report.
    pub fn reports(&self) -> Vec<NicReport> {
        self.slots.iter().map(Slot::report).collect()
    }

    /// Fills `r` with the winner's story.
    pub fn fill(&self, r: &mut LeaseReport, w: &Win) {
        let Some(slot) = self.slots.get(w.slot) else {
            return;
        };
        r.iface = slot.plan.nic.name.clone();
        r.mac = slot.plan.nic.mac_text();
        r.family = w.family;
        r.method = w.method;
        r.address = w.address.clone();
        r.target = w.target.map(|t| t.to_string());
        r.lease_ms = w.ready_ms;
        r.reach_ms = self.ms();
        if w.family == "ipv4" {
            if let Some((l, _)) = &slot.lease4 {
                r.with_lease4(l);
            }
        } else if let Some(l) = &slot.v6.lease {
            r.with_lease6(l);
        }
        r.nics = self.reports();
    }

    /// Everything configured, per NIC (the caller undoes what it does not keep), and the
    /// sockets to close with the stage.
    pub fn into_parts(self) -> (Vec<Applied>, Vec<DhcpSocket>, Vec<Dhcp6Socket>) {
        let mut applied = Vec::new();
        let mut socks4 = self.spent4;
        let mut socks6 = Vec::new();
        for s in self.slots {
            if let V4::Probing(a, _) = s.v4 {
                applied.push(a);
            }
            if !s.applied6.is_empty() {
                applied.push(s.applied6);
            }
            socks4.extend(s.dhcp4);
            socks6.extend(s.dhcp6.map(|(sock, _)| sock));
        }
        (applied, socks4, socks6)
    }
}

/// Feeds a NIC's DHCPv6 replies to its client; a lease's addresses are added at once.
fn receive6(slot: &mut Slot, links: &mut Links, d: Deadline, at: u64) {
    let Some((sock, client)) = &mut slot.dhcp6 else {
        return;
    };
    let mut bound = None;
    for (p, from) in sock.drain().unwrap_or_default() {
        match client.process(&p, Instant::now()) {
            dhcp6::client::Event::Bound(l) => {
                log::info!(
                    "net: {}: DHCPv6 {} from {} ({from}) after {at} ms",
                    slot.plan.nic.name,
                    l.addresses
                        .iter()
                        .map(|a| a.address.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    l.server
                );
                bound = Some(l);
                break;
            }
            dhcp6::client::Event::Ignored(why) | dhcp6::client::Event::Restarted(why) => {
                log::debug!("net: {}: DHCPv6: {why}", slot.plan.nic.name)
            }
            dhcp6::client::Event::Advertised { server, preference } => log::debug!(
                "net: {}: DHCPv6 ADVERTISE from {server} (preference {preference})",
                slot.plan.nic.name
            ),
            dhcp6::client::Event::None => {}
        }
    }
    slot.v6.dhcp6_note = Some(client.describe());
    let Some(lease) = bound else { return };
    for c in &lease.cuts {
        log::warn!("net: {}: {c}", slot.plan.nic.name);
    }
    for spec in config::lease6_specs(slot.plan.nic.ifindex, &lease, slot.v6.conf.optimistic) {
        match config::add6(links, &mut slot.applied6, spec, d) {
            Ok(()) => slot.v6.added.push((spec, Origin::Dhcp6)),
            Err(e) => log::warn!("net: {}: DHCPv6 {e}", slot.plan.nic.name),
        }
    }
    slot.v6.dhcp6_ms = Some(at);
    slot.v6.dhcp6_note = None;
    slot.v6.lease = Some(lease);
}

#[cfg(test)]
mod tests {
    use super::super::rtnl::AddrSpec;
    use super::super::select::V6Plan;
    use super::super::sysctl::Ipv6Conf;
    use super::*;
    use std::net::Ipv4Addr;

    fn slot(server: Option<Ipv4Addr>) -> Slot {
        let nic = Nic {
            name: "eth0".into(),
            ifindex: 2,
            mac: [2, 0, 0, 0, 0, 1],
            up: false,
            mtu: None,
            ethernet: true,
        };
        let plan = Plan {
            nic,
            dhcp4: true,
            v6: V6Plan::Ra,
            static4: None,
            static6: None,
            mtu: None,
        };
        let mut s = Slot::new(plan, Nic6::new(V6Plan::Ra, Ipv6Conf::default()), None);
        s.lease4 = server.map(|server| {
            let l = Lease {
                address: Ipv4Addr::new(10, 77, 0, 12),
                prefix: 24,
                server,
                routers: Vec::new(),
                dns: Vec::new(),
                domain: None,
                hostname: None,
                mtu: None,
                lease_secs: None,
                classless_routes: Vec::new(),
                option_245: None,
                cuts: Vec::new(),
            };
            (l, 5)
        });
        s
    }

    #[test]
    fn ipv4_targets() {
        let imds: SocketAddr = "169.254.169.254:80".parse().unwrap();
        let router: SocketAddr = "10.77.0.1:80".parse().unwrap();
        for (case, server, targets, port, want) in [
            (
                "service address",
                Some([10, 77, 0, 1]),
                vec![imds],
                Some(80),
                vec![imds],
            ),
            (
                "lease server",
                Some([10, 77, 0, 1]),
                vec![],
                Some(80),
                vec![router],
            ),
            ("no lease (static ip=)", None, vec![], Some(80), vec![]),
            (
                "lease without server",
                Some([0, 0, 0, 0]),
                vec![],
                Some(80),
                vec![],
            ),
            (
                "no IPv4 service",
                Some([10, 77, 0, 1]),
                vec![],
                None,
                vec![],
            ),
        ] {
            let s = slot(server.map(Ipv4Addr::from));
            assert_eq!(targets4_of(&s, &targets, port), want, "case {case}");
        }
    }

    #[test]
    fn ipv4_text_has_the_prefix() {
        let mut s = slot(Some(Ipv4Addr::new(10, 77, 0, 1)));
        assert_eq!(
            s.ipv4_text().as_deref(),
            Some("10.77.0.12/24 dhcp4"),
            "case lease"
        );
        let mut applied = Applied::new(2);
        applied.addresses.push(AddrSpec {
            ifindex: 2,
            address: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 12)),
            prefix: 24,
            flags: 0,
            lifetimes: None,
        });
        s.v4 = V4::Probing(applied.clone(), Vec::new());
        assert_eq!(
            s.ipv4_text().as_deref(),
            Some("10.77.0.12/24 dhcp4"),
            "case probing"
        );
        s.lease4 = None;
        assert_eq!(
            s.ipv4_text().as_deref(),
            Some("10.77.0.12/24 static"),
            "case static"
        );
        s.v4 = V4::Idle;
        assert_eq!(s.ipv4_text(), None, "case nothing yet");
    }
}
