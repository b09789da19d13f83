//! Configuring one NIC for the fetch, and undoing it: an IPv4 configuration (from a DHCPv4
//! lease or a static `ip=`: MTU, address, routes), IPv6 addresses we add (DHCPv6 leases, a
//! static `ip=` and its gateway), and the host route that pins an IPv6 metadata address to
//! the NIC that reached it. Every change is recorded in an [`Applied`], which [`undo`]
//! reverses in the opposite order; the kernel's own IPv6 configuration (link-local, SLAAC,
//! routes from RAs) is not ours to undo: it goes when the link we raised goes down.
//!
//! Routes: IPv4 as RFC 3442 says (option 121 when present, else a default route via option
//! 3; a gateway outside the subnet first gets an on-link host route, GCE's /32 leases); an
//! IPv6 gateway outside the address's prefix likewise. Routes of a lease have protocol
//! `dhcp`, the rest `static`.

use super::link::{Links, Nic};
use super::rtnl::{AddrSpec, RouteSpec, IFA_F_OPTIMISTIC, RTPROT_DHCP, RTPROT_STATIC};
use super::select::Static;
use crate::deadline::Deadline;
use crate::dhcp::client::Lease;
use crate::dhcp6::client::Lease6;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 configuration to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4Config {
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// `(dest, prefix, gateway)`; gateway `None` is on-link.
    pub routes: Vec<(Ipv4Addr, u8, Option<Ipv4Addr>)>,
    pub mtu: Option<u32>,
    pub proto: u8,
}

impl V4Config {
    pub fn from_lease(l: &Lease) -> V4Config {
        V4Config {
            address: l.address,
            prefix: l.prefix,
            routes: l.routes(),
            mtu: l.mtu.map(u32::from),
            proto: RTPROT_DHCP,
        }
    }

    /// A static `ip=` entry (`None` unless IPv4): its gateway becomes the default route.
    pub fn from_static(s: &Static, mtu: Option<u32>) -> Option<V4Config> {
        let IpAddr::V4(address) = s.address else {
            return None;
        };
        let gw = match s.gateway {
            Some(IpAddr::V4(g)) if !g.is_unspecified() => Some(g),
            _ => None,
        };
        Some(V4Config {
            address,
            prefix: s.prefix.min(32),
            routes: gw
                .map(|g| vec![(Ipv4Addr::UNSPECIFIED, 0, Some(g))])
                .unwrap_or_default(),
            mtu,
            proto: RTPROT_STATIC,
        })
    }
}

/// What was done on one NIC, to be undone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub ifindex: u32,
    pub addresses: Vec<AddrSpec>,
    pub routes: Vec<RouteSpec>,
    /// The MTU before we changed it.
    pub old_mtu: Option<u32>,
}

impl Applied {
    pub fn new(ifindex: u32) -> Applied {
        Applied {
            ifindex,
            ..Applied::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.routes.is_empty() && self.old_mtu.is_none()
    }
}

fn in_subnet(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Adds a route to `a` (and to the log of what to undo).
fn add_route(links: &mut Links, a: &mut Applied, r: RouteSpec, d: Deadline) -> Result<(), String> {
    if a.routes.contains(&r) {
        return Ok(());
    }
    links
        .route(true, &r, d)
        .map_err(|e| format!("route {}/{}: {e}", r.dest, r.prefix))?;
    a.routes.push(r);
    Ok(())
}

/// A route via `gw` to `dest/prefix`, with an on-link host route to `gw` first when `gw` is
/// outside `addr/addr_prefix` (and not link-local).
fn route_via(
    links: &mut Links,
    a: &mut Applied,
    (dest, prefix, gw): (IpAddr, u8, Option<IpAddr>),
    (addr, addr_prefix): (IpAddr, u8),
    proto: u8,
    d: Deadline,
) -> Result<(), String> {
    let ll = |g: &IpAddr| matches!(g, IpAddr::V6(v6) if v6.is_unicast_link_local());
    if let Some(g) = gw.filter(|g| !ll(g) && !in_subnet(*g, addr, addr_prefix)) {
        let host = RouteSpec {
            ifindex: a.ifindex,
            dest: g,
            prefix: if g.is_ipv4() { 32 } else { 128 },
            gateway: None,
            metric: None,
            proto,
        };
        add_route(links, a, host, d).map_err(|e| format!("gateway {g}: {e}"))?;
    }
    let r = RouteSpec {
        ifindex: a.ifindex,
        dest,
        prefix,
        gateway: gw,
        metric: None,
        proto,
    };
    add_route(links, a, r, d)
}

/// Applies an IPv4 configuration; on failure, what was done is undone.
pub fn apply4(links: &mut Links, nic: &Nic, c: &V4Config, d: Deadline) -> Result<Applied, String> {
    let mut a = Applied::new(nic.ifindex);
    let r = apply4_into(links, nic, c, &mut a, d);
    if let Err(e) = r {
        undo(
            links,
            &a,
            Deadline::after(std::time::Duration::from_secs(1)),
        );
        return Err(format!("{}: {e}", nic.name));
    }
    Ok(a)
}

fn apply4_into(
    links: &mut Links,
    nic: &Nic,
    c: &V4Config,
    a: &mut Applied,
    d: Deadline,
) -> Result<(), String> {
    if let Some(mtu) = c.mtu.filter(|m| Some(*m) != nic.mtu) {
        links
            .set_mtu(nic.ifindex, mtu, d)
            .map_err(|e| format!("MTU {mtu}: {e}"))?;
        a.old_mtu = nic.mtu;
    }
    let spec = AddrSpec {
        ifindex: nic.ifindex,
        address: IpAddr::V4(c.address),
        prefix: c.prefix,
        flags: 0,
        lifetimes: None,
    };
    links
        .address(true, &spec, d)
        .map_err(|e| format!("address {}: {e}", c.address))?;
    a.addresses.push(spec);
    let own = (IpAddr::V4(c.address), c.prefix);
    for (dest, prefix, gw) in &c.routes {
        let route = (IpAddr::V4(*dest), *prefix, gw.map(IpAddr::V4));
        route_via(links, a, route, own, c.proto, d)?;
    }
    Ok(())
}

/// Adds one IPv6 address (optimistic when the NIC allows it) into `a`.
pub fn add6(links: &mut Links, a: &mut Applied, spec: AddrSpec, d: Deadline) -> Result<(), String> {
    links
        .address(true, &spec, d)
        .map_err(|e| format!("address {}/{}: {e}", spec.address, spec.prefix))?;
    a.addresses.push(spec);
    Ok(())
}

/// The address specs of a DHCPv6 lease: a /128 each (RFC 8415 section 21.6 leaves the prefix
/// to the RA), with the lease's lifetimes.
pub fn lease6_specs(ifindex: u32, l: &Lease6, optimistic: bool) -> Vec<AddrSpec> {
    l.addresses
        .iter()
        .map(|x| AddrSpec {
            ifindex,
            address: IpAddr::V6(x.address),
            prefix: 128,
            flags: if optimistic { IFA_F_OPTIMISTIC } else { 0 },
            lifetimes: Some((x.preferred, x.valid)),
        })
        .collect()
}

/// Applies a static IPv6 `ip=` entry (address and default route via its gateway) into `a`.
pub fn apply6_static(
    links: &mut Links,
    a: &mut Applied,
    s: &Static,
    optimistic: bool,
    d: Deadline,
) -> Result<(), String> {
    let IpAddr::V6(address) = s.address else {
        return Ok(());
    };
    let spec = AddrSpec {
        ifindex: a.ifindex,
        address: IpAddr::V6(address),
        prefix: s.prefix.min(128),
        flags: if optimistic { IFA_F_OPTIMISTIC } else { 0 },
        lifetimes: None,
    };
    add6(links, a, spec, d)?;
    if let Some(gw) = s.gateway.filter(|g| g.is_ipv6() && !g.is_unspecified()) {
        let default = (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0, Some(gw));
        route_via(links, a, default, (s.address, s.prefix), RTPROT_STATIC, d)?;
    }
    Ok(())
}

/// Routes `target` (an IPv6 metadata address) out of the NIC of `a` the way the kernel would
/// route it there, as a host route: the fetch that follows then leaves by the NIC whose
/// probe reached it, even when other NICs have default routes from their own RAs. A route
/// that exists already is left alone (and not recorded).
pub fn pin6(
    links: &mut Links,
    a: &mut Applied,
    target: Ipv6Addr,
    d: Deadline,
) -> Result<(), String> {
    let via = links
        .route_to(IpAddr::V6(target), a.ifindex, d)
        .map_err(|e| format!("route to {target}: {e}"))?;
    let r = RouteSpec {
        ifindex: a.ifindex,
        dest: IpAddr::V6(target),
        prefix: 128,
        gateway: via.gateway,
        metric: None,
        proto: RTPROT_STATIC,
    };
    match links.route_exclusive(&r, d) {
        Ok(()) => {
            a.routes.push(r);
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(format!("host route to {target}: {e}")),
    }
}

/// Undoes `a` in the opposite order; failures are logged.
pub fn undo(links: &mut Links, a: &Applied, d: Deadline) {
    for r in a.routes.iter().rev() {
        let _ = links.route(false, r, d);
    }
    for spec in a.addresses.iter().rev() {
        if let Err(e) = links.address(false, spec, d) {
            log::warn!("net: removing {}/{}: {e}", spec.address, spec.prefix);
        }
    }
    if let Some(mtu) = a.old_mtu {
        if let Err(e) = links.set_mtu(a.ifindex, mtu, d) {
            log::warn!("net: restoring MTU {mtu} on link {}: {e}", a.ifindex);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (case, a, b, prefix, want) in [
            ("v4 same /24", "10.0.0.1", "10.0.0.5", 24, true),
            ("v4 other /24", "10.0.1.1", "10.0.0.5", 24, false),
            ("v4 /32", "10.0.0.1", "10.0.0.5", 32, false),
            ("v4 /0", "1.2.3.4", "10.0.0.5", 0, true),
            ("v6 same /64", "2001:db8::1", "2001:db8::5", 64, true),
            ("v6 other /64", "2001:db8:1::1", "2001:db8::5", 64, false),
            ("v6 /128", "2001:db8::1", "2001:db8::5", 128, false),
            ("mixed families", "10.0.0.1", "2001:db8::5", 0, false),
        ] {
            assert_eq!(in_subnet(ip(a), ip(b), prefix), want, "case {case}");
        }
    }

    #[test]
    fn statics() {
        let s = |a: &str, p: u8, g: Option<&str>| Static {
            address: a.parse().unwrap(),
            prefix: p,
            gateway: g.map(|g| g.parse().unwrap()),
        };
        let c = V4Config::from_static(&s("192.0.2.5", 24, Some("192.0.2.1")), Some(1400)).unwrap();
        assert_eq!(
            (c.address, c.prefix, c.routes.clone(), c.mtu, c.proto),
            (
                "192.0.2.5".parse().unwrap(),
                24,
                vec![(Ipv4Addr::UNSPECIFIED, 0, Some("192.0.2.1".parse().unwrap()))],
                Some(1400),
                RTPROT_STATIC
            ),
            "case with gateway"
        );
        let c = V4Config::from_static(&s("192.0.2.5", 24, Some("0.0.0.0")), None).unwrap();
        assert!(c.routes.is_empty(), "case 0.0.0.0 is no gateway");
        assert!(
            V4Config::from_static(&s("2001:db8::5", 64, None), None).is_none(),
            "case IPv6"
        );
    }
}
