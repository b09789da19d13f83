//! Test-owned Azure endpoints on 127.0.0.1 (never Azure's own addresses): an IMDS that
//! answers only requests carrying `Metadata: true` and refuses any with `X-Forwarded-For`
//! (as Azure's does), and a wire server that hands out goal states and records every health
//! report with the status it answered. Each takes a script of [`Reply`]s, one per request in
//! order (then [`Reply::Normal`]): a status, a slow answer, or silence. Used by
//! `tests/azure.rs`, `tests/apply.rs` and `tests/qemu_azure.rs`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The endpoint's normal answer.
    Normal,
    /// This status and an empty body.
    Status(u16),
    /// The normal answer, after this long.
    Slow(Duration),
    /// Nothing at all: the request is read and the connection held until the client leaves.
    Silent,
    /// 200 with this body.
    Body(Vec<u8>),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// Names lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status answered (0: none).
    pub status: u16,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Request, usize) -> (u16, Vec<u8>) + Send + Sync;

/// A scripted HTTP/1.1 server on 127.0.0.1.
pub struct Server {
    pub port: u16,
    pub log: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start(script: Vec<Reply>, handler: Arc<Handler>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        Server::start_on(listener, script, handler)
    }

    fn start_on(listener: TcpListener, script: Vec<Reply>, handler: Arc<Handler>) -> Server {
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (log, script, handler) = (log2.clone(), script.clone(), handler.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &log, &script, &*handler);
                });
            }
        });
        Server { port, log }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(
    conn: TcpStream,
    log: &Mutex<Vec<Request>>,
    script: &Mutex<std::vec::IntoIter<Reply>>,
    handler: &Handler,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.trim().is_empty() {
        return Ok(()); // a reachability probe: connected and closed
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let mut parts = line.split_whitespace();
    let mut req = Request {
        method: parts.next().unwrap_or("").into(),
        target: parts.next().unwrap_or("").into(),
        headers,
        body,
        status: 0,
    };
    let reply = script.lock().unwrap().next().unwrap_or(Reply::Normal);
    let index = log.lock().unwrap().len();
    let (status, body) = match reply {
        Reply::Silent => {
            log.lock().unwrap().push(req);
            let mut sink = [0u8; 64];
            while reader.read(&mut sink).map(|n| n > 0).unwrap_or(false) {}
            return Ok(());
        }
        Reply::Status(s) => (s, Vec::new()),
        Reply::Body(b) => (200, b),
        Reply::Slow(d) => {
            std::thread::sleep(d);
            handler(&req, index)
        }
        Reply::Normal => handler(&req, index),
    };
    req.status = status;
    log.lock().unwrap().push(req);
    let mut conn = conn;
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(&body)
}

/// The fixtures of `tests/fixtures/platforms/azure/`.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/platforms/azure")
            .join(name),
    )
    .unwrap()
}

/// IMDS serving `doc` at `/metadata/instance?api-version=...`: 400 without `Metadata: true`,
/// 403 with `X-Forwarded-For`, 404 elsewhere.
pub fn imds(doc: Vec<u8>, script: Vec<Reply>) -> Server {
    imds_on(
        TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1"),
        doc,
        script,
    )
}

/// [`imds`] on a listener the caller made (in a network namespace of its own).
pub fn imds_on(listener: TcpListener, doc: Vec<u8>, script: Vec<Reply>) -> Server {
    Server::start_on(
        listener,
        script,
        Arc::new(move |req: &Request, _| {
            if req.header("metadata") != Some("true") {
                return (400, b"Required metadata header not specified".to_vec());
            }
            if req.header("x-forwarded-for").is_some() {
                return (403, Vec::new());
            }
            if req.method == "GET" && req.target.starts_with("/metadata/instance?api-version=") {
                (200, doc.clone())
            } else {
                (404, Vec::new())
            }
        }),
    )
}

/// The fixture goal state with this incarnation.
pub fn goal_state(incarnation: &str) -> Vec<u8> {
    String::from_utf8(fixture("goalstate.xml"))
        .unwrap()
        .replace(
            "<Incarnation>42</Incarnation>",
            &format!("<Incarnation>{incarnation}</Incarnation>"),
        )
        .into_bytes()
}

/// A wire server: the k-th goal state request gets incarnation `incarnations[k]` (the last
/// one after that); health reports get 200. Both need `x-ms-version`.
pub fn wireserver(incarnations: &[&str], script: Vec<Reply>) -> Server {
    let incarnations: Vec<String> = incarnations.iter().map(|s| s.to_string()).collect();
    let served = Arc::new(Mutex::new(0usize));
    Server::start(
        script,
        Arc::new(move |req: &Request, _| {
            if req.header("x-ms-version").is_none() {
                return (400, Vec::new());
            }
            match (req.method.as_str(), req.target.as_str()) {
                ("GET", "/machine/?comp=goalstate") => {
                    let mut n = served.lock().unwrap();
                    let inc = incarnations
                        .get(*n)
                        .or(incarnations.last())
                        .cloned()
                        .unwrap_or_else(|| "1".into());
                    *n += 1;
                    (200, goal_state(&inc))
                }
                ("POST", "/machine?comp=health") => (200, Vec::new()),
                _ => (404, Vec::new()),
            }
        }),
    )
}

/// A health report as the wire server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub incarnation: String,
    pub state: String,
    pub description: String,
    /// The status the wire server answered.
    pub status: u16,
}

fn between(text: &str, open: &str, close: &str) -> String {
    text.split(open)
        .nth(1)
        .and_then(|t| t.split(close).next())
        .unwrap_or("")
        .to_string()
}

/// The health reports the wire server received, in order.
pub fn reports(server: &Server) -> Vec<Health> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            Health {
                incarnation: between(&body, "<GoalStateIncarnation>", "</GoalStateIncarnation>"),
                state: between(&body, "<State>", "</State>"),
                description: between(&body, "<Description>", "</Description>"),
                status: r.status,
            }
        })
        .collect()
}

/// The reports the wire server took (answered 2xx).
pub fn taken(server: &Server) -> Vec<Health> {
    reports(server)
        .into_iter()
        .filter(|h| (200..300).contains(&h.status))
        .collect()
}

/// `ovf-env.xml` with this hostname and user (the fixture's keys, password and custom data).
pub fn ovf(hostname: &str, user: &str) -> Vec<u8> {
    String::from_utf8(fixture("ovf-env.xml"))
        .unwrap()
        .replace("preroot-vm", hostname)
        .replace(
            "<ns1:UserName>azureuser<",
            &format!("<ns1:UserName>{user}<"),
        )
        .into_bytes()
}

/// The IMDS fixture with this vmId and the first NIC's MAC set to `mac` (`aa:bb:…`).
pub fn imds_doc(vm_id: &str, mac: &str) -> Vec<u8> {
    String::from_utf8(fixture("imds-instance.json"))
        .unwrap()
        .replace("ff702a6b-cb6a-4fcd-ad68-b4ce38227642", vm_id)
        .replace("000D3A047598", &mac.replace(':', "").to_ascii_uppercase())
        .into_bytes()
}

/// A provisioning medium as Azure attaches it: `genisoimage -udf` (hybrid ISO9660/UDF), with
/// `ovf-env.xml` at its root, volume id `rd_rdfe_stable.…`.
pub fn make_medium(dir: &Path, ovf: &[u8]) -> std::path::PathBuf {
    let src = dir.join("ovf-src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("ovf-env.xml"), ovf).unwrap();
    let img = dir.join("ovf.iso");
    let out = std::process::Command::new("genisoimage")
        .args(["-quiet", "-udf", "-V", "rd_rdfe_stable.20261207-1200"])
        .arg("-o")
        .arg(&img)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "genisoimage: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    img
}
