//! Sync: walks each stream of each source and hands whole pages to the archive writer.
//!
//! A *stream* is one scope of one provider (an agent). A *walk* fetches every page the
//! provider's `WalkPlan` starts with and every page those pages reveal; pages are fetched
//! concurrently, bounded by one semaphore shared by every stream of the run. Each page is
//! written with its place in the walk in one transaction. A walk *drifts* when the provider's
//! count of the walk changes between pages, when a call shows up on two pages, or when the
//! calls seen do not add up to that count: calls arrived or vanished while we walked, and
//! page numbers shifted under us. A drifted walk is repeated (writes are idempotent, so that
//! costs only time); only a walk without drift counts as complete and moves the stream's
//! starting point forward. Nothing here depends on the order a provider sorts in.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use indicatif::ProgressBar;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::providers::{
    Page, PageCursor, Provider, ProviderError, ProviderKind, Scope, WalkOptions,
};
use crate::store::{ArchiveWriter, PageCounts, RunOutcome, StoreError};

/// How many times a drifting walk is repeated before the stream is reported unsettled.
pub const MAX_WALKS: u32 = 4;

/// Page requests in flight at once across a run, unless the user says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

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
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            options: WalkOptions::default(),
            concurrency: DEFAULT_CONCURRENCY,
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
}

/// How one stream ended.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamOutcome {
    /// A walk ended without drift.
    Complete,
    /// Every walk drifted; what was fetched is archived, but completeness is not proven.
    Unsettled(String),
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
    pub walks: u32,
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
        if c.refused_resurrections > 0 {
            line.push_str(&format!(
                "; {} deleted call(s) still served by the provider were not re-archived",
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
                StreamOutcome::Unsettled(why) | StreamOutcome::Failed(why) => {
                    Some(format!("{}: {why}", r.scope))
                }
            })
            .collect();
        let outcome = if bad.is_empty() {
            RunOutcome::Complete
        } else if bad.len() == mine.len() {
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
        walks: 0,
        outcome: StreamOutcome::Complete,
    };
    if let Err(e) = walk_until_settled(ctx, &provider, &base_url, &scope, run_id, &mut report).await
    {
        tracing::error!("{} {}: {e}", report.provider, report.scope);
        report.outcome = StreamOutcome::Failed(e.to_string());
    }
    report
}

async fn walk_until_settled(
    ctx: &RunContext,
    provider: &Arc<dyn Provider>,
    base_url: &str,
    scope: &Scope,
    run_id: i64,
    report: &mut StreamReport,
) -> Result<(), SyncError> {
    let kind = provider.kind();
    let key = scope.key();
    let state = {
        let key = key.clone();
        ctx.writer.run(move |a| a.stream_state(kind, &key)).await?
    };
    let started_at = Utc::now();
    let plan = provider.plan_walk(scope, &state, started_at, &ctx.settings.options);
    report.plan = plan.description.clone();
    tracing::info!("{kind} {key}: walking with {}", plan.description);
    {
        let (key, base_url, checkpoint) = (key.clone(), base_url.to_string(), plan.checkpoint);
        ctx.writer
            .run(move |a| a.start_walk(kind, &key, &base_url, &checkpoint))
            .await?;
    }
    let mut last_drift = String::new();
    for _ in 0..MAX_WALKS {
        report.walks += 1;
        match walk_once(ctx, provider, scope, run_id, plan.cursors.clone(), report).await? {
            None => {
                let key = key.clone();
                ctx.writer
                    .run(move |a| a.complete_walk(kind, &key, started_at))
                    .await?;
                report.outcome = StreamOutcome::Complete;
                return Ok(());
            }
            Some(drift) => {
                tracing::warn!("{kind} {key}: {drift}; walking the stream again");
                last_drift = drift;
            }
        }
    }
    report.outcome = StreamOutcome::Unsettled(format!(
        "the provider's data kept changing during {MAX_WALKS} walks ({last_drift}); what was fetched is archived, run the sync again"
    ));
    Ok(())
}

/// Walks a stream once. Returns why the walk drifted, or `None` for a clean walk.
async fn walk_once(
    ctx: &RunContext,
    provider: &Arc<dyn Provider>,
    scope: &Scope,
    run_id: i64,
    cursors: Vec<PageCursor>,
    report: &mut StreamReport,
) -> Result<Option<String>, SyncError> {
    let kind = provider.kind();
    let key = scope.key();
    let mut queue: VecDeque<PageCursor> = cursors.into();
    ctx.progress.inc_length(queue.len() as u64);
    let mut inflight: JoinSet<(PageCursor, Result<Page, ProviderError>)> = JoinSet::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut walk_size: Option<u64> = None;
    let mut drift: Option<String> = None;
    loop {
        while inflight.len() < ctx.settings.concurrency.max(1) {
            let Some(cursor) = queue.pop_front() else {
                break;
            };
            let (provider, scope, permits) = (provider.clone(), scope.clone(), ctx.permits.clone());
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
        if let Some(size) = page.walk_size {
            match walk_size {
                None => walk_size = Some(size),
                Some(before) if before != size => {
                    drift.get_or_insert(format!(
                        "the provider's count changed from {before} to {size} mid-walk"
                    ));
                }
                Some(_) => {}
            }
        }
        for call in &page.calls {
            if !seen.insert(xxhash_rust::xxh3::xxh3_64(call.id.as_bytes())) {
                drift.get_or_insert(format!("call {} was served on two pages", call.id));
            }
        }
        ctx.progress.inc_length(page.next.len() as u64);
        queue.extend(page.next);
        let cursor_json = cursor.0.to_string();
        let calls = page.calls;
        let key = key.clone();
        let counts = ctx
            .writer
            .run(move |a| a.write_page(kind, &key, &cursor_json, run_id, &calls))
            .await?;
        report.counts += counts;
        report.pages += 1;
        ctx.progress.inc(1);
    }
    if drift.is_none() {
        if let Some(size) = walk_size {
            if seen.len() as u64 != size {
                drift = Some(format!(
                    "the provider counted {size} calls but served {}",
                    seen.len()
                ));
            }
        }
    }
    Ok(drift)
}
