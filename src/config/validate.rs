//! The check step `RawConfig → Config`: every range and cross-field rule, collected in
//! one pass with dotted keys.

use std::collections::BTreeMap;
use std::time::Duration;

use super::raw::RawConfig;
use super::*;
use crate::alert::SeverityBands;
use crate::cluster::PartitionError;
use crate::model::autoencoder::{Loss, Noise, Penalty};

/// Collects problems while the check runs.
#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(ConfigProblem {
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Records `message` under `key` unless `ok`.
    fn check(&mut self, ok: bool, key: &str, message: impl FnOnce() -> String) {
        if !ok {
            self.add(key, message());
        }
    }

    fn quantile(&mut self, key: &str, q: f64) -> Quantile {
        Quantile::try_from(q).unwrap_or_else(|m| {
            self.add(key, m);
            Quantile(1.0)
        })
    }
}

/// Largest `window.reorder_rows`: every reading of a sensor waits for this many newer
/// ones, so a larger value is a latency no operator wants (and memory per sensor).
const MAX_REORDER_ROWS: usize = 1024;

/// Largest `limits.sensor_idle_secs`, so the cutoff stays an exact f64.
const MAX_IDLE_SECS: u64 = 366 * 86_400;

/// Largest `limits.max_memory_mb`; also keeps the shift to bytes from overflowing.
const MAX_MEMORY_MB: usize = 1 << 20;

pub(super) fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let mut p = Problems::default();
    let cluster = cluster(&raw, &mut p);
    let mut mqtt = mqtt(&raw, &mut p);
    mqtt.client_id = cluster.client_id(&mqtt.client_id);
    sources(&raw, &mut p);
    alerts(&raw, &mut p);
    let metrics_listen = metrics(&raw, &mut p);
    limits(&raw, &mut p);
    let detector = detector(&raw, &mut p);
    let (stale_after, alert_expiry) = timers(&raw, &mut p);
    let homeassistant = homeassistant(&raw, &mut p);
    memory_budget(&raw, &detector, &mut p);
    if !p.0.is_empty() {
        return Err(ConfigError::Invalid(p.0));
    }
    let mut alerts = raw.alerts;
    alerts.status_topic = cluster.status_topic(&alerts.status_topic);
    Ok(Config {
        mqtt,
        sources: raw.sources,
        alerts,
        state: raw.state,
        metrics_listen,
        limits: raw.limits,
        detector,
        stale_after,
        alert_expiry,
        homeassistant,
        cluster,
    })
}

/// `[cluster]`: the partition owns its checks; config maps them onto the keys.
fn cluster(raw: &RawConfig, p: &mut Problems) -> Partition {
    let c = &raw.cluster;
    Partition::new(c.instances, c.index).unwrap_or_else(|e| {
        let key = match e {
            PartitionError::NoInstances => "cluster.instances",
            PartitionError::IndexOutOfRange { .. } => "cluster.index",
        };
        p.add(key, e.to_string());
        Partition::default()
    })
}

fn mqtt(raw: &RawConfig, p: &mut Problems) -> MqttConfig {
    let m = &raw.mqtt;
    p.check(!m.host.trim().is_empty(), "mqtt.host", || {
        "must not be empty".into()
    });
    p.check(m.port != 0, "mqtt.port", || "must be in 1..=65535, got 0".into());
    p.check(
        !m.client_id.is_empty() && m.client_id.len() <= 64,
        "mqtt.client_id",
        || format!("must be 1 to 64 characters, got {:?}", m.client_id),
    );
    p.check(m.keep_alive_secs >= 5, "mqtt.keep_alive_secs", || {
        format!("must be at least 5, got {}", m.keep_alive_secs)
    });
    p.check(matches!(m.protocol, 3 | 5), "mqtt.protocol", || {
        format!("must be 3 or 5, got {}", m.protocol)
    });
    p.check(m.qos <= 1, "mqtt.qos", || {
        format!("must be 0 or 1, got {}", m.qos)
    });
    p.check(m.reconnect_min_ms >= 10, "mqtt.reconnect_min_ms", || {
        format!("must be at least 10, got {}", m.reconnect_min_ms)
    });
    p.check(
        m.reconnect_max_ms >= m.reconnect_min_ms,
        "mqtt.reconnect_max_ms",
        || {
            format!(
                "must be at least reconnect_min_ms ({}), got {}",
                m.reconnect_min_ms, m.reconnect_max_ms
            )
        },
    );
    if let Some(tls) = &m.tls {
        p.check(!tls.ca_file.is_empty(), "mqtt.tls.ca_file", || {
            "must name a PEM file".into()
        });
        p.check(
            tls.cert_file.is_some() == tls.key_file.is_some(),
            "mqtt.tls.key_file",
            || "cert_file and key_file must be given together".into(),
        );
    }
    MqttConfig {
        host: m.host.clone(),
        port: m.port,
        client_id: m.client_id.clone(),
        keep_alive: Duration::from_secs(m.keep_alive_secs),
        persistent_session: m.persistent_session,
        protocol: m.protocol,
        qos: m.qos,
        username: m.username.clone(),
        password_file: m.password_file.clone(),
        tls: m.tls.clone(),
        reconnect_min: Duration::from_millis(m.reconnect_min_ms),
        reconnect_max: Duration::from_millis(m.reconnect_max_ms),
    }
}

fn sources(raw: &RawConfig, p: &mut Problems) {
    p.check(!raw.sources.is_empty(), "sources", || {
        "must list at least one source".into()
    });
    for (i, s) in raw.sources.iter().enumerate() {
        let key = |k: &str| format!("sources[{i}].{k}");
        let levels: Vec<&str> = s.topic.split('/').collect();
        p.check(
            !s.topic.is_empty() && !s.topic.contains('\0'),
            &key("topic"),
            || format!("must be a topic filter, got {:?}", s.topic),
        );
        p.check(
            matches!(s.format.as_str(), "json" | "number" | "senml"),
            &key("format"),
            || format!("must be json, number or senml, got {:?}", s.format),
        );
        if s.sensor_field.is_none() {
            match s.sensor_level {
                Some(l) if l >= levels.len() => {
                    p.add(&key("sensor_level"), format!("must be below the topic's {} levels, got {l}", levels.len()))
                }
                None if !levels.contains(&"+") => p.add(
                    &key("topic"),
                    format!("has no `+` level to take the sensor id from and no sensor_level/sensor_field, got {:?}", s.topic),
                ),
                _ => {}
            }
        }
        if let Some(ch) = &s.channels {
            p.check(!ch.is_empty(), &key("channels"), || {
                "must not be empty when given".into()
            });
        }
    }
}

/// A topic template: names the sensor's level and has no wildcards.
fn template(p: &mut Problems, key: &str, t: &str) {
    p.check(t.contains("{sensor}"), key, || {
        format!("must contain {{sensor}}, got {t:?}")
    });
    p.check(!t.contains('+') && !t.contains('#'), key, || {
        format!("must not contain wildcards, got {t:?}")
    });
}

fn alerts(raw: &RawConfig, p: &mut Problems) {
    let a = &raw.alerts;
    for (key, t) in [("alerts.topic", &a.topic), ("alerts.state_topic", &a.state_topic)] {
        template(p, key, t);
    }
    p.check(!a.status_topic.is_empty(), "alerts.status_topic", || {
        "must not be empty".into()
    });
    p.check(a.queue >= 1, "alerts.queue", || {
        format!("must be at least 1, got {}", a.queue)
    });
    p.check(!raw.state.dir.is_empty(), "state.dir", || {
        "must not be empty".into()
    });
}

fn homeassistant(raw: &RawConfig, p: &mut Problems) -> Option<HomeAssistantConfig> {
    let h = &raw.homeassistant;
    let prefix = &h.prefix;
    p.check(
        !prefix.is_empty()
            && !prefix.contains(['+', '#', '\0'])
            && !prefix.starts_with('/')
            && !prefix.ends_with('/'),
        "homeassistant.prefix",
        || format!("must be a topic without wildcards or a leading or trailing `/`, got {prefix:?}"),
    );
    template(p, "homeassistant.score_topic", &h.score_topic);
    let every = h.score_every_secs;
    p.check(
        every.is_finite() && every > 0.0,
        "homeassistant.score_every_secs",
        || format!("must be a positive number of seconds, got {every}"),
    );
    h.enabled.then(|| HomeAssistantConfig {
        prefix: prefix.clone(),
        score_topic: h.score_topic.clone(),
        score_every: Duration::try_from_secs_f64(every).unwrap_or(Duration::from_secs(10)),
    })
}

fn metrics(raw: &RawConfig, p: &mut Problems) -> Option<std::net::SocketAddr> {
    if raw.metrics.listen.is_empty() {
        return None;
    }
    raw.metrics
        .listen
        .parse()
        .map_err(|_| {
            p.add(
                "metrics.listen",
                format!("must be host:port, got {:?}", raw.metrics.listen),
            )
        })
        .ok()
}

fn limits(raw: &RawConfig, p: &mut Problems) {
    let l = &raw.limits;
    p.check(l.max_payload_bytes >= 16, "limits.max_payload_bytes", || {
        format!("must be at least 16, got {}", l.max_payload_bytes)
    });
    p.check(l.max_sensors >= 1, "limits.max_sensors", || {
        format!("must be at least 1, got {}", l.max_sensors)
    });
    p.check(l.channel_capacity >= 1, "limits.channel_capacity", || {
        format!("must be at least 1, got {}", l.channel_capacity)
    });
    p.check(l.detector_workers <= 64, "limits.detector_workers", || {
        format!(
            "must be at most 64 (0 = one per core), got {}",
            l.detector_workers
        )
    });
    p.check(l.max_channels >= 1, "limits.max_channels", || {
        format!("must be at least 1, got {}", l.max_channels)
    });
    p.check(l.max_memory_mb <= MAX_MEMORY_MB, "limits.max_memory_mb", || {
        format!("must be at most {MAX_MEMORY_MB} (1 TiB), got {}", l.max_memory_mb)
    });
    p.check(
        l.sensor_idle_secs <= MAX_IDLE_SECS,
        "limits.sensor_idle_secs",
        || {
            format!(
                "must be at most {MAX_IDLE_SECS} (a year), got {}",
                l.sensor_idle_secs
            )
        },
    );
}

/// The budget must hold at least one sensor of one channel, or no sensor could ever
/// be tracked.
fn memory_budget(raw: &RawConfig, detector: &DetectorConfig, p: &mut Problems) {
    let mb = raw.limits.max_memory_mb;
    let one = crate::detector::memory::pipeline_bytes(detector, 1);
    p.check(mb == 0 || mb << 20 >= one, "limits.max_memory_mb", || {
        format!(
            "must be 0 (no budget) or hold one sensor ({} MB at these settings), got {mb}",
            one.div_ceil(1 << 20)
        )
    });
}

fn detector(raw: &RawConfig, p: &mut Problems) -> DetectorConfig {
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
    p.check(t.parallel >= 1, "training.parallel", || {
        format!("must be at least 1, got {}", t.parallel)
    });
    let training = TrainingConfig {
        parallel: t.parallel.max(1),
        min_windows: t.min_windows,
        retrain_every: (t.retrain_every > 0).then_some(t.retrain_every),
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
    let normalise = if loss == Loss::Bce {
        NormaliseMode::Minmax
    } else {
        NormaliseMode::Zscore
    };
    ModelConfig {
        template,
        kind,
        pca_components,
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
    let severity = SeverityBands::try_from(a.severity_bands.as_slice()).unwrap_or_else(|m| {
        p.add("alert.severity_bands", m);
        SeverityBands::default()
    });
    AlertParams {
        consecutive: a.consecutive.max(1),
        clear_after: a.clear_after.max(1),
        cooldown: a.cooldown,
        severity,
    }
}

/// `[alert] stale_after_secs` (`None` = off) and `[alerts] expiry_secs` (`None` = never).
fn timers(raw: &RawConfig, p: &mut Problems) -> (Option<Duration>, Option<Duration>) {
    let stale = raw.alert.stale_after_secs;
    p.check(
        stale.is_finite() && stale >= 0.0,
        "alert.stale_after_secs",
        || format!("must be 0 (off) or a positive number of seconds, got {stale}"),
    );
    let expiry = raw.alerts.expiry_secs;
    // The MQTT 5 message expiry interval is a four-byte integer.
    p.check(expiry <= u64::from(u32::MAX), "alerts.expiry_secs", || {
        format!("must be at most {} (0 = never), got {expiry}", u32::MAX)
    });
    (
        (stale.is_finite() && stale > 0.0).then(|| Duration::from_secs_f64(stale)),
        (expiry > 0).then(|| Duration::from_secs(expiry.min(u64::from(u32::MAX)))),
    )
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
