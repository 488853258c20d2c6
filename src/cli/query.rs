//! `callvault query <SQL | NAME | @FILE>`: one read-only statement (typed in, a named query,
//! or read from a file), with `--param` bindings, rendered as a table, CSV, JSON, NDJSON or
//! Parquet on stdout or into `--out`. `--list` shows the named queries.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{Cli, Outcome, DEFAULT_DB};
use crate::query::named::{self, NamedQuery};
use crate::query::output::{self, OutputFormat};
use crate::query::snapshot;
use crate::store::Archive;

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// SQL (read-only), the name of a named query, or @FILE to read the SQL from a file
    #[arg(value_name = "SQL | NAME | @FILE", required_unless_present = "list")]
    pub query: Option<String>,
    /// How to print the rows (parquet needs --out)
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Write to this file instead of stdout (written whole or not at all)
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Bind a named parameter (:name) of the query; repeatable
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = named::parse_param)]
    pub params: Vec<(String, String)>,
    /// List the named queries with what each answers
    #[arg(long, conflicts_with = "query")]
    pub list: bool,
}

pub fn run(cli: &Cli, args: &QueryArgs) -> anyhow::Result<Outcome> {
    let path = cli.archive_path(DEFAULT_DB);
    let dirs = named::search_dirs(&path);
    let Some(query) = &args.query else {
        return list(&dirs);
    };
    let (sql, source) = if let Some(file) = query.strip_prefix('@') {
        let sql = std::fs::read_to_string(file)
            .with_context(|| format!("reading the SQL file {file}"))?;
        (sql, format!("query file {file}"))
    } else if named::is_query_name(query) {
        let named = NamedQuery::find(query, &dirs)?;
        if named.replaces_builtin {
            note!(
                "note: {} replaces the shipped query '{}'",
                named.origin(),
                named.name
            );
        }
        let source = format!("query {} ({})", named.name, named.origin());
        (named.sql, source)
    } else {
        (query.clone(), format!("query {query}"))
    };
    if args.format.is_binary() && args.out.is_none() {
        anyhow::bail!("--format parquet writes a binary file: give --out PATH");
    }
    let conn = Archive::open_read_only(&path)
        .with_context(|| format!("opening the archive {}", path.display()))?;
    // One read transaction: the snapshot time and every row come from one state of the archive.
    let _snapshot = conn.unchecked_transaction()?;
    let provenance = snapshot(&conn, source)?;
    let write = |out: &mut dyn std::io::Write| {
        named::write(&conn, &sql, &args.params, args.format, &provenance, out).map(drop)
    };
    match &args.out {
        Some(path) => output::atomic_write(path, write)?,
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            write(&mut out)?;
            out.flush()?;
        }
    }
    Ok(Outcome::Success)
}

fn list(dirs: &[PathBuf]) -> anyhow::Result<Outcome> {
    let all = NamedQuery::list(dirs)?;
    let width = all.iter().map(|q| q.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for q in &all {
        out.push_str(&format!("{:width$}  {}\n", q.name, q.description));
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    lock.write_all(out.as_bytes())?;
    lock.flush()?;
    Ok(Outcome::Success)
}
