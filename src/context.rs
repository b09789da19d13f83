//! The context: the one normalized model every datasource fills and every later stage reads.
//!
//! Owns the types and their JSON shape (pinned in `docs/context.md`, `schema_version` 1), the
//! matching of described links to the host's NICs, the DHCP fallback rule, and the check of
//! every network value against `src/valid.rs` where it enters ([`Context::check_values`]: a
//! bad value is dropped with an error, the rest kept). Never reads
//! files or devices: providers fill it, `run`/`context` serialize it to
//! `/run/preroot/context.json`. Secrets (user data, vendor data, passwords) never appear here
//! inline, only as [`SecretFile`] references to 0600 files in the state directory.

pub use crate::media::Access;
pub use crate::mime::{detect_payload_type, PayloadType};
pub use crate::platform::{Platform, SourceKind};
pub use crate::valid::{bond_mode_name, normalize_mac, validate_hostname, HOSTNAME_MAX};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The phases of a boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Fetch,
    Grow,
    Sysroot,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Fetch, Phase::Grow, Phase::Sysroot];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Fetch => "fetch",
            Phase::Grow => "grow",
            Phase::Sysroot => "sysroot",
        }
    }

    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }

    /// `fetch, grow or sysroot`, for messages and help.
    pub fn list() -> String {
        let names: Vec<&str> = Phase::ALL.into_iter().map(Phase::name).collect();
        crate::text::or_list(&names)
    }
}

/// What one phase did, as recorded in the context's `phases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub phase: Phase,
    /// Milliseconds since the kernel started (`/proc/uptime`) when the phase began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    pub duration_ms: u64,
    /// Peak resident set size of the process (`VmHWM`), KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_kib: Option<u64>,
    /// `ok`, or one line on what went wrong (also in `errors`).
    pub outcome: String,
}

/// Bumped on any incompatible change of the JSON shape.
pub const SCHEMA_VERSION: u32 = 1;

/// Where the context came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub kind: SourceKind,
    pub medium: Access,
    /// Device node, image file, directory or base URL.
    pub location: String,
    /// For a medium on a partition (Ironic's `config-2` partition), the whole disk it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<String>,
}

impl Source {
    /// The source of a context the kernel command line alone describes.
    pub fn kernel_cmdline() -> Source {
        Source {
            kind: SourceKind::KernelCmdline,
            medium: Access::Cmdline,
            location: "/proc/cmdline".into(),
            partition_of: None,
        }
    }
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
    /// The platform's name for the default user (Azure's `UserName`): `preroot apply` gives
    /// it `ssh_keys` and `password` instead of preroot.conf's `default_user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
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
    pub phases: Vec<PhaseRecord>,
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
            user: None,
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

    /// Records a warning (and logs it), as one line: a value in `object` or `message` cannot
    /// split it ([`crate::text::one_line`]).
    pub fn warn(&mut self, stage: &str, object: &str, message: impl Into<String>) {
        let message = crate::text::one_line(&message.into());
        let object = &crate::text::one_line(object);
        log::warn!("{stage}: {object}: {message}");
        self.warnings.push(Problem {
            stage: stage.into(),
            object: object.into(),
            message,
        });
    }

    /// Records an error (and logs it), as one line (see [`Context::warn`]).
    pub fn error(&mut self, stage: &str, object: &str, message: impl Into<String>) {
        let message = crate::text::one_line(&message.into());
        let object = &crate::text::one_line(object);
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
    ///
    /// Then every value of the network and the host name is checked ([`Context::check_values`]):
    /// this is where a datasource's values enter the context, whatever the source.
    pub fn match_nics(&mut self, dhcp_undescribed: bool) {
        self.name_and_fall_back(dhcp_undescribed);
        for (object, message) in self.check_values() {
            self.error("network", &object, message);
        }
    }

    fn name_and_fall_back(&mut self, dhcp_undescribed: bool) {
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

    /// Adds what the initramfs's network stage learned of IPv6 (`(NIC name, addressing)`:
    /// the router asked for DHCPv6, or advertised prefixes for SLAAC) to the links the
    /// fallback rule made for those NICs, so the booted system configures IPv6 as the network
    /// offers it. Links the datasource described are left alone: its description is
    /// authoritative. Recorded as one `ipv6-learned` fallback naming the NICs.
    pub fn add_learned_ipv6(&mut self, learned: &[(String, Addressing)]) {
        let mut added = Vec::new();
        for link in &mut self.network.links {
            if link.origin != LinkOrigin::Fallback {
                continue;
            }
            let Some(name) = link.name.as_deref() else {
                continue;
            };
            for (nic, a) in learned.iter().filter(|(n, _)| n == name) {
                if !link.addressing.contains(a) {
                    link.addressing.push(a.clone());
                    added.push(format!(
                        "{nic}: {}",
                        match a {
                            Addressing::Dhcp6 => "DHCPv6 (the router's M flag)",
                            Addressing::Slaac { dhcp6_info: true } => {
                                "SLAAC and DHCPv6 information (the router's O flag)"
                            }
                            _ => "SLAAC (a router advertisement)",
                        }
                    ));
                }
            }
        }
        if !added.is_empty() {
            self.fallbacks.push(Fallback {
                kind: "ipv6-learned".into(),
                reason: format!("learned in the initramfs: {}", added.join(", ")),
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

/// After a cut of `links` (or links refused by [`Context::check_values`]): bond and bridge
/// members that are gone are left out, and a VLAN whose parent is gone is dropped too (and a
/// VLAN on that VLAN, and so on); one line per VLAN dropped.
pub fn drop_dangling(links: &mut Vec<Link>) -> Vec<String> {
    let mut dropped = Vec::new();
    // Each round drops one level of VLANs on VLANs: at most one round per link.
    for _ in 0..=links.len() {
        let ids: Vec<String> = links.iter().map(|l| l.id.clone()).collect();
        let before = dropped.len();
        links.retain_mut(|link| match &mut link.kind {
            LinkKind::Physical => true,
            LinkKind::Bond { members, .. } | LinkKind::Bridge { members, .. } => {
                members.retain(|m| ids.contains(m));
                true
            }
            LinkKind::Vlan { parent, .. } => {
                let keep = ids.contains(parent);
                if !keep {
                    dropped.push(format!(
                        "\"{}\": its parent link \"{}\" is gone; dropped",
                        crate::text::show(&link.id),
                        crate::text::show(parent)
                    ));
                }
                keep
            }
        });
        if dropped.len() == before {
            break;
        }
    }
    dropped
}

fn fallback_link(nic: &HostNic) -> Link {
    let mut link = Link::new(nic.name.clone(), LinkKind::Physical);
    link.name = Some(nic.name.clone());
    link.mac = Some(nic.mac.clone());
    link.addressing.push(Addressing::Dhcp4);
    link.origin = LinkOrigin::Fallback;
    link
}

/// A value of a link that breaks a rule of [`crate::valid`], found by [`Link::audit`]: what to
/// drop, and the line that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadValue {
    /// The link itself cannot be kept (its name, MAC, bonding mode or VLAN id).
    Link(String),
    Mtu(String),
    BondOption(String, String),
    BridgeOption(String, String),
    /// Index into `addressing`.
    Address(usize, String),
    /// Index into `routes`.
    Route(usize, String),
    /// Index into `rules`.
    Rule(usize, String),
    /// Index into `dns.search`.
    Search(usize, String),
}

impl BadValue {
    /// Why it is refused.
    pub fn message(&self) -> &str {
        match self {
            BadValue::Link(m)
            | BadValue::Mtu(m)
            | BadValue::BondOption(_, m)
            | BadValue::BridgeOption(_, m)
            | BadValue::Address(_, m)
            | BadValue::Route(_, m)
            | BadValue::Rule(_, m)
            | BadValue::Search(_, m) => m,
        }
    }
}

impl Link {
    /// Every value of the link checked against [`crate::valid`]: the name, MAC, MTU, bonding
    /// mode and options, VLAN id, a bridge's `stp`, static prefixes, route and rule ends, the
    /// link's search domains. The one check the context ([`Context::check_values`]) and the
    /// renderers (`render::named_links`) share.
    pub fn audit(&self) -> Vec<BadValue> {
        use crate::valid;
        let mut bad = Vec::new();
        let whole = [
            self.name.as_deref().map(valid::ifname),
            self.mac.as_deref().map(valid::mac),
            match &self.kind {
                LinkKind::Bond { mode, .. } => Some(valid::bond_mode(mode).map(|_| ())),
                LinkKind::Vlan { id, .. } => Some(valid::vlan_id(*id)),
                LinkKind::Physical | LinkKind::Bridge { .. } => None,
            },
        ];
        bad.extend(
            whole
                .into_iter()
                .flatten()
                .filter_map(Result::err)
                .map(BadValue::Link),
        );
        if let Some(Err(e)) = self.mtu.map(valid::mtu) {
            bad.push(BadValue::Mtu(e));
        }
        match &self.kind {
            LinkKind::Bond { options, .. } => {
                for (k, v) in options {
                    if let Err(e) = valid::bond_option(k, v) {
                        bad.push(BadValue::BondOption(k.clone(), e));
                    }
                }
            }
            LinkKind::Bridge { options, .. } => {
                if let Some(Err(e)) = options.get("stp").map(|v| valid::boolean(v)) {
                    bad.push(BadValue::BridgeOption("stp".into(), format!("stp: {e}")));
                }
            }
            LinkKind::Physical | LinkKind::Vlan { .. } => {}
        }
        for (i, a) in self.addressing.iter().enumerate() {
            if let Addressing::Static {
                address, prefix, ..
            } = a
            {
                if let Err(e) = valid::prefix(*address, *prefix) {
                    bad.push(BadValue::Address(i, e));
                }
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if let Err(e) = valid::route_end(&r.to) {
                bad.push(BadValue::Route(i, e));
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let ends = [&rule.from, &rule.to];
            if let Some(e) = ends
                .into_iter()
                .flatten()
                .find_map(|e| valid::route_end(e).err())
            {
                bad.push(BadValue::Rule(i, e));
            }
        }
        for (i, d) in self.dns.search.iter().enumerate() {
            if let Err(e) = valid::search_domain(d) {
                bad.push(BadValue::Search(i, e));
            }
        }
        bad
    }

    /// Drops what [`Link::audit`] finds (and makes a bond's mode the kernel's name). `Err`:
    /// the link itself must go; `Ok`: one line per value dropped.
    fn drop_bad_values(&mut self) -> Result<Vec<String>, String> {
        let bad = self.audit();
        if let Some(BadValue::Link(why)) = bad.iter().find(|b| matches!(b, BadValue::Link(_))) {
            return Err(format!("{why}; the link is not configured"));
        }
        if let LinkKind::Bond { mode, .. } = &mut self.kind {
            if let Some(name) = crate::valid::bond_mode_name(mode) {
                *mode = name.to_string();
            }
        }
        let mut lines = Vec::new();
        // Indexes from the end, so the earlier ones stay right.
        for b in bad.iter().rev() {
            match b {
                BadValue::Link(_) => {}
                BadValue::Mtu(_) => self.mtu = None,
                BadValue::BondOption(k, _) | BadValue::BridgeOption(k, _) => {
                    if let LinkKind::Bond { options, .. } | LinkKind::Bridge { options, .. } =
                        &mut self.kind
                    {
                        options.remove(k);
                    }
                }
                BadValue::Address(i, _) => drop_at(&mut self.addressing, *i),
                BadValue::Route(i, _) => drop_at(&mut self.routes, *i),
                BadValue::Rule(i, _) => drop_at(&mut self.rules, *i),
                BadValue::Search(i, _) => drop_at(&mut self.dns.search, *i),
            }
        }
        lines.extend(bad.iter().map(|b| format!("{}; dropped", b.message())));
        Ok(lines)
    }
}

fn drop_at<T>(items: &mut Vec<T>, i: usize) {
    if i < items.len() {
        items.remove(i);
    }
}

impl Context {
    /// Checks every value of the network and the host name against [`crate::valid`] and
    /// drops each that breaks a rule: a bad search domain, route, rule, address, MTU or bond
    /// option alone; a link whose name, MAC, bonding mode or VLAN id is bad with what
    /// depends on it (a VLAN on it; bonds and bridges lose it as a member). Returns one
    /// (object, message) per value dropped, for the caller to record: the rest of the context
    /// stays usable, so one bad value never makes a later stage write nothing.
    pub fn check_values(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(name) = &self.hostname {
            if let Err(why) = validate_hostname(name) {
                out.push((
                    "hostname".to_string(),
                    format!("\"{}\" refused: {why}; not set", crate::text::show(name)),
                ));
                self.hostname = None;
            }
        }
        let mut dropped_link = false;
        self.network.links.retain_mut(|link| {
            let object = format!("link \"{}\"", crate::text::show(&link.id));
            match link.drop_bad_values() {
                Ok(lines) => {
                    out.extend(lines.into_iter().map(|l| (object.clone(), l)));
                    true
                }
                Err(why) => {
                    out.push((object, why));
                    dropped_link = true;
                    false
                }
            }
        });
        if dropped_link {
            for line in drop_dangling(&mut self.network.links) {
                out.push(("network".to_string(), line));
            }
        }
        let search = std::mem::take(&mut self.network.dns.search);
        for d in search {
            match crate::valid::search_domain(&d) {
                Ok(()) => self.network.dns.search.push(d),
                Err(why) => out.push(("network dns".to_string(), format!("{why}; dropped"))),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_ipv6_goes_to_fallback_links_only() {
        let mut ctx = Context::new(
            None,
            Source {
                kind: SourceKind::MetadataService,
                medium: Access::Http,
                location: "http://[fd00:ec2::254]/".into(),
                partition_of: None,
            },
        );
        let mut described = Link::new("eth1", LinkKind::Physical);
        described.name = Some("eth1".into());
        described.addressing.push(Addressing::Dhcp4);
        ctx.network.links.push(described);
        ctx.host_nics = vec![
            nic("eth0", "52:54:00:00:00:01"),
            nic("eth1", "52:54:00:00:00:02"),
        ];
        ctx.match_nics(true);
        ctx.add_learned_ipv6(&[
            ("eth0".into(), Addressing::Dhcp6),
            ("eth1".into(), Addressing::Slaac { dhcp6_info: false }),
            ("eth9".into(), Addressing::Dhcp6),
        ]);
        let by = |n: &str| {
            ctx.network
                .links
                .iter()
                .find(|l| l.name.as_deref() == Some(n))
                .map(|l| l.addressing.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            by("eth0"),
            [Addressing::Dhcp4, Addressing::Dhcp6],
            "case fallback link"
        );
        assert_eq!(
            by("eth1"),
            [Addressing::Dhcp4],
            "case described link left alone"
        );
        let f = ctx
            .fallbacks
            .iter()
            .find(|f| f.kind == "ipv6-learned")
            .unwrap();
        assert_eq!(
            f.reason,
            "learned in the initramfs: eth0: DHCPv6 (the router's M flag)"
        );
        ctx.add_learned_ipv6(&[("eth0".into(), Addressing::Dhcp6)]);
        assert_eq!(
            ctx.fallbacks
                .iter()
                .filter(|f| f.kind == "ipv6-learned")
                .count(),
            1,
            "case twice: nothing new, no second record"
        );
    }

    fn nic(name: &str, mac: &str) -> HostNic {
        HostNic {
            name: name.into(),
            mac: mac.into(),
        }
    }

    fn src() -> Source {
        Source {
            kind: SourceKind::ConfigDrive,
            medium: Access::Directory,
            location: "/x".into(),
            partition_of: None,
        }
    }

    #[test]
    fn phases() {
        for (name, want) in [
            ("fetch", Some(Phase::Fetch)),
            ("grow", Some(Phase::Grow)),
            ("sysroot", Some(Phase::Sysroot)),
            ("Fetch", None),
            ("", None),
        ] {
            assert_eq!(Phase::from_name(name), want, "case {name:?}");
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
