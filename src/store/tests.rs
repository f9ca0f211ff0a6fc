use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;

/// Stands in for `DetectorSnapshot`: a float history per sensor plus some scalars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FakeSnapshot {
    version: u64,
    histories: BTreeMap<String, Vec<f64>>,
    weights: ndarray::Array2<f64>,
}

fn build_snapshot(sensors: usize, history: usize) -> FakeSnapshot {
    // A cheap deterministic sequence with full-precision floats, like real scores.
    let mut x = 0.123_456_789_f64;
    let mut next = || {
        x = (x * 3.987_654_321 + 0.1).fract();
        x
    };
    let histories = (0..sensors)
        .map(|s| (format!("sensor-{s}"), (0..history).map(|_| next()).collect()))
        .collect();
    let weights = ndarray::Array2::from_shape_fn((16, 8), |_| next());
    FakeSnapshot {
        version: 7,
        histories,
        weights,
    }
}

fn build_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn corrupt_reason(err: StoreError) -> (Option<PathBuf>, CorruptReason) {
    match err {
        StoreError::Corrupt { moved_to, reason, .. } => (moved_to, reason),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Loads a broken file and checks it was moved aside and that the directory then
/// looks empty to the next load.
fn load_expecting_corrupt(store: &Store) -> CorruptReason {
    let err = store
        .load::<FakeSnapshot>()
        .expect_err("corrupt file must not load");
    let (moved_to, reason) = corrupt_reason(err);
    let moved_to = moved_to.expect("file moved aside");
    assert!(moved_to.exists());
    let name = moved_to.file_name().expect("file name").to_string_lossy();
    assert!(name.starts_with("snapshot.bin.corrupt-"), "{name}");
    assert!(!store.snapshot_path().exists());
    assert_eq!(store.load::<FakeSnapshot>().expect("second load"), None);
    reason
}

#[test]
fn snapshot_round_trips() {
    let (_dir, store) = build_store();
    let snap = build_snapshot(3, 1000);
    let report = store.save(&snap).expect("save");
    assert_eq!(report.bytes, fs::metadata(&report.path).expect("stat").len());
    assert_eq!(store.load::<FakeSnapshot>().expect("load"), Some(snap));
}

#[test]
fn load_without_snapshot_is_none() {
    let (_dir, store) = build_store();
    assert_eq!(store.load::<FakeSnapshot>().expect("load"), None);
}

#[test]
fn save_replaces_previous_snapshot_and_leaves_no_temp_file() {
    let (dir, store) = build_store();
    store.save(&build_snapshot(1, 10)).expect("first save");
    let second = build_snapshot(2, 20);
    store.save(&second).expect("second save");
    assert_eq!(file_names(dir.path()), vec!["snapshot.bin"]);
    assert_eq!(store.load::<FakeSnapshot>().expect("load"), Some(second));
}

#[test]
fn open_removes_stale_temp_file() {
    let (dir, _store) = build_store();
    fs::write(dir.path().join("snapshot.tmp"), b"half a save").expect("write");
    Store::open(dir.path()).expect("reopen");
    assert!(file_names(dir.path()).is_empty());
}

#[test]
fn truncated_file_is_rejected_with_length_error() {
    let (_dir, store) = build_store();
    let report = store.save(&build_snapshot(1, 100)).expect("save");
    let bytes = fs::read(&report.path).expect("read");
    fs::write(&report.path, &bytes[..bytes.len() - 10]).expect("truncate");
    let reason = load_expecting_corrupt(&store);
    assert!(matches!(reason, CorruptReason::Length { header, actual } if header == actual + 10));
}

#[test]
fn file_shorter_than_header_is_rejected() {
    let (_dir, store) = build_store();
    fs::write(store.snapshot_path(), b"ANOMAL").expect("write");
    assert_eq!(load_expecting_corrupt(&store), CorruptReason::TooShort { len: 6 });
}

#[test]
fn flipped_byte_fails_checksum_and_is_moved_aside() {
    let (_dir, store) = build_store();
    let report = store.save(&build_snapshot(2, 100)).expect("save");
    let mut bytes = fs::read(&report.path).expect("read");
    let mid = HEADER_LEN + (bytes.len() - HEADER_LEN) / 2;
    bytes[mid] ^= 0x01;
    fs::write(&report.path, &bytes).expect("write");
    let reason = load_expecting_corrupt(&store);
    assert!(matches!(reason, CorruptReason::Checksum { .. }), "{reason:?}");
}

#[test]
fn foreign_file_is_rejected_by_magic() {
    let (_dir, store) = build_store();
    fs::write(
        store.snapshot_path(),
        b"{\"this is\": \"some json, not a snapshot\"}",
    )
    .expect("write");
    let reason = load_expecting_corrupt(&store);
    assert!(matches!(reason, CorruptReason::Magic { .. }), "{reason:?}");
    assert!(reason.to_string().contains("not an anomalyd snapshot"));
}

#[test]
fn newer_format_version_is_rejected() {
    let (_dir, store) = build_store();
    let report = store.save(&build_snapshot(1, 10)).expect("save");
    let mut bytes = fs::read(&report.path).expect("read");
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    fs::write(&report.path, &bytes).expect("write");
    let reason = load_expecting_corrupt(&store);
    assert_eq!(reason, CorruptReason::Version { found: 2 });
    assert!(reason.to_string().contains("version 2 is not supported"));
}

#[test]
fn intact_file_of_another_type_is_rejected_as_undecodable() {
    let (_dir, store) = build_store();
    store.save(&"just a string").expect("save");
    let reason = load_expecting_corrupt(&store);
    assert!(matches!(reason, CorruptReason::Decode(_)), "{reason:?}");
}

#[test]
fn unusable_dir_error_names_the_path() {
    let dir = tempfile::tempdir().expect("create temp dir");
    let file = dir.path().join("a-file");
    fs::write(&file, b"x").expect("write");
    let state = file.join("state");
    let err = Store::open(&state).expect_err("a file cannot hold a directory");
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains(&*state.to_string_lossy()), "{err}");
}

#[cfg(unix)]
#[test]
fn read_only_dir_is_not_writable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("create temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555)).expect("chmod");
    let result = Store::open(dir.path());
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod back");
    match result {
        Err(err @ StoreError::NotWritable { .. }) => {
            assert!(err.to_string().contains(&*dir.path().to_string_lossy()), "{err}");
        }
        // Root (CAP_DAC_OVERRIDE) writes through mode bits; nothing to check then.
        Ok(_) => eprintln!("running with CAP_DAC_OVERRIDE; permission check skipped"),
        Err(other) => panic!("expected NotWritable, got {other:?}"),
    }
}

#[test]
fn bincode_is_much_smaller_than_json_for_float_histories() {
    let snap = build_snapshot(1, 10_000);
    let bin = codec().serialize(&snap).expect("bincode");
    let json = serde_json::to_vec(&snap).expect("json");
    // 10k f64 at 8 bytes each, plus a little framing.
    assert!(bin.len() < 10_000 * 8 + 2_000, "bincode {}", bin.len());
    assert!(
        json.len() > 2 * bin.len(),
        "json {} vs bincode {}",
        json.len(),
        bin.len()
    );
}

proptest! {
    #[test]
    fn load_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let (_dir, store) = build_store();
        fs::write(store.snapshot_path(), &bytes).expect("write");
        match store.load::<FakeSnapshot>() {
            Ok(_) | Err(StoreError::Corrupt { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn valid_header_with_random_payload_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        // Passes every header check, so this exercises the bounded decoder itself.
        let (_dir, store) = build_store();
        fs::write(store.snapshot_path(), encode_file(&payload)).expect("write");
        match store.load::<FakeSnapshot>() {
            Ok(_) | Err(StoreError::Corrupt { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }
}

/// The real snapshot type through the real codec: catches serde attributes that
/// bincode cannot decode (`flatten`, `untagged`, `skip_serializing_if`, ...).
#[test]
fn detector_snapshot_survives_save_and_load() {
    use crate::config::Config;
    use crate::detector::{Detector, DetectorSnapshot};
    use crate::reading::SensorId;

    let config = || {
        let text = "[window]\nsize = 8\n[model]\nhidden = [6]\nlatent = 2\nepochs = 5\n\
             [training]\nmin_windows = 64\nretrain_every = 0\nbuffer = 256\n\
             [threshold]\nwindow = 200\nmin_scores = 20\nquantile = 0.99\n";
        Config::from_toml_str(text)
            .expect("test config is valid")
            .detector
    };
    let reading = |i: usize| {
        let x = (i as f64 * 0.3).sin();
        [x, 2.0 * x + 5.0]
    };
    let names = || vec!["temp".to_owned(), "vib".to_owned()];
    let id = SensorId::new("s1");
    let mut original = Detector::new(config(), 10);
    for i in 0..300 {
        original
            .process_inline(&id, i as f64, &reading(i), names)
            .expect("valid reading");
    }

    let (_dir, store) = build_store();
    store.save(&original.snapshot()).expect("save");
    let loaded: DetectorSnapshot = store.load().expect("load").expect("present");
    let mut restored = Detector::new(config(), 10);
    assert_eq!(restored.restore(loaded), 1);

    let last_score = |d: &mut Detector| {
        (300..340)
            .filter_map(|i| {
                d.process_inline(&id, i as f64, &reading(i), names)
                    .expect("valid")
                    .scored
            })
            .last()
            .expect("scored once the window refilled")
    };
    let (a, b) = (last_score(&mut original), last_score(&mut restored));
    assert_eq!(a.scores, b.scores);
    assert_eq!(a.threshold, b.threshold);
}

#[test]
fn an_unreadable_snapshot_is_moved_aside_and_survives_the_next_save() {
    // A directory where the snapshot should be: reading fails with EISDIR (the same
    // path as EACCES, which root cannot provoke).
    let (dir, store) = build_store();
    fs::create_dir(store.snapshot_path()).expect("mkdir in place of the snapshot");
    fs::write(store.snapshot_path().join("evidence"), b"keep me").expect("write");
    let err = store
        .load::<FakeSnapshot>()
        .expect_err("a directory does not load");
    let StoreError::Unreadable { moved_to, .. } = err else {
        panic!("expected Unreadable, got {err:?}");
    };
    let moved_to = moved_to.expect("moved aside");
    assert!(moved_to.join("evidence").exists(), "the original was not kept");
    assert!(
        moved_to
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("snapshot.bin.unreadable-")),
        "{moved_to:?}"
    );
    store
        .save(&build_snapshot(1, 3))
        .expect("save after setting aside");
    assert!(moved_to.join("evidence").exists(), "the next save destroyed it");
    assert_eq!(file_names(dir.path()).len(), 2);
}
