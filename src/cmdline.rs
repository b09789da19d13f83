//! The kernel command line: word splitting, and the parameters preroot reads from it.
//!
//! Owns [`split`] (words as systemd sees them) and [`parse`] (typed [`Cmdline`]). Both are
//! pure: they take the text, never read `/proc/cmdline` (the caller does, through
//! `Root::cmdline()`), never log, and never fail. A value that cannot be used is skipped and
//! described in [`Cmdline::problems`], one line per problem, naming the parameter.
//!
//! Specs followed:
//! - Word splitting: systemd's `proc_cmdline_parse()`, i.e. `extract_first_word()` with
//!   `EXTRACT_UNQUOTE|EXTRACT_RELAX|EXTRACT_RETAIN_ESCAPE`, see kernel-command-line(7) and
//!   <https://github.com/systemd/systemd/blob/main/src/basic/proc-cmdline.c>.
//! - `ip=`, `ifname=`, `nameserver=`, `rd.neednet=`: dracut.cmdline(7), section "Network", as
//!   implemented by network-legacy (`ip_to_var` in `modules.d/45net-lib/net-lib.sh`,
//!   `modules.d/35network-legacy/parse-ip-opts.sh` and `ifup.sh` in
//!   <https://github.com/dracut-ng/dracut-ng>).
//! - `ds=nocloud;...`: cloud-init's `parse_cmdline_data()` in `DataSourceNoCloud.py`
//!   (<https://docs.cloud-init.io/en/latest/reference/datasources/nocloud.html>).
//!
//! Conventions (where the specs are silent or disagree):
//! - Keys match exactly: no `-`/`_` equivalence and no `rd.` prefix stripping (systemd does
//!   both for its own keys; dracut's `getarg` does neither).
//! - A repeated single-value key: the last *valid* occurrence wins (systemd and dracut's
//!   `getarg` both take the last); an invalid or empty later value is a problem and leaves the
//!   earlier value in place. Multi-value keys (`ip=`, `ifname=`, `nameserver=`) keep every
//!   valid occurrence in order.
//! - Input past [`MAX_CMDLINE_BYTES`] is ignored (cut back to the last whitespace so no word
//!   is half read), and the counts of `ip=`, `ifname=` and `nameserver=` are capped.
//!
//! Deliberately not supported (each one is a problem, not a silent drop, when it matters):
//! anaconda-style `ip=<address>` with `gateway=`/`netmask=`/`ksdevice=`; `ip=...:ibft` and
//! `bootp`/`rarp`/`both`; the point-to-point `<peer>` field; `rd.route=`, `vlan=`, `bond=`,
//! `bridge=`, `team=`, `bootdev=`, `BOOTIF=` (ignored like any unknown key); systemd's EFI
//! `SystemdOptions` and bootconfig (the caller passes only `/proc/cmdline`).
//!
//! Panic contract: no function here panics on any input (no indexing, no unchecked
//! arithmetic, no `unwrap`); `tests::junk_never_panics` feeds it 10 000 pseudo-random inputs.

#![deny(clippy::arithmetic_side_effects)]

use crate::caps;
use crate::netformat::NetFormat;
use crate::platform::Platform;
use crate::text::show;
use crate::valid::{normalize_mac, validate_hostname};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Input past this many bytes is ignored. The kernel's own limit (`COMMAND_LINE_SIZE`) is 2048
/// bytes on x86 and arm64 and 4096 on s390; bootloaders and bootconfig cannot go beyond a few
/// KiB either, so anything longer is damage, not configuration.
pub const MAX_CMDLINE_BYTES: usize = 65_536;
/// Largest `preroot.timeout=`; larger values are cut to it. A boot that waits an hour for
/// metadata has failed; the cap keeps a typo (`36000`) from hanging a machine for ten hours.
pub const TIMEOUT_MAX: Duration = Duration::from_secs(3600);
/// Fields in one `ip=` value: dracut's longest form has 14 (8 + a 6-octet MAC), an InfiniBand
/// MAC adds 14 more.
const MAX_IP_FIELDS: usize = 32;
/// Smallest MTU accepted (the IPv4 minimum, RFC 791); the largest is 65535 (IP's length field).
const MTU_MIN: u32 = 68;

/// What `preroot.platform=` asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PlatformChoice {
    /// Not given, or `auto`: detect the platform.
    #[default]
    Detect,
    /// `none`: no datasource at all; only the command line (`ip=`) configures the machine.
    Disabled,
    /// A named platform: skip detection and use it.
    Platform(Platform),
}

/// `ds=nocloud;...` or `ds=nocloud-net;...`, cloud-init's NoCloud seed on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NocloudSeed {
    /// The id was `nocloud-net` (cloud-init treats both ids alike; kept for messages).
    pub net: bool,
    /// `s=` / `seedfrom=`: where `meta-data`, `user-data` and friends live. An `http://`,
    /// `https://` or `file://` URL, or an absolute path. Not otherwise checked.
    pub seedfrom: Option<String>,
    /// `i=` / `instance-id=`.
    pub instance_id: Option<String>,
    /// `h=` / `local-hostname=`, checked with [`validate_hostname`] (lower case).
    pub hostname: Option<String>,
}

/// How an `ip=` entry names its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpInterface {
    /// An interface name (checked like systemd-networkd's `ifname_valid()`).
    Name(String),
    /// A MAC address in the interface field (`52-54-00-12-34-56`, or bracketed with colons),
    /// which dracut's `ifup` resolves to the NIC with that address. Lower case, colons.
    Mac(String),
}

/// One method of an `ip=` entry (dracut's `autoconf` field; a comma list gives several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpMethod {
    /// Bare `ip=off` or `ip=none`: configure no network from `ip=`. Only ever alone, in an
    /// entry without interface.
    Off,
    /// `dhcp`, `on`, `any`, `single-dhcp`: DHCPv4.
    Dhcp4,
    /// `dhcp6`: stateful DHCPv6.
    Dhcp6,
    /// `auto6`: router advertisements (SLAAC).
    Auto6,
    /// `either6`: SLAAC, and DHCPv6 if that fails.
    Either6,
    /// `link6`: bring the link up with its IPv6 link-local address only.
    Link6,
    /// `none`/`off` with a client address: static configuration.
    Static {
        address: IpAddr,
        prefix: u8,
        gateway: Option<IpAddr>,
    },
}

/// One valid `ip=` entry, in any of dracut's forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// `None` for the interface-less forms (`ip=dhcp`, or a static entry with an empty
    /// `<interface>`); see `providers::kernel` for whom they apply to.
    pub interface: Option<IpInterface>,
    /// At least one, without duplicates, in the order given.
    pub methods: Vec<IpMethod>,
    /// `<client_hostname>`, checked with [`validate_hostname`] (lower case).
    pub hostname: Option<String>,
    /// `<mtu>`, 68..=65535.
    pub mtu: Option<u32>,
    /// `<macaddr>`: dracut *sets* this address on the interface. Lower case, colons.
    pub mac: Option<String>,
    /// `<dns1>`, `<dns2>`.
    pub dns: Vec<IpAddr>,
}

/// One `ifname=<name>:<MAC>`: the NIC with that MAC is to be called `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ifname {
    pub name: String,
    /// Lower case, colons.
    pub mac: String,
}

/// What preroot reads from the kernel command line. `Default` is an empty command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    /// `preroot.platform=NAME|none|auto`.
    pub platform: PlatformChoice,
    /// `preroot.timeout=<seconds>`: integer or decimal (`2.5`), an optional `s` suffix,
    /// more than 0, cut to [`TIMEOUT_MAX`]. `None` when not given.
    pub timeout: Option<Duration>,
    /// `preroot.grow=<bool>`. `None` when not given (the caller picks the default).
    pub grow: Option<bool>,
    /// `preroot.grow.lv=<bool>`.
    pub grow_lv: Option<bool>,
    /// `preroot.network=<bool>`.
    pub network: Option<bool>,
    /// `preroot.render=FORMAT`.
    pub render: Option<NetFormat>,
    /// `preroot.handoff=`, verbatim (`cloud-init`, `none`; read by [`crate::cloudinit`]).
    pub handoff: Option<String>,
    /// `preroot.selinux=<bool>`: `Some(false)` writes no SELinux labels (docs/selinux.md).
    pub selinux: Option<bool>,
    /// `preroot.debug` or `preroot.debug=<bool>`; `false` when not given.
    pub debug: bool,
    /// `ds=nocloud[;key=value...]` or `ds=nocloud-net[;...]`.
    pub nocloud: Option<NocloudSeed>,
    /// Every valid `ip=`, in order. Among several entries, at most one has no interface, and
    /// that one is neither DHCP nor `off` (dracut refuses those combinations).
    pub ip: Vec<IpConfig>,
    /// Every valid `ifname=`; a later one for the same name or MAC replaces the earlier.
    pub ifnames: Vec<Ifname>,
    /// Every valid `nameserver=`, in order, without duplicates.
    pub nameservers: Vec<IpAddr>,
    /// `rd.neednet=<bool>` (dracut: bring the network up even without a network root).
    pub neednet: Option<bool>,
    /// `root=`, verbatim.
    pub root: Option<String>,
    /// `ostree=`, verbatim.
    pub ostree: Option<String>,
    /// Every `rd.luks.key=` and `luks.key=`, verbatim, in order (read by
    /// [`crate::disk::luks::key_args`]); as many as the capped command line holds.
    pub luks_keys: Vec<String>,
    /// One line per skipped or adjusted value, naming the parameter. Never contains a newline.
    pub problems: Vec<String>,
}

/// Splits a command line into words the way systemd does (`proc_cmdline_parse()`).
///
/// - Space, tab, newline and carriage return separate words (systemd's `WHITESPACE`; newlines
///   count since systemd v254, <https://github.com/systemd/systemd/pull/28013>). NUL also
///   separates: `/proc/cmdline` has none, and treating one as the end of the text (as C
///   would) would hide everything after it.
/// - `'...'` and `"..."` group words and are removed, also in the middle of a word
///   (`a="b c"` gives `a=b c`); inside one kind of quote the other is an ordinary character.
///   A quote left open runs to the end of the text (`EXTRACT_RELAX`).
/// - A backslash is an ordinary character: it escapes neither quotes nor spaces
///   (`EXTRACT_RETAIN_ESCAPE`, since systemd v249, <https://github.com/systemd/systemd/pull/19232>),
///   which matches the kernel's own parser (`next_arg()` in `lib/cmdline.c`) and lets
///   `root=/dev/disk/by-label/a\x20b` through intact.
/// - A word made only of quotes (`""`) is an empty word, as in systemd.
pub fn split(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else {
                word.get_or_insert_with(String::new).push(c);
            }
        } else if is_separator(c) {
            if let Some(w) = word.take() {
                words.push(w);
            }
        } else if c == '"' || c == '\'' {
            quote = Some(c);
            word.get_or_insert_with(String::new);
        } else {
            word.get_or_insert_with(String::new).push(c);
        }
    }
    if let Some(w) = word {
        words.push(w);
    }
    words
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\0')
}

/// A kernel command line key preroot reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Platform,
    Timeout,
    Grow,
    GrowLv,
    Network,
    Render,
    Debug,
    Handoff,
    Selinux,
    Ds,
    Ip,
    Ifname,
    Nameserver,
    Neednet,
    Root,
    Ostree,
    LuksKey,
}

/// Whose key it is (man pages group them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Preroot,
    /// Borrowed from dracut (dracut.cmdline(7)) or the kernel, read as they define it.
    Dracut,
    /// Borrowed from cloud-init (NoCloud's `ds=`).
    CloudInit,
}

/// One declared key: its name, its value (`None`: a boolean, true when bare), its help.
#[derive(Debug, Clone, Copy)]
pub struct KeyDecl {
    pub key: Key,
    pub name: &'static str,
    pub value: Option<&'static str>,
    pub owner: Owner,
    /// One paragraph; `{platforms}` and `{formats}` stand for the lists of names.
    pub help: &'static str,
}

/// Every key preroot reads, declared once: the parser dispatches on it, and `--help` and the
/// man pages are made from it.
pub const KEYS: &[KeyDecl] = &[
    KeyDecl {
        key: Key::Platform,
        name: "preroot.platform",
        value: Some("NAME"),
        owner: Owner::Preroot,
        help: "Skip detection and read this platform's data: {platforms} (none: no datasource, \
            only ip= configures the machine; auto: detect, the default).",
    },
    KeyDecl {
        key: Key::Timeout,
        name: "preroot.timeout",
        value: Some("SECONDS"),
        owner: Owner::Preroot,
        help: "The deadline of the fetch phase: waiting for a medium, the network and the \
            metadata service (default 20, at most 3600; 2.5 and 30s are seconds too).",
    },
    KeyDecl {
        key: Key::Grow,
        name: "preroot.grow",
        value: None,
        owner: Owner::Preroot,
        help: "Grow the root partition, PV, LV and filesystem (default 1).",
    },
    KeyDecl {
        key: Key::GrowLv,
        name: "preroot.grow.lv",
        value: None,
        owner: Owner::Preroot,
        help: "Extend the root LV into the grown PV (default 1).",
    },
    KeyDecl {
        key: Key::Network,
        name: "preroot.network",
        value: None,
        owner: Owner::Preroot,
        help: "0: never bring up the network for a metadata service, and write no network \
            files.",
    },
    KeyDecl {
        key: Key::Render,
        name: "preroot.render",
        value: Some("FORMAT"),
        owner: Owner::Preroot,
        help: "The network format to write into the root ({formats}) instead of the one the \
            root enables.",
    },
    KeyDecl {
        key: Key::Debug,
        name: "preroot.debug",
        value: None,
        owner: Owner::Preroot,
        help: "Log at debug level.",
    },
    KeyDecl {
        key: Key::Handoff,
        name: "preroot.handoff",
        value: Some("cloud-init|none"),
        owner: Owner::Preroot,
        help: "Hand user data, keys and users to the image's cloud-init (a NoCloud seed and a \
            drop-in), or never; detected when the root has cloud-init, enabled.",
    },
    KeyDecl {
        key: Key::Selinux,
        name: "preroot.selinux",
        value: None,
        owner: Owner::Preroot,
        help: "0: write files into the root without SELinux labels, even where its policy \
            (/etc/selinux/config) is on; recorded as a warning (default 1: labels from the \
            root's own policy, docs/selinux.md).",
    },
    KeyDecl {
        key: Key::Ds,
        name: "ds",
        value: Some("nocloud[;s=URL]"),
        owner: Owner::CloudInit,
        help: "NoCloud: its seed medium, or NoCloud-net from URL.",
    },
    KeyDecl {
        key: Key::Ip,
        name: "ip",
        value: Some("..."),
        owner: Owner::Dracut,
        help: "dracut's network configuration, in all its forms: the NICs DHCP runs on in the \
            fetch phase, and the configuration rendered for the booted system.",
    },
    KeyDecl {
        key: Key::Ifname,
        name: "ifname",
        value: Some("NAME:MAC"),
        owner: Owner::Dracut,
        help: "The name of the NIC with MAC (resolved by MAC; the NIC is not renamed).",
    },
    KeyDecl {
        key: Key::Nameserver,
        name: "nameserver",
        value: Some("ADDRESS"),
        owner: Owner::Dracut,
        help: "A name server for the booted system.",
    },
    KeyDecl {
        key: Key::Neednet,
        name: "rd.neednet",
        value: None,
        owner: Owner::Dracut,
        help: "Keep the NIC preroot brought up configured after the fetch (as any ip= does).",
    },
    KeyDecl {
        key: Key::Root,
        name: "root",
        value: Some("ROOTSPEC"),
        owner: Owner::Dracut,
        help: "The root device the grow phase grows.",
    },
    KeyDecl {
        key: Key::Ostree,
        name: "ostree",
        value: Some("PATH"),
        owner: Owner::Dracut,
        help: "The ostree deployment the sysroot phase configures.",
    },
    KeyDecl {
        key: Key::LuksKey,
        name: "rd.luks.key",
        value: Some("[UUID=]PATH"),
        owner: Owner::Dracut,
        help: "A LUKS key file (for volume UUID, else for every volume): the grow phase gives \
            it to `cryptsetup resize` for a LUKS2 root when it is in the initramfs \
            (PATH:KEYDEV, a key on another device, is not read).",
    },
    KeyDecl {
        key: Key::LuksKey,
        name: "luks.key",
        value: Some("[UUID=]PATH"),
        owner: Owner::Dracut,
        help: "systemd's name for rd.luks.key=, read the same way.",
    },
];

/// The values `preroot.platform=` takes, for messages and help.
pub fn platform_values() -> String {
    let mut names: Vec<&str> = Platform::ALL.into_iter().map(Platform::name).collect();
    names.extend(["none", "auto"]);
    crate::text::or_list(&names)
}

/// What the multi-value keys have gathered so far, for their caps.
#[derive(Default)]
struct Counts {
    ip_values: Vec<String>,
    ip_capped: bool,
    ifname_capped: bool,
    ns_capped: bool,
}

/// Parses a kernel command line (the contents of `/proc/cmdline`). Never fails: see the module
/// documentation for what is kept, what is skipped, and which occurrence wins.
pub fn parse(text: &str) -> Cmdline {
    let mut cmd = Cmdline::default();
    let text = cap_input(text, &mut cmd.problems);
    let mut counts = Counts::default();
    for word in split(text) {
        let (name, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word.as_str(), None),
        };
        let Some(decl) = KEYS.iter().find(|k| k.name == name) else {
            continue;
        };
        if decl.value.is_none() {
            match parse_bool(value) {
                Some(b) => set_bool(&mut cmd, decl.key, b),
                None => cmd.problems.push(problem(
                    name,
                    value.unwrap_or(""),
                    "not a boolean (1/0, yes/no, true/false, on/off)",
                )),
            }
            continue;
        }
        match value {
            None => cmd.problems.push(format!("{name}: needs a value; ignored")),
            Some("") => cmd.problems.push(format!("{name}=: empty value; ignored")),
            Some(value) => set_value(&mut cmd, &mut counts, decl, value),
        }
    }
    cmd.ip = parse_ip_entries(&counts.ip_values, &mut cmd.problems);
    cmd
}

/// Sets a boolean key (the table says which keys are).
fn set_bool(cmd: &mut Cmdline, key: Key, b: bool) {
    match key {
        Key::Debug => cmd.debug = b,
        Key::Grow => cmd.grow = Some(b),
        Key::GrowLv => cmd.grow_lv = Some(b),
        Key::Network => cmd.network = Some(b),
        Key::Neednet => cmd.neednet = Some(b),
        Key::Selinux => cmd.selinux = Some(b),
        Key::Platform
        | Key::Timeout
        | Key::Render
        | Key::Handoff
        | Key::Ds
        | Key::Ip
        | Key::Ifname
        | Key::Nameserver
        | Key::Root
        | Key::Ostree
        | Key::LuksKey => {}
    }
}

/// Sets a key that takes a value (not empty).
fn set_value(cmd: &mut Cmdline, counts: &mut Counts, decl: &KeyDecl, value: &str) {
    let key = decl.name;
    match decl.key {
        Key::Platform => match parse_platform(value) {
            Some(p) => cmd.platform = p,
            None => cmd.problems.push(problem(
                key,
                value,
                &format!("not one of {}", platform_values()),
            )),
        },
        Key::Timeout => match parse_timeout(value) {
            Ok((d, cut)) => {
                if cut {
                    cmd.problems.push(problem(
                        key,
                        value,
                        &format!("more than {} s; cut to it", TIMEOUT_MAX.as_secs()),
                    ));
                }
                cmd.timeout = Some(d);
            }
            Err(why) => cmd.problems.push(problem(key, value, &why)),
        },
        Key::Render => match NetFormat::from_name(value) {
            Some(r) => cmd.render = Some(r),
            None => cmd.problems.push(problem(
                key,
                value,
                &format!("not one of {}", NetFormat::list()),
            )),
        },
        Key::Handoff => cmd.handoff = Some(value.to_string()),
        Key::Ds => parse_ds(cmd, value),
        Key::Ip => {
            if caps::IP_ENTRIES.room(counts.ip_values.len()) {
                counts.ip_values.push(value.to_string());
            } else if !counts.ip_capped {
                counts.ip_capped = true;
                cmd.problems.push(format!("ip: {}", caps::IP_ENTRIES.cut()));
            }
        }
        Key::Ifname => match parse_ifname(value) {
            Ok(entry) => {
                cmd.ifnames
                    .retain(|i| i.name != entry.name && i.mac != entry.mac);
                if caps::IFNAMES.room(cmd.ifnames.len()) {
                    cmd.ifnames.push(entry);
                } else if !counts.ifname_capped {
                    counts.ifname_capped = true;
                    cmd.problems
                        .push(format!("ifname: {}", caps::IFNAMES.cut()));
                }
            }
            Err(why) => cmd.problems.push(problem(key, value, &why)),
        },
        Key::Nameserver => match parse_addr(value) {
            Some(addr) if cmd.nameservers.contains(&addr) => {}
            Some(addr) => {
                if caps::CMDLINE_NAMESERVERS.room(cmd.nameservers.len()) {
                    cmd.nameservers.push(addr);
                } else if !counts.ns_capped {
                    counts.ns_capped = true;
                    cmd.problems
                        .push(format!("nameserver: {}", caps::CMDLINE_NAMESERVERS.cut()));
                }
            }
            None => cmd
                .problems
                .push(problem(key, value, "not an IPv4 or IPv6 address")),
        },
        Key::Root => cmd.root = Some(value.to_string()),
        Key::Ostree => cmd.ostree = Some(value.to_string()),
        Key::LuksKey => cmd.luks_keys.push(value.to_string()),
        Key::Grow | Key::GrowLv | Key::Network | Key::Debug | Key::Neednet | Key::Selinux => {}
    }
}

/// Cuts the text at [`MAX_CMDLINE_BYTES`], back to the last separator so that no word is read
/// half (a cut `preroot.timeout=3600` must not become `=36`).
fn cap_input<'a>(text: &'a str, problems: &mut Vec<String>) -> &'a str {
    if text.len() <= MAX_CMDLINE_BYTES {
        return text;
    }
    let mut end = MAX_CMDLINE_BYTES;
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    let head = text.get(..end).unwrap_or("");
    let head = match head.rfind(is_separator) {
        Some(at) => head.get(..at).unwrap_or(""),
        None => "",
    };
    problems.push(format!(
        "command line is {} bytes; everything after byte {} is ignored",
        text.len(),
        head.len()
    ));
    head
}

/// A problem line: the key, its value shown escaped and shortened ([`show`]), why.
fn problem(key: &str, value: &str, why: &str) -> String {
    format!("{key}={}: {why}; ignored", show(value))
}

/// Booleans as systemd's `parse_boolean()`, case-insensitive; a bare key means true
/// (`proc_cmdline_get_bool()`).
fn parse_bool(value: Option<&str>) -> Option<bool> {
    let Some(value) = value else {
        return Some(true);
    };
    match value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

fn parse_platform(value: &str) -> Option<PlatformChoice> {
    match value.to_ascii_lowercase().as_str() {
        "none" => Some(PlatformChoice::Disabled),
        "auto" => Some(PlatformChoice::Detect),
        other => Platform::from_name(other).map(PlatformChoice::Platform),
    }
}

/// Seconds as `N`, `N.F` or `.F`, optionally with an `s` suffix. Returns the duration and
/// whether it was cut to [`TIMEOUT_MAX`]. No floats: `inf`, `nan` and `1e3` are not seconds.
fn parse_timeout(value: &str) -> Result<(Duration, bool), String> {
    let bad = || "not a number of seconds (like 30 or 2.5)".to_string();
    let number = value.strip_suffix('s').unwrap_or(value);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // Only digits are left, so a parse error can only be overflow: more than the cap anyway.
    let secs: u64 = if int.is_empty() {
        0
    } else {
        int.parse().unwrap_or(u64::MAX)
    };
    // Nanoseconds: the first 9 fraction digits, padded on the right; more are dropped.
    let mut nanos_text: String = frac.chars().take(9).collect();
    while nanos_text.len() < 9 {
        nanos_text.push('0');
    }
    let nanos: u32 = nanos_text.parse().map_err(|_| bad())?;
    if secs == 0 && nanos == 0 {
        return Err("must be more than 0".into());
    }
    let max = TIMEOUT_MAX.as_secs();
    if secs > max || (secs == max && nanos > 0) {
        return Ok((TIMEOUT_MAX, true));
    }
    Ok((Duration::new(secs, nanos), false))
}

/// An address, with or without `[...]` around it (dracut wants IPv6 bracketed in `ip=`, and
/// `nameserver=[2001:db8::53]` is common).
fn parse_addr(text: &str) -> Option<IpAddr> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    inner.parse().ok()
}

/// Interface names: the one rule every source shares ([`crate::valid::ifname`]), narrower
/// than systemd-networkd's `ifname_valid()` (no `[`, `;` or other syntax of the files the
/// name ends up in).
fn check_ifname(name: &str) -> Result<(), String> {
    crate::valid::ifname(name)
}

/// `ifname=<name>:<MAC>`: the name is up to the first `:`, the rest is the MAC (6 or 20 octets,
/// as dracut's `parse_ifname_opts`).
fn parse_ifname(value: &str) -> Result<Ifname, String> {
    let Some((name, mac)) = value.split_once(':') else {
        return Err("not <name>:<MAC>".into());
    };
    check_ifname(name)?;
    let Some(mac) = normalize_mac(mac) else {
        return Err(format!("\"{}\" is not a MAC address", show(mac)));
    };
    Ok(Ifname {
        name: name.to_string(),
        mac,
    })
}

/// `ds=<id>[;key=value...]`, as cloud-init's NoCloud reads it: the first `;`-separated item
/// is the id, every other item is `key=value` split at its first `=` (so URLs may contain
/// `=`, but not `;`).
fn parse_ds(cmd: &mut Cmdline, value: &str) {
    let mut items = value.split(';');
    let id = items.next().unwrap_or("");
    let net = match id {
        "nocloud" => false,
        "nocloud-net" => true,
        _ => {
            cmd.problems.push(problem(
                "ds",
                value,
                "only nocloud and nocloud-net are supported",
            ));
            return;
        }
    };
    let mut seed = NocloudSeed {
        net,
        ..NocloudSeed::default()
    };
    for item in items {
        if item.is_empty() {
            continue;
        }
        let Some((k, v)) = item.split_once('=') else {
            cmd.problems.push(format!(
                "ds={}: item \"{}\" is not key=value; ignored",
                show(value),
                show(item)
            ));
            continue;
        };
        let bad = |why: &str| {
            format!(
                "ds={}: {}={}: {why}; ignored",
                show(value),
                show(k),
                show(v)
            )
        };
        match k {
            "s" | "seedfrom" => {
                let ok = ["http://", "https://", "file://", "/"]
                    .iter()
                    .any(|p| v.starts_with(p));
                if ok {
                    seed.seedfrom = Some(v.to_string());
                } else {
                    cmd.problems.push(bad(
                        "not an http://, https://, file:// URL or absolute path",
                    ));
                }
            }
            "i" | "instance-id" => {
                if v.is_empty() {
                    cmd.problems.push(bad("empty instance id"));
                } else {
                    seed.instance_id = Some(v.to_string());
                }
            }
            "h" | "local-hostname" => match validate_hostname(v) {
                Ok(h) => seed.hostname = Some(h),
                Err(why) => cmd.problems.push(bad(&why)),
            },
            _ => cmd.problems.push(bad("unknown key")),
        }
    }
    cmd.nocloud = Some(seed);
}

/// Parses every `ip=` value, then applies dracut's rules for several entries
/// (`parse-ip-opts.sh`): with more than one entry, an entry without interface cannot be DHCP
/// or `off`, and only the first entry without interface is used (`ifup` takes the first
/// `ip=` that matches a NIC, and every NIC matches an entry without interface).
fn parse_ip_entries(values: &[String], problems: &mut Vec<String>) -> Vec<IpConfig> {
    let mut entries: Vec<(&str, IpConfig)> = Vec::new();
    for value in values {
        match parse_ip(value, problems) {
            Ok(entry) => entries.push((value, entry)),
            Err(why) => problems.push(problem("ip", value, &why)),
        }
    }
    let several = entries.len() > 1;
    let mut seen_bare = false;
    let mut out = Vec::new();
    for (value, entry) in entries {
        if entry.interface.is_none() {
            let refused = entry
                .methods
                .iter()
                .any(|m| matches!(m, IpMethod::Off | IpMethod::Dhcp4 | IpMethod::Dhcp6));
            if several && refused {
                problems.push(problem(
                    "ip",
                    value,
                    "DHCP or off without an interface cannot be combined with other ip= entries (dracut refuses it)",
                ));
                continue;
            }
            if seen_bare {
                problems.push(problem(
                    "ip",
                    value,
                    "only the first ip= without an interface is used",
                ));
                continue;
            }
            seen_bare = true;
        }
        out.push(entry);
    }
    out
}

/// A keyword of dracut's `autoconf` field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Dhcp4,
    Dhcp6,
    Auto6,
    Either6,
    Link6,
    /// `none` or `off`.
    Static,
}

fn keyword(word: &str) -> Result<Keyword, String> {
    match word {
        "dhcp" | "on" | "any" | "single-dhcp" => Ok(Keyword::Dhcp4),
        "dhcp6" => Ok(Keyword::Dhcp6),
        "auto6" => Ok(Keyword::Auto6),
        "either6" => Ok(Keyword::Either6),
        "link6" => Ok(Keyword::Link6),
        "none" | "off" => Ok(Keyword::Static),
        "ibft" => Err("ibft (iSCSI firmware) configuration is not supported".into()),
        "bootp" | "rarp" | "both" => Err(format!("{word} is not supported (dracut neither)")),
        _ => Err(format!("unknown method \"{}\"", show(word))),
    }
}

/// A comma list of keywords (`dhcp,dhcp6`, as dracut's `ifup` loops over them), without
/// duplicates, in order. Empty items are skipped; an empty list is `Ok(vec![])`.
fn keywords(field: &str) -> Result<Vec<Keyword>, String> {
    let mut out = Vec::new();
    for word in field.split(',').filter(|w| !w.is_empty()) {
        let k = keyword(word)?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// Splits an `ip=` value at `:` as dracut's `ip_to_var` does, except that a field starting
/// with `[` runs to the next `]` whatever it contains (dracut needs two colons inside), and
/// text after the `]` up to the next `:` stays in the field (`[2001:db8::2]/64`). Brackets
/// are removed.
fn ip_fields(value: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut rest = value;
    loop {
        if fields.len() >= MAX_IP_FIELDS {
            return Err(format!("more than {MAX_IP_FIELDS} ':'-separated fields"));
        }
        let mut field = String::new();
        if let Some(after) = rest.strip_prefix('[') {
            let Some((inside, tail)) = after.split_once(']') else {
                return Err("'[' without ']'".into());
            };
            field.push_str(inside);
            rest = tail;
        }
        match rest.split_once(':') {
            Some((head, tail)) => {
                field.push_str(head);
                fields.push(field);
                rest = tail;
            }
            None => {
                field.push_str(rest);
                fields.push(field);
                return Ok(fields);
            }
        }
    }
}

fn field(fields: &[String], n: usize) -> &str {
    fields.get(n).map(String::as_str).unwrap_or("")
}

/// Parses one `ip=` value in any of dracut's forms (see dracut.cmdline(7)):
///
/// ```text
/// ip=<methods>                                   methods: dhcp,on,any,dhcp6,auto6,either6,
///                                                         link6,single-dhcp | off | none
/// ip=<iface>:<methods>[:[<mtu>][:<macaddr>]]     methods: dhcp...link6 (not off/none)
/// ip=<client>:[<peer>]:<gw>:<netmask>:<hostname>:<iface>:<methods>[:[<mtu>][:<macaddr>]]
/// ip=<client>:[<peer>]:<gw>:<netmask>:<hostname>:<iface>:<methods>[:[<dns1>][:<dns2>]]
/// ```
///
/// `<macaddr>` is one field (`52-54-00-12-34-56`) or 6 (or 20) colon-separated ones. In the
/// long form, trailing fields may be left out; an empty `<methods>` means `none` when a
/// client address is given (the kernel's `ip=` reading) and `dhcp` otherwise (dracut).
fn parse_ip(value: &str, problems: &mut Vec<String>) -> Result<IpConfig, String> {
    let fields = ip_fields(value)?;
    let first = field(&fields, 0);
    let second = field(&fields, 1);
    if fields.len() == 1 {
        return parse_ip_short(first);
    }
    // `2001:db8::2:...` or `52:54:00:...` unbracketed: the colons inside the address were
    // taken as separators, and whatever error follows would be confusing.
    let hex_group =
        |f: &str| (1..=4).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_hexdigit());
    if hex_group(first) && hex_group(second) {
        return Err(
            "looks like an IPv6 or MAC address without brackets; write [2001:db8::2]".into(),
        );
    }
    match keywords(second) {
        Ok(ks) if !ks.is_empty() && !ks.contains(&Keyword::Static) => {
            return parse_ip_iface_form(&fields, ks);
        }
        // In the long form the second field is <peer>, an address: anything else was meant
        // as a method (`ip=eth0:bogus`), so say so rather than "eth0 is not an address".
        Err(why) if parse_cidr(second).is_none() => return Err(why),
        _ => {}
    }
    parse_ip_long_form(value, &fields, problems)
}

/// `ip=<methods>`.
fn parse_ip_short(text: &str) -> Result<IpConfig, String> {
    if text.parse::<Ipv4Addr>().is_ok() {
        return Err(
            "anaconda-style ip=<address> (with gateway=, netmask=, ksdevice=) is not supported; \
             use ip=<client>::<gateway>:<netmask>:<hostname>:<interface>:none"
                .into(),
        );
    }
    let ks = keywords(text)?;
    if ks.is_empty() {
        return Err("no method".into());
    }
    let methods = if ks.contains(&Keyword::Static) {
        if ks.len() > 1 {
            return Err("off/none cannot be combined with other methods".into());
        }
        vec![IpMethod::Off]
    } else {
        dynamic_methods(&ks)
    };
    Ok(IpConfig {
        interface: None,
        methods,
        hostname: None,
        mtu: None,
        mac: None,
        dns: Vec::new(),
    })
}

/// The methods for keywords other than `Static`.
fn dynamic_methods(ks: &[Keyword]) -> Vec<IpMethod> {
    ks.iter()
        .filter_map(|k| match k {
            Keyword::Dhcp4 => Some(IpMethod::Dhcp4),
            Keyword::Dhcp6 => Some(IpMethod::Dhcp6),
            Keyword::Auto6 => Some(IpMethod::Auto6),
            Keyword::Either6 => Some(IpMethod::Either6),
            Keyword::Link6 => Some(IpMethod::Link6),
            Keyword::Static => None,
        })
        .collect()
}

fn parse_interface(text: &str) -> Result<Option<IpInterface>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Some(mac) = normalize_mac(text) {
        return Ok(Some(IpInterface::Mac(mac)));
    }
    check_ifname(text)?;
    Ok(Some(IpInterface::Name(text.to_string())))
}

/// `ip=<iface>:<methods>[:[<mtu>][:<macaddr>]]`.
fn parse_ip_iface_form(fields: &[String], ks: Vec<Keyword>) -> Result<IpConfig, String> {
    let interface = parse_interface(field(fields, 0))?;
    let tail = fields.get(2..).unwrap_or(&[]);
    let (mtu, mac) = parse_mtu_mac(tail)?;
    Ok(IpConfig {
        interface,
        methods: dynamic_methods(&ks),
        hostname: None,
        mtu,
        mac,
        dns: Vec::new(),
    })
}

/// `[<mtu>][:<macaddr>]`: the MTU, then nothing, one MAC field, or 6 or 20 octet fields.
fn parse_mtu_mac(tail: &[String]) -> Result<(Option<u32>, Option<String>), String> {
    let mtu_text = tail.first().map(String::as_str).unwrap_or("");
    let mtu = if mtu_text.is_empty() {
        None
    } else {
        let mtu: u32 = mtu_text
            .parse()
            .ok()
            .filter(|m| (MTU_MIN..=65535).contains(m))
            .ok_or_else(|| {
                format!(
                    "MTU \"{}\" is not a number from {MTU_MIN} to 65535",
                    show(mtu_text)
                )
            })?;
        Some(mtu)
    };
    // Trailing empty fields (a trailing ':') are dropped, as dracut ignores them; an extra
    // octet is not.
    let mut octets = tail.get(1..).unwrap_or(&[]);
    while let Some((last, rest)) = octets.split_last() {
        if !last.is_empty() {
            break;
        }
        octets = rest;
    }
    let mac = if octets.is_empty() {
        None
    } else {
        let joined = octets.join(":");
        let mac = normalize_mac(&joined)
            .ok_or_else(|| format!("\"{}\" is not a MAC address", show(&joined)))?;
        Some(mac)
    };
    Ok((mtu, mac))
}

/// An address with an optional `/prefix` (`10.0.0.2/24`, `2001:db8::2/64`).
fn parse_cidr(text: &str) -> Option<(IpAddr, Option<u8>)> {
    match text.split_once('/') {
        Some((addr, prefix)) => {
            let addr: IpAddr = addr.parse().ok()?;
            if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let prefix: u8 = prefix.parse().ok()?;
            Some((addr, Some(prefix)))
        }
        None => Some((text.parse().ok()?, None)),
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// A netmask field: a prefix length, or (IPv4 only) a dotted mask with contiguous ones.
fn parse_netmask(text: &str, addr: IpAddr) -> Result<u8, String> {
    let bad = || {
        format!(
            "netmask \"{}\" is not a prefix length (0 to {}) or a contiguous dotted netmask for {addr}",
            show(text),
            max_prefix(addr)
        )
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let prefix: u8 = text.parse().map_err(|_| bad())?;
        return if prefix <= max_prefix(addr) {
            Ok(prefix)
        } else {
            Err(bad())
        };
    }
    let (IpAddr::V4(_), Ok(mask)) = (addr, text.parse::<Ipv4Addr>()) else {
        return Err(bad());
    };
    let bits = u32::from(mask);
    if bits.count_ones() != bits.leading_ones() {
        return Err(bad());
    }
    u8::try_from(bits.leading_ones()).map_err(|_| bad())
}

/// The long form: `<client>:[<peer>]:<gw>:<netmask>:<hostname>:<iface>:<methods>[:...]`.
/// Problems that do not make the entry unusable (a bad hostname, an ignored peer) go to
/// `problems` and the entry is kept; the others are the `Err`.
fn parse_ip_long_form(
    value: &str,
    fields: &[String],
    problems: &mut Vec<String>,
) -> Result<IpConfig, String> {
    let client = field(fields, 0);
    let peer = field(fields, 1);
    let gateway = field(fields, 2);
    let netmask = field(fields, 3);
    let hostname = field(fields, 4);
    let interface = parse_interface(field(fields, 5))?;
    let mut ks = keywords(field(fields, 6))?;
    if ks.is_empty() {
        // dracut: "Empty autoconf values default to dhcp"; with a client address that would
        // be refused below, while the kernel's own ip= treats it as static, so do that.
        ks.push(if client.is_empty() {
            Keyword::Dhcp4
        } else {
            Keyword::Static
        });
    }
    let is_static = ks.contains(&Keyword::Static);
    let mut methods = Vec::new();
    if is_static {
        if ks.contains(&Keyword::Dhcp4) || ks.contains(&Keyword::Dhcp6) {
            return Err("none/off (static) cannot be combined with dhcp or dhcp6".into());
        }
        if client.is_empty() {
            return Err("none/off needs a client address".into());
        }
        let Some((address, cidr_prefix)) = parse_cidr(client) else {
            return Err(format!(
                "client \"{}\" is not an address (IPv6 goes in brackets)",
                show(client)
            ));
        };
        let prefix = match (netmask.is_empty(), cidr_prefix) {
            (true, None) => {
                return Err("netmask missing (give it, or the client as address/prefix)".into())
            }
            (true, Some(p)) => p,
            (false, cidr) => {
                let p = parse_netmask(netmask, address)?;
                if cidr.is_some_and(|c| c != p) {
                    return Err(format!(
                        "client prefix /{} and netmask \"{}\" disagree",
                        cidr.unwrap_or(p),
                        show(netmask)
                    ));
                }
                p
            }
        };
        if prefix > max_prefix(address) {
            return Err(format!("prefix /{prefix} is too long for {address}"));
        }
        let gateway = if gateway.is_empty() {
            None
        } else {
            match gateway.parse::<IpAddr>() {
                Ok(gw) if gw.is_ipv4() == address.is_ipv4() => Some(gw),
                Ok(gw) => {
                    return Err(format!(
                        "gateway {gw} is not of the same family as {address}"
                    ))
                }
                Err(_) => {
                    return Err(format!(
                        "gateway \"{}\" is not an address (IPv6 goes in brackets)",
                        show(gateway)
                    ))
                }
            }
        };
        methods.push(IpMethod::Static {
            address,
            prefix,
            gateway,
        });
    } else {
        if !client.is_empty() {
            return Err("a client address makes no sense with DHCP (dracut refuses it)".into());
        }
        if !gateway.is_empty() || !netmask.is_empty() {
            problems.push(problem(
                "ip",
                value,
                "gateway and netmask are ignored without a static address",
            ));
        }
    }
    methods.extend(dynamic_methods(&ks));
    if !peer.is_empty() {
        problems.push(problem(
            "ip",
            value,
            "the <peer> field (point-to-point) is not supported; the rest of the entry is used",
        ));
    }
    let hostname = if hostname.is_empty() {
        None
    } else {
        match validate_hostname(hostname) {
            Ok(h) => Some(h),
            Err(why) => {
                problems.push(problem(
                    "ip",
                    value,
                    &format!("{why}; the rest of the entry is used"),
                ));
                None
            }
        }
    };
    let tail = fields.get(7..).unwrap_or(&[]);
    let (mtu, mac, dns) = parse_long_tail(tail)?;
    Ok(IpConfig {
        interface,
        methods,
        hostname,
        mtu,
        mac,
        dns,
    })
}

type Tail = (Option<u32>, Option<String>, Vec<IpAddr>);

/// After `<methods>`: either `[<dns1>][:<dns2>]` or `[<mtu>][:<macaddr>]`. As in dracut's
/// `ip_to_var`, addresses mean DNS; anything else is MTU and MAC.
fn parse_long_tail(tail: &[String]) -> Result<Tail, String> {
    let non_empty: Vec<&String> = tail.iter().filter(|f| !f.is_empty()).collect();
    let all_addresses =
        !non_empty.is_empty() && non_empty.iter().all(|f| f.parse::<IpAddr>().is_ok());
    if all_addresses {
        if tail.len() > 2 {
            return Err("more than two DNS servers (<dns1>:<dns2>)".into());
        }
        let dns = non_empty
            .iter()
            .filter_map(|f| f.parse::<IpAddr>().ok())
            .collect();
        return Ok((None, None, dns));
    }
    let (mtu, mac) = parse_mtu_mac(tail)?;
    Ok((mtu, mac, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::HostNic;
    use crate::providers::kernel;

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn split_quoting() {
        #[rustfmt::skip]
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("   \t\n", &[]),
            ("a b", &["a", "b"]),
            ("  a   b  ", &["a", "b"]),
            ("a\tb\nc\r\nd", &["a", "b", "c", "d"]),
            ("a\0b", &["a", "b"]),
            ("a=\"b c\"", &["a=b c"]),
            ("a=\"b c\" d", &["a=b c", "d"]),
            ("\"a b\"c", &["a bc"]),
            ("a\"\"b", &["ab"]),
            ("a='b c'", &["a=b c"]),
            ("a='x \"y\" z'", &["a=x \"y\" z"]),
            ("a=\"x 'y' z\"", &["a=x 'y' z"]),
            ("a='b'\"c\"d", &["a=bcd"]),
            ("a=\"unterminated x  y", &["a=unterminated x  y"]),
            ("a='open\nline", &["a=open\nline"]),
            ("a=", &["a="]),
            ("a=\"\"", &["a="]),
            ("\"\"", &[""]),
            ("x \"\" y", &["x", "", "y"]),
            ("a\\ b", &["a\\", "b"]),
            ("a\\\"b c\"", &["a\\b c"]),
            ("root=/dev/disk/by-label/a\\x20b", &["root=/dev/disk/by-label/a\\x20b"]),
            ("é=ü ß", &["é=ü", "ß"]),
            ("BOOT_IMAGE=/vmlinuz ro quiet\n", &["BOOT_IMAGE=/vmlinuz", "ro", "quiet"]),
        ];
        for (input, want) in cases {
            assert_eq!(split(input), words(want), "case {input:?}");
        }
    }

    /// An entry with these methods on interface `iface` (`""`: none).
    fn ent(iface: &str, methods: Vec<IpMethod>) -> IpConfig {
        IpConfig {
            interface: (!iface.is_empty()).then(|| IpInterface::Name(iface.into())),
            methods,
            hostname: None,
            mtu: None,
            mac: None,
            dns: Vec::new(),
        }
    }

    fn with(mut e: IpConfig, f: impl FnOnce(&mut IpConfig)) -> IpConfig {
        f(&mut e);
        e
    }

    fn addr(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    fn st(address: &str, prefix: u8, gateway: Option<&str>) -> IpMethod {
        IpMethod::Static {
            address: addr(address),
            prefix,
            gateway: gateway.map(addr),
        }
    }

    const MAC: &str = "52:54:00:12:34:56";

    #[test]
    fn ip_valid_forms() {
        use IpMethod::*;
        let v4 = || st("10.0.0.2", 24, Some("10.0.0.1"));
        let v6 = || st("2001:db8::2", 64, Some("2001:db8::1"));
        let mtu = |n| move |e: &mut IpConfig| e.mtu = Some(n);
        let mac = |e: &mut IpConfig| e.mac = Some(MAC.into());
        let host = |h: &'static str| move |e: &mut IpConfig| e.hostname = Some(h.into());
        let dns = |d: &[&str]| {
            let d: Vec<IpAddr> = d.iter().map(|a| addr(a)).collect();
            move |e: &mut IpConfig| e.dns = d
        };
        let by_mac = |e: &mut IpConfig| e.interface = Some(IpInterface::Mac(MAC.into()));
        // (value, entry, number of problems)
        #[rustfmt::skip]
        let cases: Vec<(&str, IpConfig, usize)> = vec![
            // ip=<methods>
            ("dhcp", ent("", vec![Dhcp4]), 0),
            ("on", ent("", vec![Dhcp4]), 0),
            ("any", ent("", vec![Dhcp4]), 0),
            ("single-dhcp", ent("", vec![Dhcp4]), 0),
            ("dhcp6", ent("", vec![Dhcp6]), 0),
            ("auto6", ent("", vec![Auto6]), 0),
            ("either6", ent("", vec![Either6]), 0),
            ("link6", ent("", vec![Link6]), 0),
            ("off", ent("", vec![Off]), 0),
            ("none", ent("", vec![Off]), 0),
            ("dhcp,dhcp6,dhcp", ent("", vec![Dhcp4, Dhcp6]), 0),
            // ip=<iface>:<methods>[:[<mtu>][:<macaddr>]]
            ("eth0:dhcp", ent("eth0", vec![Dhcp4]), 0),
            ("eth0:on", ent("eth0", vec![Dhcp4]), 0),
            ("eth0:dhcp6", ent("eth0", vec![Dhcp6]), 0),
            ("eth0:auto6", ent("eth0", vec![Auto6]), 0),
            ("eth0:either6", ent("eth0", vec![Either6]), 0),
            ("eth0:link6", ent("eth0", vec![Link6]), 0),
            ("eth0:dhcp,auto6", ent("eth0", vec![Dhcp4, Auto6]), 0),
            ("eth0:dhcp:", ent("eth0", vec![Dhcp4]), 0),
            ("eth0:dhcp::", ent("eth0", vec![Dhcp4]), 0),
            ("eth0:dhcp:1500", with(ent("eth0", vec![Dhcp4]), mtu(1500)), 0),
            ("eth0:dhcp:1500:52:54:00:12:34:56", with(with(ent("eth0", vec![Dhcp4]), mtu(1500)), mac), 0),
            ("eth0:dhcp::52:54:00:12:34:56", with(ent("eth0", vec![Dhcp4]), mac), 0),
            ("eth0:dhcp::52:54:00:12:34:56::", with(ent("eth0", vec![Dhcp4]), mac), 0),
            ("eth0:dhcp:9000:52-54-00-12-34-56", with(with(ent("eth0", vec![Dhcp4]), mtu(9000)), mac), 0),
            (":dhcp", ent("", vec![Dhcp4]), 0),
            ("52-54-00-12-34-56:dhcp", with(ent("", vec![Dhcp4]), by_mac), 0),
            ("[52:54:00:12:34:56]:dhcp", with(ent("", vec![Dhcp4]), by_mac), 0),
            // the long form, static
            ("10.0.0.2::10.0.0.1:255.255.255.0:host1:eth0:none", with(ent("eth0", vec![v4()]), host("host1")), 0),
            ("10.0.0.2::10.0.0.1:24:Host1.Example.COM:eth0:off", with(ent("eth0", vec![v4()]), host("host1.example.com")), 0),
            ("10.0.0.2/24::10.0.0.1:::eth0:none", ent("eth0", vec![v4()]), 0),
            ("10.0.0.2/24::10.0.0.1:24::eth0:none", ent("eth0", vec![v4()]), 0),
            ("10.0.0.2:::255.255.255.255::eth0:none", ent("eth0", vec![st("10.0.0.2", 32, None)]), 0),
            ("[2001:db8::2]::[2001:db8::1]:64::eth0:none", ent("eth0", vec![v6()]), 0),
            ("[2001:DB8::2]::[2001:db8::1]:64::eth0:none", ent("eth0", vec![v6()]), 0),
            ("[2001:db8::2/64]::[2001:db8::1]:::eth0:none", ent("eth0", vec![v6()]), 0),
            ("[2001:db8::2]/64::[2001:db8::1]:::eth0:none", ent("eth0", vec![v6()]), 0),
            ("[2001:db8::2]::[2001:db8::1]:64::eth0:none,auto6", ent("eth0", vec![v6(), Auto6]), 0),
            ("10.0.0.2::10.0.0.1:255.255.255.0::eth0:none:1500:52:54:00:12:34:56", with(with(ent("eth0", vec![v4()]), mtu(1500)), mac), 0),
            ("10.0.0.2::10.0.0.1:255.255.255.0::eth0:none::52:54:00:12:34:56", with(ent("eth0", vec![v4()]), mac), 0),
            ("10.0.0.2::10.0.0.1:255.255.255.0::eth0:none:10.0.0.53:10.0.0.54", with(ent("eth0", vec![v4()]), dns(&["10.0.0.53", "10.0.0.54"])), 0),
            ("10.0.0.2::10.0.0.1:255.255.255.0::eth0:none:10.0.0.53", with(ent("eth0", vec![v4()]), dns(&["10.0.0.53"])), 0),
            ("10.0.0.2::10.0.0.1:255.255.255.0::eth0:none::10.0.0.54", with(ent("eth0", vec![v4()]), dns(&["10.0.0.54"])), 0),
            ("[2001:db8::2]::[2001:db8::1]:64::eth0:none:[2001:db8::53]:10.0.0.53", with(ent("eth0", vec![v6()]), dns(&["2001:db8::53", "10.0.0.53"])), 0),
            // empty <methods>: static with a client address, dhcp without
            ("10.0.0.2::10.0.0.1:255.255.255.0::eth0:", ent("eth0", vec![v4()]), 0),
            ("10.0.0.2::10.0.0.1:255.255.255.0::eth0", ent("eth0", vec![v4()]), 0),
            ("10.0.0.2::10.0.0.1:255.255.255.0", ent("", vec![v4()]), 0),
            (":::::eth0:", ent("eth0", vec![Dhcp4]), 0),
            // the long form, dynamic
            ("::::host1:eth0:dhcp", with(ent("eth0", vec![Dhcp4]), host("host1")), 0),
            (":::::eth0:dhcp6:1280", with(ent("eth0", vec![Dhcp6]), mtu(1280)), 0),
            // kept, with a problem: bad hostname, peer, gateway with DHCP
            ("10.0.0.2::10.0.0.1:24:-badhost:eth0:none", ent("eth0", vec![v4()]), 1),
            ("10.0.0.2:10.0.0.9:10.0.0.1:24::eth0:none", ent("eth0", vec![v4()]), 1),
            ("::10.0.0.1:24::eth0:dhcp", ent("eth0", vec![Dhcp4]), 1),
        ];
        for (value, want, problems) in cases {
            let got = parse(&format!("ip={value}"));
            assert_eq!(got.ip, vec![want], "case {value}: {:?}", got.problems);
            assert_eq!(
                got.problems.len(),
                problems,
                "case {value}: {:?}",
                got.problems
            );
            for p in &got.problems {
                assert!(p.starts_with("ip="), "case {value}: {p}");
            }
        }
    }

    #[test]
    fn ip_invalid() {
        // (command line, part of the problem)
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("ip", "needs a value"),
            ("ip=", "empty value"),
            ("ip=garbage", "unknown method"),
            ("ip=DHCP", "unknown method"),
            ("ip=eth0:bogus", "unknown method \"bogus\""),
            ("ip=10.0.0.2", "anaconda-style"),
            ("ip=off,dhcp", "cannot be combined"),
            ("ip=bootp", "not supported"),
            ("ip=:::::eth0:ibft", "ibft"),
            ("ip=eth0:dhcp:99999", "MTU"),
            ("ip=eth0:dhcp:abc", "MTU"),
            ("ip=eth0:dhcp:52:54:00:12:34:56", "MTU \"52\""),
            ("ip=eth0:dhcp:1500:52:54:00:12:34", "not a MAC"),
            ("ip=eth0:dhcp::52:54:00:12:34:56:ff", "not a MAC"),
            ("ip=eth0:dhcp:1500:zz-54-00-12-34-56", "not a MAC"),
            ("ip=eth/0:dhcp", "interface name"),
            ("ip=averyveryverylongname0:dhcp", "interface name"),
            ("ip=all:dhcp", "cannot be an interface name"),
            ("ip=123:dhcp", "cannot be an interface name"),
            // Issue 16 item 15: names that would break the files they end up in.
            ("ip=10.0.0.2::10.0.0.1:24::eno1;reboot:none", "interface name \"eno1;reboot\""),
            ("ip=a[Match]:dhcp", "interface name \"a[Match]\""),
            ("ip=10.0.0.2::10.0.0.1:255.0.255.0::eth0:none", "netmask"),
            ("ip=10.0.0.2::10.0.0.1:33::eth0:none", "netmask"),
            ("ip=10.0.0.2::10.0.0.1:::eth0:none", "netmask missing"),
            ("ip=10.0.0.2/24::10.0.0.1:16::eth0:none", "disagree"),
            ("ip=10.0.0.2/33::10.0.0.1:::eth0:none", "too long"),
            ("ip=[2001:db8::2]::[2001:db8::1]:255.255.255.0::eth0:none", "netmask"),
            ("ip=10.0.0.2::[2001:db8::1]:24::eth0:none", "same family"),
            ("ip=10.0.0.2::gw:24::eth0:none", "gateway"),
            ("ip=10.0.0.2::10.0.0.1:24::eth0:dhcp", "makes no sense with DHCP"),
            ("ip=:::::eth0:none", "needs a client address"),
            ("ip=10.0.0.2::10.0.0.1:24::eth0:none,dhcp", "cannot be combined"),
            ("ip=2001:db8::2::2001:db8::1:64::eth0:none", "brackets"),
            ("ip=[2001:db8::2::eth0:none", "without ']'"),
            ("ip=10.0.0.2::10.0.0.1:24::eth0:none:1.2.3.4:5.6.7.8:9.9.9.9", "more than two DNS"),
            ("ip=10.0.0.2::10.0.0.1:24::eth0:none:2001:db8::53", "not a MAC"),
        ];
        for (input, why) in cases {
            let got = parse(input);
            assert_eq!(got.ip, vec![], "case {input}");
            assert_eq!(got.problems.len(), 1, "case {input}: {:?}", got.problems);
            let p = &got.problems[0];
            assert!(p.starts_with("ip"), "case {input}: {p}");
            assert!(p.contains(why), "case {input}: {p:?} lacks {why:?}");
        }
    }

    #[test]
    fn ip_several() {
        // (command line, kept entries' interfaces, number of problems)
        #[rustfmt::skip]
        let cases: &[(&str, &[Option<&str>], usize)] = &[
            ("ip=eth0:dhcp ip=eth1:dhcp6", &[Some("eth0"), Some("eth1")], 0),
            ("ip=eth1:dhcp6 ip=eth0:dhcp", &[Some("eth1"), Some("eth0")], 0),
            ("ip=dhcp ip=eth0:dhcp", &[Some("eth0")], 1),
            ("ip=eth0:dhcp ip=dhcp6", &[Some("eth0")], 1),
            ("ip=off ip=eth0:dhcp", &[Some("eth0")], 1),
            ("ip=10.0.0.2::10.0.0.1:24 ip=eth1:dhcp", &[None, Some("eth1")], 0),
            ("ip=eth1:dhcp ip=auto6", &[Some("eth1"), None], 0),
            ("ip=10.0.0.2::10.0.0.1:24 ip=10.0.0.3::10.0.0.1:24 ip=eth1:dhcp", &[None, Some("eth1")], 1),
            ("ip=dhcp", &[None], 0),
            ("ip=garbage ip=dhcp", &[None], 1),
        ];
        for (input, want, problems) in cases {
            let got = parse(input);
            let ifaces: Vec<Option<&str>> = got
                .ip
                .iter()
                .map(|e| match &e.interface {
                    Some(IpInterface::Name(n)) => Some(n.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(ifaces, want.to_vec(), "case {input}: {:?}", got.problems);
            assert_eq!(
                got.problems.len(),
                *problems,
                "case {input}: {:?}",
                got.problems
            );
        }
    }

    #[test]
    fn ip_cap() {
        let line: Vec<String> = (0..40).map(|n| format!("ip=eth{n}:dhcp")).collect();
        let got = parse(&line.join(" "));
        assert_eq!(got.ip.len(), caps::IP_ENTRIES.max, "case 40 entries");
        assert_eq!(got.problems.len(), 1, "case 40 entries: {:?}", got.problems);
    }

    #[test]
    fn preroot_keys() {
        let d = Cmdline::default;
        let secs = |s: u64, n: u32| Some(Duration::new(s, n));
        let on = |p| PlatformChoice::Platform(p);
        // (command line, want)
        #[rustfmt::skip]
        let cases: Vec<(&str, Cmdline)> = vec![
            ("", d()),
            ("quiet rd.break console=ttyS0,115200 preroot.unknown=1 IP=dhcp preroot_timeout=5", d()),
            ("preroot.platform=openstack", Cmdline { platform: on(Platform::Openstack), ..d() }),
            ("preroot.platform=ec2", Cmdline { platform: on(Platform::Ec2), ..d() }),
            ("preroot.platform=gce", Cmdline { platform: on(Platform::Gce), ..d() }),
            ("preroot.platform=opennebula", Cmdline { platform: on(Platform::Opennebula), ..d() }),
            ("preroot.platform=NoCloud", Cmdline { platform: on(Platform::Nocloud), ..d() }),
            ("preroot.platform=none", Cmdline { platform: PlatformChoice::Disabled, ..d() }),
            ("preroot.platform=none preroot.platform=auto", Cmdline { platform: PlatformChoice::Detect, ..d() }),
            ("preroot.platform=ec2 preroot.platform=gce", Cmdline { platform: on(Platform::Gce), ..d() }),
            ("preroot.timeout=30", Cmdline { timeout: secs(30, 0), ..d() }),
            ("preroot.timeout=2.5", Cmdline { timeout: secs(2, 500_000_000), ..d() }),
            ("preroot.timeout=.25", Cmdline { timeout: secs(0, 250_000_000), ..d() }),
            ("preroot.timeout=7.", Cmdline { timeout: secs(7, 0), ..d() }),
            ("preroot.timeout=30s", Cmdline { timeout: secs(30, 0), ..d() }),
            ("preroot.timeout=0.0000000019", Cmdline { timeout: secs(0, 1), ..d() }),
            ("preroot.timeout=3600", Cmdline { timeout: secs(3600, 0), ..d() }),
            ("preroot.timeout=5 preroot.timeout=7", Cmdline { timeout: secs(7, 0), ..d() }),
            ("preroot.grow=1 preroot.grow.lv=0 preroot.network=yes", Cmdline { grow: Some(true), grow_lv: Some(false), network: Some(true), ..d() }),
            ("preroot.grow=off preroot.network=FALSE preroot.grow.lv=On", Cmdline { grow: Some(false), network: Some(false), grow_lv: Some(true), ..d() }),
            ("preroot.grow=y preroot.network=n", Cmdline { grow: Some(true), network: Some(false), ..d() }),
            ("preroot.grow preroot.network", Cmdline { grow: Some(true), network: Some(true), ..d() }),
            ("preroot.grow=true preroot.grow=no", Cmdline { grow: Some(false), ..d() }),
            ("preroot.debug", Cmdline { debug: true, ..d() }),
            ("preroot.debug=1", Cmdline { debug: true, ..d() }),
            ("preroot.debug preroot.debug=0", Cmdline { debug: false, ..d() }),
            ("preroot.render=networkd", Cmdline { render: Some(NetFormat::Networkd), ..d() }),
            ("preroot.render=nm", Cmdline { render: Some(NetFormat::Nm), ..d() }),
            ("preroot.render=ifcfg", Cmdline { render: Some(NetFormat::Ifcfg), ..d() }),
            ("preroot.render=ENI", Cmdline { render: Some(NetFormat::Eni), ..d() }),
            ("rd.neednet=1", Cmdline { neednet: Some(true), ..d() }),
            ("rd.neednet", Cmdline { neednet: Some(true), ..d() }),
            ("rd.neednet=0", Cmdline { neednet: Some(false), ..d() }),
            ("root=UUID=1234-abcd", Cmdline { root: Some("UUID=1234-abcd".into()), ..d() }),
            ("root=/dev/sda1 root=LABEL=\"my root\"", Cmdline { root: Some("LABEL=my root".into()), ..d() }),
            ("ostree=/ostree/boot.1/fedora/abc/0", Cmdline { ostree: Some("/ostree/boot.1/fedora/abc/0".into()), ..d() }),
            ("rd.luks.key=/k luks.key=UUID=/etc/k:/dev/sdb", Cmdline { luks_keys: vec!["/k".into(), "UUID=/etc/k:/dev/sdb".into()], ..d() }),
        ];
        for (input, want) in cases {
            let got = parse(input);
            assert_eq!(got, want, "case {input}");
        }
    }

    #[test]
    fn preroot_keys_invalid() {
        let earlier = "preroot.platform=gce preroot.timeout=5 preroot.grow=1 preroot.debug \
                       preroot.render=nm rd.neednet=0 root=/dev/vda1";
        // (command line after `earlier`, part of the problem)
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("preroot.platform=vmware", "preroot.platform=vmware: not one of"),
            ("preroot.platform", "preroot.platform: needs a value"),
            ("preroot.platform=", "preroot.platform=: empty value"),
            ("preroot.timeout=abc", "preroot.timeout=abc: not a number"),
            ("preroot.timeout=0", "must be more than 0"),
            ("preroot.timeout=0.0", "must be more than 0"),
            ("preroot.timeout=0.0000000001", "must be more than 0"),
            ("preroot.timeout=-1", "not a number"),
            ("preroot.timeout=1e3", "not a number"),
            ("preroot.timeout=inf", "not a number"),
            ("preroot.timeout=NaN", "not a number"),
            ("preroot.timeout=.", "not a number"),
            ("preroot.timeout=1.2.3", "not a number"),
            ("preroot.timeout= 5", "empty value"),
            ("preroot.timeout=5ms", "not a number"),
            ("preroot.grow=maybe", "preroot.grow=maybe: not a boolean"),
            ("preroot.grow=", "preroot.grow=: not a boolean"),
            ("preroot.debug=2", "not a boolean"),
            ("rd.neednet=maybe", "not a boolean"),
            ("preroot.render=systemd", "not one of networkd"),
            ("root", "root: needs a value"),
            ("root=", "root=: empty value"),
            ("nameserver=dns.example.com", "not an IPv4 or IPv6"),
            ("nameserver=[10.0.0.1", "not an IPv4 or IPv6"),
        ];
        for (input, why) in cases {
            let got = parse(&format!("{earlier} {input}"));
            let mut want = parse(earlier);
            want.problems = got.problems.clone();
            assert_eq!(got, want, "case {input}: earlier values must stay");
            assert_eq!(got.problems.len(), 1, "case {input}: {:?}", got.problems);
            let p = &got.problems[0];
            assert!(p.contains(why), "case {input}: {p:?} lacks {why:?}");
        }
        // Cut, not refused.
        for input in [
            "preroot.timeout=3600.5",
            "preroot.timeout=36000",
            "preroot.timeout=99999999999999999999999999.9",
        ] {
            let got = parse(input);
            assert_eq!(got.timeout, Some(TIMEOUT_MAX), "case {input}");
            assert_eq!(got.problems.len(), 1, "case {input}: {:?}", got.problems);
            assert!(got.problems[0].contains("cut to it"), "case {input}");
        }
    }

    #[test]
    fn ds_nocloud() {
        let seed = |net, s: Option<&str>, i: Option<&str>, h: Option<&str>| {
            Some(NocloudSeed {
                net,
                seedfrom: s.map(Into::into),
                instance_id: i.map(Into::into),
                hostname: h.map(Into::into),
            })
        };
        // (command line, seed, number of problems)
        #[rustfmt::skip]
        let cases: Vec<(&str, Option<NocloudSeed>, usize)> = vec![
            ("ds=nocloud;s=http://10.0.0.1/seed/;i=iid;h=hostname", seed(false, Some("http://10.0.0.1/seed/"), Some("iid"), Some("hostname")), 0),
            ("ds=nocloud-net;seedfrom=http://x/?a=b&c=d;instance-id=i-1;local-hostname=Host1", seed(true, Some("http://x/?a=b&c=d"), Some("i-1"), Some("host1")), 0),
            ("ds=nocloud", seed(false, None, None, None), 0),
            ("ds=nocloud;", seed(false, None, None, None), 0),
            ("ds=nocloud;;s=/srv/seed/;", seed(false, Some("/srv/seed/"), None, None), 0),
            ("ds=nocloud;s=file:///seed/", seed(false, Some("file:///seed/"), None, None), 0),
            ("\"ds=nocloud;s=https://h/a b/\"", seed(false, Some("https://h/a b/"), None, None), 0),
            ("ds=nocloud;s=ftp://x/", seed(false, None, None, None), 1),
            ("ds=nocloud;h=-badhost;i=", seed(false, None, None, None), 2),
            ("ds=nocloud;x=1;i", seed(false, None, None, None), 2),
            ("ds=ec2", None, 1),
            ("ds=NoCloud", None, 1),
            ("ds=", None, 1),
            ("ds=nocloud;i=a ds=nocloud-net;i=b", seed(true, None, Some("b"), None), 0),
            ("ds=nocloud;i=a ds=ec2", seed(false, None, Some("a"), None), 1),
        ];
        for (input, want, problems) in cases {
            let got = parse(input);
            assert_eq!(got.nocloud, want, "case {input}");
            assert_eq!(
                got.problems.len(),
                problems,
                "case {input}: {:?}",
                got.problems
            );
            for p in &got.problems {
                assert!(p.starts_with("ds="), "case {input}: {p}");
            }
        }
    }

    #[test]
    fn ifname_and_nameserver() {
        let ifn = |n: &str, m: &str| Ifname {
            name: n.into(),
            mac: m.into(),
        };
        let ib = "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0a:bc:de";
        let ib_upper = format!("ifname=ib0:{}", ib.to_uppercase());
        let (m1, m2) = ("52:54:00:00:00:01", "52:54:00:00:00:02");
        // (command line, ifnames, nameservers, number of problems)
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<Ifname>, Vec<&str>, usize)> = vec![
            ("ifname=bootnet:52:54:00:12:34:56", vec![ifn("bootnet", MAC)], vec![], 0),
            ("ifname=bootnet:52-54-00-12-34-56", vec![ifn("bootnet", MAC)], vec![], 0),
            ("ifname=bootnet:52:54:00:AB:CD:EF", vec![ifn("bootnet", "52:54:00:ab:cd:ef")], vec![], 0),
            (&ib_upper, vec![ifn("ib0", ib)], vec![], 0),
            ("ifname=a:52:54:00:00:00:01 ifname=b:52:54:00:00:00:02", vec![ifn("a", m1), ifn("b", m2)], vec![], 0),
            // last wins, per name and per MAC
            ("ifname=a:52:54:00:00:00:01 ifname=a:52:54:00:00:00:02", vec![ifn("a", m2)], vec![], 0),
            ("ifname=a:52:54:00:00:00:01 ifname=b:52:54:00:00:00:01", vec![ifn("b", m1)], vec![], 0),
            ("ifname=bootnet:52:54:00:12:34:56:", vec![], vec![], 1),
            ("ifname=bootnet", vec![], vec![], 1),
            ("ifname=bootnet:zz", vec![], vec![], 1),
            ("ifname=a/b:52:54:00:12:34:56", vec![], vec![], 1),
            ("ifname=a[Match]:52:54:00:aa:00:01", vec![], vec![], 1),
            ("ifname=:52:54:00:12:34:56", vec![], vec![], 1),
            ("nameserver=10.0.0.53", vec![], vec!["10.0.0.53"], 0),
            ("nameserver=2001:db8::53", vec![], vec!["2001:db8::53"], 0),
            ("nameserver=[2001:db8::53]", vec![], vec!["2001:db8::53"], 0),
            ("nameserver=10.0.0.53 nameserver=[2001:db8::53] nameserver=10.0.0.53 nameserver=1.1.1.1", vec![], vec!["10.0.0.53", "2001:db8::53", "1.1.1.1"], 0),
            ("nameserver=10.0.0.300", vec![], vec![], 1),
            ("nameserver=", vec![], vec![], 1),
        ];
        for (input, ifnames, ns, problems) in cases {
            let got = parse(input);
            assert_eq!(got.ifnames, ifnames, "case {input}");
            let ns: Vec<IpAddr> = ns.into_iter().map(addr).collect();
            assert_eq!(got.nameservers, ns, "case {input}");
            assert_eq!(
                got.problems.len(),
                problems,
                "case {input}: {:?}",
                got.problems
            );
        }
        let many: Vec<String> = (0..20).map(|n| format!("nameserver=10.0.0.{n}")).collect();
        let got = parse(&many.join(" "));
        assert_eq!(
            got.nameservers.len(),
            caps::CMDLINE_NAMESERVERS.max,
            "case 20 nameservers"
        );
        assert_eq!(got.problems.len(), 1, "case 20 nameservers");
        let many: Vec<String> = (0..70)
            .map(|n| format!("ifname=n{n}:52:54:00:00:00:{n:02x}"))
            .collect();
        let got = parse(&many.join(" "));
        assert_eq!(got.ifnames.len(), caps::IFNAMES.max, "case 70 ifnames");
        assert_eq!(got.problems.len(), 1, "case 70 ifnames");
    }

    #[test]
    fn long_input_is_cut_at_a_word() {
        let pad = "x".repeat(MAX_CMDLINE_BYTES);
        // `preroot.timeout=3600` straddles the cap: it must not be read as `=36`.
        let straddle = format!(
            "preroot.debug {} preroot.timeout=3600",
            "y".repeat(MAX_CMDLINE_BYTES.saturating_sub(30))
        );
        let tail = "é".repeat(MAX_CMDLINE_BYTES);
        // (command line, debug, timeout)
        #[rustfmt::skip]
        let cases: Vec<(String, bool, Option<Duration>)> = vec![
            (format!("preroot.debug {pad} preroot.grow=1"), true, None),
            (straddle, true, None),
            (format!("{pad}{pad}"), false, None),
            (format!("preroot.timeout=9 {tail}"), false, Some(Duration::from_secs(9))),
        ];
        for (input, debug, timeout) in cases {
            let case = input.len();
            let got = parse(&input);
            assert_eq!(got.debug, debug, "case {case} bytes");
            assert_eq!(got.timeout, timeout, "case {case} bytes");
            assert_eq!(got.grow, None, "case {case} bytes");
            assert_eq!(
                got.problems.len(),
                1,
                "case {case} bytes: {:?}",
                got.problems
            );
            assert!(
                got.problems[0].starts_with("command line is"),
                "case {case} bytes"
            );
        }
        let exact = format!(
            "preroot.debug {}",
            "z".repeat(MAX_CMDLINE_BYTES.saturating_sub(14))
        );
        assert_eq!(exact.len(), MAX_CMDLINE_BYTES);
        let got = parse(&exact);
        assert!(got.debug && got.problems.is_empty(), "case exactly the cap");
    }

    #[test]
    fn problems_name_the_parameter_on_one_line() {
        let got = parse("ip=\"a\nb\" preroot.timeout='x\ty' ds=nocloud;s=\"\n\"");
        assert_eq!(got.problems.len(), 3, "{:?}", got.problems);
        for (p, key) in got.problems.iter().zip(["preroot.timeout=", "ds=", "ip="]) {
            assert!(!p.contains('\n') && !p.contains('\t'), "case {p}");
            assert!(p.starts_with(key), "case {p}");
        }
    }

    /// xorshift64*: deterministic, no crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            let n = u64::try_from(n).unwrap();
            usize::try_from(self.next().checked_rem(n).unwrap()).unwrap()
        }
    }

    fn check_junk(input: &str, nics: &[HostNic]) {
        let cmd = parse(input);
        for p in &cmd.problems {
            assert!(!p.contains('\n'), "case {input:?}: {p}");
        }
        assert!(cmd.ip.len() <= caps::IP_ENTRIES.max, "case {input:?}");
        let net = kernel::network(&cmd, nics);
        let most = caps::IP_ENTRIES.max.saturating_add(nics.len());
        assert!(net.links.len() <= most, "case {input:?}");
        let _ = kernel::hostname(&cmd);
    }

    #[test]
    fn junk_never_panics() {
        let nics = vec![
            HostNic {
                name: "eth0".into(),
                mac: MAC.into(),
            },
            HostNic {
                name: "eth1".into(),
                mac: "52:54:00:12:34:57".into(),
            },
        ];
        let colons = format!("ip={}", ":".repeat(10_000));
        let brackets = format!("ip={}", "[".repeat(5_000));
        #[rustfmt::skip]
        let nasty = [
            "\"", "'", "=", "==", "ip==", "ip=[", "ip=]", "ip=[]", "ip=[[[]]]", "ip=[]:[]:[]",
            "ip=::::::::::::::::::::::::::::::::::::::::::::::::::", "ip=:", "ip=,", "ip=dhcp,,",
            "ip=[::]:[::]:[::]:128:a:b:none", "ip=0.0.0.0::0.0.0.0:0::eth0:none",
            "ip=255.255.255.255/32::::::", "ip=1.2.3.4/", "ip=1.2.3.4/ab:::::", "ip=[1.2.3.4/999]:::::",
            "preroot.timeout=.", "preroot.timeout=s", "preroot.timeout=99999999999999999999999.99999999999999",
            "ds=;;;", "ds=nocloud;=;==;s", "ifname=:", "ifname=::::::", "nameserver=[]", "\0\0\0",
            "ip=é:dhcp", "ip=\u{202e}:dhcp", "ifname=\u{0}:52:54:00:12:34:56", &colons, &brackets,
        ];
        for input in nasty {
            check_junk(input, &nics);
        }
        #[rustfmt::skip]
        let tokens = [
            "ip=", "ifname=", "nameserver=", "ds=nocloud;", "s=", "h=", ":", "::", "[", "]", "\"", "'", " ",
            "\t", "\n", "\0", "dhcp", "none", "auto6", ",", "eth0", "10.0.0.1", "2001:db8::1", "/", "24",
            "255.255.255.0", "52:54:00:12:34:56", "52-54-00-12-34-56", "=", "preroot.timeout=", "1.5",
            "é", ";", "-", "\\", "preroot.platform=", "host", "9000",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..10_000u32 {
            let input = if round & 1 == 0 {
                let len = rng.below(200);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                let len = rng.below(40);
                (0..len).map(|_| tokens[rng.below(tokens.len())]).collect()
            };
            check_junk(&input, &nics);
        }
    }
}
