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
//!
//! The files are sourced by `/bin/sh`: every value is written as one shell word by the one
//! writer ([`shell_word`], through `Vars::set`), whatever was checked before.

use super::{name_of, named_links, RenderError, RenderedFile, Renderer, HEADER};
use crate::context::{Addressing, Context, Link, LinkKind, Route};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

/// Directory of the files, relative to the root.
pub const DIR: &str = "etc/sysconfig/network-scripts";

pub struct Ifcfg;

impl Renderer for Ifcfg {
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

/// `value` as one shell word, for a file that is sourced by `/bin/sh` (initscripts) and read
/// line by line by NetworkManager's ifcfg-rh plugin: as it is when it holds only letters,
/// digits and `_ . : / @ % + , = -`; in double quotes when it also holds spaces; otherwise in
/// single quotes (a `'` written `'\''`), inside which the shell expands nothing. A control
/// character (a newline would end the line for NetworkManager) is refused.
pub fn shell_word(value: &str) -> Result<String, String> {
    if value.chars().any(char::is_control) {
        return Err(format!(
            "value \"{}\" holds a control character and cannot be one line of a shell-sourced file",
            crate::text::show(value)
        ));
    }
    let bare = |c: char| c.is_ascii_alphanumeric() || "_.:/@%+,=-".contains(c);
    if !value.is_empty() && value.chars().all(bare) {
        return Ok(value.to_string());
    }
    if value.chars().all(|c| bare(c) || c == ' ') {
        return Ok(format!("\"{value}\""));
    }
    Ok(format!("'{}'", value.replace('\'', "'\\''")))
}

fn netmask(prefix: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

fn ifcfg(ctx: &Context, link: &Link, name: &str) -> Result<String, RenderError> {
    let mac = super::mac_of(link)?;
    let mut v = Vars::new(&link.id);
    v.set("DEVICE", name);
    v.set("ONBOOT", "yes");
    v.set("USERCTL", "no");
    kind_vars(&mut v, ctx, link, mac.as_deref())?;
    if !matches!(link.kind, LinkKind::Physical) {
        if let Some(mac) = &mac {
            v.set("MACADDR", mac);
        }
    }
    if let Some(mtu) = link.mtu {
        v.set("MTU", &mtu.to_string());
    }
    for other in &ctx.network.links {
        match (&other.kind, other.name.as_deref()) {
            (LinkKind::Bond { members, .. }, Some(master)) if members.contains(&link.id) => {
                v.set("MASTER", master);
                v.set("SLAVE", "yes");
                v.set("BOOTPROTO", "none");
                return v.finish();
            }
            (LinkKind::Bridge { members, .. }, Some(bridge)) if members.contains(&link.id) => {
                v.set("BRIDGE", bridge);
                v.set("BOOTPROTO", "none");
                return v.finish();
            }
            _ => {}
        }
    }
    address_vars(&mut v, link);
    let dns = super::link_dns(ctx, link)?;
    for (i, ns) in dns.nameservers.iter().enumerate() {
        v.set(&format!("DNS{}", i.saturating_add(1)), &ns.to_string());
    }
    if !dns.search.is_empty() {
        v.set("DOMAIN", &dns.search.join(" "));
    }
    v.finish()
}

/// An ifcfg file's `KEY=value` lines, the one place values are written: every value as a
/// shell word ([`shell_word`]). A value that cannot be one is kept as the first error, which
/// [`Vars::finish`] returns.
struct Vars {
    text: String,
    object: String,
    refused: Option<RenderError>,
}

impl Vars {
    fn new(object: &str) -> Vars {
        Vars {
            text: String::from(HEADER),
            object: object.to_string(),
            refused: None,
        }
    }

    fn set(&mut self, k: &str, v: &str) {
        match shell_word(v) {
            Ok(word) => {
                let _ = writeln!(self.text, "{k}={word}");
            }
            Err(why) => {
                self.refused.get_or_insert(RenderError {
                    object: self.object.clone(),
                    message: format!("{k}: {why}"),
                });
            }
        }
    }

    fn finish(self) -> Result<String, RenderError> {
        match self.refused {
            Some(e) => Err(e),
            None => Ok(self.text),
        }
    }
}

/// What the link is: `TYPE`, `HWADDR`, bonding, VLAN and bridge settings.
fn kind_vars(
    v: &mut Vars,
    ctx: &Context,
    link: &Link,
    mac: Option<&str>,
) -> Result<(), RenderError> {
    match &link.kind {
        LinkKind::Physical => {
            v.set("TYPE", "Ethernet");
            if let Some(mac) = mac {
                v.set("HWADDR", mac);
            }
        }
        LinkKind::Bond {
            mode,
            options,
            members,
        } => {
            v.set("TYPE", "Bond");
            v.set("BONDING_MASTER", "yes");
            let mut opts = format!("mode={}", super::bond_mode(mode, &link.id)?);
            for (k, val) in options {
                super::bond_option(k, val, &link.id)?;
                let _ = write!(opts, " {k}={val}");
            }
            v.set("BONDING_OPTS", &opts);
            for (i, m) in members.iter().enumerate() {
                if let Some(member) = name_of(ctx, m) {
                    v.set(&format!("BONDING_SLAVE{i}"), member);
                }
            }
        }
        LinkKind::Vlan { id, parent } => {
            let parent = name_of(ctx, parent).ok_or_else(|| RenderError {
                object: link.id.clone(),
                message: format!("VLAN parent {parent:?} is not configured on this host"),
            })?;
            v.set("VLAN", "yes");
            v.set("PHYSDEV", parent);
            v.set("VLAN_ID", &id.to_string());
        }
        LinkKind::Bridge { options, .. } => {
            v.set("TYPE", "Bridge");
            if let Some(on) = super::stp(options, &link.id)? {
                v.set("STP", if on { "yes" } else { "no" });
            }
        }
    }
    Ok(())
}

/// `BOOTPROTO`, static IPv4 (`IPADDRn`, `NETMASKn`, `GATEWAY`) and IPv6 settings.
fn address_vars(v: &mut Vars, link: &Link) {
    let has = |f: fn(&Addressing) -> bool| link.addressing.iter().any(f);
    let dhcp4 = has(|a| matches!(a, Addressing::Dhcp4));
    v.set("BOOTPROTO", if dhcp4 { "dhcp" } else { "none" });
    let mut v4_index = 0usize;
    let mut v6: Vec<String> = Vec::new();
    let (mut gw4, mut gw6) = (None, None);
    for a in &link.addressing {
        let Addressing::Static {
            address,
            prefix,
            gateway,
        } = a
        else {
            continue;
        };
        match address {
            IpAddr::V4(_) => {
                let n = if v4_index == 0 {
                    String::new()
                } else {
                    v4_index.to_string()
                };
                v.set(&format!("IPADDR{n}"), &address.to_string());
                v.set(&format!("NETMASK{n}"), &netmask(*prefix).to_string());
                v4_index = v4_index.saturating_add(1);
                gw4 = gw4.or(*gateway);
            }
            IpAddr::V6(_) => {
                v6.push(format!("{address}/{prefix}"));
                gw6 = gw6.or(*gateway);
            }
        }
    }
    if let Some(gw) = gw4 {
        v.set("GATEWAY", &gw.to_string());
        v.set("DEFROUTE", "yes");
    }
    let dhcp6 = has(|a| matches!(a, Addressing::Dhcp6));
    let slaac = has(|a| matches!(a, Addressing::Slaac { .. }));
    // Stateless DHCPv6: addresses from RAs, other configuration (DNS) from DHCPv6 (`-S`).
    let stateless = has(|a| matches!(a, Addressing::Slaac { dhcp6_info: true }));
    if v6.is_empty() && !dhcp6 && !slaac {
        return;
    }
    v.set("IPV6INIT", "yes");
    if let Some((first, rest)) = v6.split_first() {
        v.set("IPV6ADDR", first);
        if !rest.is_empty() {
            v.set("IPV6ADDR_SECONDARIES", &rest.join(" "));
        }
    }
    if dhcp6 || stateless {
        v.set("DHCPV6C", "yes");
    }
    if stateless && !dhcp6 {
        v.set("DHCPV6C_OPTIONS", "-S");
    }
    v.set("IPV6_AUTOCONF", if slaac || dhcp6 { "yes" } else { "no" });
    if let Some(gw) = gw6 {
        v.set("IPV6_DEFAULTGW", &gw.to_string());
    }
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
                super::route_end(end, &link.id)?;
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
    fn every_value_is_one_shell_word() {
        for (value, want) in [
            ("eth0", "eth0"),
            ("mode=802.3ad", "mode=802.3ad"),
            ("mode=802.3ad miimon=100", "\"mode=802.3ad miimon=100\""),
            ("mode=x;{touch,/tmp/pwned}", "'mode=x;{touch,/tmp/pwned}'"),
            ("a$(reboot)`id`\"b\\", "'a$(reboot)`id`\"b\\'"),
            ("it's", "'it'\\''s'"),
            ("", "\"\""),
        ] {
            assert_eq!(shell_word(value).as_deref(), Ok(want), "case {value:?}");
        }
        for bad in ["a\nb", "a\rb", "a\0b"] {
            assert!(shell_word(bad).is_err(), "case {bad:?}");
        }
    }

    /// Issue 16 item 6: a bond mode with shell syntax in a hand-written context is refused
    /// by the renderer itself, and sourcing what ifcfg writes never runs anything.
    #[test]
    fn bond_mode_cannot_run_shell_code() {
        use crate::context::{Access, Source, SourceKind};
        let mut ctx = Context::new(
            None,
            Source {
                kind: SourceKind::KernelCmdline,
                medium: Access::Cmdline,
                location: "t".into(),
                partition_of: None,
            },
        );
        let mut bond = Link::new(
            "bond0",
            LinkKind::Bond {
                mode: "x;{touch,/tmp/pwned}".into(),
                members: vec![],
                options: Default::default(),
            },
        );
        bond.name = Some("bond0".into());
        ctx.network.links = vec![bond];
        let e = Ifcfg.render(&ctx).unwrap_err();
        assert!(e.message.contains("bonding mode"), "{e}");
        if let LinkKind::Bond { mode, options, .. } = &mut ctx.network.links[0].kind {
            *mode = "4".into();
            options.insert("miimon".into(), "100;reboot".into());
        }
        assert!(Ifcfg.render(&ctx).is_err(), "a bond option with ';'");
        if let LinkKind::Bond { options, .. } = &mut ctx.network.links[0].kind {
            options.insert("miimon".into(), "100".into());
        }
        let files = Ifcfg.render(&ctx).unwrap();
        assert!(
            files[0]
                .content
                .contains("BONDING_OPTS=\"mode=802.3ad miimon=100\"\n"),
            "{}",
            files[0].content
        );
    }
}
