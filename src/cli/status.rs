//! `callvault status`: what the archive holds per stream.

use anyhow::Context;

use super::{Cli, Outcome, DEFAULT_DB};
use crate::store::{stream_summaries, Archive};

pub fn run(cli: &Cli) -> anyhow::Result<Outcome> {
    let path = cli.archive_path(DEFAULT_DB);
    let conn = Archive::open_read_only(&path)
        .with_context(|| format!("opening the archive {}", path.display()))?;
    let streams = stream_summaries(&conn)?;
    out!("archive: {}", path.display())?;
    if streams.is_empty() {
        out!("no streams synced yet")?;
        return Ok(Outcome::Success);
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header([
            "provider",
            "account",
            "stream",
            "calls",
            "evaluations",
            "last sync",
            "complete since",
            "checkpoint",
            "base url",
        ]);
    for s in streams {
        table.add_row([
            s.provider,
            s.account,
            s.scope,
            s.calls.to_string(),
            s.evaluations.to_string(),
            s.last_synced_at.unwrap_or_else(|| "never".into()),
            s.last_complete_started_at.unwrap_or_else(|| "-".into()),
            s.checkpoint.unwrap_or_else(|| "-".into()),
            s.base_url,
        ]);
    }
    out!("{table}")?;
    Ok(Outcome::Success)
}
