//! `export`: the archive's tables as Parquet or CSV files a warehouse can load, optionally
//! hive-partitioned (`calls/provider=bluejay/day=2026-11-02/part-0.parquet`).
//!
//! Memory stays bounded by `CHUNK_ROWS`, not by table size: each table is read in chunks of
//! that many rows, and each chunk is written as one row group (per partition) of files that
//! stay open across chunks; at most `MAX_OPEN_FILES` files are open at once, past that they
//! are closed and later rows start new parts. Column types come from the declared schema
//! (`frame::declared_kind`), so every chunk has the same schema. All tables are read in one
//! read transaction, so the export is one consistent snapshot even while a sync writes.
//! `raw_json`, `raw_hash` and the evaluations' pointers into the call's JSON are left out unless
//! asked for, `seq` and `call_seq` always.
//! Partition columns live in the folder names only (the hive convention); `day` is the UTC date
//! of the call's `created_at`, for child tables too. Each table is written into a hidden folder
//! first and renamed into place when complete, so a failed export never leaves a half table;
//! a table folder is replaced only if callvault wrote it (`target`), and every table's folder
//! is checked before any is replaced.
//!
//! `--incremental` keeps `DIR` as a lake instead (`lake`): only the partitions whose content
//! changed since the last export are rewritten, each file replaced atomically, and a manifest
//! (`manifest`) says what the lake holds.
//!
//! A table goes through three threads: the caller's steps SQLite and copies blocks of rows out
//! (`RawRows`, sealed into a `Block` once its text is checked), the next builds frames, the
//! last encodes and writes them. Stepping SQLite is the longest of the three, so a large
//! unpartitioned table is read in two halves at once (two ranges of a key, see `RangeKey`), on
//! two connections in one snapshot, each half into its own file (`part-0`, `part-1`); the two
//! together are checked against the table's row count.
//!
//! Files by concern: `options` (what the user asks for), `target` (what may be replaced),
//! `snapshot` (two readers in one read transaction), `plan` (the SELECT of a table or of one
//! partition), `parts` (the open output files and their hive folders), `halves` (cutting a
//! large table in two ranges), `pipeline` (the three threads from SQLite rows to written
//! files), `lake` and `manifest` (incremental exports).

mod halves;
mod lake;
mod manifest;
mod options;
mod parts;
mod pipeline;
mod plan;
pub(crate) mod snapshot;
mod target;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::output::Provenance;
use super::QueryError;
use halves::{split_table, write_halves, SPLIT_ROWS};
pub use options::{parse_partitioning, Compression, ExportFormat, ExportOptions, Partitioning};
use parts::Parts;
use pipeline::write_chunks;
pub use pipeline::CHUNK_ROWS;
use plan::plan;
use snapshot::begin_in_one_snapshot;
use target::{check_replaceable, remove_target, write_marker};

pub use lake::{export_lake, LakeExport};

/// The tables exported when none are named: every table that holds call content.
pub const DEFAULT_TABLES: &[&str] = &crate::store::CALL_CONTENT_TABLES;

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
    for table in &options.tables {
        check_replaceable(&options.out.join(table), options.force)?;
    }
    std::fs::create_dir_all(&options.out).map_err(|source| QueryError::OutFile {
        path: options.out.clone(),
        source,
    })?;
    let mut helper = begin_in_one_snapshot(conn)?;
    let result = options
        .tables
        .iter()
        .map(|table| plan(conn, options, table))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|plans| {
            // A lake's manifest would no longer say what the folder holds.
            manifest::forget(&options.out)?;
            plans
                .into_iter()
                .map(|plan| {
                    export_table(conn, helper.as_mut(), options, snapshot, plan, split_rows)
                })
                .collect()
        });
    conn.execute_batch("COMMIT")?;
    if let Some(helper) = &helper {
        helper.execute_batch("COMMIT")?;
    }
    result
}

fn export_table(
    conn: &Connection,
    helper: Option<&mut Connection>,
    options: &ExportOptions,
    snapshot: &Provenance,
    plan: plan::Plan,
    split_rows: u64,
) -> Result<TableExport, QueryError> {
    let table = plan.table.as_str();
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
    write_marker(&staging)?;
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
        empty_files: true,
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
    remove_target(&folder)?;
    std::fs::rename(&staging, &folder).map_err(cannot(&folder))?;
    Ok(TableExport {
        table: table.to_string(),
        rows,
        files,
        folder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new, empty archive in `dir`, and a writable connection to it.
    pub(super) fn new_archive(dir: &Path) -> (PathBuf, Connection) {
        let path = dir.join("a.db");
        drop(crate::store::Archive::open(&path).unwrap());
        let writable = Connection::open(&path).unwrap();
        (path, writable)
    }
}
