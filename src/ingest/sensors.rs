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

use super::assemble::{Assembled, Held};
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

    /// Closes the rounds of sensors that fell silent ([`Held::expire`]) as of `now`
    /// (the gateway clock, unix seconds): what each made, for the sensors where it
    /// made something (a reading, or an incomplete count).
    pub fn expire(&mut self, now: f64) -> Vec<(SensorId, Assembled)> {
        (self.sensors.values_mut())
            .filter_map(|k| {
                let out = k.held.expire(&k.id, &k.set, now);
                (out.incomplete || out.closed.is_some()).then(|| (k.id.clone(), out))
            })
            .collect()
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
mod tests;
