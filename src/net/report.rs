//! What the network stage tells: the configuration that won (printed by `preroot net --json`
//! and kept in the context's `extra.dhcp`, docs/context.md), and per candidate NIC what
//! IPv4 and IPv6 gave it and how long each took. Pure data.

use super::v6::{AddrReport, RaFlags};
use crate::context::Addressing;
use crate::dhcp::client::Lease;
use crate::dhcp6::client::{Lease6, Mode};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The configuration that won, and every candidate's story.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseReport {
    pub iface: String,
    pub mac: String,
    /// `ipv4` or `ipv6`: the family that reached the metadata service (or came first).
    pub family: &'static str,
    /// How the winning address came: `dhcp4`, `static`, `slaac`, `dhcp6`, `link-local`,
    /// `existing`.
    pub method: &'static str,
    /// The winning address with its prefix length.
    pub address: String,
    /// The metadata service address the probe reached (absent for `preroot net`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The DHCPv4 server, for a DHCPv4 win.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// From DHCPv4 or DHCPv6, whichever won; reported, never configured in the initramfs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// DHCPv6's domain search list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_secs: Option<u32>,
    /// DHCP option 245: Azure's wire server address, when the DHCPv4 server sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub option_245: Option<Ipv4Addr>,
    /// NICs raced.
    pub candidates: Vec<String>,
    /// From the start of the stage to the winning configuration (a DHCPv4 ACK, an IPv6
    /// address usable), and to the metadata service answering the probe.
    pub lease_ms: u64,
    pub reach_ms: u64,
    /// Every candidate, the winner included.
    pub nics: Vec<NicReport>,
}

/// One candidate NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NicReport {
    pub iface: String,
    /// When the link had carrier (operstate up), ms since the stage's start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier_ms: Option<u64>,
    /// What IPv4 gave it (`10.77.0.12/24 dhcp4`), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<AddrReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ra: Option<RaFlags>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ra_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp6: Option<Dhcp6Report>,
    /// When the NIC first had a usable global IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_ready_ms: Option<u64>,
    /// What became of it, in words (the failure line is made of these).
    pub fate: String,
}

/// What DHCPv6 gave a NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dhcp6Report {
    /// `stateful` (addresses, SOLICIT) or `stateless` (Information-Request).
    pub mode: &'static str,
    /// The server's DUID, hex.
    pub server_duid: String,
    /// The exchange was SOLICIT/REPLY (Rapid Commit).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rapid_commit: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<Ipv6Addr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// From the stage's start to the REPLY.
    pub ms: u64,
}

impl NicReport {
    /// What the initramfs learned of IPv6 here, as the booted system should configure it:
    /// DHCPv6 where the router's M flag (or `ip=dhcp6`) gave a stateful lease, else SLAAC
    /// (with DHCPv6 information when the O flag was set) where a router advertised.
    pub fn learned_ipv6(&self) -> Option<Addressing> {
        let stateful = self.dhcp6.as_ref().is_some_and(|d| d.mode == "stateful");
        match self.ra {
            Some(RaFlags { managed: true, .. }) => Some(Addressing::Dhcp6),
            _ if stateful => Some(Addressing::Dhcp6),
            Some(RaFlags { other, .. }) => Some(Addressing::Slaac { dhcp6_info: other }),
            None => None,
        }
    }
}

impl Dhcp6Report {
    pub fn new(mode: Mode, l: &Lease6, ms: u64) -> Dhcp6Report {
        Dhcp6Report {
            mode: match mode {
                Mode::Stateful { .. } => "stateful",
                Mode::Stateless => "stateless",
            },
            server_duid: l.server.to_hex(),
            rapid_commit: l.rapid_commit,
            dns: l.dns.clone(),
            domains: l.domains.clone(),
            ms,
        }
    }
}

impl LeaseReport {
    /// An empty report for a race over `candidates`.
    pub fn new(candidates: Vec<String>) -> LeaseReport {
        LeaseReport {
            iface: String::new(),
            mac: String::new(),
            family: "",
            method: "",
            address: String::new(),
            target: None,
            server: None,
            routes: Vec::new(),
            dns: Vec::new(),
            domain: None,
            domains: Vec::new(),
            hostname: None,
            mtu: None,
            lease_secs: None,
            option_245: None,
            candidates,
            lease_ms: 0,
            reach_ms: 0,
            nics: Vec::new(),
        }
    }

    /// Fills in a DHCPv4 lease's details.
    pub fn with_lease4(&mut self, lease: &Lease) {
        self.server = Some(lease.server);
        self.routes = lease
            .routes()
            .iter()
            .map(|(d, p, gw)| match gw {
                Some(g) => format!("{d}/{p} via {g}"),
                None => format!("{d}/{p} on-link"),
            })
            .collect();
        self.dns = lease.dns.iter().copied().map(IpAddr::V4).collect();
        self.domain = lease.domain.clone();
        self.hostname = lease.hostname.clone();
        self.mtu = lease.mtu.map(u32::from);
        self.lease_secs = lease.lease_secs;
        self.option_245 = lease.option_245;
    }

    /// Fills in a DHCPv6 lease's name servers and domains.
    pub fn with_lease6(&mut self, lease: &Lease6) {
        self.dns = lease.dns.iter().copied().map(IpAddr::V6).collect();
        self.domains = lease.domains.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_booted_system_learns() {
        let ra = |managed, other| {
            Some(RaFlags {
                managed,
                other,
                router: None,
            })
        };
        let nic = |ra: Option<RaFlags>, stateful: bool| NicReport {
            iface: "eth0".into(),
            carrier_ms: None,
            ipv4: None,
            ipv6: Vec::new(),
            ra,
            ra_ms: None,
            dhcp6: stateful.then(|| Dhcp6Report {
                mode: "stateful",
                server_duid: "0001".into(),
                rapid_commit: true,
                dns: Vec::new(),
                domains: Vec::new(),
                ms: 5,
            }),
            ipv6_ready_ms: None,
            fate: String::new(),
        };
        for (case, n, want) in [
            ("no RA", nic(None, false), None),
            (
                "RA, SLAAC",
                nic(ra(false, false), false),
                Some(Addressing::Slaac { dhcp6_info: false }),
            ),
            (
                "RA with O",
                nic(ra(false, true), false),
                Some(Addressing::Slaac { dhcp6_info: true }),
            ),
            (
                "RA with M",
                nic(ra(true, true), false),
                Some(Addressing::Dhcp6),
            ),
            ("ip=dhcp6, no RA", nic(None, true), Some(Addressing::Dhcp6)),
        ] {
            assert_eq!(n.learned_ipv6(), want, "case {case}");
        }
    }
}
