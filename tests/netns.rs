//! The network stage on a real network, in namespaces only (root, `ip`, `dnsmasq`).
//!
//! Every test builds its own world ([`World`]): a client namespace holding N veth ends (the
//! NICs preroot sees), a peer namespace holding the other ends, dnsmasq (Debian
//! `dnsmasq-base`) as DHCP server on one of them, and a test-owned metadata server bound to
//! 169.254.169.254:80 inside the peer namespace (its thread enters the namespace with
//! setns(2) before binding). preroot runs with `ip netns exec <client>`. Nothing is created in
//! the machine's own namespace, and no packet leaves the two namespaces.
//!
//! dnsmasq's replies cross the veth with unfinished UDP checksums (CHECKSUM_PARTIAL), so every
//! lease here also proves the `TP_STATUS_CSUMNOTREADY` path: with the auxdata flag ignored,
//! `one_nic_ec2_through_dhcp` gets no lease (checked by hand, 2026-11-30).

mod common;

use common::metadata::{Mode, Server};
use common::{fixtures, TempDir};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// DHCP server settings of a world.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dhcp {
    None,
    /// Router option (default route via 10.77.0.1).
    Router,
    /// No router, only option 121 with a route to 169.254.169.254/32 via 10.77.0.1.
    Classless,
    /// Router, and path-like host name, domain name and boot file (the security rule "a
    /// DHCP option can set no path").
    Hostile,
}

struct World {
    client: String,
    peer: String,
    dnsmasq: Option<Child>,
    _dir: TempDir,
    server: Option<Server>,
}

impl World {
    /// `nics` veth pairs; DHCP (if any) on pair `dhcp_on`.
    fn new(tag: &str, nics: usize, dhcp_on: usize, dhcp: Dhcp) -> World {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{}", std::process::id() % 100_000, n);
        let client = format!("prc{tag}{id}");
        let peer = format!("prp{tag}{id}");
        sh(&["ip", "netns", "add", &client]);
        sh(&["ip", "netns", "add", &peer]);
        let dir = TempDir::new("netns");
        let mut w = World {
            client,
            peer,
            dnsmasq: None,
            _dir: dir,
            server: None,
        };
        for i in 0..nics {
            let c = format!("eth{i}");
            let p = format!("peer{i}");
            sh(&[
                "ip", "link", "add", &c, "netns", &w.client, "type", "veth", "peer", "name", &p,
                "netns", &w.peer,
            ]);
            sh(&["ip", "-n", &w.peer, "link", "set", &p, "up"]);
        }
        sh(&["ip", "-n", &w.peer, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "-n",
            &w.peer,
            "addr",
            "add",
            "169.254.169.254/32",
            "dev",
            "lo",
        ]);
        if dhcp != Dhcp::None {
            let p = format!("peer{dhcp_on}");
            sh(&[
                "ip",
                "-n",
                &w.peer,
                "addr",
                "add",
                "10.77.0.1/24",
                "dev",
                &p,
            ]);
            let dir = w._dir.path();
            let mut args = vec![
                "netns".to_string(),
                "exec".into(),
                w.peer.clone(),
                "dnsmasq".into(),
                "--keep-in-foreground".into(),
                "--no-resolv".into(),
                "--no-hosts".into(),
                "--port=0".into(),
                "--conf-file=/dev/null".into(),
                "--no-ping".into(),
                format!("--interface={p}"),
                "--bind-interfaces".into(),
                "--dhcp-range=10.77.0.10,10.77.0.200,255.255.255.0,1h".into(),
                format!("--dhcp-leasefile={}", dir.join("leases").display()),
                format!("--pid-file={}", dir.join("pid").display()),
                "--user=root".into(),
                "--dhcp-option=6,10.77.0.1".into(),
            ];
            match dhcp {
                Dhcp::Router => {}
                Dhcp::Classless => {
                    args.push("--dhcp-option=3".into());
                    args.push("--dhcp-option=121,169.254.169.254/32,10.77.0.1".into());
                }
                Dhcp::Hostile => {
                    args.push("--dhcp-option=12,../../../tmp/preroot-evil-host".into());
                    args.push("--dhcp-option=15,../../etc/preroot-evil-domain".into());
                    args.push("--dhcp-boot=../../../etc/preroot-evil-boot".into());
                }
                Dhcp::None => {}
            }
            let child = Command::new("ip")
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq");
            w.dnsmasq = Some(child);
            // Wait until it listens on UDP port 67 (0x0043) in the peer namespace: its pid
            // file comes earlier, and a DISCOVER sent before is lost (a 1 s retransmission).
            let until = Instant::now() + Duration::from_secs(5);
            loop {
                let udp = Command::new("ip")
                    .args(["netns", "exec", &w.peer, "cat", "/proc/net/udp"])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&udp.stdout).contains(":0043 ") || Instant::now() > until
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        w
    }

    /// Serves `root` on 169.254.169.254:80 inside the peer namespace.
    fn serve(&mut self, root: &Path, mode: Mode, slow: usize, delay: Duration) {
        let ns = format!("/run/netns/{}", self.peer);
        let listener = std::thread::spawn(move || {
            let f = std::fs::File::open(ns).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            std::net::TcpListener::bind("169.254.169.254:80").unwrap()
        })
        .join()
        .unwrap();
        self.server = Some(Server::serve(listener, root, mode, slow, delay));
    }

    /// `preroot ARGS` inside the client namespace.
    fn preroot(&self, args: &[&str]) -> (Option<i32>, Value, String, Duration) {
        let started = Instant::now();
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.client,
                env!("CARGO_BIN_EXE_preroot"),
                "-v",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), json, stderr, took)
    }

    fn context(
        &self,
        platform: &str,
        timeout: &str,
        extra: &[&str],
    ) -> (Option<i32>, Value, String, Duration) {
        let state = TempDir::new("netns-state");
        let mut args = vec![
            "context",
            "--platform",
            platform,
            "--timeout",
            timeout,
            "--state-dir",
            state.path().to_str().unwrap(),
        ];
        args.extend(extra);
        self.preroot(&args)
    }

    /// The client namespace's IPv4 addresses and up links other than lo.
    fn client_state(&self) -> (String, String) {
        let out = |a: &[&str]| {
            let o = Command::new("ip")
                .args(["-n", &self.client])
                .args(a)
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        (
            out(&["-4", "-o", "addr", "show"]),
            out(&["-o", "link", "show", "up"]),
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut c) = self.dnsmasq.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.client])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.peer])
            .status();
    }
}

fn ec2_fixture(case: &str) -> std::path::PathBuf {
    fixtures().join("ec2").join(case).join("input")
}

/// The links are left as found: no IPv4 address, every NIC down again.
fn assert_put_back(w: &World, case: &str) {
    let (addrs, up) = w.client_state();
    assert!(
        !addrs.contains("inet 10.77"),
        "case {case}: address left: {addrs}"
    );
    assert!(!up.contains("eth"), "case {case}: link left up: {up}");
}

#[test]
fn one_nic_ec2_through_dhcp() {
    require!("one_nic_ec2_through_dhcp"; root, "ip", "dnsmasq");
    let mut w = World::new("a", 1, 0, Dhcp::Router);
    let input = ec2_fixture("ec2-default-ipv4-only-nic");
    w.serve(&input, Mode::Ec2Token, 0, Duration::ZERO);
    let (code, ctx, err, took) = w.context("ec2", "15", &[]);
    assert_eq!(code, Some(0), "{err}");
    let id = std::fs::read_to_string(input.join("latest/meta-data/instance-id")).unwrap();
    assert_eq!(ctx["instance_id"], id.trim());
    assert_eq!(ctx["extra"]["dhcp"]["iface"], "eth0");
    assert!(ctx["extra"]["dhcp"]["address"]
        .as_str()
        .unwrap()
        .starts_with("10.77.0."));
    assert_eq!(ctx["extra"]["dhcp"]["routes"][0], "0.0.0.0/0 via 10.77.0.1");
    assert_eq!(ctx["extra"]["dhcp"]["dns"][0], "10.77.0.1");
    eprintln!("one NIC: {took:?}, {}", ctx["extra"]["dhcp"]);
    assert_put_back(&w, "one nic");
    let reqs = w.server.as_ref().unwrap().requests();
    assert_eq!(reqs[0], "PUT /latest/api/token");
}

#[test]
fn eight_nics_one_dhcp_server() {
    require!("eight_nics_one_dhcp_server"; root, "ip", "dnsmasq");
    let mut w = World::new("b", 8, 5, Dhcp::Router);
    w.serve(
        &ec2_fixture("ec2-default-ipv4-only-nic"),
        Mode::Ec2Token,
        0,
        Duration::ZERO,
    );
    let (code, ctx, err, took) = w.context("ec2", "15", &[]);
    assert_eq!(code, Some(0), "{err}");
    let dhcp = &ctx["extra"]["dhcp"];
    assert_eq!(dhcp["iface"], "eth5");
    assert_eq!(dhcp["candidates"].as_array().unwrap().len(), 8);
    eprintln!("eight NICs, one DHCP server: wall {took:?}, {dhcp}");
    // About one NIC's time, not a sum of per-NIC timeouts.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_put_back(&w, "eight nics");
}

#[test]
fn no_dhcp_anywhere_fails_within_the_deadline() {
    require!("no_dhcp_anywhere_fails_within_the_deadline"; root, "ip", "dnsmasq");
    let w = World::new("c", 2, 0, Dhcp::None);
    let (code, ctx, err, took) = w.context("ec2", "3", &[]);
    assert_eq!(code, Some(1));
    assert_eq!(ctx, Value::Null);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| {
            l.starts_with("preroot: ")
                && !l.starts_with("preroot: info")
                && !l.starts_with("preroot: debug")
                && !l.starts_with("preroot: warn")
        })
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("no usable DHCPv4 lease"), "{err}");
    assert!(took < Duration::from_millis(4500), "took {took:?}");
    assert_put_back(&w, "no dhcp");
    drop(w);
    // A lease, but no metadata service behind it: that NIC is out, the run fails in time.
    let w = World::new("c", 1, 0, Dhcp::Router);
    let (code, _, err, took) = w.context("ec2", "3", &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("does not reach 169.254.169.254:80"), "{err}");
    assert!(took < Duration::from_millis(4500), "took {took:?}");
    assert_put_back(&w, "no metadata service");
}

#[test]
fn option_121_route_to_the_metadata_service() {
    require!("option_121_route_to_the_metadata_service"; root, "ip", "dnsmasq");
    let mut w = World::new("d", 2, 1, Dhcp::Classless);
    let case = fixtures().join("openstack/cloudinit-metadata-service");
    w.serve(&case.join("input"), Mode::Plain, 0, Duration::ZERO);
    let (code, ctx, err, _) = w.context("openstack", "15", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ctx["instance_id"], "b0fa911b-69d4-4476-bbe2-1c92bff6535c");
    assert_eq!(
        ctx["extra"]["dhcp"]["routes"],
        serde_json::json!(["169.254.169.254/32 via 10.77.0.1"])
    );
    assert_put_back(&w, "121");
}

#[test]
fn slow_metadata_server_then_answering() {
    require!("slow_metadata_server_then_answering"; root, "ip", "dnsmasq");
    let mut w = World::new("e", 1, 0, Dhcp::Router);
    w.serve(
        &fixtures().join("gce/gce-userdata-base64/input"),
        Mode::Gce,
        1,
        Duration::from_secs(2),
    );
    let (code, ctx, err, took) = w.context("gce", "15", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ctx["instance_id"], "12345");
    assert!(took >= Duration::from_secs(2));
}

#[test]
fn optional_paths_404_and_nocloud_net() {
    require!("optional_paths_404_and_nocloud_net"; root, "ip", "dnsmasq");
    // No user-data in this tree: the GET is a 404, which means "none", not an error.
    let mut w = World::new("f", 1, 0, Dhcp::Router);
    w.serve(
        &ec2_fixture("ec2-multi-nic-ipv6-only"),
        Mode::Ec2Token,
        0,
        Duration::ZERO,
    );
    let (code, ctx, err, _) = w.context("ec2", "15", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(ctx.get("user_data").is_none());
    assert!(w
        .server
        .as_ref()
        .unwrap()
        .requests()
        .iter()
        .any(|r| r == "GET /latest/user-data"));
    drop(w);
    let mut w = World::new("g", 1, 0, Dhcp::Router);
    w.serve(
        &fixtures().join("nocloud/afterburn-kubevirt-nocloud-v1/input"),
        Mode::Plain,
        0,
        Duration::ZERO,
    );
    let (code, ctx, err, _) = w.context(
        "nocloud",
        "15",
        &["--metadata-url", "http://169.254.169.254/"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ctx["instance_id"], "5d307ca9-b3ef-428c-8861-06e72d69f223");
}

#[test]
fn ec2_without_token_support() {
    require!("ec2_without_token_support"; root, "ip", "dnsmasq");
    let mut w = World::new("h", 1, 0, Dhcp::Router);
    w.serve(
        &ec2_fixture("ec2-default-ipv4-only-nic"),
        Mode::Ec2NoToken,
        0,
        Duration::ZERO,
    );
    let (code, ctx, err, _) = w.context("ec2", "15", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(ctx["fallbacks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "imdsv1"));
}

#[test]
fn net_command_keeps_the_lease() {
    require!("net_command_keeps_the_lease"; root, "ip", "dnsmasq");
    let w = World::new("i", 3, 2, Dhcp::Router);
    let (code, lease, err, _) = w.preroot(&["net", "--json", "--timeout", "10"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lease["iface"], "eth2");
    let (addrs, _) = w.client_state();
    assert!(
        addrs.contains("eth2") && addrs.contains("inet 10.77.0."),
        "{addrs}"
    );
    // --iface limits the race: a NIC without a server gets no lease, within the deadline.
    let (code, _, err, took) = w.preroot(&["net", "--iface", "eth0", "--timeout", "2"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(took < Duration::from_millis(3500));
}

/// Benchmark (figures printed, only sanity asserted): lease, metadata and total time for 1,
/// 2, 4 and 8 NICs, the DHCP server on the last one.
#[test]
fn bench_nic_counts() {
    require!("bench_nic_counts"; root, "ip", "dnsmasq");
    for n in [1usize, 2, 4, 8] {
        let mut w = World::new("z", n, n - 1, Dhcp::Router);
        w.serve(
            &ec2_fixture("ec2-default-ipv4-only-nic"),
            Mode::Ec2Token,
            0,
            Duration::ZERO,
        );
        let (code, ctx, err, took) = w.context("ec2", "15", &[]);
        assert_eq!(code, Some(0), "{err}");
        let d = &ctx["extra"]["dhcp"];
        eprintln!(
            "BENCH nics={n} lease_ms={} metadata_ms={} total_ms={} wall_ms={}",
            d["lease_ms"],
            d["metadata_ms"],
            d["total_ms"],
            took.as_millis()
        );
    }
}

/// The boot's fetch phase: DMI says EC2, no medium, so the network stage brings up the
/// NICs and reads IMDS; the links are put back, or kept with `rd.neednet=1`. The machine tree
/// is fake (command line, DMI) except `sys/class/net`, a link to the namespace's own sysfs.
#[test]
fn run_fetch_phase_reads_imds_and_applies_the_link_rule() {
    require!("run_fetch_phase_reads_imds_and_applies_the_link_rule"; root, "ip", "dnsmasq");
    for (cmdline, keep) in [
        ("preroot.timeout=10", false),
        ("preroot.timeout=10 rd.neednet=1", true),
    ] {
        let mut w = World::new("r", 2, 1, Dhcp::Router);
        let input = ec2_fixture("ec2-default-ipv4-only-nic");
        w.serve(&input, Mode::Ec2Token, 0, Duration::ZERO);
        let machine = TempDir::new("netns-machine");
        let m = machine.path();
        std::fs::create_dir_all(m.join("proc")).unwrap();
        std::fs::write(m.join("proc/cmdline"), cmdline).unwrap();
        std::fs::create_dir_all(m.join("sys/class/dmi/id")).unwrap();
        std::fs::write(m.join("sys/class/dmi/id/sys_vendor"), "Amazon EC2\n").unwrap();
        std::os::unix::fs::symlink("/sys/class/net", m.join("sys/class/net")).unwrap();
        let state = TempDir::new("netns-run-state");
        let (code, _, err, _) = w.preroot(&[
            "run",
            "--phase",
            "fetch",
            "--root",
            m.to_str().unwrap(),
            "--state-dir",
            state.path().to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "case {cmdline}: {err}");
        let ctx: Value =
            serde_json::from_slice(&std::fs::read(state.path().join("context.json")).unwrap())
                .unwrap();
        assert_eq!(ctx["platform"], "ec2", "case {cmdline}: {ctx}");
        assert_eq!(ctx["source"]["kind"], "metadata-service", "case {cmdline}");
        assert_eq!(ctx["errors"], serde_json::json!([]), "case {cmdline}");
        assert_eq!(ctx["extra"]["dhcp"]["iface"], "eth1", "case {cmdline}");
        assert_eq!(ctx["phases"][0]["outcome"], "ok", "case {cmdline}");
        let (addrs, up) = w.client_state();
        if keep {
            assert!(
                addrs.contains("eth1") && addrs.contains("inet 10.77.0."),
                "case {cmdline}: {addrs}"
            );
            assert!(
                !up.contains("eth0"),
                "case {cmdline}: the loser is put back: {up}"
            );
        } else {
            assert_put_back(&w, cmdline);
        }
    }
}

/// Security rule (issue 9): a DHCP option can set no path. A lease whose host name, domain
/// name and boot file are paths is used for its address only: the strings are recorded as
/// data in `extra.dhcp`, no file or directory of those names appears, and a root rendered
/// from that context gets the metadata's host name, never the lease's.
#[test]
fn dhcp_options_set_no_path() {
    require!("dhcp_options_set_no_path"; root, "ip", "dnsmasq");
    let mut w = World::new("h", 1, 0, Dhcp::Hostile);
    let input = ec2_fixture("ec2-default-ipv4-only-nic");
    w.serve(&input, Mode::Ec2Token, 0, Duration::ZERO);
    let tmp = TempDir::new("netns-hostile");
    let state = tmp.path().join("state");
    let (code, ctx, err, _) = w.preroot(&[
        "context",
        "--platform",
        "ec2",
        "--timeout",
        "15",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let dhcp = &ctx["extra"]["dhcp"];
    // dnsmasq sends what it was given (or drops it): whatever arrived is data, nothing more.
    eprintln!("lease as recorded: {dhcp}");
    assert!(
        dhcp["domain"].as_str().is_some_and(|d| d.contains("evil"))
            || dhcp["hostname"]
                .as_str()
                .is_some_and(|h| h.contains("evil")),
        "no hostile option reached preroot, the test proves nothing: {dhcp}"
    );
    for p in [
        "/tmp/preroot-evil-host",
        "/etc/preroot-evil-domain",
        "/etc/preroot-evil-boot",
    ] {
        assert!(!Path::new(p).exists(), "{p} was created");
    }
    let mut names = Vec::new();
    let mut todo = vec![tmp.path().to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            names.push(e.file_name().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            }
        }
    }
    assert!(
        names.iter().all(|n| !n.contains("evil")),
        "state holds {names:?}"
    );
    // Rendered into a root: the hostname is the metadata's, no file carries the lease's names.
    let ctx_file = tmp.path().join("ctx.json");
    std::fs::write(&ctx_file, serde_json::to_vec(&ctx).unwrap()).unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc/systemd/network")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args(["render", "--context"])
        .arg(&ctx_file)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut todo = vec![root.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            assert!(
                !e.file_name().to_string_lossy().contains("evil"),
                "{}",
                p.display()
            );
            if e.file_type().unwrap().is_dir() {
                todo.push(p);
            } else {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                assert!(!text.contains("evil"), "{} holds a lease name", p.display());
            }
        }
    }
    let hostname = std::fs::read_to_string(root.join("etc/hostname")).unwrap_or_default();
    assert!(!hostname.contains("evil"), "{hostname}");
    assert_put_back(&w, "hostile dhcp");
}
