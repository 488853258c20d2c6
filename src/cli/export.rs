//! `callvault export --out DIR`: the archive's tables as Parquet (or CSV) files, one folder
//! per table, optionally hive-partitioned by provider and day. A summary goes to stderr.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{Cli, Outcome, DEFAULT_DB};
use crate::query::export::{
    self, Compression, ExportFormat, ExportOptions, Partitioning, DEFAULT_TABLES,
};
use crate::query::snapshot;
use crate::store::Archive;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The folder to write (one subfolder per table; an existing table folder is replaced)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// File format
    #[arg(long, value_enum, default_value_t = ExportFormat::Parquet)]
    pub format: ExportFormat,
    /// Tables to export, comma-separated [default: every table of call content]
    #[arg(long, value_name = "TABLE,...", value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Hive partitions: provider, day (UTC date of the call) or provider,day
    #[arg(long, value_name = "provider|day|provider,day", value_parser = export::parse_partitioning)]
    pub partition_by: Option<Partitioning>,
    /// Keep the raw_json (and raw_hash) columns
    #[arg(long)]
    pub with_raw: bool,
    /// Parquet compression [default: zstd (level 1)]
    #[arg(long, value_enum, value_name = "CODEC")]
    pub compression: Option<Compression>,
}

pub fn run(cli: &Cli, args: &ExportArgs) -> anyhow::Result<Outcome> {
    if args.compression.is_some() && args.format != ExportFormat::Parquet {
        anyhow::bail!("--compression applies to Parquet files only");
    }
    let path = cli.archive_path(DEFAULT_DB);
    let conn = Archive::open_read_only(&path)
        .with_context(|| format!("opening the archive {}", path.display()))?;
    let tables = if args.tables.is_empty() {
        DEFAULT_TABLES.iter().map(|t| t.to_string()).collect()
    } else {
        args.tables.clone()
    };
    let options = ExportOptions {
        out: args.out.clone(),
        format: args.format,
        tables,
        partition: args.partition_by.unwrap_or_default(),
        with_raw: args.with_raw,
        compression: args.compression.unwrap_or_default(),
    };
    let snapshot = snapshot(&conn, String::new())?;
    let written = export::export(&conn, &options, &snapshot)
        .with_context(|| format!("exporting to {}", args.out.display()))?;
    if !cli.quiet {
        for t in &written {
            note!(
                "{}: {} rows in {} file{} under {}",
                t.table,
                t.rows,
                t.files,
                if t.files == 1 { "" } else { "s" },
                t.folder.display()
            );
        }
    }
    Ok(Outcome::Success)
}
