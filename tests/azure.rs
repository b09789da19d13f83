//! Azure's world, without root: IMDS and the wire server are test-owned servers on 127.0.0.1
//! (`common/azure.rs`), never 169.254.169.254 or 168.63.129.16.
//!
//! - `preroot context --platform azure --metadata-url … --endpoint wireserver=…` on a fake machine
//!   tree: IMDS alone, and with the provisioning medium (a `genisoimage -udf` image as the
//!   tree's `/dev/sr0`), through the IMDS faults (410 while not ready, 5xx, 429, slow, 404,
//!   403, silence, not JSON), each within its deadline, a failure one line on stderr;
//! - `--from azure:IMAGE`: the medium alone;
//! - the ready report's I/O (`providers::azure::report::send`) against the wire server's
//!   faults (5xx, a 410 that moves the incarnation, a partial goal state, slow, 403,
//!   silence): at most one report taken, for the incarnation the wire server has.
//!
//! `tests/apply.rs` runs the report from `preroot apply` (root: it chroots), and
//! `tests/qemu_azure.rs` boots the whole thing.

mod common;

use common::azure::{self, Reply};
use common::{fake_machine, TempDir};
use preroot::deadline::Deadline;
use preroot::http::Url;
use preroot::providers::azure::report;
use preroot::providers::azure::wireserver::{Health, Outcome};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long past its deadline a run may take (process start, the last try's close).
const MARGIN: Duration = Duration::from_millis(1500);

struct Run {
    code: Option<i32>,
    ctx: Value,
    stderr: String,
    took: Duration,
}

fn preroot(args: &[&str]) -> Run {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args(args)
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

/// A fake machine: the guest's NIC, and `medium` (an image file) as `/dev/sr0`.
fn machine(dir: &Path, medium: Option<&Path>) {
    fake_machine(dir, "", &[("eth0", "00:0d:3a:04:75:98")]);
    if let Some(img) = medium {
        let sys = dir.join("sys/class/block/sr0");
        std::fs::create_dir_all(&sys).unwrap();
        std::fs::write(sys.join("size"), "2048\n").unwrap();
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        std::fs::copy(img, dir.join("dev/sr0")).unwrap();
    }
}

fn context(root: &Path, state: &Path, imds: &str, wire: &str, timeout: u64) -> Run {
    let timeout = timeout.to_string();
    preroot(&[
        "context",
        "--platform",
        "azure",
        "--metadata-url",
        imds,
        "--endpoint",
        &format!("wireserver={wire}"),
        "--timeout",
        &timeout,
        "--root",
        root.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

/// Stderr lines that are not warnings.
fn not_warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.starts_with("preroot: warn: "))
        .collect()
}

#[test]
fn imds_faults_within_the_deadline() {
    const WIRE: &str = "http://127.0.0.1:9/";
    let slow = Duration::from_millis(1500);
    struct Case {
        name: &'static str,
        script: Vec<Reply>,
        timeout: u64,
        /// `None`: succeeds; else the error line says one of these (a deadline may end the
        /// retries during an attempt, on a loaded machine, rather than after an answer).
        fails: Option<&'static [&'static str]>,
        gets: usize,
    }
    let cases = vec![
        Case {
            name: "normal",
            script: vec![],
            timeout: 5,
            fails: None,
            gets: 1,
        },
        Case {
            name: "410 twice (not ready yet), then the document",
            script: vec![Reply::Status(410), Reply::Status(410)],
            timeout: 5,
            fails: None,
            gets: 3,
        },
        Case {
            name: "500, 503 and 429 retried",
            script: vec![Reply::Status(500), Reply::Status(503), Reply::Status(429)],
            timeout: 5,
            fails: None,
            gets: 4,
        },
        Case {
            name: "slow answer",
            script: vec![Reply::Slow(slow)],
            timeout: 5,
            fails: None,
            gets: 1,
        },
        Case {
            name: "404",
            script: vec![Reply::Status(404)],
            timeout: 5,
            fails: Some(&["HTTP status 404"]),
            gets: 1,
        },
        Case {
            name: "403 is final",
            script: vec![Reply::Status(403)],
            timeout: 5,
            fails: Some(&["HTTP status 403"]),
            gets: 1,
        },
        Case {
            name: "503 until the deadline",
            script: vec![Reply::Status(503); 200],
            timeout: 3,
            fails: Some(&["HTTP status 503", "timed out"]),
            gets: 0,
        },
        Case {
            name: "silent until the deadline",
            script: vec![Reply::Silent; 20],
            timeout: 2,
            fails: Some(&["timed out"]),
            gets: 0,
        },
        Case {
            name: "not JSON",
            script: vec![Reply::Body(b"<html>".to_vec())],
            timeout: 5,
            fails: Some(&["invalid JSON"]),
            gets: 1,
        },
    ];
    for c in cases {
        let case = c.name;
        let dir = TempDir::new("azure-imds");
        machine(dir.path(), None);
        let doc = azure::imds_doc("5e1f0a4c-6b7d-4c1e-9a55-1d2e3f405060", "00:0d:3a:04:75:98");
        let server = azure::imds(doc, c.script);
        let r = context(
            dir.path(),
            &dir.path().join("state"),
            &server.url(),
            WIRE,
            c.timeout,
        );
        assert!(
            r.took <= Duration::from_secs(c.timeout) + MARGIN,
            "case {case}: took {:?} with a {} s deadline",
            r.took,
            c.timeout
        );
        let gets = server.requests();
        assert!(
            gets.iter()
                .all(|g| g.header("metadata") == Some("true")
                    && g.header("x-forwarded-for").is_none()),
            "case {case}: every request with Metadata: true"
        );
        if c.gets > 0 {
            assert_eq!(gets.len(), c.gets, "case {case}: requests {gets:?}");
        }
        match c.fails {
            None => {
                assert_eq!(r.code, Some(0), "case {case}: {}", r.stderr);
                assert_eq!(not_warnings(&r.stderr), Vec::<&str>::new(), "case {case}");
                let ctx = &r.ctx;
                assert_eq!(ctx["platform"], "azure", "case {case}");
                assert_eq!(ctx["source"]["kind"], "metadata-service", "case {case}");
                assert_eq!(
                    ctx["instance_id"], "5e1f0a4c-6b7d-4c1e-9a55-1d2e3f405060",
                    "case {case}"
                );
                assert_eq!(ctx["hostname"], "my-hostname", "case {case}");
                assert_eq!(ctx["user"], "azureuser", "case {case}");
                assert_eq!(
                    ctx["ssh_keys"].as_array().map(Vec::len),
                    Some(1),
                    "case {case}"
                );
                assert_eq!(ctx["network"]["links"][0]["name"], "eth0", "case {case}");
                assert_eq!(ctx["extra"]["azure"]["wireserver"], WIRE, "case {case}");
                assert!(
                    ctx["warnings"]
                        .to_string()
                        .contains("no provisioning medium found"),
                    "case {case}: the missing medium is a warning: {}",
                    ctx["warnings"]
                );
            }
            Some(want) => {
                assert_eq!(r.code, Some(1), "case {case}: {}", r.stderr);
                let lines: Vec<&str> = r.stderr.trim().lines().collect();
                assert_eq!(lines.len(), 1, "case {case}: one line: {}", r.stderr);
                assert!(
                    want.iter().any(|w| lines[0].contains(w)),
                    "case {case}: none of {want:?} in {}",
                    lines[0]
                );
                assert!(
                    lines[0].contains("metadata/instance"),
                    "case {case}: names the URL"
                );
            }
        }
    }
}

#[test]
fn medium_and_imds_together() {
    require!("medium_and_imds_together"; "genisoimage");
    let dir = TempDir::new("azure-medium");
    let img = azure::make_medium(dir.path(), &azure::ovf("vm-from-ovf", "alice"));
    let root = dir.path().join("machine");
    machine(&root, Some(&img));
    let state = dir.path().join("state");
    let doc = azure::imds_doc("5e1f0a4c-6b7d-4c1e-9a55-1d2e3f405060", "00:0d:3a:04:75:98");
    let server = azure::imds(doc, vec![]);
    let r = context(&root, &state, &server.url(), "http://127.0.0.1:9/", 5);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(not_warnings(&r.stderr), Vec::<&str>::new());
    let ctx = &r.ctx;
    assert_eq!(ctx["source"]["kind"], "azure-ovf", "{ctx:#}");
    assert_eq!(
        ctx["source"]["medium"], "udf",
        "the hybrid is read by its UDF side"
    );
    assert_eq!(ctx["source"]["location"], "/dev/sr0");
    assert_eq!(
        ctx["hostname"], "vm-from-ovf",
        "ovf-env.xml's HostName wins"
    );
    assert_eq!(ctx["user"], "alice", "ovf-env.xml's UserName wins");
    assert_eq!(
        ctx["instance_id"], "5e1f0a4c-6b7d-4c1e-9a55-1d2e3f405060",
        "IMDS vmId"
    );
    assert_eq!(
        ctx["ssh_keys"].as_array().map(Vec::len),
        Some(1),
        "the same key from both, once"
    );
    for (field, content) in [
        ("password", &b"P@ssw0rd-not-real"[..]),
        ("user_data", b"#cloud-config\nhostname: from-custom-data\n"),
    ] {
        let path = ctx[field]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{field}"));
        assert_eq!(std::fs::read(path).unwrap(), content, "{field}");
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{field} is a 0600 secret");
    }
    let text = ctx.to_string();
    assert!(!text.contains("P@ssw0rd"), "no password in the context");
    assert!(
        ctx["warnings"].to_string().contains("only by fingerprint"),
        "the fingerprint-only key is named: {}",
        ctx["warnings"]
    );

    // IMDS down: the medium's data still read; the error says why, within the deadline.
    let down = azure::imds(vec![], vec![Reply::Silent; 10]);
    let state2 = dir.path().join("state2");
    let r = context(&root, &state2, &down.url(), "http://127.0.0.1:9/", 2);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.took <= Duration::from_secs(2) + MARGIN,
        "took {:?}",
        r.took
    );
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    assert!(state2.join("password").exists(), "the medium was read");

    // The medium alone, as --from reads it: every NIC by DHCP.
    let r = preroot(&[
        "context",
        "--from",
        &format!("azure:{}", img.display()),
        "--root",
        root.to_str().unwrap(),
        "--state-dir",
        dir.path().join("state3").to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.ctx["hostname"], "vm-from-ovf");
    assert_eq!(r.ctx["instance_id"], Value::Null, "no IMDS, no DMI: no id");
    assert_eq!(r.ctx["fallbacks"][0]["kind"], "dhcp4-all-nics");
}

#[test]
fn ready_report_faults() {
    let t = |ms: u64| Duration::from_millis(ms);
    struct Case {
        name: &'static str,
        incarnations: &'static [&'static str],
        script: Vec<Reply>,
        health: Health,
        timeout: Duration,
        /// The incarnation reported (`None`: the exchange fails).
        reported: Option<&'static str>,
    }
    let failed = Health::failed("preroot: sysroot: /sysroot: read-only");
    let cases = vec![
        Case {
            name: "normal",
            incarnations: &["42"],
            script: vec![],
            health: Health::Ready,
            timeout: t(5000),
            reported: Some("42"),
        },
        Case {
            name: "5xx on the goal state and on the report",
            incarnations: &["42"],
            script: vec![Reply::Status(503), Reply::Normal, Reply::Status(500)],
            health: Health::Ready,
            timeout: t(8000),
            reported: Some("42"),
        },
        Case {
            name: "410 to the report: the goal state moved on",
            incarnations: &["42", "43"],
            script: vec![Reply::Normal, Reply::Status(410)],
            health: Health::Ready,
            timeout: t(5000),
            reported: Some("43"),
        },
        Case {
            name: "a partial goal state first",
            incarnations: &["42"],
            script: vec![Reply::Body(b"<GoalState><Incarnation>4".to_vec())],
            health: Health::Ready,
            timeout: t(5000),
            reported: Some("42"),
        },
        Case {
            name: "slow goal state",
            incarnations: &["42"],
            script: vec![Reply::Slow(t(1500))],
            health: Health::Ready,
            timeout: t(5000),
            reported: Some("42"),
        },
        Case {
            name: "NotReady",
            incarnations: &["7"],
            script: vec![],
            health: failed.clone(),
            timeout: t(5000),
            reported: Some("7"),
        },
        Case {
            name: "403 on the goal state is final",
            incarnations: &["42"],
            script: vec![Reply::Status(403)],
            health: Health::Ready,
            timeout: t(5000),
            reported: None,
        },
        Case {
            name: "silent wire server",
            incarnations: &["42"],
            script: vec![Reply::Silent; 20],
            health: Health::Ready,
            timeout: t(2000),
            reported: None,
        },
    ];
    for c in cases {
        let case = c.name;
        let wire = azure::wireserver(c.incarnations, c.script);
        let base = Url::parse(&wire.url()).unwrap();
        let started = Instant::now();
        let result = report::send(&base, c.health.clone(), Deadline::after(c.timeout));
        assert!(
            started.elapsed() <= c.timeout + MARGIN,
            "case {case}: took {:?}",
            started.elapsed()
        );
        let taken = azure::taken(&wire);
        match c.reported {
            Some(inc) => {
                let outcome = result.unwrap_or_else(|e| panic!("case {case}: {e}"));
                assert!(
                    matches!(&outcome, Outcome::Reported(gs) if gs.incarnation == inc),
                    "case {case}: {outcome:?}"
                );
                assert_eq!(
                    taken.len(),
                    1,
                    "case {case}: exactly one report taken: {taken:?}"
                );
                assert_eq!(taken[0].incarnation, inc, "case {case}: incarnation");
                let state = if c.health == Health::Ready {
                    "Ready"
                } else {
                    "NotReady"
                };
                assert_eq!(taken[0].state, state, "case {case}: state");
                if state == "NotReady" {
                    assert!(taken[0].description.contains("read-only"), "case {case}");
                }
            }
            None => {
                assert!(
                    !matches!(result, Ok(Outcome::Reported(_))),
                    "case {case}: {result:?}"
                );
                assert!(taken.is_empty(), "case {case}: nothing taken: {taken:?}");
            }
        }
        assert!(
            wire.requests()
                .iter()
                .all(|r| r.header("x-ms-version") == Some("2012-11-30")
                    && r.header("x-ms-agent-name") == Some("preroot")),
            "case {case}: headers"
        );
    }
}
