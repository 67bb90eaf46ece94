//! Job throughput, end to end: enqueue N no-op jobs, run K worker processes (this binary,
//! `worker` subcommand), and time until every job is processed. Beside it, the ceiling
//! (`redis-ceiling`): what Redis itself does for the same commands per job, sent by a pipelined
//! loop over K connections, so that the queue's rate reads as a ratio to it. See bench/jobs.sh
//! and docs/PERFORMANCE.md.

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
    /// The Redis ceiling: the commands one job costs the queue (read off `redis-cli monitor`
    /// while `run` ran: an `HSET` of the envelope and an `LPUSH` to enqueue; an `LMOVE` to
    /// claim, an `HGET` of the envelope, an `HSET` of its new state, and the acknowledgment
    /// script, which checks two key types and runs `HDEL` and `LREM`), for `jobs` jobs, sent
    /// in pipelines of `concurrency` jobs per step over `connections` connections at once.
    RedisCeiling {
        #[arg(long, default_value_t = 20_000)]
        jobs: usize,
        #[arg(long, default_value_t = 1)]
        connections: usize,
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
        Mode::RedisCeiling {
            jobs,
            connections,
            concurrency,
        } => redis_ceiling(&cli.redis_url, jobs, connections, concurrency).await?,
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

/// The acknowledgment, as the queue's script does it (oxana's `finish_success.lua`): both keys'
/// types checked, then the payload deleted and the id taken off the processing list.
const ACKNOWLEDGE: &str = r"
for i, expected in ipairs({'hash', 'list'}) do
    local actual = redis.call('type', KEYS[i]).ok
    if actual ~= 'none' and actual ~= expected then
        return redis.error_reply('WRONGTYPE')
    end
end
for _, id in ipairs(ARGV) do
    redis.call('hdel', KEYS[1], id)
    redis.call('lrem', KEYS[2], 1, id)
end
return nil
";

async fn redis_ceiling(
    redis_url: &str,
    jobs: usize,
    connections: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let client = redis::Client::open(redis_url)?;
    let started_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let namespace = format!("bench_{}_{}", std::process::id(), started_at.as_nanos());
    let script = redis::Script::new(ACKNOWLEDGE);
    let mut tasks = Vec::new();
    let mut links = Vec::new();
    for _ in 0..connections {
        let mut connection = client.get_multiplexed_async_connection().await?;
        script.load_async(&mut connection).await?;
        links.push(connection);
    }
    let started = Instant::now();
    for (index, mut connection) in links.into_iter().enumerate() {
        let share = jobs / connections + usize::from(index < jobs % connections);
        let keys = Keys::new(&namespace, index);
        let script = script.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < share {
                let batch = concurrency.min(share - done);
                let ids: Vec<String> = (0..batch)
                    .map(|_| uuid::Uuid::new_v4().to_string())
                    .collect();
                // Enqueue: the envelope, then the id on the queue.
                let mut enqueue = redis::pipe();
                for id in &ids {
                    enqueue
                        .hset(&keys.jobs, id, envelope(id))
                        .ignore()
                        .lpush(&keys.queue, id)
                        .ignore();
                }
                let () = enqueue.query_async(&mut connection).await?;
                // Claim.
                let mut claim = redis::pipe();
                for _ in &ids {
                    claim.lmove(
                        &keys.queue,
                        &keys.processing,
                        redis::Direction::Right,
                        redis::Direction::Left,
                    );
                }
                let claimed: Vec<Option<String>> = claim.query_async(&mut connection).await?;
                let claimed: Vec<String> = claimed.into_iter().flatten().collect();
                anyhow::ensure!(
                    claimed.len() == batch,
                    "claimed {} of {batch}",
                    claimed.len()
                );
                // Load each envelope, store its new state.
                let mut load = redis::pipe();
                for id in &claimed {
                    load.hget(&keys.jobs, id);
                }
                let loaded: Vec<Option<String>> = load.query_async(&mut connection).await?;
                let mut update = redis::pipe();
                for (id, envelope) in claimed.iter().zip(&loaded) {
                    let envelope = envelope.as_deref().unwrap_or_default();
                    update.hset(&keys.jobs, id, format!("{envelope} ")).ignore();
                }
                let () = update.query_async(&mut connection).await?;
                // Acknowledge, one script call per job.
                let mut acknowledge = redis::pipe();
                for id in &claimed {
                    acknowledge
                        .invoke_script(script.key(&keys.jobs).key(&keys.processing).arg(id))
                        .ignore();
                }
                let () = acknowledge.query_async(&mut connection).await?;
                done += batch;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let total = started.elapsed();
    println!(
        "jobs={jobs} connections={connections} concurrency={concurrency} total_s={:.3} jobs_per_s={:.0}",
        total.as_secs_f64(),
        jobs as f64 / total.as_secs_f64()
    );
    Ok(())
}

struct Keys {
    jobs: String,
    queue: String,
    processing: String,
}

impl Keys {
    fn new(namespace: &str, index: usize) -> Self {
        Self {
            jobs: format!("{namespace}:jobs"),
            queue: format!("{namespace}:queue:{index}"),
            processing: format!("{namespace}:processing:{index}"),
        }
    }
}

/// An envelope of the size the queue stores for a no-op job (263 bytes).
fn envelope(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","job":{{"name":"bench_noop","args":{{"n":0}}}},"queue":"bench","meta":{{"id":"{id}","retries":0,"unique":false,"created_at":1796309899664489,"scheduled_at":1796309899664489,"resurrect":true}}}}"#
    )
}
