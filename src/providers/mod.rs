//! Datasources: each turns one medium's tree into a [`Context`].
//!
//! `configdrive.rs` (OpenStack config drive), `nocloud.rs` (NoCloud seed, with `netconfig.rs`
//! for network-config v1/v2), `opennebula.rs` (`context.sh`). They read through
//! [`crate::media::Tree`] with the caps below and put secrets in the state directory, never in
//! the context. A problem with a required document is a [`DatasourceError`]; a problem with an
//! optional one is recorded in `Context::errors` and the rest is kept. Never writes anywhere
//! but the state directory; never touches the network.

pub mod configdrive;
pub mod ec2;
pub mod gce;
pub mod kernel;
pub mod netconfig;
pub mod nocloud;
pub mod opennebula;
pub mod service;

use crate::context::{Context, HostNic, SecretFile, Source};
use crate::media::{MediaError, MediaErrorKind, Tree};
use crate::state::StateDir;
use std::fmt;

/// Cap on one metadata document (JSON, YAML, `context.sh`).
pub const METADATA_CAP: u64 = 1024 * 1024;
/// Cap on user data and vendor data.
pub const USERDATA_CAP: u64 = 16 * 1024 * 1024;
/// Cap on the number of ssh keys kept (more are dropped with a warning).
pub const MAX_SSH_KEYS: usize = 256;
/// Cap on the number of links in a network description.
pub const MAX_LINKS: usize = 256;

/// What a provider reads from.
pub struct Input<'a> {
    pub tree: &'a dyn Tree,
    pub source: Source,
    pub state: &'a StateDir,
    pub host_nics: Vec<HostNic>,
}

/// A required document is missing or unusable: the datasource gives no context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasourceError {
    /// The file, or `file: field`.
    pub object: String,
    pub message: String,
}

impl fmt::Display for DatasourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

impl std::error::Error for DatasourceError {}

impl DatasourceError {
    pub fn new(object: impl Into<String>, message: impl Into<String>) -> DatasourceError {
        DatasourceError {
            object: object.into(),
            message: message.into(),
        }
    }
}

impl From<MediaError> for DatasourceError {
    fn from(e: MediaError) -> DatasourceError {
        let message = match &e.kind {
            MediaErrorKind::TooLarge { size, cap } => {
                format!("{size} bytes, more than the {cap}-byte limit")
            }
            MediaErrorKind::Corrupt(why) => format!("damaged or unsupported medium: {why}"),
            MediaErrorKind::BadPath => "path not allowed".into(),
            MediaErrorKind::Io(err) => err.to_string(),
        };
        DatasourceError::new(e.object, message)
    }
}

/// Reads `path` from the tree with `cap`; errors name the file as seen on the medium.
pub fn read(tree: &dyn Tree, path: &str, cap: u64) -> Result<Option<Vec<u8>>, DatasourceError> {
    tree.read(path, cap).map_err(|e| {
        let mut e = DatasourceError::from(e);
        e.object = path.to_string();
        e
    })
}

/// Decodes a document as UTF-8, naming the first bad byte's offset.
pub fn utf8<'a>(bytes: &'a [u8], object: &str) -> Result<&'a str, DatasourceError> {
    std::str::from_utf8(bytes).map_err(|e| {
        DatasourceError::new(
            object,
            format!("not valid UTF-8 (bad byte at offset {})", e.valid_up_to()),
        )
    })
}

/// Parses a JSON document (already capped), with a one-line error naming the file.
pub fn parse_json(bytes: &[u8], object: &str) -> Result<serde_json::Value, DatasourceError> {
    let text = utf8(bytes, object)?;
    serde_json::from_str(text).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "truncated JSON",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "unexpected JSON value",
            serde_json::error::Category::Io => "I/O error",
        };
        DatasourceError::new(
            object,
            format!("{what} at line {} column {}", e.line(), e.column()),
        )
    })
}

/// Stores a secret; a failure is recorded in the context (the boot goes on without it).
pub fn store_secret(
    ctx: &mut Context,
    state: &StateDir,
    name: &str,
    data: &[u8],
) -> Option<SecretFile> {
    match state.store_secret(name, data) {
        Ok(f) => Some(f),
        Err(e) => {
            ctx.error(
                "handoff",
                &state.path().join(name).display().to_string(),
                format!("cannot store: {e}"),
            );
            None
        }
    }
}

/// Sets the hostname after validation; an invalid one is an error in the context, never kept.
pub fn set_hostname(ctx: &mut Context, raw: &str, object: &str) {
    match crate::context::validate_hostname(raw) {
        Ok(name) => ctx.hostname = Some(name),
        Err(why) => ctx.error("datasource", object, format!("hostname refused: {why}")),
    }
}

/// Adds ssh keys from a text blob (one per line; blank lines and `#` comments skipped),
/// deduplicated, capped at [`MAX_SSH_KEYS`].
pub fn add_ssh_keys(ctx: &mut Context, text: &str, object: &str) {
    for line in text.lines() {
        let key = line.trim();
        if key.is_empty() || key.starts_with('#') {
            continue;
        }
        if ctx.ssh_keys.iter().any(|k| k == key) {
            continue;
        }
        if ctx.ssh_keys.len() >= MAX_SSH_KEYS {
            ctx.warn(
                "datasource",
                object,
                format!("more than {MAX_SSH_KEYS} ssh keys; the rest are dropped"),
            );
            return;
        }
        ctx.ssh_keys.push(key.to_string());
    }
}

/// Reads a local medium (directory, image or device) of `kind` into a context.
pub fn read_local(
    kind: crate::context::SourceKind,
    input: &Input,
) -> Result<Context, DatasourceError> {
    use crate::context::SourceKind;
    match kind {
        SourceKind::ConfigDrive => configdrive::read_drive(input),
        SourceKind::NocloudSeed => nocloud::read(input),
        SourceKind::OpennebulaContext => opennebula::read(input),
        SourceKind::MetadataService | SourceKind::KernelCmdline => Err(DatasourceError::new(
            input.tree.describe(),
            "not a local medium",
        )),
    }
}
