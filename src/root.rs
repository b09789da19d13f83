//! The replaceable root: every path to /proc, /sys, /dev (and later /sysroot) goes through
//! [`Root`], so tests point the whole program at a fake machine tree.
//!
//! Owns path joining and the small sysfs reads every stage needs. Never writes.

use crate::context::{normalize_mac, HostNic};
use crate::deadline::Deadline;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Present while udevd has events queued or running; systemd's `udev_queue_is_empty()` and
/// `udevadm settle` test the same file (systemd >= 247).
const UDEV_QUEUE: &str = "run/udev/queue";

/// How often the queue is looked at while waiting.
const UDEV_POLL: Duration = Duration::from_millis(100);

/// A filesystem root that stands for `/`.
#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
}

impl Default for Root {
    fn default() -> Root {
        Root::new("/")
    }
}

impl Root {
    pub fn new(base: impl Into<PathBuf>) -> Root {
        Root { base: base.into() }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `path` (absolute or relative) under this root.
    pub fn join(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        let rel = path.strip_prefix("/").unwrap_or(path);
        self.base.join(rel)
    }

    /// The kernel command line file.
    pub fn cmdline(&self) -> PathBuf {
        self.join("proc/cmdline")
    }

    /// Reads a small sysfs attribute, trimmed; `None` if absent or unreadable.
    pub fn sys_attr(&self, path: impl AsRef<Path>) -> Option<String> {
        // A regular file only (sysfs and procfs attributes are), so a FIFO in a fake tree
        // cannot block; a sysfs attribute is at most a page.
        let bytes = crate::output::read_file(&self.join(path), 65536).ok()?;
        let text = String::from_utf8_lossy(bytes.get(..4096).unwrap_or(&bytes));
        Some(text.trim().to_string())
    }

    /// The host's Ethernet-like NICs from `sys/class/net/*/address`, sorted by name.
    ///
    /// Skips `lo`, NICs without a valid or with an all-zero MAC, non-Ethernet `type`s
    /// (ARPHRD_ETHER is 1; InfiniBand 32 is kept), and virtual devices (those whose sysfs entry
    /// resolves under `devices/virtual/`: bridges, bonds, veth, tun made by the host itself).
    pub fn host_nics(&self) -> Vec<HostNic> {
        let dir = self.join("sys/class/net");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut nics = Vec::new();
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name == "lo" || name.starts_with('.') {
                continue;
            }
            let base = format!("sys/class/net/{name}");
            if let Some(kind) = self.sys_attr(format!("{base}/type")) {
                if kind != "1" && kind != "32" {
                    continue;
                }
            }
            if let Ok(target) = fs::read_link(entry.path()) {
                if target.to_string_lossy().contains("devices/virtual/") {
                    continue;
                }
            }
            let Some(mac) = self
                .sys_attr(format!("{base}/address"))
                .and_then(|m| normalize_mac(&m))
            else {
                continue;
            };
            if mac.split(':').all(|o| o == "00") {
                continue;
            }
            nics.push(HostNic { name, mac });
        }
        nics.sort_by(|a, b| a.name.cmp(&b.name));
        nics
    }
}

/// Waits until udev's event queue is empty (`<root>/run/udev/queue` absent) or `deadline`
/// passes; true when it is empty. Without udev (no `run/udev`), there is nothing to wait for.
pub fn wait_udev_settled(root: &Root, deadline: Deadline) -> bool {
    let queue = root.join(UDEV_QUEUE);
    while queue.exists() {
        if deadline.passed() {
            return false;
        }
        std::thread::sleep(UDEV_POLL.min(deadline.remaining()));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_strips_leading_slash() {
        let r = Root::new("/tmp/x");
        assert_eq!(
            r.join("/proc/cmdline"),
            PathBuf::from("/tmp/x/proc/cmdline")
        );
        assert_eq!(r.join("sys"), PathBuf::from("/tmp/x/sys"));
    }

    #[test]
    fn host_nics_filters() {
        let dir = std::env::temp_dir().join(format!("preroot-root-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (name, mac, kind) in [
            ("lo", "00:00:00:00:00:00", Some("772")),
            ("eth1", "FA:16:3E:00:00:02\n", None),
            ("eth0", "fa:16:3e:00:00:01", Some("1")),
            ("sit0", "00:00:00:00", Some("776")),
            ("zero", "00:00:00:00:00:00", None),
            ("junk", "not a mac", None),
        ] {
            let d = dir.join("sys/class/net").join(name);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("address"), mac).unwrap();
            if let Some(k) = kind {
                fs::write(d.join("type"), k).unwrap();
            }
        }
        fs::create_dir_all(dir.join("sys/class/net/noaddr")).unwrap();
        let nics = Root::new(&dir).host_nics();
        let _ = fs::remove_dir_all(&dir);
        let got: Vec<_> = nics
            .iter()
            .map(|n| (n.name.as_str(), n.mac.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![("eth0", "fa:16:3e:00:00:01"), ("eth1", "fa:16:3e:00:00:02")]
        );
    }

    #[test]
    fn waits_for_udev_queue_to_drain() {
        let dir = std::env::temp_dir().join(format!("preroot-udevq-{}", std::process::id()));
        let root = Root::new(&dir);
        let queue = root.join(UDEV_QUEUE);
        std::fs::create_dir_all(queue.parent().unwrap()).unwrap();
        // No queue: no wait.
        assert!(wait_udev_settled(&root, Deadline::after(Duration::ZERO)));
        // A queue that never drains: false once the deadline passes.
        std::fs::write(&queue, b"").unwrap();
        let t = std::time::Instant::now();
        assert!(!wait_udev_settled(
            &root,
            Deadline::after(Duration::from_millis(250))
        ));
        assert!(t.elapsed() >= Duration::from_millis(250));
        // A queue that drains meanwhile: true, before the deadline.
        let q = queue.clone();
        let drain = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            std::fs::remove_file(q).unwrap();
        });
        let t = std::time::Instant::now();
        assert!(wait_udev_settled(
            &root,
            Deadline::after(Duration::from_secs(30))
        ));
        assert!(t.elapsed() < Duration::from_secs(5));
        drain.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
