//! When a new model's threshold is learned afresh. The threshold window holds the
//! errors of the models that scored before the current one. A retrain that changes what
//! the model knows (a young model that has learned a signal's sharp edges, say) leaves
//! those errors in another model's units, and the rolling quantile would keep the old
//! model's level for up to `threshold.window` windows: a strongly periodic sensor was
//! blind to every fault smaller than the edges its first model could not reconstruct
//! (docs/quality.md, "Session 14"). [`changed`] compares the two models on the windows
//! both learned; when it says so, the scoring stage rebuilds the threshold window from
//! the new model's errors, as it does for an accepted alert's model.

use crate::config::ScoreSource;
use crate::model::{Model, Workspace};
use crate::trainer::TrainingBuffer;

/// A new model whose summed error on the windows both it and the model it replaces
/// learned is more than this factor below or above the old model's has learned (or
/// lost) something. Within the band a retrain is fine-tuning and the threshold window
/// keeps its out-of-sample scores: over the retrains of SKAB's anomaly-free recording
/// the ratio (on every window both models learned) stayed within 0.89–1.16, and NAB's
/// young models' ordinary gains reach 0.43–0.49 (docs/quality.md, "Session 14").
const BAND: f64 = 2.0;

/// Windows the ratio is measured on: a ratio of sums needs no more, and it is computed
/// on the detector's task when a model is installed. They are spread by a golden-ratio
/// sequence, not at a fixed step, which a periodic signal could alias (a step of a
/// quarter of its period samples four phases and may miss every edge).
const SAMPLE: usize = 32;

/// Fewest windows both models learned that a ratio is measured on.
const MIN_KNOWN: usize = 32;

/// The ratio of `new`'s error level to `old`'s, the model it replaces, on the windows
/// both learned (the buffer's windows but the newest `unseen`, which `old` never trained
/// on), when it is outside [`BAND`] either way. `None` within it, when fewer than
/// [`MIN_KNOWN`] such windows are held, or when `old` cannot score the buffer's windows.
pub(super) fn changed(
    old: &Model,
    new: &Model,
    buffer: &TrainingBuffer,
    unseen: usize,
    source: ScoreSource,
    ws: &mut Workspace,
) -> Option<f64> {
    let width = buffer.width();
    if old.ae.n_inputs() != width || new.ae.n_inputs() != width || old.channels != new.channels {
        return None;
    }
    let known = buffer.len().saturating_sub(unseen);
    if known < MIN_KNOWN {
        return None;
    }
    let windows = buffer.select(&sample(known), |raw, out| out.copy_from_slice(raw));
    let (mut sum_old, mut sum_new) = (0.0, 0.0);
    for w in windows.rows() {
        let w = w.as_slice().expect("owned rows are contiguous");
        sum_old += source.of_window(old, w, ws);
        sum_new += source.of_window(new, w, ws);
    }
    let ratio = sum_new / sum_old;
    (ratio.is_finite() && !(1.0 / BAND..=BAND).contains(&ratio)).then_some(ratio)
}

/// Up to [`SAMPLE`] distinct indices below `len`, ascending: the fractional parts of
/// multiples of the golden ratio, which spread evenly over any stretch without a period.
fn sample(len: usize) -> Vec<usize> {
    const PHI: f64 = 0.618_033_988_749_894_9;
    let mut picked: Vec<usize> = (0..SAMPLE.min(len))
        .map(|k| (((k as f64 * PHI).fract() * len as f64) as usize).min(len - 1))
        .collect();
    picked.sort_unstable();
    picked.dedup();
    picked
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::reading::SensorId;
    use crate::trainer::TrainJob;

    const SIZE: usize = 8;

    /// A square wave of period 64 (levels 0 and 10) with a little deterministic noise.
    fn wave(i: usize) -> f64 {
        let level = if i % 64 < 32 { 10.0 } else { 0.0 };
        level + ((i * 7919) % 13) as f64 / 26.0
    }

    /// The sliding windows of readings `from..to`, as a buffer.
    fn buffer(from: usize, to: usize) -> TrainingBuffer {
        let mut b = TrainingBuffer::new(1000, SIZE, 1);
        for end in from + SIZE..=to {
            b.push(&(end - SIZE..end).map(wave).collect::<Vec<_>>());
        }
        b
    }

    fn config() -> crate::config::DetectorConfig {
        let text = "[window]\nsize = 8\n[model]\nhidden = [6]\nlatent = 2\nepochs = 30\n";
        crate::config::Config::from_toml_str(text).unwrap().detector
    }

    fn train(windows: TrainingBuffer, warm: Option<&Model>) -> Model {
        let job = TrainJob {
            sensor: SensorId::new("s"),
            version: 1 + u64::from(warm.is_some()),
            fresh: windows.len(),
            windows,
            channels: 1,
            warm: warm.map(|m| Arc::new(m.clone())),
        };
        crate::trainer::train(&job, &config().model).unwrap()
    }

    /// A model that saw the high half of the wave only, its successor that saw the whole
    /// wave, and the successor's buffer.
    fn old_and_new() -> (Model, Model, TrainingBuffer) {
        let old = train(buffer(0, 30), None);
        let both = buffer(0, 400);
        let new = train(both.clone(), Some(&old));
        (old, new, both)
    }

    #[test]
    fn a_model_that_learned_what_the_old_one_never_saw_has_changed() {
        let (old, new, both) = old_and_new();
        let mut ws = Workspace::default();
        assert!(changed(&old, &new, &both, 0, ScoreSource::Ae, &mut ws).is_some());
        // Either way round: the old model is as far below the new one's level.
        assert!(changed(&new, &old, &both, 0, ScoreSource::Ae, &mut ws).is_some());
        // A model against itself has not.
        assert!(changed(&new, &new, &both, 0, ScoreSource::Ae, &mut ws).is_none());
    }

    #[test]
    fn the_sample_spreads_over_every_phase_of_a_period() {
        let picked = sample(4608);
        assert_eq!(picked.len(), SAMPLE);
        assert!(picked.windows(2).all(|p| p[0] < p[1]), "{picked:?}");
        // A fixed step of 4608 / 32 = 144 would see 2 of the 288 phases of a daily
        // cycle at a 5-minute cadence; this leaves no gap of a window's length (32).
        let mut phases: Vec<usize> = picked.iter().map(|i| i % 288).collect();
        phases.sort_unstable();
        phases.dedup();
        let wrap = phases[0] + 288 - phases[phases.len() - 1];
        let gaps = phases.windows(2).map(|p| p[1] - p[0]).chain([wrap]);
        assert!(gaps.max().unwrap() <= 32, "{phases:?}");
        // Fewer windows than the sample: each at most once.
        assert_eq!(sample(5), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn no_change_is_measured_on_too_few_known_windows_or_another_shape() {
        let (old, new, both) = old_and_new();
        let mut ws = Workspace::default();
        // All but 31 windows are new to the old model: too few to compare on.
        let unseen = both.len() - (MIN_KNOWN - 1);
        assert!(changed(&old, &new, &both, unseen, ScoreSource::Ae, &mut ws).is_none());
        assert!(changed(&old, &new, &both, unseen - 1, ScoreSource::Ae, &mut ws).is_some());
        // A buffer of another window width cannot be scored by either model.
        let mut wider = TrainingBuffer::new(100, SIZE + 1, 1);
        for end in SIZE + 1..=200 {
            wider.push(&(end - SIZE - 1..end).map(wave).collect::<Vec<_>>());
        }
        assert!(changed(&old, &new, &wider, 0, ScoreSource::Ae, &mut ws).is_none());
    }
}
