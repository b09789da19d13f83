//! The three btrfs ioctls online growth needs: `BTRFS_IOC_FS_INFO` (the filesystem's id,
//! highest device id, sector size), `BTRFS_IOC_DEV_INFO` (one device's size in the filesystem
//! and the path it was scanned by) and `BTRFS_IOC_RESIZE` (`"<devid>:max"`), all on an open
//! file or directory of the mounted filesystem (any subvolume will do: they are
//! filesystem-wide).
//!
//! Owns the structs, mirrored from `include/uapi/linux/btrfs.h` at Linux v6.6
//! (<https://github.com/torvalds/linux/blob/ffc253263a1375a65fa6c9f62a893e9767fbebfa/include/uapi/linux/btrfs.h>),
//! with compile-time size checks, and the meaning of each errno ([`BtrfsError`]). Never
//! shrinks, never adds or removes a device. The `fsid` field of `btrfs_ioctl_dev_info_args`
//! is filled since v6.3 only; it is not read here (the Debian 6.1 kernel leaves it zero).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `BTRFS_IOCTL_MAGIC`.
const MAGIC: u8 = 0x94;
/// `BTRFS_IOC_RESIZE _IOW(0x94, 3, struct btrfs_ioctl_vol_args)`.
const BTRFS_IOC_RESIZE: u32 = super::ioc(super::WRITE, MAGIC, 3, std::mem::size_of::<VolArgs>());
/// `BTRFS_IOC_DEV_INFO _IOWR(0x94, 30, struct btrfs_ioctl_dev_info_args)`.
const BTRFS_IOC_DEV_INFO: u32 = super::ioc(
    super::READ | super::WRITE,
    MAGIC,
    30,
    std::mem::size_of::<DevInfoArgs>(),
);
/// `BTRFS_IOC_FS_INFO _IOR(0x94, 31, struct btrfs_ioctl_fs_info_args)`.
const BTRFS_IOC_FS_INFO: u32 =
    super::ioc(super::READ, MAGIC, 31, std::mem::size_of::<FsInfoArgs>());

/// `BTRFS_ERROR_DEV_EXCL_RUN_IN_PROGRESS` (`enum btrfs_err_code`): the resize ioctl returns
/// this *positive* value when another exclusive operation holds the filesystem.
const BTRFS_ERROR_DEV_EXCL_RUN_IN_PROGRESS: libc::c_int = 8;

/// `struct btrfs_ioctl_vol_args`: `BTRFS_PATH_NAME_MAX` is 4087.
#[repr(C)]
struct VolArgs {
    /// (in) unused by resize.
    fd: i64,
    /// (in) `"[<devid>:]<size>|max"`, NUL-terminated.
    name: [u8; 4088],
}

/// `struct btrfs_ioctl_dev_info_args`.
#[repr(C)]
struct DevInfoArgs {
    /// (in/out) the device id asked for.
    devid: u64,
    /// (in/out) the device's UUID; all zero to look up by `devid` only.
    uuid: [u8; 16],
    /// (out) bytes allocated to chunks on the device.
    bytes_used: u64,
    /// (out) the device's size in the filesystem.
    total_bytes: u64,
    /// (out, v6.3+) the filesystem id the device belongs to (a seed's differs).
    fsid: [u8; 16],
    /// Padding to 4 KiB.
    unused: [u64; 377],
    /// (out) the path the device was scanned by, NUL-terminated.
    path: [u8; 1024],
}

/// `struct btrfs_ioctl_fs_info_args`.
#[repr(C)]
struct FsInfoArgs {
    /// (out) the highest device id.
    max_id: u64,
    /// (out) devices in the filesystem.
    num_devices: u64,
    /// (out) the filesystem's UUID.
    fsid: [u8; 16],
    /// (out)
    nodesize: u32,
    /// (out) the unit device sizes are rounded down to.
    sectorsize: u32,
    /// (out)
    clone_alignment: u32,
    /// (out, with `BTRFS_FS_INFO_FLAG_CSUM_INFO`)
    csum_type: u16,
    /// (out, with `BTRFS_FS_INFO_FLAG_CSUM_INFO`)
    csum_size: u16,
    /// (in/out) `BTRFS_FS_INFO_FLAG_*`: which optional fields to fill; 0 here.
    flags: u64,
    /// (out, with `BTRFS_FS_INFO_FLAG_GENERATION`)
    generation: u64,
    /// (out, with `BTRFS_FS_INFO_FLAG_METADATA_UUID`)
    metadata_uuid: [u8; 16],
    /// Padding to 1 KiB.
    reserved: [u8; 944],
}

const _: () = assert!(std::mem::size_of::<VolArgs>() == 4096);
const _: () = assert!(std::mem::size_of::<DevInfoArgs>() == 4096);
const _: () = assert!(std::mem::size_of::<FsInfoArgs>() == 1024);
const _: () = assert!(BTRFS_IOC_RESIZE == 0x5000_9403);
const _: () = assert!(BTRFS_IOC_DEV_INFO == 0xd000_941e);
const _: () = assert!(BTRFS_IOC_FS_INFO == 0x8400_941f);

/// A btrfs ioctl's failure, by what it means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtrfsError {
    /// `ENOTTY`/`EINVAL` on FS_INFO: the file is not on a btrfs filesystem.
    NotBtrfs,
    /// `ENODEV`: no device with that id (removed; ids are not reused).
    NoDevice,
    /// `EPERM`: needs `CAP_SYS_ADMIN`, or the device is a seed or a replace target.
    NotPermitted,
    /// `EROFS`: the mount is read-only.
    ReadOnly,
    /// Another exclusive operation (balance, device add/remove/replace, resize) runs.
    Busy,
    /// `EINVAL`/`EFBIG`/`ENOSPC` on resize: the size was refused.
    SizeRefused(i32),
    /// Anything else.
    Other(i32),
}

impl std::fmt::Display for BtrfsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BtrfsError::NotBtrfs => write!(f, "not a btrfs filesystem"),
            BtrfsError::NoDevice => write!(f, "no device with that id (ENODEV)"),
            BtrfsError::NotPermitted => {
                write!(f, "not permitted (EPERM: needs CAP_SYS_ADMIN; or a seed device)")
            }
            BtrfsError::ReadOnly => write!(f, "the mount is read-only (EROFS)"),
            BtrfsError::Busy => write!(
                f,
                "another exclusive operation (balance, device add/remove/replace, resize) is running"
            ),
            BtrfsError::SizeRefused(e) => write!(
                f,
                "the size was refused ({})",
                io::Error::from_raw_os_error(*e)
            ),
            BtrfsError::Other(e) => write!(f, "{}", io::Error::from_raw_os_error(*e)),
        }
    }
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The filesystem as FS_INFO sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsInfo {
    pub max_id: u64,
    pub num_devices: u64,
    pub fsid: [u8; 16],
    /// Device sizes are multiples of this (4096 on x86-64).
    pub sectorsize: u32,
}

/// `BTRFS_IOC_FS_INFO` on any file or directory of a mounted btrfs.
pub fn fs_info(dir: &File) -> Result<FsInfo, BtrfsError> {
    let mut args = FsInfoArgs {
        max_id: 0,
        num_devices: 0,
        fsid: [0; 16],
        nodesize: 0,
        sectorsize: 0,
        clone_alignment: 0,
        csum_type: 0,
        csum_size: 0,
        flags: 0,
        generation: 0,
        metadata_uuid: [0; 16],
        reserved: [0; 944],
    };
    // SAFETY: the kernel writes one btrfs_ioctl_fs_info_args (size asserted above) into the
    // live, initialised struct, and reads only its `flags` (0: the base fields).
    let ret = unsafe {
        libc::ioctl(
            dir.as_raw_fd(),
            BTRFS_IOC_FS_INFO as _,
            &mut args as *mut FsInfoArgs,
        )
    };
    if ret < 0 {
        return Err(match last_errno() {
            libc::ENOTTY | libc::EINVAL => BtrfsError::NotBtrfs,
            libc::EPERM => BtrfsError::NotPermitted,
            e => BtrfsError::Other(e),
        });
    }
    if args.sectorsize == 0 || !args.sectorsize.is_power_of_two() {
        return Err(BtrfsError::Other(libc::EINVAL));
    }
    Ok(FsInfo {
        max_id: args.max_id,
        num_devices: args.num_devices,
        fsid: args.fsid,
        sectorsize: args.sectorsize,
    })
}

/// One device as DEV_INFO sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    pub devid: u64,
    /// Its size in the filesystem, bytes.
    pub total_bytes: u64,
    pub bytes_used: u64,
    /// The path the kernel knows it by (`/dev/vda2`); may be stale or empty.
    pub path: String,
}

/// `BTRFS_IOC_DEV_INFO` for device `devid`; [`BtrfsError::NoDevice`] for an id not in use.
pub fn dev_info(dir: &File, devid: u64) -> Result<DevInfo, BtrfsError> {
    let mut args = DevInfoArgs {
        devid,
        uuid: [0; 16],
        bytes_used: 0,
        total_bytes: 0,
        fsid: [0; 16],
        unused: [0; 377],
        path: [0; 1024],
    };
    // SAFETY: the kernel reads devid and uuid from, and writes one btrfs_ioctl_dev_info_args
    // (size asserted above) into, the live, initialised struct.
    let ret = unsafe {
        libc::ioctl(
            dir.as_raw_fd(),
            BTRFS_IOC_DEV_INFO as _,
            &mut args as *mut DevInfoArgs,
        )
    };
    if ret < 0 {
        return Err(match last_errno() {
            libc::ENODEV => BtrfsError::NoDevice,
            libc::ENOTTY => BtrfsError::NotBtrfs,
            libc::EPERM => BtrfsError::NotPermitted,
            e => BtrfsError::Other(e),
        });
    }
    let end = args
        .path
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(args.path.len());
    let path = String::from_utf8_lossy(args.path.get(..end).unwrap_or_default()).into_owned();
    Ok(DevInfo {
        devid: args.devid,
        total_bytes: args.total_bytes,
        bytes_used: args.bytes_used,
        path,
    })
}

/// `BTRFS_IOC_RESIZE` with `"<devid>:max"`: grows device `devid` to its block device's size
/// (rounded down to the sector size), in one transaction. Needs `CAP_SYS_ADMIN` and a
/// writable mount.
pub fn resize_max(dir: &File, devid: u64) -> Result<(), BtrfsError> {
    let spec = format!("{devid}:max");
    let mut args = VolArgs {
        fd: 0,
        name: [0; 4088],
    };
    // The spec is at most 24 bytes; the rest stays NUL.
    if crate::bytes::put(&mut args.name, 0, spec.as_bytes()).is_none() {
        return Err(BtrfsError::Other(libc::EINVAL));
    }
    // SAFETY: the kernel reads one btrfs_ioctl_vol_args (size asserted above) from the live
    // struct, whose name is NUL-terminated within its 4088 bytes.
    let ret = unsafe {
        libc::ioctl(
            dir.as_raw_fd(),
            BTRFS_IOC_RESIZE as _,
            &mut args as *mut VolArgs,
        )
    };
    match ret {
        0 => Ok(()),
        BTRFS_ERROR_DEV_EXCL_RUN_IN_PROGRESS => Err(BtrfsError::Busy),
        r if r > 0 => Err(BtrfsError::Other(r)),
        _ => Err(match last_errno() {
            libc::EPERM => BtrfsError::NotPermitted,
            libc::EROFS => BtrfsError::ReadOnly,
            libc::ENODEV => BtrfsError::NoDevice,
            libc::EBUSY | libc::ETXTBSY => BtrfsError::Busy,
            e @ (libc::EINVAL | libc::EFBIG | libc::ENOSPC) => BtrfsError::SizeRefused(e),
            libc::ENOTTY => BtrfsError::NotBtrfs,
            e => BtrfsError::Other(e),
        }),
    }
}
