//! What the report shows, read from the archive in one read transaction (one snapshot):
//! the figures of `stats` by agent and by agent and day (`stats::read`), the streams as
//! `status` lists them, deletions per day and mode from the audit trail, and the slowest calls
//! with their ids.
//!
//! Nothing here reads call content: the audit trail holds none, and a slow call is shown by
//! its ids, agent, time and latency only (no transcript, summary or recording).

use rusqlite::Connection;

use crate::query::output::Provenance;
use crate::query::stats::{self, CallFilter, GroupFigures, Grouping, Reads};
use crate::query::{snapshot, QueryError};
use crate::store::{stream_summaries, StreamSummary};

/// How many of the slowest calls of each latency measure the report lists.
pub const SLOWEST_CALLS: usize = 20;

/// The delete modes of the audit trail, in the order the report shows them.
pub const DELETE_MODES: [&str; 4] = ["full", "recording-only", "redact", "upstream"];

/// One of the slowest calls of a measure.
#[derive(Clone, Debug, PartialEq)]
pub struct SlowestCall {
    /// Index into `stats::LATENCY_MEASURES`.
    pub measure: usize,
    pub provider: String,
    pub call_id: String,
    pub agent_id: Option<String>,
    pub created_at: Option<String>,
    /// The mean of the call's samples of the measure.
    pub latency_ms: f64,
    pub samples: usize,
}

/// Calls removed or cleared on one UTC day in one mode, for one provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletions {
    pub day: String,
    pub mode: String,
    pub provider: String,
    pub calls: i64,
}

/// Everything the page is drawn from.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportData {
    pub provenance: Provenance,
    pub filter: CallFilter,
    /// The streams of the providers and agents kept (account-wide streams included).
    pub streams: Vec<StreamSummary>,
    /// `stats ... --by agent` groups.
    pub by_agent: Vec<GroupFigures>,
    /// `stats ... --by agent,day` groups.
    pub by_agent_day: Vec<GroupFigures>,
    pub slowest: Vec<SlowestCall>,
    pub deletions: Vec<Deletions>,
}

/// Reads what the report shows of the calls `filter` keeps.
pub fn read(conn: &Connection, filter: &CallFilter) -> Result<ReportData, QueryError> {
    let _snapshot = conn.unchecked_transaction()?;
    let provenance = snapshot(conn, "callvault report".into())?;
    let groupings = [
        Grouping {
            agent: true,
            day: false,
        },
        Grouping {
            agent: true,
            day: true,
        },
    ];
    let reads = Reads {
        turns: true,
        slowest: SLOWEST_CALLS,
    };
    let figures = stats::read(conn, filter, &groupings, reads)?;
    let mut groupings = figures.groupings.into_iter();
    let by_agent = groupings.next().unwrap_or_default();
    let by_agent_day = groupings.next().unwrap_or_default();

    let mut lookup =
        conn.prepare("SELECT provider, id, agent_id, created_at FROM calls WHERE seq = ?1")?;
    let mut slowest = Vec::new();
    for (measure, calls) in figures.slowest.iter().enumerate() {
        for call in calls {
            let found = lookup.query_row([call.seq], |r| {
                Ok(SlowestCall {
                    measure,
                    provider: r.get(0)?,
                    call_id: r.get(1)?,
                    agent_id: r.get(2)?,
                    created_at: r.get(3)?,
                    latency_ms: call.latency_ms,
                    samples: call.samples,
                })
            })?;
            slowest.push(found);
        }
    }

    let streams = stream_summaries(conn)?
        .into_iter()
        .filter(|s| keeps_stream(filter, s))
        .collect();
    Ok(ReportData {
        provenance,
        filter: filter.clone(),
        streams,
        by_agent,
        by_agent_day,
        slowest,
        deletions: deletions(conn, filter)?,
    })
}

/// Whether the report lists stream `s`: one of the providers asked for, and one of the
/// agents asked for or account-wide (its calls include theirs).
fn keeps_stream(filter: &CallFilter, s: &StreamSummary) -> bool {
    let agent = s.scope.split("#label=").next().unwrap_or(&s.scope);
    (filter.providers.is_empty() || filter.providers.contains(&s.provider))
        && (filter.agents.is_empty() || agent == "*" || filter.agents.iter().any(|a| a == agent))
}

/// Deletions per UTC day of `deleted_at`, mode and provider, within the filter's dates.
fn deletions(conn: &Connection, filter: &CallFilter) -> Result<Vec<Deletions>, QueryError> {
    let sql = format!(
        "SELECT substr(d.deleted_at, 1, 10), d.mode, d.provider, count(*) FROM deleted_calls d
         WHERE 1 {} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        filter.sql_for("d", "deleted_at")
    );
    let mut stmt = conn.prepare(&sql)?;
    filter.bind(&mut stmt)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(Deletions {
            day: row.get::<_, Option<String>>(0)?.unwrap_or_default(),
            mode: row.get(1)?,
            provider: row.get(2)?,
            calls: row.get(3)?,
        });
    }
    Ok(out)
}
