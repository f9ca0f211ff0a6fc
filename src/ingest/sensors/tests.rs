//! Admission: the cap, the budget, other instances' sensors, channel sets and
//! partial updates.

use super::*;
use crate::ingest::payload::Channel;

fn admit(a: &mut Admission, sensor: &str, names: &[&str]) -> Result<(SensorId, ChannelSet), Refused> {
    let set = || (names.iter().map(|n| n.to_string()).collect(), false);
    a.admit(sensor, names.iter().copied(), set, ids)
}

fn set(names: &[&str]) -> ChannelSet {
    names.iter().map(|n| n.to_string()).collect()
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
    let whole = || {
        (
            ChannelSet::from(vec!["temp".to_string(), "vib".to_string()]),
            false,
        )
    };
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
    let rec = |sensor: Option<&'static str>, names: &[&'static str]| Parsed {
        sensor: sensor.map(Into::into),
        ts: 0.0,
        channels: names.iter().map(|&n| (n.into(), 1.0)).collect(),
        unselected: None,
    };
    let pack = [
        rec(None, &["current"]),
        rec(Some("other"), &["x"]),
        rec(None, &["current", "voltage"]),
    ];
    assert_eq!(
        first_channel_set(None, &pack, "dev", Some("dev")),
        (set(&["current", "voltage"]), true)
    );
    let configured = [Field::key("z"), Field::parse("/fields/a").expect("pointer")];
    assert_eq!(
        first_channel_set(Some(&configured), &pack, "dev", Some("dev")),
        (set(&["z", "a"]), false),
        "configured channels are fixed"
    );
    assert_eq!(
        first_channel_set(None, &pack[2..], "dev", None),
        (set(&["current", "voltage"]), true)
    );
}

#[test]
fn sensors_past_the_cap_are_refused_but_known_ones_pass() {
    let known = [(
        SensorId::new("restored"),
        ChannelSet::from(vec!["a".to_string()]),
        false,
    )];
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
    let whole = || (ChannelSet::from(vec!["a".to_string(), "b".to_string()]), false);
    let update = |pairs: &[(&'static str, f64)]| -> Vec<Channel<'static>> {
        pairs.iter().map(|&(n, v)| (n.into(), v)).collect()
    };
    let full = update(&[("a", 1.0), ("b", 2.0)]);
    let only_a = update(&[("a", 3.0)]);
    let take = |a: &mut Admission, ts: f64, u: &[Channel<'_>]| {
        let names = u.iter().map(|(n, _)| n.as_ref());
        a.admit("s", names, whole, |id, set, held| {
            held.update(id, set, ts, u, (60.0, ts))
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
    let known = [(
        SensorId::new("restored"),
        ChannelSet::from(vec!["a".to_string()]),
        false,
    )];
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
        (
            SensorId::new("sensor-0"),
            ChannelSet::from(vec!["a".to_string()]),
            false,
        ),
        (
            SensorId::new("pump-7"),
            ChannelSet::from(vec!["a".to_string()]),
            false,
        ),
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

#[test]
fn expiry_closes_only_the_rounds_of_sensors_silent_past_their_hold() {
    let mut a = Admission::new(Partition::default(), 10, []);
    let whole = || (ChannelSet::from(vec!["a".to_string(), "b".to_string()]), false);
    let only_a: [Channel<'_>; 1] = [("a".into(), 1.0)];
    for (sensor, arrived) in [("early", 100.0), ("late", 105.0)] {
        let names = only_a.iter().map(|(n, _)| n.as_ref());
        a.admit(sensor, names, whole, |id, set, held| {
            held.update(id, set, 1.0e9, &only_a, (10.0, arrived))
        })
        .expect("admitted");
    }
    assert_eq!(a.expire(110.0), vec![], "neither has waited past its hold");
    let expired = a.expire(111.0);
    assert_eq!(expired.len(), 1);
    assert_eq!((expired[0].0.as_str(), expired[0].1.incomplete), ("early", true));
    assert_eq!(a.expire(111.0), vec![], "counted once");
    let expired = a.expire(116.0);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].0.as_str(), "late");
}

/// Admits a record of `(name, value)` pairs at `ts` for sensor `s` of a source
/// without `channels`; returns its set and the readings' values.
fn take(a: &mut Admission, ts: f64, pairs: &[(&str, f64)]) -> Result<(ChannelSet, Vec<Vec<f64>>), Refused> {
    let u: Vec<Channel<'_>> = pairs.iter().map(|&(n, v)| (n.into(), v)).collect();
    let names = u.iter().map(|(n, _)| n.as_ref());
    let first = || (u.iter().map(|(n, _)| n.to_string()).collect(), true);
    a.admit("s", names, first, |id, set, held| {
        let out = held.update(id, set, ts, &u, (60.0, ts));
        (set.clone(), out.readings().map(|r| r.values.to_vec()).collect())
    })
}

#[test]
fn an_open_set_widens_to_a_new_field_and_keeps_the_held_values() {
    let mut a = Admission::new(Partition::default(), 10, []);
    let t = 1.0e9;
    // The first message lacks `b`: not refused for good.
    assert_eq!(take(&mut a, t, &[("a", 1.0)]), Ok((set(&["a"]), vec![vec![1.0]])));
    assert_eq!(
        take(&mut a, t + 1.0, &[("a", 2.0), ("b", 3.0)]),
        Ok((set(&["a", "b"]), vec![vec![2.0, 3.0]])),
        "widened, and the full record goes through"
    );
    // `0` sorts first: the held `a` and `b` move with their names.
    assert_eq!(
        take(&mut a, t + 2.0, &[("0", 9.0)]),
        Ok((set(&["0", "a", "b"]), vec![])),
        "a partial update of the wider set waits"
    );
    assert_eq!(
        take(&mut a, t + 3.0, &[("0", 8.0)]),
        Ok((set(&["0", "a", "b"]), vec![vec![9.0, 2.0, 3.0]])),
        "completed with the values held from before the widening"
    );
    assert_eq!(
        take(&mut a, t + 4.0, &[("c", 1.0), ("a", 1.0)]),
        Err(Refused::ChannelSetChanged),
        "names out of order fit no sorted set"
    );
}

#[test]
fn a_fixed_set_refuses_new_fields_and_goes_back_to_the_models_set() {
    let mut a = Admission::new(Partition::default(), 10, []);
    let t = 1.0e9;
    take(&mut a, t, &[("a", 1.0), ("b", 2.0)]).expect("first");
    // Ingest widened before it heard that the model of {a, b} was installed.
    take(&mut a, t + 1.0, &[("a", 1.0), ("b", 2.0), ("c", 3.0)]).expect("widened");
    a.note(Note::Fixed(SensorId::new("s"), set(&["a", "b"])));
    assert_eq!(
        take(&mut a, t + 2.0, &[("a", 4.0), ("b", 5.0)]),
        Ok((set(&["a", "b"]), vec![vec![4.0, 5.0]])),
        "back to the model's set"
    );
    assert_eq!(
        take(&mut a, t + 3.0, &[("a", 1.0), ("b", 2.0), ("c", 3.0)]),
        Err(Refused::ChannelSetChanged)
    );
    assert_eq!(
        take(&mut a, t + 4.0, &[("c", 3.0)]),
        Err(Refused::ChannelSetChanged)
    );
    a.note(Note::Forget(SensorId::new("s")));
    assert_eq!(
        take(&mut a, t + 5.0, &[("c", 3.0)]),
        Ok((set(&["c"]), vec![vec![3.0]])),
        "forgotten: a new start"
    );
}

#[test]
fn a_set_never_widens_past_the_channel_cap_or_the_budget() {
    let mut a = Admission::new(Partition::default(), 10, []).with_max_channels(2);
    take(&mut a, 1.0e9, &[("a", 1.0)]).expect("first");
    take(&mut a, 1.0e9, &[("b", 1.0)]).expect("two channels");
    assert_eq!(
        take(&mut a, 1.0e9, &[("c", 1.0)]),
        Err(Refused::ChannelSetChanged)
    );
    // 100 bytes a channel; room for 3 channels.
    let mut a = Admission::new(Partition::default(), 10, []).with_budget(300, Box::new(|c| 100 * c));
    take(&mut a, 1.0e9, &[("a", 1.0), ("b", 1.0)]).expect("first");
    take(&mut a, 1.0e9, &[("c", 1.0)]).expect("three channels");
    assert_eq!(take(&mut a, 1.0e9, &[("d", 1.0)]), Err(Refused::MemoryBudget));
    assert_eq!(
        take(&mut a, 1.0e9, &[("a", 2.0)]).map(|(set, _)| set.len()),
        Ok(3),
        "the sensor keeps its set"
    );
}

#[test]
fn a_restored_sensor_without_a_model_may_still_widen() {
    let known = [
        (SensorId::new("s"), set(&["a"]), true),
        (SensorId::new("trained"), set(&["a"]), false),
    ];
    let mut a = Admission::new(Partition::default(), 10, known);
    assert_eq!(
        take(&mut a, 1.0e9, &[("a", 1.0), ("b", 2.0)]).map(|(set, _)| set),
        Ok(set(&["a", "b"]))
    );
    let names = ["a", "b"].into_iter();
    let first = || (set(&["a", "b"]), true);
    assert_eq!(
        a.admit("trained", names, first, ids),
        Err(Refused::ChannelSetChanged)
    );
}
