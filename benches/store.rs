//! The store-only limit: how fast callvault's store writes calls that are already parsed,
//! with no HTTP and no JSON in the timed part. The same simulator data the sync bench
//! serves is rendered and parsed up front, chunk by chunk, then handed page by page (100
//! calls) to the archive writer thread exactly as a sync hands them: several pages queued at
//! once, so the writer groups them into shared commits as it does under a busy sync.
//!
//! Besides the whole run's rate it prints the rate of the first and of the last 100,000 calls
//! written (their ratio is how flat the cost stays as the archive grows) and the archive's
//! bytes per call at the end.
//!
//! usage: cargo bench --bench store -- [CALLS] [RUNS] [KEEP] [--ordered-ids]
//! (default 200000 calls, 3 runs). KEEP: a path where the last run's archive is left (for the
//! query and report benches). `--ordered-ids`: call ids that grow with creation time (the
//! simulator's Clarion-style integers) instead of UUIDs, so the two keys on ids (calls' and,
//! since a Bluejay evaluation's id is its call's plus an index, evaluations') take each new
//! entry at their end: what the store costs when its keys are not random.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use callvault::sim::{Dataset, IdStyle};
use callvault::store::{Archive, ArchiveWriter, CommittedPage, PageWrite};

const CHUNK: usize = 20_000;

/// Calls at each end of a run whose rate is reported on its own.
const END_CALLS: usize = 100_000;

/// One run: the time of each chunk written, and the archive's size at the end.
struct Run {
    chunks: Vec<(usize, Duration)>,
    bytes: u64,
}

impl Run {
    fn rate(chunks: &[(usize, Duration)]) -> f64 {
        let calls: usize = chunks.iter().map(|c| c.0).sum();
        let took: Duration = chunks.iter().map(|c| c.1).sum();
        calls as f64 / took.as_secs_f64()
    }

    fn ends(&self) -> (f64, f64) {
        let n = END_CALLS.div_ceil(CHUNK).min(self.chunks.len());
        (
            Self::rate(&self.chunks[..n]),
            Self::rate(&self.chunks[self.chunks.len() - n..]),
        )
    }
}

fn one_run(
    calls: u64,
    keep: Option<&Path>,
    ids: IdStyle,
) -> Result<Run, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = keep.map_or_else(|| dir.path().join("store-bench.db"), Path::to_path_buf);
    let mut archive = Archive::open(&path)?;
    let (stream, run) = common::bench_stream(&mut archive)?;
    let writer = ArchiveWriter::spawn(archive);
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let mut data = Dataset::new(7, calls, 3, chrono::Utc::now(), ids);
    let renderer = data.renderer();
    let slots = data.all_live();
    let mut timed = Vec::new();
    for (c, chunk) in slots.chunks(CHUNK).enumerate() {
        let written = chunk.len();
        let pages = common::parsed_pages(&renderer, chunk)?;
        let started = Instant::now();
        let writes = pages.into_iter().enumerate().map(|(p, page)| PageWrite {
            place: Some(CommittedPage {
                cursor_json: format!("{{\"chunk\":{c},\"page\":{p}}}"),
                calls: page.len() as u64,
                walk_size: Some(calls),
                next_json: Some("[]".into()),
            }),
            ..PageWrite::of_calls(page)
        });
        common::write_pages(&runtime, &writer, &stream, run, writes)?;
        timed.push((written, started.elapsed()));
        // A line per 100,000 calls, so a long run shows how the rate moves as it goes.
        let done: usize = timed.iter().map(|t| t.0).sum();
        if done % END_CALLS < CHUNK {
            let n = END_CALLS.div_ceil(CHUNK).min(timed.len());
            println!(
                "  {done} calls: the last {} at {:.0} calls/s",
                n * CHUNK,
                Run::rate(&timed[timed.len() - n..])
            );
        }
    }
    writer.close();
    let bytes = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|m| m.len())
        .sum();
    Ok(Run {
        chunks: timed,
        bytes,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let calls: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let ids = if std::env::args().any(|a| a == "--ordered-ids") {
        IdStyle::Integer
    } else {
        IdStyle::Uuid
    };
    let mut rates = Vec::new();
    let mut firsts = Vec::new();
    let mut lasts = Vec::new();
    let mut bytes = 0;
    let keep = args.get(2).map(Path::new);
    if let Some(keep) = keep {
        if keep.exists() {
            return Err(format!("{} exists; KEEP must be a new path", keep.display()).into());
        }
    }
    for r in 0..runs {
        let run = one_run(calls, keep.filter(|_| r + 1 == runs), ids)?;
        rates.push(Run::rate(&run.chunks));
        let (first, last) = run.ends();
        println!(
            "run: {:.0} calls/s, first {END_CALLS} {first:.0}, last {END_CALLS} {last:.0} ({:.0}%), {:.2} KB a call",
            Run::rate(&run.chunks),
            100.0 * last / first,
            run.bytes as f64 / calls as f64 / 1000.0
        );
        firsts.push(first);
        lasts.push(last);
        bytes = run.bytes;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (first, last) = (median(&mut firsts), median(&mut lasts));
    println!(
        "store_only calls={calls} runs={runs} ids={} median_calls_per_s={:.0} min={:.0} max={:.0} \
         first_{END_CALLS}={first:.0} last_{END_CALLS}={last:.0} last_over_first={:.2} \
         bytes_per_call={:.0}",
        if ids == IdStyle::Integer {
            "ordered"
        } else {
            "uuid"
        },
        median(&mut rates.clone()),
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(0.0, f64::max),
        last / first,
        bytes as f64 / calls as f64
    );
    Ok(())
}
