// SPDX-License-Identifier: Apache-2.0
//! Build script: the commit `preroot --version` names (issue 18). The only thing it adds to
//! the binary is that string.
//!
//! From a git checkout of this crate, `PREROOT_COMMIT` is set to `git rev-parse --short=12
//! HEAD`; from `make dist`'s tarball (no `.git`) it is left empty and `--version` prints the
//! version alone. A packager may set `PREROOT_COMMIT` in the environment to name the commit
//! the tarball was cut from. The checkout must be this crate's own: a tarball unpacked inside
//! some other repository (rpmbuild's BUILD directory under a checkout) must not pick up that
//! repository's HEAD, so the work tree's top must be the manifest directory.
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=PREROOT_COMMIT");
    let dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = match std::env::var("PREROOT_COMMIT") {
        Ok(c) => c,
        Err(_) => from_git(&dir).unwrap_or_default(),
    };
    println!("cargo:rustc-env=PREROOT_COMMIT={commit}");
}

fn from_git(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the ref it points at (a
    // commit), wherever this work tree keeps them (a worktree's HEAD is not in `.git/`).
    for path in ["HEAD", "packed-refs"] {
        watch(dir, git(dir, &["rev-parse", "--git-path", path]));
    }
    if let Some(r) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch(dir, git(dir, &["rev-parse", "--git-path", &r]));
    }
    git(dir, &["rev-parse", "--short=12", "HEAD"])
}

/// `rerun-if-changed` for a git file that exists (a missing one would rerun every build).
fn watch(dir: &Path, path: Option<String>) {
    if let Some(p) = path.map(|p| dir.join(p)).filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
