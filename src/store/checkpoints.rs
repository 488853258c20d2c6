//! Checkpoints on a thread of their own, beside the writer.
//!
//! A checkpoint copies the WAL's pages into the database file. SQLite runs it inside the
//! commit that crosses `wal_autocheckpoint`, on the writer's thread, so the writer stops while
//! hundreds of MB are copied and synced: about a fifth of the store's time at a million
//! calls, and at the end of every sync the close copied the whole WAL (0.25 s of a 1.8 s
//! sync of 20,000 calls). Here the writer's connection runs no checkpoint of its own; a second
//! connection on another thread copies each new stretch of WAL (`WalBudget`) while the writer
//! goes on writing, which a PASSIVE checkpoint allows. SQLite starts the WAL over only once
//! every frame is copied, which a writer that never pauses would not leave time for, so once
//! the WAL holds `restart_pages` the writer copies what the last pass left itself, between two
//! commits; the next commit then writes from the WAL's start again.
//!
//! Nothing here changes what a crash leaves: a checkpoint only copies committed pages, and
//! SQLite makes it safe to stop at any instant.

use std::cell::Cell;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

/// When WAL pages are copied into the database file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WalBudget {
    /// WAL pages written since the thread was last woken that wake it again.
    pub pass_pages: i32,
    /// WAL pages at which the writer finishes the copying itself so the WAL starts over.
    pub restart_pages: i32,
}

impl WalBudget {
    /// A pass every 32 MiB of WAL (16 KiB pages): smaller passes leave less for the close to
    /// copy, larger ones copy a page rewritten by many commits fewer times. The WAL starts
    /// over at 256 MiB, SQLite's own interval for the archive's other connections.
    pub(crate) const ARCHIVE: WalBudget = WalBudget {
        pass_pages: 2_048,
        restart_pages: 16_384,
    };
}

thread_local! {
    /// The WAL's length in pages after the last commit on this thread's connection.
    static WAL_PAGES: Cell<i32> = const { Cell::new(0) };
}

/// Set as the writer connection's WAL hook, which also turns its automatic checkpoints off.
fn note_wal_pages(_wal: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// The checkpoint thread of one writer connection.
pub(crate) struct Checkpointer {
    budget: WalBudget,
    wake: Option<SyncSender<()>>,
    /// Held through every pass, so the writer's own checkpoint waits for a pass under way
    /// instead of meeting SQLite's checkpoint lock and giving up.
    passing: Arc<Mutex<()>>,
    thread: Option<JoinHandle<()>>,
    /// The WAL's length when the thread was last woken.
    woken_at: i32,
}

impl Checkpointer {
    /// Starts the thread for `writer`, which must live on the calling thread from now on.
    /// `None` (and SQLite's automatic checkpoints stay on) when a second connection cannot be
    /// opened, as for an archive in memory.
    pub(crate) fn start(writer: &Connection, budget: WalBudget) -> Option<Checkpointer> {
        let path = writer.path().filter(|p| !p.is_empty())?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| c.pragma_update(None, "synchronous", "NORMAL").map(|()| c))
        .map_err(|e| tracing::debug!("checkpoints stay on the writer: {e}"))
        .ok()?;
        let passing = Arc::new(Mutex::new(()));
        let (wake, woken) = sync_channel::<()>(1);
        let held = Arc::clone(&passing);
        let thread = std::thread::Builder::new()
            .name("archive-checkpoints".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    let Ok(_pass) = held.lock() else { break };
                    passive_checkpoint(&conn);
                }
            })
            .map_err(|e| tracing::debug!("checkpoints stay on the writer: {e}"))
            .ok()?;
        WAL_PAGES.with(|p| p.set(0));
        writer.wal_hook(Some(note_wal_pages));
        Some(Checkpointer {
            budget,
            wake: Some(wake),
            passing,
            thread: Some(thread),
            woken_at: 0,
        })
    }

    /// Called by the writer after each commit.
    pub(crate) fn committed(&mut self, writer: &Connection) {
        let pages = WAL_PAGES.with(Cell::get);
        if pages < self.woken_at {
            // The WAL started over.
            self.woken_at = 0;
        }
        if pages >= self.woken_at + self.budget.pass_pages {
            if let Some(wake) = &self.wake {
                match wake.try_send(()) {
                    Ok(()) | Err(TrySendError::Full(())) => self.woken_at = pages,
                    Err(TrySendError::Disconnected(())) => self.wake = None,
                }
            }
        }
        if pages >= self.budget.restart_pages {
            let _pass = self.passing.lock();
            passive_checkpoint(writer);
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.wake.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Copies what the WAL holds that no reader still needs; never waits for a lock. A failure
/// (another process checkpointing, a reader's snapshot) leaves the copying to a later pass.
fn passive_checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::debug!("checkpoint put off: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small enough that a few hundred commits of a few pages each cross both marks many times.
    const SMALL: WalBudget = WalBudget {
        pass_pages: 8,
        restart_pages: 64,
    };

    fn wal_mode_db(path: &std::path::Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            .unwrap();
        conn
    }

    fn file_len(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    /// One commit of `rows` rows of 4 KB (a page each at the default 4 KiB page size, and more).
    fn commit_rows(conn: &Connection, rows: usize) {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        for _ in 0..rows {
            conn.execute("INSERT INTO t (body) VALUES (randomblob(4000))", [])
                .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }

    #[test]
    fn the_thread_copies_the_wal_while_the_writer_waits_for_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let writer = wal_mode_db(&path);
        let mut checkpoints = Checkpointer::start(&writer, SMALL).expect("a second connection");
        let before = file_len(&path);
        // 12 pages and more: past `pass_pages`, short of `restart_pages`, so only the thread
        // can have copied them.
        commit_rows(&writer, 12);
        checkpoints.committed(&writer);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while file_len(&path) < before + 12 * 4000 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            file_len(&path) >= before + 12 * 4000,
            "the database file did not grow: {} bytes, {before} before",
            file_len(&path)
        );
    }

    #[test]
    fn the_wal_starts_over_instead_of_growing_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let wal = dir.path().join("a.db-wal");
        let writer = wal_mode_db(&path);
        let mut checkpoints = Checkpointer::start(&writer, SMALL).expect("a second connection");
        let mut largest = 0;
        for _ in 0..300 {
            commit_rows(&writer, 3);
            checkpoints.committed(&writer);
            largest = largest.max(file_len(&wal));
        }
        // 900 rows of 4 KB (3.6 MB) went through a WAL that started over at 64 pages (256 KiB
        // at 4 KiB a page); without the checkpoints (the hook turns SQLite's own off) it would
        // hold them all.
        assert!(largest < 1_000_000, "the WAL grew to {largest} bytes");
        drop(checkpoints);
        drop(writer);
        let conn = Connection::open(&path).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 900);
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    #[test]
    fn an_archive_in_memory_keeps_sqlite_s_own_checkpoints() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(Checkpointer::start(&conn, WalBudget::ARCHIVE).is_none());
    }
}
