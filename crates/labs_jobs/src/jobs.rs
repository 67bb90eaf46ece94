//! The job payloads shared by several crates. Their handlers live in the worker crate; the
//! payloads live here so that any crate can enqueue them without depending on the worker. A
//! feature's own jobs live in its crate, payload and handler together (as labs_accounts'
//! `PurgeExpiredCredentials`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::Job;

/// Sends one email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmail {
    /// The recipient's address.
    pub to: String,
    /// Which message, with its few parameters.
    pub email: Email,
}

/// The emails the application sends: a template name and the parameters it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "template", rename_all = "snake_case")]
pub enum Email {
    /// Proves that outgoing mail works end to end (`labs email test`).
    Test {
        /// Who asked for it (shown in the message), e.g. the operator's name.
        requested_by: String,
    },
    /// The link that proves an address belongs to its new account.
    VerifyEmail { link: String },
    /// Someone signed up with an address that already has an account: tell its owner
    /// instead of telling the visitor (who may not be the owner).
    AlreadyRegistered { reset_link: String },
    /// A one-time login code.
    LoginCode { code: String, valid_minutes: u32 },
    /// The link to choose a new password.
    PasswordReset { link: String },
    /// The password was changed (by a reset, or by its owner): the other sessions were ended.
    PasswordChanged {},
    /// TOTP was turned off: the account is back to one factor.
    TotpDisabled {},
    /// New recovery codes were made: the old ones stopped working.
    RecoveryCodesReplaced {},
}

impl Email {
    /// Whether this message goes out even when the address's cap is spent: the operator's test
    /// message, and the notices of a change to the account's security. Strangers cannot cause
    /// those (they follow the owner's own authenticated actions, or a reset from the owner's
    /// mailbox), and a thief who first floods the address with reset requests must not be
    /// able to keep the owner from hearing that the password changed.
    pub fn bypasses_address_cap(&self) -> bool {
        matches!(
            self,
            Self::Test { .. }
                | Self::PasswordChanged {}
                | Self::TotpDisabled {}
                | Self::RecoveryCodesReplaced {}
        )
    }
}

// A job payload holds what its email needs, which for these messages is a secret (a link
// with a token, a code). Such a payload lives in the outbox row until relayed (seconds),
// then in Redis until sent; both expire with the secret they carry. See docs/SECURITY.md.

impl Job for SendEmail {
    const NAME: &'static str = "send_email";
    // Its own queue: a slow mail server must not hold up other jobs.
    const QUEUE: &'static str = "email";
    // About 17 hours of retries (2 s doubling to the 1 h cap): outlives a mail-provider outage.
    const MAX_ATTEMPTS: u32 = 20;
    const BASE_BACKOFF: Duration = Duration::from_secs(2);
}

/// Moves jobs from the Postgres outbox to the queue (a periodic job, every second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayOutbox {}

impl Job for RelayOutbox {
    const NAME: &'static str = "relay_outbox";
    // The next tick is a second away: retrying an old tick would only pile up.
    const MAX_ATTEMPTS: u32 = 1;
}
