//! Shared test helpers: gating on what the machine has, and locating the shared fixtures.
//!
//! `require!(root, loop, tool "xorriso")` prints `SKIP <test>: needs <what>` and returns when
//! something is missing, unless `PREROOT_REQUIRE_ALL=1` (set by `.ci/run`), where it fails.
#![allow(dead_code)]

pub mod azure;
pub mod metadata;
pub mod netns;
pub mod qemu;

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

/// Everything under `dir`, sorted: (path relative to `dir`, `st_mode`, content; empty for a
/// directory). What `apply --dry-run` must leave alone; where secrets are kept.
pub fn snapshot(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if meta.is_dir() {
                todo.push(p.clone());
                out.push((rel, meta.permissions().mode(), Vec::new()));
            } else {
                out.push((
                    rel,
                    meta.permissions().mode(),
                    std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out.sort();
    out
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

/// SHA-256 (FIPS 180-4) of `data` as lower-case hex: the fixtures' `payload_sha256_of_utf8`.
/// A test-only helper, small enough not to be worth a dev-dependency.
pub fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(block[i * 4..i * 4 + 4].try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(v);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}
