//! Maps a window's reconstruction error to `anomaly_score` in [0, 1] using past
//! errors only.
//!
//! The raw error is divided by a reference taken from the previous `history` errors
//! (their q-quantile; q = 1 is their maximum), so a score of 0.5 means "as large as the
//! reference" whatever the sensor's units. Then only onsets count: a value that does not
//! beat every value of the previous `onset_rows` windows is reported as 0, and an event
//! (a value at least as large as the reference, score ≥ 0.5) is reported once: for
//! `onset_rows` windows after it, no further value is. NAB charges every row above its
//! threshold, so a plateau of high scores after one event, or the ramp of a window
//! filling with a new level, is paid for many times; an onset-shaped score once.

use crate::threshold::RollingMax;

/// Turns scores into anomaly scores; one per sensor.
#[derive(Clone, Debug)]
pub struct AnomalyScorer {
    reference: RollingMax,
    onset: OnsetFilter,
}

/// The onset rule: maps a ratio (1 = an event) to r / (1 + r) and reports it only if
/// it beats the previous `onset_rows` values, an event once in `onset_rows` windows.
#[derive(Clone, Debug)]
pub struct OnsetFilter {
    onset_rows: usize,
    /// The keys of the last `onset_rows` values (the raw values themselves, or any
    /// strictly increasing function of them), for their maximum.
    recent: RollingMax,
    index: u64,
    /// Index of the last reported event (a ratio of at least 1).
    last_event: Option<u64>,
}

impl OnsetFilter {
    /// Counts only values that beat those of the previous `onset_rows` (0 = every value).
    pub fn new(onset_rows: usize) -> Self {
        Self {
            onset_rows,
            // Unused when `onset_rows` is 0 (every value counts), but never empty.
            recent: RollingMax::new(onset_rows.max(1)),
            index: 0,
            last_event: None,
        }
    }

    /// The reported score of `ratio`: r / (1 + r) at an onset, else 0.
    pub fn report(&mut self, ratio: f64) -> f64 {
        self.report_with(ratio / (1.0 + ratio), || ratio)
    }

    /// [`Self::report`] of the ratio `ratio()`, given `key`, any strictly increasing
    /// function of it: the onset test compares keys, and `ratio` is called only for a
    /// key that beats the previous ones (a costly ratio is then rarely computed).
    pub fn report_with(&mut self, key: f64, ratio: impl FnOnce() -> f64) -> f64 {
        self.index += 1;
        if self.onset_rows == 0 {
            let ratio = ratio();
            return ratio / (1.0 + ratio);
        }
        let beaten = self.recent.max().is_none_or(|max| key > max);
        self.recent.push(key);
        if !beaten {
            return 0.0;
        }
        let ratio = ratio();
        // An event (a value over the reference) is reported once: its growth over the
        // next `onset_rows` windows is the same event, not a new one.
        if ratio >= 1.0 {
            if self
                .last_event
                .is_some_and(|at| at + self.onset_rows as u64 > self.index)
            {
                return 0.0;
            }
            self.last_event = Some(self.index);
        }
        ratio / (1.0 + ratio)
    }
}

/// Guards the ratio against a reference of exactly zero (a flat signal).
const MIN_REFERENCE: f64 = 1e-12;

impl AnomalyScorer {
    /// A scorer with no history, relative to the maximum of the last `history` errors,
    /// counting only values that beat those of the previous `onset_rows` (0 = every value).
    pub fn new(history: usize, onset_rows: usize) -> Self {
        Self {
            reference: RollingMax::new(history),
            onset: OnsetFilter::new(onset_rows),
        }
    }

    /// The anomaly score of `error`, then learns `error` as history.
    pub fn update(&mut self, error: f64) -> f64 {
        self.update_learning(error, true)
    }

    /// The anomaly score of `error`; learns `error` as history only when `learn`.
    pub fn update_learning(&mut self, error: f64, learn: bool) -> f64 {
        let ratio = self.ratio(error);
        if learn {
            self.reference.push(error);
        }
        self.onset.report(ratio)
    }

    /// The ratio of `error` to the reference (0 without one); learns nothing.
    fn ratio(&self, error: f64) -> f64 {
        match self.reference.max() {
            Some(reference) => error / reference.max(MIN_REFERENCE),
            None => 0.0,
        }
    }

    /// Forgets the reference history (the onset memory is kept).
    pub fn clear_history(&mut self) {
        self.reference.clear();
    }

    /// Adds `error` to the reference history without scoring it.
    pub fn learn(&mut self, error: f64) {
        self.reference.push(error);
    }

    /// The reference (the rolling maximum of past errors), for snapshots.
    pub fn reference(&self) -> &RollingMax {
        &self.reference
    }

    /// Takes the reference of a snapshot, over this scorer's `history` (onset memory
    /// starts empty).
    pub fn restore(&mut self, reference: &RollingMax) {
        let capacity = self.reference.capacity();
        self.reference = reference.clone();
        self.reference.resize(capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(history: usize, onset_rows: usize) -> AnomalyScorer {
        AnomalyScorer::new(history, onset_rows)
    }

    #[test]
    fn first_score_is_zero_without_history() {
        assert_eq!(build(10, 0).update(5.0), 0.0);
    }

    #[test]
    fn score_equal_to_past_max_maps_to_one_half() {
        let mut s = build(10, 0);
        s.update(2.0);
        assert!((s.update(2.0) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn scores_stay_in_unit_interval() {
        let mut s = build(5, 3);
        for e in [0.0, 1e-30, 1.0, 1e30, 0.5, 0.0, 7.0] {
            let a = s.update(e);
            assert!((0.0..=1.0).contains(&a), "{e} -> {a}");
        }
    }

    #[test]
    fn onset_suppresses_the_plateau_after_a_jump() {
        let mut s = build(100, 5);
        for _ in 0..20 {
            s.update(1.0);
        }
        let onset = s.update(10.0);
        assert!(onset > 0.9, "{onset}");
        // The same level right after is not a new onset.
        assert_eq!(s.update(10.0), 0.0);
        // Nor is its growth within `onset_rows`: an event is reported once.
        assert_eq!(s.update(1000.0), 0.0);
        for _ in 0..5 {
            s.update(1.0);
        }
        // Once the event's rows have passed, a new one is reported.
        assert!(s.update(2000.0) > 0.5);
    }

    #[test]
    fn a_ramp_is_one_event() {
        let mut s = build(1000, 10);
        for _ in 0..50 {
            s.update(1.0);
        }
        // A window filling with a new level: the error grows row after row.
        let reported: Vec<f64> = (0..10).map(|i| s.update(2.0 + i as f64)).collect();
        assert!(reported[0] > 0.5, "{reported:?}");
        assert!(reported[1..].iter().all(|&r| r == 0.0), "{reported:?}");
    }

    #[test]
    fn rising_values_under_the_reference_are_each_reported() {
        // Below the reference nothing is an event yet: the onset rule alone applies.
        let mut s = build(1000, 10);
        s.update(10.0);
        let reported: Vec<f64> = (1..5).map(|i| s.update(i as f64)).collect();
        assert!(reported.iter().all(|&r| r > 0.0 && r < 0.5), "{reported:?}");
    }

    #[test]
    fn unlearned_errors_do_not_raise_the_reference() {
        let mut s = build(100, 0);
        s.update(1.0);
        s.update_learning(100.0, false);
        assert!((s.update(1.0) - 0.5).abs() < 1e-12);
        s.update_learning(100.0, true);
        assert!(s.update(1.0) < 0.01);
    }

    #[test]
    fn onset_memory_expires_after_onset_rows() {
        let mut s = build(3, 2);
        for _ in 0..3 {
            s.update(1.0);
        }
        assert!(s.update(5.0) > 0.0);
        s.update(0.1);
        s.update(0.1);
        // 5.0 has left both the onset memory and (nearly) the history: 1.0 is new again.
        assert!(s.update(1.0) > 0.0);
    }
}
