//! Datasources: each turns one medium's tree into a [`Context`].
//!
//! One module per platform: `openstack/` (config drive and metadata service), `ec2/` (IMDS,
//! IMDSv2; also Alibaba's tree through `alibaba/`), `gce/`, `nocloud/` (seed and NoCloud-net,
//! with `netconfig.rs` for network-config v1/v2), `opennebula/` (`context.sh`), `azure/`
//! (`ovf-env.xml`, IMDS, the ready report), and the metadata services of issue 20:
//! `digitalocean/`, `hetzner/`, `oracle/`, `vultr/`, `scaleway/`, `alibaba/`, `cloudstack/`
//! (with its password server, shared by `exoscale/`);
//! `kernel.rs` reads the network of `ip=` alone, and
//! `service.rs` holds what the metadata services share. [`read_medium`] and
//! [`fetch_service`] dispatch on the platform. They read through
//! [`crate::media::Tree`] with the caps below and put secrets in the state directory, never in
//! the context. A problem with a required document is a [`DatasourceError`]; a problem with an
//! optional one is recorded in `Context::errors` and the rest is kept. Never writes anywhere
//! but the state directory; the network is touched only through a service's [`service::Endpoint`]
//! (bringing links up is `net/`'s).

pub mod alibaba;
pub mod azure;
pub mod cloudstack;
pub mod digitalocean;
pub mod ec2;
pub mod exoscale;
pub mod fields;
pub mod gce;
pub mod hetzner;
pub mod kernel;
pub mod netconfig;
pub mod nocloud;
pub mod opennebula;
pub mod openstack;
pub mod oracle;
pub mod scaleway;
pub mod service;
pub mod vultr;

use crate::caps;
use crate::context::{Context, HostNic, Platform, SecretFile, Source};
use crate::deadline::Deadline;
use crate::media::{MediaError, MediaErrorKind, Tree};
use crate::state::StateDir;
use std::fmt;

/// Cap on one metadata document (JSON, YAML, `context.sh`).
pub const METADATA_CAP: u64 = 1024 * 1024;
/// Cap on user data and vendor data ([`crate::caps::USER_DATA_BYTES`]).
pub const USERDATA_CAP: u64 = crate::caps::USER_DATA_BYTES as u64;

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
        let line = crate::text::one_line(&format!("{}: {}", self.object, self.message));
        f.write_str(&line)
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

/// Sets the hostname after validation; an invalid one is an error in the context naming the
/// value (escaped) and the rule, never kept.
pub fn set_hostname(ctx: &mut Context, raw: &str, object: &str) {
    match crate::context::validate_hostname(raw) {
        Ok(name) => ctx.hostname = Some(name),
        Err(why) => ctx.error(
            "datasource",
            object,
            format!(
                "\"{}\" refused as the host name: {why}",
                crate::text::show(raw)
            ),
        ),
    }
}

/// Adds ssh keys from a text blob (one per line; blank lines and `#` comments skipped),
/// deduplicated, capped at [`caps::SSH_KEYS`].
pub fn add_ssh_keys(ctx: &mut Context, text: &str, object: &str) {
    for line in text.lines() {
        let key = line.trim();
        if key.is_empty() || key.starts_with('#') {
            continue;
        }
        if ctx.ssh_keys.iter().any(|k| k == key) {
            continue;
        }
        if !caps::SSH_KEYS.room(ctx.ssh_keys.len()) {
            ctx.warn("datasource", object, caps::SSH_KEYS.cut());
            return;
        }
        ctx.ssh_keys.push(key.to_string());
    }
}

/// Reads `platform`'s data from its local medium (a directory, an image or a device, as
/// `input.tree`).
pub fn read_medium(platform: Platform, input: &Input) -> Result<Context, DatasourceError> {
    match platform {
        Platform::Openstack => openstack::read_drive(input),
        Platform::Nocloud => nocloud::read(input),
        Platform::Opennebula => opennebula::read(input),
        Platform::Azure => azure::read_medium(input),
        Platform::Ec2
        | Platform::Gce
        | Platform::DigitalOcean
        | Platform::Hetzner
        | Platform::Oracle
        | Platform::Vultr
        | Platform::Scaleway
        | Platform::Alibaba
        | Platform::CloudStack
        | Platform::Exoscale => Err(DatasourceError::new(
            input.tree.describe(),
            format!("{platform} has no local medium"),
        )),
    }
}

/// Reads `platform`'s metadata service at `base` (its default when `None`) before
/// `deadline`, with the platform's own protocol; `named` overrides its other endpoints
/// (`--endpoint NAME=URL`).
pub fn fetch_service(
    platform: Platform,
    base: Option<&str>,
    named: &[(String, String)],
    deadline: Deadline,
    state: &StateDir,
    host_nics: Vec<HostNic>,
) -> Result<Context, DatasourceError> {
    let ep = service::Endpoint::new(platform, base, named, deadline, state, host_nics)?;
    match platform {
        Platform::Openstack => openstack::fetch(ep),
        Platform::Ec2 => ec2::fetch(ep),
        Platform::Gce => gce::fetch(ep),
        Platform::Nocloud => nocloud::fetch(ep),
        Platform::Azure => azure::fetch(ep),
        Platform::DigitalOcean => digitalocean::fetch(ep),
        Platform::Hetzner => hetzner::fetch(ep),
        Platform::Oracle => oracle::fetch(ep),
        Platform::Vultr => vultr::fetch(ep),
        Platform::Scaleway => scaleway::fetch(ep),
        Platform::Alibaba => alibaba::fetch(ep),
        Platform::CloudStack => cloudstack::fetch(ep),
        Platform::Exoscale => exoscale::fetch(ep),
        Platform::Opennebula => Err(DatasourceError::new(
            format!("platform {platform}"),
            "has no metadata service; its data comes on a CONTEXT medium",
        )),
    }
}
