//! `TestApp`: the real application in process, for the integration tests of any crate.
//!
//! ```text
//! #[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
//! async fn signing_up_sends_a_link(db: PgPool) {
//!     let app = TestApp::builder(db).smtp().spawn();
//!     let answer = app.post("/api/auth/signup", json!({...})).await;
//!     let message = app.next_email().await;        // drains the outbox and the worker
//!     ...
//! }                                                // Drop: no job or outbox row left behind
//! ```
//!
//! What it holds, and why each part is the production one:
//! - the router comes from `labs::app::{api_state, application}`, the functions `labs serve`
//!   builds its own with (api and hooks roles, the middleware, the root path);
//! - a per-test database (`#[sqlx::test]` makes it), the shared Redis (or a throwaway one),
//!   with rate limits and the job queue under namespaces of the test's own;
//! - the real worker (`labs_worker::run_worker`, every job type of the service) on the same
//!   queue; [`TestApp::drain`] relays the outbox and waits until the queue is idle;
//! - its `Drop` fails the test when a job or an outbox row was left unprocessed, or a job
//!   died: work a test caused and never looked at is a test that asserted too little.
//!
//! Only ever a dev-dependency. Rejected: keeping the harness as a `#[path]` module of the
//! labs crate's tests, which feature crates' own tests could not use.

#![allow(
    clippy::disallowed_methods,
    reason = "the test harness reads where the test services are"
)]

mod accounts;
mod app;
mod requests;
mod settings;
mod text;

pub use accounts::{insert_user, insert_user_with_password};
pub use app::{TestApp, TestAppBuilder};
pub use requests::call;
pub use settings::{
    TRUSTED_ORIGIN, hooks_role, http_config, job_queue, mailer, redis_config, state_with_redis,
};
pub use text::{code_in, decode_quoted_printable, emailed_link, link_token, metric};
