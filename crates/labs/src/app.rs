//! The HTTP application of a process: the routers of its roles, the shared middleware, the
//! root path.

use std::collections::HashSet;

use axum::Router;
use clap::ValueEnum;
use labs_api::ApiState;
use labs_http::{ApiError, AppState, HttpConfig, layers, root_path};

use crate::cli::Role;

/// The roles a process runs.
#[derive(Debug, Clone)]
pub struct Roles(HashSet<Role>);

impl Roles {
    /// The roles asked for; none means all of them (the monolith).
    pub fn new(asked: &[Role]) -> Self {
        if asked.is_empty() {
            Self(Role::value_variants().iter().copied().collect())
        } else {
            Self(asked.iter().copied().collect())
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.0.contains(&role)
    }
}

/// The routes of a process before the shared middleware: the public API when `api` is given
/// (the api role), else only the health endpoints, which every role serves for its probes.
/// Other roles' routers (the webhook receiver) are merged into it before [`http_app`].
pub fn role_routes(state: AppState, api: Option<ApiState>) -> Router {
    match api {
        Some(api) => labs_api::app(&state.root_path, &api).with_state(api),
        None => {
            let (health, _) = labs_http::health::router::<AppState>().split_for_parts();
            health.with_state(state)
        }
    }
}

/// The whole HTTP application: `routes` with the 404 fallback, the middleware and the root
/// path applied.
pub fn http_app(routes: Router, config: &HttpConfig) -> Router {
    let routes = routes.fallback(|| async { ApiError::NotFound });
    root_path::serve_under(&config.root_path, layers::apply(routes, config))
}
