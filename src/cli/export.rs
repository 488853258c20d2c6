//! `callvault export --out DIR`: the archive's tables as Parquet (or CSV) files, one folder
//! per table, optionally hive-partitioned by provider and day; with `--incremental`, `DIR` is
//! kept as a lake of provider/day partitions and only the changed ones are rewritten. A
//! summary goes to stderr.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{Cli, Outcome, DEFAULT_DB};
use crate::query::export::{
    self, Compression, ExportFormat, ExportOptions, Partitioning, DEFAULT_TABLES,
};
use crate::query::snapshot;
use crate::store::{Archive, SCHEMA_VERSION};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The folder to write (one subfolder per table; a table folder an earlier export wrote is replaced)
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
    /// Keep the raw JSON columns (raw_json, raw_hash; json_path of evaluations)
    #[arg(long)]
    pub with_raw: bool,
    /// Parquet compression [default: zstd (level 1)]
    #[arg(long, value_enum, value_name = "CODEC")]
    pub compression: Option<Compression>,
    /// Keep DIR as a lake: rewrite only the provider/day partitions that changed since the last export to it, with a manifest
    #[arg(long)]
    pub incremental: bool,
    /// With --incremental: rebuild every partition, even of a lake from another archive or other options
    #[arg(long, requires = "incremental")]
    pub full: bool,
    /// Replace files and folders named like a table even if callvault did not write them
    #[arg(long)]
    pub force: bool,
}

pub fn run(cli: &Cli, args: &ExportArgs) -> anyhow::Result<Outcome> {
    if args.compression.is_some() && args.format != ExportFormat::Parquet {
        anyhow::bail!("--compression applies to Parquet files only");
    }
    let both = Partitioning {
        provider: true,
        day: true,
    };
    if args.incremental && args.partition_by.is_some_and(|p| p != both) {
        anyhow::bail!(
            "--incremental keeps provider,day partitions; drop --partition-by or give provider,day"
        );
    }
    let path = cli.archive_path(DEFAULT_DB);
    let open = || {
        Archive::open_read_only(&path)
            .with_context(|| format!("opening the archive {}", path.display()))
    };
    let mut conn = open()?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if args.incremental && version < SCHEMA_VERSION {
        // The lake needs the change tracking of schema 5: upgrade, then read as usual.
        drop(conn);
        drop(
            Archive::open(&path)
                .with_context(|| format!("upgrading the archive {}", path.display()))?,
        );
        conn = open()?;
    }
    let tables = if args.tables.is_empty() {
        DEFAULT_TABLES.iter().map(|t| t.to_string()).collect()
    } else {
        args.tables.clone()
    };
    let options = ExportOptions {
        out: args.out.clone(),
        format: args.format,
        tables,
        partition: if args.incremental {
            both
        } else {
            args.partition_by.unwrap_or_default()
        },
        with_raw: args.with_raw,
        compression: args.compression.unwrap_or_default(),
        force: args.force,
    };
    let snapshot = snapshot(&conn, String::new())?;
    if args.incremental {
        let started = std::time::Instant::now();
        let lake = export::export_lake(&conn, &options, &snapshot, args.full)
            .with_context(|| format!("exporting to {}", args.out.display()))?;
        if !cli.quiet {
            note!(
                "{}: {} partition{} {} ({} removed), {} file{}, {} rows written; the lake holds {} partitions ({:.2} s)",
                args.out.display(),
                lake.rewritten,
                if lake.rewritten == 1 { "" } else { "s" },
                if lake.rebuilt { "rebuilt" } else { "rewritten" },
                lake.removed,
                lake.files,
                if lake.files == 1 { "" } else { "s" },
                lake.rows,
                lake.partitions,
                started.elapsed().as_secs_f64()
            );
        }
        return Ok(Outcome::Success);
    }
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
