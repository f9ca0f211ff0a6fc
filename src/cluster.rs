//! Scale-out past one daemon: which sensors this instance owns (`[cluster] instances,
//! index`), and the per-instance MQTT names that keep instances apart on one broker.
//!
//! It owns the partition function (and the daemon's worker sharding, which derives from
//! the same hash, [`worker_of`]) and nothing else: ingest asks [`Partition::owns`]
//! for every new sensor and drops the readings of sensors another instance owns before
//! the queue (`readings_dropped_total{reason="other_instance"}`); the daemon drops
//! foreign sensors from a restored snapshot; config validation builds the
//! [`Partition`] and derives the client ids and the status topic from it.
//!
//! ## The partition function
//!
//! Other tools (a broker rule, a provisioning script) must compute the same answer, so
//! it is fixed here and independent of the Rust version, the platform and the build:
//!
//! 1. `key = FNV-1a 64(sensor id as UTF-8 bytes)`: offset basis
//!    `0xcbf29ce484222325`, prime `0x100000001b3`, for each byte `h = (h ^ byte) ·
//!    prime mod 2⁶⁴` ([`fnv1a64`]). The id is the one ingest takes from the topic level
//!    or payload field, before any escaping.
//! 2. `instance = jump(key, instances)`, the jump consistent hash of Lamping and Veach
//!    (<https://arxiv.org/abs/1406.2294>, figure 1; [`jump`]). When `instances` grows
//!    from N to N + 1 only about 1/(N + 1) of the sensors move (a plain modulo would
//!    move N/(N + 1) of them), and each moved sensor warms up again on its new
//!    instance, so resizing costs little.
//!
//! docs/scaling.md has a Python version and test vectors (also checked below).
//!
//! ## Names on the broker
//!
//! With `instances = 1` nothing changes. With more, instance `i` connects as
//! `<mqtt.client_id>-<i>` (subscriber) and `<mqtt.client_id>-<i>-pub` (publisher) and
//! announces itself on `<alerts.status_topic>/<i>`: two instances never take over each
//! other's session, and one instance's last will marks only itself `offline`.

use std::num::NonZeroU32;

/// FNV-1a 64 offset basis (<http://www.isthe.com/chongo/tech/comp/fnv/>).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Why `[cluster]` settings cannot make a partition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// `instances` is 0.
    #[error("must be at least 1, got 0")]
    NoInstances,
    /// `index` is not below `instances`.
    #[error("must be below cluster.instances ({instances}), got {index}")]
    IndexOutOfRange {
        /// The index given.
        index: u32,
        /// The number of instances.
        instances: u32,
    },
}

/// This instance's share of the sensor ids: `index` of `instances`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    instances: NonZeroU32,
    index: u32,
}

impl Default for Partition {
    /// One instance owning every sensor.
    fn default() -> Self {
        Self {
            instances: NonZeroU32::MIN,
            index: 0,
        }
    }
}

impl Partition {
    /// Instance `index` (0-based) of `instances`.
    ///
    /// # Errors
    ///
    /// [`PartitionError`] when `instances` is 0 or `index >= instances`.
    pub fn new(instances: u32, index: u32) -> Result<Self, PartitionError> {
        let instances = NonZeroU32::new(instances).ok_or(PartitionError::NoInstances)?;
        if index >= instances.get() {
            return Err(PartitionError::IndexOutOfRange {
                index,
                instances: instances.get(),
            });
        }
        Ok(Self { instances, index })
    }

    /// Number of instances sharing the sensors.
    pub fn instances(self) -> u32 {
        self.instances.get()
    }

    /// This instance's index, below [`Self::instances`].
    pub fn index(self) -> u32 {
        self.index
    }

    /// Whether this is the only instance (every sensor is owned, no names change).
    pub fn is_single(self) -> bool {
        self.instances.get() == 1
    }

    /// Whether this instance scores `sensor`.
    pub fn owns(self, sensor: &str) -> bool {
        self.is_single() || instance_of(sensor, self.instances) == self.index
    }

    /// The MQTT client id of this instance's subscriber for the configured `base`
    /// (the publisher appends `-pub`): `base` alone, `base-<index>` when clustered.
    pub fn client_id(self, base: &str) -> String {
        if self.is_single() {
            base.to_string()
        } else {
            format!("{base}-{}", self.index)
        }
    }

    /// This instance's retained status topic for the configured `base`: `base` alone,
    /// `base/<index>` when clustered (so `base/+` watches the whole group).
    pub fn status_topic(self, base: &str) -> String {
        if self.is_single() {
            base.to_string()
        } else {
            format!("{base}/{}", self.index)
        }
    }
}

/// The instance (0-based, below `instances`) that owns `sensor`; see the module docs.
pub fn instance_of(sensor: &str, instances: NonZeroU32) -> u32 {
    jump(fnv1a64(sensor.as_bytes()), instances)
}

/// The detector worker (0-based, below `workers`) that owns `sensor` inside this
/// instance: the jump hash of the sensor's FNV-1a key after a SplitMix64 finaliser.
///
/// Why the finaliser: [`instance_of`] already spends `jump(fnv1a64(id), instances)`.
/// Jumping the same key again would correlate the two choices (with 2 instances and 2
/// workers, every sensor of instance 0 would land on worker 0 and the other worker
/// would idle), so the worker choice starts from a key mixed into an unrelated one.
/// Like [`instance_of`] it depends only on the id's bytes, never on the run, so a
/// sensor keeps its worker (and its readings their order) for the life of the process.
pub fn worker_of(sensor: &str, workers: NonZeroU32) -> u32 {
    jump(splitmix64(fnv1a64(sensor.as_bytes())), workers)
}

/// The SplitMix64 output function (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014): a bijective 64-bit mixer.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(FNV_OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// Jump consistent hash: the bucket in `0..buckets` of `key` (Lamping & Veach 2014,
/// figure 1, transcribed). The division is of two integers below 2⁵³ converted to
/// f64, so IEEE 754 makes it the same on every platform.
pub fn jump(mut key: u64, buckets: NonZeroU32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets.get()) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // (b + 1) · 2³¹ / ((key >> 33) + 1): both operands are exact in f64, and the
        // quotient is truncated toward zero as the paper's C++ does.
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    // `b` is in 0..buckets: the loop runs at least once because buckets ≥ 1.
    b as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(k: u32) -> NonZeroU32 {
        NonZeroU32::new(k).expect("non-zero")
    }

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // From the FNV reference test suite (test_fnv.c, fnv1a_64).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn jump_matches_the_published_vectors() {
        // Computed by an independent transcription, the Python in docs/scaling.md:
        // (key, buckets, bucket).
        let cases: [(u64, u32, u32); 6] = [
            (0, 1, 0),
            (0, 10, 0),
            (1, 10, 6),
            (0xdead_beef, 100, 87),
            (u64::MAX, 1000, 313),
            (fnv1a64(b"pump-7"), 2, 0),
        ];
        for (key, buckets, want) in cases {
            assert_eq!(jump(key, n(buckets)), want, "jump({key}, {buckets})");
        }
    }

    #[test]
    fn the_documented_sensor_vectors_hold() {
        // docs/scaling.md lists these; other tools check themselves against them.
        let cases = [
            ("pump-7", 2, 0),
            ("pump-7", 3, 2),
            ("sensor-0", 2, 1),
            ("温度/1", 4, 0),
        ];
        for (id, instances, want) in cases {
            assert_eq!(instance_of(id, n(instances)), want, "{id} of {instances}");
        }
    }

    #[test]
    fn every_sensor_is_owned_by_exactly_one_instance() {
        for instances in 1..=7 {
            let parts: Vec<Partition> = (0..instances)
                .map(|i| Partition::new(instances, i).expect("valid"))
                .collect();
            for k in 0..500 {
                let id = format!("sensor-{k}");
                let owners = parts.iter().filter(|p| p.owns(&id)).count();
                assert_eq!(owners, 1, "{id} of {instances}");
            }
        }
    }

    #[test]
    fn sensors_spread_evenly_and_few_move_when_an_instance_is_added() {
        let ids: Vec<String> = (0..10_000).map(|k| format!("gw-{k}/temp")).collect();
        let of = |id: &str, k: u32| instance_of(id, n(k));
        let mut counts = [0usize; 4];
        for id in &ids {
            counts[of(id, 4) as usize] += 1;
        }
        for c in counts {
            assert!((2300..=2700).contains(&c), "uneven split {counts:?}");
        }
        let moved = ids.iter().filter(|id| of(id, 4) != of(id, 5)).count();
        // Ideal: 1/5 move, every one to the new instance.
        assert!((1700..=2300).contains(&moved), "{moved} of 10000 moved");
        assert!(ids.iter().all(|id| of(id, 4) == of(id, 5) || of(id, 5) == 4));
    }

    #[test]
    fn workers_split_each_instances_sensors_evenly_and_stably() {
        // Every sensor of instance 0 of 2 must not land on one worker (the correlation
        // the finaliser prevents), and a sensor's worker never changes.
        let mine: Vec<String> = (0..4000)
            .map(|k| format!("gw-{k}/temp"))
            .filter(|id| instance_of(id, n(2)) == 0)
            .collect();
        for workers in [2u32, 3] {
            let mut counts = vec![0usize; workers as usize];
            for id in &mine {
                let w = worker_of(id, n(workers));
                assert_eq!(w, worker_of(id, n(workers)), "{id} moved");
                counts[w as usize] += 1;
            }
            let even = mine.len() / workers as usize;
            for c in &counts {
                assert!(
                    c.abs_diff(even) * 10 < even,
                    "uneven over {workers} workers: {counts:?}"
                );
            }
        }
        assert!((0..100).all(|k| worker_of(&format!("s{k}"), n(1)) == 0));
    }

    #[test]
    fn invalid_settings_are_refused_with_their_values() {
        assert_eq!(Partition::new(0, 0), Err(PartitionError::NoInstances));
        let e = Partition::new(2, 2).expect_err("index 2 of 2");
        assert_eq!(e.to_string(), "must be below cluster.instances (2), got 2");
    }

    #[test]
    fn names_change_only_when_clustered() {
        let single = Partition::default();
        assert_eq!(single.client_id("anomalyd"), "anomalyd");
        assert_eq!(single.status_topic("anomalyd/status"), "anomalyd/status");
        let second = Partition::new(3, 1).expect("valid");
        assert_eq!(second.client_id("anomalyd"), "anomalyd-1");
        assert_eq!(second.status_topic("anomalyd/status"), "anomalyd/status/1");
        assert!(single.owns("anything"));
    }
}
