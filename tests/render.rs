//! Renderers against the fixtures' expected files, compared semantically: both sides are
//! parsed into per-interface facts (addresses, gateways, routes, DNS, search domains, DHCP,
//! MTU, bond/bridge/VLAN membership) and those are compared, not the bytes.

mod common;

use preroot::context::{Context, Medium, Source, SourceKind};
use preroot::providers::netconfig;
use preroot::render::{networkd::Networkd, Renderer};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// What a set of networkd files says about each interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Facts {
    addresses: BTreeSet<String>,
    gateways: BTreeSet<String>,
    routes: BTreeSet<(String, String)>,
    /// (From, To, Table, Priority) of each `[RoutingPolicyRule]`.
    rules: BTreeSet<(String, String, String, String)>,
    dns: BTreeSet<String>,
    domains: BTreeSet<String>,
    dhcp: String,
    mtu: Option<String>,
    master: Option<String>,
    kind: Option<String>,
    vlan_id: Option<String>,
    bond_mode: Option<String>,
}

/// `[Section]` → list of (key, value), sections repeated in order.
fn ini(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(sec) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push((sec.to_string(), Vec::new()));
        } else if let Some((k, v)) = line.split_once('=') {
            out.last_mut()
                .expect("key before any section")
                .1
                .push((k.trim().into(), v.trim().into()));
        }
    }
    out
}

fn normalize_dhcp(v: &str) -> String {
    match v {
        "yes" | "true" | "both" => "yes",
        "ipv4" | "v4" => "ipv4",
        "ipv6" | "v6" => "ipv6",
        _ => "no",
    }
    .to_string()
}

fn facts(files: &[(String, String)]) -> BTreeMap<String, Facts> {
    let mut by_name: BTreeMap<String, Facts> = BTreeMap::new();
    for (path, text) in files {
        let sections = ini(text);
        let get = |sec: &str, key: &str| {
            sections
                .iter()
                .filter(|(s, _)| s == sec)
                .flat_map(|(_, kv)| kv.iter())
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        if path.ends_with(".netdev") {
            let name = get("NetDev", "Name").expect("netdev Name");
            let f = by_name.entry(name).or_default();
            f.kind = get("NetDev", "Kind");
            f.vlan_id = get("VLAN", "Id");
            f.bond_mode = get("Bond", "Mode");
            if let Some(m) = get("NetDev", "MTUBytes") {
                f.mtu = Some(m);
            }
            continue;
        }
        let name = get("Match", "Name").expect("network Match Name");
        let f = by_name.entry(name).or_default();
        f.dhcp = normalize_dhcp(&get("Network", "DHCP").unwrap_or_default());
        if let Some(m) = get("Link", "MTUBytes") {
            f.mtu = Some(m);
        }
        f.master = get("Network", "Bond").or_else(|| get("Network", "Bridge"));
        for (sec, kv) in &sections {
            let mut dest = None;
            let mut gw = None;
            for (k, v) in kv {
                match (sec.as_str(), k.as_str()) {
                    ("Address" | "Network", "Address") => {
                        f.addresses.insert(v.to_ascii_lowercase());
                    }
                    ("Network", "Gateway") => {
                        f.gateways.insert(v.to_ascii_lowercase());
                    }
                    ("Network", "DNS") => f
                        .dns
                        .extend(v.split_whitespace().map(str::to_ascii_lowercase)),
                    ("Network", "Domains") => {
                        f.domains.extend(v.split_whitespace().map(String::from))
                    }
                    ("Route", "Destination") => dest = Some(v.clone()),
                    ("Route", "Gateway") => gw = Some(v.to_ascii_lowercase()),
                    _ => {}
                }
            }
            if sec == "RoutingPolicyRule" {
                let val = |key: &str| {
                    kv.iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                f.rules
                    .insert((val("From"), val("To"), val("Table"), val("Priority")));
            }
            if sec == "Route" {
                match (dest.as_deref(), gw) {
                    (None | Some("0.0.0.0/0") | Some("::/0"), Some(g)) => {
                        f.gateways.insert(g);
                    }
                    (Some(d), g) => {
                        f.routes.insert((d.to_string(), g.unwrap_or_default()));
                    }
                    (None, None) => {}
                }
            }
        }
    }
    // A bond or bridge member has no address, so name servers on it are inert; cloud-init
    // writes the global ones there anyway, preroot does not. Compare DNS on the rest.
    for f in by_name.values_mut() {
        if f.master.is_some() {
            f.dns.clear();
            f.domains.clear();
        }
    }
    by_name
}

fn expected_files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        out.push((p.display().to_string(), fs::read_to_string(&p).unwrap()));
    }
    out
}

fn context_from_netconfig(text: &str) -> Context {
    let parsed = netconfig::parse(text).expect("fixture network-config parses");
    let mut ctx = Context::new(
        None,
        Source {
            kind: SourceKind::NocloudSeed,
            medium: Medium::Directory,
            location: "fixture".into(),
            partition_of: None,
        },
    );
    ctx.network = parsed.network;
    ctx.match_nics(false);
    ctx
}

/// Where preroot differs from cloud-init's networkd output on purpose: (case, interface,
/// the MTU preroot writes, why).
const MTU_DIFFERENCES: &[(&str, &str, &str, &str)] = &[(
    "ci-v1-ipv4-and-ipv6-static-v1",
    "iface0",
    "9000",
    "link mtu 8999 but IPv4 subnet mtu 9000: cloud-init's own NetworkManager and ifcfg \
     renders of this case use 9000 (its networkd render 8999); the context keeps one MTU and \
     follows the subnet, as the majority does",
)];

#[test]
fn networkd_matches_cloud_init_semantically() {
    let mut compared = 0;
    let mut failures = Vec::new();
    let root = common::fixtures().join("netconfig");
    let mut cases: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    for case in cases {
        let want_dir = case.join("expected/networkd/etc/systemd/network");
        if !want_dir.is_dir() {
            continue;
        }
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(case.join("input/network-config")).unwrap();
        let ctx = context_from_netconfig(&text);
        let ours = Networkd
            .render(&ctx)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours: Vec<(String, String)> = ours.into_iter().map(|f| (f.path, f.content)).collect();
        let got = facts(&ours);
        let want = facts(&expected_files(&want_dir));
        for (ifname, w) in &want {
            let mut w = w.clone();
            if let Some((_, _, mtu, _why)) = MTU_DIFFERENCES
                .iter()
                .find(|(c, i, _, _)| *c == name && i == ifname)
            {
                w.mtu = Some(mtu.to_string());
            }
            match got.get(ifname) {
                None => failures.push(format!("{name}: no file for {ifname}")),
                Some(g) if *g != w => {
                    failures.push(format!("{name}: {ifname}:\n  ours {g:?}\n  want {w:?}"))
                }
                Some(_) => {}
            }
        }
        compared += 1;
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        compared >= 10,
        "only {compared} cases had networkd expectations"
    );
}
