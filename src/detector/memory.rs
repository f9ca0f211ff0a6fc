//! The memory estimate behind `[limits] max_memory_mb`: how many bytes one sensor's
//! pipeline may hold once every buffer has filled, computed from the configuration and
//! the sensor's channel count alone. Sans-IO; the [`super::Detector`] adds it up and
//! refuses a new sensor whose estimate does not fit.
//!
//! It is a capacity bound, not a measurement: a new sensor costs far less until its
//! windows, training buffer and histories fill (hours at one reading a second with the
//! defaults), and the estimate is charged from the first reading, so the budget holds
//! when they have. Per sensor, with `w = size × channels`, `step = stride × channels`:
//!
//! | part | bytes |
//! |---|---|
//! | window, its copy and timestamps | `8 × (2w + size)` |
//! | reorder buffer and resend memory | `(reorder_rows + 1) × (8 × channels + 48) + 8 × 64` |
//! | training buffer and alert hold-back (each: `f32` value stream with 1/8 slack and room for 8 broken runs, runs of windows) | `2 × TrainingBuffer::footprint` ≈ `2 × (4.5 × (buffer × step + w) + 32w)` |
//! | threshold (block summaries, `RollingQuantile::footprint`) | ≈ `4 × window / 20 + 200 × 20` (6 KB at the defaults) |
//! | anomaly-score references (window and point: rolling-maximum deques) | `2 × 16 × score.history / 8` |
//! | recent range (`score.range_rows`, a min and a max deque per channel) | `2 × 16 × range_rows × channels / 8` |
//! | autoencoder (weights; a copy while a retrain is out) and PCA | `2 × 8 × weights + 8 × (pca + 1) × w` |
//! | id, channel names, map entry, scoring workspace, drift state | `1024 + 8 × 6w` |
//!
//! The monotone deques (references and range) hold one entry per value only on a
//! strictly falling (or rising) series; the estimate charges an eighth of that, which
//! covers noisy signals with room (docs/performance.md measures them), not a ramp that
//! lasts `history` windows. With the defaults (window 32, buffer 5,000, threshold window
//! 10,000, history 5,000, range 5,000 rows) a four-channel sensor is estimated at about
//! 380 KB; `docs/performance.md` compares the estimate with the resident set measured
//! (`cargo run --release --example memory`).

use crate::config::{DetectorConfig, ScoreStrategy};
use crate::threshold::RollingQuantile;
use crate::trainer::TrainingBuffer;

use super::reorder::RESEND_MEMORY;

/// Fixed cost per sensor: its id and channel names, its map entry, drift state and the
/// small structs around the buffers.
const PER_SENSOR: usize = 1024;

/// The estimated bytes of one sensor's pipeline with `channels` channels, once full.
pub fn pipeline_bytes(config: &DetectorConfig, channels: usize) -> usize {
    const F: usize = std::mem::size_of::<f64>();
    /// Entries of a monotone deque charged per value of its window (see the docs).
    const DEQUE_SHARE: usize = 8;
    let size = config.window.size;
    let width = size * channels;
    let step = config.window.stride * channels;
    let window = F * (2 * width + size);
    let reorder = (config.reorder_rows + 1) * (F * channels + 48) + F * RESEND_MEMORY;
    let training = 2 * TrainingBuffer::footprint(config.training.buffer, width, step);
    let threshold = RollingQuantile::footprint(config.threshold.window, max_quantile(config));
    let score = match config.score {
        ScoreStrategy::Onset(o) => {
            let range = o.range.map_or(0, |r| 2 * 16 * r.rows.get() * channels);
            (2 * 16 * o.history.get() + range) / DEQUE_SHARE
        }
        ScoreStrategy::Ratio => 0,
    };
    let workspace = F * 6 * width;
    let stuck = std::mem::size_of::<super::stuck::Run>() * channels;
    PER_SENSOR
        + workspace
        + window
        + reorder
        + training
        + threshold
        + score
        + stuck
        + model_bytes(config, width)
}

/// The lowest quantile any sensor uses (the threshold's merged list grows as q falls).
fn max_quantile(config: &DetectorConfig) -> f64 {
    let t = &config.threshold;
    (t.sensors.values()).fold(t.default.quantile.get(), |q, s| q.min(s.quantile.get()))
}

/// The autoencoder's weights (twice: the model in force and a warm-started copy while a
/// retrain is out) and the PCA components and mean.
pub(super) fn model_bytes(config: &DetectorConfig, width: usize) -> usize {
    const F: usize = std::mem::size_of::<f64>();
    let Ok(params) = config.model.ae_params(width) else {
        return 0;
    };
    let mut widths = vec![width];
    widths.extend_from_slice(params.hidden());
    widths.push(params.latent());
    widths.extend(params.hidden().iter().rev());
    widths.push(width);
    let weights: usize = widths.windows(2).map(|p| p[0] * p[1] + p[1]).sum();
    2 * F * weights + F * (config.model.pca_components + 1) * width
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn defaults() -> DetectorConfig {
        Config::from_toml_str("").unwrap().detector
    }

    #[test]
    fn the_default_four_channel_sensor_is_about_350_kilobytes() {
        let bytes = pipeline_bytes(&defaults(), 4);
        assert!((300_000..450_000).contains(&bytes), "{bytes}");
    }

    #[test]
    fn the_estimate_grows_with_channels_and_buffers() {
        let c = defaults();
        assert!(pipeline_bytes(&c, 4) > pipeline_bytes(&c, 2));
        let mut small = c.clone();
        small.training.buffer = 100;
        small.threshold.window = 100;
        // 2 buffers × 4 bytes × 4,900 windows × step 2 (plus 1/8 slack), and the
        // threshold's ~6 KB less what a window of 100 needs.
        let saved = pipeline_bytes(&c, 2) - pipeline_bytes(&small, 2);
        let training = 2 * 4 * 4900 * 2;
        assert!((training..training * 9 / 8 + 8_000).contains(&saved), "{saved}");
    }
}
