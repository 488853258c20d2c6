//! The sections about how the agents do: latency percentiles per day, latency distributions,
//! hallucination rates with their intervals, goal success and evaluation coverage. Every
//! number comes from `stats`' rows and `GroupFigures` methods.

use chrono::NaiveDate;

use super::charts::{self, bins_for, percent, wilson_interval, Bins, DayRate, DaySeries, HBar};
use super::data::ReportData;
use super::page::{
    agent_label, columns, day_of, figure_id, provider_class, same_agent, Cell, Column, Figure,
    Section, Table, MISSING,
};
use super::svg::{tick_label, Scale};
use crate::query::stats::{
    hallucination_groups, latency_rows, GroupFigures, Grouping, LatencyRow, LATENCY_MEASURES,
    LATENCY_PERCENTILES,
};
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

pub(super) fn latency(data: &ReportData, range: (NaiveDate, NaiveDate)) -> Section {
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

pub(super) fn distribution(data: &ReportData) -> Section {
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

pub(super) fn hallucination(data: &ReportData, range: (NaiveDate, NaiveDate)) -> Section {
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

pub(super) fn outcomes(data: &ReportData) -> Section {
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
