//! The two stores: Postgres and Redis.
//!
//! What lives here: opening connections (with explicit limits and timeouts), the embedded
//! migrations, the rate limiter, and (until the accounts crate takes them) the SQL of accounts
//! and credentials, each statement a small named function that takes an executor so that the
//! caller owns the transaction.
//!
//! What deliberately does not: anything about HTTP, a feature's own SQL (`labs_billing::db`),
//! and the job queue's own use of Redis (that belongs to the jobs crate, which gets its
//! connection from here).

pub mod credentials;
pub mod pg;
pub mod ratelimit;
pub mod redis;
pub mod schema;
pub mod users;

pub use pg::{PgConfig, PgPool};
pub use redis::{RedisConfig, RedisConnection};
/// The error of every Postgres call.
pub use sqlx::Error as DbError;
/// A connection or transaction, for functions that run several statements in the caller's transaction.
pub use sqlx::PgConnection;
