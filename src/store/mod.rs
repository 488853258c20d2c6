//! The archive: one SQLite file, its schema, and every write callvault makes to it.
//!
//! `Archive` owns a read-write connection; during a sync it lives on the one writer thread
//! (`ArchiveWriter`) and nothing else writes. A page of calls, with all their children, the
//! run's counts and the stream's progress, is one transaction, so a crash at any instant
//! leaves the archive as it was after some whole page. A call whose raw JSON hashes the same
//! as the stored one is left alone; a changed call is removed with all its children and
//! written anew, so children never mix two versions. Readers open their own read-only
//! connections (`open_read_only`), which WAL lets run beside a writer. This module knows no
//! HTTP.
//!
//! Files by concern: `open` (the file, pragmas, schema and upgrades), `group` (group
//! commits), `streams` (stream state, walks in progress, runs), `calls` (call content),
//! `changes` (which export partitions changed, for incremental exports), `journal` (delete
//! jobs), `writer` (the writer thread), `checkpoints` (its checkpoints, beside it).

mod calls;
pub mod changes;
mod checkpoints;
mod group;
pub mod journal;
mod migrations;
mod open;
mod streams;
mod writer;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub(crate) use calls::remove_call;
pub use calls::{PageCounts, PageWrite, CALL_CONTENT_TABLES};
pub use streams::{
    stream_summaries, CommittedPage, InterruptedWalk, RunOutcome, SourceSpec, StreamId,
    StreamSummary,
};
pub use writer::{ArchiveWriter, Queued};

/// Version 1 of the schema; `migrations::STEPS` bring it to `SCHEMA_VERSION`.
pub const SCHEMA: &str = include_str!("../../schema.sql");

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1 + migrations::STEPS.len() as i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot upgrade the archive to schema {version}: {source}")]
    Upgrade {
        version: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path} is not a SQLite database; callvault left it untouched")]
    NotSqlite { path: PathBuf },
    #[error(
        "{path} is a SQLite database but not a callvault archive; callvault left it untouched"
    )]
    ForeignDatabase { path: PathBuf },
    #[error("{path} was written by a newer callvault (schema {found}, this build knows {known})")]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{path} is being written by a sync, and its folder cannot hold a reader's shared-memory file; run again when the sync has ended")]
    WriterInReadOnlyFolder { path: PathBuf },
    #[error("no archive at {path}; run `callvault sync` first")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the archive writer stopped")]
    WriterGone,
    #[error("the archive could not commit: {0}")]
    Commit(String),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
}

pub struct Archive {
    conn: Connection,
    /// Set while the writer holds a group transaction open (see `writer`).
    group: Option<group::GroupState>,
}

/// Whether `pid` is another running callvault. A PID the system gave to some other program
/// since is not: its job (or temporary file) was left behind.
pub(crate) fn process_alive(pid: i64) -> bool {
    if pid == std::process::id() as i64 {
        return false;
    }
    match std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline")) {
        Ok(cmdline) => cmdline
            .split(|b| *b == 0)
            .next()
            .is_some_and(|program| program.ends_with(b"callvault")),
        Err(_) => false,
    }
}

/// A stable 64-bit hash of a record's raw text, to notice unchanged records cheaply.
pub fn content_hash(raw: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(raw.as_bytes()) as i64
}

/// The hash walks remember a call id by: 8 bytes a call, whatever the id's length.
pub fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// A source for `provider` at a made-up address, and a run begun for the stream `scope`: what
/// unit tests of other modules need to write pages.
#[cfg(test)]
pub(crate) fn test_stream(
    archive: &mut Archive,
    provider: crate::providers::ProviderKind,
    scope: &str,
) -> (StreamId, i64) {
    let source = archive
        .source_id(&SourceSpec {
            provider,
            account: "default".into(),
            base_url: "http://127.0.0.1:9".into(),
            key_env: provider.key_env().into(),
        })
        .expect("source recorded");
    let run = archive
        .begin_run(provider, source, &[scope.to_string()])
        .expect("run begun");
    (
        StreamId {
            provider,
            source,
            scope: scope.into(),
        },
        run,
    )
}
