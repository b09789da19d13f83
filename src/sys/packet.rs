//! `AF_PACKET` sockets for DHCP before the link has an address, and `poll(2)` over several
//! sockets at once (the NIC race).
//!
//! The socket is `SOCK_DGRAM` with protocol `ETH_P_IP` bound to one interface: the kernel
//! strips and adds the Ethernet header, we build and parse IPv4+UDP (`dhcp/wire.rs`). With
//! `PACKET_AUXDATA` on, every received packet carries a `tpacket_auxdata` control message
//! whose `tp_status` has `TP_STATUS_CSUMNOTREADY` when the UDP checksum was left to offload
//! that never happened (veth, virtio-net): such packets are valid and must not be dropped for
//! their checksum. `TP_STATUS_CSUM_VALID` (already verified) is trusted the same way.
//! Kernel ABI: include/uapi/linux/if_packet.h (v6.1).

use super::{set_int, socklen};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

const ETH_P_IP: u16 = 0x0800;
const SOL_PACKET: libc::c_int = 263;
const PACKET_AUXDATA: libc::c_int = 8;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const TP_STATUS_CSUM_VALID: u32 = 1 << 7;

/// `struct tpacket_auxdata` (include/uapi/linux/if_packet.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct TpacketAuxdata {
    /// (out) TP_STATUS_* bits.
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}
const _: () = assert!(std::mem::size_of::<TpacketAuxdata>() == 20);

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn sockaddr_ll(ifindex: u32, broadcast: bool) -> io::Result<libc::sockaddr_ll> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = u16::try_from(libc::AF_PACKET).unwrap_or(17);
    sa.sll_protocol = ETH_P_IP.to_be();
    sa.sll_ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
    if broadcast {
        sa.sll_halen = 6;
        sa.sll_addr = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0];
    }
    Ok(sa)
}

/// A packet socket on one interface, non-blocking.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl PacketSocket {
    pub fn open(ifindex: u32) -> io::Result<PacketSocket> {
        // Protocol 0 here and ETH_P_IP in bind(): the socket then receives nothing until it is
        // bound to its interface, and bind() need not unhook a live protocol handler (which
        // costs an RCU grace period per socket; eight NICs felt it).
        // SAFETY: socket(2) takes no pointers; the result is checked before use.
        let raw = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        })?;
        // SAFETY: `raw` is a fresh descriptor we own; nothing else closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        check(set_int(&fd, SOL_PACKET, PACKET_AUXDATA, 1))?;
        let sa = sockaddr_ll(ifindex, false)?;
        // SAFETY: `sa` is a valid sockaddr_ll on the stack and its exact size is passed.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&sa).cast(),
                socklen::<libc::sockaddr_ll>(),
            )
        })?;
        Ok(PacketSocket { fd, ifindex })
    }

    /// Sends one IPv4 packet to the Ethernet broadcast address.
    pub fn send_broadcast(&self, packet: &[u8]) -> io::Result<()> {
        let sa = sockaddr_ll(self.ifindex, true)?;
        // SAFETY: the buffer and the address are live for the call and their sizes are exact.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                std::ptr::from_ref(&sa).cast(),
                socklen::<libc::sockaddr_ll>(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    #[allow(clippy::useless_conversion)] // the msghdr field types differ between libcs
    /// Receives one packet into `buf`: `Ok(None)` when nothing is queued, else its length and
    /// whether its checksum was left unfinished (`TP_STATUS_CSUMNOTREADY`).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, bool)>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // Room for one tpacket_auxdata control message, u64-aligned.
        let mut control = [0u64; 8];
        // SAFETY: msghdr is plain old data; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        // usize on glibc, socklen_t on musl.
        msg.msg_controllen = std::mem::size_of_val(&control).try_into().unwrap_or(0);
        // SAFETY: `msg` points to `iov` (into `buf`) and `control`, all live and sized.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let len = usize::try_from(n).unwrap_or(0);
        let mut unfinished = false;
        // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR stay within msg_control.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: non-null cmsg pointers from CMSG_FIRSTHDR/NXTHDR point into `control`.
            let hdr = unsafe { &*cmsg };
            let want = usize::try_from(
                // SAFETY: CMSG_LEN is a pure size computation.
                unsafe {
                    libc::CMSG_LEN(
                        u32::try_from(std::mem::size_of::<TpacketAuxdata>()).unwrap_or(0),
                    )
                },
            )
            .unwrap_or(usize::MAX);
            if hdr.cmsg_level == SOL_PACKET
                && hdr.cmsg_type == PACKET_AUXDATA
                && usize::try_from(hdr.cmsg_len).unwrap_or(0) >= want
            {
                // SAFETY: the kernel wrote a full tpacket_auxdata (length checked above);
                // read_unaligned copes with any alignment.
                let aux: TpacketAuxdata =
                    unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
                // CSUMNOTREADY: the checksum field holds only the pseudo-header sum. CSUM_VALID:
                // the kernel (or the NIC) verified it, and the field may be unfinished too
                // (veth under load hands CHECKSUM_PARTIAL on as CHECKSUM_UNNECESSARY).
                unfinished = aux.tp_status & (TP_STATUS_CSUMNOTREADY | TP_STATUS_CSUM_VALID) != 0;
            }
            // SAFETY: as above; returns null past the last header.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
        Ok(Some((len.min(buf.len()), unfinished)))
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Waits until one of `fds` is readable or `timeout` passes; which ones are readable.
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<Vec<bool>> {
    let want: Vec<(BorrowedFd<'_>, bool)> = fds.iter().map(|fd| (*fd, false)).collect();
    poll(&want, timeout)
}

/// Waits until one of `fds` is ready or `timeout` passes: readable, or writable for those
/// paired with `true` (a TCP connect that ended, either way). An error or hang-up counts as
/// ready, so the caller reads what happened. Which ones are ready, in order.
pub fn poll(fds: &[(BorrowedFd<'_>, bool)], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, write)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: if *write { libc::POLLOUT } else { libc::POLLIN },
            revents: 0,
        })
        .collect();
    let ms = libc::c_int::try_from(timeout.as_millis().max(u128::from(!timeout.is_zero())))
        .unwrap_or(libc::c_int::MAX);
    let nfds = libc::nfds_t::try_from(pfds.len()).unwrap_or(0);
    // SAFETY: `pfds` is a live array of exactly `nfds` pollfd structs.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), nfds, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds
        .iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0)
        .collect())
}
