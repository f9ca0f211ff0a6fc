//! The demo's closing scorecard: which injected anomalies the daemon raised an alert
//! for and how late, which it missed, and which raises matched no anomaly (false
//! alarms). Pure: it compares the simulator's ground truth with the raises the demo's
//! subscriber saw, both in reading time.

use std::fmt::Write as _;

use crate::simulate::Injection;

/// A raise this long after an anomaly ends still detects it: the last anomalous
/// readings stay in the window (16 readings, 0.64 s at 25 Hz) and a raise needs
/// `consecutive` windows, so a short spike is raised just after it ends.
pub const GRACE_SECS: f64 = 2.0;

/// One raised alert as the subscriber saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Raise {
    /// Sensor id.
    pub sensor: String,
    /// Time of the triggering reading, unix seconds.
    pub ts: f64,
}

/// What became of one injected anomaly.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Raised this many seconds after the anomaly began.
    Detected(f64),
    /// No raise in its span (plus [`GRACE_SECS`]).
    Missed,
    /// Its span (plus grace) had not ended when the demo stopped, and no raise yet.
    Open,
}

/// The scorecard of one demo run.
#[derive(Clone, Debug, PartialEq)]
pub struct Scorecard {
    /// Every injection with its outcome, in start order.
    pub rows: Vec<(Injection, Outcome)>,
    /// Raises that fell in no injection's span on their sensor.
    pub false_alarms: Vec<Raise>,
}

impl Scorecard {
    /// Matches `raises` with `injections`; `stopped` is when the demo stopped (reading
    /// time). A raise on a sensor within an injection's `[start, end + GRACE_SECS]`
    /// detects it (the first such raise gives the delay; later ones belong to the same
    /// detection); any other raise is a false alarm.
    pub fn new(injections: &[Injection], raises: &[Raise], stopped: f64) -> Self {
        let covers =
            |i: &Injection, r: &Raise| r.sensor == i.sensor && i.start <= r.ts && r.ts <= i.end + GRACE_SECS;
        let rows = injections
            .iter()
            .map(|i| {
                let first = (raises.iter().filter(|r| covers(i, r)))
                    .map(|r| r.ts)
                    .reduce(f64::min);
                let outcome = match first {
                    Some(ts) => Outcome::Detected(ts - i.start),
                    None if i.end + GRACE_SECS > stopped => Outcome::Open,
                    None => Outcome::Missed,
                };
                (i.clone(), outcome)
            })
            .collect();
        let false_alarms = raises
            .iter()
            .filter(|r| !injections.iter().any(|i| covers(i, r)))
            .cloned()
            .collect();
        Self { rows, false_alarms }
    }

    /// Detected, missed and open injections.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |f: fn(&Outcome) -> bool| self.rows.iter().filter(|(_, o)| f(o)).count();
        (
            n(|o| matches!(o, Outcome::Detected(_))),
            n(|o| *o == Outcome::Missed),
            n(|o| *o == Outcome::Open),
        )
    }

    /// The printed scorecard: a line of totals, one line per injection, one per false
    /// alarm.
    pub fn render(&self) -> String {
        let (detected, missed, open) = self.counts();
        let mut delays: Vec<f64> = (self.rows.iter())
            .filter_map(|(_, o)| match o {
                Outcome::Detected(d) => Some(*d),
                _ => None,
            })
            .collect();
        delays.sort_by(f64::total_cmp);
        let median = delays
            .get(delays.len() / 2)
            .map_or(String::new(), |d| format!(" (median delay {d:.1} s)"));
        let mut out = format!(
            "scorecard: {} anomalies injected, {detected} detected{median}, {missed} missed, {open} still open at the end; {} false alarms\n",
            self.rows.len(),
            self.false_alarms.len()
        );
        for (i, outcome) in &self.rows {
            let what = match outcome {
                Outcome::Detected(d) => format!("detected after {d:.1} s"),
                Outcome::Missed => "MISSED".to_string(),
                Outcome::Open => "open (the demo ended first)".to_string(),
            };
            let _ = writeln!(
                out,
                "  {:<10} {:<18} {:>5.1} s  {what}",
                i.sensor,
                i.kind.as_str(),
                i.end - i.start
            );
        }
        for r in &self.false_alarms {
            let time = crate::alert::rfc3339(r.ts);
            let _ = writeln!(
                out,
                "  false alarm: {} at {}",
                r.sensor,
                time.get(11..23).unwrap_or("")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::AnomalyKind;

    fn injection(sensor: &str, kind: AnomalyKind, start: f64, end: f64) -> Injection {
        Injection {
            sensor: sensor.into(),
            kind,
            start,
            end,
        }
    }

    fn raise(sensor: &str, ts: f64) -> Raise {
        Raise {
            sensor: sensor.into(),
            ts,
        }
    }

    #[test]
    fn raises_are_matched_to_injections_on_their_sensor_within_the_grace() {
        let injections = [
            injection("a", AnomalyKind::Spike, 100.0, 103.0),
            injection("b", AnomalyKind::BrokenCorrelation, 100.0, 120.0),
            injection("a", AnomalyKind::Drift, 200.0, 230.0),
            injection("b", AnomalyKind::LevelShift, 290.0, 299.0),
        ];
        let raises = [
            raise("a", 104.5), // spike, within the grace after its end
            raise("a", 104.9), // same detection, not a false alarm
            raise("b", 150.0), // between b's anomalies: false alarm
            raise("a", 110.0), // after the spike's grace: false alarm
            raise("c", 100.0), // a sensor with no anomaly: false alarm
        ];
        let card = Scorecard::new(&injections, &raises, 300.0);
        let outcomes: Vec<&Outcome> = card.rows.iter().map(|(_, o)| o).collect();
        assert_eq!(outcomes.len(), 4);
        match outcomes[0] {
            Outcome::Detected(d) => approx::assert_abs_diff_eq!(*d, 4.5, epsilon = 1e-9),
            other => panic!("spike: {other:?}"),
        }
        assert_eq!(
            outcomes[1..],
            [&Outcome::Missed, &Outcome::Missed, &Outcome::Open]
        );
        let false_at: Vec<f64> = card.false_alarms.iter().map(|r| r.ts).collect();
        assert_eq!(false_at, [150.0, 110.0, 100.0]);
        assert_eq!(card.counts(), (1, 2, 1));
        let text = card.render();
        assert!(
            text.starts_with("scorecard: 4 anomalies injected, 1 detected (median delay 4.5 s), 2 missed, 1 still open at the end; 3 false alarms"),
            "{text}"
        );
        assert!(
            text.contains("broken_correlation") && text.contains("MISSED"),
            "{text}"
        );
    }
}
