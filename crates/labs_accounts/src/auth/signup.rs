//! Signup and email verification: `POST /auth/signup`, `/auth/verification` (send the link
//! again), `/auth/verify`.

use crate::db::credentials::Purpose;
use crate::db::users::NewUser;
use crate::emails::AccountEmail as Message;
use axum::extract::State;
use axum::response::IntoResponse;
use labs_auth::Verification;
use labs_auth::token::hash_token;
use labs_domain::UserId;
use labs_domain::{Email, FullName, Password};
use labs_http::ApiError;
use labs_http::extract::Json;
use serde::Deserialize;
use sqlx::PgConnection;
use utoipa::ToSchema;

use super::kernel::{
    Accepted, EmailRequest, accepted, active_account, blocking, hash_password, new_one_time_token,
};
use super::limits::{self, ClientIp, Family};
use crate::account::UserOut;
use crate::{Accounts, mail};

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignupRequest {
    pub email: Email,
    pub password: Password,
    /// How to address the user (at most 200 characters).
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    #[serde(default, deserialize_with = "labs_domain::full_name::optional")]
    pub full_name: Option<FullName>,
}

/// Create an account.
///
/// Sends a verification link to the address. The answer is the same whether or not the
/// address already has an account (its owner gets an email saying so instead), so this
/// endpoint does not reveal who is registered.
#[utoipa::path(
    post,
    path = "/signup",
    tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 202, description = "Check your email", body = Accepted),
        (status = 422, description = "Invalid email or password"),
        (status = 429, description = "Too many attempts"),
    ),
)]
pub(crate) async fn signup_user(
    State(state): State<Accounts>,
    ip: ClientIp,
    Json(request): Json<SignupRequest>,
) -> Result<impl IntoResponse, ApiError> {
    limits::check(&state, Family::Signup, ip, Some(request.email.as_str())).await?;
    // Hashed even when the address is taken: both answers take the same time.
    let password_hash = hash_password(&state, &request.password).await?;
    let mut tx = state.db.begin().await?;
    let new = NewUser {
        id: UserId::generate(),
        email: request.email.as_str(),
        full_name: request.full_name.as_ref().map(FullName::as_str),
        password_hash: Some(&password_hash),
        is_admin: false,
        verified: false,
    };
    // One statement creates the account or finds the one holding the address (which it never
    // changes); then, either way, one token and one email: the same work for a free address
    // and a taken one.
    let outcome = crate::db::users::signup(&mut *tx, &new).await?;
    let created = outcome.is_some_and(|outcome| outcome.created);
    let (subject, purpose) = match outcome {
        Some(outcome) if outcome.created => (Some(outcome.id), Purpose::VerifyEmail),
        Some(outcome) if outcome.is_active => (Some(outcome.id), Purpose::ResetPassword),
        _ => (None, Purpose::ResetPassword),
    };
    let token = new_one_time_token(&state, &mut tx, subject, purpose).await?;
    let email = if created {
        Message::VerifyEmail {
            link: mail::link(&state, crate::links::VERIFY_EMAIL, &token),
        }
    } else {
        Message::AlreadyRegistered {
            reset_link: mail::link(&state, crate::links::RESET_PASSWORD, &token),
        }
    };
    mail::queue_if(&mut tx, subject.is_some(), request.email.as_str(), email).await?;
    tx.commit().await?;
    Ok(accepted(
        "If this address can be used, a message is on its way to it.",
    ))
}

/// A new verification link for `user_id`, emailed to `email`; with `None`, the same work
/// sending nothing.
async fn send_verification(
    state: &Accounts,
    tx: &mut PgConnection,
    user_id: Option<UserId>,
    email: &str,
) -> Result<(), ApiError> {
    let token = new_one_time_token(state, tx, user_id, Purpose::VerifyEmail).await?;
    let link = mail::link(state, crate::links::VERIFY_EMAIL, &token);
    mail::queue_if(tx, user_id.is_some(), email, Message::VerifyEmail { link }).await
}

/// Send the verification link again.
///
/// Answers the same whether or not the address has an account, or is already verified.
#[utoipa::path(
    post,
    path = "/verification",
    tag = "auth",
    request_body = EmailRequest,
    responses((status = 202, description = "Check your email", body = Accepted)),
)]
pub(crate) async fn initiate_verification_email(
    State(state): State<Accounts>,
    ip: ClientIp,
    Json(request): Json<EmailRequest>,
) -> Result<impl IntoResponse, ApiError> {
    limits::check(
        &state,
        Family::Verification,
        ip,
        Some(request.email.as_str()),
    )
    .await?;
    let mut tx = state.db.begin().await?;
    let subject = active_account(&mut *tx, &request.email)
        .await?
        .filter(|found| found.user.email_verified_at.is_none())
        .map(|found| found.user.id);
    send_verification(&state, &mut tx, subject, request.email.as_str()).await?;
    tx.commit().await?;
    Ok(accepted(
        "If this address has an unverified account, a new link is on its way.",
    ))
}

/// The token of a verification link, with the password the account was created with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The `token` parameter of the link.
    pub token: String,
    /// The password chosen at signup. Required when the account has one: the link proves
    /// control of the address, the password proves that whoever follows it also created the
    /// account.
    #[serde(default)]
    #[schema(max_length = 512)]
    pub password: Option<String>,
}

/// 401 like every other credential that does not hold (a link token is one).
pub(crate) const INVALID_LINK: ApiError = ApiError::Unauthorized {
    code: "invalid-token",
    detail: "This link is invalid, expired or already used: ask for a new one.",
};

const NOT_THE_SIGNUP_PASSWORD: ApiError = ApiError::Unauthorized {
    code: "invalid-credentials",
    detail: "This is not the password the account was created with. If you did not create it, \
             choose a new password with a password reset instead.",
};

/// Verify an email address.
///
/// Uses the token of the verification link (once), with the password chosen at signup (the
/// page the link opens asks for it). Someone else may have signed up with this address: the
/// address's owner who does not know that password resets it instead, which discards what
/// the signup set. A link allows 5 attempts (by default).
#[utoipa::path(
    post,
    path = "/verify",
    tag = "auth",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "Verified", body = UserOut),
        (status = 401, description = "Invalid, expired or used token, or not the signup's password"),
        (status = 422, description = "`password` is missing and the account has one"),
        (status = 429, description = "Too many attempts"),
    ),
)]
pub(crate) async fn verify_user(
    State(state): State<Accounts>,
    ip: ClientIp,
    Json(request): Json<VerifyEmailRequest>,
) -> Result<Json<UserOut>, ApiError> {
    let user = verify_email(&state, ip, &request.token, request.password).await?;
    Ok(Json(user.into()))
}

/// What `POST /auth/verify` does, for its JSON handler and the verification page alike
/// (`crate::pages`): one protocol, two renderings.
pub(crate) async fn verify_email(
    state: &Accounts,
    ip: ClientIp,
    token: &str,
    password: Option<String>,
) -> Result<crate::db::users::User, ApiError> {
    limits::check(state, Family::Verification, ip, None).await?;
    let token_hash = hash_token(token);
    let user_id = crate::db::credentials::attempt_one_time_token(
        &state.db,
        &token_hash,
        Purpose::VerifyEmail,
        state.auth.config.max_code_attempts,
    )
    .await?
    .ok_or(INVALID_LINK)?;
    let found = crate::db::users::credentials(&state.db, None, Some(user_id))
        .await?
        .ok_or(INVALID_LINK)?;
    if let Some(stored) = found.password_hash {
        let password = password.ok_or_else(|| {
            ApiError::invalid_body(
                "/password",
                "missing",
                "`password` is required: type the password this account was created with.",
            )
        })?;
        if password.len() > labs_domain::password::MAX_BYTES {
            return Err(NOT_THE_SIGNUP_PASSWORD);
        }
        let hasher = state.auth.keys.passwords.clone();
        let verification = blocking(state, move || hasher.verify(&password, Some(&stored))).await?;
        if !matches!(verification, Verification::Valid { .. }) {
            return Err(NOT_THE_SIGNUP_PASSWORD);
        }
    }
    let mut tx = state.db.begin().await?;
    crate::db::credentials::use_one_time_token(&mut *tx, &token_hash, Purpose::VerifyEmail)
        .await?
        .ok_or(INVALID_LINK)?;
    // Whoever follows the link knows the signup's password: its credentials are theirs.
    let claimed = crate::db::users::claim(&mut tx, user_id, true)
        .await?
        .ok_or(INVALID_LINK)?;
    tx.commit().await?;
    Ok(claimed.user)
}
