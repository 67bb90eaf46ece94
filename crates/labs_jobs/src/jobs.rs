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
    /// What the message says.
    pub email: Message,
}

/// What an email says, in the one layout every message shares (the worker renders it as text
/// and HTML, escaping every value). A feature writes its own messages (labs_accounts'
/// `emails`), so that its wording lives with it; the layout, the sending and the cap on what
/// one address receives are the platform's. The rejected alternative, one enum of every
/// feature's messages here with their wording in the worker, made each new email touch three
/// crates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The message's name, for logs and metrics (`verify_email`).
    pub template: String,
    pub subject: String,
    /// The body, a paragraph each.
    pub paragraphs: Vec<String>,
    /// A code to type, shown large.
    #[serde(default)]
    pub code: Option<String>,
    /// A link the reader is asked to follow, as a button.
    #[serde(default)]
    pub action: Option<Action>,
    /// Whether it goes out even when the address's cap is spent: the operator's test message,
    /// and the notices of a change to the account's security. Strangers cannot cause those
    /// (they follow the owner's own authenticated actions, or a reset from the owner's
    /// mailbox), and a thief who first floods the address with reset requests must not be
    /// able to keep the owner from hearing that the password changed.
    #[serde(default)]
    pub bypasses_address_cap: bool,
}

/// A link in a message, with the label of its button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub label: String,
    pub url: String,
}

impl Message {
    /// Proves that outgoing mail works end to end (`labs email test`); `requested_by` is shown
    /// in it, e.g. the operator's name.
    pub fn test(requested_by: &str) -> Self {
        Self {
            template: "test".to_owned(),
            subject: "labs: outgoing mail works".to_owned(),
            paragraphs: vec![format!(
                "This message was sent by labs because {requested_by} asked for a test of outgoing mail. \
                 If you can read it, the SMTP settings of this deployment work."
            )],
            code: None,
            action: None,
            bypasses_address_cap: true,
        }
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
