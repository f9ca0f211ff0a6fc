//! Silent sensors: [`Staleness`] tracks when each sensor's last reading arrived and
//! says when one has been silent for `[alert] stale_after_secs` (`stale`) and when it
//! speaks again (`fresh`); [`StaleEvent`] is the payload of both.
//!
//! Staleness is judged in wall-clock time, by the daemon only: a sensor whose readings
//! stop arriving has no reading time to judge it by, and `replay` has no silence. The
//! tracker is sans-IO (every call takes the time), so it is tested without a clock.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::severity::{IdFamily, Severity, alert_id};
use crate::reading::SensorId;

/// Severity of every `stale` and `fresh` event: a silent sensor is not a process
/// anomaly, but nothing about its process is known while it lasts.
pub const STALE_SEVERITY: Severity = Severity::Major;

/// What a staleness event announces.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StaleEventKind {
    /// No reading for `stale_after_secs`.
    Stale,
    /// The first reading after a `stale`; same `alert_id`.
    Fresh,
}

impl StaleEventKind {
    /// `stale` or `fresh`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stale => "stale",
            Self::Fresh => "fresh",
        }
    }
}

/// The `stale` / `fresh` message, published on the alert topic (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StaleEvent {
    /// Shared by a `stale` and its `fresh`: derived from the sensor and `last_seen`.
    pub alert_id: String,
    /// Sensor id, unsanitised.
    pub sensor: String,
    /// `stale` or `fresh`.
    pub event: StaleEventKind,
    /// Always [`STALE_SEVERITY`].
    pub severity: Severity,
    /// When the daemon noticed (wall clock), unix seconds.
    pub ts: f64,
    /// The same time as RFC 3339 UTC with milliseconds.
    pub ts_rfc3339: String,
    /// Arrival time of the last reading before the silence (wall clock), unix seconds.
    pub last_seen: f64,
    /// Seconds without a reading: at least `stale_after_secs` for `stale`, the whole
    /// silence for `fresh`.
    pub silent_secs: f64,
}

impl StaleEvent {
    /// The event as compact JSON.
    pub fn to_json(&self) -> String {
        // Cannot fail: strings, numbers and enums only; non-finite floats become null.
        serde_json::to_string(self).expect("stale event serialises")
    }
}

/// Per sensor: last arrival and whether a `stale` is outstanding.
#[derive(Clone, Copy, Debug)]
struct Seen {
    /// Arrival of the last reading, wall clock.
    at: SystemTime,
    stale: bool,
}

/// Last-arrival bookkeeping for every sensor; see the module docs.
#[derive(Debug)]
pub struct Staleness {
    after: Duration,
    sensors: HashMap<SensorId, Seen>,
}

impl Staleness {
    /// Judges silence longer than `after` stale.
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            sensors: HashMap::new(),
        }
    }

    /// Tracks `sensor` as if a reading arrived `now`, without an event (sensors restored
    /// from a snapshot at start: one that never speaks again goes stale).
    pub fn track(&mut self, sensor: &SensorId, now: SystemTime) {
        self.sensors.entry(sensor.clone()).or_insert(Seen {
            at: now,
            stale: false,
        });
    }

    /// A reading of `sensor` arrived `now`: the `fresh` event if it was stale.
    pub fn seen(&mut self, sensor: &SensorId, now: SystemTime) -> Option<StaleEvent> {
        let before = self.sensors.insert(
            sensor.clone(),
            Seen {
                at: now,
                stale: false,
            },
        );
        let before = before.filter(|b| b.stale)?;
        Some(event(sensor, StaleEventKind::Fresh, before.at, now))
    }

    /// Every sensor silent for longer than `after` at `now` that is not stale yet, now
    /// marked stale, with its `stale` event.
    pub fn sweep(&mut self, now: SystemTime) -> Vec<StaleEvent> {
        let mut out = Vec::new();
        for (sensor, seen) in &mut self.sensors {
            let silent = now.duration_since(seen.at).unwrap_or_default();
            if !seen.stale && silent > self.after {
                seen.stale = true;
                out.push(event(sensor, StaleEventKind::Stale, seen.at, now));
            }
        }
        out
    }

    /// Whether `sensor` is stale.
    pub fn is_stale(&self, sensor: &SensorId) -> bool {
        self.sensors.get(sensor).is_some_and(|s| s.stale)
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn event(sensor: &SensorId, kind: StaleEventKind, last: SystemTime, now: SystemTime) -> StaleEvent {
    let (ts, last_seen) = (unix(now), unix(last));
    StaleEvent {
        alert_id: alert_id(IdFamily::Stale, sensor.as_str(), last_seen),
        sensor: sensor.to_string(),
        event: kind,
        severity: STALE_SEVERITY,
        ts,
        ts_rfc3339: super::rfc3339(ts),
        last_seen,
        silent_secs: (ts - last_seen).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn a_silent_sensor_goes_stale_once_and_fresh_with_the_same_id() {
        let mut s = Staleness::new(Duration::from_secs(10));
        let (a, b) = (SensorId::new("a"), SensorId::new("b"));
        assert!(s.seen(&a, at(0)).is_none());
        assert!(s.seen(&b, at(0)).is_none());
        assert!(s.sweep(at(10)).is_empty(), "stale at exactly the limit");
        assert!(s.seen(&b, at(8)).is_none());
        let stale = s.sweep(at(11));
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert_eq!(
            (stale[0].sensor.as_str(), stale[0].event),
            ("a", StaleEventKind::Stale)
        );
        assert_eq!(stale[0].silent_secs, 11.0);
        assert!(s.is_stale(&a) && !s.is_stale(&b));
        assert!(s.sweep(at(12)).iter().all(|e| e.sensor != "a"), "stale twice");
        let fresh = s.seen(&a, at(30)).expect("fresh event");
        assert_eq!(fresh.event, StaleEventKind::Fresh);
        assert_eq!(fresh.alert_id, stale[0].alert_id);
        assert_eq!(fresh.silent_secs, 30.0);
        assert!(!s.is_stale(&a));
        assert!(s.seen(&a, at(31)).is_none(), "fresh twice");
    }

    #[test]
    fn a_tracked_sensor_that_never_speaks_goes_stale() {
        let mut s = Staleness::new(Duration::from_secs(5));
        let a = SensorId::new("restored");
        s.track(&a, at(0));
        let stale = s.sweep(at(6));
        assert_eq!(stale.len(), 1);
        let next = s.sweep(at(100));
        assert!(next.is_empty(), "{next:?}");
        assert!(s.seen(&a, at(101)).is_some());
        let again = s.sweep(at(200));
        assert_eq!(again.len(), 1);
        assert_ne!(
            again[0].alert_id, stale[0].alert_id,
            "a new silence is a new alert"
        );
    }
}
