//! Sessions and the short-lived secrets around an account: refresh tokens, one-time tokens,
//! email OTPs, recovery codes. Only hashes are stored (see the migration); each "use" is a
//! single conditional statement, so that a secret is consumed at most once even when two
//! requests race.
//!
//! Over 400 lines on purpose: the four kinds of secret share one pattern (insert a hash,
//! consume it with one conditional `UPDATE`, purge the expired), and reading them side by
//! side is how a reviewer checks that every one is single-use.

use labs_domain::{SessionId, UserId};
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

/// Opens a session with its first refresh token, if the account is active and its
/// credentials are still at `credentials_epoch` (the version the login checked); false if not.
/// One statement, so one round trip and one commit (a login's only write; a `BEGIN`, two
/// inserts and a `COMMIT` were four round trips).
///
/// The account's row is share-locked while the session is inserted: a concurrent change of the
/// credentials (which takes the row's update lock, then revokes sessions) either waits for
/// this session and revokes it, or commits first, and then the epoch no longer matches here.
/// Without the check, a login whose password check began before a reset or an address claim
/// would open a session after the change had revoked the others.
pub async fn start_session(
    db: impl PgExecutor<'_>,
    id: SessionId,
    user_id: UserId,
    credentials_epoch: i32,
    refresh_token_hash: &[u8],
    refresh_expires_at: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "WITH session AS (
             INSERT INTO sessions (id, user_id)
             SELECT $1, u.id FROM users u
             WHERE u.id = $2 AND u.is_active AND u.credentials_epoch = $5
             FOR SHARE OF u
             RETURNING id
         )
         INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
         SELECT $3, id, $4 FROM session",
        id.as_uuid(),
        user_id.as_uuid(),
        refresh_token_hash,
        refresh_expires_at,
        credentials_epoch
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Voids every pending link and login code of an account (its address changed, or its
/// password: whoever holds an older link must not use it now).
pub async fn void_pending_secrets(
    db: impl PgExecutor<'_>,
    user_id: UserId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "WITH codes AS (DELETE FROM email_otps WHERE user_id = $1)
         DELETE FROM one_time_tokens WHERE user_id = $1 AND used_at IS NULL",
        user_id.as_uuid()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes one session (its refresh tokens and access tokens stop working).
pub async fn revoke_session(
    db: impl PgExecutor<'_>,
    id: SessionId,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL",
        id.as_uuid(),
        reason
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every live session of a user; returns how many.
pub async fn revoke_all_sessions(
    db: impl PgExecutor<'_>,
    user_id: UserId,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        user_id.as_uuid(),
        reason
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Revokes every live session of a user but `keep` (the caller's own, after a password
/// change); returns how many.
pub async fn revoke_other_sessions(
    db: impl PgExecutor<'_>,
    user_id: UserId,
    keep: SessionId,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
         WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
        user_id.as_uuid(),
        keep.as_uuid(),
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
    session_id: SessionId,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        token_hash,
        session_id.as_uuid(),
        expires_at
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A presented refresh token, as found.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub session_revoked: bool,
    /// When the session (the token family) began: its absolute lifetime runs from here.
    pub session_started_at: OffsetDateTime,
}

/// Finds a refresh token and locks it until the transaction ends, so that two concurrent
/// exchanges of one token are serialised: the second sees it used (a reuse).
pub async fn lock_refresh_token(
    tx: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<RefreshToken>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT r.session_id, s.user_id, r.expires_at, r.used_at,
                  s.revoked_at IS NOT NULL AS "session_revoked!",
                  s.created_at AS session_started_at
           FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
           WHERE r.token_hash = $1
           FOR UPDATE OF r"#,
        token_hash
    )
    .fetch_optional(tx)
    .await?;
    Ok(row.map(|r| RefreshToken {
        session_id: SessionId::from_uuid(r.session_id),
        user_id: UserId::from_uuid(r.user_id),
        expires_at: r.expires_at,
        used_at: r.used_at,
        session_revoked: r.session_revoked,
        session_started_at: r.session_started_at,
    }))
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
//
// Every function of this section and the next takes the account as an `Option`: `None` runs
// the same statement, which then writes nothing. A request about an address that has no
// account does the same work as one about an address that has (docs/SECURITY.md, "Account
// existence"), so neither its answer nor its timing tells them apart.

/// Stores a new one-time token for `purpose` and voids the account's earlier unused ones: only
/// the latest link works. One statement (the void and the insert), so one round trip.
pub async fn replace_one_time_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    user_id: Option<UserId>,
    purpose: Purpose,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "WITH voided AS (
             DELETE FROM one_time_tokens WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL
         )
         INSERT INTO one_time_tokens (token_hash, user_id, purpose, expires_at)
         SELECT $1, $2, $3, $4 WHERE $2::uuid IS NOT NULL",
        token_hash,
        user_id.map(UserId::as_uuid) as Option<Uuid>,
        purpose.as_str(),
        expires_at
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Claims one attempt at a one-time token *before* the secret that goes with it is checked
/// (the second factor of an MFA challenge, the password of a verification link): returns its
/// account if the token exists for `purpose`, is unused, unexpired, and had fewer than
/// `max_attempts` attempts. The count and the check are one conditional `UPDATE`, so however
/// many requests race, at most `max_attempts` of them get to check (reading the count, then
/// incrementing it after the check, let nine concurrent wrong codes through a cap of five).
pub async fn attempt_one_time_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    purpose: Purpose,
    max_attempts: i32,
) -> Result<Option<UserId>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE one_time_tokens SET attempts = attempts + 1
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
           AND attempts < $3
         RETURNING user_id",
        token_hash,
        purpose.as_str(),
        max_attempts
    )
    .fetch_optional(db)
    .await
    .map(|id| id.map(UserId::from_uuid))
}

/// Uses a one-time token: returns its account if it exists for `purpose`, is unused and
/// unexpired. At most one caller ever gets it. (Its attempts were counted, where they count,
/// by [`attempt_one_time_token`].)
pub async fn use_one_time_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    purpose: Purpose,
) -> Result<Option<UserId>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE one_time_tokens SET used_at = now()
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
         RETURNING user_id",
        token_hash,
        purpose.as_str(),
    )
    .fetch_optional(db)
    .await
    .map(|id| id.map(UserId::from_uuid))
}

// --- email OTPs ------------------------------------------------------------------------------

/// Stores an account's new login code, replacing any earlier one (and its attempt count);
/// with `None`, the same statement storing nothing.
pub async fn replace_email_otp(
    db: impl PgExecutor<'_>,
    user_id: Option<UserId>,
    code_hash: &[u8],
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO email_otps (user_id, code_hash, expires_at)
         SELECT $1, $2, $3 WHERE $1::uuid IS NOT NULL
         ON CONFLICT (user_id) DO UPDATE
             SET code_hash = EXCLUDED.code_hash, expires_at = EXCLUDED.expires_at,
                 attempts = 0, created_at = now()",
        user_id.map(UserId::as_uuid) as Option<Uuid>,
        code_hash,
        expires_at
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Claims one attempt at an account's live login code and returns the code's hash to check
/// against; `None` when there is no live code, it expired, or `max_attempts` were made. One
/// conditional `UPDATE`: concurrent guesses cannot exceed the cap.
pub async fn attempt_email_otp(
    db: impl PgExecutor<'_>,
    user_id: Option<UserId>,
    max_attempts: i32,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE email_otps SET attempts = attempts + 1
         WHERE user_id = $1 AND attempts < $2 AND expires_at > now()
         RETURNING code_hash",
        user_id.map(UserId::as_uuid) as Option<Uuid>,
        max_attempts
    )
    .fetch_optional(db)
    .await
}

pub async fn delete_email_otp(db: impl PgExecutor<'_>, user_id: UserId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM email_otps WHERE user_id = $1",
        user_id.as_uuid()
    )
    .execute(db)
    .await?;
    Ok(())
}

// --- recovery codes --------------------------------------------------------------------------

/// Replaces all of a user's recovery codes.
pub async fn replace_recovery_codes(
    tx: &mut PgConnection,
    user_id: UserId,
    code_hashes: &[Vec<u8>],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM recovery_codes WHERE user_id = $1",
        user_id.as_uuid()
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, * FROM UNNEST($2::bytea[])",
        user_id.as_uuid(),
        code_hashes
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Uses a recovery code: true at most once per code.
pub async fn use_recovery_code(
    db: impl PgExecutor<'_>,
    user_id: UserId,
    code_hash: &[u8],
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE recovery_codes SET used_at = now() WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        user_id.as_uuid(),
        code_hash
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_recovery_codes(
    db: impl PgExecutor<'_>,
    user_id: UserId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM recovery_codes WHERE user_id = $1",
        user_id.as_uuid()
    )
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
