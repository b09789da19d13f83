//! A small HTTP/1.1 client for metadata services: GET and PUT over a plain `TcpStream`, no TLS,
//! no proxies, no keep-alive (every request says `Connection: close`).
//!
//! Owns URL splitting ([`Url`]), the pure response parser ([`parse_response`], fed the bytes
//! read so far; it never does I/O and never panics), and the I/O shell ([`Client`]) with:
//! - a per-request timeout and the caller's [`Deadline`] on connect, every read and write;
//! - a body cap (more is [`HttpError::TooLarge`], never a truncated body);
//! - redirects followed only on the same host and port, at most [`MAX_REDIRECTS`];
//! - retries with backoff (100 ms doubling to 1 s) on connection errors, timeouts and 5xx,
//!   bounded by the deadline, not by a count;
//! - optionally a source port from a given range ([`Client::source_ports`], `sys/tcp.rs`):
//!   Scaleway serves user data only to ports below 1024.
//!
//! Follows RFC 9112 for framing: `Transfer-Encoding: chunked`, else `Content-Length` (several
//! that differ are refused), else the body runs to the end of the connection. Header lines end
//! at CRLF only: a control character inside one (a bare LF or CR) makes the response
//! malformed, and nothing from a response reaches a request line unchecked (`Location`). IPv6
//! literals are bracketed, with an optional zone as RFC 6874 writes it
//! (`http://[fe80::a9fe:a9fe%25eth0]/`: `%25` then an interface name or index); the `Host:`
//! header carries the bracketed address without the zone, which means nothing beyond this
//! machine (RFC 6874 section 4). Not supported: TLS, host names other than
//! `metadata.google.internal` (the initramfs has no resolver at this point; it is sent to
//! 169.254.169.254 with its name in `Host:`), trailers, 1xx responses other than
//! `100 Continue`.

use crate::deadline::Deadline;
use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Longest response head (status line and headers) accepted.
pub const HEAD_CAP: usize = 16 * 1024;
/// Redirects followed per request (same host only).
pub const MAX_REDIRECTS: u32 = 5;
/// `100 Continue` responses skipped before the final response (preroot never sends
/// `Expect: 100-continue`, so a service has no reason to send even one).
pub const MAX_INTERIM: usize = 8;
/// Default per-request timeout (each try; the deadline also bounds it).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// An `http://` URL split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The `Host:` header value (with `:port` when not 80; an IPv6 address bracketed, without
    /// its zone).
    pub host: String,
    /// Where to connect; an IPv6 zone is its scope id.
    pub addr: SocketAddr,
    /// Starts with `/`; may carry a query.
    pub path: String,
    /// The IPv6 zone as written (`eth0`, `2`), for display.
    pub zone: Option<String>,
}

impl Url {
    /// Parses `http://HOST[:PORT][/PATH]`. HOST is an IPv4 address, a bracketed IPv6 address
    /// (with an RFC 6874 zone `%25NAME` or `%25INDEX`: the interface must exist) or
    /// `metadata.google.internal`.
    pub fn parse(url: &str) -> Result<Url, String> {
        Url::parse_with(url, |name| crate::sys::nicsock::ifindex(name).ok())
    }

    /// [`Url::parse`] with the interface index of a named zone from `ifindex` (pure when
    /// that is).
    pub fn parse_with(url: &str, ifindex: impl Fn(&str) -> Option<u32>) -> Result<Url, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!("{url}: credentials in URLs are not supported"));
        }
        let (host, port, bracketed) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url}: unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("{url}: junk after ']'")),
            };
            (h, port, true)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p), false),
                None => (authority, None, false),
            }
        };
        let port: u16 = match port {
            Some(p) => p.parse().map_err(|_| format!("{url}: bad port {p:?}"))?,
            None => 80,
        };
        let (host, zone) = match host.split_once('%') {
            Some((h, z)) if bracketed => {
                let z = z.strip_prefix("25").ok_or_else(|| {
                    format!("{url}: a zone is written %25ZONE in a URL (RFC 6874)")
                })?;
                (h, Some(z))
            }
            _ => (host, None),
        };
        let ip: IpAddr = if host.eq_ignore_ascii_case("metadata.google.internal") {
            IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254))
        } else {
            host.parse().map_err(|_| {
                format!(
                    "{url}: host {host:?} is not an IP address (no name resolution in the initramfs)"
                )
            })?
        };
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!("{url}: control characters or spaces in the path"));
        }
        let addr = match (ip, zone) {
            (IpAddr::V6(v6), Some(z)) => {
                let scope = scope_of(z, &ifindex)
                    .ok_or_else(|| format!("{url}: zone {z:?} is not an interface here"))?;
                SocketAddr::V6(std::net::SocketAddrV6::new(v6, port, 0, scope))
            }
            (ip, _) => SocketAddr::new(ip, port),
        };
        let host = match ip {
            IpAddr::V6(v6) if port == 80 => format!("[{v6}]"),
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
            IpAddr::V4(_) => authority.to_string(),
        };
        Ok(Url {
            host,
            addr,
            path: path.to_string(),
            zone: zone.map(str::to_string),
        })
    }

    /// The same URL with its IPv6 address in zone `name` (index `ifindex`).
    pub fn with_zone(&self, name: &str, ifindex: u32) -> Url {
        let mut u = self.clone();
        if let SocketAddr::V6(v6) = self.addr {
            u.addr = SocketAddr::V6(std::net::SocketAddrV6::new(*v6.ip(), v6.port(), 0, ifindex));
            u.zone = Some(name.to_string());
        }
        u
    }

    /// This URL with `rel` appended to its path (`rel` is relative; a `/` is inserted).
    pub fn join(&self, rel: &str) -> Url {
        let mut path = self.path.clone();
        if !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(rel.trim_start_matches('/'));
        Url {
            path,
            ..self.clone()
        }
    }
}

/// A zone's interface index: a number as it is, else by name; never 0.
fn scope_of(zone: &str, ifindex: &impl Fn(&str) -> Option<u32>) -> Option<u32> {
    if zone.is_empty() {
        return None;
    }
    let index = match zone.parse::<u32>() {
        Ok(n) => Some(n),
        Err(_) => ifindex(zone),
    };
    index.filter(|n| *n != 0)
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.zone, self.addr) {
            (Some(z), SocketAddr::V6(v6)) => {
                write!(f, "http://[{}%25{z}]", v6.ip())?;
                if v6.port() != 80 {
                    write!(f, ":{}", v6.port())?;
                }
                f.write_str(&self.path)
            }
            _ => write!(f, "http://{}{}", self.host, self.path),
        }
    }
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What went wrong with a request. Each names the URL when displayed by [`Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The deadline or the per-request timeout ran out.
    Timeout,
    /// Connecting, reading or writing failed (message from the OS).
    Io(String),
    /// The response is not HTTP/1.x we understand.
    Malformed(String),
    /// The body is longer than the cap.
    TooLarge { cap: usize },
    /// A redirect to another host, or too many redirects.
    Redirect(String),
    /// A status the caller did not accept (not 2xx and not 404 where 404 means absent).
    Status(u16),
    /// The response lacks a header the platform promises (`Metadata-Flavor: Google`).
    MissingHeader(String),
    /// No source port of [`Client::source_ports`] could be bound (not root, or all taken):
    /// final, asking again would not help.
    Bind(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Timeout => f.write_str("timed out"),
            HttpError::Io(e) => f.write_str(e),
            HttpError::Malformed(e) => write!(f, "malformed response: {e}"),
            HttpError::TooLarge { cap } => write!(f, "body larger than the {cap}-byte limit"),
            HttpError::Redirect(e) => write!(f, "redirect refused: {e}"),
            HttpError::Status(s) => write!(f, "HTTP status {s}, not a success (2xx)"),
            HttpError::MissingHeader(h) => write!(f, "response lacks {h}"),
            HttpError::Bind(e) => write!(f, "cannot bind a source port: {e}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A status worth asking again for: 429 and the 5xx that mean "not now". 501 (the method
/// is not implemented: an IMDS without IMDSv2, a plain static server) and 505 will not
/// change, so they are answers, not reasons to wait out the deadline.
fn transient_status(status: u16) -> bool {
    status == 429 || (status >= 500 && status != 501 && status != 505)
}

impl HttpError {
    /// Worth trying again (before the deadline)?
    fn transient(&self) -> bool {
        match self {
            HttpError::Timeout | HttpError::Io(_) => true,
            HttpError::Status(s) => transient_status(*s),
            _ => false,
        }
    }
}

/// Progress of [`parse_response`] over the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// Read more (and call again).
    Incomplete,
    Done(Response),
}

/// Parses a response from `buf`, all bytes read so far; `eof` says the peer closed.
/// Pure; never panics; `cap` bounds the body. At most [`MAX_INTERIM`] `100 Continue`
/// responses are skipped before the final one.
pub fn parse_response(buf: &[u8], eof: bool, cap: usize) -> Result<Parse, HttpError> {
    parse_after_interim(buf, eof, cap, 0)
}

/// [`parse_response`] after `interim` skipped `100 Continue` responses. The count bounds the
/// recursion: a server sending nothing but interim responses (a megabyte of them fits in the
/// buffer [`Client`] allows) once overflowed the stack here.
fn parse_after_interim(
    buf: &[u8],
    eof: bool,
    cap: usize,
    interim: usize,
) -> Result<Parse, HttpError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > HEAD_CAP {
            return Err(HttpError::Malformed("response head too long".into()));
        }
        if eof {
            return Err(HttpError::Malformed("connection closed in the head".into()));
        }
        return Ok(Parse::Incomplete);
    };
    if head_end > HEAD_CAP {
        return Err(HttpError::Malformed("response head too long".into()));
    }
    let head = buf.get(..head_end).unwrap_or_default();
    let body_start = head_end.saturating_add(4);
    let rest = buf.get(body_start..).unwrap_or_default();
    let head = std::str::from_utf8(head)
        .map_err(|_| HttpError::Malformed("response head is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::Malformed(format!(
            "status line {status_line:?} is not HTTP/1.x"
        )));
    }
    let status: u16 = parts
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| HttpError::Malformed(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    for line in lines {
        // Lines end only at CRLF: a bare LF or CR (or any other control character but a tab)
        // inside one would be taken for a line end by whoever reads the value next, as a
        // `Location` once became a second line of preroot's own request (RFC 9112 §2.2: a
        // bare CR must be refused; RFC 9110 §5.5: field values hold no controls).
        if line.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(HttpError::Malformed(format!(
                "header line \"{}\" has a control character (a bare CR or LF?)",
                crate::text::show(line)
            )));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            HttpError::Malformed(format!(
                "header line \"{}\" has no ':'",
                crate::text::show(line)
            ))
        })?;
        if name.is_empty() || name.bytes().any(|b| b == b' ' || b == b'\t') {
            return Err(HttpError::Malformed(format!(
                "bad header name \"{}\"",
                crate::text::show(name)
            )));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    if status == 100 {
        // An interim response: drop it and parse what follows.
        if interim >= MAX_INTERIM {
            return Err(HttpError::Malformed(format!(
                "more than {MAX_INTERIM} interim (100 Continue) responses"
            )));
        }
        return parse_after_interim(rest, eof, cap, interim.saturating_add(1));
    }
    let done = |body: Vec<u8>| {
        Ok(Parse::Done(Response {
            status,
            headers: headers.clone(),
            body,
        }))
    };
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if status == 204 || status == 304 {
        return done(Vec::new());
    }
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return match decode_chunked(rest, cap)? {
            Some(body) => done(body),
            None if eof => Err(HttpError::Malformed("connection closed in a chunk".into())),
            None => Ok(Parse::Incomplete),
        };
    }
    let lengths = headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str());
    if let Some(len) = content_length(lengths).map_err(HttpError::Malformed)? {
        if len > cap {
            return Err(HttpError::TooLarge { cap });
        }
        return match rest.get(..len) {
            Some(body) => done(body.to_vec()),
            None if eof => Err(HttpError::Malformed(format!(
                "connection closed after {} of {len} body bytes",
                rest.len()
            ))),
            None => Ok(Parse::Incomplete),
        };
    }
    if rest.len() > cap {
        return Err(HttpError::TooLarge { cap });
    }
    if eof {
        done(rest.to_vec())
    } else {
        Ok(Parse::Incomplete)
    }
}

/// The body length the `Content-Length` fields give, `None` without one. RFC 9110 §8.6 and
/// RFC 9112 §6.3: the value is one or more digits; several fields (or a comma list) with the
/// same value count as one; values that differ make the response invalid (they are how one
/// response is read as two by different readers).
fn content_length<'a>(values: impl Iterator<Item = &'a str>) -> Result<Option<usize>, String> {
    let mut length: Option<usize> = None;
    for value in values.flat_map(|v| v.split(',')).map(str::trim) {
        let n: usize = value
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| value.parse().ok())
            .flatten()
            .ok_or_else(|| {
                format!(
                    "bad Content-Length \"{}\" (one or more digits)",
                    crate::text::show(value)
                )
            })?;
        match length {
            Some(l) if l != n => {
                return Err(format!(
                    "Content-Length given twice, as {l} and {n}: which body is meant is unknown"
                ))
            }
            _ => length = Some(n),
        }
    }
    Ok(length)
}

/// Decodes a complete chunked body, or `None` if more bytes are needed.
fn decode_chunked(mut buf: &[u8], cap: usize) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some((size, eol)) = chunk_size(buf)? else {
            return Ok(None);
        };
        buf = buf.get(eol.saturating_add(2)..).unwrap_or_default();
        if size == 0 {
            // Trailers (ignored) end with an empty line.
            return Ok(if find(buf, b"\r\n").is_some() {
                Some(body)
            } else {
                None
            });
        }
        if size > cap.saturating_sub(body.len()) {
            return Err(HttpError::TooLarge { cap });
        }
        let Some(chunk) = buf.get(..size) else {
            return Ok(None);
        };
        body.extend_from_slice(chunk);
        let after = buf.get(size..).unwrap_or_default();
        match after.get(..2) {
            Some(b"\r\n") => {}
            Some(_) => return Err(HttpError::Malformed("chunk not followed by CRLF".into())),
            None => return Ok(None),
        }
        buf = after.get(2..).unwrap_or_default();
    }
}

/// The chunk size line at the start of `buf` (extensions after `;` ignored): the size and
/// where its CRLF starts; `None` while the line is incomplete.
fn chunk_size(buf: &[u8]) -> Result<Option<(usize, usize)>, HttpError> {
    let Some(eol) = find(buf, b"\r\n") else {
        if buf.len() > 1024 {
            return Err(HttpError::Malformed("chunk size line too long".into()));
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(buf.get(..eol).unwrap_or_default())
        .map_err(|_| HttpError::Malformed("chunk size line is not UTF-8".into()))?;
    let size_text = line.split(';').next().unwrap_or_default().trim();
    let size = usize::from_str_radix(size_text, 16)
        .map_err(|_| HttpError::Malformed(format!("bad chunk size {size_text:?}")))?;
    Ok(Some((size, eol)))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The request bytes. Header values must not hold CR or LF (checked by [`Client`]).
pub fn build_request(method: &str, url: &Url, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: preroot/{}\r\nAccept: */*\r\nConnection: close\r\n",
        url.path,
        url.host,
        env!("CARGO_PKG_VERSION")
    );
    for (n, v) in headers {
        out.push_str(n);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    if !body.is_empty() || method == "PUT" || method == "POST" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The same-host target of a `Location`, or why not. A target goes into the request line:
/// control characters and spaces are refused (a relative one never passes [`Url::parse`]).
fn redirect_target(base: &Url, location: &str) -> Result<Url, HttpError> {
    if location.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(HttpError::Redirect(format!(
            "Location \"{}\" has control characters or spaces",
            crate::text::show(location)
        )));
    }
    if location.starts_with('/') && !location.starts_with("//") {
        return Ok(Url {
            path: location.to_string(),
            ..base.clone()
        });
    }
    let target = Url::parse(location).map_err(HttpError::Redirect)?;
    if target.addr != base.addr {
        return Err(HttpError::Redirect(format!(
            "{location} is not on {}",
            base.host
        )));
    }
    Ok(target)
}

/// A metadata-service client: a deadline, headers sent with every request, and a header every
/// response must carry.
#[derive(Debug, Clone)]
pub struct Client {
    pub deadline: Deadline,
    pub per_request: Duration,
    pub headers: Vec<(String, String)>,
    /// `(name, value)` each response must carry (GCE's `Metadata-Flavor: Google`).
    pub require: Option<(String, String)>,
    /// Connect from a source port of this inclusive range (Scaleway serves user data only
    /// to ports below 1024), else from any.
    pub source_ports: Option<(u16, u16)>,
}

impl Client {
    pub fn new(deadline: Deadline) -> Client {
        Client {
            deadline,
            per_request: REQUEST_TIMEOUT,
            headers: Vec::new(),
            require: None,
            source_ports: None,
        }
    }

    /// GET with retries; `Ok(None)` on 404 (absent), the body on 2xx.
    pub fn get(&self, url: &Url, cap: usize) -> Result<Option<Vec<u8>>, HttpError> {
        match self.request("GET", url, &[], &[], cap) {
            Ok(r) if r.status == 404 => Ok(None),
            Ok(r) if (200..300).contains(&r.status) => Ok(Some(r.body)),
            Ok(r) => Err(HttpError::Status(r.status)),
            Err(e) => Err(e),
        }
    }

    /// One request, retried on transient failures until the deadline; redirects followed on
    /// the same host. The response may have any status.
    pub fn request(
        &self,
        method: &str,
        url: &Url,
        extra: &[(&str, &str)],
        body: &[u8],
        cap: usize,
    ) -> Result<Response, HttpError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = self.follow(method, url, extra, body, cap);
            let retry = match &result {
                Ok(r) => transient_status(r.status),
                Err(e) => e.transient(),
            };
            if !retry || self.deadline.remaining() <= backoff {
                if let Err(e) = &result {
                    log::debug!("http: {method} {url}: {e}");
                }
                return result;
            }
            log::debug!(
                "http: {method} {url}: {}; again in {} ms",
                match &result {
                    Ok(r) => format!("status {}", r.status),
                    Err(e) => e.to_string(),
                },
                backoff.as_millis()
            );
            std::thread::sleep(backoff);
            backoff = backoff.saturating_mul(2).min(Duration::from_secs(1));
        }
    }

    fn follow(
        &self,
        method: &str,
        url: &Url,
        extra: &[(&str, &str)],
        body: &[u8],
        cap: usize,
    ) -> Result<Response, HttpError> {
        let mut url = url.clone();
        let mut redirects = 0u32;
        loop {
            let resp = self.once(method, &url, extra, body, cap)?;
            if !matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
                // Only an answer is checked for the platform's header: a 500 from the right
                // service is reported as the 500 it is (and retried), not as someone else's.
                let answer = (200..300).contains(&resp.status);
                if let (Some((name, value)), true) = (&self.require, answer) {
                    if resp.header(&name.to_ascii_lowercase()) != Some(value.as_str()) {
                        return Err(HttpError::MissingHeader(format!("{name}: {value}")));
                    }
                }
                return Ok(resp);
            }
            redirects = redirects.saturating_add(1);
            if redirects > MAX_REDIRECTS {
                return Err(HttpError::Redirect(format!(
                    "more than {MAX_REDIRECTS} redirects"
                )));
            }
            let location = resp
                .header("location")
                .ok_or_else(|| HttpError::Malformed("redirect without Location".into()))?;
            url = redirect_target(&url, location)?;
        }
    }

    /// One request on one connection, bounded by the per-request timeout and the deadline.
    pub fn once(
        &self,
        method: &str,
        url: &Url,
        extra: &[(&str, &str)],
        body: &[u8],
        cap: usize,
    ) -> Result<Response, HttpError> {
        let own: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(extra.iter().copied())
            .collect();
        if own
            .iter()
            .any(|(n, v)| n.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']))
        {
            return Err(HttpError::Io("header with CR, LF or ':' refused".into()));
        }
        if url.path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(HttpError::Io(format!(
                "request path \"{}\" has control characters or spaces; refused",
                crate::text::show(&url.path)
            )));
        }
        let limit = self.deadline.remaining().min(self.per_request);
        if limit.is_zero() {
            return Err(HttpError::Timeout);
        }
        let started = std::time::Instant::now();
        let left = || {
            limit
                .checked_sub(started.elapsed())
                .filter(|d| !d.is_zero())
                .ok_or(HttpError::Timeout)
        };
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => HttpError::Timeout,
            _ => HttpError::Io(e.to_string()),
        };
        let mut stream =
            match self.source_ports {
                None => TcpStream::connect_timeout(&url.addr, limit).map_err(io)?,
                Some(ports) => crate::sys::tcp::connect_from_ports(url.addr, ports, limit)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::AddrInUse => {
                            HttpError::Bind(e.to_string())
                        }
                        _ => io(e),
                    })?,
            };
        let _ = stream.set_nodelay(true);
        stream.set_write_timeout(Some(left()?)).map_err(io)?;
        stream
            .write_all(&build_request(method, url, &own, body))
            .map_err(io)?;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let total_cap = cap.saturating_add(HEAD_CAP).saturating_add(64 * 1024);
        // Once the head is in, only the new bytes are looked at until the body is complete
        // (then `parse_response` runs once more): parsing everything after every read made a
        // 16 MiB chunked body quadratic, and a 100 MiB one outlived the deadline.
        let mut framing: Option<BodyFraming> = None;
        loop {
            stream.set_read_timeout(Some(left()?)).map_err(io)?;
            let n = stream.read(&mut chunk).map_err(io)?;
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if buf.len() > total_cap {
                return Err(HttpError::TooLarge { cap });
            }
            if n != 0 {
                let complete = match &mut framing {
                    None => true,
                    Some(f) => f.complete(&buf, cap)?,
                };
                if !complete {
                    continue;
                }
            }
            match parse_response(&buf, n == 0, cap)? {
                Parse::Done(r) => return Ok(r),
                Parse::Incomplete => {
                    if framing.is_none() {
                        framing = BodyFraming::of(&buf);
                    }
                }
            }
        }
    }
}

/// How a response's body ends, known once its head is in: [`Client::once`] asks
/// [`BodyFraming::complete`] after each read, which looks only at bytes it has not seen.
#[derive(Debug)]
enum BodyFraming {
    /// `Content-Length`: complete at `start + len` bytes.
    Length { start: usize, len: usize },
    /// Chunked: `pos` is the next chunk's size line (an offset in the buffer), `body` the
    /// body bytes before it.
    Chunked { pos: usize, body: usize },
    /// Until the connection closes (only the cap is checked on the way).
    ToEof { start: usize },
}

impl BodyFraming {
    /// The framing of the response whose head is at the start of `buf`; `None` while the
    /// head is incomplete or for `100 Continue` (then the full parser runs after each read).
    fn of(buf: &[u8]) -> Option<BodyFraming> {
        let head_end = find(buf, b"\r\n\r\n")?;
        let head = std::str::from_utf8(buf.get(..head_end)?).ok()?;
        let mut lines = head.split("\r\n");
        if lines.next()?.split(' ').nth(1)? == "100" {
            return None;
        }
        let start = head_end.saturating_add(4);
        let mut lengths = Vec::new();
        for (name, value) in lines.filter_map(|l| l.split_once(':')) {
            if name.eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
            {
                return Some(BodyFraming::Chunked {
                    pos: start,
                    body: 0,
                });
            }
            if name.eq_ignore_ascii_case("content-length") {
                lengths.push(value);
            }
        }
        Some(match content_length(lengths.into_iter()) {
            Ok(Some(len)) => BodyFraming::Length { start, len },
            Ok(None) => BodyFraming::ToEof { start },
            // Complete at once: `parse_response` then says what is wrong with it.
            Err(_) => BodyFraming::Length { start, len: 0 },
        })
    }

    /// Is the body complete in `buf` (the whole response read so far)? Errors as
    /// [`parse_response`] would give them: too large, a bad chunk size line.
    fn complete(&mut self, buf: &[u8], cap: usize) -> Result<bool, HttpError> {
        match self {
            BodyFraming::Length { start, len } => {
                Ok(buf.len().saturating_sub(*start) >= *len || *len > cap)
            }
            BodyFraming::ToEof { start } => {
                if buf.len().saturating_sub(*start) > cap {
                    return Err(HttpError::TooLarge { cap });
                }
                Ok(false)
            }
            BodyFraming::Chunked { pos, body } => loop {
                let rest = buf.get(*pos..).unwrap_or_default();
                let Some((size, eol)) = chunk_size(rest)? else {
                    return Ok(false);
                };
                if size == 0 {
                    // The last chunk; the trailers end with an empty line.
                    let after = rest.get(eol.saturating_add(2)..).unwrap_or_default();
                    return Ok(find(after, b"\r\n").is_some());
                }
                if size > cap.saturating_sub(*body) {
                    return Err(HttpError::TooLarge { cap });
                }
                let need = eol.saturating_add(4).saturating_add(size);
                if rest.len() < need {
                    return Ok(false);
                }
                *pos = pos.saturating_add(need);
                *body = body.saturating_add(size);
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_statuses_are_asked_again() {
        for (status, again) in [
            (429, true),
            (500, true),
            (502, true),
            (503, true),
            (501, false),
            (505, false),
            (404, false),
            (200, false),
        ] {
            assert_eq!(transient_status(status), again, "case {status}");
        }
    }

    fn done(r: Result<Parse, HttpError>) -> Response {
        match r {
            Ok(Parse::Done(r)) => r,
            other => panic!("not done: {other:?}"),
        }
    }

    #[test]
    fn urls() {
        let u = Url::parse("http://169.254.169.254/latest/").unwrap();
        assert_eq!(u.host, "169.254.169.254");
        assert_eq!(u.addr, "169.254.169.254:80".parse().unwrap());
        assert_eq!(u.path, "/latest/");
        assert_eq!(u.join("meta-data/x").path, "/latest/meta-data/x");
        let u = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((u.path.as_str(), u.addr.port()), ("/", 8080));
        assert_eq!(u.join("/a").path, "/a");
        let u = Url::parse("http://[fd00:ec2::254]/latest").unwrap();
        assert_eq!(u.addr, "[fd00:ec2::254]:80".parse().unwrap());
        assert_eq!(u.host, "[fd00:ec2::254]");
        let u = Url::parse("http://metadata.google.internal/computeMetadata/v1/").unwrap();
        assert_eq!(u.addr, "169.254.169.254:80".parse().unwrap());
        assert_eq!(u.host, "metadata.google.internal");
        for bad in [
            "https://1.2.3.4/",
            "http://example.com/",
            "http://1.2.3.4:99999/",
            "http://u:p@1.2.3.4/",
            "http://[::1/",
            "http://1.2.3.4/a b",
            "http://1.2.3.4/a\r\nX: y",
        ] {
            assert!(Url::parse(bad).is_err(), "case {bad}");
        }
    }

    #[test]
    fn ipv6_literals_and_zones() {
        let nics = |name: &str| match name {
            "eth0" => Some(2),
            "ens3" => Some(7),
            _ => None,
        };
        let ll: std::net::Ipv6Addr = "fe80::a9fe:a9fe".parse().unwrap();
        for (case, text, host, addr, zone, shown) in [
            (
                "named zone",
                "http://[fe80::a9fe:a9fe%25eth0]/openstack",
                "[fe80::a9fe:a9fe]",
                SocketAddr::V6(std::net::SocketAddrV6::new(ll, 80, 0, 2)),
                Some("eth0"),
                "http://[fe80::a9fe:a9fe%25eth0]/openstack",
            ),
            (
                "numeric zone, port",
                "http://[fe80::a9fe:a9fe%257]:8080/",
                "[fe80::a9fe:a9fe]:8080",
                SocketAddr::V6(std::net::SocketAddrV6::new(ll, 8080, 0, 7)),
                Some("7"),
                "http://[fe80::a9fe:a9fe%257]:8080/",
            ),
            (
                "no zone, upper case",
                "http://[FD00:EC2::254]:80/",
                "[fd00:ec2::254]",
                "[fd00:ec2::254]:80".parse().unwrap(),
                None,
                "http://[fd00:ec2::254]/",
            ),
        ] {
            let u = Url::parse_with(text, nics).unwrap_or_else(|e| panic!("case {case}: {e}"));
            assert_eq!(u.host, host, "case {case}: Host header");
            assert_eq!(u.addr, addr, "case {case}: address");
            assert_eq!(u.zone.as_deref(), zone, "case {case}: zone");
            assert_eq!(u.to_string(), shown, "case {case}: display");
            let req = String::from_utf8(build_request("GET", &u, &[], &[])).unwrap();
            assert!(
                req.contains(&format!("\r\nHost: {host}\r\n")),
                "case {case}: {req}"
            );
        }
        for (case, bad, why) in [
            ("bare %", "http://[fe80::1%eth0]/", "%25ZONE"),
            (
                "unknown interface",
                "http://[fe80::1%25eth9]/",
                "not an interface",
            ),
            ("empty zone", "http://[fe80::1%25]/", "not an interface"),
            ("zone 0", "http://[fe80::1%250]/", "not an interface"),
            (
                "zone outside brackets",
                "http://1.2.3.4%2525/",
                "not an IP address",
            ),
        ] {
            let e = Url::parse_with(bad, nics).unwrap_err();
            assert!(e.contains(why), "case {case}: {e}");
        }
        let u = Url::parse_with("http://[fe80::a9fe:a9fe]/", nics).unwrap();
        let z = u.with_zone("ens3", 7);
        assert_eq!(
            (z.to_string(), z.addr),
            (
                "http://[fe80::a9fe:a9fe%25ens3]/".to_string(),
                SocketAddr::V6(std::net::SocketAddrV6::new(ll, 80, 0, 7))
            ),
            "case with_zone"
        );
    }

    #[test]
    fn content_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello";
        for cut in 0..raw.len() {
            assert_eq!(
                parse_response(&raw[..cut], false, 100),
                Ok(Parse::Incomplete),
                "case cut {cut}"
            );
        }
        let r = done(parse_response(raw, false, 100));
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(r.header("x-a"), Some("b"));
        assert_eq!(r.header("content-length"), Some("5"));
        assert_eq!(
            parse_response(raw, false, 4),
            Err(HttpError::TooLarge { cap: 4 })
        );
        assert!(parse_response(&raw[..raw.len() - 1], true, 100).is_err());
    }

    #[test]
    fn body_framing_sees_the_end_without_parsing_again() {
        // Fed byte by byte, as reads may come: complete exactly when parse_response is Done.
        let cases: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\na\r\n0\r\nT: v\r\n\r\n",
            b"HTTP/1.1 404 X\r\ncontent-length: 0\r\n\r\n",
        ];
        for (i, full) in cases.iter().enumerate() {
            let mut framing: Option<BodyFraming> = None;
            for end in 1..=full.len() {
                let buf = &full[..end];
                let complete = match &mut framing {
                    None => true,
                    Some(f) => f.complete(buf, 100).unwrap(),
                };
                let done = matches!(parse_response(buf, false, 100), Ok(Parse::Done(_)));
                if framing.is_some() {
                    assert_eq!(complete, done, "case {i} at {end} bytes");
                }
                if framing.is_none() {
                    framing = BodyFraming::of(buf);
                }
            }
            assert!(framing.is_some(), "case {i}: head seen");
        }
        // Over the cap: said as soon as a chunk size or the length shows it.
        let mut f =
            BodyFraming::of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        let big = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n";
        assert_eq!(f.complete(big, 100), Err(HttpError::TooLarge { cap: 100 }));
        let mut f = BodyFraming::of(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        let eof = [b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), &[b'x'; 101]].concat();
        assert_eq!(f.complete(&eof, 100), Err(HttpError::TooLarge { cap: 100 }));
        assert!(BodyFraming::of(b"HTTP/1.1 100 Continue\r\n\r\n").is_none());
    }

    #[test]
    fn chunked() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(
                parse_response(&raw[..cut], false, 100),
                Ok(Parse::Incomplete),
                "case cut {cut}"
            );
            assert!(parse_response(&raw[..cut], true, 100).is_err(), "cut {cut}");
        }
        assert_eq!(done(parse_response(raw, false, 100)).body, b"hello world");
        assert_eq!(
            parse_response(raw, false, 8),
            Err(HttpError::TooLarge { cap: 8 })
        );
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(parse_response(bad, false, 100).is_err());
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc";
        assert!(parse_response(bad, false, 100).is_err());
    }

    #[test]
    fn to_eof_and_oddities() {
        let raw = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert_eq!(parse_response(raw, false, 100), Ok(Parse::Incomplete));
        let r = done(parse_response(raw, true, 100));
        assert_eq!((r.status, r.body.as_slice()), (404, &b"nope"[..]));
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(done(parse_response(raw, false, 100)).status, 204);
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 \xff\r\n\r\n",
        ] {
            assert!(parse_response(bad, true, 100).is_err(), "case {bad:?}");
        }
        let long = vec![b'a'; HEAD_CAP + 10];
        assert!(parse_response(&long, false, 100).is_err());
        assert!(parse_response(b"HTTP/1.1 200", true, 100).is_err());
    }

    #[test]
    fn interim_responses_are_bounded() {
        // A megabyte of `100 Continue` (within the buffer `Client` allows for a 1 MiB
        // document) once recursed once per response and overflowed the stack.
        let mut flood = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(40_000);
        flood.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let r = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || parse_response(&flood, true, 1 << 20))
            .unwrap()
            .join()
            .unwrap();
        assert!(
            matches!(&r, Err(HttpError::Malformed(m)) if m.contains("interim")),
            "{r:?}"
        );
        let mut some = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM);
        some.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(done(parse_response(&some, false, 100)).body, b"ok");
    }

    #[test]
    fn requests_and_redirects() {
        let u = Url::parse("http://127.0.0.1:81/latest/api/token").unwrap();
        let req = build_request("PUT", &u, &[("X-T", "21600")], b"");
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1:81\r\n"));
        assert!(text.contains("X-T: 21600\r\nContent-Length: 0\r\n\r\n"));
        assert_eq!(redirect_target(&u, "/x").unwrap().path, "/x");
        assert!(redirect_target(&u, "http://127.0.0.1:81/y").is_ok());
        assert!(redirect_target(&u, "http://127.0.0.2:81/y").is_err());
        assert!(redirect_target(&u, "//evil/y").is_err());
    }

    /// Issue 16 item 9: a `Location` with a bare LF (or CR, or any control character) never
    /// reaches the request line, and conflicting `Content-Length` fields are refused.
    #[test]
    fn no_line_breaks_into_a_request_and_one_content_length() {
        let u = Url::parse("http://127.0.0.1:81/latest/api/token").unwrap();
        for location in [
            "/x\nX-Injected: 1",
            "/x\rX-Injected: 1",
            "/x\u{0}",
            "/x y",
            "http://127.0.0.1:81/a\nb",
        ] {
            let e = redirect_target(&u, location).unwrap_err();
            assert!(!e.to_string().contains('\n'), "case {location:?}: {e}");
        }
        for head in [
            &b"HTTP/1.1 302 Found\r\nLocation: /x\nX-Injected: 1\r\n\r\n"[..],
            b"HTTP/1.1 302 Found\r\nLocation: /x\rX-Injected: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
        ] {
            let r = parse_response(head, true, 100);
            assert!(
                matches!(&r, Err(HttpError::Malformed(m)) if m.contains("control character")),
                "case {head:?}: {r:?}"
            );
        }
        let mut request = build_request("PUT", &u, &[], b"");
        request.retain(|b| *b != b'\r');
        assert_eq!(
            request.iter().filter(|b| **b == b'\n').count(),
            7,
            "{request:?}"
        );
        for (head, ok) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"[..],
                true,
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", true),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nokhello",
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5, 2\r\n\r\nokhello",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", false),
        ] {
            let r = parse_response(head, true, 100);
            assert_eq!(r.is_ok(), ok, "case {head:?}: {r:?}");
            let mut f = BodyFraming::of(head).unwrap();
            let complete = f.complete(head, 100);
            assert!(complete.is_err() || complete == Ok(true), "case {head:?}");
        }
    }
}
