//! Every `unsafe` in preroot, each block with a `// SAFETY:` comment (enforced by
//! `clippy::undocumented_unsafe_blocks`): here the block-device and filesystem ioctls the
//! disk stage needs; [`btrfs`] (btrfs device sizes and online resize); [`spawn`] (running `lvm`); `packet.rs` (`AF_PACKET` sockets with
//! `PACKET_AUXDATA`, for DHCP before an address, and `poll`); `netlink.rs` (the
//! `NETLINK_ROUTE` socket: links, addresses, routes, IPv6 notifications); `nicsock.rs`
//! (sockets bound to one NIC: DHCPv6's UDP, a Router Solicitation, the TCP probe of the
//! metadata service; interface indexes); `tcp.rs` (a TCP connection from a chosen source
//! port: Scaleway's privileged port); `xattr.rs` (a file's SELinux label).
//!
//! Owns the ioctl numbers and the kernel structs they pass, mirrored from the UAPI headers at
//! Linux v6.6 (`include/uapi/linux/fs.h`, `include/uapi/linux/blkpg.h`,
//! `fs/ext4/ext4.h`, `fs/xfs/libxfs/xfs_fs.h`), each with a compile-time size check. Every
//! wrapper takes a `&File`, checks what it can (block device, result ranges) and maps errno
//! to [`std::io::Error`]. Nothing else in the crate may use `unsafe` (`#![deny(unsafe_code)]`
//! at the root).
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod btrfs;
pub mod netlink;
pub mod nicsock;
pub mod packet;
pub mod spawn;
pub mod tcp;
pub mod xattr;

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;

/// `_IOC(dir, type, nr, size)` from `include/uapi/asm-generic/ioctl.h`.
const fn ioc(dir: u32, kind: u8, nr: u8, size: usize) -> u32 {
    // Sizes here are all < 2^14, checked by the asserts below.
    (dir << 30) | ((size as u32) << 16) | ((kind as u32) << 8) | (nr as u32)
}
const NONE: u32 = 0;
const WRITE: u32 = 1;
const READ: u32 = 2;

/// `BLKRRPART _IO(0x12,95)`: re-read the partition table.
const BLKRRPART: u32 = ioc(NONE, 0x12, 95, 0);
/// `BLKFLSBUF _IO(0x12,97)`: flush and drop the device's buffer cache.
const BLKFLSBUF: u32 = ioc(NONE, 0x12, 97, 0);
/// `BLKSSZGET _IO(0x12,104)`: logical sector size (int).
const BLKSSZGET: u32 = ioc(NONE, 0x12, 104, 0);
/// `BLKPG _IO(0x12,105)`: partition add/delete/resize.
const BLKPG: u32 = ioc(NONE, 0x12, 105, 0);
/// `BLKGETSIZE64 _IOR(0x12,114,size_t)`: size in bytes.
const BLKGETSIZE64: u32 = ioc(READ, 0x12, 114, std::mem::size_of::<u64>());
/// `EXT4_IOC_RESIZE_FS _IOW('f', 16, __u64)`: online resize to a block count.
const EXT4_IOC_RESIZE_FS: u32 = ioc(WRITE, b'f', 16, std::mem::size_of::<u64>());
/// `XFS_IOC_FSGEOMETRY_V1 _IOR('X', 100, struct xfs_fsop_geom_v1)`.
const XFS_IOC_FSGEOMETRY_V1: u32 = ioc(READ, b'X', 100, std::mem::size_of::<XfsGeomV1>());
/// `XFS_IOC_FSGROWFSDATA _IOW('X', 110, struct xfs_growfs_data)`.
const XFS_IOC_FSGROWFSDATA: u32 = ioc(WRITE, b'X', 110, std::mem::size_of::<XfsGrowfsData>());

/// `BLKPG_RESIZE_PARTITION` (`blkpg.h`).
const BLKPG_RESIZE_PARTITION: libc::c_int = 3;

/// `struct blkpg_ioctl_arg` (`include/uapi/linux/blkpg.h`).
#[repr(C)]
struct BlkpgIoctlArg {
    /// (in) `BLKPG_*`.
    op: libc::c_int,
    /// (in) unused, 0.
    flags: libc::c_int,
    /// (in) size of `*data`.
    datalen: libc::c_int,
    /// (in) the `blkpg_partition`.
    data: *mut libc::c_void,
}

/// `struct blkpg_partition` (`include/uapi/linux/blkpg.h`).
#[repr(C)]
struct BlkpgPartition {
    /// (in) start, bytes.
    start: libc::c_longlong,
    /// (in) length, bytes.
    length: libc::c_longlong,
    /// (in) partition number.
    pno: libc::c_int,
    /// (in) unused.
    devname: [libc::c_char; 64],
    /// (in) unused.
    volname: [libc::c_char; 64],
}

/// `struct xfs_fsop_geom_v1` (`fs/xfs/libxfs/xfs_fs.h`); all (out).
#[repr(C)]
#[derive(Default)]
struct XfsGeomV1 {
    blocksize: u32,
    rtextsize: u32,
    agblocks: u32,
    agcount: u32,
    logblocks: u32,
    sectsize: u32,
    inodesize: u32,
    imaxpct: u32,
    datablocks: u64,
    rtblocks: u64,
    rtextents: u64,
    logstart: u64,
    uuid: [u8; 16],
    sunit: u32,
    swidth: u32,
    version: i32,
    flags: u32,
    logsectsize: u32,
    rtsectsize: u32,
    dirblocksize: u32,
}

/// `struct xfs_growfs_data` (`fs/xfs/libxfs/xfs_fs.h`); all (in).
#[repr(C)]
struct XfsGrowfsData {
    newblocks: u64,
    imaxpct: u32,
}

const _: () = assert!(std::mem::size_of::<BlkpgIoctlArg>() == 24);
const _: () = assert!(std::mem::size_of::<BlkpgPartition>() == 152);
const _: () = assert!(std::mem::size_of::<XfsGeomV1>() == 112);
const _: () = assert!(std::mem::size_of::<XfsGrowfsData>() == 16);
const _: () = assert!(BLKGETSIZE64 == 0x8008_1272);
const _: () = assert!(EXT4_IOC_RESIZE_FS == 0x4008_6610);
const _: () = assert!(XFS_IOC_FSGROWFSDATA == 0x4010_586e);

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `size_of::<T>()` as a `socklen_t`: the length passed with a socket option or address
/// (the sockets of `packet.rs`, `netlink.rs`, `nicsock.rs` and `tcp.rs`).
fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(0)
}

/// Sets an integer socket option; the raw return value, checked by the caller.
fn set_int(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, value: libc::c_int) -> libc::c_int {
    // SAFETY: the option value points to a live c_int and its exact size is passed.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            std::ptr::from_ref(&value).cast(),
            socklen::<libc::c_int>(),
        )
    }
}

/// `ret`'s error with what its errno means for `op` (coreos-installer's `blockdev.rs` maps
/// EBUSY to "in use" and EINVAL to "no partition support" the same way); the kind and the
/// raw errno stay as they are.
fn check_meaning(ret: libc::c_int, op: &str, meanings: &[(i32, &str)]) -> io::Result<()> {
    check(ret).map_err(|e| {
        let meaning = e
            .raw_os_error()
            .and_then(|n| meanings.iter().find(|(errno, _)| *errno == n))
            .map_or("failed", |(_, m)| *m);
        io::Error::new(e.kind(), format!("{op}: {meaning} ({e})"))
    })
}

fn block_device(file: &File) -> io::Result<()> {
    if file.metadata()?.file_type().is_block_device() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a block device",
        ))
    }
}

/// Size of a block device in bytes (`BLKGETSIZE64`).
pub fn device_size(file: &File) -> io::Result<u64> {
    block_device(file)?;
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at a live u64.
    check(unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64 as _, &mut size as *mut u64) })?;
    Ok(size)
}

/// Logical sector size of a block device (`BLKSSZGET`): 512 to 65536, a power of two.
pub fn sector_size(file: &File) -> io::Result<u32> {
    block_device(file)?;
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which points at a live c_int.
    check(unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            BLKSSZGET as _,
            &mut size as *mut libc::c_int,
        )
    })?;
    match u32::try_from(size) {
        Ok(s) if (512..=65536).contains(&s) && s.is_power_of_two() => Ok(s),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("BLKSSZGET returned {size}"),
        )),
    }
}

/// Asks the kernel to re-read the whole partition table (`BLKRRPART`). EBUSY when a
/// partition of the disk is in use.
pub fn reread_partitions(file: &File) -> io::Result<()> {
    block_device(file)?;
    // SAFETY: BLKRRPART takes no argument.
    let ret = unsafe { libc::ioctl(file.as_raw_fd(), BLKRRPART as _, 0) };
    check_meaning(
        ret,
        "BLKRRPART",
        &[
            (libc::EBUSY, "in use (a partition is mounted or held)"),
            (libc::EINVAL, "the device has no partition support"),
            (libc::ENOTTY, "not a partitionable block device"),
        ],
    )
}

/// Flushes and drops the buffer cache of a block device (`BLKFLSBUF`).
pub fn flush_buffers(file: &File) -> io::Result<()> {
    block_device(file)?;
    // SAFETY: BLKFLSBUF takes no argument.
    check(unsafe { libc::ioctl(file.as_raw_fd(), BLKFLSBUF as _, 0) })
}

/// Tells the kernel partition `number` of the disk `file` now spans `start..start+length`
/// bytes (`BLKPG_RESIZE_PARTITION`); works while the partition is in use. The start must
/// be the one the kernel already has.
pub fn resize_partition(file: &File, number: u32, start: u64, length: u64) -> io::Result<()> {
    block_device(file)?;
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
    let mut part = BlkpgPartition {
        start: i64::try_from(start).map_err(|_| invalid("start out of range"))?,
        length: i64::try_from(length).map_err(|_| invalid("length out of range"))?,
        pno: i32::try_from(number).map_err(|_| invalid("partition number out of range"))?,
        devname: [0; 64],
        volname: [0; 64],
    };
    let mut arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&mut part as *mut BlkpgPartition).cast(),
    };
    // SAFETY: arg and the partition it points to are live, correctly laid out (size asserts
    // above) and outlive the call; the kernel only reads them.
    let ret = unsafe { libc::ioctl(file.as_raw_fd(), BLKPG as _, &mut arg as *mut BlkpgIoctlArg) };
    check_meaning(
        ret,
        "BLKPG_RESIZE_PARTITION",
        &[
            (
                libc::EBUSY,
                "in use, or the new extent overlaps another partition",
            ),
            (
                libc::EINVAL,
                "the kernel refused the new extent, or the device has no partition support",
            ),
            (libc::ENXIO, "the kernel has no such partition"),
            (libc::ENOTTY, "not a partitionable block device"),
        ],
    )
}

/// Grows a mounted ext4 filesystem to `blocks` blocks (`EXT4_IOC_RESIZE_FS`); `dir` is any
/// file or directory on it. Needs CAP_SYS_RESOURCE.
pub fn ext4_resize(dir: &File, blocks: u64) -> io::Result<()> {
    let mut count = blocks;
    // SAFETY: the kernel reads one u64 through the pointer, which points at a live u64.
    check(unsafe {
        libc::ioctl(
            dir.as_raw_fd(),
            EXT4_IOC_RESIZE_FS as _,
            &mut count as *mut u64,
        )
    })
}

/// Geometry of a mounted xfs filesystem: (block size, data blocks, imaxpct).
pub fn xfs_geometry(dir: &File) -> io::Result<(u32, u64, u32)> {
    let mut geom = XfsGeomV1::default();
    // SAFETY: the kernel writes one xfs_fsop_geom_v1 (size asserted) into the live struct.
    check(unsafe {
        libc::ioctl(
            dir.as_raw_fd(),
            XFS_IOC_FSGEOMETRY_V1 as _,
            &mut geom as *mut XfsGeomV1,
        )
    })?;
    Ok((geom.blocksize, geom.datablocks, geom.imaxpct))
}

/// Grows a mounted xfs filesystem's data section to `blocks` blocks
/// (`XFS_IOC_FSGROWFSDATA`). Needs CAP_SYS_ADMIN.
pub fn xfs_grow(dir: &File, blocks: u64, imaxpct: u32) -> io::Result<()> {
    let mut arg = XfsGrowfsData {
        newblocks: blocks,
        imaxpct,
    };
    // SAFETY: the kernel reads one xfs_growfs_data (size asserted) from the live struct.
    check(unsafe {
        libc::ioctl(
            dir.as_raw_fd(),
            XFS_IOC_FSGROWFSDATA as _,
            &mut arg as *mut XfsGrowfsData,
        )
    })
}

/// Remounts the filesystem at `path` with exactly the per-mount flags `flags` (`MS_*`,
/// `MS_RDONLY` for read-only); filesystem options are kept (NULL data).
pub fn remount(path: &std::path::Path, flags: libc::c_ulong) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
    // SAFETY: `c` is a live NUL-terminated string; mount(2) allows NULL source, type and
    // data with MS_REMOUNT.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | flags,
            std::ptr::null(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_is_named_by_its_meaning() {
        // SAFETY: closing fd -1 touches nothing; it fails with EBADF, which sets errno.
        let ret = unsafe { libc::close(-1) };
        let e = check_meaning(ret, "OP", &[(libc::EBADF, "no such descriptor")]).unwrap_err();
        assert!(e.to_string().starts_with("OP: no such descriptor ("), "{e}");
        // SAFETY: as above.
        let ret = unsafe { libc::close(-1) };
        let e = check_meaning(ret, "OP", &[]).unwrap_err();
        assert!(e.to_string().starts_with("OP: failed ("), "{e}");
        assert!(check_meaning(0, "OP", &[]).is_ok());
    }
}
