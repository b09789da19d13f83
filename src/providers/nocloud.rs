//! NoCloud seed (`cidata`): `meta-data`, `user-data`, `vendor-data`, `network-config` at the
//! root of the medium, read into a [`Context`].
//!
//! Follows cloud-init's "NoCloud" datasource docs and `DataSourceNoCloud.py`:
//! - `meta-data` (YAML) is required; a missing or unparseable one is a [`DatasourceError`].
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
//! Not supported: `seedfrom` (fetching the seed from elsewhere), the kernel command line and
//! DMI serial forms (`ds=nocloud;h=...`; `cmdline.rs` owns the command line), and legacy
//! `network-interfaces` (ENI text) in meta-data, which is warned about and ignored.
//! Other meta-data keys are dropped, except an allow-list of plain values copied to `extra`.
//!
//! Caps: `meta-data` and `network-config` [`METADATA_CAP`], user/vendor data
//! [`USERDATA_CAP`], ssh keys [`super::MAX_SSH_KEYS`].

use crate::context::{Context, Platform};
use crate::providers::netconfig::{self, load_yaml, Node};
use crate::providers::{
    self, add_ssh_keys, set_hostname, store_secret, utf8, DatasourceError, Input, METADATA_CAP,
    USERDATA_CAP,
};

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
    let md = load_yaml(text).map_err(|e| DatasourceError::new("meta-data", e))?;
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

    let disabled = network_config(&mut ctx, input);
    if md.get("network-interfaces").is_some() {
        ctx.warn(
            "datasource",
            "meta-data: network-interfaces",
            "legacy ENI network configuration is not supported; ignored",
        );
    }
    if !disabled {
        ctx.match_nics(false);
    }
    Ok(ctx)
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

/// Reads and parses `network-config` into `ctx.network`; returns whether it disables
/// networking. Never fails: every problem with this optional file is recorded in `ctx`.
fn network_config(ctx: &mut Context, input: &Input) -> bool {
    const FILE: &str = "network-config";
    let raw = match providers::read(input.tree, FILE, METADATA_CAP) {
        Ok(Some(raw)) => raw,
        Ok(None) => return false,
        Err(e) => {
            ctx.error("datasource", FILE, e.message);
            return false;
        }
    };
    let text = match utf8(&raw, FILE) {
        Ok(t) => t,
        Err(e) => {
            ctx.error("datasource", FILE, e.message);
            return false;
        }
    };
    let root = match load_yaml(text) {
        Ok(Node::Null) => return false,
        Ok(root) => root,
        Err(e) => {
            ctx.error("datasource", FILE, e);
            return false;
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
                return true;
            }
            ctx.network = parsed.network;
        }
        Err(e) => ctx.error("datasource", FILE, e),
    }
    false
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
            ("eni warned", b"instance-id: i-1\nnetwork-interfaces: |\n  iface eth0 inet dhcp\n", |c| {
                c.warnings.iter().any(|w| w.object.contains("network-interfaces"))
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
        // Oversized user-data: recorded, the rest kept.
        let big = vec![b'x'; USERDATA_CAP as usize + 1];
        let tree = MemTree::new(&[("meta-data", b"instance-id: i-1\n"), ("user-data", &big)]);
        let ctx = run(&tree, vec![nic]).unwrap();
        assert!(ctx.user_data.is_none());
        assert!(ctx.errors[0].message.contains("limit"), "{:?}", ctx.errors);
    }
}
