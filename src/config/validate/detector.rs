//! Checks of the detector's sections: `[window]` (with the detrend), `[model]`,
//! `[training]`, `[threshold]`, `[alert]`, `[score]` and `[learning]`, each building
//! its checked value.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::alert::SeverityBands;
use crate::model::autoencoder::{Loss, Noise, Penalty};

/// Largest `window.reorder_rows`: every reading of a sensor waits for this many newer
/// ones, so a larger value is a latency no operator wants (and memory per sensor).
const MAX_REORDER_ROWS: usize = 1024;

pub(super) fn detector(raw: &RawConfig, p: &mut Problems) -> DetectorConfig {
    let w = &raw.window;
    p.check(w.size >= 2, "window.size", || {
        format!("must be at least 2, got {}", w.size)
    });
    p.check(w.stride >= 1, "window.stride", || {
        format!("must be at least 1, got {}", w.stride)
    });
    p.check(
        w.max_gap_secs >= 0.0 && w.max_gap_secs.is_finite(),
        "window.max_gap_secs",
        || format!("must be 0 (off) or positive, got {}", w.max_gap_secs),
    );
    p.check(w.reorder_rows <= MAX_REORDER_ROWS, "window.reorder_rows", || {
        format!("must be at most {MAX_REORDER_ROWS}, got {}", w.reorder_rows)
    });
    let window = WindowParams {
        size: w.size.max(2),
        channels: 1,
        stride: w.stride.max(1),
        max_gap: (w.max_gap_secs > 0.0).then_some(w.max_gap_secs),
    };
    let model = model(raw, p);
    let t = &raw.training;
    p.check(t.min_windows >= 2, "training.min_windows", || {
        format!("must be at least 2, got {}", t.min_windows)
    });
    p.check(t.buffer >= t.min_windows, "training.buffer", || {
        format!(
            "must be at least training.min_windows ({}), got {}",
            t.min_windows, t.buffer
        )
    });
    p.check(
        t.drift_tolerance.is_finite() && t.drift_tolerance >= 0.0,
        "training.drift_tolerance",
        || format!("must be a number >= 0, got {}", t.drift_tolerance),
    );
    p.check(t.parallel >= 1, "training.parallel", || {
        format!("must be at least 1, got {}", t.parallel)
    });
    let training = TrainingConfig {
        parallel: t.parallel.max(1),
        min_windows: t.min_windows,
        retrain_every: (t.retrain_every > 0).then_some(t.retrain_every),
        drift_tolerance: (t.drift_tolerance > 0.0).then_some(t.drift_tolerance),
        buffer: t.buffer,
    };
    DetectorConfig {
        window,
        model,
        training,
        threshold: threshold(raw, p),
        alert: alert(raw, p),
        score: score(raw, p),
        learning: learning(raw, p),
        detrend: detrend(raw, p),
        detrend_channels: raw.window.detrend_channels.clone(),
        reorder_rows: w.reorder_rows,
    }
}

fn model(raw: &RawConfig, p: &mut Problems) -> ModelConfig {
    let m = &raw.model;
    let loss = match m.loss.as_str() {
        "mse" => Loss::Mse,
        "bce" => Loss::Bce,
        other => {
            p.add("model.loss", format!("must be mse or bce, got {other:?}"));
            Loss::Mse
        }
    };
    let kind = match m.kind.as_str() {
        "undercomplete" => AutoencoderKind::Undercomplete,
        "sparse" => {
            let penalty = match m.penalty.as_str() {
                "l1" => Penalty::L1,
                "l2" => Penalty::L2,
                other => {
                    p.add("model.penalty", format!("must be l1 or l2, got {other:?}"));
                    Penalty::L1
                }
            };
            AutoencoderKind::Sparse {
                penalty,
                weight: m.penalty_weight,
            }
        }
        "denoising" => {
            let noise = match m.noise.as_str() {
                "gaussian" => Noise::Gaussian { std: m.noise_level },
                "masking" => Noise::Masking { p: m.noise_level },
                other => {
                    p.add(
                        "model.noise",
                        format!("must be gaussian or masking, got {other:?}"),
                    );
                    Noise::Gaussian { std: m.noise_level }
                }
            };
            AutoencoderKind::Denoising { noise }
        }
        other => {
            p.add(
                "model.kind",
                format!("must be undercomplete, sparse or denoising, got {other:?}"),
            );
            AutoencoderKind::Undercomplete
        }
    };
    let template = AutoencoderParams::new(raw.window.size.max(2))
        .hidden(m.hidden.clone())
        .latent(m.latent)
        .activation(m.activation)
        .output_activation(m.output_activation)
        .loss(loss)
        .kind(kind)
        .learning_rate(m.learning_rate)
        .batch_size(m.batch_size)
        .epochs(m.epochs)
        .validation_fraction(m.validation_fraction)
        .patience(m.patience)
        .min_improvement(m.min_improvement)
        .seed(m.seed);
    // The model owns its range checks; config only maps them onto the `model.` keys.
    match template.clone().check() {
        Ok(_) => {}
        Err(ModelError::Params(problems)) => {
            for (param, message) in problems {
                // The builder's input width is the window's size (× channels later).
                let key = match param {
                    "n_inputs" => "window.size".to_string(),
                    other => format!("model.{other}"),
                };
                p.add(&key, message);
            }
        }
        Err(e) => p.add("model", e.to_string()),
    }
    let pca_components = if m.pca_components == 0 {
        m.latent
    } else {
        m.pca_components
    };
    p.check(
        pca_components >= 1 && pca_components < raw.window.size,
        "model.pca_components",
        || {
            format!(
                "must be in 1..{} (below window.size), got {pca_components}",
                raw.window.size
            )
        },
    );
    let skip = match m.skip.as_str() {
        "auto" => Skip::Auto,
        "pca" => Skip::Pca,
        "none" => Skip::None,
        other => {
            p.add("model.skip", format!("must be auto, pca or none, got {other:?}"));
            Skip::Auto
        }
    };
    let normalise = if loss == Loss::Bce {
        NormaliseMode::Minmax
    } else {
        NormaliseMode::Zscore
    };
    ModelConfig {
        template,
        kind,
        pca_components,
        skip,
        normalise,
    }
}

fn threshold(raw: &RawConfig, p: &mut Problems) -> ThresholdConfig {
    let t = &raw.threshold;
    let default = SensorThreshold {
        quantile: p.quantile("threshold.quantile", t.quantile),
        floor: t.floor,
    };
    p.check(t.floor >= 0.0 && t.floor.is_finite(), "threshold.floor", || {
        format!("must be finite and >= 0, got {}", t.floor)
    });
    p.check(
        t.margin >= 1.0 && t.margin.is_finite(),
        "threshold.margin",
        || format!("must be finite and >= 1, got {}", t.margin),
    );
    p.check(t.window >= 1, "threshold.window", || {
        format!("must be at least 1, got {}", t.window)
    });
    p.check(
        t.min_scores >= 1 && t.min_scores <= t.window.max(1),
        "threshold.min_scores",
        || {
            format!(
                "must be in 1..=threshold.window ({}), got {}",
                t.window, t.min_scores
            )
        },
    );
    let score = match t.score.as_str() {
        "ae" => ScoreSource::Ae,
        "pca" => ScoreSource::Pca,
        "mean" => ScoreSource::Mean,
        "ae_pca" => ScoreSource::AePca,
        other => {
            p.add(
                "threshold.score",
                format!("must be ae, pca, ae_pca or mean, got {other:?}"),
            );
            ScoreSource::Ae
        }
    };
    let mut sensors = BTreeMap::new();
    for (id, o) in &t.sensors {
        let key = format!("threshold.sensors.{id}");
        let quantile = match o.quantile {
            Some(q) => p.quantile(&format!("{key}.quantile"), q),
            None => default.quantile,
        };
        let floor = o.floor.unwrap_or(default.floor);
        p.check(floor >= 0.0 && floor.is_finite(), &format!("{key}.floor"), || {
            format!("must be finite and >= 0, got {floor}")
        });
        sensors.insert(id.clone(), SensorThreshold { quantile, floor });
    }
    ThresholdConfig {
        default,
        window: t.window.max(1),
        min_scores: t.min_scores.max(1),
        margin: t.margin,
        score,
        sensors,
    }
}

fn alert(raw: &RawConfig, p: &mut Problems) -> AlertParams {
    let a = &raw.alert;
    p.check(a.consecutive >= 1, "alert.consecutive", || {
        format!("must be at least 1, got {}", a.consecutive)
    });
    p.check(a.clear_after >= 1, "alert.clear_after", || {
        format!("must be at least 1, got {}", a.clear_after)
    });
    let subside_ok = (0.0..1.0).contains(&a.subside);
    p.check(subside_ok, "alert.subside", || {
        format!("must be in [0, 1), got {}", a.subside)
    });
    let severity = SeverityBands::try_from(a.severity_bands.as_slice()).unwrap_or_else(|m| {
        p.add("alert.severity_bands", m);
        SeverityBands::default()
    });
    AlertParams {
        consecutive: a.consecutive.max(1),
        clear_after: a.clear_after.max(1),
        cooldown: a.cooldown,
        severity,
        stuck_rows: a.stuck_rows,
        subside: if subside_ok { a.subside } else { 0.0 },
    }
}

fn nonzero(p: &mut Problems, key: &str, n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or_else(|| {
        p.add(key, "must be at least 1, got 0");
        NonZeroUsize::MIN
    })
}

fn score(raw: &RawConfig, p: &mut Problems) -> ScoreStrategy {
    let s = &raw.score;
    match s.strategy.as_str() {
        "ratio" => ScoreStrategy::Ratio,
        "onset" => {
            p.check(
                s.range_margin.is_finite() && s.range_margin >= 0.0,
                "score.range_margin",
                || format!("must be a number >= 0 (0 = off), got {}", s.range_margin),
            );
            let rows = nonzero(p, "score.range_rows", s.range_rows);
            let tail = s.likelihood_tail;
            p.check(
                tail.is_finite() && (0.0..0.5).contains(&tail),
                "score.likelihood_tail",
                || format!("must be a probability in [0, 0.5) (0 = off), got {tail}"),
            );
            let point = match s.point.as_str() {
                "z" => true,
                "off" => false,
                other => {
                    p.add("score.point", format!("must be z or off, got {other:?}"));
                    false
                }
            };
            ScoreStrategy::Onset(OnsetScore {
                history: nonzero(p, "score.history", s.history),
                onset_rows: s.onset_rows,
                point,
                range: (s.range_margin.is_finite() && s.range_margin > 0.0).then_some(RangeParams {
                    margin: s.range_margin,
                    rows,
                }),
                likelihood_tail: (tail.is_finite() && tail > 0.0 && tail < 0.5).then_some(tail),
                rest_rows: s.rest_rows,
            })
        }
        other => {
            p.add("score.strategy", format!("must be onset or ratio, got {other:?}"));
            ScoreStrategy::Ratio
        }
    }
}

fn learning(raw: &RawConfig, p: &mut Problems) -> LearningConfig {
    let secs = raw.learning.accept_after_secs;
    p.check(
        secs.is_finite() && secs >= 0.0,
        "learning.accept_after_secs",
        || format!("must be 0 (never) or a positive number of seconds, got {secs}"),
    );
    LearningConfig {
        accept_after: (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs)),
    }
}

fn detrend(raw: &RawConfig, p: &mut Problems) -> Detrend {
    let w = &raw.window;
    match w.detrend.as_str() {
        "none" => Detrend::None,
        "window_mean" => Detrend::WindowMean,
        "ema" => {
            p.check(w.detrend_rows >= 1, "window.detrend_rows", || {
                format!("must be at least 1, got {}", w.detrend_rows)
            });
            Detrend::Ema {
                rows: w.detrend_rows.max(1),
            }
        }
        other => {
            p.add(
                "window.detrend",
                format!("must be none, ema or window_mean, got {other:?}"),
            );
            Detrend::None
        }
    }
}
