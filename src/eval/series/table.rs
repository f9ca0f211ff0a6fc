//! [`Table`]: a CSV file read whole into one string of cells, with its typed column
//! readers and [`Table::series`]; every bad cell's error names the file, line and column.

use std::path::{Path, PathBuf};

use super::{Series, SeriesError, Texts, parse_timestamp};

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
    /// Every cell's text, row by row, in one buffer.
    cells: Texts,
    /// The data rows, in file order.
    rows: Vec<Row>,
}

/// A data row of a [`Table`]: its cells are `cells[first..first + len]`.
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
        let (cells, rows) = read_rows(&mut reader, path, &text, header.len())?;
        if rows.is_empty() {
            return Err(SeriesError::Empty {
                path: path.into(),
                what: "no data rows after the header",
            });
        }
        Ok(Table {
            path: path.into(),
            header,
            cells,
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
        Ok(self.cells.get(r.first + col).trim())
    }

    fn error(&self, row: usize, col: usize, message: String) -> SeriesError {
        cell_error(&self.path, self.rows[row].line, &self.header[col], message)
    }

    /// Column `col` as text, trimmed.
    ///
    /// # Errors
    ///
    /// [`SeriesError::Cell`] for a short row.
    pub fn texts(&self, col: usize) -> Result<Texts, SeriesError> {
        let mut texts = Texts::default();
        for r in 0..self.len() {
            texts.push(self.cell(r, col)?);
        }
        Ok(texts)
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

/// The non-blank records after the header: their cells, and the rows (see [`Table`]).
fn read_rows(
    reader: &mut csv::Reader<&[u8]>,
    path: &Path,
    file: &str,
    columns: usize,
) -> Result<(Texts, Vec<Row>), SeriesError> {
    // Sized from the file's lines up front: growing them by doubling copied and
    // page-faulted tens of megabytes for a large file.
    let lines = file.bytes().filter(|&b| b == b'\n').count() + 1;
    let (mut cells, mut rows) = (
        Texts::with_capacity(file.len(), lines * columns),
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
            first: cells.len(),
            len: record.len(),
            line,
        });
        for cell in &record {
            cells.push(cell);
        }
    }
    Ok((cells, rows))
}

fn cell_error(path: &Path, line: u64, column: &str, message: String) -> SeriesError {
    SeriesError::Cell {
        path: path.into(),
        line,
        column: column.into(),
        message,
    }
}
