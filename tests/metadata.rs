//! Metadata services over HTTP, without root: the binary (`preroot context --platform P
//! --metadata-url URL`) against a test-owned server on 127.0.0.1 serving the fixture trees
//! (`common/metadata.rs`). Covers EC2 with and without IMDSv2 tokens, the OpenStack service,
//! GCE (header both ways, required keys), NoCloud-net, a slow server, 404 on optional paths
//! and the deadline.

mod common;

use common::metadata::{Mode, Server};
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
    }
    // Nothing listening at all: refused connections are retried until the deadline.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let state = TempDir::new("md-state");
    let r = context("ec2", &format!("http://{free}/"), "1", "", state.path());
    assert_eq!(r.code, Some(1));
    assert!(r.took < Duration::from_millis(2500), "took {:?}", r.took);
}
