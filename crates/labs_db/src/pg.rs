//! The Postgres pool and the migrations.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::PgConnectOptions;

use crate::pool::{Db, PoolSettings};

/// The migrations in `migrations/` at the repository root, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// The database URL a development machine uses when `DATABASE_URL` is not set.
pub const DEV_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/labs";

/// How this process uses Postgres.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Postgres")]
pub struct PgConfig {
    /// Postgres URL. Defaults to `postgres://postgres@127.0.0.1:5432/labs` in development;
    /// required in production.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,

    /// Most connections this process keeps open. Size it so that replicas × this stays under
    /// the server's `max_connections`.
    #[arg(long, env = "LABS_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// How long a caller waits for a free connection before it gets an error.
    #[arg(long, env = "LABS_DB_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub db_acquire_timeout: Duration,

    /// Longest a single statement may run on the server (Postgres `statement_timeout`).
    #[arg(long, env = "LABS_DB_STATEMENT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub db_statement_timeout: Duration,
}

/// Builds the pool without connecting: the first query opens the first connection.
///
/// Lazy on purpose: a process whose database is briefly down at start-up still starts, and
/// says so through readiness, instead of crash-looping. When the pool tests a connection, and
/// why it is not sqlx's own pool: [`crate::pool`].
pub fn connect_lazy(url: &SecretString, config: &PgConfig) -> Result<Db, sqlx::Error> {
    let options: PgConnectOptions = url.expose_secret().parse()?;
    let statement_timeout = config.db_statement_timeout.as_millis().to_string();
    let options = options
        .application_name("labs")
        .options([("statement_timeout", statement_timeout.as_str())]);
    Ok(Db::new(
        options,
        PoolSettings::new(
            config.db_max_connections as usize,
            config.db_acquire_timeout,
        ),
    ))
}

/// Creates the database named in `url` if it does not exist (development convenience; in
/// production the database is provisioned with the server).
pub async fn create_database_if_missing(url: &SecretString) -> Result<bool, sqlx::Error> {
    let url = url.expose_secret();
    if sqlx::Postgres::database_exists(url).await? {
        return Ok(false);
    }
    sqlx::Postgres::create_database(url).await?;
    Ok(true)
}

/// Applies every pending migration. Safe to run from several processes at once: sqlx holds a
/// Postgres advisory lock while it migrates.
pub async fn migrate(db: &Db) -> Result<(), sqlx::migrate::MigrateError> {
    let mut connection = db.acquire().await?;
    MIGRATOR.run(&mut *connection).await
}
