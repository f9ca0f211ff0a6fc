//! Reorder tolerance (`[window] reorder_rows`): puts one sensor's late readings back in
//! timestamp order before its window sees them. Sans-IO, owned by the sensor's pipeline.
//!
//! Why: after a broker restart, QoS 1 resends can arrive after newer readings of the
//! same sensor. The window takes readings in timestamp order only, so those resends
//! were rejected as out of order and never scored (issue 10, defect 7). A reading now
//! waits in a small sorted buffer until `reorder_rows` newer readings of its sensor
//! have arrived (or, in the daemon, until it has waited [`Reorder::release_waited`]'s
//! limit); a reading that arrives while newer ones still wait is slotted in before
//! them. The price is latency: a reading is scored up to `reorder_rows` readings later.
//!
//! What it decides, once per arriving reading (after the window's own checks):
//! - a timestamp already waiting here, or among the last [`RESEND_MEMORY`] readings
//!   released to the window, is a **duplicate**: a resend of a reading that is or will
//!   be scored, dropped. A broker resends every unacknowledged message of its in-flight
//!   window after a reconnect (Mosquitto: `max_inflight_messages`, 20 by default), so
//!   these are as old as that window is deep, older than the newest reading taken;
//! - any other timestamp older than the newest reading released came too late for
//!   the tolerance: **out of order**, dropped (lost);
//! - anything else waits here.
//!
//! With `reorder_rows = 0` every reading is released at once, exactly as before the
//! buffer existed. Readings that arrive in order are released in the same order with
//! the same values whatever the tolerance, so the steps the detector produces are the
//! same, only later (a unit test in `detector::tests` checks this).

use std::collections::VecDeque;

use crate::reading::Values;

/// Timestamps of released readings remembered to recognise resends. Covers a broker's
/// in-flight window up to this depth (Mosquitto's default is 20, EMQX's 32); costs
/// 8 bytes each per sensor.
pub const RESEND_MEMORY: usize = 64;

/// One reading waiting for older ones.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Held {
    /// Reading time, seconds.
    pub(crate) ts: f64,
    /// One value per channel (before drift removal).
    pub(crate) values: Values,
    /// When it arrived, in the caller's clock (seconds); only [`Reorder::release_waited`]
    /// looks at it.
    pub(crate) arrived: f64,
}

/// A sensor's readings waiting to be released in timestamp order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reorder {
    /// Most readings held; the oldest is released when one more arrives.
    rows: usize,
    /// Sorted by `ts`, oldest first; at most `rows + 1` long between calls.
    held: VecDeque<Held>,
    /// Timestamps of the last [`RESEND_MEMORY`] readings released, in release order
    /// (which is timestamp order).
    released: VecDeque<f64>,
}

impl Reorder {
    /// A buffer holding up to `rows` readings (0: none, every reading passes at once).
    pub(crate) fn new(rows: usize) -> Self {
        Self {
            rows,
            held: VecDeque::with_capacity(rows.min(64) + 1),
            released: VecDeque::new(),
        }
    }

    /// Whether a reading at `ts` is waiting or was among the last [`RESEND_MEMORY`]
    /// released: a resend.
    pub(crate) fn seen(&self, ts: f64) -> bool {
        self.held.iter().any(|h| h.ts == ts) || self.released.iter().rev().any(|&r| r == ts)
    }

    /// Adds a reading that passed every check (its timestamp is new to the sensor and
    /// not older than the newest reading released). Usually it goes to the back;
    /// returns true when it went before a newer reading (it arrived late).
    pub(crate) fn insert(&mut self, reading: Held) -> bool {
        let at = self
            .held
            .iter()
            .rposition(|h| h.ts < reading.ts)
            .map_or(0, |i| i + 1);
        let late = at < self.held.len();
        self.held.insert(at, reading);
        late
    }

    /// Records that the reading at `ts` went to the window.
    pub(crate) fn record(&mut self, ts: f64) {
        if self.released.len() == RESEND_MEMORY {
            self.released.pop_front();
        }
        self.released.push_back(ts);
    }

    /// The oldest reading, once more than `rows` are held.
    pub(crate) fn pop_due(&mut self) -> Option<Held> {
        if self.held.len() > self.rows {
            self.held.pop_front()
        } else {
            None
        }
    }

    /// The oldest reading, if it arrived at `cutoff` or earlier: the bound on how long
    /// a reading of a sensor that went quiet waits.
    pub(crate) fn release_waited(&mut self, cutoff: f64) -> Option<Held> {
        if self.held.front().is_some_and(|h| h.arrived <= cutoff) {
            self.held.pop_front()
        } else {
            None
        }
    }

    /// The oldest reading, whatever its age (end of input, shutdown).
    pub(crate) fn pop_any(&mut self) -> Option<Held> {
        self.held.pop_front()
    }

    /// Readings waiting.
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ts: f64, arrived: f64) -> Held {
        Held {
            ts,
            values: Values::from_slice(&[ts]),
            arrived,
        }
    }

    fn drain(r: &mut Reorder) -> Vec<f64> {
        std::iter::from_fn(|| r.pop_any()).map(|h| h.ts).collect()
    }

    #[test]
    fn a_late_reading_is_slotted_in_before_newer_ones() {
        let mut r = Reorder::new(4);
        for ts in [1.0, 2.0, 4.0, 5.0] {
            r.insert(held(ts, 0.0));
            assert_eq!(r.pop_due(), None);
        }
        assert!(r.insert(held(3.0, 0.0)), "went before newer readings");
        assert_eq!(r.pop_due().map(|h| h.ts), Some(1.0));
        assert_eq!(drain(&mut r), [2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn zero_rows_releases_every_reading_at_once() {
        let mut r = Reorder::new(0);
        r.insert(held(7.0, 0.0));
        assert_eq!(r.pop_due().map(|h| h.ts), Some(7.0));
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn only_readings_that_waited_long_enough_are_released_by_time() {
        let mut r = Reorder::new(8);
        r.insert(held(1.0, 10.0));
        r.insert(held(2.0, 11.0));
        assert_eq!(r.release_waited(9.5), None);
        assert_eq!(r.release_waited(10.0).map(|h| h.ts), Some(1.0));
        assert_eq!(r.release_waited(10.5), None);
        assert!(r.seen(2.0) && !r.seen(1.0), "1.0 was not recorded as released");
    }

    #[test]
    fn released_timestamps_are_remembered_up_to_the_resend_memory() {
        let mut r = Reorder::new(0);
        for i in 0..=RESEND_MEMORY {
            r.record(i as f64);
        }
        assert!(!r.seen(0.0), "forgotten past the memory");
        assert!(r.seen(1.0) && r.seen(RESEND_MEMORY as f64));
    }
}
