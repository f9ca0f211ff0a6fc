//! Rate-limited warnings for per-message problems (bad payloads, rejected readings).
//!
//! A hostile or broken publisher can send thousands of bad messages a second; logging
//! each would flood the journal and cost more CPU than the detector. [`LogLimiter`]
//! lets through at most one line per kind per interval and reports how many were
//! suppressed since the last line. Counting for metrics happens elsewhere, always.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Default interval between two log lines of the same kind.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Per-kind log gate. Kinds are `&'static str` labels, so the map stays small.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    /// Per kind: when the last line was let through, and how many were held back since.
    kinds: HashMap<&'static str, (Instant, u64)>,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_INTERVAL)
    }
}

impl LogLimiter {
    /// A limiter letting one line per kind through every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            kinds: HashMap::new(),
        }
    }

    /// Asks to log one event of `kind` at `now`. Returns `Some(suppressed)` (events
    /// held back since the last line) when a line may be written, else `None`.
    pub fn check(&mut self, kind: &'static str, now: Instant) -> Option<u64> {
        match self.kinds.get_mut(kind) {
            None => {
                self.kinds.insert(kind, (now, 0));
                Some(0)
            }
            Some((last, suppressed)) if now.duration_since(*last) >= self.interval => {
                let held = *suppressed;
                *last = now;
                *suppressed = 0;
                Some(held)
            }
            Some((_, suppressed)) => {
                *suppressed += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_lets_one_line_per_kind_per_interval_and_counts_the_rest() {
        let mut l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.check("not_json", t0), Some(0));
        assert_eq!(l.check("not_json", t0 + Duration::from_secs(1)), None);
        assert_eq!(l.check("not_json", t0 + Duration::from_secs(2)), None);
        // Another kind has its own budget.
        assert_eq!(l.check("too_large", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(l.check("not_json", t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(l.check("not_json", t0 + Duration::from_secs(11)), None);
    }
}
