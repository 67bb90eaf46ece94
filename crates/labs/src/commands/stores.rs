//! The stores the subcommands open: the Postgres pool and the Redis job queue, each URL
//! resolved like every other secret (development default, or set explicitly in production).

use anyhow::Context;
use labs_db::pg::{self, DEV_DATABASE_URL};
use labs_db::redis::DEV_REDIS_URL;
use labs_db::{Db, PgConfig, RedisConfig};
use labs_jobs::{JobQueue, JobsConfig};
use secrecy::SecretString;

use crate::cli::{Environment, QueueArgs};
use crate::settings::required_secret;

/// A lazy pool on `url`; the only way commands open one, so the error names the variable.
pub(super) fn pool(url: &SecretString, config: &PgConfig) -> anyhow::Result<Db> {
    pg::connect_lazy(url, config).context("DATABASE_URL is not a valid Postgres URL")
}

pub(super) fn database_url(env: Environment, config: &PgConfig) -> anyhow::Result<SecretString> {
    required_secret(
        env,
        "DATABASE_URL",
        config.database_url.as_ref(),
        DEV_DATABASE_URL,
    )
}

/// Connects and applies pending migrations; in development, creates the database first if
/// it does not exist (in production it is provisioned with the server).
pub(super) async fn migrated_pool(
    env: Environment,
    url: &SecretString,
    config: &PgConfig,
) -> anyhow::Result<Db> {
    if !env.is_production()
        && pg::create_database_if_missing(url)
            .await
            .context("cannot reach Postgres at DATABASE_URL")?
    {
        tracing::info!("created the development database");
    }
    let db = pool(url, config)?;
    pg::migrate(&db).await.context("migrations failed")?;
    tracing::info!(
        version = labs_db::schema::expected_version(),
        "database schema is up to date"
    );
    Ok(db)
}

pub(super) fn redis_url(env: Environment, config: &RedisConfig) -> anyhow::Result<SecretString> {
    required_secret(env, "REDIS_URL", config.redis_url.as_ref(), DEV_REDIS_URL)
}

pub(super) fn job_queue(
    url: &SecretString,
    redis: &RedisConfig,
    jobs: &JobsConfig,
) -> anyhow::Result<JobQueue> {
    JobQueue::new(url, jobs, redis.redis_response_timeout)
        .context("REDIS_URL is not a valid Redis URL for the job queue")
}

/// The queue (and its settings) a `jobs` or `email` command works on.
pub(super) fn command_queue(env: Environment, args: &QueueArgs) -> anyhow::Result<JobQueue> {
    job_queue(&redis_url(env, &args.redis)?, &args.redis, &args.jobs)
}
