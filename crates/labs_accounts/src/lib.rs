//! The accounts feature: signup and email verification, password and emailed-code logins,
//! sessions (refresh-token rotation, logout), password reset, TOTP, and the admin users API.
//!
//! What it exports to the roles: [`router`] (its routes, with their OpenAPI paths, for any
//! state that offers [`Accounts`] by `FromRef`), the extractors other features use to know
//! their caller ([`CurrentUser`], [`AdminUser`]), and its settings ([`AuthConfig`]).
//!
//! Not here yet: its SQL (`labs_db::users`, `labs_db::credentials`) and its job handlers
//! (the email and purge jobs in `labs_worker`), which move here in a later step of the
//! feature-crate issue. The credential crypto stays in the platform crate `labs_auth`.

mod account;
pub mod auth;
mod mail;
mod state;
pub mod users;

use axum::extract::FromRef;
use utoipa_axum::router::OpenApiRouter;

pub use account::UserOut;
pub use auth::{AdminUser, CurrentUser};
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
