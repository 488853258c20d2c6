//! Call content: upserts of whole calls with their children, removals (by callvault's own
//! deletes and by the provider's tombstones), and the page write that commits a page of
//! calls with its place in the walk.
//!
//! Three rules keep the mirror honest. A call deleted through callvault (`full`) or deleted
//! upstream is never archived again, even if the provider still serves it. A call callvault
//! redacted is only replaced by a version that is redacted too. A call remembers the source
//! that last served it, so its delete goes there.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::changes::touch_partition;
use super::streams::call_of_source;
use super::{content_hash, id_hash, Archive, CommittedPage, StoreError, StreamId};
use crate::providers::{CallRecord, ProviderKind};
use crate::time::format_timestamp;

/// Counts of what one page did to the archive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageCounts {
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Evaluations written (of new and updated calls).
    pub evaluations: u64,
    /// Calls deleted through callvault or upstream that the provider still returned; not
    /// re-inserted.
    pub refused_resurrections: u64,
    /// Redacted calls the provider served unredacted; the redacted version is kept.
    pub refused_unredactions: u64,
    /// Archived calls removed because the provider says it deleted them.
    pub deleted_upstream: u64,
}

impl std::ops::AddAssign for PageCounts {
    fn add_assign(&mut self, o: Self) {
        self.new += o.new;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.evaluations += o.evaluations;
        self.refused_resurrections += o.refused_resurrections;
        self.refused_unredactions += o.refused_unredactions;
        self.deleted_upstream += o.deleted_upstream;
    }
}

/// One page as the writer commits it, in one transaction.
#[derive(Debug, Default)]
pub struct PageWrite {
    pub calls: Vec<CallRecord>,
    /// Ids the provider says it deleted; those archived leave with an audit row.
    pub deleted: Vec<String>,
    /// The page's place in the walk; `None` for calls fetched outside a walk (rechecks).
    pub place: Option<CommittedPage>,
    /// The page's high-water mark (`Page::high_water`), kept with the walk in progress.
    pub high_water: Option<String>,
}

impl PageWrite {
    /// Calls fetched outside a walk: no tombstones, no place, no high-water mark.
    pub fn of_calls(calls: Vec<CallRecord>) -> PageWrite {
        PageWrite {
            calls,
            ..PageWrite::default()
        }
    }
}

impl Archive {
    /// Calls of a stream the provider may still change, created after `created_after`:
    /// of one agent, or of the whole account when `agent_id` is `None`.
    pub fn unsettled_calls(
        &self,
        stream: &StreamId,
        agent_id: Option<&str>,
        created_after: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT c.id FROM calls c
             WHERE c.provider = ?1 AND (?2 IS NULL OR c.agent_id = ?2) AND c.settled = 0
               AND c.created_at >= ?3 AND {}
             ORDER BY c.created_at",
            call_of_source(4)
        ))?;
        let ids = stmt
            .query_map(
                params![
                    stream.provider.as_str(),
                    agent_id,
                    format_timestamp(created_after),
                    stream.source
                ],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Removes the calls of a stream (one agent, or the whole account) whose id hashes are
    /// not in `present` (the provider no longer has them), each with an audit row
    /// `mode = upstream`. Returns how many.
    pub fn prune_stream(
        &mut self,
        stream: &StreamId,
        agent_id: Option<&str>,
        present: &HashSet<u64>,
    ) -> Result<u64, StoreError> {
        let p = stream.provider.as_str();
        let tx = self.write_scope()?;
        let gone: Vec<(String, Option<String>)> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT c.id, c.agent_id FROM calls c
                 WHERE c.provider = ?1 AND (?2 IS NULL OR c.agent_id = ?2) AND {}",
                call_of_source(3)
            ))?;
            let ids = stmt.query_map(params![p, agent_id, stream.source], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            let mut gone = Vec::new();
            for row in ids {
                let (id, agent) = row?;
                if !present.contains(&id_hash(&id)) {
                    gone.push((id, agent));
                }
            }
            gone
        };
        let now = format_timestamp(Utc::now());
        for (id, agent) in &gone {
            tx.execute(
                "INSERT INTO deleted_calls (provider, call_id, agent_id, mode, job_id, deleted_at)
                 VALUES (?1, ?2, ?3, 'upstream', NULL, ?4)",
                params![p, id, agent, now],
            )?;
            // Bumps the call's export partition too.
            remove_call(&tx, p, id)?;
        }
        tx.commit()?;
        Ok(gone.len() as u64)
    }

    /// Writes one page of a stream in one transaction: its calls with their children, the
    /// calls the provider deleted, the page's place in the walk, and the run's counts.
    pub fn write_page(
        &mut self,
        stream: &StreamId,
        run_id: i64,
        page: &PageWrite,
    ) -> Result<PageCounts, StoreError> {
        let now = format_timestamp(Utc::now());
        let provider = stream.provider;
        let tx = self.write_scope()?;
        let mut counts = PageCounts::default();
        // Most archives have deleted nothing: one look per page instead of one per call.
        let any_deleted = tx
            .prepare_cached(
                "SELECT 1 FROM deleted_calls
                 WHERE provider = ?1 AND mode IN ('full', 'upstream') LIMIT 1",
            )?
            .exists(params![provider.as_str()])?;
        let context = UpsertContext {
            provider,
            source: stream.source,
            now: &now,
            any_deleted,
        };
        for call in &page.calls {
            upsert_call(&tx, &context, call, &mut counts)?;
        }
        for id in &page.deleted {
            counts.deleted_upstream += remove_upstream(&tx, provider, id, &now)?;
        }
        if let Some(place) = &page.place {
            tx.execute(
                "INSERT OR REPLACE INTO sync_walk_pages
                    (source_id, scope, cursor_json, calls, walk_size, next_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    stream.source,
                    stream.scope,
                    place.cursor_json,
                    place.calls as i64,
                    place.walk_size.map(|w| w as i64),
                    place.next_json,
                ],
            )?;
        }
        tx.execute(
            "UPDATE sync_state SET last_synced_at = ?3,
                walk_high_water = CASE
                    WHEN ?4 IS NULL THEN walk_high_water
                    WHEN walk_high_water IS NULL OR ?4 > walk_high_water THEN ?4
                    ELSE walk_high_water END
             WHERE source_id = ?1 AND scope = ?2",
            params![stream.source, stream.scope, now, page.high_water],
        )?;
        tx.execute(
            "UPDATE sync_runs SET calls_new = calls_new + ?2, calls_updated = calls_updated + ?3,
                 calls_unchanged = calls_unchanged + ?4, evaluations = evaluations + ?5,
                 pages = pages + ?6, deleted_upstream = deleted_upstream + ?7
             WHERE id = ?1",
            params![
                run_id,
                counts.new as i64,
                counts.updated as i64,
                counts.unchanged as i64,
                counts.evaluations as i64,
                i64::from(page.place.is_some()),
                counts.deleted_upstream as i64,
            ],
        )?;
        tx.commit()?;
        Ok(counts)
    }
}

/// Removes a call the provider deleted, with an audit row `mode = upstream`; a call the
/// archive does not hold (never archived, or removed already) is left alone. Returns 0 or 1.
fn remove_upstream(
    tx: &Connection,
    provider: ProviderKind,
    id: &str,
    now: &str,
) -> rusqlite::Result<u64> {
    let p = provider.as_str();
    let archived: Option<(i64, Option<String>, Option<String>)> = tx
        .prepare_cached(
            "SELECT seq, agent_id, created_at FROM calls WHERE provider = ?1 AND id = ?2",
        )?
        .query_row(params![p, id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((seq, agent, created_at)) = archived else {
        return Ok(0);
    };
    touch_partition(tx, p, created_at.as_deref())?;
    tx.prepare_cached(
        "INSERT INTO deleted_calls (provider, call_id, agent_id, mode, job_id, deleted_at)
         VALUES (?1, ?2, ?3, 'upstream', NULL, ?4)",
    )?
    .execute(params![p, id, agent, now])?;
    remove_call_at(tx, seq)?;
    Ok(1)
}

/// Tables that hold call content: `calls`, `evaluations` (with their own key, and the
/// call's `call_seq`), then `CALL_PART_TABLES`.
pub const CALL_CONTENT_TABLES: [&str; 8] = [
    "calls",
    "evaluations",
    "participants",
    "tool_calls",
    "call_events",
    "call_tags",
    "custom_metrics",
    "transcript_turns",
];

/// The tables of a call's parts, keyed by the call's `seq` (`call_seq`), so that a call's
/// parts sit together and new calls append to them (schema 3).
const CALL_PART_TABLES: &[&str] = CALL_CONTENT_TABLES.split_at(2).1;

/// Removes a call and every row that belongs to it; returns the calls removed (0 or 1).
///
/// The writer's connection keeps foreign keys off (see `Archive::open`), so the children
/// go here rather than through `ON DELETE CASCADE`.
pub(crate) fn remove_call(conn: &Connection, provider: &str, id: &str) -> rusqlite::Result<usize> {
    let archived: Option<(Option<i64>, Option<String>)> = conn
        .prepare_cached("SELECT seq, created_at FROM calls WHERE provider = ?1 AND id = ?2")?
        .query_row(params![provider, id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match archived {
        Some((Some(seq), created_at)) => {
            touch_partition(conn, provider, created_at.as_deref())?;
            remove_call_at(conn, seq)
        }
        _ => Ok(0),
    }
}

/// `remove_call` for a call whose `seq` the caller already read.
fn remove_call_at(conn: &Connection, seq: i64) -> rusqlite::Result<usize> {
    for table in CALL_PART_TABLES {
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE call_seq = ?1"))?
            .execute([seq])?;
    }
    conn.prepare_cached("DELETE FROM evaluations WHERE call_seq = ?1")?
        .execute([seq])?;
    conn.prepare_cached("DELETE FROM calls WHERE seq = ?1")?
        .execute([seq])
}

/// What every upsert of one page shares.
struct UpsertContext<'a> {
    provider: ProviderKind,
    source: i64,
    now: &'a str,
    /// Whether the provider has any deleted call at all (most archives have none).
    any_deleted: bool,
}

fn upsert_call(
    tx: &Connection,
    context: &UpsertContext<'_>,
    call: &CallRecord,
    counts: &mut PageCounts,
) -> rusqlite::Result<()> {
    let p = context.provider.as_str();
    let hash = content_hash(&call.raw_json);
    /// raw_hash, seq, source_id, redacted, created_at.
    type Archived = (i64, i64, Option<i64>, bool, Option<String>);
    let existing: Option<Archived> = tx
        .prepare_cached(
            "SELECT raw_hash, seq, source_id, redacted_at IS NOT NULL, created_at FROM calls
             WHERE provider = ?1 AND id = ?2",
        )?
        .query_row(params![p, call.id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    match existing {
        Some((h, seq, source, redacted, _))
            if h == hash || (redacted && call.redacted_at.is_none()) =>
        {
            if h == hash {
                counts.unchanged += 1;
            } else {
                counts.refused_unredactions += 1;
                tracing::warn!(
                    "{p} serves call {} unredacted although callvault redacted it; the redacted version is kept",
                    call.id
                );
            }
            // Served from another address now: its deletes go there.
            if source != Some(context.source) {
                tx.prepare_cached("UPDATE calls SET source_id = ?2 WHERE seq = ?1")?
                    .execute(params![seq, context.source])?;
            }
            return Ok(());
        }
        Some((_, old_seq, _, _, old_created_at)) => {
            // The new version's children replace the old ones whole.
            remove_call_at(tx, old_seq)?;
            if old_created_at != call.created_at {
                touch_partition(tx, p, old_created_at.as_deref())?;
            }
            counts.updated += 1;
        }
        None => {
            let deleted = context.any_deleted
                && tx
                    .prepare_cached(
                        "SELECT 1 FROM deleted_calls
                         WHERE provider = ?1 AND call_id = ?2 AND mode IN ('full', 'upstream')",
                    )?
                    .exists(params![p, call.id])?;
            if deleted {
                counts.refused_resurrections += 1;
                tracing::warn!(
                    "{p} still returns call {} that was deleted; not re-archived",
                    call.id
                );
                return Ok(());
            }
            counts.new += 1;
        }
    }
    insert_call(tx, p, call, hash, Some(context.source), context.now)?;
    touch_partition(tx, p, call.created_at.as_deref())?;
    counts.evaluations += call.evaluations.len() as u64;
    Ok(())
}

/// Replaces an archived call whole, children too, keeping its source: what a provider sent
/// back after redacting it. Returns false when the archive does not hold the call.
pub(crate) fn replace_call(
    tx: &Connection,
    provider: ProviderKind,
    call: &CallRecord,
    now: &str,
) -> rusqlite::Result<bool> {
    let p = provider.as_str();
    let archived: Option<(i64, Option<i64>, Option<String>)> = tx
        .prepare_cached(
            "SELECT seq, source_id, created_at FROM calls WHERE provider = ?1 AND id = ?2",
        )?
        .query_row(params![p, call.id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((seq, source, old_created_at)) = archived else {
        return Ok(false);
    };
    remove_call_at(tx, seq)?;
    insert_call(tx, p, call, content_hash(&call.raw_json), source, now)?;
    touch_partition(tx, p, old_created_at.as_deref())?;
    if old_created_at != call.created_at {
        touch_partition(tx, p, call.created_at.as_deref())?;
    }
    Ok(true)
}

/// Inserts a call that is not archived, with its children, as the newest `seq`.
fn insert_call(
    tx: &Connection,
    p: &str,
    call: &CallRecord,
    hash: i64,
    source: Option<i64>,
    now: &str,
) -> rusqlite::Result<()> {
    let seq: i64 = tx
        .prepare_cached("SELECT coalesce(max(seq), 0) + 1 FROM calls")?
        .query_row([], |r| r.get(0))?;
    tx.prepare_cached(
        "INSERT INTO calls (provider, id, agent_id, external_agent_id, status, created_at,
            start_time, end_time, duration_ms, call_direction, interface, recording_url,
            transcript_url, summary, end_reason, ended_by, redacted_at, metadata_json,
            annotations_json, extra_metrics_json, raw_json, raw_hash, settled, synced_at, seq,
            source_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)",
    )?
    .execute(params![
        p,
        call.id,
        call.agent_id,
        call.external_agent_id,
        call.status,
        call.created_at,
        call.start_time,
        call.end_time,
        call.duration_ms,
        call.call_direction,
        call.interface,
        call.recording_url,
        call.transcript_url,
        call.summary,
        call.end_reason,
        call.ended_by,
        call.redacted_at,
        call.metadata_json,
        call.annotations_json,
        call.extra_metrics_json,
        call.raw_json,
        hash,
        call.settled,
        now,
        seq,
        source,
    ])?;
    insert_children(tx, p, call, seq)
}

fn insert_children(tx: &Connection, p: &str, call: &CallRecord, seq: i64) -> rusqlite::Result<()> {
    let id = &call.id;
    if !call.participants.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO participants (provider, call_id, idx, role, spoke_first, name, phone_number,
                call_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (i, x) in call.participants.iter().enumerate() {
            stmt.execute(params![
                p,
                id,
                i,
                x.role,
                x.spoke_first,
                x.name,
                x.phone_number,
                seq
            ])?;
        }
    }
    if !call.tool_calls.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO tool_calls (provider, call_id, idx, name, start_offset_ms, description,
                parameters_json, output_json, call_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for (i, x) in call.tool_calls.iter().enumerate() {
            stmt.execute(params![
                p,
                id,
                i,
                x.name,
                x.start_offset_ms,
                x.description,
                x.parameters_json,
                x.output_json,
                seq
            ])?;
        }
    }
    if !call.events.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO call_events (provider, call_id, idx, title, description, start_offset_ms,
                end_offset_ms, tags_json, metadata_json, call_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (i, x) in call.events.iter().enumerate() {
            stmt.execute(params![
                p,
                id,
                i,
                x.title,
                x.description,
                x.start_offset_ms,
                x.end_offset_ms,
                x.tags_json,
                x.metadata_json,
                seq
            ])?;
        }
    }
    if !call.tags.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO call_tags (provider, call_id, tag, call_seq) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for tag in &call.tags {
            stmt.execute(params![p, id, tag, seq])?;
        }
    }
    if !call.transcript.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO transcript_turns (provider, call_id, idx, role, text, start_ms, end_ms,
                stt_ttfb_ms, tts_ttfb_ms, call_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (i, x) in call.transcript.iter().enumerate() {
            stmt.execute(params![
                p,
                id,
                i,
                x.role,
                x.text,
                x.start_ms,
                x.end_ms,
                x.stt_ttfb_ms,
                x.tts_ttfb_ms,
                seq
            ])?;
        }
    }
    for e in &call.evaluations {
        // An evaluation is part of its call, as its JSON is: listed twice by the call, the
        // last listing is kept, with its custom metrics; the same id on another call is that
        // call's own. So the lookup stays inside the call (`evaluations_call_id`, whose pages a
        // sync appends) instead of a key over every evaluation's random id. A delete and a
        // plain insert rather than INSERT OR REPLACE: a REPLACE on a table with indexes needs
        // a statement journal, which costs more than the whole insert.
        let listed: Option<i64> = tx
            .prepare_cached("SELECT rowid FROM evaluations WHERE call_seq = ?1 AND id = ?2")?
            .query_row(params![seq, e.id], |r| r.get(0))
            .optional()?;
        if let Some(rowid) = listed {
            tx.prepare_cached("DELETE FROM evaluations WHERE rowid = ?1")?
                .execute([rowid])?;
            tx.prepare_cached(
                "DELETE FROM custom_metrics WHERE call_seq = ?1 AND evaluation_id = ?2",
            )?
            .execute(params![seq, e.id])?;
        }
        tx.prepare_cached(
            "INSERT INTO evaluations (provider, id, call_id, created_at, hallucination,
                hallucination_reasoning, redundancy, redundancy_reasoning, goal_success,
                goal_reasoning, agent_speak_percentage, avg_agent_latency, p50_agent_latency,
                p90_agent_latency, p95_agent_latency, p99_agent_latency, max_agent_latency,
                avg_filler_ignored_latency, p50_filler_ignored_latency, p90_filler_ignored_latency,
                p95_filler_ignored_latency, p99_filler_ignored_latency, num_turns, call_summary,
                custom_evals_json, custom_evals_success_rate, pronunciation_score,
                pronunciation_reasoning, sentiment_label, sentiment_score, sentiment_scores_json,
                call_seq, json_path)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)",
        )?
        .execute(params![
            p,
            e.id,
            id,
            e.created_at,
            e.hallucination,
            e.hallucination_reasoning,
            e.redundancy,
            e.redundancy_reasoning,
            e.goal_success,
            e.goal_reasoning,
            e.agent_speak_percentage,
            e.avg_agent_latency,
            e.p50_agent_latency,
            e.p90_agent_latency,
            e.p95_agent_latency,
            e.p99_agent_latency,
            e.max_agent_latency,
            e.avg_filler_ignored_latency,
            e.p50_filler_ignored_latency,
            e.p90_filler_ignored_latency,
            e.p95_filler_ignored_latency,
            e.p99_filler_ignored_latency,
            e.num_turns,
            e.call_summary,
            e.custom_evals_json,
            e.custom_evals_success_rate,
            e.pronunciation_score,
            e.pronunciation_reasoning,
            e.sentiment_label,
            e.sentiment_score,
            e.sentiment_scores_json,
            seq,
            e.json_path,
        ])?;
        if !e.custom_metrics.is_empty() {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO custom_metrics (provider, call_id, evaluation_id, idx, name,
                    description, response_type, response_value, reasoning, min_value, max_value,
                    category, tags_json, scoring_guidance, enum_options_json, call_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?;
            for (i, m) in e.custom_metrics.iter().enumerate() {
                stmt.execute(params![
                    p,
                    id,
                    e.id,
                    i,
                    m.name,
                    m.description,
                    m.response_type,
                    m.response_value,
                    m.reasoning,
                    m.min_value,
                    m.max_value,
                    m.category,
                    m.tags_json,
                    m.scoring_guidance,
                    m.enum_options_json,
                    seq
                ])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new archive in a temporary folder, with a sync run begun for agent `a`.
    fn archive_with_run() -> (tempfile::TempDir, Archive, StreamId, i64) {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(&dir.path().join("a.db")).unwrap();
        let (stream, run) = crate::store::test_stream(&mut archive, ProviderKind::Bluejay, "a");
        (dir, archive, stream, run)
    }

    #[test]
    fn unchanged_calls_are_not_rewritten_and_changed_ones_replace_children() {
        let (_dir, mut archive, stream, run) = archive_with_run();
        let mut call = crate::providers::bluejay::parse_call_log(
            r#"{"id":"c1","agent_id":"a","tags":["x","y"],"evaluations":[{"id":"e1"}]}"#,
        )
        .unwrap();
        let first = archive
            .write_page(&stream, run, &PageWrite::of_calls(vec![call.clone()]))
            .unwrap();
        assert_eq!((first.new, first.evaluations), (1, 1));
        let again = archive
            .write_page(&stream, run, &PageWrite::of_calls(vec![call.clone()]))
            .unwrap();
        assert_eq!((again.new, again.updated, again.unchanged), (0, 0, 1));
        call = crate::providers::bluejay::parse_call_log(
            r#"{"id":"c1","agent_id":"a","tags":["z"],"evaluations":[]}"#,
        )
        .unwrap();
        let changed = archive
            .write_page(&stream, run, &PageWrite::of_calls(vec![call]))
            .unwrap();
        assert_eq!(changed.updated, 1);
        let conn = archive.connection();
        let tags: Vec<String> = conn
            .prepare("SELECT tag FROM call_tags")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tags, vec!["z"]);
        let evals: i64 = conn
            .query_row("SELECT count(*) FROM evaluations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(evals, 0);
    }

    #[test]
    fn an_evaluation_belongs_to_its_call_and_a_repeated_listing_keeps_the_last() {
        let (_dir, mut archive, stream, run) = archive_with_run();
        let page = |json: &str| vec![crate::providers::bluejay::parse_call_log(json).unwrap()];
        // c1 lists e1 twice (the last listing is kept, with its custom metrics) beside one
        // without an id; c2 lists e1 too, which stays c2's own; c1 then changes.
        for json in [
            r#"{"id":"c1","agent_id":"a","evaluations":[{"num_turns":1},
                {"id":"e1","num_turns":2,"custom_metrics":[{"name":"first"}]},
                {"id":"e1","num_turns":3,"custom_metrics":[{"name":"second"}]}]}"#,
            r#"{"id":"c2","agent_id":"a","evaluations":[{"id":"e1","num_turns":4,
                "custom_metrics":[{"name":"c2's"}]}]}"#,
            r#"{"id":"c1","agent_id":"a","status":"changed","evaluations":[{"num_turns":5},
                {"id":"e1","num_turns":6,"custom_metrics":[{"name":"old"}]},
                {"id":"e1","num_turns":7,"custom_metrics":[{"name":"newest"}]}]}"#,
        ] {
            archive
                .write_page(&stream, run, &PageWrite::of_calls(page(json)))
                .unwrap();
        }
        let conn = archive.connection();
        let rows = |sql: &str| -> Vec<String> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(
            rows(
                "SELECT call_id || ' ' || id || ' ' || num_turns FROM evaluations
                 ORDER BY call_id, id"
            ),
            ["c1 c1#evaluation-0 5", "c1 e1 7", "c2 e1 4"]
        );
        assert_eq!(
            rows("SELECT call_id || ' ' || name FROM custom_metrics ORDER BY call_id"),
            ["c1 newest", "c2 c2's"]
        );
        // The lookup of a listing reads the call's entries of an index, not the table.
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT rowid FROM evaluations WHERE call_seq = 1 AND id = 'e1'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("evaluations_call_id"), "{plan}");
    }
}
