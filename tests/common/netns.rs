//! Two network namespaces joined by veth pairs, for the namespace worlds (`netns.rs`,
//! `dhcp6_netns.rs`, `clouds_netns.rs`): `client`, where preroot runs with NICs `eth<i>`, and
//! `peer`, where the test's servers run on `peer<i>`. Nothing here touches the machine's own
//! namespace; both namespaces are deleted on drop.

use std::process::Command;

/// Runs `args`, asserting success; its standard output.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The two namespaces, named `<prefix>c<tag><id>` and `<prefix>p<tag><id>` (`id`: this
/// process and a counter, so parallel tests and runs never share one).
pub struct Namespaces {
    pub client: String,
    pub peer: String,
}

impl Namespaces {
    /// Creates both, the peer's `lo` up (servers bind addresses on it).
    pub fn new(prefix: &str, tag: &str) -> Namespaces {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Namespaces {
            client: format!("{prefix}c{tag}{id}"),
            peer: format!("{prefix}p{tag}{id}"),
        };
        sh(&["ip", "netns", "add", &ns.client]);
        sh(&["ip", "netns", "add", &ns.peer]);
        sh(&["ip", "-n", &ns.peer, "link", "set", "lo", "up"]);
        ns
    }

    /// The veth pair `eth<i>` (client, down, with `mac` if given) / `peer<i>` (peer, up).
    /// `router`: the peer end does no DAD, so its IPv6 addresses are usable at once, as a
    /// router's are.
    pub fn veth(&self, i: usize, mac: Option<&str>, router: bool) {
        let (c, p) = (format!("eth{i}"), format!("peer{i}"));
        let mut args = vec!["ip", "link", "add", &c, "netns", &self.client];
        if let Some(mac) = mac {
            args.extend(["address", mac]);
        }
        args.extend(["type", "veth", "peer", "name", &p, "netns", &self.peer]);
        sh(&args);
        if router {
            let key = format!("net.ipv6.conf.{p}.accept_dad=0");
            sh(&["ip", "netns", "exec", &self.peer, "sysctl", "-qw", &key]);
        }
        sh(&["ip", "-n", &self.peer, "link", "set", &p, "up"]);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.client])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.peer])
            .status();
    }
}
