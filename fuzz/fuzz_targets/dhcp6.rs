#![no_main]
//! DHCPv6 messages as the socket hands them over (the UDP payload): the header, the raw
//! option walk, `Packet::new_checked`, `Repr::parse` with its cuts and DUIDs shown as the
//! logs show them, and the name and DUID decoders on the raw bytes. Round trip: whatever
//! parses, emitted again (without its cuts), parses back to the same `Repr`, and emitting
//! it never fails (every value a parse keeps fits the wire again).
use libfuzzer_sys::fuzz_target;
use preroot::dhcp6::wire::{self, Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let _ = wire::header(data);
    let _ = wire::check_name(data);
    let _ = wire::duid_kind(data);
    for o in wire::Options::new(data, 0).take(4096) {
        let _ = o;
    }
    let checked = wire::check(data);
    let Ok(packet) = Packet::new_checked(data) else {
        assert!(checked.is_err(), "check and new_checked disagree");
        return;
    };
    let _ = (packet.msg_type(), packet.transaction_id(), packet.option(1));
    let Ok(repr) = Repr::parse(&packet) else {
        return;
    };
    for cut in &repr.cuts {
        let _ = cut.to_string();
    }
    for duid in [&repr.client_id, &repr.server_id].into_iter().flatten() {
        let _ = duid.to_string();
    }
    let mut kept = repr.clone();
    kept.cuts.clear();
    let bytes = kept.to_bytes().expect("a parsed message emits again");
    assert_eq!(Some(bytes.len()), kept.buffer_len().ok());
    let again = Packet::new_checked(&bytes[..]).expect("our own framing checks");
    let again = Repr::parse(&again).expect("our own message parses");
    assert_eq!(again, kept, "parse -> emit -> parse changed the message");
});
