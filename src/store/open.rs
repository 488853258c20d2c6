//! Opening the archive: the file check, pragmas, schema creation and upgrades, and
//! read-only connections for readers.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{migrations, Archive, StoreError, SCHEMA, SCHEMA_VERSION};

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Page size of a new archive, in bytes.
const DB_PAGE_BYTES: i64 = 16_384;

/// The writer's page cache, in KiB: large enough that a page of calls with its indexes never
/// spills to the WAL before its commit; bounded so memory stays flat.
const CACHE_KIB: i64 = 64 * 1024;

/// WAL pages between automatic checkpoints (256 MiB at 16 KiB a page): fewer, larger
/// checkpoints write each hot page once instead of many times. In a large archive every
/// commit rewrites leaves all over the indexes keyed by random ids, so most WAL frames are
/// the same pages again: 10,000 new calls into a million-call archive took 6.3 s at 64 MiB,
/// 4.0 s at 256 MiB. 1 GiB took 3.6 s but moved a 1.5 s checkpoint to the end of every run,
/// and bulk deletes' end-to-end rate fell 10% (1,490 to 1,340 a second); at 256 MiB it is
/// 1,460-1,475 against 1,487-1,494. The writer thread's connection checkpoints beside it
/// instead (`checkpoints`); this interval is for every other connection that writes.
const CHECKPOINT_PAGES: i64 = 16_384;

/// How long a writer waits for another process's write transaction (a second sync or a delete
/// on the same archive) before giving up. A busy writer frees the lock only between its
/// commits, so the wait is generous; readers never wait for writers (WAL).
const WRITE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// What a WAL file is cut back to once a checkpoint has emptied it.
const WAL_KEEP_BYTES: i64 = 64 * 1024 * 1024;

/// Refuses, without writing a byte, a file that is not a SQLite database.
fn check_header(path: &Path) -> Result<bool, StoreError> {
    use std::io::Read;
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(e)),
    };
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]).map_err(io)? {
            0 => break,
            n => read += n,
        }
    }
    if read == 0 {
        return Ok(true);
    }
    if read < header.len() || &header != SQLITE_HEADER {
        return Err(StoreError::NotSqlite {
            path: path.to_path_buf(),
        });
    }
    Ok(true)
}

impl Archive {
    /// Opens (or creates) the archive at `path`, bringing its schema up to date.
    pub fn open(path: &Path) -> Result<Archive, StoreError> {
        // While another process creates or upgrades the archive, a step of opening it can be
        // refused at once rather than waited for (SQLite answers BUSY without its busy
        // handler where waiting could deadlock, as in switching to WAL). Opening is
        // idempotent, so it is tried again.
        let started = std::time::Instant::now();
        loop {
            match Self::open_once(path) {
                Err(StoreError::Sqlite(e))
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && started.elapsed() < WRITE_LOCK_WAIT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                opened => return opened,
            }
        }
    }

    fn open_once(path: &Path) -> Result<Archive, StoreError> {
        check_header(path)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(WRITE_LOCK_WAIT)?;
        conn.set_prepared_statement_cache_capacity(64);
        // Identified before anything is changed (not even the journal mode).
        let (version, known) = identify(&conn, path)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if !known {
            return Err(StoreError::ForeignDatabase {
                path: path.to_path_buf(),
            });
        }
        if version == 0 {
            // Rows carry a few KB of raw JSON: pages that hold a whole call avoid overflow
            // chains. Only a new, empty file can still take a page size.
            conn.pragma_update(None, "page_size", DB_PAGE_BYTES)?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Checking every child row against `calls` costs an index seek per row on the sync's
        // hot path; the writer removes a call's children itself (`remove_call`). The schema
        // keeps the foreign keys for other tools that open the archive.
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES)?;
        // Temporary files stay on disk (the default): a page's savepoint inside a group commit
        // grows the statement sub-journal, and SQLite truncates an in-memory sub-journal by
        // walking it from the start after every statement that used it, which turns a large
        // page quadratic. A sub-journal that spilled to a file is not truncated.
        bring_up_to_date(&conn, path, version > 0)?;
        Ok(Archive { conn, group: None })
    }

    /// A connection that cannot change the archive: opened read-only and `query_only`.
    pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
        if !check_header(path)? {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        let conn = open_reader(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "query_only", "ON")?;
        let (version, known) = identify(&conn, path)?;
        if version == 0 || !known {
            return Err(StoreError::ForeignDatabase {
                path: path.to_path_buf(),
            });
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        Ok(conn)
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// A read-only connection. In a folder this process can write, a reader shares the archive's
/// WAL like any SQLite reader (and sees a sync's commits). In one it cannot write (another
/// user's archive, a read-only mount), SQLite could not create the WAL's shared-memory file,
/// and a reader that did create one as another user would lock the owner out: with no WAL
/// file present (no writer), the archive is opened `immutable`, which needs no file beside
/// it; with one present, a sync is writing and the reader is refused until it ends.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if tempfile::tempfile_in(folder).is_ok() {
        return Ok(Connection::open_with_flags(path, flags)?);
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if Path::new(&wal).exists() {
        return Err(StoreError::WriterInReadOnlyFolder {
            path: path.to_path_buf(),
        });
    }
    let mut uri =
        url::Url::from_file_path(std::path::absolute(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?)
        .map_err(|()| StoreError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("not a file path"),
        })?;
    uri.set_query(Some("immutable=1"));
    Ok(Connection::open_with_flags(
        uri.as_str(),
        flags | OpenFlags::SQLITE_OPEN_URI,
    )?)
}

/// The file's schema version, and whether it is an archive (or an empty file) at that
/// version. Both are read in one transaction: another process creating the archive at the same
/// moment could otherwise commit its tables between the two reads, and a new archive would
/// look like a foreign database with tables at version 0.
fn identify(conn: &Connection, path: &Path) -> Result<(i64, bool), StoreError> {
    conn.execute_batch("BEGIN")
        .map_err(|e| not_sqlite(path, e))?;
    let read = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| not_sqlite(path, e))
        .and_then(|version| Ok((version, is_archive_or_empty(conn, version)?)));
    let _ = conn.execute_batch("COMMIT");
    read
}

/// Whether the database is empty (a new archive) or holds callvault's own tables at
/// `version`; a file with other tables, whatever its `user_version`, is someone else's.
fn is_archive_or_empty(conn: &Connection, version: i64) -> Result<bool, StoreError> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if version == 0 {
        return Ok(tables.is_empty());
    }
    Ok([
        "calls",
        "evaluations",
        "sync_runs",
        "delete_jobs",
        "deleted_calls",
    ]
    .iter()
    .all(|t| tables.iter().any(|have| have == t)))
}

/// Creates the schema or upgrades it, one step per transaction. Each step takes the write
/// lock first and reads the version again inside it, so two processes opening the same new
/// (or old) archive at once do each step once: the second waits, then finds it done.
fn bring_up_to_date(conn: &Connection, path: &Path, existed: bool) -> Result<(), StoreError> {
    // A step that rebuilds a table drops it and renames the new one to its name. SQLite's
    // rename checks every view, and a view of the user's over the dropped table ("error in
    // view ...: no such table") would fail the upgrade; the legacy rename leaves views alone,
    // and theirs find the table again by its name.
    conn.pragma_update(None, "legacy_alter_table", "ON")?;
    let upgraded = run_steps(conn, path, existed);
    conn.pragma_update(None, "legacy_alter_table", "OFF")?;
    upgraded
}

fn run_steps(conn: &Connection, path: &Path, existed: bool) -> Result<(), StoreError> {
    loop {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let at: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if at >= SCHEMA_VERSION {
            conn.execute_batch("COMMIT")?;
            return Ok(());
        }
        let step = if at == 0 {
            SCHEMA
        } else {
            // Seen by default on an existing archive: on a large one a step takes minutes.
            if existed {
                tracing::warn!(
                    "upgrading the archive's schema to version {} (once; minutes for millions of calls)",
                    at + 1
                );
            }
            migrations::STEPS[(at - 1) as usize]
        };
        let done = conn
            .execute_batch(&format!("{step}; PRAGMA user_version = {};", at + 1))
            .and_then(|()| conn.execute_batch("COMMIT"));
        if let Err(source) = done {
            let _ = conn.execute_batch("ROLLBACK");
            if at == 0 {
                return Err(StoreError::Sqlite(source));
            }
            return Err(StoreError::Upgrade {
                version: at + 1,
                source,
            });
        }
        tracing::debug!("{}: schema at version {}", path.display(), at + 1);
    }
}

fn not_sqlite(path: &Path, err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotSqlite {
            path: path.to_path_buf(),
        },
        _ => StoreError::Sqlite(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_file_that_is_not_sqlite_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.db");
        std::fs::write(&path, b"just some text, not a database at all").unwrap();
        let err = Archive::open(&path).err().expect("must refuse");
        assert!(matches!(err, StoreError::NotSqlite { .. }), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"just some text, not a database at all"
        );
        assert!(!dir.path().join("notes.db-wal").exists());
    }

    #[test]
    fn refuses_a_foreign_sqlite_database_whatever_its_user_version() {
        for version in [0, 1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("other.db");
            Connection::open(&path)
                .unwrap()
                .execute_batch(&format!(
                    "CREATE TABLE t (x); INSERT INTO t VALUES (1); PRAGMA user_version = {version};"
                ))
                .unwrap();
            let before = std::fs::read(&path).unwrap();
            assert!(matches!(
                Archive::open(&path),
                Err(StoreError::ForeignDatabase { .. })
            ));
            assert!(matches!(
                Archive::open_read_only(&path),
                Err(StoreError::ForeignDatabase { .. })
            ));
            assert_eq!(std::fs::read(&path).unwrap(), before, "version {version}");
            assert!(
                !dir.path().join("other.db-wal").exists(),
                "still not in WAL mode"
            );
        }
    }

    #[test]
    fn two_processes_creating_one_archive_at_once_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Archive::open(&path).map(drop))
            })
            .collect();
        for opener in openers {
            opener.join().unwrap().unwrap();
        }
        let conn = Archive::open_read_only(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn an_archive_at_version_1_is_upgraded_and_keeps_its_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "{SCHEMA}; PRAGMA user_version = 1;
                 INSERT INTO calls (provider, id, agent_id, created_at, summary, raw_json,
                                    raw_hash, synced_at)
                 VALUES ('bluejay', 'c1', 'a', '2026-11-02T09:15:00.000Z', 'kept', '{{}}', 0,
                         '2026-11-02T10:00:00.000Z');
                 INSERT INTO call_tags (provider, call_id, tag) VALUES ('bluejay', 'c1', 'vip');
                 INSERT INTO participants (provider, call_id, idx, role)
                 VALUES ('bluejay', 'c1', 0, 'AGENT');
                 INSERT INTO evaluations (provider, id, call_id, raw_json)
                 VALUES ('bluejay', 'e1', 'c1', '{{}}');
                 -- A user's own views over tables that upgrades rebuild.
                 CREATE VIEW my_tags AS SELECT call_id, tag FROM call_tags;
                 CREATE VIEW my_evaluations AS SELECT id, call_id FROM evaluations;"
            ))
            .unwrap();
        drop(Archive::open(&path).unwrap());
        let conn = Archive::open_read_only(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mine: String = conn
            .query_row(
                "SELECT t.tag || ' ' || e.id FROM my_tags t JOIN my_evaluations e USING (call_id)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(mine, "vip e1");
        let summary: String = conn
            .query_row("SELECT summary FROM calls WHERE id = 'c1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(summary, "kept");
        // The export's scan of typed columns reads the narrow index, not the wide rows.
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id, summary, synced_at, substr(created_at, 1, 10)
                 FROM calls",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("COVERING INDEX calls_columns"), "{plan}");
        // The call's parts now hang off its seq, and the foreign keys hold.
        let parts: (i64, String, String) = conn
            .query_row(
                "SELECT c.seq, t.tag, p.role FROM calls c
                 JOIN call_tags t ON t.call_seq = c.seq
                 JOIN participants p ON p.call_seq = c.seq AND p.call_id = c.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(parts, (1, "vip".to_string(), "AGENT".to_string()));
        let orphans: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(orphans, 0);
    }
}
