//! The nouns and rules of the service, free of I/O: typed ids, what a valid email address and
//! an acceptable password are. Every layer (HTTP, CLI, jobs) checks input through these types, so
//! a rule is written once.

mod email;
pub mod full_name;
mod ids;
pub mod password;
pub mod refusal;

pub use email::{Email, InvalidEmail};
pub use full_name::{FullName, InvalidFullName};
pub use ids::{SessionId, UserId};
pub use password::{InvalidPassword, Password};

/// What [`uuid_id!`] expands to needs, from this crate (not part of its API).
#[doc(hidden)]
pub mod __private {
    pub use uuid::Uuid;
}
