//! The api role's state: the shared [`AppState`], the accounts, the queue and each listed
//! feature's part ([`Parts`]), offered to handlers by `FromRef` (a feature names its own
//! part, never this type). The listed features' `FromRef` impls are written by `features!`.

use std::sync::Arc;

use axum::extract::FromRef;
use labs_accounts::Accounts;
use labs_http::AppState;
use labs_jobs::JobQueue;

use crate::Parts;

/// What API handlers reach. One `Arc`: axum clones the state for every request, and cloning
/// the parts one by one (pool, Redis manager, queue, settings) showed in profiles as a few
/// percent of a whole request.
#[derive(Debug, Clone)]
pub struct ApiState(Arc<ApiParts>);

/// The parts of [`ApiState`].
#[derive(Debug)]
pub struct ApiParts {
    pub app: AppState,
    /// The accounts feature's part (it holds the keys and policy, `labs_accounts::Auth`).
    pub accounts: Accounts,
    pub queue: JobQueue,
    /// The listed features' parts.
    pub features: Parts,
}

impl ApiState {
    pub fn new(parts: ApiParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for ApiState {
    type Target = ApiParts;

    fn deref(&self) -> &ApiParts {
        &self.0
    }
}

impl FromRef<ApiState> for AppState {
    fn from_ref(state: &ApiState) -> Self {
        state.app.clone()
    }
}

impl FromRef<ApiState> for Accounts {
    fn from_ref(state: &ApiState) -> Self {
        state.accounts.clone()
    }
}

impl FromRef<ApiState> for labs_db::Db {
    fn from_ref(state: &ApiState) -> Self {
        state.app.db.clone()
    }
}

impl FromRef<ApiState> for labs_http::health::Health {
    fn from_ref(state: &ApiState) -> Self {
        state.app.health.clone()
    }
}
