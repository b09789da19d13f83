//! The metadata services of issue 20 over HTTP on 127.0.0.1 (no root needed, except for
//! Scaleway's privileged source port): `preroot context --platform P --metadata-url URL
//! [--endpoint password=URL]` against a test-owned server serving the platform's fixture
//! (`common/cloud.rs`). Every endpoint a platform uses is overridden, so nothing is sent to
//! a platform address; the namespace worlds (`clouds_netns.rs`) test the reach rules.
//!
//! Covers, per platform: the fixture read into the context (instance id, hostname, keys,
//! network, user data as a 0600 file, never on stdout), the special rules that need only one
//! endpoint (Oracle's header and its recorded v1 fallback, Alibaba's own token headers and
//! its recorded token-less fallback, the password servers of CloudStack and Exoscale and
//! their answers, Scaleway's user data from a source port below 1024), and the failure
//! modes: the main document 404, 5xx until the deadline, a slow answer inside it. Cases run
//! side by side (each is a child process waiting on a server), so the file takes about the
//! longest case.

#[path = "common/cloud.rs"]
mod cloud;
mod common;

use cloud::{faulty, Fault, Handler, Server};
use common::{fake_machine, TempDir};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Run {
    code: Option<i32>,
    ctx: Value,
    stdout: String,
    stderr: String,
    took: Duration,
    _state: TempDir,
}

/// `preroot context --platform P --metadata-url URL --timeout T` on a fake machine with
/// `nics`, plus `extra` arguments.
fn context(
    platform: &str,
    url: &str,
    timeout: &str,
    nics: &[(&str, &str)],
    extra: &[String],
) -> Run {
    let machine = TempDir::new("cl-machine");
    fake_machine(machine.path(), "", nics);
    let state = TempDir::new("cl-state");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args([
            "context",
            "--platform",
            platform,
            "--metadata-url",
            url,
            "--timeout",
            timeout,
        ])
        .args(["--root", machine.path().to_str().unwrap()])
        .args(["--state-dir", state.path().to_str().unwrap()])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run preroot");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        code: out.status.code(),
        ctx: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
        _state: state,
    }
}

/// How long past its deadline a run may take (process start, the last try's close).
const MARGIN: Duration = Duration::from_millis(1500);

/// The file a secret of the context points at: its bytes, checked to be mode 0600.
fn secret(case: &str, r: &Run, field: &str) -> Option<Vec<u8>> {
    let path = r.ctx[field]["path"].as_str()?;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "case {case}: {field} mode");
    Some(std::fs::read(path).unwrap())
}

/// A platform's server, and the `--endpoint` arguments of its other endpoints (each its
/// own server, kept alive with it).
fn serve(
    platform: &str,
    handler: Handler,
    password: Option<&str>,
) -> (Server, Vec<String>, Option<Server>) {
    let server = Server::local(handler);
    let (path, name) = match platform {
        "exoscale" => ("/1.0/", "exoscale"),
        _ => ("/", "cloudstack"),
    };
    match password {
        Some(suffix) => {
            let pw = Server::local(cloud::password_server(name, suffix, path));
            let arg = format!("password=http://{}{path}", pw.addr);
            (server, vec!["--endpoint".into(), arg], Some(pw))
        }
        None => (server, Vec::new(), None),
    }
}

/// What a fixture must give.
struct Want {
    platform: &'static str,
    nics: &'static [(&'static str, &'static str)],
    id: &'static str,
    hostname: &'static str,
    keys: usize,
    user_data: Option<&'static str>,
    /// (link name, number of addressing entries) of the described links.
    links: &'static [(&'static str, usize)],
    password: Option<&'static str>,
}

const WANTS: &[Want] = &[
    Want {
        platform: "digitalocean",
        nics: &[("eth0", "04:01:57:d1:9e:01"), ("eth1", "04:01:57:d1:9e:02")],
        id: "22532410",
        hostname: "utl-96268",
        keys: 1,
        user_data: Some("userdata goes here"),
        links: &[("eth0", 3), ("eth1", 1)],
        password: None,
    },
    Want {
        platform: "hetzner",
        nics: &[
            ("eth0", "00:00:00:00:00:00"),
            ("enp7s0", "86:00:00:98:40:6e"),
        ],
        id: "42",
        hostname: "my-server",
        keys: 1,
        user_data: Some("#cloud-config\nhostname: from-userdata\n"),
        links: &[("eth0", 2), ("enp7s0", 1)],
        password: None,
    },
    Want {
        platform: "oracle",
        nics: &[("ens3", "02:00:17:05:d1:db")],
        id: "ocid1.instance.oc1.phx.anyhqljtniwq6syc3nex55sep5w34qbwmw6TRUNCATED",
        hostname: "instance-20200320-1400",
        keys: 1,
        user_data: Some("#!/bin/sh\ntouch /tmp/foo"),
        links: &[("ens3", 1)],
        password: None,
    },
    Want {
        platform: "vultr",
        nics: &[
            ("enp1s0", "56:00:03:1b:4e:ca"),
            ("enp6s0", "5a:00:03:1b:4e:ca"),
        ],
        id: "29bea708-2e6e-480a-90ad-0e6b5d5ad62f",
        hostname: "cloudinit_2",
        keys: 1,
        user_data: None,
        links: &[("enp1s0", 3), ("enp6s0", 1)],
        password: None,
    },
    Want {
        platform: "scaleway",
        nics: &[("ens2", "de:00:00:00:00:01")],
        id: "11111111-1111-1111-1111-111111111111",
        hostname: "frontend-0",
        keys: 2,
        user_data: Some("#cloud-config\nhostname: from-userdata\n"),
        links: &[("ens2", 2)],
        password: None,
    },
    Want {
        platform: "alibaba",
        nics: &[("eth0", "00:16:3e:14:59:58")],
        id: "i-bp15ojxppkmsnyjxxxxx",
        hostname: "aliyun-test-vm-00",
        keys: 1,
        user_data: Some("#cloud-config\nhostname: from-userdata\n"),
        links: &[("eth0", 1)],
        password: None,
    },
    Want {
        platform: "cloudstack",
        nics: &[("eth0", "02:00:0a:01:01:17")],
        id: "fd7e1d72-b0e1-4b0a-9a2f-2e0f5d2a1c11",
        hostname: "cs-test-vm",
        keys: 1,
        user_data: Some("#cloud-config\nhostname: from-userdata\n"),
        links: &[],
        password: Some("SekritSquirrel"),
    },
    Want {
        platform: "exoscale",
        nics: &[("eth0", "06:00:c6:33:64:07")],
        id: "5c5a0f5e-9f1b-4b0e-8b5e-8c7d2c3a1f00",
        hostname: "exo-test-vm",
        keys: 1,
        user_data: Some("#cloud-config\nhostname: from-userdata\n"),
        links: &[],
        password: Some("p@ssw0rd"),
    },
];

fn check_fixture(w: &Want) {
    let case = w.platform;
    if case == "scaleway" && !common::is_root() {
        common::missing(
            "each_platform_from_its_fixture (scaleway)",
            "root (a source port below 1024)",
        );
        return;
    }
    let (server, extra, pw) = serve(case, cloud::platform(case), w.password.map(|_| ""));
    let r = context(case, &server.url(), "10", w.nics, &extra);
    assert_eq!(r.code, Some(0), "case {case}: {}", r.stderr);
    assert_eq!(r.stderr.trim(), "", "case {case}: stderr");
    let ctx = &r.ctx;
    assert_eq!(ctx["platform"], case, "case {case}");
    assert_eq!(ctx["instance_id"], w.id, "case {case}");
    assert_eq!(ctx["hostname"], w.hostname, "case {case}");
    assert_eq!(
        ctx["ssh_keys"].as_array().unwrap().len(),
        w.keys,
        "case {case}"
    );
    assert_eq!(ctx["errors"], Value::Array(Vec::new()), "case {case}");
    let ud = secret(case, &r, "user_data");
    assert_eq!(
        ud.as_deref(),
        w.user_data.map(str::as_bytes),
        "case {case}: user data"
    );
    let described: Vec<(String, usize)> = ctx["network"]["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["origin"] == "described" && l["name"].is_string())
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["addressing"].as_array().unwrap().len(),
            )
        })
        .collect();
    let want: Vec<(String, usize)> = w.links.iter().map(|(n, a)| (n.to_string(), *a)).collect();
    assert_eq!(described, want, "case {case}: links");
    let password = secret(case, &r, "password");
    assert_eq!(
        password.as_deref(),
        w.password.map(str::as_bytes),
        "case {case}: password"
    );
    for s in [w.password, w.user_data.filter(|u| u.len() > 16)]
        .into_iter()
        .flatten()
    {
        assert!(
            !r.stdout.contains(s) && !r.stderr.contains(s),
            "case {case}: a secret printed"
        );
    }
    if let Some(pw) = pw {
        let path = if case == "exoscale" { "/1.0/" } else { "/" };
        assert_eq!(
            pw.requests(),
            vec![format!("GET {path}"); 2],
            "case {case}: ask, then acknowledge"
        );
        let log = pw.full_log();
        assert_eq!(
            log[0].header("domu_request"),
            Some("send_my_password"),
            "case {case}"
        );
        assert_eq!(
            log[1].header("domu_request"),
            Some("saved_password"),
            "case {case}"
        );
    }
    eprintln!("{case}: {:?}, requests {:?}", r.took, server.requests());
}

#[test]
fn each_platform_from_its_fixture() {
    std::thread::scope(|s| {
        for w in WANTS {
            s.spawn(move || check_fixture(w));
        }
    });
}

#[test]
fn oracle_sends_its_header_and_records_v1() {
    let nics = &[("ens3", "02:00:17:05:d1:db")];
    let server = Server::local(cloud::platform("oracle"));
    let r = context("oracle", &server.url(), "10", nics, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.ctx["fallbacks"], Value::Array(Vec::new()));
    assert_eq!(
        server.requests(),
        ["GET /opc/v2/instance/", "GET /opc/v2/vnics/"]
    );
    assert!(server
        .full_log()
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer Oracle")));

    let server = Server::local(cloud::platform("oracle-v1"));
    let r = context("oracle", &server.url(), "10", nics, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.ctx["fallbacks"][0]["kind"], "oracle-imds-v1");
    assert!(r.ctx["warnings"]
        .to_string()
        .contains("reading IMDS v1 without the header"));
    assert_eq!(
        server.requests(),
        [
            "GET /opc/v2/instance/",
            "GET /opc/v1/instance/",
            "GET /opc/v1/vnics/"
        ]
    );
    assert_eq!(
        server.full_log()[1].header("authorization"),
        None,
        "v1 without the header"
    );
}

#[test]
fn alibaba_token_headers_and_normal_mode() {
    let nics = &[("eth0", "00:16:3e:14:59:58")];
    let server = Server::local(cloud::platform("alibaba"));
    let r = context("alibaba", &server.url(), "10", nics, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let log = server.full_log();
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str()),
        ("PUT", "/latest/api/token")
    );
    assert_eq!(
        log[0].header("x-aliyun-ecs-metadata-token-ttl-seconds"),
        Some("21600")
    );
    assert_eq!(
        log[0].header("x-aws-ec2-metadata-token-ttl-seconds"),
        None,
        "not EC2's names"
    );
    let token = cloud::alibaba_token();
    assert!(log[1..]
        .iter()
        .all(|r| r.header("x-aliyun-ecs-metadata-token") == Some(token.as_str())));
    assert_eq!(r.ctx["fallbacks"], Value::Array(Vec::new()));

    let server = Server::local(cloud::platform("alibaba-notoken"));
    let r = context("alibaba", &server.url(), "10", nics, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.ctx["instance_id"], "i-bp15ojxppkmsnyjxxxxx");
    assert_eq!(r.ctx["fallbacks"][0]["kind"], "aliyun-normal-mode");
    assert!(r.ctx["warnings"]
        .to_string()
        .contains("no security hardening mode"));
}

#[test]
fn scaleway_user_data_from_a_privileged_port() {
    let server = Server::local(cloud::platform("scaleway"));
    let r = context(
        "scaleway",
        &server.url(),
        "10",
        &[("ens2", "de:00:00:00:00:01")],
        &[],
    );
    let log = server.full_log();
    let ud: Vec<&cloud::Request> = log
        .iter()
        .filter(|q| q.path.starts_with("/user_data"))
        .collect();
    assert_eq!(ud.len(), 1, "{:?}", server.requests());
    if common::is_root() {
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(
            ud[0].peer.port() < 1024,
            "source port {}",
            ud[0].peer.port()
        );
        let conf = log.iter().find(|q| q.path == "/conf").unwrap();
        assert!(conf.peer.port() >= 1024, "the document from any port");
    } else {
        // Without root the bind is refused at once: one line, not a wait for the deadline.
        assert_eq!(r.code, Some(1));
        assert!(
            r.stderr.contains("cannot bind a source port") && r.took < Duration::from_secs(3),
            "{}",
            r.stderr
        );
    }
}

#[test]
#[allow(clippy::type_complexity)]
fn password_server_answers() {
    // (case, platform, fixture suffix or None for no server at all, password, warning)
    let cases: &[(&str, &str, Option<&str>, Option<&str>, Option<&str>)] = &[
        ("taken before", "cloudstack", Some(".saved"), None, None),
        ("none set", "cloudstack", Some(".empty"), None, None),
        (
            "refused",
            "cloudstack",
            Some(".bad_request"),
            None,
            Some("bad_request"),
        ),
        (
            "no password server",
            "cloudstack",
            None,
            None,
            Some("no password"),
        ),
        (
            "exoscale taken before",
            "exoscale",
            Some(".saved"),
            None,
            None,
        ),
    ];
    std::thread::scope(|s| {
        for &(case, platform, suffix, password, warning) in cases {
            s.spawn(move || {
                let (server, mut extra, pw) = serve(platform, cloud::platform(platform), suffix);
                if suffix.is_none() {
                    // A port with nothing behind it.
                    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    extra = vec![
                        "--endpoint".into(),
                        format!("password=http://{}/", l.local_addr().unwrap()),
                    ];
                }
                let r = context(platform, &server.url(), "10", &[], &extra);
                assert_eq!(r.code, Some(0), "case {case}: {}", r.stderr);
                assert_eq!(
                    secret(case, &r, "password").as_deref(),
                    password.map(str::as_bytes),
                    "case {case}"
                );
                let warnings = r.ctx["warnings"].to_string();
                match warning {
                    Some(w) => assert!(warnings.contains(w), "case {case}: {warnings}"),
                    None => assert!(r.ctx.get("warnings").is_none(), "case {case}: {warnings}"),
                }
                if let Some(pw) = pw {
                    assert_eq!(
                        pw.requests().len(),
                        1,
                        "case {case}: nothing to acknowledge"
                    );
                }
                // The password server has a budget of its own: a dead one costs seconds,
                // not the deadline.
                assert!(
                    r.took < Duration::from_secs(5),
                    "case {case}: took {:?}",
                    r.took
                );
            });
        }
    });
}

/// What a failure mode must come to.
#[derive(Clone, Copy)]
enum Outcome {
    /// Exit 0, the fixture's instance id.
    Read,
    /// Exit 0, a warning containing this.
    Warned(&'static str),
    /// Exit 1, exactly one line on stderr, containing this.
    Failed(&'static str),
}
use Outcome::*;

/// A failure mode of one platform: the fault, the deadline, and what must come out.
struct FaultCase {
    platform: &'static str,
    what: &'static str,
    faults: Vec<(&'static str, Fault)>,
    timeout: u64,
    outcome: Outcome,
}

/// The document whose absence or failure fails each platform.
fn main_document(platform: &str) -> &'static str {
    match platform {
        "digitalocean" => "/metadata/v1.json",
        "hetzner" => "/hetzner/v1/metadata",
        "oracle" => "/opc/v2/instance/",
        "vultr" => "/v1.json",
        "scaleway" => "/conf",
        "alibaba" => "/latest/meta-data/instance-id",
        "cloudstack" => "/latest/meta-data/instance-id",
        "exoscale" => "/1.0/meta-data/instance-id",
        other => panic!("{other}"),
    }
}

fn fault_cases() -> Vec<FaultCase> {
    let mut cases = Vec::new();
    for w in WANTS {
        let p = w.platform;
        let main = main_document(p);
        let not_found = match p {
            // EC2's rule: an IMDS tree without an instance id is read, warned.
            "alibaba" => Warned("meta-data/instance-id"),
            "oracle" => Failed("not found (HTTP 404) in v2 or v1"),
            "cloudstack" | "exoscale" => Failed("s metadata service"),
            _ => Failed("not found (HTTP 404)"),
        };
        let case = |what, faults, timeout, outcome| FaultCase {
            platform: p,
            what,
            faults,
            timeout,
            outcome,
        };
        cases.push(case("404", vec![(main, Fault::Status(404))], 5, not_found));
        cases.push(case(
            "503 throughout",
            vec![(main, Fault::Status(503))],
            2,
            Failed("status 503"),
        ));
        cases.push(case(
            "503 twice, then the answer",
            vec![(main, Fault::StatusFirst(503, 2))],
            5,
            Read,
        ));
        let slow = Fault::Slow(Duration::from_millis(1500), 1);
        cases.push(case(
            "slow (1.5 s) inside the deadline",
            vec![(main, slow)],
            6,
            Read,
        ));
        let slower = Fault::Slow(Duration::from_secs(8), 9);
        cases.push(case(
            "slower (8 s) than the deadline",
            vec![(main, slower)],
            2,
            Failed("timed out"),
        ));
    }
    cases.push(FaultCase {
        platform: "alibaba",
        what: "token refused (403)",
        faults: vec![("/latest/api/token", Fault::Status(403))],
        timeout: 5,
        outcome: Failed("security hardening mode token refused (HTTP 403); normal mode not tried"),
    });
    cases.push(FaultCase {
        platform: "alibaba",
        what: "token API 503 throughout",
        faults: vec![("/latest/api/token", Fault::Status(503))],
        timeout: 2,
        outcome: Failed("(HTTP 503)"),
    });
    // Optional documents: 404 means none, never an error.
    for (p, path) in [
        ("hetzner", "/hetzner/v1/userdata"),
        ("hetzner", "/hetzner/v1/metadata/private-networks"),
        ("oracle", "/opc/v2/vnics/"),
        ("scaleway", "/user_data/cloud-init"),
        ("alibaba", "/latest/user-data"),
        ("cloudstack", "/latest/user-data"),
        ("exoscale", "/1.0/user-data"),
    ] {
        cases.push(FaultCase {
            platform: p,
            what: "optional document 404",
            faults: vec![(path, Fault::Status(404))],
            timeout: 5,
            outcome: Read,
        });
    }
    cases
}

#[test]
fn failure_modes_within_the_deadline() {
    let cases = fault_cases();
    let started = Instant::now();
    std::thread::scope(|s| {
        for c in &cases {
            s.spawn(move || {
                let case = format!("{} {}", c.platform, c.what);
                if c.platform == "scaleway" && !common::is_root() {
                    common::missing(
                        &format!("failure_modes ({case})"),
                        "root (a source port below 1024)",
                    );
                    return;
                }
                let password = matches!(c.platform, "cloudstack" | "exoscale").then_some("");
                let handler = faulty(cloud::platform(c.platform), c.faults.clone());
                let (server, extra, _pw) = serve(c.platform, handler, password);
                let w = WANTS.iter().find(|w| w.platform == c.platform).unwrap();
                let r = context(
                    c.platform,
                    &server.url(),
                    &c.timeout.to_string(),
                    w.nics,
                    &extra,
                );
                assert!(
                    r.took <= Duration::from_secs(c.timeout) + MARGIN,
                    "case {case}: took {:?} with a {} s deadline",
                    r.took,
                    c.timeout
                );
                match c.outcome {
                    Read => {
                        assert_eq!(r.code, Some(0), "case {case}: {}", r.stderr);
                        assert_eq!(r.ctx["instance_id"], w.id, "case {case}");
                    }
                    Warned(needle) => {
                        assert_eq!(r.code, Some(0), "case {case}: {}", r.stderr);
                        let warnings = r.ctx["warnings"].to_string();
                        assert!(warnings.contains(needle), "case {case}: {warnings}");
                    }
                    Failed(needle) => {
                        assert_eq!(r.code, Some(1), "case {case}: {}", r.stderr);
                        let lines: Vec<&str> = r.stderr.trim().lines().collect();
                        assert_eq!(lines.len(), 1, "case {case}: one line: {}", r.stderr);
                        eprintln!("{case}: {:?}: {}", r.took, lines[0]);
                        assert!(
                            lines[0].contains(needle),
                            "case {case}: {needle:?} not in {:?}",
                            lines[0]
                        );
                    }
                }
            });
        }
    });
    eprintln!("{} fault cases in {:?}", cases.len(), started.elapsed());
}
