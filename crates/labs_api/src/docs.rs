//! `/openapi.json` and the interactive docs UI at `/docs`, both working under the root path.
//!
//! The Swagger UI files are compiled into the binary (utoipa-swagger-ui's `vendored` feature),
//! so nothing is downloaded at build time or at run time. We serve them ourselves rather than
//! through utoipa-swagger-ui's axum router because that one redirects `/docs` to the absolute
//! `/docs/`, which drops the prefix behind a proxy that strips it; our redirect is relative.
//!
//! The docs pages carry their own Content-Security-Policy ([`DOCS_CSP`]), stricter than a
//! browser's default yet enough for Swagger UI: its scripts and styles come from these same
//! files (the initializer is a file of its own, `swagger-initializer.js`, not an inline
//! script, so no `'unsafe-inline'` and no hash to keep in step with the config), its logo's
//! one `<style>` element is allowed by its hash, its icons are `data:` URLs, and it fetches
//! only the spec and the API it tries out, on this origin. The online validator badge (an
//! image from swagger.io) is switched off. `LABS_DOCS=false` drops the pages; `/openapi.json`
//! stays, for API clients and code generators.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use labs_http::ApiError;
use utoipa_swagger_ui::Config;

/// The CSP of the docs pages. Checked against a real browser (headless Chromium logs no
/// violation and renders the operations); see docs/SECURITY.md.
///
/// The one hash is of the `<style>` element inside Swagger UI's logo
/// (`swagger-ui-standalone-preset.js`): a hash allows exactly that text, where `'unsafe-inline'`
/// would allow any injected style. `crates/labs/tests/app/docs.rs` recomputes it from the served file, so an
/// upgrade of Swagger UI that changes it fails there, not silently in browsers.
pub(crate) const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

pub(crate) fn router(
    document: &utoipa::openapi::OpenApi,
    root_path: &str,
    docs: bool,
) -> Router<crate::ApiState> {
    // Serialising a document we just built cannot fail; an empty body would show in the
    // snapshot test at once.
    let spec = Bytes::from(document.to_json().unwrap_or_default());
    // The UI runs in the browser, so it must fetch the spec through the proxy's prefix.
    let spec_route = Router::new().route(
        "/openapi.json",
        get(move || {
            let spec = spec.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], spec) }
        }),
    );
    if !docs {
        return spec_route;
    }
    let config = Arc::new(
        Config::new([format!("{root_path}/openapi.json")])
            .display_operation_id(true)
            .persist_authorization(true)
            // No badge fetched from swagger.io: the CSP allows no other origin, and the
            // validator would learn our spec's URL.
            .validator_url("none"),
    );
    let index_config = config.clone();
    let pages = Router::new()
        // Relative, so `/api/docs` leads to `/api/docs/` and `/docs` to `/docs/`.
        .route("/docs", get(|| async { Redirect::permanent("docs/") }))
        .route(
            "/docs/",
            get(move || {
                let config = index_config.clone();
                async move { swagger_file("", config) }
            }),
        )
        .route(
            "/docs/{*file}",
            get(move |Path(file): Path<String>| {
                let config = config.clone();
                async move { swagger_file(&file, config) }
            }),
        )
        .layer(axum::middleware::map_response(docs_csp));
    spec_route.merge(pages)
}

/// Gives the docs pages their CSP; the shared security-headers layer keeps it (it adds only
/// what a response lacks).
async fn docs_csp(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    );
    response
}

fn swagger_file(file: &str, config: Arc<Config<'static>>) -> Response {
    match utoipa_swagger_ui::serve(file, config) {
        Ok(Some(found)) => {
            let content_type = HeaderValue::from_str(&found.content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            (
                [(header::CONTENT_TYPE, content_type)],
                found.bytes.into_owned(),
            )
                .into_response()
        }
        Ok(None) => ApiError::NotFound.into_response(),
        Err(error) => ApiError::internal(error.to_string()).into_response(),
    }
}
