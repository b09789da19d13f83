//! FAT12/16/32 reader: a `config-2`/`cidata` FAT image or partition (Ironic, `mkfs.vfat` +
//! `mcopy`, Windows tooling) read with positioned reads, never mounted and never loaded whole.
//!
//! Owns cluster-chain walking, directory parsing with VFAT long file names, and
//! case-insensitive lookup (ASCII case folding, by long name or 8.3 alias, as Linux `vfat`).
//! The BPB is validated by `detect::label::fat::parse_bpb`, shared with the label probe.
//!
//! Does not support: exFAT, writing, the FAT32 FSInfo sector or backup boot sector (not
//! needed to read), code pages other than ASCII in 8.3 names (other bytes become U+FFFD),
//! and files whose chain is shorter than their size (refused as damaged).
//!
//! Spec: Microsoft "FAT: General Overview of On-Disk Format" 1.03 (2000): FAT entry widths and
//! end-of-chain marks (§4), directory entries (§6), long names and their checksum (§7);
//! lower-case 8.3 names through the NT flags byte (`DIR_NTRes` 0x08 base, 0x10 extension), as
//! Windows NT and Linux `vfat` write them.
//!
//! Each directory is read and parsed once per open image and kept (at most
//! [`MAX_CACHED_DIRS`] of them, and [`MAX_CACHE_BYTES`] of parsed entries in all, counted as
//! the heap they take: a parsed entry is larger than its 32 raw bytes): reading every file of
//! `openstack/latest` looks its path up once per file, and parsing the same directories again
//! was quadratic in their size.
//!
//! Limits: a directory is at most [`MAX_DIR_BYTES`], a path at most [`MAX_DEPTH`] components;
//! every chain walk stops at a cluster it has already seen (a loop is
//! [`MediaErrorKind::Corrupt`]), so no image can make a read or listing hang; every read of the
//! image counts against [`super::MAX_IMAGE_READ`] and stops at the boot's deadline
//! ([`super::Budget`]).
//!
//! Panic contract: nothing here panics on any image (no indexing, checked arithmetic, bounded
//! allocations); every structural problem is [`MediaErrorKind::Corrupt`] naming the cluster.
#![deny(clippy::arithmetic_side_effects)]

use super::{components, Budget, DirCache, MediaError, MediaErrorKind, Tree};
use crate::bytes::{le_u16, le_u32};
use crate::media::label::fat::{self as bpb, Bpb, FatKind};
use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

/// Largest directory we read, in bytes (32768 entries).
pub const MAX_DIR_BYTES: u64 = 1 << 20;
/// Most path components in a lookup.
pub const MAX_DEPTH: usize = 64;
/// Long-name entries per name: 20 × 13 UCS-2 units covers the 255-character limit.
const MAX_LFN_ENTRIES: usize = 20;
const LFN_UNITS: usize = 13;

/// One directory entry.
#[derive(Debug, Clone)]
struct Entry {
    /// The long name if a valid one precedes the entry, else the 8.3 name.
    name: String,
    /// The 8.3 name (alias), for lookups.
    short: String,
    dir: bool,
    first_cluster: u32,
    size: u32,
}

/// Long-name entries collected so far, waiting for their 8.3 entry (Microsoft spec §7).
struct LongName {
    units: Vec<u16>,
    /// The order number the next entry must carry; 0 when complete.
    next: u8,
    checksum: u8,
}

/// The checksum of an 8.3 name that its long-name entries carry (Microsoft spec §7.2).
fn short_checksum(name: &[u8]) -> u8 {
    name.iter()
        .fold(0u8, |sum, &c| sum.rotate_right(1).wrapping_add(c))
}

/// The 8.3 name as Linux `vfat` shows it: padding removed, `.` before a non-empty extension,
/// lower-cased per the NT flags.
fn short_name(raw: &[u8], nt_flags: u8) -> String {
    let part = |r: &[u8], lower: bool| {
        let mut s: Vec<u8> = r.to_vec();
        while s.last() == Some(&b' ') {
            s.pop();
        }
        if let Some(b) = s.first_mut() {
            // 0x05 stands for a real 0xE5 first byte.
            if *b == 0x05 {
                *b = 0xE5;
            }
        }
        let s = String::from_utf8_lossy(&s).into_owned();
        if lower {
            s.to_ascii_lowercase()
        } else {
            s
        }
    };
    let base = part(raw.get(0..8).unwrap_or_default(), nt_flags & 0x08 != 0);
    let ext = part(raw.get(8..11).unwrap_or_default(), nt_flags & 0x10 != 0);
    let ext = ext.trim_end_matches(' ');
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

/// The 13 UCS-2 units of one long-name entry (bytes 1..11, 14..26, 28..32).
fn lfn_units(entry: &[u8]) -> impl Iterator<Item = u16> + '_ {
    [1..11, 14..26, 28..32]
        .into_iter()
        .flat_map(move |r| entry.get(r).unwrap_or_default().chunks_exact(2))
        .map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
}

/// The heap a parsed directory takes: its entries and their names (with the allocator's
/// rounding, 16 bytes an allocation).
fn dir_bytes(entries: &[Entry]) -> usize {
    let string = |s: &String| match s.capacity() {
        0 => 0,
        c => c.saturating_add(15) & !15,
    };
    entries
        .iter()
        .fold(std::mem::size_of_val(entries), |acc, e| {
            acc.saturating_add(string(&e.name))
                .saturating_add(string(&e.short))
        })
}

/// Parses directory bytes into entries (`.`, `..`, volume labels, deleted entries left out).
fn parse_dir(bytes: &[u8], fat32: bool) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut long: Option<LongName> = None;
    for e in bytes.chunks_exact(bpb::DIR_ENTRY) {
        let (Some(&first), Some(&attr)) = (e.first(), e.get(11)) else {
            break;
        };
        if first == 0 {
            break; // end of directory
        }
        if first == 0xE5 {
            long = None;
            continue;
        }
        if attr & 0x3F == bpb::ATTR_LONG_NAME {
            let ord = first & 0x1F;
            let checksum = e.get(13).copied().unwrap_or(0);
            if ord == 0 || usize::from(ord) > MAX_LFN_ENTRIES {
                long = None;
                continue;
            }
            if first & 0x40 != 0 {
                // The last (highest) part comes first on disk.
                let slots = usize::from(ord).saturating_mul(LFN_UNITS);
                long = Some(LongName {
                    units: vec![0xFFFF; slots],
                    next: ord,
                    checksum,
                });
            }
            long = long.filter(|l| l.next == ord && l.checksum == checksum);
            if let Some(l) = long.as_mut() {
                let at = usize::from(ord.saturating_sub(1)).saturating_mul(LFN_UNITS);
                for (slot, u) in l.units.iter_mut().skip(at).zip(lfn_units(e)) {
                    *slot = u;
                }
                l.next = ord.saturating_sub(1);
            }
            continue;
        }
        let pending = long.take();
        if attr & bpb::ATTR_VOLUME_ID != 0 {
            continue;
        }
        let raw = e.get(0..11).unwrap_or_default();
        if raw.first() == Some(&b'.') {
            continue; // `.` and `..`
        }
        let short = short_name(raw, e.get(12).copied().unwrap_or(0));
        let name = pending
            .filter(|l| l.next == 0 && l.checksum == short_checksum(raw))
            .map(|l| {
                let units = l.units.into_iter().take_while(|u| *u != 0 && *u != 0xFFFF);
                char::decode_utf16(units)
                    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect::<String>()
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| short.clone());
        if name == "." || name == ".." || name.contains(['/', '\0']) {
            continue;
        }
        let le16 = |at: usize| le_u16(e, at).unwrap_or(0);
        let hi = if fat32 { u32::from(le16(20)) } else { 0 };
        let size = le_u32(e, 28).unwrap_or(0);
        out.push(Entry {
            name,
            short,
            dir: attr & bpb::ATTR_DIRECTORY != 0,
            first_cluster: (hi << 16) | u32::from(le16(26)),
            size,
        });
    }
    out
}

/// A directory to read: the FAT12/16 fixed root region, or a cluster chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dir {
    FixedRoot,
    Chain(u32),
}

/// A FAT12/16/32 image or device, read in place.
pub struct FatTree {
    file: File,
    object: String,
    /// Bytes in the image or device.
    size: u64,
    bpb: Bpb,
    kind: FatKind,
    /// Valid cluster numbers are `2..max_cluster`.
    max_cluster: u32,
    /// Bytes read so far and the deadline.
    budget: Budget,
    /// Directories parsed so far, by where they start (the image never changes while open).
    dirs: DirCache<Dir, [Entry]>,
}

impl FatTree {
    /// Opens `path` (image or device) and validates its boot sector.
    pub fn open(path: &Path) -> Result<FatTree, MediaError> {
        FatTree::open_with(path, Budget::default())
    }

    /// [`FatTree::open`], every read counted against `budget`.
    pub fn open_with(path: &Path, budget: Budget) -> Result<FatTree, MediaError> {
        let object = path.display().to_string();
        let (file, size) = super::open_image(path)?;
        let mut boot = [0u8; 512];
        file.read_exact_at(&mut boot, 0).map_err(|e| {
            MediaError::new(
                object.clone(),
                MediaErrorKind::Corrupt(format!("boot sector: {e}")),
            )
        })?;
        let corrupt =
            |why: &str| MediaError::new(object.clone(), MediaErrorKind::Corrupt(why.into()));
        let bpb = bpb::parse_bpb(&boot)
            .ok_or_else(|| corrupt("no valid FAT boot sector (BPB) at byte 0"))?;
        let max_cluster = bpb
            .cluster_count()
            .and_then(|n| n.checked_add(2))
            .ok_or_else(|| corrupt("BPB: data area starts past the end of the volume"))?;
        let tree = FatTree {
            file,
            object,
            size,
            kind: bpb.kind(),
            bpb,
            max_cluster,
            budget,
            dirs: DirCache::default(),
        };
        if bpb.fat32 && !tree.valid_cluster(bpb.root_cluster) {
            return Err(tree.corrupt(format!(
                "BPB: root cluster {} out of range (byte 0x2C)",
                bpb.root_cluster
            )));
        }
        Ok(tree)
    }

    fn corrupt(&self, why: String) -> MediaError {
        MediaError::new(self.object.clone(), MediaErrorKind::Corrupt(why))
    }

    fn valid_cluster(&self, n: u32) -> bool {
        (2..self.max_cluster).contains(&n)
    }

    /// Reads exactly `buf.len()` bytes at `offset`, or says which structure runs past the end.
    fn read_into(&self, offset: u64, buf: &mut [u8], what: &str) -> Result<(), MediaError> {
        let len = buf.len();
        let end = u64::try_from(len).ok().and_then(|l| offset.checked_add(l));
        if end.is_none_or(|e| e > self.size) {
            return Err(self.corrupt(format!(
                "{what} at byte {offset} (+{len}) runs past the end of the image ({} bytes)",
                self.size
            )));
        }
        self.budget
            .charge(u64::try_from(len).unwrap_or(u64::MAX), what, &self.object)?;
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

    /// The FAT entry of cluster `n` (first FAT only).
    fn fat_entry(&self, n: u32) -> Result<u32, MediaError> {
        let n64 = u64::from(n);
        let (at, width) = match self.kind {
            FatKind::Fat12 => (n64.saturating_add(n64 / 2), 2usize),
            FatKind::Fat16 => (n64.saturating_mul(2), 2),
            FatKind::Fat32 => (n64.saturating_mul(4), 4),
        };
        let fat_bytes = u64::from(self.bpb.sectors_per_fat)
            .saturating_mul(u64::from(self.bpb.bytes_per_sector));
        if at.saturating_add(u64::try_from(width).unwrap_or(4)) > fat_bytes {
            return Err(self.corrupt(format!("cluster {n}: beyond the FAT ({fat_bytes} bytes)")));
        }
        let mut b = [0u8; 4];
        let buf = b.get_mut(..width).unwrap_or_default();
        self.read_into(
            self.bpb.fat_offset().saturating_add(at),
            buf,
            &format!("FAT entry of cluster {n}"),
        )?;
        let v = u32::from_le_bytes(b);
        Ok(match self.kind {
            FatKind::Fat12 if n % 2 == 1 => (v >> 4) & 0xFFF,
            FatKind::Fat12 => v & 0xFFF,
            FatKind::Fat16 => v & 0xFFFF,
            FatKind::Fat32 => v & 0x0FFF_FFFF,
        })
    }

    /// The cluster after `n` in its chain, or `None` at the end-of-chain mark.
    fn next_cluster(&self, n: u32) -> Result<Option<u32>, MediaError> {
        let v = self.fat_entry(n)?;
        let eoc = match self.kind {
            FatKind::Fat12 => 0xFF8,
            FatKind::Fat16 => 0xFFF8,
            FatKind::Fat32 => 0x0FFF_FFF8,
        };
        if v >= eoc {
            return Ok(None);
        }
        if !self.valid_cluster(v) {
            return Err(self.corrupt(format!(
                "cluster {n}: FAT entry {v:#x} is free, reserved or bad, not a next cluster"
            )));
        }
        Ok(Some(v))
    }

    /// Reads `len` bytes (or, with `None`, the whole chain up to `limit` bytes) from the
    /// chain starting at `first`. A cluster seen twice is a loop and an error.
    fn read_chain(
        &self,
        first: u32,
        len: Option<u64>,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, MediaError> {
        let cluster = u64::from(self.bpb.cluster_bytes());
        let mut out = Vec::new();
        // BTreeSet, not HashSet: no hasher/random-seed code in the binary for this one use.
        let mut seen = BTreeSet::new();
        let mut cur = Some(first);
        let want = len.unwrap_or(limit);
        while let Some(c) = cur {
            let have = u64::try_from(out.len()).unwrap_or(u64::MAX);
            if have >= want {
                if len.is_none() {
                    return Err(self.corrupt(format!(
                        "{what}: longer than the {limit}-byte limit (chain at cluster {c})"
                    )));
                }
                break;
            }
            if !self.valid_cluster(c) {
                return Err(self.corrupt(format!("{what}: cluster {c} out of range")));
            }
            if !seen.insert(c) {
                return Err(
                    self.corrupt(format!("{what}: cluster chain loops back to cluster {c}"))
                );
            }
            let at = self
                .bpb
                .cluster_offset(c)
                .ok_or_else(|| self.corrupt(format!("{what}: cluster {c} out of range")))?;
            let take = cluster.min(want.saturating_sub(have));
            let mut buf = vec![0u8; usize::try_from(take).unwrap_or(0)];
            self.read_into(at, &mut buf, &format!("{what}, cluster {c}"))?;
            out.extend_from_slice(&buf);
            cur = if u64::try_from(out.len()).unwrap_or(u64::MAX) >= want && len.is_some() {
                None
            } else {
                self.next_cluster(c)?
            };
        }
        if let Some(len) = len {
            if u64::try_from(out.len()).unwrap_or(0) < len {
                return Err(self.corrupt(format!(
                    "{what}: cluster chain ends after {} of {len} bytes",
                    out.len()
                )));
            }
        }
        Ok(out)
    }

    /// The entries of `dir`, parsed once and then taken from the cache.
    fn read_dir(&self, dir: Dir) -> Result<Rc<[Entry]>, MediaError> {
        if let Some(entries) = self.dirs.get(&dir) {
            return Ok(entries);
        }
        let entries: Rc<[Entry]> = self.parse_dir_at(dir)?.into();
        let weight = dir_bytes(&entries);
        Ok(self.dirs.keep(dir, entries, weight))
    }

    fn parse_dir_at(&self, dir: Dir) -> Result<Vec<Entry>, MediaError> {
        let bytes = match dir {
            Dir::FixedRoot => {
                let (at, len) = self
                    .bpb
                    .root_dir_region()
                    .ok_or_else(|| self.corrupt("BPB: root directory out of range".into()))?;
                if len > MAX_DIR_BYTES {
                    return Err(
                        self.corrupt(format!("root directory: {len} bytes, over the limit"))
                    );
                }
                let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
                self.read_into(at, &mut buf, "root directory")?;
                buf
            }
            Dir::Chain(c) => {
                self.read_chain(c, None, MAX_DIR_BYTES, &format!("directory at cluster {c}"))?
            }
        };
        Ok(parse_dir(&bytes, self.bpb.fat32))
    }

    fn root(&self) -> Dir {
        if self.bpb.fat32 {
            Dir::Chain(self.bpb.root_cluster)
        } else {
            Dir::FixedRoot
        }
    }

    /// Finds `path`: `Ok(None)` if missing; `Some(None)` is the root itself.
    fn lookup(&self, path: &str) -> Result<Option<Option<Entry>>, MediaError> {
        let bad = || MediaError::new(format!("{}:{path}", self.object), MediaErrorKind::BadPath);
        let parts = components(path).ok_or_else(bad)?;
        if parts.len() > MAX_DEPTH {
            return Err(bad());
        }
        let mut cur: Option<Entry> = None;
        for part in parts {
            let dir = match &cur {
                None => self.root(),
                Some(e) if e.dir => self.subdir(e)?,
                Some(_) => return Ok(None),
            };
            // ASCII case folding, as Linux vfat with `utf8` does; it also keeps the Unicode
            // case tables out of the binary.
            let found = self
                .read_dir(dir)?
                .iter()
                .find(|e| e.name.eq_ignore_ascii_case(part) || e.short.eq_ignore_ascii_case(part))
                .cloned();
            match found {
                Some(e) => cur = Some(e),
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    fn subdir(&self, e: &Entry) -> Result<Dir, MediaError> {
        if !self.valid_cluster(e.first_cluster) {
            return Err(self.corrupt(format!(
                "directory {:?}: start cluster {} out of range",
                e.name, e.first_cluster
            )));
        }
        Ok(Dir::Chain(e.first_cluster))
    }
}

impl Tree for FatTree {
    fn read(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>, MediaError> {
        let Some(Some(e)) = self.lookup(path)? else {
            return Ok(None);
        };
        if e.dir {
            return Ok(None);
        }
        let size = u64::from(e.size);
        if size > cap {
            return Err(MediaError::new(
                format!("{}:{path}", self.object),
                MediaErrorKind::TooLarge { size, cap },
            ));
        }
        if size == 0 {
            return Ok(Some(Vec::new()));
        }
        self.read_chain(e.first_cluster, Some(size), size, &format!("file {path:?}"))
            .map(Some)
    }

    fn list(&self, dir: &str) -> Result<Option<Vec<String>>, MediaError> {
        let d = match self.lookup(dir)? {
            None => return Ok(None),
            Some(None) => self.root(),
            Some(Some(e)) if e.dir => self.subdir(&e)?,
            Some(Some(_)) => return Ok(None),
        };
        let mut names: Vec<String> = self.read_dir(d)?.iter().map(|e| e.name.clone()).collect();
        names.sort();
        names.dedup();
        Ok(Some(names))
    }

    fn describe(&self) -> String {
        self.object.clone()
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::media::{MAX_CACHED_DIRS, MAX_CACHE_BYTES};

    fn lfn_entry(ord: u8, last: bool, chk: u8, units: &[u16]) -> [u8; 32] {
        let mut e = [0u8; 32];
        e[0] = ord | if last { 0x40 } else { 0 };
        e[11] = bpb::ATTR_LONG_NAME;
        e[13] = chk;
        let mut u = units
            .iter()
            .copied()
            .chain(std::iter::once(0))
            .chain(std::iter::repeat(0xFFFF));
        for r in [1..11, 14..26, 28..32] {
            for c in e[r].chunks_exact_mut(2) {
                c.copy_from_slice(&u.next().unwrap().to_le_bytes());
            }
        }
        e
    }

    fn short_entry(name: &[u8; 11], attr: u8, nt: u8, cluster: u16, size: u32) -> [u8; 32] {
        let mut e = [0u8; 32];
        e[0..11].copy_from_slice(name);
        e[11] = attr;
        e[12] = nt;
        e[26..28].copy_from_slice(&cluster.to_le_bytes());
        e[28..32].copy_from_slice(&size.to_le_bytes());
        e
    }

    #[test]
    fn long_names() {
        let short = *b"META_D~1JSO";
        let chk = short_checksum(&short);
        let name: Vec<u16> = "Meta_Data.json".encode_utf16().collect();
        let mut dir = Vec::new();
        dir.extend(lfn_entry(2, true, chk, &name[13..]));
        dir.extend(lfn_entry(1, false, chk, &name[..13]));
        dir.extend(short_entry(&short, 0x20, 0, 3, 10));
        // A long name with a wrong checksum falls back to the 8.3 name.
        dir.extend(lfn_entry(
            1,
            true,
            chk ^ 1,
            &"other".encode_utf16().collect::<Vec<_>>(),
        ));
        dir.extend(short_entry(b"USER-D~1   ", 0x20, 0, 4, 1));
        // Lower-case 8.3 name through the NT flags; a directory.
        dir.extend(short_entry(b"LATEST     ", 0x10, 0x08, 5, 0));
        dir.extend(short_entry(b"NO         ", 0x08, 0, 0, 0)); // volume label
        dir.extend(short_entry(b".          ", 0x10, 0, 5, 0));
        dir.extend([0u8; 32]);
        dir.extend(short_entry(b"AFTEREND   ", 0x20, 0, 6, 0));
        let got: Vec<(String, bool)> = parse_dir(&dir, false)
            .into_iter()
            .map(|e| (e.name, e.dir))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Meta_Data.json".to_string(), false),
                ("USER-D~1".to_string(), false),
                ("latest".to_string(), true),
            ],
            "entries"
        );
    }

    #[test]
    fn lfn_out_of_order_is_dropped() {
        let short = *b"ABCDEF~1TXT";
        let chk = short_checksum(&short);
        let mut dir = Vec::new();
        dir.extend(lfn_entry(3, true, chk, &[b'x' as u16]));
        dir.extend(lfn_entry(1, false, chk, &[b'y' as u16])); // 2 is missing
        dir.extend(short_entry(&short, 0x20, 0, 3, 1));
        let got: Vec<String> = parse_dir(&dir, false).into_iter().map(|e| e.name).collect();
        assert_eq!(
            got,
            vec!["ABCDEF~1.TXT".to_string()],
            "incomplete long name"
        );
    }

    #[test]
    fn short_names() {
        let cases: &[(&str, &[u8; 11], u8, &str)] = &[
            ("plain", b"README  TXT", 0, "README.TXT"),
            ("no ext", b"LATEST     ", 0, "LATEST"),
            ("lower base", b"README  TXT", 0x08, "readme.TXT"),
            ("lower both", b"README  TXT", 0x18, "readme.txt"),
            ("0x05", b"\x05BC     TXT", 0, "\u{FFFD}BC.TXT"),
        ];
        for (case, raw, nt, want) in cases {
            assert_eq!(short_name(*raw, *nt), *want, "case {case}");
        }
    }

    /// The cache counts what parsed entries take, not raw bytes nor directories: a parsed
    /// entry holds two strings and is larger than the 32 bytes it came from.
    #[test]
    fn parsed_directories_weigh_more_than_raw() {
        let mut dir = Vec::new();
        for i in 0..1000u32 {
            let name = format!("F{i:07}TXT");
            dir.extend(short_entry(
                name.as_bytes().try_into().unwrap(),
                0x20,
                0,
                3,
                1,
            ));
        }
        let entries = parse_dir(&dir, false);
        assert_eq!(entries.len(), 1000);
        let weight = dir_bytes(&entries);
        assert!(
            weight > 2 * dir.len(),
            "{weight} bytes for {} raw",
            dir.len()
        );
        assert!(
            MAX_CACHE_BYTES / weight < MAX_CACHED_DIRS,
            "the byte cap binds first"
        );
    }
}
