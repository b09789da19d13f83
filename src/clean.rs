//! `preroot clean [--dry-run] [--ssh-host-keys] [--homes] [--root DIR]`: remove what makes an
//! instance this instance, so its disk can be imaged and booted elsewhere as a new one.
//!
//! What goes ([`plan`], pure over a listing of the root; [`clean`] does it through
//! [`RootDir`], no symlink followed):
//! - preroot's instance state: `var/lib/preroot/` (instances, semaphores, scripts), and
//!   `etc/preroot/{instance-id,manifest.json}` (`preroot.conf` stays);
//! - the files the manifest lists (network files, `/etc/hostname`); preroot's marked line in
//!   `/etc/hosts` (the rest of the file stays); the image's own files moved aside are put back;
//! - `/etc/machine-id` emptied in place (systemd's "uninitialized": a new id at next boot),
//!   and `var/lib/dbus/machine-id` removed when it is a file (systemd would copy it back);
//! - Heat's `var/lib/heat-cfntools/` (credentials) and the cloud-init hand-off files
//!   (`var/lib/cloud/seed/nocloud/`, `etc/cloud/cloud.cfg.d/99-preroot.cfg`);
//! - every regular file under `var/log/` truncated in place — mode, owner and the file itself
//!   stay (chromogenic's rule); `var/log/journal/` is left alone (binary journals);
//! - with `--ssh-host-keys`: `etc/ssh/ssh_host_*`;
//! - with `--homes`: `.ssh/authorized_keys` and `.bash_history` of `root` and each `home/*`
//!   (`root` and `home` themselves may be links, as on ostree systems). Home directories are
//!   never touched otherwise.
//!
//! `--dry-run` prints the same list and changes nothing.

use crate::output::RootDir;
use crate::sysroot::{Manifest, ASIDE, HOSTS_MARK};
use std::path::Path;

/// The flags of `preroot clean`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct What {
    pub ssh_host_keys: bool,
    pub homes: bool,
    pub dry_run: bool,
}

/// One change to the root (paths relative to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A file (or a symlink itself).
    Remove(String),
    /// A directory and everything in it.
    RemoveTree(String),
    /// Emptied in place.
    Truncate(String),
    /// `/etc/hosts` without preroot's marked line.
    Rewrite(String, String),
    /// An image file preroot moved aside, put back: (from, to).
    Restore(String, String),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Remove(p) => write!(f, "remove /{p}"),
            Action::RemoveTree(p) => write!(f, "remove /{p}/ (all of it)"),
            Action::Truncate(p) => write!(f, "truncate /{p}"),
            Action::Rewrite(p, _) => write!(f, "remove preroot's line from /{p}"),
            Action::Restore(from, to) => write!(f, "restore /{to} from /{from}"),
        }
    }
}

/// D-Bus's machine id, when it is a file of its own.
const DBUS_MACHINE_ID: &str = "var/lib/dbus/machine-id";

/// Paths under `var/log` never truncated.
const LOG_SKIP: &[&str] = &["var/log/journal"];

/// What to do, from the root's current state. Pure but for reading through `root`.
pub fn plan(root: &RootDir, what: &What) -> Vec<Action> {
    let mut out = Vec::new();
    for dir in [
        "var/lib/preroot",
        crate::apply::HEAT_DIR,
        "var/lib/cloud/seed/nocloud",
    ] {
        if root.exists(dir) {
            out.push(Action::RemoveTree(dir.into()));
        }
    }
    let manifest: Option<Manifest> = root
        .read("etc/preroot/manifest.json")
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(m) = &manifest {
        for f in &m.files {
            if f == "etc/hosts" {
                let hosts = root
                    .read(f)
                    .ok()
                    .flatten()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let kept: String = hosts
                    .lines()
                    .filter(|l| !l.trim_end().ends_with(HOSTS_MARK))
                    .map(|l| format!("{l}\n"))
                    .collect();
                if kept != hosts {
                    out.push(Action::Rewrite(f.clone(), kept));
                }
            } else if root.exists(f) {
                out.push(Action::Remove(f.clone()));
            }
        }
        for f in &m.moved_aside {
            let aside = format!("{f}{ASIDE}");
            if root.exists(&aside) {
                out.push(Action::Restore(aside, f.clone()));
            }
        }
    }
    for f in [
        "etc/preroot/manifest.json",
        "etc/preroot/instance-id",
        "etc/cloud/cloud.cfg.d/99-preroot.cfg",
    ] {
        if root.exists(f) {
            out.push(Action::Remove(f.into()));
        }
    }
    // A regular file with something in it, whatever its size (a read's cap is no answer).
    if root.read_len("etc/machine-id").is_some_and(|n| n > 0) {
        out.push(Action::Truncate("etc/machine-id".into()));
    }
    // D-Bus's own copy: systemd fills an empty /etc/machine-id from it ("Initializing
    // machine ID from D-Bus machine ID"), so an image that keeps it boots every instance
    // with the same id (found by the QEMU clean scenario; virt-sysprep removes it too). A
    // symlink to /etc/machine-id (what dbus sets up when it is there) is left alone: `read`
    // refuses symlinks.
    if root.read_len(DBUS_MACHINE_ID).is_some() {
        out.push(Action::Remove(DBUS_MACHINE_ID.into()));
    }
    if what.ssh_host_keys {
        for (name, is_dir) in root.list("etc/ssh").unwrap_or_default() {
            if !is_dir && name.starts_with("ssh_host_") {
                out.push(Action::Remove(format!("etc/ssh/{name}")));
            }
        }
    }
    logs(root, "var/log", 0, &mut out);
    if what.homes {
        // `root` and `home` may be the system's links (an ostree system's /root ->
        // var/roothome, /home -> var/home): resolved as the booted system would, confined to
        // the root. What is inside them is not followed.
        let system_dir = |d: &str| {
            crate::sysroot::resolve_in(root.path(), &format!("/{d}"))
                .ok()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| d.to_string())
        };
        let home = system_dir("home");
        let mut homes = vec![system_dir("root")];
        for (name, is_dir) in root.list(&home).unwrap_or_default() {
            if is_dir {
                homes.push(format!("{home}/{name}"));
            }
        }
        for h in homes {
            for f in [".ssh/authorized_keys", ".bash_history"] {
                let p = format!("{h}/{f}");
                if root.exists(&p) {
                    out.push(Action::Remove(p));
                }
            }
        }
    }
    out
}

/// Non-empty regular files under `dir`, to truncate (at most 8 levels deep).
fn logs(root: &RootDir, dir: &str, depth: u32, out: &mut Vec<Action>) {
    if depth > 8 || LOG_SKIP.contains(&dir) {
        return;
    }
    for (name, is_dir) in root.list(dir).unwrap_or_default() {
        let p = format!("{dir}/{name}");
        if is_dir {
            logs(root, &p, depth.saturating_add(1), out);
        } else if root.mode(&p).ok().flatten().is_some() && root.read_len(&p).is_some_and(|n| n > 0)
        {
            out.push(Action::Truncate(p));
        }
    }
}

/// Carries out (or, with `--dry-run`, prints) the plan. A file rewritten (`/etc/hosts`) gets
/// the label of the root's SELinux policy unless `labels` is false. Exit 0 done, 1 something
/// failed.
pub fn clean(target: Option<&Path>, what: &What, labels: bool) -> i32 {
    let path = target.unwrap_or(Path::new("/"));
    let root = match RootDir::open_labelled(path, labels && !what.dry_run) {
        Ok((root, problem)) => {
            if let Some(p) = problem {
                eprintln!("preroot: clean: {p}");
            }
            root
        }
        Err(e) => {
            eprintln!("preroot: {e}");
            return 1;
        }
    };
    if !root.exists("etc") {
        eprintln!("preroot: {}: no etc/, not a system root", path.display());
        return 1;
    }
    let actions = plan(&root, what);
    let mut failed = 0usize;
    for a in &actions {
        if what.dry_run {
            println!("would {a}");
            continue;
        }
        let result = match a {
            Action::Remove(p) => root.remove(p),
            Action::RemoveTree(p) => root.remove_tree(p),
            Action::Truncate(p) => root.truncate(p).map(|_| ()),
            Action::Rewrite(p, text) => {
                let mode = root.mode(p).ok().flatten().unwrap_or(0o644);
                root.write(p, text.as_bytes(), mode).map(|_| ())
            }
            Action::Restore(from, to) => root.remove(to).and_then(|()| root.rename_aside(from, to)),
        };
        match result {
            Ok(()) => println!("{a}"),
            Err(e) => {
                eprintln!("preroot: clean: {a}: {e}");
                failed = failed.saturating_add(1);
            }
        }
    }
    if actions.is_empty() {
        println!("nothing to clean");
    }
    if let Some(p) = root.label_problems() {
        eprintln!("preroot: clean: {p}");
        failed = failed.saturating_add(1);
    }
    i32::from(failed > 0)
}
