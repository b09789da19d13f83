//! NoCloud seed (`cidata`): `meta-data`, `user-data`, `vendor-data`, `network-config` at the
//! root of the medium, read into a [`Context`].
//!
//! Follows cloud-init's "NoCloud" datasource docs and `DataSourceNoCloud.py`:
//! - `meta-data` (YAML) is required; a missing or unparseable one, or one whose
//!   `instance-id` is not a short single value, is a [`DatasourceError`].
//!   It may be empty: the instance id then defaults to `nocloud`, cloud-init's default, with a
//!   warning. Keys read: `instance-id`, `local-hostname` (else `hostname`, which cloud-init
//!   ignores but seeds in the wild use), `public-keys` (a string of lines, a list, or a map of
//!   name → key or list of keys, as cloud-init's `normalize_pubkey_data`).
//! - `user-data` and `vendor-data` are optional and opaque: stored as 0600 secret files
//!   (never parsed here; cloud-config in user-data is the booted system's business). An empty
//!   file counts as absent, as in cloud-init. cloud-init requires `user-data` in a seed; we
//!   do not, since a seed with only meta-data and network-config is common (KubeVirt).
//! - `network-config` (v1/v2, [`super::netconfig`]) is optional. If it is broken, the error
//!   is recorded and everything else is kept; the network then falls back to DHCPv4 on all
//!   NICs. An empty document counts as absent. `config: disabled` means: leave the network
//!   alone, so no links and no DHCP fallback (recorded as a warning).
//!
//! - Without `network-config`, legacy `network-interfaces` in meta-data (Debian ENI text, as
//!   cloud-init's `eni.convert_eni_data`) is read by [`parse_eni`] for its simple forms:
//!   `iface <if> inet|inet6 dhcp|static|manual|auto` with `address` (optionally
//!   `/prefix`), `netmask`, `gateway`, `mtu`, `hwaddress [ether] <mac>`, `dns-nameservers`,
//!   `dns-search`. Commands (`up`, `pre-up`, `post-up` ...) are never run and are warned
//!   about, as are bonds, bridges, VLAN options and `source` lines, which are skipped.
//!
//! Not supported: `seedfrom` (fetching the seed from elsewhere), the kernel command line and
//! DMI serial forms (`ds=nocloud;h=...`; `cmdline.rs` owns the command line).
//! Other meta-data keys are dropped, except an allow-list of plain values copied to `extra`.
//!
//! Caps: `meta-data` and `network-config` [`METADATA_CAP`], user/vendor data
//! [`USERDATA_CAP`], ssh keys [`super::MAX_SSH_KEYS`].

use crate::context::{normalize_mac, Addressing, Context, Link, LinkKind, Network, Platform};
use crate::providers::netconfig;
use crate::providers::service::Endpoint;
use crate::providers::{
    self, add_ssh_keys, set_hostname, store_secret, utf8, DatasourceError, Input, METADATA_CAP,
    USERDATA_CAP,
};
use crate::yaml::{self, Node};

/// cloud-init's NoCloud default when meta-data has no `instance-id`.
pub const DEFAULT_INSTANCE_ID: &str = "nocloud";

/// Longest instance id kept; ids are UUIDs or short names in practice.
const INSTANCE_ID_MAX: usize = 255;

/// meta-data keys copied to `extra` as they are: plain, non-secret values.
const EXTRA_KEYS: [&str; 5] = [
    "dsmode",
    "cloud-name",
    "availability-zone",
    "region",
    "platform",
];

/// Reads a NoCloud seed. See the module docs for what is required.
pub fn read(input: &Input) -> Result<Context, DatasourceError> {
    let mut ctx = Context::new(Some(Platform::Nocloud), input.source.clone());
    ctx.host_nics = input.host_nics.clone();

    let raw = providers::read(input.tree, "meta-data", METADATA_CAP)?.ok_or_else(|| {
        DatasourceError::new("meta-data", "missing (a NoCloud seed needs meta-data)")
    })?;
    let text = utf8(&raw, "meta-data")?;
    let md = yaml::load(text).map_err(|e| DatasourceError::new("meta-data", e))?;
    if !matches!(md, Node::Map(_) | Node::Null) {
        return Err(DatasourceError::new("meta-data", "not a YAML mapping"));
    }
    meta_data(&mut ctx, &md)?;

    for (file, name) in [("user-data", "user-data"), ("vendor-data", "vendor-data")] {
        match providers::read(input.tree, file, USERDATA_CAP) {
            Ok(Some(data)) if data.is_empty() => {}
            Ok(Some(data)) => {
                let stored = store_secret(&mut ctx, input.state, name, &data);
                if name == "user-data" {
                    ctx.user_data = stored;
                } else {
                    ctx.vendor_data = stored;
                }
            }
            Ok(None) => {}
            Err(e) => ctx.error("datasource", file, e.message),
        }
    }

    let net = network_config(&mut ctx, input);
    if let Some(eni) = md.get("network-interfaces") {
        const OBJECT: &str = "meta-data: network-interfaces";
        match (net, eni.as_text()) {
            (NetworkConfig::Absent, Some(text)) => match parse_eni(text) {
                Ok((network, warnings)) => {
                    for w in warnings {
                        ctx.warn("datasource", OBJECT, w);
                    }
                    ctx.network = network;
                }
                Err(e) => ctx.error("datasource", OBJECT, e),
            },
            (NetworkConfig::Absent, None) => ctx.error("datasource", OBJECT, "not a string"),
            _ => ctx.warn(
                "datasource",
                OBJECT,
                "network-config takes precedence; ignored",
            ),
        }
    }
    if net != NetworkConfig::Disabled {
        ctx.match_nics(false);
    }
    Ok(ctx)
}

/// Reads NoCloud-net: the seed's documents from the URL of `ds=nocloud;s=URL` (at `ep`), with
/// the seed reader itself.
pub fn fetch(ep: Endpoint) -> Result<Context, DatasourceError> {
    ep.with_tree(|input, _| read(input))
}

/// What `network-config` amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NetworkConfig {
    /// No file, or an empty document.
    Absent,
    /// `config: disabled`.
    Disabled,
    /// Present: used, or broken and recorded.
    Present,
}

/// Fills instance id, hostname, ssh keys and `extra` from meta-data.
fn meta_data(ctx: &mut Context, md: &Node) -> Result<(), DatasourceError> {
    match md.get("instance-id") {
        Some(node) => {
            let id = node
                .as_text()
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| {
                    DatasourceError::new("meta-data: instance-id", "not a non-empty single value")
                })?;
            if id.len() > INSTANCE_ID_MAX || id.chars().any(char::is_control) {
                return Err(DatasourceError::new(
                    "meta-data: instance-id",
                    format!("longer than {INSTANCE_ID_MAX} bytes or has control characters"),
                ));
            }
            ctx.instance_id = Some(id.to_string());
        }
        None => {
            ctx.warn(
                "datasource",
                "meta-data: instance-id",
                format!("missing; using {DEFAULT_INSTANCE_ID:?} as cloud-init does"),
            );
            ctx.instance_id = Some(DEFAULT_INSTANCE_ID.to_string());
        }
    }

    for key in ["local-hostname", "hostname"] {
        if let Some(node) = md.get(key) {
            let object = format!("meta-data: {key}");
            match node.as_text() {
                Some(name) => set_hostname(ctx, name, &object),
                None => ctx.error("datasource", &object, "not a single value"),
            }
            break;
        }
    }

    if let Some(keys) = md.get("public-keys") {
        public_keys(ctx, keys);
    }
    if md.get("seedfrom").is_some() {
        ctx.warn(
            "datasource",
            "meta-data: seedfrom",
            "fetching the seed from elsewhere is not supported; ignored",
        );
    }
    for key in EXTRA_KEYS {
        if let Some(value) = md.get(key).and_then(Node::as_text) {
            ctx.extra.insert(
                key.to_string(),
                serde_json::Value::String(value.to_string()),
            );
        }
    }
    Ok(())
}

/// `public-keys`: a string (one key per line), a list of keys, or a map whose values are a
/// key or a list of keys.
fn public_keys(ctx: &mut Context, node: &Node) {
    const OBJECT: &str = "meta-data: public-keys";
    let mut blobs: Vec<&Node> = Vec::new();
    match node {
        Node::Scalar { .. } => blobs.push(node),
        Node::Seq(items) => blobs.extend(items),
        Node::Map(entries) => {
            for (_, v) in entries {
                match v {
                    Node::Seq(items) => blobs.extend(items),
                    other => blobs.push(other),
                }
            }
        }
        Node::Null => {}
    }
    for blob in blobs {
        match blob {
            Node::Scalar { text, .. } => add_ssh_keys(ctx, text, OBJECT),
            Node::Null => {}
            _ => ctx.error(
                "datasource",
                OBJECT,
                "an entry is not a key string; skipped",
            ),
        }
    }
}

/// Reads and parses `network-config` into `ctx.network`. Never fails: every problem with
/// this optional file is recorded in `ctx`.
fn network_config(ctx: &mut Context, input: &Input) -> NetworkConfig {
    const FILE: &str = "network-config";
    let raw = match providers::read(input.tree, FILE, METADATA_CAP) {
        Ok(Some(raw)) => raw,
        Ok(None) => return NetworkConfig::Absent,
        Err(e) => {
            ctx.error("datasource", FILE, e.message);
            return NetworkConfig::Present;
        }
    };
    let text = match utf8(&raw, FILE) {
        Ok(t) => t,
        Err(e) => {
            ctx.error("datasource", FILE, e.message);
            return NetworkConfig::Present;
        }
    };
    let root = match yaml::load(text) {
        Ok(Node::Null) => return NetworkConfig::Absent,
        Ok(root) => root,
        Err(e) => {
            ctx.error("datasource", FILE, e);
            return NetworkConfig::Present;
        }
    };
    match netconfig::parse_node(&root) {
        Ok(parsed) => {
            for w in parsed.warnings {
                ctx.warn("datasource", FILE, w);
            }
            if parsed.disabled {
                ctx.warn(
                    "datasource",
                    FILE,
                    "config: disabled; the network is left alone (no DHCP fallback)",
                );
                return NetworkConfig::Disabled;
            }
            ctx.network = parsed.network;
        }
        Err(e) => ctx.error("datasource", FILE, e),
    }
    NetworkConfig::Present
}

/// Parses the simple forms of Debian `/etc/network/interfaces` text (see the module docs).
/// Pure; returns the network and warnings, or an error naming the line.
pub fn parse_eni(text: &str) -> Result<(Network, Vec<String>), String> {
    let mut links: Vec<Link> = Vec::new();
    let mut warnings = Vec::new();
    // Index of the link the current `iface` stanza configures, and its family.
    let mut current: Option<(usize, bool)> = None;
    // Joins `\`-continued lines, keeping the first line's number.
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i.saturating_add(1);
        let (start, mut acc) = pending.take().unwrap_or((n, String::new()));
        match raw.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                acc.push(' ');
                pending = Some((start, acc));
            }
            None => {
                acc.push_str(raw);
                logical.push((start, acc));
            }
        }
    }
    logical.extend(pending);
    // Addresses given without a prefix and not (yet) followed by a netmask.
    let mut unmasked: Vec<(usize, String)> = Vec::new();
    let mut links_cut = false;
    // In a stanza dropped by the cap: its options go with it.
    let mut dropping = false;
    for (n, line) in logical {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&keyword, args)) = words.split_first() else {
            continue;
        };
        if keyword.starts_with('#') {
            continue;
        }
        let at = |msg: String| format!("line {n}: {msg}");
        if matches!(
            keyword,
            "auto"
                | "allow-hotplug"
                | "allow-auto"
                | "source"
                | "source-directory"
                | "mapping"
                | "iface"
        ) {
            dropping = false;
        }
        match keyword {
            "auto" | "allow-hotplug" | "allow-auto" => current = None,
            "source" | "source-directory" | "mapping" => {
                current = None;
                warnings.push(at(format!("{keyword} is not supported; skipped")));
            }
            "iface" => {
                let [name, family, method] = args else {
                    return Err(at("expected `iface <name> <inet|inet6> <method>`".into()));
                };
                let v6 = match *family {
                    "inet" => false,
                    "inet6" => true,
                    other => return Err(at(format!("unknown address family {other:?}"))),
                };
                if *method == "loopback" {
                    current = None;
                    continue;
                }
                let idx = match links.iter().position(|l| l.id == *name) {
                    Some(idx) => idx,
                    None => {
                        if !crate::caps::LINKS.room(links.len()) {
                            // Past the cap: this stanza and its options are dropped.
                            if !links_cut {
                                links_cut = true;
                                warnings.push(at(crate::caps::LINKS.cut()));
                            }
                            current = None;
                            dropping = true;
                            continue;
                        }
                        let mut link = Link::new(*name, LinkKind::Physical);
                        link.name = Some(
                            eni_ifname(name)
                                .ok_or_else(|| at(format!("{name:?} is not an interface name")))?,
                        );
                        links.push(link);
                        links.len().saturating_sub(1)
                    }
                };
                let link = links.get_mut(idx).ok_or_else(|| at("internal".into()))?;
                match (*method, v6) {
                    ("dhcp", false) => link.addressing.push(Addressing::Dhcp4),
                    ("dhcp", true) => link.addressing.push(Addressing::Dhcp6),
                    ("auto", true) => link
                        .addressing
                        .push(Addressing::Slaac { dhcp6_info: false }),
                    ("static" | "manual", _) => {}
                    (other, _) => return Err(at(format!("unknown method {other:?}"))),
                }
                // Options (mtu, hwaddress, dns ...) apply whatever the method.
                current = Some((idx, v6));
            }
            option => {
                let Some((idx, v6)) = current else {
                    if dropping {
                        continue;
                    }
                    return Err(at(format!("{option:?} outside an iface stanza")));
                };
                let link = links.get_mut(idx).ok_or_else(|| at("internal".into()))?;
                match (option, args) {
                    ("address", [a]) if !a.contains('/') => unmasked.push((n, a.to_string())),
                    ("netmask", _) => {
                        unmasked.pop();
                    }
                    _ => {}
                }
                eni_option(link, v6, option, args, &mut warnings).map_err(at)?;
            }
        }
    }
    for (n, a) in unmasked {
        warnings.push(format!(
            "line {n}: address {a} has no prefix or netmask; using /24 (/64 for IPv6) as \
             cloud-init does"
        ));
    }
    Ok((
        Network {
            links,
            dns: Default::default(),
        },
        warnings,
    ))
}

fn eni_ifname(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    ok.then(|| name.to_string())
}

/// One option line inside an `iface` stanza.
fn eni_option(
    link: &mut Link,
    v6: bool,
    option: &str,
    args: &[&str],
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let one = || match args {
        [v] => Ok(*v),
        _ => Err(format!("{option} takes one value")),
    };
    match option {
        "address" => {
            let raw = one()?;
            let (address, prefix) = match netconfig::parse_cidr(raw) {
                Some(cidr) => cidr,
                None => {
                    let a: std::net::IpAddr = raw
                        .parse()
                        .map_err(|_| format!("address {raw:?} is not an IP address"))?;
                    // A netmask line may follow; until then cloud-init's default.
                    (a, if a.is_ipv4() { 24 } else { 64 })
                }
            };
            if address.is_ipv6() != v6 {
                return Err(format!("address {raw} does not match the stanza's family"));
            }
            link.addressing.push(Addressing::Static {
                address,
                prefix,
                gateway: None,
            });
        }
        "netmask" => {
            let raw = one()?;
            let last = link.addressing.iter_mut().rev().find_map(|a| match a {
                Addressing::Static {
                    address, prefix, ..
                } => Some((address, prefix)),
                _ => None,
            });
            let Some((address, prefix)) = last else {
                return Err("netmask before address".into());
            };
            *prefix = netconfig::parse_cidr(&format!("{address}/{raw}"))
                .map(|(_, p)| p)
                .ok_or_else(|| format!("netmask {raw:?} is not valid for {address}"))?;
        }
        "gateway" => {
            let raw = one()?;
            let gw: std::net::IpAddr = raw
                .parse()
                .map_err(|_| format!("gateway {raw:?} is not an IP address"))?;
            let slot = link.addressing.iter_mut().rev().find_map(|a| match a {
                Addressing::Static {
                    address, gateway, ..
                } if address.is_ipv6() == gw.is_ipv6() => Some(gateway),
                _ => None,
            });
            match slot {
                Some(g) => *g = Some(gw),
                None => link.routes.push(crate::context::Route {
                    to: if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" }.into(),
                    via: Some(gw),
                    metric: None,
                    table: None,
                }),
            }
        }
        "mtu" => {
            let raw = one()?;
            link.mtu = Some(
                raw.parse::<u32>()
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| format!("mtu {raw:?} is not 68..=65535"))?,
            );
        }
        "hwaddress" => {
            let raw = match args {
                ["ether", mac] | [mac] => *mac,
                _ => return Err("hwaddress takes `[ether] <mac>`".into()),
            };
            link.mac =
                Some(normalize_mac(raw).ok_or_else(|| format!("hwaddress {raw:?} is not a MAC"))?);
        }
        "dns-nameservers" => {
            for raw in args {
                let ns: std::net::IpAddr = raw
                    .parse()
                    .map_err(|_| format!("dns-nameservers: {raw:?} is not an IP address"))?;
                if let Some(cut) = crate::caps::NAMESERVERS.add(&mut link.dns.nameservers, ns) {
                    warnings.push(format!("dns-nameservers: {cut}"));
                    break;
                }
            }
        }
        "dns-search" => {
            for raw in args {
                let d = raw.to_ascii_lowercase();
                if let Some(cut) = crate::caps::SEARCH_DOMAINS.add(&mut link.dns.search, d) {
                    warnings.push(format!("dns-search: {cut}"));
                    break;
                }
            }
        }
        "up" | "down" | "pre-up" | "post-up" | "pre-down" | "post-down" => {
            warnings.push(format!(
                "{}: {option} commands are never run; ignored",
                link.id
            ));
        }
        other => warnings.push(format!(
            "{}: option {other:?} is not supported; ignored",
            link.id
        )),
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::context::{Addressing, LinkKind, SourceKind};
    use crate::media::{DirTree, Tree};
    use crate::providers::netconfig::testutil::{fixtures, host_nics, source, MemTree, TempState};

    fn run(
        tree: &dyn Tree,
        nics: Vec<crate::context::HostNic>,
    ) -> Result<Context, DatasourceError> {
        let state = TempState::new("nocloud");
        let input = Input {
            tree,
            source: source(SourceKind::NocloudSeed),
            state: &state.0,
            host_nics: nics,
        };
        read(&input)
    }

    /// `key: value` from a flat YAML file, the way a person reads it.
    fn raw_value(text: &str, key: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
    }

    /// More interfaces than the cap: cut with one warning, the rest of the file still read
    /// (this was an error before issue 15's one limits policy).
    #[test]
    fn eni_interfaces_past_the_cap_are_cut() {
        let n = crate::caps::LINKS.max + 3;
        let text: String = (0..n)
            .map(|i| format!("iface e{i} inet dhcp\n    mtu 1400\n"))
            .collect();
        let (net, warnings) = parse_eni(&text).unwrap();
        assert_eq!(net.links.len(), crate::caps::LINKS.max);
        let cuts = warnings
            .iter()
            .filter(|w| w.contains("the rest are dropped"))
            .count();
        assert_eq!(cuts, 1, "{warnings:?}");
    }

    #[test]
    fn fixtures_give_what_the_raw_files_say() {
        let dir = fixtures().join("nocloud");
        let mut cases: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        cases.sort();
        assert_eq!(cases.len(), 8, "{cases:?}");
        for case in &cases {
            let input = dir.join(case).join("input");
            let state = TempState::new("nocloud-fixture");
            let tree = DirTree::new(&input);
            let ctx = read(&Input {
                tree: &tree,
                source: source(SourceKind::NocloudSeed),
                state: &state.0,
                host_nics: host_nics(&input),
            })
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
            let md = std::fs::read_to_string(input.join("meta-data")).unwrap();
            assert_eq!(
                ctx.instance_id,
                raw_value(&md, "instance-id"),
                "case {case}"
            );
            assert_eq!(
                ctx.hostname,
                raw_value(&md, "local-hostname").map(|h| h.to_ascii_lowercase()),
                "case {case}"
            );
            // None of these seeds has public-keys in meta-data (their keys are in the
            // cloud-config user-data, which is not ours to read).
            assert!(!md.contains("public-keys"), "case {case}");
            assert!(ctx.ssh_keys.is_empty(), "case {case}");
            assert!(ctx.errors.is_empty(), "case {case}: {:?}", ctx.errors);
            assert_eq!(ctx.platform, Some(Platform::Nocloud), "case {case}");
            let ud = std::fs::read(input.join("user-data")).unwrap_or_default();
            match &ctx.user_data {
                Some(f) => {
                    assert_eq!(std::fs::read(&f.path).unwrap(), ud, "case {case}");
                    assert_eq!(
                        f.kind,
                        crate::context::PayloadType::CloudConfig,
                        "case {case}"
                    );
                }
                None => assert!(ud.is_empty(), "case {case}"),
            }
            // The fixtures' vendor-data files are empty: absent, as in cloud-init.
            assert!(ctx.vendor_data.is_none(), "case {case}");
            assert!(!ctx.network.links.is_empty(), "case {case}");
            assert!(ctx.fallbacks.is_empty(), "case {case}: {:?}", ctx.fallbacks);
            let json = serde_json::to_string(&ctx).unwrap();
            assert!(
                !json.contains("ssh-rsa"),
                "case {case}: user-data leaked into context"
            );
        }
    }

    #[test]
    fn fixture_networks_key_properties() {
        let dir = fixtures().join("nocloud");
        let load = |case: &str| {
            let input = dir.join(case).join("input");
            run(&DirTree::new(&input), Vec::new()).unwrap()
        };
        // v1, its JSON twin, and v2 describe the same three NICs.
        for case in [
            "afterburn-kubevirt-nocloud-v1",
            "afterburn-kubevirt-nocloud-v1-json",
            "afterburn-kubevirt-nocloud-v2",
        ] {
            let ctx = load(case);
            let links = &ctx.network.links;
            assert_eq!(links.len(), 3, "case {case}");
            let eth0 = &links[0];
            assert_eq!(eth0.name.as_deref(), Some("eth0"), "case {case}");
            assert_eq!(
                eth0.addressing,
                vec![
                    Addressing::Static {
                        address: "192.168.1.10".parse().unwrap(),
                        prefix: 24,
                        gateway: Some("192.168.1.1".parse().unwrap()),
                    },
                    Addressing::Static {
                        address: "2001:db8::10".parse().unwrap(),
                        prefix: 64,
                        gateway: Some("2001:db8::1".parse().unwrap()),
                    },
                ],
                "case {case}"
            );
            assert_eq!(
                links[1].addressing,
                vec![Addressing::Dhcp4, Addressing::Dhcp6],
                "case {case}"
            );
            assert_eq!(
                links[2].mac.as_deref(),
                Some("06:aa:bb:cc:dd:02"),
                "case {case}"
            );
            assert_eq!(links[2].addressing, vec![Addressing::Dhcp4], "case {case}");
            let dns: Vec<_> = ctx
                .network
                .dns
                .nameservers
                .iter()
                .chain(&eth0.dns.nameservers)
                .map(|a| a.to_string())
                .collect();
            assert!(
                dns.starts_with(&["8.8.8.8".into(), "8.8.4.4".into()]),
                "case {case}: {dns:?}"
            );
        }
        // v2 id0 has only a MAC match: named by the host NIC with that MAC.
        let v2 = load("afterburn-kubevirt-nocloud-v2");
        assert_eq!(v2.network.links[2].id, "id0");
        assert_eq!(v2.network.links[2].name, None);
        let input = dir.join("afterburn-kubevirt-nocloud-v2/input");
        let nic = crate::context::HostNic {
            name: "enp3s0".into(),
            mac: "06:aa:bb:cc:dd:02".into(),
        };
        let ctx = run(&DirTree::new(&input), vec![nic]).unwrap();
        assert_eq!(ctx.network.links[2].name.as_deref(), Some("enp3s0"));

        for case in [
            "afterburn-kubevirt-gateway-routes-v1",
            "afterburn-kubevirt-gateway-routes-v2",
        ] {
            let ctx = load(case);
            let eth0 = &ctx.network.links[0];
            assert_eq!(
                eth0.addressing,
                vec![Addressing::Dhcp4, Addressing::Dhcp6],
                "case {case}"
            );
            let mut vias: Vec<String> = eth0
                .routes
                .iter()
                .map(|r| format!("{} via {}", r.to, r.via.unwrap()))
                .collect();
            vias.sort();
            assert_eq!(
                vias,
                vec![
                    "0.0.0.0/0 via 192.168.1.1",
                    "0.0.0.0/0 via 192.168.1.2",
                    "::/0 via 2001:db8::1",
                    "::/0 via 2001:db8::2"
                ],
                "case {case}"
            );
        }
        let ctx = load("afterburn-proxmoxve-static");
        let eth1 = &ctx.network.links[1];
        assert_eq!(eth1.mac.as_deref(), Some("01:23:45:67:89:99"));
        assert_eq!(
            eth1.addressing[1],
            Addressing::Static {
                address: "2001:db8:85a3::8a2e:4242:0".parse().unwrap(),
                prefix: 24,
                gateway: Some("2001:db8:85a3::8a2e:4242:9999".parse().unwrap()),
            }
        );
        assert_eq!(ctx.network.dns.search, vec!["local.com"]);
        let ctx = load("afterburn-proxmoxve-static-no-gateway");
        assert!(matches!(
            ctx.network.links[0].addressing[..],
            [Addressing::Static {
                gateway: None,
                prefix: 24,
                ..
            }]
        ));
        let ctx = load("afterburn-proxmoxve-dhcp");
        assert_eq!(ctx.network.links[0].kind, LinkKind::Physical);
        assert_eq!(ctx.network.links[0].addressing, vec![Addressing::Dhcp4]);
    }

    #[test]
    fn broken_network_config_is_recorded_rest_kept() {
        let input = fixtures().join("malformed/nocloud-network-config-bad-yaml/input");
        let nics = vec![crate::context::HostNic {
            name: "eth0".into(),
            mac: "52:54:00:00:00:01".into(),
        }];
        let ctx = run(&DirTree::new(&input), nics).unwrap();
        assert!(!ctx.errors.is_empty());
        assert!(
            ctx.errors
                .iter()
                .any(|p| p.object == "network-config" && p.message.contains("YAML")),
            "{:?}",
            ctx.errors
        );
        assert_eq!(
            ctx.instance_id.as_deref(),
            Some("5d307ca9-b3ef-428c-8861-06e72d69f224")
        );
        assert_eq!(ctx.hostname.as_deref(), Some("test-nocloud-v2.foo.cloud"));
        // Nothing partial: only the DHCP fallback on the host NIC.
        assert_eq!(ctx.network.links.len(), 1);
        assert_eq!(ctx.fallbacks[0].kind, "dhcp4-all-nics");
    }

    #[test]
    fn meta_data_forms() {
        type Check = fn(&Context) -> bool;
        let cases: &[(&str, &[u8], Check)] = &[
            ("empty meta-data", b"", |c| {
                c.instance_id.as_deref() == Some("nocloud") && c.warnings.len() == 1
            }),
            ("keys as string", b"instance-id: i-1\npublic-keys: \"ssh-ed25519 AAA a\\nssh-ed25519 BBB b\\n\"\n", |c| {
                c.ssh_keys == ["ssh-ed25519 AAA a", "ssh-ed25519 BBB b"]
            }),
            ("keys as list", b"instance-id: i-1\npublic-keys:\n  - ssh-ed25519 AAA a\n  - ssh-ed25519 AAA a\n", |c| {
                c.ssh_keys == ["ssh-ed25519 AAA a"]
            }),
            ("keys as map", b"instance-id: i-1\npublic-keys:\n  one: ssh-ed25519 AAA a\n  two: [ssh-ed25519 BBB b, '']\n", |c| {
                c.ssh_keys == ["ssh-ed25519 AAA a", "ssh-ed25519 BBB b"]
            }),
            ("hostname fallback", b"instance-id: i-1\nhostname: Node-1\n", |c| {
                c.hostname.as_deref() == Some("node-1")
            }),
            ("bad hostname recorded, not kept", b"instance-id: i-1\nlocal-hostname: 'bad name'\n", |c| {
                c.hostname.is_none() && c.errors.len() == 1 && c.instance_id.is_some()
            }),
            ("eni read", b"instance-id: i-1\nnetwork-interfaces: |\n  iface eth0 inet dhcp\n", |c| {
                c.network.links.len() == 1 && c.network.links[0].addressing == [Addressing::Dhcp4]
            }),
            ("eni broken", b"instance-id: i-1\nnetwork-interfaces: |\n  iface eth0\n", |c| {
                c.errors.len() == 1 && c.errors[0].object == "meta-data: network-interfaces"
            }),
            ("extra allow-list", b"instance-id: i-1\ndsmode: local\nsecret-thing: x\n", |c| {
                c.extra.get("dsmode").is_some() && c.extra.get("secret-thing").is_none()
            }),
        ];
        for (case, md, check) in cases {
            let tree = MemTree::new(&[("meta-data", md)]);
            let ctx = run(&tree, Vec::new()).unwrap_or_else(|e| panic!("case {case}: {e}"));
            assert!(check(&ctx), "case {case}: {ctx:#?}");
        }
    }

    #[test]
    fn eni_simple_stanzas() {
        let text = "# Proxmox style\nauto lo\niface lo inet loopback\n\nauto eth0\n\
            iface eth0 inet static\n    address 192.168.1.10\n    netmask 255.255.255.0\n\
            \x20   gateway 192.168.1.1\n    dns-nameservers 1.1.1.1 \\\n      8.8.8.8\n\
            \x20   dns-search Example.com\n    hwaddress ether 52:54:00:AA:BB:CC\n    mtu 9000\n\
            \x20   post-up /bin/false\n\
            iface eth0 inet6 static\n    address 2001:db8::10/64\n    gateway 2001:db8::1\n\
            iface eth1 inet dhcp\niface eth1 inet6 auto\n\
            iface eth2 inet static\n    address 10.0.0.5\n";
        let (net, warnings) = parse_eni(text).unwrap();
        let ids: Vec<&str> = net.links.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["eth0", "eth1", "eth2"]);
        let eth0 = &net.links[0];
        assert_eq!(eth0.name.as_deref(), Some("eth0"));
        assert_eq!(eth0.mac.as_deref(), Some("52:54:00:aa:bb:cc"));
        assert_eq!(eth0.mtu, Some(9000));
        assert_eq!(
            eth0.addressing,
            [
                Addressing::Static {
                    address: "192.168.1.10".parse().unwrap(),
                    prefix: 24,
                    gateway: Some("192.168.1.1".parse().unwrap()),
                },
                Addressing::Static {
                    address: "2001:db8::10".parse().unwrap(),
                    prefix: 64,
                    gateway: Some("2001:db8::1".parse().unwrap()),
                },
            ]
        );
        assert_eq!(eth0.dns.nameservers.len(), 2);
        assert_eq!(eth0.dns.search, ["example.com"]);
        assert_eq!(
            net.links[1].addressing,
            [Addressing::Dhcp4, Addressing::Slaac { dhcp6_info: false }]
        );
        assert!(matches!(
            net.links[2].addressing[..],
            [Addressing::Static { prefix: 24, .. }]
        ));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("never run"), "{warnings:?}");
        assert!(warnings[1].contains("no prefix or netmask"), "{warnings:?}");

        let bad = [
            (
                "iface eth0 inet\n",
                "line 1: expected `iface <name> <inet|inet6> <method>`",
            ),
            (
                "iface eth0 ipx static\n",
                "line 1: unknown address family \"ipx\"",
            ),
            ("iface eth0 inet ppp\n", "line 1: unknown method \"ppp\""),
            (
                "address 10.0.0.1\n",
                "line 1: \"address\" outside an iface stanza",
            ),
            (
                "iface e inet static\n address 10.0.0.x\n",
                "line 2: address \"10.0.0.x\" is not an IP address",
            ),
            (
                "iface e inet static\n address 2001:db8::1/64\n",
                "line 2: address 2001:db8::1/64 does not match the stanza's family",
            ),
            (
                "iface e inet static\n netmask 255.0.0.0\n",
                "line 2: netmask before address",
            ),
            (
                "iface e inet static\n address 10.0.0.1\n netmask 255.0.255.0\n",
                "line 3: netmask \"255.0.255.0\" is not valid for 10.0.0.1",
            ),
            (
                "iface e inet dhcp\n mtu 9\n",
                "line 2: mtu \"9\" is not 68..=65535",
            ),
            (
                "iface e inet dhcp\n hwaddress ether zz\n",
                "line 2: hwaddress \"zz\" is not a MAC",
            ),
            (
                "iface e/x inet dhcp\n",
                "line 1: \"e/x\" is not an interface name",
            ),
        ];
        for (text, want) in bad {
            assert_eq!(parse_eni(text).unwrap_err(), want, "case {text:?}");
        }
    }

    #[test]
    fn required_meta_data_errors() {
        type Files<'a> = &'a [(&'a str, &'a [u8])];
        let cases: &[(&str, Files, &str)] = &[
            (
                "missing",
                &[("user-data", b"#cloud-config\n")],
                "meta-data: missing",
            ),
            (
                "not yaml",
                &[("meta-data", b"a: [1\n")],
                "meta-data: not valid YAML",
            ),
            (
                "not utf-8",
                &[("meta-data", b"instance-id: \xff\n")],
                "meta-data: not valid UTF-8",
            ),
            (
                "a list",
                &[("meta-data", b"- a\n")],
                "meta-data: not a YAML mapping",
            ),
            (
                "id a list",
                &[("meta-data", b"instance-id: [a]\n")],
                "meta-data: instance-id: not a",
            ),
        ];
        for (case, files, want) in cases {
            let tree = MemTree::new(files);
            match run(&tree, Vec::new()) {
                Ok(ctx) => panic!("case {case}: accepted {ctx:?}"),
                Err(e) => assert!(e.to_string().starts_with(want), "case {case}: {e}"),
            }
        }
    }

    #[test]
    fn optional_documents() {
        let nic = crate::context::HostNic {
            name: "ens3".into(),
            mac: "52:54:00:00:00:01".into(),
        };
        // Disabled network: no links and no DHCP fallback.
        let tree = MemTree::new(&[
            ("meta-data", b"instance-id: i-1\n"),
            ("network-config", b"network: {config: disabled}\n"),
        ]);
        let ctx = run(&tree, vec![nic.clone()]).unwrap();
        assert!(ctx.network.links.is_empty() && ctx.fallbacks.is_empty());
        assert!(ctx.warnings.iter().any(|w| w.message.contains("disabled")));
        // Empty network-config is absent: DHCP everywhere, no error.
        let tree = MemTree::new(&[
            ("meta-data", b"instance-id: i-1\n"),
            ("network-config", b"# nothing\n"),
        ]);
        let ctx = run(&tree, vec![nic.clone()]).unwrap();
        assert!(ctx.errors.is_empty());
        assert_eq!(ctx.fallbacks[0].kind, "dhcp4-all-nics");
        // Wrong types in network-config: error naming the field, rest kept.
        let tree = MemTree::new(&[
            ("meta-data", b"instance-id: i-1\n"),
            (
                "network-config",
                b"version: 2\nethernets:\n  eth0:\n    addresses: [10.0.0.1/24, x]\n",
            ),
            ("vendor-data", b"#!/bin/sh\necho hi\n"),
        ]);
        let ctx = run(&tree, vec![nic.clone()]).unwrap();
        assert_eq!(ctx.errors.len(), 1);
        assert_eq!(ctx.errors[0].object, "network-config");
        assert_eq!(
            ctx.errors[0].message,
            "ethernets.eth0.addresses[1]: not an address/prefix"
        );
        assert_eq!(
            ctx.vendor_data.as_ref().unwrap().kind,
            crate::context::PayloadType::Script
        );
        // ENI in meta-data yields to network-config.
        let tree = MemTree::new(&[
            (
                "meta-data",
                b"instance-id: i-1\nnetwork-interfaces: 'iface eth0 inet dhcp'\n",
            ),
            (
                "network-config",
                b"version: 2\nethernets: {eth0: {addresses: [10.0.0.1/24]}}\n",
            ),
        ]);
        let ctx = run(&tree, vec![nic.clone()]).unwrap();
        assert!(!ctx.network.links[0].addressing.contains(&Addressing::Dhcp4));
        assert!(ctx
            .warnings
            .iter()
            .any(|w| w.message.contains("precedence")));
        // Oversized user-data: recorded, the rest kept.
        let big = vec![b'x'; USERDATA_CAP as usize + 1];
        let tree = MemTree::new(&[("meta-data", b"instance-id: i-1\n"), ("user-data", &big)]);
        let ctx = run(&tree, vec![nic]).unwrap();
        assert!(ctx.user_data.is_none());
        assert!(ctx.errors[0].message.contains("limit"), "{:?}", ctx.errors);
    }
}
