//! Does the user-data say "do not grow"? The cloud-init settings users already write:
//! `growpart: {mode: off}` (or `mode: false`) and `resize_rootfs: false`, in a
//! `#cloud-config` document or in a `text/cloud-config` part of a MIME multipart archive.
//!
//! Reads only those two keys; everything else in user-data is the booted system's business.
//! Not supported: gzip-compressed user-data, `#include` URLs, Jinja templates (such
//! user-data is treated as not saying no). Never panics on any input.

use crate::providers::netconfig::{load_yaml, Node};

/// User-data larger than this is not parsed (cloud-init's own cap is 16 KiB on EC2).
const MAX: usize = 1 << 20;

/// The reason growth is off, if `user_data` says so.
pub fn says_no(user_data: &[u8]) -> Option<&'static str> {
    if user_data.len() > MAX {
        return None;
    }
    let text = std::str::from_utf8(user_data).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.starts_with("#cloud-config") {
        return cloud_config(text);
    }
    if let Some(boundary) = multipart_boundary(text) {
        let delim = format!("--{boundary}");
        for part in text.split(delim.as_str()).skip(1) {
            if part.starts_with("--") {
                break;
            }
            let (headers, body) = part
                .split_once("\r\n\r\n")
                .or_else(|| part.split_once("\n\n"))
                .unwrap_or(("", part));
            let cloud = headers.lines().any(|h| {
                let h = h.to_ascii_lowercase();
                h.starts_with("content-type:") && h.contains("text/cloud-config")
            }) || body.starts_with("#cloud-config");
            if cloud {
                if let Some(r) = cloud_config(body) {
                    return Some(r);
                }
            }
        }
    }
    None
}

/// The `boundary=` of a top-level `Content-Type: multipart/...` header.
fn multipart_boundary(text: &str) -> Option<String> {
    let headers = text.split("\n\n").next()?;
    // Header lines may be folded onto the next line (RFC 5322).
    let unfolded = headers
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    let ct = unfolded.lines().find(|l| {
        l.to_ascii_lowercase().starts_with("content-type:")
            && l.to_ascii_lowercase().contains("multipart/")
    })?;
    let at = ct.to_ascii_lowercase().find("boundary=")?;
    let value = ct.get(at.saturating_add(9)..)?;
    let value = value.split(';').next()?.trim().trim_matches('"');
    (!value.is_empty()).then(|| value.to_string())
}

fn is_false(n: &Node) -> bool {
    match n {
        Node::Scalar { text, .. } => matches!(
            text.to_ascii_lowercase().as_str(),
            "false" | "off" | "no" | "0"
        ),
        _ => false,
    }
}

fn cloud_config(text: &str) -> Option<&'static str> {
    let doc = load_yaml(text).ok()?;
    if doc
        .get("growpart")
        .and_then(|g| g.get("mode"))
        .is_some_and(is_false)
    {
        return Some("user-data: growpart: {mode: off}");
    }
    if doc.get("resize_rootfs").is_some_and(is_false) {
        return Some("user-data: resize_rootfs: false");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        let multipart = "Content-Type: multipart/mixed; boundary=\"XYZ\"\nMIME-Version: 1.0\n\n\
            --XYZ\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n\
            --XYZ\nContent-Type: text/cloud-config\n\n#cloud-config\ngrowpart:\n  mode: off\n\
            --XYZ--\n";
        let cases: &[(&str, &[u8], Option<&str>)] = &[
            (
                "mode off",
                b"#cloud-config\ngrowpart:\n  mode: off\n",
                Some("user-data: growpart: {mode: off}"),
            ),
            (
                "mode false",
                b"#cloud-config\ngrowpart: {mode: false}\n",
                Some("user-data: growpart: {mode: off}"),
            ),
            (
                "mode auto",
                b"#cloud-config\ngrowpart:\n  mode: auto\n",
                None,
            ),
            (
                "resize_rootfs",
                b"#cloud-config\nresize_rootfs: false\n",
                Some("user-data: resize_rootfs: false"),
            ),
            (
                "resize_rootfs true",
                b"#cloud-config\nresize_rootfs: true\n",
                None,
            ),
            (
                "quoted 'off' is a string, still off",
                b"#cloud-config\ngrowpart: {mode: 'off'}\n",
                Some("user-data: growpart: {mode: off}"),
            ),
            (
                "shell script",
                b"#!/bin/sh\n# growpart: {mode: off}\n",
                None,
            ),
            (
                "multipart",
                multipart.as_bytes(),
                Some("user-data: growpart: {mode: off}"),
            ),
            ("bad yaml", b"#cloud-config\ngrowpart: [\n", None),
            ("binary", &[0x1f, 0x8b, 0, 0xff], None),
            ("empty", b"", None),
        ];
        for (case, data, want) in cases {
            assert_eq!(says_no(data), *want, "case {case}");
        }
    }
}
