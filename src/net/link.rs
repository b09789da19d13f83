//! Links, addresses and routes over rtnetlink, behind a small synchronous facade ([`Links`]).
//!
//! The messages (`RTM_NEWLINK` to set a link up/down and its MTU, `RTM_NEWADDR`/`RTM_DELADDR`,
//! `RTM_NEWROUTE`/`RTM_DELROUTE`, IPv4 only) are built and their acknowledgements parsed by
//! pure functions here; `sys/netlink.rs` moves the bytes. Every request waits for its ACK at
//! most the caller's deadline. The NIC list comes from sysfs (`/sys/class/net`), which the
//! kernel keeps in step with netlink; reading it needs no dump parser.
//!
//! Why not the `rtnetlink` crate: it needs tokio and its netlink-packet stack for five
//! fixed-shape messages; see the README's size notes. Layouts: include/uapi/linux/netlink.h,
//! rtnetlink.h, if_link.h, if_addr.h (v6.1). Not supported: IPv6 addresses and routes,
//! renaming links (`ifname=` is honoured by matching the MAC, not by renaming).
#![deny(clippy::arithmetic_side_effects)]

use crate::root::Root;
use crate::run::Deadline;
use crate::sys::netlink::NetlinkSocket;
use std::io;
use std::net::Ipv4Addr;

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const IFLA_MTU: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const AF_INET: u8 = 2;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_DHCP: u8 = 16;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const IFF_UP: u32 = 1;

/// A route as installed: `dest/prefix` via `gateway` (`None`: on-link) out of `ifindex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub ifindex: u32,
    pub dest: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub metric: Option<u32>,
}

fn attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = u16::try_from(data.len().saturating_add(4)).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// Wraps a body in an `nlmsghdr` (request + ACK).
fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len().saturating_add(16)).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(body.len().saturating_add(16));
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(body);
    out
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
    message(RTM_NEWLINK, 0, seq, &body)
}

/// `RTM_NEWADDR`/`RTM_DELADDR` for `addr/prefix` on `ifindex` (with its broadcast address).
pub fn addr_msg(seq: u32, add: bool, ifindex: u32, addr: Ipv4Addr, prefix: u8) -> Vec<u8> {
    let mut body = vec![AF_INET, prefix.min(32), 0, RT_SCOPE_UNIVERSE];
    body.extend_from_slice(&ifindex.to_ne_bytes());
    attr(&mut body, IFA_LOCAL, &addr.octets());
    attr(&mut body, IFA_ADDRESS, &addr.octets());
    if prefix < 31 {
        let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
        attr(
            &mut body,
            IFA_BROADCAST,
            &Ipv4Addr::from(u32::from(addr) | host).octets(),
        );
    }
    let (kind, flags) = if add {
        (RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE)
    } else {
        (RTM_DELADDR, 0)
    };
    message(kind, flags, seq, &body)
}

/// `RTM_NEWROUTE`/`RTM_DELROUTE` in the main table, protocol `dhcp`.
pub fn route_msg(seq: u32, add: bool, r: &RouteSpec) -> Vec<u8> {
    let scope = if r.gateway.is_some() {
        RT_SCOPE_UNIVERSE
    } else {
        RT_SCOPE_LINK
    };
    let mut body = vec![
        AF_INET,
        r.prefix.min(32),
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_DHCP,
        scope,
        RTN_UNICAST,
    ];
    body.extend_from_slice(&0u32.to_ne_bytes()); // flags
    if r.prefix > 0 {
        attr(&mut body, RTA_DST, &r.dest.octets());
    }
    if let Some(gw) = r.gateway {
        attr(&mut body, RTA_GATEWAY, &gw.octets());
    }
    attr(&mut body, RTA_OIF, &r.ifindex.to_ne_bytes());
    if let Some(m) = r.metric {
        attr(&mut body, RTA_PRIORITY, &m.to_ne_bytes());
    }
    let (kind, flags) = if add {
        (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE)
    } else {
        (RTM_DELROUTE, 0)
    };
    message(kind, flags, seq, &body)
}

/// Finds the `NLMSG_ERROR` answering `seq` in a datagram: `Some(0)` is an ACK, `Some(-errno)`
/// a failure, `None` not in this datagram. Pure; never panics.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn parse_ack(mut buf: &[u8], seq: u32) -> Option<i32> {
    let u32_at = |b: &[u8], at: usize| {
        b.get(at..at.checked_add(4)?)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map(u32::from_ne_bytes)
    };
    loop {
        let len = usize::try_from(u32_at(buf, 0)?).ok()?;
        if len < 16 {
            return None;
        }
        let kind = buf
            .get(4..6)
            .and_then(|w| <[u8; 2]>::try_from(w).ok())
            .map(u16::from_ne_bytes)?;
        let msg_seq = u32_at(buf, 8)?;
        if kind == NLMSG_ERROR && msg_seq == seq {
            return u32_at(buf, 16).map(|e| i32::from_ne_bytes(e.to_ne_bytes()));
        }
        let next = len.checked_add(3)? & !3;
        buf = buf.get(next..)?;
    }
}

/// One NIC as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// IFF_UP when we found it.
    pub up: bool,
    /// `true` for Ethernet NICs that are not bridges, bonds, VLANs, team, tun/tap or
    /// loopback: the DHCP candidates.
    pub ethernet: bool,
}

impl Nic {
    pub fn mac_text(&self) -> String {
        self.mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = text
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    <[u8; 6]>::try_from(parts).ok()
}

/// The NICs under `root/sys/class/net`, sorted by name. Unlike [`Root::host_nics`], virtual
/// Ethernet (veth, virtio under `devices/virtual`) is kept: a namespace test is made of them.
pub fn list(root: &Root) -> Vec<Nic> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/class/net")) else {
        return Vec::new();
    };
    let mut nics = Vec::new();
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let base = format!("sys/class/net/{name}");
        let attr = |a: &str| root.sys_attr(format!("{base}/{a}"));
        let (Some(ifindex), Some(mac)) = (
            attr("ifindex").and_then(|i| i.parse().ok()),
            attr("address").and_then(|m| parse_mac(&m)),
        ) else {
            continue;
        };
        let flags = attr("flags")
            .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        let devtype = attr("uevent")
            .and_then(|u| {
                u.lines()
                    .find_map(|l| l.strip_prefix("DEVTYPE=").map(str::to_string))
            })
            .unwrap_or_default();
        let is_dir = |d: &str| root.join(format!("{base}/{d}")).is_dir();
        let ethernet = attr("type").as_deref() == Some("1")
            && name != "lo"
            && mac != [0; 6]
            && !is_dir("bridge")
            && !is_dir("bonding")
            && !is_dir("team")
            && !is_dir("tun_flags")
            && attr("tun_flags").is_none()
            && !matches!(
                devtype.as_str(),
                "vlan" | "bridge" | "bond" | "wlan" | "team"
            );
        nics.push(Nic {
            name,
            ifindex,
            mac,
            up: flags & IFF_UP != 0,
            ethernet,
        });
    }
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    nics
}

/// Is the link ready to send: carrier, and `operstate` up (or `unknown`, for drivers that do
/// not report it)? Carrier alone is not enough: the kernel activates the queueing discipline
/// later, from its link-watch work, and until then sent packets are dropped (a lost first
/// DISCOVER costs a retransmission).
pub fn has_carrier(root: &Root, name: &str) -> bool {
    let attr = |a: &str| root.sys_attr(format!("sys/class/net/{name}/{a}"));
    attr("carrier").is_some_and(|c| c == "1")
        && attr("operstate").is_some_and(|o| o == "up" || o == "unknown")
}

/// The rtnetlink facade: one socket, one request at a time, each acknowledged.
pub struct Links {
    sock: NetlinkSocket,
    seq: u32,
}

impl Links {
    pub fn open() -> io::Result<Links> {
        Ok(Links {
            sock: NetlinkSocket::open()?,
            seq: 1,
        })
    }

    fn request(
        &mut self,
        build: impl FnOnce(u32) -> Vec<u8>,
        deadline: Deadline,
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.sock.send(&build(seq))?;
        let mut buf = vec![0u8; 8192];
        loop {
            let left = deadline.remaining();
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "netlink: deadline"));
            }
            let n = self.sock.recv(&mut buf, left)?;
            match parse_ack(buf.get(..n).unwrap_or_default(), seq) {
                Some(0) => return Ok(()),
                Some(e) => return Err(io::Error::from_raw_os_error(e.checked_neg().unwrap_or(0))),
                None => {}
            }
        }
    }

    pub fn set_up(&mut self, ifindex: u32, up: bool, d: Deadline) -> io::Result<()> {
        self.request(|s| link_msg(s, ifindex, up, None), d)
    }

    pub fn set_mtu(&mut self, ifindex: u32, mtu: u32, d: Deadline) -> io::Result<()> {
        self.request(|s| link_msg(s, ifindex, true, Some(mtu)), d)
    }

    pub fn address(
        &mut self,
        add: bool,
        ifindex: u32,
        a: Ipv4Addr,
        prefix: u8,
        d: Deadline,
    ) -> io::Result<()> {
        self.request(|s| addr_msg(s, add, ifindex, a, prefix), d)
    }

    pub fn route(&mut self, add: bool, r: &RouteSpec, d: Deadline) -> io::Result<()> {
        self.request(|s| route_msg(s, add, r), d)
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_kernel_layout() {
        let m = link_msg(7, 3, true, Some(1400));
        assert_eq!(m.len(), 16 + 16 + 8);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 40);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), RTM_NEWLINK);
        assert_eq!(
            u16::from_ne_bytes(m[6..8].try_into().unwrap()),
            NLM_F_REQUEST | NLM_F_ACK
        );
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 3);
        assert_eq!(u32::from_ne_bytes(m[24..28].try_into().unwrap()), IFF_UP);
        let a = addr_msg(1, true, 2, Ipv4Addr::new(10, 0, 0, 5), 24);
        assert_eq!(&a[16..20], &[AF_INET, 24, 0, 0]);
        assert_eq!(a.len(), 16 + 8 + 3 * 8);
        assert_eq!(&a[a.len() - 4..], &[10, 0, 0, 255], "broadcast");
        let r = route_msg(
            1,
            true,
            &RouteSpec {
                ifindex: 2,
                dest: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
                metric: None,
            },
        );
        assert_eq!(&r[16..24], &[AF_INET, 0, 0, 0, 254, 16, 0, 1]);
        assert_eq!(r.len(), 16 + 12 + 8 + 8, "no RTA_DST for a default route");
    }

    #[test]
    fn acks() {
        let mut ack = Vec::new();
        for (seq, err) in [(5u32, 0i32), (6, -17)] {
            ack.extend_from_slice(&36u32.to_ne_bytes());
            ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            ack.extend_from_slice(&0u16.to_ne_bytes());
            ack.extend_from_slice(&seq.to_ne_bytes());
            ack.extend_from_slice(&0u32.to_ne_bytes());
            ack.extend_from_slice(&err.to_ne_bytes());
            ack.extend_from_slice(&[0; 16]);
        }
        assert_eq!(parse_ack(&ack, 5), Some(0));
        assert_eq!(parse_ack(&ack, 6), Some(-17));
        assert_eq!(parse_ack(&ack, 7), None);
        for cut in 0..ack.len() {
            let _ = parse_ack(&ack[..cut], 6);
        }
        assert_eq!(parse_ack(&[255; 3], 1), None);
        let mut zero = ack.clone();
        zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(parse_ack(&zero, 6), None, "a zero length must not loop");
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("52:54:00:12:34:56"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(parse_mac("52:54:00:12:34"), None);
        assert_eq!(parse_mac("zz:54:00:12:34:56"), None);
    }
}
