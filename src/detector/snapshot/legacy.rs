//! Decoding [`DetectorSnapshot`]: the current format; format 6, without the alert's
//! episode level and hold (a sensor restored during a hold raises again if its error is
//! over the threshold); format 5, without the channels'
//! runs of unchanged readings (a restored channel is judged stuck again once its value
//! has changed); format 4, without the likelihood
//! component's statistics (its sensors' component is silent until 30 errors are
//! learned); format 3, whose models had no
//! linear skip path (`Model::residual` is false for them, so a sensor configured for
//! the skip path warms up a new model); and format 2 (before issue 12's compact
//! threshold), whose threshold and reference histories were every score,
//! oldest first. A format 2 sensor keeps its model and alert state; its threshold
//! scores are pushed into a window of the configured shape when it is restored, and
//! its references become rolling maxima over the same scores, so it scores exactly as
//! if those scores had been pushed live. Any other format is refused with its number
//! (the store sets the file aside and every sensor warms up).

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::{DetectorSnapshot, SNAPSHOT_FORMAT, SensorSnapshot};
use crate::alert::{AlertState, Subside};
use crate::detector::stuck::Stuck;
use crate::likelihood::DecayingStats;
use crate::model::Model;
use crate::model::autoencoder::Autoencoder;
use crate::model::normalise::Normaliser;
use crate::model::pca::PcaModel;
use crate::threshold::{RollingMax, RollingQuantile};

/// The format before [`SNAPSHOT_FORMAT`] 3.
const FORMAT_2: u32 = 2;
/// The format before 4 (models without the skip-path flag).
const FORMAT_3: u32 = 3;
/// The format before 5 (no likelihood statistics).
const FORMAT_4: u32 = 4;
/// The format before 6 (no runs of unchanged readings).
const FORMAT_5: u32 = 5;
/// The format before [`SNAPSHOT_FORMAT`] 7 (no alert episode level or hold).
const FORMAT_6: u32 = 6;

/// A model in formats 2 and 3.
#[derive(Deserialize, Serialize)]
pub(super) struct ModelV3 {
    pub(super) version: u64,
    pub(super) channels: usize,
    pub(super) normaliser: Normaliser,
    pub(super) ae: Autoencoder,
    pub(super) pca: PcaModel,
}

impl From<ModelV3> for Model {
    fn from(m: ModelV3) -> Self {
        Self {
            version: m.version,
            channels: m.channels,
            normaliser: m.normaliser,
            ae: m.ae,
            pca: m.pca,
            residual: false,
        }
    }
}

/// One sensor in formats 3 and 4, which differ only in their model: [`ModelV3`] (no
/// skip-path flag) in format 3, [`Model`] in format 4. Neither has the likelihood's
/// statistics.
#[derive(Deserialize, Serialize)]
pub(super) struct SensorSnapshotOld<M> {
    pub(super) sensor: String,
    pub(super) channels: Vec<String>,
    pub(super) model: Option<M>,
    pub(super) threshold: RollingQuantile,
    pub(super) scorer: Option<RollingMax>,
    pub(super) point_scorer: Option<RollingMax>,
    pub(super) ema: Vec<f64>,
    pub(super) alert: AlertState,
}

/// One sensor in format 4.
pub(super) type SensorSnapshotV4 = SensorSnapshotOld<Model>;
/// One sensor in format 3.
pub(super) type SensorSnapshotV3 = SensorSnapshotOld<ModelV3>;

impl<M: Into<Model>> From<SensorSnapshotOld<M>> for SensorSnapshot {
    fn from(s: SensorSnapshotOld<M>) -> Self {
        Self {
            sensor: s.sensor,
            channels: s.channels,
            model: s.model.map(Into::into),
            threshold: s.threshold,
            legacy_threshold: None,
            scorer: s.scorer,
            point_scorer: s.point_scorer,
            likelihood: None,
            ema: s.ema,
            alert: s.alert,
            stuck: Stuck::default(),
            subside: Subside::default(),
        }
    }
}

/// One sensor in format 5: [`SensorSnapshot`] without its `stuck` runs.
#[derive(Deserialize, Serialize)]
pub(super) struct SensorSnapshotV5 {
    pub(super) sensor: String,
    pub(super) channels: Vec<String>,
    pub(super) model: Option<Model>,
    pub(super) threshold: RollingQuantile,
    pub(super) scorer: Option<RollingMax>,
    pub(super) point_scorer: Option<RollingMax>,
    pub(super) likelihood: Option<DecayingStats>,
    pub(super) ema: Vec<f64>,
    pub(super) alert: AlertState,
}

impl From<SensorSnapshotV5> for SensorSnapshot {
    fn from(s: SensorSnapshotV5) -> Self {
        Self {
            likelihood: s.likelihood,
            ..SensorSnapshotOld {
                sensor: s.sensor,
                channels: s.channels,
                model: s.model,
                threshold: s.threshold,
                scorer: s.scorer,
                point_scorer: s.point_scorer,
                ema: s.ema,
                alert: s.alert,
            }
            .into()
        }
    }
}

/// One sensor in format 6: [`SensorSnapshot`] without the alert's `subside`.
#[derive(Deserialize, Serialize)]
pub(super) struct SensorSnapshotV6 {
    pub(super) sensor: String,
    pub(super) channels: Vec<String>,
    pub(super) model: Option<Model>,
    pub(super) threshold: RollingQuantile,
    pub(super) scorer: Option<RollingMax>,
    pub(super) point_scorer: Option<RollingMax>,
    pub(super) likelihood: Option<DecayingStats>,
    pub(super) ema: Vec<f64>,
    pub(super) alert: AlertState,
    pub(super) stuck: Stuck,
}

impl From<SensorSnapshotV6> for SensorSnapshot {
    fn from(s: SensorSnapshotV6) -> Self {
        Self {
            sensor: s.sensor,
            channels: s.channels,
            model: s.model,
            threshold: s.threshold,
            legacy_threshold: None,
            scorer: s.scorer,
            point_scorer: s.point_scorer,
            likelihood: s.likelihood,
            ema: s.ema,
            alert: s.alert,
            stuck: s.stuck,
            subside: Subside::default(),
        }
    }
}

/// One sensor in format 2.
#[derive(Deserialize, Serialize)]
pub(super) struct SensorSnapshotV2 {
    pub(super) sensor: String,
    pub(super) channels: Vec<String>,
    pub(super) model: Option<ModelV3>,
    pub(super) threshold: Vec<f64>,
    pub(super) scorer: Vec<f64>,
    pub(super) point_scorer: Vec<f64>,
    pub(super) ema: Vec<f64>,
    pub(super) alert: AlertState,
}

fn rolling_max(history: &[f64]) -> Option<RollingMax> {
    if history.is_empty() {
        return None;
    }
    let mut m = RollingMax::new(history.len());
    history.iter().for_each(|&v| m.push(v));
    Some(m)
}

impl From<SensorSnapshotV2> for SensorSnapshot {
    fn from(s: SensorSnapshotV2) -> Self {
        Self {
            sensor: s.sensor,
            channels: s.channels,
            model: s.model.map(Model::from),
            // A placeholder: `legacy_threshold` is what restore uses.
            threshold: crate::threshold::RollingQuantile::new(1, 1.0),
            legacy_threshold: Some(s.threshold),
            scorer: rolling_max(&s.scorer),
            point_scorer: rolling_max(&s.point_scorer),
            likelihood: None,
            ema: s.ema,
            alert: s.alert,
            stuck: Stuck::default(),
            subside: Subside::default(),
        }
    }
}

impl<'de> Deserialize<'de> for DetectorSnapshot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("DetectorSnapshot", &["format", "sensors"], SnapshotVisitor)
    }
}

struct SnapshotVisitor;

impl<'de> Visitor<'de> for SnapshotVisitor {
    type Value = DetectorSnapshot;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a detector snapshot: format number, then sensors")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let format: u32 = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let sensors = match format {
            SNAPSHOT_FORMAT => seq.next_element::<Vec<SensorSnapshot>>()?,
            FORMAT_6 => (seq.next_element::<Vec<SensorSnapshotV6>>()?)
                .map(|v| v.into_iter().map(SensorSnapshot::from).collect()),
            FORMAT_5 => (seq.next_element::<Vec<SensorSnapshotV5>>()?)
                .map(|v| v.into_iter().map(SensorSnapshot::from).collect()),
            FORMAT_4 => (seq.next_element::<Vec<SensorSnapshotV4>>()?)
                .map(|v| v.into_iter().map(SensorSnapshot::from).collect()),
            FORMAT_3 => (seq.next_element::<Vec<SensorSnapshotV3>>()?)
                .map(|v| v.into_iter().map(SensorSnapshot::from).collect()),
            FORMAT_2 => (seq.next_element::<Vec<SensorSnapshotV2>>()?)
                .map(|v| v.into_iter().map(SensorSnapshot::from).collect()),
            other => {
                return Err(de::Error::custom(format!(
                    "detector snapshot format {other} is not supported, this build reads {SNAPSHOT_FORMAT}, {FORMAT_6}, {FORMAT_5}, {FORMAT_4}, {FORMAT_3} and {FORMAT_2}"
                )));
            }
        }
        .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok(DetectorSnapshot {
            format: SNAPSHOT_FORMAT,
            sensors,
        })
    }
}

#[cfg(test)]
mod tests {
    use bincode::Options;

    use super::*;
    use crate::detector::Detector;
    use crate::detector::tests::{build_config, feed};
    use crate::reading::SensorId;

    fn codec() -> impl Options {
        bincode::DefaultOptions::new()
    }

    /// The tests' detector config without the skip path, as every model before format 4.
    fn config_without_skip() -> crate::config::DetectorConfig {
        let mut config = build_config("");
        config.model.skip = crate::config::Skip::None;
        config
    }

    fn v3(m: &Model) -> ModelV3 {
        ModelV3 {
            version: m.version,
            channels: m.channels,
            normaliser: m.normaliser.clone(),
            ae: m.ae.clone(),
            pca: m.pca.clone(),
        }
    }

    #[test]
    fn a_format_3_model_is_kept_without_the_skip_path_and_replaced_with_it() {
        let config = config_without_skip();
        let mut d = Detector::new(config.clone(), 10);
        let id = SensorId::new("s1");
        feed(&mut d, &id, 0, 150);
        let now = d.snapshot().sensors.remove(0);
        let old = SensorSnapshotV3 {
            sensor: now.sensor.clone(),
            channels: now.channels.clone(),
            model: now.model.as_ref().map(v3),
            threshold: now.threshold.clone(),
            scorer: now.scorer.clone(),
            point_scorer: now.point_scorer.clone(),
            ema: Vec::new(),
            alert: now.alert.clone(),
        };
        let bytes = codec().serialize(&(FORMAT_3, vec![old])).unwrap();
        let snap: DetectorSnapshot = codec().deserialize(&bytes).unwrap();
        assert_eq!(snap.format, SNAPSHOT_FORMAT);
        assert!(!snap.sensors[0].model.as_ref().unwrap().residual);
        let mut same = Detector::new(config, 10);
        assert_eq!(same.restore(snap.clone()), 1);
        assert_eq!(same.pipeline(&id).unwrap().model_version(), 1, "model kept");
        // Two channels under `skip = "auto"`: this model has no skip path, so the
        // sensor keeps its threshold and warms up a new model.
        let mut skipping = Detector::new(build_config(""), 10);
        assert_eq!(skipping.restore(snap), 1);
        let p = skipping.pipeline(&id).unwrap();
        assert_eq!(p.model_version(), 0, "model dropped");
        assert_eq!(p.threshold_len(), now.threshold.len());
    }

    #[test]
    fn a_format_2_snapshot_keeps_models_and_histories() {
        let config = config_without_skip();
        let mut d = Detector::new(config.clone(), 10);
        let id = SensorId::new("s1");
        feed(&mut d, &id, 0, 150);
        let now = d.snapshot().sensors.remove(0);
        let scores: Vec<f64> = (0..150).map(|i| f64::from(i % 17) * 0.1).collect();
        let old = SensorSnapshotV2 {
            sensor: now.sensor.clone(),
            channels: now.channels.clone(),
            model: now.model.as_ref().map(v3),
            threshold: scores.clone(),
            scorer: scores[100..].to_vec(),
            point_scorer: Vec::new(),
            ema: Vec::new(),
            alert: now.alert.clone(),
        };
        let bytes = codec().serialize(&(FORMAT_2, vec![old])).unwrap();
        let snap: DetectorSnapshot = codec().deserialize(&bytes).unwrap();
        assert_eq!(snap.format, SNAPSHOT_FORMAT);
        let s = &snap.sensors[0];
        assert_eq!(s.legacy_threshold.as_deref(), Some(&scores[..]));
        assert_eq!(s.scorer.as_ref().and_then(RollingMax::max), Some(1.6));
        let mut back = Detector::new(config, 10);
        assert_eq!(back.restore(snap), 1);
        let p = back.pipeline(&id).unwrap();
        assert_eq!(p.model_version(), now.model.as_ref().unwrap().version);
        assert_eq!(p.threshold_len(), 150, "every format 2 score pushed");
        // Written again in the current format, it round-trips.
        let again = codec().serialize(&back.snapshot()).unwrap();
        let reread: DetectorSnapshot = codec().deserialize(&again).unwrap();
        assert_eq!(reread.sensors[0].threshold.len(), 150);
        assert!(reread.sensors[0].legacy_threshold.is_none());
    }

    /// A sensor fed 150 readings under the test config, and its snapshot now.
    fn saved() -> SensorSnapshot {
        let mut d = Detector::new(build_config(""), 10);
        feed(&mut d, &SensorId::new("s1"), 0, 150);
        d.snapshot().sensors.remove(0)
    }

    /// `old` written as `format` and read back; a fresh detector restores it with the
    /// model and threshold of `now`. Returns the sensor as read.
    fn read_back<T: Serialize>(format: u32, old: T, now: &SensorSnapshot) -> SensorSnapshot {
        let bytes = codec().serialize(&(format, vec![old])).unwrap();
        let mut snap: DetectorSnapshot = codec().deserialize(&bytes).unwrap();
        assert_eq!(snap.format, SNAPSHOT_FORMAT);
        let mut back = Detector::new(build_config(""), 10);
        assert_eq!(back.restore(snap.clone()), 1);
        let p = back.pipeline(&SensorId::new("s1")).unwrap();
        let version = now.model.as_ref().unwrap().version;
        assert_eq!(p.model_version(), version, "model kept");
        assert_eq!(p.threshold_len(), now.threshold.len());
        snap.sensors.remove(0)
    }

    #[test]
    fn a_format_4_snapshot_loads_without_likelihood_statistics() {
        let now = saved();
        assert!(now.likelihood.is_some(), "the test config scores the likelihood");
        let old = SensorSnapshotV4 {
            sensor: now.sensor.clone(),
            channels: now.channels.clone(),
            model: now.model.clone(),
            threshold: now.threshold.clone(),
            scorer: now.scorer.clone(),
            point_scorer: now.point_scorer.clone(),
            ema: now.ema.clone(),
            alert: now.alert.clone(),
        };
        assert!(read_back(FORMAT_4, old, &now).likelihood.is_none());
    }

    #[test]
    fn a_format_5_snapshot_loads_without_runs_and_keeps_the_likelihood() {
        let now = saved();
        assert_ne!(now.stuck, Stuck::default(), "the runs are saved");
        let old = SensorSnapshotV5 {
            likelihood: now.likelihood.clone(),
            sensor: now.sensor.clone(),
            channels: now.channels.clone(),
            model: now.model.clone(),
            threshold: now.threshold.clone(),
            scorer: now.scorer.clone(),
            point_scorer: now.point_scorer.clone(),
            ema: now.ema.clone(),
            alert: now.alert.clone(),
        };
        let read = read_back(FORMAT_5, old, &now);
        assert_eq!(read.likelihood, now.likelihood);
        assert_eq!(read.stuck, Stuck::default());
    }

    #[test]
    fn a_format_6_snapshot_loads_without_an_alert_hold_and_keeps_the_runs() {
        let now = saved();
        let old = SensorSnapshotV6 {
            sensor: now.sensor.clone(),
            channels: now.channels.clone(),
            model: now.model.clone(),
            threshold: now.threshold.clone(),
            scorer: now.scorer.clone(),
            point_scorer: now.point_scorer.clone(),
            likelihood: now.likelihood.clone(),
            ema: now.ema.clone(),
            alert: now.alert.clone(),
            stuck: now.stuck.clone(),
        };
        let read = read_back(FORMAT_6, old, &now);
        assert_eq!(read.stuck, now.stuck);
        assert_eq!(read.likelihood, now.likelihood);
        assert_eq!(read.subside, Subside::default());
    }

    #[test]
    fn an_unknown_format_is_refused_by_number() {
        let bytes = codec().serialize(&(8_u32, Vec::<u8>::new())).unwrap();
        let err = codec().deserialize::<DetectorSnapshot>(&bytes).unwrap_err();
        assert!(err.to_string().contains("format 8 is not supported"), "{err}");
    }
}
