//! The per-NIC IPv6 sysctls the network stage reads and changes
//! (`<root>/proc/sys/net/ipv6/conf/<nic>/`), and putting back what it changed.
//!
//! Changed, only on links the stage sets up itself and only before it does (a link-local
//! address is made when the link comes up, and takes the settings in force then):
//! `optimistic_dad=1` and `use_optimistic=1` (RFC 4429). Why: an address normally may not be
//! used until duplicate address detection ends, 1-2 s after link-up for the link-local one
//! (a random delay up to `router_solicitation_delay`, then `dad_transmits` x `retrans_time`),
//! and another second for each SLAAC or DHCPv6 address; under a 20 s deadline that is most of
//! an IPv6-only fetch. Optimistic DAD still runs DAD, and an address found duplicate is
//! still dropped, but the address is usable meanwhile with the safeguards of RFC 4429 (no
//! source link-layer option in solicitations; the kernel prefers any other address). The
//! addresses are the NIC's EUI-64 link-local and SLAAC ones, or what a DHCPv6 server leased
//! us: a collision is the server's or the network's fault either way, and the booted system
//! does its own DAD again. A kernel without `CONFIG_IPV6_OPTIMISTIC_DAD` has no such files;
//! the stage then waits for DAD. Read only: `disable_ipv6`, `accept_ra`, `forwarding`,
//! `autoconf` (to say why a NIC got no IPv6), never changed: an administrator who turned
//! them off on the command line (`ipv6.disable=1`, sysctl.d in the initramfs) is obeyed.
//!
//! Values are restored in [`Saved::restore`] (the stage's put-back), whatever happened.

use crate::root::Root;
use std::path::PathBuf;

/// A sysctl changed, and its value before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    path: PathBuf,
    old: String,
}

impl Saved {
    /// Writes the old value back; failures are logged (the stage is over by then).
    pub fn restore(&self) {
        if let Err(e) = std::fs::write(&self.path, format!("{}\n", self.old)) {
            log::warn!("net: restoring {}: {e}", self.path.display());
        }
    }
}

/// What the sysctls say about a NIC's IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ipv6Conf {
    /// `disable_ipv6=1`, or no `conf/<nic>` directory (IPv6 off in this kernel).
    pub disabled: bool,
    /// Router advertisements are not processed (`accept_ra=0`, or 1 with forwarding on).
    pub ra_ignored: bool,
    /// `autoconf=0`: no SLAAC addresses.
    pub no_slaac: bool,
    /// Optimistic addresses are made and used (`optimistic_dad` and `use_optimistic`).
    pub optimistic: bool,
}

fn dir(root: &Root, nic: &str) -> PathBuf {
    root.join(format!("proc/sys/net/ipv6/conf/{nic}"))
}

fn read(root: &Root, nic: &str, key: &str) -> Option<i64> {
    let text = std::fs::read_to_string(dir(root, nic).join(key)).ok()?;
    text.trim().parse().ok()
}

/// The NIC's IPv6 settings as they are.
pub fn read_conf(root: &Root, nic: &str) -> Ipv6Conf {
    let on = |k: &str| read(root, nic, k).map(|v| v != 0);
    let accept_ra = read(root, nic, "accept_ra").unwrap_or(1);
    let forwarding = on("forwarding").unwrap_or(false);
    Ipv6Conf {
        disabled: on("disable_ipv6").unwrap_or(true),
        ra_ignored: accept_ra == 0 || (accept_ra == 1 && forwarding),
        no_slaac: on("autoconf") == Some(false),
        optimistic: on("optimistic_dad") == Some(true) && on("use_optimistic") == Some(true),
    }
}

/// Turns optimistic DAD on for `nic` (see the module docs) where it is off and the kernel
/// has it; what was changed, for [`Saved::restore`], and the settings now.
pub fn prepare(root: &Root, nic: &str) -> (Vec<Saved>, Ipv6Conf) {
    let mut saved = Vec::new();
    let conf = read_conf(root, nic);
    if conf.disabled {
        return (saved, conf);
    }
    for key in ["optimistic_dad", "use_optimistic"] {
        let path = dir(root, nic).join(key);
        let Some(old) = read(root, nic, key) else {
            continue;
        };
        if old != 0 {
            continue;
        }
        match std::fs::write(&path, "1\n") {
            Ok(()) => saved.push(Saved {
                path,
                old: old.to_string(),
            }),
            Err(e) => log::debug!("net: {}: {e}", path.display()),
        }
    }
    (saved, read_conf(root, nic))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory removed when dropped.
    struct Tmp(PathBuf);

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tree(values: &[(&str, &str)]) -> (Tmp, Root) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let t = Tmp(std::env::temp_dir().join(format!(
            "preroot-sysctl-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )));
        let d = t.0.join("proc/sys/net/ipv6/conf/eth0");
        std::fs::create_dir_all(&d).unwrap();
        for (k, v) in values {
            std::fs::write(d.join(k), v).unwrap();
        }
        let root = Root::new(&t.0);
        (t, root)
    }

    #[test]
    fn confs() {
        let base = [
            ("disable_ipv6", "0\n"),
            ("accept_ra", "1\n"),
            ("forwarding", "0\n"),
            ("autoconf", "1\n"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut v: Vec<(&str, &str)> = base.to_vec();
            v.extend_from_slice(extra);
            v
        };
        for (case, values, want) in [
            ("defaults", with(&[]), Ipv6Conf::default()),
            (
                "disabled",
                with(&[("disable_ipv6", "1\n")]),
                Ipv6Conf {
                    disabled: true,
                    ..Ipv6Conf::default()
                },
            ),
            (
                "forwarding turns accept_ra=1 off",
                with(&[("forwarding", "1\n")]),
                Ipv6Conf {
                    ra_ignored: true,
                    ..Ipv6Conf::default()
                },
            ),
            (
                "accept_ra=2 with forwarding",
                with(&[("forwarding", "1\n"), ("accept_ra", "2\n")]),
                Ipv6Conf::default(),
            ),
            (
                "no SLAAC",
                with(&[("autoconf", "0\n")]),
                Ipv6Conf {
                    no_slaac: true,
                    ..Ipv6Conf::default()
                },
            ),
        ] {
            // Later duplicates win: the tree is written in order.
            let (_t, root) = tree(&values);
            assert_eq!(read_conf(&root, "eth0"), want, "case {case}");
        }
        let (_t, root) = tree(&[]);
        assert!(read_conf(&root, "eth9").disabled, "case no conf directory");
    }

    #[test]
    fn prepare_and_restore() {
        let (_t, root) = tree(&[
            ("disable_ipv6", "0\n"),
            ("optimistic_dad", "0\n"),
            ("use_optimistic", "1\n"),
        ]);
        let (saved, conf) = prepare(&root, "eth0");
        assert!(conf.optimistic, "both on now");
        assert_eq!(saved.len(), 1, "only what was off is changed: {saved:?}");
        let d = root.join("proc/sys/net/ipv6/conf/eth0");
        assert_eq!(
            std::fs::read_to_string(d.join("optimistic_dad")).unwrap(),
            "1\n"
        );
        for s in &saved {
            s.restore();
        }
        assert_eq!(
            std::fs::read_to_string(d.join("optimistic_dad")).unwrap(),
            "0\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("use_optimistic")).unwrap(),
            "1\n"
        );

        let (_t, root) = tree(&[("disable_ipv6", "0\n")]);
        let (saved, conf) = prepare(&root, "eth0");
        assert!(
            saved.is_empty() && !conf.optimistic,
            "a kernel without optimistic DAD"
        );
        let (_t, root) = tree(&[("disable_ipv6", "1\n"), ("optimistic_dad", "0\n")]);
        let (saved, conf) = prepare(&root, "eth0");
        assert!(
            saved.is_empty() && conf.disabled,
            "IPv6 off: nothing changed"
        );
    }
}
