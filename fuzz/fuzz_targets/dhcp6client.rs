#![no_main]
//! The DHCPv6 client state machine (sans I/O) fed a conversation: a first byte choosing
//! the mode (stateful with or without Rapid Commit, stateless), then server payloads split
//! at `\n--8<--\n`, each starting with a byte of time passing (in 100 ms steps); the client
//! sends whatever is due before each one, under a 30 s deadline. The transaction id of each
//! payload is set to the client's, so the fuzzer explores ADVERTISE/REPLY handling rather
//! than the filter in front of it (the seeds, real dnsmasq answers, carry the client's
//! DUID-LL, MAC 02:00:00:00:00:01). Checks: what the client sends parses and carries its
//! DUID; no wait lies past the deadline; a bound client holds its lease, sends nothing
//! more, and its lease has usable addresses unless stateless.
use libfuzzer_sys::fuzz_target;
use preroot::dhcp6::client::{Client, Event, Mode, RetryConfig};
use preroot::dhcp6::wire::{Packet, Repr};
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mode = match mode % 3 {
        0 => Mode::Stateful { rapid_commit: true },
        1 => Mode::Stateful { rapid_commit: false },
        _ => Mode::Stateless,
    };
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(30);
    let mut client = Client::new(MAC, mode, 0x5eed, t0, RetryConfig::default()).with_deadline(end);
    let mut now = t0;
    for msg in common::documents(rest, 16) {
        let Some((&step, payload)) = msg.split_first() else {
            continue;
        };
        now += Duration::from_millis(100 * u64::from(step));
        for _ in 0..4 {
            if let Some(at) = client.poll_at() {
                assert!(at <= end, "a wait past the deadline");
            }
            let Some(sent) = client.poll_transmit(now) else {
                break;
            };
            let r = Repr::parse(&Packet::new_checked(&sent[..]).expect("we send framed messages"))
                .expect("we send parseable messages");
            assert_eq!(r.client_id.as_ref(), Some(client.duid()));
            assert_eq!(r.transaction_id, client.xid());
        }
        let mut payload = payload.to_vec();
        if let Some(xid) = payload.get_mut(1..4) {
            xid.copy_from_slice(&client.xid().to_be_bytes()[1..]);
        }
        if let Event::Bound(lease) = client.process(&payload, now) {
            assert_eq!(client.lease(), Some(&lease));
            assert_eq!(client.poll_at(), None, "bound, yet wants to send");
            assert!(client.poll_transmit(now + Duration::from_secs(100)).is_none());
            assert_eq!(lease.stateless, mode == Mode::Stateless);
            assert!(lease.stateless || !lease.addresses.is_empty());
            for a in &lease.addresses {
                assert!(a.valid > 0 && a.preferred <= a.valid, "unusable address kept");
            }
        }
        let _ = client.describe();
    }
});
