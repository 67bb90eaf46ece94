//! What each subcommand does: one file a subcommand, and the helpers they share.
//!
//! - `serve.rs`: `serve`, which runs the roles asked for (HTTP, metrics, worker, scheduler)
//!   until shutdown, and stops them all when one fails.
//! - `migrate.rs`: `migrate`, which applies pending migrations.
//! - `healthcheck.rs`: `healthcheck`, a minimal HTTP GET for the container's health check.
//! - `openapi.rs`: `openapi`, which prints the OpenAPI document.
//! - `jobs.rs`: `jobs stats`, `jobs dead` and `jobs retry-dead`, on the job queue.
//! - `email.rs`: `email test`, which queues a test email.
//! - `user.rs`: `user create-admin`.
//! - `keys.rs`: `keys generate`, which prints new key material.
//! - `stores.rs`: the Postgres pool and the Redis job queue the subcommands open, each URL
//!   resolved like every other secret.
//! - `secrets.rs`: the secrets `serve` resolves and checks before its roles start.
//!
//! The subcommand files use the helper files, never each other; the helpers use no subcommand.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command};

mod email;
mod healthcheck;
mod jobs;
mod keys;
mod migrate;
mod openapi;
mod secrets;
mod serve;
mod stores;
mod user;

/// Runs the subcommand `cli` names until it is done or `shutdown` is cancelled.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::serve(cli.env, *args, shutdown).await,
        Command::Migrate(args) => migrate::migrate(cli.env, &args).await,
        Command::Healthcheck(args) => healthcheck::healthcheck(&args).await,
        Command::Openapi(args) => openapi::openapi(&args),
        Command::Jobs(command) => jobs::jobs(cli.env, command).await,
        Command::Email(command) => email::email(cli.env, command).await,
        Command::User(command) => user::user(cli.env, command).await,
        Command::Keys(command) => keys::keys(&command),
    }
}
