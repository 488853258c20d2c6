//! A large unpartitioned table read in two halves at once: two ranges of a key, each on its
//! own connection (both in one snapshot) into its own file, checked together against the
//! table's row count.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::super::QueryError;
use super::parts::Parts;
use super::pipeline::{write_chunks, CHUNK_ROWS};
use super::plan::{quote, Plan, RangeKey};
use super::Partitioning;

/// Unpartitioned tables from this many rows on are read in two halves at once.
pub(super) const SPLIT_ROWS: u64 = 2 * CHUNK_ROWS as u64;

/// Rows sampled to find the middle of `calls`; the median of 255 is within about 3% of the
/// true middle.
pub(super) const SPLIT_SAMPLE: i64 = 255;

/// The two halves of an unpartitioned table with at least `min_rows` rows, each a range of
/// the plan's `RangeKey` (so neither reads the other's pages), and the table's row count,
/// which the halves must add up to. `None` for smaller tables and tables with no such key.
pub(super) fn split_table(
    conn: &Connection,
    plan: &Plan,
    min_rows: u64,
) -> Result<Option<([Plan; 2], u64)>, QueryError> {
    let Some(range) = plan.range else {
        return Ok(None);
    };
    let table = quote(&plan.table);
    let rows: u64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    if rows < min_rows.max(2) {
        return Ok(None);
    }
    let cut = match range {
        RangeKey::CallsColumns => calls_middle(conn)?,
        RangeKey::Integer(key) => integer_middle(conn, &table, key)?,
    };
    let Some((params, [first, second])) = cut else {
        return Ok(None);
    };
    let from = match range {
        RangeKey::CallsColumns => format!("{table} t INDEXED BY calls_columns"),
        RangeKey::Integer(_) => format!("{table} t"),
    };
    let half = |ranges: &[String]| {
        let arms: Vec<String> = ranges
            .iter()
            .map(|range| format!("SELECT {} FROM {from} WHERE {range}", plan.columns))
            .collect();
        Plan {
            sql: arms.join(" UNION ALL "),
            params: params.clone(),
            ..plan.clone()
        }
    };
    Ok(Some(([half(&first), half(&second)], rows)))
}

/// The ranges of a cut: the parameters they use, then the first half's ranges and the
/// second's, each a list of disjoint ranges in key order.
pub(super) type Cut = (Vec<(&'static str, Value)>, [Vec<String>; 2]);

/// `calls` cut near its middle in the order of `calls_columns` (provider, created_at). Rows
/// without `created_at` sort first within their provider, so they go to the first half.
/// `None` when the middle row has no `created_at`.
pub(super) fn calls_middle(conn: &Connection) -> Result<Option<Cut>, QueryError> {
    // The middle of a sample of rows spread evenly over the rowids: a range of the index would
    // have to be walked to find the exact middle, and a rough one only costs balance.
    let middle: Option<(Value, Value)> = conn
        .query_row(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1),
                  span(lo, hi) AS (SELECT (SELECT min(rowid) FROM calls),
                                          (SELECT max(rowid) FROM calls))
             SELECT c.provider, c.created_at FROM k, span, calls c
             WHERE c.rowid = (SELECT rowid FROM calls
                              WHERE rowid >= lo + (hi - lo) * i / (?1 + 1)
                              ORDER BY rowid LIMIT 1)
             ORDER BY c.provider, c.created_at LIMIT 1 OFFSET ?1 / 2",
            [SPLIT_SAMPLE],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (provider, created_at) = match middle {
        Some((_, Value::Null)) | None => return Ok(None),
        Some(key) => key,
    };
    let ranges = |ranges: &[&str]| ranges.iter().map(|r| r.to_string()).collect();
    Ok(Some((
        vec![(":p", provider), (":c", created_at)],
        [
            ranges(&[
                "t.provider < :p",
                "t.provider = :p AND t.created_at IS NULL",
                "t.provider = :p AND t.created_at < :c",
            ]),
            ranges(&["t.provider = :p AND t.created_at >= :c", "t.provider > :p"]),
        ],
    )))
}

/// A table cut at the middle of its integer `key`'s span (both ends are index lookups).
/// `None` when the key holds something other than integers.
pub(super) fn integer_middle(
    conn: &Connection,
    table: &str,
    key: &str,
) -> Result<Option<Cut>, QueryError> {
    let span: (Value, Value) = conn.query_row(
        &format!("SELECT (SELECT min({key}) FROM {table}), (SELECT max({key}) FROM {table})"),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (Value::Integer(lo), Value::Integer(hi)) = span else {
        return Ok(None);
    };
    let Some(middle) = hi.checked_sub(lo).and_then(|d| (lo + d / 2).checked_add(1)) else {
        return Ok(None);
    };
    Ok(Some((
        vec![(":m", Value::Integer(middle))],
        [
            vec![format!("t.{key} < :m")],
            vec![format!("t.{key} >= :m")],
        ],
    )))
}

/// Writes the two halves of a table at once, each read on its own connection (both in one
/// snapshot) into its own files, then checks that together they hold the `expected` rows.
pub(super) fn write_halves(
    conn: &Connection,
    helper: &mut Connection,
    ([first, second], expected): &([Plan; 2], u64),
    [parts, second_parts]: [&mut Parts<'_>; 2],
) -> Result<u64, QueryError> {
    let (first_rows, second_rows) = std::thread::scope(|scope| {
        let other = scope
            .spawn(move || write_chunks(&*helper, second, Partitioning::default(), second_parts));
        let rows = write_chunks(conn, first, Partitioning::default(), parts);
        let other = other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (rows, other)
    });
    let rows = first_rows? + second_rows?;
    if rows != *expected {
        return Err(QueryError::IncompleteExport {
            table: first.table.clone(),
            rows,
            expected: *expected,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use polars::prelude::{ParquetReader, SerReader};

    use super::super::plan::plan;
    use super::super::tests::new_archive;
    use super::super::{export_splitting_at, Compression, ExportFormat, ExportOptions};
    use super::*;
    use crate::query::output::Provenance;

    /// `sql` run with `plan`'s parameters, one text per row from `text`.
    fn read(
        conn: &Connection,
        sql: &str,
        plan: &Plan,
        text: impl Fn(&rusqlite::Row<'_>) -> String,
    ) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        for (name, value) in &plan.params {
            stmt.raw_bind_parameter(*name, value).unwrap();
        }
        let mut rows = stmt.raw_query();
        let mut all = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            all.push(text(row));
        }
        all
    }

    /// The `id`s a statement of `plan` reads, in order.
    fn ids(conn: &Connection, plan: &Plan) -> Vec<String> {
        let id = plan.names.iter().position(|n| n == "id").unwrap();
        read(conn, &plan.sql, plan, |row| row.get(id).unwrap())
    }

    /// Every row a statement of `plan` reads, as text.
    fn rows_of(conn: &Connection, plan: &Plan) -> Vec<String> {
        read(conn, &plan.sql, plan, |row| {
            let values: Vec<String> = (0..plan.names.len())
                .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                .collect();
            values.join("|")
        })
    }

    /// Asserts that each arm of `plan` searches a range of `index` (no full scan, no sort).
    fn assert_reads_ranges(conn: &Connection, plan: &Plan, index: &str) {
        let explain = format!("EXPLAIN QUERY PLAN {}", plan.sql);
        let steps = read(conn, &explain, plan, |row| row.get(3).unwrap());
        let reads: Vec<&String> = steps.iter().filter(|s| s.contains(" t ")).collect();
        assert_eq!(reads.len(), plan.sql.matches(" UNION ALL ").count() + 1);
        assert!(
            reads
                .iter()
                .all(|s| s.starts_with("SEARCH t USING ") && s.contains(index))
                && !steps.iter().any(|s| s.contains("TEMP B-TREE")),
            "{steps:?}"
        );
    }

    #[test]
    fn large_tables_split_into_two_ranges_that_hold_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writable) = new_archive(dir.path());
        // Three providers; every seventh call has no created_at (those sort first).
        for i in 0..300 {
            let created = (i % 7 != 0).then(|| format!("2026-11-{:02}T00:00:00.000Z", 1 + i % 28));
            writable
                .execute(
                    "INSERT INTO calls (provider, id, created_at, raw_json, raw_hash, synced_at, seq)
                     VALUES (?1, ?2, ?3, '{}', 0, '2026-11-30T00:00:00.000Z', ?4)",
                    rusqlite::params![["a", "b", "c"][i % 3], format!("c{i:03}"), created, i],
                )
                .unwrap();
            writable
                .execute_batch(&format!(
                    "INSERT INTO call_tags (provider, call_id, tag, call_seq)
                     VALUES ('{p}', 'c{i:03}', 'x', {i}), ('{p}', 'c{i:03}', 'y', {i});
                     INSERT INTO evaluations (provider, id, call_id, json_path, call_seq)
                     VALUES ('{p}', 'e{i:03}', 'c{i:03}', '$.evaluations[0]', {i});",
                    p = ["a", "b", "c"][i % 3]
                ))
                .unwrap();
        }
        let conn = crate::store::Archive::open_read_only(&path).unwrap();
        let options = ExportOptions {
            out: dir.path().to_path_buf(),
            format: ExportFormat::Parquet,
            tables: Vec::new(),
            partition: Partitioning::default(),
            with_raw: false,
            compression: Compression::default(),
            force: false,
        };
        let whole = plan(&conn, &options, "calls").unwrap();
        assert_eq!(whole.range, Some(RangeKey::CallsColumns));
        let ([first, second], rows) = split_table(&conn, &whole, 1).unwrap().unwrap();
        assert_eq!(rows, 300);
        let (a, b) = (ids(&conn, &first), ids(&conn, &second));
        assert!(a.len() > 50 && b.len() > 50, "{} + {}", a.len(), b.len());
        let mut both: Vec<String> = a.iter().chain(&b).cloned().collect();
        both.sort();
        let mut all = ids(&conn, &whole);
        all.sort();
        assert_eq!(both, all, "every call in exactly one half");
        for half in [&first, &second] {
            assert_reads_ranges(&conn, half, "COVERING INDEX calls_columns (provider");
        }
        assert!(split_table(&conn, &whole, 301).unwrap().is_none());

        // The whole export: two files, on two connections, with every call once.
        let provenance = Provenance {
            snapshot_at: "2026-11-30T00:00:00.000Z".into(),
            last_synced_at: None,
            source: String::new(),
        };
        let out = dir.path().join("out");
        let options = ExportOptions {
            out: out.clone(),
            tables: vec!["calls".into(), "call_tags".into(), "evaluations".into()],
            ..options
        };
        let written = export_splitting_at(&conn, &options, &provenance, 1).unwrap();
        let shape: Vec<(u64, usize)> = written.iter().map(|t| (t.rows, t.files)).collect();
        assert_eq!(shape, [(300, 2), (600, 2), (300, 2)]);
        for (table, key) in [("call_tags", "call_seq"), ("evaluations", "rowid")] {
            let whole = plan(&conn, &options, table).unwrap();
            assert_eq!(whole.range, Some(RangeKey::Integer(key)));
            let ([first, second], _) = split_table(&conn, &whole, 1).unwrap().unwrap();
            for half in [&first, &second] {
                assert_reads_ranges(&conn, half, "PRIMARY KEY (");
            }
            let (mut halves, second) = (rows_of(&conn, &first), rows_of(&conn, &second));
            assert!(!halves.is_empty() && !second.is_empty(), "{table}");
            halves.extend(second);
            halves.sort();
            let mut all = rows_of(&conn, &whole);
            all.sort();
            assert_eq!(halves, all, "{table}: every row in exactly one half");
        }
        let mut exported = Vec::new();
        for part in ["part-0.parquet", "part-1.parquet"] {
            let file = File::open(out.join("calls").join(part)).unwrap();
            let df = ParquetReader::new(file).finish().unwrap();
            let ids = df.column("id").unwrap().str().unwrap();
            exported.extend(ids.iter().map(|id| id.unwrap().to_string()));
        }
        exported.sort();
        assert_eq!(exported, all);

        // Partitioned exports are read whole, one part per folder.
        let partitioned = ExportOptions {
            out: dir.path().join("by-day"),
            partition: Partitioning {
                provider: true,
                day: true,
            },
            ..options.clone()
        };
        let written = export_splitting_at(&conn, &partitioned, &provenance, 1).unwrap();
        for (table, t) in options.tables.iter().zip(&written) {
            let mut files = Vec::new();
            let mut folders = vec![partitioned.out.join(table)];
            while let Some(folder) = folders.pop() {
                for entry in std::fs::read_dir(folder).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        folders.push(path);
                    } else if path.extension().is_some_and(|e| e == "parquet") {
                        files.push(path);
                    }
                }
            }
            assert_eq!(files.len(), t.files, "{table}");
            let rows: usize = files
                .iter()
                .map(|f| {
                    let file = File::open(f).unwrap();
                    ParquetReader::new(file).finish().unwrap().height()
                })
                .sum();
            assert_eq!(rows as u64, t.rows, "{table}");
            assert!(
                files.iter().all(|f| f.ends_with("part-0.parquet")),
                "{table}"
            );
        }

        writable
            .execute("UPDATE calls SET created_at = NULL", [])
            .unwrap();
        assert!(
            split_table(&conn, &whole, 1).unwrap().is_none(),
            "no split at a middle row without created_at"
        );
    }
}
