//! The __features__ feature's jobs, payload and handler together:
//!
//! - [`__Feature__Created`]: written through the outbox in the transaction that creates a row
//!   (`labs_jobs::outbox::enqueue`), so the job exists exactly when the row does; its handler
//!   marks the row confirmed and emails the owner, in one transaction (the email goes through
//!   the outbox too), once however often it runs;
//! - [`PurgeDeleted__Features__`]: periodic (`schedule()`), removes rows deleted [`KEEP`] ago.

use labs_jobs::jobs::{Message, SendEmail};
use labs_jobs::{Context, Handler, Job, JobError};
use serde::{Deserialize, Serialize};

use crate::__Feature__Id;

/// How long a deleted row is kept before the purge removes it (support, undo).
pub const KEEP: time::Duration = time::Duration::days(30);

/// A __feature__ was created: tell its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct __Feature__Created {
    pub id: __Feature__Id,
}

impl Job for __Feature__Created {
    const NAME: &'static str = "__feature___created";
}

impl<C: Context> Handler<C> for __Feature__Created {
    /// Idempotent: `confirm` answers only the first time, so a second run sends nothing.
    async fn handle(self, ctx: &C) -> Result<(), JobError> {
        let mut tx = ctx.db().begin().await?;
        if let Some(confirmed) = crate::db::confirm(&mut tx, self.id).await? {
            let email = SendEmail {
                to: confirmed.email,
                email: created_message(&confirmed.title),
            };
            labs_jobs::outbox::enqueue(&mut tx, email).await?;
            tracing::info!(__feature__ = %self.id, "__feature__ confirmed");
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The email its owner receives for a new __feature__ (the worker's one layout renders it).
pub fn created_message(title: &str) -> Message {
    Message {
        template: "__feature___created".to_owned(),
        subject: "Your __feature__ was recorded".to_owned(),
        paragraphs: vec![format!("We recorded your __feature__ “{title}”.")],
        code: None,
        action: None,
        bypasses_address_cap: false,
    }
}

/// Removes the rows deleted more than [`KEEP`] ago (a periodic job, hourly).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeDeleted__Features__ {}

impl Job for PurgeDeleted__Features__ {
    const NAME: &'static str = "purge_deleted___features__";
    const MAX_ATTEMPTS: u32 = 3;
}

impl<C: Context> Handler<C> for PurgeDeleted__Features__ {
    /// Idempotent: deleting what is already gone deletes nothing.
    async fn handle(self, ctx: &C) -> Result<(), JobError> {
        let before = time::OffsetDateTime::now_utc() - KEEP;
        let purged = crate::db::purge_deleted(ctx.db(), before).await?;
        tracing::info!(purged, "deleted __features__ purged");
        Ok(())
    }
}
