//! The anomaly likelihood of a window's error (Ahmad et al. 2017, "Unsupervised
//! real-time anomaly detection for streaming data"; Numenta's NAB detector): how far a
//! short average of the newest errors lies in the tail of the errors the model in force
//! has learned, as a Gaussian tail probability.
//!
//! The raw value is the natural log of the error (a squared reconstruction error is
//! skewed; its log is close to symmetric, and a log makes the value independent of the
//! sensor's units). Its mean and standard deviation are those of the learned errors (the
//! last `history`, exponentially weighted once that many are in; rebuilt from each new
//! model's errors, like the onset reference), so an error does not have to beat every
//! earlier error to count: it has to be improbable under the recent distribution. The
//! tail probability `Q(z)` of `z = (ln error − mean) / sd` becomes a ratio
//! `ln Q(z) / ln tail`, 1 at the tail probability `tail`, which the onset rule then maps
//! to a score in [0, 1] as it does the window ratio. Numenta's version averages the
//! newest raw values first; the window of 32 readings already smooths the error, and
//! averages of 5 or 10 scored lower on NAB (docs/quality.md, session 10).
//!
//! The history's statistics are in snapshots (format 5); a sensor restored from an
//! older snapshot has none, and its component is silent until 30 errors are learned.

use crate::score::OnsetFilter;

/// Values needed before the likelihood says anything.
const MIN_HISTORY: u64 = 30;
/// Guards the log against an error of exactly zero.
const MIN_ERROR: f64 = 1e-300;
/// The least standard deviation of the log errors: a flat signal's learned errors barely
/// vary (0.05 is a 5 % change of the error).
const MIN_SD: f64 = 0.05;

/// Mean and variance of learned values: the plain mean of the first `span`, then
/// exponentially weighted with weight `1 / span`. Kept in snapshots (format 5).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecayingStats {
    span: u64,
    count: u64,
    mean: f64,
    var: f64,
}

impl DecayingStats {
    /// No values yet; weights settle at `1 / span`.
    pub fn new(span: usize) -> Self {
        Self {
            span: span.max(1) as u64,
            count: 0,
            mean: 0.0,
            var: 0.0,
        }
    }

    /// Adds `x`.
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let w = 1.0 / self.count.min(self.span) as f64;
        let d = x - self.mean;
        self.mean += w * d;
        // West's update: exact for the running mean, and the exponentially weighted
        // variance once the weight is fixed.
        self.var = (1.0 - w) * (self.var + w * d * d);
    }

    /// Forgets every value.
    pub fn clear(&mut self) {
        self.count = 0;
        self.mean = 0.0;
        self.var = 0.0;
    }

    /// Values pushed since the last clear.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// The standard deviation (population).
    pub fn sd(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }
}

/// `ln Q(z)`, the log of the standard normal upper tail probability, accurate in the far
/// tail (Numerical Recipes' `erfc` approximation, relative error under 1.2e-7).
pub fn ln_upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    // ln erfc(|x|) = ln t + poly; Q(z) = erfc(x) / 2.
    let ln_erfc_abs = t.ln() + poly;
    if x >= 0.0 {
        ln_erfc_abs - std::f64::consts::LN_2
    } else {
        (1.0 - 0.5 * ln_erfc_abs.exp()).ln()
    }
}

/// The likelihood ratio of each window's error; one per sensor.
#[derive(Clone, Debug)]
pub struct Likelihood {
    stats: DecayingStats,
    /// `ln tail`, negative.
    ln_tail: f64,
}

impl Likelihood {
    /// Against the last `history` learned errors; a ratio of 1 at tail probability
    /// `tail` (in (0, 0.5)).
    pub fn new(history: usize, tail: f64) -> Self {
        Self {
            stats: DecayingStats::new(history),
            ln_tail: tail.clamp(f64::MIN_POSITIVE, 0.5).ln(),
        }
    }

    /// The ratio of `error` (0 while fewer than 30 errors are learned); learns it when
    /// `learn`. The plain form of [`Self::score`], which the tests hold it to.
    #[cfg(test)]
    fn update(&mut self, error: f64, learn: bool) -> f64 {
        let x = error.max(MIN_ERROR).ln();
        let ratio = self.z(x).map_or(0.0, |z| self.ratio_at(z));
        if learn {
            self.stats.push(x);
        }
        ratio
    }

    /// `update` (the plain form, which the tests keep) through the onset rule `filter`:
    /// the ratio is a strictly increasing function of `z`, so the filter compares the
    /// `z`s, and the Gaussian tail (two logarithms and an exponential, 4 % of a replay
    /// when computed for every window) is computed only for a window that beats the
    /// previous ones. The reported scores are those of
    /// `filter.report(self.update(error, learn))`.
    pub fn score(&mut self, error: f64, learn: bool, filter: &mut OnsetFilter) -> f64 {
        let x = error.max(MIN_ERROR).ln();
        let score = match self.z(x) {
            Some(z) => filter.report_with(z, || self.ratio_at(z)),
            // No history: a ratio of 0, under every ratio to come.
            None => filter.report_with(f64::NEG_INFINITY, || 0.0),
        };
        if learn {
            self.stats.push(x);
        }
        score
    }

    /// How many standard deviations the log error `x` lies above the learned mean;
    /// `None` while fewer than 30 errors are learned.
    fn z(&self, x: f64) -> Option<f64> {
        (self.stats.count() >= MIN_HISTORY).then(|| (x - self.stats.mean()) / self.stats.sd().max(MIN_SD))
    }

    /// `ln Q(z) / ln tail`.
    fn ratio_at(&self, z: f64) -> f64 {
        (ln_upper_tail(z) / self.ln_tail).max(0.0)
    }

    /// Adds `error` to the history without scoring it.
    pub fn learn(&mut self, error: f64) {
        self.stats.push(error.max(MIN_ERROR).ln());
    }

    /// Forgets the history.
    pub fn clear_history(&mut self) {
        self.stats.clear();
    }

    /// Takes `other`'s history (a reload that keeps the component).
    pub fn keep_history(&mut self, other: &Self) {
        self.restore(&other.stats);
    }

    /// The history's statistics, for a snapshot.
    pub fn stats(&self) -> &DecayingStats {
        &self.stats
    }

    /// Takes saved statistics as the history, weighted by this component's own span.
    pub fn restore(&mut self, stats: &DecayingStats) {
        let span = self.stats.span;
        self.stats = stats.clone();
        self.stats.span = span;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upper_tail_matches_known_values() {
        // Q(0) = 0.5, Q(1.959964) = 0.025, Q(4.264891) = 1e-5, Q(-1.644854) = 0.95.
        for (z, q) in [
            (0.0, 0.5),
            (1.959_964, 0.025),
            (4.264_891, 1e-5),
            (-1.644_854, 0.95),
            (8.0, 6.220_96e-16),
        ] {
            let got = ln_upper_tail(z).exp();
            assert!((got - q).abs() / q < 1e-5, "Q({z}) = {got}, want {q}");
        }
    }

    #[test]
    fn decaying_stats_are_the_plain_mean_and_variance_until_the_span() {
        let mut s = DecayingStats::new(10);
        for x in [1.0, 2.0, 3.0, 4.0] {
            s.push(x);
        }
        assert!((s.mean() - 2.5).abs() < 1e-12);
        assert!((s.sd() - 1.25f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn an_error_far_in_the_learned_tail_has_a_ratio_over_one() {
        let mut l = Likelihood::new(1000, 1e-5);
        for i in 0..200 {
            l.update(1.0 + 0.1 * f64::from(i % 7), true);
        }
        assert!(l.update(1.2, true) < 0.5);
        assert!(l.update(100.0, false) > 1.0);
    }

    #[test]
    fn an_error_need_not_beat_the_largest_learned_one() {
        // One large learned error (100) sets the onset reference; an error of 10 is a
        // tenth of it, but improbable under the learned errors' distribution.
        let mut l = Likelihood::new(1000, 3e-4);
        for i in 0..200 {
            l.update(1.0 + 0.05 * f64::from(i % 5), true);
        }
        l.update(100.0, true);
        assert!(l.update(10.0, false) > 1.0);
        assert!(l.update(1.1, false) < 0.2);
    }

    #[test]
    fn scoring_through_the_filter_reports_what_filtering_the_ratio_reports() {
        let (mut a, mut b) = (Likelihood::new(500, 3e-4), Likelihood::new(500, 3e-4));
        let (mut fa, mut fb) = (OnsetFilter::new(20), OnsetFilter::new(20));
        let mut reported = 0;
        for i in 0..3000_u32 {
            // A noisy error with bursts, learned unless large.
            let burst = if i % 400 > 390 { 40.0 } else { 1.0 };
            let error = burst * (1.0 + 0.3 * f64::from((i * 7919) % 97) / 97.0);
            let learn = burst == 1.0;
            let want = fa.report(a.update(error, learn));
            let got = b.score(error, learn, &mut fb);
            assert_eq!(got, want, "window {i}");
            reported += usize::from(got > 0.0);
        }
        assert!(reported > 10, "the test reaches reported scores: {reported}");
    }

    #[test]
    fn nothing_is_said_before_the_history_holds_enough() {
        let mut l = Likelihood::new(1000, 1e-5);
        for _ in 0..MIN_HISTORY - 1 {
            l.update(1.0, true);
        }
        assert_eq!(l.update(1e9, false), 0.0);
    }
}
