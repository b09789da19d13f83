//! The state directory (`--state-dir`, default `/run/preroot/`): `context.json` and the secret
//! files beside it (`user-data`, `vendor-data`, `vendor-data2`, `password`, `files/NNNN`).
//!
//! Owns their names and modes: the directory is 0700, secrets are 0600, written atomically.
//! Never logs a secret's content. Reads them back with [`output::read_file`] within
//! [`CONTEXT_CAP`] and [`SECRET_CAP`]: a path in `context.json` that names a FIFO or a
//! device (`/dev/zero`) is an error naming it, never a read that blocks or never ends.

use crate::context::{detect_payload_type, Context, SecretFile};
use crate::output;
use std::io;
use std::path::{Path, PathBuf};

pub const DEFAULT_STATE_DIR: &str = "/run/preroot";
/// Largest `context.json` (and `apply.json`) read back.
pub const CONTEXT_CAP: u64 = 16 << 20;
/// Largest secret read back: user data and vendor data are capped at fetch, and so is one
/// injected file ([`crate::caps::USER_DATA_BYTES`]).
pub const SECRET_CAP: u64 = crate::caps::USER_DATA_BYTES as u64;

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

/// Reads `context.json` from the state directory.
pub fn load_context(state: &StateDir) -> Result<Context, String> {
    let path = state.path().join("context.json");
    let bytes = output::read_file(&path, CONTEXT_CAP).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn save_context(ctx: &Context, state: &StateDir) -> Result<(), String> {
    let json = serde_json::to_vec_pretty(ctx).map_err(|e| format!("context: {e}"))?;
    state
        .store_context(&json)
        .map(|_| ())
        .map_err(|e| format!("{}/context.json: {e}", state.path().display()))
}

/// Reads a secret file the context references (a regular file, at most [`SECRET_CAP`]); the
/// error names the path and why.
pub fn read_secret(path: &str) -> Result<Vec<u8>, String> {
    output::read_file(Path::new(path), SECRET_CAP).map_err(|e| e.to_string())
}

/// Reads a secret payload the context references (nothing when there is none); an unreadable
/// one adds its line to `errors` and reads as nothing.
pub fn read_payload(secret: Option<&SecretFile>, errors: &mut Vec<String>) -> Vec<u8> {
    let Some(s) = secret else {
        return Vec::new();
    };
    match read_secret(&s.path) {
        Ok(b) => b,
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    }
}
