//! The in-process tests of the binary crate, on `labs_testapp::TestApp`: the real router
//! (built by the functions `labs serve` builds it with) on a per-test database, the real
//! Redis, the real worker (`drain()`). One test binary, one link, for every module below (a
//! binary per file cost a link each). The accounts feature's tests are in its crate
//! (`crates/labs_accounts/tests/accounts/`).

#[path = "../common/mod.rs"]
mod common;

mod api;
mod docs;
mod payments; // template:only stripe
