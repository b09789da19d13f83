//! DHCP over an `AF_PACKET` socket on one NIC: broadcasts from 0.0.0.0:68 to
//! 255.255.255.255:67, and hands back the DHCP payloads of UDP datagrams to port 68, with the
//! UDP checksum checked unless the kernel marks it unfinished (offload; see `sys/packet.rs`).

use super::wire::{self, CLIENT_PORT, SERVER_PORT};
use crate::sys::packet::PacketSocket;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd};

pub struct DhcpSocket {
    sock: PacketSocket,
}

impl DhcpSocket {
    pub fn open(ifindex: u32) -> io::Result<DhcpSocket> {
        Ok(DhcpSocket {
            sock: PacketSocket::open(ifindex)?,
        })
    }

    pub fn send(&self, dhcp: &[u8]) -> io::Result<()> {
        let packet = wire::udp_ipv4(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            CLIENT_PORT,
            SERVER_PORT,
            dhcp,
        )
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "DHCP message too large"))?;
        self.sock.send_broadcast(&packet)
    }

    /// Every DHCP payload queued now (non-blocking); other packets are dropped.
    pub fn drain(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        // Bounded: a flood cannot keep us here.
        for _ in 0..64 {
            let Some((n, unfinished)) = self.sock.recv(&mut buf)? else {
                break;
            };
            let d = match wire::parse_udp_ipv4(buf.get(..n).unwrap_or_default(), unfinished) {
                Ok(d) => d,
                Err(e) => {
                    log::debug!("dhcp: dropped a {n}-byte packet: {e}");
                    continue;
                }
            };
            if d.dport == CLIENT_PORT && d.sport == SERVER_PORT {
                out.push(d.payload.to_vec());
            }
        }
        Ok(out)
    }
}

impl AsFd for DhcpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
