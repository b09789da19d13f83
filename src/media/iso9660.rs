//! ISO9660 reader: an OpenStack config drive or NoCloud seed image (or `/dev/sr0`, or a
//! config-drive partition) read with positioned reads, never mounted and never loaded whole.
//!
//! Owns the volume descriptor set, directory records, and three name spaces, preferred in this
//! order: Rock Ridge `NM` names on the primary tree (`-R`), Joliet UCS-2 names on the
//! supplementary tree (`-J`), and plain ECMA-119 names (`NAME.EXT;1`, shown lower-case without
//! the version and a trailing dot, and looked up case-insensitively, like Linux `map=normal`).
//! Rock Ridge deep-directory relocation is followed (`CL` links; `RE` entries are hidden).
//!
//! Does not support: multi-extent files (refused: no datasource file is 4 GiB), interleaved
//! files, multi-session images (only the first volume descriptor set is read), UDF, El Torito,
//! and `SF` sparse files. Rock Ridge symbolic links (`SL`) are listed but never followed: one
//! read, or met as a directory on a path, is an error naming its target (`user-data ->
//! /etc/shadow` names the shadow file of whatever system would follow it, not the medium's),
//! as in `ext4.rs`; so is a FIFO, device or socket (by its `PX` mode).
//!
//! Spec: ECMA-119 4th ed. (§8.4 volume descriptors, §9.1 directory records, §7.3 both-byte
//! orders); Joliet specification (1995); IEEE P1282 Rock Ridge 1.12 (`NM`, `PX`, `SL`, `CL`,
//! `RE`) on IEEE P1281 SUSP 1.12 (`SP` skip length, `CE` continuation areas, `ST` terminator).
//!
//! Limits: a directory is at most [`MAX_DIR_BYTES`], a path at most [`MAX_DEPTH`] components, a
//! name at most [`MAX_NAME_BYTES`]. Rock Ridge (System Use) data: at most [`MAX_SU_BYTES`] for
//! one record over at most [`MAX_CE_HOPS`] continuation areas, each within one block (Linux's
//! `rock_continue` rule); at most [`MAX_DIR_SU_BYTES`] for one directory and
//! [`MAX_IMAGE_SU_BYTES`] for the whole image, continuation areas counted every time they are
//! read; every read of the image counts against [`super::MAX_IMAGE_READ`] and stops at the
//! boot's deadline ([`super::Budget`]). Each directory is parsed once per open image and kept
//! (at most [`MAX_CACHED_DIRS`], and [`MAX_CACHE_BYTES`] in all), like `fat.rs`: reading a
//! datasource looks the same directories up once per file. Lookups walk one directory per
//! path component and never recurse, so a directory that points at itself (by its extent or
//! by a `CL` link) cannot make a lookup loop.
//!
//! Panic contract: nothing here panics on any image (no indexing, checked arithmetic, bounded
//! allocations); every structural problem is [`MediaErrorKind::Corrupt`] naming the sector.
#![deny(clippy::arithmetic_side_effects)]

use super::{components, Budget, DirCache, MediaError, MediaErrorKind, Tree};
use crate::bytes::{le_u16, le_u32};
use crate::media::label::{self, iso9660 as vd};
use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

/// Largest directory we read (a config drive's biggest holds a few dozen entries).
pub const MAX_DIR_BYTES: u32 = 1 << 20;
/// Most path components in a lookup.
pub const MAX_DEPTH: usize = 64;
/// Most SUSP continuation areas followed for one directory record.
pub const MAX_CE_HOPS: usize = 8;
/// Most System Use bytes (in the record and its continuation areas) read for one record.
pub const MAX_SU_BYTES: usize = 64 * 1024;
/// Most System Use bytes read while parsing one directory (its records' own and their
/// continuation areas): twice the largest directory. A real config drive's directories have a
/// few kilobytes; names are made of these bytes, so they also bound a parsed directory.
pub const MAX_DIR_SU_BYTES: usize = 2 << 20;
/// Most System Use bytes read from one open image, over all directory parses.
pub const MAX_IMAGE_SU_BYTES: usize = 16 << 20;
/// Longest name (Linux's `NAME_MAX`; Linux cuts a longer Rock Ridge name, we refuse it).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest symbolic link target kept, for the error message only.
const MAX_LINK_TARGET: usize = 4096;
/// Most volume descriptors read before the set terminator.
const MAX_DESCRIPTORS: u64 = 64;
/// Fixed part of a directory record, before the file identifier (ECMA-119 §9.1).
const RECORD_FIXED: usize = 33;

/// Directory record flag bits (ECMA-119 §9.1.6).
const FLAG_DIRECTORY: u8 = 0x02;
const FLAG_MULTI_EXTENT: u8 = 0x80;

/// `PX` file mode type bits (POSIX `S_IFMT`, RRIP §4.1.1).
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
/// `SL` component flags (RRIP §4.1.3.1).
const SL_CONTINUE: u8 = 0x01;
const SL_CURRENT: u8 = 0x02;
const SL_PARENT: u8 = 0x04;
const SL_ROOT: u8 = 0x08;

/// Which name space the tree is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    /// Rock Ridge on the primary tree; `skip` is the SUSP `SP` skip length.
    RockRidge {
        skip: u8,
    },
    Joliet,
    Primary,
}

/// Where a file's or directory's bytes are: logical block and byte length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Extent {
    block: u32,
    len: u32,
}

/// Bytes of a parsed directory's text (names, link targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    at: u32,
    len: u32,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    /// A Rock Ridge symbolic link, its target (as far as it was kept).
    Link(Span),
    /// A FIFO, device or socket: its `PX` mode.
    Special(u32),
}

/// One directory entry, with its name already in the chosen name space.
#[derive(Debug, Clone, Copy)]
struct Entry {
    name: Span,
    kind: Kind,
    extent: Extent,
    /// Multi-extent or interleaved: refused on read.
    unsupported: Option<&'static str>,
    /// Rock Ridge `CL`: a relocated directory whose real extent starts at this block.
    child_link: Option<u32>,
}

/// One parsed directory: names and link targets back to back, entries pointing into them
/// (about the size of the System Use and identifier bytes read, so the cache's byte budget
/// bounds memory).
#[derive(Debug, Default)]
struct Dir {
    text: Vec<u8>,
    entries: Vec<Entry>,
}

impl Dir {
    fn text(&self, s: Span) -> &[u8] {
        let start = usize::try_from(s.at).unwrap_or(usize::MAX);
        let len = usize::try_from(s.len).unwrap_or(0);
        self.text
            .get(start..start.saturating_add(len))
            .unwrap_or_default()
    }

    fn name(&self, e: &Entry) -> &[u8] {
        self.text(e.name)
    }

    /// Appends `bytes` to the text; `None` when the directory's text passed 4 GiB.
    fn push_text(&mut self, bytes: &[u8]) -> Option<Span> {
        let at = u32::try_from(self.text.len()).ok()?;
        let len = u32::try_from(bytes.len()).ok()?;
        at.checked_add(len)?;
        self.text.extend_from_slice(bytes);
        Some(Span { at, len })
    }

    fn bytes(&self) -> usize {
        self.text.capacity().saturating_add(
            self.entries
                .capacity()
                .saturating_mul(std::mem::size_of::<Entry>()),
        )
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    File {
        extent: Extent,
        unsupported: Option<&'static str>,
    },
    Dir(Extent),
    Link(String),
    Special(u32),
}

/// An ISO9660 image or device, read in place.
pub struct IsoTree {
    file: File,
    object: String,
    /// Bytes in the image or device.
    size: u64,
    /// Logical block size (ECMA-119 allows 512, 1024 or 2048).
    block: u32,
    root: Extent,
    names: Names,
    /// Bytes read so far and the deadline.
    budget: Budget,
    /// System Use bytes read so far, against [`MAX_IMAGE_SU_BYTES`].
    su_bytes: Cell<usize>,
    /// Directories parsed so far, by extent (the image never changes while open).
    dirs: DirCache<Extent, Dir>,
}

/// What one directory record holds (ECMA-119 §9.1), borrowed from the directory's bytes.
struct Record<'a> {
    extent: Extent,
    flags: u8,
    interleaved: bool,
    ident: &'a [u8],
    system_use: &'a [u8],
}

/// Parses the directory record at the start of `rec` (already cut to its length byte).
fn parse_record(rec: &[u8]) -> Option<Record<'_>> {
    let len = usize::from(*rec.first()?);
    let rec = rec.get(..len)?;
    let ext_attr = *rec.get(1)?;
    let block = le_u32(rec, 2)?.checked_add(u32::from(ext_attr))?;
    let size = le_u32(rec, 10)?;
    let flags = *rec.get(25)?;
    let interleaved = *rec.get(26)? != 0 || *rec.get(27)? != 0;
    let name_len = usize::from(*rec.get(32)?);
    let name_end = RECORD_FIXED.checked_add(name_len)?;
    let ident = rec.get(RECORD_FIXED..name_end)?;
    // A padding byte follows an even-length identifier (ECMA-119 §9.1.12).
    let su_start = name_end.checked_add(usize::from(name_len % 2 == 0))?;
    let system_use = rec.get(su_start..).unwrap_or_default();
    Some(Record {
        extent: Extent { block, len: size },
        flags,
        interleaved,
        ident,
        system_use,
    })
}

/// A plain ECMA-119 identifier as Linux shows it with `map=normal`: without `;version`, without
/// a trailing `.`, lower case.
fn primary_name(ident: &[u8]) -> String {
    let base = match ident.iter().rposition(|b| *b == b';') {
        Some(i) => ident.get(..i).unwrap_or(ident),
        None => ident,
    };
    let base = base.strip_suffix(b".").unwrap_or(base);
    String::from_utf8_lossy(base).to_ascii_lowercase()
}

/// A Joliet identifier: UCS-2 BE, without `;version`.
fn joliet_name(ident: &[u8]) -> String {
    let mut name = label::ucs2be_to_string(ident);
    if let Some(i) = name.rfind(';') {
        if name
            .get(i..)
            .is_some_and(|v| v.bytes().skip(1).all(|b| b.is_ascii_digit()))
        {
            name.truncate(i);
        }
    }
    name
}

/// A symbolic link target being put together from `SL` component records (RRIP §4.1.3.1):
/// components are joined by `/` unless one continues into the next; `ROOT` starts the target
/// with `/`, `CURRENT` and `PARENT` are `.` and `..`. Kept to [`MAX_LINK_TARGET`] bytes.
#[derive(Debug, Default)]
struct LinkTarget {
    text: Vec<u8>,
    /// The last component was complete: the next one starts after a `/`.
    slash: bool,
}

impl LinkTarget {
    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_LINK_TARGET.saturating_sub(self.text.len());
        self.text
            .extend_from_slice(bytes.get(..bytes.len().min(room)).unwrap_or_default());
    }

    /// Adds the component records of one `SL` entry's data (after its own flags byte).
    fn components(&mut self, mut records: &[u8]) {
        while let (Some(&flags), Some(&len)) = (records.first(), records.get(1)) {
            let end = usize::from(len).saturating_add(2);
            // A record cut short by the entry's end keeps what it has.
            let content = records.get(2..end.min(records.len())).unwrap_or_default();
            records = records.get(end..).unwrap_or_default();
            if flags & SL_ROOT != 0 {
                self.text.clear();
                self.push(b"/");
                self.slash = false;
                continue;
            }
            if self.slash {
                self.push(b"/");
            }
            if flags & SL_CURRENT != 0 {
                self.push(b".");
            } else if flags & SL_PARENT != 0 {
                self.push(b"..");
            } else {
                self.push(content);
            }
            self.slash = flags & SL_CONTINUE == 0;
        }
    }
}

/// What the SUSP entries of one record say, for our purposes.
#[derive(Debug, Default)]
struct Susp {
    /// Concatenated `NM` content; `None` if there was no `NM`.
    name: Option<Vec<u8>>,
    /// `NM` with CURRENT or PARENT: an alias for `.` or `..`.
    dot_alias: bool,
    /// `RE`: this directory was relocated here; its real place has a `CL` entry.
    relocated: bool,
    /// `CL`: the directory this entry stands for starts at this block.
    child_link: Option<u32>,
    /// `PX`: the POSIX file mode.
    mode: Option<u32>,
    /// `SL`: a symbolic link, and its target.
    link: Option<LinkTarget>,
    /// Any Rock Ridge entry seen (`RR`, `PX`, `NM`, `ER`, `TF`, `SL`, `PN`).
    rock_ridge: bool,
    /// `SP` with its check bytes: SUSP in use, with this skip length.
    sp_skip: Option<u8>,
}

impl IsoTree {
    /// Opens `path` (image or device) and reads its volume descriptors and root directory.
    pub fn open(path: &Path) -> Result<IsoTree, MediaError> {
        IsoTree::open_with(path, Budget::default())
    }

    /// [`IsoTree::open`], every read counted against `budget`.
    pub fn open_with(path: &Path, budget: Budget) -> Result<IsoTree, MediaError> {
        let object = path.display().to_string();
        let (file, size) = super::open_image(path)?;
        let mut tree = IsoTree {
            file,
            object,
            size,
            block: 2048,
            root: Extent { block: 0, len: 0 },
            names: Names::Primary,
            budget,
            su_bytes: Cell::new(0),
            dirs: DirCache::default(),
        };
        let (primary, joliet) = tree.volume_descriptors()?;
        let primary = primary.ok_or_else(|| tree.corrupt("no primary volume descriptor".into()))?;
        let (block, root) = tree.descriptor_root(&primary, "primary")?;
        tree.block = block;
        tree.root = root;
        if let Some(skip) = tree.rock_ridge_skip(root)? {
            tree.names = Names::RockRidge { skip };
        } else if let Some(svd) = joliet {
            let (block, root) = tree.descriptor_root(&svd, "Joliet")?;
            tree.block = block;
            tree.root = root;
            tree.names = Names::Joliet;
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

    /// Reads exactly `len` bytes at `offset`, counted against the budget, or says which
    /// structure runs past the end.
    fn read_exact(&self, offset: u64, len: usize, what: &str) -> Result<Vec<u8>, MediaError> {
        let len64 = u64::try_from(len).unwrap_or(u64::MAX);
        let end = offset.checked_add(len64);
        if end.is_none_or(|e| e > self.size) {
            return Err(self.corrupt(format!(
                "{what} at byte {offset} (+{len}) runs past the end of the image ({} bytes)",
                self.size
            )));
        }
        self.budget.charge(len64, what, &self.object)?;
        let mut buf = vec![0u8; len];
        match self.file.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(self.corrupt(format!(
                "{what} at byte {offset} (+{len}): image ends early"
            ))),
            Err(e) => Err(MediaError::new(self.object.clone(), MediaErrorKind::Io(e))),
        }
    }

    fn block_offset(&self, block: u32, what: &str) -> Result<u64, MediaError> {
        u64::from(block)
            .checked_mul(u64::from(self.block))
            .ok_or_else(|| self.corrupt(format!("{what}: block {block} out of range")))
    }

    /// Reads the volume descriptor set: the first primary and the first Joliet descriptor.
    #[allow(clippy::type_complexity)]
    fn volume_descriptors(&self) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>), MediaError> {
        let mut primary = None;
        let mut joliet = None;
        let sector = u64::try_from(vd::SECTOR).unwrap_or(2048);
        for n in 16..16u64.saturating_add(MAX_DESCRIPTORS) {
            let at = n.saturating_mul(sector);
            let d = self.read_exact(at, vd::SECTOR, &format!("volume descriptor {n}"))?;
            match d.get(0..7) {
                Some([255, b'C', b'D', b'0', b'0', b'1', 1]) => return Ok((primary, joliet)),
                Some([1, b'C', b'D', b'0', b'0', b'1', 1]) if primary.is_none() => {
                    primary = Some(d)
                }
                Some([2, b'C', b'D', b'0', b'0', b'1', 1])
                    if joliet.is_none() && vd::is_joliet(&d) =>
                {
                    joliet = Some(d)
                }
                Some([_, b'C', b'D', b'0', b'0', b'1', 1]) => {}
                _ => {
                    return Err(self.corrupt(format!(
                        "sector {n}: not a volume descriptor and no set terminator before it"
                    )))
                }
            }
        }
        Err(self.corrupt(format!(
            "no volume descriptor set terminator in {MAX_DESCRIPTORS} sectors"
        )))
    }

    /// Logical block size and root directory extent of a primary or supplementary descriptor.
    fn descriptor_root(&self, d: &[u8], which: &str) -> Result<(u32, Extent), MediaError> {
        let block = le_u16(d, 128).map(u32::from).unwrap_or(0);
        if !block.is_power_of_two() || !(512..=2048).contains(&block) {
            return Err(self.corrupt(format!(
                "{which} volume descriptor: logical block size {block} (byte 128)"
            )));
        }
        let rec = d
            .get(156..190)
            .and_then(parse_record)
            .filter(|r| r.flags & FLAG_DIRECTORY != 0)
            .ok_or_else(|| {
                self.corrupt(format!(
                    "{which} volume descriptor: bad root directory record (byte 156)"
                ))
            })?;
        Ok((block, rec.extent))
    }

    /// Rock Ridge is in use if the root's `.` record starts its System Use field with `SP`
    /// (SUSP §5.3) and some Rock Ridge entry follows. Returns the SUSP skip length.
    fn rock_ridge_skip(&self, root: Extent) -> Result<Option<u8>, MediaError> {
        let first = self.read_exact(
            self.block_offset(root.block, "root directory")?,
            usize::try_from(self.block).unwrap_or(2048),
            &format!("root directory (block {})", root.block),
        )?;
        let Some(dot) = parse_record(&first) else {
            return Err(self.corrupt(format!(
                "root directory (block {}): bad `.` record",
                root.block
            )));
        };
        let mut counted = 0usize;
        let susp = self.susp(dot.system_use, 0, root.block, &mut counted);
        self.su_bytes
            .set(self.su_bytes.get().saturating_add(counted));
        let susp = susp?;
        Ok(match susp.sp_skip {
            Some(skip) if susp.rock_ridge => Some(skip),
            _ => None,
        })
    }

    /// Counts `len` more System Use bytes of the directory at `dir_block` (`counted` so far in
    /// it): an error past the directory's or the image's limit.
    fn count_su(&self, counted: &mut usize, len: usize, dir_block: u32) -> Result<(), MediaError> {
        *counted = counted.saturating_add(len);
        if *counted > MAX_DIR_SU_BYTES {
            return Err(self.corrupt(format!(
                "directory at block {dir_block}: more than {MAX_DIR_SU_BYTES} bytes of Rock \
                 Ridge (System Use) data; stopped"
            )));
        }
        if self.su_bytes.get().saturating_add(*counted) > MAX_IMAGE_SU_BYTES {
            return Err(self.corrupt(format!(
                "directory at block {dir_block}: more than {MAX_IMAGE_SU_BYTES} bytes of Rock \
                 Ridge (System Use) data read from this image; stopped"
            )));
        }
        Ok(())
    }

    /// Walks the SUSP entries of one System Use field and its continuation areas, counting
    /// their bytes in `counted` (the directory's). `dir_block` is only for messages.
    fn susp(
        &self,
        field: &[u8],
        skip: u8,
        dir_block: u32,
        counted: &mut usize,
    ) -> Result<Susp, MediaError> {
        let mut out = Susp::default();
        let mut area: Vec<u8> = field.get(usize::from(skip)..).unwrap_or_default().to_vec();
        self.count_su(counted, area.len(), dir_block)?;
        let mut total = area.len();
        let mut hops = 0usize;
        loop {
            let next = self.susp_area(&area, dir_block, &mut out)?;
            let Some((block, offset, len)) = next else {
                return Ok(out);
            };
            hops = hops.saturating_add(1);
            let len_us = usize::try_from(len).unwrap_or(usize::MAX);
            total = total.saturating_add(len_us);
            if hops > MAX_CE_HOPS || total > MAX_SU_BYTES {
                return Err(self.corrupt(format!(
                    "directory at block {dir_block}: more than {MAX_CE_HOPS} continuation areas \
                     or {MAX_SU_BYTES} System Use bytes for one record"
                )));
            }
            // A continuation area lies within one logical block (Linux's `rock_continue`
            // refuses anything else as a corrupted directory entry).
            if offset.checked_add(len).is_none_or(|end| end > self.block) {
                return Err(self.corrupt(format!(
                    "directory at block {dir_block}: continuation area at block {block} offset \
                     {offset} length {len} crosses the {}-byte block",
                    self.block
                )));
            }
            self.count_su(counted, len_us, dir_block)?;
            let at = self
                .block_offset(block, "continuation area")?
                .checked_add(u64::from(offset))
                .ok_or_else(|| {
                    self.corrupt(format!(
                        "continuation area at block {block}: offset {offset}"
                    ))
                })?;
            area = self.read_exact(at, len_us, &format!("continuation area (block {block})"))?;
        }
    }

    /// The SUSP entries of one area, added to `out`; the next continuation area if a `CE`
    /// names one.
    fn susp_area(
        &self,
        area: &[u8],
        dir_block: u32,
        out: &mut Susp,
    ) -> Result<Option<(u32, u32, u32)>, MediaError> {
        let mut next = None;
        let mut rest: &[u8] = area;
        // Fewer than 4 bytes left is padding (records are padded to an even length).
        while let Some(head) = rest.get(0..4) {
            let (sig, len) = (
                head.get(0..2).unwrap_or_default(),
                usize::from(*head.get(2).unwrap_or(&0)),
            );
            let Some(entry) = rest.get(..len).filter(|_| len >= 4) else {
                if sig == [0, 0] {
                    break; // zero fill after the last entry
                }
                return Err(self.corrupt(format!(
                    "directory at block {dir_block}: System Use entry {:?} has length {len}",
                    String::from_utf8_lossy(sig)
                )));
            };
            let data = entry.get(4..).unwrap_or_default();
            match sig {
                b"ST" => break,
                b"SP" if data.get(0..2) == Some(&[0xBE, 0xEF]) => {
                    out.sp_skip = data.get(2).copied();
                }
                b"CE" => {
                    next = match (le_u32(data, 0), le_u32(data, 8), le_u32(data, 16)) {
                        (Some(b), Some(o), Some(l)) => Some((b, o, l)),
                        _ => {
                            return Err(self.corrupt(format!(
                                "directory at block {dir_block}: short CE entry"
                            )))
                        }
                    }
                }
                b"NM" => {
                    out.rock_ridge = true;
                    let flags = data.first().copied().unwrap_or(0);
                    if flags & 0x06 != 0 {
                        out.dot_alias = true;
                    }
                    let name = out.name.get_or_insert_with(Vec::new);
                    name.extend_from_slice(data.get(1..).unwrap_or_default());
                    if name.len() > MAX_NAME_BYTES {
                        return Err(self.corrupt(format!(
                            "directory at block {dir_block}: a Rock Ridge name longer than \
                             {MAX_NAME_BYTES} bytes"
                        )));
                    }
                }
                b"SL" => {
                    out.rock_ridge = true;
                    out.link
                        .get_or_insert_with(LinkTarget::default)
                        .components(data.get(1..).unwrap_or_default());
                }
                b"PX" => {
                    out.rock_ridge = true;
                    out.mode = le_u32(data, 0);
                }
                b"RE" => {
                    out.rock_ridge = true;
                    out.relocated = true;
                }
                b"CL" => {
                    out.rock_ridge = true;
                    out.child_link = le_u32(data, 0);
                }
                b"RR" | b"ER" | b"TF" | b"PN" => out.rock_ridge = true,
                _ => {}
            }
            rest = rest.get(len..).unwrap_or_default();
        }
        Ok(next)
    }

    /// A directory's entries, parsed once and then taken from the cache.
    fn read_dir(&self, dir: Extent) -> Result<Rc<Dir>, MediaError> {
        if let Some(d) = self.dirs.get(&dir) {
            return Ok(d);
        }
        let mut counted = 0usize;
        let parsed = self.parse_dir(dir, &mut counted);
        self.su_bytes
            .set(self.su_bytes.get().saturating_add(counted));
        let mut parsed = parsed?;
        parsed.text.shrink_to_fit();
        parsed.entries.shrink_to_fit();
        let parsed = Rc::new(parsed);
        let weight = parsed.bytes();
        Ok(self.dirs.keep(dir, parsed, weight))
    }

    /// Reads and parses a directory (`.`/`..` left out), counting its System Use bytes.
    fn parse_dir(&self, dir: Extent, counted: &mut usize) -> Result<Dir, MediaError> {
        if dir.len > MAX_DIR_BYTES {
            return Err(self.corrupt(format!(
                "directory at block {}: {} bytes, more than the {MAX_DIR_BYTES}-byte limit",
                dir.block, dir.len
            )));
        }
        let len = usize::try_from(dir.len).unwrap_or(0);
        let what = format!("directory (block {})", dir.block);
        let bytes = self.read_exact(self.block_offset(dir.block, &what)?, len, &what)?;
        let block_len = usize::try_from(self.block).unwrap_or(2048);
        let mut out = Dir::default();
        for (i, sector) in bytes.chunks(block_len).enumerate() {
            let mut pos = 0usize;
            // Records never cross a block; a zero length byte means "rest of block unused".
            while let Some(&rec_len) = sector.get(pos) {
                if rec_len == 0 {
                    break;
                }
                let here = || {
                    format!(
                        "directory at block {}: record at byte {pos} of block {}",
                        dir.block,
                        u64::from(dir.block).saturating_add(u64::try_from(i).unwrap_or(0))
                    )
                };
                let end = pos.saturating_add(usize::from(rec_len));
                let rec = sector
                    .get(pos..end)
                    .filter(|_| usize::from(rec_len) > RECORD_FIXED)
                    .and_then(parse_record)
                    .ok_or_else(|| self.corrupt(format!("{}: bad length {rec_len}", here())))?;
                pos = end;
                self.entry(&rec, dir.block, counted, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Adds the entry of one record to `out`; nothing for `.`, `..`, relocated directories,
    /// unusable names and the later extents of a multi-extent file.
    fn entry(
        &self,
        rec: &Record<'_>,
        dir_block: u32,
        counted: &mut usize,
        out: &mut Dir,
    ) -> Result<(), MediaError> {
        if matches!(rec.ident, [0] | [1]) {
            return Ok(());
        }
        let mut susp = Susp::default();
        let name = match self.names {
            Names::Primary => primary_name(rec.ident),
            Names::Joliet => joliet_name(rec.ident),
            Names::RockRidge { skip } => {
                susp = self.susp(rec.system_use, skip, dir_block, counted)?;
                if susp.relocated || susp.dot_alias {
                    return Ok(());
                }
                match &susp.name {
                    Some(n) => String::from_utf8_lossy(n).into_owned(),
                    None => primary_name(rec.ident),
                }
            }
        };
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Ok(());
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(self.corrupt(format!(
                "directory at block {dir_block}: a name longer than {MAX_NAME_BYTES} bytes"
            )));
        }
        let unsupported = if rec.flags & FLAG_MULTI_EXTENT != 0 {
            Some("multi-extent file")
        } else if rec.interleaved {
            Some("interleaved file")
        } else {
            None
        };
        // The later extents of a multi-extent file repeat its name.
        if out.entries.last().is_some_and(|l| {
            l.unsupported == Some("multi-extent file") && out.name(l) == name.as_bytes()
        }) {
            return Ok(());
        }
        let full = || self.corrupt(format!("directory at block {dir_block}: too large"));
        let name = out.push_text(name.as_bytes()).ok_or_else(full)?;
        let mode_type = susp.mode.map(|m| m & S_IFMT);
        let kind = if let Some(link) = &susp.link {
            Kind::Link(out.push_text(&link.text).ok_or_else(full)?)
        } else if mode_type == Some(S_IFLNK) {
            Kind::Link(Span { at: 0, len: 0 })
        } else if rec.flags & FLAG_DIRECTORY != 0 || susp.child_link.is_some() {
            Kind::Dir
        } else {
            match (susp.mode, mode_type) {
                // FIFO, character and block devices, sockets.
                (Some(m), Some(0o010_000 | 0o020_000 | 0o060_000 | 0o140_000)) => Kind::Special(m),
                _ => Kind::File,
            }
        };
        out.entries.push(Entry {
            name,
            kind,
            extent: rec.extent,
            unsupported,
            child_link: susp.child_link,
        });
        Ok(())
    }

    /// The extent of a directory entry, following a Rock Ridge `CL` to the relocated directory
    /// (whose size is in its own `.` record).
    fn dir_extent(&self, e: &Entry, name: &str) -> Result<Extent, MediaError> {
        let Some(block) = e.child_link else {
            return Ok(e.extent);
        };
        let what = format!("relocated directory (block {block}) for {name:?}");
        let first = self.read_exact(
            self.block_offset(block, &what)?,
            usize::try_from(self.block).unwrap_or(2048),
            &what,
        )?;
        parse_record(&first)
            .filter(|r| r.ident == [0])
            .map(|r| r.extent)
            .ok_or_else(|| self.corrupt(format!("{what}: no `.` record")))
    }

    /// What entry `e` of `dir` is, for a lookup.
    fn found(&self, dir: &Dir, e: &Entry, part: &str) -> Result<Found, MediaError> {
        Ok(match e.kind {
            Kind::File => Found::File {
                extent: e.extent,
                unsupported: e.unsupported,
            },
            Kind::Dir => Found::Dir(self.dir_extent(e, part)?),
            Kind::Link(target) => {
                Found::Link(String::from_utf8_lossy(dir.text(target)).into_owned())
            }
            Kind::Special(mode) => Found::Special(mode),
        })
    }

    /// Finds `path`; `Ok(None)` if some component does not exist or is not a directory. A
    /// symbolic link on the way is an error naming it.
    fn lookup(&self, path: &str) -> Result<Option<Found>, MediaError> {
        let bad = || MediaError::new(format!("{}:{path}", self.object), MediaErrorKind::BadPath);
        let parts = components(path).ok_or_else(bad)?;
        if parts.len() > MAX_DEPTH {
            return Err(bad());
        }
        let mut cur = Found::Dir(self.root);
        let mut walked = String::new();
        for part in parts {
            let extent = match cur {
                Found::Dir(extent) => extent,
                Found::Link(target) => return Err(self.link_error(&walked, &target)),
                Found::File { .. } | Found::Special(_) => return Ok(None),
            };
            let dir = self.read_dir(extent)?;
            let found = match self.names {
                // Plain names are shown lower-case; look them up case-insensitively.
                Names::Primary => dir
                    .entries
                    .iter()
                    .find(|e| dir.name(e).eq_ignore_ascii_case(part.as_bytes())),
                _ => dir.entries.iter().find(|e| dir.name(e) == part.as_bytes()),
            };
            let Some(e) = found else {
                return Ok(None);
            };
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(part);
            cur = self.found(&dir, e, part)?;
        }
        Ok(Some(cur))
    }

    /// The error for a symbolic link met at `path`: never followed, its target named.
    fn link_error(&self, path: &str, target: &str) -> MediaError {
        let target = if target.is_empty() {
            "an unknown target".to_string()
        } else {
            format!("{target:?}")
        };
        self.path_error(
            path,
            format!("a symbolic link to {target}: links on a medium are never followed"),
        )
    }
}

/// A file type for messages.
fn kind_name(mode: u32) -> &'static str {
    match mode & S_IFMT {
        0o010_000 => "a FIFO",
        0o020_000 => "a character device",
        0o060_000 => "a block device",
        _ => "a socket",
    }
}

impl Tree for IsoTree {
    fn read(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>, MediaError> {
        let (extent, unsupported) = match self.lookup(path)? {
            None | Some(Found::Dir(_)) => return Ok(None),
            Some(Found::Link(target)) => return Err(self.link_error(path, &target)),
            Some(Found::Special(mode)) => {
                return Err(self.path_error(
                    path,
                    format!("{} (mode {mode:#o}), not a regular file", kind_name(mode)),
                ))
            }
            Some(Found::File {
                extent,
                unsupported,
            }) => (extent, unsupported),
        };
        let object = format!("{}:{path}", self.object);
        if let Some(why) = unsupported {
            return Err(MediaError::new(
                object,
                MediaErrorKind::Corrupt(format!("{why}: not supported")),
            ));
        }
        let size = u64::from(extent.len);
        if size > cap {
            return Err(MediaError::new(
                object,
                MediaErrorKind::TooLarge { size, cap },
            ));
        }
        let what = format!("file {path:?} (block {})", extent.block);
        let at = self.block_offset(extent.block, &what)?;
        self.read_exact(at, usize::try_from(size).unwrap_or(usize::MAX), &what)
            .map(Some)
    }

    fn list(&self, dir: &str) -> Result<Option<Vec<String>>, MediaError> {
        let extent = match self.lookup(dir)? {
            Some(Found::Dir(extent)) => extent,
            Some(Found::Link(target)) => return Err(self.link_error(dir, &target)),
            _ => return Ok(None),
        };
        let d = self.read_dir(extent)?;
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
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("version", b"META_DAT.JSO;1", "meta_dat.jso"),
            ("trailing dot", b"USER_DAT.;1", "user_dat"),
            ("no version", b"LATEST", "latest"),
            ("dot only kept inside", b"A.B.C;12", "a.b.c"),
        ];
        for (case, ident, want) in cases {
            assert_eq!(primary_name(ident), *want, "case {case}");
        }
        let j: Vec<u8> = "meta_data.json;1"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        assert_eq!(joliet_name(&j), "meta_data.json", "joliet version");
        let j: Vec<u8> = "a;b".encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        assert_eq!(joliet_name(&j), "a;b", "joliet semicolon kept");
    }

    /// A directory record: identifier, flags, extent.
    fn record(ident: &[u8], flags: u8, block: u32, len: u32) -> Vec<u8> {
        let total = 33 + ident.len() + usize::from(ident.len() % 2 == 0);
        let mut r = vec![0u8; total];
        r[0] = total as u8;
        r[2..6].copy_from_slice(&block.to_le_bytes());
        r[6..10].copy_from_slice(&block.to_be_bytes());
        r[10..14].copy_from_slice(&len.to_le_bytes());
        r[14..18].copy_from_slice(&len.to_be_bytes());
        r[25] = flags;
        r[32] = ident.len() as u8;
        r[33..33 + ident.len()].copy_from_slice(ident);
        r
    }

    /// A minimal plain ISO: PVD, terminator, root directory at block 18 holding `files`, and
    /// file data at block 19. Returns the image path (removed by the caller).
    fn tiny_iso(tag: &str, files: &[(&[u8], u8)]) -> std::path::PathBuf {
        let mut img = vec![0u8; 20 * 2048];
        let pvd = 16 * 2048;
        img[pvd..pvd + 7].copy_from_slice(b"\x01CD001\x01");
        img[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
        let root = record(&[0], FLAG_DIRECTORY, 18, 2048);
        img[pvd + 156..pvd + 156 + 34].copy_from_slice(&root);
        img[17 * 2048..17 * 2048 + 7].copy_from_slice(b"\xffCD001\x01");
        let mut dir = record(&[0], FLAG_DIRECTORY, 18, 2048);
        dir.extend(record(&[1], FLAG_DIRECTORY, 18, 2048));
        for (ident, flags) in files {
            dir.extend(record(ident, *flags, 19, 5));
        }
        img[18 * 2048..18 * 2048 + dir.len()].copy_from_slice(&dir);
        img[19 * 2048..19 * 2048 + 5].copy_from_slice(b"hello");
        let path = std::env::temp_dir().join(format!("preroot-iso-{tag}-{}", std::process::id()));
        std::fs::write(&path, img).unwrap();
        path
    }

    #[test]
    fn tiny_plain_image() {
        let path = tiny_iso(
            "plain",
            &[
                (b"MULTI.BIN;1", FLAG_MULTI_EXTENT),
                (b"MULTI.BIN;1", 0),
                (b"USER_DAT.;1", 0),
            ],
        );
        let tree = IsoTree::open(&path).unwrap();
        assert_eq!(
            tree.list("").unwrap(),
            Some(vec!["multi.bin".to_string(), "user_dat".to_string()]),
            "multi-extent listed once"
        );
        let e = tree.read("multi.bin", 100).unwrap_err();
        assert!(
            matches!(e.kind, MediaErrorKind::Corrupt(ref w) if w.contains("multi-extent")),
            "{e}"
        );
        assert_eq!(
            tree.read("USER_DAT", 100).unwrap().as_deref(),
            Some(&b"hello"[..]),
            "plain read"
        );
        let e = tree.read("user_dat", 4).unwrap_err();
        assert!(
            matches!(e.kind, MediaErrorKind::TooLarge { size: 5, cap: 4 }),
            "{e}"
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn records() {
        let mut rec = vec![0u8; 40];
        rec[0] = 40;
        rec[2..6].copy_from_slice(&20u32.to_le_bytes());
        rec[10..14].copy_from_slice(&100u32.to_le_bytes());
        rec[32] = 4;
        rec[33..37].copy_from_slice(b"AB;1");
        let r = parse_record(&rec).expect("good record");
        assert_eq!(
            r.extent,
            Extent {
                block: 20,
                len: 100
            },
            "extent"
        );
        assert_eq!(r.ident, b"AB;1", "ident");
        assert_eq!(r.system_use.len(), 40 - 38, "system use after padding");
        rec[32] = 200;
        assert!(parse_record(&rec).is_none(), "name past the record");
        rec[32] = 4;
        rec[1] = 255;
        rec[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_record(&rec).is_none(), "extended attribute overflow");
        assert!(parse_record(&rec[..10]).is_none(), "short");
        assert!(parse_record(&[]).is_none(), "empty");
    }

    #[test]
    fn link_targets() {
        // (case, SL component records, target): flags, length, content.
        let cases: &[(&str, &[&[u8]], &str)] = &[
            (
                "absolute",
                &[b"\x08\x00", b"\x00\x03etc", b"\x00\x06shadow"],
                "/etc/shadow",
            ),
            (
                "relative",
                &[b"\x04\x00", b"\x04\x00", b"\x00\x01x"],
                "../../x",
            ),
            ("current", &[b"\x02\x00", b"\x00\x01a"], "./a"),
            (
                "continued component",
                &[b"\x01\x03lat", b"\x00\x03est"],
                "latest",
            ),
            ("cut short", &[b"\x00\x09abc"], "abc"),
        ];
        for (case, records, want) in cases {
            let mut t = LinkTarget::default();
            t.components(&records.concat());
            assert_eq!(String::from_utf8_lossy(&t.text), *want, "case {case}");
        }
        let mut t = LinkTarget::default();
        t.components(&[&[0u8, 255][..], &[b'x'; 255]].concat().repeat(40));
        assert_eq!(t.text.len(), MAX_LINK_TARGET, "kept to its limit");
    }

    #[test]
    fn directories_are_parsed_once() {
        let path = tiny_iso("cache", &[(b"A.TXT;1", 0), (b"B.TXT;1", 0)]);
        let tree = IsoTree::open(&path).unwrap();
        assert_eq!(
            tree.read("a.txt", 9).unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        let after_first = tree.budget.used();
        assert_eq!(
            tree.read("b.txt", 9).unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(
            tree.budget.used() - after_first,
            5,
            "the second read reads only the file: the root came from the cache"
        );
        assert_eq!(tree.dirs.len(), 1);
        std::fs::remove_file(path).unwrap();
    }

    /// The boot's deadline reaches into every read: past it, opening (or reading) an image
    /// stops with a timed-out error naming the image, whatever its structures.
    #[test]
    fn the_deadline_stops_reads() {
        use crate::deadline::Deadline;
        let path = tiny_iso("deadline", &[(b"A.TXT;1", 0)]);
        let late = Budget::new(Some(Deadline::after(std::time::Duration::ZERO)));
        let e = IsoTree::open_with(&path, late)
            .err()
            .expect("past the deadline");
        assert!(
            matches!(&e.kind, MediaErrorKind::Io(io) if io.kind() == io::ErrorKind::TimedOut)
                && e.to_string()
                    .contains("the deadline passed while reading this medium"),
            "{e}"
        );
        let soon = Budget::new(Some(Deadline::after(std::time::Duration::from_secs(60))));
        assert!(
            IsoTree::open_with(&path, soon).is_ok(),
            "before the deadline"
        );
        std::fs::remove_file(path).unwrap();
    }
}
