//! A periodic job: a job type and its cron schedule. Each feature lists its own (its crate's
//! `schedule()`); the scheduler role (labs_worker::scheduler) enqueues one run at each tick.

use std::str::FromStr;

use crate::{Job, JobQueue, JobsError};

/// A periodic job: its schedule and how to enqueue one run.
#[derive(Debug, Clone)]
pub struct Periodic {
    pub name: &'static str,
    pub schedule: cron::Schedule,
    enqueue: fn(&JobQueue) -> EnqueueFuture<'_>,
}

type EnqueueFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, JobsError>> + Send + 'a>>;

impl Periodic {
    /// Job `J` (built with `Default`) on `schedule`: cron with seconds, e.g. `0 */5 * * * *`.
    /// Panics on an invalid expression: the lists are fixed in code and checked by a test.
    pub fn every<J: Job + Default>(schedule: &str) -> Self {
        Self {
            name: J::NAME,
            schedule: cron::Schedule::from_str(schedule)
                .unwrap_or_else(|e| panic!("bad cron schedule for {}: {e}", J::NAME)),
            enqueue: |queue| Box::pin(queue.enqueue(J::default())),
        }
    }

    /// Enqueues one run; the job's id.
    pub async fn enqueue(&self, queue: &JobQueue) -> Result<String, JobsError> {
        (self.enqueue)(queue).await
    }
}
