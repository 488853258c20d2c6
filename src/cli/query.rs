//! `callvault query SQL`: one read-only statement, rendered as a table, CSV or JSON.

use std::io::Write;

use anyhow::Context;
use clap::Args;

use super::{Cli, Outcome, DEFAULT_DB};
use crate::query::{run_sql, OutputFormat};
use crate::store::Archive;

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The SQL statement to run (read-only)
    pub sql: String,
    /// How to print the rows
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

pub fn run(cli: &Cli, args: &QueryArgs) -> anyhow::Result<Outcome> {
    let path = cli.archive_path(DEFAULT_DB);
    let conn = Archive::open_read_only(&path)
        .with_context(|| format!("opening the archive {}", path.display()))?;
    let result = run_sql(&conn, &args.sql)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    result.write(args.format, &mut out)?;
    out.flush()?;
    Ok(Outcome::Success)
}
