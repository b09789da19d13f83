#![no_main]
//! The DHCPv4 client state machine (sans I/O) fed a conversation: server payloads split at
//! `\n--8<--\n`, each starting with a byte of time passing (in 100 ms steps); the client sends
//! whatever is due before each one. The transaction id and hardware address of each payload
//! are set to the client's, so the fuzzer explores OFFER/ACK/NAK handling rather than the
//! filter in front of it. Once bound, the lease's routes are computed as the link stage does.
use libfuzzer_sys::fuzz_target;
use preroot::dhcp::client::{Client, Event, RetryConfig};
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut client = Client::new(MAC, 0x5eed, now, RetryConfig::default());
    for msg in common::documents(data, 16) {
        let Some((&step, payload)) = msg.split_first() else {
            continue;
        };
        now += Duration::from_millis(100 * u64::from(step));
        while client.poll_transmit(now).is_some() {}
        let mut payload = payload.to_vec();
        if let Some(xid) = payload.get_mut(4..8) {
            xid.copy_from_slice(&client.xid().to_be_bytes());
        }
        if let Some(chaddr) = payload.get_mut(28..34) {
            chaddr.copy_from_slice(&MAC);
        }
        if let Event::Bound(lease) = client.process(&payload, now) {
            assert_eq!(client.lease(), Some(&lease));
            assert_eq!(client.poll_at(), None, "bound, yet wants to send");
            let _ = lease.routes();
        }
    }
});
