//! What a job is: a serializable payload with a stable name, its retry policy, and (in the
//! worker crate) an idempotent handler.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a handler failed. Any error converts into it with `?`; the job is retried (or dead).
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

/// A kind of background job: the payload that travels through the queue.
///
/// Payloads carry ids and small context (an email address, a template name), never whole
/// objects: the handler reads current state when it runs, which may be minutes later.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable name stored with every queued job. Renaming it orphans jobs already queued.
    const NAME: &'static str;

    /// The queue the job goes to: jobs on different queues do not wait behind each other.
    const QUEUE: &'static str = "default";

    /// Runs in all, the first one included, before the job goes to the dead-letter set.
    const MAX_ATTEMPTS: u32 = 8;

    /// Delay before the first retry; each later retry doubles it, up to [`Self::MAX_BACKOFF`].
    const BASE_BACKOFF: Duration = Duration::from_secs(2);

    /// The longest delay between two attempts.
    const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);
}

/// Runs a job. Implemented by the worker crate for each job it handles, with the context
/// (pool, mailer, ...) the handler needs.
///
/// Delivery is at least once: a crash between the work and its acknowledgement runs the job
/// again, so a handler must be idempotent (check before acting, or make the effect a no-op on
/// repeat, e.g. `INSERT ... ON CONFLICT DO NOTHING`).
pub trait Handler<C>: Job {
    fn handle(self, ctx: &C) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// The delay before retry number `retry` (1 for the first retry) of job `J`: exponential
/// (`BASE_BACKOFF × 2^(retry-1)`, capped at `MAX_BACKOFF`) with "equal jitter" (a random
/// point in the upper half), so that jobs failing together do not retry together.
///
/// Whole seconds, at least one: the queue schedules retries with one-second resolution.
pub fn backoff<J: Job>(retry: u32) -> Duration {
    let exponent = retry.saturating_sub(1).min(30);
    let ceiling = J::BASE_BACKOFF
        .saturating_mul(1 << exponent)
        .min(J::MAX_BACKOFF)
        .as_secs()
        .max(1);
    let half = ceiling / 2;
    let jitter = if ceiling - half == 0 {
        0
    } else {
        // uuid's v4 source is the OS CSPRNG; no other randomness crate is needed for this.
        (uuid::Uuid::new_v4().as_u128() % u128::from(ceiling - half + 1)) as u64
    };
    Duration::from_secs((half + jitter).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize)]
    struct Sample;

    impl Job for Sample {
        const NAME: &'static str = "sample";
        const BASE_BACKOFF: Duration = Duration::from_secs(4);
        const MAX_BACKOFF: Duration = Duration::from_secs(60);
    }

    #[test]
    fn backoff_doubles_within_its_jitter_band_and_is_capped() {
        for _ in 0..200 {
            let first = backoff::<Sample>(1).as_secs();
            assert!((2..=4).contains(&first), "{first}");
            let third = backoff::<Sample>(3).as_secs();
            assert!((8..=16).contains(&third), "{third}");
            let late = backoff::<Sample>(20).as_secs();
            assert!((30..=60).contains(&late), "{late}");
        }
    }

    #[test]
    fn backoff_spreads_jobs_that_fail_together() {
        let delays: std::collections::HashSet<u64> =
            (0..200).map(|_| backoff::<Sample>(5).as_secs()).collect();
        assert!(delays.len() > 5, "{delays:?}");
    }

    #[derive(Serialize, Deserialize)]
    struct Tiny;

    impl Job for Tiny {
        const NAME: &'static str = "tiny";
        const BASE_BACKOFF: Duration = Duration::from_millis(10);
    }

    #[test]
    fn backoff_is_never_zero() {
        for retry in 1..5 {
            assert!(backoff::<Tiny>(retry) >= Duration::from_secs(1));
        }
    }
}
