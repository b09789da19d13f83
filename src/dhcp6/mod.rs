//! DHCPv6 (RFC 8415) for the network stage: `wire.rs` (pure message codec), `client.rs`
//! (sans-I/O client: stateful SOLICIT/ADVERTISE/REQUEST/REPLY with Rapid Commit, stateless
//! Information-Request), `socket.rs` (the UDP socket on port 546 of one NIC that carries
//! them). Same split as `dhcp/` for DHCPv4, so one poll loop can drive both: see
//! `tests/dhcp6_netns.rs` (`race`) for that loop over several NICs.

pub mod client;
pub mod socket;
pub mod wire;
