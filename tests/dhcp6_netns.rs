//! The DHCPv6 client (`dhcp6::client`) and socket (`dhcp6::socket`) against dnsmasq, in
//! namespaces only (root, `ip`, `dnsmasq`).
//!
//! Each test builds its own world: a client namespace holding the veth ends `eth0..` (MAC
//! `02:00:00:00:00:0N`, duplicate address detection on, as in an initramfs), a peer
//! namespace holding `peer0..` (DAD off, `fd77::1/64` on the served one) and dnsmasq with
//! `--enable-ra` and a DHCPv6 range (or `ra-stateless`) there. The client runs in a thread
//! of this process that has entered the client namespace (setns(2)) before opening its
//! sockets, driven by one poll loop over every NIC the way the network stage drives
//! DHCPv4. Nothing is created in the machine's own namespace; no packet leaves the two.
//!
//! `PREROOT_DHCP6_CAPTURE=DIR` writes every message of each exchange to
//! `DIR/<case>/NN-{in,out}-<type>.bin`: how `tests/data/dhcp6/` was made (its README).

mod common;

use common::netns::{sh, Namespaces};
use common::TempDir;
use preroot::dhcp6::client::{Client, Event, Lease6, Mode, RetryConfig};
use preroot::dhcp6::socket::Dhcp6Socket;
use preroot::dhcp6::wire::{self, DuidKind, MessageType, StatusCode};
use std::net::Ipv6Addr;
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What dnsmasq serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    /// Addresses fd77::100..1ff, preference 0.
    Range,
    /// The same with `--dhcp-authoritative`: preference 255.
    Authoritative,
    /// One address only (fd77::100), for NoAddrsAvail.
    OneAddress,
    /// `ra-stateless`: SLAAC plus Information-Request.
    Stateless,
}

struct World {
    ns: Namespaces,
    dnsmasq: Option<Child>,
    dir: TempDir,
}

fn mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, 0, u8::try_from(i + 1).unwrap()]
}

impl World {
    /// `nics` veth pairs, dnsmasq on pair `served`.
    fn new(tag: &str, nics: usize, served: usize, server: Server) -> World {
        let mut w = World {
            ns: Namespaces::new("p6", tag),
            dnsmasq: None,
            dir: TempDir::new("dhcp6"),
        };
        for i in 0..nics {
            let m = mac(i)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            w.ns.veth(i, Some(&m), true);
        }
        sh(&["ip", "-n", &w.ns.client, "link", "set", "lo", "up"]);
        let p = format!("peer{served}");
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
        let range = match server {
            Server::Range | Server::Authoritative => "--dhcp-range=fd77::100,fd77::1ff,64,1h",
            Server::OneAddress => "--dhcp-range=fd77::100,fd77::100,64,1h",
            Server::Stateless => "--dhcp-range=::,constructor:peer0,ra-stateless",
        };
        let dir = w.dir.path();
        let mut args = vec![
            "netns".to_string(),
            "exec".into(),
            w.ns.peer.clone(),
            "dnsmasq".into(),
            "--keep-in-foreground".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--port=0".into(),
            "--conf-file=/dev/null".into(),
            format!("--interface={p}"),
            "--bind-interfaces".into(),
            "--enable-ra".into(),
            range.into(),
            "--dhcp-option=option6:dns-server,[fd77::53]".into(),
            "--dhcp-option=option6:domain-search,example.com,lab.example.org".into(),
            format!("--dhcp-leasefile={}", dir.join("leases").display()),
            format!("--pid-file={}", dir.join("pid").display()),
            "--user=root".into(),
        ];
        if server == Server::Authoritative {
            args.push("--dhcp-authoritative".into());
        }
        let child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        w.dnsmasq = Some(child);
        // Wait until it listens on UDP port 547 (0x0223) in the peer namespace.
        let until = Instant::now() + Duration::from_secs(5);
        while !sh(&["ip", "netns", "exec", &w.ns.peer, "cat", "/proc/net/udp6"]).contains(":0223 ")
        {
            assert!(Instant::now() < until, "dnsmasq never listened on 547");
            std::thread::sleep(Duration::from_millis(20));
        }
        w
    }

    /// Sets the client's links up without waiting.
    fn links_up(&self, nics: usize) {
        for i in 0..nics {
            sh(&[
                "ip",
                "-n",
                &self.ns.client,
                "link",
                "set",
                &format!("eth{i}"),
                "up",
            ]);
        }
    }

    /// Waits until `eth{i}` has a link-local address that finished DAD.
    fn wait_dad(&self, i: usize) {
        let dev = format!("eth{i}");
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let all = sh(&[
                "ip",
                "-n",
                &self.ns.client,
                "-6",
                "addr",
                "show",
                "dev",
                &dev,
            ]);
            let tentative = sh(&[
                "ip",
                "-n",
                &self.ns.client,
                "-6",
                "addr",
                "show",
                "dev",
                &dev,
                "tentative",
            ]);
            if all.contains("fe80::") && tentative.trim().is_empty() {
                return;
            }
            assert!(Instant::now() < until, "{dev}: DAD never finished: {all}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ifindex(&self, i: usize) -> u32 {
        let out = sh(&[
            "ip",
            "-n",
            &self.ns.client,
            "-o",
            "link",
            "show",
            "dev",
            &format!("eth{i}"),
        ]);
        out.split(':').next().unwrap().trim().parse().unwrap()
    }

    /// Runs `f` in a thread inside the client namespace.
    fn in_client<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = format!("/run/netns/{}", self.ns.client);
        std::thread::spawn(move || {
            let file = std::fs::File::open(ns).unwrap();
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    /// dnsmasq's lease file once it holds `what` (it is written a moment after the REPLY),
    /// or as it is after 3 s.
    fn leases_with(&self, what: &str) -> String {
        let until = Instant::now() + Duration::from_secs(3);
        loop {
            let l = std::fs::read_to_string(self.dir.path().join("leases")).unwrap_or_default();
            if l.contains(what) || Instant::now() > until {
                return l;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// One NIC of the race: its client, and what crossed the wire in order.
struct Nic {
    name: String,
    ifindex: u32,
    client: Client,
    /// (received, payload)
    log: Vec<(bool, Vec<u8>)>,
    events: Vec<Event>,
    send_errors: Vec<String>,
}

/// The network stage's loop, for DHCPv6: every NIC's client and socket in one `poll`, until
/// every client is bound or past the deadline. Returns the NICs as they ended.
fn race(nics: Vec<(String, u32, [u8; 6], Mode, u64)>, timeout: Duration) -> Vec<Nic> {
    let t0 = Instant::now();
    let end = t0 + timeout;
    let mut socks = Vec::new();
    let mut slots = Vec::new();
    for (name, ifindex, mac, mode, seed) in nics {
        socks.push(Dhcp6Socket::open(&name, ifindex).unwrap());
        slots.push(Nic {
            name,
            ifindex,
            client: Client::new(mac, mode, seed, t0, RetryConfig::default()).with_deadline(end),
            log: Vec::new(),
            events: Vec::new(),
            send_errors: Vec::new(),
        });
    }
    loop {
        let now = Instant::now();
        for (nic, sock) in slots.iter_mut().zip(&socks) {
            if let Some(p) = nic.client.poll_transmit(now) {
                if let Err(e) = sock.send(&p) {
                    nic.send_errors.push(e.to_string());
                }
                nic.log.push((false, p));
            }
        }
        let Some(next) = slots.iter().filter_map(|n| n.client.poll_at()).min() else {
            break;
        };
        let wait = next.saturating_duration_since(Instant::now());
        let fds: Vec<_> = socks.iter().map(|s| s.as_fd()).collect();
        let ready = preroot::sys::packet::poll_readable(&fds, wait).unwrap();
        for ((nic, sock), ready) in slots.iter_mut().zip(&socks).zip(ready) {
            if !ready {
                continue;
            }
            for (p, from) in sock.drain().unwrap() {
                assert!(
                    from.ip().segments()[0] == 0xfe80 && from.scope_id() == nic.ifindex,
                    "{}: reply from {from}",
                    nic.name
                );
                let e = nic.client.process(&p, Instant::now());
                nic.log.push((true, p));
                nic.events.push(e);
            }
        }
    }
    slots
}

/// Writes the exchange under `$PREROOT_DHCP6_CAPTURE/<case>/` when asked to.
fn capture(case: &str, nic: &Nic) {
    let Ok(dir) = std::env::var("PREROOT_DHCP6_CAPTURE") else {
        return;
    };
    let dir = std::path::Path::new(&dir).join(case);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (received, p)) in nic.log.iter().enumerate() {
        let kind = wire::header(p).map(|h| h.0.to_string()).unwrap_or_default();
        let name = format!(
            "{i:02}-{}-{}.bin",
            if *received { "in" } else { "out" },
            kind.to_lowercase()
        );
        std::fs::write(dir.join(name), p).unwrap();
    }
}

fn kinds(nic: &Nic) -> Vec<(bool, MessageType)> {
    nic.log
        .iter()
        .map(|(r, p)| (*r, wire::header(p).unwrap().0))
        .collect()
}

fn lease(nic: &Nic) -> Lease6 {
    nic.client.lease().cloned().unwrap_or_else(|| {
        panic!(
            "{}: no lease: {} (events {:?}, send errors {:?})",
            nic.name,
            nic.client.describe(),
            nic.events,
            nic.send_errors
        )
    })
}

/// One NIC, served, after DAD: the exchange with `mode`.
fn one(case: &str, server: Server, mode: Mode, seed: u64) -> (World, Nic) {
    let w = World::new(case, 1, 0, server);
    w.links_up(1);
    w.wait_dad(0);
    let idx = w.ifindex(0);
    let mut nics = w.in_client(move || {
        race(
            vec![("eth0".into(), idx, mac(0), mode, seed)],
            Duration::from_secs(10),
        )
    });
    let nic = nics.pop().unwrap();
    capture(case, &nic);
    (w, nic)
}

fn assert_stateful(case: &str, l: &Lease6) {
    let a = l
        .addresses
        .first()
        .unwrap_or_else(|| panic!("case {case}: no address"));
    let seg = a.address.segments();
    assert_eq!(
        seg[..7],
        [0xfd77, 0, 0, 0, 0, 0, 0],
        "case {case}: {}",
        a.address
    );
    assert!(
        (0x100..=0x1ff).contains(&seg[7]),
        "case {case}: {}",
        a.address
    );
    assert_eq!((a.preferred, a.valid), (3600, 3600), "case {case}");
    assert!(
        l.t1 > 0 && l.t1 <= l.t2,
        "case {case}: T1 {} T2 {}",
        l.t1,
        l.t2
    );
    assert_eq!(
        l.dns,
        ["fd77::53".parse::<Ipv6Addr>().unwrap()],
        "case {case}"
    );
    assert_eq!(l.domains, ["example.com", "lab.example.org"], "case {case}");
    assert!(
        matches!(l.server.kind(), DuidKind::Llt { hw_type: 1, lladdr, .. } if lladdr.len() == 6),
        "case {case}: server {}",
        l.server
    );
    assert!(l.cuts.is_empty(), "case {case}: {:?}", l.cuts);
    assert!(!l.stateless, "case {case}");
}

#[test]
fn rapid_commit_two_messages() {
    require!("rapid_commit_two_messages"; root, "ip", "dnsmasq");
    let (w, nic) = one(
        "rapid-commit",
        Server::Range,
        Mode::Stateful { rapid_commit: true },
        1,
    );
    let l = lease(&nic);
    assert_stateful("rapid-commit", &l);
    assert!(l.rapid_commit);
    assert_eq!(
        kinds(&nic),
        [(false, MessageType::Solicit), (true, MessageType::Reply)]
    );
    assert!(l.elapsed < Duration::from_millis(500), "{:?}", l.elapsed);
    // dnsmasq recorded the lease under our DUID-LL and IAID.
    let duid = nic.client.duid().to_hex();
    let leases = w.leases_with(&duid);
    assert!(leases.contains(&duid), "{duid} not in {leases}");
}

#[test]
fn four_messages_after_the_first_rt() {
    require!("four_messages_after_the_first_rt"; root, "ip", "dnsmasq");
    let (_w, nic) = one(
        "four-message",
        Server::Range,
        Mode::Stateful {
            rapid_commit: false,
        },
        2,
    );
    let l = lease(&nic);
    assert_stateful("four-message", &l);
    assert!(!l.rapid_commit);
    assert_eq!(l.preference, 0);
    assert_eq!(
        kinds(&nic),
        [
            (false, MessageType::Solicit),
            (true, MessageType::Advertise),
            (false, MessageType::Request),
            (true, MessageType::Reply)
        ]
    );
    // Preference 0: the client waited out the first RT (1 s + up to 10 %) for other servers.
    assert!(
        l.elapsed > Duration::from_secs(1) && l.elapsed < Duration::from_millis(1500),
        "{:?}",
        l.elapsed
    );
}

#[test]
fn preference_255_requests_at_once() {
    require!("preference_255_requests_at_once"; root, "ip", "dnsmasq");
    let (_w, nic) = one(
        "authoritative",
        Server::Authoritative,
        Mode::Stateful {
            rapid_commit: false,
        },
        3,
    );
    let l = lease(&nic);
    assert_stateful("authoritative", &l);
    assert_eq!(l.preference, 255);
    assert!(l.elapsed < Duration::from_millis(500), "{:?}", l.elapsed);
}

#[test]
fn stateless_information_request() {
    require!("stateless_information_request"; root, "ip", "dnsmasq");
    let (_w, nic) = one("stateless", Server::Stateless, Mode::Stateless, 4);
    let l = lease(&nic);
    assert!(l.stateless && l.addresses.is_empty());
    assert_eq!(l.dns, ["fd77::53".parse::<Ipv6Addr>().unwrap()]);
    assert_eq!(l.domains, ["example.com", "lab.example.org"]);
    assert_eq!(
        kinds(&nic),
        [
            (false, MessageType::InformationRequest),
            (true, MessageType::Reply)
        ]
    );
}

#[test]
fn no_addresses_left_is_refused_until_the_deadline() {
    require!("no_addresses_left_is_refused_until_the_deadline"; root, "ip", "dnsmasq");
    let w = World::new("noaddr", 1, 0, Server::OneAddress);
    w.links_up(1);
    w.wait_dad(0);
    let idx = w.ifindex(0);
    // A first client (another MAC, so another DUID) takes the only address.
    let other = [2, 0, 0, 0, 0, 0x42];
    let mut first = w.in_client(move || {
        race(
            vec![(
                "eth0".into(),
                idx,
                other,
                Mode::Stateful { rapid_commit: true },
                5,
            )],
            Duration::from_secs(5),
        )
    });
    lease(&first.pop().unwrap());
    for (case, rapid) in [("no-addresses", false), ("no-addresses-rapid", true)] {
        let started = Instant::now();
        let mut nics = w.in_client(move || {
            race(
                vec![(
                    "eth0".into(),
                    idx,
                    mac(0),
                    Mode::Stateful {
                        rapid_commit: rapid,
                    },
                    6,
                )],
                Duration::from_millis(2500),
            )
        });
        let nic = nics.pop().unwrap();
        capture(case, &nic);
        let took = started.elapsed();
        assert!(nic.client.lease().is_none(), "case {case}");
        assert!(nic.client.expired(), "case {case}");
        assert!(
            took < Duration::from_millis(2900),
            "case {case}: ended {took:?} after a 2.5 s deadline"
        );
        let fate = nic.client.describe();
        assert!(
            fate.starts_with("DHCPv6 deadline passed: 2 SOLICIT") && fate.contains("NoAddrsAvail"),
            "case {case}: {fate}"
        );
        let answer = nic
            .log
            .iter()
            .find(|(r, _)| *r)
            .expect("an answer")
            .1
            .clone();
        let r = wire::Repr::parse(&wire::Packet::new_checked(&answer[..]).unwrap()).unwrap();
        assert_eq!(
            r.status.map(|s| s.code),
            Some(StatusCode::NoAddrsAvail),
            "case {case}"
        );
        assert_eq!(
            r.msg_type,
            if rapid {
                MessageType::Reply
            } else {
                MessageType::Advertise
            },
            "case {case}"
        );
    }
}

#[test]
fn two_nics_one_server_race_in_one_poll() {
    require!("two_nics_one_server_race_in_one_poll"; root, "ip", "dnsmasq");
    let w = World::new("two", 2, 1, Server::Range);
    w.links_up(2);
    w.wait_dad(0);
    w.wait_dad(1);
    let (i0, i1) = (w.ifindex(0), w.ifindex(1));
    let rapid = Mode::Stateful { rapid_commit: true };
    let nics = w.in_client(move || {
        race(
            vec![
                ("eth0".into(), i0, mac(0), rapid, 7),
                ("eth1".into(), i1, mac(1), rapid, 8),
            ],
            Duration::from_millis(2500),
        )
    });
    // Both sockets held port 546 at once (each bound to its device); only eth1 is served.
    assert!(nics[0].client.lease().is_none());
    assert!(nics[0]
        .client
        .describe()
        .starts_with("DHCPv6 deadline passed: 2 SOLICIT"));
    assert!(nics[0].send_errors.is_empty(), "{:?}", nics[0].send_errors);
    assert_stateful("two NICs", &lease(&nics[1]));
    assert!(lease(&nics[1]).elapsed < Duration::from_millis(500));
}

#[test]
fn sending_before_dad_says_so() {
    require!("sending_before_dad_says_so"; root, "ip", "dnsmasq");
    let w = World::new("dad", 1, 0, Server::Range);
    w.links_up(1);
    let idx = w.ifindex(0);
    // Right after the link comes up its link-local address is still tentative.
    let err = w.in_client(move || {
        let s = Dhcp6Socket::open("eth0", idx).unwrap();
        s.send(&[1, 0, 0, 1]).err().map(|e| e.to_string())
    });
    let err = err.expect("a send before DAD finished went out");
    assert!(err.contains("duplicate address detection"), "{err}");
    // Opening port 546 twice on one NIC is refused with a reason.
    w.wait_dad(0);
    let twice = w.in_client(move || {
        let _a = Dhcp6Socket::open("eth0", idx).unwrap();
        Dhcp6Socket::open("eth0", idx).err().map(|e| e.to_string())
    });
    let twice = twice.expect("a second socket on port 546 of eth0");
    assert!(twice.contains("port 546 on eth0 is taken"), "{twice}");
}
