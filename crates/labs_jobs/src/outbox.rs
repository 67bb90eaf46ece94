//! The job outbox: a job written to Postgres in the transaction of the change it belongs to,
//! and the relay that moves it to the Redis queue once that change has committed.
//!
//! [`enqueue`] is the one call a writer makes: the job goes out if and only if its change
//! commits, and a Redis outage at that moment delays it instead of failing the request (the
//! relay, a periodic job every second, retries until Redis answers). Enqueueing straight to
//! Redis ([`JobQueue::enqueue`]) is for jobs that belong to no database change (the
//! scheduler's ticks, `labs email test`).
//!
//! The table is `job_outbox` (migration `20261128010000_job_outbox.sql`).

use labs_db::Db;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;

use crate::Context;
use crate::job::{Handler, Job, JobError};
use crate::jobs::RelayOutbox;
use crate::queue::{JobQueue, encode};
use crate::relay::{Relay, RelayError};

/// A payload that does not serialise (a bug in the job type) is an [`sqlx::Error::Encode`]:
/// the outbox calls return the database's error type, so that a writer's `?` needs nothing
/// more than it already handles. Rejected: an error type of our own, which every HTTP-facing
/// crate would have to map into its problem type.
fn encoded<J: Job>(job: J) -> Result<serde_json::Value, sqlx::Error> {
    encode(job).map_err(|error| sqlx::Error::Encode(Box::new(error)))
}

/// Writes `job` to the outbox in the caller's transaction (`&mut *tx`), with the current trace
/// context, so that the worker runs it in the trace of the request that wrote it.
pub async fn enqueue<J: Job>(tx: &mut PgConnection, job: J) -> Result<(), sqlx::Error> {
    insert(tx, J::NAME, &encoded(job)?, None).await
}

/// [`enqueue`], to run no earlier than `at`.
pub async fn enqueue_at<J: Job>(
    tx: &mut PgConnection,
    job: J,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    insert(tx, J::NAME, &encoded(job)?, Some(at)).await
}

/// [`enqueue`] if `send`; otherwise runs the same statement, which writes nothing. For answers
/// that must do the same work whether or not their address has an account (docs/SECURITY.md,
/// "Account existence").
pub async fn enqueue_if<J: Job>(
    tx: &mut PgConnection,
    send: bool,
    job: J,
) -> Result<(), sqlx::Error> {
    let payload = encoded(job)?;
    sqlx::query!(
        "INSERT INTO job_outbox (job_name, payload) SELECT $1, $2 WHERE $3",
        J::NAME,
        Json(&payload) as _,
        send,
    )
    .execute(tx)
    .await?;
    Ok(())
}

async fn insert(
    tx: &mut PgConnection,
    job_name: &str,
    payload: &serde_json::Value,
    run_at: Option<OffsetDateTime>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO job_outbox (job_name, payload, run_at) VALUES ($1, $2, $3)",
        job_name,
        Json(payload) as _,
        run_at,
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Rows not relayed yet (unrelayable ones included).
pub async fn pending(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT COUNT(*) AS "count!" FROM job_outbox"#)
        .fetch_one(db)
        .await
}

/// What the relay needs from a worker's context beyond [`Context`]: the decoder of every job
/// type the worker runs.
pub trait RelayContext: Context {
    fn relay(&self) -> &Relay;
}

/// Rows locked and relayed per transaction.
const BATCH: i64 = 100;
/// Batches per run, so that one run of a periodic job stays short; the next tick goes on.
const BATCHES_PER_RUN: usize = 20;

impl<C: RelayContext> Handler<C> for RelayOutbox {
    /// Idempotent by construction: a row is deleted in the transaction that relayed it. If the
    /// commit fails after Redis took the job, the row is relayed again on the next tick: the
    /// job is then queued twice, which at-least-once delivery allows.
    async fn handle(self, ctx: &C) -> Result<(), JobError> {
        for _ in 0..BATCHES_PER_RUN {
            match relay_batch(ctx.db(), ctx.queue(), ctx.relay()).await {
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

/// Relays everything pending now, batch after batch; returns how many rows it relayed. For a
/// drain in tests and tools; the worker relays through the periodic [`RelayOutbox`] job.
pub async fn relay_all(db: &Db, queue: &JobQueue, relay: &Relay) -> Result<usize, JobError> {
    let mut total = 0;
    loop {
        match relay_batch(db, queue, relay).await? {
            0 => return Ok(total),
            relayed => total += relayed,
        }
    }
}

/// A row waiting in the outbox.
struct OutboxRow {
    id: i64,
    job_name: String,
    payload: serde_json::Value,
    run_at: Option<OffsetDateTime>,
}

/// Relays one batch; returns how many rows it took out of the outbox.
async fn relay_batch(db: &Db, queue: &JobQueue, relay: &Relay) -> Result<usize, JobError> {
    let mut tx = db.begin().await?;
    // `SKIP LOCKED`, not a plain `FOR UPDATE`: two relays running at once (two schedulers by
    // mistake, or a slow relay overlapping the next tick) take different rows instead of
    // waiting for each other.
    let rows = sqlx::query_as!(
        OutboxRow,
        r#"SELECT id, job_name, payload AS "payload: _", run_at
           FROM job_outbox
           WHERE last_error IS NULL
           ORDER BY id
           LIMIT $1
           FOR UPDATE SKIP LOCKED"#,
        BATCH,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut relayed = Vec::with_capacity(rows.len());
    let mut stopped = None;
    for row in rows {
        match relay
            .enqueue(queue, &row.job_name, row.payload, row.run_at)
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
                sqlx::query!(
                    "UPDATE job_outbox SET last_error = $2 WHERE id = $1",
                    row.id,
                    error.to_string()
                )
                .execute(&mut *tx)
                .await?;
            }
            // Redis is down: keep what was relayed, leave the rest for the next tick.
            Err(error @ RelayError::Queue(_)) => {
                stopped = Some(error);
                break;
            }
        }
    }
    sqlx::query!("DELETE FROM job_outbox WHERE id = ANY($1)", &relayed)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if !relayed.is_empty() {
        tracing::info!(count = relayed.len(), "outbox jobs relayed");
    }
    match stopped {
        Some(error) => Err(error.into()),
        None => Ok(relayed.len()),
    }
}
