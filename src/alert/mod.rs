//! Alert lifecycle and the alert event payloads.
//!
//! Owns the per-sensor state machine ([`AlertState`]: raise after `consecutive`
//! windows over threshold, clear after `clear_after` windows under it, no raise during
//! `cooldown` windows after a clear; acceptance clears through [`AlertState::clear`]
//! when the learning policy says so), the JSON event the publisher sends
//! ([`AlertEvent`]), the per-channel error breakdown ([`channel_contributions`]), and
//! topic rendering ([`render_topic`], [`sanitize_topic_level`]). [`severity`] owns the
//! alert id and the severity bands; [`stale`] owns silent-sensor tracking and its
//! `stale` / `fresh` events. docs/alert.schema.json describes every event. It is
//! sans-IO: the detector calls [`AlertState::update`] once per scored window and hands
//! any event to the publisher, which owns QoS and the broker connection.

pub mod severity;
pub mod stale;

use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};

pub use severity::{Severity, SeverityBands};

/// Alert lifecycle settings, counted in scored windows.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertParams {
    /// Consecutive windows over threshold needed to raise (≥ 1; 0 behaves as 1).
    pub consecutive: u32,
    /// Consecutive windows under threshold needed to clear (≥ 1; 0 behaves as 1).
    pub clear_after: u32,
    /// Windows after a clear during which no new raise may happen.
    pub cooldown: u32,
    /// `over_by` bounds of the severities (`[alert] severity_bands`).
    pub severity: SeverityBands,
}

/// What an alert event announces.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlertEventKind {
    /// The sensor entered the alert state.
    Raised,
    /// The sensor left the alert state (see [`ClearReason`]).
    Cleared,
}

/// Why an alert was cleared.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClearReason {
    /// The signal came back under the threshold for `clear_after` windows.
    Recovered,
    /// The alert lasted `[learning] accept_after_secs`: what it saw is the new normal
    /// and the detector re-baselined on it.
    Accepted,
}

/// Per-sensor alert state; serialisable so snapshots keep a raised alert raised.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AlertState {
    /// Whether an alert is currently raised.
    raised: bool,
    /// Consecutive windows over threshold, up to and including the latest.
    over_run: u32,
    /// Consecutive windows under threshold, up to and including the latest.
    under_run: u32,
    /// Windows left in which a raise is suppressed after the last clear.
    cooldown_left: u32,
    /// Reading time of the raise, while raised (absent in older snapshots).
    #[serde(default)]
    raised_at: Option<f64>,
    /// Severity of the raise, while raised, so its `cleared` says the same (absent in
    /// older snapshots: such a clear says `minor`).
    #[serde(default)]
    severity: Option<Severity>,
}

impl AlertState {
    /// Feeds one scored window (`over`: its score exceeded the threshold) and returns
    /// the event this window triggers, if any.
    ///
    /// Windows over threshold during the cooldown still count toward `consecutive`,
    /// so an anomaly that persists through the cooldown is raised as soon as it ends;
    /// a flapping signal is raised at most once per clear + cooldown.
    pub fn update(&mut self, p: &AlertParams, over: bool, ts: f64) -> Option<AlertEventKind> {
        if over {
            self.over_run = self.over_run.saturating_add(1);
            self.under_run = 0;
        } else {
            self.under_run = self.under_run.saturating_add(1);
            self.over_run = 0;
        }
        if self.raised {
            if self.under_run >= p.clear_after.max(1) {
                self.clear(p);
                return Some(AlertEventKind::Cleared);
            }
            return None;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            return None;
        }
        if self.over_run >= p.consecutive.max(1) {
            self.raised = true;
            self.raised_at = Some(ts);
            self.over_run = 0;
            return Some(AlertEventKind::Raised);
        }
        None
    }

    /// Clears a raised alert whatever the signal does (acceptance), with the usual
    /// cooldown after it.
    pub fn clear(&mut self, p: &AlertParams) {
        self.raised = false;
        self.raised_at = None;
        self.severity = None;
        self.cooldown_left = p.cooldown;
        self.under_run = 0;
        self.over_run = 0;
    }

    /// Reading time of the raise, while an alert is raised.
    pub fn raised_at(&self) -> Option<f64> {
        self.raised_at.filter(|_| self.raised)
    }

    /// Whether an alert is currently raised.
    pub fn is_raised(&self) -> bool {
        self.raised
    }

    /// Records the severity of the raise just made (kept until the clear).
    pub fn set_severity(&mut self, severity: Severity) {
        self.severity = Some(severity).filter(|_| self.raised);
    }

    /// Severity of the raise, while raised.
    pub fn severity(&self) -> Option<Severity> {
        self.severity.filter(|_| self.raised)
    }
}

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

/// The alert message published on the alert topic (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Shared by a `raised` and its `cleared`; see [`severity::alert_id`].
    pub alert_id: String,
    /// Sensor id, unsanitised.
    pub sensor: String,
    /// `raised` or `cleared`.
    pub event: AlertEventKind,
    /// From `over_by` at the raise ([`SeverityBands`]); a `cleared` repeats its raise's.
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

/// Replaces every `{sensor}` in `template` with [`sanitize_topic_level`]`(sensor)`.
pub fn render_topic(template: &str, sensor: &str) -> String {
    template.replace("{sensor}", &sanitize_topic_level(sensor))
}

/// Longest topic level a sensor id maps to, in bytes. MQTT allows 65,535-byte topics;
/// this keeps topics readable and bounded whatever the sensor ids look like.
const MAX_TOPIC_LEVEL_BYTES: usize = 128;

/// Maps a sensor id to one MQTT topic level, injectively: two different ids never
/// share a topic (and so never overwrite each other's retained state).
///
/// `%` itself, the wildcards `+` and `#`, the level separator `/`, control and
/// invisible characters ([`crate::escape::is_invisible`]) and a leading `$` (reserved
/// for broker topics such as `$SYS`, MQTT 3.1.1 §4.7.2) are percent-encoded, one `%XX`
/// per UTF-8 byte; everything else is kept, so ordinary ids (`pump-7.temp`) are their
/// own topic level. The empty id becomes `%`. A level longer than 128 bytes is cut and
/// ends in `%~` plus a 128-bit hash of the whole id ([`crate::escape::encode_bounded`]).
pub fn sanitize_topic_level(s: &str) -> String {
    crate::escape::encode_bounded(s, MAX_TOPIC_LEVEL_BYTES, |i, ch| {
        matches!(ch, '+' | '#' | '/') || crate::escape::is_invisible(ch) || (i == 0 && ch == '$')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(consecutive: u32, clear_after: u32, cooldown: u32) -> AlertParams {
        AlertParams {
            consecutive,
            clear_after,
            cooldown,
            severity: SeverityBands::default(),
        }
    }

    /// Runs a signal ("1" = over, "0" = under) and renders events as "R", "C" or ".".
    fn run(p: &AlertParams, signal: &str) -> String {
        let mut s = AlertState::default();
        signal
            .chars()
            .map(|c| match s.update(p, c == '1', 0.0) {
                Some(AlertEventKind::Raised) => 'R',
                Some(AlertEventKind::Cleared) => 'C',
                None => '.',
            })
            .collect()
    }

    #[test]
    fn lifecycle_follows_the_table() {
        let cases = [
            (
                "raises after exactly `consecutive` windows",
                params(3, 1, 0),
                "11111",
                "..R..",
            ),
            (
                "an interrupted run does not raise",
                params(3, 1, 0),
                "1101101",
                ".......",
            ),
            ("zero consecutive behaves as one", params(0, 1, 0), "1", "R"),
            (
                "a single blip below does not clear",
                params(1, 2, 0),
                "1101",
                "R...",
            ),
            (
                "clears after `clear_after` windows under",
                params(1, 3, 0),
                "1000",
                "R..C",
            ),
            (
                "no re-raise during cooldown",
                params(1, 1, 3),
                "1011111",
                "RC...R.",
            ),
            (
                "a run through the cooldown raises when it ends",
                params(2, 1, 2),
                "11011110",
                ".RC..R.C",
            ),
            (
                "raise again right after a clear without cooldown",
                params(1, 1, 0),
                "1010",
                "RCRC",
            ),
        ];
        for (name, p, signal, want) in cases {
            assert_eq!(run(&p, signal), want, "{name}");
        }
    }

    #[test]
    fn alternating_signal_raises_at_most_once_per_cooldown() {
        let cooldown = 10;
        let p = params(1, 1, cooldown);
        let signal: String = (0..200).map(|i| if i % 2 == 0 { '1' } else { '0' }).collect();
        let events = run(&p, &signal);
        let raises: Vec<usize> = events.match_indices('R').map(|(i, _)| i).collect();
        assert!(raises.len() > 1);
        for pair in raises.windows(2) {
            assert!(pair[1] - pair[0] > cooldown as usize, "raises at {pair:?}");
        }
    }

    #[test]
    fn state_reports_raised_until_cleared() {
        let p = params(1, 1, 0);
        let mut s = AlertState::default();
        assert!(!s.is_raised());
        s.update(&p, true, 10.0);
        assert!(s.is_raised());
        assert_eq!(s.raised_at(), Some(10.0));
        s.set_severity(Severity::Critical);
        assert_eq!(s.severity(), Some(Severity::Critical));
        s.update(&p, false, 11.0);
        assert!(!s.is_raised());
        assert_eq!(s.raised_at(), None);
        assert_eq!(s.severity(), None);
    }

    fn build_event() -> AlertEvent {
        AlertEvent {
            alert_id: severity::alert_id(severity::IdFamily::Raised, "pump/1", 1_714_564_800.25),
            sensor: "pump/1".into(),
            event: AlertEventKind::Raised,
            severity: Severity::Major,
            reason: None,
            learning: false,
            ts: 1_714_564_800.25,
            ts_rfc3339: rfc3339(1_714_564_800.25),
            score: 2.0,
            threshold: 0.5,
            quantile: 0.995,
            over_by: 4.0,
            pca_score: None,
            anomaly_score: 0.9,
            outside_range: Vec::new(),
            model_version: 3,
            channels: channel_contributions(&["a", "b"], &[0.0, 0.0, 1.0, 1.0], &[1.0, 0.0, 1.0, 2.0]),
            window_start: 1_714_564_790.0,
            window_end: 1_714_564_800.25,
        }
    }

    #[test]
    fn json_has_every_field() {
        let v: serde_json::Value = serde_json::from_str(&build_event().to_json()).unwrap();
        let keys = [
            "alert_id",
            "sensor",
            "event",
            "severity",
            "ts",
            "ts_rfc3339",
            "score",
            "threshold",
            "quantile",
            "over_by",
            "pca_score",
            "model_version",
            "channels",
            "window_start",
            "window_end",
        ];
        for k in keys {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["event"], "raised");
        assert_eq!(v["severity"], "major");
        assert_eq!(v["ts_rfc3339"], "2024-05-01T12:00:00.250Z");
        assert!(v["pca_score"].is_null());
        assert_eq!(v["channels"][0]["channel"], "a");
        let back: AlertEvent = serde_json::from_str(&build_event().to_json()).unwrap();
        assert_eq!(back, build_event());
    }

    #[test]
    fn contributions_split_error_by_channel_and_shares_sum_to_one() {
        let c = build_event().channels;
        approx::assert_abs_diff_eq!(c[0].error, 0.5, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(c[1].error, 0.5, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(c[0].share + c[1].share, 1.0, epsilon = 1e-12);
        let zero = channel_contributions(&["a", "b", "c"], &[1.0; 3], &[1.0; 3]);
        approx::assert_abs_diff_eq!(zero.iter().map(|c| c.share).sum::<f64>(), 1.0, epsilon = 1e-12);
    }

    #[test]
    fn topic_level_mapping_handles_the_table() {
        let long = "é".repeat(100); // 200 bytes
        let cases: [(&str, &str, &str); 12] = [
            ("slash", "a/b", "a%2Fb"),
            ("plus wildcard", "+", "%2B"),
            ("hash wildcard", "#0", "%230"),
            ("percent itself", "%2B", "%252B"),
            ("newline", "\n", "%0A"),
            ("nul", "a\0b", "a%00b"),
            ("empty", "", "%"),
            ("leading dollar", "$SYS", "%24SYS"),
            ("inner dollar kept", "a$b", "a$b"),
            ("zero-width space", "a\u{200B}b", "a%E2%80%8Bb"),
            ("plain id kept", "pump-1.temp", "pump-1.temp"),
            ("unicode kept", "température", "température"),
        ];
        for (name, input, want) in cases {
            let got = sanitize_topic_level(input);
            assert_eq!(got, want, "{name}");
        }
        let cut = sanitize_topic_level(&long);
        assert_eq!(cut.len(), 94 + crate::escape::CUT_SUFFIX_BYTES, "{cut}");
        assert!(cut.starts_with(&"é".repeat(47)) && cut.contains("%~"), "{cut}");
    }

    #[test]
    fn topic_level_mapping_is_injective_on_ids_that_used_to_collide() {
        let prefix = "p".repeat(127);
        let encoded_prefix = "/".repeat(60);
        let ids = [
            "#0".to_string(),
            "+0".to_string(),
            "_0".to_string(),
            "pump/7".to_string(),
            "pump_7".to_string(),
            "pump%2F7".to_string(),
            "pump%7".to_string(),
            String::new(),
            "%".to_string(),
            "%25".to_string(),
            "$a".to_string(),
            "%24a".to_string(),
            format!("{prefix}a"),
            format!("{prefix}b"),
            prefix.clone(),
            format!("{encoded_prefix}x"),
            format!("{encoded_prefix}y"),
        ];
        let mut seen = std::collections::HashMap::new();
        for id in &ids {
            let level = sanitize_topic_level(id);
            assert!(level.len() <= MAX_TOPIC_LEVEL_BYTES, "{id:?} -> {level}");
            assert!(
                !level.contains(['/', '+', '#']) && !level.chars().any(char::is_control),
                "{id:?} -> {level}"
            );
            assert!(!level.starts_with('$'), "{id:?} -> {level}");
            if let Some(other) = seen.insert(level.clone(), id) {
                panic!("{other:?} and {id:?} share the topic level {level}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn topic_level_mapping_never_collides_on_short_ids(a in "(?s).{0,40}", b in "(?s).{0,40}") {
            proptest::prop_assume!(a != b);
            proptest::prop_assert_ne!(sanitize_topic_level(&a), sanitize_topic_level(&b));
        }
    }

    #[test]
    fn render_topic_substitutes_the_mapped_sensor() {
        assert_eq!(
            render_topic("anomalyd/alerts/{sensor}", "a/b#"),
            "anomalyd/alerts/a%2Fb%23"
        );
        assert_eq!(render_topic("plain", "x"), "plain");
    }

    #[test]
    fn rfc3339_of_unrepresentable_time_is_empty() {
        assert_eq!(rfc3339(f64::NAN), "");
        assert_eq!(rfc3339(1e300), "");
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
    }
}
