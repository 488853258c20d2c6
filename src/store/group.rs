//! Group commits: the writer thread runs several jobs in one transaction.

use std::cell::Cell;

use rusqlite::{Connection, Savepoint};

use super::{Archive, StoreError};

pub(super) struct GroupState {
    /// A job left its scope without committing: the group must not commit.
    poisoned: Cell<bool>,
}

/// Where one operation writes: its own savepoint, or the writer's open group transaction.
///
/// Inside a group a savepoint per job would copy every page the job touches to the
/// sub-journal first (a sixth of a large sync's time); the group instead commits or rolls
/// back whole, and a job that fails poisons it.
pub(crate) enum WriteScope<'a> {
    Own(Savepoint<'a>),
    Group {
        conn: &'a Connection,
        guard: GroupGuard<'a>,
    },
}

/// Poisons the group when a job's scope ends without a commit (an error, an early return).
pub(crate) struct GroupGuard<'a> {
    poisoned: &'a Cell<bool>,
    committed: bool,
}

impl Drop for GroupGuard<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.poisoned.set(true);
        }
    }
}

impl WriteScope<'_> {
    pub(crate) fn commit(self) -> rusqlite::Result<()> {
        match self {
            WriteScope::Own(savepoint) => savepoint.commit(),
            WriteScope::Group { mut guard, .. } => {
                guard.committed = true;
                Ok(())
            }
        }
    }
}

impl std::ops::Deref for WriteScope<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            WriteScope::Own(savepoint) => savepoint,
            WriteScope::Group { conn, .. } => conn,
        }
    }
}

/// Proof that a group transaction is open on the writer's connection.
pub(crate) struct CommitGroup(());

impl Archive {
    /// Where the next operation writes (see `WriteScope`).
    pub(crate) fn write_scope(&mut self) -> rusqlite::Result<WriteScope<'_>> {
        match &self.group {
            Some(group) => Ok(WriteScope::Group {
                conn: &self.conn,
                guard: GroupGuard {
                    poisoned: &group.poisoned,
                    committed: false,
                },
            }),
            None => self.conn.savepoint().map(WriteScope::Own),
        }
    }

    /// Opens a transaction that the jobs run next share. `None` when it cannot be opened:
    /// each job then commits on its own.
    pub(crate) fn begin_group(&mut self) -> Option<CommitGroup> {
        self.conn.execute_batch("BEGIN IMMEDIATE").ok()?;
        self.group = Some(GroupState {
            poisoned: Cell::new(false),
        });
        Some(CommitGroup(()))
    }

    /// Ends the group: commits what its jobs wrote if every one of them succeeded
    /// (`all_ok`), and rolls it all back otherwise.
    pub(crate) fn end_group(
        &mut self,
        _group: CommitGroup,
        all_ok: bool,
    ) -> Result<(), StoreError> {
        let poisoned = self.group.take().is_some_and(|g| g.poisoned.get());
        if self.conn.is_autocommit() {
            // An error inside a job (disk full, I/O) rolled the whole transaction back.
            return Err(StoreError::Commit("the transaction was rolled back".into()));
        }
        if poisoned || !all_ok {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(StoreError::Commit(
                "a write that shared its commit failed, so nothing of the commit was kept".into(),
            ));
        }
        self.conn.execute_batch("COMMIT").map_err(|e| {
            let _ = self.conn.execute_batch("ROLLBACK");
            StoreError::Commit(e.to_string())
        })
    }
}
