//! Figures callvault computes itself, exactly (no sketches, no sampling).
//!
//! Agent latency: one sample per evaluation, its `avg_agent_latency` in milliseconds.
//! Percentiles interpolate linearly between the two nearest ranks (numpy's default,
//! DuckDB's `quantile_cont`). Hallucination rate: evaluations flagged, divided by
//! evaluations with a verdict (true or false); evaluations without one are not counted.

use rusqlite::Connection;

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
             FROM calls c LEFT JOIN evaluations e ON e.provider = c.provider AND e.call_id = c.id
             WHERE c.agent_id IS NOT NULL
             GROUP BY c.provider, c.agent_id ORDER BY c.provider, c.agent_id",
        )?
        .query_map([], |r| {
            Ok(AgentFigures {
                provider: r.get(0)?,
                agent_id: r.get(1)?,
                calls: r.get(2)?,
                latency_n: 0,
                latency_p50: None,
                latency_p95: None,
                verdicts: r.get(3)?,
                hallucinations: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT e.avg_agent_latency FROM evaluations e
         JOIN calls c ON c.provider = e.provider AND c.id = e.call_id
         WHERE c.provider = ?1 AND c.agent_id = ?2 AND e.avg_agent_latency IS NOT NULL",
    )?;
    for agent in &mut agents {
        let mut values: Vec<f64> = stmt
            .query_map([&agent.provider, &agent.agent_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        values.retain(|v| v.is_finite());
        values.sort_by(f64::total_cmp);
        agent.latency_n = values.len();
        agent.latency_p50 = percentile(&values, 0.5);
        agent.latency_p95 = percentile(&values, 0.95);
    }
    Ok(agents)
}

#[cfg(test)]
mod tests {
    use super::*;

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
