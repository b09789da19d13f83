//! Hand-off to cloud-init, for images that keep it: the context as a NoCloud seed in
//! `/var/lib/cloud/seed/nocloud/` (`meta-data`, `user-data`, `vendor-data`,
//! `network-config`) and a drop-in, `/etc/cloud/cloud.cfg.d/99-preroot.cfg`, that makes
//! NoCloud the only datasource (cloud-init does not fetch the metadata again) and turns off
//! cloud-init's network configuration (preroot's rendered files stay authoritative).
//!
//! When: `preroot.handoff=cloud-init` on the kernel command line, `handoff = cloud-init` in
//! preroot.conf, or detected — the root has `usr/bin/cloud-init` and no
//! `etc/cloud/cloud-init.disabled` — unless `handoff = none` / `preroot.handoff=none`. Then
//! `preroot apply` writes these files and leaves user data, keys and users to cloud-init.
//!
//! `meta-data` is JSON (valid YAML for cloud-init's loader): `instance-id`,
//! `local-hostname`, `public-keys`. `network-config` is `config: disabled`, cloud-init's
//! marker for "do not configure the network". Pure: [`seed`] returns the files.
#![deny(clippy::arithmetic_side_effects)]

use crate::context::Context;

pub const SEED_DIR: &str = "var/lib/cloud/seed/nocloud";
pub const DROPIN: &str = "etc/cloud/cloud.cfg.d/99-preroot.cfg";

const DROPIN_TEXT: &str = "\
# Written by preroot (preroot apply, cloud-init hand-off): preroot already read the
# instance metadata and wrote the network configuration in the initramfs.
# Use the NoCloud seed it left, fetch nothing, and leave the network alone.
datasource_list: [ NoCloud, None ]
network: {config: disabled}
";

/// Should apply hand off to cloud-init? `cmdline` and `conf` are `cloud-init`, `none` or
/// absent; `installed`: the root has cloud-init, enabled.
pub fn wanted(cmdline: Option<&str>, conf: Option<&str>, installed: bool) -> bool {
    match cmdline.or(conf) {
        Some("cloud-init") => true,
        Some(_) => false,
        None => installed,
    }
}

/// `preroot.handoff=` from kernel command line text.
pub fn cmdline_value(cmdline: &str) -> Option<&str> {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|w| w.strip_prefix("preroot.handoff="))
}

/// The seed files and the drop-in: (path relative to the root, content, mode).
pub fn seed(ctx: &Context, user_data: &[u8], vendor_data: &[u8]) -> Vec<(String, Vec<u8>, u32)> {
    let mut meta = serde_json::Map::new();
    meta.insert(
        "instance-id".into(),
        ctx.instance_id
            .clone()
            .unwrap_or_else(|| "iid-preroot".into())
            .into(),
    );
    if let Some(h) = &ctx.hostname {
        meta.insert("local-hostname".into(), h.clone().into());
    }
    meta.insert(
        "public-keys".into(),
        ctx.ssh_keys
            .iter()
            .map(|k| serde_json::Value::from(k.as_str()))
            .collect(),
    );
    let meta = serde_json::to_vec_pretty(&serde_json::Value::Object(meta)).unwrap_or_default();
    let mut out = vec![
        (format!("{SEED_DIR}/meta-data"), meta, 0o600),
        (format!("{SEED_DIR}/user-data"), user_data.to_vec(), 0o600),
        (
            format!("{SEED_DIR}/network-config"),
            b"config: disabled\n".to_vec(),
            0o600,
        ),
    ];
    if !vendor_data.is_empty() {
        out.push((
            format!("{SEED_DIR}/vendor-data"),
            vendor_data.to_vec(),
            0o600,
        ));
    }
    out.push((DROPIN.into(), DROPIN_TEXT.as_bytes().to_vec(), 0o644));
    out
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn when() {
        for (cmd, conf, installed, want) in [
            (None, None, false, false),
            (None, None, true, true),
            (Some("none"), None, true, false),
            (None, Some("none"), true, false),
            (Some("cloud-init"), Some("none"), false, true),
            (None, Some("cloud-init"), false, true),
        ] {
            assert_eq!(
                wanted(cmd, conf, installed),
                want,
                "case {cmd:?} {conf:?} {installed}"
            );
        }
        assert_eq!(
            cmdline_value("ro preroot.handoff=none quiet preroot.handoff=cloud-init"),
            Some("cloud-init")
        );
        assert_eq!(cmdline_value("ro"), None);
    }
}
