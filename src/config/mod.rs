//! Configuration: [`raw::RawConfig`] mirrors the TOML file; [`Config`] is the checked
//! form every other module uses. The check collects every problem in one pass, each
//! with its dotted key and the bad value, so `check-config` can list them all.
//!
//! Here: the errors, the whole [`Config`] and the daemon's sections; `detector` holds
//! the checked settings of the sans-IO detector ([`DetectorConfig`] and its parts),
//! `raw` the file as written, `validate` the check from one to the other.

mod detector;
pub mod raw;
mod validate;

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

pub use detector::*;
pub use raw::RawConfig;

use crate::alert::AlertParams;
use crate::cluster::Partition;
use crate::model::ModelError;
use crate::model::autoencoder::{AutoencoderKind, AutoencoderParams};
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

/// Keys earlier versions had, each with what replaced it, so `check-config` can say
/// more than "unknown key".
const REMOVED: &[(&str, &str)] = &[
    (
        "training.policy",
        "[learning] decides what is learned: windows over the threshold never are",
    ),
    (
        "threshold.learn_flagged",
        "[learning] decides what is learned: scores over the threshold stay out of the window",
    ),
    (
        "score.learn_flagged",
        "[learning] decides what is learned: errors over the threshold stay out of the reference",
    ),
    (
        "threshold.reseed",
        "the threshold is rebuilt from the new model's errors when an alert is accepted ([learning] accept_after_secs)",
    ),
    (
        "score.reseed",
        "score.strategy = \"onset\" always rebuilds its reference from each new model's errors",
    ),
    (
        "score.quantile",
        "score.strategy = \"onset\" uses the maximum of score.history errors",
    ),
    ("score.tail_rows", "the whole window's error is scored"),
    (
        "score.combine",
        "score.strategy = \"onset\" takes the larger of its components",
    ),
    (
        "alert.trigger",
        "alerts follow the threshold; anomaly_score is in every event (score.strategy)",
    ),
    (
        "alert.anomaly_threshold",
        "alerts follow the threshold; anomaly_score is in every event (score.strategy)",
    ),
];

/// Validated `[mqtt]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MqttConfig {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// This instance's client id: `[mqtt] client_id`, with `-<index>` when
    /// `[cluster] instances > 1` (the publisher appends `-pub`).
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
    /// `[alert] stale_after_secs`: silence after which a sensor is stale (`None` = off).
    pub stale_after: Option<Duration>,
    /// `[alerts] expiry_secs`: age after which an alert is no longer delivered (`None` =
    /// never).
    pub alert_expiry: Option<Duration>,
    /// `[homeassistant]`, when enabled.
    pub homeassistant: Option<HomeAssistantConfig>,
    /// This instance's share of the sensors (`[cluster]`). `mqtt.client_id` and
    /// `alerts.status_topic` above are already this instance's own names.
    pub cluster: Partition,
}

/// Validated `[homeassistant]` (present only when `enabled`).
#[derive(Clone, Debug, PartialEq)]
pub struct HomeAssistantConfig {
    /// Discovery prefix, e.g. `homeassistant`.
    pub prefix: String,
    /// Score topic template (contains `{sensor}`).
    pub score_topic: String,
    /// Least time between two score updates of one sensor.
    pub score_every: Duration,
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
            .map(|key| {
                let message = match REMOVED.iter().find(|(k, _)| *k == key) {
                    Some((_, instead)) => format!("was removed: {instead}"),
                    None => "is not a known key".into(),
                };
                ConfigProblem { key, message }
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
