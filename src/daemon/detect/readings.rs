//! A worker's readings: each one checked against its sensor's channel set, offered to
//! the reorder buffer and released in timestamp order to be scored; what a scored
//! window brings (a training job, an alert event, Home Assistant scores) is sent on,
//! and a refused reading is counted and logged escaped. The loop is in [`super`].

use std::time::Instant;

use tracing::{info, warn};

use super::{REORDER_WAIT, Running};
use crate::alert::{AlertEventKind, ClearReason};
use crate::detector::{DetectError, Offered, Release, Step};
use crate::escape::Escaped;
use crate::metrics::{ScoreSample, labels, names};
use crate::publish::Outbound;
use crate::publish::homeassistant::ScoreUpdate;
use crate::reading::{Reading, SensorId};
use crate::window::WindowReject;

impl Running {
    pub(super) async fn on_reading(&mut self, t: Reading) {
        match self.detector.regroup(&t.sensor, &t.channels) {
            Ok(None) => {}
            Ok(Some(before)) => self.on_widened(&t, before),
            Err(error) => return self.on_rejected(&error),
        }
        let arrived = self.clock.elapsed().as_secs_f64();
        let offered = self
            .detector
            .offer(&t.sensor, t.ts, &t.values, arrived, || t.channels.to_vec());
        // Any reading of a tracked sensor shows it is alive, even one the window
        // refuses; a sensor refused at the cap is not tracked (nor can go stale).
        if self.detector.pipeline(&t.sensor).is_some() {
            let now = std::time::SystemTime::now();
            if let Some(event) = (self.staleness.as_mut()).and_then(|s| s.seen(&t.sensor, now)) {
                self.send_stale(event).await;
            }
        }
        match offered {
            Ok(Offered::Held) => {}
            Ok(Offered::Reordered) => metrics::counter!(names::READINGS_REORDERED).increment(1),
            Err(error) => return self.on_rejected(&error),
        }
        self.release(&t.sensor, Release::Due).await;
    }

    /// A sensor's channel set changed before its first model: its warm-up restarted.
    pub(super) fn on_widened(&mut self, t: &Reading, before: usize) {
        metrics::counter!(names::CHANNEL_SETS_WIDENED).increment(1);
        // Sensor and channel names come from the network: logged escaped.
        info!(
            sensor = %t.sensor.escaped(),
            before,
            channels = %Escaped(&t.channels.join(",")),
            "Channel set widened during warm-up; warm-up restarted."
        );
    }

    /// Scores the sensor's held readings that `release` lets go, oldest first.
    pub(super) async fn release(&mut self, sensor: &SensorId, release: Release) {
        loop {
            let started = Instant::now();
            let Some(released) = self.detector.release(sensor, release) else {
                return;
            };
            match released.step {
                Ok(step) => {
                    if step.scored.is_some() {
                        metrics::counter!(names::WINDOWS_SCORED).increment(1);
                        metrics::histogram!(names::SCORE_SECONDS).record(started.elapsed().as_secs_f64());
                    }
                    if let Some(scored) = &step.scored {
                        let sample = ScoreSample {
                            score: self.detector.config().threshold.score.pick(&scored.scores),
                            threshold: scored.threshold,
                            anomaly_score: scored.anomaly_score,
                        };
                        self.shared.labels().set_scores(sensor, sample);
                        self.send_score(sensor, released.ts, scored).await;
                    }
                    self.on_step(sensor, released.ts, step).await;
                }
                Err(error) => self.on_rejected(&error),
            }
        }
    }

    /// Scores readings that waited [`REORDER_WAIT`] for older ones.
    pub(super) async fn on_reorder_tick(&mut self) {
        // Sensors are admitted when a reading is offered, before any state is published.
        self.set_size_gauges();
        let cutoff = self.clock.elapsed().as_secs_f64() - REORDER_WAIT.as_secs_f64();
        for sensor in self.detector.holding() {
            self.release(&sensor, Release::ArrivedBy(cutoff)).await;
        }
    }

    pub(super) async fn on_step(&mut self, sensor: &SensorId, ts: f64, step: Step) {
        if let Some(job) = step.train {
            self.spawn_training(*job);
        }
        if let Some(event) = step.event {
            let label = match event.event {
                AlertEventKind::Raised => "raised",
                AlertEventKind::Cleared => "cleared",
            };
            metrics::counter!(names::ALERTS, labels::EVENT => label).increment(1);
            if event.reason == Some(ClearReason::Accepted) {
                metrics::counter!(names::ALERTS_ACCEPTED).increment(1);
            }
            // The publisher drains its channel into its own queue at once, so this
            // only waits for a moment under a burst.
            let _ = self.shared.outbound_tx.send(Outbound::Alert(event)).await;
        }
        self.publish_state(sensor, ts).await;
    }

    /// Sends the sensor's scores for Home Assistant, at most once per `score_every`.
    pub(super) async fn send_score(&mut self, sensor: &SensorId, ts: f64, scored: &crate::detector::Scored) {
        let Some(every) = self.shared.score_every else {
            return;
        };
        let now = Instant::now();
        if (self.scores_sent.get(sensor)).is_some_and(|sent| now.duration_since(*sent) < every) {
            return;
        }
        self.scores_sent.insert(sensor.clone(), now);
        let update = ScoreUpdate {
            sensor: sensor.to_string(),
            anomaly_score: scored.anomaly_score,
            score: self.detector.config().threshold.score.pick(&scored.scores),
            threshold: scored.threshold,
            model_version: scored.model_version,
            ts,
        };
        let _ = self.shared.outbound_tx.send(Outbound::Score(update)).await;
    }

    pub(super) fn on_rejected(&mut self, error: &DetectError) {
        let kind = match error {
            DetectError::TooManySensors { .. } => "sensor_cap",
            DetectError::MemoryBudget { .. } => "memory_budget",
            DetectError::ChannelSetChanged { .. } => "channel_set_changed",
            DetectError::Rejected { reason, .. } => reject_kind(reason),
        };
        metrics::counter!(names::READINGS_DROPPED, labels::REASON => kind).increment(1);
        // An exact duplicate is what a QoS 1 resend of a scored reading looks like after
        // every reconnect: counted, not logged.
        let resend = matches!(
            error,
            DetectError::Rejected {
                reason: WindowReject::Duplicate { .. },
                ..
            }
        );
        if resend {
            return;
        }
        if let Some(suppressed) = self.limiter.check(kind, Instant::now()) {
            // `DetectError` writes the sensor id (from the network) Debug-escaped.
            warn!(kind, %error, suppressed, "Dropped reading.");
        }
    }
}

/// Metric label of a window rejection.
fn reject_kind(reason: &WindowReject) -> &'static str {
    match reason {
        WindowReject::OutOfOrder { .. } => "out_of_order",
        WindowReject::Duplicate { .. } => "duplicate",
        WindowReject::WrongChannels { .. } => "wrong_channels",
        WindowReject::NotFinite { .. } => "not_finite",
        WindowReject::BadTimestamp { .. } => "bad_timestamp",
    }
}
