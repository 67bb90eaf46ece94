//! The __features__ feature's SQL: small named functions taking an executor and typed ids.
//! Every query is checked at compile time against the migrated schema (`.sqlx/` offline).
//! An owner reaches only their own rows, and never a deleted one.

use labs_domain::UserId;
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::__Feature__Id;
use crate::values::{Details, Title};

/// A row, as the API shows it.
#[derive(Debug, Clone)]
pub struct __Feature__Row {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub details: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub confirmed_at: Option<OffsetDateTime>,
}

/// Inserts a new row for `owner`, in the caller's transaction (its job goes in the same one).
pub async fn insert(
    tx: &mut PgConnection,
    id: __Feature__Id,
    owner: UserId,
    title: &Title,
    details: &Details,
) -> Result<__Feature__Row, sqlx::Error> {
    sqlx::query_as!(
        __Feature__Row,
        r#"INSERT INTO __features__ (id, user_id, title, details)
           VALUES ($1, $2, $3, $4)
           RETURNING id, user_id, title, details, created_at, updated_at, confirmed_at"#,
        id.as_uuid(),
        owner.as_uuid(),
        title.as_str(),
        details.as_str(),
    )
    .fetch_one(tx)
    .await
}

/// A page of `owner`'s rows, newest first, and how many they have in all.
pub async fn page(
    db: &labs_db::Db,
    owner: UserId,
    offset: i64,
    limit: i64,
) -> Result<(Vec<__Feature__Row>, i64), sqlx::Error> {
    let rows = sqlx::query_as!(
        __Feature__Row,
        r#"SELECT id, user_id, title, details, created_at, updated_at, confirmed_at
           FROM __features__
           WHERE user_id = $1 AND deleted_at IS NULL
           ORDER BY created_at DESC, id DESC
           OFFSET $2 LIMIT $3"#,
        owner.as_uuid(),
        offset,
        limit,
    )
    .fetch_all(db)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT COUNT(*) AS "count!" FROM __features__
           WHERE user_id = $1 AND deleted_at IS NULL"#,
        owner.as_uuid(),
    )
    .fetch_one(db)
    .await?;
    Ok((rows, total))
}

/// `owner`'s row `id`, if it exists and is not deleted.
pub async fn by_id(
    db: impl PgExecutor<'_>,
    owner: UserId,
    id: __Feature__Id,
) -> Result<Option<__Feature__Row>, sqlx::Error> {
    sqlx::query_as!(
        __Feature__Row,
        r#"SELECT id, user_id, title, details, created_at, updated_at, confirmed_at
           FROM __features__
           WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"#,
        id.as_uuid(),
        owner.as_uuid(),
    )
    .fetch_optional(db)
    .await
}

/// Sets the fields given (`None`: unchanged) on `owner`'s row `id`; the row after, or `None`
/// if there is no such row.
pub async fn update(
    db: impl PgExecutor<'_>,
    owner: UserId,
    id: __Feature__Id,
    title: Option<&Title>,
    details: Option<&Details>,
) -> Result<Option<__Feature__Row>, sqlx::Error> {
    sqlx::query_as!(
        __Feature__Row,
        r#"UPDATE __features__
           SET title = COALESCE($3, title), details = COALESCE($4, details), updated_at = now()
           WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL
           RETURNING id, user_id, title, details, created_at, updated_at, confirmed_at"#,
        id.as_uuid(),
        owner.as_uuid(),
        title.map(Title::as_str),
        details.map(Details::as_str),
    )
    .fetch_optional(db)
    .await
}

/// Marks `owner`'s row `id` deleted (the purge removes it later); whether there was one.
pub async fn delete(
    db: impl PgExecutor<'_>,
    owner: UserId,
    id: __Feature__Id,
) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query!(
        "UPDATE __features__ SET deleted_at = now()
         WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL",
        id.as_uuid(),
        owner.as_uuid(),
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected() == 1)
}

/// What the confirmation job tells the owner about.
#[derive(Debug, Clone)]
pub struct Confirmed {
    pub email: String,
    pub title: String,
}

/// Marks row `id` confirmed, once: the owner's address and the title the first time, `None`
/// after (or when the row was deleted first). The job's idempotence rests on this.
pub async fn confirm(
    tx: &mut PgConnection,
    id: __Feature__Id,
) -> Result<Option<Confirmed>, sqlx::Error> {
    sqlx::query_as!(
        Confirmed,
        r#"UPDATE __features__ AS f SET confirmed_at = now()
           FROM users AS u
           WHERE f.id = $1 AND f.user_id = u.id
             AND f.confirmed_at IS NULL AND f.deleted_at IS NULL
           RETURNING u.email, f.title"#,
        id.as_uuid(),
    )
    .fetch_optional(tx)
    .await
}

/// Removes the rows deleted before `before`; how many.
pub async fn purge_deleted(
    db: impl PgExecutor<'_>,
    before: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let purged = sqlx::query!(
        "DELETE FROM __features__ WHERE deleted_at < $1",
        before
    )
    .execute(db)
    .await?;
    Ok(purged.rows_affected())
}
