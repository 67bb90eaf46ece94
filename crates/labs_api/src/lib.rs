//! The public API: the route table of the features, the OpenAPI document, and the meta
//! endpoints (root, ext, admin, docs).
//!
//! Each feature crate exports one `router()`; [`router`] below is the table of contents
//! (the features beyond accounts come from their one list, labs_features).
//! Handlers stay short (extract, act, respond) and are described for OpenAPI where they are
//! written: the function name is the operationId, the first doc line the summary.
//!
//! Not here: the features (labs_accounts, ...), middleware, errors and health (labs_http).

mod admin;
mod docs;
pub mod ext;
pub mod openapi;
pub mod root;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use labs_features::{ApiParts, ApiState};

/// Every route of the public API, with its OpenAPI description.
pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::base())
        // GET /: what this service is and where it is mounted.
        .routes(routes!(root::get_root))
        // /ext: the original template's echo and health check, kept compatible.
        .nest("/ext", ext::router())
        // /auth, /.well-known/jwks.json, /users: accounts, logins, sessions, second factors,
        // and the admin users API.
        .merge(labs_accounts::router())
        // Every feature of the service's list (labs_features): e.g. /billing.
        .merge(labs_features::router())
        // /admin: operations views.
        .nest("/admin", admin::router())
        // /health: liveness and readiness probes.
        .merge(labs_http::health::router())
}

/// The OpenAPI document as published under `root_path`.
pub fn openapi(root_path: &str) -> utoipa::openapi::OpenApi {
    openapi::finish(router().into_openapi(), root_path)
}

/// The API's routes plus `/openapi.json`, (unless `LABS_DOCS=false`) the `/docs` UI and the
/// accounts' pages, with CSRF protection for cookie-carrying browsers; ready for state and the
/// shared layers.
pub fn app(root_path: &str, state: &ApiState) -> Router<ApiState> {
    let (routes, document) = router().split_for_parts();
    let document = openapi::finish(document, root_path);
    routes
        .merge(docs::router(&document, root_path, state.app.docs))
        .layer(labs_http::csrf::CsrfLayer::new(
            state.accounts.auth.trusted_origins.clone(),
        ))
        // /verify-email, /reset-password: the HTML pages the emailed links open. Not in the
        // OpenAPI document (pages for people, not an API). Merged after the CSRF layer above:
        // the pages apply the same origin check themselves, so that a refusal is a page.
        .merge(labs_accounts::pages::router(&state.accounts))
}
