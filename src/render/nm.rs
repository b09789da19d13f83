//! NetworkManager keyfiles: one `preroot-<name>.nmconnection` per configured link in
//! `etc/NetworkManager/system-connections/`, mode 0600 as NetworkManager requires
//! (nm-settings-keyfile(5), nm-settings-nmcli(5)).
//!
//! A physical link with a MAC is matched by `[ethernet] mac-address=` and carries no
//! `interface-name=`: the booted system's udev names the NIC differently from the initramfs
//! (`enp0s2`, not `eth0`), and NetworkManager then binds the profile to whatever the NIC is
//! called. A VLAN on such a link names its parent by the parent profile's UUID, which
//! `vlan.parent` accepts as well as a name. Virtual links (bond, bridge, VLAN) are created by
//! NetworkManager under the name given, and links without a MAC are matched by name.
//!
//! Each connection gets a stable UUID derived from the interface identity ([`stable_uuid`]),
//! so rendering again replaces the profile instead of adding a duplicate. Bond and bridge
//! members are bound with `master=`/`slave-type=` (accepted by every NetworkManager since
//! 1.0; newer ones also read `controller=`/`port-type=`). Global name servers go onto every
//! link with an address method, as cloud-init does. Policy rules become `routing-ruleN`,
//! routes in other tables `routeN_options=table=N`.

use super::{named_links, RenderError, RenderedFile, Renderer};
use crate::context::{Addressing, Context, Link, LinkKind};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Directory of the files, relative to the root.
pub const DIR: &str = "etc/NetworkManager/system-connections";

pub struct NetworkManager;

impl Renderer for NetworkManager {
    fn render(&self, ctx: &Context) -> Result<Vec<RenderedFile>, RenderError> {
        let mut files = Vec::new();
        for (link, name) in named_links(ctx)? {
            files.push(RenderedFile {
                path: format!("{DIR}/preroot-{name}.nmconnection"),
                content: keyfile(ctx, link, name)?,
                mode: 0o600,
            });
        }
        Ok(files)
    }
}

/// 64-bit FNV-1a.
fn fnv1a(seed: u64, data: &[u8]) -> u64 {
    data.iter().fold(seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A UUID (RFC 9562 version 8, "custom") from two FNV-1a hashes of `preroot:<name>:<mac>`:
/// the same interface always gets the same connection UUID.
pub fn stable_uuid(name: &str, mac: Option<&str>) -> String {
    let key = format!("preroot:{name}:{}", mac.unwrap_or(""));
    let hi = fnv1a(0xcbf2_9ce4_8422_2325, key.as_bytes());
    let lo = fnv1a(0x6c62_272e_07bb_0142, key.as_bytes());
    // Version 8 in the top nibble of octet 6, variant 10 in the top bits of octet 8.
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_8000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// A bond option value NetworkManager takes as is: a plain token.
fn plain(value: &str, object: &str) -> Result<(), RenderError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'[' | b']' | b';' | b'#' | b'='));
    if ok {
        Ok(())
    } else {
        Err(RenderError {
            object: object.to_string(),
            message: format!("value {value:?} is not a plain token"),
        })
    }
}

/// Is the link's profile matched by MAC (a physical link with a MAC), not by name?
fn by_mac(link: &Link) -> bool {
    matches!(link.kind, LinkKind::Physical) && link.mac.is_some()
}

fn keyfile(ctx: &Context, link: &Link, name: &str) -> Result<String, RenderError> {
    let mut s = format!("{}\n", super::HEADER);
    let kind = match &link.kind {
        LinkKind::Physical => "ethernet",
        LinkKind::Bond { .. } => "bond",
        LinkKind::Vlan { .. } => "vlan",
        LinkKind::Bridge { .. } => "bridge",
    };
    let mac = super::mac_of(link)?;
    let _ = writeln!(
        s,
        "[connection]\nid=preroot {name}\nuuid={}\ntype={kind}",
        stable_uuid(name, link.mac.as_deref())
    );
    if !by_mac(link) {
        let _ = writeln!(s, "interface-name={name}");
    }
    let _ = writeln!(s, "autoconnect-priority=120");
    let mut member = false;
    for other in &ctx.network.links {
        let (slave_type, members) = match &other.kind {
            LinkKind::Bond { members, .. } => ("bond", members),
            LinkKind::Bridge { members, .. } => ("bridge", members),
            _ => continue,
        };
        if let (true, Some(master)) = (members.contains(&link.id), other.name.as_deref()) {
            let _ = writeln!(s, "master={master}\nslave-type={slave_type}");
            member = true;
        }
    }

    if matches!(link.kind, LinkKind::Physical) && (link.mac.is_some() || link.mtu.is_some()) {
        let _ = writeln!(s, "\n[ethernet]");
        if let Some(mac) = &mac {
            let _ = writeln!(s, "mac-address={}", mac.to_ascii_uppercase());
        }
        if let Some(mtu) = link.mtu {
            let _ = writeln!(s, "mtu={mtu}");
        }
    }
    match &link.kind {
        LinkKind::Bond { mode, options, .. } => {
            let mode = super::bond_mode(mode, &link.id)?;
            let _ = writeln!(s, "\n[bond]\nmode={mode}");
            for (k, v) in options {
                super::bond_option(k, v, &link.id)?;
                let _ = writeln!(s, "{k}={v}");
            }
        }
        LinkKind::Vlan { id, parent } => {
            let (plink, pname) = ctx
                .network
                .links
                .iter()
                .find(|l| &l.id == parent)
                .and_then(|l| Some((l, l.name.as_deref()?)))
                .ok_or_else(|| RenderError {
                    object: link.id.clone(),
                    message: format!("VLAN parent {parent:?} is not configured on this host"),
                })?;
            // A parent matched by MAC has no fixed name in the booted system: refer to its
            // profile instead.
            let parent = if by_mac(plink) {
                stable_uuid(pname, plink.mac.as_deref())
            } else {
                pname.to_string()
            };
            let _ = writeln!(s, "\n[vlan]\nid={id}\nparent={parent}");
        }
        LinkKind::Bridge { options, .. } => {
            let _ = writeln!(s, "\n[bridge]");
            if let Some(stp) = super::stp(options, &link.id)? {
                let _ = writeln!(s, "stp={stp}");
            }
        }
        LinkKind::Physical => {}
    }
    if matches!(
        link.kind,
        LinkKind::Bond { .. } | LinkKind::Vlan { .. } | LinkKind::Bridge { .. }
    ) {
        if let Some(mtu) = link.mtu {
            let _ = writeln!(s, "\n[ethernet]\nmtu={mtu}");
        }
    }
    if member {
        // A member only joins its master.
        return Ok(s);
    }
    for v4 in [true, false] {
        s.push_str(&ip_section(ctx, link, v4)?);
    }
    Ok(s)
}

fn ip_section(ctx: &Context, link: &Link, v4: bool) -> Result<String, RenderError> {
    let family = |a: &IpAddr| a.is_ipv4() == v4;
    let mut s = String::new();
    let dhcp = link.addressing.iter().any(|a| {
        matches!(
            (a, v4),
            (Addressing::Dhcp4, true) | (Addressing::Dhcp6, false)
        )
    });
    let slaac = !v4
        && link
            .addressing
            .iter()
            .any(|a| matches!(a, Addressing::Slaac { .. }));
    let statics: Vec<_> = link
        .addressing
        .iter()
        .filter_map(|a| match a {
            Addressing::Static {
                address,
                prefix,
                gateway,
            } if family(address) => Some((address, prefix, gateway)),
            _ => None,
        })
        .collect();
    // IPv6 `auto` is router advertisements plus DHCPv6 as they direct: `dhcp` alone would
    // ignore RAs and so have no default route (DHCPv6 carries none).
    let method = match (dhcp, slaac, statics.is_empty()) {
        (true, _, _) | (false, true, _) => "auto",
        (false, false, false) => "manual",
        (false, false, true) if v4 => "disabled",
        (false, false, true) => "ignore",
    };
    let _ = writeln!(
        s,
        "\n[{}]\nmethod={method}",
        if v4 { "ipv4" } else { "ipv6" }
    );
    if method == "disabled" || method == "ignore" {
        return Ok(s);
    }
    let _ = writeln!(s, "may-fail={}", if v4 { "false" } else { "true" });
    let mut gateway = None;
    for (i, (address, prefix, gw)) in statics.iter().enumerate() {
        let _ = writeln!(s, "address{}={address}/{prefix}", i.saturating_add(1));
        if gateway.is_none() {
            gateway = **gw;
        }
    }
    if let Some(gw) = gateway {
        let _ = writeln!(s, "gateway={gw}");
    }
    let routes = link.routes.iter().filter(|r| {
        r.to.split('/')
            .next()
            .and_then(|a| a.parse::<IpAddr>().ok())
            .is_some_and(|a| family(&a))
    });
    for (i, r) in routes.enumerate() {
        let n = i.saturating_add(1);
        let mut line = format!("route{n}={}", r.to);
        if let Some(via) = r.via {
            let _ = write!(line, ",{via}");
        }
        if let Some(metric) = r.metric {
            if r.via.is_none() {
                line.push(',');
            }
            let _ = write!(line, ",{metric}");
        }
        let _ = writeln!(s, "{line}");
        if let Some(table) = r.table {
            let _ = writeln!(s, "route{n}_options=table={table}");
        }
    }
    let rules = link.rules.iter().filter(|r| {
        [&r.from, &r.to].iter().any(|end| {
            end.as_deref()
                .and_then(|e| e.split('/').next())
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some_and(|a| family(&a))
        })
    });
    for (i, rule) in rules.enumerate() {
        let mut text = String::new();
        if let Some(p) = rule.priority {
            let _ = write!(text, "priority {p} ");
        }
        for (word, end) in [("from", &rule.from), ("to", &rule.to)] {
            if let Some(end) = end {
                plain(end, &link.id)?;
                let _ = write!(text, "{word} {end} ");
            }
        }
        let _ = writeln!(
            s,
            "routing-rule{}={text}table {}",
            i.saturating_add(1),
            rule.table
        );
    }
    let dns = super::link_dns(ctx, link)?;
    let mut servers = dns.nameservers;
    servers.retain(family);
    if !servers.is_empty() {
        let list: String = servers.iter().map(|a| format!("{a};")).collect();
        let _ = writeln!(s, "dns={list}");
    }
    // Search domains belong to the link, not a family; NetworkManager reads them from either
    // section, so they go with IPv4 (or IPv6 when the link has no IPv4).
    let has_v4 = link.addressing.iter().any(|a| match a {
        Addressing::Dhcp4 => true,
        Addressing::Static { address, .. } => address.is_ipv4(),
        _ => false,
    });
    if v4 == has_v4 && !dns.search.is_empty() {
        let list: String = dns.search.iter().map(|d| format!("{d};")).collect();
        let _ = writeln!(s, "dns-search={list}");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Access, Source, SourceKind};

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let a = stable_uuid("eth0", Some("52:54:00:00:00:01"));
        assert_eq!(a, stable_uuid("eth0", Some("52:54:00:00:00:01")));
        assert_ne!(a, stable_uuid("eth1", Some("52:54:00:00:00:01")));
        assert_ne!(a, stable_uuid("eth0", None));
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12], "{a}");
        assert!(a.as_bytes()[14] == b'8', "version 8: {a}");
        assert!(
            matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
            "variant: {a}"
        );
    }

    #[test]
    fn static_and_dhcp6_profile() {
        let mut ctx = Context::new(
            None,
            Source {
                kind: SourceKind::KernelCmdline,
                medium: Access::Cmdline,
                location: "t".into(),
                partition_of: None,
            },
        );
        let mut l = Link::new("x", LinkKind::Physical);
        l.name = Some("ens3".into());
        l.mac = Some("52:54:00:00:00:01".into());
        l.addressing.push(Addressing::Static {
            address: "10.0.0.5".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.0.0.1".parse().unwrap()),
        });
        l.addressing.push(Addressing::Dhcp6);
        ctx.network.links.push(l);
        ctx.network
            .dns
            .nameservers
            .push("10.0.0.53".parse().unwrap());
        let files = NetworkManager.render(&ctx).unwrap();
        assert_eq!(files[0].mode, 0o600);
        let text = &files[0].content;
        for want in [
            "type=ethernet\nautoconnect-priority=120\n",
            "mac-address=52:54:00:00:00:01",
            "[ipv4]\nmethod=manual\nmay-fail=false\naddress1=10.0.0.5/24\ngateway=10.0.0.1\ndns=10.0.0.53;",
            "[ipv6]\nmethod=auto",
        ] {
            assert!(text.contains(want), "lacks {want:?}:\n{text}");
        }
    }
}
