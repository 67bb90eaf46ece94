//! Accounts: the `users` table.
//!
//! Over 400 lines on purpose: one small named function per statement on the table (18 of
//! them, each with its row type), read side by side; split in halves, a reader would have to
//! look in two files to know every statement that writes a user.

use labs_domain::{SessionId, UserId};
use sqlx::PgExecutor;
use time::OffsetDateTime;

/// An account, as every part of the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub full_name: Option<String>,
    pub is_admin: bool,
    pub is_active: bool,
    pub email_verified_at: Option<OffsetDateTime>,
    pub totp_enabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The [`User`] of a row that selected the user columns. A macro, not a function: each
/// `query!` row is a type of its own. It moves only those fields out of `$row`.
macro_rules! user_of_row {
    ($row:ident) => {
        User {
            id: UserId::from_uuid($row.id),
            email: $row.email,
            full_name: $row.full_name,
            is_admin: $row.is_admin,
            is_active: $row.is_active,
            email_verified_at: $row.email_verified_at,
            totp_enabled: $row.totp_enabled,
            created_at: $row.created_at,
            updated_at: $row.updated_at,
        }
    };
}

/// An account with the credentials needed to log it in.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: Option<String>,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_last_step: Option<i64>,
    /// The credentials' version: a session opens only if it is still this one (see
    /// `credentials::start_session`).
    pub credentials_epoch: i32,
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub id: UserId,
    pub email: &'a str,
    pub full_name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub is_admin: bool,
    pub verified: bool,
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges<'a> {
    pub email: Option<&'a str>,
    pub full_name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub is_admin: Option<bool>,
    pub is_active: Option<bool>,
}

/// The unique constraint a duplicate email violates.
const EMAIL_KEY: &str = "users_email_key";

/// Whether `error` is the duplicate-email violation (the caller answers 409).
pub fn is_duplicate_email(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.constraint())
        .is_some_and(|constraint| constraint == EMAIL_KEY)
}

/// Creates an account; `None` if the email is taken.
pub async fn insert(
    db: impl PgExecutor<'_>,
    new: &NewUser<'_>,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO users (id, email, full_name, password_hash, is_admin, email_verified_at,
                              first_verified_at)
           VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END, CASE WHEN $6 THEN now() END)
           ON CONFLICT (email) DO NOTHING
           RETURNING id, email, full_name, is_admin, is_active, email_verified_at,
                     totp_enabled_at IS NOT NULL AS "totp_enabled!", created_at, updated_at"#,
        new.id.as_uuid(),
        new.email,
        new.full_name,
        new.password_hash,
        new.is_admin,
        new.verified,
    )
    .fetch_optional(db)
    .await
    .map(|row| row.map(|r| user_of_row!(r)))
}

/// What a signup found at its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignupOutcome {
    /// The new account, or the one that already had the address.
    pub id: UserId,
    /// Whether this signup created it.
    pub created: bool,
    pub is_active: bool,
}

/// Creates the account of a signup, or finds the one that already has its address, in one
/// statement: both outcomes cost the same round trip, so that the answer's timing does not
/// tell whether the address is registered (an insert, then a lookup on conflict, was one
/// statement more for a taken address). An existing account is never changed.
///
/// `None` only when a concurrent signup of the same address committed between this
/// statement's snapshot and its insert (the caller treats it as taken, by someone unknown).
pub async fn signup(
    db: impl PgExecutor<'_>,
    new: &NewUser<'_>,
) -> Result<Option<SignupOutcome>, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH inserted AS (
               INSERT INTO users (id, email, full_name, password_hash, is_admin,
                                  email_verified_at, first_verified_at)
               VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END,
                       CASE WHEN $6 THEN now() END)
               ON CONFLICT (email) DO NOTHING
               RETURNING id, is_active
           )
           SELECT id AS "id!", true AS "created!", is_active AS "is_active!" FROM inserted
           UNION ALL
           SELECT id, false, is_active FROM users
           WHERE email = $2 AND NOT EXISTS (SELECT 1 FROM inserted)"#,
        new.id.as_uuid(),
        new.email,
        new.full_name,
        new.password_hash,
        new.is_admin,
        new.verified,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| SignupOutcome {
        id: UserId::from_uuid(r.id),
        created: r.created,
        is_active: r.is_active,
    }))
}

pub async fn by_id(db: impl PgExecutor<'_>, id: UserId) -> Result<Option<User>, sqlx::Error> {
    sqlx::query!(
        r#"SELECT id, email, full_name, is_admin, is_active, email_verified_at,
                  totp_enabled_at IS NOT NULL AS "totp_enabled!", created_at, updated_at
           FROM users WHERE id = $1"#,
        id.as_uuid()
    )
    .fetch_optional(db)
    .await
    .map(|row| row.map(|r| user_of_row!(r)))
}

/// The account of an access token, provided its session is still live and belongs to it: one
/// primary-key join per authenticated request, which makes logout, password reset and
/// deactivation take effect at once instead of when the access token expires.
///
/// The owner is compared here, not in the `WHERE` clause. With `s.user_id = $1` there, the
/// generic plan Postgres settles on for a prepared statement could pick the `user_id` index
/// (both look like one row) and filter every session of the account by id: 2.7 ms instead of
/// 0.02 ms for an account with 33,000 sessions, which any user can give themselves by logging
/// in repeatedly (measured on the benchmark database, docs/PERFORMANCE.md).
pub async fn by_live_session(
    db: impl PgExecutor<'_>,
    user_id: UserId,
    session_id: SessionId,
) -> Result<Option<User>, sqlx::Error> {
    let user = sqlx::query!(
        r#"SELECT u.id, u.email, u.full_name, u.is_admin, u.is_active, u.email_verified_at,
                  u.totp_enabled_at IS NOT NULL AS "totp_enabled!", u.created_at, u.updated_at
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.id = $1 AND s.revoked_at IS NULL AND u.is_active"#,
        session_id.as_uuid()
    )
    .fetch_optional(db)
    .await?
    .map(|r| user_of_row!(r));
    Ok(user.filter(|user| user.id == user_id))
}

/// An account and its credentials, by email or by id.
pub async fn credentials(
    db: impl PgExecutor<'_>,
    email: Option<&str>,
    id: Option<UserId>,
) -> Result<Option<UserCredentials>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id, email, full_name, is_admin, is_active, email_verified_at,
                  totp_enabled_at IS NOT NULL AS "totp_enabled!", created_at, updated_at,
                  password_hash, totp_secret, totp_last_step, credentials_epoch
           FROM users WHERE email = $1 OR id = $2"#,
        email,
        id.map(UserId::as_uuid)
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| UserCredentials {
        user: user_of_row!(r),
        password_hash: r.password_hash,
        totp_secret: r.totp_secret,
        totp_last_step: r.totp_last_step,
        credentials_epoch: r.credentials_epoch,
    }))
}

/// A page of accounts, oldest first (ids are UUIDv7, so id order is creation order), and how
/// many accounts there are in all: one query (a window count) unless the page is empty.
pub async fn page(
    db: impl PgExecutor<'_> + Copy,
    offset: i64,
    limit: i64,
) -> Result<(Vec<User>, i64), sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, email, full_name, is_admin, is_active, email_verified_at,
                  totp_enabled_at IS NOT NULL AS "totp_enabled!", created_at, updated_at,
                  count(*) OVER () AS "total!"
           FROM users ORDER BY id OFFSET $1 LIMIT $2"#,
        offset,
        limit
    )
    .fetch_all(db)
    .await?;
    let total = match rows.first() {
        Some(row) => row.total,
        // Past the end: the window saw no row, ask for the count alone.
        None => count(db).await?,
    };
    let users = rows.into_iter().map(|r| user_of_row!(r)).collect();
    Ok((users, total))
}

pub async fn count(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM users"#)
        .fetch_one(db)
        .await
}

/// Applies `changes`; `None` if there is no such account. A duplicate email is an error that
/// [`is_duplicate_email`] recognises. A changed email is unverified until its owner proves it.
pub async fn update(
    db: impl PgExecutor<'_>,
    id: UserId,
    changes: &UserChanges<'_>,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query!(
        r#"UPDATE users SET
               -- A new address is not verified yet, whoever set it (an admin included): its
               -- owner proves it again (/auth/verification), as at signup.
               email_verified_at = CASE WHEN $2 <> email THEN NULL ELSE email_verified_at END,
               email = COALESCE($2, email),
               full_name = COALESCE($3, full_name),
               password_hash = COALESCE($4, password_hash),
               -- A new password ends the logins in flight (`credentials_epoch`).
               credentials_epoch = credentials_epoch + CASE WHEN $4 IS NULL THEN 0 ELSE 1 END,
               is_admin = COALESCE($5, is_admin),
               is_active = COALESCE($6, is_active)
           WHERE id = $1
           RETURNING id, email, full_name, is_admin, is_active, email_verified_at,
                     totp_enabled_at IS NOT NULL AS "totp_enabled!", created_at, updated_at"#,
        id.as_uuid(),
        changes.email,
        changes.full_name,
        changes.password_hash,
        changes.is_admin,
        changes.is_active,
    )
    .fetch_optional(db)
    .await
    .map(|row| row.map(|r| user_of_row!(r)))
}

/// Replaces the hash of the same password made with old parameters, only if the stored hash
/// is still `old`: a reset or claim that committed since the login read it must not be undone
/// by writing the old password back.
pub async fn rehash_password(
    db: impl PgExecutor<'_>,
    id: UserId,
    old: &str,
    new: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
        id.as_uuid(),
        old,
        new
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes an account and, by cascade, everything it owns. False if there was none.
pub async fn delete(db: impl PgExecutor<'_>, id: UserId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!("DELETE FROM users WHERE id = $1", id.as_uuid())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// An account whose address was just proven, and whether this was the first proof ever.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub user: User,
    /// No address of this account had been proven before: its credentials were set by
    /// whoever signed up.
    pub first: bool,
    /// The credentials' version after the claim, for the session a login opens next.
    pub credentials_epoch: i32,
}

/// Marks the account's address as verified after a proof of control (a link or code sent to
/// it), in the caller's transaction.
///
/// On the account's *first* proof, unless `keep_credentials` (the prover also showed the
/// signup's password), every credential set before it is discarded: the password, TOTP, the
/// recovery codes, pending links and codes, and every session; and the credentials' version
/// moves on, so that a login checked against them but not finished yet opens no session.
/// Whoever signed up may not own the address, and must not keep a way into the account its
/// owner now takes over (pre-hijacked accounts).
///
/// Two statements: the row lock first, then the change. The change's snapshot is taken after
/// the lock, so it sees every session a concurrent login opened under its share lock before
/// (one statement would take its snapshot before waiting for the lock, and miss it).
pub async fn claim(
    tx: &mut sqlx::PgConnection,
    id: UserId,
    keep_credentials: bool,
) -> Result<Option<Claimed>, sqlx::Error> {
    let locked = sqlx::query_scalar!(
        "SELECT id FROM users WHERE id = $1 FOR UPDATE",
        id.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?;
    if locked.is_none() {
        return Ok(None);
    }
    let row = sqlx::query!(
        r#"WITH before AS (
               SELECT id, first_verified_at IS NULL AS first,
                      first_verified_at IS NULL AND NOT $2 AS discard
               FROM users WHERE id = $1
           ), codes AS (
               DELETE FROM recovery_codes r USING before b WHERE r.user_id = b.id AND b.discard
           ), links AS (
               DELETE FROM one_time_tokens t USING before b
               WHERE t.user_id = b.id AND b.discard AND t.used_at IS NULL
           ), otps AS (
               DELETE FROM email_otps o USING before b WHERE o.user_id = b.id AND b.discard
           ), ended AS (
               UPDATE sessions s SET revoked_at = now(), revoked_reason = 'address claimed'
               FROM before b
               WHERE s.user_id = b.id AND b.discard AND s.revoked_at IS NULL
           )
           UPDATE users u SET
               email_verified_at = COALESCE(u.email_verified_at, now()),
               first_verified_at = COALESCE(u.first_verified_at, now()),
               password_hash = CASE WHEN b.discard THEN NULL ELSE u.password_hash END,
               totp_secret = CASE WHEN b.discard THEN NULL ELSE u.totp_secret END,
               totp_enabled_at = CASE WHEN b.discard THEN NULL ELSE u.totp_enabled_at END,
               totp_last_step = CASE WHEN b.discard THEN NULL ELSE u.totp_last_step END,
               credentials_epoch = u.credentials_epoch + CASE WHEN b.discard THEN 1 ELSE 0 END
           FROM before b WHERE u.id = b.id
           RETURNING u.id, u.email, u.full_name, u.is_admin, u.is_active, u.email_verified_at,
                     u.totp_enabled_at IS NOT NULL AS "totp_enabled!", u.created_at,
                     u.updated_at, b.first AS "first!", u.credentials_epoch"#,
        id.as_uuid(),
        keep_credentials
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|r| Claimed {
        first: r.first,
        credentials_epoch: r.credentials_epoch,
        user: user_of_row!(r),
    }))
}

/// Deletes accounts whose address nobody proved, created before `created_before`, that
/// nobody uses; returns how many. Their signup may have been anyone's, and a held address
/// blocks its owner's own signup (they get "already registered" and must reset).
///
/// "Nobody uses": not an admin, and no session on record (live, or ended less than a week
/// ago: the credential purge keeps them that long). With the default
/// `LABS_REQUIRE_VERIFIED_EMAIL=true` an unverified account cannot log in at all, so this
/// spares nothing; with it off, an account in use is kept. The cascade would delete what the
/// account owns (billing rows included), which is why the rule is this narrow.
pub async fn purge_unclaimed(
    db: impl PgExecutor<'_>,
    created_before: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM users u
         WHERE u.first_verified_at IS NULL AND u.created_at < $1 AND NOT u.is_admin
           AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id)",
        created_before
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Stores a new TOTP secret, not yet enabled (enrolment started, or restarted).
pub async fn set_pending_totp(
    db: impl PgExecutor<'_>,
    id: UserId,
    sealed: &[u8],
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE users SET totp_secret = $2, totp_last_step = NULL WHERE id = $1 AND totp_enabled_at IS NULL",
        id.as_uuid(),
        sealed
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Turns TOTP on, recording the step of the code that proved the enrolment.
pub async fn enable_totp(
    db: impl PgExecutor<'_>,
    id: UserId,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE users SET totp_enabled_at = now(), totp_last_step = $2
         WHERE id = $1 AND totp_secret IS NOT NULL AND totp_enabled_at IS NULL",
        id.as_uuid(),
        step
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Turns TOTP off and forgets the secret.
pub async fn disable_totp(db: impl PgExecutor<'_>, id: UserId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL WHERE id = $1",
        id.as_uuid()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records that a TOTP code of `step` was used, only if no code of this step or a later one
/// was: the compare-and-set that makes each code single-use even under concurrent requests.
pub async fn claim_totp_step(
    db: impl PgExecutor<'_>,
    id: UserId,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE users SET totp_last_step = $2
         WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
        id.as_uuid(),
        step
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Re-seals a TOTP secret under the current key (after a key rotation).
pub async fn reseal_totp(
    db: impl PgExecutor<'_>,
    id: UserId,
    sealed: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE users SET totp_secret = $2 WHERE id = $1",
        id.as_uuid(),
        sealed
    )
    .execute(db)
    .await?;
    Ok(())
}
