//! A lake's manifest, `DIR/_callvault_manifest.json`: which archive the lake mirrors, when it
//! was last brought up to date, the options it was written with, and per partition the
//! archive's change counter it was written at (`store::changes`) and, per table, its file, row
//! count, size and content hash. It is replaced whole by a rename, after the partition files,
//! so it never names a file that is not there; after a crash it lags the files, and the next
//! run rewrites every partition it lags on (their counters differ from it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::super::QueryError;

/// The manifest's file name in `DIR`. Starts with `_`, which Spark, Hive and Trino skip.
pub(super) const MANIFEST: &str = "_callvault_manifest.json";

/// The manifest layout this build writes and reads.
pub(super) const MANIFEST_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub manifest_version: u32,
    /// `callvault <version>`.
    pub written_by: String,
    /// The archive the lake mirrors (`archive_meta.archive_id`).
    pub archive_id: String,
    /// The archive's schema version the files were written from: a schema change can change a
    /// table's columns (schema 6 put `json_path` where evaluations had `raw_json`), and a lake
    /// must not mix files of two shapes. Missing in manifests written before it was kept.
    #[serde(default)]
    pub schema_version: Option<i64>,
    /// When the archive was read for the last run (RFC 3339 UTC): the lake holds the archive
    /// as it was then.
    pub snapshot_at: String,
    /// The last finished sync of any stream then, when known.
    pub last_synced_at: Option<String>,
    pub options: LakeOptions,
    /// By hive folder (`provider=bluejay/day=2026-11-02`), in order.
    pub partitions: BTreeMap<String, Partition>,
}

/// The options that shape a lake's files; a run with other options is refused unless `--full`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LakeOptions {
    pub format: String,
    pub tables: Vec<String>,
    pub partition_by: Vec<String>,
    pub with_raw: bool,
    /// Parquet only.
    pub compression: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Partition {
    pub provider: String,
    /// The UTC date of the calls' `created_at`; `None` for calls without one.
    pub day: Option<String>,
    /// The archive's change counter of this partition when it was written.
    pub version: i64,
    /// The tables with rows in this partition; a partition whose calls all left has none.
    pub tables: BTreeMap<String, TableFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct TableFile {
    /// Relative to `DIR`, with `/` separators.
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    /// XXH3-64 of the file's bytes, as 16 hex digits.
    pub xxh3: String,
}

/// What is found at `DIR/_callvault_manifest.json`.
pub(super) enum Found {
    None,
    Unreadable(String),
    Manifest(Box<Manifest>),
}

pub(super) fn read(dir: &Path) -> Result<Found, QueryError> {
    let path = dir.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::None),
        Err(source) => return Err(QueryError::ReadFile { path, source }),
    };
    Ok(match serde_json::from_slice::<Manifest>(&bytes) {
        Ok(m) if m.manifest_version > MANIFEST_VERSION => Found::Unreadable(format!(
            "manifest version {} is newer than this build's {MANIFEST_VERSION}",
            m.manifest_version
        )),
        Ok(m) => Found::Manifest(Box::new(m)),
        Err(e) => Found::Unreadable(e.to_string()),
    })
}

/// Writes the manifest beside its place and renames it there, so a reader finds the old one
/// or the new one, whole.
pub(super) fn write(dir: &Path, manifest: &Manifest) -> Result<(), QueryError> {
    let path = dir.join(MANIFEST);
    let partial: PathBuf = dir.join(format!("{MANIFEST}.partial"));
    let cannot = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| QueryError::OutFile { path, source }
    };
    let mut text = serde_json::to_vec_pretty(manifest)
        .map_err(|e| cannot(&partial)(std::io::Error::other(e)))?;
    text.push(b'\n');
    std::fs::write(&partial, text).map_err(cannot(&partial))?;
    std::fs::rename(&partial, &path).map_err(cannot(&path))
}

/// Removes a lake's manifest: what a plain export does before it replaces tables of the
/// folder, after which the manifest would no longer say what the folder holds.
pub(super) fn forget(dir: &Path) -> Result<(), QueryError> {
    let path = dir.join(MANIFEST);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(QueryError::OutFile { path, source: e })
        }
        _ => Ok(()),
    }
}

/// The hash a manifest records for a file's bytes.
pub(super) fn file_hash(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}
