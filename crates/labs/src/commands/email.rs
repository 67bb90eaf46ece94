//! `email`: queues a test email, for the worker to send.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use labs_jobs::jobs::{Message, SendEmail};

use super::stores::command_queue;
use crate::cli::{EmailCommand, Environment};

pub(super) async fn email(env: Environment, command: EmailCommand) -> anyhow::Result<ExitCode> {
    match command {
        EmailCommand::Test {
            to,
            requested_by,
            queue: args,
        } => {
            // The mailer's own rule, so that a typo fails here rather than in the worker's log.
            let to = labs_domain::Email::parse(&to)
                .context("--to is not an address the mailer can send to")?;
            let queue = command_queue(env, &args)?;
            let job = SendEmail {
                to: to.into_string(),
                email: Message::test(&requested_by),
            };
            let id = queue.enqueue(job).await?;
            writeln!(std::io::stdout().lock(), "queued test email as job {id}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
