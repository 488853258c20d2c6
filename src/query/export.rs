//! `export`: the archive's tables as Parquet or CSV files a warehouse can load, optionally
//! hive-partitioned (`calls/provider=bluejay/day=2026-11-02/part-0.parquet`).
//!
//! Memory stays bounded by `CHUNK_ROWS`, not by table size: each table is read in chunks of
//! that many rows, and each chunk is written as one row group (per partition) of files that
//! stay open across chunks; at most `MAX_OPEN_FILES` files are open at once, past that they
//! are closed and later rows start new parts. Column types come from the declared schema
//! (`frame::declared_kind`), so every chunk has the same schema. All tables are read in one
//! read transaction, so the export is one consistent snapshot even while a sync writes.
//! `raw_json` and `raw_hash` are left out unless asked for, `seq` and `call_seq` always.
//! Partition columns live in the folder names only (the hive convention); `day` is the UTC date
//! of the call's `created_at`, for child tables too. Each table is written into a hidden folder
//! first and renamed into place when complete, so a failed export never leaves a half table.
//!
//! A table goes through three threads: the caller's steps SQLite and copies blocks of rows out
//! (`RawRows`, sealed into a `Block` once its text is checked), the next builds frames, the
//! last encodes and writes them. Stepping SQLite is the longest of the three, so a large
//! unpartitioned table is read in two halves at once (two ranges of a key, see `RangeKey`), on
//! two connections in one snapshot, each half into its own file (`part-0`, `part-1`); the two
//! together are checked against the table's row count.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

use polars::prelude::{
    CsvWriter, DataFrame, IdxCa, IdxSize, ParquetCompression, ParquetWriter, PolarsError, SerWriter,
};
use polars_parquet::write::ZstdLevel;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};

use super::frame::{declared_kind, CellValue, FrameBuilder};
use super::output::{with_temporal_as_text, Provenance};
use super::QueryError;

/// The tables exported when none are named: every table that holds call content.
pub const DEFAULT_TABLES: &[&str] = &crate::store::CALL_CONTENT_TABLES;

/// Rows read from SQLite and written per row group.
pub const CHUNK_ROWS: usize = 65_536;

/// Rows per block handed from the SQLite reader to the frame builder, and blocks queued
/// between them; a block is sent early once its text reaches `BLOCK_BYTES`.
const BLOCK_ROWS: usize = 512;
const BLOCKS_IN_FLIGHT: usize = 4;
const BLOCK_BYTES: usize = 32 << 20;

/// Unpartitioned tables from this many rows on are read in two halves at once.
const SPLIT_ROWS: u64 = 2 * CHUNK_ROWS as u64;

/// Rows sampled to find the middle of `calls`; the median of 255 is within about 3% of the
/// true middle.
const SPLIT_SAMPLE: i64 = 255;

/// Most partition files open at once; past that, open parts are finished and new ones begun.
const MAX_OPEN_FILES: usize = 128;

/// Columns that hold the record as received, left out unless `with_raw`.
const RAW_COLUMNS: &[&str] = &["raw_json", "raw_hash"];

/// The archive's own bookkeeping, meaningless outside it: its row order (`calls.seq` and the
/// parts' `call_seq`) and the source a call was synced from (`calls.source_id`, which holds
/// an address). A call is exported by (provider, id).
const LAYOUT_COLUMNS: &[&str] = &["seq", "call_seq", "source_id"];

/// The file formats of `export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Parquet,
    Csv,
}

impl ExportFormat {
    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
        }
    }
}

/// Parquet compression of `export`. zstd at level 1 is the default: on call data its files are
/// no larger than at zstd's usual level 3 (57 against 59 MiB for a million calls) and it takes
/// about 0.9 s less CPU there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    #[default]
    Zstd,
    Lz4,
    Snappy,
    Uncompressed,
}

impl Compression {
    fn parquet(self) -> ParquetCompression {
        match self {
            Compression::Zstd => ParquetCompression::Zstd(ZstdLevel::try_new(1).ok()),
            Compression::Lz4 => ParquetCompression::Lz4Raw,
            Compression::Snappy => ParquetCompression::Snappy,
            Compression::Uncompressed => ParquetCompression::Uncompressed,
        }
    }
}

/// Hive partition keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Partitioning {
    pub provider: bool,
    pub day: bool,
}

/// Parses `--partition-by`: `provider`, `day` or `provider,day`.
pub fn parse_partitioning(text: &str) -> Result<Partitioning, String> {
    let mut p = Partitioning::default();
    for part in text.split(',').map(str::trim) {
        match part {
            "provider" => p.provider = true,
            "day" => p.day = true,
            other => return Err(format!("'{other}' is not provider or day")),
        }
    }
    Ok(p)
}

#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub out: PathBuf,
    pub format: ExportFormat,
    pub tables: Vec<String>,
    pub partition: Partitioning,
    pub with_raw: bool,
    /// Parquet only.
    pub compression: Compression,
}

/// What was written for one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableExport {
    pub table: String,
    pub rows: u64,
    pub files: usize,
    pub folder: PathBuf,
}

/// Exports every table of `options` under `options.out`, in one read snapshot.
pub fn export(
    conn: &Connection,
    options: &ExportOptions,
    snapshot: &Provenance,
) -> Result<Vec<TableExport>, QueryError> {
    export_splitting_at(conn, options, snapshot, SPLIT_ROWS)
}

/// `export`, reading `calls` in two halves from `split_rows` rows on.
fn export_splitting_at(
    conn: &Connection,
    options: &ExportOptions,
    snapshot: &Provenance,
    split_rows: u64,
) -> Result<Vec<TableExport>, QueryError> {
    std::fs::create_dir_all(&options.out).map_err(|source| QueryError::OutFile {
        path: options.out.clone(),
        source,
    })?;
    let mut helper = begin_in_one_snapshot(conn)?;
    let result = options
        .tables
        .iter()
        .map(|table| export_table(conn, helper.as_mut(), options, snapshot, table, split_rows))
        .collect();
    conn.execute_batch("COMMIT")?;
    if let Some(helper) = &helper {
        helper.execute_batch("COMMIT")?;
    }
    result
}

/// Begins the read transaction of `conn` and, when the archive is a file, of a second
/// read-only connection that sees the same snapshot: a third connection's `data_version` did
/// not move while both began, so no commit fell between them. `None` when that could not be
/// had (a sync kept committing); the export then reads on `conn` alone.
fn begin_in_one_snapshot(conn: &Connection) -> Result<Option<Connection>, QueryError> {
    let path = conn.path().filter(|p| !p.is_empty()).map(Path::new);
    let Some(path) = path else {
        conn.execute_batch("BEGIN")?;
        return Ok(None);
    };
    let open = || crate::store::Archive::open_read_only(path).map_err(QueryError::from);
    let (probe, helper) = (open()?, open()?);
    let data_version = || -> Result<i64, QueryError> {
        Ok(probe.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    };
    let begin = |c: &Connection| -> Result<(), QueryError> {
        c.execute_batch("BEGIN")?;
        // The snapshot is taken at the first read, not at BEGIN.
        c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(())
    };
    for _ in 0..3 {
        let before = data_version()?;
        begin(conn)?;
        begin(&helper)?;
        if data_version()? == before {
            return Ok(Some(helper));
        }
        conn.execute_batch("ROLLBACK")?;
        helper.execute_batch("ROLLBACK")?;
    }
    conn.execute_batch("BEGIN")?;
    Ok(None)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SELECT for a table: its file columns, then the partition keys.
#[derive(Clone)]
struct Plan {
    table: String,
    /// The select list, for statements over part of the table.
    columns: String,
    sql: String,
    /// Values for the named parameters of `sql`.
    params: Vec<(&'static str, Value)>,
    names: Vec<String>,
    kinds: Vec<super::frame::ColumnKind>,
    keys: usize,
    /// How the table can be read in two halves; `None` when partitioned.
    range: Option<RangeKey>,
}

/// An order SQLite can read a table in by ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeKey {
    /// `calls` through its covering index `calls_columns`, by (provider, created_at).
    CallsColumns,
    /// An integer key that is never NULL: the rowid, or the first primary key column of a
    /// WITHOUT ROWID table (the parts' `call_seq`).
    Integer(&'static str),
}

fn plan(conn: &Connection, options: &ExportOptions, table: &str) -> Result<Plan, QueryError> {
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

/// One open output file.
enum Part {
    Parquet(Box<polars::io::parquet::write::BatchedWriter<File>>),
    Csv(polars::io::csv::write::BatchedWriter<File>),
}

impl Part {
    fn write(&mut self, df: &DataFrame) -> Result<(), QueryError> {
        match self {
            Part::Parquet(w) => w.write_batch(df)?,
            Part::Csv(w) => w.write_batch(&with_temporal_as_text(df)?)?,
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), PolarsError> {
        match &mut self {
            Part::Parquet(w) => w.finish().map(|_| ()),
            Part::Csv(w) => w.finish(),
        }
    }
}

/// The open files of one table's export, by partition folder.
struct Parts<'a> {
    root: &'a Path,
    format: ExportFormat,
    compression: Compression,
    provenance: Provenance,
    open: HashMap<PathBuf, Part>,
    /// Next part number per partition folder.
    next: HashMap<PathBuf, usize>,
    files: usize,
}

impl Parts<'_> {
    fn write(&mut self, folder: &Path, df: &DataFrame) -> Result<(), QueryError> {
        if !self.open.contains_key(folder) {
            if self.open.len() >= MAX_OPEN_FILES {
                self.finish_all()?;
            }
            let dir = self.root.join(folder);
            let number = self.next.entry(folder.to_path_buf()).or_insert(0);
            let path = dir.join(format!("part-{number}.{}", self.format.extension()));
            *number += 1;
            let cannot = |source| QueryError::OutFile {
                path: path.clone(),
                source,
            };
            std::fs::create_dir_all(&dir).map_err(cannot)?;
            let file = File::create(&path).map_err(cannot)?;
            let part = match self.format {
                ExportFormat::Parquet => Part::Parquet(Box::new(
                    ParquetWriter::new(file)
                        .with_compression(self.compression.parquet())
                        .with_key_value_metadata(Some(self.provenance.key_values()))
                        .batched(df.schema())?,
                )),
                ExportFormat::Csv => Part::Csv(
                    CsvWriter::new(file)
                        .include_header(true)
                        .batched(with_temporal_as_text(&df.head(Some(0)))?.schema())?,
                ),
            };
            self.files += 1;
            self.open.insert(folder.to_path_buf(), part);
        }
        match self.open.get_mut(folder) {
            Some(part) => part.write(df),
            None => Ok(()),
        }
    }

    fn finish_all(&mut self) -> Result<(), QueryError> {
        for (_, part) in self.open.drain() {
            part.finish()?;
        }
        Ok(())
    }
}

/// A hive folder segment `key=value`, with characters that are unsafe in paths escaped as
/// `%XX` and NULL as Hive's default partition name.
fn hive_segment(key: &str, value: Option<&str>) -> String {
    let value = match value {
        None => return format!("{key}=__HIVE_DEFAULT_PARTITION__"),
        Some(v) => v,
    };
    let mut out = format!("{key}=");
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b' ' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn export_table(
    conn: &Connection,
    helper: Option<&mut Connection>,
    options: &ExportOptions,
    snapshot: &Provenance,
    table: &str,
    split_rows: u64,
) -> Result<TableExport, QueryError> {
    let plan = plan(conn, options, table)?;
    let folder = options.out.join(table);
    let staging = options.out.join(format!(".{table}.partial"));
    let cannot = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| QueryError::OutFile { path, source }
    };
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(cannot(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(cannot(&staging))?;
    let new_parts = |first_number: usize| Parts {
        root: &staging,
        format: options.format,
        compression: options.compression,
        provenance: Provenance {
            source: format!("table {table}"),
            ..snapshot.clone()
        },
        open: HashMap::new(),
        next: HashMap::from([(PathBuf::new(), first_number)]),
        files: 0,
    };
    let (mut parts, mut second_parts) = (new_parts(0), new_parts(1));
    let halves = match helper {
        Some(helper) => split_table(conn, &plan, split_rows)?.map(|halves| (helper, halves)),
        None => None,
    };
    let written = match halves {
        None => write_chunks(conn, &plan, options.partition, &mut parts),
        Some((helper, halves)) => {
            write_halves(conn, helper, &halves, [&mut parts, &mut second_parts])
        }
    }
    .and_then(|rows| {
        parts.finish_all()?;
        second_parts.finish_all()?;
        Ok(rows)
    });
    let rows = match written {
        Ok(rows) => rows,
        Err(e) => {
            parts.open.clear();
            second_parts.open.clear();
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let files = parts.files + second_parts.files;
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(cannot(&folder))?;
    }
    std::fs::rename(&staging, &folder).map_err(cannot(&folder))?;
    Ok(TableExport {
        table: table.to_string(),
        rows,
        files,
        folder,
    })
}

/// The two halves of an unpartitioned table with at least `min_rows` rows, each a range of
/// the plan's `RangeKey` (so neither reads the other's pages), and the table's row count,
/// which the halves must add up to. `None` for smaller tables and tables with no such key.
fn split_table(
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
type Cut = (Vec<(&'static str, Value)>, [Vec<String>; 2]);

/// `calls` cut near its middle in the order of `calls_columns` (provider, created_at). Rows
/// without `created_at` sort first within their provider, so they go to the first half.
/// `None` when the middle row has no `created_at`.
fn calls_middle(conn: &Connection) -> Result<Option<Cut>, QueryError> {
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
fn integer_middle(conn: &Connection, table: &str, key: &str) -> Result<Option<Cut>, QueryError> {
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
fn write_halves(
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

/// Rows as SQLite returned them, copied out of the statement so that another thread can turn
/// them into frames while this one steps on.
struct RawRows {
    /// Values per row: the file columns, then the partition keys.
    width: usize,
    cells: Vec<RawCell>,
    /// The text of `cells`, not yet checked as UTF-8.
    text: Vec<u8>,
    blobs: Vec<u8>,
}

#[derive(Clone, Copy)]
enum RawCell {
    Null,
    Integer(i64),
    Real(f64),
    Text { start: usize, end: usize },
    Blob { start: usize, end: usize },
}

impl RawRows {
    fn new(width: usize, text_capacity: usize) -> RawRows {
        RawRows {
            width,
            cells: Vec::with_capacity(width * BLOCK_ROWS),
            text: Vec::with_capacity(text_capacity),
            blobs: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.cells.len() / self.width
    }

    fn push(&mut self, value: ValueRef<'_>) {
        let copy = |into: &mut Vec<u8>, bytes: &[u8]| {
            let start = into.len();
            into.extend_from_slice(bytes);
            (start, into.len())
        };
        let cell = match value {
            ValueRef::Null => RawCell::Null,
            ValueRef::Integer(i) => RawCell::Integer(i),
            ValueRef::Real(f) => RawCell::Real(f),
            ValueRef::Text(t) => {
                let (start, end) = copy(&mut self.text, t);
                RawCell::Text { start, end }
            }
            ValueRef::Blob(b) => {
                let (start, end) = copy(&mut self.blobs, b);
                RawCell::Blob { start, end }
            }
        };
        self.cells.push(cell);
    }

    /// Checks the block's text as UTF-8 in one pass, while it is still in this thread's cache.
    /// Text that is not valid UTF-8 (SQLite does not check) gets U+FFFD for its bad bytes, cell
    /// by cell, as `String::from_utf8_lossy` does.
    fn seal(self) -> Block {
        let RawRows {
            width,
            mut cells,
            text,
            blobs,
        } = self;
        let text = match String::from_utf8(text) {
            Ok(text)
                if cells.iter().all(|cell| match *cell {
                    RawCell::Text { start, end } => {
                        text.is_char_boundary(start) && text.is_char_boundary(end)
                    }
                    _ => true,
                }) =>
            {
                text
            }
            Ok(text) => repair(&mut cells, text.as_bytes()),
            Err(e) => repair(&mut cells, e.as_bytes()),
        };
        Block {
            width,
            cells,
            text,
            blobs,
        }
    }
}

/// Rebuilds a block's text cell by cell, replacing bytes that are not UTF-8.
fn repair(cells: &mut [RawCell], bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for cell in cells {
        if let RawCell::Text { start, end } = cell {
            let value = String::from_utf8_lossy(&bytes[*start..*end]);
            *start = text.len();
            text.push_str(&value);
            *end = text.len();
        }
    }
    text
}

/// Rows on their way from the SQLite reader to the frame builder: every text cell's range in
/// `text` starts and ends on a character boundary.
struct Block {
    width: usize,
    cells: Vec<RawCell>,
    text: String,
    blobs: Vec<u8>,
}

impl Block {
    fn value(&self, cell: RawCell) -> CellValue<'_> {
        match cell {
            RawCell::Null => CellValue::Null,
            RawCell::Integer(i) => CellValue::Integer(i),
            RawCell::Real(f) => CellValue::Real(f),
            RawCell::Text { start, end } => CellValue::Text(&self.text[start..end]),
            RawCell::Blob { start, end } => CellValue::Blob(&self.blobs[start..end]),
        }
    }
}

/// One chunk of rows on its way to the files: the frame and, when partitioned, each row's
/// partition folder as an index into the folders named so far.
struct Chunk {
    frame: DataFrame,
    row_folder: Vec<u32>,
    /// Folders first seen in this chunk, in index order.
    new_folders: Vec<PathBuf>,
}

/// Three stages, each on its own thread: this one steps SQLite and copies the values out, the
/// next builds frames from them, the last encodes and writes. Returns the number of rows.
fn write_chunks(
    conn: &Connection,
    plan: &Plan,
    partition: Partitioning,
    parts: &mut Parts<'_>,
) -> Result<u64, QueryError> {
    let (raw_sender, raw) = std::sync::mpsc::sync_channel::<Block>(BLOCKS_IN_FLIGHT);
    let (chunk_sender, chunks) = std::sync::mpsc::sync_channel::<Chunk>(1);
    std::thread::scope(|scope| {
        let partitioned = plan.keys > 0;
        let writer = scope.spawn(move || write_parts(&chunks, partitioned, parts));
        let builder = scope.spawn(move || build_chunks(&raw, plan, partition, &chunk_sender));
        let read = read_rows(conn, plan, &raw_sender);
        drop(raw_sender);
        let built = builder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // A failed stage ends the ones before it early, so the first error downstream is the
        // one to report.
        written.and(built).and_then(|rows| read.map(|()| rows))
    })
}

fn write_parts(
    chunks: &Receiver<Chunk>,
    partitioned: bool,
    parts: &mut Parts<'_>,
) -> Result<(), QueryError> {
    let mut folders: Vec<PathBuf> = Vec::new();
    for chunk in chunks {
        folders.extend(chunk.new_folders);
        if !partitioned {
            parts.write(Path::new(""), &chunk.frame)?;
            continue;
        }
        let mut indices: Vec<Vec<IdxSize>> = vec![Vec::new(); folders.len()];
        for (row, f) in chunk.row_folder.iter().enumerate() {
            indices[*f as usize].push(row as IdxSize);
        }
        for (f, idx) in indices.into_iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let part = chunk.frame.take(&IdxCa::from_vec("idx".into(), idx))?;
            parts.write(&folders[f], &part)?;
        }
    }
    Ok(())
}

/// Steps the plan's statement, sending its rows on in blocks; stops early, without error, when
/// the next stage has stopped.
fn read_rows(conn: &Connection, plan: &Plan, blocks: &SyncSender<Block>) -> Result<(), QueryError> {
    let width = plan.names.len() + plan.keys;
    let mut stmt = conn.prepare(&plan.sql)?;
    for (name, value) in &plan.params {
        stmt.raw_bind_parameter(*name, value)?;
    }
    let mut rows = stmt.raw_query();
    let mut block = RawRows::new(width, 0);
    while let Some(row) = rows.next()? {
        for i in 0..width {
            block.push(row.get_ref(i)?);
        }
        if block.len() >= BLOCK_ROWS || block.text.len() + block.blobs.len() >= BLOCK_BYTES {
            let next = RawRows::new(width, block.text.len());
            if blocks
                .send(std::mem::replace(&mut block, next).seal())
                .is_err()
            {
                return Ok(());
            }
        }
    }
    let _ = blocks.send(block.seal());
    Ok(())
}

fn build_chunks(
    blocks: &Receiver<Block>,
    plan: &Plan,
    partition: Partitioning,
    chunks: &SyncSender<Chunk>,
) -> Result<u64, QueryError> {
    let width = plan.names.len();
    let mut builder = FrameBuilder::new(plan.names.clone(), plan.kinds.clone(), CHUNK_ROWS);
    let mut row_folder: Vec<u32> = Vec::with_capacity(CHUNK_ROWS);
    let mut new_folders: Vec<PathBuf> = Vec::new();
    let mut folder_index: HashMap<String, u32> = HashMap::new();
    let mut key = String::new();
    let mut total = 0u64;
    let key_names: Vec<&str> = [("provider", partition.provider), ("day", partition.day)]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
    let send = |builder: &mut FrameBuilder,
                row_folder: &mut Vec<u32>,
                new_folders: &mut Vec<PathBuf>|
     -> Result<bool, QueryError> {
        let chunk = Chunk {
            frame: builder.take()?,
            row_folder: std::mem::replace(row_folder, Vec::with_capacity(CHUNK_ROWS)),
            new_folders: std::mem::take(new_folders),
        };
        Ok(chunks.send(chunk).is_ok())
    };
    for block in blocks {
        for row in block.cells.chunks_exact(block.width) {
            let (columns, keys) = row.split_at(width);
            builder
                .push_row(columns.iter().map(|cell| block.value(*cell)))
                .map_err(|e| match e {
                    QueryError::Mismatch {
                        column,
                        kind,
                        value,
                    } => QueryError::Mismatch {
                        column: format!("{}.{column}", plan.table),
                        kind,
                        value,
                    },
                    other => other,
                })?;
            if plan.keys > 0 {
                key.clear();
                for (k, (name, cell)) in key_names.iter().zip(keys).enumerate() {
                    if k > 0 {
                        key.push('/');
                    }
                    let value = match block.value(*cell) {
                        CellValue::Text(t) => Some(t),
                        _ => None,
                    };
                    key.push_str(&hive_segment(name, value));
                }
                let f = match folder_index.get(&key) {
                    Some(f) => *f,
                    None => {
                        let f = folder_index.len() as u32;
                        new_folders.push(PathBuf::from(&key));
                        folder_index.insert(key.clone(), f);
                        f
                    }
                };
                row_folder.push(f);
            }
            total += 1;
            if builder.rows() >= CHUNK_ROWS
                && !send(&mut builder, &mut row_folder, &mut new_folders)?
            {
                return Ok(total);
            }
        }
    }
    if builder.rows() > 0 || total == 0 {
        send(&mut builder, &mut row_folder, &mut new_folders)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{ParquetReader, SerReader};

    #[test]
    fn partition_flags_parse_and_segments_escape() {
        assert_eq!(
            parse_partitioning("provider,day"),
            Ok(Partitioning {
                provider: true,
                day: true
            })
        );
        assert!(parse_partitioning("agent").is_err());
        assert_eq!(hive_segment("day", Some("2026-11-02")), "day=2026-11-02");
        assert_eq!(
            hive_segment("provider", Some("a/b=c")),
            "provider=a%2Fb%3Dc"
        );
        assert_eq!(hive_segment("day", None), "day=__HIVE_DEFAULT_PARTITION__");
    }

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

    /// A new, empty archive in `dir`, and a writable connection to it.
    fn new_archive(dir: &Path) -> (PathBuf, Connection) {
        let path = dir.join("a.db");
        drop(crate::store::Archive::open(&path).unwrap());
        let writable = Connection::open(&path).unwrap();
        (path, writable)
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
                     INSERT INTO evaluations (provider, id, call_id, raw_json, call_seq)
                     VALUES ('{p}', 'e{i:03}', 'c{i:03}', '{{}}', {i});",
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
                    } else {
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

    #[test]
    fn both_readers_keep_one_snapshot_while_a_sync_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writable) = new_archive(dir.path());
        let add = |i: i64| {
            writable
                .execute(
                    "INSERT INTO calls (provider, id, raw_json, raw_hash, synced_at, seq)
                     VALUES ('a', ?1, '{}', 0, '2026-11-30T00:00:00.000Z', ?2)",
                    rusqlite::params![format!("c{i}"), i],
                )
                .unwrap()
        };
        add(1);
        let conn = crate::store::Archive::open_read_only(&path).unwrap();
        let helper = begin_in_one_snapshot(&conn)
            .unwrap()
            .expect("a file archive");
        add(2);
        let calls = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!((calls(&conn), calls(&helper)), (1, 1));
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(calls(&conn), 2);
    }

    fn texts(block: &Block) -> Vec<String> {
        block
            .cells
            .iter()
            .map(|cell| match block.value(*cell) {
                CellValue::Text(t) => t.to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_block_keeps_its_text_and_mends_bytes_that_are_not_utf8() {
        let mut rows = RawRows::new(2, 0);
        for value in [
            ValueRef::Text("café".as_bytes()),
            ValueRef::Integer(7),
            ValueRef::Blob(&[0xff]),
            ValueRef::Null,
        ] {
            rows.push(value);
        }
        assert_eq!(
            texts(&rows.seal()),
            ["café", "Integer(7)", "Blob([255])", "Null"]
        );

        // A bad byte in one cell; and two cells, each invalid, whose bytes together make "é".
        let mut rows = RawRows::new(2, 0);
        for value in [
            ValueRef::Text(b"a\xffb"),
            ValueRef::Text(b"ok"),
            ValueRef::Text(b"x\xc3"),
            ValueRef::Text(b"\xa9y"),
        ] {
            rows.push(value);
        }
        assert_eq!(rows.len(), 2);
        assert_eq!(
            texts(&rows.seal()),
            ["a\u{fffd}b", "ok", "x\u{fffd}", "\u{fffd}y"]
        );
    }
}
