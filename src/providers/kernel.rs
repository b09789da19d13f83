//! The network (and hostname) described by the kernel command line alone: `ip=`,
//! `nameserver=`, `ifname=`, turned into the context's [`Network`].
//!
//! Pure: takes a parsed [`Cmdline`] and the host's NICs, touches nothing. Follows what
//! dracut's network-legacy `ifup.sh` does with the same command line
//! (<https://github.com/dracut-ng/dracut-ng/blob/main/modules.d/35network-legacy/ifup.sh>):
//!
//! | `ip=` method            | [`Addressing`]                                   |
//! |-------------------------|--------------------------------------------------|
//! | `dhcp`/`on`/`any`/`single-dhcp` | `Dhcp4`                                  |
//! | `dhcp6`                 | `Dhcp6`                                          |
//! | `auto6`                 | `Slaac`                                          |
//! | `either6`               | `Slaac`, then `Dhcp6` (dracut: SLAAC, DHCPv6 if it fails) |
//! | `link6`                 | none: the link is up with its link-local address only |
//! | `none`/`off` + address  | `Static` (gateway = the default route)           |
//!
//! Which links:
//! - An entry naming an interface gives a physical link with that `name` (and `id`). Its `mac`
//!   is the one `ifname=<name>:<MAC>` gives, else the entry's `<macaddr>`.
//! - An entry whose interface field is a MAC gives a link with that `mac` and, unless an
//!   `ifname=` names that MAC, no `name` (so `Context::match_nics` finds the NIC).
//! - An entry without interface applies, as in `ifup` (which runs it for every NIC it brings
//!   up), to each host NIC that no other entry names: DHCP, `auto6`... on all of them; a static
//!   address only on the first (sorted by name, as `Root::host_nics` returns them), because
//!   dracut's `do_static` refuses an address already assigned to another NIC. Each such link
//!   is named after the NIC, or after its `ifname=` name. If other entries name every NIC
//!   (or there are none), such an entry gives no link, as it would configure nothing in dracut.
//! - Several entries for the same interface are merged (methods and DNS appended, a later
//!   MTU or MAC wins). dracut refuses this ("Duplication configurations"); NetworkManager's
//!   `nm-initrd-generator` merges, which turns a typo into a working boot rather than none.
//! - `ip=off`/`ip=none` gives no link; the caller decides what that means for the fallback.
//! - `nameserver=` goes to [`Network::dns`]; `<dns1>`/`<dns2>` to the link's DNS (dracut writes
//!   both to every configured interface's resolv.conf).
//!
//! Not done here: renaming NICs for `ifname=` (a link carries the new name and the MAC, the
//! renderer writes whatever renames it); `ifname=` without `ip=` gives no link; checking that a
//! named interface exists (`Context::match_nics` and the renderers see the host).
//! Deliberate differences from dracut: a static IPv6 address does not also turn on router
//! advertisements (dracut's `do_static` writes `accept_ra=1`); `<macaddr>`, which dracut *sets*
//! on the NIC, lands in `Link::mac`, which the model uses to *match* NICs (the model has no
//! "set MAC" field).

#![deny(clippy::arithmetic_side_effects)]

use crate::cmdline::{Cmdline, IpConfig, IpInterface, IpMethod};
use crate::context::{Addressing, HostNic, Link, LinkKind, Network};

/// The network the command line describes, for a host with `nics` (the context's
/// `host_nics`). Entries without an interface need `nics`; with none they give no links.
/// Call `Context::match_nics` afterwards as for any provider: with no links at all (no `ip=`,
/// or only `ip=off`), it applies its DHCPv4 fallback.
pub fn network(cmd: &Cmdline, nics: &[HostNic]) -> Network {
    let mut net = Network::default();
    net.dns.nameservers = cmd.nameservers.clone();
    for entry in &cmd.ip {
        if entry.methods.contains(&IpMethod::Off) {
            continue;
        }
        for target in targets(cmd, entry, nics) {
            merge(&mut net.links, target, entry);
        }
    }
    net
}

/// The hostname from `ip=...:<client_hostname>:...`: the first entry that has one (dracut
/// makes the first entry's interface the boot device). Already validated by the parser.
pub fn hostname(cmd: &Cmdline) -> Option<String> {
    cmd.ip.iter().find_map(|e| e.hostname.clone())
}

/// A link to configure: its id, name and MAC.
struct Target {
    id: String,
    name: Option<String>,
    mac: Option<String>,
}

fn ifname_mac<'a>(cmd: &'a Cmdline, name: &str) -> Option<&'a str> {
    cmd.ifnames
        .iter()
        .find(|i| i.name == name)
        .map(|i| i.mac.as_str())
}

fn ifname_for_mac<'a>(cmd: &'a Cmdline, mac: &str) -> Option<&'a str> {
    cmd.ifnames
        .iter()
        .find(|i| i.mac.eq_ignore_ascii_case(mac))
        .map(|i| i.name.as_str())
}

/// The name a host NIC will have: its `ifname=` name if one names its MAC.
fn nic_name<'a>(cmd: &'a Cmdline, nic: &'a HostNic) -> &'a str {
    ifname_for_mac(cmd, &nic.mac).unwrap_or(&nic.name)
}

/// Whether an entry with an interface names this NIC (by its name, its `ifname=` name or MAC).
fn claimed(cmd: &Cmdline, nic: &HostNic) -> bool {
    cmd.ip.iter().any(|e| match &e.interface {
        Some(IpInterface::Name(n)) => *n == nic.name || n == nic_name(cmd, nic),
        Some(IpInterface::Mac(m)) => m.eq_ignore_ascii_case(&nic.mac),
        None => false,
    })
}

fn targets(cmd: &Cmdline, entry: &IpConfig, nics: &[HostNic]) -> Vec<Target> {
    match &entry.interface {
        Some(IpInterface::Name(name)) => vec![Target {
            id: name.clone(),
            name: Some(name.clone()),
            mac: ifname_mac(cmd, name)
                .map(str::to_string)
                .or_else(|| entry.mac.clone()),
        }],
        Some(IpInterface::Mac(mac)) => {
            let name = ifname_for_mac(cmd, mac).map(str::to_string);
            vec![Target {
                id: name.clone().unwrap_or_else(|| mac.clone()),
                name,
                mac: Some(mac.clone()),
            }]
        }
        None => {
            let is_static = entry
                .methods
                .iter()
                .any(|m| matches!(m, IpMethod::Static { .. }));
            let free = nics.iter().filter(|n| !claimed(cmd, n)).map(|nic| {
                let name = nic_name(cmd, nic).to_string();
                Target {
                    id: name.clone(),
                    name: Some(name),
                    mac: Some(nic.mac.clone()),
                }
            });
            if is_static {
                free.take(1).collect()
            } else {
                free.collect()
            }
        }
    }
}

fn addressing(methods: &[IpMethod]) -> Vec<Addressing> {
    let mut out = Vec::new();
    for m in methods {
        match m {
            IpMethod::Off | IpMethod::Link6 => {}
            IpMethod::Dhcp4 => out.push(Addressing::Dhcp4),
            IpMethod::Dhcp6 => out.push(Addressing::Dhcp6),
            IpMethod::Auto6 => out.push(Addressing::Slaac { dhcp6_info: false }),
            IpMethod::Either6 => {
                out.push(Addressing::Slaac { dhcp6_info: false });
                out.push(Addressing::Dhcp6);
            }
            IpMethod::Static {
                address,
                prefix,
                gateway,
            } => out.push(Addressing::Static {
                address: *address,
                prefix: *prefix,
                gateway: *gateway,
            }),
        }
    }
    out
}

fn merge(links: &mut Vec<Link>, target: Target, entry: &IpConfig) {
    let index = match links.iter().position(|l| l.id == target.id) {
        Some(i) => i,
        None => {
            let mut link = Link::new(target.id.clone(), LinkKind::Physical);
            link.name = target.name.clone();
            links.push(link);
            links.len().saturating_sub(1)
        }
    };
    let Some(link) = links.get_mut(index) else {
        return;
    };
    if target.mac.is_some() {
        link.mac = target.mac;
    }
    if entry.mtu.is_some() {
        link.mtu = entry.mtu;
    }
    for a in addressing(&entry.methods) {
        if !link.addressing.contains(&a) {
            link.addressing.push(a);
        }
    }
    for d in &entry.dns {
        if !link.dns.nameservers.contains(d) {
            link.dns.nameservers.push(*d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;
    use crate::context::{Context, Dns, LinkOrigin, Source};
    use std::net::IpAddr;

    const MAC0: &str = "52:54:00:00:00:00";
    const MAC1: &str = "52:54:00:00:00:01";

    fn nics() -> Vec<HostNic> {
        vec![
            HostNic {
                name: "eth0".into(),
                mac: MAC0.into(),
            },
            HostNic {
                name: "eth1".into(),
                mac: MAC1.into(),
            },
        ]
    }

    fn addr(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    fn link(id: &str, name: Option<&str>, mac: Option<&str>, addressing: Vec<Addressing>) -> Link {
        let mut l = Link::new(id, LinkKind::Physical);
        l.name = name.map(Into::into);
        l.mac = mac.map(Into::into);
        l.addressing = addressing;
        l
    }

    fn with(mut l: Link, f: impl FnOnce(&mut Link)) -> Link {
        f(&mut l);
        l
    }

    fn st(address: &str, prefix: u8, gateway: Option<&str>) -> Addressing {
        Addressing::Static {
            address: addr(address),
            prefix,
            gateway: gateway.map(addr),
        }
    }

    const SLAAC: Addressing = Addressing::Slaac { dhcp6_info: false };

    #[test]
    fn network_per_form() {
        use Addressing::{Dhcp4, Dhcp6};
        let v4 = || st("10.0.0.2", 24, Some("10.0.0.1"));
        // (command line, links)
        let cases: Vec<(&str, Vec<Link>)> = vec![
            ("", vec![]),
            ("ip=off", vec![]),
            ("ip=none", vec![]),
            ("ifname=bootnet:52:54:00:00:00:00", vec![]),
            // no interface: every NIC (dynamic), the first NIC (static)
            (
                "ip=dhcp",
                vec![
                    link("eth0", Some("eth0"), Some(MAC0), vec![Dhcp4]),
                    link("eth1", Some("eth1"), Some(MAC1), vec![Dhcp4]),
                ],
            ),
            (
                "ip=dhcp,dhcp6",
                vec![
                    link("eth0", Some("eth0"), Some(MAC0), vec![Dhcp4, Dhcp6]),
                    link("eth1", Some("eth1"), Some(MAC1), vec![Dhcp4, Dhcp6]),
                ],
            ),
            (
                "ip=dhcp6",
                vec![
                    link("eth0", Some("eth0"), Some(MAC0), vec![Dhcp6]),
                    link("eth1", Some("eth1"), Some(MAC1), vec![Dhcp6]),
                ],
            ),
            (
                "ip=either6",
                vec![
                    link("eth0", Some("eth0"), Some(MAC0), vec![SLAAC, Dhcp6]),
                    link("eth1", Some("eth1"), Some(MAC1), vec![SLAAC, Dhcp6]),
                ],
            ),
            (
                "ip=10.0.0.2::10.0.0.1:24",
                vec![link("eth0", Some("eth0"), Some(MAC0), vec![v4()])],
            ),
            (
                "ip=dhcp ifname=boot:52:54:00:00:00:01",
                vec![
                    link("eth0", Some("eth0"), Some(MAC0), vec![Dhcp4]),
                    link("boot", Some("boot"), Some(MAC1), vec![Dhcp4]),
                ],
            ),
            // an interface named
            (
                "ip=eth0:dhcp",
                vec![link("eth0", Some("eth0"), None, vec![Dhcp4])],
            ),
            (
                "ip=eth0:dhcp6",
                vec![link("eth0", Some("eth0"), None, vec![Dhcp6])],
            ),
            (
                "ip=eth0:auto6",
                vec![link("eth0", Some("eth0"), None, vec![SLAAC])],
            ),
            (
                "ip=eth0:either6",
                vec![link("eth0", Some("eth0"), None, vec![SLAAC, Dhcp6])],
            ),
            (
                "ip=eth0:link6",
                vec![link("eth0", Some("eth0"), None, vec![])],
            ),
            (
                "ip=ens9:dhcp:9000:52:54:00:12:34:56",
                vec![with(
                    link("ens9", Some("ens9"), Some("52:54:00:12:34:56"), vec![Dhcp4]),
                    |l| l.mtu = Some(9000),
                )],
            ),
            (
                "ip=10.0.0.2::10.0.0.1:255.255.255.0:h:eth0:none",
                vec![link("eth0", Some("eth0"), None, vec![v4()])],
            ),
            (
                "ip=[2001:db8::2]::[2001:db8::1]:64::eth0:none,auto6",
                vec![link(
                    "eth0",
                    Some("eth0"),
                    None,
                    vec![st("2001:db8::2", 64, Some("2001:db8::1")), SLAAC],
                )],
            ),
            (
                "ip=10.0.0.2::10.0.0.1:24::eth0:none:10.0.0.53:[2001:db8::53]",
                vec![with(link("eth0", Some("eth0"), None, vec![v4()]), |l| {
                    l.dns = Dns {
                        nameservers: vec![addr("10.0.0.53"), addr("2001:db8::53")],
                        search: vec![],
                    }
                })],
            ),
            // ifname= gives the MAC, and wins over ip='s <macaddr>
            (
                "ifname=bootnet:52:54:00:00:00:01 ip=bootnet:dhcp",
                vec![link("bootnet", Some("bootnet"), Some(MAC1), vec![Dhcp4])],
            ),
            (
                "ifname=bootnet:52:54:00:00:00:01 ip=bootnet:dhcp::52:54:00:99:99:99",
                vec![link("bootnet", Some("bootnet"), Some(MAC1), vec![Dhcp4])],
            ),
            // the interface as a MAC
            (
                "ip=52-54-00-00-00-01:dhcp",
                vec![link(MAC1, None, Some(MAC1), vec![Dhcp4])],
            ),
            (
                "ifname=up:52:54:00:00:00:01 ip=[52:54:00:00:00:01]:dhcp",
                vec![link("up", Some("up"), Some(MAC1), vec![Dhcp4])],
            ),
            // several entries
            (
                "ip=eth1:dhcp ip=eth0:dhcp6",
                vec![
                    link("eth1", Some("eth1"), None, vec![Dhcp4]),
                    link("eth0", Some("eth0"), None, vec![Dhcp6]),
                ],
            ),
            (
                "ip=eth0:dhcp6 ip=10.0.0.2::10.0.0.1:24",
                vec![
                    link("eth0", Some("eth0"), None, vec![Dhcp6]),
                    link("eth1", Some("eth1"), Some(MAC1), vec![v4()]),
                ],
            ),
            (
                "ip=52-54-00-00-00-00:dhcp6 ip=auto6",
                vec![
                    link(MAC0, None, Some(MAC0), vec![Dhcp6]),
                    link("eth1", Some("eth1"), Some(MAC1), vec![SLAAC]),
                ],
            ),
            (
                "ip=eth0:dhcp ip=eth1:dhcp ip=10.0.0.2::10.0.0.1:24",
                vec![
                    link("eth0", Some("eth0"), None, vec![Dhcp4]),
                    link("eth1", Some("eth1"), None, vec![Dhcp4]),
                ],
            ),
            // merged
            (
                "ip=eth0:dhcp ip=eth0:auto6:1400 ip=eth0:dhcp",
                vec![with(
                    link("eth0", Some("eth0"), None, vec![Dhcp4, SLAAC]),
                    |l| l.mtu = Some(1400),
                )],
            ),
        ];
        for (input, want) in cases {
            let cmd = parse(input);
            assert_eq!(cmd.problems, Vec::<String>::new(), "case {input}");
            let got = network(&cmd, &nics());
            assert_eq!(got.links, want, "case {input}");
            assert_eq!(got.dns, Dns::default(), "case {input}");
        }
    }

    #[test]
    fn network_without_nics() {
        // (command line, number of links)
        let cases = [
            ("ip=dhcp", 0),
            ("ip=10.0.0.2::10.0.0.1:24", 0),
            ("ip=eth0:dhcp", 1),
        ];
        for (input, want) in cases {
            let got = network(&parse(input), &[]);
            assert_eq!(got.links.len(), want, "case {input}");
        }
    }

    #[test]
    fn nameservers_are_global() {
        let cmd = parse("nameserver=10.0.0.53 ip=eth0:dhcp nameserver=[2001:db8::53]");
        let got = network(&cmd, &nics());
        assert_eq!(
            got.dns.nameservers,
            vec![addr("10.0.0.53"), addr("2001:db8::53")],
            "case nameserver="
        );
        assert!(got.links[0].dns.is_empty(), "case nameserver=");
    }

    #[test]
    fn hostnames() {
        // (command line, hostname)
        let cases = [
            ("ip=dhcp", None),
            ("ip=::::Web1:eth0:dhcp", Some("web1")),
            (
                "ip=eth0:dhcp ip=10.0.0.2::10.0.0.1:24:second:eth1:none ip=::::third:eth2:dhcp",
                Some("second"),
            ),
            ("ip=10.0.0.2::10.0.0.1:24:-badname:eth1:none", None),
        ];
        for (input, want) in cases {
            assert_eq!(hostname(&parse(input)).as_deref(), want, "case {input}");
        }
    }

    /// The links work with `Context::match_nics` as the caller will use it.
    #[test]
    fn with_match_nics() {
        // (command line, names of the configured links, fallback kinds)
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("", &["eth0", "eth1"], &["dhcp4-all-nics"]),
            ("ip=off", &["eth0", "eth1"], &["dhcp4-all-nics"]),
            ("ip=dhcp", &["eth0", "eth1"], &[]),
            ("ip=eth1:dhcp", &["eth1"], &[]),
            ("ip=52-54-00-00-00-01:dhcp", &["eth1"], &[]),
        ];
        for (input, names, fallbacks) in cases {
            let mut ctx = Context::new(None, Source::kernel_cmdline());
            ctx.host_nics = nics();
            ctx.network = network(&parse(input), &ctx.host_nics);
            ctx.match_nics(false);
            let got: Vec<&str> = ctx
                .network
                .links
                .iter()
                .filter_map(|l| l.name.as_deref())
                .collect();
            assert_eq!(got, names.to_vec(), "case {input}");
            let kinds: Vec<&str> = ctx.fallbacks.iter().map(|f| f.kind.as_str()).collect();
            assert_eq!(kinds, fallbacks.to_vec(), "case {input}");
            let described = ctx
                .network
                .links
                .iter()
                .all(|l| l.origin == LinkOrigin::Described);
            assert_eq!(described, fallbacks.is_empty(), "case {input}");
        }
    }
}
