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
//!   threshold and score references are rebuilt from the new model's errors. Until the
//!   new model is installed the sensor is `accepted`: every window joins the buffer,
//!   nothing else learns, and no alert is raised.

use crate::config::DetectorConfig;
use crate::trainer::TrainingBuffer;

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
        }
    }

    /// Whether a scored window's errors join the threshold and the score references
    /// (and the window the training buffer): only a window under the threshold, and
    /// none during a re-baseline.
    pub(super) fn learns(&self, over: bool) -> bool {
        !over && !self.accepted()
    }

    /// Files a window (scored or not) after the alert lifecycle has seen it: into the
    /// training buffer, aside while an alert is raised, or nowhere.
    pub(super) fn keep(&mut self, window: &[f64], learned: bool, raised: bool) {
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

    /// Whether an alert raised at `raised_at` is old enough at `ts` to be accepted.
    pub(super) fn due_for_acceptance(
        &self,
        raised_at: Option<f64>,
        ts: f64,
        config: &DetectorConfig,
    ) -> bool {
        match (raised_at, config.learning.accept_after) {
            (Some(at), Some(after)) => !self.accepted() && ts - at >= after.as_secs_f64(),
            _ => false,
        }
    }

    /// Accepts the raised alert: its windows become training data and a re-baseline
    /// starts.
    pub(super) fn accept(&mut self) {
        for w in self.held.newest(self.held.len()) {
            self.buffer.push(&w);
            self.pushed_since_job += 1;
        }
        self.held.clear();
        self.phase = Phase::Accepted { job_out: false };
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

    /// The training buffer.
    pub(super) fn buffer(&self) -> &TrainingBuffer {
        &self.buffer
    }

    /// Whether a model should be trained now (and marks the job out if so): the first
    /// once `min_windows` are in, then every `retrain_every` windows, and at once for a
    /// re-baseline.
    pub(super) fn job_due(&mut self, has_model: bool, config: &DetectorConfig) -> bool {
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
            Phase::Normal => config
                .training
                .retrain_every
                .is_some_and(|n| self.windows_since_job >= n),
        };
        if due {
            self.training = true;
            self.windows_since_job = 0;
            self.fresh_in_job = self.pushed_since_job.min(self.buffer.len());
            self.pushed_since_job = 0;
        }
        due
    }

    /// A job came back (`ok`: with a model). Says what kind of model it was; a failed
    /// re-baseline is tried again on the next window.
    pub(super) fn installed(&mut self, ok: bool) -> Installed {
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
