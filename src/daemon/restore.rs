//! Startup from the last snapshot: one [`Detector`] per detector worker, each holding
//! the restored sensors that [`crate::cluster::worker_of`] gives it, and what the rest
//! of the daemon needs to know about them ([`Restored`]).

use tracing::{info, warn};

use crate::config::Config;
use crate::detector::{Detector, DetectorSnapshot, SNAPSHOT_FORMAT};
use crate::reading::{ChannelSet, SensorId};
use crate::store::Store;

/// What a snapshot told the rest of the daemon.
#[derive(Default)]
pub(super) struct Restored {
    /// The newest model version in it (0 without one).
    pub(super) newest_version: u64,
    /// Its sensors and their channel sets (ingest admits them first).
    /// For ingest's admission: each restored sensor's channel set, open while it has
    /// no model yet.
    pub(super) known: Vec<crate::ingest::sensors::Restored>,
}

/// Restores the last snapshot into one detector per worker (`workers` of them), each
/// with the sensors [`crate::cluster::worker_of`] gives it. A missing snapshot is a
/// first start; a corrupt or foreign one has been set aside by the store and is
/// reported, never fatal. Sensors that this `[cluster]` instance does not own (the
/// cluster was resized) are left to their new owner: scoring them here too would alert
/// twice.
///
/// The global limits hold across the workers as they held for one detector: at most
/// `limits.max_sensors` sensors are restored, the first in the snapshot's (sorted)
/// order, and the workers restore in turn against what is left of
/// `limits.max_memory_mb`, so the sensors past the budget are parked whichever worker
/// they belong to. Afterwards each worker's detector checks new sensors against the
/// whole budget and cap: ingest's admission ([`crate::ingest::sensors`]) is what
/// enforces both globally before the queues.
pub(super) fn restore(store: &Store, config: &Config, workers: usize) -> (Vec<Detector>, Restored) {
    let budget = (config.limits.max_memory_mb > 0).then_some(config.limits.max_memory_mb << 20);
    let new_detector =
        |budget| Detector::new(config.detector.clone(), config.limits.max_sensors).with_memory_budget(budget);
    let mut shares = vec![Vec::new(); workers];
    let restored = match store.load::<DetectorSnapshot>() {
        Ok(Some(mut snapshot)) => {
            let partition = config.cluster;
            let before = snapshot.sensors.len();
            snapshot.sensors.retain(|s| partition.owns(&s.sensor));
            if snapshot.sensors.len() < before {
                info!(
                    dropped = before - snapshot.sensors.len(),
                    instances = partition.instances(),
                    index = partition.index(),
                    "Snapshot sensors now owned by other instances left out."
                );
            }
            snapshot.sensors.truncate(config.limits.max_sensors);
            let newest_version = (snapshot.sensors.iter())
                .filter_map(|s| s.model.as_ref().map(|m| m.version))
                .max()
                .unwrap_or(0);
            let known = (snapshot.sensors.iter())
                .map(|s| {
                    let set = ChannelSet::from(s.channels.clone());
                    (SensorId::new(&s.sensor), set, s.model.is_none())
                })
                .collect();
            if snapshot.format == SNAPSHOT_FORMAT {
                let n = std::num::NonZeroU32::new(workers as u32).unwrap_or(std::num::NonZeroU32::MIN);
                for s in snapshot.sensors {
                    let w = crate::cluster::worker_of(&s.sensor, n) as usize;
                    shares[w].push(s);
                }
            } else {
                warn!(
                    format = snapshot.format,
                    "Snapshot format not understood; starting fresh."
                );
            }
            Restored {
                newest_version,
                known,
            }
        }
        Ok(None) => {
            info!("No snapshot; every sensor starts with a warm-up.");
            Restored::default()
        }
        Err(error) => {
            warn!(%error, "Snapshot unusable; starting without it.");
            Restored::default()
        }
    };
    let mut used = 0_usize;
    let mut sensors = 0_usize;
    let detectors = (shares.into_iter())
        .map(|share| {
            let mut d = new_detector(budget.map(|b| b.saturating_sub(used)));
            if !share.is_empty() {
                sensors += d.restore(DetectorSnapshot {
                    format: SNAPSHOT_FORMAT,
                    sensors: share,
                });
            }
            used += d.memory_bytes();
            d.with_memory_budget(budget)
        })
        .collect();
    if !restored.known.is_empty() {
        info!(
            sensors,
            newest_model_version = restored.newest_version,
            "Snapshot restored; no warm-up for known sensors."
        );
    }
    (detectors, restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store holding a snapshot of `n` sensors (one channel, no model yet).
    fn build_store(dir: &std::path::Path, config: &Config, n: usize) -> Store {
        let mut d = Detector::new(config.detector.clone(), 1000);
        for k in 0..n {
            let id = SensorId::new(&format!("sensor-{k}"));
            let step = d.process(&id, 1_700_000_000.0, &[1.0], || vec!["a".to_string()]);
            step.expect("taken");
        }
        let store = Store::open(dir).expect("store");
        store.save(&d.snapshot()).expect("saved");
        store
    }

    fn build_config(limits: &str) -> Config {
        Config::from_toml_str(&format!("[limits]\n{limits}\n")).expect("valid config")
    }

    #[test]
    fn each_worker_restores_exactly_its_own_sensors_within_the_global_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = build_config("max_sensors = 6\nmax_memory_mb = 0");
        let store = build_store(dir.path(), &config, 10);
        let (detectors, restored) = restore(&store, &config, 2);
        assert_eq!(detectors.len(), 2);
        assert_eq!(restored.known.len(), 6, "ingest admits the capped set");
        let total: usize = detectors.iter().map(Detector::sensors).sum();
        assert_eq!(total, 6, "max_sensors is global, not per worker");
        let two = std::num::NonZeroU32::new(2).expect("non-zero");
        for (w, d) in detectors.iter().enumerate() {
            for id in d.sensor_ids() {
                assert_eq!(crate::cluster::worker_of(id.as_str(), two) as usize, w, "{id}");
            }
        }
        assert!(detectors.iter().all(|d| d.sensors() > 0), "both workers own some");
    }

    #[test]
    fn the_memory_budget_is_shared_by_the_workers_at_restore() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = build_config("max_memory_mb = 1");
        let per_sensor = crate::detector::memory::pipeline_bytes(&config.detector, 1);
        let fit = (1 << 20) / per_sensor;
        assert!(
            (1..10).contains(&fit),
            "test needs a budget of 1 to 9 sensors, got {fit}"
        );
        let store = build_store(dir.path(), &config, 10);
        let (detectors, _) = restore(&store, &config, 2);
        let live: usize = detectors.iter().map(Detector::sensors).sum();
        let parked: usize = detectors.iter().map(Detector::parked).sum();
        let used: usize = detectors.iter().map(Detector::memory_bytes).sum();
        assert_eq!(live + parked, 10, "none lost: the rest are parked");
        assert!(used <= 1 << 20, "{used} bytes over the 1 MiB budget");
        assert!(live >= 1 && live <= fit, "{live} live sensors, {fit} fit");
    }
}
