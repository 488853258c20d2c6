//! The page: `ReportData` turned into sections, each with its charts and, under them, the
//! figures as tables, rendered by the `page.html` template.
//!
//! Every number in a table comes from the same `GroupFigures` methods and row functions that
//! `stats` prints (`stats::latency_rows`, `hallucination_groups`, `goal_success_rate`, ...).
//! A table cell shows a rounded value and, in `data-v`, the exact one as `stats --format
//! json` prints it, so a reader (or a test) can check one against the other. Long per-day
//! tables sit in a closed `<details>` under a short per-agent one.

use std::collections::BTreeSet;

use askama::Template;
use chrono::{NaiveDate, Utc};

use super::charts::percent;
use super::data::ReportData;
use super::svg::Svg;
use super::{agents, archive};
use crate::providers::ProviderKind;
use crate::query::stats::{CallFilter, GroupKey};

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
    /// `num` (right-aligned figures) or `time` (never broken across lines).
    pub class: Option<&'static str>,
}

/// A cell for a missing figure (SQL NULL).
pub(super) const MISSING: &str = "–";

impl Cell {
    pub(super) fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            exact: None,
            class: None,
        }
    }

    pub(super) fn opt_text(text: &Option<String>) -> Cell {
        Cell::text(text.clone().unwrap_or_else(|| MISSING.into()))
    }

    /// An archive time (or a dash).
    pub(super) fn time(text: &Option<String>) -> Cell {
        Cell {
            class: Some("time"),
            ..Cell::opt_text(text)
        }
    }

    pub(super) fn int(n: i64) -> Cell {
        Cell {
            text: n.to_string(),
            exact: None,
            class: Some("num"),
        }
    }

    /// A number shown with `decimals` decimals.
    pub(super) fn number(v: Option<f64>, decimals: usize) -> Cell {
        match v {
            Some(v) => Cell {
                text: format!("{v:.decimals$}"),
                exact: Some(v.to_string()),
                class: Some("num"),
            },
            None => Cell {
                text: MISSING.into(),
                exact: None,
                class: Some("num"),
            },
        }
    }

    /// A rate (0..1) shown as a percentage.
    pub(super) fn rate(v: Option<f64>) -> Cell {
        match v {
            Some(v) => Cell {
                text: percent(v),
                exact: Some(v.to_string()),
                class: Some("num"),
            },
            None => Cell::number(None, 0),
        }
    }
}

pub(super) fn columns(spec: &[(&str, &str)]) -> Vec<Column> {
    spec.iter()
        .map(|(key, label)| Column {
            key: (*key).into(),
            label: (*label).into(),
        })
        .collect()
}

/// The CSS class that colours a provider in every chart.
pub(super) fn provider_class(provider: &str) -> String {
    let index = ProviderKind::ALL
        .iter()
        .position(|k| k.as_str() == provider)
        .unwrap_or(6);
    format!("s{index}")
}

pub(super) fn agent_label(key: &GroupKey) -> String {
    format!(
        "{} · {}",
        key.provider.as_deref().unwrap_or(MISSING),
        key.agent_id.as_deref().unwrap_or("(no agent)")
    )
}

pub(super) fn day_of(key: &GroupKey) -> Option<NaiveDate> {
    key.day
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// The same agent: provider and agent id.
pub(super) fn same_agent(a: &GroupKey, b: &GroupKey) -> bool {
    a.provider == b.provider && a.agent_id == b.agent_id
}

/// An id for HTML made of a group's key, unique within the page.
pub(super) fn figure_id(prefix: &str, index: usize) -> String {
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
            archive::freshness(data, snapshot),
            archive::calls(data, range),
            agents::latency(data, range),
            agents::distribution(data),
            agents::hallucination(data, range),
            agents::outcomes(data),
            archive::deletions(data, today),
            archive::slowest(data),
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

/// The number of charts on `page`: one per figure (the latency lines and histograms have one
/// per agent and measure, the hallucination rates one per agent with verdicts).
pub fn chart_count(page: &Page) -> usize {
    page.sections.iter().map(|s| s.figures.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
