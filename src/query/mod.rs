//! Reading the archive back: user SQL on a read-only connection, named queries, the figures
//! callvault computes itself (`stats`), the HTML report drawn from them (`report`), and
//! exports (`export`), all moving rows as polars `DataFrame`s with real column types
//! (`frame`) and rendered by `output`.
//!
//! Every statement runs on a connection opened read-only with `query_only`, and is checked
//! with SQLite's own `sqlite3_stmt_readonly` first, so a write is refused with a clear
//! message before it could run. Exactly one statement is run per call. SQL errors carry
//! SQLite's own message.

pub mod export;
pub mod frame;
pub mod named;
pub mod output;
pub mod report;
pub mod stats;
pub mod stream;

use std::path::PathBuf;

use polars::prelude::{DataFrame, PolarsError};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Statement};

use frame::{ColumnKind, FrameBuilder};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("SQL error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("only statements that read are allowed here; the archive changes only through sync and delete")]
    WriteRefused,
    #[error("give one SQL statement at a time")]
    SeveralStatements,
    #[error("the SQL is empty")]
    Empty,
    #[error("no named query '{name}'; available: {}", available.join(", "))]
    UnknownQuery {
        name: String,
        available: Vec<String>,
    },
    #[error("the query needs --param {0}=VALUE")]
    MissingParameter(String),
    #[error("--param {0} is not used by the query")]
    UnusedParameter(String),
    #[error("use named parameters (:name) bound with --param name=value, not ?")]
    PositionalParameter,
    #[error("column {column}: {value} is not a {kind:?} value like the rows before it; CAST the column in the SQL to give it one type")]
    Mismatch {
        column: String,
        kind: ColumnKind,
        value: String,
    },
    #[error("read {rows} rows of {table} but it holds {expected}; nothing was written for it")]
    IncompleteExport {
        table: String,
        rows: u64,
        expected: u64,
    },
    #[error("no table '{0}' in the archive")]
    UnknownTable(String),
    #[error("cannot partition {table} by {key}: it has no {column} column")]
    CannotPartition {
        table: String,
        key: String,
        column: &'static str,
    },
    #[error("{path} {what}; move it away, or pass --force to replace it")]
    NotAnExport { path: PathBuf, what: String },
    #[error("{dir} {reason}; pass --full to rebuild it")]
    LakeMismatch { dir: PathBuf, reason: String },
    #[error("--incremental exports {needs}")]
    LakeOptions { needs: String },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    OutFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] PolarsError),
    #[error("{0}")]
    Archive(#[from] crate::store::StoreError),
    #[error("cannot render the report: {0}")]
    Render(#[from] askama::Error),
}

/// Prepares one statement and refuses anything that would write.
pub fn prepare_read_only<'c>(conn: &'c Connection, sql: &str) -> Result<Statement<'c>, QueryError> {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    if trimmed.is_empty()
        || trimmed
            .lines()
            .all(|l| l.trim().is_empty() || l.trim().starts_with("--"))
    {
        return Err(QueryError::Empty);
    }
    let stmt = conn.prepare(trimmed).map_err(|e| match e {
        rusqlite::Error::MultipleStatement => QueryError::SeveralStatements,
        other => QueryError::Sql(other),
    })?;
    if !stmt.readonly() {
        return Err(QueryError::WriteRefused);
    }
    Ok(stmt)
}

/// Runs a prepared (and bound) statement and returns all its rows as one frame, each
/// column's type inferred from the values it returned.
fn frame_of(stmt: &mut Statement<'_>) -> Result<DataFrame, QueryError> {
    let (names, decl_types) = column_shape(stmt);
    let width = names.len();
    let mut rows: Vec<Vec<Value>> = Vec::new();
    let mut raw = stmt.raw_query();
    while let Some(row) = raw.next()? {
        rows.push(row_values(row, width)?);
    }
    frame_of_values(names, &decl_types, &rows)
}

/// A statement's column names and declared types, which typing its values starts from.
fn column_shape(stmt: &Statement<'_>) -> (Vec<String>, Vec<Option<String>>) {
    let names = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let decl_types = stmt
        .columns()
        .iter()
        .map(|c| c.decl_type().map(str::to_string))
        .collect();
    (names, decl_types)
}

/// The first `width` values of a row.
fn row_values(row: &rusqlite::Row<'_>, width: usize) -> rusqlite::Result<Vec<Value>> {
    (0..width).map(|i| row.get::<_, Value>(i)).collect()
}

/// A frame of complete `rows`, each column's type inferred from its values as for a statement
/// whose columns declare `decl_types`: rows computed in Rust get the very types (and so the
/// very output) the same rows read from SQL would.
fn frame_of_values(
    names: Vec<String>,
    decl_types: &[Option<String>],
    rows: &[Vec<Value>],
) -> Result<DataFrame, QueryError> {
    let kinds = frame::infer_kinds(&names, decl_types, rows);
    let mut builder = FrameBuilder::new(names, kinds, rows.len());
    for row in rows {
        builder.push(row.iter().map(ValueRef::from))?;
    }
    Ok(builder.take()?)
}

/// The provenance of output read from the archive now: the time of reading, the last sync,
/// and `source`.
pub fn snapshot(conn: &Connection, source: String) -> Result<output::Provenance, QueryError> {
    let last_synced_at: Option<String> =
        conn.query_row("SELECT max(last_synced_at) FROM sync_state", [], |r| {
            r.get(0)
        })?;
    Ok(output::Provenance {
        snapshot_at: crate::time::format_timestamp(chrono::Utc::now()),
        last_synced_at,
        source,
    })
}

/// Runs one read-only statement without parameters.
pub fn run_sql(conn: &Connection, sql: &str) -> Result<DataFrame, QueryError> {
    named::run(conn, sql, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::DataType;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, NULL);",
        )
        .unwrap();
        c
    }

    #[test]
    fn reads_and_refuses_writes_and_batches() {
        let c = conn();
        let df = run_sql(&c, "SELECT a, b FROM t ORDER BY a;").unwrap();
        assert_eq!(df.get_column_names(), vec!["a", "b"]);
        assert_eq!(df.height(), 2);
        assert_eq!(df.column("a").unwrap().dtype(), &DataType::Int64);
        assert!(matches!(
            run_sql(&c, "DELETE FROM t"),
            Err(QueryError::WriteRefused)
        ));
        assert!(matches!(
            run_sql(&c, "SELECT 1; DELETE FROM t"),
            Err(QueryError::SeveralStatements)
        ));
        assert!(matches!(run_sql(&c, "  ;"), Err(QueryError::Empty)));
        assert!(matches!(
            run_sql(&c, "-- nothing\n"),
            Err(QueryError::Empty)
        ));
        let err = run_sql(&c, "SELECT nope FROM t").unwrap_err();
        assert!(err.to_string().contains("no such column: nope"), "{err}");
    }

    #[test]
    fn an_empty_result_keeps_declared_types() {
        let df = run_sql(&conn(), "SELECT a, b FROM t WHERE a > 5").unwrap();
        assert_eq!(df.height(), 0);
        assert_eq!(df.column("a").unwrap().dtype(), &DataType::Int64);
        assert_eq!(df.column("b").unwrap().dtype(), &DataType::String);
    }
}
