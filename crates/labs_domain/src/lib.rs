//! The nouns and rules of the service, free of I/O: what a valid email address and an
//! acceptable password are. Every layer (HTTP, CLI, jobs) checks input through these types, so
//! a rule is written once.

mod email;
pub mod password;

pub use email::{Email, InvalidEmail};
pub use password::{InvalidPassword, Password};
