//! What bounds the detector's memory: the sensor cap (`limits.max_sensors`), the
//! memory budget (`limits.max_memory_mb`, charged with each pipeline's
//! [`super::memory::pipeline_bytes`] estimate) and idle eviction
//! (`limits.sensor_idle_secs`).
//!
//! An idle sensor that has a model is **parked**: its pipeline is replaced by its
//! persisted state ([`SensorSnapshot`]: model, threshold and score histories, alert
//! state), which stays in every snapshot and is charged to the budget at its own, much
//! smaller, size. When it sends again it is restored from that state, as after a
//! restart: it refills one window and scores without a warm-up. An idle sensor without
//! a model has nothing worth keeping and is **dropped**. The caller decides when a
//! sensor is idle (the daemon: no reading for `sensor_idle_secs` of wall time). Sensors
//! of a snapshot that do not fit the budget at startup are restored parked, so a
//! lowered budget loses no model from the next snapshot.

use super::memory;
use super::{DetectError, Detector, Pipeline, SensorSnapshot};
use crate::reading::SensorId;

/// What [`Detector::evict_idle`] did with one sensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evicted {
    /// It had a model: kept as its persisted state until it sends again.
    Parked(SensorId),
    /// It had no model: forgotten.
    Dropped(SensorId),
}

/// Estimated bytes of a parked sensor: its histories, its model and the fixed part.
fn parked_bytes(s: &SensorSnapshot, config: &crate::config::DetectorConfig) -> usize {
    let threshold = crate::threshold::RollingQuantile::footprint(s.threshold.capacity(), s.threshold.q());
    let legacy = s.legacy_threshold.as_ref().map_or(0, Vec::len);
    let maxima = [&s.scorer, &s.point_scorer]
        .into_iter()
        .flatten()
        .map(crate::threshold::RollingMax::held)
        .sum::<usize>();
    let values = legacy + 2 * maxima + s.ema.len();
    // One copy of the model (no retrain is out while parked).
    let width = config.window.size * s.channels.len();
    let model = s
        .model
        .as_ref()
        .map_or(0, |_| memory::model_bytes(config, width) / 2);
    1024 + threshold + 8 * values + model
}

impl Detector {
    /// Refuses new sensors whose estimated memory would take the total past `bytes`
    /// (`None`: no budget).
    #[must_use]
    pub fn with_memory_budget(mut self, bytes: Option<usize>) -> Self {
        self.budget = bytes;
        self
    }

    /// Estimated bytes of every tracked and parked sensor.
    pub fn memory_bytes(&self) -> usize {
        self.used
    }

    /// Parked sensors (idle, kept as their persisted state).
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Whether `bytes` more fit the budget.
    pub(super) fn fits(&self, bytes: usize) -> bool {
        self.budget.is_none_or(|b| self.used + bytes <= b)
    }

    /// Creates the pipeline of a sensor not tracked: from its parked state if it has
    /// one, else new with `channel_names`.
    pub(super) fn admit(
        &mut self,
        sensor: &SensorId,
        channel_names: impl FnOnce() -> Vec<String>,
    ) -> Result<(), DetectError> {
        if let Some(s) = self.parked.remove(sensor) {
            let freed = parked_bytes(&s, &self.config);
            let (p, _) = Pipeline::from_snapshot(s.clone(), &self.config);
            if self.used - freed + p.bytes > self.budget.unwrap_or(usize::MAX) {
                self.parked.insert(sensor.clone(), s);
                return Err(self.over_budget(sensor));
            }
            self.used = self.used - freed + p.bytes;
            self.pipelines.insert(sensor.clone(), p);
            return Ok(());
        }
        if self.pipelines.len() + self.parked.len() >= self.max_sensors {
            return Err(DetectError::TooManySensors {
                sensor: sensor.to_string(),
                limit: self.max_sensors,
            });
        }
        let p = Pipeline::new(sensor.clone(), channel_names(), &self.config);
        if !self.fits(p.bytes) {
            return Err(self.over_budget(sensor));
        }
        self.used += p.bytes;
        self.pipelines.insert(sensor.clone(), p);
        Ok(())
    }

    pub(super) fn over_budget(&self, sensor: &SensorId) -> DetectError {
        DetectError::MemoryBudget {
            sensor: sensor.to_string(),
            budget_mb: self.budget.unwrap_or(0) >> 20,
        }
    }

    /// Keeps a sensor as its persisted state only, charged at its parked size.
    pub(super) fn park(&mut self, s: SensorSnapshot) {
        self.used += parked_bytes(&s, &self.config);
        self.parked.insert(SensorId::new(&s.sensor), s);
    }

    /// Evicts every sensor whose last reading arrived before `cutoff` (the clock of
    /// [`Detector::offer`]) and that holds no reading in its reorder buffer.
    pub fn evict_idle(&mut self, cutoff: f64) -> Vec<Evicted> {
        let idle: Vec<SensorId> = (self.pipelines.iter())
            .filter(|(_, p)| p.last_seen < cutoff && p.held() == 0)
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::with_capacity(idle.len());
        for id in idle {
            // Listed just above.
            let p = self.pipelines.remove(&id).expect("idle pipeline exists");
            self.used -= p.bytes;
            if p.model.is_some() {
                self.park(p.snapshot());
                out.push(Evicted::Parked(id));
            } else {
                out.push(Evicted::Dropped(id));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{build_config, build_reading, names};
    use super::*;
    use crate::detector::Release;

    fn offer_all(d: &mut Detector, id: &SensorId, from: usize, to: usize, arrived: f64) {
        for i in from..to {
            d.offer(id, i as f64, &build_reading(i), arrived, names).unwrap();
            while let Some(r) = d.release(id, Release::All) {
                if let Ok(mut step) = r.step {
                    if let Some(job) = step.train.take() {
                        let model = crate::trainer::train(&job, &d.config().model).ok();
                        d.install(id, model);
                    }
                }
            }
        }
    }

    #[test]
    fn new_sensors_past_the_memory_budget_are_refused() {
        let config = build_config("");
        let one = memory::pipeline_bytes(&config, 2);
        let mut d = Detector::new(config, 100).with_memory_budget(Some(3 * one + one / 2));
        for k in 0..3 {
            offer_all(&mut d, &SensorId::new(&format!("s{k}")), 0, 1, 0.0);
        }
        assert_eq!(d.memory_bytes(), 3 * one);
        let refused = d.offer(&SensorId::new("s3"), 0.0, &[1.0, 2.0], 0.0, names);
        assert!(
            matches!(refused, Err(DetectError::MemoryBudget { .. })),
            "{refused:?}"
        );
        assert_eq!(d.sensors(), 3);
        // Known sensors keep going.
        offer_all(&mut d, &SensorId::new("s0"), 1, 5, 0.0);
    }

    #[test]
    fn idle_sensors_with_a_model_are_parked_and_come_back_without_warm_up() {
        let mut d = Detector::new(build_config(""), 100);
        let (modelled, fresh) = (SensorId::new("m"), SensorId::new("f"));
        offer_all(&mut d, &modelled, 0, 120, 10.0);
        offer_all(&mut d, &fresh, 0, 5, 10.0);
        let version = d.pipeline(&modelled).unwrap().model_version();
        assert!(version >= 1);
        let before = d.memory_bytes();
        assert_eq!(d.evict_idle(5.0), [], "nothing idle yet");
        let mut evicted = d.evict_idle(20.0);
        evicted.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(
            evicted,
            [Evicted::Dropped(fresh.clone()), Evicted::Parked(modelled.clone())]
        );
        assert_eq!((d.sensors(), d.parked()), (0, 1));
        assert!(d.memory_bytes() < before / 10, "{} of {before}", d.memory_bytes());
        assert_eq!(
            d.snapshot().sensors.len(),
            1,
            "the parked sensor stays in snapshots"
        );
        // It returns with its model: scored as soon as its window refills.
        offer_all(&mut d, &modelled, 200, 208, 30.0);
        assert_eq!(d.pipeline(&modelled).unwrap().model_version(), version);
        assert_eq!(d.parked(), 0);
    }

    #[test]
    fn sensors_of_a_snapshot_past_the_budget_are_restored_parked() {
        let config = build_config("");
        let mut d = Detector::new(config.clone(), 100);
        for k in 0..3 {
            offer_all(&mut d, &SensorId::new(&format!("s{k}")), 0, 2, 0.0);
        }
        let one = memory::pipeline_bytes(&config, 2);
        let mut small = Detector::new(config, 100).with_memory_budget(Some(2 * one + one / 2));
        assert_eq!(small.restore(d.snapshot()), 2);
        assert_eq!((small.sensors(), small.parked()), (2, 1));
        assert_eq!(
            small.snapshot().sensors.len(),
            3,
            "nothing lost from the next snapshot"
        );
    }
}
