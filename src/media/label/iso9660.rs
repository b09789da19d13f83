//! ISO9660 volume label probe: the volume identifier of the Primary Volume Descriptor, or of a
//! Joliet Supplementary Volume Descriptor when the primary one is blank.
//!
//! Owns only the volume descriptor set (sectors 16.. of 2048 bytes). Does not read directories
//! (that is `media::iso9660`), nor look at El Torito boot records or UDF bridges.
//!
//! Spec: ECMA-119 4th ed. §8.4 (Primary Volume Descriptor: type 1, `CD001`, version 1, volume
//! identifier at bytes 40..72, space-padded), §8.5 (Supplementary Volume Descriptor, type 2);
//! Joliet specification 1995 (escape sequences `%/@`, `%/C`, `%/E` at SVD bytes 88..91 mark
//! UCS-2 big-endian identifiers).
//!
//! Panic contract: [`probe`] never panics on any input (checked by `#[no_panic]` in the
//! `nopanic` build) and does not allocate.
#![deny(clippy::arithmetic_side_effects)]

/// Logical sector size of the volume descriptor area. ECMA-119 allows other logical block
/// sizes, but the descriptors themselves always sit in 2048-byte sectors from sector 16.
pub const SECTOR: usize = 2048;
/// Byte offset of the first volume descriptor (sector 16).
pub const VD_START: usize = 16 * SECTOR;
/// How many descriptors we look at: those inside [`super::PROBE_LEN`] (sectors 16..31).
const MAX_DESCRIPTORS: usize = 16;

/// A volume identifier as stored, trailing padding already removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawLabel<'a> {
    /// Primary descriptor: a-/d-characters (ASCII). May be empty.
    Ascii(&'a [u8]),
    /// Joliet descriptor: UCS-2 big-endian, an even number of bytes.
    Ucs2Be(&'a [u8]),
}

/// Is this 2048-byte sector a volume descriptor, and of which type?
fn descriptor_type(sector: &[u8]) -> Option<u8> {
    match sector.get(0..7)? {
        [t, b'C', b'D', b'0', b'0', b'1', 1] => Some(*t),
        _ => None,
    }
}

/// Does an SVD carry one of the three Joliet escape sequences (UCS-2 levels 1-3)?
pub fn is_joliet(svd: &[u8]) -> bool {
    matches!(svd.get(88..91), Some([b'%', b'/', b'@' | b'C' | b'E']))
}

/// `s` without trailing ASCII spaces and NULs.
fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let Some((b' ' | 0, rest)) = s.split_last() {
        s = rest;
    }
    s
}

/// `s` (UCS-2 BE) without trailing U+0020 and U+0000, and without an odd last byte.
///
/// With `get` rather than `split_last_chunk`: the latter calls `split_at`, whose panic path
/// is only proven dead where it is inlined, and LLVM stops inlining it into [`probe`] once
/// enough other code calls `split_at` on bytes (linking the SELinux matcher into
/// examples/nopanic.rs did), so `#[no_panic]` failed at link time.
fn trim_ucs2(s: &[u8]) -> &[u8] {
    let mut end = s.len() & !1;
    while let Some(last) = end.checked_sub(2) {
        match s.get(last..end) {
            Some([0, b' ' | 0]) => end = last,
            _ => break,
        }
    }
    s.get(..end).unwrap_or_default()
}

/// Finds the ISO9660 volume descriptor set in `buf` (the first bytes of a device) and returns
/// the volume identifier. `None` means not ISO9660 (or `buf` stops before sector 17);
/// `Some(RawLabel::Ascii(b""))` is an ISO9660 volume without a label.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn probe(buf: &[u8]) -> Option<RawLabel<'_>> {
    let area = buf.get(VD_START..)?;
    let mut primary: Option<&[u8]> = None;
    let mut joliet: Option<&[u8]> = None;
    for sector in area.chunks_exact(SECTOR).take(MAX_DESCRIPTORS) {
        match descriptor_type(sector) {
            Some(1) if primary.is_none() => primary = sector.get(40..72),
            Some(2) if joliet.is_none() && is_joliet(sector) => joliet = sector.get(40..72),
            // Set terminator, or not a descriptor at all: the set ends here.
            Some(255) | None => break,
            Some(_) => {}
        }
    }
    let primary = trim_ascii(primary?);
    if primary.is_empty() {
        if let Some(j) = joliet.map(trim_ucs2).filter(|j| !j.is_empty()) {
            return Some(RawLabel::Ucs2Be(j));
        }
    }
    Some(RawLabel::Ascii(primary))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::type_complexity)] // test tables build images by hand
mod tests {
    use super::*;

    /// An image prefix with a PVD (label `pvd`) and optionally a Joliet SVD (label `svd`).
    fn image(pvd: &str, svd: Option<&str>) -> Vec<u8> {
        let mut buf = vec![0u8; super::super::PROBE_LEN];
        let mut sector = 16;
        let mut put = |t: u8, id: &[u8], joliet: bool| {
            let at = sector * SECTOR;
            buf[at] = t;
            buf[at + 1..at + 7].copy_from_slice(b"CD001\x01");
            if t != 255 {
                buf[at + 40..at + 72].fill(if joliet { 0 } else { b' ' });
                buf[at + 40..at + 40 + id.len()].copy_from_slice(id);
            }
            if joliet {
                buf[at + 88..at + 91].copy_from_slice(b"%/E");
            }
            sector += 1;
        };
        put(1, pvd.as_bytes(), false);
        if let Some(s) = svd {
            let ucs: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
            put(2, &ucs, true);
        }
        put(255, b"", false);
        buf
    }

    #[test]
    fn probe_cases() {
        let cases: &[(&str, Vec<u8>, Option<RawLabel>)] = &[
            (
                "config-2",
                image("config-2", None),
                Some(RawLabel::Ascii(b"config-2")),
            ),
            (
                "upper",
                image("CONFIG-2", Some("x")),
                Some(RawLabel::Ascii(b"CONFIG-2")),
            ),
            (
                "joliet when primary blank",
                image("", Some("cidata")),
                Some(RawLabel::Ucs2Be(b"\0c\0i\0d\0a\0t\0a")),
            ),
            (
                "blank, no joliet",
                image("", None),
                Some(RawLabel::Ascii(b"")),
            ),
            (
                "blank both",
                image("", Some("")),
                Some(RawLabel::Ascii(b"")),
            ),
            ("all zero", vec![0; 65536], None),
            ("empty", vec![], None),
            (
                "garbage",
                (0..65536u32).map(|i| (i * 7919 % 251) as u8).collect(),
                None,
            ),
        ];
        for (name, buf, want) in cases {
            assert_eq!(probe(buf), *want, "case {name}");
        }
    }

    #[test]
    fn probe_lengths() {
        let full = image("config-2", None);
        // The PVD needs bytes up to the end of sector 16; one byte less is not enough.
        assert_eq!(probe(&full[..VD_START + SECTOR - 1]), None, "one short");
        assert_eq!(
            probe(&full[..VD_START + SECTOR]),
            Some(RawLabel::Ascii(b"config-2")),
            "exact"
        );
        assert_eq!(probe(&full[..VD_START]), None, "stops at the descriptors");
    }

    #[test]
    fn bad_version_or_magic() {
        let mut buf = image("config-2", None);
        buf[VD_START + 6] = 2;
        assert_eq!(probe(&buf), None, "version 2");
        let mut buf = image("config-2", None);
        buf[VD_START + 1] = b'B';
        assert_eq!(probe(&buf), None, "BD001");
    }

    #[test]
    fn trims() {
        assert_eq!(trim_ucs2(b"\0a\0 \0\0"), b"\0a", "ucs2 padding");
        assert_eq!(trim_ucs2(b"\0a\0"), b"\0a", "odd length");
        assert_eq!(trim_ascii(b"ab  \0"), b"ab", "ascii padding");
        assert_eq!(trim_ascii(b"   "), b"", "all spaces");
    }
}
