//! The alert event payload ([`AlertEvent`], JSON on the alert topic), its RFC 3339 time
//! and the per-channel error breakdown ([`channel_contributions`]).

use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};

use super::{AlertEventKind, ClearReason, Severity};

/// One channel's part in a window's reconstruction error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelContribution {
    /// Channel name, as configured for the sensor.
    pub channel: String,
    /// Mean squared reconstruction error over that channel's inputs in the window.
    pub error: f64,
    /// Fraction of the window's total squared error; the shares sum to 1.
    pub share: f64,
}

/// A channel whose value has not changed for far longer than it ever stayed flat
/// before ([`crate::detector::stuck`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StuckChannel {
    /// Channel name, as configured for the sensor.
    pub channel: String,
    /// Readings in a row with the same value, up to the triggering one.
    pub rows: u32,
    /// The longest flat stretch the channel had before.
    pub longest_before: u32,
}

/// The alert message published on the alert topic (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Shared by a `raised` and its `cleared`; see [`super::severity::alert_id`].
    pub alert_id: String,
    /// Sensor id, unsanitised.
    pub sensor: String,
    /// `raised` or `cleared`.
    pub event: AlertEventKind,
    /// From `over_by` at the raise ([`super::SeverityBands`]); a `cleared` repeats its raise's.
    pub severity: Severity,
    /// With `cleared`: `recovered` or `accepted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ClearReason>,
    /// Whether the detector learns this sensor's windows from now on: false while an
    /// alert is raised (its windows over the threshold are kept out of the threshold,
    /// the score reference and the training buffer, and held for acceptance).
    #[serde(default)]
    pub learning: bool,
    /// Timestamp of the triggering reading, Unix seconds.
    pub ts: f64,
    /// The same timestamp as RFC 3339 UTC with milliseconds (see [`rfc3339`]).
    pub ts_rfc3339: String,
    /// Autoencoder score (reconstruction MSE) of the triggering window.
    pub score: f64,
    /// Threshold the score was compared with (rolling quantile, or the static floor).
    pub threshold: f64,
    /// Quantile level of the rolling threshold, e.g. 0.995.
    pub quantile: f64,
    /// `score / threshold`.
    pub over_by: f64,
    /// PCA baseline score of the same window, when a PCA model exists.
    pub pca_score: Option<f64>,
    /// The window's anomaly score in [0, 1] (onset-only, relative to past errors; see
    /// `[score]`), whatever `alert.trigger` is.
    #[serde(default)]
    pub anomaly_score: f64,
    /// Channels whose reading left their recent range (`score.range_margin`); absent
    /// from the JSON when none did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outside_range: Vec<String>,
    /// Channels stuck at one value (`[alert] stuck_rows`); absent from the JSON when
    /// none is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stuck: Vec<StuckChannel>,
    /// Version of the autoencoder that scored the window.
    pub model_version: u64,
    /// Per-channel error breakdown, in channel order.
    pub channels: Vec<ChannelContribution>,
    /// Timestamp of the window's oldest reading, Unix seconds.
    pub window_start: f64,
    /// Timestamp of the window's newest reading, Unix seconds.
    pub window_end: f64,
}

impl AlertEvent {
    /// The event as compact JSON. Non-finite numbers become `null`.
    pub fn to_json(&self) -> String {
        // Cannot fail: every field is a string, number, enum or Vec of those, and
        // serde_json writes non-finite floats as null rather than erroring.
        serde_json::to_string(self).expect("alert event serialises")
    }
}

/// Formats Unix seconds as RFC 3339 UTC with milliseconds, e.g.
/// `2024-05-01T12:00:00.250Z`; an empty string if `ts` is not representable.
pub fn rfc3339(ts: f64) -> String {
    if !ts.is_finite() {
        return String::new();
    }
    let secs = ts.floor();
    // Clamp: rounding can give 1e9 nanos for values a hair below an integer.
    let nanos = (((ts - secs) * 1e9).round() as u32).min(999_999_999);
    if secs < i64::MIN as f64 || secs > i64::MAX as f64 {
        return String::new();
    }
    DateTime::from_timestamp(secs as i64, nanos)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Splits a window's squared reconstruction error by channel.
///
/// `input` and `recon` are flattened time-major windows (`[t * channels + c]`) of the
/// same length; `names` gives one name per channel. A window with zero total error
/// gets equal shares, so shares always sum to 1.
///
/// # Panics
///
/// If `input` and `recon` differ in length, `names` is empty, or the length is not a
/// multiple of `names.len()`.
pub fn channel_contributions<S: AsRef<str>>(
    names: &[S],
    input: &[f64],
    recon: &[f64],
) -> Vec<ChannelContribution> {
    let c = names.len();
    assert!(c > 0, "channel_contributions needs at least one channel");
    assert_eq!(
        input.len(),
        recon.len(),
        "input and reconstruction lengths differ"
    );
    assert_eq!(input.len() % c, 0, "window length is not a multiple of channels");
    let steps = (input.len() / c).max(1) as f64;
    let mut sums = vec![0.0; c];
    for (i, (x, y)) in input.iter().zip(recon).enumerate() {
        sums[i % c] += (x - y) * (x - y);
    }
    let total: f64 = sums.iter().sum();
    names
        .iter()
        .zip(&sums)
        .map(|(name, &s)| ChannelContribution {
            channel: name.as_ref().to_owned(),
            error: s / steps,
            share: if total > 0.0 { s / total } else { 1.0 / c as f64 },
        })
        .collect()
}
