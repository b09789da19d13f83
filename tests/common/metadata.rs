//! A test-owned metadata server: serves a fixture `input/` tree over HTTP/1.1 the way the
//! platform does (FORMAT.md): `_index` files (or a generated listing) for directory URLs,
//! 404 for what is absent, EC2's IMDSv2 token (enforced), GCE's `Metadata-Flavor` (enforced
//! both ways, and `?recursive=true` as the JSON object of a directory's files).
//!
//! [`Fault`]s (the fault matrix in `tests/metadata.rs`) change the answer for the paths that
//! end with a given suffix: a status, a byte at a time, a 100 MiB body, a redirect, a
//! truncated document, another content type, GCE's header left out.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a [`Fault`]'s huge body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    ContentLength,
    Chunked,
    /// No length: the body runs until the connection closes.
    ToEof,
}

/// What a faulty server does instead of (or to) the normal answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The first `n` matching requests get `status` (an empty body), later ones the file.
    StatusFirst(u16, usize),
    /// Every matching request gets `status`.
    Status(u16),
    /// The normal answer, one byte every `Duration`.
    Drip(Duration),
    /// A body of `bytes` bytes (`x`), streamed in 64 KiB writes until the client hangs up.
    Huge(u64, Framing),
    /// `302 Found` to this `Location`.
    Redirect(String),
    /// Only the first `n` bytes of the document (Content-Length says `n`).
    Truncate(usize),
    /// The normal answer with this `Content-Type`.
    ContentType(&'static str),
    /// GCE: the normal answer without `Metadata-Flavor: Google`.
    NoFlavor,
    /// The normal answer with one more header line, written as given (`Content-Length: 5`
    /// besides the real one).
    Header(&'static str, &'static str),
}

/// Faults by path suffix; `sent` counts the bytes of huge bodies the server got out.
#[derive(Clone, Default)]
pub struct Faults {
    pub rules: Vec<(String, Fault)>,
    pub hits: Arc<Mutex<Vec<usize>>>,
    pub sent: Arc<AtomicU64>,
}

impl Faults {
    pub fn new(rules: &[(&str, Fault)]) -> Faults {
        Faults {
            rules: rules
                .iter()
                .map(|(p, f)| (p.to_string(), f.clone()))
                .collect(),
            hits: Arc::new(Mutex::new(vec![0; rules.len()])),
            sent: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The fault for `path` and how many matching requests came before this one.
    fn find(&self, path: &str) -> Option<(Fault, usize)> {
        let i = self
            .rules
            .iter()
            .position(|(p, _)| path.ends_with(p.as_str()))?;
        let mut hits = self.hits.lock().unwrap();
        let n = hits[i];
        hits[i] += 1;
        Some((self.rules[i].1.clone(), n))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Files as they are (OpenStack, NoCloud).
    Plain,
    /// EC2 with IMDSv2: GETs without a valid token get 401.
    Ec2Token,
    /// EC2 without the token API: the PUT gets 405, GETs need no token.
    Ec2NoToken,
    /// GCE: requests without `Metadata-Flavor: Google` get 403.
    Gce,
}

const TOKEN: &str = "AQAEAtest-token==";

pub struct Server {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The `Host:` header of each request, in order.
    pub hosts: Arc<Mutex<Vec<String>>>,
    pub faults: Faults,
}

impl Server {
    /// Serves `root` on `bind` (`127.0.0.1:0` for a free port). The first `slow` requests
    /// wait `delay` before answering (connections closed without a request do not count).
    pub fn start(root: &Path, mode: Mode, bind: &str, slow: usize, delay: Duration) -> Server {
        let listener = TcpListener::bind(bind).expect("bind metadata server");
        Server::serve(listener, root, mode, slow, delay)
    }

    pub fn serve(
        listener: TcpListener,
        root: &Path,
        mode: Mode,
        slow: usize,
        delay: Duration,
    ) -> Server {
        Server::serve_faulty(listener, root, mode, slow, delay, Faults::default())
    }

    /// Serves `root` on a free port of 127.0.0.1 with `faults`.
    pub fn start_faulty(root: &Path, mode: Mode, faults: Faults) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind metadata server");
        Server::serve_faulty(listener, root, mode, 0, Duration::ZERO, faults)
    }

    pub fn serve_faulty(
        listener: TcpListener,
        root: &Path,
        mode: Mode,
        slow: usize,
        delay: Duration,
        faults: Faults,
    ) -> Server {
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let root = root.to_path_buf();
        let log2 = log.clone();
        let hosts = Arc::new(Mutex::new(Vec::new()));
        let hosts2 = hosts.clone();
        let counter = Arc::new(Mutex::new(0usize));
        let faults2 = faults.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                let log = log2.clone();
                let hosts = hosts2.clone();
                let counter = counter.clone();
                let faults = faults2.clone();
                std::thread::spawn(move || {
                    // The first `slow` requests (not bare reachability probes) wait.
                    let pace = |_: &str| {
                        let n = {
                            let mut c = counter.lock().unwrap();
                            *c += 1;
                            *c
                        };
                        if n <= slow {
                            std::thread::sleep(delay);
                        }
                    };
                    let _ = handle(stream, &root, mode, (&log, &hosts), &pace, &faults);
                });
            }
        });
        Server {
            addr,
            log,
            hosts,
            faults,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// The answer's bytes; with a fault for this request, the fault's version of them.
fn respond_with(
    s: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    fault: Option<&Fault>,
    sent: &AtomicU64,
) {
    let mut headers: Vec<(&str, &str)> = headers.to_vec();
    let mut body = body;
    match fault {
        Some(Fault::ContentType(t)) => {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
            headers.push(("Content-Type", t));
        }
        Some(Fault::NoFlavor) => headers.retain(|(n, _)| *n != "Metadata-Flavor"),
        Some(Fault::Header(n, v)) => headers.push((n, v)),
        Some(Fault::Truncate(n)) => body = &body[..(*n).min(body.len())],
        Some(Fault::Huge(bytes, framing)) => return huge(s, &headers, *bytes, *framing, sent),
        _ => {}
    }
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in &headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    if let Some(Fault::Drip(every)) = fault {
        for b in all {
            if s.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(*every);
        }
        return;
    }
    let _ = s.write_all(&all);
}

fn huge(
    s: &mut TcpStream,
    headers: &[(&str, &str)],
    bytes: u64,
    framing: Framing,
    sent: &AtomicU64,
) {
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    match framing {
        Framing::ContentLength => head.push_str(&format!("Content-Length: {bytes}\r\n")),
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::ToEof => {}
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    if s.write_all(head.as_bytes()).is_err() {
        return;
    }
    let block = vec![b'x'; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        let ok = if framing == Framing::Chunked {
            s.write_all(format!("{n:x}\r\n").as_bytes()).is_ok()
                && s.write_all(&block[..n]).is_ok()
                && s.write_all(b"\r\n").is_ok()
        } else {
            s.write_all(&block[..n]).is_ok()
        };
        if !ok {
            return;
        }
        sent.fetch_add(n as u64, Ordering::Relaxed);
        left -= n as u64;
    }
    if framing == Framing::Chunked {
        let _ = s.write_all(b"0\r\n\r\n");
    }
}

fn handle(
    stream: TcpStream,
    root: &Path,
    mode: Mode,
    (log, hosts): (&Mutex<Vec<String>>, &Mutex<Vec<String>>),
    pace: &dyn Fn(&str),
    faults: &Faults,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
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
    let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
    }
    if line.trim().is_empty() {
        // A reachability probe: connected and closed.
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    log.lock().unwrap().push(format!("{method} {target}"));
    hosts
        .lock()
        .unwrap()
        .push(header("host").unwrap_or_default());
    pace(&target);
    let mut s = stream;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let fault = faults.find(path);
    let fault_now = match &fault {
        Some((Fault::StatusFirst(status, n), seen)) if seen < n => Some(*status),
        Some((Fault::Status(status), _)) => Some(*status),
        _ => None,
    };
    if let Some(status) = fault_now {
        respond_with(&mut s, status, &[], b"", None, &faults.sent);
        return Ok(());
    }
    if let Some((Fault::Redirect(to), _)) = &fault {
        respond_with(&mut s, 302, &[("Location", to)], b"", None, &faults.sent);
        return Ok(());
    }
    let fault = fault.map(|(f, _)| f);
    let respond = |s: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]| {
        respond_with(s, status, headers, body, fault.as_ref(), &faults.sent)
    };
    let gce_hdr: &[(&str, &str)] = if mode == Mode::Gce {
        &[("Metadata-Flavor", "Google")]
    } else {
        &[]
    };
    match mode {
        Mode::Ec2Token | Mode::Ec2NoToken if path == "/latest/api/token" => {
            if method != "PUT" || mode == Mode::Ec2NoToken {
                respond(&mut s, 405, &[], b"");
            } else if header("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
                respond(&mut s, 400, &[], b"");
            } else {
                respond(&mut s, 200, &[], TOKEN.as_bytes());
            }
            return Ok(());
        }
        Mode::Ec2Token if header("x-aws-ec2-metadata-token").as_deref() != Some(TOKEN) => {
            respond(&mut s, 401, &[], b"");
            return Ok(());
        }
        Mode::Gce if header("metadata-flavor").as_deref() != Some("Google") => {
            respond(&mut s, 403, &[], b"missing Metadata-Flavor");
            return Ok(());
        }
        _ => {}
    }
    if method != "GET" {
        respond(&mut s, 405, gce_hdr, b"");
        return Ok(());
    }
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        respond(&mut s, 400, gce_hdr, b"");
        return Ok(());
    }
    let file: PathBuf = root.join(rel.trim_end_matches('/'));
    if file.is_dir() {
        if query.contains("recursive=true") {
            let json = serde_json::to_vec(&tree_json(&file)).unwrap();
            respond(
                &mut s,
                200,
                &[gce_hdr, &[("Content-Type", "application/json")]].concat(),
                &json,
            );
            return Ok(());
        }
        let index = file.join("_index");
        let body = std::fs::read(&index).unwrap_or_else(|_| listing(&file).into_bytes());
        respond(&mut s, 200, gce_hdr, &body);
    } else if let Ok(body) = std::fs::read(&file) {
        respond(&mut s, 200, gce_hdr, &body);
    } else {
        respond(&mut s, 404, gce_hdr, b"not found");
    }
    Ok(())
}

fn listing(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "_index")
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
    names.join("\n")
}

fn tree_json(dir: &Path) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "_index" {
            continue;
        }
        let v = if e.path().is_dir() {
            tree_json(&e.path())
        } else {
            serde_json::Value::String(
                String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned(),
            )
        };
        map.insert(name, v);
    }
    serde_json::Value::Object(map)
}
