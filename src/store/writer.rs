//! The archive's one writer thread.
//!
//! rusqlite blocks, so the read-write connection lives on a thread of its own and the async
//! side sends it jobs over a bounded channel: a fetch task that outruns the disk waits for
//! room (backpressure), and no SQLite call ever runs on the async runtime. Jobs run one at a
//! time in the order they were sent.
//!
//! Jobs that are already queued when the thread turns to them share one commit (group
//! commit): each runs in its own savepoint, so a failing job undoes only its own work, and
//! every job is answered only once the commit holding it is durable. A commit is the
//! costliest step of a write (WAL frames, checkpoints), and a busy sync queues many pages.

use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::{Archive, StoreError};

/// Answers a job once the fate of its commit is known (`Some` when the commit failed).
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut Archive) -> Answer + Send>;

/// Jobs queued before a sender has to wait.
const QUEUE_DEPTH: usize = 32;
/// Jobs one commit holds at most, so that answers are never held back for long.
const GROUP_LIMIT: usize = 64;

pub struct ArchiveWriter {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl ArchiveWriter {
    pub fn spawn(mut archive: Archive) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let thread = std::thread::Builder::new()
            .name("archive-writer".into())
            .spawn(move || {
                let mut answers = Vec::with_capacity(GROUP_LIMIT);
                while let Some(first) = rx.blocking_recv() {
                    let group = archive.begin_group();
                    answers.push(first(&mut archive));
                    while answers.len() < GROUP_LIMIT {
                        match rx.try_recv() {
                            Ok(job) => answers.push(job(&mut archive)),
                            Err(_) => break,
                        }
                    }
                    let committed = match group {
                        Some(group) => archive.commit_group(group),
                        None => Ok(()),
                    };
                    for answer in answers.drain(..) {
                        answer(committed.as_ref().err());
                    }
                }
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
        let jobs = self.jobs.as_ref().ok_or(StoreError::WriterGone)?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |archive| {
            let result = f(archive);
            Box::new(move |commit_failed: Option<&StoreError>| {
                let result = match commit_failed {
                    Some(e) if result.is_ok() => Err(StoreError::Commit(e.to_string())),
                    _ => result,
                };
                let _ = reply.send(result);
            })
        });
        jobs.send(job).await.map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
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
