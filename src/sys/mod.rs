//! Every `unsafe` block of the crate lives under `sys/`, each with a `// SAFETY:` comment
//! (enforced by `clippy::undocumented_unsafe_blocks`). Each file wraps one kernel interface
//! in a safe API taking and returning owned or borrowed descriptors.
//!
//! - `packet.rs`: `AF_PACKET` sockets with `PACKET_AUXDATA` (DHCP before an address), `poll`.
//! - `netlink.rs`: the `NETLINK_ROUTE` socket (links, addresses, routes).
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod netlink;
pub mod packet;
