//! Debian ifupdown: one stanza file `etc/network/interfaces.d/50-preroot` that
//! `/etc/network/interfaces` sources (`source /etc/network/interfaces.d/*`, Debian's default),
//! following interfaces(5), with the options of ifenslave (`bond-*`), vlan
//! (`vlan-raw-device`), bridge-utils (`bridge_ports`) and resolvconf (`dns-*`).
//!
//! ifupdown matches interfaces by name only, and the names are the initramfs's (`eth0`); each
//! physical NIC with a MAC also gets a `.link` file that keeps that name in the booted system
//! ([`super::name_pin`]), where udev would otherwise rename it (`enp0s2`) and `auto eth0`
//! would configure nothing.
//!
//! Extra routes become `up ip route replace …` lines (ifupdown has no route stanza), so they
//! are idempotent on a re-up. Policy rules and other tables likewise (`ip rule add`,
//! `ip route … table N`).

use super::{name_of, named_links, RenderError, RenderedFile, Renderer};
use crate::context::{Addressing, Context, Link, LinkKind};
use std::fmt::Write as _;

/// The file, relative to the root.
pub const PATH: &str = "etc/network/interfaces.d/50-preroot";

pub struct Eni;

impl Renderer for Eni {
    fn render(&self, ctx: &Context) -> Result<Vec<RenderedFile>, RenderError> {
        let mut s = String::from(super::HEADER);
        let links = named_links(ctx)?;
        if links.is_empty() {
            return Ok(Vec::new());
        }
        for (link, name) in links {
            stanzas(&mut s, ctx, link, name)?;
        }
        let mut files = vec![RenderedFile {
            path: PATH.into(),
            content: s,
            mode: 0o644,
        }];
        // ifupdown knows interfaces only by name: keep the initramfs's names in the booted
        // system (udev applies the pins; see the module doc of `render`).
        files.extend(super::name_pins(ctx)?);
        Ok(files)
    }
}

fn plain(value: &str, object: &str) -> Result<(), RenderError> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        Ok(())
    } else {
        Err(RenderError {
            object: object.to_string(),
            message: format!("value {value:?} is not a plain token"),
        })
    }
}

fn stanzas(s: &mut String, ctx: &Context, link: &Link, name: &str) -> Result<(), RenderError> {
    // Options every stanza of this interface carries (on its first one).
    let common = link_options(ctx, link)?;
    let _ = writeln!(s, "\nauto {name}");
    if let Some(m) = master_of(ctx, link) {
        // A member comes up only to join its master.
        let _ = writeln!(s, "iface {name} inet manual");
        if !m.is_empty() {
            let _ = writeln!(s, "    {m}");
        }
        for o in &common {
            let _ = writeln!(s, "    {o}");
        }
        return Ok(());
    }
    let stanzas = methods(link);
    // DNS (resolvconf reads dns-* from the first stanza), routes and rules go on the first.
    let mut extra = common;
    extra.extend(dns_options(ctx, link)?);
    extra.extend(route_commands(link, name)?);
    for (i, (family, method, opts)) in stanzas.iter().enumerate() {
        let _ = writeln!(s, "iface {name} {family} {method}");
        for o in opts {
            let _ = writeln!(s, "    {o}");
        }
        if i == 0 {
            for o in &extra {
                let _ = writeln!(s, "    {o}");
            }
        }
    }
    Ok(())
}

/// The `bond-master` line of a bond member (empty for a bridge member, whose bridge names
/// it); `None` for a link that is nobody's member.
fn master_of(ctx: &Context, link: &Link) -> Option<String> {
    let mut master = None;
    for other in &ctx.network.links {
        match (&other.kind, other.name.as_deref()) {
            (LinkKind::Bond { members, .. }, Some(m)) if members.contains(&link.id) => {
                master = Some(format!("bond-master {m}"));
            }
            (LinkKind::Bridge { members, .. }, Some(_)) if members.contains(&link.id) => {
                master = Some(String::new());
            }
            _ => {}
        }
    }
    master
}

/// `a b c`, or `none` for no names.
fn names_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(" ")
    }
}

/// The options of the link itself: MTU, and its bond, VLAN or bridge settings.
fn link_options(ctx: &Context, link: &Link) -> Result<Vec<String>, RenderError> {
    let mut common: Vec<String> = Vec::new();
    if let Some(mtu) = link.mtu {
        common.push(format!("mtu {mtu}"));
    }
    match &link.kind {
        LinkKind::Physical => {}
        LinkKind::Bond {
            mode,
            members,
            options,
        } => {
            let names: Vec<&str> = members.iter().filter_map(|m| name_of(ctx, m)).collect();
            common.push(format!("bond-slaves {}", names_or_none(&names)));
            common.push(format!("bond-mode {}", super::bond_mode(mode, &link.id)?));
            for (k, v) in options {
                super::bond_option(k, v, &link.id)?;
                common.push(format!("bond-{} {v}", k.replace('_', "-")));
            }
            if let Some(mac) = super::mac_of(link)? {
                common.push(format!("hwaddress ether {mac}"));
            }
        }
        LinkKind::Vlan { parent, .. } => {
            let parent = name_of(ctx, parent).ok_or_else(|| RenderError {
                object: link.id.clone(),
                message: format!("VLAN parent {parent:?} is not configured on this host"),
            })?;
            common.push(format!("vlan-raw-device {parent}"));
        }
        LinkKind::Bridge { members, options } => {
            let names: Vec<&str> = members.iter().filter_map(|m| name_of(ctx, m)).collect();
            common.push(format!("bridge_ports {}", names_or_none(&names)));
            if let Some(on) = super::stp(options, &link.id)? {
                common.push(format!("bridge_stp {}", if on { "on" } else { "off" }));
            }
        }
    }
    Ok(common)
}

/// One `iface` stanza per addressing method: (family, method, options); `inet manual` when
/// there is none.
fn methods(link: &Link) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let mut stanzas: Vec<(&str, &str, Vec<String>)> = Vec::new();
    for a in &link.addressing {
        match a {
            Addressing::Dhcp4 => stanzas.push(("inet", "dhcp", Vec::new())),
            Addressing::Dhcp6 => stanzas.push(("inet6", "dhcp", Vec::new())),
            Addressing::Slaac { dhcp6_info } => {
                let opts = if *dhcp6_info {
                    vec!["dhcp 1".to_string()]
                } else {
                    Vec::new()
                };
                stanzas.push(("inet6", "auto", opts));
            }
            Addressing::Static {
                address,
                prefix,
                gateway,
            } => {
                let mut opts = vec![format!("address {address}/{prefix}")];
                if let Some(gw) = gateway {
                    opts.push(format!("gateway {gw}"));
                }
                let family = if address.is_ipv4() { "inet" } else { "inet6" };
                stanzas.push((family, "static", opts));
            }
        }
    }
    if stanzas.is_empty() {
        stanzas.push(("inet", "manual", Vec::new()));
    }
    stanzas
}

/// `dns-nameservers` and `dns-search`: the link's, then the global ones.
fn dns_options(ctx: &Context, link: &Link) -> Result<Vec<String>, RenderError> {
    let dns = super::link_dns(ctx, link)?;
    let mut out = Vec::new();
    if !dns.nameservers.is_empty() {
        let list: Vec<String> = dns.nameservers.iter().map(ToString::to_string).collect();
        out.push(format!("dns-nameservers {}", list.join(" ")));
    }
    if !dns.search.is_empty() {
        out.push(format!("dns-search {}", dns.search.join(" ")));
    }
    Ok(out)
}

/// `up ip route replace …` and `up ip rule add …` for the link's routes and rules.
fn route_commands(link: &Link, name: &str) -> Result<Vec<String>, RenderError> {
    let mut out = Vec::new();
    for r in &link.routes {
        plain(&r.to, &link.id)?;
        let family = if r.to.contains(':') { "-6 " } else { "" };
        let mut cmd = format!("up ip {family}route replace {}", r.to);
        if let Some(via) = r.via {
            let _ = write!(cmd, " via {via}");
        }
        if let Some(m) = r.metric {
            let _ = write!(cmd, " metric {m}");
        }
        if let Some(t) = r.table {
            let _ = write!(cmd, " table {t}");
        }
        let _ = write!(cmd, " dev {name}");
        out.push(cmd);
    }
    for rule in &link.rules {
        let mut cmd = String::from("up ip rule add");
        for (word, end) in [("from", &rule.from), ("to", &rule.to)] {
            if let Some(end) = end {
                plain(end, &link.id)?;
                let _ = write!(cmd, " {word} {end}");
            }
        }
        if let Some(p) = rule.priority {
            let _ = write!(cmd, " priority {p}");
        }
        let _ = write!(cmd, " table {}", rule.table);
        out.push(cmd);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Access, Route, Source, SourceKind};

    fn named(id: &str, name: &str, kind: LinkKind) -> Link {
        let mut l = Link::new(id, kind);
        l.name = Some(name.into());
        l
    }

    #[test]
    fn bond_vlan_static_and_routes() {
        let mut ctx = Context::new(
            None,
            Source {
                kind: SourceKind::KernelCmdline,
                medium: Access::Cmdline,
                location: "t".into(),
                partition_of: None,
            },
        );
        let mut bond = named(
            "bond0",
            "bond0",
            LinkKind::Bond {
                mode: "802.3ad".into(),
                members: vec!["p1".into(), "p2".into()],
                options: [("xmit_hash_policy".to_string(), "layer3+4".to_string())].into(),
            },
        );
        bond.addressing.push(Addressing::Static {
            address: "203.0.113.17".parse().unwrap(),
            prefix: 24,
            gateway: Some("203.0.113.1".parse().unwrap()),
        });
        bond.addressing.push(Addressing::Dhcp6);
        let mut vlan = named(
            "v",
            "bond0.40",
            LinkKind::Vlan {
                id: 40,
                parent: "bond0".into(),
            },
        );
        vlan.addressing.push(Addressing::Static {
            address: "10.40.0.17".parse().unwrap(),
            prefix: 16,
            gateway: None,
        });
        vlan.routes.push(Route {
            to: "10.41.0.0/16".into(),
            via: Some("10.40.0.1".parse().unwrap()),
            metric: None,
            table: None,
        });
        ctx.network.links = vec![
            named("p1", "eno1", LinkKind::Physical),
            named("p2", "eno2", LinkKind::Physical),
            bond,
            vlan,
        ];
        ctx.network
            .dns
            .nameservers
            .push("203.0.113.53".parse().unwrap());
        let files = Eni.render(&ctx).unwrap();
        let text = &files[0].content;
        for want in [
            "auto eno1\niface eno1 inet manual\n    bond-master bond0\n",
            "auto bond0\niface bond0 inet static\n    address 203.0.113.17/24\n    gateway 203.0.113.1\n    bond-slaves eno1 eno2\n    bond-mode 802.3ad\n    bond-xmit-hash-policy layer3+4\n    dns-nameservers 203.0.113.53\niface bond0 inet6 dhcp\n",
            "iface bond0.40 inet static\n    address 10.40.0.17/16\n    vlan-raw-device bond0\n",
            "    up ip route replace 10.41.0.0/16 via 10.40.0.1 dev bond0.40\n",
        ] {
            assert!(text.contains(want), "lacks {want:?}:\n{text}");
        }
    }
}
