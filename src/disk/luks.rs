//! The LUKS2 header, read in user space: what the disk stage needs to decide whether and how
//! far an open LUKS2 mapping can grow, and whether preroot may unlock it without asking.
//!
//! Owns: the 4 KiB binary header ([`bin_header`]: magic, version, header size, sequence id,
//! UUID, label; `#[no_panic]`, no allocation), the JSON area after it ([`parse`]: data
//! segments, tokens, keyslots, mandatory requirements), choosing between the primary header
//! and the secondary copy ([`read`], as cryptsetup does: the valid one, or the one with the
//! higher sequence id), the size a mapping can have on a device of a given size
//! ([`Luks2::target_bytes`]), and which tokens unlock without interaction
//! ([`Token::unattended`]). LUKS1 is recognised ([`HeaderError::Luks1`]) and not read.
//!
//! Never: writes a header, derives or handles a key, verifies the header checksum (the
//! `csum` field, SHA-256 over the header and JSON area: preroot never acts on the header
//! alone; `cryptsetup resize`, which does the resize, verifies it before using it).
//!
//! Spec: the LUKS2 On-Disk Format Specification, version 1.1.1
//! (<https://gitlab.com/cryptsetup/LUKS2-docs/-/blob/main/luks2_doc_wip.pdf>): the binary
//! header (big endian) is `magic[6] version:u16 hdr_size:u64 seqid:u64 label[48]
//! csum_alg[32] salt[64] uuid[40] subsystem[48] hdr_offset:u64 _pad[184] csum[64]
//! _pad[3584]`, the JSON area follows it up to `hdr_size` (NUL-padded), a secondary copy
//! (magic `SKUL\xba\xbe`) starts at `hdr_size`, and JSON numbers that can exceed 2^53 are
//! decimal strings.
//!
//! Panic contract: no function here panics on any input; [`bin_header`] is proven so at
//! link time (`make nopanic`), [`parse`] and [`read`] by the `luks` fuzz target.
#![deny(clippy::arithmetic_side_effects)]

use crate::bytes::{array, be_u16, be_u64};
use serde_json::{Map, Value};

/// The binary header's size.
pub const BIN_LEN: usize = 4096;
const MAGIC_PRIMARY: [u8; 6] = *b"LUKS\xba\xbe";
const MAGIC_SECONDARY: [u8; 6] = *b"SKUL\xba\xbe";
const VERSION: usize = 6;
const HDR_SIZE: usize = 8;
const SEQID: usize = 16;
const LABEL: usize = 24;
const UUID: usize = 168;
const HDR_OFFSET: usize = 256;
/// The largest header (binary + JSON area) LUKS2 allows: 4 MiB.
pub const MAX_HDR_SIZE: u64 = 4 << 20;
/// The offsets a secondary header may have: every allowed `hdr_size` (16 KiB..4 MiB).
pub const SECONDARY_OFFSETS: [u64; 9] = [
    16 << 10,
    32 << 10,
    64 << 10,
    128 << 10,
    256 << 10,
    512 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
];

/// Why bytes are not a LUKS2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// No LUKS magic.
    NotLuks,
    /// A LUKS1 header (version 1).
    Luks1,
    /// A version other than 1 or 2.
    Version(u16),
    /// `hdr_size` not a power of two from 16 KiB to 4 MiB.
    HdrSize(u64),
    /// `hdr_offset` is not where this copy was read (a primary must say 0).
    Offset(u64),
    /// Fewer bytes than the header needs.
    Short,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::NotLuks => write!(f, "no LUKS header"),
            HeaderError::Luks1 => write!(f, "a LUKS1 header"),
            HeaderError::Version(v) => write!(f, "LUKS version {v}"),
            HeaderError::HdrSize(n) => {
                write!(f, "header size {n} is not 16 KiB..4 MiB, a power of two")
            }
            HeaderError::Offset(n) => {
                write!(f, "header says it is at byte {n}, not where it was read")
            }
            HeaderError::Short => write!(f, "header cut short"),
        }
    }
}

/// The 4 KiB binary header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinHeader {
    /// The secondary copy (`SKUL` magic).
    pub secondary: bool,
    /// Binary header + JSON area, bytes.
    pub hdr_size: u64,
    /// Raised by every update; the copy with the higher one is newer.
    pub seqid: u64,
    /// Where this copy says it is (0 for the primary, `hdr_size` for the secondary).
    pub hdr_offset: u64,
    /// The UUID as text (`8-4-4-4-12`), NUL-padded.
    pub uuid: [u8; 40],
    pub label: [u8; 48],
}

impl BinHeader {
    /// The UUID text, up to its first NUL (empty if not UTF-8).
    pub fn uuid(&self) -> &str {
        cstr(&self.uuid)
    }

    pub fn label(&self) -> &str {
        cstr(&self.label)
    }
}

fn cstr(b: &[u8]) -> &str {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    b.get(..end)
        .and_then(|t| std::str::from_utf8(t).ok())
        .unwrap_or("")
}

/// Parses the binary header at the start of `b`, read at byte `at` of the device (0 for the
/// primary): magic, version 2, an allowed `hdr_size`, `hdr_offset == at`. LUKS1's magic with
/// version 1 gives [`HeaderError::Luks1`].
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn bin_header(b: &[u8], at: u64) -> Result<BinHeader, HeaderError> {
    let magic = array::<6>(b, 0).ok_or(HeaderError::Short)?;
    let secondary = match magic {
        MAGIC_PRIMARY => false,
        MAGIC_SECONDARY => true,
        _ => return Err(HeaderError::NotLuks),
    };
    let version = be_u16(b, VERSION).ok_or(HeaderError::Short)?;
    match version {
        2 => {}
        1 if !secondary => return Err(HeaderError::Luks1),
        v => return Err(HeaderError::Version(v)),
    }
    if b.len() < BIN_LEN {
        return Err(HeaderError::Short);
    }
    let hdr_size = be_u64(b, HDR_SIZE).ok_or(HeaderError::Short)?;
    if !(16 << 10..=MAX_HDR_SIZE).contains(&hdr_size) || !hdr_size.is_power_of_two() {
        return Err(HeaderError::HdrSize(hdr_size));
    }
    let hdr_offset = be_u64(b, HDR_OFFSET).ok_or(HeaderError::Short)?;
    if hdr_offset != at {
        return Err(HeaderError::Offset(hdr_offset));
    }
    Ok(BinHeader {
        secondary,
        hdr_size,
        seqid: be_u64(b, SEQID).ok_or(HeaderError::Short)?,
        hdr_offset,
        uuid: array::<40>(b, UUID).ok_or(HeaderError::Short)?,
        label: array::<48>(b, LABEL).ok_or(HeaderError::Short)?,
    })
}

/// A data segment's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentSize {
    /// `"dynamic"`: to the end of the device (what a mapping can grow with).
    Dynamic,
    Fixed(u64),
}

/// One data segment (`segments` in the JSON area).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub id: String,
    /// `crypt` (or `linear` during reencryption).
    pub kind: String,
    /// Where the data starts on the device, bytes.
    pub offset: u64,
    pub size: SegmentSize,
    /// The encryption sector size (512..4096); the mapping's size is a multiple of it.
    pub sector_size: u32,
    pub encryption: String,
    /// With authenticated encryption (dm-integrity below dm-crypt).
    pub integrity: bool,
}

/// One token (`tokens`): what may unlock a keyslot instead of a passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    /// `systemd-tpm2`, `systemd-fido2`, `systemd-pkcs11`, `clevis`, ...
    pub kind: String,
    pub keyslots: Vec<String>,
    /// `systemd-tpm2`'s `tpm2-pin`; fido2's `fido2-clientPin-required` or
    /// `fido2-up-required`/`fido2-uv-required`: unlocking needs a person.
    pub needs_person: bool,
}

impl Token {
    /// Can `cryptsetup --token-only` unlock with it and nobody there? Only a `systemd-tpm2`
    /// token without a PIN: fido2 needs a touch, pkcs11 a PIN, and clevis (Tang, TPM2)
    /// tokens are opened by clevis's own tools, which cryptsetup's token plugins do not call.
    pub fn unattended(&self) -> bool {
        self.kind == "systemd-tpm2" && !self.needs_person && !self.keyslots.is_empty()
    }
}

/// What the LUKS2 header says, from its binary part and JSON area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Luks2 {
    pub header: BinHeader,
    /// Data segments, by id.
    pub segments: Vec<Segment>,
    pub tokens: Vec<Token>,
    pub keyslots: usize,
    /// `config.requirements.mandatory`: features cryptsetup must understand (an
    /// interrupted reencryption is one).
    pub requirements: Vec<String>,
}

/// Why a LUKS2 header is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LuksError {
    Header(HeaderError),
    /// The JSON area: not JSON, or a field missing or of the wrong type.
    Json(String),
}

impl std::fmt::Display for LuksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LuksError::Header(e) => write!(f, "{e}"),
            LuksError::Json(e) => write!(f, "LUKS2 JSON area: {e}"),
        }
    }
}

fn json_err(what: impl Into<String>) -> LuksError {
    LuksError::Json(what.into())
}

/// A JSON value that LUKS2 writes as a decimal string (`"16777216"`).
fn str_u64(v: Option<&Value>, what: &str) -> Result<u64, LuksError> {
    v.and_then(Value::as_str)
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| json_err(format!("{what}: not a decimal string")))
}

fn object<'a>(root: &'a Value, key: &str) -> Result<&'a Map<String, Value>, LuksError> {
    root.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| json_err(format!("no object {key}")))
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Parses a header copy: `area` holds the copy from its first byte, at least its
/// `hdr_size`; `at` is where it was read on the device. Checks the JSON area against the
/// binary header (`config.json_size` is `hdr_size` less 4 KiB).
pub fn parse(area: &[u8], at: u64) -> Result<Luks2, LuksError> {
    let header = bin_header(area, at).map_err(LuksError::Header)?;
    let end =
        usize::try_from(header.hdr_size).map_err(|_| LuksError::Header(HeaderError::Short))?;
    let json = area
        .get(BIN_LEN..end)
        .ok_or(LuksError::Header(HeaderError::Short))?;
    let text_end = json.iter().position(|b| *b == 0).unwrap_or(json.len());
    let text = json.get(..text_end).unwrap_or_default();
    let root: Value =
        serde_json::from_slice(text).map_err(|e| json_err(format!("not JSON: {e}")))?;
    let config = root
        .get("config")
        .ok_or_else(|| json_err("no object config"))?;
    let json_size = str_u64(config.get("json_size"), "config.json_size")?;
    if Some(json_size) != header.hdr_size.checked_sub(BIN_LEN as u64) {
        return Err(json_err(format!(
            "config.json_size {json_size} does not match the header size {}",
            header.hdr_size
        )));
    }
    let requirements = config
        .get("requirements")
        .and_then(|r| r.get("mandatory"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut segments = Vec::new();
    for (id, s) in object(&root, "segments")? {
        let what = |f: &str| format!("segments.{id}.{f}");
        let kind = s
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| json_err(what("type")))?;
        let size = match s.get("size").and_then(Value::as_str) {
            Some("dynamic") => SegmentSize::Dynamic,
            _ => SegmentSize::Fixed(str_u64(s.get("size"), &what("size"))?),
        };
        let sector_size = match kind {
            "crypt" => s
                .get("sector_size")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (512..=4096).contains(n) && n.is_power_of_two())
                .ok_or_else(|| json_err(what("sector_size")))?,
            _ => 512,
        };
        segments.push(Segment {
            id: id.clone(),
            kind: kind.to_string(),
            offset: str_u64(s.get("offset"), &what("offset"))?,
            size,
            sector_size,
            encryption: s
                .get("encryption")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            integrity: s.get("integrity").is_some(),
        });
    }
    let mut tokens = Vec::new();
    if let Some(map) = root.get("tokens").and_then(Value::as_object) {
        for (id, t) in map {
            let kind = t
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let keyslots = t
                .get("keyslots")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let needs_person = flag(t, "tpm2-pin")
                || flag(t, "fido2-clientPin-required")
                || flag(t, "fido2-up-required")
                || flag(t, "fido2-uv-required")
                || kind == "systemd-fido2"
                || kind == "systemd-pkcs11";
            tokens.push(Token {
                id: id.clone(),
                kind,
                keyslots,
                needs_person,
            });
        }
    }
    let keyslots = object(&root, "keyslots")?.len();
    Ok(Luks2 {
        header,
        segments,
        tokens,
        keyslots,
        requirements,
    })
}

/// Why a mapping is not grown, from the header alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `config.requirements.mandatory` is not empty (e.g. a reencryption in progress).
    Requirements(Vec<String>),
    /// Not exactly one data segment.
    Segments(usize),
    /// The segment is not `crypt` (a reencryption's `linear` step).
    NotCrypt(String),
    /// A fixed-size segment does not follow its device.
    FixedSize(u64),
    /// dm-integrity below dm-crypt: its own resize, not done here.
    Integrity,
    /// The data starts past the device's end.
    OffsetPastEnd { offset: u64, device: u64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Requirements(r) => write!(
                f,
                "mandatory requirements {r:?} (a reencryption in progress?)"
            ),
            Refusal::Segments(n) => write!(f, "{n} data segments, not one"),
            Refusal::NotCrypt(k) => write!(f, "the data segment is {k}, not crypt"),
            Refusal::FixedSize(n) => write!(f, "the data segment has a fixed size ({n} bytes)"),
            Refusal::Integrity => write!(
                f,
                "authenticated encryption (dm-integrity): not resized here"
            ),
            Refusal::OffsetPastEnd { offset, device } => {
                write!(
                    f,
                    "the data starts at byte {offset}, past the device's {device} bytes"
                )
            }
        }
    }
}

impl Luks2 {
    /// The one crypt segment a mapping can be grown with.
    pub fn segment(&self) -> Result<&Segment, Refusal> {
        if !self.requirements.is_empty() {
            return Err(Refusal::Requirements(self.requirements.clone()));
        }
        let [s] = self.segments.as_slice() else {
            return Err(Refusal::Segments(self.segments.len()));
        };
        if s.kind != "crypt" {
            return Err(Refusal::NotCrypt(s.kind.clone()));
        }
        if let SegmentSize::Fixed(n) = s.size {
            return Err(Refusal::FixedSize(n));
        }
        if s.integrity {
            return Err(Refusal::Integrity);
        }
        Ok(s)
    }

    /// The size, in bytes, the open mapping has when it fills a device of `device` bytes:
    /// the device less the data offset, rounded down to the encryption sector size (what
    /// `cryptsetup resize` without `--size` gives).
    pub fn target_bytes(&self, device: u64) -> Result<u64, Refusal> {
        let s = self.segment()?;
        let room = device.checked_sub(s.offset).ok_or(Refusal::OffsetPastEnd {
            offset: s.offset,
            device,
        })?;
        let rem = room.checked_rem(u64::from(s.sector_size)).unwrap_or(0);
        Ok(room.saturating_sub(rem))
    }

    /// The tokens that unlock without anyone there ([`Token::unattended`]).
    pub fn unattended_tokens(&self) -> impl Iterator<Item = &Token> {
        self.tokens.iter().filter(|t| t.unattended())
    }
}

/// Reads a device's LUKS2 header through `read(offset, len)` (the bytes at `offset`, or an
/// error when the device cannot give them): the primary at 0 and, as cryptsetup does, the
/// secondary at each allowed offset; the valid copy, or of two the one with the higher
/// `seqid`. The primary's [`HeaderError`] (`NotLuks`, `Luks1`) when neither is valid, so a
/// caller can name what the device holds.
pub fn read<E>(read: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>, E>) -> Result<Luks2, LuksError> {
    let mut copy = |at: u64| -> Result<Luks2, LuksError> {
        let head = read(at, BIN_LEN).map_err(|_| LuksError::Header(HeaderError::Short))?;
        let h = bin_header(&head, at).map_err(LuksError::Header)?;
        let len = usize::try_from(h.hdr_size).map_err(|_| LuksError::Header(HeaderError::Short))?;
        let area = read(at, len).map_err(|_| LuksError::Header(HeaderError::Short))?;
        parse(&area, at)
    };
    let primary = copy(0);
    let secondary = match &primary {
        // The secondary sits right after the primary: where the primary says.
        Ok(p) => copy(p.header.hdr_size),
        // Else search where it may be, as cryptsetup does for a damaged primary.
        Err(_) => SECONDARY_OFFSETS
            .iter()
            .map(|at| copy(*at))
            .find(|c| c.as_ref().is_ok_and(|l| l.header.secondary))
            .unwrap_or(Err(LuksError::Header(HeaderError::NotLuks))),
    };
    match (primary, secondary) {
        (Ok(p), Ok(s)) if s.header.seqid > p.header.seqid => Ok(s),
        (Ok(p), _) => Ok(p),
        (Err(_), Ok(s)) => Ok(s),
        (Err(e), Err(_)) => Err(e),
    }
}

/// One `rd.luks.key=` (or `luks.key=`) of the kernel command line, as systemd's
/// cryptsetup generator reads it: `PATH`, `UUID=PATH`, each optionally `:KEYDEV`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyArg {
    /// The volume it is for (a LUKS UUID), or `None` for every volume.
    pub uuid: Option<String>,
    pub path: String,
    /// The device the key file is on; `None`: in the initramfs.
    pub keydev: Option<String>,
}

/// The `rd.luks.key=` and `luks.key=` arguments of a kernel command line, in order (the
/// words as [`crate::cmdline::parse`] finds them; their values read here).
pub fn key_args(cmdline: &str) -> Vec<KeyArg> {
    let mut out = Vec::new();
    for value in crate::cmdline::parse(cmdline).luks_keys {
        // `UUID=PATH`: a path starts with `/`, a UUID never does.
        let (uuid, rest) = match value.split_once('=') {
            Some((u, p)) if !u.starts_with('/') && !u.is_empty() => (Some(u.to_string()), p),
            _ => (None, value.as_str()),
        };
        let (path, keydev) = match rest.split_once(':') {
            Some((p, d)) => (p, Some(d.to_string())),
            None => (rest, None),
        };
        if path.is_empty() {
            continue;
        }
        out.push(KeyArg {
            uuid,
            path: path.to_string(),
            keydev,
        });
    }
    out
}

/// Does a UUID as the command line gives it (any case, dashes or not, optional `luks-`)
/// name the volume with header UUID `uuid`?
pub fn same_uuid(given: &str, uuid: &str) -> bool {
    let norm = |s: &str| -> String {
        s.trim_start_matches("luks-")
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let g = norm(given);
    !g.is_empty() && g == norm(uuid)
}

/// The key argument for the volume `uuid`: one naming it, else one for every volume.
pub fn key_for<'a>(args: &'a [KeyArg], uuid: &str) -> Option<&'a KeyArg> {
    args.iter()
        .find(|k| k.uuid.as_deref().is_some_and(|u| same_uuid(u, uuid)))
        .or_else(|| args.iter().find(|k| k.uuid.is_none()))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;

    pub const UUID_TEXT: &str = "9e59448b-e229-4593-baca-628a759a6b8f";

    /// The JSON area cryptsetup 2.6.1 writes for `luksFormat --type luks2 --pbkdf pbkdf2`
    /// (keyslot and digest details cut to what this module reads), with `extra` merged into
    /// the top level.
    pub fn json(segment: &str, tokens: &str, config_extra: &str) -> String {
        format!(
            r#"{{"keyslots":{{"0":{{"type":"luks2","key_size":64,"af":{{"type":"luks1","stripes":4000,"hash":"sha256"}},"area":{{"type":"raw","offset":"32768","size":"258048","encryption":"aes-xts-plain64","key_size":64}},"kdf":{{"type":"pbkdf2","hash":"sha256","iterations":1000,"salt":"qVt92A6EiwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}}}}},"tokens":{{{tokens}}},"segments":{{"0":{segment}}},"digests":{{"0":{{"type":"pbkdf2","keyslots":["0"],"segments":["0"],"hash":"sha256","iterations":1000,"salt":"AAAA","digest":"AAAA"}}}},"config":{{"json_size":"12288","keyslots_size":"16744448"{config_extra}}}}}"#
        )
    }

    pub const SEGMENT: &str = r#"{"type":"crypt","offset":"16777216","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":4096}"#;

    /// A header copy of `hdr_size` bytes at device offset `at` with `json` in its area.
    pub fn copy(at: u64, hdr_size: u64, seqid: u64, json: &str) -> Vec<u8> {
        let mut b = vec![0u8; hdr_size as usize];
        b[..6].copy_from_slice(if at == 0 {
            &MAGIC_PRIMARY
        } else {
            &MAGIC_SECONDARY
        });
        b[VERSION..VERSION + 2].copy_from_slice(&2u16.to_be_bytes());
        b[HDR_SIZE..HDR_SIZE + 8].copy_from_slice(&hdr_size.to_be_bytes());
        b[SEQID..SEQID + 8].copy_from_slice(&seqid.to_be_bytes());
        b[LABEL..LABEL + 4].copy_from_slice(b"root");
        b[72..78].copy_from_slice(b"sha256");
        b[UUID..UUID + 36].copy_from_slice(UUID_TEXT.as_bytes());
        b[HDR_OFFSET..HDR_OFFSET + 8].copy_from_slice(&at.to_be_bytes());
        b[BIN_LEN..BIN_LEN + json.len()].copy_from_slice(json.as_bytes());
        b
    }

    /// A device image of `len` bytes: the primary (seqid `p`) and secondary (`s`) copies.
    pub fn device(len: usize, p: u64, s: u64, json: &str) -> Vec<u8> {
        let mut d = vec![0u8; len];
        let a = copy(0, 16384, p, json);
        let b = copy(16384, 16384, s, json);
        d[..16384].copy_from_slice(&a);
        d[16384..32768].copy_from_slice(&b);
        d
    }

    fn reader(d: &[u8]) -> impl FnMut(u64, usize) -> Result<Vec<u8>, ()> + '_ {
        move |off, len| {
            let off = usize::try_from(off).map_err(|_| ())?;
            d.get(off..off + len).map(<[u8]>::to_vec).ok_or(())
        }
    }

    #[test]
    fn binary_headers() {
        let good = copy(0, 16384, 3, "{}");
        let h = bin_header(&good, 0).unwrap();
        assert_eq!(
            (h.secondary, h.hdr_size, h.seqid, h.uuid(), h.label()),
            (false, 16384, 3, UUID_TEXT, "root"),
            "case primary"
        );
        let mut luks1 = good.clone();
        luks1[VERSION..VERSION + 2].copy_from_slice(&1u16.to_be_bytes());
        let mut v3 = good.clone();
        v3[VERSION + 1] = 3;
        let mut size = good.clone();
        size[HDR_SIZE..HDR_SIZE + 8].copy_from_slice(&12288u64.to_be_bytes());
        let mut big = good.clone();
        big[HDR_SIZE..HDR_SIZE + 8].copy_from_slice(&(8u64 << 20).to_be_bytes());
        let mut moved = good.clone();
        moved[HDR_OFFSET + 7] = 1;
        for (case, bytes, at, want) in [
            ("zeros", &vec![0u8; 4096][..], 0, HeaderError::NotLuks),
            ("LUKS1", &luks1[..], 0, HeaderError::Luks1),
            ("version 3", &v3[..], 0, HeaderError::Version(3)),
            ("hdr_size 12 KiB", &size[..], 0, HeaderError::HdrSize(12288)),
            ("hdr_size 8 MiB", &big[..], 0, HeaderError::HdrSize(8 << 20)),
            ("hdr_offset 1", &moved[..], 0, HeaderError::Offset(1)),
            (
                "primary read as a secondary",
                &good[..],
                16384,
                HeaderError::Offset(0),
            ),
            ("cut at 5", &good[..5], 0, HeaderError::Short),
            ("cut at 4095", &good[..4095], 0, HeaderError::Short),
        ] {
            assert_eq!(bin_header(bytes, at), Err(want), "case {case}");
        }
    }

    #[test]
    fn json_areas() {
        let tpm =
            r#""0":{"type":"systemd-tpm2","keyslots":["1"],"tpm2-pcrs":[7],"tpm2-pin":false}"#;
        let tpm_pin = r#""0":{"type":"systemd-tpm2","keyslots":["1"],"tpm2-pin":true}"#;
        let fido = r#""1":{"type":"systemd-fido2","keyslots":["2"]}"#;
        let clevis = r#""2":{"type":"clevis","keyslots":["1"],"jwe":{}}"#;
        let reenc = r#","requirements":{"mandatory":["online-reencrypt-v2"]}"#;
        let fixed = r#"{"type":"crypt","offset":"16777216","size":"1048576","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":512}"#;
        let integrity = r#"{"type":"crypt","offset":"16777216","size":"dynamic","iv_tweak":"0","encryption":"aes-gcm-random","sector_size":512,"integrity":{"type":"aead","journal_encryption":"none","journal_integrity":"none"}}"#;
        let linear = r#"{"type":"linear","offset":"16777216","size":"dynamic"}"#;
        let gib = 1u64 << 30;
        for (case, js, want_unattended, want_target) in [
            (
                "plain",
                json(SEGMENT, "", ""),
                0,
                Ok(gib - 16 * 1024 * 1024),
            ),
            (
                "tpm2 token",
                json(SEGMENT, tpm, ""),
                1,
                Ok(gib - 16 * 1024 * 1024),
            ),
            (
                "tpm2 with pin, fido2, clevis",
                json(SEGMENT, &format!("{tpm_pin},{fido},{clevis}"), ""),
                0,
                Ok(gib - 16 * 1024 * 1024),
            ),
            (
                "reencryption",
                json(SEGMENT, "", reenc),
                0,
                Err(Refusal::Requirements(vec!["online-reencrypt-v2".into()])),
            ),
            (
                "fixed size",
                json(fixed, "", ""),
                0,
                Err(Refusal::FixedSize(1 << 20)),
            ),
            (
                "integrity",
                json(integrity, "", ""),
                0,
                Err(Refusal::Integrity),
            ),
            (
                "linear",
                json(linear, "", ""),
                0,
                Err(Refusal::NotCrypt("linear".into())),
            ),
        ] {
            let l =
                parse(&copy(0, 16384, 1, &js), 0).unwrap_or_else(|e| panic!("case {case}: {e}"));
            assert_eq!(
                l.unattended_tokens().count(),
                want_unattended,
                "case {case}: {:?}",
                l.tokens
            );
            assert_eq!(l.target_bytes(gib), want_target, "case {case}");
            assert_eq!(l.keyslots, 1, "case {case}");
        }
        // The target is rounded down to the encryption sector size, never past the device.
        let l = parse(&copy(0, 16384, 1, &json(SEGMENT, "", "")), 0).unwrap();
        assert_eq!(
            l.target_bytes(16 * 1024 * 1024 + 4096 + 511),
            Ok(4096),
            "case rounding"
        );
        assert_eq!(
            l.target_bytes(1000),
            Err(Refusal::OffsetPastEnd {
                offset: 16 << 20,
                device: 1000
            }),
            "case device smaller than the offset"
        );
        for (case, js) in [
            ("not JSON", "{".to_string()),
            ("empty", String::new()),
            (
                "json_size mismatch",
                json(SEGMENT, "", "").replace("12288", "4096"),
            ),
            (
                "offset not a string",
                json(SEGMENT, "", "").replace("\"16777216\"", "16777216"),
            ),
            (
                "sector size 1000",
                json(SEGMENT, "", "").replace("4096}", "1000}"),
            ),
            (
                "no segments",
                json(SEGMENT, "", "").replace("\"segments\"", "\"x\""),
            ),
            (
                "no keyslots",
                json(SEGMENT, "", "").replace("\"keyslots\"", "\"y\""),
            ),
        ] {
            assert!(
                matches!(parse(&copy(0, 16384, 1, &js), 0), Err(LuksError::Json(_))),
                "case {case}"
            );
        }
        assert_eq!(
            parse(&copy(0, 16384, 1, "{}")[..8192], 0),
            Err(LuksError::Header(HeaderError::Short)),
            "case area shorter than hdr_size"
        );
    }

    #[test]
    fn primary_and_secondary() {
        let js = json(SEGMENT, "", "");
        for (case, p, s, damage, want_seqid, want_secondary) in [
            ("both, same seqid", 5, 5, None, Some(5), false),
            ("secondary newer", 5, 6, None, Some(6), true),
            ("primary newer", 7, 6, None, Some(7), false),
            ("primary magic gone", 5, 5, Some(0), Some(5), true),
            ("primary JSON broken", 5, 5, Some(BIN_LEN), Some(5), true),
            (
                "secondary broken",
                5,
                5,
                Some(16384 + BIN_LEN),
                Some(5),
                false,
            ),
            ("both broken", 5, 5, Some(usize::MAX), None, false),
        ] {
            let mut d = device(1 << 20, p, s, &js);
            match damage {
                Some(usize::MAX) => {
                    d[0] = b'X';
                    d[16384] = b'X';
                }
                Some(at) => d[at] = b'X',
                None => {}
            }
            let got = read(&mut reader(&d));
            assert_eq!(
                got.as_ref()
                    .ok()
                    .map(|l| (l.header.seqid, l.header.secondary)),
                want_seqid.map(|q| (q, want_secondary)),
                "case {case}: {got:?}"
            );
        }
        let mut luks1 = device(1 << 20, 1, 1, &js);
        luks1[VERSION + 1] = 1;
        luks1[16384] = b'X';
        assert_eq!(
            read(&mut reader(&luks1)),
            Err(LuksError::Header(HeaderError::Luks1)),
            "case LUKS1"
        );
        assert_eq!(
            read(&mut reader(&[0u8; 100])),
            Err(LuksError::Header(HeaderError::Short)),
            "case tiny device"
        );
    }

    #[test]
    fn key_arguments() {
        let u = UUID_TEXT;
        for (case, line, want) in [
            ("none", "root=/dev/mapper/x ro".to_string(), None),
            (
                "plain path",
                "rd.luks.key=/etc/k".to_string(),
                Some(("/etc/k", None)),
            ),
            ("luks.key", "luks.key=/k".to_string(), Some(("/k", None))),
            (
                "for this uuid",
                format!("rd.luks.key=other=/a rd.luks.key={u}=/b"),
                Some(("/b", None)),
            ),
            (
                "uuid without dashes, upper case",
                format!("rd.luks.key={}=/c", u.replace('-', "").to_uppercase()),
                Some(("/c", None)),
            ),
            (
                "luks- prefix",
                format!("rd.luks.key=luks-{u}=/d"),
                Some(("/d", None)),
            ),
            (
                "only another volume's",
                "rd.luks.key=1234=/e".to_string(),
                None,
            ),
            (
                "on a key device",
                "rd.luks.key=/k:UUID=abcd".to_string(),
                Some(("/k", Some("UUID=abcd"))),
            ),
            (
                "empty path",
                "rd.luks.key= rd.luks.key=/f".to_string(),
                Some(("/f", None)),
            ),
            (
                "quoted",
                "\"rd.luks.key=/a b\"".to_string(),
                Some(("/a b", None)),
            ),
        ] {
            let args = key_args(&line);
            let got = key_for(&args, u).map(|k| (k.path.as_str(), k.keydev.as_deref()));
            assert_eq!(got, want, "case {case}: {args:?}");
        }
    }
}
