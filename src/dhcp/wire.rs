//! DHCPv4 messages (RFC 2131, options RFC 2132, classless static routes RFC 3442) and the
//! IPv4/UDP framing a packet socket needs, as pure functions over bytes.
//!
//! Panic contract: nothing here indexes, unwraps or overflows; every read goes through
//! `get(range)` and checked arithmetic, so any byte string is either parsed or refused with a
//! [`WireError`] naming the field. Builders only produce what they are given. The
//! non-allocating [`parse_udp_ipv4`] carries `#[no_panic]` (proved by `make nopanic`).
//!
//! Decoded options: 1 subnet mask, 3 routers, 6 DNS servers, 12 host name, 15 domain name,
//! 26 interface MTU, 51 lease time, 53 message type, 54 server identifier, 121 classless
//! static routes, 52 option overload (options continued in `file` and/or `sname`), and 245
//! (a site-specific code, RFC 3942, which Azure's DHCP servers use for the wire server's
//! address; kept as an address when it is 4 bytes long, its reader checks the rest). Caps: at
//! most [`MAX_ADDRS`] routers and DNS servers and [`MAX_ROUTES`] routes are kept; the rest are
//! dropped and counted in [`Repr::dropped`] so the caller can log the cut.
//!
//! ```text
//!  0      1      2      3      4..8   8..10  10..12  12..16  16..20  20..24  24..28
//!  op     htype  hlen   hops   xid    secs   flags   ciaddr  yiaddr  siaddr  giaddr
//!  28..44 chaddr  44..108 sname  108..236 file  236..240 magic 99.130.83.99  240.. options
//! ```
#![deny(clippy::arithmetic_side_effects)]

use std::fmt;
use std::net::Ipv4Addr;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
/// At most this many routers or DNS servers are kept: `caps::DHCP_ADDRESSES`.
pub const MAX_ADDRS: usize = crate::caps::DHCP_ADDRESSES.max;
/// At most this many classless routes are kept: `caps::DHCP_ROUTES`.
pub const MAX_ROUTES: usize = crate::caps::DHCP_ROUTES.max;

const MAGIC: [u8; 4] = [99, 130, 83, 99];

/// Option codes (RFC 2132, RFC 3442), by their RFC names.
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DOMAIN_NAME_SERVER: u8 = 6;
    pub const HOST_NAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const INTERFACE_MTU: u8 = 26;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_LIST: u8 = 55;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const CLIENT_ID: u8 = 61;
    pub const CLASSLESS_ROUTES: u8 = 121;
    /// Azure's wire server (a private code: its DHCP servers send it only when asked).
    pub const AZURE_WIRESERVER: u8 = 245;
    pub const END: u8 = 255;
}
/// Byte ranges of the fixed BOOTP header (also known by their RFC names).
mod field {
    use std::ops::Range;
    pub const OP: usize = 0;
    pub const XID: Range<usize> = 4..8;
    pub const YIADDR: Range<usize> = 16..20;
    pub const CHADDR: Range<usize> = 28..34;
    pub const SNAME: Range<usize> = 44..108;
    pub const FILE: Range<usize> = 108..236;
    pub const MAGIC: Range<usize> = 236..240;
    pub const OPTIONS: usize = 240;
}

/// DHCP message type (option 53). `Unknown` keeps the conversion total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> MessageType {
        match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            other => MessageType::Unknown(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        match t {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Unknown(v) => v,
        }
    }
}

/// Why bytes were refused: the field and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub field: &'static str,
    pub what: &'static str,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.what)
    }
}

fn err<T>(field: &'static str, what: &'static str) -> Result<T, WireError> {
    Err(WireError { field, what })
}

/// A classless static route (option 121): `dest/prefix` via `router` (0.0.0.0: on-link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClasslessRoute {
    pub dest: Ipv4Addr,
    pub prefix: u8,
    pub router: Ipv4Addr,
}

/// A parsed server message (OFFER, ACK, NAK).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repr {
    pub op: u8,
    pub xid: u32,
    pub yiaddr: Option<Ipv4Addr>,
    pub chaddr: [u8; 6],
    pub message_type: Option<u8>,
    pub server_id: Option<Ipv4Addr>,
    pub subnet_mask: Option<Ipv4Addr>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub domain: Option<String>,
    pub mtu: Option<u16>,
    pub lease_time: Option<u32>,
    pub classless_routes: Vec<ClasslessRoute>,
    /// Option 245: Azure's wire server (`providers::azure::wireserver`).
    pub option_245: Option<Ipv4Addr>,
    /// Values dropped by the caps, or options with a bad length (ignored).
    pub dropped: Vec<&'static str>,
    /// The caps' cuts, in words (`caps::Cap`), for the caller to log.
    pub cuts: Vec<String>,
}

impl Repr {
    pub fn message_type(&self) -> Option<MessageType> {
        self.message_type.map(MessageType::from)
    }
}

fn ip(b: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from)
}

fn text(b: &[u8]) -> Option<String> {
    // Some servers NUL-terminate strings.
    let b = match b.iter().position(|c| *c == 0) {
        Some(end) => b.get(..end)?,
        None => b,
    };
    let s = std::str::from_utf8(b).ok()?;
    (!s.is_empty() && s.chars().all(|c| c.is_ascii_graphic())).then(|| s.to_string())
}

fn ips(b: &[u8], repr: &mut Repr, name: &'static str) -> Vec<Ipv4Addr> {
    if b.is_empty() || b.len() % 4 != 0 {
        repr.dropped.push(name);
        return Vec::new();
    }
    let all: Vec<Ipv4Addr> = b.chunks_exact(4).filter_map(ip).collect();
    if all.len() > MAX_ADDRS {
        repr.dropped.push(name);
        repr.cuts.push(crate::caps::DHCP_ADDRESSES.cut());
    }
    all.into_iter().take(MAX_ADDRS).collect()
}

/// Decodes option 121 (RFC 3442): each route is `width`, the significant octets of the
/// destination, and a 4-octet router.
pub fn parse_classless_routes(mut b: &[u8]) -> Result<Vec<ClasslessRoute>, WireError> {
    const F: &str = "option 121";
    let mut routes = Vec::new();
    while let Some((&width, rest)) = b.split_first() {
        if width > 32 {
            return err(F, "prefix longer than 32");
        }
        let octets = usize::from(width.div_ceil(8));
        let (Some(dest), Some(router)) = (
            rest.get(..octets),
            rest.get(octets..octets.saturating_add(4)).and_then(ip),
        ) else {
            return err(F, "truncated route");
        };
        let mut d = [0u8; 4];
        for (slot, v) in d.iter_mut().zip(dest) {
            *slot = *v;
        }
        // Bits past the prefix must be zero (RFC 3442 section 3); mask them off.
        let mask = u32::MAX
            .checked_shl(32u32.saturating_sub(u32::from(width)))
            .unwrap_or(0);
        let dest = Ipv4Addr::from(u32::from_be_bytes(d) & mask);
        routes.push(ClasslessRoute {
            dest,
            prefix: width,
            router,
        });
        b = rest.get(octets.saturating_add(4)..).unwrap_or_default();
    }
    Ok(routes)
}

/// Walks one options area; returns the overload value (option 52) if present.
fn walk_options(mut b: &[u8], repr: &mut Repr) -> Result<u8, WireError> {
    let mut overload = 0;
    while let Some((&code, rest)) = b.split_first() {
        match code {
            opt::PAD => {
                b = rest;
                continue;
            }
            opt::END => break,
            _ => {}
        }
        let Some((&len, rest)) = rest.split_first() else {
            return err("options", "option without length");
        };
        let Some(data) = rest.get(..usize::from(len)) else {
            return err("options", "option longer than the packet");
        };
        b = rest.get(usize::from(len)..).unwrap_or_default();
        match (code, data.len()) {
            (opt::SUBNET_MASK, 4) => repr.subnet_mask = ip(data),
            (opt::ROUTER, _) => repr.routers = ips(data, repr, "routers"),
            (opt::DOMAIN_NAME_SERVER, _) => repr.dns = ips(data, repr, "dns"),
            (opt::HOST_NAME, _) => repr.hostname = text(data),
            (opt::DOMAIN_NAME, _) => repr.domain = text(data),
            (opt::INTERFACE_MTU, 2) => {
                repr.mtu = Some(u16::from_be_bytes([
                    *data.first().unwrap_or(&0),
                    *data.get(1).unwrap_or(&0),
                ]))
            }
            (opt::LEASE_TIME, 4) => {
                repr.lease_time = <[u8; 4]>::try_from(data).ok().map(u32::from_be_bytes)
            }
            (opt::OVERLOAD, 1) => overload = *data.first().unwrap_or(&0),
            (opt::MESSAGE_TYPE, 1) => repr.message_type = data.first().copied(),
            (opt::SERVER_ID, 4) => repr.server_id = ip(data),
            (opt::AZURE_WIRESERVER, 4) => repr.option_245 = ip(data),
            (opt::CLASSLESS_ROUTES, _) => match parse_classless_routes(data) {
                Ok(mut r) => {
                    if let Some(cut) = crate::caps::DHCP_ROUTES.truncate(&mut r) {
                        repr.dropped.push("classless routes");
                        repr.cuts.push(cut);
                    }
                    repr.classless_routes = r;
                }
                Err(_) => repr.dropped.push("option 121"),
            },
            (
                opt::SUBNET_MASK
                | opt::INTERFACE_MTU
                | opt::LEASE_TIME
                | opt::OVERLOAD
                | opt::MESSAGE_TYPE
                | opt::SERVER_ID
                | opt::AZURE_WIRESERVER,
                _,
            ) => repr.dropped.push("option with a bad length"),
            _ => {}
        }
    }
    Ok(overload)
}

/// Parses a DHCP message (the UDP payload).
pub fn parse(b: &[u8]) -> Result<Repr, WireError> {
    if b.get(field::MAGIC) != Some(&MAGIC[..]) {
        return err("magic cookie", "missing or wrong (not DHCP)");
    }
    let mut repr = Repr {
        op: *b.get(field::OP).unwrap_or(&0),
        ..Repr::default()
    };
    if let Some(x) = b.get(field::XID).and_then(|x| <[u8; 4]>::try_from(x).ok()) {
        repr.xid = u32::from_be_bytes(x);
    }
    repr.yiaddr = b
        .get(field::YIADDR)
        .and_then(ip)
        .filter(|a| !a.is_unspecified());
    if let Some(c) = b
        .get(field::CHADDR)
        .and_then(|c| <[u8; 6]>::try_from(c).ok())
    {
        repr.chaddr = c;
    }
    let overload = walk_options(b.get(field::OPTIONS..).unwrap_or_default(), &mut repr)?;
    if overload & 1 != 0 {
        walk_options(b.get(field::FILE).unwrap_or_default(), &mut repr)?;
    }
    if overload & 2 != 0 {
        walk_options(b.get(field::SNAME).unwrap_or_default(), &mut repr)?;
    }
    Ok(repr)
}

/// The parameters we ask for (option 55). Azure's wire server is sent only when asked for
/// (WALinuxAgent's dhclient configuration requests it); other servers ignore a code they do
/// not know.
const PARAMS: [u8; 10] = [
    opt::SUBNET_MASK,
    opt::ROUTER,
    opt::DOMAIN_NAME_SERVER,
    opt::HOST_NAME,
    opt::DOMAIN_NAME,
    opt::INTERFACE_MTU,
    opt::LEASE_TIME,
    opt::SERVER_ID,
    opt::CLASSLESS_ROUTES,
    opt::AZURE_WIRESERVER,
];

/// A message the client sends: DISCOVER (`requested` and `server` `None`) or REQUEST in
/// SELECTING state (both given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub kind: MessageType,
    pub mac: [u8; 6],
    /// Also known as `xid` in the RFC.
    pub xid: u32,
    /// Seconds since the client began (`secs`).
    pub secs: u16,
    /// Option 50.
    pub requested: Option<Ipv4Addr>,
    /// Option 54.
    pub server: Option<Ipv4Addr>,
}

impl Request {
    /// The BOOTP message: broadcast flag set, client id `01:<mac>`, maximum message size
    /// 1500, the parameter request list, padded to BOOTP's 300 bytes.
    pub fn emit(&self) -> Vec<u8> {
        let mut p = vec![0u8; field::OPTIONS];
        let head: [u8; 12] = {
            let x = self.xid.to_be_bytes();
            let s = self.secs.to_be_bytes();
            [1, 1, 6, 0, x[0], x[1], x[2], x[3], s[0], s[1], 0x80, 0]
        };
        for (slot, v) in p.iter_mut().zip(head) {
            *slot = v;
        }
        if let Some(c) = p.get_mut(field::CHADDR) {
            c.copy_from_slice(&self.mac);
        }
        if let Some(m) = p.get_mut(field::MAGIC) {
            m.copy_from_slice(&MAGIC);
        }
        p.extend_from_slice(&[opt::MESSAGE_TYPE, 1, u8::from(self.kind)]);
        p.extend_from_slice(&[opt::CLIENT_ID, 7, 1]);
        p.extend_from_slice(&self.mac);
        p.extend_from_slice(&[opt::MAX_MESSAGE_SIZE, 2, 0x05, 0xdc]); // 1500
        if let Some(r) = self.requested {
            p.extend_from_slice(&[opt::REQUESTED_IP, 4]);
            p.extend_from_slice(&r.octets());
        }
        if let Some(s) = self.server {
            p.extend_from_slice(&[opt::SERVER_ID, 4]);
            p.extend_from_slice(&s.octets());
        }
        p.extend_from_slice(&[opt::PARAMETER_LIST, PARAMS.len() as u8]);
        p.extend_from_slice(&PARAMS);
        p.push(opt::END);
        if p.len() < 300 {
            p.resize(300, 0);
        }
        p
    }
}

/// One's-complement sum over 16-bit words, folded.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut words = part.chunks_exact(2);
        for w in &mut words {
            sum = sum.wrapping_add(u32::from(u16::from_be_bytes([
                *w.first().unwrap_or(&0),
                *w.get(1).unwrap_or(&0),
            ])));
        }
        if let Some(&last) = words.remainder().first() {
            sum = sum.wrapping_add(u32::from(u16::from_be_bytes([last, 0])));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff).wrapping_add(sum.wrapping_shr(16));
    }
    !(u16::try_from(sum).unwrap_or(0xffff))
}

/// An IPv4 packet carrying one UDP datagram (what an `AF_PACKET`/`SOCK_DGRAM` socket sends).
/// `None` if the payload does not fit in one datagram.
pub fn udp_ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let udp_len = u16::try_from(payload.len().checked_add(8)?).ok()?;
    let total = udp_len.checked_add(20)?;
    let mut ip_hdr = [0u8; 20];
    let t = total.to_be_bytes();
    let (s, d) = (src.octets(), dst.octets());
    let fixed = [
        0x45, 0x10, t[0], t[1], 0, 0, 0x40, 0, 64, 17, 0, 0, s[0], s[1], s[2], s[3], d[0], d[1],
        d[2], d[3],
    ];
    ip_hdr.copy_from_slice(&fixed);
    let c = checksum(&[&ip_hdr]).to_be_bytes();
    ip_hdr[10] = c[0];
    ip_hdr[11] = c[1];
    let (sp, dp, ul) = (
        sport.to_be_bytes(),
        dport.to_be_bytes(),
        udp_len.to_be_bytes(),
    );
    let mut udp = vec![sp[0], sp[1], dp[0], dp[1], ul[0], ul[1], 0, 0];
    udp.extend_from_slice(payload);
    let pseudo = [
        s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3], 0, 17, ul[0], ul[1],
    ];
    let mut uc = checksum(&[&pseudo, &udp]);
    if uc == 0 {
        uc = 0xffff;
    }
    let uc = uc.to_be_bytes();
    if let Some(slot) = udp.get_mut(6..8) {
        slot.copy_from_slice(&uc);
    }
    let mut out = ip_hdr.to_vec();
    out.extend_from_slice(&udp);
    Some(out)
}

/// A received UDP datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
}

/// Parses an IPv4 packet holding UDP. `csum_unfinished`: the kernel says the UDP checksum was
/// left to hardware that never ran (veth, virtio offload: `TP_STATUS_CSUMNOTREADY`), so it
/// is not checked. The IP header checksum is always checked. Fragments are refused.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn parse_udp_ipv4(b: &[u8], csum_unfinished: bool) -> Result<Datagram<'_>, WireError> {
    let Some(&vihl) = b.first() else {
        return err("ipv4", "empty");
    };
    if vihl >> 4 != 4 {
        return err("ipv4 version", "not 4");
    }
    let ihl = usize::from(vihl & 0x0f).saturating_mul(4);
    let total = b
        .get(2..4)
        .and_then(|t| <[u8; 2]>::try_from(t).ok())
        .map(|t| usize::from(u16::from_be_bytes(t)))
        .unwrap_or(0);
    if ihl < 20 || total < ihl || total > b.len() {
        return err(
            "ipv4 length",
            "header or total length inconsistent with the buffer",
        );
    }
    let header = b.get(..ihl).unwrap_or_default();
    if checksum(&[header]) != 0 {
        return err("ipv4 checksum", "wrong");
    }
    let frag = b
        .get(6..8)
        .and_then(|f| <[u8; 2]>::try_from(f).ok())
        .map(u16::from_be_bytes)
        .unwrap_or(0);
    if frag & 0x3fff != 0 {
        return err("ipv4", "fragment");
    }
    if b.get(9) != Some(&17) {
        return err("ipv4 protocol", "not UDP");
    }
    let src = b.get(12..16).and_then(ip).unwrap_or(Ipv4Addr::UNSPECIFIED);
    let dst = b.get(16..20).and_then(ip).unwrap_or(Ipv4Addr::UNSPECIFIED);
    let udp = b.get(ihl..total).unwrap_or_default();
    let word = |r: std::ops::Range<usize>| {
        udp.get(r)
            .and_then(|w| <[u8; 2]>::try_from(w).ok())
            .map(u16::from_be_bytes)
    };
    let (Some(sport), Some(dport), Some(len), Some(sum)) =
        (word(0..2), word(2..4), word(4..6), word(6..8))
    else {
        return err("udp", "truncated header");
    };
    let len_us = usize::from(len);
    if len_us < 8 || len_us > udp.len() {
        return err("udp length", "inconsistent with the IP packet");
    }
    let udp = udp.get(..len_us).unwrap_or_default();
    if sum != 0 && !csum_unfinished {
        let (s, d, l) = (src.octets(), dst.octets(), len.to_be_bytes());
        let pseudo = [
            s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3], 0, 17, l[0], l[1],
        ];
        if checksum(&[&pseudo, udp]) != 0 {
            return err("udp checksum", "wrong");
        }
    }
    Ok(Datagram {
        src,
        dst,
        sport,
        dport,
        payload: udp.get(8..).unwrap_or_default(),
    })
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    /// A server reply as dnsmasq sends it, options appended to a copy of our DISCOVER head.
    fn reply(kind: MessageType, xid: u32, opts: &[u8]) -> Vec<u8> {
        let mut p = Request {
            kind: MessageType::Discover,
            mac: MAC,
            xid,
            secs: 0,
            requested: None,
            server: None,
        }
        .emit();
        p.truncate(field::OPTIONS);
        p[0] = 2;
        p[16..20].copy_from_slice(&[10, 0, 0, 17]);
        p.extend_from_slice(&[53, 1, u8::from(kind)]);
        p.extend_from_slice(opts);
        p.push(255);
        p
    }

    #[test]
    fn discover_layout() {
        let p = Request {
            kind: MessageType::Discover,
            mac: MAC,
            xid: 0xdeadbeef,
            secs: 3,
            requested: None,
            server: None,
        }
        .emit();
        assert_eq!(p.len(), 300);
        assert_eq!(&p[..4], &[1, 1, 6, 0]);
        assert_eq!(&p[4..8], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(&p[8..12], &[0, 3, 0x80, 0]);
        assert_eq!(&p[28..34], &MAC);
        assert_eq!(&p[236..243], &[99, 130, 83, 99, 53, 1, 1]);
        let r = Request {
            kind: MessageType::Request,
            mac: MAC,
            xid: 1,
            secs: 0,
            requested: Some(Ipv4Addr::new(10, 0, 0, 17)),
            server: Some(Ipv4Addr::new(10, 0, 0, 1)),
        }
        .emit();
        let parsed = parse(&r).unwrap();
        assert_eq!(parsed.message_type(), Some(MessageType::Request));
        assert_eq!(parsed.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn ack_options() {
        let opts = [
            1, 4, 255, 255, 255, 0, //
            3, 4, 10, 0, 0, 1, //
            6, 8, 10, 0, 0, 1, 8, 8, 8, 8, //
            12, 3, b'v', b'm', b'1', //
            15, 8, b'e', b'x', b'.', b'c', b'o', b'm', 0, 0, //
            26, 2, 0x05, 0xdc, //
            51, 4, 0, 0, 0x0e, 0x10, //
            54, 4, 10, 0, 0, 1, //
            121, 14, 32, 169, 254, 169, 254, 10, 0, 0, 1, 0, 10, 0, 0, 1, //
        ];
        let r = parse(&reply(MessageType::Ack, 7, &opts)).unwrap();
        assert_eq!(r.op, 2);
        assert_eq!(r.xid, 7);
        assert_eq!(r.message_type(), Some(MessageType::Ack));
        assert_eq!(r.yiaddr, Some(Ipv4Addr::new(10, 0, 0, 17)));
        assert_eq!(r.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(r.routers, [Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!(r.dns.len(), 2);
        assert_eq!(r.hostname.as_deref(), Some("vm1"));
        assert_eq!(r.domain.as_deref(), Some("ex.com"));
        assert_eq!(r.mtu, Some(1500));
        assert_eq!(r.lease_time, Some(3600));
        assert_eq!(r.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(
            r.classless_routes,
            [
                ClasslessRoute {
                    dest: Ipv4Addr::new(169, 254, 169, 254),
                    prefix: 32,
                    router: Ipv4Addr::new(10, 0, 0, 1)
                },
                ClasslessRoute {
                    dest: Ipv4Addr::UNSPECIFIED,
                    prefix: 0,
                    router: Ipv4Addr::new(10, 0, 0, 1)
                }
            ]
        );
        assert!(r.dropped.is_empty());
    }

    #[test]
    fn option_245_table() {
        type Case<'a> = (&'a str, &'a [u8], Option<Ipv4Addr>, &'a [&'a str]);
        let cases: &[Case] = &[
            ("absent", &[], None, &[]),
            (
                "azure's",
                &[245, 4, 168, 63, 129, 16],
                Some(Ipv4Addr::new(168, 63, 129, 16)),
                &[],
            ),
            (
                "short",
                &[245, 3, 168, 63, 129],
                None,
                &["option with a bad length"],
            ),
            (
                "long",
                &[245, 5, 1, 2, 3, 4, 5],
                None,
                &["option with a bad length"],
            ),
        ];
        for (case, opts, want, dropped) in cases {
            let r = parse(&reply(MessageType::Ack, 1, opts)).unwrap();
            assert_eq!(r.option_245, *want, "case {case}");
            assert_eq!(r.dropped, *dropped, "case {case}: dropped");
        }
        // We ask for it: option 55 of every message lists 245.
        let d = Request {
            kind: MessageType::Discover,
            mac: MAC,
            xid: 1,
            secs: 0,
            requested: None,
            server: None,
        }
        .emit();
        let at = d.windows(2).position(|w| w == [55, 10]).expect("option 55");
        assert_eq!(d[at + 2..at + 12], PARAMS, "parameter request list");
        assert!(PARAMS.contains(&245), "245 requested");
    }

    #[test]
    fn classless_routes_table() {
        for (bytes, want) in [
            (
                &[24u8, 192, 168, 1, 10, 0, 0, 1][..],
                Some((Ipv4Addr::new(192, 168, 1, 0), 24)),
            ),
            (
                &[9, 10, 255, 1, 2, 3, 4],
                Some((Ipv4Addr::new(10, 128, 0, 0), 9)),
            ),
            (&[33, 0, 0, 0, 0, 0, 0, 0, 0], None),
            (&[24, 192, 168], None),
            (&[8, 10, 1, 2, 3], None),
        ] {
            let got = parse_classless_routes(bytes)
                .ok()
                .and_then(|r| r.first().map(|r| (r.dest, r.prefix)));
            assert_eq!(got, want, "case {bytes:?}");
        }
        assert_eq!(parse_classless_routes(&[]).unwrap(), []);
    }

    #[test]
    fn overload_and_caps() {
        let mut p = reply(MessageType::Offer, 9, &[52, 1, 1]);
        p[108..115].copy_from_slice(&[54, 4, 10, 0, 0, 2, 255]);
        let r = parse(&p).unwrap();
        assert_eq!(r.server_id, Some(Ipv4Addr::new(10, 0, 0, 2)));
        let many: Vec<u8> = [6u8, 40]
            .into_iter()
            .chain((0..40).map(|i| i as u8))
            .collect();
        let r = parse(&reply(MessageType::Ack, 1, &many)).unwrap();
        assert_eq!(r.dns.len(), MAX_ADDRS);
        assert_eq!(r.dropped, ["dns"]);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let good = reply(
            MessageType::Ack,
            3,
            &[3, 4, 10, 0, 0, 1, 121, 5, 32, 1, 2, 3, 4],
        );
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        for i in field::OPTIONS..good.len() {
            for v in [0u8, 1, 4, 33, 255] {
                let mut b = good.clone();
                b[i] = v;
                let _ = parse(&b);
            }
        }
        assert!(parse(&[0; 239]).is_err());
        assert!(parse(&reply(MessageType::Ack, 1, &[3, 200])).is_err());
    }

    #[test]
    fn ipv4_udp_round_trip() {
        let payload = Request {
            kind: MessageType::Discover,
            mac: MAC,
            xid: 5,
            secs: 0,
            requested: None,
            server: None,
        }
        .emit();
        let pkt = udp_ipv4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, 68, 67, &payload).unwrap();
        let d = parse_udp_ipv4(&pkt, false).unwrap();
        assert_eq!((d.sport, d.dport, d.dst), (68, 67, Ipv4Addr::BROADCAST));
        assert_eq!(d.payload, &payload[..]);
        // A wrong UDP checksum is refused, unless the kernel says it was never finished.
        let mut bad = pkt.clone();
        bad[26] ^= 0xff;
        assert!(parse_udp_ipv4(&bad, false).is_err());
        assert!(parse_udp_ipv4(&bad, true).is_ok());
        // Zero means "no checksum" in IPv4.
        let mut none = pkt.clone();
        none[26] = 0;
        none[27] = 0;
        assert!(parse_udp_ipv4(&none, false).is_ok());
        let mut hdr = pkt.clone();
        hdr[8] = 1; // TTL changed: header checksum wrong
        assert!(parse_udp_ipv4(&hdr, true).is_err());
        let mut frag = pkt.clone();
        frag[6] = 0x20;
        assert!(parse_udp_ipv4(&frag, true).is_err());
        for cut in 0..pkt.len() {
            assert!(parse_udp_ipv4(&pkt[..cut], true).is_err(), "cut {cut}");
        }
    }
}
