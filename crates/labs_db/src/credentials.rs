//! Sessions and the short-lived secrets around an account: refresh tokens, one-time tokens,
//! email OTPs, recovery codes. Only hashes are stored (see the migration); each "use" is a
//! single conditional statement, so that a secret is consumed at most once even when two
//! requests race.

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    MfaChallenge,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::MfaChallenge => "mfa_challenge",
        }
    }
}

// --- sessions --------------------------------------------------------------------------------

/// Opens a session with its first refresh token: one statement, so one round trip and one
/// commit (a login's only write; a `BEGIN`, two inserts and a `COMMIT` were four round trips).
pub async fn start_session(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    refresh_token_hash: &[u8],
    refresh_expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "WITH session AS (INSERT INTO sessions (id, user_id) VALUES ($1, $2) RETURNING id)
         INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
         SELECT $3, id, $4 FROM session",
        id,
        user_id,
        refresh_token_hash,
        refresh_expires_at
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes one session (its refresh tokens and access tokens stop working).
pub async fn revoke_session(
    db: impl PgExecutor<'_>,
    id: Uuid,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL",
        id,
        reason
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every live session of a user; returns how many.
pub async fn revoke_all_sessions(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
        reason
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

// --- refresh tokens --------------------------------------------------------------------------

pub async fn insert_refresh_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    session_id: Uuid,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        token_hash,
        session_id,
        expires_at
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A presented refresh token, as found.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub session_revoked: bool,
}

/// Finds a refresh token and locks it until the transaction ends, so that two concurrent
/// exchanges of one token are serialised: the second sees it used (a reuse).
pub async fn lock_refresh_token(
    tx: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<RefreshToken>, sqlx::Error> {
    sqlx::query_as!(
        RefreshToken,
        r#"SELECT r.session_id, s.user_id, r.expires_at, r.used_at,
                  s.revoked_at IS NOT NULL AS "session_revoked!"
           FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
           WHERE r.token_hash = $1
           FOR UPDATE OF r"#,
        token_hash
    )
    .fetch_optional(tx)
    .await
}

pub async fn mark_refresh_token_used(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1",
        token_hash
    )
    .execute(db)
    .await?;
    Ok(())
}

// --- one-time tokens -------------------------------------------------------------------------

/// Stores a new one-time token and voids the user's earlier unused ones of the same purpose:
/// only the latest link works.
pub async fn replace_one_time_token(
    tx: &mut PgConnection,
    token_hash: &[u8],
    user_id: Uuid,
    purpose: Purpose,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        user_id,
        purpose.as_str()
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO one_time_tokens (token_hash, user_id, purpose, expires_at) VALUES ($1, $2, $3, $4)",
        token_hash,
        user_id,
        purpose.as_str(),
        expires_at
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Uses a one-time token: returns its user if it exists for `purpose`, is unused, unexpired
/// and has fewer than `max_attempts` failed attempts. At most one caller ever gets it.
pub async fn consume_one_time_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    purpose: Purpose,
    max_attempts: i32,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE one_time_tokens SET used_at = now()
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
           AND attempts < $3
         RETURNING user_id",
        token_hash,
        purpose.as_str(),
        max_attempts
    )
    .fetch_optional(db)
    .await
}

/// The user of a live one-time token, without using it (the MFA challenge is used only when
/// its second factor is right).
pub async fn peek_one_time_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    purpose: Purpose,
    max_attempts: i32,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT user_id FROM one_time_tokens
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
           AND attempts < $3",
        token_hash,
        purpose.as_str(),
        max_attempts
    )
    .fetch_optional(db)
    .await
}

/// Counts a failed attempt against a one-time token.
pub async fn fail_one_time_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE one_time_tokens SET attempts = attempts + 1 WHERE token_hash = $1",
        token_hash
    )
    .execute(db)
    .await?;
    Ok(())
}

// --- email OTPs ------------------------------------------------------------------------------

/// Stores a user's new OTP, replacing any earlier one (and its attempt count).
pub async fn replace_email_otp(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    code_hash: &[u8],
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO email_otps (user_id, code_hash, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE
             SET code_hash = EXCLUDED.code_hash, expires_at = EXCLUDED.expires_at,
                 attempts = 0, created_at = now()",
        user_id,
        code_hash,
        expires_at
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A user's live OTP.
#[derive(Debug, Clone)]
pub struct EmailOtp {
    pub code_hash: Vec<u8>,
    pub expires_at: OffsetDateTime,
    pub attempts: i32,
}

/// Locks a user's OTP for checking, until the transaction ends.
pub async fn lock_email_otp(
    tx: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<EmailOtp>, sqlx::Error> {
    sqlx::query_as!(
        EmailOtp,
        "SELECT code_hash, expires_at, attempts FROM email_otps WHERE user_id = $1 FOR UPDATE",
        user_id
    )
    .fetch_optional(tx)
    .await
}

pub async fn fail_email_otp(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE email_otps SET attempts = attempts + 1 WHERE user_id = $1",
        user_id
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn delete_email_otp(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM email_otps WHERE user_id = $1", user_id)
        .execute(db)
        .await?;
    Ok(())
}

// --- recovery codes --------------------------------------------------------------------------

/// Replaces all of a user's recovery codes.
pub async fn replace_recovery_codes(
    tx: &mut PgConnection,
    user_id: Uuid,
    code_hashes: &[Vec<u8>],
) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, * FROM UNNEST($2::bytea[])",
        user_id,
        code_hashes
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Uses a recovery code: true at most once per code.
pub async fn use_recovery_code(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    code_hash: &[u8],
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE recovery_codes SET used_at = now() WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        user_id,
        code_hash
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_recovery_codes(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
        .execute(db)
        .await?;
    Ok(())
}

// --- housekeeping ----------------------------------------------------------------------------

/// Deletes what can no longer be used: expired tokens and OTPs, and sessions revoked, or
/// without a live refresh token, for longer than `keep`. Returns the rows deleted.
pub async fn purge_expired(
    db: impl PgExecutor<'_> + Copy,
    keep: time::Duration,
) -> Result<u64, sqlx::Error> {
    let before = OffsetDateTime::now_utc() - keep;
    let mut deleted = 0;
    deleted += sqlx::query!("DELETE FROM one_time_tokens WHERE expires_at < $1", before)
        .execute(db)
        .await?
        .rows_affected();
    deleted += sqlx::query!("DELETE FROM email_otps WHERE expires_at < $1", before)
        .execute(db)
        .await?
        .rows_affected();
    deleted += sqlx::query!("DELETE FROM refresh_tokens WHERE expires_at < $1", before)
        .execute(db)
        .await?
        .rows_affected();
    deleted += sqlx::query!(
        "DELETE FROM sessions s WHERE (s.revoked_at < $1)
            OR (s.created_at < $1 AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id))",
        before
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(deleted)
}
