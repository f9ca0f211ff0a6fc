//! The one CSV reader and the one timestamp parser of offline work: `replay` input,
//! `plot` input (replay output), NAB corpus and score files, SKAB files all go through
//! [`Table`] and [`parse_timestamp`], so a file one command writes another reads.
//!
//! A [`Table`] is a CSV with a header: comma or semicolon separated (whichever the header
//! has more of), CRLF or LF, blank rows skipped, names trimmed. Its typed column readers
//! ([`Table::times`], [`Table::numbers`]) and [`Table::series`] name the file, the line
//! and the column of every bad cell.
//!
//! Rows keep file order even where timestamps go backwards (real recordings have DST
//! repeats: NAB's machine_temperature file repeats an hour); [`crate::eval::replay`]
//! decides what to do with them.

mod table;
mod timestamp;

pub use table::{EmptyCell, Table};
pub use timestamp::parse_timestamp;

use std::path::{Path, PathBuf};

/// A CSV problem, located.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file has no header or no data rows.
    #[error("{path}: {what}")]
    Empty {
        /// The file.
        path: PathBuf,
        /// What is missing.
        what: &'static str,
    },
    /// A requested column is not in the header.
    #[error("{path}: no column named {column:?} (header has {header:?})")]
    UnknownColumn {
        /// The file.
        path: PathBuf,
        /// The missing name.
        column: String,
        /// The header's names.
        header: Vec<String>,
    },
    /// A cell is wrong.
    #[error("{path}:{line}: column {column:?}: {message}")]
    Cell {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Column name.
        column: String,
        /// What is wrong, with the value.
        message: String,
    },
}

/// A multichannel series read from CSV.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Name of the time column.
    pub time_column: String,
    /// Channel names, in output order.
    pub channels: Vec<String>,
    /// Timestamps exactly as written, for output.
    pub time_text: Texts,
    /// Timestamps as unix seconds.
    pub ts: Vec<f64>,
    /// `rows × channels`, row-major.
    pub values: Vec<f64>,
}

impl Series {
    /// Rows.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// One row's channel values.
    pub fn row(&self, i: usize) -> &[f64] {
        let c = self.channels.len();
        &self.values[i * c..(i + 1) * c]
    }
}

/// Short strings kept in one buffer, in order: a table's cells, a time column as
/// written, with one allocation instead of one a string (a replay of 365,000 rows spent
/// 4 % of its time allocating and freeing its time texts).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Texts {
    text: String,
    /// Where each string ends in `text` (one starts where the one before it ends).
    ends: Vec<usize>,
}

impl Texts {
    /// Empty, with room for `count` strings of `bytes` in all.
    pub fn with_capacity(bytes: usize, count: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(count),
        }
    }

    /// String `i`.
    ///
    /// # Panics
    ///
    /// If `i` is not below [`Self::len`].
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    /// Strings held.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Appends `s`.
    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len());
    }
}

impl<S: AsRef<str>> FromIterator<S> for Texts {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut texts = Texts::default();
        for s in iter {
            texts.push(s.as_ref());
        }
        texts
    }
}

/// Reads `path` as a [`Series`] (see [`Table::series`] for the defaults).
///
/// # Errors
///
/// A [`SeriesError`] naming the file, line and column of the first bad cell.
pub fn read_series(
    path: &Path,
    time_column: Option<&str>,
    columns: Option<&[String]>,
) -> Result<Series, SeriesError> {
    Table::read(path)?.series(time_column, columns)
}

#[cfg(test)]
mod tests;
