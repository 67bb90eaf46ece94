//! The enqueue side: `JobQueue` puts jobs on the Redis queue and reads its state.

use std::num::NonZeroUsize;
use std::time::Duration;

use labs_telemetry::TraceContext;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::job::Job;

/// Settings of the job queue, shared by every role that enqueues or runs jobs.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Jobs")]
pub struct JobsConfig {
    /// Prefix of every Redis key the queue uses, so that several deployments (or tests) can
    /// share one Redis.
    #[arg(long, env = "LABS_JOBS_NAMESPACE", default_value = "labs")]
    pub jobs_namespace: String,

    /// Jobs one worker process runs at the same time, per queue.
    #[arg(long, env = "LABS_WORKER_CONCURRENCY", default_value_t = 16)]
    pub worker_concurrency: usize,

    /// Dead jobs kept for inspection and `labs jobs retry-dead`; beyond it the oldest are
    /// dropped (Redis must not grow without bound).
    #[arg(long, env = "LABS_DEAD_JOB_LIMIT", default_value_t = 10_000)]
    pub dead_job_limit: usize,
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// Redis did not answer, or refused the operation.
    #[error("job queue unavailable: {0}")]
    Unavailable(#[from] oxana::OxanaError),
    /// A payload did not serialise (a bug in the job type).
    #[error("job payload could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// A time outside what the queue can represent.
    #[error("invalid run time: {0}")]
    InvalidTime(String),
}

/// The payload as oxana stores it: our job's JSON object, under our stable name, plus the
/// trace context of whoever enqueued it (`_traceparent`, absent when there was none), so that
/// the worker runs the job in the same trace.
pub(crate) struct Payload<J> {
    pub(crate) job: J,
    pub(crate) trace: Option<TraceContext>,
}

/// The reserved member of a job's JSON object that carries its trace context.
const TRACEPARENT_KEY: &str = "_traceparent";

/// A job as stored outside the queue until it is enqueued (the Postgres outbox): its JSON with
/// the current trace context, which the relay restores when it enqueues it.
pub(crate) fn encode<J: Job>(job: J) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(Payload::new(job))
}

impl<J> Payload<J> {
    /// `job`, in the trace context current on this task (a request's, or a job's).
    pub(crate) fn new(job: J) -> Self {
        Self {
            job,
            trace: labs_telemetry::trace::current(),
        }
    }
}

impl<J: Serialize> Serialize for Payload<J> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = serde_json::to_value(&self.job).map_err(serde::ser::Error::custom)?;
        if let (Some(trace), Some(object)) = (self.trace, value.as_object_mut()) {
            object.insert(TRACEPARENT_KEY.to_owned(), trace.traceparent().into());
        }
        value.serialize(serializer)
    }
}

impl<'de, J: DeserializeOwned> Deserialize<'de> for Payload<J> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (job, trace) = split_trace(serde_json::Value::deserialize(deserializer)?);
        let job = serde_json::from_value(job).map_err(serde::de::Error::custom)?;
        Ok(Self { job, trace })
    }
}

/// Takes the trace context out of a job's JSON (jobs enqueued before tracing have none).
pub(crate) fn split_trace(mut job: serde_json::Value) -> (serde_json::Value, Option<TraceContext>) {
    let trace = job
        .as_object_mut()
        .and_then(|object| object.remove(TRACEPARENT_KEY))
        .and_then(|value| value.as_str().and_then(TraceContext::parse));
    (job, trace)
}

impl<J: Job> oxana::Job for Payload<J> {
    fn name() -> &'static str {
        J::NAME
    }
}

/// A queue key known at run time (oxana's `Queue` is usually a type per queue).
pub(crate) struct NamedQueue(pub(crate) String);

impl oxana::Queue for NamedQueue {
    fn key(&self) -> String {
        self.0.clone()
    }

    fn to_config() -> oxana::QueueConfig {
        oxana::QueueConfig::as_static("default")
    }

    fn config(&self) -> oxana::QueueConfig {
        oxana::QueueConfig::as_static(self.0.clone())
    }
}

/// A handle on the queue: cheap to clone, connects lazily (a Redis outage makes enqueueing
/// fail, never the process).
#[derive(Clone)]
pub struct JobQueue {
    storage: oxana::Storage,
    /// How `storage` was built, so that each worker runtime gets a storage of its own (see
    /// [`JobQueue::storage_for_a_runtime`]).
    recipe: std::sync::Arc<Recipe>,
}

/// What a storage is built from.
struct Recipe {
    url: SecretString,
    namespace: String,
    dead_job_limit: usize,
    response_timeout: Duration,
}

impl Recipe {
    fn build(&self) -> Result<oxana::Storage, JobsError> {
        Ok(oxana::Storage::builder()
            .namespace(self.namespace.clone())
            .dead_job_limit(NonZeroUsize::new(self.dead_job_limit))
            .redis_response_timeout(self.response_timeout)
            .build_from_redis_url(self.url.expose_secret())?)
    }
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueue")
            .field("namespace", &self.storage.namespace())
            .finish_non_exhaustive()
    }
}

impl JobQueue {
    /// A queue on the Redis at `url`. Does not connect yet.
    pub fn new(
        url: &SecretString,
        config: &JobsConfig,
        response_timeout: Duration,
    ) -> Result<Self, JobsError> {
        let recipe = Recipe {
            url: url.clone(),
            namespace: config.jobs_namespace.clone(),
            dead_job_limit: config.dead_job_limit,
            response_timeout,
        };
        Ok(Self {
            storage: recipe.build()?,
            recipe: std::sync::Arc::new(recipe),
        })
    }

    /// A new storage for one worker runtime: same Redis and namespace, its own identity.
    ///
    /// oxana names a worker process by its storage (host, pid and an id drawn when the storage
    /// is built), and re-delivers a process's in-flight jobs only once that name stops
    /// heartbeating. A runtime that ends on a Redis error can leave a claim behind (Redis moved
    /// a job to its in-flight list, the reply never came back). Were the next runtime built on
    /// the same storage, it would heartbeat under the same name and that job would stay in
    /// flight for ever; under a name of its own, the ended runtime's list counts as dead and
    /// its jobs run again (at least once). Rejected: one storage per process with our own sweep
    /// of the in-flight list, which would race oxana's claim bookkeeping.
    pub(crate) fn storage_for_a_runtime(&self) -> Result<oxana::Storage, JobsError> {
        self.recipe.build()
    }

    /// Queues `job` to run as soon as a worker is free. Returns its id.
    pub async fn enqueue<J: Job>(&self, job: J) -> Result<String, JobsError> {
        let queued = self
            .storage
            .enqueue(NamedQueue(J::QUEUE.to_owned()), Payload::new(job))
            .await;
        Ok(counted::<J, _>(queued, 1)?)
    }

    /// Queues many jobs of one type at once (one round trip per batch, not per job).
    pub async fn enqueue_many<J: Job>(&self, jobs: Vec<J>) -> Result<usize, JobsError> {
        let payloads: Vec<Payload<J>> = jobs.into_iter().map(Payload::new).collect();
        let count = payloads.len();
        let queued = self
            .storage
            .enqueue_list(NamedQueue(J::QUEUE.to_owned()), payloads)
            .await;
        counted::<J, _>(queued, count as u64)?;
        Ok(count)
    }

    /// Queues `job` to run after `delay` (whole seconds; shorter delays round up).
    pub async fn enqueue_in<J: Job>(&self, job: J, delay: Duration) -> Result<String, JobsError> {
        let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        let queued = self
            .storage
            .enqueue_in(NamedQueue(J::QUEUE.to_owned()), Payload::new(job), seconds)
            .await;
        Ok(counted::<J, _>(queued, 1)?)
    }

    /// Queues `job` to run at `at` (at once if `at` is past).
    pub async fn enqueue_at<J: Job>(
        &self,
        job: J,
        at: OffsetDateTime,
    ) -> Result<String, JobsError> {
        let at = to_chrono(at)?;
        let queued = self
            .storage
            .enqueue_at(NamedQueue(J::QUEUE.to_owned()), Payload::new(job), at)
            .await;
        Ok(counted::<J, _>(queued, 1)?)
    }

    /// How many jobs are where, right now.
    pub async fn stats(&self) -> Result<QueueStats, JobsError> {
        let stats = self.storage.stats().await?;
        Ok(QueueStats {
            queued: stats.global.enqueued,
            in_flight: stats.processing.len(),
            scheduled: stats.global.scheduled,
            retrying: stats.global.retries,
            dead: stats.global.dead,
            processed: stats.global.processed,
            failed: stats.global.failed,
            workers: stats.processes.len(),
            queues: stats
                .queues
                .into_iter()
                .map(|queue| QueueDepth {
                    name: queue.key,
                    queued: queue.enqueued,
                    latency_seconds: queue.latency_s,
                })
                .collect(),
        })
    }

    /// Samples the queue's state into gauges (`labs_jobs_*`, per queue where it applies). One
    /// process samples (the scheduler), so that the gauges are not multiplied by replicas.
    pub async fn record_depth_metrics(&self) -> Result<(), JobsError> {
        let stats = self.stats().await?;
        metrics::gauge!("labs_jobs_in_flight").set(stats.in_flight as f64);
        metrics::gauge!("labs_jobs_scheduled").set(stats.scheduled as f64);
        metrics::gauge!("labs_jobs_retrying").set(stats.retrying as f64);
        metrics::gauge!("labs_jobs_dead").set(stats.dead as f64);
        metrics::gauge!("labs_job_workers").set(stats.workers as f64);
        for queue in stats.queues {
            metrics::gauge!("labs_job_queue_depth", "queue" => queue.name.clone())
                .set(queue.queued as f64);
            metrics::gauge!("labs_job_queue_latency_seconds", "queue" => queue.name)
                .set(queue.latency_seconds);
        }
        Ok(())
    }

    /// The most recent dead jobs, newest first.
    pub async fn dead_jobs(&self, limit: usize) -> Result<Vec<DeadJob>, JobsError> {
        let options = oxana::QueueListOpts {
            count: limit,
            offset: 0,
        };
        let dead = self.storage.list_dead(&options).await?;
        Ok(dead
            .into_iter()
            .map(|envelope| DeadJob {
                id: envelope.id,
                name: envelope.job.name,
                queue: envelope.queue,
                attempts: envelope.meta.retries + 1,
                error: envelope.meta.error,
                args: envelope.job.args,
            })
            .collect())
    }

    /// Puts every dead job back on its queue, attempts reset. Returns how many.
    pub async fn retry_dead(&self) -> Result<usize, JobsError> {
        Ok(self.storage.revive_all_dead().await?)
    }
}

/// Counts enqueued jobs (`labs_jobs_enqueued_total{job}`) and failed enqueues.
fn counted<J: Job, T>(
    result: Result<T, oxana::OxanaError>,
    jobs: u64,
) -> Result<T, oxana::OxanaError> {
    if result.is_ok() {
        metrics::counter!("labs_jobs_enqueued_total", "job" => J::NAME).increment(jobs);
    } else {
        metrics::counter!("labs_jobs_enqueue_errors_total", "job" => J::NAME).increment(1);
    }
    result
}

fn to_chrono(at: OffsetDateTime) -> Result<chrono::DateTime<chrono::Utc>, JobsError> {
    let micros = i64::try_from(at.unix_timestamp_nanos() / 1000)
        .map_err(|e| JobsError::InvalidTime(e.to_string()))?;
    chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| JobsError::InvalidTime(at.to_string()))
}

/// Where the jobs are.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    /// Waiting for a worker, all queues together.
    pub queued: usize,
    /// Being run by a worker right now.
    pub in_flight: usize,
    /// Waiting for their run time.
    pub scheduled: usize,
    /// Failed, waiting for their next attempt.
    pub retrying: usize,
    /// Failed their last attempt; see `labs jobs dead`, re-drive with `labs jobs retry-dead`.
    pub dead: usize,
    /// Runs finished since the queue was created.
    pub processed: i64,
    /// Runs that failed since the queue was created.
    pub failed: i64,
    /// Worker processes alive.
    pub workers: usize,
    /// Per queue.
    pub queues: Vec<QueueDepth>,
}

/// One queue's depth.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueDepth {
    pub name: String,
    pub queued: usize,
    /// How long the oldest waiting job has waited.
    pub latency_seconds: f64,
}

/// A job that failed its last attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeadJob {
    pub id: String,
    pub name: String,
    pub queue: String,
    pub attempts: u32,
    /// The last error.
    pub error: Option<String>,
    pub args: serde_json::Value,
}
