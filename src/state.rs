//! The state directory (`--state-dir`, default `/run/preroot/`): `context.json` and the secret
//! files beside it (`user-data`, `vendor-data`, `vendor-data2`, `password`, `files/NNNN`).
//!
//! Owns their names and modes: the directory is 0700, secrets are 0600, written atomically.
//! Never logs a secret's content.

use crate::context::{detect_payload_type, SecretFile};
use crate::output;
use std::io;
use std::path::{Path, PathBuf};

pub const DEFAULT_STATE_DIR: &str = "/run/preroot";

#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// A relative `dir` is made absolute against the working directory, so the paths the
    /// context records stay valid for whoever reads it later.
    pub fn new(dir: impl Into<PathBuf>) -> StateDir {
        let dir = dir.into();
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        StateDir { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Stores a secret as `name` (mode 0600) and returns its reference for the context.
    /// `name` may have one directory level (`files/0000`), created 0700.
    pub fn store_secret(&self, name: &str, data: &[u8]) -> io::Result<SecretFile> {
        let (dir, file) = match name.split_once('/') {
            Some((sub, file)) => (self.dir.join(sub), file),
            None => (self.dir.clone(), name),
        };
        output::ensure_dir(&self.dir, 0o700)?;
        output::ensure_dir(&dir, 0o700)?;
        let path = output::write_atomic(&dir, file, data, 0o600)?;
        Ok(SecretFile {
            path: path.display().to_string(),
            size: u64::try_from(data.len()).unwrap_or(u64::MAX),
            kind: detect_payload_type(data),
        })
    }

    /// Writes `context.json` (0644: it holds no secrets).
    pub fn store_context(&self, json: &[u8]) -> io::Result<PathBuf> {
        output::ensure_dir(&self.dir, 0o700)?;
        output::write_atomic(&self.dir, "context.json", json, 0o644)
    }
}
