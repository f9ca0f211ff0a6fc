//! Configuration: [`raw::RawConfig`] mirrors the TOML file; [`Config`] is the checked
//! form every other module uses. The check collects every problem in one pass, each
//! with its dotted key and the bad value, so `check-config` can list them all.

pub mod raw;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use raw::RawConfig;

use crate::alert::{AlertParams, AlertTrigger};
use crate::model::ModelError;
use crate::model::autoencoder::{AutoencoderKind, AutoencoderParams, AutoencoderValidParams};
use crate::model::normalise::NormaliseMode;
use crate::window::WindowParams;

/// One problem found in a config file.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigProblem {
    /// Dotted key, e.g. `threshold.quantile`.
    pub key: String,
    /// What is wrong, naming the value.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.key, self.message)
    }
}

/// Every problem in a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// One or more problems, each with its key.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigProblem>),
}

/// A quantile in (0, 1].
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Quantile(f64);

impl Quantile {
    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Quantile {
    type Error = String;
    fn try_from(q: f64) -> Result<Self, String> {
        if q > 0.0 && q <= 1.0 {
            Ok(Self(q))
        } else {
            Err(format!("must be in (0, 1], got {q}"))
        }
    }
}

/// Which model's score the threshold and alerts follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreSource {
    /// The autoencoder (default).
    Ae,
    /// The PCA baseline.
    Pca,
    /// The trivial baseline (distance from the training mean window), for comparison.
    Mean,
    /// The mean of the autoencoder's and the PCA baseline's errors (a two-model
    /// ensemble; both are in the same normalised units).
    AePca,
}

impl ScoreSource {
    /// Picks this source's score out of a window's scores.
    pub fn pick(self, s: &crate::model::WindowScores) -> f64 {
        match self {
            Self::Ae => s.ae,
            Self::Pca => s.pca,
            Self::Mean => s.mean,
            Self::AePca => 0.5 * (s.ae + s.pca),
        }
    }
}

/// Which recent windows the retrain learns from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainPolicy {
    /// Windows over the threshold are not learned (default).
    SkipFlagged,
    /// Every window is learned.
    LearnAll,
}

/// Validated `[training]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingConfig {
    /// Windows before the first model.
    pub min_windows: usize,
    /// Scored windows between retrains; `None` = never.
    pub retrain_every: Option<usize>,
    /// Capacity of the training buffer, windows.
    pub buffer: usize,
    /// What enters the buffer.
    pub policy: TrainPolicy,
    /// Trainings the daemon runs at once (≥ 1).
    pub parallel: usize,
}

/// Validated `[model]`: builds the autoencoder parameters for a given input width.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Template with every hyper-parameter; `n_inputs` is set per sensor.
    pub template: AutoencoderParams,
    /// Kind, for reports.
    pub kind: AutoencoderKind,
    /// PCA components (resolved: never 0).
    pub pca_components: usize,
    /// Channel scaling implied by the loss.
    pub normalise: NormaliseMode,
}

impl ModelConfig {
    /// Autoencoder parameters for windows of `n_inputs` values.
    ///
    /// # Errors
    ///
    /// A [`ModelError`] if the template does not fit that width.
    pub fn ae_params(&self, n_inputs: usize) -> Result<AutoencoderValidParams, ModelError> {
        self.template.clone().n_inputs(n_inputs).check()
    }
}

/// Threshold settings for one sensor (after overrides).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SensorThreshold {
    /// The quantile.
    pub quantile: Quantile,
    /// The static floor.
    pub floor: f64,
}

/// Validated `[threshold]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdConfig {
    /// Default quantile and floor.
    pub default: SensorThreshold,
    /// Scores the quantile is taken over.
    pub window: usize,
    /// Scores before any alert.
    pub min_scores: usize,
    /// AE or PCA.
    pub score: ScoreSource,
    /// Scores over the threshold enter the quantile window too.
    pub learn_flagged: bool,
    /// Rebuild the quantile window from the new model's scores of the training buffer at
    /// every (re)train.
    pub reseed: bool,
    /// Per-sensor overrides.
    pub sensors: BTreeMap<String, SensorThreshold>,
}

impl ThresholdConfig {
    /// The settings that apply to `sensor`.
    pub fn for_sensor(&self, sensor: &str) -> SensorThreshold {
        self.sensors.get(sensor).copied().unwrap_or(self.default)
    }
}

/// Validated `[score]`: how `anomaly_score` is derived from past scores only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreConfig {
    /// Past scores kept as reference.
    pub history: usize,
    /// Quantile of the reference (1 = maximum).
    pub quantile: Quantile,
    /// Onset suppression, rows (0 = off).
    pub onset_rows: usize,
    /// Readings at the end of each window the error is averaged over (0 = the whole
    /// window).
    pub tail_rows: usize,
    /// Rebuild the reference from the new model's errors on the training buffer at
    /// every (re)train.
    pub reseed: bool,
    /// Errors of windows over the threshold join the reference too.
    pub learn_flagged: bool,
    /// Second, per-reading component of `anomaly_score` (off by default).
    pub point: PointScore,
    /// How the window and point components are combined.
    pub combine: Combine,
    /// Recent-range component: a reading this fraction of the range beyond the range
    /// of the previous `range_rows` readings scores 1 (`None` = off).
    pub range_margin: Option<f64>,
    /// Readings the recent range covers.
    pub range_rows: usize,
}

/// The newest reading's own error, scored beside the window error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointScore {
    /// No point component: `anomaly_score` is the window component alone.
    Off,
    /// Mean over channels of the newest reading's squared AE reconstruction error.
    Ae,
    /// Mean over channels of the newest reading's squared normalised value (its
    /// deviation from the training mean, in training standard deviations).
    Z,
}

/// How the window and point anomaly scores are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    /// The larger of the two.
    Max,
    /// Their mean.
    Mean,
}

/// Drift removal applied to readings before they enter the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detrend {
    /// Raw readings (default).
    None,
    /// Each channel minus an exponential moving average of its past readings
    /// (alpha = 2 / (rows + 1)); the EMA starts at the first reading.
    Ema {
        /// Span of the EMA, readings.
        rows: usize,
    },
    /// Each channel of a window minus its mean over that window.
    WindowMean,
}

/// Everything the sans-IO detector needs.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Window shape (channels are set per sensor).
    pub window: WindowParams,
    /// Models.
    pub model: ModelConfig,
    /// Retraining.
    pub training: TrainingConfig,
    /// Threshold.
    pub threshold: ThresholdConfig,
    /// Alert lifecycle.
    pub alert: AlertParams,
    /// Anomaly score mapping.
    pub score: ScoreConfig,
    /// Drift removal before windowing.
    pub detrend: Detrend,
    /// Channel names the detrend applies to; empty = every channel.
    pub detrend_channels: Vec<String>,
}

/// Validated `[mqtt]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MqttConfig {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Client id.
    pub client_id: String,
    /// Keep-alive.
    pub keep_alive: Duration,
    /// Persistent session (clean_session = false).
    pub persistent_session: bool,
    /// 3 or 5.
    pub protocol: u8,
    /// Telemetry subscription QoS (0 or 1).
    pub qos: u8,
    /// User name.
    pub username: Option<String>,
    /// Password file path.
    pub password_file: Option<String>,
    /// TLS files, when enabled.
    pub tls: Option<raw::RawTls>,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
}

/// The whole validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Broker.
    pub mqtt: MqttConfig,
    /// Subscriptions (validated, kept in raw shape).
    pub sources: Vec<raw::RawSource>,
    /// Alert topics and queue.
    pub alerts: raw::RawAlerts,
    /// Snapshot directory and cadence.
    pub state: raw::RawState,
    /// Metrics endpoint (`None` = disabled).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Input limits.
    pub limits: raw::RawLimits,
    /// The detector core.
    pub detector: DetectorConfig,
}

impl Config {
    /// Parses and checks TOML text, reporting every problem at once.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] with every problem found.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let mut unknown = Vec::new();
        let de = toml::de::Deserializer::new(text);
        let raw: Result<RawConfig, _> = serde_ignored::deserialize(de, |path| unknown.push(path.to_string()));
        let mut problems: Vec<ConfigProblem> = unknown
            .into_iter()
            .map(|key| ConfigProblem {
                key,
                message: "is not a known key".into(),
            })
            .collect();
        match raw {
            Ok(raw) => match Config::try_from(raw) {
                Ok(cfg) if problems.is_empty() => Ok(cfg),
                Ok(_) => Err(ConfigError::Invalid(problems)),
                Err(ConfigError::Invalid(more)) => {
                    problems.extend(more);
                    Err(ConfigError::Invalid(problems))
                }
                Err(other) => Err(other),
            },
            Err(e) => {
                problems.push(ConfigProblem {
                    key: "(file)".into(),
                    message: e.to_string().trim().to_string(),
                });
                Err(ConfigError::Invalid(problems))
            }
        }
    }

    /// Reads and checks a config file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] or [`ConfigError::Invalid`].
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text)
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;
    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        validate::validate(raw)
    }
}

#[cfg(test)]
mod tests;
