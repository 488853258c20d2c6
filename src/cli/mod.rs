//! The command line: argument definitions and the glue from each command to the library.
//!
//! Parsing and validation happen here (clap `value_parser`s, so a bad value is a usage
//! error, exit 2, before anything runs); each command then resolves its inputs (archive path,
//! config, keys from the environment), calls the library, and renders results. Data goes to
//! stdout; progress, summaries, logs and errors go to stderr. Library code never prints.

/// Writes a line of data to stdout; a closed pipe comes back as an error that `main` treats
/// as the reader having had enough (exit 0), never a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// Writes a line of progress, summary or warning to stderr. A closed stderr must not stop a
/// sync or a delete halfway, so a failed write is ignored.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod delete;
mod demo;
mod export;
mod jobs;
mod query;
mod report;
mod sim;
mod stats;
mod status;
mod sync;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::query::output::{self, OutputFormat, Provenance};

/// A mistake in how callvault was called that clap could not see (a combination of values,
/// an address that would send a key in clear text): exit 2, like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// How a command that ran to its end went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done: exit 0.
    Success,
    /// Finished, but some streams or items failed (summary on stderr): exit 3.
    Partial,
}

#[derive(Parser, Debug)]
#[command(
    name = "callvault",
    version,
    about = "A local, incrementally synced archive of voice-AI call logs",
    after_help = "Exit codes: 0 success, 1 failure, 2 usage error, 3 finished with some items failed."
)]
pub struct Cli {
    /// The archive file [default: $CALLVAULT_DB, else ./callvault.db]
    #[arg(long, global = true, env = "CALLVAULT_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr; no progress bars
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mirror calls and evaluations from a provider (or every source in callvault.toml)
    Sync(sync::SyncArgs),
    /// Per stream: calls, evaluations, last sync, checkpoint
    Status,
    /// Run one read-only SQL statement or named query over the archive
    Query(query::QueryArgs),
    /// Exact latency percentiles, hallucination rates and a summary, per agent and/or day
    Stats(stats::StatsArgs),
    /// Write one self-contained HTML page of charts and figures (no network needed to view it)
    Report(report::ReportArgs),
    /// Write the archive's tables as Parquet or CSV files (optionally hive-partitioned)
    Export(export::ExportArgs),
    /// Serve the providers' APIs from seeded data on 127.0.0.1, for tests and trials
    Sim(sim::SimArgs),
    /// Start the simulator in-process, sync it into a demo archive and print stats
    Demo(demo::DemoArgs),
    /// Delete calls at the provider, selected by SQL over the archive (a dry run without --yes)
    Delete(delete::DeleteArgs),
    /// Delete jobs and their counts
    Jobs,
}

impl Cli {
    /// The archive path this run uses.
    fn archive_path(&self, default: &str) -> PathBuf {
        self.db.clone().unwrap_or_else(|| PathBuf::from(default))
    }

    /// A progress bar on stderr, or a hidden one when stderr is no terminal or `-q` is set.
    fn progress_bar(&self, what: &str) -> ProgressBar {
        if self.quiet || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} pages, {per_sec}, eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}

/// The archive path when neither `--db` nor `$CALLVAULT_DB` is given.
pub const DEFAULT_DB: &str = "callvault.db";

pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match &cli.command {
        Command::Sync(args) => sync::run(&cli, args).await,
        Command::Status => status::run(&cli),
        Command::Query(args) => query::run(&cli, args),
        Command::Stats(args) => stats::run(&cli, args),
        Command::Report(args) => report::run(&cli, args),
        Command::Export(args) => export::run(&cli, args),
        Command::Sim(args) => sim::run(args).await,
        Command::Demo(args) => demo::run(&cli, args).await,
        Command::Delete(args) => delete::run(&cli, args).await,
        Command::Jobs => jobs::run(&cli),
    }
}

/// Writes a result to `out` (whole or not at all) or, rendered in memory first, to stdout.
fn emit(
    frame: &mut polars::prelude::DataFrame,
    format: OutputFormat,
    provenance: &Provenance,
    out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match out {
        Some(path) => output::write_file(frame, format, provenance, path)?,
        None => {
            let mut bytes = Vec::new();
            output::write_frame(frame, format, provenance, &mut bytes)?;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&bytes)?;
            stdout.flush()?;
        }
    }
    Ok(())
}

/// Parses a positive count for flags like `--concurrency`.
fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("'{text}' is not a whole number from 1 to 1024")),
    }
}

/// Parses `--base-url`: http or https, a host, no credentials.
fn parse_base_url(text: &str) -> Result<String, String> {
    crate::providers::http::check_base_url(text)
}

/// Refuses to send `provider`'s key in clear text to another machine unless the user said so
/// with `--allow-http`.
fn check_cleartext(
    provider: crate::providers::ProviderKind,
    base_url: &str,
    allow_http: bool,
) -> Result<(), UsageError> {
    if crate::providers::http::is_cleartext_remote(base_url) && !allow_http {
        return Err(UsageError(format!(
            "{base_url} is plain http to another machine: the {provider} key would travel in clear text; use https, or pass --allow-http if that is really meant"
        )));
    }
    Ok(())
}

/// The slowest and fastest request rates `--rps` takes.
const RATE_RANGE: std::ops::RangeInclusive<f64> = 0.01..=100_000.0;

/// Parses a request rate for `--rps`.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if RATE_RANGE.contains(&r) => Ok(r),
        _ => Err(format!(
            "'{text}' is not a number of requests per second from {} to {}",
            RATE_RANGE.start(),
            RATE_RANGE.end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_parsers_refuse_nonsense() {
        assert_eq!(parse_positive("8"), Ok(8));
        assert!(parse_positive("0").is_err());
        assert!(parse_positive("-3").is_err());
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("NaN").is_err());
        assert!(parse_rate("1e-300").is_err());
        assert!(parse_rate("1e300").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
