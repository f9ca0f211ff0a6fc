//! A worker's side of training: jobs go to a blocking thread once a
//! `training.parallel` permit (shared by every worker) is free, and the models that
//! come back get a version from the shared counter and are installed.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::Running;
use crate::config::ModelConfig;
use crate::detector::Rescored;
use crate::ingest::sensors::Note;
use crate::metrics::{labels, names};
use crate::model::Model;
use crate::reading::{ChannelSet, SensorId};
use crate::trainer::TrainJob;

/// A finished training job coming back from a blocking thread.
#[derive(Debug)]
pub(crate) struct Trained {
    sensor: SensorId,
    /// `None` when training failed (logged on the blocking thread).
    model: Option<Model>,
    /// The model's scores of the job's windows, computed on the blocking thread too.
    rescored: Option<Rescored>,
    /// Channels of the job's windows: a job of the set before a warm-up restart
    /// ([`crate::detector::Detector::regroup`]) is no longer the sensor's.
    channels: usize,
    took: Duration,
}

impl Running {
    /// Trains on a blocking thread once one of the `training.parallel` permits is free;
    /// the result comes back through `trained_tx`. Without the gate, fifty sensors due
    /// together trained on fifty threads at once: the CPU went to training, readings
    /// were dropped, and the resident set reached ~700 MB.
    pub(super) fn spawn_training(&self, job: TrainJob) {
        let config: ModelConfig = self.detector.config().model.clone();
        let source = self.detector.config().threshold.score;
        let trained_tx = self.trained_tx.clone();
        let gate = Arc::clone(&self.shared.train_gate);
        metrics::gauge!(names::TRAINING_BACKLOG).increment(1.0);
        self.shared.tracker.spawn(async move {
            // Closed when every worker has stopped: waiting jobs give up instead of
            // training; so does a job whose own worker stopped while it waited.
            let permit = gate.acquire_owned().await;
            metrics::gauge!(names::TRAINING_BACKLOG).decrement(1.0);
            let Ok(_permit) = permit else {
                return;
            };
            if trained_tx.is_closed() {
                return;
            }
            let trained = tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let (model, rescored) = crate::detector::run_job(&job, &config, source).unzip();
                Trained {
                    sensor: job.sensor,
                    model,
                    rescored,
                    channels: job.channels,
                    took: started.elapsed(),
                }
            })
            .await;
            // A panic inside training is logged by the runtime; the sensor keeps its model.
            if let Ok(trained) = trained {
                // Fails only when the detector has stopped: the model is not needed then.
                let _ = trained_tx.send(trained).await;
            }
        });
    }

    pub(super) async fn on_trained(&mut self, mut t: Trained) {
        let Some(open) = (self.detector.pipeline(&t.sensor))
            .filter(|p| p.channel_names().len() == t.channels)
            .map(|p| p.channel_set_open())
        else {
            // Its sensor was dropped, or restarted its warm-up with another set: the
            // pipeline that asked for it is gone.
            return;
        };
        if let (Some(model), Some(versions)) = (t.model.as_mut(), self.shared.versions.as_ref()) {
            // A poisoned lock: a worker panicked inside `allocate`, whose state is a
            // counter and a file write that either happened or did not.
            let allocated = versions.lock().unwrap_or_else(PoisonError::into_inner).allocate();
            match allocated {
                Ok(version) => model.version = version,
                Err(error) => {
                    warn!(sensor = %t.sensor.escaped(), %error, "Cannot reserve a model version; keeping the old model.");
                    t.model = None;
                }
            }
        }
        let version = t.model.as_ref().map(|m| m.version);
        let result = if version.is_some() { "ok" } else { "error" };
        metrics::counter!(names::RETRAINS, labels::RESULT => result).increment(1);
        metrics::histogram!(names::RETRAIN_SECONDS).record(t.took.as_secs_f64());
        if let Some(version) = version {
            info!(sensor = %t.sensor.escaped(), version, took_ms = t.took.as_millis() as u64, "Model installed.");
        }
        (self.detector).install_rescored(&t.sensor, t.model, t.rescored.as_ref());
        self.fixed(&t.sensor, open);
        // The reading time of the state update is the wall clock here: no reading caused it.
        self.publish_state(&t.sensor, crate::reading::unix_now()).await;
    }

    /// Tells ingest's admission that a sensor's channel set is fixed, when the model
    /// just installed closed it ([`crate::detector::Pipeline::channel_set_open`]):
    /// from now on a reading with another channel is refused there.
    fn fixed(&self, sensor: &SensorId, was_open: bool) {
        let Some(p) = self
            .detector
            .pipeline(sensor)
            .filter(|p| was_open && !p.channel_set_open())
        else {
            return;
        };
        let set = ChannelSet::from(p.channel_names().to_vec());
        // Fails only when ingest has stopped (shutdown).
        let _ = self.shared.notes_tx.send(Note::Fixed(sensor.clone(), set));
    }
}
