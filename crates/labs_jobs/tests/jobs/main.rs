//! The job system against the real Redis and Postgres: delivery, delays, retries and dead
//! letters, several worker processes, a worker killed mid-job, a drain on SIGTERM, a Redis
//! restart. (The worker crate's own flows, the scheduler, the outbox end to end and the mailer,
//! are in `crates/labs_worker/tests/flows/`.)
//!
//! Every test uses its own Redis key namespace (and, where it needs one, its own database or
//! its own throwaway `redis-server`). Tests that need worker *processes* re-run this test binary
//! as a child (see `child_worker`, which stays here: they run it by its path). This file holds
//! the test jobs, runtimes and worker processes the modules below share.

mod delivery;
mod processes;
mod recovery;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use labs_jobs::{Handler, Job, JobError, JobQueue, JobsConfig, Registry, Runtime, RuntimeConfig};
use labs_testkit::database_url_named;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

// ---- test jobs and their context --------------------------------------------------------

#[derive(Clone)]
struct TestCtx {
    db: PgPool,
}

/// Records that it started, sleeps, then applies its effect idempotently and records that it
/// finished: the shape of a real idempotent handler.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Work {
    key: String,
    sleep_ms: u64,
}

impl Job for Work {
    const NAME: &'static str = "test_work";
    const QUEUE: &'static str = "test";
    const MAX_ATTEMPTS: u32 = 3;
    const BASE_BACKOFF: Duration = Duration::from_secs(1);
}

impl Handler<TestCtx> for Work {
    async fn handle(self, ctx: &TestCtx) -> Result<(), JobError> {
        record(&ctx.db, &self.key, "started").await?;
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        sqlx::query(
            "INSERT INTO test_effects (key, pid) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&self.key)
        .bind(pid())
        .execute(&ctx.db)
        .await?;
        record(&ctx.db, &self.key, "finished").await?;
        Ok(())
    }
}

/// Fails every time, recording each attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AlwaysFails {
    key: String,
}

impl Job for AlwaysFails {
    const NAME: &'static str = "test_always_fails";
    const QUEUE: &'static str = "test";
    const MAX_ATTEMPTS: u32 = 4;
    const BASE_BACKOFF: Duration = Duration::from_secs(1);
}

impl Handler<TestCtx> for AlwaysFails {
    async fn handle(self, ctx: &TestCtx) -> Result<(), JobError> {
        record(&ctx.db, &self.key, "attempt").await?;
        Err("the test job always fails".into())
    }
}

fn pid() -> i32 {
    i32::try_from(std::process::id()).unwrap_or_default()
}

async fn record(db: &PgPool, key: &str, event: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO test_runs (key, pid, event) VALUES ($1, $2, $3)")
        .bind(key)
        .bind(pid())
        .bind(event)
        .execute(db)
        .await?;
    Ok(())
}

async fn create_fixture_tables(db: &PgPool) {
    sqlx::query("CREATE TABLE test_runs (key text NOT NULL, pid int NOT NULL, event text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        .execute(db)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE test_effects (key text PRIMARY KEY, pid int NOT NULL)")
        .execute(db)
        .await
        .unwrap();
}

async fn count(db: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

fn jobs_config(namespace: &str) -> JobsConfig {
    JobsConfig {
        jobs_namespace: namespace.to_owned(),
        worker_concurrency: 8,
        dead_job_limit: 1000,
    }
}

fn queue_on(redis_url: &str, namespace: &str) -> JobQueue {
    JobQueue::new(
        &SecretString::from(redis_url),
        &jobs_config(namespace),
        Duration::from_secs(2),
    )
    .unwrap()
}

fn test_runtime(
    queue: &JobQueue,
    db: PgPool,
    concurrency: usize,
    drain: Duration,
) -> Runtime<TestCtx> {
    Runtime::new(queue, TestCtx { db }, RuntimeConfig { concurrency, drain })
        .unwrap()
        .job::<Work>()
        .job::<AlwaysFails>()
}

/// Runs the test runtime in this process, supervised as the worker role runs it, until the
/// returned token is cancelled.
fn spawn_runtime(
    queue: &JobQueue,
    db: PgPool,
    concurrency: usize,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let token = CancellationToken::new();
    let (queue, stop) = (queue.clone(), token.clone());
    let handle = tokio::spawn(async move {
        labs_jobs::supervise(
            || {
                Ok(test_runtime(
                    &queue,
                    db.clone(),
                    concurrency,
                    Duration::from_secs(5),
                ))
            },
            stop,
        )
        .await;
    });
    (token, handle)
}

/// Polls `check` until it is true, failing the test after `timeout`.
async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn database_name(db: &PgPool) -> String {
    db.connect_options().get_database().unwrap().to_owned()
}

// ---- worker processes -----------------------------------------------------------------

const CHILD: &str = "LABS_TEST_CHILD_WORKER";

/// Not a test: the body of a worker process that the tests below start by running this test
/// binary again with `--ignored --exact child_worker` and the settings in `LABS_TEST_CHILD_WORKER`.
/// Runs the test jobs until SIGTERM, then drains and exits 0.
#[test]
#[ignore = "a worker process started by other tests"]
fn child_worker() {
    #[expect(
        clippy::disallowed_methods,
        reason = "a child process reads its test settings"
    )]
    let Ok(settings) = std::env::var(CHILD) else {
        return;
    };
    let [redis_url, namespace, database_url, concurrency, drain_ms]: [&str; 5] =
        settings.split('|').collect::<Vec<_>>().try_into().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = PgPool::connect(database_url).await.unwrap();
        let queue = queue_on(redis_url, namespace);
        let token = CancellationToken::new();
        let stop = token.clone();
        tokio::spawn(async move {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
            terminate.recv().await;
            stop.cancel();
        });
        let drain = Duration::from_millis(drain_ms.parse().unwrap());
        test_runtime(&queue, db, concurrency.parse().unwrap(), drain)
            .run(token)
            .await
            .unwrap();
    });
}

struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(
        redis_url: &str,
        namespace: &str,
        db: &PgPool,
        concurrency: usize,
        drain: Duration,
    ) -> Self {
        let settings = format!(
            "{redis_url}|{namespace}|{}|{concurrency}|{}",
            database_url_named(&database_name(db)),
            drain.as_millis()
        );
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_worker",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, settings)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }

    fn signal(&self, signal: &str) {
        labs_testkit::signal(self.0.id(), signal);
    }

    fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        labs_testkit::wait_for_exit(&mut self.0, timeout)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
