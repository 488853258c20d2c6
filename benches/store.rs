//! The store-only limit: how fast callvault's store writes calls that are already parsed,
//! with no HTTP and no JSON in the timed part. The same simulator data the sync bench
//! serves is rendered and parsed up front, chunk by chunk, then written page by page
//! (100 calls, one transaction each) exactly as a sync writes them.
//!
//! usage: cargo bench --bench store -- [CALLS] [RUNS]   (default 200000 calls, 3 runs)

use std::time::{Duration, Instant};

use callvault::providers::bluejay::{parse_call_log, PAGE_SIZE};
use callvault::providers::{CallRecord, ProviderKind};
use callvault::sim::Dataset;
use callvault::store::{Archive, CommittedPage};

const CHUNK: usize = 20_000;

fn one_run(calls: u64) -> Result<Duration, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut archive = Archive::open(&dir.path().join("store-bench.db"))?;
    let run = archive.begin_run(ProviderKind::Bluejay, &["bench".into()])?;
    let mut data = Dataset::new(7, calls, 3, chrono::Utc::now());
    let slots = data.all_live();
    let mut timed = Duration::ZERO;
    for (c, chunk) in slots.chunks(CHUNK).enumerate() {
        let records: Vec<CallRecord> = chunk
            .iter()
            .map(|s| parse_call_log(&serde_json::to_string(&data.render(*s))?).map_err(Into::into))
            .collect::<Result<_, Box<dyn std::error::Error>>>()?;
        let started = Instant::now();
        for (p, page) in records.chunks(PAGE_SIZE as usize).enumerate() {
            let committed = CommittedPage {
                cursor_json: format!("{{\"chunk\":{c},\"page\":{p}}}"),
                calls: page.len() as u64,
                walk_size: Some(calls),
            };
            archive.write_page(ProviderKind::Bluejay, "bench", Some(&committed), run, page)?;
        }
        timed += started.elapsed();
    }
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
