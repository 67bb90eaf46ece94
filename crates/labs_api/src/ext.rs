//! `/ext`: the original template's echo and health check, with the same field names.

use axum::extract::State;
use labs_http::extract::Json;
use labs_http::health::Health;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn router() -> OpenApiRouter<crate::ApiState> {
    OpenApiRouter::new()
        .routes(routes!(echo))
        .routes(routes!(get_health))
}

/// A greeting.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EchoResponse {
    /// Always `Hello World`.
    pub message: String,
}

/// The state of the service's dependencies, in the original template's shape.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckResponse {
    /// True when every dependency is fine.
    pub all_ok: bool,
    /// The database answered (and is migrated).
    pub db_ok: bool,
    /// The queue broker (Redis) answered.
    pub queue_ok: bool,
    /// When the checks ran.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
}

/// Echo back a greeting.
///
/// Confirms that the API answers, without touching any dependency.
#[utoipa::path(
    get,
    path = "/echo",
    tag = "ext",
    responses((status = 200, description = "The API answers", body = EchoResponse))
)]
pub(crate) async fn echo() -> Json<EchoResponse> {
    Json(EchoResponse {
        message: "Hello World".to_owned(),
    })
}

/// Check the health of the server.
///
/// Runs the same real checks as readiness (a query on Postgres, a `PING` to Redis) on every
/// call, but always answers 200 with one flag per dependency, as the original template did.
#[utoipa::path(
    get,
    path = "/healthcheck",
    tag = "ext",
    responses((status = 200, description = "One flag per dependency", body = HealthCheckResponse))
)]
pub(crate) async fn get_health(State(health): State<Health>) -> Json<HealthCheckResponse> {
    let checks = health.check_now().await;
    Json(HealthCheckResponse {
        all_ok: checks.postgres.ok && checks.redis.ok,
        db_ok: checks.postgres.ok,
        queue_ok: checks.redis.ok,
        timestamp: OffsetDateTime::now_utc(),
    })
}
