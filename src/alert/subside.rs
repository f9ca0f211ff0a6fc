//! An alert that ends because its fault subsided, not because the sensor recovered.
//!
//! After a fault the process often settles a little away from where it was trained
//! (a pump that ran hot, a valve reopened): the error falls far below what it was
//! during the fault but stays over the threshold, so the alert would stay raised until
//! the learning policy accepts it. [`Subside`] follows the raised episode's level (an
//! exponential average of the thresholded score) and its peak; once the score has been
//! under `[alert] subside` × that peak for as long a quiet spell as separates two alerts
//! (`cooldown` windows, at least `clear_after`: a dip of an ongoing fault, such as a
//! broken correlation whose channels cross, is not its end), and is not still falling
//! (the newest at least half the run's mean), the alert clears as subsided, and the
//! sensor *holds* the level it subsided to: no new alert unless a score rises over that
//! level (the fault coming back) or a stuck channel says so. The hold ends when the
//! score has been under the threshold for `clear_after` windows (the sensor recovered),
//! at a new raise, or when the learning policy accepts the episode. Snapshots keep it
//! beside the alert state (format 7), so a restart during a hold keeps the hold.

use serde::{Deserialize, Serialize};

/// Weight of the newest score in the episode's level (an average over about ten windows).
const SMOOTHING: f64 = 0.2;

/// Least ratio of the newest score to the mean of the subsided run for the run to count
/// as a level the sensor settled at.
const STEADY: f64 = 0.5;

/// The subside tracking of one sensor's alert: the raised episode's level and peak, and
/// the hold after a subsided clear.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subside {
    /// Exponential average of the thresholded score while raised.
    level: Option<f64>,
    /// Highest `level` of the raised episode.
    peak: f64,
    /// Consecutive windows, up to the latest, under the subside fraction of `peak`.
    low_run: u32,
    /// Largest score of that run.
    low_max: f64,
    /// Sum of the scores of that run.
    low_sum: f64,
    /// After a subsided clear: the score a raise must exceed.
    hold: Option<f64>,
    /// Consecutive windows under the threshold while holding.
    hold_under: u32,
}

impl Subside {
    /// A new raised episode: forgets the previous one and any hold.
    pub(super) fn start(&mut self) {
        *self = Self::default();
    }

    /// Feeds a window of the raised episode; true once its score has stayed under
    /// `fraction` of the episode's peak level for `run` windows. A score that is
    /// not finite (a stuck channel) never counts as subsided.
    pub(super) fn raised_window(&mut self, score: f64, fraction: f64, run: u32) -> bool {
        if !score.is_finite() {
            self.reset_run();
            return false;
        }
        let level = self.level.map_or(score, |l| l + SMOOTHING * (score - l));
        self.level = Some(level);
        self.peak = self.peak.max(level);
        if score < fraction * self.peak {
            self.low_run += 1;
            self.low_max = self.low_max.max(score);
            self.low_sum += score;
        } else {
            self.reset_run();
        }
        // Steady, not still falling: a fault leaving the window lowers the error reading
        // by reading down to the threshold, and that ends as a recovery.
        let mean = self.low_sum / f64::from(self.low_run.max(1));
        self.low_run >= run && score >= STEADY * mean
    }

    fn reset_run(&mut self) {
        self.low_run = 0;
        self.low_max = 0.0;
        self.low_sum = 0.0;
    }

    /// The alert cleared as subsided: hold the largest score of the subsided run.
    pub(super) fn begin_hold(&mut self) {
        let hold = self.low_max;
        *self = Self {
            hold: Some(hold),
            ..Self::default()
        };
    }

    /// Whether a hold is in force.
    pub(super) fn holding(&self) -> bool {
        self.hold.is_some()
    }

    /// Whether the hold keeps `score` from counting toward a raise.
    pub(super) fn blocks_raise(&self, score: f64) -> bool {
        self.hold.is_some_and(|h| score <= h)
    }

    /// Feeds a window while holding; true when this window ends the hold (the score
    /// under the threshold for `clear_after` windows).
    pub(super) fn held_window(&mut self, over_threshold: bool, clear_after: u32) -> bool {
        if self.hold.is_none() {
            return false;
        }
        self.hold_under = if over_threshold { 0 } else { self.hold_under + 1 };
        if self.hold_under >= clear_after {
            self.hold = None;
            self.hold_under = 0;
            return true;
        }
        false
    }
}
