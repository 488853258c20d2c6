//! The page: `ReportData` turned into sections, each with its charts and, under them, the
//! figures as tables, rendered by the `page.html` template.
//!
//! Every number in a table comes from the same `GroupFigures` methods and row functions that
//! `stats` prints (`stats::latency_rows`, `hallucination_groups`, `goal_success_rate`, ...).
//! A table cell shows a rounded value and, in `data-v`, the exact one as `stats --format
//! json` prints it, so a reader (or a test) can check one against the other. Long per-day
//! tables sit in a closed `<details>` under a short per-agent one.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};

use super::charts::{self, bins_for, percent, wilson_interval, Bins, DayRate, DaySeries, HBar};
use super::data::{ReportData, DELETE_MODES};
use super::svg::{tick_label, Scale, Svg};
use crate::providers::ProviderKind;
use crate::query::stats::{
    hallucination_groups, latency_rows, CallFilter, GroupFigures, GroupKey, Grouping, LatencyRow,
    LATENCY_MEASURES, LATENCY_PERCENTILES,
};

#[derive(Template)]
#[template(path = "page.html", config = "src/query/report/askama.toml")]
pub struct Page {
    pub version: &'static str,
    pub snapshot_at: String,
    pub last_synced_at: String,
    /// Which calls the page covers, in words.
    pub scope: String,
    pub sections: Vec<Section>,
}

pub struct Section {
    pub id: &'static str,
    pub title: &'static str,
    pub intro: String,
    pub figures: Vec<Figure>,
    /// Small charts side by side (one per agent) rather than one across the page.
    pub grid: bool,
    pub tables: Vec<Table>,
}

pub struct Figure {
    pub id: String,
    pub caption: String,
    pub svg: Svg,
}

pub struct Table {
    pub id: String,
    pub caption: String,
    /// Folded away under its caption (long per-day tables).
    pub collapsed: bool,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

pub struct Column {
    /// The name `stats --format json` gives the figure, where it has one.
    pub key: String,
    pub label: String,
}

pub struct Cell {
    pub text: String,
    /// The exact value, where `text` rounds it.
    pub exact: Option<String>,
    pub numeric: bool,
}

/// A cell for a missing figure (SQL NULL).
const MISSING: &str = "–";

impl Cell {
    fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            exact: None,
            numeric: false,
        }
    }

    fn opt_text(text: &Option<String>) -> Cell {
        Cell::text(text.clone().unwrap_or_else(|| MISSING.into()))
    }

    fn int(n: i64) -> Cell {
        Cell {
            text: n.to_string(),
            exact: None,
            numeric: true,
        }
    }

    /// A number shown with `decimals` decimals.
    fn number(v: Option<f64>, decimals: usize) -> Cell {
        match v {
            Some(v) => Cell {
                text: format!("{v:.decimals$}"),
                exact: Some(v.to_string()),
                numeric: true,
            },
            None => Cell {
                text: MISSING.into(),
                exact: None,
                numeric: true,
            },
        }
    }

    /// A rate (0..1) shown as a percentage.
    fn rate(v: Option<f64>) -> Cell {
        match v {
            Some(v) => Cell {
                text: percent(v),
                exact: Some(v.to_string()),
                numeric: true,
            },
            None => Cell::number(None, 0),
        }
    }
}

fn columns(spec: &[(&str, &str)]) -> Vec<Column> {
    spec.iter()
        .map(|(key, label)| Column {
            key: (*key).into(),
            label: (*label).into(),
        })
        .collect()
}

/// The CSS class that colours a provider in every chart.
fn provider_class(provider: &str) -> String {
    let index = ProviderKind::ALL
        .iter()
        .position(|k| k.as_str() == provider)
        .unwrap_or(6);
    format!("s{index}")
}

fn mode_class(mode: &str) -> String {
    match mode {
        "full" => "s5",
        "recording-only" => "s1",
        "redact" => "s3",
        "upstream" => "s4",
        _ => "s6",
    }
    .into()
}

fn agent_label(key: &GroupKey) -> String {
    format!(
        "{} · {}",
        key.provider.as_deref().unwrap_or(MISSING),
        key.agent_id.as_deref().unwrap_or("(no agent)")
    )
}

fn day_of(key: &GroupKey) -> Option<NaiveDate> {
    key.day
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// The same agent: provider and agent id.
fn same_agent(a: &GroupKey, b: &GroupKey) -> bool {
    a.provider == b.provider && a.agent_id == b.agent_id
}

/// An id for HTML made of a group's key, unique within the page.
fn figure_id(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index}")
}

pub fn build(data: &ReportData) -> Page {
    let snapshot = crate::time::parse_timestamp(&data.provenance.snapshot_at);
    let days: BTreeSet<NaiveDate> = data
        .by_agent_day
        .iter()
        .filter_map(|g| day_of(&g.key))
        .collect();
    let today = snapshot.map_or_else(|| Utc::now().date_naive(), |t| t.date_naive());
    let range = match (days.first(), days.last()) {
        (Some(first), Some(last)) => (*first, *last),
        _ => (today, today),
    };
    Page {
        version: env!("CARGO_PKG_VERSION"),
        snapshot_at: data.provenance.snapshot_at.clone(),
        last_synced_at: data
            .provenance
            .last_synced_at
            .clone()
            .unwrap_or_else(|| "never".into()),
        scope: describe_filter(&data.filter),
        sections: vec![
            freshness(data, snapshot),
            calls(data, range),
            latency(data, range),
            distribution(data),
            hallucination(data, range),
            outcomes(data),
            deletions(data, today),
            slowest(data),
        ],
    }
}

fn describe_filter(filter: &CallFilter) -> String {
    let mut parts = Vec::new();
    match (filter.since, filter.until) {
        (Some(s), Some(u)) => parts.push(format!("calls created from {s} to {u} (UTC)")),
        (Some(s), None) => parts.push(format!("calls created on or after {s} (UTC)")),
        (None, Some(u)) => parts.push(format!("calls created on or before {u} (UTC)")),
        (None, None) => parts.push("every call in the archive".into()),
    }
    if !filter.providers.is_empty() {
        parts.push(format!("providers {}", filter.providers.join(", ")));
    }
    if !filter.agents.is_empty() {
        parts.push(format!("agents {}", filter.agents.join(", ")));
    }
    parts.join("; ")
}

fn freshness(data: &ReportData, snapshot: Option<DateTime<Utc>>) -> Section {
    let age_hours = |at: &Option<String>| -> Option<f64> {
        let at = crate::time::parse_timestamp(at.as_deref()?)?;
        Some(((snapshot? - at).num_milliseconds() as f64 / 3_600_000.0).max(0.0))
    };
    let ages: Vec<Option<f64>> = data
        .streams
        .iter()
        .map(|s| age_hours(&s.last_complete_started_at))
        .collect();
    let oldest = ages.iter().flatten().copied().fold(0.0, f64::max);
    let (unit, per_unit) = if oldest >= 72.0 {
        ("days", 24.0)
    } else {
        ("hours", 1.0)
    };
    let bars: Vec<HBar> = data
        .streams
        .iter()
        .zip(&ages)
        .map(|(s, age)| {
            let label = format!("{} · {} · {}", s.provider, s.account, s.scope);
            match age {
                Some(age) => {
                    let value = age / per_unit;
                    HBar {
                        label,
                        segments: vec![(
                            value,
                            provider_class(&s.provider),
                            format!(
                                "last complete sync started {:.1} {unit} before the snapshot",
                                value
                            ),
                        )],
                        interval: None,
                        note: format!("{value:.1} {unit} · {} calls", s.calls),
                    }
                }
                None => HBar {
                    label,
                    segments: Vec::new(),
                    interval: None,
                    note: format!("no complete sync yet · {} calls", s.calls),
                },
            }
        })
        .collect();
    let svg = charts::hbars(
        "Age of each stream's last complete sync",
        &format!("{unit} since the last complete sync began"),
        oldest.max(1.0) / per_unit,
        &bars,
        tick_label,
        &[],
    );
    let rows = data
        .streams
        .iter()
        .map(|s| {
            vec![
                Cell::text(&s.provider),
                Cell::text(&s.account),
                Cell::text(&s.scope),
                Cell::text(&s.base_url),
                Cell::opt_text(&s.last_complete_started_at),
                Cell::opt_text(&s.last_synced_at),
                Cell::int(s.calls),
                Cell::int(s.evaluations),
            ]
        })
        .collect();
    Section {
        id: "freshness",
        title: "Freshness",
        intro: "Each stream (one agent, or a whole account) of each source, with the start of its last complete sync: everything the provider held then is archived. Calls and evaluations count what the archive holds for the stream's agent, whatever the dates chosen.".into(),
        figures: vec![Figure {
            id: "freshness-chart".into(),
            caption: format!("Age of each stream's last complete sync, in {unit} before the snapshot"),
            svg,
        }],
        grid: false,
        tables: vec![Table {
            id: "freshness".into(),
            caption: "Streams".into(),
            collapsed: false,
            columns: columns(&[
                ("provider", "provider"),
                ("account", "account"),
                ("scope", "stream"),
                ("base_url", "source (text, not a link)"),
                ("last_complete_started_at", "last complete sync began"),
                ("last_synced_at", "last synced"),
                ("calls", "calls archived"),
                ("evaluations", "evaluations"),
            ]),
            rows,
        }],
    }
}

/// Calls per provider and day, summed over the agents' groups.
fn calls_per_provider_day(data: &ReportData) -> BTreeMap<String, BTreeMap<NaiveDate, i64>> {
    let mut calls: BTreeMap<String, BTreeMap<NaiveDate, i64>> = BTreeMap::new();
    for g in &data.by_agent_day {
        if let (Some(provider), Some(day)) = (&g.key.provider, day_of(&g.key)) {
            *calls
                .entry(provider.clone())
                .or_default()
                .entry(day)
                .or_default() += g.calls;
        }
    }
    calls
}

fn calls(data: &ReportData, range: (NaiveDate, NaiveDate)) -> Section {
    let per_provider = calls_per_provider_day(data);
    let series: Vec<DaySeries> = per_provider
        .iter()
        .map(|(provider, days)| DaySeries {
            name: provider.clone(),
            class: provider_class(provider),
            values: days.iter().map(|(d, n)| (*d, *n as f64)).collect(),
        })
        .collect();
    let svg = charts::stacked_days(
        "Calls per day, stacked by provider",
        "calls",
        range,
        &series,
        "calls",
        "no calls in this period",
    );
    let summary = per_provider
        .iter()
        .map(|(provider, days)| {
            let total: i64 = days.values().sum();
            let busiest = days
                .iter()
                .max_by_key(|(d, n)| (**n, std::cmp::Reverse(**d)));
            vec![
                Cell::text(provider),
                Cell::int(total),
                Cell::int(days.len() as i64),
                Cell::text(days.keys().next().map_or(MISSING.into(), |d| d.to_string())),
                Cell::text(days.keys().last().map_or(MISSING.into(), |d| d.to_string())),
                Cell::text(busiest.map_or(MISSING.into(), |(d, _)| d.to_string())),
                Cell::int(busiest.map_or(0, |(_, n)| *n)),
            ]
        })
        .collect();
    let all_days: BTreeSet<NaiveDate> = per_provider
        .values()
        .flat_map(|d| d.keys().copied())
        .collect();
    let by_day = all_days
        .iter()
        .map(|day| {
            let mut row = vec![Cell::text(day.to_string())];
            let mut total = 0;
            for days in per_provider.values() {
                let n = days.get(day).copied().unwrap_or(0);
                total += n;
                row.push(Cell::int(n));
            }
            row.push(Cell::int(total));
            row
        })
        .collect();
    let mut day_columns = columns(&[("day", "day")]);
    day_columns.extend(per_provider.keys().map(|p| Column {
        key: p.clone(),
        label: p.clone(),
    }));
    day_columns.extend(columns(&[("total", "total")]));
    Section {
        id: "calls",
        title: "Calls per day",
        intro: "Calls by the UTC day they were created, stacked by provider (stats summary --by agent,day, summed over each provider's agents).".into(),
        figures: vec![Figure {
            id: "calls-chart".into(),
            caption: "Calls per day, stacked by provider".into(),
            svg,
        }],
        grid: false,
        tables: vec![
            Table {
                id: "calls-by-provider".into(),
                caption: "Calls per provider".into(),
                collapsed: false,
                columns: columns(&[
                    ("provider", "provider"),
                    ("calls", "calls"),
                    ("days", "days with calls"),
                    ("first_day", "first day"),
                    ("last_day", "last day"),
                    ("busiest_day", "busiest day"),
                    ("busiest_day_calls", "calls that day"),
                ]),
                rows: summary,
            },
            Table {
                id: "calls-by-day".into(),
                caption: "Calls per day and provider".into(),
                collapsed: true,
                columns: day_columns,
                rows: by_day,
            },
        ],
    }
}

/// The cells of a latency row: its key columns, the measure, n and the percentiles.
fn latency_cells(row: &LatencyRow<'_>, with_day: bool) -> Vec<Cell> {
    let mut cells = vec![
        Cell::opt_text(&row.key.provider),
        Cell::opt_text(&row.key.agent_id),
    ];
    if with_day {
        cells.push(Cell::opt_text(&row.key.day));
    }
    cells.push(Cell::text(LATENCY_MEASURES[row.measure].name));
    cells.push(Cell::int(row.n() as i64));
    for (_, p) in LATENCY_PERCENTILES {
        cells.push(Cell::number(row.percentile(p), 1));
    }
    cells
}

fn latency_columns(with_day: bool) -> Vec<Column> {
    let mut spec = vec![("provider", "provider"), ("agent_id", "agent")];
    if with_day {
        spec.push(("day", "day"));
    }
    spec.extend([
        ("measure", "measure"),
        ("n", "n"),
        ("p50", "p50 ms"),
        ("p90", "p90 ms"),
        ("p95", "p95 ms"),
        ("p99", "p99 ms"),
    ]);
    columns(&spec)
}

fn measures_intro() -> String {
    LATENCY_MEASURES
        .iter()
        .map(|m| format!("{}: {}", m.name, m.label))
        .collect::<Vec<_>>()
        .join("; ")
}

fn latency(data: &ReportData, range: (NaiveDate, NaiveDate)) -> Section {
    let agent_rows = latency_rows(&data.by_agent);
    let day_rows = latency_rows(&data.by_agent_day);
    // One y scale per measure, so the agents' charts compare at a glance.
    let mut top = [0.0f64; LATENCY_MEASURES.len()];
    for row in &day_rows {
        if let Some(p99) = row.percentile(0.99) {
            top[row.measure] = top[row.measure].max(p99);
        }
    }
    let shown = [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)];
    let figures = agent_rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let measure = LATENCY_MEASURES[row.measure].name;
            let series: Vec<DaySeries> = shown
                .iter()
                .map(|(name, p)| DaySeries {
                    name: (*name).into(),
                    class: (*name).into(),
                    values: day_rows
                        .iter()
                        .filter(|d| d.measure == row.measure && same_agent(d.key, row.key))
                        .filter_map(|d| Some((day_of(d.key)?, d.percentile(*p)?)))
                        .collect(),
                })
                .collect();
            let title = agent_label(row.key);
            let scale = Scale::linear(0.0, top[row.measure], 0.0, 0.0);
            Figure {
                id: figure_id("latency", i),
                caption: format!("{title}: {measure}, p50/p95/p99 per day (ms)"),
                svg: charts::day_lines(
                    &format!("{title}: {measure} percentiles per day"),
                    &title,
                    range,
                    scale,
                    &series,
                    &format!("{measure}, ms"),
                ),
            }
        })
        .collect();
    Section {
        id: "latency",
        title: "Latency per agent and day",
        intro: format!(
            "Exact p50, p95 and p99 per agent and UTC day, as stats latency --by agent,day computes them; each chart names its measure ({}).",
            measures_intro()
        ),
        figures,
        grid: true,
        tables: vec![
            Table {
                id: "latency-by-agent".into(),
                caption: "Latency per agent (stats latency --by agent)".into(),
                collapsed: false,
                columns: latency_columns(false),
                rows: agent_rows.iter().map(|r| latency_cells(r, false)).collect(),
            },
            Table {
                id: "latency-by-agent-day".into(),
                caption: "Latency per agent and day (stats latency --by agent,day)".into(),
                collapsed: true,
                columns: latency_columns(true),
                rows: day_rows.iter().map(|r| latency_cells(r, true)).collect(),
            },
        ],
    }
}

fn distribution(data: &ReportData) -> Section {
    let rows = latency_rows(&data.by_agent);
    let figures = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let measure = LATENCY_MEASURES[row.measure].name;
            let title = agent_label(row.key);
            let markers: Vec<(&str, f64)> = [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)]
                .into_iter()
                .filter_map(|(name, p)| Some((name, row.percentile(p)?)))
                .collect();
            Figure {
                id: figure_id("distribution", i),
                caption: format!("{title}: distribution of {measure} ({} samples)", row.n()),
                svg: charts::histogram(
                    &format!("{title}: histogram of {measure}"),
                    &title,
                    row.samples,
                    bins_for(row.samples),
                    &markers,
                    &format!("{measure}, ms"),
                ),
            }
        })
        .collect();
    let table_rows = rows
        .iter()
        .map(|row| {
            vec![
                Cell::opt_text(&row.key.provider),
                Cell::opt_text(&row.key.agent_id),
                Cell::text(LATENCY_MEASURES[row.measure].name),
                Cell::int(row.n() as i64),
                Cell::number(row.samples.first().copied(), 1),
                Cell::number(row.percentile(0.5), 1),
                Cell::number(row.percentile(0.95), 1),
                Cell::number(row.percentile(0.99), 1),
                Cell::number(row.samples.last().copied(), 1),
                Cell::text(match bins_for(row.samples) {
                    Bins::Log => "log",
                    Bins::Linear => "linear",
                }),
            ]
        })
        .collect();
    Section {
        id: "distribution",
        title: "Latency distribution per agent",
        intro: "Every sample of each agent's measure in 40 bins, with its p50, p95 and p99 marked. Where the slowest sample is more than eight times the median, the bins and the axis are logarithmic, so the slow tail stays visible beside the bulk.".into(),
        figures,
        grid: true,
        tables: vec![Table {
            id: "latency-distribution".into(),
            caption: "Spread per agent".into(),
            collapsed: false,
            columns: columns(&[
                ("provider", "provider"),
                ("agent_id", "agent"),
                ("measure", "measure"),
                ("n", "n"),
                ("min", "min ms"),
                ("p50", "p50 ms"),
                ("p95", "p95 ms"),
                ("p99", "p99 ms"),
                ("max", "max ms"),
                ("bins", "bins"),
            ]),
            rows: table_rows,
        }],
    }
}

fn interval_text(hits: i64, n: i64) -> String {
    let (lo, hi) = wilson_interval(hits, n);
    format!("{}–{}", percent(lo), percent(hi))
}

fn hallucination_cells(g: &GroupFigures, with_day: bool) -> Vec<Cell> {
    let mut cells = vec![
        Cell::opt_text(&g.key.provider),
        Cell::opt_text(&g.key.agent_id),
    ];
    if with_day {
        cells.push(Cell::opt_text(&g.key.day));
    }
    cells.extend([
        Cell::int(g.verdicts),
        Cell::int(g.flagged),
        Cell::rate(g.hallucination_rate()),
        Cell::text(interval_text(g.flagged, g.verdicts)),
    ]);
    cells
}

fn hallucination_columns(with_day: bool) -> Vec<Column> {
    let mut spec = vec![("provider", "provider"), ("agent_id", "agent")];
    if with_day {
        spec.push(("day", "day"));
    }
    spec.extend([
        ("n", "n (verdicts)"),
        ("flagged", "flagged"),
        ("rate", "rate"),
        ("interval", "95% interval"),
    ]);
    columns(&spec)
}

fn hallucination(data: &ReportData, range: (NaiveDate, NaiveDate)) -> Section {
    let by_agent = Grouping {
        agent: true,
        day: false,
    };
    let by_agent_day = Grouping {
        agent: true,
        day: true,
    };
    let agents = hallucination_groups(by_agent, &data.by_agent);
    let days = hallucination_groups(by_agent_day, &data.by_agent_day);
    let y_max = days
        .iter()
        .map(|g| wilson_interval(g.flagged, g.verdicts).1)
        .fold(0.05, f64::max)
        .min(1.0);
    let figures = agents
        .iter()
        .enumerate()
        .map(|(i, agent)| {
            let rates: Vec<DayRate> = days
                .iter()
                .filter(|d| same_agent(&d.key, &agent.key))
                .filter_map(|d| {
                    Some(DayRate {
                        day: day_of(&d.key)?,
                        n: d.verdicts,
                        hits: d.flagged,
                        interval: wilson_interval(d.flagged, d.verdicts),
                    })
                })
                .collect();
            let title = agent_label(&agent.key);
            Figure {
                id: figure_id("hallucination", i),
                caption: format!(
                    "{title}: hallucination rate per day, {} overall ({} of {})",
                    agent.hallucination_rate().map_or(MISSING.into(), percent),
                    agent.flagged,
                    agent.verdicts
                ),
                svg: charts::day_rates(
                    &format!("{title}: hallucination rate per day with 95% intervals"),
                    &title,
                    range,
                    y_max,
                    &rates,
                ),
            }
        })
        .collect();
    Section {
        id: "hallucination",
        title: "Hallucination rate per agent and day",
        intro: "Evaluations flagged as hallucinating over evaluations with a verdict, per UTC day (stats hallucination --by agent,day). Each dot is a day's rate, its size grows with the day's verdicts n, and its bar is the 95% Wilson interval: a day with few verdicts shows a long bar, because its rate says little.".into(),
        figures,
        grid: true,
        tables: vec![
            Table {
                id: "hallucination-by-agent".into(),
                caption: "Hallucination per agent (stats hallucination --by agent)".into(),
                collapsed: false,
                columns: hallucination_columns(false),
                rows: agents.iter().map(|g| hallucination_cells(g, false)).collect(),
            },
            Table {
                id: "hallucination-by-agent-day".into(),
                caption: "Hallucination per agent and day (stats hallucination --by agent,day)".into(),
                collapsed: true,
                columns: hallucination_columns(true),
                rows: days.iter().map(|g| hallucination_cells(g, true)).collect(),
            },
        ],
    }
}

fn outcomes(data: &ReportData) -> Section {
    let agents = &data.by_agent;
    let goal_bars: Vec<HBar> = agents
        .iter()
        .filter(|g| g.goal_n > 0)
        .map(|g| {
            let rate = g.goal_ok as f64 / g.goal_n as f64;
            HBar {
                label: agent_label(&g.key),
                segments: vec![(
                    rate,
                    provider_class(g.key.provider.as_deref().unwrap_or("")),
                    format!("goal reached in {} of {} evaluations", g.goal_ok, g.goal_n),
                )],
                interval: Some(wilson_interval(g.goal_ok, g.goal_n)),
                note: format!("{} of {}", percent(rate), g.goal_n),
            }
        })
        .collect();
    let goal_svg = charts::hbars(
        "Goal success rate per agent with 95% intervals",
        "goal success rate",
        1.0,
        &goal_bars,
        |v| format!("{:.0}%", v * 100.0),
        &[],
    );
    let most = agents.iter().map(|g| g.calls).max().unwrap_or(0) as f64;
    let coverage_bars: Vec<HBar> = agents
        .iter()
        .map(|g| HBar {
            label: agent_label(&g.key),
            segments: vec![
                (
                    g.evaluated_calls as f64,
                    "s2".into(),
                    format!("{} calls evaluated", g.evaluated_calls),
                ),
                (
                    g.unevaluated_calls() as f64,
                    "s6".into(),
                    format!("{} calls not evaluated", g.unevaluated_calls()),
                ),
            ],
            interval: None,
            note: format!("{} of {} evaluated", g.evaluated_calls, g.calls),
        })
        .collect();
    let coverage_svg = charts::hbars(
        "Evaluated and unevaluated calls per agent",
        "calls",
        most,
        &coverage_bars,
        tick_label,
        &[
            ("evaluated".into(), "s2".into()),
            ("not evaluated".into(), "s6".into()),
        ],
    );
    let rows = agents
        .iter()
        .map(|g| {
            vec![
                Cell::opt_text(&g.key.provider),
                Cell::opt_text(&g.key.agent_id),
                Cell::int(g.calls),
                Cell::int(g.evaluated_calls),
                Cell::int(g.unevaluated_calls()),
                Cell::rate(g.goal_success_rate()),
                Cell::number(g.mean_sentiment_score(), 3),
                Cell::rate(g.redundancy_rate()),
            ]
        })
        .collect();
    Section {
        id: "outcomes",
        title: "Goal success, sentiment and evaluation coverage",
        intro: "Per agent: the share of evaluations whose goal succeeded (with its 95% interval and its n), the mean sentiment score and redundancy rate, and how many calls have no evaluation at all (stats summary --by agent).".into(),
        figures: vec![
            Figure {
                id: "goal-chart".into(),
                caption: "Goal success rate per agent, of evaluations with a goal verdict".into(),
                svg: goal_svg,
            },
            Figure {
                id: "coverage-chart".into(),
                caption: "Evaluated and unevaluated calls per agent".into(),
                svg: coverage_svg,
            },
        ],
        grid: false,
        tables: vec![Table {
            id: "summary-by-agent".into(),
            caption: "Summary per agent (stats summary --by agent)".into(),
            collapsed: false,
            columns: columns(&[
                ("provider", "provider"),
                ("agent_id", "agent"),
                ("calls", "calls"),
                ("evaluated_calls", "evaluated"),
                ("unevaluated_calls", "not evaluated"),
                ("goal_success_rate", "goal success"),
                ("mean_sentiment_score", "mean sentiment"),
                ("redundancy_rate", "redundancy"),
            ]),
            rows,
        }],
    }
}

fn deletions(data: &ReportData, today: NaiveDate) -> Section {
    let mut modes: Vec<String> = DELETE_MODES.iter().map(|m| (*m).to_string()).collect();
    for d in &data.deletions {
        if !modes.contains(&d.mode) {
            modes.push(d.mode.clone());
        }
    }
    let mut per_mode: BTreeMap<&str, BTreeMap<NaiveDate, f64>> = BTreeMap::new();
    let mut totals: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut per_day: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for d in &data.deletions {
        if let Ok(day) = NaiveDate::parse_from_str(&d.day, "%Y-%m-%d") {
            *per_mode.entry(&d.mode).or_default().entry(day).or_default() += d.calls as f64;
        }
        *totals
            .entry((d.mode.clone(), d.provider.clone()))
            .or_default() += d.calls;
        *per_day
            .entry(d.day.clone())
            .or_default()
            .entry(d.mode.clone())
            .or_default() += d.calls;
    }
    let days: BTreeSet<NaiveDate> = per_mode.values().flat_map(|v| v.keys().copied()).collect();
    let range = match (days.first(), days.last()) {
        (Some(a), Some(b)) => (*a, *b),
        _ => (today, today),
    };
    let series: Vec<DaySeries> = modes
        .iter()
        .filter_map(|m| {
            Some(DaySeries {
                name: m.clone(),
                class: mode_class(m),
                values: per_mode.get(m.as_str())?.clone(),
            })
        })
        .collect();
    let svg = charts::stacked_days(
        "Deletions per day, stacked by mode",
        "calls",
        range,
        &series,
        "calls",
        "no deletions recorded in this period",
    );
    let mut mode_order: Vec<(usize, &(String, String), &i64)> = totals
        .iter()
        .map(|(k, v)| {
            (
                modes.iter().position(|m| *m == k.0).unwrap_or(usize::MAX),
                k,
                v,
            )
        })
        .collect();
    mode_order.sort();
    let by_mode = mode_order
        .into_iter()
        .map(|(_, (mode, provider), calls)| {
            vec![Cell::text(mode), Cell::text(provider), Cell::int(*calls)]
        })
        .collect();
    let by_day = per_day
        .iter()
        .map(|(day, counts)| {
            let mut row = vec![Cell::text(day)];
            for m in &modes {
                row.push(Cell::int(counts.get(m).copied().unwrap_or(0)));
            }
            row.push(Cell::int(counts.values().sum()));
            row
        })
        .collect();
    let mut day_columns = columns(&[("day", "day")]);
    day_columns.extend(modes.iter().map(|m| Column {
        key: m.clone(),
        label: m.clone(),
    }));
    day_columns.extend(columns(&[("total", "total")]));
    Section {
        id: "deletions",
        title: "Deletions over time",
        intro: "Calls removed or cleared per UTC day, by mode, from the audit trail (deleted_calls), which holds no call content: full (the call and its children removed), recording-only (recording fields cleared), redact (transcript and summary dropped, the record kept), upstream (the provider no longer has the call). The dates chosen apply to the day of deletion.".into(),
        figures: vec![Figure {
            id: "deletions-chart".into(),
            caption: "Deletions per day, stacked by mode".into(),
            svg,
        }],
        grid: false,
        tables: vec![
            Table {
                id: "deletions-by-mode".into(),
                caption: "Deletions per mode and provider".into(),
                collapsed: false,
                columns: columns(&[("mode", "mode"), ("provider", "provider"), ("calls", "calls")]),
                rows: by_mode,
            },
            Table {
                id: "deletions-by-day".into(),
                caption: "Deletions per day and mode".into(),
                collapsed: true,
                columns: day_columns,
                rows: by_day,
            },
        ],
    }
}

fn slowest(data: &ReportData) -> Section {
    let mut tables: Vec<Table> = LATENCY_MEASURES
        .iter()
        .enumerate()
        .map(|(measure, m)| {
            let rows: Vec<Vec<Cell>> = data
                .slowest
                .iter()
                .filter(|c| c.measure == measure)
                .enumerate()
                .map(|(rank, c)| {
                    vec![
                        Cell::int(rank as i64 + 1),
                        Cell::text(&c.provider),
                        Cell::text(&c.call_id),
                        Cell::opt_text(&c.agent_id),
                        Cell::opt_text(&c.created_at),
                        Cell::number(Some(c.latency_ms), 1),
                        Cell::int(c.samples as i64),
                    ]
                })
                .collect();
            Table {
                id: format!("slowest-{}", m.name),
                caption: format!("Slowest calls by {}", m.name),
                collapsed: false,
                columns: columns(&[
                    ("rank", "rank"),
                    ("provider", "provider"),
                    ("call_id", "call id"),
                    ("agent_id", "agent"),
                    ("created_at", "created"),
                    ("latency_ms", "latency ms (mean)"),
                    ("samples", "samples"),
                ]),
                rows,
            }
        })
        .collect();
    if tables.iter().any(|t| !t.rows.is_empty()) {
        tables.retain(|t| !t.rows.is_empty());
    } else {
        tables.truncate(1);
    }
    Section {
        id: "slowest",
        title: "Slowest calls",
        intro: format!(
            "The {} slowest calls of each measure, by the mean of the call's samples (its evaluations' agent latency, or its turns' time to first byte), with their ids to look up; no transcript or summary is shown.",
            super::data::SLOWEST_CALLS
        ),
        figures: Vec::new(),
        grid: false,
        tables,
    }
}

/// The number of charts on `page`: one per figure (the latency lines and histograms have one
/// per agent and measure, the hallucination rates one per agent with verdicts).
pub fn chart_count(page: &Page) -> usize {
    page.sections.iter().map(|s| s.figures.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::stats::percentile;

    #[test]
    fn cells_keep_the_exact_value_beside_the_rounded_one() {
        let c = Cell::number(Some(912.345_678), 1);
        assert_eq!(c.text, "912.3");
        assert_eq!(c.exact.as_deref(), Some("912.345678"));
        let r = Cell::rate(Some(0.077_372_262_773_722_63));
        assert_eq!(r.text, "7.7%");
        assert_eq!(
            r.exact.unwrap().parse::<f64>().unwrap(),
            0.077_372_262_773_722_63
        );
        assert_eq!(Cell::rate(None).text, MISSING);
    }

    #[test]
    fn providers_keep_their_colour() {
        assert_eq!(provider_class("bluejay"), "s0");
        assert_eq!(provider_class("ultravox"), "s3");
        assert_eq!(provider_class("other"), "s6");
    }

    #[test]
    fn the_filter_reads_as_words() {
        let filter = CallFilter {
            since: NaiveDate::from_ymd_opt(2026, 10, 1),
            until: None,
            providers: vec!["bluejay".into()],
            agents: Vec::new(),
        };
        assert_eq!(
            describe_filter(&filter),
            "calls created on or after 2026-10-01 (UTC); providers bluejay"
        );
    }

    #[test]
    fn percentiles_of_a_row_are_stats_percentiles() {
        let samples = [1.0, 2.0, 3.0, 4.0];
        let key = GroupKey::default();
        let row = LatencyRow {
            key: &key,
            measure: 0,
            samples: &samples,
        };
        assert_eq!(row.percentile(0.5), percentile(&samples, 0.5));
    }
}
