//! `callvault report --out FILE.html`: the self-contained HTML report of the calls chosen by
//! dates, providers and agents, written whole or not at all.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::stats::CallFilterArgs;
use super::{Cli, Outcome, DEFAULT_DB};
use crate::query::output::atomic_write;
use crate::query::report;
use crate::query::stats::CallFilter;
use crate::store::Archive;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The HTML file to write
    #[arg(long, value_name = "FILE.html")]
    pub out: PathBuf,
    #[command(flatten)]
    pub calls: CallFilterArgs,
}

pub fn run(cli: &Cli, args: &ReportArgs) -> anyhow::Result<Outcome> {
    let filter = args.calls.filter()?;
    let path = cli.archive_path(DEFAULT_DB);
    let written = write_report(&path, &filter, &args.out)?;
    note!(
        "wrote {} ({} KB, {} charts)",
        args.out.display(),
        written.html.len().div_ceil(1024),
        written.charts
    );
    Ok(Outcome::Success)
}

/// Renders the report of the archive at `archive` and writes it to `out`.
pub(super) fn write_report(
    archive: &Path,
    filter: &CallFilter,
    out: &Path,
) -> anyhow::Result<report::Report> {
    let conn = Archive::open_read_only(archive)
        .with_context(|| format!("opening the archive {}", archive.display()))?;
    let rendered = report::render(&conn, filter).context("drawing the report")?;
    atomic_write(out, |file| Ok(file.write_all(rendered.html.as_bytes())?))?;
    Ok(rendered)
}
