//! Stuck channels: a channel whose reading has not changed for far longer than it
//! has ever stayed flat before (a frozen sensor, a dead transmitter repeating its last
//! value). A flat stretch reconstructs well, so no reconstruction error finds it
//! (docs/quality.md, session 10); this check does, from each channel's own history.
//!
//! Per channel it counts the readings since the value last changed (the run) and
//! remembers the longest run that has ended. A channel is stuck while its run is over
//! `[alert] stuck_rows` and over [`FACTOR`] × that longest run. Every run that ends is
//! learned, a stuck one too: a channel that really does sit still for a while (a valve
//! that stays shut) raises once, then only for a flat stretch twice as long. A channel
//! is not judged before its value has changed once (nothing says how long it stays
//! flat yet), and a run an operator accepted (the alert lasted `[learning]
//! accept_after_secs`) is learned as it grows.

use serde::{Deserialize, Serialize};

/// How many times its longest earlier flat stretch a channel's run must last to be
/// stuck.
pub const FACTOR: u32 = 2;

/// One channel's run of unchanged readings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The channel's newest reading.
    last: f64,
    /// Readings in a row equal to `last`, the first of them included.
    rows: u32,
    /// The longest run that has ended; 0 before the value first changed.
    longest: u32,
    /// The run is accepted as normal: it is learned as it grows.
    accepted: bool,
}

impl Run {
    fn new(value: f64) -> Self {
        Self {
            last: value,
            rows: 1,
            longest: 0,
            accepted: false,
        }
    }

    /// Readings in a row the channel has not changed for.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// The longest flat stretch learned before this one.
    pub fn longest(&self) -> u32 {
        self.longest
    }

    fn stuck(&self, min_rows: u32) -> bool {
        min_rows > 0
            && self.longest > 0
            && !self.accepted
            && self.rows > min_rows.max(self.longest.saturating_mul(FACTOR))
    }
}

/// The runs of one sensor's channels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stuck {
    /// One per channel, in reading order; empty before the first reading.
    runs: Vec<Run>,
}

impl Stuck {
    /// Counts a reading (its raw values, before any detrending).
    pub fn observe(&mut self, values: &[f64]) {
        if self.runs.len() != values.len() {
            self.runs = values.iter().map(|&v| Run::new(v)).collect();
            return;
        }
        for (run, &v) in self.runs.iter_mut().zip(values) {
            if v == run.last {
                run.rows = run.rows.saturating_add(1);
                if run.accepted {
                    run.longest = run.longest.max(run.rows);
                }
            } else {
                let longest = run.longest.max(run.rows);
                *run = Run {
                    longest,
                    ..Run::new(v)
                };
            }
        }
    }

    /// Whether any channel is stuck under `min_rows` (`[alert] stuck_rows`; 0 = off).
    pub fn any(&self, min_rows: u32) -> bool {
        self.channels(min_rows).next().is_some()
    }

    /// The stuck channels' indices and runs.
    pub fn channels(&self, min_rows: u32) -> impl Iterator<Item = (usize, &Run)> {
        self.runs
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.stuck(min_rows))
    }

    /// An alert was accepted as the new normal: the runs that are stuck now are
    /// learned, and keep being learned until they end.
    pub fn accept(&mut self, min_rows: u32) {
        for run in self.runs.iter_mut().filter(|r| r.stuck(min_rows)) {
            run.accepted = true;
            run.longest = run.longest.max(run.rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(values: &[f64]) -> Stuck {
        let mut s = Stuck::default();
        values.iter().for_each(|&v| s.observe(&[v]));
        s
    }

    /// `n` readings alternating between two values, then `flat` readings of one.
    fn moving_then_flat(n: usize, flat: usize) -> Vec<f64> {
        let mut v: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
        v.extend(std::iter::repeat_n(5.0, flat));
        v
    }

    #[test]
    fn a_channel_is_stuck_once_its_run_passes_both_bounds() {
        // Runs of 1 so far: the bound is stuck_rows.
        assert!(
            !fed(&moving_then_flat(50, 10)).any(10),
            "exactly 10 is not over 10"
        );
        assert!(fed(&moving_then_flat(50, 11)).any(10));
        assert!(!fed(&moving_then_flat(50, 11)).any(0), "0 turns the check off");
        // A flat stretch of 30 learned earlier: now the bound is 2 x 30.
        let mut v = moving_then_flat(50, 30);
        v.extend(moving_then_flat(10, 60));
        assert!(!fed(&v).any(10));
        v.push(5.0);
        let s = fed(&v);
        let (channel, run) = s.channels(10).next().expect("stuck");
        assert_eq!((channel, run.rows(), run.longest()), (0, 61, 30));
    }

    #[test]
    fn a_channel_that_never_changed_is_not_judged() {
        assert!(!fed(&[3.0; 500]).any(10));
        let mut v = vec![3.0; 500];
        v.extend(moving_then_flat(10, 1000));
        assert!(
            !fed(&v).any(10),
            "its first run, 500, is learned: the bound is 1000"
        );
        v.push(5.0);
        assert!(fed(&v).any(10));
    }

    #[test]
    fn a_stuck_run_is_learned_when_it_ends() {
        let mut v = moving_then_flat(20, 100);
        v.extend(moving_then_flat(20, 150));
        let s = fed(&v);
        assert!(!s.any(10), "the second flat stretch is under 2 x 100");
    }

    #[test]
    fn an_accepted_run_is_learned_as_it_grows() {
        let mut s = fed(&moving_then_flat(20, 40));
        assert!(s.any(10));
        s.accept(10);
        assert!(!s.any(10));
        (0..1000).for_each(|_| s.observe(&[5.0]));
        assert!(!s.any(10), "still the accepted run");
        (0..2080).for_each(|_| s.observe(&[1.0]));
        assert!(!s.any(10), "a new run, not over 2 x the 1040 learned");
        s.observe(&[1.0]);
        assert!(s.any(10));
    }

    #[test]
    fn channels_are_judged_apart_and_a_new_width_starts_over() {
        let mut s = Stuck::default();
        for i in 0..100 {
            s.observe(&[f64::from(i % 2), if i < 50 { f64::from(i % 3) } else { 7.0 }]);
        }
        let stuck: Vec<usize> = s.channels(10).map(|(c, _)| c).collect();
        assert_eq!(stuck, vec![1]);
        s.observe(&[1.0, 2.0, 3.0]);
        assert!(!s.any(10), "three channels now: every run starts afresh");
    }
}
