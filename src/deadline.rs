//! One deadline for everything that blocks: every wait, connect, read and child process in
//! preroot takes a [`Deadline`] rather than a duration of its own, so a phase ends when its
//! `preroot.timeout=` says, however many steps it has. Never sleeps itself. No `Instant +
//! Duration` elsewhere: a duration from input can overflow the clock (a panic); [`Deadline::after`]
//! saturates.

use std::time::{Duration, Instant};

/// A point in time every blocking step must finish by.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

/// The furthest a deadline lies ahead (a hundred years): any longer wait, up to
/// `Duration::MAX` (`script_timeout = 18446744073709551615`), is cut to it rather than
/// overflowing the clock.
pub const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Deadline {
    /// `d` from now; saturates at [`FAR`], never overflows (and never turns a long wait into
    /// one that has already passed).
    pub fn after(d: Duration) -> Deadline {
        let now = Instant::now();
        Deadline(now.checked_add(d.min(FAR)).unwrap_or(now))
    }

    /// The instant itself, for the few calls that take one (`sys::spawn`).
    pub fn instant(&self) -> Instant {
        self.0
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn passed(&self) -> bool {
        self.remaining().is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        let d = Deadline::after(Duration::ZERO);
        assert!(d.passed());
        let d = Deadline::after(Duration::from_secs(60));
        assert!(!d.passed());
        assert!(d.remaining() <= Duration::from_secs(60));
        // Far-future deadlines saturate instead of overflowing, and stay in the future.
        let far = Deadline::after(Duration::MAX);
        assert!(!far.passed() && far.remaining() > Duration::from_secs(1 << 30));
    }
}
