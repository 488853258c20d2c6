//! Reading the archive back: user SQL on a read-only connection, and the figures callvault
//! computes itself (`stats`).
//!
//! Every statement runs on a connection opened read-only with `query_only`, and is checked
//! with SQLite's own `sqlite3_stmt_readonly` first, so a write is refused with a clear
//! message before it could run. Exactly one statement is run per call.

pub mod stats;

use std::io::Write;

use rusqlite::types::Value;
use rusqlite::Connection;

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
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot write CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// The rows one statement returned, with their column names.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// Runs one read-only statement.
pub fn run_sql(conn: &Connection, sql: &str) -> Result<ResultSet, QueryError> {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    if trimmed.is_empty() {
        return Err(QueryError::Empty);
    }
    let mut stmt = conn.prepare(trimmed).map_err(|e| match e {
        rusqlite::Error::MultipleStatement => QueryError::SeveralStatements,
        other => QueryError::Sql(other),
    })?;
    if !stmt.readonly() {
        return Err(QueryError::WriteRefused);
    }
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let width = columns.len();
    let rows = stmt
        .query_map([], |row| {
            (0..width).map(|i| row.get::<_, Value>(i)).collect()
        })?
        .collect::<Result<Vec<Vec<Value>>, _>>()?;
    Ok(ResultSet { columns, rows })
}

/// The output formats of `query` and `stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

fn json_of(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => (*i).into(),
        Value::Real(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Text(t) => t.clone().into(),
        Value::Blob(b) => format!("<{} bytes>", b.len()).into(),
    }
}

impl ResultSet {
    pub fn write(&self, format: OutputFormat, out: &mut dyn Write) -> Result<(), QueryError> {
        match format {
            OutputFormat::Table => {
                let mut table = comfy_table::Table::new();
                table
                    .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
                    .set_header(&self.columns);
                for row in &self.rows {
                    table.add_row(row.iter().map(text_of));
                }
                for (i, _) in self.columns.iter().enumerate() {
                    let numeric = self
                        .rows
                        .iter()
                        .all(|r| matches!(r[i], Value::Integer(_) | Value::Real(_) | Value::Null));
                    if numeric && !self.rows.is_empty() {
                        if let Some(col) = table.column_mut(i) {
                            col.set_cell_alignment(comfy_table::CellAlignment::Right);
                        }
                    }
                }
                writeln!(out, "{table}")?;
                writeln!(
                    out,
                    "({} row{})",
                    self.rows.len(),
                    if self.rows.len() == 1 { "" } else { "s" }
                )?;
            }
            OutputFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(&self.columns)?;
                for row in &self.rows {
                    w.write_record(row.iter().map(text_of))?;
                }
                w.flush()?;
            }
            OutputFormat::Json => {
                let items: Vec<serde_json::Value> = self
                    .rows
                    .iter()
                    .map(|row| {
                        serde_json::Value::Object(
                            self.columns
                                .iter()
                                .cloned()
                                .zip(row.iter().map(json_of))
                                .collect(),
                        )
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut *out, &items).map_err(std::io::Error::from)?;
                writeln!(out)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let rs = run_sql(&c, "SELECT a, b FROM t ORDER BY a;").unwrap();
        assert_eq!(rs.columns, vec!["a", "b"]);
        assert_eq!(rs.rows.len(), 2);
        assert!(matches!(
            run_sql(&c, "DELETE FROM t"),
            Err(QueryError::WriteRefused)
        ));
        assert!(matches!(
            run_sql(&c, "SELECT 1; DELETE FROM t"),
            Err(QueryError::SeveralStatements)
        ));
        assert!(matches!(run_sql(&c, "  ;"), Err(QueryError::Empty)));
        let err = run_sql(&c, "SELECT nope FROM t").unwrap_err();
        assert!(err.to_string().contains("no such column: nope"), "{err}");
    }

    #[test]
    fn writes_csv_and_json() {
        let rs = run_sql(&conn(), "SELECT a, b FROM t ORDER BY a").unwrap();
        let mut csv = Vec::new();
        rs.write(OutputFormat::Csv, &mut csv).unwrap();
        assert_eq!(String::from_utf8(csv).unwrap(), "a,b\n1,x\n2,\n");
        let mut json = Vec::new();
        rs.write(OutputFormat::Json, &mut json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v[1]["b"], serde_json::Value::Null);
        assert_eq!(v[0]["a"], 1);
    }
}
