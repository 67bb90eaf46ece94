//! `jobs`: the job queue's statistics, its dead jobs, and putting them back.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use super::stores::{command_queue, database_url, pool};
use crate::cli::{Environment, JobsCommand};

pub(super) async fn jobs(env: Environment, command: JobsCommand) -> anyhow::Result<ExitCode> {
    let args = match &command {
        JobsCommand::Stats(args) | JobsCommand::RetryDead(args) => args,
        JobsCommand::Dead { queue, .. } => queue,
    };
    let queue = command_queue(env, args)?;
    let mut stdout = std::io::stdout().lock();
    match command {
        JobsCommand::Stats(args) => {
            let mut stats = serde_json::to_value(queue.stats().await?)?;
            let db = pool(&database_url(env, &args.pg)?, &args.pg)?;
            stats["outbox"] = labs_jobs::outbox::pending(&db)
                .await
                .context("cannot count the outbox")?
                .into();
            writeln!(stdout, "{}", serde_json::to_string_pretty(&stats)?)?;
        }
        JobsCommand::Dead { limit, .. } => {
            writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(&queue.dead_jobs(limit).await?)?
            )?;
        }
        JobsCommand::RetryDead(_) => {
            let revived = queue.retry_dead().await?;
            writeln!(stdout, "{revived} dead jobs put back on their queues")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
