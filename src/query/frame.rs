//! SQLite rows → polars `DataFrame`s with real column types.
//!
//! SQLite values carry no column type, so each column gets a `ColumnKind`: integers, floats,
//! text, booleans (the archive's 0/1 flags such as `hallucination`), UTC timestamps (text
//! columns whose name ends in `_at` or `_time`, stored as `2026-11-02T09:15:00.000Z`, become
//! `Datetime(ms, UTC)`) and dates (a column named `day` or ending in `_day`/`_date` holding
//! `YYYY-MM-DD`). An ad hoc query's kinds are inferred from the values it returned
//! (`infer_kinds`); an exported table's kinds come from its declared types (`declared_kind`),
//! so that every chunk of a table has the same schema. A value that does not fit its column's
//! kind is an error naming the column, never a silent null. This module does no I/O.

use std::fmt::Write as _;

use chrono::{NaiveDate, TimeZone as _, Utc};
use polars::prelude::{
    BooleanChunkedBuilder, ChunkedBuilder, Column, DataFrame, DataType, Float64Type, Int32Type,
    Int64Type, IntoColumn, IntoSeries, PlSmallStr, PolarsError, PrimitiveChunkedBuilder,
    StringChunkedBuilder, TimeUnit, TimeZone,
};
use rusqlite::types::ValueRef;

use super::QueryError;

/// The archive's boolean flags (stored as 0/1/NULL in INTEGER columns).
const BOOLEAN_COLUMNS: &[&str] = &[
    "hallucination",
    "redundancy",
    "goal_success",
    "settled",
    "spoke_first",
];

/// The type a column gets in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    Boolean,
    Integer,
    Float,
    Text,
    /// `Datetime(ms, UTC)`.
    Timestamp,
    /// `Date`, days since 1970-01-01.
    Date,
}

fn is_time_name(name: &str) -> bool {
    name.ends_with("_at") || name.ends_with("_time")
}

fn is_date_name(name: &str) -> bool {
    name == "day" || name.ends_with("_day") || name.ends_with("_date")
}

fn is_boolean_name(name: &str) -> bool {
    BOOLEAN_COLUMNS.contains(&name)
}

/// The kind a column gets from its declared SQLite type and its name.
pub fn declared_kind(name: &str, decl_type: Option<&str>) -> ColumnKind {
    let decl = decl_type.unwrap_or("").to_ascii_uppercase();
    if decl.contains("INT") {
        if is_boolean_name(name) {
            ColumnKind::Boolean
        } else {
            ColumnKind::Integer
        }
    } else if decl.contains("REAL") || decl.contains("FLOA") || decl.contains("DOUB") {
        ColumnKind::Float
    } else if is_time_name(name) {
        ColumnKind::Timestamp
    } else if is_date_name(name) {
        ColumnKind::Date
    } else {
        ColumnKind::Text
    }
}

/// Kinds for a complete result: from the values each column returned, or from its declared
/// type when every value is NULL.
pub fn infer_kinds(
    names: &[String],
    decl_types: &[Option<String>],
    rows: &[Vec<rusqlite::types::Value>],
) -> Vec<ColumnKind> {
    use rusqlite::types::Value;
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (mut ints, mut reals, mut texts, mut others) = (false, false, false, false);
            for row in rows {
                match &row[i] {
                    Value::Null => {}
                    Value::Integer(_) => ints = true,
                    Value::Real(_) => reals = true,
                    Value::Text(_) => texts = true,
                    Value::Blob(_) => others = true,
                }
            }
            let values = rows.iter().map(|r| &r[i]);
            if others {
                ColumnKind::Text
            } else if texts {
                let all_text = !(ints || reals);
                let texts = || {
                    values.clone().filter_map(|v| match v {
                        Value::Text(t) => Some(t.as_str()),
                        _ => None,
                    })
                };
                if all_text && is_time_name(name) && texts().all(|t| parse_millis(t).is_some()) {
                    ColumnKind::Timestamp
                } else if all_text && is_date_name(name) && texts().all(|t| parse_day(t).is_some())
                {
                    ColumnKind::Date
                } else {
                    ColumnKind::Text
                }
            } else if reals {
                ColumnKind::Float
            } else if ints {
                let flags = values
                    .clone()
                    .all(|v| matches!(v, Value::Null | Value::Integer(0) | Value::Integer(1)));
                if flags && is_boolean_name(name) {
                    ColumnKind::Boolean
                } else {
                    ColumnKind::Integer
                }
            } else {
                declared_kind(name, decl_types.get(i).and_then(|d| d.as_deref()))
            }
        })
        .collect()
}

/// Milliseconds since the Unix epoch of an archive time. The archive's own fixed form is
/// parsed directly (it is most of the work of an export); other RFC 3339 shapes go through
/// `time::parse_timestamp`.
pub fn parse_millis(text: &str) -> Option<i64> {
    TimeParser::default().millis(text)
}

/// Parses archive times, keeping the day number of the last date seen: an export reads calls
/// in `created_at` order, so consecutive values mostly share their date.
#[derive(Default)]
struct TimeParser {
    date: [u8; 10],
    days: Option<i64>,
}

impl TimeParser {
    fn millis(&mut self, text: &str) -> Option<i64> {
        let b = text.as_bytes();
        let fixed = b.len() == 24
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'.'
            && b[23] == b'Z';
        if !fixed {
            return crate::time::parse_timestamp(text).map(|t| t.timestamp_millis());
        }
        let days = match self.days {
            Some(days) if self.date == b[..10] => days,
            _ => {
                let day = NaiveDate::from_ymd_opt(
                    i32::try_from(digits(&b[0..4])?).ok()?,
                    u32::try_from(digits(&b[5..7])?).ok()?,
                    u32::try_from(digits(&b[8..10])?).ok()?,
                )?;
                let days = day.signed_duration_since(EPOCH_DAY).num_days();
                self.date.copy_from_slice(&b[..10]);
                self.days = Some(days);
                days
            }
        };
        let (h, m) = (digits(&b[11..13])?, digits(&b[14..16])?);
        let (s, ms) = (digits(&b[17..19])?, digits(&b[20..23])?);
        if h > 23 || m > 59 || s > 60 {
            return None;
        }
        Some((((days * 24 + h) * 60 + m) * 60 + s) * 1000 + ms)
    }
}

/// The number written in ASCII `digits`; `None` if any byte is not a digit.
fn digits(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

const EPOCH_DAY: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a date"),
};

/// Days since 1970-01-01 of a `YYYY-MM-DD` text.
pub fn parse_day(text: &str) -> Option<i32> {
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    i32::try_from(day.signed_duration_since(EPOCH_DAY).num_days()).ok()
}

/// The archive's text form of a time in milliseconds since the epoch.
pub fn format_millis(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => crate::time::format_timestamp(t),
        None => ms.to_string(),
    }
}

/// `YYYY-MM-DD` of a day number.
pub fn format_day(days: i32) -> String {
    match EPOCH_DAY.checked_add_signed(chrono::Duration::days(i64::from(days))) {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => days.to_string(),
    }
}

/// One value on its way into a frame: SQLite's value, with text already known to be UTF-8.
#[derive(Clone, Copy, Debug)]
pub enum CellValue<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A column under construction, appended straight into Arrow buffers (no value is copied
/// twice).
enum Cells {
    Boolean(BooleanChunkedBuilder),
    Integer(PrimitiveChunkedBuilder<Int64Type>),
    Float(PrimitiveChunkedBuilder<Float64Type>),
    Text(StringChunkedBuilder),
    Timestamp(PrimitiveChunkedBuilder<Int64Type>, TimeParser),
    Date(PrimitiveChunkedBuilder<Int32Type>),
}

impl Cells {
    fn new(kind: ColumnKind, capacity: usize) -> Cells {
        let name = PlSmallStr::EMPTY;
        match kind {
            ColumnKind::Boolean => Cells::Boolean(BooleanChunkedBuilder::new(name, capacity)),
            ColumnKind::Integer => Cells::Integer(PrimitiveChunkedBuilder::new(name, capacity)),
            ColumnKind::Float => Cells::Float(PrimitiveChunkedBuilder::new(name, capacity)),
            ColumnKind::Text => Cells::Text(StringChunkedBuilder::new(name, capacity)),
            ColumnKind::Timestamp => Cells::Timestamp(
                PrimitiveChunkedBuilder::new(name, capacity),
                TimeParser::default(),
            ),
            ColumnKind::Date => Cells::Date(PrimitiveChunkedBuilder::new(name, capacity)),
        }
    }

    /// Appends one value; `false` when it does not fit the column's kind.
    fn push(&mut self, value: CellValue<'_>) -> bool {
        match self {
            Cells::Boolean(v) => match value {
                CellValue::Null => v.append_null(),
                CellValue::Integer(0) => v.append_value(false),
                CellValue::Integer(1) => v.append_value(true),
                _ => return false,
            },
            Cells::Integer(v) => match value {
                CellValue::Null => v.append_null(),
                CellValue::Integer(i) => v.append_value(i),
                CellValue::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    v.append_value(f as i64)
                }
                _ => return false,
            },
            Cells::Float(v) => match value {
                CellValue::Null => v.append_null(),
                CellValue::Integer(i) => v.append_value(i as f64),
                CellValue::Real(f) => v.append_value(f),
                _ => return false,
            },
            Cells::Text(v) => match value {
                CellValue::Null => v.append_null(),
                CellValue::Text(t) => v.append_value(t),
                CellValue::Integer(i) => v.append_value(i.to_string()),
                CellValue::Real(f) => v.append_value(f.to_string()),
                CellValue::Blob(b) => {
                    v.append_value(b.iter().fold(String::new(), |mut s, byte| {
                        let _ = write!(s, "{byte:02x}");
                        s
                    }))
                }
            },
            Cells::Timestamp(v, parser) => match value {
                CellValue::Null => v.append_null(),
                CellValue::Text(t) => match parser.millis(t) {
                    Some(ms) => v.append_value(ms),
                    None => return false,
                },
                _ => return false,
            },
            Cells::Date(v) => match value {
                CellValue::Null => v.append_null(),
                CellValue::Text(t) => match parse_day(t) {
                    Some(d) => v.append_value(d),
                    None => return false,
                },
                _ => return false,
            },
        }
        true
    }

    fn into_column(self, name: &str) -> Column {
        let series = match self {
            Cells::Boolean(v) => v.finish().into_series(),
            Cells::Integer(v) => v.finish().into_series(),
            Cells::Float(v) => v.finish().into_series(),
            Cells::Text(v) => v.finish().into_series(),
            Cells::Timestamp(v, _) => v
                .finish()
                .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
                .into_series(),
            Cells::Date(v) => v.finish().into_date().into_series(),
        };
        series.with_name(name.into()).into_column()
    }
}

/// Accumulates rows of known column kinds and hands them out as `DataFrame` chunks.
pub struct FrameBuilder {
    names: Vec<String>,
    kinds: Vec<ColumnKind>,
    cells: Vec<Cells>,
    rows: usize,
    capacity: usize,
}

impl FrameBuilder {
    pub fn new(names: Vec<String>, kinds: Vec<ColumnKind>, capacity: usize) -> FrameBuilder {
        let cells = kinds.iter().map(|k| Cells::new(*k, capacity)).collect();
        FrameBuilder {
            names,
            kinds,
            cells,
            rows: 0,
            capacity,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends one row of `values` (one per column, in order).
    pub fn push<'a>(
        &mut self,
        values: impl IntoIterator<Item = ValueRef<'a>>,
    ) -> Result<(), QueryError> {
        for (column, value) in values.into_iter().enumerate().take(self.cells.len()) {
            let lossy;
            let value = match value {
                ValueRef::Null => CellValue::Null,
                ValueRef::Integer(i) => CellValue::Integer(i),
                ValueRef::Real(f) => CellValue::Real(f),
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(t) => CellValue::Text(t),
                    Err(_) => {
                        lossy = String::from_utf8_lossy(t);
                        CellValue::Text(&lossy)
                    }
                },
                ValueRef::Blob(b) => CellValue::Blob(b),
            };
            self.push_cell(column, value)?;
        }
        self.rows += 1;
        Ok(())
    }

    /// Appends one row of `values` whose text is already checked (one per column, in order).
    pub fn push_row<'a>(
        &mut self,
        values: impl IntoIterator<Item = CellValue<'a>>,
    ) -> Result<(), QueryError> {
        for (column, value) in values.into_iter().enumerate().take(self.cells.len()) {
            self.push_cell(column, value)?;
        }
        self.rows += 1;
        Ok(())
    }

    fn push_cell(&mut self, column: usize, value: CellValue<'_>) -> Result<(), QueryError> {
        if self.cells[column].push(value) {
            return Ok(());
        }
        Err(QueryError::Mismatch {
            column: self.names[column].clone(),
            kind: self.kinds[column],
            value: describe(value),
        })
    }

    /// The rows pushed since the last call, as a frame; the builder starts over empty.
    pub fn take(&mut self) -> Result<DataFrame, PolarsError> {
        let columns: Vec<Column> = self
            .cells
            .iter_mut()
            .zip(&self.kinds)
            .zip(&self.names)
            .map(|((cells, kind), name)| {
                std::mem::replace(cells, Cells::new(*kind, self.capacity)).into_column(name)
            })
            .collect();
        let height = std::mem::take(&mut self.rows);
        DataFrame::new(height, columns)
    }
}

fn describe(value: CellValue<'_>) -> String {
    match value {
        CellValue::Null => "NULL".into(),
        CellValue::Integer(i) => i.to_string(),
        CellValue::Real(f) => f.to_string(),
        CellValue::Text(t) => {
            let short: String = t.chars().take(60).collect();
            format!("'{short}'")
        }
        CellValue::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

/// Whether a frame column holds times or dates, which text formats print in the archive's form.
pub fn is_temporal(dtype: &DataType) -> bool {
    matches!(dtype, DataType::Datetime(_, _) | DataType::Date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value;

    #[test]
    fn parses_the_archive_time_form_and_others() {
        assert_eq!(parse_millis("1970-01-01T00:00:01.250Z"), Some(1250));
        let fixed = parse_millis("2026-11-02T09:15:00.000Z").unwrap();
        assert_eq!(format_millis(fixed), "2026-11-02T09:15:00.000Z");
        assert_eq!(parse_millis("2026-11-02T10:15:00+01:00"), Some(fixed));
        assert_eq!(parse_millis("2026-13-02T09:15:00.000Z"), None);
        assert_eq!(parse_millis("soon"), None);
        assert_eq!(parse_day("1970-01-03"), Some(2));
        assert_eq!(format_day(2), "1970-01-03");
    }

    #[test]
    fn infers_kinds_from_values_and_names() {
        let names: Vec<String> = ["n", "x", "created_at", "hallucination", "day", "s", "e"]
            .map(String::from)
            .to_vec();
        let rows = vec![
            vec![
                Value::Integer(3),
                Value::Integer(1),
                Value::Text("2026-11-02T09:15:00.000Z".into()),
                Value::Integer(1),
                Value::Text("2026-11-02".into()),
                Value::Text("a".into()),
                Value::Null,
            ],
            vec![
                Value::Integer(4),
                Value::Real(1.5),
                Value::Null,
                Value::Integer(0),
                Value::Null,
                Value::Integer(7),
                Value::Null,
            ],
        ];
        let decl = vec![None, None, None, None, None, None, Some("REAL".to_string())];
        let kinds = infer_kinds(&names, &decl, &rows);
        use ColumnKind::*;
        assert_eq!(
            kinds,
            vec![Integer, Float, Timestamp, Boolean, Date, Text, Float]
        );
        let mut b = FrameBuilder::new(names, kinds, 2);
        for row in &rows {
            b.push(row.iter().map(ValueRef::from)).unwrap();
        }
        let df = b.take().unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(
            df.column("created_at").unwrap().dtype(),
            &DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
        );
        assert_eq!(df.column("s").unwrap().dtype(), &DataType::String);
        assert_eq!(b.rows(), 0);
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_column() {
        let mut b = FrameBuilder::new(vec!["created_at".into()], vec![ColumnKind::Timestamp], 1);
        let err = b
            .push([ValueRef::Text(b"last tuesday")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("created_at") && err.contains("last tuesday"),
            "{err}"
        );
    }
}
