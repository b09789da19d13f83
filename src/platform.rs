//! The platforms preroot reads, and everything that differs by platform: its name (on the
//! kernel command line, the CLI and in the context), the local medium its data comes on and
//! that medium's filesystem labels, its DMI signatures, its metadata service's addresses
//! (IPv4 and IPv6) and its other endpoints.
//!
//! Owns these facts as **exhaustive `match`es** on [`Platform`], so that adding a variant makes
//! the compiler point at every method to fill in (and at the two dispatchers that read the
//! data, `providers::read_medium` and `providers::fetch_service`); lists shown to users (error
//! messages, `--help`) are made from [`Platform::ALL`], never typed. How each platform's data
//! is read lives in its provider module (`providers/<name>/`). Pure: no I/O, no parsing beyond
//! names. README "Adding a platform" walks through a new one.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The cloud or deployer that started this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Openstack,
    Ec2,
    Gce,
    Opennebula,
    Nocloud,
    DigitalOcean,
    Hetzner,
    Oracle,
    Vultr,
    Scaleway,
    Alibaba,
    CloudStack,
    Exoscale,
    Azure,
}

/// What kind of datasource a context was read from (the context's `source.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// OpenStack config drive (`config-2`), as a disc, a FAT image or a disk partition.
    ConfigDrive,
    /// NoCloud seed (`cidata`): `meta-data`, `user-data`, `network-config`.
    NocloudSeed,
    /// OpenNebula context medium (`CONTEXT`): `context.sh`.
    OpennebulaContext,
    /// Azure's provisioning medium: `ovf-env.xml` on a UDF (or ISO9660) CD-ROM, read with
    /// the instance metadata service.
    AzureOvf,
    /// An HTTP metadata service (169.254.169.254 and kin).
    MetadataService,
    /// Nothing but the kernel command line (`ip=`, `nameserver=`).
    KernelCmdline,
}

/// The local medium a platform's data comes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediumSpec {
    pub kind: SourceKind,
    /// Filesystem labels that mark it, matched without regard to case (as cloud-init and
    /// glean do). None for a medium found by its content instead (Azure's: the label probe
    /// cannot see UDF's, and the provider looks for `ovf-env.xml`), so detection never waits
    /// for it by label.
    pub labels: &'static [&'static str],
    /// Names `preroot context --from NAME:PATH` takes for it, besides the platform's own.
    pub aliases: &'static [&'static str],
}

/// Where a platform's metadata service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The platform has none; its data comes on a medium only.
    None,
    /// A fixed base URL (overridden by `--metadata-url`), reached by the network stage's race
    /// (DHCPv4 or a static `ip=`, and IPv6 to [`Platform::service_v6`] where there is one).
    At(&'static str),
    /// A fixed base URL reached from an IPv4 link-local address that preroot sets on the
    /// first NIC, not over DHCP (DigitalOcean: the public NIC gets no DHCP).
    LinkLocal(&'static str),
    /// The DHCP server of the lease (option 54) on port 80 (CloudStack's virtual router).
    LeaseServer,
    /// The URL is given at boot: NoCloud-net's `ds=nocloud;s=URL` (or `--metadata-url`).
    FromCmdline,
}

impl Service {
    /// Its fixed base URL, if it has one.
    pub fn url(self) -> Option<&'static str> {
        match self {
            Service::At(url) | Service::LinkLocal(url) => Some(url),
            Service::None | Service::LeaseServer | Service::FromCmdline => None,
        }
    }
}

/// An endpoint of a platform besides its metadata base URL (a password server, a wire
/// server), overridden with `--endpoint NAME=URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointSpec {
    /// The `NAME` of `--endpoint NAME=URL`.
    pub name: &'static str,
    /// Where it is by default, in words (`port 8080 of the metadata address`).
    pub default: &'static str,
}

/// A DMI field under `/sys/class/dmi/id/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmiField {
    SysVendor,
    ProductName,
    ProductUuid,
    ProductSerial,
    ChassisAssetTag,
    BoardVendor,
}

impl DmiField {
    /// The sysfs file name (`sys_vendor`).
    pub fn file(self) -> &'static str {
        match self {
            DmiField::SysVendor => "sys_vendor",
            DmiField::ProductName => "product_name",
            DmiField::ProductUuid => "product_uuid",
            DmiField::ProductSerial => "product_serial",
            DmiField::ChassisAssetTag => "chassis_asset_tag",
            DmiField::BoardVendor => "board_vendor",
        }
    }
}

/// How a DMI field's value is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmiTest {
    Equals(&'static str),
    StartsWith(&'static str),
    /// A prefix compared without regard to ASCII case.
    StartsWithNoCase(&'static str),
}

/// One DMI signature: `field` passes `test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmiSignature {
    pub field: DmiField,
    pub test: DmiTest,
}

impl DmiSignature {
    const fn is(field: DmiField, value: &'static str) -> DmiSignature {
        DmiSignature {
            field,
            test: DmiTest::Equals(value),
        }
    }

    /// Does `value` (the field's content, trimmed) pass?
    pub fn matches(&self, value: &str) -> bool {
        match self.test {
            DmiTest::Equals(want) => value == want,
            DmiTest::StartsWith(prefix) => value.starts_with(prefix),
            DmiTest::StartsWithNoCase(prefix) => value
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
        }
    }

    /// Why it matched, for the context's `detected_by` (`DMI sys_vendor "Amazon EC2"`).
    pub fn reason(&self) -> String {
        match self.test {
            DmiTest::Equals(want) => format!("DMI {} {want:?}", self.field.file()),
            DmiTest::StartsWith(p) | DmiTest::StartsWithNoCase(p) => {
                format!("DMI {} starts with {p:?}", self.field.file())
            }
        }
    }
}

impl Platform {
    /// Every platform, in the order DMI signatures are tried (a NoCloud serial set on purpose
    /// beats the hypervisor's own strings) and listed to users.
    pub const ALL: [Platform; 14] = [
        Platform::Nocloud,
        Platform::Openstack,
        Platform::Ec2,
        Platform::Gce,
        Platform::Opennebula,
        Platform::Azure,
        Platform::DigitalOcean,
        Platform::Hetzner,
        Platform::Oracle,
        Platform::Vultr,
        Platform::Scaleway,
        Platform::Alibaba,
        Platform::CloudStack,
        Platform::Exoscale,
    ];

    /// The platform after `p` in [`Platform::ALL`] (`None`: the first; after the last,
    /// `None`). Exhaustive on purpose: a new variant must be placed here, and the test
    /// `all_lists_every_variant` then fails until [`Platform::ALL`] has it too.
    pub const fn after(p: Option<Platform>) -> Option<Platform> {
        match p {
            None => Some(Platform::Nocloud),
            Some(Platform::Nocloud) => Some(Platform::Openstack),
            Some(Platform::Openstack) => Some(Platform::Ec2),
            Some(Platform::Ec2) => Some(Platform::Gce),
            Some(Platform::Gce) => Some(Platform::Opennebula),
            Some(Platform::Opennebula) => Some(Platform::Azure),
            Some(Platform::Azure) => Some(Platform::DigitalOcean),
            Some(Platform::DigitalOcean) => Some(Platform::Hetzner),
            Some(Platform::Hetzner) => Some(Platform::Oracle),
            Some(Platform::Oracle) => Some(Platform::Vultr),
            Some(Platform::Vultr) => Some(Platform::Scaleway),
            Some(Platform::Scaleway) => Some(Platform::Alibaba),
            Some(Platform::Alibaba) => Some(Platform::CloudStack),
            Some(Platform::CloudStack) => Some(Platform::Exoscale),
            Some(Platform::Exoscale) => None,
        }
    }

    /// The name on the kernel command line (`preroot.platform=`), the CLI (`--platform`,
    /// `--from`) and in the context.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Openstack => "openstack",
            Platform::Ec2 => "ec2",
            Platform::Gce => "gce",
            Platform::Opennebula => "opennebula",
            Platform::Nocloud => "nocloud",
            Platform::DigitalOcean => "digitalocean",
            Platform::Hetzner => "hetzner",
            Platform::Oracle => "oracle",
            Platform::Vultr => "vultr",
            Platform::Scaleway => "scaleway",
            Platform::Alibaba => "alibaba",
            Platform::CloudStack => "cloudstack",
            Platform::Exoscale => "exoscale",
            Platform::Azure => "azure",
        }
    }

    /// What it is, in a few words (`--help`, man pages).
    pub fn title(self) -> &'static str {
        match self {
            Platform::Openstack => "OpenStack (config drive, or the metadata service)",
            Platform::Ec2 => "Amazon EC2 (IMDSv2)",
            Platform::Gce => "Google Compute Engine",
            Platform::Opennebula => "OpenNebula (CONTEXT medium)",
            Platform::Nocloud => "NoCloud (cidata seed, or NoCloud-net from ds=nocloud;s=URL)",
            Platform::DigitalOcean => "DigitalOcean (v1.json over an IPv4 link-local address)",
            Platform::Hetzner => "Hetzner Cloud (YAML metadata, network-config v1)",
            Platform::Oracle => "Oracle Cloud Infrastructure (IMDS v2)",
            Platform::Vultr => "Vultr (v1.json)",
            Platform::Scaleway => "Scaleway (user data from a privileged source port)",
            Platform::Alibaba => "Alibaba Cloud ECS (Aliyun, EC2-shaped with its own token)",
            Platform::CloudStack => "Apache CloudStack (the DHCP server, and its password server)",
            Platform::Exoscale => "Exoscale (CloudStack-shaped, API 1.0, password server)",
            Platform::Azure => {
                "Microsoft Azure (ovf-env.xml provisioning medium, IMDS, the wire server's ready report)"
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The local medium its data comes on, if any.
    pub fn medium(self) -> Option<MediumSpec> {
        match self {
            Platform::Openstack => Some(MediumSpec {
                kind: SourceKind::ConfigDrive,
                labels: &["config-2"],
                aliases: &["configdrive", "config-drive"],
            }),
            Platform::Nocloud => Some(MediumSpec {
                kind: SourceKind::NocloudSeed,
                labels: &["cidata"],
                aliases: &[],
            }),
            Platform::Opennebula => Some(MediumSpec {
                kind: SourceKind::OpennebulaContext,
                labels: &["CONTEXT"],
                aliases: &[],
            }),
            Platform::Azure => Some(MediumSpec {
                kind: SourceKind::AzureOvf,
                labels: &[],
                aliases: &[],
            }),
            Platform::Ec2
            | Platform::Gce
            | Platform::DigitalOcean
            | Platform::Hetzner
            | Platform::Oracle
            | Platform::Vultr
            | Platform::Scaleway
            | Platform::Alibaba
            | Platform::CloudStack
            | Platform::Exoscale => None,
        }
    }

    /// Its metadata service.
    pub fn service(self) -> Service {
        match self {
            Platform::Openstack
            | Platform::Ec2
            | Platform::Hetzner
            | Platform::Oracle
            | Platform::Azure
            | Platform::Vultr
            | Platform::Exoscale => Service::At("http://169.254.169.254/"),
            Platform::Gce => Service::At("http://metadata.google.internal/"),
            Platform::DigitalOcean => Service::LinkLocal("http://169.254.169.254/"),
            Platform::Scaleway => Service::At("http://169.254.42.42/"),
            Platform::Alibaba => Service::At("http://100.100.100.200/"),
            Platform::CloudStack => Service::LeaseServer,
            Platform::Nocloud => Service::FromCmdline,
            Platform::Opennebula => Service::None,
        }
    }

    /// Its metadata service's IPv6 address, raced with the IPv4 one by the network stage
    /// (README, "Network stage"): EC2's `[fd00:ec2::254]` (Nitro instances, when the
    /// instance's IPv6 endpoint is enabled), GCE's `[fd20:ce::254]`, OpenStack's link-local
    /// `[fe80::a9fe:a9fe]` (no zone here: it is tried on every NIC, and the one that answers
    /// becomes the URL's zone, `%25eth0`). The path is the IPv4 service's.
    pub fn service_v6(self) -> Option<&'static str> {
        match self {
            Platform::Openstack => Some("http://[fe80::a9fe:a9fe]/"),
            Platform::Ec2 => Some("http://[fd00:ec2::254]/"),
            Platform::Gce => Some("http://[fd20:ce::254]/"),
            // The platforms of issue 20 are reached over IPv4 only for now: DigitalOcean from
            // a link-local IPv4 address (`net/linklocal.rs`), CloudStack at each lease's DHCP
            // server; an IPv6 service address of the others is not added until tested.
            Platform::DigitalOcean
            | Platform::Hetzner
            | Platform::Oracle
            | Platform::Vultr
            | Platform::Scaleway
            | Platform::Alibaba
            | Platform::CloudStack
            | Platform::Exoscale => None,
            // Azure's IMDS and wire server answer over IPv4 only.
            Platform::Azure => None,
            Platform::Opennebula | Platform::Nocloud => None,
        }
    }

    /// The DMI strings the platform sets (those cloud-init's `ds-identify` checks): OpenStack
    /// Nova's product name (vendor `OpenStack Foundation`), or only an asset tag on some
    /// OpenStack clouds; EC2's vendor or board vendor, or on older Xen instances only a
    /// product UUID starting with `ec2`; GCE's product name or vendor; NoCloud selected by an
    /// SMBIOS serial `ds=nocloud…` (QEMU `-smbios type=1,serial=…`); Azure's chassis asset
    /// tag (Hyper-V sets it on every Azure VM; QEMU `-smbios type=3,asset=…`). OpenNebula
    /// sets none. The platforms of issue 20 as cloud-init's `ds-identify` and datasources
    /// check them (docs/platforms-notes.md): DigitalOcean, Hetzner, Vultr and Scaleway by
    /// vendor, Oracle by asset tag, Alibaba by product name, CloudStack and Exoscale by a
    /// product name prefix (KVM hosts show `CloudStack KVM Hypervisor`).
    pub fn dmi(self) -> &'static [DmiSignature] {
        use DmiField::*;
        const OPENSTACK: &[DmiSignature] = &[
            DmiSignature::is(ProductName, "OpenStack Nova"),
            DmiSignature::is(ProductName, "OpenStack Compute"),
            DmiSignature::is(SysVendor, "OpenStack Foundation"),
            DmiSignature::is(ChassisAssetTag, "OpenTelekomCloud"),
            DmiSignature::is(ChassisAssetTag, "SAP CCloud VM"),
            DmiSignature::is(ChassisAssetTag, "HUAWEICLOUD"),
            DmiSignature::is(ChassisAssetTag, "Samsung Cloud Platform"),
        ];
        const EC2: &[DmiSignature] = &[
            DmiSignature::is(SysVendor, "Amazon EC2"),
            DmiSignature::is(BoardVendor, "Amazon EC2"),
            DmiSignature {
                field: ProductUuid,
                test: DmiTest::StartsWithNoCase("ec2"),
            },
        ];
        const GCE: &[DmiSignature] = &[
            DmiSignature::is(ProductName, "Google Compute Engine"),
            DmiSignature::is(SysVendor, "Google"),
        ];
        const NOCLOUD: &[DmiSignature] = &[DmiSignature {
            field: ProductSerial,
            test: DmiTest::StartsWith("ds=nocloud"),
        }];
        const DIGITALOCEAN: &[DmiSignature] = &[DmiSignature::is(SysVendor, "DigitalOcean")];
        const HETZNER: &[DmiSignature] = &[DmiSignature::is(SysVendor, "Hetzner")];
        const ORACLE: &[DmiSignature] = &[DmiSignature::is(ChassisAssetTag, "OracleCloud.com")];
        const VULTR: &[DmiSignature] = &[DmiSignature::is(SysVendor, "Vultr")];
        const SCALEWAY: &[DmiSignature] = &[DmiSignature::is(SysVendor, "Scaleway")];
        const ALIBABA: &[DmiSignature] = &[DmiSignature::is(ProductName, "Alibaba Cloud ECS")];
        const CLOUDSTACK: &[DmiSignature] = &[DmiSignature {
            field: ProductName,
            test: DmiTest::StartsWith("CloudStack"),
        }];
        const EXOSCALE: &[DmiSignature] = &[DmiSignature {
            field: ProductName,
            test: DmiTest::StartsWith("Exoscale"),
        }];
        const AZURE: &[DmiSignature] = &[DmiSignature::is(
            ChassisAssetTag,
            "7783-7084-3265-9085-8269-3286-77",
        )];
        match self {
            Platform::Openstack => OPENSTACK,
            Platform::Ec2 => EC2,
            Platform::Gce => GCE,
            Platform::Nocloud => NOCLOUD,
            Platform::Azure => AZURE,
            Platform::Opennebula => &[],
            Platform::DigitalOcean => DIGITALOCEAN,
            Platform::Hetzner => HETZNER,
            Platform::Oracle => ORACLE,
            Platform::Vultr => VULTR,
            Platform::Scaleway => SCALEWAY,
            Platform::Alibaba => ALIBABA,
            Platform::CloudStack => CLOUDSTACK,
            Platform::Exoscale => EXOSCALE,
        }
    }

    /// Its endpoints besides the metadata base URL, each with its own override
    /// (`--endpoint NAME=URL`), so that a test never sends a packet to a platform address.
    pub fn endpoints(self) -> &'static [EndpointSpec] {
        const PASSWORD: EndpointSpec = EndpointSpec {
            name: "password",
            default: "port 8080 of the metadata service's address",
        };
        const WIRESERVER: EndpointSpec = EndpointSpec {
            name: "wireserver",
            default: "DHCP option 245's address, else 168.63.129.16",
        };
        match self {
            Platform::CloudStack | Platform::Exoscale => &[PASSWORD],
            Platform::Azure => &[WIRESERVER],
            Platform::Openstack
            | Platform::Ec2
            | Platform::Gce
            | Platform::Opennebula
            | Platform::Nocloud
            | Platform::DigitalOcean
            | Platform::Hetzner
            | Platform::Oracle
            | Platform::Vultr
            | Platform::Scaleway
            | Platform::Alibaba => &[],
        }
    }

    /// Does its data come on a local medium?
    pub fn on_medium(self) -> bool {
        self.medium().is_some()
    }

    /// Is its medium found by filesystem label (worth waiting for at boot, until the scan of
    /// labels shows it)?
    pub fn labelled_medium(self) -> bool {
        self.medium().is_some_and(|m| !m.labels.is_empty())
    }

    /// Does it have a metadata service preroot reads?
    pub fn serves(self) -> bool {
        self.service() != Service::None
    }

    /// The platform whose medium has filesystem label `label`, if any.
    pub fn by_label(label: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| {
            p.medium()
                .is_some_and(|m| m.labels.iter().any(|l| l.eq_ignore_ascii_case(label)))
        })
    }

    /// The platform `--from NAME:` names: a platform with a medium, or its medium's alias.
    pub fn by_medium_name(name: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| {
            p.medium()
                .is_some_and(|m| p.name() == name || m.aliases.contains(&name))
        })
    }

    /// `a, b or c` of the platforms `keep` selects, for messages and help.
    pub fn list(keep: impl Fn(Platform) -> bool) -> String {
        let names: Vec<&str> = Platform::ALL
            .into_iter()
            .filter(|p| keep(*p))
            .map(Platform::name)
            .collect();
        crate::text::or_list(&names)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_variant() {
        let mut walked = Vec::new();
        let mut p = Platform::after(None);
        while let Some(q) = p {
            walked.push(q);
            p = Platform::after(Some(q));
        }
        assert_eq!(
            walked,
            Platform::ALL,
            "Platform::ALL and Platform::after disagree"
        );
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for p in Platform::ALL {
            assert_eq!(Platform::from_name(p.name()), Some(p), "case {p}");
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()), "case {p}: JSON name");
        }
        assert_eq!(Platform::from_name("aws"), None);
    }

    #[test]
    fn labels_and_medium_names() {
        for (label, want) in [
            ("config-2", Some(Platform::Openstack)),
            ("CONFIG-2", Some(Platform::Openstack)),
            ("cidata", Some(Platform::Nocloud)),
            ("CONTEXT", Some(Platform::Opennebula)),
            ("context", Some(Platform::Opennebula)),
            ("config-3", None),
            ("", None),
        ] {
            assert_eq!(Platform::by_label(label), want, "case {label:?}");
        }
        for (name, want) in [
            ("configdrive", Some(Platform::Openstack)),
            ("config-drive", Some(Platform::Openstack)),
            ("openstack", Some(Platform::Openstack)),
            ("nocloud", Some(Platform::Nocloud)),
            ("opennebula", Some(Platform::Opennebula)),
            ("azure", Some(Platform::Azure)),
            ("ec2", None),
            ("bogus", None),
        ] {
            assert_eq!(Platform::by_medium_name(name), want, "case {name:?}");
        }
    }

    #[test]
    fn lists_are_made_from_all() {
        assert_eq!(
            Platform::list(Platform::serves),
            "nocloud, openstack, ec2, gce, azure, digitalocean, hetzner, oracle, vultr, \
             scaleway, alibaba, cloudstack or exoscale"
        );
        assert_eq!(
            Platform::list(Platform::labelled_medium),
            "nocloud, openstack or opennebula"
        );
        assert_eq!(Platform::list(|p| p == Platform::Gce), "gce");
        assert_eq!(Platform::list(|_| false), "");
    }

    #[test]
    fn dmi_of_issue_20() {
        use DmiField::*;
        // (field, value, the one platform it names), from docs/platforms-notes.md.
        let cases = [
            (SysVendor, "DigitalOcean", Some(Platform::DigitalOcean)),
            (SysVendor, "Hetzner", Some(Platform::Hetzner)),
            (ChassisAssetTag, "OracleCloud.com", Some(Platform::Oracle)),
            (SysVendor, "Vultr", Some(Platform::Vultr)),
            (SysVendor, "Scaleway", Some(Platform::Scaleway)),
            (ProductName, "Alibaba Cloud ECS", Some(Platform::Alibaba)),
            (
                ProductName,
                "CloudStack KVM Hypervisor",
                Some(Platform::CloudStack),
            ),
            (
                ProductName,
                "Exoscale Compute Platform",
                Some(Platform::Exoscale),
            ),
            (SysVendor, "Hetzner Online GmbH", None),
            (ProductName, "Alibaba Cloud", None),
            (ProductName, "cloudstack", None),
        ];
        for (field, value, want) in cases {
            let got: Vec<Platform> = Platform::ALL
                .into_iter()
                .filter(|p| p.dmi().iter().any(|s| s.field == field && s.matches(value)))
                .collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "case {value:?}");
        }
    }

    #[test]
    fn services_and_endpoints() {
        for (p, url) in [
            (Platform::DigitalOcean, Some("http://169.254.169.254/")),
            (Platform::Scaleway, Some("http://169.254.42.42/")),
            (Platform::Alibaba, Some("http://100.100.100.200/")),
            (Platform::CloudStack, None),
            (Platform::Opennebula, None),
        ] {
            assert_eq!(p.service().url(), url, "case {p}");
        }
        assert_eq!(
            Platform::DigitalOcean.service(),
            Service::LinkLocal("http://169.254.169.254/")
        );
        assert_eq!(Platform::CloudStack.service(), Service::LeaseServer);
        for p in Platform::ALL {
            let names: Vec<&str> = p.endpoints().iter().map(|e| e.name).collect();
            let want: &[&str] = match p {
                Platform::CloudStack | Platform::Exoscale => &["password"],
                Platform::Azure => &["wireserver"],
                _ => &[],
            };
            assert_eq!(names, want, "case {p}");
        }
    }

    #[test]
    fn dmi_signatures() {
        let s = DmiSignature {
            field: DmiField::ProductUuid,
            test: DmiTest::StartsWithNoCase("ec2"),
        };
        assert!(s.matches("EC2E1916-9099"), "upper-case uuid");
        assert!(!s.matches("e"), "shorter than the prefix");
        assert!(!s.matches("ab2c"), "other prefix");
        assert_eq!(s.reason(), "DMI product_uuid starts with \"ec2\"");
    }
}
