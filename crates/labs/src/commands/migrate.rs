//! `migrate`: applies pending migrations, then exits.

use std::process::ExitCode;

use super::stores::{database_url, migrated_pool};
use crate::cli::{Environment, MigrateArgs};

pub(super) async fn migrate(env: Environment, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let database_url = database_url(env, &args.pg)?;
    let db = migrated_pool(env, &database_url, &args.pg).await?;
    db.close().await;
    Ok(ExitCode::SUCCESS)
}
