#![no_main]
//! DHCPv4 as the packet socket receives it: the IPv4/UDP framing, then the DHCP message
//! and its options (overload, classless routes). The first byte says whether the UDP
//! checksum is left unfinished (`TP_STATUS_CSUMNOTREADY`); the rest is the IP packet, and is
//! also fed to the message parser and the option 121 decoder directly. Round trip: any
//! payload framed by `udp_ipv4` parses back to the same ports, addresses and payload.
use libfuzzer_sys::fuzz_target;
use preroot::dhcp::wire;
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, packet)) = data.split_first() else {
        return;
    };
    if let Ok(d) = wire::parse_udp_ipv4(packet, flags & 1 != 0) {
        let _ = wire::parse(d.payload);
    }
    if let Ok(repr) = wire::parse(packet) {
        let _ = repr.message_type();
    }
    let _ = wire::parse_classless_routes(packet);

    let (src, dst) = (Ipv4Addr::new(10, 0, 2, 2), Ipv4Addr::BROADCAST);
    if let Some(framed) = wire::udp_ipv4(src, dst, 67, 68, packet) {
        let d = wire::parse_udp_ipv4(&framed, false).expect("our own framing parses");
        assert_eq!((d.src, d.dst, d.sport, d.dport), (src, dst, 67, 68));
        assert_eq!(d.payload, packet);
    }
});
