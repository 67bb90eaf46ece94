//! Test support shared by the integration tests of several crates: where the test services
//! are, throwaway `redis-server`s (to stop and restart without touching the shared one),
//! databases created and dropped per test, a TCP server that never answers, free ports.
//!
//! Only ever a dev-dependency.

#![allow(
    clippy::disallowed_methods,
    reason = "the test harness reads where the test services are"
)]

mod http;
mod postgres;
mod process;
mod redis;
mod services;
mod smtp;
mod tls;

pub use http::{Answer, get, send};
pub use postgres::{PostgresServer, TempDatabase};
pub use process::{BlackHole, signal, wait_for_exit};
pub use redis::RedisServer;
pub use services::{
    admin_database_url, database_url_named, free_port, shared_redis_url, test_python, unique_name,
};
pub use smtp::SmtpServer;
pub use tls::test_certificates;
