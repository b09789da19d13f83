//! Google Compute Engine metadata: the one document
//! `computeMetadata/v1/?recursive=true&alt=json` (`{"instance": {...}, "project": {...}}`),
//! turned into a context by [`read`] (pure: the fetched bytes in, the context out; secrets go
//! to the state directory) through [`apply`] (JSON in, context fields out). [`fetch`] gets it with
//! `Metadata-Flavor: Google` and refuses a response without that header.
//!
//! Reads `instance.id` (a warning when missing), `instance.hostname` (required, as cloud-init's
//! `get_data()`), `instance.zone` (last path part, as `availability_zone`), instance
//! attributes `user-data` (+ `user-data-encoding: base64`), and ssh keys from instance
//! attributes `ssh-keys` and `sshKeys`, plus project attributes `ssh-keys`/`sshKeys` unless
//! the instance sets `block-project-ssh-keys: true`. Key lines are `user:key`; the `user:`
//! prefix is dropped (the context holds keys, not users) and keys whose
//! `google-ssh {"expireOn": ...}` comment is present are skipped (expiry needs a clock we do
//! not trust in the initramfs). NICs: `networkInterfaces[].mac` (or `network-interfaces`), each
//! DHCPv4. Keys are accepted in GCE's camelCase and in the path spelling (`machine-type`).

use super::service::Endpoint;
use super::{add_ssh_keys, parse_json, set_hostname, store_secret, DatasourceError};
use crate::caps;
use crate::context::{
    normalize_mac, Addressing, Context, HostNic, Link, LinkKind, Platform, Source,
};
use crate::state::StateDir;
use serde_json::Value;

/// The path of the recursive document below the service's base URL.
pub const RECURSIVE_PATH: &str = "computeMetadata/v1/?recursive=true&alt=json";

fn get<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| v.get(*n))
}

/// A string, or a number as text (GCE sends `id` as a number).
fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The context of the recursive document's bytes `body` (fetched from `object`, named in
/// errors): invalid JSON, or a document without `instance.hostname`, is an error.
pub fn read(
    body: &[u8],
    object: &str,
    source: Source,
    state: &StateDir,
    host_nics: Vec<HostNic>,
) -> Result<Context, DatasourceError> {
    let doc = parse_json(body, object)?;
    let mut ctx = Context::new(Some(Platform::Gce), source);
    ctx.host_nics = host_nics;
    apply(&mut ctx, &doc, state)?;
    Ok(ctx)
}

/// Fills `ctx` from the recursive document. Missing `id` or `hostname` is an error.
pub fn apply(ctx: &mut Context, doc: &Value, state: &StateDir) -> Result<(), DatasourceError> {
    let object = RECURSIVE_PATH;
    let instance = doc
        .get("instance")
        .filter(|v| v.is_object())
        .ok_or_else(|| DatasourceError::new(object, "no \"instance\" object"))?;
    // afterburn reads attributes without an id; cloud-init requires it. Keep going, warned.
    match scalar(instance.get("id"))
        .filter(|s| !s.is_empty() && s.len() <= 255 && !s.contains(char::is_whitespace))
    {
        Some(id) => ctx.instance_id = Some(id),
        None => ctx.warn("datasource", "instance.id", "missing or not a plain value"),
    }
    let hostname = scalar(instance.get("hostname"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| DatasourceError::new(object, "instance.hostname missing"))?;
    set_hostname(ctx, &hostname, "instance.hostname");
    if let Some(zone) = scalar(instance.get("zone")) {
        let zone = zone.rsplit('/').next().unwrap_or_default().to_string();
        if !zone.is_empty() {
            ctx.extra
                .insert("availability_zone".into(), Value::String(zone));
        }
    }
    if let Some(mt) = scalar(get(instance, &["machineType", "machine-type"])) {
        let mt = mt.rsplit('/').next().unwrap_or_default().to_string();
        ctx.extra.insert("machine_type".into(), Value::String(mt));
    }

    let attrs = instance.get("attributes").cloned().unwrap_or(Value::Null);
    let block_project = scalar(attrs.get("block-project-ssh-keys"))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let mut sources = vec![("instance", &attrs)];
    let project_attrs = doc
        .get("project")
        .and_then(|p| p.get("attributes"))
        .cloned()
        .unwrap_or(Value::Null);
    if block_project {
        ctx.extra
            .insert("block_project_ssh_keys".into(), Value::Bool(true));
    } else {
        sources.push(("project", &project_attrs));
    }
    for (scope, a) in sources {
        for key in ["ssh-keys", "sshKeys"] {
            if let Some(text) = scalar(a.get(key)) {
                let keys: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.contains("google-ssh"))
                    .map(|l| match l.split_once(':') {
                        // `user:ssh-rsa AAAA...`; a key itself has no ':' before its type.
                        Some((user, key)) if !user.contains(' ') => key.trim(),
                        _ => l,
                    })
                    .collect();
                add_ssh_keys(ctx, &keys.join("\n"), &format!("{scope}.attributes.{key}"));
            }
        }
    }

    if let Some(data) = scalar(attrs.get("user-data")) {
        let encoding = scalar(attrs.get("user-data-encoding")).unwrap_or_default();
        let bytes = if encoding.trim() == "base64" {
            match crate::base64::strict(&data) {
                Some(b) => Some(b),
                None => {
                    ctx.error(
                        "datasource",
                        "instance.attributes.user-data",
                        "user-data-encoding is base64 but the value is not valid base64",
                    );
                    None
                }
            }
        } else {
            Some(data.into_bytes())
        };
        if let Some(bytes) = bytes.filter(|b| !b.is_empty()) {
            ctx.user_data = store_secret(ctx, state, "user-data", &bytes);
        }
    }

    let mut nics: Vec<Value> = match get(instance, &["networkInterfaces", "network-interfaces"]) {
        Some(Value::Array(a)) => a.clone(),
        // A tree copy keys NICs by index: {"0": {...}, "1": {...}}.
        Some(Value::Object(m)) => {
            let mut v: Vec<(u32, Value)> = m
                .iter()
                .filter_map(|(k, v)| k.parse().ok().map(|i| (i, v.clone())))
                .collect();
            v.sort_by_key(|(i, _)| *i);
            v.into_iter().map(|(_, v)| v).collect()
        }
        _ => Vec::new(),
    };
    if let Some(cut) = caps::LINKS.truncate(&mut nics) {
        ctx.warn("datasource", "networkInterfaces", cut);
    }
    for (i, nic) in nics.iter().enumerate() {
        let Some(mac) = scalar(nic.get("mac")).and_then(|m| normalize_mac(&m)) else {
            continue;
        };
        let mut link = Link::new(format!("nic{i}"), LinkKind::Physical);
        link.mac = Some(mac);
        link.addressing.push(Addressing::Dhcp4);
        if let Some(mtu) = scalar(nic.get("mtu")).and_then(|m| m.parse().ok()) {
            link.mtu = Some(mtu);
        }
        ctx.network.links.push(link);
    }
    ctx.match_nics(false);
    Ok(())
}

/// Reads GCE's one recursive document at `ep`, `Metadata-Flavor: Google` both ways.
pub fn fetch(mut ep: Endpoint) -> Result<Context, DatasourceError> {
    ep.client.headers = vec![("Metadata-Flavor".into(), "Google".into())];
    ep.client.require = Some(("Metadata-Flavor".into(), "Google".into()));
    let url = ep.base.join(RECURSIVE_PATH);
    let body = ep
        .client
        .get(&url, super::METADATA_CAP.try_into().unwrap_or(usize::MAX))
        .map_err(|e| DatasourceError::new(url.to_string(), e.to_string()))?
        .ok_or_else(|| DatasourceError::new(url.to_string(), "not found (HTTP 404)"))?;
    read(&body, &url.to_string(), ep.source, ep.state, ep.host_nics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Access, Platform, Source, SourceKind};
    use serde_json::json;

    fn ctx() -> Context {
        Context::new(
            Some(Platform::Gce),
            Source {
                kind: SourceKind::MetadataService,
                medium: Access::Http,
                location: "x".into(),
                partition_of: None,
            },
        )
    }

    #[test]
    fn keys_and_blocking() {
        let state_dir = std::env::temp_dir().join(format!("preroot-gce-{}", std::process::id()));
        let state = StateDir::new(&state_dir);
        let doc = |block: bool| {
            json!({
                "instance": {"id": 123, "hostname": "vm.c.proj.internal", "zone": "projects/1/zones/us-b",
                    "attributes": {"ssh-keys": "alice:ssh-ed25519 AAAA alice\nbob:ssh-rsa BBBB bob google-ssh {\"expireOn\":\"x\"}",
                        "block-project-ssh-keys": if block {"true"} else {"false"},
                        "user-data": "I2Nsb3VkLWNvbmZpZwo=", "user-data-encoding": "base64"},
                    "networkInterfaces": [{"mac": "42:01:0A:00:00:02", "mtu": 1460}]},
                "project": {"attributes": {"sshKeys": "carol:ssh-rsa CCCC carol"}}
            })
        };
        let mut c = ctx();
        apply(&mut c, &doc(false), &state).unwrap();
        assert_eq!(c.instance_id.as_deref(), Some("123"));
        assert_eq!(c.hostname.as_deref(), Some("vm.c.proj.internal"));
        assert_eq!(c.ssh_keys, ["ssh-ed25519 AAAA alice", "ssh-rsa CCCC carol"]);
        assert_eq!(c.extra["availability_zone"], "us-b");
        assert_eq!(c.network.links[0].mac.as_deref(), Some("42:01:0a:00:00:02"));
        assert_eq!(c.network.links[0].mtu, Some(1460));
        let ud = c.user_data.as_ref().unwrap();
        assert_eq!(std::fs::read(&ud.path).unwrap(), b"#cloud-config\n");
        let mut c = ctx();
        apply(&mut c, &doc(true), &state).unwrap();
        assert_eq!(
            c.ssh_keys,
            ["ssh-ed25519 AAAA alice"],
            "project keys blocked"
        );
        for bad in [
            json!({}),
            json!({"instance": {"id": "1"}}),
            json!({"instance": []}),
        ] {
            assert!(apply(&mut ctx(), &bad, &state).is_err(), "case {bad}");
        }
        let _ = std::fs::remove_dir_all(&state_dir);
    }
}
