//! The two stores: Postgres and Redis.
//!
//! What lives here: opening connections (with explicit limits and timeouts), the embedded
//! migrations (and which of them a database has), and the rate limiter.
//!
//! What deliberately does not: anything about HTTP, a feature's SQL (each feature crate's `db`
//! module: `labs_accounts::db`, `labs_billing::db`), and the job queue's own use of Redis
//! (that belongs to the jobs crate, which gets its connection from here).

pub mod pg;
pub mod pool;
pub mod ratelimit;
pub mod redis;
pub mod schema;

pub use pg::PgConfig;
pub use pool::{Db, Transaction};
pub use redis::{RedisConfig, RedisConnection};
/// The error of every Postgres call.
pub use sqlx::Error as DbError;
/// A connection or transaction, for functions that run several statements in the caller's transaction.
pub use sqlx::PgConnection;
