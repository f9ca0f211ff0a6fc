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
//! | training buffer and alert hold-back (each: value stream and window starts) | `2 × 8 × (buffer × (step + 1) + w)` |
//! | threshold window (value, sequence number, rank index) | `32 × threshold.window` |
//! | anomaly-score references (window and point, value and order) | `2 × 16 × score.history` |
//! | recent range (`score.range_rows`, a min and a max deque per channel) | `2 × 16 × range_rows × channels` |
//! | autoencoder (weights; a copy while a retrain is out) and PCA | `2 × 8 × weights + 8 × (pca + 1) × w` |
//! | id, channel names, map entry, drift state | `1024` |
//!
//! With the defaults (window 32, buffer 5,000, threshold window 10,000, history 5,000,
//! range 5,000 rows) a two-channel sensor is estimated at about 1.1 MB;
//! `docs/systemd.md` compares the estimate with the resident set measured.

use crate::config::{DetectorConfig, ScoreStrategy};

use super::reorder::RESEND_MEMORY;

/// Fixed cost per sensor: its id and channel names, its map entry, drift state and the
/// small structs around the buffers.
const PER_SENSOR: usize = 1024;

/// The estimated bytes of one sensor's pipeline with `channels` channels, once full.
pub fn pipeline_bytes(config: &DetectorConfig, channels: usize) -> usize {
    const F: usize = std::mem::size_of::<f64>();
    let size = config.window.size;
    let width = size * channels;
    let step = config.window.stride * channels;
    let window = F * (2 * width + size);
    let reorder = (config.reorder_rows + 1) * (F * channels + 48) + F * RESEND_MEMORY;
    let training = 2 * F * (config.training.buffer * (step + 1) + width);
    let threshold = 32 * config.threshold.window;
    let score = match config.score {
        ScoreStrategy::Onset(o) => {
            let range = o.range.map_or(0, |r| 2 * 16 * r.rows.get() * channels);
            2 * 16 * o.history.get() + range
        }
        ScoreStrategy::Ratio => 0,
    };
    PER_SENSOR + window + reorder + training + threshold + score + model_bytes(config, width)
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
    fn the_default_two_channel_sensor_is_about_a_megabyte() {
        let bytes = pipeline_bytes(&defaults(), 2);
        assert!((900_000..1_400_000).contains(&bytes), "{bytes}");
    }

    #[test]
    fn the_estimate_grows_with_channels_and_buffers() {
        let c = defaults();
        assert!(pipeline_bytes(&c, 4) > pipeline_bytes(&c, 2));
        let mut small = c.clone();
        small.training.buffer = 100;
        small.threshold.window = 100;
        // 2 buffers × 8 bytes × 4,900 windows × (step 2 + 1), and 32 bytes × 9,900 scores.
        let saved = 2 * 8 * 4900 * 3 + 32 * 9900;
        assert_eq!(pipeline_bytes(&c, 2) - pipeline_bytes(&small, 2), saved);
    }
}
