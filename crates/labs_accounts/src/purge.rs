//! The `purge_expired_credentials` job: deletes tokens, codes and sessions that can no longer
//! be used, so that the credential tables stay the size of what is live, and accounts whose
//! address nobody verified in `LABS_UNVERIFIED_ACCOUNT_TTL` (their signup may have been
//! anyone's: an address held by a stranger's signup is freed for its owner).

use std::time::Duration;

use labs_db::Db;
use labs_jobs::{Handler, Job, JobError};
use serde::{Deserialize, Serialize};

/// Deletes expired tokens, codes and dead sessions, and unclaimed accounts (a periodic job,
/// hourly).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeExpiredCredentials {}

impl Job for PurgeExpiredCredentials {
    const NAME: &'static str = "purge_expired_credentials";
    const MAX_ATTEMPTS: u32 = 3;
}

/// What the accounts' jobs need of the worker's context. The worker's context implements it,
/// so this crate never names that type.
pub trait AccountsContext: Send + Sync + 'static {
    fn db(&self) -> &Db;
    /// What the purge deletes.
    fn purge(&self) -> PurgeConfig;
}

/// How long dead rows are kept after they expire or are revoked, for investigations (a
/// refresh-token reuse alert, a support question).
const KEEP: time::Duration = time::Duration::days(7);

/// The purge's settings (read by the worker role).
#[derive(Debug, Clone, Copy, clap::Args)]
#[command(next_help_heading = "Accounts")]
pub struct PurgeConfig {
    /// How long an account may wait for its address to be verified before it is deleted (if
    /// it is no admin's and has no session on record); `0s`: never.
    #[arg(long, env = "LABS_UNVERIFIED_ACCOUNT_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
    pub unverified_account_ttl: Duration,
}

impl Default for PurgeConfig {
    fn default() -> Self {
        Self {
            unverified_account_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl<C: AccountsContext> Handler<C> for PurgeExpiredCredentials {
    /// Idempotent: deleting what is already gone deletes nothing.
    async fn handle(self, ctx: &C) -> Result<(), JobError> {
        let deleted = crate::db::credentials::purge_expired(ctx.db(), KEEP).await?;
        let ttl = ctx.purge().unverified_account_ttl;
        let accounts = if ttl.is_zero() {
            0
        } else {
            let ttl = time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX);
            let cutoff = time::OffsetDateTime::now_utc()
                .checked_sub(ttl)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            crate::db::users::purge_unclaimed(ctx.db(), cutoff).await?
        };
        tracing::info!(
            deleted,
            unverified_accounts = accounts,
            "expired credentials purged"
        );
        Ok(())
    }
}
