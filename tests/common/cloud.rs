//! A test-owned metadata server for the platforms of issue 20, serving their fixtures
//! (`tests/fixtures/platforms/<name>/`) the way each platform does: DigitalOcean's and
//! Vultr's one JSON document, Hetzner's YAML and user data, Oracle's v2 (header enforced)
//! or v1, Scaleway's document and its user data only to source ports below 1024, Alibaba's
//! tree behind its own token headers (enforced), CloudStack's and Exoscale's trees, and a
//! password server (`DomU_Request`).
//!
//! A [`Handler`] answers one parsed [`Request`]; [`faulty`] wraps one with [`Fault`]s by
//! path suffix (a status for the first n requests or all, a delay). Every request is logged
//! with its peer address. Included by `#[path]` from the tests that use it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub peer: SocketAddr,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// Waited before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// The file's bytes, or 404.
    pub fn file(path: &Path) -> Reply {
        match std::fs::read(path) {
            Ok(b) => Reply::ok(b),
            Err(_) => Reply::status(404),
        }
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

pub struct Server {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    /// Serves `handler` on `listener` until the test process ends.
    pub fn serve(listener: TcpListener, handler: Handler) -> Server {
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let handler = handler.clone();
                let log = log2.clone();
                std::thread::spawn(move || {
                    let _ = handle(stream, &*handler, &log);
                });
            }
        });
        Server { addr, log }
    }

    /// Serves `handler` on a free port of 127.0.0.1.
    pub fn local(handler: Handler) -> Server {
        Server::serve(TcpListener::bind("127.0.0.1:0").unwrap(), handler)
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// `METHOD path[?query]` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|r| {
                if r.query.is_empty() {
                    format!("{} {}", r.method, r.path)
                } else {
                    format!("{} {}?{}", r.method, r.path, r.query)
                }
            })
            .collect()
    }

    pub fn full_log(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

fn handle(
    stream: TcpStream,
    handler: &dyn Fn(&Request) -> Reply,
    log: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let peer = stream.peer_addr()?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.trim().is_empty() {
        return Ok(()); // a reachability probe: connected and closed
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let req = Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers,
        peer,
    };
    log.lock().unwrap().push(req.clone());
    let reply = handler(&req);
    std::thread::sleep(reply.delay);
    let mut s = stream;
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(&reply.body);
    Ok(())
}

/// What a [`faulty`] handler does to requests whose path ends with a suffix.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Every matching request gets this status.
    Status(u16),
    /// The first n matching requests get this status, later ones the real answer.
    StatusFirst(u16, usize),
    /// The first n matching requests wait this long before the real answer.
    Slow(Duration, usize),
}

/// `inner` with `faults` applied by path suffix (the first rule that matches).
pub fn faulty(inner: Handler, faults: Vec<(&str, Fault)>) -> Handler {
    let faults: Vec<(String, Fault)> = faults
        .into_iter()
        .map(|(p, f)| (p.to_string(), f))
        .collect();
    let hits = Arc::new(Mutex::new(vec![0usize; faults.len()]));
    Arc::new(move |req: &Request| {
        let Some(i) = faults
            .iter()
            .position(|(p, _)| req.path.ends_with(p.as_str()))
        else {
            return inner(req);
        };
        let n = {
            let mut h = hits.lock().unwrap();
            h[i] += 1;
            h[i]
        };
        match &faults[i].1 {
            Fault::Status(s) => Reply::status(*s),
            Fault::StatusFirst(s, first) if n <= *first => Reply::status(*s),
            Fault::Slow(d, first) if n <= *first => Reply {
                delay: *d,
                ..inner(req)
            },
            _ => inner(req),
        }
    })
}

/// `tests/fixtures/platforms/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/platforms")
        .join(name)
}

/// A file below `root` at the URL path, or, for a directory, its listing (`name/` for
/// directories), or 404.
fn tree(root: &Path, path: &str) -> Reply {
    let rel = path.trim_start_matches('/').trim_end_matches('/');
    if rel.split('/').any(|c| c == ".." || c == "password-server") {
        return Reply::status(404);
    }
    let p = root.join(rel);
    if p.is_dir() {
        let mut names: Vec<String> = std::fs::read_dir(&p)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "README.md")
            .map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() {
                    format!("{n}/")
                } else {
                    n
                }
            })
            .collect();
        names.sort();
        return Reply::ok(names.join("\n"));
    }
    Reply::file(&p)
}

/// Alibaba's token, as `tests/fixtures/platforms/alibaba/latest/api/token` has it.
pub fn alibaba_token() -> String {
    std::fs::read_to_string(fixture("alibaba/latest/api/token"))
        .unwrap()
        .trim()
        .to_string()
}

/// The metadata service of `platform` from its fixture. Variants: `oracle-v1` (v2 answers
/// 404, v1 needs no header), `alibaba-notoken` (the token PUT gets 405, GETs need none).
pub fn platform(platform: &str) -> Handler {
    let name = platform.split('-').next().unwrap().to_string();
    let root = fixture(&name);
    let variant = platform.to_string();
    Arc::new(move |req: &Request| {
        let p = req.path.as_str();
        match variant.as_str() {
            "digitalocean" | "vultr" => tree(&root, p),
            "hetzner" => match p {
                "/hetzner/v1/metadata" => Reply::file(&root.join("hetzner/v1/metadata.yaml")),
                "/hetzner/v1/metadata/private-networks" => {
                    Reply::file(&root.join("hetzner/v1/metadata/private-networks.yaml"))
                }
                "/hetzner/v1/userdata" => Reply::file(&root.join("hetzner/v1/userdata")),
                _ => Reply::status(404),
            },
            "oracle" => {
                let file = match p {
                    "/opc/v2/instance/" => "opc/v2/instance.json",
                    "/opc/v2/vnics/" => "opc/v2/vnics.json",
                    _ => return Reply::status(404),
                };
                if req.header("authorization") != Some("Bearer Oracle") {
                    return Reply::status(401);
                }
                Reply::file(&root.join(file))
            }
            "oracle-v1" => match p {
                "/opc/v1/instance/" => Reply::file(&root.join("opc/v2/instance.json")),
                "/opc/v1/vnics/" => Reply::file(&root.join("opc/v2/vnics.json")),
                _ => Reply::status(404),
            },
            "scaleway" => match p {
                "/conf" if req.query == "format=json" => Reply::file(&root.join("conf.json")),
                "/user_data/cloud-init" if req.peer.port() < 1024 => {
                    Reply::file(&root.join("user_data/cloud-init"))
                }
                "/user_data/cloud-init" => Reply::status(403),
                _ => Reply::status(404),
            },
            "alibaba" | "alibaba-notoken" => {
                let token = alibaba_token();
                if p == "/latest/api/token" {
                    return if req.method != "PUT" || variant == "alibaba-notoken" {
                        Reply::status(405)
                    } else if req
                        .header("x-aliyun-ecs-metadata-token-ttl-seconds")
                        .is_none()
                    {
                        Reply::status(400)
                    } else {
                        Reply::ok(token)
                    };
                }
                if variant == "alibaba"
                    && req.header("x-aliyun-ecs-metadata-token") != Some(token.as_str())
                {
                    return Reply::status(401);
                }
                tree(&root, p)
            }
            "cloudstack" | "exoscale" => tree(&root, p),
            other => panic!("no such platform server: {other}"),
        }
    })
}

/// A password server answering `send_my_password` with the fixture file
/// `password-server/send_my_password<suffix>` of `platform` (`""`, `.saved`, `.empty`,
/// `.bad_request`) at `path`, and `saved_password` with 200.
pub fn password_server(platform: &str, suffix: &str, path: &'static str) -> Handler {
    let file = fixture(platform).join(format!("password-server/send_my_password{suffix}"));
    Arc::new(move |req: &Request| {
        if req.path != path {
            return Reply::status(404);
        }
        match req.header("domu_request") {
            Some("send_my_password") => Reply::file(&file),
            Some("saved_password") => Reply::ok("saved_password"),
            _ => Reply::ok("bad_request"),
        }
    })
}
