//! Real boots in QEMU (issue 4): each test boots one scenario of `qemu/scenario.sh` (a Debian
//! bookworm guest, the host's kernel, a lean dracut initramfs with preroot) under TCG, reads
//! the report the guest writes to its second serial port, and checks what preroot did in the
//! initramfs. `qemu/README.md` says how to run them and what they cost.
//!
//! Needs root (debootstrap, chroot) and the host packages of `qemu/host-deps.sh` (`make check`
//! installs them); without them each test prints `SKIP`, or fails under `PREROOT_REQUIRE_ALL=1`.
//! The boots run one at a time (a lock): the machines have two cores.

mod common;

use common::qemu::*;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn qemu_gpt_configdrive() {
    let test = "qemu_gpt_configdrive";
    if !require_qemu(test) {
        return;
    }
    let r = boot(test, "gpt-configdrive", &[]);
    let ctx = assert_booted_with_preroot(test, &r);
    assert_configdrive(test, &ctx);
    assert_root_disk(test, &r, &ctx, "gpt");
    assert_configured(test, &r, "10.0.2.15", "preroot-qemu");
}

#[test]
fn qemu_mbr_configdrive() {
    let test = "qemu_mbr_configdrive";
    if !require_qemu(test) {
        return;
    }
    let r = boot(test, "mbr-configdrive", &[]);
    let ctx = assert_booted_with_preroot(test, &r);
    assert_configdrive(test, &ctx);
    assert_root_disk(test, &r, &ctx, "dos");
    assert_configured(test, &r, "10.0.2.15", "preroot-qemu");
}

/// A test-owned EC2 instance metadata service (IMDSv2) on 127.0.0.1: `PUT /latest/api/token`
/// hands out a token, and `GET /latest/meta-data/...` answers only with it. Records each
/// request line.
struct Imds {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

const IMDS_TOKEN: &str = "qemu-test-token";

impl Imds {
    fn start() -> Imds {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let _ = Imds::serve(conn, &log);
                });
            }
        });
        Imds { port, requests }
    }

    fn answer(method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let meta: &[(&str, &str)] = &[
            ("instance-id", "i-0123456789abcdef0"),
            ("local-hostname", "ip-10-0-2-15.ec2.internal"),
            ("hostname", "ip-10-0-2-15.ec2.internal"),
            ("mac", "52:54:00:12:34:56"),
            ("local-ipv4", "10.0.2.15"),
            ("placement/availability-zone", "us-east-1a"),
        ];
        match (method, path) {
            ("PUT", "/latest/api/token") => (200, IMDS_TOKEN.into()),
            (_, _) if token != Some(IMDS_TOKEN) => (401, String::new()),
            ("GET", "/latest/meta-data/") => (
                200,
                meta.iter()
                    .map(|(k, _)| k.split('/').next().unwrap_or(k))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            ("GET", p) => match p
                .strip_prefix("/latest/meta-data/")
                .and_then(|k| meta.iter().find(|(m, _)| *m == k))
            {
                Some((_, v)) => (200, (*v).into()),
                None => (404, String::new()),
            },
            _ => (405, String::new()),
        }
    }

    fn serve(conn: TcpStream, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut token = None;
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "x-aws-ec2-metadata-token" => token = Some(v.trim().to_string()),
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length.min(4096)];
        reader.read_exact(&mut body)?;
        log.lock().unwrap().push(line.trim().to_string());
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (code, body) = Imds::answer(method, path, token.as_deref());
        let mut conn = conn;
        write!(
            conn,
            "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }
}

#[test]
fn imds_answers_only_with_a_token() {
    // The test server itself, without QEMU: the EC2 scenario relies on it.
    let imds = Imds::start();
    let get = |req: &str| {
        let mut c = TcpStream::connect(("127.0.0.1", imds.port)).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    };
    let token = get("PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n\r\n");
    assert!(
        token.starts_with("HTTP/1.1 200") && token.ends_with(IMDS_TOKEN),
        "{token}"
    );
    let denied = get("GET /latest/meta-data/instance-id HTTP/1.1\r\n\r\n");
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let id = get(&format!(
        "GET /latest/meta-data/instance-id HTTP/1.1\r\nX-aws-ec2-metadata-token: {IMDS_TOKEN}\r\n\r\n"
    ));
    assert!(id.ends_with("i-0123456789abcdef0"), "{id}");
    assert_eq!(imds.requests.lock().unwrap().len(), 3);
}

#[test]
fn qemu_ec2_metadata_service() {
    let test = "qemu_ec2_metadata_service";
    if !require_qemu(test) {
        return;
    }
    let imds = Imds::start();
    let r = boot(test, "ec2", &[("META_PORT", imds.port.to_string())]);
    let ctx = assert_booted_with_preroot(test, &r);
    assert_eq!(
        ctx["platform"], "ec2",
        "{test}: DMI says Amazon EC2; {ctx:#}"
    );
    // Until the network stage (issue 6) lands, preroot finds no medium, records why and
    // lets the boot go on, well within its deadline.
    assert_eq!(
        (&ctx["source"]["kind"], &ctx["instance_id"]),
        (
            &Value::from("metadata-service"),
            &Value::from("i-0123456789abcdef0")
        ),
        "{test}: read from IMDSv2 over the network the fetch phase brought up; {ctx:#}"
    );
    assert_eq!(
        ctx["errors"].as_array().map(Vec::len),
        Some(0),
        "{test}: errors; {ctx:#}"
    );
    assert!(
        ctx["extra"]["dhcp"]["lease_ms"].is_u64(),
        "{test}: the DHCP lease is recorded; {ctx:#}"
    );
    assert_root_disk(test, &r, &ctx, "gpt");
    // The booted system's networkd asks slirp's DHCP again (preroot's file says DHCP for the
    // NIC) and gets the address the initramfs's lease had.
    let leased = ctx["extra"]["dhcp"]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .unwrap_or_default()
        .to_string();
    assert_configured(test, &r, &leased, "ip-10-0-2-15");
    let fetch_ms = ctx["phases"][0]["duration_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        fetch_ms <= FETCH_DEADLINE_MS,
        "{test}: fetch took {fetch_ms} ms, past its {FETCH_DEADLINE_MS} ms deadline"
    );
    eprintln!(
        "{test}: metadata requests seen: {:?}",
        imds.requests.lock().unwrap()
    );
}

#[test]
fn report_parses_sections() {
    // The parser alone (no QEMU): console noise around the markers, CRs, empty sections.
    let text = "noise\r\n@@@ BEGIN\r\n@@ state\r\nrunning\r\n@@ failed\r\n@@ units\r\n\
                multi-user.target 36601157 active\r\nsysroot.mount 0 inactive\r\n\
                @@ show-json\r\n{\"platform\": \"ec2\"}\r\n@@@ END\r\nPowering off.\r\n";
    let r = Report::parse(text, Path::new("/x")).expect("complete report");
    assert_eq!(r.get("state"), "running\n");
    assert_eq!(r.get("failed"), "");
    assert_eq!(r.unit_active_us("multi-user.target"), 36_601_157);
    assert_eq!(r.unit_active_us("sysroot.mount"), 0);
    assert_eq!(r.unit_active_us("absent.target"), 0);
    assert_eq!(r.context()["platform"], "ec2");
    // A guest that died mid-report wrote no END: no report.
    assert!(Report::parse("@@@ BEGIN\n@@ state\nrunning\n", Path::new("/x")).is_none());
}
