//! A sensor's channel set: the one rule for how long it may change, and the warm-up
//! restart when it does.
//!
//! A model is trained on windows of one channel set and can only score that set. Until
//! a sensor's first model is installed nothing depends on its set but the warm-up
//! data, so a different set (ingest widens a sensor's set when a new channel appears,
//! [`crate::ingest::sensors`]) restarts the warm-up with it; from the first model on
//! the set is fixed and a reading of another set is refused. Ingest learns that the
//! set is fixed from the daemon, which asks [`Pipeline::channel_set_open`] here.
//! `replay` and `eval` read one CSV per sensor, whose columns never change, and never
//! get here.

use super::{DetectError, Detector, Pipeline};
use crate::reading::SensorId;

impl Pipeline {
    /// Whether the sensor's channel set may still change: until its first model is
    /// installed. The one place this is decided.
    pub fn channel_set_open(&self) -> bool {
        self.model.is_none()
    }
}

impl Detector {
    /// Checks a reading's channel set against its sensor's. The same set, or a sensor
    /// not tracked (its pipeline is made with the reading's set): `Ok(None)`. Another
    /// set while [`Pipeline::channel_set_open`]: the sensor's warm-up restarts with
    /// that set (its readings so far are dropped; so is a model trained on the old set
    /// that comes back later, see [`Self::install`]), `Ok(Some(channels before))`.
    ///
    /// # Errors
    ///
    /// [`DetectError::ChannelSetChanged`] once the set is fixed, and
    /// [`DetectError::MemoryBudget`] when the new set's pipeline does not fit; the
    /// sensor keeps its state.
    pub fn regroup(&mut self, sensor: &SensorId, channels: &[String]) -> Result<Option<usize>, DetectError> {
        let Some(p) = self.pipelines.get(sensor) else {
            return Ok(None);
        };
        if p.channel_names == channels {
            return Ok(None);
        }
        let before = p.channel_names.len();
        if !p.channel_set_open() {
            return Err(DetectError::ChannelSetChanged {
                sensor: sensor.to_string(),
                channels: before,
                got: channels.len(),
            });
        }
        let fresh = Pipeline::new(sensor.clone(), channels.to_vec(), &self.config);
        let used = self.used - p.bytes + fresh.bytes;
        if self.budget.is_some_and(|b| used > b) {
            return Err(self.over_budget(sensor));
        }
        self.used = used;
        self.pipelines.insert(sensor.clone(), fresh);
        Ok(Some(before))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;

    fn build_detector() -> Detector {
        let text =
            "[window]\nsize = 4\nstride = 1\n[training]\nmin_windows = 8\nretrain_every = 8\nbuffer = 64\n";
        let config = crate::config::Config::from_toml_str(text).expect("config");
        Detector::new(config.detector, 10)
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    /// Feeds readings of `set` at times `from..to` and trains the first job inline, as
    /// replay does; returns whether a model was installed.
    fn feed(d: &mut Detector, id: &SensorId, set: &[String], times: std::ops::Range<u32>) -> bool {
        let mut trained = false;
        for i in times {
            let values: Vec<f64> = (0..set.len())
                .map(|c| (f64::from(i) * 0.3 + c as f64).sin())
                .collect();
            let step = d
                .process(id, 1.7e9 + f64::from(i), &values, || set.to_vec())
                .expect("taken");
            if let Some(job) = step.train {
                let model: Option<Model> = crate::trainer::train(&job, &d.config().model).ok();
                trained |= model.is_some();
                d.install(id, model);
            }
        }
        trained
    }

    #[test]
    fn a_wider_set_restarts_the_warm_up_until_the_first_model_then_is_refused() {
        let mut d = build_detector();
        let id = SensorId::new("s");
        let (ab, abc) = (names(&["a", "b"]), names(&["a", "b", "c"]));
        assert_eq!(
            d.regroup(&id, &ab),
            Ok(None),
            "an untracked sensor starts with its set"
        );
        assert!(!feed(&mut d, &id, &ab, 0..6), "still warming up");
        assert!(d.pipeline(&id).expect("tracked").channel_set_open());
        assert_eq!(d.regroup(&id, &ab), Ok(None), "the same set");
        assert_eq!(d.regroup(&id, &abc), Ok(Some(2)), "widened during warm-up");
        let p = d.pipeline(&id).expect("tracked");
        assert_eq!(p.channel_names(), abc.as_slice());
        assert!(!p.window_ready(), "the warm-up starts again");
        assert!(feed(&mut d, &id, &abc, 6..40), "trained on the wider set");
        assert!(!d.pipeline(&id).expect("tracked").channel_set_open());
        let wider = names(&["a", "b", "c", "d"]);
        assert_eq!(
            d.regroup(&id, &wider),
            Err(DetectError::ChannelSetChanged {
                sensor: "s".to_owned(),
                channels: 3,
                got: 4
            })
        );
        assert_eq!(d.pipeline(&id).expect("kept").channel_names(), abc.as_slice());
    }

    #[test]
    fn a_model_of_the_set_before_a_restart_is_not_installed() {
        let mut d = build_detector();
        let id = SensorId::new("s");
        let (a, ab) = (names(&["a"]), names(&["a", "b"]));
        // Train a model for `a` without installing it: the job is still out.
        let mut job = None;
        for i in 0..40 {
            let step = d
                .process(&id, 1.7e9 + f64::from(i), &[f64::from(i).sin()], || a.clone())
                .expect("taken");
            job = job.or(step.train);
        }
        let job = job.expect("a job for `a`");
        let model = crate::trainer::train(&job, &d.config().model).expect("trains");
        assert_eq!(d.regroup(&id, &ab), Ok(Some(1)));
        d.install(&id, Some(model));
        let p = d.pipeline(&id).expect("tracked");
        assert_eq!(
            p.model_version(),
            0,
            "a one-channel model on a two-channel sensor"
        );
        assert!(p.channel_set_open());
    }
}
