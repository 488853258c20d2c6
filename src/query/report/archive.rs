//! The sections about what the archive holds and how it changed: freshness of each stream,
//! calls per day, deletions over time, and the slowest calls by id.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};

use super::charts::{self, DaySeries, HBar};
use super::data::{ReportData, DELETE_MODES, SLOWEST_CALLS};
use super::page::{columns, day_of, provider_class, Cell, Column, Figure, Section, Table, MISSING};
use super::svg::tick_label;
use crate::query::stats::LATENCY_MEASURES;

/// The CSS class that colours a delete mode.
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

pub(super) fn freshness(data: &ReportData, snapshot: Option<DateTime<Utc>>) -> Section {
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
        oldest.max(0.1) / per_unit,
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
                Cell::time(&s.last_complete_started_at),
                Cell::time(&s.last_synced_at),
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

pub(super) fn calls(data: &ReportData, range: (NaiveDate, NaiveDate)) -> Section {
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
pub(super) fn deletions(data: &ReportData, today: NaiveDate) -> Section {
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

pub(super) fn slowest(data: &ReportData) -> Section {
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
                        Cell::time(&c.created_at),
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
            SLOWEST_CALLS
        ),
        figures: Vec::new(),
        grid: false,
        tables,
    }
}
