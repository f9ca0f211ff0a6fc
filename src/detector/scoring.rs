//! Scoring: a window's errors under the model in force, the rolling-quantile threshold
//! they are compared with, and the scoring strategy that turns them into
//! `anomaly_score` (`[threshold]`, `[score]`).
//!
//! Scoring is split in two so the learning policy can decide in between:
//! [`Scoring::judge`] reads only past data (the threshold before this score joins it);
//! [`Scoring::finish`] computes the anomaly score and learns the window's errors when
//! the policy says so. A new model rebuilds the score history ([`Scoring::rebuild`])
//! from its scores of the training windows, most of them worked out where it trained
//! ([`Rescored`]).

use super::relearn;
use crate::config::{DetectorConfig, ScoreSource, ScoreStrategy, SensorThreshold};
use crate::likelihood::{DecayingStats, Likelihood};
use crate::model::{Model, WindowScores, Workspace};
use crate::range::RecentRange;
use crate::score::{AnomalyScorer, OnsetFilter};
use crate::threshold::{RollingMax, RollingQuantile};
use crate::trainer::{Stamp, TrainingBuffer};

/// A new model's scores of its training job's windows, worked out where the job ran (the
/// daemon's training thread), so that installing the model does not rescore up to
/// `training.buffer` windows on the detector's task while readings of other sensors
/// wait. [`Scoring::rebuild`] takes what it needs for the windows the buffer still holds
/// and scores only those pushed since the job.
#[derive(Clone, Debug)]
pub struct Rescored {
    /// The job's windows: which buffer state `values` belong to.
    stamp: Stamp,
    /// The score they are of (a reload may change `threshold.score` meanwhile).
    source: ScoreSource,
    /// Per job window, oldest first: the thresholded score and the newest reading's
    /// squared z-score (the point reference's error).
    values: Vec<(f64, f64)>,
}

impl Rescored {
    /// Scores every window of `windows` (a job's) with `model`, as the rebuild would.
    pub fn new(windows: &TrainingBuffer, model: &Model, source: ScoreSource) -> Self {
        let mut ws = Workspace::default();
        let values = (windows.newest(windows.len()))
            .map(|w| window_values(model, &w, source, &mut ws))
            .collect();
        Self {
            stamp: windows.stamp(),
            source,
            values,
        }
    }

    /// The values of `buffer`'s oldest windows, those it held when the job was made
    /// (each index is the buffer's); `None` when `buffer` is not that job's buffer or
    /// `source` not the score they are of.
    fn covering(&self, buffer: &TrainingBuffer, source: ScoreSource) -> Option<&[(f64, f64)]> {
        (source == self.source).then_some(())?;
        let new = usize::try_from(buffer.pushed_since(self.stamp)?).ok()?;
        let covered = buffer.len().saturating_sub(new);
        let start = self.values.len().checked_sub(covered)?;
        Some(&self.values[start..])
    }
}

/// A window's thresholded score under `model` and its newest reading's squared z-score:
/// what a rebuild learns of it.
fn window_values(model: &Model, raw: &[f64], source: ScoreSource, ws: &mut Workspace) -> (f64, f64) {
    let value = source.of_window(model, raw, ws);
    (value, ws.newest_z_error(model.channels))
}

/// A window's errors against the threshold in force, before anything learns them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Judged {
    pub(super) scores: WindowScores,
    /// The thresholded score (`threshold.score`).
    pub(super) value: f64,
    /// The alert threshold: `threshold.margin` × `quantile`, at least the floor.
    pub(super) threshold: Option<f64>,
    /// The rolling quantile, from past scores only, once `threshold.min_scores` are in.
    quantile: Option<f64>,
    /// `value` is over `threshold`.
    pub(super) over: bool,
}

impl Judged {
    /// Whether `value` is over the rolling quantile (not necessarily the threshold).
    pub(super) fn beyond_quantile(&self) -> bool {
        self.quantile.is_some_and(|q| self.value > q)
    }
}

/// The `onset` strategy's state.
#[derive(Clone, Debug)]
struct Onset {
    window: AnomalyScorer,
    /// Reference of the newest reading's own error (`score.point`).
    point: Option<AnomalyScorer>,
    range: Option<RecentRange>,
    /// The window error's likelihood (`score.likelihood_tail`), with its own onset rule.
    likelihood: Option<(Likelihood, OnsetFilter)>,
    /// After an `anomaly_score` of at least 0.5, only a larger one is reported for
    /// `rest_rows` windows (`score.rest_rows`).
    rest: Rest,
}

/// The rest period after an event (the idea of CAD OSE's detector in NAB): windows left
/// in it and the score that started it.
#[derive(Clone, Copy, Debug, Default)]
struct Rest {
    rows: usize,
    left: usize,
    level: f64,
}

impl Rest {
    fn new(rows: usize) -> Self {
        Self {
            rows,
            ..Self::default()
        }
    }

    /// `score`, or 0 when it falls in the rest period of a larger one.
    fn report(&mut self, score: f64) -> f64 {
        let resting = self.left > 0;
        self.left = self.left.saturating_sub(1);
        if resting && score <= self.level {
            return 0.0;
        }
        if self.rows > 0 && score >= 0.5 {
            self.left = self.rows;
            self.level = score;
        }
        score
    }
}

/// One sensor's scoring state.
#[derive(Clone, Debug)]
pub(super) struct Scoring {
    workspace: Workspace,
    /// This sensor's quantile and floor, resolved from the overrides once.
    limits: SensorThreshold,
    threshold: RollingQuantile,
    onset: Option<Onset>,
}

impl Scoring {
    pub(super) fn new(config: &DetectorConfig, sensor: &str, channels: usize) -> Self {
        let limits = config.threshold.for_sensor(sensor);
        Self {
            workspace: Workspace::default(),
            limits,
            threshold: RollingQuantile::new(config.threshold.window, limits.quantile.get()),
            onset: new_onset(config.score, channels),
        }
    }

    /// Applies new `[threshold]` and `[score]` settings (SIGHUP), keeping the histories.
    pub(super) fn reconfigure(&mut self, config: &DetectorConfig, sensor: &str, channels: usize) {
        self.limits = config.threshold.for_sensor(sensor);
        (self.threshold).reconfigure(config.threshold.window, self.limits.quantile.get());
        let (window, point) = self.references();
        let old_range = self.onset.as_mut().and_then(|o| o.range.take());
        let old_likelihood = self.onset.as_mut().and_then(|o| o.likelihood.take());
        self.onset = new_onset(config.score, channels);
        if let Some(o) = self.onset.as_mut() {
            restore_references(o, window.as_ref(), point.as_ref());
            // Keep what the range has seen when its settings did not change.
            if let (Some(new), Some(old)) = (&o.range, old_range) {
                if new.settings() == old.settings() {
                    o.range = Some(old);
                }
            }
            if let (Some((new, _)), Some((old, _))) = (o.likelihood.as_mut(), &old_likelihood) {
                new.keep_history(old);
            }
        }
    }

    /// Sees every accepted reading (the recent range follows readings, not windows).
    pub(super) fn observe(&mut self, values: &[f64]) {
        if let Some(range) = self.onset.as_mut().and_then(|o| o.range.as_mut()) {
            range.update(values);
        }
    }

    /// The window's errors against the threshold; learns nothing.
    pub(super) fn judge(&mut self, model: &Model, raw: &[f64], config: &DetectorConfig) -> Judged {
        let scores = model.score(raw, &mut self.workspace);
        let value = config.threshold.score.pick(&scores);
        let quantile = (self.threshold.len() >= config.threshold.min_scores)
            .then(|| self.threshold.quantile())
            .flatten();
        let threshold = quantile.map(|q| (q * config.threshold.margin).max(self.limits.floor));
        Judged {
            scores,
            value,
            threshold,
            quantile,
            over: threshold.is_some_and(|t| value > t),
        }
    }

    /// The window's anomaly score. With `learn` its errors join the threshold window
    /// and the strategy's references; with `censor` (a window over the threshold) the
    /// threshold window records it too. Either way the threshold window records a score
    /// above the rolling quantile as the quantile itself: a fault, or the scores
    /// between the quantile and the alert threshold, cannot lift the threshold, and
    /// leaving them out cannot make it sink (a quantile of only the values under it
    /// would drift lower at every update).
    pub(super) fn finish(&mut self, j: &Judged, channels: usize, learn: bool, censor: bool) -> f64 {
        if learn || censor {
            self.threshold
                .push(j.quantile.map_or(j.value, |q| j.value.min(q)));
        }
        let Some(onset) = self.onset.as_mut() else {
            // `ratio`: how far towards (and past) the threshold, 0.5 at it.
            return match j.threshold {
                Some(t) if t > 0.0 => j.value / (j.value + t),
                Some(_) => 1.0,
                None => 0.0,
            };
        };
        let mut score = onset.window.update_learning(j.value, learn);
        if let Some((likelihood, filter)) = onset.likelihood.as_mut() {
            score = score.max(likelihood.score(j.value, learn, filter));
        }
        if let Some(point) = onset.point.as_mut() {
            let e = self.workspace.newest_z_error(channels);
            score = score.max(point.update_learning(e, learn));
        }
        // A reading beyond everything of the last `range_rows` readings is as anomalous
        // as a score can say, whatever the reconstruction.
        if onset.range.as_ref().is_some_and(|r| r.outside().contains(&true)) {
            score = 1.0;
        }
        onset.rest.report(score)
    }

    /// After a new model: the strategy's references become the new model's errors on
    /// the newest training windows (so they describe the model that is scoring), and,
    /// on a re-baseline, so does the threshold window. A re-baseline leaves out the
    /// newest `alert_windows` of the buffer, the accepted alert's own windows: the new
    /// model learns them, but the change they hold (the step from the old normal to
    /// the new one) is not a normal error, and as a reference it would mute every later
    /// event smaller than it (docs/quality.md, session 6). The windows `rescored`
    /// covers are not scored again. The threshold window is rebuilt in the same way,
    /// from the new model's errors, when the new model's error level on the windows
    /// both it and the `previous` model learned (that model, and how many of the
    /// buffer's newest windows it never trained on) has moved out of
    /// [`relearn::changed`]'s band: the old scores are in another model's units.
    /// Returns the ratio of the two models' error levels when that happened.
    pub(super) fn rebuild(
        &mut self,
        model: &Model,
        buffer: &TrainingBuffer,
        config: &DetectorConfig,
        rebaseline: Option<usize>,
        rescored: Option<&Rescored>,
        previous: Option<(&Model, usize)>,
    ) -> Option<f64> {
        let history = match config.score {
            ScoreStrategy::Onset(o) => o.history.get(),
            ScoreStrategy::Ratio => 0,
        };
        let source = config.threshold.score;
        let relearned = (rebaseline.is_none())
            .then_some(previous)
            .flatten()
            .and_then(|(old, unseen)| {
                relearn::changed(old, model, buffer, unseen, source, &mut self.workspace)
            });
        let threshold_too = rebaseline.is_some() || relearned.is_some();
        if history == 0 && !threshold_too {
            return relearned;
        }
        let window = config.threshold.window;
        let n = if threshold_too {
            history.max(window)
        } else {
            history
        };
        // At least one window stays, whatever the alert held.
        let skip = rebaseline.unwrap_or(0).min(buffer.len().saturating_sub(1));
        let held = (buffer.len() - skip).min(n);
        // The held windows' values: those the job scored, then the newer ones.
        let first = buffer.len() - skip - held;
        let known = (rescored.and_then(|r| r.covering(buffer, config.threshold.score))).unwrap_or(&[]);
        let known = known.get(first..).unwrap_or(&[]);
        let known = &known[..known.len().min(held)];
        let mut values = known.to_vec();
        for w in buffer.newest(held + skip - known.len()).take(held - known.len()) {
            values.push(window_values(
                model,
                &w,
                config.threshold.score,
                &mut self.workspace,
            ));
        }
        if let Some(o) = self.onset.as_mut() {
            o.window.clear_history();
            if let Some((l, _)) = o.likelihood.as_mut() {
                l.clear_history();
            }
            if let Some(p) = o.point.as_mut() {
                p.clear_history();
            }
        }
        if threshold_too {
            self.threshold = RollingQuantile::new(window, self.limits.quantile.get());
        }
        for (i, (value, z)) in values.into_iter().enumerate() {
            if let Some(o) = self.onset.as_mut() {
                if i + history >= held {
                    o.window.learn(value);
                    if let Some((l, _)) = o.likelihood.as_mut() {
                        l.learn(value);
                    }
                    if let Some(p) = o.point.as_mut() {
                        p.learn(z);
                    }
                }
            }
            if threshold_too && i + window >= held {
                self.threshold.push(value);
            }
        }
        relearned
    }

    /// Scores in the threshold window.
    pub(super) fn threshold_len(&self) -> usize {
        self.threshold.len()
    }

    /// This sensor's quantile level.
    pub(super) fn quantile(&self) -> f64 {
        self.limits.quantile.get()
    }

    /// The workspace of the last scored window (per-channel errors).
    pub(super) fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// Per channel, whether the newest reading left its recent range.
    pub(super) fn outside_range(&self) -> &[bool] {
        self.onset
            .as_ref()
            .and_then(|o| o.range.as_ref())
            .map_or(&[], |r| r.outside())
    }

    /// Threshold window, window-error reference and point reference (`None`: the
    /// strategy has none).
    pub(super) fn snapshot(&self) -> (RollingQuantile, Option<RollingMax>, Option<RollingMax>) {
        let (window, point) = self.references();
        (self.threshold.clone(), window, point)
    }

    /// Restores [`Self::snapshot`]'s state: the threshold window takes this sensor's
    /// configured capacity and quantile, the references their `history`.
    pub(super) fn restore(
        &mut self,
        mut threshold: RollingQuantile,
        window: Option<&RollingMax>,
        point: Option<&RollingMax>,
    ) {
        threshold.reconfigure(self.threshold.capacity(), self.limits.quantile.get());
        self.threshold = threshold;
        if let Some(o) = self.onset.as_mut() {
            restore_references(o, window, point);
        }
    }

    /// The likelihood component's statistics, for a snapshot (`None`: it is off).
    pub(super) fn likelihood_stats(&self) -> Option<DecayingStats> {
        let (l, _) = self.onset.as_ref()?.likelihood.as_ref()?;
        Some(l.stats().clone())
    }

    /// Restores [`Self::likelihood_stats`] into the likelihood component, if it is on.
    pub(super) fn restore_likelihood(&mut self, stats: &DecayingStats) {
        if let Some((l, _)) = self.onset.as_mut().and_then(|o| o.likelihood.as_mut()) {
            l.restore(stats);
        }
    }

    fn references(&self) -> (Option<RollingMax>, Option<RollingMax>) {
        match &self.onset {
            Some(o) => (
                Some(o.window.reference().clone()),
                o.point.as_ref().map(|p| p.reference().clone()),
            ),
            None => (None, None),
        }
    }
}

fn restore_references(o: &mut Onset, window: Option<&RollingMax>, point: Option<&RollingMax>) {
    if let Some(w) = window {
        o.window.restore(w);
    }
    if let (Some(p), Some(saved)) = (o.point.as_mut(), point) {
        p.restore(saved);
    }
}

fn new_onset(strategy: ScoreStrategy, channels: usize) -> Option<Onset> {
    let ScoreStrategy::Onset(o) = strategy else {
        return None;
    };
    Some(Onset {
        window: AnomalyScorer::new(o.history.get(), o.onset_rows),
        point: o.point.then(|| AnomalyScorer::new(o.history.get(), o.onset_rows)),
        range: o
            .range
            .map(|r| RecentRange::new(channels, r.rows.get(), r.margin)),
        likelihood: o.likelihood_tail.map(|tail| {
            (
                Likelihood::new(o.history.get(), tail),
                OnsetFilter::new(o.onset_rows),
            )
        }),
        rest: Rest::new(o.rest_rows),
    })
}

#[cfg(test)]
mod tests {
    use super::{Rescored, Rest};
    use crate::config::ScoreSource;
    use crate::trainer::TrainingBuffer;

    #[test]
    fn a_jobs_values_line_up_with_the_windows_the_buffer_still_holds() {
        // A full buffer of 10 one-value windows; the job is a clone. Each job window's
        // value is its own index, so a covered buffer window must get its value back.
        let mut buffer = TrainingBuffer::new(10, 1, 1);
        let mut pushed = 0.0;
        let mut push = |b: &mut TrainingBuffer, n: usize| {
            for _ in 0..n {
                b.push(&[pushed]);
                pushed += 1.0;
            }
        };
        push(&mut buffer, 13);
        let job = buffer.clone();
        let values: Vec<(f64, f64)> = job.windows().map(|w| (f64::from(w[0]), 0.0)).collect();
        let rescored = Rescored {
            stamp: job.stamp(),
            source: ScoreSource::Ae,
            values,
        };
        for more in [0, 3, 9, 10, 12] {
            let mut now = job.clone();
            push(&mut now, more);
            let covered = rescored
                .covering(&now, ScoreSource::Ae)
                .expect("the job's own buffer");
            assert_eq!(covered.len(), 10usize.saturating_sub(more), "{more} pushed since");
            for (v, w) in covered.iter().zip(now.windows()) {
                assert_eq!(v.0, f64::from(w[0]), "{more} pushed since");
            }
        }
        // Another buffer, or this one cleared, is not the job's.
        let mut other = TrainingBuffer::new(10, 1, 1);
        push(&mut other, 13);
        assert!(rescored.covering(&other, ScoreSource::Ae).is_none());
        let mut cleared = job.clone();
        cleared.clear();
        push(&mut cleared, 13);
        assert!(rescored.covering(&cleared, ScoreSource::Ae).is_none());
        // Nor are they the scores of another source.
        assert!(rescored.covering(&job, ScoreSource::Pca).is_none());
    }

    #[test]
    fn in_the_rest_period_only_a_larger_score_is_reported() {
        let mut rest = Rest::new(3);
        assert_eq!(rest.report(0.4), 0.4);
        assert_eq!(rest.report(0.6), 0.6);
        // Under the event that started the rest period: not reported.
        assert_eq!(rest.report(0.55), 0.0);
        assert_eq!(rest.report(0.3), 0.0);
        // Larger: reported, and it starts a rest period of its own.
        assert_eq!(rest.report(0.8), 0.8);
        for _ in 0..3 {
            assert_eq!(rest.report(0.7), 0.0);
        }
        // Once the period has passed, anything is reported again.
        assert_eq!(rest.report(0.7), 0.7);
    }

    #[test]
    fn no_rest_period_when_off() {
        let mut rest = Rest::new(0);
        assert_eq!(rest.report(0.9), 0.9);
        assert_eq!(rest.report(0.6), 0.6);
    }
}
