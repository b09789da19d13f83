//! Probing the metadata service: a non-blocking TCP connect to one of its addresses through
//! one NIC (`SO_BINDTODEVICE`, so routes through other NICs are never taken), polled with
//! the rest of the race. A connection that opens means this NIC and family reach the service;
//! it is closed at once. Each probe has its own limit ([`PROBE_TIMEOUT`], cut by the
//! deadline): a link-local target nobody holds fails after the kernel's three neighbour
//! solicitations (about 3 s) rather than hanging. Never sends a byte of HTTP.

use crate::sys::nicsock;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// Longest wait for one connect.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// A connect still pending after this gets a sibling to the same address: TCP resends a
/// lost SYN only after a second (RFC 6298's initial RTO), and the first packets on a link
/// that just came up are the likeliest to be lost.
pub const PROBE_AGAIN: Duration = Duration::from_millis(300);
/// At most this many connects to one address from one NIC at a time.
pub const PROBE_PARALLEL: usize = 3;

/// A connect under way.
#[derive(Debug)]
pub struct Probe {
    pub to: SocketAddr,
    stream: TcpStream,
    started: Instant,
    until: Instant,
}

/// How a probe ended.
#[derive(Debug)]
pub enum Outcome {
    Pending,
    Reached,
    Failed(String),
}

impl Probe {
    /// Starts a connect to `to` out of `device`, given up at `until`.
    pub fn start(to: SocketAddr, device: &str, until: Instant) -> io::Result<Probe> {
        Ok(Probe {
            to,
            stream: nicsock::tcp_connect_start(to, Some(device))?,
            started: Instant::now(),
            until,
        })
    }

    pub fn until(&self) -> Instant {
        self.until
    }

    /// When another connect to the same address may start beside this one.
    pub fn again_at(&self) -> Instant {
        self.started
            .checked_add(PROBE_AGAIN)
            .unwrap_or(self.started)
    }

    /// Where it stands, `ready` being what `poll` said of [`Probe::fd`].
    pub fn check(&self, ready: bool, now: Instant) -> Outcome {
        if ready {
            match self.stream.take_error() {
                Ok(Some(e)) | Err(e) => return Outcome::Failed(e.to_string()),
                Ok(None) => {}
            }
            if self.stream.peer_addr().is_ok() {
                return Outcome::Reached;
            }
        }
        if now >= self.until {
            return Outcome::Failed("timed out".into());
        }
        Outcome::Pending
    }
}

impl AsFd for Probe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_on_loopback() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap();
        let closed = {
            let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            t.local_addr().unwrap()
        };
        let later = Instant::now() + Duration::from_secs(5);
        for (case, to, reached) in [("listening", open, true), ("refused", closed, false)] {
            let p = Probe::start(to, "lo", later).unwrap();
            let ready =
                crate::sys::packet::poll(&[(p.as_fd(), true)], Duration::from_secs(2)).unwrap();
            let got = p.check(ready.first().copied().unwrap_or(false), Instant::now());
            assert_eq!(
                matches!(got, Outcome::Reached),
                reached,
                "case {case}: {got:?}"
            );
        }
        let p = Probe::start(open, "lo", Instant::now()).unwrap();
        assert!(
            matches!(p.check(false, Instant::now()), Outcome::Failed(_)),
            "case past its limit"
        );
    }
}
