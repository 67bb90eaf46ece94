//! `/__features__`: the signed-in user's __features__. Each user sees and changes only their
//! own: another user's id answers 404, as a missing one does (no one learns which ids exist).

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use labs_accounts::CurrentUser;
use labs_db::Db;
use labs_http::extract::{Json, Path, Query};
use labs_http::ApiError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::__Feature__Id;
use crate::db::__Feature__Row;
use crate::jobs::__Feature__Created;
use crate::values::{Details, Title};

/// What the handlers reach: the pool. Offered by the application's state by `FromRef`; add
/// what the feature's handlers need (a client, its settings) here.
#[derive(Debug, Clone)]
pub struct __Features__ {
    db: Db,
}

impl __Features__ {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

pub(crate) fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    __Features__: FromRef<S>,
    labs_accounts::Accounts: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list___features__, create___feature__))
        .routes(routes!(
            get___feature__,
            update___feature__,
            delete___feature__
        ))
}

/// A __feature__ as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct __Feature__Out {
    pub id: Uuid,
    pub title: String,
    pub details: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the owner was told of it (by the `__feature___created` job); `null` until then.
    #[serde(with = "time::serde::rfc3339::option")]
    pub confirmed_at: Option<OffsetDateTime>,
}

impl From<__Feature__Row> for __Feature__Out {
    fn from(row: __Feature__Row) -> Self {
        Self {
            id: row.id,
            title: row.title,
            details: row.details,
            created_at: row.created_at,
            updated_at: row.updated_at,
            confirmed_at: row.confirmed_at,
        }
    }
}

/// A page of the list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// __Features__ to skip.
    #[serde(default)]
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: u32,
    /// __Features__ to return, 1 to 100.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 100, default = 50)]
    pub limit: u32,
}

fn default_limit() -> u32 {
    50
}

/// A page of __features__.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct __Feature__Page {
    pub items: Vec<__Feature__Out>,
    /// __Features__ in all.
    pub total: i64,
    pub offset: u32,
    pub limit: u32,
}

/// A new __feature__.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Create__Feature__ {
    /// Not blank; no control characters.
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")]
    pub title: Title,
    /// Line breaks and tabs allowed, no other control characters.
    #[schema(value_type = String, max_length = 2000, pattern = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$")]
    #[serde(default)]
    pub details: Details,
}

/// Changes to a __feature__; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Update__Feature__ {
    /// Not blank; no control characters.
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")]
    #[serde(default)]
    pub title: Option<Title>,
    /// `""` clears them. Line breaks and tabs allowed, no other control characters.
    #[schema(value_type = Option<String>, max_length = 2000, pattern = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$")]
    #[serde(default)]
    pub details: Option<Details>,
}

const NO_SUCH___FEATURE__: ApiError = ApiError::NotFound;

/// List your __features__.
///
/// Newest first, `limit` at a time from `offset`.
#[utoipa::path(
    get,
    path = "",
    tag = "__features__",
    params(Page),
    responses(
        (status = 200, description = "A page of your __features__", body = __Feature__Page),
        (status = 401, description = "Not signed in"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn list___features__(
    State(state): State<__Features__>,
    CurrentUser { user, .. }: CurrentUser,
    Query(page): Query<Page>,
) -> Result<Json<__Feature__Page>, ApiError> {
    let (offset, limit) = labs_http::page_bounds(page.offset, page.limit)?;
    let (rows, total) = crate::db::page(&state.db, user.id, offset, limit).await?;
    Ok(Json(__Feature__Page {
        items: rows.into_iter().map(__Feature__Out::from).collect(),
        total,
        offset: page.offset,
        limit: page.limit,
    }))
}

/// Create a __feature__.
///
/// Its owner is emailed once it is recorded (the `__feature___created` job, queued in the
/// same transaction as the row).
#[utoipa::path(
    post,
    path = "",
    tag = "__features__",
    request_body = Create__Feature__,
    responses(
        (status = 201, description = "Created", body = __Feature__Out),
        (status = 401, description = "Not signed in"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn create___feature__(
    State(state): State<__Features__>,
    CurrentUser { user, .. }: CurrentUser,
    Json(request): Json<Create__Feature__>,
) -> Result<(StatusCode, Json<__Feature__Out>), ApiError> {
    let id = __Feature__Id::generate();
    let mut tx = state.db.begin().await?;
    let row = crate::db::insert(&mut tx, id, user.id, &request.title, &request.details).await?;
    labs_jobs::outbox::enqueue(&mut tx, __Feature__Created { id }).await?;
    tx.commit().await?;
    tracing::info!(__feature__ = %id, user = %user.id, "__feature__ created");
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// One of your __features__.
#[utoipa::path(
    get,
    path = "/{id}",
    tag = "__features__",
    params(("id" = Uuid, Path, description = "The __feature__'s id")),
    responses(
        (status = 200, description = "The __feature__", body = __Feature__Out),
        (status = 401, description = "Not signed in"),
        (status = 404, description = "No such __feature__ of yours"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn get___feature__(
    State(state): State<__Features__>,
    CurrentUser { user, .. }: CurrentUser,
    Path(id): Path<__Feature__Id>,
) -> Result<Json<__Feature__Out>, ApiError> {
    let row = crate::db::by_id(&state.db, user.id, id)
        .await?
        .ok_or(NO_SUCH___FEATURE__)?;
    Ok(Json(row.into()))
}

/// Change one of your __features__.
#[utoipa::path(
    patch,
    path = "/{id}",
    tag = "__features__",
    params(("id" = Uuid, Path, description = "The __feature__'s id")),
    request_body = Update__Feature__,
    responses(
        (status = 200, description = "The changed __feature__", body = __Feature__Out),
        (status = 401, description = "Not signed in"),
        (status = 404, description = "No such __feature__ of yours"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn update___feature__(
    State(state): State<__Features__>,
    CurrentUser { user, .. }: CurrentUser,
    Path(id): Path<__Feature__Id>,
    Json(changes): Json<Update__Feature__>,
) -> Result<Json<__Feature__Out>, ApiError> {
    let row = crate::db::update(
        &state.db,
        user.id,
        id,
        changes.title.as_ref(),
        changes.details.as_ref(),
    )
    .await?
    .ok_or(NO_SUCH___FEATURE__)?;
    Ok(Json(row.into()))
}

/// Delete one of your __features__.
///
/// It is gone from the API at once; the row is removed 30 days later.
#[utoipa::path(
    delete,
    path = "/{id}",
    tag = "__features__",
    params(("id" = Uuid, Path, description = "The __feature__'s id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not signed in"),
        (status = 404, description = "No such __feature__ of yours"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn delete___feature__(
    State(state): State<__Features__>,
    CurrentUser { user, .. }: CurrentUser,
    Path(id): Path<__Feature__Id>,
) -> Result<StatusCode, ApiError> {
    if crate::db::delete(&state.db, user.id, id).await? {
        tracing::info!(__feature__ = %id, user = %user.id, "__feature__ deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(NO_SUCH___FEATURE__)
    }
}
