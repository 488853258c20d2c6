//! Bulk delete: an SQL selection over the archive becomes a frozen plan, which is executed
//! against the providers and mirrored back into the archive.
//!
//! A *selection* is one read-only statement returning the columns `provider` and `call_id`,
//! with `:name` parameters bound from the user's `--param`s (never spliced into the text).
//! `DeletePlan::from_selection` reads it on a `query_only` connection, folds duplicates and
//! refuses what must not be deleted: unknown providers, calls the archive does not hold, more
//! calls than the user allowed. `DeletePlan::check_modes` refuses a mode a provider does not
//! offer, naming the rows. `freeze` writes the plan to the journal (`store::journal`) in one
//! transaction; only then does `execute` send anything. `execute` sends the outstanding items
//! of a job with bounded concurrency and records each response at once; a response the
//! provider acted on but the journal did not record (a crash in between) is sent again by
//! `--resume` and comes back 404, which counts as `gone`. An error that will fail every request
//! the same way (a rejected key) stops the job at once, leaving its items pending. This module
//! never prints and never decides on its own what to delete.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::providers::{DeleteMode, DeleteOutcome, Provider, ProviderError, ProviderKind};
use crate::store::journal::{
    examples, Destination, FailedItem, ItemResult, ItemState, JobCounts, JournalError, PendingItem,
    PlannedItem,
};
use crate::store::{ArchiveWriter, StoreError};

/// Requests in flight at once, unless the user says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// The largest selection deleted without raising `--max`.
pub const DEFAULT_MAX: usize = 1000;

/// Rows a dry run shows.
pub const SAMPLE_ROWS: usize = 10;

/// Responses queued for the journal before senders wait for it (backpressure).
const RESULT_QUEUE: usize = 1024;

/// Failed items named in a run's summary.
const FAILED_SHOWN: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("the selection failed")]
    Sql(#[from] rusqlite::Error),
    #[error("the selection is empty")]
    Empty,
    #[error("give the selection as one SQL statement")]
    SeveralStatements,
    #[error("the selection must only read; the archive changes only through sync and delete")]
    WriteRefused,
    #[error("the selection must return the columns provider and call_id; it returns {found}")]
    MissingColumns { found: String },
    #[error("the selection's parameters: {0}")]
    Params(#[from] crate::query::QueryError),
    #[error("row {row} of the selection: {message}")]
    BadRow { row: u64, message: String },
    #[error("the selection holds more than {max} calls; raise --max to delete more at once")]
    TooMany { max: usize },
    #[error("{count} selected call(s) are not in the archive ({examples}); delete acts only on archived calls")]
    NotArchived { count: usize, examples: String },
    #[error("{provider} offers no {mode} delete (it offers {offered}); {count} selected row(s) ask for it: {examples}")]
    ModeRefused {
        provider: ProviderKind,
        mode: DeleteMode,
        offered: String,
        count: usize,
        examples: String,
    },
    #[error("no adapter was given for {} at {}", .0.provider, .0.base_url)]
    NoProvider(Destination),
    #[error("{count} selected call(s) have no recorded source to delete them at ({examples}); sync them again first")]
    NoSource { count: usize, examples: String },
    #[error("delete job {job} stopped: {cause}; {pending} item(s) stay pending, run `callvault delete --resume {job}` once it is fixed")]
    Stopped {
        job: i64,
        pending: u64,
        cause: ProviderError,
    },
    #[error("archive")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("a delete task stopped: {0}")]
    Task(String),
}

/// What to delete, as the user selected it.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub sql: String,
    /// Bound to `:name` parameters of `sql`.
    pub params: Vec<(String, String)>,
}

impl Selection {
    /// The parameters as a JSON object, for the job record; `None` without parameters.
    pub fn params_json(&self) -> Option<String> {
        if self.params.is_empty() {
            return None;
        }
        let map: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        Some(serde_json::Value::Object(map).to_string())
    }
}

/// One call a plan deletes, and where its delete goes: the source that archived it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub provider: ProviderKind,
    pub call_id: String,
    pub agent_id: Option<String>,
    pub created_at: Option<String>,
    pub destination: Destination,
}

/// The calls a selection chose, checked, deduplicated, in selection order.
#[derive(Clone, Debug, PartialEq)]
pub struct DeletePlan {
    pub mode: DeleteMode,
    pub targets: Vec<Target>,
}

/// What a dry run reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanSummary {
    /// Calls per provider.
    pub providers: BTreeMap<String, u64>,
    /// Calls per destination (where the requests go).
    pub destinations: BTreeMap<Destination, u64>,
    /// Calls per agent (`-` for calls without one).
    pub agents: BTreeMap<String, u64>,
    pub first_created: Option<String>,
    pub last_created: Option<String>,
}

impl DeletePlan {
    /// Runs the selection on a read-only connection and checks every row it returns.
    pub fn from_selection(
        conn: &Connection,
        selection: &Selection,
        mode: DeleteMode,
        max: usize,
    ) -> Result<DeletePlan, DeleteError> {
        let sql = selection.sql.trim().trim_end_matches(';').trim();
        if sql.is_empty()
            || sql
                .lines()
                .all(|l| l.trim().is_empty() || l.trim().starts_with("--"))
        {
            return Err(DeleteError::Empty);
        }
        let mut stmt = conn.prepare(sql).map_err(|e| match e {
            rusqlite::Error::MultipleStatement => DeleteError::SeveralStatements,
            other => DeleteError::Sql(other),
        })?;
        if !stmt.readonly() {
            return Err(DeleteError::WriteRefused);
        }
        let names: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let column = |wanted: &str| names.iter().position(|n| n.eq_ignore_ascii_case(wanted));
        let (Some(provider_col), Some(id_col)) = (column("provider"), column("call_id")) else {
            return Err(DeleteError::MissingColumns {
                found: if names.is_empty() {
                    "no columns".into()
                } else {
                    names.join(", ")
                },
            });
        };
        // One binder for `query` and `delete`: a preview selects what the delete deletes.
        crate::query::named::bind_params(&mut stmt, &selection.params)?;
        let mut seen: HashSet<(ProviderKind, String)> = HashSet::new();
        let mut picked: Vec<(ProviderKind, String)> = Vec::new();
        let mut rows = stmt.raw_query();
        let mut row_number = 0u64;
        while let Some(row) = rows.next().map_err(DeleteError::Sql)? {
            row_number += 1;
            let bad = |message: String| DeleteError::BadRow {
                row: row_number,
                message,
            };
            let provider = match row.get_ref(provider_col).map_err(DeleteError::Sql)? {
                ValueRef::Text(t) => {
                    let text = String::from_utf8_lossy(t);
                    ProviderKind::from_str(&text).map_err(bad)?
                }
                other => return Err(bad(format!("provider is {}, not text", kind_of(other)))),
            };
            let call_id = match row.get_ref(id_col).map_err(DeleteError::Sql)? {
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Integer(i) => i.to_string(),
                other => return Err(bad(format!("call_id is {}, not text", kind_of(other)))),
            };
            if seen.insert((provider, call_id.clone())) {
                if picked.len() == max {
                    return Err(DeleteError::TooMany { max });
                }
                picked.push((provider, call_id));
            }
        }
        drop(rows);
        // The source that last served the call; one archived before sources were recorded
        // belongs to its provider's first source (schema 4).
        let mut lookup = conn.prepare(
            "SELECT c.agent_id, c.created_at, o.base_url, o.key_env FROM calls c
             LEFT JOIN sources o ON o.id = coalesce(c.source_id,
                (SELECT min(f.id) FROM sources f WHERE f.provider = c.provider))
             WHERE c.provider = ?1 AND c.id = ?2",
        )?;
        let mut targets = Vec::with_capacity(picked.len());
        let (mut missing, mut sourceless) = (Vec::new(), Vec::new());
        for (provider, call_id) in picked {
            let mut found = lookup.query(params![provider.as_str(), call_id])?;
            let Some(row) = found.next()? else {
                missing.push(format!("{provider}/{call_id}"));
                continue;
            };
            let (Some(base_url), Some(key_env)) = (row.get(2)?, row.get(3)?) else {
                sourceless.push(format!("{provider}/{call_id}"));
                continue;
            };
            targets.push(Target {
                provider,
                agent_id: row.get(0)?,
                created_at: row.get(1)?,
                destination: Destination {
                    provider,
                    base_url,
                    key_env,
                },
                call_id,
            });
        }
        if !missing.is_empty() {
            return Err(DeleteError::NotArchived {
                count: missing.len(),
                examples: examples(&missing),
            });
        }
        if !sourceless.is_empty() {
            return Err(DeleteError::NoSource {
                count: sourceless.len(),
                examples: examples(&sourceless),
            });
        }
        Ok(DeletePlan { mode, targets })
    }

    /// The providers the plan reaches, in a stable order.
    pub fn providers(&self) -> Vec<ProviderKind> {
        let mut kinds: Vec<ProviderKind> = Vec::new();
        for t in &self.targets {
            if !kinds.contains(&t.provider) {
                kinds.push(t.provider);
            }
        }
        kinds.sort_by_key(|k| k.as_str());
        kinds
    }

    /// Refuses the plan when a provider of it does not offer its mode, naming the rows.
    pub fn check_modes(
        &self,
        offered: impl Fn(ProviderKind) -> &'static [DeleteMode],
    ) -> Result<(), DeleteError> {
        for kind in self.providers() {
            let modes = offered(kind);
            if modes.contains(&self.mode) {
                continue;
            }
            let rows: Vec<String> = self
                .targets
                .iter()
                .filter(|t| t.provider == kind)
                .map(|t| format!("{kind}/{}", t.call_id))
                .collect();
            return Err(DeleteError::ModeRefused {
                provider: kind,
                mode: self.mode,
                offered: modes
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                count: rows.len(),
                examples: examples(&rows),
            });
        }
        Ok(())
    }

    pub fn summary(&self) -> PlanSummary {
        let mut s = PlanSummary::default();
        for t in &self.targets {
            *s.providers.entry(t.provider.to_string()).or_default() += 1;
            *s.destinations.entry(t.destination.clone()).or_default() += 1;
            let agent = t.agent_id.clone().unwrap_or_else(|| "-".into());
            *s.agents.entry(agent).or_default() += 1;
            if let Some(c) = &t.created_at {
                if s.first_created.as_ref().is_none_or(|f| c < f) {
                    s.first_created = Some(c.clone());
                }
                if s.last_created.as_ref().is_none_or(|l| c > l) {
                    s.last_created = Some(c.clone());
                }
            }
        }
        s
    }

    fn planned_items(&self) -> Vec<PlannedItem> {
        self.targets
            .iter()
            .map(|t| PlannedItem {
                call_id: t.call_id.clone(),
                agent_id: t.agent_id.clone(),
                destination: t.destination.clone(),
            })
            .collect()
    }
}

fn kind_of(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a number",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
}

/// Runs a journal operation on the writer. Its own error fails its job, so a commit that the
/// job shared reports the real cause, not only that a shared write failed.
async fn journal<T: Send + 'static>(
    writer: &ArchiveWriter,
    operation: impl FnOnce(&mut crate::store::Archive) -> Result<T, JournalError> + Send + 'static,
) -> Result<T, DeleteError> {
    match writer
        .run(move |a| operation(a).map_err(StoreError::from))
        .await
    {
        Ok(value) => Ok(value),
        Err(StoreError::Journal(e)) => Err(DeleteError::Journal(e)),
        Err(e) => Err(DeleteError::Store(e)),
    }
}

/// Freezes `plan` as a new job: every target, with its destination, is in the journal
/// before anything is sent.
pub async fn freeze(
    writer: &ArchiveWriter,
    plan: &DeletePlan,
    selection: &Selection,
) -> Result<i64, DeleteError> {
    let items = plan.planned_items();
    let mode = plan.mode;
    let sql = selection.sql.clone();
    let params_json = selection.params_json();
    let job = journal(writer, move |a| {
        a.freeze_job(&sql, params_json.as_deref(), mode, &items)
    })
    .await?;
    Ok(job)
}

/// Where a job's outstanding items go.
pub async fn destinations(
    writer: &ArchiveWriter,
    job: i64,
) -> Result<Vec<Destination>, DeleteError> {
    journal(writer, move |a| a.job_destinations(job)).await
}

/// How a run of a job went.
#[derive(Clone, Debug)]
pub struct JobReport {
    pub job: i64,
    pub mode: DeleteMode,
    /// The job's items per state after this run.
    pub counts: JobCounts,
    /// Requests this run sent.
    pub sent: u64,
    pub elapsed: Duration,
    /// A few failed items, for the summary.
    pub failed: Vec<FailedItem>,
}

impl JobReport {
    /// The one line a run ends with.
    pub fn summary_line(&self) -> String {
        let c = &self.counts;
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.sent as f64 / secs
        } else {
            0.0
        };
        format!(
            "delete job {} ({}): {} done, {} gone, {} skipped, {} failed, {} pending; sent {} request(s) in {:.2} s ({:.0} deletes/s)",
            self.job, self.mode, c.done, c.gone, c.skipped, c.failed, c.pending, self.sent, secs, rate
        )
    }
}

/// Sends every outstanding item of `job` and records each response as it comes.
///
/// `providers` holds one adapter per destination of the job: an item's request goes to the
/// adapter of its own destination and no other. At most `concurrency` requests are in
/// flight; the adapters' shared `HttpClient` applies the retry policy and rate limit.
pub async fn execute(
    writer: Arc<ArchiveWriter>,
    job: i64,
    providers: HashMap<Destination, Arc<dyn Provider>>,
    concurrency: usize,
    progress: ProgressBar,
) -> Result<JobReport, DeleteError> {
    let started = Instant::now();
    let start = journal(&writer, move |a| a.start_job(job)).await?;
    let mode = start.mode;
    if let Some(missing) = start
        .items
        .iter()
        .map(|i| &i.destination)
        .find(|d| !providers.contains_key(d))
        .cloned()
    {
        journal(&writer, move |a| a.finish_job(job)).await?;
        return Err(DeleteError::NoProvider(missing));
    }
    progress.set_length(start.items.len() as u64);

    let (results_tx, results_rx) = mpsc::channel::<ItemResult>(RESULT_QUEUE);
    let recorder = tokio::spawn(record(
        writer.clone(),
        job,
        mode,
        results_rx,
        progress.clone(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let fatal: Arc<Mutex<Option<ProviderError>>> = Arc::new(Mutex::new(None));
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut sent = 0u64;
    for item in start.items {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        // Checked after waiting for a permit: a task that just failed fatally set it.
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let provider = providers
            .get(&item.destination)
            .cloned()
            .ok_or_else(|| DeleteError::NoProvider(item.destination.clone()))?;
        let (results, stop, fatal) = (results_tx.clone(), stop.clone(), fatal.clone());
        sent += 1;
        tasks.spawn(async move {
            let response = provider.delete_call(&item.call_id, mode).await;
            let result = item_result(&item, &response);
            if let Err(e) = response {
                if e.is_fatal_for_run() {
                    stop.store(true, Ordering::SeqCst);
                    let mut first = fatal.lock().unwrap_or_else(|p| p.into_inner());
                    first.get_or_insert(e);
                }
            }
            // The permit is held until the result is queued, so a slow journal slows sending.
            let queued = results.send(result).await;
            drop(permit);
            if queued.is_err() {
                // The recorder stopped on an archive error; send nothing more.
                stop.store(true, Ordering::SeqCst);
            }
        });
        // Reap finished tasks as we go so the set stays as small as the concurrency.
        while let Some(joined) = tasks.try_join_next() {
            joined.map_err(|e| DeleteError::Task(e.to_string()))?;
        }
    }
    drop(results_tx);
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| DeleteError::Task(e.to_string()))?;
    }
    let recorded = recorder
        .await
        .map_err(|e| DeleteError::Task(e.to_string()))?;
    let counts = journal(&writer, move |a| a.finish_job(job)).await?;
    progress.finish_and_clear();
    recorded?;
    let fatal = fatal.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(cause) = fatal {
        return Err(DeleteError::Stopped {
            job,
            pending: counts.pending,
            cause,
        });
    }
    let failed = journal(&writer, move |a| a.failed_items(job, FAILED_SHOWN)).await?;
    Ok(JobReport {
        job,
        mode,
        counts,
        sent,
        elapsed: started.elapsed(),
        failed,
    })
}

/// What a provider's answer makes of an item.
fn item_result(item: &PendingItem, response: &Result<DeleteOutcome, ProviderError>) -> ItemResult {
    let replacement = match response {
        Ok(DeleteOutcome::Redacted(call)) => Some(call.clone()),
        _ => None,
    };
    let (state, http_status, error, retryable) = match response {
        Ok(DeleteOutcome::Deleted | DeleteOutcome::Redacted(_)) => {
            (ItemState::Done, None, None, false)
        }
        Ok(DeleteOutcome::Gone) => (ItemState::Gone, Some(404), None, false),
        // Left pending: once the key is fixed, `--resume` sends it again.
        Err(e) if e.is_fatal_for_run() => (
            ItemState::Pending,
            e.http_status(),
            Some(e.to_string()),
            false,
        ),
        Err(e @ ProviderError::Unsupported { .. }) => {
            (ItemState::Skipped, None, Some(e.to_string()), false)
        }
        Err(e) => (
            ItemState::Failed,
            e.http_status(),
            Some(e.to_string()),
            e.is_retryable(),
        ),
    };
    ItemResult {
        provider: item.destination.provider,
        call_id: item.call_id.clone(),
        state,
        http_status,
        error,
        retryable,
        replacement,
    }
}

/// Writes results to the journal as they come: whatever is queued when the writer is free
/// goes in one transaction, so a busy run batches and a quiet one records each at once.
async fn record(
    writer: Arc<ArchiveWriter>,
    job: i64,
    mode: DeleteMode,
    mut results: mpsc::Receiver<ItemResult>,
    progress: ProgressBar,
) -> Result<(), DeleteError> {
    let mut batch = Vec::new();
    while results.recv_many(&mut batch, RESULT_QUEUE).await > 0 {
        let done = std::mem::take(&mut batch);
        let n = done.len() as u64;
        journal(&writer, move |a| a.record_results(job, mode, &done)).await?;
        progress.inc(n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::bluejay::parse_call_log;
    use crate::store::Archive;

    fn archive() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let mut archive = Archive::open(&path).unwrap();
        let (stream, run) = crate::store::test_stream(&mut archive, ProviderKind::Bluejay, "a");
        let calls: Vec<_> = (1..=5)
            .map(|i| {
                parse_call_log(&format!(
                    r#"{{"id":"c{i}","agent_id":"a{}","created_at":"2026-01-0{i}T00:00:00Z"}}"#,
                    i % 2
                ))
                .unwrap()
            })
            .collect();
        archive
            .write_page(&stream, run, &crate::store::PageWrite::of_calls(calls))
            .unwrap();
        drop(archive);
        let conn = Archive::open_read_only(&path).unwrap();
        (dir, conn)
    }

    fn select(sql: &str) -> Selection {
        Selection {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    fn plan(conn: &Connection, sql: &str) -> Result<DeletePlan, DeleteError> {
        DeletePlan::from_selection(conn, &select(sql), DeleteMode::Full, 100)
    }

    #[test]
    fn duplicates_fold_and_the_summary_counts_agents_and_dates() {
        let (_d, conn) = archive();
        let p = plan(
            &conn,
            "SELECT provider, id AS call_id FROM calls WHERE id IN ('c1','c2')
             UNION ALL SELECT provider, id FROM calls WHERE id = 'c1'",
        )
        .unwrap();
        let ids: Vec<_> = p.targets.iter().map(|t| t.call_id.as_str()).collect();
        assert_eq!(ids, vec!["c1", "c2"]);
        let s = p.summary();
        assert_eq!(s.providers["bluejay"], 2);
        assert_eq!((s.agents["a0"], s.agents["a1"]), (1, 1));
        assert_eq!(s.first_created.as_deref(), Some("2026-01-01T00:00:00.000Z"));
        assert_eq!(s.last_created.as_deref(), Some("2026-01-02T00:00:00.000Z"));
    }

    #[test]
    fn bad_selections_are_refused_with_what_was_wrong() {
        let (_d, conn) = archive();
        let err = |sql: &str| plan(&conn, sql).unwrap_err().to_string();
        assert!(err("SELECT id FROM calls").contains("provider and call_id; it returns id"));
        assert!(err("DELETE FROM calls").contains("only read"));
        assert!(err("SELECT 1; SELECT 2").contains("one SQL statement"));
        assert!(err("-- nothing").contains("empty"));
        assert!(
            err("SELECT 'acme' AS provider, 'c1' AS call_id").contains("unknown provider 'acme'")
        );
        assert!(err("SELECT 'bluejay' AS provider, NULL AS call_id").contains("row 1"));
        assert!(err("SELECT 'bluejay' AS provider, 'nope' AS call_id").contains("bluejay/nope"));
        let e = DeletePlan::from_selection(
            &conn,
            &select("SELECT provider, id AS call_id FROM calls"),
            DeleteMode::Full,
            4,
        )
        .unwrap_err();
        assert!(matches!(e, DeleteError::TooMany { max: 4 }), "{e}");
        let fits = DeletePlan::from_selection(
            &conn,
            &select("SELECT provider, id AS call_id FROM calls"),
            DeleteMode::Full,
            5,
        )
        .unwrap();
        assert_eq!(fits.targets.len(), 5);
    }

    #[test]
    fn parameters_are_bound_never_spliced() {
        let (_d, conn) = archive();
        let sel = |params: &[(&str, &str)]| Selection {
            sql: "SELECT provider, id AS call_id FROM calls WHERE agent_id = :agent LIMIT :n"
                .into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let p = DeletePlan::from_selection(
            &conn,
            &sel(&[("agent", "a1"), ("n", "2")]),
            DeleteMode::Full,
            10,
        )
        .unwrap();
        assert_eq!(p.targets.len(), 2);
        let injected = DeletePlan::from_selection(
            &conn,
            &sel(&[("agent", "a1' OR '1'='1"), ("n", "10")]),
            DeleteMode::Full,
            10,
        )
        .unwrap();
        assert!(injected.targets.is_empty());
        let missing =
            DeletePlan::from_selection(&conn, &sel(&[("agent", "a1")]), DeleteMode::Full, 10)
                .unwrap_err();
        assert!(missing.to_string().contains("--param n=VALUE"), "{missing}");
        let unknown = DeletePlan::from_selection(
            &conn,
            &sel(&[("agent", "a1"), ("n", "1"), ("x", "1")]),
            DeleteMode::Full,
            10,
        )
        .unwrap_err();
        assert!(
            unknown.to_string().contains("--param x is not used"),
            "{unknown}"
        );
    }

    #[test]
    fn a_mode_the_provider_does_not_offer_is_refused_naming_rows() {
        let (_d, conn) = archive();
        let p = DeletePlan::from_selection(
            &conn,
            &select("SELECT provider, id AS call_id FROM calls WHERE id = 'c3'"),
            DeleteMode::Redact,
            10,
        )
        .unwrap();
        let err = p
            .check_modes(|_| &[DeleteMode::Full, DeleteMode::RecordingOnly])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bluejay offers no redact delete"), "{err}");
        assert!(err.contains("bluejay/c3"), "{err}");
        assert!(p.check_modes(|_| &[DeleteMode::Redact]).is_ok());
    }
}
