//! The running side: a worker process registers a handler per job type and runs them until
//! shutdown.

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::job::{Handler, JobError, backoff};
use crate::queue::{JobQueue, JobsError, Payload};
use crate::registry::Registry;

/// How a worker process runs jobs.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeConfig {
    /// Jobs run at once, per queue.
    pub concurrency: usize,
    /// After shutdown is asked for: how long running jobs may take to finish. Jobs still
    /// running then are abandoned and re-delivered to another worker (at least once).
    pub drain: Duration,
}

/// Heartbeat of a worker process. Its in-flight jobs are re-delivered once it has missed
/// heartbeats for [`DEAD_AFTER`], checked every [`RESURRECT_SCAN`]: a crashed worker's jobs run
/// again within about 12 s. Longer than oxana's 5 s default so that a paused VM or a long GC
/// in a neighbour does not get a live worker declared dead.
const HEARTBEAT: Duration = Duration::from_secs(1);
const DEAD_AFTER: Duration = Duration::from_secs(10);
const RESURRECT_SCAN: Duration = Duration::from_secs(2);

/// A worker process's job runner. `C` is the context every handler receives.
pub struct Runtime<C: Clone + Send + Sync + 'static> {
    builder: oxana::RuntimeBuilder<C>,
    queues: BTreeSet<&'static str>,
    config: RuntimeConfig,
}

impl<C: Clone + Send + Sync + 'static> std::fmt::Debug for Runtime<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("queues", &self.queues)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<C: Clone + Send + Sync + 'static> Runtime<C> {
    /// A runtime on `queue`'s Redis, under an identity of its own (a new one each time: see
    /// [`JobQueue::storage_for_a_runtime`]). Fails only if the Redis URL does not parse.
    pub fn new(queue: &JobQueue, ctx: C, config: RuntimeConfig) -> Result<Self, JobsError> {
        let builder = queue
            .storage_for_a_runtime()?
            .runtime(ctx)
            .heartbeat_interval(HEARTBEAT)
            .dead_process_threshold(DEAD_AFTER)
            .resurrect_scan_interval(RESURRECT_SCAN)
            // An idle dispatcher sleeps this long before looking again (oxana polls; it does not
            // block on Redis): 10 s by default, which is how late a job queued on an idle worker
            // would start. An empty `LMOVE` five times a second costs Redis nothing.
            .dequeue_timeout(Duration::from_millis(200))
            // Delayed jobs and retries become runnable within a quarter second of their time.
            .schedule_poll_interval(Duration::from_millis(250))
            .retry_poll_interval(Duration::from_millis(250))
            .shutdown_timeout(config.drain);
        Ok(Self {
            builder,
            queues: BTreeSet::new(),
            config,
        })
    }

    /// Runs until `shutdown` is cancelled, then stops taking jobs and lets running ones finish
    /// within the drain timeout.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), JobsError> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            let _ = stop.send(());
        });
        tracing::info!(queues = ?self.queues, concurrency = self.config.concurrency, "worker started");
        let stats = self
            .builder
            .shutdown_on(async move {
                let _ = stopped.await;
                Ok(())
            })
            .run()
            .await;
        match stats {
            Ok(stats) => {
                tracing::info!(
                    processed = stats.processed,
                    failed = stats.failed,
                    "worker stopped"
                );
                Ok(())
            }
            Err(oxana::OxanaError::ShutdownTimeout) => {
                tracing::warn!(
                    drain_ms = self.config.drain.as_millis() as u64,
                    "worker stopped with jobs still running; they will be re-delivered"
                );
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }
}

impl<C: Clone + Send + Sync + 'static> Registry<C> for Runtime<C> {
    /// Runs jobs of type `J` in this process.
    fn job<J: Handler<C>>(mut self) -> Self {
        if self.queues.insert(J::QUEUE) {
            self.builder = self.builder.queue_with(
                oxana::QueueConfig::as_static(J::QUEUE).concurrency(self.config.concurrency.max(1)),
            );
        }
        self.builder = self.builder.worker::<Adapter<J, C>, Payload<J>>();
        self
    }
}

/// Runs the runtime that `build` makes until `shutdown`, rebuilding and restarting it after an
/// error, with a growing pause (1 s doubling to 30 s).
///
/// The queue library ends its runtime after a long Redis outage (and on some claim failures);
/// a worker must outlive the outage and pick up where it left off instead of exiting.
pub async fn supervise<C, F>(build: F, shutdown: CancellationToken)
where
    C: Clone + Send + Sync + 'static,
    F: Fn() -> Result<Runtime<C>, JobsError>,
{
    const FIRST_PAUSE: Duration = Duration::from_secs(1);
    let mut pause = FIRST_PAUSE;
    loop {
        let started = Instant::now();
        // Boxed: the runtime's future is large (kilobytes) and lives across the whole run.
        // Each run is a new runtime under a new identity, so that claims the last one left are
        // re-delivered rather than held by its name.
        let outcome = match build() {
            Ok(runtime) => Box::pin(runtime.run(shutdown.clone())).await,
            Err(error) => Err(error),
        };
        // A runtime that ran a good while before it stopped starts the backoff over: the
        // pause grows only over failures in quick succession.
        if started.elapsed() > Duration::from_secs(60) {
            pause = FIRST_PAUSE;
        }
        match outcome {
            Ok(()) => return,
            Err(error) if !shutdown.is_cancelled() => {
                tracing::error!(%error, pause_ms = pause.as_millis() as u64, "worker runtime stopped; restarting it");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(error) => {
                tracing::warn!(%error, "worker runtime stopped during shutdown");
                return;
            }
        }
    }
}

/// Connects one of our handlers to oxana's worker trait.
struct Adapter<J, C> {
    ctx: C,
    job: PhantomData<fn() -> J>,
}

impl<J, C: Clone> oxana::FromContext<C> for Adapter<J, C> {
    fn from_context(ctx: &C) -> Self {
        Self {
            ctx: ctx.clone(),
            job: PhantomData,
        }
    }
}

/// A handler's error, as oxana's worker trait wants it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failed(JobError);

#[async_trait::async_trait]
impl<J, C> oxana::Worker<Payload<J>> for Adapter<J, C>
where
    J: Handler<C>,
    C: Clone + Send + Sync + 'static,
{
    type Error = Failed;

    async fn process(
        &self,
        Payload { job, trace }: Payload<J>,
        context: &oxana::JobContext,
    ) -> Result<(), Failed> {
        let attempt = context.meta.retries + 1;
        let span = tracing::info_span!(
            "job",
            job.name = J::NAME,
            job.id = %context.meta.id,
            job.attempt = attempt,
            trace_id = tracing::field::Empty
        );
        // In the trace of whoever enqueued it; its own context is current while it runs, so
        // that the jobs it enqueues continue the trace.
        let own = labs_telemetry::trace::adopt(&span, trace);
        let waited_micros = chrono::Utc::now().timestamp_micros() - context.meta.scheduled_at;
        metrics::histogram!("labs_job_queue_wait_seconds", "job" => J::NAME)
            .record(waited_micros.max(0) as f64 / 1e6);
        metrics::counter!("labs_jobs_started_total", "job" => J::NAME).increment(1);
        let run = async {
            let started = Instant::now();
            let outcome = job.handle(&self.ctx).await;
            metrics::histogram!("labs_job_duration_seconds", "job" => J::NAME)
                .record(started.elapsed().as_secs_f64());
            let outcome_label = match &outcome {
                Ok(()) => "succeeded",
                Err(_) if attempt < J::MAX_ATTEMPTS => "retried",
                Err(_) => "dead",
            };
            metrics::counter!("labs_jobs_finished_total", "job" => J::NAME, "outcome" => outcome_label).increment(1);
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            match &outcome {
                // Debug, not info: periodic jobs run every second and busy queues thousands of
                // times a second; successes are counted by metrics, failures are logged below.
                Ok(()) => tracing::debug!(duration_ms, "job succeeded"),
                Err(error) if attempt < J::MAX_ATTEMPTS => {
                    tracing::warn!(duration_ms, %error, "job failed; it will be retried");
                }
                Err(error) => {
                    tracing::error!(duration_ms, %error, "job failed its last attempt; it is dead");
                }
            }
            outcome.map_err(Failed)
        };
        labs_telemetry::trace::within(own, run.instrument(span)).await
    }

    fn max_retries(&self, _job: &Payload<J>) -> u32 {
        J::MAX_ATTEMPTS.saturating_sub(1)
    }

    fn retry_delay(&self, _job: &Payload<J>, retries: u32) -> u64 {
        backoff::<J>(retries + 1).as_secs()
    }
}
