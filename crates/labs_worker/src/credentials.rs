//! The `purge_expired_credentials` job: deletes tokens, codes and sessions that can no longer
//! be used, so that the credential tables stay the size of what is live.

use labs_jobs::jobs::PurgeExpiredCredentials;
use labs_jobs::{Handler, JobError};

use crate::WorkerContext;

/// How long dead rows are kept after they expire or are revoked, for investigations (a
/// refresh-token reuse alert, a support question).
const KEEP: time::Duration = time::Duration::days(7);

impl Handler<WorkerContext> for PurgeExpiredCredentials {
    /// Idempotent: deleting what is already gone deletes nothing.
    async fn handle(self, ctx: &WorkerContext) -> Result<(), JobError> {
        let deleted = labs_db::credentials::purge_expired(&ctx.db, KEEP).await?;
        tracing::info!(deleted, "expired credentials purged");
        Ok(())
    }
}
