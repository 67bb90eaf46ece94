//! The public API: its routes and its OpenAPI document.
//!
//! Each resource module exports one `router()`; [`router`] below is the table of contents.
//! Handlers stay short (extract, act, respond) and are described for OpenAPI where they are
//! written: the function name is the operationId, the first doc line the summary.
//!
//! Not here: middleware, errors and health (the http crate), SQL (the db crate), credential
//! crypto (the auth crate).

mod admin;
pub mod auth;
// template:begin stripe
pub mod billing;
// template:end stripe
mod docs;
pub mod ext;
mod mail;
pub mod openapi;
pub mod root;
mod state;
pub mod users;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use state::{ApiParts, ApiState, Auth, AuthConfig};

/// Every route of the public API, with its OpenAPI description.
pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::base())
        // GET /: what this service is and where it is mounted.
        .routes(routes!(root::get_root))
        // /ext: the original template's echo and health check, kept compatible.
        .nest("/ext", ext::router())
        // /auth: accounts, logins, sessions, second factors.
        .nest("/auth", auth::router())
        // /.well-known/jwks.json: our token-verification keys.
        .merge(auth::well_known())
        // /users: the admin users API.
        .nest("/users", users::router())
        // template:begin stripe
        // /billing: Stripe checkout, portal, subscription state.
        .nest("/billing", billing::router())
        // template:end stripe
        // /admin: operations views.
        .nest("/admin", admin::router())
        // /health: liveness and readiness probes.
        .merge(labs_http::health::router())
}

/// The OpenAPI document as published under `root_path`.
pub fn openapi(root_path: &str) -> utoipa::openapi::OpenApi {
    openapi::finish(router().into_openapi(), root_path)
}

/// The API's routes plus `/openapi.json` and (unless `LABS_DOCS=false`) the `/docs` UI, with CSRF protection for
/// cookie-carrying browsers; ready for state and the shared layers.
pub fn app(root_path: &str, state: &ApiState) -> Router<ApiState> {
    let (routes, document) = router().split_for_parts();
    let document = openapi::finish(document, root_path);
    routes
        .merge(docs::router(&document, root_path, state.app.docs))
        .layer(axum::middleware::from_fn_with_state(
            state.auth.trusted_origins.clone(),
            labs_http::csrf::protect,
        ))
}
