//! Change tracking for `export --incremental`: which export partitions (provider, UTC day of
//! the call's `created_at`) changed, kept as one counter per partition (`partition_versions`,
//! schema 5) that every write changing a partition's exported content bumps, inside that
//! write's own transaction. A lake remembers each partition's counter as it exported it and
//! rewrites those whose counter moved: no diffing of files, no reading of unchanged calls.
//!
//! Bumping too often only costs an export a needless rewrite; missing a bump would leave a
//! lake stale, so every path that writes call content calls in here (`calls` for syncs,
//! rechecks, tombstones and prunes, `journal` for deletes, recording clears and redactions).

use rusqlite::{params, Connection};

/// The partition key of a call with this `created_at`: its first ten characters (the UTC date
/// of an RFC 3339 time), '' for a call without one. Keep in step with the SQL below and with
/// `query::export::lake`, which reads partitions by it.
const DAY_OF: &str = "coalesce(substr(?2, 1, 10), '')";

/// Counts one change to the partition of a call of `provider` created at `created_at`.
pub(crate) fn touch_partition(
    conn: &Connection,
    provider: &str,
    created_at: Option<&str>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO partition_versions (provider, day, version) VALUES (?1, {DAY_OF}, 1)
         ON CONFLICT (provider, day) DO UPDATE SET version = version + 1"
    ))?
    .execute(params![provider, created_at])?;
    Ok(())
}

/// `touch_partition` for an archived call known by id; nothing for a call not archived.
pub(crate) fn touch_partition_of_call(
    conn: &Connection,
    provider: &str,
    id: &str,
) -> rusqlite::Result<()> {
    // The WHERE clause keeps SQLite from reading ON CONFLICT as part of a join.
    conn.prepare_cached(
        "INSERT INTO partition_versions (provider, day, version)
         SELECT provider, coalesce(substr(created_at, 1, 10), ''), 1 FROM calls
         WHERE provider = ?1 AND id = ?2
         ON CONFLICT (provider, day) DO UPDATE SET version = version + 1",
    )?
    .execute(params![provider, id])?;
    Ok(())
}

/// The archive's identity (schema 5): random, made once, kept by every lake exported from it.
pub fn archive_id(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row(
        "SELECT value FROM archive_meta WHERE key = 'archive_id'",
        [],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::bluejay::parse_call_log;
    use crate::providers::{DeleteMode, ProviderKind};
    use crate::store::journal::{Destination, ItemResult, ItemState, PlannedItem};
    use crate::store::{Archive, PageWrite};

    fn versions(archive: &Archive) -> Vec<(String, i64)> {
        archive
            .connection()
            .prepare("SELECT day, version FROM partition_versions ORDER BY day")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn call(id: &str, day: &str, extra: &str) -> crate::providers::CallRecord {
        parse_call_log(&format!(
            r#"{{"id":"{id}","agent_id":"a","created_at":"{day}T10:00:00.000Z","recording_url":"https://r/{id}"{extra}}}"#
        ))
        .unwrap()
    }

    fn v(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(d, n)| (d.to_string(), *n)).collect()
    }

    #[test]
    fn every_write_that_changes_a_partition_bumps_its_counter_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(&dir.path().join("a.db")).unwrap();
        let (stream, run) = crate::store::test_stream(&mut archive, ProviderKind::Bluejay, "a");
        let page = |calls| PageWrite::of_calls(calls);
        archive
            .write_page(
                &stream,
                run,
                &page(vec![
                    call("c1", "2026-11-01", ""),
                    call("c2", "2026-11-01", ""),
                    call("c3", "2026-11-02", r#","evaluations":[{"id":"e1"}]"#),
                ]),
            )
            .unwrap();
        assert_eq!(
            versions(&archive),
            v(&[("2026-11-01", 2), ("2026-11-02", 1)])
        );

        // Unchanged calls change nothing; an update moving a call to another day bumps both.
        archive
            .write_page(&stream, run, &page(vec![call("c1", "2026-11-01", "")]))
            .unwrap();
        assert_eq!(
            versions(&archive),
            v(&[("2026-11-01", 2), ("2026-11-02", 1)])
        );
        archive
            .write_page(&stream, run, &page(vec![call("c2", "2026-11-03", "")]))
            .unwrap();
        assert_eq!(
            versions(&archive),
            v(&[("2026-11-01", 3), ("2026-11-02", 1), ("2026-11-03", 1)])
        );

        // c1 lists an evaluation id c3 lists too: c3 keeps its own, only c1's day changes.
        archive
            .write_page(
                &stream,
                run,
                &page(vec![call(
                    "c1",
                    "2026-11-01",
                    r#","evaluations":[{"id":"e1"}]"#,
                )]),
            )
            .unwrap();
        assert_eq!(
            versions(&archive),
            v(&[("2026-11-01", 4), ("2026-11-02", 1), ("2026-11-03", 1)])
        );

        // A tombstone and a prune each bump the removed call's day.
        let tombstone = PageWrite {
            deleted: vec!["c2".into(), "never-archived".into()],
            ..PageWrite::default()
        };
        archive.write_page(&stream, run, &tombstone).unwrap();
        assert_eq!(
            versions(&archive),
            v(&[("2026-11-01", 4), ("2026-11-02", 1), ("2026-11-03", 2)])
        );
        let present = [crate::store::id_hash("c1")].into_iter().collect();
        assert_eq!(archive.prune_stream(&stream, None, &present).unwrap(), 1);
        assert_eq!(
            versions(&archive),
            v(&[("2026-11-01", 4), ("2026-11-02", 2), ("2026-11-03", 2)])
        );

        // Deletes through callvault: a recording cleared, then the call removed.
        let destination = Destination {
            provider: ProviderKind::Bluejay,
            base_url: "http://127.0.0.1:9".into(),
            key_env: "BLUEJAY_API_KEY".into(),
        };
        for (mode, want) in [(DeleteMode::RecordingOnly, 5), (DeleteMode::Full, 6)] {
            let item = PlannedItem {
                call_id: "c1".into(),
                agent_id: Some("a".into()),
                destination: destination.clone(),
            };
            let job = archive.freeze_job("SELECT", None, mode, &[item]).unwrap();
            archive.start_job(job).unwrap();
            let done = ItemResult {
                provider: ProviderKind::Bluejay,
                call_id: "c1".into(),
                state: ItemState::Done,
                http_status: Some(200),
                error: None,
                retryable: false,
                replacement: None,
            };
            archive.record_results(job, mode, &[done]).unwrap();
            assert_eq!(versions(&archive)[0], ("2026-11-01".to_string(), want));
        }
        assert_eq!(
            archive_id(archive.connection()).unwrap().len(),
            32,
            "a random identity"
        );
    }
}
