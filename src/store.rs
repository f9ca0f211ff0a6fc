//! Snapshots on disk: one versioned, checksummed file per state directory.
//!
//! The detector hands a serialisable snapshot of its state to [`Store::save`] (at
//! shutdown and on a timer) and asks [`Store::load`] for it at startup; the store never
//! looks inside the value, so it does not depend on the detector's types. A save
//! writes `snapshot.tmp`, fsyncs it, renames it over `snapshot.bin` and fsyncs the
//! directory, so a crash or power cut leaves either the old snapshot or the new one,
//! never a torn file.
//!
//! On-disk layout (all integers little-endian):
//!
//! ```text
//! offset  size  field
//!      0     8  magic b"ANOMALYD"
//!      8     4  format version (u32, currently 1)
//!     12     8  payload length in bytes (u64)
//!     20     4  crc32 (IEEE) of the payload (u32)
//!     24     n  payload: bincode 1.3 (DefaultOptions: varint lengths, little-endian)
//! ```
//!
//! Why bincode: the bulk of a snapshot is f64 (threshold histories of up to 10,000
//! scores per sensor, model weights), which bincode writes as 8 raw bytes and decodes
//! with no parsing. Measured on 10,000-score histories: 96 KB per sensor against
//! 248 KB as JSON (2.6x); 200 such sensors save (encode, write, fsync, rename) in
//! about 60 ms and load in about 50 ms. JSON would also need care to keep every f64
//! bit-exact. The price is that the payload is not self-describing, hence the
//! versioned, checksummed header.
//!
//! A file that fails any check is renamed aside to `snapshot.bin.corrupt-<unix secs>`
//! (kept for a post-mortem, out of the way of the next save) and reported as
//! [`StoreError::Corrupt`], which the caller logs and treats as "start fresh".
//!
//! What it does not do: decide when to snapshot, or run off the async runtime. Both
//! calls block on disk IO and encoding, so the daemon calls them from `spawn_blocking`.
//! Saves must not run concurrently against one directory (they share the temp file);
//! the detector is the only writer.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::metrics::names;

/// First eight bytes of every snapshot file.
pub const MAGIC: &[u8; 8] = b"ANOMALYD";
/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the payload: magic, version, length, crc32.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 4;

const SNAPSHOT_FILE: &str = "snapshot.bin";
const TEMP_FILE: &str = "snapshot.tmp";
const PROBE_FILE: &str = ".anomalyd-write-probe";

/// Errors from opening the state directory or saving and loading a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The state directory exists but a probe file could not be written or removed.
    #[error("state directory {path} is not writable: {source}")]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The snapshot value could not be encoded (a serde error in its `Serialize`).
    #[error("cannot encode snapshot for {path}: {source}")]
    Encode {
        /// The file that would have been written.
        path: PathBuf,
        /// The encoder's error.
        source: bincode::Error,
    },
    /// Writing, syncing or renaming a file failed; the previous snapshot is intact.
    #[error("cannot write snapshot {path}: {source}")]
    Write {
        /// The file or directory being written or synced.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The snapshot file exists but could not be read (permissions, IO error).
    #[error("cannot read snapshot {path}: {source}")]
    Read {
        /// The snapshot file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The snapshot could not be read at all (EACCES, EISDIR, EIO); it is moved
    /// aside like a corrupt one, so the next save cannot destroy it.
    #[error("snapshot {path} cannot be read ({source}){}", moved_note(.moved_to))]
    Unreadable {
        /// Where the file was found.
        path: PathBuf,
        /// Where it was moved; `None` if the rename failed too.
        moved_to: Option<PathBuf>,
        /// The OS error.
        source: io::Error,
    },
    /// The snapshot file failed a check and was moved aside; start fresh.
    #[error("snapshot {path} is unusable ({reason}){}", moved_note(.moved_to))]
    Corrupt {
        /// Where the file was found.
        path: PathBuf,
        /// Where it was moved; `None` if the rename failed too (it is then left in
        /// place and overwritten by the next save).
        moved_to: Option<PathBuf>,
        /// Which check failed.
        reason: CorruptReason,
    },
}

fn moved_note(moved_to: &Option<PathBuf>) -> String {
    match moved_to {
        Some(p) => format!(", moved aside to {}", p.display()),
        None => ", could not move it aside".to_owned(),
    }
}

/// Why a snapshot file was rejected, in the order the checks run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptReason {
    /// Shorter than the header.
    #[error("file is {len} bytes, shorter than the {HEADER_LEN}-byte header")]
    TooShort {
        /// File length in bytes.
        len: usize,
    },
    /// The first eight bytes are not [`MAGIC`]: not an anomalyd snapshot.
    #[error("magic is {found:?}, expected \"ANOMALYD\": not an anomalyd snapshot")]
    Magic {
        /// The bytes found, lossily decoded.
        found: String,
    },
    /// Written by a newer (or unknown) format version.
    #[error("format version {found} is not supported, this build reads version {FORMAT_VERSION}")]
    Version {
        /// The version in the header.
        found: u32,
    },
    /// The header's payload length disagrees with the file (truncated or padded).
    #[error("header says {header} payload bytes, file holds {actual}")]
    Length {
        /// Length from the header.
        header: u64,
        /// Bytes after the header.
        actual: u64,
    },
    /// The payload's crc32 does not match the header (bit rot, torn write).
    #[error("payload crc32 is {actual:#010x}, header says {expected:#010x}")]
    Checksum {
        /// crc32 from the header.
        expected: u32,
        /// crc32 of the payload as read.
        actual: u32,
    },
    /// Checks passed but the payload does not decode as the requested type (a
    /// snapshot from an incompatible build with the same format version).
    #[error("payload does not decode: {0}")]
    Decode(String),
}

/// What a successful [`Store::save`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveReport {
    /// Final path of the snapshot.
    pub path: PathBuf,
    /// Bytes written, header included.
    pub bytes: u64,
    /// Wall time for encode + write + fsync + rename + directory fsync.
    pub duration: Duration,
}

/// A state directory holding at most one current snapshot.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// One codec for both directions. Varint lengths keep the many small integers
/// (lengths, versions, counters) small; f64s are always 8 bytes either way.
fn codec() -> impl Options {
    bincode::DefaultOptions::new()
}

impl Store {
    /// Opens (creating if missing) the state directory and proves it writable by
    /// writing and removing a probe file. A stale `snapshot.tmp` from a crash during
    /// a save is removed.
    ///
    /// # Errors
    ///
    /// [`StoreError::CreateDir`] or [`StoreError::NotWritable`], naming the directory.
    /// The daemon treats both as fatal at startup, so systemd shows the cause.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let probe = dir.join(PROBE_FILE);
        let not_writable = |source| StoreError::NotWritable {
            path: dir.to_path_buf(),
            source,
        };
        fs::write(&probe, b"probe").map_err(not_writable)?;
        fs::remove_file(&probe).map_err(not_writable)?;
        let store = Self {
            dir: dir.to_path_buf(),
        };
        match fs::remove_file(store.temp_path()) {
            Ok(()) => {
                tracing::info!(path = %store.temp_path().display(), "Removed stale temporary snapshot.")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(path = %store.temp_path().display(), %error, "Cannot remove stale temporary snapshot.")
            }
        }
        Ok(store)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the current snapshot, `<dir>/snapshot.bin`.
    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }

    fn temp_path(&self) -> PathBuf {
        self.dir.join(TEMP_FILE)
    }

    /// Encodes `value` and atomically replaces the snapshot with it. Records
    /// `snapshots_total{result}` and `snapshot_seconds`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Encode`] or [`StoreError::Write`]; the previous snapshot is then
    /// untouched and the temporary file removed.
    pub fn save<T: Serialize>(&self, value: &T) -> Result<SaveReport, StoreError> {
        let started = Instant::now();
        let result = self.save_inner(value, started);
        let label = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(names::SNAPSHOTS, "result" => label).increment(1);
        if let Ok(report) = &result {
            metrics::histogram!(names::SNAPSHOT_SECONDS).record(report.duration.as_secs_f64());
        }
        result
    }

    fn save_inner<T: Serialize>(&self, value: &T, started: Instant) -> Result<SaveReport, StoreError> {
        let path = self.snapshot_path();
        let payload = codec().serialize(value).map_err(|source| StoreError::Encode {
            path: path.clone(),
            source,
        })?;
        let bytes = encode_file(&payload);
        let temp = self.temp_path();
        if let Err(source) = write_synced(&temp, &bytes) {
            // Best effort: a leftover temp file is also removed by the next `open`.
            let _ = fs::remove_file(&temp);
            return Err(StoreError::Write { path: temp, source });
        }
        if let Err(source) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(StoreError::Write { path, source });
        }
        // The rename is only durable once the directory entry is on disk.
        sync_dir(&self.dir).map_err(|source| StoreError::Write {
            path: self.dir.clone(),
            source,
        })?;
        Ok(SaveReport {
            path,
            bytes: bytes.len() as u64,
            duration: started.elapsed(),
        })
    }

    /// Reads and decodes the snapshot: `Ok(None)` if there is none.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] if any check fails (the file is then moved aside and a
    /// warning logged; the caller starts fresh), [`StoreError::Read`] if the file
    /// cannot be read at all.
    pub fn load<T: DeserializeOwned>(&self) -> Result<Option<T>, StoreError> {
        let path = self.snapshot_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                let moved_to = self.move_aside(&path, "unreadable");
                let err = StoreError::Unreadable {
                    path,
                    moved_to,
                    source,
                };
                tracing::warn!(error = %err, "Ignoring unreadable snapshot; starting fresh.");
                return Err(err);
            }
        };
        match decode_file(&bytes) {
            Ok(value) => Ok(Some(value)),
            Err(reason) => {
                let moved_to = self.move_aside(&path, "corrupt");
                Err(self.corrupt(path, moved_to, reason))
            }
        }
    }

    /// Renames the snapshot to `snapshot.bin.<what>-<unix secs>`; `None` if that fails.
    fn move_aside(&self, path: &Path, what: &str) -> Option<PathBuf> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = self.dir.join(format!("{SNAPSHOT_FILE}.{what}-{secs}"));
        match fs::rename(path, &aside) {
            Ok(()) => Some(aside),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "Cannot move the snapshot aside.");
                None
            }
        }
    }

    fn corrupt(&self, path: PathBuf, moved_to: Option<PathBuf>, reason: CorruptReason) -> StoreError {
        let err = StoreError::Corrupt {
            path,
            moved_to,
            reason,
        };
        tracing::warn!(error = %err, "Ignoring unusable snapshot; starting fresh.");
        err
    }
}

/// Header + payload, ready to write.
fn encode_file(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks magic, version, length and checksum, in that order, then decodes.
fn decode_file<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CorruptReason> {
    let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(CorruptReason::TooShort { len: bytes.len() });
    };
    // The `expect`s below cannot fail: `header` is a `[u8; HEADER_LEN]` and
    // HEADER_LEN is exactly 8 + 4 + 8 + 4, so every chunk is in bounds.
    let (magic, rest) = header.split_first_chunk::<8>().expect("header holds magic");
    let (version, rest) = rest.split_first_chunk::<4>().expect("header holds version");
    let (len, crc) = rest.split_first_chunk::<8>().expect("header holds length");
    let crc = crc.first_chunk::<4>().expect("header holds crc");
    if magic != MAGIC {
        return Err(CorruptReason::Magic {
            found: String::from_utf8_lossy(magic).into_owned(),
        });
    }
    let version = u32::from_le_bytes(*version);
    if version != FORMAT_VERSION {
        return Err(CorruptReason::Version { found: version });
    }
    let len = u64::from_le_bytes(*len);
    if len != payload.len() as u64 {
        return Err(CorruptReason::Length {
            header: len,
            actual: payload.len() as u64,
        });
    }
    let expected = u32::from_le_bytes(*crc);
    let actual = crc32fast::hash(payload);
    if expected != actual {
        return Err(CorruptReason::Checksum { expected, actual });
    }
    // The limit stops a decoder bug or a crafted-but-checksummed file from
    // allocating more than the file holds.
    codec()
        .with_limit(payload.len() as u64)
        .deserialize(payload)
        .map_err(|e| CorruptReason::Decode(e.to_string()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Directories cannot be opened for syncing on Windows; the rename is atomic
    // there but its durability is up to the filesystem.
    Ok(())
}

pub mod versions;

#[cfg(test)]
mod tests;
