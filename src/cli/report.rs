//! `callvault report --out FILE.html`: the self-contained HTML report of the calls chosen by
//! dates, providers and agents, written whole or not at all.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;

use super::stats::parse_date;
use super::{Cli, Outcome, UsageError, DEFAULT_DB};
use crate::providers::ProviderKind;
use crate::query::output::atomic_write;
use crate::query::report;
use crate::query::stats::CallFilter;
use crate::store::Archive;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The HTML file to write
    #[arg(long, value_name = "FILE.html")]
    pub out: PathBuf,
    /// Keep calls created on or after this UTC date (YYYY-MM-DD); deletions on or after it
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<NaiveDate>,
    /// Keep calls created on or before this UTC date (YYYY-MM-DD); deletions on or before it
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub until: Option<NaiveDate>,
    /// Keep this provider's calls (repeat for several) [default: every provider]
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Vec<ProviderKind>,
    /// Keep this agent's calls (repeat for several) [default: every agent]
    #[arg(long, value_name = "ID")]
    pub agent: Vec<String>,
}

pub fn run(cli: &Cli, args: &ReportArgs) -> anyhow::Result<Outcome> {
    if let (Some(since), Some(until)) = (args.since, args.until) {
        if since > until {
            return Err(UsageError(format!(
                "--since {since} is after --until {until}: no call could be in the report"
            ))
            .into());
        }
    }
    let filter = CallFilter {
        since: args.since,
        until: args.until,
        providers: args
            .provider
            .iter()
            .map(|p| p.as_str().to_string())
            .collect(),
        agents: args.agent.clone(),
    };
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
