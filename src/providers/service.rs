//! Datasources over HTTP: the OpenStack metadata service, EC2 IMDS (v2 tokens), GCE and
//! NoCloud-net, all filling the same [`Context`] as the local media.
//!
//! OpenStack and NoCloud serve the very documents of a config drive and a seed, so they are
//! read by `configdrive.rs` and `nocloud.rs` through [`HttpTree`], a [`Tree`] whose files are
//! URLs (404 = absent; a directory listing is the body of the directory URL, one name a
//! line). EC2 reads its tree through `ec2.rs` the same way; GCE is one JSON document
//! (`gce.rs`).
//!
//! EC2 IMDSv2: `PUT latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: 21600`,
//! then every GET carries `X-aws-ec2-metadata-token`. When the PUT gets 400, 404, 405 or 501
//! (an IMDS without the token API: older or EC2-compatible services), the GETs go without a
//! token (IMDSv1), recorded in `fallbacks` as `imdsv1` and as a warning. A 403 (token API
//! disabled by policy) or 401 is an error: IMDSv1 is not tried, since an instance that
//! refuses tokens refuses unauthenticated GETs too. A PUT that times out or cannot connect is
//! an error (the service is not there).
//!
//! Every request is bounded by the caller's [`Deadline`]; transient failures (connect errors,
//! timeouts, 5xx) are retried inside it (`http.rs`).

use super::{ec2, gce, DatasourceError, Input};
use crate::context::{Context, Fallback, HostNic, Medium, Platform, Source, SourceKind};
use crate::http::{Client, HttpError, Url};
use crate::media::{self, MediaError, MediaErrorKind, Tree};
use crate::run::Deadline;
use crate::state::StateDir;
use std::io;

/// The default base URL of each platform's metadata service.
pub fn default_url(platform: Platform) -> Option<&'static str> {
    match platform {
        Platform::Openstack | Platform::Ec2 => Some("http://169.254.169.254/"),
        Platform::Gce => Some("http://metadata.google.internal/"),
        Platform::Nocloud | Platform::Opennebula => None,
    }
}

/// Does the platform have a metadata service we read?
pub fn serves(platform: Platform) -> bool {
    platform != Platform::Opennebula
}

/// A [`Tree`] over HTTP: `read(p)` is `GET base/p`, `list(d)` is `GET base/d/` split in lines.
pub struct HttpTree {
    pub base: Url,
    pub client: Client,
}

impl HttpTree {
    fn url(&self, path: &str, dir: bool) -> Result<Url, MediaError> {
        let parts = media::components(path)
            .ok_or_else(|| MediaError::new(path, MediaErrorKind::BadPath))?;
        let mut rel = parts.join("/");
        if dir {
            rel.push('/');
        }
        Ok(self.base.join(&rel))
    }
}

fn media_error(url: &Url, e: HttpError) -> MediaError {
    let kind = match e {
        HttpError::TooLarge { cap } => {
            let cap = u64::try_from(cap).unwrap_or(u64::MAX);
            MediaErrorKind::TooLarge {
                size: cap.saturating_add(1),
                cap,
            }
        }
        other => MediaErrorKind::Io(io::Error::other(other.to_string())),
    };
    MediaError::new(url.to_string(), kind)
}

impl Tree for HttpTree {
    fn read(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>, MediaError> {
        let url = self.url(path, false)?;
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        self.client.get(&url, cap).map_err(|e| media_error(&url, e))
    }

    fn list(&self, dir: &str) -> Result<Option<Vec<String>>, MediaError> {
        let url = self.url(dir, true)?;
        let Some(body) = self
            .client
            .get(&url, 64 * 1024)
            .map_err(|e| media_error(&url, e))?
        else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&body);
        Ok(Some(
            text.lines()
                .map(|l| l.trim().trim_end_matches('/').to_string())
                .filter(|l| !l.is_empty())
                .collect(),
        ))
    }

    fn describe(&self) -> String {
        self.base.to_string()
    }
}

/// Fetches `platform`'s metadata from `base` (its default when `None`) before `deadline`.
pub fn fetch(
    platform: Platform,
    base: Option<&str>,
    deadline: Deadline,
    state: &StateDir,
    host_nics: Vec<HostNic>,
) -> Result<Context, DatasourceError> {
    let base = base.or(default_url(platform)).ok_or_else(|| {
        DatasourceError::new(
            format!("platform {platform}"),
            "no metadata service (NoCloud needs ds=nocloud;s=URL or --metadata-url)",
        )
    })?;
    let base = Url::parse(base).map_err(|e| DatasourceError::new("metadata URL", e))?;
    let mut client = Client::new(deadline);
    let source = Source {
        kind: SourceKind::MetadataService,
        medium: Medium::Http,
        location: base.to_string(),
        partition_of: None,
    };
    log::info!("fetch: {platform} metadata from {base}");
    let mut fallbacks = Vec::new();
    let mut warnings = Vec::new();
    if platform == Platform::Gce {
        return fetch_gce(client, &base, source, state, host_nics);
    }
    if platform == Platform::Ec2 {
        let url = base.join("latest/api/token");
        match client.request(
            "PUT",
            &url,
            &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
            b"",
            4096,
        ) {
            Ok(r) if r.status == 200 => {
                let token = String::from_utf8(r.body)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty() && !t.contains(['\r', '\n']))
                    .ok_or_else(|| DatasourceError::new(url.to_string(), "unusable token"))?;
                client.headers = vec![("X-aws-ec2-metadata-token".into(), token)];
            }
            Ok(r) if matches!(r.status, 400 | 404 | 405 | 501) => {
                let why = format!(
                    "the token PUT got HTTP {}: this IMDS has no IMDSv2; reading without a token",
                    r.status
                );
                log::warn!("fetch: {url}: {why}");
                fallbacks.push(Fallback {
                    kind: "imdsv1".into(),
                    reason: why.clone(),
                });
                warnings.push((url.to_string(), why));
            }
            Ok(r) => {
                return Err(DatasourceError::new(
                    url.to_string(),
                    format!("IMDSv2 token refused (HTTP {}); IMDSv1 not tried", r.status),
                ))
            }
            Err(e) => return Err(DatasourceError::new(url.to_string(), e.to_string())),
        }
    }
    let tree = HttpTree {
        base: base.clone(),
        client,
    };
    let input = Input {
        tree: &tree,
        source,
        state,
        host_nics,
    };
    let mut ctx = match platform {
        Platform::Ec2 => ec2::read_tree(&input, Platform::Ec2)?,
        Platform::Nocloud => super::nocloud::read(&input)?,
        Platform::Openstack => match super::configdrive::read_drive(&input) {
            Ok(ctx) => ctx,
            Err(e) => {
                // No openstack/ tree at all (its listing is 404): the service's EC2-style
                // tree, which must name the instance. A tree that is there but bad (truncated
                // JSON, too large, a refused redirect, a timeout) is the error itself: reading
                // another tree would hide it behind an empty context.
                if !matches!(tree.list("openstack"), Ok(None)) {
                    return Err(e);
                }
                let mut ctx = ec2::read_tree(&input, Platform::Openstack).map_err(|_| e.clone())?;
                if ctx.instance_id.is_none() {
                    return Err(e);
                }
                ctx.fallbacks.push(Fallback {
                    kind: "openstack-ec2-tree".into(),
                    reason: format!("{e}; read latest/meta-data instead"),
                });
                ctx
            }
        },
        Platform::Gce => {
            return fetch_gce(
                tree.client.clone(),
                &base,
                input.source.clone(),
                state,
                input.host_nics.clone(),
            )
        }
        Platform::Opennebula => {
            return Err(DatasourceError::new(
                "platform opennebula",
                "OpenNebula has no metadata service; it comes on a CONTEXT medium",
            ))
        }
    };
    ctx.fallbacks.extend(fallbacks);
    for (object, why) in warnings {
        ctx.warn("datasource", &object, why);
    }
    Ok(ctx)
}

/// GCE: one recursive JSON document, `Metadata-Flavor: Google` both ways.
fn fetch_gce(
    mut client: Client,
    base: &Url,
    source: Source,
    state: &StateDir,
    host_nics: Vec<HostNic>,
) -> Result<Context, DatasourceError> {
    client.headers = vec![("Metadata-Flavor".into(), "Google".into())];
    client.require = Some(("Metadata-Flavor".into(), "Google".into()));
    let url = base.join(gce::RECURSIVE_PATH);
    let body = client
        .get(&url, super::METADATA_CAP.try_into().unwrap_or(usize::MAX))
        .map_err(|e| DatasourceError::new(url.to_string(), e.to_string()))?
        .ok_or_else(|| DatasourceError::new(url.to_string(), "not found (HTTP 404)"))?;
    gce::read(&body, &url.to_string(), source, state, host_nics)
}
