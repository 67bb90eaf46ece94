//! How a user is addressed: free text, within bounds the database and the emails can hold.

use serde::Deserialize;

use crate::refusal::refuse;

/// Longest name accepted, in characters.
pub const MAX_CHARS: usize = 200;

/// A user's full name: trimmed, not empty, at most [`MAX_CHARS`] characters, no control
/// characters (NUL above all, which Postgres text cannot hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);

/// Why a name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidFullName {
    #[error("`fullName` must not contain control characters")]
    ControlCharacters,
    #[error("`fullName` must be at most {MAX_CHARS} characters long")]
    TooLong,
}

impl InvalidFullName {
    /// The stable code of the rule broken.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ControlCharacters => "control-characters",
            Self::TooLong => "too-long",
        }
    }
}

impl FullName {
    /// Checks a name; a blank one is no name (`None`), as a form's empty field means.
    pub fn parse(raw: &str) -> Result<Option<Self>, InvalidFullName> {
        let name = raw.trim();
        if name.chars().any(char::is_control) {
            return Err(InvalidFullName::ControlCharacters);
        }
        if name.chars().count() > MAX_CHARS {
            return Err(InvalidFullName::TooLong);
        }
        Ok((!name.is_empty()).then(|| Self(name.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// For `#[serde(default, deserialize_with = "labs_domain::full_name::optional")]` on an
/// `Option<FullName>` field: absent, `null` and blank are all `None`.
pub fn optional<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<FullName>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(raw) => FullName::parse(&raw).map_err(|e| refuse(e.code(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed_and_blank_is_none() {
        assert_eq!(FullName::parse("  Ada ").unwrap().unwrap().as_str(), "Ada");
        assert_eq!(FullName::parse("   ").unwrap(), None);
        assert_eq!(
            FullName::parse("A\u{0}da"),
            Err(InvalidFullName::ControlCharacters)
        );
        assert_eq!(
            FullName::parse(&"é".repeat(MAX_CHARS))
                .unwrap()
                .unwrap()
                .as_str()
                .chars()
                .count(),
            MAX_CHARS
        );
        assert_eq!(
            FullName::parse(&"é".repeat(MAX_CHARS + 1)),
            Err(InvalidFullName::TooLong)
        );
    }
}
