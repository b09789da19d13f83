//! Renderers: the context's network turned into the files a booted system's own network
//! manager reads. Pure: a renderer takes a [`Context`] and returns [`RenderedFile`]s (path
//! relative to the root, content, mode); writing them safely into /sysroot is `output.rs`'s
//! job, choosing the format from the root's contents is the sysroot phase's.
//!
//! `networkd.rs` (systemd-networkd `.network`/`.netdev`), `nm.rs` (NetworkManager keyfiles),
//! `ifcfg.rs` (RHEL network-scripts), `eni.rs` (Debian ifupdown). Every value that reaches a file is
//! checked here first, by the rules of `src/valid.rs` ([`named_links`], [`crate::context::Link::audit`]):
//! a name with a newline, `[`, `/`, `;`, NUL, a bonding mode that is not one, or anything
//! outside what the format allows is refused with an error naming the link, never written.
//! [`checked`] is how the boot renders: it skips what would be refused (one error each) and
//! writes the rest. Links without a name (a physical link that matched no NIC) are skipped.
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
use crate::netformat::NetFormat;
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
        let line = crate::text::one_line(&format!("{}: {}", self.object, self.message));
        f.write_str(&line)
    }
}

impl std::error::Error for RenderError {}

/// A network configuration format.
pub trait Renderer {
    /// The files for this context, in a stable order.
    fn render(&self, ctx: &Context) -> Result<Vec<RenderedFile>, RenderError>;
}

/// A link's name servers and search domains: its own, then the global ones not already
/// there; every search domain checked ([`dns_name`]).
pub fn link_dns(ctx: &Context, link: &Link) -> Result<crate::context::Dns, RenderError> {
    let mut dns = link.dns.clone();
    for ns in &ctx.network.dns.nameservers {
        if !dns.nameservers.contains(ns) {
            dns.nameservers.push(*ns);
        }
    }
    for d in &ctx.network.dns.search {
        if !dns.search.contains(d) {
            dns.search.push(d.clone());
        }
    }
    for d in &dns.search {
        dns_name(d, &link.id)?;
    }
    Ok(dns)
}

/// Longest interface name the kernel takes (IFNAMSIZ − 1).
pub const IFNAME_MAX: usize = crate::valid::IFNAME_MAX;

fn refused(object: &str, why: String) -> RenderError {
    RenderError {
        object: object.to_string(),
        message: why,
    }
}

/// Checks an interface name ([`crate::valid::ifname`]).
pub fn ifname(name: &str, object: &str) -> Result<(), RenderError> {
    crate::valid::ifname(name).map_err(|why| refused(object, why))
}

/// Checks a DNS search domain ([`crate::valid::search_domain`]).
pub fn dns_name(name: &str, object: &str) -> Result<(), RenderError> {
    crate::valid::search_domain(name).map_err(|why| refused(object, why))
}

/// Checks a route's destination or a rule's end ([`crate::valid::route_end`]). These are the
/// only free text a route or rule carries (gateways and name servers are typed addresses).
pub fn route_end(value: &str, object: &str) -> Result<(), RenderError> {
    crate::valid::route_end(value).map_err(|why| refused(object, why))
}

/// Checks a MAC address ([`crate::valid::mac`]). It is matched on in every format, so it
/// reaches every file.
pub fn mac(value: &str, object: &str) -> Result<(), RenderError> {
    crate::valid::mac(value).map_err(|why| refused(object, why))
}

/// A bond's mode as the kernel names it ([`crate::valid::bond_mode`]): what every format writes.
pub fn bond_mode(mode: &str, object: &str) -> Result<&'static str, RenderError> {
    crate::valid::bond_mode(mode).map_err(|why| refused(object, why))
}

/// A bond option checked ([`crate::valid::bond_option`]).
pub fn bond_option(key: &str, value: &str, object: &str) -> Result<(), RenderError> {
    crate::valid::bond_option(key, value)
        .map_err(|why| refused(&format!("{object}: bond option {key}"), why))
}

/// A bridge's `stp` option as a yes/no, if given ([`crate::valid::boolean`]).
pub fn stp(
    options: &std::collections::BTreeMap<String, String>,
    object: &str,
) -> Result<Option<bool>, RenderError> {
    options
        .get("stp")
        .map(|v| crate::valid::boolean(v).map_err(|why| refused(object, format!("stp: {why}"))))
        .transpose()
}

/// The links a renderer configures: those with a name, after checking every value of each
/// ([`Link::audit`]: name, MAC, MTU, bonding mode and options, VLAN id, `stp`, prefixes,
/// route and rule ends, search domains). All four formats rely on this one check, whatever
/// the context's origin; [`checked`] drops what it would refuse first.
pub fn named_links(ctx: &Context) -> Result<Vec<(&Link, &str)>, RenderError> {
    let mut out = Vec::new();
    for link in &ctx.network.links {
        if let Some(name) = link.name.as_deref() {
            if let Some(bad) = link.audit().first() {
                return Err(refused(&link.id, bad.message().to_string()));
            }
            out.push((link, name));
        }
    }
    Ok(out)
}

/// Renders `ctx` in `format`, skipping what cannot be written rather than writing nothing:
/// each value that breaks a rule is dropped first ([`Context::check_values`]; for
/// systemd-networkd also each bond option it has no setting for), then a link the renderer
/// still refuses is left out with what depends on it. Returns the files and one
/// [`RenderError`] per value or link skipped.
pub fn checked(format: NetFormat, ctx: &Context) -> (Vec<RenderedFile>, Vec<RenderError>) {
    let mut ctx = ctx.clone();
    let mut skipped: Vec<RenderError> = ctx
        .check_values()
        .into_iter()
        .map(|(object, message)| RenderError { object, message })
        .collect();
    if format == NetFormat::Networkd {
        skipped.extend(networkd::drop_unmapped_options(&mut ctx));
    }
    // Each round leaves out one more link: at most one round per link.
    for _ in 0..=ctx.network.links.len() {
        let e = match renderer(format).render(&ctx) {
            Ok(files) => return (files, skipped),
            Err(e) => e,
        };
        let at = ctx.network.links.iter().position(|l| {
            e.object == l.id
                || e.object
                    .strip_prefix(l.id.as_str())
                    .is_some_and(|r| r.starts_with(": "))
        });
        skipped.push(RenderError {
            message: format!("{}; the link is not configured", e.message),
            ..e
        });
        let Some(at) = at else { break };
        ctx.network.links.remove(at);
        for line in crate::context::drop_dangling(&mut ctx.network.links) {
            skipped.push(refused("network", line));
        }
    }
    (Vec::new(), skipped)
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

/// The renderer that writes `format`.
pub fn renderer(format: NetFormat) -> &'static dyn Renderer {
    match format {
        NetFormat::Networkd => &networkd::Networkd,
        NetFormat::Nm => &nm::NetworkManager,
        NetFormat::Ifcfg => &ifcfg::Ifcfg,
        NetFormat::Eni => &eni::Eni,
    }
}

/// The renderer for a format's name or alias ([`NetFormat::from_name`]).
pub fn by_name(name: &str) -> Option<&'static dyn Renderer> {
    NetFormat::from_name(name).map(renderer)
}

/// Writes rendered files under `out` as a plain tree (directories 0755, files atomically with
/// their modes). For inspection and tests: writing into a system root, with its ownership and
/// manifest rules, is the sysroot phase's. `out` itself is created if missing; below it, every
/// path goes through [`crate::output::RootDir`], so a symlink planted inside `out` (a
/// directory link to `/etc`) is an error, never a way out.
pub fn write_tree(files: &[RenderedFile], out: &std::path::Path) -> std::io::Result<()> {
    crate::output::ensure_dir(out, 0o755)?;
    let tree = crate::output::RootDir::open(out)?;
    for f in files {
        tree.write(&f.path, f.content.as_bytes(), f.mode)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Access, LinkKind, Source, SourceKind};

    fn ctx(links: Vec<Link>) -> Context {
        let mut ctx = Context::new(
            None,
            Source {
                kind: SourceKind::KernelCmdline,
                medium: Access::Cmdline,
                location: "t".into(),
                partition_of: None,
            },
        );
        ctx.network.links = links;
        ctx
    }

    fn named(id: &str, name: &str, kind: LinkKind) -> Link {
        let mut l = Link::new(id, kind);
        l.name = Some(name.into());
        l.addressing.push(crate::context::Addressing::Dhcp4);
        l
    }

    /// Issue 16 item 15: one bad value is skipped with an error, the rest is written, in
    /// every format; `named_links` alone still refuses the whole context.
    #[test]
    fn checked_skips_one_bad_value() {
        let mut good = named("a", "eth0", LinkKind::Physical);
        good.dns.search = vec!["example.com".into(), "example.com,corp.local".into()];
        let bad = named("b", "a[Match]", LinkKind::Physical);
        let bond = named(
            "bond0",
            "bond0",
            LinkKind::Bond {
                mode: "x;{touch,/tmp/pwned}".into(),
                members: vec!["a".into()],
                options: Default::default(),
            },
        );
        let c = ctx(vec![good, bad, bond]);
        assert!(named_links(&c).is_err());
        for format in NetFormat::ALL {
            let (files, skipped) = checked(format, &c);
            let text: String = files.iter().map(|f| f.content.as_str()).collect();
            assert!(
                text.contains("eth0") || files.iter().any(|f| f.path.contains("eth0")),
                "{format}: {files:?}"
            );
            for hostile in ["a[Match]", "corp.local", "pwned"] {
                assert!(
                    !text.contains(hostile),
                    "{format}: {hostile} reached a file"
                );
            }
            assert_eq!(skipped.len(), 3, "{format}: {skipped:?}");
            assert!(skipped.iter().all(|e| !e.to_string().contains('\n')));
        }
    }
}
