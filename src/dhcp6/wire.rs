//! DHCPv6 messages (RFC 8415) as pure functions over bytes: a checked view ([`Packet`]) and a
//! high-level form ([`Repr`]) that parses what a server sends and emits what a client sends.
//!
//! Owns the client-server message format (section 8) and the options a client needs: client
//! and server identifiers with their DUIDs (section 11; the type is decoded for display,
//! the bytes are kept opaque), IA_NA with nested IA Address and Status Code (21.4, 21.6,
//! 21.13), Option Request, Preference, Elapsed Time, Status Code, Rapid Commit (21.7-21.14),
//! DNS servers and the domain search list (RFC 3646; names in RFC 1035 wire format,
//! uncompressed as RFC 8415 section 10 requires), SOL_MAX_RT and INF_MAX_RT (21.24, 21.25).
//! Other options are skipped. Never handles relay messages (RELAY-FORW/REPL: a client never
//! receives them), IA_TA, IA_PD, authentication or Reconfigure, and never decides anything:
//! what a message means to a client is `client.rs`'s business.
//!
//! Panic contract: nothing here indexes, unwraps or overflows (`arithmetic_side_effects` is
//! denied); every read goes through [`crate::bytes`] or `get(range)`. Once
//! [`Packet::new_checked`] has passed, no accessor panics, and [`Repr::parse`] never panics
//! on any bytes: a message is parsed or refused with a [`WireError`] naming the field and
//! the byte offset. The non-allocating entry points ([`check`], [`header`], [`next_option`],
//! [`check_name`], [`duid_kind`]) carry `#[no_panic]`, proved by `make nopanic`.
//!
//! Damage, caps and hostile names: broken framing (an option running past its container, a
//! fixed-size option of the wrong size) refuses the message. Values are cut, never silently:
//! at most [`MAX_IA_NA`] IA_NAs, [`MAX_ADDRS_PER_IA`] addresses per IA, [`MAX_DNS`] DNS
//! servers, [`MAX_DOMAINS`] domains and [`MAX_ORO`] requested options are kept; a repeated
//! option, a DNS server or IA address that is not unicast, and a domain name that is not a
//! plain host name (compression, a byte outside letters, digits, `-` and `_`, a leading or
//! trailing `-`, over 255 bytes) are dropped. Each cut is a [`Cut`] in [`Repr::cuts`], for
//! the caller to log and record.
//!
//! ```text
//!  0          1..4             4..
//!  msg-type   transaction-id   options: option-code(2) option-len(2) option-data(len) ...
//!  IA_NA data:  IAID(4) T1(4) T2(4) IA_NA-options
//!  IAADDR data: address(16) preferred-lifetime(4) valid-lifetime(4) IAaddr-options
//!  STATUS_CODE: status-code(2) status-message(UTF-8)
//! ```
#![deny(clippy::arithmetic_side_effects)]

use crate::bytes::{array, be_u16, be_u32, put};
use std::fmt;
use std::net::Ipv6Addr;

/// UDP port clients listen on.
pub const CLIENT_PORT: u16 = 546;
/// UDP port servers and relay agents listen on.
pub const SERVER_PORT: u16 = 547;
/// `All_DHCP_Relay_Agents_and_Servers` (section 7.1), where a client sends everything.
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// At most this many IA_NA options per message are kept (we send one): `caps::DHCP6_IA_NA`.
pub const MAX_IA_NA: usize = crate::caps::DHCP6_IA_NA.max;
/// At most this many addresses per IA_NA are kept: `caps::DHCP6_ADDRESSES`.
pub const MAX_ADDRS_PER_IA: usize = crate::caps::DHCP6_ADDRESSES.max;
/// At most this many DNS servers are kept (as for DHCPv4): `caps::DHCP6_DNS`.
pub const MAX_DNS: usize = crate::caps::DHCP6_DNS.max;
/// At most this many search domains are kept: `caps::DHCP6_DOMAINS`.
pub const MAX_DOMAINS: usize = crate::caps::DHCP6_DOMAINS.max;
/// At most this many option codes of an Option Request are kept: `caps::DHCP6_ORO`.
pub const MAX_ORO: usize = crate::caps::DHCP6_ORO.max;
/// A status message longer than this (bytes) is cut at a character boundary.
pub const MAX_STATUS_MESSAGE: usize = 256;

/// Byte ranges of the fixed header (section 8).
mod field {
    use std::ops::Range;
    pub const MSG_TYPE: usize = 0;
    /// Also known as `transaction-id` in the RFC.
    pub const XID: Range<usize> = 1..4;
    pub const OPTIONS: usize = 4;
}

/// Option codes (IANA "DHCPv6 Option Codes"; RFC 8415 section 21, RFC 3646, RFC 8415 21.23-25).
pub mod option {
    pub const CLIENTID: u16 = 1;
    pub const SERVERID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IAADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const PREFERENCE: u16 = 7;
    pub const ELAPSED_TIME: u16 = 8;
    pub const RELAY_MSG: u16 = 9;
    pub const AUTH: u16 = 11;
    pub const UNICAST: u16 = 12;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const USER_CLASS: u16 = 15;
    pub const VENDOR_CLASS: u16 = 16;
    pub const VENDOR_OPTS: u16 = 17;
    pub const INTERFACE_ID: u16 = 18;
    pub const RECONF_MSG: u16 = 19;
    pub const RECONF_ACCEPT: u16 = 20;
    pub const DNS_SERVERS: u16 = 23;
    pub const DOMAIN_LIST: u16 = 24;
    pub const IA_PD: u16 = 25;
    pub const IAPREFIX: u16 = 26;
    pub const INFORMATION_REFRESH_TIME: u16 = 32;
    pub const SOL_MAX_RT: u16 = 82;
    pub const INF_MAX_RT: u16 = 83;

    /// The RFC's name of an option, for messages.
    pub fn name(code: u16) -> &'static str {
        match code {
            CLIENTID => "CLIENTID",
            SERVERID => "SERVERID",
            IA_NA => "IA_NA",
            IA_TA => "IA_TA",
            IAADDR => "IAADDR",
            ORO => "ORO",
            PREFERENCE => "PREFERENCE",
            ELAPSED_TIME => "ELAPSED_TIME",
            STATUS_CODE => "STATUS_CODE",
            RAPID_COMMIT => "RAPID_COMMIT",
            DNS_SERVERS => "DNS_SERVERS",
            DOMAIN_LIST => "DOMAIN_LIST",
            IA_PD => "IA_PD",
            SOL_MAX_RT => "SOL_MAX_RT",
            INF_MAX_RT => "INF_MAX_RT",
            _ => "option",
        }
    }
}

/// Message types (section 7.3). `Unknown` keeps the conversion total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Solicit,
    Advertise,
    Request,
    Confirm,
    Renew,
    Rebind,
    Reply,
    Release,
    Decline,
    Reconfigure,
    InformationRequest,
    RelayForw,
    RelayRepl,
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> MessageType {
        match v {
            1 => MessageType::Solicit,
            2 => MessageType::Advertise,
            3 => MessageType::Request,
            4 => MessageType::Confirm,
            5 => MessageType::Renew,
            6 => MessageType::Rebind,
            7 => MessageType::Reply,
            8 => MessageType::Release,
            9 => MessageType::Decline,
            10 => MessageType::Reconfigure,
            11 => MessageType::InformationRequest,
            12 => MessageType::RelayForw,
            13 => MessageType::RelayRepl,
            other => MessageType::Unknown(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        match t {
            MessageType::Solicit => 1,
            MessageType::Advertise => 2,
            MessageType::Request => 3,
            MessageType::Confirm => 4,
            MessageType::Renew => 5,
            MessageType::Rebind => 6,
            MessageType::Reply => 7,
            MessageType::Release => 8,
            MessageType::Decline => 9,
            MessageType::Reconfigure => 10,
            MessageType::InformationRequest => 11,
            MessageType::RelayForw => 12,
            MessageType::RelayRepl => 13,
            MessageType::Unknown(v) => v,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            MessageType::Solicit => "SOLICIT",
            MessageType::Advertise => "ADVERTISE",
            MessageType::Request => "REQUEST",
            MessageType::Confirm => "CONFIRM",
            MessageType::Renew => "RENEW",
            MessageType::Rebind => "REBIND",
            MessageType::Reply => "REPLY",
            MessageType::Release => "RELEASE",
            MessageType::Decline => "DECLINE",
            MessageType::Reconfigure => "RECONFIGURE",
            MessageType::InformationRequest => "INFORMATION-REQUEST",
            MessageType::RelayForw => "RELAY-FORW",
            MessageType::RelayRepl => "RELAY-REPL",
            MessageType::Unknown(v) => return write!(f, "message type {v}"),
        };
        f.write_str(name)
    }
}

/// Status codes (section 21.13). `Unknown` keeps the conversion total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    Success,
    UnspecFail,
    NoAddrsAvail,
    NoBinding,
    NotOnLink,
    UseMulticast,
    NoPrefixAvail,
    Unknown(u16),
}

impl From<u16> for StatusCode {
    fn from(v: u16) -> StatusCode {
        match v {
            0 => StatusCode::Success,
            1 => StatusCode::UnspecFail,
            2 => StatusCode::NoAddrsAvail,
            3 => StatusCode::NoBinding,
            4 => StatusCode::NotOnLink,
            5 => StatusCode::UseMulticast,
            6 => StatusCode::NoPrefixAvail,
            other => StatusCode::Unknown(other),
        }
    }
}

impl From<StatusCode> for u16 {
    fn from(s: StatusCode) -> u16 {
        match s {
            StatusCode::Success => 0,
            StatusCode::UnspecFail => 1,
            StatusCode::NoAddrsAvail => 2,
            StatusCode::NoBinding => 3,
            StatusCode::NotOnLink => 4,
            StatusCode::UseMulticast => 5,
            StatusCode::NoPrefixAvail => 6,
            StatusCode::Unknown(v) => v,
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusCode::Success => f.write_str("Success"),
            StatusCode::UnspecFail => f.write_str("UnspecFail"),
            StatusCode::NoAddrsAvail => f.write_str("NoAddrsAvail"),
            StatusCode::NoBinding => f.write_str("NoBinding"),
            StatusCode::NotOnLink => f.write_str("NotOnLink"),
            StatusCode::UseMulticast => f.write_str("UseMulticast"),
            StatusCode::NoPrefixAvail => f.write_str("NoPrefixAvail"),
            StatusCode::Unknown(v) => write!(f, "status {v}"),
        }
    }
}

/// A Status Code option: the code and the server's message (control characters replaced by
/// `?`, invalid UTF-8 by U+FFFD, cut at [`MAX_STATUS_MESSAGE`] bytes: it goes to logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: StatusCode,
    pub message: String,
}

impl Status {
    pub fn is_success(&self) -> bool {
        self.code == StatusCode::Success
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} ({:?})", self.code, self.message)
        }
    }
}

/// Why bytes were refused: the field, what was wrong, and where (offset in the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub field: &'static str,
    pub what: &'static str,
    pub offset: usize,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DHCPv6 {} at byte {}: {}",
            self.field, self.offset, self.what
        )
    }
}

impl std::error::Error for WireError {}

fn err<T>(field: &'static str, what: &'static str, offset: usize) -> Result<T, WireError> {
    Err(WireError {
        field,
        what,
        offset,
    })
}

/// What is wrong with a domain name in a DOMAIN_LIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameFault {
    /// A compression pointer: RFC 8415 section 10 forbids them.
    Compressed,
    /// Label type bits 01 or 10 (RFC 6891 extended labels, reserved).
    ReservedLabelType,
    /// A label or the terminating zero is missing before the end of the option.
    Unterminated,
    /// More than 255 bytes on the wire.
    TooLong,
    /// A byte other than a letter, digit, `-` or `_`.
    BadByte,
    /// A label starting or ending with `-` (could be read as a command-line flag).
    EdgeHyphen,
    /// The root name alone (a lone zero byte).
    Root,
}

impl fmt::Display for NameFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameFault::Compressed => "a compression pointer (not allowed in DHCPv6)",
            NameFault::ReservedLabelType => "a reserved label type",
            NameFault::Unterminated => "runs past the end of the option",
            NameFault::TooLong => "longer than 255 bytes",
            NameFault::BadByte => "a byte other than a letter, digit, '-' or '_'",
            NameFault::EdgeHyphen => "a label starting or ending with '-'",
            NameFault::Root => "the root name alone",
        })
    }
}

/// Why a value was dropped while parsing (the message itself was kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// More than this many; the rest were dropped.
    Cap(usize),
    /// The option appeared again; the first one is used.
    Duplicate,
    /// A domain name was skipped; with `true`, the rest of the option too (framing lost).
    BadName(NameFault, bool),
    /// An address that is unspecified, loopback or multicast.
    NotUnicast,
    /// The status message was cut to this many bytes.
    Truncated(usize),
}

/// One value dropped while parsing: which option, where, and why. The caller logs it and
/// records it (STYLE: a cap is never silent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub option: &'static str,
    pub offset: usize,
    pub reason: CutReason,
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DHCPv6 {} at byte {}: ", self.option, self.offset)?;
        match self.reason {
            CutReason::Cap(n) => write!(f, "more than {n}; the rest are dropped"),
            CutReason::Duplicate => f.write_str("repeated; the first is used"),
            CutReason::BadName(fault, false) => write!(f, "domain name skipped: {fault}"),
            CutReason::BadName(fault, true) => {
                write!(f, "domain name and the rest of the list skipped: {fault}")
            }
            CutReason::NotUnicast => f.write_str("not a unicast address; dropped"),
            CutReason::Truncated(n) => write!(f, "status message cut to {n} bytes"),
        }
    }
}

/// A DHCP Unique Identifier (section 11): opaque bytes, 2 to 130 long (type code included).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Duid(Vec<u8>);

/// A DUID's type, decoded for display only (section 11.1: DUIDs are compared as bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuidKind<'a> {
    /// Type 1: link-layer address plus time (seconds since 2000-01-01 UTC, mod 2^32).
    Llt {
        hw_type: u16,
        time: u32,
        lladdr: &'a [u8],
    },
    /// Type 2: enterprise number and an identifier.
    En { enterprise: u32, id: &'a [u8] },
    /// Type 3: link-layer address.
    Ll { hw_type: u16, lladdr: &'a [u8] },
    /// Type 4: UUID (RFC 6355).
    Uuid([u8; 16]),
    /// Another type, or a known type with a body of the wrong size.
    Other(u16),
}

/// Decodes the type of a DUID (`b` is the whole DUID).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn duid_kind(b: &[u8]) -> DuidKind<'_> {
    let kind = be_u16(b, 0).unwrap_or(0);
    let body = b.get(2..).unwrap_or_default();
    match kind {
        1 => match (be_u16(body, 0), be_u32(body, 2), body.get(6..)) {
            (Some(hw_type), Some(time), Some(lladdr)) if !lladdr.is_empty() => DuidKind::Llt {
                hw_type,
                time,
                lladdr,
            },
            _ => DuidKind::Other(kind),
        },
        2 => match (be_u32(body, 0), body.get(4..)) {
            (Some(enterprise), Some(id)) if !id.is_empty() => DuidKind::En { enterprise, id },
            _ => DuidKind::Other(kind),
        },
        3 => match (be_u16(body, 0), body.get(2..)) {
            (Some(hw_type), Some(lladdr)) if !lladdr.is_empty() => DuidKind::Ll { hw_type, lladdr },
            _ => DuidKind::Other(kind),
        },
        4 => match <[u8; 16]>::try_from(body) {
            Ok(u) => DuidKind::Uuid(u),
            Err(_) => DuidKind::Other(kind),
        },
        _ => DuidKind::Other(kind),
    }
}

impl Duid {
    /// Longest DUID: 128 bytes plus the 2-byte type code (section 11.1).
    pub const MAX_LEN: usize = 130;

    /// `None` unless 2 to [`Duid::MAX_LEN`] bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Duid> {
        (2..=Duid::MAX_LEN)
            .contains(&b.len())
            .then(|| Duid(b.to_vec()))
    }

    /// DUID-LL (type 3, section 11.4) of an Ethernet MAC (hardware type 1).
    pub fn ll(mac: [u8; 6]) -> Duid {
        let mut b = vec![0, 3, 0, 1];
        b.extend_from_slice(&mac);
        Duid(b)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn kind(&self) -> DuidKind<'_> {
        duid_kind(&self.0)
    }

    /// Lower-case hex, colon-separated (how dnsmasq and systemd print DUIDs).
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len().saturating_mul(3));
    for (i, byte) in b.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

fn hw_name(hw_type: u16) -> String {
    match hw_type {
        1 => "ethernet".to_string(),
        other => format!("hardware type {other}"),
    }
}

impl fmt::Display for Duid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            DuidKind::Llt {
                hw_type,
                time,
                lladdr,
            } => write!(
                f,
                "DUID-LLT {} {} (time {time})",
                hw_name(hw_type),
                hex(lladdr)
            ),
            DuidKind::En { enterprise, id } => {
                write!(f, "DUID-EN enterprise {enterprise} id {}", hex(id))
            }
            DuidKind::Ll { hw_type, lladdr } => {
                write!(f, "DUID-LL {} {}", hw_name(hw_type), hex(lladdr))
            }
            DuidKind::Uuid(u) => write!(f, "DUID-UUID {}", hex(&u)),
            DuidKind::Other(t) => write!(f, "DUID type {t} {}", self.to_hex()),
        }
    }
}

impl fmt::Debug for Duid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duid({})", self.to_hex())
    }
}

/// One option as it sits in the message: its code, the offset of its header in the
/// message, and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    pub code: u16,
    pub offset: usize,
    pub data: &'a [u8],
}

/// The option at `at` in an options area `b` (which starts at byte `base` of the message),
/// and where the next one starts: `None` at the end, an error if the option's header or
/// data run past the end of `b`.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn next_option(
    b: &[u8],
    at: usize,
    base: usize,
) -> Option<Result<(RawOption<'_>, usize), WireError>> {
    if at >= b.len() {
        return None;
    }
    let offset = base.saturating_add(at);
    let (Some(code), Some(len)) = (be_u16(b, at), be_u16(b, at.saturating_add(2))) else {
        return Some(err("option header", "truncated", offset));
    };
    let start = at.saturating_add(4);
    let end = start.saturating_add(usize::from(len));
    let Some(data) = b.get(start..end) else {
        return Some(err(
            option::name(code),
            "option longer than its container",
            offset,
        ));
    };
    Some(Ok((RawOption { code, offset, data }, end)))
}

/// Iterator over an options area; stops after the first error.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    b: &'a [u8],
    at: usize,
    base: usize,
}

impl<'a> Options<'a> {
    /// The options in `b`, which starts at byte `base` of the message (for offsets).
    pub fn new(b: &'a [u8], base: usize) -> Options<'a> {
        Options { b, at: 0, base }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<RawOption<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        match next_option(self.b, self.at, self.base)? {
            Ok((opt, next)) => {
                self.at = next;
                Some(Ok(opt))
            }
            Err(e) => {
                self.at = self.b.len();
                Some(Err(e))
            }
        }
    }
}

/// The message type and transaction id, or `None` if `b` is shorter than the header.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn header(b: &[u8]) -> Option<(MessageType, u32)> {
    let t = *b.get(field::MSG_TYPE)?;
    let x: [u8; 3] = array(b, field::XID.start)?;
    Some((
        MessageType::from(t),
        u32::from_be_bytes([0, x[0], x[1], x[2]]),
    ))
}

/// Checks the header and the framing of the top-level options (what
/// [`Packet::new_checked`] does).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn check(b: &[u8]) -> Result<(), WireError> {
    if b.len() < field::OPTIONS {
        return err("header", "shorter than 4 bytes", 0);
    }
    let opts = b.get(field::OPTIONS..).unwrap_or_default();
    let mut at = 0;
    while let Some(r) = next_option(opts, at, field::OPTIONS) {
        at = r?.1;
    }
    Ok(())
}

/// A read-only view of a DHCPv6 message (client/server format, section 8).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view without checks: accessors still never panic, but may return defaults.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A view whose header and top-level option framing have been checked.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        check(buffer.as_ref())?;
        Ok(Packet { buffer })
    }

    pub fn msg_type(&self) -> MessageType {
        header(self.buffer.as_ref())
            .map(|h| h.0)
            .unwrap_or(MessageType::Unknown(0))
    }

    /// The 24-bit transaction id.
    pub fn transaction_id(&self) -> u32 {
        header(self.buffer.as_ref()).map(|h| h.1).unwrap_or(0)
    }

    pub fn options(&self) -> Options<'_> {
        Options::new(
            self.buffer
                .as_ref()
                .get(field::OPTIONS..)
                .unwrap_or_default(),
            field::OPTIONS,
        )
    }

    /// The data of the first top-level option `code`.
    pub fn option(&self, code: u16) -> Option<&[u8]> {
        self.options()
            .map_while(Result::ok)
            .find(|o| o.code == code)
            .map(|o| o.data)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// An IA Address option (section 21.6). Lifetimes in seconds, `u32::MAX` is infinity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaAddr {
    pub address: Ipv6Addr,
    pub preferred: u32,
    pub valid: u32,
    pub status: Option<Status>,
}

/// An IA_NA option (section 21.4). T1/T2 in seconds (0: the client chooses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaNa {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    pub addresses: Vec<IaAddr>,
    pub status: Option<Status>,
}

/// A parsed or to-be-emitted client/server message.
///
/// Parsing keeps the first of each option (a repeat is a [`Cut`]), except IA_NA, of which
/// there may be several with different IAIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr {
    pub msg_type: MessageType,
    /// 24 bits; emit refuses a larger value.
    pub transaction_id: u32,
    pub client_id: Option<Duid>,
    pub server_id: Option<Duid>,
    pub ia_na: Vec<IaNa>,
    /// Option Request: the option codes asked for.
    pub oro: Vec<u16>,
    /// Hundredths of a second since the client's first message of this exchange.
    pub elapsed_time: Option<u16>,
    pub preference: Option<u8>,
    pub status: Option<Status>,
    pub rapid_commit: bool,
    pub dns_servers: Vec<Ipv6Addr>,
    /// Search domains, dot-separated, without the trailing dot.
    pub domains: Vec<String>,
    /// Seconds, as sent (the client checks the 60..=86400 range of section 21.24).
    pub sol_max_rt: Option<u32>,
    pub inf_max_rt: Option<u32>,
    /// What parsing dropped. Never emitted.
    pub cuts: Vec<Cut>,
}

impl Repr {
    /// An empty message of `msg_type` with transaction id `xid`.
    pub fn new(msg_type: MessageType, transaction_id: u32) -> Repr {
        Repr {
            msg_type,
            transaction_id,
            client_id: None,
            server_id: None,
            ia_na: Vec::new(),
            oro: Vec::new(),
            elapsed_time: None,
            preference: None,
            status: None,
            rapid_commit: false,
            dns_servers: Vec::new(),
            domains: Vec::new(),
            sol_max_rt: None,
            inf_max_rt: None,
            cuts: Vec::new(),
        }
    }

    /// Parses a checked packet. Relay messages are refused (a client never receives one).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, WireError> {
        let b = packet.buffer.as_ref();
        let Some((msg_type, xid)) = header(b) else {
            return err("header", "shorter than 4 bytes", 0);
        };
        if matches!(msg_type, MessageType::RelayForw | MessageType::RelayRepl) {
            return err("msg-type", "a relay message (not for a client)", 0);
        }
        let mut r = Repr::new(msg_type, xid);
        let mut seen: Vec<u16> = Vec::new();
        let mut ia_capped = false;
        for o in packet.options() {
            let o = o?;
            let data_at = o.offset.saturating_add(4);
            let singleton = !matches!(o.code, option::IA_NA);
            let known = matches!(
                o.code,
                option::CLIENTID
                    | option::SERVERID
                    | option::IA_NA
                    | option::ORO
                    | option::PREFERENCE
                    | option::ELAPSED_TIME
                    | option::STATUS_CODE
                    | option::RAPID_COMMIT
                    | option::DNS_SERVERS
                    | option::DOMAIN_LIST
                    | option::SOL_MAX_RT
                    | option::INF_MAX_RT
            );
            if !known {
                continue;
            }
            if singleton && seen.contains(&o.code) {
                r.cuts.push(Cut {
                    option: option::name(o.code),
                    offset: o.offset,
                    reason: CutReason::Duplicate,
                });
                continue;
            }
            seen.push(o.code);
            match o.code {
                option::CLIENTID => r.client_id = Some(parse_duid(o)?),
                option::SERVERID => r.server_id = Some(parse_duid(o)?),
                option::IA_NA => {
                    let ia = parse_ia_na(o.data, data_at, &mut r.cuts)?;
                    if r.ia_na.iter().any(|x| x.iaid == ia.iaid) {
                        r.cuts.push(Cut {
                            option: "IA_NA",
                            offset: o.offset,
                            reason: CutReason::Duplicate,
                        });
                    } else if r.ia_na.len() >= MAX_IA_NA {
                        if !ia_capped {
                            r.cuts.push(Cut {
                                option: "IA_NA",
                                offset: o.offset,
                                reason: CutReason::Cap(MAX_IA_NA),
                            });
                            ia_capped = true;
                        }
                    } else {
                        r.ia_na.push(ia);
                    }
                }
                option::ORO => {
                    if o.data.len() % 2 != 0 {
                        return err("ORO", "odd length", o.offset);
                    }
                    let codes = o.data.chunks_exact(2).filter_map(|c| be_u16(c, 0));
                    for code in codes {
                        if r.oro.len() >= MAX_ORO {
                            r.cuts.push(Cut {
                                option: "ORO",
                                offset: o.offset,
                                reason: CutReason::Cap(MAX_ORO),
                            });
                            break;
                        }
                        r.oro.push(code);
                    }
                }
                option::PREFERENCE => r.preference = Some(fixed::<1>(o).map(|[p]| p)?),
                option::ELAPSED_TIME => {
                    r.elapsed_time = Some(fixed::<2>(o).map(u16::from_be_bytes)?)
                }
                option::STATUS_CODE => r.status = Some(parse_status(o, &mut r.cuts)?),
                option::RAPID_COMMIT => {
                    fixed::<0>(o)?;
                    r.rapid_commit = true;
                }
                option::DNS_SERVERS => {
                    if o.data.len() % 16 != 0 {
                        return err("DNS_SERVERS", "length not a multiple of 16", o.offset);
                    }
                    for (i, a) in o.data.chunks_exact(16).enumerate() {
                        let at = data_at.saturating_add(i.saturating_mul(16));
                        let Ok(a) = <[u8; 16]>::try_from(a).map(Ipv6Addr::from) else {
                            continue;
                        };
                        if !is_unicast(&a) {
                            r.cuts.push(Cut {
                                option: "DNS_SERVERS",
                                offset: at,
                                reason: CutReason::NotUnicast,
                            });
                        } else if r.dns_servers.len() >= MAX_DNS {
                            r.cuts.push(Cut {
                                option: "DNS_SERVERS",
                                offset: at,
                                reason: CutReason::Cap(MAX_DNS),
                            });
                            break;
                        } else {
                            r.dns_servers.push(a);
                        }
                    }
                }
                option::DOMAIN_LIST => {
                    r.domains = parse_names(o.data, data_at, "DOMAIN_LIST", &mut r.cuts)
                }
                option::SOL_MAX_RT => r.sol_max_rt = Some(fixed::<4>(o).map(u32::from_be_bytes)?),
                option::INF_MAX_RT => r.inf_max_rt = Some(fixed::<4>(o).map(u32::from_be_bytes)?),
                _ => {}
            }
        }
        Ok(r)
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> Result<usize, WireError> {
        let mut w = Writer { buf: None, at: 0 };
        self.write(&mut w)?;
        Ok(w.at)
    }

    /// Writes the message into `buf`; the bytes written. [`Repr::cuts`] is not emitted.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let mut w = Writer {
            buf: Some(buf),
            at: 0,
        };
        self.write(&mut w)?;
        Ok(w.at)
    }

    /// The message as a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut b = vec![0u8; self.buffer_len()?];
        let n = self.emit(&mut b)?;
        b.truncate(n);
        Ok(b)
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        if self.transaction_id > 0x00ff_ffff {
            return err("transaction-id", "more than 24 bits", 1);
        }
        w.u8(u8::from(self.msg_type))?;
        let x = self.transaction_id.to_be_bytes();
        w.bytes(x.get(1..).unwrap_or_default())?;
        if let Some(d) = &self.client_id {
            w.option(option::CLIENTID, |w| w.bytes(d.as_bytes()))?;
        }
        if let Some(d) = &self.server_id {
            w.option(option::SERVERID, |w| w.bytes(d.as_bytes()))?;
        }
        for ia in &self.ia_na {
            w.option(option::IA_NA, |w| {
                w.u32(ia.iaid)?;
                w.u32(ia.t1)?;
                w.u32(ia.t2)?;
                for a in &ia.addresses {
                    w.option(option::IAADDR, |w| {
                        w.bytes(&a.address.octets())?;
                        w.u32(a.preferred)?;
                        w.u32(a.valid)?;
                        if let Some(s) = &a.status {
                            write_status(w, s)?;
                        }
                        Ok(())
                    })?;
                }
                if let Some(s) = &ia.status {
                    write_status(w, s)?;
                }
                Ok(())
            })?;
        }
        if !self.oro.is_empty() {
            w.option(option::ORO, |w| self.oro.iter().try_for_each(|c| w.u16(*c)))?;
        }
        if let Some(e) = self.elapsed_time {
            w.option(option::ELAPSED_TIME, |w| w.u16(e))?;
        }
        if let Some(p) = self.preference {
            w.option(option::PREFERENCE, |w| w.u8(p))?;
        }
        if let Some(s) = &self.status {
            write_status(w, s)?;
        }
        if self.rapid_commit {
            w.option(option::RAPID_COMMIT, |_| Ok(()))?;
        }
        if !self.dns_servers.is_empty() {
            w.option(option::DNS_SERVERS, |w| {
                self.dns_servers
                    .iter()
                    .try_for_each(|a| w.bytes(&a.octets()))
            })?;
        }
        if !self.domains.is_empty() {
            w.option(option::DOMAIN_LIST, |w| {
                self.domains.iter().try_for_each(|d| write_name(w, d))
            })?;
        }
        if let Some(t) = self.sol_max_rt {
            w.option(option::SOL_MAX_RT, |w| w.u32(t))?;
        }
        if let Some(t) = self.inf_max_rt {
            w.option(option::INF_MAX_RT, |w| w.u32(t))?;
        }
        Ok(())
    }
}

/// Unspecified, loopback and multicast addresses are no use as a server or an address.
fn is_unicast(a: &Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
}

/// The data of a fixed-size option, or an error naming it.
fn fixed<const N: usize>(o: RawOption<'_>) -> Result<[u8; N], WireError> {
    <[u8; N]>::try_from(o.data).or_else(|_| err(option::name(o.code), "wrong length", o.offset))
}

fn parse_duid(o: RawOption<'_>) -> Result<Duid, WireError> {
    match Duid::from_bytes(o.data) {
        Some(d) => Ok(d),
        None => err(
            option::name(o.code),
            "DUID shorter than 2 or longer than 130 bytes",
            o.offset,
        ),
    }
}

fn parse_status(o: RawOption<'_>, cuts: &mut Vec<Cut>) -> Result<Status, WireError> {
    let Some(code) = be_u16(o.data, 0) else {
        return err("STATUS_CODE", "shorter than 2 bytes", o.offset);
    };
    let raw = o.data.get(2..).unwrap_or_default();
    let mut message: String = String::from_utf8_lossy(raw)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if message.len() > MAX_STATUS_MESSAGE {
        let mut end = MAX_STATUS_MESSAGE;
        while !message.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        message.truncate(end);
        cuts.push(Cut {
            option: "STATUS_CODE",
            offset: o.offset,
            reason: CutReason::Truncated(end),
        });
    }
    Ok(Status {
        code: StatusCode::from(code),
        message,
    })
}

fn parse_iaaddr(o: RawOption<'_>, cuts: &mut Vec<Cut>) -> Result<Option<IaAddr>, WireError> {
    let d = o.data;
    let (Some(a), Some(preferred), Some(valid)) = (array::<16>(d, 0), be_u32(d, 16), be_u32(d, 20))
    else {
        return err("IAADDR", "shorter than 24 bytes", o.offset);
    };
    let mut addr = IaAddr {
        address: Ipv6Addr::from(a),
        preferred,
        valid,
        status: None,
    };
    let base = o.offset.saturating_add(4).saturating_add(24);
    for n in Options::new(d.get(24..).unwrap_or_default(), base) {
        let n = n?;
        if n.code == option::STATUS_CODE {
            if addr.status.is_some() {
                cuts.push(Cut {
                    option: "STATUS_CODE",
                    offset: n.offset,
                    reason: CutReason::Duplicate,
                });
            } else {
                addr.status = Some(parse_status(n, cuts)?);
            }
        }
    }
    if !is_unicast(&addr.address) {
        cuts.push(Cut {
            option: "IAADDR",
            offset: o.offset,
            reason: CutReason::NotUnicast,
        });
        return Ok(None);
    }
    Ok(Some(addr))
}

fn parse_ia_na(d: &[u8], data_at: usize, cuts: &mut Vec<Cut>) -> Result<IaNa, WireError> {
    let offset = data_at.saturating_sub(4);
    let (Some(iaid), Some(t1), Some(t2)) = (be_u32(d, 0), be_u32(d, 4), be_u32(d, 8)) else {
        return err("IA_NA", "shorter than 12 bytes", offset);
    };
    let mut ia = IaNa {
        iaid,
        t1,
        t2,
        addresses: Vec::new(),
        status: None,
    };
    let base = data_at.saturating_add(12);
    let mut capped = false;
    for n in Options::new(d.get(12..).unwrap_or_default(), base) {
        let n = n?;
        match n.code {
            option::IAADDR => {
                let Some(a) = parse_iaaddr(n, cuts)? else {
                    continue;
                };
                if ia.addresses.iter().any(|x| x.address == a.address) {
                    cuts.push(Cut {
                        option: "IAADDR",
                        offset: n.offset,
                        reason: CutReason::Duplicate,
                    });
                } else if ia.addresses.len() >= MAX_ADDRS_PER_IA {
                    if !capped {
                        cuts.push(Cut {
                            option: "IAADDR",
                            offset: n.offset,
                            reason: CutReason::Cap(MAX_ADDRS_PER_IA),
                        });
                        capped = true;
                    }
                } else {
                    ia.addresses.push(a);
                }
            }
            option::STATUS_CODE => {
                if ia.status.is_some() {
                    cuts.push(Cut {
                        option: "STATUS_CODE",
                        offset: n.offset,
                        reason: CutReason::Duplicate,
                    });
                } else {
                    ia.status = Some(parse_status(n, cuts)?);
                }
            }
            _ => {}
        }
    }
    Ok(ia)
}

/// Checks the wire-format name at the start of `b` (RFC 1035 section 3.1, no compression).
/// `Ok(n)`: a valid host name of `n` bytes on the wire (terminating zero included).
/// `Err((fault, Some(n)))`: skip `n` bytes to the next name; `Err((fault, None))`: the
/// framing is lost and nothing after can be trusted.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn check_name(b: &[u8]) -> Result<usize, (NameFault, Option<usize>)> {
    let mut at = 0usize;
    let mut fault = None;
    loop {
        let Some(&len) = b.get(at) else {
            return Err((NameFault::Unterminated, None));
        };
        if len == 0 {
            at = at.saturating_add(1);
            break;
        }
        match len & 0xc0 {
            0xc0 => {
                // A pointer ends the name: we can step over it, but not accept it.
                let end = at.saturating_add(2);
                return Err((NameFault::Compressed, (end <= b.len()).then_some(end)));
            }
            0 => {}
            _ => return Err((NameFault::ReservedLabelType, None)),
        }
        let start = at.saturating_add(1);
        let end = start.saturating_add(usize::from(len));
        let Some(label) = b.get(start..end) else {
            return Err((NameFault::Unterminated, None));
        };
        if fault.is_none() {
            if !label
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
            {
                fault = Some(NameFault::BadByte);
            } else if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
                fault = Some(NameFault::EdgeHyphen);
            }
        }
        at = end;
    }
    if at == 1 {
        return Err((NameFault::Root, Some(1)));
    }
    if at > 255 {
        return Err((NameFault::TooLong, Some(at)));
    }
    match fault {
        Some(f) => Err((f, Some(at))),
        None => Ok(at),
    }
}

/// The dotted text of a name [`check_name`] accepted.
fn name_text(b: &[u8]) -> String {
    let mut s = String::new();
    let mut at = 0usize;
    while let Some(&len) = b.get(at) {
        if len == 0 {
            break;
        }
        let start = at.saturating_add(1);
        let end = start.saturating_add(usize::from(len));
        let Some(label) = b.get(start..end) else {
            break;
        };
        if !s.is_empty() {
            s.push('.');
        }
        // check_name allowed only ASCII letters, digits, '-' and '_'.
        s.extend(label.iter().map(|c| char::from(*c)));
        at = end;
    }
    s
}

/// Decodes a list of names (DOMAIN_LIST), skipping each bad one with a [`Cut`].
fn parse_names(mut b: &[u8], base: usize, opt: &'static str, cuts: &mut Vec<Cut>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut offset = base;
    while !b.is_empty() {
        let step = match check_name(b) {
            Ok(n) => {
                let name = name_text(b.get(..n).unwrap_or_default());
                if names.len() >= MAX_DOMAINS {
                    cuts.push(Cut {
                        option: opt,
                        offset,
                        reason: CutReason::Cap(MAX_DOMAINS),
                    });
                    break;
                }
                if names.contains(&name) {
                    cuts.push(Cut {
                        option: opt,
                        offset,
                        reason: CutReason::Duplicate,
                    });
                } else {
                    names.push(name);
                }
                n
            }
            Err((fault, Some(n))) => {
                cuts.push(Cut {
                    option: opt,
                    offset,
                    reason: CutReason::BadName(fault, false),
                });
                n
            }
            Err((fault, None)) => {
                cuts.push(Cut {
                    option: opt,
                    offset,
                    reason: CutReason::BadName(fault, true),
                });
                break;
            }
        };
        b = b.get(step..).unwrap_or_default();
        offset = offset.saturating_add(step);
    }
    names
}

/// Writes `name` in wire format; refuses what [`check_name`] would refuse.
fn write_name(w: &mut Writer<'_>, name: &str) -> Result<(), WireError> {
    let start = w.at;
    for label in name.split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l))
            .ok_or(WireError {
                field: "DOMAIN_LIST",
                what: "a label empty or longer than 63 bytes",
                offset: start,
            })?;
        w.u8(len)?;
        w.bytes(label.as_bytes())?;
    }
    w.u8(0)?;
    // Check what was written as a receiver would (count-only writes are checked on emit).
    if let Some(buf) = w.buf.as_deref() {
        let written = buf.get(start..w.at).unwrap_or_default();
        if check_name(written).is_err() {
            return err("DOMAIN_LIST", "not a valid host name", start);
        }
    }
    Ok(())
}

fn write_status(w: &mut Writer<'_>, s: &Status) -> Result<(), WireError> {
    w.option(option::STATUS_CODE, |w| {
        w.u16(u16::from(s.code))?;
        w.bytes(s.message.as_bytes())
    })
}

/// Writes into a buffer, or only counts when there is none (for [`Repr::buffer_len`]).
struct Writer<'a> {
    buf: Option<&'a mut [u8]>,
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> Result<(), WireError> {
        if let Some(buf) = self.buf.as_deref_mut() {
            if put(buf, self.at, b).is_none() {
                return err("buffer", "too small for the message", self.at);
            }
        }
        self.at = self.at.checked_add(b.len()).ok_or(WireError {
            field: "buffer",
            what: "size overflow",
            offset: self.at,
        })?;
        Ok(())
    }

    fn u8(&mut self, v: u8) -> Result<(), WireError> {
        self.bytes(&[v])
    }

    fn u16(&mut self, v: u16) -> Result<(), WireError> {
        self.bytes(&v.to_be_bytes())
    }

    fn u32(&mut self, v: u32) -> Result<(), WireError> {
        self.bytes(&v.to_be_bytes())
    }

    /// An option: header, `body`, then its length filled in.
    fn option(
        &mut self,
        code: u16,
        body: impl FnOnce(&mut Self) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        let start = self.at;
        self.u16(code)?;
        self.u16(0)?;
        body(self)?;
        let len = self
            .at
            .checked_sub(start)
            .and_then(|n| n.checked_sub(4))
            .and_then(|n| u16::try_from(n).ok())
            .ok_or(WireError {
                field: option::name(code),
                what: "longer than 65535 bytes",
                offset: start,
            })?;
        if let Some(buf) = self.buf.as_deref_mut() {
            if put(buf, start.saturating_add(2), &len.to_be_bytes()).is_none() {
                return err("buffer", "too small for the message", start);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    fn opt(code: u16, data: &[u8]) -> Vec<u8> {
        let mut v = code.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn msg(kind: u8, xid: u32, opts: &[Vec<u8>]) -> Vec<u8> {
        let x = xid.to_be_bytes();
        let mut v = vec![kind, x[1], x[2], x[3]];
        for o in opts {
            v.extend_from_slice(o);
        }
        v
    }

    fn iaaddr(a: Ipv6Addr, pref: u32, valid: u32, inner: &[u8]) -> Vec<u8> {
        let mut d = a.octets().to_vec();
        d.extend_from_slice(&pref.to_be_bytes());
        d.extend_from_slice(&valid.to_be_bytes());
        d.extend_from_slice(inner);
        opt(option::IAADDR, &d)
    }

    fn ia_na(iaid: u32, t1: u32, t2: u32, inner: &[u8]) -> Vec<u8> {
        let mut d = iaid.to_be_bytes().to_vec();
        d.extend_from_slice(&t1.to_be_bytes());
        d.extend_from_slice(&t2.to_be_bytes());
        d.extend_from_slice(inner);
        opt(option::IA_NA, &d)
    }

    fn status(code: u16, text: &[u8]) -> Vec<u8> {
        let mut d = code.to_be_bytes().to_vec();
        d.extend_from_slice(text);
        opt(option::STATUS_CODE, &d)
    }

    fn parse(b: &[u8]) -> Result<Repr, WireError> {
        Repr::parse(&Packet::new_checked(b)?)
    }

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// A REPLY with everything a client decodes.
    fn full_reply() -> Vec<u8> {
        let addr = iaaddr(a("fd77::1a2"), 1800, 3600, &status(0, b"ok"));
        msg(
            7,
            0xabcdef,
            &[
                opt(option::CLIENTID, Duid::ll(MAC).as_bytes()),
                opt(
                    option::SERVERID,
                    &[0, 1, 0, 1, 0x2f, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe],
                ),
                ia_na(0x0000_0001, 1800, 2880, &[addr, status(0, b"")].concat()),
                opt(option::PREFERENCE, &[7]),
                status(0, b"success"),
                opt(option::RAPID_COMMIT, &[]),
                opt(
                    option::DNS_SERVERS,
                    &[a("fd77::53").octets(), a("2001:db8::1").octets()].concat(),
                ),
                opt(
                    option::DOMAIN_LIST,
                    b"\x07example\x03com\x00\x03lab\x07example\x03org\x00",
                ),
                opt(option::SOL_MAX_RT, &120u32.to_be_bytes()),
                opt(option::INF_MAX_RT, &600u32.to_be_bytes()),
                opt(999, b"unknown, skipped"),
            ],
        )
    }

    #[test]
    fn reply_with_every_option() {
        let r = parse(&full_reply()).unwrap();
        assert_eq!(r.msg_type, MessageType::Reply);
        assert_eq!(r.transaction_id, 0xabcdef);
        assert_eq!(r.client_id, Some(Duid::ll(MAC)));
        let sid = r.server_id.clone().unwrap();
        assert_eq!(
            sid.kind(),
            DuidKind::Llt {
                hw_type: 1,
                time: 0x2f00_0001,
                lladdr: &[2, 0, 0, 0, 0, 0xfe]
            }
        );
        assert_eq!(
            sid.to_string(),
            "DUID-LLT ethernet 02:00:00:00:00:fe (time 788529153)"
        );
        assert_eq!(r.ia_na.len(), 1);
        let ia = &r.ia_na[0];
        assert_eq!((ia.iaid, ia.t1, ia.t2), (1, 1800, 2880));
        assert_eq!(
            ia.status.as_ref().map(|s| s.code),
            Some(StatusCode::Success)
        );
        assert_eq!(
            ia.addresses,
            [IaAddr {
                address: a("fd77::1a2"),
                preferred: 1800,
                valid: 3600,
                status: Some(Status {
                    code: StatusCode::Success,
                    message: "ok".into()
                })
            }]
        );
        assert_eq!(r.preference, Some(7));
        assert_eq!(r.status.as_ref().unwrap().message, "success");
        assert!(r.rapid_commit);
        assert_eq!(r.dns_servers, [a("fd77::53"), a("2001:db8::1")]);
        assert_eq!(r.domains, ["example.com", "lab.example.org"]);
        assert_eq!((r.sol_max_rt, r.inf_max_rt), (Some(120), Some(600)));
        assert!(r.cuts.is_empty(), "{:?}", r.cuts);
    }

    #[test]
    fn parse_emit_round_trip() {
        let r = parse(&full_reply()).unwrap();
        let bytes = r.to_bytes().unwrap();
        assert_eq!(bytes.len(), r.buffer_len().unwrap());
        assert_eq!(parse(&bytes).unwrap(), r, "reply");
        // A client message too, with ORO and elapsed time.
        let mut s = Repr::new(MessageType::Solicit, 0x123456);
        s.client_id = Some(Duid::ll(MAC));
        s.ia_na.push(IaNa {
            iaid: 9,
            t1: 0,
            t2: 0,
            addresses: Vec::new(),
            status: None,
        });
        s.oro = vec![option::DNS_SERVERS, option::DOMAIN_LIST, option::SOL_MAX_RT];
        s.elapsed_time = Some(0);
        s.rapid_commit = true;
        let bytes = s.to_bytes().unwrap();
        assert_eq!(&bytes[..4], &[1, 0x12, 0x34, 0x56], "header");
        assert_eq!(parse(&bytes).unwrap(), s, "solicit");
        // Emitting into a short buffer fails instead of writing past it.
        let mut short = vec![0u8; bytes.len() - 1];
        assert!(s.emit(&mut short).is_err(), "short buffer");
        let mut big = Repr::new(MessageType::Solicit, 1 << 24);
        assert!(big.to_bytes().is_err(), "xid over 24 bits");
        big.transaction_id = 1;
        big.domains = vec!["a..b".into()];
        assert!(big.to_bytes().is_err(), "empty label");
        big.domains = vec!["-x.com".into()];
        assert!(big.to_bytes().is_err(), "leading hyphen");
    }

    #[test]
    fn framing_errors_name_the_field_and_offset() {
        for (case, bytes, field, offset) in [
            ("empty", vec![], "header", 0),
            ("three bytes", vec![2, 0, 0], "header", 0),
            (
                "option header cut",
                msg(2, 1, &[vec![0, 1, 0]]),
                "option header",
                4,
            ),
            (
                "option past the end",
                msg(2, 1, &[vec![0, 2, 0, 9, 1, 2]]),
                "SERVERID",
                4,
            ),
            (
                "IAADDR past its IA_NA",
                msg(2, 1, &[ia_na(1, 0, 0, &[0, 5, 0, 30, 0])]),
                "IAADDR",
                20,
            ),
            (
                "short IA_NA",
                msg(2, 1, &[opt(option::IA_NA, &[0; 11])]),
                "IA_NA",
                4,
            ),
            (
                "short IAADDR",
                msg(2, 1, &[ia_na(1, 0, 0, &opt(option::IAADDR, &[0; 23]))]),
                "IAADDR",
                20,
            ),
            (
                "preference of 2 bytes",
                msg(2, 1, &[opt(option::PREFERENCE, &[1, 2])]),
                "PREFERENCE",
                4,
            ),
            (
                "rapid commit with data",
                msg(7, 1, &[opt(option::RAPID_COMMIT, &[0])]),
                "RAPID_COMMIT",
                4,
            ),
            (
                "elapsed time of 1 byte",
                msg(7, 1, &[opt(option::ELAPSED_TIME, &[0])]),
                "ELAPSED_TIME",
                4,
            ),
            (
                "SOL_MAX_RT of 2 bytes",
                msg(2, 1, &[opt(option::SOL_MAX_RT, &[0, 60])]),
                "SOL_MAX_RT",
                4,
            ),
            (
                "DNS of 17 bytes",
                msg(7, 1, &[opt(option::DNS_SERVERS, &[0; 17])]),
                "DNS_SERVERS",
                4,
            ),
            (
                "odd ORO",
                msg(1, 1, &[opt(option::ORO, &[0, 23, 0])]),
                "ORO",
                4,
            ),
            (
                "empty status",
                msg(7, 1, &[opt(option::STATUS_CODE, &[0])]),
                "STATUS_CODE",
                4,
            ),
            (
                "one-byte DUID",
                msg(7, 1, &[opt(option::CLIENTID, &[0])]),
                "CLIENTID",
                4,
            ),
            (
                "131-byte DUID",
                msg(7, 1, &[opt(option::SERVERID, &[0; 131])]),
                "SERVERID",
                4,
            ),
            ("relay message", msg(13, 1, &[]), "msg-type", 0),
        ] {
            let e = parse(&bytes).expect_err(case);
            assert_eq!((e.field, e.offset), (field, offset), "case {case}: {e}");
        }
    }

    #[test]
    fn caps_and_drops_are_named() {
        let many_dns: Vec<u8> = (1..=10u16)
            .flat_map(|i| Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, i).octets())
            .collect();
        let addrs: Vec<u8> = (1..=10u16)
            .flat_map(|i| iaaddr(Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 1, i), 1, 2, &[]))
            .collect();
        let domains: Vec<u8> = (0..10u8)
            .flat_map(|i| [1, b'a' + i, 3, b'c', b'o', b'm', 0])
            .collect();
        let ias: Vec<Vec<u8>> = (0..6).map(|i| ia_na(i, 0, 0, &[])).collect();
        let oro: Vec<u8> = (0..40u16).flat_map(|c| c.to_be_bytes()).collect();
        let long_status = vec![b'x'; 300];
        type Check = fn(&Repr) -> bool;
        let cases: [(&str, Vec<Vec<u8>>, Check, CutReason); 10] = [
            (
                "ten DNS servers",
                vec![opt(option::DNS_SERVERS, &many_dns)],
                |r| r.dns_servers.len() == MAX_DNS,
                CutReason::Cap(MAX_DNS),
            ),
            (
                "multicast DNS server",
                vec![opt(option::DNS_SERVERS, &a("ff02::1").octets())],
                |r| r.dns_servers.is_empty(),
                CutReason::NotUnicast,
            ),
            (
                "ten addresses in one IA",
                vec![ia_na(1, 0, 0, &addrs)],
                |r| r.ia_na[0].addresses.len() == MAX_ADDRS_PER_IA,
                CutReason::Cap(MAX_ADDRS_PER_IA),
            ),
            (
                "unspecified IA address",
                vec![ia_na(1, 0, 0, &iaaddr(Ipv6Addr::UNSPECIFIED, 1, 2, &[]))],
                |r| r.ia_na[0].addresses.is_empty(),
                CutReason::NotUnicast,
            ),
            (
                "six IA_NAs",
                ias.clone(),
                |r| r.ia_na.len() == MAX_IA_NA,
                CutReason::Cap(MAX_IA_NA),
            ),
            (
                "same IAID twice",
                vec![ias[0].clone(), ias[0].clone()],
                |r| r.ia_na.len() == 1,
                CutReason::Duplicate,
            ),
            (
                "ten domains",
                vec![opt(option::DOMAIN_LIST, &domains)],
                |r| r.domains.len() == MAX_DOMAINS,
                CutReason::Cap(MAX_DOMAINS),
            ),
            (
                "forty ORO codes",
                vec![opt(option::ORO, &oro)],
                |r| r.oro.len() == MAX_ORO,
                CutReason::Cap(MAX_ORO),
            ),
            (
                "two preferences",
                vec![
                    opt(option::PREFERENCE, &[1]),
                    opt(option::PREFERENCE, &[255]),
                ],
                |r| r.preference == Some(1),
                CutReason::Duplicate,
            ),
            (
                "300-byte status message",
                vec![status(2, &long_status)],
                |r| r.status.as_ref().unwrap().message.len() == MAX_STATUS_MESSAGE,
                CutReason::Truncated(MAX_STATUS_MESSAGE),
            ),
        ];
        for (case, opts, check, reason) in cases {
            let r = parse(&msg(7, 1, &opts)).expect(case);
            assert!(check(&r), "case {case}: {r:?}");
            assert_eq!(
                r.cuts.iter().map(|c| c.reason).collect::<Vec<_>>(),
                [reason],
                "case {case}"
            );
            assert!(!r.cuts[0].to_string().is_empty(), "case {case}");
            // What was kept emits and parses back the same, without the cuts.
            let mut kept = r.clone();
            kept.cuts.clear();
            assert_eq!(
                parse(&kept.to_bytes().unwrap()).unwrap(),
                kept,
                "case {case}: round trip"
            );
        }
    }

    #[test]
    fn hostile_domain_names() {
        for (case, wire, names, cut) in [
            ("plain", &b"\x03foo\x03bar\x00"[..], &["foo.bar"][..], None),
            (
                "compression pointer, then a good name",
                b"\x03foo\xc0\x0c\x03bar\x00",
                &["bar"],
                Some(CutReason::BadName(NameFault::Compressed, false)),
            ),
            (
                "slash in a label",
                b"\x05..%2f\x00\x03ok_\x00",
                &["ok_"],
                Some(CutReason::BadName(NameFault::BadByte, false)),
            ),
            (
                "newline in a label",
                b"\x04a\nb.\x03com\x00\x01x\x00",
                &["x"],
                Some(CutReason::BadName(NameFault::BadByte, false)),
            ),
            (
                "leading hyphen",
                b"\x02-o\x00",
                &[],
                Some(CutReason::BadName(NameFault::EdgeHyphen, false)),
            ),
            (
                "NUL inside a label",
                b"\x03a\x00b\x00",
                &[],
                Some(CutReason::BadName(NameFault::BadByte, false)),
            ),
            (
                "root name",
                b"\x00\x01a\x00",
                &["a"],
                Some(CutReason::BadName(NameFault::Root, false)),
            ),
            (
                "label past the end",
                b"\x01a\x00\x09abc",
                &["a"],
                Some(CutReason::BadName(NameFault::Unterminated, true)),
            ),
            (
                "unterminated",
                b"\x03abc",
                &[],
                Some(CutReason::BadName(NameFault::Unterminated, true)),
            ),
            (
                "reserved label type",
                b"\x41abc\x00",
                &[],
                Some(CutReason::BadName(NameFault::ReservedLabelType, true)),
            ),
            (
                "duplicate name",
                b"\x01a\x00\x01a\x00",
                &["a"],
                Some(CutReason::Duplicate),
            ),
        ] {
            let r = parse(&msg(7, 1, &[opt(option::DOMAIN_LIST, wire)])).expect(case);
            assert_eq!(r.domains, names, "case {case}");
            assert_eq!(
                r.cuts.first().map(|c| c.reason),
                cut,
                "case {case}: {:?}",
                r.cuts
            );
        }
        // Over 255 bytes: five labels of 63.
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert_eq!(
            check_name(&long),
            Err((NameFault::TooLong, Some(long.len()))),
            "too long"
        );
    }

    #[test]
    fn status_messages_are_made_printable() {
        let r = parse(&msg(7, 1, &[status(5, b"use\nmulticast\xff")])).unwrap();
        let s = r.status.unwrap();
        assert_eq!(s.code, StatusCode::UseMulticast);
        assert_eq!(s.message, "use?multicast\u{fffd}");
        assert_eq!(s.to_string(), "UseMulticast (\"use?multicast\u{fffd}\")");
    }

    #[test]
    fn duid_kinds() {
        for (case, bytes, want) in [
            (
                "LL",
                &[0u8, 3, 0, 1, 2, 0, 0, 0, 0, 1][..],
                "DUID-LL ethernet 02:00:00:00:00:01",
            ),
            (
                "EN",
                &[0, 2, 0, 0, 0x01, 0x37, 0xab],
                "DUID-EN enterprise 311 id ab",
            ),
            (
                "UUID",
                &[0, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
                "DUID-UUID 01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10",
            ),
            ("short UUID", &[0, 4, 1], "DUID type 4 00:04:01"),
            (
                "LLT without address",
                &[0, 1, 0, 1, 0, 0, 0, 0],
                "DUID type 1 00:01:00:01:00:00:00:00",
            ),
            ("unknown type", &[0x12, 0x34, 9], "DUID type 4660 12:34:09"),
        ] {
            assert_eq!(
                Duid::from_bytes(bytes).unwrap().to_string(),
                want,
                "case {case}"
            );
        }
        assert_eq!(Duid::ll(MAC).as_bytes(), &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1]);
        assert!(Duid::from_bytes(&[1]).is_none());
        assert!(Duid::from_bytes(&[0; 131]).is_none());
    }

    #[test]
    fn packet_view() {
        let b = full_reply();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), MessageType::Reply);
        assert_eq!(p.transaction_id(), 0xabcdef);
        assert_eq!(p.option(option::PREFERENCE), Some(&[7u8][..]));
        assert_eq!(p.option(4242), None);
        let codes: Vec<u16> = p.options().map(|o| o.unwrap().code).collect();
        assert_eq!(codes, [1, 2, 3, 7, 13, 14, 23, 24, 82, 83, 999]);
        // Unchecked views of short buffers give defaults, never panic.
        let short = Packet::new_unchecked(&[7u8][..]);
        assert_eq!(short.msg_type(), MessageType::Unknown(0));
        assert_eq!(short.transaction_id(), 0);
        assert_eq!(short.options().count(), 0);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let good = full_reply();
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 3, 5, 13, 0x3f, 0xc0, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                if let Ok(r) = parse(&b) {
                    let mut kept = r.clone();
                    kept.cuts.clear();
                    if let Ok(bytes) = kept.to_bytes() {
                        assert_eq!(parse(&bytes).unwrap(), kept, "byte {i} = {v}");
                    }
                }
            }
        }
    }

    /// Every file of `tests/data/dhcp6/` (README there: real exchanges with dnsmasq).
    macro_rules! cap {
        ($p:literal) => {
            (
                $p,
                include_bytes!(concat!("../../tests/data/dhcp6/", $p)) as &[u8],
            )
        };
    }
    pub(crate) const CAPTURES: [(&str, &[u8]); 20] = [
        cap!("authoritative/00-out-solicit.bin"),
        cap!("authoritative/01-in-advertise.bin"),
        cap!("authoritative/02-out-request.bin"),
        cap!("authoritative/03-in-reply.bin"),
        cap!("four-message/00-out-solicit.bin"),
        cap!("four-message/01-in-advertise.bin"),
        cap!("four-message/02-out-request.bin"),
        cap!("four-message/03-in-reply.bin"),
        cap!("no-addresses/00-out-solicit.bin"),
        cap!("no-addresses/01-in-advertise.bin"),
        cap!("no-addresses/02-out-solicit.bin"),
        cap!("no-addresses/03-in-advertise.bin"),
        cap!("no-addresses-rapid/00-out-solicit.bin"),
        cap!("no-addresses-rapid/01-in-reply.bin"),
        cap!("no-addresses-rapid/02-out-solicit.bin"),
        cap!("no-addresses-rapid/03-in-reply.bin"),
        cap!("rapid-commit/00-out-solicit.bin"),
        cap!("rapid-commit/01-in-reply.bin"),
        cap!("stateless/00-out-information-request.bin"),
        cap!("stateless/01-in-reply.bin"),
    ];

    #[test]
    fn captured_messages_parse_and_round_trip() {
        for (name, b) in CAPTURES {
            let r = parse(b).expect(name);
            assert!(r.cuts.is_empty(), "{name}: {:?}", r.cuts);
            let bytes = r.to_bytes().expect(name);
            assert_eq!(parse(&bytes).unwrap(), r, "{name}: round trip");
            if name.contains("-out-") {
                assert_eq!(bytes, b, "{name}: our own message, byte for byte");
            }
        }
    }

    #[test]
    fn captured_dnsmasq_answers() {
        let lease_addr = a("fd77::184");
        // (file, type, preference, top status, rapid commit, our IA's addresses)
        for (file, kind, pref, status, rapid, addrs) in [
            (
                "rapid-commit/01-in-reply.bin",
                MessageType::Reply,
                Some(0),
                Some(StatusCode::Success),
                true,
                vec![lease_addr],
            ),
            (
                "four-message/01-in-advertise.bin",
                MessageType::Advertise,
                Some(0),
                Some(StatusCode::Success),
                false,
                vec![lease_addr],
            ),
            (
                "four-message/03-in-reply.bin",
                MessageType::Reply,
                None,
                Some(StatusCode::Success),
                false,
                vec![lease_addr],
            ),
            (
                "authoritative/01-in-advertise.bin",
                MessageType::Advertise,
                Some(255),
                Some(StatusCode::Success),
                false,
                vec![lease_addr],
            ),
            (
                "stateless/01-in-reply.bin",
                MessageType::Reply,
                None,
                None,
                false,
                vec![],
            ),
            (
                "no-addresses/01-in-advertise.bin",
                MessageType::Advertise,
                None,
                Some(StatusCode::NoAddrsAvail),
                false,
                vec![],
            ),
            (
                "no-addresses-rapid/01-in-reply.bin",
                MessageType::Reply,
                None,
                Some(StatusCode::NoAddrsAvail),
                true,
                vec![],
            ),
        ] {
            let (_, b) = CAPTURES.iter().find(|(n, _)| *n == file).unwrap();
            let r = parse(b).unwrap();
            assert_eq!(r.msg_type, kind, "{file}");
            assert_eq!(r.preference, pref, "{file}");
            assert_eq!(r.status.map(|s| s.code), status, "{file}");
            assert_eq!(r.rapid_commit, rapid, "{file}");
            assert_eq!(r.client_id, Some(Duid::ll(MAC)), "{file}: our DUID-LL");
            assert!(
                matches!(
                    r.server_id.as_ref().unwrap().kind(),
                    DuidKind::Llt { hw_type: 1, .. }
                ),
                "{file}: dnsmasq's DUID-LLT"
            );
            let got: Vec<Ipv6Addr> = r
                .ia_na
                .iter()
                .flat_map(|ia| ia.addresses.iter().map(|x| x.address))
                .collect();
            assert_eq!(got, addrs, "{file}");
            if !addrs.is_empty() {
                let ia = &r.ia_na[0];
                assert_eq!((ia.iaid, ia.t1, ia.t2), (1, 1800, 3150), "{file}: T1/T2");
                assert_eq!(
                    (ia.addresses[0].preferred, ia.addresses[0].valid),
                    (3600, 3600),
                    "{file}"
                );
            }
            if status != Some(StatusCode::NoAddrsAvail) {
                assert_eq!(r.dns_servers, [a("fd77::53")], "{file}");
                assert_eq!(r.domains, ["example.com", "lab.example.org"], "{file}");
            }
        }
    }
}
