//! LVM2's on-disk metadata, read without `lvm`: a PV's label, its metadata area and the VG
//! metadata text in it. The disk stage decides from these whether `pvresize` and `lvextend`
//! have anything to do, so a boot with nothing to grow starts no `lvm` process, and one that
//! grows starts one.
//!
//! Owns: the label (`LABELONE` in one of the first four sectors, its CRC, `pv_header`: the
//! PV's UUID, the first data area's start, the metadata areas; [`label`], `#[no_panic]`),
//! the metadata area header (its CRC, magic, version, the current text's location;
//! [`mda_header`], `#[no_panic]`), the text's location in the circular buffer with its CRC
//! ([`metadata_text`]), and the text format ([`parse_vg`]: a VG's sequence number, extent
//! size, PVs with their sizes and extent counts, LVs with their extents, the extents in use).
//!
//! Never: writes metadata; understands more than the numbers above (tags, segment types
//! beyond counting what they take from PVs, historical LVs, lvmlockd); LVM1. What it does not
//! understand it refuses ([`MetaError`]), and the caller then asks `lvm` instead.
//!
//! Spec: lvm2 2.03 `lib/format_text/layout.h` (label_header, pv_header, disk_locn,
//! mda_header, raw_locn; little endian), `lib/label/label.c` and `format_text.c` (where the
//! CRCs start; `calc_crc` is the reflected CRC-32 with initial value 0xf597a6cf and no final
//! inversion, `lib/misc/crc.c`), `lib/config/config.c` (the text format: `name = value`,
//! `name { ... }`, strings, integers, arrays, `#` comments), and `man 7 lvmsystemid`-era VG
//! metadata as `vgcfgbackup` shows it.
//!
//! Panic contract: nothing here panics on any input; [`label`] and [`mda_header`] are proven
//! so at link time, the rest by the `lvmmeta` fuzz target. The text parser nests at most
//! [`MAX_DEPTH`] sections and reads at most [`MAX_TEXT`] bytes.
#![deny(clippy::arithmetic_side_effects)]

use crate::bytes::{array, le_u32, le_u64};

/// The label is in one of the first four 512-byte sectors.
pub const LABEL_SCAN_LEN: usize = 2048;
/// The mda header's size.
pub const MDA_HEADER_LEN: usize = 512;
/// The metadata text read at most (lvm's default area is ~1 MiB).
pub const MAX_TEXT: usize = 4 << 20;
/// Sections nest at most this deep (VG metadata has four levels).
pub const MAX_DEPTH: usize = 16;
const INITIAL_CRC: u32 = 0xf597_a6cf;
const FMTT_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
const RAW_LOCN_IGNORED: u32 = 1;

/// Why metadata is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaError {
    /// No `LABELONE` label with a valid CRC in the first four sectors.
    NoLabel,
    /// A label of another type than `LVM2 001`.
    NotLvm2,
    /// The layout is one this reader does not handle (no or two metadata areas, no data area).
    Unsupported(&'static str),
    /// The metadata area header: bad CRC, magic, version or location.
    MdaHeader(&'static str),
    /// The text: out of the area, bad CRC, too large, or not the format.
    Text(&'static str),
    /// A field the decisions need is missing or of the wrong type.
    Field(&'static str),
}

impl std::fmt::Display for MetaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaError::NoLabel => write!(f, "no LVM label"),
            MetaError::NotLvm2 => write!(f, "not an LVM2 label"),
            MetaError::Unsupported(w) => write!(f, "unsupported layout: {w}"),
            MetaError::MdaHeader(w) => write!(f, "metadata area header: {w}"),
            MetaError::Text(w) => write!(f, "metadata text: {w}"),
            MetaError::Field(w) => write!(f, "metadata: {w}"),
        }
    }
}

/// lvm2's `calc_crc`: CRC-32 (reflected, 0xEDB88320) from `initial`, not inverted.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn calc_crc(initial: u32, data: &[u8]) -> u32 {
    super::crc32_update(initial, data)
}

/// A PV's label and `pv_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    /// The PV's UUID, 32 characters without dashes.
    pub pv_uuid: [u8; 32],
    /// The device size recorded at `pvcreate` (pvresize leaves it), bytes.
    pub device_size: u64,
    /// The first data area's start (the first extent), bytes.
    pub pe_start: u64,
    /// The one metadata area: (offset, size), bytes from the PV's start.
    pub mda: (u64, u64),
}

/// Finds and parses the label in the first four sectors (`b`, up to [`LABEL_SCAN_LEN`]).
/// Refuses PVs with no metadata area or two (the second, at the device's end, moves on
/// `pvresize`; the caller asks `lvm` then).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn label(b: &[u8]) -> Result<Label, MetaError> {
    let mut found = None;
    for sector in 0..4u64 {
        let off = match usize::try_from(sector) {
            Ok(s) => s.checked_mul(512),
            Err(_) => None,
        };
        let Some(off) = off else { break };
        let Some(s) = b
            .get(off..off.saturating_add(512))
            .filter(|s| s.len() == 512)
        else {
            break;
        };
        if array::<8>(s, 0) == Some(*b"LABELONE")
            && le_u64(s, 8) == Some(sector)
            && le_u32(s, 16) == Some(calc_crc(INITIAL_CRC, s.get(20..).unwrap_or_default()))
        {
            found = Some(s);
            break;
        }
    }
    let s = found.ok_or(MetaError::NoLabel)?;
    if array::<8>(s, 24) != Some(*b"LVM2 001") {
        return Err(MetaError::NotLvm2);
    }
    let h = usize::try_from(le_u32(s, 20).ok_or(MetaError::NoLabel)?)
        .map_err(|_| MetaError::NoLabel)?;
    let pv_uuid = array::<32>(s, h).ok_or(MetaError::NoLabel)?;
    let device_size = le_u64(s, h.saturating_add(32)).ok_or(MetaError::NoLabel)?;
    // Two zero-terminated lists of (offset, size): data areas, then metadata areas.
    let mut at = h.saturating_add(40);
    let mut next = || -> Result<(u64, u64), MetaError> {
        let o = le_u64(s, at).ok_or(MetaError::NoLabel)?;
        let z = le_u64(s, at.saturating_add(8)).ok_or(MetaError::NoLabel)?;
        at = at.saturating_add(16);
        Ok((o, z))
    };
    let (pe_start, _) = next()?;
    if pe_start == 0 {
        return Err(MetaError::Unsupported("no data area"));
    }
    let mut data_areas = 1u32;
    loop {
        let (o, _) = next()?;
        if o == 0 {
            break;
        }
        data_areas = data_areas.saturating_add(1);
        if data_areas > 8 {
            return Err(MetaError::NoLabel);
        }
    }
    if data_areas != 1 {
        return Err(MetaError::Unsupported("more than one data area"));
    }
    let mda = next()?;
    if mda.0 == 0 {
        return Err(MetaError::Unsupported("no metadata area on this PV"));
    }
    if next()?.0 != 0 {
        return Err(MetaError::Unsupported("two metadata areas"));
    }
    Ok(Label {
        pv_uuid,
        device_size,
        pe_start,
        mda,
    })
}

/// A metadata area's header: where the current text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MdaHeader {
    /// The area's start and size, bytes from the PV's start.
    pub start: u64,
    pub size: u64,
    /// The text: offset in the area, size, CRC.
    pub text_offset: u64,
    pub text_size: u64,
    pub text_crc: u32,
}

/// Parses the 512-byte header of the metadata area that starts at byte `start`.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn mda_header(b: &[u8], start: u64) -> Result<MdaHeader, MetaError> {
    let b = b
        .get(..MDA_HEADER_LEN)
        .ok_or(MetaError::MdaHeader("cut short"))?;
    if le_u32(b, 0) != Some(calc_crc(INITIAL_CRC, b.get(4..).unwrap_or_default())) {
        return Err(MetaError::MdaHeader("CRC"));
    }
    if array::<16>(b, 4).as_ref() != Some(FMTT_MAGIC) {
        return Err(MetaError::MdaHeader("magic"));
    }
    if le_u32(b, 20) != Some(1) {
        return Err(MetaError::MdaHeader("version"));
    }
    if le_u64(b, 24) != Some(start) {
        return Err(MetaError::MdaHeader("not where the label says"));
    }
    let size = le_u64(b, 32).ok_or(MetaError::MdaHeader("cut short"))?;
    // raw_locns[0]: offset, size, checksum, flags.
    let text_offset = le_u64(b, 40).ok_or(MetaError::MdaHeader("cut short"))?;
    let text_size = le_u64(b, 48).ok_or(MetaError::MdaHeader("cut short"))?;
    let text_crc = le_u32(b, 56).ok_or(MetaError::MdaHeader("cut short"))?;
    let flags = le_u32(b, 60).ok_or(MetaError::MdaHeader("cut short"))?;
    if text_offset == 0 || flags & RAW_LOCN_IGNORED != 0 {
        return Err(MetaError::MdaHeader("no current metadata"));
    }
    Ok(MdaHeader {
        start,
        size,
        text_offset,
        text_size,
        text_crc,
    })
}

/// Where the current text is: (offset in the area, length) of its part up to the area's
/// end, and of the part that wrapped to just after the header (length 0 when none). The area
/// is a circular buffer after its header.
pub fn text_ranges(h: &MdaHeader) -> Result<[(u64, usize); 2], MetaError> {
    let bad = |w| MetaError::Text(w);
    let size = usize::try_from(h.text_size).map_err(|_| bad("too large"))?;
    if size > MAX_TEXT || size == 0 {
        return Err(bad("empty or too large"));
    }
    let area_len = usize::try_from(h.size).map_err(|_| bad("area too large"))?;
    let off = usize::try_from(h.text_offset).map_err(|_| bad("out of the area"))?;
    if off < MDA_HEADER_LEN || off >= area_len {
        return Err(bad("out of the area"));
    }
    let first = size.min(area_len.saturating_sub(off));
    let rest = size.saturating_sub(first);
    if rest > 0 && MDA_HEADER_LEN.saturating_add(rest) > off {
        return Err(bad("wraps onto itself"));
    }
    Ok([(h.text_offset, first), (MDA_HEADER_LEN as u64, rest)])
}

/// The text from its two parts ([`text_ranges`]), its CRC checked.
pub fn text_from_parts(first: &[u8], wrapped: &[u8], h: &MdaHeader) -> Result<Vec<u8>, MetaError> {
    let mut text = Vec::with_capacity(first.len().saturating_add(wrapped.len()));
    text.extend_from_slice(first);
    text.extend_from_slice(wrapped);
    if calc_crc(INITIAL_CRC, &text) != h.text_crc {
        return Err(MetaError::Text("CRC"));
    }
    Ok(text)
}

/// The current metadata text from the whole area `area` (its header included), with its CRC
/// checked.
pub fn metadata_text(area: &[u8], h: &MdaHeader) -> Result<Vec<u8>, MetaError> {
    let [(o1, l1), (o2, l2)] = text_ranges(h)?;
    let part = |o: u64, l: usize| -> Result<&[u8], MetaError> {
        let o = usize::try_from(o).map_err(|_| MetaError::Text("area cut short"))?;
        area.get(o..o.saturating_add(l))
            .filter(|p| p.len() == l)
            .ok_or(MetaError::Text("area cut short"))
    };
    text_from_parts(part(o1, l1)?, part(o2, l2)?, h)
}

/// A value of the text format.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float,
    Str(String),
    Array(Vec<Value>),
    Section(Vec<(String, Value)>),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Section(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn int(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A section's items (empty for anything else).
    pub fn items(&self) -> &[(String, Value)] {
        match self {
            Value::Section(items) => items,
            _ => &[],
        }
    }
}

struct Parser<'a> {
    b: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&mut self) -> Option<u8> {
        loop {
            match self.b.get(self.at).copied() {
                Some(b' ' | b'\t' | b'\n' | b'\r' | 0) => self.at = self.at.saturating_add(1),
                Some(b'#') => {
                    while !matches!(self.b.get(self.at), None | Some(b'\n')) {
                        self.at = self.at.saturating_add(1);
                    }
                }
                other => return other,
            }
        }
    }

    fn bump(&mut self) {
        self.at = self.at.saturating_add(1);
    }

    fn ident(&mut self) -> Result<String, MetaError> {
        let start = self.at;
        while self
            .b
            .get(self.at)
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"_.+-/".contains(c))
        {
            self.bump();
        }
        let name = self.b.get(start..self.at).unwrap_or_default();
        if name.is_empty() {
            return Err(MetaError::Text("expected a name"));
        }
        Ok(String::from_utf8_lossy(name).into_owned())
    }

    /// Items up to `}` (or the end, at depth 0).
    fn items(&mut self, depth: usize) -> Result<Vec<(String, Value)>, MetaError> {
        if depth > MAX_DEPTH {
            return Err(MetaError::Text("nested too deep"));
        }
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None if depth == 0 => return Ok(items),
                None => return Err(MetaError::Text("unclosed section")),
                Some(b'}') if depth > 0 => {
                    self.bump();
                    return Ok(items);
                }
                Some(_) => {
                    let name = self.ident()?;
                    match self.peek() {
                        Some(b'{') => {
                            self.bump();
                            let inner = self.items(depth.saturating_add(1))?;
                            items.push((name, Value::Section(inner)));
                        }
                        Some(b'=') => {
                            self.bump();
                            let v = self.value(depth)?;
                            items.push((name, v));
                        }
                        _ => return Err(MetaError::Text("expected = or {")),
                    }
                }
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, MetaError> {
        match self.peek() {
            Some(b'"') => {
                self.bump();
                let mut s = Vec::new();
                loop {
                    match self.b.get(self.at).copied() {
                        None => return Err(MetaError::Text("unclosed string")),
                        Some(b'"') => {
                            self.bump();
                            break;
                        }
                        Some(b'\\') => {
                            self.bump();
                            if let Some(c) = self.b.get(self.at).copied() {
                                s.push(c);
                                self.bump();
                            }
                        }
                        Some(c) => {
                            s.push(c);
                            self.bump();
                        }
                    }
                }
                Ok(Value::Str(String::from_utf8_lossy(&s).into_owned()))
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(MetaError::Text("nested too deep"));
                }
                self.bump();
                let mut vals = Vec::new();
                loop {
                    match self.peek() {
                        Some(b']') => {
                            self.bump();
                            return Ok(Value::Array(vals));
                        }
                        Some(b',') => self.bump(),
                        None => return Err(MetaError::Text("unclosed array")),
                        Some(_) => vals.push(self.value(depth.saturating_add(1))?),
                    }
                }
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.at;
                self.bump();
                while self
                    .b
                    .get(self.at)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
                {
                    self.bump();
                }
                let t = std::str::from_utf8(self.b.get(start..self.at).unwrap_or_default())
                    .map_err(|_| MetaError::Text("number"))?;
                if t.contains('.') {
                    return Ok(Value::Float);
                }
                t.parse()
                    .map(Value::Int)
                    .map_err(|_| MetaError::Text("number"))
            }
            _ => Err(MetaError::Text("expected a value")),
        }
    }
}

/// Parses the text format into its top-level section.
pub fn parse_text(text: &[u8]) -> Result<Value, MetaError> {
    if text.len() > MAX_TEXT {
        return Err(MetaError::Text("too large"));
    }
    let mut p = Parser { b: text, at: 0 };
    p.items(0).map(Value::Section)
}

/// A PV as the VG metadata has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvMeta {
    /// Its name in the metadata (`pv0`).
    pub key: String,
    /// Its UUID without dashes (as the label has it).
    pub uuid: String,
    /// Sectors of 512 bytes, as `pvcreate`/`pvresize` last recorded.
    pub dev_size: u64,
    pub pe_start: u64,
    pub pe_count: u64,
}

/// An LV: its extents (all segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvMeta {
    pub name: String,
    pub extents: u64,
}

/// The numbers of one VG's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vg {
    pub name: String,
    pub seqno: u64,
    /// Sectors of 512 bytes.
    pub extent_size: u64,
    pub pvs: Vec<PvMeta>,
    pub lvs: Vec<LvMeta>,
    /// Extents taken from PVs by LV segments (those with `stripes`; RAID, mirror, thin and
    /// cache LVs take theirs through hidden sub-LVs, which have them).
    pub allocated: u64,
}

impl Vg {
    pub fn extent_bytes(&self) -> u64 {
        self.extent_size.saturating_mul(512)
    }

    pub fn pv_by_uuid(&self, uuid: &[u8]) -> Option<&PvMeta> {
        self.pvs.iter().find(|p| p.uuid.as_bytes() == uuid)
    }

    pub fn lv(&self, name: &str) -> Option<&LvMeta> {
        self.lvs.iter().find(|l| l.name == name)
    }

    /// Extents no LV has.
    pub fn free(&self) -> u64 {
        self.pvs
            .iter()
            .fold(0u64, |a, p| a.saturating_add(p.pe_count))
            .saturating_sub(self.allocated)
    }
}

/// The VG metadata text: the one top-level section with `physical_volumes`.
pub fn parse_vg(text: &[u8]) -> Result<Vg, MetaError> {
    let top = parse_text(text)?;
    let (name, vg) = top
        .items()
        .iter()
        .find(|(_, v)| v.get("physical_volumes").is_some())
        .ok_or(MetaError::Field("no VG section"))?;
    let seqno = vg.int("seqno").ok_or(MetaError::Field("seqno"))?;
    let extent_size = vg
        .int("extent_size")
        .filter(|n| *n > 0)
        .ok_or(MetaError::Field("extent_size"))?;
    let mut pvs = Vec::new();
    for (key, pv) in vg
        .get("physical_volumes")
        .map(Value::items)
        .unwrap_or_default()
    {
        pvs.push(PvMeta {
            key: key.clone(),
            uuid: pv
                .str("id")
                .ok_or(MetaError::Field("PV id"))?
                .chars()
                .filter(|c| *c != '-')
                .collect(),
            dev_size: pv.int("dev_size").ok_or(MetaError::Field("PV dev_size"))?,
            pe_start: pv.int("pe_start").ok_or(MetaError::Field("PV pe_start"))?,
            pe_count: pv.int("pe_count").ok_or(MetaError::Field("PV pe_count"))?,
        });
    }
    let mut lvs = Vec::new();
    let mut allocated = 0u64;
    for (lname, lv) in vg
        .get("logical_volumes")
        .map(Value::items)
        .unwrap_or_default()
    {
        let mut extents = 0u64;
        for (_, seg) in lv.items().iter().filter(|(k, _)| k.starts_with("segment")) {
            let Value::Section(_) = seg else { continue };
            let n = seg
                .int("extent_count")
                .ok_or(MetaError::Field("segment extent_count"))?;
            extents = extents.saturating_add(n);
            if seg.get("stripes").is_some() {
                allocated = allocated.saturating_add(n);
            }
        }
        lvs.push(LvMeta {
            name: lname.clone(),
            extents,
        });
    }
    Ok(Vg {
        name: name.clone(),
        seqno,
        extent_size,
        pvs,
        lvs,
        allocated,
    })
}

/// What `pvresize` would make of a PV on a device of `dev_bytes`: its extent count (the
/// extents that fit between the first extent and the device's end; lvm2's `pv_resize`).
pub fn extents_fitting(pv: &PvMeta, extent_bytes: u64, dev_bytes: u64) -> u64 {
    dev_bytes
        .saturating_sub(pv.pe_start.saturating_mul(512))
        .checked_div(extent_bytes)
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;

    /// VG metadata as lvm2 2.03.16 writes it (the Atomic builder's `atomicos`, after
    /// `pvresize`), with an escaped string and a float to exercise the format.
    pub const TEXT: &str = r#"atomicos {
id = "aBcDeF-1234-5678-9abc-def0-1234-567890"
seqno = 3
format = "lvm2"
status = ["RESIZEABLE", "READ", "WRITE"]
flags = []
extent_size = 8192
max_lv = 0
max_pv = 0
metadata_copies = 0

physical_volumes {

pv0 {
id = "Abcdef-ghij-klmn-opqr-stuv-wxyz-012345"
device = "/dev/vda2"

status = ["ALLOCATABLE"]
flags = []
dev_size = 7727104
pe_start = 2048
pe_count = 943
}
}

logical_volumes {

root {
id = "0aBcDe-1234-5678-9abc-def0-1234-567890"
status = ["READ", "WRITE", "VISIBLE"]
flags = []
creation_time = 1700000000	# 2023-11-14 22:13:20 +0000
creation_host = "builder \"one\""
segment_count = 1

segment1 {
start_extent = 0
extent_count = 447

type = "striped"
stripe_count = 1	# linear

stripes = [
"pv0", 0
]
}
}
}

}
# Generated by LVM2 version 2.03.16(2) (2022-05-18): Thu Nov 30 12:00:00 2026

contents = "Text Format Volume Group"
version = 1

description = ""

creation_host = "builder"	# Linux builder 6.1.0-57-amd64 #1 SMP x86_64
creation_time = 1700000000	# Thu Nov 30 12:00:00 2026
ratio = 1.5
"#;

    #[test]
    fn vg_text() {
        let vg = parse_vg(TEXT.as_bytes()).unwrap();
        assert_eq!(
            (
                vg.name.as_str(),
                vg.seqno,
                vg.extent_size,
                vg.allocated,
                vg.free()
            ),
            ("atomicos", 3, 8192, 447, 496),
            "case the Atomic VG"
        );
        assert_eq!(vg.pvs.len(), 1);
        let pv = &vg.pvs[0];
        assert_eq!(pv.uuid, "Abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(
            (pv.dev_size, pv.pe_start, pv.pe_count),
            (7727104, 2048, 943)
        );
        assert_eq!(vg.lv("root").map(|l| l.extents), Some(447));
        // A PV on a 3,956,277,248-byte p2 fits 943 extents of 4 MiB after its first MiB.
        assert_eq!(extents_fitting(pv, vg.extent_bytes(), 3_956_277_248), 943);
        assert_eq!(extents_fitting(pv, vg.extent_bytes(), 100), 0);
        let top = parse_text(TEXT.as_bytes()).unwrap();
        assert_eq!(top.str("contents"), Some("Text Format Volume Group"));
        assert_eq!(
            top.get("atomicos")
                .and_then(|v| v.get("logical_volumes"))
                .and_then(|v| v.get("root"))
                .and_then(|v| v.str("creation_host")),
            Some("builder \"one\""),
            "case escaped quote"
        );
        for (case, text) in [
            ("unclosed section", "vg { physical_volumes {"),
            ("unclosed string", "a = \"x"),
            ("unclosed array", "a = [1, 2"),
            ("no value", "a = "),
            ("missing =", "a 1"),
            ("no VG", "contents = \"x\""),
            ("no seqno", "vg { extent_size = 8 physical_volumes { } }"),
            ("zero extent size", "vg { seqno = 1 extent_size = 0 physical_volumes { } }"),
            ("PV without pe_count", "vg { seqno = 1 extent_size = 8 physical_volumes { pv0 { id = \"a\" dev_size = 1 pe_start = 1 } } }"),
            ("negative count", "vg { seqno = -1 extent_size = 8 physical_volumes { } }"),
        ] {
            assert!(parse_vg(text.as_bytes()).is_err(), "case {case}");
        }
        let deep = "a { ".repeat(MAX_DEPTH + 2);
        assert_eq!(
            parse_text(deep.as_bytes()),
            Err(MetaError::Text("nested too deep")),
            "case deep"
        );
        let arrays = format!("a = {}", "[".repeat(MAX_DEPTH + 2));
        assert!(parse_text(arrays.as_bytes()).is_err(), "case deep arrays");
    }

    /// A PV's first 2 KiB as `pvcreate` writes them, label in sector `sector`.
    pub fn label_sectors(sector: usize, mdas: &[(u64, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; LABEL_SCAN_LEN];
        let s = &mut b[sector * 512..sector * 512 + 512];
        s[..8].copy_from_slice(b"LABELONE");
        s[8..16].copy_from_slice(&(sector as u64).to_le_bytes());
        s[20..24].copy_from_slice(&32u32.to_le_bytes());
        s[24..32].copy_from_slice(b"LVM2 001");
        s[32..64].copy_from_slice(b"Abcdefghijklmnopqrstuvwxyz012345");
        s[64..72].copy_from_slice(&1_877_982_720u64.to_le_bytes());
        s[72..80].copy_from_slice(&(1u64 << 20).to_le_bytes());
        let mut at = 72 + 16 + 16;
        for (o, z) in mdas {
            s[at..at + 8].copy_from_slice(&o.to_le_bytes());
            s[at + 8..at + 16].copy_from_slice(&z.to_le_bytes());
            at += 16;
        }
        let crc = calc_crc(INITIAL_CRC, &s[20..]);
        s[16..20].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn labels() {
        let one = label_sectors(1, &[(4096, 1_044_480)]);
        let l = label(&one).unwrap();
        assert_eq!(
            (l.pe_start, l.mda, l.device_size),
            ((1 << 20), (4096, 1_044_480), 1_877_982_720),
            "case sector 1"
        );
        assert_eq!(&l.pv_uuid, b"Abcdefghijklmnopqrstuvwxyz012345");
        assert!(
            label(&label_sectors(3, &[(4096, 1_044_480)])).is_ok(),
            "case sector 3"
        );
        let mut bad_crc = one.clone();
        bad_crc[512 + 100] ^= 1;
        let mut other_type = one.clone();
        other_type[512 + 24..512 + 32].copy_from_slice(b"LVM1 001");
        let crc = calc_crc(INITIAL_CRC, &other_type[512 + 20..1024]);
        other_type[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
        let mut wrong_sector = one.clone();
        wrong_sector[512 + 8] = 2;
        for (case, b, want) in [
            ("zeros", vec![0u8; 2048], MetaError::NoLabel),
            ("bad CRC", bad_crc, MetaError::NoLabel),
            ("says another sector", wrong_sector, MetaError::NoLabel),
            ("not LVM2", other_type, MetaError::NotLvm2),
            (
                "no metadata area",
                label_sectors(1, &[]),
                MetaError::Unsupported("no metadata area on this PV"),
            ),
            (
                "two metadata areas",
                label_sectors(1, &[(4096, 1_044_480), (1 << 30, 1 << 20)]),
                MetaError::Unsupported("two metadata areas"),
            ),
            ("cut short", one[..700].to_vec(), MetaError::NoLabel),
        ] {
            assert_eq!(label(&b), Err(want), "case {case}");
        }
    }

    /// A metadata area of `size` bytes at `start` whose text `text` sits at `offset`
    /// (wrapping past the end as lvm2 does).
    pub fn area(start: u64, size: usize, offset: usize, text: &[u8]) -> Vec<u8> {
        let mut a = vec![0u8; size];
        a[4..20].copy_from_slice(FMTT_MAGIC);
        a[20..24].copy_from_slice(&1u32.to_le_bytes());
        a[24..32].copy_from_slice(&start.to_le_bytes());
        a[32..40].copy_from_slice(&(size as u64).to_le_bytes());
        a[40..48].copy_from_slice(&(offset as u64).to_le_bytes());
        a[48..56].copy_from_slice(&(text.len() as u64).to_le_bytes());
        a[56..60].copy_from_slice(&calc_crc(INITIAL_CRC, text).to_le_bytes());
        for (i, c) in text.iter().enumerate() {
            let mut p = offset + i;
            if p >= size {
                p = p - size + MDA_HEADER_LEN;
            }
            a[p] = *c;
        }
        let crc = calc_crc(INITIAL_CRC, &a[4..MDA_HEADER_LEN]);
        a[..4].copy_from_slice(&crc.to_le_bytes());
        a
    }

    #[test]
    fn areas() {
        let t = TEXT.as_bytes();
        for (case, offset) in [("at the start", 512), ("wrapping", 4096 - 100)] {
            let a = area(4096, 4096, offset, t);
            let h = mda_header(&a, 4096).unwrap_or_else(|e| panic!("case {case}: {e}"));
            assert_eq!(metadata_text(&a, &h).as_deref(), Ok(t), "case {case}");
        }
        let good = area(4096, 4096, 512, t);
        let mut crc = good.clone();
        crc[100] ^= 1;
        let mut text_crc = good.clone();
        text_crc[600] ^= 1;
        assert_eq!(
            mda_header(&crc, 4096),
            Err(MetaError::MdaHeader("CRC")),
            "case header CRC"
        );
        assert_eq!(
            mda_header(&good, 8192),
            Err(MetaError::MdaHeader("not where the label says")),
            "case moved"
        );
        assert_eq!(
            mda_header(&good[..511], 4096),
            Err(MetaError::MdaHeader("cut short")),
            "case short"
        );
        let h = mda_header(&text_crc, 4096).unwrap();
        assert_eq!(
            metadata_text(&text_crc, &h),
            Err(MetaError::Text("CRC")),
            "case text CRC"
        );
        let h = mda_header(&good, 4096).unwrap();
        assert_eq!(
            metadata_text(&good[..1000], &h),
            Err(MetaError::Text("area cut short")),
            "case area short"
        );
        let huge = MdaHeader {
            text_size: 5000,
            ..h
        };
        assert_eq!(
            metadata_text(&good, &huge),
            Err(MetaError::Text("wraps onto itself")),
            "case wraps onto itself"
        );
        let inside = MdaHeader {
            text_offset: 100,
            ..h
        };
        assert_eq!(
            metadata_text(&good, &inside),
            Err(MetaError::Text("out of the area")),
            "case inside the header"
        );
    }
}
