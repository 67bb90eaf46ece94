//! Emails the API sends: written to the job outbox in the transaction of the change they
//! announce, so that a message goes out if and only if its change committed, even when Redis
//! is down at that moment (the scheduler relays the outbox every second).

use labs_auth::OpaqueToken;
use labs_http::ApiError;
use labs_jobs::jobs::SendEmail;
use sqlx::PgConnection;

use crate::Accounts;
use crate::emails::AccountEmail;

/// Queues `email` to `to` with the caller's transaction.
pub(crate) async fn queue(
    tx: &mut PgConnection,
    to: &str,
    email: AccountEmail,
) -> Result<(), ApiError> {
    let job = SendEmail {
        to: to.to_owned(),
        email: email.message(),
    };
    // With the request's trace context: the worker sends it in the same trace.
    labs_jobs::outbox::enqueue(tx, job).await?;
    Ok(())
}

/// Queues `email` to `to` if `send`; otherwise runs the same statement, writing nothing. The
/// answers about an address call this whether or not it has an account, so that both cases do
/// the same work (docs/SECURITY.md, "Account existence").
pub(crate) async fn queue_if(
    tx: &mut PgConnection,
    send: bool,
    to: &str,
    email: AccountEmail,
) -> Result<(), ApiError> {
    let job = SendEmail {
        to: to.to_owned(),
        email: email.message(),
    };
    labs_jobs::outbox::enqueue_if(tx, send, job).await?;
    Ok(())
}

/// A link to the web app's `page` carrying `token` (base64url: safe in a query string as is).
/// `page` is one of [`crate::links`]; unless `LABS_APP_URL` names another web app, the
/// service serves it itself ([`crate::pages`]).
pub(crate) fn link(state: &Accounts, page: &str, token: &OpaqueToken) -> String {
    format!("{}/{page}?token={}", state.auth.app_url, token.as_str())
}
