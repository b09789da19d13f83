//! Oracle Cloud Infrastructure: the instance metadata service (IMDS) v2 at 169.254.169.254,
//! `opc/v2/instance/` and `opc/v2/vnics/`, each GET with `Authorization: Bearer Oracle`.
//! [`read`] turns the two documents into a context (pure: bytes in, context out; secrets go
//! to the state directory); [`fetch`] GETs them.
//!
//! v1 (`opc/v1/…`, no header) is read only when v2 answers 401, 403 or 404 (an IMDS that
//! has no v2, or refuses its header), and that is recorded in `fallbacks` as `oracle-imds-v1`
//! and as a warning: cloud-init (`read_opc_metadata`) falls back to v1 silently, and STYLE
//! asks that a lowered protection never be silent. A v2 that times out or answers 5xx is an
//! error (the service is unwell, v1 is the same service). Afterburn reads v2 only.
//!
//! Reads (docs.oracle.com/iaas/Content/Compute/Tasks/gettingmetadata.htm, cloud-init's
//! `DataSourceOracle`): `id` as the instance id, `hostname`, `canonicalRegionName` and
//! `availabilityDomain` (extra), `metadata.ssh_authorized_keys` (one string, keys on lines),
//! `metadata.user_data` (base64: decoded, a 0600 secret). Network: the first VNIC of
//! `vnics` (the primary) by `macAddr` with DHCPv4; secondary VNICs are left alone, as
//! cloud-init does unless told (`configure_secondary_nics`), and counted in
//! `extra.oracle_secondary_vnics`. Without `vnics` every NIC gets DHCPv4 (the fallback
//! rule). iSCSI-root bare-metal shapes are out of scope. Caps: [`super::METADATA_CAP`] per
//! document.
//!
//! Panic contract: nothing here panics on any input; an `instance` document that is not a
//! JSON object, or a bad instance id, is an error; a broken `vnics` is an error in the
//! context and the rest is kept.
#![deny(clippy::arithmetic_side_effects)]

use super::fields::{self, nonempty, text};
use super::service::Endpoint;
use super::{add_ssh_keys, parse_json, DatasourceError, METADATA_CAP};
use crate::context::{
    normalize_mac, Addressing, Context, Fallback, HostNic, Link, LinkKind, Platform, Source,
};
use crate::http::HttpError;
use crate::state::StateDir;
use serde_json::Value;

/// The header every v2 request carries.
pub const AUTH: (&str, &str) = ("Authorization", "Bearer Oracle");

/// The context of the `instance` document and, if read, the `vnics` document (each with the
/// URL it came from, named in errors).
pub fn read(
    instance: (&[u8], &str),
    vnics: Option<(&[u8], &str)>,
    source: Source,
    state: &StateDir,
    host_nics: Vec<HostNic>,
) -> Result<Context, DatasourceError> {
    let (body, object) = instance;
    let doc = parse_json(body, object)?;
    if !doc.is_object() {
        return Err(DatasourceError::new(object, "not a JSON object"));
    }
    let mut ctx = Context::new(Some(Platform::Oracle), source);
    ctx.host_nics = host_nics;
    fields::instance_id(&mut ctx, text(doc.get("id")), "id")?;
    fields::hostname(&mut ctx, nonempty(doc.get("hostname")), "hostname");
    for (field, extra) in [
        ("canonicalRegionName", "region"),
        ("availabilityDomain", "availability_zone"),
    ] {
        if let Some(v) = nonempty(doc.get(field)) {
            ctx.extra.insert(extra.into(), Value::String(v));
        }
    }
    let md = doc.get("metadata");
    if let Some(keys) = nonempty(md.and_then(|m| m.get("ssh_authorized_keys"))) {
        add_ssh_keys(&mut ctx, &keys, "metadata.ssh_authorized_keys");
    }
    if let Some(data) = nonempty(md.and_then(|m| m.get("user_data"))) {
        match crate::base64::strict(&data) {
            Some(bytes) => ctx.user_data = fields::secret(&mut ctx, state, "user-data", &bytes),
            None => ctx.error("datasource", "metadata.user_data", "not valid base64"),
        }
    }
    if let Some((body, object)) = vnics {
        match parse_json(body, object) {
            Ok(list) => primary_vnic(&mut ctx, &list, object),
            Err(e) => ctx.error("datasource", &e.object, e.message),
        }
    }
    ctx.match_nics(false);
    Ok(ctx)
}

fn primary_vnic(ctx: &mut Context, list: &Value, object: &str) {
    let Some(list) = list.as_array() else {
        ctx.error("datasource", object, "not a JSON list");
        return;
    };
    let Some(first) = list.first() else {
        return;
    };
    match text(first.get("macAddr")).and_then(|m| normalize_mac(&m)) {
        Some(mac) => {
            let mut link = Link::new("primary", LinkKind::Physical);
            link.mac = Some(mac);
            link.addressing.push(Addressing::Dhcp4);
            ctx.network.links.push(link);
        }
        None => ctx.warn("datasource", "vnics[0].macAddr", "missing or not a MAC"),
    }
    let secondary = list.len().saturating_sub(1);
    if secondary > 0 {
        ctx.extra
            .insert("oracle_secondary_vnics".into(), Value::from(secondary));
    }
}

/// Reads Oracle's IMDS at `ep`: v2 with its header, v1 only where v2 is refused or absent
/// (recorded).
pub fn fetch(mut ep: Endpoint) -> Result<Context, DatasourceError> {
    let cap = usize::try_from(METADATA_CAP).unwrap_or(usize::MAX);
    ep.client.headers = vec![(AUTH.0.into(), AUTH.1.into())];
    let v2 = ep.base.join("opc/v2/instance/");
    let (version, instance) = match ep.client.request("GET", &v2, &[], b"", cap) {
        Ok(r) if (200..300).contains(&r.status) => ("v2", r.body),
        Ok(r) if matches!(r.status, 401 | 403 | 404) => {
            let why = format!(
                "{v2} answered HTTP {}: reading IMDS v1 without the header",
                r.status
            );
            ep.client.headers.clear();
            let v1 = ep.base.join("opc/v1/instance/");
            let body = ep
                .client
                .get(&v1, cap)
                .map_err(|e| DatasourceError::new(v1.to_string(), e.to_string()))?
                .ok_or_else(|| {
                    DatasourceError::new(v1.to_string(), "not found (HTTP 404) in v2 or v1")
                })?;
            return finish(ep, ("v1", body), Some(why));
        }
        Ok(r) => {
            return Err(DatasourceError::new(
                v2.to_string(),
                HttpError::Status(r.status).to_string(),
            ))
        }
        Err(e) => return Err(DatasourceError::new(v2.to_string(), e.to_string())),
    };
    finish(ep, (version, instance), None)
}

fn finish(
    ep: Endpoint,
    got: (&str, Vec<u8>),
    fallback: Option<String>,
) -> Result<Context, DatasourceError> {
    let (version, instance) = got;
    let instance_url = ep
        .base
        .join(&format!("opc/{version}/instance/"))
        .to_string();
    let vnics_url = ep.base.join(&format!("opc/{version}/vnics/"));
    let (vnics, vnics_error) = match fields::get_url(&ep, &vnics_url, METADATA_CAP) {
        Ok(v) => (v, None),
        Err(e) => (None, Some(e)),
    };
    let vnics_name = vnics_url.to_string();
    let mut ctx = read(
        (&instance, &instance_url),
        vnics.as_deref().map(|b| (b, vnics_name.as_str())),
        ep.source,
        ep.state,
        ep.host_nics,
    )?;
    if let Some(e) = vnics_error {
        ctx.error("datasource", &e.object, e.message);
    }
    if let Some(why) = fallback {
        ctx.fallbacks.push(Fallback {
            kind: "oracle-imds-v1".into(),
            reason: why.clone(),
        });
        ctx.warn("datasource", &instance_url, why);
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
        "/tests/fixtures/platforms/oracle/opc/v2/"
    );

    #[test]
    fn the_fixture() {
        let st = TempState::new("oracle");
        let instance = std::fs::read(format!("{DIR}instance.json")).unwrap();
        let vnics = std::fs::read(format!("{DIR}vnics.json")).unwrap();
        let nics = vec![HostNic {
            name: "ens3".into(),
            mac: "02:00:17:05:d1:db".into(),
        }];
        let ctx = read(
            (&instance, "i"),
            Some((&vnics, "v")),
            source(SourceKind::MetadataService),
            &st.0,
            nics,
        )
        .unwrap();
        assert!(ctx
            .instance_id
            .as_deref()
            .unwrap()
            .starts_with("ocid1.instance.oc1.phx."));
        assert_eq!(ctx.hostname.as_deref(), Some("instance-20200320-1400"));
        assert_eq!(
            ctx.ssh_keys,
            ["ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ truncated"]
        );
        let ud = ctx.user_data.as_ref().unwrap();
        assert_eq!(
            std::fs::read(&ud.path).unwrap(),
            b"#!/bin/sh\ntouch /tmp/foo"
        );
        assert_eq!(ctx.network.links.len(), 1);
        assert_eq!(ctx.network.links[0].name.as_deref(), Some("ens3"));
        assert_eq!(ctx.extra["oracle_secondary_vnics"], 1);
        assert!(ctx.errors.is_empty() && ctx.warnings.is_empty());
    }

    #[test]
    fn shapes() {
        let st = TempState::new("oracle");
        // (case, instance, vnics, errors, links)
        let cases: &[(&str, &str, Option<&str>, usize, usize)] = &[
            (
                "minimal",
                r#"{"id": "ocid1.x", "hostname": "h"}"#,
                None,
                0,
                0,
            ),
            (
                "bad base64",
                r#"{"id": "ocid1.x", "hostname": "h", "metadata": {"user_data": "!!"}}"#,
                None,
                1,
                0,
            ),
            (
                "vnics not JSON",
                r#"{"id": "ocid1.x", "hostname": "h"}"#,
                Some("{"),
                1,
                0,
            ),
            (
                "vnics object",
                r#"{"id": "ocid1.x", "hostname": "h"}"#,
                Some("{}"),
                1,
                0,
            ),
            (
                "vnics empty",
                r#"{"id": "ocid1.x", "hostname": "h"}"#,
                Some("[]"),
                0,
                0,
            ),
            (
                "vnic",
                r#"{"id": "ocid1.x", "hostname": "h"}"#,
                Some(r#"[{"macAddr": "02:00:17:05:D1:DB"}]"#),
                0,
                1,
            ),
        ];
        for (case, i, v, errors, links) in cases {
            let ctx = read(
                (i.as_bytes(), "i"),
                v.map(|v| (v.as_bytes(), "v")),
                source(SourceKind::MetadataService),
                &st.0,
                Vec::new(),
            )
            .unwrap();
            assert_eq!(ctx.errors.len(), *errors, "case {case}: {:?}", ctx.errors);
            assert_eq!(ctx.network.links.len(), *links, "case {case}");
        }
        for bad in ["[]", "{\"id\": \"a b\"}", ""] {
            let r = read(
                (bad.as_bytes(), "i"),
                None,
                source(SourceKind::MetadataService),
                &st.0,
                Vec::new(),
            );
            assert!(r.is_err(), "case {bad:?}");
        }
    }
}
