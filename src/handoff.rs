//! Hand-off to userspace written by the `fetch` phase, beside the context in `/run`:
//! `/run/metadata/preroot`, an environment file in the style of Afterburn's
//! `/run/metadata/afterburn` (`PREROOT_INSTANCE_ID=`, `PREROOT_HOSTNAME=`, `PREROOT_PLATFORM=`),
//! and OpenStack's `random_seed` fed to `/dev/urandom` early, as cloud-init does (mixed into
//! the pool, not credited as entropy).
//!
//! The environment file is read by systemd's `EnvironmentFile=` and by shells: a value that
//! is not plain printable ASCII without quotes, `$`, backslashes or spaces is left out with a
//! log line, never written. Never carries a secret.

use crate::context::Context;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `/run/metadata/preroot`, relative to the root.
pub const METADATA_ENV: &str = "run/metadata/preroot";

/// The environment file's content.
pub fn metadata_env(ctx: &Context) -> String {
    let platform = ctx.platform.map(|p| p.to_string());
    let mut out = String::new();
    for (key, value) in [
        ("PREROOT_INSTANCE_ID", ctx.instance_id.as_deref()),
        ("PREROOT_HOSTNAME", ctx.hostname.as_deref()),
        ("PREROOT_PLATFORM", platform.as_deref()),
    ] {
        let Some(value) = value else { continue };
        let safe = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\' | b'$' | b'`'));
        if safe {
            out.push_str(&format!("{key}={value}\n"));
        } else {
            log::warn!("handoff: {key} left out of {METADATA_ENV}: its value is not plain text");
        }
    }
    out
}

/// Writes the environment file under `root` and feeds the random seed to `<root>/dev/urandom`.
/// Failures are recorded in the context; the boot goes on.
pub fn write(ctx: &mut Context, root: &Path) {
    let env = metadata_env(ctx);
    let dir = root.join("run/metadata");
    let result = crate::output::ensure_dir(&dir, 0o755)
        .and_then(|()| crate::output::write_atomic(&dir, "preroot", env.as_bytes(), 0o644));
    if let Err(e) = result {
        ctx.error("handoff", &format!("/{METADATA_ENV}"), e.to_string());
    }
    if let Some(seed) = ctx.random_seed.clone() {
        match crate::base64::strict(&seed) {
            Some(bytes) => {
                let urandom = root.join("dev/urandom");
                // Non-blocking, and only the character device: under a --root tree a FIFO
                // in its place would make the open wait for a reader.
                if let Err(e) = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                    .open(&urandom)
                    .and_then(|f| {
                        use std::os::unix::fs::FileTypeExt;
                        if f.metadata()?.file_type().is_char_device() {
                            Ok(f)
                        } else {
                            Err(std::io::Error::other("not a character device"))
                        }
                    })
                    .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
                {
                    ctx.warn(
                        "handoff",
                        "random_seed",
                        format!("{}: {e}", urandom.display()),
                    );
                } else {
                    log::info!(
                        "handoff: {} bytes of random_seed mixed into the pool",
                        bytes.len()
                    );
                }
            }
            None => ctx.warn("handoff", "random_seed", "not valid base64; not used"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Access, Platform, Source, SourceKind};

    #[test]
    fn env_file_keeps_only_plain_values() {
        let mut ctx = Context::new(
            Some(Platform::Openstack),
            Source {
                kind: SourceKind::ConfigDrive,
                medium: Access::Directory,
                location: String::new(),
                partition_of: None,
            },
        );
        ctx.instance_id = Some("i-0abc".into());
        ctx.hostname = Some("web1".into());
        assert_eq!(
            metadata_env(&ctx),
            "PREROOT_INSTANCE_ID=i-0abc\nPREROOT_HOSTNAME=web1\nPREROOT_PLATFORM=openstack\n"
        );
        for bad in ["a\nPREROOT_PLATFORM=evil", "$(reboot)", "a b", "", "x\"y"] {
            ctx.instance_id = Some(bad.into());
            assert!(!metadata_env(&ctx).contains("INSTANCE_ID"), "case {bad:?}");
        }
    }
}
