//! The state every handler can reach: cheap to clone, built once per process.

use std::time::Duration;

use labs_db::{PgPool, RedisConnection};

/// Handles on the stores and the few settings handlers need.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub redis: RedisConnection,
    /// Deadline for each dependency check of readiness.
    pub ready_timeout: Duration,
    /// The root path the API is published under (`""` for none).
    pub root_path: String,
    /// Whether the API's docs UI is served (`LABS_DOCS`).
    pub docs: bool,
    /// Readiness checks shared by concurrent probes.
    pub readiness: std::sync::Arc<crate::health::ReadinessChecks>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("ready_timeout", &self.ready_timeout)
            .field("root_path", &self.root_path)
            .field("docs", &self.docs)
            .finish_non_exhaustive()
    }
}
