//! Figures callvault computes itself, exactly (no sketches, no sampling): `stats latency`,
//! `stats hallucination`, `stats summary`, and the per-agent figures of the demo.
//!
//! Agent latency comes in two measures, each row of `stats latency` naming its own:
//! `agent_latency_per_evaluation` (one sample per evaluation, its `avg_agent_latency` in
//! milliseconds: Bluejay) and `tts_ttfb_per_turn` (one sample per transcript turn, its
//! `tts_ttfb` in milliseconds, pooled over every turn of the group's calls, never an average
//! of per-call averages: Cartesia). Percentiles interpolate linearly between the two nearest
//! ranks (numpy's default, DuckDB's `quantile_cont`). Hallucination rate: evaluations flagged, divided by
//! evaluations with a verdict (true or false); evaluations without one are not counted.
//! Summary: calls, calls with an evaluation, goal success rate (evaluations whose goal
//! succeeded / evaluations with a goal verdict), mean sentiment score (over evaluations with
//! a score) and redundancy rate (like hallucination). A group is the call's provider and
//! agent and/or the UTC date of its `created_at`; `since` keeps calls created on or after a
//! date. Latency samples are joined to their calls in memory (a hash of the calls' keys),
//! which is several times faster than SQLite's nested-loop join over a million evaluations.

use chrono::NaiveDate;
use polars::prelude::{DataFrame, PlHashMap};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

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

pub fn agent_figures(conn: &Connection) -> Result<Vec<AgentFigures>, QueryError> {
    let mut agents: Vec<AgentFigures> = conn
        .prepare(
            "SELECT c.provider, c.agent_id, count(DISTINCT c.id),
                    coalesce(sum(e.hallucination IS NOT NULL), 0), coalesce(sum(e.hallucination = 1), 0)
             FROM calls c LEFT JOIN evaluations e ON e.call_seq = c.seq
             WHERE c.agent_id IS NOT NULL
             GROUP BY c.provider, c.agent_id ORDER BY c.provider, c.agent_id",
        )?
        .query_map([], |r| {
            Ok(AgentFigures {
                provider: r.get(0)?,
                agent_id: r.get(1)?,
                calls: r.get(2)?,
                latency_measure: None,
                latency_n: 0,
                latency_p50: None,
                latency_p95: None,
                verdicts: r.get(3)?,
                hallucinations: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut evaluations = conn.prepare(
        "SELECT e.avg_agent_latency FROM evaluations e
         JOIN calls c ON c.seq = e.call_seq
         WHERE c.provider = ?1 AND c.agent_id = ?2 AND e.avg_agent_latency IS NOT NULL",
    )?;
    let mut turns = conn.prepare(
        "SELECT t.tts_ttfb_ms FROM transcript_turns t
         JOIN calls c ON c.seq = t.call_seq
         WHERE c.provider = ?1 AND c.agent_id = ?2 AND t.tts_ttfb_ms IS NOT NULL",
    )?;
    for agent in &mut agents {
        let key = [&agent.provider, &agent.agent_id];
        let mut values: Vec<f64> = evaluations
            .query_map(key, |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        agent.latency_measure = Some(LATENCY_MEASURES[0].0);
        if values.is_empty() {
            values = turns
                .query_map(key, |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            agent.latency_measure = Some(LATENCY_MEASURES[1].0);
        }
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            agent.latency_measure = None;
        }
        values.sort_by(f64::total_cmp);
        agent.latency_n = values.len();
        agent.latency_p50 = percentile(&values, 0.5);
        agent.latency_p95 = percentile(&values, 0.95);
    }
    Ok(agents)
}

/// How `stats` groups: by the call's provider and agent, by its UTC day, both, or neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grouping {
    pub agent: bool,
    pub day: bool,
}

impl Grouping {
    /// The group columns, in output order.
    fn columns(self) -> Vec<(&'static str, &'static str, ColumnKind)> {
        let mut cols = Vec::new();
        if self.agent {
            cols.push(("provider", "c.provider", ColumnKind::Text));
            cols.push(("agent_id", "c.agent_id", ColumnKind::Text));
        }
        if self.day {
            cols.push(("day", "substr(c.created_at, 1, 10)", ColumnKind::Date));
        }
        cols
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

/// What to compute over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsOptions {
    pub by: Grouping,
    /// Keep calls created on or after this UTC date.
    pub since: Option<NaiveDate>,
}

impl StatsOptions {
    fn since_text(&self) -> Option<String> {
        self.since
            .map(|d| format!("{}T00:00:00.000Z", d.format("%Y-%m-%d")))
    }

    /// The `SELECT` list of the groups, their `GROUP BY` expressions, their `ORDER BY` positions.
    fn group_sql(&self) -> (String, String, String) {
        let cols = self.by.columns();
        let select = cols
            .iter()
            .map(|(name, expr, _)| format!("{expr} AS {name}, "))
            .collect();
        let group = cols
            .iter()
            .map(|(_, expr, _)| *expr)
            .collect::<Vec<_>>()
            .join(", ");
        let order = (1..=cols.len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        (select, group, order)
    }
}

/// Runs an aggregate statement built from `sql(select, group_by)`, binding `since` if given.
fn grouped(
    conn: &Connection,
    options: &StatsOptions,
    sql: impl Fn(&str, &str) -> String,
) -> Result<DataFrame, QueryError> {
    let (select, group, order) = options.group_sql();
    let group_by = if group.is_empty() {
        String::new()
    } else {
        format!("GROUP BY {group} ORDER BY {order}")
    };
    let mut stmt = conn.prepare(&sql(&select, &group_by))?;
    if let Some(since) = options.since_text() {
        stmt.raw_bind_parameter(":since", since)?;
    }
    super::frame_of(&mut stmt)
}

fn since_filter(options: &StatsOptions) -> &'static str {
    if options.since.is_some() {
        "AND c.created_at >= :since"
    } else {
        ""
    }
}

/// Hallucination rate per group: `n` evaluations with a verdict, `flagged`, `rate`.
pub fn hallucination(conn: &Connection, options: &StatsOptions) -> Result<DataFrame, QueryError> {
    let filter = since_filter(options);
    grouped(conn, options, |select, group_by| {
        format!(
            "SELECT {select}count(*) AS n, coalesce(sum(e.hallucination = 1), 0) AS flagged,
                    1.0 * coalesce(sum(e.hallucination = 1), 0) / count(*) AS rate
             FROM evaluations e JOIN calls c ON c.seq = e.call_seq
             WHERE e.hallucination IS NOT NULL {filter} {group_by}"
        )
    })
}

/// Calls, evaluated calls, goal success rate, mean sentiment score and redundancy rate per
/// group.
pub fn summary(conn: &Connection, options: &StatsOptions) -> Result<DataFrame, QueryError> {
    let filter = since_filter(options).replacen("AND", "WHERE", 1);
    grouped(conn, options, |select, group_by| {
        format!(
            "WITH ev AS (
                SELECT call_seq,
                       coalesce(sum(goal_success = 1), 0) AS goal_ok, count(goal_success) AS goal_n,
                       sum(sentiment_score) AS sentiment_sum, count(sentiment_score) AS sentiment_n,
                       coalesce(sum(redundancy = 1), 0) AS redundant, count(redundancy) AS redundancy_n
                FROM evaluations GROUP BY call_seq)
             SELECT {select}count(*) AS calls, count(ev.call_seq) AS evaluated_calls,
                    1.0 * sum(ev.goal_ok) / sum(ev.goal_n) AS goal_success_rate,
                    sum(ev.sentiment_sum) / sum(ev.sentiment_n) AS mean_sentiment_score,
                    1.0 * sum(ev.redundant) / sum(ev.redundancy_n) AS redundancy_rate
             FROM calls c LEFT JOIN ev ON ev.call_seq = c.seq
             {filter} {group_by}"
        )
    })
}

/// The text in column `i` of `row`, if it is text.
fn text_at<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r str>, QueryError> {
    Ok(match row.get_ref(i)? {
        ValueRef::Text(t) => std::str::from_utf8(t).ok(),
        _ => None,
    })
}

/// Each call's group by its seq. Evaluations arrive in call_seq order, so the lookups walk a
/// dense array front to back where a hash map of a million calls would miss the cache.
enum GroupsBySeq {
    /// Grown as calls arrive; `calls` counts the slots in use.
    Dense { groups: Vec<u32>, calls: usize },
    /// Seqs far beyond the number of calls (a hand-edited archive) would make the array huge.
    Sparse(PlHashMap<i64, u32>),
}

impl GroupsBySeq {
    const NONE: u32 = u32::MAX;

    fn new() -> Self {
        GroupsBySeq::Dense {
            groups: Vec::new(),
            calls: 0,
        }
    }

    fn insert(&mut self, seq: i64, group: u32) {
        match self {
            GroupsBySeq::Dense { groups, calls } => {
                let slot = usize::try_from(seq)
                    .ok()
                    .filter(|s| *s <= 8 * (*calls + 1) + 1_000_000);
                let Some(slot) = slot else {
                    let mut sparse: PlHashMap<i64, u32> = groups
                        .iter()
                        .enumerate()
                        .filter(|(_, g)| **g != Self::NONE)
                        .map(|(s, g)| (s as i64, *g))
                        .collect();
                    sparse.insert(seq, group);
                    *self = GroupsBySeq::Sparse(sparse);
                    return;
                };
                if slot >= groups.len() {
                    groups.resize(slot + 1, Self::NONE);
                }
                groups[slot] = group;
                *calls += 1;
            }
            GroupsBySeq::Sparse(groups) => {
                groups.insert(seq, group);
            }
        }
    }

    fn get(&self, seq: i64) -> Option<u32> {
        match self {
            GroupsBySeq::Dense { groups, .. } => usize::try_from(seq)
                .ok()
                .and_then(|i| groups.get(i))
                .copied()
                .filter(|g| *g != Self::NONE),
            GroupsBySeq::Sparse(groups) => groups.get(&seq).copied(),
        }
    }
}

/// The latency percentiles `stats latency` reports.
pub const LATENCY_PERCENTILES: [(&str, f64); 4] =
    [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)];

/// What a latency sample is, as `stats latency` names it, and where its samples come from:
/// (name, SQL returning `call_seq` and a latency in milliseconds).
pub const LATENCY_MEASURES: [(&str, &str); 2] = [
    (
        "agent_latency_per_evaluation",
        "SELECT call_seq, avg_agent_latency FROM evaluations
         WHERE call_seq IS NOT NULL AND avg_agent_latency IS NOT NULL",
    ),
    (
        "tts_ttfb_per_turn",
        "SELECT call_seq, tts_ttfb_ms FROM transcript_turns WHERE tts_ttfb_ms IS NOT NULL",
    ),
];

/// A group's values, in the order of `Grouping::columns`.
type GroupKey = Vec<Option<String>>;

/// A group's samples of each of `LATENCY_MEASURES`.
type MeasureSamples = [Vec<f64>; LATENCY_MEASURES.len()];

/// Exact agent latency percentiles per group and measure: `measure`, `n` samples, `p50`,
/// `p90`, `p95`, `p99` (ms).
pub fn latency(conn: &Connection, options: &StatsOptions) -> Result<DataFrame, QueryError> {
    // Its reads are several statements: one read transaction gives them one snapshot, so a
    // sync writing meanwhile cannot leave a call counted by one and missed by another.
    let _snapshot = conn.unchecked_transaction()?;
    let by = options.by;
    let mut group_index: PlHashMap<String, u32> = PlHashMap::default();
    let mut groups: Vec<(GroupKey, MeasureSamples)> = Vec::new();
    let mut key = String::new();
    // Two narrow reads that SQLite answers from covering indexes (the calls rows themselves,
    // with their raw JSON, are large): each call's group by its seq, then the evaluations'
    // (call_seq, latency) pairs.
    let mut group_of_seq = GroupsBySeq::new();
    let groups_sql = format!(
        "SELECT c.seq, c.provider, c.agent_id, substr(c.created_at, 1, 10) FROM calls c
         WHERE 1 {}",
        since_filter(options)
    );
    let mut stmt = conn.prepare(&groups_sql)?;
    if let Some(since) = options.since_text() {
        stmt.raw_bind_parameter(":since", since)?;
    }
    let mut rows = stmt.raw_query();
    // The index hands calls over in (provider, agent, time) order, so a call mostly falls in
    // the group of the one before it: only a new key is looked up.
    let mut last_key = String::new();
    let mut last_group: Option<u32> = None;
    while let Some(row) = rows.next()? {
        let Some(seq) = row.get::<_, Option<i64>>(0)? else {
            continue;
        };
        let mut parts: [Option<&str>; 3] = [None; 3];
        let mut used = 0;
        if by.agent {
            parts[0] = Some(text_at(row, 1)?.unwrap_or(""));
            parts[1] = text_at(row, 2)?;
            used = 2;
        }
        if by.day {
            parts[used] = text_at(row, 3)?;
            used += 1;
        }
        let parts = &parts[..used];
        key.clear();
        for part in parts {
            match part {
                Some(p) => key.push_str(p),
                None => key.push('\u{1}'),
            }
            key.push('\0');
        }
        let group = match last_group {
            Some(g) if key == last_key => g,
            _ => {
                let g = match group_index.get(key.as_str()) {
                    Some(g) => *g,
                    None => {
                        let g = groups.len() as u32;
                        groups.push((
                            parts.iter().map(|p| p.map(str::to_string)).collect(),
                            MeasureSamples::default(),
                        ));
                        group_index.insert(key.clone(), g);
                        g
                    }
                };
                last_key.clone_from(&key);
                last_group = Some(g);
                g
            }
        };
        group_of_seq.insert(seq, group);
    }
    drop(rows);
    drop(stmt);

    for (measure, (_, sql)) in LATENCY_MEASURES.iter().enumerate() {
        let mut stmt = conn.prepare(sql)?;
        let mut samples = stmt.raw_query();
        while let Some(row) = samples.next()? {
            // No such call, or one outside --since: no group.
            let Some(group) = group_of_seq.get(row.get(0)?) else {
                continue;
            };
            let value = match row.get_ref(1)? {
                ValueRef::Real(f) => f,
                ValueRef::Integer(i) => i as f64,
                _ => continue,
            };
            if value.is_finite() {
                groups[group as usize].1[measure].push(value);
            }
        }
    }

    groups.retain(|(_, samples)| samples.iter().any(|s| !s.is_empty()));
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let group_cols = by.columns();
    let mut names: Vec<String> = group_cols.iter().map(|c| c.0.to_string()).collect();
    let mut kinds: Vec<ColumnKind> = group_cols.iter().map(|c| c.2).collect();
    names.push("measure".into());
    kinds.push(ColumnKind::Text);
    names.push("n".into());
    kinds.push(ColumnKind::Integer);
    for (name, _) in LATENCY_PERCENTILES {
        names.push(name.into());
        kinds.push(ColumnKind::Float);
    }
    let rows = groups
        .iter()
        .map(|(_, s)| s.iter().filter(|v| !v.is_empty()).count())
        .sum();
    let mut frame = FrameBuilder::new(names, kinds, rows);
    for (parts, samples) in &mut groups {
        for (measure, values) in samples.iter_mut().enumerate() {
            if values.is_empty() {
                continue;
            }
            values.sort_unstable_by(f64::total_cmp);
            let mut row: Vec<ValueRef<'_>> = parts
                .iter()
                .map(|p| match p {
                    Some(t) => ValueRef::Text(t.as_bytes()),
                    None => ValueRef::Null,
                })
                .collect();
            row.push(ValueRef::Text(LATENCY_MEASURES[measure].0.as_bytes()));
            row.push(ValueRef::Integer(values.len() as i64));
            for (_, p) in LATENCY_PERCENTILES {
                row.push(match percentile(values, p) {
                    Some(v) => ValueRef::Real(v),
                    None => ValueRef::Null,
                });
            }
            frame.push(row)?;
        }
    }
    Ok(frame.take()?)
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
            since: None,
        };
        latency(&conn, &options).unwrap()
    }

    /// Each row of a `latency --by agent,day` frame: (agent, day) to (measure, n, p50, p90,
    /// p95, p99).
    type LatencyRows = BTreeMap<(String, String), (String, i64, [f64; 4])>;

    fn latency_rows(df: &DataFrame) -> LatencyRows {
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

        let dense = latency_rows(&latency_by_agent_day(&path));
        assert!(close(&dense), "dense: {dense:?}\nexpected: {expected:?}");
        // A seq far beyond the number of calls switches the seq map to a hash map.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "UPDATE calls SET seq = 1000000000000 WHERE id = 'c07';
             UPDATE evaluations SET call_seq = 1000000000000 WHERE call_id = 'c07';",
        )
        .unwrap();
        drop(conn);
        let sparse = latency_rows(&latency_by_agent_day(&path));
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
