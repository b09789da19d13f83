//! The DHCPv4 client as a state machine without I/O (the shape of smoltcp's
//! `socket/dhcpv4.rs`): the caller passes `now`, asks [`Client::poll_transmit`] what to send,
//! feeds received payloads to [`Client::process`], and sleeps until [`Client::poll_at`].
//! Tests drive it with made-up instants, never sleeping.
//!
//! States (RFC 2131 section 4.4): SELECTING (DISCOVER sent, waiting for an OFFER), REQUESTING
//! (REQUEST sent for the first OFFER, waiting for ACK/NAK), BOUND. A NAK, or
//! [`RetryConfig::request_tries`] REQUESTs without answer, go back to SELECTING.
//!
//! Retransmission: RFC 2131 4.1 says 4 s doubling to 64 s, randomized by ±1 s. We start at
//! [`RetryConfig::initial`] (1 s) because the whole fetch has a 20 s deadline and a lost first
//! DISCOVER (a link still settling) must not cost 4 s; doubling and jitter as in the RFC, the
//! cap is [`RetryConfig::max`]. The deadline belongs to the caller. Not supported: RENEWING and
//! REBINDING (the initramfs is done long before T1), DHCPDECLINE after ARP probing, DHCPINFORM.

use super::wire::{self, ClasslessRoute, MessageType};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Retransmission timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    pub initial: Duration,
    pub max: Duration,
    /// Each interval is moved by a random amount in `-jitter..=+jitter`.
    pub jitter: Duration,
    /// REQUESTs sent for one OFFER before starting over.
    pub request_tries: u32,
}

impl Default for RetryConfig {
    fn default() -> RetryConfig {
        RetryConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(16),
            jitter: Duration::from_millis(250),
            request_tries: 4,
        }
    }
}

/// What a server gave us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    /// From option 1; a classful guess is not made: without a mask, /32 with on-link routes.
    pub prefix: u8,
    pub server: Ipv4Addr,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub hostname: Option<String>,
    pub mtu: Option<u16>,
    pub lease_secs: Option<u32>,
    pub classless_routes: Vec<ClasslessRoute>,
    /// Option 245 (Azure's wire server), as the server sent it.
    pub option_245: Option<Ipv4Addr>,
    /// What the ACK's parser cut at its caps, in words: to log.
    pub cuts: Vec<String>,
}

impl Lease {
    /// Routes to install: option 121 when present (RFC 3442: then option 3 is ignored), else
    /// a default route via the first router. `(dest, prefix, gateway)`; gateway `None` is
    /// on-link.
    pub fn routes(&self) -> Vec<(Ipv4Addr, u8, Option<Ipv4Addr>)> {
        if !self.classless_routes.is_empty() {
            return self
                .classless_routes
                .iter()
                .map(|r| {
                    let gw = (!r.router.is_unspecified()).then_some(r.router);
                    (r.dest, r.prefix, gw)
                })
                .collect();
        }
        self.routers
            .first()
            .map(|r| vec![(Ipv4Addr::UNSPECIFIED, 0, Some(*r))])
            .unwrap_or_default()
    }
}

/// Prefix length of a contiguous netmask; `None` for a non-contiguous one.
pub fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then(|| u8::try_from(ones).unwrap_or(32))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Selecting,
    Requesting {
        offered: Ipv4Addr,
        server: Ipv4Addr,
        tries: u32,
    },
    Bound(Lease),
}

/// What [`Client::process`] made of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Not for us, or nothing changed.
    None,
    /// An OFFER was taken; a REQUEST is due now.
    Offered(Ipv4Addr),
    Bound(Lease),
    /// The server refused our REQUEST; starting over.
    Nak,
}

/// One DHCPv4 client for one NIC.
#[derive(Debug, Clone)]
pub struct Client {
    mac: [u8; 6],
    xid: u32,
    state: State,
    retry: RetryConfig,
    started: Instant,
    next_tx: Instant,
    interval: Duration,
    rng: u64,
    /// DISCOVERs and REQUESTs sent, OFFERs taken, NAKs: for [`Client::describe`].
    counts: [u32; 4],
}

impl Client {
    /// `seed` gives the transaction id and the jitter (pass something random).
    pub fn new(mac: [u8; 6], seed: u64, now: Instant, retry: RetryConfig) -> Client {
        let mut c = Client {
            mac,
            xid: 0,
            state: State::Selecting,
            retry,
            started: now,
            next_tx: now,
            interval: retry.initial,
            rng: seed | 1,
            counts: [0; 4],
        };
        c.xid = u32::try_from(c.next_random() >> 32).unwrap_or(0);
        c
    }

    pub fn xid(&self) -> u32 {
        self.xid
    }

    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound(l) => Some(l),
            _ => None,
        }
    }

    /// Where the client stands, for the line that says what became of a NIC
    /// (`DHCPv4 selecting: 3 DISCOVER, no OFFER`).
    pub fn describe(&self) -> String {
        let [discovers, requests, offers, naks] = self.counts;
        let state = match self.state {
            State::Selecting => "selecting",
            State::Requesting { .. } => "requesting",
            State::Bound(_) => "bound",
        };
        let mut t = format!("DHCPv4 {state}: {discovers} DISCOVER");
        if offers == 0 {
            t.push_str(", no OFFER");
        } else {
            t.push_str(&format!(", {offers} OFFER, {requests} REQUEST"));
        }
        if naks > 0 {
            t.push_str(&format!(", {naks} NAK"));
        }
        t
    }

    fn count(&mut self, which: usize) {
        if let Some(c) = self.counts.get_mut(which) {
            *c = c.saturating_add(1);
        }
    }

    /// xorshift64*: jitter needs no more.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn jittered(&mut self, base: Duration) -> Duration {
        let j = u64::try_from(self.retry.jitter.as_millis()).unwrap_or(0);
        if j == 0 {
            return base;
        }
        let span = j.saturating_mul(2).saturating_add(1);
        let r = self.next_random().checked_rem(span).unwrap_or(0);
        let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(base_ms.saturating_add(r).saturating_sub(j))
    }

    /// When the client next wants to send; `None` when bound.
    pub fn poll_at(&self) -> Option<Instant> {
        match self.state {
            State::Bound(_) => None,
            _ => Some(self.next_tx),
        }
    }

    /// The DHCP payload to broadcast now, if one is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if now < self.next_tx {
            return None;
        }
        let secs = u16::try_from(now.saturating_duration_since(self.started).as_secs())
            .unwrap_or(u16::MAX);
        let packet = match &mut self.state {
            State::Bound(_) => return None,
            State::Selecting => wire::Request {
                kind: MessageType::Discover,
                mac: self.mac,
                xid: self.xid,
                secs,
                requested: None,
                server: None,
            }
            .emit(),
            State::Requesting {
                offered,
                server,
                tries,
            } => {
                if *tries >= self.retry.request_tries {
                    // No answer to our REQUESTs: start over with a new DISCOVER.
                    self.state = State::Selecting;
                    self.interval = self.retry.initial;
                    return self.poll_transmit(now);
                }
                *tries = tries.saturating_add(1);
                wire::Request {
                    kind: MessageType::Request,
                    mac: self.mac,
                    xid: self.xid,
                    secs,
                    requested: Some(*offered),
                    server: Some(*server),
                }
                .emit()
            }
        };
        let requesting = matches!(self.state, State::Requesting { .. });
        self.count(usize::from(requesting));
        let wait = self.jittered(self.interval);
        self.next_tx = now.checked_add(wait).unwrap_or(now);
        self.interval = self.interval.saturating_mul(2).min(self.retry.max);
        Some(packet)
    }

    /// Feeds one received DHCP payload (the UDP payload from port 67).
    pub fn process(&mut self, payload: &[u8], now: Instant) -> Event {
        let Ok(r) = wire::parse(payload) else {
            return Event::None;
        };
        if r.op != 2 || r.xid != self.xid || r.chaddr != self.mac {
            return Event::None;
        }
        match (&self.state, r.message_type()) {
            (State::Selecting, Some(MessageType::Offer)) => {
                let (Some(offered), Some(server)) = (r.yiaddr, r.server_id) else {
                    return Event::None;
                };
                self.state = State::Requesting {
                    offered,
                    server,
                    tries: 0,
                };
                self.next_tx = now;
                self.interval = self.retry.initial;
                self.count(2);
                Event::Offered(offered)
            }
            (
                State::Requesting {
                    offered, server, ..
                },
                Some(MessageType::Ack),
            ) => {
                if r.server_id.is_some_and(|s| s != *server) {
                    return Event::None;
                }
                let address = r.yiaddr.unwrap_or(*offered);
                let lease = Lease {
                    address,
                    prefix: r.subnet_mask.and_then(prefix_of).unwrap_or(32),
                    server: *server,
                    routers: r.routers,
                    dns: r.dns,
                    domain: r.domain,
                    hostname: r.hostname,
                    mtu: r.mtu.filter(|m| *m >= 68),
                    lease_secs: r.lease_time,
                    classless_routes: r.classless_routes,
                    option_245: r.option_245,
                    cuts: r.cuts,
                };
                self.state = State::Bound(lease.clone());
                Event::Bound(lease)
            }
            (State::Requesting { server, .. }, Some(MessageType::Nak)) => {
                if r.server_id.is_some_and(|s| s != *server) {
                    return Event::None;
                }
                self.state = State::Selecting;
                self.next_tx = now;
                self.interval = self.retry.initial;
                self.count(3);
                Event::Nak
            }
            _ => Event::None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn server_msg(kind: MessageType, xid: u32, opts: &[u8]) -> Vec<u8> {
        let mut p = wire::Request {
            kind: MessageType::Discover,
            mac: MAC,
            xid,
            secs: 0,
            requested: None,
            server: None,
        }
        .emit();
        p.truncate(240);
        p[0] = 2;
        p[16..20].copy_from_slice(&[10, 0, 0, 5]);
        p.extend_from_slice(&[53, 1, u8::from(kind), 54, 4, 10, 0, 0, 1]);
        p.extend_from_slice(opts);
        p.push(255);
        p
    }

    fn no_jitter() -> RetryConfig {
        RetryConfig {
            jitter: Duration::ZERO,
            ..RetryConfig::default()
        }
    }

    #[test]
    fn discover_offer_request_ack() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, 42, t0, no_jitter());
        let d = c.poll_transmit(t0).unwrap();
        assert_eq!(
            wire::parse(&d).unwrap().message_type(),
            Some(MessageType::Discover)
        );
        assert!(c.poll_transmit(t0).is_none(), "nothing due yet");
        assert_eq!(c.poll_at(), Some(t0 + Duration::from_secs(1)));
        // Someone else's offer, then ours.
        assert_eq!(
            c.process(&server_msg(MessageType::Offer, c.xid() ^ 1, &[]), t0),
            Event::None
        );
        let offer = server_msg(MessageType::Offer, c.xid(), &[]);
        assert_eq!(
            c.process(&offer, t0),
            Event::Offered(Ipv4Addr::new(10, 0, 0, 5))
        );
        let req = wire::parse(&c.poll_transmit(t0).unwrap()).unwrap();
        assert_eq!(req.message_type(), Some(MessageType::Request));
        let ack = server_msg(
            MessageType::Ack,
            c.xid(),
            &[1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 0, 1],
        );
        let Event::Bound(lease) = c.process(&ack, t0) else {
            panic!("not bound")
        };
        assert_eq!(
            (lease.address, lease.prefix),
            (Ipv4Addr::new(10, 0, 0, 5), 24)
        );
        assert_eq!(
            lease.routes(),
            [(Ipv4Addr::UNSPECIFIED, 0, Some(Ipv4Addr::new(10, 0, 0, 1)))]
        );
        assert_eq!(c.poll_at(), None);
        assert!(c.lease().is_some());
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, 7, t0, no_jitter());
        let mut now = t0;
        let mut gaps = Vec::new();
        for _ in 0..8 {
            assert!(c.poll_transmit(now).is_some());
            let next = c.poll_at().unwrap();
            gaps.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(gaps, [1, 2, 4, 8, 16, 16, 16, 16]);
        let mut c = Client::new(MAC, 9, t0, RetryConfig::default());
        let mut now = t0;
        for _ in 0..6 {
            c.poll_transmit(now);
            let next = c.poll_at().unwrap();
            let gap = next - now;
            assert!(gap >= Duration::from_millis(750), "{gap:?}");
            now = next;
        }
    }

    #[test]
    fn nak_and_silent_server_start_over() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, 1, t0, no_jitter());
        c.poll_transmit(t0);
        c.process(&server_msg(MessageType::Offer, c.xid(), &[]), t0);
        c.poll_transmit(t0);
        assert_eq!(
            c.process(&server_msg(MessageType::Nak, c.xid(), &[]), t0),
            Event::Nak
        );
        let d = wire::parse(&c.poll_transmit(t0).unwrap()).unwrap();
        assert_eq!(d.message_type(), Some(MessageType::Discover));
        // Offer, then REQUESTs nobody answers: back to DISCOVER after request_tries.
        c.process(&server_msg(MessageType::Offer, c.xid(), &[]), t0);
        let mut now = t0;
        let mut kinds = Vec::new();
        for _ in 0..6 {
            let p = c.poll_transmit(now).unwrap();
            kinds.push(wire::parse(&p).unwrap().message_type().unwrap());
            now = c.poll_at().unwrap();
        }
        assert_eq!(kinds[..4], [MessageType::Request; 4]);
        assert_eq!(kinds[4], MessageType::Discover);
    }

    #[test]
    fn describe_says_where_it_stands() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, 1, t0, no_jitter());
        assert_eq!(
            c.describe(),
            "DHCPv4 selecting: 0 DISCOVER, no OFFER",
            "case new"
        );
        c.poll_transmit(t0);
        let t1 = c.poll_at().unwrap();
        c.poll_transmit(t1);
        assert_eq!(
            c.describe(),
            "DHCPv4 selecting: 2 DISCOVER, no OFFER",
            "case two sent"
        );
        c.process(&server_msg(MessageType::Offer, c.xid(), &[]), t1);
        c.poll_transmit(t1);
        assert_eq!(
            c.describe(),
            "DHCPv4 requesting: 2 DISCOVER, 1 OFFER, 1 REQUEST",
            "case requesting"
        );
        c.process(&server_msg(MessageType::Nak, c.xid(), &[]), t1);
        assert_eq!(
            c.describe(),
            "DHCPv4 selecting: 2 DISCOVER, 1 OFFER, 1 REQUEST, 1 NAK",
            "case after a NAK"
        );
    }

    #[test]
    fn classless_routes_win_over_routers() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, 3, t0, no_jitter());
        c.poll_transmit(t0);
        c.process(&server_msg(MessageType::Offer, c.xid(), &[]), t0);
        c.poll_transmit(t0);
        let ack = server_msg(
            MessageType::Ack,
            c.xid(),
            &[
                3, 4, 10, 0, 0, 9, 121, 15, 32, 169, 254, 169, 254, 10, 0, 0, 1, 8, 10, 0, 0, 0, 0,
            ],
        );
        let Event::Bound(l) = c.process(&ack, t0) else {
            panic!()
        };
        assert_eq!(l.prefix, 32, "no mask: /32");
        assert_eq!(
            l.routes(),
            [
                (
                    Ipv4Addr::new(169, 254, 169, 254),
                    32,
                    Some(Ipv4Addr::new(10, 0, 0, 1))
                ),
                (Ipv4Addr::new(10, 0, 0, 0), 8, None)
            ]
        );
    }

    #[test]
    fn masks() {
        for (m, want) in [
            ([255, 255, 255, 0], Some(24)),
            ([0, 0, 0, 0], Some(0)),
            ([255, 255, 255, 255], Some(32)),
            ([255, 0, 255, 0], None),
        ] {
            assert_eq!(prefix_of(Ipv4Addr::from(m)), want, "case {m:?}");
        }
    }
}
