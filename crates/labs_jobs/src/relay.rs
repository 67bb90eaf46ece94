//! Enqueueing jobs that were stored encoded (name, queue, JSON payload): the Postgres outbox
//! keeps them that way until Redis takes them.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use time::OffsetDateTime;

use crate::job::{Handler, Job};
use crate::queue::{JobQueue, JobsError};
use crate::registry::Registry;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Enqueue = for<'a> fn(
    &'a JobQueue,
    serde_json::Value,
    Option<OffsetDateTime>,
) -> BoxFuture<'a, Result<String, JobsError>>;

/// Decodes an encoded job by its name into its type, then enqueues it: a payload that does
/// not fit its type is refused here, not found broken by a worker later.
#[derive(Default)]
pub struct Relay {
    by_name: HashMap<&'static str, Enqueue>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("Relay").field("jobs", &names).finish()
    }
}

/// Why an encoded job could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("no job type is named `{0}`")]
    UnknownJob(String),
    #[error("the payload does not fit its job type: {0}")]
    BadPayload(serde_json::Error),
    #[error(transparent)]
    Queue(#[from] JobsError),
}

impl Relay {
    /// Enqueues the job `name` with `payload`, at `run_at` if given.
    pub async fn enqueue(
        &self,
        queue: &JobQueue,
        name: &str,
        payload: serde_json::Value,
        run_at: Option<OffsetDateTime>,
    ) -> Result<String, RelayError> {
        let enqueue = self
            .by_name
            .get(name)
            .ok_or_else(|| RelayError::UnknownJob(name.to_owned()))?;
        match enqueue(queue, payload, run_at).await {
            Err(JobsError::Encode(error)) => Err(RelayError::BadPayload(error)),
            other => Ok(other?),
        }
    }
}

fn enqueue_as<J: Job>(
    queue: &JobQueue,
    payload: serde_json::Value,
    run_at: Option<OffsetDateTime>,
) -> BoxFuture<'_, Result<String, JobsError>> {
    Box::pin(async move {
        // The job joins the trace of the request that wrote it to the outbox.
        let (payload, trace) = crate::queue::split_trace(payload);
        let job: J = serde_json::from_value(payload)?;
        let enqueue = async {
            match run_at {
                Some(at) => queue.enqueue_at(job, at).await,
                None => queue.enqueue(job).await,
            }
        };
        match trace {
            Some(trace) => labs_telemetry::trace::within(trace, enqueue).await,
            None => enqueue.await,
        }
    })
}

impl<C> Registry<C> for Relay {
    fn job<J: Handler<C>>(mut self) -> Self {
        self.by_name.insert(J::NAME, enqueue_as::<J>);
        self
    }
}
