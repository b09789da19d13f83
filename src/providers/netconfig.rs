//! cloud-init network configuration, version 1 and version 2, turned into the one [`Network`]
//! model. Used by NoCloud's `network-config` (and by anything else that ships the format).
//!
//! Owns the mapping of both versions onto [`Link`]s (documents are loaded by
//! [`crate::yaml::load`]). Pure: text in, model and
//! warnings out; never reads files, never looks at the host's NICs (naming by MAC is
//! [`crate::context::Context::match_nics`]'s job).
//!
//! Specs followed: cloud-init docs "Networking config Version 1" and "Networking config
//! Version 2" (the netplan subset cloud-init accepts). A document may be wrapped in a
//! top-level `network:` key, and may be JSON (a subset of YAML). `config: disabled` (any
//! version) gives [`Parsed::disabled`].
//!
//! Scalars are read the YAML 1.2 way, as text, then converted by the field that reads them:
//! an unquoted MAC such as `10:20:30:40:50:59` stays a MAC (PyYAML's YAML 1.1 would make it a
//! sexagesimal integer). Booleans accept the YAML 1.1 spellings (`yes`, `on` ...) that
//! cloud-init users write. Null (`~`, `null`, empty) counts as absent. With duplicate mapping
//! keys the last one wins, as in PyYAML.
//!
//! Normalization choices (the spec is silent):
//! - Bond modes become kernel names (`4` → `802.3ad`); no mode means `balance-rr`, the kernel
//!   default. Bond options from v1 (`bond-miimon`, `bond_xmit_hash_policy`) and v2
//!   (`mii-monitor-interval`, `transmit-hash-policy`) both become the kernel's sysfs names
//!   (`miimon`, `xmit_hash_policy`), so renderers see one spelling. Lists are joined with `,`
//!   (`arp_ip_target`), booleans become `true`/`false`.
//! - Bridge options from v1 (`bridge_fd`, `bridge_pathcost: ["eth0 50"]`) and v2
//!   (`forward-delay`, `path-cost: {eth0: 50}`) both become `forward_delay`, `stp`,
//!   `hello_time`, `max_age`, `priority`, `ageing_time`, `path_cost.<port>`,
//!   `port_priority.<port>`.
//! - A v1 `gateway` goes on its static address; on a dynamic subnet (`dhcp4` + `gateway`) it
//!   becomes a default route. A v2 `gateway4`/`gateway6` goes on the first static address of
//!   its family, or becomes a default route when there is none.
//! - Global v1 `route` entries go to the link whose static subnet holds the gateway; a
//!   v1 `nameserver` with `interface:` goes to that link, without it to [`Network::dns`].
//! - The DNS fields of v1 (`address`, `search`, `dns_nameservers`, `dns_search`) take a
//!   string as well as a list (split on whitespace and commas), as cloud-init does; every
//!   other list field refuses a string.
//! - An IPv4 subnet `mtu` in v1 overrides the link's `mtu` (the NetworkManager renderer's
//!   reading); an IPv6 subnet `mtu` is dropped with a warning.
//! - v1/v2 `accept-ra: true` without DHCPv6 adds [`Addressing::Slaac`].
//!
//! Not supported (warned about and skipped, never guessed): v2 `match.name` globs and
//! `match.driver`, `macaddress` on an ethernet (setting a MAC), routes with a non-unicast
//! `type`, `dhcp4-overrides`/`dhcp6-overrides`, `wifis`,
//! `tunnels`, `vrfs`, `modems`, v1 `loopback`. A v1 static address with neither prefix nor
//! netmask gets cloud-init's default (/24, /64) and a warning.
//!
//! Caps (each cut is a warning): [`MAX_LINKS`] links, [`MAX_ADDRESSES`] static addresses,
//! [`MAX_ROUTES`] routes and [`MAX_DNS`] name servers / search domains per list. The YAML
//! loader refuses nesting deeper than [`MAX_DEPTH`] and documents that would take more than
//! [`crate::yaml::heap_budget`] once loaded, aliases (billion laughs) weighed at every use, so
//! neither the stack nor memory can be blown; the caller caps the input at `METADATA_CAP`
//! bytes.
//!
//! Panic contract: no function here panics on any input (no indexing, no unchecked
//! arithmetic); every failure is an `Err` naming the field path (`ethernets.eth0.mtu`).
#![deny(clippy::arithmetic_side_effects)]

use crate::caps;
use crate::context::{normalize_mac, Addressing, Dns, Link, LinkKind, Network, Route, RoutingRule};
use crate::providers::DatasourceError;
use crate::yaml::Node;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The object named in errors from [`parse`].
const OBJECT: &str = "network-config";

/// What [`parse`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Links in document order (v2: ethernets, bonds, vlans, bridges), not yet matched to
    /// host NICs.
    pub network: Network,
    /// `config: disabled`: the source asks that the network be left alone.
    pub disabled: bool,
    /// What was skipped or cut, one line each (no secrets: network config has none).
    pub warnings: Vec<String>,
}

/// Parses a `network-config` document (v1 or v2, YAML or JSON, with or without a top-level
/// `network:` key). Errors are one line naming the field path.
pub fn parse(text: &str) -> Result<Parsed, DatasourceError> {
    let root = crate::yaml::load(text).map_err(|e| DatasourceError::new(OBJECT, e))?;
    parse_node(&root).map_err(|e| DatasourceError::new(OBJECT, e))
}

/// Like [`parse`], for an already loaded document (NoCloud may embed one in `meta-data`).
pub fn parse_node(root: &Node) -> Result<Parsed, String> {
    let mut root = root;
    if let Some(inner) = root.get("network") {
        root = inner;
    }
    let mut b = Builder::default();
    if root.get("config").and_then(Node::as_text) == Some("disabled") {
        return Ok(Parsed {
            disabled: true,
            ..Parsed::default()
        });
    }
    if !matches!(root, Node::Map(_)) {
        return Err("not a mapping with a `version` key".into());
    }
    let version = root
        .get("version")
        .ok_or("version: missing")
        .and_then(|v| v.as_text().ok_or("version: not a number"))?;
    match version {
        "1" => {
            let config = root.get("config").ok_or("config: missing")?;
            v1(seq(config, "config")?, &mut b)?;
        }
        "2" => v2(root, &mut b)?,
        other => return Err(format!("version: {other:?} is not 1 or 2")),
    }
    b.finish()
}

#[derive(Default)]
struct Builder {
    links: Vec<Link>,
    dns: Dns,
    warnings: Vec<String>,
    /// Global v1 `route` entries, placed once all links are known.
    global_routes: Vec<(String, Route)>,
    /// v1 `nameserver` entries with `interface:`.
    link_dns: Vec<(String, String, Dns)>,
}

impl Builder {
    fn warn(&mut self, msg: String) {
        self.warnings.push(msg);
    }

    fn add_link(&mut self, link: Link, path: &str) -> Result<(), String> {
        if self.links.iter().any(|l| l.id == link.id) {
            return Err(format!("{path}: link {:?} is defined twice", link.id));
        }
        self.links.push(link);
        Ok(())
    }

    fn find(&mut self, id: &str) -> Option<&mut Link> {
        // v1 names and v2 ids are both the link id; a v2 set-name may differ, so also accept
        // the configured name.
        let pos = self.links.iter().position(|l| l.id == id).or_else(|| {
            self.links
                .iter()
                .position(|l| l.name.as_deref() == Some(id))
        })?;
        self.links.get_mut(pos)
    }

    fn finish(mut self) -> Result<Parsed, String> {
        for (path, route) in std::mem::take(&mut self.global_routes) {
            let target = route.via.and_then(|via| {
                self.links.iter().position(|l| {
                    l.addressing.iter().any(|a| match a {
                        Addressing::Static {
                            address, prefix, ..
                        } => same_subnet(*address, via, *prefix),
                        _ => false,
                    })
                })
            });
            match target.and_then(|i| self.links.get_mut(i)) {
                Some(link) => {
                    let mut w = Vec::new();
                    push_route(link, route, &path, &mut w);
                    self.warnings.extend(w);
                }
                None => self.warn(format!(
                    "{path}: route to {} has no link with a subnet holding its gateway; dropped",
                    route.to
                )),
            }
        }
        for (path, iface, dns) in std::mem::take(&mut self.link_dns) {
            let mut w = Vec::new();
            match self.find(&iface) {
                Some(link) => merge_dns(&mut link.dns, dns, &path, &mut w),
                None => return Err(format!("{path}.interface: no link named {iface:?}")),
            }
            self.warnings.extend(w);
        }
        self.check_references()?;
        if let Some(cut) = caps::LINKS.truncate(&mut self.links) {
            self.warn(cut);
            let dropped = crate::context::drop_dangling(&mut self.links);
            self.warnings.extend(dropped);
        }
        Ok(Parsed {
            network: Network {
                links: self.links,
                dns: self.dns,
            },
            disabled: false,
            warnings: self.warnings,
        })
    }

    /// Every member and VLAN parent must be a link of the document.
    fn check_references(&self) -> Result<(), String> {
        let known = |id: &str| self.links.iter().any(|l| l.id == id);
        for link in &self.links {
            let (what, refs): (&str, Vec<&String>) = match &link.kind {
                LinkKind::Physical => continue,
                LinkKind::Bond { members, .. } | LinkKind::Bridge { members, .. } => {
                    ("member", members.iter().collect())
                }
                LinkKind::Vlan { parent, .. } => ("parent", vec![parent]),
            };
            if let Some(bad) = refs.into_iter().find(|r| !known(r)) {
                return Err(format!("{}: {what} {bad:?} is not defined", link.id));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Typed readers. Each takes the node and its path and returns a one-line error naming it.

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A mapping's entries; null counts as an empty mapping (`eth1: {}` and `eth1:` alike).
fn map<'a>(node: &'a Node, path: &str) -> Result<&'a [(String, Node)], String> {
    match node {
        Node::Map(entries) => Ok(entries),
        Node::Null => Ok(&[]),
        _ => Err(format!("{path}: not a mapping")),
    }
}

/// A mapping's entries in document order, keeping only the last of repeated keys (PyYAML's
/// reading of a duplicate key).
fn entries<'a>(node: &'a Node, path: &str) -> Result<Vec<(&'a str, &'a Node)>, String> {
    let all = map(node, path)?;
    let last: BTreeMap<&str, usize> = all
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.as_str(), i))
        .collect();
    Ok(all
        .iter()
        .enumerate()
        .filter(|(i, (k, _))| last.get(k.as_str()) == Some(i))
        .map(|(_, (k, v))| (k.as_str(), v))
        .collect())
}

/// A sequence's items; null counts as empty.
fn seq<'a>(node: &'a Node, path: &str) -> Result<&'a [Node], String> {
    match node {
        Node::Seq(items) => Ok(items),
        Node::Null => Ok(&[]),
        _ => Err(format!("{path}: not a list")),
    }
}

fn text<'a>(node: &'a Node, path: &str) -> Result<&'a str, String> {
    node.as_text()
        .ok_or_else(|| format!("{path}: not a single value"))
}

/// Optional field: absent or null is `None`.
fn opt<'a>(m: &'a Node, key: &str) -> Option<&'a Node> {
    m.get(key)
}

fn opt_text<'a>(m: &'a Node, key: &str, path: &str) -> Result<Option<&'a str>, String> {
    opt(m, key).map(|n| text(n, &child(path, key))).transpose()
}

fn req_text<'a>(m: &'a Node, key: &str, path: &str) -> Result<&'a str, String> {
    opt_text(m, key, path)?.ok_or_else(|| format!("{}: missing", child(path, key)))
}

/// YAML 1.1 booleans, as PyYAML (and so cloud-init) reads them; only unquoted.
fn boolean(node: &Node, path: &str) -> Result<bool, String> {
    if let Node::Scalar { text, plain: true } = node {
        match text.as_str() {
            "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
                return Ok(true)
            }
            "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
                return Ok(false)
            }
            _ => {}
        }
    }
    Err(format!("{path}: not true or false"))
}

fn opt_bool(m: &Node, key: &str, path: &str) -> Result<Option<bool>, String> {
    opt(m, key)
        .map(|n| boolean(n, &child(path, key)))
        .transpose()
}

/// A decimal integer, quoted or not.
fn number(node: &Node, path: &str) -> Result<u64, String> {
    let t = text(node, path)?;
    if t.is_empty() || t.len() > 19 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{path}: not a number"));
    }
    t.parse().map_err(|_| format!("{path}: not a number"))
}

fn opt_ranged(m: &Node, key: &str, path: &str, lo: u64, hi: u64) -> Result<Option<u64>, String> {
    let Some(n) = opt(m, key) else {
        return Ok(None);
    };
    let p = child(path, key);
    let v = number(n, &p)?;
    if v < lo || v > hi {
        return Err(format!("{p}: {v} is not in {lo}..={hi}"));
    }
    Ok(Some(v))
}

fn opt_mtu(m: &Node, path: &str) -> Result<Option<u32>, String> {
    // 68 is the IPv4 minimum; 65535 the largest any driver takes.
    Ok(opt_ranged(m, "mtu", path, 68, 65535)?.and_then(|v| u32::try_from(v).ok()))
}

/// A routing table number: 1..=4294967295 except the reserved 253..=255 names are allowed
/// too (`default`, `main`, `local` are their numbers in netplan).
fn opt_table(m: &Node, path: &str) -> Result<Option<u32>, String> {
    Ok(opt_ranged(m, "table", path, 1, u64::from(u32::MAX))?.and_then(|v| u32::try_from(v).ok()))
}

/// One end of a routing rule: an address or a CIDR, returned as `addr[/prefix]`.
fn rule_end(raw: &str, path: &str) -> Result<String, String> {
    let raw = raw.trim();
    if let Some((addr, prefix)) = parse_cidr(raw) {
        return Ok(format!("{addr}/{prefix}"));
    }
    raw.parse::<IpAddr>()
        .map(|a| a.to_string())
        .map_err(|_| format!("{path}: not an address or address/prefix"))
}

fn opt_metric(m: &Node, path: &str) -> Result<Option<u32>, String> {
    Ok(opt_ranged(m, "metric", path, 0, u64::from(u32::MAX))?.and_then(|v| u32::try_from(v).ok()))
}

fn ip(node: &Node, path: &str) -> Result<IpAddr, String> {
    text(node, path)?
        .trim()
        .parse()
        .map_err(|_| format!("{path}: not an IP address"))
}

fn opt_ip(m: &Node, key: &str, path: &str) -> Result<Option<IpAddr>, String> {
    opt(m, key).map(|n| ip(n, &child(path, key))).transpose()
}

fn mac(node: &Node, path: &str) -> Result<String, String> {
    normalize_mac(text(node, path)?).ok_or_else(|| format!("{path}: not a MAC address"))
}

fn opt_mac(m: &Node, key: &str, path: &str) -> Result<Option<String>, String> {
    opt(m, key).map(|n| mac(n, &child(path, key))).transpose()
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// A prefix length, or a netmask of the address's family (`255.255.255.0`, `ffff:ffff::`).
fn prefix_of(raw: &str, family: IpAddr) -> Option<u8> {
    let raw = raw.trim();
    if !raw.is_empty() && raw.len() <= 3 && raw.bytes().all(|b| b.is_ascii_digit()) {
        let p: u8 = raw.parse().ok()?;
        return (p <= max_prefix(family)).then_some(p);
    }
    let mask: IpAddr = raw.parse().ok()?;
    let bits: u128 = match (mask, family) {
        (IpAddr::V4(m), IpAddr::V4(_)) => u128::from(u32::from(m)) << 96,
        (IpAddr::V6(m), IpAddr::V6(_)) => u128::from(m),
        _ => return None,
    };
    let ones = bits.leading_ones();
    // Contiguous: nothing set after the leading ones.
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return None;
    }
    u8::try_from(ones).ok()
}

/// `address/prefix` (the prefix may also be a netmask); `None` if not that shape.
pub fn parse_cidr(raw: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = raw.trim().split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    Some((addr, prefix_of(prefix, addr)?))
}

fn same_subnet(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    let (x, y, width) = match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (
            u128::from(u32::from(a)) << 96,
            u128::from(u32::from(b)) << 96,
            32u32,
        ),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
        _ => return false,
    };
    let p = u32::from(prefix).min(width);
    let mask = u128::MAX.checked_shl(128u32.saturating_sub(p)).unwrap_or(0);
    x & mask == y & mask
}

fn default_route(via: IpAddr) -> String {
    if via.is_ipv4() {
        "0.0.0.0/0".into()
    } else {
        "::/0".into()
    }
}

/// Interface names end up in file names and kernel calls: 1 to 15 bytes (IFNAMSIZ - 1) of
/// letters, digits and `-_.@`.
fn ifname(raw: &str, path: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 15
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
        && raw != "."
        && raw != "..";
    if ok {
        Ok(raw.to_string())
    } else {
        Err(format!("{path}: {raw:?} is not a valid interface name"))
    }
}

/// A link id that is not an interface name (v2 ethernets with `match`): up to 64 bytes of
/// letters, digits and `-_.@:`.
fn link_id(raw: &str, path: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b':'));
    if ok {
        Ok(raw.to_string())
    } else {
        Err(format!("{path}: {raw:?} is not a valid link id"))
    }
}

/// A search domain: a DNS name (letters, digits, `-`, `_`, `.`), at most 253 bytes.
fn domain(raw: &str, path: &str) -> Result<String, String> {
    let d = raw.trim().trim_end_matches('.');
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(d.to_ascii_lowercase())
    } else {
        Err(format!("{path}: {raw:?} is not a search domain"))
    }
}

/// A list of strings, or (v1 DNS fields) one string split on whitespace and commas.
fn words(node: &Node, path: &str, split_string: bool) -> Result<Vec<(String, String)>, String> {
    match node {
        Node::Scalar { text, .. } if split_string => Ok(text
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(|w| (w.to_string(), path.to_string()))
            .collect()),
        _ => seq(node, path)?
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let p = index(path, i);
                text(n, &p).map(|t| (t.to_string(), p))
            })
            .collect(),
    }
}

fn dns_lists(
    m: &Node,
    servers_key: &str,
    search_key: &str,
    path: &str,
    v1_strings: bool,
) -> Result<Dns, String> {
    let mut dns = Dns::default();
    if let Some(n) = opt(m, servers_key) {
        for (w, p) in words(n, &child(path, servers_key), v1_strings)? {
            let addr: IpAddr = w
                .parse()
                .map_err(|_| format!("{p}: {w:?} is not an IP address"))?;
            dns.nameservers.push(addr);
        }
    }
    if let Some(n) = opt(m, search_key) {
        for (w, p) in words(n, &child(path, search_key), v1_strings)? {
            dns.search.push(domain(&w, &p)?);
        }
    }
    Ok(dns)
}

/// Appends without duplicates, up to [`caps::NAMESERVERS`] and [`caps::SEARCH_DOMAINS`].
fn merge_dns(into: &mut Dns, from: Dns, path: &str, warnings: &mut Vec<String>) {
    for ns in from.nameservers {
        if let Some(cut) = caps::NAMESERVERS.add(&mut into.nameservers, ns) {
            warnings.push(format!("{path}: {cut}"));
            break;
        }
    }
    for s in from.search {
        if let Some(cut) = caps::SEARCH_DOMAINS.add(&mut into.search, s) {
            warnings.push(format!("{path}: {cut}"));
            break;
        }
    }
}

fn push_addressing(link: &mut Link, a: Addressing, path: &str, warnings: &mut Vec<String>) {
    if link.addressing.contains(&a) {
        return;
    }
    if matches!(a, Addressing::Static { .. }) {
        let statics = link
            .addressing
            .iter()
            .filter(|x| matches!(x, Addressing::Static { .. }))
            .count();
        if !caps::ADDRESSES.room(statics) {
            warnings.push(format!("{path}: {}: {}", link.id, caps::ADDRESSES.cut()));
            return;
        }
    }
    link.addressing.push(a);
}

fn push_route(link: &mut Link, r: Route, path: &str, warnings: &mut Vec<String>) {
    if link.routes.contains(&r) {
        return;
    }
    if !caps::ROUTES.room(link.routes.len()) {
        warnings.push(format!("{path}: {}: {}", link.id, caps::ROUTES.cut()));
        return;
    }
    link.routes.push(r);
}

/// Puts a `gateway4`/`gateway6` (or a dynamic subnet's `gateway`) on the first static address
/// of its family that has none, or else makes it a default route.
fn place_gateway(link: &mut Link, gw: IpAddr, path: &str, warnings: &mut Vec<String>) {
    let slot = link.addressing.iter_mut().find_map(|a| match a {
        Addressing::Static {
            address, gateway, ..
        } if address.is_ipv4() == gw.is_ipv4() && gateway.is_none() => Some(gateway),
        _ => None,
    });
    match slot {
        Some(g) => *g = Some(gw),
        None => push_route(
            link,
            Route {
                to: default_route(gw),
                via: Some(gw),
                metric: None,
                table: None,
            },
            path,
            warnings,
        ),
    }
}

/// Scalar option values as renderers want them: booleans spelled `true`/`false`, lists
/// joined with `,`.
fn option_value(node: &Node, path: &str) -> Result<String, String> {
    match node {
        Node::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| option_value(n, &index(path, i)))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(",")),
        Node::Scalar { text, .. } => Ok(match boolean(node, path) {
            Ok(b) => b.to_string(),
            Err(_) => text.clone(),
        }),
        Node::Null => Ok(String::new()),
        Node::Map(_) => Err(format!("{path}: not a single value or list")),
    }
}

/// netplan bond parameter → kernel sysfs option name.
fn v2_bond_key(key: &str) -> String {
    match key {
        "mii-monitor-interval" => "miimon",
        "transmit-hash-policy" => "xmit_hash_policy",
        "lacp-rate" => "lacp_rate",
        "ad-select" => "ad_select",
        "all-slaves-active" | "all-members-active" => "all_slaves_active",
        "arp-interval" => "arp_interval",
        "arp-ip-targets" => "arp_ip_target",
        "arp-validate" => "arp_validate",
        "arp-all-targets" => "arp_all_targets",
        "up-delay" => "updelay",
        "down-delay" => "downdelay",
        "fail-over-mac-policy" => "fail_over_mac",
        "gratuitous-arp" => "num_grat_arp",
        "packets-per-slave" | "packets-per-member" => "packets_per_slave",
        "primary-reselect-policy" => "primary_reselect",
        "resend-igmp" => "resend_igmp",
        "learn-packet-interval" => "lp_interval",
        "min-links" => "min_links",
        other => return other.replace('-', "_"),
    }
    .to_string()
}

/// v1 bridge parameter (`bridge_fd`) → the names v2 uses, with `_`.
fn v1_bridge_key(key: &str) -> String {
    let k = key
        .strip_prefix("bridge_")
        .or_else(|| key.strip_prefix("bridge-"))
        .unwrap_or(key);
    match k {
        "fd" => "forward_delay",
        "hello" => "hello_time",
        "maxage" => "max_age",
        "bridgeprio" => "priority",
        "ageing" => "ageing_time",
        "gcint" => "gc_interval",
        "pathcost" => "path_cost",
        "portprio" => "port_priority",
        other => return other.replace('-', "_"),
    }
    .to_string()
}

fn bond_kind(
    members: Vec<String>,
    params: Option<&Node>,
    path: &str,
    v1: bool,
) -> Result<LinkKind, String> {
    let mut mode = "balance-rr";
    let mut options = BTreeMap::new();
    if let Some(p) = params {
        let ppath = child(path, if v1 { "params" } else { "parameters" });
        for (key, value) in entries(p, &ppath)? {
            let kpath = child(&ppath, key);
            let name = if v1 {
                key.strip_prefix("bond-")
                    .or_else(|| key.strip_prefix("bond_"))
                    .unwrap_or(key)
                    .replace('-', "_")
            } else {
                v2_bond_key(key)
            };
            // ENI leftovers that are not options.
            if matches!(name.as_str(), "slaves" | "master") || *value == Node::Null {
                continue;
            }
            if name == "mode" {
                let raw = text(value, &kpath)?;
                mode = crate::context::bond_mode_name(raw)
                    .ok_or_else(|| format!("{kpath}: {raw:?} is not a bonding mode"))?;
            } else {
                options.insert(name, option_value(value, &kpath)?);
            }
        }
    }
    Ok(LinkKind::Bond {
        mode: mode.to_string(),
        members,
        options,
    })
}

fn bridge_kind(
    members: Vec<String>,
    params: Option<&Node>,
    path: &str,
    v1: bool,
) -> Result<LinkKind, String> {
    let mut options = BTreeMap::new();
    if let Some(p) = params {
        let ppath = child(path, if v1 { "params" } else { "parameters" });
        for (key, value) in entries(p, &ppath)? {
            let kpath = child(&ppath, key);
            let name = if v1 {
                v1_bridge_key(key)
            } else {
                key.replace('-', "_")
            };
            if *value == Node::Null || name == "hw" || name == "ports" {
                continue;
            }
            match (name.as_str(), value) {
                // v2: {port: value}; v1: ["port value", ...].
                ("path_cost" | "port_priority", Node::Map(ports)) => {
                    for (port, v) in ports {
                        let vp = child(&kpath, port);
                        options.insert(format!("{name}.{port}"), text(v, &vp)?.to_string());
                    }
                }
                ("path_cost" | "port_priority", Node::Seq(_) | Node::Scalar { .. }) => {
                    for (w, p) in words(value, &kpath, false).or_else(|_| {
                        text(value, &kpath).map(|t| vec![(t.to_string(), kpath.clone())])
                    })? {
                        let (port, v) = w
                            .split_once(char::is_whitespace)
                            .ok_or_else(|| format!("{p}: {w:?} is not \"port value\""))?;
                        options.insert(format!("{name}.{port}"), v.trim().to_string());
                    }
                }
                _ => {
                    options.insert(name, option_value(value, &kpath)?);
                }
            }
        }
    }
    Ok(LinkKind::Bridge { members, options })
}

fn member_list(m: &Node, key: &str, path: &str) -> Result<Vec<String>, String> {
    match opt(m, key) {
        None => Ok(Vec::new()),
        Some(n) => words(n, &child(path, key), false)?
            .into_iter()
            .map(|(w, p)| link_id(&w, &p))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// Version 1.

fn v1(config: &[Node], b: &mut Builder) -> Result<(), String> {
    for (i, entry) in config.iter().enumerate() {
        let path = index("config", i);
        map(entry, &path)?;
        let kind = req_text(entry, "type", &path)?;
        let link_kind = match kind {
            "physical" | "infiniband" => Some(LinkKind::Physical),
            "bond" => {
                let members = member_list(entry, "bond_interfaces", &path)?;
                Some(bond_kind(members, opt(entry, "params"), &path, true)?)
            }
            "bridge" => {
                let members = member_list(entry, "bridge_interfaces", &path)?;
                Some(bridge_kind(members, opt(entry, "params"), &path, true)?)
            }
            "vlan" => {
                let parent = link_id(
                    req_text(entry, "vlan_link", &path)?,
                    &child(&path, "vlan_link"),
                )?;
                let id = vlan_id(entry, "vlan_id", &path)?;
                Some(LinkKind::Vlan { id, parent })
            }
            _ => None,
        };
        // Every v1 interface entry is named by `name`, which is also the interface name.
        if let Some(link_kind) = link_kind {
            let name = ifname(req_text(entry, "name", &path)?, &child(&path, "name"))?;
            let mut link = Link::new(name.clone(), link_kind);
            link.name = Some(name);
            v1_link(&mut link, entry, &path, b)?;
            b.add_link(link, &path)?;
            continue;
        }
        match kind {
            "nameserver" => {
                let dns = dns_lists(entry, "address", "search", &path, true)?;
                match opt_text(entry, "interface", &path)? {
                    Some(iface) => b.link_dns.push((path, iface.to_string(), dns)),
                    None => {
                        let mut w = Vec::new();
                        merge_dns(&mut b.dns, dns, &path, &mut w);
                        b.warnings.extend(w);
                    }
                }
            }
            "route" => {
                if let Some(r) = v1_route(entry, &path)? {
                    b.global_routes.push((path, r));
                }
            }
            "loopback" => b.warn(format!(
                "{path}: loopback entries are not supported; skipped"
            )),
            other => return Err(format!("{}: unknown type {other:?}", child(&path, "type"))),
        }
    }
    Ok(())
}

fn vlan_id(m: &Node, key: &str, path: &str) -> Result<u16, String> {
    let p = child(path, key);
    let n = opt(m, key).ok_or_else(|| format!("{p}: missing"))?;
    let v = number(n, &p)?;
    // 0 is priority tagging and 4095 reserved (IEEE 802.1Q); netplan allows 0..=4094.
    u16::try_from(v)
        .ok()
        .filter(|v| *v <= 4094)
        .ok_or_else(|| format!("{p}: {v} is not a VLAN id (0..=4094)"))
}

/// Fields every v1 link entry has: `mac_address`, `mtu`, `accept-ra`, `subnets`.
fn v1_link(link: &mut Link, entry: &Node, path: &str, b: &mut Builder) -> Result<(), String> {
    link.mac = opt_mac(entry, "mac_address", path)?;
    link.mtu = opt_mtu(entry, path)?;
    let spath = child(path, "subnets");
    let subnets = match opt(entry, "subnets") {
        Some(n) => seq(n, &spath)?,
        None => &[],
    };
    let mut warnings = Vec::new();
    let mut gateways = Vec::new();
    for (i, sub) in subnets.iter().enumerate() {
        let p = index(&spath, i);
        map(sub, &p)?;
        let kind = req_text(sub, "type", &p)?;
        let mut dynamic = true;
        match kind {
            "dhcp" | "dhcp4" => push_addressing(link, Addressing::Dhcp4, &p, &mut warnings),
            "dhcp6" | "ipv6_dhcpv6-stateful" => {
                push_addressing(link, Addressing::Dhcp6, &p, &mut warnings)
            }
            "ipv6_dhcpv6-stateless" => push_addressing(
                link,
                Addressing::Slaac { dhcp6_info: true },
                &p,
                &mut warnings,
            ),
            "ipv6_slaac" => push_addressing(
                link,
                Addressing::Slaac { dhcp6_info: false },
                &p,
                &mut warnings,
            ),
            "static" | "static6" => {
                dynamic = false;
                let (address, prefix) = v1_address(sub, &p, &mut warnings)?;
                let gateway = opt_ip(sub, "gateway", &p)?;
                if let Some(gw) = gateway {
                    if gw.is_ipv4() != address.is_ipv4() {
                        return Err(format!(
                            "{}: not the same IP version as the address",
                            child(&p, "gateway")
                        ));
                    }
                }
                push_addressing(
                    link,
                    Addressing::Static {
                        address,
                        prefix,
                        gateway,
                    },
                    &p,
                    &mut warnings,
                );
                if let Some(mtu) = opt_mtu(sub, &p)? {
                    if address.is_ipv4() {
                        link.mtu = Some(mtu);
                    } else if link.mtu != Some(mtu) {
                        warnings.push(format!(
                            "{}: an IPv6-only MTU is not supported; dropped",
                            child(&p, "mtu")
                        ));
                    }
                }
            }
            "manual" => {}
            other => {
                return Err(format!(
                    "{}: unknown subnet type {other:?}",
                    child(&p, "type")
                ))
            }
        }
        if dynamic {
            if let Some(gw) = opt_ip(sub, "gateway", &p)? {
                gateways.push((gw, p.clone()));
            }
        }
        let dns = dns_lists(sub, "dns_nameservers", "dns_search", &p, true)?;
        merge_dns(&mut link.dns, dns, &p, &mut warnings);
        if let Some(routes) = opt(sub, "routes") {
            let rpath = child(&p, "routes");
            for (j, r) in seq(routes, &rpath)?.iter().enumerate() {
                let rp = index(&rpath, j);
                if let Some(route) = v1_route(r, &rp)? {
                    push_route(link, route, &rp, &mut warnings);
                }
            }
        }
    }
    for (gw, p) in gateways {
        place_gateway(link, gw, &p, &mut warnings);
    }
    if opt_bool(entry, "accept-ra", path)? == Some(true) {
        accept_ra(link, path, &mut warnings);
    }
    b.warnings.extend(warnings);
    Ok(())
}

/// `accept-ra: true` without DHCPv6 or SLAAC asks for router advertisements.
fn accept_ra(link: &mut Link, path: &str, warnings: &mut Vec<String>) {
    let has_v6_dynamic = link
        .addressing
        .iter()
        .any(|a| matches!(a, Addressing::Dhcp6 | Addressing::Slaac { .. }));
    if !has_v6_dynamic {
        push_addressing(
            link,
            Addressing::Slaac { dhcp6_info: false },
            path,
            warnings,
        );
    }
}

/// A v1 static subnet's address: `address/prefix`, `address/netmask`, `address` +
/// `netmask`, or `address` + `prefix`; else cloud-init's default /24 or /64.
fn v1_address(sub: &Node, path: &str, warnings: &mut Vec<String>) -> Result<(IpAddr, u8), String> {
    let apath = child(path, "address");
    let raw = req_text(sub, "address", path)?;
    if raw.contains('/') {
        return parse_cidr(raw).ok_or_else(|| format!("{apath}: not an address/prefix"));
    }
    let address: IpAddr = raw
        .trim()
        .parse()
        .map_err(|_| format!("{apath}: not an IP address"))?;
    for key in ["netmask", "prefix"] {
        if let Some(mask) = opt_text(sub, key, path)? {
            let p = prefix_of(mask, address).ok_or_else(|| {
                format!(
                    "{}: not a prefix or netmask for {address}",
                    child(path, key)
                )
            })?;
            return Ok((address, p));
        }
    }
    let p = if address.is_ipv4() { 24 } else { 64 };
    warnings.push(format!(
        "{apath}: no prefix or netmask; using /{p} as cloud-init does"
    ));
    Ok((address, p))
}

/// A v1 route (`destination` or `network` + `netmask`/`prefix`, `gateway`, `metric`,
/// `table`).
fn v1_route(r: &Node, path: &str) -> Result<Option<Route>, String> {
    map(r, path)?;
    let via = opt_ip(r, "gateway", path)?;
    let metric = opt_metric(r, path)?;
    let to = if let Some(dest) = opt_text(r, "destination", path)? {
        route_target(dest, via, &child(path, "destination"))?
    } else {
        let npath = child(path, "network");
        let net = req_text(r, "network", path)?;
        if net.contains('/') {
            route_target(net, via, &npath)?
        } else {
            let addr: IpAddr = net
                .trim()
                .parse()
                .map_err(|_| format!("{npath}: not an IP address"))?;
            let mut prefix = max_prefix(addr);
            for key in ["netmask", "prefix"] {
                if let Some(mask) = opt_text(r, key, path)? {
                    prefix = prefix_of(mask, addr).ok_or_else(|| {
                        format!("{}: not a prefix or netmask for {addr}", child(path, key))
                    })?;
                    break;
                }
            }
            format!("{addr}/{prefix}")
        }
    };
    let table = opt_table(r, path)?;
    check_route_family(&to, via, path)?;
    Ok(Some(Route {
        to,
        via,
        metric,
        table,
    }))
}

/// A route destination: `default`, `a.b.c.d/nn`, or a bare address (a host route).
fn route_target(raw: &str, via: Option<IpAddr>, path: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw == "default" {
        return match via {
            Some(v) => Ok(default_route(v)),
            None => Err(format!(
                "{path}: `default` needs a gateway to tell IPv4 from IPv6"
            )),
        };
    }
    if raw.contains('/') {
        let (addr, prefix) =
            parse_cidr(raw).ok_or_else(|| format!("{path}: not an address/prefix"))?;
        return Ok(format!("{addr}/{prefix}"));
    }
    let addr: IpAddr = raw
        .parse()
        .map_err(|_| format!("{path}: not an address/prefix"))?;
    Ok(format!("{addr}/{}", max_prefix(addr)))
}

fn check_route_family(to: &str, via: Option<IpAddr>, path: &str) -> Result<(), String> {
    if let (Some(via), Some((dest, _))) = (via, parse_cidr(to)) {
        if via.is_ipv4() != dest.is_ipv4() {
            return Err(format!(
                "{path}: gateway {via} is not the same IP version as {to}"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Version 2.

/// What makes a v2 virtual device the link it is, from its node and path.
type VirtualKind = fn(&Node, &str) -> Result<LinkKind, String>;

fn v2(root: &Node, b: &mut Builder) -> Result<(), String> {
    for unsupported in [
        "wifis",
        "tunnels",
        "vrfs",
        "modems",
        "nm-devices",
        "dummy-devices",
    ] {
        if opt(root, unsupported).is_some() {
            b.warn(format!("{unsupported}: not supported; skipped"));
        }
    }
    if let Some(eths) = opt(root, "ethernets") {
        for (id, dev) in entries(eths, "ethernets")? {
            let path = child("ethernets", id);
            map(dev, &path)?;
            let link = v2_ethernet(id, dev, &path, b)?;
            b.add_link(link, &path)?;
        }
    }
    // Bonds, VLANs and bridges: a virtual link named by its key, with what makes it one.
    let virtuals: [(&str, VirtualKind); 3] = [
        ("bonds", |dev, path| {
            let members = member_list(dev, "interfaces", path)?;
            bond_kind(members, opt(dev, "parameters"), path, false)
        }),
        ("vlans", |dev, path| {
            let id = vlan_id(dev, "id", path)?;
            let parent = link_id(req_text(dev, "link", path)?, &child(path, "link"))?;
            Ok(LinkKind::Vlan { id, parent })
        }),
        ("bridges", |dev, path| {
            let members = member_list(dev, "interfaces", path)?;
            bridge_kind(members, opt(dev, "parameters"), path, false)
        }),
    ];
    for (section, kind_of) in virtuals {
        let Some(devs) = opt(root, section) else {
            continue;
        };
        for (id, dev) in entries(devs, section)? {
            let path = child(section, id);
            map(dev, &path)?;
            let name = ifname(id, &path)?;
            let mut link = Link::new(name.clone(), kind_of(dev, &path)?);
            link.name = Some(name);
            link.mac = opt_mac(dev, "macaddress", &path)?;
            v2_common(&mut link, dev, &path, b)?;
            b.add_link(link, &path)?;
        }
    }
    Ok(())
}

/// Naming (netplan): without `match` the id is the interface name; with
/// `match.macaddress` the NIC is found by MAC (named by `set-name`, else by the host);
/// `match.name` without glob characters is the name. `set-name` always wins.
fn v2_ethernet(id: &str, dev: &Node, path: &str, b: &mut Builder) -> Result<Link, String> {
    let id = link_id(id, path)?;
    let mut link = Link::new(id.clone(), LinkKind::Physical);
    let set_name = opt_text(dev, "set-name", path)?
        .map(|n| ifname(n, &child(path, "set-name")))
        .transpose()?;
    let mut matched_name = None;
    let mut has_match = false;
    if let Some(m) = opt(dev, "match") {
        let mpath = child(path, "match");
        map(m, &mpath)?;
        link.mac = opt_mac(m, "macaddress", &mpath)?;
        has_match = link.mac.is_some();
        if let Some(n) = opt_text(m, "name", &mpath)? {
            has_match = true;
            if n.contains(['*', '?', '[']) {
                b.warn(format!(
                    "{mpath}.name: glob {n:?} is not supported; {id} is configured only if \
                     it has a MAC or set-name"
                ));
            } else {
                matched_name = Some(ifname(n, &child(&mpath, "name"))?);
            }
        }
        if opt(m, "driver").is_some() {
            has_match = true;
            b.warn(format!(
                "{mpath}.driver: matching by driver is not supported; ignored"
            ));
        }
    }
    link.name = set_name.or(matched_name).or(if has_match {
        None
    } else {
        Some(ifname(&id, path)?)
    });
    if opt(dev, "macaddress").is_some() {
        b.warn(format!(
            "{path}.macaddress: setting an ethernet's MAC is not supported; ignored"
        ));
    }
    v2_common(&mut link, dev, path, b)?;
    Ok(link)
}

/// Fields every v2 device has.
fn v2_common(link: &mut Link, dev: &Node, path: &str, b: &mut Builder) -> Result<(), String> {
    let mut warnings = Vec::new();
    if let Some(mtu) = opt_mtu(dev, path)? {
        link.mtu = Some(mtu);
    }
    if opt_bool(dev, "dhcp4", path)? == Some(true) {
        push_addressing(link, Addressing::Dhcp4, path, &mut warnings);
    }
    if opt_bool(dev, "dhcp6", path)? == Some(true) {
        push_addressing(link, Addressing::Dhcp6, path, &mut warnings);
    }
    if let Some(addrs) = opt(dev, "addresses") {
        let apath = child(path, "addresses");
        for (i, a) in seq(addrs, &apath)?.iter().enumerate() {
            let p = index(&apath, i);
            // netplan also allows `- 10.0.0.1/24: {lifetime: 0, label: x}`.
            let raw = match a {
                Node::Map(entries) if entries.len() == 1 => {
                    entries.first().map(|(k, _)| k.as_str()).unwrap_or("")
                }
                _ => text(a, &p)?,
            };
            let (address, prefix) =
                parse_cidr(raw).ok_or_else(|| format!("{p}: not an address/prefix"))?;
            push_addressing(
                link,
                Addressing::Static {
                    address,
                    prefix,
                    gateway: None,
                },
                &p,
                &mut warnings,
            );
        }
    }
    for (key, v4) in [("gateway4", true), ("gateway6", false)] {
        if let Some(gw) = opt_ip(dev, key, path)? {
            let p = child(path, key);
            if gw.is_ipv4() != v4 {
                return Err(format!("{p}: not an IPv{} address", if v4 { 4 } else { 6 }));
            }
            place_gateway(link, gw, &p, &mut warnings);
        }
    }
    if let Some(routes) = opt(dev, "routes") {
        let rpath = child(path, "routes");
        for (i, r) in seq(routes, &rpath)?.iter().enumerate() {
            let p = index(&rpath, i);
            map(r, &p)?;
            let via = opt_ip(r, "via", &p)?;
            let to = route_target(req_text(r, "to", &p)?, via, &child(&p, "to"))?;
            check_route_family(&to, via, &p)?;
            let metric = opt_metric(r, &p)?;
            let table = opt_table(r, &p)?;
            if let Some(t) = opt_text(r, "type", &p)? {
                if t != "unicast" {
                    warnings.push(format!(
                        "{p}.type: {t:?} routes are not supported; route to {to} dropped"
                    ));
                    continue;
                }
            }
            let route = Route {
                to,
                via,
                metric,
                table,
            };
            push_route(link, route, &p, &mut warnings);
        }
    }
    if let Some(ns) = opt(dev, "nameservers") {
        let npath = child(path, "nameservers");
        map(ns, &npath)?;
        let dns = dns_lists(ns, "addresses", "search", &npath, false)?;
        merge_dns(&mut link.dns, dns, &npath, &mut warnings);
    }
    if opt_bool(dev, "accept-ra", path)? == Some(true) {
        accept_ra(link, path, &mut warnings);
    }
    if let Some(rules) = opt(dev, "routing-policy") {
        let rpath = child(path, "routing-policy");
        for (i, r) in seq(rules, &rpath)?.iter().enumerate() {
            let p = index(&rpath, i);
            map(r, &p)?;
            let ends = |key: &str| -> Result<Option<String>, String> {
                opt_text(r, key, &p)?
                    .map(|t| rule_end(t, &child(&p, key)))
                    .transpose()
            };
            let rule = RoutingRule {
                from: ends("from")?,
                to: ends("to")?,
                table: opt_table(r, &p)?.ok_or_else(|| format!("{p}: a rule needs a table"))?,
                priority: opt_ranged(r, "priority", &p, 0, u64::from(u32::MAX))?
                    .and_then(|v| u32::try_from(v).ok()),
            };
            if !caps::RULES.room(link.rules.len()) {
                warnings.push(format!("{p}: {}", caps::RULES.cut()));
                break;
            }
            link.rules.push(rule);
        }
    }
    for unsupported in ["dhcp4-overrides", "dhcp6-overrides"] {
        if opt(dev, unsupported).is_some() {
            warnings.push(format!(
                "{}: not supported; ignored",
                child(path, unsupported)
            ));
        }
    }
    b.warnings.extend(warnings);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::testutil::fixtures;

    fn ok(doc: &str) -> Parsed {
        match parse(doc) {
            Ok(p) => p,
            Err(e) => panic!("case {doc:?}: {e}"),
        }
    }

    fn link<'a>(p: &'a Parsed, id: &str) -> &'a Link {
        p.network
            .links
            .iter()
            .find(|l| l.id == id)
            .unwrap_or_else(|| panic!("no link {id} in {:?}", p.network.links))
    }

    fn st(addr: &str, prefix: u8, gw: Option<&str>) -> Addressing {
        Addressing::Static {
            address: addr.parse().unwrap(),
            prefix,
            gateway: gw.map(|g| g.parse().unwrap()),
        }
    }

    #[test]
    fn cidr_and_masks() {
        let cases: &[(&str, Option<(&str, u8)>)] = &[
            ("10.0.0.1/24", Some(("10.0.0.1", 24))),
            ("10.0.0.1/255.255.0.0", Some(("10.0.0.1", 16))),
            ("10.0.0.1/0", Some(("10.0.0.1", 0))),
            ("2001:db8::1/64", Some(("2001:db8::1", 64))),
            ("2001:db8::1/ffff:ffff::", Some(("2001:db8::1", 32))),
            ("10.0.0.1/33", None),
            ("10.0.0.1/255.0.255.0", None),
            ("10.0.0.1/ffff::", None),
            ("10.0.0.1", None),
            ("10.0.0.256/24", None),
            ("10.0.0.1/", None),
            ("x/24", None),
        ];
        for (raw, want) in cases {
            let want = want.map(|(a, p)| (a.parse::<IpAddr>().unwrap(), p));
            assert_eq!(parse_cidr(raw), want, "case {raw:?}");
        }
    }

    #[test]
    fn bond_modes() {
        let cases = [
            ("4", Some("802.3ad")),
            ("802.3ad", Some("802.3ad")),
            ("Active-Backup", Some("active-backup")),
            ("0", Some("balance-rr")),
            ("6", Some("balance-alb")),
            ("7", None),
            ("lacp", None),
        ];
        for (raw, want) in cases {
            assert_eq!(crate::context::bond_mode_name(raw), want, "case {raw:?}");
        }
    }

    #[test]
    fn yaml_scalars_stay_text() {
        // YAML 1.1 would read this MAC as a sexagesimal integer; we keep the text.
        let p = ok("version: 1\nconfig:\n- type: physical\n  name: eth0\n  mac_address: 10:20:30:40:50:59\n");
        assert_eq!(link(&p, "eth0").mac.as_deref(), Some("10:20:30:40:50:59"));
        // YAML 1.1 booleans, and JSON.
        let p = ok("version: 2\nethernets:\n  eth0:\n    dhcp4: yes\n    dhcp6: off\n");
        assert_eq!(link(&p, "eth0").addressing, vec![Addressing::Dhcp4]);
        let p = ok(r#"{"version": 2, "ethernets": {"eth0": {"dhcp4": true}}}"#);
        assert_eq!(link(&p, "eth0").addressing, vec![Addressing::Dhcp4]);
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let p = ok("version: 2\nethernets:\n  eth0: {dhcp4: true}\n  eth0: {dhcp6: true}\n");
        assert_eq!(p.network.links.len(), 1);
        assert_eq!(link(&p, "eth0").addressing, vec![Addressing::Dhcp6]);
    }

    #[test]
    fn anchors_expand() {
        let p = ok("version: 2\nethernets:\n  eth0:\n    nameservers: &ns\n      addresses: [1.1.1.1]\n  eth1:\n    nameservers: *ns\n");
        assert_eq!(
            link(&p, "eth1").dns.nameservers,
            vec!["1.1.1.1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn disabled_and_wrapped() {
        let p = ok("network:\n  version: 1\n  config: disabled\n");
        assert!(p.disabled && p.network.links.is_empty());
        let p = ok("network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true}\n");
        assert_eq!(link(&p, "eth0").name.as_deref(), Some("eth0"));
        let p = ok("version: 2\n");
        assert!(p.network.links.is_empty() && !p.disabled);
    }

    #[test]
    fn v2_naming_rules() {
        let doc = "version: 2\nethernets:\n  id0:\n    match: {macaddress: 'AA:BB:CC:DD:EE:01'}\n  id1:\n    match: {macaddress: 'aa:bb:cc:dd:ee:02'}\n    set-name: lan1\n  id2:\n    match: {name: ens5}\n  plain0: {}\n  glob:\n    match: {name: 'en*'}\n";
        let p = ok(doc);
        let names: Vec<(&str, Option<&str>, Option<&str>)> = p
            .network
            .links
            .iter()
            .map(|l| (l.id.as_str(), l.name.as_deref(), l.mac.as_deref()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("id0", None, Some("aa:bb:cc:dd:ee:01")),
                ("id1", Some("lan1"), Some("aa:bb:cc:dd:ee:02")),
                ("id2", Some("ens5"), None),
                ("plain0", Some("plain0"), None),
                ("glob", None, None),
            ]
        );
        assert!(
            p.warnings.iter().any(|w| w.contains("glob")),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn gateways_and_routes() {
        let p = ok("version: 2\nethernets:\n  eth0:\n    addresses: [10.0.0.2/24, '2001:db8::2/64']\n    gateway4: 10.0.0.1\n    gateway6: '2001:db8::1'\n    routes:\n    - {to: default, via: 10.0.0.254, metric: 5}\n    - {to: 192.168.0.0/16, via: 10.0.0.3, table: 7}\n    - {to: 10.9.9.9, via: 10.0.0.4}\n    routing-policy:\n    - {from: 10.0.0.2, to: 192.168.0.0/16, table: 7, priority: 100}\n");
        let l = link(&p, "eth0");
        assert_eq!(
            l.addressing,
            vec![
                st("10.0.0.2", 24, Some("10.0.0.1")),
                st("2001:db8::2", 64, Some("2001:db8::1"))
            ]
        );
        let routes: Vec<(&str, Option<u32>, Option<u32>)> = l
            .routes
            .iter()
            .map(|r| (r.to.as_str(), r.metric, r.table))
            .collect();
        assert_eq!(
            routes,
            vec![
                ("0.0.0.0/0", Some(5), None),
                ("192.168.0.0/16", None, Some(7)),
                ("10.9.9.9/32", None, None)
            ]
        );
        assert_eq!(
            l.rules,
            vec![RoutingRule {
                from: Some("10.0.0.2".into()),
                to: Some("192.168.0.0/16".into()),
                table: 7,
                priority: Some(100),
            }]
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        // A rule needs its table; a bad end is named.
        for (doc, want) in [
            (
                "version: 2\nethernets:\n  e:\n    routing-policy:\n    - {from: 10.0.0.2}\n",
                "needs a table",
            ),
            (
                "version: 2\nethernets:\n  e:\n    routing-policy:\n    - {from: x, table: 3}\n",
                "routing-policy[0].from",
            ),
        ] {
            let err = parse(doc).unwrap_err();
            assert!(
                err.message.contains(want) || err.object.contains(want),
                "case {doc}: {err}"
            );
        }
    }

    #[test]
    fn v1_global_route_and_iface_dns() {
        let p = ok("version: 1\nconfig:\n- {type: physical, name: eth0, subnets: [{type: static, address: 10.1.0.5, netmask: 255.255.0.0}]}\n- {type: route, destination: 172.16.0.0/12, gateway: 10.1.0.1, metric: 3}\n- {type: route, network: 10.99.0.0, netmask: 255.255.0.0, gateway: 192.0.2.1}\n- {type: nameserver, interface: eth0, address: 9.9.9.9, search: 'a.example b.example'}\n- {type: nameserver, address: [1.1.1.1]}\n");
        let l = link(&p, "eth0");
        assert_eq!(l.addressing, vec![st("10.1.0.5", 16, None)]);
        assert_eq!(l.routes.len(), 1, "{:?}", l.routes);
        assert_eq!(l.routes[0].to, "172.16.0.0/12");
        assert_eq!(l.routes[0].metric, Some(3));
        assert!(
            p.warnings.iter().any(|w| w.starts_with("config[2]")),
            "{:?}",
            p.warnings
        );
        assert_eq!(l.dns.search, vec!["a.example", "b.example"]);
        assert_eq!(
            p.network.dns.nameservers,
            vec!["1.1.1.1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn bond_and_bridge_options_normalized() {
        let v1 = ok("version: 1\nconfig:\n- {type: physical, name: a}\n- {type: physical, name: b}\n- type: bond\n  name: bond0\n  bond_interfaces: [a, b]\n  params: {bond-mode: 4, bond-miimon: 100, bond_xmit_hash_policy: layer3+4, bond-arp-ip-target: [10.0.0.1, 10.0.0.2]}\n- type: bridge\n  name: br0\n  bridge_interfaces: [bond0]\n  params: {bridge_stp: 'off', bridge_fd: 0, bridge_pathcost: ['bond0 50']}\n");
        let v2 = ok("version: 2\nethernets: {a: {}, b: {}}\nbonds:\n  bond0:\n    interfaces: [a, b]\n    parameters: {mode: 802.3ad, mii-monitor-interval: 100, transmit-hash-policy: layer3+4, arp-ip-targets: [10.0.0.1, 10.0.0.2]}\nbridges:\n  br0:\n    interfaces: [bond0]\n    parameters: {stp: false, forward-delay: 0, path-cost: {bond0: 50}}\n");
        for (case, p) in [("v1", &v1), ("v2", &v2)] {
            let bond = &link(p, "bond0").kind;
            let LinkKind::Bond {
                mode,
                members,
                options,
            } = bond
            else {
                panic!("case {case}: {bond:?}")
            };
            assert_eq!(mode, "802.3ad", "case {case}");
            assert_eq!(
                members,
                &vec!["a".to_string(), "b".to_string()],
                "case {case}"
            );
            let opts: Vec<(&str, &str)> = options
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(
                opts,
                vec![
                    ("arp_ip_target", "10.0.0.1,10.0.0.2"),
                    ("miimon", "100"),
                    ("xmit_hash_policy", "layer3+4")
                ],
                "case {case}"
            );
            let br = &link(p, "br0").kind;
            let LinkKind::Bridge { options, .. } = br else {
                panic!("case {case}: {br:?}")
            };
            // v1 quoted 'off' stays text; only unquoted booleans are normalized.
            let want_stp = if case == "v1" { "off" } else { "false" };
            assert_eq!(
                options.get("stp").map(String::as_str),
                Some(want_stp),
                "case {case}"
            );
            assert_eq!(
                options.get("forward_delay").map(String::as_str),
                Some("0"),
                "case {case}"
            );
            assert_eq!(
                options.get("path_cost.bond0").map(String::as_str),
                Some("50"),
                "case {case}"
            );
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("version: 2\nethernets:\n  eth0:\n    addresses: [10.0.0.1/24, bogus]\n", "ethernets.eth0.addresses[1]: not an address/prefix"),
            ("version: 2\nethernets:\n  eth0:\n    addresses: 10.0.0.1/24\n", "ethernets.eth0.addresses: not a list"),
            ("version: 2\nethernets:\n  eth0: {dhcp4: 'yes'}\n", "ethernets.eth0.dhcp4: not true or false"),
            ("version: 2\nethernets:\n  eth0: {mtu: big}\n", "ethernets.eth0.mtu: not a number"),
            ("version: 2\nethernets:\n  eth0: {mtu: 70000}\n", "ethernets.eth0.mtu: 70000 is not in 68..=65535"),
            ("version: 2\nethernets: {eth0: {}}\nvlans:\n  v5: {id: 5000, link: eth0}\n", "vlans.v5.id: 5000 is not a VLAN id (0..=4094)"),
            ("version: 2\nvlans:\n  v5: {id: 5, link: eth9}\n", "v5: parent \"eth9\" is not defined"),
            ("version: 2\nbonds:\n  bond0: {interfaces: [x]}\n", "bond0: member \"x\" is not defined"),
            ("version: 2\nbonds:\n  bond0: {parameters: {mode: fast}}\n", "bonds.bond0.parameters.mode: \"fast\" is not a bonding mode"),
            ("version: 2\nethernets:\n  eth0: {gateway4: '2001:db8::1'}\n", "ethernets.eth0.gateway4: not an IPv4 address"),
            ("version: 2\nethernets:\n  eth0: {match: {macaddress: zz}}\n", "ethernets.eth0.match.macaddress: not a MAC address"),
            ("version: 2\nethernets:\n  'eth0 x': {}\n", "ethernets.eth0 x: \"eth0 x\" is not a valid link id"),
            ("version: 2\nethernets:\n  thisnameiswaytoolong: {}\n", "is not a valid interface name"),
            ("version: 2\nethernets:\n  eth0: {nameservers: {addresses: [dns.example]}}\n", "ethernets.eth0.nameservers.addresses[0]: \"dns.example\" is not an IP address"),
            ("version: 3\n", "version: \"3\" is not 1 or 2"),
            ("ethernets: {}\n", "version: missing"),
            ("- a\n", "not a mapping"),
            ("version: 1\nconfig:\n- {type: wifi, name: w0}\n", "config[0].type: unknown type \"wifi\""),
            ("version: 1\nconfig:\n- {type: physical, name: e0, subnets: [{type: static}]}\n", "config[0].subnets[0].address: missing"),
            ("version: 1\nconfig:\n- {type: physical, name: e0, subnets: [{type: static, address: 10.0.0.1, netmask: 255.0.255.0}]}\n", "config[0].subnets[0].netmask: not a prefix or netmask"),
            ("version: 1\nconfig:\n- {type: physical, name: e0}\n- {type: physical, name: e0}\n", "config[1]: link \"e0\" is defined twice"),
            ("version: 1\nconfig:\n- {type: vlan, name: v, vlan_link: e0, vlan_id: -1}\n", "config[0].vlan_id: not a number"),
            ("a: [1\n", "not valid YAML"),
            ("a: 1\n---\nb: 2\n", "more than one YAML document"),
            ("? [a]\n: 1\n", "mapping key is not a scalar"),
            ("a: *nope\n", "not valid YAML"),
            ("a: \0\n", "NUL byte at offset 3"),
        ];
        for (doc, want) in cases {
            match parse(doc) {
                Ok(p) => panic!("case {doc:?}: parsed {:?}", p.network),
                Err(e) => {
                    assert_eq!(e.object, "network-config", "case {doc:?}");
                    assert!(
                        e.message.contains(want),
                        "case {doc:?}: got {:?}",
                        e.message
                    );
                    assert!(
                        !e.to_string().contains('\n'),
                        "case {doc:?}: multi-line error"
                    );
                }
            }
        }
    }

    #[test]
    fn caps_are_enforced_and_warned() {
        let mut doc = String::from("version: 2\nethernets:\n  eth0:\n    addresses:\n");
        for i in 0..(caps::ADDRESSES.max + 5) {
            doc.push_str(&format!("    - 10.0.{}.{}/32\n", i / 250, i % 250 + 1));
        }
        doc.push_str("    routes:\n");
        for i in 0..(caps::ROUTES.max + 5) {
            doc.push_str(&format!(
                "    - {{to: 10.{}.{}.0/24, via: 10.0.0.1}}\n",
                100 + i / 250,
                i % 250
            ));
        }
        let p = ok(&doc);
        let l = link(&p, "eth0");
        assert_eq!(l.addressing.len(), caps::ADDRESSES.max);
        assert_eq!(l.routes.len(), caps::ROUTES.max);
        assert!(
            p.warnings.iter().any(|w| w.contains("addresses")),
            "{:?}",
            p.warnings
        );

        let mut doc = String::from("version: 2\nethernets:\n");
        for i in 0..(caps::LINKS.max + 3) {
            doc.push_str(&format!("  e{i}: {{}}\n"));
        }
        let p = ok(&doc);
        assert_eq!(p.network.links.len(), caps::LINKS.max);
        assert!(
            p.warnings.iter().any(|w| w.contains("links")),
            "{:?}",
            p.warnings
        );
    }

    /// Runs `f` on a small stack with a time limit: hostile input must neither overflow the
    /// stack nor hang.
    fn bounded<T: Send + 'static>(case: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let start = std::time::Instant::now();
        let out = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("case {case}: panicked"));
        assert!(
            start.elapsed().as_secs() < 20,
            "case {case}: took {:?}",
            start.elapsed()
        );
        out
    }

    #[test]
    fn hostile_yaml_is_bounded() {
        let one_mib = 1024 * 1024;
        let cases: Vec<(&str, String, &str)> = vec![
            // The scanner's own flow limit (255) may fire before ours: either is fine.
            (
                "flow nesting",
                "[".repeat(one_mib),
                "recursion limit|nested deeper",
            ),
            (
                "flow mapping nesting",
                "{a: ".repeat(one_mib / 4),
                "recursion limit|nested deeper",
            ),
            ("shallow flow nesting", "[".repeat(100), "nested deeper"),
            (
                "block nesting",
                (0..200)
                    .map(|i| format!("{}- \n", "  ".repeat(i)))
                    .collect::<String>()
                    .replace("- \n", "-\n")
                    + &format!("{}- x\n", "  ".repeat(200)),
                "nested deeper",
            ),
            (
                "block mapping nesting",
                (0..200)
                    .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                    .collect(),
                "nested deeper",
            ),
            (
                "billion laughs",
                {
                    let mut s =
                        String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
                    for i in 1..10 {
                        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
                        s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
                    }
                    s
                },
                "aliases expand",
            ),
            (
                "long alias fan-out",
                format!(
                    "a: &a {}\nb: [{}]\n",
                    "x".repeat(100_000),
                    vec!["*a"; 200].join(", ")
                ),
                "aliases expand",
            ),
        ];
        for (case, doc, want) in cases {
            let got = bounded(case, move || crate::yaml::load(&doc));
            match got {
                Ok(_) => panic!("case {case}: accepted"),
                Err(e) => assert!(want.split('|').any(|w| e.contains(w)), "case {case}: {e}"),
            }
        }
        // Big but flat documents are fine and fast.
        let wide = format!(
            "version: 2\nethernets:\n  eth0:\n    nameservers:\n      search: [{}]\n",
            vec!["a.example"; 50_000].join(", ")
        );
        let p = bounded("wide", move || parse(&wide).map(|p| p.network.links.len()));
        assert_eq!(p, Ok(1));
    }

    #[test]
    fn garbage_never_panics() {
        // Truncations of every fixture at many points: each must end in Ok or Err, quickly.
        let dir = fixtures().join("netconfig");
        let mut docs = Vec::new();
        for case in std::fs::read_dir(&dir).unwrap() {
            let p = case.unwrap().path().join("input/network-config");
            docs.push(std::fs::read_to_string(p).unwrap());
        }
        bounded("truncations", move || {
            for doc in &docs {
                let mut cut = doc.len();
                while cut > 0 {
                    if let Some(prefix) = doc.get(..cut) {
                        let _ = parse(prefix);
                        let _ = parse(&prefix.replace(':', "\t"));
                    }
                    cut = cut.saturating_sub(7);
                }
            }
        });
    }

    // ---- Semantic comparison with the renders other tools expect (FORMAT.md). ----

    /// What an expected render says about one interface.
    #[derive(Debug, Default, Clone)]
    struct Facts {
        addrs: BTreeSet<String>,
        dhcp4: bool,
        dynamic6: bool,
        gateways: BTreeSet<IpAddr>,
        vlan_id: Option<u16>,
        master: Option<String>,
    }

    type Renders = std::collections::BTreeMap<String, Facts>;

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    /// `[section]` / `key=value` lines of an INI-like file (networkd, NM keyfile).
    fn ini(text: &str) -> Vec<(String, String, String)> {
        let mut section = String::new();
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.trim_matches(['[', ']']).to_string();
            } else if let Some((k, v)) = line.split_once('=') {
                if !line.starts_with('#') {
                    out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
                }
            }
        }
        out
    }

    fn networkd(dir: &Path) -> Renders {
        let mut r = Renders::new();
        for f in files(dir) {
            let text = std::fs::read_to_string(&f).unwrap();
            let kv = ini(&text);
            let name = kv
                .iter()
                .find(|(s, k, _)| (s == "Match" || s == "NetDev") && k == "Name")
                .map(|(_, _, v)| v.clone())
                .unwrap();
            let facts = r.entry(name.clone()).or_default();
            // Sections of one kind repeat, so walk them in order.
            let mut route_gw = None;
            let sections: Vec<&str> = text.lines().map(str::trim).collect();
            for line in sections {
                if line.starts_with('[') {
                    if let Some(gw) = route_gw.take() {
                        facts.gateways.insert(gw);
                    }
                    continue;
                }
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                match k {
                    "Address" => {
                        facts.addrs.insert(v.to_string());
                    }
                    "DHCP" => {
                        facts.dhcp4 |= v == "ipv4" || v == "yes";
                        facts.dynamic6 |= v == "ipv6" || v == "yes";
                    }
                    "Gateway" => route_gw = Some(v.parse().unwrap()),
                    "Id" if f.extension().is_some_and(|e| e == "netdev") => {
                        facts.vlan_id = Some(v.parse().unwrap())
                    }
                    "Bond" | "Bridge" if f.extension().is_some_and(|e| e == "network") => {
                        facts.master = Some(v.to_string())
                    }
                    _ => {}
                }
            }
            if let Some(gw) = route_gw {
                facts.gateways.insert(gw);
            }
        }
        r
    }

    fn unquote(v: &str) -> &str {
        v.trim().trim_matches('"')
    }

    fn mask_prefix(mask: &str) -> u8 {
        prefix_of(mask, "0.0.0.0".parse().unwrap()).unwrap()
    }

    fn ifcfg(dir: &Path) -> Renders {
        let mut r = Renders::new();
        for f in files(dir) {
            let fname = f.file_name().unwrap().to_str().unwrap().to_string();
            let text = std::fs::read_to_string(&f).unwrap();
            if let Some(dev) = fname.strip_prefix("route6-") {
                let facts = r.entry(dev.to_string()).or_default();
                for line in text.lines().filter(|l| !l.starts_with('#')) {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    if let Some(i) = words.iter().position(|w| *w == "via") {
                        facts.gateways.insert(words[i + 1].parse().unwrap());
                    }
                }
                continue;
            }
            let kv: std::collections::BTreeMap<String, String> = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), unquote(v).to_string()))
                .collect();
            if let Some(dev) = fname.strip_prefix("route-") {
                let facts = r.entry(dev.to_string()).or_default();
                for (k, v) in &kv {
                    if k.starts_with("GATEWAY") {
                        facts.gateways.insert(v.parse().unwrap());
                    }
                }
                continue;
            }
            if !fname.starts_with("ifcfg-") {
                continue;
            }
            let dev = kv["DEVICE"].clone();
            let facts = r.entry(dev.clone()).or_default();
            for (k, v) in &kv {
                if let Some(n) = k.strip_prefix("IPADDR") {
                    let mask = &kv[&format!("NETMASK{n}")];
                    facts.addrs.insert(format!("{v}/{}", mask_prefix(mask)));
                }
            }
            for key in ["IPV6ADDR", "IPV6ADDR_SECONDARIES"] {
                if let Some(v) = kv.get(key) {
                    facts.addrs.extend(v.split_whitespace().map(str::to_string));
                }
            }
            facts.dhcp4 = kv.get("BOOTPROTO").is_some_and(|v| v == "dhcp");
            facts.dynamic6 = kv.get("DHCPV6C").is_some_and(|v| v == "yes")
                || kv.get("IPV6_AUTOCONF").is_some_and(|v| v == "yes");
            for key in ["GATEWAY", "IPV6_DEFAULTGW"] {
                if let Some(v) = kv.get(key) {
                    facts.gateways.insert(v.parse().unwrap());
                }
            }
            facts.master = kv.get("MASTER").cloned();
            if kv.get("VLAN").is_some_and(|v| v == "yes") {
                facts.vlan_id = dev.rsplit('.').next().and_then(|id| id.parse().ok());
            }
        }
        r
    }

    fn networkmanager(dir: &Path) -> Renders {
        let mut r = Renders::new();
        let mut uuids = std::collections::BTreeMap::new();
        let mut masters = Vec::new();
        for f in files(dir)
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "nmconnection"))
        {
            let kv = ini(&std::fs::read_to_string(&f).unwrap());
            let get = |s: &str, k: &str| {
                kv.iter()
                    .find(|(ss, kk, _)| ss == s && kk == k)
                    .map(|(_, _, v)| v.clone())
            };
            let name = get("connection", "id")
                .unwrap()
                .strip_prefix("cloud-init ")
                .unwrap()
                .to_string();
            uuids.insert(get("connection", "uuid").unwrap(), name.clone());
            if let Some(m) = get("connection", "master") {
                masters.push((name.clone(), m));
            }
            let facts = r.entry(name).or_default();
            for (s, k, v) in &kv {
                match (s.as_str(), k.as_str()) {
                    ("ipv4" | "ipv6", k) if k.starts_with("address") => {
                        facts.addrs.insert(v.split(',').next().unwrap().to_string());
                    }
                    ("ipv4" | "ipv6", "gateway") => {
                        facts.gateways.insert(v.parse().unwrap());
                    }
                    ("ipv4" | "ipv6", k)
                        if k.starts_with("route") && !k.contains('_') && k != "route-metric" =>
                    {
                        facts
                            .gateways
                            .insert(v.split(',').nth(1).unwrap().parse().unwrap());
                    }
                    ("ipv4", "method") => facts.dhcp4 = v == "auto",
                    ("ipv6", "method") => facts.dynamic6 = v == "auto" || v == "dhcp",
                    ("vlan", "id") => facts.vlan_id = Some(v.parse().unwrap()),
                    _ => {}
                }
            }
        }
        for (name, uuid) in masters {
            let m = uuids[&uuid].clone();
            r.get_mut(&name).unwrap().master = Some(m);
        }
        r
    }

    fn compare(case: &str, format: &str, p: &Parsed, want: &Renders) {
        let find = |n: &str| {
            p.network
                .links
                .iter()
                .find(|l| l.name.as_deref() == Some(n))
                .or_else(|| p.network.links.iter().find(|l| l.id == n))
        };
        for (name, f) in want {
            let ctx = format!("case {case} ({format}) interface {name}");
            let l = find(name).unwrap_or_else(|| panic!("{ctx}: no such link"));
            let addrs: BTreeSet<String> = l
                .addressing
                .iter()
                .filter_map(|a| match a {
                    Addressing::Static {
                        address, prefix, ..
                    } => Some(format!("{address}/{prefix}")),
                    _ => None,
                })
                .collect();
            let canon = |s: &String| {
                let (a, p) = parse_cidr(s).unwrap();
                format!("{a}/{p}")
            };
            let want_addrs: BTreeSet<String> = f.addrs.iter().map(canon).collect();
            assert_eq!(addrs, want_addrs, "{ctx}: static addresses");
            assert_eq!(
                l.addressing.contains(&Addressing::Dhcp4),
                f.dhcp4,
                "{ctx}: dhcp4"
            );
            let dyn6 = l
                .addressing
                .iter()
                .any(|a| matches!(a, Addressing::Dhcp6 | Addressing::Slaac { .. }));
            assert_eq!(dyn6, f.dynamic6, "{ctx}: dhcp6/slaac");
            let mut gws: BTreeSet<IpAddr> = l.routes.iter().filter_map(|r| r.via).collect();
            gws.extend(l.addressing.iter().filter_map(|a| match a {
                Addressing::Static { gateway, .. } => *gateway,
                _ => None,
            }));
            assert!(
                gws.is_superset(&f.gateways),
                "{ctx}: gateways {gws:?} lack some of {:?}",
                f.gateways
            );
            if let Some(id) = f.vlan_id {
                assert!(
                    matches!(&l.kind, LinkKind::Vlan { id: got, .. } if *got == id),
                    "{ctx}: vlan id {id} vs {:?}",
                    l.kind
                );
            }
            if let Some(m) = &f.master {
                let master = find(m).unwrap_or_else(|| panic!("{ctx}: no master {m}"));
                let members = match &master.kind {
                    LinkKind::Bond { members, .. } | LinkKind::Bridge { members, .. } => members,
                    other => panic!("{ctx}: master {m} is {other:?}"),
                };
                assert!(members.contains(&l.id), "{ctx}: not a member of {m}");
            }
        }
    }

    #[test]
    fn netconfig_fixtures_agree_with_expected_renders() {
        let dir = fixtures().join("netconfig");
        let mut checked = Vec::new();
        for case in files(&dir)
            .iter()
            .filter_map(|f| {
                f.strip_prefix(&dir)
                    .ok()?
                    .components()
                    .next()
                    .map(|c| c.as_os_str().to_owned())
            })
            .collect::<BTreeSet<_>>()
        {
            let case = case.to_str().unwrap().to_string();
            let root = dir.join(&case);
            let text = std::fs::read_to_string(root.join("input/network-config")).unwrap();
            let p = parse(&text).unwrap_or_else(|e| panic!("case {case}: {e}"));
            assert!(!p.network.links.is_empty(), "case {case}: no links");
            let mut formats = 0;
            for (format, extract) in [
                ("networkd", networkd as fn(&Path) -> Renders),
                ("sysconfig-rhel", ifcfg),
                ("networkmanager", networkmanager),
            ] {
                let d = root.join("expected").join(format);
                if d.is_dir() {
                    let want = extract(&d);
                    assert!(
                        !want.is_empty(),
                        "case {case} ({format}): nothing extracted"
                    );
                    compare(&case, format, &p, &want);
                    formats += 1;
                }
            }
            assert!(formats > 0, "case {case}: no expected render compared");
            checked.push(case);
        }
        assert_eq!(checked.len(), 20, "cases: {checked:?}");
    }
}

/// Test helpers shared by the NoCloud and OpenNebula tests.
#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
pub(crate) mod testutil {
    use crate::context::{Access, HostNic, Source, SourceKind};
    use crate::media::{MediaError, MediaErrorKind, Tree};
    use crate::state::StateDir;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The shared fixture corpus; CI has it beside the repository, so a missing one fails.
    pub(crate) fn fixtures() -> PathBuf {
        let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures"));
        assert!(p.is_dir(), "shared fixtures missing at {}", p.display());
        p
    }

    /// A state directory of its own, removed on drop.
    pub(crate) struct TempState(pub(crate) StateDir);

    impl TempState {
        pub(crate) fn new(name: &str) -> TempState {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "preroot-test-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            TempState(StateDir::new(dir))
        }
    }

    impl Drop for TempState {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.path());
        }
    }

    /// Host NICs as the fixture describes them (`input/sys/class/net/<if>/address`).
    pub(crate) fn host_nics(input: &Path) -> Vec<HostNic> {
        let mut nics = Vec::new();
        if let Ok(entries) = std::fs::read_dir(input.join("sys/class/net")) {
            for e in entries {
                let e = e.unwrap();
                let mac = std::fs::read_to_string(e.path().join("address")).unwrap();
                nics.push(HostNic {
                    name: e.file_name().to_str().unwrap().to_string(),
                    mac: mac.trim().to_ascii_lowercase(),
                });
            }
        }
        nics.sort_by(|a, b| a.name.cmp(&b.name));
        nics
    }

    pub(crate) fn source(kind: SourceKind) -> Source {
        Source {
            kind,
            medium: Access::Directory,
            location: "/test".into(),
            partition_of: None,
        }
    }

    /// An in-memory tree, for cases the fixtures do not cover.
    pub(crate) struct MemTree(pub(crate) BTreeMap<String, Vec<u8>>);

    impl MemTree {
        pub(crate) fn new(files: &[(&str, &[u8])]) -> MemTree {
            MemTree(
                files
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_vec()))
                    .collect(),
            )
        }
    }

    impl Tree for MemTree {
        fn read(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>, MediaError> {
            match self.0.get(path) {
                None => Ok(None),
                Some(data) if data.len() as u64 > cap => Err(MediaError::new(
                    path,
                    MediaErrorKind::TooLarge {
                        size: data.len() as u64,
                        cap,
                    },
                )),
                Some(data) => Ok(Some(data.clone())),
            }
        }

        fn list(&self, _dir: &str) -> Result<Option<Vec<String>>, MediaError> {
            Ok(Some(self.0.keys().cloned().collect()))
        }

        fn describe(&self) -> String {
            "memory".into()
        }
    }
}
