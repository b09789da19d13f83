//! DHCPv4: `wire.rs` (pure packet codec), `client.rs` (sans-I/O state machine), `socket.rs`
//! (the packet socket that carries them before the link has an address).

pub mod client;
pub mod socket;
pub mod wire;
