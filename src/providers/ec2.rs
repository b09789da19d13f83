//! EC2 instance metadata (IMDS) tree: `latest/meta-data/...`, `latest/user-data`, read through
//! a [`Tree`] (the HTTP service in the boot; a directory of the same shape in tests).
//!
//! Reads `instance-id` (warned when missing), `local-hostname` (else `hostname`), `public-keys/`
//! (`N=name` entries, each `N/openssh-key`), `network/interfaces/macs/<mac>/`
//! (`device-number`, `local-ipv4s`, `ipv6s`), `placement/availability-zone`, `instance-type`,
//! and `latest/user-data` (optional: 404 means none). The IMDSv2 token dance is the HTTP
//! client's business (`service.rs`), not this module's.
//!
//! Network: each MAC becomes a physical link with DHCPv4, plus DHCPv6 when it has `ipv6s`;
//! the primary NIC (`meta-data/mac`) first, then `device-number` order.
//! This is cloud-init's `convert_ec2_metadata_network_config` without its per-NIC route
//! metrics and policy routing for secondary IPs (not supported yet).
//! Caps: [`METADATA_CAP`] per document, [`USERDATA_CAP`] for user data, [`MAX_LINKS`] NICs.

use super::{
    add_ssh_keys, read, set_hostname, store_secret, utf8, DatasourceError, Input, MAX_LINKS,
    MAX_SSH_KEYS, METADATA_CAP, USERDATA_CAP,
};
use crate::context::{normalize_mac, Addressing, Context, Link, LinkKind, Platform};

const MD: &str = "latest/meta-data";

/// A small text document, trimmed; `Ok(None)` if absent.
fn text(input: &Input, path: &str) -> Result<Option<String>, DatasourceError> {
    match read(input.tree, path, METADATA_CAP)? {
        Some(bytes) => Ok(Some(utf8(&bytes, path)?.trim().to_string())),
        None => Ok(None),
    }
}

/// An optional document: a failure is recorded and reads as absent.
fn optional(ctx: &mut Context, input: &Input, path: &str) -> Option<String> {
    match text(input, path) {
        Ok(v) => v,
        Err(e) => {
            ctx.error("datasource", &e.object, e.message);
            None
        }
    }
}

/// Reads the IMDS tree into a context of `platform` (EC2, or OpenStack's EC2-style fallback).
pub fn read_tree(input: &Input, platform: Platform) -> Result<Context, DatasourceError> {
    let mut ctx = Context::new(Some(platform), input.source.clone());
    ctx.host_nics = input.host_nics.clone();
    let id_path = format!("{MD}/instance-id");
    // IMDS always has an instance id; a tree without one (a partial copy) is read, warned.
    match text(input, &id_path)?.filter(|s| !s.is_empty()) {
        None => ctx.warn("datasource", &id_path, "missing"),
        Some(id) if id.len() > 255 || id.chars().any(|c| c.is_control() || c.is_whitespace()) => {
            return Err(DatasourceError::new(&id_path, "not a plain short value"));
        }
        Some(id) => ctx.instance_id = Some(id),
    }

    for key in ["local-hostname", "hostname"] {
        let path = format!("{MD}/{key}");
        if let Some(name) = optional(&mut ctx, input, &path).filter(|s| !s.is_empty()) {
            set_hostname(&mut ctx, &name, &path);
            break;
        }
    }
    for (key, extra) in [
        ("placement/availability-zone", "availability_zone"),
        ("instance-type", "instance_type"),
        ("placement/region", "region"),
    ] {
        if let Some(v) = optional(&mut ctx, input, &format!("{MD}/{key}")) {
            if !v.is_empty() && v.len() <= 255 {
                ctx.extra.insert(extra.into(), serde_json::Value::String(v));
            }
        }
    }

    public_keys(&mut ctx, input);
    network(&mut ctx, input);

    match read(input.tree, "latest/user-data", USERDATA_CAP) {
        Ok(Some(data)) if !data.is_empty() => {
            ctx.user_data = store_secret(&mut ctx, input.state, "user-data", &data);
        }
        Ok(_) => {}
        Err(e) => ctx.error("datasource", &e.object, e.message),
    }
    ctx.match_nics(false);
    Ok(ctx)
}

fn list(ctx: &mut Context, input: &Input, dir: &str) -> Vec<String> {
    match input.tree.list(dir) {
        Ok(Some(names)) => names,
        Ok(None) => Vec::new(),
        Err(e) => {
            let e = DatasourceError::from(e);
            ctx.error("datasource", dir, e.message);
            Vec::new()
        }
    }
}

fn public_keys(ctx: &mut Context, input: &Input) {
    let dir = format!("{MD}/public-keys");
    let mut indices: Vec<u32> = list(ctx, input, &dir)
        .iter()
        // IMDS lists `0=name`; a directory copy lists `0` (and `_index`).
        .filter_map(|e| e.split('=').next().and_then(|n| n.parse().ok()))
        .collect();
    indices.sort_unstable();
    indices.dedup();
    for i in indices.into_iter().take(MAX_SSH_KEYS) {
        let path = format!("{dir}/{i}/openssh-key");
        if let Some(key) = optional(ctx, input, &path) {
            add_ssh_keys(ctx, &key, &path);
        }
    }
}

fn network(ctx: &mut Context, input: &Input) {
    let dir = format!("{MD}/network/interfaces/macs");
    let primary = optional(ctx, input, &format!("{MD}/mac")).and_then(|m| normalize_mac(&m));
    let mut nics = Vec::new();
    for entry in list(ctx, input, &dir) {
        let Some(mac) = normalize_mac(&entry) else {
            continue;
        };
        if nics.len() >= MAX_LINKS {
            ctx.warn(
                "datasource",
                &dir,
                format!("more than {MAX_LINKS} NICs; the rest are dropped"),
            );
            break;
        }
        let base = format!("{dir}/{entry}");
        let number: u32 = optional(ctx, input, &format!("{base}/device-number"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(u32::MAX);
        let has = |ctx: &mut Context, key: &str| {
            optional(ctx, input, &format!("{base}/{key}")).is_some_and(|v| !v.is_empty())
        };
        let v6 = has(ctx, "ipv6s");
        let is_primary = primary.as_deref() == Some(mac.as_str()) || number == 0;
        let mut link = Link::new(format!("nic{number}"), LinkKind::Physical);
        if number == u32::MAX {
            link.id = mac.clone();
        }
        link.mac = Some(mac);
        // cloud-init enables DHCPv4 on every NIC, even IPv6-only ones.
        link.addressing.push(Addressing::Dhcp4);
        if v6 {
            link.addressing.push(Addressing::Dhcp6);
        }
        nics.push(((!is_primary, number), link));
    }
    nics.sort_by_key(|(n, _)| *n);
    ctx.network.links = nics.into_iter().map(|(_, l)| l).collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Medium, Source, SourceKind};
    use crate::media::DirTree;
    use crate::state::StateDir;

    #[test]
    fn fixture_trees() {
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/ec2");
        let Ok(cases) = std::fs::read_dir(&fixtures) else {
            eprintln!("SKIP fixture_trees: no {}", fixtures.display());
            return;
        };
        let state_dir = std::env::temp_dir().join(format!("preroot-ec2-{}", std::process::id()));
        for case in cases.flatten() {
            let tree = DirTree::new(case.path().join("input"));
            let input = Input {
                tree: &tree,
                source: Source {
                    kind: SourceKind::MetadataService,
                    medium: Medium::Directory,
                    location: "x".into(),
                    partition_of: None,
                },
                state: &StateDir::new(&state_dir),
                host_nics: Vec::new(),
            };
            let ctx = read_tree(&input, Platform::Ec2).unwrap();
            let name = case.file_name();
            assert!(!ctx.network.links.is_empty(), "case {name:?}");
            assert!(ctx.errors.is_empty(), "case {name:?}: {:?}", ctx.errors);
        }
        let _ = std::fs::remove_dir_all(&state_dir);
    }
}
