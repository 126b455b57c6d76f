//! When a failed part of the store tries again: first `retry_after` after the failure, then twice as long after each
//! failed attempt, up to `retry_max`. A disk that fills up usually stays full for a while; retrying a few times a
//! minute costs nothing, and the broker's free-disk alarm keeps publishers away meanwhile.

use std::time::{Duration, Instant};

/// The schedule of one failed part's retries.
#[derive(Debug)]
pub(crate) struct Backoff {
    delay: Duration,
    max: Duration,
    due: Instant,
}

impl Backoff {
    /// A failure just happened: the first retry is due after `first`.
    pub(crate) fn start(first: Duration, max: Duration) -> Backoff {
        Backoff {
            delay: first,
            max: max.max(first),
            due: Instant::now() + first,
        }
    }

    /// When the next attempt is due.
    pub(crate) fn due(&self) -> Instant {
        self.due
    }

    /// An attempt failed: the next one waits twice as long (at most `max`).
    pub(crate) fn again(&mut self) {
        self.delay = (self.delay * 2).min(self.max);
        self.due = Instant::now() + self.delay;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum() {
        let mut b = Backoff::start(Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(b.delay, Duration::from_secs(1));
        b.again();
        assert_eq!(b.delay, Duration::from_secs(2));
        b.again();
        b.again();
        assert_eq!(b.delay, Duration::from_secs(5));
        assert!(b.due() > Instant::now());
    }
}
