//! The child-process tests of the binary crate: the real `labs` binary over TCP (logs, signals,
//! exit codes, its commands, its pages in a browser, production guard rails, faults of its
//! stores, traces), one test binary for them.

#[path = "../common/mod.rs"]
mod common;

mod binary;
mod browser;
mod cli;
mod faults;
mod payments; // template:only stripe
mod production;
mod traces;
