//! Model version numbers that never repeat, even across a crash.
//!
//! A snapshot is written every `snapshot_every_secs` at best, so after a kill -9 the
//! newest model versions handed out (and published in alerts and retained state) are
//! newer than the snapshot's. Resuming from the snapshot's versions would hand the same
//! numbers to new models. Instead the daemon draws every version from one counter per
//! state directory whose *floor* is persisted ahead of use: before a version at or
//! above the persisted floor is handed out, the floor is raised by [`BLOCK`] and the
//! file fsynced. Every version ever handed out is below the floor on disk, so a
//! restart that starts counting at the floor is always ahead of them. One write per
//! [`BLOCK`] models keeps the cost negligible; a crash skips at most [`BLOCK`] numbers.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{StoreError, sync_dir, write_synced};

/// File of the persisted floor in the state directory: one decimal number.
pub const FLOOR_FILE: &str = "model-version-floor";
const FLOOR_TEMP: &str = "model-version-floor.tmp";

/// Versions reserved per write of the floor.
pub const BLOCK: u64 = 64;

/// The counter; owned by the detector task (single writer).
#[derive(Debug)]
pub struct VersionFloor {
    dir: PathBuf,
    /// The next version to hand out.
    next: u64,
    /// The floor on disk: every version handed out is below it.
    persisted: u64,
}

impl VersionFloor {
    /// Reads the floor in `dir` (none yet: 1) and starts at it, or at `at_least` when
    /// that is higher (a state directory from a build without the floor: the newest
    /// version in its snapshot plus one).
    ///
    /// # Errors
    ///
    /// [`StoreError::Read`] if the file exists but cannot be read or does not hold a
    /// number: starting anyway could reuse versions, so the daemon refuses to start.
    pub fn open(dir: &Path, at_least: u64) -> Result<Self, StoreError> {
        let path = dir.join(FLOOR_FILE);
        let persisted = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|e| StoreError::Read {
                path: path.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, format!("not a version number: {e}")),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            next: persisted.max(at_least).max(1),
            persisted,
        })
    }

    /// The next version, strictly greater than every version handed out before from
    /// this state directory, in this process or an earlier one.
    ///
    /// # Errors
    ///
    /// [`StoreError::Write`] if the floor cannot be raised on disk; no version is
    /// handed out then (the caller keeps the old model).
    pub fn allocate(&mut self) -> Result<u64, StoreError> {
        if self.next >= self.persisted {
            let floor = self.next + BLOCK;
            self.write(floor)?;
            self.persisted = floor;
        }
        let version = self.next;
        self.next += 1;
        Ok(version)
    }

    fn write(&self, floor: u64) -> Result<(), StoreError> {
        let temp = self.dir.join(FLOOR_TEMP);
        let path = self.dir.join(FLOOR_FILE);
        let write = |path: &Path, source| StoreError::Write {
            path: path.to_path_buf(),
            source,
        };
        write_synced(&temp, format!("{floor}\n").as_bytes()).map_err(|e| write(&temp, e))?;
        fs::rename(&temp, &path).map_err(|e| write(&path, e))?;
        sync_dir(&self.dir).map_err(|e| write(&self.dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_across_restarts_without_a_clean_exit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seen = Vec::new();
        // Each "process" hands out a few versions and then vanishes without saving
        // anything else: the drop is a kill -9.
        for handed in [3, 1, 0, BLOCK + 5, 2] {
            let mut floor = VersionFloor::open(dir.path(), 1).expect("open");
            for _ in 0..handed {
                seen.push(floor.allocate().expect("allocate"));
            }
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(seen[0], 1);
    }

    #[test]
    fn a_snapshot_newer_than_the_floor_raises_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut floor = VersionFloor::open(dir.path(), 500).expect("open");
        assert_eq!(floor.allocate().expect("allocate"), 500);
        let mut again = VersionFloor::open(dir.path(), 1).expect("open");
        assert!(again.allocate().expect("allocate") > 500);
    }

    #[test]
    fn a_garbled_floor_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(FLOOR_FILE), "twelve").expect("write");
        assert!(matches!(
            VersionFloor::open(dir.path(), 1),
            Err(StoreError::Read { .. })
        ));
    }
}
