//! `replay`: feeds a [`Series`] through the same [`Detector`] the daemon uses, training
//! inline (deterministic), and produces one output row per input row.

use std::io::Write;

use crate::alert::{AlertEventKind, ClearReason};
use crate::config::DetectorConfig;
use crate::detector::{Detector, SensorState};
use crate::eval::series::Series;
use crate::reading::SensorId;
use shortest::Shortest;

/// One output row.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayRow {
    /// AE score of the latest scored window (empty before the first model).
    pub score: Option<f64>,
    /// PCA score of the same window.
    pub pca_score: Option<f64>,
    /// Threshold in force for that window (empty until `min_scores` scores exist).
    pub threshold: Option<f64>,
    /// In [0, 1]; 0 on rows where no window was scored.
    pub anomaly_score: f64,
    /// An alert is raised at this row.
    pub alert: bool,
    /// The sensor's state after this row.
    pub state: SensorState,
}

/// Summary counts of a replay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplaySummary {
    /// Alerts raised.
    pub raised: usize,
    /// Alerts accepted as the new normal (`[learning] accept_after_secs`).
    pub accepted: usize,
    /// Windows scored.
    pub scored: usize,
    /// Last model version.
    pub model_version: u64,
    /// Rows whose timestamp was not after the previous row's; they are scored in file
    /// order, nudged 1 ms after their predecessor, as a live sensor's reordered reading
    /// would not be.
    pub nudged: usize,
}

/// Spacing given to a row whose timestamp does not advance.
const NUDGE_SECS: f64 = 1e-3;

/// Replays `series` as one sensor named `sensor`.
pub fn replay(series: &Series, config: &DetectorConfig, sensor: &str) -> (Vec<ReplayRow>, ReplaySummary) {
    let (rows, summary, _) = replay_keeping(series, config, sensor);
    (rows, summary)
}

/// [`replay`], also returning the detector as the last row left it: its snapshot is a
/// warm start for the daemon (`replay --snapshot-out`).
pub fn replay_keeping(
    series: &Series,
    config: &DetectorConfig,
    sensor: &str,
) -> (Vec<ReplayRow>, ReplaySummary, Detector) {
    let mut replayer = Replayer::new(config, sensor, &series.channels);
    let rows = (0..series.len())
        .map(|i| replayer.step(i, series.ts[i], series.row(i)))
        .collect();
    let (summary, detector) = replayer.finish();
    (rows, summary, detector)
}

/// A replay in progress, one row at a time: the detector, the output row carried from
/// one input row to the next, and the counts. A clone forks the replay: `eval --inject`
/// steps each injected fault from a copy of the clean replay taken at its onset.
#[derive(Clone, Debug)]
pub struct Replayer {
    id: SensorId,
    channels: Vec<String>,
    detector: Detector,
    last: ReplayRow,
    prev_ts: f64,
    summary: ReplaySummary,
}

impl Replayer {
    /// A replay of one sensor named `sensor` with these channels, before its first row.
    pub fn new(config: &DetectorConfig, sensor: &str, channels: &[String]) -> Self {
        Self {
            id: SensorId::new(sensor),
            channels: channels.to_vec(),
            detector: Detector::new(config.clone(), 1),
            last: ReplayRow {
                score: None,
                pca_score: None,
                threshold: None,
                anomaly_score: 0.0,
                alert: false,
                state: SensorState::WarmingUp,
            },
            prev_ts: f64::NEG_INFINITY,
            summary: ReplaySummary::default(),
        }
    }

    /// Feeds row `index` (for the log only) and returns its output row. The values must
    /// be finite and as many as the channels (what [`Series`] guarantees); a timestamp
    /// that does not advance is nudged after its predecessor.
    pub fn step(&mut self, index: usize, ts: f64, values: &[f64]) -> ReplayRow {
        let mut ts = ts;
        if ts <= self.prev_ts {
            ts = self.prev_ts + NUDGE_SECS;
            self.summary.nudged += 1;
        }
        self.prev_ts = ts;
        let last = &mut self.last;
        last.anomaly_score = 0.0;
        // The caller guarantees finiteness and channel count and the nudge above the
        // order, so only a programming error could make the detector refuse a row.
        let channels = &self.channels;
        let step = match self
            .detector
            .process_inline(&self.id, ts, values, || channels.clone())
        {
            Ok(step) => step,
            Err(e) => {
                tracing::warn!(row = index, error = %e, "Row refused by the detector.");
                return last.clone();
            }
        };
        last.state = step.state;
        if let Some(s) = step.scored {
            self.summary.scored += 1;
            last.score = Some(s.scores.ae);
            last.pca_score = Some(s.scores.pca);
            last.threshold = s.threshold;
            last.anomaly_score = s.anomaly_score;
        }
        if let Some(e) = &step.event {
            last.alert = e.event == AlertEventKind::Raised;
            self.summary.raised += usize::from(last.alert);
            self.summary.accepted += usize::from(e.reason == Some(ClearReason::Accepted));
        }
        last.clone()
    }

    /// Alerts raised so far.
    pub fn raised(&self) -> usize {
        self.summary.raised
    }

    /// The counts so far and the detector as the last row left it.
    pub fn finish(mut self) -> (ReplaySummary, Detector) {
        self.summary.model_version = self.detector.pipeline(&self.id).map_or(0, |p| p.model_version());
        (self.summary, self.detector)
    }
}

/// Writes the replay CSV:
/// `timestamp,<channels…>,score,pca_score,threshold,anomaly_score,alert,state`.
///
/// # Errors
///
/// Any IO error of `out`.
pub fn write_csv(out: &mut impl Write, series: &Series, rows: &[ReplayRow]) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["timestamp".to_string()];
    header.extend(series.channels.iter().cloned());
    header.extend(
        [
            "score",
            "pca_score",
            "threshold",
            "anomaly_score",
            "alert",
            "state",
        ]
        .map(String::from),
    );
    w.write_record(&header)?;
    w.flush()?;
    let out = w.into_inner().map_err(|e| e.into_error())?;
    // The rows are written by hand into a buffer that goes out in blocks: every field
    // but the time text is a number or a fixed word that never needs quoting, and the
    // csv writer's per-field quoting scan was a twentieth of a replay. Floats go through
    // a reused buffer (the text is what `format!("{v}")` writes, see `shortest`).
    // One buffer per float column: channels, then score, pca_score, threshold and
    // anomaly_score.
    let channels = series.channels.len();
    let mut floats: Vec<Shortest> = (0..channels + 4).map(|_| Shortest::default()).collect();
    let (values, scores) = floats.split_at_mut(channels);
    let mut line = Vec::with_capacity(1 << 16);
    for (i, r) in rows.iter().enumerate() {
        push_quoted(&mut line, series.time_text.get(i).as_bytes());
        for (&v, text) in series.row(i).iter().zip(values.iter_mut()) {
            line.push(b',');
            line.extend_from_slice(text.format(v));
        }
        for (v, text) in [r.score, r.pca_score, r.threshold]
            .into_iter()
            .zip(scores.iter_mut())
        {
            line.push(b',');
            if let Some(v) = v {
                line.extend_from_slice(text.format(v));
            }
        }
        line.push(b',');
        line.extend_from_slice(scores[3].format(r.anomaly_score));
        line.extend_from_slice(if r.alert { b",1," } else { b",0," });
        line.extend_from_slice(r.state.as_str().as_bytes());
        line.push(b'\n');
        if line.len() >= 1 << 15 {
            out.write_all(&line)?;
            line.clear();
        }
    }
    out.write_all(&line)?;
    out.flush()
}

/// Appends `field` as the csv writer writes it by default: in double quotes, inner
/// quotes doubled, when it holds a comma, a quote or a line break; as it is otherwise.
fn push_quoted(line: &mut Vec<u8>, field: &[u8]) {
    if !field.iter().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        line.extend_from_slice(field);
        return;
    }
    line.push(b'"');
    for &b in field {
        if b == b'"' {
            line.push(b'"');
        }
        line.push(b);
    }
    line.push(b'"');
}

mod shortest;

#[cfg(test)]
mod policy_tests;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::Config;
    use crate::eval::series::read_series;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn build_output() -> (String, ReplaySummary) {
        let config = Config::load(&fixture("small.toml")).unwrap().detector;
        let series = read_series(&fixture("small.csv"), None, None).unwrap();
        let (rows, summary) = replay(&series, &config, "small");
        let mut out = Vec::new();
        write_csv(&mut out, &series, &rows).unwrap();
        (String::from_utf8(out).unwrap(), summary)
    }

    /// The whole replay output of a small fixture is pinned. Set `UPDATE_GOLDEN=1` to
    /// rewrite it after an intended change, and review the diff.
    #[test]
    fn replay_output_matches_the_golden_file() {
        let (text, summary) = build_output();
        let golden = fixture("small.replay.csv");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &text).unwrap();
        }
        let want = std::fs::read_to_string(&golden).expect("golden file exists; run with UPDATE_GOLDEN=1");
        assert_eq!(text, want);
        assert!(summary.raised >= 1, "the spike at row 250 raises an alert");
    }

    #[test]
    fn replay_has_one_row_per_input_row_and_empty_scores_before_the_model() {
        let (text, _) = build_output();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "timestamp,Flow Rate,Pressure,score,pca_score,threshold,anomaly_score,alert,state"
        );
        assert_eq!(lines.len(), 301);
        assert!(lines[1].ends_with(",,,,0,0,warming_up"), "{}", lines[1]);
        let spike = lines[251].split(',').collect::<Vec<_>>();
        assert_eq!(spike[7], "1", "alert raised on the spike row: {}", lines[251]);
    }

    /// Row fields are written by hand; a time text that needs quoting must come out as
    /// the csv writer quotes it.
    #[test]
    fn time_texts_are_quoted_as_the_csv_writer_quotes_them() {
        let config = Config::load(&fixture("small.toml")).unwrap().detector;
        let mut series = read_series(&fixture("small.csv"), None, None).unwrap();
        let texts = ["2020-01-01, noon", "say \"when\"", "two\nlines", "plain"];
        let replaced: Vec<String> = (0..series.len())
            .map(|i| {
                texts
                    .get(i)
                    .copied()
                    .unwrap_or(series.time_text.get(i))
                    .to_string()
            })
            .collect();
        series.time_text = replaced.into_iter().collect();
        let (rows, _) = replay(&series, &config, "small");
        let mut out = Vec::new();
        write_csv(&mut out, &series, &rows).unwrap();
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let read: Vec<String> = reader
            .records()
            .take(4)
            .map(|r| r.unwrap()[0].to_string())
            .collect();
        assert_eq!(read, texts);
        for text in texts {
            let mut want = csv::Writer::from_writer(Vec::new());
            want.write_record([text, "x"]).unwrap();
            let want = want.into_inner().unwrap();
            let mut got = Vec::new();
            push_quoted(&mut got, text.as_bytes());
            got.extend_from_slice(b",x\n");
            assert_eq!(String::from_utf8(got).unwrap(), String::from_utf8(want).unwrap());
        }
    }

    #[test]
    fn rows_with_repeated_timestamps_are_scored_in_file_order() {
        let config = Config::load(&fixture("small.toml")).unwrap().detector;
        let mut series = read_series(&fixture("small.csv"), None, None).unwrap();
        series.ts[100] = series.ts[99];
        series.ts[101] = series.ts[50];
        let (rows, summary) = replay(&series, &config, "small");
        assert_eq!(summary.nudged, 2);
        assert_eq!(rows.len(), series.len());
        assert!(rows[101].score.is_some(), "a nudged row is still scored");
    }
}
