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

use crate::conf::{Config, CONF};
use crate::context::Context;
use crate::output::RootDir;

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

/// Is the cloud-init hand-off wanted for `root`? `handoff` is the kernel command line's
/// `preroot.handoff=`, `conf` the root's preroot.conf; detected when the root has
/// cloud-init, enabled ([`wanted`]).
pub fn wanted_for(root: &RootDir, conf: &Config, handoff: Option<&str>) -> bool {
    let installed =
        root.exists("usr/bin/cloud-init") && !root.exists("etc/cloud/cloud-init.disabled");
    wanted(handoff, conf.handoff.as_deref(), installed)
}

/// Writes the cloud-init hand-off (NoCloud seed and drop-in, [`seed`]) for
/// `ctx` into `root`. Returns the problems, one line each (unreadable secrets, failed
/// writes); what could be written is.
pub fn write(root: &RootDir, ctx: &Context) -> Vec<String> {
    let mut errors = Vec::new();
    let user = crate::state::read_payload(ctx.user_data.as_ref(), &mut errors);
    let vendor = crate::userdata::vendor_payload(&crate::state::read_payload(
        ctx.vendor_data.as_ref(),
        &mut errors,
    ));
    for (rel, data, mode) in seed(ctx, &user, &vendor) {
        if let Err(e) = root.write(&rel, &data, mode) {
            errors.push(format!("{rel}: {e}"));
        }
    }
    errors
}

/// The sysroot phase's part of the hand-off: cloud-init's generator (`ds-identify`) and its
/// local stage run long before `preroot-apply.service` (which waits for the network), and
/// ds-identify's choice of datasource overrides `/etc/cloud/cloud.cfg.d`. So the seed and
/// the drop-in must be in the root before it boots: written here, from the initramfs, into
/// the root at `target`. Returns a one-line summary, `None` when no hand-off is wanted.
pub fn sysroot(ctx: &mut Context, root: &RootDir, handoff: Option<&str>) -> Option<String> {
    let (conf, _) = match root.read(CONF) {
        Ok(Some(b)) => Config::parse(&String::from_utf8_lossy(&b)),
        Ok(None) => (Config::default(), Vec::new()),
        Err(e) => {
            // Unreadable is not absent: say so, then decide as without the file.
            ctx.warn("handoff", CONF, format!("{e}; read as absent"));
            (Config::default(), Vec::new())
        }
    };
    if !wanted_for(root, &conf, handoff) {
        return None;
    }
    let errors = write(root, ctx);
    for e in &errors {
        ctx.error("handoff", SEED_DIR, e.clone());
    }
    let summary = format!(
        "cloud-init hand-off: NoCloud seed in /{} and /{}{}",
        SEED_DIR,
        DROPIN,
        if errors.is_empty() {
            ""
        } else {
            " (with errors)"
        }
    );
    log::info!("sysroot: {summary}");
    Some(summary)
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
        let handoff = |text: &str| crate::cmdline::parse(text).handoff;
        assert_eq!(
            handoff("ro preroot.handoff=none quiet preroot.handoff=cloud-init").as_deref(),
            Some("cloud-init")
        );
        assert_eq!(handoff("ro"), None);
    }
}
