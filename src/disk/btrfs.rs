//! Growing a mounted btrfs online, and reading its superblock.
//!
//! Owns: which devices of a mounted btrfs to grow, and growing them with the kernel's
//! `BTRFS_IOC_RESIZE "<devid>:max"` ([`crate::sys::btrfs`]: no `btrfs` binary). A device is
//! grown when its block device is larger than its size in the filesystem (by at least one
//! sector); so in a multi-device btrfs only the device whose partition grew is resized, and a
//! second run finds nothing to do. Mounted with a subvolume (`rootflags=subvol=root`, Fedora
//! Cloud) or not: the ioctls act on the whole filesystem from any of its directories. A
//! read-only mount is remounted read-write for the resize and back, as for ext4 and xfs
//! ([`super::fs`]). Also the superblock reader that finds a btrfs by `UUID=`/`LABEL=` without
//! udev and tells which filesystem and device id a block device holds.
//!
//! Never: shrinks, adds or removes a device, balances, or touches a device that is not
//! larger than its share (a seed device, a device the user left smaller on purpose stays).
//!
//! Crash safety: the kernel grows a device inside one transaction (the device item and the
//! superblock's total size are committed together, copy-on-write, then the superblocks are
//! written), so an interruption leaves the old size or the new one, never a mix; a re-run
//! grows what is still smaller than its device.
//!
//! Spec: the superblock layout of `struct btrfs_super_block` and `struct btrfs_dev_item` in
//! Linux `include/uapi/linux/btrfs_tree.h` (the primary copy at 64 KiB, little endian),
//! <https://btrfs.readthedocs.io/en/latest/dev/On-disk-format.html>.
//!
//! Panic contract: [`superblock`] never panics on any input (`#[no_panic]`) and never
//! allocates.
#![deny(clippy::arithmetic_side_effects)]

use super::fs::{mountinfo_line, remount_flags};
use super::{gerr, Action, BlockDev, ErrorKind, GrowError, Options};
use crate::bytes::{array, le_u32, le_u64};
use crate::root::Root;
use crate::sys::btrfs::{self as ioctl, BtrfsError};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

/// Where the primary superblock is, bytes from the device's start.
pub const SUPER_OFFSET: u64 = 65536;
/// The superblock's size.
pub const SUPER_LEN: usize = 4096;

/// `BTRFS_MAGIC`, "_BHRfS_M", at byte 64 of the superblock.
const MAGIC: &[u8; 8] = b"_BHRfS_M";
const FSID: usize = 32;
const BYTENR: usize = 48;
const MAGIC_AT: usize = 64;
const TOTAL_BYTES: usize = 112;
const NUM_DEVICES: usize = 136;
const SECTORSIZE: usize = 144;
/// `dev_item` (`struct btrfs_dev_item`, 98 bytes) starts at 201: devid, then total_bytes.
const DEV_ITEM_DEVID: usize = 201;
const DEV_ITEM_TOTAL_BYTES: usize = 209;
/// `label[256]` follows `dev_item`.
const LABEL: usize = 299;
const LABEL_LEN: usize = 256;

/// What a device's primary superblock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock<'a> {
    /// The filesystem's UUID (what `UUID=` names).
    pub fsid: [u8; 16],
    /// This device's id in the filesystem.
    pub devid: u64,
    /// This device's size in the filesystem, as last committed.
    pub dev_bytes: u64,
    /// The filesystem's size (all devices), as last committed.
    pub total_bytes: u64,
    pub num_devices: u64,
    pub sectorsize: u32,
    /// The label, up to its first NUL.
    pub label: &'a [u8],
}

/// Parses the 4 KiB primary superblock (read at [`SUPER_OFFSET`]): magic, the copy's own
/// offset (a backup copy read by mistake is refused), a power-of-two sector size of
/// 4 KiB..64 KiB. The checksum is not verified (the kernel does that at mount; this only
/// names the filesystem and the device).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn superblock(sb: &[u8]) -> Option<Superblock<'_>> {
    if array::<8>(sb, MAGIC_AT)? != *MAGIC || le_u64(sb, BYTENR)? != SUPER_OFFSET {
        return None;
    }
    let sectorsize = le_u32(sb, SECTORSIZE)?;
    if !(4096..=65536).contains(&sectorsize) || !sectorsize.is_power_of_two() {
        return None;
    }
    let label = sb.get(LABEL..LABEL.checked_add(LABEL_LEN)?)?;
    let end = label.iter().position(|b| *b == 0).unwrap_or(LABEL_LEN);
    Some(Superblock {
        fsid: array::<16>(sb, FSID)?,
        devid: le_u64(sb, DEV_ITEM_DEVID)?,
        dev_bytes: le_u64(sb, DEV_ITEM_TOTAL_BYTES)?,
        total_bytes: le_u64(sb, TOTAL_BYTES)?,
        num_devices: le_u64(sb, NUM_DEVICES)?,
        sectorsize,
        label: label.get(..end)?,
    })
}

/// A 16-byte UUID as text (`8-4-4-4-12`, lower case).
pub fn uuid_text(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Reads the superblock of the block device `node`; `None` if it holds no btrfs.
pub fn read_superblock(node: &std::path::Path) -> Option<([u8; 16], u64)> {
    let f = File::open(node).ok()?;
    let mut buf = vec![0u8; SUPER_LEN];
    f.read_exact_at(&mut buf, SUPER_OFFSET).ok()?;
    superblock(&buf).map(|s| (s.fsid, s.devid))
}

/// Where the btrfs on block device `dev` is mounted (any of its mounts: the ioctls are
/// filesystem-wide). mountinfo names a btrfs by an anonymous device number, not by its
/// block device, so the mounts' sources are compared by filesystem UUID instead.
pub fn mounted(root: &Root, dev: &BlockDev) -> Option<String> {
    let (fsid, _) = read_superblock(&dev.node(root))?;
    let text = std::fs::read_to_string(root.join("proc/self/mountinfo")).ok()?;
    text.lines().find_map(|line| {
        let (_, mountpoint, fstype, _, _) = mountinfo_line(line)?;
        if fstype != "btrfs" {
            return None;
        }
        let source = super::fs::mount_source(line)?;
        let (other, _) = read_superblock(&root.join(&source))?;
        (other == fsid).then_some(mountpoint)
    })
}

/// One device of the filesystem, before the resize.
#[derive(Debug, Clone)]
struct Device {
    devid: u64,
    /// Its size in the filesystem.
    total_bytes: u64,
    /// Its block device (`/dev/NAME`) and that device's size, if the path resolves.
    block: Option<(String, u64)>,
}

impl Device {
    /// The size a `max` resize gives: the block device's, rounded down to the sector size.
    fn max_bytes(&self, sectorsize: u32) -> Option<u64> {
        let (_, size) = self.block.as_ref()?;
        let rem = size.checked_rem(u64::from(sectorsize))?;
        size.checked_sub(rem)
    }
}

/// The devices of the filesystem `dir` is on: device ids 1..=max_id, skipping removed ids,
/// until `num_devices` are found.
fn devices(root: &Root, dir: &File, info: &ioctl::FsInfo) -> Result<Vec<Device>, BtrfsError> {
    let mut out = Vec::new();
    let mut devid = 1u64;
    while devid <= info.max_id && (out.len() as u64) < info.num_devices {
        match ioctl::dev_info(dir, devid) {
            Ok(d) => {
                let block = (!d.path.is_empty())
                    .then(|| std::fs::metadata(root.join(&d.path)).ok())
                    .flatten()
                    .filter(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
                    .and_then(|m| {
                        let (major, minor) = super::split_dev(m.rdev());
                        let b = BlockDev::by_devnum(root, major, minor)?;
                        Some((format!("/dev/{}", b.name), b.size_bytes()?))
                    });
                out.push(Device {
                    devid,
                    total_bytes: d.total_bytes,
                    block,
                });
            }
            Err(BtrfsError::NoDevice) => {}
            Err(e) => return Err(e),
        }
        devid = devid.saturating_add(1);
    }
    Ok(out)
}

fn sum(devs: &[Device]) -> u64 {
    devs.iter()
        .fold(0u64, |acc, d| acc.saturating_add(d.total_bytes))
}

/// Grows the btrfs mounted at `mountpoint` (a path as mountinfo shows it; opened under
/// `root`): every device whose block device is larger than its size in the filesystem, to
/// that size. `options`/`super_ro`/`source` are the mount's, from mountinfo. The report's
/// sizes are the filesystem's (all devices); its steps name each device resized.
pub fn grow(
    root: &Root,
    mountpoint: &str,
    options: &str,
    super_ro: bool,
    source: Option<String>,
    opts: &Options,
) -> Result<Action, GrowError> {
    let mut a = Action::new("filesystem", mountpoint);
    a.format = Some("btrfs".into());
    a.disk = source;
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root.join(mountpoint))
        .map_err(|e| gerr(ErrorKind::Io, mountpoint, e))?;
    let io = |what: &str, e: BtrfsError| gerr(ErrorKind::Io, mountpoint, format!("{what}: {e}"));
    let info = ioctl::fs_info(&dir).map_err(|e| io("BTRFS_IOC_FS_INFO", e))?;
    let devs = devices(root, &dir, &info).map_err(|e| io("BTRFS_IOC_DEV_INFO", e))?;
    a.old_size = sum(&devs);
    a.new_size = a.old_size;
    let mut targets = Vec::new();
    let mut unresolved = Vec::new();
    for d in &devs {
        match d.max_bytes(info.sectorsize) {
            Some(max) if max > d.total_bytes => {
                let name = d.block.as_ref().map_or("?", |(n, _)| n.as_str());
                a.steps.push(format!(
                    "BTRFS_IOC_RESIZE {}:max ({name}: {} -> {max} bytes)",
                    d.devid, d.total_bytes
                ));
                a.new_size = a.new_size.saturating_add(max.saturating_sub(d.total_bytes));
                targets.push((d.devid, name.to_string()));
            }
            Some(_) => {}
            None => unresolved.push(d.devid),
        }
    }
    if targets.len() == 1 {
        a.disk = targets.first().map(|(_, n)| n.clone());
    }
    let remount =
        remount_flags(options, super_ro).map(|(rw, back)| (root.join(mountpoint), rw, back));
    let mut action = super::fs::finish(
        &mut a,
        !targets.is_empty(),
        opts,
        remount,
        || {
            for (devid, name) in &targets {
                log::info!("grow: btrfs {mountpoint}: BTRFS_IOC_RESIZE {devid}:max ({name})");
                ioctl::resize_max(&dir, *devid)
                    .map_err(|e| std::io::Error::other(format!("device {devid} ({name}): {e}")))?;
                log::info!("grow: btrfs {mountpoint}: device {devid} ({name}) resized to max");
            }
            let after = devices(root, &dir, &info)
                .map_err(|e| std::io::Error::other(format!("BTRFS_IOC_DEV_INFO: {e}")))?;
            Ok(Some(sum(&after)))
        },
        "BTRFS_IOC_RESIZE",
        "CAP_SYS_ADMIN",
    )?;
    if !unresolved.is_empty() && action.note.is_none() {
        // Say so: a device whose path the kernel has but /dev does not cannot be compared.
        action.note = Some(format!(
            "device id(s) {unresolved:?}: no block device at the path the kernel has; not grown"
        ));
    }
    Ok(action)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    /// A superblock as mkfs.btrfs writes it, with the fields this module reads.
    #[allow(clippy::indexing_slicing)]
    fn sb(devid: u64, label: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; SUPER_LEN];
        b[FSID..FSID + 16].copy_from_slice(&[0xab; 16]);
        b[BYTENR..BYTENR + 8].copy_from_slice(&SUPER_OFFSET.to_le_bytes());
        b[MAGIC_AT..MAGIC_AT + 8].copy_from_slice(MAGIC);
        b[TOTAL_BYTES..TOTAL_BYTES + 8].copy_from_slice(&(3u64 << 30).to_le_bytes());
        b[NUM_DEVICES..NUM_DEVICES + 8].copy_from_slice(&2u64.to_le_bytes());
        b[SECTORSIZE..SECTORSIZE + 4].copy_from_slice(&4096u32.to_le_bytes());
        b[DEV_ITEM_DEVID..DEV_ITEM_DEVID + 8].copy_from_slice(&devid.to_le_bytes());
        b[DEV_ITEM_TOTAL_BYTES..DEV_ITEM_TOTAL_BYTES + 8]
            .copy_from_slice(&(1u64 << 30).to_le_bytes());
        b[LABEL..LABEL + label.len()].copy_from_slice(label);
        b
    }

    #[test]
    #[allow(clippy::indexing_slicing)]
    fn superblocks() {
        let good = sb(2, b"fedora");
        let s = superblock(&good).unwrap();
        assert_eq!(
            (
                s.devid,
                s.dev_bytes,
                s.total_bytes,
                s.num_devices,
                s.sectorsize,
                s.label
            ),
            (2, 1 << 30, 3 << 30, 2, 4096, &b"fedora"[..]),
            "case good"
        );
        assert_eq!(
            uuid_text(&s.fsid),
            "abababab-abab-abab-abab-abababababab",
            "case uuid"
        );
        let full_label = sb(1, &[b'x'; 256]);
        assert_eq!(
            superblock(&full_label).unwrap().label.len(),
            256,
            "case 256-byte label"
        );
        for (case, patch) in [
            ("bad magic", (MAGIC_AT, vec![0u8])),
            ("a backup copy (bytenr 64 MiB)", (BYTENR + 3, vec![4u8])),
            (
                "sector size 512",
                (SECTORSIZE, 512u32.to_le_bytes().to_vec()),
            ),
            (
                "sector size 12288",
                (SECTORSIZE, 12288u32.to_le_bytes().to_vec()),
            ),
            (
                "sector size 128 KiB",
                (SECTORSIZE, (128u32 << 10).to_le_bytes().to_vec()),
            ),
        ] {
            let mut b = good.clone();
            b[patch.0..patch.0 + patch.1.len()].copy_from_slice(&patch.1);
            assert_eq!(superblock(&b), None, "case {case}");
        }
        for len in [0, 64, 300, LABEL + LABEL_LEN - 1] {
            assert_eq!(superblock(&good[..len]), None, "case truncated to {len}");
        }
        assert!(
            superblock(&good[..LABEL + LABEL_LEN]).is_some(),
            "case just long enough"
        );
    }

    #[test]
    fn max_bytes_rounds_down() {
        for (case, block, total, want) in [
            ("grown", Some(10 * 4096 + 100), 4096, Some(10 * 4096)),
            ("exact", Some(8192), 8192, Some(8192)),
            ("no block device", None, 4096, None),
        ] {
            let d = Device {
                devid: 1,
                total_bytes: total,
                block: block.map(|b| ("/dev/x".to_string(), b)),
            };
            assert_eq!(d.max_bytes(4096), want, "case {case}");
        }
    }
}
