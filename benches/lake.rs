//! The incremental lake (`export --incremental`): how long the compiled binary takes to build a
//! lake of every table of call content, to run again with nothing new, and to run after a
//! day's new calls; beside it, the plain partitioned export of the same tables.
//!
//! The archive is written through callvault's store from the simulator's data (as the store
//! bench does, no HTTP), so a large one is built in minutes; new calls are the simulator's
//! `add_calls`, created now, written the same way.
//!
//! usage: cargo bench --bench lake -- [CALLS] [NEW] [RUNS]   (default 100000 calls, 10000
//! new, 3 runs)

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use callvault::sim::data::CallSlot;
use callvault::sim::{Dataset, IdStyle};
use callvault::store::{Archive, ArchiveWriter, PageWrite, StreamId};

const CHUNK: usize = 20_000;
const AGENTS: u32 = 3;

use common::Error;

/// Writes `slots` page by page through the writer, as a sync would; returns the time taken.
fn write_calls(
    writer: &ArchiveWriter,
    stream: &StreamId,
    run: i64,
    data: &Dataset,
    slots: &[CallSlot],
) -> Result<Duration, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let renderer = data.renderer();
    let started = Instant::now();
    for chunk in slots.chunks(CHUNK) {
        let pages = common::parsed_pages(&renderer, chunk)?;
        common::write_pages(
            &runtime,
            writer,
            stream,
            run,
            pages.into_iter().map(PageWrite::of_calls),
        )?;
    }
    Ok(started.elapsed())
}

/// Runs `callvault --db DB export ARGS`; returns its wall time and its summary line.
fn export(db: &Path, args: &[&str]) -> Result<(Duration, String), Error> {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--db")
        .arg(db)
        .arg("export")
        .args(args)
        .output()?;
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!("export failed: {stderr}").into());
    }
    Ok((took, stderr.lines().last().unwrap_or_default().to_string()))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let calls: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let new: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);

    let dir = tempfile::tempdir()?;
    let db = dir.path().join("lake-bench.db");
    let mut archive = Archive::open(&db)?;
    let (stream, run) = common::bench_stream(&mut archive)?;
    let writer = ArchiveWriter::spawn(archive);
    let mut data = Dataset::new(7, calls, AGENTS, chrono::Utc::now(), IdStyle::Uuid);
    let slots = data.all_live();
    let took = write_calls(&writer, &stream, run, &data, &slots)?;
    println!(
        "archive calls={calls} written_in_s={:.1} calls_per_s={:.0}",
        took.as_secs_f64(),
        calls as f64 / took.as_secs_f64()
    );

    let lake = dir.path().join("lake");
    let lake_args = ["--out", lake.to_str().ok_or("path")?, "--incremental"];
    let (took, summary) = export(&db, &lake_args)?;
    println!("lake_first_build s={:.2} ({summary})", took.as_secs_f64());

    let mut unchanged = Vec::new();
    for _ in 0..runs {
        let (took, summary) = export(&db, &lake_args)?;
        unchanged.push(took.as_secs_f64());
        println!("lake_no_change s={:.3} ({summary})", took.as_secs_f64());
    }

    let mut after_new = Vec::new();
    for r in 0..runs {
        let ids = data.add_calls((r as u32 % AGENTS) as u16, new, chrono::Utc::now());
        let slots: Vec<CallSlot> = ids.iter().filter_map(|id| data.slot_of(id)).collect();
        let took = write_calls(&writer, &stream, run, &data, &slots)?;
        let (export_took, summary) = export(&db, &lake_args)?;
        after_new.push(export_took.as_secs_f64());
        println!(
            "lake_after_new new={new} written_in_s={:.1} export_s={:.2} ({summary})",
            took.as_secs_f64(),
            export_took.as_secs_f64()
        );
    }
    writer.close();

    let plain = dir.path().join("plain");
    let (took, _) = export(
        &db,
        &[
            "--out",
            plain.to_str().ok_or("path")?,
            "--partition-by",
            "provider,day",
        ],
    )?;
    println!("plain_partitioned_export s={:.2}", took.as_secs_f64());
    println!(
        "lake calls={calls} runs={runs} no_change_median_s={:.3} after_{new}_new_median_s={:.2} plain_full_s={:.2}",
        median(unchanged),
        median(after_new),
        took.as_secs_f64()
    );
    Ok(())
}
