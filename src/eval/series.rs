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

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime};

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
    pub time_text: Vec<String>,
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

/// Parses a timestamp cell, the one place offline code reads time:
///
/// - RFC 3339 (`2014-04-01T00:00:00Z`, `…+02:00`);
/// - `YYYY-MM-DD HH:MM[:SS[.f]]` with a space or a `T`, taken as UTC (NAB, SKAB);
/// - a unix epoch number: seconds, or milliseconds / microseconds / nanoseconds when it
///   is at least 10¹¹, 10¹⁴, 10¹⁷.
///
/// Returns unix seconds.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let t = text.trim();
    if let Some(secs) = parse_plain_datetime(t.as_bytes()) {
        return Some(secs);
    }
    if let Ok(n) = t.parse::<f64>() {
        if !n.is_finite() {
            return None;
        }
        return Some(crate::reading::EpochUnit::Auto.to_secs(n));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros() as f64 / 1e6);
    }
    parse_naive_with_chrono(t)
}

/// `YYYY-MM-DD HH:MM[:SS[.f]]` (space or `T`) as UTC, by chrono: what
/// [`parse_plain_datetime`] must match.
fn parse_naive_with_chrono(t: &str) -> Option<f64> {
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .into_iter()
    .find_map(|fmt| NaiveDateTime::parse_from_str(t, fmt).ok())
    .map(|dt| dt.and_utc().timestamp_micros() as f64 / 1e6)
}

/// The common layout `YYYY-MM-DD HH:MM[:SS[.f]]` (space or `T`, UTC; NAB and SKAB write
/// it) read by hand: chrono's format-string parser was half the time of reading a NAB
/// file. It returns exactly what [`parse_timestamp`]'s chrono path returns for the texts
/// it accepts (whole microseconds, as `timestamp_micros`), and `None` for anything else
/// (other layouts, out-of-range fields, a leap second, more than 9 fraction digits), which
/// then takes the general path.
fn parse_plain_datetime(b: &[u8]) -> Option<f64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let cells = b.get(range)?;
        (cells.iter()).try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let sep = |i: usize, want: &[u8]| b.get(i).is_some_and(|c| want.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b" T") && sep(13, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute) = (digits(11..13)?, digits(14..16)?);
    let (second, nanos) = match b.len() {
        16 => (0, 0),
        19 if sep(16, b":") => (digits(17..19)?, 0),
        21..=29 if sep(16, b":") && sep(19, b".") => {
            let fraction = &b[20..];
            let value = digits(20..b.len())?;
            (digits(17..19)?, value * 10i64.pow(9 - fraction.len() as u32))
        }
        _ => return None,
    };
    // chrono's calendar checks and arithmetic are cheap; its format-string parser is
    // what cost the time.
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        u32::try_from(month).ok()?,
        u32::try_from(day).ok()?,
    )?;
    let nanos = u32::try_from(nanos).ok()?;
    let time = date.and_hms_nano_opt(
        u32::try_from(hour).ok()?,
        u32::try_from(minute).ok()?,
        u32::try_from(second).ok()?,
        nanos,
    )?;
    Some(time.and_utc().timestamp_micros() as f64 / 1e6)
}

/// What an empty cell means to [`Table::numbers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmptyCell {
    /// An error, as every cell must hold a finite number (sensor channels, labels).
    Reject,
    /// A gap, read as NaN (replay output's scores before the first model).
    Gap,
}

/// A CSV file read whole: its header and its non-blank records.
///
/// The cells are kept in one string with their end offsets rather than as a
/// `csv::StringRecord` per row: three allocations a row were a tenth of a replay.
#[derive(Debug)]
pub struct Table {
    path: PathBuf,
    header: Vec<String>,
    /// Every cell's text, one after another, row by row.
    text: String,
    /// Where each cell ends in `text` (a cell starts where the one before it ends).
    ends: Vec<usize>,
    /// The data rows, in file order.
    rows: Vec<Row>,
}

/// A data row of a [`Table`]: its cells are `ends[first..first + len]`.
#[derive(Debug)]
struct Row {
    first: usize,
    len: usize,
    /// 1-based line in the file, for errors.
    line: u64,
}

impl Table {
    /// Reads `path`.
    ///
    /// # Errors
    ///
    /// [`SeriesError::Io`], [`SeriesError::Empty`] for a file without a header or
    /// without data rows, and [`SeriesError::Cell`] for a row the CSV parser rejects.
    pub fn read(path: &Path) -> Result<Table, SeriesError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeriesError::Io {
            path: path.into(),
            source,
        })?;
        let first_line = text.lines().next().ok_or(SeriesError::Empty {
            path: path.into(),
            what: "file is empty",
        })?;
        let delimiter = if first_line.matches(';').count() > first_line.matches(',').count() {
            b';'
        } else {
            b','
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| cell_error(path, 1, "(header)", e.to_string()))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let (text, ends, rows) = read_rows(&mut reader, path, &text, header.len())?;
        if rows.is_empty() {
            return Err(SeriesError::Empty {
                path: path.into(),
                what: "no data rows after the header",
            });
        }
        Ok(Table {
            path: path.into(),
            header,
            text,
            ends,
            rows,
        })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Column names, trimmed.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Data rows (never 0).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Always false: [`Table::read`] refuses a file without data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The index of column `name`, if the header has it.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The index of column `name`.
    ///
    /// # Errors
    ///
    /// [`SeriesError::UnknownColumn`], listing the header.
    pub fn column(&self, name: &str) -> Result<usize, SeriesError> {
        self.position(name).ok_or_else(|| SeriesError::UnknownColumn {
            path: self.path.clone(),
            column: name.into(),
            header: self.header.clone(),
        })
    }

    /// Row `row`'s cell of column `col`, trimmed.
    fn cell(&self, row: usize, col: usize) -> Result<&str, SeriesError> {
        let r = &self.rows[row];
        if col >= r.len {
            let message = format!("row has {} cells, the header {}", r.len, self.header.len());
            return Err(self.error(row, col, message));
        }
        let i = r.first + col;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Ok(self.text[start..self.ends[i]].trim())
    }

    fn error(&self, row: usize, col: usize, message: String) -> SeriesError {
        cell_error(&self.path, self.rows[row].line, &self.header[col], message)
    }

    /// Column `col` as text, trimmed.
    ///
    /// # Errors
    ///
    /// [`SeriesError::Cell`] for a short row.
    pub fn texts(&self, col: usize) -> Result<Vec<String>, SeriesError> {
        (0..self.len())
            .map(|r| Ok(self.cell(r, col)?.to_string()))
            .collect()
    }

    /// Column `col` through [`parse_timestamp`], as unix seconds.
    ///
    /// # Errors
    ///
    /// [`SeriesError::Cell`] for a short row or a cell that is not a timestamp.
    pub fn times(&self, col: usize) -> Result<Vec<f64>, SeriesError> {
        (0..self.len())
            .map(|r| {
                let text = self.cell(r, col)?;
                parse_timestamp(text).ok_or_else(|| self.error(r, col, format!("not a timestamp: {text:?}")))
            })
            .collect()
    }

    /// Column `col` as finite numbers; `empty` says what an empty cell means.
    ///
    /// # Errors
    ///
    /// [`SeriesError::Cell`] for a short row, a cell that is not a number, NaN or ±∞,
    /// or an empty cell under [`EmptyCell::Reject`].
    pub fn numbers(&self, col: usize, empty: EmptyCell) -> Result<Vec<f64>, SeriesError> {
        (0..self.len())
            .map(|r| {
                let text = self.cell(r, col)?;
                if text.is_empty() && empty == EmptyCell::Gap {
                    return Ok(f64::NAN);
                }
                match text.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    Ok(_) => Err(self.error(r, col, format!("not a finite number: {text:?}"))),
                    Err(_) => Err(self.error(r, col, format!("not a number: {text:?}"))),
                }
            })
            .collect()
    }

    /// The table as a [`Series`]: `time_column` (default the first) and the channel
    /// `columns` (default every other column), each cell a finite number.
    ///
    /// # Errors
    ///
    /// [`SeriesError::UnknownColumn`], [`SeriesError::Empty`] without channel columns,
    /// or the first bad cell of a column.
    pub fn series(
        &self,
        time_column: Option<&str>,
        columns: Option<&[String]>,
    ) -> Result<Series, SeriesError> {
        let time_idx = match time_column {
            Some(name) => self.column(name)?,
            None => 0,
        };
        let channel_idx: Vec<usize> = match columns {
            Some(cols) => cols.iter().map(|c| self.column(c)).collect::<Result<_, _>>()?,
            None => (0..self.header.len()).filter(|&i| i != time_idx).collect(),
        };
        if channel_idx.is_empty() {
            return Err(SeriesError::Empty {
                path: self.path.clone(),
                what: "no channel columns besides the time column",
            });
        }
        let ts = self.times(time_idx)?;
        let columns: Vec<Vec<f64>> = channel_idx
            .iter()
            .map(|&c| self.numbers(c, EmptyCell::Reject))
            .collect::<Result<_, _>>()?;
        let values = (0..self.len())
            .flat_map(|r| columns.iter().map(move |c| c[r]))
            .collect();
        Ok(Series {
            time_column: self.header[time_idx].clone(),
            channels: channel_idx.iter().map(|&i| self.header[i].clone()).collect(),
            time_text: self.texts(time_idx)?,
            ts,
            values,
        })
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

/// The non-blank records after the header: their cells one after another in a string,
/// where each cell ends, and the rows (see [`Table`]).
fn read_rows(
    reader: &mut csv::Reader<&[u8]>,
    path: &Path,
    file: &str,
    columns: usize,
) -> Result<(String, Vec<usize>, Vec<Row>), SeriesError> {
    // Sized from the file's lines up front: growing them by doubling copied and
    // page-faulted tens of megabytes for a large file.
    let lines = file.bytes().filter(|&b| b == b'\n').count() + 1;
    let (mut cells, mut ends, mut rows) = (
        String::with_capacity(file.len()),
        Vec::with_capacity(lines * columns),
        Vec::with_capacity(lines),
    );
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(cell_error(path, line, "(row)", e.to_string()));
            }
        }
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let line = record.position().map_or(0, |p| p.line());
        rows.push(Row {
            first: ends.len(),
            len: record.len(),
            line,
        });
        for cell in &record {
            cells.push_str(cell);
            ends.push(cells.len());
        }
    }
    Ok((cells, ends, rows))
}

fn cell_error(path: &Path, line: u64, column: &str, message: String) -> SeriesError {
    SeriesError::Cell {
        path: path.into(),
        line,
        column: column.into(),
        message,
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn build_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_semicolon_crlf_with_spaces_in_names() {
        let f = build_file(
            "datetime;Volume Flow RateRMS;Current\r\n2020-03-09 10:14:33;32.0;1.5\r\n2020-03-09 10:14:34;31.0;1.6\r\n",
        );
        let s = read_series(f.path(), None, None).unwrap();
        assert_eq!(s.channels, vec!["Volume Flow RateRMS", "Current"]);
        assert_eq!(s.row(1), &[31.0, 1.6]);
        assert_eq!(s.ts[1] - s.ts[0], 1.0);
    }

    #[test]
    fn timestamps_in_every_form_agree() {
        let a = parse_timestamp("2013-12-02 21:15:00").unwrap();
        assert_eq!(a, 1_386_018_900.0);
        for (name, text) in [
            ("NAB, fractional", "2013-12-02 21:15:00.000000"),
            ("T, no zone", "2013-12-02T21:15:00"),
            ("no seconds", "2013-12-02 21:15"),
            ("RFC 3339", "2013-12-02T21:15:00Z"),
            ("RFC 3339 offset", "2013-12-02T22:15:00+01:00"),
            ("unix seconds", "1386018900"),
            ("unix ms (Date.now())", "1386018900000"),
            ("unix µs", "1386018900000000"),
            ("unix ns", "1386018900000000000"),
            ("padded", "  2013-12-02 21:15:00 "),
        ] {
            assert_eq!(parse_timestamp(text), Some(a), "{name}: {text}");
        }
        assert_eq!(
            parse_timestamp("2020-03-09 10:14:33.5").map(|t| t.fract()),
            Some(0.5)
        );
        assert_eq!(parse_timestamp("12"), Some(12.0), "small numbers are seconds");
        for bad in ["yesterday", "", "NaN", "inf", "2013-13-02 21:15:00"] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    /// The hand-written reader of `YYYY-MM-DD HH:MM[:SS[.f]]` must agree with chrono
    /// bit for bit wherever it answers, and leave to chrono what it does not.
    #[test]
    fn plain_datetimes_read_by_hand_match_chrono() {
        use rand::{Rng, SeedableRng};
        let chrono_secs = parse_naive_with_chrono;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut answered = 0;
        for _ in 0..200_000 {
            let mut t = format!(
                "{:04}-{:02}-{:02}{}{:02}:{:02}",
                rng.gen_range(1..10_000),
                rng.gen_range(0..14),
                rng.gen_range(0..33),
                if rng.gen_bool(0.5) { ' ' } else { 'T' },
                rng.gen_range(0..25),
                rng.gen_range(0..61),
            );
            if rng.gen_bool(0.8) {
                t += &format!(":{:02}", rng.gen_range(0..61));
                let places = rng.gen_range(0..11);
                if places > 0 {
                    t += &format!(".{}", rng.gen_range(0..10u64.pow(places)));
                }
            }
            if let Some(got) = parse_plain_datetime(t.as_bytes()) {
                answered += 1;
                let want = chrono_secs(&t).unwrap_or_else(|| panic!("chrono rejects {t:?}"));
                assert_eq!(got.to_bits(), want.to_bits(), "{t:?}");
            }
            assert_eq!(
                parse_timestamp(&t).map(f64::to_bits),
                chrono_secs(&t).map(f64::to_bits),
                "{t:?}"
            );
        }
        assert!(
            answered > 100_000,
            "the fast path answers most valid texts: {answered}"
        );
        for (name, text) in [
            ("leap day", "2016-02-29 12:00:00"),
            ("epoch", "1970-01-01 00:00:00.000001"),
            ("before the epoch", "1969-12-31 23:59:59.5"),
        ] {
            let got = parse_plain_datetime(text.as_bytes()).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(Some(got), chrono_secs(text), "{name}");
        }
        for (name, text) in [
            ("not a leap year", "2015-02-29 12:00:00"),
            ("leap second", "2016-12-31 23:59:60"),
            ("offset", "2016-12-31 23:59:59+01:00"),
            ("one-digit month", "2016-1-31 23:59:59"),
            ("ten fraction digits", "2016-01-31 23:59:59.0123456789"),
        ] {
            assert_eq!(parse_plain_datetime(text.as_bytes()), None, "{name}");
        }
    }

    #[test]
    fn table_columns_read_gaps_and_reject_them_by_choice() {
        let f = build_file("t,a,b\n1,,x\n2,3,y\n");
        let t = Table::read(f.path()).unwrap();
        assert_eq!(t.header(), ["t", "a", "b"]);
        assert_eq!(t.times(0).unwrap(), vec![1.0, 2.0]);
        let gap = t.numbers(1, EmptyCell::Gap).unwrap();
        assert!(gap[0].is_nan() && gap[1] == 3.0);
        let err = t.numbers(1, EmptyCell::Reject).unwrap_err().to_string();
        assert!(err.contains(":2: column \"a\": not a number: \"\""), "{err}");
        assert_eq!(t.texts(2).unwrap(), ["x", "y"]);
    }

    #[test]
    fn bad_cells_are_located() {
        let cases = [
            (
                "non-numeric",
                "t,v\n1,2\n2,abc\n",
                ":3: column \"v\": not a number: \"abc\"",
            ),
            (
                "short row",
                "t,v,w\n1,2,3\n2,4\n",
                ":3: column \"w\": row has 2 cells",
            ),
            ("nan", "t,v\n1,NaN\n", ":2: column \"v\": not a finite number"),
            ("bad time", "t,v\nnoon,1\n", ":2: column \"t\": not a timestamp"),
            ("empty", "", "file is empty"),
            ("header only", "t,v\n", "no data rows"),
        ];
        for (name, text, want) in cases {
            let f = build_file(text);
            let err = read_series(f.path(), None, None).unwrap_err().to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn unknown_column_lists_the_header() {
        let f = build_file("t,v\n1,2\n");
        let err = read_series(f.path(), None, Some(&["w".to_string()]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no column named \"w\"") && err.contains("\"v\""),
            "{err}"
        );
    }
}
