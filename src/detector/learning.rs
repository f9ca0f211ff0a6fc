//! The learning policy, in one place: what a sensor's detector learns from, when it
//! asks for a model, and when an alert is accepted as the new normal (`[learning]`,
//! `[training]`).
//!
//! - A window over the threshold is learned by nothing: not the score references, not
//!   the training buffer, and the threshold window records it only as the threshold's
//!   own value (censored), so the fault cannot lift the threshold. While an alert is
//!   raised, those windows are held aside for acceptance.
//! - When the alert clears (`recovered`), the held windows are dropped: the fault that
//!   comes back is as new as the first time.
//! - When an alert has stayed raised for `accept_after` (reading time), it is accepted:
//!   the held windows join the training buffer, a model is trained at once, and the
//!   threshold and score references are rebuilt from the new model's errors. A young
//!   model's alert (see below) is accepted sooner, once it has held as many windows as
//!   the model learned from: a model that knows two minutes of a pump still settling
//!   otherwise held its first alert for the whole hour (docs/quality.md, session 8).
//!   It is also accepted at a retrain check that finds it holding at least half a
//!   retrain period of windows: the young model is retrained there anyway, and without
//!   the alert's windows, half or more of what is new since the last check, it would
//!   know no more of them than the model that raised the alert, so the alert would only
//!   carry on. Until the new model is installed the sensor is `accepted`: every window
//!   joins the buffer, nothing else learns, and no alert is raised.
//! - Retraining is checked every `retrain_every` windows. A young model is retrained at
//!   every check; a grown one only when its error has drifted (`drift_tolerance`): the
//!   mean score of the learned windows since the last check against that of its first
//!   period in force, or when far more of the windows it scored than the quantile lets
//!   through were over the rolling quantile (a drift the model scores over the
//!   threshold, which nothing learns). Most checks of a stationary signal then cost
//!   nothing (half of a whole-NAB replay's CPU time went to retrains that changed
//!   nothing; docs/quality.md, session 5).

use crate::config::DetectorConfig;
use crate::trainer::TrainingBuffer;

/// A model whose buffer holds fewer than this many retrain periods of windows is young:
/// it is retrained at every check, whatever its error does.
const GROWN_CHECKS: usize = 4;

/// Most retrain checks a grown model may pass without a retrain.
const MAX_SKIPPED: usize = 8;

/// A grown model is retrained at a check when more than this many times the share
/// `1 − q` of the windows it scored since the last check were over the rolling
/// q-quantile (2 % at the default 0.999). The drift of the mean error sees only learned
/// windows, and a model that has aged into a drift scores the drifting windows over the
/// threshold, where nothing learns them: on SKAB's anomaly-free recording one model
/// scored 3,500 windows, 11–100 % of each period's over the quantile, without a retrain
/// (docs/quality.md, session 9).
const BEYOND_FACTOR: f64 = 20.0;

/// Where the sensor is in a re-baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Learning as usual.
    Normal,
    /// An alert was accepted; `job_out`: the re-baselining job has been handed out.
    Accepted { job_out: bool },
}

/// One sensor's learning state.
#[derive(Clone, Debug)]
pub(super) struct Learning {
    /// Windows the next model learns from.
    buffer: TrainingBuffer,
    /// Windows of the raised alert, kept for acceptance.
    held: TrainingBuffer,
    phase: Phase,
    /// A job is out and its model not yet installed.
    training: bool,
    windows_since_job: usize,
    /// Windows pushed into the buffer since the last job was handed out.
    pushed_since_job: usize,
    /// `pushed_since_job` when the last job was handed out: what that job saw new.
    fresh_in_job: usize,
    /// Sum and count of the learned windows' scores since the last retrain check.
    period: (f64, usize),
    /// Scored windows since the last check, and how many scored over the rolling quantile.
    beyond: (usize, usize),
    /// Mean learned score of the model's first period in force, `None` until then.
    baseline: Option<f64>,
    /// Retrain checks passed without retraining since the last job.
    skipped: usize,
    /// Windows of the accepted alert in the buffer: those it held plus those learned
    /// during the re-baseline (see [`Learning::alert_windows`]).
    alert_windows: usize,
}

/// What the installed model is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Installed {
    /// A first model or a scheduled retrain.
    Retrain,
    /// The model of an accepted alert: rebuild the threshold too.
    Rebaseline,
}

impl Learning {
    pub(super) fn new(config: &DetectorConfig, width: usize, step: usize) -> Self {
        Self {
            buffer: TrainingBuffer::new(config.training.buffer, width, step),
            held: TrainingBuffer::new(config.training.buffer, width, step),
            phase: Phase::Normal,
            training: false,
            windows_since_job: 0,
            pushed_since_job: 0,
            fresh_in_job: 0,
            period: (0.0, 0),
            beyond: (0, 0),
            baseline: None,
            skipped: 0,
            alert_windows: 0,
        }
    }

    /// Counts a scored window, and whether it scored over the rolling quantile (for the
    /// retrain check, see [`Self::retrain_at_check`]); returns whether its errors join
    /// the threshold and the score references (and the window the training buffer):
    /// only a window under the threshold (`over` false), and none during a re-baseline.
    pub(super) fn scored(&mut self, over: bool, beyond: bool) -> bool {
        self.beyond.0 += 1;
        self.beyond.1 += usize::from(beyond);
        !over && !self.accepted()
    }

    /// Files a window (scored or not) after the alert lifecycle has seen it: into the
    /// training buffer, aside while an alert is raised, or nowhere.
    pub(super) fn keep(&mut self, window: &[f64], learned: bool, raised: bool, score: Option<f64>) {
        if let (true, Some(s)) = (learned, score) {
            self.period.0 += s;
            self.period.1 += 1;
        }
        if self.accepted() {
            self.alert_windows += 1;
        }
        if self.accepted() || learned {
            self.buffer.push(window);
            self.pushed_since_job += 1;
        } else if raised {
            self.held.push(window);
        }
        self.windows_since_job += 1;
    }

    /// The alert recovered: what it held is not normal.
    pub(super) fn recovered(&mut self) {
        self.held.clear();
    }

    /// Whether an alert raised at `raised_at` is old enough at `ts` to be accepted: it
    /// has lasted `accept_after`, or it is a young model's and
    /// [`Self::young_alert_due`] says so.
    pub(super) fn due_for_acceptance(
        &self,
        raised_at: Option<f64>,
        ts: f64,
        config: &DetectorConfig,
    ) -> bool {
        match (raised_at, config.learning.accept_after) {
            (Some(at), Some(after)) if !self.accepted() => {
                ts - at >= after.as_secs_f64() || self.young_alert_due(config)
            }
            _ => false,
        }
    }

    /// Whether a young model's raised alert is accepted on this window: it holds as
    /// many windows as the buffer the model learned from, or this window is a retrain
    /// check (the job would be due after it) and it holds at least half a retrain
    /// period. With fewer at a check it waits for the next one: a fault raised late in
    /// a period is not learned at once, and one that lasts is learned within a period
    /// and a half of its raise.
    fn young_alert_due(&self, config: &DetectorConfig) -> bool {
        let Some(every) = config.training.retrain_every.filter(|_| self.young(config)) else {
            return false;
        };
        // `keep` counts this window after the decision; a young model never skips a
        // check, so its checks come every `every` windows.
        let at_check = self.windows_since_job + 1 >= every;
        let held = self.held.len();
        held >= self.buffer.len() || (at_check && 2 * held >= every)
    }

    /// Whether the model is young: retraining is on and the buffer holds fewer than
    /// [`GROWN_CHECKS`] retrain periods of windows (retrained at every check). Without
    /// retraining (a model trained once, as SKAB's protocol does) no model is young.
    fn young(&self, config: &DetectorConfig) -> bool {
        (config.training.retrain_every).is_some_and(|every| self.young_at(every))
    }

    /// Whether the buffer holds fewer than [`GROWN_CHECKS`] periods of `every` windows.
    fn young_at(&self, every: usize) -> bool {
        self.buffer.len() < GROWN_CHECKS * every
    }

    /// Accepts the raised alert: its windows become training data and a re-baseline
    /// starts.
    pub(super) fn accept(&mut self) {
        self.alert_windows = self.held.len();
        for w in self.held.newest(self.held.len()) {
            self.buffer.push(&w);
            self.pushed_since_job += 1;
        }
        self.held.clear();
        self.phase = Phase::Accepted { job_out: false };
    }

    /// The newest windows of the buffer that belong to the last accepted alert: the
    /// re-baseline trains on them but rebuilds the threshold and the score reference
    /// without them.
    pub(super) fn alert_windows(&self) -> usize {
        self.alert_windows
    }

    /// Whether a re-baseline is under way.
    pub(super) fn accepted(&self) -> bool {
        matches!(self.phase, Phase::Accepted { .. })
    }

    /// Windows of the buffer that are new since the previous job, as of the job just
    /// handed out (the newest ones).
    pub(super) fn fresh_in_job(&self) -> usize {
        self.fresh_in_job
    }

    /// Windows of the buffer the model in force never trained on, when the model of the
    /// job just back is installed: those new in that job and those pushed since it.
    pub(super) fn unseen_by_model(&self) -> usize {
        self.fresh_in_job + self.pushed_since_job
    }

    /// The training buffer.
    pub(super) fn buffer(&self) -> &TrainingBuffer {
        &self.buffer
    }

    /// Whether a model should be trained now (and marks the job out if so): the first
    /// once `min_windows` are in, then at retrain checks (see
    /// [`Self::retrain_at_check`]), and at once for a re-baseline.
    pub(super) fn job_due(&mut self, has_model: bool, quantile: f64, config: &DetectorConfig) -> bool {
        if self.training || self.buffer.len() < config.training.min_windows {
            return false;
        }
        let due = match self.phase {
            Phase::Accepted { job_out: false } => {
                self.phase = Phase::Accepted { job_out: true };
                true
            }
            Phase::Accepted { job_out: true } => false,
            Phase::Normal if !has_model => true,
            Phase::Normal => config.training.retrain_every.is_some_and(|every| {
                self.windows_since_job >= every * (self.skipped + 1)
                    && self.retrain_at_check(every, quantile, config.training.drift_tolerance)
            }),
        };
        if due {
            self.skipped = 0;
            self.training = true;
            self.windows_since_job = 0;
            self.fresh_in_job = self.pushed_since_job.min(self.buffer.len());
            self.pushed_since_job = 0;
        }
        due
    }

    /// At a retrain check (every `every` windows): whether to retrain now. A young
    /// model (buffer under [`GROWN_CHECKS`] × `every`) is, at every check; a grown
    /// one only when the mean error of the learned windows since the last check rose by
    /// more than `tolerance` over its first period's mean, when the windows it scored
    /// over the rolling `quantile` were more than [`BEYOND_FACTOR`] × `1 − quantile` of
    /// them, or when [`MAX_SKIPPED`] checks have passed without a retrain.
    fn retrain_at_check(&mut self, every: usize, quantile: f64, tolerance: Option<f64>) -> bool {
        let (sum, n) = std::mem::take(&mut self.period);
        let (scored, beyond) = std::mem::take(&mut self.beyond);
        let Some(tolerance) = tolerance else {
            return true;
        };
        if self.young_at(every) || n == 0 {
            return true;
        }
        let mean = sum / n as f64;
        let often_beyond = beyond as f64 > BEYOND_FACTOR * (1.0 - quantile) * scored as f64;
        let retrain = often_beyond
            || match self.baseline {
                None => {
                    self.baseline = Some(mean);
                    false
                }
                Some(base) => mean > base * (1.0 + tolerance) || self.skipped >= MAX_SKIPPED,
            };
        if !retrain {
            self.skipped += 1;
        }
        retrain
    }

    /// A job came back (`ok`: with a model). Says what kind of model it was; a failed
    /// re-baseline is tried again on the next window. The next model's drift baseline
    /// is taken afresh.
    pub(super) fn installed(&mut self, ok: bool) -> Installed {
        self.baseline = None;
        self.period = (0.0, 0);
        self.beyond = (0, 0);
        self.training = false;
        match self.phase {
            Phase::Accepted { job_out: true } if ok => {
                self.phase = Phase::Normal;
                Installed::Rebaseline
            }
            Phase::Accepted { job_out: true } => {
                self.phase = Phase::Accepted { job_out: false };
                Installed::Retrain
            }
            _ => Installed::Retrain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tolerance: f64) -> DetectorConfig {
        let text = format!(
            "[training]\nmin_windows = 10\nretrain_every = 10\nbuffer = 100\n\
             drift_tolerance = {tolerance}\n"
        );
        crate::config::Config::from_toml_str(&text).unwrap().detector
    }

    /// Feeds `n` learned windows, each scoring `score`; returns how many jobs were due
    /// (each installed at once).
    fn run(l: &mut Learning, c: &DetectorConfig, n: usize, score: f64) -> usize {
        let mut jobs = 0;
        for _ in 0..n {
            l.keep(&[0.0; 4], true, false, Some(score));
            assert!(l.scored(false, false));
            if l.job_due(true, 0.999, c) {
                jobs += 1;
                l.installed(true);
            }
        }
        jobs
    }

    #[test]
    fn a_stationary_grown_model_is_retrained_only_every_ninth_check() {
        let c = config(0.5);
        let mut l = Learning::new(&c, 4, 1);
        // Young: the buffer holds under 4 × 10 windows, every check retrains.
        assert_eq!(run(&mut l, &c, 39, 1.0), 3);
        // Grown and stationary from window 40: retrained at the 9th check (window 120),
        // then again 9 checks later (210).
        assert_eq!(run(&mut l, &c, 181, 1.0), 2);
    }

    #[test]
    fn a_drifting_error_retrains_at_the_next_check() {
        let c = config(0.5);
        let mut l = Learning::new(&c, 4, 1);
        run(&mut l, &c, 40, 1.0);
        // The first grown check (window 40) sets the baseline, the next is level.
        assert_eq!(run(&mut l, &c, 10, 1.0), 0);
        // The error doubles: retrained at the check that sees it.
        assert_eq!(run(&mut l, &c, 10, 2.0), 1);
    }

    /// Jobs due over one period of a grown model (sensor quantile `quantile`) in which 2
    /// of each 10 scored windows (20 %) are over the quantile and not learned; with
    /// `first_check`, the period ends at the first check of a new model, which
    /// otherwise only sets its drift baseline.
    fn period_with_a_fifth_beyond(first_check: bool, quantile: f64) -> usize {
        let c = config(0.5);
        let mut l = Learning::new(&c, 4, 1);
        run(&mut l, &c, 50, 1.0);
        if first_check {
            // The error doubles: a retrain at the check of window 60.
            assert_eq!(run(&mut l, &c, 10, 2.0), 1);
        }
        let mut jobs = 0;
        for i in 0..10 {
            let beyond = i % 5 == 0;
            assert_eq!(l.scored(beyond, beyond), !beyond);
            l.keep(&[0.0; 4], !beyond, false, Some(1.0));
            jobs += usize::from(l.job_due(true, quantile, &c));
        }
        jobs
    }

    #[test]
    fn a_grown_model_scoring_often_over_the_quantile_is_retrained_at_the_next_check() {
        // 20 % is over the 2 % that 20 × (1 − 0.999) allows, at a later check and at a
        // new model's first.
        assert_eq!(period_with_a_fifth_beyond(false, 0.999), 1);
        assert_eq!(period_with_a_fifth_beyond(true, 0.999), 1);
        // At q = 0.98 it is within the 40 % allowed.
        assert_eq!(period_with_a_fifth_beyond(false, 0.98), 0);
        assert_eq!(period_with_a_fifth_beyond(true, 0.98), 0);
    }

    #[test]
    fn tolerance_zero_retrains_at_every_check() {
        let c = config(0.0);
        let mut l = Learning::new(&c, 4, 1);
        assert_eq!(run(&mut l, &c, 200, 1.0), 20);
    }
}
