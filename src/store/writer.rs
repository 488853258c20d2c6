//! The archive's one writer thread.
//!
//! rusqlite blocks, so the read-write connection lives on a thread of its own and the async
//! side sends it jobs over a bounded channel: a fetch task that outruns the disk waits for
//! room (backpressure), and no SQLite call ever runs on the async runtime. Jobs run one at a
//! time in the order they were sent.
//!
//! Jobs that are already queued when the thread turns to them share one commit (group
//! commit), and every job is answered only once the commit holding it is durable. A commit
//! is the costliest step of a write (WAL frames, checkpoints), and a busy sync queues many
//! pages. The group commits whole or not at all: if one job fails, every job of the group
//! is answered with an error and nothing of it is kept, so no job is ever half written.
//! Checkpoints run beside the writer, on a thread of their own (`checkpoints`).

use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::checkpoints::{Checkpointer, WalBudget};
use super::{Archive, StoreError};

/// Answers a job once the fate of its commit is known (`Some` when the commit failed).
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// Runs a job; says whether it succeeded, and how to answer it.
type Job = Box<dyn FnOnce(&mut Archive) -> (bool, Answer) + Send>;

/// Jobs queued before a sender has to wait.
const QUEUE_DEPTH: usize = 32;
/// Jobs one commit holds at most, so that answers are never held back for long.
const GROUP_LIMIT: usize = 64;

pub struct ArchiveWriter {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// A job on the writer's queue; its answer comes once its work is committed (or failed).
pub struct Queued<T>(oneshot::Receiver<Result<T, StoreError>>);

impl<T> Queued<T> {
    pub async fn answer(self) -> Result<T, StoreError> {
        self.0.await.map_err(|_| StoreError::WriterGone)?
    }
}

impl ArchiveWriter {
    pub fn spawn(mut archive: Archive) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let thread = std::thread::Builder::new()
            .name("archive-writer".into())
            .spawn(move || {
                let mut checkpoints = Checkpointer::start(archive.connection(), WalBudget::ARCHIVE);
                let mut answers = Vec::with_capacity(GROUP_LIMIT);
                while let Some(first) = rx.blocking_recv() {
                    let group = archive.begin_group();
                    let mut all_ok = true;
                    let mut job = Some(first);
                    while let Some(next) = job.take() {
                        let (ok, answer) = next(&mut archive);
                        all_ok &= ok;
                        answers.push(answer);
                        // Without a group each job committed on its own: answer it alone.
                        if group.is_some() && all_ok && answers.len() < GROUP_LIMIT {
                            job = rx.try_recv().ok();
                        }
                    }
                    let committed = match group {
                        Some(group) => archive.end_group(group, all_ok),
                        None => Ok(()),
                    };
                    for answer in answers.drain(..) {
                        answer(committed.as_ref().err());
                    }
                    if let Some(checkpoints) = &mut checkpoints {
                        checkpoints.committed(archive.connection());
                    }
                }
                // Its connection closes first, so the writer's close copies the WAL's rest.
                drop(checkpoints);
            })
            .ok();
        ArchiveWriter {
            jobs: thread.is_some().then_some(tx),
            thread,
        }
    }

    /// Runs `f` on the writer thread and waits for its answer, which comes once its work is
    /// committed.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Archive) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(f).await?.answer().await
    }

    /// Queues `f` for the writer thread without waiting for it, so the caller can go on (fetch
    /// the next page) while the writer works; waits only while the queue is full. Jobs run in
    /// the order they were queued.
    pub async fn submit<T, F>(&self, f: F) -> Result<Queued<T>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Archive) -> Result<T, StoreError> + Send + 'static,
    {
        let jobs = self.jobs.as_ref().ok_or(StoreError::WriterGone)?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |archive| {
            let result = f(archive);
            let ok = result.is_ok();
            let answer: Answer = Box::new(move |commit_failed: Option<&StoreError>| {
                let result = match commit_failed {
                    Some(e) if result.is_ok() => Err(StoreError::Commit(e.to_string())),
                    _ => result,
                };
                let _ = reply.send(result);
            });
            (ok, answer)
        });
        jobs.send(job).await.map_err(|_| StoreError::WriterGone)?;
        Ok(Queued(answer))
    }

    /// Waits for queued jobs to finish and closes the connection.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ArchiveWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a marker row through a job's write scope; fails after writing when asked.
    fn mark(archive: &mut Archive, scope: &str, fail: bool) -> Result<(), StoreError> {
        let tx = archive.write_scope()?;
        tx.execute(
            "INSERT INTO sync_state (source_id, scope, provider) VALUES (1, ?1, 'bluejay')",
            [scope],
        )?;
        if fail {
            return Err(StoreError::WriterGone);
        }
        tx.commit()?;
        Ok(())
    }

    /// The marker rows the archive at `path` kept.
    fn marks(path: &std::path::Path) -> Vec<String> {
        let conn = Archive::open_read_only(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT scope FROM sync_state ORDER BY scope")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_failing_job_takes_its_whole_group_back_and_later_jobs_still_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let writer = ArchiveWriter::spawn(Archive::open(&path).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (first, failing, later) = runtime.block_on(async {
            // The first job holds the thread until the other two are queued behind it, so the
            // failing one is taken into its group: a gate it waits on, opened once both are
            // queued (`submit` returns once a job is on the queue).
            let (open_gate, gate) = std::sync::mpsc::channel::<()>();
            let first = writer
                .submit(move |a| {
                    gate.recv().map_err(|_| StoreError::WriterGone)?;
                    mark(a, "first", false)
                })
                .await
                .unwrap();
            let failing = writer.submit(|a| mark(a, "failing", true)).await.unwrap();
            let later = writer.submit(|a| mark(a, "later", false)).await.unwrap();
            open_gate.send(()).unwrap();
            tokio::join!(first.answer(), failing.answer(), later.answer())
        });
        writer.close();
        assert!(
            matches!(first, Err(StoreError::Commit(_))),
            "the first job shared a commit that was rolled back: {first:?}"
        );
        assert!(
            matches!(failing, Err(StoreError::WriterGone)),
            "{failing:?}"
        );
        assert!(later.is_ok(), "{later:?}");
        assert_eq!(marks(&path), ["later"]);
    }

    #[test]
    fn without_a_writer_thread_a_scope_is_its_own_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let mut archive = Archive::open(&path).unwrap();
        assert!(mark(&mut archive, "failing", true).is_err());
        mark(&mut archive, "kept", false).unwrap();
        drop(archive);
        assert_eq!(marks(&path), ["kept"]);
    }
}
