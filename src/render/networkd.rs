//! systemd-networkd: one `10-preroot-<name>.network` per configured link, and a
//! `10-preroot-<name>.netdev` for each bond, VLAN and bridge (systemd.network(5),
//! systemd.netdev(5)).
//!
//! Global name servers and search domains go onto every link that has an address method, as
//! networkd has no global DNS of its own outside resolved.conf (cloud-init does the same).
//! Members of a bond or bridge carry `Bond=`/`Bridge=` and no addressing; a VLAN's parent
//! carries `VLAN=`. Bond options are mapped to their `[Bond]` keys; an option networkd has no
//! key for is refused rather than dropped silently.

use super::{dns_name, name_of, named_links, RenderError, RenderedFile, Renderer, HEADER};
use crate::context::{Addressing, Context, Link, LinkKind};
use std::fmt::Write as _;

/// Directory of the files, relative to the root.
pub const DIR: &str = super::LINK_DIR;

pub struct Networkd;

impl Renderer for Networkd {
    fn render(&self, ctx: &Context) -> Result<Vec<RenderedFile>, RenderError> {
        let links = named_links(ctx)?;
        let mut files = Vec::new();
        for (link, name) in &links {
            // The booted system's udev would give the NIC another name than the initramfs
            // saw (`eth0` here, `enp0s2` there); pin the name the files use to the MAC.
            files.extend(super::name_pin(link, name)?);
            if let Some(netdev) = netdev(link, name)? {
                files.push(file(name, "netdev", netdev));
            }
            files.push(file(name, "network", network(ctx, link, name)?));
        }
        Ok(files)
    }
}

fn file(name: &str, ext: &str, content: String) -> RenderedFile {
    RenderedFile {
        path: format!("{DIR}/10-preroot-{name}.{ext}"),
        content,
        mode: 0o644,
    }
}

/// `[Bond]` key for a bond option (kernel sysfs name), and how to convert its value.
fn bond_key(option: &str, value: &str) -> Option<(&'static str, String)> {
    let ms = |v: &str| format!("{v}ms");
    Some(match option {
        "miimon" => ("MIIMonitorSec", ms(value)),
        "updelay" => ("UpDelaySec", ms(value)),
        "downdelay" => ("DownDelaySec", ms(value)),
        "arp_interval" => ("ARPIntervalSec", ms(value)),
        "xmit_hash_policy" => ("TransmitHashPolicy", value.to_string()),
        "lacp_rate" => ("LACPTransmitRate", value.to_string()),
        "ad_select" => ("AdSelect", value.to_string()),
        "fail_over_mac" => ("FailOverMACPolicy", value.to_string()),
        "arp_validate" => ("ARPValidate", value.to_string()),
        "arp_all_targets" => ("ARPAllTargets", value.to_string()),
        "arp_ip_target" => ("ARPIPTargets", value.replace(',', " ")),
        "primary_reselect" => ("PrimaryReselectPolicy", value.to_string()),
        "resend_igmp" => ("ResendIGMP", value.to_string()),
        "num_grat_arp" | "num_unsol_na" => ("GratuitousARP", value.to_string()),
        "all_slaves_active" => ("AllSlavesActive", value.to_string()),
        "min_links" => ("MinLinks", value.to_string()),
        "lp_interval" => ("LearnPacketIntervalSec", value.to_string()),
        "packets_per_slave" => ("PacketsPerSlave", value.to_string()),
        _ => return None,
    })
}

/// Drops each bond option systemd-networkd has no `[Bond]` setting for (`bond_key`), one
/// error each, so that [`super::checked`] writes the bond without it rather than no bond.
pub fn drop_unmapped_options(ctx: &mut Context) -> Vec<RenderError> {
    let mut out = Vec::new();
    for link in &mut ctx.network.links {
        if let LinkKind::Bond { options, .. } = &mut link.kind {
            options.retain(|k, v| {
                let keep = k == "primary" || bond_key(k, v).is_some();
                if !keep {
                    out.push(RenderError {
                        object: format!("{}: bond option {k}", link.id),
                        message: "systemd-networkd has no setting for this bond option; dropped"
                            .into(),
                    });
                }
                keep
            });
        }
    }
    out
}

fn netdev(link: &Link, name: &str) -> Result<Option<String>, RenderError> {
    let mut s = String::from(HEADER);
    let kind = match &link.kind {
        LinkKind::Physical => return Ok(None),
        LinkKind::Bond { .. } => "bond",
        LinkKind::Vlan { .. } => "vlan",
        LinkKind::Bridge { .. } => "bridge",
    };
    let _ = writeln!(s, "[NetDev]\nName={name}\nKind={kind}");
    if let Some(mac) = super::mac_of(link)? {
        let _ = writeln!(s, "MACAddress={mac}");
    }
    if let Some(mtu) = link.mtu {
        let _ = writeln!(s, "MTUBytes={mtu}");
    }
    match &link.kind {
        LinkKind::Bond { mode, options, .. } => {
            let mode = super::bond_mode(mode, &link.id)?;
            let _ = writeln!(s, "\n[Bond]\nMode={mode}");
            // `primary` names a member interface and belongs on the member's .network.
            for (option, value) in options.iter().filter(|(o, _)| o.as_str() != "primary") {
                let object = format!("{}: bond option {option}", link.id);
                super::bond_option(option, value, &link.id)?;
                let (key, value) = bond_key(option, value).ok_or_else(|| RenderError {
                    object,
                    message: "systemd-networkd has no setting for this bond option".into(),
                })?;
                let _ = writeln!(s, "{key}={value}");
            }
        }
        LinkKind::Vlan { id, .. } => {
            let _ = writeln!(s, "\n[VLAN]\nId={id}");
        }
        LinkKind::Bridge { options, .. } => {
            if let Some(stp) = super::stp(options, &link.id)? {
                let _ = writeln!(s, "\n[Bridge]\nSTP={}", if stp { "yes" } else { "no" });
            }
        }
        LinkKind::Physical => {}
    }
    Ok(Some(s))
}

fn network(ctx: &Context, link: &Link, name: &str) -> Result<String, RenderError> {
    let mut s = String::from(HEADER);
    let _ = writeln!(s, "[Match]\nName={name}");
    if let (LinkKind::Physical, Some(mac)) = (&link.kind, super::mac_of(link)?) {
        let _ = writeln!(s, "MACAddress={mac}");
    }
    if let (LinkKind::Physical, Some(mtu)) = (&link.kind, link.mtu) {
        let _ = writeln!(s, "\n[Link]\nMTUBytes={mtu}");
    }

    let mut net = String::new();
    // Membership: a bond or bridge member carries no addressing of its own.
    let mut member = false;
    for other in &ctx.network.links {
        match &other.kind {
            LinkKind::Bond {
                members, options, ..
            } if members.contains(&link.id) => {
                if let Some(master) = other.name.as_deref() {
                    let _ = writeln!(net, "Bond={master}");
                    if options.get("primary").map(String::as_str) == Some(name) {
                        let _ = writeln!(net, "PrimarySlave=yes");
                    }
                    member = true;
                }
            }
            LinkKind::Bridge { members, .. } if members.contains(&link.id) => {
                if let Some(master) = other.name.as_deref() {
                    let _ = writeln!(net, "Bridge={master}");
                    member = true;
                }
            }
            LinkKind::Vlan { parent, .. } if parent == &link.id => {
                if let Some(vlan) = other.name.as_deref() {
                    let _ = writeln!(net, "VLAN={vlan}");
                }
            }
            _ => {}
        }
    }

    let has = |f: fn(&Addressing) -> bool| link.addressing.iter().any(f);
    let dhcp4 = has(|a| matches!(a, Addressing::Dhcp4));
    let dhcp6 = has(|a| matches!(a, Addressing::Dhcp6));
    let dhcp = match (dhcp4, dhcp6) {
        (true, true) => "yes",
        (true, false) => "ipv4",
        (false, true) => "ipv6",
        (false, false) => "no",
    };
    let _ = writeln!(net, "DHCP={dhcp}");
    if has(|a| matches!(a, Addressing::Slaac { .. })) {
        let _ = writeln!(net, "IPv6AcceptRA=yes");
    }
    if member && link.addressing.is_empty() {
        // A member only joins its master; it takes no link-local address of its own.
        let _ = writeln!(net, "LinkLocalAddressing=no");
    }

    // DNS: the link's own, then the global ones (a member, which only joins its master,
    // gets none of the global ones).
    let dns = if member {
        for d in &link.dns.search {
            dns_name(d, &link.id)?;
        }
        link.dns.clone()
    } else {
        super::link_dns(ctx, link)?
    };
    let (servers, search) = (dns.nameservers, dns.search);
    if !servers.is_empty() {
        let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
        let _ = writeln!(net, "DNS={}", list.join(" "));
    }
    if !search.is_empty() {
        let _ = writeln!(net, "Domains={}", search.join(" "));
    }
    let _ = writeln!(s, "\n[Network]");
    s.push_str(&net);

    for a in &link.addressing {
        if let Addressing::Static {
            address,
            prefix,
            gateway,
        } = a
        {
            let _ = writeln!(s, "\n[Address]\nAddress={address}/{prefix}");
            if let Some(gw) = gateway {
                let default = if address.is_ipv4() {
                    "0.0.0.0/0"
                } else {
                    "::/0"
                };
                let _ = writeln!(s, "\n[Route]\nDestination={default}\nGateway={gw}");
            }
        }
    }
    for r in &link.routes {
        super::route_end(&r.to, &link.id)?;
        let _ = writeln!(s, "\n[Route]\nDestination={}", r.to);
        if let Some(via) = r.via {
            let _ = writeln!(s, "Gateway={via}");
        }
        if let Some(metric) = r.metric {
            let _ = writeln!(s, "Metric={metric}");
        }
        if let Some(table) = r.table {
            let _ = writeln!(s, "Table={table}");
        }
    }
    for rule in &link.rules {
        let _ = writeln!(s, "\n[RoutingPolicyRule]");
        for (key, end) in [("From", &rule.from), ("To", &rule.to)] {
            if let Some(end) = end {
                super::route_end(end, &link.id)?;
                let _ = writeln!(s, "{key}={end}");
            }
        }
        let _ = writeln!(s, "Table={}", rule.table);
        if let Some(p) = rule.priority {
            let _ = writeln!(s, "Priority={p}");
        }
    }
    // Keep names the renderer refers to honest: a member or parent that has no name here is
    // a description error the user should see.
    if let LinkKind::Vlan { parent, .. } = &link.kind {
        if name_of(ctx, parent).is_none() {
            return Err(RenderError {
                object: link.id.clone(),
                message: format!("VLAN parent {parent:?} is not configured on this host"),
            });
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Access, Source, SourceKind};

    fn ctx_with(links: Vec<Link>) -> Context {
        let mut ctx = Context::new(
            None,
            Source {
                kind: SourceKind::KernelCmdline,
                medium: Access::Cmdline,
                location: "t".into(),
                partition_of: None,
            },
        );
        ctx.network.links = links;
        ctx
    }

    fn named(id: &str, name: &str, kind: LinkKind) -> Link {
        let mut l = Link::new(id, kind);
        l.name = Some(name.into());
        l
    }

    #[test]
    fn static_link_with_gateway_and_dns() {
        let mut l = named("tap0", "ens3", LinkKind::Physical);
        l.mac = Some("52:54:00:00:00:01".into());
        l.addressing.push(Addressing::Static {
            address: "10.0.0.5".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.0.0.1".parse().unwrap()),
        });
        let mut ctx = ctx_with(vec![l]);
        ctx.network
            .dns
            .nameservers
            .push("10.0.0.53".parse().unwrap());
        ctx.network.dns.search.push("example.org".into());
        let files = Networkd.render(&ctx).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "etc/systemd/network/10-preroot-ens3.link");
        assert_eq!(
            files[0].content,
            "# Written by preroot from the instance's metadata.\n[Match]\nMACAddress=52:54:00:00:00:01\nType=ether\n\n[Link]\nName=ens3\n"
        );
        let files = &files[1..];
        assert_eq!(files[0].path, "etc/systemd/network/10-preroot-ens3.network");
        let want = "# Written by preroot from the instance's metadata.\n[Match]\nName=ens3\nMACAddress=52:54:00:00:00:01\n\n[Network]\nDHCP=no\nDNS=10.0.0.53\nDomains=example.org\n\n[Address]\nAddress=10.0.0.5/24\n\n[Route]\nDestination=0.0.0.0/0\nGateway=10.0.0.1\n";
        assert_eq!(files[0].content, want);
    }

    #[test]
    fn bond_with_vlan() {
        let mut bond = named(
            "bond0",
            "bond0",
            LinkKind::Bond {
                mode: "802.3ad".into(),
                members: vec!["p1".into()],
                options: [("miimon".to_string(), "100".to_string())].into(),
            },
        );
        bond.addressing.push(Addressing::Dhcp4);
        let vlan = named(
            "v",
            "bond0.40",
            LinkKind::Vlan {
                id: 40,
                parent: "bond0".into(),
            },
        );
        let ctx = ctx_with(vec![named("p1", "eno1", LinkKind::Physical), bond, vlan]);
        let files = Networkd.render(&ctx).unwrap();
        let by = |p: &str| {
            files
                .iter()
                .find(|f| f.path.ends_with(p))
                .unwrap()
                .content
                .clone()
        };
        assert!(by("eno1.network").contains("Bond=bond0\nDHCP=no\nLinkLocalAddressing=no"));
        assert!(
            by("bond0.netdev").contains("Kind=bond\n\n[Bond]\nMode=802.3ad\nMIIMonitorSec=100ms")
        );
        assert!(by("bond0.network").contains("VLAN=bond0.40\nDHCP=ipv4"));
        assert!(by("bond0.40.netdev").contains("[VLAN]\nId=40"));
    }

    #[test]
    fn hostile_values_never_reach_a_file() {
        let cases: Vec<(&str, Link)> = vec![
            (
                "newline in name",
                named("x", "eth0\n[Network]", LinkKind::Physical),
            ),
            ("slash in name", named("x", "../etc", LinkKind::Physical)),
            (
                "newline in bond mode",
                named(
                    "b",
                    "bond0",
                    LinkKind::Bond {
                        mode: "active-backup\nDHCP=yes".into(),
                        members: vec![],
                        options: Default::default(),
                    },
                ),
            ),
            (
                "bracket in bond option",
                named(
                    "b",
                    "bond0",
                    LinkKind::Bond {
                        mode: "802.3ad".into(),
                        members: vec![],
                        options: [("miimon".to_string(), "1[0]".to_string())].into(),
                    },
                ),
            ),
            (
                "unknown bond option",
                named(
                    "b",
                    "bond0",
                    LinkKind::Bond {
                        mode: "802.3ad".into(),
                        members: vec![],
                        options: [("frobnicate".to_string(), "1".to_string())].into(),
                    },
                ),
            ),
        ];
        for (case, link) in cases {
            assert!(
                Networkd.render(&ctx_with(vec![link])).is_err(),
                "case {case}"
            );
        }
        let mut l = named("x", "eth0", LinkKind::Physical);
        l.dns.search.push("evil.com\nDNS=6.6.6.6".into());
        assert!(
            Networkd.render(&ctx_with(vec![l])).is_err(),
            "case newline in search domain"
        );
    }

    #[test]
    fn unnamed_links_are_skipped() {
        let ctx = ctx_with(vec![Link::new("tap9", LinkKind::Physical)]);
        assert!(Networkd.render(&ctx).unwrap().is_empty());
    }
}
