//! Metrics: every metric name in one place, the Prometheus recorder, the shared
//! [`Health`] flags, and the tiny HTTP server that exposes `/metrics` and `/healthz`.
//!
//! Every stage records through the `metrics` facade macros using a constant from
//! [`names`], so a typo cannot create a second series and `grep names::X` finds every
//! writer. [`install`] puts the Prometheus recorder in place and describes each metric
//! (help text and unit); [`serve`] renders it. Per-sensor gauges go through
//! [`SensorLabels`], which caps label cardinality.
//!
//! What it does not do: decide what to count (the stages do), or run the exporter's own
//! hyper-based listener (left out to keep aws-lc and hyper off the gateway; [`serve`]
//! is a small tokio server instead).

mod http;
mod sensors;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use http::{serve, serve_on};
pub use sensors::{DEFAULT_MAX_TRACKED_SENSORS, OTHER_SENSORS, ScoreSample, SensorLabels};

/// Metric names. Label keys are noted per metric and listed in [`labels`].
pub mod names {
    /// Counter: readings accepted from the broker (after parsing).
    pub const READINGS: &str = "anomalyd_readings_total";
    /// Counter: windows scored by the autoencoder.
    pub const WINDOWS_SCORED: &str = "anomalyd_windows_scored_total";
    /// Counter `{event}`: alert events, `raised`, `cleared`, `stale` or `fresh`.
    pub const ALERTS: &str = "anomalyd_alerts_total";
    /// Alerts accepted as the new normal (`[learning] accept_after_secs`).
    pub const ALERTS_ACCEPTED: &str = "anomalyd_alerts_accepted_total";
    /// Counter `{kind}`: payloads rejected by the parser (json, nan, oversize, ...).
    pub const PAYLOAD_ERRORS: &str = "anomalyd_payload_errors_total";
    /// Counter: readings assembled from partial updates that could not be completed (a
    /// channel without a value within `[[sources]] hold_secs`); dropped.
    pub const READINGS_INCOMPLETE: &str = "anomalyd_readings_incomplete_total";
    /// Counter: payloads with a nested object or array that no configuration selects
    /// (left out of automatic channel discovery, never read as channels).
    pub const PAYLOAD_UNSELECTED: &str = "anomalyd_payload_unselected_total";
    /// Counter `{reason}`: readings dropped after parsing (queue_full, out_of_order,
    /// duplicate, sensor_cap, other_instance, ...).
    pub const READINGS_DROPPED: &str = "anomalyd_readings_dropped_total";
    /// Counter: readings that arrived after a newer reading of their sensor and were
    /// scored in timestamp order by the reorder buffer (`[window] reorder_rows`).
    pub const READINGS_REORDERED: &str = "anomalyd_readings_reordered_total";
    /// Counter: sensors whose channel set changed during warm-up (a new channel before
    /// the first model); their warm-up restarted with the wider set.
    pub const CHANNEL_SETS_WIDENED: &str = "anomalyd_channel_sets_widened_total";
    /// Counter `{kind}`: idle sensors evicted (`limits.sensor_idle_secs`), `parked`
    /// (kept as their persisted state) or `dropped` (no model yet).
    pub const SENSORS_EVICTED: &str = "anomalyd_sensors_evicted_total";
    /// Gauge, bytes: the detector's memory estimate of its tracked and parked sensors
    /// (what `limits.max_memory_mb` is checked against).
    pub const MEMORY_ESTIMATE: &str = "anomalyd_memory_estimate_bytes";
    /// Counter `{result}`: retrains finished, `ok` or `error`.
    pub const RETRAINS: &str = "anomalyd_retrains_total";
    /// Histogram, seconds: wall time of one retrain.
    pub const RETRAIN_SECONDS: &str = "anomalyd_retrain_seconds";
    /// Gauge: training jobs waiting for a `training.parallel` permit (the trainer
    /// keeps up while this stays near 0).
    pub const TRAINING_BACKLOG: &str = "anomalyd_training_backlog";
    /// Gauge `{sensor}`: version of the model scoring the sensor.
    pub const MODEL_VERSION: &str = "anomalyd_model_version";
    /// Gauge `{sensor}`: 1 once the sensor's threshold has `min_scores` scores.
    pub const THRESHOLD_READY: &str = "anomalyd_threshold_ready";
    /// Gauge `{sensor}`: the newest scored window's thresholded score (written once a
    /// second; tracked sensors only, none for `_other`).
    pub const SCORE: &str = "anomalyd_score";
    /// Gauge `{sensor}`: the threshold in force for that window (once ready).
    pub const THRESHOLD: &str = "anomalyd_threshold";
    /// Gauge `{sensor}`: that window's `anomaly_score`, in [0, 1].
    pub const ANOMALY_SCORE: &str = "anomalyd_anomaly_score";
    /// Gauge: sensors currently tracked by the detector.
    pub const SENSORS: &str = "anomalyd_sensors";
    /// Histogram, seconds: scoring latency of one window (AE + PCA + threshold).
    pub const SCORE_SECONDS: &str = "anomalyd_score_seconds";
    /// Gauge: 1 while connected to the broker.
    pub const BROKER_CONNECTED: &str = "anomalyd_broker_connected";
    /// Gauge: alerts waiting in the publisher's queue.
    pub const ALERTS_QUEUED: &str = "anomalyd_alerts_queued";
    /// Counter: alerts dropped because the publisher's queue was full.
    pub const ALERTS_DROPPED: &str = "anomalyd_alerts_dropped_total";
    /// Counter: alert events older than `[alerts] expiry_secs` when they could go out.
    pub const ALERTS_EXPIRED: &str = "anomalyd_alerts_expired_total";
    /// Counter `{result}`: snapshot saves, `ok` or `error`.
    pub const SNAPSHOTS: &str = "anomalyd_snapshots_total";
    /// Histogram, seconds: wall time of one snapshot save (encode + write + fsync).
    pub const SNAPSHOT_SECONDS: &str = "anomalyd_snapshot_seconds";
    /// Counter: reconnect attempts to the broker after a connection error.
    pub const RECONNECTS: &str = "anomalyd_reconnects_total";
    /// Counter: sensor windows cleared by a gap in the telemetry (each then refills
    /// before it is scored again).
    pub const WINDOW_RESETS: &str = "anomalyd_window_resets_total";
}

/// Label keys used with [`names`].
pub mod labels {
    /// Alert event: `raised` or `cleared`.
    pub const EVENT: &str = "event";
    /// Payload error kind.
    pub const KIND: &str = "kind";
    /// Drop reason.
    pub const REASON: &str = "reason";
    /// Outcome: `ok` or `error`.
    pub const RESULT: &str = "result";
    /// Sensor id, or [`super::OTHER_SENSORS`] past the cardinality cap.
    pub const SENSOR: &str = "sensor";
}

/// Errors from installing the recorder or serving HTTP.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Another (non-anomalyd) global recorder is already installed, or the builder
    /// rejected its configuration.
    #[error("cannot install prometheus recorder: {0}")]
    Install(String),
    /// The HTTP listener could not bind.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The address from `metrics.listen`.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric with its kind, unit and help text; [`install`] describes them all.
#[rustfmt::skip]
const DESCRIPTIONS: &[(&str, Kind, Unit, &str)] = &[
    (names::READINGS, Kind::Counter, Unit::Count, "Readings accepted from the broker."),
    (names::WINDOWS_SCORED, Kind::Counter, Unit::Count, "Windows scored by the autoencoder."),
    (names::ALERTS, Kind::Counter, Unit::Count, "Alert events by event (raised, cleared, stale, fresh)."),
    (names::ALERTS_ACCEPTED, Kind::Counter, Unit::Count, "Alerts accepted as the new normal ([learning] accept_after_secs)."),
    (names::PAYLOAD_ERRORS, Kind::Counter, Unit::Count, "Rejected payloads by kind."),
    (names::READINGS_INCOMPLETE, Kind::Counter, Unit::Count, "Readings from partial updates left incomplete ([[sources]] hold_secs); dropped."),
    (names::PAYLOAD_UNSELECTED, Kind::Counter, Unit::Count, "Payloads with a nested object or array no configuration selects (not read)."),
    (names::READINGS_DROPPED, Kind::Counter, Unit::Count, "Readings dropped after parsing, by reason."),
    (names::READINGS_REORDERED, Kind::Counter, Unit::Count, "Late readings put back in timestamp order and scored."),
    (names::CHANNEL_SETS_WIDENED, Kind::Counter, Unit::Count, "Channel sets widened during warm-up (new channel before the first model); warm-up restarted."),
    (names::SENSORS_EVICTED, Kind::Counter, Unit::Count, "Idle sensors evicted by kind (parked, dropped)."),
    (names::MEMORY_ESTIMATE, Kind::Gauge, Unit::Bytes, "Estimated memory of the detector's sensors (limits.max_memory_mb)."),
    (names::RETRAINS, Kind::Counter, Unit::Count, "Finished retrains by result (ok, error)."),
    (names::RETRAIN_SECONDS, Kind::Histogram, Unit::Seconds, "Wall time of one retrain."),
    (names::TRAINING_BACKLOG, Kind::Gauge, Unit::Count, "Training jobs waiting for a training.parallel permit."),
    (names::MODEL_VERSION, Kind::Gauge, Unit::Count, "Model version scoring each sensor (_other: newest among uncapped sensors)."),
    (names::THRESHOLD_READY, Kind::Gauge, Unit::Count, "1 once a sensor's threshold is warm (_other: count of ready uncapped sensors)."),
    (names::SCORE, Kind::Gauge, Unit::Count, "Newest thresholded score of each sensor (written once a second; not for _other)."),
    (names::THRESHOLD, Kind::Gauge, Unit::Count, "Threshold in force for each sensor's newest score (once ready; not for _other)."),
    (names::ANOMALY_SCORE, Kind::Gauge, Unit::Count, "Newest anomaly_score of each sensor, in [0, 1] (written once a second; not for _other)."),
    (names::SENSORS, Kind::Gauge, Unit::Count, "Sensors tracked by the detector."),
    (names::SCORE_SECONDS, Kind::Histogram, Unit::Seconds, "Scoring latency of one window."),
    (names::BROKER_CONNECTED, Kind::Gauge, Unit::Count, "1 while connected to the MQTT broker."),
    (names::ALERTS_QUEUED, Kind::Gauge, Unit::Count, "Alerts waiting to be published."),
    (names::ALERTS_DROPPED, Kind::Counter, Unit::Count, "Alerts dropped because the publish queue was full."),
    (names::ALERTS_EXPIRED, Kind::Counter, Unit::Count, "Alert events not delivered: older than [alerts] expiry_secs."),
    (names::SNAPSHOTS, Kind::Counter, Unit::Count, "Snapshot saves by result (ok, error)."),
    (names::SNAPSHOT_SECONDS, Kind::Histogram, Unit::Seconds, "Wall time of one snapshot save."),
    (names::RECONNECTS, Kind::Counter, Unit::Count, "Broker reconnect attempts."),
    (names::WINDOW_RESETS, Kind::Counter, Unit::Count, "Sensor windows cleared by a gap in the telemetry."),
];

/// Histogram buckets in seconds. Scoring is micro- to milliseconds on a gateway CPU;
/// a retrain milliseconds on a one-channel sensor to minutes on a wide one with a large
/// buffer; snapshots milliseconds to seconds.
#[rustfmt::skip]
const BUCKETS: &[(&str, &[f64])] = &[
    (names::SCORE_SECONDS, &[1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1]),
    (names::RETRAIN_SECONDS, &[0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 300.0]),
    (names::SNAPSHOT_SECONDS, &[1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
];

/// The handle of the recorder this process installed; a std `Mutex` because it is
/// only held for the few microseconds of an install, never across an `.await`.
static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the Prometheus recorder as the global `metrics` recorder and describes
/// every metric. Safe to call more than once (tests do): later calls return the
/// handle from the first.
///
/// # Errors
///
/// [`MetricsError::Install`] if a different global recorder is already installed.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in BUCKETS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
            .map_err(|e| MetricsError::Install(e.to_string()))?;
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| MetricsError::Install(e.to_string()))?;
    describe_all();
    *installed = Some(handle.clone());
    Ok(handle)
}

fn describe_all() {
    for &(name, kind, unit, help) in DESCRIPTIONS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, unit, help),
            Kind::Gauge => metrics::describe_gauge!(name, unit, help),
            Kind::Histogram => metrics::describe_histogram!(name, unit, help),
        }
    }
}

/// Liveness flags shared by ingest, the detector, `/healthz` and the systemd
/// watchdog. Cheap to clone; all clones see the same flags. Both start `false`: the
/// daemon is unhealthy until it has proven otherwise.
#[derive(Clone, Debug, Default)]
pub struct Health {
    /// Set by ingest on ConnAck, cleared on a connection error.
    broker_connected: Arc<AtomicBool>,
    /// Set by the detector task when it starts, cleared when it ends.
    detector_alive: Arc<AtomicBool>,
}

// `Relaxed` throughout: each flag is a standalone fact and guards no other data.
impl Health {
    /// Both flags `false`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the broker connection state; also sets the `broker_connected` gauge.
    pub fn set_broker_connected(&self, connected: bool) {
        self.broker_connected.store(connected, Ordering::Relaxed);
        metrics::gauge!(names::BROKER_CONNECTED).set(if connected { 1.0 } else { 0.0 });
    }

    /// Records whether the detector task is running.
    pub fn set_detector_alive(&self, alive: bool) {
        self.detector_alive.store(alive, Ordering::Relaxed);
    }

    /// Whether the broker is connected.
    pub fn broker_connected(&self) -> bool {
        self.broker_connected.load(Ordering::Relaxed)
    }

    /// Whether the detector task is running.
    pub fn detector_alive(&self) -> bool {
        self.detector_alive.load(Ordering::Relaxed)
    }

    /// `Ok` when healthy, else every reason joined by "; ".
    ///
    /// # Errors
    ///
    /// The reasons the daemon is unhealthy, e.g. "broker disconnected".
    pub fn check(&self) -> Result<(), String> {
        let mut reasons = Vec::new();
        if !self.broker_connected() {
            reasons.push("broker disconnected");
        }
        if !self.detector_alive() {
            reasons.push("detector not running");
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_twice_returns_a_working_handle() {
        let first = install().expect("install");
        let second = install().expect("second install is a no-op");
        metrics::counter!(names::READINGS).increment(3);
        metrics::counter!(names::ALERTS, labels::EVENT => "raised").increment(1);
        let text = second.render();
        assert!(text.contains("anomalyd_readings_total"), "{text}");
        assert!(
            text.contains(r#"anomalyd_alerts_total{event="raised"}"#),
            "{text}"
        );
        assert!(text.contains("# HELP anomalyd_readings_total"), "{text}");
        assert_eq!(first.render().lines().count(), text.lines().count());
    }

    #[test]
    fn histograms_render_with_buckets() {
        let handle = install().expect("install");
        metrics::histogram!(names::SCORE_SECONDS).record(2e-4);
        let text = handle.render();
        assert!(
            text.contains(r#"anomalyd_score_seconds_bucket{le="0.0005"}"#),
            "{text}"
        );
    }

    #[test]
    fn every_metric_is_described_once() {
        let mut seen: Vec<&str> = DESCRIPTIONS.iter().map(|d| d.0).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), DESCRIPTIONS.len());
        assert!(seen.iter().all(|n| n.starts_with("anomalyd_")));
    }

    #[test]
    fn health_reports_every_reason() {
        let health = Health::new();
        assert_eq!(
            health.check(),
            Err("broker disconnected; detector not running".to_owned())
        );
        health.set_broker_connected(true);
        health.clone().set_detector_alive(true);
        assert_eq!(health.check(), Ok(()));
        health.set_detector_alive(false);
        assert_eq!(health.check(), Err("detector not running".to_owned()));
    }
}
