//! The network configuration formats preroot writes, named once: `preroot.render=` on the
//! kernel command line, `render --format` on the CLI, the format the sysroot phase chooses,
//! and the manifest's `renderer` all use [`NetFormat`] and its names.
//!
//! Owns the names and their aliases as exhaustive `match`es (a new variant makes the compiler
//! point at `render::renderer` too, which writes it). Pure: names only, no rendering.

use std::fmt;

/// A network configuration format of the booted system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetFormat {
    /// systemd-networkd `.network`/`.netdev`/`.link` files.
    Networkd,
    /// NetworkManager keyfiles.
    Nm,
    /// RHEL network-scripts, `/etc/sysconfig/network-scripts/ifcfg-*`.
    Ifcfg,
    /// Debian ifupdown, `/etc/network/interfaces.d/`.
    Eni,
}

impl NetFormat {
    pub const ALL: [NetFormat; 4] = [
        NetFormat::Networkd,
        NetFormat::Nm,
        NetFormat::Ifcfg,
        NetFormat::Eni,
    ];

    /// The format after `f` in [`NetFormat::ALL`] (`None`: the first). Exhaustive, so a new
    /// variant must be placed here; `all_lists_every_variant` then checks `ALL` has it.
    pub const fn after(f: Option<NetFormat>) -> Option<NetFormat> {
        match f {
            None => Some(NetFormat::Networkd),
            Some(NetFormat::Networkd) => Some(NetFormat::Nm),
            Some(NetFormat::Nm) => Some(NetFormat::Ifcfg),
            Some(NetFormat::Ifcfg) => Some(NetFormat::Eni),
            Some(NetFormat::Eni) => None,
        }
    }

    /// The name (`networkd`), as written on the command lines and in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            NetFormat::Networkd => "networkd",
            NetFormat::Nm => "nm",
            NetFormat::Ifcfg => "ifcfg",
            NetFormat::Eni => "eni",
        }
    }

    /// Other names the CLI accepts for it.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            NetFormat::Networkd => &[],
            NetFormat::Nm => &["networkmanager"],
            NetFormat::Ifcfg => &[],
            NetFormat::Eni => &["ifupdown"],
        }
    }

    /// What it is, in a few words (`--help`, man pages).
    pub fn title(self) -> &'static str {
        match self {
            NetFormat::Networkd => "systemd-networkd",
            NetFormat::Nm => "NetworkManager keyfiles",
            NetFormat::Ifcfg => "RHEL network-scripts",
            NetFormat::Eni => "Debian ifupdown",
        }
    }

    /// The format called `name` (or one of its aliases), without regard to ASCII case.
    pub fn from_name(name: &str) -> Option<NetFormat> {
        NetFormat::ALL.into_iter().find(|f| {
            f.name().eq_ignore_ascii_case(name)
                || f.aliases().iter().any(|a| a.eq_ignore_ascii_case(name))
        })
    }

    /// `a, b, c or d`: every name, for messages and help.
    pub fn list() -> String {
        let names: Vec<&str> = NetFormat::ALL.into_iter().map(NetFormat::name).collect();
        crate::text::or_list(&names)
    }
}

impl fmt::Display for NetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_variant() {
        let mut walked = Vec::new();
        let mut f = NetFormat::after(None);
        while let Some(g) = f {
            walked.push(g);
            f = NetFormat::after(Some(g));
        }
        assert_eq!(walked, NetFormat::ALL);
    }

    #[test]
    fn names() {
        for f in NetFormat::ALL {
            assert_eq!(NetFormat::from_name(f.name()), Some(f), "case {f}");
        }
        for (name, want) in [
            ("ENI", Some(NetFormat::Eni)),
            ("networkmanager", Some(NetFormat::Nm)),
            ("ifupdown", Some(NetFormat::Eni)),
            ("systemd", None),
            ("", None),
        ] {
            assert_eq!(NetFormat::from_name(name), want, "case {name:?}");
        }
        assert_eq!(NetFormat::list(), "networkd, nm, ifcfg or eni");
    }
}
