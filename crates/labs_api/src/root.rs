//! `GET /`: the welcome document of the original template.

use axum::extract::State;
use labs_http::AppState;
use labs_http::extract::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What this service is and where it is mounted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootResponse {
    /// A greeting naming the service.
    pub message: String,
    /// The path prefix the API is published under (`""` when none).
    pub root_path: String,
}

/// Describe the service.
///
/// Returns a greeting and the root path the API is published under, which tells a client
/// behind a proxy how to build URLs.
#[utoipa::path(
    get,
    path = "/",
    tag = "meta",
    responses((status = 200, description = "The service's name and root path", body = RootResponse))
)]
pub(crate) async fn get_root(State(state): State<AppState>) -> Json<RootResponse> {
    Json(RootResponse {
        message: "Welcome to the labs API".to_owned(),
        root_path: state.root_path,
    })
}
