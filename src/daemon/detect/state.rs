//! What a worker publishes about its sensors apart from alerts: the retained state
//! when it changes, `stale` / `fresh` events from the silence sweep, and the size
//! gauges, which change as idle sensors are evicted (and forgotten by ingest). The
//! loop is in [`super`].

use std::time::Duration;

use tracing::info;

use super::Running;
use crate::alert::stale::StaleEvent;
use crate::detector::Evicted;
use crate::ingest::sensors::Note;
use crate::metrics::{labels, names};
use crate::publish::{Outbound, SensorState};
use crate::reading::SensorId;

/// What was last published for a sensor; a change triggers a retained state update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Published {
    state: crate::detector::SensorState,
    model_version: u64,
    threshold_ready: bool,
    last_clear: Option<crate::alert::ClearReason>,
    window_ready: bool,
    window_resets: u64,
    stale: bool,
    holding: bool,
    /// Channels stuck at one value ([`crate::detector::Pipeline::stuck_mask`]).
    stuck: u64,
}

impl Running {
    /// Evicts sensors without a reading for `idle_after`; dropped ones are forgotten by
    /// ingest's admission too.
    pub(super) fn on_idle_tick(&mut self, idle_after: Option<Duration>) {
        let Some(idle_after) = idle_after else {
            return;
        };
        let cutoff = self.clock.elapsed().as_secs_f64() - idle_after.as_secs_f64();
        let evicted = self.detector.evict_idle(cutoff);
        if evicted.is_empty() {
            return;
        }
        let mut parked = 0_usize;
        for e in &evicted {
            let (sensor, kind) = match e {
                Evicted::Parked(id) => (id, "parked"),
                Evicted::Dropped(id) => {
                    // Fails only when ingest has stopped (shutdown).
                    let _ = self.shared.notes_tx.send(Note::Forget(id.clone()));
                    (id, "dropped")
                }
            };
            parked += usize::from(kind == "parked");
            self.published.remove(sensor);
            self.shared.labels().forget_scores(sensor);
            metrics::counter!(names::SENSORS_EVICTED, labels::KIND => kind).increment(1);
        }
        self.set_size_gauges();
        info!(
            parked,
            dropped = evicted.len() - parked,
            idle_secs = idle_after.as_secs(),
            "Idle sensors evicted."
        );
    }

    /// Tracked sensors and the memory estimate, summed over the workers.
    pub(super) fn set_size_gauges(&self) {
        (self.shared.sizes).set(self.worker, self.detector.sensors(), self.detector.memory_bytes());
    }

    /// Sweeps for silent sensors: each newly stale one gets its event and state.
    pub(super) async fn on_stale_tick(&mut self) {
        let Some(staleness) = self.staleness.as_mut() else {
            return;
        };
        for event in staleness.sweep(std::time::SystemTime::now()) {
            self.send_stale(event).await;
        }
    }

    /// Publishes a `stale` or `fresh` event and the sensor's state that changed with it.
    pub(super) async fn send_stale(&mut self, event: StaleEvent) {
        metrics::counter!(names::ALERTS, labels::EVENT => event.event.as_str()).increment(1);
        let sensor = SensorId::new(&event.sensor);
        let ts = event.ts;
        let _ = self.shared.outbound_tx.send(Outbound::Stale(event)).await;
        self.publish_state(&sensor, ts).await;
    }

    /// Publishes the sensor's retained state when it changed.
    pub(super) async fn publish_state(&mut self, sensor: &SensorId, ts: f64) {
        let Some(p) = self.detector.pipeline(sensor) else {
            return;
        };
        let threshold_ready = p.threshold_ready(self.detector.config());
        let model_version = p.model_version();
        let state = p.state(self.detector.config());
        let now = Published {
            state,
            model_version,
            threshold_ready,
            last_clear: p.last_clear(),
            window_ready: p.window_ready(),
            window_resets: p.window_resets(),
            stale: (self.staleness.as_ref()).is_some_and(|s| s.is_stale(sensor)),
            holding: p.holding(),
            stuck: p.stuck_mask(self.detector.config()),
        };
        let before = self.published.insert(sensor.clone(), now);
        if before == Some(now) {
            return;
        }
        let resets_before = before.map_or(0, |b| b.window_resets);
        if now.window_resets > resets_before {
            metrics::counter!(names::WINDOW_RESETS).increment(now.window_resets - resets_before);
        }
        if before.is_none() {
            self.set_size_gauges();
        }
        {
            let mut labels = self.shared.labels();
            labels.set_model_version(sensor, model_version);
            labels.set_threshold_ready(sensor, threshold_ready);
        }
        let msg = SensorState {
            sensor: sensor.to_string(),
            state,
            last_clear: now.last_clear,
            model_version,
            threshold_ready,
            window_ready: now.window_ready,
            stale: now.stale,
            holding: now.holding,
            stuck: (p.stuck_channels(self.detector.config()).into_iter())
                .map(|c| c.channel)
                .collect(),
            ts,
        };
        let _ = self.shared.outbound_tx.send(Outbound::State(msg)).await;
    }
}
