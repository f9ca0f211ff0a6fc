//! The reconnect policy of both connections: an exponential delay that is only reset
//! by a connection that proved itself.
//!
//! rumqttc reconnects at once on the next `poll()` (its issue #703), so without a delay
//! a dead broker is hammered in a tight loop. Resetting the delay on every ConnAck is
//! not enough either: a broker that accepts the connection and then breaks it at once
//! (a poison message redelivered on every resumed session, a broker that drops the
//! client after an ACL check) would be retried at `min` forever. So the delay goes back
//! to `min` only after a connection has stayed up for [`STABLE_AFTER`] and delivered at
//! least one message. Sans-IO: the caller passes the time in.

use std::time::{Duration, Instant};

/// How long a connection must stay up, having delivered a message, before its failure
/// counts as a new incident (delay back to `min`) instead of part of a failing loop.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Exponential reconnect delay: `min`, doubling on each failure, capped at `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    /// When the current connection came up; `None` while down.
    up_since: Option<Instant>,
    /// The current connection delivered a message.
    delivered: bool,
}

impl Backoff {
    /// Starts at `min`, never above `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            next: min,
            up_since: None,
            delivered: false,
        }
    }

    /// The broker accepted a connection (ConnAck). Does not reset the delay by itself.
    pub fn connected(&mut self, now: Instant) {
        self.up_since = Some(now);
        self.delivered = false;
    }

    /// The connection delivered a message (a Publish in, a PubAck for ours).
    pub fn delivered(&mut self) {
        self.delivered = true;
    }

    /// The connection failed at `now`: returns the delay to wait before the next
    /// attempt. A connection that was stable resets the sequence first.
    pub fn failed(&mut self, now: Instant) -> Duration {
        let stable = self
            .up_since
            .take()
            .is_some_and(|since| self.delivered && now.saturating_duration_since(since) >= STABLE_AFTER);
        if stable {
            self.next = self.min;
        }
        self.delivered = false;
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_backoff() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(10))
    }

    #[test]
    fn failures_without_a_connection_double_from_min_to_max() {
        let mut b = build_backoff();
        let t = Instant::now();
        let seq: Vec<u64> = (0..6).map(|_| b.failed(t).as_secs()).collect();
        assert_eq!(seq, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn a_connection_that_fails_at_once_keeps_backing_off() {
        // The poison-message loop: ConnAck, a delivery or two, then the same error.
        let mut b = build_backoff();
        let mut t = Instant::now();
        let mut seq = Vec::new();
        for _ in 0..5 {
            b.connected(t);
            b.delivered();
            t += Duration::from_millis(200);
            seq.push(b.failed(t).as_secs());
        }
        assert_eq!(seq, [1, 2, 4, 8, 10]);
    }

    #[test]
    fn a_stable_connection_that_delivered_resets_the_delay() {
        let mut b = build_backoff();
        let t = Instant::now();
        for _ in 0..4 {
            b.failed(t);
        }
        b.connected(t);
        b.delivered();
        assert_eq!(b.failed(t + STABLE_AFTER), Duration::from_secs(1));
        assert_eq!(b.failed(t + STABLE_AFTER), Duration::from_secs(2));
    }

    #[test]
    fn a_long_connection_that_delivered_nothing_does_not_reset() {
        let mut b = build_backoff();
        let t = Instant::now();
        b.failed(t);
        b.failed(t);
        b.connected(t);
        assert_eq!(b.failed(t + STABLE_AFTER * 3), Duration::from_secs(4));
    }

    #[test]
    fn max_below_min_is_raised_to_min() {
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        let t = Instant::now();
        assert_eq!(b.failed(t), Duration::from_secs(5));
        assert_eq!(b.failed(t), Duration::from_secs(5));
    }
}
