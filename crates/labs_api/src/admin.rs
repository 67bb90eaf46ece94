//! `/admin`: operations views for administrators.

use axum::extract::State;
use labs_http::ApiError;
use labs_http::extract::Json;
use labs_jobs::QueueStats;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiState;
use labs_accounts::AdminUser;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(get_job_stats))
}

/// Where the background jobs are.
///
/// Per queue: waiting, in flight, scheduled, retrying, dead; plus the rows waiting in the
/// Postgres outbox. The same numbers as `labs jobs stats`. Admins only.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "admin",
    responses(
        (status = 200, description = "Job counts", body = JobStats),
        (status = 403, description = "Not an admin"),
        (status = 503, description = "Redis is not answering"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn get_job_stats(
    State(state): State<ApiState>,
    _admin: AdminUser,
) -> Result<Json<JobStats>, ApiError> {
    let queue = state.queue.stats().await.map_err(|error| {
        tracing::warn!(%error, "cannot read the queue's counts");
        ApiError::Unavailable("The job queue (Redis) is not answering.")
    })?;
    let outbox = labs_jobs::outbox::pending(&state.app.db).await?;
    Ok(Json(JobStats { queue, outbox }))
}

/// The queue's counts, and the jobs still in the Postgres outbox.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobStats {
    #[serde(flatten)]
    pub(crate) queue: QueueStats,
    /// Jobs written by a change and not yet relayed to the queue (they wait while Redis is
    /// down, and go out when it answers).
    pub(crate) outbox: i64,
}
