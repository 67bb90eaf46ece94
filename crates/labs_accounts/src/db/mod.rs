//! The accounts' SQL: each statement a small named function that takes an executor (so that
//! the caller owns the transaction) and typed ids.

pub mod credentials;
pub mod users;
