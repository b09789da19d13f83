//! OpenNebula context medium (`CONTEXT`): `context.sh`, parsed without ever being run, and
//! mapped into a [`Context`].
//!
//! Follows cloud-init's "OpenNebula" datasource (`DataSourceOpenNebula.py`, which runs the
//! file through `bash` in `parse_shell_config`) and OpenNebula's "Contextualization" docs
//! (context variables, `ETH<n>_*`). We never execute the file: [`parse_context`] accepts the
//! shell subset OpenNebula writes, and refuses the rest (see its docs).
//!
//! Mapping (cloud-init's where it has one; decisions where it is silent):
//! - Instance id: `VMID` (unique per VM); without it cloud-init's constant
//!   `iid-dsopennebula`. cloud-init always uses the constant, which makes per-instance work
//!   never rerun on a new VM from the same image; we prefer the VM id.
//! - Hostname: the first non-empty of `SET_HOSTNAME`, `HOSTNAME`, `PUBLIC_IP`, `IP_PUBLIC`,
//!   `ETH0_IP` (cloud-init's order); an IPv4 address becomes `ip-a-b-c-d`, as cloud-init's
//!   `get_hostname` does. Validated; an invalid one is an error in the context, not kept.
//! - SSH keys: `SSH_KEY`, else `SSH_PUBLIC_KEY`, one per line, `#` lines skipped.
//! - User data: `USER_DATA`, else `USERDATA`, base64-decoded when `USERDATA_ENCODING` (or
//!   `USER_DATA_ENCODING`) is `base64` ([`crate::base64::strict`] is strict: bad base64 is an error,
//!   not garbage user data). Without user data, `START_SCRIPT_BASE64` or `START_SCRIPT`
//!   becomes the user data, as a script: `#!/bin/sh` is prepended when it has no `#!`, which
//!   is how one-context runs it. `extra.user_data_source` names the variable used.
//! - Password: `CRYPTED_PASSWORD_BASE64`, `CRYPTED_PASSWORD`, `PASSWORD_BASE64`, `PASSWORD`
//!   (first found) → the `password` secret file; `extra.password_kind` is `crypted` or
//!   `plain`. No value ever reaches the context or the log.
//! - Network, per `ETH<n>_` (link id `ETH<n>`, matched to a host NIC by `ETH<n>_MAC`; with
//!   no MAC the interface is taken to be `eth<n>`, as cloud-init's fallback does): `_METHOD`
//!   (`static` default, `dhcp`, `skip`), `_IP` + `_MASK` (default 255.255.255.0), `_GATEWAY`,
//!   `_IP6_METHOD` (`static` default, `auto` = SLAAC, `dhcp`, `disable`/`skip`), `_IP6`
//!   (or the older `_IPV6`) and `_IP6_ULA` with `_IP6_PREFIX_LENGTH` (default 64),
//!   `_IP6_GATEWAY` (or the older `_GATEWAY6`), `_MTU`, `_DNS` and `_SEARCH_DOMAIN` on the
//!   link, `_ROUTES` (`"net/prefix via gw, ..."`). Global `DNS` and `SEARCH_DOMAIN` go to
//!   [`crate::context::Network::dns`] (cloud-init copies `DNS` into every NIC; renderers
//!   merge). As in cloud-init, a network is described only when some `ETH<n>_IP*` (or
//!   `_METHOD`) variable exists; otherwise every NIC gets DHCPv4.
//! - `extra.opennebula` holds an allow-list of harmless variables ([`EXTRA_VARS`]); nothing
//!   else is copied, so tokens, passwords and scripts cannot leak through it.
//!
//! Not supported: NICs without any `ETH<n>_IP` in static mode (cloud-init derives the IP
//! from the MAC, a pre-4.14 convention; we warn and skip the IPv4 address), `ETH<n>_ALIAS*`,
//! `_VROUTER_*`, `ONEGATE` reporting, `INIT_SCRIPTS`/`FILES_DS`.
//!
//! Caps: `context.sh` is read with [`METADATA_CAP`]; ssh keys [`crate::caps::SSH_KEYS`];
//! [`crate::caps::ETH_GROUPS`].
//!
//! Panic contract: no function here panics on any input; parse errors are `Err` with the
//! line number.
#![deny(clippy::arithmetic_side_effects)]

use crate::caps;
use crate::context::{normalize_mac, Addressing, Context, Link, LinkKind, Platform, Route};
use crate::providers::netconfig::parse_cidr;
use crate::providers::{
    self, add_ssh_keys, set_hostname, store_secret, utf8, DatasourceError, Input, METADATA_CAP,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

/// cloud-init's instance id for OpenNebula when `VMID` is absent.
pub const DEFAULT_INSTANCE_ID: &str = "iid-dsopennebula";

/// Context variables copied to `extra.opennebula`: identifiers and switches, never secrets.
pub const EXTRA_VARS: [&str; 9] = [
    "DISK_ID",
    "GROW_FS",
    "NAME",
    "NETWORK",
    "ONEGATE_ENDPOINT",
    "TARGET",
    "TIMEZONE",
    "USERNAME",
    "VMID",
];

const FILE: &str = "context.sh";

/// Reads `context.sh` from the medium. A missing, non-UTF-8 or unparseable file is a
/// [`DatasourceError`]; bad values inside it are recorded in the context.
pub fn read(input: &Input) -> Result<Context, DatasourceError> {
    let mut ctx = Context::new(Some(Platform::Opennebula), input.source.clone());
    ctx.host_nics = input.host_nics.clone();
    let raw = providers::read(input.tree, FILE, METADATA_CAP)?
        .ok_or_else(|| DatasourceError::new(FILE, "missing"))?;
    let text = utf8(&raw, FILE)?;
    let vars = parse_context(text).map_err(|e| DatasourceError::new(FILE, e))?;

    identity(&mut ctx, &vars);
    secrets(&mut ctx, &vars, input);
    network(&mut ctx, &vars);
    let extra: serde_json::Map<String, serde_json::Value> = EXTRA_VARS
        .iter()
        .filter_map(|k| {
            vars.get(*k)
                .map(|v| (k.to_string(), serde_json::Value::String(v.clone())))
        })
        .collect();
    if !extra.is_empty() {
        ctx.extra
            .insert("opennebula".into(), serde_json::Value::Object(extra));
    }
    ctx.match_nics(false);
    Ok(ctx)
}

/// A non-empty variable.
fn get<'a>(vars: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    vars.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

fn object(key: &str) -> String {
    format!("{FILE}: {key}")
}

fn identity(ctx: &mut Context, vars: &BTreeMap<String, String>) {
    let id = get(vars, "VMID")
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 255 && !id.chars().any(char::is_control));
    ctx.instance_id = Some(id.unwrap_or(DEFAULT_INSTANCE_ID).to_string());

    for key in [
        "SET_HOSTNAME",
        "HOSTNAME",
        "PUBLIC_IP",
        "IP_PUBLIC",
        "ETH0_IP",
    ] {
        if let Some(value) = get(vars, key) {
            let name = match value.trim().parse::<Ipv4Addr>() {
                Ok(ip) => format!("ip-{}", ip.to_string().replace('.', "-")),
                Err(_) => value.to_string(),
            };
            set_hostname(ctx, &name, &object(key));
            break;
        }
    }

    for key in ["SSH_KEY", "SSH_PUBLIC_KEY"] {
        if let Some(keys) = get(vars, key) {
            add_ssh_keys(ctx, keys, &object(key));
            break;
        }
    }
}

/// Decodes `value` if `base64`; an error is recorded and gives `None`.
fn maybe_base64(ctx: &mut Context, key: &str, value: &str, base64: bool) -> Option<Vec<u8>> {
    if !base64 {
        return Some(value.as_bytes().to_vec());
    }
    match crate::base64::strict(value) {
        Some(data) => Some(data),
        None => {
            ctx.error("datasource", &object(key), "not valid base64; dropped");
            None
        }
    }
}

fn secrets(ctx: &mut Context, vars: &BTreeMap<String, String>, input: &Input) {
    let encoding = get(vars, "USERDATA_ENCODING").or_else(|| get(vars, "USER_DATA_ENCODING"));
    let user_data = ["USER_DATA", "USERDATA"]
        .into_iter()
        .find_map(|k| get(vars, k).map(|v| (k, v)));
    let mut payload = None;
    if let Some((key, value)) = user_data {
        payload = maybe_base64(ctx, key, value, encoding == Some("base64")).map(|d| (key, d));
    } else {
        let script = [("START_SCRIPT_BASE64", true), ("START_SCRIPT", false)]
            .into_iter()
            .find_map(|(k, b64)| get(vars, k).map(|v| (k, v, b64)));
        if let Some((key, value, b64)) = script {
            payload = maybe_base64(ctx, key, value, b64).map(|mut data| {
                // one-context runs a start script with the shell when it has no interpreter
                // line; say so, so the payload is typed as a script downstream.
                if !data.starts_with(b"#!") {
                    let mut with = b"#!/bin/sh\n".to_vec();
                    with.append(&mut data);
                    data = with;
                }
                (key, data)
            });
        }
    }
    if let Some((key, data)) = payload {
        ctx.user_data = store_secret(ctx, input.state, "user-data", &data);
        ctx.extra.insert(
            "user_data_source".into(),
            serde_json::Value::String(key.into()),
        );
    }

    let password = [
        ("CRYPTED_PASSWORD_BASE64", "crypted", true),
        ("CRYPTED_PASSWORD", "crypted", false),
        ("PASSWORD_BASE64", "plain", true),
        ("PASSWORD", "plain", false),
    ]
    .into_iter()
    .find_map(|(k, kind, b64)| get(vars, k).map(|v| (k, kind, v, b64)));
    if let Some((key, kind, value, b64)) = password {
        if let Some(data) = maybe_base64(ctx, key, value, b64) {
            ctx.password = store_secret(ctx, input.state, "password", &data);
            ctx.extra.insert(
                "password_kind".into(),
                serde_json::Value::String(kind.into()),
            );
        }
    }
}

/// `ETH<n>_REST` → `(n, "REST")`.
fn eth_var(key: &str) -> Option<(u32, &str)> {
    let (digits, rest) = key.strip_prefix("ETH")?.split_once('_')?;
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, rest))
}

fn network(ctx: &mut Context, vars: &BTreeMap<String, String>) {
    // cloud-init describes the network only if some ETH<n>_IP* exists; a `_METHOD` also
    // counts here, so a DHCP-only context is honoured.
    let described = vars
        .keys()
        .any(|k| eth_var(k).is_some_and(|(_, rest)| rest.starts_with("IP") || rest == "METHOD"));
    if let Some(dns) = get(vars, "DNS") {
        for ip in ips(ctx, "DNS", dns) {
            if !ctx.network.dns.nameservers.contains(&ip) {
                ctx.network.dns.nameservers.push(ip);
            }
        }
    }
    if let Some(search) = get(vars, "SEARCH_DOMAIN") {
        ctx.network
            .dns
            .search
            .extend(search.split_whitespace().map(str::to_ascii_lowercase));
    }
    if !described {
        return;
    }
    let numbers: BTreeSet<u32> = vars
        .keys()
        .filter_map(|k| eth_var(k))
        .map(|(n, _)| n)
        .collect();
    let mut numbers: Vec<u32> = numbers.into_iter().collect();
    if let Some(cut) = caps::ETH_GROUPS.truncate(&mut numbers) {
        ctx.warn("datasource", FILE, cut);
    }
    for n in numbers {
        if let Some(link) = nic(ctx, vars, n) {
            ctx.network.links.push(link);
        }
    }
}

/// Parses whitespace-separated IP addresses, recording bad ones.
fn ips(ctx: &mut Context, key: &str, raw: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for word in raw.split_whitespace() {
        match word.parse::<IpAddr>() {
            Ok(ip) => out.push(ip),
            Err(_) => ctx.error(
                "datasource",
                &object(key),
                format!("{word:?} is not an IP address; skipped"),
            ),
        }
    }
    out
}

fn nic(ctx: &mut Context, vars: &BTreeMap<String, String>, n: u32) -> Option<Link> {
    let nic = EthVars {
        id: format!("ETH{n}"),
        vars,
    };
    let id = &nic.id;
    let mut link = Link::new(id.clone(), LinkKind::Physical);
    match nic.field("MAC") {
        Some(raw) => match normalize_mac(raw) {
            Some(mac) => link.mac = Some(mac),
            None => {
                ctx.error(
                    "datasource",
                    &object(&nic.var("MAC")),
                    format!("{raw:?} is not a MAC address; {id} skipped"),
                );
                return None;
            }
        },
        None => {
            let name = format!("eth{n}");
            ctx.warn(
                "datasource",
                &object(id),
                format!("no {id}_MAC; assuming the interface is {name}"),
            );
            link.name = Some(name);
        }
    }
    nic_ipv4(ctx, &nic, &mut link);
    nic_ipv6(ctx, &nic, &mut link);
    nic_extras(ctx, &nic, &mut link);
    Some(link)
}

/// The `ETH<n>_*` variables of one NIC.
struct EthVars<'a> {
    id: String,
    vars: &'a BTreeMap<String, String>,
}

impl EthVars<'_> {
    /// `ETH<n>_NAME`.
    fn var(&self, name: &str) -> String {
        format!("{}_{name}", self.id)
    }

    /// The value of `ETH<n>_NAME`, trimmed.
    fn field(&self, name: &str) -> Option<&str> {
        get(self.vars, &self.var(name)).map(str::trim)
    }
}

/// `_METHOD`, `_IP`, `_MASK`, `_GATEWAY`.
fn nic_ipv4(ctx: &mut Context, nic: &EthVars, link: &mut Link) {
    let method = nic.field("METHOD").unwrap_or("static").to_ascii_lowercase();
    match method.as_str() {
        "dhcp" => link.addressing.push(Addressing::Dhcp4),
        "skip" => {}
        other => {
            if other != "static" {
                ctx.warn(
                    "datasource",
                    &object(&nic.var("METHOD")),
                    format!("unknown method {other:?}; treated as static"),
                );
            }
            let Some(ip) = nic.field("IP") else {
                let id = &nic.id;
                ctx.warn(
                    "datasource",
                    &object(id),
                    format!("no {id}_IP; deriving the address from the MAC is not supported"),
                );
                return;
            };
            let mask = nic.field("MASK").unwrap_or("255.255.255.0");
            match parse_cidr(&format!("{ip}/{mask}")) {
                Some((address, prefix)) if address.is_ipv4() => {
                    let gateway = v4_gateway(ctx, nic.field("GATEWAY"), &nic.var("GATEWAY"));
                    link.addressing.push(Addressing::Static {
                        address,
                        prefix,
                        gateway,
                    });
                }
                _ => ctx.error(
                    "datasource",
                    &object(&nic.var("IP")),
                    format!("{ip}/{mask} is not an IPv4 address and netmask; skipped"),
                ),
            }
        }
    }
}

/// `_IP6_METHOD`, `_IP6` (or `_IPV6`), `_IP6_ULA`, `_IP6_PREFIX_LENGTH`, `_IP6_GATEWAY` (or
/// `_GATEWAY6`).
fn nic_ipv6(ctx: &mut Context, nic: &EthVars, link: &mut Link) {
    let method6 = nic
        .field("IP6_METHOD")
        .unwrap_or("static")
        .to_ascii_lowercase();
    match method6.as_str() {
        "auto" => {
            link.addressing
                .push(Addressing::Slaac { dhcp6_info: false });
            return;
        }
        "dhcp" => {
            link.addressing.push(Addressing::Dhcp6);
            return;
        }
        "disable" | "skip" => return,
        "static" => {}
        other => ctx.warn(
            "datasource",
            &object(&nic.var("IP6_METHOD")),
            format!("unknown method {other:?}; treated as static"),
        ),
    }
    let prefix_raw = nic.field("IP6_PREFIX_LENGTH").unwrap_or("64");
    let prefix = prefix_raw.parse::<u8>().ok().filter(|p| *p <= 128);
    let mut gateway6 = None;
    for key in ["IP6_GATEWAY", "GATEWAY6"] {
        if let Some(raw) = nic.field(key) {
            match raw.parse::<IpAddr>() {
                Ok(gw) if gw.is_ipv6() => gateway6 = Some(gw),
                _ => ctx.error(
                    "datasource",
                    &object(&nic.var(key)),
                    format!("{raw:?} is not an IPv6 address; skipped"),
                ),
            }
            break;
        }
    }
    let addresses = [
        nic.field("IP6").or_else(|| nic.field("IPV6")),
        nic.field("IP6_ULA"),
    ];
    for raw in addresses.into_iter().flatten() {
        let Some(prefix) = prefix else {
            ctx.error(
                "datasource",
                &object(&nic.var("IP6_PREFIX_LENGTH")),
                format!("{prefix_raw:?} is not an IPv6 prefix length; {raw} skipped"),
            );
            continue;
        };
        match raw.parse::<IpAddr>() {
            Ok(address) if address.is_ipv6() => link.addressing.push(Addressing::Static {
                address,
                prefix,
                // The gateway goes on the first (global) address only.
                gateway: gateway6.take(),
            }),
            _ => ctx.error(
                "datasource",
                &object(&nic.var("IP6")),
                format!("{raw:?} is not an IPv6 address; skipped"),
            ),
        }
    }
    if let Some(gw) = gateway6 {
        link.routes.push(Route {
            to: "::/0".into(),
            via: Some(gw),
            metric: None,
            table: None,
        });
    }
}

/// `_MTU`, `_DNS`, `_SEARCH_DOMAIN`, `_ROUTES`.
fn nic_extras(ctx: &mut Context, nic: &EthVars, link: &mut Link) {
    if let Some(raw) = nic.field("MTU") {
        match raw.parse::<u32>() {
            Ok(mtu) if (68..=65535).contains(&mtu) => link.mtu = Some(mtu),
            _ => ctx.error(
                "datasource",
                &object(&nic.var("MTU")),
                format!("{raw:?} is not an MTU (68..=65535); ignored"),
            ),
        }
    }
    if let Some(raw) = nic.field("DNS") {
        link.dns.nameservers = ips(ctx, &nic.var("DNS"), raw);
    }
    if let Some(raw) = nic.field("SEARCH_DOMAIN") {
        link.dns.search = raw
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
    }
    if let Some(raw) = nic.field("ROUTES") {
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match parse_route(entry) {
                Some(route) => link.routes.push(route),
                None => ctx.error(
                    "datasource",
                    &object(&nic.var("ROUTES")),
                    format!("{entry:?} is not \"net/prefix via gateway\"; skipped"),
                ),
            }
        }
    }
}

fn v4_gateway(ctx: &mut Context, raw: Option<&str>, key: &str) -> Option<IpAddr> {
    let raw = raw?;
    match raw.parse::<IpAddr>() {
        Ok(gw) if gw.is_ipv4() => Some(gw),
        _ => {
            ctx.error(
                "datasource",
                &object(key),
                format!("{raw:?} is not an IPv4 address; skipped"),
            );
            None
        }
    }
}

/// One `ETH<n>_ROUTES` entry: `net[/prefix] via gateway`.
fn parse_route(entry: &str) -> Option<Route> {
    let words: Vec<&str> = entry.split_whitespace().collect();
    let [net, "via", gw] = words.as_slice() else {
        return None;
    };
    let via: IpAddr = gw.parse().ok()?;
    let (addr, prefix) = if net.contains('/') {
        parse_cidr(net)?
    } else {
        let addr: IpAddr = net.parse().ok()?;
        (addr, if addr.is_ipv4() { 32 } else { 128 })
    };
    (addr.is_ipv4() == via.is_ipv4()).then(|| Route {
        to: format!("{addr}/{prefix}"),
        via: Some(via),
        metric: None,
        table: None,
    })
}

/// Parses `context.sh` as the shell would, without running it.
///
/// Accepted, per statement: `NAME=value` (optionally after `export`), several per line
/// separated by blanks or `;`, and `#` comments. A value is a concatenation of
/// - `'...'`: literal up to the next `'`, newlines included (`'\''` is how OpenNebula
///   writes a quote: close, escaped quote, reopen);
/// - `"..."`: `\` escapes only `$`, `` ` ``, `"`, `\` and newline (line continuation);
/// - bare characters, where `\x` is a literal `x` and `\`+newline a continuation.
///
/// Refused with `Err("... at line N")`: anything that is not an assignment (a command, a
/// lone `;`), unterminated quotes, and whatever would need running code to get right:
/// `$NAME`/`${...}`/`$(...)` expansions, `` `...` ``, `$'...'`, a leading `~`. A `$` not
/// followed by a name character stays literal, as in the shell. A later assignment to the
/// same name wins.
pub fn parse_context(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut lx = Lexer {
        bytes: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let mut vars = BTreeMap::new();
    loop {
        lx.skip_blanks_and_newlines();
        let Some(c) = lx.peek() else { break };
        if c == b'#' {
            lx.skip_comment();
            continue;
        }
        let line = lx.line;
        let mut name = lx.name();
        if name == "export" && lx.peek().is_some_and(|c| c == b' ' || c == b'\t') {
            lx.skip_blanks();
            name = lx.name();
        }
        if name.is_empty() || lx.peek() != Some(b'=') {
            return Err(format!("not a shell variable assignment at line {line}"));
        }
        lx.bump();
        let value = lx.word()?;
        vars.insert(name, value);
        lx.skip_blanks();
        match lx.peek() {
            None | Some(b'\n') => {}
            Some(b';') => lx.bump(),
            Some(b'#') => lx.skip_comment(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {}
            Some(_) => {
                return Err(format!(
                    "not a shell variable assignment at line {}",
                    lx.line
                ))
            }
        }
    }
    Ok(vars)
}

struct Lexer<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek2(&self) -> Option<u8> {
        self.bytes.get(self.pos.saturating_add(1)).copied()
    }

    /// Moves past one byte, counting lines.
    fn bump(&mut self) {
        if self.peek() == Some(b'\n') {
            self.line = self.line.saturating_add(1);
        }
        self.pos = self.pos.saturating_add(1);
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.bump();
        }
    }

    fn skip_blanks_and_newlines(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.bump();
        }
    }

    fn skip_comment(&mut self) {
        while self.peek().is_some_and(|c| c != b'\n') {
            self.bump();
        }
    }

    fn name(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok =
                c == b'_' || c.is_ascii_alphabetic() || (self.pos > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.bump();
        }
        String::from_utf8_lossy(self.bytes.get(start..self.pos).unwrap_or_default()).into_owned()
    }

    /// One shell word after `=`. Bytes are collected as they are: quotes and escapes are
    /// ASCII, so UTF-8 sequences pass through whole.
    fn word(&mut self) -> Result<String, String> {
        let mut out: Vec<u8> = Vec::new();
        if self.peek() == Some(b'~') {
            return Err(format!(
                "tilde expansion is not supported at line {}",
                self.line
            ));
        }
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' => {
                    break
                }
                b'\'' => {
                    let opened = self.line;
                    self.bump();
                    loop {
                        match self.peek() {
                            None => {
                                return Err(format!(
                                    "unterminated single quote opened at line {opened}"
                                ))
                            }
                            Some(b'\'') => {
                                self.bump();
                                break;
                            }
                            Some(c) => {
                                out.push(c);
                                self.bump();
                            }
                        }
                    }
                }
                b'"' => {
                    let opened = self.line;
                    self.bump();
                    loop {
                        match self.peek() {
                            None => {
                                return Err(format!(
                                    "unterminated double quote opened at line {opened}"
                                ))
                            }
                            Some(b'"') => {
                                self.bump();
                                break;
                            }
                            Some(b'\\') => {
                                self.bump();
                                match self.peek() {
                                    Some(b'\n') => self.bump(),
                                    Some(e @ (b'$' | b'`' | b'"' | b'\\')) => {
                                        out.push(e);
                                        self.bump();
                                    }
                                    _ => out.push(b'\\'),
                                }
                            }
                            Some(b'$') => self.dollar(&mut out, true)?,
                            Some(b'`') => return Err(self.substitution()),
                            Some(c) => {
                                out.push(c);
                                self.bump();
                            }
                        }
                    }
                }
                b'\\' => {
                    self.bump();
                    match self.peek() {
                        Some(b'\n') => self.bump(),
                        Some(e) => {
                            out.push(e);
                            self.bump();
                        }
                        None => {
                            return Err(format!("backslash at end of file at line {}", self.line))
                        }
                    }
                }
                b'$' => self.dollar(&mut out, false)?,
                b'`' => return Err(self.substitution()),
                c => {
                    out.push(c);
                    self.bump();
                }
            }
        }
        String::from_utf8(out).map_err(|_| format!("value is not UTF-8 at line {}", self.line))
    }

    /// `$` followed by something the shell would expand is refused; otherwise literal.
    /// (`$'...'` and `$"..."` are quoting forms outside double quotes only.)
    fn dollar(&mut self, out: &mut Vec<u8>, in_dquote: bool) -> Result<(), String> {
        let expands = self.peek2().is_some_and(|c| {
            c.is_ascii_alphanumeric()
                || (!in_dquote && matches!(c, b'\'' | b'"'))
                || matches!(
                    c,
                    b'_' | b'{' | b'(' | b'@' | b'*' | b'#' | b'?' | b'!' | b'$' | b'-'
                )
        });
        if expands {
            return Err(format!(
                "shell expansion ($...) is not supported at line {}",
                self.line
            ));
        }
        out.push(b'$');
        self.bump();
        Ok(())
    }

    fn substitution(&self) -> String {
        format!(
            "command substitution (`...`) is not supported at line {}",
            self.line
        )
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::context::SourceKind;
    use crate::media::{DirTree, Tree};
    use crate::providers::netconfig::testutil::{fixtures, host_nics, source, MemTree, TempState};

    /// Reads with a fresh state directory, returned too so secret files outlive the call.
    fn run_kept(
        tree: &dyn Tree,
        nics: Vec<crate::context::HostNic>,
    ) -> (Result<Context, DatasourceError>, TempState) {
        let state = TempState::new("opennebula");
        let ctx = read(&Input {
            tree,
            source: source(SourceKind::OpennebulaContext),
            state: &state.0,
            host_nics: nics,
        });
        (ctx, state)
    }

    fn run(
        tree: &dyn Tree,
        nics: Vec<crate::context::HostNic>,
    ) -> Result<Context, DatasourceError> {
        run_kept(tree, nics).0
    }

    #[test]
    fn context_quoting_fixture() {
        let case = fixtures().join("opennebula/one-context-quoting");
        let text = std::fs::read_to_string(case.join("input/context.sh")).unwrap();
        let want: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(case.join("expected/assertions.json")).unwrap(),
        )
        .unwrap();
        let want = want["parsed_variables_equal"].as_object().unwrap();
        let got = parse_context(&text).unwrap();
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (k, v) in want {
            assert_eq!(got.get(k).map(String::as_str), v.as_str(), "case {k}");
        }
    }

    #[test]
    fn shell_subset() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("A='x'\n", &[("A", "x")]),
            ("A=\"x y\"\n", &[("A", "x y")]),
            ("A=bare\n", &[("A", "bare")]),
            ("A=\n", &[("A", "")]),
            ("A=''\n", &[("A", "")]),
            ("A=a'b'\"c\"d\n", &[("A", "abcd")]),
            ("A=\"a\\\"b\\\\c\\$d\\e\"\n", &[("A", "a\"b\\c$d\\e")]),
            ("A=\"multi\nline\"\n", &[("A", "multi\nline")]),
            ("A=\"con\\\ntinued\"\n", &[("A", "continued")]),
            ("A=con\\\ntinued\n", &[("A", "continued")]),
            ("A=a\\ b\n", &[("A", "a b")]),
            ("A='$HOME `x`'\n", &[("A", "$HOME `x`")]),
            ("A=\"cost: 5$\"\n", &[("A", "cost: 5$")]),
            ("A=#notacomment\n", &[("A", "#notacomment")]),
            ("A=1 B=2; C=3;\n", &[("A", "1"), ("B", "2"), ("C", "3")]),
            ("A=1 # trailing comment\n", &[("A", "1")]),
            ("export A=1\n", &[("A", "1")]),
            ("A=1\nA=2\n", &[("A", "2")]),
            ("  # indented comment\n\n\tA=1\r\n", &[("A", "1")]),
            ("A='ünïcødé'\n", &[("A", "ünïcødé")]),
            ("A=*.glob\n", &[("A", "*.glob")]),
            ("", &[]),
        ];
        for (text, want) in cases {
            let got = parse_context(text).unwrap_or_else(|e| panic!("case {text:?}: {e}"));
            let want: BTreeMap<String, String> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "case {text:?}");
        }
    }

    #[test]
    fn shell_refusals() {
        let cases = [
            (";", "not a shell variable assignment at line 1"),
            ("A=1\n;\n", "not a shell variable assignment at line 2"),
            (
                "A=1\necho hi\n",
                "not a shell variable assignment at line 2",
            ),
            ("A=1\n\nB =2\n", "not a shell variable assignment at line 3"),
            ("1A=2\n", "not a shell variable assignment at line 1"),
            (
                "A=1 && rm -rf /\n",
                "not a shell variable assignment at line 1",
            ),
            (
                "A=$(reboot)\n",
                "shell expansion ($...) is not supported at line 1",
            ),
            (
                "A=\"$HOME\"\n",
                "shell expansion ($...) is not supported at line 1",
            ),
            (
                "A=${X}\n",
                "shell expansion ($...) is not supported at line 1",
            ),
            (
                "A=$'x'\n",
                "shell expansion ($...) is not supported at line 1",
            ),
            (
                "A=`id`\n",
                "command substitution (`...`) is not supported at line 1",
            ),
            (
                "B=1\nA='open\nstill\n",
                "unterminated single quote opened at line 2",
            ),
            ("A=\"open\n", "unterminated double quote opened at line 1"),
            ("A=~/x\n", "tilde expansion is not supported at line 1"),
            ("A=x\\", "backslash at end of file at line 1"),
        ];
        for (text, want) in cases {
            match parse_context(text) {
                Ok(v) => panic!("case {text:?}: accepted {v:?}"),
                Err(e) => assert_eq!(e, want, "case {text:?}"),
            }
        }
    }

    fn addr(a: &Addressing) -> Option<String> {
        match a {
            Addressing::Static {
                address, prefix, ..
            } => Some(format!("{address}/{prefix}")),
            _ => None,
        }
    }

    #[test]
    fn fixtures_agree_with_cloud_init_v2() {
        let dir = fixtures().join("opennebula");
        let mut checked = 0;
        for case in ["one-eth0-static", "one-eth0-v4v6", "one-multiple-nics"] {
            let input = dir.join(case).join("input");
            let ctx = run(&DirTree::new(&input), host_nics(&input))
                .unwrap_or_else(|e| panic!("case {case}: {e}"));
            assert!(ctx.errors.is_empty(), "case {case}: {:?}", ctx.errors);
            assert!(ctx.fallbacks.is_empty(), "case {case}: {:?}", ctx.fallbacks);
            let want: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(
                    dir.join(case)
                        .join("expected/cloudinit-v2/network-config.json"),
                )
                .unwrap(),
            )
            .unwrap();
            let eths = want["ethernets"].as_object().unwrap();
            assert_eq!(ctx.network.links.len(), eths.len(), "case {case}");
            for (name, e) in eths {
                let c = format!("case {case} {name}");
                let l = ctx
                    .network
                    .links
                    .iter()
                    .find(|l| l.name.as_deref() == Some(name.as_str()))
                    .unwrap_or_else(|| panic!("{c}: no link"));
                assert_eq!(l.mac.as_deref(), e["match"]["macaddress"].as_str(), "{c}");
                let addrs: Vec<String> = l.addressing.iter().filter_map(addr).collect();
                let want_addrs: Vec<String> = e["addresses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(addrs, want_addrs, "{c}");
                let gws: Vec<String> = l
                    .addressing
                    .iter()
                    .filter_map(|a| match a {
                        Addressing::Static {
                            gateway: Some(g), ..
                        } => Some(g.to_string()),
                        _ => None,
                    })
                    .collect();
                for key in ["gateway4", "gateway6"] {
                    if let Some(gw) = e.get(key) {
                        assert!(gws.iter().any(|g| g == gw.as_str().unwrap()), "{c}: {key}");
                    }
                }
                assert_eq!(
                    gws.len(),
                    ["gateway4", "gateway6"]
                        .iter()
                        .filter(|k| e.get(**k).is_some())
                        .count(),
                    "{c}"
                );
                let mut ns: Vec<String> = l.dns.nameservers.iter().map(|a| a.to_string()).collect();
                for g in &ctx.network.dns.nameservers {
                    if !ns.contains(&g.to_string()) {
                        ns.push(g.to_string());
                    }
                }
                let want_ns: Vec<String> = e["nameservers"]["addresses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(ns, want_ns, "{c}: nameservers");
                let want_search: Vec<&str> = e["nameservers"]
                    .get("search")
                    .map(|s| {
                        s.as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_str().unwrap())
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(l.dns.search, want_search, "{c}: search");
                let want_mtu = e.get("mtu").map(|m| m.as_u64().unwrap() as u32);
                assert_eq!(l.mtu, want_mtu, "{c}: mtu");
                assert!(l.routes.is_empty(), "{c}: {:?}", l.routes);
                checked += 1;
            }
            assert_eq!(
                ctx.instance_id.as_deref(),
                Some(DEFAULT_INSTANCE_ID),
                "case {case}"
            );
            // No SET_HOSTNAME: cloud-init falls back to ETH0_IP, made a name.
            assert_eq!(ctx.hostname.as_deref(), Some("ip-10-18-1-1"), "case {case}");
        }
        assert_eq!(checked, 4);
    }

    #[test]
    fn routes_fixture() {
        let case = fixtures().join("opennebula/one-routes");
        let input = case.join("input");
        let ctx = run(&DirTree::new(&input), host_nics(&input)).unwrap();
        let want: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(case.join("expected/assertions.json")).unwrap(),
        )
        .unwrap();
        let eth0 = ctx
            .network
            .links
            .iter()
            .find(|l| l.name.as_deref() == Some("eth0"))
            .unwrap();
        for r in want["ethernets.eth0.routes_contains"].as_array().unwrap() {
            let found = eth0.routes.iter().any(|x| {
                Some(x.to.as_str()) == r["to"].as_str()
                    && x.via.map(|v| v.to_string()).as_deref() == r["via"].as_str()
            });
            assert!(found, "route {r} missing from {:?}", eth0.routes);
        }
        assert!(matches!(
            eth0.addressing[..],
            [Addressing::Static {
                prefix: 24,
                gateway: Some(_),
                ..
            }]
        ));
    }

    #[test]
    fn invalid_context_is_an_error() {
        let input = fixtures().join("malformed/opennebula-invalid-context/input");
        let e = run(&DirTree::new(&input), Vec::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "context.sh: not a shell variable assignment at line 1"
        );
        let e = run(&MemTree::new(&[]), Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), "context.sh: missing");
        let e = run(&MemTree::new(&[("context.sh", b"A='\xff'\n")]), Vec::new()).unwrap_err();
        assert!(
            e.to_string().starts_with("context.sh: not valid UTF-8"),
            "{e}"
        );
    }

    #[test]
    fn identity_secrets_and_extra() {
        let nic = crate::context::HostNic {
            name: "ens3".into(),
            mac: "02:00:0a:00:00:05".into(),
        };
        let context =
            "VMID='42'\nNAME='web'\nSET_HOSTNAME='Web-1.example.com'\nHOSTNAME='ignored'\n\
            SSH_PUBLIC_KEY='ssh-ed25519 AAA one\n# comment\nssh-ed25519 BBB two'\n\
            USER_DATA='I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogeAo='\nUSERDATA_ENCODING='base64'\n\
            START_SCRIPT='echo not used'\nCRYPTED_PASSWORD='$6$salt$hash'\nPASSWORD='plain'\n\
            ONEGATE_TOKEN='tok'\nETH0_MAC='02:00:0a:00:00:05'\nETH0_METHOD='dhcp'\n\
            ETH0_IP6_METHOD='auto'\n";
        let tree = MemTree::new(&[("context.sh", context.as_bytes())]);
        let (ctx, _state) = run_kept(&tree, vec![nic]);
        let ctx = ctx.unwrap();
        assert!(ctx.errors.is_empty(), "{:?}", ctx.errors);
        assert_eq!(ctx.instance_id.as_deref(), Some("42"));
        assert_eq!(ctx.hostname.as_deref(), Some("web-1.example.com"));
        assert_eq!(ctx.ssh_keys, ["ssh-ed25519 AAA one", "ssh-ed25519 BBB two"]);
        let ud = ctx.user_data.as_ref().unwrap();
        assert_eq!(
            std::fs::read(&ud.path).unwrap(),
            b"#cloud-config\nhostname: x\n"
        );
        assert_eq!(ctx.extra["user_data_source"], "USER_DATA");
        let pw = ctx.password.as_ref().unwrap();
        assert_eq!(std::fs::read(&pw.path).unwrap(), b"$6$salt$hash");
        assert_eq!(ctx.extra["password_kind"], "crypted");
        assert_eq!(ctx.extra["opennebula"]["VMID"], "42");
        assert_eq!(ctx.extra["opennebula"]["NAME"], "web");
        let json = serde_json::to_string(&ctx).unwrap();
        for secret in ["$6$salt", "plain", "tok", "I2Nsb3Vk", "not used"] {
            assert!(!json.contains(secret), "{secret} leaked: {json}");
        }
        let l = &ctx.network.links[0];
        assert_eq!(l.id, "ETH0");
        assert_eq!(l.name.as_deref(), Some("ens3"));
        assert_eq!(
            l.addressing,
            vec![Addressing::Dhcp4, Addressing::Slaac { dhcp6_info: false }]
        );
    }

    #[test]
    fn start_script_and_bad_values() {
        let context = "START_SCRIPT_BASE64='ZWNobyBoaQo='\nPASSWORD_BASE64='cGFzcw=='\n\
            ETH1_IP='10.0.0.2'\nETH1_MASK='255.255.0.255'\nETH1_MTU='huge'\nETH1_DNS='1.1.1.1 nope'\n\
            ETH1_ROUTES='10.1.0.0/16 via 10.0.0.1, garbage, 10.2.0.0/16 via fe80::1'\n\
            ETH2_MAC='zz'\nETH2_IP='10.0.0.3'\nDNS='8.8.8.8'\nSEARCH_DOMAIN='Example.com'\n";
        let tree = MemTree::new(&[("context.sh", context.as_bytes())]);
        let (ctx, _state) = run_kept(&tree, Vec::new());
        let ctx = ctx.unwrap();
        let ud = ctx.user_data.as_ref().unwrap();
        assert_eq!(std::fs::read(&ud.path).unwrap(), b"#!/bin/sh\necho hi\n");
        assert_eq!(ud.kind, crate::context::PayloadType::Script);
        assert_eq!(ctx.extra["user_data_source"], "START_SCRIPT_BASE64");
        assert_eq!(
            std::fs::read(&ctx.password.as_ref().unwrap().path).unwrap(),
            b"pass"
        );
        assert_eq!(ctx.extra["password_kind"], "plain");
        let objects: Vec<&str> = ctx.errors.iter().map(|p| p.object.as_str()).collect();
        assert_eq!(
            objects,
            [
                "context.sh: ETH1_IP",
                "context.sh: ETH1_MTU",
                "context.sh: ETH1_DNS",
                "context.sh: ETH1_ROUTES",
                "context.sh: ETH1_ROUTES",
                "context.sh: ETH2_MAC",
            ],
            "{:?}",
            ctx.errors
        );
        let eth1 = &ctx.network.links[0];
        assert_eq!(eth1.name.as_deref(), Some("eth1"), "no MAC: assumed eth1");
        assert_eq!(eth1.routes.len(), 1);
        assert_eq!(ctx.network.dns.search, ["example.com"]);
        // With a bad base64 user data, nothing is stored and the error says so.
        let tree = MemTree::new(&[(
            "context.sh",
            b"USER_DATA='%%%'\nUSERDATA_ENCODING='base64'\n",
        )]);
        let ctx = run(&tree, Vec::new()).unwrap();
        assert!(ctx.user_data.is_none());
        assert_eq!(ctx.errors[0].object, "context.sh: USER_DATA");
        // No ETH<n>_IP*: no network description, so DHCP on every NIC.
        let nic = crate::context::HostNic {
            name: "eth0".into(),
            mac: "02:00:00:00:00:01".into(),
        };
        let tree = MemTree::new(&[("context.sh", b"ETH0_MAC='02:00:00:00:00:01'\n")]);
        let ctx = run(&tree, vec![nic]).unwrap();
        assert_eq!(ctx.fallbacks[0].kind, "dhcp4-all-nics");
    }
}
