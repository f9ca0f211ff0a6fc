//! Drift removal: the first stage of a sensor's pipeline, between the reading and the
//! window (`[window] detrend`). It owns the per-channel EMA of past readings and which
//! channels the detrend applies to.

use crate::config::{DetectorConfig, Detrend};

/// One sensor's drift-removal state.
#[derive(Clone, Debug)]
pub(super) struct Drift {
    mode: Detrend,
    /// Per-channel EMA of past readings (`Detrend::Ema`).
    ema: Vec<f64>,
    ema_started: bool,
    /// Per channel: whether the detrend applies to it (`window.detrend_channels`).
    mask: Vec<bool>,
    /// The reading after drift removal, handed to the window.
    out: Vec<f64>,
}

impl Drift {
    pub(super) fn new(config: &DetectorConfig, channel_names: &[String]) -> Self {
        Self {
            mode: config.detrend,
            ema: vec![0.0; channel_names.len()],
            ema_started: false,
            mask: channel_names
                .iter()
                .map(|n| config.detrend_channels.is_empty() || config.detrend_channels.contains(n))
                .collect(),
            out: vec![0.0; channel_names.len()],
        }
    }

    /// The reading as the window should see it. Past readings only: the EMA learns
    /// `values` in [`Self::commit`], after the window took it.
    pub(super) fn apply<'a>(&'a mut self, values: &'a [f64]) -> &'a [f64] {
        if !matches!(self.mode, Detrend::Ema { .. }) || values.len() != self.out.len() {
            return values;
        }
        for (((d, &v), &m), &on) in self.out.iter_mut().zip(values).zip(&self.ema).zip(&self.mask) {
            *d = match (on, self.ema_started) {
                (false, _) => v,
                (true, true) => v - m,
                (true, false) => 0.0,
            };
        }
        &self.out
    }

    /// Learns a reading the window accepted.
    pub(super) fn commit(&mut self, values: &[f64]) {
        let Detrend::Ema { rows } = self.mode else {
            return;
        };
        let alpha = 2.0 / (rows as f64 + 1.0);
        for (m, &v) in self.ema.iter_mut().zip(values) {
            *m = if self.ema_started {
                *m + alpha * (v - *m)
            } else {
                v
            };
        }
        self.ema_started = true;
    }

    /// Per-window drift removal (`Detrend::WindowMean`) on a flattened window, in place.
    pub(super) fn window(&self, raw: &mut [f64]) {
        if self.mode == Detrend::WindowMean {
            demean(raw, &self.mask);
        }
    }

    /// The EMA for snapshots; empty when not started.
    pub(super) fn ema(&self) -> Vec<f64> {
        if self.ema_started {
            self.ema.clone()
        } else {
            Vec::new()
        }
    }

    /// Restores a snapshot's EMA (ignored when its channel count differs).
    pub(super) fn restore(&mut self, ema: Vec<f64>) {
        if ema.len() == self.ema.len() && !ema.is_empty() {
            self.ema = ema;
            self.ema_started = true;
        }
    }
}

/// Subtracts from each selected channel of a flattened time-major window its mean over
/// the window, in place.
fn demean(window: &mut [f64], mask: &[bool]) {
    let channels = mask.len().max(1);
    let rows = (window.len() / channels).max(1) as f64;
    for (c, _) in mask.iter().enumerate().filter(|(_, on)| **on) {
        let mean = window.iter().skip(c).step_by(channels).sum::<f64>() / rows;
        for v in window.iter_mut().skip(c).step_by(channels) {
            *v -= mean;
        }
    }
}
