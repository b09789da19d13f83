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

/// Installed as a user installs it (issue 18): the guest got preroot from the `preroot` and
/// `preroot-dracut` .debs by `dpkg -i`, and its initramfs from its own `dracut -f` with no
/// module named (`lib.sh build_initramfs --deb`); the same boot and checks as every config
/// drive boot, and the packages' own part: installed, preroot-apply enabled by their
/// postinst and run.
#[test]
fn qemu_gpt_configdrive() {
    let test = "qemu_gpt_configdrive";
    if !require_qemu(test) {
        return;
    }
    let r = boot(
        test,
        "gpt-configdrive",
        &[("VARIANT", "preroot-deb".to_string())],
    );
    let ctx = assert_booted_with_preroot(test, &r);
    assert_configdrive(test, &ctx);
    assert_root_disk(test, &r, &ctx, "gpt");
    assert_configured(test, &r, "10.0.2.15", "preroot-qemu");
    let changelog = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/debian/changelog"),
    )
    .unwrap();
    let version = changelog
        .split(['(', ')'])
        .nth(1)
        .expect("a version in packaging/debian/changelog's first line");
    assert_eq!(
        r.sub("x-packages", "dpkg").trim(),
        format!("preroot {version} ii \npreroot-dracut {version} ii"),
        "{test}: the packages as dpkg sees them in the booted guest"
    );
    assert_eq!(
        r.sub("x-packages", "apply-enabled").trim(),
        "enabled",
        "{test}: preroot-apply.service, enabled by the postinst"
    );
    assert!(
        r.sub("x-packages", "apply-result")
            .contains("Result=success"),
        "{test}: preroot-apply.service:\n{}",
        r.sub("x-packages", "apply-result")
    );
    assert!(
        r.sub("x-packages", "version")
            .starts_with(&format!("preroot {}", env!("CARGO_PKG_VERSION"))),
        "{test}: preroot --version: {}",
        r.sub("x-packages", "version")
    );
}

/// The `make install` build (every other boot's): no package, so dpkg knows none, and the
/// packaged boot above is not one by accident.
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
    let dpkg = r.sub("x-packages", "dpkg");
    assert!(
        !dpkg.contains(" ii"),
        "{test}: a make install build with preroot packages installed:\n{dpkg}"
    );
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
    // No medium: the fetch phase brings up the NIC (DHCP from slirp) and reads IMDSv2.
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

#[test]
fn report_json_sections_fail_loudly() {
    // Report::json alone (no QEMU): a section that should be JSON and is not fails with a
    // message that says so, never reads as null (issue 16, item 21).
    let parse = |text: &str| Report::parse(text, Path::new("/r")).expect("complete report");
    let addr =
        r#"[{"ifname":"eth0","addr_info":[{"family":"inet","local":"10.0.2.15","prefixlen":24}]}]"#;
    // The report that failed: iproute2's stderr line at the top of the JSON (the guest used
    // to send stderr into the section).
    let mixed = parse(&format!(
        "@@@ BEGIN\r\n@@ ip\r\nDump was interrupted and may be inconsistent.\r\n{addr}\r\n\
         @@ hostname\r\npreroot-qemu\r\n@@@ END\r\n"
    ));
    let e = mixed
        .try_json("ip")
        .expect_err("a mixed stream is not JSON");
    assert!(
        e.starts_with("section ip: not JSON (")
            && e.contains("):\nDump was interrupted and may be inconsistent.\n[{")
            && e.contains("(report in /r)"),
        "the message names the section, says not JSON and shows its first lines: {e}"
    );
    // Today's guest: stdout only in the section, the dump's note in ip.stderr.
    let clean = parse(&format!(
        "@@@ BEGIN\n@@ ip\n{addr}\n@@ ip.stderr\npreroot-report: ip -j addr: 2 dumps for a \
         consistent one\n@@@ END\n"
    ));
    assert_eq!(clean.json("ip")[0]["addr_info"][0]["local"], "10.0.2.15");
    // Bad JSON, with its stderr section quoted; an empty or missing section is no better.
    let bad = parse(
        "@@@ BEGIN\n@@ lsblk\n{\"blockdevices\": [\n@@ lsblk.stderr\nlsblk: oops\nexit 1\n\
         @@ show-json\n@@ x-atomic\n# pvs\nWARNING: leaked\n# vgs\n{}\n@@@ END\n",
    );
    let e = bad.try_json("lsblk").expect_err("truncated JSON");
    assert!(
        e.starts_with("section lsblk: not JSON (EOF while parsing")
            && e.contains(
                "{\"blockdevices\": [\nits stderr (section lsblk.stderr):\nlsblk: oops\nexit 1"
            ),
        "{e}"
    );
    let e = bad.try_json("show-json").expect_err("empty section");
    assert!(
        e.contains("section show-json: not JSON (") && e.contains("(empty)"),
        "{e}"
    );
    let e = bad.try_json("ip").expect_err("no such section");
    assert!(e.starts_with("section ip: missing from the report"), "{e}");
    let e = bad
        .try_json_sub("x-atomic", "pvs")
        .expect_err("a probe's topic");
    assert!(
        e.starts_with("section x-atomic, topic pvs: not JSON (") && e.contains("WARNING: leaked"),
        "{e}"
    );
    assert_eq!(bad.json_sub("x-atomic", "vgs"), serde_json::json!({}));
}

/// Issue 19: a guest with only IPv6. QEMU's user networking cannot forward to an IPv6 address,
/// so `qemu/net-boot.sh` (`NET=ipv6`) gives the guest a tap device inside a namespace it makes,
/// with dnsmasq (RA with the M flag, DHCPv6, no DHCPv4) and IMDSv2 on [fd00:ec2::254] there;
/// the quick scenario (the host kernel and a busybox initramfs holding the static preroot)
/// rather than another full boot. The guest's `preroot context --platform ec2` races DHCPv4
/// (no answer) against IPv6, reads IMDS over IPv6, and the fallback link of its virtio NIC
/// gets the DHCPv6 the router asked for.
#[test]
fn qemu_ipv6_only_net_boot() {
    let test = "qemu_ipv6_only_net_boot";
    if !require_qemu(test) {
        return;
    }
    for tool in ["ip", "dnsmasq", "busybox", "cpio", "python3"] {
        if !common::has_tool(tool) {
            common::missing(test, &format!("the tool `{tool}`"));
            return;
        }
    }
    let _one = BOOTS.lock().unwrap_or_else(|e| e.into_inner());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = std::process::Command::new("make")
        .args(["-s", "-C"])
        .arg(repo)
        .arg("static")
        .status()
        .expect("make static");
    assert!(built.success(), "{test}: make static");
    let out = std::env::temp_dir().join(format!("preroot-{test}-{}.json", std::process::id()));
    let input = common::fixtures().join("ec2/ec2-default-primary-nic-v4v6/input");
    let run = std::process::Command::new("bash")
        .arg(repo.join("qemu/net-boot.sh"))
        .arg("ec2")
        .arg(&input)
        .env("NET", "ipv6")
        .env("CTX_OUT", &out)
        .output()
        .expect("run qemu/net-boot.sh");
    let log =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    eprintln!("{test}:\n{log}");
    assert!(run.status.success(), "{test}: net-boot.sh failed");
    let ctx: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(ctx["instance_id"], "i-0a33f80f09c96477f", "{test}: {ctx:#}");
    assert_eq!(
        ctx["source"]["location"], "http://[fd00:ec2::254]/",
        "{test}"
    );
    let d = &ctx["extra"]["dhcp"];
    assert_eq!(
        (&d["family"], &d["method"]),
        (&Value::from("ipv6"), &Value::from("dhcp6")),
        "{test}: {d}"
    );
    let eth0 = ctx["network"]["links"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["name"] == "eth0"))
        .cloned()
        .unwrap_or_default();
    assert!(
        eth0["addressing"]
            .as_array()
            .is_some_and(|a| a.iter().any(|m| m["method"] == "dhcp6")),
        "{test}: the fallback link learned DHCPv6: {eth0}"
    );
    assert!(
        log.contains("\"PUT /latest/api/token\" Host=[fd00:ec2::254] 200"),
        "{test}: IMDSv2 over IPv6 with a bracketed Host"
    );
    let total = d["total_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        total <= FETCH_DEADLINE_MS,
        "{test}: the stage took {total} ms"
    );
}
