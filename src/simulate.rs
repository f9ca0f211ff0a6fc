//! Synthetic multichannel telemetry with labelled, injected anomalies.
//!
//! Owns the pure, seeded [`Simulator`] (no clock, no IO: same seed and `t0`, same
//! output) and, in [`run`], the MQTT publisher behind `anomalyd simulate` and `demo`.
//! It does not detect anything; the returned [`Injection`]s are the ground truth that
//! tests and `eval` compare alerts with.
//!
//! Each sensor (`pump-01`, `pump-02`, …) reports three correlated channels, in the
//! order of [`CHANNELS`] (sorted, so it matches the JSON parser's default order):
//! - `current` (A): base ± 2 A following a sinusoidal load with a 10-minute period;
//! - `temperature` (°C): follows the load through a 30 s first-order lag;
//! - `vibration` (mm/s): proportional to current, so the two are strongly correlated.

use std::f64::consts::TAU;
use std::fmt;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

mod publisher;

pub use publisher::{SimError, SimSummary, run};

/// Channel names, in the order every tick reports them.
pub const CHANNELS: [&str; 3] = ["current", "temperature", "vibration"];

/// Period of the normal load cycle, seconds of sim time.
const LOAD_PERIOD: f64 = 600.0;
/// How much faster the load cycles during [`AnomalyKind::FrequencyChange`] (8 s
/// instead of 10 minutes at the default period).
const FAST_FACTOR: f64 = 75.0;
/// Time constant of the temperature lag as a fraction of the load period (30 s at the
/// default 10 minutes), so a shortened cycle keeps the same shape.
const TEMP_LAG_FRACTION: f64 = 0.05;

/// Simulator settings; [`SimParams::check`] validates them.
#[derive(Clone, Debug, PartialEq)]
pub struct SimParams {
    /// Number of sensors, at least 1. Default 3.
    pub sensors: usize,
    /// Readings per second per sensor, finite and > 0. Default 10.
    pub rate_hz: f64,
    /// RNG seed; equal seeds give identical output. Default 42.
    pub seed: u64,
    /// Mean seconds between the end of one injected anomaly and the start of the next
    /// on each sensor (exponentially distributed), > 0; infinity disables anomalies.
    /// Default 120.
    pub anomaly_every: f64,
    /// Seconds of clean data before the first anomaly, ≥ 0, so detectors can warm
    /// up. Default 300.
    pub warmup: f64,
    /// Period of the normal load cycle, seconds, > 0. Default 600 (10 minutes); the
    /// demo shortens it so that its brief warm-up sees whole cycles.
    pub load_period: f64,
}

impl Default for SimParams {
    fn default() -> Self {
        Self {
            sensors: 3,
            rate_hz: 10.0,
            seed: 42,
            anomaly_every: 120.0,
            warmup: 300.0,
            load_period: LOAD_PERIOD,
        }
    }
}

impl SimParams {
    /// Checks every field; the error names the first bad one and its value.
    ///
    /// # Errors
    /// [`SimError::InvalidParams`] for zero sensors, a non-positive or non-finite
    /// rate, a non-positive or NaN `anomaly_every`, or a negative or non-finite warmup.
    pub fn check(&self) -> Result<(), SimError> {
        let bad = |field: &'static str, value: f64, rule: &'static str| {
            Err(SimError::InvalidParams { field, value, rule })
        };
        if self.sensors == 0 {
            return bad("sensors", 0.0, "at least 1");
        }
        if !(self.rate_hz.is_finite() && self.rate_hz > 0.0) {
            return bad("rate_hz", self.rate_hz, "finite and > 0");
        }
        // NaN fails this too; infinity is allowed (no anomalies).
        if self.anomaly_every.is_nan() || self.anomaly_every <= 0.0 {
            return bad("anomaly_every", self.anomaly_every, "> 0");
        }
        if !(self.warmup.is_finite() && self.warmup >= 0.0) {
            return bad("warmup", self.warmup, "finite and >= 0");
        }
        if !(self.load_period.is_finite() && self.load_period > 0.0) {
            return bad("load_period", self.load_period, "finite and > 0");
        }
        Ok(())
    }
}

/// What an injected anomaly does to a sensor's channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    /// 2–5 s: current +8 A and vibration +1 mm/s, far outside the normal range.
    Spike,
    /// 10–40 s: temperature +8 °C.
    LevelShift,
    /// 10–40 s: temperature ramps up linearly to +12 °C.
    Drift,
    /// 10–40 s: the load cycle runs with an 8 s period instead of 10 minutes.
    FrequencyChange,
    /// 10–40 s: vibration moves against current; each channel stays in its range.
    BrokenCorrelation,
    /// 10–40 s: vibration repeats the value it had when the anomaly began (a frozen
    /// sensor): in range, and a flat stretch reconstructs well.
    Stuck,
}

impl AnomalyKind {
    /// Every kind, in rotation order.
    pub const ALL: [AnomalyKind; 6] = [
        Self::Spike,
        Self::LevelShift,
        Self::Drift,
        Self::FrequencyChange,
        Self::BrokenCorrelation,
        Self::Stuck,
    ];

    /// snake_case name, e.g. `"level_shift"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spike => "spike",
            Self::LevelShift => "level_shift",
            Self::Drift => "drift",
            Self::FrequencyChange => "frequency_change",
            Self::BrokenCorrelation => "broken_correlation",
            Self::Stuck => "stuck",
        }
    }

    /// Duration range in seconds.
    fn duration(self) -> (f64, f64) {
        match self {
            Self::Spike => (2.0, 5.0),
            _ => (10.0, 40.0),
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One injected anomaly: ground truth for evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Injection {
    /// Sensor id, e.g. `pump-01`.
    pub sensor: String,
    /// What was injected.
    pub kind: AnomalyKind,
    /// Unix seconds of the first affected tick.
    pub start: f64,
    /// Unix seconds after the last affected tick (exclusive).
    pub end: f64,
}

/// One sensor's output for one tick: sensor id, unix seconds, `(channel, value)`s.
pub type SensorTick = (String, f64, Vec<(String, f64)>);

/// Per-sensor state; each sensor has its own RNG so adding sensors does not change
/// the others' data.
struct Sensor {
    id: String,
    rng: SmallRng,
    phase: f64,
    current_base: f64,
    temp_base: f64,
    /// Lagged temperature state, °C.
    temp: f64,
    next_anomaly: f64,
    active: Option<Injection>,
    /// The vibration a [`AnomalyKind::Stuck`] anomaly repeats, from its first tick.
    frozen: Option<f64>,
    /// Anomalies started so far; drives the kind rotation.
    started: usize,
}

/// Seeded generator of ticks; see the module docs for the signal model.
pub struct Simulator {
    p: SimParams,
    t0: f64,
    tick: u64,
    sensors: Vec<Sensor>,
}

impl Simulator {
    /// Creates a simulator whose first tick is at `t0` (unix seconds).
    ///
    /// # Panics
    /// If `p` fails [`SimParams::check`]; [`run`] checks first and returns the error.
    pub fn new(p: SimParams, t0: f64) -> Self {
        if let Err(e) = p.check() {
            panic!("invalid simulator parameters: {e}");
        }
        let sensors = (0..p.sensors)
            .map(|i| {
                // Golden-ratio stride decorrelates the per-sensor seeds.
                let seed = p.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut rng = SmallRng::seed_from_u64(seed);
                let phase = rng.gen_range(0.0..TAU);
                let current_base = rng.gen_range(8.0..12.0);
                let temp_base = rng.gen_range(35.0..45.0);
                let first = t0 + p.warmup + exp_sample(&mut rng, p.anomaly_every);
                Sensor {
                    id: format!("pump-{:02}", i + 1),
                    temp: temp_base + 3.0 * phase.sin(),
                    rng,
                    phase,
                    current_base,
                    temp_base,
                    next_anomaly: first,
                    active: None,
                    // Sensors start the rotation two kinds apart: the first three show
                    // a spike, a drift and a broken correlation, so a one-minute demo
                    // shows the multivariate kind too.
                    frozen: None,
                    started: 2 * i,
                }
            })
            .collect();
        Self {
            p,
            t0,
            tick: 0,
            sensors,
        }
    }

    /// Advances one tick (1 / `rate_hz` seconds) and returns every sensor's reading
    /// plus the injections that start at this tick.
    pub fn next_tick(&mut self) -> (Vec<SensorTick>, Vec<Injection>) {
        let dt = 1.0 / self.p.rate_hz;
        let t = self.t0 + self.tick as f64 * dt;
        self.tick += 1;
        let mut started = Vec::new();
        let readings = self
            .sensors
            .iter_mut()
            .map(|s| {
                if let Some(inj) = s.schedule(t, dt, self.p.anomaly_every) {
                    started.push(inj);
                }
                (s.id.clone(), t, s.sample(t, t - self.t0, dt, self.p.load_period))
            })
            .collect();
        (readings, started)
    }
}

impl Sensor {
    /// Ends a finished anomaly and starts the next one when due.
    fn schedule(&mut self, t: f64, dt: f64, every: f64) -> Option<Injection> {
        if self.active.as_ref().is_some_and(|a| t >= a.end) {
            self.active = None;
            self.frozen = None;
        }
        if self.active.is_some() || t < self.next_anomaly {
            return None;
        }
        let kind = AnomalyKind::ALL[self.started % AnomalyKind::ALL.len()];
        self.started += 1;
        let (lo, hi) = kind.duration();
        let secs = self.rng.gen_range(lo..hi).max(dt);
        let inj = Injection {
            sensor: self.id.clone(),
            kind,
            start: t,
            end: t + secs,
        };
        self.next_anomaly = inj.end + exp_sample(&mut self.rng, every);
        self.active = Some(inj.clone());
        Some(inj)
    }

    /// One reading at unix time `t`, `rel` seconds after `t0`, with the active
    /// anomaly applied.
    fn sample(&mut self, t: f64, rel: f64, dt: f64, load_period: f64) -> Vec<(String, f64)> {
        let kind = self.active.as_ref().map(|a| a.kind);
        let period = match kind {
            Some(AnomalyKind::FrequencyChange) => load_period / FAST_FACTOR,
            _ => load_period,
        };
        let load = (TAU * rel / period + self.phase).sin();
        let mut current = self.current_base + 2.0 * load + self.noise(0.1);
        let target = self.temp_base + 3.0 * load;
        // Clamp keeps the Euler step stable even at rates below 1/30 Hz.
        self.temp += (target - self.temp) * (dt / (TEMP_LAG_FRACTION * load_period)).min(1.0);
        let mut temperature = self.temp + self.noise(0.1);
        let drive = match kind {
            // Mirror current around its base: same range, opposite direction.
            Some(AnomalyKind::BrokenCorrelation) => 2.0 * self.current_base - current,
            _ => current,
        };
        let mut vibration = 0.2 + 0.05 * drive + self.noise(0.01);
        if let Some(a) = &self.active {
            let progress = ((t - a.start) / (a.end - a.start)).clamp(0.0, 1.0);
            match a.kind {
                AnomalyKind::Spike => {
                    current += 8.0;
                    vibration += 1.0;
                }
                AnomalyKind::LevelShift => temperature += 8.0,
                AnomalyKind::Drift => temperature += 12.0 * progress,
                AnomalyKind::Stuck => vibration = *self.frozen.get_or_insert(vibration),
                AnomalyKind::FrequencyChange | AnomalyKind::BrokenCorrelation => {}
            }
        }
        [current, temperature, vibration]
            .into_iter()
            .zip(CHANNELS)
            .map(|(v, name)| (name.to_owned(), v))
            .collect()
    }

    fn noise(&mut self, sd: f64) -> f64 {
        let z: f64 = self.rng.sample(StandardNormal);
        sd * z
    }
}

/// Exponential sample with the given mean; infinity when the mean is infinite.
fn exp_sample(rng: &mut SmallRng, mean: f64) -> f64 {
    let u: f64 = rng.r#gen(); // in [0, 1), so 1 - u > 0 and ln is finite
    -(1.0 - u).ln() * mean
}

/// Renders one tick as the JSON payload the daemon's default parser expects:
/// `{"ts":1700000000.1,"current":10.2,...}`. Non-finite values become `null`.
pub fn to_json_payload(ts: f64, channels: &[(String, f64)]) -> String {
    let mut out = format!("{{\"ts\":{}", json_number(ts));
    for (name, v) in channels {
        // to_string on a &String cannot fail: it has no map keys or non-finite floats.
        let key = serde_json::to_string(name).unwrap_or_default();
        out.push_str(&format!(",{key}:{}", json_number(*v)));
    }
    out.push('}');
    out
}

fn json_number(x: f64) -> String {
    if x.is_finite() {
        x.to_string()
    } else {
        "null".to_owned()
    }
}

#[cfg(test)]
mod tests;
