//! `callvault stats latency|hallucination|summary`: callvault's own exact figures, grouped
//! `--by agent`, `day` or `agent,day`, of the calls chosen by dates, providers and agents (the
//! same choice as `report`'s), in any output format.

use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, ValueEnum};

use super::{emit, Cli, Outcome, UsageError, DEFAULT_DB};
use crate::providers::ProviderKind;
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
    #[command(flatten)]
    pub calls: CallFilterArgs,
    /// How to print the rows (parquet needs --out)
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Write to this file instead of stdout (written whole or not at all)
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// Which calls a figure counts: the flags `stats` and `report` share.
#[derive(Args, Debug)]
pub struct CallFilterArgs {
    /// Keep calls created on or after this UTC date (YYYY-MM-DD); in the report, deletions too
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<NaiveDate>,
    /// Keep calls created on or before this UTC date (YYYY-MM-DD); in the report, deletions too
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub until: Option<NaiveDate>,
    /// Keep this provider's calls (repeat for several) [default: every provider]
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Vec<ProviderKind>,
    /// Keep this agent's calls (repeat for several) [default: every agent]
    #[arg(long, value_name = "ID")]
    pub agent: Vec<String>,
}

impl CallFilterArgs {
    /// The filter, or a usage error when the dates leave no day to keep.
    pub fn filter(&self) -> Result<CallFilter, UsageError> {
        if let (Some(since), Some(until)) = (self.since, self.until) {
            if since > until {
                return Err(UsageError(format!(
                    "--since {since} is after --until {until}: no call could be counted"
                )));
            }
        }
        Ok(CallFilter {
            since: self.since,
            until: self.until,
            providers: self
                .provider
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
            agents: self.agent.clone(),
        })
    }
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
        filter: args.calls.filter()?,
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
