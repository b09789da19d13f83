//! Renderers: the context's network turned into the files a booted system's own network
//! manager reads. Pure: a renderer takes a [`Context`] and returns [`RenderedFile`]s (path
//! relative to the root, content, mode); writing them safely into /sysroot is `output.rs`'s
//! job, choosing the format from the root's contents is the sysroot phase's.
//!
//! `networkd.rs` (systemd-networkd `.network`/`.netdev`), `nm.rs` (NetworkManager keyfiles),
//! `ifcfg.rs` (RHEL network-scripts), `eni.rs` (Debian ifupdown). Every value that reaches a file is
//! checked here first ([`ifname`], [`dns_name`]): a name with a newline, `[`, `/`, `;`, NUL or
//! anything outside what the format allows is refused with an error naming the link, never
//! written. Links without a name (a physical link that matched no NIC) are skipped.
//!
//! **Names in the booted system.** The names in the context are the initramfs's (`eth0`: the
//! lean initramfs does not apply udev's naming policy); the booted system's udev would rename
//! the NIC (`enp0s2`). So every format ties its files to the NIC the booted system will see:
//! networkd matches `MACAddress=` and pins the name; NetworkManager matches
//! `[ethernet] mac-address=` and leaves the name out; ifcfg carries `HWADDR=` and pins the
//! name (its `DEVICE=` and file name must stay right); ifupdown only knows names, so it relies
//! on the pin. The pin is a systemd `.link` file ([`name_pins`]), which udev applies whether or
//! not networkd runs. A physical link without a MAC cannot be tied: its name is written as is.

pub mod eni;
pub mod ifcfg;
pub mod networkd;
pub mod nm;

use crate::context::{Context, Link};
use std::fmt;

/// The first line of every file a renderer writes (`#` is a comment in all four formats).
pub const HEADER: &str = "# Written by preroot from the instance's metadata.\n";

/// One file to write, relative to the root (`etc/systemd/network/10-preroot-eth0.network`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: String,
    pub content: String,
    pub mode: u32,
}

/// Why a context could not be rendered. Nothing is written when a renderer fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    /// The link id or field.
    pub object: String,
    pub message: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

impl std::error::Error for RenderError {}

/// A network configuration format.
pub trait Renderer {
    /// Short name (`networkd`).
    fn name(&self) -> &'static str;
    /// The files for this context, in a stable order.
    fn render(&self, ctx: &Context) -> Result<Vec<RenderedFile>, RenderError>;
}

/// Longest interface name the kernel takes (IFNAMSIZ − 1).
pub const IFNAME_MAX: usize = 15;

/// Checks an interface name: 1..=15 bytes of letters, digits, `-`, `_`, `.`, `:`, not `.` or
/// `..` (the kernel's `dev_valid_name` refuses `/`, whitespace and those two). Our rule is
/// narrower than the kernel's on purpose: these names become file names and values in
/// INI-like files.
pub fn ifname(name: &str, object: &str) -> Result<(), RenderError> {
    let ok = !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(RenderError {
            object: object.to_string(),
            message: format!("interface name {name:?} is not 1 to {IFNAME_MAX} letters, digits, '-', '_', '.' or ':'"),
        })
    }
}

/// Checks a DNS search domain (same rule as a hostname).
pub fn dns_name(name: &str, object: &str) -> Result<(), RenderError> {
    crate::context::validate_hostname(name)
        .map(|_| ())
        .map_err(|why| RenderError {
            object: object.to_string(),
            message: format!("search domain refused: {why}"),
        })
}

/// Checks a route's destination or a rule's end: an IP address, optionally with a prefix
/// length the family allows (`10.0.0.0/8`, `::/0`, `192.0.2.1`). These are the only free
/// text a route or rule carries (gateways and name servers are typed addresses already).
pub fn route_end(value: &str, object: &str) -> Result<(), RenderError> {
    let (addr, prefix) = match value.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (value, None),
    };
    let ok = match addr.parse::<std::net::IpAddr>() {
        Ok(ip) => prefix.is_none_or(|p| {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u8>().is_ok_and(|n| n <= max)
        }),
        Err(_) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(RenderError {
            object: object.to_string(),
            message: format!("route or rule end {value:?} is not an IP address or prefix"),
        })
    }
}

/// Checks a MAC address: 6 to 20 octets (Ethernet, InfiniBand) of two hex digits, colon
/// separated. It is matched on in every format, so it reaches every file.
pub fn mac(value: &str, object: &str) -> Result<(), RenderError> {
    let octets: Vec<&str> = value.split(':').collect();
    let ok = (6..=20).contains(&octets.len())
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(RenderError {
            object: object.to_string(),
            message: format!("MAC address {value:?} is not colon-separated hex octets"),
        })
    }
}

/// The links a renderer configures: those with a name, after checking every name, MAC and
/// route and rule end (all four formats rely on this: one check, not one per renderer).
pub fn named_links(ctx: &Context) -> Result<Vec<(&Link, &str)>, RenderError> {
    let mut out = Vec::new();
    for link in &ctx.network.links {
        if let Some(name) = link.name.as_deref() {
            ifname(name, &link.id)?;
            if let Some(m) = &link.mac {
                mac(m, &link.id)?;
            }
            for r in &link.routes {
                route_end(&r.to, &link.id)?;
            }
            for rule in &link.rules {
                for end in [&rule.from, &rule.to].into_iter().flatten() {
                    route_end(end, &link.id)?;
                }
            }
            out.push((link, name));
        }
    }
    Ok(out)
}

/// The name of the link with `id` (members and parents are referred to by id).
pub fn name_of<'a>(ctx: &'a Context, id: &str) -> Option<&'a str> {
    ctx.network
        .links
        .iter()
        .find(|l| l.id == id)
        .and_then(|l| l.name.as_deref())
}

/// A link's MAC address, checked ([`mac`]) and in lower case, as the files write it.
pub fn mac_of(link: &Link) -> Result<Option<String>, RenderError> {
    match link.mac.as_deref() {
        None => Ok(None),
        Some(raw) => {
            mac(raw, &link.id)?;
            Ok(Some(raw.to_ascii_lowercase()))
        }
    }
}

/// Directory of systemd `.link` (and networkd) files, relative to the root.
pub const LINK_DIR: &str = "etc/systemd/network";

/// The `.link` file that keeps a physical NIC's initramfs name in the booted system:
/// `[Match] MACAddress=` + `Type=ether` (VLANs and bonds share the MAC; the type keeps them
/// out), `[Link] Name=`. udev's `net_setup_link` applies the first matching `.link` file in
/// lexical order, and `10-preroot-` sorts before the distribution's `99-default.link`
/// (systemd.link(5)). `None` for virtual links and NICs without a MAC.
pub fn name_pin(link: &Link, name: &str) -> Result<Option<RenderedFile>, RenderError> {
    let mac = match (&link.kind, mac_of(link)?) {
        (crate::context::LinkKind::Physical, Some(mac)) => mac,
        _ => return Ok(None),
    };
    Ok(Some(RenderedFile {
        path: format!("{LINK_DIR}/10-preroot-{name}.link"),
        content: format!("{HEADER}[Match]\nMACAddress={mac}\nType=ether\n\n[Link]\nName={name}\n"),
        mode: 0o644,
    }))
}

/// The name pins ([`name_pin`]) of every configured physical link with a MAC.
pub fn name_pins(ctx: &Context) -> Result<Vec<RenderedFile>, RenderError> {
    let mut out = Vec::new();
    for (link, name) in named_links(ctx)? {
        out.extend(name_pin(link, name)?);
    }
    Ok(out)
}

/// The renderer for a `preroot.render=`/`--format` name.
pub fn by_name(name: &str) -> Option<Box<dyn Renderer>> {
    match name {
        "networkd" => Some(Box::new(networkd::Networkd)),
        "nm" | "networkmanager" => Some(Box::new(nm::NetworkManager)),
        "ifcfg" => Some(Box::new(ifcfg::Ifcfg)),
        "eni" | "ifupdown" => Some(Box::new(eni::Eni)),
        _ => None,
    }
}

/// Writes rendered files under `out` as a plain tree (directories 0755, files atomically with
/// their modes). For inspection and tests: writing into a system root, with its ownership
/// and no-symlink rules, is the sysroot phase's.
pub fn write_tree(files: &[RenderedFile], out: &std::path::Path) -> std::io::Result<()> {
    for f in files {
        let path = out.join(&f.path);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        else {
            continue;
        };
        crate::output::ensure_dir(dir, 0o755)?;
        crate::output::write_atomic(dir, name, f.content.as_bytes(), f.mode)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        for good in ["eth0", "enp0s31f6", "bond0.602", "br-ex", "ib0:1", "a"] {
            assert!(ifname(good, "t").is_ok(), "case {good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "eth0\n",
            "a/b",
            "[Match]",
            "a;b",
            "a b",
            "a\0b",
            "sixteen-chars-xx",
        ] {
            assert!(ifname(bad, "t").is_err(), "case {bad:?}");
        }
    }

    #[test]
    fn route_ends() {
        for good in [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "192.0.2.1",
            "::/0",
            "2001:db8::/32",
            "fe80::1",
        ] {
            assert!(route_end(good, "t").is_ok(), "case {good}");
        }
        for bad in [
            "",
            "default",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/8\n[Network]",
            "[Match]",
            "1.2.3.4;reboot",
            "10.0.0.0/",
            "10.0.0.0 /8",
        ] {
            assert!(route_end(bad, "t").is_err(), "case {bad:?}");
        }
        assert!(mac("52:54:00:ab:CD:01", "t").is_ok());
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0g",
            "52:54:00:ab:cd:01\n[Match]",
            "5254.00ab.cd01",
        ] {
            assert!(mac(bad, "t").is_err(), "case {bad:?}");
        }
    }
}
