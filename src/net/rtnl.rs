//! rtnetlink messages, pure: the requests the network stage sends and the parsers of what the
//! kernel answers. `link.rs` sends them (through `sys/netlink.rs`); nothing here does I/O.
//!
//! Owns: requests to set a link up/down and its MTU (`RTM_NEWLINK`), to add and remove IPv4
//! and IPv6 addresses (`RTM_NEWADDR`/`RTM_DELADDR`, with `IFA_F_OPTIMISTIC` and lifetimes for
//! IPv6) and routes (`RTM_NEWROUTE`/`RTM_DELROUTE`, either family), to look a route up
//! (`RTM_GETROUTE`), and to dump the IPv6 addresses and the IPv6 link state of every NIC
//! (`RTM_GETADDR`, `RTM_GETLINK` with `NLM_F_DUMP`); and the parsers of acknowledgements, dump
//! ends, `RTM_NEWADDR`, `RTM_NEWLINK` (its `IFLA_INET6_FLAGS`: whether a router advertisement
//! came and its M and O flags, RFC 4861 section 4.2) and `RTM_NEWROUTE`.
//!
//! Never does: parse router advertisements themselves (the kernel does, and says what it
//! learned in the link's flags), set sysctls (`sysctl.rs`), keep state. Layouts:
//! `include/uapi/linux/{netlink,rtnetlink,if_link,if_addr}.h`, `include/net/if_inet6.h`
//! (`IF_RA_*`), Linux v6.1.
//!
//! Panic contract: every parser takes untrusted bytes (a netlink datagram or one message's
//! body) and returns `None` on anything short or malformed; the byte-level entry points are
//! `#[no_panic]` (`examples/nopanic.rs`), read through `crate::bytes`, and allocate nothing.
//! A message or attribute whose length field is below its header size ends the walk (no
//! zero-length loop).
#![deny(clippy::arithmetic_side_effects)]

use crate::bytes::{array, ne_u16, ne_u32};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
pub const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const IFLA_MTU: u16 = 4;
const IFLA_PROTINFO: u16 = 12;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_INET6_FLAGS: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_CACHEINFO: u16 = 6;
const IFA_FLAGS: u16 = 8;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
const RT_TABLE_MAIN: u8 = 254;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const IFF_UP: u32 = 1;
/// Route protocols (`RTPROT_*`): how a route came.
pub const RTPROT_STATIC: u8 = 4;
pub const RTPROT_RA: u8 = 9;
pub const RTPROT_DHCP: u8 = 16;

/// Address flags (`IFA_F_*`, `if_addr.h`).
pub const IFA_F_NODAD: u32 = 0x02;
pub const IFA_F_OPTIMISTIC: u32 = 0x04;
pub const IFA_F_DADFAILED: u32 = 0x08;
pub const IFA_F_DEPRECATED: u32 = 0x20;
pub const IFA_F_TENTATIVE: u32 = 0x40;
pub const IFA_F_PERMANENT: u32 = 0x80;

/// IPv6 link flags (`IF_RA_*`, `IF_READY`: `include/net/if_inet6.h`).
pub const IF_RA_RCVD: u32 = 0x20;
pub const IF_RA_MANAGED: u32 = 0x40;
pub const IF_RA_OTHERCONF: u32 = 0x80;

/// `sizeof(struct nlmsghdr)`, `ifinfomsg`, `ifaddrmsg`, `rtmsg`, `rtattr`.
const NLMSG_HDR: usize = 16;
const IFINFO: usize = 16;
const IFADDR: usize = 8;
const RTMSG: usize = 12;
const RTA_HDR: usize = 4;

/// A route as installed: `dest/prefix` via `gateway` (`None`: on-link) out of `ifindex`. The
/// family is `dest`'s (a gateway of the other family is left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub ifindex: u32,
    pub dest: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    pub metric: Option<u32>,
    /// `RTPROT_DHCP` or `RTPROT_STATIC`.
    pub proto: u8,
}

/// One IPv6 address as `RTM_NEWADDR` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr6 {
    pub ifindex: u32,
    pub address: Ipv6Addr,
    pub prefix: u8,
    /// `IFA_F_*`, from the `IFA_FLAGS` attribute when present (it has the high bits).
    pub flags: u32,
    /// `RT_SCOPE_*`: 253 link, 0 global.
    pub scope: u8,
}

impl Addr6 {
    pub fn link_local(&self) -> bool {
        self.scope == RT_SCOPE_LINK
    }

    /// Can it be a source address now? Not while duplicate address detection runs, unless
    /// the address is optimistic (RFC 4429; the kernel then uses it if `use_optimistic`),
    /// never once DAD failed, and not when deprecated.
    pub fn usable(&self, use_optimistic: bool) -> bool {
        if self.flags & (IFA_F_DADFAILED | IFA_F_DEPRECATED) != 0 {
            return false;
        }
        if self.flags & IFA_F_TENTATIVE == 0 {
            return true;
        }
        use_optimistic && self.flags & IFA_F_OPTIMISTIC != 0
    }
}

/// A route as `RTM_NEWROUTE` shows it (a lookup's answer, or one entry of a dump).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    /// Destination prefix length (0: a default route).
    pub dst_len: u8,
    /// `RTPROT_*`: how it came (`RTPROT_RA`: a router advertisement).
    pub proto: u8,
}

/// One netlink message of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg<'a> {
    pub kind: u16,
    pub seq: u32,
    /// What follows the header (the family header and the attributes).
    pub body: &'a [u8],
}

fn attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = u16::try_from(data.len().saturating_add(RTA_HDR)).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// Wraps a body in an `nlmsghdr` (request, plus `flags`).
fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len().saturating_add(NLMSG_HDR)).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(body.len().saturating_add(NLMSG_HDR));
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(body);
    out
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn family(a: IpAddr) -> (u8, u8) {
    match a {
        IpAddr::V4(_) => (AF_INET, 32),
        IpAddr::V6(_) => (AF_INET6, 128),
    }
}

/// `RTM_NEWLINK`: set IFF_UP on or off, and optionally the MTU.
pub fn link_msg(seq: u32, ifindex: u32, up: bool, mtu: Option<u32>) -> Vec<u8> {
    let mut body = vec![0u8, 0, 0, 0]; // family, pad, type
    body.extend_from_slice(&ifindex.to_ne_bytes());
    body.extend_from_slice(&(if up { IFF_UP } else { 0 }).to_ne_bytes());
    body.extend_from_slice(&IFF_UP.to_ne_bytes()); // change mask
    if let Some(m) = mtu {
        attr(&mut body, IFLA_MTU, &m.to_ne_bytes());
    }
    message(RTM_NEWLINK, NLM_F_ACK, seq, &body)
}

/// An address to add or remove: IPv4 gets its broadcast address; IPv6 takes `flags`
/// (`IFA_F_OPTIMISTIC`, `IFA_F_NODAD`) and, when given, its preferred and valid lifetimes in
/// seconds (`u32::MAX`: forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrSpec {
    pub ifindex: u32,
    pub address: IpAddr,
    pub prefix: u8,
    pub flags: u32,
    pub lifetimes: Option<(u32, u32)>,
}

/// `RTM_NEWADDR`/`RTM_DELADDR` for `a`.
pub fn addr_msg(seq: u32, add: bool, a: &AddrSpec) -> Vec<u8> {
    let (af, max) = family(a.address);
    let prefix = a.prefix.min(max);
    let low = u8::try_from(a.flags & 0xff).unwrap_or(0);
    let mut body = vec![af, prefix, low, RT_SCOPE_UNIVERSE];
    body.extend_from_slice(&a.ifindex.to_ne_bytes());
    match a.address {
        IpAddr::V4(v4) => {
            attr(&mut body, IFA_LOCAL, &v4.octets());
            attr(&mut body, IFA_ADDRESS, &v4.octets());
            if prefix < 31 {
                let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
                attr(
                    &mut body,
                    IFA_BROADCAST,
                    &Ipv4Addr::from(u32::from(v4) | host).octets(),
                );
            }
        }
        IpAddr::V6(v6) => {
            attr(&mut body, IFA_ADDRESS, &v6.octets());
            if add {
                attr(&mut body, IFA_FLAGS, &a.flags.to_ne_bytes());
                if let Some((preferred, valid)) = a.lifetimes {
                    let mut ci = Vec::with_capacity(16);
                    for v in [preferred.min(valid), valid, 0, 0] {
                        ci.extend_from_slice(&v.to_ne_bytes());
                    }
                    attr(&mut body, IFA_CACHEINFO, &ci);
                }
            }
        }
    }
    let (kind, flags) = if add {
        (RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE)
    } else {
        (RTM_DELADDR, 0)
    };
    message(kind, flags | NLM_F_ACK, seq, &body)
}

/// `RTM_NEWROUTE`/`RTM_DELROUTE` in the main table. `exclusive`: fail with `EEXIST` rather
/// than replace a route that is there (so what was not ours is never taken over).
pub fn route_msg(seq: u32, add: bool, exclusive: bool, r: &RouteSpec) -> Vec<u8> {
    let (af, max) = family(r.dest);
    let scope = if r.gateway.is_some() {
        RT_SCOPE_UNIVERSE
    } else {
        RT_SCOPE_LINK
    };
    let prefix = r.prefix.min(max);
    let mut body = vec![af, prefix, 0, 0, RT_TABLE_MAIN, r.proto, scope, RTN_UNICAST];
    body.extend_from_slice(&0u32.to_ne_bytes()); // flags
    if prefix > 0 {
        attr(&mut body, RTA_DST, &octets(r.dest));
    }
    if let Some(gw) = r.gateway.filter(|g| family(*g).0 == af) {
        attr(&mut body, RTA_GATEWAY, &octets(gw));
    }
    attr(&mut body, RTA_OIF, &r.ifindex.to_ne_bytes());
    if let Some(m) = r.metric {
        attr(&mut body, RTA_PRIORITY, &m.to_ne_bytes());
    }
    let (kind, flags) = match (add, exclusive) {
        (true, true) => (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL),
        (true, false) => (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE),
        (false, _) => (RTM_DELROUTE, 0),
    };
    message(kind, flags | NLM_F_ACK, seq, &body)
}

/// `RTM_GETROUTE` for `dest` out of `oif`: the kernel answers with the route it would use.
pub fn get_route_msg(seq: u32, dest: IpAddr, oif: u32) -> Vec<u8> {
    let (af, max) = family(dest);
    let mut body = vec![af, max, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&0u32.to_ne_bytes());
    attr(&mut body, RTA_DST, &octets(dest));
    attr(&mut body, RTA_OIF, &oif.to_ne_bytes());
    message(RTM_GETROUTE, 0, seq, &body)
}

/// `RTM_GETADDR` dump of every IPv6 address.
pub fn dump_addr6_msg(seq: u32) -> Vec<u8> {
    let mut body = vec![AF_INET6, 0, 0, 0];
    body.extend_from_slice(&0u32.to_ne_bytes());
    message(RTM_GETADDR, NLM_F_DUMP, seq, &body)
}

/// `RTM_GETROUTE` dump of the IPv6 main table.
pub fn dump_route6_msg(seq: u32) -> Vec<u8> {
    let mut body = vec![AF_INET6, 0, 0, 0, RT_TABLE_MAIN, 0, 0, 0];
    body.extend_from_slice(&0u32.to_ne_bytes());
    message(RTM_GETROUTE, NLM_F_DUMP, seq, &body)
}

/// `RTM_GETLINK` dump for the IPv6 family: each NIC's `IFLA_PROTINFO` (its IPv6 flags).
pub fn dump_link6_msg(seq: u32) -> Vec<u8> {
    let mut body = vec![AF_INET6, 0, 0, 0];
    body.extend_from_slice(&[0u8; 12]);
    message(RTM_GETLINK, NLM_F_DUMP, seq, &body)
}

/// The message at `off` of a datagram, and where the next one starts.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn next_message(buf: &[u8], off: usize) -> Option<(Msg<'_>, usize)> {
    let len = usize::try_from(ne_u32(buf, off)?).ok()?;
    if len < NLMSG_HDR {
        return None;
    }
    let kind = ne_u16(buf, off.checked_add(4)?)?;
    let seq = ne_u32(buf, off.checked_add(8)?)?;
    let end = off.checked_add(len)?;
    let body = buf.get(off.checked_add(NLMSG_HDR)?..end)?;
    let next = end.checked_add(3)? & !3;
    Some((Msg { kind, seq, body }, next))
}

/// The attribute at `off` of `buf` (kind, payload), and where the next one starts.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn next_attr(buf: &[u8], off: usize) -> Option<(u16, &[u8], usize)> {
    let len = usize::from(ne_u16(buf, off)?);
    if len < RTA_HDR {
        return None;
    }
    // The top bits are NLA_F_NESTED / NLA_F_NET_BYTEORDER.
    let kind = ne_u16(buf, off.checked_add(2)?)? & 0x3fff;
    let end = off.checked_add(len)?;
    let payload = buf.get(off.checked_add(RTA_HDR)?..end)?;
    let next = end.checked_add(3)? & !3;
    Some((kind, payload, next))
}

/// The payload of the first attribute `kind` in `buf` from `off`.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn find_attr(buf: &[u8], mut off: usize, kind: u16) -> Option<&[u8]> {
    loop {
        let (k, payload, next) = next_attr(buf, off)?;
        if k == kind {
            return Some(payload);
        }
        off = next;
    }
}

/// Finds the `NLMSG_ERROR` answering `seq` in a datagram: `Some(0)` is an ACK, `Some(-errno)`
/// a failure, `None` not in this datagram.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn parse_ack(buf: &[u8], seq: u32) -> Option<i32> {
    let mut off = 0;
    loop {
        let (m, next) = next_message(buf, off)?;
        if m.kind == NLMSG_ERROR && m.seq == seq {
            return ne_u32(m.body, 0).map(|e| i32::from_ne_bytes(e.to_ne_bytes()));
        }
        off = next;
    }
}

/// Does this message end the dump `seq`? `Some(0)` for `NLMSG_DONE`, `Some(-errno)` for an
/// error answering it, `None` for anything else.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn dump_end(m: &Msg<'_>, seq: u32) -> Option<i32> {
    if m.seq != seq {
        return None;
    }
    match m.kind {
        NLMSG_DONE => Some(0),
        NLMSG_ERROR => ne_u32(m.body, 0).map(|e| i32::from_ne_bytes(e.to_ne_bytes())),
        _ => None,
    }
}

/// An `RTM_NEWADDR` body for an IPv6 address.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn parse_addr6(body: &[u8]) -> Option<Addr6> {
    let [af, prefix, low_flags, scope] = array::<4>(body, 0)?;
    if af != AF_INET6 {
        return None;
    }
    let ifindex = ne_u32(body, 4)?;
    let address = array::<16>(find_attr(body, IFADDR, IFA_ADDRESS)?, 0)?;
    let flags = find_attr(body, IFADDR, IFA_FLAGS)
        .and_then(|f| ne_u32(f, 0))
        .unwrap_or(u32::from(low_flags));
    Some(Addr6 {
        ifindex,
        address: Ipv6Addr::from(address),
        prefix: prefix.min(128),
        flags,
        scope,
    })
}

/// An `RTM_NEWLINK` body's IPv6 flags (`IF_RA_*`): from `IFLA_PROTINFO` (the `AF_INET6`
/// dump and notifications) or `IFLA_AF_SPEC`/`AF_INET6` (an `AF_UNSPEC` message). The
/// interface index and the flags.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn parse_link6(body: &[u8]) -> Option<(u32, u32)> {
    let ifindex = ne_u32(body, 4)?;
    let inet6 = match find_attr(body, IFINFO, IFLA_PROTINFO) {
        Some(p) => p,
        None => find_attr(
            find_attr(body, IFINFO, IFLA_AF_SPEC)?,
            0,
            u16::from(AF_INET6),
        )?,
    };
    let flags = ne_u32(find_attr(inet6, 0, IFLA_INET6_FLAGS)?, 0)?;
    Some((ifindex, flags))
}

/// An `RTM_NEWROUTE` body: the output interface and the gateway.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn parse_route(body: &[u8]) -> Option<RouteInfo> {
    let af = *body.first()?;
    let oif = find_attr(body, RTMSG, RTA_OIF).and_then(|p| ne_u32(p, 0));
    let gateway = find_attr(body, RTMSG, RTA_GATEWAY).and_then(|g| match af {
        AF_INET => array::<4>(g, 0).map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        AF_INET6 => array::<16>(g, 0).map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        _ => None,
    });
    if af != AF_INET && af != AF_INET6 {
        return None;
    }
    let [_, dst_len, _, _, _, proto, _, _] = array::<8>(body, 0)?;
    Some(RouteInfo {
        oif,
        gateway,
        dst_len,
        proto,
    })
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn u32_at(m: &[u8], off: usize) -> u32 {
        u32::from_ne_bytes(m[off..off + 4].try_into().unwrap())
    }

    fn nl(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = message(kind, 0, seq, body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    #[test]
    fn requests_have_the_kernel_layout() {
        let m = link_msg(7, 3, true, Some(1400));
        assert_eq!(m.len(), 16 + 16 + 8, "link: header, ifinfomsg, IFLA_MTU");
        assert_eq!(u32_at(&m, 0), 40, "link: length");
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWLINK, "link: type");
        assert_eq!(
            u16::from_ne_bytes([m[6], m[7]]),
            NLM_F_REQUEST | NLM_F_ACK,
            "link: flags"
        );
        assert_eq!(u32_at(&m, 8), 7, "link: seq");
        assert_eq!(u32_at(&m, 20), 3, "link: ifindex");
        assert_eq!(u32_at(&m, 24), IFF_UP, "link: flags");

        let a4 = AddrSpec {
            ifindex: 2,
            address: v4([10, 0, 0, 5]),
            prefix: 24,
            flags: 0,
            lifetimes: None,
        };
        let a = addr_msg(1, true, &a4);
        assert_eq!(&a[16..20], &[AF_INET, 24, 0, 0], "addr4: header");
        assert_eq!(a.len(), 16 + 8 + 3 * 8, "addr4: local, address, broadcast");
        assert_eq!(&a[a.len() - 4..], &[10, 0, 0, 255], "addr4: broadcast");

        let a6 = AddrSpec {
            ifindex: 2,
            address: "fd77::5".parse().unwrap(),
            prefix: 128,
            flags: IFA_F_OPTIMISTIC,
            lifetimes: Some((3600, 7200)),
        };
        let a = addr_msg(1, true, &a6);
        assert_eq!(&a[16..20], &[AF_INET6, 128, 4, 0], "addr6: header");
        assert_eq!(
            a.len(),
            16 + 8 + 20 + 8 + 20,
            "addr6: address, IFA_FLAGS, IFA_CACHEINFO"
        );
        assert_eq!(
            (u32_at(&a, a.len() - 16), u32_at(&a, a.len() - 12)),
            (3600, 7200),
            "addr6: lifetimes"
        );
        let d = addr_msg(1, false, &a6);
        assert_eq!(d.len(), 16 + 8 + 20, "addr6 removal: the address only");

        let r = route_msg(
            1,
            true,
            false,
            &RouteSpec {
                ifindex: 2,
                dest: v4([0, 0, 0, 0]),
                prefix: 0,
                gateway: Some(v4([10, 0, 0, 1])),
                metric: None,
                proto: RTPROT_DHCP,
            },
        );
        assert_eq!(
            &r[16..24],
            &[AF_INET, 0, 0, 0, 254, 16, 0, 1],
            "route4: rtmsg"
        );
        assert_eq!(r.len(), 16 + 12 + 8 + 8, "route4: no RTA_DST for a default");
        let r = route_msg(
            1,
            true,
            true,
            &RouteSpec {
                ifindex: 2,
                dest: "fd00:ec2::254".parse().unwrap(),
                prefix: 128,
                gateway: Some("fe80::1".parse().unwrap()),
                metric: Some(10),
                proto: RTPROT_STATIC,
            },
        );
        assert_eq!(
            &r[16..24],
            &[AF_INET6, 128, 0, 0, 254, 4, 0, 1],
            "route6: rtmsg"
        );
        assert_eq!(
            u16::from_ne_bytes([r[6], r[7]]),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            "route6: exclusive"
        );
        assert_eq!(
            r.len(),
            16 + 12 + 20 + 20 + 8 + 8,
            "route6: dst, gw, oif, prio"
        );
        let r = route_msg(
            1,
            true,
            false,
            &RouteSpec {
                ifindex: 2,
                dest: "::".parse().unwrap(),
                prefix: 0,
                gateway: Some(v4([10, 0, 0, 1])),
                metric: None,
                proto: RTPROT_STATIC,
            },
        );
        assert_eq!(r.len(), 16 + 12 + 8, "route6: a v4 gateway is left out");
        let g = get_route_msg(3, "fd00:ec2::254".parse().unwrap(), 5);
        assert_eq!(&g[16..18], &[AF_INET6, 128], "getroute: family, dst_len");
        let d = dump_addr6_msg(4);
        assert_eq!(
            u16::from_ne_bytes([d[6], d[7]]),
            NLM_F_REQUEST | NLM_F_DUMP,
            "dump: flags"
        );
        assert_eq!(dump_link6_msg(5).len(), 16 + 16, "link dump: ifinfomsg");
    }

    #[test]
    fn acks_and_dump_ends() {
        let mut ack = Vec::new();
        for (seq, err) in [(5u32, 0i32), (6, -17)] {
            let mut body = err.to_ne_bytes().to_vec();
            body.extend_from_slice(&[0; 16]);
            ack.extend(nl(NLMSG_ERROR, seq, &body));
        }
        for (case, seq, want) in [
            ("ack", 5, Some(0)),
            ("error", 6, Some(-17)),
            ("absent", 7, None),
        ] {
            assert_eq!(parse_ack(&ack, seq), want, "case {case}");
        }
        for cut in 0..ack.len() {
            let _ = parse_ack(&ack[..cut], 6);
        }
        assert_eq!(parse_ack(&[255; 3], 1), None, "case short");
        let mut zero = ack.clone();
        zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(parse_ack(&zero, 6), None, "case zero length must not loop");

        let done = nl(NLMSG_DONE, 9, &0i32.to_ne_bytes());
        let (m, _) = next_message(&done, 0).unwrap();
        assert_eq!(dump_end(&m, 9), Some(0), "case done");
        assert_eq!(dump_end(&m, 8), None, "case done for another dump");
    }

    fn addr6_body(
        ifindex: u32,
        addr: &str,
        prefix: u8,
        low: u8,
        scope: u8,
        ext: Option<u32>,
    ) -> Vec<u8> {
        let mut b = vec![AF_INET6, prefix, low, scope];
        b.extend_from_slice(&ifindex.to_ne_bytes());
        attr(
            &mut b,
            IFA_ADDRESS,
            &addr.parse::<Ipv6Addr>().unwrap().octets(),
        );
        if let Some(f) = ext {
            attr(&mut b, IFA_FLAGS, &f.to_ne_bytes());
        }
        b
    }

    /// ifindex, address, prefix, flags, link-local, usable.
    type Want = Option<(u32, &'static str, u8, u32, bool, bool)>;

    #[test]
    fn addresses() {
        let cases: [(&str, Vec<u8>, Want); 6] = [
            (
                "link-local, done",
                addr6_body(2, "fe80::1", 64, 0x80, 253, Some(0x80)),
                Some((2, "fe80::1", 64, 0x80, true, true)),
            ),
            (
                "slaac, optimistic and tentative",
                addr6_body(3, "fd77::ff:fe00:1", 64, 0x44, 0, Some(0x144)),
                Some((3, "fd77::ff:fe00:1", 64, 0x144, false, true)),
            ),
            (
                "tentative only",
                addr6_body(3, "fd77::5", 128, 0x40, 0, None),
                Some((3, "fd77::5", 128, 0x40, false, false)),
            ),
            (
                "DAD failed",
                addr6_body(3, "fd77::5", 128, 0x48, 0, None),
                Some((3, "fd77::5", 128, 0x48, false, false)),
            ),
            (
                "IPv4",
                {
                    let mut b = addr6_body(3, "fd77::5", 128, 0, 0, None);
                    b[0] = AF_INET;
                    b
                },
                None,
            ),
            (
                "no address attribute",
                {
                    let mut b = vec![AF_INET6, 64, 0, 0];
                    b.extend_from_slice(&2u32.to_ne_bytes());
                    b
                },
                None,
            ),
        ];
        for (case, body, want) in cases {
            let got = parse_addr6(&body);
            match want {
                None => assert_eq!(got, None, "case {case}"),
                Some((idx, a, p, flags, ll, usable)) => {
                    let g = got.unwrap_or_else(|| panic!("case {case}: not parsed"));
                    assert_eq!(
                        (g.ifindex, g.address, g.prefix, g.flags, g.link_local()),
                        (idx, a.parse().unwrap(), p, flags, ll),
                        "case {case}"
                    );
                    assert_eq!(g.usable(true), usable, "case {case}: usable");
                }
            }
            for cut in 0..body.len() {
                let _ = parse_addr6(&body[..cut]);
            }
        }
        let optimistic = parse_addr6(&addr6_body(3, "fd77::1", 64, 0x44, 0, None)).unwrap();
        assert!(
            !optimistic.usable(false),
            "optimistic without use_optimistic"
        );
    }

    #[test]
    fn link_flags_both_layouts() {
        let mut flags = Vec::new();
        attr(
            &mut flags,
            IFLA_INET6_FLAGS,
            &(IF_RA_RCVD | IF_RA_MANAGED).to_ne_bytes(),
        );
        let head = |af: u8| {
            let mut b = vec![af, 0, 1, 0];
            b.extend_from_slice(&4u32.to_ne_bytes());
            b.extend_from_slice(&[0; 8]);
            b
        };
        let mut protinfo = head(AF_INET6);
        attr(&mut protinfo, 3, b"eth0\0");
        attr(&mut protinfo, IFLA_PROTINFO | 0x8000, &flags);
        let mut af_spec = head(0);
        let mut inner = Vec::new();
        attr(&mut inner, u16::from(AF_INET), &[0; 8]);
        attr(&mut inner, u16::from(AF_INET6), &flags);
        attr(&mut af_spec, IFLA_AF_SPEC, &inner);
        for (case, body, want) in [
            ("IFLA_PROTINFO (nested bit set)", protinfo, Some((4, 0x60))),
            ("IFLA_AF_SPEC", af_spec, Some((4, 0x60))),
            ("no IPv6 part", head(0), None),
        ] {
            assert_eq!(parse_link6(&body), want, "case {case}");
            for cut in 0..body.len() {
                let _ = parse_link6(&body[..cut]);
            }
        }
    }

    #[test]
    fn routes() {
        let mut b = vec![AF_INET6, 128, 0, 0, 254, 9, 0, 1, 0, 0, 0, 0];
        attr(
            &mut b,
            RTA_DST,
            &"fd00:ec2::254".parse::<Ipv6Addr>().unwrap().octets(),
        );
        attr(
            &mut b,
            RTA_GATEWAY,
            &"fe80::1".parse::<Ipv6Addr>().unwrap().octets(),
        );
        attr(&mut b, RTA_OIF, &7u32.to_ne_bytes());
        assert_eq!(
            parse_route(&b),
            Some(RouteInfo {
                oif: Some(7),
                gateway: Some("fe80::1".parse().unwrap()),
                dst_len: 128,
                proto: RTPROT_RA,
            }),
            "case via a router"
        );
        let mut on_link = vec![AF_INET, 32, 0, 0, 254, 2, 253, 1, 0, 0, 0, 0];
        attr(&mut on_link, RTA_OIF, &3u32.to_ne_bytes());
        assert_eq!(
            parse_route(&on_link),
            Some(RouteInfo {
                oif: Some(3),
                gateway: None,
                dst_len: 32,
                proto: 2,
            }),
            "case on-link"
        );
        assert_eq!(parse_route(&[7]), None, "case unknown family");
        for cut in 0..b.len() {
            let _ = parse_route(&b[..cut]);
        }
    }

    /// Every message of a datagram, with its kind.
    fn all(buf: &[u8]) -> Vec<Msg<'_>> {
        let mut out = Vec::new();
        let mut off = 0;
        while let Some((m, next)) = next_message(buf, off) {
            out.push(m);
            off = next;
        }
        out
    }

    #[test]
    fn captures() {
        // tests/data/rtnl/README.md says how and where these were captured.
        let addrs = include_bytes!("../../tests/data/rtnl/addr6-0.bin");
        let got: Vec<Addr6> = all(addrs)
            .iter()
            .filter(|m| m.kind == RTM_NEWADDR)
            .filter_map(|m| parse_addr6(m.body))
            .collect();
        let opt = IFA_F_OPTIMISTIC | IFA_F_TENTATIVE | IFA_F_PERMANENT;
        assert_eq!(
            got.iter()
                .map(|a| (
                    a.ifindex,
                    a.address.to_string(),
                    a.prefix,
                    a.flags,
                    a.link_local()
                ))
                .collect::<Vec<_>>(),
            [
                (2, "fd77::5".to_string(), 128, opt, false),
                (2, "fe80::ff:fe00:1".to_string(), 64, opt, true),
            ],
            "case addresses"
        );
        assert!(
            got.iter().all(|a| a.usable(true) && !a.usable(false)),
            "case optimistic"
        );
        let last = all(addrs).last().copied().unwrap();
        assert_eq!(dump_end(&last, last.seq), Some(0), "case the dump ends");

        let links = include_bytes!("../../tests/data/rtnl/link6-0.bin");
        let flags: Vec<(u32, u32)> = all(links)
            .iter()
            .filter(|m| m.kind == RTM_NEWLINK)
            .filter_map(|m| parse_link6(m.body))
            .collect();
        assert_eq!(
            flags,
            [(1, 0), (2, 0x8000_0000 | IF_RA_MANAGED | IF_RA_OTHERCONF)],
            "case link flags: M and O, no IF_RA_RCVD before the kernel's own RS"
        );

        let routes = include_bytes!("../../tests/data/rtnl/route6-0.bin");
        let ra: Vec<RouteInfo> = all(routes)
            .iter()
            .filter_map(|m| parse_route(m.body))
            .filter(|r| r.proto == RTPROT_RA)
            .collect();
        assert_eq!(ra.len(), 1, "case one RA route");
        assert_eq!(
            (ra[0].dst_len, ra[0].oif),
            (0, Some(2)),
            "case the RA's default route"
        );
        assert!(
            matches!(ra[0].gateway, Some(IpAddr::V6(g)) if g.is_unicast_link_local()),
            "case via the router's link-local address"
        );
        let done = include_bytes!("../../tests/data/rtnl/route6-1.bin");
        let m = all(done)[0];
        assert_eq!(dump_end(&m, m.seq), Some(0), "case NLMSG_DONE alone");

        let lookup = include_bytes!("../../tests/data/rtnl/getroute.bin");
        let m = all(lookup)[0];
        assert_eq!(
            parse_route(m.body).map(|r| (r.oif, r.gateway.is_some())),
            Some((Some(2), true)),
            "case lookup"
        );
        let err = include_bytes!("../../tests/data/rtnl/error.bin");
        assert_eq!(
            parse_ack(err, all(err)[0].seq),
            Some(-101),
            "case ENETUNREACH"
        );

        for buf in [&addrs[..], &links[..], &routes[..], &lookup[..], &err[..]] {
            for cut in 0..buf.len() {
                for m in all(&buf[..cut]) {
                    let _ = (
                        parse_addr6(m.body),
                        parse_link6(m.body),
                        parse_route(m.body),
                    );
                }
            }
        }
    }

    #[test]
    fn walks_end_on_bad_lengths() {
        for (case, buf) in [
            ("attr length 0", vec![0u8, 0, 1, 0, 9, 9, 9, 9]),
            ("attr length 3", vec![3u8, 0, 1, 0, 9, 9, 9, 9]),
            ("attr past the end", vec![200u8, 0, 1, 0, 9, 9, 9, 9]),
        ] {
            assert_eq!(find_attr(&buf, 0, 7), None, "case {case}");
        }
        assert_eq!(next_message(&[16, 0, 0], 0), None, "case short header");
        let mut huge = nl(RTM_NEWADDR, 1, &[0; 8]);
        huge[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(next_message(&huge, 0), None, "case length past the end");
        assert_eq!(
            next_message(&huge, usize::MAX),
            None,
            "case offset at the limit"
        );
    }
}
