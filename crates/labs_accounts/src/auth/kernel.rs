//! What the credential endpoints share: the 202 answer, the password-hashing threads, the
//! active-account check, the full-name rule, one-time tokens, the email request body, the
//! `mfa-required` problem's members.

use axum::http::StatusCode;
use labs_auth::OpaqueToken;
use labs_domain::UserId;
use labs_domain::{Email, Password};
use labs_http::ApiError;
use labs_http::extract::Json;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::Accounts;
use crate::db::credentials::Purpose;

/// A request was taken; what follows happens by email.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Accepted {
    pub message: String,
}

pub(crate) fn accepted(message: &str) -> (StatusCode, Json<Accepted>) {
    (
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: message.to_owned(),
        }),
    )
}

/// Runs a password hash or check on the hashing threads (`HashPool`): argon2id takes tens of
/// milliseconds of CPU, which would stall every other request on an async worker thread.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Accounts,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    state.auth.hashing.run(work).await
}

/// The active account of `email`, if there is one.
pub(crate) async fn active_account(
    db: impl sqlx::PgExecutor<'_>,
    email: &Email,
) -> Result<Option<crate::db::users::UserCredentials>, ApiError> {
    Ok(
        crate::db::users::credentials(db, Some(email.as_str()), None)
            .await?
            .filter(|found| found.user.is_active),
    )
}

pub(crate) async fn hash_password(
    state: &Accounts,
    password: &Password,
) -> Result<String, ApiError> {
    let hasher = state.auth.keys.passwords.clone();
    let password = password.expose().to_owned();
    blocking(state, move || hasher.hash(&password))
        .await?
        .map_err(ApiError::internal)
}

/// Stores a new one-time token of `user_id` for `purpose` (voiding earlier ones) and returns
/// it. With `None` (an address without an account), the same work stores nothing.
pub(crate) async fn new_one_time_token(
    state: &Accounts,
    tx: &mut PgConnection,
    user_id: Option<UserId>,
    purpose: Purpose,
) -> Result<OpaqueToken, ApiError> {
    let config = &state.auth.config;
    let ttl = match purpose {
        Purpose::VerifyEmail => config.verify_email_ttl,
        Purpose::ResetPassword => config.reset_password_ttl,
        Purpose::MfaChallenge => config.mfa_challenge_ttl,
    };
    let token = OpaqueToken::generate();
    crate::db::credentials::replace_one_time_token(
        &mut *tx,
        &token.hash(),
        user_id,
        purpose,
        OffsetDateTime::now_utc() + ttl,
    )
    .await?;
    Ok(token)
}

/// An email address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EmailRequest {
    pub email: Email,
}

/// The members an `mfa-required` problem carries beside the problem's own (RFC 9457 §3.2):
/// what the second step of a login needs.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MfaChallenge {
    pub mfa_token: String,
    pub expires_in: u64,
    pub set_cookies: bool,
}

impl MfaChallenge {
    /// The 403 `mfa-required` problem with these members.
    pub(crate) fn into_problem(self) -> ApiError {
        let extensions = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(members)) => members,
            _ => serde_json::Map::new(),
        };
        ApiError::with_extensions(
            StatusCode::FORBIDDEN,
            "mfa-required",
            "A second factor is needed: send a TOTP or recovery code with `mfaToken` to /auth/totp/verify.",
            extensions,
        )
    }
}

// The 403 of a login as the OpenAPI document describes it; never built here:
// `MfaChallenge::into_problem` makes the answer, and tests check the two agree.
/// A login refused with 403: a problem document. With `code` `mfa-required` it also carries
/// what the second step needs; with `email-not-verified`, nothing more.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginRefused {
    #[serde(flatten)]
    pub problem: labs_http::Problem,
    /// With `mfa-required`: send it with a TOTP or recovery code to `/auth/totp/verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<String>,
    /// With `mfa-required`: seconds until `mfaToken` expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// With `mfa-required`: whether the second step answers with cookies, as the login asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_cookies: Option<bool>,
}
