//! Footprint of many sensors at full state: resident memory, snapshot size and restart
//! time (issue 12 target 2; docs/performance.md "Memory per sensor" quotes it).
//!
//! ```sh
//! cargo run --release --example memory -- [SENSORS] [CHANNELS] [CONFIG]
//! ```
//!
//! Defaults: 1,000 sensors × 4 channels, `config/anomalyd.toml` (its `[training]
//! retrain_every` is switched off so the run takes a minute, not hours; a retrain
//! replaces a model of the same size). Every sensor gets enough synthetic readings
//! (noisy sines, seeded) to fill its window, training buffer, threshold window, score
//! histories and recent range; the first sensor's first model is trained once and a
//! copy installed in every sensor (each holds its own, as in the daemon). Then the
//! detector is snapshotted to a temporary state directory and restored from it, as a
//! restart does. Prints the resident set (`VmRSS`) before and after, per sensor, the
//! detector's own estimate (`limits.max_memory_mb`), the snapshot's size and the time
//! to load and restore it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anomalyd::config::Config;
use anomalyd::detector::Detector;
use anomalyd::model::Model;
use anomalyd::reading::SensorId;
use anomalyd::store::Store;

/// The system allocator, counting the bytes live on the heap: what the detector holds,
/// apart from the allocator's own overhead and fragmentation that the resident set adds.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// xorshift64*: cheap seeded noise in [-0.5, 0.5).
fn noise(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let sensors: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let channels: usize = args.next().map_or(Ok(4), |a| a.parse())?;
    let path = args.next().unwrap_or_else(|| "config/anomalyd.toml".to_owned());
    let mut config = Config::from_toml_str(&std::fs::read_to_string(&path)?)?.detector;
    config.training.retrain_every = None;
    let names: Vec<String> = (0..channels).map(|c| format!("c{c}")).collect();
    let ids: Vec<SensorId> = (0..sensors).map(|s| SensorId::new(&format!("s{s:05}"))).collect();
    // Enough readings to fill every buffer, plus the window and the first model.
    let d = &config;
    let range_rows = match d.score {
        anomalyd::config::ScoreStrategy::Onset(o) => o.range.map_or(0, |r| r.rows.get()).max(o.history.get()),
        anomalyd::config::ScoreStrategy::Ratio => 0,
    };
    let fill = [d.threshold.window, d.training.buffer, range_rows]
        .into_iter()
        .max()
        .unwrap_or(0);
    let readings = fill + d.training.min_windows + d.window.size * d.window.stride + 100;

    let rss_idle = rss_kib();
    let live_idle = LIVE.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut detector = Detector::new(config.clone(), sensors.max(1));
    let mut model: Option<Model> = None;
    let mut rng: Vec<u64> = (0..sensors as u64)
        .map(|s| 0x9e37_79b9_7f4a_7c15 ^ (s + 1))
        .collect();
    let mut values = vec![0.0; channels];
    for t in 0..readings {
        for (s, id) in ids.iter().enumerate() {
            for (c, v) in values.iter_mut().enumerate() {
                let phase = t as f64 * (0.05 + 0.001 * (s % 17) as f64) + c as f64;
                *v = phase.sin() * (1.0 + c as f64) + 0.1 * noise(&mut rng[s]);
            }
            let step = detector.process(id, t as f64, &values, || names.clone())?;
            if let Some(job) = step.train {
                if model.is_none() {
                    model = Some(anomalyd::trainer::train(&job, &config.model)?);
                }
                detector.install(id, model.clone());
            }
        }
    }
    let fill_secs = started.elapsed().as_secs_f64();
    let rss_full = rss_kib();
    let live_full = LIVE.load(Ordering::Relaxed);
    let per_sensor = (rss_full - rss_idle) as f64 * 1024.0 / sensors as f64;
    println!("{sensors} sensors x {channels} channels, {readings} readings each ({fill_secs:.1} s)");
    println!(
        "rss idle {:.1} MiB, full {:.1} MiB",
        rss_idle as f64 / 1024.0,
        rss_full as f64 / 1024.0
    );
    println!(
        "per sensor: {:.1} KiB resident, {:.1} KiB live on the heap, {:.1} KiB estimated (limits.max_memory_mb)",
        per_sensor / 1024.0,
        (live_full - live_idle) as f64 / sensors as f64 / 1024.0,
        detector.memory_bytes() as f64 / sensors as f64 / 1024.0
    );

    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let report = store.save(&detector.snapshot())?;
    println!(
        "snapshot {:.1} KiB per sensor ({} bytes, saved in {:.3} s)",
        report.bytes as f64 / sensors as f64 / 1024.0,
        report.bytes,
        report.duration.as_secs_f64()
    );
    drop(detector);
    let started = Instant::now();
    let snapshot = store
        .load::<anomalyd::detector::DetectorSnapshot>()?
        .ok_or_else(|| anyhow::anyhow!("snapshot missing"))?;
    let mut restored = Detector::new(config, sensors.max(1));
    let n = restored.restore(snapshot);
    println!(
        "restart: {n} sensors loaded and restored in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
