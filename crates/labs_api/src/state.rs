//! The API's state: the shared [`AppState`] plus each feature's part, offered to the features'
//! handlers by `FromRef` (a feature names its own part, never this type).

use std::sync::Arc;

use axum::extract::FromRef;
use labs_accounts::Accounts;
use labs_http::AppState;
use labs_jobs::JobQueue;

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
    pub billing: labs_billing::Billing, // template:only stripe
    pub queue: JobQueue,
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

// template:begin stripe
impl FromRef<ApiState> for labs_billing::Billing {
    fn from_ref(state: &ApiState) -> Self {
        state.billing.clone()
    }
}
// template:end stripe

impl FromRef<ApiState> for labs_db::PgPool {
    fn from_ref(state: &ApiState) -> Self {
        state.app.db.clone()
    }
}

impl FromRef<ApiState> for labs_http::health::Health {
    fn from_ref(state: &ApiState) -> Self {
        state.app.health.clone()
    }
}
