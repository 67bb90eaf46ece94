//! The state every handler can reach: cheap to clone, built once per process.

use std::time::Duration;

use axum::extract::FromRef;
use labs_db::{Db, RedisConnection};

use crate::health::Health;

/// Handles on the stores and the few settings handlers need.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub redis: RedisConnection,
    /// The root path the API is published under (`""` for none).
    pub root_path: String,
    /// Whether the API's docs UI is served (`LABS_DOCS`).
    pub docs: bool,
    /// What the health endpoints check.
    pub health: Health,
}

impl AppState {
    /// The state of a process on `db` and `redis`; readiness checks each under `ready_timeout`.
    pub fn new(
        db: Db,
        redis: RedisConnection,
        ready_timeout: Duration,
        root_path: String,
        docs: bool,
    ) -> Self {
        Self {
            health: Health::new(db.clone(), redis.clone(), ready_timeout),
            db,
            redis,
            root_path,
            docs,
        }
    }
}

impl AppState {
    /// Readiness that does not need Redis (see [`Health::ready_without_redis`]).
    #[must_use]
    pub fn ready_without_redis(mut self) -> Self {
        self.health = self.health.ready_without_redis();
        self
    }
}

impl FromRef<AppState> for Health {
    fn from_ref(state: &AppState) -> Self {
        state.health.clone()
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("health", &self.health)
            .field("root_path", &self.root_path)
            .field("docs", &self.docs)
            .finish_non_exhaustive()
    }
}
