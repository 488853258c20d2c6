//! `callvault delete`: resolve the selection, plan, then either print a dry run or freeze the
//! plan and execute it; `--resume JOB` executes what an earlier run left outstanding.
//!
//! Keys come from the environment only. The dry-run report is data (stdout); the plan's
//! frozen job id, progress and the final summary go to stderr.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressStyle};

use super::{
    check_cleartext, parse_base_url, parse_positive, parse_rate, Cli, Outcome, DEFAULT_DB,
};
use crate::config::is_key_variable;
use crate::delete::{self, DeletePlan, Selection, DEFAULT_CONCURRENCY, DEFAULT_MAX, SAMPLE_ROWS};
use crate::providers::{self, DeleteMode, HttpClient, Provider, ProviderKind, RetryPolicy};
use crate::query::named::{self, is_query_name, search_dirs, NamedQuery};
use crate::secret::ApiKey;
use crate::store::journal::Destination;
use crate::store::{Archive, ArchiveWriter};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").args(["select", "query", "resume"]).required(true)))]
pub struct DeleteArgs {
    /// A read-only SQL statement returning the columns provider and call_id
    #[arg(long, value_name = "SQL")]
    pub select: Option<String>,
    /// A named query: queries/NAME.sql in the current directory, or a built-in one
    #[arg(long, value_name = "NAME")]
    pub query: Option<String>,
    /// Binds the SQL parameter :K to V (repeatable)
    #[arg(long = "param", value_name = "K=V", value_parser = named::parse_param)]
    pub params: Vec<(String, String)>,
    /// full, recording-only or redact (what the provider offers)
    #[arg(long, default_value = "full", value_parser = clap::value_parser!(DeleteMode))]
    pub mode: DeleteMode,
    /// Delete for real; without it, print what would be deleted and send nothing
    #[arg(long)]
    pub yes: bool,
    /// Refuse a selection of more calls than this
    #[arg(long, default_value_t = DEFAULT_MAX, value_parser = parse_max)]
    pub max: usize,
    /// Delete requests in flight at once
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = parse_positive)]
    pub concurrency: usize,
    /// At most this many requests per second
    #[arg(long, value_parser = parse_rate)]
    pub rps: Option<f64>,
    /// Send every request here [default: each call's own source, where it was synced from]
    #[arg(long, value_name = "URL", value_parser = parse_base_url)]
    pub base_url: Option<String>,
    /// Allow a plain-http address on another machine (the key travels in clear text)
    #[arg(long)]
    pub allow_http: bool,
    /// Finish an interrupted job: send its pending and retryable items, without re-planning
    #[arg(long, value_name = "JOB", conflicts_with_all = ["params", "yes", "max", "mode"])]
    pub resume: Option<i64>,
}

fn parse_max(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{text}' is not a whole number of at least 1")),
    }
}

/// The query `--query NAME` names, found where `callvault query` finds it.
fn named_query(name: &str, archive: &Path) -> anyhow::Result<NamedQuery> {
    if !is_query_name(name) {
        bail!("'{name}' is not a query name (letters, digits, _ and -)");
    }
    let query = NamedQuery::find(name, &search_dirs(archive))?;
    if query.replaces_builtin {
        note!(
            "note: {} replaces the shipped query '{name}'",
            query.origin()
        );
    }
    Ok(query)
}

fn selection(args: &DeleteArgs, archive: &Path) -> anyhow::Result<Selection> {
    let sql = match (&args.select, &args.query) {
        (Some(sql), _) => sql.clone(),
        (None, Some(name)) => {
            let query = named_query(name, archive)?;
            if !args.yes {
                out!("selection: query '{name}' from {}", query.origin())?;
            }
            query.sql
        }
        (None, None) => bail!("give --select SQL or --query NAME"),
    };
    Ok(Selection {
        sql,
        params: args.params.clone(),
    })
}

/// The adapter for one destination, with the key from the destination's own variable.
fn adapter_for(
    destination: &Destination,
    http: &HttpClient,
    base_url: &str,
    allow_http: bool,
) -> anyhow::Result<Arc<dyn Provider>> {
    check_cleartext(destination.provider, base_url, allow_http)?;
    if !is_key_variable(&destination.key_env) {
        bail!(
            "the archive names '{}' as the {} key variable; callvault reads keys only from variables ending in _KEY",
            destination.key_env,
            destination.provider
        );
    }
    let key = ApiKey::from_env(&destination.key_env)?;
    Ok(providers::connect(
        destination.provider,
        http.clone(),
        base_url,
        key,
    ))
}

/// `--base-url` sends every request of a run to one address: refused when the calls belong
/// to more than one provider.
fn override_url(
    args: &DeleteArgs,
    providers: impl IntoIterator<Item = ProviderKind>,
) -> anyhow::Result<Option<&str>> {
    let Some(url) = args.base_url.as_deref() else {
        return Ok(None);
    };
    let mut kinds: Vec<ProviderKind> = providers.into_iter().collect();
    kinds.sort_by_key(|k| k.as_str());
    kinds.dedup();
    if kinds.len() > 1 {
        bail!(
            "--base-url would send the deletes of {} providers to one address; select one provider's calls at a time",
            kinds.len()
        );
    }
    Ok(Some(url))
}

/// Refuses early, and without creating a file, when there is no archive at `path`.
fn check_archive(path: &Path) -> anyhow::Result<()> {
    Archive::open_read_only(path)
        .map(drop)
        .with_context(|| format!("opening the archive {}", path.display()))
}

pub async fn run(cli: &Cli, args: &DeleteArgs) -> anyhow::Result<Outcome> {
    let path = cli.archive_path(DEFAULT_DB);
    if let Some(job) = args.resume {
        return resume(cli, args, &path, job).await;
    }
    let selection = selection(args, &path)?;
    let mut plan = {
        let (path, selection, mode, max) = (path.clone(), selection.clone(), args.mode, args.max);
        // rusqlite blocks; keep it off the async runtime.
        tokio::task::spawn_blocking(move || -> anyhow::Result<DeletePlan> {
            let conn = Archive::open_read_only(&path)
                .with_context(|| format!("opening the archive {}", path.display()))?;
            Ok(DeletePlan::from_selection(&conn, &selection, mode, max)?)
        })
        .await
        .context("the selection task stopped")??
    };
    if plan.targets.is_empty() {
        note!("the selection matched no calls; nothing to delete");
        return Ok(Outcome::Success);
    }
    if let Some(url) = override_url(args, plan.providers())? {
        for target in &mut plan.targets {
            target.destination.base_url = url.to_string();
        }
    }
    let http =
        HttpClient::new(RetryPolicy::default(), args.rps).context("building the HTTP client")?;
    let mut offered = HashMap::new();
    for kind in plan.providers() {
        // Only asked which modes it offers: no request is sent, so it needs no key.
        let provider = providers::connect(
            kind,
            http.clone(),
            kind.default_base_url(),
            ApiKey::new(String::new()),
        );
        offered.insert(kind, provider.delete_modes());
    }
    plan.check_modes(|kind| offered.get(&kind).copied().unwrap_or(&[]))?;
    let summary = plan.summary();
    if !args.yes {
        print_dry_run(&plan)?;
        note!(
            "dry run: nothing was sent; add --yes to delete these {} call(s)",
            plan.targets.len()
        );
        return Ok(Outcome::Success);
    }
    let mut adapters = HashMap::new();
    for destination in summary.destinations.keys() {
        let provider = adapter_for(destination, &http, &destination.base_url, args.allow_http)?;
        adapters.insert(destination.clone(), provider);
    }
    let archive =
        Archive::open(&path).with_context(|| format!("opening the archive {}", path.display()))?;
    let writer = Arc::new(ArchiveWriter::spawn(archive));
    let job = delete::freeze(&writer, &plan, &selection).await?;
    note!(
        "delete job {job}: {} call(s) planned ({}); deleting at {}",
        plan.targets.len(),
        plan.mode,
        destinations_line(&summary.destinations)
    );
    execute(cli, args, writer, job, adapters).await
}

/// `bluejay at https://... (3 calls, key BLUEJAY_API_KEY); ...`
fn destinations_line(destinations: &BTreeMap<Destination, u64>) -> String {
    destinations
        .iter()
        .map(|(d, n)| {
            format!(
                "{} at {} ({n} call(s), key ${})",
                d.provider, d.base_url, d.key_env
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn resume(cli: &Cli, args: &DeleteArgs, path: &Path, job: i64) -> anyhow::Result<Outcome> {
    check_archive(path)?;
    let archive =
        Archive::open(path).with_context(|| format!("opening the archive {}", path.display()))?;
    let writer = Arc::new(ArchiveWriter::spawn(archive));
    let http =
        HttpClient::new(RetryPolicy::default(), args.rps).context("building the HTTP client")?;
    let destinations = delete::destinations(&writer, job).await?;
    let url = override_url(args, destinations.iter().map(|d| d.provider))?;
    let mut adapters = HashMap::new();
    for destination in destinations {
        let base_url = url.unwrap_or(&destination.base_url).to_string();
        note!(
            "delete job {job}: resuming at {} {base_url} (key ${})",
            destination.provider,
            destination.key_env
        );
        let provider = adapter_for(&destination, &http, &base_url, args.allow_http)?;
        adapters.insert(destination, provider);
    }
    execute(cli, args, writer, job, adapters).await
}

async fn execute(
    cli: &Cli,
    args: &DeleteArgs,
    writer: Arc<ArchiveWriter>,
    job: i64,
    adapters: HashMap<Destination, Arc<dyn Provider>>,
) -> anyhow::Result<Outcome> {
    let progress = progress_bar(cli);
    let result = delete::execute(writer.clone(), job, adapters, args.concurrency, progress).await;
    // Every recorded response is committed before the process ends.
    if let Ok(writer) = Arc::try_unwrap(writer) {
        writer.close();
    }
    let report = result?;
    note!("{}", report.summary_line());
    for f in &report.failed {
        let status = f
            .http_status
            .map_or_else(|| "no answer".to_string(), |s| format!("HTTP {s}"));
        note!(
            "failed {}/{} ({status}): {}",
            f.provider,
            f.call_id,
            f.error.as_deref().unwrap_or("no message")
        );
    }
    if report.counts.failed > 0 {
        note!(
            "{} item(s) failed; `callvault delete --resume {job}` sends the retryable ones again",
            report.counts.failed
        );
        Ok(Outcome::Partial)
    } else {
        Ok(Outcome::Success)
    }
}

fn progress_bar(cli: &Cli) -> ProgressBar {
    let bar = cli.progress_bar("deleting");
    if !bar.is_hidden() {
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} calls, {per_sec}, eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
    }
    bar
}

fn print_dry_run(plan: &DeletePlan) -> anyhow::Result<()> {
    let summary = plan.summary();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(
        out,
        "dry run: {} call(s) would be deleted",
        plan.targets.len()
    )?;
    let mut counts = comfy_table::Table::new();
    counts
        .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header(["provider", "mode", "calls"]);
    for (provider, n) in &summary.providers {
        counts.add_row([provider.clone(), plan.mode.to_string(), n.to_string()]);
    }
    writeln!(out, "{counts}")?;
    writeln!(
        out,
        "requests would go to: {}",
        destinations_line(&summary.destinations)
    )?;
    let agents: Vec<String> = summary
        .agents
        .iter()
        .map(|(agent, n)| format!("{agent} ({n})"))
        .collect();
    writeln!(out, "agents: {}", agents.join(", "))?;
    writeln!(
        out,
        "created: {} to {}",
        summary.first_created.as_deref().unwrap_or("-"),
        summary.last_created.as_deref().unwrap_or("-")
    )?;
    let mut sample = comfy_table::Table::new();
    sample
        .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header(["provider", "call_id", "agent_id", "created_at"]);
    for t in plan.targets.iter().take(SAMPLE_ROWS) {
        sample.add_row([
            t.provider.to_string(),
            t.call_id.clone(),
            t.agent_id.clone().unwrap_or_default(),
            t.created_at.clone().unwrap_or_default(),
        ]);
    }
    writeln!(
        out,
        "sample ({} of {}):",
        plan.targets.len().min(SAMPLE_ROWS),
        plan.targets.len()
    )?;
    writeln!(out, "{sample}")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_parses() {
        assert_eq!(parse_max("5000"), Ok(5000));
        assert!(parse_max("0").is_err());
    }

    #[test]
    fn named_queries_refuse_paths_and_know_the_builtin_ones() {
        let archive = Path::new("/nonexistent/archive.db");
        assert!(named_query("../etc/passwd", archive).is_err());
        assert!(named_query("calls_older_than", archive)
            .unwrap()
            .sql
            .contains(":days"));
        let err = named_query("nope", archive).unwrap_err().to_string();
        assert!(err.contains("calls_older_than"), "{err}");
    }
}
