//! The in-process tests of the binary crate: the real router (built as `labs serve` builds it)
//! on a per-test database, the real Redis, the real worker where an email matters. One test
//! binary, one link, for every module below (a binary per file cost a link each).

#[path = "../common/mod.rs"]
mod common;

mod addresses;
mod api;
mod auth;
mod docs;
mod limits;
mod pages;
mod payments; // template:only stripe
