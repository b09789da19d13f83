//! FAT12/16/32 boot sector (BPB) parser and volume label probe.
//!
//! Owns the BPB: [`parse_bpb`] validates it and [`Bpb`]'s methods give the geometry that
//! `media::fat` reads the filesystem with. The label is the root directory's volume-label entry
//! when it can be seen (that is what `fatlabel`, `mkfs.vfat -n` and Windows write), else the
//! extended BPB's. Does not support exFAT, FAT without an extended BPB label (DOS < 4.0 gives no
//! BPB label; its root entry still counts), or non-ASCII OEM code pages (bytes are kept as is).
//!
//! Spec: Microsoft "FAT: General Overview of On-Disk Format" 1.03 (2000): BPB at 0x0B..0x24,
//! FAT12/16 extended BPB at 0x24 (BS_BootSig 0x26, BS_VolLab 0x2B), FAT32 extended BPB at 0x24
//! (BPB_RootClus 0x2C, BS_BootSig 0x42, BS_VolLab 0x47), signature 0x55AA at 510, directory
//! entries of 32 bytes with ATTR_VOLUME_ID 0x08 and long-name entries ATTR 0x0F.
//!
//! Panic contract: [`parse_bpb`], [`probe`], [`dir_volume_label`] and the [`Bpb`] geometry
//! methods never panic on any input (checked by `#[no_panic]` in the `nopanic` build) and do
//! not allocate.
#![deny(clippy::arithmetic_side_effects)]

use crate::bytes::{le_u16, le_u32};

/// `"NO NAME    "`: what formatters write in the BPB label field when there is no label.
const NO_NAME: &[u8; 11] = b"NO NAME    ";
/// Size of a directory entry.
pub const DIR_ENTRY: usize = 32;
/// Directory entry attribute bits.
pub const ATTR_VOLUME_ID: u8 = 0x08;
pub const ATTR_DIRECTORY: u8 = 0x10;
/// Attribute value that marks a VFAT long-name entry.
pub const ATTR_LONG_NAME: u8 = 0x0F;

/// A validated BIOS Parameter Block, with the fields a reader needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bpb {
    /// BPB_BytsPerSec: a power of two in 512..=4096.
    pub bytes_per_sector: u16,
    /// BPB_SecPerClus: a power of two in 1..=128.
    pub sectors_per_cluster: u8,
    /// BPB_RsvdSecCnt: at least 1 (the boot sector).
    pub reserved_sectors: u16,
    /// BPB_NumFATs: at least 1.
    pub num_fats: u8,
    /// BPB_RootEntCnt: root directory entries on FAT12/16, 0 on FAT32.
    pub root_entries: u16,
    /// BPB_TotSec16, or BPB_TotSec32 when that is 0.
    pub total_sectors: u32,
    /// BPB_FATSz16, or BPB_FATSz32 when that is 0. Never 0.
    pub sectors_per_fat: u32,
    /// BPB_RootClus on FAT32 (at least 2), 0 on FAT12/16.
    pub root_cluster: u32,
    /// The BPB has the FAT32 layout (BPB_FATSz16 == 0), as Linux decides it.
    pub fat32: bool,
    /// BS_VolLab when BS_BootSig is 0x29, as stored (space padded).
    pub label: Option<[u8; 11]>,
}

/// Which FAT entry width the volume uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatKind {
    Fat12,
    Fat16,
    Fat32,
}

/// Validates the boot sector at the start of `buf` and returns its BPB, or `None` if this is
/// not a FAT boot sector we can read.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn parse_bpb(buf: &[u8]) -> Option<Bpb> {
    let bs = buf.get(0..512)?;
    // BS_jmpBoot: EB xx (short jump) or E9 xx xx (near jump).
    if !matches!(bs.first(), Some(0xEB | 0xE9)) {
        return None;
    }
    if bs.get(510..512)? != [0x55, 0xAA] {
        return None;
    }
    let bytes_per_sector = le_u16(bs, 0x0B)?;
    if !bytes_per_sector.is_power_of_two() || !(512..=4096).contains(&bytes_per_sector) {
        return None;
    }
    let sectors_per_cluster = *bs.get(0x0D)?;
    if !sectors_per_cluster.is_power_of_two() {
        return None;
    }
    let reserved_sectors = le_u16(bs, 0x0E)?;
    let num_fats = *bs.get(0x10)?;
    if reserved_sectors == 0 || num_fats == 0 {
        return None;
    }
    let root_entries = le_u16(bs, 0x11)?;
    let total_sectors = match le_u16(bs, 0x13)? {
        0 => le_u32(bs, 0x20)?,
        n => u32::from(n),
    };
    let fat_size_16 = le_u16(bs, 0x16)?;
    let fat32 = fat_size_16 == 0;
    let (sectors_per_fat, root_cluster, sig_at, label_at) = if fat32 {
        (le_u32(bs, 0x24)?, le_u32(bs, 0x2C)?, 0x42usize, 0x47usize)
    } else {
        (u32::from(fat_size_16), 0, 0x26, 0x2B)
    };
    if total_sectors == 0
        || sectors_per_fat == 0
        || (fat32 && (root_entries != 0 || root_cluster < 2))
    {
        return None;
    }
    if !fat32 && root_entries == 0 {
        return None;
    }
    let label = if bs.get(sig_at) == Some(&0x29) {
        <[u8; 11]>::try_from(bs.get(label_at..label_at.checked_add(11)?)?).ok()
    } else {
        None
    };
    let bpb = Bpb {
        bytes_per_sector,
        sectors_per_cluster,
        reserved_sectors,
        num_fats,
        root_entries,
        total_sectors,
        sectors_per_fat,
        root_cluster,
        fat32,
        label,
    };
    // The data area must start inside the volume, and hold at least one cluster.
    if bpb.cluster_count()? == 0 {
        return None;
    }
    Some(bpb)
}

impl Bpb {
    /// Bytes in one cluster (at most 128 × 4096 = 512 KiB).
    pub fn cluster_bytes(&self) -> u32 {
        u32::from(self.bytes_per_sector).saturating_mul(u32::from(self.sectors_per_cluster))
    }

    /// Sectors taken by the fixed FAT12/16 root directory (0 on FAT32).
    #[cfg_attr(feature = "nopanic", no_panic::no_panic)]
    pub fn root_dir_sectors(&self) -> u32 {
        let bytes = u32::from(self.root_entries).saturating_mul(32);
        bytes.div_ceil(u32::from(self.bytes_per_sector).max(1))
    }

    /// First sector of the FAT12/16 root directory region (FAT32: of the data area).
    #[cfg_attr(feature = "nopanic", no_panic::no_panic)]
    pub fn root_dir_sector(&self) -> Option<u32> {
        u32::from(self.num_fats)
            .checked_mul(self.sectors_per_fat)?
            .checked_add(u32::from(self.reserved_sectors))
    }

    /// First sector of the data area (cluster 2).
    #[cfg_attr(feature = "nopanic", no_panic::no_panic)]
    pub fn first_data_sector(&self) -> Option<u32> {
        self.root_dir_sector()?.checked_add(self.root_dir_sectors())
    }

    /// Number of data clusters (valid cluster numbers are `2..cluster_count + 2`).
    #[cfg_attr(feature = "nopanic", no_panic::no_panic)]
    pub fn cluster_count(&self) -> Option<u32> {
        let data = self.total_sectors.checked_sub(self.first_data_sector()?)?;
        data.checked_div(u32::from(self.sectors_per_cluster))
    }

    /// FAT entry width: FAT32 by the BPB layout (as Linux does), FAT12 vs FAT16 by cluster
    /// count (Microsoft spec: fewer than 4085 clusters is FAT12).
    #[cfg_attr(feature = "nopanic", no_panic::no_panic)]
    pub fn kind(&self) -> FatKind {
        if self.fat32 {
            FatKind::Fat32
        } else if self.cluster_count().unwrap_or(0) < 4085 {
            FatKind::Fat12
        } else {
            FatKind::Fat16
        }
    }

    /// Byte offset of cluster `n` (`n >= 2`) from the start of the volume.
    #[cfg_attr(feature = "nopanic", no_panic::no_panic)]
    pub fn cluster_offset(&self, n: u32) -> Option<u64> {
        let index = u64::from(n.checked_sub(2)?);
        let sector = index
            .checked_mul(u64::from(self.sectors_per_cluster))?
            .checked_add(u64::from(self.first_data_sector()?))?;
        sector.checked_mul(u64::from(self.bytes_per_sector))
    }

    /// Byte offset of the first FAT.
    pub fn fat_offset(&self) -> u64 {
        u64::from(self.reserved_sectors).saturating_mul(u64::from(self.bytes_per_sector))
    }

    /// Where the root directory's first bytes are: `(offset, length)`. FAT12/16: the whole
    /// fixed region; FAT32: the root's first cluster (the volume label is the first entry in
    /// every formatter we know of).
    #[cfg_attr(feature = "nopanic", no_panic::no_panic)]
    pub fn root_dir_region(&self) -> Option<(u64, u64)> {
        if self.fat32 {
            Some((
                self.cluster_offset(self.root_cluster)?,
                u64::from(self.cluster_bytes()),
            ))
        } else {
            let at =
                u64::from(self.root_dir_sector()?).checked_mul(u64::from(self.bytes_per_sector))?;
            Some((at, u64::from(self.root_entries).checked_mul(32)?))
        }
    }
}

/// The volume-label entry of a directory (normally the root), raw and space padded. Stops at
/// the end-of-directory mark; skips deleted and long-name entries.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn dir_volume_label(dir: &[u8]) -> Option<[u8; 11]> {
    for entry in dir.chunks_exact(DIR_ENTRY) {
        let first = *entry.first()?;
        let attr = *entry.get(11)?;
        if first == 0 {
            return None;
        }
        if first == 0xE5 || attr == ATTR_LONG_NAME || attr & ATTR_VOLUME_ID == 0 {
            continue;
        }
        let mut name = <[u8; 11]>::try_from(entry.get(0..11)?).ok()?;
        if let Some(b) = name.first_mut() {
            // 0x05 stands for a real 0xE5 first byte (Microsoft spec, DIR_Name[0]).
            if *b == 0x05 {
                *b = 0xE5;
            }
        }
        return Some(name);
    }
    None
}

/// A label field without its space padding; `None` when blank or `NO NAME`.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn label_text(raw: &[u8; 11]) -> Option<&[u8]> {
    if raw == NO_NAME {
        return None;
    }
    let mut s: &[u8] = raw;
    while let Some((b' ' | 0, rest)) = s.split_last() {
        s = rest;
    }
    (!s.is_empty()).then_some(s)
}

/// What [`probe`] found: the BPB, and the label (root entry if seen, else BPB; raw, padded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probed {
    pub bpb: Bpb,
    pub label: Option<[u8; 11]>,
    /// The root directory region lies wholly inside the probed bytes, so `label` already
    /// reflects its volume-label entry.
    pub root_seen: bool,
}

/// Recognises a FAT boot sector at the start of `buf` and finds its label: the root
/// directory's volume-label entry if the root region is inside `buf`, else the BPB's.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn probe(buf: &[u8]) -> Option<Probed> {
    let bpb = parse_bpb(buf)?;
    let root = bpb.root_dir_region().and_then(|(at, len)| {
        let at = usize::try_from(at).ok()?;
        let end = at.checked_add(usize::try_from(len).ok()?)?;
        buf.get(at..end)
    });
    let from_root = root.and_then(dir_volume_label);
    Some(Probed {
        bpb,
        label: from_root.or(bpb.label),
        root_seen: root.is_some(),
    })
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::type_complexity)] // test tables build images by hand
mod tests {
    use super::*;

    /// A FAT16 boot sector + FATs + root directory, like `mkfs.vfat -F 16` on 16 MiB.
    pub(crate) fn fat16_image(bpb_label: &[u8; 11], root_label: Option<&[u8; 11]>) -> Vec<u8> {
        let mut b = vec![0u8; 64 * 1024];
        b[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
        b[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
        b[0x0D] = 4; // sectors per cluster
        b[0x0E..0x10].copy_from_slice(&4u16.to_le_bytes()); // reserved
        b[0x10] = 2; // FATs
        b[0x11..0x13].copy_from_slice(&512u16.to_le_bytes()); // root entries
        b[0x13..0x15].copy_from_slice(&32768u16.to_le_bytes()); // total sectors
        b[0x16..0x18].copy_from_slice(&16u16.to_le_bytes()); // sectors per FAT
        b[0x26] = 0x29;
        b[0x2B..0x36].copy_from_slice(bpb_label);
        b[510] = 0x55;
        b[511] = 0xAA;
        if let Some(l) = root_label {
            let root = (4 + 2 * 16) * 512;
            b[root..root + 11].copy_from_slice(l);
            b[root + 11] = ATTR_VOLUME_ID;
        }
        b
    }

    /// A FAT32 boot sector (root cluster 2) as `mkfs.vfat -F 32` writes it.
    fn fat32_sector(bpb_label: &[u8; 11]) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
        b[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
        b[0x0D] = 1;
        b[0x0E..0x10].copy_from_slice(&32u16.to_le_bytes());
        b[0x10] = 2;
        b[0x20..0x24].copy_from_slice(&70000u32.to_le_bytes());
        b[0x24..0x28].copy_from_slice(&540u32.to_le_bytes());
        b[0x2C..0x30].copy_from_slice(&2u32.to_le_bytes());
        b[0x42] = 0x29;
        b[0x47..0x52].copy_from_slice(bpb_label);
        b[510] = 0x55;
        b[511] = 0xAA;
        b
    }

    fn label(buf: &[u8]) -> Option<Option<Vec<u8>>> {
        probe(buf).map(|p| p.label.as_ref().and_then(label_text).map(<[u8]>::to_vec))
    }

    #[test]
    fn probe_cases() {
        let cases: Vec<(&str, Vec<u8>, Option<Option<&[u8]>>)> = vec![
            (
                "fat16 bpb label",
                fat16_image(b"CONFIG-2   ", None),
                Some(Some(b"CONFIG-2")),
            ),
            (
                "root entry wins",
                fat16_image(b"NO NAME    ", Some(b"cidata     ")),
                Some(Some(b"cidata")),
            ),
            ("no name", fat16_image(b"NO NAME    ", None), Some(None)),
            ("fat32", fat32_sector(b"CIDATA     "), Some(Some(b"CIDATA"))),
            ("all zero", vec![0; 65536], None),
            ("empty", vec![], None),
            (
                "garbage",
                (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
                None,
            ),
        ];
        for (name, buf, want) in cases {
            let want = want.map(|o| o.map(<[u8]>::to_vec));
            assert_eq!(label(&buf), want, "case {name}");
        }
    }

    #[test]
    fn bpb_checks() {
        let good = fat16_image(b"CONFIG-2   ", None);
        let bad: &[(&str, usize, &[u8])] = &[
            ("jump", 0, &[0x00]),
            ("bytes/sector 768", 0x0B, &768u16.to_le_bytes()),
            ("bytes/sector 256", 0x0B, &256u16.to_le_bytes()),
            ("bytes/sector 8192", 0x0B, &8192u16.to_le_bytes()),
            ("sectors/cluster 0", 0x0D, &[0]),
            ("sectors/cluster 3", 0x0D, &[3]),
            ("no reserved", 0x0E, &[0, 0]),
            ("no FATs", 0x10, &[0]),
            ("no root entries", 0x11, &[0, 0]),
            ("signature", 510, &[0x55, 0xAB]),
            ("FATs past the end", 0x16, &[0xFF, 0xFF]),
        ];
        for (name, at, bytes) in bad {
            let mut b = good.clone();
            b[*at..at + bytes.len()].copy_from_slice(bytes);
            assert_eq!(parse_bpb(&b), None, "case {name}");
        }
        let bpb = parse_bpb(&good).expect("good");
        assert_eq!(bpb.kind(), FatKind::Fat16, "kind");
        assert_eq!(bpb.first_data_sector(), Some(4 + 32 + 32), "data start");
        assert_eq!(bpb.cluster_offset(2), Some(68 * 512), "cluster 2");
        assert_eq!(bpb.cluster_offset(1), None, "cluster 1");
    }

    #[test]
    fn probe_lengths() {
        let good = fat16_image(b"CONFIG-2   ", Some(b"ROOTLBL    "));
        assert_eq!(label(&good[..511]), None, "one short of the boot sector");
        assert_eq!(
            label(&good[..512]),
            Some(Some(b"CONFIG-2".to_vec())),
            "boot sector only"
        );
        let root_end = (4 + 32) * 512 + 512 * 32;
        assert_eq!(
            label(&good[..root_end - 1]),
            Some(Some(b"CONFIG-2".to_vec())),
            "root cut"
        );
        assert_eq!(
            label(&good[..root_end]),
            Some(Some(b"ROOTLBL".to_vec())),
            "root whole"
        );
    }

    #[test]
    fn dir_label_entries() {
        let mut dir = vec![0u8; 128];
        dir[0] = 0xE5; // deleted label
        dir[11] = ATTR_VOLUME_ID;
        dir[32..43].copy_from_slice(b"A\0b\0c\0d\0e\0f");
        dir[43] = ATTR_LONG_NAME;
        dir[64..75].copy_from_slice(b"\x05BC        ");
        dir[75] = ATTR_VOLUME_ID;
        assert_eq!(
            dir_volume_label(&dir),
            Some(*b"\xE5BC        "),
            "skips and 0x05"
        );
        dir[64] = 0;
        assert_eq!(dir_volume_label(&dir), None, "end mark");
        assert_eq!(dir_volume_label(&dir[..31]), None, "short");
    }
}
