//! The HTTP application of a process: the routers of its roles, the shared middleware, the
//! root path.

use std::collections::HashSet;

use axum::Router;
use clap::ValueEnum;
use labs_accounts::{Accounts, AuthConfig};
use labs_api::{ApiParts, ApiState};
use labs_auth::AuthKeys;
use labs_http::{ApiError, AppState, HttpApp, HttpConfig, layers, root_path};
use labs_jobs::JobQueue;

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

/// The api role's state: the accounts (with `keys` and `auth`), every listed feature's part
/// (labs_features) built from its `features` settings, and the job queue. `labs serve` and
/// the tests' `TestApp` both build it here, so that tests run the state production runs.
pub fn api_state(
    state: &AppState,
    keys: AuthKeys,
    auth: AuthConfig,
    http: &HttpConfig,
    queue: JobQueue,
    features: &labs_features::Settings,
) -> anyhow::Result<ApiState> {
    let accounts = Accounts::new(
        state.db.clone(),
        state.redis.clone(),
        keys,
        auth,
        &http.cors_origins,
        &http.root_path,
    );
    let features = labs_features::Parts::new(state, &accounts, features)?;
    Ok(ApiState::new(ApiParts {
        app: state.clone(),
        accounts,
        queue,
        features,
    }))
}

/// A process's whole HTTP application: the api role's routes when `api` is given, the
/// features' webhook receivers when `hooks` is (the hooks role), the health endpoints always,
/// under the shared middleware and the root path. `labs serve` and `TestApp` both call it.
pub fn application(
    state: AppState,
    api: Option<ApiState>,
    hooks: Option<Router>,
    config: &HttpConfig,
) -> HttpApp {
    let routes = role_routes(state, api);
    let routes = match hooks {
        Some(hooks) => routes.merge(hooks),
        None => routes,
    };
    http_app(routes, config)
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
pub fn http_app(routes: Router, config: &HttpConfig) -> HttpApp {
    let routes = routes.fallback(|| async { ApiError::NotFound });
    root_path::serve_under(&config.root_path, layers::apply(routes, config))
}
