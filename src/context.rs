//! The context: the one normalized model every datasource fills and every later stage reads.
//!
//! Owns the types and their JSON shape (pinned in `docs/context.md`, `schema_version` 1), the
//! matching of described links to the host's NICs, and the DHCP fallback rule. Never reads
//! files or devices: providers fill it, `run`/`context` serialize it to
//! `/run/preroot/context.json`. Secrets (user data, vendor data, passwords) never appear here
//! inline, only as [`SecretFile`] references to 0600 files in the state directory.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// Bumped on any incompatible change of the JSON shape.
pub const SCHEMA_VERSION: u32 = 1;

/// The cloud or deployer that started this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Openstack,
    Ec2,
    Gce,
    Opennebula,
    Nocloud,
}

impl Platform {
    pub const ALL: [Platform; 5] = [
        Platform::Openstack,
        Platform::Ec2,
        Platform::Gce,
        Platform::Opennebula,
        Platform::Nocloud,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Openstack => "openstack",
            Platform::Ec2 => "ec2",
            Platform::Gce => "gce",
            Platform::Opennebula => "opennebula",
            Platform::Nocloud => "nocloud",
        }
    }

    pub fn from_name(name: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of datasource the context was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// OpenStack config drive (`config-2`), as a disc, a FAT image or a disk partition.
    ConfigDrive,
    /// NoCloud seed (`cidata`): `meta-data`, `user-data`, `network-config`.
    NocloudSeed,
    /// OpenNebula context medium (`CONTEXT`): `context.sh`.
    OpennebulaContext,
    /// An HTTP metadata service (169.254.169.254 and kin).
    MetadataService,
    /// Nothing but the kernel command line (`ip=`, `nameserver=`).
    KernelCmdline,
}

/// How the medium was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Medium {
    /// ISO9660 image or device, read in user space.
    Iso9660,
    /// FAT12/16/32 image or device, read in user space.
    Fat,
    /// A directory tree (a mounted medium, or a test tree).
    Directory,
    /// HTTP.
    Http,
    /// `/proc/cmdline`.
    Cmdline,
}

/// Where the context came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub kind: SourceKind,
    pub medium: Medium,
    /// Device node, image file, directory or base URL.
    pub location: String,
    /// For a medium on a partition (Ironic's `config-2` partition), the whole disk it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<String>,
}

/// A secret handed to userspace as a file in the state directory, mode 0600.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFile {
    /// Absolute path of the file in the state directory.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// What the content looks like, from its first bytes (see [`detect_payload_type`]).
    #[serde(rename = "type")]
    pub kind: PayloadType,
}

/// Type of a user-data or vendor-data payload, detected from its first bytes the way
/// cloud-init does (`#!`, `#cloud-config`, MIME, gzip ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadType {
    Empty,
    Script,
    CloudConfig,
    CloudBoothook,
    Include,
    PartHandler,
    Mime,
    Gzip,
    Json,
    Other,
}

/// Classifies a payload by its start. Pure; never fails.
pub fn detect_payload_type(data: &[u8]) -> PayloadType {
    let trimmed = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .and_then(|start| data.get(start..))
        .unwrap_or(&[]);
    if trimmed.is_empty() {
        return PayloadType::Empty;
    }
    if data.starts_with(&[0x1f, 0x8b]) {
        return PayloadType::Gzip;
    }
    let starts = |prefix: &str| {
        trimmed
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    if starts("#cloud-config") {
        PayloadType::CloudConfig
    } else if starts("#cloud-boothook") {
        PayloadType::CloudBoothook
    } else if starts("#include") {
        PayloadType::Include
    } else if starts("#part-handler") {
        PayloadType::PartHandler
    } else if starts("#!") {
        PayloadType::Script
    } else if starts("content-type:") || starts("mime-version:") {
        PayloadType::Mime
    } else if starts("{") || starts("[") {
        PayloadType::Json
    } else {
        PayloadType::Other
    }
}

/// A file the provider asks to be placed in the root filesystem (OpenStack "personality"
/// files, `meta_data.json` `files`). The content is handed off like a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedFile {
    /// Absolute path in the booted system.
    pub path: String,
    pub content: SecretFile,
}

/// Something that failed and was skipped (or, for `preroot context`, made the run fail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The stage: `cmdline`, `detect`, `datasource`, `network`, `handoff` ...
    pub stage: String,
    /// The object: file, device, field.
    pub object: String,
    pub message: String,
}

/// A deliberate degradation, recorded so nobody has to guess it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallback {
    /// `dhcp4-all-nics`, `dhcp4-undescribed-nic`, `configdrive-ec2-tree`, `imdsv1` ...
    pub kind: String,
    pub reason: String,
}

/// A NIC present on the host, from `<root>/sys/class/net/*/address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostNic {
    pub name: String,
    /// Lower-case, colon separated.
    pub mac: String,
}

/// What a link is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LinkKind {
    Physical,
    Bond {
        /// Kernel bonding mode name (`802.3ad`, `active-backup` ...), normalized from numbers.
        mode: String,
        /// Member link ids.
        members: Vec<String>,
        /// Other bonding options with the `bond_` prefix removed (`miimon`, `xmit_hash_policy`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        options: BTreeMap<String, String>,
    },
    Vlan {
        /// 1..=4094. Serialized as `vlan_id`: `id` is the link's own.
        #[serde(rename = "vlan_id")]
        id: u16,
        /// Parent link id.
        parent: String,
    },
    Bridge {
        /// Member link ids.
        members: Vec<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        options: BTreeMap<String, String>,
    },
}

/// How one link gets an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Addressing {
    Dhcp4,
    /// Stateful DHCPv6.
    Dhcp6,
    /// Router advertisements only (also the "stateless" DHCPv6 of network_data.json, where
    /// `dhcp6_stateless` is noted by [`Addressing::Slaac`] with `dhcp6_info: true`).
    Slaac {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dhcp6_info: bool,
    },
    Static {
        address: IpAddr,
        prefix: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gateway: Option<IpAddr>,
    },
}

/// A route: `to` is a CIDR (`0.0.0.0/0`, `10.0.0.0/8`, `::/0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// Routing table (netplan `table`); `None` is the main table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
}

/// A policy routing rule (netplan `routing-policy`): traffic matching `from`/`to` (CIDR or
/// address) is looked up in `table`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub table: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// Name servers and search domains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.search.is_empty()
    }
}

/// Why a link is in the context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkOrigin {
    /// The datasource described it.
    #[default]
    Described,
    /// A host NIC the source did not describe; DHCPv4 by the fallback rule.
    Fallback,
}

/// One network link: a NIC, bond, VLAN or bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The datasource's own id for the link (network_data.json `id`, v1 `name`, v2 key).
    pub id: String,
    /// The interface name to configure: the matched host NIC's name for a physical link, the
    /// id (or `parent.vlan`) for virtual ones. `None` for a physical link that matched no NIC.
    #[serde(default)]
    pub name: Option<String>,
    /// Lower-case, colon separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(flatten)]
    pub kind: LinkKind,
    #[serde(default)]
    pub addressing: Vec<Addressing>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RoutingRule>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    #[serde(default)]
    pub origin: LinkOrigin,
}

impl Link {
    /// A described link with no addressing yet.
    pub fn new(id: impl Into<String>, kind: LinkKind) -> Link {
        Link {
            id: id.into(),
            name: None,
            mac: None,
            mtu: None,
            kind,
            addressing: Vec::new(),
            routes: Vec::new(),
            rules: Vec::new(),
            dns: Dns::default(),
            origin: LinkOrigin::Described,
        }
    }
}

/// The network as the datasource describes it, after matching to host NICs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    #[serde(default)]
    pub links: Vec<Link>,
    /// Global name servers and search domains (network_data.json `services`, v1 `nameserver`).
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

/// The whole context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub schema_version: u32,
    /// `None` when only the kernel command line configured the machine.
    pub platform: Option<Platform>,
    pub source: Source,
    pub instance_id: Option<String>,
    pub hostname: Option<String>,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub host_nics: Vec<HostNic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<SecretFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_data: Option<SecretFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_data2: Option<SecretFile>,
    /// Initial password of the default user (OpenStack `admin_pass`, OpenNebula `PASSWORD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretFile>,
    /// Files to place in the booted system (OpenStack `files`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<InjectedFile>,
    /// OpenStack `random_seed`, base64 as given, to be fed to the kernel's pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<String>,
    #[serde(default)]
    pub errors: Vec<Problem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Problem>,
    #[serde(default)]
    pub fallbacks: Vec<Fallback>,
    /// Provider fields no stage needs (availability zone, project id, launch index ...).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// What each boot phase did (`preroot run`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<crate::run::PhaseRecord>,
}

impl Context {
    pub fn new(platform: Option<Platform>, source: Source) -> Context {
        Context {
            schema_version: SCHEMA_VERSION,
            platform,
            source,
            instance_id: None,
            hostname: None,
            ssh_keys: Vec::new(),
            network: Network::default(),
            host_nics: Vec::new(),
            user_data: None,
            vendor_data: None,
            vendor_data2: None,
            password: None,
            files: Vec::new(),
            random_seed: None,
            errors: Vec::new(),
            warnings: Vec::new(),
            fallbacks: Vec::new(),
            extra: serde_json::Map::new(),
            phases: Vec::new(),
        }
    }

    pub fn warn(&mut self, stage: &str, object: &str, message: impl Into<String>) {
        let message = message.into();
        log::warn!("{stage}: {object}: {message}");
        self.warnings.push(Problem {
            stage: stage.into(),
            object: object.into(),
            message,
        });
    }

    pub fn error(&mut self, stage: &str, object: &str, message: impl Into<String>) {
        let message = message.into();
        log::error!("{stage}: {object}: {message}");
        self.errors.push(Problem {
            stage: stage.into(),
            object: object.into(),
            message,
        });
    }

    /// Matches described links to host NICs and applies the DHCP fallback rule. Call once,
    /// after the provider filled `network` and `host_nics` is known.
    ///
    /// - A physical link takes the name of the host NIC with its MAC (case-insensitive); a
    ///   physical link whose MAC matches no NIC keeps `name: None` and is warned about.
    /// - A VLAN without a name becomes `<parent name>.<id>`; a bond or bridge keeps its id.
    /// - If no physical link matched any NIC (including: the source described no network),
    ///   every host NIC gets DHCPv4 (`fallbacks: dhcp4-all-nics`), as glean and cloud-init do.
    /// - Otherwise, with `dhcp_undescribed` (glean's rule, which OpenStack images expect), each
    ///   host NIC the source left undescribed gets a DHCPv4 link with `origin: fallback`,
    ///   recorded as `dhcp4-undescribed-nic`. NoCloud and OpenNebula pass `false`: there, as
    ///   in cloud-init, the network description is authoritative.
    pub fn match_nics(&mut self, dhcp_undescribed: bool) {
        let nics = self.host_nics.clone();
        let mut unmatched = Vec::new();
        for link in &mut self.network.links {
            if link.kind != LinkKind::Physical || link.name.is_some() {
                continue;
            }
            let Some(mac) = link.mac.as_deref() else {
                unmatched.push(link.id.clone());
                continue;
            };
            match nics.iter().find(|n| n.mac.eq_ignore_ascii_case(mac)) {
                Some(nic) => link.name = Some(nic.name.clone()),
                None => unmatched.push(link.id.clone()),
            }
        }
        for id in &unmatched {
            self.warn(
                "network",
                id,
                "physical link matches no NIC on this host; not configured",
            );
        }
        self.name_virtual_links();

        let matched_any = self
            .network
            .links
            .iter()
            .any(|l| l.kind == LinkKind::Physical && l.name.is_some());
        if !matched_any {
            if !nics.is_empty() {
                let why = if self.network.links.is_empty() {
                    "the datasource describes no network"
                } else {
                    "no described link matches a NIC on this host"
                };
                self.fallbacks.push(Fallback {
                    kind: "dhcp4-all-nics".into(),
                    reason: why.into(),
                });
            }
            for nic in &nics {
                self.network.links.push(fallback_link(nic));
            }
            return;
        }
        if !dhcp_undescribed {
            return;
        }
        let mut added = Vec::new();
        for nic in &nics {
            let described = self.network.links.iter().any(|l| {
                l.name.as_deref() == Some(nic.name.as_str())
                    || l.mac
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case(&nic.mac))
            });
            if !described {
                added.push(nic.name.clone());
                self.network.links.push(fallback_link(nic));
            }
        }
        if !added.is_empty() {
            self.fallbacks.push(Fallback {
                kind: "dhcp4-undescribed-nic".into(),
                reason: format!("not described by the datasource: {}", added.join(", ")),
            });
        }
    }

    fn name_virtual_links(&mut self) {
        // VLANs on VLANs are legal, so resolve parents until nothing changes (bounded by the
        // number of links).
        for _ in 0..=self.network.links.len() {
            let names: BTreeMap<String, Option<String>> = self
                .network
                .links
                .iter()
                .map(|l| (l.id.clone(), l.name.clone()))
                .collect();
            let mut changed = false;
            for link in &mut self.network.links {
                if link.name.is_some() {
                    continue;
                }
                match &link.kind {
                    LinkKind::Physical => {}
                    LinkKind::Bond { .. } | LinkKind::Bridge { .. } => {
                        link.name = Some(link.id.clone());
                        changed = true;
                    }
                    LinkKind::Vlan { id, parent } => {
                        if let Some(Some(parent_name)) = names.get(parent) {
                            link.name = Some(format!("{parent_name}.{id}"));
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }
}

fn fallback_link(nic: &HostNic) -> Link {
    let mut link = Link::new(nic.name.clone(), LinkKind::Physical);
    link.name = Some(nic.name.clone());
    link.mac = Some(nic.mac.clone());
    link.addressing.push(Addressing::Dhcp4);
    link.origin = LinkOrigin::Fallback;
    link
}

/// Normalizes a MAC address to lower case with colons; `None` if it is not 6 (or 20, for
/// InfiniBand) hex octets.
pub fn normalize_mac(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let octets: Vec<&str> = raw.split([':', '-']).collect();
    if !(octets.len() == 6 || octets.len() == 20) {
        return None;
    }
    if !octets
        .iter()
        .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(octets.join(":").to_ascii_lowercase())
}

/// The kernel's name for a bonding mode given as a name or a number (network_data.json
/// writes `"4"`, netplan `802.3ad`); `None` if unknown.
pub fn bond_mode_name(raw: &str) -> Option<&'static str> {
    const MODES: [&str; 7] = [
        "balance-rr",
        "active-backup",
        "balance-xor",
        "broadcast",
        "802.3ad",
        "balance-tlb",
        "balance-alb",
    ];
    let raw = raw.trim();
    if let Ok(n) = raw.parse::<usize>() {
        return MODES.get(n).copied();
    }
    MODES.iter().copied().find(|m| m.eq_ignore_ascii_case(raw))
}

/// Longest hostname we accept: the DNS limit for a fully qualified name.
pub const HOSTNAME_MAX: usize = 253;

/// Checks a hostname (or FQDN) from metadata: labels of letters, digits, hyphens and
/// underscores, 1..=63 bytes each, not starting or ending with a hyphen, at most
/// [`HOSTNAME_MAX`] bytes in all. A trailing dot is dropped. Returns the name in lower case.
///
/// Underscores are outside RFC 1123 but common in real instance names (OpenStack and KubeVirt
/// pass display names such as `test_instance-kubevirt` through), so the context keeps them;
/// the renderer, which writes `/etc/hostname`, applies the stricter rule of the target system.
/// Anything else (spaces, control characters, `/`, over-long names) is refused here.
pub fn validate_hostname(raw: &str) -> Result<String, String> {
    let name = raw.trim().strip_suffix('.').unwrap_or(raw.trim());
    if name.is_empty() {
        return Err("empty hostname".into());
    }
    if name.len() > HOSTNAME_MAX {
        return Err(format!(
            "hostname is {} bytes, more than {HOSTNAME_MAX}",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("hostname label {label:?} is not 1 to 63 bytes"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "hostname label {label:?} starts or ends with a hyphen"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "hostname label {label:?} has characters other than letters, digits, '-' and '_'"
            ));
        }
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(name: &str, mac: &str) -> HostNic {
        HostNic {
            name: name.into(),
            mac: mac.into(),
        }
    }

    fn src() -> Source {
        Source {
            kind: SourceKind::ConfigDrive,
            medium: Medium::Directory,
            location: "/x".into(),
            partition_of: None,
        }
    }

    #[test]
    fn payload_types() {
        let cases: &[(&[u8], PayloadType)] = &[
            (b"", PayloadType::Empty),
            (b"  \n", PayloadType::Empty),
            (b"#!/bin/sh\n", PayloadType::Script),
            (b"#cloud-config\n", PayloadType::CloudConfig),
            (b"#Cloud-Config\n", PayloadType::CloudConfig),
            (b"#cloud-boothook\n", PayloadType::CloudBoothook),
            (b"#include\nhttp://x\n", PayloadType::Include),
            (b"Content-Type: multipart/mixed", PayloadType::Mime),
            (b"MIME-Version: 1.0\n", PayloadType::Mime),
            (b"\x1f\x8b\x08", PayloadType::Gzip),
            (b"{\"a\":1}", PayloadType::Json),
            (b"hello", PayloadType::Other),
        ];
        for (data, want) in cases {
            assert_eq!(detect_payload_type(data), *want, "case {data:?}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            normalize_mac("FA:16:3E:00:00:01").as_deref(),
            Some("fa:16:3e:00:00:01")
        );
        assert_eq!(
            normalize_mac("fa-16-3e-00-00-01\n").as_deref(),
            Some("fa:16:3e:00:00:01")
        );
        assert_eq!(normalize_mac("fa:16:3e:00:00"), None);
        assert_eq!(normalize_mac("fa:16:3e:00:00:0g"), None);
    }

    #[test]
    fn bond_modes() {
        assert_eq!(bond_mode_name("4"), Some("802.3ad"));
        assert_eq!(bond_mode_name("Active-Backup"), Some("active-backup"));
        assert_eq!(bond_mode_name("7"), None);
        assert_eq!(bond_mode_name("lacp"), None);
    }

    #[test]
    fn hostnames() {
        assert_eq!(
            validate_hostname("Foo.Example.com.").as_deref(),
            Ok("foo.example.com")
        );
        assert_eq!(
            validate_hostname("test_instance-kubevirt").as_deref(),
            Ok("test_instance-kubevirt")
        );
        for bad in [
            "",
            "-a",
            "a-",
            "a..b",
            "a b",
            "a/b",
            "a\nb",
            &"a".repeat(64),
            &"a.".repeat(130),
        ] {
            assert!(validate_hostname(bad).is_err(), "case {bad:?}");
        }
    }

    #[test]
    fn match_by_mac_and_name_vlans() {
        let mut ctx = Context::new(Some(Platform::Openstack), src());
        ctx.host_nics = vec![
            nic("ens3", "fa:16:3e:00:00:01"),
            nic("ens4", "fa:16:3e:00:00:02"),
        ];
        let mut eth0 = Link::new("tap0", LinkKind::Physical);
        eth0.mac = Some("FA:16:3E:00:00:01".into());
        let vlan = Link::new(
            "vlan1",
            LinkKind::Vlan {
                id: 602,
                parent: "tap0".into(),
            },
        );
        let mut ghost = Link::new("tap9", LinkKind::Physical);
        ghost.mac = Some("fa:16:3e:00:00:09".into());
        ctx.network.links = vec![vlan, eth0, ghost];
        ctx.match_nics(true);
        let names: Vec<_> = ctx.network.links.iter().map(|l| l.name.clone()).collect();
        assert_eq!(
            names,
            vec![
                Some("ens3.602".into()),
                Some("ens3".into()),
                None,
                Some("ens4".into())
            ]
        );
        assert_eq!(ctx.network.links[3].origin, LinkOrigin::Fallback);
        assert_eq!(ctx.fallbacks[0].kind, "dhcp4-undescribed-nic");
        assert_eq!(ctx.warnings.len(), 1);
    }

    #[test]
    fn no_network_means_dhcp_everywhere() {
        let mut ctx = Context::new(Some(Platform::Openstack), src());
        ctx.host_nics = vec![
            nic("eth0", "00:00:00:00:00:01"),
            nic("eth1", "00:00:00:00:00:02"),
        ];
        ctx.match_nics(false);
        assert_eq!(ctx.network.links.len(), 2);
        assert!(ctx
            .network
            .links
            .iter()
            .all(|l| l.addressing == vec![Addressing::Dhcp4]));
        assert_eq!(ctx.fallbacks[0].kind, "dhcp4-all-nics");
    }

    #[test]
    fn json_shape_round_trips() {
        let mut ctx = Context::new(Some(Platform::Nocloud), src());
        let mut l = Link::new(
            "bond0",
            LinkKind::Bond {
                mode: "802.3ad".into(),
                members: vec!["a".into()],
                options: BTreeMap::new(),
            },
        );
        l.addressing.push(Addressing::Static {
            address: "10.0.0.2".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.0.0.1".parse().unwrap()),
        });
        ctx.network.links.push(l);
        let mut v = Link::new(
            "v40",
            LinkKind::Vlan {
                id: 40,
                parent: "bond0".into(),
            },
        );
        v.addressing.push(Addressing::Slaac { dhcp6_info: true });
        ctx.network.links.push(v);
        ctx.network.links.push(Link::new(
            "br0",
            LinkKind::Bridge {
                members: vec!["a".into()],
                options: BTreeMap::from([("stp".to_string(), "false".to_string())]),
            },
        ));
        ctx.network
            .links
            .push(Link::new("eth0", LinkKind::Physical));
        let text = serde_json::to_string(&ctx).unwrap();
        assert!(
            text.contains(r#""id":"v40","name":null,"type":"vlan","vlan_id":40"#),
            "{text}"
        );
        assert!(text.contains(r#""type":"bond","mode":"802.3ad""#), "{text}");
        assert!(text.contains(r#""method":"static""#), "{text}");
        let back: Context = serde_json::from_str(&text).unwrap();
        assert_eq!(back, ctx);
    }
}
