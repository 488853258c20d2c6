//! Sources, streams and runs: `sources` (one account of a provider at one address),
//! `sync_state` (each stream's checkpoint and walk in progress), `sync_walk_pages` (the pages
//! the walk in progress committed, with the cursors each revealed) and `sync_runs`.
//!
//! A stream is one scope of one source. Its walk starts (`start_walk`), commits pages (see
//! `calls::write_page`), and completes (`complete_walk`); a walk that never completed is an
//! `InterruptedWalk` the next run can resume.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{process_alive, Archive, StoreError};
use crate::providers::{ProviderKind, StreamState};
use crate::time::{format_timestamp, parse_timestamp};

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

/// One account of a provider at one address, as a sync names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSpec {
    pub provider: ProviderKind,
    /// The user's name for the account (`default` unless a config names it).
    pub account: String,
    pub base_url: String,
    /// The environment variable that holds the account's key (its name, never the key).
    pub key_env: String,
}

/// A stream as the archive knows it: one scope of one source.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub provider: ProviderKind,
    /// `sources.id`.
    pub source: i64,
    /// `Scope::key()`.
    pub scope: String,
}

/// A stream as `status` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamSummary {
    pub provider: String,
    pub account: String,
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
    /// The cursors the page revealed, as a JSON array; `None` for a page committed by a build
    /// that did not record them (it is fetched again).
    pub next_json: Option<String>,
}

/// A walk that started and never completed.
#[derive(Clone, Debug, PartialEq)]
pub struct InterruptedWalk {
    pub checkpoint: serde_json::Value,
    pub started_at: DateTime<Utc>,
    pub pages: Vec<CommittedPage>,
}

/// The SQL condition "call `c` belongs to source `?{n}`". A call archived before sources were
/// recorded (`source_id` NULL) belongs to the first source of its provider (schema 4).
pub(crate) fn call_of_source(n: u8) -> String {
    format!(
        "(c.source_id = ?{n} OR (c.source_id IS NULL AND ?{n} =
            (SELECT min(o.id) FROM sources o WHERE o.provider = c.provider)))"
    )
}

impl Archive {
    /// The id of a source, recorded on first use. Only its key variable can change.
    pub fn source_id(&mut self, spec: &SourceSpec) -> Result<i64, StoreError> {
        let tx = self.write_scope()?;
        let id = tx.query_row(
            "INSERT INTO sources (provider, account, base_url, key_env, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (provider, account, base_url) DO UPDATE SET key_env = excluded.key_env
             RETURNING id",
            params![
                spec.provider.as_str(),
                spec.account,
                spec.base_url,
                spec.key_env,
                format_timestamp(Utc::now())
            ],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// What the archive remembers of a stream.
    pub fn stream_state(&self, stream: &StreamId) -> Result<StreamState, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT checkpoint_json, last_complete_started_at, high_water FROM sync_state
                 WHERE source_id = ?1 AND scope = ?2",
                params![stream.source, stream.scope],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        let Some((checkpoint, complete, high_water)) = row else {
            return Ok(StreamState::default());
        };
        Ok(StreamState {
            checkpoint: checkpoint.and_then(|c| serde_json::from_str(&c).ok()),
            last_complete_started_at: complete.as_deref().and_then(parse_timestamp),
            high_water,
        })
    }

    /// The walk of a stream that started and never completed, with its committed pages.
    pub fn interrupted_walk(
        &self,
        stream: &StreamId,
    ) -> Result<Option<InterruptedWalk>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT checkpoint_json, walk_started_at FROM sync_state
                 WHERE source_id = ?1 AND scope = ?2 AND walk_started_at IS NOT NULL",
                params![stream.source, stream.scope],
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
            "SELECT cursor_json, calls, walk_size, next_json FROM sync_walk_pages
             WHERE source_id = ?1 AND scope = ?2",
        )?;
        let pages = stmt
            .query_map(params![stream.source, stream.scope], |r| {
                Ok(CommittedPage {
                    cursor_json: r.get(0)?,
                    calls: r.get::<_, i64>(1)? as u64,
                    walk_size: r.get::<_, Option<i64>>(2)?.map(|w| w as u64),
                    next_json: r.get(3)?,
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
        stream: &StreamId,
        checkpoint: &serde_json::Value,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self.write_scope()?;
        tx.execute(
            "INSERT INTO sync_state (source_id, scope, provider, checkpoint_json, walk_started_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (source_id, scope) DO UPDATE
             SET checkpoint_json = excluded.checkpoint_json,
                 walk_started_at = excluded.walk_started_at, walk_high_water = NULL",
            params![
                stream.source,
                stream.scope,
                stream.provider.as_str(),
                checkpoint.to_string(),
                format_timestamp(started_at)
            ],
        )?;
        tx.execute(
            "DELETE FROM sync_walk_pages WHERE source_id = ?1 AND scope = ?2",
            params![stream.source, stream.scope],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records a walk that ended without drift: later walks need only cover what came since,
    /// and the walk's high-water mark joins the stream's.
    pub fn complete_walk(
        &mut self,
        stream: &StreamId,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self.write_scope()?;
        tx.execute(
            "UPDATE sync_state SET last_complete_started_at = ?3, walk_started_at = NULL,
                high_water = CASE
                    WHEN walk_high_water IS NULL THEN high_water
                    WHEN high_water IS NULL OR walk_high_water > high_water THEN walk_high_water
                    ELSE high_water END,
                walk_high_water = NULL
             WHERE source_id = ?1 AND scope = ?2",
            params![stream.source, stream.scope, format_timestamp(started_at)],
        )?;
        tx.execute(
            "DELETE FROM sync_walk_pages WHERE source_id = ?1 AND scope = ?2",
            params![stream.source, stream.scope],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Opens a `sync_runs` row for a source. Rows left `running` by a process that no longer
    /// exists are marked `interrupted` first.
    pub fn begin_run(
        &mut self,
        provider: ProviderKind,
        source: i64,
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
            "INSERT INTO sync_runs (provider, source_id, scopes, pid, started_at, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
            params![
                provider.as_str(),
                source,
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
}

/// Per-stream figures for `status`, read on any connection.
///
/// Calls are counted per provider and agent (or per provider, for an account-wide stream),
/// from the index on those columns; two accounts of one provider show the same agent's calls.
pub fn stream_summaries(conn: &Connection) -> Result<Vec<StreamSummary>, StoreError> {
    // A stream's scope is its agent (`*` for the whole account), or `agent#label=L` for a
    // labelled stream: figures are the agent's either way.
    let mut stmt = conn.prepare(
        "WITH s AS (
            SELECT *, CASE WHEN instr(scope, '#label=') > 0
                           THEN substr(scope, 1, instr(scope, '#label=') - 1)
                           ELSE scope END AS agent
            FROM sync_state)
         SELECT s.provider, o.account, s.scope, o.base_url, s.last_synced_at,
                s.last_complete_started_at, s.checkpoint_json,
                (SELECT count(*) FROM calls c
                  WHERE c.provider = s.provider AND (s.agent = '*' OR c.agent_id = s.agent)),
                (SELECT count(*) FROM evaluations e JOIN calls c ON c.seq = e.call_seq
                  WHERE c.provider = s.provider AND (s.agent = '*' OR c.agent_id = s.agent))
         FROM s JOIN sources o ON o.id = s.source_id
         ORDER BY s.provider, o.account, s.scope, o.base_url",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(StreamSummary {
            provider: r.get(0)?,
            account: r.get(1)?,
            scope: r.get(2)?,
            base_url: r.get(3)?,
            last_synced_at: r.get(4)?,
            last_complete_started_at: r.get(5)?,
            checkpoint: r.get(6)?,
            calls: r.get(7)?,
            evaluations: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
