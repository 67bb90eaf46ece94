//! Liveness and readiness, for orchestrators and load balancers.
//!
//! Liveness says only that the process answers: restarting it cannot fix a database outage,
//! so liveness never looks at dependencies. Readiness makes one real round trip to each
//! dependency, concurrently, each under a deadline, and answers 503 while any of them fails,
//! so that traffic goes elsewhere until it recovers (which it does by itself: the pool and
//! the Redis manager reconnect on the next check).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use labs_db::{Db, RedisConnection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::Json;

/// The health routes, served by every role (whatever its state, as long as it holds a
/// [`Health`]).
pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Health: axum::extract::FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(get_liveness))
        .routes(routes!(get_readiness))
}

/// Liveness: the process is up and answering.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Liveness {
    /// Always `ok`.
    pub status: String,
}

/// Readiness: whether this process can serve requests, and why not.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// True when every dependency this process needs answered in time.
    pub ready: bool,
    /// True when Redis did not answer but this process serves without it (the api and hooks
    /// roles: rate limits fall back to per-replica ones, jobs wait in the outbox).
    pub degraded: bool,
    /// One check per dependency.
    pub checks: DependencyChecks,
}

/// The result of each dependency's check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyChecks {
    /// A query on the database, which also checks that its migrations are applied.
    pub postgres: Check,
    /// A `PING` to Redis.
    pub redis: Check,
}

/// One dependency's check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// True when the dependency answered correctly within the deadline.
    pub ok: bool,
    /// How long the check took, in milliseconds.
    pub latency_ms: f64,
    /// Why the check failed: `timeout`, `unavailable`, or a schema that is behind this build.
    /// Details are in the server's log, not here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    /// Counts a failed check in `labs_dependency_check_failures_total{dependency}`.
    fn counted(self, dependency: &'static str) -> Self {
        if !self.ok {
            metrics::counter!("labs_dependency_check_failures_total", "dependency" => dependency)
                .increment(1);
        }
        self
    }

    fn new(started: Instant, error: Option<String>) -> Self {
        Self {
            ok: error.is_none(),
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            error,
        }
    }
}

/// Report that the process is alive.
///
/// Answers without touching any dependency; use it for liveness probes.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    responses((status = 200, description = "The process answers", body = Liveness))
)]
pub async fn get_liveness() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".to_owned(),
    })
}

/// Report whether the service can take traffic.
///
/// Makes a real round trip to Postgres and to Redis, each under a deadline, and answers 503
/// while a dependency this process needs fails: Postgres always; Redis only for the worker
/// and scheduler roles (the api and hooks roles stay ready without it, reporting it as
/// degraded). Use it for readiness probes.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "Every dependency this process needs answered (Redis may be degraded)", body = Readiness),
        (status = 503, description = "A dependency this process needs is down, slow or not migrated", body = Readiness),
    )
)]
pub async fn get_readiness(State(health): State<Health>) -> (StatusCode, Json<Readiness>) {
    let checks = health.checks.check(&health).await;
    let ready = checks.postgres.ok && (checks.redis.ok || !health.redis_required);
    let degraded = ready && !checks.redis.ok;
    metrics::gauge!("labs_redis_degraded").set(if degraded { 1.0 } else { 0.0 });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            degraded,
            checks,
        }),
    )
}

/// What the health endpoints reach: the stores they check, the deadline of each check, and the
/// checks in flight. A substate of its own, so that any role's state offers it by `FromRef`.
#[derive(Clone)]
pub struct Health {
    db: Db,
    redis: RedisConnection,
    deadline: Duration,
    /// Whether this process is not ready without Redis (it runs the worker or the scheduler).
    redis_required: bool,
    checks: Arc<ReadinessChecks>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Checks of `db` and `redis`, each under `deadline`.
    pub fn new(db: Db, redis: RedisConnection, deadline: Duration) -> Self {
        Self {
            db,
            redis,
            deadline,
            redis_required: true,
            checks: Arc::default(),
        }
    }

    /// The same checks, but ready while Postgres answers even if Redis does not (Redis is then
    /// reported as degraded): for processes that serve only the api and hooks roles.
    #[must_use]
    pub fn ready_without_redis(mut self) -> Self {
        self.redis_required = false;
        self
    }

    /// Checks every dependency now, concurrently, each under the deadline (no sharing with
    /// concurrent callers: for the seed's `/ext/healthcheck`, which promises a check per call).
    pub async fn check_now(&self) -> DependencyChecks {
        let (postgres, redis) = tokio::join!(
            check_postgres(&self.db, self.deadline),
            check_redis(self.redis.clone(), self.deadline),
        );
        DependencyChecks { postgres, redis }
    }
}

/// Readiness checks shared by concurrent probes (single flight).
///
/// A probe waits for the check in flight, if any, then either reuses a check that *started
/// after it arrived* or runs one. So every answer comes from real round trips made after the
/// probe was sent, yet a burst of probes (a load balancer with many nodes, a benchmark) costs
/// one check per check duration instead of one each, and cannot exhaust the pool.
#[derive(Debug, Default)]
struct ReadinessChecks {
    last: tokio::sync::Mutex<Option<(Instant, DependencyChecks)>>,
}

impl ReadinessChecks {
    async fn check(&self, health: &Health) -> DependencyChecks {
        let arrived = Instant::now();
        let mut last = self.last.lock().await;
        if let Some((started, checks)) = &*last
            && *started >= arrived
        {
            return checks.clone();
        }
        let started = Instant::now();
        let checks = health.check_now().await;
        *last = Some((started, checks.clone()));
        checks
    }
}

async fn check_postgres(db: &Db, deadline: Duration) -> Check {
    let started = Instant::now();
    let error = match tokio::time::timeout(deadline, labs_db::schema::applied_version(db)).await {
        Err(_elapsed) => Some("timeout".to_owned()),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: Postgres check failed");
            Some("unavailable".to_owned())
        }
        Ok(Ok(applied)) => {
            let expected = labs_db::schema::expected_version();
            (applied < expected).then(|| {
                format!(
                    "schema at version {applied}, this build needs {expected}: run `labs migrate`"
                )
            })
        }
    };
    Check::new(started, error).counted("postgres")
}

async fn check_redis(mut redis: RedisConnection, deadline: Duration) -> Check {
    let started = Instant::now();
    let error = match tokio::time::timeout(deadline, labs_db::redis::ping(&mut redis)).await {
        Err(_elapsed) => Some("timeout".to_owned()),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: Redis check failed");
            Some("unavailable".to_owned())
        }
        Ok(Ok(())) => None,
    };
    Check::new(started, error).counted("redis")
}
