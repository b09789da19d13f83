//! What the metadata-service providers of issue 20 share: GETs of a required or optional
//! document through a service [`Endpoint`], JSON scalars read as text, the instance-id rule,
//! a host name or the warning that it is missing, static addresses from `address` +
//! `netmask`/`prefix`, keys given as a list or a string, and secrets stored from a field.
//!
//! Owns no format: each provider module (`digitalocean/`, `vultr/` …) says which field is
//! what. Never panics (no indexing, no unchecked arithmetic).
#![deny(clippy::arithmetic_side_effects)]

use super::service::Endpoint;
use super::{add_ssh_keys, set_hostname, store_secret, DatasourceError};
use crate::context::{Addressing, Context, SecretFile};
use crate::http::Url;
use crate::state::StateDir;
use serde_json::Value;
use std::net::IpAddr;

/// Longest instance id kept (EC2's rule: a plain short value).
pub const ID_MAX: usize = 255;

/// GET `path` below the base: `Ok(None)` on 404, the body on 2xx; an error names the URL.
pub fn get(ep: &Endpoint, path: &str, cap: u64) -> Result<Option<Vec<u8>>, DatasourceError> {
    get_url(ep, &ep.base.join(path), cap)
}

/// GET `url` with the endpoint's client: `Ok(None)` on 404.
pub fn get_url(ep: &Endpoint, url: &Url, cap: u64) -> Result<Option<Vec<u8>>, DatasourceError> {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    ep.client
        .get(url, cap)
        .map_err(|e| DatasourceError::new(url.to_string(), e.to_string()))
}

/// A required document below the base: 404 is an error too.
pub fn document(ep: &Endpoint, path: &str) -> Result<Vec<u8>, DatasourceError> {
    let url = ep.base.join(path);
    get_url(ep, &url, super::METADATA_CAP)?
        .ok_or_else(|| DatasourceError::new(url.to_string(), "not found (HTTP 404)"))
}

/// A string, or a number or boolean as text (ids come as both).
pub fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A non-empty string field, trimmed.
pub fn nonempty(v: Option<&Value>) -> Option<String> {
    text(v)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Sets the instance id from `raw`: missing or empty is a warning (the context is still
/// usable), one that is not a plain short value (whitespace, control characters, over
/// [`ID_MAX`] bytes) is an error, since it names the state directory of the instance.
pub fn instance_id(
    ctx: &mut Context,
    raw: Option<String>,
    object: &str,
) -> Result<(), DatasourceError> {
    match raw.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
        None => ctx.warn("datasource", object, "instance id missing"),
        Some(id)
            if id.len() > ID_MAX || id.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            return Err(DatasourceError::new(
                object,
                "instance id is not a plain short value",
            ));
        }
        Some(id) => ctx.instance_id = Some(id),
    }
    Ok(())
}

/// Sets the host name from `raw` by [`set_hostname`]'s rules; missing is a warning naming
/// `object`.
pub fn hostname(ctx: &mut Context, raw: Option<String>, object: &str) {
    match raw {
        Some(name) => set_hostname(ctx, &name, object),
        None => ctx.warn("datasource", object, "missing"),
    }
}

/// A static address from an address and a netmask or prefix length (`255.255.255.0`,
/// `24`, `"64"`), with an optional gateway (`""` is none); `None` if either is not valid.
pub fn static_addr(address: &str, mask: &str, gateway: Option<&str>) -> Option<Addressing> {
    let (address, prefix) =
        super::netconfig::parse_cidr(&format!("{}/{}", address.trim(), mask.trim()))?;
    let gateway = gateway
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .and_then(|g| g.parse::<IpAddr>().ok())
        .filter(|g| g.is_ipv4() == address.is_ipv4());
    Some(Addressing::Static {
        address,
        prefix,
        gateway,
    })
}

/// Keys given as a list of strings, or as one string of lines (DigitalOcean sends `""`
/// when there are none); anything else is a warning.
pub fn keys(ctx: &mut Context, v: Option<&Value>, object: &str) {
    match v {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => add_ssh_keys(ctx, s, object),
        Some(Value::Array(items)) => {
            let lines: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            if lines.len() < items.len() {
                ctx.warn("datasource", object, "entries that are not strings skipped");
            }
            add_ssh_keys(ctx, &lines.join("\n"), object);
        }
        Some(_) => ctx.warn(
            "datasource",
            object,
            "neither a list nor a string; no keys read",
        ),
    }
}

/// Stores `data` as the secret `name` unless it is empty.
pub fn secret(ctx: &mut Context, state: &StateDir, name: &str, data: &[u8]) -> Option<SecretFile> {
    if data.is_empty() {
        return None;
    }
    store_secret(ctx, state, name, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    #[allow(clippy::type_complexity)]
    fn static_addresses() {
        let cases: &[(&str, &str, Option<&str>, Option<(&str, u8, Option<&str>)>)] = &[
            (
                "10.0.0.5",
                "255.255.0.0",
                Some("10.0.0.1"),
                Some(("10.0.0.5", 16, Some("10.0.0.1"))),
            ),
            ("10.0.0.5", "24", Some(""), Some(("10.0.0.5", 24, None))),
            (
                "2001:db8::1",
                "64",
                Some("fe80::1"),
                Some(("2001:db8::1", 64, Some("fe80::1"))),
            ),
            (
                "2001:db8::1",
                "64",
                Some("10.0.0.1"),
                Some(("2001:db8::1", 64, None)),
            ),
            ("10.0.0.5", "255.0.255.0", None, None),
            ("10.0.0.5", "", None, None),
            ("x", "24", None, None),
        ];
        for (a, m, g, want) in cases {
            let got = static_addr(a, m, *g);
            let want = want.map(|(a, p, g)| Addressing::Static {
                address: a.parse().unwrap(),
                prefix: p,
                gateway: g.map(|g| g.parse().unwrap()),
            });
            assert_eq!(got, want, "case {a}/{m} via {g:?}");
        }
    }

    #[test]
    fn scalars() {
        for (v, want) in [
            (json!("a"), Some("a")),
            (json!(42), Some("42")),
            (json!(true), Some("true")),
            (json!([]), None),
            (json!(null), None),
        ] {
            assert_eq!(text(Some(&v)).as_deref(), want, "case {v}");
        }
        assert_eq!(nonempty(Some(&json!("  "))), None, "blank");
    }
}
