//! `callvault stats latency|hallucination|summary`: callvault's own exact figures, grouped
//! `--by agent`, `day` or `agent,day`, optionally `--since` a date, in any output format.

use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, ValueEnum};

use super::{emit, Cli, Outcome, DEFAULT_DB};
use crate::query::output::OutputFormat;
use crate::query::snapshot;
use crate::query::stats::{self, CallFilter, Grouping, StatsOptions};
use crate::store::Archive;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Figure {
    /// Exact p50/p90/p95/p99 of the agent latency (ms), with the sample count n
    Latency,
    /// Evaluations flagged / evaluations with a verdict, with n
    Hallucination,
    /// Calls, evaluated calls, goal success rate, mean sentiment, redundancy rate
    Summary,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Which figure
    #[arg(value_enum)]
    pub figure: Figure,
    /// Group by agent, day (UTC date of the call) or agent,day [default: one overall row]
    #[arg(long, value_name = "agent|day|agent,day", value_parser = stats::parse_grouping)]
    pub by: Option<Grouping>,
    /// Keep calls created on or after this UTC date (YYYY-MM-DD)
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<NaiveDate>,
    /// How to print the rows (parquet needs --out)
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Write to this file instead of stdout (written whole or not at all)
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

pub(super) fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("'{text}' is not a date like 2026-11-02"))
}

pub fn run(cli: &Cli, args: &StatsArgs) -> anyhow::Result<Outcome> {
    if args.format.is_binary() && args.out.is_none() {
        anyhow::bail!("--format parquet writes a binary file: give --out PATH");
    }
    let path = cli.archive_path(DEFAULT_DB);
    let conn = Archive::open_read_only(&path)
        .with_context(|| format!("opening the archive {}", path.display()))?;
    let options = StatsOptions {
        by: args.by.unwrap_or_default(),
        filter: CallFilter {
            since: args.since,
            ..CallFilter::default()
        },
    };
    let mut frame = match args.figure {
        Figure::Latency => stats::latency(&conn, &options),
        Figure::Hallucination => stats::hallucination(&conn, &options),
        Figure::Summary => stats::summary(&conn, &options),
    }
    .context("computing the figures")?;
    let source = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let provenance = snapshot(&conn, format!("callvault {source}"))?;
    emit(&mut frame, args.format, &provenance, args.out.as_deref())?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_groupings_parse() {
        assert!(parse_date("2026-11-02").is_ok());
        assert!(parse_date("02/11/2026").is_err());
        let g = stats::parse_grouping("day,agent").unwrap();
        assert!(g.agent && g.day);
        assert!(stats::parse_grouping("provider").is_err());
    }
}
