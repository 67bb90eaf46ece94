//! The accounts feature: signup and email verification, password and emailed-code logins,
//! sessions (refresh-token rotation, logout), password reset, TOTP, and the admin users API.
//!
//! What it exports to the roles: [`router`] (its routes, with their OpenAPI paths, for any
//! state that offers [`Accounts`] by `FromRef`), [`pages::router`] (the HTML pages its emailed
//! links open, outside the OpenAPI document), [`jobs`] (its job types, for the worker's
//! list), the extractors other features use to know their caller ([`CurrentUser`],
//! [`AdminUser`]), and its settings ([`AuthConfig`], [`PurgeConfig`]). Its SQL is [`db`].
//!
//! Not here yet: its email messages (the `SendEmail` payload's `Email` in `labs_jobs`, their
//! templates in `labs_worker`). The credential crypto stays in the platform crate `labs_auth`.

mod account;
pub mod auth;
pub mod db;
pub mod emails;
pub mod links;
mod mail;
pub mod pages;
pub mod purge;
mod state;
pub mod users;

use axum::extract::FromRef;
use labs_jobs::Registry;
use utoipa_axum::router::OpenApiRouter;

pub use account::UserOut;
pub use auth::{AdminUser, CurrentUser};
pub use purge::{AccountsContext, PurgeConfig, PurgeExpiredCredentials};
pub use state::{Accounts, AccountsParts, Auth, AuthConfig, CookieNames, HashPool, VerifiedTokens};

/// The accounts routes: `/auth/*`, `/.well-known/jwks.json` and `/users/*`.
pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Accounts: FromRef<S>,
{
    OpenApiRouter::new()
        // /auth: accounts, logins, sessions, second factors.
        .nest("/auth", auth::router())
        // /.well-known/jwks.json: our token-verification keys.
        .merge(auth::well_known())
        // /users: the admin users API.
        .nest("/users", users::router())
}

/// The accounts' job types, for the worker's list (see `labs_worker::jobs`).
pub fn jobs<C: AccountsContext, R: Registry<C>>(registry: R) -> R {
    registry
        // Expired tokens, codes and sessions, and unclaimed accounts, deleted hourly.
        .job::<PurgeExpiredCredentials>()
}

/// The accounts' periodic jobs, for the scheduler's list (see `labs_worker::scheduler`).
pub fn schedule() -> Vec<labs_jobs::Periodic> {
    vec![
        // Delete credentials that can no longer be used (at minute 17, off the hour's peak).
        labs_jobs::Periodic::every::<PurgeExpiredCredentials>("0 17 * * * *"),
    ]
}
