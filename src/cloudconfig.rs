//! The few cloud-config directives the initramfs honours, read from the user data the fetch
//! phase stored (`/run/preroot/user-data`): `preserve_hostname`, `manage_etc_hosts`,
//! `growpart: {mode: off}` and `resize_rootfs: false`, as cloud-init users write them.
//!
//! Reads a `#cloud-config` document, or the `text/cloud-config` parts of a MIME multipart
//! (what `cloud-init devel make-mime` and Heat produce), split by [`crate::mime`] (gzip
//! unpacked first); later parts override earlier ones, key by key, as cloud-init's merge does
//! for these scalar keys. Everything else in user data (scripts, boothooks, includes) is the
//! userspace stage's business ([`crate::apply`]) and ignored here.
//! Pure: takes bytes, never reads files or logs secrets.

use crate::yaml::{self, Node};

/// What user data says about the steps the initramfs takes. `None`: not said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `preserve_hostname: true` keeps the image's hostname.
    pub preserve_hostname: Option<bool>,
    /// `manage_etc_hosts: false` leaves /etc/hosts alone (`true` and `localhost` manage it).
    pub manage_etc_hosts: Option<bool>,
    /// `growpart: {mode: off}` (or `false`): do not grow the root partition.
    pub growpart_off: Option<bool>,
    /// `resize_rootfs: false`: do not grow the root filesystem.
    pub resize_rootfs: Option<bool>,
}

impl Directives {
    /// May preroot set the hostname?
    pub fn sets_hostname(&self) -> bool {
        self.preserve_hostname != Some(true)
    }

    /// May preroot add its line to /etc/hosts?
    pub fn manages_hosts(&self) -> bool {
        self.sets_hostname() && self.manage_etc_hosts != Some(false)
    }

    /// Does user data turn growth off (partition and filesystem)?
    pub fn grow_off(&self) -> bool {
        self.growpart_off == Some(true) || self.resize_rootfs == Some(false)
    }

    fn merge(&mut self, other: Directives) {
        let Directives {
            preserve_hostname,
            manage_etc_hosts,
            growpart_off,
            resize_rootfs,
        } = other;
        self.preserve_hostname = preserve_hostname.or(self.preserve_hostname);
        self.manage_etc_hosts = manage_etc_hosts.or(self.manage_etc_hosts);
        self.growpart_off = growpart_off.or(self.growpart_off);
        self.resize_rootfs = resize_rootfs.or(self.resize_rootfs);
    }
}

/// Reads the directives from user data. Unparseable cloud-config is an error naming the
/// problem (never the content); data that holds no cloud-config gives no directives.
pub fn directives(user_data: &[u8]) -> Result<Directives, String> {
    let mut out = Directives::default();
    for doc in cloud_config_documents(user_data)? {
        out.merge(from_document(&doc)?);
    }
    Ok(out)
}

/// The cloud-config documents in user data, in order: a `#cloud-config` document, or the
/// `text/cloud-config` parts of a MIME multipart, gzip unpacked first ([`crate::mime`]).
fn cloud_config_documents(data: &[u8]) -> Result<Vec<String>, String> {
    let parts = crate::mime::split(data).map_err(|e| format!("user data: {e}"))?;
    Ok(parts
        .iter()
        .filter(|p| p.effective_type() == "text/cloud-config")
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect())
}

fn from_document(doc: &str) -> Result<Directives, String> {
    let root = yaml::load(doc).map_err(|e| format!("cloud-config: {e}"))?;
    let growpart_off = root.get("growpart").map(|g| match g {
        Node::Map(_) => g
            .get("mode")
            .is_some_and(|m| matches!(boolean(m), Some(false)) || m.as_text() == Some("off")),
        other => boolean(other) == Some(false),
    });
    Ok(Directives {
        preserve_hostname: root.get("preserve_hostname").and_then(boolean),
        manage_etc_hosts: root
            .get("manage_etc_hosts")
            .and_then(|v| match v.as_text() {
                Some("localhost" | "template") => Some(true),
                _ => boolean(v),
            }),
        growpart_off,
        resize_rootfs: root.get("resize_rootfs").and_then(|v| match v.as_text() {
            Some("noblock") => Some(true),
            _ => boolean(v),
        }),
    })
}

/// A YAML 1.1 boolean, as PyYAML reads one (cloud-init's loader): plain scalars only.
pub(crate) fn boolean(node: &Node) -> Option<bool> {
    let Node::Scalar { text, plain: true } = node else {
        return None;
    };
    match text.as_str() {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_cloud_config() {
        for (text, want) in [
            (
                "#cloud-config\npreserve_hostname: true\n",
                (Some(true), None, None, None),
            ),
            (
                "#cloud-config\nmanage_etc_hosts: false\n",
                (None, Some(false), None, None),
            ),
            (
                "#cloud-config\nmanage_etc_hosts: localhost\n",
                (None, Some(true), None, None),
            ),
            (
                "#cloud-config\ngrowpart: {mode: off}\n",
                (None, None, Some(true), None),
            ),
            (
                "#cloud-config\ngrowpart:\n  mode: 'off'\n",
                (None, None, Some(true), None),
            ),
            (
                "#cloud-config\ngrowpart: {mode: auto}\n",
                (None, None, Some(false), None),
            ),
            (
                "#cloud-config\nresize_rootfs: false\n",
                (None, None, None, Some(false)),
            ),
            (
                "#cloud-config\nresize_rootfs: noblock\n",
                (None, None, None, Some(true)),
            ),
            // A quoted "false" is a string to PyYAML, not a boolean.
            (
                "#cloud-config\npreserve_hostname: 'true'\n",
                (None, None, None, None),
            ),
            (
                "#!/bin/sh\necho preserve_hostname: true\n",
                (None, None, None, None),
            ),
            ("", (None, None, None, None)),
        ] {
            let d = directives(text.as_bytes()).unwrap();
            assert_eq!(
                (
                    d.preserve_hostname,
                    d.manage_etc_hosts,
                    d.growpart_off,
                    d.resize_rootfs
                ),
                want,
                "case {text:?}"
            );
        }
    }

    #[test]
    fn multipart_parts_merge_in_order() {
        let mime = "Content-Type: multipart/mixed; boundary=\"===XX==\"\nMIME-Version: 1.0\n\n\
            --===XX==\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho manage_etc_hosts: false\n\
            --===XX==\nContent-Type: text/cloud-config; charset=\"us-ascii\"\n\n#cloud-config\npreserve_hostname: false\ngrowpart: {mode: off}\n\
            --===XX==\nContent-Type: text/cloud-config\nContent-Transfer-Encoding: base64\n\nI2Nsb3VkLWNvbmZpZwpwcmVzZXJ2ZV9ob3N0bmFtZTogdHJ1ZQo=\n\
            --===XX==--\n";
        let d = directives(mime.as_bytes()).unwrap();
        assert_eq!(d.preserve_hostname, Some(true), "the later part wins");
        assert_eq!(d.growpart_off, Some(true));
        assert_eq!(
            d.manage_etc_hosts, None,
            "a script part is not cloud-config"
        );
        assert!(!d.sets_hostname() && !d.manages_hosts() && d.grow_off());
    }

    #[test]
    fn broken_cloud_config_is_an_error() {
        let err = directives(b"#cloud-config\npreserve_hostname: [\n").unwrap_err();
        assert!(err.starts_with("cloud-config:"), "{err}");
    }
}
