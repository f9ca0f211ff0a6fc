//! [`TrainingBuffer`]: the bounded buffer of recent training windows, stored compactly
//! as one `f32` value stream with runs of overlapping windows.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::Array2;

/// The newest `capacity` flattened windows, oldest evicted first, stored compactly.
///
/// Consecutive windows at stride `s` share all but `s` readings, so a window that
/// continues the newest one (its first `width − step` values equal the newest window's
/// last ones once stored) adds only its `step` new values to one value stream; any
/// other window (after a gap, a skipped flagged window, or a per-window transform) adds
/// all `width`. Every window is a contiguous slice of the stream, and consecutive
/// windows are kept as runs (first start, count), not one start each. Values are stored
/// as `f32` (a model trains in `f64` on their widened values: the relative rounding of
/// 2⁻²⁴ is far below any sensor's noise; the replay golden test shows no decision
/// moves). For the default 5,000 windows of 32 readings × 4 channels this holds ~20,000
/// values (80 KB) instead of 640,000 `f64` (5 MB), with the same windows.
#[derive(Clone, Debug)]
pub struct TrainingBuffer {
    /// Values; `stream[i]` has absolute position `base + i`.
    stream: Vec<f32>,
    base: u64,
    /// Runs of windows `step` values apart, oldest first: (absolute position of the
    /// run's first value, windows in the run).
    runs: VecDeque<(u64, usize)>,
    /// Windows held.
    len: usize,
    width: usize,
    /// Values between consecutive windows (stride × channels).
    step: usize,
    capacity: usize,
    /// Which stream this is (see [`Stamp`]): new for a new or cleared buffer, shared
    /// by clones.
    id: u64,
    /// Windows ever pushed into this stream.
    pushes: u64,
}

/// Which state of which buffer a clone holds: a training job's windows are a clone, and
/// the buffer goes on taking windows while the job trains, so what the job computed
/// for its windows can be matched to the windows the buffer still holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    id: u64,
    pushes: u64,
}

/// Source of buffer ids, unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

impl TrainingBuffer {
    /// A buffer for `capacity` windows of `width` values, consecutive windows being
    /// `step` values apart (stride × channels).
    pub fn new(capacity: usize, width: usize, step: usize) -> Self {
        Self {
            stream: Vec::new(),
            base: 0,
            runs: VecDeque::new(),
            len: 0,
            width,
            step: step.max(1),
            capacity: capacity.max(1),
            id: next_id(),
            pushes: 0,
        }
    }

    /// This state of this buffer.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            id: self.id,
            pushes: self.pushes,
        }
    }

    /// Windows pushed since the buffer was in state `earlier`; `None` if it never was
    /// (another buffer, or this one cleared since).
    pub fn pushed_since(&self, earlier: Stamp) -> Option<u64> {
        (earlier.id == self.id).then_some(())?;
        self.pushes.checked_sub(earlier.pushes)
    }

    /// Forgets every window and frees their memory (an alert's hold-back is cleared
    /// when it ends and may stay empty for days).
    pub fn clear(&mut self) {
        self.base += self.stream.len() as u64;
        self.stream = Vec::new();
        self.runs = VecDeque::new();
        self.len = 0;
        self.id = next_id();
        self.pushes = 0;
    }

    /// Windows held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Values stored, for footprint checks: about `(len + width/step) × step` for an
    /// unbroken run of windows.
    pub fn stored_values(&self) -> usize {
        self.stream.len()
    }

    /// Heap bytes of a full buffer of unbroken runs (the memory estimate): the stream
    /// with its compaction slack of 1/8, and a few runs.
    pub fn footprint(capacity: usize, width: usize, step: usize) -> usize {
        4 * Self::target(capacity, width, step) + 64 * 16
    }

    /// Values a full buffer of sliding windows holds: one run, the compaction slack
    /// and room for [`BREAKS`] windows that did not continue the one before (a skipped
    /// window over the threshold starts a new run with all its `width` values).
    fn target(capacity: usize, width: usize, step: usize) -> usize {
        let live = capacity * step.max(1) + width;
        live + live / COMPACT_SLACK + BREAKS * width
    }

    /// Adds a window, evicting the oldest when full.
    ///
    /// # Panics
    ///
    /// If `window` is not `width` long (a programming error).
    pub fn push(&mut self, window: &[f64]) {
        assert_eq!(window.len(), self.width, "training window width");
        let end = self.base + self.stream.len() as u64;
        let shared = self.width.saturating_sub(self.step);
        // Every window ends where the stream ends, so the newest window's tail is the
        // stream's tail (and the stream holds at least `width` values when non-empty).
        let continues = shared > 0
            && self.len > 0
            && self.stream[self.stream.len() - shared..]
                .iter()
                .zip(&window[..shared])
                .all(|(a, &b)| a.to_bits() == (b as f32).to_bits());
        let (start, new) = if continues {
            (end - shared as u64, &window[shared..])
        } else {
            (end, window)
        };
        self.reserve(new.len());
        self.stream.extend(new.iter().map(|&v| v as f32));
        match self.runs.back_mut() {
            Some((first, count)) if *first + (*count * self.step) as u64 == start => *count += 1,
            _ => self.runs.push_back((start, 1)),
        }
        self.len += 1;
        self.pushes += 1;
        if self.len > self.capacity {
            self.evict_oldest();
            self.compact();
        }
    }

    /// Grows the stream by doubling while it is small (an alert's hold-back rarely
    /// fills), then at once to what a full buffer of unbroken runs needs, so that
    /// doubling never leaves it twice that.
    fn reserve(&mut self, more: usize) {
        let need = self.stream.len() + more;
        if need <= self.stream.capacity() {
            return;
        }
        let target = Self::target(self.capacity, self.width, self.step);
        let doubled = (2 * self.stream.capacity()).max(need).max(64);
        // Past the target (more breaks than it has room for), grow by as much room
        // again, not by doubling.
        let to = if need > target {
            need + BREAKS * self.width
        } else if doubled * 2 >= target {
            target
        } else {
            doubled
        };
        self.stream.reserve_exact(to - self.stream.len());
    }

    fn evict_oldest(&mut self) {
        if let Some((first, count)) = self.runs.front_mut() {
            *first += self.step as u64;
            *count -= 1;
            if *count == 0 {
                self.runs.pop_front();
            }
            self.len -= 1;
        }
    }

    /// Drops values no window needs any more once they are 1/8 of the stream, so the
    /// cost is amortised O(1) per window and the slack stays small.
    fn compact(&mut self) {
        let Some(&(first, _)) = self.runs.front() else {
            return;
        };
        let unused = (first - self.base) as usize;
        if unused > 0 && unused * COMPACT_SLACK >= self.stream.len() {
            self.stream.drain(..unused);
            self.base = first;
        }
    }

    /// Absolute start of every window, oldest first.
    fn starts(&self) -> impl Iterator<Item = u64> + Clone + '_ {
        let step = self.step as u64;
        (self.runs.iter()).flat_map(move |&(first, count)| (0..count as u64).map(move |i| first + i * step))
    }

    /// The stored values of the window starting at absolute position `start`.
    fn slice(&self, start: u64) -> &[f32] {
        let at = (start - self.base) as usize;
        &self.stream[at..at + self.width]
    }

    /// The newest `n` windows (fewer if fewer are held), oldest of them first, widened
    /// to `f64`.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = Vec<f64>> + '_ {
        let n = n.min(self.len);
        let widen = |w: &[f32]| w.iter().map(|&v| f64::from(v)).collect();
        self.windows().skip(self.len - n).map(widen)
    }

    /// The stored readings (`channels` values each), oldest first, each with the number
    /// of held windows that contain it (0 for the few no window needs any more): the
    /// windows' values without their repetition, for statistics over the windows at
    /// 1/`size` of the work.
    ///
    /// # Panics
    ///
    /// If `channels` does not divide the window width and step (a programming error).
    pub fn counted_readings(&self, channels: usize) -> impl Iterator<Item = (&[f32], u32)> + Clone + '_ {
        assert!(
            channels > 0 && self.width % channels == 0 && self.step % channels == 0,
            "bad channel count"
        );
        // Every run starts at a multiple of the step or width from the stream's first
        // value, so readings are `channels`-aligned. +1 where a window starts, −1 past
        // its end, summed.
        let (width, step) = (self.width / channels, self.step / channels);
        let mut delta = vec![0i64; self.stream.len() / channels + 1];
        for &(first, count) in &self.runs {
            let first = (first - self.base) as usize / channels;
            for start in (first..).step_by(step).take(count) {
                delta[start] += 1;
                delta[start + width] -= 1;
            }
        }
        let mut covering = 0i64;
        let counts = delta.into_iter().map(move |d| {
            covering += d;
            u32::try_from(covering).expect("a reading's window count fits u32")
        });
        self.stream.chunks_exact(channels).zip(counts.collect::<Vec<_>>())
    }

    /// Values per window.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Every window, oldest first, as stored (`f32`), without copying.
    pub fn windows(&self) -> impl Iterator<Item = &[f32]> + Clone + '_ {
        self.starts().map(|start| self.slice(start))
    }

    /// The windows at `indices` (ascending, oldest = 0), widened to `f64` and each
    /// passed through `map(raw, out)`, as `indices.len() × width`: a trainer lays out
    /// only the windows it fits on, normalised on the way.
    ///
    /// # Panics
    ///
    /// If `indices` is not ascending or holds an index past the newest window.
    pub fn select(&self, indices: &[usize], mut map: impl FnMut(&[f64], &mut [f64])) -> Array2<f64> {
        assert!(indices.windows(2).all(|p| p[0] < p[1]), "indices ascend");
        assert!(
            indices.last().is_none_or(|&i| i < self.len),
            "index past the newest window"
        );
        let mut out = Array2::zeros((indices.len(), self.width));
        let mut raw = vec![0.0; self.width];
        let mut wanted = indices.iter().peekable();
        let mut rows = out.rows_mut().into_iter();
        for (i, window) in self.windows().enumerate() {
            if wanted.next_if_eq(&&i).is_none() {
                continue;
            }
            raw.iter_mut().zip(window).for_each(|(r, &v)| *r = f64::from(v));
            let mut row = rows.next().expect("one row per index");
            map(&raw, row.as_slice_mut().expect("owned rows are contiguous"));
        }
        out
    }

    /// The windows, oldest first, as `len × width` (the tests' view of what is stored).
    #[cfg(test)]
    fn to_array(&self) -> Array2<f64> {
        let all: Vec<usize> = (0..self.len).collect();
        self.select(&all, |raw, out| out.copy_from_slice(raw))
    }
}

/// The stream is compacted once unused values are 1/`COMPACT_SLACK` of it.
const COMPACT_SLACK: usize = 8;
/// Broken runs a full buffer has room for before its stream grows again.
const BREAKS: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_keeps_the_newest_windows_in_order() {
        let mut b = TrainingBuffer::new(3, 2, 2);
        for i in 0..5 {
            b.push(&[i as f64, -(i as f64)]);
        }
        let a = b.to_array();
        assert_eq!(a.column(0).to_vec(), vec![2.0, 3.0, 4.0]);
        assert_eq!(b.len(), 3);
        let newest: Vec<f64> = b.newest(2).map(|w| w[0]).collect();
        assert_eq!(newest, vec![3.0, 4.0]);
        assert_eq!(b.newest(10).count(), 3);
    }

    /// Windows of `size` readings × 2 channels sliding by `stride` over a ramp, with a
    /// break (a jump) every 37 readings so some windows do not continue the previous.
    fn sliding(n: usize, size: usize, stride: usize) -> Vec<Vec<f64>> {
        let reading = |t: usize| [t as f64 + (t / 37) as f64 * 1000.0, -(t as f64)];
        (0..n)
            .map(|w| (w * stride..w * stride + size).flat_map(reading).collect())
            .collect()
    }

    #[test]
    fn compact_buffer_returns_exactly_the_windows_pushed() {
        for (size, stride) in [(8, 1), (8, 3), (4, 4), (3, 5)] {
            let windows = sliding(200, size, stride);
            let mut b = TrainingBuffer::new(50, size * 2, stride * 2);
            for (i, w) in windows.iter().enumerate() {
                // Skip some, as skip_flagged does, to break the chain now and then.
                if i % 23 != 5 {
                    b.push(w);
                }
            }
            let kept: Vec<&Vec<f64>> = windows
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 23 != 5)
                .map(|(_, w)| w)
                .collect();
            let want = &kept[kept.len() - 50..];
            let got = b.to_array();
            for (row, w) in got.rows().into_iter().zip(want) {
                assert_eq!(row.to_vec(), **w, "size {size} stride {stride}");
            }
            let newest: Vec<Vec<f64>> = b.newest(7).collect();
            assert_eq!(
                newest,
                want[43..].iter().map(|w| (*w).clone()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn sliding_windows_are_stored_once_per_reading() {
        let (size, channels, capacity) = (32, 3, 3000);
        let mut b = TrainingBuffer::new(capacity, size * channels, channels);
        let mut window: Vec<f64> = (0..size * channels).map(|i| i as f64).collect();
        for t in 0..10_000 {
            b.push(&window);
            window.drain(..channels);
            window.extend((0..channels).map(|c| (size * channels + t * channels + c) as f64));
        }
        assert_eq!(b.len(), capacity);
        // At most twice the live span (compaction is lazy), far below capacity × width.
        let live = (capacity + size) * channels;
        assert!(b.stored_values() <= 2 * live, "{} values", b.stored_values());
        assert!(b.stored_values() * 10 < capacity * size * channels);
    }

    #[test]
    fn windows_come_back_as_their_f32_values_and_the_buffer_stays_within_its_footprint() {
        let (size, channels, capacity) = (32, 4, 500);
        let (width, step) = (size * channels, channels);
        let mut b = TrainingBuffer::new(capacity, width, step);
        let reading = |t: usize| (0..channels).map(move |c| ((t * 7 + c) as f64 * 0.37).sin() / 3.0);
        let window = |w: usize| (w..w + size).flat_map(reading).collect::<Vec<f64>>();
        for w in 0..3 * capacity {
            b.push(&window(w));
        }
        let got = b.to_array();
        for (row, w) in got.rows().into_iter().zip(2 * capacity..) {
            let want: Vec<f64> = window(w).iter().map(|&v| f64::from(v as f32)).collect();
            assert_eq!(row.to_vec(), want);
        }
        // One run of sliding windows: each reading stored once, plus the compaction slack.
        assert_eq!(b.runs.len(), 1);
        assert!(b.stored_values() <= (capacity * step + width) * 9 / 8 + step);
        // A few windows that break the run (skipped ones) fit the room reserved.
        let reserved = b.stream.capacity();
        for w in (3 * capacity..4 * capacity).step_by(capacity / 4) {
            b.push(&window(w));
        }
        assert_eq!(b.stream.capacity(), reserved, "no reallocation for 4 breaks");
        assert!(4 * b.stream.capacity() <= TrainingBuffer::footprint(capacity, width, step));
    }

    #[test]
    fn counted_readings_hold_each_windowed_value_as_often_as_the_windows_do() {
        // Sliding windows at stride 2 with breaks (every 7th window skipped), evictions
        // and a cleared start: per channel, the counted readings give the windows'
        // value counts and sums exactly (the values are small integers).
        let (size, channels, stride, capacity) = (5, 2, 2, 40);
        let (width, step) = (size * channels, stride * channels);
        let mut b = TrainingBuffer::new(capacity, width, step);
        let window = |w: usize| {
            let reading = |t: usize| (0..channels).map(move |c| ((t * 3 + c * 5) % 17) as f64);
            (w * stride..w * stride + size)
                .flat_map(reading)
                .collect::<Vec<f64>>()
        };
        b.push(&window(1000));
        b.clear();
        for w in (0..150).filter(|w| w % 7 != 3) {
            b.push(&window(w));
        }
        assert!(b.runs.len() > 1 && b.len() == capacity);
        let mut want = vec![(0u32, 0.0); channels];
        for win in b.windows() {
            for (i, &v) in win.iter().enumerate() {
                want[i % channels].0 += 1;
                want[i % channels].1 += f64::from(v);
            }
        }
        let mut got = vec![(0u32, 0.0); channels];
        for (reading, count) in b.counted_readings(channels) {
            for (g, &v) in got.iter_mut().zip(reading) {
                g.0 += count;
                g.1 += f64::from(count) * f64::from(v);
            }
        }
        assert_eq!(got, want);
        assert_eq!(want[0].0 as usize, capacity * size);
    }

    #[test]
    fn a_small_or_cleared_buffer_holds_little_memory() {
        let (width, step) = (128, 4);
        let mut b = TrainingBuffer::new(5000, width, step);
        let window: Vec<f64> = (0..width).map(|i| i as f64).collect();
        for _ in 0..3 {
            b.push(&window);
        }
        assert!(b.stream.capacity() <= 1024, "{}", b.stream.capacity());
        b.clear();
        assert_eq!(b.stream.capacity(), 0);
    }

    #[test]
    fn buffer_below_capacity_starts_at_the_first_window() {
        let mut b = TrainingBuffer::new(4, 1, 1);
        b.push(&[7.0]);
        b.push(&[8.0]);
        assert_eq!(b.to_array().column(0).to_vec(), vec![7.0, 8.0]);
    }
}
