//! Passwords: login (a JSON body or an OAuth 2.0 password form), reset, change, and the
//! caller's own account.
//!
//! About 400 lines: five endpoints, their bodies and two helpers; the kernel they share (verifying a
//! password, opening a session) lives in `auth/kernel.rs`, `auth/session.rs` and `auth/identity.rs`.

use crate::db::credentials::Purpose;
use crate::db::users::UserChanges;
use crate::emails::AccountEmail as Message;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use labs_auth::Verification;
use labs_auth::token::hash_token;
use labs_domain::{Email, Password};
use labs_http::ApiError;
use labs_http::etag::IfNoneMatch;
use labs_http::extract::{Form, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::identity::CurrentUser;
use super::kernel::{
    Accepted, EmailRequest, LoginRefused, MfaChallenge, accepted, active_account, blocking,
    hash_password, new_one_time_token,
};
use super::limits::{self, ClientIp, Family};
use super::session::{self, TokenResponse};
use super::signup::INVALID_LINK;
use crate::account::UserOut;
use crate::{Accounts, mail};

/// Email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    /// Not checked against the policy here (only at signup), but bounded.
    #[schema(max_length = 512)]
    pub password: String,
    /// Answer with `HttpOnly` cookies instead of tokens in the body (browser sessions).
    #[serde(default)]
    pub set_cookies: bool,
}

/// The OAuth 2.0 password grant's form (RFC 6749 §4.3), as the docs' "Authorize" button sends.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OAuthPasswordForm {
    /// `password`, if given.
    #[serde(default)]
    pub grant_type: Option<String>,
    /// The email address.
    pub username: String,
    pub password: String,
    /// Accepted and ignored: access tokens carry no scopes.
    #[serde(default)]
    pub scope: Option<String>,
}

/// A login, from a JSON body or an OAuth 2.0 password form.
pub(crate) struct Login(LoginRequest);

impl<S: Send + Sync> FromRequest<S> for Login {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        if !form {
            let Json(login) = Json::<LoginRequest>::from_request(request, state).await?;
            return Ok(Self(login));
        }
        let Form(form) = Form::<OAuthPasswordForm>::from_request(request, state).await?;
        if form
            .grant_type
            .as_deref()
            .is_some_and(|grant| grant != "password")
        {
            return Err(ApiError::invalid_body(
                "/grant_type",
                "unsupported-grant-type",
                "`grant_type` must be `password`.",
            ));
        }
        Ok(Self(LoginRequest {
            email: form.username,
            password: form.password,
            set_cookies: false,
        }))
    }
}

pub(crate) const BAD_CREDENTIALS: ApiError = ApiError::Unauthorized {
    code: "invalid-credentials",
    detail: "Incorrect email or password.",
};

/// Log in with email and password.
///
/// Answers tokens, or, when the account has TOTP on, a 403 `mfa-required` problem whose
/// `mfaToken` member is exchanged with a code at `/auth/totp/verify`. An unknown email and a
/// wrong password get the same answer, in the same time.
#[utoipa::path(
    post,
    path = "/token",
    tag = "auth",
    request_body(content(
        (LoginRequest = "application/json"),
        (OAuthPasswordForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Incorrect email or password"),
        (status = 403, description = "`mfa-required` (with `mfaToken` and `expiresIn`) or `email-not-verified`", body = LoginRefused, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts"),
    ),
)]
pub(crate) async fn login_for_auth_token(
    State(state): State<Accounts>,
    ip: ClientIp,
    Login(request): Login,
) -> Result<Response, ApiError> {
    if request.password.len() > labs_domain::password::MAX_BYTES || request.email.len() > 320 {
        return Err(BAD_CREDENTIALS);
    }
    let email = Email::parse(&request.email).ok();
    let account_key = email.as_ref().map_or(request.email.as_str(), Email::as_str);
    let guess = limits::guess(&state, Family::Login, ip, account_key).await?;
    let found = match &email {
        Some(email) => crate::db::users::credentials(&state.db, Some(email.as_str()), None).await?,
        None => None,
    };
    let hasher = state.auth.keys.passwords.clone();
    let stored = found.as_ref().and_then(|found| found.password_hash.clone());
    let password = request.password.clone();
    let verification =
        blocking(&state, move || hasher.verify(&password, stored.as_deref())).await?;
    let (found, needs_rehash) = match (found, verification) {
        (Some(found), Verification::Valid { needs_rehash }) if found.user.is_active => {
            (found, needs_rehash)
        }
        _ => {
            metrics::counter!("labs_auth_logins_total", "method" => "password", "outcome" => "failure").increment(1);
            return Err(BAD_CREDENTIALS);
        }
    };
    guess.succeeded(&state).await;
    if needs_rehash {
        let hasher = state.auth.keys.passwords.clone();
        let password = request.password;
        let rehashed = blocking(&state, move || hasher.hash(&password))
            .await?
            .map_err(ApiError::internal)?;
        // Only over the hash this login checked: a reset or claim that committed meanwhile
        // is not undone (nor the credentials' version moved: the password is the same).
        let stored = found.password_hash.as_deref().unwrap_or_default();
        if crate::db::users::rehash_password(&state.db, found.user.id, stored, &rehashed).await? {
            tracing::info!(user = %found.user.id, "password rehashed with the current parameters");
        }
    }
    let epoch = found.credentials_epoch;
    complete_login(&state, &found.user, epoch, "password", request.set_cookies).await
}

/// After a first factor (password or email code) checked against the credentials at
/// `credentials_epoch`: the MFA challenge, or a session.
pub(crate) async fn complete_login(
    state: &Accounts,
    user: &crate::db::users::User,
    credentials_epoch: i32,
    method: &'static str,
    cookies: bool,
) -> Result<Response, ApiError> {
    if state.auth.config.require_verified_email && user.email_verified_at.is_none() {
        metrics::counter!("labs_auth_logins_total", "method" => method, "outcome" => "unverified")
            .increment(1);
        return Err(ApiError::Forbidden {
            code: "email-not-verified",
            detail: "Verify your email address first: follow the link we sent, or ask for a new one.",
        });
    }
    if user.totp_enabled {
        let mut tx = state.db.begin().await?;
        let challenge =
            new_one_time_token(state, &mut tx, Some(user.id), Purpose::MfaChallenge).await?;
        tx.commit().await?;
        metrics::counter!("labs_auth_logins_total", "method" => method, "outcome" => "mfa_required").increment(1);
        return Err(MfaChallenge {
            mfa_token: challenge.as_str().to_owned(),
            expires_in: state.auth.config.mfa_challenge_ttl.as_secs(),
            set_cookies: cookies,
        }
        .into_problem());
    }
    metrics::counter!("labs_auth_logins_total", "method" => method, "outcome" => "success")
        .increment(1);
    let tokens = session::start(state, user.id, credentials_epoch).await?;
    Ok(session::answer(state, tokens, cookies))
}

/// The caller's account.
#[utoipa::path(
    get,
    path = "/me",
    tag = "auth",
    params(
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of an earlier answer: 304 if the account is unchanged"),
    ),
    responses(
        (status = 200, description = "The caller's account", body = UserOut,
            headers(("ETag" = String, description = "A tag of this answer, for `If-None-Match`"))),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current"),
        (status = 401, description = "Not authenticated"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn get_me(caller: CurrentUser, since: IfNoneMatch) -> Response {
    since.json(&UserOut::from(caller.user))
}

/// Send a password-reset link.
///
/// Answers the same whether or not the address has an account.
#[utoipa::path(
    post,
    path = "/password-reset",
    tag = "auth",
    request_body = EmailRequest,
    responses((status = 202, description = "Check your email", body = Accepted)),
)]
pub(crate) async fn initiate_password_reset(
    State(state): State<Accounts>,
    ip: ClientIp,
    Json(request): Json<EmailRequest>,
) -> Result<impl IntoResponse, ApiError> {
    limits::check(&state, Family::Reset, ip, Some(request.email.as_str())).await?;
    let mut tx = state.db.begin().await?;
    let subject = active_account(&mut *tx, &request.email)
        .await?
        .map(|found| found.user.id);
    let token = new_one_time_token(&state, &mut tx, subject, Purpose::ResetPassword).await?;
    let link = mail::link(&state, crate::links::RESET_PASSWORD, &token);
    let email = Message::PasswordReset { link };
    mail::queue_if(&mut tx, subject.is_some(), request.email.as_str(), email).await?;
    tx.commit().await?;
    Ok(accepted(
        "If this address has an account, a reset link is on its way.",
    ))
}

/// A new password, with the token of the reset link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetPasswordRequest {
    pub token: String,
    pub new_password: Password,
}

/// Choose a new password.
///
/// Uses the reset link's token (once), sets the password, verifies the email (the link
/// proved it), and ends every session of the account. On an account whose address was never
/// verified, it also turns off the TOTP its signup may have set: nothing set before the
/// address's owner took it over survives.
#[utoipa::path(
    post,
    path = "/password-reset/confirm",
    tag = "auth",
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "Password changed; log in again"),
        (status = 401, description = "Invalid, expired or used token"),
    ),
)]
pub(crate) async fn reset_password(
    State(state): State<Accounts>,
    ip: ClientIp,
    Json(request): Json<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    confirm_reset(&state, ip, &request.token, &request.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What `POST /auth/password-reset/confirm` does, for its JSON handler and the reset page
/// alike (`crate::pages`): one protocol, two renderings.
pub(crate) async fn confirm_reset(
    state: &Accounts,
    ip: ClientIp,
    token: &str,
    new_password: &Password,
) -> Result<(), ApiError> {
    limits::check(state, Family::Reset, ip, None).await?;
    let password_hash = hash_password(state, new_password).await?;
    let mut tx = state.db.begin().await?;
    let user_id = crate::db::credentials::use_one_time_token(
        &mut *tx,
        &hash_token(token),
        Purpose::ResetPassword,
    )
    .await?
    .ok_or(INVALID_LINK)?;
    // First the claim (which discards a never-verified account's credentials), then the new
    // password.
    crate::db::users::claim(&mut tx, user_id, false)
        .await?
        .ok_or(INVALID_LINK)?;
    let changes = UserChanges {
        password_hash: Some(&password_hash),
        ..UserChanges::default()
    };
    let user = crate::db::users::update(&mut *tx, user_id, &changes)
        .await?
        .ok_or(INVALID_LINK)?;
    let ended =
        crate::db::credentials::revoke_all_sessions(&mut *tx, user_id, "password reset").await?;
    crate::db::credentials::delete_email_otp(&mut *tx, user_id).await?;
    mail::queue(&mut tx, &user.email, Message::PasswordChanged).await?;
    tx.commit().await?;
    tracing::info!(user = %user_id, sessions_ended = ended, "password reset");
    Ok(())
}

/// The current password and a new one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password now. Omit it only if the account has none (it logs in by email code).
    #[serde(default)]
    #[schema(max_length = 512)]
    pub current_password: Option<String>,
    pub new_password: Password,
}

const WRONG_CURRENT_PASSWORD: ApiError = ApiError::Unauthorized {
    code: "invalid-credentials",
    detail: "The current password is wrong.",
};

/// Change the password.
///
/// Needs a fresh login and the current password (an account without one, which logs in by
/// email code, sets its first). Ends every other session of the account and tells its owner
/// by email.
#[utoipa::path(
    post,
    path = "/password",
    tag = "auth",
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Password changed; the other sessions were ended"),
        (status = 401, description = "Not authenticated, or the current password is wrong"),
        (status = 403, description = "`fresh-login-required`"),
        (status = 422, description = "The new password does not meet the policy"),
        (status = 429, description = "Too many attempts"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn change_password(
    State(state): State<Accounts>,
    ip: ClientIp,
    caller: CurrentUser,
    Json(request): Json<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    caller.require_fresh()?;
    let user_id = caller.user.id;
    limits::check(&state, Family::Login, ip, Some(&user_id.to_string())).await?;
    let found = crate::db::users::credentials(&state.db, None, Some(user_id))
        .await?
        .ok_or(ApiError::NotFound)?;
    if let Some(stored) = found.password_hash {
        let current = request
            .current_password
            .filter(|current| current.len() <= labs_domain::password::MAX_BYTES)
            .ok_or(WRONG_CURRENT_PASSWORD)?;
        let hasher = state.auth.keys.passwords.clone();
        let verification = blocking(&state, move || hasher.verify(&current, Some(&stored))).await?;
        if !matches!(verification, Verification::Valid { .. }) {
            return Err(WRONG_CURRENT_PASSWORD);
        }
    }
    let password_hash = hash_password(&state, &request.new_password).await?;
    let mut tx = state.db.begin().await?;
    let changes = UserChanges {
        password_hash: Some(&password_hash),
        ..UserChanges::default()
    };
    crate::db::users::update(&mut *tx, user_id, &changes)
        .await?
        .ok_or(ApiError::NotFound)?;
    // A reset link or login code sent before the change must not undo it.
    crate::db::credentials::void_pending_secrets(&mut *tx, user_id).await?;
    let ended = crate::db::credentials::revoke_other_sessions(
        &mut *tx,
        user_id,
        caller.session_id,
        "password changed",
    )
    .await?;
    mail::queue(&mut tx, &found.user.email, Message::PasswordChanged).await?;
    tx.commit().await?;
    tracing::info!(user = %user_id, sessions_ended = ended, "password changed");
    Ok(StatusCode::NO_CONTENT)
}
