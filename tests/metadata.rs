//! Metadata services over HTTP, without root: the binary (`preroot context --platform P
//! --metadata-url URL`) against a test-owned server on 127.0.0.1 serving the fixture trees
//! (`common/metadata.rs`). Covers EC2 with and without IMDSv2 tokens, the OpenStack service,
//! GCE (header both ways, required keys), NoCloud-net, a slow server, 404 on optional paths
//! and the deadline.
//!
//! The fault matrix (issue 9; tests `fault_*`, plus the silent server and IMDSv1 tests) runs
//! each fault with a short deadline and asserts: preroot ends within the deadline plus
//! [`MARGIN`], a failure is exactly one line on stderr naming it, and the context is right
//! wherever the data was good. Each records its row of the table in docs/faults.md
//! (`tools/faults-table` runs them and rewrites the table from the rows).

mod common;

use common::metadata::{Fault, Faults, Framing, Mode, Server};
use common::{fake_machine, fixtures, TempDir};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Run {
    code: Option<i32>,
    ctx: Value,
    stderr: String,
    took: Duration,
}

fn context(platform: &str, url: &str, timeout: &str, cmdline: &str, state: &Path) -> Run {
    let machine = TempDir::new("md-machine");
    fake_machine(machine.path(), cmdline, &[]);
    let mut args = vec![
        "context",
        "--platform",
        platform,
        "--timeout",
        timeout,
        "--root",
        machine.path().to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    if !url.is_empty() {
        args.extend(["--metadata-url", url]);
    }
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run preroot");
    Run {
        code: out.status.code(),
        ctx: serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// How long past its deadline a run may take (process start, the last try's close).
const MARGIN: Duration = Duration::from_millis(1500);

/// One row of the fault table (docs/faults.md): written to
/// `$CARGO_TARGET_TMPDIR/faults/<key>.row`; `tools/faults-table` collects them.
fn record(key: &str, fault: &str, expected: &str, observed: &str, took: Duration) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults");
    std::fs::create_dir_all(&dir).unwrap();
    let observed = observed.replace('|', "\\|").replace('\n', " ");
    std::fs::write(
        dir.join(format!("{key}.row")),
        format!(
            "| {fault} | {expected} | {observed} | {} ms |\n",
            took.as_millis()
        ),
    )
    .unwrap();
}

/// A failed run: exit 1 within the deadline (seconds) plus [`MARGIN`], and exactly one line
/// on stderr, which contains `needle`. Returns that line.
fn assert_failed_once(case: &str, r: &Run, deadline_s: u64, needle: &str) -> String {
    assert_eq!(r.code, Some(1), "case {case}: {}\n{:#}", r.stderr, r.ctx);
    assert!(
        r.took <= Duration::from_secs(deadline_s) + MARGIN,
        "case {case}: took {:?} with a {deadline_s} s deadline",
        r.took
    );
    let lines: Vec<&str> = r.stderr.trim().lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "case {case}: one line on stderr: {}",
        r.stderr
    );
    assert!(
        lines[0].contains(needle),
        "case {case}: {needle:?} not in {:?}",
        lines[0]
    );
    lines[0].to_string()
}

/// A good run: exit 0 within the deadline plus [`MARGIN`], nothing on stderr, no errors in
/// the context.
fn assert_ok_quietly(case: &str, r: &Run, deadline_s: u64) {
    assert_eq!(r.code, Some(0), "case {case}: {}", r.stderr);
    assert!(
        r.took <= Duration::from_secs(deadline_s) + MARGIN,
        "case {case}: took {:?}",
        r.took
    );
    assert_eq!(r.stderr.trim(), "", "case {case}: stderr");
    assert!(
        r.ctx["errors"].as_array().is_none_or(|e| e.is_empty()),
        "case {case}: errors {}",
        r.ctx["errors"]
    );
}

fn openstack_case() -> (std::path::PathBuf, Value) {
    let case = fixtures().join("openstack/cloudinit-metadata-service");
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(case.join("expected/assertions.json")).unwrap(),
    )
    .unwrap();
    (case.join("input"), want)
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap().trim().to_string()
}

#[test]
fn ec2_imdsv2_fixtures() {
    for case in [
        "ec2-default-ipv4-only-nic",
        "ec2-default-primary-nic-v4v6",
        "ec2-multi-nic-ipv6-only",
        "ec2-secondary-ips-2018-09-24",
    ] {
        let input = fixtures().join("ec2").join(case).join("input");
        let server = Server::start(&input, Mode::Ec2Token, "127.0.0.1:0", 0, Duration::ZERO);
        let state = TempDir::new("md-state");
        let r = context("ec2", &server.url(), "10", "", state.path());
        assert_eq!(r.code, Some(0), "case {case}: {}", r.stderr);
        let id_file = input.join("latest/meta-data/instance-id");
        if id_file.exists() {
            assert_eq!(
                r.ctx["instance_id"],
                read_trim(&id_file).as_str(),
                "case {case}"
            );
        }
        assert_eq!(r.ctx["platform"], "ec2", "case {case}");
        assert_eq!(r.ctx["source"]["kind"], "metadata-service", "case {case}");
        assert!(
            r.ctx["fallbacks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["kind"] != "imdsv1"),
            "case {case}"
        );
        let reqs = server.requests();
        assert_eq!(reqs[0], "PUT /latest/api/token", "case {case}: token first");
        // user-data: stored (0600) when the tree has some, absent (404 or empty, no error)
        // when not.
        let ud = input.join("latest/user-data");
        if std::fs::metadata(&ud).is_ok_and(|m| m.len() > 0) {
            let path = r.ctx["user_data"]["path"].as_str().unwrap();
            assert_eq!(
                std::fs::read(path).unwrap(),
                std::fs::read(&ud).unwrap(),
                "case {case}"
            );
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "case {case}");
        } else {
            assert!(r.ctx.get("user_data").is_none(), "case {case}");
        }
        // Every expected NIC's MAC is a link.
        let expected = fixtures()
            .join("ec2")
            .join(case)
            .join("expected/cloudinit-v2/network-config.json");
        if let Ok(text) = std::fs::read_to_string(expected) {
            let want: Value = serde_json::from_str(&text).unwrap();
            for (_, eth) in want["ethernets"].as_object().unwrap() {
                let mac = eth["match"]["macaddress"].as_str().unwrap();
                let link = r.ctx["network"]["links"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|l| l["mac"] == mac);
                let link = link.unwrap_or_else(|| panic!("case {case}: no link for {mac}"));
                let methods: Vec<&str> = link["addressing"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["method"].as_str().unwrap())
                    .collect();
                assert_eq!(
                    methods.contains(&"dhcp4"),
                    eth["dhcp4"] == true,
                    "case {case} {mac}"
                );
                assert_eq!(
                    methods.contains(&"dhcp6"),
                    eth["dhcp6"] == true,
                    "case {case} {mac}"
                );
            }
        }
    }
}

#[test]
fn ec2_without_token_support_falls_back_to_imdsv1_visibly() {
    let input = fixtures().join("ec2/ec2-default-ipv4-only-nic/input");
    let server = Server::start(&input, Mode::Ec2NoToken, "127.0.0.1:0", 0, Duration::ZERO);
    let state = TempDir::new("md-state");
    let r = context("ec2", &server.url(), "10", "", state.path());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.ctx["instance_id"],
        read_trim(&input.join("latest/meta-data/instance-id")).as_str()
    );
    let fb = r.ctx["fallbacks"].as_array().unwrap();
    assert!(fb.iter().any(|f| f["kind"] == "imdsv1"), "{fb:?}");
    assert!(r.ctx["warnings"].to_string().contains("no IMDSv2"));
    record(
        "10b-token-405",
        "IMDSv2 token PUT answered 405 (no token API)",
        "IMDSv1, recorded in `fallbacks` and `warnings`, exit 0",
        &format!(
            "exit 0, instance id right, fallbacks {}",
            serde_json::to_string(fb).unwrap()
        ),
        r.took,
    );
}

#[test]
fn ec2_token_is_required_by_the_server() {
    // Plain server + a 401 for tokenless GETs is what Mode::Ec2Token does; a client that
    // skipped the PUT would fail here. Check the server enforces it, so the test above means
    // something.
    let input = fixtures().join("ec2/ec2-default-ipv4-only-nic/input");
    let server = Server::start(&input, Mode::Ec2Token, "127.0.0.1:0", 0, Duration::ZERO);
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
}

#[test]
fn openstack_metadata_service() {
    let case = fixtures().join("openstack/cloudinit-metadata-service");
    let server = Server::start(
        &case.join("input"),
        Mode::Plain,
        "127.0.0.1:0",
        0,
        Duration::ZERO,
    );
    let state = TempDir::new("md-state");
    let r = context("openstack", &server.url(), "10", "", state.path());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(case.join("expected/assertions.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(r.ctx["instance_id"], want["metadata.uuid"]);
    assert_eq!(r.ctx["hostname"], want["metadata.hostname"]);
    assert_eq!(r.ctx["platform"], "openstack");
    assert_eq!(
        r.ctx["files"].as_array().map(Vec::len),
        want["files_count"].as_u64().map(|n| n as usize)
    );
    let ud = r.ctx["user_data"]["path"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(ud).unwrap(),
        want["userdata"].as_str().unwrap()
    );
    assert!(r.ctx["vendor_data2"].is_object());
    assert!(
        server.requests().iter().any(|q| q == "GET /openstack/"),
        "version listing read"
    );
}

#[test]
fn gce_fixtures_and_header() {
    for entry in std::fs::read_dir(fixtures().join("gce")).unwrap().flatten() {
        let case = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let server = Server::start(
            &case.join("input"),
            Mode::Gce,
            "127.0.0.1:0",
            0,
            Duration::ZERO,
        );
        let state = TempDir::new("md-state");
        let r = context("gce", &server.url(), "10", "", state.path());
        if case.join("expected/outcome.json").exists() {
            assert_eq!(r.code, Some(1), "case {name}");
            assert_eq!(
                r.stderr.trim().lines().count(),
                1,
                "case {name}: {}",
                r.stderr
            );
            assert!(r.stderr.contains("hostname"), "case {name}: {}", r.stderr);
            continue;
        }
        assert_eq!(r.code, Some(0), "case {name}: {}", r.stderr);
        let Ok(text) = std::fs::read_to_string(case.join("expected/assertions.json")) else {
            continue;
        };
        let want: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(r.ctx["instance_id"], want["instance_id"], "case {name}");
        let host = r.ctx["hostname"].as_str().unwrap();
        assert_eq!(
            host.split('.').next(),
            want["hostname_short"].as_str(),
            "case {name}"
        );
        if let Some(raw) = want["userdata_raw"].as_str() {
            let path = r.ctx["user_data"]["path"].as_str().unwrap();
            assert_eq!(std::fs::read_to_string(path).unwrap(), raw, "case {name}");
        }
        if let Some(keys) = want["public_ssh_keys"].as_array() {
            assert_eq!(
                r.ctx["ssh_keys"].as_array().unwrap().len(),
                keys.len(),
                "case {name}"
            );
        }
        if let Some(az) = want["availability_zone"].as_str() {
            assert_eq!(r.ctx["extra"]["availability_zone"], az, "case {name}");
        }
    }
    // A server that does not answer with Metadata-Flavor: Google is not GCE's.
    let input = fixtures().join("gce/gce-userdata-plain/input");
    let server = Server::start(&input, Mode::Plain, "127.0.0.1:0", 0, Duration::ZERO);
    let state = TempDir::new("md-state");
    let r = context("gce", &server.url(), "3", "", state.path());
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("Metadata-Flavor"), "{}", r.stderr);
}

#[test]
fn nocloud_net_from_the_command_line() {
    let input = fixtures().join("nocloud/afterburn-kubevirt-nocloud-v1/input");
    let server = Server::start(&input, Mode::Plain, "127.0.0.1:0", 0, Duration::ZERO);
    let state = TempDir::new("md-state");
    let cmdline = format!("ds=nocloud-net;s={}", server.url());
    let r = context("nocloud", "", "10", &cmdline, state.path());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.ctx["instance_id"], "5d307ca9-b3ef-428c-8861-06e72d69f223");
    assert_eq!(r.ctx["hostname"], "test-nocloud-v1.foo.cloud");
    assert!(!r.ctx["network"]["links"].as_array().unwrap().is_empty());
    // --metadata-url works too.
    let state = TempDir::new("md-state");
    let r = context("nocloud", &server.url(), "10", "", state.path());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn slow_server_then_answering() {
    // The first two connections wait 1.5 s each: well inside the deadline, so they succeed.
    let input = fixtures().join("ec2/ec2-default-ipv4-only-nic/input");
    let server = Server::start(
        &input,
        Mode::Ec2Token,
        "127.0.0.1:0",
        2,
        Duration::from_millis(1500),
    );
    let state = TempDir::new("md-state");
    let r = context("ec2", &server.url(), "15", "", state.path());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.took >= Duration::from_millis(1500));
}

#[test]
fn deadline_holds_against_a_silent_server() {
    // A server that accepts and never answers: the run must end at the deadline, one line.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let _hold = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for s in listener.incoming().flatten() {
            conns.push(s);
        }
    });
    for platform in ["ec2", "openstack", "gce", "nocloud"] {
        let state = TempDir::new("md-state");
        let r = context(platform, &url, "2", "", state.path());
        assert_eq!(r.code, Some(1), "case {platform}");
        assert!(
            r.took < Duration::from_millis(3500),
            "case {platform}: took {:?}",
            r.took
        );
        assert_eq!(
            r.stderr.trim().lines().count(),
            1,
            "case {platform}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("timed out"),
            "case {platform}: {}",
            r.stderr
        );
        if platform == "ec2" {
            record(
                "02-silent",
                "no answer: accepts, never replies (EC2, deadline 2 s)",
                "ends at the deadline, exit 1, one line",
                r.stderr.trim(),
                r.took,
            );
        }
    }
}

#[test]
fn fault_connection_refused() {
    // Nothing listening: refused connections are retried (backoff 100 ms .. 1 s) until the
    // deadline, then one line.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for platform in ["ec2", "openstack", "gce", "nocloud"] {
        let state = TempDir::new("md-state");
        let r = context(platform, &format!("http://{free}/"), "2", "", state.path());
        let line = assert_failed_once(platform, &r, 2, "refused");
        assert!(
            r.took >= Duration::from_millis(1500),
            "case {platform}: retried until the deadline, not given up at once: {:?}",
            r.took
        );
        if platform == "ec2" {
            record(
                "01-refused",
                "connection refused (EC2, deadline 2 s)",
                "retries until the deadline, exit 1, one line",
                &line,
                r.took,
            );
        }
    }
}

#[test]
fn fault_a_byte_per_second() {
    // Each read gets a byte within its timeout; the request's own limit (the deadline) ends it.
    let (input, _) = openstack_case();
    let server = Server::start_faulty(
        &input,
        Mode::Plain,
        Faults::new(&[("meta_data.json", Fault::Drip(Duration::from_secs(1)))]),
    );
    let state = TempDir::new("md-state");
    let r = context("openstack", &server.url(), "3", "", state.path());
    let line = assert_failed_once("drip", &r, 3, "timed out");
    assert!(line.contains("meta_data.json"), "names the URL: {line}");
    record(
        "03-drip",
        "a byte per second on meta_data.json (OpenStack, deadline 3 s)",
        "ends at the deadline, exit 1, one line naming the URL",
        &line,
        r.took,
    );
}

#[test]
fn fault_500_then_200() {
    // Two 500s on the instance id, then the file: retried inside the deadline, all good.
    let input = fixtures().join("ec2/ec2-default-ipv4-only-nic/input");
    let server = Server::start_faulty(
        &input,
        Mode::Ec2Token,
        Faults::new(&[("meta-data/instance-id", Fault::StatusFirst(500, 2))]),
    );
    let state = TempDir::new("md-state");
    let r = context("ec2", &server.url(), "5", "", state.path());
    assert_ok_quietly("500", &r, 5);
    assert_eq!(
        r.ctx["instance_id"],
        read_trim(&input.join("latest/meta-data/instance-id")).as_str()
    );
    let tries = server
        .requests()
        .iter()
        .filter(|q| q.ends_with("meta-data/instance-id"))
        .count();
    assert_eq!(tries, 3, "two 500s and the answer");
    assert!(
        r.took >= Duration::from_millis(300),
        "backoff 100 + 200 ms: {:?}",
        r.took
    );
    record(
        "04-500",
        "500, 500, then 200 on `instance-id` (EC2, deadline 5 s)",
        "retried with backoff, exit 0, context right, nothing logged",
        &format!(
            "exit 0 after {tries} tries, instance id {}, no errors",
            r.ctx["instance_id"]
        ),
        r.took,
    );
}

#[test]
fn fault_404_on_optional_paths() {
    // OpenStack's optional documents all 404: absent, not errors; meta_data.json is enough.
    let (input, want) = openstack_case();
    let server = Server::start_faulty(
        &input,
        Mode::Plain,
        Faults::new(&[
            ("user_data", Fault::Status(404)),
            ("vendor_data.json", Fault::Status(404)),
            ("vendor_data2.json", Fault::Status(404)),
            ("network_data.json", Fault::Status(404)),
        ]),
    );
    let state = TempDir::new("md-state");
    let r = context("openstack", &server.url(), "5", "", state.path());
    assert_ok_quietly("404", &r, 5);
    assert_eq!(r.ctx["instance_id"], want["metadata.uuid"]);
    assert_eq!(r.ctx["hostname"], want["metadata.hostname"]);
    for absent in ["user_data", "vendor_data", "vendor_data2"] {
        assert!(r.ctx.get(absent).is_none(), "{absent}: {}", r.ctx[absent]);
    }
    record(
        "05-404",
        "404 on `user_data`, `vendor_data*.json`, `network_data.json` (OpenStack)",
        "absent, not errors; exit 0, instance id and hostname right",
        &format!(
            "exit 0, instance id {}, hostname {}, no user/vendor data, no errors",
            r.ctx["instance_id"], r.ctx["hostname"]
        ),
        r.took,
    );
}

/// The largest resident set of any child this test process has waited for (KiB).
fn children_peak_rss_kib() -> i64 {
    // SAFETY: rusage is plain integers (all-zero is valid); getrusage only writes the
    // struct it is given.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru.ru_maxrss
    }
}

#[test]
fn fault_huge_body() {
    // 100 MiB where a document is expected, in the three framings, and on the user data
    // (16 MiB cap): cut at the cap, one line, memory bounded, the server never sends it all.
    const HUNDRED_MIB: u64 = 100 << 20;
    let (input, _) = openstack_case();
    let cases = [
        ("meta_data.json", Framing::ContentLength, "1048576"),
        ("meta_data.json", Framing::ToEof, "1048576"),
        ("meta_data.json", Framing::Chunked, "1048576"),
        ("latest/user_data", Framing::Chunked, "16777216"),
        ("latest/user_data", Framing::ToEof, "16777216"),
    ];
    let mut rows = Vec::new();
    let mut longest = Duration::ZERO;
    for (path, framing, cap) in cases {
        let case = format!("{path} {framing:?}");
        let faults = Faults::new(&[(path, Fault::Huge(HUNDRED_MIB, framing))]);
        let server = Server::start_faulty(&input, Mode::Plain, faults);
        let state = TempDir::new("md-state");
        let r = context("openstack", &server.url(), "10", "", state.path());
        let line = assert_failed_once(&case, &r, 10, cap);
        assert!(line.contains(path), "case {case}: names the URL: {line}");
        let sent = server
            .faults
            .sent
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            sent < HUNDRED_MIB / 2,
            "case {case}: the server got {sent} bytes out: not cut at the cap"
        );
        // Never kept in full: a user-data cap of 16 MiB may hold two copies at worst.
        let peak = children_peak_rss_kib();
        assert!(peak < 48 * 1024, "case {case}: peak RSS {peak} KiB");
        longest = longest.max(r.took);
        rows.push(format!(
            "{path} {framing:?}: {} ms, {} KiB sent",
            r.took.as_millis(),
            sent / 1024
        ));
        if path == "latest/user_data" && framing == Framing::Chunked {
            rows.push(format!("line: {line}"));
        }
    }
    rows.push(format!(
        "peak RSS of the runs {} KiB",
        children_peak_rss_kib()
    ));
    record(
        "06-huge",
        "100 MiB body on meta_data.json (Content-Length, to EOF, chunked) and on user_data (chunked, to EOF)",
        "refused at the cap (1 MiB documents, 16 MiB user data), exit 1, one line, memory bounded",
        &rows.join("; "),
        longest,
    );
}

#[test]
fn fault_redirect_to_another_host() {
    // A 302 to 127.0.0.2 (a server there would answer): refused, never asked.
    let (input, _) = openstack_case();
    let other = Server::start(&input, Mode::Plain, "127.0.0.2:0", 0, Duration::ZERO);
    let to = format!("{}openstack/latest/meta_data.json", other.url());
    let server = Server::start_faulty(
        &input,
        Mode::Plain,
        Faults::new(&[("meta_data.json", Fault::Redirect(to))]),
    );
    let state = TempDir::new("md-state");
    let r = context("openstack", &server.url(), "5", "", state.path());
    let line = assert_failed_once("redirect", &r, 5, "redirect refused");
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    record(
        "07-redirect",
        "302 from meta_data.json to another host (127.0.0.2)",
        "refused without a request there, exit 1, one line",
        &line,
        r.took,
    );
}

#[test]
fn fault_truncated_json() {
    let (input, _) = openstack_case();
    let server = Server::start_faulty(
        &input,
        Mode::Plain,
        Faults::new(&[("meta_data.json", Fault::Truncate(40))]),
    );
    let state = TempDir::new("md-state");
    let r = context("openstack", &server.url(), "5", "", state.path());
    let line = assert_failed_once("truncated", &r, 5, "meta_data.json");
    // GCE's one document, cut short.
    let gce = fixtures().join("gce/gce-userdata-plain/input");
    let server = Server::start_faulty(
        &gce,
        Mode::Gce,
        Faults::new(&[("computeMetadata/v1/", Fault::Truncate(30))]),
    );
    let state = TempDir::new("md-state");
    let g = context("gce", &server.url(), "5", "", state.path());
    let gline = assert_failed_once("gce truncated", &g, 5, "computeMetadata");
    record(
        "08-truncated",
        "meta_data.json cut at 40 bytes (OpenStack); GCE's document cut at 30 bytes",
        "exit 1, one line naming the document and the JSON error",
        &format!("{line}; GCE: {gline}"),
        r.took.max(g.took),
    );
}

#[test]
fn fault_wrong_content_type() {
    // Documents are parsed as what they are; Content-Type is not trusted either way.
    let (input, want) = openstack_case();
    let server = Server::start_faulty(
        &input,
        Mode::Plain,
        Faults::new(&[
            ("meta_data.json", Fault::ContentType("text/html")),
            ("network_data.json", Fault::ContentType("image/png")),
            ("user_data", Fault::ContentType("application/json")),
        ]),
    );
    let state = TempDir::new("md-state");
    let r = context("openstack", &server.url(), "5", "", state.path());
    assert_ok_quietly("content-type", &r, 5);
    assert_eq!(r.ctx["instance_id"], want["metadata.uuid"]);
    let ud = r.ctx["user_data"]["path"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(ud).unwrap(),
        want["userdata"].as_str().unwrap()
    );
    record(
        "09-content-type",
        "`text/html` on meta_data.json, `image/png` on network_data.json, `application/json` on user_data",
        "ignored: documents parsed as what they are; exit 0, context right",
        &format!(
            "exit 0, instance id {}, user data byte-identical, no errors",
            r.ctx["instance_id"]
        ),
        r.took,
    );
}

#[test]
fn fault_imdsv2_token_refused() {
    // 401/403 on the token PUT: the fetch fails with that status (no silent IMDSv1); 405 is
    // the IMDSv1 fallback (ec2_without_token_support_falls_back_to_imdsv1_visibly).
    let input = fixtures().join("ec2/ec2-default-ipv4-only-nic/input");
    let mut seen = Vec::new();
    let mut took = Duration::ZERO;
    for status in [403u16, 401] {
        let server = Server::start_faulty(
            &input,
            Mode::Ec2Token,
            Faults::new(&[("latest/api/token", Fault::Status(status))]),
        );
        let state = TempDir::new("md-state");
        let r = context("ec2", &server.url(), "5", "", state.path());
        let line = assert_failed_once(&format!("token {status}"), &r, 5, &status.to_string());
        assert!(
            !server.requests().iter().any(|q| q.starts_with("GET")),
            "no tokenless GET after a {status}: {:?}",
            server.requests()
        );
        took = took.max(r.took);
        seen.push(line);
    }
    record(
        "10a-token-403",
        "IMDSv2 token PUT answered 403, then 401",
        "the fetch fails with that status (no IMDSv1 try), exit 1, one line",
        &seen.join("; "),
        took,
    );
}

#[test]
fn fault_gce_without_metadata_flavor() {
    let input = fixtures().join("gce/gce-userdata-plain/input");
    let server = Server::start_faulty(&input, Mode::Gce, Faults::new(&[("", Fault::NoFlavor)]));
    let state = TempDir::new("md-state");
    let r = context("gce", &server.url(), "3", "", state.path());
    let line = assert_failed_once("no flavor", &r, 3, "Metadata-Flavor");
    record(
        "11-gce-flavor",
        "GCE answers without `Metadata-Flavor: Google`",
        "not GCE's: exit 1, one line",
        &line,
        r.took,
    );
}

/// Issue 16 item 22: GCE answering 500 is reported as the 500 it is (after retrying until the
/// deadline), not as "response lacks Metadata-Flavor: Google".
#[test]
fn fault_gce_500_is_reported_as_its_status() {
    let input = fixtures().join("gce/gce-userdata-plain/input");
    let server = Server::start_faulty(
        &input,
        Mode::Gce,
        Faults::new(&[("computeMetadata/v1/", Fault::Status(500))]),
    );
    let state = TempDir::new("md-state");
    let r = context("gce", &server.url(), "2", "", state.path());
    let line = assert_failed_once("gce 500", &r, 2, "HTTP status 500");
    assert!(!line.contains("Metadata-Flavor"), "{line}");
    record(
        "12-gce-500",
        "GCE answers 500 (without `Metadata-Flavor`), deadline 2 s",
        "retried until the deadline, then exit 1, one line naming the status",
        &line,
        r.took,
    );
}

/// Issue 16 item 9: a `Location` with a bare LF (`/x\nX-Injected: 1`) once went raw into the
/// next request line (`GET /x\nX-Injected: 1 HTTP/1.1`); two `Content-Length` fields that
/// differ were read by the first. Both are refused: one line, no request to the injected path.
#[test]
fn fault_header_injection_and_two_lengths() {
    let (input, _) = openstack_case();
    let server = Server::start_faulty(
        &input,
        Mode::Plain,
        Faults::new(&[(
            "meta_data.json",
            Fault::Redirect("/openstack/latest/injected\nX-Injected: 1".into()),
        )]),
    );
    let state = TempDir::new("md-state");
    let r = context("openstack", &server.url(), "5", "", state.path());
    let line = assert_failed_once("bare LF in Location", &r, 5, "control character");
    assert!(
        !server.requests().iter().any(|q| q.contains("injected")),
        "{:?}",
        server.requests()
    );
    let server = Server::start_faulty(
        &input,
        Mode::Plain,
        Faults::new(&[("meta_data.json", Fault::Header("Content-Length", "5"))]),
    );
    let state = TempDir::new("md-state");
    let r = context("openstack", &server.url(), "5", "", state.path());
    let line2 = assert_failed_once("two lengths", &r, 5, "Content-Length given twice");
    record(
        "13-header-injection",
        "302 whose `Location` holds a bare LF and a header line; `Content-Length` twice with different values (OpenStack)",
        "refused: exit 1, one line each, no request to the injected path",
        &format!("{line}; {line2}"),
        r.took,
    );
}

#[test]
fn openstack_service_without_openstack_tree_reads_the_ec2_tree() {
    // No /openstack/ at all: the EC2-style tree, recorded as a fallback. A service with
    // neither tree is an error, not an empty context.
    let input = fixtures().join("ec2/ec2-default-ipv4-only-nic/input");
    let server = Server::start(&input, Mode::Plain, "127.0.0.1:0", 0, Duration::ZERO);
    let state = TempDir::new("md-state");
    let r = context("openstack", &server.url(), "5", "", state.path());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.ctx["instance_id"],
        read_trim(&input.join("latest/meta-data/instance-id")).as_str()
    );
    assert!(
        r.ctx["fallbacks"]
            .to_string()
            .contains("openstack-ec2-tree"),
        "{}",
        r.ctx["fallbacks"]
    );
    let empty = TempDir::new("md-empty");
    let server = Server::start(empty.path(), Mode::Plain, "127.0.0.1:0", 0, Duration::ZERO);
    let state = TempDir::new("md-state");
    let r = context("openstack", &server.url(), "5", "", state.path());
    assert_failed_once("empty service", &r, 5, "not a config drive");
}
