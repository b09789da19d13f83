//! What user data (or vendor data) asks of the booted system, as a plan: pure, bytes in,
//! [`Plan`] out; [`crate::apply`] carries it out.
//!
//! Payloads, after [`crate::mime::split`] (gzip unpacked, multipart split):
//! - `text/x-shellscript` (or a `#!` document): a script, run once per instance.
//! - `text/cloud-boothook`: run at every boot (with `INSTANCE_ID` set), as cloud-init does.
//! - `text/x-cfninitdata`: OpenStack Heat's files for `/var/lib/heat-cfntools/` (the contract
//!   of Heat's cloud-init part handler). A name with `/`, `..` or a NUL is refused. Heat's
//!   own `loguserdata.py` script part is not run: preroot runs `cfn-userdata` itself.
//! - `text/cloud-config`: the subset below; every other top-level key is reported by name.
//! - anything else (`text/part-handler`, `#include`, `#cloud-config-archive`, …) is reported.
//!
//! Cloud-config subset: `ssh_authorized_keys`; `users` (`default`, or `name`, `groups`,
//! `sudo`, `shell`, `ssh_authorized_keys`); `write_files` (`path`, `content`, `encoding`
//! b64/base64/gzip/gz+b64/text, `permissions`, `owner`, `append`); `runcmd`; `bootcmd`;
//! `hostname`/`fqdn`; `password`, `chpasswd` (`users` with `name`/`password`/`type`, and the
//! older `list`); `vendor_data: {enabled: false}`. Keys that only the initramfs reads
//! (`preserve_hostname`, `manage_etc_hosts`, `growpart`, `resize_rootfs`) count as handled.
//!
//! One budget for everything decoded from one document ([`MAX_DECODED`]): its parts as
//! unpacked and transfer-decoded, and every `write_files` content (base64, gzip). A
//! `write_files` entry that would pass it is refused by name, unpacked no further than the
//! budget left, so no document makes `apply` hold more (40 gzip entries of 16 MiB of zeros
//! each would otherwise be 640 MiB).
#![deny(clippy::arithmetic_side_effects)]

use crate::cloudconfig::boolean;
use crate::yaml::{self, Node};

/// Most bytes decoded from one document: twice the user-data cap
/// ([`crate::caps::USER_DATA_BYTES`]), so a document at the cap can still write files as large
/// as itself.
pub const MAX_DECODED: usize = 2 * crate::caps::USER_DATA_BYTES;

/// What is left of a document's [`MAX_DECODED`] budget.
struct Decoded {
    left: usize,
}

impl Decoded {
    /// Takes `len` bytes from the budget; `false` (and nothing taken) when they do not fit.
    fn take(&mut self, len: usize) -> bool {
        match self.left.checked_sub(len) {
            Some(left) => {
                self.left = left;
                true
            }
            None => false,
        }
    }
}

/// A script to run: its name (for state and logs) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub name: String,
    pub body: Vec<u8>,
}

/// A user to create or update. `name == None`: the configured default user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSpec {
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// sudoers rules (`ALL=(ALL) NOPASSWD:ALL`).
    pub sudo: Vec<String>,
    pub shell: Option<String>,
    pub ssh_keys: Vec<String>,
}

/// A password to set; `value` is a secret (never logged, never in `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct Password {
    /// `None`: the default user.
    pub user: Option<String>,
    pub value: String,
    /// Already a crypt(3) hash.
    pub hashed: bool,
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Password {{ user: {:?}, hashed: {} }}",
            self.user, self.hashed
        )
    }
}

/// A `write_files` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFile {
    /// Relative to the root (the leading `/` removed).
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
    /// `user:group` or `user`, resolved against the root's passwd and group.
    pub owner: Option<String>,
    pub append: bool,
}

/// What one payload asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every boot: `bootcmd`, boothooks.
    pub boot: Vec<Script>,
    /// Once: users, keys, passwords, hostname, files, Heat's files, scripts, runcmd.
    pub users: Vec<UserSpec>,
    /// `ssh_authorized_keys` at the top level: for the default user.
    pub ssh_keys: Vec<String>,
    pub passwords: Vec<Password>,
    pub hostname: Option<String>,
    pub write_files: Vec<WriteFile>,
    /// Heat's `text/x-cfninitdata` parts: (file name, content).
    pub cfn_files: Vec<(String, Vec<u8>)>,
    /// Scripts in document order, then `runcmd` (as cloud-init's scripts-user runs them).
    pub scripts: Vec<Script>,
    /// What is not applied, by name (`cloud-config key packages`, `part text/part-handler`).
    pub ignored: Vec<String>,
    /// What was refused or could not be read, and why (never the content).
    pub problems: Vec<String>,
    /// `write_files` entries refused here (each also in `problems`), so apply's step line
    /// counts every file asked for.
    pub write_files_refused: usize,
    /// `vendor_data: {enabled: false}` (user data only).
    pub vendor_data_disabled: bool,
}

/// Cloud-config keys preroot applies (here or in the initramfs).
const HANDLED: &[&str] = &[
    "ssh_authorized_keys",
    "users",
    "write_files",
    "runcmd",
    "bootcmd",
    "hostname",
    "fqdn",
    "password",
    "chpasswd",
    "vendor_data",
    "preserve_hostname",
    "manage_etc_hosts",
    "growpart",
    "resize_rootfs",
];

/// Plans a user-data or vendor-data payload. `what` names it in reports (`user-data`).
pub fn plan(data: &[u8], what: &str) -> Plan {
    let mut out = Plan::default();
    let parts = match crate::mime::split(data) {
        Ok(p) => p,
        Err(e) => {
            out.problems.push(format!("{what}: {e}"));
            return out;
        }
    };
    let mut decoded = Decoded { left: MAX_DECODED };
    let payloads = parts
        .iter()
        .fold(0usize, |n, p| n.saturating_add(p.payload.len()));
    if !decoded.take(payloads) {
        out.problems.push(format!(
            "{what}: its parts decode to {payloads} bytes, more than the {MAX_DECODED}-byte \
             budget for one document"
        ));
        return out;
    }
    let has_cfn = parts
        .iter()
        .any(|p| p.effective_type() == "text/x-cfninitdata");
    for (i, part) in parts.iter().enumerate() {
        let label = part
            .filename
            .clone()
            .unwrap_or_else(|| format!("part-{:03}", i.saturating_add(1)));
        let script_name = format!("{what}-{}", sanitize(&label));
        match part.effective_type() {
            "text/x-shellscript" => {
                if has_cfn && part.filename.as_deref() == Some("loguserdata.py") {
                    out.ignored.push(format!(
                        "{what}: part {label} (Heat's runner; preroot runs cfn-userdata itself)"
                    ));
                } else {
                    out.scripts.push(Script {
                        name: script_name,
                        body: part.payload.clone(),
                    });
                }
            }
            "text/cloud-boothook" => out.boot.push(Script {
                name: script_name,
                body: strip_boothook_header(&part.payload),
            }),
            "text/x-cfninitdata" => match cfn_name(part.filename.as_deref()) {
                Ok(name) => out.cfn_files.push((name, part.payload.clone())),
                Err(why) => out.problems.push(format!("{what}: part {label:?}: {why}")),
            },
            "text/cloud-config" => cloud_config(&part.payload, what, &mut out, &mut decoded),
            other => out
                .ignored
                .push(format!("{what}: part {label} of type {other}")),
        }
    }
    out
}

/// A boothook may start with `#cloud-boothook` instead of `#!`: it is then run by `/bin/sh`.
fn strip_boothook_header(payload: &[u8]) -> Vec<u8> {
    let trimmed = payload.trim_ascii_start();
    match trimmed.strip_prefix(b"#cloud-boothook") {
        Some(rest) => {
            let mut body = b"#!/bin/sh".to_vec();
            body.extend_from_slice(rest);
            body
        }
        None => payload.to_vec(),
    }
}

/// A name usable as one path component of preroot's own state.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    match s.as_str() {
        "" | "." | ".." => "_".into(),
        _ => s,
    }
}

/// Heat's part file name: one plain component.
pub fn cfn_name(name: Option<&str>) -> Result<String, String> {
    let name = name.ok_or("a text/x-cfninitdata part without a file name")?;
    if name.is_empty()
        || name.contains('/')
        || name.contains('\0')
        || name.contains("..")
        || name == "."
    {
        return Err(format!(
            "file name {:?} refused (it must be one plain name)",
            name.escape_debug().to_string()
        ));
    }
    Ok(name.to_string())
}

fn strings(node: Option<&Node>) -> Vec<String> {
    match node {
        Some(Node::Seq(items)) => items
            .iter()
            .filter_map(|n| n.as_text().map(str::to_string))
            .collect(),
        Some(n) => n
            .as_text()
            .map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

/// `ssh_authorized_keys` (top level or a user's `field`): each string is one or more keys, one
/// a line (a `|` block of several keys is common), blank lines and `#` comments skipped, as
/// the datasources read keys. A key with another control character (but a tab) is refused by
/// name;
/// nothing is dropped silently.
fn ssh_keys(node: Option<&Node>, field: &str, what: &str, out: &mut Plan) -> Vec<String> {
    let mut keys = Vec::new();
    for text in strings(node) {
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.chars().any(|c| c.is_control() && c != '\t') {
                out.problems.push(format!(
                    "{what}: {field}: key \"{}\" refused: it holds a control character",
                    crate::text::show(line)
                ));
                continue;
            }
            keys.push(line.to_string());
        }
    }
    keys
}

/// A shell word: `'...'` with `'` escaped.
fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// `runcmd`/`bootcmd` as one `/bin/sh` script: a string entry is a shell line, a list an
/// argv (quoted), as cloud-init's `shellify` does.
fn shellify(node: &Node, key: &str, what: &str, out: &mut Plan) -> Option<Vec<u8>> {
    let Node::Seq(items) = node else {
        out.problems
            .push(format!("{what}: cloud-config {key} is not a list"));
        return None;
    };
    let mut script = String::from("#!/bin/sh\n");
    for item in items {
        match item {
            Node::Seq(argv) => {
                let words: Vec<String> = argv
                    .iter()
                    .map(|w| quote(w.as_text().unwrap_or_default()))
                    .collect();
                script.push_str(&words.join(" "));
            }
            other => script.push_str(other.as_text().unwrap_or_default()),
        }
        script.push('\n');
    }
    Some(script.into_bytes())
}

fn cloud_config(payload: &[u8], what: &str, out: &mut Plan, decoded: &mut Decoded) {
    let text = String::from_utf8_lossy(payload);
    let root = match yaml::load(&text) {
        Ok(r) => r,
        Err(e) => {
            out.problems.push(format!("{what}: cloud-config: {e}"));
            return;
        }
    };
    let Node::Map(entries) = &root else {
        if root != Node::Null {
            out.problems
                .push(format!("{what}: cloud-config is not a mapping"));
        }
        return;
    };
    for (key, _) in entries {
        if !HANDLED.contains(&key.as_str()) {
            out.ignored
                .push(format!("{what}: cloud-config key {key} (not supported)"));
        }
    }
    if let Some(b) = root.get("bootcmd") {
        if let Some(body) = shellify(b, "bootcmd", what, out) {
            out.boot.push(Script {
                name: format!("{what}-bootcmd"),
                body,
            });
        }
    }
    let keys = ssh_keys(
        root.get("ssh_authorized_keys"),
        "ssh_authorized_keys",
        what,
        out,
    );
    out.ssh_keys.extend(keys);
    if let Some(users) = root.get("users") {
        users_of(users, what, out);
    }
    if let Some(name) = root
        .get("fqdn")
        .or_else(|| root.get("hostname"))
        .and_then(Node::as_text)
    {
        match crate::context::validate_hostname(name) {
            Ok(n) => out.hostname = Some(n),
            Err(why) => out.problems.push(format!("{what}: hostname: {why}")),
        }
    }
    if let Some(p) = root.get("password").and_then(Node::as_text) {
        out.passwords.push(Password {
            user: None,
            value: p.to_string(),
            hashed: crate::crypt::is_hash(p),
        });
    }
    if let Some(c) = root.get("chpasswd") {
        chpasswd(c, what, out);
    }
    if let Some(files) = root.get("write_files") {
        write_files(files, what, out, decoded);
    }
    if let Some(r) = root.get("runcmd") {
        if let Some(body) = shellify(r, "runcmd", what, out) {
            out.scripts.push(Script {
                name: format!("{what}-runcmd"),
                body,
            });
        }
    }
    if let Some(v) = root.get("vendor_data") {
        if v.get("enabled").and_then(boolean) == Some(false) || boolean(v) == Some(false) {
            out.vendor_data_disabled = true;
        }
    }
}

fn users_of(users: &Node, what: &str, out: &mut Plan) {
    let items: Vec<&Node> = match users {
        Node::Seq(items) => items.iter().collect(),
        other => vec![other],
    };
    for item in items {
        match item {
            Node::Map(entries) => {
                let Some(name) = item.get("name").and_then(Node::as_text) else {
                    out.problems
                        .push(format!("{what}: cloud-config users entry without a name"));
                    continue;
                };
                if !valid_user_name(name) {
                    out.problems
                        .push(format!("{what}: user name {name:?} refused"));
                    continue;
                }
                for (k, _) in entries {
                    if !["name", "groups", "sudo", "shell", "ssh_authorized_keys"]
                        .contains(&k.as_str())
                    {
                        out.ignored.push(format!(
                            "{what}: cloud-config users[{name}].{k} (not supported)"
                        ));
                    }
                }
                let mut sudo = match item.get("sudo") {
                    Some(n) if boolean(n) == Some(false) => Vec::new(),
                    other => strings(other),
                };
                sudo.retain(|rule| match crate::valid::sudo_rule(rule) {
                    Ok(()) => true,
                    Err(why) => {
                        out.problems
                            .push(format!("{what}: users[{name}].sudo: {why}"));
                        false
                    }
                });
                let key_field = format!("users[{name}].ssh_authorized_keys");
                let ssh_keys = ssh_keys(item.get("ssh_authorized_keys"), &key_field, what, out);
                out.users.push(UserSpec {
                    name: Some(name.to_string()),
                    groups: strings(item.get("groups")),
                    sudo,
                    shell: item
                        .get("shell")
                        .and_then(Node::as_text)
                        .map(str::to_string),
                    ssh_keys,
                });
            }
            other if other.as_text() == Some("default") => out.users.push(UserSpec::default()),
            other => match other.as_text() {
                Some(name) if valid_user_name(name) => out.users.push(UserSpec {
                    name: Some(name.to_string()),
                    ..UserSpec::default()
                }),
                _ => out.problems.push(format!(
                    "{what}: a cloud-config users entry is not understood"
                )),
            },
        }
    }
}

fn chpasswd(node: &Node, what: &str, out: &mut Plan) {
    if let Some(Node::Seq(users)) = node.get("users") {
        for u in users {
            let (Some(name), Some(pw)) = (
                u.get("name").and_then(Node::as_text),
                u.get("password").and_then(Node::as_text),
            ) else {
                out.problems.push(format!(
                    "{what}: chpasswd users entry without name or password"
                ));
                continue;
            };
            let kind = u.get("type").and_then(Node::as_text).unwrap_or("text");
            if kind == "RANDOM" || pw == "RANDOM" || pw == "R" {
                out.ignored.push(format!(
                    "{what}: chpasswd random password for {name} (not supported)"
                ));
                continue;
            }
            out.passwords.push(Password {
                user: Some(name.to_string()),
                value: pw.to_string(),
                hashed: kind == "hash" || crate::crypt::is_hash(pw),
            });
        }
    }
    // The older form: `list: |` lines of `user:password`.
    let lines: Vec<String> = match node.get("list") {
        Some(Node::Seq(_)) => strings(node.get("list")),
        Some(n) => n
            .as_text()
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    for line in lines {
        let Some((name, pw)) = line.trim().split_once(':') else {
            continue;
        };
        out.passwords.push(Password {
            user: Some(name.to_string()),
            value: pw.to_string(),
            hashed: crate::crypt::is_hash(pw),
        });
    }
}

/// One `write_files` content decoded per `encoding`, within what is left of the document's
/// budget (taken from it). Gzip unpacks no further than that: a member whose trailer claims
/// more is refused before it is unpacked, and one that lies about it spends what it unpacked
/// (the budget bounds the work, not only what is kept).
fn decode_content(raw: &str, encoding: &str, decoded: &mut Decoded) -> Result<Vec<u8>, String> {
    let limit = decoded.left.min(crate::mime::MAX_UNPACKED);
    let over = |what: String| {
        format!(
            "{what}, more than the {limit} bytes left of the document's {MAX_DECODED}-byte \
             budget for decoded content"
        )
    };
    let mut gunzip = |packed: &[u8]| {
        // ISIZE, the unpacked length modulo 2^32 (RFC 1952): checked again after unpacking.
        let claimed = packed
            .len()
            .checked_sub(4)
            .and_then(|at| crate::bytes::le_u32(packed, at))
            .map_or(0, u64::from);
        if claimed > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(over(format!("gzip: unpacks to {claimed} bytes")));
        }
        crate::mime::gunzip(packed, limit).map_err(|e| match e {
            crate::mime::MimeError::Gzip(why) if why.starts_with("unpacks to more than") => {
                decoded.left = decoded.left.saturating_sub(limit);
                over("gzip: unpacks to more".into())
            }
            e => e.to_string(),
        })
    };
    let content = match encoding {
        "b64" | "base64" => crate::base64::lenient(raw.as_bytes()),
        "gz" | "gzip" => gunzip(raw.as_bytes())?,
        "gz+b64" | "gzip+base64" | "gz+base64" | "gzip+b64" => {
            gunzip(&crate::base64::lenient(raw.as_bytes()))?
        }
        "text" | "text/plain" => raw.as_bytes().to_vec(),
        other => return Err(format!("unknown encoding {other}")),
    };
    if !decoded.take(content.len()) {
        return Err(format!(
            "{} bytes, more than the {} bytes left of the document's {MAX_DECODED}-byte budget \
             for decoded content",
            content.len(),
            decoded.left
        ));
    }
    Ok(content)
}

fn write_files(node: &Node, what: &str, out: &mut Plan, decoded: &mut Decoded) {
    let Node::Seq(items) = node else {
        out.problems
            .push(format!("{what}: cloud-config write_files is not a list"));
        return;
    };
    for item in items {
        let Some(path) = item.get("path").and_then(Node::as_text) else {
            out.problems
                .push(format!("{what}: write_files entry without a path"));
            out.write_files_refused = out.write_files_refused.saturating_add(1);
            continue;
        };
        let rel = path.trim_start_matches('/');
        if !path.starts_with('/')
            || rel
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            out.problems.push(format!(
                "{what}: write_files path \"{}\" refused: not absolute, or with an empty, . or .. component",
                crate::text::show(path)
            ));
            out.write_files_refused = out.write_files_refused.saturating_add(1);
            continue;
        }
        let raw = item
            .get("content")
            .and_then(Node::as_text)
            .unwrap_or_default();
        let encoding = item
            .get("encoding")
            .and_then(Node::as_text)
            .unwrap_or("text")
            .to_ascii_lowercase();
        let content = decode_content(raw, &encoding, decoded);
        let content = match content {
            Ok(c) => c,
            Err(e) => {
                out.problems.push(format!(
                    "{what}: write_files {}: {e}",
                    crate::text::show(path)
                ));
                out.write_files_refused = out.write_files_refused.saturating_add(1);
                continue;
            }
        };
        let mode = match item.get("permissions").and_then(Node::as_text) {
            None => 0o644,
            Some(p) => match parse_mode(p) {
                Some(m) => m,
                None => {
                    out.problems.push(format!(
                        "{what}: write_files {}: permissions \"{}\" refused: not an octal \
                         mode from 0 to 0o7777 ('0644', '0o600', '600')",
                        crate::text::show(path),
                        crate::text::show(p)
                    ));
                    out.write_files_refused = out.write_files_refused.saturating_add(1);
                    continue;
                }
            },
        };
        if item.get("defer").and_then(boolean) == Some(true) {
            out.ignored
                .push(format!("{what}: write_files {path}: defer (written now)"));
        }
        out.write_files.push(WriteFile {
            path: rel.to_string(),
            content,
            mode,
            owner: item
                .get("owner")
                .and_then(Node::as_text)
                .map(str::to_string),
            append: item.get("append").and_then(boolean) == Some(true),
        });
    }
}

/// `'0644'`, `0o600`, `"600"`: octal, at most 0o7777.
pub fn parse_mode(text: &str) -> Option<u32> {
    let t = text.trim();
    let t = t.strip_prefix("0o").unwrap_or(t);
    u32::from_str_radix(t, 8).ok().filter(|m| *m <= 0o7777)
}

pub use crate::valid::valid_user_name;

/// Vendor data as cloud-init takes it: OpenStack's `vendor_data.json` is JSON whose
/// `cloud-init` member (a string) is the payload; anything else is the payload itself.
pub fn vendor_payload(data: &[u8]) -> Vec<u8> {
    if crate::context::detect_payload_type(data) != crate::context::PayloadType::Json {
        return data.to_vec();
    }
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(v) => v
            .get("cloud-init")
            .and_then(|c| c.as_str())
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn cloud_config_subset() {
        let doc = "#cloud-config\n\
            ssh_authorized_keys: [ssh-ed25519 AAAA top]\n\
            users:\n  - default\n  - name: alice\n    groups: [adm, wheel]\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    shell: /bin/sh\n    ssh_authorized_keys: [ssh-rsa BBBB alice]\n    lock_passwd: true\n\
            write_files:\n  - path: /etc/motd\n    content: aGVsbG8K\n    encoding: b64\n    permissions: '0600'\n    owner: alice:alice\n  - path: ../x\n    content: y\n\
            runcmd:\n  - echo one\n  - [touch, /tmp/it's]\n\
            bootcmd: [echo boot]\n\
            hostname: web\nfqdn: web.example.org\n\
            packages: [nginx]\n\
            password: hunter2\n\
            chpasswd: {users: [{name: alice, password: $6$s$h, type: hash}]}\n\
            vendor_data: {enabled: false}\n";
        let p = plan(doc.as_bytes(), "user-data");
        assert_eq!(p.ssh_keys, ["ssh-ed25519 AAAA top"]);
        assert_eq!(p.users.len(), 2);
        assert_eq!(p.users[0], UserSpec::default(), "the default user");
        assert_eq!(p.users[1].groups, ["adm", "wheel"]);
        assert_eq!(p.users[1].sudo, ["ALL=(ALL) NOPASSWD:ALL"]);
        assert_eq!(p.write_files.len(), 1);
        assert_eq!(p.write_files[0].content, b"hello\n");
        assert_eq!(p.write_files[0].mode, 0o600);
        assert_eq!(p.write_files[0].path, "etc/motd");
        assert_eq!(p.hostname.as_deref(), Some("web.example.org"));
        assert_eq!(
            String::from_utf8_lossy(&p.scripts[0].body),
            "#!/bin/sh\necho one\ntouch '/tmp/it'\\''s'\n"
        );
        assert_eq!(p.boot[0].name, "user-data-bootcmd");
        assert_eq!(p.passwords.len(), 2);
        assert!(!p.passwords[0].hashed && p.passwords[1].hashed);
        assert!(
            !format!("{:?}", p.passwords).contains("hunter2"),
            "never in Debug"
        );
        assert!(p.vendor_data_disabled);
        assert!(
            p.ignored.iter().any(|i| i.contains("key packages")),
            "{:?}",
            p.ignored
        );
        assert!(
            p.ignored.iter().any(|i| i.contains("lock_passwd")),
            "{:?}",
            p.ignored
        );
        assert!(
            p.problems.iter().any(|i| i.contains("../x")),
            "{:?}",
            p.problems
        );
    }

    #[test]
    fn cfn_names() {
        for bad in ["../../etc/shadow", "a/b", "..", "", "x\0"] {
            assert!(cfn_name(Some(bad)).is_err(), "case {bad:?}");
        }
        assert!(cfn_name(None).is_err());
        assert_eq!(cfn_name(Some("cfn-userdata")).unwrap(), "cfn-userdata");
    }

    /// Issue 16 item 22: a refused `permissions` names the file, the value and the rule (it
    /// said `permissions "0o17777"` and no more); refusals are counted for apply's step line.
    #[test]
    fn refused_permissions_say_why() {
        let p = plan(
            b"#cloud-config\nwrite_files:\n- {path: /etc/d, content: d, permissions: '0o17777'}\n- {path: etc/e}\n",
            "user-data",
        );
        assert_eq!(p.write_files_refused, 2, "{:?}", p.problems);
        assert_eq!(
            p.problems[0],
            "user-data: write_files /etc/d: permissions \"0o17777\" refused: not an octal mode \
             from 0 to 0o7777 ('0644', '0o600', '600')"
        );
        assert!(
            p.problems[1].contains("\"etc/e\" refused: not absolute"),
            "{:?}",
            p.problems
        );
    }

    #[test]
    fn scripts_and_types() {
        let p = plan(b"#!/bin/sh\necho hi\n", "user-data");
        assert_eq!(p.scripts.len(), 1);
        let p = plan(b"#include http://x\n", "user-data");
        assert!(
            p.scripts.is_empty() && p.ignored.len() == 1,
            "{:?}",
            p.ignored
        );
        let p = plan(b"#cloud-config\n: [\n", "user-data");
        assert_eq!(p.problems.len(), 1);
        assert_eq!(parse_mode("0o755"), Some(0o755));
        assert_eq!(parse_mode("999"), None);
        assert!(valid_user_name("cloud-user") && !valid_user_name("Root;rm"));
    }

    /// A gzip member of `data` (deflate by miniz, the CRC left zero: it is not checked).
    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
        out.extend([0u8; 4]);
        out.extend((data.len() as u32).to_le_bytes());
        out
    }

    fn b64(data: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in data.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }

    /// Issue 16 item 3: gzip `write_files` share one budget with everything else decoded
    /// from the document. Five entries of 16 MiB of zeros (80 MiB unpacked, from 110 KB of
    /// user data): the first is kept, the rest refused by name, unpacked no further than the
    /// budget left.
    #[test]
    fn gzip_write_files_share_one_budget() {
        let bomb = b64(&gzip(&vec![0u8; 16 << 20]));
        let mut doc = String::from("#cloud-config\nwrite_files:\n");
        for i in 0..5 {
            doc.push_str(&format!(
                "  - path: /var/tmp/zero{i}\n    encoding: gz+b64\n    content: {bomb}\n"
            ));
        }
        doc.push_str("  - path: /etc/small\n    content: hello\n");
        assert!(doc.len() < 150_000, "{} bytes", doc.len());
        let p = plan(doc.as_bytes(), "user-data");
        let total: usize = p.write_files.iter().map(|f| f.content.len()).sum();
        assert!(total <= MAX_DECODED, "{total} bytes decoded");
        let kept: Vec<&str> = p.write_files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(kept, ["var/tmp/zero0", "etc/small"], "{:?}", p.problems);
        assert_eq!(p.problems.len(), 4, "{:?}", p.problems);
        for (i, problem) in p.problems.iter().enumerate() {
            assert!(
                problem.contains(&format!("write_files /var/tmp/zero{}", i + 1))
                    && problem.contains("budget for decoded content"),
                "{problem}"
            );
        }
    }

    /// Issue 16 item 4: a 10 MB cloud-config (27 base64 files and a long runcmd) is read whole:
    /// it is under the 16 MiB user-data cap, and the loader's limits are in bytes.
    #[test]
    fn ten_megabyte_cloud_config_is_read() {
        let content = b64(&(0..270_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        let mut doc = String::from("#cloud-config\nwrite_files:\n");
        for i in 0..27 {
            doc.push_str(&format!(
                "  - path: /opt/app/file{i}.bin\n    encoding: b64\n    permissions: '0644'\n    \
                 content: {content}\n"
            ));
        }
        doc.push_str("runcmd:\n");
        for i in 0..2000 {
            doc.push_str(&format!("  - echo step {i} >> /var/log/setup.log\n"));
        }
        assert!(doc.len() > 9_500_000, "{} bytes", doc.len());
        let p = plan(doc.as_bytes(), "user-data");
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.write_files.len(), 27);
        assert_eq!(p.write_files[26].content.len(), 270_000);
        assert_eq!(p.scripts.len(), 1, "runcmd");
        // Over the cap, the message names the cap in bytes.
        let big = format!("#cloud-config\nx: '{}'\n", "y".repeat(16 << 20));
        let p = plan(big.as_bytes(), "user-data");
        assert!(
            p.problems
                .iter()
                .any(|e| e.contains("more than the 16777216-byte limit")),
            "{:?}",
            p.problems
        );
    }
}
