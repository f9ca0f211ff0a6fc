//! The hand-over from ingest to the detector workers: one bounded queue per worker,
//! and the choice of queue for a reading ([`crate::cluster::worker_of`], a stable hash
//! of the sensor id).
//!
//! Every reading of a sensor goes to the same worker through the same FIFO queue, so
//! per-sensor order is the order ingest received them in, as with one detector. The
//! hand-over never waits: a full queue is returned to the caller, which counts a drop
//! (`queue_full`) and goes on polling, so keep-alives and QoS 1 acknowledgements never
//! wait behind a busy worker. One worker's full queue does not hold back the others'.

use std::num::NonZeroU32;

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::reading::Reading;

/// The senders of every worker's readings queue, in worker order.
#[derive(Clone, Debug)]
pub struct Shards {
    readings_tx: Vec<mpsc::Sender<Reading>>,
    /// `readings_tx.len()`, as the hash wants it.
    workers: NonZeroU32,
}

impl Shards {
    /// Routes to these queues; worker `i` reads `readings_tx[i]`.
    ///
    /// # Panics
    ///
    /// With no sender, or more than `u32::MAX`: the daemon starts 1 to 64 workers
    /// (`limits.detector_workers` is validated).
    pub fn new(readings_tx: Vec<mpsc::Sender<Reading>>) -> Self {
        let workers = u32::try_from(readings_tx.len())
            .ok()
            .and_then(NonZeroU32::new)
            .expect("1 to 64 detector workers");
        Self { readings_tx, workers }
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.readings_tx.len()
    }

    /// Whether there is no worker (never, see [`Self::new`]).
    pub fn is_empty(&self) -> bool {
        self.readings_tx.is_empty()
    }

    /// The worker that owns `sensor`.
    pub fn worker(&self, sensor: &str) -> usize {
        if self.workers == NonZeroU32::MIN {
            return 0;
        }
        crate::cluster::worker_of(sensor, self.workers) as usize
    }

    /// Queues the reading on its sensor's worker without waiting.
    ///
    /// # Errors
    ///
    /// The reading back when that worker's queue is full or closed.
    pub fn try_send(&self, reading: Reading) -> Result<(), TrySendError<Reading>> {
        let worker = self.worker(reading.sensor.as_str());
        self.readings_tx[worker].try_send(reading)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::SensorId;

    fn build_reading(sensor: &str, ts: f64) -> Reading {
        Reading {
            sensor: SensorId::new(sensor),
            ts,
            channels: vec!["a".to_string()].into(),
            values: crate::reading::Values::from_slice(&[ts]),
        }
    }

    #[test]
    fn a_sensors_readings_keep_their_order_on_one_worker() {
        let (txs, mut rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::channel(1000)).unzip();
        let shards = Shards::new(txs);
        let sensors: Vec<String> = (0..20).map(|k| format!("pump-{k}")).collect();
        for ts in 0..10 {
            for s in &sensors {
                shards.try_send(build_reading(s, f64::from(ts))).expect("room");
            }
        }
        let mut seen = std::collections::HashMap::<String, (usize, Vec<f64>)>::new();
        for (worker, rx) in rxs.iter_mut().enumerate() {
            while let Ok(r) = rx.try_recv() {
                let e = seen.entry(r.sensor.to_string()).or_insert((worker, Vec::new()));
                assert_eq!(e.0, worker, "{} on two workers", r.sensor);
                e.1.push(r.ts);
            }
        }
        assert_eq!(seen.len(), 20);
        let used: std::collections::HashSet<usize> = seen.values().map(|(w, _)| *w).collect();
        assert_eq!(used.len(), 3, "20 sensors should use all 3 workers");
        for (sensor, (_, ts)) in &seen {
            let want: Vec<f64> = (0..10).map(f64::from).collect();
            assert_eq!(ts, &want, "{sensor} out of order");
        }
    }

    #[test]
    fn a_full_worker_queue_refuses_without_blocking_the_others() {
        let (txs, mut rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| mpsc::channel(1)).unzip();
        let shards = Shards::new(txs);
        let ids: Vec<String> = (0..50).map(|k| format!("s{k}")).collect();
        let on = |w: usize| {
            ids.iter()
                .find(|id| shards.worker(id) == w)
                .expect("a sensor per worker")
        };
        let (a, b) = (on(0), on(1));
        shards.try_send(build_reading(a, 1.0)).expect("room on worker 0");
        assert!(matches!(
            shards.try_send(build_reading(a, 2.0)),
            Err(TrySendError::Full(_))
        ));
        shards
            .try_send(build_reading(b, 1.0))
            .expect("worker 1 still takes readings");
        assert_eq!(rxs[1].try_recv().expect("queued").sensor.as_str(), b);
    }
}
