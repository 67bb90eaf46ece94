//! Passwordless login with a 6-digit code sent by email.

use crate::emails::AccountEmail as Message;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use labs_auth::token::six_digit_code;
use labs_domain::{Email, UserId};
use labs_http::ApiError;
use labs_http::extract::Json;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::kernel::{Accepted, EmailRequest, LoginRefused, active_account};
use super::limits::{self, ClientIp, Family};
use super::password::complete_login;
use super::session::TokenResponse;
use crate::{Accounts, mail};

const PURPOSE: &str = "email_otp";

/// Email a login code.
///
/// Sends a 6-digit code, valid for 10 minutes (by default) and for one use, to the address if
/// it has an account. Never creates an account, and answers the same either way.
#[utoipa::path(
    post,
    path = "/otp",
    tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "Check your email", body = Accepted),
        (status = 429, description = "Too many attempts"),
    ),
)]
pub(crate) async fn initiate_otp_email(
    State(state): State<Accounts>,
    ip: ClientIp,
    Json(request): Json<EmailRequest>,
) -> Result<impl IntoResponse, ApiError> {
    limits::check(&state, Family::Otp, ip, Some(request.email.as_str())).await?;
    let mut tx = state.db.begin().await?;
    // An address without an account goes through the same statements, which store and send
    // nothing: the answer's timing does not tell the two apart.
    let subject = active_account(&mut *tx, &request.email)
        .await?
        .map(|found| found.user.id);
    let code = six_digit_code();
    let config = &state.auth.config;
    let hash = state.auth.keys.codes.hash(
        PURPOSE,
        subject.map(UserId::as_uuid).unwrap_or_default().as_bytes(),
        &code,
    );
    crate::db::credentials::replace_email_otp(
        &mut *tx,
        subject,
        &hash,
        OffsetDateTime::now_utc() + config.email_otp_ttl,
    )
    .await?;
    let valid_minutes =
        u32::try_from(config.email_otp_ttl.as_secs().div_ceil(60)).unwrap_or(u32::MAX);
    let email = Message::LoginCode {
        code,
        valid_minutes,
    };
    mail::queue_if(&mut tx, subject.is_some(), request.email.as_str(), email).await?;
    tx.commit().await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(Accepted {
            message: "If this address has an account, a login code is on its way.".to_owned(),
        }),
    ))
}

/// An emailed code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtpLoginRequest {
    pub email: Email,
    /// The 6 digits.
    #[schema(example = "042137", max_length = 16)]
    pub code: String,
    /// Answer with `HttpOnly` cookies instead of tokens in the body.
    #[serde(default)]
    pub set_cookies: bool,
}

const INVALID_CODE: ApiError = ApiError::Unauthorized {
    code: "invalid-code",
    detail: "This code is wrong, expired, used, or tried too many times: ask for a new one.",
};

/// Log in with an emailed code.
///
/// Each code works once, until it expires, and dies after 5 tries (by default). Logging in
/// this way proves the address, so it also verifies it; on an account whose address was never
/// verified, it also discards what its signup set (password, TOTP, sessions), since whoever
/// signed up may not own the address. Accounts with TOTP on answer 403 `mfa-required`, as the
/// password login does.
#[utoipa::path(
    post,
    path = "/otp/verify",
    tag = "auth",
    request_body = OtpLoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Wrong, expired, used or locked code"),
        (status = 403, description = "`mfa-required` (with `mfaToken` and `expiresIn`)", body = LoginRefused, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts"),
    ),
)]
pub(crate) async fn verify_otp(
    State(state): State<Accounts>,
    ip: ClientIp,
    Json(request): Json<OtpLoginRequest>,
) -> Result<Response, ApiError> {
    let guess = limits::guess(&state, Family::Otp, ip, request.email.as_str()).await?;
    let mut tx = state.db.begin().await?;
    let subject = active_account(&mut *tx, &request.email)
        .await?
        .map(|found| found.user.id);
    // The attempt is counted before the code is checked, in one statement, so concurrent
    // guesses cannot exceed the cap. An unknown address runs the same statement (which finds
    // nothing), and a wrong code costs the same either way.
    let stored = crate::db::credentials::attempt_email_otp(
        &mut *tx,
        subject,
        state.auth.config.max_code_attempts,
    )
    .await?;
    let right = state.auth.keys.codes.matches(
        PURPOSE,
        subject.map(UserId::as_uuid).unwrap_or_default().as_bytes(),
        request.code.trim(),
        stored.as_deref().unwrap_or_default(),
    );
    let (Some(user_id), Some(_), true) = (subject, &stored, right) else {
        tx.commit().await?;
        metrics::counter!("labs_auth_logins_total", "method" => "email_otp", "outcome" => "failure").increment(1);
        return Err(INVALID_CODE);
    };
    guess.succeeded(&state).await;
    crate::db::credentials::delete_email_otp(&mut *tx, user_id).await?;
    let claimed = crate::db::users::claim(&mut tx, user_id, false)
        .await?
        .ok_or(INVALID_CODE)?;
    tx.commit().await?;
    if claimed.first {
        tracing::info!(user = %user_id, "address claimed by email code: what its signup set was discarded");
    }
    let epoch = claimed.credentials_epoch;
    complete_login(
        &state,
        &claimed.user,
        epoch,
        "email_otp",
        request.set_cookies,
    )
    .await
}
