//! Which NICs the network stage brings up, and what it runs on each (pure).
//!
//! - `--iface`: those NICs, with the default plan.
//! - Else the NICs the command line's `ip=` entries configure, each with what its entries say
//!   (resolved by `providers::kernel::network`, the same reading of `ip=` that the rendered
//!   configuration gets: by name, `ifname=NAME:MAC` alias or MAC; an entry without interface
//!   applies to the NICs no other entry names, a static one to the first of them).
//! - Else every Ethernet NIC (see [`super::link::Nic::ethernet`]), with the default plan.
//!
//! The default plan is DHCPv4 and IPv6 as the router asks ([`V6Plan::Ra`]). From `ip=`:
//! `dhcp` is DHCPv4 only (the kernel still does SLAAC on an up link: we do not stop it, and
//! IPv6 metadata endpoints are still tried through it); `auto6` and `either6` (dracut: SLAAC,
//! DHCPv6 if that fails) are [`V6Plan::Ra`], where the router's M flag asks for DHCPv6;
//! `dhcp6` alone is stateful DHCPv6 at once ([`V6Plan::Dhcp6`]); `link6` is the
//! link-local address only; a static address (either family) is configured as given, with
//! its gateway as the default route. All candidates are raced at once.

use super::link::Nic;
use crate::cmdline::Cmdline;
use crate::context::{Addressing, HostNic};
use std::net::IpAddr;

/// What IPv6 does on a NIC besides the kernel's own SLAAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V6Plan {
    /// Nothing of ours: the link-local address, and SLAAC if a router advertises.
    Kernel,
    /// A Router Solicitation at once, and DHCPv6 as the advertisement's flags ask: stateful
    /// for M, Information-Request for O.
    Ra,
    /// Stateful DHCPv6 as soon as the link-local address is usable, whatever the RA says.
    Dhcp6,
}

/// A static address from `ip=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Static {
    pub address: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
}

/// One candidate NIC and what runs on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub nic: Nic,
    pub dhcp4: bool,
    pub v6: V6Plan,
    /// At most one per family (the first `ip=` gives).
    pub static4: Option<Static>,
    pub static6: Option<Static>,
    /// `ip=`'s `<mtu>`.
    pub mtu: Option<u32>,
}

impl Plan {
    fn default_for(nic: Nic) -> Plan {
        Plan {
            nic,
            dhcp4: true,
            v6: V6Plan::Ra,
            static4: None,
            static6: None,
            mtu: None,
        }
    }

    /// The plan of a link `ip=` describes.
    fn from_addressing(nic: Nic, addressing: &[Addressing], mtu: Option<u32>) -> Plan {
        let mut p = Plan {
            dhcp4: false,
            v6: V6Plan::Kernel,
            mtu,
            ..Plan::default_for(nic)
        };
        let (mut slaac, mut dhcp6) = (false, false);
        for a in addressing {
            match a {
                Addressing::Dhcp4 => p.dhcp4 = true,
                Addressing::Dhcp6 => dhcp6 = true,
                Addressing::Slaac { .. } => slaac = true,
                Addressing::Static {
                    address,
                    prefix,
                    gateway,
                } => {
                    let s = Static {
                        address: *address,
                        prefix: *prefix,
                        gateway: *gateway,
                    };
                    let slot = if address.is_ipv4() {
                        &mut p.static4
                    } else {
                        &mut p.static6
                    };
                    slot.get_or_insert(s);
                }
            }
        }
        // `either6` (SLAAC, DHCPv6 if that fails) gives both: the router's flags decide.
        p.v6 = match (slaac, dhcp6) {
            (false, true) => V6Plan::Dhcp6,
            (true, _) => V6Plan::Ra,
            (false, false) => V6Plan::Kernel,
        };
        p
    }

    /// In a few words, for the log (`DHCPv4, IPv6 per RA`).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.dhcp4 {
            parts.push("DHCPv4".to_string());
        }
        for s in [self.static4, self.static6].into_iter().flatten() {
            parts.push(format!("static {}/{}", s.address, s.prefix));
        }
        parts.push(
            match self.v6 {
                V6Plan::Kernel => "IPv6 link-local/SLAAC",
                V6Plan::Ra => "IPv6 per RA",
                V6Plan::Dhcp6 => "DHCPv6",
            }
            .into(),
        );
        parts.join(", ")
    }
}

/// The candidates among `nics` (from `link::list`) and their plans.
pub fn candidates(nics: &[Nic], cmd: &Cmdline, ifaces: &[String]) -> Vec<Plan> {
    let by_name = |name: &str| -> Option<Nic> {
        if let Some(n) = nics.iter().find(|n| n.name == name) {
            return Some(n.clone());
        }
        // `ifname=NAME:MAC`: the NIC that will be called NAME is the one with that MAC.
        let mac = cmd.ifnames.iter().find(|i| i.name == name)?.mac.clone();
        nics.iter().find(|n| n.mac_text() == mac).cloned()
    };
    let mut out: Vec<Plan> = Vec::new();
    let mut push = |p: Plan| {
        if !out.iter().any(|o| o.nic.ifindex == p.nic.ifindex) {
            out.push(p);
        }
    };
    if !ifaces.is_empty() {
        for i in ifaces {
            if let Some(n) = by_name(i) {
                push(Plan::default_for(n));
            }
        }
        return out;
    }
    let ethernet: Vec<HostNic> = nics
        .iter()
        .filter(|n| n.ethernet)
        .map(|n| HostNic {
            name: n.name.clone(),
            mac: n.mac_text(),
        })
        .collect();
    let described = crate::providers::kernel::network(cmd, &ethernet);
    if !described.links.is_empty() {
        for link in &described.links {
            let nic = link.name.as_deref().and_then(by_name).or_else(|| {
                let mac = link.mac.as_deref()?;
                nics.iter()
                    .find(|n| n.mac_text().eq_ignore_ascii_case(mac))
                    .cloned()
            });
            if let Some(nic) = nic {
                push(Plan::from_addressing(nic, &link.addressing, link.mtu));
            }
        }
        return out;
    }
    for n in nics.iter().filter(|n| n.ethernet) {
        push(Plan::default_for(n.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;

    fn nic(name: &str, idx: u32, last: u8, ethernet: bool) -> Nic {
        Nic {
            name: name.into(),
            ifindex: idx,
            mac: [2, 0, 0, 0, 0, last],
            up: false,
            mtu: Some(1500),
            ethernet,
        }
    }

    #[test]
    fn choice() {
        let nics = [
            nic("br0", 1, 1, false),
            nic("eth0", 2, 2, true),
            nic("eth1", 3, 3, true),
        ];
        let names = |c: &[Plan]| c.iter().map(|p| p.nic.name.clone()).collect::<Vec<_>>();
        for (case, cmdline, ifaces, want) in [
            ("every Ethernet NIC", "", vec![], vec!["eth0", "eth1"]),
            ("--iface", "", vec!["eth1".to_string()], vec!["eth1"]),
            ("ip= by name", "ip=eth1:dhcp", vec![], vec!["eth1"]),
            (
                "ip= by ifname= alias",
                "ifname=lan:02:00:00:00:00:02 ip=lan:dhcp",
                vec![],
                vec!["eth0"],
            ),
            ("ip=dhcp: every NIC", "ip=dhcp", vec![], vec!["eth0", "eth1"]),
            ("ip= names no NIC here", "ip=nope:dhcp", vec![], vec![]),
            (
                "static without interface: the first free NIC",
                "ip=192.0.2.5::192.0.2.1:255.255.255.0::eth9:none ip=192.0.2.6::192.0.2.1:24:::none",
                vec![],
                vec!["eth0"],
            ),
            (
                "static IPv6 on a named NIC",
                "ip=[2001:db8::5]::[2001:db8::1]:64::eth1:none",
                vec![],
                vec!["eth1"],
            ),
        ] {
            assert_eq!(
                names(&candidates(&nics, &parse(cmdline), &ifaces)),
                want,
                "case {case}"
            );
        }
    }

    #[test]
    fn plans() {
        let nics = [nic("eth0", 2, 2, true), nic("eth1", 3, 3, true)];
        let plan = |cmdline: &str| {
            candidates(&nics, &parse(cmdline), &[])
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("case {cmdline}: no candidate"))
        };
        let v4: IpAddr = "192.0.2.5".parse().unwrap();
        let v6: IpAddr = "2001:db8::5".parse().unwrap();
        for (case, cmdline, dhcp4, v6plan, s4, s6, mtu) in [
            ("default", "", true, V6Plan::Ra, None, None, None),
            (
                "dhcp: DHCPv4 only",
                "ip=eth0:dhcp",
                true,
                V6Plan::Kernel,
                None,
                None,
                None,
            ),
            (
                "auto6",
                "ip=eth0:auto6",
                false,
                V6Plan::Ra,
                None,
                None,
                None,
            ),
            (
                "either6: the RA decides",
                "ip=eth0:either6",
                false,
                V6Plan::Ra,
                None,
                None,
                None,
            ),
            (
                "dhcp6",
                "ip=eth0:dhcp6",
                false,
                V6Plan::Dhcp6,
                None,
                None,
                None,
            ),
            (
                "dhcp and dhcp6 (dracut's list form)",
                "ip=eth0:dhcp,dhcp6",
                true,
                V6Plan::Dhcp6,
                None,
                None,
                None,
            ),
            (
                "link6",
                "ip=eth0:link6",
                false,
                V6Plan::Kernel,
                None,
                None,
                None,
            ),
            (
                "static v4 with MTU",
                "ip=192.0.2.5::192.0.2.1:255.255.255.0:h:eth0:none:1400",
                false,
                V6Plan::Kernel,
                Some((v4, 24, Some("192.0.2.1"))),
                None,
                Some(1400),
            ),
            (
                "static v6",
                "ip=[2001:db8::5]::[2001:db8::1]:64::eth0:none",
                false,
                V6Plan::Kernel,
                None,
                Some((v6, 64, Some("2001:db8::1"))),
                None,
            ),
        ] {
            let p = plan(cmdline);
            let st = |s: Option<Static>| s.map(|s| (s.address, s.prefix, s.gateway));
            let want = |w: Option<(IpAddr, u8, Option<&str>)>| {
                w.map(|(a, p, g)| (a, p, g.map(|g| g.parse::<IpAddr>().unwrap())))
            };
            assert_eq!(p.dhcp4, dhcp4, "case {case}: DHCPv4");
            assert_eq!(p.v6, v6plan, "case {case}: IPv6");
            assert_eq!(st(p.static4), want(s4), "case {case}: static v4");
            assert_eq!(st(p.static6), want(s6), "case {case}: static v6");
            assert_eq!(p.mtu, mtu, "case {case}: MTU");
        }
    }
}
