//! The nouns and rules of the service, free of I/O: typed ids, what a valid email address and
//! an acceptable password are. Every layer (HTTP, CLI, jobs) checks input through these types, so
//! a rule is written once.

mod email;
mod ids;
pub mod password;

pub use email::{Email, InvalidEmail};
pub use ids::{SessionId, UserId};
pub use password::{InvalidPassword, Password};
