//! A TCP connection from a source port of the caller's range, for Scaleway's metadata API,
//! which serves user data only to source ports below 1024 (so that only root can read it).
//! `std::net::TcpStream` cannot bind before connecting, so the socket is made here: socket,
//! `SO_REUSEADDR`, bind, a non-blocking connect waited for with `poll` under the timeout,
//! `SO_ERROR`, then back to blocking, handed over as a `TcpStream` (reads, writes and their
//! timeouts need no `unsafe`).
//!
//! Ports are tried from the top of the range down; a port that is taken (`EADDRINUSE` at
//! bind, `EADDRNOTAVAIL` at connect: that 4-tuple still in TIME_WAIT) moves on to the next,
//! as cloud-init's `SourceAddressAdapter` loop does. A bind refused for lack of privilege
//! ends the search at once with an error that says so. Kernel ABI: `socket(7)`, `ip(7)`,
//! `connect(2)` (`EINPROGRESS`), `include/uapi/linux/in.h`.

use super::{set_int, socklen};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// One try: a port that is taken (`Busy`), or an error that ends the search.
enum Attempt {
    Busy(io::Error),
    Fatal(io::Error),
}

fn last(step: &str, port: u16) -> Attempt {
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) | Some(libc::EADDRNOTAVAIL) => Attempt::Busy(e),
        Some(libc::EACCES) | Some(libc::EPERM) => Attempt::Fatal(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{step} to source port {port}: not permitted (a port below 1024 needs root: \
                 CAP_NET_BIND_SERVICE) ({e})"
            ),
        )),
        _ => Attempt::Fatal(io::Error::new(
            e.kind(),
            format!("{step} from source port {port}: {e}"),
        )),
    }
}

/// `addr` as a `sockaddr_storage` and its length.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::sa_family_t::try_from(libc::AF_INET).unwrap_or(2);
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            // SAFETY: sockaddr_storage is large enough and suitably aligned for any
            // sockaddr; the write covers exactly a sockaddr_in at its start.
            unsafe {
                std::ptr::from_mut(&mut ss)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            (ss, socklen::<libc::sockaddr_in>())
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::sa_family_t::try_from(libc::AF_INET6).unwrap_or(10);
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            // SAFETY: as above, for a sockaddr_in6.
            unsafe {
                std::ptr::from_mut(&mut ss)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            (ss, socklen::<libc::sockaddr_in6>())
        }
    }
}

fn try_port(remote: SocketAddr, port: u16, until: Instant) -> Result<TcpStream, Attempt> {
    let family = if remote.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket(2) takes no pointers; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if raw < 0 {
        return Err(last("socket", port));
    }
    // SAFETY: `raw` is a fresh descriptor we own; nothing else closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if set_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1) < 0 {
        return Err(last("SO_REUSEADDR", port));
    }
    let local = match remote {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], port)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], port)),
    };
    let (sa, len) = sockaddr(local);
    // SAFETY: `sa` is a live sockaddr of `len` bytes.
    if unsafe { libc::bind(fd.as_raw_fd(), std::ptr::from_ref(&sa).cast(), len) } < 0 {
        return Err(last("bind", port));
    }
    let (sa, len) = sockaddr(remote);
    // SAFETY: `sa` is a live sockaddr of `len` bytes.
    if unsafe { libc::connect(fd.as_raw_fd(), std::ptr::from_ref(&sa).cast(), len) } < 0 {
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(last("connect", port));
        }
        wait_connected(&fd, port, until)?;
    }
    let stream = TcpStream::from(fd);
    stream.set_nonblocking(false).map_err(Attempt::Fatal)?;
    Ok(stream)
}

/// Waits for a non-blocking connect to finish before `until`; its `SO_ERROR`.
fn wait_connected(fd: &OwnedFd, port: u16, until: Instant) -> Result<(), Attempt> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Attempt::Fatal(io::Error::new(
                io::ErrorKind::TimedOut,
                "connect timed out",
            )));
        }
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: `pfd` is one live pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(last("poll", port));
        }
        if r > 0 {
            break;
        }
    }
    let mut err: libc::c_int = 0;
    let mut len = socklen::<libc::c_int>();
    // SAFETY: `err` and `len` are live; `len` holds the size of `err`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            std::ptr::from_mut(&mut err).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(last("SO_ERROR", port));
    }
    if err == 0 {
        return Ok(());
    }
    let e = io::Error::from_raw_os_error(err);
    if err == libc::EADDRNOTAVAIL {
        return Err(Attempt::Busy(e));
    }
    Err(Attempt::Fatal(io::Error::new(
        e.kind(),
        format!("connect from source port {port}: {e}"),
    )))
}

/// A connection to `remote` from a local port in `ports` (inclusive, tried from the top),
/// within `timeout` for all tries together.
pub fn connect_from_ports(
    remote: SocketAddr,
    ports: (u16, u16),
    timeout: Duration,
) -> io::Result<TcpStream> {
    let until = Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(Instant::now);
    let (low, high) = ports;
    let mut busy = None;
    for port in (low.max(1)..=high).rev() {
        match try_port(remote, port, until) {
            Ok(s) => return Ok(s),
            Err(Attempt::Busy(e)) => busy = Some(e),
            Err(Attempt::Fatal(e)) => return Err(e),
        }
        if Instant::now() >= until {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "every source port {low}..={high} is taken{}",
            busy.map(|e| format!(" (last: {e})")).unwrap_or_default()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn binds_a_port_of_the_range() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // An unprivileged range works for anyone.
        let s = connect_from_ports(addr, (40_000, 40_100), Duration::from_secs(2)).unwrap();
        let port = s.local_addr().unwrap().port();
        assert!((40_000..=40_100).contains(&port), "port {port}");
        let (_, peer) = l.accept().unwrap();
        assert_eq!(peer.port(), port);
        // A port taken by a listener is skipped.
        let taken = TcpListener::bind("0.0.0.0:0").unwrap();
        let p = taken.local_addr().unwrap().port();
        let s = connect_from_ports(addr, (p - 1, p), Duration::from_secs(2)).unwrap();
        assert_eq!(s.local_addr().unwrap().port(), p - 1);
        drop(taken);
    }

    #[test]
    fn nothing_listening_is_an_error_not_a_hang() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let started = Instant::now();
        let e = connect_from_ports(addr, (40_300, 40_310), Duration::from_secs(2)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
