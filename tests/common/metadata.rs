//! A test-owned metadata server: serves a fixture `input/` tree over HTTP/1.1 the way the
//! platform does (FORMAT.md): `_index` files (or a generated listing) for directory URLs,
//! 404 for what is absent, EC2's IMDSv2 token (enforced), GCE's `Metadata-Flavor` (enforced
//! both ways, and `?recursive=true` as the JSON object of a directory's files).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let root = root.to_path_buf();
        let log2 = log.clone();
        let counter = Arc::new(Mutex::new(0usize));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                let log = log2.clone();
                let counter = counter.clone();
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
                    let _ = handle(stream, &root, mode, &log, &pace);
                });
            }
        });
        Server { addr, log }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn respond(s: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
}

fn handle(
    stream: TcpStream,
    root: &Path,
    mode: Mode,
    log: &Mutex<Vec<String>>,
    pace: &dyn Fn(&str),
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
    pace(&target);
    let mut s = stream;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
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
