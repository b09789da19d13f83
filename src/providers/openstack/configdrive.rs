//! OpenStack config drive (`config-2`): `openstack/<version>/meta_data.json`,
//! `network_data.json`, `user_data`, `vendor_data.json`, `vendor_data2.json`, the `files`
//! named by `meta_data.json` (`openstack/content/NNNN`), and the `ec2/<version>/` tree as a
//! fallback when there is no usable `openstack/` tree.
//!
//! Follows the Nova config drive layout (nova/api/metadata/base.py) and the network_data.json
//! schema (nova "metadata-service" docs). Version: `latest/` if it has a document, else the
//! newest dated `YYYY-MM-DD/` that has one. Also reads the pre-Liberty `network_info.json` and
//! Rackspace's `vendor_data.json` `network_info`, as glean does.
//!
//! A drive needs `meta_data.json` or `network_data.json` (Ironic may write only the latter);
//! a broken `meta_data.json` is fatal, a broken optional document is recorded in `errors` and
//! the rest is kept. Unknown link types are treated as physical with a warning, as cloud-init
//! does. Injected files: at most [`crate::caps::FILES`], and [`crate::caps::INJECTED_BYTES`] in
//! all (the rest dropped with a warning). Never mounts (the medium comes as a [`Tree`]), never writes outside the state dir.

use crate::context::{
    bond_mode_name, normalize_mac, Addressing, Context, Dns, Fallback, InjectedFile, Link,
    LinkKind, Network, Platform, Route,
};
use crate::media::Tree;
use crate::providers::{
    add_ssh_keys, parse_json, read, set_hostname, store_secret, DatasourceError, Input,
    METADATA_CAP, USERDATA_CAP,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Link types network_data.json uses for a NIC (cloud-init's `KNOWN_PHYSICAL_TYPES`, plus the
/// `null` of old drives).
const PHYSICAL_TYPES: &[&str] = &[
    "bridge",
    "dvs",
    "ethernet",
    "hw_veb",
    "hyperv",
    "ovs",
    "phy",
    "tap",
    "vhostuser",
    "vif",
];

/// Reads a config drive into a context.
pub fn read_drive(input: &Input) -> Result<Context, DatasourceError> {
    let tree = input.tree;
    let mut ctx = Context::new(Some(Platform::Openstack), input.source.clone());
    ctx.host_nics = input.host_nics.clone();

    match find_version(tree, "openstack", &["meta_data.json", "network_data.json"])? {
        Some(dir) => read_openstack(tree, &dir, input, &mut ctx)?,
        None => {
            let Some(dir) = find_version(tree, "ec2", &["meta-data.json"])? else {
                return Err(DatasourceError::new(
                    tree.describe(),
                    "not a config drive: no openstack/*/meta_data.json, \
                     openstack/*/network_data.json or ec2/*/meta-data.json",
                ));
            };
            ctx.fallbacks.push(Fallback {
                kind: "configdrive-ec2-tree".into(),
                reason: "the drive has no openstack/ tree; read ec2/ instead".into(),
            });
            read_ec2(tree, &dir, input, &mut ctx)?;
        }
    }
    ctx.match_nics(true);
    Ok(ctx)
}

/// `<top>/latest` if it has one of `docs`, else the newest `<top>/YYYY-MM-DD` that has one.
fn find_version(
    tree: &dyn Tree,
    top: &str,
    docs: &[&str],
) -> Result<Option<String>, DatasourceError> {
    let Some(mut names) = tree.list(top).map_err(DatasourceError::from)? else {
        return Ok(None);
    };
    names.retain(|n| n == "latest" || is_date(n));
    // "latest" sorts after every digit, so it is tried first, then dates newest first.
    names.sort();
    for name in names.iter().rev() {
        let dir = format!("{top}/{name}");
        for doc in docs {
            if let Some(found) = tree.list(&dir).map_err(DatasourceError::from)? {
                if found.iter().any(|f| f == doc) {
                    return Ok(Some(dir));
                }
            }
        }
    }
    Ok(None)
}

fn is_date(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

fn read_openstack(
    tree: &dyn Tree,
    dir: &str,
    input: &Input,
    ctx: &mut Context,
) -> Result<(), DatasourceError> {
    let meta_path = format!("{dir}/meta_data.json");
    if let Some(bytes) = read(tree, &meta_path, METADATA_CAP)? {
        let meta = parse_json(&bytes, &meta_path)?;
        let Value::Object(meta) = meta else {
            return Err(DatasourceError::new(&meta_path, "not a JSON object"));
        };
        apply_meta_data(tree, &meta, &meta_path, input, ctx);
    }

    if let Some(data) = optional(ctx, tree, &format!("{dir}/user_data"), USERDATA_CAP) {
        ctx.user_data = store_secret(ctx, input.state, "user-data", &data);
    }
    let mut legacy_network = None;
    for (doc, secret) in [
        ("vendor_data.json", "vendor-data"),
        ("vendor_data2.json", "vendor-data2"),
    ] {
        let path = format!("{dir}/{doc}");
        let Some(data) = optional(ctx, tree, &path, USERDATA_CAP) else {
            continue;
        };
        // Vendor data is JSON by contract; a broken one is reported, not handed on.
        match parse_json(&data, &path) {
            Ok(value) => {
                if doc == "vendor_data.json" {
                    legacy_network = value.get("network_info").cloned();
                }
                let stored = store_secret(ctx, input.state, secret, &data);
                if secret == "vendor-data" {
                    ctx.vendor_data = stored;
                } else {
                    ctx.vendor_data2 = stored;
                }
            }
            Err(e) => ctx.error("datasource", &e.object, e.message),
        }
    }

    // network_data.json, else the pre-Liberty network_info.json, else Rackspace's
    // vendor_data.json "network_info" (glean reads all three).
    let mut network = None;
    for name in ["network_data.json", "network_info.json"] {
        let path = format!("{dir}/{name}");
        if let Some(bytes) = optional(ctx, tree, &path, METADATA_CAP) {
            network = Some((parse_json(&bytes, &path), path));
            break;
        }
    }
    if network.is_none() {
        if let Some(value) = legacy_network {
            network = Some((Ok(value), format!("{dir}/vendor_data.json: network_info")));
        }
    }
    if let Some((parsed, path)) = network {
        match parsed.and_then(|v| {
            let mut warnings = Vec::new();
            let net = parse_network_data(&v, &path, &mut warnings)?;
            Ok((net, warnings))
        }) {
            Ok((net, warnings)) => {
                for w in warnings {
                    ctx.warn("datasource", &path, w);
                }
                ctx.network = net;
            }
            Err(e) => ctx.error("datasource", &e.object, e.message),
        }
    }
    Ok(())
}

/// Reads an optional document; a read failure (too large, I/O) is recorded, not fatal.
fn optional(ctx: &mut Context, tree: &dyn Tree, path: &str, cap: u64) -> Option<Vec<u8>> {
    match read(tree, path, cap) {
        Ok(v) => v,
        Err(e) => {
            ctx.error("datasource", &e.object, e.message);
            None
        }
    }
}

fn apply_meta_data(
    tree: &dyn Tree,
    meta: &Map<String, Value>,
    path: &str,
    input: &Input,
    ctx: &mut Context,
) {
    for (key, value) in meta {
        let field = format!("{path}: {key}");
        match (key.as_str(), value) {
            ("uuid", Value::String(s)) => ctx.instance_id = Some(s.clone()),
            ("hostname", Value::String(s)) => set_hostname(ctx, s, &field),
            // `name` is the instance's display name; glean uses it when `hostname` is absent.
            ("name", Value::String(s)) if !meta.contains_key("hostname") => {
                set_hostname(ctx, s, &field)
            }
            ("public_keys", Value::Object(keys)) => {
                for key in keys.values() {
                    if let Value::String(k) = key {
                        add_ssh_keys(ctx, k, &field);
                    }
                }
            }
            ("keys", Value::Array(keys)) => {
                for key in keys {
                    if key.get("type").and_then(Value::as_str) == Some("ssh") {
                        if let Some(k) = key.get("data").and_then(Value::as_str) {
                            add_ssh_keys(ctx, k, &field);
                        }
                    }
                }
            }
            ("admin_pass", Value::String(s)) => {
                ctx.password = store_secret(ctx, input.state, "password", s.as_bytes());
            }
            ("random_seed", Value::String(s)) => ctx.random_seed = Some(s.clone()),
            ("files", Value::Array(files)) => read_files(tree, files, &field, input, ctx),
            ("uuid" | "hostname" | "public_keys" | "keys" | "admin_pass" | "random_seed", _)
            | ("files", _) => ctx.error("datasource", &field, "wrong JSON type"),
            _ => {
                ctx.extra.insert(key.clone(), value.clone());
            }
        }
    }
    if ctx.instance_id.is_none() {
        ctx.warn("datasource", path, "no uuid: the instance has no id");
    }
}

/// `files: [{"path": "/etc/foo.cfg", "content_path": "/content/0000"}]`; content_path is
/// relative to `openstack/`.
fn read_files(tree: &dyn Tree, files: &[Value], field: &str, input: &Input, ctx: &mut Context) {
    let mut total = 0usize;
    for (i, file) in files.iter().enumerate() {
        if !crate::caps::FILES.room(i) {
            ctx.warn("datasource", field, crate::caps::FILES.cut());
            break;
        }
        let (Some(dest), Some(content)) = (
            file.get("path").and_then(Value::as_str),
            file.get("content_path").and_then(Value::as_str),
        ) else {
            ctx.error(
                "datasource",
                &format!("{field}[{i}]"),
                "needs path and content_path",
            );
            continue;
        };
        if !dest.starts_with('/') {
            ctx.error(
                "datasource",
                &format!("{field}[{i}]"),
                "path is not absolute",
            );
            continue;
        }
        let src = format!("openstack/{}", content.trim_start_matches('/'));
        let Some(data) = optional(ctx, tree, &src, USERDATA_CAP) else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > crate::caps::INJECTED_BYTES {
            ctx.warn(
                "datasource",
                field,
                format!(
                    "injected files of more than {} bytes in all (at {src}); the rest are dropped",
                    crate::caps::INJECTED_BYTES
                ),
            );
            break;
        }
        let Some(base) = src.rsplit('/').next().filter(|b| !b.is_empty()) else {
            continue;
        };
        if let Some(content) = store_secret(ctx, input.state, &format!("files/{base}"), &data) {
            ctx.files.push(InjectedFile {
                path: dest.to_string(),
                content,
            });
        }
    }
}

/// The `ec2/<version>/` tree of a config drive: `meta-data.json` and `user-data`.
fn read_ec2(
    tree: &dyn Tree,
    dir: &str,
    input: &Input,
    ctx: &mut Context,
) -> Result<(), DatasourceError> {
    let path = format!("{dir}/meta-data.json");
    let bytes =
        read(tree, &path, METADATA_CAP)?.ok_or_else(|| DatasourceError::new(&path, "missing"))?;
    let Value::Object(meta) = parse_json(&bytes, &path)? else {
        return Err(DatasourceError::new(&path, "not a JSON object"));
    };
    for (key, value) in &meta {
        let field = format!("{path}: {key}");
        match (key.as_str(), value) {
            ("instance-id", Value::String(s)) => ctx.instance_id = Some(s.clone()),
            ("local-hostname", Value::String(s)) => set_hostname(ctx, s, &field),
            ("hostname", Value::String(s)) if !meta.contains_key("local-hostname") => {
                set_hostname(ctx, s, &field)
            }
            // {"name": ["key", ...]} or {"0": {"openssh-key": "key"}}
            ("public-keys", Value::Object(keys)) => {
                for entry in keys.values() {
                    let texts: Vec<&str> = match entry {
                        Value::String(s) => vec![s.as_str()],
                        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                        Value::Object(o) => o
                            .get("openssh-key")
                            .and_then(Value::as_str)
                            .into_iter()
                            .collect(),
                        _ => Vec::new(),
                    };
                    for t in texts {
                        add_ssh_keys(ctx, t, &field);
                    }
                }
            }
            _ => {
                ctx.extra.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(data) = optional(ctx, tree, &format!("{dir}/user-data"), USERDATA_CAP) {
        ctx.user_data = store_secret(ctx, input.state, "user-data", &data);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// network_data.json: pure.

/// Typed access to a JSON object with errors that name the field path.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    at: String,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, at: String) -> Result<Obj<'a>, DatasourceError> {
        match v {
            Value::Object(map) => Ok(Obj { map, at }),
            _ => Err(DatasourceError::new(at, "expected a JSON object")),
        }
    }

    fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.at)
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>, DatasourceError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(DatasourceError::new(self.field(key), "expected a string")),
        }
    }

    fn req_str(&self, key: &str) -> Result<&'a str, DatasourceError> {
        self.str(key)?
            .ok_or_else(|| DatasourceError::new(self.field(key), "missing"))
    }

    /// An unsigned integer; network_data.json writers also emit numbers as strings ("4").
    fn uint(&self, key: &str, max: u64) -> Result<Option<u64>, DatasourceError> {
        let n = match self.map.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(DatasourceError::new(
                self.field(key),
                format!("expected an integer from 0 to {max}"),
            )),
        }
    }

    fn list(&self, key: &str) -> Result<&'a [Value], DatasourceError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(DatasourceError::new(self.field(key), "expected a list")),
        }
    }

    fn ip(&self, key: &str) -> Result<Option<IpAddr>, DatasourceError> {
        self.str(key)?
            .map(|s| {
                s.trim().parse::<IpAddr>().map_err(|_| {
                    DatasourceError::new(self.field(key), format!("{s:?} is not an IP address"))
                })
            })
            .transpose()
    }
}

/// Turns a network_data.json document into the context's network. Pure. `at` names the
/// document in errors; `warnings` collects what was skipped.
pub fn parse_network_data(
    doc: &Value,
    at: &str,
    warnings: &mut Vec<String>,
) -> Result<Network, DatasourceError> {
    let root = Obj::new(doc, at.to_string())?;
    let mut net = Network::default();
    let mut links: Vec<&Value> = root.list("links")?.iter().collect();
    // Links past the cap are dropped, and with them their networks and the VLANs on them.
    let mut cut_ids = Vec::new();
    if let Some(cut) = crate::caps::LINKS.truncate(&mut links) {
        warnings.push(format!("{}: {cut}", root.field("links")));
        cut_ids = root
            .list("links")?
            .iter()
            .skip(crate::caps::LINKS.max)
            .filter_map(|l| l.get("id").and_then(Value::as_str).map(String::from))
            .collect();
    }
    for (i, value) in links.into_iter().enumerate() {
        let link = Obj::new(value, format!("{at}: links[{i}]"))?;
        net.links.push(parse_link(&link, warnings)?);
    }
    if !cut_ids.is_empty() {
        let before: Vec<String> = net.links.iter().map(|l| l.id.clone()).collect();
        warnings.extend(crate::context::drop_dangling(&mut net.links));
        let kept: Vec<&str> = net.links.iter().map(|l| l.id.as_str()).collect();
        let gone: Vec<String> = before
            .into_iter()
            .filter(|id| !kept.contains(&id.as_str()))
            .collect();
        cut_ids.extend(gone);
    }
    for (i, value) in root.list("networks")?.iter().enumerate() {
        let network = Obj::new(value, format!("{at}: networks[{i}]"))?;
        if network
            .str("link")?
            .is_some_and(|l| cut_ids.iter().any(|c| c == l))
        {
            continue;
        }
        apply_network(&network, &mut net, warnings)?;
    }
    net.dns = parse_services(&root, "services")?;
    Ok(net)
}

fn parse_link(link: &Obj, warnings: &mut Vec<String>) -> Result<Link, DatasourceError> {
    let id = link.req_str("id")?;
    let kind_name = link.str("type")?;
    let mac = link
        .str("ethernet_mac_address")?
        .map(|m| {
            normalize_mac(m).ok_or_else(|| {
                DatasourceError::new(
                    link.field("ethernet_mac_address"),
                    format!("{m:?} is not a MAC address"),
                )
            })
        })
        .transpose()?;
    let kind = match kind_name {
        Some("bond") => {
            let mut members = Vec::new();
            for (j, m) in link.list("bond_links")?.iter().enumerate() {
                let m = m.as_str().ok_or_else(|| {
                    DatasourceError::new(
                        format!("{}[{j}]", link.field("bond_links")),
                        "expected a string",
                    )
                })?;
                members.push(m.to_string());
            }
            let raw_mode = match link.map.get("bond_mode") {
                Some(Value::Number(n)) => n.to_string(),
                _ => link.str("bond_mode")?.unwrap_or("balance-rr").to_string(),
            };
            let mode = bond_mode_name(&raw_mode).ok_or_else(|| {
                DatasourceError::new(
                    link.field("bond_mode"),
                    format!("unknown bonding mode {raw_mode:?}"),
                )
            })?;
            let mut options = BTreeMap::new();
            for (key, value) in link.map {
                let Some(opt) = key.strip_prefix("bond_") else {
                    continue;
                };
                if opt == "links" || opt == "mode" {
                    continue;
                }
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(DatasourceError::new(
                            link.field(key),
                            "expected a string or number",
                        ))
                    }
                };
                options.insert(opt.to_string(), text);
            }
            LinkKind::Bond {
                mode: mode.to_string(),
                members,
                options,
            }
        }
        Some("vlan") => {
            let id = link
                .uint("vlan_id", 4094)?
                .ok_or_else(|| DatasourceError::new(link.field("vlan_id"), "missing"))?;
            LinkKind::Vlan {
                id: u16::try_from(id).unwrap_or(0),
                parent: link.req_str("vlan_link")?.to_string(),
            }
        }
        None => LinkKind::Physical,
        Some(t) if PHYSICAL_TYPES.contains(&t) => LinkKind::Physical,
        Some(t) => {
            warnings.push(format!(
                "Unknown network_data link type ({t}); treating link {id} as physical"
            ));
            LinkKind::Physical
        }
    };
    let mut out = Link::new(id, kind);
    out.mac = match &out.kind {
        LinkKind::Vlan { .. } => link
            .str("vlan_mac_address")?
            .and_then(normalize_mac)
            .or(mac),
        _ => mac,
    };
    out.mtu = link
        .uint("mtu", 65535)?
        .map(|m| u32::try_from(m).unwrap_or(0));
    Ok(out)
}

/// One `networks[]` entry: addressing for the link it names.
fn apply_network(
    network: &Obj,
    net: &mut Network,
    warnings: &mut Vec<String>,
) -> Result<(), DatasourceError> {
    let link_id = network.req_str("link")?;
    let kind = network.req_str("type")?;
    let Some(link) = net.links.iter_mut().find(|l| l.id == link_id) else {
        return Err(DatasourceError::new(
            network.field("link"),
            format!("names link {link_id:?}, which is not in links"),
        ));
    };
    let mut routes = Vec::new();
    for (j, r) in network.list("routes")?.iter().enumerate() {
        let r = Obj::new(r, format!("{}[{j}]", network.field("routes")))?;
        routes.push(parse_route(&r)?);
    }
    let addressing = match kind {
        "ipv4_dhcp" | "dhcp4" | "dhcp" => Addressing::Dhcp4,
        "ipv6_dhcp" | "ipv6_dhcpv6-stateful" | "dhcp6" => Addressing::Dhcp6,
        "ipv6_slaac" => Addressing::Slaac { dhcp6_info: false },
        "ipv6_dhcpv6-stateless" => Addressing::Slaac { dhcp6_info: true },
        "ipv4" | "ipv6" => {
            let (address, prefix) = parse_address(network)?;
            // The default route becomes the address's gateway; the rest stay routes.
            let default_at = routes.iter().position(|r: &Route| {
                (r.to == "0.0.0.0/0" || r.to == "::/0")
                    && r.via.is_some_and(|v| v.is_ipv4() == address.is_ipv4())
            });
            let gateway = match default_at {
                Some(i) if i < routes.len() => Some(routes.remove(i)).and_then(|r| r.via),
                _ => network.ip("gateway")?,
            };
            Addressing::Static {
                address,
                prefix,
                gateway,
            }
        }
        other => {
            warnings.push(format!(
                "{}: unknown network type {other:?}; skipped",
                network.field("type")
            ));
            return Ok(());
        }
    };
    link.addressing.push(addressing);
    link.routes.extend(routes);
    // Per-network DNS: `services` entries, or `dns_nameservers`/`dns_search` lists.
    let mut dns = parse_services(network, "services")?;
    for (j, v) in network.list("dns_nameservers")?.iter().enumerate() {
        let at = format!("{}[{j}]", network.field("dns_nameservers"));
        let ip = v
            .as_str()
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
            .ok_or_else(|| DatasourceError::new(at, "expected an IP address"))?;
        dns.nameservers.push(ip);
    }
    for (j, v) in network.list("dns_search")?.iter().enumerate() {
        let at = format!("{}[{j}]", network.field("dns_search"));
        let domain = v
            .as_str()
            .filter(|d| crate::context::validate_hostname(d).is_ok())
            .ok_or_else(|| DatasourceError::new(at, "expected a domain name"))?;
        dns.search.push(domain.to_ascii_lowercase());
    }
    for ns in dns.nameservers {
        if !link.dns.nameservers.contains(&ns) {
            link.dns.nameservers.push(ns);
        }
    }
    for d in dns.search {
        if !link.dns.search.contains(&d) {
            link.dns.search.push(d);
        }
    }
    Ok(())
}

/// `ip_address` (possibly `addr/prefix`) and `netmask` (dotted, IPv6 mask or a prefix).
fn parse_address(network: &Obj) -> Result<(IpAddr, u8), DatasourceError> {
    let raw = network.req_str("ip_address")?;
    let bad = |what: &str| DatasourceError::new(network.field("ip_address"), what.to_string());
    let (addr_text, inline_prefix) = match raw.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (raw, None),
    };
    let address: IpAddr = addr_text
        .trim()
        .parse()
        .map_err(|_| bad(&format!("{raw:?} is not an IP address")))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    // No (or an empty) netmask: a host address for IPv4, and for IPv6 the /64 that every
    // IPv6 subnet OpenStack hands out has (cloud-init assumes the same).
    let default = if address.is_ipv4() { 32 } else { 64 };
    let prefix = match (inline_prefix, network.str("netmask")?.map(str::trim)) {
        (Some(p), _) => p.trim().parse::<u8>().ok(),
        (None, Some(mask)) if !mask.is_empty() => mask_to_prefix(mask),
        (None, _) => Some(default),
    };
    match prefix {
        Some(p) if p <= max => Ok((address, p)),
        _ => Err(DatasourceError::new(
            network.field("netmask"),
            format!("not a netmask for {address}"),
        )),
    }
}

/// `255.255.255.0` → 24, `ffff:ffff:ffff:ffff::` → 64, `24` → 24. Non-contiguous masks are
/// refused.
pub fn mask_to_prefix(mask: &str) -> Option<u8> {
    let mask = mask.trim();
    if let Ok(n) = mask.parse::<u8>() {
        return Some(n);
    }
    let bits: u128 = match mask.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
        IpAddr::V6(v6) => u128::from(v6),
    };
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return None;
    }
    u8::try_from(ones).ok()
}

fn parse_route(r: &Obj) -> Result<Route, DatasourceError> {
    let network = r
        .ip("network")?
        .ok_or_else(|| DatasourceError::new(r.field("network"), "missing"))?;
    let prefix = match r.str("netmask")? {
        Some(m) => mask_to_prefix(m).ok_or_else(|| {
            DatasourceError::new(r.field("netmask"), format!("{m:?} is not a netmask"))
        })?,
        None => {
            if network.is_ipv4() {
                32
            } else {
                128
            }
        }
    };
    Ok(Route {
        to: format!("{network}/{prefix}"),
        via: r.ip("gateway")?,
        metric: r
            .uint("metric", u64::from(u32::MAX))?
            .and_then(|m| u32::try_from(m).ok()),
        table: None,
    })
}

fn parse_services(obj: &Obj, key: &str) -> Result<Dns, DatasourceError> {
    let mut dns = Dns::default();
    for (i, s) in obj.list(key)?.iter().enumerate() {
        let s = Obj::new(s, format!("{}[{i}]", obj.field(key)))?;
        if s.str("type")? == Some("dns") {
            if let Some(addr) = s.ip("address")? {
                if !dns.nameservers.contains(&addr) {
                    dns.nameservers.push(addr);
                }
            }
        }
    }
    Ok(dns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Network, DatasourceError> {
        let v: Value = serde_json::from_str(text).unwrap();
        parse_network_data(&v, "network_data.json", &mut Vec::new())
    }

    /// More links than the cap: the rest are cut with one warning, and with them their
    /// networks and the VLANs on them (issue 15's one limits policy; this was an error).
    #[test]
    fn links_past_the_cap_are_cut_with_their_networks() {
        let n = crate::caps::LINKS.max + 2;
        let mut links: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"id": "l{i}", "type": "phy", "ethernet_mac_address": "02:00:00:00:{:02x}:{:02x}"}}"#, i / 256, i % 256))
            .collect();
        links.push(format!(
            r#"{{"id": "v", "type": "vlan", "vlan_link": "l{}", "vlan_id": 5}}"#,
            n - 1
        ));
        let networks = format!(
            r#"[{{"id": "n0", "link": "l0", "type": "ipv4_dhcp"}}, {{"id": "n1", "link": "l{}", "type": "ipv4_dhcp"}}, {{"id": "n2", "link": "v", "type": "ipv4_dhcp"}}]"#,
            n - 1
        );
        let text = format!(
            r#"{{"links": [{}], "networks": {networks}}}"#,
            links.join(",")
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        let mut warnings = Vec::new();
        let net = parse_network_data(&v, "network_data.json", &mut warnings).unwrap();
        assert_eq!(net.links.len(), crate::caps::LINKS.max, "links kept");
        assert_eq!(
            net.links[0].addressing,
            vec![Addressing::Dhcp4],
            "l0's network kept"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("more than 256; the rest are dropped")),
            "{warnings:?}"
        );
    }

    #[test]
    fn masks() {
        for (mask, want) in [
            ("255.255.255.0", Some(24)),
            ("255.255.255.248", Some(29)),
            ("0.0.0.0", Some(0)),
            ("255.255.255.255", Some(32)),
            ("ffff:ffff:ffff:ffff::", Some(64)),
            ("64", Some(64)),
            ("255.0.255.0", None),
            ("junk", None),
        ] {
            assert_eq!(mask_to_prefix(mask), want, "case {mask}");
        }
    }

    #[test]
    fn static_with_default_route_and_extra_route() {
        let net = parse(
            r#"{"links":[{"id":"tap1","type":"phy","ethernet_mac_address":"FA:16:3E:00:00:01","mtu":9000}],
                "networks":[{"id":"n","link":"tap1","type":"ipv4","ip_address":"10.0.0.5",
                  "netmask":"255.255.255.0","routes":[
                    {"network":"0.0.0.0","netmask":"0.0.0.0","gateway":"10.0.0.1"},
                    {"network":"192.168.0.0","netmask":"255.255.0.0","gateway":"10.0.0.2"}],
                  "services":[{"type":"dns","address":"10.0.0.3"}]}],
                "services":[{"type":"dns","address":"8.8.8.8"},{"type":"dns","address":"8.8.8.8"}]}"#,
        )
        .unwrap();
        let l = &net.links[0];
        assert_eq!(l.mac.as_deref(), Some("fa:16:3e:00:00:01"));
        assert_eq!(l.mtu, Some(9000));
        assert_eq!(
            l.addressing,
            vec![Addressing::Static {
                address: "10.0.0.5".parse().unwrap(),
                prefix: 24,
                gateway: Some("10.0.0.1".parse().unwrap())
            }]
        );
        assert_eq!(l.routes.len(), 1);
        assert_eq!(l.routes[0].to, "192.168.0.0/16");
        assert_eq!(l.dns.nameservers.len(), 1);
        assert_eq!(
            net.dns.nameservers,
            vec!["8.8.8.8".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        for (doc, field) in [
            (
                r#"{"links":[{"id":"a","mtu":"1500 bytes"}]}"#,
                "links[0].mtu",
            ),
            (
                r#"{"links":[{"id":"v","type":"vlan","vlan_id":"six","vlan_link":"a"}]}"#,
                "vlan_id",
            ),
            (r#"{"services":"dns"}"#, "services"),
            (
                r#"{"links":[{"id":"a"}],"networks":[{"link":"a","type":"ipv4","ip_address":"1.2.3.4","routes":{}}]}"#,
                "routes",
            ),
            (
                r#"{"links":[{"id":"a"}],"networks":[{"link":"b","type":"ipv4"}]}"#,
                "link",
            ),
            (
                r#"{"links":[{"id":"a","ethernet_mac_address":"zz"}]}"#,
                "ethernet_mac_address",
            ),
            (r#"{"links":{}}"#, "links"),
            (r#"[]"#, "network_data.json"),
        ] {
            let err = parse(doc).unwrap_err();
            assert!(err.object.contains(field), "case {doc}: {err}");
        }
    }

    #[test]
    fn bond_mode_numbers_and_unknown_types() {
        let mut warnings = Vec::new();
        let v: Value = serde_json::from_str(
            r#"{"links":[{"id":"b","type":"bond","bond_mode":4,"bond_links":["x"],"bond_miimon":100},
                         {"id":"x","type":"my-special-link-type"}]}"#,
        )
        .unwrap();
        let net = parse_network_data(&v, "n", &mut warnings).unwrap();
        match &net.links[0].kind {
            LinkKind::Bond { mode, options, .. } => {
                assert_eq!(mode, "802.3ad");
                assert_eq!(options.get("miimon").map(String::as_str), Some("100"));
            }
            other => panic!("not a bond: {other:?}"),
        }
        assert!(warnings[0].contains("Unknown network_data link type (my-special-link-type)"));
    }

    #[test]
    fn dates() {
        assert!(is_date("2015-10-15"));
        assert!(!is_date("latest"));
        assert!(!is_date("2015-1-015"));
    }

    /// Injected files are capped in bytes in all, not only in count (issue 16's class: 64
    /// files of 16 MiB would put 1 GiB into /run): past 16 MiB, the rest are dropped with a
    /// warning.
    #[test]
    fn injected_files_are_capped_in_bytes() {
        use crate::providers::netconfig::testutil::{source, TempState};
        let big = vec![b'x'; 7 << 20];
        let meta = br#"{"uuid": "i-1", "files": [
            {"path": "/a", "content_path": "/content/0000"},
            {"path": "/b", "content_path": "/content/0001"},
            {"path": "/c", "content_path": "/content/0002"}]}"#;
        let mut tree = crate::media::MemTree::new();
        tree.insert("openstack/latest/meta_data.json", meta.to_vec());
        for n in ["0000", "0001", "0002"] {
            tree.insert(&format!("openstack/content/{n}"), big.clone());
        }
        let state = TempState::new("injected-bytes");
        let input = Input {
            tree: &tree,
            source: source(crate::context::SourceKind::ConfigDrive),
            state: &state.0,
            host_nics: Vec::new(),
        };
        let ctx = read_drive(&input).unwrap();
        let kept: Vec<&str> = ctx.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(kept, ["/a", "/b"]);
        assert!(
            ctx.warnings.iter().any(|w| w.message
                == "injected files of more than 16777216 bytes in all (at openstack/content/0002); the rest are dropped"),
            "{:?}",
            ctx.warnings
        );
    }
}
