//! One NIC's IPv6 in the race, as the kernel shows it (pure): its addresses and their
//! duplicate-address-detection state, the router advertisement's flags, and what we added
//! ourselves. The race (`race.rs`) feeds it dumps and asks it what is due: a Router
//! Solicitation, a DHCPv6 client (and in which mode), and which addresses can carry a probe.
//!
//! What we rely on the kernel for, once the link is up (`accept_ra`, `autoconf`, on by
//! default for a host): the link-local address and its DAD, processing router advertisements
//! (RFC 4861), SLAAC addresses from their prefixes (RFC 4862), the on-link prefix routes and
//! the default route via the router. The RA's M and O flags are read back from the link's
//! `IFLA_INET6_FLAGS` (`IF_RA_MANAGED`, `IF_RA_OTHERCONF`), never parsed from the RA. What is
//! ours: a Router Solicitation as soon as an (optimistic) link-local address exists, since
//! the kernel sends its own only after DAD; the DHCPv6 client (`dhcp6/`) and the addresses it
//! leases (a /128 each, RFC 8415 section 21.6: the prefix comes from the RA); static `ip=`
//! addresses. Never does: I/O, RA parsing, DHCPv6 on its own when neither `ip=dhcp6` nor the
//! RA asks for it (a network without an RA is taken to have no IPv6 router).

use super::rtnl::{Addr6, AddrSpec, IF_RA_MANAGED, IF_RA_OTHERCONF, IF_RA_RCVD};
use super::select::V6Plan;
use super::sysctl::Ipv6Conf;
use crate::dhcp6::client::{Lease6, Mode};
use serde::Serialize;
use std::net::{IpAddr, Ipv6Addr};

/// Router Solicitations of ours at most (RFC 4861 MAX_RTR_SOLICITATIONS).
const RS_MAX: u32 = 3;
/// The first gap between them, doubled each time (ms).
const RS_GAP_MS: u64 = 300;

/// How an IPv6 address came to the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    LinkLocal,
    /// The kernel made it from a router advertisement's prefix.
    Slaac,
    /// Leased by DHCPv6 and added by us.
    Dhcp6,
    /// From `ip=`, added by us.
    Static,
    /// There before the stage (configured by someone else).
    Existing,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::LinkLocal => "link-local",
            Origin::Slaac => "slaac",
            Origin::Dhcp6 => "dhcp6",
            Origin::Static => "static",
            Origin::Existing => "existing",
        }
    }
}

/// One address in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddrReport {
    pub address: String,
    pub origin: Origin,
    /// Still in duplicate address detection (optimistic or tentative) when recorded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tentative: bool,
}

/// The router advertisement's flags, as the kernel took them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RaFlags {
    /// M: addresses from DHCPv6.
    pub managed: bool,
    /// O: other configuration (DNS) from DHCPv6.
    pub other: bool,
    /// The router, when it offered itself as the default router.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<Ipv6Addr>,
}

/// One NIC's IPv6 state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic6 {
    pub plan: V6Plan,
    pub conf: Ipv6Conf,
    /// The NIC's IPv6 addresses at the last dump.
    pub addrs: Vec<Addr6>,
    /// `IF_RA_*` at the last dump.
    pub flags: u32,
    /// The gateway of a default route the kernel took from an RA, at the last dump.
    pub router: Option<Ipv6Addr>,
    /// Addresses there before the stage started (not ours, not the kernel's doing now).
    pub existing: Vec<Ipv6Addr>,
    /// What we added (DHCPv6, static), to report and to remove.
    pub added: Vec<(AddrSpec, Origin)>,
    /// Router Solicitations we sent, and when (ms) the next may go.
    pub rs_sent: u32,
    pub rs_next_ms: u64,
    /// The DHCPv6 mode started, if any.
    pub dhcp6: Option<Mode>,
    pub lease: Option<Lease6>,
    /// Milliseconds from the stage's start: the RA, the DHCPv6 REPLY, the first usable
    /// global address.
    pub ra_ms: Option<u64>,
    pub dhcp6_ms: Option<u64>,
    pub ready_ms: Option<u64>,
    /// The last DHCPv6 client state or error, for the fate line.
    pub dhcp6_note: Option<String>,
}

impl Nic6 {
    pub fn new(plan: V6Plan, conf: Ipv6Conf) -> Nic6 {
        Nic6 {
            plan,
            conf,
            addrs: Vec::new(),
            flags: 0,
            router: None,
            existing: Vec::new(),
            added: Vec::new(),
            rs_sent: 0,
            rs_next_ms: 0,
            dhcp6: None,
            lease: None,
            ra_ms: None,
            dhcp6_ms: None,
            ready_ms: None,
            dhcp6_note: None,
        }
    }

    /// Takes a dump's view of this NIC (`addrs` already filtered to it; `router`, the
    /// gateway of its default route from an RA), at `ms`.
    pub fn observe(&mut self, addrs: Vec<Addr6>, flags: u32, router: Option<Ipv6Addr>, ms: u64) {
        self.addrs = addrs;
        self.flags = flags;
        self.router = router;
        if self.ra().is_some() && self.ra_ms.is_none() {
            self.ra_ms = Some(ms);
        }
        if self.global().is_some() && self.ready_ms.is_none() {
            self.ready_ms = Some(ms);
        }
    }

    /// The RA's flags, once one came. The kernel sets `IF_RA_RCVD` only for an RA that
    /// follows its own solicitation, and ours comes first: an RA is also known by its M or
    /// O flag, a default route it gave, or a SLAAC address made from it.
    pub fn ra(&self) -> Option<RaFlags> {
        let slaac = self.addrs.iter().any(|a| {
            !a.link_local()
                && !self.existing.contains(&a.address)
                && !self
                    .added
                    .iter()
                    .any(|(s, _)| s.address == IpAddr::V6(a.address))
        });
        let seen = self.flags & (IF_RA_RCVD | IF_RA_MANAGED | IF_RA_OTHERCONF) != 0
            || self.router.is_some()
            || slaac;
        seen.then_some(RaFlags {
            managed: self.flags & IF_RA_MANAGED != 0,
            other: self.flags & IF_RA_OTHERCONF != 0,
            router: self.router,
        })
    }

    /// A link-local address usable as a source now.
    pub fn link_local(&self) -> Option<&Addr6> {
        self.addrs
            .iter()
            .find(|a| a.link_local() && a.usable(self.conf.optimistic))
    }

    /// Can the kernel resolve neighbours on this link now? Not before the link-local address
    /// has finished DAD: a neighbour solicitation never leaves from an optimistic or
    /// tentative address (RFC 4429 section 3.3; Linux `ndisc_send_ns` then sends none at
    /// all and waits for its next retransmission, a second later).
    pub fn can_solicit(&self) -> bool {
        self.addrs.iter().any(|a| a.link_local() && a.usable(false))
    }

    /// Can a probe to a link-local address, or through this NIC's routes, get its first
    /// packet out now? A link-local target needs a neighbour solicitation; a global one
    /// goes via the router, whose link-layer address came with its RA, or else (a static
    /// gateway, an on-link prefix) needs a solicitation too.
    pub fn can_reach(&self, link_local_target: bool) -> bool {
        if link_local_target {
            return self.link_local().is_some() && self.can_solicit();
        }
        self.global().is_some() && (self.router.is_some() || self.can_solicit())
    }

    /// A global (or unique-local) address usable as a source now.
    pub fn global(&self) -> Option<&Addr6> {
        self.addrs
            .iter()
            .find(|a| !a.link_local() && a.usable(self.conf.optimistic))
    }

    /// Send a Router Solicitation of ours now (`ms` since the start)? When the plan wants
    /// the RA and none came yet, as soon as a link-local address can be its source, and
    /// again after 300 and 600 ms: RFC 4861's MAX_RTR_SOLICITATIONS (3), closer together
    /// than its 4 s interval because the kernel's own solicitations go on at that pace
    /// after DAD, and a first packet on a link that just came up is the likeliest lost.
    pub fn rs_due(&self, ms: u64) -> bool {
        self.plan != V6Plan::Kernel
            && self.rs_sent < RS_MAX
            && ms >= self.rs_next_ms
            && !self.conf.disabled
            && !self.conf.ra_ignored
            && self.ra().is_none()
            && self.link_local().is_some()
    }

    /// When the next of our solicitations is due (ms), while one may be.
    pub fn rs_next(&self) -> Option<u64> {
        (self.plan != V6Plan::Kernel
            && self.rs_sent > 0
            && self.rs_sent < RS_MAX
            && self.ra().is_none())
        .then_some(self.rs_next_ms)
    }

    /// Notes a solicitation sent at `ms`.
    pub fn rs_done(&mut self, ms: u64) {
        self.rs_sent = self.rs_sent.saturating_add(1);
        let gap = RS_GAP_MS
            .checked_shl(self.rs_sent.saturating_sub(1))
            .unwrap_or(u64::MAX);
        self.rs_next_ms = ms.saturating_add(gap);
    }

    /// The DHCPv6 mode to start now, if any: `ip=dhcp6` at once; else as the RA's flags
    /// ask (M: stateful, with Rapid Commit; O alone: Information-Request). Needs a usable
    /// link-local source address; started once.
    pub fn dhcp6_due(&self) -> Option<Mode> {
        if self.dhcp6.is_some() || self.conf.disabled || self.link_local().is_none() {
            return None;
        }
        let stateful = Mode::Stateful { rapid_commit: true };
        match self.plan {
            V6Plan::Kernel => None,
            V6Plan::Dhcp6 => Some(stateful),
            V6Plan::Ra => match self.ra()? {
                RaFlags { managed: true, .. } => Some(stateful),
                RaFlags { other: true, .. } => Some(Mode::Stateless),
                _ => None,
            },
        }
    }

    fn origin(&self, a: &Addr6) -> Origin {
        if let Some((_, o)) = self
            .added
            .iter()
            .find(|(s, _)| s.address == IpAddr::V6(a.address))
        {
            return *o;
        }
        if a.link_local() {
            Origin::LinkLocal
        } else if self.existing.contains(&a.address) {
            Origin::Existing
        } else {
            Origin::Slaac
        }
    }

    /// The addresses to report, link-local first, at most `cap`.
    pub fn report(&self) -> Vec<AddrReport> {
        let mut out: Vec<AddrReport> = self
            .addrs
            .iter()
            .map(|a| AddrReport {
                address: format!("{}/{}", a.address, a.prefix),
                origin: self.origin(a),
                tentative: a.flags & super::rtnl::IFA_F_TENTATIVE != 0,
            })
            .collect();
        out.sort_by_key(|r| r.origin != Origin::LinkLocal);
        if let Some(cut) = crate::caps::ADDRESSES.truncate(&mut out) {
            log::warn!("net: IPv6 addresses: {cut}");
        }
        out
    }

    /// The origin of the first usable global address (what a win over IPv6 came by).
    pub fn global_origin(&self) -> Option<Origin> {
        self.global().map(|a| self.origin(a))
    }

    /// What became of IPv6 on this NIC, in a few words, for the one failure line.
    pub fn fate(&self) -> String {
        if self.conf.disabled {
            return "IPv6 disabled (disable_ipv6)".into();
        }
        let mut parts = Vec::new();
        match self.addrs.iter().find(|a| a.link_local()) {
            None => parts.push("no link-local address yet".to_string()),
            Some(a) if a.flags & super::rtnl::IFA_F_DADFAILED != 0 => {
                parts.push(format!("link-local {} failed DAD", a.address))
            }
            Some(a) if !a.usable(self.conf.optimistic) => {
                parts.push(format!("link-local {} still in DAD", a.address))
            }
            Some(_) => {}
        }
        match self.ra() {
            None if self.conf.ra_ignored => parts.push("RAs ignored (accept_ra)".into()),
            None => parts.push("no router advertisement".into()),
            Some(f) => parts.push(format!(
                "RA{}{}",
                if f.managed { " M" } else { "" },
                if f.other { " O" } else { "" }
            )),
        }
        if let Some(note) = &self.dhcp6_note {
            parts.push(note.clone());
        }
        match self.global() {
            Some(a) => parts.push(format!("{} ({})", a.address, self.origin(a).name())),
            None if self.ra().is_some() && self.dhcp6_note.is_none() => {
                parts.push("no global address".into())
            }
            None => {}
        }
        format!("IPv6: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::rtnl::{IFA_F_DADFAILED, IFA_F_OPTIMISTIC, IFA_F_TENTATIVE};

    fn addr(a: &str, scope: u8, flags: u32) -> Addr6 {
        Addr6 {
            ifindex: 2,
            address: a.parse().unwrap(),
            prefix: 64,
            flags,
            scope,
        }
    }

    fn conf(optimistic: bool) -> Ipv6Conf {
        Ipv6Conf {
            optimistic,
            ..Ipv6Conf::default()
        }
    }

    const OPT: u32 = IFA_F_OPTIMISTIC | IFA_F_TENTATIVE;

    #[test]
    fn what_is_due() {
        let ll_opt = addr("fe80::1", 253, OPT);
        let ll_ok = addr("fe80::1", 253, 0);
        let rcvd = IF_RA_RCVD;
        let stateful = Some(Mode::Stateful { rapid_commit: true });
        for (case, plan, optimistic, addrs, flags, rs, dhcp6) in [
            ("no address yet", V6Plan::Ra, true, vec![], 0, false, None),
            (
                "optimistic link-local: RS at once",
                V6Plan::Ra,
                true,
                vec![ll_opt],
                0,
                true,
                None,
            ),
            (
                "tentative, optimism off: wait for DAD",
                V6Plan::Ra,
                false,
                vec![ll_opt],
                0,
                false,
                None,
            ),
            (
                "RA without M/O",
                V6Plan::Ra,
                true,
                vec![ll_ok],
                rcvd,
                false,
                None,
            ),
            (
                "RA with M",
                V6Plan::Ra,
                true,
                vec![ll_ok],
                rcvd | IF_RA_MANAGED,
                false,
                stateful,
            ),
            (
                "RA with M and O",
                V6Plan::Ra,
                true,
                vec![ll_ok],
                rcvd | IF_RA_MANAGED | IF_RA_OTHERCONF,
                false,
                stateful,
            ),
            (
                "RA with O",
                V6Plan::Ra,
                true,
                vec![ll_ok],
                rcvd | IF_RA_OTHERCONF,
                false,
                Some(Mode::Stateless),
            ),
            (
                "ip=dhcp6: at once",
                V6Plan::Dhcp6,
                true,
                vec![ll_opt],
                0,
                true,
                stateful,
            ),
            (
                "ip=dhcp: the kernel alone",
                V6Plan::Kernel,
                true,
                vec![ll_ok],
                rcvd | IF_RA_MANAGED,
                false,
                None,
            ),
        ] {
            let mut n = Nic6::new(plan, conf(optimistic));
            n.observe(addrs, flags, None, 5);
            assert_eq!(n.rs_due(5), rs, "case {case}: RS");
            assert_eq!(n.dhcp6_due(), dhcp6, "case {case}: DHCPv6");
        }
    }

    #[test]
    fn solicitations_are_resent_then_stop() {
        let mut n = Nic6::new(V6Plan::Ra, conf(true));
        n.observe(vec![addr("fe80::1", 253, OPT)], 0, None, 0);
        let mut sent = Vec::new();
        for ms in (0..3000).step_by(50) {
            if n.rs_due(ms) {
                n.rs_done(ms);
                sent.push(ms);
            }
        }
        assert_eq!(sent, [0, 300, 900], "three, 300 ms then 600 ms apart");
        assert_eq!(n.rs_next(), None, "none after the third");
        let mut n = Nic6::new(V6Plan::Ra, conf(true));
        n.observe(vec![addr("fe80::1", 253, OPT)], 0, None, 0);
        n.rs_done(0);
        assert_eq!(n.rs_next(), Some(300));
        n.observe(vec![addr("fe80::1", 253, OPT)], IF_RA_OTHERCONF, None, 10);
        assert_eq!((n.rs_next(), n.rs_due(400)), (None, false), "an RA came");
    }

    #[test]
    fn usable_globals_and_origins() {
        let mut n = Nic6::new(V6Plan::Ra, conf(false));
        n.existing.push("2001:db8::9".parse().unwrap());
        n.observe(
            vec![
                addr("fe80::1", 253, 0),
                addr("fd77::1", 0, OPT),
                addr("fd77::2", 0, IFA_F_TENTATIVE | IFA_F_DADFAILED),
            ],
            IF_RA_RCVD,
            None,
            10,
        );
        assert_eq!(n.global(), None, "case tentative without optimism");
        assert_eq!(n.ready_ms, None);
        assert_eq!(n.ra_ms, Some(10));
        n.conf.optimistic = true;
        n.observe(n.addrs.clone(), IF_RA_RCVD, None, 20);
        assert_eq!(
            n.global().map(|a| a.address.to_string()),
            Some("fd77::1".into()),
            "case optimistic"
        );
        assert_eq!(n.ready_ms, Some(20));
        n.added.push((
            AddrSpec {
                ifindex: 2,
                address: "fd77::100".parse().unwrap(),
                prefix: 128,
                flags: 0,
                lifetimes: None,
            },
            Origin::Dhcp6,
        ));
        n.observe(
            vec![
                addr("fd77::100", 0, 0),
                addr("2001:db8::9", 0, 0),
                addr("fe80::1", 253, 0),
            ],
            IF_RA_RCVD,
            None,
            30,
        );
        let origins: Vec<(String, Origin)> = n
            .report()
            .into_iter()
            .map(|r| (r.address, r.origin))
            .collect();
        assert_eq!(
            origins,
            [
                ("fe80::1/64".to_string(), Origin::LinkLocal),
                ("fd77::100/64".to_string(), Origin::Dhcp6),
                ("2001:db8::9/64".to_string(), Origin::Existing),
            ]
        );
    }

    #[test]
    fn fates() {
        let mut n = Nic6::new(V6Plan::Ra, conf(true));
        assert_eq!(
            n.fate(),
            "IPv6: no link-local address yet, no router advertisement"
        );
        n.observe(vec![addr("fe80::1", 253, OPT)], 0, None, 1);
        assert_eq!(n.fate(), "IPv6: no router advertisement");
        n.conf.disabled = true;
        assert_eq!(n.fate(), "IPv6 disabled (disable_ipv6)");
        let mut n = Nic6::new(V6Plan::Ra, conf(false));
        n.observe(
            vec![addr("fe80::1", 253, IFA_F_TENTATIVE)],
            IF_RA_RCVD | IF_RA_MANAGED,
            None,
            1,
        );
        n.dhcp6_note = Some("DHCPv6 soliciting: 3 SOLICIT".into());
        assert_eq!(
            n.fate(),
            "IPv6: link-local fe80::1 still in DAD, RA M, DHCPv6 soliciting: 3 SOLICIT"
        );
    }
}
