//! The detector's unit tests, by theme: a sensor's life ([`lifecycle`]), snapshots
//! ([`snapshot`]), the anomaly score's components ([`scoring`]), faults, recovery and
//! acceptance ([`faults`]) and stuck channels ([`stuck`]). The helpers here (a small
//! config, a two-channel test signal, [`feed`]) are shared with the other test modules
//! of `detector`.

mod faults;
mod lifecycle;
mod scoring;
mod snapshot;
mod stuck;

use super::*;
use crate::config::Config;

pub(super) fn build_config(extra: &str) -> DetectorConfig {
    let text = format!(
        "[window]\nsize = 8\n[model]\nhidden = [6]\nlatent = 2\nepochs = 5\n\
         [training]\nmin_windows = 64\nretrain_every = 0\nbuffer = 256\n\
         [threshold]\nwindow = 200\nmin_scores = 20\nquantile = 0.99\n\
         [alert]\nconsecutive = 1\nclear_after = 3\ncooldown = 10\n{extra}"
    );
    Config::from_toml_str(&text).unwrap().detector
}

/// Two channels: a sine and its scaled copy, with a little deterministic wobble.
pub(super) fn build_reading(i: usize) -> [f64; 2] {
    let x = (i as f64 * 0.3).sin() + 0.01 * ((i * 7919) % 13) as f64;
    [x, 2.0 * x + 5.0]
}

pub(super) fn names() -> Vec<String> {
    vec!["temp".into(), "vib".into()]
}

pub(super) fn feed(d: &mut Detector, id: &SensorId, from: usize, to: usize) -> Vec<Step> {
    (from..to)
        .map(|i| d.process_inline(id, i as f64, &build_reading(i), names).unwrap())
        .collect()
}
