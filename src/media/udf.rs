//! UDF reader: Azure's provisioning medium (`ovf-env.xml` on a UDF CD-ROM, also hybrid
//! ISO9660/UDF images as `genisoimage -udf` makes them) read with positioned reads, never
//! mounted and never loaded whole.
//!
//! Owns the volume structure (Volume Recognition Sequence, Anchor Volume Descriptor Pointer,
//! Main or Reserve Volume Descriptor Sequence), the logical volume's partition maps, the File
//! Set Descriptor, File Entries and Extended File Entries with their allocation descriptors,
//! File Identifier Descriptors, and OSTA Compressed Unicode names. Also the volume's names
//! ([`UdfTree::volume_id`], [`UdfTree::logical_volume_id`]) for detection by label.
//!
//! Supports UDF 1.02 to 2.60 as written on read-only media: partition maps of type 1 and the
//! UDF 2.50+ Metadata Partition map (type 2, `*UDF Metadata Partition`, main metadata file
//! only), short and long allocation descriptors with Allocation Extent Descriptor chains,
//! data embedded in the ICB, 8- and 16-bit Compressed Unicode (IDs 8/16 and 254/255).
//!
//! Does not support: sparable partitions (`*UDF Sparable Partition`, CD-RW/DVD-RW) and
//! virtual partitions (`*UDF Virtual Partition`, the VAT of CD-R) — refused as unsupported;
//! multi-volume sets (only volume sequence number 1 is read); the metadata mirror file (used
//! only when the main one is damaged: we say damaged); ICB strategy 4096 indirect entries
//! (the first direct entry is read, an Indirect Entry is refused); `extended_ad` (UDF forbids
//! it); named streams, extended attributes, permissions and times (ignored); symbolic links
//! (listed, not followed); hidden entries (left out, as Linux does without `unhide`).
//! Names are compared exactly (UDF names are case-sensitive, as in Linux `udf`).
//!
//! Spec: ECMA-167 3rd ed. (1997): 1/7.2 descriptor tag, checksum and CRC; 2/9 Volume
//! Recognition Sequence; 3/10 volume descriptors (3/10.1 PVD, 3/10.2 AVDP, 3/10.3 VDP,
//! 3/10.5 PD, 3/10.6 LVD and 3/10.7 partition maps); 4/14 file structure (4/14.1 FSD, 4/14.4
//! FID, 4/14.5 AED, 4/14.6 ICB tag, 4/14.9 FE, 4/14.14 allocation descriptors, 4/14.17 EFE).
//! OSTA UDF 2.60 (2005): 2.1.1 Compressed Unicode, 2.1.2 CRC, 2.2.3 AVDP locations, 2.2.10
//! metadata partition map, 2.3.10 embedded data.
//!
//! Limits: a directory is at most [`MAX_DIR_BYTES`], a path at most [`MAX_DEPTH`] components,
//! a file at most [`MAX_EXTENTS`] allocation descriptors over at most [`MAX_AED_HOPS`]
//! continuation blocks, a volume descriptor sequence at most [`MAX_VDS_SECTORS`] sectors over
//! [`MAX_VDP_HOPS`] pointers, at most [`MAX_PARTITION_MAPS`] partition maps. Lookups walk one
//! directory per path component and never recurse, so a directory whose FID points back at
//! an ancestor (a loop) cannot make a lookup or listing loop; AED chains stop at a block seen
//! twice. Each directory is parsed once per open image ([`MAX_CACHED_DIRS`] kept, and
//! [`MAX_CACHE_BYTES`] of parsed entries in all). Every read of the image counts against
//! [`super::MAX_IMAGE_READ`] and stops at the boot's deadline ([`super::Budget`]).
//!
//! Every descriptor is checked before use: tag checksum, CRC over the declared CRC length
//! (when it fits the descriptor), and, for volume descriptors and file-structure descriptors
//! read from a known block, the tag location. FIDs are checked for checksum and CRC only: their
//! tag location is that of the block they start in, which some writers get wrong and which
//! says nothing the parent's allocation does not.
//!
//! Panic contract: nothing here panics on any image (no indexing, checked arithmetic, bounded
//! allocations); the byte-level functions [`crc_itu`], [`parse_tag`], [`check_tag`],
//! [`vrs_descriptor`], [`parse_long_ad`], [`parse_short_ad`] and [`dstring`] carry
//! `#[no_panic]`. Every structural problem is [`MediaErrorKind::Corrupt`] naming the sector or
//! the logical block.
#![deny(clippy::arithmetic_side_effects)]

use super::{components, Budget, DirCache, MediaError, MediaErrorKind, Tree};
use crate::bytes::{array, le_u16, le_u32, le_u64};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

/// Largest directory we read, in bytes (some 25 000 FIDs of short names).
pub const MAX_DIR_BYTES: u64 = 1 << 20;
/// Most path components in a lookup.
pub const MAX_DEPTH: usize = 64;
/// Most allocation descriptors read for one file or directory (over all its AEDs).
pub const MAX_EXTENTS: usize = 1024;
/// Most Allocation Extent Descriptors followed for one file.
pub const MAX_AED_HOPS: usize = 64;
/// Most sectors read of the volume descriptor sequences, over all Volume Descriptor Pointers.
pub const MAX_VDS_SECTORS: u32 = 256;
/// Most Volume Descriptor Pointers followed.
pub const MAX_VDP_HOPS: usize = 8;
/// Most partition maps taken from the Logical Volume Descriptor.
pub const MAX_PARTITION_MAPS: usize = 8;
/// Volume Recognition Sequence records looked at before giving up (ECMA-167 2/8.3).
const MAX_VRS_RECORDS: u64 = 64;
/// The VRS starts 32 KiB into the volume (ECMA-167 2/8.3).
const VRS_START: u64 = 32 * 1024;
/// The sector of the first Anchor Volume Descriptor Pointer (UDF 2.60 §2.2.3).
const ANCHOR_SECTOR: u64 = 256;
/// Sector sizes tried, most likely first (a CD-ROM's 2048 first).
const SECTOR_SIZES: [u32; 4] = [2048, 512, 1024, 4096];
/// Length of a descriptor tag (ECMA-167 3/7.2).
pub const TAG_LEN: usize = 16;

/// Tag identifiers (ECMA-167 3/7.2.1 and 4/7.2.1).
pub mod tag_id {
    pub const PVD: u16 = 1;
    pub const AVDP: u16 = 2;
    pub const VDP: u16 = 3;
    pub const PD: u16 = 5;
    pub const LVD: u16 = 6;
    pub const TD: u16 = 8;
    pub const FSD: u16 = 256;
    pub const FID: u16 = 257;
    pub const AED: u16 = 258;
    pub const IE: u16 = 259;
    pub const FE: u16 = 261;
    pub const EFE: u16 = 266;
}

/// ICB file types (ECMA-167 4/14.6.6).
const FILE_TYPE_DIRECTORY: u8 = 4;
const FILE_TYPE_REGULAR: u8 = 5;
/// The metadata file of a metadata partition (UDF 2.60 §2.2.13.1).
const FILE_TYPE_METADATA: u8 = 250;

/// File characteristics of a FID (ECMA-167 4/14.4.3).
const FID_HIDDEN: u8 = 0x01;
const FID_DIRECTORY: u8 = 0x02;
const FID_DELETED: u8 = 0x04;
const FID_PARENT: u8 = 0x08;

/// Allocation descriptor kinds, ICB tag flags bits 0-2 (ECMA-167 4/14.6.8).
const AD_SHORT: u16 = 0;
const AD_LONG: u16 = 1;
const AD_EXTENDED: u16 = 2;
const AD_EMBEDDED: u16 = 3;

/// Fixed part of a File Entry and of an Extended File Entry, before the extended attributes.
const FE_FIXED: usize = 176;
const EFE_FIXED: usize = 216;
/// Fixed part of a FID, before the implementation use field.
const FID_FIXED: usize = 38;

/// A descriptor tag that passed its checksum (ECMA-167 3/7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub id: u16,
    pub version: u16,
    pub crc: u16,
    pub crc_len: u16,
    /// The logical sector (volume structures) or logical block (file structures) the
    /// descriptor says it is recorded in.
    pub location: u32,
}

/// Why a tag was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagError {
    /// Fewer than 16 bytes.
    Short,
    /// The checksum byte does not match the other 15 bytes.
    Checksum,
    /// The CRC over the declared CRC length does not match.
    Crc,
    /// The declared CRC length runs past the descriptor.
    CrcLength,
}

impl TagError {
    fn text(self) -> &'static str {
        match self {
            TagError::Short => "descriptor tag cut short",
            TagError::Checksum => "bad descriptor tag checksum",
            TagError::Crc => "bad descriptor CRC",
            TagError::CrcLength => "descriptor CRC length past the descriptor",
        }
    }
}

/// CRC-ITU-T (polynomial x^16 + x^12 + x^5 + 1, initial 0, no reflection), the descriptor CRC
/// of ECMA-167 1/7.2.6 and UDF 2.60 §2.1.2.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn crc_itu(b: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in b {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The tag at the start of `b`, if its checksum holds (the CRC is not looked at).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn parse_tag(b: &[u8]) -> Result<Tag, TagError> {
    let head: [u8; TAG_LEN] = array(b, 0).ok_or(TagError::Short)?;
    let mut sum: u8 = 0;
    for (i, byte) in head.iter().enumerate() {
        if i != 4 {
            sum = sum.wrapping_add(*byte);
        }
    }
    let [id0, id1, v0, v1, checksum, _, _, _, c0, c1, l0, l1, p0, p1, p2, p3] = head;
    if sum != checksum {
        return Err(TagError::Checksum);
    }
    Ok(Tag {
        id: u16::from_le_bytes([id0, id1]),
        version: u16::from_le_bytes([v0, v1]),
        crc: u16::from_le_bytes([c0, c1]),
        crc_len: u16::from_le_bytes([l0, l1]),
        location: u32::from_le_bytes([p0, p1, p2, p3]),
    })
}

/// The tag at the start of `b` (the whole descriptor), checksum and CRC checked.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn check_tag(b: &[u8]) -> Result<Tag, TagError> {
    let tag = parse_tag(b)?;
    let end = TAG_LEN
        .checked_add(usize::from(tag.crc_len))
        .ok_or(TagError::CrcLength)?;
    let body = b.get(TAG_LEN..end).ok_or(TagError::CrcLength)?;
    if crc_itu(body) != tag.crc {
        return Err(TagError::Crc);
    }
    Ok(tag)
}

/// One record of the Volume Recognition Sequence (ECMA-167 2/9, ECMA-119 for `CD001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vsd {
    /// `BEA01`: the extended area begins.
    Bea,
    /// `NSR02` (UDF 1.02–1.50) or `NSR03` (UDF 2.00+): an ECMA-167 volume.
    Nsr(u8),
    /// `TEA01`: the extended area ends.
    Tea,
    /// `CD001`, `CDW02`, `BOOT2`: recorded, but not ours.
    Other,
}

/// Identifies a VRS record (structure type, standard identifier, version 1); `None` when the
/// sector holds no volume structure descriptor (the end of the sequence).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn vrs_descriptor(b: &[u8]) -> Option<Vsd> {
    let head: [u8; 7] = array(b, 0)?;
    let [_, i0, i1, i2, i3, i4, version] = head;
    if version != 1 {
        return None;
    }
    Some(match &[i0, i1, i2, i3, i4] {
        b"BEA01" => Vsd::Bea,
        b"NSR02" => Vsd::Nsr(2),
        b"NSR03" => Vsd::Nsr(3),
        b"TEA01" => Vsd::Tea,
        b"CD001" | b"CDW02" | b"BOOT2" => Vsd::Other,
        _ => return None,
    })
}

/// An address in a partition (ECMA-167 4/7.1 `lb_addr`): partition reference number (an
/// index into the LVD's partition maps) and logical block within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LbAddr {
    pub part: u16,
    pub block: u32,
}

/// How an extent is recorded (the top two bits of its length, ECMA-167 4/14.14.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentKind {
    Recorded,
    /// Allocated but not recorded, or neither: reads as zeros.
    Unrecorded,
    /// The next extent of allocation descriptors (an AED).
    Continuation,
}

/// One allocation descriptor, short or long (ECMA-167 4/14.14.1, 4/14.14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ad {
    pub kind: ExtentKind,
    /// Bytes (30 bits).
    pub len: u32,
    pub at: LbAddr,
}

fn extent_kind(raw: u32) -> (ExtentKind, u32) {
    let kind = match raw >> 30 {
        0 => ExtentKind::Recorded,
        3 => ExtentKind::Continuation,
        _ => ExtentKind::Unrecorded,
    };
    (kind, raw & 0x3FFF_FFFF)
}

/// A `long_ad` (16 bytes) at `off`.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn parse_long_ad(b: &[u8], off: usize) -> Option<Ad> {
    let raw: [u8; 16] = array(b, off)?;
    let [l0, l1, l2, l3, b0, b1, b2, b3, p0, p1, ..] = raw;
    let (kind, len) = extent_kind(u32::from_le_bytes([l0, l1, l2, l3]));
    Some(Ad {
        kind,
        len,
        at: LbAddr {
            part: u16::from_le_bytes([p0, p1]),
            block: u32::from_le_bytes([b0, b1, b2, b3]),
        },
    })
}

/// A `short_ad` (8 bytes) at `off`, in partition `part` (the one of the ICB it belongs to).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn parse_short_ad(b: &[u8], off: usize, part: u16) -> Option<Ad> {
    let raw: [u8; 8] = array(b, off)?;
    let [l0, l1, l2, l3, b0, b1, b2, b3] = raw;
    let (kind, len) = extent_kind(u32::from_le_bytes([l0, l1, l2, l3]));
    Some(Ad {
        kind,
        len,
        at: LbAddr {
            part,
            block: u32::from_le_bytes([b0, b1, b2, b3]),
        },
    })
}

/// The recorded characters of a `dstring` field (ECMA-167 1/7.2.12): the last byte is the
/// length of what precedes it, compression ID included. A length past the field is cut to it.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn dstring(field: &[u8]) -> &[u8] {
    let Some((&len, body)) = field.split_last() else {
        return &[];
    };
    body.get(..usize::from(len)).unwrap_or(body)
}

/// Decodes OSTA Compressed Unicode (UDF 2.60 §2.1.1): compression ID 8 or 254 (one byte per
/// code point, U+0000–U+00FF), 16 or 255 (UTF-16 big-endian; an unpaired surrogate or an odd
/// last byte becomes U+FFFD). Empty input is the empty string; another ID is `None`.
pub fn decode_cs0(b: &[u8]) -> Option<String> {
    let Some((&id, rest)) = b.split_first() else {
        return Some(String::new());
    };
    match id {
        8 | 254 => Some(rest.iter().map(|&c| char::from(c)).collect()),
        16 | 255 => {
            let units = rest.chunks_exact(2).map(|c| {
                u16::from_be_bytes([
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                ])
            });
            let mut s: String = char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect();
            if rest.len() % 2 == 1 {
                s.push(char::REPLACEMENT_CHARACTER);
            }
            Some(s)
        }
        _ => None,
    }
}

/// A `dstring` as text, without trailing NULs (some writers pad inside the length).
fn dstring_text(field: &[u8]) -> String {
    decode_cs0(dstring(field))
        .unwrap_or_default()
        .trim_end_matches('\0')
        .to_string()
}

/// One partition map of the logical volume, resolved to where its blocks are.
#[derive(Debug, Clone)]
enum PartMap {
    /// Type 1: blocks `start..start+len` (in sectors) of the volume.
    Physical { start: u32, len: u32 },
    /// UDF 2.50+ metadata partition: block `n` is byte `n * block` of the metadata file,
    /// whose extents (`(offset in file, sector, bytes)`) lie in a physical partition.
    Metadata { extents: Vec<(u64, u64, u32)> },
}

/// One directory entry.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    dir: bool,
    icb: LbAddr,
}

/// A File Entry or Extended File Entry, the parts we use.
#[derive(Debug, Clone)]
struct Fe {
    file_type: u8,
    ad_kind: u16,
    info_len: u64,
    /// The allocation descriptors, or the embedded data.
    ads: Vec<u8>,
}

/// A UDF image or device, read in place.
pub struct UdfTree {
    file: File,
    object: String,
    /// Bytes in the image or device.
    size: u64,
    /// Sector size = logical block size (UDF 2.60 §2.2.4.2 requires them equal).
    block: u32,
    parts: Vec<PartMap>,
    root: LbAddr,
    volume_id: String,
    logical_volume_id: String,
    nsr: u8,
    /// UDF revision from the LVD's domain identifier suffix (0x0102 … 0x0260), 0 if absent.
    revision: u16,
    /// Bytes read so far and the deadline.
    budget: Budget,
    dirs: DirCache<LbAddr, [Entry]>,
}

/// The heap a parsed directory takes: its entries and their names (with the allocator's
/// rounding, 16 bytes an allocation).
fn dir_bytes(entries: &[Entry]) -> usize {
    entries
        .iter()
        .fold(std::mem::size_of_val(entries), |acc, e| {
            acc.saturating_add(match e.name.capacity() {
                0 => 0,
                c => c.saturating_add(15) & !15,
            })
        })
}

/// What the volume descriptor sequence gave.
#[derive(Default)]
struct Vds {
    pvd: Option<Vec<u8>>,
    lvd: Option<Vec<u8>>,
    /// Partition Descriptors by partition number.
    pds: BTreeMap<u16, (u32, u32)>,
}

impl UdfTree {
    /// Opens `path` (image or device): finds the anchor, reads the volume descriptors, the
    /// partition maps and the File Set Descriptor.
    pub fn open(path: &Path) -> Result<UdfTree, MediaError> {
        UdfTree::open_with(path, Budget::default())
    }

    /// [`UdfTree::open`], every read counted against `budget`.
    pub fn open_with(path: &Path, budget: Budget) -> Result<UdfTree, MediaError> {
        let object = path.display().to_string();
        let (file, size) = super::open_image(path)?;
        let mut tree = UdfTree {
            file,
            object,
            size,
            block: 2048,
            parts: Vec::new(),
            root: LbAddr { part: 0, block: 0 },
            volume_id: String::new(),
            logical_volume_id: String::new(),
            nsr: 0,
            revision: 0,
            budget,
            dirs: DirCache::default(),
        };
        let (block, avdp) = tree.find_anchor()?;
        tree.block = block;
        tree.nsr = tree.recognition_sequence()?;
        let main = extent_ad(&avdp, 16);
        let reserve = extent_ad(&avdp, 24);
        let vds = match tree.read_vds(main, "main") {
            Ok(v) => v,
            Err(main_err) => match tree.read_vds(reserve, "reserve") {
                Ok(v) => {
                    log::warn!("{main_err}; read the reserve volume descriptor sequence");
                    v
                }
                Err(_) => return Err(main_err),
            },
        };
        tree.load_volume(vds)?;
        Ok(tree)
    }

    /// The Primary Volume Descriptor's volume identifier (ECMA-167 3/10.1.4).
    pub fn volume_id(&self) -> &str {
        &self.volume_id
    }

    /// The Logical Volume Descriptor's identifier (ECMA-167 3/10.6.4): the label `blkid`
    /// reports for UDF when it is set.
    pub fn logical_volume_id(&self) -> &str {
        &self.logical_volume_id
    }

    /// The label as `blkid` gives it: the logical volume identifier, else the volume one.
    pub fn label(&self) -> &str {
        if self.logical_volume_id.is_empty() {
            &self.volume_id
        } else {
            &self.logical_volume_id
        }
    }

    /// The UDF revision the logical volume declares (`0x0102`, `0x0201`, `0x0260` …; 0 when
    /// its domain identifier carries none), and the VRS's NSR version (2 or 3).
    pub fn revision(&self) -> (u16, u8) {
        (self.revision, self.nsr)
    }

    fn corrupt(&self, why: String) -> MediaError {
        MediaError::new(self.object.clone(), MediaErrorKind::Corrupt(why))
    }

    /// Reads exactly `len` bytes at `offset`, or says which structure runs past the end.
    fn read_exact(&self, offset: u64, len: usize, what: &str) -> Result<Vec<u8>, MediaError> {
        let end = u64::try_from(len).ok().and_then(|l| offset.checked_add(l));
        if end.is_none_or(|e| e > self.size) {
            return Err(self.corrupt(format!(
                "{what} at byte {offset} (+{len}) runs past the end of the image ({} bytes)",
                self.size
            )));
        }
        self.budget
            .charge(u64::try_from(len).unwrap_or(u64::MAX), what, &self.object)?;
        let mut buf = vec![0u8; len];
        match self.file.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(self.corrupt(format!(
                "{what} at byte {offset} (+{len}): image ends early"
            ))),
            Err(e) => Err(MediaError::new(self.object.clone(), MediaErrorKind::Io(e))),
        }
    }

    fn block_len(&self) -> usize {
        usize::try_from(self.block).unwrap_or(2048)
    }

    /// Reads sector `n` of the volume.
    fn sector(&self, n: u64, what: &str) -> Result<Vec<u8>, MediaError> {
        let at = n
            .checked_mul(u64::from(self.block))
            .ok_or_else(|| self.corrupt(format!("{what}: sector {n} out of range")))?;
        self.read_exact(at, self.block_len(), &format!("{what} (sector {n})"))
    }

    /// Reads a volume descriptor at sector `n` and checks its tag, CRC and location.
    fn volume_descriptor(&self, n: u64, what: &str) -> Result<(Tag, Vec<u8>), MediaError> {
        let d = self.sector(n, what)?;
        let tag = check_tag(&d)
            .map_err(|e| self.corrupt(format!("{what} (sector {n}): {}", e.text())))?;
        if u64::from(tag.location) != n {
            return Err(self.corrupt(format!(
                "{what} (sector {n}): tag says it is at sector {}",
                tag.location
            )));
        }
        Ok((tag, d))
    }

    /// Finds an Anchor Volume Descriptor Pointer at sector 256, else at the last sector or
    /// 256 before it (UDF 2.60 §2.2.3), trying each sector size.
    fn find_anchor(&mut self) -> Result<(u32, Vec<u8>), MediaError> {
        let mut first_err = None;
        for block in SECTOR_SIZES {
            self.block = block;
            let sectors = self.size.checked_div(u64::from(block)).unwrap_or(0);
            let mut places = vec![ANCHOR_SECTOR];
            if let Some(last) = sectors.checked_sub(1).filter(|l| *l > ANCHOR_SECTOR) {
                places.push(last);
                if let Some(n) = last
                    .checked_sub(ANCHOR_SECTOR)
                    .filter(|n| *n > ANCHOR_SECTOR)
                {
                    places.push(n);
                }
            }
            for n in places {
                match self.volume_descriptor(n, "anchor volume descriptor pointer") {
                    Ok((tag, d)) if tag.id == tag_id::AVDP => return Ok((block, d)),
                    Ok(_) => {}
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        Err(first_err.unwrap_or_else(|| {
            self.corrupt("no anchor volume descriptor pointer at sector 256 or the end".into())
        }))
    }

    /// Walks the Volume Recognition Sequence from byte 32768: an `NSR02`/`NSR03` inside
    /// `BEA01` … `TEA01` makes this an ECMA-167 volume. Returns the NSR version.
    fn recognition_sequence(&self) -> Result<u8, MediaError> {
        // Each record starts a sector and is 2048 bytes long (ECMA-167 2/8.3).
        let step = u64::from(self.block.max(2048));
        let mut in_extended = false;
        let mut nsr = None;
        for i in 0..MAX_VRS_RECORDS {
            let at = i.saturating_mul(step).saturating_add(VRS_START);
            let rec = self.read_exact(at, 7, "volume recognition sequence")?;
            match vrs_descriptor(&rec) {
                None => break,
                Some(Vsd::Bea) => in_extended = true,
                Some(Vsd::Tea) => {
                    if nsr.is_some() {
                        break;
                    }
                    in_extended = false;
                }
                Some(Vsd::Nsr(v)) if in_extended => nsr = Some(v),
                Some(_) => {}
            }
        }
        nsr.ok_or_else(|| {
            self.corrupt(
                "no NSR02/NSR03 descriptor in the volume recognition sequence (byte 32768)".into(),
            )
        })
    }

    /// Reads one volume descriptor sequence (following Volume Descriptor Pointers).
    fn read_vds(&self, first: (u32, u32), which: &str) -> Result<Vds, MediaError> {
        let mut vds = Vds::default();
        let mut ext = first;
        let mut budget = MAX_VDS_SECTORS;
        let mut hops = 0usize;
        'extents: loop {
            let (len, start) = ext;
            let count = len.div_ceil(self.block);
            if count == 0 {
                return Err(self.corrupt(format!("{which} volume descriptor sequence is empty")));
            }
            for i in 0..count {
                if budget == 0 {
                    return Err(self.corrupt(format!(
                        "{which} volume descriptor sequence: more than {MAX_VDS_SECTORS} sectors"
                    )));
                }
                budget = budget.saturating_sub(1);
                let n = u64::from(start).saturating_add(u64::from(i));
                let (tag, d) =
                    self.volume_descriptor(n, &format!("{which} volume descriptor sequence"))?;
                match tag.id {
                    tag_id::PVD if vds.pvd.is_none() => vds.pvd = Some(d),
                    tag_id::LVD if vds.lvd.is_none() => vds.lvd = Some(d),
                    tag_id::PD => {
                        let number = le_u16(&d, 22).unwrap_or(0);
                        let start = le_u32(&d, 188).unwrap_or(0);
                        let plen = le_u32(&d, 192).unwrap_or(0);
                        vds.pds.entry(number).or_insert((start, plen));
                    }
                    tag_id::VDP => {
                        hops = hops.saturating_add(1);
                        if hops > MAX_VDP_HOPS {
                            return Err(self.corrupt(format!(
                                "{which} volume descriptor sequence: more than {MAX_VDP_HOPS} \
                                 volume descriptor pointers"
                            )));
                        }
                        ext = extent_ad(&d, 20);
                        continue 'extents;
                    }
                    tag_id::TD => break 'extents,
                    _ => {}
                }
            }
            break;
        }
        if vds.pvd.is_none() || vds.lvd.is_none() || vds.pds.is_empty() {
            return Err(self.corrupt(format!(
                "{which} volume descriptor sequence at sector {}: no primary volume, logical \
                 volume or partition descriptor",
                first.1
            )));
        }
        Ok(vds)
    }

    /// Takes the volume's names, block size and partition maps from the descriptors, then the
    /// File Set Descriptor's root directory.
    fn load_volume(&mut self, vds: Vds) -> Result<(), MediaError> {
        let pvd = vds.pvd.unwrap_or_default();
        let lvd = vds.lvd.unwrap_or_default();
        self.volume_id = dstring_text(pvd.get(24..56).unwrap_or_default());
        self.logical_volume_id = dstring_text(lvd.get(84..212).unwrap_or_default());
        let block = le_u32(&lvd, 212).unwrap_or(0);
        if block != self.block {
            return Err(self.corrupt(format!(
                "logical volume descriptor: logical block size {block} is not the sector size {}",
                self.block
            )));
        }
        // Domain identifier `*OSTA UDF Compliant`, revision in its suffix (UDF 2.60 §2.1.5.3).
        if lvd
            .get(217..236)
            .is_some_and(|id| id == b"*OSTA UDF Compliant")
        {
            self.revision = le_u16(&lvd, 240).unwrap_or(0);
        }
        let table_len = le_u32(&lvd, 264).unwrap_or(0);
        let count = le_u32(&lvd, 268).unwrap_or(0);
        let table = usize::try_from(table_len)
            .ok()
            .and_then(|l| lvd.get(440..440usize.checked_add(l)?))
            .ok_or_else(|| {
                self.corrupt(format!(
                    "logical volume descriptor: partition map table of {table_len} bytes runs \
                     past the descriptor"
                ))
            })?;
        if usize::try_from(count).unwrap_or(usize::MAX) > MAX_PARTITION_MAPS {
            return Err(self.corrupt(format!(
                "logical volume descriptor: {count} partition maps, more than {MAX_PARTITION_MAPS}"
            )));
        }
        let mut raw_maps = Vec::new();
        let mut rest = table;
        for i in 0..count {
            let (kind, len) = match rest {
                [kind, len, ..] => (*kind, usize::from(*len)),
                _ => {
                    return Err(
                        self.corrupt(format!("partition map {i}: past the end of the table"))
                    )
                }
            };
            let map = rest
                .get(..len)
                .filter(|_| len >= 6)
                .ok_or_else(|| self.corrupt(format!("partition map {i}: length {len}")))?;
            raw_maps.push((kind, map));
            rest = rest.get(len..).unwrap_or_default();
        }
        // Physical maps first: a metadata map's file lies in one of them.
        let mut parts: Vec<Option<PartMap>> = vec![None; raw_maps.len()];
        for (i, (kind, map)) in raw_maps.iter().enumerate() {
            if *kind == 1 {
                let number = le_u16(map, 4).unwrap_or(0);
                let (start, len) = *vds.pds.get(&number).ok_or_else(|| {
                    self.corrupt(format!(
                        "partition map {i}: no partition descriptor for partition {number}"
                    ))
                })?;
                if let Some(slot) = parts.get_mut(i) {
                    *slot = Some(PartMap::Physical { start, len });
                }
            }
        }
        self.parts = parts
            .iter()
            .map(|p| p.clone().unwrap_or(PartMap::Physical { start: 0, len: 0 }))
            .collect();
        for (i, (kind, map)) in raw_maps.iter().enumerate() {
            match (*kind, map.get(5..28)) {
                (1, _) => {}
                (2, Some(ident)) if ident == b"*UDF Metadata Partition" => {
                    let number = le_u16(map, 38).unwrap_or(0);
                    let location = le_u32(map, 40).unwrap_or(0);
                    let phys = raw_maps
                        .iter()
                        .position(|(k, m)| *k == 1 && le_u16(m, 4) == Some(number))
                        .and_then(|p| u16::try_from(p).ok())
                        .ok_or_else(|| {
                            self.corrupt(format!(
                                "partition map {i}: metadata partition on partition {number}, \
                                 which has no type 1 map"
                            ))
                        })?;
                    let extents = self.metadata_extents(LbAddr {
                        part: phys,
                        block: location,
                    })?;
                    if let Some(slot) = self.parts.get_mut(i) {
                        *slot = PartMap::Metadata { extents };
                    }
                }
                (2, Some(ident)) => {
                    let name = String::from_utf8_lossy(ident);
                    return Err(self.corrupt(format!(
                        "partition map {i}: {:?} partitions are not supported",
                        name.trim_end_matches('\0')
                    )));
                }
                (k, _) => return Err(self.corrupt(format!("partition map {i}: unknown type {k}"))),
            }
        }
        // The File Set Descriptor (UDF 2.60 §2.2.4.4: its long_ad is the LVD's contents use).
        let fsd_at = parse_long_ad(&lvd, 248)
            .ok_or_else(|| self.corrupt("logical volume descriptor: no file set".into()))?;
        let fsd = self.descriptor(fsd_at.at, tag_id::FSD, "file set descriptor")?;
        let root = parse_long_ad(&fsd, 400)
            .ok_or_else(|| self.corrupt("file set descriptor: no root directory".into()))?;
        self.root = root.at;
        Ok(())
    }

    /// Reads the metadata file's File Entry at `icb` (in a physical partition) and returns its
    /// extents, in order, as (offset in the file, sector, bytes).
    fn metadata_extents(&self, icb: LbAddr) -> Result<Vec<(u64, u64, u32)>, MediaError> {
        let fe = self.file_entry(icb, "metadata file")?;
        if fe.file_type != FILE_TYPE_METADATA {
            return Err(self.corrupt(format!(
                "metadata file (block {}): ICB file type {}, not {FILE_TYPE_METADATA}",
                icb.block, fe.file_type
            )));
        }
        let mut out = Vec::new();
        let mut offset = 0u64;
        for ad in self.allocation(&fe, icb, "metadata file")? {
            if ad.kind == ExtentKind::Recorded {
                // Only physical partitions are resolved yet: the metadata file lies in one.
                let sector = self.physical_sector(ad.at, "metadata file")?;
                out.push((offset, sector, ad.len));
            }
            offset = offset.saturating_add(u64::from(ad.len));
        }
        Ok(out)
    }

    /// The volume sector of a block in a type 1 partition.
    fn physical_sector(&self, at: LbAddr, what: &str) -> Result<u64, MediaError> {
        match self.parts.get(usize::from(at.part)) {
            Some(PartMap::Physical { start, len }) if at.block < *len => {
                Ok(u64::from(*start).saturating_add(u64::from(at.block)))
            }
            Some(PartMap::Physical { len, .. }) => Err(self.corrupt(format!(
                "{what}: block {} past the end of partition {} ({len} blocks)",
                at.block, at.part
            ))),
            _ => Err(self.corrupt(format!(
                "{what}: partition reference {} is not a physical partition",
                at.part
            ))),
        }
    }

    /// Reads `len` bytes starting at block `at` of its partition.
    fn read_logical(&self, at: LbAddr, len: u64, what: &str) -> Result<Vec<u8>, MediaError> {
        let here = || format!("{what} (partition {}, block {})", at.part, at.block);
        let bytes = usize::try_from(len).map_err(|_| self.corrupt(here()))?;
        match self.parts.get(usize::from(at.part)) {
            Some(PartMap::Physical { start, len: plen }) => {
                let blocks = len.div_ceil(u64::from(self.block));
                if u64::from(at.block).saturating_add(blocks) > u64::from(*plen) {
                    return Err(self.corrupt(format!(
                        "{}: {len} bytes run past the end of the partition ({plen} blocks)",
                        here()
                    )));
                }
                let sector = u64::from(*start).saturating_add(u64::from(at.block));
                let offset = sector
                    .checked_mul(u64::from(self.block))
                    .ok_or_else(|| self.corrupt(here()))?;
                self.read_exact(offset, bytes, &here())
            }
            Some(PartMap::Metadata { extents }) => {
                let mut out = Vec::with_capacity(bytes.min(1 << 20));
                let mut pos = u64::from(at.block).saturating_mul(u64::from(self.block));
                let end = pos.saturating_add(len);
                while pos < end {
                    let (file_off, sector, elen) = extents
                        .iter()
                        .find(|(o, _, l)| *o <= pos && pos < o.saturating_add(u64::from(*l)))
                        .copied()
                        .ok_or_else(|| {
                            self.corrupt(format!(
                                "{}: byte {pos} of the metadata partition is not recorded",
                                here()
                            ))
                        })?;
                    let into = pos.saturating_sub(file_off);
                    let take = end
                        .min(file_off.saturating_add(u64::from(elen)))
                        .saturating_sub(pos);
                    let offset = sector
                        .checked_mul(u64::from(self.block))
                        .and_then(|o| o.checked_add(into))
                        .ok_or_else(|| self.corrupt(here()))?;
                    let chunk = self.read_exact(
                        offset,
                        usize::try_from(take).map_err(|_| self.corrupt(here()))?,
                        &here(),
                    )?;
                    out.extend_from_slice(&chunk);
                    pos = pos.saturating_add(take);
                }
                Ok(out)
            }
            None => Err(self.corrupt(format!(
                "{}: no partition map {} (the volume has {})",
                here(),
                at.part,
                self.parts.len()
            ))),
        }
    }

    /// Reads the one-block descriptor at `at` and checks its tag, CRC, identifier and location.
    fn descriptor(&self, at: LbAddr, id: u16, what: &str) -> Result<Vec<u8>, MediaError> {
        let d = self.read_logical(at, u64::from(self.block), what)?;
        let here = || format!("{what} (partition {}, block {})", at.part, at.block);
        let tag = check_tag(&d).map_err(|e| self.corrupt(format!("{}: {}", here(), e.text())))?;
        if tag.id != id {
            return Err(self.corrupt(format!(
                "{}: tag {} where {id} was expected",
                here(),
                tag.id
            )));
        }
        if tag.location != at.block {
            return Err(self.corrupt(format!(
                "{}: tag says it is at block {}",
                here(),
                tag.location
            )));
        }
        Ok(d)
    }

    /// Reads the File Entry or Extended File Entry at `icb`.
    fn file_entry(&self, icb: LbAddr, what: &str) -> Result<Fe, MediaError> {
        let d = self.read_logical(icb, u64::from(self.block), what)?;
        let here = || format!("{what} (partition {}, block {})", icb.part, icb.block);
        let tag = check_tag(&d).map_err(|e| self.corrupt(format!("{}: {}", here(), e.text())))?;
        if tag.location != icb.block {
            return Err(self.corrupt(format!(
                "{}: tag says it is at block {}",
                here(),
                tag.location
            )));
        }
        let fixed = match tag.id {
            tag_id::FE => FE_FIXED,
            tag_id::EFE => EFE_FIXED,
            tag_id::IE => {
                return Err(self.corrupt(format!(
                    "{}: indirect entry (ICB strategy 4096) not supported",
                    here()
                )))
            }
            other => {
                return Err(self.corrupt(format!("{}: tag {other} is not a file entry", here())))
            }
        };
        // ICB tag at 16: file type at +11, flags at +18.
        let file_type = d.get(27).copied().unwrap_or(0);
        let ad_kind = le_u16(&d, 34).unwrap_or(0) & 7;
        let info_len = le_u64(&d, 56).unwrap_or(0);
        let (l_ea, l_ad) = if tag.id == tag_id::FE {
            (le_u32(&d, 168), le_u32(&d, 172))
        } else {
            (le_u32(&d, 208), le_u32(&d, 212))
        };
        let ads = l_ea
            .zip(l_ad)
            .and_then(|(ea, ad)| {
                let from = fixed.checked_add(usize::try_from(ea).ok()?)?;
                let to = from.checked_add(usize::try_from(ad).ok()?)?;
                d.get(from..to)
            })
            .ok_or_else(|| {
                self.corrupt(format!(
                    "{}: extended attributes and allocation descriptors run past the block",
                    here()
                ))
            })?;
        Ok(Fe {
            file_type,
            ad_kind,
            info_len,
            ads: ads.to_vec(),
        })
    }

    /// The allocation descriptors of `fe` (at `icb`), AED continuations followed.
    fn allocation(&self, fe: &Fe, icb: LbAddr, what: &str) -> Result<Vec<Ad>, MediaError> {
        let (size, long) = match fe.ad_kind {
            AD_SHORT => (8usize, false),
            AD_LONG => (16, true),
            AD_EXTENDED => {
                return Err(self.corrupt(format!(
                    "{what} (block {}): extended allocation descriptors are not supported",
                    icb.block
                )))
            }
            _ => {
                return Err(self.corrupt(format!(
                    "{what} (block {}): allocation descriptor type {}",
                    icb.block, fe.ad_kind
                )))
            }
        };
        let mut out = Vec::new();
        let mut area: Vec<u8> = fe.ads.clone();
        let mut seen = BTreeSet::new();
        loop {
            let mut next = None;
            for chunk in area.chunks_exact(size) {
                let ad = if long {
                    parse_long_ad(chunk, 0)
                } else {
                    parse_short_ad(chunk, 0, icb.part)
                };
                let Some(ad) = ad else { break };
                if ad.len == 0 {
                    break; // the end of the descriptors (ECMA-167 4/12.1)
                }
                if ad.kind == ExtentKind::Continuation {
                    next = Some(ad.at);
                    break;
                }
                if out.len() >= MAX_EXTENTS {
                    return Err(self.corrupt(format!(
                        "{what} (block {}): more than {MAX_EXTENTS} allocation descriptors",
                        icb.block
                    )));
                }
                out.push(ad);
            }
            let Some(at) = next else {
                return Ok(out);
            };
            if seen.len() >= MAX_AED_HOPS || !seen.insert(at) {
                return Err(self.corrupt(format!(
                    "{what} (block {}): allocation extent descriptors loop or exceed {MAX_AED_HOPS}",
                    icb.block
                )));
            }
            let d = self.descriptor(at, tag_id::AED, &format!("{what}: allocation extent"))?;
            let l_ad = le_u32(&d, 20).unwrap_or(0);
            area = usize::try_from(l_ad)
                .ok()
                .and_then(|l| d.get(24..24usize.checked_add(l)?))
                .ok_or_else(|| {
                    self.corrupt(format!(
                        "{what}: allocation extent at block {}: {l_ad} bytes past the block",
                        at.block
                    ))
                })?
                .to_vec();
        }
    }

    /// The first `len` bytes of the file or directory whose entry is `fe`.
    fn content(&self, fe: &Fe, icb: LbAddr, len: u64, what: &str) -> Result<Vec<u8>, MediaError> {
        if fe.ad_kind == AD_EMBEDDED {
            return usize::try_from(len)
                .ok()
                .and_then(|l| fe.ads.get(..l))
                .map(<[u8]>::to_vec)
                .ok_or_else(|| {
                    self.corrupt(format!(
                        "{what} (block {}): {len} bytes, but {} embedded",
                        icb.block,
                        fe.ads.len()
                    ))
                });
        }
        let mut out: Vec<u8> = Vec::new();
        let mut have = 0u64;
        for ad in self.allocation(fe, icb, what)? {
            if have >= len {
                break;
            }
            let take = u64::from(ad.len).min(len.saturating_sub(have));
            match ad.kind {
                ExtentKind::Recorded => {
                    out.extend(self.read_logical(ad.at, take, what)?);
                }
                _ => out.resize(
                    out.len().saturating_add(usize::try_from(take).unwrap_or(0)),
                    0,
                ),
            }
            have = have.saturating_add(take);
        }
        if have < len {
            return Err(self.corrupt(format!(
                "{what} (block {}): allocation covers {have} of {len} bytes",
                icb.block
            )));
        }
        Ok(out)
    }

    /// The entries of the directory at `icb`, parsed once and then taken from the cache.
    fn read_dir(&self, icb: LbAddr) -> Result<Rc<[Entry]>, MediaError> {
        if let Some(entries) = self.dirs.get(&icb) {
            return Ok(entries);
        }
        let what = format!("directory (partition {}, block {})", icb.part, icb.block);
        let fe = self.file_entry(icb, &what)?;
        if fe.file_type != FILE_TYPE_DIRECTORY {
            return Err(self.corrupt(format!(
                "{what}: ICB file type {}, not a directory",
                fe.file_type
            )));
        }
        if fe.info_len > MAX_DIR_BYTES {
            return Err(self.corrupt(format!(
                "{what}: {} bytes, more than the {MAX_DIR_BYTES}-byte limit",
                fe.info_len
            )));
        }
        let bytes = self.content(&fe, icb, fe.info_len, &what)?;
        let entries: Rc<[Entry]> = parse_fids(&bytes)
            .map_err(|(at, why)| self.corrupt(format!("{what}: FID at byte {at}: {why}")))?
            .into();
        let weight = dir_bytes(&entries);
        Ok(self.dirs.keep(icb, entries, weight))
    }

    /// Finds `path`: `Ok(None)` if missing, `Some((icb, is_dir))` otherwise.
    fn lookup(&self, path: &str) -> Result<Option<(LbAddr, bool)>, MediaError> {
        let bad = || MediaError::new(format!("{}:{path}", self.object), MediaErrorKind::BadPath);
        let parts = components(path).ok_or_else(bad)?;
        if parts.len() > MAX_DEPTH {
            return Err(bad());
        }
        let mut cur = (self.root, true);
        for part in parts {
            if !cur.1 {
                return Ok(None);
            }
            match self.read_dir(cur.0)?.iter().find(|e| e.name == part) {
                Some(e) => cur = (e.icb, e.dir),
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }
}

/// An `extent_ad` (length, location) at `off` (ECMA-167 3/7.1).
fn extent_ad(b: &[u8], off: usize) -> (u32, u32) {
    (
        le_u32(b, off).unwrap_or(0),
        off.checked_add(4).and_then(|o| le_u32(b, o)).unwrap_or(0),
    )
}

/// Parses a directory's bytes into entries (parent, deleted and hidden FIDs left out).
/// An error is `(byte offset, why)`.
fn parse_fids(bytes: &[u8]) -> Result<Vec<Entry>, (usize, &'static str)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let rest = bytes.get(pos..).unwrap_or_default();
        // Zero padding at the end of a directory's last block is not a FID.
        if rest.iter().all(|b| *b == 0) {
            break;
        }
        let l_fi = usize::from(*rest.get(19).ok_or((pos, "cut short"))?);
        let l_iu = usize::from(le_u16(rest, 36).ok_or((pos, "cut short"))?);
        let len = FID_FIXED
            .checked_add(l_iu)
            .and_then(|l| l.checked_add(l_fi))
            .ok_or((pos, "length overflows"))?;
        // Each FID is padded to a multiple of 4 bytes (ECMA-167 4/14.4.9).
        let padded = len
            .checked_next_multiple_of(4)
            .ok_or((pos, "length overflows"))?;
        let fid = rest.get(..len).ok_or((pos, "runs past the directory"))?;
        // Writers differ on whether the CRC covers the padding (genisoimage and mkudffs do).
        let tag = check_tag(rest.get(..padded).unwrap_or(fid)).map_err(|e| (pos, e.text()))?;
        if tag.id != tag_id::FID {
            return Err((pos, "not a file identifier descriptor"));
        }
        let flags = *fid.get(18).ok_or((pos, "cut short"))?;
        let icb = parse_long_ad(fid, 20).ok_or((pos, "cut short"))?;
        let name_at = FID_FIXED
            .checked_add(l_iu)
            .ok_or((pos, "length overflows"))?;
        let raw_name = fid.get(name_at..len).ok_or((pos, "name past the FID"))?;
        pos = pos.checked_add(padded).ok_or((pos, "length overflows"))?;
        if flags & (FID_PARENT | FID_DELETED | FID_HIDDEN) != 0 {
            continue;
        }
        let Some(name) = decode_cs0(raw_name) else {
            continue; // an unknown compression ID: no name to look it up by
        };
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            continue;
        }
        out.push(Entry {
            name,
            dir: flags & FID_DIRECTORY != 0,
            icb: icb.at,
        });
    }
    Ok(out)
}

impl Tree for UdfTree {
    fn read(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>, MediaError> {
        let Some((icb, false)) = self.lookup(path)? else {
            return Ok(None);
        };
        let object = format!("{}:{path}", self.object);
        let what = format!("file {path:?}");
        let fe = self.file_entry(icb, &what)?;
        match fe.file_type {
            FILE_TYPE_REGULAR => {}
            FILE_TYPE_DIRECTORY => return Ok(None),
            t => {
                return Err(MediaError::new(
                    object,
                    MediaErrorKind::Corrupt(format!("ICB file type {t} is not a regular file")),
                ))
            }
        }
        if fe.info_len > cap {
            return Err(MediaError::new(
                object,
                MediaErrorKind::TooLarge {
                    size: fe.info_len,
                    cap,
                },
            ));
        }
        self.content(&fe, icb, fe.info_len, &what).map(Some)
    }

    fn list(&self, dir: &str) -> Result<Option<Vec<String>>, MediaError> {
        let Some((icb, true)) = self.lookup(dir)? else {
            return Ok(None);
        };
        let mut names: Vec<String> = self.read_dir(icb)?.iter().map(|e| e.name.clone()).collect();
        names.sort();
        names.dedup();
        Ok(Some(names))
    }

    fn describe(&self) -> String {
        self.object.clone()
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
mod tests {
    //! A small UDF writer (test-only): UDF 2.60-shaped images with File Entries or Extended
    //! File Entries, short or long allocation descriptors, embedded data, 8- or 16-bit names
    //! and optionally a metadata partition, so that every shape the reader supports is built
    //! without mounting (this kernel cannot mount UDF), and then damaged on purpose.
    use super::*;
    use std::collections::BTreeMap as Map;

    const BS: usize = 2048;
    /// Where the partition starts (sector) and how long it is (blocks).
    const PART_START: usize = 300;
    const PART_LEN: usize = 400;
    /// With a metadata partition: the metadata file's FE at physical block 0, its data at
    /// physical blocks 1..1+MD_LEN.
    const MD_LEN: usize = 100;

    #[derive(Clone, Copy, Default)]
    struct Opts {
        efe: bool,
        long_ad: bool,
        embed: bool,
        name16: bool,
        metadata: bool,
    }

    enum Node {
        File(Vec<u8>),
        Dir(Vec<(&'static str, Node)>),
    }

    fn file(data: &[u8]) -> Node {
        Node::File(data.to_vec())
    }

    struct W {
        img: Vec<u8>,
        o: Opts,
        next_meta: u32,
        next_data: u32,
        /// Image byte offset of each path's File Entry ("" is the root).
        fe_at: Map<String, usize>,
        /// Image byte offset of each directory's FIDs when not embedded.
        dir_data_at: Map<String, usize>,
    }

    fn le16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn le32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Fills in a descriptor tag: identifier, version, CRC over the rest, location, checksum.
    fn tag(d: &mut [u8], id: u16, loc: u32) {
        le16(d, 0, id);
        le16(d, 2, 3);
        le16(d, 6, 1);
        let crc_len = d.len() - 16;
        le16(d, 10, crc_len as u16);
        let crc = crc_itu(&d[16..]);
        le16(d, 8, crc);
        le32(d, 12, loc);
        retag(d);
    }

    /// Recomputes only the tag checksum.
    fn retag(d: &mut [u8]) {
        d[4] = 0;
        d[4] = d[..16].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    }

    /// Recomputes CRC and checksum of the descriptor of `len` bytes at `at`.
    fn recrc(img: &mut [u8], at: usize, len: usize) {
        let loc = u32::from_le_bytes(img[at + 12..at + 16].try_into().unwrap());
        let id = u16::from_le_bytes([img[at], img[at + 1]]);
        tag(&mut img[at..at + len], id, loc);
    }

    fn long_ad(len: u32, part: u16, lbn: u32) -> Vec<u8> {
        let mut a = vec![0u8; 16];
        le32(&mut a, 0, len);
        le32(&mut a, 4, lbn);
        le16(&mut a, 8, part);
        a
    }

    fn short_ad(len: u32, lbn: u32) -> Vec<u8> {
        let mut a = vec![0u8; 8];
        le32(&mut a, 0, len);
        le32(&mut a, 4, lbn);
        a
    }

    impl W {
        fn meta_part(&self) -> u16 {
            u16::from(self.o.metadata)
        }

        /// Image offset of block `lbn` of partition reference `part`.
        fn off(&self, part: u16, lbn: u32) -> usize {
            let phys = if part == 1 {
                lbn as usize + 1
            } else {
                lbn as usize
            };
            (PART_START + phys) * BS
        }

        fn alloc_meta(&mut self, n: usize) -> u32 {
            let at = self.next_meta;
            self.next_meta += n.max(1) as u32;
            if !self.o.metadata {
                self.next_data = self.next_meta;
            }
            at
        }

        fn alloc_data(&mut self, n: usize) -> (u16, u32) {
            if self.o.metadata {
                let at = self.next_data;
                self.next_data += n.max(1) as u32;
                (0, at)
            } else {
                (0, self.alloc_meta(n))
            }
        }

        fn put(&mut self, at: usize, bytes: &[u8]) {
            self.img[at..at + bytes.len()].copy_from_slice(bytes);
        }

        fn cs0(&self, name: &str) -> Vec<u8> {
            if self.o.name16 {
                let mut v = vec![16u8];
                v.extend(name.encode_utf16().flat_map(u16::to_be_bytes));
                v
            } else {
                let mut v = vec![8u8];
                v.extend(name.chars().map(|c| c as u8));
                v
            }
        }

        fn fid(&self, flags: u8, icb: u32, name: &[u8], loc: u32) -> Vec<u8> {
            let len = 38 + name.len();
            let mut d = vec![0u8; len];
            le16(&mut d, 16, 1);
            d[18] = flags;
            d[19] = name.len() as u8;
            d[20..36].copy_from_slice(&long_ad(BS as u32, self.meta_part(), icb));
            d[38..].copy_from_slice(name);
            // CRC over the FID without its padding (mkudffs and genisoimage include it).
            tag(&mut d, tag_id::FID, loc);
            d.resize(len.next_multiple_of(4), 0);
            d
        }

        fn fe(&self, loc: u32, file_type: u8, info_len: u64, ad_kind: u16, ads: &[u8]) -> Vec<u8> {
            let fixed = if self.o.efe { EFE_FIXED } else { FE_FIXED };
            let mut d = vec![0u8; fixed + ads.len()];
            le16(&mut d, 20, 4); // strategy type 4
            d[27] = file_type;
            le16(&mut d, 34, ad_kind);
            d[56..64].copy_from_slice(&info_len.to_le_bytes());
            le32(&mut d, if self.o.efe { 212 } else { 172 }, ads.len() as u32);
            d[fixed..].copy_from_slice(ads);
            tag(
                &mut d,
                if self.o.efe { tag_id::EFE } else { tag_id::FE },
                loc,
            );
            d
        }

        /// Data recorded in blocks: the allocation descriptors and their kind.
        fn extents(&mut self, data: &[u8], meta: bool) -> (u16, Vec<u8>) {
            let n = data.len().div_ceil(BS);
            let (part, lbn) = if meta {
                (self.meta_part(), self.alloc_meta(n))
            } else {
                self.alloc_data(n)
            };
            let at = self.off(part, lbn);
            self.put(at, data);
            // Long ADs when asked, and always when the data lies outside the ICB's partition.
            if self.o.long_ad || part != self.meta_part() {
                (AD_LONG, long_ad(data.len() as u32, part, lbn))
            } else {
                (AD_SHORT, short_ad(data.len() as u32, lbn))
            }
        }

        fn node(&mut self, path: &str, node: &Node, me: u32, parent: u32) {
            let room = BS - if self.o.efe { EFE_FIXED } else { FE_FIXED };
            let (file_type, content, meta) = match node {
                Node::File(data) => (FILE_TYPE_REGULAR, data.clone(), false),
                Node::Dir(children) => {
                    let mut fids = self.fid(FID_PARENT | FID_DIRECTORY, parent, &[], me);
                    for (name, child) in children {
                        let lbn = self.alloc_meta(1);
                        let sub = if path.is_empty() {
                            name.to_string()
                        } else {
                            format!("{path}/{name}")
                        };
                        self.node(&sub, child, lbn, me);
                        let flags = if matches!(child, Node::Dir(_)) {
                            FID_DIRECTORY
                        } else {
                            0
                        };
                        let cs = self.cs0(name);
                        fids.extend(self.fid(flags, lbn, &cs, me));
                    }
                    (FILE_TYPE_DIRECTORY, fids, true)
                }
            };
            let (kind, ads) = if self.o.embed && content.len() <= room {
                (AD_EMBEDDED, content.clone())
            } else {
                let (kind, ads) = self.extents(&content, meta);
                if meta {
                    let lbn = u32::from_le_bytes(ads[4..8].try_into().unwrap());
                    let at = self.off(self.meta_part(), lbn);
                    self.dir_data_at.insert(path.to_string(), at);
                }
                (kind, ads)
            };
            let fe = self.fe(me, file_type, content.len() as u64, kind, &ads);
            let at = self.off(self.meta_part(), me);
            self.put(at, &fe);
            self.fe_at.insert(path.to_string(), at);
        }
    }

    fn vsd(img: &mut [u8], sector: usize, id: &[u8; 5]) {
        let at = sector * BS;
        img[at + 1..at + 6].copy_from_slice(id);
        img[at + 6] = 1;
    }

    fn dstr(field: &mut [u8], text: &str) {
        field[0] = 8;
        field[1..1 + text.len()].copy_from_slice(text.as_bytes());
        let last = field.len() - 1;
        field[last] = (text.len() + 1) as u8;
    }

    /// Builds an image of `root` (a `Node::Dir`). Returns the writer, for damage.
    fn build(o: Opts, root: &Node) -> W {
        let mut w = W {
            img: vec![0u8; (PART_START + PART_LEN) * BS],
            o,
            next_meta: 0,
            next_data: 1 + MD_LEN as u32,
            fe_at: Map::new(),
            dir_data_at: Map::new(),
        };
        let img = &mut w.img;
        vsd(img, 16, b"BEA01");
        vsd(img, 17, b"NSR03");
        vsd(img, 18, b"TEA01");
        for (base, anchor) in [(32usize, true), (48, false)] {
            let mut pvd = vec![0u8; 512];
            dstr(&mut pvd[24..56], "rd_rdfe_stable");
            tag(&mut pvd, tag_id::PVD, base as u32);
            let mut pd = vec![0u8; 512];
            le16(&mut pd, 22, 0);
            pd[25..31].copy_from_slice(b"+NSR03");
            le32(&mut pd, 188, PART_START as u32);
            le32(&mut pd, 192, PART_LEN as u32);
            tag(&mut pd, tag_id::PD, base as u32 + 1);
            let maps_len = if o.metadata { 6 + 64 } else { 6 };
            let mut lvd = vec![0u8; 440 + maps_len];
            dstr(&mut lvd[84..212], "AzureProvisioning");
            le32(&mut lvd, 212, BS as u32);
            lvd[217..236].copy_from_slice(b"*OSTA UDF Compliant");
            le16(&mut lvd, 240, 0x0260);
            lvd[248..264].copy_from_slice(&long_ad(BS as u32, u16::from(o.metadata), 0));
            le32(&mut lvd, 264, maps_len as u32);
            le32(&mut lvd, 268, if o.metadata { 2 } else { 1 });
            lvd[440..446].copy_from_slice(&[1, 6, 1, 0, 0, 0]);
            if o.metadata {
                let m = &mut lvd[446..510];
                m[0] = 2;
                m[1] = 64;
                m[5..28].copy_from_slice(b"*UDF Metadata Partition");
                le16(m, 36, 1);
                le16(m, 38, 0);
                le32(m, 40, 0); // metadata file at physical block 0
                le32(m, 44, u32::MAX);
                le32(m, 48, u32::MAX);
            }
            tag(&mut lvd, tag_id::LVD, base as u32 + 2);
            let mut td = vec![0u8; 512];
            tag(&mut td, tag_id::TD, base as u32 + 3);
            for (i, d) in [pvd, pd, lvd, td].iter().enumerate() {
                let at = (base + i) * BS;
                img[at..at + d.len()].copy_from_slice(d);
            }
            if anchor {
                let mut avdp = vec![0u8; 512];
                le32(&mut avdp, 16, 16 * BS as u32);
                le32(&mut avdp, 20, 32);
                le32(&mut avdp, 24, 16 * BS as u32);
                le32(&mut avdp, 28, 48);
                tag(&mut avdp, tag_id::AVDP, 256);
                img[256 * BS..256 * BS + 512].copy_from_slice(&avdp);
            }
        }
        if o.metadata {
            let mut mfe = W {
                o: Opts {
                    efe: o.efe,
                    ..Opts::default()
                },
                ..w_empty()
            };
            mfe.o.metadata = false;
            let fe = mfe.fe(
                0,
                FILE_TYPE_METADATA,
                (MD_LEN * BS) as u64,
                AD_SHORT,
                &short_ad((MD_LEN * BS) as u32, 1),
            );
            let at = w.off(0, 0);
            w.put(at, &fe);
        }
        let fsd_lbn = w.alloc_meta(1);
        let root_lbn = w.alloc_meta(1);
        w.node("", root, root_lbn, root_lbn);
        let mut fsd = vec![0u8; 512];
        fsd[400..416].copy_from_slice(&long_ad(BS as u32, w.meta_part(), root_lbn));
        tag(&mut fsd, tag_id::FSD, fsd_lbn);
        let at = w.off(w.meta_part(), fsd_lbn);
        w.put(at, &fsd);
        w
    }

    fn w_empty() -> W {
        W {
            img: Vec::new(),
            o: Opts::default(),
            next_meta: 0,
            next_data: 0,
            fe_at: Map::new(),
            dir_data_at: Map::new(),
        }
    }

    fn azure_tree() -> Node {
        let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        Node::Dir(vec![
            ("ovf-env.xml", file(b"<Environment/>\n")),
            ("empty", file(b"")),
            (
                "sub",
                Node::Dir(vec![(
                    "deeper",
                    Node::Dir(vec![("big.bin", Node::File(big))]),
                )]),
            ),
        ])
    }

    /// Writes `img` to a scratch file and opens it.
    fn open_img(tag: &str, img: &[u8]) -> (Result<UdfTree, MediaError>, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("preroot-udf-{tag}-{}", std::process::id()));
        std::fs::write(&path, img).unwrap();
        (UdfTree::open(&path), path)
    }

    fn corrupt_text<T>(r: Result<T, MediaError>, case: &str) -> String {
        match r {
            Err(MediaError {
                kind: MediaErrorKind::Corrupt(why),
                ..
            }) => why,
            Err(e) => panic!("case {case}: not Corrupt: {e}"),
            Ok(_) => panic!("case {case}: accepted"),
        }
    }

    #[test]
    fn crc_and_tags() {
        // ECMA-167 1/7.2.6's example: the CRC of #70 #6A #77 is #3299.
        assert_eq!(crc_itu(&[0x70, 0x6A, 0x77]), 0x3299, "ECMA-167 example");
        assert_eq!(crc_itu(&[]), 0, "empty");
        let mut d = vec![0u8; 64];
        d[20] = 0x55;
        tag(&mut d, tag_id::PVD, 32);
        let t = check_tag(&d).unwrap();
        assert_eq!((t.id, t.location, t.crc_len), (1, 32, 48), "good tag");
        type Damage = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: &[(&str, Damage, TagError)] = &[
            ("checksum", Box::new(|d| d[0] ^= 1), TagError::Checksum),
            ("crc", Box::new(|d| d[20] ^= 1), TagError::Crc),
            (
                "crc length past the end",
                Box::new(|d| {
                    d[10] = 200;
                    retag(d)
                }),
                TagError::CrcLength,
            ),
            ("short", Box::new(|d| d.truncate(15)), TagError::Short),
        ];
        for (case, damage, want) in cases {
            let mut bad = d.clone();
            damage(&mut bad);
            assert_eq!(check_tag(&bad), Err(*want), "case {case}");
        }
    }

    #[test]
    fn names_and_dstrings() {
        let cases: &[(&str, &[u8], Option<&str>)] = &[
            ("8-bit", b"\x08ovf-env.xml", Some("ovf-env.xml")),
            ("8-bit latin-1", b"\x08caf\xe9", Some("caf\u{e9}")),
            ("16-bit", b"\x10\x00o\x00k\x4e\x2d", Some("ok\u{4e2d}")),
            ("16-bit odd length", b"\x10\x00a\x00", Some("a\u{fffd}")),
            ("16-bit lone surrogate", b"\x10\xd8\x00", Some("\u{fffd}")),
            ("254 is 8-bit", b"\xfeab", Some("ab")),
            ("255 is 16-bit", b"\xff\x00a", Some("a")),
            ("empty", b"", Some("")),
            ("unknown compression", b"\x07abc", None),
        ];
        for (case, raw, want) in cases {
            assert_eq!(decode_cs0(raw).as_deref(), *want, "case {case}");
        }
        let ds: &[(&str, &[u8], &[u8])] = &[
            ("recorded", b"\x08AB\0\0\x03", b"\x08AB"),
            ("unrecorded", b"\x08AB\0\0\x00", b""),
            ("length past the field", b"\x08AB\x09", b"\x08AB"),
            ("empty field", b"", b""),
        ];
        for (case, field, want) in ds {
            assert_eq!(dstring(field), *want, "case {case}");
        }
    }

    #[test]
    fn recognition_records() {
        let cases: &[(&str, &[u8], Option<Vsd>)] = &[
            ("BEA01", b"\0BEA01\x01", Some(Vsd::Bea)),
            ("NSR02", b"\0NSR02\x01", Some(Vsd::Nsr(2))),
            ("NSR03", b"\0NSR03\x01", Some(Vsd::Nsr(3))),
            ("TEA01", b"\0TEA01\x01", Some(Vsd::Tea)),
            ("CD001", b"\x01CD001\x01", Some(Vsd::Other)),
            ("version 2", b"\0NSR03\x02", None),
            ("zeros", &[0; 7], None),
            ("short", b"\0NSR0", None),
        ];
        for (case, raw, want) in cases {
            assert_eq!(vrs_descriptor(raw), *want, "case {case}");
        }
    }

    #[test]
    fn allocation_descriptors() {
        let mut b = long_ad(0x4000_0010, 3, 77);
        b.extend(short_ad(0xC000_0800, 9));
        assert_eq!(
            parse_long_ad(&b, 0),
            Some(Ad {
                kind: ExtentKind::Unrecorded,
                len: 16,
                at: LbAddr { part: 3, block: 77 }
            }),
            "long, unrecorded"
        );
        assert_eq!(
            parse_short_ad(&b, 16, 2),
            Some(Ad {
                kind: ExtentKind::Continuation,
                len: 0x800,
                at: LbAddr { part: 2, block: 9 }
            }),
            "short, continuation"
        );
        assert_eq!(parse_short_ad(&b, 20, 0), None, "short past the end");
        assert_eq!(parse_long_ad(&b, usize::MAX), None, "overflowing offset");
    }

    /// Every writer shape reads back the same tree.
    #[test]
    fn shapes_read_back() {
        let shapes: &[(&str, Opts)] = &[
            ("FE, short_ad, 8-bit", Opts::default()),
            (
                "EFE, long_ad",
                Opts {
                    efe: true,
                    long_ad: true,
                    ..Opts::default()
                },
            ),
            (
                "embedded, 16-bit names",
                Opts {
                    embed: true,
                    name16: true,
                    ..Opts::default()
                },
            ),
            (
                "metadata partition",
                Opts {
                    metadata: true,
                    efe: true,
                    ..Opts::default()
                },
            ),
            (
                "metadata partition, embedded",
                Opts {
                    metadata: true,
                    embed: true,
                    name16: true,
                    efe: true,
                    ..Opts::default()
                },
            ),
        ];
        for (case, o) in shapes {
            let w = build(*o, &azure_tree());
            let (tree, path) = open_img("shape", &w.img);
            let tree = tree.unwrap_or_else(|e| panic!("case {case}: {e}"));
            assert_eq!(tree.volume_id(), "rd_rdfe_stable", "case {case}: volume id");
            assert_eq!(tree.label(), "AzureProvisioning", "case {case}: label");
            assert_eq!(tree.revision(), (0x0260, 3), "case {case}: revision");
            assert_eq!(
                tree.list("").unwrap().unwrap(),
                ["empty", "ovf-env.xml", "sub"],
                "case {case}: root"
            );
            assert_eq!(
                tree.read("ovf-env.xml", 1024).unwrap().as_deref(),
                Some(&b"<Environment/>\n"[..]),
                "case {case}: ovf-env.xml"
            );
            assert_eq!(
                tree.read("empty", 0).unwrap(),
                Some(vec![]),
                "case {case}: empty"
            );
            let big = tree.read("sub/deeper/big.bin", 1 << 20).unwrap().unwrap();
            assert_eq!(big.len(), 5000, "case {case}: big");
            assert!(
                big.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8),
                "case {case}: big bytes"
            );
            assert_eq!(
                tree.read("sub", 9).unwrap(),
                None,
                "case {case}: dir is no file"
            );
            assert_eq!(
                tree.list("ovf-env.xml").unwrap(),
                None,
                "case {case}: file is no dir"
            );
            assert_eq!(
                tree.read("OVF-ENV.XML", 9).unwrap(),
                None,
                "case {case}: names are exact"
            );
            assert_eq!(
                tree.read("nope/x", 9).unwrap(),
                None,
                "case {case}: missing"
            );
            let e = tree.read("sub/deeper/big.bin", 4999).unwrap_err();
            assert!(
                matches!(
                    e.kind,
                    MediaErrorKind::TooLarge {
                        size: 5000,
                        cap: 4999
                    }
                ),
                "case {case}: {e}"
            );
            assert!(
                matches!(
                    tree.read("../x", 9).unwrap_err().kind,
                    MediaErrorKind::BadPath
                ),
                "case {case}: .."
            );
            std::fs::remove_file(path).unwrap();
        }
    }

    /// Damaged images: each is refused with a message naming the place, never a panic or hang.
    #[test]
    fn hostile_images() {
        type Damage = fn(&mut W) -> (&'static str, &'static str);
        let cases: &[(&str, Damage, &str)] = &[
            (
                "no anchor",
                |w| {
                    w.img[256 * BS..257 * BS].fill(0);
                    ("", "")
                },
                "anchor",
            ),
            (
                "no NSR",
                |w| {
                    w.img[17 * BS + 1] = b'X';
                    ("", "")
                },
                "NSR0",
            ),
            (
                "truncated",
                |w| {
                    w.img.truncate(290 * BS);
                    ("", "")
                },
                "past the end",
            ),
            (
                "bad FE checksum",
                |w| {
                    let at = w.fe_at["ovf-env.xml"];
                    w.img[at] ^= 1;
                    ("ovf-env.xml", "")
                },
                "checksum",
            ),
            (
                "bad FE CRC",
                |w| {
                    let at = w.fe_at["ovf-env.xml"];
                    w.img[at + 100] ^= 1;
                    ("ovf-env.xml", "")
                },
                "CRC",
            ),
            (
                "FE tag at the wrong block",
                |w| {
                    let at = w.fe_at["ovf-env.xml"];
                    w.img[at + 12] ^= 0x40;
                    retag(&mut w.img[at..at + 16]);
                    ("ovf-env.xml", "")
                },
                "tag says",
            ),
            (
                "bad FID CRC",
                |w| {
                    let at = w.dir_data_at[""];
                    w.img[at + 60] ^= 1;
                    ("", "")
                },
                "FID at byte",
            ),
            (
                "huge file length",
                |w| {
                    let at = w.fe_at["ovf-env.xml"];
                    w.img[at + 56..at + 64].copy_from_slice(&u64::MAX.to_le_bytes());
                    recrc(&mut w.img, at, FE_FIXED + 8);
                    ("", "ovf-env.xml")
                },
                "allocation covers",
            ),
            (
                "huge directory",
                |w| {
                    let at = w.fe_at["sub"];
                    w.img[at + 56..at + 64].copy_from_slice(&(1u64 << 40).to_le_bytes());
                    recrc(&mut w.img, at, FE_FIXED + 8);
                    ("sub/deeper", "")
                },
                "limit",
            ),
            (
                "extent past the partition",
                |w| {
                    let at = w.fe_at["sub/deeper/big.bin"];
                    w.img[at + FE_FIXED + 4..at + FE_FIXED + 8]
                        .copy_from_slice(&(PART_LEN as u32 - 1).to_le_bytes());
                    recrc(&mut w.img, at, FE_FIXED + 8);
                    ("", "sub/deeper/big.bin")
                },
                "past the end of the partition",
            ),
            (
                "AED loop",
                |w| {
                    // big.bin's one short_ad becomes a continuation to an AED that points at itself.
                    let at = w.fe_at["sub/deeper/big.bin"];
                    let aed_lbn = (PART_LEN - 2) as u32;
                    w.img[at + FE_FIXED..at + FE_FIXED + 8]
                        .copy_from_slice(&short_ad(0xC000_0000 | BS as u32, aed_lbn));
                    recrc(&mut w.img, at, FE_FIXED + 8);
                    let mut aed = vec![0u8; 24 + 8];
                    le32(&mut aed, 20, 8);
                    aed[24..32].copy_from_slice(&short_ad(0xC000_0000 | BS as u32, aed_lbn));
                    tag(&mut aed, tag_id::AED, aed_lbn);
                    let off = (PART_START + aed_lbn as usize) * BS;
                    w.img[off..off + aed.len()].copy_from_slice(&aed);
                    ("", "sub/deeper/big.bin")
                },
                "loop",
            ),
            (
                "sparable partition map",
                |w| {
                    let at = 34 * BS;
                    w.img[at + 440] = 2;
                    w.img[at + 441] = 6;
                    recrc(&mut w.img, at, 446);
                    let at = 50 * BS;
                    w.img[at + 440] = 2;
                    recrc(&mut w.img, at, 446);
                    ("", "")
                },
                "partition map 0",
            ),
            (
                "block size not the sector size",
                |w| {
                    for at in [34 * BS, 50 * BS] {
                        w.img[at + 212..at + 216].copy_from_slice(&512u32.to_le_bytes());
                        recrc(&mut w.img, at, 446);
                    }
                    ("", "")
                },
                "logical block size",
            ),
        ];
        for (case, damage, want) in cases {
            let mut w = build(Opts::default(), &azure_tree());
            let (list, read) = damage(&mut w);
            let (tree, path) = open_img("hostile", &w.img);
            let why = match tree {
                Err(e) => corrupt_text::<()>(Err(e), case),
                Ok(t) if !read.is_empty() => corrupt_text(t.read(read, u64::MAX), case),
                Ok(t) => corrupt_text(
                    t.list(list).map(|_| ()).and_then(|_| t.read(list, 1 << 20)),
                    case,
                ),
            };
            assert!(
                why.contains(want),
                "case {case}: {why:?} does not say {want:?}"
            );
            std::fs::remove_file(path).unwrap();
        }
    }

    /// A damaged main volume descriptor sequence: the reserve one is read.
    #[test]
    fn reserve_sequence() {
        let mut w = build(Opts::default(), &azure_tree());
        w.img[34 * BS + 100] ^= 1; // the main LVD's CRC
        let (tree, path) = open_img("reserve", &w.img);
        let tree = tree.unwrap();
        assert_eq!(
            tree.label(),
            "AzureProvisioning",
            "label from the reserve LVD"
        );
        assert!(
            tree.read("ovf-env.xml", 99).unwrap().is_some(),
            "read through the reserve"
        );
        std::fs::remove_file(path).unwrap();
    }

    /// A sub-directory whose FID points back at the root: listings and lookups terminate.
    #[test]
    fn directory_loop() {
        let tree = Node::Dir(vec![
            ("loop", Node::Dir(vec![])),
            ("ovf-env.xml", file(b"x")),
        ]);
        let mut w = build(Opts::default(), &tree);
        // Point the root's `loop` FID at the root's own ICB.
        let root_lbn = 1u32;
        let at = w.dir_data_at[""];
        let fid_len = 40;
        let loop_fid = at + fid_len;
        w.img[loop_fid + 24..loop_fid + 28].copy_from_slice(&root_lbn.to_le_bytes());
        recrc(&mut w.img, loop_fid, 38 + 5);
        let (t, path) = open_img("loop", &w.img);
        let t = t.unwrap();
        let deep = std::iter::repeat_n("loop", MAX_DEPTH - 1)
            .collect::<Vec<_>>()
            .join("/");
        assert_eq!(
            t.read(&format!("{deep}/ovf-env.xml"), 9)
                .unwrap()
                .as_deref(),
            Some(&b"x"[..]),
            "a loop is just a path, walked once per component"
        );
        let too_deep = std::iter::repeat_n("loop", MAX_DEPTH + 1)
            .collect::<Vec<_>>()
            .join("/");
        assert!(
            matches!(t.list(&too_deep).unwrap_err().kind, MediaErrorKind::BadPath),
            "depth cap"
        );
        std::fs::remove_file(path).unwrap();
    }
}
