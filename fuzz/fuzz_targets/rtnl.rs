#![no_main]
//! Netlink datagrams as the kernel hands them to the network stage (`net::rtnl`): the
//! message walk, and each message read as an IPv6 address (`RTM_NEWADDR`), a link's IPv6
//! flags (`RTM_NEWLINK`), a route (`RTM_NEWROUTE`) and a dump's end; `parse_ack` for the
//! sequence number in the first four bytes. Checks: the walk always moves forward (no
//! zero-length loop), a parsed address's prefix is at most 128, and an address is never
//! usable once DAD failed.
use libfuzzer_sys::fuzz_target;
use preroot::net::rtnl;

fuzz_target!(|data: &[u8]| {
    let seq = data
        .get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    let _ = rtnl::parse_ack(data, seq);
    let mut off = 0;
    while let Some((m, next)) = rtnl::next_message(data, off) {
        assert!(next > off, "the walk must move forward");
        off = next;
        let _ = rtnl::dump_end(&m, seq);
        if let Some(a) = rtnl::parse_addr6(m.body) {
            assert!(a.prefix <= 128);
            if a.flags & rtnl::IFA_F_DADFAILED != 0 {
                assert!(!a.usable(true) && !a.usable(false));
            }
        }
        let _ = rtnl::parse_link6(m.body);
        let _ = rtnl::parse_route(m.body);
        let mut at = 0;
        while let Some((_, _, next)) = rtnl::next_attr(m.body, at) {
            assert!(next > at);
            at = next;
        }
    }
});
