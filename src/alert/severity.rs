//! What integrators key on: an alert's id ([`alert_id`]) and how bad it is
//! ([`Severity`], from `over_by` through [`SeverityBands`], `[alert] severity_bands`).
//!
//! The id is derived, not counted: SHA-256 of the event family, the sensor id and the
//! time the alert began (the raising reading's time for `raised`, the last reading's
//! arrival for `stale`). A sensor's readings have strictly increasing times (the window
//! refuses duplicates and older readings), so two alerts of one sensor never share an
//! id, across restarts too, with no counter to persist; the `cleared` of an alert
//! recomputes the same id from the raise time its [`super::AlertState`] keeps in the
//! snapshot. A raise that is re-derived from the same readings (a restart from an older
//! snapshot that sees them again) gets the same id: it is the same alert, and
//! integrators that deduplicate by id see it once.

use serde::{Deserialize, Serialize};

/// How far over the threshold an alert is, in three bands of `over_by`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `over_by` below the first band.
    Minor,
    /// `over_by` from the first band up to the second.
    Major,
    /// `over_by` at or above the second band.
    Critical,
}

impl Severity {
    /// `minor`, `major` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minor => "minor",
            Self::Major => "major",
            Self::Critical => "critical",
        }
    }
}

/// The two `over_by` bounds of `[alert] severity_bands`: `[major, critical]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeverityBands {
    major: f64,
    critical: f64,
}

impl Default for SeverityBands {
    /// `[2.0, 5.0]`: twice the threshold is major, five times critical.
    fn default() -> Self {
        Self {
            major: 2.0,
            critical: 5.0,
        }
    }
}

impl TryFrom<&[f64]> for SeverityBands {
    type Error = String;

    /// Two finite bounds, each at least 1 (an alert's `over_by` is above 1), strictly
    /// increasing.
    fn try_from(b: &[f64]) -> Result<Self, String> {
        match *b {
            [major, critical]
                if major.is_finite() && critical.is_finite() && 1.0 <= major && major < critical =>
            {
                Ok(Self { major, critical })
            }
            _ => Err(format!(
                "must be two increasing numbers >= 1 (major, critical bounds of over_by), got {b:?}"
            )),
        }
    }
}

impl SeverityBands {
    /// The severity of an event whose score is `over_by` times the threshold. NaN
    /// (no threshold) is minor; infinity (a zero threshold) is critical.
    pub fn classify(&self, over_by: f64) -> Severity {
        if over_by >= self.critical {
            Severity::Critical
        } else if over_by >= self.major {
            Severity::Major
        } else {
            Severity::Minor
        }
    }
}

/// Families of alert ids: a raise and a staleness of the same sensor at the same time
/// still get different ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdFamily {
    /// `raised` → `cleared`.
    Raised,
    /// `stale` → `fresh`.
    Stale,
}

/// The alert id: 32 hex digits (128 bits) of SHA-256 over the family, the sensor id and
/// the exact bits of `began` (unix seconds); see the module docs.
pub fn alert_id(family: IdFamily, sensor: &str, began: f64) -> String {
    let tag: &[u8] = match family {
        IdFamily::Raised => b"anomalyd/raised\0",
        IdFamily::Stale => b"anomalyd/stale\0",
    };
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(tag);
    // Length-prefixed: no (sensor, time) pair can pose as another.
    ctx.update(&(sensor.len() as u64).to_be_bytes());
    ctx.update(sensor.as_bytes());
    ctx.update(&began.to_bits().to_be_bytes());
    let digest = ctx.finish();
    digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_classify_over_by_into_three_severities() {
        let b = SeverityBands::default();
        let cases = [
            ("just over", 1.01, Severity::Minor),
            ("below the first band", 1.99, Severity::Minor),
            ("at the first band", 2.0, Severity::Major),
            ("between", 4.9, Severity::Major),
            ("at the second band", 5.0, Severity::Critical),
            ("zero threshold", f64::INFINITY, Severity::Critical),
            ("no threshold", f64::NAN, Severity::Minor),
        ];
        for (name, over_by, want) in cases {
            assert_eq!(b.classify(over_by), want, "{name}");
        }
    }

    #[test]
    fn bands_must_be_two_increasing_numbers_of_at_least_one() {
        let bad: [&[f64]; 6] = [
            &[],
            &[2.0],
            &[5.0, 2.0],
            &[2.0, 2.0],
            &[0.5, 2.0],
            &[2.0, f64::NAN],
        ];
        for b in bad {
            let e = SeverityBands::try_from(b).expect_err(&format!("{b:?} accepted"));
            assert!(e.contains(&format!("got {b:?}")), "{e}");
        }
        let ok = SeverityBands::try_from(&[1.5, 3.0][..]).expect("valid bands");
        assert_eq!(ok.classify(2.0), Severity::Major);
    }

    #[test]
    fn alert_ids_differ_by_sensor_time_and_family_and_repeat_for_the_same_alert() {
        let a = alert_id(IdFamily::Raised, "pump-1", 1000.25);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()), "{a}");
        assert_eq!(a, alert_id(IdFamily::Raised, "pump-1", 1000.25));
        let others = [
            alert_id(IdFamily::Raised, "pump-2", 1000.25),
            alert_id(IdFamily::Raised, "pump-1", 1_000.250_000_1),
            alert_id(IdFamily::Stale, "pump-1", 1000.25),
        ];
        for o in others {
            assert_ne!(a, o);
        }
    }
}
