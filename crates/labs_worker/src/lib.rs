//! What the worker and scheduler roles run: the handler of every job type, and the schedule
//! of periodic jobs.
//!
//! [`jobs`] is the one list of job types. It is applied to the worker runtime (to run them)
//! and to the outbox relay (to decode them), so a job type cannot be runnable but not
//! relayable, or the reverse.
//!
//! Not here: the shared payload types, the queue and the outbox relay (labs_jobs), SQL
//! (each feature's `db`), a feature's own jobs (its crate exports them; labs_features lists
//! the features).

pub mod email;
pub mod scheduler;

use std::sync::Arc;

use labs_accounts::PurgeConfig;
use labs_db::Db;
use labs_jobs::jobs::{RelayOutbox, SendEmail};
use labs_jobs::{JobQueue, Registry, Relay};

use crate::email::{EmailCap, Mailer};

/// What every handler can reach.
#[derive(Clone)]
pub struct WorkerContext {
    pub db: Db,
    pub queue: JobQueue,
    pub mailer: Mailer,
    /// The cap on messages to one address; `None` sends without one (tests of other things).
    pub email_cap: Option<EmailCap>,
    pub relay: Arc<Relay>,
    /// What the hourly purge deletes (default: the settings' defaults).
    pub purge: PurgeConfig,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// Every feature's handlers run on this context (they are generic over [`labs_jobs::Context`]).
impl labs_jobs::Context for WorkerContext {
    fn db(&self) -> &Db {
        &self.db
    }
    fn queue(&self) -> &JobQueue {
        &self.queue
    }
}

/// The outbox relay ([`RelayOutbox`], in labs_jobs) runs on this context.
impl labs_jobs::outbox::RelayContext for WorkerContext {
    fn relay(&self) -> &Relay {
        &self.relay
    }
}

/// The accounts' jobs run on this context.
impl labs_accounts::AccountsContext for WorkerContext {
    fn db(&self) -> &Db {
        &self.db
    }
    fn purge(&self) -> PurgeConfig {
        self.purge
    }
}

impl WorkerContext {
    pub fn new(db: Db, queue: JobQueue, mailer: Mailer) -> Self {
        Self {
            db,
            queue,
            mailer,
            email_cap: None,
            relay: Arc::new(jobs(Relay::default())),
            purge: PurgeConfig::default(),
        }
    }

    /// The same, with `cap` on the messages each address receives (the worker role sets it).
    #[must_use]
    pub fn with_email_cap(mut self, cap: EmailCap) -> Self {
        self.email_cap = Some(cap);
        self
    }
}

/// Every job type the application runs, in one list: the shared ones, the accounts', then
/// those of every feature in the service's list (labs_features).
pub fn jobs<R: Registry<WorkerContext>>(registry: R) -> R {
    registry
        // Emails, through SMTP (or the log in development).
        .job::<SendEmail>()
        // The Postgres outbox, moved to the queue every second.
        .job::<RelayOutbox>()
        // Each feature's own.
        .include(labs_accounts::jobs)
        .include(labs_features::jobs)
}

/// Runs the worker role until `shutdown`: every job type of [`jobs`], restarted after an
/// error (see [`labs_jobs::supervise`]).
pub async fn run_worker(
    ctx: WorkerContext,
    config: labs_jobs::RuntimeConfig,
    shutdown: tokio_util::sync::CancellationToken,
) {
    // Boxed: the supervised runtime's future is kilobytes large.
    Box::pin(labs_jobs::supervise(
        || labs_jobs::Runtime::new(&ctx.queue, ctx.clone(), config).map(jobs),
        shutdown,
    ))
    .await;
}
