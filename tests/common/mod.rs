//! Shared test helpers: gating on what the machine has, and locating the shared fixtures.
//!
//! `require!(root, loop, tool "xorriso")` prints `SKIP <test>: needs <what>` and returns when
//! something is missing, unless `PREROOT_REQUIRE_ALL=1` (set by `.ci/run`), where it fails.
#![allow(dead_code)]

pub mod metadata;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Is the test process root?
pub fn is_root() -> bool {
    // SAFETY-free: read the effective uid from /proc instead of calling libc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Can we make loop devices?
pub fn has_loop() -> bool {
    is_root() && Path::new("/dev/loop-control").exists() && has_tool("losetup")
}

/// Is `tool` on PATH?
pub fn has_tool(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// What a missing requirement does: skip visibly, or fail under `PREROOT_REQUIRE_ALL=1`.
pub fn missing(test: &str, what: &str) {
    if std::env::var("PREROOT_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{test}: needs {what}, and PREROOT_REQUIRE_ALL=1 forbids skipping");
    }
    eprintln!("SKIP {test}: needs {what}");
}

/// `require!(test_name; root, loop, tool "xorriso", ...)`: returns from the test when missing.
#[macro_export]
macro_rules! require {
    (@item root) => { $crate::common::Need::Root };
    (@item loop) => { $crate::common::Need::Loop };
    (@item $tool:literal) => { $crate::common::Need::Tool($tool) };
    ($test:expr; $($what:tt),+ $(,)?) => {
        if let Some(what) = $crate::common::first_missing(&[$(require!(@item $what)),+]) {
            $crate::common::missing($test, &what);
            return;
        }
    };
}

pub enum Need {
    Root,
    Loop,
    Tool(&'static str),
}

pub fn first_missing(needs: &[Need]) -> Option<String> {
    needs.iter().find_map(|n| match n {
        Need::Root if !is_root() => Some("root".to_string()),
        Need::Loop if !has_loop() => Some("loop devices (root, /dev/loop-control, losetup)".into()),
        Need::Tool(t) if !has_tool(t) => Some(format!("the tool `{t}`")),
        _ => None,
    })
}

/// `../shared/fixtures` relative to the crate (or `$PREROOT_FIXTURES`).
pub fn fixtures() -> PathBuf {
    if let Ok(p) = std::env::var("PREROOT_FIXTURES") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "preroot-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loop device over an image file, with partition scan; detached on drop.
pub struct LoopDev {
    pub dev: String,
}

impl LoopDev {
    pub fn attach(image: &Path, sector_size: Option<u32>) -> LoopDev {
        let mut cmd = Command::new("losetup");
        cmd.args(["--find", "--show", "--partscan"]);
        if let Some(s) = sector_size {
            cmd.arg(format!("--sector-size={s}"));
        }
        let out = cmd.arg(image).output().expect("losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // Partitions appear asynchronously, and on this kernel `partx -u` alone added only the
        // first one: ask with -u and -a (which errors on those already there) and wait below.
        for flag in ["-u", "-a"] {
            let _ = Command::new("partx")
                .args([flag, &dev])
                .stderr(std::process::Stdio::null())
                .status();
        }
        LoopDev { dev }
    }

    /// Waits up to 5 s for `<dev>p<n>` to exist.
    pub fn partition(&self, n: u32) -> PathBuf {
        let p = PathBuf::from(format!("{}p{n}", self.dev));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !p.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} never appeared",
                p.display()
            );
            let _ = Command::new("blockdev")
                .args(["--rereadpt", &self.dev])
                .status();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        p
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Writes a fake machine tree under `root`: `proc/cmdline` and `sys/class/net/<name>/address`.
pub fn fake_machine(root: &Path, cmdline: &str, nics: &[(&str, &str)]) {
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(root.join("proc/cmdline"), cmdline).unwrap();
    for (name, mac) in nics {
        let nic = root.join("sys/class/net").join(name);
        std::fs::create_dir_all(&nic).unwrap();
        std::fs::write(nic.join("address"), format!("{mac}\n")).unwrap();
    }
}

/// `preroot context --root ROOT --state-dir STATE [extra...]`, with its output.
pub fn context_cmd(root: &Path, state: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args([
            "context",
            "--root",
            root.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .expect("run preroot")
}
