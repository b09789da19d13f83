//! Platform detection: which cloud or deployer started this machine, and which local medium
//! (if any) carries its data.
//!
//! Order: the kernel command line (`preroot.platform=`, `ds=nocloud`), then local media found
//! by filesystem label (`config-2`, `cidata`, `CONTEXT`: someone attached them on purpose),
//! then DMI strings. Media are found by reading labels from the block devices themselves
//! ([`label`]), so no udev, blkid or mount is needed; a `config-2` *partition* on the root
//! disk (how OpenStack Ironic delivers a config drive to bare metal) counts like a disc.
//!
//! [`decide`] is pure; [`scan_media`] and [`Dmi::read`] do the reading, under a [`Root`].
//! Never mounts, never writes, never touches the network.

pub use crate::media::label;

use crate::cmdline::{Cmdline, PlatformChoice};
use crate::platform::{DmiField, Platform, SourceKind};
use crate::root::Root;
use std::fs;
use std::path::PathBuf;

/// DMI identity strings from `/sys/class/dmi/id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dmi {
    pub sys_vendor: String,
    pub product_name: String,
    pub product_uuid: String,
    pub product_serial: String,
    pub chassis_asset_tag: String,
    pub board_vendor: String,
}

impl Dmi {
    pub fn read(root: &Root) -> Dmi {
        let get = |field: DmiField| {
            root.sys_attr(format!("sys/class/dmi/id/{}", field.file()))
                .unwrap_or_default()
        };
        Dmi {
            sys_vendor: get(DmiField::SysVendor),
            product_name: get(DmiField::ProductName),
            product_uuid: get(DmiField::ProductUuid),
            product_serial: get(DmiField::ProductSerial),
            chassis_asset_tag: get(DmiField::ChassisAssetTag),
            board_vendor: get(DmiField::BoardVendor),
        }
    }

    /// The value of one field.
    pub fn field(&self, field: DmiField) -> &str {
        match field {
            DmiField::SysVendor => &self.sys_vendor,
            DmiField::ProductName => &self.product_name,
            DmiField::ProductUuid => &self.product_uuid,
            DmiField::ProductSerial => &self.product_serial,
            DmiField::ChassisAssetTag => &self.chassis_asset_tag,
            DmiField::BoardVendor => &self.board_vendor,
        }
    }

    /// The platform these strings identify ([`Platform::dmi`], tried in [`Platform::ALL`]
    /// order), and which string said so.
    pub fn classify(&self) -> Option<(Platform, String)> {
        Platform::ALL.into_iter().find_map(|p| {
            p.dmi()
                .iter()
                .find(|s| s.matches(self.field(s.field)))
                .map(|s| (p, s.reason()))
        })
    }
}

/// A block device whose filesystem label names a datasource medium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledDevice {
    pub platform: Platform,
    pub kind: SourceKind,
    /// The device node (under the root).
    pub device: PathBuf,
    /// `/dev/<name>` as the booted system names it, for messages and the context.
    pub name: String,
    /// The whole disk, when the medium is a partition.
    pub partition_of: Option<String>,
    pub label: label::Label,
}

/// Which datasource a label stands for ([`Platform::by_label`]).
pub fn label_platform(label: &str) -> Option<(Platform, SourceKind)> {
    let platform = Platform::by_label(label)?;
    Some((platform, platform.medium()?.kind))
}

/// Device names never probed: floppies (a read can stall for seconds), RAM and zram disks,
/// device-mapper and md (their members are probed instead).
fn skip_device(name: &str) -> bool {
    ["fd", "ram", "zram", "dm-", "md", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Probes every block device in `<root>/sys/class/block` (disks and partitions) for a
/// datasource label, reading `<root>/dev/<name>`. Sorted: whole devices before partitions,
/// then by name, so the result does not depend on directory order.
pub fn scan_media(root: &Root) -> Vec<LabeledDevice> {
    let Ok(entries) = fs::read_dir(root.join("sys/class/block")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if skip_device(&name) {
            continue;
        }
        let sys = format!("sys/class/block/{name}");
        if root.sys_attr(format!("{sys}/size")).as_deref() == Some("0") {
            continue;
        }
        let device = root.join(format!("dev/{name}"));
        let probed = match label::probe_path(&device) {
            Ok(p) => p,
            Err(e) => {
                log::debug!("detect: /dev/{name}: not probed: {e}");
                continue;
            }
        };
        let Some(lbl) = probed else { continue };
        let Some((platform, kind)) = label_platform(&lbl.label) else {
            continue;
        };
        let partition_of = root
            .sys_attr(format!("{sys}/partition"))
            .map(|_| format!("/dev/{}", parent_disk(root, &name)));
        log::info!("detect: /dev/{name} has label {:?}", lbl.label);
        found.push(LabeledDevice {
            platform,
            kind,
            device,
            name: format!("/dev/{name}"),
            partition_of,
            label: lbl,
        });
    }
    found.sort_by(|a, b| {
        (a.partition_of.is_some(), &a.name).cmp(&(b.partition_of.is_some(), &b.name))
    });
    found
}

/// The disk a partition belongs to: the parent directory of its sysfs entry, else the name
/// without the partition number (`vda3` → `vda`, `nvme0n1p2` → `nvme0n1`).
fn parent_disk(root: &Root, part: &str) -> String {
    if let Ok(target) = fs::read_link(root.join(format!("sys/class/block/{part}"))) {
        if let Some(parent) = target
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
        {
            if parent != "block" {
                return parent.to_string();
            }
        }
    }
    let stem = part.trim_end_matches(|c: char| c.is_ascii_digit());
    let stem = if stem.ends_with('p') && stem.len() > 1 {
        let without = stem.get(..stem.len().saturating_sub(1)).unwrap_or(stem);
        if without.ends_with(|c: char| c.is_ascii_digit()) {
            without
        } else {
            stem
        }
    } else {
        stem
    };
    stem.to_string()
}

/// The outcome of detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detection {
    /// `preroot.platform=none`: configure from the command line only.
    Disabled,
    /// A platform, with the local medium to read if one was found (else its metadata
    /// service), and why.
    Found {
        platform: Platform,
        medium: Option<LabeledDevice>,
        reason: String,
    },
    /// Nothing identified this machine.
    Unknown,
}

/// Decides the platform from what was read. Pure.
///
/// 1. `preroot.platform=` wins; it selects that platform's medium if present.
/// 2. `ds=nocloud…` on the command line: NoCloud (its seed medium if present).
/// 3. A medium with a datasource label (the first in [`scan_media`] order).
/// 4. DMI.
pub fn decide(cmdline: &Cmdline, dmi: &Dmi, media: &[LabeledDevice]) -> Detection {
    let medium_for = |p: Platform| media.iter().find(|m| m.platform == p).cloned();
    match cmdline.platform {
        PlatformChoice::Disabled => return Detection::Disabled,
        PlatformChoice::Platform(platform) => {
            return Detection::Found {
                platform,
                medium: medium_for(platform),
                reason: format!("kernel command line preroot.platform={platform}"),
            }
        }
        PlatformChoice::Detect => {}
    }
    if cmdline.nocloud.is_some() {
        return Detection::Found {
            platform: Platform::Nocloud,
            medium: medium_for(Platform::Nocloud),
            reason: "kernel command line ds=nocloud".into(),
        };
    }
    if let Some(m) = media.first() {
        return Detection::Found {
            platform: m.platform,
            medium: Some(m.clone()),
            reason: format!("{} has label {:?}", m.name, m.label.label),
        };
    }
    match dmi.classify() {
        Some((platform, reason)) => Detection::Found {
            platform,
            medium: None,
            reason,
        },
        None => Detection::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmi(f: impl FnOnce(&mut Dmi)) -> Dmi {
        let mut d = Dmi::default();
        f(&mut d);
        d
    }

    #[test]
    fn dmi_strings() {
        let cases: Vec<(&str, Dmi, Option<Platform>)> = vec![
            (
                "nova",
                dmi(|d| d.product_name = "OpenStack Nova".into()),
                Some(Platform::Openstack),
            ),
            (
                "compute",
                dmi(|d| d.product_name = "OpenStack Compute".into()),
                Some(Platform::Openstack),
            ),
            (
                "otc tag",
                dmi(|d| d.chassis_asset_tag = "OpenTelekomCloud".into()),
                Some(Platform::Openstack),
            ),
            (
                "ec2 vendor",
                dmi(|d| d.sys_vendor = "Amazon EC2".into()),
                Some(Platform::Ec2),
            ),
            (
                "ec2 board",
                dmi(|d| d.board_vendor = "Amazon EC2".into()),
                Some(Platform::Ec2),
            ),
            (
                "ec2 uuid",
                dmi(|d| d.product_uuid = "EC2E1916-9099-7CAF-FD21-012345ABCDEF".into()),
                Some(Platform::Ec2),
            ),
            (
                "gce",
                dmi(|d| d.product_name = "Google Compute Engine".into()),
                Some(Platform::Gce),
            ),
            (
                "nocloud serial",
                dmi(|d| d.product_serial = "ds=nocloud;s=http://10.0.2.2/".into()),
                Some(Platform::Nocloud),
            ),
            (
                "azure asset tag",
                dmi(|d| d.chassis_asset_tag = "7783-7084-3265-9085-8269-3286-77".into()),
                Some(Platform::Azure),
            ),
            (
                "another asset tag",
                dmi(|d| d.chassis_asset_tag = "7783-7084-3265-9085-8269-3286-7".into()),
                None,
            ),
            (
                "qemu",
                dmi(|d| {
                    d.sys_vendor = "QEMU".into();
                    d.product_name = "Standard PC (Q35 + ICH9, 2009)".into()
                }),
                None,
            ),
            ("empty", Dmi::default(), None),
        ];
        for (name, d, want) in cases {
            assert_eq!(d.classify().map(|(p, _)| p), want, "case {name}");
        }
    }

    #[test]
    fn labels() {
        for (l, want) in [
            ("config-2", Some(Platform::Openstack)),
            ("CONFIG-2", Some(Platform::Openstack)),
            ("cidata", Some(Platform::Nocloud)),
            ("CIDATA", Some(Platform::Nocloud)),
            ("CONTEXT", Some(Platform::Opennebula)),
            ("config-3", None),
            ("", None),
        ] {
            assert_eq!(label_platform(l).map(|(p, _)| p), want, "case {l}");
        }
    }

    #[test]
    fn partition_parents() {
        let root = Root::new("/nonexistent");
        for (part, disk) in [
            ("vda3", "vda"),
            ("sda15", "sda"),
            ("nvme0n1p2", "nvme0n1"),
            ("mmcblk0p1", "mmcblk0"),
            ("loop0p2", "loop0"),
        ] {
            assert_eq!(parent_disk(&root, part), disk, "case {part}");
        }
    }

    fn medium(p: Platform, name: &str) -> LabeledDevice {
        LabeledDevice {
            platform: p,
            kind: label_platform(match p {
                Platform::Openstack => "config-2",
                Platform::Nocloud => "cidata",
                _ => "CONTEXT",
            })
            .map(|(_, k)| k)
            .unwrap(),
            device: PathBuf::from(name),
            name: name.into(),
            partition_of: None,
            label: label::Label {
                fs: label::FsType::Iso9660,
                label: "x".into(),
            },
        }
    }

    #[test]
    fn decision_order() {
        let nova = dmi(|d| d.product_name = "OpenStack Nova".into());
        let media = vec![medium(Platform::Nocloud, "/dev/sr0")];
        let c = |s: &str| crate::cmdline::parse(s);

        assert_eq!(
            decide(&c("preroot.platform=none"), &nova, &media),
            Detection::Disabled
        );
        match decide(&c("preroot.platform=ec2"), &nova, &media) {
            Detection::Found {
                platform, medium, ..
            } => {
                assert_eq!(platform, Platform::Ec2);
                assert_eq!(medium, None);
            }
            other => panic!("{other:?}"),
        }
        match decide(&c(""), &nova, &media) {
            Detection::Found {
                platform, medium, ..
            } => {
                assert_eq!(platform, Platform::Nocloud, "a medium beats DMI");
                assert!(medium.is_some());
            }
            other => panic!("{other:?}"),
        }
        match decide(&c(""), &nova, &[]) {
            Detection::Found {
                platform, medium, ..
            } => {
                assert_eq!(platform, Platform::Openstack);
                assert_eq!(medium, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(decide(&c(""), &Dmi::default(), &[]), Detection::Unknown);
    }
}
