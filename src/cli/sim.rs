//! `callvault sim`: serve the simulator until Ctrl-C.

use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::Outcome;
use crate::providers::ProviderKind;
use crate::sim::{
    self, Churn, FaultConfig, FaultKind, SimConfig, Simulator, SortOrder, DEFAULT_SIM_KEY,
};

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Where to listen; port 0 picks a free one
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub addr: std::net::SocketAddr,
    /// Calls in the data set
    #[arg(long, default_value_t = 1_000)]
    pub calls: u64,
    /// Agents the calls are spread over
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub agents: u32,
    /// Seed of the generated data
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Added to every response, in milliseconds
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// The order list endpoints serve calls in
    #[arg(long, value_enum, default_value_t = SortOrder::NewestFirst)]
    pub order: SortOrder,
    /// The API key the simulator accepts
    #[arg(long, default_value = DEFAULT_SIM_KEY)]
    pub api_key: String,
    /// The share of requests that meet a fault, 0 to 1
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub fault_rate: f64,
    /// Which faults: 429, 503, 500, drop, truncate, slow (comma-separated)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "429,503,500,drop,truncate,slow"
    )]
    pub faults: Vec<FaultKind>,
    /// Retry-After sent with 429 and 503, in seconds
    #[arg(long, default_value_t = 1)]
    pub retry_after: u64,
    /// Chance, per list request, that a call is inserted and one deleted while clients walk
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub churn: f64,
}

fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{text}' is not a number from 0 to 1")),
    }
}

pub async fn run(args: &SimArgs) -> anyhow::Result<Outcome> {
    let config = SimConfig {
        calls: args.calls,
        agents: args.agents,
        seed: args.seed,
        latency: Duration::from_millis(args.latency_ms),
        order: args.order,
        api_key: args.api_key.clone(),
        anchor: None,
        faults: FaultConfig {
            rate: args.fault_rate,
            kinds: args.faults.clone(),
            retry_after_secs: args.retry_after,
            ..FaultConfig::default()
        },
        churn: Churn {
            insert_chance: args.churn,
            delete_chance: args.churn,
        },
        ..SimConfig::default()
    };
    let simulator = Simulator::new(&config);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let addr = listener.local_addr()?;
    out!("listening on http://{addr}")?;
    out!("agents: {}", simulator.agents().join(" "))?;
    for kind in [
        ProviderKind::Cartesia,
        ProviderKind::Clarion,
        ProviderKind::Ultravox,
    ] {
        out!("{kind} agents: {}", simulator.agents_of(kind).join(" "))?;
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    sim::serve(listener, simulator, shutdown).await?;
    Ok(Outcome::Success)
}
