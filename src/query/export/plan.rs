//! The SELECT that reads one table for export: its file columns (raw and layout columns left
//! out), then the partition keys, and how the table can be read in two ranges.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::super::frame::{declared_kind, ColumnKind};
use super::super::QueryError;
use super::ExportOptions;

/// Columns that hold the record as received or point into it, left out unless `with_raw`.
pub(super) const RAW_COLUMNS: &[&str] = &["raw_json", "raw_hash", "json_path", "unplaced_json"];

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

/// The calls of one lake partition, the rows of `calls` whose provider is `provider` and whose
/// `created_at` starts with `day` ('' for calls without a day: `store::changes` keys those
/// so), as a condition on the calls aliased `alias`, with its parameters. A range of
/// `calls_columns` (provider, created_at) narrows the search; the `substr` check makes it exact
/// for any text (`char(1114111)` sorts after every character).
fn partition_filter(
    alias: &str,
    provider: &str,
    day: &str,
) -> (String, Vec<(&'static str, Value)>) {
    let mut params = vec![(":p", Value::Text(provider.to_string()))];
    let day_check = if day.is_empty() {
        format!("({alias}.created_at IS NULL OR {alias}.created_at = '')")
    } else {
        params.push((":d", Value::Text(day.to_string())));
        format!(
            "{alias}.created_at >= :d AND {alias}.created_at < :d || char(1114111)
             AND substr({alias}.created_at, 1, 10) = :d"
        )
    };
    (format!("{alias}.provider = :p AND {day_check}"), params)
}

/// The `seq` of every call of one lake partition, the key its parts are found by.
pub(super) fn partition_seqs(
    conn: &Connection,
    provider: &str,
    day: &str,
) -> Result<Vec<i64>, QueryError> {
    let (filter, params) = partition_filter("c", provider, day);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT c.seq FROM calls c INDEXED BY calls_columns WHERE {filter}"
    ))?;
    for (name, value) in &params {
        stmt.raw_bind_parameter(*name, value)?;
    }
    let mut rows = stmt.raw_query();
    let mut seqs = Vec::new();
    while let Some(row) = rows.next()? {
        if let Some(seq) = row.get::<_, Option<i64>>(0)? {
            seqs.push(seq);
        }
    }
    Ok(seqs)
}

/// `whole`'s file columns (a plan partitioned by provider and day, so without `provider`),
/// read for one lake partition: for `calls`, a range of `calls_columns`; for a table of call
/// content, the rows of the calls `seqs` (`partition_seqs`), each found by its `call_seq`.
pub(super) fn partition_plan(whole: &Plan, provider: &str, day: &str, seqs: &[i64]) -> Plan {
    let columns: Vec<String> = whole
        .names
        .iter()
        .map(|c| format!("t.{}", quote(c)))
        .collect();
    let columns = columns.join(", ");
    let (sql, params) = if whole.table == "calls" {
        let (filter, params) = partition_filter("t", provider, day);
        (
            format!("SELECT {columns} FROM calls t INDEXED BY calls_columns WHERE {filter}"),
            params,
        )
    } else {
        let list: Vec<String> = seqs.iter().map(i64::to_string).collect();
        (
            format!(
                "SELECT {columns} FROM {} t
                 WHERE t.call_seq IN (SELECT value FROM json_each(:seqs))",
                quote(&whole.table)
            ),
            vec![(":seqs", Value::Text(format!("[{}]", list.join(","))))],
        )
    };
    Plan {
        sql,
        params,
        columns,
        keys: 0,
        range: None,
        ..whole.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::new_archive;
    use super::super::{Compression, ExportFormat, Partitioning};
    use super::*;

    #[test]
    fn a_partition_is_read_by_index_ranges_and_holds_exactly_its_calls() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writable) = new_archive(dir.path());
        let days = [
            Some("2026-11-01T23:59:59.999Z"),
            Some("2026-11-02T00:00:00.000Z"),
            Some("2026-11-02T12:00:00.000Z"),
            Some("2026-11-02"),
            Some("2026-11-03T00:00:00.000Z"),
            None,
        ];
        for (i, created) in days.iter().enumerate() {
            writable
                .execute(
                    "INSERT INTO calls (provider, id, created_at, raw_json, raw_hash, synced_at, seq)
                     VALUES ('a', ?1, ?2, '{}', 0, 'x', ?3)",
                    rusqlite::params![format!("c{i}"), created, i as i64 + 1],
                )
                .unwrap();
            writable
                .execute(
                    "INSERT INTO call_tags (provider, call_id, tag, call_seq) VALUES ('a', ?1, 't', ?2)",
                    rusqlite::params![format!("c{i}"), i as i64 + 1],
                )
                .unwrap();
        }
        writable
            .execute_batch(
                "INSERT INTO calls (provider, id, created_at, raw_json, raw_hash, synced_at, seq)
                 VALUES ('b', 'other', '2026-11-02T01:00:00.000Z', '{}', 0, 'x', 99)",
            )
            .unwrap();
        let conn = crate::store::Archive::open_read_only(&path).unwrap();
        let options = ExportOptions {
            out: dir.path().into(),
            format: ExportFormat::Parquet,
            tables: Vec::new(),
            partition: Partitioning {
                provider: true,
                day: true,
            },
            with_raw: false,
            compression: Compression::default(),
            force: false,
        };
        let ids = |plan: &Plan, column: usize| -> Vec<String> {
            let mut stmt = conn.prepare(&plan.sql).unwrap();
            for (name, value) in &plan.params {
                stmt.raw_bind_parameter(*name, value).unwrap();
            }
            let mut rows = stmt.raw_query();
            let mut out = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                out.push(row.get::<_, String>(column).unwrap());
            }
            out.sort();
            out
        };
        let calls = plan(&conn, &options, "calls").unwrap();
        let tags = plan(&conn, &options, "call_tags").unwrap();
        let id = calls.names.iter().position(|n| n == "id").unwrap();
        let call_id = tags.names.iter().position(|n| n == "call_id").unwrap();
        for (day, want) in [
            ("2026-11-02", vec!["c1", "c2", "c3"]),
            ("2026-11-01", vec!["c0"]),
            ("", vec!["c5"]),
        ] {
            let seqs = partition_seqs(&conn, "a", day).unwrap();
            assert_eq!(seqs.len(), want.len(), "{day}");
            assert_eq!(ids(&partition_plan(&calls, "a", day, &seqs), id), want);
            assert_eq!(ids(&partition_plan(&tags, "a", day, &seqs), call_id), want);
        }

        let steps = |plan: &Plan| -> Vec<String> {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", plan.sql))
                .unwrap();
            for (name, value) in &plan.params {
                stmt.raw_bind_parameter(*name, value).unwrap();
            }
            let mut rows = stmt.raw_query();
            let mut out = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                out.push(row.get::<_, String>(3).unwrap());
            }
            out
        };
        let seqs = [2, 3];
        let read = steps(&partition_plan(&calls, "a", "2026-11-02", &seqs));
        assert!(
            read.iter().any(|s| s.starts_with(
                "SEARCH t USING COVERING INDEX calls_columns (provider=? AND created_at>? AND created_at<?)"
            )),
            "{read:?}"
        );
        let evaluations = plan(&conn, &options, "evaluations").unwrap();
        for (plan, index) in [
            (&tags, "PRIMARY KEY (call_seq=?)"),
            (&evaluations, "INDEX evaluations_call_id (call_seq=?)"),
        ] {
            let read = steps(&partition_plan(plan, "a", "2026-11-02", &seqs));
            assert!(
                read.iter()
                    .any(|s| s.starts_with("SEARCH t USING") && s.ends_with(index)),
                "{read:?}"
            );
            assert!(!read.iter().any(|s| s.starts_with("SCAN t")), "{read:?}");
        }
    }
}
