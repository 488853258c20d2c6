//! `callvault demo`: the simulator in-process, every platform synced from it into a demo
//! archive, with per-agent figures, ending with the archive's report (`DEMO_REPORT`, written
//! beside the archive so the two stay together wherever `--db` puts them).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::report::write_report;
use super::sync::{report_outcome, run_sync};
use super::{Cli, Outcome};
use crate::providers::{self, HttpClient, ProviderKind, RetryPolicy};
use crate::query::stats::{agent_figures, CallFilter};
use crate::secret::ApiKey;
use crate::sim::{self, SimConfig, Simulator};
use crate::store::Archive;
use crate::sync::{Source, SyncSettings};

/// The archive the demo writes unless `--db` says otherwise.
pub const DEMO_DB: &str = "callvault-demo.db";

/// The report the demo writes, in the archive's folder.
pub const DEMO_REPORT: &str = "callvault-demo.html";

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Calls the simulator serves for each platform
    #[arg(long, default_value_t = 5_000)]
    pub calls: u64,
    /// Agents they are spread over, on each platform
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub agents: u32,
    /// Seed of the generated data
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub async fn run(cli: &Cli, args: &DemoArgs) -> anyhow::Result<Outcome> {
    let config = SimConfig {
        calls: args.calls,
        agents: args.agents,
        seed: args.seed,
        ..SimConfig::default()
    };
    let simulator = Simulator::new(&config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("starting the simulator on 127.0.0.1")?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sim::serve(listener, simulator.clone(), async move {
        let _ = stopped.await;
    }));

    let path = cli.archive_path(DEMO_DB);
    let archive =
        Archive::open(&path).with_context(|| format!("opening the archive {}", path.display()))?;
    let http = HttpClient::new(RetryPolicy::default(), None)?;
    let mut sources = Vec::new();
    for kind in ProviderKind::ALL {
        let provider = providers::connect(
            kind,
            http.clone(),
            &base_url,
            ApiKey::new(config.api_key.clone()),
        );
        // Every agent of each account, found the way a sync without --agent finds them.
        let scopes = provider
            .discover_scopes()
            .await
            .with_context(|| format!("finding the simulator's {kind} agents"))?;
        sources.push(Source {
            provider,
            account: "demo".into(),
            key_env: kind.key_env().into(),
            scopes,
        });
    }
    note!(
        "simulator serving {} calls of {} agents for each of bluejay, cartesia, clarion and ultravox at {base_url}",
        args.calls,
        args.agents
    );
    let settings = SyncSettings {
        concurrency: 8,
        ..SyncSettings::default()
    };
    let synced = run_sync(archive, sources, settings, cli.progress_bar("syncing demo")).await?;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    let outcome = report_outcome(&synced)?;
    let page = path.with_file_name(DEMO_REPORT);
    write_report(&path, &CallFilter::default(), &page)?;
    print_figures(&path, &page)?;
    // The report and the figures read on read-only connections, which leave the WAL and its
    // shared memory beside the archive; the last connection that can write removes them.
    drop(Archive::open(&path).with_context(|| format!("closing the archive {}", path.display()))?);
    Ok(outcome)
}

fn print_figures(path: &Path, page: &Path) -> anyhow::Result<()> {
    let conn = Archive::open_read_only(path)?;
    let figures = agent_figures(&conn)?;
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header([
            "provider",
            "agent",
            "calls",
            "latency",
            "latency p50 ms",
            "latency p95 ms",
            "n",
            "hallucination rate",
        ]);
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    for f in &figures {
        table.add_row([
            f.provider.clone(),
            f.agent_id.clone(),
            f.calls.to_string(),
            f.latency_measure.unwrap_or("-").to_string(),
            ms(f.latency_p50),
            ms(f.latency_p95),
            f.latency_n.to_string(),
            f.hallucination_rate().map_or("-".into(), |r| {
                format!("{:.2}% of {}", r * 100.0, f.verdicts)
            }),
        ]);
    }
    out!("{table}")?;
    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    out!("archive: {}", shown.display())?;
    out!(
        "try: callvault --db {} query \"SELECT status, count(*) FROM calls GROUP BY status\"",
        shown.display()
    )?;
    let page = std::fs::canonicalize(page).unwrap_or_else(|_| page.to_path_buf());
    out!("report: {}", page.display())?;
    Ok(())
}
