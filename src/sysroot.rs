//! The `sysroot` phase's configuration step: writes the network configuration, the hostname
//! and preroot's `/etc/hosts` line into the root the system will boot, once per instance.
//!
//! - **Where**: `/sysroot`; with `ostree=` on the command line, the deployment that will boot.
//!   The unit runs after `ostree-prepare-root.service`, which makes /sysroot the deployment
//!   and leaves `/run/ostree-booted`; when that did not happen (no systemd, no prepare-root),
//!   the `ostree=` link is resolved here, confined to /sysroot ([`resolve_in`]).
//! - **Which format**: `preroot.render=`, else what the root enables or ships ([`choose`]).
//! - **What preroot owns**: the network files it names itself (`10-preroot-*`, `preroot-*`,
//!   `50-preroot`), `/etc/hostname`, its marked line in `/etc/hosts`, and `/etc/preroot/`
//!   (`instance-id`, `manifest.json`). Where a format fixes the name (`ifcfg-eth0`) and the
//!   image ships that file, it is moved aside once to `NAME.preroot-orig`. Nothing else is
//!   touched, and no symlink is followed ([`RootDir`]).
//! - **Once per instance**: the state is kept in the root's `/etc/preroot/` (`/var` may not
//!   be mounted yet in the initrd). When the instance id is the one recorded, nothing is
//!   written: the files stay as the user may have changed them. A new id renders afresh and
//!   removes the files of the old one that the new render does not write.
//!
//! The decisions ([`choose`], [`hosts_with`], [`plan`]) are pure; [`configure`] does the I/O.

use crate::cloudconfig::Directives;
use crate::cmdline::Cmdline;
use crate::context::Context;
use crate::netformat::NetFormat;
use crate::output::RootDir;
use crate::render::{self, RenderedFile};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// preroot's state in the configured root.
pub const STATE_DIR: &str = "etc/preroot";
const INSTANCE_ID: &str = "etc/preroot/instance-id";
const MANIFEST: &str = "etc/preroot/manifest.json";
/// Suffix of an image's own file that preroot moved aside.
pub const ASIDE: &str = ".preroot-orig";
/// The end of preroot's line in /etc/hosts.
pub const HOSTS_MARK: &str = "# preroot";

/// What the root contains that says which network manager reads its configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    pub nm_enabled: bool,
    pub nm_installed: bool,
    pub networkd_enabled: bool,
    pub networkd_installed: bool,
    /// `/etc/network/interfaces` and `ifup`.
    pub ifupdown: bool,
    /// `/etc/sysconfig/network-scripts`.
    pub network_scripts: bool,
}

impl Facts {
    pub fn probe(root: &RootDir) -> Facts {
        let any = |paths: &[&str]| paths.iter().any(|p| root.exists(p));
        let wants = "etc/systemd/system/multi-user.target.wants";
        Facts {
            nm_enabled: any(&[
                &format!("{wants}/NetworkManager.service"),
                "etc/systemd/system/dbus-org.freedesktop.NetworkManager.service",
            ]),
            nm_installed: any(&["usr/sbin/NetworkManager"]),
            networkd_enabled: any(&[
                &format!("{wants}/systemd-networkd.service"),
                "etc/systemd/system/dbus-org.freedesktop.network1.service",
                "etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
            ]),
            networkd_installed: any(&[
                "usr/lib/systemd/systemd-networkd",
                "lib/systemd/systemd-networkd",
            ]),
            ifupdown: root.exists("etc/network/interfaces") && any(&["usr/sbin/ifup", "sbin/ifup"]),
            network_scripts: root.exists("etc/sysconfig/network-scripts"),
        }
    }
}

/// The format for a root: what is enabled first (NetworkManager, then systemd-networkd),
/// then what is configured by files alone (ifupdown, network-scripts), then what is merely
/// installed. `None`: nothing in the root would read a file of ours.
pub fn choose(f: &Facts) -> Option<NetFormat> {
    [
        (f.nm_enabled, NetFormat::Nm),
        (f.networkd_enabled, NetFormat::Networkd),
        (f.ifupdown, NetFormat::Eni),
        (f.network_scripts, NetFormat::Ifcfg),
        (f.nm_installed, NetFormat::Nm),
        (f.networkd_installed, NetFormat::Networkd),
    ]
    .into_iter()
    .find_map(|(yes, name)| yes.then_some(name))
}

/// `/etc/hosts` with preroot's one line for `hostname` (replacing any earlier one), every
/// other line kept as it was.
pub fn hosts_with(existing: &str, hostname: &str) -> String {
    let short = hostname.split('.').next().unwrap_or(hostname);
    let names = if short == hostname {
        hostname.to_string()
    } else {
        format!("{hostname} {short}")
    };
    let mut out: String = existing
        .lines()
        .filter(|l| !l.trim_end().ends_with(HOSTS_MARK))
        .flat_map(|l| [l, "\n"])
        .collect();
    out.push_str(&format!("127.0.1.1 {names} {HOSTS_MARK}\n"));
    out
}

/// What preroot recorded in the root at the last configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub instance_id: Option<String>,
    /// The network format used, if any.
    pub renderer: Option<String>,
    /// Files preroot wrote (relative to the root), `/etc/hosts` included when it edited it.
    pub files: Vec<String>,
    /// The image's own files moved aside (`NAME` → `NAME.preroot-orig`).
    pub moved_aside: Vec<String>,
}

/// The files to write for a context: network files (unless `format` is `None`), then
/// `/etc/hostname` and `/etc/hosts` as the directives allow. `hosts` is the root's current
/// /etc/hosts. A value that cannot be written is skipped ([`render::checked`]; a host name
/// that breaks the rule gives no hostname and no hosts line) and named in the second list,
/// so one bad value never leaves the root without the rest.
pub fn plan(
    ctx: &Context,
    format: Option<NetFormat>,
    directives: &Directives,
    hosts: &str,
) -> (Vec<RenderedFile>, Vec<render::RenderError>) {
    let (mut files, mut skipped) = match format {
        Some(f) if !ctx.network.links.is_empty() => render::checked(f, ctx),
        _ => (Vec::new(), Vec::new()),
    };
    if let (Some(name), true) = (&ctx.hostname, directives.sets_hostname()) {
        // The context only holds validated names; check again, since a context file can come
        // from anywhere (`preroot render --context`).
        match crate::context::validate_hostname(name) {
            Ok(name) => {
                let short = name.split('.').next().unwrap_or(&name);
                files.push(RenderedFile {
                    path: "etc/hostname".into(),
                    content: format!("{short}\n"),
                    mode: 0o644,
                });
                if directives.manages_hosts() {
                    files.push(RenderedFile {
                        path: "etc/hosts".into(),
                        content: hosts_with(hosts, &name),
                        mode: 0o644,
                    });
                }
            }
            Err(why) => skipped.push(render::RenderError {
                object: "hostname".into(),
                message: format!(
                    "\"{}\" refused: {why}; /etc/hostname and /etc/hosts not written",
                    crate::text::show(name)
                ),
            }),
        }
    }
    (files, skipped)
}

/// The root's `/etc/hosts`, to add preroot's line to. A symlink there gets the rule every
/// file preroot owns gets ([`RootDir::write`] replaces the link, never writes through it): the
/// text it points to is read, confined to the root ([`resolve_in`]), and kept in the regular
/// file that replaces the link; a link that leads nowhere counts as an empty file.
fn read_hosts(root: &RootDir) -> Result<String, String> {
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    match root.read("etc/hosts") {
        Ok(bytes) => Ok(bytes.map(text).unwrap_or_default()),
        Err(_)
            if std::fs::symlink_metadata(root.path().join("etc/hosts"))
                .is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            let target = resolve_in(root.path(), "/etc/hosts");
            let bytes = target.ok().and_then(|rel| root.read(&rel).ok().flatten());
            log::info!("sysroot: etc/hosts is a symlink; replaced by a file with its text");
            Ok(bytes.map(text).unwrap_or_default())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Is `path` a file whose name the format fixes (so the image may ship its own)?
fn fixed_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    !name.contains("preroot") && path != "etc/hostname" && path != "etc/hosts"
}

/// Resolves `path` (absolute, as on the booted system) inside `root`, following symlinks
/// the way the booted system would but never leaving `root`: an absolute link target starts
/// again at `root`, `..` stops at it. Returns the resolved path relative to `root`.
pub fn resolve_in(root: &Path, path: &str) -> Result<String, String> {
    let mut todo: Vec<String> = path.split('/').rev().map(String::from).collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0u32;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let here: PathBuf = root.join(done.iter().collect::<PathBuf>()).join(&c);
        let meta =
            std::fs::symlink_metadata(&here).map_err(|e| format!("{}: {e}", here.display()))?;
        if meta.file_type().is_symlink() {
            links = links.saturating_add(1);
            if links > 32 {
                return Err(format!("{path}: too many symlinks"));
            }
            let target =
                std::fs::read_link(&here).map_err(|e| format!("{}: {e}", here.display()))?;
            let target = target.to_string_lossy();
            if target.starts_with('/') {
                done.clear();
            }
            todo.extend(target.split('/').rev().map(String::from));
        } else {
            done.push(c);
        }
    }
    Ok(done.join("/"))
}

/// The directory the booted system's `/` will be: /sysroot, or the ostree deployment.
pub fn target(cmd: &Cmdline, sysroot: &Path, ostree_booted: bool) -> Result<PathBuf, String> {
    match &cmd.ostree {
        Some(link) if !ostree_booted => {
            let rel = resolve_in(sysroot, link).map_err(|e| format!("ostree={link}: {e}"))?;
            Ok(sysroot.join(rel))
        }
        _ => Ok(sysroot.to_path_buf()),
    }
}

/// Opens the root at `target` for writing, with the labels of its own SELinux policy unless
/// `labels` is false (docs/selinux.md). A policy that cannot be read is one error in the
/// context, and the root is then written unlabelled; `Err` (also recorded) when the root
/// cannot be opened at all.
pub fn open_root(ctx: &mut Context, target: &Path, labels: bool) -> Result<RootDir, String> {
    let shown = target.display().to_string();
    match RootDir::open_labelled(target, labels) {
        Ok((root, problem)) => {
            if let Some(p) = problem {
                log::error!("sysroot: {shown}: {p}");
                ctx.error("selinux", &shown, p);
            }
            Ok(root)
        }
        Err(e) => {
            ctx.error("sysroot", &shown, e.to_string());
            Err(e.to_string())
        }
    }
}

/// Records in the context the labels `root` could not set (one line), after its writes.
pub fn record_label_problems(ctx: &mut Context, root: &RootDir) {
    if let Some(p) = root.label_problems() {
        ctx.error("selinux", &root.path().display().to_string(), p);
    }
}

/// `preroot show`'s SELinux check of the root at `path`: for every file of the manifest,
/// preroot's own state files and `extra` (root-relative; the missing ones are skipped),
/// whether its label is the one the root's policy gives it. One line per file that is not,
/// then one summary line; with SELinux off in the root, one line saying so. Never fails.
pub fn check_labels(path: &Path, extra: &[&str]) -> Vec<String> {
    use crate::selinux::{FileKind, Labeler, Verdict};
    let labeler = match Labeler::open(path) {
        Ok(Some(l)) => l,
        Ok(None) => {
            return vec![format!(
            "selinux: off in {} (no etc/selinux/config, or SELINUX=disabled): no labels to check",
            path.display()
        )]
        }
        Err(e) => return vec![format!("selinux: labels not checked: {e}")],
    };
    let root = match RootDir::open(path) {
        Ok(r) => r,
        Err(e) => return vec![format!("selinux: labels not checked: {e}")],
    };
    let mut files: Vec<String> = root
        .read(MANIFEST)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
        .map(|m| m.files)
        .unwrap_or_default();
    files.extend([MANIFEST, INSTANCE_ID].iter().map(|p| p.to_string()));
    files.extend(extra.iter().map(|p| p.to_string()));
    files.dedup();
    let mut out = Vec::new();
    let mut checked = 0usize;
    for rel in files.iter().filter(|rel| root.exists(rel)) {
        checked = checked.saturating_add(1);
        let shown = format!("/{rel}");
        let have = match root.label_of(rel) {
            Ok(have) => have,
            Err(e) => {
                out.push(format!("selinux: {shown}: label not read: {e}"));
                continue;
            }
        };
        match labeler.verify(&shown, FileKind::Regular, have.as_deref()) {
            Verdict::Matches => {}
            Verdict::Missing { want } => {
                out.push(format!(
                    "selinux: {shown}: no label; the policy gives {want}"
                ));
            }
            Verdict::Wrong { want, have } => {
                out.push(format!(
                    "selinux: {shown}: labelled {have}; the policy gives {want}"
                ));
            }
            Verdict::Unexpected { have } => {
                out.push(format!(
                    "selinux: {shown}: labelled {have}; the policy gives no label"
                ));
            }
            Verdict::Unknown { why } => {
                out.push(format!(
                    "selinux: {shown}: the policy's label is unknown: {why}"
                ));
            }
        }
    }
    let policy = labeler.policy_type();
    out.push(if out.is_empty() {
        format!("selinux: all {checked} files of preroot's carry policy {policy}'s labels")
    } else {
        format!(
            "selinux: {} of {checked} files of preroot's do not carry policy {policy}'s labels",
            out.len()
        )
    });
    out
}

/// Configures `root` (opened by [`open_root`]); returns a one-line summary. Errors are
/// recorded in the context; what was written before an error stays (each file is whole, old
/// or new).
pub fn configure(
    ctx: &mut Context,
    cmd: &Cmdline,
    directives: &Directives,
    root: &RootDir,
) -> String {
    let target = root.path();
    let result = (|| -> Result<String, String> {
        if !root.exists("etc") {
            return Err(format!("{}: no etc/, not a system root", target.display()));
        }
        let old: Manifest = match root.read(MANIFEST).map_err(|e| e.to_string())? {
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                log::warn!("{MANIFEST}: {e}; treating as absent");
                Manifest::default()
            }),
            None => Manifest::default(),
        };
        let recorded = root
            .read(INSTANCE_ID)
            .map_err(|e| e.to_string())?
            .map(|b| String::from_utf8_lossy(&b).trim().to_string());
        if let (Some(id), Some(rec)) = (&ctx.instance_id, &recorded) {
            if id == rec {
                return Ok(format!(
                    "instance {id} already configured; its files are left as they are"
                ));
            }
        }
        let format = match (cmd.network, cmd.render) {
            (Some(false), _) => None,
            (_, Some(r)) => Some(r),
            _ => choose(&Facts::probe(root)),
        };
        let hosts = read_hosts(root)?;
        let (files, skipped) = plan(ctx, format, directives, &hosts);
        for e in skipped {
            ctx.error("sysroot", &e.object, e.message);
        }
        let mut manifest = Manifest {
            instance_id: ctx.instance_id.clone(),
            renderer: format.map(|f| f.name().to_string()),
            files: Vec::new(),
            moved_aside: old.moved_aside.clone(),
        };
        // The old instance's files that this render does not write again.
        for stale in old
            .files
            .iter()
            .filter(|p| !files.iter().any(|f| &&f.path == p))
        {
            if stale != "etc/hosts" && stale != "etc/hostname" {
                root.remove(stale).map_err(|e| e.to_string())?;
                log::info!("sysroot: removed {stale} of the previous instance");
            }
        }
        let mut written = 0usize;
        for f in &files {
            if fixed_name(&f.path)
                && !old.files.contains(&f.path)
                && root.exists(&f.path)
                && !manifest.moved_aside.contains(&f.path)
            {
                let aside = format!("{}{ASIDE}", f.path);
                root.rename_aside(&f.path, &aside)
                    .map_err(|e| e.to_string())?;
                log::info!("sysroot: moved the image's {} aside to {aside}", f.path);
                manifest.moved_aside.push(f.path.clone());
            }
            if root
                .write(&f.path, f.content.as_bytes(), f.mode)
                .map_err(|e| e.to_string())?
            {
                written = written.saturating_add(1);
            }
            manifest.files.push(f.path.clone());
        }
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
        root.write(MANIFEST, &json, 0o644)
            .map_err(|e| e.to_string())?;
        // Last: the instance id says the configuration above is complete.
        if let Some(id) = &ctx.instance_id {
            root.write(INSTANCE_ID, format!("{id}\n").as_bytes(), 0o644)
                .map_err(|e| e.to_string())?;
        }
        Ok(format!(
            "{} ({}): {written} of {} files written{}",
            target.display(),
            format.map_or("no network format", NetFormat::name),
            files.len(),
            root.labeler().map_or(String::new(), |l| format!(
                ", SELinux labels of policy {}",
                l.policy_type()
            ))
        ))
    })();
    match result {
        Ok(summary) => {
            log::info!("sysroot: {summary}");
            summary
        }
        Err(e) => {
            ctx.error("sysroot", &target.display().to_string(), e.clone());
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_what_the_root_enables() {
        let f = |nm_enabled, networkd_enabled, ifupdown, network_scripts, nm_installed| Facts {
            nm_enabled,
            nm_installed,
            networkd_enabled,
            networkd_installed: true,
            ifupdown,
            network_scripts,
        };
        assert_eq!(
            choose(&f(true, true, true, true, true)),
            Some(NetFormat::Nm)
        );
        assert_eq!(
            choose(&f(false, true, true, true, true)),
            Some(NetFormat::Networkd)
        );
        assert_eq!(
            choose(&f(false, false, true, true, true)),
            Some(NetFormat::Eni)
        );
        assert_eq!(
            choose(&f(false, false, false, true, true)),
            Some(NetFormat::Ifcfg)
        );
        assert_eq!(
            choose(&f(false, false, false, false, true)),
            Some(NetFormat::Nm)
        );
        assert_eq!(
            choose(&f(false, false, false, false, false)),
            Some(NetFormat::Networkd)
        );
        assert_eq!(choose(&Facts::default()), None);
    }

    #[test]
    fn hosts_line_is_replaced_not_repeated() {
        let base = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n";
        let once = hosts_with(base, "web1.example.org");
        assert_eq!(
            once,
            format!("{base}127.0.1.1 web1.example.org web1 {HOSTS_MARK}\n")
        );
        let twice = hosts_with(&once, "db");
        assert_eq!(twice, format!("{base}127.0.1.1 db {HOSTS_MARK}\n"));
        assert_eq!(hosts_with("", "a"), format!("127.0.1.1 a {HOSTS_MARK}\n"));
    }

    #[test]
    fn directives_gate_hostname_and_hosts() {
        let mut ctx = Context::new(
            None,
            crate::context::Source {
                kind: crate::context::SourceKind::KernelCmdline,
                medium: crate::context::Access::Cmdline,
                location: String::new(),
                partition_of: None,
            },
        );
        ctx.hostname = Some("web1.example.org".into());
        let paths = |d: &Directives| -> Vec<String> {
            plan(&ctx, None, d, "")
                .0
                .into_iter()
                .map(|f| f.path)
                .collect()
        };
        assert_eq!(paths(&Directives::default()), ["etc/hostname", "etc/hosts"]);
        let no_hosts = Directives {
            manage_etc_hosts: Some(false),
            ..Directives::default()
        };
        assert_eq!(paths(&no_hosts), ["etc/hostname"]);
        let keep = Directives {
            preserve_hostname: Some(true),
            ..Directives::default()
        };
        assert!(paths(&keep).is_empty());
        ctx.hostname = Some("bad\nname".into());
        let (files, skipped) = plan(&ctx, None, &Directives::default(), "");
        assert!(files.is_empty() && skipped.len() == 1, "{skipped:?}");
    }

    #[test]
    fn fixed_names() {
        assert!(fixed_name("etc/sysconfig/network-scripts/ifcfg-eth0"));
        assert!(!fixed_name("etc/systemd/network/10-preroot-eth0.network"));
        assert!(!fixed_name("etc/network/interfaces.d/50-preroot"));
        assert!(!fixed_name("etc/hostname"));
    }
}
