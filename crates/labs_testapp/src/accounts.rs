//! Accounts made straight in the database, for tests that start from a signed-up user.

use labs_domain::UserId;
use sqlx::PgExecutor;

/// A verified account with no password; its id.
pub async fn insert_user(db: impl PgExecutor<'_>, email: &str) -> UserId {
    insert(db, email, None, false, true).await
}

/// An account with `password`; its id.
pub async fn insert_user_with_password(
    db: impl PgExecutor<'_>,
    email: &str,
    password: &str,
    admin: bool,
    verified: bool,
) -> UserId {
    let hash = labs_auth::PasswordHasher::default_cost()
        .expect("the default cost is valid")
        .hash(password)
        .expect("a password hashes");
    insert(db, email, Some(&hash), admin, verified).await
}

async fn insert(
    db: impl PgExecutor<'_>,
    email: &str,
    password_hash: Option<&str>,
    is_admin: bool,
    verified: bool,
) -> UserId {
    let new = labs_accounts::db::users::NewUser {
        id: UserId::generate(),
        email,
        full_name: None,
        password_hash,
        is_admin,
        verified,
    };
    labs_accounts::db::users::insert(db, &new)
        .await
        .expect("the insert runs")
        .expect("a new email address")
        .id
}
