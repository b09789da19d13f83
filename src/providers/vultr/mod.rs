//! Vultr: the one document `v1.json` of the metadata service at 169.254.169.254, turned into a
//! context by [`read`] (pure: bytes in, context out; secrets go to the state directory);
//! [`fetch`] GETs it. The network stage reaches the service over DHCPv4, as cloud-init's
//! ephemeral DHCP on a candidate NIC does.
//!
//! Reads (www.vultr.com/metadata/, cloud-init's `DataSourceVultr` and `helpers/vultr.py`):
//! - `instance-v2-id`, else `instance-id`, as the instance id; `hostname`, else
//!   `local-hostname`; `region.regioncode`;
//! - `public-keys` (a list);
//! - `user-data` and `vendor-data` as text (0600 secrets; `""` or `[]` mean none). Vendor
//!   data carries a root password hash: a secret like user data;
//! - `interfaces[]` by `mac`: the public one (`network-type: public`, else the first) gets
//!   DHCPv4 and router advertisements (cloud-init's `dhcp` + `accept-ra`), plus static
//!   `ipv4.additional[]` (`address`, `netmask`) and `ipv6.additional[]` (`address` or
//!   `network`, `prefix`); a private one gets its static `ipv4.address`/`netmask`, no
//!   gateway.
//!
//! Not read: `bgp`, `startup-script` (Vultr's own boot script, run by its own agent), the
//! `108.61.10.10` resolver cloud-init adds (DHCP gives the resolvers). Caps:
//! [`super::METADATA_CAP`], [`caps::LINKS`], [`caps::ADDRESSES`] per link.
//!
//! Panic contract: nothing here panics on any input; a document that is not a JSON object
//! is the one error besides a bad instance id.
#![deny(clippy::arithmetic_side_effects)]

use super::fields::{self, nonempty, text};
use super::service::Endpoint;
use super::{parse_json, DatasourceError};
use crate::caps;
use crate::context::{
    normalize_mac, Addressing, Context, HostNic, Link, LinkKind, Platform, Source,
};
use crate::state::StateDir;
use serde_json::Value;

/// The document's path below the service's base URL.
pub const PATH: &str = "v1.json";

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
    let mut ctx = Context::new(Some(Platform::Vultr), source);
    ctx.host_nics = host_nics;
    let id = nonempty(doc.get("instance-v2-id")).or_else(|| nonempty(doc.get("instance-id")));
    fields::instance_id(&mut ctx, id, "instance-v2-id")?;
    fields::hostname(
        &mut ctx,
        nonempty(doc.get("hostname")).or_else(|| nonempty(doc.get("local-hostname"))),
        "hostname",
    );
    if let Some(region) = nonempty(doc.get("region").and_then(|r| r.get("regioncode"))) {
        ctx.extra.insert("region".into(), Value::String(region));
    }
    fields::keys(&mut ctx, doc.get("public-keys"), "public-keys");
    for (field, name) in [("user-data", "user-data"), ("vendor-data", "vendor-data")] {
        let data = match doc.get(field) {
            Some(Value::String(s)) => s.clone().into_bytes(),
            None | Some(Value::Null) => continue,
            Some(Value::Array(a)) if a.is_empty() => continue,
            Some(_) => {
                ctx.warn("datasource", field, "not text; ignored");
                continue;
            }
        };
        let stored = fields::secret(&mut ctx, state, name, &data);
        if field == "user-data" {
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
    let Some(list) = doc.get("interfaces") else {
        return;
    };
    let Some(list) = list.as_array() else {
        ctx.warn("datasource", "interfaces", "not a list");
        return;
    };
    let public_at = list
        .iter()
        .position(|n| text(n.get("network-type")).as_deref() == Some("public"))
        .unwrap_or(0);
    for (i, nic) in list.iter().enumerate() {
        let object = format!("interfaces[{i}]");
        // Entries are counted, not links, so entries skipped for their faults are bounded.
        if !caps::LINKS.room(i) {
            ctx.warn("datasource", "interfaces", caps::LINKS.cut());
            return;
        }
        let Some(mac) = text(nic.get("mac")).and_then(|m| normalize_mac(&m)) else {
            ctx.warn("datasource", &object, "no usable mac; skipped");
            continue;
        };
        let mut link = Link::new(format!("nic{i}"), LinkKind::Physical);
        link.mac = Some(mac);
        let mut addrs = Vec::new();
        if i == public_at {
            link.addressing.push(Addressing::Dhcp4);
            link.addressing
                .push(Addressing::Slaac { dhcp6_info: false });
            for (family, mask_key) in [("ipv4", "netmask"), ("ipv6", "prefix")] {
                let extra = nic.get(family).and_then(|f| f.get("additional"));
                for (j, a) in extra
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if !caps::ADDRESSES.room(j) {
                        ctx.warn(
                            "datasource",
                            &format!("{object}.{family}.additional"),
                            caps::ADDRESSES.cut(),
                        );
                        break;
                    }
                    let address = nonempty(a.get("address")).or_else(|| nonempty(a.get("network")));
                    let mask = nonempty(a.get(mask_key));
                    addrs.push((format!("{object}.{family}.additional[{j}]"), address, mask));
                }
            }
        } else {
            let v4 = nic.get("ipv4");
            let address = nonempty(v4.and_then(|v| v.get("address")));
            if address.is_some() {
                let mask = nonempty(v4.and_then(|v| v.get("netmask")));
                addrs.push((format!("{object}.ipv4"), address, mask));
            }
        }
        for (field, address, mask) in addrs {
            match (address, mask) {
                (Some(a), Some(m)) => match fields::static_addr(&a, &m, None) {
                    Some(s) if caps::ADDRESSES.room(link.addressing.len()) => {
                        link.addressing.push(s)
                    }
                    Some(_) => {
                        ctx.warn("datasource", &field, caps::ADDRESSES.cut());
                        break;
                    }
                    None => ctx.warn("datasource", &field, "not an address and mask; skipped"),
                },
                _ => ctx.warn("datasource", &field, "address or mask missing; skipped"),
            }
        }
        ctx.network.links.push(link);
    }
}

/// Reads Vultr's `v1.json` at `ep`.
pub fn fetch(ep: Endpoint) -> Result<Context, DatasourceError> {
    let body = fields::document(&ep, PATH)?;
    let object = ep.base.join(PATH).to_string();
    read(&body, &object, ep.source, ep.state, ep.host_nics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::SourceKind;
    use crate::providers::netconfig::testutil::{source, TempState};
    use serde_json::json;

    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/platforms/vultr/v1.json"
        ))
        .unwrap()
    }

    fn nics() -> Vec<HostNic> {
        vec![
            HostNic {
                name: "enp1s0".into(),
                mac: "56:00:03:1b:4e:ca".into(),
            },
            HostNic {
                name: "enp6s0".into(),
                mac: "5a:00:03:1b:4e:ca".into(),
            },
        ]
    }

    #[test]
    fn the_fixture() {
        let st = TempState::new("vultr");
        let ctx = read(
            &fixture(),
            "v1.json",
            source(SourceKind::MetadataService),
            &st.0,
            nics(),
        )
        .unwrap();
        assert_eq!(
            ctx.instance_id.as_deref(),
            Some("29bea708-2e6e-480a-90ad-0e6b5d5ad62f")
        );
        assert_eq!(ctx.hostname.as_deref(), Some("cloudinit_2"));
        assert_eq!(ctx.ssh_keys.len(), 1);
        assert!(ctx.user_data.is_none(), "user-data [] is none");
        let vd = ctx.vendor_data.as_ref().unwrap();
        assert!(std::fs::read_to_string(&vd.path)
            .unwrap()
            .starts_with("#cloud-config"));
        assert!(
            ctx.errors.is_empty() && ctx.warnings.is_empty(),
            "{:?} {:?}",
            ctx.errors,
            ctx.warnings
        );
        let public = &ctx.network.links[0];
        assert_eq!(public.name.as_deref(), Some("enp1s0"));
        assert_eq!(public.addressing.len(), 3, "{:?}", public.addressing);
        assert_eq!(public.addressing[0], Addressing::Dhcp4);
        assert_eq!(
            public.addressing[2],
            Addressing::Static {
                address: "2002:19f0:5:28a7::".parse().unwrap(),
                prefix: 64,
                gateway: None
            }
        );
        let private = &ctx.network.links[1];
        assert_eq!(private.name.as_deref(), Some("enp6s0"));
        assert_eq!(
            private.addressing,
            vec![Addressing::Static {
                address: "10.1.112.3".parse().unwrap(),
                prefix: 20,
                gateway: None
            }]
        );
    }

    #[test]
    fn shapes() {
        let st = TempState::new("vultr");
        let cases: Vec<(&str, Value, Option<&str>, bool, usize)> = vec![
            (
                "v1 id only",
                json!({"instance-id": "abc", "hostname": "h"}),
                Some("abc"),
                false,
                0,
            ),
            (
                "user data text",
                json!({"instance-id": "abc", "hostname": "h", "user-data": "#!/bin/sh\n"}),
                Some("abc"),
                true,
                0,
            ),
            (
                "user data empty",
                json!({"instance-id": "abc", "hostname": "h", "user-data": ""}),
                Some("abc"),
                false,
                0,
            ),
            (
                "user data object",
                json!({"instance-id": "abc", "hostname": "h", "user-data": {}}),
                Some("abc"),
                false,
                1,
            ),
            (
                "no hostname",
                json!({"instance-id": "abc"}),
                Some("abc"),
                false,
                1,
            ),
            (
                "interfaces not a list",
                json!({"instance-id": "abc", "hostname": "h", "interfaces": {}}),
                Some("abc"),
                false,
                1,
            ),
        ];
        for (case, doc, id, ud, warnings) in cases {
            let ctx = read(
                doc.to_string().as_bytes(),
                "v1.json",
                source(SourceKind::MetadataService),
                &st.0,
                nics(),
            )
            .unwrap();
            assert_eq!(ctx.instance_id.as_deref(), id, "case {case}");
            assert_eq!(ctx.user_data.is_some(), ud, "case {case}");
            assert_eq!(
                ctx.warnings.len(),
                warnings,
                "case {case}: {:?}",
                ctx.warnings
            );
        }
        for bad in [&b"\"x\""[..], b"{", b"{\"instance-id\": \"a\nb\"}"] {
            assert!(
                read(
                    bad,
                    "v1.json",
                    source(SourceKind::MetadataService),
                    &st.0,
                    nics()
                )
                .is_err(),
                "case {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
