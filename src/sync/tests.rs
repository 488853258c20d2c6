//! The engine's own rules, against a small in-memory `Provider` and a real archive file: drift
//! repeated until `MAX_WALKS` leaves a stream unsettled, a cursor chain resumed after a crash,
//! tombstones applied once, and unfinished calls rechecked by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use rusqlite::Connection;

use super::*;
use crate::providers::{DeleteMode, DeleteOutcome, Pagination, StreamState, WalkOptions, WalkPlan};
use crate::store::Archive;
use crate::time::format_timestamp;

/// A page the fake serves for a cursor.
#[derive(Clone, Default)]
struct FakePage {
    calls: Vec<String>,
    next: Vec<String>,
    deleted: Vec<String>,
}

/// A provider held in memory: pages by cursor name, calls by id, and a record of requests.
struct FakeProvider {
    pagination: Pagination,
    pages: HashMap<String, FakePage>,
    /// A cursor that fails (as a provider error that is not retried), while set.
    failing: Mutex<Option<String>>,
    /// With numbered pages: each fetch reports a bigger count, as if calls kept arriving.
    growing_count: bool,
    fetched: Mutex<Vec<String>>,
    /// What a read by id returns: the call settled.
    by_id_reads: AtomicU64,
}

fn call(id: &str, settled: bool, created: DateTime<Utc>) -> CallRecord {
    CallRecord {
        id: id.into(),
        agent_id: Some("a".into()),
        created_at: Some(format_timestamp(created)),
        start_time: Some(format_timestamp(created)),
        raw_json: format!(r#"{{"id":"{id}","settled":{settled}}}"#),
        settled,
        ..CallRecord::default()
    }
}

fn recent() -> DateTime<Utc> {
    Utc::now() - chrono::Duration::hours(1)
}

impl FakeProvider {
    fn new(pagination: Pagination, pages: &[(&str, FakePage)]) -> FakeProvider {
        FakeProvider {
            pagination,
            pages: pages
                .iter()
                .map(|(k, p)| (k.to_string(), p.clone()))
                .collect(),
            failing: Mutex::new(None),
            growing_count: false,
            fetched: Mutex::new(Vec::new()),
            by_id_reads: AtomicU64::new(0),
        }
    }

    fn fetched(&self) -> Vec<String> {
        self.fetched.lock().unwrap().clone()
    }
}

#[async_trait]
impl Provider for FakeProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Cartesia
    }

    fn base_url(&self) -> &str {
        "http://fake.invalid"
    }

    fn pagination(&self) -> Pagination {
        self.pagination
    }

    async fn discover_scopes(&self) -> Result<Vec<Scope>, ProviderError> {
        Ok(vec![Scope::account()])
    }

    fn plan_walk(
        &self,
        _scope: &Scope,
        _state: &StreamState,
        _now: DateTime<Utc>,
        _options: &WalkOptions,
    ) -> WalkPlan {
        WalkPlan {
            cursors: vec![PageCursor(serde_json::json!("p0"))],
            checkpoint: serde_json::json!({"fake": true}),
            description: "fake".into(),
            covers_everything: true,
        }
    }

    async fn fetch_page(&self, _scope: &Scope, cursor: &PageCursor) -> Result<Page, ProviderError> {
        let name = cursor.0.as_str().unwrap_or_default().to_string();
        self.fetched.lock().unwrap().push(name.clone());
        if self.failing.lock().unwrap().as_deref() == Some(name.as_str()) {
            return Err(ProviderError::Status {
                provider: ProviderKind::Cartesia,
                status: 400,
                endpoint: name,
                message: "refused".into(),
                retry_after: None,
            });
        }
        let page = self.pages.get(&name).cloned().unwrap_or_default();
        let fetches = self.fetched.lock().unwrap().len() as u64;
        Ok(Page {
            calls: page
                .calls
                .iter()
                .map(|id| call(id, true, recent()))
                .collect(),
            next: page
                .next
                .iter()
                .map(|n| PageCursor(serde_json::json!(n)))
                .collect(),
            walk_size: self.growing_count.then_some(100 + fetches),
            deleted: page.deleted,
            high_water: Some(format_timestamp(recent())),
        })
    }

    async fn fetch_call(&self, call_id: &str) -> Result<Option<CallRecord>, ProviderError> {
        self.by_id_reads.fetch_add(1, Ordering::SeqCst);
        Ok(Some(call(call_id, true, recent())))
    }

    fn delete_modes(&self) -> &'static [DeleteMode] {
        &[]
    }

    async fn delete_call(
        &self,
        _call_id: &str,
        _mode: DeleteMode,
    ) -> Result<DeleteOutcome, ProviderError> {
        Ok(DeleteOutcome::Gone)
    }
}

/// Runs one sync of `provider`'s account-wide stream into the archive at `path`.
fn sync(path: &std::path::Path, provider: Arc<FakeProvider>) -> SyncReport {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let writer = Arc::new(ArchiveWriter::spawn(Archive::open(path).unwrap()));
        let source = Source {
            provider,
            account: "default".into(),
            key_env: "CARTESIA_API_KEY".into(),
            scopes: vec![Scope::account()],
        };
        let report = sync_sources(
            writer.clone(),
            vec![source],
            SyncSettings::default(),
            ProgressBar::hidden(),
        )
        .await
        .unwrap();
        if let Ok(writer) = Arc::try_unwrap(writer) {
            writer.close();
        }
        report
    })
}

fn count(path: &std::path::Path, sql: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn page(calls: &[&str], next: &[&str]) -> FakePage {
    FakePage {
        calls: calls.iter().map(|c| c.to_string()).collect(),
        next: next.iter().map(|n| n.to_string()).collect(),
        deleted: Vec::new(),
    }
}

#[test]
fn a_count_that_keeps_changing_leaves_the_stream_unsettled_after_max_walks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut fake = FakeProvider::new(
        Pagination::NumberedPages,
        &[("p0", page(&["c1"], &["p1"])), ("p1", page(&["c2"], &[]))],
    );
    fake.growing_count = true;
    let report = sync(&path, Arc::new(fake));
    let stream = &report.streams[0];
    assert_eq!(stream.walks, MAX_WALKS);
    assert!(
        matches!(&stream.outcome, StreamOutcome::Unsettled(why) if why.contains("count changed")),
        "{:?}",
        stream.outcome
    );
    assert_eq!(report.incomplete().count(), 1);
    // What was fetched is archived; the walk is not called complete.
    assert_eq!(count(&path, "SELECT count(*) FROM calls"), 2);
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM sync_state WHERE last_complete_started_at IS NOT NULL"
        ),
        0
    );

    // The same count changes mean nothing to keyset cursors, nor does a call on two pages.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut fake = FakeProvider::new(
        Pagination::KeysetCursors,
        &[
            ("p0", page(&["c1", "c2"], &["p1"])),
            ("p1", page(&["c2", "c3"], &[])),
        ],
    );
    fake.growing_count = true;
    let report = sync(&path, Arc::new(fake));
    assert_eq!(report.streams[0].outcome, StreamOutcome::Complete);
    assert_eq!(report.streams[0].walks, 1);
}

#[test]
fn a_cursor_chain_killed_midway_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let chain: Vec<(String, FakePage)> = (0..10)
        .map(|i| {
            let next = if i < 9 {
                vec![format!("p{}", i + 1)]
            } else {
                vec![]
            };
            (
                format!("p{i}"),
                FakePage {
                    calls: (0..3).map(|k| format!("c{i}-{k}")).collect(),
                    next,
                    deleted: Vec::new(),
                },
            )
        })
        .collect();
    let pages: Vec<(&str, FakePage)> = chain.iter().map(|(k, p)| (k.as_str(), p.clone())).collect();
    let first = Arc::new(FakeProvider::new(Pagination::KeysetCursors, &pages));
    *first.failing.lock().unwrap() = Some("p5".into());
    let report = sync(&path, first.clone());
    assert!(matches!(
        report.streams[0].outcome,
        StreamOutcome::Failed(_)
    ));
    assert_eq!(count(&path, "SELECT count(*) FROM sync_walk_pages"), 5);
    assert_eq!(count(&path, "SELECT count(*) FROM calls"), 15);

    let second = Arc::new(FakeProvider::new(Pagination::KeysetCursors, &pages));
    let report = sync(&path, second.clone());
    let stream = &report.streams[0];
    assert_eq!(stream.outcome, StreamOutcome::Complete);
    assert_eq!(stream.resumed_pages, 5);
    // The committed pages were not fetched again; the chain went on from their cursors.
    assert_eq!(second.fetched(), ["p5", "p6", "p7", "p8", "p9"]);
    assert_eq!(count(&path, "SELECT count(*) FROM calls"), 30);
    assert_eq!(count(&path, "SELECT count(*) FROM sync_walk_pages"), 0);
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM sync_state WHERE high_water IS NOT NULL"
        ),
        1
    );
}

#[test]
fn tombstones_remove_archived_calls_once_and_keep_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let first = FakeProvider::new(
        Pagination::KeysetCursors,
        &[("p0", page(&["c1", "c2", "c3"], &[]))],
    );
    sync(&path, Arc::new(first));
    let tombstones = FakePage {
        calls: vec!["c1".into(), "c2".into()],
        next: Vec::new(),
        deleted: vec!["c3".into(), "never-archived".into()],
    };
    let report = sync(
        &path,
        Arc::new(FakeProvider::new(
            Pagination::KeysetCursors,
            &[("p0", tombstones.clone())],
        )),
    );
    let (counts, _) = report.totals();
    assert_eq!(counts.deleted_upstream, 1);
    assert!(report
        .summary_line()
        .contains("1 calls deleted upstream removed"));
    let audit = "SELECT count(*) FROM deleted_calls WHERE mode = 'upstream' AND call_id = 'c3'";
    assert_eq!(count(&path, audit), 1);
    assert_eq!(
        count(&path, "SELECT count(*) FROM calls WHERE id = 'c3'"),
        0
    );
    assert_eq!(
        count(&path, "SELECT count(*) FROM deleted_calls"),
        1,
        "the unknown id is ignored"
    );

    // Again, and with the deleted call served once more: nothing changes.
    let mut again = tombstones;
    again.calls.push("c3".into());
    let report = sync(
        &path,
        Arc::new(FakeProvider::new(
            Pagination::KeysetCursors,
            &[("p0", again)],
        )),
    );
    let (counts, _) = report.totals();
    assert_eq!(
        (counts.deleted_upstream, counts.refused_resurrections),
        (0, 1)
    );
    assert_eq!(count(&path, audit), 1);
    assert_eq!(
        count(&path, "SELECT count(*) FROM calls WHERE id = 'c3'"),
        0
    );
}

#[test]
fn unfinished_calls_are_read_by_id_in_batches_until_settled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    // 250 unfinished calls (more than two batches) and one too old to recheck.
    {
        let mut archive = Archive::open(&path).unwrap();
        let (stream, run) = crate::store::test_stream(&mut archive, ProviderKind::Cartesia, "*");
        let mut calls: Vec<CallRecord> = (0..250)
            .map(|i| call(&format!("u{i}"), false, recent()))
            .collect();
        calls.push(call("old", false, Utc::now() - chrono::Duration::days(30)));
        archive
            .write_page(&stream, run, &crate::store::PageWrite::of_calls(calls))
            .unwrap();
        // The fake's source is another address: make these calls its own.
        archive
            .connection()
            .execute_batch(
                "UPDATE sources SET base_url = 'http://fake.invalid', key_env = 'CARTESIA_API_KEY';",
            )
            .unwrap();
    }
    let fake = Arc::new(FakeProvider::new(
        Pagination::KeysetCursors,
        &[("p0", page(&["u0"], &[]))],
    ));
    let report = sync(&path, fake.clone());
    // u0 came with the walk; the other 249 young ones were read by id, the old one was not.
    assert_eq!(report.streams[0].rechecked, 249);
    assert_eq!(fake.by_id_reads.load(Ordering::SeqCst), 249);
    assert_eq!(
        count(&path, "SELECT count(*) FROM calls WHERE settled = 0"),
        1,
        "only the call past the recheck horizon stays unsettled"
    );
    assert_eq!(report.totals().0.updated, 250);
}
