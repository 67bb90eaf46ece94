//! Sessions: starting one after a credential check, rotating its refresh token, ending it.
//! Tokens travel in the JSON body, or, for browsers that ask for it, in `HttpOnly; Secure;
//! SameSite=Lax` cookies named `__Host-...` (then neither token is ever readable by scripts:
//! the body carries neither). A session lives at most `LABS_SESSION_MAX_LIFETIME` from its
//! login, however often its refresh token is rotated.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use labs_auth::OpaqueToken;
use labs_auth::token::hash_token;
use labs_domain::{SessionId, UserId};
use labs_http::ApiError;
use labs_http::extract::{Json, OptionalJson};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::identity::{authenticate, cookie};
use crate::Accounts;

/// Tokens, in OAuth 2.0's own field names (RFC 6749 §5.1): the one place where our JSON is
/// not camelCase, so that OAuth clients and the docs' "Authorize" button understand it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// A signed JWT for `Authorization: Bearer`. Absent when the tokens were set as cookies
    /// (a script then has no token to leak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Exchange it at `/auth/refresh` for new tokens (once: it is rotated). Absent when the
    /// tokens were set as cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// A new session's tokens, before they are answered.
pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: OpaqueToken,
    pub(crate) expires_in: u64,
}

/// The account's credentials changed (a reset, a new password, its address claimed) between
/// the check of this login's credential and its session.
const CREDENTIALS_CHANGED: ApiError = ApiError::Unauthorized {
    code: "credentials-changed",
    detail: "The account's credentials changed while you were logging in: log in again.",
};

/// Starts a session for `user_id`, whose credentials were just checked at `credentials_epoch`
/// (so the token is fresh). 401 if they changed since: the change revoked every session, and
/// this one must not slip in after it.
pub(crate) async fn start(
    state: &Accounts,
    user_id: UserId,
    credentials_epoch: i32,
) -> Result<Tokens, ApiError> {
    let session_id = SessionId::generate();
    let refresh = OpaqueToken::generate();
    let now = OffsetDateTime::now_utc();
    let opened = crate::db::credentials::start_session(
        &state.db,
        session_id,
        user_id,
        credentials_epoch,
        &refresh.hash(),
        refresh_expiry(state, now),
    )
    .await?;
    if !opened {
        return Err(CREDENTIALS_CHANGED);
    }
    issue(state, user_id, session_id, refresh, true)
}

/// A new refresh token's expiry in a session that began at `session_start`: its own lifetime,
/// cut at the session's absolute end.
fn refresh_expiry(state: &Accounts, session_start: OffsetDateTime) -> OffsetDateTime {
    let config = &state.auth.config;
    (OffsetDateTime::now_utc() + config.refresh_token_ttl)
        .min(session_start + config.session_max_lifetime)
}

fn issue(
    state: &Accounts,
    user_id: UserId,
    session_id: SessionId,
    refresh: OpaqueToken,
    fresh: bool,
) -> Result<Tokens, ApiError> {
    let jwt = &state.auth.keys.jwt;
    let (access, _) = jwt
        .issue(user_id, session_id, fresh, OffsetDateTime::now_utc())
        .map_err(ApiError::internal)?;
    Ok(Tokens {
        access,
        refresh,
        expires_in: jwt.ttl().as_secs(),
    })
}

/// The answer carrying `tokens`: in the body, or as cookies when `cookies` is set.
pub(crate) fn answer(state: &Accounts, tokens: Tokens, cookies: bool) -> Response {
    let mut headers = HeaderMap::new();
    let names = &state.auth.cookies;
    if cookies {
        let refresh_ttl = state.auth.config.refresh_token_ttl.as_secs();
        set_cookie(
            &mut headers,
            state,
            &names.access,
            &tokens.access,
            "/",
            tokens.expires_in,
        );
        set_cookie(
            &mut headers,
            state,
            &names.refresh,
            tokens.refresh.as_str(),
            &names.refresh_path,
            refresh_ttl,
        );
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let body = TokenResponse {
        access_token: (!cookies).then_some(tokens.access),
        token_type: "bearer".to_owned(),
        expires_in: tokens.expires_in,
        refresh_token: (!cookies).then(|| tokens.refresh.as_str().to_owned()),
    };
    (headers, Json(body)).into_response()
}

fn set_cookie(
    headers: &mut HeaderMap,
    state: &Accounts,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
) {
    let secure = if state.auth.config.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.append(header::SET_COOKIE, value);
    }
}

fn clear_cookies(headers: &mut HeaderMap, state: &Accounts) {
    let names = &state.auth.cookies;
    set_cookie(headers, state, &names.access, "", "/", 0);
    set_cookie(headers, state, &names.refresh, "", &names.refresh_path, 0);
}

/// A refresh token, from the body or from the refresh cookie.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token; omit it to use the refresh cookie.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

const INVALID_REFRESH: ApiError = ApiError::Unauthorized {
    code: "invalid-refresh-token",
    detail: "The refresh token is invalid, expired or revoked: log in again.",
};

/// Exchange a refresh token for new tokens.
///
/// The refresh token is rotated: the answer holds a new one and the old one is used up.
/// Presenting a used refresh token again is treated as theft: its whole session is revoked
/// (every token of it, for whoever holds them), and the client must log in again. A session
/// ends `LABS_SESSION_MAX_LIFETIME` (30 days by default) after its login, however often it
/// is refreshed.
#[utoipa::path(
    post,
    path = "/refresh",
    tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Optional: no body, or `null`, is `{}`"),
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token"),
    ),
)]
pub(crate) async fn refresh_jwt_token(
    State(state): State<Accounts>,
    headers: HeaderMap,
    OptionalJson(request): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let (presented, via_cookie) = match request.refresh_token {
        Some(token) => (token, false),
        None => (
            cookie(&headers, &state.auth.cookies.refresh)?
                .ok_or(INVALID_REFRESH)?
                .to_owned(),
            true,
        ),
    };
    let presented_hash = hash_token(&presented);
    let mut tx = state.db.begin().await?;
    let Some(found) = crate::db::credentials::lock_refresh_token(&mut tx, &presented_hash).await?
    else {
        return Err(INVALID_REFRESH);
    };
    if found.used_at.is_some() {
        crate::db::credentials::revoke_session(&mut *tx, found.session_id, "refresh token reused")
            .await?;
        tx.commit().await?;
        metrics::counter!("labs_auth_refresh_reuse_total").increment(1);
        tracing::warn!(session = %found.session_id, user = %found.user_id, "refresh token reused: session revoked");
        return Err(INVALID_REFRESH);
    }
    let now = OffsetDateTime::now_utc();
    let session_end = found.session_started_at + state.auth.config.session_max_lifetime;
    if found.session_revoked || found.expires_at <= now || session_end <= now {
        return Err(INVALID_REFRESH);
    }
    // Deactivated accounts do not get new tokens.
    if crate::db::users::by_live_session(&mut *tx, found.user_id, found.session_id)
        .await?
        .is_none()
    {
        return Err(INVALID_REFRESH);
    }
    let next = OpaqueToken::generate();
    crate::db::credentials::mark_refresh_token_used(&mut *tx, &presented_hash).await?;
    crate::db::credentials::insert_refresh_token(
        &mut *tx,
        &next.hash(),
        found.session_id,
        refresh_expiry(&state, found.session_started_at),
    )
    .await?;
    tx.commit().await?;
    let tokens = issue(&state, found.user_id, found.session_id, next, false)?;
    Ok(answer(&state, tokens, via_cookie))
}

/// What to end.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogoutRequest {
    /// The session's refresh token, when the request carries no access token (otherwise
    /// the access token's session is ended).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// End every session of the account ("log out everywhere"), not only this one.
    #[serde(default)]
    pub everywhere: bool,
}

/// Log out.
///
/// Ends the session of the access token (or of the refresh token given), or with
/// `everywhere`, every session of the account. Its refresh tokens and access tokens stop
/// working at once. Clears the auth cookies.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "auth",
    request_body(content = Option<LogoutRequest>, description = "Optional: no body, or `null`, is `{}`"),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Neither a valid access token nor a valid refresh token"),
    ),
    security((), ("bearerAuth" = [])),
)]
pub(crate) async fn logout_user(
    State(state): State<Accounts>,
    headers: HeaderMap,
    OptionalJson(request): OptionalJson<LogoutRequest>,
) -> Result<Response, ApiError> {
    let (user_id, session_id) = match authenticate(&headers, &state.auth, &state.db).await? {
        Some(caller) => (caller.user.id, caller.session_id),
        None => {
            let from_cookie = cookie(&headers, &state.auth.cookies.refresh)?;
            let presented = request
                .refresh_token
                .as_deref()
                .or(from_cookie)
                .ok_or(INVALID_REFRESH)?;
            let mut tx = state.db.begin().await?;
            let found = crate::db::credentials::lock_refresh_token(&mut tx, &hash_token(presented))
                .await?
                .filter(|found| !found.session_revoked && found.used_at.is_none())
                .ok_or(INVALID_REFRESH)?;
            tx.commit().await?;
            (found.user_id, found.session_id)
        }
    };
    if request.everywhere {
        let ended =
            crate::db::credentials::revoke_all_sessions(&state.db, user_id, "logout everywhere")
                .await?;
        tracing::info!(user = %user_id, sessions = ended, "logged out everywhere");
    } else {
        crate::db::credentials::revoke_session(&state.db, session_id, "logout").await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    clear_cookies(response.headers_mut(), &state);
    Ok(response)
}
