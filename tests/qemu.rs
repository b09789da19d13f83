//! Real boots in QEMU (issue 4): each test boots one scenario of `qemu/scenario.sh` (a Debian
//! bookworm guest, the host's kernel, a lean dracut initramfs with preroot) under TCG, reads
//! the report the guest writes to its second serial port, and checks what preroot did in the
//! initramfs. `qemu/README.md` says how to run them and what they cost.
//!
//! Needs root (debootstrap, chroot) and the host packages of `qemu/host-deps.sh` (`make check`
//! installs them); without them each test prints `SKIP`, or fails under `PREROOT_REQUIRE_ALL=1`.
//! The boots run one at a time (a lock): the machines have two cores.

mod common;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One boot at a time: the guest build is shared and the machine has two cores.
static BOOTS: Mutex<()> = Mutex::new(());

/// preroot's `fetch` deadline when `preroot.timeout=` is not given (`run::DEFAULT_TIMEOUT`).
const FETCH_DEADLINE_MS: u64 = 20_000;

/// The guest's report: the sections between `@@@ BEGIN` and `@@@ END`.
#[derive(Debug)]
struct Report {
    sections: BTreeMap<String, String>,
    /// Where the raw files are, for assertion messages.
    dir: PathBuf,
}

impl Report {
    fn parse(text: &str, dir: &Path) -> Option<Report> {
        let body = text.split("@@@ BEGIN").nth(1)?;
        let body = body
            .split("@@@ END")
            .next()
            .filter(|_| text.contains("@@@ END"))?;
        let mut sections = BTreeMap::new();
        let mut name: Option<String> = None;
        let mut buf = String::new();
        for line in body.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(n) = line.strip_prefix("@@ ") {
                if let Some(prev) = name.take() {
                    sections.insert(prev, std::mem::take(&mut buf));
                }
                name = Some(n.trim().to_string());
            } else if name.is_some() {
                buf.push_str(line);
                buf.push('\n');
            }
        }
        if let Some(prev) = name {
            sections.insert(prev, buf);
        }
        Some(Report {
            sections,
            dir: dir.to_path_buf(),
        })
    }

    fn get(&self, name: &str) -> &str {
        self.sections.get(name).map(String::as_str).unwrap_or("")
    }

    /// `preroot show --json` as the booted system printed it.
    fn context(&self) -> Value {
        serde_json::from_str(self.get("show-json")).unwrap_or_else(|e| {
            panic!(
                "preroot show --json is not JSON ({e}); report in {}:\n{}",
                self.dir.display(),
                self.get("show-json")
            )
        })
    }

    /// Monotonic time (µs since kernel start) at which `unit` became active, 0 if never.
    fn unit_active_us(&self, unit: &str) -> u64 {
        self.get("units")
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(unit)).then(|| f.next().and_then(|t| t.parse().ok()))?
            })
            .unwrap_or(0)
    }
}

/// Boots `scenario` and returns the guest's report. `env` goes to `qemu/scenario.sh`.
fn boot(test: &str, scenario: &str, env: &[(&str, String)]) -> Report {
    boots(test, scenario, env, 1).remove(0)
}

/// Boots `scenario` `n` times on the same disk (`BOOTS=n`: a re-boot of the same instance)
/// and returns the guest's reports, first boot first.
fn boots(test: &str, scenario: &str, env: &[(&str, String)], n: usize) -> Vec<Report> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("preroot-qemu-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let started = std::time::Instant::now();
    let status = Command::new("bash")
        .arg(repo.join("qemu/scenario.sh"))
        .arg(scenario)
        .arg(&out)
        .env("BOOTS", n.to_string())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .expect("run qemu/scenario.sh");
    let wall = started.elapsed();
    let reports = (1..=n)
        .map(|k| {
            let dir = if k == 1 {
                out.clone()
            } else {
                out.join(format!("boot{k}"))
            };
            let report = std::fs::read(dir.join("report.log")).unwrap_or_default();
            let report = String::from_utf8_lossy(&report);
            Report::parse(&report, &dir).unwrap_or_else(|| {
                let c = std::fs::read(dir.join("console.log")).unwrap_or_default();
                let c = String::from_utf8_lossy(&c).into_owned();
                let lines: Vec<&str> = c.lines().collect();
                panic!(
                    "{test}: boot {k} of {n}: the guest wrote no complete report (scenario.sh \
                     {status}, {wall:?}); files in {}; console tail:\n{}",
                    dir.display(),
                    lines[lines.len().saturating_sub(60)..].join("\n")
                )
            })
        })
        .collect();
    eprintln!(
        "{test}: {scenario} booted {n}x and reported in {:.1} s (host wall time incl. build)",
        wall.as_secs_f64()
    );
    assert!(
        status.success(),
        "{test}: scenario.sh {scenario} exited {status}; files in {}",
        out.display()
    );
    reports
}

/// What every scenario asserts: the boot reached multi-user.target, preroot ran its three
/// phases in the initramfs and left its context in /run/preroot.
fn assert_booted_with_preroot(test: &str, r: &Report) -> Value {
    let state = r.get("state").trim();
    assert!(
        state == "running",
        "{test}: system state {state:?}, not running; failed units:\n{}\njobs:\n{}",
        r.get("failed"),
        r.get("jobs")
    );
    let multi_user = r.unit_active_us("multi-user.target");
    assert!(
        multi_user > 0,
        "{test}: multi-user.target never became active:\n{}",
        r.get("units")
    );
    let switch_root = r.unit_active_us("initrd-switch-root.target");
    assert!(
        switch_root > 0 && switch_root < multi_user,
        "{test}: no initrd (initrd-switch-root.target at {switch_root} µs)"
    );
    assert!(
        r.get("run-preroot").contains("context.json"),
        "{test}: /run/preroot/context.json missing:\n{}",
        r.get("run-preroot")
    );
    let ctx = r.context();
    let phases: Vec<&str> = ctx["phases"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["phase"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        phases,
        ["fetch", "grow", "sysroot"],
        "{test}: phases recorded in the initramfs; context:\n{ctx:#}"
    );
    // The phases ran before the switch to the real root (their start is in ms since boot).
    for p in ctx["phases"].as_array().into_iter().flatten() {
        let start_us = p["started_ms"]
            .as_u64()
            .unwrap_or(u64::MAX)
            .saturating_mul(1000);
        assert!(
            start_us < switch_root,
            "{test}: phase {} started at {start_us} µs, after the switch root at {switch_root} µs",
            p["phase"]
        );
    }
    eprintln!(
        "{test}: initrd left at {:.1} s, multi-user.target at {:.1} s; phases: {}",
        switch_root as f64 / 1e6,
        multi_user as f64 / 1e6,
        ctx["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("{} {} ms", p["phase"], p["duration_ms"]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    ctx
}

/// The OpenStack config drive of `lib.sh make_configdrive`, read in the initramfs.
fn assert_configdrive(test: &str, ctx: &Value) {
    assert_eq!(ctx["platform"], "openstack", "{test}: platform; {ctx:#}");
    assert_eq!(
        ctx["source"]["kind"], "config-drive",
        "{test}: source; {ctx:#}"
    );
    assert_eq!(
        ctx["instance_id"], "6a1c1a3b-1111-4222-8333-444455556666",
        "{test}: instance id from meta_data.json"
    );
    assert!(
        ctx["hostname"]
            .as_str()
            .is_some_and(|h| h.starts_with("preroot-qemu")),
        "{test}: hostname from meta_data.json; {ctx:#}"
    );
    assert_eq!(
        ctx["errors"].as_array().map(Vec::len),
        Some(0),
        "{test}: errors; {ctx:#}"
    );
    assert_eq!(
        ctx["phases"][0]["outcome"], "ok",
        "{test}: fetch outcome; {ctx:#}"
    );
}

/// The root is vda1 (ext4, label root) on a disk with partition table `pttype`, and the disk
/// is larger than the image (the overlay grew it), so there is space to grow into.
/// The root partition was grown to the disk's end (1 MiB aligned; GPT keeps its backup
/// table after it) and the mounted ext4 with it (issues 5's assertions in a real boot).
fn assert_root_disk(test: &str, r: &Report, ctx: &Value, pttype: &str) {
    let lsblk: Value = serde_json::from_str(r.get("lsblk"))
        .unwrap_or_else(|e| panic!("{test}: lsblk -J: {e}:\n{}", r.get("lsblk")));
    let vda = lsblk["blockdevices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "vda"))
        .unwrap_or_else(|| panic!("{test}: no vda in lsblk: {lsblk:#}"));
    assert_eq!(vda["pttype"], pttype, "{test}: partition table; {vda:#}");
    let root = &vda["children"][0];
    assert_eq!(
        (&root["name"], &root["label"], &root["mountpoint"]),
        (
            &Value::from("vda1"),
            &Value::from("root"),
            &Value::from("/")
        ),
        "{test}: root partition; {vda:#}"
    );
    let (disk, part) = (
        vda["size"].as_u64().unwrap_or(0),
        root["size"].as_u64().unwrap_or(0),
    );
    // The partition starts at 1 MiB and ends on the last whole MiB before the end (GPT: before
    // its 33-sector backup), so at most 3 MiB of the disk are outside it.
    assert!(
        part + (3 << 20) >= disk && part < disk,
        "{test}: root partition {part} bytes not grown to the {disk}-byte disk; grow report: {:#}",
        ctx["extra"]["grow"]
    );
    let fs_size: u64 = r
        .get("rootfs")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        fs_size >= part / 100 * 90,
        "{test}: root filesystem {fs_size} bytes, partition {part}: ext4 not grown; {:#}",
        ctx["extra"]["grow_filesystem"]
    );
    assert_eq!(
        ctx["extra"]["grow_filesystem"]["status"], "done",
        "{test}: filesystem growth; {:#}",
        ctx["extra"]["grow_filesystem"]
    );
}

/// The network files preroot wrote were read by the guest's systemd-networkd, which gave
/// the NIC `address`; the hostname came from the metadata (issue 7's assertions).
fn assert_configured(test: &str, r: &Report, address: &str, hostname: &str) {
    let files = r.get("network-files");
    assert!(
        files.contains("# /etc/systemd/network/10-preroot-"),
        "{test}: no preroot networkd file in the guest:\n{files}"
    );
    let ip: Value = serde_json::from_str(r.get("ip")).unwrap_or(Value::Null);
    let has = ip.as_array().into_iter().flatten().any(|l| {
        l["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["local"] == address)
    });
    assert!(
        has,
        "{test}: {address} not configured by networkd; ip -j addr: {ip:#}\nfiles:\n{files}"
    );
    assert_eq!(r.get("hostname").trim(), hostname, "{test}: hostname");
}

fn require_qemu(test: &str) -> bool {
    let needs = [
        "qemu-system-x86_64",
        "qemu-img",
        "debootstrap",
        "xorriso",
        "sgdisk",
        "sfdisk",
        "mkfs.ext4",
        "socat",
        "flock",
        "unshare",
    ];
    if !common::is_root() {
        common::missing(test, "root (debootstrap, chroot)");
        return false;
    }
    if let Some(t) = needs.iter().find(|t| !common::has_tool(t)) {
        common::missing(
            test,
            &format!("the tool `{t}` (qemu/host-deps.sh installs it)"),
        );
        return false;
    }
    let kernel = std::fs::read_dir("/boot").ok().is_some_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
    });
    if !kernel {
        common::missing(test, "a Debian kernel in /boot (linux-image-amd64)");
        return false;
    }
    true
}

#[test]
fn qemu_gpt_configdrive() {
    let test = "qemu_gpt_configdrive";
    if !require_qemu(test) {
        return;
    }
    let _one = BOOTS.lock().unwrap_or_else(|e| e.into_inner());
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
    let _one = BOOTS.lock().unwrap_or_else(|e| e.into_inner());
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
    let _one = BOOTS.lock().unwrap_or_else(|e| e.into_inner());
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
