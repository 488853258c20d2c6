//! The SELECT that reads one table for export: its file columns (raw and layout columns left
//! out), then the partition keys, and how the table can be read in two ranges.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::super::frame::{declared_kind, ColumnKind};
use super::super::QueryError;
use super::ExportOptions;

/// Columns that hold the record as received, left out unless `with_raw`.
pub(super) const RAW_COLUMNS: &[&str] = &["raw_json", "raw_hash"];

/// The archive's own bookkeeping, meaningless outside it: its row order (`calls.seq` and the
/// parts' `call_seq`) and the source a call was synced from (`calls.source_id`, which holds
/// an address). A call is exported by (provider, id).
pub(super) const LAYOUT_COLUMNS: &[&str] = &["seq", "call_seq", "source_id"];

pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SELECT for a table: its file columns, then the partition keys.
#[derive(Clone)]
pub(super) struct Plan {
    pub(super) table: String,
    /// The select list, for statements over part of the table.
    pub(super) columns: String,
    pub(super) sql: String,
    /// Values for the named parameters of `sql`.
    pub(super) params: Vec<(&'static str, Value)>,
    pub(super) names: Vec<String>,
    pub(super) kinds: Vec<ColumnKind>,
    pub(super) keys: usize,
    /// How the table can be read in two halves; `None` when partitioned.
    pub(super) range: Option<RangeKey>,
}

/// An order SQLite can read a table in by ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RangeKey {
    /// `calls` through its covering index `calls_columns`, by (provider, created_at).
    CallsColumns,
    /// An integer key that is never NULL: the rowid, or the first primary key column of a
    /// WITHOUT ROWID table (the parts' `call_seq`).
    Integer(&'static str),
}

pub(super) fn plan(
    conn: &Connection,
    options: &ExportOptions,
    table: &str,
) -> Result<Plan, QueryError> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )?;
    if !exists || table.starts_with("sqlite_") {
        return Err(QueryError::UnknownTable(table.to_string()));
    }
    let mut info = conn.prepare(&format!("PRAGMA table_info({})", quote(table)))?;
    let columns: Vec<(String, Option<String>)> = info
        .query_map([], |r| Ok((r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let first_key: Option<String> = conn
        .query_row(
            "SELECT name FROM pragma_table_info(?1) WHERE pk = 1",
            [table],
            |r| r.get(0),
        )
        .optional()?;
    let without_rowid: bool = conn.query_row(
        "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
        [table],
        |r| r.get(0),
    )?;
    let calls_columns: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'index' AND name = 'calls_columns'",
        [],
        |r| r.get(0),
    )?;
    let has = |name: &str| columns.iter().any(|(c, _)| c == name);
    let part = options.partition;
    let cannot = |key: &str, column: &'static str| QueryError::CannotPartition {
        table: table.to_string(),
        key: key.to_string(),
        column,
    };
    let mut keys = Vec::new();
    if part.provider {
        if !has("provider") {
            return Err(cannot("provider", "provider"));
        }
        keys.push("t.provider".to_string());
    }
    let mut join = String::new();
    if part.day {
        if table == "calls" {
            keys.push("substr(t.created_at, 1, 10)".into());
        } else if has("call_seq") {
            keys.push("substr(c.created_at, 1, 10)".into());
            join = "LEFT JOIN calls c ON c.seq = t.call_seq".into();
        } else if has("provider") && has("call_id") {
            keys.push("substr(c.created_at, 1, 10)".into());
            join = "LEFT JOIN calls c ON c.provider = t.provider AND c.id = t.call_id".into();
        } else {
            return Err(cannot("day", "call_id"));
        }
    }
    let file_columns: Vec<&(String, Option<String>)> = columns
        .iter()
        .filter(|(c, _)| options.with_raw || !RAW_COLUMNS.contains(&c.as_str()))
        .filter(|(c, _)| !LAYOUT_COLUMNS.contains(&c.as_str()))
        .filter(|(c, _)| !(part.provider && c == "provider"))
        .collect();
    let select: Vec<String> = file_columns
        .iter()
        .map(|(c, _)| format!("t.{}", quote(c)))
        .chain(keys.iter().cloned())
        .collect();
    // Partitioned exports are read whole: building and writing many partitions already keep
    // both cores busy, and halves only added CPU and memory there.
    let range = if !keys.is_empty() {
        None
    } else if table == "calls" && calls_columns {
        Some(RangeKey::CallsColumns)
    } else if !without_rowid {
        Some(RangeKey::Integer("rowid"))
    } else if first_key.as_deref() == Some("call_seq") {
        Some(RangeKey::Integer("call_seq"))
    } else {
        None
    };
    let columns = select.join(", ");
    Ok(Plan {
        table: table.to_string(),
        sql: format!("SELECT {columns} FROM {} t {join}", quote(table)),
        columns,
        params: Vec::new(),
        names: file_columns.iter().map(|(c, _)| c.clone()).collect(),
        kinds: file_columns
            .iter()
            .map(|(c, d)| declared_kind(c, d.as_deref()))
            .collect(),
        keys: keys.len(),
        range,
    })
}
