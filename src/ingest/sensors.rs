//! Which sensors ingest lets through, and with which channels: sans-IO, one
//! [`Admission`] owned by the subscriber.
//!
//! - **Other instances' sensors come before everything.** With `[cluster] instances >
//!   1`, a sensor another instance owns ([`crate::cluster::Partition::owns`]) is
//!   refused first (`other_instance`): it takes no place under the cap and is never
//!   queued; ingest asks [`Admission::is_foreign`] before parsing when the topic names
//!   the sensor. Its id is hashed again on each of its readings (one multiply per byte,
//!   then the jump hash's loop, about ln(instances) rounds): cheaper than keeping a
//!   map of foreign ids that anyone who can publish could grow. Owned sensors are
//!   found in the map first and never hashed again.
//! - **The sensor cap comes before the queue.** The detector refuses sensors past
//!   `limits.max_sensors`, but a flood of new ids used to fill the readings queue
//!   first and push the known sensors' readings out as `queue_full`. Ingest now admits
//!   at most `max_sensors` ids (seeded with the ones restored from the snapshot) and
//!   drops the rest before they are queued, counted as `sensor_cap`.
//! - **So does the memory budget.** With `limits.max_memory_mb`, each admitted sensor
//!   is charged the detector's estimate for its channel count
//!   ([`crate::detector::memory::pipeline_bytes`]), and a new sensor that does not fit
//!   is refused (`memory_budget`) before it can queue readings; otherwise a flood of new
//!   ids under the sensor cap would fill the queue only to be refused by the detector,
//!   starving the known sensors. Ingest charges a parked sensor at its full size (it
//!   needs that when it returns), so it refuses no later than the detector does.
//! - **Sensor ids are bounded.** An id longer than [`MAX_SENSOR_ID_BYTES`] is refused
//!   (`sensor_id_too_long`): ids are kept in memory, snapshots, topics and labels.
//! - **A sensor's channel set is interned once.** It is fixed before the sensor's first
//!   reading is queued ([`first_channel_set`]): the source's configured `channels`,
//!   else every channel the sensor's first payload carries (for a SenML pack, the
//!   union of its records), sorted by name; a sensor restored from the snapshot keeps
//!   the set its model was trained on. Every later reading shares that `Arc` instead
//!   of carrying its own names. A record may carry only some of the set (a partial
//!   update, which [`super::assemble`] completes), but one with a name outside it
//!   (`{temp, vib}` then `{hum, temp}`) is refused and counted as `channel_set_changed`:
//!   scored as if nothing changed, its values would be read under the wrong names by a
//!   model trained on the old ones.

use std::collections::HashMap;

use std::collections::BTreeSet;

use super::assemble::Held;
use super::payload::{Field, Parsed};
use crate::cluster::Partition;
use crate::reading::{ChannelSet, SensorId};

/// Longest sensor id admitted, in bytes: generous for `site/line/pump-17.vibration`
/// style ids, small enough that a flood of ids cannot be a flood of memory.
pub const MAX_SENSOR_ID_BYTES: usize = 256;

/// Why a reading was not admitted; the `reason` label of `readings_dropped_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Another `[cluster]` instance owns the sensor.
    OtherInstance,
    /// The id is longer than [`MAX_SENSOR_ID_BYTES`].
    IdTooLong,
    /// A new sensor while `max_sensors` are admitted.
    SensorCap,
    /// A known sensor sent a channel name outside the set it started with.
    ChannelSetChanged,
    /// A new sensor whose estimated memory does not fit `limits.max_memory_mb`.
    MemoryBudget,
}

impl Refused {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::OtherInstance => "other_instance",
            Self::IdTooLong => "sensor_id_too_long",
            Self::SensorCap => "sensor_cap",
            Self::ChannelSetChanged => "channel_set_changed",
            Self::MemoryBudget => "memory_budget",
        }
    }
}

/// Estimated bytes of a sensor with this many channels.
pub type SensorCost = Box<dyn Fn(usize) -> usize + Send>;

/// `limits.max_memory_mb` as ingest applies it.
struct Budget {
    limit: usize,
    used: usize,
    cost: SensorCost,
}

/// An admitted sensor: its interned id (the map's key, kept here too because `get_mut`
/// does not hand back keys), its channel set and its partial updates ([`Held`]), in one
/// map entry so a record costs one lookup.
#[derive(Debug)]
struct Known {
    id: SensorId,
    set: ChannelSet,
    held: Held,
}

impl Known {
    fn new(id: SensorId, set: ChannelSet) -> Self {
        let held = Held::new(set.len());
        Self { id, set, held }
    }
}

/// The admitted sensors and their channel sets.
pub struct Admission {
    /// Which sensors are this instance's; the others are refused.
    partition: Partition,
    max_sensors: usize,
    sensors: HashMap<SensorId, Known>,
    budget: Option<Budget>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("max_sensors", &self.max_sensors)
            .field("sensors", &self.sensors.len())
            .field("budget", &self.budget.as_ref().map(|b| (b.used, b.limit)))
            .finish()
    }
}

impl Admission {
    /// Admits at most `max_sensors` of the sensors `partition` owns, starting with
    /// `known` (from the snapshot; foreign ones among them are left out).
    pub fn new(
        partition: Partition,
        max_sensors: usize,
        known: impl IntoIterator<Item = (SensorId, ChannelSet)>,
    ) -> Self {
        let mut sensors = HashMap::new();
        for (id, channels) in known {
            if sensors.len() < max_sensors && partition.owns(id.as_str()) {
                sensors.insert(id.clone(), Known::new(id, channels));
            }
        }
        Self {
            partition,
            max_sensors,
            sensors,
            budget: None,
        }
    }

    /// Also refuses new sensors once their estimated bytes (`cost` of their channel
    /// count) would pass `limit`; the sensors admitted so far are charged at once.
    #[must_use]
    pub fn with_budget(mut self, limit: usize, cost: SensorCost) -> Self {
        let used = self.sensors.values().map(|k| cost(k.set.len())).sum();
        self.budget = Some(Budget { limit, used, cost });
        self
    }

    /// Admits a record with these channel names (all of the sensor's set or some of
    /// it, in its order) and runs `then` on the sensor's interned id, channel set and
    /// held updates, or says why it is refused. A new sensor is admitted with the set
    /// `new_set` returns. A known sensor costs one lookup and no allocation.
    ///
    /// # Errors
    ///
    /// [`Refused`] for another instance's sensor, past the cap or for a name outside
    /// the sensor's channel set.
    pub fn admit<'a, R>(
        &mut self,
        sensor: &str,
        mut names: impl Iterator<Item = &'a str>,
        new_set: impl FnOnce() -> ChannelSet,
        then: impl FnOnce(&SensorId, &ChannelSet, &mut Held) -> R,
    ) -> Result<R, Refused> {
        // `then` instead of returning `&mut Held`: a borrow returned from this branch
        // would keep `self.sensors` borrowed on the new-sensor path below.
        if let Some(known) = self.sensors.get_mut(sensor) {
            // One pass: the names are a subsequence of the set when they are in it.
            let mut cursor = known.set.iter();
            return if names.all(|n| cursor.any(|s| s == n)) {
                Ok(then(&known.id, &known.set, &mut known.held))
            } else {
                Err(Refused::ChannelSetChanged)
            };
        }
        if self.is_foreign(sensor) {
            return Err(Refused::OtherInstance);
        }
        if sensor.len() > MAX_SENSOR_ID_BYTES {
            return Err(Refused::IdTooLong);
        }
        if self.sensors.len() >= self.max_sensors {
            return Err(Refused::SensorCap);
        }
        let set = new_set();
        let mut rest = set.iter();
        if !names.all(|n| rest.any(|s| s == n)) {
            return Err(Refused::ChannelSetChanged);
        }
        if let Some(b) = self.budget.as_mut() {
            let bytes = (b.cost)(set.len());
            if b.used + bytes > b.limit {
                return Err(Refused::MemoryBudget);
            }
            b.used += bytes;
        }
        let id = SensorId::new(sensor);
        let known = (self.sensors.entry(id.clone())).or_insert(Known::new(id, set));
        Ok(then(&known.id, &known.set, &mut known.held))
    }

    /// Forgets a sensor the detector dropped: its place under the cap is free, and its
    /// next reading is admitted like a new sensor's.
    pub fn forget(&mut self, sensor: &SensorId) {
        if let (Some(known), Some(b)) = (self.sensors.remove(sensor), self.budget.as_mut()) {
            b.used -= (b.cost)(known.set.len());
        }
    }

    /// Whether another `[cluster]` instance owns `sensor`. An admitted sensor is this
    /// instance's and is found without hashing its id.
    pub fn is_foreign(&self, sensor: &str) -> bool {
        !self.sensors.contains_key(sensor) && !self.partition.owns(sensor)
    }

    /// Sensors admitted so far.
    pub fn len(&self) -> usize {
        self.sensors.len()
    }

    /// Whether no sensor has been admitted.
    pub fn is_empty(&self) -> bool {
        self.sensors.is_empty()
    }
}

/// The channel set a new sensor is admitted with: the `configured` channels' names;
/// else every channel that `records` of `sensor` carry (records without a sensor of
/// their own are `topic_sensor`'s), sorted by name. One record, the common case, needs
/// no sorting: the parser sorted it.
pub fn first_channel_set(
    configured: Option<&[Field]>,
    records: &[Parsed],
    sensor: &str,
    topic_sensor: Option<&str>,
) -> ChannelSet {
    if let Some(list) = configured {
        return list.iter().map(|f| f.name().to_owned()).collect();
    }
    if let [one] = records {
        return one.channels.iter().map(|(name, _)| name.clone()).collect();
    }
    let union: BTreeSet<&str> = (records.iter())
        .filter(|r| r.sensor.as_deref().or(topic_sensor) == Some(sensor))
        .flat_map(|r| r.channels.iter().map(|(name, _)| name.as_str()))
        .collect();
    union.into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(a: &mut Admission, sensor: &str, names: &[&str]) -> Result<(SensorId, ChannelSet), Refused> {
        let set = || names.iter().map(|n| n.to_string()).collect();
        a.admit(sensor, names.iter().copied(), set, ids)
    }

    fn ids(id: &SensorId, set: &ChannelSet, _: &mut Held) -> (SensorId, ChannelSet) {
        (id.clone(), set.clone())
    }

    #[test]
    fn a_known_sensor_shares_its_interned_channel_set() {
        let mut a = Admission::new(Partition::default(), 10, []);
        let (id1, set1) = admit(&mut a, "s", &["temp", "vib"]).expect("first");
        let (id2, set2) = admit(&mut a, "s", &["temp", "vib"]).expect("second");
        assert_eq!(id1, id2);
        assert!(
            std::sync::Arc::ptr_eq(&set1, &set2),
            "channel names allocated again"
        );
    }

    #[test]
    fn a_changed_channel_set_is_refused_until_it_returns() {
        let mut a = Admission::new(Partition::default(), 10, []);
        admit(&mut a, "s", &["temp", "vib"]).expect("first");
        let cases: [(&str, &[&str]); 3] = [
            ("renamed", &["hum", "temp"]),
            ("one more", &["temp", "vib", "x"]),
            ("out of the set's order", &["vib", "temp"]),
        ];
        for (name, names) in cases {
            assert_eq!(
                admit(&mut a, "s", names),
                Err(Refused::ChannelSetChanged),
                "{name}"
            );
        }
        assert!(
            admit(&mut a, "s", &["temp", "vib"]).is_ok(),
            "the original set returns"
        );
    }

    #[test]
    fn a_partial_update_is_admitted_with_the_sensors_whole_set() {
        let mut a = Admission::new(Partition::default(), 10, []);
        let whole = || ChannelSet::from(vec!["temp".to_string(), "vib".to_string()]);
        let (_, set) = a
            .admit("s", ["vib"].into_iter(), whole, ids)
            .expect("first, partial");
        assert_eq!(&*set, ["temp", "vib"]);
        let (_, again) = admit(&mut a, "s", &["temp"]).expect("another partial");
        assert!(std::sync::Arc::ptr_eq(&set, &again));
        assert_eq!(
            a.admit("n", ["x"].into_iter(), whole, ids),
            Err(Refused::ChannelSetChanged),
            "a first record outside its own set"
        );
    }

    #[test]
    fn a_new_sensors_set_is_configured_or_the_union_of_its_first_payload() {
        let rec = |sensor: Option<&str>, names: &[&str]| Parsed {
            sensor: sensor.map(str::to_owned),
            ts: 0.0,
            channels: names.iter().map(|n| (n.to_string(), 1.0)).collect(),
            unselected: None,
        };
        let pack = [
            rec(None, &["current"]),
            rec(Some("other"), &["x"]),
            rec(None, &["current", "voltage"]),
        ];
        assert_eq!(
            &*first_channel_set(None, &pack, "dev", Some("dev")),
            ["current", "voltage"]
        );
        let configured = [Field::key("z"), Field::parse("/fields/a").expect("pointer")];
        assert_eq!(
            &*first_channel_set(Some(&configured), &pack, "dev", Some("dev")),
            ["z", "a"]
        );
        assert_eq!(
            &*first_channel_set(None, &pack[2..], "dev", None),
            ["current", "voltage"]
        );
    }

    #[test]
    fn sensors_past_the_cap_are_refused_but_known_ones_pass() {
        let known = [(SensorId::new("restored"), ChannelSet::from(vec!["a".to_string()]))];
        let mut a = Admission::new(Partition::default(), 2, known);
        assert!(admit(&mut a, "new", &["a"]).is_ok());
        assert_eq!(admit(&mut a, "flood-1", &["a"]), Err(Refused::SensorCap));
        assert!(
            admit(&mut a, "restored", &["a"]).is_ok(),
            "restored sensors keep their place"
        );
        assert!(admit(&mut a, "new", &["a"]).is_ok());
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn a_forgotten_sensor_frees_its_place_and_may_change_channels() {
        let mut a = Admission::new(Partition::default(), 1, []);
        admit(&mut a, "old", &["a"]).expect("first");
        assert_eq!(admit(&mut a, "new", &["a"]), Err(Refused::SensorCap));
        a.forget(&SensorId::new("old"));
        assert!(admit(&mut a, "new", &["a"]).is_ok());
        a.forget(&SensorId::new("new"));
        assert!(admit(&mut a, "new", &["b", "c"]).is_ok(), "a new start");
    }

    #[test]
    fn a_forgotten_sensor_holds_no_values() {
        let mut a = Admission::new(Partition::default(), 1, []);
        let whole = || ChannelSet::from(vec!["a".to_string(), "b".to_string()]);
        let update = |pairs: &[(&str, f64)]| -> Vec<(String, f64)> {
            pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
        };
        let full = update(&[("a", 1.0), ("b", 2.0)]);
        let only_a = update(&[("a", 3.0)]);
        let take = |a: &mut Admission, ts: f64, u: &[(String, f64)]| {
            let names = u.iter().map(|(n, _)| n.as_str());
            a.admit("s", names, whole, |id, set, held| {
                held.update(id, set, ts, u, 60.0)
            })
            .expect("admitted")
            .readings()
            .count()
        };
        assert_eq!(take(&mut a, 1.0e9, &full), 1);
        assert_eq!(take(&mut a, 1.0e9 + 1.0, &only_a), 0, "waits");
        assert_eq!(take(&mut a, 1.0e9 + 2.0, &only_a), 1, "`b` held");
        a.forget(&SensorId::new("s"));
        assert_eq!(take(&mut a, 1.0e9 + 3.0, &only_a), 0);
        assert_eq!(
            take(&mut a, 1.0e9 + 4.0, &only_a),
            0,
            "no `b` held after forgetting"
        );
    }

    #[test]
    fn new_sensors_past_the_budget_are_refused_until_one_is_forgotten() {
        let known = [(SensorId::new("restored"), ChannelSet::from(vec!["a".to_string()]))];
        // 100 bytes a channel; room for 4 channels.
        let mut a = Admission::new(Partition::default(), 10, known).with_budget(400, Box::new(|c| 100 * c));
        assert!(admit(&mut a, "two", &["a", "b"]).is_ok());
        assert_eq!(admit(&mut a, "big", &["a", "b"]), Err(Refused::MemoryBudget));
        assert!(admit(&mut a, "small", &["a"]).is_ok());
        assert!(admit(&mut a, "two", &["a", "b"]).is_ok(), "known sensors pass");
        a.forget(&SensorId::new("two"));
        assert!(admit(&mut a, "big", &["a", "b"]).is_ok());
    }

    #[test]
    fn overlong_ids_are_refused() {
        let mut a = Admission::new(Partition::default(), 10, []);
        let long = "x".repeat(MAX_SENSOR_ID_BYTES + 1);
        assert_eq!(admit(&mut a, &long, &["a"]), Err(Refused::IdTooLong));
        assert!(admit(&mut a, &long[..MAX_SENSOR_ID_BYTES], &["a"]).is_ok());
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn another_instances_sensors_are_refused_before_the_cap() {
        // Under 2 instances, `sensor-0` is instance 1's and `pump-7` instance 0's
        // (the vectors of docs/scaling.md).
        let mine = Partition::new(2, 0).expect("valid");
        let known = [
            (SensorId::new("sensor-0"), ChannelSet::from(vec!["a".to_string()])),
            (SensorId::new("pump-7"), ChannelSet::from(vec!["a".to_string()])),
        ];
        let mut a = Admission::new(mine, 1, known);
        assert_eq!(a.len(), 1, "the foreign restored sensor is left out");
        assert!(admit(&mut a, "pump-7", &["a"]).is_ok());
        assert_eq!(
            admit(&mut a, "sensor-0", &["a"]),
            Err(Refused::OtherInstance),
            "refused as foreign, not as past the cap"
        );
        let mut theirs = Admission::new(Partition::new(2, 1).expect("valid"), 10, []);
        assert!(admit(&mut theirs, "sensor-0", &["a"]).is_ok());
        assert_eq!(admit(&mut theirs, "pump-7", &["a"]), Err(Refused::OtherInstance));
    }
}
