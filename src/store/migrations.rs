//! Numbered schema changes. `schema.sql` is version 1 and is never edited; each step here
//! takes an archive from one version to the next, and a new archive runs them all after
//! `schema.sql`. A step runs in one transaction with its `user_version` bump, so an archive is
//! always at exactly one version.

/// `STEPS[i]` takes an archive from version `i + 1` to `i + 2`.
pub(crate) const STEPS: &[&str] = &[
    // 2: every typed column of `calls` in one index. A calls row also holds its raw JSON
    // (about 3 KB), so scanning typed columns read the whole table; a scan that needs only
    // typed columns (export without raw JSON, most analytics) now reads this index, about a
    // seventh of the size. It leads with (provider, created_at), which also serves time-range
    // selections such as retention, and keeps inserts near the newest entries.
    "CREATE INDEX calls_columns ON calls (
        provider, created_at, id, agent_id, external_agent_id, status, start_time, end_time,
        duration_ms, call_direction, interface, recording_url, transcript_url, summary,
        end_reason, ended_by, redacted_at, metadata_json, annotations_json,
        extra_metrics_json, settled, synced_at
    );",
];
