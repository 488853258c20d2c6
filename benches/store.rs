//! The store-only limit: how fast callvault's store writes calls that are already parsed,
//! with no HTTP and no JSON in the timed part. The same simulator data the sync bench
//! serves is rendered and parsed up front, chunk by chunk, then handed page by page (100
//! calls) to the archive writer thread exactly as a sync hands them: several pages queued at
//! once, so the writer groups them into shared commits as it does under a busy sync.
//!
//! usage: cargo bench --bench store -- [CALLS] [RUNS]   (default 200000 calls, 3 runs)

use std::time::{Duration, Instant};

use callvault::providers::bluejay::{parse_call_log, CALLS_PER_PAGE};
use callvault::providers::{CallRecord, ProviderKind};
use callvault::sim::{bluejay, Dataset, IdStyle};
use callvault::store::{Archive, ArchiveWriter, CommittedPage, PageWrite, SourceSpec, StreamId};
use futures::{StreamExt, TryStreamExt};

const CHUNK: usize = 20_000;
/// Pages handed to the writer before waiting for the first answer, as a sync's fetch tasks do.
const IN_FLIGHT: usize = 16;

fn one_run(calls: u64) -> Result<Duration, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut archive = Archive::open(&dir.path().join("store-bench.db"))?;
    let source = archive.source_id(&SourceSpec {
        provider: ProviderKind::Bluejay,
        account: "bench".into(),
        base_url: "http://127.0.0.1:9".into(),
        key_env: "BLUEJAY_API_KEY".into(),
    })?;
    let run = archive.begin_run(ProviderKind::Bluejay, source, &["bench".into()])?;
    let stream = StreamId {
        provider: ProviderKind::Bluejay,
        source,
        scope: "bench".into(),
    };
    let writer = ArchiveWriter::spawn(archive);
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let mut data = Dataset::new(7, calls, 3, chrono::Utc::now(), IdStyle::Uuid);
    let renderer = data.renderer();
    let slots = data.all_live();
    let mut timed = Duration::ZERO;
    for (c, chunk) in slots.chunks(CHUNK).enumerate() {
        let records: Vec<CallRecord> = chunk
            .iter()
            .map(|s| {
                parse_call_log(&serde_json::to_string(&bluejay::render(&renderer, *s))?)
                    .map_err(Into::into)
            })
            .collect::<Result<_, Box<dyn std::error::Error>>>()?;
        let mut pages: Vec<Vec<CallRecord>> = Vec::new();
        let mut rest = records.into_iter().peekable();
        while rest.peek().is_some() {
            pages.push(rest.by_ref().take(CALLS_PER_PAGE as usize).collect());
        }
        let started = Instant::now();
        runtime.block_on(async {
            let writes = pages.into_iter().enumerate().map(|(p, page)| {
                let write = PageWrite {
                    place: Some(CommittedPage {
                        cursor_json: format!("{{\"chunk\":{c},\"page\":{p}}}"),
                        calls: page.len() as u64,
                        walk_size: Some(calls),
                        next_json: Some("[]".into()),
                    }),
                    ..PageWrite::of_calls(page)
                };
                let stream = stream.clone();
                writer.run(move |a| a.write_page(&stream, run, &write))
            });
            futures::stream::iter(writes)
                .buffer_unordered(IN_FLIGHT)
                .try_for_each(|_| async { Ok(()) })
                .await
        })?;
        timed += started.elapsed();
    }
    writer.close();
    Ok(timed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let calls: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let mut rates = Vec::new();
    for _ in 0..runs {
        let took = one_run(calls)?;
        rates.push(calls as f64 / took.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "store_only calls={calls} runs={runs} median_calls_per_s={:.0} min={:.0} max={:.0}",
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1]
    );
    Ok(())
}
