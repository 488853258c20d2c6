//! `callvault sync [PROVIDER]`: resolve sources, keys and the archive, then run the sync.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use super::{
    check_cleartext, parse_base_url, parse_positive, parse_rate, Cli, Outcome, DEFAULT_DB,
};
use crate::config::{Config, SourceConfig, CONFIG_FILE};
use crate::providers::{self, HttpClient, ProviderKind, RetryPolicy, Scope, WalkOptions, Window};
use crate::secret::ApiKey;
use crate::store::{Archive, ArchiveWriter};
use crate::sync::{self, Source, StreamOutcome, SyncReport, SyncSettings};

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// bluejay, cartesia, clarion or ultravox; omit to sync every source in callvault.toml
    pub provider: Option<ProviderKind>,
    /// An agent to sync (repeatable) [default: the agents callvault.toml lists, else every
    /// agent of the account, or the whole account where the provider lists calls account-wide]
    #[arg(long = "agent", value_name = "ID", value_parser = parse_agent)]
    pub agents: Vec<String>,
    /// The account's name, to keep two accounts of one provider apart [default: default]
    #[arg(long, value_name = "NAME", value_parser = parse_agent)]
    pub account: Option<String>,
    /// Only calls with this label (Bluejay)
    #[arg(long)]
    pub label: Option<String>,
    /// The provider's API address (the simulator's, in tests)
    #[arg(long, value_name = "URL", value_parser = parse_base_url)]
    pub base_url: Option<String>,
    /// Allow a plain-http base URL on another machine (the key travels in clear text)
    #[arg(long)]
    pub allow_http: bool,
    /// How far back to look: 1day, 3days, 7days, 30days, 90days or all [default: since the last complete sync]
    #[arg(long, value_parser = clap::value_parser!(Window))]
    pub window: Option<Window>,
    /// Walk everything the provider holds, whatever the last sync saw
    #[arg(long)]
    pub full: bool,
    /// With --full: remove archived calls the provider no longer has (audit rows kept)
    #[arg(long, requires = "full")]
    pub prune: bool,
    /// Page requests in flight at once
    #[arg(long, default_value_t = sync::DEFAULT_CONCURRENCY, value_parser = parse_positive)]
    pub concurrency: usize,
    /// At most this many requests per second, all streams together
    #[arg(long, value_parser = parse_rate)]
    pub rps: Option<f64>,
    /// Stop cleanly when the provider asks to wait longer than this many seconds
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub max_wait: u64,
    /// Fetch calls that are not final again, by id, until they are this many days old
    #[arg(long, default_value_t = sync::DEFAULT_RECHECK_DAYS, value_parser = clap::value_parser!(i64).range(0..=3650))]
    pub recheck_days: i64,
    /// The config file [default: callvault.toml next to the archive]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// An agent id or account name: not empty, no path separators or dot segments.
fn parse_agent(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("an empty id names nothing".into());
    }
    if trimmed == "." || trimmed == ".." || trimmed.contains(['/', '\\']) {
        return Err(format!("'{text}' is not an id (no '/', '.' or '..')"));
    }
    Ok(trimmed.to_string())
}

fn config_path(cli: &Cli, args: &SyncArgs) -> PathBuf {
    if let Some(path) = &args.config {
        return path.clone();
    }
    let db = cli.archive_path(DEFAULT_DB);
    db.parent()
        .map(|dir| dir.join(CONFIG_FILE))
        .unwrap_or_else(|| PathBuf::from(CONFIG_FILE))
}

/// The sources this run syncs, from the flags and the config file.
fn resolve_sources(cli: &Cli, args: &SyncArgs) -> anyhow::Result<Vec<SourceConfig>> {
    let path = config_path(cli, args);
    let config = Config::load(&path)?;
    if args.config.is_some() && config.is_none() {
        bail!("no config file at {}", path.display());
    }
    let configured = config.map(|c| c.sources).unwrap_or_default();
    let Some(kind) = args.provider else {
        if !args.agents.is_empty() {
            bail!("--agent needs a provider: callvault sync bluejay --agent ID");
        }
        if configured.is_empty() {
            bail!(
                "nothing to sync: no sources in {}; name a provider (callvault sync bluejay) or add a [[source]] there",
                path.display()
            );
        }
        return Ok(configured
            .into_iter()
            .filter(|s| args.account.as_deref().is_none_or(|a| a == s.account()))
            .collect());
    };
    let mut mine: Vec<SourceConfig> = configured
        .into_iter()
        .filter(|s| s.provider == kind)
        .filter(|s| args.account.as_deref().is_none_or(|a| a == s.account()))
        .collect();
    if mine.is_empty() {
        mine.push(SourceConfig {
            provider: kind,
            account: args.account.clone(),
            agents: None,
            base_url: None,
            label: None,
            key_env: None,
        });
    }
    if !args.agents.is_empty() {
        if mine.len() > 1 {
            bail!(
                "callvault.toml has {} {kind} sources; pick one with --account NAME",
                mine.len()
            );
        }
        mine.truncate(1);
        mine[0].agents = Some(args.agents.clone());
    }
    Ok(mine)
}

pub async fn run(cli: &Cli, args: &SyncArgs) -> anyhow::Result<Outcome> {
    let configs = resolve_sources(cli, args)?;
    let policy = RetryPolicy {
        max_wait: std::time::Duration::from_secs(args.max_wait),
        ..RetryPolicy::default()
    };
    let http = HttpClient::new(policy, args.rps).context("building the HTTP client")?;
    let mut sources = Vec::new();
    for config in &configs {
        let base_url = match (&args.base_url, &config.base_url) {
            (Some(flag), _) => flag.clone(),
            (None, Some(configured)) => {
                warn_if_foreign(config.provider, configured);
                configured.clone()
            }
            (None, None) => config.provider.default_base_url().to_string(),
        };
        check_cleartext(config.provider, &base_url, args.allow_http)?;
        let key = ApiKey::from_env(config.key_env())?;
        let provider = providers::connect(config.provider, http.clone(), &base_url, key);
        let label = args.label.clone().or_else(|| config.label.clone());
        let mut scopes = match &config.agents {
            Some(agents) => agents.iter().map(Scope::agent).collect(),
            None => provider
                .discover_scopes()
                .await
                .with_context(|| format!("finding the {} account's agents", config.provider))?,
        };
        for scope in &mut scopes {
            scope.label.clone_from(&label);
        }
        if scopes.is_empty() {
            note!(
                "{} account '{}' has no agents; nothing to sync there",
                config.provider,
                config.account()
            );
        }
        sources.push(Source {
            provider,
            account: config.account().to_string(),
            key_env: config.key_env().to_string(),
            scopes,
        });
    }
    let path = cli.archive_path(DEFAULT_DB);
    let archive =
        Archive::open(&path).with_context(|| format!("opening the archive {}", path.display()))?;
    let settings = SyncSettings {
        options: WalkOptions {
            window: args.window,
            full: args.full,
        },
        concurrency: args.concurrency,
        recheck_within: chrono::Duration::days(args.recheck_days),
        prune: args.prune,
    };
    let report = run_sync(archive, sources, settings, cli.progress_bar("syncing")).await?;
    report_outcome(&report)
}

/// A base URL from callvault.toml that is not the provider's own host gets the key too: say
/// so every time, so a planted file cannot redirect a key unnoticed.
fn warn_if_foreign(provider: ProviderKind, base_url: &str) {
    let host = |url: &str| {
        reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    };
    if host(base_url) != host(provider.default_base_url()) {
        note!(
            "warning: callvault.toml sends the {provider} key to {base_url}, not to {}",
            provider.default_base_url()
        );
    }
}

/// Runs a sync on its own writer thread and closes the archive when it ends.
pub async fn run_sync(
    archive: Archive,
    sources: Vec<Source>,
    settings: SyncSettings,
    progress: indicatif::ProgressBar,
) -> anyhow::Result<SyncReport> {
    let writer = Arc::new(ArchiveWriter::spawn(archive));
    let report = sync::sync_sources(writer.clone(), sources, settings, progress).await;
    if let Ok(writer) = Arc::try_unwrap(writer) {
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .context("closing the archive")?;
    }
    Ok(report?)
}

/// Prints the summary and failures, and turns them into the exit outcome: exit 1 when every
/// stream failed outright, 3 when some did not complete, 0 otherwise.
pub fn report_outcome(report: &SyncReport) -> anyhow::Result<Outcome> {
    note!("{}", report.summary_line());
    let failed: Vec<_> = report.incomplete().collect();
    let mut stopped = false;
    for s in &failed {
        let (what, why) = match &s.outcome {
            StreamOutcome::Failed(why) => ("failed", why),
            StreamOutcome::Unsettled(why) => ("not settled", why),
            StreamOutcome::Stopped(why) => {
                stopped = true;
                ("stopped", why)
            }
            StreamOutcome::Complete => continue,
        };
        note!("{} {} {} {what}: {why}", s.provider, s.account, s.scope);
    }
    if stopped {
        note!("everything fetched so far is archived; run the same sync again to resume");
    }
    let all_failed_outright = !report.streams.is_empty()
        && failed.len() == report.streams.len()
        && failed
            .iter()
            .all(|s| matches!(s.outcome, StreamOutcome::Failed(_)));
    if failed.is_empty() {
        Ok(Outcome::Success)
    } else if all_failed_outright {
        let first = failed
            .first()
            .map(|s| match &s.outcome {
                StreamOutcome::Failed(why) => {
                    format!("{} {} {}: {why}", s.provider, s.account, s.scope)
                }
                _ => String::new(),
            })
            .unwrap_or_default();
        bail!("sync failed: {first}")
    } else {
        Ok(Outcome::Partial)
    }
}
