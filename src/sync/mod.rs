//! Sync: walks each stream of each source and hands whole pages to the archive writer.
//!
//! A *source* is one account of a provider at one address; a *stream* is one scope of a
//! source (an agent, or the whole account). A *walk* fetches every page the provider's
//! `WalkPlan` starts with and every page those pages reveal; pages are fetched concurrently,
//! bounded by one semaphore shared by every stream of the run. Each page is written in one
//! transaction with its place in the walk and the cursors it revealed, so a walk that is
//! killed resumes on the next run: a committed page is not fetched again, and the cursors it
//! revealed are followed instead, which keeps a cursor chain whole. The resumed walk is
//! planned as at the time the killed one started, so a plan that depends on the time (time
//! windows ending now, `--window`) is the same plan, with the same cursors.
//!
//! What counts as *drift* depends on the provider's `Pagination`. With numbered pages, a
//! count that changes between pages, a call on two pages, or calls that do not add up to the
//! count mean calls arrived or vanished while we walked and pages shifted (a resumed walk's
//! committed pages are checked against the same count). Keyset cursors and time windows do
//! not shift: a call seen twice (a window bound) is written once and is no drift. A drifted
//! walk is repeated (writes are idempotent, so that costs only time); only a walk without
//! drift is *complete* and moves the stream's starting point and high-water mark forward.
//! A page may carry tombstones, ids the provider deleted: the archive drops those it holds. After the walk, calls the provider may still change (unfinished, not yet
//! evaluated) and younger than the recheck horizon are fetched again by id, so late
//! evaluations arrive even outside the walk's window. With `prune`, a complete walk that
//! covers everything removes the archived calls the provider no longer has. Nothing here
//! depends on the order a provider sorts in.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use indicatif::ProgressBar;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::providers::{
    CallRecord, Page, PageCursor, Pagination, Provider, ProviderError, ProviderKind, Scope,
    WalkOptions, WalkPlan,
};
use crate::store::{
    id_hash, ArchiveWriter, CommittedPage, PageCounts, PageWrite, Queued, RunOutcome, SourceSpec,
    StoreError, StreamId,
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

/// One provider account to sync: the adapter (which knows the address), the account's name
/// and key variable, and its streams.
pub struct Source {
    pub provider: Arc<dyn Provider>,
    pub account: String,
    /// The environment variable the key came from, remembered for deletes.
    pub key_env: String,
    pub scopes: Vec<Scope>,
}

impl Source {
    fn spec(&self) -> SourceSpec {
        SourceSpec {
            provider: self.provider.kind(),
            account: self.account.clone(),
            base_url: self.provider.base_url().to_string(),
            key_env: self.key_env.clone(),
        }
    }
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
    pub account: String,
    /// Which source of the run (its index in the run's sources).
    source: usize,
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

    /// Streams that did not complete: failed, stopped or not settled.
    pub fn incomplete(&self) -> impl Iterator<Item = &StreamReport> {
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
        if c.deleted_upstream > 0 {
            line.push_str(&format!(
                "; {} calls deleted upstream removed",
                c.deleted_upstream
            ));
        }
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
                "; warning: {} deleted call(s) are still served by the provider and were not re-archived",
                c.refused_resurrections
            ));
        }
        if c.refused_unredactions > 0 {
            line.push_str(&format!(
                "; warning: {} redacted call(s) were served unredacted; the redacted versions are kept",
                c.refused_unredactions
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
        let spec = source.spec();
        let scopes: Vec<String> = source.scopes.iter().map(Scope::key).collect();
        let ids = writer
            .run(move |a| {
                let id = a.source_id(&spec)?;
                Ok((id, a.begin_run(kind, id, &scopes)?))
            })
            .await?;
        runs.push(ids);
    }
    let mut streams = JoinSet::new();
    for (index, (source, (source_id, run_id))) in sources.iter().zip(&runs).enumerate() {
        for scope in &source.scopes {
            let ctx = ctx.clone();
            let target = StreamTarget {
                provider: source.provider.clone(),
                account: source.account.clone(),
                source: index,
                stream: StreamId {
                    provider: source.provider.kind(),
                    source: *source_id,
                    scope: scope.key(),
                },
                scope: scope.clone(),
                run_id: *run_id,
            };
            streams.spawn(async move { sync_stream(&ctx, target).await });
        }
    }
    let mut reports = Vec::new();
    while let Some(joined) = streams.join_next().await {
        reports.push(joined.map_err(|e| SyncError::Task(e.to_string()))?);
    }
    reports.sort_by(|a, b| {
        (a.provider.as_str(), &a.account, a.source, &a.scope).cmp(&(
            b.provider.as_str(),
            &b.account,
            b.source,
            &b.scope,
        ))
    });
    for (index, (_, run_id)) in runs.into_iter().enumerate() {
        let mine: Vec<&StreamReport> = reports.iter().filter(|r| r.source == index).collect();
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

/// One stream to sync, with everything its walks need.
struct StreamTarget {
    provider: Arc<dyn Provider>,
    account: String,
    /// The source's index in the run.
    source: usize,
    stream: StreamId,
    scope: Scope,
    run_id: i64,
}

async fn sync_stream(ctx: &RunContext, target: StreamTarget) -> StreamReport {
    let mut report = StreamReport {
        provider: target.provider.kind(),
        account: target.account.clone(),
        source: target.source,
        scope: target.stream.scope.clone(),
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
        provider: &target.provider,
        scope: &target.scope,
        stream: &target.stream,
        run_id: target.run_id,
    };
    let result = match stream.walk_until_settled(&mut report).await {
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
    stream: &'a StreamId,
    run_id: i64,
}

/// What one walk found.
struct WalkResult {
    /// Why it drifted, if it did.
    drift: Option<String>,
    /// Hashes of the ids of every call it was served.
    seen: HashSet<u64>,
}

/// What one walk has seen so far, and the drift rules of its pagination.
struct WalkTally<'c> {
    numbered: bool,
    /// Pages the interrupted walk committed, by cursor, each taken at most once.
    skippable: HashMap<String, &'c CommittedPage>,
    /// The provider's count of the walk, as first seen.
    walk_size: Option<u64>,
    /// Calls on the committed pages that were not fetched again.
    skipped_calls: u64,
    drift: Option<String>,
    seen: HashSet<u64>,
}

impl WalkTally<'_> {
    /// With numbered pages, a count that differs from the first one seen is drift.
    fn note_size(&mut self, size: Option<u64>) {
        if !self.numbered {
            return;
        }
        match (self.walk_size, size) {
            (None, Some(s)) => self.walk_size = Some(s),
            (Some(before), Some(s)) if before != s => {
                self.drift.get_or_insert(format!(
                    "the provider's count changed from {before} to {s} mid-walk"
                ));
            }
            _ => {}
        }
    }

    /// With numbered pages, a call served twice means pages shifted; otherwise it is a call
    /// on a shared bound or a re-sorted key, written once.
    fn note_calls(&mut self, calls: &[CallRecord]) {
        for call in calls {
            if !self.seen.insert(id_hash(&call.id)) && self.numbered {
                self.drift
                    .get_or_insert(format!("call {} was served on two pages", call.id));
            }
        }
    }

    /// Queues `cursors` for fetching. A cursor whose page the interrupted walk committed is
    /// taken as done, and the cursors that page revealed are admitted in its place.
    fn admit(
        &mut self,
        cursors: Vec<PageCursor>,
        queue: &mut VecDeque<PageCursor>,
        report: &mut StreamReport,
        progress: &ProgressBar,
    ) -> Result<(), SyncError> {
        let mut pending: VecDeque<PageCursor> = cursors.into();
        while let Some(cursor) = pending.pop_front() {
            let Some(done) = self.skippable.remove(&cursor.0.to_string()) else {
                progress.inc_length(1);
                queue.push_back(cursor);
                continue;
            };
            // Still valid only if the provider counted the same walk then.
            self.note_size(done.walk_size);
            self.skipped_calls += done.calls;
            report.resumed_pages += 1;
            let next: Vec<PageCursor> =
                serde_json::from_str(done.next_json.as_deref().unwrap_or("[]")).map_err(|e| {
                    SyncError::Store(StoreError::Commit(format!(
                        "a committed page's cursors are unreadable: {e}"
                    )))
                })?;
            pending.extend(next);
        }
        Ok(())
    }

    /// The walk's result: with numbered pages, calls that do not add up to the count drift.
    fn finish(mut self) -> WalkResult {
        if self.drift.is_none() && self.numbered {
            if let Some(size) = self.walk_size {
                let served = self.seen.len() as u64 + self.skipped_calls;
                if served != size {
                    self.drift = Some(format!(
                        "the provider counted {size} calls but served {served}"
                    ));
                }
            }
        }
        WalkResult {
            drift: self.drift,
            seen: self.seen,
        }
    }
}

impl StreamWalk<'_> {
    /// Walks until a walk does not drift (or `MAX_WALKS` did). Returns the ids seen by the
    /// last walk.
    async fn walk_until_settled(
        &self,
        report: &mut StreamReport,
    ) -> Result<HashSet<u64>, SyncError> {
        let ctx = self.ctx;
        let kind = self.provider.kind();
        let key = self.stream.scope.clone();
        let (state, interrupted) = {
            let stream = self.stream.clone();
            ctx.writer
                .run(move |a| Ok((a.stream_state(&stream)?, a.interrupted_walk(&stream)?)))
                .await?
        };
        // Whole milliseconds, as the walk's start is stored: planned again at that time, a
        // walk is the same walk.
        let now = Utc::now().trunc_subsecs(3);
        let plan_at = |at| {
            self.provider
                .plan_walk(self.scope, &state, at, &ctx.settings.options)
        };
        // Resume only the very walk that was interrupted: planned at the time it started (a
        // plan may depend on the time, e.g. windows that end now), it must be the plan that
        // was stored. A prune needs a walk seen whole.
        let resumable = interrupted
            .filter(|w| !w.pages.is_empty() && !ctx.settings.prune)
            .map(|w| (plan_at(w.started_at), w))
            .filter(|(plan, w)| w.checkpoint == plan.checkpoint);
        let (plan, started_at, mut committed): (WalkPlan, _, _) = match resumable {
            Some((plan, w)) => {
                tracing::info!(
                    "{kind} {key}: resuming the walk started {} ({} pages committed)",
                    w.started_at,
                    w.pages.len()
                );
                (plan, w.started_at, w.pages)
            }
            None => {
                let plan = plan_at(now);
                tracing::info!("{kind} {key}: walking with {}", plan.description);
                self.start_walk(&plan, now).await?;
                (plan, now, Vec::new())
            }
        };
        report.plan = plan.description.clone();
        let mut last_drift = String::new();
        for _ in 0..MAX_WALKS {
            report.walks += 1;
            let walk = self
                .walk_once(plan.cursors.clone(), &committed, report)
                .await?;
            match walk.drift {
                None => {
                    let stream = self.stream.clone();
                    ctx.writer
                        .run(move |a| a.complete_walk(&stream, started_at))
                        .await?;
                    report.outcome = StreamOutcome::Complete;
                    if ctx.settings.prune && plan.covers_everything {
                        report.pruned = self.prune(&walk.seen).await?;
                    } else if ctx.settings.prune {
                        // A call the walk did not see may simply be outside it (another label).
                        tracing::warn!(
                            "{kind} {key}: not pruned: this walk ({}) does not cover every call the provider holds",
                            plan.description
                        );
                    }
                    return Ok(walk.seen);
                }
                Some(drift) => {
                    tracing::warn!("{kind} {key}: {drift}; walking the stream again");
                    last_drift = drift;
                    if !committed.is_empty() {
                        committed.clear();
                        self.start_walk(&plan, started_at).await?;
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
        plan: &WalkPlan,
        started_at: chrono::DateTime<Utc>,
    ) -> Result<(), SyncError> {
        let (stream, checkpoint) = (self.stream.clone(), plan.checkpoint.clone());
        self.ctx
            .writer
            .run(move |a| a.start_walk(&stream, &checkpoint, started_at))
            .await?;
        Ok(())
    }

    /// Walks the stream once. A cursor whose page the interrupted walk committed is not
    /// fetched: the cursors that page revealed are followed instead.
    async fn walk_once(
        &self,
        cursors: Vec<PageCursor>,
        committed: &[CommittedPage],
        report: &mut StreamReport,
    ) -> Result<WalkResult, SyncError> {
        let ctx = self.ctx;
        let mut tally = WalkTally {
            numbered: self.provider.pagination() == Pagination::NumberedPages,
            // Pages from a build that did not record their cursors are fetched again.
            skippable: committed
                .iter()
                .filter(|p| p.next_json.is_some())
                .map(|p| (p.cursor_json.clone(), p))
                .collect(),
            walk_size: None,
            skipped_calls: 0,
            drift: None,
            seen: HashSet::new(),
        };
        let mut queue: VecDeque<PageCursor> = VecDeque::new();
        let mut inflight: JoinSet<(PageCursor, Result<Page, ProviderError>)> = JoinSet::new();
        let mut writes: VecDeque<Queued<(PageCounts, PageWrite)>> = VecDeque::new();
        tally.admit(cursors, &mut queue, report, &ctx.progress)?;
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
            tally.note_size(page.walk_size);
            tally.note_calls(&page.calls);
            let place = CommittedPage {
                cursor_json: cursor.0.to_string(),
                calls: page.calls.len() as u64,
                walk_size: page.walk_size,
                next_json: Some(
                    serde_json::Value::from(
                        page.next.iter().map(|c| c.0.clone()).collect::<Vec<_>>(),
                    )
                    .to_string(),
                ),
            };
            tally.admit(page.next, &mut queue, report, &ctx.progress)?;
            let write = PageWrite {
                calls: page.calls,
                deleted: page.deleted,
                place: Some(place),
                high_water: page.high_water,
            };
            let (stream, run_id) = (self.stream.clone(), self.run_id);
            // The page is queued, not awaited: the next pages are fetched and parsed while the
            // writer commits this one (and groups it with others into one transaction). The
            // page comes back with its answer, so its calls are freed here rather than on the
            // writer's thread, the sync's critical path.
            writes.push_back(
                ctx.writer
                    .submit(move |a| a.write_page(&stream, run_id, &write).map(|c| (c, write)))
                    .await?,
            );
            while writes.len() > PAGES_AWAITING_COMMIT {
                if let Some(write) = writes.pop_front() {
                    report.counts += write.answer().await?.0;
                    report.pages += 1;
                    ctx.progress.inc(1);
                }
            }
        }
        for write in writes {
            report.counts += write.answer().await?.0;
            report.pages += 1;
            ctx.progress.inc(1);
        }
        Ok(tally.finish())
    }

    /// Fetches again, by id, the archived calls the provider may still change, other than
    /// those the walk just fetched (unless the provider's list may lag behind its reads by id).
    async fn recheck_unsettled(
        &self,
        seen: &HashSet<u64>,
        report: &mut StreamReport,
    ) -> Result<(), SyncError> {
        let ctx = self.ctx;
        let kind = self.provider.kind();
        let (stream, agent) = (self.stream.clone(), self.scope.agent_id.clone());
        let horizon = Utc::now() - ctx.settings.recheck_within;
        let lagging = self.provider.list_may_lag();
        let ids: Vec<String> = ctx
            .writer
            .run(move |a| a.unsettled_calls(&stream, agent.as_deref(), horizon))
            .await?
            .into_iter()
            .filter(|id| lagging || !seen.contains(&id_hash(id)))
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
                let write = PageWrite::of_calls(std::mem::take(&mut batch));
                let (stream, run_id) = (self.stream.clone(), self.run_id);
                report.counts += ctx
                    .writer
                    .run(move |a| a.write_page(&stream, run_id, &write))
                    .await?;
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Removes archived calls a complete walk of everything did not find.
    async fn prune(&self, seen: &HashSet<u64>) -> Result<u64, SyncError> {
        let stream = self.stream.clone();
        if seen.is_empty() {
            tracing::warn!(
                "{} {}: the provider served no calls at all; refusing to prune the whole stream",
                stream.provider,
                stream.scope
            );
            return Ok(0);
        }
        let (agent, present) = (self.scope.agent_id.clone(), seen.clone());
        Ok(self
            .ctx
            .writer
            .run(move |a| a.prune_stream(&stream, agent.as_deref(), &present))
            .await?)
    }
}

#[cfg(test)]
mod tests;
