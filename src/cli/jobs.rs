//! `callvault jobs`: every delete job with its item counts, newest first (stdout).

use anyhow::Context;

use super::{Cli, Outcome, DEFAULT_DB};
use crate::store::journal::job_summaries;
use crate::store::Archive;

pub fn run(cli: &Cli) -> anyhow::Result<Outcome> {
    let path = cli.archive_path(DEFAULT_DB);
    let conn = Archive::open_read_only(&path)
        .with_context(|| format!("opening the archive {}", path.display()))?;
    let jobs = job_summaries(&conn)?;
    if jobs.is_empty() {
        out!("no delete jobs yet")?;
        return Ok(Outcome::Success);
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header([
            "job",
            "created",
            "mode",
            "state",
            "planned",
            "done",
            "gone",
            "skipped",
            "failed",
            "pending",
            "finished",
            "selection",
        ]);
    for j in jobs {
        let c = j.counts;
        table.add_row([
            j.id.to_string(),
            j.created_at,
            j.mode,
            j.state,
            c.total().to_string(),
            c.done.to_string(),
            c.gone.to_string(),
            c.skipped.to_string(),
            c.failed.to_string(),
            c.pending.to_string(),
            j.finished_at.unwrap_or_else(|| "-".into()),
            shorten(&j.selection),
        ]);
    }
    out!("{table}")?;
    Ok(Outcome::Success)
}

/// The selection on one line, cut to fit a table cell.
fn shorten(sql: &str) -> String {
    const WIDTH: usize = 48;
    let line = sql
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ");
    match line.char_indices().nth(WIDTH) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}
