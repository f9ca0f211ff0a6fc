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
//! - **A sensor's channel set is interned.** A new sensor starts with
//!   [`first_channel_set`]: the source's configured `channels`, else every channel its
//!   first payload carries (for a SenML pack, the union of its records), sorted by
//!   name; a sensor restored from the snapshot starts with the set it had there. Every
//!   later reading shares that `Arc` instead of carrying its own names. A record may
//!   carry only some of the set (a partial update, which [`super::assemble`]
//!   completes).
//! - **The set may widen until the sensor's first model is trained.** The detector
//!   decides when a set is fixed ([`crate::detector::Pipeline::channel_set_open`]) and
//!   says so with a [`Note::Fixed`]; until then a record with a name outside the set
//!   widens it to the union, sorted by name (a field missing from the very first
//!   message is not refused for good), and the detector restarts the sensor's warm-up
//!   with the wider set. Configured `channels` are fixed from the start. Once fixed, a
//!   record with a name outside the set (`{temp, vib}` then `{hum, temp}`) is refused
//!   and counted as `channel_set_changed`: scored as if nothing changed, its values
//!   would be read under the wrong names by a model trained on the old ones. A set
//!   never widens past `limits.max_channels` or the memory budget.

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
    /// A known sensor sent a channel name outside its set, once that is fixed (or a
    /// name that would widen it past `limits.max_channels`, or out of name order).
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

/// What the detector tells admission about a sensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    /// The detector dropped the sensor as idle: its place under the cap is free.
    Forget(SensorId),
    /// The sensor's first model is installed: its channel set is this one, for good.
    Fixed(SensorId, ChannelSet),
}

/// A sensor the snapshot restored: its id, its channel set, and whether that set may
/// still widen (it had no model yet).
pub type Restored = (SensorId, ChannelSet, bool);

/// An admitted sensor: its interned id (the map's key, kept here too because `get_mut`
/// does not hand back keys), its channel set, whether that set may still widen, and
/// its partial updates ([`Held`]), in one map entry so a record costs one lookup.
#[derive(Debug)]
struct Known {
    id: SensorId,
    set: ChannelSet,
    open: bool,
    held: Held,
}

impl Known {
    fn new(id: SensorId, set: ChannelSet, open: bool) -> Self {
        let held = Held::new(set.len());
        Self { id, set, open, held }
    }
}

/// The admitted sensors and their channel sets.
pub struct Admission {
    /// Which sensors are this instance's; the others are refused.
    partition: Partition,
    max_sensors: usize,
    /// `limits.max_channels`: no set widens past it.
    max_channels: usize,
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
    pub fn new(partition: Partition, max_sensors: usize, known: impl IntoIterator<Item = Restored>) -> Self {
        let mut sensors = HashMap::new();
        for (id, channels, open) in known {
            if sensors.len() < max_sensors && partition.owns(id.as_str()) {
                sensors.insert(id.clone(), Known::new(id, channels, open));
            }
        }
        Self {
            partition,
            max_sensors,
            max_channels: usize::MAX,
            sensors,
            budget: None,
        }
    }

    /// Never widens a sensor's set past `max` channels (`limits.max_channels`).
    #[must_use]
    pub fn with_max_channels(mut self, max: usize) -> Self {
        self.max_channels = max;
        self
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
    /// `new_set` returns, and whether it may widen. A known sensor whose set covers
    /// the names costs one lookup and no allocation; one whose set is still open is
    /// widened to cover them (see the module docs).
    ///
    /// # Errors
    ///
    /// [`Refused`] for another instance's sensor, past the cap or for a name outside
    /// the sensor's channel set once that is fixed.
    pub fn admit<'a, R>(
        &mut self,
        sensor: &str,
        mut names: impl Iterator<Item = &'a str> + Clone,
        new_set: impl FnOnce() -> (ChannelSet, bool),
        then: impl FnOnce(&SensorId, &ChannelSet, &mut Held) -> R,
    ) -> Result<R, Refused> {
        // `then` instead of returning `&mut Held`: a borrow returned from this branch
        // would keep `self.sensors` borrowed on the new-sensor path below.
        if let Some(known) = self.sensors.get_mut(sensor) {
            if !covers(&known.set, names.clone()) {
                widen(known, names, self.max_channels, self.budget.as_mut())?;
            }
            return Ok(then(&known.id, &known.set, &mut known.held));
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
        let (set, open) = new_set();
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
        let known = (self.sensors.entry(id.clone())).or_insert(Known::new(id, set, open));
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

    /// Takes what the detector says about a sensor.
    pub fn note(&mut self, note: Note) {
        match note {
            Note::Forget(sensor) => self.forget(&sensor),
            Note::Fixed(sensor, set) => self.fix(&sensor, set),
        }
    }

    /// Forgets a sensor the detector dropped: its place under the cap is free, and its
    /// next reading is admitted like a new sensor's.
    pub fn forget(&mut self, sensor: &SensorId) {
        if let (Some(known), Some(b)) = (self.sensors.remove(sensor), self.budget.as_mut()) {
            b.used -= (b.cost)(known.set.len());
        }
    }

    /// Fixes a sensor's set as the one its first model was trained on. Ingest may have
    /// widened it meanwhile (the detector refuses those readings): it goes back to the
    /// model's set, so the sensor's next readings are scored instead of refused.
    fn fix(&mut self, sensor: &SensorId, set: ChannelSet) {
        let Some(known) = self.sensors.get_mut(sensor) else {
            return;
        };
        known.open = false;
        if known.set == set {
            return;
        }
        if let Some(b) = self.budget.as_mut() {
            b.used = b.used - (b.cost)(known.set.len()) + (b.cost)(set.len());
        }
        known.held = known.held.regroup(&known.set, &set);
        known.set = set;
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

/// Whether `names` are all in `set`, in its order. One pass: they are a subsequence of
/// the set when they are in it.
fn covers<'a>(set: &ChannelSet, mut names: impl Iterator<Item = &'a str>) -> bool {
    let mut cursor = set.iter();
    names.all(|n| cursor.any(|s| s == n))
}

/// Widens an open set to cover `names`: the union, sorted by name, as a new sensor's
/// set would be. The held values move with their channels.
fn widen<'a>(
    known: &mut Known,
    names: impl Iterator<Item = &'a str> + Clone,
    max_channels: usize,
    budget: Option<&mut Budget>,
) -> Result<(), Refused> {
    if !known.open {
        return Err(Refused::ChannelSetChanged);
    }
    let mut union: BTreeSet<String> = known.set.iter().cloned().collect();
    union.extend(names.clone().map(str::to_owned));
    let wider: ChannelSet = union.into_iter().collect();
    // Names out of the union's order (not sorted by name): no set is both.
    if wider.len() > max_channels || !covers(&wider, names) {
        return Err(Refused::ChannelSetChanged);
    }
    if let Some(b) = budget {
        let more = (b.cost)(wider.len()).saturating_sub((b.cost)(known.set.len()));
        if b.used + more > b.limit {
            return Err(Refused::MemoryBudget);
        }
        b.used += more;
    }
    known.held = known.held.regroup(&known.set, &wider);
    known.set = wider;
    Ok(())
}

/// The channel set a new sensor is admitted with, and whether it may still widen: the
/// `configured` channels' names, fixed; else every channel that `records` of `sensor`
/// carry (records without a sensor of their own are `topic_sensor`'s), sorted by name,
/// open until the sensor's first model. One record, the common case, needs no sorting:
/// the parser sorted it.
pub fn first_channel_set(
    configured: Option<&[Field]>,
    records: &[Parsed<'_>],
    sensor: &str,
    topic_sensor: Option<&str>,
) -> (ChannelSet, bool) {
    if let Some(list) = configured {
        return (list.iter().map(|f| f.name().to_owned()).collect(), false);
    }
    if let [one] = records {
        return (
            one.channels.iter().map(|(name, _)| name.to_string()).collect(),
            true,
        );
    }
    let union: BTreeSet<&str> = (records.iter())
        .filter(|r| r.sensor.as_deref().or(topic_sensor) == Some(sensor))
        .flat_map(|r| r.channels.iter().map(|(name, _)| name.as_ref()))
        .collect();
    (union.into_iter().map(str::to_owned).collect(), true)
}

#[cfg(test)]
mod tests;
