//! The scheduler role: periodic jobs, declared in one list in cron syntax, enqueued at each
//! tick. Run one scheduler; if two run by mistake, each tick still fires once, because the
//! scheduler that enqueues it first claims the tick in Redis (`SET NX`).
//!
//! Trade-offs: ticks missed while no scheduler runs are skipped, not caught up; a scheduler
//! that dies between claiming a tick and enqueueing its job loses that one tick.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use labs_accounts::PurgeExpiredCredentials;
use labs_db::RedisConnection;
use labs_jobs::jobs::RelayOutbox;
use labs_jobs::{Job, JobQueue, JobsError};
use tokio_util::sync::CancellationToken;

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
    /// Panics on an invalid expression: the list is fixed in code and checked by a test.
    pub fn every<J: Job + Default>(schedule: &str) -> Self {
        Self {
            name: J::NAME,
            schedule: cron::Schedule::from_str(schedule)
                .unwrap_or_else(|e| panic!("bad cron schedule for {}: {e}", J::NAME)),
            enqueue: |queue| Box::pin(queue.enqueue(J::default())),
        }
    }
}

/// Every periodic job, in one list.
pub fn schedule() -> Vec<Periodic> {
    vec![
        // Move jobs written with database changes to the queue.
        Periodic::every::<RelayOutbox>("* * * * * *"),
        // Delete credentials that can no longer be used (at minute 17, off the hour's peak).
        Periodic::every::<PurgeExpiredCredentials>("0 17 * * * *"),
    ]
}

/// How long a claimed tick stays claimed: long enough that no late scheduler fires it again.
const CLAIM_TTL: Duration = Duration::from_secs(15 * 60);

/// Enqueues each job of `periodic` at each of its ticks until `shutdown` is cancelled.
pub async fn run(
    periodic: Vec<Periodic>,
    queue: JobQueue,
    mut redis: RedisConnection,
    namespace: &str,
    shutdown: CancellationToken,
) {
    tracing::info!(jobs = ?periodic.iter().map(|p| p.name).collect::<Vec<_>>(), "scheduler started");
    let mut next: Vec<Option<DateTime<Utc>>> = periodic
        .iter()
        .map(|p| p.schedule.upcoming(Utc).next())
        .collect();
    loop {
        let Some(soonest) = next.iter().flatten().min().copied() else {
            tracing::warn!("no periodic job has a next tick; scheduler idle");
            shutdown.cancelled().await;
            break;
        };
        let wait = (soonest - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        for (job, tick) in periodic.iter().zip(next.iter_mut()) {
            let Some(at) = *tick else { continue };
            if at > Utc::now() {
                continue;
            }
            fire(job, at, &queue, &mut redis, namespace).await;
            *tick = job.schedule.after(&at).next();
        }
    }
    tracing::info!("scheduler stopped");
}

async fn fire(
    job: &Periodic,
    at: DateTime<Utc>,
    queue: &JobQueue,
    redis: &mut RedisConnection,
    namespace: &str,
) {
    let key = format!("{namespace}:scheduler:{}:{}", job.name, at.timestamp());
    match labs_db::redis::claim_once(redis, &key, CLAIM_TTL).await {
        Ok(true) => match (job.enqueue)(queue).await {
            Ok(job_id) => {
                tracing::debug!(job.name = job.name, job.id = job_id, tick = %at, "periodic job enqueued");
            }
            Err(error) => {
                tracing::warn!(job.name = job.name, tick = %at, %error, "periodic job could not be enqueued; tick skipped");
            }
        },
        Ok(false) => {
            tracing::debug!(job.name = job.name, tick = %at, "tick already fired by another scheduler");
        }
        Err(error) => {
            tracing::warn!(job.name = job.name, tick = %at, %error, "cannot claim tick (Redis down?); tick skipped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::schedule;

    #[test]
    fn every_schedule_parses_and_ticks() {
        for periodic in schedule() {
            assert!(
                periodic.schedule.upcoming(chrono::Utc).next().is_some(),
                "{}",
                periodic.name
            );
        }
    }
}
