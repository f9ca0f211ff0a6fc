//! Bounded label cardinality for per-sensor gauges.
//!
//! Every distinct label value is a separate Prometheus series, kept in this process's
//! recorder and in the scraper's TSDB for its whole retention. A gateway that suddenly
//! sees thousands of sensor ids (a misconfigured publisher, a topic wildcard that is
//! too wide, an attacker) must not turn `/metrics` into megabytes per scrape or blow up
//! the monitoring server. So only the first `max_tracked` sensors get their own
//! series; the rest share `sensor="_other"` with an aggregate that still means
//! something. The detector's own cap on unknown sensors is separate (it bounds
//! memory); this one only bounds series.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use metrics::SharedString;

use super::{labels, names};
use crate::reading::SensorId;

/// Label value shared by every sensor past the cap.
pub const OTHER_SENSORS: &str = "_other";
/// Default cap: with two per-sensor gauges, 200 sensors are 400 series, a few tens of
/// KiB per scrape.
pub const DEFAULT_MAX_TRACKED_SENSORS: usize = 200;

/// Assigns `sensor` label values and writes the per-sensor gauges. Owned by the
/// detector task (single writer, so plain `&mut self`).
#[derive(Debug)]
pub struct SensorLabels {
    max_tracked: usize,
    /// Sensors with their own series, with the label value built once.
    tracked: HashMap<SensorId, SharedString>,
    /// Overflow sensors whose threshold is ready; `_other` reports how many.
    other_ready: HashSet<SensorId>,
    /// Newest model version among overflow sensors; `_other` reports it.
    other_version: u64,
    /// Each tracked sensor's newest scored window since the last flush.
    pending_scores: HashMap<SensorId, ScoreSample>,
}

/// One scored window, as the score gauges show it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreSample {
    /// The thresholded score (`threshold.score`).
    pub score: f64,
    /// The threshold in force, once ready.
    pub threshold: Option<f64>,
    /// `anomaly_score`, in [0, 1].
    pub anomaly_score: f64,
}

impl SensorLabels {
    /// Gives the first `max_tracked` sensors seen their own series.
    pub fn new(max_tracked: usize) -> Self {
        Self {
            max_tracked,
            tracked: HashMap::new(),
            other_ready: HashSet::new(),
            other_version: 0,
            pending_scores: HashMap::new(),
        }
    }

    /// The label value for `sensor`: its name if it has (or now gets) its own series,
    /// else [`OTHER_SENSORS`]. Use it for any other per-sensor metric as well.
    pub fn label(&mut self, sensor: &SensorId) -> SharedString {
        if let Some(label) = self.tracked.get(sensor) {
            return label.clone();
        }
        if self.tracked.len() < self.max_tracked {
            let label = SharedString::from(Arc::<str>::from(label_value(sensor.as_str())));
            self.tracked.insert(sensor.clone(), label.clone());
            return label;
        }
        SharedString::const_str(OTHER_SENSORS)
    }

    /// Sensors with their own series.
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Sets `model_version{sensor}`; for overflow sensors `_other` holds the newest
    /// version among them (their versions advance independently, and "has any of
    /// them retrained lately" is the question a dashboard can still answer).
    pub fn set_model_version(&mut self, sensor: &SensorId, version: u64) {
        let label = self.label(sensor);
        let value = if &*label == OTHER_SENSORS {
            self.other_version = self.other_version.max(version);
            self.other_version
        } else {
            version
        };
        metrics::gauge!(names::MODEL_VERSION, labels::SENSOR => label).set(value as f64);
    }

    /// Records a scored window for the `score`, `threshold` and `anomaly_score{sensor}`
    /// gauges, which [`Self::flush_scores`] writes: a 100 Hz sensor then does not pay
    /// three gauge writes per reading, and the gauges still end at its newest window.
    /// Sensors past the cap get none: a score of one of them, or any mix, would mean
    /// nothing under `_other`.
    pub fn set_scores(&mut self, sensor: &SensorId, sample: ScoreSample) {
        if &*self.label(sensor) == OTHER_SENSORS {
            return;
        }
        match self.pending_scores.get_mut(sensor) {
            Some(pending) => *pending = sample,
            None => {
                self.pending_scores.insert(sensor.clone(), sample);
            }
        }
    }

    /// Writes the score gauges of every sensor scored since the last flush.
    pub fn flush_scores(&mut self) {
        for (sensor, sample) in self.pending_scores.drain() {
            let Some(label) = self.tracked.get(&sensor) else {
                continue;
            };
            metrics::gauge!(names::SCORE, labels::SENSOR => label.clone()).set(sample.score);
            metrics::gauge!(names::ANOMALY_SCORE, labels::SENSOR => label.clone()).set(sample.anomaly_score);
            if let Some(t) = sample.threshold {
                metrics::gauge!(names::THRESHOLD, labels::SENSOR => label.clone()).set(t);
            }
        }
    }

    /// Forgets a sensor's unwritten scores (it was evicted).
    pub fn forget_scores(&mut self, sensor: &SensorId) {
        self.pending_scores.remove(sensor);
    }

    /// Sets `threshold_ready{sensor}` to 0 or 1; for overflow sensors `_other` counts
    /// how many of them are ready.
    pub fn set_threshold_ready(&mut self, sensor: &SensorId, ready: bool) {
        let label = self.label(sensor);
        let value = if &*label == OTHER_SENSORS {
            if ready {
                self.other_ready.insert(sensor.clone());
            } else {
                self.other_ready.remove(sensor);
            }
            self.other_ready.len()
        } else {
            usize::from(ready)
        };
        metrics::gauge!(names::THRESHOLD_READY, labels::SENSOR => label).set(value as f64);
    }
}

/// Longest `sensor` label value, in bytes.
const MAX_LABEL_BYTES: usize = 128;

/// The `sensor` label value of a sensor id: injective, bounded, and with nothing the
/// exposition format would have to escape. `%`, `\`, `"`, control and invisible
/// characters ([`crate::escape::is_invisible`]) and a leading `_` (so that no sensor
/// can pose as [`OTHER_SENSORS`]) are percent-encoded; a long id is cut with a hash
/// suffix ([`crate::escape::encode_bounded`]). Ordinary ids are their own label.
pub(crate) fn label_value(sensor: &str) -> String {
    crate::escape::encode_bounded(sensor, MAX_LABEL_BYTES, |i, ch| {
        matches!(ch, '\\' | '"') || crate::escape::is_invisible(ch) || (i == 0 && ch == '_')
    })
}

impl Default for SensorLabels {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_TRACKED_SENSORS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::install;

    fn sensor(name: &str) -> SensorId {
        SensorId::new(name)
    }

    #[test]
    fn sensors_past_the_cap_share_the_other_label() {
        let mut labels = SensorLabels::new(2);
        assert_eq!(&*labels.label(&sensor("a")), "a");
        assert_eq!(&*labels.label(&sensor("b")), "b");
        assert_eq!(&*labels.label(&sensor("c")), OTHER_SENSORS);
        assert_eq!(
            &*labels.label(&sensor("a")),
            "a",
            "tracked sensors keep their label"
        );
        assert_eq!(labels.tracked(), 2);
    }

    #[test]
    fn label_values_carry_no_control_characters_and_stay_distinct() {
        let cases = [
            ("plain", "pump-7", "pump-7"),
            ("nul", "a\0b", "a%00b"),
            ("escape", "a\u{1b}[2J", "a%1B[2J"),
            ("cr and tab", "a\r\tb", "a%0D%09b"),
            ("newline", "a\nb", "a%0Ab"),
            ("quote", "a\"b", "a%22b"),
            ("backslash", "a\\b", "a%5Cb"),
            ("percent", "a%0Ab", "a%250Ab"),
            ("poses as the overflow label", "_other", "%5Fother"),
            ("inner underscore kept", "a_b", "a_b"),
        ];
        let mut seen = HashSet::new();
        for (name, input, want) in cases {
            let got = label_value(input);
            assert_eq!(got, want, "{name}");
            assert!(
                !got.chars().any(|c| c.is_control() || c == '"' || c == '\\'),
                "{name}"
            );
            assert!(seen.insert(got), "{name}: collides");
        }
        assert!(label_value(&"x".repeat(1000)).len() <= MAX_LABEL_BYTES);
    }

    #[test]
    fn hostile_sensor_ids_render_as_valid_exposition_lines() {
        let handle = install().expect("install");
        let mut labels = SensorLabels::new(10);
        labels.set_model_version(&sensor("evil\0\u{1b}[2J\r\t\"\\\nforged 1"), 3);
        let text = handle.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("anomalyd_model_version{") && l.contains("evil"))
            .unwrap_or_else(|| panic!("no gauge line: {text}"));
        assert_eq!(
            line,
            r#"anomalyd_model_version{sensor="evil%00%1B[2J%0D%09%22%5C%0Aforged 1"} 3"#
        );
        assert!(!text.lines().any(|l| l.starts_with("forged")), "{text}");
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
    }

    #[test]
    fn score_gauges_show_the_newest_window_at_each_flush_and_never_for_other() {
        let handle = install().expect("install");
        let mut labels = SensorLabels::new(1);
        let sample = |score, threshold| ScoreSample {
            score,
            threshold,
            anomaly_score: 0.25,
        };
        labels.set_scores(&sensor("gauge-a"), sample(0.5, None));
        labels.set_scores(&sensor("gauge-a"), sample(1.5, Some(2.0)));
        labels.set_scores(&sensor("gauge-past-cap"), sample(7.0, Some(1.0)));
        assert!(
            !handle.render().contains("anomalyd_score{"),
            "nothing before a flush"
        );
        labels.flush_scores();
        let text = handle.render();
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{name}{{sensor=\"gauge-a\"}}")))
                .unwrap_or_else(|| panic!("no {name} line: {text}"))
                .to_string()
        };
        assert!(line(names::SCORE).ends_with(" 1.5"), "{}", line(names::SCORE));
        assert!(
            line(names::THRESHOLD).ends_with(" 2"),
            "{}",
            line(names::THRESHOLD)
        );
        assert!(line(names::ANOMALY_SCORE).ends_with(" 0.25"));
        assert!(!text.contains("gauge-past-cap"), "{text}");
        assert!(!text.contains("anomalyd_score{sensor=\"_other\"}"), "{text}");
        labels.set_scores(&sensor("gauge-a"), sample(9.0, Some(2.0)));
        labels.flush_scores();
        assert!(handle.render().contains("anomalyd_score{sensor=\"gauge-a\"} 9"));
    }

    #[test]
    fn other_gauges_aggregate_overflow_sensors() {
        let handle = install().expect("install");
        let mut labels = SensorLabels::new(1);
        labels.set_threshold_ready(&sensor("cap-first"), true);
        for name in ["cap-x", "cap-y", "cap-z"] {
            labels.set_threshold_ready(&sensor(name), true);
        }
        labels.set_threshold_ready(&sensor("cap-y"), false);
        labels.set_model_version(&sensor("cap-x"), 4);
        labels.set_model_version(&sensor("cap-z"), 2);
        let text = handle.render();
        assert!(
            text.contains(r#"anomalyd_threshold_ready{sensor="cap-first"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"anomalyd_threshold_ready{sensor="_other"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"anomalyd_model_version{sensor="_other"} 4"#),
            "{text}"
        );
        assert!(!text.contains("cap-x"), "{text}");
    }
}
