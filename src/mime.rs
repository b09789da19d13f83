//! User data as a list of parts: RFC 2045/2046 MIME (`multipart/*`, nested), the two
//! transfer encodings (`base64`, `quoted-printable`), and gzip-compressed user data (RFC 1952)
//! unpacked first — what cloud-init's `user_data.py` accepts and `cloud-init devel make-mime`
//! and OpenStack Heat produce. The one MIME reader of the crate (`cloudconfig` uses it too).
//!
//! Not supported: RFC 2231 parameter continuations and charsets (`filename*0=`), RFC 2047
//! encoded words, `message/rfc822` parts (a leaf like any other), cloud-init's `#include` and
//! `#cloud-config-archive` expansion (reported as their own types), the gzip CRC (the length
//! is checked; deflate itself is checked by its own structure).
//!
//! A multipart must be whole: a boundary on no delimiter line, or no close delimiter, is an
//! error (Python's `email`, and so cloud-init, take the first as no parts and the second as a
//! last part cut wherever the data ends; docs/apply.md).
//!
//! Panic contract: [`split`] never panics on any input; every index is a checked `get`, every
//! count capped ([`MAX_DEPTH`], [`MAX_PARTS`], [`MAX_UNPACKED`]). Pure: bytes in, parts out.
#![deny(clippy::arithmetic_side_effects)]

use serde::{Deserialize, Serialize};

/// Nesting of `multipart/*` inside `multipart/*` beyond which splitting fails.
pub const MAX_DEPTH: usize = 8;
/// Leaf parts beyond which splitting fails.
pub const MAX_PARTS: usize = 256;
/// Largest gzip-unpacked user data (the cap on user data itself, docs/context.md).
pub const MAX_UNPACKED: usize = crate::caps::USER_DATA_BYTES;

/// One leaf part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The declared `type/subtype`, lower case, without parameters. For data that is not MIME
    /// at all, the type its first bytes give (see [`type_of_payload`]).
    pub content_type: String,
    /// `Content-Disposition: ...; filename=` (else `Content-Type: ...; name=`), as given.
    pub filename: Option<String>,
    /// The payload, transfer encoding undone (the line break before a boundary is the
    /// boundary's, RFC 2046 §5.1.1).
    pub payload: Vec<u8>,
}

impl Part {
    /// The type cloud-init acts on: the declared one, except that `text/plain`,
    /// `text/x-not-multipart` and `application/octet-stream` are refined from the payload's
    /// first bytes (cloud-init's `TYPE_NEEDED`).
    pub fn effective_type(&self) -> &str {
        match self.content_type.as_str() {
            "text/plain" | "text/x-not-multipart" | "application/octet-stream" | "" => {
                type_of_payload(&self.payload).unwrap_or(self.content_type.as_str())
            }
            other => other,
        }
    }
}

/// Why user data could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MimeError {
    /// `multipart/*` nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// More than [`MAX_PARTS`] leaf parts.
    TooManyParts,
    /// gzip data that does not unpack (the reason), or unpacks beyond [`MAX_UNPACKED`].
    Gzip(String),
    /// A `multipart/*` type without a usable `boundary=` parameter.
    NoBoundary,
    /// A `multipart/*` whose boundary (shown) is on no delimiter line: no part can be found,
    /// and dropping the whole document silently would hide that.
    BoundaryNotFound(String),
    /// A `multipart/*` that ends without its close delimiter `--boundary--` (shown): the
    /// document was cut short, and its last part may be a script cut mid-line.
    Unterminated(String),
}

impl std::fmt::Display for MimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MimeError::TooDeep => write!(f, "multipart nested more than {MAX_DEPTH} deep"),
            MimeError::TooManyParts => write!(f, "more than {MAX_PARTS} MIME parts"),
            MimeError::Gzip(why) => write!(f, "gzip: {why}"),
            MimeError::NoBoundary => write!(f, "multipart without a boundary parameter"),
            MimeError::BoundaryNotFound(b) => write!(
                f,
                "multipart boundary \"{b}\" is on no delimiter line: no part found, nothing applied"
            ),
            MimeError::Unterminated(b) => write!(
                f,
                "multipart ends without its close delimiter \"--{b}--\" (cut short?): \
                 nothing in it is applied"
            ),
        }
    }
}

/// The MIME type a payload's first bytes mean to cloud-init (`#!` a shell script and so on).
pub fn type_of_payload(payload: &[u8]) -> Option<&'static str> {
    Some(match detect_payload_type(payload) {
        PayloadType::Script => "text/x-shellscript",
        PayloadType::CloudConfig => {
            if payload
                .trim_ascii_start()
                .starts_with(b"#cloud-config-archive")
            {
                "text/cloud-config-archive"
            } else {
                "text/cloud-config"
            }
        }
        PayloadType::CloudBoothook => "text/cloud-boothook",
        PayloadType::Include => "text/x-include-url",
        PayloadType::PartHandler => "text/part-handler",
        PayloadType::Gzip => "application/gzip",
        _ => return None,
    })
}

/// Splits user data into its leaf parts, in document order. Gzip is unpacked first; data
/// that is not MIME is one part typed from its first bytes (`text/plain` if nothing fits);
/// empty data is no part.
pub fn split(data: &[u8]) -> Result<Vec<Part>, MimeError> {
    let unpacked;
    let data = if data.starts_with(&[0x1f, 0x8b]) {
        unpacked = gunzip(data, MAX_UNPACKED)?;
        unpacked.as_slice()
    } else {
        data
    };
    if data.trim_ascii().is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    if looks_like_mime(data) {
        entity(data, 0, &mut out)?;
    } else {
        out.push(Part {
            content_type: type_of_payload(data).unwrap_or("text/plain").to_string(),
            filename: None,
            payload: data.to_vec(),
        });
    }
    Ok(out)
}

/// Does the data start with a header block that has a `Content-Type` (an mbox `From ` line
/// first is allowed, as in cloud-init's test emails)?
fn looks_like_mime(data: &[u8]) -> bool {
    let (headers, _) = parse_entity(data);
    headers.iter().any(|(n, _)| n == "content-type")
}

/// Splits an entity into its headers (names lower case, folded lines joined) and its body.
/// Header lines end at the first empty line; a first line that is not a header (an mbox
/// `From ` line) is skipped.
fn parse_entity(data: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut rest = data;
    let mut first = true;
    loop {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(at) => (
                rest.get(..at).unwrap_or_default(),
                rest.get(at.saturating_add(1)..).unwrap_or_default(),
            ),
            None => (rest, &[][..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return (headers, next);
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(String::from_utf8_lossy(line).trim());
            }
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = line.get(..colon).unwrap_or_default();
            let value = line.get(colon.saturating_add(1)..).unwrap_or_default();
            if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
                if !(first && line.starts_with(b"From ")) {
                    // Not a header: the header block is over and this is body.
                    return (headers, rest);
                }
            } else {
                headers.push((
                    String::from_utf8_lossy(name).to_ascii_lowercase(),
                    String::from_utf8_lossy(value).trim().to_string(),
                ));
            }
        } else if !(first && line.starts_with(b"From ")) {
            return (headers, rest);
        }
        first = false;
        if next.is_empty() {
            return (headers, next);
        }
        rest = next;
    }
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `type/subtype; a=b; c="d"` → (`type/subtype` lower case, parameters with lower-case names).
fn parse_params(value: &str) -> (String, Vec<(String, String)>) {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ';' && !quoted {
            items.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    items.push(current);
    let mut it = items.into_iter();
    let main = it.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = it
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    (main, params)
}

fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One entity (message or part): recurses into `multipart/*`, else pushes a leaf.
fn entity(data: &[u8], depth: usize, out: &mut Vec<Part>) -> Result<(), MimeError> {
    let (headers, body) = parse_entity(data);
    let (ctype, params) = parse_params(header(&headers, "content-type").unwrap_or("text/plain"));
    if ctype.starts_with("multipart/") {
        if depth >= MAX_DEPTH {
            return Err(MimeError::TooDeep);
        }
        let boundary = param(&params, "boundary")
            .filter(|b| !b.is_empty())
            .ok_or(MimeError::NoBoundary)?;
        let shown = || crate::text::show(boundary);
        let parts = match multipart_bodies(body, boundary.as_bytes()) {
            Bodies::Closed(parts) => parts,
            Bodies::Unterminated(_) => return Err(MimeError::Unterminated(shown())),
            Bodies::NoDelimiter => return Err(MimeError::BoundaryNotFound(shown())),
        };
        for part in parts {
            entity(part, depth.saturating_add(1), out)?;
        }
        return Ok(());
    }
    if out.len() >= MAX_PARTS {
        return Err(MimeError::TooManyParts);
    }
    let encoding = header(&headers, "content-transfer-encoding")
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let payload = match encoding.as_str() {
        "base64" => crate::base64::lenient(body),
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.to_vec(),
    };
    let (_, disposition) = parse_params(header(&headers, "content-disposition").unwrap_or(""));
    let filename = param(&disposition, "filename")
        .or_else(|| param(&params, "name"))
        .map(str::to_string);
    out.push(Part {
        content_type: ctype,
        filename,
        payload,
    });
    Ok(())
}

/// What a multipart body holds ([`multipart_bodies`]).
#[derive(Debug, PartialEq, Eq)]
enum Bodies<'a> {
    /// The parts, the close delimiter seen.
    Closed(Vec<&'a [u8]>),
    /// No close delimiter: the parts up to the end of the data, the last one unterminated.
    Unterminated(Vec<&'a [u8]>),
    /// Not one delimiter line.
    NoDelimiter,
}

/// The bodies between the delimiter lines `--boundary` of a multipart body (RFC 2046 §5.1.1):
/// the preamble before the first and the epilogue after `--boundary--` are dropped, and the
/// line break before each delimiter belongs to the delimiter. Without the close delimiter the
/// last part runs to the end of the data, as Python's email parser has it (and cloud-init
/// would run it); the caller refuses that ([`MimeError::Unterminated`]), as it refuses a body
/// with no delimiter at all.
fn multipart_bodies<'a>(body: &'a [u8], boundary: &[u8]) -> Bodies<'a> {
    let mut parts = Vec::new();
    // Start of the current part's content, once the first delimiter has been seen.
    let mut open: Option<usize> = None;
    let mut at = 0usize;
    while at < body.len() {
        let line_end = body
            .get(at..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            .map_or(body.len(), |p| at.saturating_add(p).saturating_add(1));
        let line = body.get(at..line_end).unwrap_or_default();
        let after = line
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary));
        if let Some(after) = after {
            let close = after.starts_with(b"--");
            let tail = if close {
                after.get(2..).unwrap_or_default()
            } else {
                after
            };
            if tail.trim_ascii().is_empty() {
                if let Some(start) = open {
                    // The CRLF or LF before the delimiter is the delimiter's.
                    let mut end = at;
                    if end > start && body.get(end.saturating_sub(1)) == Some(&b'\n') {
                        end = end.saturating_sub(1);
                        if end > start && body.get(end.saturating_sub(1)) == Some(&b'\r') {
                            end = end.saturating_sub(1);
                        }
                    }
                    parts.push(body.get(start..end).unwrap_or_default());
                }
                if close {
                    return Bodies::Closed(parts);
                }
                open = Some(line_end);
            }
        }
        at = line_end;
    }
    match open {
        Some(start) => {
            parts.push(body.get(start..).unwrap_or_default());
            Bodies::Unterminated(parts)
        }
        None => Bodies::NoDelimiter,
    }
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` is a byte, `=` at a line end a soft break, and
/// trailing whitespace on a line is dropped. A malformed `=` stays as it is.
pub fn decode_quoted_printable(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut lines = text.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line).trim_ascii_end();
        let mut rest = line;
        let mut soft = false;
        while let Some((&b, tail)) = rest.split_first() {
            if b != b'=' {
                out.push(b);
                rest = tail;
                continue;
            }
            if tail.is_empty() {
                soft = true;
                break;
            }
            let hex = |c: u8| {
                char::from(c)
                    .to_digit(16)
                    .and_then(|d| u8::try_from(d).ok())
            };
            match (
                tail.first().copied().and_then(hex),
                tail.get(1).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h.wrapping_shl(4) | l);
                    rest = tail.get(2..).unwrap_or_default();
                }
                _ => {
                    out.push(b);
                    rest = tail;
                }
            }
        }
        if !soft && lines.peek().is_some() {
            out.push(b'\n');
        }
    }
    out
}

/// Unpacks a gzip member (RFC 1952) to at most `limit` bytes. The header's optional fields
/// are skipped; the trailer's length must match; the CRC is not checked.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, MimeError> {
    let bad = |why: &str| MimeError::Gzip(why.to_string());
    let header: [u8; 10] = data
        .get(..10)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad("truncated header"))?;
    let [0x1f, 0x8b, method, flags, _, _, _, _, _, _] = header else {
        return Err(bad("not gzip"));
    };
    if method != 8 {
        return Err(bad("not deflate"));
    }
    let mut at = 10usize;
    if flags & 0x04 != 0 {
        let len = data
            .get(at..at.saturating_add(2))
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(u16::from_le_bytes)
            .ok_or_else(|| bad("truncated extra field"))?;
        at = at.saturating_add(2).saturating_add(usize::from(len));
    }
    for flag in [0x08u8, 0x10] {
        if flags & flag != 0 {
            let nul = data
                .get(at..)
                .and_then(|r| r.iter().position(|&b| b == 0))
                .ok_or_else(|| bad("truncated name or comment"))?;
            at = at.saturating_add(nul).saturating_add(1);
        }
    }
    if flags & 0x02 != 0 {
        at = at.saturating_add(2);
    }
    let stream = data.get(at..).ok_or_else(|| bad("truncated header"))?;
    let out =
        miniz_oxide::inflate::decompress_to_vec_with_limit(stream, limit).map_err(|e| {
            match e.status {
                miniz_oxide::inflate::TINFLStatus::HasMoreOutput => {
                    MimeError::Gzip(format!("unpacks to more than {limit} bytes"))
                }
                s => MimeError::Gzip(format!("bad deflate data ({s:?})")),
            }
        })?;
    // ISIZE, the last 4 bytes: the unpacked length modulo 2^32.
    let isize = data
        .len()
        .checked_sub(4)
        .and_then(|s| data.get(s..))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| bad("truncated trailer"))?;
    if u64::from(isize) != (u64::try_from(out.len()).unwrap_or(u64::MAX) & 0xffff_ffff) {
        return Err(bad("length in the trailer does not match"));
    }
    Ok(out)
}

/// Type of a user-data or vendor-data payload, detected from its first bytes the way
/// cloud-init does (`#!`, `#cloud-config`, MIME, gzip ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadType {
    Empty,
    Script,
    CloudConfig,
    CloudBoothook,
    Include,
    PartHandler,
    Mime,
    Gzip,
    Json,
    Other,
}

/// Classifies a payload by its start. Pure; never fails.
pub fn detect_payload_type(data: &[u8]) -> PayloadType {
    let trimmed = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .and_then(|start| data.get(start..))
        .unwrap_or(&[]);
    if trimmed.is_empty() {
        return PayloadType::Empty;
    }
    if data.starts_with(&[0x1f, 0x8b]) {
        return PayloadType::Gzip;
    }
    let starts = |prefix: &str| {
        trimmed
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    if starts("#cloud-config") {
        PayloadType::CloudConfig
    } else if starts("#cloud-boothook") {
        PayloadType::CloudBoothook
    } else if starts("#include") {
        PayloadType::Include
    } else if starts("#part-handler") {
        PayloadType::PartHandler
    } else if starts("#!") {
        PayloadType::Script
    } else if starts("content-type:") || starts("mime-version:") {
        PayloadType::Mime
    } else if starts("{") || starts("[") {
        PayloadType::Json
    } else {
        PayloadType::Other
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn types(parts: &[Part]) -> Vec<(&str, Option<&str>, String)> {
        parts
            .iter()
            .map(|p| {
                (
                    p.content_type.as_str(),
                    p.filename.as_deref(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn not_mime() {
        for (data, want) in [
            ("#!/bin/sh\necho hi\n", Some("text/x-shellscript")),
            ("#cloud-config\na: b\n", Some("text/cloud-config")),
            ("hello", Some("text/plain")),
            ("  \n", None),
        ] {
            let parts = split(data.as_bytes()).unwrap();
            assert_eq!(
                parts.first().map(|p| p.content_type.as_str()),
                want,
                "case {data:?}"
            );
        }
    }

    #[test]
    fn nested_and_encodings() {
        let doc = "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
            preamble\r\n\
            --outer\r\n\
            Content-Type: multipart/alternative; boundary=inner\r\n\r\n\
            --inner\r\n\
            Content-Type: text/x-shellscript\r\n\
            Content-Transfer-Encoding: base64\r\n\
            Content-Disposition: attachment; filename=\"a.sh\"\r\n\r\n\
            IyEvYmluL3NoCmVjaG8g\r\naGkK\r\n\
            --inner--\r\n\
            --outer\r\n\
            Content-Type: text/cloud-config; name=\"b.yaml\"\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\n\
            #cloud-config\r\nruncmd: [ec=\r\nho, caf=C3=A9]   \r\n\
            --outer--\r\nepilogue\r\n";
        let parts = split(doc.as_bytes()).unwrap();
        assert_eq!(
            types(&parts),
            vec![
                (
                    "text/x-shellscript",
                    Some("a.sh"),
                    "#!/bin/sh\necho hi\n".into()
                ),
                (
                    "text/cloud-config",
                    Some("b.yaml"),
                    "#cloud-config\nruncmd: [echo, café]".into()
                ),
            ]
        );
    }

    #[test]
    fn caps_and_garbage() {
        let mut deep = String::new();
        for i in 0..=MAX_DEPTH {
            deep.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"
            ));
        }
        deep.push_str("Content-Type: text/plain\n\nx\n");
        for i in (0..=MAX_DEPTH).rev() {
            deep.push_str(&format!("--b{i}--\n"));
        }
        assert_eq!(split(deep.as_bytes()), Err(MimeError::TooDeep));
        let mut many = String::from("Content-Type: multipart/mixed; boundary=b\n\n");
        for _ in 0..=MAX_PARTS {
            many.push_str("--b\nContent-Type: text/plain\n\nx\n");
        }
        many.push_str("--b--\n");
        assert_eq!(split(many.as_bytes()), Err(MimeError::TooManyParts));
        assert_eq!(
            split(b"Content-Type: multipart/mixed\n\nx"),
            Err(MimeError::NoBoundary)
        );
        for junk in [
            &b"\x1f\x8b"[..],
            b"\x1f\x8b\x08\x1c\0\0\0\0\0\0",
            b"\x1f\x8b\x08\0\0\0\0\0\0\0garbage",
            b"Content-Type: multipart/mixed; boundary=\"\n",
            b"Content-Type:",
            b"=\n\r:",
        ] {
            let _ = split(junk);
        }
        assert_eq!(decode_quoted_printable(b"a=\nb=3D=zz"), b"ab==zz");
    }

    /// Issue 16 items 12 and 13: a boundary that no delimiter line carries, and a document cut
    /// inside its last part, are errors (before, the first gave no part and no error, the
    /// second ran the half script). A close delimiter with nothing after it is fine.
    #[test]
    fn lost_boundaries_and_cut_documents_are_errors() {
        let cut_boundary = "Content-Type: multipart/mixed; boundary=\"===abcdef123456\"\n\n\
            --===abcdef\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n--===abcdef--\n";
        assert_eq!(
            split(cut_boundary.as_bytes()),
            Err(MimeError::BoundaryNotFound("===abcdef123456".into()))
        );
        let cut_part = "Content-Type: multipart/mixed; boundary=B\n\n\
            --B\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho one\n\
            --B\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho started >> /var/tmp/x\necho fin";
        let e = split(cut_part.as_bytes()).unwrap_err();
        assert_eq!(e, MimeError::Unterminated("B".into()));
        assert!(e.to_string().contains("\"--B--\""), "{e}");
        let closed = format!("{}\n--B--", cut_part);
        assert_eq!(split(closed.as_bytes()).map(|p| p.len()), Ok(2));
        // Nested: the inner multipart cut short is the whole document's error.
        let nested = "Content-Type: multipart/mixed; boundary=O\n\n--O\n\
            Content-Type: multipart/alternative; boundary=I\n\n--I\nContent-Type: text/plain\n\nx\n\
            --O--\n";
        assert_eq!(
            split(nested.as_bytes()),
            Err(MimeError::Unterminated("I".into()))
        );
        // A boundary with a newline in it is shown escaped.
        let e = MimeError::BoundaryNotFound(crate::text::show("a\nb"));
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn gzip() {
        // `printf '#!/bin/sh\necho gz\n' | gzip -n | base64`
        let gz = crate::base64::lenient(b"H4sIAAAAAAAAA1NW1E/KzNMvzuBKTc7IV0iv4gIAgDxpgxIAAAA=");
        let parts = split(&gz).unwrap();
        assert_eq!(
            types(&parts),
            vec![("text/x-shellscript", None, "#!/bin/sh\necho gz\n".into())]
        );
        assert!(matches!(gunzip(&gz, 4), Err(MimeError::Gzip(_))));
        let mut bad_len = gz.clone();
        if let Some(last) = bad_len.last_mut() {
            *last ^= 1;
        }
        assert!(gunzip(&bad_len, 100).is_err());
    }
    #[test]
    fn payload_types() {
        let cases: &[(&[u8], PayloadType)] = &[
            (b"", PayloadType::Empty),
            (b"  \n", PayloadType::Empty),
            (b"#!/bin/sh\n", PayloadType::Script),
            (b"#cloud-config\n", PayloadType::CloudConfig),
            (b"#Cloud-Config\n", PayloadType::CloudConfig),
            (b"#cloud-boothook\n", PayloadType::CloudBoothook),
            (b"#include\nhttp://x\n", PayloadType::Include),
            (b"Content-Type: multipart/mixed", PayloadType::Mime),
            (b"MIME-Version: 1.0\n", PayloadType::Mime),
            (b"\x1f\x8b\x08", PayloadType::Gzip),
            (b"{\"a\":1}", PayloadType::Json),
            (b"hello", PayloadType::Other),
        ];
        for (data, want) in cases {
            assert_eq!(detect_payload_type(data), *want, "case {data:?}");
        }
    }
}
