//! DigitalOcean: the one document `metadata/v1.json` of the metadata service at
//! 169.254.169.254, turned into a context by [`read`] (pure: the fetched bytes in, the context
//! out; secrets go to the state directory). [`fetch`] GETs it.
//!
//! Reach: droplets get no DHCP on the public NIC, so the network stage does not race DHCP
//! for this platform ([`crate::platform::Service::LinkLocal`]): it puts a random
//! `169.254.x.y/16` on the first NIC *without ARP probing* (`net::link_local`). The range
//! is routed per droplet, so there is no other host to collide with, and RFC 3927's probe
//! (PROBE_WAIT up to 1 s, three probes 1–2 s apart, ANNOUNCE_WAIT 2 s) would cost 4–7 s of
//! the deadline for nothing; cloud-init's `assign_ipv4_link_local` does the same.
//!
//! Reads (docs.digitalocean.com/reference/api/metadata-api, cloud-init's
//! `DataSourceDigitalOcean` and `helpers/digitalocean.py`):
//! - `droplet_id` (a number, or a string) as the instance id, `hostname`, `region`;
//! - `public_keys` (a list, or a string: `""` when there are none);
//! - `user_data` and `vendor_data` (text; 0600 secrets);
//! - `interfaces.public[]` and `interfaces.private[]`: each a link by `mac` with static
//!   `ipv4{ip_address,netmask,gateway}`, `ipv6{ip_address,cidr,gateway}` and
//!   `anchor_ipv4`/`anchor_ipv6` (a second address on the public NIC). As in cloud-init's
//!   `convert_network_configuration`, only a public NIC's own `ipv4`/`ipv6` keep their
//!   gateway; private and anchor addresses get none (the anchor has no route of its own);
//! - `dns.nameservers`, global.
//!
//! Not read: `floating_ip` (configured by DigitalOcean outside the guest), `auth_key` (the
//! droplet agent's). Caps: [`super::METADATA_CAP`] on the document, [`caps::LINKS`] links,
//! [`caps::ADDRESSES`] per link, [`caps::NAMESERVERS`].
//!
//! Panic contract: nothing here panics on any input; a document that is not a JSON object
//! is the one error, everything else missing or malformed is a warning or an error in the
//! context naming its field.
#![deny(clippy::arithmetic_side_effects)]

use super::fields::{self, nonempty, text};
use super::service::Endpoint;
use super::{parse_json, DatasourceError};
use crate::caps;
use crate::context::{normalize_mac, Context, HostNic, Link, LinkKind, Platform, Source};
use crate::state::StateDir;
use serde_json::Value;
use std::net::IpAddr;

/// The document's path below the service's base URL.
pub const PATH: &str = "metadata/v1.json";

/// The context of `v1.json`'s bytes `body` (fetched from `object`, named in errors).
pub fn read(
    body: &[u8],
    object: &str,
    source: Source,
    state: &StateDir,
    host_nics: Vec<HostNic>,
) -> Result<Context, DatasourceError> {
    let doc = parse_json(body, object)?;
    if !doc.is_object() {
        return Err(DatasourceError::new(object, "not a JSON object"));
    }
    let mut ctx = Context::new(Some(Platform::DigitalOcean), source);
    ctx.host_nics = host_nics;
    fields::instance_id(&mut ctx, text(doc.get("droplet_id")), "droplet_id")?;
    fields::hostname(&mut ctx, nonempty(doc.get("hostname")), "hostname");
    if let Some(region) = nonempty(doc.get("region")) {
        ctx.extra.insert("region".into(), Value::String(region));
    }
    fields::keys(&mut ctx, doc.get("public_keys"), "public_keys");
    for (field, name) in [("user_data", "user-data"), ("vendor_data", "vendor-data")] {
        let data = match doc.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => s.clone().into_bytes(),
            // cloud-init accepts vendor data as JSON too: keep it as JSON text.
            Some(other) => other.to_string().into_bytes(),
        };
        let stored = fields::secret(&mut ctx, state, name, &data);
        if field == "user_data" {
            ctx.user_data = stored;
        } else {
            ctx.vendor_data = stored;
        }
    }
    network(&mut ctx, &doc);
    ctx.match_nics(false);
    Ok(ctx)
}

fn network(ctx: &mut Context, doc: &Value) {
    let interfaces = doc.get("interfaces");
    // Entries are counted, not links, so entries skipped for their faults are bounded too.
    let mut seen = 0usize;
    for kind in ["public", "private"] {
        let Some(list) = interfaces.and_then(|i| i.get(kind)) else {
            continue;
        };
        let Some(list) = list.as_array() else {
            ctx.warn("datasource", &format!("interfaces.{kind}"), "not a list");
            continue;
        };
        for (i, nic) in list.iter().enumerate() {
            let object = format!("interfaces.{kind}[{i}]");
            if !caps::LINKS.room(seen) {
                ctx.warn("datasource", "interfaces", caps::LINKS.cut());
                return;
            }
            seen = seen.saturating_add(1);
            if let Some(link) = link(ctx, nic, kind, i, &object) {
                ctx.network.links.push(link);
            }
        }
    }
    if let Some(list) = doc.get("dns").and_then(|d| d.get("nameservers")) {
        let mut servers: Vec<IpAddr> = list
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str()?.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(cut) = caps::NAMESERVERS.truncate(&mut servers) {
            ctx.warn("datasource", "dns.nameservers", cut);
        }
        ctx.network.dns.nameservers = servers;
    }
}

/// One NIC of `interfaces.<kind>`; `None` (warned) without a usable MAC.
fn link(ctx: &mut Context, nic: &Value, kind: &str, i: usize, object: &str) -> Option<Link> {
    let Some(mac) = text(nic.get("mac")).and_then(|m| normalize_mac(&m)) else {
        ctx.warn("datasource", object, "no usable mac; skipped");
        return None;
    };
    let id = if i == 0 {
        kind.to_string()
    } else {
        format!("{kind}{i}")
    };
    let mut link = Link::new(id, LinkKind::Physical);
    link.mac = Some(mac);
    let public = kind == "public";
    for (field, mask_key, gateway) in [
        ("ipv4", "netmask", public),
        ("ipv6", "cidr", public),
        ("anchor_ipv4", "netmask", false),
        ("anchor_ipv6", "cidr", false),
    ] {
        let Some(sub) = nic.get(field).filter(|v| !v.is_null()) else {
            continue;
        };
        let address = nonempty(sub.get("ip_address"));
        let mask = nonempty(sub.get(mask_key));
        let gw = if gateway {
            nonempty(sub.get("gateway"))
        } else {
            None
        };
        let addr = match (address, mask) {
            (Some(a), Some(m)) => fields::static_addr(&a, &m, gw.as_deref()),
            _ => None,
        };
        match addr {
            Some(a) if caps::ADDRESSES.room(link.addressing.len()) => link.addressing.push(a),
            Some(_) => ctx.warn("datasource", object, caps::ADDRESSES.cut()),
            None => ctx.warn(
                "datasource",
                &format!("{object}.{field}"),
                format!("no usable ip_address and {mask_key}; skipped"),
            ),
        }
    }
    Some(link)
}

/// Reads DigitalOcean's `v1.json` at `ep`.
pub fn fetch(ep: Endpoint) -> Result<Context, DatasourceError> {
    let body = fields::document(&ep, PATH)?;
    let object = ep.base.join(PATH).to_string();
    read(&body, &object, ep.source, ep.state, ep.host_nics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Addressing, SourceKind};
    use crate::providers::netconfig::testutil::{source, TempState};
    use serde_json::json;

    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/platforms/digitalocean/metadata/v1.json"
        ))
        .unwrap()
    }

    fn nics() -> Vec<HostNic> {
        vec![
            HostNic {
                name: "eth0".into(),
                mac: "04:01:57:d1:9e:01".into(),
            },
            HostNic {
                name: "eth1".into(),
                mac: "04:01:57:d1:9e:02".into(),
            },
        ]
    }

    #[test]
    fn the_fixture() {
        let st = TempState::new("do");
        let ctx = read(
            &fixture(),
            "v1.json",
            source(SourceKind::MetadataService),
            &st.0,
            nics(),
        )
        .unwrap();
        assert_eq!(ctx.instance_id.as_deref(), Some("22532410"));
        assert_eq!(ctx.hostname.as_deref(), Some("utl-96268"));
        assert_eq!(ctx.ssh_keys.len(), 1);
        assert!(ctx.errors.is_empty(), "{:?}", ctx.errors);
        let ud = ctx.user_data.as_ref().unwrap();
        assert_eq!(std::fs::read(&ud.path).unwrap(), b"userdata goes here");
        assert!(ctx.vendor_data.is_some());
        let public = &ctx.network.links[0];
        assert_eq!(public.name.as_deref(), Some("eth0"));
        assert_eq!(
            public.addressing,
            vec![
                Addressing::Static {
                    address: "192.0.0.20".parse().unwrap(),
                    prefix: 24,
                    gateway: Some("104.236.0.1".parse().unwrap()),
                },
                Addressing::Static {
                    address: "2604:a880:800::1000:0:0:0".parse().unwrap(),
                    prefix: 64,
                    gateway: Some("2604:a880:800::1".parse().unwrap()),
                },
                Addressing::Static {
                    address: "10.0.0.5".parse().unwrap(),
                    prefix: 16,
                    gateway: None,
                },
            ]
        );
        let private = &ctx.network.links[1];
        assert_eq!(private.name.as_deref(), Some("eth1"));
        assert_eq!(
            private.addressing,
            vec![Addressing::Static {
                address: "10.132.6.205".parse().unwrap(),
                prefix: 16,
                gateway: None,
            }],
            "a private NIC gets no gateway"
        );
        assert_eq!(ctx.network.dns.nameservers.len(), 3);
        assert!(ctx.fallbacks.is_empty());
    }

    #[test]
    fn faulty_entries_are_capped_too() {
        let st = TempState::new("do");
        let entries: Vec<Value> = (0..5000).map(|_| json!({"type": "public"})).collect();
        let doc = json!({"droplet_id": 1, "hostname": "a", "interfaces": {"public": entries}});
        let ctx = read(
            doc.to_string().as_bytes(),
            "v1.json",
            source(SourceKind::MetadataService),
            &st.0,
            nics(),
        )
        .unwrap();
        assert_eq!(
            ctx.warnings.len(),
            caps::LINKS.max + 1,
            "one per entry up to the cap, then the cut"
        );
    }

    #[test]
    fn shapes() {
        let st = TempState::new("do");
        let run = |doc: Value| {
            read(
                doc.to_string().as_bytes(),
                "v1.json",
                source(SourceKind::MetadataService),
                &st.0,
                nics(),
            )
        };
        // (case, document, instance id, keys, warnings)
        let cases: Vec<(&str, Value, Option<&str>, usize, usize)> = vec![
            (
                "numeric id, keys as \"\"",
                json!({"droplet_id": 7, "hostname": "a", "public_keys": ""}),
                Some("7"),
                0,
                0,
            ),
            (
                "keys as a string",
                json!({"droplet_id": "7", "hostname": "a", "public_keys": "ssh-rsa A\nssh-rsa B"}),
                Some("7"),
                2,
                0,
            ),
            ("no id", json!({"hostname": "a"}), None, 0, 1),
            (
                "nic without mac",
                json!({"droplet_id": 1, "hostname": "a", "interfaces": {"public": [{"ipv4": {}}]}}),
                Some("1"),
                0,
                1,
            ),
            (
                "bad netmask",
                json!({"droplet_id": 1, "hostname": "a", "interfaces": {"public": [{"mac": "04:01:57:d1:9e:01", "ipv4": {"ip_address": "1.2.3.4", "netmask": "255.0.255.0"}}]}}),
                Some("1"),
                0,
                1,
            ),
        ];
        for (case, doc, id, keys, warnings) in cases {
            let ctx = run(doc).unwrap();
            assert_eq!(ctx.instance_id.as_deref(), id, "case {case}");
            assert_eq!(ctx.ssh_keys.len(), keys, "case {case}");
            assert_eq!(
                ctx.warnings.len(),
                warnings,
                "case {case}: {:?}",
                ctx.warnings
            );
        }
        for (case, bad) in [
            ("array", &b"[]"[..]),
            ("truncated", &b"{\"droplet_id\": 1"[..]),
            ("id with a space", &b"{\"droplet_id\": \"a b\"}"[..]),
            ("not UTF-8", &b"{\"hostname\": \"\xff\"}"[..]),
        ] {
            let e = read(
                bad,
                "v1.json",
                source(SourceKind::MetadataService),
                &st.0,
                nics(),
            );
            assert!(e.is_err(), "case {case}");
        }
    }
}
