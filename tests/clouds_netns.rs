//! The reach rules of issue 20's platforms on a real network, in namespaces only (root, `ip`,
//! `dnsmasq`): DigitalOcean's link-local address on the first NIC (no DHCP anywhere),
//! Scaleway's user data from a privileged source port to 169.254.42.42 over a DHCP lease,
//! and CloudStack's metadata and password servers found at the lease's DHCP server.
//!
//! Each test builds its own [`World`]: a client namespace holding the veth ends preroot sees,
//! a peer namespace holding the other ends, the platform's addresses and servers (threads
//! that enter the peer namespace with setns(2) before binding), and dnsmasq where the world
//! has DHCP. preroot runs with `ip netns exec <client>` and the platform's default
//! addresses: nothing is created in the machine's own namespace, there is no route out of
//! the two, and no packet leaves them.

#[path = "common/cloud.rs"]
mod cloud;
mod common;

use cloud::{Handler, Server};
use common::netns::{sh, Namespaces};
use common::TempDir;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct World {
    ns: Namespaces,
    dnsmasq: Option<Child>,
    dir: TempDir,
    servers: Vec<Server>,
}

impl World {
    /// `nics` veth pairs `eth<i>` (client) / `peer<i>` (peer, up).
    fn new(tag: &str, nics: usize) -> World {
        let w = World {
            ns: Namespaces::new("pc", tag),
            dnsmasq: None,
            dir: TempDir::new("clouds-netns"),
            servers: Vec::new(),
        };
        for i in 0..nics {
            w.ns.veth(i, None, false);
        }
        w
    }

    /// `ip -n PEER addr add CIDR dev DEV`.
    fn peer_addr(&self, cidr: &str, dev: &str) {
        sh(&["ip", "-n", &self.ns.peer, "addr", "add", cidr, "dev", dev]);
    }

    /// dnsmasq on `peer<on>` (10.77.0.1/24, router 10.77.0.1), waited for until it listens.
    fn dhcp(&mut self, on: usize) {
        let p = format!("peer{on}");
        self.peer_addr("10.77.0.1/24", &p);
        let dir = self.dir.path();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns.peer,
                "dnsmasq",
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
            ])
            .args([
                "--port=0",
                "--conf-file=/dev/null",
                "--no-ping",
                "--bind-interfaces",
                "--user=root",
            ])
            .arg(format!("--interface={p}"))
            .arg("--dhcp-range=10.77.0.10,10.77.0.200,255.255.255.0,1h")
            .arg(format!("--dhcp-leasefile={}", dir.join("leases").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        self.dnsmasq = Some(child);
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let udp = Command::new("ip")
                .args(["netns", "exec", &self.ns.peer, "cat", "/proc/net/udp"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&udp.stdout).contains(":0043 ") || Instant::now() > until {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Serves `handler` on `bind` inside the peer namespace; its index in `servers`.
    fn serve(&mut self, bind: &str, handler: Handler) -> usize {
        let ns = format!("/run/netns/{}", self.ns.peer);
        let bind = bind.to_string();
        let listener = std::thread::spawn(move || {
            let f = std::fs::File::open(ns).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            std::net::TcpListener::bind(bind).unwrap()
        })
        .join()
        .unwrap();
        self.servers.push(Server::serve(listener, handler));
        self.servers.len() - 1
    }

    /// `preroot -v context --platform P --timeout T` inside the client namespace.
    fn context(
        &self,
        platform: &str,
        timeout: &str,
    ) -> (Option<i32>, Value, String, Duration, TempDir) {
        let state = TempDir::new("clouds-netns-state");
        let started = Instant::now();
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns.client,
                env!("CARGO_BIN_EXE_preroot"),
                "-v",
                "context",
            ])
            .args([
                "--platform",
                platform,
                "--timeout",
                timeout,
                "--state-dir",
                state.path().to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
            stderr,
            took,
            state,
        )
    }

    /// Left as found: no IPv4 address and no link up in the client namespace.
    fn assert_put_back(&self, case: &str) {
        let out = |a: &[&str]| {
            let o = Command::new("ip")
                .args(["-n", &self.ns.client])
                .args(a)
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let addrs = out(&["-4", "-o", "addr", "show"]);
        assert!(
            !addrs.contains("inet 169.254") && !addrs.contains("inet 10.77"),
            "case {case}: address left: {addrs}"
        );
        let up = out(&["-o", "link", "show", "up"]);
        assert!(!up.contains("eth"), "case {case}: link left up: {up}");
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

/// Error lines of a `-v` run (not its info, debug and warning lines).
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.starts_with("preroot: ")
                && !["info", "debug", "warn"]
                    .iter()
                    .any(|k| l.starts_with(&format!("preroot: {k}")))
        })
        .collect()
}

#[test]
fn digitalocean_link_local_on_the_first_nic() {
    require!("digitalocean_link_local_on_the_first_nic"; root, "ip");
    let mut w = World::new("do", 2);
    // DigitalOcean's metadata service is on-link in the droplet's link-local range.
    w.peer_addr("169.254.169.254/16", "peer0");
    let s = w.serve("169.254.169.254:80", cloud::platform("digitalocean"));
    let (code, ctx, err, took, _state) = w.context("digitalocean", "10");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ctx["instance_id"], "22532410");
    let ll = &ctx["extra"]["link_local"];
    assert_eq!(ll["iface"], "eth0", "the first NIC: {ll}");
    let addr = ll["address"].as_str().unwrap();
    let ip: std::net::Ipv4Addr = addr.strip_suffix("/16").unwrap().parse().unwrap();
    let [a, b, x, _] = ip.octets();
    assert!(
        a == 169 && b == 254 && (1..=168).contains(&x),
        "address {addr}"
    );
    let log = w.servers[s].full_log();
    assert_eq!(
        log[0].peer.ip(),
        std::net::IpAddr::V4(ip),
        "the request came from it"
    );
    assert!(err.contains("no ARP probe"), "{err}");
    // No RFC 3927 probe: the address is usable at once (the probe alone takes 4-7 s).
    assert!(ll["reach_ms"].as_u64().unwrap() < 1000, "{ll}");
    eprintln!("digitalocean: {took:?}, {ll}");
    w.assert_put_back("digitalocean");
}

#[test]
fn digitalocean_without_a_service_fails_within_the_deadline() {
    require!("digitalocean_without_a_service_fails_within_the_deadline"; root, "ip");
    let w = World::new("dx", 1);
    w.peer_addr("169.254.169.254/16", "peer0");
    let (code, _ctx, err, took, _state) = w.context("digitalocean", "3");
    assert_eq!(code, Some(1));
    let lines = error_lines(&err);
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("does not reach 169.254.169.254:80"),
        "{err}"
    );
    assert!(took < Duration::from_millis(4500), "took {took:?}");
    w.assert_put_back("digitalocean without a service");
}

#[test]
fn scaleway_user_data_from_a_privileged_port() {
    require!("scaleway_user_data_from_a_privileged_port"; root, "ip", "dnsmasq");
    let mut w = World::new("sc", 1);
    w.dhcp(0);
    w.peer_addr("169.254.42.42/32", "lo");
    let s = w.serve("169.254.42.42:80", cloud::platform("scaleway"));
    let (code, ctx, err, took, _state) = w.context("scaleway", "10");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ctx["instance_id"], "11111111-1111-1111-1111-111111111111");
    let ud = std::fs::read_to_string(ctx["user_data"]["path"].as_str().unwrap()).unwrap();
    assert_eq!(ud, "#cloud-config\nhostname: from-userdata\n");
    let log = w.servers[s].full_log();
    let port = |path: &str| log.iter().find(|r| r.path == path).unwrap().peer.port();
    assert!(
        port("/user_data/cloud-init") < 1024,
        "user data from port {}",
        port("/user_data/cloud-init")
    );
    assert!(port("/conf") >= 1024, "the document from any port");
    assert_eq!(ctx["extra"]["dhcp"]["iface"], "eth0");
    eprintln!(
        "scaleway: {took:?}, user data from source port {}",
        port("/user_data/cloud-init")
    );
    w.assert_put_back("scaleway");
}

#[test]
fn cloudstack_finds_its_servers_at_the_dhcp_server() {
    require!("cloudstack_finds_its_servers_at_the_dhcp_server"; root, "ip", "dnsmasq");
    let mut w = World::new("cs", 2);
    w.dhcp(1);
    let md = w.serve("10.77.0.1:80", cloud::platform("cloudstack"));
    let pw = w.serve(
        "10.77.0.1:8080",
        cloud::password_server("cloudstack", "", "/"),
    );
    let (code, ctx, err, took, _state) = w.context("cloudstack", "10");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ctx["instance_id"], "fd7e1d72-b0e1-4b0a-9a2f-2e0f5d2a1c11");
    assert_eq!(ctx["source"]["location"], "http://10.77.0.1/");
    assert_eq!(ctx["extra"]["dhcp"]["server"], "10.77.0.1");
    assert_eq!(ctx["extra"]["dhcp"]["iface"], "eth1");
    let password = std::fs::read_to_string(ctx["password"]["path"].as_str().unwrap()).unwrap();
    assert_eq!(password, "SekritSquirrel");
    assert!(
        !err.contains("SekritSquirrel"),
        "the password is never logged"
    );
    let asked: Vec<Option<String>> = w.servers[pw]
        .full_log()
        .iter()
        .map(|r| r.header("domu_request").map(str::to_string))
        .collect();
    assert_eq!(
        asked,
        [
            Some("send_my_password".into()),
            Some("saved_password".into())
        ]
    );
    assert!(w.servers[md]
        .requests()
        .contains(&"GET /latest/meta-data/instance-id".to_string()));
    eprintln!("cloudstack: {took:?}, {}", ctx["extra"]["dhcp"]);
    w.assert_put_back("cloudstack");
}

#[test]
fn cloudstack_lease_without_a_metadata_server_fails_within_the_deadline() {
    require!("cloudstack_lease_without_a_metadata_server_fails_within_the_deadline"; root, "ip", "dnsmasq");
    let mut w = World::new("cx", 1);
    w.dhcp(0);
    let (code, _ctx, err, took, _state) = w.context("cloudstack", "3");
    assert_eq!(code, Some(1));
    let lines = error_lines(&err);
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("does not reach 10.77.0.1:80"), "{err}");
    assert!(took < Duration::from_millis(4500), "took {took:?}");
    w.assert_put_back("cloudstack without a metadata server");
}
