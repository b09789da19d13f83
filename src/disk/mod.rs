//! The disk stage: grow the root partition (GPT or MBR), its LVM PV and LV, and the root
//! filesystem, so the root fills the disk.
//!
//! - [`gpt`], [`mbr`]: pure table parsing and planning (a list of [`Step`]s), tested on
//!   byte buffers. [`lvm`]: pure reading of `lvm`'s JSON report. Whether user data
//!   says no is [`crate::cloudconfig`]'s. [`fs`]: ext4 and xfs growth on a mounted filesystem;
//!   [`btrfs`]: btrfs growth (each device that is smaller than its block device).
//! - This module: find what to grow from a `root=` spec, read the tables, carry the plan
//!   out ([`apply`]: the writes in order with syncs; then tell the kernel), and report
//!   ([`Report`], JSON shape in `docs/grow.md`).
//!
//! Contract: a table that does not validate is never written; a second run finds nothing to
//! do and writes nothing; every wait has a deadline. The boot driver runs the block part
//! (partition, PV, LV) in the `grow` phase and [`fs::grow`] in the `sysroot` phase.

pub mod btrfs;
pub mod crypt;
pub mod fs;
pub mod gpt;
pub mod luks;
pub mod lvm;
pub mod lvmmeta;
pub mod mbr;

use crate::deadline::Deadline;
use crate::root::Root;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::Duration;

/// Partition ends are aligned down to this many bytes.
pub const ALIGN: u64 = 1 << 20;

/// A table that does not validate, or a plan that cannot be made; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError(pub String);

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write `data` at byte `offset` of the disk.
    Write {
        what: String,
        offset: u64,
        data: Vec<u8>,
    },
    /// fsync the disk.
    Sync,
}

/// What kind of failure, so the caller can tell "nothing was written" from "stopped halfway".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The root device could not be found or is not something preroot grows.
    NotFound,
    /// The partition table (or lvm's report) did not validate: nothing was written.
    Invalid,
    /// An I/O error or a tool failed.
    Io,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowError {
    pub kind: ErrorKind,
    /// The device, file or tool.
    pub object: String,
    pub message: String,
}

impl std::fmt::Display for GrowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

fn gerr(
    kind: ErrorKind,
    object: impl std::fmt::Display,
    message: impl std::fmt::Display,
) -> GrowError {
    GrowError {
        kind,
        object: object.to_string(),
        message: message.to_string(),
    }
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Already as large as it can be: nothing written.
    Unchanged,
    /// `--dry-run`: this would be done.
    Planned,
    Done,
    /// Not grown, for the reason in `note`.
    Skipped,
}

/// One object grown (or not): a partition, a PV, an LV or a filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// `partition`, `pv`, `lv` or `filesystem`.
    pub kind: &'static str,
    /// `/dev/...` (or the mount point, for a filesystem).
    pub device: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    /// `gpt` or `mbr` (partition), `ext4` or `xfs` (filesystem), VG/LV (lv).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    pub old_size: u64,
    pub new_size: u64,
    /// The writes or commands, in order.
    pub steps: Vec<String>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Action {
    fn new(kind: &'static str, device: impl Into<String>) -> Action {
        Action {
            kind,
            device: device.into(),
            disk: None,
            format: None,
            number: None,
            sector_size: None,
            start: None,
            old_size: 0,
            new_size: 0,
            steps: Vec::new(),
            status: Status::Unchanged,
            note: None,
        }
    }
}

/// What `preroot grow` (or the boot phases) did; the JSON of `preroot grow --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The root spec (`root=` value or the command's argument).
    pub root: String,
    /// The block device it resolved to.
    pub device: String,
    pub dry_run: bool,
    pub actions: Vec<Action>,
    /// Milliseconds spent.
    pub duration_ms: u64,
}

impl Report {
    pub fn changed(&self) -> bool {
        self.actions.iter().any(|a| a.status == Status::Done)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub dry_run: bool,
    /// Extend the root LV (`preroot.grow.lv=`).
    pub lv: bool,
    pub deadline: Deadline,
}

// ---------------------------------------------------------------- byte helpers (pure)

/// The byte-at-a-time table of [`crc32`], built at compile time (1 KiB of .rodata).
// Evaluated by the compiler: an index out of range fails the build, never the boot.
#[allow(clippy::indexing_slicing)]
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, reflected, as GPT uses), a table lookup per byte: a GPT's 16 KiB
/// entry array is checked several times per plan, and bit at a time was a third of the
/// planning time under the fuzzer.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn crc32(data: &[u8]) -> u32 {
    !crc32_update(!0, data)
}

/// The same CRC's byte-at-a-time update from `crc`, without GPT's inversion before and after
/// (lvm2's `calc_crc` is this from 0xf597a6cf: [`lvmmeta::calc_crc`]).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        let index = usize::from((crc as u8) ^ b);
        crc = (crc >> 8) ^ CRC_TABLE.get(index).copied().unwrap_or(0);
    }
    crc
}

// ---------------------------------------------------------------- finding the root device

/// A block device as sysfs sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDev {
    /// Kernel name (`vda1`, `loop0p1`, `dm-0`).
    pub name: String,
    /// Its sysfs directory (under the root).
    pub sys: PathBuf,
}

impl BlockDev {
    /// `/dev/NAME` under `root`.
    pub fn node(&self, root: &Root) -> PathBuf {
        root.join(format!("dev/{}", self.name))
    }

    fn attr(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.sys.join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn attr_u64(&self, name: &str) -> Option<u64> {
        self.attr(name)?.parse().ok()
    }

    /// The partition number, if this is a partition.
    pub fn partition_number(&self) -> Option<u32> {
        self.attr("partition")?.parse().ok()
    }

    /// Size in bytes (sysfs `size` is in 512-byte units whatever the sector size).
    pub fn size_bytes(&self) -> Option<u64> {
        self.attr_u64("size")?.checked_mul(512)
    }

    /// The disk holding this partition.
    pub fn parent(&self) -> Option<BlockDev> {
        let parent = self.sys.canonicalize().ok()?.parent()?.to_path_buf();
        let name = parent.file_name()?.to_str()?.to_string();
        Some(BlockDev { name, sys: parent })
    }

    /// The device-mapper name (`VG-LV`), if this is a dm device.
    pub fn dm_name(&self) -> Option<String> {
        self.attr("dm/name")
    }

    /// The device-mapper UUID (`LVM-...` for an LV, `CRYPT-LUKS2-...` for a LUKS2 mapping),
    /// if this is a dm device that has one.
    pub fn dm_uuid(&self) -> Option<String> {
        self.attr("dm/uuid").filter(|u| !u.is_empty())
    }

    /// The devices under a dm device (`slaves/`).
    pub fn slaves(&self) -> Vec<BlockDev> {
        let mut out = Vec::new();
        if let Ok(dir) = std::fs::read_dir(self.sys.join("slaves")) {
            for e in dir.flatten() {
                if let (Some(name), Ok(sys)) = (e.file_name().to_str(), e.path().canonicalize()) {
                    out.push(BlockDev {
                        name: name.to_string(),
                        sys,
                    });
                }
            }
        }
        out
    }

    /// By `MAJ:MIN` (`/sys/dev/block/MAJ:MIN`).
    pub fn by_devnum(root: &Root, major: u64, minor: u64) -> Option<BlockDev> {
        let sys = root
            .join(format!("sys/dev/block/{major}:{minor}"))
            .canonicalize()
            .ok()?;
        let name = sys.file_name()?.to_str()?.to_string();
        Some(BlockDev { name, sys })
    }
}

/// `major`/`minor` of a `dev_t` (glibc's `gnu_dev_major`/`minor` encoding).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn split_dev(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0fff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
    (major, minor)
}

/// Resolves a `root=` spec to its block device: `/dev/...` (any symlink, `/dev/mapper/*`,
/// `/dev/disk/by-*/*`), or `UUID=`, `LABEL=`, `PARTUUID=`, `PARTLABEL=` through
/// `/dev/disk/by-*` (udev's links; without them, `UUID=` and `LABEL=` are found by reading
/// the ext4 and xfs superblocks of every block device).
pub fn resolve(root: &Root, spec: &str) -> Result<BlockDev, GrowError> {
    let notfound = |m: &str| gerr(ErrorKind::NotFound, spec, m);
    let path = if let Some(rest) = spec.strip_prefix("/dev/") {
        root.join(format!("dev/{rest}"))
    } else if let Some((key, value)) = spec.split_once('=') {
        let dir = match key {
            "UUID" => "by-uuid",
            "LABEL" => "by-label",
            "PARTUUID" => "by-partuuid",
            "PARTLABEL" => "by-partlabel",
            _ => {
                return Err(notfound(
                    "expected /dev/..., UUID=, LABEL=, PARTUUID= or PARTLABEL=",
                ))
            }
        };
        let link = root.join(format!("dev/disk/{dir}/{}", value.replace('/', "\\x2f")));
        if link.exists() {
            link
        } else if matches!(key, "UUID" | "LABEL") {
            return fs::find_by_id(root, key == "UUID", value)
                .ok_or_else(|| notfound("no block device has it"));
        } else {
            return Err(notfound("no /dev/disk link for it (is udev running?)"));
        }
    } else {
        return Err(notfound(
            "expected /dev/..., UUID=, LABEL=, PARTUUID= or PARTLABEL=",
        ));
    };
    let meta =
        std::fs::metadata(&path).map_err(|e| gerr(ErrorKind::NotFound, path.display(), e))?;
    let (major, minor) = split_dev(meta.rdev());
    if !std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type()) {
        return Err(notfound("not a block device"));
    }
    BlockDev::by_devnum(root, major, minor).ok_or_else(|| notfound("not in /sys/dev/block"))
}

// ---------------------------------------------------------------- growing

/// Grows what holds the root `spec`: its partition, or for an LV, each PV's partition, the
/// PVs and the LV. Partition first, so a crash leaves at most a larger partition.
pub fn grow_block(root: &Root, spec: &str, opts: &Options) -> Result<Report, GrowError> {
    let started = std::time::Instant::now();
    let dev = resolve(root, spec)?;
    let mut report = Report {
        root: spec.to_string(),
        device: format!("/dev/{}", dev.name),
        dry_run: opts.dry_run,
        actions: Vec::new(),
        duration_ms: 0,
    };
    grow_device(root, &dev, opts, &mut report, 0)?;
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(report)
}

/// Device-mapper stacks deeper than this are refused (a loop in sysfs would never end).
const MAX_STACK: usize = 8;

/// Grows `dev` and what lies below it, bottom first: a partition; an LV (its PVs, each
/// grown first, then `pvresize` and `lvextend`: [`lvm`]); a LUKS2 mapping (its device, then
/// the mapping: [`crypt`]). Other device-mapper devices and whole disks are reported as
/// skipped. `depth` counts the layers above (a PV on LUKS on a partition is three).
pub(crate) fn grow_device(
    root: &Root,
    dev: &BlockDev,
    opts: &Options,
    report: &mut Report,
    depth: usize,
) -> Result<(), GrowError> {
    if depth > MAX_STACK {
        return Err(gerr(
            ErrorKind::Invalid,
            format!("/dev/{}", dev.name),
            format!("device-mapper stack deeper than {MAX_STACK} layers"),
        ));
    }
    let next = depth.saturating_add(1);
    match (dev.dm_uuid(), dev.dm_name()) {
        (Some(uuid), Some(name)) if uuid.starts_with("LVM-") => {
            lvm::grow(root, dev, &name, opts, report, next)
        }
        (Some(uuid), _) if uuid.starts_with("CRYPT-") => {
            crypt::grow(root, dev, &uuid, opts, report, next)
        }
        (uuid, Some(name)) => {
            let mut a = Action::new("device", format!("/dev/{}", dev.name));
            a.format = Some(name);
            a.status = Status::Skipped;
            a.note = Some(format!(
                "a device-mapper device of {}: preroot grows LVM LVs and LUKS2 mappings only",
                uuid.as_deref()
                    .and_then(|u| u.split('-').next())
                    .unwrap_or("no known kind (no dm uuid)")
            ));
            report.actions.push(a);
            Ok(())
        }
        _ if dev.partition_number().is_some() => {
            report.actions.push(grow_partition(root, dev, opts)?);
            Ok(())
        }
        _ => {
            let mut a = Action::new("partition", format!("/dev/{}", dev.name));
            a.status = Status::Skipped;
            a.note =
                Some("not a partition (a whole disk): nothing to grow below the filesystem".into());
            report.actions.push(a);
            Ok(())
        }
    }
}

/// Reads `len` bytes at `offset`.
fn read_at(file: &File, offset: u64, len: usize, object: &str) -> Result<Vec<u8>, GrowError> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| gerr(ErrorKind::Io, object, format!("read at byte {offset}: {e}")))?;
    Ok(buf)
}

/// A partition's table, read and planned.
#[derive(Debug)]
pub struct Planned {
    /// `gpt` or `mbr`.
    pub format: &'static str,
    pub start_lba: u64,
    pub old_sectors: u64,
    pub new_sectors: u64,
    pub steps: Vec<Step>,
}

/// Reads the table of `disk` and plans growing partition `number`.
fn plan_partition(
    file: &File,
    disk: &str,
    number: u32,
    sector_size: u32,
    disk_sectors: u64,
) -> Result<Planned, GrowError> {
    plan_table(
        &mut |offset, len| read_at(file, offset, len, disk),
        disk,
        number,
        sector_size,
        disk_sectors,
    )
}

/// Reads a disk's table through `read(offset, len)` (`len` bytes at byte `offset`, an error
/// when the disk cannot give them) and plans growing partition `number`: the GPT (primary,
/// and the backup's validity) when sector 0 has a protective entry, else the MBR and its EBR
/// chain. No I/O of its own, so it runs on an image in memory (tests, fuzz/); `disk` names
/// the disk in errors. Never panics on any bytes.
pub fn plan_table(
    read: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>, GrowError>,
    disk: &str,
    number: u32,
    sector_size: u32,
    disk_sectors: u64,
) -> Result<Planned, GrowError> {
    let ss =
        usize::try_from(sector_size).map_err(|_| gerr(ErrorKind::Invalid, disk, "sector size"))?;
    let invalid = |e: TableError| {
        gerr(
            ErrorKind::Invalid,
            disk,
            format!("{}; nothing written", e.0),
        )
    };
    let sector0 = read(0, ss)?;
    let protective = (0..4usize).any(|i| {
        sector0.get(
            446usize
                .saturating_add(i.saturating_mul(16))
                .saturating_add(4),
        ) == Some(&0xEE)
    });
    if protective {
        let lba1 = read(u64::from(sector_size), ss)?;
        let header = gpt::Header::parse(&lba1, 1).map_err(invalid)?;
        let len = usize::try_from(header.entries_bytes())
            .map_err(|_| invalid(TableError("entries".into())))?;
        let off = header
            .entries_lba
            .checked_mul(u64::from(sector_size))
            .ok_or_else(|| invalid(TableError("entries location".into())))?;
        let entries = read(off, len)?;
        let table =
            gpt::Gpt::parse(header, &entries, sector_size, disk_sectors).map_err(invalid)?;
        let backup_ok = backup_valid(read, &table, sector_size);
        if !backup_ok {
            log::warn!("grow: {disk}: the backup GPT is invalid; rewriting it from the primary");
        }
        let p =
            gpt::plan(&table, number, disk_sectors, ALIGN, backup_ok, &sector0).map_err(invalid)?;
        let count = |last: u64| last.saturating_sub(p.first_lba).saturating_add(1);
        Ok(Planned {
            format: "gpt",
            start_lba: p.first_lba,
            old_sectors: count(p.old_last_lba),
            new_sectors: count(p.new_last_lba),
            steps: p.steps,
        })
    } else {
        let m = mbr::Mbr::parse(&sector0, disk_sectors, |lba| {
            let off = lba.checked_mul(u64::from(sector_size))?;
            read(off, 512).ok()
        })
        .map_err(invalid)?;
        let p = mbr::plan(&m, number, disk_sectors, sector_size, ALIGN).map_err(invalid)?;
        Ok(Planned {
            format: "mbr",
            start_lba: p.start,
            old_sectors: p.old_sectors,
            new_sectors: p.new_sectors,
            steps: p.steps,
        })
    }
}

/// Is the backup GPT at the primary's `alternate_lba` valid and in agreement?
fn backup_valid(
    read: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>, GrowError>,
    table: &gpt::Gpt,
    sector_size: u32,
) -> bool {
    let h = &table.primary;
    let Some(off) = h.alternate_lba.checked_mul(u64::from(sector_size)) else {
        return false;
    };
    let Ok(ss) = usize::try_from(sector_size) else {
        return false;
    };
    let Ok(sector) = read(off, ss) else {
        return false;
    };
    let Ok(b) = gpt::Header::parse(&sector, h.alternate_lba) else {
        return false;
    };
    if b.entries_crc != h.entries_crc
        || b.num_entries != h.num_entries
        || b.entry_size != h.entry_size
    {
        return false;
    }
    let (Some(eoff), Ok(len)) = (
        b.entries_lba.checked_mul(u64::from(sector_size)),
        usize::try_from(b.entries_bytes()),
    ) else {
        return false;
    };
    read(eoff, len).is_ok_and(|e| crc32(&e) == b.entries_crc)
}

/// Grows one partition to fill the space after it; tells the kernel.
pub fn grow_partition(root: &Root, part: &BlockDev, opts: &Options) -> Result<Action, GrowError> {
    let number = part
        .partition_number()
        .ok_or_else(|| gerr(ErrorKind::NotFound, &part.name, "not a partition"))?;
    let disk = part.parent().ok_or_else(|| {
        gerr(
            ErrorKind::NotFound,
            &part.name,
            "cannot find its disk in sysfs",
        )
    })?;
    let disk_node = disk.node(root);
    let dname = disk_node.display().to_string();
    let mut a = Action::new("partition", format!("/dev/{}", part.name));
    a.disk = Some(format!("/dev/{}", disk.name));
    a.number = Some(number);
    // Read-only until there is something to write: closing a disk opened for writing makes
    // udev re-read its partition table (see below), even when nothing was written.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&disk_node)
        .map_err(|e| gerr(ErrorKind::Io, &dname, e))?;
    let ss = crate::sys::sector_size(&file)
        .map_err(|e| gerr(ErrorKind::Io, &dname, format!("BLKSSZGET: {e}")))?;
    let bytes = crate::sys::device_size(&file)
        .map_err(|e| gerr(ErrorKind::Io, &dname, format!("BLKGETSIZE64: {e}")))?;
    let disk_sectors = bytes.checked_div(u64::from(ss)).unwrap_or(0);
    a.sector_size = Some(ss);
    let p = plan_partition(&file, &dname, number, ss, disk_sectors)?;
    a.format = Some(p.format.into());
    a.start = Some(p.start_lba);
    let to_bytes = |s: u64| s.saturating_mul(u64::from(ss));
    a.old_size = to_bytes(p.old_sectors);
    a.new_size = to_bytes(p.new_sectors);
    // The table must describe the partition the kernel has.
    let kstart = part.attr_u64("start").and_then(|s| s.checked_mul(512));
    if kstart != Some(to_bytes(p.start_lba)) {
        let kernel = kstart.map_or("no readable start (sysfs)".to_string(), |b| {
            format!("its start at byte {b}")
        });
        return Err(gerr(
            ErrorKind::Invalid,
            &a.device,
            format!(
                "the kernel has {kernel}, the partition table at byte {}: the table must \
                 describe the partition the kernel has; nothing written",
                to_bytes(p.start_lba)
            ),
        ));
    }
    a.steps = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Write { what, offset, data } => {
                Some(format!("write {what} ({} bytes at {offset})", data.len()))
            }
            Step::Sync => None,
        })
        .collect();
    if p.steps.is_empty() {
        // The table is right; the kernel may not know yet (an earlier run was interrupted
        // after its writes): then only tell it.
        if part.size_bytes() == Some(a.new_size) {
            a.note = Some("already fills the space it can have".into());
            return Ok(a);
        }
        a.note = Some(format!(
            "the table already has this size, the kernel has {} bytes",
            part.size_bytes().unwrap_or(0)
        ));
        if opts.dry_run {
            a.steps
                .push("tell the kernel (BLKPG_RESIZE_PARTITION)".into());
            a.status = Status::Planned;
            return Ok(a);
        }
        let how = tell_kernel(
            root,
            &file,
            part,
            number,
            to_bytes(p.start_lba),
            a.new_size,
            opts,
        )?;
        a.steps.push(how);
        a.status = Status::Done;
        return Ok(a);
    }
    if opts.dry_run {
        a.status = Status::Planned;
        return Ok(a);
    }
    let hold = hold_partition(root, part);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&disk_node)
        .map_err(|e| gerr(ErrorKind::Io, &dname, e))?;
    apply(&file, &p.steps, &dname)?;
    let how = tell_kernel(
        root,
        &file,
        part,
        number,
        to_bytes(p.start_lba),
        a.new_size,
        opts,
    )?;
    drop(file);
    if hold.is_some() {
        wait_udev_after_close(root, &a.device, opts);
    }
    drop(hold);
    a.steps.push(how);
    a.status = Status::Done;
    log::info!(
        "grow: {} ({}, partition {number} of {}): {} -> {} bytes",
        a.device,
        p.format,
        dname,
        a.old_size,
        a.new_size
    );
    Ok(a)
}

/// Closing a disk opened for writing makes udev (its inotify watch) re-read the partition
/// table, which removes and re-adds every partition: systemd then sees the root device
/// vanish and cancels sysroot.mount. A re-read is refused while a partition is open, so
/// hold this one open until udev has handled our close (udev then only sends "change").
/// A partition a device-mapper device holds (a PV, a LUKS device) is open, so udev's
/// re-read fails with EBUSY anyway: no hold, and no wait for udev after our close.
/// Returns the partition opened (the hold), or `None` where no hold is needed or possible.
fn hold_partition(root: &Root, part: &BlockDev) -> Option<File> {
    let held_by_dm = std::fs::read_dir(part.sys.join("holders"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if held_by_dm {
        None
    } else {
        File::open(part.node(root)).ok()
    }
}

/// After the disk's close: waits (at most 10 s, within the deadline) for udev to handle the
/// inotify event it makes, where udev runs.
fn wait_udev_after_close(root: &Root, device: &str, opts: &Options) {
    if !root.join("run/udev/control").exists() {
        return;
    }
    // udev reads the inotify event after our close; give it a moment to queue its work.
    std::thread::sleep(Duration::from_millis(300).min(opts.deadline.remaining()));
    let settle =
        crate::deadline::Deadline::after(Duration::from_secs(10).min(opts.deadline.remaining()));
    let waited = std::time::Instant::now();
    if !crate::root::wait_udev_settled(root, settle) {
        log::warn!("grow: udev still busy after growing {device}; going on");
    }
    log::info!(
        "grow: {}: udev settled after {} ms",
        device,
        waited.elapsed().as_millis()
    );
}

/// Carries out the writes in order; `Sync` fsyncs. With the `fault-injection` feature,
/// `PREROOT_FAULT_AFTER_WRITE=k` exits (status 99) right after the k-th write; with
/// `PREROOT_FAULT_HOLD=1` as well, it fsyncs that write and holds instead (see [`hold`]), so
/// a QEMU test can cut the power at a known point (`tests/qemu_faults.rs`).
pub fn apply(file: &File, steps: &[Step], object: &str) -> Result<(), GrowError> {
    #[cfg(feature = "fault-injection")]
    let fault: Option<usize> = std::env::var("PREROOT_FAULT_AFTER_WRITE")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut writes = 0usize;
    for step in steps {
        match step {
            Step::Write { what, offset, data } => {
                file.write_all_at(data, *offset)
                    .map_err(|e| gerr(ErrorKind::Io, object, format!("writing the {what}: {e}")))?;
                writes = writes.saturating_add(1);
                #[cfg(feature = "fault-injection")]
                if fault == Some(writes) {
                    if hold_requested() {
                        let synced = file.sync_all().is_ok();
                        hold(&format!("write {writes} ({what}), synced: {synced}"));
                    }
                    eprintln!("preroot: fault injection: exiting after write {writes} ({what})");
                    std::process::exit(99);
                }
            }
            Step::Sync => file
                .sync_all()
                .map_err(|e| gerr(ErrorKind::Io, object, format!("fsync: {e}")))?,
        }
    }
    let _ = writes;
    Ok(())
}

/// `PREROOT_FAULT_HOLD=1`: hold at the fault point instead of exiting.
#[cfg(feature = "fault-injection")]
fn hold_requested() -> bool {
    std::env::var_os("PREROOT_FAULT_HOLD").is_some_and(|v| v == "1")
}

/// Fault injection for power-cut tests: logs one line at error level, `fault injection:
/// holding after AT` (in the initramfs it goes to `/dev/kmsg`, so the console shows it and
/// the host knows where the guest is), then sleeps until killed; after 600 s it returns and
/// the caller exits 99. The caller has synced what the point needs on disk.
#[cfg(feature = "fault-injection")]
fn hold(at: &str) {
    log::error!("fault injection: holding after {at}");
    let until = crate::deadline::Deadline::after(Duration::from_secs(600));
    while !until.passed() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fault injection after a named step of the growth (`pvresize`, `lvextend`: see
/// [`lvm::grow`]): when `PREROOT_FAULT_AFTER_STEP` names `step`, exits (status 99) right
/// after it; with `PREROOT_FAULT_HOLD=1` as well, first fsyncs `devices` (the PVs the step
/// wrote, so nothing of it waits in the page cache) and holds (see [`hold`]), for
/// `tests/qemu_atomic_faults.rs`.
#[cfg(feature = "fault-injection")]
pub(crate) fn fault_after_step(step: &str, devices: &[std::path::PathBuf]) {
    if std::env::var("PREROOT_FAULT_AFTER_STEP").ok().as_deref() != Some(step) {
        return;
    }
    if hold_requested() {
        let synced = devices
            .iter()
            .all(|d| File::open(d).and_then(|f| f.sync_all()).is_ok());
        let names: Vec<String> = devices.iter().map(|d| d.display().to_string()).collect();
        hold(&format!(
            "step {step} ({}), synced: {synced}",
            names.join(" ")
        ));
    }
    eprintln!("preroot: fault injection: exiting after step {step}");
    std::process::exit(99);
}

/// After the table changed: `BLKPG_RESIZE_PARTITION` for the one partition, which works
/// whether or not it is in use; `BLKRRPART` only if that fails and no partition of the disk
/// is in use. Then waits, up to the deadline (at least 5 s), for sysfs to show the new
/// size. Returns what was done, for the report.
///
/// Why not re-read whenever the partition is free: `BLKRRPART` drops and re-adds every
/// partition of the disk, so udev sees the root device go away and come back while systemd
/// in the initrd holds `sysroot.mount` bound to it; and a kernel without the table's parser
/// (the CI host's has neither `CONFIG_EFI_PARTITION` nor `CONFIG_MSDOS_PARTITION`) re-adds
/// none. Resizing changes only the one partition's size, with no remove/add.
fn tell_kernel(
    root: &Root,
    disk: &File,
    part: &BlockDev,
    number: u32,
    start: u64,
    length: u64,
    opts: &Options,
) -> Result<String, GrowError> {
    let node = part.node(root);
    let how = match crate::sys::resize_partition(disk, number, start, length) {
        Ok(()) => "BLKPG_RESIZE_PARTITION".to_string(),
        Err(resize) => {
            // O_EXCL on a block device fails with EBUSY while it is mounted or held.
            let in_use = matches!(
                OpenOptions::new().read(true).custom_flags(libc::O_EXCL | libc::O_CLOEXEC).open(&node),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY)
            );
            let fail = |what: String| {
                gerr(
                    ErrorKind::Io,
                    node.display(),
                    format!("the table is written but the kernel was not told ({what}); it sees the new size at the next boot"),
                )
            };
            if in_use {
                return Err(fail(resize.to_string()));
            }
            let _ = crate::sys::flush_buffers(disk);
            crate::sys::reread_partitions(disk).map_err(|e| fail(format!("{resize}; {e}")))?;
            format!("BLKRRPART ({resize})")
        }
    };
    let deadline = if opts.deadline.remaining() < Duration::from_secs(5) {
        Deadline::after(Duration::from_secs(5))
    } else {
        opts.deadline
    };
    loop {
        if part.size_bytes() == Some(length) && node.exists() {
            return Ok(how);
        }
        if deadline.passed() {
            return Err(gerr(
                ErrorKind::Io,
                node.display(),
                format!(
                    "after {how} the kernel still shows {}, not {length} bytes",
                    part.size_bytes()
                        .map_or("no readable size".to_string(), |b| format!("{b} bytes"))
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------- commands and boot phases

/// `preroot grow`: the block part, then the filesystem if the root device is mounted.
pub fn grow_all(root: &Root, spec: &str, opts: &Options) -> Result<Report, GrowError> {
    let started = std::time::Instant::now();
    let mut report = grow_block(root, spec, opts)?;
    let dev = resolve(root, spec)?;
    let mountpoint = dev
        .attr("dev")
        .and_then(|d| fs::mounted(root, &d))
        .or_else(|| btrfs::mounted(root, &dev));
    if let Some(mountpoint) = mountpoint {
        report.actions.push(fs::grow(root, &mountpoint, opts)?);
    }
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(report)
}

/// The human-readable report.
pub fn summary(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let dry = if r.dry_run {
        " (dry run: nothing written)"
    } else {
        ""
    };
    let _ = writeln!(s, "root {} is {}{dry}", r.root, r.device);
    for a in &r.actions {
        let mut what = a.kind.to_string();
        if let Some(f) = &a.format {
            let _ = write!(what, " {f}");
        }
        if let (Some(n), Some(d)) = (a.number, &a.disk) {
            let _ = write!(what, " {n} of {d}");
        }
        let status = format!("{:?}", a.status).to_lowercase();
        let _ = writeln!(
            s,
            "{what} {}: {} -> {} bytes: {status}",
            a.device, a.old_size, a.new_size
        );
        for step in &a.steps {
            let _ = writeln!(s, "  {step}");
        }
        if let Some(n) = &a.note {
            let _ = writeln!(s, "  ({n})");
        }
    }
    s.trim_end().to_string()
}

/// Is growth turned off, by `preroot.grow=0` or by the user-data? The reason if so.
fn turned_off(cmd: &crate::cmdline::Cmdline, ctx: &crate::context::Context) -> Option<String> {
    if cmd.grow == Some(false) {
        return Some("preroot.grow=0".into());
    }
    let ud = ctx.user_data.as_ref()?;
    let bytes = crate::state::read_secret(&ud.path).ok()?;
    let d = crate::cloudconfig::directives(&bytes).ok()?;
    if d.growpart_off == Some(true) {
        Some("user-data: growpart: {mode: off}".into())
    } else if d.resize_rootfs == Some(false) {
        Some("user-data: resize_rootfs: false".into())
    } else {
        None
    }
}

fn boot_options(cmd: &crate::cmdline::Cmdline) -> Options {
    Options {
        dry_run: false,
        lv: cmd.grow_lv.unwrap_or(true),
        deadline: Deadline::after(Duration::from_secs(60)),
    }
}

fn outcome(actions: &[Action]) -> String {
    let done: Vec<String> = actions
        .iter()
        .filter(|a| a.status == Status::Done)
        .map(|a| format!("{} {} {} -> {}", a.kind, a.device, a.old_size, a.new_size))
        .collect();
    let mut out = if done.is_empty() {
        "ok: nothing to grow".to_string()
    } else {
        format!("ok: grew {}", done.join(", "))
    };
    // A layer left as it was (a LUKS2 mapping without a key, LUKS1, another dm device) is no
    // error, but `preroot show` should say so.
    for a in actions.iter().filter(|a| a.status == Status::Skipped) {
        if let Some(note) = &a.note {
            out.push_str(&format!("; {} {} not grown: {note}", a.kind, a.device));
        }
    }
    out
}

/// The `grow` phase (before `sysroot.mount`): partition, LUKS2 mapping, PV, LV of `root=`. Records the
/// report in the context's `extra.grow` and any failure in `errors`; returns the outcome.
pub fn phase_grow(
    cmd: &crate::cmdline::Cmdline,
    root: &Root,
    ctx: &mut crate::context::Context,
) -> String {
    if let Some(why) = turned_off(cmd, ctx) {
        log::info!("grow: off ({why})");
        return format!("ok: growth off ({why})");
    }
    let Some(spec) = cmd.root.clone() else {
        return "ok: no root= on the kernel command line; nothing grown".into();
    };
    match grow_block(root, &spec, &boot_options(cmd)) {
        Ok(report) => {
            let outcome = outcome(&report.actions);
            if let Ok(v) = serde_json::to_value(&report) {
                ctx.extra.insert("grow".into(), v);
            }
            outcome
        }
        Err(e) => {
            ctx.error("grow", &e.object, e.message.clone());
            format!("{e}")
        }
    }
}

/// The filesystem part of the `sysroot` phase: grow what is mounted at `/sysroot`.
/// Recorded in `extra.grow_filesystem`.
pub fn phase_sysroot(
    cmd: &crate::cmdline::Cmdline,
    root: &Root,
    ctx: &mut crate::context::Context,
) -> String {
    if let Some(why) = turned_off(cmd, ctx) {
        return format!("ok: growth off ({why})");
    }
    match fs::grow(root, "/sysroot", &boot_options(cmd)) {
        Ok(a) => {
            let outcome = outcome(std::slice::from_ref(&a));
            if let Ok(v) = serde_json::to_value(&a) {
                ctx.extra.insert("grow_filesystem".into(), v);
            }
            outcome
        }
        Err(e) => {
            ctx.error("grow", &e.object, e.message.clone());
            format!("{e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        // Against the bit-at-a-time definition, over every byte value and a long run.
        let bitwise = |data: &[u8]| {
            let mut crc = !0u32;
            for &b in data {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
                }
            }
            !crc
        };
        let all: Vec<u8> = (0..=255u8).cycle().take(16 * 1024 + 7).collect();
        assert_eq!(crc32(&all), bitwise(&all));
    }

    #[test]
    fn outcomes() {
        let mut grown = Action::new("partition", "/dev/vda2");
        (grown.status, grown.old_size, grown.new_size) = (Status::Done, 1, 2);
        let mut skipped = Action::new("luks", "/dev/dm-0");
        skipped.status = Status::Skipped;
        skipped.note = Some("no key".into());
        for (case, actions, want) in [
            ("nothing", vec![], "ok: nothing to grow"),
            (
                "grown",
                vec![grown.clone()],
                "ok: grew partition /dev/vda2 1 -> 2",
            ),
            (
                "grown, then skipped",
                vec![grown, skipped],
                "ok: grew partition /dev/vda2 1 -> 2; luks /dev/dm-0 not grown: no key",
            ),
        ] {
            assert_eq!(outcome(&actions), want, "case {case}");
        }
    }

    #[test]
    fn dev_numbers() {
        assert_eq!(split_dev(0x0803), (8, 3));
        assert_eq!(split_dev((259 << 8) | 7), (259, 7));
    }

    /// `plan_table` on an image in memory, as fuzz/fuzz_targets/disk.rs drives it: the plan
    /// applied reads back, and a second plan writes nothing.
    #[test]
    #[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
    fn plan_table_in_memory_then_nothing_to_do() {
        let mib = 1u64 << 20;
        let mut img = gpt::tests::image(512, 8 * mib / 512, &[(1, 2048, 4095)]);
        img.resize(16 * mib as usize, 0);
        let sectors = 16 * mib / 512;
        let plan = |img: &[u8]| {
            plan_table(
                &mut |off, len| {
                    let off = usize::try_from(off).unwrap();
                    img.get(off..off + len)
                        .map(<[u8]>::to_vec)
                        .ok_or_else(|| gerr(ErrorKind::Io, "mem", "past the end"))
                },
                "mem",
                1,
                512,
                sectors,
            )
        };
        let first = plan(&img).unwrap();
        assert_eq!((first.format, first.start_lba), ("gpt", 2048));
        assert_eq!(first.new_sectors, sectors - 2048 - 2048);
        gpt::tests::apply(&mut img, &first.steps);
        let second = plan(&img).unwrap();
        assert!(second.steps.is_empty(), "{second:?}");
        assert_eq!(second.old_sectors, first.new_sectors);
        let short = plan(&img[..4096]).unwrap_err();
        assert_eq!(short.kind, ErrorKind::Io, "{short}");
    }
}
