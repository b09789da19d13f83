//! Azure's Instance Metadata Service document, `GET /metadata/instance?api-version=2021-02-01`
//! (header `Metadata: true`): bytes in, an [`Imds`] out. Pure: no socket, no file.
//!
//! Owns what preroot takes from it: `compute.vmId` (the instance id), `compute.osProfile`
//! (`computerName`, `adminUsername`, `disablePasswordAuthentication`, a string `"true"`),
//! `compute.name` (the hostname when `computerName` is absent), `compute.publicKeys[].keyData`,
//! `compute.location`, `vmSize`, `zone`, and per NIC of `network.interface[]`: `macAddress`
//! (12 hex digits without separators, as Azure writes it; normalized to `aa:bb:…`) and the
//! `privateIpAddress`es of `ipv4.ipAddress[]` and `ipv6.ipAddress[]` with the prefix of the
//! family's first `subnet[]` (IPv6 without one: 128, as cloud-init assumes).
//!
//! Tolerant below the top: the document must be a JSON object with a `compute` object
//! ([`ImdsError`] otherwise); a field of the wrong type, an unusable address or MAC is left
//! out and named in [`Imds::problems`], and the rest is kept, as cloud-init reads it
//! (cloud-init@04eacd06:cloudinit/sources/DataSourceAzure.py `generate_network_config`,
//! `_metadata_imds`). Counts are capped by [`crate::caps`] (NICs by `LINKS`, addresses per
//! NIC by `ADDRESSES`), each cut named in `problems`.
//!
//! Does not read: `compute.userData` (a later channel than `ovf-env.xml`'s `CustomData`,
//! which cloud-init reads for user data), tags, the `extended` and `attested` documents,
//! load-balancer metadata.
//!
//! Spec: learn.microsoft.com/azure/virtual-machines/instance-metadata-service (API version
//! 2021-02-01). Panic contract: [`parse`] never panics; the caller caps the body.
#![deny(clippy::arithmetic_side_effects)]

use crate::caps;
use serde_json::Value;
use std::fmt;
use std::net::IpAddr;

/// The document's path and query below the service's base URL.
pub const PATH: &str = "metadata/instance?api-version=2021-02-01";
/// Longest identifier, name or key kept.
const MAX_TEXT: usize = 16 * 1024;

/// One NIC of `network.interface[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// Lower case, colon separated.
    pub mac: String,
    /// `(address, prefix)` in the order given; the first is the one DHCP hands out.
    pub ipv4: Vec<(IpAddr, u8)>,
    pub ipv6: Vec<(IpAddr, u8)>,
}

/// What preroot takes from the document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imds {
    pub vm_id: Option<String>,
    /// `osProfile.computerName`, else `compute.name`.
    pub hostname: Option<String>,
    pub admin_username: Option<String>,
    pub disable_password_auth: Option<bool>,
    pub public_keys: Vec<String>,
    pub location: Option<String>,
    pub vm_size: Option<String>,
    pub zone: Option<String>,
    pub nics: Vec<Nic>,
    /// `(field, what)`: values left out or cut, for the context's warnings.
    pub problems: Vec<(String, String)>,
}

/// The document is not one preroot can read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsError(pub String);

impl fmt::Display for ImdsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ImdsError {}

impl Imds {
    fn problem(&mut self, field: &str, what: impl Into<String>) {
        self.problems.push((field.to_string(), what.into()));
    }

    /// A string field: `None` when absent, empty or `null`; a non-string, over-long or
    /// control-character value is a problem and reads as absent.
    fn text(&mut self, v: &Value, key: &str, field: &str) -> Option<String> {
        match v.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s))
                if s.len() <= MAX_TEXT && !s.chars().any(|c| c.is_control() && c != '\n') =>
            {
                Some(s.trim().to_string())
            }
            Some(Value::String(_)) => {
                self.problem(field, "too long or with control characters");
                None
            }
            Some(_) => {
                self.problem(field, "not a string");
                None
            }
        }
    }

    /// An array field (absent reads as empty).
    fn array<'a>(&mut self, v: &'a Value, key: &str, field: &str) -> &'a [Value] {
        match v.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.problem(field, "not a list");
                &[]
            }
        }
    }
}

/// Parses the IMDS instance document.
pub fn parse(doc: &[u8]) -> Result<Imds, ImdsError> {
    let v: Value = serde_json::from_slice(doc).map_err(|e| {
        ImdsError(format!(
            "invalid JSON at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    let compute = v
        .get("compute")
        .filter(|c| c.is_object())
        .ok_or_else(|| ImdsError("no \"compute\" object".into()))?;
    let mut md = Imds::default();
    md.vm_id = md
        .text(compute, "vmId", "compute.vmId")
        .filter(|id| !id.contains(char::is_whitespace) && id.len() <= 255);
    let os = compute.get("osProfile").cloned().unwrap_or(Value::Null);
    md.hostname = md
        .text(&os, "computerName", "compute.osProfile.computerName")
        .or_else(|| md.text(compute, "name", "compute.name"));
    md.admin_username = md.text(&os, "adminUsername", "compute.osProfile.adminUsername");
    md.disable_password_auth = match md
        .text(
            &os,
            "disablePasswordAuthentication",
            "compute.osProfile.disablePasswordAuthentication",
        )
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            md.problem(
                "compute.osProfile.disablePasswordAuthentication",
                "not \"true\" or \"false\"",
            );
            None
        }
    };
    md.location = md.text(compute, "location", "compute.location");
    md.vm_size = md.text(compute, "vmSize", "compute.vmSize");
    md.zone = md.text(compute, "zone", "compute.zone");
    for (i, key) in md
        .array(compute, "publicKeys", "compute.publicKeys")
        .iter()
        .enumerate()
    {
        let field = format!("compute.publicKeys[{i}].keyData");
        if let Some(k) = md.text(key, "keyData", &field) {
            md.public_keys.push(k);
        }
    }
    let network = v.get("network").cloned().unwrap_or(Value::Null);
    let mut nics = md
        .array(&network, "interface", "network.interface")
        .to_vec();
    if let Some(cut) = caps::LINKS.truncate(&mut nics) {
        md.problem("network.interface", cut);
    }
    for (i, nic) in nics.iter().enumerate() {
        let field = format!("network.interface[{i}]");
        if let Some(n) = parse_nic(&mut md, nic, &field) {
            md.nics.push(n);
        }
    }
    Ok(md)
}

/// `000D3A047598` (or any spelling [`crate::context::normalize_mac`] takes) to `00:0d:3a:…`.
pub fn mac(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.len() == 12 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        let pairs: Vec<&str> = (0..6usize)
            .filter_map(|i| raw.get(i.saturating_mul(2)..i.saturating_mul(2).saturating_add(2)))
            .collect();
        return crate::context::normalize_mac(&pairs.join(":"));
    }
    crate::context::normalize_mac(raw)
}

fn parse_nic(md: &mut Imds, nic: &Value, field: &str) -> Option<Nic> {
    let Some(raw) = md.text(nic, "macAddress", &format!("{field}.macAddress")) else {
        md.problem(field, "no macAddress");
        return None;
    };
    let Some(mac) = mac(&raw) else {
        md.problem(&format!("{field}.macAddress"), "not a MAC address");
        return None;
    };
    let mut out = Nic {
        mac,
        ipv4: Vec::new(),
        ipv6: Vec::new(),
    };
    for (family, v6) in [("ipv4", false), ("ipv6", true)] {
        let Some(fam) = nic.get(family) else { continue };
        let ffield = format!("{field}.{family}");
        let default_prefix = if v6 { 128 } else { 32 };
        let prefix = md
            .array(fam, "subnet", &format!("{ffield}.subnet"))
            .first()
            .and_then(|s| match s.get("prefix") {
                Some(Value::String(p)) => p.trim().parse::<u8>().ok(),
                Some(Value::Number(n)) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
                _ => None,
            })
            .filter(|p| *p <= default_prefix);
        let prefix = prefix.unwrap_or(default_prefix);
        let mut addrs = Vec::new();
        for (j, a) in md
            .array(fam, "ipAddress", &format!("{ffield}.ipAddress"))
            .iter()
            .enumerate()
        {
            let afield = format!("{ffield}.ipAddress[{j}].privateIpAddress");
            let Some(text) = md.text(a, "privateIpAddress", &afield) else {
                continue;
            };
            match text.parse::<IpAddr>() {
                Ok(ip) if ip.is_ipv6() == v6 && !ip.is_unspecified() && !ip.is_multicast() => {
                    addrs.push((ip, prefix));
                }
                _ => md.problem(
                    &afield,
                    format!("{text:?} is not a usable {family} address"),
                ),
            }
        }
        if let Some(cut) = caps::ADDRESSES.truncate(&mut addrs) {
            md.problem(&format!("{ffield}.ipAddress"), cut);
        }
        if v6 {
            out.ipv6 = addrs;
        } else {
            out.ipv4 = addrs;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/platforms/azure/imds-instance.json"),
        )
        .unwrap()
    }

    #[test]
    fn fixture_document() {
        let md = parse(&fixture()).unwrap();
        assert_eq!(
            md.vm_id.as_deref(),
            Some("ff702a6b-cb6a-4fcd-ad68-b4ce38227642"),
            "vmId"
        );
        assert_eq!(md.hostname.as_deref(), Some("my-hostname"), "computerName");
        assert_eq!(md.admin_username.as_deref(), Some("azureuser"), "user");
        assert_eq!(md.disable_password_auth, Some(true), "password auth");
        assert_eq!(md.public_keys.len(), 1, "keys");
        assert!(md.public_keys[0].starts_with("ssh-ed25519 "), "key");
        assert_eq!(md.location.as_deref(), Some("eastus2"), "location");
        assert_eq!(md.zone, None, "empty zone is absent");
        let macs: Vec<&str> = md.nics.iter().map(|n| n.mac.as_str()).collect();
        assert_eq!(macs, ["00:0d:3a:04:75:98", "22:0d:3a:04:75:98"], "MACs");
        assert_eq!(
            md.nics[0].ipv4,
            [("10.0.0.4".parse().unwrap(), 24)],
            "primary address"
        );
        assert!(md.nics[0].ipv6.is_empty(), "no IPv6");
        assert!(md.problems.is_empty(), "problems: {:?}", md.problems);
    }

    #[test]
    fn refused_documents() {
        for (case, doc, want) in [
            ("not JSON", &b"<html>"[..], "invalid JSON"),
            ("truncated", b"{\"compute\": {", "invalid JSON"),
            ("no compute", b"{\"network\": {}}", "no \"compute\""),
            (
                "compute not an object",
                b"{\"compute\": []}",
                "no \"compute\"",
            ),
            ("a list", b"[]", "no \"compute\""),
        ] {
            let e = parse(doc).expect_err(case).to_string();
            assert!(e.contains(want), "case {case}: {e}");
        }
    }

    #[test]
    fn odd_values_are_left_out_and_named() {
        let doc = br#"{"compute": {"vmId": "a b", "name": "n1", "osProfile": {"adminUsername": 7,
              "disablePasswordAuthentication": "maybe"}, "publicKeys": [{"keyData": "ssh-rsa K"},
              {"keyData": null}, {"path": "/x"}], "location": ["x"]},
            "network": {"interface": [
              {"macAddress": "00-0D-3A-04-75-98", "ipv4": {"ipAddress": [
                 {"privateIpAddress": "10.0.0.4"}, {"privateIpAddress": "fe80::1"},
                 {"privateIpAddress": "10.0.0.5"}], "subnet": [{"prefix": 24}]},
               "ipv6": {"ipAddress": [{"privateIpAddress": "fd00::4"}], "subnet": []}},
              {"macAddress": "zz"}, {"ipv4": {}}, "junk"]}}"#;
        let md = parse(doc).unwrap();
        assert_eq!(md.vm_id, None, "vmId with a space");
        assert_eq!(md.hostname.as_deref(), Some("n1"), "compute.name");
        assert_eq!(md.admin_username, None, "number");
        assert_eq!(md.disable_password_auth, None, "maybe");
        assert_eq!(md.public_keys, ["ssh-rsa K"], "keys");
        assert_eq!(md.nics.len(), 1, "one usable NIC");
        let nic = &md.nics[0];
        assert_eq!(nic.mac, "00:0d:3a:04:75:98", "dashed MAC");
        let v4: Vec<String> = nic.ipv4.iter().map(|(a, p)| format!("{a}/{p}")).collect();
        assert_eq!(v4, ["10.0.0.4/24", "10.0.0.5/24"], "IPv4 (number prefix)");
        assert_eq!(
            nic.ipv6,
            [("fd00::4".parse().unwrap(), 128)],
            "IPv6, no subnet"
        );
        let fields: Vec<&str> = md.problems.iter().map(|(f, _)| f.as_str()).collect();
        for want in [
            "compute.osProfile.adminUsername",
            "compute.osProfile.disablePasswordAuthentication",
            "compute.location",
            "network.interface[0].ipv4.ipAddress[1].privateIpAddress",
            "network.interface[1].macAddress",
            "network.interface[2]",
            "network.interface[3]",
        ] {
            assert!(fields.contains(&want), "{want} not in {fields:?}");
        }
    }

    #[test]
    fn caps_cut_and_say_so() {
        let nics: Vec<String> = (0..300)
            .map(|i| format!("{{\"macAddress\": \"0000000{:05x}\"}}", i))
            .collect();
        let doc = format!(
            "{{\"compute\": {{}}, \"network\": {{\"interface\": [{}]}}}}",
            nics.join(",")
        );
        let md = parse(doc.as_bytes()).unwrap();
        assert_eq!(md.nics.len(), caps::LINKS.max, "NICs capped");
        assert!(
            md.problems
                .iter()
                .any(|(f, w)| f == "network.interface" && w.contains("more than 256")),
            "{:?}",
            md.problems
        );
    }
}
