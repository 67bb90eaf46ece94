//! Job throughput, end to end: enqueue N no-op jobs, run K worker processes (this binary,
//! `worker` subcommand), and time until every job is processed. See bench/jobs.sh and
//! docs/PERFORMANCE.md.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use labs_jobs::{Handler, Job, JobError, JobQueue, JobsConfig, Registry, Runtime, RuntimeConfig};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Cli {
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// One measured run.
    Run {
        #[arg(long, default_value_t = 20_000)]
        jobs: usize,
        #[arg(long, default_value_t = 1)]
        workers: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// A worker process (started by `run`).
    Worker {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        concurrency: usize,
    },
}

/// Does nothing: the benchmark measures the queue, not a handler.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Noop {
    n: usize,
}

impl Job for Noop {
    const NAME: &'static str = "bench_noop";
    const QUEUE: &'static str = "bench";
}

impl Handler<()> for Noop {
    async fn handle(self, _ctx: &()) -> Result<(), JobError> {
        Ok(())
    }
}

fn queue(redis_url: &str, namespace: &str, concurrency: usize) -> anyhow::Result<JobQueue> {
    let config = JobsConfig {
        jobs_namespace: namespace.to_owned(),
        worker_concurrency: concurrency,
        dead_job_limit: 1000,
    };
    Ok(JobQueue::new(
        &SecretString::from(redis_url),
        &config,
        Duration::from_secs(5),
    )?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Mode::Worker {
            namespace,
            concurrency,
        } => {
            let queue = queue(&cli.redis_url, &namespace, concurrency)?;
            let shutdown = CancellationToken::new();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                stop.cancel();
            });
            let config = RuntimeConfig {
                concurrency,
                drain: Duration::from_secs(5),
            };
            Runtime::new(&queue, (), config)?
                .job::<Noop>()
                .run(shutdown)
                .await?;
        }
        Mode::Run {
            jobs,
            workers,
            concurrency,
        } => {
            let started_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
            let namespace = format!("bench_{}_{}", std::process::id(), started_at.as_nanos());
            let queue = queue(&cli.redis_url, &namespace, concurrency)?;
            let mut children: Vec<Child> = (0..workers)
                .map(|_| {
                    Command::new(std::env::current_exe()?)
                        .args([
                            "--redis-url",
                            &cli.redis_url,
                            "worker",
                            "--namespace",
                            &namespace,
                        ])
                        .args(["--concurrency", &concurrency.to_string()])
                        .stdout(Stdio::null())
                        .spawn()
                })
                .collect::<Result<_, _>>()?;
            // Let the workers register before the clock starts.
            while queue.stats().await?.workers < workers {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }

            let started = Instant::now();
            for chunk in (0..jobs).collect::<Vec<_>>().chunks(1000) {
                queue
                    .enqueue_many(chunk.iter().map(|&n| Noop { n }).collect())
                    .await?;
            }
            let enqueued = started.elapsed();
            loop {
                let stats = queue.stats().await?;
                if usize::try_from(stats.processed).unwrap_or(0) >= jobs {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let total = started.elapsed();
            println!(
                "jobs={jobs} workers={workers} concurrency={concurrency} enqueue_s={:.3} total_s={:.3} jobs_per_s={:.0}",
                enqueued.as_secs_f64(),
                total.as_secs_f64(),
                jobs as f64 / total.as_secs_f64()
            );
            for child in &mut children {
                let _ = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status();
                let _ = child.wait();
            }
        }
    }
    Ok(())
}
