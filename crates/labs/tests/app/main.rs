//! The in-process tests of the binary crate, on `labs_testapp::TestApp`: the real router
//! (built by the functions `labs serve` builds it with) on a per-test database, the real
//! Redis, the real worker (`drain()`). One test binary, one link, for every module below (a
//! binary per file cost a link each). The features' tests are in their crates
//! (`crates/labs_accounts/tests/accounts/`, `crates/labs_billing/tests/`).

#[path = "../common/mod.rs"]
mod common;

mod api;
mod docs;
