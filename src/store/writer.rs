//! The archive's one writer thread.
//!
//! rusqlite blocks, so the read-write connection lives on a thread of its own and the async
//! side sends it jobs over a bounded channel: a fetch task that outruns the disk waits for
//! room (backpressure), and no SQLite call ever runs on the async runtime. Jobs run one at a
//! time in the order they were sent; each answers on its own oneshot.

use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::{Archive, StoreError};

type Job = Box<dyn FnOnce(&mut Archive) + Send>;

/// Jobs queued before a sender has to wait.
const QUEUE_DEPTH: usize = 16;

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
                while let Some(job) = rx.blocking_recv() {
                    job(&mut archive);
                }
            })
            .ok();
        ArchiveWriter {
            jobs: thread.is_some().then_some(tx),
            thread,
        }
    }

    /// Runs `f` on the writer thread and waits for its answer.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Archive) -> Result<T, StoreError> + Send + 'static,
    {
        let jobs = self.jobs.as_ref().ok_or(StoreError::WriterGone)?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |archive| {
            let _ = reply.send(f(archive));
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
