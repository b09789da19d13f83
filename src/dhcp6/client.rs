//! The DHCPv6 client as a state machine without I/O, in the shape of `dhcp/client.rs`: the
//! caller passes `now`, asks [`Client::poll_transmit`] what to send (to `ff02::1:2` port
//! 547 on the NIC), feeds received payloads to [`Client::process`], and sleeps until
//! [`Client::poll_at`]. Tests drive it with made-up instants, never sleeping.
//!
//! Two modes (RFC 8415 section 18.2), chosen by the caller from the router advertisement:
//! - [`Mode::Stateful`] (the RA's M flag): SOLICIT with one IA_NA, an Option Request and, if
//!   asked, Rapid Commit. A REPLY carrying Rapid Commit binds at once (two-message
//!   exchange, 18.2.1); otherwise ADVERTISEs are collected: one with preference 255 is taken
//!   at once, else the best (highest preference, the first on a tie) when the first
//!   retransmission time passes, else the first one after it (18.2.9). Then REQUEST/REPLY.
//! - [`Mode::Stateless`] (the O flag): Information-Request, REPLY (18.2.6).
//!
//! Retransmission is section 15: `RT = IRT + RAND*IRT`, then `RT = 2*RTprev + RAND*RTprev`,
//! capped as `MRT + RAND*MRT`, RAND uniform in ±[`RetryConfig::rand_permille`] thousandths
//! (±0.1), strictly positive for the first SOLICIT; IRT/MRT/MRC from [`RetryConfig`] (the
//! RFC's SOL_TIMEOUT, SOL_MAX_RT, REQ_TIMEOUT, REQ_MAX_RT, REQ_MAX_RC, INF_TIMEOUT,
//! INF_MAX_RT), SOL_MAX_RT/INF_MAX_RT overridden by a server's option in 60..=86400 (21.24,
//! 21.25). The caller's deadline ([`Client::with_deadline`]) cuts every wait: `poll_at` never
//! lies past it, and once it has passed the client is [`Client::expired`] and sends nothing.
//! The randomness (jitter, transaction ids) comes from the caller's seed.
//!
//! Status codes (18.2.10, 18.2.10.1): UnspecFail and UseMulticast in a REPLY leave the
//! REQUEST retransmitting (we always multicast, and the backoff limits the rate);
//! NoAddrsAvail, or no usable address, makes the client try the next collected server, else
//! SOLICIT again; NotOnLink SOLICITs again. An ADVERTISE without a usable address is ignored
//! but its SOL_MAX_RT is taken. Addresses with a valid lifetime of 0 or a preferred lifetime
//! above the valid one, and an IA_NA with T1 > T2 > 0, are discarded (21.4, 21.6).
//!
//! The client identifies itself with a DUID-LL (type 3) of the NIC's MAC and one IA_NA
//! whose IAID is the MAC's last four bytes, so a retry after a reboot asks for the same
//! lease. Not supported: RENEW/REBIND (the initramfs is done long before T1), RELEASE
//! (the booted system's client has its own DUID and lease), CONFIRM, DECLINE after DAD,
//! Reconfigure, IA_TA, IA_PD, authentication, unicast to a server (option 12 is ignored).
//! The first message is not delayed by default (SOL_MAX_DELAY, INF_MAX_DELAY are 1 s in the
//! RFC, to spread many clients after a power failure; one instance booting under a 20 s
//! deadline has no herd to spread): see [`RetryConfig::first_delay_max`].
//!
//! No panics: arithmetic is checked or saturating, and messages go through `wire.rs`.
#![deny(clippy::arithmetic_side_effects)]

use super::wire::{self, option, Cut, Duid, IaAddr, IaNa, MessageType, Packet, Repr, StatusCode};
use std::fmt;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// Retransmission parameters (RFC 8415 section 7.6; defaults are the RFC's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// SOL_TIMEOUT.
    pub sol_timeout: Duration,
    /// SOL_MAX_RT (a server's SOL_MAX_RT option replaces it).
    pub sol_max_rt: Duration,
    /// REQ_TIMEOUT.
    pub req_timeout: Duration,
    /// REQ_MAX_RT.
    pub req_max_rt: Duration,
    /// REQ_MAX_RC: REQUESTs sent to one server before trying the next or SOLICITing again.
    pub req_max_rc: u32,
    /// INF_TIMEOUT.
    pub inf_timeout: Duration,
    /// INF_MAX_RT (a server's INF_MAX_RT option replaces it).
    pub inf_max_rt: Duration,
    /// The first message waits a random time up to this (SOL_MAX_DELAY, INF_MAX_DELAY: 1 s
    /// in the RFC; 0 here, see the module docs).
    pub first_delay_max: Duration,
    /// RAND's range in thousandths: 100 is the RFC's ±0.1; 0 turns jitter off (tests).
    pub rand_permille: u16,
}

impl Default for RetryConfig {
    fn default() -> RetryConfig {
        RetryConfig {
            sol_timeout: Duration::from_secs(1),
            sol_max_rt: Duration::from_secs(3600),
            req_timeout: Duration::from_secs(1),
            req_max_rt: Duration::from_secs(30),
            req_max_rc: 10,
            inf_timeout: Duration::from_secs(1),
            inf_max_rt: Duration::from_secs(3600),
            first_delay_max: Duration::ZERO,
            rand_permille: 100,
        }
    }
}

/// What to ask for: addresses (the RA's M flag) or only other configuration (O flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Stateful { rapid_commit: bool },
    Stateless,
}

/// What a server gave us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease6 {
    pub server: Duid,
    /// The server's preference (0 when it sent none).
    pub preference: u8,
    /// Usable addresses of our IA_NA (a /128 each: the on-link prefix comes from the RA);
    /// empty for a stateless exchange.
    pub addresses: Vec<IaAddr>,
    pub iaid: u32,
    /// Seconds (0: the client's choice; `u32::MAX`: infinity).
    pub t1: u32,
    pub t2: u32,
    pub dns: Vec<Ipv6Addr>,
    pub domains: Vec<String>,
    /// Bound by a REPLY to our SOLICIT (two-message exchange).
    pub rapid_commit: bool,
    pub stateless: bool,
    /// From [`Client::new`] to the REPLY.
    pub elapsed: Duration,
    /// Messages sent in all (SOLICIT, REQUEST, Information-Request, with retransmissions).
    pub transmissions: u32,
    /// What the REPLY's parser dropped (caps, bad names): to log and record.
    pub cuts: Vec<Cut>,
}

/// What [`Client::process`] made of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Not for us (another transaction, or too short to tell), or nothing changed.
    None,
    /// For our transaction, but refused: why (for a debug log).
    Ignored(String),
    /// An ADVERTISE was collected (with preference 255, or after the first RT, a REQUEST
    /// to that server is due now).
    Advertised {
        server: Duid,
        preference: u8,
    },
    /// The server refused our REQUEST: why; the next server is tried, or SOLICIT again.
    Restarted(String),
    Bound(Lease6),
}

/// Counts for the one line that says what became of a NIC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub solicits: u32,
    pub requests: u32,
    pub information_requests: u32,
    pub advertises: u32,
    pub replies: u32,
    /// The last refusal: a server's status or why a message was ignored.
    pub last_refusal: Option<String>,
}

impl Progress {
    fn sent(&self) -> u32 {
        self.solicits
            .saturating_add(self.requests)
            .saturating_add(self.information_requests)
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.solicits, "SOLICIT"),
            (self.advertises, "ADVERTISE"),
            (self.requests, "REQUEST"),
            (self.information_requests, "INFORMATION-REQUEST"),
            (self.replies, "REPLY"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if parts.is_empty() {
            parts.push("nothing sent".into());
        }
        write!(f, "{}", parts.join(", "))?;
        if let Some(why) = &self.last_refusal {
            write!(f, "; last refusal: {why}")?;
        }
        Ok(())
    }
}

/// A usable ADVERTISE.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Offer {
    server: Duid,
    preference: u8,
    addresses: Vec<IaAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// SOLICIT sent; `window_over` once the first RT has passed.
    Soliciting {
        offers: Vec<Offer>,
        window_over: bool,
    },
    /// REQUEST to `offer.server`; `others` in order of preference.
    Requesting {
        offer: Offer,
        others: Vec<Offer>,
    },
    Informing,
    Bound(Lease6),
    Expired,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Soliciting { .. } => "soliciting",
            Phase::Requesting { .. } => "requesting",
            Phase::Informing => "asking for information",
            Phase::Bound(_) => "bound",
            Phase::Expired => "deadline passed",
        }
    }
}

/// One message exchange (section 15): its transaction id and retransmission state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exchange {
    xid: u32,
    /// First transmission (for the elapsed time).
    started: Option<Instant>,
    next_tx: Instant,
    /// The current RT; `None` before the first transmission.
    rt: Option<Duration>,
    sent: u32,
}

/// Why an ADVERTISE or REPLY offers nothing usable.
struct Unusable {
    status: Option<StatusCode>,
    why: String,
}

/// One DHCPv6 client for one NIC.
#[derive(Debug, Clone)]
pub struct Client {
    duid: Duid,
    iaid: u32,
    mode: Mode,
    retry: RetryConfig,
    created: Instant,
    deadline: Option<Instant>,
    phase: Phase,
    ex: Exchange,
    sol_max_rt: Duration,
    inf_max_rt: Duration,
    jitter_rng: u64,
    xid_rng: u64,
    progress: Progress,
}

const MS_PER_S: u64 = 1000;
/// The accepted range of SOL_MAX_RT and INF_MAX_RT options (RFC 8415 21.24, 21.25), seconds.
const MAX_RT_RANGE: std::ops::RangeInclusive<u32> = 60..=86400;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// xorshift64*: jitter and transaction ids need no more.
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

impl Client {
    /// A client for the NIC with `mac`, starting now. `seed` gives the transaction ids and
    /// the jitter (pass something random; a fixed one replays the same ids).
    pub fn new(mac: [u8; 6], mode: Mode, seed: u64, now: Instant, retry: RetryConfig) -> Client {
        let iaid = crate::bytes::be_u32(&mac, 2).unwrap_or(0);
        let mut c = Client {
            duid: Duid::ll(mac),
            iaid,
            mode,
            retry,
            created: now,
            deadline: None,
            phase: match mode {
                Mode::Stateful { .. } => Phase::Soliciting {
                    offers: Vec::new(),
                    window_over: false,
                },
                Mode::Stateless => Phase::Informing,
            },
            ex: Exchange {
                xid: 0,
                started: None,
                next_tx: now,
                rt: None,
                sent: 0,
            },
            sol_max_rt: retry.sol_max_rt,
            inf_max_rt: retry.inf_max_rt,
            // Two streams, so the transaction ids do not depend on how many retransmissions
            // drew jitter (replaying a capture needs the same ids).
            jitter_rng: (seed ^ 0x9e37_79b9_7f4a_7c15) | 1,
            xid_rng: (seed ^ 0xd1b5_4a32_d192_ed03) | 1,
            progress: Progress::default(),
        };
        let max = ms(retry.first_delay_max);
        let delay = match max.checked_add(1) {
            Some(span) if max > 0 => next_random(&mut c.jitter_rng).checked_rem(span),
            _ => None,
        };
        let first = now
            .checked_add(Duration::from_millis(delay.unwrap_or(0)))
            .unwrap_or(now);
        c.start_exchange(first);
        c
    }

    /// Cuts every wait at `deadline` (the caller's [`crate::deadline::Deadline`] as an
    /// instant): past it, the client sends nothing more and [`Client::expired`] is true.
    pub fn with_deadline(mut self, deadline: Instant) -> Client {
        self.deadline = Some(deadline);
        self
    }

    /// Our DUID-LL (the Client Identifier).
    pub fn duid(&self) -> &Duid {
        &self.duid
    }

    pub fn iaid(&self) -> u32 {
        self.iaid
    }

    /// The transaction id of the current exchange (24 bits).
    pub fn xid(&self) -> u32 {
        self.ex.xid
    }

    pub fn lease(&self) -> Option<&Lease6> {
        match &self.phase {
            Phase::Bound(l) => Some(l),
            _ => None,
        }
    }

    pub fn expired(&self) -> bool {
        self.phase == Phase::Expired
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// One line for the NIC's fate: "soliciting: 5 SOLICIT; last refusal: …".
    pub fn describe(&self) -> String {
        format!("DHCPv6 {}: {}", self.phase.name(), self.progress)
    }

    fn start_exchange(&mut self, at: Instant) {
        let xid = u32::try_from(next_random(&mut self.xid_rng) >> 40).unwrap_or(0);
        self.ex = Exchange {
            xid,
            started: None,
            next_tx: at,
            rt: None,
            sent: 0,
        };
    }

    /// (IRT, MRT, MRC, first RAND strictly positive) of the current exchange.
    fn params(&self) -> (Duration, Duration, u32, bool) {
        match self.phase {
            Phase::Soliciting { .. } => (self.retry.sol_timeout, self.sol_max_rt, 0, true),
            Phase::Requesting { .. } => (
                self.retry.req_timeout,
                self.retry.req_max_rt,
                self.retry.req_max_rc,
                false,
            ),
            Phase::Informing => (self.retry.inf_timeout, self.inf_max_rt, 0, false),
            Phase::Bound(_) | Phase::Expired => (Duration::ZERO, Duration::ZERO, 0, false),
        }
    }

    /// `base ± scale*RAND` in ms (RAND in thousandths, see [`RetryConfig::rand_permille`]).
    fn randomized(&mut self, base: u64, scale: u64, positive: bool) -> u64 {
        let p = u64::from(self.retry.rand_permille.min(1000));
        if p == 0 {
            return base;
        }
        let r = next_random(&mut self.jitter_rng);
        let (up, thousandths) = if positive {
            (true, r.checked_rem(p).unwrap_or(0).saturating_add(1))
        } else {
            let v = r
                .checked_rem(p.saturating_mul(2).saturating_add(1))
                .unwrap_or(p);
            if v >= p {
                (true, v.saturating_sub(p))
            } else {
                (false, p.saturating_sub(v))
            }
        };
        let delta = scale
            .saturating_mul(thousandths)
            .checked_div(MS_PER_S)
            .unwrap_or(0);
        if up {
            base.saturating_add(delta)
        } else {
            base.saturating_sub(delta)
        }
    }

    /// The next RT of the current exchange (section 15).
    fn next_rt(&mut self) -> Duration {
        let (irt, mrt, _, positive_first) = self.params();
        let mut rt = match self.ex.rt {
            None => self.randomized(ms(irt), ms(irt), positive_first),
            Some(prev) => {
                let p = ms(prev);
                self.randomized(p.saturating_mul(2), p, false)
            }
        };
        let mrt = ms(mrt);
        if mrt > 0 && rt > mrt {
            rt = self.randomized(mrt, mrt, false);
        }
        Duration::from_millis(rt)
    }

    /// When the client next wants [`Client::poll_transmit`] called; `None` when bound or
    /// expired. Never past the deadline.
    pub fn poll_at(&self) -> Option<Instant> {
        match self.phase {
            Phase::Bound(_) | Phase::Expired => None,
            _ => Some(match self.deadline {
                Some(d) => self.ex.next_tx.min(d),
                None => self.ex.next_tx,
            }),
        }
    }

    /// The DHCPv6 payload to send to `ff02::1:2` port 547 now, if one is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if matches!(self.phase, Phase::Bound(_) | Phase::Expired) {
            return None;
        }
        if self.deadline.is_some_and(|d| now >= d) {
            self.phase = Phase::Expired;
            return None;
        }
        if now < self.ex.next_tx {
            return None;
        }
        if self.ex.sent > 0 {
            // A retransmission timer fired.
            let mrc = self.params().2;
            match &mut self.phase {
                Phase::Soliciting {
                    offers,
                    window_over,
                } => {
                    *window_over = true;
                    if !offers.is_empty() {
                        let offers = std::mem::take(offers);
                        self.request_best(offers, now);
                    }
                }
                Phase::Requesting { .. } if mrc > 0 && self.ex.sent >= mrc => {
                    let why = format!("no REPLY to {mrc} REQUESTs");
                    self.next_server(why, now);
                }
                _ => {}
            }
        }
        let packet = self.build(now)?;
        match self.phase {
            Phase::Soliciting { .. } => {
                self.progress.solicits = self.progress.solicits.saturating_add(1)
            }
            Phase::Requesting { .. } => {
                self.progress.requests = self.progress.requests.saturating_add(1)
            }
            _ => {
                self.progress.information_requests =
                    self.progress.information_requests.saturating_add(1)
            }
        }
        let rt = self.next_rt();
        self.ex.sent = self.ex.sent.saturating_add(1);
        self.ex.started.get_or_insert(now);
        self.ex.rt = Some(rt);
        self.ex.next_tx = now.checked_add(rt).unwrap_or(now);
        Some(packet)
    }

    /// The message of the current exchange, elapsed time as of `now`.
    fn build(&self, now: Instant) -> Option<Vec<u8>> {
        let elapsed = self.ex.started.map_or(0, |s| {
            let centis = now
                .saturating_duration_since(s)
                .as_millis()
                .checked_div(10)
                .unwrap_or(0);
            u16::try_from(centis).unwrap_or(u16::MAX)
        });
        let ia = |addresses: Vec<IaAddr>| IaNa {
            iaid: self.iaid,
            t1: 0,
            t2: 0,
            addresses,
            status: None,
        };
        let mut r = match &self.phase {
            Phase::Soliciting { .. } => {
                let mut r = Repr::new(MessageType::Solicit, self.ex.xid);
                r.ia_na.push(ia(Vec::new()));
                r.oro = vec![option::DNS_SERVERS, option::DOMAIN_LIST, option::SOL_MAX_RT];
                r.rapid_commit = self.mode == Mode::Stateful { rapid_commit: true };
                r
            }
            Phase::Requesting { offer, .. } => {
                let mut r = Repr::new(MessageType::Request, self.ex.xid);
                r.server_id = Some(offer.server.clone());
                // The advertised addresses as hints; lifetimes 0 (section 21.6).
                r.ia_na.push(ia(offer
                    .addresses
                    .iter()
                    .map(|a| IaAddr {
                        address: a.address,
                        preferred: 0,
                        valid: 0,
                        status: None,
                    })
                    .collect()));
                r.oro = vec![option::DNS_SERVERS, option::DOMAIN_LIST, option::SOL_MAX_RT];
                r
            }
            Phase::Informing => {
                let mut r = Repr::new(MessageType::InformationRequest, self.ex.xid);
                r.oro = vec![option::DNS_SERVERS, option::DOMAIN_LIST, option::INF_MAX_RT];
                r
            }
            Phase::Bound(_) | Phase::Expired => return None,
        };
        r.client_id = Some(self.duid.clone());
        r.elapsed_time = Some(elapsed);
        r.to_bytes().ok()
    }

    /// Sends a REQUEST to the best of `offers` (highest preference, first on a tie).
    fn request_best(&mut self, mut offers: Vec<Offer>, now: Instant) {
        // Stable: among equal preferences the first received stays first.
        offers.sort_by_key(|o| std::cmp::Reverse(o.preference));
        let mut rest = offers.into_iter();
        if let Some(offer) = rest.next() {
            self.phase = Phase::Requesting {
                offer,
                others: rest.collect(),
            };
            self.start_exchange(now);
        }
    }

    /// The chosen server failed us: the next collected one, else SOLICIT again.
    fn next_server(&mut self, why: String, now: Instant) -> Event {
        self.progress.last_refusal = Some(why.clone());
        let others = match &mut self.phase {
            Phase::Requesting { others, .. } => std::mem::take(others),
            _ => Vec::new(),
        };
        if others.is_empty() {
            self.solicit_again(now);
        } else {
            self.request_best(others, now);
        }
        Event::Restarted(why)
    }

    fn solicit_again(&mut self, now: Instant) {
        self.phase = Phase::Soliciting {
            offers: Vec::new(),
            window_over: false,
        };
        self.start_exchange(now);
    }

    fn ignore(&mut self, why: String) -> Event {
        self.progress.last_refusal = Some(why.clone());
        Event::Ignored(why)
    }

    /// Takes SOL_MAX_RT and INF_MAX_RT from any ADVERTISE or REPLY, even one otherwise
    /// refused (section 18.2.9), if in range.
    fn take_max_rt(&mut self, r: &Repr) {
        if let Some(s) = r.sol_max_rt.filter(|s| MAX_RT_RANGE.contains(s)) {
            self.sol_max_rt = Duration::from_secs(u64::from(s));
        }
        if let Some(s) = r.inf_max_rt.filter(|s| MAX_RT_RANGE.contains(s)) {
            self.inf_max_rt = Duration::from_secs(u64::from(s));
        }
    }

    /// Our IA_NA's usable addresses in `r`.
    fn usable(&self, r: &Repr) -> Result<(u32, u32, Vec<IaAddr>), Unusable> {
        if let Some(s) = r.status.as_ref().filter(|s| !s.is_success()) {
            return Err(Unusable {
                status: Some(s.code),
                why: s.to_string(),
            });
        }
        let Some(ia) = r.ia_na.iter().find(|ia| ia.iaid == self.iaid) else {
            return Err(Unusable {
                status: None,
                why: "no IA_NA for our IAID".into(),
            });
        };
        if let Some(s) = ia.status.as_ref().filter(|s| !s.is_success()) {
            return Err(Unusable {
                status: Some(s.code),
                why: format!("IA_NA: {s}"),
            });
        }
        if ia.t2 > 0 && ia.t1 > ia.t2 {
            return Err(Unusable {
                status: None,
                why: format!("IA_NA with T1 {} > T2 {}", ia.t1, ia.t2),
            });
        }
        let addresses: Vec<IaAddr> = ia
            .addresses
            .iter()
            .filter(|a| {
                a.valid > 0
                    && a.preferred <= a.valid
                    && a.status.as_ref().is_none_or(|s| s.is_success())
            })
            .cloned()
            .collect();
        if addresses.is_empty() {
            return Err(Unusable {
                status: None,
                why: "no usable address in our IA_NA".into(),
            });
        }
        Ok((ia.t1, ia.t2, addresses))
    }

    /// Feeds one received DHCPv6 payload (the UDP payload from port 547).
    pub fn process(&mut self, payload: &[u8], now: Instant) -> Event {
        let Some((kind, xid)) = wire::header(payload) else {
            return Event::None;
        };
        if xid != self.ex.xid
            || !matches!(kind, MessageType::Advertise | MessageType::Reply)
            || matches!(self.phase, Phase::Bound(_) | Phase::Expired)
        {
            return Event::None;
        }
        let r = match Packet::new_checked(payload).and_then(|p| Repr::parse(&p)) {
            Ok(r) => r,
            Err(e) => return self.ignore(format!("{kind}: {e}")),
        };
        // Section 16.3 and 16.10: a server identifier, and our client identifier.
        let Some(server) = r.server_id.clone() else {
            return self.ignore(format!("{kind} without a server identifier"));
        };
        if r.client_id.as_ref() != Some(&self.duid) {
            return self.ignore(format!(
                "{kind} from {server} for another client identifier"
            ));
        }
        /// Where the client stands, without holding a borrow of it.
        enum At {
            Soliciting,
            Requesting(Duid, u8),
            Informing,
        }
        let at = match &self.phase {
            Phase::Soliciting { .. } => At::Soliciting,
            Phase::Requesting { offer, .. } => {
                At::Requesting(offer.server.clone(), offer.preference)
            }
            Phase::Informing => At::Informing,
            Phase::Bound(_) | Phase::Expired => return Event::None,
        };
        match (at, kind) {
            (At::Soliciting, MessageType::Advertise) => self.on_advertise(r, server, now),
            (At::Soliciting, MessageType::Reply) => {
                self.progress.replies = self.progress.replies.saturating_add(1);
                self.take_max_rt(&r);
                if self.mode != (Mode::Stateful { rapid_commit: true }) || !r.rapid_commit {
                    return self.ignore(format!(
                        "REPLY from {server} to a SOLICIT without Rapid Commit"
                    ));
                }
                match self.usable(&r) {
                    Ok(ia) => {
                        let preference = r.preference.unwrap_or(0);
                        self.bind(r, server, preference, Some(ia), now)
                    }
                    // Like an ADVERTISE without addresses: keep soliciting.
                    Err(u) => self.ignore(format!("REPLY from {server}: {}", u.why)),
                }
            }
            (At::Requesting(asked, preference), MessageType::Reply) => {
                if asked != server {
                    return self.ignore(format!("REPLY from {server}, not the server asked"));
                }
                self.progress.replies = self.progress.replies.saturating_add(1);
                self.take_max_rt(&r);
                match self.usable(&r) {
                    Ok(ia) => self.bind(r, server, preference, Some(ia), now),
                    Err(Unusable {
                        status: Some(StatusCode::UnspecFail | StatusCode::UseMulticast),
                        why,
                    }) => {
                        // Retransmitting (multicast, backed off, REQ_MAX_RC) is the remedy.
                        self.ignore(format!("REPLY from {server}: {why}; retrying"))
                    }
                    Err(Unusable {
                        status: Some(StatusCode::NotOnLink),
                        why,
                    }) => {
                        let why = format!("REPLY from {server}: {why}");
                        self.progress.last_refusal = Some(why.clone());
                        self.solicit_again(now);
                        Event::Restarted(why)
                    }
                    Err(u) => self.next_server(format!("REPLY from {server}: {}", u.why), now),
                }
            }
            (At::Informing, MessageType::Reply) => {
                self.progress.replies = self.progress.replies.saturating_add(1);
                self.take_max_rt(&r);
                if let Some(s) = r.status.as_ref().filter(|s| !s.is_success()) {
                    return self.ignore(format!("REPLY from {server}: {s}; retrying"));
                }
                let preference = r.preference.unwrap_or(0);
                self.bind(r, server, preference, None, now)
            }
            _ => Event::None,
        }
    }

    fn on_advertise(&mut self, r: Repr, server: Duid, now: Instant) -> Event {
        self.progress.advertises = self.progress.advertises.saturating_add(1);
        self.take_max_rt(&r);
        let (_, _, addresses) = match self.usable(&r) {
            Ok(u) => u,
            Err(u) => return self.ignore(format!("ADVERTISE from {server}: {}", u.why)),
        };
        let preference = r.preference.unwrap_or(0);
        let offer = Offer {
            server: server.clone(),
            preference,
            addresses,
        };
        if let Phase::Soliciting {
            offers,
            window_over,
        } = &mut self.phase
        {
            offers.push(offer);
            if preference == 255 || *window_over {
                let offers = std::mem::take(offers);
                self.request_best(offers, now);
            }
        }
        Event::Advertised { server, preference }
    }

    fn bind(
        &mut self,
        r: Repr,
        server: Duid,
        preference: u8,
        ia: Option<(u32, u32, Vec<IaAddr>)>,
        now: Instant,
    ) -> Event {
        let stateless = ia.is_none();
        let (t1, t2, addresses) = ia.unwrap_or_default();
        let lease = Lease6 {
            server,
            preference,
            addresses,
            iaid: self.iaid,
            t1,
            t2,
            dns: r.dns_servers,
            domains: r.domains,
            // Bound while soliciting: only a Rapid Commit REPLY does that.
            rapid_commit: matches!(self.phase, Phase::Soliciting { .. }),
            stateless,
            elapsed: now.saturating_duration_since(self.created),
            transmissions: self.progress.sent(),
            cuts: r.cuts,
        };
        self.phase = Phase::Bound(lease.clone());
        Event::Bound(lease)
    }
}

#[cfg(test)]
#[allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::panic
)]
mod tests {
    use super::*;
    use crate::dhcp6::wire::{Status, StatusCode};

    const MAC: [u8; 6] = [0x02, 0, 0, 0xaa, 0xbb, 0x01];
    const IAID: u32 = 0x00aa_bb01;

    fn no_jitter() -> RetryConfig {
        RetryConfig {
            rand_permille: 0,
            ..RetryConfig::default()
        }
    }

    fn server(n: u8) -> Duid {
        Duid::from_bytes(&[0, 3, 0, 1, 2, 0, 0, 0, 0, n]).unwrap()
    }

    fn addr(s: &str, preferred: u32, valid: u32) -> IaAddr {
        IaAddr {
            address: s.parse().unwrap(),
            preferred,
            valid,
            status: None,
        }
    }

    /// A server message answering `c`'s current transaction.
    fn answer(c: &Client, kind: MessageType, from: u8, f: impl FnOnce(&mut Repr)) -> Vec<u8> {
        let mut r = Repr::new(kind, c.xid());
        r.client_id = Some(Duid::ll(MAC));
        r.server_id = Some(server(from));
        r.ia_na.push(IaNa {
            iaid: IAID,
            t1: 1800,
            t2: 2880,
            addresses: vec![addr("fd77::100", 1800, 3600)],
            status: None,
        });
        r.dns_servers = vec!["fd77::53".parse().unwrap()];
        r.domains = vec!["example.com".into()];
        f(&mut r);
        r.to_bytes().unwrap()
    }

    fn sent(b: &[u8]) -> Repr {
        Repr::parse(&Packet::new_checked(b).unwrap()).unwrap()
    }

    fn stateful(rapid: bool, t0: Instant) -> Client {
        Client::new(
            MAC,
            Mode::Stateful {
                rapid_commit: rapid,
            },
            42,
            t0,
            no_jitter(),
        )
    }

    #[test]
    fn solicit_advertise_request_reply() {
        let t0 = Instant::now();
        let mut c = stateful(false, t0);
        assert_eq!(c.duid().as_bytes(), &[0, 3, 0, 1, 2, 0, 0, 0xaa, 0xbb, 1]);
        let s = sent(&c.poll_transmit(t0).unwrap());
        assert_eq!(s.msg_type, MessageType::Solicit);
        assert_eq!(s.transaction_id, c.xid());
        assert!(c.xid() <= 0xff_ffff, "24-bit xid");
        assert_eq!(s.client_id.as_ref(), Some(c.duid()));
        assert_eq!(s.server_id, None);
        assert_eq!(s.elapsed_time, Some(0));
        assert!(!s.rapid_commit);
        assert_eq!(
            s.oro,
            [option::DNS_SERVERS, option::DOMAIN_LIST, option::SOL_MAX_RT]
        );
        assert_eq!(s.ia_na.len(), 1);
        assert_eq!((s.ia_na[0].iaid, s.ia_na[0].addresses.len()), (IAID, 0));
        assert!(c.poll_transmit(t0).is_none(), "nothing due yet");
        assert_eq!(c.poll_at(), Some(t0 + Duration::from_secs(1)));

        let adv = answer(&c, MessageType::Advertise, 1, |_| {});
        assert_eq!(
            c.process(&adv, t0 + Duration::from_millis(5)),
            Event::Advertised {
                server: server(1),
                preference: 0
            }
        );
        // Preference 0: wait out the first RT for better servers.
        assert!(c.poll_transmit(t0 + Duration::from_millis(500)).is_none());
        let t1 = t0 + Duration::from_secs(1);
        let req = sent(&c.poll_transmit(t1).unwrap());
        assert_eq!(req.msg_type, MessageType::Request);
        assert_eq!(req.transaction_id, c.xid());
        assert_ne!(req.transaction_id, s.transaction_id, "a new exchange");
        assert_eq!(req.server_id, Some(server(1)));
        assert_eq!(req.elapsed_time, Some(0), "elapsed restarts per exchange");
        assert_eq!(
            req.ia_na[0].addresses,
            [addr("fd77::100", 0, 0)],
            "hints with zero lifetimes"
        );

        let reply = answer(&c, MessageType::Reply, 1, |_| {});
        let t2 = t1 + Duration::from_millis(3);
        let Event::Bound(lease) = c.process(&reply, t2) else {
            panic!("not bound")
        };
        assert_eq!(lease.server, server(1));
        assert_eq!(lease.addresses, [addr("fd77::100", 1800, 3600)]);
        assert_eq!((lease.iaid, lease.t1, lease.t2), (IAID, 1800, 2880));
        assert_eq!(lease.dns, ["fd77::53".parse::<Ipv6Addr>().unwrap()]);
        assert_eq!(lease.domains, ["example.com"]);
        assert!(!lease.rapid_commit && !lease.stateless);
        assert_eq!(lease.elapsed, t2 - t0);
        assert_eq!(lease.transmissions, 2);
        assert_eq!(c.lease(), Some(&lease));
        assert_eq!(c.poll_at(), None);
        assert!(c.poll_transmit(t2 + Duration::from_secs(60)).is_none());
        assert_eq!(
            c.describe(),
            "DHCPv6 bound: 1 SOLICIT, 1 ADVERTISE, 1 REQUEST, 1 REPLY"
        );
    }

    #[test]
    fn rapid_commit_reply_binds_at_once() {
        let t0 = Instant::now();
        let mut c = stateful(true, t0);
        let s = sent(&c.poll_transmit(t0).unwrap());
        assert!(s.rapid_commit, "SOLICIT asks for Rapid Commit");
        let plain = answer(&c, MessageType::Reply, 1, |_| {});
        assert!(
            matches!(c.process(&plain, t0), Event::Ignored(_)),
            "a REPLY without Rapid Commit is refused"
        );
        let reply = answer(&c, MessageType::Reply, 1, |r| r.rapid_commit = true);
        let Event::Bound(lease) = c.process(&reply, t0) else {
            panic!("not bound")
        };
        assert!(lease.rapid_commit);
        assert_eq!(lease.transmissions, 1);
        // Without Rapid Commit asked, even a Rapid Commit REPLY is refused.
        let mut c = stateful(false, t0);
        c.poll_transmit(t0);
        let reply = answer(&c, MessageType::Reply, 1, |r| r.rapid_commit = true);
        assert!(matches!(c.process(&reply, t0), Event::Ignored(_)));
    }

    #[test]
    fn server_selection() {
        let t0 = Instant::now();
        let rt1 = t0 + Duration::from_secs(1);
        // (case, advertisements (server, preference), when the REQUEST goes, to whom)
        for (case, advs, at, to) in [
            ("preference 255 at once", &[(1u8, 255u8)][..], t0, 1u8),
            ("best after the first RT", &[(1, 3), (2, 9), (3, 5)], rt1, 2),
            ("tie: the first", &[(1, 7), (2, 7)], rt1, 1),
            ("255 after others", &[(1, 200), (2, 255)], t0, 2),
        ] {
            let mut c = stateful(false, t0);
            c.poll_transmit(t0);
            for (from, pref) in advs {
                let adv = answer(&c, MessageType::Advertise, *from, |r| {
                    r.preference = Some(*pref)
                });
                let e = c.process(&adv, t0);
                assert!(matches!(e, Event::Advertised { .. }), "case {case}: {e:?}");
            }
            if at > t0 {
                assert!(c.poll_transmit(t0).is_none(), "case {case}: too early");
            }
            let req = sent(&c.poll_transmit(at).unwrap());
            assert_eq!(req.msg_type, MessageType::Request, "case {case}");
            assert_eq!(req.server_id, Some(server(to)), "case {case}");
        }
    }

    #[test]
    fn an_advertise_after_the_first_rt_is_taken_at_once() {
        let t0 = Instant::now();
        let mut c = stateful(false, t0);
        c.poll_transmit(t0);
        let t1 = t0 + Duration::from_secs(1);
        let again = sent(&c.poll_transmit(t1).unwrap());
        assert_eq!(again.msg_type, MessageType::Solicit, "retransmitted");
        assert_eq!(again.elapsed_time, Some(100), "hundredths of a second");
        let adv = answer(&c, MessageType::Advertise, 4, |r| r.preference = Some(1));
        c.process(&adv, t1 + Duration::from_millis(10));
        let req = sent(&c.poll_transmit(t1 + Duration::from_millis(10)).unwrap());
        assert_eq!(
            (req.msg_type, req.server_id),
            (MessageType::Request, Some(server(4)))
        );
    }

    #[test]
    fn unusable_advertisements_are_ignored_but_set_sol_max_rt() {
        type Edit = fn(&mut Repr);
        let cases: [(&str, Edit); 9] = [
            ("NoAddrsAvail", |r| {
                r.ia_na.clear();
                r.status = Some(Status {
                    code: StatusCode::NoAddrsAvail,
                    message: "no addresses available".into(),
                });
            }),
            ("no IA_NA", |r| r.ia_na.clear()),
            ("another IAID", |r| r.ia_na[0].iaid = 7),
            ("IA status NoAddrsAvail", |r| {
                r.ia_na[0].status = Some(Status {
                    code: StatusCode::NoAddrsAvail,
                    message: String::new(),
                })
            }),
            ("IA without addresses", |r| r.ia_na[0].addresses.clear()),
            ("valid lifetime 0", |r| r.ia_na[0].addresses[0].valid = 0),
            ("preferred above valid", |r| {
                r.ia_na[0].addresses[0].preferred = 4000
            }),
            ("T1 above T2", |r| r.ia_na[0].t1 = 5000),
            ("no server id", |r| r.server_id = None),
        ];
        for (case, edit) in cases {
            let t0 = Instant::now();
            let mut c = stateful(false, t0);
            c.poll_transmit(t0);
            let adv = answer(&c, MessageType::Advertise, 1, |r| {
                edit(r);
                r.preference = Some(255);
                r.sol_max_rt = Some(60);
            });
            let e = c.process(&adv, t0);
            assert!(matches!(e, Event::Ignored(_)), "case {case}: {e:?}");
            // Still soliciting; the SOLICITs back off to SOL_MAX_RT = 60 s (taken from the
            // refused ADVERTISE, except where there was no server id to trust it by).
            let mut last = Duration::ZERO;
            for _ in 0..9 {
                let now = c.poll_at().unwrap();
                let s = sent(&c.poll_transmit(now).unwrap());
                assert_eq!(s.msg_type, MessageType::Solicit, "case {case}");
                last = c.poll_at().unwrap() - now;
            }
            let want = if case == "no server id" { 512 } else { 60 };
            assert_eq!(last, Duration::from_secs(want), "case {case}");
            assert!(
                c.progress().last_refusal.is_some(),
                "case {case}: refusal kept"
            );
        }
    }

    #[test]
    fn out_of_range_sol_max_rt_is_ignored() {
        for (case, value, want) in [
            ("59", 59u32, 3600u64),
            ("86401", 86401, 3600),
            ("60", 60, 60),
            ("86400", 86400, 86400),
        ] {
            let t0 = Instant::now();
            let mut c = stateful(false, t0);
            c.poll_transmit(t0);
            let adv = answer(&c, MessageType::Advertise, 1, |r| {
                r.ia_na.clear();
                r.sol_max_rt = Some(value);
            });
            c.process(&adv, t0);
            assert_eq!(c.sol_max_rt, Duration::from_secs(want), "case {case}");
        }
    }

    #[test]
    fn replies_that_are_not_for_us() {
        type Edit = fn(&mut Repr);
        let cases: [(&str, Edit, bool); 5] = [
            ("other transaction", |r| r.transaction_id ^= 1, false),
            ("other client id", |r| r.client_id = Some(server(9)), true),
            ("no client id", |r| r.client_id = None, true),
            ("no server id", |r| r.server_id = None, true),
            ("a SOLICIT", |r| r.msg_type = MessageType::Solicit, false),
        ];
        for (case, edit, reported) in cases {
            let t0 = Instant::now();
            let mut c = stateful(true, t0);
            c.poll_transmit(t0);
            let reply = answer(&c, MessageType::Reply, 1, |r| {
                r.rapid_commit = true;
                edit(r);
            });
            let e = c.process(&reply, t0);
            if reported {
                assert!(matches!(e, Event::Ignored(_)), "case {case}: {e:?}");
            } else {
                assert_eq!(e, Event::None, "case {case}");
            }
            assert!(c.lease().is_none(), "case {case}");
        }
        let t0 = Instant::now();
        let mut c = stateful(true, t0);
        c.poll_transmit(t0);
        for junk in [&[][..], &[7], &[7, 0, 0]] {
            assert_eq!(c.process(junk, t0), Event::None, "{junk:?}");
        }
        let mut broken = answer(&c, MessageType::Reply, 1, |_| {});
        broken.push(0);
        assert!(matches!(c.process(&broken, t0), Event::Ignored(_)));
    }

    /// A client that has sent its first REQUEST to server 1 (server 2 advertised too).
    fn requesting(t0: Instant, two: bool) -> Client {
        let mut c = stateful(false, t0);
        c.poll_transmit(t0);
        c.process(
            &answer(&c, MessageType::Advertise, 1, |r| r.preference = Some(9)),
            t0,
        );
        if two {
            c.process(
                &answer(&c, MessageType::Advertise, 2, |r| r.preference = Some(1)),
                t0,
            );
        }
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            sent(&c.poll_transmit(t1).unwrap()).server_id,
            Some(server(1))
        );
        c
    }

    #[test]
    fn reply_status_codes() {
        use StatusCode::*;
        // (case, status at top level or in the IA, two servers, what is sent next, to whom)
        for (case, code, in_ia, two, next, to) in [
            (
                "UnspecFail",
                UnspecFail,
                false,
                true,
                MessageType::Request,
                Some(1u8),
            ),
            (
                "UseMulticast",
                UseMulticast,
                false,
                true,
                MessageType::Request,
                Some(1),
            ),
            (
                "NoAddrsAvail, next server",
                NoAddrsAvail,
                true,
                true,
                MessageType::Request,
                Some(2),
            ),
            (
                "NoAddrsAvail, alone",
                NoAddrsAvail,
                true,
                false,
                MessageType::Solicit,
                None,
            ),
            (
                "NoAddrsAvail at top",
                NoAddrsAvail,
                false,
                true,
                MessageType::Request,
                Some(2),
            ),
            (
                "NotOnLink",
                NotOnLink,
                true,
                true,
                MessageType::Solicit,
                None,
            ),
            (
                "NoBinding",
                NoBinding,
                false,
                false,
                MessageType::Solicit,
                None,
            ),
        ] {
            let t0 = Instant::now();
            let mut c = requesting(t0, two);
            let xid = c.xid();
            let now = t0 + Duration::from_millis(1010);
            let reply = answer(&c, MessageType::Reply, 1, |r| {
                let s = Some(Status {
                    code,
                    message: "no".into(),
                });
                if in_ia {
                    r.ia_na[0].addresses.clear();
                    r.ia_na[0].status = s;
                } else {
                    r.status = s;
                }
            });
            let e = c.process(&reply, now);
            let retry = matches!(code, UnspecFail | UseMulticast);
            match &e {
                Event::Ignored(_) => assert!(retry, "case {case}: {e:?}"),
                Event::Restarted(_) => assert!(!retry, "case {case}: {e:?}"),
                _ => panic!("case {case}: {e:?}"),
            }
            let at = c.poll_at().unwrap();
            if retry {
                assert_eq!(c.xid(), xid, "case {case}: same exchange");
                assert!(c.poll_transmit(now).is_none(), "case {case}: waits its RT");
            } else {
                assert_eq!(at, now, "case {case}: due now");
            }
            let m = sent(&c.poll_transmit(at).unwrap());
            assert_eq!(m.msg_type, next, "case {case}");
            assert_eq!(m.server_id, to.map(server), "case {case}");
        }
    }

    #[test]
    fn reply_from_another_server_is_refused() {
        let t0 = Instant::now();
        let mut c = requesting(t0, true);
        let reply = answer(&c, MessageType::Reply, 2, |_| {});
        assert!(matches!(c.process(&reply, t0), Event::Ignored(_)));
        assert!(c.lease().is_none());
    }

    #[test]
    fn requests_give_up_after_req_max_rc() {
        let t0 = Instant::now();
        let mut c = requesting(t0, false);
        let mut kinds = vec![MessageType::Request];
        let mut gaps = Vec::new();
        let mut now = t0 + Duration::from_secs(1);
        for _ in 0..11 {
            let next = c.poll_at().unwrap();
            gaps.push((next - now).as_secs());
            now = next;
            kinds.push(sent(&c.poll_transmit(now).unwrap()).msg_type);
        }
        assert_eq!(kinds[..10], [MessageType::Request; 10], "REQ_MAX_RC");
        assert_eq!(kinds[10], MessageType::Solicit, "then SOLICIT again");
        // REQ_TIMEOUT 1 s doubling to REQ_MAX_RT 30 s.
        assert_eq!(gaps[..10], [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]);
        assert_eq!(
            c.progress().last_refusal.as_deref(),
            Some("no REPLY to 10 REQUESTs")
        );
    }

    #[test]
    fn retransmission_follows_section_15() {
        let t0 = Instant::now();
        // Without jitter: doubling to the cap.
        for (case, mode, irt_gaps) in [
            (
                "SOLICIT",
                Mode::Stateful { rapid_commit: true },
                vec![
                    1u64, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600,
                ],
            ),
            (
                "INFORMATION-REQUEST",
                Mode::Stateless,
                vec![
                    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600,
                ],
            ),
        ] {
            let mut c = Client::new(MAC, mode, 1, t0, no_jitter());
            let mut now = t0;
            let mut gaps = Vec::new();
            for _ in 0..irt_gaps.len() {
                assert!(c.poll_transmit(now).is_some(), "case {case}");
                let next = c.poll_at().unwrap();
                gaps.push((next - now).as_secs());
                now = next;
            }
            assert_eq!(gaps, irt_gaps, "case {case}");
        }
        // With the RFC's ±0.1: the first SOLICIT RT is strictly above IRT, within 10 %,
        // and every later one within ±10 % of twice the one before (or of MRT).
        for seed in 0..200 {
            let mut c = Client::new(
                MAC,
                Mode::Stateful {
                    rapid_commit: false,
                },
                seed,
                t0,
                RetryConfig::default(),
            );
            let mut now = t0;
            let mut prev: Option<u64> = None;
            for _ in 0..16 {
                c.poll_transmit(now).unwrap();
                let next = c.poll_at().unwrap();
                let rt = (next - now).as_millis() as u64;
                match prev {
                    None => assert!(rt > 1000 && rt <= 1100, "seed {seed}: first RT {rt}"),
                    Some(p) => {
                        let (lo, hi) = (2 * p - p / 10, 2 * p + p / 10);
                        let capped = (3_240_000..=3_960_000).contains(&rt);
                        assert!(
                            (lo..=hi).contains(&rt) || capped,
                            "seed {seed}: {rt} after {p}"
                        );
                    }
                }
                prev = Some(rt);
                now = next;
            }
        }
    }

    #[test]
    fn first_message_delay_is_bounded() {
        let t0 = Instant::now();
        for seed in 0..50 {
            let retry = RetryConfig {
                first_delay_max: Duration::from_secs(1),
                ..RetryConfig::default()
            };
            let c = Client::new(MAC, Mode::Stateless, seed, t0, retry);
            let d = c.poll_at().unwrap() - t0;
            assert!(d <= Duration::from_secs(1), "seed {seed}: {d:?}");
        }
        let c = Client::new(MAC, Mode::Stateless, 5, t0, RetryConfig::default());
        assert_eq!(c.poll_at(), Some(t0), "no delay by default");
    }

    #[test]
    fn the_deadline_cuts_every_wait() {
        let t0 = Instant::now();
        let end = t0 + Duration::from_millis(2500);
        let mut c = Client::new(MAC, Mode::Stateless, 3, t0, no_jitter()).with_deadline(end);
        let mut now = t0;
        let mut sends = 0;
        while let Some(at) = c.poll_at() {
            assert!(at <= end, "poll_at {at:?} past the deadline");
            now = at;
            if c.poll_transmit(now).is_some() {
                sends += 1;
            }
        }
        assert_eq!(now, end);
        assert_eq!(
            sends, 2,
            "at 0 s and 1 s; the next (3 s) is past the deadline"
        );
        assert!(c.expired());
        assert!(c
            .describe()
            .starts_with("DHCPv6 deadline passed: 2 INFORMATION-REQUEST"));
        let reply = answer(&c, MessageType::Reply, 1, |_| {});
        assert_eq!(c.process(&reply, now), Event::None, "too late");
    }

    #[test]
    fn elapsed_time_saturates() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, Mode::Stateless, 3, t0, no_jitter());
        c.poll_transmit(t0);
        let late = t0 + Duration::from_secs(1000);
        let m = sent(&c.poll_transmit(late).unwrap());
        assert_eq!(m.elapsed_time, Some(u16::MAX), "over 655.35 s");
    }

    #[test]
    fn stateless_information_request() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, Mode::Stateless, 11, t0, no_jitter());
        let m = sent(&c.poll_transmit(t0).unwrap());
        assert_eq!(m.msg_type, MessageType::InformationRequest);
        assert!(m.ia_na.is_empty(), "no IA in an Information-Request");
        assert_eq!(
            m.oro,
            [option::DNS_SERVERS, option::DOMAIN_LIST, option::INF_MAX_RT]
        );
        assert_eq!(m.client_id.as_ref(), Some(c.duid()));
        let failed = answer(&c, MessageType::Reply, 1, |r| {
            r.status = Some(Status {
                code: StatusCode::UnspecFail,
                message: String::new(),
            });
            r.inf_max_rt = Some(120);
        });
        assert!(matches!(c.process(&failed, t0), Event::Ignored(_)));
        assert_eq!(c.inf_max_rt, Duration::from_secs(120), "INF_MAX_RT taken");
        let reply = answer(&c, MessageType::Reply, 1, |r| r.ia_na.clear());
        let Event::Bound(lease) = c.process(&reply, t0) else {
            panic!("not informed")
        };
        assert!(lease.stateless && lease.addresses.is_empty());
        assert_eq!(lease.domains, ["example.com"]);
        assert_eq!(lease.dns.len(), 1);
        // An ADVERTISE means nothing to a stateless client.
        let mut c = Client::new(MAC, Mode::Stateless, 11, t0, no_jitter());
        c.poll_transmit(t0);
        let adv = answer(&c, MessageType::Advertise, 1, |_| {});
        assert_eq!(c.process(&adv, t0), Event::None);
    }

    #[test]
    fn transaction_ids_replay_from_the_seed() {
        let t0 = Instant::now();
        let ids = |seed: u64, jitter: u16| {
            let retry = RetryConfig {
                rand_permille: jitter,
                ..RetryConfig::default()
            };
            let mut c = Client::new(
                MAC,
                Mode::Stateful {
                    rapid_commit: false,
                },
                seed,
                t0,
                retry,
            );
            let first = c.xid();
            // Three retransmissions draw jitter; the next exchange's id must not care.
            let mut now = t0;
            for _ in 0..4 {
                c.poll_transmit(now);
                now = c.poll_at().unwrap();
            }
            c.process(&answer(&c, MessageType::Advertise, 1, |_| {}), now);
            (first, c.xid())
        };
        assert_eq!(ids(77, 100), ids(77, 0), "same seed, same ids");
        assert_ne!(ids(77, 0), ids(78, 0), "another seed, other ids");
        let (a, b) = ids(77, 0);
        assert_ne!(a, b, "a new id per exchange");
    }

    /// Replays a captured exchange (`tests/data/dhcp6/<case>/`): the client, with the
    /// capture's MAC and seed, must send what was sent (but for the elapsed time, which
    /// depends on the real clock) and make of each answer what the table says.
    fn replay(case: &str, mode: Mode, seed: u64) -> (Client, Vec<Event>, Vec<Instant>) {
        use crate::dhcp6::wire::tests::CAPTURES;
        let t0 = Instant::now();
        let mac = [2, 0, 0, 0, 0, 1];
        let mut c = Client::new(mac, mode, seed, t0, RetryConfig::default());
        let (mut events, mut sent_at) = (Vec::new(), Vec::new());
        let mut now = t0;
        let prefix = format!("{case}/");
        for (name, bytes) in CAPTURES.iter().filter(|(n, _)| n.starts_with(&prefix)) {
            if name.contains("-out-") {
                now = c.poll_at().unwrap_or_else(|| panic!("{name}: nothing due"));
                sent_at.push(now);
                let ours = c
                    .poll_transmit(now)
                    .unwrap_or_else(|| panic!("{name}: not sent"));
                let (mut ours, mut theirs) = (sent(&ours), sent(bytes));
                ours.elapsed_time = None;
                theirs.elapsed_time = None;
                assert_eq!(ours, theirs, "{name}");
            } else {
                now += Duration::from_millis(2);
                events.push(c.process(bytes, now));
            }
        }
        (c, events, sent_at)
    }

    #[test]
    fn captured_exchanges_replay() {
        let fd77 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let stateful = |rapid_commit| Mode::Stateful { rapid_commit };
        for (case, mode, seed) in [
            ("rapid-commit", stateful(true), 1),
            ("four-message", stateful(false), 2),
            ("authoritative", stateful(false), 3),
            ("stateless", Mode::Stateless, 4),
            ("no-addresses", stateful(false), 6),
            ("no-addresses-rapid", stateful(true), 6),
        ] {
            let (c, events, sent_at) = replay(case, mode, seed);
            match case {
                "no-addresses" | "no-addresses-rapid" => {
                    assert_eq!(events.len(), 2, "case {case}");
                    for e in &events {
                        let Event::Ignored(why) = e else {
                            panic!("case {case}: {e:?}")
                        };
                        assert!(why.contains("NoAddrsAvail"), "case {case}: {why}");
                    }
                    assert!(c.lease().is_none(), "case {case}");
                    assert!(
                        sent_at[1] - sent_at[0] > Duration::from_secs(1),
                        "case {case}"
                    );
                    continue;
                }
                _ => {}
            }
            let Some(Event::Bound(l)) = events.last() else {
                panic!("case {case}: {events:?}")
            };
            assert_eq!(l.dns, [fd77("fd77::53")], "case {case}");
            assert_eq!(l.domains, ["example.com", "lab.example.org"], "case {case}");
            assert!(l.cuts.is_empty(), "case {case}");
            assert_eq!(l.stateless, case == "stateless", "case {case}");
            assert_eq!(l.rapid_commit, case == "rapid-commit", "case {case}");
            if case != "stateless" {
                assert_eq!(l.addresses.len(), 1, "case {case}");
                assert_eq!(l.addresses[0].address, fd77("fd77::184"), "case {case}");
                assert_eq!((l.t1, l.t2), (1800, 3150), "case {case}");
            }
            match case {
                "four-message" => {
                    assert!(
                        matches!(events[0], Event::Advertised { preference: 0, .. }),
                        "case {case}"
                    );
                    // The REQUEST waited for the end of the first RT.
                    assert!(
                        sent_at[1] - sent_at[0] > Duration::from_secs(1),
                        "case {case}"
                    );
                }
                "authoritative" => {
                    assert!(
                        matches!(
                            events[0],
                            Event::Advertised {
                                preference: 255,
                                ..
                            }
                        ),
                        "case {case}"
                    );
                    assert!(
                        sent_at[1] - sent_at[0] < Duration::from_millis(10),
                        "case {case}"
                    );
                }
                _ => {}
            }
        }
    }
}
