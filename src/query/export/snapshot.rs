//! One read snapshot for two readers: the export reads a large table in two halves on two
//! connections, which must see the same archive, and `stats` reads calls and evaluations at
//! once.

use std::path::Path;

use rusqlite::Connection;

use super::super::QueryError;

/// Begins the read transaction of `conn` and, when the archive is a file, of a second
/// read-only connection that sees the same snapshot: a third connection's `data_version` did
/// not move while both began, so no commit fell between them. `None` when that could not be
/// had (a sync kept committing); the export then reads on `conn` alone.
pub(crate) fn begin_in_one_snapshot(conn: &Connection) -> Result<Option<Connection>, QueryError> {
    let path = conn.path().filter(|p| !p.is_empty()).map(Path::new);
    let Some(path) = path else {
        conn.execute_batch("BEGIN")?;
        return Ok(None);
    };
    let open = || crate::store::Archive::open_read_only(path).map_err(QueryError::from);
    let (probe, helper) = (open()?, open()?);
    let data_version = || -> Result<i64, QueryError> {
        Ok(probe.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    };
    let begin = |c: &Connection| -> Result<(), QueryError> {
        c.execute_batch("BEGIN")?;
        // The snapshot is taken at the first read, not at BEGIN.
        c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(())
    };
    for _ in 0..3 {
        let before = data_version()?;
        begin(conn)?;
        begin(&helper)?;
        if data_version()? == before {
            return Ok(Some(helper));
        }
        conn.execute_batch("ROLLBACK")?;
        helper.execute_batch("ROLLBACK")?;
    }
    conn.execute_batch("BEGIN")?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::super::tests::new_archive;
    use super::*;

    #[test]
    fn both_readers_keep_one_snapshot_while_a_sync_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writable) = new_archive(dir.path());
        let add = |i: i64| {
            writable
                .execute(
                    "INSERT INTO calls (provider, id, raw_json, raw_hash, synced_at, seq)
                     VALUES ('a', ?1, '{}', 0, '2026-11-30T00:00:00.000Z', ?2)",
                    rusqlite::params![format!("c{i}"), i],
                )
                .unwrap()
        };
        add(1);
        let conn = crate::store::Archive::open_read_only(&path).unwrap();
        let helper = begin_in_one_snapshot(&conn)
            .unwrap()
            .expect("a file archive");
        add(2);
        let calls = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!((calls(&conn), calls(&helper)), (1, 1));
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(calls(&conn), 2);
    }
}
