//! Figures callvault computes itself, exactly (no sketches, no sampling): `stats latency`,
//! `stats hallucination`, `stats summary`, the per-agent figures of the demo, and every figure
//! of the report. All of them come from one read of the archive (`pass::read`), which fills a
//! `GroupFigures` per group; the rows of each figure are functions of those groups, so the
//! report's tables and `stats` print the same numbers from the same code.
//!
//! Agent latency comes in two measures, each row of `stats latency` naming its own:
//! `agent_latency_per_evaluation` (one sample per evaluation, its `avg_agent_latency` in
//! milliseconds: Bluejay) and `tts_ttfb_per_turn` (one sample per transcript turn, its
//! `tts_ttfb` in milliseconds, pooled over every turn of the group's calls, never an average
//! of per-call averages: Cartesia). Percentiles interpolate linearly between the two nearest
//! ranks (numpy's default, DuckDB's `quantile_cont`). Hallucination rate: evaluations flagged,
//! divided by evaluations with a verdict (true or false); evaluations without one are not
//! counted. Summary: calls, calls with an evaluation, goal success rate (evaluations whose goal
//! succeeded / evaluations with a goal verdict), mean sentiment score (over evaluations with
//! a score) and redundancy rate (like hallucination). A group is the call's provider and
//! agent and/or the UTC date of its `created_at`; a `CallFilter` keeps calls created within
//! dates, of some providers, of some agents (`stats` offers `--since`; the report all four).

mod pass;

use chrono::NaiveDate;
use polars::prelude::DataFrame;
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

pub use pass::{read, Figures, GroupFigures, GroupKey, Reads, SlowCall, SqlSum};

use super::frame::{ColumnKind, FrameBuilder};
use super::QueryError;

/// The `p` quantile (0..=1) of sorted, finite `values`, interpolating between ranks.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// Per-agent figures the demo prints.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentFigures {
    pub provider: String,
    pub agent_id: String,
    pub calls: i64,
    /// Which latency the figures are (`LATENCY_MEASURES`): the evaluations' where the agent
    /// has any, else its calls' per-turn time to first byte; `None` without either.
    pub latency_measure: Option<&'static str>,
    pub latency_n: usize,
    pub latency_p50: Option<f64>,
    pub latency_p95: Option<f64>,
    pub verdicts: i64,
    pub hallucinations: i64,
}

impl AgentFigures {
    pub fn hallucination_rate(&self) -> Option<f64> {
        (self.verdicts > 0).then(|| self.hallucinations as f64 / self.verdicts as f64)
    }
}

/// Every agent's figures (calls without an agent are left out).
pub fn agent_figures(conn: &Connection) -> Result<Vec<AgentFigures>, QueryError> {
    let by_agent = Grouping {
        agent: true,
        day: false,
    };
    let reads = Reads {
        turns: true,
        slowest: 0,
    };
    let figures = read(conn, &CallFilter::default(), &[by_agent], reads)?;
    Ok(figures
        .groupings
        .into_iter()
        .flatten()
        .filter_map(|group| {
            let provider = group.key.provider.clone()?;
            let agent_id = group.key.agent_id.clone()?;
            let measure = group.latency.iter().position(|s| !s.is_empty());
            let samples: &[f64] = measure.map_or(&[], |m| &group.latency[m]);
            Some(AgentFigures {
                provider,
                agent_id,
                calls: group.calls,
                latency_measure: measure.map(|m| LATENCY_MEASURES[m].name),
                latency_n: samples.len(),
                latency_p50: percentile(samples, 0.5),
                latency_p95: percentile(samples, 0.95),
                verdicts: group.verdicts,
                hallucinations: group.flagged,
            })
        })
        .collect())
}

/// How `stats` groups: by the call's provider and agent, by its UTC day, both, or neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grouping {
    pub agent: bool,
    pub day: bool,
}

impl Grouping {
    /// The group columns, in output order, with the type SQLite declares for each.
    fn columns(self) -> Vec<(&'static str, ColumnKind, Option<&'static str>)> {
        let mut cols = Vec::new();
        if self.agent {
            cols.push(("provider", ColumnKind::Text, Some("TEXT")));
            cols.push(("agent_id", ColumnKind::Text, Some("TEXT")));
        }
        if self.day {
            cols.push(("day", ColumnKind::Date, None));
        }
        cols
    }

    /// A group's key as values, in the order of `columns`.
    fn key_values(self, key: &GroupKey) -> Vec<Value> {
        let text = |t: &Option<String>| t.clone().map_or(Value::Null, Value::Text);
        let mut values = Vec::new();
        if self.agent {
            values.push(text(&key.provider));
            values.push(text(&key.agent_id));
        }
        if self.day {
            values.push(text(&key.day));
        }
        values
    }
}

/// Parses `--by`: `agent`, `day`, or `agent,day` (either order).
pub fn parse_grouping(text: &str) -> Result<Grouping, String> {
    let mut g = Grouping::default();
    for part in text.split(',').map(str::trim) {
        match part {
            "agent" => g.agent = true,
            "day" => g.day = true,
            other => return Err(format!("'{other}' is not agent or day")),
        }
    }
    Ok(g)
}

/// Which calls the figures cover; empty lists keep every provider and agent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Keep calls created on or after this UTC date.
    pub since: Option<NaiveDate>,
    /// Keep calls created on or before this UTC date.
    pub until: Option<NaiveDate>,
    pub providers: Vec<String>,
    pub agents: Vec<String>,
}

impl CallFilter {
    fn since_text(&self) -> Option<String> {
        self.since.map(day_start)
    }

    /// The start of the day after `until`: `until` is kept whole.
    fn until_text(&self) -> Option<String> {
        self.until
            .map(|d| d.succ_opt().map_or_else(|| "9999".to_string(), day_start))
    }

    /// `AND` conditions on the call `c`, with named parameters `bind` fills.
    pub(crate) fn sql(&self) -> String {
        self.sql_for("c", "created_at")
    }

    /// `AND` conditions on rows `alias` of a table with `provider` and `agent_id` columns,
    /// whose dates are those of `time_column`.
    pub(crate) fn sql_for(&self, alias: &str, time_column: &str) -> String {
        let mut sql = String::new();
        if self.since.is_some() {
            sql.push_str(&format!(" AND {alias}.{time_column} >= :since"));
        }
        if self.until.is_some() {
            sql.push_str(&format!(" AND {alias}.{time_column} < :until"));
        }
        let list = |name: &str, n: usize| {
            (0..n)
                .map(|i| format!(":{name}{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.providers.is_empty() {
            sql.push_str(&format!(
                " AND {alias}.provider IN ({})",
                list("provider", self.providers.len())
            ));
        }
        if !self.agents.is_empty() {
            sql.push_str(&format!(
                " AND {alias}.agent_id IN ({})",
                list("agent", self.agents.len())
            ));
        }
        sql
    }
}

/// The archive's time text of the start of UTC day `d`.
fn day_start(d: NaiveDate) -> String {
    format!("{}T00:00:00.000Z", d.format("%Y-%m-%d"))
}

/// What to compute over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsOptions {
    pub by: Grouping,
    pub filter: CallFilter,
}

/// The latency percentiles `stats latency` reports.
pub const LATENCY_PERCENTILES: [(&str, f64); 4] =
    [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)];

/// What a latency sample is, as `stats latency` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyMeasure {
    /// The `measure` column's value.
    pub name: &'static str,
    /// What a sample is, for people.
    pub label: &'static str,
}

/// The measures, in the order of `GroupFigures::latency`.
pub const LATENCY_MEASURES: [LatencyMeasure; 2] = [
    LatencyMeasure {
        name: "agent_latency_per_evaluation",
        label: "agent latency, one sample per evaluation (its avg_agent_latency)",
    },
    LatencyMeasure {
        name: "tts_ttfb_per_turn",
        label: "text-to-speech time to first byte, one sample per transcript turn",
    },
];

/// One row of `stats latency`: a group's exact percentiles of one measure (ms).
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyRow<'g> {
    pub key: &'g GroupKey,
    pub measure: usize,
    pub samples: &'g [f64],
}

impl LatencyRow<'_> {
    pub fn n(&self) -> usize {
        self.samples.len()
    }

    pub fn percentile(&self, p: f64) -> Option<f64> {
        percentile(self.samples, p)
    }
}

/// The rows of `stats latency`: one per group and measure with samples.
pub fn latency_rows(groups: &[GroupFigures]) -> Vec<LatencyRow<'_>> {
    groups
        .iter()
        .flat_map(|g| {
            g.latency
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.is_empty())
                .map(move |(measure, samples)| LatencyRow {
                    key: &g.key,
                    measure,
                    samples,
                })
        })
        .collect()
}

impl GroupFigures {
    /// Flagged evaluations over evaluations with a verdict.
    pub fn hallucination_rate(&self) -> Option<f64> {
        ratio(self.flagged, self.verdicts)
    }

    pub fn goal_success_rate(&self) -> Option<f64> {
        ratio(self.goal_ok, self.goal_n)
    }

    pub fn redundancy_rate(&self) -> Option<f64> {
        ratio(self.redundant, self.redundancy_n)
    }

    pub fn mean_sentiment_score(&self) -> Option<f64> {
        let sum = self.sentiment.value()?;
        (self.sentiment_n > 0).then(|| sum / self.sentiment_n as f64)
    }

    pub fn unevaluated_calls(&self) -> i64 {
        self.calls - self.evaluated_calls
    }
}

/// `1.0 * part / whole` as SQL computes it: NULL for a zero whole.
fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole != 0).then(|| part as f64 / whole as f64)
}

/// The groups `stats hallucination` has a row for: those with a verdict, or the one overall
/// group (as SQL's aggregate without `GROUP BY`, which always returns a row).
pub fn hallucination_groups(by: Grouping, groups: &[GroupFigures]) -> Vec<&GroupFigures> {
    let overall = by == Grouping::default();
    groups
        .iter()
        .filter(|g| overall || g.verdicts > 0)
        .collect()
}

fn real(v: Option<f64>) -> Value {
    v.map_or(Value::Null, Value::Real)
}

/// Exact agent latency percentiles per group and measure: `measure`, `n` samples, `p50`,
/// `p90`, `p95`, `p99` (ms).
pub fn latency(conn: &Connection, options: &StatsOptions) -> Result<DataFrame, QueryError> {
    let reads = Reads {
        turns: true,
        slowest: 0,
    };
    let figures = read(conn, &options.filter, &[options.by], reads)?;
    latency_frame(options.by, latency_rows(&figures.groupings[0]))
}

/// The frame of `stats latency` from its rows.
pub fn latency_frame(by: Grouping, rows: Vec<LatencyRow<'_>>) -> Result<DataFrame, QueryError> {
    let group_cols = by.columns();
    let mut names: Vec<String> = group_cols.iter().map(|c| c.0.to_string()).collect();
    let mut kinds: Vec<ColumnKind> = group_cols.iter().map(|c| c.1).collect();
    names.push("measure".into());
    kinds.push(ColumnKind::Text);
    names.push("n".into());
    kinds.push(ColumnKind::Integer);
    for (name, _) in LATENCY_PERCENTILES {
        names.push(name.into());
        kinds.push(ColumnKind::Float);
    }
    let mut frame = FrameBuilder::new(names, kinds, rows.len());
    for row in &rows {
        let mut values = by.key_values(row.key);
        values.push(Value::Text(LATENCY_MEASURES[row.measure].name.into()));
        values.push(Value::Integer(row.n() as i64));
        for (_, p) in LATENCY_PERCENTILES {
            values.push(real(row.percentile(p)));
        }
        frame.push(values.iter().map(ValueRef::from))?;
    }
    Ok(frame.take()?)
}

/// A frame of `stats` rows whose columns are typed from their values, as for the same rows
/// read from SQL (the group columns declared TEXT, the figures undeclared).
fn inferred_frame(
    by: Grouping,
    figure_names: &[&str],
    rows: Vec<Vec<Value>>,
) -> Result<DataFrame, QueryError> {
    let group_cols = by.columns();
    let mut names: Vec<String> = group_cols.iter().map(|c| c.0.to_string()).collect();
    let mut decl: Vec<Option<String>> =
        group_cols.iter().map(|c| c.2.map(str::to_string)).collect();
    for name in figure_names {
        names.push((*name).to_string());
        decl.push(None);
    }
    super::frame_of_values(names, &decl, &rows)
}

/// Hallucination rate per group: `n` evaluations with a verdict, `flagged`, `rate`.
pub fn hallucination(conn: &Connection, options: &StatsOptions) -> Result<DataFrame, QueryError> {
    let figures = read(conn, &options.filter, &[options.by], Reads::default())?;
    hallucination_frame(options.by, &figures.groupings[0])
}

/// The frame of `stats hallucination` from a grouping's groups.
pub fn hallucination_frame(by: Grouping, groups: &[GroupFigures]) -> Result<DataFrame, QueryError> {
    let rows = hallucination_groups(by, groups)
        .into_iter()
        .map(|g| {
            let mut row = by.key_values(&g.key);
            row.push(Value::Integer(g.verdicts));
            row.push(Value::Integer(g.flagged));
            row.push(real(g.hallucination_rate()));
            row
        })
        .collect();
    inferred_frame(by, &["n", "flagged", "rate"], rows)
}

/// Calls, evaluated calls, goal success rate, mean sentiment score and redundancy rate per
/// group.
pub fn summary(conn: &Connection, options: &StatsOptions) -> Result<DataFrame, QueryError> {
    let figures = read(conn, &options.filter, &[options.by], Reads::default())?;
    summary_frame(options.by, &figures.groupings[0])
}

/// The frame of `stats summary` from a grouping's groups.
pub fn summary_frame(by: Grouping, groups: &[GroupFigures]) -> Result<DataFrame, QueryError> {
    let rows = groups
        .iter()
        .map(|g| {
            let mut row = by.key_values(&g.key);
            row.push(Value::Integer(g.calls));
            row.push(Value::Integer(g.evaluated_calls));
            row.push(real(g.goal_success_rate()));
            row.push(real(g.mean_sentiment_score()));
            row.push(real(g.redundancy_rate()));
            row
        })
        .collect();
    inferred_frame(
        by,
        &[
            "calls",
            "evaluated_calls",
            "goal_success_rate",
            "mean_sentiment_score",
            "redundancy_rate",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use polars::prelude::DataType;

    use super::*;
    use crate::providers::bluejay::parse_call_log;
    use crate::providers::ProviderKind;
    use crate::store::Archive;

    fn latency_by_agent_day(path: &std::path::Path) -> DataFrame {
        let conn = Archive::open_read_only(path).unwrap();
        let options = StatsOptions {
            by: Grouping {
                agent: true,
                day: true,
            },
            filter: CallFilter::default(),
        };
        latency(&conn, &options).unwrap()
    }

    /// Each row of a `latency --by agent,day` frame: (agent, day) to (measure, n, p50, p90,
    /// p95, p99).
    type LatencyRows = BTreeMap<(String, String), (String, i64, [f64; 4])>;

    fn frame_rows(df: &DataFrame) -> LatencyRows {
        let text = |name: &str| {
            let column = df.column(name).unwrap().cast(&DataType::String).unwrap();
            (0..df.height())
                .map(|i| column.str().unwrap().get(i).unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let float = |name: &str| {
            let column = df.column(name).unwrap().f64().unwrap().clone();
            (0..df.height())
                .map(|i| column.get(i).unwrap())
                .collect::<Vec<_>>()
        };
        let (agents, days, measures) = (text("agent_id"), text("day"), text("measure"));
        let n = df.column("n").unwrap().i64().unwrap().clone();
        let ps = [float("p50"), float("p90"), float("p95"), float("p99")];
        (0..df.height())
            .map(|i| {
                (
                    (agents[i].clone(), days[i].clone()),
                    (
                        measures[i].clone(),
                        n.get(i).unwrap(),
                        [ps[0][i], ps[1][i], ps[2][i], ps[3][i]],
                    ),
                )
            })
            .collect()
    }

    #[test]
    fn dense_and_sparse_seq_maps_give_the_figures_of_a_plain_computation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let mut archive = Archive::open(&path).unwrap();
        let (stream, run) = crate::store::test_stream(&mut archive, ProviderKind::Bluejay, "a");
        let sample = |i: u32| (format!("a{}", i % 3), 1 + i % 4, 100 + i * 7 % 23);
        let calls: Vec<_> = (1..=40)
            .map(|i| {
                let (agent, day, latency) = sample(i);
                parse_call_log(&format!(
                    r#"{{"id":"c{i:02}","agent_id":"{agent}","created_at":"2026-01-0{day}T00:00:00Z",
                        "evaluations":[{{"id":"e{i}","avg_agent_latency":{latency}}}]}}"#
                ))
                .unwrap()
            })
            .collect();
        archive
            .write_page(&stream, run, &crate::store::PageWrite::of_calls(calls))
            .unwrap();
        drop(archive);

        // The reference: each group's samples sorted, and each percentile interpolated
        // between the two nearest ranks, written out here.
        let mut groups: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        for i in 1..=40 {
            let (agent, day, latency) = sample(i);
            groups
                .entry((agent, format!("2026-01-0{day}")))
                .or_default()
                .push(f64::from(latency));
        }
        let expected: LatencyRows = groups
            .into_iter()
            .map(|(key, mut values)| {
                values.sort_by(|a, b| a.partial_cmp(b).unwrap());
                let at = |p: f64| {
                    let rank = p * (values.len() - 1) as f64;
                    let below = rank.floor() as usize;
                    let above = (below + 1).min(values.len() - 1);
                    values[below] + (rank - below as f64) * (values[above] - values[below])
                };
                let figures = [at(0.5), at(0.9), at(0.95), at(0.99)];
                let measure = "agent_latency_per_evaluation".to_string();
                (key, (measure, values.len() as i64, figures))
            })
            .collect();
        assert_eq!(expected.len(), 12, "3 agents x 4 days");
        let close = |got: &LatencyRows| {
            got.len() == expected.len()
                && got.iter().zip(&expected).all(|((k, g), (ek, e))| {
                    k == ek
                        && g.0 == e.0
                        && g.1 == e.1
                        && g.2.iter().zip(e.2).all(|(a, b)| (a - b).abs() < 1e-9)
                })
        };

        let dense = frame_rows(&latency_by_agent_day(&path));
        assert!(close(&dense), "dense: {dense:?}\nexpected: {expected:?}");
        // A seq far beyond the number of calls switches the seq map to a hash map.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "BEGIN; PRAGMA defer_foreign_keys = ON;
             UPDATE calls SET seq = 1000000000000 WHERE id = 'c07';
             UPDATE evaluations SET call_seq = 1000000000000 WHERE call_id = 'c07';
             COMMIT;",
        )
        .unwrap();
        drop(conn);
        let sparse = frame_rows(&latency_by_agent_day(&path));
        assert!(close(&sparse), "sparse: {sparse:?}\nexpected: {expected:?}");
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), Some(2.5));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 1.0), Some(4.0));
        assert!((percentile(&v, 0.95).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
