//! Rate limits shared by every replica, kept in Redis.
//!
//! GCRA (the generic cell rate algorithm, as in tower_governor, but in Redis so that the limit
//! holds across replicas): one key per (limit, subject) holding a "theoretical arrival time".
//! It allows a burst of `limit` requests, then one every `period / limit`, with no fixed
//! windows to game at their edges. One Lua script does the read-decide-write atomically, on
//! Redis' clock, so replicas with skewed clocks agree.
//!
//! [`refund`] gives one request back: callers that count a guess *before* checking it (so that
//! parallel guesses cannot slip past the limit) take it back when the guess was right.
//! [`remember`] and [`remembered`] keep a subject seen to succeed (a client that logged in to
//! an account), which a caller may exempt from a limit.
//!
//! [`Limiter`] is what callers use: the same operations, in Redis while it answers within a
//! short deadline, and in this process while it does not (a Redis outage degrades the limits
//! to per-replica ones; it never turns them off and never fails the request).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::Script;

use crate::RedisConnection;

/// At most `limit` requests per `period` (as a burst, then evenly spread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub period: Duration,
}

impl std::str::FromStr for Quota {
    type Err = String;

    /// `10/1m`, `100/1h`: a count and a period (humantime syntax).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (limit, period) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not `<count>/<period>` (e.g. 10/1m)"))?;
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|_| format!("`{limit}` is not a count"))?;
        let period =
            humantime::parse_duration(period.trim()).map_err(|e| format!("`{period}`: {e}"))?;
        if limit == 0 || period.is_zero() {
            return Err(format!("`{text}`: count and period must be above zero"));
        }
        Ok(Self { limit, period })
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; the next request would be allowed after this long.
    Limited {
        retry_after: Duration,
    },
}

const GCRA: &str = r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now_ms)
if tat < now_ms then tat = now_ms end
local new_tat = tat + interval
local allowed_at = new_tat - window
if allowed_at > now_ms then
  return allowed_at - now_ms
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now_ms)
return 0
";

/// Counts one request against `quota` for `key` (the caller names the limit and the subject
/// in it, e.g. `labs:rl:login:ip:203.0.113.9`).
pub async fn check(
    redis: &mut RedisConnection,
    key: &str,
    quota: Quota,
) -> redis::RedisResult<Decision> {
    let (interval_ms, window_ms) = intervals(quota);
    let wait_ms: u64 = Script::new(GCRA)
        .key(key)
        .arg(interval_ms)
        .arg(window_ms)
        .invoke_async(redis)
        .await?;
    Ok(if wait_ms == 0 {
        Decision::Allowed
    } else {
        Decision::Limited {
            retry_after: Duration::from_millis(wait_ms),
        }
    })
}

// One interval off the arrival time, never below now (an empty bucket stays empty).
const REFUND: &str = r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local new_tat = tat - tonumber(ARGV[1])
if new_tat <= now_ms then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now_ms)
end
return 0
";

/// Gives back one request counted by [`check`] for `key` under the same `quota`.
pub async fn refund(
    redis: &mut RedisConnection,
    key: &str,
    quota: Quota,
) -> redis::RedisResult<()> {
    let (interval_ms, _) = intervals(quota);
    let _: i64 = Script::new(REFUND)
        .key(key)
        .arg(interval_ms)
        .invoke_async(redis)
        .await?;
    Ok(())
}

/// Remembers `key` for `ttl`.
pub async fn remember(
    redis: &mut RedisConnection,
    key: &str,
    ttl: Duration,
) -> redis::RedisResult<()> {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    redis::cmd("SET")
        .arg(key)
        .arg(1)
        .arg("PX")
        .arg(ttl_ms)
        .query_async(redis)
        .await
}

/// Whether `key` is remembered (see [`remember`]).
pub async fn remembered(redis: &mut RedisConnection, key: &str) -> redis::RedisResult<bool> {
    let found: i64 = redis::cmd("EXISTS").arg(key).query_async(redis).await?;
    Ok(found == 1)
}

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
    /// Set while Redis is not answering.
    degraded: AtomicBool,
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
                degraded: AtomicBool::new(false),
                retry_at_ms: AtomicU64::new(0),
                epoch: Instant::now(),
                cells: Mutex::new(HashMap::new()),
                remembered: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether the limits are decided in this process right now (Redis not answering).
    pub fn is_degraded(&self) -> bool {
        self.local.degraded.load(Ordering::Relaxed)
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
        if local.degraded.load(Ordering::Relaxed) {
            let now = local.now_ms();
            let retry_at = local.retry_at_ms.load(Ordering::Relaxed);
            // One request a second asks Redis; the others are decided here at once.
            if now < retry_at
                || local
                    .retry_at_ms
                    .compare_exchange(
                        retry_at,
                        now + millis(RETRY_EVERY),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_err()
            {
                local.decided_here();
                return None;
            }
        }
        match tokio::time::timeout(local.deadline, call).await {
            Ok(Ok(answer)) => {
                if local.degraded.swap(false, Ordering::Relaxed) {
                    metrics::gauge!("labs_rate_limit_degraded").set(0.0);
                    tracing::info!(
                        "rate limiter: Redis answers again; limits are shared by every replica again"
                    );
                }
                Some(answer)
            }
            failed => {
                let why = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {} ms", local.deadline.as_millis()),
                };
                metrics::counter!("labs_redis_errors_total", "operation" => "rate_limit")
                    .increment(1);
                local
                    .retry_at_ms
                    .store(local.now_ms() + millis(RETRY_EVERY), Ordering::Relaxed);
                if !local.degraded.swap(true, Ordering::Relaxed) {
                    metrics::gauge!("labs_rate_limit_degraded").set(1.0);
                    tracing::warn!(
                        error = %why,
                        replicas = local.replicas,
                        "rate limiter: Redis is not answering; limits are decided per replica until it does"
                    );
                }
                local.decided_here();
                None
            }
        }
    }
}

impl Local {
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

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The emission interval and the window of `quota`, in milliseconds.
fn intervals(quota: Quota) -> (u64, u64) {
    let window_ms = u64::try_from(quota.period.as_millis()).unwrap_or(u64::MAX);
    let interval_ms = (window_ms / u64::from(quota.limit)).max(1);
    (interval_ms, interval_ms * u64::from(quota.limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(replicas: u32) -> Local {
        Local {
            deadline: Duration::from_millis(50),
            replicas,
            degraded: AtomicBool::new(false),
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
    fn quotas_parse_from_settings() {
        assert_eq!(
            "10/1m".parse::<Quota>(),
            Ok(Quota {
                limit: 10,
                period: Duration::from_secs(60)
            })
        );
        assert!("10".parse::<Quota>().is_err());
        assert!("0/1m".parse::<Quota>().is_err());
        assert!("x/1m".parse::<Quota>().is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn quota_settings_never_panic(raw in ".{0,40}") {
            if let Ok(quota) = raw.parse::<Quota>() {
                prop_assert!(quota.limit > 0 && !quota.period.is_zero());
            }
        }
    }
}
