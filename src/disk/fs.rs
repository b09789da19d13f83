//! Growing a mounted root filesystem to fill its device: ext4 (`EXT4_IOC_RESIZE_FS`, needs
//! CAP_SYS_RESOURCE) and xfs (`XFS_IOC_FSGROWFSDATA`, needs CAP_SYS_ADMIN), online, on the
//! mount point; btrfs in [`super::btrfs`]. Other filesystems are skipped, with the reason in
//! the report.
//!
//! Also the superblock probes that find a device by filesystem `UUID=`/`LABEL=` when udev's
//! `/dev/disk/by-*` links are missing. Superblock layouts: Linux
//! `Documentation/filesystems/ext4/super.rst` (at byte 1024, little endian),
//! `fs/xfs/libxfs/xfs_format.h` (`xfs_dsb` at byte 0, big endian) and btrfs's (at 64 KiB,
//! [`super::btrfs::superblock`]).
//!
//! Panic contract: the parsers here never panic on any input.

use super::{gerr, Action, BlockDev, ErrorKind, GrowError, Options, Status};
use crate::root::Root;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};

/// An ext4 superblock's size facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ext4 {
    pub block_size: u64,
    pub blocks: u64,
    /// The `64bit` feature: more than 2^32 blocks possible.
    pub is_64bit: bool,
}

/// Parses the ext2/3/4 superblock in the first 2 KiB+ of a device.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn ext4_superblock(buf: &[u8]) -> Option<Ext4> {
    let sb = buf.get(1024..1024 + 0x160)?;
    if sb.get(0x38..0x3A)? != [0x53, 0xEF] {
        return None;
    }
    let u32_at = |o: usize| crate::bytes::le_u32(sb, o);
    let log = u32_at(0x18)?;
    if log > 6 {
        return None;
    }
    let block_size = 1024u64.checked_shl(log)?;
    let is_64bit = u32_at(0x60)? & 0x80 != 0;
    let hi = if is_64bit {
        u64::from(u32_at(0x150)?)
    } else {
        0
    };
    let blocks = (hi << 32) | u64::from(u32_at(0x4)?);
    Some(Ext4 {
        block_size,
        blocks,
        is_64bit,
    })
}

/// How much of a device [`fs_ids`] looks at: up to the end of btrfs's superblock.
pub const IDS_LEN: usize = 65536 + 4096;

/// (UUID as text, label) of an ext4, xfs or btrfs superblock; `buf` is the device's first
/// bytes (btrfs needs [`IDS_LEN`], the others 4 KiB).
pub fn fs_ids(buf: &[u8]) -> Option<(String, String)> {
    let text = |b: &[u8]| {
        let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(b.get(..end).unwrap_or(b)).into_owned()
    };
    let (uuid, label) = if ext4_superblock(buf).is_some() {
        (
            buf.get(1024 + 0x68..1024 + 0x78)?,
            buf.get(1024 + 0x78..1024 + 0x88)?,
        )
    } else if buf.get(..4)? == b"XFSB" {
        (buf.get(32..48)?, buf.get(108..120)?)
    } else if let Some(sb) = buf.get(65536..IDS_LEN).and_then(super::btrfs::superblock) {
        return Some((super::btrfs::uuid_text(&sb.fsid), text(sb.label)));
    } else {
        return None;
    };
    let mut u = String::new();
    for (i, b) in uuid.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            u.push('-');
        }
        u.push_str(&format!("{b:02x}"));
    }
    Some((u, text(label)))
}

/// Finds the block device whose ext4/xfs UUID (or label) is `value`.
pub fn find_by_id(root: &Root, uuid: bool, value: &str) -> Option<BlockDev> {
    let dir = std::fs::read_dir(root.join("sys/class/block")).ok()?;
    let names: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    for name in names {
        let sys = root.join(format!("sys/class/block/{name}"));
        let Ok(sys) = sys.canonicalize() else {
            continue;
        };
        let dev = BlockDev { name, sys };
        let Ok(f) = File::open(dev.node(root)) else {
            continue;
        };
        // As much as the device has, up to btrfs's superblock (a small device still has an
        // ext4 or xfs superblock in its first 4 KiB).
        let mut buf = vec![0u8; IDS_LEN];
        let mut got = 0usize;
        while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
            match f.read_at(rest, got as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => got = got.saturating_add(n),
            }
        }
        buf.truncate(got);
        if got < 4096 {
            continue;
        }
        if let Some((u, l)) = fs_ids(&buf) {
            if (uuid && u.eq_ignore_ascii_case(value)) || (!uuid && l == value) {
                return Some(dev);
            }
        }
    }
    None
}

/// One line of `/proc/self/mountinfo`: (`MAJ:MIN`, mount point, fstype, per-mount options,
/// whether the filesystem itself (the superblock) is read-only).
pub fn mountinfo_line(line: &str) -> Option<(String, String, String, String, bool)> {
    let mut f = line.split(' ');
    let devnum = f.nth(2)?.to_string();
    let mountpoint = unescape(f.nth(1)?);
    let options = f.next()?.to_string();
    let (_, after) = line.split_once(" - ")?;
    let mut g = after.split(' ');
    let fstype = g.next()?.to_string();
    let super_ro = g.nth(1).is_some_and(|o| o.split(',').any(|x| x == "ro"));
    Some((devnum, mountpoint, fstype, options, super_ro))
}

/// The remounts around a resize of a read-only mount: (flags for rw, flags to restore), both
/// to be or-ed with `MS_REMOUNT`; `None` when the mount is writable. When only the mount is
/// read-only (a read-only bind, as ostree makes), the restore is a bind remount, which leaves
/// the filesystem itself read-write as it was.
pub fn remount_flags(options: &str, super_ro: bool) -> Option<(libc::c_ulong, libc::c_ulong)> {
    let (ro, flags) = mount_flags(options);
    if !ro && !super_ro {
        return None;
    }
    let restore = if super_ro {
        flags | libc::MS_RDONLY
    } else {
        flags | libc::MS_BIND | libc::MS_RDONLY
    };
    Some((flags, restore))
}

/// Per-mount options (`ro,nosuid,relatime`) as (read-only?, the other `MS_*` flags), so a
/// remount can keep them: `MS_REMOUNT` resets every flag it is not given.
pub fn mount_flags(options: &str) -> (bool, libc::c_ulong) {
    let mut ro = false;
    let mut flags: libc::c_ulong = 0;
    for o in options.split(',') {
        flags |= match o {
            "ro" => {
                ro = true;
                0
            }
            "nosuid" => libc::MS_NOSUID,
            "nodev" => libc::MS_NODEV,
            "noexec" => libc::MS_NOEXEC,
            "noatime" => libc::MS_NOATIME,
            "nodiratime" => libc::MS_NODIRATIME,
            "relatime" => libc::MS_RELATIME,
            "strictatime" => libc::MS_STRICTATIME,
            "sync" => libc::MS_SYNCHRONOUS,
            "dirsync" => libc::MS_DIRSYNC,
            "lazytime" => libc::MS_LAZYTIME,
            _ => 0,
        };
    }
    (ro, flags)
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0usize;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            if let Some(v) = b
                .get(i.saturating_add(1)..i.saturating_add(4))
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u8::from_str_radix(d, 8).ok())
            {
                out.push(v);
                i = i.saturating_add(4);
                continue;
            }
        }
        out.push(c);
        i = i.saturating_add(1);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A mountinfo line's mount source (the field after the filesystem type: `/dev/vda2`),
/// unescaped.
pub fn mount_source(line: &str) -> Option<String> {
    let (_, after) = line.split_once(" - ")?;
    after.split(' ').nth(1).map(unescape)
}

/// The mount source at `mountpoint`, the topmost mount if stacked.
pub fn source_at(root: &Root, mountpoint: &str) -> Option<String> {
    let text = std::fs::read_to_string(root.join("proc/self/mountinfo")).ok()?;
    text.lines()
        .rfind(|l| mountinfo_line(l).is_some_and(|m| m.1 == mountpoint))
        .and_then(mount_source)
}

/// The mount (devnum, fstype, options) at `mountpoint`, the topmost if stacked.
pub fn mount_at(root: &Root, mountpoint: &str) -> Option<(String, String, String, bool)> {
    let text = std::fs::read_to_string(root.join("proc/self/mountinfo")).ok()?;
    text.lines()
        .filter_map(mountinfo_line)
        .rfind(|(_, m, _, _, _)| m == mountpoint)
        .map(|(d, _, t, o, r)| (d, t, o, r))
}

/// Where the block device `devnum` (`MAJ:MIN`) is mounted (the first mount listed).
pub fn mounted(root: &Root, devnum: &str) -> Option<String> {
    let text = std::fs::read_to_string(root.join("proc/self/mountinfo")).ok()?;
    text.lines()
        .filter_map(mountinfo_line)
        .find(|(d, _, _, _, _)| d == devnum)
        .map(|(_, m, _, _, _)| m)
}

/// Does this process have capability `bit` (in `CapEff`)?
pub fn has_capability(bit: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
        })
        .is_some_and(|caps| caps.checked_shr(bit).is_some_and(|c| c & 1 == 1))
}

/// `CAP_SYS_RESOURCE`, which `EXT4_IOC_RESIZE_FS` needs.
pub const CAP_SYS_RESOURCE: u32 = 24;

/// Grows the filesystem mounted at `mountpoint` (a path as mountinfo shows it, e.g.
/// `/sysroot`; opened under `root`) to fill its device.
pub fn grow(root: &Root, mountpoint: &str, opts: &Options) -> Result<Action, GrowError> {
    let mut a = Action::new("filesystem", mountpoint);
    let (devnum, fstype, options, super_ro) = mount_at(root, mountpoint)
        .ok_or_else(|| gerr(ErrorKind::NotFound, mountpoint, "nothing is mounted there"))?;
    if fstype == "btrfs" {
        // mountinfo names a btrfs by an anonymous device (0:NN), not its block devices.
        let source = source_at(root, mountpoint);
        return super::btrfs::grow(root, mountpoint, &options, super_ro, source, opts);
    }
    a.format = Some(fstype.clone());
    let (major, minor) = devnum
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| gerr(ErrorKind::NotFound, mountpoint, format!("device {devnum}")))?;
    let dev = BlockDev::by_devnum(root, major, minor).ok_or_else(|| {
        gerr(
            ErrorKind::NotFound,
            mountpoint,
            format!("device {devnum} is not a block device"),
        )
    })?;
    a.disk = Some(format!("/dev/{}", dev.name));
    let dev_bytes = dev
        .size_bytes()
        .ok_or_else(|| gerr(ErrorKind::Io, &dev.name, "no size in sysfs"))?;
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root.join(mountpoint))
        .map_err(|e| gerr(ErrorKind::Io, mountpoint, e))?;
    // Both ioctls need a writable mount; the initrd mounts /sysroot read-only when the
    // kernel command line says `ro` (most cloud images): remount it rw for the resize only.
    let remount =
        remount_flags(&options, super_ro).map(|(rw, back)| (root.join(mountpoint), rw, back));
    match fstype.as_str() {
        "ext4" => {
            let node = dev.node(root);
            let f = File::open(&node).map_err(|e| gerr(ErrorKind::Io, node.display(), e))?;
            let mut buf = vec![0u8; 4096];
            f.read_exact_at(&mut buf, 0)
                .map_err(|e| gerr(ErrorKind::Io, node.display(), e))?;
            let sb = ext4_superblock(&buf)
                .ok_or_else(|| gerr(ErrorKind::Invalid, node.display(), "no ext4 superblock"))?;
            let mut new = dev_bytes.checked_div(sb.block_size).unwrap_or(0);
            if !sb.is_64bit {
                new = new.min(u64::from(u32::MAX));
            }
            a.old_size = sb.blocks.saturating_mul(sb.block_size);
            a.new_size = new.max(sb.blocks).saturating_mul(sb.block_size);
            a.steps.push(format!(
                "EXT4_IOC_RESIZE_FS {new} blocks of {}",
                sb.block_size
            ));
            finish(
                &mut a,
                new > sb.blocks,
                opts,
                remount,
                || {
                    crate::sys::ext4_resize(&dir, new)?;
                    let mut buf = vec![0u8; 4096];
                    f.read_exact_at(&mut buf, 0)?;
                    Ok(ext4_superblock(&buf).map(|s| s.blocks.saturating_mul(s.block_size)))
                },
                "EXT4_IOC_RESIZE_FS",
                "CAP_SYS_RESOURCE",
            )
        }
        "xfs" => {
            let (bsize, blocks, imaxpct) = crate::sys::xfs_geometry(&dir).map_err(|e| {
                gerr(
                    ErrorKind::Io,
                    mountpoint,
                    format!("XFS_IOC_FSGEOMETRY: {e}"),
                )
            })?;
            let bsize = u64::from(bsize.max(512));
            let new = dev_bytes.checked_div(bsize).unwrap_or(0);
            a.old_size = blocks.saturating_mul(bsize);
            a.new_size = new.max(blocks).saturating_mul(bsize);
            a.steps
                .push(format!("XFS_IOC_FSGROWFSDATA {new} blocks of {bsize}"));
            finish(
                &mut a,
                new > blocks,
                opts,
                remount,
                || {
                    crate::sys::xfs_grow(&dir, new, imaxpct)?;
                    let (b, n, _) = crate::sys::xfs_geometry(&dir)?;
                    Ok(Some(n.saturating_mul(u64::from(b))))
                },
                "XFS_IOC_FSGROWFSDATA",
                "CAP_SYS_ADMIN",
            )
        }
        other => {
            a.status = Status::Skipped;
            a.steps.clear();
            a.note = Some(format!("{other}: preroot grows ext4, xfs and btrfs only"));
            log::info!("grow: {mountpoint}: {other} is not grown (ext4, xfs and btrfs only)");
            Ok(a)
        }
    }
}

/// The common end of a resize: nothing to do, `--dry-run`, or the remount around `call`
/// (when `remount` says the mount is read-only) and the sizes after it.
pub(super) fn finish(
    a: &mut Action,
    needed: bool,
    opts: &Options,
    remount: Option<(std::path::PathBuf, libc::c_ulong, libc::c_ulong)>,
    // Resizes; returns the size (bytes) the filesystem has afterwards, if it can tell.
    call: impl FnOnce() -> std::io::Result<Option<u64>>,
    ioctl: &str,
    cap: &str,
) -> Result<Action, GrowError> {
    if !needed {
        a.steps.clear();
        a.note = Some("already fills its device".into());
        return Ok(a.clone());
    }
    if let Some((path, _, _)) = &remount {
        a.steps.insert(0, format!("remount {} rw", path.display()));
        a.steps.push(format!("remount {} ro", path.display()));
    }
    if opts.dry_run {
        a.status = Status::Planned;
        return Ok(a.clone());
    }
    if let Some((path, rw, _)) = &remount {
        crate::sys::remount(path, *rw).map_err(|e| {
            gerr(
                ErrorKind::Io,
                &a.device,
                format!("read-only; remount rw: {e}"),
            )
        })?;
    }
    let result = call();
    if let Some((path, _, back)) = &remount {
        if let Err(e) = crate::sys::remount(path, *back) {
            // The resize stands; the booted system remounts as its fstab says anyway.
            log::warn!("grow: {}: remount ro again: {e}", path.display());
            a.note = Some(format!("left read-write: remount ro failed: {e}"));
        }
    }
    let after = result.map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::EPERM) {
            format!(" (needs {cap})")
        } else {
            String::new()
        };
        gerr(ErrorKind::Io, &a.device, format!("{ioctl}: {e}{hint}"))
    })?;
    if let Some(size) = after {
        a.new_size = size;
    }
    if a.new_size == a.old_size {
        // The kernel leaves a remainder too small for another block or allocation group;
        // without this, every boot would "grow" it again.
        a.status = Status::Unchanged;
        a.note = Some("the kernel kept the size: the space left is too small to add".into());
        return Ok(a.clone());
    }
    a.status = Status::Done;
    log::info!("grow: {}: {} -> {} bytes", a.device, a.old_size, a.new_size);
    Ok(a.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo() {
        let l = "36 35 98:0 / /sys\\040root ro,noatime shared:1 - ext4 /dev/vda1 rw";
        assert_eq!(
            mountinfo_line(l),
            Some((
                "98:0".into(),
                "/sys root".into(),
                "ext4".into(),
                "ro,noatime".into(),
                false
            ))
        );
        let l = "36 35 98:0 / /sysroot ro - xfs /dev/mapper/a-root ro,attr2";
        assert_eq!(mountinfo_line(l).map(|m| m.4), Some(true));
        // Writable: no remount. Read-only filesystem: back to ro. Read-only bind of a
        // writable filesystem (ostree): back with a bind remount only.
        assert_eq!(remount_flags("rw,relatime", false), None);
        assert_eq!(
            remount_flags("ro,relatime", true),
            Some((libc::MS_RELATIME, libc::MS_RELATIME | libc::MS_RDONLY))
        );
        assert_eq!(
            remount_flags("ro,nodev", false),
            Some((
                libc::MS_NODEV,
                libc::MS_NODEV | libc::MS_BIND | libc::MS_RDONLY
            ))
        );
        assert_eq!(mount_flags("ro,noatime"), (true, libc::MS_NOATIME));
        assert_eq!(
            mount_flags("rw,nosuid,nodev,relatime,x"),
            (false, libc::MS_NOSUID | libc::MS_NODEV | libc::MS_RELATIME)
        );
        assert_eq!(mountinfo_line("garbage"), None);
        assert_eq!(unescape("a\\04"), "a\\04");
    }

    #[test]
    fn superblocks() {
        let mut b = vec![0u8; 4096];
        assert_eq!(ext4_superblock(&b), None);
        b[1024 + 0x38..1024 + 0x3A].copy_from_slice(&[0x53, 0xEF]);
        b[1024 + 0x18] = 2;
        b[1024 + 4..1024 + 8].copy_from_slice(&1000u32.to_le_bytes());
        b[1024 + 0x150] = 1;
        assert_eq!(
            ext4_superblock(&b),
            Some(Ext4 {
                block_size: 4096,
                blocks: 1000,
                is_64bit: false
            })
        );
        b[1024 + 0x60] = 0x80;
        assert_eq!(ext4_superblock(&b).unwrap().blocks, (1 << 32) + 1000);
        b[1024 + 0x68] = 0xAB;
        b[1024 + 0x78..1024 + 0x7C].copy_from_slice(b"root");
        let (u, l) = fs_ids(&b).unwrap();
        assert_eq!(
            (u.as_str(), l.as_str()),
            ("ab000000-0000-0000-0000-000000000000", "root")
        );
        b[1024 + 0x18] = 200;
        assert_eq!(ext4_superblock(&b), None, "absurd block size");
        assert_eq!(ext4_superblock(&b[..100]), None);
        let mut x = vec![0u8; 512];
        x[..4].copy_from_slice(b"XFSB");
        x[108..112].copy_from_slice(b"boot");
        assert_eq!(fs_ids(&x).unwrap().1, "boot");
    }
}
