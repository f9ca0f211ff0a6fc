//! One sensor's pipeline: its window and the stages each window goes through (drift
//! removal, scoring, the learning policy, the alert lifecycle), and the model it
//! scores with. [`super::Detector`] owns one per sensor and routes readings to it.

use std::sync::Arc;

use super::drift::Drift;
use super::learning::{Installed, Learning};
use super::reorder::{Held, Reorder};
use super::scoring::{Judged, Rescored, Scoring};
use super::stuck::Stuck;
use super::{Offered, Release, Scored, SensorState, Step, memory};
use crate::alert::severity::{IdFamily, alert_id};
use crate::alert::{
    AlertEvent, AlertEventKind, AlertState, AlertStep, ChannelContribution, ClearReason, Severity,
    StuckChannel,
};
use crate::config::DetectorConfig;
use crate::model::Model;
use crate::reading::SensorId;
use crate::reading::Values;
use crate::trainer::TrainJob;
use crate::window::{Push, Window, WindowParams, WindowReject};

/// One sensor's state: the window and the stages a window goes through.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub(super) sensor: SensorId,
    pub(super) channel_names: Vec<String>,
    /// Readings waiting for older ones before they enter the window.
    pub(super) reorder: Reorder,
    pub(super) window: Window,
    /// The newest window, flattened, after per-window drift removal.
    pub(super) raw: Vec<f64>,
    pub(super) model: Option<Arc<Model>>,
    pub(super) drift: Drift,
    pub(super) scoring: Scoring,
    /// Each channel's run of unchanged readings.
    pub(super) stuck: Stuck,
    pub(super) learning: Learning,
    pub(super) alert: AlertState,
    /// Why the last alert was cleared, if one was.
    pub(super) last_clear: Option<ClearReason>,
    /// Estimated bytes once full ([`memory::pipeline_bytes`]), charged to the budget.
    pub(super) bytes: usize,
    /// When its last reading arrived (the `arrived` clock of [`Detector::offer`]).
    pub(super) last_seen: f64,
}

impl Pipeline {
    pub(super) fn new(sensor: SensorId, channel_names: Vec<String>, config: &DetectorConfig) -> Self {
        let params = WindowParams {
            channels: channel_names.len(),
            ..config.window.clone()
        };
        let width = params.size * params.channels;
        Self {
            reorder: Reorder::new(config.reorder_rows),
            window: Window::new(&params),
            raw: vec![0.0; width],
            model: None,
            drift: Drift::new(config, &channel_names),
            scoring: Scoring::new(config, sensor.as_str(), channel_names.len()),
            stuck: Stuck::default(),
            learning: Learning::new(config, width, params.stride * params.channels),
            alert: AlertState::default(),
            last_clear: None,
            bytes: memory::pipeline_bytes(config, channel_names.len()),
            last_seen: 0.0,
            sensor,
            channel_names,
        }
    }

    /// The current model's version, 0 before the first.
    pub fn model_version(&self) -> u64 {
        self.model.as_ref().map_or(0, |m| m.version)
    }

    /// The window is full (false while it fills at start and after a gap cleared it).
    pub fn window_ready(&self) -> bool {
        self.window.is_full()
    }

    /// How many gaps in the telemetry cleared the window.
    pub fn window_resets(&self) -> u64 {
        self.window.resets()
    }

    /// Scores in the threshold window.
    pub fn threshold_len(&self) -> usize {
        self.scoring.threshold_len()
    }

    /// Whether an alert is raised.
    pub fn alert_raised(&self) -> bool {
        self.alert.is_raised()
    }

    /// Whether the sensor holds the level a fault subsided to (after a `subsided` clear,
    /// until it recovers or the episode is accepted; see [`crate::alert::Subside`]).
    pub fn holding(&self) -> bool {
        self.alert.holding()
    }

    /// Channel names, in reading order.
    pub fn channel_names(&self) -> &[String] {
        &self.channel_names
    }

    /// The threshold has `threshold.min_scores` scores: alerts are possible.
    pub fn threshold_ready(&self, config: &DetectorConfig) -> bool {
        self.scoring.threshold_len() >= config.threshold.min_scores
    }

    /// Why the last alert was cleared (`None` before the first clear since start).
    pub fn last_clear(&self) -> Option<ClearReason> {
        self.last_clear
    }

    /// The sensor's state.
    pub fn state(&self, config: &DetectorConfig) -> SensorState {
        if self.learning.accepted() {
            SensorState::Accepted
        } else if self.alert.is_raised() {
            SensorState::Alert
        } else if self.model.is_none() || !self.threshold_ready(config) {
            SensorState::WarmingUp
        } else {
            SensorState::Normal
        }
    }

    /// Puts a reading into the reorder buffer after the window's checks; a resend of
    /// a reading already taken is a duplicate (see [`reorder`]).
    pub(super) fn offer(&mut self, ts: f64, values: &[f64], arrived: f64) -> Result<Offered, WindowReject> {
        self.last_seen = arrived;
        match self.window.check(ts, values) {
            Ok(()) if self.reorder.seen(ts) => Err(WindowReject::Duplicate { ts }),
            Ok(()) => {
                let late = self.reorder.insert(Held {
                    ts,
                    values: Values::from_slice(values),
                    arrived,
                });
                Ok(if late { Offered::Reordered } else { Offered::Held })
            }
            Err(WindowReject::OutOfOrder { .. } | WindowReject::Duplicate { .. })
                if self.reorder.seen(ts) =>
            {
                Err(WindowReject::Duplicate { ts })
            }
            Err(reject) => Err(reject),
        }
    }

    /// The next held reading `release` lets go, processed.
    pub(super) fn release(
        &mut self,
        release: Release,
        config: &DetectorConfig,
    ) -> Option<(f64, Result<Step, WindowReject>)> {
        let held = match release {
            Release::Due => self.reorder.pop_due(),
            Release::ArrivedBy(cutoff) => {
                (self.reorder.pop_due()).or_else(|| self.reorder.release_waited(cutoff))
            }
            Release::All => self.reorder.pop_any(),
        }?;
        self.reorder.record(held.ts);
        Some((held.ts, self.push(held.ts, &held.values, config)))
    }

    /// Readings waiting in the reorder buffer.
    pub fn held(&self) -> usize {
        self.reorder.len()
    }

    pub(super) fn push(
        &mut self,
        ts: f64,
        values: &[f64],
        config: &DetectorConfig,
    ) -> Result<Step, WindowReject> {
        let push = self.window.push(ts, self.drift.apply(values));
        if let Push::Rejected(reason) = push {
            return Err(reason);
        }
        self.drift.commit(values);
        self.scoring.observe(values);
        self.stuck.observe(values);
        let (scored, event, train) = match push {
            Push::Ready => self.on_window(ts, config),
            _ => (None, None, None),
        };
        Ok(Step {
            scored,
            event: event.map(Box::new),
            train: train.map(Box::new),
            state: self.state(config),
        })
    }

    pub(super) fn on_window(
        &mut self,
        ts: f64,
        config: &DetectorConfig,
    ) -> (Option<Scored>, Option<AlertEvent>, Option<TrainJob>) {
        self.window.copy_into(&mut self.raw);
        self.drift.window(&mut self.raw);
        let mut scored = None;
        let mut event = None;
        if let Some(model) = self.model.clone() {
            let judged = self.scoring.judge(&model, &self.raw, config);
            let stuck = self.stuck.any(config.alert.stuck_rows);
            // A stuck channel's window is anomalous however well it reconstructs: over
            // the threshold for the learning policy and the alert lifecycle alike.
            let over = judged.over || stuck;
            let learned = self.learning.scored(over, judged.beyond_quantile());
            let censor = over && !self.learning.accepted();
            let anomaly_score = self
                .scoring
                .finish(&judged, self.channel_names.len(), learned, censor);
            let s = Scored {
                scores: judged.scores,
                threshold: judged.threshold,
                anomaly_score,
                over: judged.over,
                stuck,
                learned,
                model_version: model.version,
            };
            if !self.learning.accepted() && judged.threshold.is_some() {
                event = self.advance_alert(&model, &judged, &s, over, ts, config);
            }
            scored = Some(s);
        }
        let learned = scored.as_ref().is_none_or(|s| s.learned);
        let score = scored.as_ref().map(|s| config.threshold.score.pick(&s.scores));
        self.learning
            .keep(&self.raw, learned, self.alert.in_episode(), score);
        (scored, event, self.maybe_job(config))
    }

    /// Feeds the window (`over`: its score over the threshold, or a channel stuck) to the
    /// alert lifecycle; accepts a raised alert that is old enough. Returns the event this
    /// window causes.
    pub(super) fn advance_alert(
        &mut self,
        model: &Model,
        j: &Judged,
        s: &Scored,
        over: bool,
        ts: f64,
        config: &DetectorConfig,
    ) -> Option<AlertEvent> {
        // Read before the lifecycle moves: a clear forgets the raise it ends.
        let raise = (self.alert.episode_since(), self.alert.severity());
        let (kind, reason) = if self
            .learning
            .due_for_acceptance(self.alert.episode_since(), ts, config)
        {
            self.alert.clear(&config.alert);
            self.learning.accept();
            self.stuck.accept(config.alert.stuck_rows);
            (AlertEventKind::Cleared, Some(ClearReason::Accepted))
        } else {
            // A stuck channel's window is over whatever its error: it never subsides.
            let score = if s.stuck { f64::INFINITY } else { j.value };
            match self.alert.update(&config.alert, over, score, ts)? {
                AlertStep::Recovered => {
                    self.learning.recovered();
                    (AlertEventKind::Cleared, Some(ClearReason::Recovered))
                }
                AlertStep::Subsided => (AlertEventKind::Cleared, Some(ClearReason::Subsided)),
                AlertStep::Settled => {
                    self.learning.recovered();
                    return None;
                }
                AlertStep::Raised => (AlertEventKind::Raised, None),
            }
        };
        // Checked by the caller: events come only once the threshold is ready.
        let threshold = j.threshold.unwrap_or(f64::INFINITY);
        let over_by = if threshold > 0.0 {
            j.value / threshold
        } else {
            f64::INFINITY
        };
        let (raised_at, severity) = match kind {
            AlertEventKind::Cleared => {
                self.last_clear = reason;
                (raise.0.unwrap_or(ts), raise.1.unwrap_or(Severity::Minor))
            }
            AlertEventKind::Raised => {
                // A stuck channel is a fault for certain, whatever the error says.
                let floor = if s.stuck { Severity::Major } else { Severity::Minor };
                let severity = config.alert.severity.classify(over_by).max(floor);
                self.alert.set_severity(severity);
                (ts, severity)
            }
        };
        let (channels, outside_range) = self.breakdown(model);
        Some(AlertEvent {
            alert_id: alert_id(IdFamily::Raised, self.sensor.as_str(), raised_at),
            sensor: self.sensor.to_string(),
            event: kind,
            severity,
            reason,
            learning: kind == AlertEventKind::Cleared && reason != Some(ClearReason::Subsided),
            ts,
            ts_rfc3339: crate::alert::rfc3339(ts),
            score: j.value,
            threshold,
            quantile: self.scoring.quantile(),
            over_by,
            pca_score: Some(j.scores.pca),
            anomaly_score: s.anomaly_score,
            outside_range,
            stuck: self.stuck_channels(config),
            model_version: model.version,
            channels,
            window_start: self.window.start_ts(),
            window_end: self.window.end_ts(),
        })
    }

    /// The newest window's error by channel, and the channels outside their recent range.
    pub(super) fn breakdown(&self, model: &Model) -> (Vec<ChannelContribution>, Vec<String>) {
        let channels = model
            .channel_errors(self.scoring.workspace())
            .into_iter()
            .zip(&self.channel_names)
            .map(|((error, share), name)| ChannelContribution {
                channel: name.clone(),
                error,
                share,
            })
            .collect();
        let outside_range = self
            .scoring
            .outside_range()
            .iter()
            .zip(&self.channel_names)
            .filter(|(left, _)| **left)
            .map(|(_, name)| name.clone())
            .collect();
        (channels, outside_range)
    }

    /// Which channels are stuck now ([`super::stuck`]), channel `c` as bit `c % 64`: a
    /// change in the set changes the mask (for up to 64 channels, `limits.max_channels`'
    /// default).
    pub fn stuck_mask(&self, config: &DetectorConfig) -> u64 {
        (self.stuck.channels(config.alert.stuck_rows)).fold(0, |m, (c, _)| m | 1 << (c % 64))
    }

    /// The channels stuck now, by name, with their runs.
    pub fn stuck_channels(&self, config: &DetectorConfig) -> Vec<StuckChannel> {
        // The runs follow the readings, which are as wide as the channel names.
        (self.stuck.channels(config.alert.stuck_rows))
            .filter_map(|(c, run)| {
                Some(StuckChannel {
                    channel: self.channel_names.get(c)?.clone(),
                    rows: run.rows(),
                    longest_before: run.longest(),
                })
            })
            .collect()
    }

    pub(super) fn maybe_job(&mut self, config: &DetectorConfig) -> Option<TrainJob> {
        if !self
            .learning
            .job_due(self.model.is_some(), self.scoring.quantile(), config)
        {
            return None;
        }
        Some(TrainJob {
            sensor: self.sensor.clone(),
            version: self.model_version() + 1,
            windows: self.learning.buffer().clone(),
            fresh: self.learning.fresh_in_job(),
            channels: self.channel_names.len(),
            warm: self.model.clone(),
        })
    }

    /// Installs a trained model (`None`: training failed) and rebuilds what depends on
    /// the model in force.
    pub(super) fn install(
        &mut self,
        model: Option<Model>,
        rescored: Option<&Rescored>,
        config: &DetectorConfig,
    ) {
        // A job of the set before a warm-up restart ([`Detector::regroup`]): not this
        // pipeline's, and a model of another width cannot score its windows.
        if model
            .as_ref()
            .is_some_and(|m| m.channels != self.channel_names.len())
        {
            return;
        }
        let kind = self.learning.installed(model.is_some());
        let Some(m) = model else {
            return;
        };
        let m = Arc::new(m);
        let rebaseline = (kind == Installed::Rebaseline).then(|| self.learning.alert_windows());
        let previous = (self.model.as_deref()).map(|old| (old, self.learning.unseen_by_model()));
        let relearned =
            (self.scoring).rebuild(&m, self.learning.buffer(), config, rebaseline, rescored, previous);
        if let Some(ratio) = relearned {
            tracing::debug!(
                sensor = %self.sensor.escaped(),
                version = m.version,
                ratio,
                "Threshold relearned from the new model's errors: its error level moved more than twofold."
            );
        }
        self.model = Some(m);
    }
}
