//! Scaleway: the instance metadata API at 169.254.42.42: `conf?format=json` (one JSON
//! document), user data at `user_data/cloud-init` and vendor data at `vendor_data/cloud-init`.
//! [`read`] turns them into a context (pure: bytes in, context out; secrets go to the state
//! directory); [`fetch`] GETs them.
//!
//! **Privileged source port.** The API serves user and vendor data only to requests from a
//! TCP source port below 1024, so that only root on the instance can read them; [`fetch`]
//! binds one for those two GETs (`http::Client::source_ports`, ports 1023 downwards until one
//! is free, as cloud-init's `SourceAddressAdapter` tries its ports in turn). Without root the
//! bind is refused: that is an error in the context naming it, and the rest is kept. The
//! document itself is read from any port. A 404 means none.
//!
//! Reads (www.scaleway.com/en/docs/instances/, cloud-init's `DataSourceScaleway`, Afterburn's
//! `providers/scaleway`): `id` as the instance id, `hostname`, `commercial_type` and
//! `location.zone_id` (extra), keys from `ssh_public_keys[].key` and from `tags` of the form
//! `AUTHORIZED_KEY=<key with _ for spaces>`. Network: Scaleway names no MAC, so the one link
//! is the first host NIC by name (cloud-init's fallback interface), with DHCPv4 and, when the
//! document has one, the static IPv6 address of `ipv6{address,netmask,gateway}` (or the
//! `inet6` entries of `public_ips[]` in the newer shape), the gateway as its default route.
//! Additional public IPv4 addresses of the newer shape are not configured (DHCP gives the
//! primary one; the rest need the lease's address to tell apart). The IPv6 endpoint
//! `[fd00:42::42]` needs an IPv6 network stage (`--metadata-url` works where one is up).
//!
//! Not done: Afterburn's boot check-in (`PATCH /state`), which belongs to the booted system.
//! Caps: [`super::METADATA_CAP`], [`super::USERDATA_CAP`], [`crate::caps::ADDRESSES`].
//!
//! Panic contract: nothing here panics on any input; a document that is not a JSON object,
//! or a bad instance id, is an error.
#![deny(clippy::arithmetic_side_effects)]

use super::fields::{self, nonempty, text};
use super::service::Endpoint;
use super::{add_ssh_keys, parse_json, DatasourceError, USERDATA_CAP};
use crate::caps;
use crate::context::{Addressing, Context, HostNic, Link, LinkKind, Platform, Source};
use crate::state::StateDir;
use serde_json::Value;

/// Paths below the service's base URL.
pub const CONF: &str = "conf?format=json";
pub const USER_DATA: &str = "user_data/cloud-init";
pub const VENDOR_DATA: &str = "vendor_data/cloud-init";

/// Source ports tried for user and vendor data: privileged, highest first.
pub const SOURCE_PORTS: (u16, u16) = (1, 1023);

/// The context of `conf?format=json` (with the URL it came from) and the user and vendor
/// data, if any.
pub fn read(
    conf: (&[u8], &str),
    user_data: Option<&[u8]>,
    vendor_data: Option<&[u8]>,
    source: Source,
    state: &StateDir,
    host_nics: Vec<HostNic>,
) -> Result<Context, DatasourceError> {
    let (body, object) = conf;
    let doc = parse_json(body, object)?;
    if !doc.is_object() {
        return Err(DatasourceError::new(object, "not a JSON object"));
    }
    let mut ctx = Context::new(Some(Platform::Scaleway), source);
    ctx.host_nics = host_nics;
    fields::instance_id(&mut ctx, text(doc.get("id")), "id")?;
    fields::hostname(&mut ctx, nonempty(doc.get("hostname")), "hostname");
    if let Some(t) = nonempty(doc.get("commercial_type")) {
        ctx.extra.insert("instance_type".into(), Value::String(t));
    }
    if let Some(z) = nonempty(doc.get("location").and_then(|l| l.get("zone_id"))) {
        ctx.extra
            .insert("availability_zone".into(), Value::String(z));
    }
    keys(&mut ctx, &doc);
    if let Some(data) = user_data {
        ctx.user_data = fields::secret(&mut ctx, state, "user-data", data);
    }
    if let Some(data) = vendor_data {
        ctx.vendor_data = fields::secret(&mut ctx, state, "vendor-data", data);
    }
    network(&mut ctx, &doc);
    ctx.match_nics(false);
    Ok(ctx)
}

fn keys(ctx: &mut Context, doc: &Value) {
    let mut lines = Vec::new();
    for k in doc
        .get("ssh_public_keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(key) = nonempty(k.get("key")) {
            lines.push(key);
        }
    }
    for tag in doc
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(key) = tag.as_str().and_then(|t| t.strip_prefix("AUTHORIZED_KEY=")) {
            lines.push(key.replace('_', " "));
        }
    }
    add_ssh_keys(ctx, &lines.join("\n"), "ssh_public_keys");
}

/// The static IPv6 addresses of either shape, with their gateways.
fn ipv6_addresses(ctx: &mut Context, doc: &Value) -> Vec<Addressing> {
    let mut out = Vec::new();
    let mut add = |ctx: &mut Context, v: &Value, object: &str| {
        let gw = nonempty(v.get("gateway"));
        match (nonempty(v.get("address")), nonempty(v.get("netmask"))) {
            (Some(a), Some(m)) => match fields::static_addr(&a, &m, gw.as_deref()) {
                Some(s) if caps::ADDRESSES.room(out.len()) => out.push(s),
                Some(_) => ctx.warn("datasource", object, caps::ADDRESSES.cut()),
                None => ctx.warn("datasource", object, "not an address and netmask; skipped"),
            },
            _ => ctx.warn("datasource", object, "address or netmask missing; skipped"),
        }
    };
    if let Some(v6) = doc.get("ipv6").filter(|v| v.is_object()) {
        add(ctx, v6, "ipv6");
    }
    for (i, ip) in doc
        .get("public_ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !caps::ADDRESSES.room(i) {
            ctx.warn("datasource", "public_ips", caps::ADDRESSES.cut());
            break;
        }
        if text(ip.get("family")).as_deref() == Some("inet6") {
            add(ctx, ip, &format!("public_ips[{i}]"));
        }
    }
    out
}

fn network(ctx: &mut Context, doc: &Value) {
    let v6 = ipv6_addresses(ctx, doc);
    let mut nics = ctx.host_nics.clone();
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    let Some(first) = nics.first() else {
        if !v6.is_empty() {
            ctx.warn(
                "network",
                "ipv6",
                "no NIC on this host to put the static IPv6 address on",
            );
        }
        return;
    };
    let mut link = Link::new("primary", LinkKind::Physical);
    link.mac = Some(first.mac.clone());
    link.addressing.push(Addressing::Dhcp4);
    link.addressing.extend(v6);
    ctx.network.links.push(link);
}

/// Reads Scaleway's document at `ep`, then user and vendor data from a privileged source
/// port.
pub fn fetch(ep: Endpoint) -> Result<Context, DatasourceError> {
    let conf = fields::document(&ep, CONF)?;
    let conf_url = ep.base.join(CONF).to_string();
    let mut privileged = ep.client.clone();
    privileged.source_ports = Some(SOURCE_PORTS);
    let mut problems = Vec::new();
    let mut get = |path: &str| {
        let url = ep.base.join(path);
        let cap = usize::try_from(USERDATA_CAP).unwrap_or(usize::MAX);
        match privileged.get(&url, cap) {
            Ok(v) => v,
            Err(e) => {
                problems.push(DatasourceError::new(url.to_string(), e.to_string()));
                None
            }
        }
    };
    let user = get(USER_DATA);
    let vendor = get(VENDOR_DATA);
    let mut ctx = read(
        (&conf, &conf_url),
        user.as_deref(),
        vendor.as_deref(),
        ep.source,
        ep.state,
        ep.host_nics,
    )?;
    for e in problems {
        ctx.error("datasource", &e.object, e.message);
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::SourceKind;
    use crate::providers::netconfig::testutil::{source, TempState};
    use serde_json::json;

    fn nics() -> Vec<HostNic> {
        vec![
            HostNic {
                name: "ens3".into(),
                mac: "de:00:00:00:00:02".into(),
            },
            HostNic {
                name: "ens2".into(),
                mac: "de:00:00:00:00:01".into(),
            },
        ]
    }

    #[test]
    fn the_fixture() {
        let st = TempState::new("scw");
        let conf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/platforms/scaleway/conf.json"
        ))
        .unwrap();
        let ctx = read(
            (&conf, "conf"),
            Some(b"#cloud-config\n"),
            None,
            source(SourceKind::MetadataService),
            &st.0,
            nics(),
        )
        .unwrap();
        assert_eq!(
            ctx.instance_id.as_deref(),
            Some("11111111-1111-1111-1111-111111111111")
        );
        assert_eq!(ctx.hostname.as_deref(), Some("frontend-0"));
        assert_eq!(ctx.ssh_keys.len(), 2);
        assert!(
            ctx.ssh_keys[1].starts_with("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC made up "),
            "{:?}",
            ctx.ssh_keys
        );
        assert!(ctx.user_data.is_some());
        let link = &ctx.network.links[0];
        assert_eq!(link.name.as_deref(), Some("ens2"), "the first NIC by name");
        assert_eq!(
            link.addressing,
            vec![
                Addressing::Dhcp4,
                Addressing::Static {
                    address: "2001:db8::1".parse().unwrap(),
                    prefix: 64,
                    gateway: Some("2001:db8::".parse().unwrap()),
                }
            ]
        );
        assert!(
            ctx.errors.is_empty() && ctx.warnings.is_empty(),
            "{:?} {:?}",
            ctx.errors,
            ctx.warnings
        );
    }

    #[test]
    fn shapes() {
        let st = TempState::new("scw");
        // (case, document, links, addresses on the link, warnings)
        let cases: Vec<(&str, Value, Vec<HostNic>, usize, usize)> = vec![
            (
                "no NIC",
                json!({"id": "a", "hostname": "h"}),
                Vec::new(),
                0,
                0,
            ),
            (
                "no NIC but IPv6",
                json!({"id": "a", "hostname": "h", "ipv6": {"address": "2001:db8::1", "netmask": "64"}}),
                Vec::new(),
                0,
                1,
            ),
            (
                "ipv6 null",
                json!({"id": "a", "hostname": "h", "ipv6": null}),
                nics(),
                1,
                0,
            ),
            (
                "newer shape",
                json!({"id": "a", "hostname": "h", "private_ip": null, "public_ips": [
                {"family": "inet", "address": "51.15.0.1", "netmask": "32"},
                {"family": "inet6", "address": "2001:db8::2", "netmask": "64", "gateway": "fe80::1"}]}),
                nics(),
                2,
                0,
            ),
            (
                "bad ipv6",
                json!({"id": "a", "hostname": "h", "ipv6": {"address": "x", "netmask": "64"}}),
                nics(),
                1,
                1,
            ),
            (
                "tags not strings",
                json!({"id": "a", "hostname": "h", "tags": [1, {"a": 2}]}),
                nics(),
                1,
                0,
            ),
        ];
        for (case, doc, nics, addrs, warnings) in cases {
            let ctx = read(
                (doc.to_string().as_bytes(), "conf"),
                None,
                None,
                source(SourceKind::MetadataService),
                &st.0,
                nics,
            )
            .unwrap();
            let got = ctx
                .network
                .links
                .iter()
                .find(|l| l.origin == crate::context::LinkOrigin::Described);
            assert_eq!(got.map_or(0, |l| l.addressing.len()), addrs, "case {case}");
            assert_eq!(
                ctx.warnings.len(),
                warnings,
                "case {case}: {:?}",
                ctx.warnings
            );
        }
        for bad in ["[]", "{\"id\": \"a\\nb\"}", "{"] {
            let r = read(
                (bad.as_bytes(), "conf"),
                None,
                None,
                source(SourceKind::MetadataService),
                &st.0,
                nics(),
            );
            assert!(r.is_err(), "case {bad:?}");
        }
    }
}
