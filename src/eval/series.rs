//! Reading a telemetry CSV into a [`Series`]: header, comma or semicolon, CRLF or LF,
//! a time column (RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]`, or unix seconds) and numeric
//! channel columns. Every error names the file, the line and the column.
//!
//! Rows keep file order even where timestamps go backwards (real recordings have DST
//! repeats: NAB's machine_temperature file repeats an hour); [`crate::eval::replay`]
//! decides what to do with them.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime};

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

/// Parses a timestamp cell: RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` (taken as UTC), or
/// unix seconds.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return secs.is_finite().then_some(secs);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros() as f64 / 1e6);
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(dt.and_utc().timestamp_micros() as f64 / 1e6);
        }
    }
    None
}

/// Reads `path`. `time_column` defaults to the first column; `columns` defaults to
/// every other column.
///
/// # Errors
///
/// A [`SeriesError`] naming the file, line and column of the first bad cell.
pub fn read_series(
    path: &Path,
    time_column: Option<&str>,
    columns: Option<&[String]>,
) -> Result<Series, SeriesError> {
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
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| SeriesError::UnknownColumn {
                path: path.into(),
                column: name.into(),
                header: header.clone(),
            })
    };
    let time_idx = match time_column {
        Some(name) => find(name)?,
        None => 0,
    };
    let channel_idx: Vec<usize> = match columns {
        Some(cols) => cols.iter().map(|c| find(c)).collect::<Result<_, _>>()?,
        None => (0..header.len()).filter(|&i| i != time_idx).collect(),
    };
    if channel_idx.is_empty() {
        return Err(SeriesError::Empty {
            path: path.into(),
            what: "no channel columns besides the time column",
        });
    }
    let mut series = Series {
        time_column: header[time_idx].clone(),
        channels: channel_idx.iter().map(|&i| header[i].clone()).collect(),
        time_text: Vec::new(),
        ts: Vec::new(),
        values: Vec::new(),
    };
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            cell_error(path, line, "(row)", e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let cell = |i: usize| {
            record.get(i).ok_or_else(|| {
                cell_error(
                    path,
                    line,
                    &header[i],
                    format!("row has {} cells, the header {}", record.len(), header.len()),
                )
            })
        };
        let time_text = cell(time_idx)?.trim();
        let ts = parse_timestamp(time_text).ok_or_else(|| {
            cell_error(
                path,
                line,
                &header[time_idx],
                format!("not a timestamp: {time_text:?}"),
            )
        })?;
        for &i in &channel_idx {
            let text = cell(i)?.trim();
            let v: f64 = text
                .parse()
                .map_err(|_| cell_error(path, line, &header[i], format!("not a number: {text:?}")))?;
            if !v.is_finite() {
                return Err(cell_error(
                    path,
                    line,
                    &header[i],
                    format!("not a finite number: {text:?}"),
                ));
            }
            series.values.push(v);
        }
        series.time_text.push(time_text.to_string());
        series.ts.push(ts);
    }
    if series.is_empty() {
        return Err(SeriesError::Empty {
            path: path.into(),
            what: "no data rows after the header",
        });
    }
    Ok(series)
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
    fn timestamps_in_three_forms_agree() {
        let a = parse_timestamp("2014-04-01 00:00:00").unwrap();
        assert_eq!(parse_timestamp("2014-04-01T00:00:00Z"), Some(a));
        assert_eq!(parse_timestamp(&format!("{a}")), Some(a));
        assert_eq!(parse_timestamp("yesterday"), None);
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
