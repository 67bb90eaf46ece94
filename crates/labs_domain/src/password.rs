//! The password policy (NIST SP 800-63B §3.1.1.2): a length range and nothing else. No
//! composition rules: they make passwords harder to remember, not to guess.

use serde::Deserialize;

/// Shortest password accepted.
pub const MIN_CHARS: usize = 8;
/// Longest password accepted, in characters. Long enough for any passphrase or generated
/// password; the bound exists so that a megabyte "password" is a clean 422, not a second of
/// hashing.
pub const MAX_CHARS: usize = 128;
/// The byte bound that goes with [`MAX_CHARS`] (four bytes per character at most in UTF-8).
pub const MAX_BYTES: usize = 4 * MAX_CHARS;

/// A password a user chose, checked against the policy. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// Why a new password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPassword {
    #[error("`password` must be at least {MIN_CHARS} characters long")]
    TooShort,
    #[error("`password` must be at most {MAX_CHARS} characters long")]
    TooLong,
}

impl InvalidPassword {
    /// The stable code of the rule broken.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort => "too-short",
            Self::TooLong => "too-long",
        }
    }
}

impl Password {
    /// Checks a new password (signup, reset, admin create). Unicode is welcome: the length is
    /// counted in characters.
    pub fn new(raw: String) -> Result<Self, InvalidPassword> {
        if raw.len() > MAX_BYTES {
            return Err(InvalidPassword::TooLong);
        }
        match raw.chars().count() {
            n if n < MIN_CHARS => Err(InvalidPassword::TooShort),
            n if n > MAX_CHARS => Err(InvalidPassword::TooLong),
            _ => Ok(Self(raw)),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::new(raw).map_err(|e| crate::refusal::refuse(e.code(), e))
    }
}

impl utoipa::PartialSchema for Password {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Password,
            )))
            .min_length(Some(MIN_CHARS))
            .max_length(Some(MAX_CHARS))
            .into()
    }
}

impl utoipa::ToSchema for Password {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_the_only_rule() {
        assert_eq!(
            Password::new("short".into()),
            Err(InvalidPassword::TooShort)
        );
        assert!(Password::new("all lowercase words".into()).is_ok());
        assert!(
            Password::new("ñ".repeat(MAX_CHARS)).is_ok(),
            "counted in characters"
        );
        assert_eq!(
            Password::new("x".repeat(MAX_CHARS + 1)),
            Err(InvalidPassword::TooLong)
        );
        assert_eq!(
            Password::new("x".repeat(1 << 20)),
            Err(InvalidPassword::TooLong)
        );
    }

    #[test]
    fn debug_does_not_show_it() {
        let password = Password::new("hunter22-secret".into()).unwrap();
        assert!(!format!("{password:?}").contains("hunter"));
    }
}
