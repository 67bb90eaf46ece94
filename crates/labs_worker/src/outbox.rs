//! The `relay_outbox` job: moves jobs from the Postgres outbox to the Redis queue.

use labs_db::outbox;
use labs_jobs::jobs::RelayOutbox;
use labs_jobs::{Handler, JobError, RelayError};

use crate::WorkerContext;

/// Rows locked and relayed per transaction.
const BATCH: i64 = 100;
/// Batches per run, so that one run of a periodic job stays short; the next tick goes on.
const BATCHES_PER_RUN: usize = 20;

impl Handler<WorkerContext> for RelayOutbox {
    /// Idempotent by construction: a row is deleted in the transaction that relayed it. If the
    /// commit fails after Redis took the job, the row is relayed again on the next tick: the
    /// job is then queued twice, which at-least-once delivery allows.
    async fn handle(self, ctx: &WorkerContext) -> Result<(), JobError> {
        for _ in 0..BATCHES_PER_RUN {
            match relay_batch(ctx).await {
                Ok(0) => break,
                Ok(_) => {}
                // The next tick, a second away, tries again: failing this run would only fill
                // the dead set during an outage.
                Err(error) => {
                    tracing::warn!(%error, "outbox relay stopped early; the next tick goes on");
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Relays one batch; returns how many rows it took out of the outbox.
async fn relay_batch(ctx: &WorkerContext) -> Result<usize, JobError> {
    let mut tx = ctx.db.begin().await?;
    let rows = outbox::lock_batch(&mut *tx, BATCH).await?;
    let mut relayed = Vec::with_capacity(rows.len());
    let mut stopped = None;
    for row in rows {
        match ctx
            .relay
            .enqueue(&ctx.queue, &row.job_name, row.payload, row.run_at)
            .await
        {
            Ok(job_id) => {
                tracing::debug!(
                    outbox.id = row.id,
                    job.id = job_id,
                    job.name = row.job_name,
                    "outbox job relayed"
                );
                relayed.push(row.id);
            }
            Err(error @ (RelayError::UnknownJob(_) | RelayError::BadPayload(_))) => {
                tracing::error!(outbox.id = row.id, job.name = row.job_name, %error, "outbox job can never be relayed; left for inspection");
                outbox::mark_unrelayable(&mut *tx, row.id, &error.to_string()).await?;
            }
            // Redis is down: keep what was relayed, leave the rest for the next tick.
            Err(error @ RelayError::Queue(_)) => {
                stopped = Some(error);
                break;
            }
        }
    }
    outbox::delete(&mut *tx, &relayed).await?;
    tx.commit().await?;
    if !relayed.is_empty() {
        tracing::info!(count = relayed.len(), "outbox jobs relayed");
    }
    match stopped {
        Some(error) => Err(error.into()),
        None => Ok(relayed.len()),
    }
}
