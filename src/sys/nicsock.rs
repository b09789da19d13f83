//! Sockets bound to one NIC (`SO_BINDTODEVICE`), for the network stage's race, where every
//! candidate NIC must be tried on its own even when several have routes to the same place:
//!
//! - [`udp6_bound`]: UDP/IPv6 `[::]:port`, bound to the NIC *before* `bind`, so each NIC of the
//!   race can hold port 546 at once (the kernel's port check lets sockets bound to different
//!   devices share a port), and unicast replies to the NIC's link-local address reach it.
//!   Multicast goes out through the same NIC (`IPV6_MULTICAST_IF`), IPv6 only
//!   (`IPV6_V6ONLY`), non-blocking. For the DHCPv6 client (`dhcp6/socket.rs`).
//! - [`send_router_solicitation`]: one ICMPv6 Router Solicitation (RFC 4861 section 4.1: type
//!   133, no options) to `ff02::2` out of the NIC, hop limit 255, from a raw socket closed at
//!   once. The kernel computes ICMPv6 checksums on raw ICMPv6 sockets (`raw(7)`), and it
//!   processes the router's answer itself (`accept_ra`): nothing here reads an RA.
//! - [`tcp_connect_start`]: a non-blocking TCP connect (the metadata-service probe), bound to
//!   the NIC when asked, so routes through other NICs are not used; the caller polls for
//!   writability and reads the outcome with `TcpStream::take_error`.
//!
//! Only the creation is here (socket, setsockopt, bind/connect, each with a SAFETY comment);
//! the results are `std::net` types where one exists, so using them needs no `unsafe`. Errnos
//! are mapped to what they mean here. Kernel ABI: `include/uapi/linux/in6.h`, `socket(7)`,
//! `ipv6(7)`, `raw(7)`, `tcp(7)`.

use super::{set_int, socklen};
use std::io;
use std::net::{Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `IFNAMSIZ` (`include/uapi/linux/if.h`): names are at most 15 bytes plus the NUL.
const IFNAMSIZ: usize = 16;
/// ICMPv6 type of a Router Solicitation (RFC 4861 section 4.1).
const ND_ROUTER_SOLICIT: u8 = 133;
/// All-routers, link-local scope.
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// The errno of the last call, said in this socket's terms.
fn os_error(step: &str, name: &str, port: u16) -> io::Error {
    let e = io::Error::last_os_error();
    let meaning = match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => {
            "not permitted (needs root: CAP_NET_RAW for SO_BINDTODEVICE and raw sockets, CAP_NET_BIND_SERVICE for a port below 1024)".to_string()
        }
        Some(libc::EADDRINUSE) => {
            format!("port {port} on {name} is taken (another DHCPv6 client running?)")
        }
        Some(libc::ENODEV) => format!("no interface {name}"),
        Some(libc::EAFNOSUPPORT) => "IPv6 is disabled in this kernel (ipv6.disable=1?)".into(),
        Some(libc::EADDRNOTAVAIL) => format!(
            "no usable source address on {name} yet (duplicate address detection not finished?)"
        ),
        _ => return io::Error::new(e.kind(), format!("{step} on {name}: {e}")),
    };
    io::Error::new(e.kind(), format!("{step} on {name}: {meaning} ({e})"))
}

fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name.len() >= IFNAMSIZ || name.contains(['\0', '/']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not an interface name"),
        ));
    }
    Ok(())
}

/// A new non-blocking, close-on-exec socket.
fn socket(family: libc::c_int, kind: libc::c_int, proto: libc::c_int) -> Option<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            family,
            kind | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            proto,
        )
    };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a fresh descriptor we own; nothing else closes it.
    Some(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `SO_BINDTODEVICE` to `name` (checked by [`check_name`]).
fn bind_to_device(fd: &OwnedFd, name: &str) -> libc::c_int {
    let mut ifname = [0u8; IFNAMSIZ];
    for (slot, b) in ifname.iter_mut().zip(name.bytes()) {
        *slot = b;
    }
    // SAFETY: the option value points to a live NUL-terminated array of IFNAMSIZ bytes
    // (names are shorter, checked by the caller), and its exact size is passed.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            ifname.as_ptr().cast(),
            socklen::<[u8; IFNAMSIZ]>(),
        )
    }
}

fn index(ifindex: u32) -> io::Result<libc::c_int> {
    libc::c_int::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))
}

fn sockaddr_in6(ip: Ipv6Addr, port: u16, scope: u32) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is the unspecified address `::`.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::sa_family_t::try_from(libc::AF_INET6).unwrap_or(10);
    sa.sin6_port = port.to_be();
    sa.sin6_addr.s6_addr = ip.octets();
    sa.sin6_scope_id = scope;
    sa
}

/// The index of the interface `name` (`if_nametoindex(3)`): an RFC 6874 zone in a URL.
pub fn ifindex(name: &str) -> io::Result<u32> {
    check_name(name)?;
    let mut c = [0u8; IFNAMSIZ];
    for (slot, b) in c.iter_mut().zip(name.bytes()) {
        *slot = b;
    }
    // SAFETY: `c` is a live NUL-terminated array (names are checked to be shorter).
    let index = unsafe { libc::if_nametoindex(c.as_ptr().cast()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

/// A non-blocking UDP socket on `[::]:port`, bound to the interface `name` (index
/// `ifindex`), sending multicast through it.
pub fn udp6_bound(name: &str, ifindex: u32, port: u16) -> io::Result<UdpSocket> {
    check_name(name)?;
    let index = index(ifindex)?;
    let fd = socket(libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDP)
        .ok_or_else(|| os_error("socket", name, port))?;
    if set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1) < 0 {
        return Err(os_error("IPV6_V6ONLY", name, port));
    }
    if bind_to_device(&fd, name) < 0 {
        return Err(os_error("SO_BINDTODEVICE", name, port));
    }
    if set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, index) < 0 {
        return Err(os_error("IPV6_MULTICAST_IF", name, port));
    }
    let sa = sockaddr_in6(Ipv6Addr::UNSPECIFIED, port, 0);
    // SAFETY: `sa` is a valid sockaddr_in6 on the stack and its exact size is passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&sa).cast(),
            socklen::<libc::sockaddr_in6>(),
        )
    };
    if r < 0 {
        return Err(os_error("bind", name, port));
    }
    Ok(UdpSocket::from(fd))
}

/// Sends one Router Solicitation out of `name` (index `ifindex`) to all routers. Fails with
/// "no usable source address" while the NIC's link-local address is tentative (unless
/// optimistic): the kernel then sends its own once duplicate address detection is done.
pub fn send_router_solicitation(name: &str, ifindex: u32) -> io::Result<()> {
    check_name(name)?;
    let index = index(ifindex)?;
    let fd = socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6)
        .ok_or_else(|| os_error("raw ICMPv6 socket", name, 0))?;
    if bind_to_device(&fd, name) < 0 {
        return Err(os_error("SO_BINDTODEVICE", name, 0));
    }
    // RFC 4861 section 6.1.2: a router drops a solicitation whose hop limit is not 255.
    if set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255) < 0 {
        return Err(os_error("IPV6_MULTICAST_HOPS", name, 0));
    }
    if set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, index) < 0 {
        return Err(os_error("IPV6_MULTICAST_IF", name, 0));
    }
    // Type, code, checksum (the kernel's), 4 reserved bytes; no source link-layer address
    // option: RFC 4429 section 3.3 forbids it from an optimistic address.
    let rs = [ND_ROUTER_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
    let sa = sockaddr_in6(ALL_ROUTERS, 0, ifindex);
    // SAFETY: the buffer and the address are live for the call and their sizes are exact.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            rs.as_ptr().cast(),
            rs.len(),
            0,
            std::ptr::from_ref(&sa).cast(),
            socklen::<libc::sockaddr_in6>(),
        )
    };
    if n < 0 {
        return Err(os_error("router solicitation", name, 0));
    }
    Ok(())
}

/// Starts a non-blocking TCP connect to `to`, bound to the NIC `device` when given. `Ok`
/// means under way (or already done); the stream becomes writable when the connect ends, and
/// `TcpStream::take_error` then tells how. Errors that are known at once (no route:
/// `ENETUNREACH`) come back here.
pub fn tcp_connect_start(to: SocketAddr, device: Option<&str>) -> io::Result<TcpStream> {
    let family = match to {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let label = device.unwrap_or("any NIC");
    let fd = socket(family, libc::SOCK_STREAM, libc::IPPROTO_TCP)
        .ok_or_else(|| os_error("TCP socket", label, to.port()))?;
    if let Some(name) = device {
        check_name(name)?;
        if bind_to_device(&fd, name) < 0 {
            return Err(os_error("SO_BINDTODEVICE", name, to.port()));
        }
    }
    let r = match to {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::sa_family_t::try_from(libc::AF_INET).unwrap_or(2);
            sa.sin_port = v4.port().to_be();
            sa.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            // SAFETY: `sa` is a valid sockaddr_in on the stack and its exact size is passed.
            unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    std::ptr::from_ref(&sa).cast(),
                    socklen::<libc::sockaddr_in>(),
                )
            }
        }
        SocketAddr::V6(v6) => {
            let sa = sockaddr_in6(*v6.ip(), v6.port(), v6.scope_id());
            // SAFETY: `sa` is a valid sockaddr_in6 on the stack and its exact size is passed.
            unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    std::ptr::from_ref(&sa).cast(),
                    socklen::<libc::sockaddr_in6>(),
                )
            }
        }
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(TcpStream::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_socket() {
        for (case, name) in [
            ("empty", ""),
            ("16 bytes, one past IFNAMSIZ - 1", "sixteen-chars-xx"),
            ("slash", "eth/0"),
            ("nul", "eth\0"),
        ] {
            let kind = |r: io::Result<()>| r.err().map(|e| e.kind());
            assert_eq!(
                kind(udp6_bound(name, 1, 546).map(drop)),
                Some(io::ErrorKind::InvalidInput),
                "case {case}: UDP"
            );
            assert_eq!(
                kind(send_router_solicitation(name, 1)),
                Some(io::ErrorKind::InvalidInput),
                "case {case}: RS"
            );
        }
    }

    #[test]
    fn interface_indexes() {
        assert_eq!(ifindex("lo").ok(), Some(1), "case lo");
        assert!(ifindex("no-such-nic").is_err(), "case absent");
        assert!(ifindex("").is_err(), "case empty");
    }

    #[test]
    fn connect_to_loopback_completes() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = tcp_connect_start(l.local_addr().unwrap(), None).unwrap();
        let fd = std::os::fd::AsFd::as_fd(&s);
        let ready =
            crate::sys::packet::poll(&[(fd, true)], std::time::Duration::from_secs(2)).unwrap();
        assert_eq!(ready, [true]);
        assert!(s.take_error().unwrap().is_none());
        assert!(s.peer_addr().is_ok());
    }
}
