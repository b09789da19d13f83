//! Metadata services over HTTP: where a platform's service is, the [`Endpoint`] a provider's
//! `fetch` gets (base URL, client under the caller's deadline, the context's source, the
//! state directory), and [`HttpTree`], a [`Tree`] whose files are URLs, so that OpenStack and
//! NoCloud read their services with the very readers of their media (404 = absent; a
//! directory listing is the body of the directory URL, one name a line).
//!
//! Each platform's protocol lives in its own module (EC2's IMDSv2 token handshake in
//! `ec2/`, GCE's flavor header and recursive document in `gce/`, OpenStack's fallback to its
//! EC2-style tree in `openstack/`); [`super::fetch_service`] picks it. Every request is bounded
//! by the caller's [`Deadline`]; transient failures (connect errors, timeouts, 5xx) are
//! retried inside it (`http.rs`).

use super::{DatasourceError, Input};
use crate::context::{Access, HostNic, Platform, Source, SourceKind};
use crate::deadline::Deadline;
use crate::http::{Client, HttpError, Url};
use crate::media::{self, MediaError, MediaErrorKind, Tree};
use crate::platform::Service;
use crate::state::StateDir;
use std::io;

/// A platform's metadata service, ready to be read by its provider.
pub struct Endpoint<'a> {
    pub base: Url,
    pub client: Client,
    pub source: Source,
    pub state: &'a StateDir,
    pub host_nics: Vec<HostNic>,
    /// The platform's other endpoints as `--endpoint NAME=URL` gave them
    /// ([`crate::platform::Platform::endpoints`]).
    pub named: Vec<(String, Url)>,
}

impl<'a> Endpoint<'a> {
    /// `platform`'s service at `base` (its default when `None`), read before `deadline`;
    /// `named` overrides its other endpoints (`NAME`, `URL`).
    pub fn new(
        platform: Platform,
        base: Option<&str>,
        named: &[(String, String)],
        deadline: Deadline,
        state: &'a StateDir,
        host_nics: Vec<HostNic>,
    ) -> Result<Endpoint<'a>, DatasourceError> {
        let base = base.or(default_url(platform)).ok_or_else(|| {
            DatasourceError::new(
                format!("platform {platform}"),
                match platform.service() {
                    Service::None => "has no metadata service; its data comes on a medium",
                    Service::LeaseServer => {
                        "no metadata service URL (its address is the DHCP server of the lease, \
                         or --metadata-url)"
                    }
                    _ => {
                        "no metadata service URL (NoCloud needs ds=nocloud;s=URL or --metadata-url)"
                    }
                },
            )
        })?;
        let base = Url::parse(base).map_err(|e| DatasourceError::new("metadata URL", e))?;
        let mut parsed = Vec::new();
        for (name, url) in named {
            if !platform.endpoints().iter().any(|e| e.name == name) {
                return Err(DatasourceError::new(
                    format!("--endpoint {name}"),
                    format!("{platform} has no endpoint of that name"),
                ));
            }
            let url = Url::parse(url)
                .map_err(|e| DatasourceError::new(format!("--endpoint {name}"), e))?;
            parsed.push((name.clone(), url));
        }
        log::info!("fetch: {platform} metadata from {base}");
        Ok(Endpoint {
            source: Source {
                kind: SourceKind::MetadataService,
                medium: Access::Http,
                location: base.to_string(),
                partition_of: None,
            },
            base,
            client: Client::new(deadline),
            state,
            host_nics,
            named: parsed,
        })
    }

    /// The endpoint `name`: its `--endpoint` override, else port `port` of the base URL's
    /// address with `path` (a password server beside the metadata service, as cloud-init
    /// finds it: the same address, another port).
    pub fn beside(&self, name: &str, port: u16, path: &str) -> Url {
        if let Some((_, url)) = self.named.iter().find(|(n, _)| n == name) {
            return url.clone();
        }
        // The base's address with the other port: an IPv6 one keeps its zone (scope id).
        let mut addr = self.base.addr;
        addr.set_port(port);
        let host = match addr.ip() {
            std::net::IpAddr::V4(ip) => format!("{ip}:{port}"),
            std::net::IpAddr::V6(ip) => format!("[{ip}]:{port}"),
        };
        Url {
            host,
            addr,
            path: path.to_string(),
            zone: self.base.zone.clone(),
        }
    }

    /// The service as a [`Tree`], with the client as configured so far.
    pub fn tree(&self) -> HttpTree {
        HttpTree {
            base: self.base.clone(),
            client: self.client.clone(),
        }
    }

    /// Runs a medium's reader on the service: `f` gets the [`Input`] such a reader takes,
    /// over the service as a [`Tree`] (and the tree, to look further).
    pub fn with_tree<R>(self, f: impl FnOnce(&Input, &HttpTree) -> R) -> R {
        let tree = self.tree();
        let input = Input {
            tree: &tree,
            source: self.source,
            state: self.state,
            host_nics: self.host_nics,
        };
        f(&input, &tree)
    }
}

/// The default base URL of `platform`'s metadata service, if it has a fixed one.
pub fn default_url(platform: Platform) -> Option<&'static str> {
    platform.service().url()
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
