//! TOTP second factor (RFC 6238): enrolment, confirmation with a first code, recovery codes,
//! the second login step, and turning it off.
//!
//! Each accepted code's time step is stored, and a code of that step or an older one is
//! refused (no replay within its window). Secrets are sealed at rest (`labs_auth::sealed`).

use crate::db::credentials::Purpose;
use crate::db::users::UserCredentials;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use labs_auth::TotpSecret;
use labs_auth::token::{hash_token, normalise_recovery_code, recovery_codes};
use labs_http::ApiError;
use labs_http::extract::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::identity::CurrentUser;
use super::limits::{self, ClientIp, Family};
use super::session::{self, TokenResponse};
use crate::emails::AccountEmail as Message;
use crate::{Accounts, mail};

const RECOVERY_PURPOSE: &str = "recovery_code";
const RECOVERY_CODES: usize = 10;

/// What an authenticator app needs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpEnrollment {
    /// The shared secret in base32, for typing into an app by hand.
    pub secret: String,
    /// The `otpauth://totp/...` URI that apps scan.
    pub otpauth_uri: String,
    /// The URI as a QR code (an SVG document).
    pub qr_svg: String,
}

/// A TOTP code, or a recovery code where allowed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodeRequest {
    /// 6 digits from the authenticator app, or (where recovery codes are accepted) a recovery
    /// code such as `abcde-fghjk`.
    #[schema(example = "123456", max_length = 32)]
    pub code: String,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodes {
    /// Each works once in place of a TOTP code. Store them somewhere safe: they are not shown
    /// again.
    pub recovery_codes: Vec<String>,
}

const ALREADY_ON: ApiError = ApiError::Conflict {
    code: "totp-already-enabled",
    detail: "TOTP is already on for this account.",
};
const NOT_ON: ApiError = ApiError::Conflict {
    code: "totp-not-enabled",
    detail: "TOTP is not on for this account.",
};
const WRONG_CODE: ApiError = ApiError::Unauthorized {
    code: "invalid-code",
    detail: "This code is wrong, expired or already used.",
};

async fn credentials(state: &Accounts, caller: &CurrentUser) -> Result<UserCredentials, ApiError> {
    crate::db::users::credentials(&state.db, None, Some(caller.user.id))
        .await?
        .ok_or(ApiError::NotFound)
}

/// Opens the account's sealed secret (re-sealing it under the current key if an older one
/// sealed it).
async fn secret_of(
    state: &Accounts,
    found: &UserCredentials,
) -> Result<Option<TotpSecret>, ApiError> {
    let Some(sealed) = &found.totp_secret else {
        return Ok(None);
    };
    let keys = &state.auth.keys.secrets;
    let owner = found.user.id.as_bytes();
    let plain = keys.open(sealed, owner).map_err(ApiError::internal)?;
    if !keys.is_current(sealed) {
        crate::db::users::reseal_totp(&state.db, found.user.id, &keys.seal(&plain, owner)).await?;
    }
    Ok(Some(TotpSecret::from_bytes(plain)))
}

fn unix_now() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or_default()
}

/// Checks a second factor for an account with TOTP on: a current TOTP code (its step claimed,
/// so it works once) or, if `recovery` is allowed, an unused recovery code (used up).
async fn check_second_factor(
    state: &Accounts,
    found: &UserCredentials,
    code: &str,
    recovery: bool,
) -> Result<bool, ApiError> {
    let code = code.trim();
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        let Some(secret) = secret_of(state, found).await? else {
            return Ok(false);
        };
        let last = found
            .totp_last_step
            .and_then(|step| u64::try_from(step).ok());
        let Some(step) = secret.verify(code, unix_now(), last) else {
            return Ok(false);
        };
        let step = i64::try_from(step).map_err(ApiError::internal)?;
        // The compare-and-set: of two concurrent requests with one code, one wins.
        return Ok(crate::db::users::claim_totp_step(&state.db, found.user.id, step).await?);
    }
    if !recovery || code.len() > 32 {
        return Ok(false);
    }
    let hash = state.auth.keys.codes.hash(
        RECOVERY_PURPOSE,
        found.user.id.as_bytes(),
        &normalise_recovery_code(code),
    );
    let used = crate::db::credentials::use_recovery_code(&state.db, found.user.id, &hash).await?;
    if used {
        tracing::info!(user = %found.user.id, "recovery code used");
    }
    Ok(used)
}

/// New recovery codes for `user`, replacing the old ones; returned in clear once.
async fn new_recovery_codes(
    state: &Accounts,
    tx: &mut sqlx::PgConnection,
    user: labs_domain::UserId,
) -> Result<Vec<String>, ApiError> {
    let codes = recovery_codes(RECOVERY_CODES);
    let hashes: Vec<Vec<u8>> = codes
        .iter()
        .map(|code| {
            state
                .auth
                .keys
                .codes
                .hash(RECOVERY_PURPOSE, user.as_bytes(), code)
        })
        .collect();
    crate::db::credentials::replace_recovery_codes(tx, user, &hashes).await?;
    Ok(codes)
}

/// Start TOTP enrolment.
///
/// Generates a secret and answers it as an `otpauth://` URI and a QR code. TOTP is on only
/// after `/auth/totp/confirm` with a first code. Needs a fresh login.
#[utoipa::path(
    post,
    path = "/totp/enroll",
    tag = "auth",
    responses(
        (status = 200, description = "Scan it, then confirm with a code", body = TotpEnrollment),
        (status = 403, description = "`fresh-login-required`"),
        (status = 409, description = "TOTP is already on"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn enroll_totp(
    State(state): State<Accounts>,
    caller: CurrentUser,
) -> Result<Json<TotpEnrollment>, ApiError> {
    caller.require_fresh()?;
    let secret = TotpSecret::generate();
    let sealed = state
        .auth
        .keys
        .secrets
        .seal(secret.as_bytes(), caller.user.id.as_bytes());
    if !crate::db::users::set_pending_totp(&state.db, caller.user.id, &sealed).await? {
        return Err(ALREADY_ON);
    }
    let otpauth_uri = secret.otpauth_uri(&state.auth.config.totp_issuer, &caller.user.email);
    let qr_svg = labs_auth::totp::qr_svg(&otpauth_uri).map_err(ApiError::internal)?;
    Ok(Json(TotpEnrollment {
        secret: secret.base32(),
        otpauth_uri,
        qr_svg,
    }))
}

/// Turn TOTP on with a first code.
///
/// Proves the app holds the secret, turns TOTP on, and answers the recovery codes (once).
#[utoipa::path(
    post,
    path = "/totp/confirm",
    tag = "auth",
    request_body = CodeRequest,
    responses(
        (status = 200, description = "TOTP is on", body = RecoveryCodes),
        (status = 401, description = "Wrong code"),
        (status = 409, description = "Already on, or not enrolled"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn confirm_totp(
    State(state): State<Accounts>,
    ip: ClientIp,
    caller: CurrentUser,
    Json(request): Json<CodeRequest>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    limits::check(&state, Family::Totp, ip, Some(&caller.user.id.to_string())).await?;
    let found = credentials(&state, &caller).await?;
    if found.user.totp_enabled {
        return Err(ALREADY_ON);
    }
    let secret = secret_of(&state, &found).await?.ok_or(ApiError::Conflict {
        code: "totp-not-enrolled",
        detail: "Start with /auth/totp/enroll.",
    })?;
    let step = secret
        .verify(&request.code, unix_now(), None)
        .ok_or(WRONG_CODE)?;
    let mut tx = state.db.begin().await?;
    if !crate::db::users::enable_totp(
        &mut *tx,
        caller.user.id,
        i64::try_from(step).map_err(ApiError::internal)?,
    )
    .await?
    {
        return Err(ALREADY_ON);
    }
    let recovery_codes = new_recovery_codes(&state, &mut tx, caller.user.id).await?;
    tx.commit().await?;
    tracing::info!(user = %caller.user.id, "TOTP turned on");
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// Turn TOTP off.
///
/// Needs a fresh login and a current TOTP code or a recovery code. Tells the owner by email.
#[utoipa::path(
    post,
    path = "/totp/disable",
    tag = "auth",
    request_body = CodeRequest,
    responses(
        (status = 204, description = "TOTP is off"),
        (status = 401, description = "Wrong code"),
        (status = 403, description = "`fresh-login-required`"),
        (status = 409, description = "TOTP is not on"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn disable_totp(
    State(state): State<Accounts>,
    ip: ClientIp,
    caller: CurrentUser,
    Json(request): Json<CodeRequest>,
) -> Result<StatusCode, ApiError> {
    caller.require_fresh()?;
    limits::check(&state, Family::Totp, ip, Some(&caller.user.id.to_string())).await?;
    let found = credentials(&state, &caller).await?;
    if !found.user.totp_enabled {
        return Err(NOT_ON);
    }
    if !check_second_factor(&state, &found, &request.code, true).await? {
        return Err(WRONG_CODE);
    }
    let mut tx = state.db.begin().await?;
    crate::db::users::disable_totp(&mut *tx, caller.user.id).await?;
    crate::db::credentials::delete_recovery_codes(&mut *tx, caller.user.id).await?;
    mail::queue(&mut tx, &caller.user.email, Message::TotpDisabled).await?;
    tx.commit().await?;
    tracing::info!(user = %caller.user.id, "TOTP turned off");
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the recovery codes.
///
/// Needs a fresh login and a current TOTP code. The old codes stop working. Tells the owner by
/// email.
#[utoipa::path(
    post,
    path = "/totp/recovery-codes",
    tag = "auth",
    request_body = CodeRequest,
    responses(
        (status = 200, description = "New recovery codes", body = RecoveryCodes),
        (status = 401, description = "Wrong code"),
        (status = 403, description = "`fresh-login-required`"),
        (status = 409, description = "TOTP is not on"),
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn regenerate_recovery_codes(
    State(state): State<Accounts>,
    ip: ClientIp,
    caller: CurrentUser,
    Json(request): Json<CodeRequest>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    caller.require_fresh()?;
    limits::check(&state, Family::Totp, ip, Some(&caller.user.id.to_string())).await?;
    let found = credentials(&state, &caller).await?;
    if !found.user.totp_enabled {
        return Err(NOT_ON);
    }
    if !check_second_factor(&state, &found, &request.code, false).await? {
        return Err(WRONG_CODE);
    }
    let mut tx = state.db.begin().await?;
    let recovery_codes = new_recovery_codes(&state, &mut tx, caller.user.id).await?;
    mail::queue(&mut tx, &caller.user.email, Message::RecoveryCodesReplaced).await?;
    tx.commit().await?;
    tracing::info!(user = %caller.user.id, "recovery codes replaced");
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// The second login step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MfaLoginRequest {
    /// The `mfaToken` of the `mfa-required` answer.
    #[schema(max_length = 128)]
    pub mfa_token: String,
    /// A TOTP code or a recovery code.
    #[schema(example = "123456", max_length = 32)]
    pub code: String,
    /// Answer with `HttpOnly` cookies instead of tokens in the body.
    #[serde(default)]
    pub set_cookies: bool,
}

const INVALID_CHALLENGE: ApiError = ApiError::Unauthorized {
    code: "invalid-mfa-token",
    detail: "This login attempt has expired or failed too often: start again with your password.",
};

/// Finish a login with a TOTP or recovery code.
///
/// Exchanges the `mfaToken` of the `mfa-required` answer and a code for tokens. The token
/// expires after 5 minutes (by default) or 5 wrong codes.
#[utoipa::path(
    post,
    path = "/totp/verify",
    tag = "auth",
    request_body = MfaLoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Wrong code, or expired or exhausted `mfaToken`"),
        (status = 429, description = "Too many attempts"),
    ),
)]
pub(crate) async fn verify_totp(
    State(state): State<Accounts>,
    ip: ClientIp,
    Json(request): Json<MfaLoginRequest>,
) -> Result<Response, ApiError> {
    limits::check(&state, Family::Totp, ip, None).await?;
    let challenge = hash_token(&request.mfa_token);
    // The attempt is claimed before the code is checked, in one conditional statement: of any
    // number of concurrent requests on one challenge, at most `max_code_attempts` are checked.
    let user_id = crate::db::credentials::attempt_one_time_token(
        &state.db,
        &challenge,
        Purpose::MfaChallenge,
        state.auth.config.max_code_attempts,
    )
    .await?
    .ok_or(INVALID_CHALLENGE)?;
    limits::check(&state, Family::Totp, ip, Some(&user_id.to_string())).await?;
    let found = crate::db::users::credentials(&state.db, None, Some(user_id))
        .await?
        .filter(|found| found.user.is_active && found.user.totp_enabled)
        .ok_or(INVALID_CHALLENGE)?;
    if !check_second_factor(&state, &found, &request.code, true).await? {
        metrics::counter!("labs_auth_logins_total", "method" => "totp", "outcome" => "failure")
            .increment(1);
        return Err(WRONG_CODE);
    }
    // Used once: a second exchange of the same challenge finds nothing.
    crate::db::credentials::use_one_time_token(&state.db, &challenge, Purpose::MfaChallenge)
        .await?
        .ok_or(INVALID_CHALLENGE)?;
    metrics::counter!("labs_auth_logins_total", "method" => "totp", "outcome" => "success")
        .increment(1);
    let tokens = session::start(&state, user_id, found.credentials_epoch).await?;
    Ok(session::answer(&state, tokens, request.set_cookies))
}
