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

use std::time::Duration;

use redis::Script;

use crate::RedisConnection;

mod limiter;

pub use limiter::Limiter;

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
