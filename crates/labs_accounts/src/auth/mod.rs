//! `/auth`: signup and email verification, password login with an optional TOTP step, email
//! login codes, refresh-token rotation, logout, password reset, TOTP management. The
//! credential crypto is in `labs_auth`, the SQL in [`crate::db`]; here is the protocol.

mod identity;
pub(crate) mod kernel;
pub(crate) mod limits;
pub mod otp;
pub mod password;
pub mod session;
pub mod signup;
pub mod totp;

pub use identity::{AdminUser, CurrentUser};
pub use session::TokenResponse;

use axum::extract::{FromRef, State};
use labs_http::extract::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Accounts;

pub(crate) fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Accounts: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(signup::signup_user))
        .routes(routes!(signup::initiate_verification_email))
        .routes(routes!(signup::verify_user))
        .routes(routes!(password::login_for_auth_token))
        .routes(routes!(session::refresh_jwt_token))
        .routes(routes!(session::logout_user))
        .routes(routes!(password::get_me))
        .routes(routes!(otp::initiate_otp_email))
        .routes(routes!(otp::verify_otp))
        .routes(routes!(password::initiate_password_reset))
        .routes(routes!(password::reset_password))
        .routes(routes!(password::change_password))
        .routes(routes!(totp::enroll_totp))
        .routes(routes!(totp::confirm_totp))
        .routes(routes!(totp::disable_totp))
        .routes(routes!(totp::regenerate_recovery_codes))
        .routes(routes!(totp::verify_totp))
}

/// `/.well-known/jwks.json`, outside `/auth` where verifiers look for it.
pub(crate) fn well_known<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Accounts: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(get_jwks))
}

/// The public keys that verify our access tokens (RFC 7517 JSON Web Key Set).
///
/// Other services verify our tokens with these keys (matching the token's `kid`). During a
/// key rotation the set holds the new key and the retired ones. Empty with HS256, whose
/// secret is never published.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "auth",
    responses((status = 200, description = "The key set", body = labs_auth::jwks::JwkSet)),
)]
pub(crate) async fn get_jwks(State(state): State<Accounts>) -> Json<labs_auth::jwks::JwkSet> {
    Json(state.auth.keys.jwt.jwks())
}
