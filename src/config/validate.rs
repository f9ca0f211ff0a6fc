//! The check step `RawConfig → Config`: every range and cross-field rule, collected in
//! one pass with dotted keys. Here: the pass itself, `[cluster]`, the memory budget and
//! the timers; `wiring` checks the connections, sources, topics and limits, `detector`
//! the detector's sections.

mod detector;
mod wiring;

use std::time::Duration;

use super::raw::RawConfig;
use super::*;
use crate::cluster::PartitionError;

/// Collects problems while the check runs.
#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(ConfigProblem {
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Records `message` under `key` unless `ok`.
    fn check(&mut self, ok: bool, key: &str, message: impl FnOnce() -> String) {
        if !ok {
            self.add(key, message());
        }
    }

    fn quantile(&mut self, key: &str, q: f64) -> Quantile {
        Quantile::try_from(q).unwrap_or_else(|m| {
            self.add(key, m);
            Quantile(1.0)
        })
    }
}

pub(super) fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let mut p = Problems::default();
    let cluster = cluster(&raw, &mut p);
    let mut mqtt = wiring::mqtt(&raw, &mut p);
    mqtt.client_id = cluster.client_id(&mqtt.client_id);
    wiring::sources(&raw, &mut p);
    wiring::alerts(&raw, &mut p);
    let metrics_listen = wiring::metrics(&raw, &mut p);
    wiring::limits(&raw, &mut p);
    let detector = detector::detector(&raw, &mut p);
    let (stale_after, alert_expiry) = timers(&raw, &mut p);
    let homeassistant = wiring::homeassistant(&raw, &mut p);
    memory_budget(&raw, &detector, &mut p);
    if !p.0.is_empty() {
        return Err(ConfigError::Invalid(p.0));
    }
    let mut alerts = raw.alerts;
    alerts.status_topic = cluster.status_topic(&alerts.status_topic);
    Ok(Config {
        mqtt,
        sources: raw.sources,
        alerts,
        state: raw.state,
        metrics_listen,
        limits: raw.limits,
        detector,
        stale_after,
        alert_expiry,
        homeassistant,
        cluster,
    })
}

/// `[cluster]`: the partition owns its checks; config maps them onto the keys.
fn cluster(raw: &RawConfig, p: &mut Problems) -> Partition {
    let c = &raw.cluster;
    Partition::new(c.instances, c.index).unwrap_or_else(|e| {
        let key = match e {
            PartitionError::NoInstances => "cluster.instances",
            PartitionError::IndexOutOfRange { .. } => "cluster.index",
        };
        p.add(key, e.to_string());
        Partition::default()
    })
}

/// The budget must hold at least one sensor of one channel, or no sensor could ever
/// be tracked.
fn memory_budget(raw: &RawConfig, detector: &DetectorConfig, p: &mut Problems) {
    let mb = raw.limits.max_memory_mb;
    let one = crate::detector::memory::pipeline_bytes(detector, 1);
    p.check(mb == 0 || mb << 20 >= one, "limits.max_memory_mb", || {
        format!(
            "must be 0 (no budget) or hold one sensor ({} MB at these settings), got {mb}",
            one.div_ceil(1 << 20)
        )
    });
}

/// `[alert] stale_after_secs` (`None` = off) and `[alerts] expiry_secs` (`None` = never).
fn timers(raw: &RawConfig, p: &mut Problems) -> (Option<Duration>, Option<Duration>) {
    let stale = raw.alert.stale_after_secs;
    p.check(
        stale.is_finite() && stale >= 0.0,
        "alert.stale_after_secs",
        || format!("must be 0 (off) or a positive number of seconds, got {stale}"),
    );
    let expiry = raw.alerts.expiry_secs;
    // The MQTT 5 message expiry interval is a four-byte integer.
    p.check(expiry <= u64::from(u32::MAX), "alerts.expiry_secs", || {
        format!("must be at most {} (0 = never), got {expiry}", u32::MAX)
    });
    (
        (stale.is_finite() && stale > 0.0).then(|| Duration::from_secs_f64(stale)),
        (expiry > 0).then(|| Duration::from_secs(expiry.min(u64::from(u32::MAX)))),
    )
}
