//! Shared HTTP plumbing for every role that answers HTTP (api, hooks, and the health
//! listener of the others).
//!
//! What lives here: the one error type of our HTTP surfaces ([`ApiError`], rendered as RFC 9457
//! `application/problem+json`), extractors whose rejections use that same shape, the
//! middleware stack ([`layers::apply`]) and the root-path handling, the health endpoints,
//! `serve` with a bounded graceful drain, and logging set-up.
//!
//! What deliberately does not: routes of the public API (in the api crate) and any SQL
//! (in the db crate).

pub mod config;
pub mod csrf;
pub mod etag;
pub mod extract;
pub mod health;
pub mod layers;
pub mod metrics;
pub mod problem;
pub mod request_id;
pub mod root_path;
pub mod serve;
pub mod state;
pub mod validation;
pub mod wire;

pub use config::HttpConfig;
pub use problem::{ApiError, Problem};
pub use root_path::HttpApp;
pub use state::AppState;
pub use validation::{FieldError, page_bounds};
