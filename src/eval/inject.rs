//! `eval --inject`: synthetic faults injected into a recording of normal operation, and
//! what the detector's `alert` makes of them. The labelled corpora say how a detector
//! does on their own anomalies; this says, for any normal recording an operator has,
//! which kinds of fault the shipped defaults catch, how soon, and how often they alarm
//! on the recording as it is.
//!
//! The clean recording is replayed to find the onsets (spread evenly over the part of
//! the file after the first quarter, each moved to a row where the clean replay is
//! quiet: scoring, no alert, and none raised over the fault's span; a test that needs
//! the replay's future, hence the first pass). A second clean replay is forked at each
//! onset, the fault is written into one channel of the following rows, and the fork is
//! stepped over the fault and a grace period after it. A fault is caught when the fork raises an
//! alert within that span; the clean replay raised none there, so the fault caused it.
//! Fault sizes are in units of the channel's standard deviation over the whole clean
//! recording, so "2σ" is a value inside the channel's normal range, at the wrong time.
//! [`crate::eval::report::inject_table`] renders the results.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::config::DetectorConfig;
use crate::detector::SensorState;
use crate::eval::replay::Replayer;
use crate::eval::run::parallel;
use crate::eval::series::Series;

/// A kind of fault, written into one channel from its onset for [`Spec::rows`] rows
/// (a spike: one row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// One reading 6σ above the value.
    Spike,
    /// The value 2σ higher from the onset on.
    Shift,
    /// A ramp from 0 to 3σ added over the fault's rows.
    Drift,
    /// The value frozen at the onset's reading (a stuck sensor).
    Stuck,
    /// Gaussian noise of 1σ added to every reading.
    Noise,
    /// The channel replaced by its own readings from half a recording away: each value
    /// is plausible on its own, but its relation to the other channels is broken.
    /// Multichannel recordings only.
    Decouple,
}

impl Fault {
    /// Every kind, in report order.
    pub const ALL: [Fault; 6] = [
        Fault::Spike,
        Fault::Shift,
        Fault::Drift,
        Fault::Stuck,
        Fault::Noise,
        Fault::Decouple,
    ];

    /// The kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Spike => "spike 6σ",
            Fault::Shift => "level shift 2σ",
            Fault::Drift => "drift to 3σ",
            Fault::Stuck => "stuck value",
            Fault::Noise => "noise +1σ",
            Fault::Decouple => "decoupled channel",
        }
    }

    /// Rows the fault occupies when faults last `rows` rows.
    fn span(self, rows: usize) -> usize {
        if self == Fault::Spike { 1 } else { rows }
    }

    /// The faulty value of the `k`-th row of the fault at `at`, in a channel whose
    /// clean values are `clean(row)`.
    fn value(self, clean: impl Fn(usize) -> f64, at: Place, k: usize, rng: &mut SmallRng) -> f64 {
        let Place {
            onset,
            span,
            sigma,
            n,
        } = at;
        let row = onset + k;
        match self {
            Fault::Spike => clean(row) + 6.0 * sigma,
            Fault::Shift => clean(row) + 2.0 * sigma,
            Fault::Drift => clean(row) + 3.0 * sigma * (k + 1) as f64 / span as f64,
            Fault::Stuck => clean(onset),
            Fault::Noise => clean(row) + sigma * rng.sample::<f64, _>(StandardNormal),
            Fault::Decouple => clean((row + n / 2) % n),
        }
    }
}

/// Where one fault goes: its onset row and length, the standard deviation of its
/// channel, and the recording's length.
#[derive(Clone, Copy, Debug)]
struct Place {
    onset: usize,
    span: usize,
    sigma: f64,
    n: usize,
}

/// How faults are placed.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Onsets per kind of fault.
    pub onsets: usize,
    /// Rows each fault (but a spike) lasts.
    pub rows: usize,
    /// Rows after a fault's end in which an alert still counts as catching it.
    pub grace: usize,
}

impl Default for Spec {
    /// Eight onsets, faults of 200 rows, 64 rows of grace (two default windows).
    fn default() -> Self {
        Self {
            onsets: 8,
            rows: 200,
            grace: 64,
        }
    }
}

/// What the detector made of one kind of fault.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultResult {
    /// The kind.
    pub fault: Fault,
    /// Faults injected (onsets where the clean replay was quiet).
    pub injected: usize,
    /// Faults an alert was raised for.
    pub caught: usize,
    /// Rows from each caught fault's onset to its alert.
    pub delays: Vec<usize>,
}

impl FaultResult {
    /// Share of the injected faults caught (0 when none was injected).
    pub fn rate(&self) -> f64 {
        self.caught as f64 / self.injected.max(1) as f64
    }

    /// Median rows from onset to alert over the caught faults.
    pub fn median_delay(&self) -> Option<f64> {
        let mut d = self.delays.clone();
        d.sort_unstable();
        match d.len() {
            0 => None,
            n if n % 2 == 1 => Some(d[n / 2] as f64),
            n => Some((d[n / 2 - 1] + d[n / 2]) as f64 / 2.0),
        }
    }
}

/// An injection run over one clean recording.
#[derive(Clone, Debug, PartialEq)]
pub struct InjectRun {
    /// Alerts the clean replay raised after its first quarter (false alarms).
    pub clean_alerts: usize,
    /// Share of those rows the clean replay spent in alert (0–1).
    pub clean_alert_share: f64,
    /// One per kind of fault that applies to the recording.
    pub faults: Vec<FaultResult>,
}

/// Injects every kind of fault at `spec.onsets` places of `series` (a recording of
/// normal operation) and replays each under `config`, on `threads` workers.
pub fn run_inject(config: &DetectorConfig, series: &Series, spec: Spec, threads: usize) -> InjectRun {
    let n = series.len();
    let start = n / 4;
    let mut clean = Replayer::new(config, "inject", &series.channels);
    let mut raised = Vec::with_capacity(n);
    let rows: Vec<_> = (0..n)
        .map(|i| {
            let before = clean.raised();
            let row = clean.step(i, series.ts[i], series.row(i));
            raised.push(clean.raised() > before);
            row
        })
        .collect();
    let quiet = |onset: usize, len: usize| {
        onset > 0
            && onset + len <= n
            && rows[onset - 1].state == SensorState::Normal
            && !raised[onset..onset + len].iter().any(|&r| r)
    };
    let kinds: Vec<Fault> = (Fault::ALL.into_iter())
        .filter(|&f| f != Fault::Decouple || series.channels.len() > 1)
        .collect();
    // Onsets: evenly spaced after `start`, each moved forward to a quiet row.
    let span = spec.rows + spec.grace;
    let last = n.saturating_sub(span);
    let mut onsets = Vec::new();
    for k in 0..spec.onsets {
        let from = start + k * last.saturating_sub(start) / spec.onsets.max(1);
        let next = onsets.last().map_or(from, |&o: &usize| from.max(o + 1));
        if let Some(o) = (next..last).find(|&o| quiet(o, span)) {
            onsets.push(o);
        }
    }
    // The clean replay forked at each onset.
    let mut forks = Vec::with_capacity(onsets.len());
    let mut fork = Replayer::new(config, "inject", &series.channels);
    let mut at = 0;
    for &o in &onsets {
        for i in at..o {
            fork.step(i, series.ts[i], series.row(i));
        }
        at = o;
        forks.push(fork.clone());
    }
    let jobs: Vec<(usize, Fault)> = (0..onsets.len())
        .flat_map(|p| kinds.iter().map(move |&f| (p, f)))
        .collect();
    let sigmas: Vec<f64> = (0..series.channels.len())
        .map(|c| channel_std(series, c))
        .collect();
    let outcomes = parallel(jobs.len(), threads, |j| {
        let (p, fault) = jobs[j];
        let channel = p % series.channels.len();
        let at = Place {
            onset: onsets[p],
            span: fault.span(spec.rows),
            sigma: sigmas[channel],
            n,
        };
        inject_one(&forks[p], series, at, channel, fault, spec, p as u64)
    });
    let faults = kinds
        .iter()
        .map(|&fault| {
            let delays: Vec<usize> = (jobs.iter().zip(&outcomes))
                .filter(|((_, f), _)| *f == fault)
                .filter_map(|(_, d)| *d)
                .collect();
            FaultResult {
                fault,
                injected: onsets.len(),
                caught: delays.len(),
                delays,
            }
        })
        .collect();
    let tail = &rows[start.min(n)..];
    InjectRun {
        clean_alerts: raised[start.min(n)..].iter().filter(|&&r| r).count(),
        clean_alert_share: tail.iter().filter(|r| r.alert).count() as f64 / tail.len().max(1) as f64,
        faults,
    }
}

/// Steps a copy of `fork` (the clean replay up to the fault's onset) over the fault
/// at `at`, written into `channel`, and the grace rows after it; the rows from onset to
/// the first alert, if one was raised.
fn inject_one(
    fork: &Replayer,
    series: &Series,
    at: Place,
    channel: usize,
    fault: Fault,
    spec: Spec,
    seed: u64,
) -> Option<usize> {
    let mut replayer = fork.clone();
    let width = series.channels.len();
    let clean = |row: usize| series.values[row * width + channel];
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut values = vec![0.0; width];
    let before = replayer.raised();
    for k in 0..spec.rows + spec.grace {
        let row = at.onset + k;
        values.copy_from_slice(series.row(row));
        if k < at.span {
            values[channel] = fault.value(clean, at, k, &mut rng);
        }
        replayer.step(row, series.ts[row], &values);
        if replayer.raised() > before {
            return Some(k);
        }
    }
    None
}

/// Standard deviation of one channel over the whole recording.
fn channel_std(series: &Series, channel: usize) -> f64 {
    let n = series.len().max(1) as f64;
    let values = (0..series.len()).map(|i| series.row(i)[channel]);
    let mean = values.clone().sum::<f64>() / n;
    (values.map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[cfg(test)]
mod tests;
