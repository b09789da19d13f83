//! ext2/3/4 reader: a NoCloud `cidata` seed (or a `config-2`/`CONTEXT` medium) made with
//! `mkfs.ext4 -d DIR -L cidata` (or `mkfs.ext2`/`mkfs.ext3`), as an image file or a device, read
//! with positioned reads, never mounted and never loaded whole. cloud-init reads any filesystem
//! labelled `cidata`; the kernel could mount this one, but preroot reads every medium in user
//! space, so no mount, no udev and no kernel filesystem code ever parses a hostile image.
//!
//! Owns the superblock and its feature flags, group descriptors (32 and 64 bytes, also where
//! `meta_bg` puts them), inodes of any size, both block maps (extent trees, and the direct and
//! indirect blocks of ext2/ext3), inline data (`system.data`), directories and path lookup.
//!
//! Reads these incompatible features: `filetype`, `extents`, `64bit`, `flex_bg`, `meta_bg`,
//! `inline_data`, `largedir`, `csum_seed`, `mmp`, `ea_inode`, `casefold`. Refuses, naming the
//! feature: `compression`, `journal_dev`, `dirdata`, `encrypt` (and encrypted inodes), any
//! incompatible bit unknown here, and `needs_recovery` (the journal holds writes that are not in
//! place yet, so the blocks may say something stale: run e2fsck). Compatible and
//! read-only-compatible features (`has_journal`, `dir_index`, `sparse_super`, `sparse_super2`,
//! `huge_file`, `metadata_csum`, `bigalloc`, …) do not change how a reader finds data and are
//! accepted whatever their bits.
//!
//! Does not support: checksums (`metadata_csum`, `gdt_csum` are not verified: they catch
//! accidental damage, a crafted image carries valid ones, and the limits below are what keep a
//! hostile image harmless), the journal (never replayed), htree indexes (an indexed directory is
//! read linearly: its leaves are ordinary directory blocks and its index blocks look like empty
//! entries), extended attributes other than `system.data` in the inode body, Unicode case
//! folding (a `casefold` directory is searched exactly, then with ASCII case folding), and links:
//! a symbolic link, as the file read or as a directory on the way, is an error that names its
//! target ([`MediaErrorKind::Corrupt`]), never followed. Its target is a path on whatever system
//! follows it (`user-data -> /etc/shadow` is the initramfs's shadow file, not the medium's), and
//! an error rather than absence says why the file is missing. FIFOs, devices and sockets are
//! errors too. An entry's file type byte is not trusted: the inode's mode decides.
//!
//! Spec: Linux `Documentation/filesystems/ext4/` (the on-disk format): `super.rst` (superblock
//! at byte 1024, feature bits), `group_descr.rst`, `inodes.rst` (`i_block`, flags, `i_size_high`,
//! `i_extra_isize`), `ifork.rst` (extent header magic 0xF30A, leaves and indexes, direct and
//! indirect blocks), `directory.rst` (linear entries, `rec_len` rules as `ext4_check_dir_entry`
//! applies them), `inlinedata.rst` and `attributes.rst` (the in-inode `system.data` attribute),
//! `blockgroup.rst` (where `meta_bg` and `sparse_super`/`sparse_super2` put descriptors).
//!
//! Limits: a directory is at most [`MAX_DIR_BYTES`], a path at most [`MAX_DEPTH`] components,
//! an extent tree at most [`MAX_EXTENT_DEPTH`] levels (the kernel's) and, with the indirect maps,
//! at most [`MAX_MAP_BLOCKS`] mapping blocks per read; every read of an open image counts
//! against [`MAX_IMAGE_READ`] bytes and stops at the boot's deadline ([`super::Budget`], which
//! every image reader shares). A file's size is checked against the caller's cap before
//! anything is read. Loops cannot form: each extent-tree level must be exactly one less deep
//! than its parent and leaves must advance through the file, indirect maps have a fixed depth,
//! and a lookup that meets a directory already on its path (a directory that contains itself)
//! is an error. Parsed directories are kept per open image (at most [`MAX_CACHED_DIRS`], and
//! [`MAX_CACHE_BYTES`] in all), like `fat.rs`.
//!
//! Panic contract: nothing here panics on any image (no indexing, checked arithmetic, bounded
//! and fallible allocations); the byte-level parsers ([`parse_superblock`], [`inode_table`],
//! [`parse_inode`], [`extent_header`], [`extent_leaf`], [`extent_index`], [`dirent`],
//! [`inline_data_value`]) allocate nothing and carry `#[no_panic]`. Every structural problem is
//! [`MediaErrorKind::Corrupt`] naming the inode, block or byte.
#![deny(clippy::arithmetic_side_effects)]

use super::{components, Budget, DirCache, MediaError, MediaErrorKind, Tree};
use crate::bytes::{array, le_u16, le_u32};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

/// Largest directory we read, in bytes.
pub const MAX_DIR_BYTES: u64 = 1 << 20;
/// Most path components in a lookup.
pub const MAX_DEPTH: usize = 64;
/// Deepest extent tree (the kernel's `EXT4_MAX_EXTENT_DEPTH`).
pub const MAX_EXTENT_DEPTH: u16 = 5;
/// Most extent-tree or indirect blocks read for one file or directory. A 16 MiB file cut into
/// single-block extents on 1 KiB blocks needs about 200.
pub const MAX_MAP_BLOCKS: u32 = 1024;
/// Most bytes read from one open image, metadata and file data together (the budget every
/// image reader shares, [`super::Budget`], which also stops at the boot's deadline).
pub const MAX_IMAGE_READ: u64 = super::MAX_IMAGE_READ;
/// Longest symbolic link target read, for the error message only.
const MAX_LINK_TARGET: u64 = 4096;

/// Byte offset of the primary superblock, and its length.
pub const SUPERBLOCK_AT: u64 = 1024;
pub const SUPERBLOCK_LEN: usize = 1024;
/// The root directory's inode.
const ROOT_INO: u32 = 2;
/// Bytes of `i_block`: the extent tree root, the block map or inline data.
const I_BLOCK_LEN: usize = 60;
/// The inode fields before `i_extra_isize` (rev 0 inodes are this long).
const GOOD_OLD_INODE_SIZE: usize = 128;

/// Superblock fields (`super.rst`), as offsets into the superblock.
mod sb {
    pub const INODES_COUNT: usize = 0x0;
    pub const BLOCKS_COUNT_LO: usize = 0x4;
    pub const FIRST_DATA_BLOCK: usize = 0x14;
    pub const LOG_BLOCK_SIZE: usize = 0x18;
    pub const BLOCKS_PER_GROUP: usize = 0x20;
    pub const INODES_PER_GROUP: usize = 0x28;
    pub const MAGIC: usize = 0x38;
    pub const REV_LEVEL: usize = 0x4C;
    pub const INODE_SIZE: usize = 0x58;
    pub const FEATURE_COMPAT: usize = 0x5C;
    pub const FEATURE_INCOMPAT: usize = 0x60;
    pub const FEATURE_RO_COMPAT: usize = 0x64;
    pub const DESC_SIZE: usize = 0xFE;
    pub const FIRST_META_BG: usize = 0x104;
    pub const BLOCKS_COUNT_HI: usize = 0x150;
    pub const BACKUP_BGS: usize = 0x24C;
}

const MAGIC: u16 = 0xEF53;
const COMPAT_SPARSE_SUPER2: u32 = 0x200;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const INCOMPAT_COMPRESSION: u32 = 0x1;
const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_EXTENTS: u32 = 0x40;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_MMP: u32 = 0x100;
const INCOMPAT_FLEX_BG: u32 = 0x200;
const INCOMPAT_EA_INODE: u32 = 0x400;
const INCOMPAT_DIRDATA: u32 = 0x1000;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const INCOMPAT_LARGEDIR: u32 = 0x4000;
const INCOMPAT_INLINE_DATA: u32 = 0x8000;
const INCOMPAT_ENCRYPT: u32 = 0x10000;
const INCOMPAT_CASEFOLD: u32 = 0x20000;
/// The incompatible features this reader understands.
const INCOMPAT_READ: u32 = INCOMPAT_FILETYPE
    | INCOMPAT_META_BG
    | INCOMPAT_EXTENTS
    | INCOMPAT_64BIT
    | INCOMPAT_MMP
    | INCOMPAT_FLEX_BG
    | INCOMPAT_EA_INODE
    | INCOMPAT_CSUM_SEED
    | INCOMPAT_LARGEDIR
    | INCOMPAT_INLINE_DATA
    | INCOMPAT_CASEFOLD;
/// Incompatible features refused by name, with why.
const INCOMPAT_REFUSED: [(u32, &str); 5] = [
    (INCOMPAT_COMPRESSION, "compression"),
    (
        INCOMPAT_RECOVER,
        "needs_recovery (the journal holds writes not yet in place; run e2fsck)",
    ),
    (
        INCOMPAT_JOURNAL_DEV,
        "journal_dev (an external journal, not a filesystem)",
    ),
    (INCOMPAT_DIRDATA, "dirdata"),
    (INCOMPAT_ENCRYPT, "encrypt"),
];

/// Inode fields (`inodes.rst`).
const I_MODE: usize = 0x0;
const I_SIZE_LO: usize = 0x4;
const I_LINKS_COUNT: usize = 0x1A;
const I_FLAGS: usize = 0x20;
const I_BLOCK: usize = 0x28;
const I_SIZE_HIGH: usize = 0x6C;
const I_EXTRA_ISIZE: usize = 0x80;
/// Inode flags.
const FL_ENCRYPT: u32 = 0x800;
const FL_EXTENTS: u32 = 0x8_0000;
const FL_INLINE_DATA: u32 = 0x1000_0000;
const FL_CASEFOLD: u32 = 0x4000_0000;

/// Extent tree (`ifork.rst`): header and entries are 12 bytes each.
const EXTENT_MAGIC: u16 = 0xF30A;
const EXTENT_ENTRY: usize = 12;
/// An `ee_len` above this marks an unwritten (preallocated, reads as zeros) extent.
const EXT_INIT_MAX_LEN: u16 = 32768;

/// In-inode extended attributes (`attributes.rst`).
const XATTR_MAGIC: u32 = 0xEA02_0000;
const XATTR_ENTRY: usize = 16;
const XATTR_INDEX_SYSTEM: u8 = 7;

/// Why a superblock is not one we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbError {
    /// Shorter than [`SUPERBLOCK_LEN`], or no 0xEF53 magic.
    NotExt,
    /// A field whose value we cannot use: (field, value).
    Field(&'static str, u64),
    /// An incompatible feature we do not read: (name, bits).
    Feature(&'static str, u32),
}

impl fmt::Display for SbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SbError::NotExt => write!(f, "no ext2/3/4 superblock (magic 0xEF53) at byte 1024"),
            SbError::Field(field, value) => write!(f, "superblock field {field} is {value}"),
            SbError::Feature(name, bits) => {
                write!(
                    f,
                    "unsupported incompatible feature {name} (bits {bits:#x})"
                )
            }
        }
    }
}

/// The superblock facts a reader needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub inodes_count: u32,
    pub blocks_count: u64,
    pub first_data_block: u32,
    /// 1024..=65536, a power of two.
    pub block_size: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    /// 128..=block_size, a power of two.
    pub inode_size: u16,
    /// 32, or with `64bit` 64..=1024 (a power of two).
    pub desc_size: u16,
    pub first_meta_bg: u32,
    pub compat: u32,
    pub incompat: u32,
    pub ro_compat: u32,
    /// `sparse_super2`: the only groups with backup superblocks besides group 0.
    pub backup_bgs: [u32; 2],
}

/// Parses and checks the superblock (the [`SUPERBLOCK_LEN`] bytes at byte 1024).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn parse_superblock(b: &[u8]) -> Result<Superblock, SbError> {
    if b.len() < SUPERBLOCK_LEN || le_u16(b, sb::MAGIC) != Some(MAGIC) {
        return Err(SbError::NotExt);
    }
    // In bounds: the length was checked above.
    let u32_at = |o: usize| le_u32(b, o).unwrap_or(0);
    let u16_at = |o: usize| le_u16(b, o).unwrap_or(0);
    let log = u32_at(sb::LOG_BLOCK_SIZE);
    let block_size = match 1024u32.checked_shl(log) {
        Some(s) if log <= 6 => s,
        _ => return Err(SbError::Field("s_log_block_size", u64::from(log))),
    };
    let incompat = u32_at(sb::FEATURE_INCOMPAT);
    for (bit, name) in INCOMPAT_REFUSED {
        if incompat & bit != 0 {
            return Err(SbError::Feature(name, bit));
        }
    }
    let unknown = incompat & !INCOMPAT_READ;
    if unknown != 0 {
        return Err(SbError::Feature("unknown to this reader", unknown));
    }
    // Revision 0 has fixed 128-byte inodes.
    let inode_size = if u32_at(sb::REV_LEVEL) == 0 {
        128
    } else {
        u16_at(sb::INODE_SIZE)
    };
    if !inode_size.is_power_of_two() || inode_size < 128 || u32::from(inode_size) > block_size {
        return Err(SbError::Field("s_inode_size", u64::from(inode_size)));
    }
    let is64 = incompat & INCOMPAT_64BIT != 0;
    let desc_size = if is64 { u16_at(sb::DESC_SIZE) } else { 32 };
    if is64 && (!desc_size.is_power_of_two() || !(64..=1024).contains(&desc_size)) {
        return Err(SbError::Field("s_desc_size", u64::from(desc_size)));
    }
    let hi = if is64 { u32_at(sb::BLOCKS_COUNT_HI) } else { 0 };
    let blocks_count = (u64::from(hi) << 32) | u64::from(u32_at(sb::BLOCKS_COUNT_LO));
    let first_data_block = u32_at(sb::FIRST_DATA_BLOCK);
    if blocks_count <= u64::from(first_data_block) {
        return Err(SbError::Field("s_blocks_count", blocks_count));
    }
    let blocks_per_group = u32_at(sb::BLOCKS_PER_GROUP);
    if blocks_per_group == 0 {
        return Err(SbError::Field("s_blocks_per_group", 0));
    }
    // One inode bitmap block per group holds at most 8 bits per byte.
    let inodes_per_group = u32_at(sb::INODES_PER_GROUP);
    if inodes_per_group == 0 || inodes_per_group > block_size.saturating_mul(8) {
        return Err(SbError::Field(
            "s_inodes_per_group",
            u64::from(inodes_per_group),
        ));
    }
    let inodes_count = u32_at(sb::INODES_COUNT);
    if inodes_count < ROOT_INO {
        return Err(SbError::Field("s_inodes_count", u64::from(inodes_count)));
    }
    Ok(Superblock {
        inodes_count,
        blocks_count,
        first_data_block,
        block_size,
        blocks_per_group,
        inodes_per_group,
        inode_size,
        desc_size,
        first_meta_bg: u32_at(sb::FIRST_META_BG),
        compat: u32_at(sb::FEATURE_COMPAT),
        incompat,
        ro_compat: u32_at(sb::FEATURE_RO_COMPAT),
        backup_bgs: [
            u32_at(sb::BACKUP_BGS),
            u32_at(sb::BACKUP_BGS.saturating_add(4)),
        ],
    })
}

impl Superblock {
    fn has(&self, incompat: u32) -> bool {
        self.incompat & incompat != 0
    }

    /// Number of block groups.
    #[cfg_attr(feature = "nopanic", no_panic::no_panic)]
    pub fn group_count(&self) -> u64 {
        self.blocks_count
            .saturating_sub(u64::from(self.first_data_block))
            .div_ceil(u64::from(self.blocks_per_group.max(1)))
    }

    /// Does group `g` hold a superblock (and so a descriptor table) copy? (`blockgroup.rst`;
    /// `ext4_bg_has_super`.)
    #[cfg_attr(feature = "nopanic", no_panic::no_panic)]
    pub fn has_super(&self, g: u64) -> bool {
        if g == 0 {
            return true;
        }
        if self.compat & COMPAT_SPARSE_SUPER2 != 0 {
            return self.backup_bgs.iter().any(|b| u64::from(*b) == g);
        }
        if g == 1 || self.ro_compat & RO_COMPAT_SPARSE_SUPER == 0 {
            return true;
        }
        // Powers of 3, 5 and 7 (all odd).
        g % 2 == 1
            && [3u64, 5, 7].into_iter().any(|base| {
                let mut p = base;
                while p < g {
                    match p.checked_mul(base) {
                        Some(n) => p = n,
                        None => return false,
                    }
                }
                p == g
            })
    }

    /// Byte offset of group `g`'s descriptor (`ext4`'s `descriptor_loc`): the table follows
    /// the superblock's block, except under `meta_bg`, where each run of one block's worth of
    /// groups keeps its descriptors in the first block of its first group (after any
    /// superblock copy).
    #[cfg_attr(feature = "nopanic", no_panic::no_panic)]
    pub fn desc_offset(&self, g: u64) -> Option<u64> {
        let per_block = u64::from(self.block_size).checked_div(u64::from(self.desc_size))?;
        let nr = g.checked_div(per_block)?;
        let within = g.checked_rem(per_block)?;
        // The block holding byte 1024: block 1 with 1 KiB blocks, else block 0.
        let sb_block = 1024u64.checked_div(u64::from(self.block_size))?;
        let block = if !self.has(INCOMPAT_META_BG) || nr < u64::from(self.first_meta_bg) {
            sb_block.checked_add(1)?.checked_add(nr)?
        } else {
            let first = nr.checked_mul(per_block)?;
            u64::from(self.first_data_block)
                .checked_add(first.checked_mul(u64::from(self.blocks_per_group))?)?
                .checked_add(u64::from(self.has_super(first)))?
        };
        block
            .checked_mul(u64::from(self.block_size))?
            .checked_add(within.checked_mul(u64::from(self.desc_size))?)
    }
}

/// The inode table's first block from a group descriptor (`group_descr.rst`:
/// `bg_inode_table_lo` at 0x8, `_hi` at 0x28 in 64-byte descriptors).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn inode_table(desc: &[u8], sb: &Superblock) -> Option<u64> {
    let lo = le_u32(desc, 0x8)?;
    let hi = if sb.desc_size >= 64 {
        le_u32(desc, 0x28)?
    } else {
        0
    };
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// What an inode is, by its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// FIFO, character or block device, socket, or an invalid type: the `S_IFMT` bits.
    Other(u16),
}

/// The inode fields a reader needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inode {
    pub mode: u16,
    /// `i_size_lo` and `i_size_high`.
    pub size: u64,
    pub links: u16,
    pub flags: u32,
    /// `i_block`: extent tree root, block map, inline data or a fast symlink's target.
    pub block: [u8; I_BLOCK_LEN],
}

impl Inode {
    pub fn kind(&self) -> Kind {
        match self.mode & 0xF000 {
            0x8000 => Kind::File,
            0x4000 => Kind::Dir,
            0xA000 => Kind::Symlink,
            other => Kind::Other(other),
        }
    }
}

/// Parses the first 128 bytes of an on-disk inode.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn parse_inode(raw: &[u8]) -> Option<Inode> {
    let size_hi = le_u32(raw, I_SIZE_HIGH)?;
    Some(Inode {
        mode: le_u16(raw, I_MODE)?,
        size: (u64::from(size_hi) << 32) | u64::from(le_u32(raw, I_SIZE_LO)?),
        links: le_u16(raw, I_LINKS_COUNT)?,
        flags: le_u32(raw, I_FLAGS)?,
        block: array(raw, I_BLOCK)?,
    })
}

/// An extent tree node's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentHeader {
    pub entries: u16,
    pub max: u16,
    pub depth: u16,
}

/// Checks the header of an extent tree node (`i_block`, or a whole block below it): the magic,
/// entries within the room it claims, that room within the node, depth at most
/// [`MAX_EXTENT_DEPTH`].
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn extent_header(node: &[u8]) -> Result<ExtentHeader, &'static str> {
    let (Some(magic), Some(entries), Some(max), Some(depth)) = (
        le_u16(node, 0),
        le_u16(node, 2),
        le_u16(node, 4),
        le_u16(node, 6),
    ) else {
        return Err("extent node shorter than its header");
    };
    if magic != EXTENT_MAGIC {
        return Err("no extent header magic (0xF30A)");
    }
    if entries > max {
        return Err("more entries than the node's room");
    }
    let room = usize::from(max)
        .checked_add(1)
        .and_then(|n| n.checked_mul(EXTENT_ENTRY));
    if room.is_none_or(|r| r > node.len()) {
        return Err("room for more entries than the node holds");
    }
    if depth > MAX_EXTENT_DEPTH {
        return Err("deeper than 5 levels");
    }
    Ok(ExtentHeader {
        entries,
        max,
        depth,
    })
}

/// A leaf entry: `len` blocks of the file from `logical` on are at `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub logical: u32,
    pub len: u16,
    pub start: u64,
    /// Allocated but never written: reads as zeros.
    pub unwritten: bool,
}

/// Byte offset of entry `i` of a node (after the 12-byte header).
fn entry_at(i: u16) -> Option<usize> {
    usize::from(i).checked_add(1)?.checked_mul(EXTENT_ENTRY)
}

/// Leaf entry `i` of an extent node.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn extent_leaf(node: &[u8], i: u16) -> Option<Extent> {
    let at = entry_at(i)?;
    let raw_len = le_u16(node, at.checked_add(4)?)?;
    let (len, unwritten) = if raw_len > EXT_INIT_MAX_LEN {
        (raw_len.checked_sub(EXT_INIT_MAX_LEN)?, true)
    } else {
        (raw_len, false)
    };
    let hi = le_u16(node, at.checked_add(6)?)?;
    let lo = le_u32(node, at.checked_add(8)?)?;
    Some(Extent {
        logical: le_u32(node, at)?,
        len,
        start: (u64::from(hi) << 32) | u64::from(lo),
        unwritten,
    })
}

/// Index entry `i` of an extent node: (first logical block covered, child node's block).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn extent_index(node: &[u8], i: u16) -> Option<(u32, u64)> {
    let at = entry_at(i)?;
    let lo = le_u32(node, at.checked_add(4)?)?;
    let hi = le_u16(node, at.checked_add(8)?)?;
    Some((le_u32(node, at)?, (u64::from(hi) << 32) | u64::from(lo)))
}

/// One directory entry (`directory.rst`, `struct ext4_dir_entry_2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dirent<'a> {
    /// 0 for an unused entry.
    pub inode: u32,
    pub name: &'a [u8],
    /// Bytes to the next entry.
    pub rec_len: usize,
}

/// The entry at byte `at` of one directory block (or inline area), checked as
/// `ext4_check_dir_entry` does: `rec_len` at least 12, a multiple of 4, large enough for the
/// name, and within the block. Without `filetype`, `name_len` is 16 bits.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn dirent(block: &[u8], at: usize, filetype: bool) -> Result<Dirent<'_>, &'static str> {
    let (Some(inode), Some(raw_rec)) = (
        le_u32(block, at),
        at.checked_add(4).and_then(|o| le_u16(block, o)),
    ) else {
        return Err("entry header runs past the block");
    };
    let name_at = at.checked_add(6).ok_or("offset overflow")?;
    let name_len = if filetype {
        block.get(name_at).map(|n| usize::from(*n))
    } else {
        le_u16(block, name_at).map(usize::from)
    }
    .ok_or("entry header runs past the block")?;
    // 64 KiB blocks store a 65536-byte rec_len in 16 bits (`ext4_rec_len_from_disk`).
    let rec_len = if block.len() >= 65536 {
        match raw_rec {
            0 | 0xFFFF => 65536,
            r => usize::from(r & 0xFFFC) | (usize::from(r & 3) << 16),
        }
    } else {
        usize::from(raw_rec)
    };
    if rec_len < 12 {
        return Err("rec_len is smaller than the minimal 12");
    }
    if rec_len % 4 != 0 {
        return Err("rec_len is not a multiple of 4");
    }
    if name_len > 255 || name_len.saturating_add(8) > rec_len {
        return Err("rec_len is too small for name_len");
    }
    let end = at.checked_add(rec_len).ok_or("offset overflow")?;
    if end > block.len() {
        return Err("entry runs past the end of the block");
    }
    let name_start = at.checked_add(8).ok_or("offset overflow")?;
    let name = block
        .get(name_start..name_start.saturating_add(name_len))
        .ok_or("name runs past the block")?;
    Ok(Dirent {
        inode,
        name,
        rec_len,
    })
}

/// The value of the `system.data` attribute in an inode's body (the inline data past
/// `i_block`), `Ok(None)` when the body has no attributes or not that one.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn inline_data_value(raw: &[u8]) -> Result<Option<&[u8]>, &'static str> {
    if raw.len() <= GOOD_OLD_INODE_SIZE {
        return Ok(None);
    }
    let extra = le_u16(raw, I_EXTRA_ISIZE).ok_or("inode too short")?;
    let header = GOOD_OLD_INODE_SIZE
        .checked_add(usize::from(extra))
        .ok_or("i_extra_isize overflow")?;
    if header % 4 != 0 {
        return Err("i_extra_isize is not a multiple of 4");
    }
    if le_u32(raw, header) != Some(XATTR_MAGIC) {
        return Ok(None);
    }
    // Entries and value offsets count from just after the 4-byte magic.
    let area = raw
        .get(header.checked_add(4).ok_or("offset overflow")?..)
        .unwrap_or_default();
    let mut at = 0usize;
    loop {
        match le_u32(area, at) {
            None => return Err("attribute list runs past the inode"),
            Some(0) => return Ok(None),
            Some(_) => {}
        }
        let (Some(&name_len), Some(&index), Some(offs), Some(inum), Some(size)) = (
            area.get(at),
            area.get(at.saturating_add(1)),
            le_u16(area, at.saturating_add(2)),
            le_u32(area, at.saturating_add(4)),
            le_u32(area, at.saturating_add(8)),
        ) else {
            return Err("attribute entry runs past the inode");
        };
        let name_at = at.saturating_add(XATTR_ENTRY);
        let name = area
            .get(name_at..name_at.saturating_add(usize::from(name_len)))
            .ok_or("attribute name runs past the inode")?;
        if index == XATTR_INDEX_SYSTEM && name == b"data" {
            if inum != 0 {
                return Err("system.data is stored in an EA inode");
            }
            let start = usize::from(offs);
            let len = usize::try_from(size).map_err(|_| "attribute size overflow")?;
            return area
                .get(start..start.saturating_add(len))
                .map(Some)
                .ok_or("system.data value runs past the inode");
        }
        // Entries are padded to 4 bytes; each is at least 16, so the walk always advances.
        let step = XATTR_ENTRY
            .saturating_add(usize::from(name_len))
            .saturating_add(3)
            & !3;
        at = at.saturating_add(step);
    }
}

/// One parsed directory: names stored back to back, entries pointing into them (about the
/// size of the raw directory, so the cache's byte budget bounds memory).
#[derive(Debug, Default)]
struct Dir {
    names: Vec<u8>,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: u32,
    len: u8,
    ino: u32,
}

impl Dir {
    fn name(&self, e: &Entry) -> &[u8] {
        let start = usize::try_from(e.at).unwrap_or(usize::MAX);
        self.names
            .get(start..start.saturating_add(usize::from(e.len)))
            .unwrap_or_default()
    }

    /// The inode of `name`: an exact match, else (in a `casefold` directory) an ASCII
    /// case-insensitive one.
    fn find(&self, name: &[u8], fold: bool) -> Option<u32> {
        let exact = self.entries.iter().find(|e| self.name(e) == name);
        exact
            .or_else(|| {
                fold.then(|| {
                    self.entries
                        .iter()
                        .find(|e| self.name(e).eq_ignore_ascii_case(name))
                })
                .flatten()
            })
            .map(|e| e.ino)
    }

    fn bytes(&self) -> usize {
        self.names.len().saturating_add(
            self.entries
                .len()
                .saturating_mul(std::mem::size_of::<Entry>()),
        )
    }
}

/// Adds the entries of one directory block (or inline area) to `dir`: unused entries,
/// `.` and `..`, and names with `/` or NUL are left out. `Err` is (byte offset, why).
fn parse_dir_block(
    block: &[u8],
    filetype: bool,
    inodes_count: u32,
    dir: &mut Dir,
) -> Result<(), (usize, String)> {
    let mut at = 0usize;
    while at < block.len() {
        let d = dirent(block, at, filetype).map_err(|why| (at, why.to_string()))?;
        let here = at;
        at = at.saturating_add(d.rec_len);
        if d.inode == 0 {
            continue;
        }
        if d.inode > inodes_count {
            return Err((
                here,
                format!(
                    "entry names inode {}, past the filesystem's {inodes_count}",
                    d.inode
                ),
            ));
        }
        let name = d.name;
        if name.is_empty()
            || name == b"."
            || name == b".."
            || name.contains(&b'/')
            || name.contains(&0)
        {
            continue;
        }
        let (Ok(name_at), Ok(len)) = (u32::try_from(dir.names.len()), u8::try_from(d.name.len()))
        else {
            return Err((here, "directory too large".into()));
        };
        dir.names.extend_from_slice(d.name);
        dir.entries.push(Entry {
            at: name_at,
            len,
            ino: d.inode,
        });
    }
    Ok(())
}

/// An inode as read: its number, parsed fields and raw bytes (for the in-inode attributes).
struct Node {
    ino: u32,
    inode: Inode,
    raw: Vec<u8>,
}

/// Reading one file's blocks: mapping blocks read so far, the next logical block a leaf may
/// start at, and a run of contiguous blocks not yet read.
#[derive(Default)]
struct MapState {
    map_blocks: u32,
    next: u64,
    /// (logical, physical, count)
    pending: Option<(u64, u64, u64)>,
}

/// An ext2/3/4 image or device, read in place.
pub struct Ext4Tree {
    file: File,
    object: String,
    /// Bytes in the image or device.
    size: u64,
    sb: Superblock,
    /// Bytes read so far (against [`MAX_IMAGE_READ`]) and the deadline.
    budget: Budget,
    /// Directories parsed so far, by inode (the image never changes while open).
    dirs: DirCache<u32, Dir>,
}

impl Ext4Tree {
    /// Opens `path` (image or device), checks its superblock and that the root is a directory.
    pub fn open(path: &Path) -> Result<Ext4Tree, MediaError> {
        Ext4Tree::open_with(path, Budget::default())
    }

    /// [`Ext4Tree::open`], every read counted against `budget`.
    pub fn open_with(path: &Path, budget: Budget) -> Result<Ext4Tree, MediaError> {
        let object = path.display().to_string();
        let (file, size) = super::open_image(path)?;
        let mut raw = [0u8; SUPERBLOCK_LEN];
        file.read_exact_at(&mut raw, SUPERBLOCK_AT).map_err(|e| {
            MediaError::new(
                object.clone(),
                MediaErrorKind::Corrupt(format!("superblock at byte 1024: {e}")),
            )
        })?;
        let sb = parse_superblock(&raw)
            .map_err(|e| MediaError::new(object.clone(), MediaErrorKind::Corrupt(e.to_string())))?;
        let tree = Ext4Tree {
            file,
            object,
            size,
            sb,
            budget,
            dirs: DirCache::default(),
        };
        let root = tree.node(ROOT_INO)?;
        if root.inode.kind() != Kind::Dir {
            return Err(tree.corrupt(format!(
                "root inode {ROOT_INO} is not a directory (mode {:#o})",
                root.inode.mode
            )));
        }
        Ok(tree)
    }

    fn corrupt(&self, why: String) -> MediaError {
        MediaError::new(self.object.clone(), MediaErrorKind::Corrupt(why))
    }

    fn path_error(&self, path: &str, why: String) -> MediaError {
        MediaError::new(
            format!("{}:{path}", self.object),
            MediaErrorKind::Corrupt(why),
        )
    }

    /// Reads exactly `buf.len()` bytes at `offset`, counted against [`MAX_IMAGE_READ`].
    fn read_into(&self, offset: u64, buf: &mut [u8], what: &str) -> Result<(), MediaError> {
        let len = buf.len();
        let len64 = u64::try_from(len).unwrap_or(u64::MAX);
        let end = offset.checked_add(len64);
        if end.is_none_or(|e| e > self.size) {
            return Err(self.corrupt(format!(
                "{what} at byte {offset} (+{len}) runs past the end of the image ({} bytes)",
                self.size
            )));
        }
        self.budget.charge(len64, what, &self.object)?;
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.corrupt(format!(
                    "{what} at byte {offset} (+{len}): image ends early"
                ))
            } else {
                MediaError::new(self.object.clone(), MediaErrorKind::Io(e))
            }
        })
    }

    fn block_size(&self) -> u64 {
        u64::from(self.sb.block_size)
    }

    /// Byte offset of `count` blocks from `start`, all within the filesystem.
    fn blocks_at(&self, start: u64, count: u64, what: &str) -> Result<u64, MediaError> {
        let end = start.checked_add(count);
        if start == 0 || end.is_none_or(|e| e > self.sb.blocks_count) {
            return Err(self.corrupt(format!(
                "{what}: blocks {start}+{count} outside the filesystem's 1..{}",
                self.sb.blocks_count
            )));
        }
        start
            .checked_mul(self.block_size())
            .ok_or_else(|| self.corrupt(format!("{what}: block {start} out of range")))
    }

    /// Reads one whole block.
    fn block(&self, n: u64, what: &str) -> Result<Vec<u8>, MediaError> {
        let at = self.blocks_at(n, 1, what)?;
        let mut buf = vec![0u8; usize::try_from(self.sb.block_size).unwrap_or(0)];
        self.read_into(at, &mut buf, &format!("{what} (block {n})"))?;
        Ok(buf)
    }

    /// Reads inode `ino` through its group descriptor.
    fn node(&self, ino: u32) -> Result<Node, MediaError> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(self.corrupt(format!(
                "inode {ino} outside the filesystem's 1..={}",
                self.sb.inodes_count
            )));
        }
        let index = u64::from(ino.saturating_sub(1));
        let ipg = u64::from(self.sb.inodes_per_group);
        let (Some(group), Some(slot)) = (index.checked_div(ipg), index.checked_rem(ipg)) else {
            return Err(self.corrupt("s_inodes_per_group is 0".into()));
        };
        if group >= self.sb.group_count() {
            return Err(self.corrupt(format!(
                "inode {ino}: group {group} past the filesystem's {} groups",
                self.sb.group_count()
            )));
        }
        let desc_at = self.sb.desc_offset(group).ok_or_else(|| {
            self.corrupt(format!("group {group}: descriptor location out of range"))
        })?;
        let mut desc = vec![0u8; usize::from(self.sb.desc_size.min(64))];
        self.read_into(desc_at, &mut desc, &format!("descriptor of group {group}"))?;
        let table = inode_table(&desc, &self.sb).unwrap_or(0);
        let inode_size = u64::from(self.sb.inode_size);
        // The whole table must lie in the filesystem.
        let table_blocks = ipg.saturating_mul(inode_size).div_ceil(self.block_size());
        let what = format!("inode table of group {group}");
        let table_at = self.blocks_at(table, table_blocks, &what)?;
        let at = slot
            .checked_mul(inode_size)
            .and_then(|o| table_at.checked_add(o))
            .ok_or_else(|| self.corrupt(format!("{what}: out of range")))?;
        let mut raw = vec![0u8; usize::from(self.sb.inode_size)];
        self.read_into(at, &mut raw, &format!("inode {ino}"))?;
        let inode =
            parse_inode(&raw).ok_or_else(|| self.corrupt(format!("inode {ino}: too short")))?;
        if inode.links == 0 {
            return Err(self.corrupt(format!(
                "inode {ino} is unused (no links) but a directory names it"
            )));
        }
        if inode.flags & FL_ENCRYPT != 0 {
            return Err(self.corrupt(format!("inode {ino} is encrypted: not supported")));
        }
        Ok(Node { ino, inode, raw })
    }

    /// The first `size` bytes of an inode's data (holes and unwritten extents read as zeros).
    fn data(&self, node: &Node, size: u64, what: &str) -> Result<Vec<u8>, MediaError> {
        let ino = node.ino;
        let flags = node.inode.flags;
        if flags & FL_INLINE_DATA != 0 {
            if !self.sb.has(INCOMPAT_INLINE_DATA) || flags & FL_EXTENTS != 0 {
                return Err(self.corrupt(format!(
                    "{what} (inode {ino}): inline data flag without the inline_data feature, or with extents"
                )));
            }
            let value = inline_data_value(&node.raw)
                .map_err(|why| self.corrupt(format!("{what} (inode {ino}): {why}")))?
                .unwrap_or_default();
            let have = I_BLOCK_LEN.saturating_add(value.len());
            if u64::try_from(have).unwrap_or(u64::MAX) < size {
                return Err(self.corrupt(format!(
                    "{what} (inode {ino}): {size} bytes, but only {have} inline"
                )));
            }
            return Ok(node
                .inode
                .block
                .iter()
                .chain(value)
                .take(usize::try_from(size).unwrap_or(0))
                .copied()
                .collect());
        }
        let len = usize::try_from(size)
            .map_err(|_| self.corrupt(format!("{what} (inode {ino}): {size} bytes")))?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len)
            .map_err(|_| self.corrupt(format!("{what} (inode {ino}): cannot hold {size} bytes")))?;
        buf.resize(len, 0);
        let nblocks = size.div_ceil(self.block_size());
        let mut st = MapState::default();
        let what = format!("{what} (inode {ino})");
        if flags & FL_EXTENTS != 0 {
            self.extents(&node.inode.block, None, nblocks, &mut st, &mut buf, &what)?;
        } else {
            self.block_map(&node.inode.block, nblocks, &mut st, &mut buf, &what)?;
        }
        self.flush(&mut st, &mut buf, &what)?;
        Ok(buf)
    }

    /// Queues `count` blocks at `phys` for logical block `logical`, merged with the pending
    /// run when contiguous, so a contiguous file is one read.
    fn push_run(
        &self,
        st: &mut MapState,
        buf: &mut [u8],
        run: (u64, u64, u64),
        what: &str,
    ) -> Result<(), MediaError> {
        if let Some((l, p, c)) = st.pending {
            let merged = (l.checked_add(c), p.checked_add(c), c.checked_add(run.2));
            if let (Some(nl), Some(np), Some(nc)) = merged {
                if nl == run.0 && np == run.1 {
                    st.pending = Some((l, p, nc));
                    return Ok(());
                }
            }
        }
        self.flush(st, buf, what)?;
        st.pending = Some(run);
        Ok(())
    }

    /// Reads the pending run into `buf` (clipped to its length).
    fn flush(&self, st: &mut MapState, buf: &mut [u8], what: &str) -> Result<(), MediaError> {
        let Some((logical, phys, count)) = st.pending.take() else {
            return Ok(());
        };
        let at = self.blocks_at(phys, count, what)?;
        let bs = self.block_size();
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        let start = logical.saturating_mul(bs).min(len);
        let end = logical.saturating_add(count).saturating_mul(bs).min(len);
        let (Ok(s), Ok(e)) = (usize::try_from(start), usize::try_from(end)) else {
            return Ok(());
        };
        if let Some(dst) = buf.get_mut(s..e).filter(|d| !d.is_empty()) {
            self.read_into(at, dst, &format!("{what}, block {phys}"))?;
        }
        Ok(())
    }

    fn count_map_block(&self, st: &mut MapState, what: &str) -> Result<(), MediaError> {
        st.map_blocks = st.map_blocks.saturating_add(1);
        if st.map_blocks > MAX_MAP_BLOCKS {
            return Err(self.corrupt(format!(
                "{what}: more than {MAX_MAP_BLOCKS} extent or indirect blocks"
            )));
        }
        Ok(())
    }

    /// Walks an extent tree node, reading the blocks below logical block `nblocks`. `depth` is
    /// what the node's header must say (`None` for the root in `i_block`): each level one less
    /// than its parent, so the walk cannot loop. Leaves must advance through the file.
    fn extents(
        &self,
        node: &[u8],
        depth: Option<u16>,
        nblocks: u64,
        st: &mut MapState,
        buf: &mut [u8],
        what: &str,
    ) -> Result<(), MediaError> {
        let h = extent_header(node)
            .map_err(|why| self.corrupt(format!("{what}: extent tree: {why}")))?;
        if depth.is_some_and(|d| d != h.depth) {
            return Err(self.corrupt(format!(
                "{what}: extent node at depth {} where {} was expected (a loop or a damaged tree)",
                h.depth,
                depth.unwrap_or(0)
            )));
        }
        for i in 0..h.entries {
            if h.depth == 0 {
                let e = extent_leaf(node, i)
                    .ok_or_else(|| self.corrupt(format!("{what}: extent {i} cut short")))?;
                let logical = u64::from(e.logical);
                if e.len == 0 || logical < st.next {
                    return Err(self.corrupt(format!(
                        "{what}: extent for blocks {logical}+{} empty or overlapping an earlier one",
                        e.len
                    )));
                }
                st.next = logical.saturating_add(u64::from(e.len));
                if logical >= nblocks {
                    break;
                }
                if !e.unwritten {
                    self.push_run(st, buf, (logical, e.start, u64::from(e.len)), what)?;
                }
            } else {
                let (logical, child) = extent_index(node, i)
                    .ok_or_else(|| self.corrupt(format!("{what}: index {i} cut short")))?;
                if u64::from(logical) >= nblocks {
                    break;
                }
                self.count_map_block(st, what)?;
                let block = self.block(child, &format!("{what}: extent node"))?;
                self.extents(
                    &block,
                    Some(h.depth.saturating_sub(1)),
                    nblocks,
                    st,
                    buf,
                    what,
                )?;
            }
        }
        Ok(())
    }

    /// Walks the ext2/3 block map: 12 direct blocks, then one single, one double and one
    /// triple indirect block. Block 0 is a hole.
    fn block_map(
        &self,
        i_block: &[u8; I_BLOCK_LEN],
        nblocks: u64,
        st: &mut MapState,
        buf: &mut [u8],
        what: &str,
    ) -> Result<(), MediaError> {
        let ptr = |i: usize| u64::from(le_u32(i_block, i.saturating_mul(4)).unwrap_or(0));
        for i in 0..12usize {
            let logical = u64::try_from(i).unwrap_or(u64::MAX);
            if logical >= nblocks {
                return Ok(());
            }
            let p = ptr(i);
            if p != 0 {
                self.push_run(st, buf, (logical, p, 1), what)?;
            }
        }
        let per = self.block_size() / 4;
        let mut base = 12u64;
        for (level, slot) in [(1u32, 12usize), (2, 13), (3, 14)] {
            if base >= nblocks {
                break;
            }
            let p = ptr(slot);
            if p != 0 {
                self.indirect(p, level, base, nblocks, st, buf, what)?;
            }
            base = base.saturating_add(per.saturating_pow(level));
        }
        Ok(())
    }

    /// One indirect block of `level` (1: pointers to data) covering logical blocks from `base`.
    #[allow(clippy::too_many_arguments)]
    fn indirect(
        &self,
        block: u64,
        level: u32,
        base: u64,
        nblocks: u64,
        st: &mut MapState,
        buf: &mut [u8],
        what: &str,
    ) -> Result<(), MediaError> {
        self.count_map_block(st, what)?;
        let ptrs = self.block(block, &format!("{what}: indirect block"))?;
        let span = (self.block_size() / 4).saturating_pow(level.saturating_sub(1));
        for (j, raw) in ptrs.chunks_exact(4).enumerate() {
            let logical = u64::try_from(j)
                .unwrap_or(u64::MAX)
                .saturating_mul(span)
                .saturating_add(base);
            if logical >= nblocks {
                break;
            }
            let p = u64::from(le_u32(raw, 0).unwrap_or(0));
            if p == 0 {
                continue;
            }
            if level == 1 {
                self.push_run(st, buf, (logical, p, 1), what)?;
            } else {
                self.indirect(p, level.saturating_sub(1), logical, nblocks, st, buf, what)?;
            }
        }
        Ok(())
    }

    /// The entries of directory `node` (at `path`, for messages), parsed once and then taken
    /// from the cache.
    fn dir(&self, node: &Node, path: &str) -> Result<Rc<Dir>, MediaError> {
        if let Some(d) = self.dirs.get(&node.ino) {
            return Ok(d);
        }
        let ino = node.ino;
        let shown = if path.is_empty() { "/" } else { path };
        let what = format!("directory {shown:?} (inode {ino})");
        let size = node.inode.size;
        if size > MAX_DIR_BYTES {
            return Err(self.corrupt(format!(
                "{what}: {size} bytes, more than the {MAX_DIR_BYTES}-byte limit"
            )));
        }
        let filetype = self.sb.has(INCOMPAT_FILETYPE);
        let count = self.sb.inodes_count;
        let mut dir = Dir::default();
        let bad = |area: &str, (at, why): (usize, String)| {
            self.corrupt(format!("{what}: {area}, entry at byte {at}: {why}"))
        };
        if node.inode.flags & FL_INLINE_DATA != 0 {
            if !self.sb.has(INCOMPAT_INLINE_DATA) {
                return Err(self.corrupt(format!(
                    "{what}: inline data flag without the inline_data feature"
                )));
            }
            // The first 4 bytes of i_block are the parent's inode (the implicit `..`).
            let inline = node.inode.block.get(4..).unwrap_or_default();
            parse_dir_block(inline, filetype, count, &mut dir)
                .map_err(|e| bad("inline entries", e))?;
            let more = inline_data_value(&node.raw)
                .map_err(|why| self.corrupt(format!("{what}: {why}")))?
                .unwrap_or_default();
            if !more.is_empty() {
                parse_dir_block(more, filetype, count, &mut dir)
                    .map_err(|e| bad("system.data entries", e))?;
            }
        } else {
            let bytes = self.data(node, size, &format!("directory {shown:?}"))?;
            let bs = usize::try_from(self.sb.block_size).unwrap_or(4096);
            for (i, block) in bytes.chunks(bs).enumerate() {
                parse_dir_block(block, filetype, count, &mut dir)
                    .map_err(|e| bad(&format!("block {i}"), e))?;
            }
        }
        let dir = Rc::new(dir);
        let weight = dir.bytes();
        Ok(self.dirs.keep(ino, dir, weight))
    }

    /// The error for a symbolic link met at `path`: never followed, its target named.
    fn link_error(&self, path: &str, node: &Node) -> MediaError {
        let size = node.inode.size;
        let flags = node.inode.flags;
        // A fast symlink keeps a target under 60 bytes in i_block itself.
        let target = if flags & (FL_EXTENTS | FL_INLINE_DATA) == 0
            && size < u64::try_from(I_BLOCK_LEN).unwrap_or(0)
        {
            Ok(node
                .inode
                .block
                .get(..usize::try_from(size).unwrap_or(0))
                .unwrap_or_default()
                .to_vec())
        } else if size <= MAX_LINK_TARGET {
            self.data(node, size, "symbolic link")
        } else {
            Ok(format!("({size} bytes)").into_bytes())
        };
        let target = match target {
            Ok(t) => format!("{:?}", String::from_utf8_lossy(&t)),
            Err(e) => format!("an unreadable target ({e})"),
        };
        self.path_error(
            path,
            format!("a symbolic link to {target}: links on a medium are never followed"),
        )
    }

    /// Finds `path`: `Ok(None)` if a component is missing or a file is used as a directory.
    fn lookup(&self, path: &str) -> Result<Option<Node>, MediaError> {
        let bad = || MediaError::new(format!("{}:{path}", self.object), MediaErrorKind::BadPath);
        let parts = components(path).ok_or_else(bad)?;
        if parts.len() > MAX_DEPTH {
            return Err(bad());
        }
        let mut cur = self.node(ROOT_INO)?;
        // Directories on the way, to refuse one that contains itself.
        let mut on_path = vec![ROOT_INO];
        let mut walked = String::new();
        for part in parts {
            match cur.inode.kind() {
                Kind::Dir => {}
                Kind::Symlink => return Err(self.link_error(&walked, &cur)),
                Kind::File | Kind::Other(_) => return Ok(None),
            }
            let fold = self.sb.has(INCOMPAT_CASEFOLD) && cur.inode.flags & FL_CASEFOLD != 0;
            let dir = self.dir(&cur, &walked)?;
            let Some(ino) = dir.find(part.as_bytes(), fold) else {
                return Ok(None);
            };
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(part);
            if on_path.contains(&ino) {
                return Err(self.path_error(
                    &walked,
                    format!("directory loop: inode {ino} is also a directory above it"),
                ));
            }
            cur = self.node(ino)?;
            on_path.push(ino);
        }
        Ok(Some(cur))
    }
}

/// A file type for messages.
fn kind_name(mode: u16) -> &'static str {
    match mode {
        0x1000 => "a FIFO",
        0x2000 => "a character device",
        0x6000 => "a block device",
        0xC000 => "a socket",
        _ => "an inode of unknown type",
    }
}

impl Tree for Ext4Tree {
    fn read(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>, MediaError> {
        let Some(node) = self.lookup(path)? else {
            return Ok(None);
        };
        match node.inode.kind() {
            Kind::File => {}
            Kind::Dir => return Ok(None),
            Kind::Symlink => return Err(self.link_error(path, &node)),
            Kind::Other(mode) => {
                return Err(self.path_error(
                    path,
                    format!(
                        "{} (inode {}), not a regular file",
                        kind_name(mode),
                        node.ino
                    ),
                ))
            }
        }
        let size = node.inode.size;
        if size > cap {
            return Err(MediaError::new(
                format!("{}:{path}", self.object),
                MediaErrorKind::TooLarge { size, cap },
            ));
        }
        self.data(&node, size, &format!("file {path:?}")).map(Some)
    }

    fn list(&self, dir: &str) -> Result<Option<Vec<String>>, MediaError> {
        let Some(node) = self.lookup(dir)? else {
            return Ok(None);
        };
        match node.inode.kind() {
            Kind::Dir => {}
            Kind::Symlink => return Err(self.link_error(dir, &node)),
            Kind::File | Kind::Other(_) => return Ok(None),
        }
        let d = self.dir(&node, dir)?;
        let mut names: Vec<String> = d
            .entries
            .iter()
            .map(|e| String::from_utf8_lossy(d.name(e)).into_owned())
            .collect();
        names.sort();
        names.dedup();
        Ok(Some(names))
    }

    fn describe(&self) -> String {
        self.object.clone()
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::type_complexity)] // tables build bytes by hand
mod tests {
    use super::*;

    /// A valid superblock: 1 KiB blocks, 8192 blocks, 2048 inodes, 256-byte inodes, `features`
    /// as (compat, incompat, ro_compat).
    fn superblock(incompat: u32) -> Vec<u8> {
        let mut b = vec![0u8; SUPERBLOCK_LEN];
        let mut put32 = |o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        put32(sb::INODES_COUNT, 2048);
        put32(sb::BLOCKS_COUNT_LO, 8192);
        put32(sb::FIRST_DATA_BLOCK, 1);
        put32(sb::LOG_BLOCK_SIZE, 0);
        put32(sb::BLOCKS_PER_GROUP, 8192);
        put32(sb::INODES_PER_GROUP, 2048);
        put32(sb::REV_LEVEL, 1);
        put32(sb::FEATURE_INCOMPAT, incompat);
        put32(sb::FEATURE_RO_COMPAT, RO_COMPAT_SPARSE_SUPER);
        b[sb::MAGIC..sb::MAGIC + 2].copy_from_slice(&MAGIC.to_le_bytes());
        b[sb::INODE_SIZE..sb::INODE_SIZE + 2].copy_from_slice(&256u16.to_le_bytes());
        b[sb::DESC_SIZE..sb::DESC_SIZE + 2].copy_from_slice(&64u16.to_le_bytes());
        b
    }

    fn with(mut b: Vec<u8>, at: usize, bytes: &[u8]) -> Vec<u8> {
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    }

    #[test]
    fn superblock_cases() {
        let ext4 = INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG;
        let good = superblock(ext4);
        let cases: Vec<(&str, Vec<u8>, Result<(), SbError>)> = vec![
            ("ext4", good.clone(), Ok(())),
            ("ext2 (no features)", superblock(0), Ok(())),
            (
                "short",
                good[..SUPERBLOCK_LEN - 1].to_vec(),
                Err(SbError::NotExt),
            ),
            (
                "no magic",
                with(good.clone(), sb::MAGIC, &[0, 0]),
                Err(SbError::NotExt),
            ),
            (
                "block size 128 KiB",
                with(good.clone(), sb::LOG_BLOCK_SIZE, &7u32.to_le_bytes()),
                Err(SbError::Field("s_log_block_size", 7)),
            ),
            (
                "shift past 32 bits",
                with(good.clone(), sb::LOG_BLOCK_SIZE, &40u32.to_le_bytes()),
                Err(SbError::Field("s_log_block_size", 40)),
            ),
            (
                "inode size 100",
                with(good.clone(), sb::INODE_SIZE, &100u16.to_le_bytes()),
                Err(SbError::Field("s_inode_size", 100)),
            ),
            (
                "inode size over the block",
                with(good.clone(), sb::INODE_SIZE, &2048u16.to_le_bytes()),
                Err(SbError::Field("s_inode_size", 2048)),
            ),
            (
                "rev 0 ignores s_inode_size",
                with(
                    with(good.clone(), sb::REV_LEVEL, &[0; 4]),
                    sb::INODE_SIZE,
                    &[0, 0],
                ),
                Ok(()),
            ),
            (
                "encrypt",
                superblock(ext4 | INCOMPAT_ENCRYPT),
                Err(SbError::Feature("encrypt", INCOMPAT_ENCRYPT)),
            ),
            (
                "needs recovery",
                superblock(ext4 | INCOMPAT_RECOVER),
                Err(SbError::Feature(INCOMPAT_REFUSED[1].1, INCOMPAT_RECOVER)),
            ),
            (
                "compression",
                superblock(INCOMPAT_COMPRESSION),
                Err(SbError::Feature("compression", INCOMPAT_COMPRESSION)),
            ),
            (
                "journal device",
                superblock(INCOMPAT_JOURNAL_DEV),
                Err(SbError::Feature(
                    INCOMPAT_REFUSED[2].1,
                    INCOMPAT_JOURNAL_DEV,
                )),
            ),
            (
                "dirdata",
                superblock(INCOMPAT_DIRDATA),
                Err(SbError::Feature("dirdata", INCOMPAT_DIRDATA)),
            ),
            (
                "unknown bit",
                superblock(ext4 | 0x8000_0000),
                Err(SbError::Feature("unknown to this reader", 0x8000_0000)),
            ),
            (
                "64bit with 32-byte descriptors",
                with(good.clone(), sb::DESC_SIZE, &32u16.to_le_bytes()),
                Err(SbError::Field("s_desc_size", 32)),
            ),
            (
                "64bit with 96-byte descriptors",
                with(good.clone(), sb::DESC_SIZE, &96u16.to_le_bytes()),
                Err(SbError::Field("s_desc_size", 96)),
            ),
            (
                "no blocks past the first",
                with(good.clone(), sb::BLOCKS_COUNT_LO, &1u32.to_le_bytes()),
                Err(SbError::Field("s_blocks_count", 1)),
            ),
            (
                "0 blocks per group",
                with(good.clone(), sb::BLOCKS_PER_GROUP, &[0; 4]),
                Err(SbError::Field("s_blocks_per_group", 0)),
            ),
            (
                "more inodes per group than a bitmap holds",
                with(good.clone(), sb::INODES_PER_GROUP, &8193u32.to_le_bytes()),
                Err(SbError::Field("s_inodes_per_group", 8193)),
            ),
            (
                "no root inode",
                with(good.clone(), sb::INODES_COUNT, &1u32.to_le_bytes()),
                Err(SbError::Field("s_inodes_count", 1)),
            ),
        ];
        for (case, bytes, want) in cases {
            assert_eq!(parse_superblock(&bytes).map(|_| ()), want, "case {case}");
        }
        let s = parse_superblock(&superblock(0)).unwrap();
        assert_eq!(
            (s.block_size, s.inode_size, s.desc_size, s.group_count()),
            (1024, 256, 32, 1),
            "ext2 fields"
        );
        let s = parse_superblock(&with(good, sb::BLOCKS_COUNT_HI, &1u32.to_le_bytes())).unwrap();
        assert_eq!(s.blocks_count, (1 << 32) | 8192, "64bit block count");
    }

    #[test]
    fn backup_groups_and_descriptors() {
        let mut s = parse_superblock(&superblock(0)).unwrap();
        s.blocks_count = 8192 * 100;
        let with_super: Vec<u64> = (0..60).filter(|g| s.has_super(*g)).collect();
        assert_eq!(with_super, [0, 1, 3, 5, 7, 9, 25, 27, 49], "sparse_super");
        s.ro_compat = 0;
        assert!(
            (0..60).all(|g| s.has_super(g)),
            "no sparse_super: every group"
        );
        s.compat = COMPAT_SPARSE_SUPER2;
        s.backup_bgs = [1, 40];
        let with_super: Vec<u64> = (0..60).filter(|g| s.has_super(*g)).collect();
        assert_eq!(with_super, [0, 1, 40], "sparse_super2");
        assert!(!s.has_super(u64::MAX), "huge group");

        // 1 KiB blocks, 32-byte descriptors: 32 per block, the table at block 2.
        let s = parse_superblock(&superblock(0)).unwrap();
        let cases: &[(&str, Superblock, u64, Option<u64>)] = &[
            ("group 0", s, 0, Some(2048)),
            ("group 33", s, 33, Some(3 * 1024 + 32)),
            (
                "meta_bg: group 33 in meta group 1 (group 32 has a backup? no)",
                Superblock {
                    incompat: INCOMPAT_META_BG,
                    ..s
                },
                33,
                // Group 32 starts at block 1 + 32 * 8192 and holds no superblock copy.
                Some((1 + 32 * 8192) * 1024 + 32),
            ),
            (
                "meta_bg: group 1 (meta group 0, whose group 0 has the superblock)",
                Superblock {
                    incompat: INCOMPAT_META_BG,
                    ..s
                },
                1,
                Some(2 * 1024 + 32),
            ),
            (
                "meta_bg after first_meta_bg 2: group 33 still in the old table",
                Superblock {
                    incompat: INCOMPAT_META_BG,
                    first_meta_bg: 2,
                    ..s
                },
                33,
                Some(3 * 1024 + 32),
            ),
            ("overflow", s, u64::MAX, None),
        ];
        for (case, sb, g, want) in cases {
            assert_eq!(sb.desc_offset(*g), *want, "case {case}");
        }
    }

    fn node(entries: u16, max: u16, depth: u16, body: &[[u32; 3]], len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[0..2].copy_from_slice(&EXTENT_MAGIC.to_le_bytes());
        b[2..4].copy_from_slice(&entries.to_le_bytes());
        b[4..6].copy_from_slice(&max.to_le_bytes());
        b[6..8].copy_from_slice(&depth.to_le_bytes());
        for (i, e) in body.iter().enumerate() {
            for (j, w) in e.iter().enumerate() {
                let at = 12 + i * 12 + j * 4;
                b[at..at + 4].copy_from_slice(&w.to_le_bytes());
            }
        }
        b
    }

    #[test]
    fn extent_nodes() {
        let cases: &[(&str, Vec<u8>, Result<ExtentHeader, &str>)] = &[
            (
                "root",
                node(1, 4, 0, &[], 60),
                Ok(ExtentHeader {
                    entries: 1,
                    max: 4,
                    depth: 0,
                }),
            ),
            (
                "bad magic",
                vec![0; 60],
                Err("no extent header magic (0xF30A)"),
            ),
            (
                "short",
                node(0, 0, 0, &[], 60)[..7].to_vec(),
                Err("extent node shorter than its header"),
            ),
            (
                "entries over max",
                node(5, 4, 0, &[], 60),
                Err("more entries than the node's room"),
            ),
            (
                "room past the node",
                node(1, 5, 0, &[], 60),
                Err("room for more entries than the node holds"),
            ),
            (
                "depth 6",
                node(1, 4, 6, &[], 60),
                Err("deeper than 5 levels"),
            ),
        ];
        for (case, n, want) in cases {
            assert_eq!(extent_header(n), *want, "case {case}");
        }
        // ee_block 7, ee_len 32768 + 3 (unwritten), start hi 1, lo 9.
        let leaf = node(1, 4, 0, &[[7, (1 << 16) | 32771, 9]], 60);
        assert_eq!(
            extent_leaf(&leaf, 0),
            Some(Extent {
                logical: 7,
                len: 3,
                start: (1 << 32) | 9,
                unwritten: true
            }),
            "unwritten leaf"
        );
        let leaf = node(1, 4, 0, &[[0, 32768, 5]], 60);
        assert_eq!(
            extent_leaf(&leaf, 0).map(|e| (e.len, e.unwritten)),
            Some((32768, false)),
            "32768 blocks is the longest initialised extent"
        );
        let index = node(1, 4, 1, &[[100, 42, 2]], 60);
        assert_eq!(
            extent_index(&index, 0),
            Some((100, (2 << 32) | 42)),
            "index"
        );
        assert_eq!(extent_leaf(&leaf, 4), None, "entry past the node");
    }

    fn entry(ino: u32, rec_len: u16, name: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; usize::from(rec_len).max((8 + name.len()).next_multiple_of(4))];
        e[0..4].copy_from_slice(&ino.to_le_bytes());
        e[4..6].copy_from_slice(&rec_len.to_le_bytes());
        e[6] = name.len() as u8;
        e[7] = 1;
        e[8..8 + name.len()].copy_from_slice(name);
        e
    }

    #[test]
    fn dirents() {
        let ok = entry(12, 20, b"meta-data");
        let cases: &[(&str, Vec<u8>, Result<(u32, &[u8], usize), &str>)] = &[
            ("entry", ok.clone(), Ok((12, b"meta-data", 20))),
            ("unused", entry(0, 12, b""), Ok((0, b"", 12))),
            (
                "rec_len 0",
                entry(12, 0, b"abcd"),
                Err("rec_len is smaller than the minimal 12"),
            ),
            (
                "rec_len 8",
                entry(12, 8, b"abcd"),
                Err("rec_len is smaller than the minimal 12"),
            ),
            (
                "rec_len 14",
                entry(12, 14, b"a"),
                Err("rec_len is not a multiple of 4"),
            ),
            (
                "name over rec_len",
                entry(12, 12, b"meta-data"),
                Err("rec_len is too small for name_len"),
            ),
            (
                "past the block",
                ok[..12].to_vec(),
                Err("entry runs past the end of the block"),
            ),
            (
                "header cut",
                ok[..5].to_vec(),
                Err("entry header runs past the block"),
            ),
        ];
        for (case, b, want) in cases {
            assert_eq!(
                dirent(b, 0, true).map(|d| (d.inode, d.name, d.rec_len)),
                *want,
                "case {case}"
            );
        }
        // Without `filetype`, name_len is 16 bits: the type byte 1 makes it 265.
        assert_eq!(
            dirent(&ok, 0, false).map(|d| d.rec_len),
            Err("rec_len is too small for name_len"),
            "no filetype"
        );
        // 64 KiB blocks: a rec_len of 0 or 65535 means the whole block.
        for raw in [0u16, 0xFFFF] {
            let mut big = vec![0u8; 65536];
            big[..12].copy_from_slice(&entry(12, raw, b"a")[..12]);
            assert_eq!(
                dirent(&big, 0, true).map(|d| d.rec_len),
                Ok(65536),
                "64 KiB {raw}"
            );
        }
        assert!(
            dirent(&ok, usize::MAX - 2, true).is_err(),
            "overflowing offset"
        );
    }

    #[test]
    fn dir_blocks() {
        let mut block = Vec::new();
        block.extend(entry(2, 12, b"."));
        block.extend(entry(2, 12, b".."));
        block.extend(entry(0, 12, b"gone"[..0].as_ref()));
        block.extend(entry(12, 20, b"user-data"));
        block.extend(entry(13, 12, b"a/b"));
        block.extend(entry(14, 12, b"a\0"));
        block.extend(entry(15, 20, b"Meta-Data"));
        let mut d = Dir::default();
        parse_dir_block(&block, true, 100, &mut d).unwrap();
        let names: Vec<&[u8]> = d.entries.iter().map(|e| d.name(e)).collect();
        assert_eq!(names, [&b"user-data"[..], b"Meta-Data"], "kept names");
        let cases: &[(&str, &[u8], bool, Option<u32>)] = &[
            ("exact", b"user-data", false, Some(12)),
            ("case differs", b"meta-data", false, None),
            ("casefold", b"meta-data", true, Some(15)),
            ("missing", b"vendor-data", true, None),
        ];
        for (case, name, fold, want) in cases {
            assert_eq!(d.find(name, *fold), *want, "case {case}");
        }
        let mut d = Dir::default();
        assert_eq!(
            parse_dir_block(&entry(101, 12, b"x"), true, 100, &mut d).map_err(|e| e.0),
            Err(0),
            "inode past the count"
        );
        let mut bad = entry(12, 12, b"x");
        bad.extend(entry(13, 0, b"yyyy"));
        assert_eq!(
            parse_dir_block(&bad, true, 100, &mut d),
            Err((12, "rec_len is smaller than the minimal 12".into())),
            "zero-length record"
        );
    }

    /// A 256-byte inode with `extra` bytes of extra fields and the given in-body attributes
    /// (index, name, value).
    fn inode_with_xattrs(extra: u16, attrs: &[(u8, &[u8], &[u8])]) -> Vec<u8> {
        let mut raw = vec![0u8; 256];
        raw[I_EXTRA_ISIZE..I_EXTRA_ISIZE + 2].copy_from_slice(&extra.to_le_bytes());
        let header = 128 + usize::from(extra);
        raw[header..header + 4].copy_from_slice(&XATTR_MAGIC.to_le_bytes());
        let area = header + 4;
        let mut at = 0;
        let mut value_at = 256 - area;
        for (index, name, value) in attrs {
            value_at -= value.len().div_ceil(4) * 4;
            raw[area + at] = name.len() as u8;
            raw[area + at + 1] = *index;
            raw[area + at + 2..area + at + 4].copy_from_slice(&(value_at as u16).to_le_bytes());
            raw[area + at + 8..area + at + 12].copy_from_slice(&(value.len() as u32).to_le_bytes());
            raw[area + at + 16..area + at + 16 + name.len()].copy_from_slice(name);
            raw[area + value_at..area + value_at + value.len()].copy_from_slice(value);
            at += (16 + name.len() + 3) & !3;
        }
        raw
    }

    #[test]
    fn inline_data_attribute() {
        let data = inode_with_xattrs(32, &[(1, b"user.x", b"no"), (7, b"data", b"tail of file")]);
        let cases: &[(&str, Vec<u8>, Result<Option<&[u8]>, &str>)] = &[
            (
                "after another attribute",
                data.clone(),
                Ok(Some(b"tail of file")),
            ),
            (
                "empty value",
                inode_with_xattrs(32, &[(7, b"data", b"")]),
                Ok(Some(b"")),
            ),
            (
                "other attributes only",
                inode_with_xattrs(32, &[(7, b"selinux", b"x")]),
                Ok(None),
            ),
            ("128-byte inode", data[..128].to_vec(), Ok(None)),
            ("no magic", with(data.clone(), 160, &[0; 4]), Ok(None)),
            (
                "extra size not aligned",
                with(data.clone(), I_EXTRA_ISIZE, &30u16.to_le_bytes()),
                Err("i_extra_isize is not a multiple of 4"),
            ),
            (
                "extra size past the inode",
                with(data.clone(), I_EXTRA_ISIZE, &400u16.to_le_bytes()),
                Ok(None),
            ),
            (
                "value past the inode",
                with(data.clone(), 164 + 24 + 8, &4000u32.to_le_bytes()),
                Err("system.data value runs past the inode"),
            ),
            (
                "in an EA inode",
                with(data.clone(), 164 + 24 + 4, &9u32.to_le_bytes()),
                Err("system.data is stored in an EA inode"),
            ),
            (
                "list without its end",
                {
                    let mut d = inode_with_xattrs(32, &[]);
                    for at in (164..256).step_by(4) {
                        d[at] = 1;
                    }
                    d
                },
                Err("attribute name runs past the inode"),
            ),
        ];
        for (case, raw, want) in cases {
            assert_eq!(inline_data_value(raw), *want, "case {case}");
        }
    }

    #[test]
    fn inode_fields() {
        let mut raw = vec![0u8; 128];
        raw[0..2].copy_from_slice(&0o100644u16.to_le_bytes());
        raw[4..8].copy_from_slice(&5u32.to_le_bytes());
        raw[I_SIZE_HIGH..I_SIZE_HIGH + 4].copy_from_slice(&1u32.to_le_bytes());
        raw[I_LINKS_COUNT] = 1;
        let i = parse_inode(&raw).unwrap();
        assert_eq!(
            (i.kind(), i.size, i.links),
            (Kind::File, (1 << 32) | 5, 1),
            "file"
        );
        let kinds: &[(u16, Kind)] = &[
            (0o040755, Kind::Dir),
            (0o120777, Kind::Symlink),
            (0o010644, Kind::Other(0x1000)),
            (0o020644, Kind::Other(0x2000)),
            (0, Kind::Other(0)),
        ];
        for (mode, kind) in kinds {
            raw[0..2].copy_from_slice(&mode.to_le_bytes());
            assert_eq!(parse_inode(&raw).unwrap().kind(), *kind, "mode {mode:o}");
        }
        assert_eq!(parse_inode(&raw[..0x6F]), None, "short");
    }
}
