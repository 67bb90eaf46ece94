//! Which migrations a database has, compared with the ones this binary carries.

use sqlx::PgExecutor;

use crate::pg::MIGRATOR;

/// The newest migration version embedded in this binary.
pub fn expected_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest migration applied successfully, or 0 when the database was never migrated.
///
/// Readiness compares it with [`expected_version`]: a process must not take traffic before
/// the migrations it was built against have run. A newer database is fine (expand/contract:
/// the previous release keeps working while the next one's migrations are applied).
pub async fn applied_version(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    let applied = sqlx::query_scalar!(
        r#"SELECT MAX(version) AS "version" FROM _sqlx_migrations WHERE success"#
    )
    .fetch_one(db)
    .await;
    match applied {
        Ok(version) => Ok(version.unwrap_or(0)),
        // 42P01 undefined_table: never migrated.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Ok(0),
        Err(e) => Err(e),
    }
}
