//! `/users`: the admin-only users API (the original template's names), and the public shape
//! of an account.

use crate::db::users::{NewUser, UserChanges};
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::Response;
use labs_domain::{Email, FullName, Password, UserId};
use labs_http::ApiError;
use labs_http::etag::IfNoneMatch;
use labs_http::extract::{Json, Path, Query};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Accounts;
use crate::account::UserOut;
use crate::auth::AdminUser;
use crate::auth::kernel::hash_password;

pub(crate) fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Accounts: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(get_users_with_limits, create_user))
        .routes(routes!(get_user_by_id, update_user, delete_user))
}

/// A page of the list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Accounts to skip.
    #[serde(default)]
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: u32,
    /// Accounts to return, 1 to 100.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 100, default = 50)]
    pub limit: u32,
}

fn default_limit() -> u32 {
    50
}

/// A page of accounts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    pub items: Vec<UserOut>,
    /// Accounts in all.
    pub total: i64,
    pub offset: u32,
    pub limit: u32,
}

const NO_SUCH_USER: ApiError = ApiError::NotFound;
const DUPLICATE_EMAIL: ApiError = ApiError::Conflict {
    code: "email-taken",
    detail: "Another account has this email address.",
};

/// List accounts.
///
/// Oldest first, `limit` at a time from `offset`. Admins only.
#[utoipa::path(
    get,
    path = "",
    tag = "users",
    params(Page),
    responses(
        (status = 200, description = "A page of accounts", body = UserPage),
        (status = 403, description = "Not an admin"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn get_users_with_limits(
    State(state): State<Accounts>,
    _admin: AdminUser,
    Query(page): Query<Page>,
) -> Result<Json<UserPage>, ApiError> {
    let (offset, limit) = labs_http::page_bounds(page.offset, page.limit)?;
    let (items, total) = crate::db::users::page(&state.db, offset, limit).await?;
    Ok(Json(UserPage {
        items: items.into_iter().map(UserOut::from).collect(),
        total,
        offset: page.offset,
        limit: page.limit,
    }))
}

/// One account.
#[utoipa::path(
    get,
    path = "/{id}",
    tag = "users",
    params(
        ("id" = Uuid, Path, description = "The account's id"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of an earlier answer: 304 if the account is unchanged"),
    ),
    responses(
        (status = 200, description = "The account", body = UserOut,
            headers(("ETag" = String, description = "A tag of this answer, for `If-None-Match`"))),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such account"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn get_user_by_id(
    State(state): State<Accounts>,
    _admin: AdminUser,
    Path(id): Path<UserId>,
    since: IfNoneMatch,
) -> Result<Response, ApiError> {
    let user = crate::db::users::by_id(&state.db, id)
        .await?
        .ok_or(NO_SUCH_USER)?;
    Ok(since.json(&UserOut::from(user)))
}

/// A new account, created by an admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUser {
    pub email: Email,
    pub password: Password,
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    #[serde(default, deserialize_with = "labs_domain::full_name::optional")]
    pub full_name: Option<FullName>,
    #[serde(default)]
    pub is_admin: bool,
    /// Consider the address verified (the admin vouches for it). Default: true.
    #[serde(default = "yes")]
    pub email_verified: bool,
}

fn yes() -> bool {
    true
}

/// Create an account.
#[utoipa::path(
    post,
    path = "",
    tag = "users",
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = UserOut),
        (status = 403, description = "Not an admin"),
        (status = 409, description = "The email is taken"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn create_user(
    State(state): State<Accounts>,
    AdminUser(admin): AdminUser,
    Json(request): Json<CreateUser>,
) -> Result<(StatusCode, Json<UserOut>), ApiError> {
    let password_hash = hash_password(&state, &request.password).await?;
    let new = NewUser {
        id: UserId::generate(),
        email: request.email.as_str(),
        full_name: request.full_name.as_ref().map(FullName::as_str),
        password_hash: Some(&password_hash),
        is_admin: request.is_admin,
        verified: request.email_verified,
    };
    let user = crate::db::users::insert(&state.db, &new)
        .await?
        .ok_or(DUPLICATE_EMAIL)?;
    tracing::info!(admin = %admin.user.id, user = %user.id, "account created by an admin");
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Changes to an account; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default)]
    pub email: Option<Email>,
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    #[serde(default, deserialize_with = "labs_domain::full_name::optional")]
    pub full_name: Option<FullName>,
    /// A new password; ends every session of the account.
    #[serde(default)]
    pub password: Option<Password>,
    #[serde(default)]
    pub is_admin: Option<bool>,
    /// `false` deactivates the account: its sessions end at once and it cannot log in.
    #[serde(default)]
    pub is_active: Option<bool>,
}

const NOT_ON_SELF: ApiError = ApiError::Conflict {
    code: "not-on-self",
    detail: "Admins cannot remove their own admin role, deactivate or delete themselves.",
};

/// Change an account.
#[utoipa::path(
    patch,
    path = "/{id}",
    tag = "users",
    params(("id" = Uuid, Path, description = "The account's id")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The changed account", body = UserOut),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such account"),
        (status = 409, description = "The email is taken, or an admin tried to lock themselves out"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn update_user(
    State(state): State<Accounts>,
    AdminUser(admin): AdminUser,
    Path(id): Path<UserId>,
    Json(request): Json<UpdateUser>,
) -> Result<Json<UserOut>, ApiError> {
    if id == admin.user.id && (request.is_admin == Some(false) || request.is_active == Some(false))
    {
        return Err(NOT_ON_SELF);
    }
    let password_hash = match &request.password {
        Some(password) => Some(hash_password(&state, password).await?),
        None => None,
    };
    let changes = UserChanges {
        email: request.email.as_ref().map(Email::as_str),
        full_name: request.full_name.as_ref().map(FullName::as_str),
        password_hash: password_hash.as_deref(),
        is_admin: request.is_admin,
        is_active: request.is_active,
    };
    let mut tx = state.db.begin().await?;
    let user = match crate::db::users::update(&mut *tx, id, &changes).await {
        Ok(user) => user.ok_or(NO_SUCH_USER)?,
        Err(error) if crate::db::users::is_duplicate_email(&error) => return Err(DUPLICATE_EMAIL),
        Err(error) => return Err(error.into()),
    };
    if password_hash.is_some() || request.is_active == Some(false) {
        crate::db::credentials::revoke_all_sessions(&mut *tx, id, "changed by an admin").await?;
    }
    // Links and codes sent to the old address (or for the old password) must not work now.
    if request.email.is_some() || password_hash.is_some() {
        crate::db::credentials::void_pending_secrets(&mut *tx, id).await?;
    }
    tx.commit().await?;
    tracing::info!(admin = %admin.user.id, user = %id, "account changed by an admin");
    Ok(Json(user.into()))
}

/// Delete an account.
///
/// Deletes the account and everything it owns.
#[utoipa::path(
    delete,
    path = "/{id}",
    tag = "users",
    params(("id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such account"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn delete_user(
    State(state): State<Accounts>,
    AdminUser(admin): AdminUser,
    Path(id): Path<UserId>,
) -> Result<StatusCode, ApiError> {
    if id == admin.user.id {
        return Err(NOT_ON_SELF);
    }
    if !crate::db::users::delete(&state.db, id).await? {
        return Err(NO_SUCH_USER);
    }
    tracing::info!(admin = %admin.user.id, user = %id, "account deleted by an admin");
    Ok(StatusCode::NO_CONTENT)
}
