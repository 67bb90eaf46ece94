//! [`Limiter`]: the limits of [`super`], in Redis while it answers and in this process while
//! it does not.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Decision, Quota, check, intervals, millis, refund, remember, remembered};
use crate::RedisConnection;

/// Rate limits in Redis, falling back to limits in this process while Redis does not answer.
///
/// Every call first asks Redis, under `deadline`. When Redis fails or is late, the call is
/// decided by an in-process GCRA (the same algorithm as the Lua scripts, on this process's
/// clock) whose quotas are the configured ones divided by `replicas`, so that the replicas
/// together allow about what Redis would have. While degraded, Redis is asked again at most
/// once a second; the first answer ends the outage. One warning is logged per outage (and one
/// line when it ends), `labs_rate_limit_local_decisions_total` counts the decisions taken
/// here, and `labs_rate_limit_degraded` is 1 during an outage.
///
/// What an outage loses: counts made in Redis before it (the local ones start empty, as after
/// a restart), and the clients remembered there ([`Limiter::remembered`] answers from what this
/// process remembered during the outage only).
///
/// Rejected: `governor`. Its keyed limiter takes one quota per limiter and cannot give a
/// request back, which the guess limits need ([`refund`]); a second algorithm would also make
/// the local limits differ from Redis' in more than the clock.
#[derive(Clone)]
pub struct Limiter {
    redis: RedisConnection,
    local: Arc<Local>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("deadline", &self.local.deadline)
            .field("replicas", &self.local.replicas)
            .finish_non_exhaustive()
    }
}

/// The in-process side of a [`Limiter`].
struct Local {
    deadline: Duration,
    replicas: u32,
    /// Redis as this process sees it: a count of outages begun and ended, odd while Redis is
    /// not answering (see [`Local::question`]).
    state: AtomicU64,
    /// While degraded: when (ms since `epoch`) Redis may be asked again.
    retry_at_ms: AtomicU64,
    epoch: Instant,
    /// Key -> theoretical arrival time (ms since `epoch`).
    cells: Mutex<HashMap<String, u64>>,
    /// Key -> remembered until (ms since `epoch`).
    remembered: Mutex<HashMap<String, u64>>,
}

/// Keys kept in each in-process map before the expired ones are swept out; a sweep that frees
/// nothing empties the map (the limits then start over, as after a restart: bounded memory
/// matters more during an outage than a perfect count).
const LOCAL_KEYS: usize = 100_000;

/// How often a degraded limiter asks Redis again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

impl Limiter {
    /// Limits in `redis`, asked under `deadline`; while Redis does not answer, in this process
    /// with each quota divided by `replicas` (at least 1).
    pub fn new(redis: RedisConnection, deadline: Duration, replicas: u32) -> Self {
        Self {
            redis,
            local: Arc::new(Local {
                deadline,
                replicas: replicas.max(1),
                state: AtomicU64::new(0),
                retry_at_ms: AtomicU64::new(0),
                epoch: Instant::now(),
                cells: Mutex::new(HashMap::new()),
                remembered: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether the limits are decided in this process right now (Redis not answering).
    pub fn is_degraded(&self) -> bool {
        self.local.is_degraded()
    }

    /// Counts one request against `quota` for `key` (see [`check`]).
    pub async fn check(&self, key: &str, quota: Quota) -> Decision {
        let mut redis = self.redis.clone();
        match self.ask(check(&mut redis, key, quota)).await {
            Some(decision) => decision,
            None => self.local.check(key, quota),
        }
    }

    /// Gives back one request counted by [`Limiter::check`] (see [`refund`]).
    pub async fn refund(&self, key: &str, quota: Quota) {
        let mut redis = self.redis.clone();
        if self.ask(refund(&mut redis, key, quota)).await.is_none() {
            self.local.refund(key, quota);
        }
    }

    /// Remembers `key` for `ttl` (see [`remember`]).
    pub async fn remember(&self, key: &str, ttl: Duration) {
        let mut redis = self.redis.clone();
        if self.ask(remember(&mut redis, key, ttl)).await.is_none() {
            self.local.remember(key, ttl);
        }
    }

    /// Whether `key` is remembered (see [`remembered`]).
    pub async fn remembered(&self, key: &str) -> bool {
        let mut redis = self.redis.clone();
        match self.ask(remembered(&mut redis, key)).await {
            Some(found) => found || self.local.is_remembered(key),
            None => self.local.is_remembered(key),
        }
    }

    /// Runs `call` on Redis under the deadline; `None` when Redis failed, was late, or is
    /// known to be down (degraded, and not yet time to ask again).
    async fn ask<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        let local = &self.local;
        let Some(asked) = local.question() else {
            local.decided_here();
            return None;
        };
        match tokio::time::timeout(local.deadline, call).await {
            Ok(Ok(answer)) => {
                local.answered(asked);
                Some(answer)
            }
            failed => {
                let why = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {} ms", local.deadline.as_millis()),
                };
                local.failed(asked, &why);
                local.decided_here();
                None
            }
        }
    }
}

impl Local {
    fn is_degraded(&self) -> bool {
        !self.state.load(Ordering::Acquire).is_multiple_of(2)
    }

    /// Whether to ask Redis now: the state the answer will be judged against, or `None` to
    /// decide here at once (degraded, and another request asked Redis less than a second ago).
    ///
    /// An answer changes the state only if nothing changed it since its question, so a late
    /// answer to an old question cannot end or begin an outage: a reply already on the wire
    /// when Redis died does not end the outage its neighbours just began (that logged a second
    /// warning for one outage), and a question asked before Redis came back that times out
    /// after does not begin a new one. Rejected: a flag set by every answer, which flapped so.
    fn question(&self) -> Option<u64> {
        let state = self.state.load(Ordering::Acquire);
        if !state.is_multiple_of(2) {
            let now = self.now_ms();
            let retry_at = self.retry_at_ms.load(Ordering::Relaxed);
            if now < retry_at
                || self
                    .retry_at_ms
                    .compare_exchange(
                        retry_at,
                        now + millis(RETRY_EVERY),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_err()
            {
                return None;
            }
        }
        Some(state)
    }

    /// Redis answered a question asked in state `asked`; true when that ended an outage.
    fn answered(&self, asked: u64) -> bool {
        let ended = !asked.is_multiple_of(2)
            && self
                .state
                .compare_exchange(asked, asked + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        if ended {
            metrics::gauge!("labs_rate_limit_degraded").set(0.0);
            tracing::info!(
                "rate limiter: Redis answers again; limits are shared by every replica again"
            );
        }
        ended
    }

    /// Redis failed (or was late for) a question asked in state `asked`; true when that began
    /// an outage.
    fn failed(&self, asked: u64, why: &str) -> bool {
        metrics::counter!("labs_redis_errors_total", "operation" => "rate_limit").increment(1);
        self.retry_at_ms
            .store(self.now_ms() + millis(RETRY_EVERY), Ordering::Relaxed);
        let began = asked.is_multiple_of(2)
            && self
                .state
                .compare_exchange(asked, asked + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        if began {
            metrics::gauge!("labs_rate_limit_degraded").set(1.0);
            tracing::warn!(
                error = %why,
                replicas = self.replicas,
                "rate limiter: Redis is not answering; limits are decided per replica until it does"
            );
        }
        began
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    fn decided_here(&self) {
        metrics::counter!("labs_rate_limit_local_decisions_total").increment(1);
    }

    /// This replica's share of `quota`.
    fn share(&self, quota: Quota) -> Quota {
        Quota {
            limit: quota.limit.div_ceil(self.replicas).max(1),
            period: quota.period,
        }
    }

    /// The GCRA of the Lua script, on this process's clock.
    fn check(&self, key: &str, quota: Quota) -> Decision {
        let (interval, window) = intervals(self.share(quota));
        let now = self.now_ms();
        let Ok(mut cells) = self.cells.lock() else {
            return Decision::Allowed;
        };
        let tat = cells.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        let allowed_at = new_tat.saturating_sub(window);
        if allowed_at > now {
            return Decision::Limited {
                retry_after: Duration::from_millis(allowed_at - now),
            };
        }
        bounded(&mut cells, now);
        cells.insert(key.to_owned(), new_tat);
        Decision::Allowed
    }

    fn refund(&self, key: &str, quota: Quota) {
        let (interval, _) = intervals(self.share(quota));
        let now = self.now_ms();
        if let Ok(mut cells) = self.cells.lock()
            && let Some(tat) = cells.get_mut(key)
        {
            *tat = tat.saturating_sub(interval);
            if *tat <= now {
                cells.remove(key);
            }
        }
    }

    fn remember(&self, key: &str, ttl: Duration) {
        let now = self.now_ms();
        if let Ok(mut remembered) = self.remembered.lock() {
            bounded(&mut remembered, now);
            remembered.insert(key.to_owned(), now.saturating_add(millis(ttl)));
        }
    }

    fn is_remembered(&self, key: &str) -> bool {
        let now = self.now_ms();
        self.remembered
            .lock()
            .is_ok_and(|remembered| remembered.get(key).is_some_and(|until| *until > now))
    }
}

/// Makes room in a map of key -> expiry (ms): expired entries go first, then, if that was not
/// enough, all of them.
fn bounded(map: &mut HashMap<String, u64>, now: u64) {
    if map.len() >= LOCAL_KEYS {
        map.retain(|_, until| *until > now);
        if map.len() >= LOCAL_KEYS {
            map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(replicas: u32) -> Local {
        Local {
            deadline: Duration::from_millis(50),
            replicas,
            state: AtomicU64::new(0),
            retry_at_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            cells: Mutex::new(HashMap::new()),
            remembered: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn the_local_limit_allows_the_replicas_share_then_refuses_and_gives_back() {
        let quota = Quota {
            limit: 10,
            period: Duration::from_secs(60),
        };
        // Two replicas: each allows 5 of the 10.
        let limits = local(2);
        for n in 0..5 {
            assert_eq!(limits.check("k", quota), Decision::Allowed, "request {n}");
        }
        assert!(matches!(limits.check("k", quota), Decision::Limited { .. }));
        assert_eq!(
            limits.check("other", quota),
            Decision::Allowed,
            "keys apart"
        );
        limits.refund("k", quota);
        assert_eq!(
            limits.check("k", quota),
            Decision::Allowed,
            "one given back"
        );
        assert!(matches!(limits.check("k", quota), Decision::Limited { .. }));
    }

    #[test]
    fn a_local_memory_expires() {
        let limits = local(1);
        limits.remember("known", Duration::from_secs(60));
        assert!(limits.is_remembered("known"));
        assert!(!limits.is_remembered("stranger"));
        limits.remember("brief", Duration::ZERO);
        assert!(!limits.is_remembered("brief"));
    }

    #[test]
    fn a_late_answer_neither_ends_nor_begins_an_outage() {
        let limits = local(1);
        let first = limits.question().expect("healthy: ask Redis");
        let second = limits.question().expect("healthy: ask Redis");
        assert!(
            limits.failed(first, "connection reset"),
            "the outage begins"
        );
        assert!(limits.is_degraded());
        assert!(
            !limits.answered(second),
            "a reply already on the wire does not end it"
        );
        assert!(limits.is_degraded());
        assert!(!limits.failed(second, "late"), "nor is it a second outage");

        // Once a second, one request asks again; its answer ends the outage.
        limits.retry_at_ms.store(0, Ordering::Relaxed);
        let probe = limits.question().expect("time to ask again");
        assert_eq!(limits.question(), None, "the others decide here");
        let late = first;
        assert!(limits.answered(probe), "the outage ends");
        assert!(!limits.is_degraded());
        assert!(
            !limits.failed(late, "timed out"),
            "a question asked before it ended, failing after, begins no new one"
        );
        assert!(!limits.is_degraded());
        let next = limits.question().expect("healthy");
        assert!(limits.failed(next, "down again"), "a new failure does");
    }
}
