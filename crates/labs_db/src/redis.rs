//! The Redis connection: one multiplexed connection per process that reconnects by itself.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};

/// A cheap-to-clone handle on the process's Redis connection.
pub type RedisConnection = ConnectionManager;

/// The Redis URL a development machine uses when `REDIS_URL` is not set.
pub const DEV_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// How this process uses Redis.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Redis")]
pub struct RedisConfig {
    /// Redis URL (`rediss://` for TLS). Defaults to `redis://127.0.0.1:6379` in development;
    /// required in production.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretString>,

    /// Deadline for the answer to one command. redis-rs would otherwise use 500 ms, which is
    /// too short for a loaded server and far too short for blocking commands.
    #[arg(long, env = "LABS_REDIS_RESPONSE_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub redis_response_timeout: Duration,

    /// Deadline for opening a connection.
    #[arg(long, env = "LABS_REDIS_CONNECT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub redis_connect_timeout: Duration,
}

/// Builds the connection manager without connecting; the first command connects.
///
/// While Redis is down, commands fail fast (two quick connection retries, then an error)
/// and the next command tries again, so an outage shows in readiness and heals by itself
/// instead of crashing the process or queueing callers behind a long backoff.
pub fn connect_lazy(
    url: &SecretString,
    config: &RedisConfig,
) -> redis::RedisResult<RedisConnection> {
    let client = redis::Client::open(url.expose_secret())?;
    let manager_config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.redis_response_timeout))
        .set_connection_timeout(Some(config.redis_connect_timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, manager_config)
}

/// One round trip: `PING`.
pub async fn ping(conn: &mut RedisConnection) -> redis::RedisResult<()> {
    redis::cmd("PING").query_async::<()>(conn).await
}

/// Sets `key` only if it does not exist yet, expiring after `ttl`. True for the one caller
/// that set it: a cluster-wide "first one wins" (the scheduler claims each tick with it).
pub async fn claim_once(
    conn: &mut RedisConnection,
    key: &str,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(1)
        .arg("NX")
        .arg("PX")
        .arg(ttl.as_millis() as u64)
        .query_async(conn)
        .await?;
    Ok(set.is_some())
}
