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

pub mod journal;
mod migrations;
mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use std::cell::Cell;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Savepoint};

pub use writer::{ArchiveWriter, Queued};

use crate::providers::{CallRecord, ProviderKind, StreamState};
use crate::time::{format_timestamp, parse_timestamp};

/// Version 1 of the schema; `migrations::STEPS` bring it to `SCHEMA_VERSION`.
pub const SCHEMA: &str = include_str!("../../schema.sql");

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1 + migrations::STEPS.len() as i64;

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Page size of a new archive, in bytes.
const PAGE_SIZE: i64 = 16_384;

/// The writer's page cache, in KiB: large enough that a page of calls with its indexes never
/// spills to the WAL before its commit; bounded so memory stays flat.
const CACHE_KIB: i64 = 64 * 1024;

/// WAL pages between automatic checkpoints (64 MiB at 16 KiB a page): fewer, larger
/// checkpoints write each hot page once instead of many times. 256 MiB cut bulk deletes from
/// about 1,480 to 1,280 a second (every read searches a longer WAL index).
const CHECKPOINT_PAGES: i64 = 4_096;

/// What a WAL file is cut back to once a checkpoint has emptied it.
const WAL_KEEP_BYTES: i64 = 64 * 1024 * 1024;

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
}

/// Counts of what one page did to the archive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageCounts {
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Evaluations written (of new and updated calls).
    pub evaluations: u64,
    /// Calls deleted through callvault that the provider still returned; not re-inserted.
    pub refused_resurrections: u64,
}

impl std::ops::AddAssign for PageCounts {
    fn add_assign(&mut self, o: Self) {
        self.new += o.new;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.evaluations += o.evaluations;
        self.refused_resurrections += o.refused_resurrections;
    }
}

/// How a sync run ended, as `sync_runs.outcome` records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Complete,
    Partial,
    Failed,
}

impl RunOutcome {
    fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Complete => "complete",
            RunOutcome::Partial => "partial",
            RunOutcome::Failed => "failed",
        }
    }
}

/// A stream as `status` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamSummary {
    pub provider: String,
    pub scope: String,
    pub base_url: String,
    pub calls: i64,
    pub evaluations: i64,
    pub last_synced_at: Option<String>,
    pub last_complete_started_at: Option<String>,
    pub checkpoint: Option<String>,
}

/// A page of a walk as the archive remembers it, so an interrupted walk can skip it.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedPage {
    pub cursor_json: String,
    /// Calls the page held.
    pub calls: u64,
    /// The provider's count of the walk when the page was fetched.
    pub walk_size: Option<u64>,
}

/// A walk that started and never completed.
#[derive(Clone, Debug, PartialEq)]
pub struct InterruptedWalk {
    pub checkpoint: serde_json::Value,
    pub started_at: DateTime<Utc>,
    pub pages: Vec<CommittedPage>,
}

pub struct Archive {
    conn: Connection,
    /// Set while the writer holds a group transaction open (see `writer`).
    group: Option<GroupState>,
}

struct GroupState {
    /// A job left its scope without committing: the group must not commit.
    poisoned: Cell<bool>,
}

/// Where one operation writes: its own savepoint, or the writer's open group transaction.
///
/// Inside a group a savepoint per job would copy every page the job touches to the
/// sub-journal first (a sixth of a large sync's time); the group instead commits or rolls
/// back whole, and a job that fails poisons it.
pub(crate) enum WriteScope<'a> {
    Own(Savepoint<'a>),
    Group {
        conn: &'a Connection,
        guard: GroupGuard<'a>,
    },
}

/// Poisons the group when a job's scope ends without a commit (an error, an early return).
pub(crate) struct GroupGuard<'a> {
    poisoned: &'a Cell<bool>,
    committed: bool,
}

impl Drop for GroupGuard<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.poisoned.set(true);
        }
    }
}

impl WriteScope<'_> {
    pub(crate) fn commit(self) -> rusqlite::Result<()> {
        match self {
            WriteScope::Own(savepoint) => savepoint.commit(),
            WriteScope::Group { mut guard, .. } => {
                guard.committed = true;
                Ok(())
            }
        }
    }
}

impl std::ops::Deref for WriteScope<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            WriteScope::Own(savepoint) => savepoint,
            WriteScope::Group { conn, .. } => conn,
        }
    }
}

/// Refuses, without writing a byte, a file that is not a SQLite database.
fn check_header(path: &Path) -> Result<bool, StoreError> {
    use std::io::Read;
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(e)),
    };
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]).map_err(io)? {
            0 => break,
            n => read += n,
        }
    }
    if read == 0 {
        return Ok(true);
    }
    if read < header.len() || &header != SQLITE_HEADER {
        return Err(StoreError::NotSqlite {
            path: path.to_path_buf(),
        });
    }
    Ok(true)
}

/// Proof that a group transaction is open on the writer's connection.
pub(crate) struct CommitGroup(());

impl Archive {
    /// Opens (or creates) the archive at `path`, bringing its schema up to date.
    pub fn open(path: &Path) -> Result<Archive, StoreError> {
        check_header(path)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(64);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| not_sqlite(path, e))?;
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version == 0 && tables > 0 {
            return Err(StoreError::ForeignDatabase {
                path: path.to_path_buf(),
            });
        }
        if version == 0 {
            // Rows carry a few KB of raw JSON: pages that hold a whole call avoid overflow
            // chains. Only a new, empty file can still take a page size.
            conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Checking every child row against `calls` costs an index seek per row on the sync's
        // hot path; the writer removes a call's children itself (`remove_call`). The schema
        // keeps the foreign keys for other tools that open the archive.
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES)?;
        // Temporary files stay on disk (the default): a page's savepoint inside a group commit
        // grows the statement sub-journal, and SQLite truncates an in-memory sub-journal by
        // walking it from the start after every statement that used it, which turns a large
        // page quadratic. A sub-journal that spilled to a file is not truncated.
        if version == 0 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA}; PRAGMA user_version = 1; COMMIT;"
            ))?;
        }
        // `version` is known to be between 0 and SCHEMA_VERSION here.
        let mut at = version.max(1);
        for step in &migrations::STEPS[(at - 1) as usize..] {
            at += 1;
            if version > 0 {
                // Seen by default: on a large archive a step takes minutes.
                tracing::warn!(
                    "upgrading the archive's schema to version {at} (once; minutes for millions of calls)"
                );
            }
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {step} PRAGMA user_version = {at}; COMMIT;"
            ))
            .map_err(|source| StoreError::Upgrade {
                version: at,
                source,
            })?;
        }
        Ok(Archive { conn, group: None })
    }

    /// A connection that cannot change the archive: opened read-only and `query_only`.
    pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
        if !check_header(path)? {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "query_only", "ON")?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| not_sqlite(path, e))?;
        if version == 0 {
            return Err(StoreError::ForeignDatabase {
                path: path.to_path_buf(),
            });
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        Ok(conn)
    }

    /// Where the next operation writes (see `WriteScope`).
    pub(crate) fn write_scope(&mut self) -> rusqlite::Result<WriteScope<'_>> {
        match &self.group {
            Some(group) => Ok(WriteScope::Group {
                conn: &self.conn,
                guard: GroupGuard {
                    poisoned: &group.poisoned,
                    committed: false,
                },
            }),
            None => self.conn.savepoint().map(WriteScope::Own),
        }
    }

    /// Opens a transaction that the jobs run next share. `None` when it cannot be opened:
    /// each job then commits on its own.
    pub(crate) fn begin_group(&mut self) -> Option<CommitGroup> {
        self.conn.execute_batch("BEGIN IMMEDIATE").ok()?;
        self.group = Some(GroupState {
            poisoned: Cell::new(false),
        });
        Some(CommitGroup(()))
    }

    /// Ends the group: commits what its jobs wrote if every one of them succeeded
    /// (`all_ok`), and rolls it all back otherwise.
    pub(crate) fn end_group(
        &mut self,
        _group: CommitGroup,
        all_ok: bool,
    ) -> Result<(), StoreError> {
        let poisoned = self.group.take().is_some_and(|g| g.poisoned.get());
        if self.conn.is_autocommit() {
            // An error inside a job (disk full, I/O) rolled the whole transaction back.
            return Err(StoreError::Commit("the transaction was rolled back".into()));
        }
        if poisoned || !all_ok {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(StoreError::Commit(
                "a write that shared its commit failed, so nothing of the commit was kept".into(),
            ));
        }
        self.conn.execute_batch("COMMIT").map_err(|e| {
            let _ = self.conn.execute_batch("ROLLBACK");
            StoreError::Commit(e.to_string())
        })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// What the archive remembers of a stream.
    pub fn stream_state(
        &self,
        provider: ProviderKind,
        scope: &str,
    ) -> Result<StreamState, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT checkpoint_json, last_complete_started_at FROM sync_state
                 WHERE provider = ?1 AND scope = ?2",
                params![provider.as_str(), scope],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                    ))
                },
            )
            .optional()?;
        let Some((checkpoint, complete)) = row else {
            return Ok(StreamState::default());
        };
        Ok(StreamState {
            checkpoint: checkpoint.and_then(|c| serde_json::from_str(&c).ok()),
            last_complete_started_at: complete.as_deref().and_then(parse_timestamp),
        })
    }

    /// The walk of a stream that started and never completed, with its committed pages.
    pub fn interrupted_walk(
        &self,
        provider: ProviderKind,
        scope: &str,
    ) -> Result<Option<InterruptedWalk>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT checkpoint_json, walk_started_at FROM sync_state
                 WHERE provider = ?1 AND scope = ?2 AND walk_started_at IS NOT NULL",
                params![provider.as_str(), scope],
                |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?;
        let Some((checkpoint, started)) = row else {
            return Ok(None);
        };
        let (Some(checkpoint), Some(started_at)) = (
            checkpoint.and_then(|c| serde_json::from_str(&c).ok()),
            parse_timestamp(&started),
        ) else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare(
            "SELECT cursor_json, calls, walk_size FROM sync_walk_pages
             WHERE provider = ?1 AND scope = ?2",
        )?;
        let pages = stmt
            .query_map(params![provider.as_str(), scope], |r| {
                Ok(CommittedPage {
                    cursor_json: r.get(0)?,
                    calls: r.get::<_, i64>(1)? as u64,
                    walk_size: r.get::<_, Option<i64>>(2)?.map(|w| w as u64),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Some(InterruptedWalk {
            checkpoint,
            started_at,
            pages,
        }))
    }

    /// Records that a walk of the stream started with `checkpoint`, forgetting the pages of
    /// any earlier walk.
    pub fn start_walk(
        &mut self,
        provider: ProviderKind,
        scope: &str,
        base_url: &str,
        checkpoint: &serde_json::Value,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self.write_scope()?;
        tx.execute(
            "INSERT INTO sync_state (provider, scope, base_url, checkpoint_json, walk_started_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (provider, scope) DO UPDATE
             SET base_url = excluded.base_url, checkpoint_json = excluded.checkpoint_json,
                 walk_started_at = excluded.walk_started_at",
            params![
                provider.as_str(),
                scope,
                base_url,
                checkpoint.to_string(),
                format_timestamp(started_at)
            ],
        )?;
        tx.execute(
            "DELETE FROM sync_walk_pages WHERE provider = ?1 AND scope = ?2",
            params![provider.as_str(), scope],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records a walk that ended without drift: later walks need only cover what came since.
    pub fn complete_walk(
        &mut self,
        provider: ProviderKind,
        scope: &str,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self.write_scope()?;
        tx.execute(
            "UPDATE sync_state SET last_complete_started_at = ?3, walk_started_at = NULL
             WHERE provider = ?1 AND scope = ?2",
            params![provider.as_str(), scope, format_timestamp(started_at)],
        )?;
        tx.execute(
            "DELETE FROM sync_walk_pages WHERE provider = ?1 AND scope = ?2",
            params![provider.as_str(), scope],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Calls of an agent the provider may still change, created after `created_after`.
    pub fn unsettled_calls(
        &self,
        provider: ProviderKind,
        agent_id: &str,
        created_after: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id FROM calls
             WHERE provider = ?1 AND agent_id = ?2 AND settled = 0 AND created_at >= ?3
             ORDER BY created_at",
        )?;
        let ids = stmt
            .query_map(
                params![provider.as_str(), agent_id, format_timestamp(created_after)],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Removes the calls of an agent whose id hashes are not in `present` (the provider no
    /// longer has them), each with an audit row `mode = upstream`. Returns how many.
    pub fn prune_stream(
        &mut self,
        provider: ProviderKind,
        agent_id: &str,
        present: &HashSet<u64>,
    ) -> Result<u64, StoreError> {
        let p = provider.as_str();
        let tx = self.write_scope()?;
        let gone: Vec<String> = {
            let mut stmt =
                tx.prepare("SELECT id FROM calls WHERE provider = ?1 AND agent_id = ?2")?;
            let ids = stmt.query_map(params![p, agent_id], |r| r.get::<_, String>(0))?;
            let mut gone = Vec::new();
            for id in ids {
                let id = id?;
                if !present.contains(&id_hash(&id)) {
                    gone.push(id);
                }
            }
            gone
        };
        let now = format_timestamp(Utc::now());
        for id in &gone {
            tx.execute(
                "INSERT INTO deleted_calls (provider, call_id, agent_id, mode, job_id, deleted_at)
                 VALUES (?1, ?2, ?3, 'upstream', NULL, ?4)",
                params![p, id, agent_id, now],
            )?;
            remove_call(&tx, p, id)?;
        }
        tx.commit()?;
        Ok(gone.len() as u64)
    }

    /// Writes one page of a stream in one transaction: its calls with their children, the
    /// page's place in the walk (`page`, when it belongs to one), and the run's counts.
    pub fn write_page(
        &mut self,
        provider: ProviderKind,
        scope: &str,
        page: Option<&CommittedPage>,
        run_id: i64,
        calls: &[CallRecord],
    ) -> Result<PageCounts, StoreError> {
        let now = format_timestamp(Utc::now());
        let tx = self.write_scope()?;
        let mut counts = PageCounts::default();
        // Most archives have deleted nothing: one look per page instead of one per call.
        let any_deleted = tx
            .prepare_cached(
                "SELECT 1 FROM deleted_calls WHERE provider = ?1 AND mode = 'full' LIMIT 1",
            )?
            .exists(params![provider.as_str()])?;
        for call in calls {
            upsert_call(&tx, provider, call, &now, any_deleted, &mut counts)?;
        }
        if let Some(page) = page {
            tx.execute(
                "INSERT OR REPLACE INTO sync_walk_pages (provider, scope, cursor_json, calls, walk_size)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    provider.as_str(),
                    scope,
                    page.cursor_json,
                    page.calls as i64,
                    page.walk_size.map(|w| w as i64)
                ],
            )?;
        }
        tx.execute(
            "UPDATE sync_state SET last_synced_at = ?3 WHERE provider = ?1 AND scope = ?2",
            params![provider.as_str(), scope, now],
        )?;
        tx.execute(
            "UPDATE sync_runs SET calls_new = calls_new + ?2, calls_updated = calls_updated + ?3,
                 calls_unchanged = calls_unchanged + ?4, evaluations = evaluations + ?5,
                 pages = pages + ?6
             WHERE id = ?1",
            params![
                run_id,
                counts.new as i64,
                counts.updated as i64,
                counts.unchanged as i64,
                counts.evaluations as i64,
                i64::from(page.is_some())
            ],
        )?;
        tx.commit()?;
        Ok(counts)
    }

    /// Opens a `sync_runs` row. Rows left `running` by a process that no longer exists are
    /// marked `interrupted` first.
    pub fn begin_run(
        &mut self,
        provider: ProviderKind,
        scopes: &[String],
    ) -> Result<i64, StoreError> {
        let tx = self.write_scope()?;
        let stale: Vec<(i64, i64)> = {
            let mut stmt = tx.prepare("SELECT id, pid FROM sync_runs WHERE outcome = 'running'")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (id, pid) in stale {
            if !process_alive(pid) {
                tx.execute(
                    "UPDATE sync_runs SET outcome = 'interrupted' WHERE id = ?1",
                    params![id],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO sync_runs (provider, scopes, pid, started_at, outcome)
             VALUES (?1, ?2, ?3, ?4, 'running')",
            params![
                provider.as_str(),
                scopes.join(","),
                std::process::id(),
                format_timestamp(Utc::now())
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    pub fn finish_run(
        &mut self,
        run_id: i64,
        outcome: RunOutcome,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE sync_runs SET outcome = ?2, finished_at = ?3, error = ?4 WHERE id = ?1",
            params![
                run_id,
                outcome.as_str(),
                format_timestamp(Utc::now()),
                error
            ],
        )?;
        Ok(())
    }

    /// Refreshes the query planner's statistics where they went stale (cheap; bounded).
    pub fn optimize(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA analysis_limit = 1000; PRAGMA optimize;")?;
        Ok(())
    }

    /// The base URL a provider's streams were last synced from.
    pub fn base_url(&self, provider: ProviderKind) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT base_url FROM sync_state WHERE provider = ?1
                 ORDER BY last_synced_at DESC LIMIT 1",
                params![provider.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }
}

/// Per-stream figures for `status`, read on any connection.
pub fn stream_summaries(conn: &Connection) -> Result<Vec<StreamSummary>, StoreError> {
    // A stream's scope is its agent, or `agent#label=L` for a labelled stream: figures are
    // the agent's either way.
    let mut stmt = conn.prepare(
        "WITH s AS (
            SELECT *, CASE WHEN instr(scope, '#label=') > 0
                           THEN substr(scope, 1, instr(scope, '#label=') - 1)
                           ELSE scope END AS agent
            FROM sync_state)
         SELECT s.provider, s.scope, s.base_url, s.last_synced_at, s.last_complete_started_at,
                s.checkpoint_json,
                (SELECT count(*) FROM calls c
                  WHERE c.provider = s.provider AND c.agent_id = s.agent),
                (SELECT count(*) FROM evaluations e JOIN calls c ON c.seq = e.call_seq
                  WHERE c.provider = s.provider AND c.agent_id = s.agent)
         FROM s ORDER BY s.provider, s.scope",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(StreamSummary {
            provider: r.get(0)?,
            scope: r.get(1)?,
            base_url: r.get(2)?,
            last_synced_at: r.get(3)?,
            last_complete_started_at: r.get(4)?,
            checkpoint: r.get(5)?,
            calls: r.get(6)?,
            evaluations: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn not_sqlite(path: &Path, err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotSqlite {
            path: path.to_path_buf(),
        },
        _ => StoreError::Sqlite(err),
    }
}

fn process_alive(pid: i64) -> bool {
    if pid == std::process::id() as i64 {
        return false;
    }
    Path::new("/proc").join(pid.to_string()).exists()
}

/// A stable 64-bit hash of a record's raw text, to notice unchanged records cheaply.
pub fn content_hash(raw: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(raw.as_bytes()) as i64
}

/// The hash walks remember a call id by: 8 bytes a call, whatever the id's length.
pub fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// Tables that hold call content: `calls`, `evaluations` (with their own key, and the
/// call's `call_seq`), then `CALL_PART_TABLES`.
pub const CALL_CONTENT_TABLES: [&str; 8] = [
    "calls",
    "evaluations",
    "participants",
    "tool_calls",
    "call_events",
    "call_tags",
    "custom_metrics",
    "transcript_turns",
];

/// The tables of a call's parts, keyed by the call's `seq` (`call_seq`), so that a call's
/// parts sit together and new calls append to them (schema 3).
const CALL_PART_TABLES: &[&str] = CALL_CONTENT_TABLES.split_at(2).1;

/// Removes a call and every row that belongs to it; returns the calls removed (0 or 1).
///
/// The writer's connection keeps foreign keys off (see `Archive::open`), so the children
/// go here rather than through `ON DELETE CASCADE`.
pub(crate) fn remove_call(conn: &Connection, provider: &str, id: &str) -> rusqlite::Result<usize> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM calls WHERE provider = ?1 AND id = ?2")?
        .query_row(params![provider, id], |r| r.get(0))
        .optional()?
        .flatten();
    match seq {
        Some(seq) => remove_call_at(conn, seq),
        None => Ok(0),
    }
}

/// `remove_call` for a call whose `seq` the caller already read.
fn remove_call_at(conn: &Connection, seq: i64) -> rusqlite::Result<usize> {
    for table in CALL_PART_TABLES {
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE call_seq = ?1"))?
            .execute([seq])?;
    }
    conn.prepare_cached("DELETE FROM evaluations WHERE call_seq = ?1")?
        .execute([seq])?;
    conn.prepare_cached("DELETE FROM calls WHERE seq = ?1")?
        .execute([seq])
}

fn upsert_call(
    tx: &Connection,
    provider: ProviderKind,
    call: &CallRecord,
    now: &str,
    any_deleted: bool,
    counts: &mut PageCounts,
) -> rusqlite::Result<()> {
    let p = provider.as_str();
    let hash = content_hash(&call.raw_json);
    let existing: Option<(i64, i64)> = tx
        .prepare_cached("SELECT raw_hash, seq FROM calls WHERE provider = ?1 AND id = ?2")?
        .query_row(params![p, call.id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match existing {
        Some((h, _)) if h == hash => {
            counts.unchanged += 1;
            return Ok(());
        }
        Some((_, old_seq)) => {
            // The new version's children replace the old ones whole.
            remove_call_at(tx, old_seq)?;
            counts.updated += 1;
        }
        None => {
            let deleted = any_deleted
                && tx
                    .prepare_cached(
                        "SELECT 1 FROM deleted_calls WHERE provider = ?1 AND call_id = ?2 AND mode = 'full'",
                    )?
                    .exists(params![p, call.id])?;
            if deleted {
                counts.refused_resurrections += 1;
                tracing::warn!(
                    "{p} still returns call {} that callvault deleted; not re-archived",
                    call.id
                );
                return Ok(());
            }
            counts.new += 1;
        }
    }
    let seq: i64 = tx
        .prepare_cached("SELECT coalesce(max(seq), 0) + 1 FROM calls")?
        .query_row([], |r| r.get(0))?;
    tx.prepare_cached(
        "INSERT INTO calls (provider, id, agent_id, external_agent_id, status, created_at,
            start_time, end_time, duration_ms, call_direction, interface, recording_url,
            transcript_url, summary, end_reason, ended_by, redacted_at, metadata_json,
            annotations_json, extra_metrics_json, raw_json, raw_hash, settled, synced_at, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
    )?
    .execute(params![
        p,
        call.id,
        call.agent_id,
        call.external_agent_id,
        call.status,
        call.created_at,
        call.start_time,
        call.end_time,
        call.duration_ms,
        call.call_direction,
        call.interface,
        call.recording_url,
        call.transcript_url,
        call.summary,
        call.end_reason,
        call.ended_by,
        call.redacted_at,
        call.metadata_json,
        call.annotations_json,
        call.extra_metrics_json,
        call.raw_json,
        hash,
        call.settled,
        now,
        seq,
    ])?;
    insert_children(tx, p, call, seq)?;
    counts.evaluations += call.evaluations.len() as u64;
    Ok(())
}

fn insert_children(tx: &Connection, p: &str, call: &CallRecord, seq: i64) -> rusqlite::Result<()> {
    let id = &call.id;
    if !call.participants.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO participants (provider, call_id, idx, role, spoke_first, name, phone_number,
                call_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (i, x) in call.participants.iter().enumerate() {
            stmt.execute(params![
                p,
                id,
                i,
                x.role,
                x.spoke_first,
                x.name,
                x.phone_number,
                seq
            ])?;
        }
    }
    if !call.tool_calls.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO tool_calls (provider, call_id, idx, name, start_offset_ms, description,
                parameters_json, output_json, call_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for (i, x) in call.tool_calls.iter().enumerate() {
            stmt.execute(params![
                p,
                id,
                i,
                x.name,
                x.start_offset_ms,
                x.description,
                x.parameters_json,
                x.output_json,
                seq
            ])?;
        }
    }
    if !call.events.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO call_events (provider, call_id, idx, title, description, start_offset_ms,
                end_offset_ms, tags_json, metadata_json, call_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (i, x) in call.events.iter().enumerate() {
            stmt.execute(params![
                p,
                id,
                i,
                x.title,
                x.description,
                x.start_offset_ms,
                x.end_offset_ms,
                x.tags_json,
                x.metadata_json,
                seq
            ])?;
        }
    }
    if !call.tags.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO call_tags (provider, call_id, tag, call_seq) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for tag in &call.tags {
            stmt.execute(params![p, id, tag, seq])?;
        }
    }
    if !call.transcript.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO transcript_turns (provider, call_id, idx, role, text, start_ms, end_ms,
                stt_ttfb_ms, tts_ttfb_ms, call_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (i, x) in call.transcript.iter().enumerate() {
            stmt.execute(params![
                p,
                id,
                i,
                x.role,
                x.text,
                x.start_ms,
                x.end_ms,
                x.stt_ttfb_ms,
                x.tts_ttfb_ms,
                seq
            ])?;
        }
    }
    for e in &call.evaluations {
        // An evaluation id already archived, on another call or listed twice by this one,
        // moves here with its custom metrics: the newest word on it. A delete and a plain
        // insert rather than INSERT OR REPLACE: a REPLACE on a table with indexes needs a
        // statement journal, which costs more than the whole insert.
        let archived: Option<Option<i64>> = tx
            .prepare_cached("SELECT call_seq FROM evaluations WHERE provider = ?1 AND id = ?2")?
            .query_row(params![p, e.id], |r| r.get(0))
            .optional()?;
        if let Some(old_seq) = archived {
            tx.prepare_cached("DELETE FROM evaluations WHERE provider = ?1 AND id = ?2")?
                .execute(params![p, e.id])?;
            if let Some(old_seq) = old_seq {
                tx.prepare_cached(
                    "DELETE FROM custom_metrics WHERE call_seq = ?1 AND evaluation_id = ?2",
                )?
                .execute(params![old_seq, e.id])?;
            }
        }
        tx.prepare_cached(
            "INSERT INTO evaluations (provider, id, call_id, created_at, hallucination,
                hallucination_reasoning, redundancy, redundancy_reasoning, goal_success,
                goal_reasoning, agent_speak_percentage, avg_agent_latency, p50_agent_latency,
                p90_agent_latency, p95_agent_latency, p99_agent_latency, max_agent_latency,
                avg_filler_ignored_latency, p50_filler_ignored_latency, p90_filler_ignored_latency,
                p95_filler_ignored_latency, p99_filler_ignored_latency, num_turns, call_summary,
                custom_evals_json, custom_evals_success_rate, pronunciation_score,
                pronunciation_reasoning, sentiment_label, sentiment_score, sentiment_scores_json,
                raw_json, call_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)",
        )?
        .execute(params![
            p,
            e.id,
            id,
            e.created_at,
            e.hallucination,
            e.hallucination_reasoning,
            e.redundancy,
            e.redundancy_reasoning,
            e.goal_success,
            e.goal_reasoning,
            e.agent_speak_percentage,
            e.avg_agent_latency,
            e.p50_agent_latency,
            e.p90_agent_latency,
            e.p95_agent_latency,
            e.p99_agent_latency,
            e.max_agent_latency,
            e.avg_filler_ignored_latency,
            e.p50_filler_ignored_latency,
            e.p90_filler_ignored_latency,
            e.p95_filler_ignored_latency,
            e.p99_filler_ignored_latency,
            e.num_turns,
            e.call_summary,
            e.custom_evals_json,
            e.custom_evals_success_rate,
            e.pronunciation_score,
            e.pronunciation_reasoning,
            e.sentiment_label,
            e.sentiment_score,
            e.sentiment_scores_json,
            e.raw_json,
            seq,
        ])?;
        if !e.custom_metrics.is_empty() {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO custom_metrics (provider, call_id, evaluation_id, idx, name,
                    description, response_type, response_value, reasoning, min_value, max_value,
                    category, tags_json, scoring_guidance, enum_options_json, call_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?;
            for (i, m) in e.custom_metrics.iter().enumerate() {
                stmt.execute(params![
                    p,
                    id,
                    e.id,
                    i,
                    m.name,
                    m.description,
                    m.response_type,
                    m.response_value,
                    m.reasoning,
                    m.min_value,
                    m.max_value,
                    m.category,
                    m.tags_json,
                    m.scoring_guidance,
                    m.enum_options_json,
                    seq
                ])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new archive in a temporary folder, with a sync run begun for agent `a`.
    fn archive_with_run() -> (tempfile::TempDir, Archive, i64) {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(&dir.path().join("a.db")).unwrap();
        let run = archive
            .begin_run(ProviderKind::Bluejay, &["a".into()])
            .unwrap();
        (dir, archive, run)
    }

    #[test]
    fn refuses_a_file_that_is_not_sqlite_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.db");
        std::fs::write(&path, b"just some text, not a database at all").unwrap();
        let err = Archive::open(&path).err().expect("must refuse");
        assert!(matches!(err, StoreError::NotSqlite { .. }), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"just some text, not a database at all"
        );
        assert!(!dir.path().join("notes.db-wal").exists());
    }

    #[test]
    fn refuses_a_foreign_sqlite_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        assert!(matches!(
            Archive::open(&path),
            Err(StoreError::ForeignDatabase { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn an_archive_at_version_1_is_upgraded_and_keeps_its_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "{SCHEMA}; PRAGMA user_version = 1;
                 INSERT INTO calls (provider, id, agent_id, created_at, summary, raw_json,
                                    raw_hash, synced_at)
                 VALUES ('bluejay', 'c1', 'a', '2026-11-02T09:15:00.000Z', 'kept', '{{}}', 0,
                         '2026-11-02T10:00:00.000Z');
                 INSERT INTO call_tags (provider, call_id, tag) VALUES ('bluejay', 'c1', 'vip');
                 INSERT INTO participants (provider, call_id, idx, role)
                 VALUES ('bluejay', 'c1', 0, 'AGENT');"
            ))
            .unwrap();
        drop(Archive::open(&path).unwrap());
        let conn = Archive::open_read_only(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let summary: String = conn
            .query_row("SELECT summary FROM calls WHERE id = 'c1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(summary, "kept");
        // The export's scan of typed columns reads the narrow index, not the wide rows.
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id, summary, synced_at, substr(created_at, 1, 10)
                 FROM calls",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("COVERING INDEX calls_columns"), "{plan}");
        // The call's parts now hang off its seq, and the foreign keys hold.
        let parts: (i64, String, String) = conn
            .query_row(
                "SELECT c.seq, t.tag, p.role FROM calls c
                 JOIN call_tags t ON t.call_seq = c.seq
                 JOIN participants p ON p.call_seq = c.seq AND p.call_id = c.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(parts, (1, "vip".to_string(), "AGENT".to_string()));
        let orphans: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(orphans, 0);
    }

    #[test]
    fn an_evaluation_that_moves_to_another_call_takes_its_custom_metrics_along() {
        let (_dir, mut archive, run) = archive_with_run();
        let page = |json: &str| vec![crate::providers::bluejay::parse_call_log(json).unwrap()];
        for json in [
            r#"{"id":"c1","agent_id":"a","evaluations":[{"id":"e1","custom_metrics":[{"name":"old"}]}]}"#,
            r#"{"id":"c2","agent_id":"a","evaluations":[{"id":"e1","custom_metrics":[{"name":"new"}]},
                {"id":"e1","custom_metrics":[{"name":"newest"}]}]}"#,
        ] {
            archive
                .write_page(ProviderKind::Bluejay, "a", None, run, &page(json))
                .unwrap();
        }
        let conn = archive.connection();
        let metrics: Vec<(String, String)> = conn
            .prepare("SELECT call_id, name FROM custom_metrics WHERE evaluation_id = 'e1'")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(metrics, [("c2".to_string(), "newest".to_string())]);
        let evaluations: i64 = conn
            .query_row(
                "SELECT count(*) FROM evaluations WHERE id = 'e1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(evaluations, 1);
    }

    #[test]
    fn unchanged_calls_are_not_rewritten_and_changed_ones_replace_children() {
        let (_dir, mut archive, run) = archive_with_run();
        let mut call = crate::providers::bluejay::parse_call_log(
            r#"{"id":"c1","agent_id":"a","tags":["x","y"],"evaluations":[{"id":"e1"}]}"#,
        )
        .unwrap();
        let first = archive
            .write_page(
                ProviderKind::Bluejay,
                "a",
                None,
                run,
                std::slice::from_ref(&call),
            )
            .unwrap();
        assert_eq!((first.new, first.evaluations), (1, 1));
        let again = archive
            .write_page(
                ProviderKind::Bluejay,
                "a",
                None,
                run,
                std::slice::from_ref(&call),
            )
            .unwrap();
        assert_eq!((again.new, again.updated, again.unchanged), (0, 0, 1));
        call = crate::providers::bluejay::parse_call_log(
            r#"{"id":"c1","agent_id":"a","tags":["z"],"evaluations":[]}"#,
        )
        .unwrap();
        let changed = archive
            .write_page(ProviderKind::Bluejay, "a", None, run, &[call])
            .unwrap();
        assert_eq!(changed.updated, 1);
        let conn = archive.connection();
        let tags: Vec<String> = conn
            .prepare("SELECT tag FROM call_tags")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tags, vec!["z"]);
        let evals: i64 = conn
            .query_row("SELECT count(*) FROM evaluations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(evals, 0);
    }
}
