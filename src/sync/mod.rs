//! Sync: walks each stream of each source and hands whole pages to the archive writer.
//!
//! A *stream* is one scope of one provider (an agent). A *walk* fetches every page the
//! provider's `WalkPlan` starts with and every page those pages reveal; pages are fetched
//! concurrently, bounded by one semaphore shared by every stream of the run. Each page is
//! written with its place in the walk in one transaction, so a walk that is killed resumes
//! on the next run: the pages it committed are skipped, unless the provider's count of the
//! walk changed since (then page numbers shifted, and the walk starts over).
//!
//! A walk *drifts* when the provider's count changes between pages, when a call shows up on
//! two pages, or when the calls seen do not add up to that count: calls arrived or vanished
//! while we walked. A drifted walk is repeated (writes are idempotent, so that costs only
//! time); only a walk without drift is *complete* and moves the stream's starting point
//! forward. After the walk, calls the provider may still change (unfinished, not yet
//! evaluated) and younger than the recheck horizon are fetched again by id, so late
//! evaluations arrive even outside the walk's window. With `prune`, a complete walk that
//! covers everything removes the archived calls the provider no longer has. Nothing here
//! depends on the order a provider sorts in.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use indicatif::ProgressBar;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::providers::{
    CallRecord, Page, PageCursor, Provider, ProviderError, ProviderKind, Scope, WalkOptions,
    WalkPlan,
};
use crate::store::{
    id_hash, ArchiveWriter, CommittedPage, PageCounts, Queued, RunOutcome, StoreError,
};

/// How many times a drifting walk is repeated before the stream is reported unsettled.
pub const MAX_WALKS: u32 = 4;

/// Page requests in flight at once across a run, unless the user says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// How long after its creation a call that is not final is fetched again, by default.
pub const DEFAULT_RECHECK_DAYS: i64 = 7;

/// Rechecked calls written per transaction.
const RECHECK_BATCH: usize = 100;

/// Pages of one stream queued for the writer before the walk waits for the oldest commit:
/// enough to keep fetching through a checkpoint, few enough that memory stays bounded.
const PAGES_AWAITING_COMMIT: usize = 8;

/// One provider account to sync: the adapter, where it was reached, and its streams.
pub struct Source {
    pub provider: Arc<dyn Provider>,
    pub base_url: String,
    pub scopes: Vec<Scope>,
}

#[derive(Clone, Copy, Debug)]
pub struct SyncSettings {
    pub options: WalkOptions,
    pub concurrency: usize,
    /// Calls created longer ago than this are no longer rechecked.
    pub recheck_within: chrono::Duration,
    /// Remove archived calls a complete walk of everything did not find.
    pub prune: bool,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            options: WalkOptions::default(),
            concurrency: DEFAULT_CONCURRENCY,
            recheck_within: chrono::Duration::days(DEFAULT_RECHECK_DAYS),
            prune: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("archive: {0}")]
    Store(#[from] StoreError),
    #[error("a page task stopped: {0}")]
    Task(String),
    #[error("stopped because another stream of this run had to stop")]
    Stopped,
}

/// How one stream ended.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamOutcome {
    /// A walk ended without drift.
    Complete,
    /// Every walk drifted; what was fetched is archived, but completeness is not proven.
    Unsettled(String),
    /// Stopped cleanly (the provider asked to wait too long); the next run resumes.
    Stopped(String),
    /// The stream stopped on an error; pages committed before it are kept.
    Failed(String),
}

#[derive(Clone, Debug)]
pub struct StreamReport {
    pub provider: ProviderKind,
    pub scope: String,
    pub plan: String,
    pub counts: PageCounts,
    pub pages: u64,
    /// Pages an interrupted walk had committed, skipped on resume.
    pub resumed_pages: u64,
    pub walks: u32,
    /// Calls fetched again by id because the provider may still change them.
    pub rechecked: u64,
    /// Archived calls removed because the provider no longer has them.
    pub pruned: u64,
    pub outcome: StreamOutcome,
}

#[derive(Clone, Debug, Default)]
pub struct SyncReport {
    pub streams: Vec<StreamReport>,
    pub elapsed: Duration,
}

impl SyncReport {
    pub fn totals(&self) -> (PageCounts, u64) {
        let mut counts = PageCounts::default();
        let mut pages = 0;
        for s in &self.streams {
            counts += s.counts;
            pages += s.pages;
        }
        (counts, pages)
    }

    pub fn failed(&self) -> impl Iterator<Item = &StreamReport> {
        self.streams
            .iter()
            .filter(|s| s.outcome != StreamOutcome::Complete)
    }

    /// The one line a sync ends with.
    pub fn summary_line(&self) -> String {
        let (c, pages) = self.totals();
        let mut line = format!(
            "synced {} stream(s): {} new, {} updated, {} unchanged calls; {} evaluations written; {} pages; {:.2} s",
            self.streams.len(),
            c.new,
            c.updated,
            c.unchanged,
            c.evaluations,
            pages,
            self.elapsed.as_secs_f64()
        );
        let sum = |f: fn(&StreamReport) -> u64| self.streams.iter().map(f).sum::<u64>();
        let (resumed, rechecked, pruned) = (
            sum(|s| s.resumed_pages),
            sum(|s| s.rechecked),
            sum(|s| s.pruned),
        );
        if resumed > 0 {
            line.push_str(&format!("; resumed, {resumed} pages already committed"));
        }
        if rechecked > 0 {
            line.push_str(&format!("; {rechecked} unfinished calls rechecked"));
        }
        if pruned > 0 {
            line.push_str(&format!("; {pruned} calls gone upstream pruned"));
        }
        if c.refused_resurrections > 0 {
            line.push_str(&format!(
                "; warning: {} call(s) deleted through callvault are still served by the provider and were not re-archived",
                c.refused_resurrections
            ));
        }
        line
    }
}

/// Everything the walks of one run share.
struct RunContext {
    writer: Arc<ArchiveWriter>,
    permits: Arc<Semaphore>,
    settings: SyncSettings,
    progress: ProgressBar,
    /// Set when a stream must stop the whole run (the provider asked to wait too long).
    stop: AtomicBool,
    /// Why the run stopped.
    stop_reason: Mutex<Option<String>>,
}

impl RunContext {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Syncs every stream of every source, concurrently, and records one `sync_runs` row per
/// source. Errors of one stream do not stop the others; they are in the report.
pub async fn sync_sources(
    writer: Arc<ArchiveWriter>,
    sources: Vec<Source>,
    settings: SyncSettings,
    progress: ProgressBar,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let ctx = Arc::new(RunContext {
        writer: writer.clone(),
        permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
        settings,
        progress,
        stop: AtomicBool::new(false),
        stop_reason: Mutex::new(None),
    });
    let mut runs = Vec::new();
    for source in &sources {
        let kind = source.provider.kind();
        let scopes: Vec<String> = source.scopes.iter().map(Scope::key).collect();
        let run_id = writer.run(move |a| a.begin_run(kind, &scopes)).await?;
        runs.push(run_id);
    }
    let mut streams = JoinSet::new();
    for (source, run_id) in sources.iter().zip(&runs) {
        for scope in &source.scopes {
            let ctx = ctx.clone();
            let provider = source.provider.clone();
            let base_url = source.base_url.clone();
            let scope = scope.clone();
            let run_id = *run_id;
            streams
                .spawn(async move { sync_stream(&ctx, provider, base_url, scope, run_id).await });
        }
    }
    let mut reports = Vec::new();
    while let Some(joined) = streams.join_next().await {
        reports.push(joined.map_err(|e| SyncError::Task(e.to_string()))?);
    }
    reports.sort_by(|a, b| (a.provider.as_str(), &a.scope).cmp(&(b.provider.as_str(), &b.scope)));
    for (source, run_id) in sources.iter().zip(runs) {
        let kind = source.provider.kind();
        let mine: Vec<&StreamReport> = reports.iter().filter(|r| r.provider == kind).collect();
        let bad: Vec<String> = mine
            .iter()
            .filter_map(|r| match &r.outcome {
                StreamOutcome::Complete => None,
                StreamOutcome::Unsettled(why)
                | StreamOutcome::Stopped(why)
                | StreamOutcome::Failed(why) => Some(format!("{}: {why}", r.scope)),
            })
            .collect();
        let hard_failures = mine
            .iter()
            .filter(|r| matches!(r.outcome, StreamOutcome::Failed(_)))
            .count();
        let outcome = if bad.is_empty() {
            RunOutcome::Complete
        } else if hard_failures == mine.len() {
            RunOutcome::Failed
        } else {
            RunOutcome::Partial
        };
        let error = (!bad.is_empty()).then(|| bad.join("; "));
        writer
            .run(move |a| a.finish_run(run_id, outcome, error.as_deref()))
            .await?;
    }
    writer.run(|a| a.optimize()).await?;
    ctx.progress.finish_and_clear();
    Ok(SyncReport {
        streams: reports,
        elapsed: started.elapsed(),
    })
}

async fn sync_stream(
    ctx: &RunContext,
    provider: Arc<dyn Provider>,
    base_url: String,
    scope: Scope,
    run_id: i64,
) -> StreamReport {
    let mut report = StreamReport {
        provider: provider.kind(),
        scope: scope.key(),
        plan: String::new(),
        counts: PageCounts::default(),
        pages: 0,
        resumed_pages: 0,
        walks: 0,
        rechecked: 0,
        pruned: 0,
        outcome: StreamOutcome::Complete,
    };
    let stream = StreamWalk {
        ctx,
        provider: &provider,
        scope: &scope,
        run_id,
    };
    let result = match stream.walk_until_settled(&base_url, &mut report).await {
        Ok(seen) => stream.recheck_unsettled(&seen, &mut report).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        report.outcome = match e {
            SyncError::Provider(ProviderError::WaitTooLong { .. }) => {
                ctx.stop.store(true, Ordering::Relaxed);
                let why = e.to_string();
                if let Ok(mut reason) = ctx.stop_reason.lock() {
                    reason.get_or_insert(why.clone());
                }
                StreamOutcome::Stopped(why)
            }
            SyncError::Stopped => {
                let why = ctx
                    .stop_reason
                    .lock()
                    .ok()
                    .and_then(|r| r.clone())
                    .unwrap_or_default();
                StreamOutcome::Stopped(format!("stopped with the run ({why})"))
            }
            other => StreamOutcome::Failed(other.to_string()),
        };
        tracing::error!("{} {}: {:?}", report.provider, report.scope, report.outcome);
    }
    report
}

/// One stream's walks within a run.
struct StreamWalk<'a> {
    ctx: &'a RunContext,
    provider: &'a Arc<dyn Provider>,
    scope: &'a Scope,
    run_id: i64,
}

/// What one walk found.
struct WalkResult {
    /// Why it drifted, if it did.
    drift: Option<String>,
    /// Hashes of the ids of every call it was served.
    seen: HashSet<u64>,
}

impl StreamWalk<'_> {
    /// Walks until a walk does not drift (or `MAX_WALKS` did). Returns the ids seen by the
    /// last walk.
    async fn walk_until_settled(
        &self,
        base_url: &str,
        report: &mut StreamReport,
    ) -> Result<HashSet<u64>, SyncError> {
        let ctx = self.ctx;
        let kind = self.provider.kind();
        let key = self.scope.key();
        let (state, interrupted) = {
            let key = key.clone();
            ctx.writer
                .run(move |a| Ok((a.stream_state(kind, &key)?, a.interrupted_walk(kind, &key)?)))
                .await?
        };
        let now = Utc::now();
        let plan: WalkPlan =
            self.provider
                .plan_walk(self.scope, &state, now, &ctx.settings.options);
        report.plan = plan.description.clone();
        // Resume only the very walk that was interrupted; a prune needs a walk seen whole.
        let resumable = interrupted.filter(|w| {
            w.checkpoint == plan.checkpoint && !w.pages.is_empty() && !ctx.settings.prune
        });
        let (started_at, mut committed) = match resumable {
            Some(w) => {
                tracing::info!(
                    "{kind} {key}: resuming the walk started {} ({} pages committed)",
                    w.started_at,
                    w.pages.len()
                );
                (w.started_at, w.pages)
            }
            None => {
                tracing::info!("{kind} {key}: walking with {}", plan.description);
                self.start_walk(base_url, &plan, now).await?;
                (now, Vec::new())
            }
        };
        let mut last_drift = String::new();
        for _ in 0..MAX_WALKS {
            report.walks += 1;
            let walk = self
                .walk_once(plan.cursors.clone(), &committed, report)
                .await?;
            match walk.drift {
                None => {
                    let key = key.clone();
                    ctx.writer
                        .run(move |a| a.complete_walk(kind, &key, started_at))
                        .await?;
                    report.outcome = StreamOutcome::Complete;
                    if ctx.settings.prune && plan.covers_everything {
                        report.pruned = self.prune(&walk.seen).await?;
                    }
                    return Ok(walk.seen);
                }
                Some(drift) => {
                    tracing::warn!("{kind} {key}: {drift}; walking the stream again");
                    last_drift = drift;
                    if !committed.is_empty() {
                        committed.clear();
                        self.start_walk(base_url, &plan, started_at).await?;
                    }
                }
            }
        }
        report.outcome = StreamOutcome::Unsettled(format!(
            "the provider's data kept changing during {MAX_WALKS} walks ({last_drift}); what was fetched is archived, run the sync again"
        ));
        Ok(HashSet::new())
    }

    async fn start_walk(
        &self,
        base_url: &str,
        plan: &WalkPlan,
        started_at: chrono::DateTime<Utc>,
    ) -> Result<(), SyncError> {
        let kind = self.provider.kind();
        let (key, base_url, checkpoint) = (
            self.scope.key(),
            base_url.to_string(),
            plan.checkpoint.clone(),
        );
        self.ctx
            .writer
            .run(move |a| a.start_walk(kind, &key, &base_url, &checkpoint, started_at))
            .await?;
        Ok(())
    }

    /// Walks the stream once, skipping pages in `committed` that later pages reveal.
    async fn walk_once(
        &self,
        cursors: Vec<PageCursor>,
        committed: &[CommittedPage],
        report: &mut StreamReport,
    ) -> Result<WalkResult, SyncError> {
        let ctx = self.ctx;
        let kind = self.provider.kind();
        let key = self.scope.key();
        let skippable: HashMap<&str, &CommittedPage> = committed
            .iter()
            .map(|p| (p.cursor_json.as_str(), p))
            .collect();
        let mut queue: VecDeque<PageCursor> = cursors.into();
        ctx.progress.inc_length(queue.len() as u64);
        let mut inflight: JoinSet<(PageCursor, Result<Page, ProviderError>)> = JoinSet::new();
        let mut writes: VecDeque<Queued<PageCounts>> = VecDeque::new();
        let mut seen: HashSet<u64> = HashSet::new();
        let mut skipped_calls = 0u64;
        let mut walk_size: Option<u64> = None;
        let mut drift: Option<String> = None;
        let mut note_size = |size: Option<u64>, drift: &mut Option<String>| match (walk_size, size)
        {
            (None, Some(s)) => walk_size = Some(s),
            (Some(before), Some(s)) if before != s => {
                drift.get_or_insert(format!(
                    "the provider's count changed from {before} to {s} mid-walk"
                ));
            }
            _ => {}
        };
        loop {
            while inflight.len() < ctx.settings.concurrency.max(1) {
                let Some(cursor) = queue.pop_front() else {
                    break;
                };
                if ctx.stopped() {
                    return Err(SyncError::Stopped);
                }
                let (provider, scope, permits) = (
                    self.provider.clone(),
                    self.scope.clone(),
                    ctx.permits.clone(),
                );
                inflight.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let page = provider.fetch_page(&scope, &cursor).await;
                    (cursor, page)
                });
            }
            let Some(joined) = inflight.join_next().await else {
                break;
            };
            let (cursor, page) = joined.map_err(|e| SyncError::Task(e.to_string()))?;
            let page = page?;
            note_size(page.walk_size, &mut drift);
            for call in &page.calls {
                if !seen.insert(id_hash(&call.id)) {
                    drift.get_or_insert(format!("call {} was served on two pages", call.id));
                }
            }
            for next in page.next {
                match skippable.get(next.0.to_string().as_str()) {
                    Some(done) => {
                        // Committed by the interrupted walk; still valid only if the
                        // provider counted the same walk then.
                        note_size(done.walk_size, &mut drift);
                        skipped_calls += done.calls;
                        report.resumed_pages += 1;
                    }
                    None => {
                        ctx.progress.inc_length(1);
                        queue.push_back(next);
                    }
                }
            }
            let record = CommittedPage {
                cursor_json: cursor.0.to_string(),
                calls: page.calls.len() as u64,
                walk_size: page.walk_size,
            };
            let calls = page.calls;
            let key = key.clone();
            let run_id = self.run_id;
            // The page is queued, not awaited: the next pages are fetched and parsed while the
            // writer commits this one (and groups it with others into one transaction).
            writes.push_back(
                ctx.writer
                    .submit(move |a| a.write_page(kind, &key, Some(&record), run_id, &calls))
                    .await?,
            );
            while writes.len() > PAGES_AWAITING_COMMIT {
                if let Some(write) = writes.pop_front() {
                    report.counts += write.answer().await?;
                    report.pages += 1;
                    ctx.progress.inc(1);
                }
            }
        }
        for write in writes {
            report.counts += write.answer().await?;
            report.pages += 1;
            ctx.progress.inc(1);
        }
        if drift.is_none() {
            if let Some(size) = walk_size {
                let served = seen.len() as u64 + skipped_calls;
                if served != size {
                    drift = Some(format!(
                        "the provider counted {size} calls but served {served}"
                    ));
                }
            }
        }
        Ok(WalkResult { drift, seen })
    }

    /// Fetches again, by id, the archived calls the provider may still change, other than
    /// those the walk just fetched.
    async fn recheck_unsettled(
        &self,
        seen: &HashSet<u64>,
        report: &mut StreamReport,
    ) -> Result<(), SyncError> {
        let ctx = self.ctx;
        let kind = self.provider.kind();
        let agent = self.scope.agent_id.clone();
        let horizon = Utc::now() - ctx.settings.recheck_within;
        let ids: Vec<String> = ctx
            .writer
            .run(move |a| a.unsettled_calls(kind, &agent, horizon))
            .await?
            .into_iter()
            .filter(|id| !seen.contains(&id_hash(id)))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        tracing::info!(
            "{kind} {}: rechecking {} unfinished calls",
            self.scope.key(),
            ids.len()
        );
        let mut queue: VecDeque<String> = ids.into();
        let mut inflight: JoinSet<(String, Result<Option<CallRecord>, ProviderError>)> =
            JoinSet::new();
        let mut batch = Vec::with_capacity(RECHECK_BATCH);
        loop {
            while inflight.len() < ctx.settings.concurrency.max(1) {
                let Some(id) = queue.pop_front() else { break };
                if ctx.stopped() {
                    return Err(SyncError::Stopped);
                }
                let (provider, permits) = (self.provider.clone(), ctx.permits.clone());
                inflight.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let call = provider.fetch_call(&id).await;
                    (id, call)
                });
            }
            let joined = inflight.join_next().await;
            let done = joined.is_none();
            if let Some(joined) = joined {
                let (id, call) = joined.map_err(|e| SyncError::Task(e.to_string()))?;
                match call? {
                    Some(call) => batch.push(call),
                    None => tracing::info!("{kind} call {id} is gone at the provider"),
                }
                report.rechecked += 1;
            }
            if batch.len() >= RECHECK_BATCH || (done && !batch.is_empty()) {
                let calls = std::mem::take(&mut batch);
                let (key, run_id) = (self.scope.key(), self.run_id);
                report.counts += ctx
                    .writer
                    .run(move |a| a.write_page(kind, &key, None, run_id, &calls))
                    .await?;
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Removes archived calls a complete walk of everything did not find.
    async fn prune(&self, seen: &HashSet<u64>) -> Result<u64, SyncError> {
        let kind = self.provider.kind();
        let agent = self.scope.agent_id.clone();
        if seen.is_empty() {
            tracing::warn!(
                "{kind} {agent}: the provider served no calls at all; refusing to prune the whole stream"
            );
            return Ok(0);
        }
        let present = seen.clone();
        Ok(self
            .ctx
            .writer
            .run(move |a| a.prune_stream(kind, &agent, &present))
            .await?)
    }
}
