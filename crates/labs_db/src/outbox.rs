//! The job outbox (see the migration): rows written with a business change, relayed to Redis.

use sqlx::PgExecutor;
use sqlx::types::Json;
use time::OffsetDateTime;

/// A job waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxJob {
    pub id: i64,
    pub job_name: String,
    pub payload: serde_json::Value,
    pub run_at: Option<OffsetDateTime>,
}

/// Writes a job to the outbox. Call it with the transaction of the change the job belongs to.
pub async fn insert(
    db: impl PgExecutor<'_>,
    job_name: &str,
    payload: &serde_json::Value,
    run_at: Option<OffsetDateTime>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO job_outbox (job_name, payload, run_at) VALUES ($1, $2, $3) RETURNING id",
        job_name,
        Json(payload) as _,
        run_at,
    )
    .fetch_one(db)
    .await
}

/// Writes a job to the outbox if `send`; otherwise runs the same statement, which writes
/// nothing. For answers that must do the same work whether or not their address has an
/// account (docs/SECURITY.md, "Account existence").
pub async fn insert_if(
    db: impl PgExecutor<'_>,
    send: bool,
    job_name: &str,
    payload: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO job_outbox (job_name, payload) SELECT $1, $2 WHERE $3",
        job_name,
        Json(payload) as _,
        send,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Locks up to `limit` of the oldest rows for relaying, inside the caller's transaction.
///
/// `SKIP LOCKED`, not a plain `FOR UPDATE`: two relays running at once (two schedulers by
/// mistake, or a slow relay overlapping the next tick) take different rows instead of waiting
/// for each other.
pub async fn lock_batch(
    db: impl PgExecutor<'_>,
    limit: i64,
) -> Result<Vec<OutboxJob>, sqlx::Error> {
    sqlx::query_as!(
        OutboxJob,
        r#"SELECT id, job_name, payload AS "payload: _", run_at
           FROM job_outbox
           WHERE last_error IS NULL
           ORDER BY id
           LIMIT $1
           FOR UPDATE SKIP LOCKED"#,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Deletes relayed rows.
pub async fn delete(db: impl PgExecutor<'_>, ids: &[i64]) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!("DELETE FROM job_outbox WHERE id = ANY($1)", ids)
        .execute(db)
        .await?;
    Ok(deleted.rows_affected())
}

/// Marks a row that can never be relayed, so that the relay skips it from now on.
pub async fn mark_unrelayable(
    db: impl PgExecutor<'_>,
    id: i64,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE job_outbox SET last_error = $2 WHERE id = $1",
        id,
        error
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Rows not relayed yet (unrelayable ones included).
pub async fn pending(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT COUNT(*) AS "count!" FROM job_outbox"#)
        .fetch_one(db)
        .await
}
