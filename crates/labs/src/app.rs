//! The HTTP application of a process: the routers of its roles, the shared middleware, the
//! root path.

use std::collections::HashSet;

use axum::Router;
use labs_api::ApiState;
use labs_hooks::HooksState;
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
}

/// The whole HTTP application, with middleware and root path applied: the public API when
/// `api` is given (the api role), the webhook receiver when `hooks` is (the hooks role), and
/// always the health endpoints, which every role serves for its probes.
pub fn http_app(
    state: AppState,
    api: Option<ApiState>,
    hooks: Option<HooksState>,
    config: &HttpConfig,
) -> Router {
    let mut routes: Router = match api {
        Some(api) => labs_api::app(&config.root_path, &api).with_state(api),
        None => {
            let (health, _) = labs_http::health::router::<AppState>().split_for_parts();
            health.with_state(state)
        }
    };
    if let Some(hooks) = hooks {
        routes = routes.merge(labs_hooks::router(hooks));
    }
    let routes = routes.fallback(|| async { ApiError::NotFound });
    root_path::serve_under(&config.root_path, layers::apply(routes, config))
}
