//! `/openapi.json` and the interactive docs UI at `/docs`, both working under the root path.
//!
//! The Swagger UI files are compiled into the binary (utoipa-swagger-ui's `vendored` feature),
//! so nothing is downloaded at build time or at run time. We serve them ourselves rather than
//! through utoipa-swagger-ui's axum router because that one redirects `/docs` to the absolute
//! `/docs/`, which drops the prefix behind a proxy that strips it; our redirect is relative.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use labs_http::ApiError;
use utoipa_swagger_ui::Config;

pub(crate) fn router(
    document: &utoipa::openapi::OpenApi,
    root_path: &str,
) -> Router<crate::ApiState> {
    // Serialising a document we just built cannot fail; an empty body would show in the
    // snapshot test at once.
    let spec = Bytes::from(document.to_json().unwrap_or_default());
    // The UI runs in the browser, so it must fetch the spec through the proxy's prefix.
    let config = Arc::new(
        Config::new([format!("{root_path}/openapi.json")])
            .display_operation_id(true)
            .persist_authorization(true),
    );
    let index_config = config.clone();
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], spec) }
            }),
        )
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
