//! The scheduler role: periodic jobs, declared in one list in cron syntax, enqueued at each
//! tick. Run one scheduler; if two run by mistake, each tick still fires once, because the
//! scheduler that enqueues it first claims the tick in Redis (`SET NX`).
//!
//! Trade-offs: ticks missed while no scheduler runs are skipped, not caught up; a scheduler
//! that dies between claiming a tick and enqueueing its job loses that one tick.

use std::time::Duration;

use chrono::{DateTime, Utc};
use labs_db::RedisConnection;
use labs_jobs::JobQueue;
pub use labs_jobs::Periodic;
use labs_jobs::jobs::RelayOutbox;
use tokio_util::sync::CancellationToken;

/// Every periodic job: the platform's, then each feature's own list.
pub fn schedule() -> Vec<Periodic> {
    let mut periodic = vec![
        // Move jobs written with database changes to the queue.
        Periodic::every::<RelayOutbox>("* * * * * *"),
    ];
    // The accounts' (the hourly purge of credentials), then the features' (labs_features).
    periodic.extend(labs_accounts::schedule());
    periodic.extend(labs_features::schedule());
    periodic
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
        Ok(true) => match job.enqueue(queue).await {
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
