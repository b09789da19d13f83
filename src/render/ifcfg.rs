//! RHEL network-scripts: `etc/sysconfig/network-scripts/ifcfg-<name>` per configured link, and
//! `route-<name>` / `route6-<name>` for its other routes, as initscripts' `ifup-eth` and
//! NetworkManager's ifcfg-rh plugin read them (Atomic-era and RHEL ≤ 8 hosts).
//!
//! A physical NIC is matched by `HWADDR=` (initscripts look the device up by it, and
//! NetworkManager's ifcfg-rh plugin requires it to match) but also by `DEVICE=`, which
//! NetworkManager turns into `interface-name`, so the initramfs's name (`eth0`) must survive
//! into the booted system: each such NIC also gets a `.link` file pinning it
//! ([`super::name_pin`]).
//!
//! Keys follow initscripts' sysconfig.txt: `BOOTPROTO`, `IPADDR`/`NETMASK` (numbered from 1
//! for extra addresses), `GATEWAY`, `IPV6INIT`, `IPV6ADDR`, `IPV6ADDR_SECONDARIES`,
//! `IPV6_DEFAULTGW`, `DHCPV6C`, `IPV6_AUTOCONF`, `DNS1..`, `DOMAIN`, `MTU`, `HWADDR` (match)
//! and `MACADDR` (set, for virtual devices), bonds with `BONDING_OPTS`, members with
//! `MASTER`/`SLAVE` or `BRIDGE`, VLANs with `VLAN=yes`, `PHYSDEV`, `VLAN_ID`. Routes in other
//! tables switch `route-<name>` to its `ip route` argument form (`… table N`), and policy
//! rules go to `rule-<name>`/`rule6-<name>` (`ip rule` arguments), both read by `ifup-routes`.

use super::{dns_name, name_of, named_links, RenderError, RenderedFile, Renderer, HEADER};
use crate::context::{Addressing, Context, Link, LinkKind, Route};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

/// Directory of the files, relative to the root.
pub const DIR: &str = "etc/sysconfig/network-scripts";

pub struct Ifcfg;

impl Renderer for Ifcfg {
    fn name(&self) -> &'static str {
        "ifcfg"
    }

    fn render(&self, ctx: &Context) -> Result<Vec<RenderedFile>, RenderError> {
        let mut files = Vec::new();
        for (link, name) in named_links(ctx)? {
            files.push(file(format!("ifcfg-{name}"), ifcfg(ctx, link, name)?));
            let (v4, v6): (Vec<&Route>, Vec<&Route>) =
                link.routes.iter().partition(|r| !r.to.contains(':'));
            if !v4.is_empty() {
                // The ADDRESSn form cannot name a table; the ip-argument form can.
                let content = if v4.iter().any(|r| r.table.is_some()) {
                    ip_routes(&v4, name)
                } else {
                    route4(&v4, &link.id)?
                };
                files.push(file(format!("route-{name}"), content));
            }
            if !v6.is_empty() {
                files.push(file(format!("route6-{name}"), ip_routes(&v6, name)));
            }
            for (v6, prefix) in [(false, "rule"), (true, "rule6")] {
                let rules = rules(link, v6)?;
                if !rules.is_empty() {
                    files.push(file(format!("{prefix}-{name}"), rules));
                }
            }
        }
        // `DEVICE=` and the file name must match the NIC in the booted system: keep the
        // initramfs's names there (udev applies the pins; see the module doc of `render`).
        files.extend(super::name_pins(ctx)?);
        Ok(files)
    }
}

fn file(name: String, content: String) -> RenderedFile {
    RenderedFile {
        path: format!("{DIR}/{name}"),
        content,
        mode: 0o644,
    }
}

/// A value safe inside double quotes in a shell-sourced file: no quote, backslash, `$`,
/// backtick or control character.
fn quotable(value: &str, object: &str) -> Result<(), RenderError> {
    if value
        .chars()
        .all(|c| !c.is_control() && !matches!(c, '"' | '\\' | '$' | '`'))
    {
        Ok(())
    } else {
        Err(RenderError {
            object: object.to_string(),
            message: format!("value {value:?} cannot be written to a shell-sourced file"),
        })
    }
}

fn netmask(prefix: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

fn ifcfg(ctx: &Context, link: &Link, name: &str) -> Result<String, RenderError> {
    let mac = super::mac_of(link)?;
    let mut s = String::from(HEADER);
    let mut kv = |k: &str, v: &str| {
        let _ = if v.contains(' ') {
            writeln!(s, "{k}=\"{v}\"")
        } else {
            writeln!(s, "{k}={v}")
        };
    };
    kv("DEVICE", name);
    kv("ONBOOT", "yes");
    kv("USERCTL", "no");
    match &link.kind {
        LinkKind::Physical => {
            kv("TYPE", "Ethernet");
            if let Some(mac) = &mac {
                kv("HWADDR", mac);
            }
        }
        LinkKind::Bond {
            mode,
            options,
            members,
        } => {
            kv("TYPE", "Bond");
            kv("BONDING_MASTER", "yes");
            let mut opts = format!("mode={mode}");
            for (k, v) in options {
                let _ = write!(opts, " {k}={v}");
            }
            quotable(&opts, &link.id)?;
            kv("BONDING_OPTS", &opts);
            for (i, m) in members.iter().enumerate() {
                if let Some(member) = name_of(ctx, m) {
                    kv(&format!("BONDING_SLAVE{i}"), member);
                }
            }
        }
        LinkKind::Vlan { id, parent } => {
            let parent = name_of(ctx, parent).ok_or_else(|| RenderError {
                object: link.id.clone(),
                message: format!("VLAN parent {parent:?} is not configured on this host"),
            })?;
            kv("VLAN", "yes");
            kv("PHYSDEV", parent);
            kv("VLAN_ID", &id.to_string());
        }
        LinkKind::Bridge { options, .. } => {
            kv("TYPE", "Bridge");
            if let Some(stp) = options.get("stp") {
                let on = matches!(stp.as_str(), "true" | "yes" | "on" | "1");
                kv("STP", if on { "yes" } else { "no" });
            }
        }
    }
    if !matches!(link.kind, LinkKind::Physical) {
        if let Some(mac) = &mac {
            kv("MACADDR", mac);
        }
    }
    if let Some(mtu) = link.mtu {
        kv("MTU", &mtu.to_string());
    }
    for other in &ctx.network.links {
        match (&other.kind, other.name.as_deref()) {
            (LinkKind::Bond { members, .. }, Some(master)) if members.contains(&link.id) => {
                kv("MASTER", master);
                kv("SLAVE", "yes");
                kv("BOOTPROTO", "none");
                return Ok(s);
            }
            (LinkKind::Bridge { members, .. }, Some(bridge)) if members.contains(&link.id) => {
                kv("BRIDGE", bridge);
                kv("BOOTPROTO", "none");
                return Ok(s);
            }
            _ => {}
        }
    }

    let has = |f: fn(&Addressing) -> bool| link.addressing.iter().any(f);
    kv(
        "BOOTPROTO",
        if has(|a| matches!(a, Addressing::Dhcp4)) {
            "dhcp"
        } else {
            "none"
        },
    );
    let mut v4_index = 0usize;
    let mut v6: Vec<String> = Vec::new();
    let (mut gw4, mut gw6) = (None, None);
    for a in &link.addressing {
        if let Addressing::Static {
            address,
            prefix,
            gateway,
        } = a
        {
            match address {
                IpAddr::V4(_) => {
                    let n = if v4_index == 0 {
                        String::new()
                    } else {
                        v4_index.to_string()
                    };
                    kv(&format!("IPADDR{n}"), &address.to_string());
                    kv(&format!("NETMASK{n}"), &netmask(*prefix).to_string());
                    v4_index = v4_index.saturating_add(1);
                    gw4 = gw4.or(*gateway);
                }
                IpAddr::V6(_) => {
                    v6.push(format!("{address}/{prefix}"));
                    gw6 = gw6.or(*gateway);
                }
            }
        }
    }
    if let Some(gw) = gw4 {
        kv("GATEWAY", &gw.to_string());
        kv("DEFROUTE", "yes");
    }
    let dhcp6 = has(|a| matches!(a, Addressing::Dhcp6));
    let slaac = has(|a| matches!(a, Addressing::Slaac { .. }));
    // Stateless DHCPv6: addresses from RAs, other configuration (DNS) from DHCPv6 (`-S`).
    let stateless = has(|a| matches!(a, Addressing::Slaac { dhcp6_info: true }));
    if !v6.is_empty() || dhcp6 || slaac {
        kv("IPV6INIT", "yes");
        if let Some((first, rest)) = v6.split_first() {
            kv("IPV6ADDR", first);
            if !rest.is_empty() {
                kv("IPV6ADDR_SECONDARIES", &rest.join(" "));
            }
        }
        if dhcp6 || stateless {
            kv("DHCPV6C", "yes");
        }
        if stateless && !dhcp6 {
            kv("DHCPV6C_OPTIONS", "-S");
        }
        kv("IPV6_AUTOCONF", if slaac || dhcp6 { "yes" } else { "no" });
        if let Some(gw) = gw6 {
            kv("IPV6_DEFAULTGW", &gw.to_string());
        }
    }
    let mut servers = link.dns.nameservers.clone();
    let mut search = link.dns.search.clone();
    for ns in &ctx.network.dns.nameservers {
        if !servers.contains(ns) {
            servers.push(*ns);
        }
    }
    for d in &ctx.network.dns.search {
        if !search.contains(d) {
            search.push(d.clone());
        }
    }
    for (i, ns) in servers.iter().enumerate() {
        kv(&format!("DNS{}", i.saturating_add(1)), &ns.to_string());
    }
    for d in &search {
        dns_name(d, &link.id)?;
    }
    if !search.is_empty() {
        kv("DOMAIN", &search.join(" "));
    }
    Ok(s)
}

/// `route-<name>`: `ADDRESSn`, `NETMASKn`, `GATEWAYn`, `METRICn`.
fn route4(routes: &[&Route], object: &str) -> Result<String, RenderError> {
    let mut s = String::from(HEADER);
    for (i, r) in routes.iter().enumerate() {
        let (addr, prefix) =
            r.to.split_once('/')
                .and_then(|(a, p)| Some((a.parse::<Ipv4Addr>().ok()?, p.parse::<u8>().ok()?)))
                .filter(|(_, p)| *p <= 32)
                .ok_or_else(|| RenderError {
                    object: object.to_string(),
                    message: format!("route to {:?} is not an IPv4 prefix", r.to),
                })?;
        let _ = writeln!(s, "ADDRESS{i}={addr}\nNETMASK{i}={}", netmask(prefix));
        if let Some(via) = r.via {
            let _ = writeln!(s, "GATEWAY{i}={via}");
        }
        if let Some(m) = r.metric {
            let _ = writeln!(s, "METRIC{i}={m}");
        }
    }
    Ok(s)
}

/// `route6-<name>` (and `route-<name>` when a route names a table): `ip route` arguments,
/// one route a line.
fn ip_routes(routes: &[&Route], name: &str) -> String {
    let mut s = String::from(HEADER);
    for r in routes {
        let mut line = r.to.clone();
        if let Some(via) = r.via {
            let _ = write!(line, " via {via}");
        }
        if let Some(m) = r.metric {
            let _ = write!(line, " metric {m}");
        }
        if let Some(t) = r.table {
            let _ = write!(line, " table {t}");
        }
        let _ = writeln!(s, "{line} dev {name}");
    }
    s
}

/// `rule-<name>` / `rule6-<name>`: `ip rule` arguments for the link's rules of one family
/// (by the family of their `from`, else `to`).
fn rules(link: &Link, v6: bool) -> Result<String, RenderError> {
    let mut s = String::new();
    for rule in &link.rules {
        let end = rule.from.as_deref().or(rule.to.as_deref()).unwrap_or("");
        if end.contains(':') != v6 {
            continue;
        }
        let mut line = String::new();
        for (word, end) in [("from", &rule.from), ("to", &rule.to)] {
            if let Some(end) = end {
                quotable(end, &link.id)?;
                if end.contains(char::is_whitespace) {
                    return Err(RenderError {
                        object: link.id.clone(),
                        message: format!("rule end {end:?} is not an address"),
                    });
                }
                let _ = write!(line, "{word} {end} ");
            }
        }
        if let Some(p) = rule.priority {
            let _ = write!(line, "priority {p} ");
        }
        let _ = writeln!(s, "{line}table {}", rule.table);
    }
    if s.is_empty() {
        return Ok(s);
    }
    Ok(format!("{HEADER}{s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        for (p, want) in [
            (0u8, "0.0.0.0"),
            (8, "255.0.0.0"),
            (24, "255.255.255.0"),
            (29, "255.255.255.248"),
            (32, "255.255.255.255"),
        ] {
            assert_eq!(netmask(p).to_string(), want, "case /{p}");
        }
    }

    #[test]
    fn quoting_refuses_shell_metacharacters() {
        for bad in ["a\"b", "a$b", "a`b`", "a\\b", "a\nb"] {
            assert!(quotable(bad, "t").is_err(), "case {bad:?}");
        }
        assert!(quotable("mode=802.3ad miimon=100", "t").is_ok());
    }
}
