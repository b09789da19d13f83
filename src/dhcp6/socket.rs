//! DHCPv6 over UDP on one NIC: sends to `[ff02::1:2%NIC]:547` (All_DHCP_Relay_Agents_and_
//! Servers) from port 546, and hands back the payloads of datagrams from port 547. The
//! socket (`sys/nicsock.rs`) is `[::]:546` bound to the NIC, non-blocking, for the caller's
//! `poll` (it is [`AsFd`], like `dhcp::socket::DhcpSocket`). Never parses (the codec does)
//! and never configures the NIC (addresses, routes and sysctls are the network stage's).
//!
//! The kernel chooses the source address: the NIC's link-local one, which must have
//! finished duplicate address detection. Until it has, sending fails with
//! `EADDRNOTAVAIL` ([`Dhcp6Socket::send`] says so): wait for DAD before starting the client
//! (1.4-1.7 s after link-up on a veth, measured), or set `optimistic_dad=1` and
//! `use_optimistic=1` on the NIC (RFC 4429), with which the first SOLICIT leaves at once
//! (checked by hand in a namespace). The kernel checks the UDP checksum (offload
//! included), so unlike DHCPv4's packet socket nothing here looks at checksums. A datagram
//! longer than [`MAX_MESSAGE`] is cut and the codec refuses it. No panics: no indexing, and
//! every failure is an `io::Error` naming the NIC.

use super::wire::{ALL_SERVERS, CLIENT_PORT, SERVER_PORT};
use std::io;
use std::net::{SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};

/// Longest message read (servers send a few hundred bytes).
pub const MAX_MESSAGE: usize = 4096;

pub struct Dhcp6Socket {
    sock: UdpSocket,
    ifindex: u32,
    name: String,
}

impl Dhcp6Socket {
    /// Opens port 546 on the NIC `name` (index `ifindex`). Needs root.
    pub fn open(name: &str, ifindex: u32) -> io::Result<Dhcp6Socket> {
        Ok(Dhcp6Socket {
            sock: crate::sys::nicsock::udp6_bound(name, ifindex, CLIENT_PORT)?,
            ifindex,
            name: name.to_string(),
        })
    }

    /// Sends one message to all DHCPv6 servers on the link.
    pub fn send(&self, payload: &[u8]) -> io::Result<()> {
        let to = SocketAddrV6::new(ALL_SERVERS, SERVER_PORT, 0, self.ifindex);
        match self.sock.send_to(payload, to) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Err(io::Error::new(
                e.kind(),
                format!(
                    "{}: no usable link-local source address yet (duplicate address detection not finished?): {e}",
                    self.name
                ),
            )),
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: send: {e}", self.name))),
        }
    }

    /// Every DHCPv6 payload queued now (non-blocking), with its sender; datagrams from a
    /// port other than 547 are dropped.
    pub fn drain(&self) -> io::Result<Vec<(Vec<u8>, SocketAddrV6)>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; MAX_MESSAGE];
        // Bounded: a flood cannot keep us here.
        for _ in 0..64 {
            let (n, from) = match self.sock.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e),
            };
            match from {
                SocketAddr::V6(from) if from.port() == SERVER_PORT => {
                    out.push((buf.get(..n).unwrap_or_default().to_vec(), from));
                }
                other => log::debug!("dhcp6: {}: dropped a datagram from {other}", self.name),
            }
        }
        Ok(out)
    }
}

impl AsFd for Dhcp6Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
