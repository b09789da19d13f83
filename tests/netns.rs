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
use common::netns::{sh, Namespaces};
use common::{fixtures, TempDir};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    /// Router, and option 245 (Azure's wire server) naming 10.77.0.1.
    Azure,
}

/// IPv6 on the served link (dnsmasq `--enable-ra`; the peer holds `fd77::1/64`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum V6 {
    /// No router advertisement, no DHCPv6.
    None,
    /// RA with the M flag, addresses fd77::100..1ff by DHCPv6 (prefix not for SLAAC).
    Stateful,
    /// RA for SLAAC only (`ra-only`).
    Slaac,
    /// SLAAC plus DHCPv6 Information-Request (`ra-stateless`: the O flag).
    Stateless,
}

/// Where the metadata server listens, inside the peer namespace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Endpoint {
    /// 169.254.169.254:80 (on the peer's lo).
    V4,
    /// EC2's [fd00:ec2::254]:80 (on the peer's lo, reached through the router).
    Ec2V6,
    /// GCE's [fd20:ce::254]:80.
    GceV6,
    /// OpenStack's [fe80::a9fe:a9fe]:80, a link-local address of the served peer.
    OpenstackLl,
}

impl Endpoint {
    fn addr(self) -> &'static str {
        match self {
            Endpoint::V4 => "169.254.169.254",
            Endpoint::Ec2V6 => "fd00:ec2::254",
            Endpoint::GceV6 => "fd20:ce::254",
            Endpoint::OpenstackLl => "fe80::a9fe:a9fe",
        }
    }
}

struct World {
    ns: Namespaces,
    /// The peer end dnsmasq serves and link-local endpoints live on.
    served: usize,
    dnsmasq: Option<Child>,
    _dir: TempDir,
    server: Option<Server>,
    /// Servers on further endpoints (IPv6), same tree.
    more: Vec<Server>,
}

impl World {
    /// `nics` veth pairs; DHCP (if any) on pair `dhcp_on`; no IPv6 service.
    fn new(tag: &str, nics: usize, dhcp_on: usize, dhcp: Dhcp) -> World {
        World::with_v6(tag, nics, dhcp_on, dhcp, V6::None)
    }

    /// `nics` veth pairs; DHCPv4 as `dhcp` and IPv6 as `v6` on pair `served`.
    fn with_v6(tag: &str, nics: usize, served: usize, dhcp: Dhcp, v6: V6) -> World {
        let ns = Namespaces::new("pr", tag);
        let dir = TempDir::new("netns");
        let mut w = World {
            ns,
            served,
            dnsmasq: None,
            _dir: dir,
            server: None,
            more: Vec::new(),
        };
        for i in 0..nics {
            let mac = format!("02:00:00:00:00:{:02x}", i + 1);
            w.ns.veth(i, Some(&mac), true);
        }
        sh(&["ip", "-n", &w.ns.client, "link", "set", "lo", "up"]);
        let p = format!("peer{served}");
        sh(&[
            "ip",
            "-n",
            &w.ns.peer,
            "addr",
            "add",
            "169.254.169.254/32",
            "dev",
            "lo",
        ]);
        sh(&[
            "ip",
            "-n",
            &w.ns.peer,
            "addr",
            "add",
            "10.77.0.1/24",
            "dev",
            &p,
        ]);
        sh(&[
            "ip",
            "-n",
            &w.ns.peer,
            "addr",
            "add",
            "fd77::1/64",
            "dev",
            &p,
            "nodad",
        ]);
        if dhcp != Dhcp::None || v6 != V6::None {
            w.start_dnsmasq(&p, dhcp, v6);
        }
        w
    }

    fn start_dnsmasq(&mut self, p: &str, dhcp: Dhcp, v6: V6) {
        let dir = self._dir.path();
        let mut args = vec![
            "netns".to_string(),
            "exec".into(),
            self.ns.peer.clone(),
            "dnsmasq".into(),
            "--keep-in-foreground".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--port=0".into(),
            "--conf-file=/dev/null".into(),
            "--no-ping".into(),
            format!("--interface={p}"),
            "--bind-interfaces".into(),
            format!("--dhcp-leasefile={}", dir.join("leases").display()),
            format!("--pid-file={}", dir.join("pid").display()),
            "--user=root".into(),
        ];
        if dhcp != Dhcp::None {
            args.push("--dhcp-range=10.77.0.10,10.77.0.200,255.255.255.0,1h".into());
            args.push("--dhcp-option=6,10.77.0.1".into());
        }
        match dhcp {
            Dhcp::Router | Dhcp::None => {}
            Dhcp::Classless => {
                args.push("--dhcp-option=3".into());
                args.push("--dhcp-option=121,169.254.169.254/32,10.77.0.1".into());
            }
            Dhcp::Hostile => {
                args.push("--dhcp-option=12,../../../tmp/preroot-evil-host".into());
                args.push("--dhcp-option=15,../../etc/preroot-evil-domain".into());
                args.push("--dhcp-boot=../../../etc/preroot-evil-boot".into());
            }
            Dhcp::Azure => args.push("--dhcp-option=245,10.77.0.1".into()),
        }
        let range = match v6 {
            V6::None => None,
            V6::Stateful => Some("--dhcp-range=fd77::100,fd77::1ff,64,1h"),
            V6::Slaac => Some("--dhcp-range=fd77::,ra-only,64"),
            V6::Stateless => Some("--dhcp-range=fd77::,ra-stateless,64"),
        };
        if let Some(r) = range {
            args.push("--enable-ra".into());
            args.push(r.into());
            args.push("--dhcp-option=option6:dns-server,[fd77::53]".into());
            args.push("--dhcp-option=option6:domain-search,example.com".into());
        }
        let child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        self.dnsmasq = Some(child);
        // Wait until it listens on UDP port 67 (0x0043) or 547 (0x0223) in the peer
        // namespace: its pid file comes earlier, and a DISCOVER sent before is lost (a 1 s
        // retransmission).
        let (file, port) = if dhcp != Dhcp::None {
            ("/proc/net/udp", ":0043 ")
        } else {
            ("/proc/net/udp6", ":0223 ")
        };
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let udp = Command::new("ip")
                .args(["netns", "exec", &self.ns.peer, "cat", file])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&udp.stdout).contains(port) || Instant::now() > until {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Serves `root` on 169.254.169.254:80 inside the peer namespace.
    fn serve(&mut self, root: &Path, mode: Mode, slow: usize, delay: Duration) {
        let listener = self.listen(Endpoint::V4);
        self.server = Some(Server::serve(listener, root, mode, slow, delay));
    }

    /// Serves `root` on each of `endpoints` (the first becomes [`World::server`]).
    fn serve_at(&mut self, root: &Path, mode: Mode, endpoints: &[Endpoint]) {
        for e in endpoints {
            let listener = self.listen(*e);
            let s = Server::serve(listener, root, mode, 0, Duration::ZERO);
            if self.server.is_none() {
                self.server = Some(s);
            } else {
                self.more.push(s);
            }
        }
    }

    /// Every request any server of this world saw.
    fn all_requests(&self) -> Vec<String> {
        self.server
            .iter()
            .chain(&self.more)
            .flat_map(|s| s.requests())
            .collect()
    }

    /// A listener on `e` inside the peer namespace (its address added there first).
    fn listen(&self, e: Endpoint) -> std::net::TcpListener {
        let served = format!("peer{}", self.served);
        match e {
            Endpoint::V4 => {}
            Endpoint::Ec2V6 | Endpoint::GceV6 => {
                sh(&[
                    "ip",
                    "-n",
                    &self.ns.peer,
                    "addr",
                    "add",
                    &format!("{}/128", e.addr()),
                    "dev",
                    "lo",
                    "nodad",
                ]);
            }
            Endpoint::OpenstackLl => {
                sh(&[
                    "ip",
                    "-n",
                    &self.ns.peer,
                    "addr",
                    "add",
                    "fe80::a9fe:a9fe/64",
                    "dev",
                    &served,
                    "nodad",
                ]);
            }
        }
        let addr: std::net::SocketAddr = match e {
            Endpoint::OpenstackLl => {
                let idx = self.peer_index(&served);
                std::net::SocketAddrV6::new(e.addr().parse().unwrap(), 80, 0, idx).into()
            }
            _ => std::net::SocketAddr::new(e.addr().parse().unwrap(), 80),
        };
        let ns = format!("/run/netns/{}", self.ns.peer);
        std::thread::spawn(move || {
            let f = std::fs::File::open(ns).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            std::net::TcpListener::bind(addr).unwrap()
        })
        .join()
        .unwrap()
    }

    /// The interface index of `name` in the peer namespace.
    fn peer_index(&self, name: &str) -> u32 {
        let o = Command::new("ip")
            .args(["-n", &self.ns.peer, "-o", "link", "show", "dev", name])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        text.split(':').next().unwrap().trim().parse().unwrap()
    }

    /// `preroot ARGS` inside the client namespace.
    fn preroot(&self, args: &[&str]) -> (Option<i32>, Value, String, Duration) {
        let started = Instant::now();
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns.client,
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
        (
            self.client_ip(&["-4", "-o", "addr", "show"]),
            self.client_ip(&["-o", "link", "show", "up"]),
        )
    }

    /// `ip -n CLIENT ARGS`'s output.
    fn client_ip(&self, args: &[&str]) -> String {
        let o = Command::new("ip")
            .args(["-n", &self.ns.client])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A sysctl of the client namespace.
    fn client_sysctl(&self, key: &str) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns.client, "sysctl", "-n", key])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// A machine tree for `run --phase fetch`: `cmdline`, DMI `vendor`, and the namespace's
    /// own `sys/class/net` and `proc/sys/net` (links: preroot reads them inside the
    /// namespace, where they are the namespace's).
    fn machine(&self, cmdline: &str, vendor: &str) -> TempDir {
        let machine = TempDir::new("netns-machine");
        let m = machine.path();
        std::fs::create_dir_all(m.join("proc/sys")).unwrap();
        std::fs::write(m.join("proc/cmdline"), cmdline).unwrap();
        std::fs::create_dir_all(m.join("sys/class/dmi/id")).unwrap();
        std::fs::write(m.join("sys/class/dmi/id/sys_vendor"), format!("{vendor}\n")).unwrap();
        std::os::unix::fs::symlink("/sys/class/net", m.join("sys/class/net")).unwrap();
        std::os::unix::fs::symlink("/proc/sys/net", m.join("proc/sys/net")).unwrap();
        machine
    }

    /// `preroot run --phase fetch` on `machine`; the context it wrote.
    fn fetch_phase(&self, machine: &Path) -> (Option<i32>, Value, String) {
        let state = TempDir::new("netns-run-state");
        let (code, _, err, _) = self.preroot(&[
            "run",
            "--phase",
            "fetch",
            "--root",
            machine.to_str().unwrap(),
            "--state-dir",
            state.path().to_str().unwrap(),
        ]);
        let ctx = std::fs::read(state.path().join("context.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        (code, ctx, err)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut c) = self.dnsmasq.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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
    assert!(lines[0].contains("no usable network within"), "{err}");
    for nic in ["eth0: DHCPv4 selecting", "eth1: DHCPv4 selecting"] {
        assert!(lines[0].contains(nic), "{nic} named: {err}");
    }
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

/// Azure's DHCP option 245 (the wire server's address) comes with our own lease when asked
/// for, as dnsmasq sends it (a private-use code it sends only when requested); the ready
/// report prefers it to 168.63.129.16 (`providers::azure::wireserver_url`, unit-tested).
#[test]
fn option_245_in_the_lease() {
    require!("option_245_in_the_lease"; root, "ip", "dnsmasq");
    let w = World::new("w", 1, 0, Dhcp::Azure);
    let (code, lease, err, _) = w.preroot(&["net", "--json", "--timeout", "10"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lease["option_245"], "10.77.0.1", "{lease}");
    let plain = World::new("v", 1, 0, Dhcp::Router);
    let (code, lease, err, _) = plain.preroot(&["net", "--json", "--timeout", "10"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lease.get("option_245"), None, "{lease}");
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
/// is fake (command line, DMI) except `sys/class/net` and `proc/sys/net`, links to the
/// namespace's own.
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
        let machine = w.machine(cmdline, "Amazon EC2");
        let (code, ctx, err) = w.fetch_phase(machine.path());
        assert_eq!(code, Some(0), "case {cmdline}: {err}");
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

/// The links are left as found, IPv6 included: no global IPv6 address, no route we added,
/// optimistic DAD off again, every NIC down.
fn assert_put_back6(w: &World, case: &str, nics: usize) {
    assert_put_back(w, case);
    let global = w.client_ip(&["-6", "-o", "addr", "show", "scope", "global"]);
    assert!(global.trim().is_empty(), "case {case}: IPv6 left: {global}");
    let routes = w.client_ip(&["-6", "route", "show"]);
    assert!(
        !routes.contains("fd00:ec2::254") && !routes.contains("default"),
        "case {case}: IPv6 routes left: {routes}"
    );
    for i in 0..nics {
        for key in ["optimistic_dad", "use_optimistic"] {
            let v = w.client_sysctl(&format!("net.ipv6.conf.eth{i}.{key}"));
            assert_eq!(v, "0", "case {case}: eth{i} {key} not put back");
        }
    }
}

/// The network stage's report (`extra.dhcp`) and the one NIC entry of `iface`.
fn nic_report<'a>(ctx: &'a Value, iface: &str) -> &'a Value {
    ctx["extra"]["dhcp"]["nics"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["iface"] == iface))
        .unwrap_or(&Value::Null)
}

/// IPv6-only (no DHCPv4): the router's M flag asks for DHCPv6, EC2's IMDSv2 answers at
/// [fd00:ec2::254] through the leased address. The `Host:` header is the bracketed address.
#[test]
fn ipv6_only_ec2_through_dhcpv6() {
    require!("ipv6_only_ec2_through_dhcpv6"; root, "ip", "dnsmasq");
    let mut w = World::with_v6("6a", 1, 0, Dhcp::None, V6::Stateful);
    let input = ec2_fixture("ec2-default-primary-nic-v4v6");
    w.serve_at(&input, Mode::Ec2Token, &[Endpoint::V4, Endpoint::Ec2V6]);
    let (code, ctx, err, took) = w.context("ec2", "15", &[]);
    assert_eq!(code, Some(0), "{err}");
    let id = std::fs::read_to_string(input.join("latest/meta-data/instance-id")).unwrap();
    assert_eq!(ctx["instance_id"], id.trim());
    let d = &ctx["extra"]["dhcp"];
    eprintln!("IPv6-only, DHCPv6: wall {took:?}, {d}");
    assert_eq!(
        (&d["family"], &d["method"], &d["target"]),
        (
            &Value::from("ipv6"),
            &Value::from("dhcp6"),
            &Value::from("[fd00:ec2::254]:80")
        ),
        "{d}"
    );
    assert!(d["address"].as_str().unwrap().starts_with("fd77::1"), "{d}");
    assert_eq!(d["dns"][0], "fd77::53", "{d}");
    assert_eq!(ctx["source"]["location"], "http://[fd00:ec2::254]/");
    let n = nic_report(&ctx, "eth0");
    assert_eq!(n["ra"]["managed"], true, "{n}");
    assert_eq!(n["dhcp6"]["mode"], "stateful", "{n}");
    assert_eq!(n["dhcp6"]["rapid_commit"], true, "{n}");
    assert!(
        n["dhcp6"]["server_duid"]
            .as_str()
            .is_some_and(|s| s.len() >= 8),
        "{n}"
    );
    assert!(
        n["ipv6"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["origin"] == "dhcp6"),
        "{n}"
    );
    let v6 = w.more.first().unwrap();
    assert_eq!(v6.requests()[0], "PUT /latest/api/token");
    assert!(
        v6.hosts
            .lock()
            .unwrap()
            .iter()
            .all(|h| h == "[fd00:ec2::254]"),
        "Host headers: {:?}",
        v6.hosts.lock().unwrap()
    );
    assert!(
        w.server.as_ref().unwrap().requests().is_empty(),
        "IPv4 unused"
    );
    assert_put_back6(&w, "ipv6 only dhcpv6", 1);
}

/// IPv6-only with SLAAC alone (no DHCPv6 at all): GCE at [fd20:ce::254].
#[test]
fn ipv6_only_slaac_gce() {
    require!("ipv6_only_slaac_gce"; root, "ip", "dnsmasq");
    let mut w = World::with_v6("6b", 1, 0, Dhcp::None, V6::Slaac);
    let input = fixtures().join("gce/gce-userdata-base64/input");
    w.serve_at(&input, Mode::Gce, &[Endpoint::GceV6]);
    let (code, ctx, err, took) = w.context("gce", "15", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ctx["instance_id"], "12345");
    let d = &ctx["extra"]["dhcp"];
    eprintln!("IPv6-only, SLAAC: wall {took:?}, {d}");
    assert_eq!(
        (&d["family"], &d["method"]),
        (&Value::from("ipv6"), &Value::from("slaac"))
    );
    assert_eq!(
        d["address"], "fd77::ff:fe00:1/64",
        "EUI-64 of 02:00:00:00:00:01"
    );
    let n = nic_report(&ctx, "eth0");
    assert_eq!(
        (&n["ra"]["managed"], &n["ra"]["other"]),
        (&Value::from(false), &Value::from(false)),
        "{n}"
    );
    assert!(
        n["ra"]["router"]
            .as_str()
            .is_some_and(|r| r.starts_with("fe80::")),
        "{n}"
    );
    assert!(n.get("dhcp6").is_none(), "no DHCPv6 without M or O: {n}");
    assert!(
        d["lease_ms"].as_u64().unwrap() < 1000,
        "our RS beats the kernel's, sent after DAD: {d}"
    );
    assert_put_back6(&w, "slaac gce", 1);
}

/// OpenStack's link-local metadata address answers on one NIC of four, with neither DHCP nor
/// a router anywhere: the NIC it answers on becomes the URL's zone.
#[test]
fn openstack_link_local_on_the_right_nic() {
    require!("openstack_link_local_on_the_right_nic"; root, "ip", "dnsmasq");
    let mut w = World::with_v6("6c", 4, 2, Dhcp::None, V6::None);
    let case = fixtures().join("openstack/cloudinit-metadata-service");
    w.serve_at(&case.join("input"), Mode::Plain, &[Endpoint::OpenstackLl]);
    let (code, ctx, err, took) = w.context("openstack", "15", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ctx["instance_id"], "b0fa911b-69d4-4476-bbe2-1c92bff6535c");
    let d = &ctx["extra"]["dhcp"];
    eprintln!("OpenStack link-local, 4 NICs: wall {took:?}, {d}");
    assert_eq!(d["iface"], "eth2", "{d}");
    assert_eq!(
        (&d["family"], &d["method"]),
        (&Value::from("ipv6"), &Value::from("link-local"))
    );
    assert_eq!(
        ctx["source"]["location"],
        "http://[fe80::a9fe:a9fe%25eth2]/"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_put_back6(&w, "openstack link-local", 4);
}

/// Dual stack, one family dead: the fetch goes through the other, in about the time that
/// family needs; and an IPv4 lease that does not reach the service gives way to IPv6.
#[test]
fn dual_stack_one_family_dead() {
    require!("dual_stack_one_family_dead"; root, "ip", "dnsmasq");
    let input = ec2_fixture("ec2-default-primary-nic-v4v6");
    for (case, dhcp, v6, endpoints, family, limit) in [
        (
            "DHCPv4 dead, SLAAC works",
            Dhcp::None,
            V6::Slaac,
            &[Endpoint::V4, Endpoint::Ec2V6][..],
            "ipv6",
            Duration::from_secs(3),
        ),
        (
            "no router advertisement, DHCPv4 works",
            Dhcp::Router,
            V6::None,
            &[Endpoint::V4, Endpoint::Ec2V6][..],
            "ipv4",
            Duration::from_secs(2),
        ),
        (
            "DHCPv4 lease, the service on IPv6 only",
            Dhcp::Router,
            V6::Stateful,
            &[Endpoint::Ec2V6][..],
            "ipv6",
            Duration::from_secs(3),
        ),
    ] {
        let mut w = World::with_v6("6d", 2, 1, dhcp, v6);
        w.serve_at(&input, Mode::Ec2Token, endpoints);
        let (code, ctx, err, took) = w.context("ec2", "15", &[]);
        assert_eq!(code, Some(0), "case {case}: {err}");
        let d = &ctx["extra"]["dhcp"];
        eprintln!("{case}: wall {took:?}, {d}");
        assert_eq!(d["family"], family, "case {case}: {d}");
        assert_eq!(d["iface"], "eth1", "case {case}");
        assert!(took < limit, "case {case}: took {took:?}");
        assert!(!w.all_requests().is_empty(), "case {case}");
        assert_put_back6(&w, case, 2);
    }
}

/// Static `ip=` for the fetch, IPv4 and IPv6, without any DHCP server or router: the NIC
/// is configured as given, the service read, and (`ip=` given) the NIC stays configured.
#[test]
fn static_ip_for_the_fetch() {
    require!("static_ip_for_the_fetch"; root, "ip", "dnsmasq");
    let input = ec2_fixture("ec2-default-ipv4-only-nic");
    for (case, cmdline, endpoint, address, kept) in [
        (
            "IPv4",
            "ip=10.77.0.5::10.77.0.1:255.255.255.0:host:eth1:none preroot.timeout=10",
            Endpoint::V4,
            "10.77.0.5/24",
            "inet 10.77.0.5/24",
        ),
        (
            "IPv6",
            "ip=[fd77::5]::[fd77::1]:64:host:eth1:none preroot.timeout=10",
            Endpoint::Ec2V6,
            "fd77::5/64",
            "inet6 fd77::5/64",
        ),
    ] {
        let mut w = World::with_v6("6e", 2, 1, Dhcp::None, V6::None);
        w.serve_at(&input, Mode::Ec2Token, &[endpoint]);
        let machine = w.machine(cmdline, "Amazon EC2");
        let started = Instant::now();
        let (code, ctx, err) = w.fetch_phase(machine.path());
        let took = started.elapsed();
        assert_eq!(code, Some(0), "case {case}: {err}");
        assert_eq!(ctx["errors"], serde_json::json!([]), "case {case}: {ctx}");
        let d = &ctx["extra"]["dhcp"];
        eprintln!("static {case}: wall {took:?}, {d}");
        assert_eq!(
            (&d["iface"], &d["method"], &d["address"]),
            (
                &Value::from("eth1"),
                &Value::from("static"),
                &Value::from(address)
            ),
            "case {case}: {d}"
        );
        assert_eq!(
            d["candidates"],
            serde_json::json!(["eth1"]),
            "case {case}: ip= names the NIC"
        );
        let addrs = w.client_ip(&["-o", "addr", "show", "dev", "eth1"]);
        assert!(addrs.contains(kept), "case {case}: ip= keeps it: {addrs}");
        assert!(took < Duration::from_secs(3), "case {case}: took {took:?}");
    }
}

/// No router, no DHCP, no service: the stage ends at its deadline with one line that names
/// each NIC's fate, both families.
#[test]
fn no_router_no_dhcp_one_line_per_nic() {
    require!("no_router_no_dhcp_one_line_per_nic"; root, "ip", "dnsmasq");
    let w = World::with_v6("6f", 2, 0, Dhcp::None, V6::None);
    let (code, ctx, err, took) = w.context("ec2", "3", &[]);
    assert_eq!((code, ctx), (Some(1), Value::Null), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("preroot: ") && !l.contains(": info") && !l.contains(": debug"))
        .filter(|l| !l.starts_with("preroot: warn"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    eprintln!("{}", lines[0]);
    for nic in ["eth0", "eth1"] {
        assert!(
            lines[0].contains(&format!("{nic}: DHCPv4 selecting"))
                && lines[0].contains("no router advertisement"),
            "{nic}: {}",
            lines[0]
        );
    }
    assert!(took < Duration::from_millis(4500), "took {took:?}");
    assert_put_back6(&w, "no router", 2);
}

/// `preroot net` on an IPv6-only link with the O flag: SLAAC, and DHCPv6 information
/// (DNS) from an Information-Request; the configuration is kept and printed.
#[test]
fn net_command_ipv6_stateless() {
    require!("net_command_ipv6_stateless"; root, "ip", "dnsmasq");
    let w = World::with_v6("6g", 1, 0, Dhcp::None, V6::Stateless);
    let (code, lease, err, _) = w.preroot(&["net", "--json", "--timeout", "10"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (&lease["family"], &lease["method"]),
        (&Value::from("ipv6"), &Value::from("slaac"))
    );
    let addrs = w.client_ip(&["-6", "-o", "addr", "show", "scope", "global"]);
    assert!(addrs.contains("fd77::ff:fe00:1"), "kept: {addrs}");
    let n = &lease["nics"][0];
    assert_eq!(n["ra"]["other"], true, "{n}");
}

/// Benchmark of the IPv6-only column (figures printed, only sanity asserted): 1, 2, 4 and
/// 8 NICs, the router (RA with M, DHCPv6) on the last one, EC2 at [fd00:ec2::254].
#[test]
fn bench_nic_counts_ipv6_only() {
    require!("bench_nic_counts_ipv6_only"; root, "ip", "dnsmasq");
    for n in [1usize, 2, 4, 8] {
        let mut w = World::with_v6("z6", n, n - 1, Dhcp::None, V6::Stateful);
        w.serve_at(
            &ec2_fixture("ec2-default-primary-nic-v4v6"),
            Mode::Ec2Token,
            &[Endpoint::Ec2V6],
        );
        let (code, ctx, err, took) = w.context("ec2", "15", &[]);
        assert_eq!(code, Some(0), "{err}");
        let d = &ctx["extra"]["dhcp"];
        assert_eq!(d["family"], "ipv6");
        let nic = nic_report(&ctx, &format!("eth{}", n - 1));
        eprintln!(
            "BENCH6 nics={n} ra_ms={} dhcp6_ms={} lease_ms={} metadata_ms={} total_ms={} wall_ms={}",
            nic["ra_ms"],
            nic["dhcp6"]["ms"],
            d["lease_ms"],
            d["metadata_ms"],
            d["total_ms"],
            took.as_millis()
        );
    }
}

/// `rd.neednet=1` after an IPv6 win: the winning NIC keeps its DHCPv6 address (and the
/// kernel's RA routes), the host route that pinned the service is gone, the other NIC is down
/// again, and the sysctls are back, the winner's included.
#[test]
fn ipv6_win_kept_with_rd_neednet() {
    require!("ipv6_win_kept_with_rd_neednet"; root, "ip", "dnsmasq");
    let mut w = World::with_v6("6k", 2, 1, Dhcp::None, V6::Stateful);
    let input = ec2_fixture("ec2-default-primary-nic-v4v6");
    w.serve_at(&input, Mode::Ec2Token, &[Endpoint::Ec2V6]);
    let machine = w.machine("preroot.timeout=10 rd.neednet=1", "Amazon EC2");
    let (code, ctx, err) = w.fetch_phase(machine.path());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ctx["errors"], serde_json::json!([]), "{ctx}");
    let d = &ctx["extra"]["dhcp"];
    assert_eq!(
        (&d["iface"], &d["method"]),
        (&Value::from("eth1"), &Value::from("dhcp6"))
    );
    let kept = w.client_ip(&["-6", "-o", "addr", "show", "dev", "eth1", "scope", "global"]);
    assert!(kept.contains("inet6 fd77::1"), "the lease is kept: {kept}");
    let routes = w.client_ip(&["-6", "route", "show"]);
    assert!(
        !routes.contains("fd00:ec2::254"),
        "the pin is removed: {routes}"
    );
    let (_, up) = w.client_state();
    assert!(
        up.contains("eth1") && !up.contains("eth0"),
        "the loser is down: {up}"
    );
    for nic in ["eth0", "eth1"] {
        let v = w.client_sysctl(&format!("net.ipv6.conf.{nic}.optimistic_dad"));
        assert_eq!(v, "0", "{nic}: optimistic_dad put back");
    }
}
