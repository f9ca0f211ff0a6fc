//! The snapshot coordinator: one task that owns the store and the snapshot timer, and
//! turns the detector workers' shares into one snapshot file.
//!
//! Every `snapshot_every_secs` it asks each worker for its sensors' state
//! ([`Control::Snapshot`]), merges the answers (sorted by sensor id, as one detector
//! wrote them) and writes them on a blocking thread; a tick while the previous write is
//! still going is skipped. It also fans SIGHUP reloads out to every worker. When the
//! workers' queues close (shutdown) each worker drains and sends its final state; once
//! all have, the coordinator writes the final snapshot, closes the shared training
//! gate and ends. A worker that ended without a final state (it panicked) would leave
//! its sensors out: then nothing is written, the previous snapshot stays, and the
//! daemon exits non-zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::detect::{Control, Reload};
use crate::detector::{DetectorSnapshot, SNAPSHOT_FORMAT};
use crate::store::Store;

/// The coordinator's state; see the module docs.
pub(crate) struct Coordinator {
    /// One per worker, in worker order.
    pub(crate) control_tx: Vec<mpsc::Sender<Control>>,
    /// Each worker's final state, in worker order.
    pub(crate) finals: Vec<oneshot::Receiver<DetectorSnapshot>>,
    pub(crate) reload_rx: mpsc::Receiver<Reload>,
    /// `None` in tests that keep no state.
    pub(crate) store: Option<Arc<Store>>,
    /// `None`: snapshots only at shutdown.
    pub(crate) snapshot_every: Option<Duration>,
    /// The workers' shared `training.parallel` gate, closed once they all stopped.
    pub(crate) train_gate: Arc<Semaphore>,
    pub(crate) tracker: TaskTracker,
    /// Set when the final snapshot could not be written: `run` then fails.
    pub(crate) final_snapshot_failed: Arc<AtomicBool>,
}

impl Coordinator {
    /// Runs until every worker has sent its final state, then writes it.
    pub(crate) async fn run(mut self) {
        let finals = std::mem::take(&mut self.finals);
        let all_finals = async move {
            let mut out = Vec::with_capacity(finals.len());
            for rx in finals {
                out.push(rx.await.ok());
            }
            out
        };
        tokio::pin!(all_finals);
        let period = self.snapshot_every.unwrap_or(Duration::from_secs(3600));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut saving: Option<JoinHandle<()>> = None;
        let finals = loop {
            tokio::select! {
                finals = &mut all_finals => break finals,
                // Disabled when snapshots are only taken at shutdown.
                _ = tick.tick(), if self.snapshot_every.is_some() => self.on_tick(&mut saving).await,
                // The reload task ends at shutdown; the pattern then disables the arm.
                Some(reload) = self.reload_rx.recv() => self.on_reload(reload).await,
            }
        };
        self.train_gate.close();
        if let Some(h) = saving.take() {
            let _ = h.await;
        }
        self.on_finals(finals).await;
    }

    /// Writes a periodic snapshot of every worker's sensors, unless the last one is
    /// still being written.
    async fn on_tick(&self, saving: &mut Option<JoinHandle<()>>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if saving.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let mut parts = Vec::with_capacity(self.control_tx.len());
        for tx in &self.control_tx {
            let (reply_tx, reply_rx) = oneshot::channel();
            if tx.send(Control::Snapshot(reply_tx)).await.is_err() {
                return; // A worker has stopped: shutdown is under way.
            }
            parts.push(reply_rx);
        }
        let mut shares = Vec::with_capacity(parts.len());
        for rx in parts {
            match rx.await {
                Ok(share) => shares.push(share),
                Err(_) => return,
            }
        }
        let snapshot = merge(shares);
        *saving = Some(self.tracker.spawn_blocking(move || {
            save(&store, &snapshot);
        }));
    }

    async fn on_reload(&self, reload: Reload) {
        for tx in &self.control_tx {
            // Fails only for a worker that has stopped (shutdown).
            let _ = tx.send(Control::Reload(reload.clone())).await;
        }
    }

    /// Writes the final snapshot from every worker's final state.
    async fn on_finals(self, finals: Vec<Option<DetectorSnapshot>>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let missing = finals.iter().filter(|f| f.is_none()).count();
        if missing > 0 {
            self.final_snapshot_failed.store(true, Ordering::Relaxed);
            error!(
                workers = missing,
                "Detector workers ended without their final state; the previous snapshot is kept."
            );
            return;
        }
        let snapshot = merge(finals.into_iter().flatten().collect());
        let sensors = snapshot.sensors.len();
        let saved = tokio::task::spawn_blocking(move || save(&store, &snapshot)).await;
        match saved {
            Ok(true) => info!(sensors, "Final snapshot written."),
            // `save` logged why; the daemon exits non-zero (see `daemon::run`).
            Ok(false) => {
                self.final_snapshot_failed.store(true, Ordering::Relaxed);
                error!(
                    sensors,
                    "Final snapshot not written; state since the last snapshot is lost."
                );
            }
            Err(error) => {
                self.final_snapshot_failed.store(true, Ordering::Relaxed);
                error!(%error, "Final snapshot task failed.");
            }
        }
    }
}

/// One snapshot of the workers' disjoint shares, sorted by sensor id.
pub(crate) fn merge(shares: Vec<DetectorSnapshot>) -> DetectorSnapshot {
    let mut sensors: Vec<_> = shares.into_iter().flat_map(|s| s.sensors).collect();
    sensors.sort_by(|a, b| a.sensor.cmp(&b.sensor));
    DetectorSnapshot {
        format: SNAPSHOT_FORMAT,
        sensors,
    }
}

/// Saves a snapshot; true when it was written. [`Store::save`] counts it in
/// `snapshots_total` and `snapshot_seconds` (once: counting here too doubled both).
fn save(store: &Store, snapshot: &DetectorSnapshot) -> bool {
    match store.save(snapshot) {
        Ok(report) => {
            debug!(path = %report.path.display(), bytes = report.bytes, "Snapshot written.");
            true
        }
        Err(error) => {
            warn!(%error, "Snapshot not written.");
            false
        }
    }
}
