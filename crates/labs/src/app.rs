//! The HTTP application of a process: the routers of its roles, the shared middleware, the
//! root path.

use std::collections::HashSet;

use axum::Router;
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
            Self([Role::Api, Role::Hooks, Role::Worker, Role::Scheduler].into())
        } else {
            Self(asked.iter().copied().collect())
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// Roles this build cannot run yet, in a stable order.
    pub fn not_built(&self) -> Vec<Role> {
        [Role::Hooks]
            .into_iter()
            .filter(|role| self.has(*role))
            .collect()
    }

    /// True when some role asked for has something to run in this build.
    pub fn any_built(&self) -> bool {
        [Role::Api, Role::Worker, Role::Scheduler]
            .into_iter()
            .any(|role| self.has(role))
    }
}

/// The whole HTTP application, with middleware and root path applied: the public API when
/// `api` is given (the api role), else only the health endpoints, which roles without an API
/// of their own (worker, scheduler) serve for their probes.
pub fn http_app(state: AppState, api: Option<ApiState>, config: &HttpConfig) -> Router {
    let routes: Router = match api {
        Some(api) => labs_api::app(&config.root_path, &api)
            .fallback(|| async { ApiError::NotFound })
            .with_state(api),
        None => {
            let (health, _) = labs_http::health::router::<AppState>().split_for_parts();
            health
                .fallback(|| async { ApiError::NotFound })
                .with_state(state)
        }
    };
    root_path::serve_under(&config.root_path, layers::apply(routes, config))
}
