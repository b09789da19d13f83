//! Links, addresses and routes over rtnetlink, behind a small synchronous facade ([`Links`]),
//! the kernel's IPv6 notifications as a doorbell ([`Doorbell`]), and the NIC list from sysfs.
//!
//! The messages are built and parsed by pure functions in `rtnl.rs`; `sys/netlink.rs` moves
//! the bytes. Every request waits for its answer at most the caller's deadline. The NIC list
//! comes from sysfs (`/sys/class/net`), which the kernel keeps in step with netlink; reading
//! it needs no link dump. IPv6 state (addresses and their DAD state, the router
//! advertisement's flags) comes from dumps, asked again whenever the doorbell rings.
//!
//! Why not the `rtnetlink` crate: it needs tokio and its netlink-packet stack for a dozen
//! fixed-shape messages; see the README's size notes. Not supported: renaming links
//! (`ifname=` is honoured by matching the MAC, not by renaming).

use super::rtnl::{self, Addr6, AddrSpec, RouteInfo, RouteSpec};
use crate::deadline::Deadline;
use crate::root::Root;
use crate::sys::netlink::NetlinkSocket;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};

const IFF_UP: u32 = 1;
/// Receive buffer for dumps: the kernel fills at most 32 KiB per datagram.
const DUMP_BUF: usize = 64 * 1024;
/// Entries of one dump kept (a host with thousands of addresses is cut, not followed).
const DUMP_ENTRIES: crate::caps::Cap = crate::caps::NETLINK_DUMP;
/// `RTNLGRP_IPV6_IFADDR`, `RTNLGRP_IPV6_ROUTE`, `RTNLGRP_IPV6_IFINFO` as group bits.
const IPV6_GROUPS: u32 = (1 << (9 - 1)) | (1 << (11 - 1)) | (1 << (12 - 1));

/// One NIC as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// IFF_UP when we found it.
    pub up: bool,
    /// The MTU when we found it (to put back one a lease changed).
    pub mtu: Option<u32>,
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
            mtu: attr("mtu").and_then(|m| m.parse().ok()),
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

/// The rtnetlink facade: one socket, one request at a time, each answered.
pub struct Links {
    sock: NetlinkSocket,
    seq: u32,
    buf: Vec<u8>,
}

/// The kernel's IPv6 notifications (addresses, routes, link flags), read only as "something
/// changed": the state itself is dumped again ([`Links::addresses6`], [`Links::flags6`]),
/// which a lost notification cannot make wrong.
pub struct Doorbell(NetlinkSocket);

impl Doorbell {
    pub fn open() -> io::Result<Doorbell> {
        NetlinkSocket::open_groups(IPV6_GROUPS).map(Doorbell)
    }

    /// Did it ring since the last call? Drops what is queued.
    pub fn rang(&self) -> bool {
        self.0.drain()
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e.checked_neg().unwrap_or(0))
}

impl Links {
    pub fn open() -> io::Result<Links> {
        Ok(Links {
            sock: NetlinkSocket::open()?,
            seq: 1,
            buf: vec![0u8; DUMP_BUF],
        })
    }

    /// Sends a request and hands every message answering it to `each` until `done` says
    /// the answer is complete (`Some(0)`) or failed (`Some(-errno)`).
    fn exchange(
        &mut self,
        build: impl FnOnce(u32) -> Vec<u8>,
        deadline: Deadline,
        mut each: impl FnMut(&rtnl::Msg<'_>) -> Option<i32>,
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.sock.send(&build(seq))?;
        loop {
            let left = deadline.remaining();
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "netlink: deadline"));
            }
            let n = self.sock.recv(&mut self.buf, left)?;
            let data = self.buf.get(..n).unwrap_or_default();
            let mut off = 0;
            while let Some((m, next)) = rtnl::next_message(data, off) {
                off = next;
                if m.seq != seq {
                    continue;
                }
                match each(&m) {
                    Some(0) => return Ok(()),
                    Some(e) => return Err(errno(e)),
                    None => {}
                }
            }
        }
    }

    fn request(&mut self, build: impl FnOnce(u32) -> Vec<u8>, d: Deadline) -> io::Result<()> {
        self.exchange(build, d, |m| {
            (m.kind == rtnl::NLMSG_ERROR).then(|| rtnl::dump_end(m, m.seq).unwrap_or(0))
        })
    }

    pub fn set_up(&mut self, ifindex: u32, up: bool, d: Deadline) -> io::Result<()> {
        self.request(|s| rtnl::link_msg(s, ifindex, up, None), d)
    }

    pub fn set_mtu(&mut self, ifindex: u32, mtu: u32, d: Deadline) -> io::Result<()> {
        self.request(|s| rtnl::link_msg(s, ifindex, true, Some(mtu)), d)
    }

    pub fn address(&mut self, add: bool, a: &AddrSpec, d: Deadline) -> io::Result<()> {
        self.request(|s| rtnl::addr_msg(s, add, a), d)
    }

    /// Adds (replacing a route with the same key) or removes a route.
    pub fn route(&mut self, add: bool, r: &RouteSpec, d: Deadline) -> io::Result<()> {
        self.request(|s| rtnl::route_msg(s, add, false, r), d)
    }

    /// Adds a route unless one with the same key is there (`EEXIST` then).
    pub fn route_exclusive(&mut self, r: &RouteSpec, d: Deadline) -> io::Result<()> {
        self.request(|s| rtnl::route_msg(s, true, true, r), d)
    }

    /// The route the kernel would use to `dest` out of `oif` (`ENETUNREACH`: none).
    pub fn route_to(&mut self, dest: IpAddr, oif: u32, d: Deadline) -> io::Result<RouteInfo> {
        let mut found = None;
        self.exchange(
            |s| rtnl::get_route_msg(s, dest, oif),
            d,
            |m| match m.kind {
                rtnl::RTM_NEWROUTE => {
                    found = rtnl::parse_route(m.body);
                    Some(0)
                }
                _ => rtnl::dump_end(m, m.seq),
            },
        )?;
        found.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "netlink: bad route"))
    }

    /// A dump: every message of type `kind` that `parse` reads, up to the cap; the cut is
    /// named in the log.
    fn dump<T>(
        &mut self,
        build: fn(u32) -> Vec<u8>,
        kind: u16,
        parse: fn(&[u8]) -> Option<T>,
        d: Deadline,
    ) -> io::Result<Vec<T>> {
        let mut out = Vec::new();
        let mut cut = false;
        self.exchange(build, d, |m| {
            if m.kind != kind {
                return rtnl::dump_end(m, m.seq);
            }
            match parse(m.body) {
                Some(x) if DUMP_ENTRIES.room(out.len()) => out.push(x),
                Some(_) => cut = true,
                None => {}
            }
            None
        })?;
        if cut {
            log::warn!("net: netlink dump: {}", DUMP_ENTRIES.cut());
        }
        Ok(out)
    }

    /// Every IPv6 address of every NIC.
    pub fn addresses6(&mut self, d: Deadline) -> io::Result<Vec<Addr6>> {
        self.dump(
            rtnl::dump_addr6_msg,
            rtnl::RTM_NEWADDR,
            rtnl::parse_addr6,
            d,
        )
    }

    /// Every IPv6 route of the main table.
    pub fn routes6(&mut self, d: Deadline) -> io::Result<Vec<RouteInfo>> {
        self.dump(
            rtnl::dump_route6_msg,
            rtnl::RTM_NEWROUTE,
            rtnl::parse_route,
            d,
        )
    }

    /// Every NIC's IPv6 flags (`IF_RA_*`), by interface index.
    pub fn flags6(&mut self, d: Deadline) -> io::Result<Vec<(u32, u32)>> {
        self.dump(
            rtnl::dump_link6_msg,
            rtnl::RTM_NEWLINK,
            rtnl::parse_link6,
            d,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        for (case, text, want) in [
            (
                "six octets",
                "52:54:00:12:34:56",
                Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            ),
            ("five octets", "52:54:00:12:34", None),
            ("not hex", "zz:54:00:12:34:56", None),
        ] {
            assert_eq!(parse_mac(text), want, "case {case}");
        }
    }
}
