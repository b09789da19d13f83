//! Azure's provisioning document, `ovf-env.xml` (on the provisioning CD-ROM, UDF or ISO9660):
//! bytes in, an [`OvfEnv`] out. Pure: no file, no device.
//!
//! Owns the `ProvisioningSection` / `LinuxProvisioningConfigurationSet` (HostName, UserName,
//! UserPassword, DisableSshPasswordAuthentication, SSH PublicKeys with Path, Fingerprint and
//! Value, CustomData in base64) and the `PlatformSettingsSection` / `PlatformSettings`
//! (ProvisionGuestAgent, PreprovisionedVm, PreprovisionedVMType, ProvisionGuestProxyAgent).
//! Elements are matched by expanded name in the Windows Azure namespace
//! ([`WA_NS`]), whatever prefix the document uses, as cloud-init's `OvfEnvXml` does
//! (cloud-init@04eacd06:cloudinit/sources/helpers/azure.py): a document without a
//! `ProvisioningSection` is [`OvfErrorKind::NotAzure`] (another OVF environment), a required
//! element missing or any element given twice is an error naming it.
//!
//! Does not support: `SSH/KeyPairs` (private keys placed by the agent from the wire server's
//! certificates), public keys given only by `Fingerprint` (their key lives in the wire
//! server's certificate bundle, which needs decryption: they are returned with an empty
//! `value` so the caller can say what it skipped), Windows provisioning sets.
//!
//! Secrets: `UserPassword` and `CustomData` are [`Secret`]s, whose `Debug` shows only their
//! length, so neither reaches a log through `{:?}`. The password is refused past
//! [`MAX_PASSWORD_BYTES`] (cloud-init's `MAX_PASSWORD_LENGTH`, 72, the bcrypt/crypt input
//! limit Azure also enforces).
//!
//! Spec: Azure's "Azure Linux VM provisioning" (learn.microsoft.com, virtual-machines/linux/
//! provisioning) and the DMTF OVF environment (DSP0243 §11); the XML is read by
//! [`super::xml`], bounded and without DTDs.
//!
//! Panic contract: [`parse`] never panics on any input.
#![deny(clippy::arithmetic_side_effects)]

use super::xml::{self, Element, XmlError};
use std::fmt;

/// The Windows Azure namespace of the provisioning elements.
pub const WA_NS: &str = "http://schemas.microsoft.com/windowsazure";
/// The OVF environment namespace of the root `Environment` element.
pub const OVF_NS: &str = "http://schemas.dmtf.org/ovf/environment/1";
/// Longest `UserPassword` accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Bytes that must not be logged: `Debug` prints the length only.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// One `SSH/PublicKeys/PublicKey`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicKey {
    /// Where the agent would put it (`/home/azureuser/.ssh/authorized_keys`).
    pub path: Option<String>,
    /// The thumbprint of the certificate that carries the key on the wire server.
    pub fingerprint: Option<String>,
    /// The key in OpenSSH format; empty when only a fingerprint was given.
    pub value: String,
}

/// What `ovf-env.xml` says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OvfEnv {
    pub hostname: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub disable_ssh_password_auth: Option<bool>,
    pub public_keys: Vec<PublicKey>,
    /// `CustomData`, base64-decoded (white space in the text ignored).
    pub custom_data: Option<Secret>,
    pub provision_guest_agent: Option<bool>,
    pub preprovisioned_vm: bool,
    pub preprovisioned_vm_type: Option<String>,
    pub provision_guest_proxy_agent: bool,
}

/// Why `ovf-env.xml` was refused; `element` is the path of the element concerned
/// (`ProvisioningSection/LinuxProvisioningConfigurationSet/HostName`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvfError {
    pub element: String,
    pub kind: OvfErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OvfErrorKind {
    /// Not well-formed, or past a limit of the XML reader.
    Xml(XmlError),
    /// No `ProvisioningSection`: an OVF environment, but not Azure's.
    NotAzure,
    Missing,
    /// Given this many times, where once is allowed.
    Repeated(usize),
    /// Not a boolean (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case).
    NotBool(String),
    NotBase64,
    /// The password is longer than [`MAX_PASSWORD_BYTES`] (its length).
    PasswordTooLong(usize),
}

impl fmt::Display for OvfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let el = &self.element;
        match &self.kind {
            OvfErrorKind::Xml(e) => write!(f, "ovf-env.xml: {e}"),
            OvfErrorKind::NotAzure => write!(f, "ovf-env.xml: no {el}: not an Azure document"),
            OvfErrorKind::Missing => write!(f, "ovf-env.xml: {el} missing"),
            OvfErrorKind::Repeated(n) => write!(f, "ovf-env.xml: {el} given {n} times"),
            OvfErrorKind::NotBool(v) => write!(f, "ovf-env.xml: {el}: {v:?} is not a boolean"),
            OvfErrorKind::NotBase64 => write!(f, "ovf-env.xml: {el}: not base64"),
            OvfErrorKind::PasswordTooLong(n) => write!(
                f,
                "ovf-env.xml: {el}: {n} bytes, more than {MAX_PASSWORD_BYTES}"
            ),
        }
    }
}

impl std::error::Error for OvfError {}

fn fail<T>(element: &str, kind: OvfErrorKind) -> Result<T, OvfError> {
    Err(OvfError {
        element: element.to_string(),
        kind,
    })
}

/// The one child `name` (Azure namespace) of `parent`, at `path`; `None` if absent.
fn one<'a>(parent: &'a Element, name: &str, path: &str) -> Result<Option<&'a Element>, OvfError> {
    let mut found = parent.children_named(Some(WA_NS), name);
    let first = found.next();
    let more = found.count();
    if more > 0 {
        return fail(
            &join(path, name),
            OvfErrorKind::Repeated(more.saturating_add(1)),
        );
    }
    Ok(first)
}

fn required<'a>(parent: &'a Element, name: &str, path: &str) -> Result<&'a Element, OvfError> {
    one(parent, name, path)?.map_or_else(|| fail(&join(path, name), OvfErrorKind::Missing), Ok)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}/{name}")
    }
}

/// The trimmed text of an optional child; an empty element counts as absent (cloud-init).
fn text(parent: &Element, name: &str, path: &str) -> Result<Option<String>, OvfError> {
    Ok(one(parent, name, path)?
        .map(|e| e.text.trim().to_string())
        .filter(|t| !t.is_empty()))
}

fn boolean(parent: &Element, name: &str, path: &str) -> Result<Option<bool>, OvfError> {
    let Some(t) = text(parent, name, path)? else {
        return Ok(None);
    };
    match t.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(Some(true)),
        "false" | "0" | "no" | "off" => Ok(Some(false)),
        _ => fail(&join(path, name), OvfErrorKind::NotBool(t)),
    }
}

/// Parses `ovf-env.xml`.
pub fn parse(doc: &[u8]) -> Result<OvfEnv, OvfError> {
    let root = xml::parse(doc).or_else(|e| fail("", OvfErrorKind::Xml(e)))?;
    let Some(prov) = one(&root, "ProvisioningSection", "")? else {
        return fail("ProvisioningSection", OvfErrorKind::NotAzure);
    };
    let p = "ProvisioningSection";
    let set = required(prov, "LinuxProvisioningConfigurationSet", p)?;
    let p = "ProvisioningSection/LinuxProvisioningConfigurationSet";
    let mut env = OvfEnv {
        hostname: text(set, "HostName", p)?
            .map_or_else(|| fail(&join(p, "HostName"), OvfErrorKind::Missing), Ok)?,
        username: text(set, "UserName", p)?,
        disable_ssh_password_auth: boolean(set, "DisableSshPasswordAuthentication", p)?,
        ..OvfEnv::default()
    };
    // The password is taken as written (not trimmed): spaces may be part of it.
    if let Some(pw) = one(set, "UserPassword", p)?.filter(|e| !e.text.is_empty()) {
        if pw.text.len() > MAX_PASSWORD_BYTES {
            return fail(
                &join(p, "UserPassword"),
                OvfErrorKind::PasswordTooLong(pw.text.len()),
            );
        }
        env.password = Some(Secret(pw.text.clone().into_bytes()));
    }
    if let Some(cd) = one(set, "CustomData", p)? {
        let compact: String = cd.text.split_ascii_whitespace().collect();
        if !compact.is_empty() {
            let bytes = crate::base64::strict(&compact)
                .map_or_else(|| fail(&join(p, "CustomData"), OvfErrorKind::NotBase64), Ok)?;
            env.custom_data = Some(Secret(bytes));
        }
    }
    if let Some(ssh) = one(set, "SSH", p)? {
        let p = format!("{p}/SSH");
        if let Some(keys) = one(ssh, "PublicKeys", &p)? {
            let p = format!("{p}/PublicKeys/PublicKey");
            for key in keys.children_named(Some(WA_NS), "PublicKey") {
                env.public_keys.push(PublicKey {
                    path: text(key, "Path", &p)?,
                    fingerprint: text(key, "Fingerprint", &p)?,
                    value: text(key, "Value", &p)?.unwrap_or_default(),
                });
            }
        }
    }
    let settings_section = required(&root, "PlatformSettingsSection", "")?;
    let settings = required(
        settings_section,
        "PlatformSettings",
        "PlatformSettingsSection",
    )?;
    let p = "PlatformSettingsSection/PlatformSettings";
    env.provision_guest_agent = boolean(settings, "ProvisionGuestAgent", p)?;
    env.preprovisioned_vm = boolean(settings, "PreprovisionedVm", p)?.unwrap_or(false);
    env.preprovisioned_vm_type = text(settings, "PreprovisionedVMType", p)?;
    env.provision_guest_proxy_agent =
        boolean(settings, "ProvisionGuestProxyAgent", p)?.unwrap_or(false);
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/platforms/azure")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn fixture_document() {
        let env = parse(&fixture("ovf-env.xml")).unwrap();
        assert_eq!(env.hostname, "preroot-vm", "hostname");
        assert_eq!(env.username.as_deref(), Some("azureuser"), "user");
        assert_eq!(
            env.password,
            Some(Secret(b"P@ssw0rd-not-real".to_vec())),
            "password"
        );
        assert_eq!(env.disable_ssh_password_auth, Some(true), "password auth");
        assert_eq!(env.public_keys.len(), 2, "keys");
        assert_eq!(
            env.public_keys[0].path.as_deref(),
            Some("/home/azureuser/.ssh/authorized_keys"),
            "key path"
        );
        assert!(
            env.public_keys[0].value.starts_with("ssh-ed25519 "),
            "key value"
        );
        assert_eq!(env.public_keys[1].value, "", "fingerprint-only key");
        assert!(env.public_keys[1].fingerprint.is_some(), "fingerprint");
        assert_eq!(
            env.custom_data.as_ref().map(|s| s.0.as_slice()),
            Some(&b"#cloud-config\nhostname: from-custom-data\n"[..]),
            "custom data"
        );
        assert_eq!(env.provision_guest_agent, Some(true), "guest agent");
        assert!(!env.preprovisioned_vm, "not preprovisioned");
        assert!(
            !format!("{env:?}").contains("P@ss"),
            "password not in Debug"
        );
    }

    #[test]
    fn preprovisioned() {
        let env = parse(&fixture("ovf-env-preprovisioned.xml")).unwrap();
        assert!(env.preprovisioned_vm, "PreprovisionedVm");
        assert_eq!(
            env.preprovisioned_vm_type.as_deref(),
            Some("Savable"),
            "type"
        );
        assert_eq!(env.custom_data, None, "no custom data");
        assert!(env.public_keys.is_empty(), "no keys");
    }

    fn doc(linux: &str, platform: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<Environment xmlns="{OVF_NS}" xmlns:wa="{WA_NS}">
 <wa:ProvisioningSection><wa:Version>1.0</wa:Version>
  <wa:LinuxProvisioningConfigurationSet>{linux}</wa:LinuxProvisioningConfigurationSet>
 </wa:ProvisioningSection>
 <wa:PlatformSettingsSection><wa:PlatformSettings>{platform}</wa:PlatformSettings></wa:PlatformSettingsSection>
</Environment>"#
        )
    }

    #[test]
    fn errors_name_the_element() {
        let host = "<wa:HostName>h</wa:HostName>";
        let long_pw = format!(
            "{host}<wa:UserPassword>{}</wa:UserPassword>",
            "x".repeat(73)
        );
        let cases: Vec<(&str, String, &str)> = vec![
            ("no hostname", doc("", ""), "HostName missing"),
            ("empty hostname", doc("<wa:HostName> </wa:HostName>", ""), "HostName missing"),
            ("two hostnames", doc(&format!("{host}{host}"), ""), "HostName given 2 times"),
            (
                "bad bool",
                doc(&format!("{host}<wa:DisableSshPasswordAuthentication>maybe</wa:DisableSshPasswordAuthentication>"), ""),
                "DisableSshPasswordAuthentication: \"maybe\"",
            ),
            ("bad base64", doc(&format!("{host}<wa:CustomData>!!</wa:CustomData>"), ""), "CustomData: not base64"),
            ("long password", doc(&long_pw, ""), "UserPassword: 73 bytes"),
            (
                "bad platform bool",
                doc(host, "<wa:PreprovisionedVm>2</wa:PreprovisionedVm>"),
                "PlatformSettings/PreprovisionedVm",
            ),
            ("not azure", format!("<Environment xmlns=\"{OVF_NS}\"/>"), "not an Azure document"),
            (
                "wrong namespace",
                doc(host, "").replace(WA_NS, "urn:other"),
                "not an Azure document",
            ),
            ("dtd", format!("<!DOCTYPE x>{}", doc(host, "")), "document type"),
            (
                "no platform settings",
                doc(host, "").replace("PlatformSettingsSection", "Other"),
                "PlatformSettingsSection missing",
            ),
        ];
        for (case, d, want) in cases {
            let e = parse(d.as_bytes()).expect_err(case).to_string();
            assert!(e.contains(want), "case {case}: {e:?} does not say {want:?}");
        }
    }

    #[test]
    fn values() {
        let env = parse(
            doc(
                "<wa:HostName> h1 </wa:HostName><wa:UserPassword> a b </wa:UserPassword>\
                 <wa:CustomData>\n aGVs\n bG8=\n</wa:CustomData>\
                 <wa:DisableSshPasswordAuthentication>FALSE</wa:DisableSshPasswordAuthentication>",
                "<wa:ProvisionGuestAgent>false</wa:ProvisionGuestAgent>",
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(env.hostname, "h1", "trimmed hostname");
        assert_eq!(
            env.password,
            Some(Secret(b" a b ".to_vec())),
            "password as written"
        );
        assert_eq!(
            env.custom_data,
            Some(Secret(b"hello".to_vec())),
            "base64 over lines"
        );
        assert_eq!(env.disable_ssh_password_auth, Some(false), "bool any case");
        assert_eq!(env.provision_guest_agent, Some(false), "guest agent off");
    }
}
