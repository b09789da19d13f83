//! EC2 instance metadata (IMDS) tree: `latest/meta-data/...`, `latest/user-data`, read through
//! a [`Tree`] (the HTTP service in the boot; a directory of the same shape in tests).
//!
//! Reads `instance-id` (warned when missing), `local-hostname` (else `hostname`), `public-keys/`
//! (`N=name` entries, each `N/openssh-key`), `network/interfaces/macs/<mac>/`
//! (`device-number`, `local-ipv4s`, `ipv6s`), `placement/availability-zone`, `instance-type`,
//! and `latest/user-data` (optional: 404 means none). Over HTTP, [`fetch`] first gets an
//! IMDSv2 token (below).
//!
//! Network: each MAC becomes a physical link with DHCPv4, plus DHCPv6 when it has `ipv6s`;
//! the primary NIC (`meta-data/mac`) first, then `device-number` order.
//! This is cloud-init's `convert_ec2_metadata_network_config` without its per-NIC route
//! metrics and policy routing for secondary IPs (not supported yet).
//! Caps: [`METADATA_CAP`] per document, [`USERDATA_CAP`] for user data, [`caps::LINKS`] NICs.
//!
//! IMDSv2: `PUT latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: 21600`, then
//! every GET carries `X-aws-ec2-metadata-token`. When the PUT gets 400, 404, 405 or 501 (an
//! IMDS without the token API: older or EC2-compatible services), the GETs go without a token
//! (IMDSv1), recorded in `fallbacks` as `imdsv1` and as a warning. A 403 (token API disabled
//! by policy) or 401 is an error: IMDSv1 is not tried, since an instance that refuses tokens
//! refuses unauthenticated GETs too. A PUT that times out or cannot connect is an error (the
//! service is not there).
//!
//! Other EC2-shaped services use this reader with their own [`Flavor`]: header names, the
//! fallback's name, how key directories are named, which leaves go to `extra` (Alibaba's,
//! `providers/alibaba`).

use super::service::Endpoint;
use super::{
    add_ssh_keys, read, set_hostname, store_secret, utf8, DatasourceError, Input, METADATA_CAP,
    USERDATA_CAP,
};
use crate::caps;
use crate::context::{normalize_mac, Addressing, Context, Fallback, Link, LinkKind, Platform};

const MD: &str = "latest/meta-data";

/// How an EC2-shaped metadata service differs from EC2's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    pub platform: Platform,
    /// The token PUT's TTL header (its value: 21600 seconds).
    pub ttl_header: &'static str,
    /// The header every GET carries the token in.
    pub token_header: &'static str,
    /// The `fallbacks` kind recorded when the service has no token API.
    pub tokenless: &'static str,
    /// What the service calls its token mode and its token-less one, for messages
    /// (`IMDSv2`, `IMDSv1`).
    pub token_mode: &'static str,
    pub plain_mode: &'static str,
    /// Key directories are named by the key pair (`skp-bp1…/`) as well as by index;
    /// EC2 lists `N=name` and only the index addresses the key.
    pub named_keys: bool,
    /// Leaves below `meta-data/` kept in `extra`, as (path, extra key).
    pub extras: &'static [(&'static str, &'static str)],
}

/// EC2's IMDS.
pub const EC2: Flavor = Flavor {
    platform: Platform::Ec2,
    ttl_header: "X-aws-ec2-metadata-token-ttl-seconds",
    token_header: "X-aws-ec2-metadata-token",
    tokenless: "imdsv1",
    token_mode: "IMDSv2",
    plain_mode: "IMDSv1",
    named_keys: false,
    extras: &[
        ("placement/availability-zone", "availability_zone"),
        ("instance-type", "instance_type"),
        ("placement/region", "region"),
    ],
};

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
    read_tree_as(input, &Flavor { platform, ..EC2 })
}

/// Reads an EC2-shaped tree of `flavor`'s platform.
pub fn read_tree_as(input: &Input, flavor: &Flavor) -> Result<Context, DatasourceError> {
    let mut ctx = Context::new(Some(flavor.platform), input.source.clone());
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
    for &(key, extra) in flavor.extras {
        if let Some(v) = optional(&mut ctx, input, &format!("{MD}/{key}")) {
            if !v.is_empty() && v.len() <= 255 {
                ctx.extra.insert(extra.into(), serde_json::Value::String(v));
            }
        }
    }

    if flavor.named_keys {
        named_keys(&mut ctx, input);
    } else {
        public_keys(&mut ctx, input);
    }
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
    if let Some(cut) = caps::SSH_KEYS.truncate(&mut indices) {
        ctx.warn("datasource", &dir, cut);
    }
    for i in indices {
        let path = format!("{dir}/{i}/openssh-key");
        if let Some(key) = optional(ctx, input, &path) {
            add_ssh_keys(ctx, &key, &path);
        }
    }
}

/// Keys under directories named by index or by key pair (`0/`, `skp-bp1…/`, or `0=name`),
/// each `<dir>/openssh-key`, in listing order.
fn named_keys(ctx: &mut Context, input: &Input) {
    let dir = format!("{MD}/public-keys");
    let mut names: Vec<String> = list(ctx, input, &dir)
        .iter()
        .filter_map(|e| e.split('=').next().map(str::trim))
        .filter(|n| {
            !n.is_empty()
                && *n != "_index"
                && crate::media::components(n).is_some_and(|c| c.len() == 1)
        })
        .map(str::to_string)
        .collect();
    names.dedup();
    if let Some(cut) = caps::SSH_KEYS.truncate(&mut names) {
        ctx.warn("datasource", &dir, cut);
    }
    for name in names {
        let path = format!("{dir}/{name}/openssh-key");
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
        if !caps::LINKS.room(nics.len()) {
            ctx.warn("datasource", &dir, caps::LINKS.cut());
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

/// Reads EC2's IMDS at `ep` with an IMDSv2 token (IMDSv1 only where the service has no token
/// API, recorded as a fallback).
pub fn fetch(ep: Endpoint) -> Result<Context, DatasourceError> {
    fetch_as(ep, &EC2)
}

/// Reads an EC2-shaped service of `flavor` at `ep`, with its token handshake.
pub fn fetch_as(mut ep: Endpoint, flavor: &Flavor) -> Result<Context, DatasourceError> {
    let url = ep.base.join("latest/api/token");
    let mut fallback = None;
    match ep
        .client
        .request("PUT", &url, &[(flavor.ttl_header, "21600")], b"", 4096)
    {
        Ok(r) if r.status == 200 => {
            let token = String::from_utf8(r.body)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty() && !t.contains(['\r', '\n']))
                .ok_or_else(|| DatasourceError::new(url.to_string(), "unusable token"))?;
            ep.client.headers = vec![(flavor.token_header.into(), token)];
        }
        Ok(r) if matches!(r.status, 400 | 404 | 405 | 501) => {
            let why = format!(
                "the token PUT got HTTP {}: this IMDS has no {}; reading without a token",
                r.status, flavor.token_mode
            );
            fallback = Some(why);
        }
        Ok(r) => {
            return Err(DatasourceError::new(
                url.to_string(),
                format!(
                    "{} token refused (HTTP {}); {} not tried",
                    flavor.token_mode, r.status, flavor.plain_mode
                ),
            ))
        }
        Err(e) => return Err(DatasourceError::new(url.to_string(), e.to_string())),
    }
    let mut ctx = ep.with_tree(|input, _| read_tree_as(input, flavor))?;
    if let Some(why) = fallback {
        ctx.fallbacks.push(Fallback {
            kind: flavor.tokenless.into(),
            reason: why.clone(),
        });
        ctx.warn("datasource", &url.to_string(), why);
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Access, Source, SourceKind};
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
                    medium: Access::Directory,
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
