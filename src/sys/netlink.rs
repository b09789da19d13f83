//! The `NETLINK_ROUTE` socket: open (for requests, or subscribed to multicast groups for the
//! kernel's notifications), send one request, receive with a timeout, drain what is queued.
//! Messages are built and parsed by `net/rtnl.rs` (pure); this file only moves bytes.

use super::socklen;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn kernel() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain old data; all-zero (pid 0, groups 0) addresses the kernel.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = u16::try_from(libc::AF_NETLINK).unwrap_or(16);
    sa
}

#[derive(Debug)]
pub struct NetlinkSocket {
    fd: OwnedFd,
}

impl NetlinkSocket {
    /// A socket for requests (no notifications).
    pub fn open() -> io::Result<NetlinkSocket> {
        NetlinkSocket::open_groups(0)
    }

    /// A socket that also receives the notifications of the multicast groups in `groups`
    /// (bit `n - 1` for group `n`, `RTNLGRP_*` in `include/uapi/linux/rtnetlink.h`).
    pub fn open_groups(groups: u32) -> io::Result<NetlinkSocket> {
        // SAFETY: socket(2) takes no pointers; the result is checked before use.
        let raw = check(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            )
        })?;
        // SAFETY: `raw` is a fresh descriptor we own; nothing else closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut sa = kernel();
        sa.nl_groups = groups;
        // SAFETY: `sa` is a valid sockaddr_nl (pid 0: the kernel picks ours) of the size given.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&sa).cast(),
                socklen::<libc::sockaddr_nl>(),
            )
        })?;
        Ok(NetlinkSocket { fd })
    }

    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        let sa = kernel();
        // SAFETY: the buffer and address are live for the call and their sizes are exact.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                std::ptr::from_ref(&sa).cast(),
                socklen::<libc::sockaddr_nl>(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One datagram (possibly several netlink messages), waiting at most `timeout`.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let ready = super::packet::poll_readable(&[self.fd.as_fd()], timeout)?;
        if !ready.first().copied().unwrap_or(false) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "netlink: no answer",
            ));
        }
        // SAFETY: `buf` is live and writable for its full length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Reads and drops every datagram queued now (non-blocking, at most 64); true if there
    /// was any, or if the kernel dropped some for want of room (`ENOBUFS`): either way,
    /// something changed.
    pub fn drain(&self) -> bool {
        let mut buf = [0u8; 4096];
        let mut any = false;
        for _ in 0..64 {
            // SAFETY: `buf` is live and writable for its full length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                any = true;
                continue;
            }
            if io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                any = true;
                continue;
            }
            break;
        }
        any
    }
}

impl AsFd for NetlinkSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
