//! The delete journal: frozen plans (`delete_jobs`, `delete_items`), each response recorded
//! against its item, and the mirror update a confirmed delete makes (`deleted_calls`).
//!
//! A *job* is one frozen plan; an *item* is one call of it, in state `pending`, `done`, `gone`
//! (404: the provider no longer had it), `skipped` or `failed`. `freeze_job` writes the job
//! and every item in one transaction, so a job either exists whole or not at all. A recorded
//! response changes its item and, when the delete was confirmed, the archive (the call and its
//! children leave for `full`; the recording fields are cleared for `recording-only`) plus an
//! audit row, and the bump of the call's export partition (`changes`), in one transaction: the
//! journal, the mirror and what a lake learns never disagree. The audit row
//! holds no call content. This module sends nothing and never chooses what to delete.

use chrono::Utc;
use rusqlite::{params, Connection, OptionalExtension};

use super::changes::touch_partition_of_call;
use super::{process_alive, Archive};
use crate::providers::{CallRecord, DeleteMode, ProviderKind};
use crate::time::format_timestamp;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("there is no delete job {0}; `callvault jobs` lists them")]
    NoSuchJob(i64),
    #[error("delete job {job} is being run by process {pid}; wait for it to end")]
    Busy { job: i64, pid: i64 },
    #[error("delete job {job} has mode '{mode}', which this build does not know")]
    UnknownMode { job: i64, mode: String },
    #[error("delete job {job} names provider '{provider}', which this build does not know")]
    UnknownProvider { job: i64, provider: String },
    #[error("{count} selected call(s) left the archive while the plan was made ({examples}); run the delete again")]
    Vanished { count: usize, examples: String },
}

/// Where a call's delete goes: the address and key variable of the source that archived it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    pub provider: ProviderKind,
    pub base_url: String,
    /// The environment variable that holds the key (its name, never the key).
    pub key_env: String,
}

/// One call of a plan, as it is frozen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedItem {
    pub call_id: String,
    pub agent_id: Option<String>,
    pub destination: Destination,
}

/// An item still to be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingItem {
    pub call_id: String,
    pub destination: Destination,
}

/// The state an item is recorded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemState {
    Pending,
    Done,
    Gone,
    Skipped,
    Failed,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Done => "done",
            ItemState::Gone => "gone",
            ItemState::Skipped => "skipped",
            ItemState::Failed => "failed",
        }
    }
}

/// What one response (or a refusal to send) did to one item.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemResult {
    pub provider: ProviderKind,
    pub call_id: String,
    pub state: ItemState,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    /// For `failed`: whether `--resume` should send it again.
    pub retryable: bool,
    /// What the provider keeps of a redacted call, as it sent it back; it replaces the
    /// archived call.
    pub replacement: Option<Box<CallRecord>>,
}

/// A job as execution starts it: its mode and the items left to send.
#[derive(Clone, Debug)]
pub struct JobStart {
    pub mode: DeleteMode,
    pub items: Vec<PendingItem>,
}

/// Items per state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub pending: u64,
    pub done: u64,
    pub gone: u64,
    pub skipped: u64,
    pub failed: u64,
}

impl JobCounts {
    pub fn total(&self) -> u64 {
        self.pending + self.done + self.gone + self.skipped + self.failed
    }
}

/// A job as `callvault jobs` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSummary {
    pub id: i64,
    pub created_at: String,
    pub mode: String,
    /// The stored state, or `interrupted` for a `running` job whose process is gone.
    pub state: String,
    pub counts: JobCounts,
    pub finished_at: Option<String>,
    pub selection: String,
}

/// A failed item, for the summary a run ends with.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedItem {
    pub provider: String,
    pub call_id: String,
    pub http_status: Option<u16>,
    pub error: Option<String>,
}

/// Items `--resume` sends: the pending ones and the failures that may succeed if sent again.
const OUTSTANDING: &str = "(state = 'pending' OR (state = 'failed' AND retryable = 1))";

impl Archive {
    /// Freezes a plan: the job row and every item with its destination, in one transaction,
    /// before anything is sent.
    pub fn freeze_job(
        &mut self,
        selection: &str,
        params_json: Option<&str>,
        mode: DeleteMode,
        items: &[PlannedItem],
    ) -> Result<i64, JournalError> {
        let now = format_timestamp(Utc::now());
        let tx = self.write_scope()?;
        {
            // The selection ran on another connection; a sync may have changed the archive
            // since. Freezing a call that is no longer archived would break "ids the archive
            // does not hold are refused".
            let mut exists = tx.prepare("SELECT 1 FROM calls WHERE provider = ?1 AND id = ?2")?;
            let mut vanished = Vec::new();
            for item in items {
                let provider = item.destination.provider;
                if !exists.exists(params![provider.as_str(), item.call_id])? {
                    vanished.push(format!("{provider}/{}", item.call_id));
                }
            }
            if !vanished.is_empty() {
                return Err(JournalError::Vanished {
                    count: vanished.len(),
                    examples: examples(&vanished),
                });
            }
        }
        tx.execute(
            "INSERT INTO delete_jobs (created_at, selection, params_json, mode, state, planned)
             VALUES (?1, ?2, ?3, ?4, 'planned', ?5)",
            params![
                now,
                selection,
                params_json,
                mode.as_str(),
                items.len() as i64
            ],
        )?;
        let job = tx.last_insert_rowid();
        {
            let mut insert = tx.prepare(
                "INSERT INTO delete_items (job_id, provider, call_id, agent_id, base_url, key_env,
                    state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
            )?;
            for item in items {
                let d = &item.destination;
                insert.execute(params![
                    job,
                    d.provider.as_str(),
                    item.call_id,
                    item.agent_id,
                    d.base_url,
                    d.key_env
                ])?;
            }
        }
        tx.commit()?;
        Ok(job)
    }

    /// Where the outstanding items of a job go, each destination once.
    pub fn job_destinations(&self, job: i64) -> Result<Vec<Destination>, JournalError> {
        self.job_mode(job)?;
        let mut stmt = self.conn.prepare(&format!(
            "SELECT DISTINCT provider, base_url, key_env FROM delete_items
             WHERE job_id = ?1 AND {OUTSTANDING} ORDER BY provider, base_url, key_env"
        ))?;
        let rows = stmt.query_map(params![job], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (provider, base_url, key_env) = row?;
            out.push(destination(job, &provider, base_url, key_env)?);
        }
        out.dedup();
        Ok(out)
    }

    /// Starts (or resumes) running a job: refuses one another live process runs, skips items
    /// whose call another job already deleted, marks the job `running` by this process, and
    /// returns the items left to send.
    pub fn start_job(&mut self, job: i64) -> Result<JobStart, JournalError> {
        let now = format_timestamp(Utc::now());
        let tx = self.write_scope()?;
        let (mode, state, pid) = tx
            .query_row(
                "SELECT mode, state, pid FROM delete_jobs WHERE id = ?1",
                params![job],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                },
            )
            .optional()?
            .ok_or(JournalError::NoSuchJob(job))?;
        let mode = parse_mode(job, &mode)?;
        if let (true, Some(pid)) = (state == "running", pid) {
            if process_alive(pid) {
                return Err(JournalError::Busy { job, pid });
            }
        }
        // A call another job fully deleted (or the provider's own deletion, seen by a sync)
        // would only earn a 404; its archive rows are gone already.
        tx.execute(
            &format!(
                "UPDATE delete_items SET state = 'skipped', retryable = 0, finished_at = ?2,
                    last_error = 'already deleted by ' || coalesce((
                        SELECT 'job ' || d.job_id FROM deleted_calls d
                        WHERE d.provider = delete_items.provider AND d.call_id = delete_items.call_id
                          AND d.mode IN ('full', 'upstream') AND d.job_id IS NOT NULL LIMIT 1),
                        'the provider')
                 WHERE job_id = ?1 AND {OUTSTANDING} AND EXISTS (
                    SELECT 1 FROM deleted_calls d
                    WHERE d.provider = delete_items.provider AND d.call_id = delete_items.call_id
                      AND d.mode IN ('full', 'upstream'))"
            ),
            params![job, now],
        )?;
        tx.execute(
            "UPDATE delete_jobs SET state = 'running', pid = ?2 WHERE id = ?1",
            params![job, std::process::id()],
        )?;
        let items = {
            let mut stmt = tx.prepare(&format!(
                "SELECT provider, call_id, base_url, key_env FROM delete_items
                 WHERE job_id = ?1 AND {OUTSTANDING} ORDER BY rowid"
            ))?;
            let rows = stmt.query_map(params![job], |r| {
                Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            let mut items = Vec::new();
            for row in rows {
                let (provider, call_id, base_url, key_env) = row?;
                items.push(PendingItem {
                    call_id,
                    destination: destination(job, &provider, base_url, key_env)?,
                });
            }
            items
        };
        tx.commit()?;
        Ok(JobStart { mode, items })
    }

    /// Records responses against their items, with the mirror update and audit row of each
    /// confirmed delete, in one transaction.
    pub fn record_results(
        &mut self,
        job: i64,
        mode: DeleteMode,
        results: &[ItemResult],
    ) -> Result<(), JournalError> {
        let now = format_timestamp(Utc::now());
        let tx = self.write_scope()?;
        for r in results {
            let p = r.provider.as_str();
            let retryable = r.state == ItemState::Failed && r.retryable;
            let finished = (r.state != ItemState::Pending).then_some(now.as_str());
            tx.prepare_cached(
                "UPDATE delete_items SET state = ?4, attempts = attempts + 1, http_status = ?5,
                    last_error = ?6, retryable = ?7, finished_at = ?8
                 WHERE job_id = ?1 AND provider = ?2 AND call_id = ?3",
            )?
            .execute(params![
                job,
                p,
                r.call_id,
                r.state.as_str(),
                r.http_status,
                r.error,
                retryable,
                finished
            ])?;
            if !matches!(r.state, ItemState::Done | ItemState::Gone) {
                continue;
            }
            match (mode, &r.replacement) {
                (DeleteMode::Full, _) => super::remove_call(&tx, p, &r.call_id)?,
                // raw_hash is left as it was: a sync that still gets the old recording URL
                // from the provider then sees the call unchanged and does not restore it.
                (DeleteMode::RecordingOnly, _) => {
                    touch_partition_of_call(&tx, p, &r.call_id)?;
                    tx.prepare_cached(
                        "UPDATE calls SET recording_url = NULL,
                            raw_json = CASE WHEN json_valid(raw_json)
                                THEN json_set(raw_json, '$.recording_url', NULL)
                                ELSE raw_json END
                         WHERE provider = ?1 AND id = ?2",
                    )?
                    .execute(params![p, r.call_id])?
                }
                (DeleteMode::Redact, Some(call)) => {
                    usize::from(super::calls::replace_call(&tx, r.provider, call, &now)?)
                }
                // No reply to go by: the transcript and summary leave, raw JSON included.
                (DeleteMode::Redact, None) => {
                    touch_partition_of_call(&tx, p, &r.call_id)?;
                    tx.prepare_cached(
                        "DELETE FROM transcript_turns
                         WHERE call_seq = (SELECT seq FROM calls WHERE provider = ?1 AND id = ?2)",
                    )?
                    .execute(params![p, r.call_id])?;
                    tx.prepare_cached(
                        "UPDATE calls SET summary = NULL, transcript_url = NULL,
                            redacted_at = coalesce(redacted_at, ?3),
                            raw_json = CASE WHEN json_valid(raw_json)
                                THEN json_set(raw_json, '$.transcript', NULL, '$.summary', NULL)
                                ELSE raw_json END
                         WHERE provider = ?1 AND id = ?2",
                    )?
                    .execute(params![p, r.call_id, now])?
                }
            };
            tx.prepare_cached(
                "INSERT INTO deleted_calls (provider, call_id, agent_id, mode, job_id, deleted_at)
                 SELECT provider, call_id, agent_id, ?4, job_id, ?5 FROM delete_items
                 WHERE job_id = ?1 AND provider = ?2 AND call_id = ?3",
            )?
            .execute(params![job, p, r.call_id, mode.as_str(), now])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Ends this process's run of a job: its state follows from its items' states.
    pub fn finish_job(&mut self, job: i64) -> Result<JobCounts, JournalError> {
        let counts = job_counts(&self.conn, job)?;
        let state = if counts.pending > 0 {
            "stopped"
        } else if counts.failed > 0 {
            "partial"
        } else {
            "complete"
        };
        let finished = (counts.pending == 0).then(|| format_timestamp(Utc::now()));
        self.conn.execute(
            "UPDATE delete_jobs SET state = ?2, pid = NULL, finished_at = ?3 WHERE id = ?1",
            params![job, state, finished],
        )?;
        Ok(counts)
    }

    /// The mode a job was planned with.
    pub fn job_mode(&self, job: i64) -> Result<DeleteMode, JournalError> {
        let mode: String = self
            .conn
            .query_row(
                "SELECT mode FROM delete_jobs WHERE id = ?1",
                params![job],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(JournalError::NoSuchJob(job))?;
        parse_mode(job, &mode)
    }

    /// Up to `limit` failed items of a job, for its summary.
    pub fn failed_items(&self, job: i64, limit: usize) -> Result<Vec<FailedItem>, JournalError> {
        let mut stmt = self.conn.prepare(
            "SELECT provider, call_id, http_status, last_error FROM delete_items
             WHERE job_id = ?1 AND state = 'failed' ORDER BY rowid LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![job, limit as i64], |r| {
            Ok(FailedItem {
                provider: r.get(0)?,
                call_id: r.get(1)?,
                http_status: r.get(2)?,
                error: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Items of a job per state, read on any connection.
pub fn job_counts(conn: &Connection, job: i64) -> Result<JobCounts, JournalError> {
    let mut counts = JobCounts::default();
    let mut stmt = conn.prepare_cached(
        "SELECT state, count(*) FROM delete_items WHERE job_id = ?1 GROUP BY state",
    )?;
    let rows = stmt.query_map(params![job], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (state, n) = row?;
        let n = n as u64;
        match state.as_str() {
            "pending" => counts.pending = n,
            "done" => counts.done = n,
            "gone" => counts.gone = n,
            "skipped" => counts.skipped = n,
            _ => counts.failed += n,
        }
    }
    Ok(counts)
}

/// Every delete job with its counts, newest first, read on any connection.
pub fn job_summaries(conn: &Connection) -> Result<Vec<JobSummary>, JournalError> {
    let mut stmt = conn.prepare(
        "SELECT id, created_at, mode, state, pid, finished_at, selection
         FROM delete_jobs ORDER BY id DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, String>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, created_at, mode, state, pid, finished_at, selection) = row?;
        let state = match (state.as_str(), pid) {
            ("running", Some(pid)) if !process_alive(pid) => "interrupted".to_string(),
            _ => state,
        };
        out.push(JobSummary {
            id,
            created_at,
            mode,
            state,
            counts: job_counts(conn, id)?,
            finished_at,
            selection,
        });
    }
    Ok(out)
}

fn parse_mode(job: i64, mode: &str) -> Result<DeleteMode, JournalError> {
    mode.parse().map_err(|_| JournalError::UnknownMode {
        job,
        mode: mode.to_string(),
    })
}

fn parse_provider(job: i64, provider: &str) -> Result<ProviderKind, JournalError> {
    provider.parse().map_err(|_| JournalError::UnknownProvider {
        job,
        provider: provider.to_string(),
    })
}

/// An item's destination; a job frozen before key variables were recorded used the
/// provider's default one.
fn destination(
    job: i64,
    provider: &str,
    base_url: Option<String>,
    key_env: Option<String>,
) -> Result<Destination, JournalError> {
    let provider = parse_provider(job, provider)?;
    Ok(Destination {
        provider,
        base_url: base_url.unwrap_or_else(|| provider.default_base_url().to_string()),
        key_env: key_env.unwrap_or_else(|| provider.key_env().to_string()),
    })
}

/// A few of many names, for an error line.
pub fn examples(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(", and {} more", names.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::bluejay::parse_call_log;

    fn archive_with(ids: &[&str]) -> (tempfile::TempDir, Archive) {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(&dir.path().join("a.db")).unwrap();
        let (stream, run) = crate::store::test_stream(&mut archive, ProviderKind::Bluejay, "a");
        let calls: Vec<_> = ids
            .iter()
            .map(|id| {
                parse_call_log(&format!(
                    r#"{{"id":"{id}","agent_id":"a","recording_url":"https://r/{id}.wav","tags":["t"],"evaluations":[{{"id":"e-{id}"}}]}}"#
                ))
                .unwrap()
            })
            .collect();
        archive
            .write_page(&stream, run, &crate::store::PageWrite::of_calls(calls))
            .unwrap();
        (dir, archive)
    }

    fn planned(ids: &[&str]) -> Vec<PlannedItem> {
        ids.iter()
            .map(|id| PlannedItem {
                call_id: id.to_string(),
                agent_id: Some("a".into()),
                destination: Destination {
                    provider: ProviderKind::Bluejay,
                    base_url: "http://127.0.0.1:9".into(),
                    key_env: "BLUEJAY_API_KEY".into(),
                },
            })
            .collect()
    }

    fn result(id: &str, state: ItemState) -> ItemResult {
        ItemResult {
            provider: ProviderKind::Bluejay,
            call_id: id.into(),
            state,
            http_status: None,
            error: None,
            retryable: false,
            replacement: None,
        }
    }

    fn count(archive: &Archive, sql: &str) -> i64 {
        archive
            .connection()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_confirmed_full_delete_removes_the_call_and_children_and_writes_an_audit_row() {
        let (_dir, mut archive) = archive_with(&["c1", "c2", "c3"]);
        let job = archive
            .freeze_job(
                "SELECT ...",
                None,
                DeleteMode::Full,
                &planned(&["c1", "c2"]),
            )
            .unwrap();
        let start = archive.start_job(job).unwrap();
        assert_eq!(start.items.len(), 2);
        archive
            .record_results(
                job,
                DeleteMode::Full,
                &[result("c1", ItemState::Done), result("c2", ItemState::Gone)],
            )
            .unwrap();
        assert_eq!(count(&archive, "SELECT count(*) FROM calls"), 1);
        assert_eq!(count(&archive, "SELECT count(*) FROM evaluations"), 1);
        assert_eq!(count(&archive, "SELECT count(*) FROM call_tags"), 1);
        assert_eq!(
            count(
                &archive,
                "SELECT count(*) FROM deleted_calls WHERE mode = 'full' AND agent_id = 'a'"
            ),
            2
        );
        let counts = archive.finish_job(job).unwrap();
        assert_eq!((counts.done, counts.gone, counts.pending), (1, 1, 0));
        // Another job planned for c1 before it went skips it rather than sending again.
        let again = archive
            .freeze_job("SELECT ...", None, DeleteMode::Full, &planned(&["c3"]))
            .unwrap();
        archive
            .conn
            .execute(
                "INSERT INTO delete_items (job_id, provider, call_id, state)
                 VALUES (?1, 'bluejay', 'c1', 'pending')",
                params![again],
            )
            .unwrap();
        let start = archive.start_job(again).unwrap();
        assert_eq!(start.items.len(), 1);
        assert_eq!(
            count(
                &archive,
                "SELECT count(*) FROM delete_items WHERE state = 'skipped' AND last_error = 'already deleted by job 1'"
            ),
            1
        );
    }

    #[test]
    fn recording_only_clears_the_recording_and_keeps_the_rest() {
        let (_dir, mut archive) = archive_with(&["c1"]);
        let job = archive
            .freeze_job(
                "SELECT ...",
                None,
                DeleteMode::RecordingOnly,
                &planned(&["c1"]),
            )
            .unwrap();
        archive
            .record_results(
                job,
                DeleteMode::RecordingOnly,
                &[result("c1", ItemState::Done)],
            )
            .unwrap();
        assert_eq!(
            count(
                &archive,
                "SELECT count(*) FROM calls WHERE recording_url IS NULL
                   AND json_type(raw_json, '$.recording_url') = 'null'"
            ),
            1
        );
        assert_eq!(count(&archive, "SELECT count(*) FROM evaluations"), 1);
        assert_eq!(
            count(
                &archive,
                "SELECT count(*) FROM deleted_calls WHERE mode = 'recording-only'"
            ),
            1
        );
    }

    #[test]
    fn a_plan_naming_a_call_no_longer_archived_is_not_frozen() {
        let (_dir, mut archive) = archive_with(&["c1"]);
        let err = archive
            .freeze_job(
                "SELECT ...",
                None,
                DeleteMode::Full,
                &planned(&["c1", "ghost"]),
            )
            .unwrap_err();
        assert!(err.to_string().contains("bluejay/ghost"), "{err}");
        assert_eq!(count(&archive, "SELECT count(*) FROM delete_jobs"), 0);
        assert_eq!(count(&archive, "SELECT count(*) FROM delete_items"), 0);
    }

    #[test]
    fn failures_count_and_only_retryable_ones_are_sent_again() {
        let (_dir, mut archive) = archive_with(&["c1", "c2", "c3"]);
        let job = archive
            .freeze_job(
                "SELECT ...",
                None,
                DeleteMode::Full,
                &planned(&["c1", "c2", "c3"]),
            )
            .unwrap();
        archive.start_job(job).unwrap();
        let mut retry = result("c1", ItemState::Failed);
        retry.retryable = true;
        retry.http_status = Some(503);
        let mut refused = result("c2", ItemState::Failed);
        refused.http_status = Some(400);
        archive
            .record_results(job, DeleteMode::Full, &[retry, refused])
            .unwrap();
        let counts = archive.finish_job(job).unwrap();
        assert_eq!((counts.failed, counts.pending), (2, 1));
        let summaries = job_summaries(archive.connection()).unwrap();
        assert_eq!(summaries[0].state, "stopped");
        let start = archive.start_job(job).unwrap();
        let ids: Vec<_> = start.items.iter().map(|i| i.call_id.as_str()).collect();
        assert_eq!(ids, vec!["c1", "c3"]);
        assert_eq!(count(&archive, "SELECT count(*) FROM calls"), 3);
    }
}
