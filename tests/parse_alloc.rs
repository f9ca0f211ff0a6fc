//! Heap allocations of ingest's hot path, counted: a known sensor's flat JSON message
//! parsed, admitted and assembled into a reading allocates nothing (a reading's values
//! are inline up to four channels; a wider one allocates them once). Its own test
//! binary: the counting allocator is global.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use anomalyd::cluster::Partition;
use anomalyd::ingest::assemble::DEFAULT_HOLD_SECS;
use anomalyd::ingest::payload::{Field, PayloadParams, parse};
use anomalyd::ingest::sensors::Admission;

/// Counts the allocations of the thread that asks ([`allocations`]), so the test
/// harness's own threads do not count.
struct Counting;

thread_local! {
    /// Allocations made by this thread while counting; `None` when not counting.
    static COUNT: Cell<Option<usize>> = const { Cell::new(None) };
}

// SAFETY: every call is passed on to `System` unchanged; the count is a const-initialised
// thread-local `Cell` without a destructor, so touching it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn count() {
    let _ = COUNT.try_with(|c| c.set(c.get().map(|n| n + 1)));
}

/// How many allocations (and reallocations) `f` makes on this thread.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    COUNT.with(|c| c.set(Some(0)));
    let out = f();
    let n = COUNT.with(|c| c.replace(None)).unwrap_or_default();
    (n, out)
}

const NOW: f64 = 1_700_000_000.0;

/// The message of `benches/parse.rs`: three channels and a numeric timestamp.
const PAYLOAD: &[u8] = br#"{"ts":1700000000.1,"current":10.234,"temperature":41.87,"vibration":0.712}"#;

/// Parses `payload` and admits its record for `sensor` as ingest does; with
/// `assemble`, also turns it into readings. Returns how many readings it made.
fn ingest(
    admission: &mut Admission,
    params: &PayloadParams,
    payload: &[u8],
    sensor: &str,
    assemble: bool,
) -> usize {
    let records = parse(payload, params, NOW).expect("parses");
    let record = &records[0];
    let sensor = record.sensor.as_deref().unwrap_or(sensor);
    let names = record.channels.iter().map(|(n, _)| n.as_ref());
    let new_set = || (record.channels.iter().map(|(n, _)| n.to_string()).collect(), true);
    let admitted = admission.admit(sensor, names, new_set, |id, set, held| {
        assemble.then(|| held.update(id, set, record.ts, &record.channels, (DEFAULT_HOLD_SECS, NOW)))
    });
    admitted
        .expect("admitted")
        .map_or(0, |out| out.readings().count())
}

#[test]
fn a_known_sensors_flat_json_message_does_not_allocate() {
    let by_id = PayloadParams {
        sensor_field: Some(Field::key("id")),
        ..PayloadParams::default()
    };
    let configured = PayloadParams {
        channels: Some(["vibration", "current"].map(Field::key).to_vec()),
        ..PayloadParams::default()
    };
    let with_id = br#"{"id":"pump-2","ts":1700000000.1,"current":10.2,"temperature":41.8,"vibration":0.7}"#;
    let cases: [(&str, &PayloadParams, &[u8]); 3] = [
        ("default params", &PayloadParams::default(), PAYLOAD),
        ("sensor id from the payload", &by_id, with_id),
        ("configured channels", &configured, PAYLOAD),
    ];
    for (name, params, payload) in cases {
        let mut admission = Admission::new(Partition::default(), 10, []);
        let (first, _) = allocations(|| ingest(&mut admission, params, payload, "pump-1", true));
        assert!(first > 0, "{name}: a new sensor interns its id and channel set");
        let (parse_admit, _) = allocations(|| ingest(&mut admission, params, payload, "pump-1", false));
        assert_eq!(parse_admit, 0, "{name}: parse and admit");
        let (assembled, readings) = allocations(|| ingest(&mut admission, params, payload, "pump-1", true));
        assert_eq!(readings, 1, "{name}");
        assert_eq!(assembled, 0, "{name}: parse, admit and assemble");
    }
}

/// Past four channels a reading's values no longer fit inline: one allocation.
#[test]
fn a_reading_of_more_than_four_channels_allocates_its_values_once() {
    let wide = br#"{"ts":1700000000.1,"a":1.0,"b":2.0,"c":3.0,"d":4.0,"e":5.0}"#;
    let params = PayloadParams::default();
    let mut admission = Admission::new(Partition::default(), 10, []);
    allocations(|| ingest(&mut admission, &params, wide, "pump-1", true));
    let (assembled, readings) = allocations(|| ingest(&mut admission, &params, wide, "pump-1", true));
    assert_eq!((assembled, readings), (1, 1));
}
