//! The network stage for a platform without DHCP on its first NIC (DigitalOcean): an IPv4
//! link-local address, `169.254.X.Y/16`, put on the first candidate NIC (the lowest ifindex,
//! as cloud-init's `get_link_local_nic`), through which the metadata service at
//! 169.254.169.254 is reached on-link (the kernel adds the /16 prefix route with the address).
//!
//! **No ARP probing** (RFC 3927 section 2.2.1): DigitalOcean routes the link-local range per
//! droplet, so there is no other host on it to collide with, and the probe (PROBE_WAIT up to
//! 1 s, three probes 1–2 s apart, then ANNOUNCE_WAIT 2 s) would cost 4–7 s of a 20 s
//! deadline for nothing. The address is random, X in 1..=168 and Y in 0..=255 (cloud-init's
//! `assign_ipv4_link_local`): never in 169.254.169.0/24, where the service itself is, nor in
//! the RFC's reserved first and last /24.
//!
//! Only IPv4: DigitalOcean has no IPv6 metadata address (`Platform::service_v6`), so there
//! is no race here: one NIC, one address, one probe per IPv4 target ([`Options::targets`])
//! through that NIC (`probe.rs`).
//!
//! The result is an [`Up`] like the race's: dropped, it removes the address and sets the
//! link down again if it raised it; [`Up::keep`] leaves it (`rd.neednet=1`). Its report
//! says `family` `ipv4`, `method` `link-local`, the `target` reached, and the one NIC's
//! story. Bounded by the caller's deadline (carrier wait, netlink, the reachability probe).

use super::config::{self, V4Config};
use super::link::{self, Links, Nic};
use super::probe::{Outcome, Probe, PROBE_TIMEOUT};
use super::race::{ms, seed, CARRIER_POLL};
use super::report::{LeaseReport, NicReport};
use super::rtnl::RTPROT_STATIC;
use super::{wait_for_candidates, NetError, Options, Up};
use crate::cmdline::Cmdline;
use crate::deadline::Deadline;
use crate::root::Root;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The prefix of the link-local network.
pub const PREFIX: u8 = 16;

/// The address for a random `r`: `169.254.X.Y`, X in 1..=168, Y in 0..=255.
pub fn pick(r: u64) -> Ipv4Addr {
    let [a, b, ..] = r.to_le_bytes();
    let x = u8::try_from(u32::from(a) % 168)
        .unwrap_or(0)
        .saturating_add(1);
    Ipv4Addr::new(169, 254, x, b)
}

/// Puts a link-local address on the first candidate NIC and checks that one of the IPv4
/// `opts.targets` answers through it (none given: the address is enough). See the module
/// docs.
pub fn bring_up(
    root: &Root,
    cmd: &Cmdline,
    opts: &Options,
    deadline: Deadline,
) -> Result<Up, NetError> {
    let started = Instant::now();
    let plans = wait_for_candidates(root, cmd, opts, deadline)?;
    let names: Vec<String> = plans.iter().map(|p| p.nic.name.clone()).collect();
    let Some(nic) = plans.into_iter().map(|p| p.nic).min_by_key(|n| n.ifindex) else {
        return Err(NetError::NoCandidates(
            "no NIC for a link-local address".into(),
        ));
    };
    let links = Links::open().map_err(|e| NetError::Netlink(format!("netlink: {e}")))?;
    // From here on, dropping `up` puts the link back (early returns included).
    let mut up = Up::new(links, names);
    if !nic.up {
        up.links
            .set_up(nic.ifindex, true, deadline)
            .map_err(|e| NetError::Netlink(format!("{}: set up: {e}", nic.name)))?;
        up.raised.push(nic.ifindex);
    }
    while !link::has_carrier(root, &nic.name) {
        if deadline.passed() {
            return Err(NetError::NoLease(format!(
                "{}: no carrier within {} ms",
                nic.name,
                ms(started.elapsed())
            )));
        }
        std::thread::sleep(CARRIER_POLL.min(deadline.remaining()));
    }
    let carrier_ms = ms(started.elapsed());
    let addr = pick(seed(&nic));
    log::info!(
        "net: {}: link-local {addr}/{PREFIX} (no ARP probe: see net/linklocal.rs)",
        nic.name
    );
    let c = V4Config {
        address: addr,
        prefix: PREFIX,
        routes: Vec::new(),
        mtu: None,
        proto: RTPROT_STATIC,
    };
    let applied = config::apply4(&mut up.links, &nic, &c, deadline).map_err(NetError::Netlink)?;
    up.applied.push(applied);
    up.winner = Some(nic.ifindex);
    let lease_ms = ms(started.elapsed());
    let targets: Vec<SocketAddr> = opts
        .targets
        .iter()
        .copied()
        .filter(SocketAddr::is_ipv4)
        .collect();
    let mut failures = Vec::new();
    for t in &targets {
        match reach(&nic, *t, deadline) {
            Ok(()) => {
                up.reached = Some(*t);
                break;
            }
            Err(e) => failures.push(format!("{t}: {e}")),
        }
    }
    if up.reached.is_none() && !targets.is_empty() {
        return Err(NetError::NoLease(format!(
            "{}: link-local {addr} does not reach {}",
            nic.name,
            failures.join(", ")
        )));
    }
    let t = Times {
        carrier_ms,
        lease_ms,
        reach_ms: ms(started.elapsed()),
    };
    report(&mut up.lease, &nic, addr, up.reached, t);
    Ok(up)
}

/// A TCP connect to `to` through `nic`, waited for under the probe's limit and the deadline.
fn reach(nic: &Nic, to: SocketAddr, deadline: Deadline) -> Result<(), String> {
    let now = Instant::now();
    let until = now
        .checked_add(deadline.remaining().min(PROBE_TIMEOUT))
        .unwrap_or(now);
    let p = Probe::start(to, &nic.name, until).map_err(|e| e.to_string())?;
    loop {
        let wait = until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let ready = crate::sys::packet::poll(&[(p.as_fd(), true)], wait)
            .map_err(|e| e.to_string())?
            .first()
            .copied()
            .unwrap_or(false);
        match p.check(ready, Instant::now()) {
            Outcome::Reached => return Ok(()),
            Outcome::Failed(e) => return Err(e),
            Outcome::Pending => {}
        }
    }
}

/// The stage's times, in ms from its start.
struct Times {
    carrier_ms: u64,
    lease_ms: u64,
    reach_ms: u64,
}

fn report(r: &mut LeaseReport, nic: &Nic, addr: Ipv4Addr, to: Option<SocketAddr>, t: Times) {
    r.iface = nic.name.clone();
    r.mac = nic.mac_text();
    r.family = "ipv4";
    r.method = "link-local";
    r.address = format!("{addr}/{PREFIX}");
    r.target = to.map(|t| t.to_string());
    r.lease_ms = t.lease_ms;
    r.reach_ms = t.reach_ms;
    r.nics = vec![NicReport {
        iface: nic.name.clone(),
        carrier_ms: Some(t.carrier_ms),
        ipv4: Some(format!("{addr}/{PREFIX} link-local")),
        ipv6: Vec::new(),
        ra: None,
        ra_ms: None,
        dhcp6: None,
        ipv6_ready_ms: None,
        fate: match to {
            Some(to) => format!("{}: link-local {addr} reached {to}", nic.name),
            None => format!("{}: link-local {addr}", nic.name),
        },
    }];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_stay_in_range() {
        for (r, want) in [
            (0u64, Ipv4Addr::new(169, 254, 1, 0)),
            (167, Ipv4Addr::new(169, 254, 168, 0)),
            (168, Ipv4Addr::new(169, 254, 1, 0)),
            (0xff, Ipv4Addr::new(169, 254, 88, 0)),
            (0xff_ff, Ipv4Addr::new(169, 254, 88, 255)),
            (u64::MAX, Ipv4Addr::new(169, 254, 88, 255)),
        ] {
            assert_eq!(pick(r), want, "case {r:#x}");
        }
        for r in 0..10_000u64 {
            let [_, _, x, _] = pick(r.wrapping_mul(0x9e37_79b9_7f4a_7c15)).octets();
            assert!((1..=168).contains(&x), "case {r}: {x}");
        }
    }
}
