//! Hetzner Cloud: the YAML document `hetzner/v1/metadata` of the metadata service at
//! 169.254.169.254, user data at `hetzner/v1/userdata`, private networks at
//! `hetzner/v1/metadata/private-networks`. [`read`] turns them into a context (pure: bytes
//! in, context out; secrets go to the state directory); [`fetch`] GETs them. The network
//! stage reaches the service over DHCPv4, as cloud-init's ephemeral DHCP does.
//!
//! Reads (docs.hetzner.cloud/#server-metadata, cloud-init's `DataSourceHetzner`, Afterburn's
//! `providers/hetzner`): `instance-id` (an integer in YAML, read as its text), `hostname`,
//! `public-keys[]`, `region` and `availability-zone` (extra), and `network-config`, a
//! cloud-init network config v1 read by [`super::netconfig`]: IPv4 by DHCP and **IPv6
//! static** from its `type: static` subnet (an address/64 and a gateway such as `fe80::1`),
//! which is rendered as such for the booted system (Hetzner sends no router advertisement
//! the guest could use instead). Private networks (a YAML list; `mac_address`, `ip`) become
//! links by MAC with DHCPv4, as Hetzner serves them (cloud-init leaves them to `hc-utils`).
//! User data is a 0600 secret (404 or empty: none).
//!
//! Caps: [`super::METADATA_CAP`] per document, [`super::USERDATA_CAP`], [`caps::LINKS`] and
//! the caps of network config v1; the YAML loader's depth and alias bounds.
//!
//! Panic contract: nothing here panics on any input; a metadata document that is not YAML
//! or not a mapping, or a bad instance id, is an error; a broken `network-config` or
//! private-networks list is an error in the context and the rest is kept.
#![deny(clippy::arithmetic_side_effects)]

use super::fields;
use super::service::Endpoint;
use super::{add_ssh_keys, netconfig, utf8, DatasourceError, USERDATA_CAP};
use crate::caps;
use crate::context::{
    normalize_mac, Addressing, Context, HostNic, Link, LinkKind, Platform, Source,
};
use crate::state::StateDir;
use crate::yaml::{self, Node};
use serde_json::Value;

/// Paths below the service's base URL.
pub const METADATA: &str = "hetzner/v1/metadata";
pub const USERDATA: &str = "hetzner/v1/userdata";
pub const PRIVATE_NETWORKS: &str = "hetzner/v1/metadata/private-networks";

/// A scalar's text, trimmed; `None` when absent, null, empty or not a scalar.
fn scalar(n: Option<&Node>) -> Option<String> {
    n.and_then(Node::as_text)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The context of the metadata document (with the URL it came from), the user data and the
/// private-networks document if read.
pub fn read(
    metadata: (&[u8], &str),
    userdata: Option<&[u8]>,
    private: Option<(&[u8], &str)>,
    source: Source,
    state: &StateDir,
    host_nics: Vec<HostNic>,
) -> Result<Context, DatasourceError> {
    let (body, object) = metadata;
    let doc = yaml::load(utf8(body, object)?).map_err(|e| DatasourceError::new(object, e))?;
    if !matches!(doc, Node::Map(_)) {
        return Err(DatasourceError::new(object, "not a YAML mapping"));
    }
    let mut ctx = Context::new(Some(Platform::Hetzner), source);
    ctx.host_nics = host_nics;
    fields::instance_id(&mut ctx, scalar(doc.get("instance-id")), "instance-id")?;
    fields::hostname(&mut ctx, scalar(doc.get("hostname")), "hostname");
    for (key, extra) in [
        ("region", "region"),
        ("availability-zone", "availability_zone"),
    ] {
        if let Some(v) = scalar(doc.get(key)) {
            ctx.extra.insert(extra.into(), Value::String(v));
        }
    }
    match doc.get("public-keys") {
        None => {}
        Some(Node::Seq(items)) => {
            let keys: Vec<&str> = items.iter().filter_map(Node::as_text).collect();
            add_ssh_keys(&mut ctx, &keys.join("\n"), "public-keys");
        }
        Some(Node::Scalar { text, .. }) => add_ssh_keys(&mut ctx, text, "public-keys"),
        Some(_) => ctx.warn(
            "datasource",
            "public-keys",
            "neither a list nor a string; no keys read",
        ),
    }
    if let Some(net) = doc.get("network-config") {
        match netconfig::parse_node(net) {
            Ok(parsed) => {
                for w in parsed.warnings {
                    ctx.warn("datasource", "network-config", w);
                }
                ctx.network = parsed.network;
            }
            Err(e) => ctx.error("datasource", "network-config", e),
        }
    }
    if let Some((body, object)) = private {
        private_networks(&mut ctx, body, object);
    }
    if let Some(data) = userdata {
        ctx.user_data = fields::secret(&mut ctx, state, "user-data", data);
    }
    ctx.match_nics(false);
    Ok(ctx)
}

/// Private networks: a YAML list of `{mac_address, ip, …}`, each a link with DHCPv4.
fn private_networks(ctx: &mut Context, body: &[u8], object: &str) {
    let list = match utf8(body, object)
        .map_err(|e| e.message)
        .and_then(yaml::load)
    {
        Ok(Node::Null) => return,
        Ok(Node::Seq(items)) => items,
        Ok(_) => {
            ctx.error("datasource", object, "not a YAML list");
            return;
        }
        Err(e) => {
            ctx.error("datasource", object, e);
            return;
        }
    };
    for (i, net) in list.iter().enumerate() {
        // Entries are counted, not links, so entries skipped for their faults are bounded.
        if !caps::LINKS.room(i) {
            ctx.warn("datasource", object, caps::LINKS.cut());
            return;
        }
        let Some(mac) = scalar(net.get("mac_address")).and_then(|m| normalize_mac(&m)) else {
            ctx.warn(
                "datasource",
                &format!("{object}[{i}]"),
                "no usable mac_address; skipped",
            );
            continue;
        };
        if ctx
            .network
            .links
            .iter()
            .any(|l| l.mac.as_deref() == Some(mac.as_str()))
        {
            continue;
        }
        if !caps::LINKS.room(ctx.network.links.len()) {
            ctx.warn("datasource", object, caps::LINKS.cut());
            return;
        }
        let mut link = Link::new(format!("private{i}"), LinkKind::Physical);
        link.mac = Some(mac);
        link.addressing.push(Addressing::Dhcp4);
        ctx.network.links.push(link);
    }
}

/// Reads Hetzner's metadata, private networks and user data at `ep`.
pub fn fetch(ep: Endpoint) -> Result<Context, DatasourceError> {
    let metadata = fields::document(&ep, METADATA)?;
    let metadata_url = ep.base.join(METADATA).to_string();
    let mut problems = Vec::new();
    let mut optional = |path: &str, cap: u64| match fields::get(&ep, path, cap) {
        Ok(v) => v,
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let private = optional(PRIVATE_NETWORKS, super::METADATA_CAP);
    let userdata = optional(USERDATA, USERDATA_CAP);
    let private_url = ep.base.join(PRIVATE_NETWORKS).to_string();
    let mut ctx = read(
        (&metadata, &metadata_url),
        userdata.as_deref(),
        private.as_deref().map(|b| (b, private_url.as_str())),
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

    const DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/platforms/hetzner/hetzner/v1/"
    );

    #[test]
    fn the_fixture() {
        let st = TempState::new("hetzner");
        let md = std::fs::read(format!("{DIR}metadata.yaml")).unwrap();
        let ud = std::fs::read(format!("{DIR}userdata")).unwrap();
        let pn = std::fs::read(format!("{DIR}metadata/private-networks.yaml")).unwrap();
        let nics = vec![
            HostNic {
                name: "eth0".into(),
                mac: "00:00:00:00:00:00".into(),
            },
            HostNic {
                name: "enp7s0".into(),
                mac: "86:00:00:98:40:6e".into(),
            },
        ];
        let ctx = read(
            (&md, "md"),
            Some(&ud),
            Some((&pn, "pn")),
            source(SourceKind::MetadataService),
            &st.0,
            nics,
        )
        .unwrap();
        assert_eq!(ctx.instance_id.as_deref(), Some("42"));
        assert_eq!(ctx.hostname.as_deref(), Some("my-server"));
        assert_eq!(ctx.ssh_keys.len(), 1);
        assert!(ctx.user_data.is_some());
        assert!(ctx.errors.is_empty(), "{:?}", ctx.errors);
        let eth0 = &ctx.network.links[0];
        assert_eq!(eth0.name.as_deref(), Some("eth0"));
        assert_eq!(eth0.addressing[0], Addressing::Dhcp4);
        assert_eq!(
            eth0.addressing[1],
            Addressing::Static {
                address: "a00:a0:a000:a000::1".parse().unwrap(),
                prefix: 64,
                gateway: Some("aa11::1".parse().unwrap()),
            },
            "IPv6 static, not DHCP"
        );
        let names: Vec<Option<&str>> = ctx
            .network
            .links
            .iter()
            .map(|l| l.name.as_deref())
            .collect();
        assert_eq!(
            names,
            [Some("eth0"), Some("enp7s0"), None],
            "private networks by MAC"
        );
    }

    #[test]
    fn shapes() {
        let st = TempState::new("hetzner");
        // (case, metadata, private networks, errors, links)
        let cases: &[(&str, &str, Option<&str>, usize, usize)] = &[
            ("minimal", "instance-id: 1\nhostname: h\n", None, 0, 0),
            (
                "keys as a string",
                "instance-id: 1\nhostname: h\npublic-keys: ssh-rsa A\n",
                None,
                0,
                0,
            ),
            (
                "bad network-config",
                "instance-id: 1\nhostname: h\nnetwork-config: {version: 9}\n",
                None,
                1,
                0,
            ),
            (
                "private not a list",
                "instance-id: 1\nhostname: h\n",
                Some("a: b"),
                1,
                0,
            ),
            (
                "private not YAML",
                "instance-id: 1\nhostname: h\n",
                Some("[a"),
                1,
                0,
            ),
            (
                "private empty",
                "instance-id: 1\nhostname: h\n",
                Some(""),
                0,
                0,
            ),
            (
                "private",
                "instance-id: 1\nhostname: h\n",
                Some("- mac_address: 86:00:00:98:40:6e\n"),
                0,
                1,
            ),
        ];
        for (case, md, pn, errors, links) in cases {
            let ctx = read(
                (md.as_bytes(), "md"),
                None,
                pn.map(|p| (p.as_bytes(), "pn")),
                source(SourceKind::MetadataService),
                &st.0,
                Vec::new(),
            )
            .unwrap();
            assert_eq!(ctx.errors.len(), *errors, "case {case}: {:?}", ctx.errors);
            assert_eq!(ctx.network.links.len(), *links, "case {case}");
        }
        for bad in ["- a\n", "a: [", "instance-id: a b\n", "x: \"\0\""] {
            let r = read(
                (bad.as_bytes(), "md"),
                None,
                None,
                source(SourceKind::MetadataService),
                &st.0,
                Vec::new(),
            );
            assert!(r.is_err(), "case {bad:?}");
        }
    }
}
