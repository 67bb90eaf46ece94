//! The values a __feature__'s bodies carry, parsed at the edge: a handler, the SQL and the jobs
//! only ever see checked ones. A refusal names its rule (`labs_domain::refusal`), which the
//! HTTP edge puts in the field error's `code`.

use labs_domain::refusal::refuse;
use serde::{Deserialize, Deserializer};

/// Longest title, in characters (the table's `CHECK` says the same).
pub const TITLE_MAX_CHARS: usize = 200;
/// Longest details, in characters (the table's `CHECK` says the same).
pub const DETAILS_MAX_CHARS: usize = 2000;

/// A __feature__'s title: trimmed, not empty, at most [`TITLE_MAX_CHARS`] characters, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

/// Free text about a __feature__: trimmed, at most [`DETAILS_MAX_CHARS`] characters, line
/// breaks and tabs allowed, no other control characters; empty is none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Details(String);

/// Why a value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters long")]
    TooLong(usize),
    #[error("must not contain control characters")]
    ControlCharacters,
}

impl InvalidValue {
    /// The stable code of the rule broken.
    pub fn code(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong(_) => "too-long",
            Self::ControlCharacters => "control-characters",
        }
    }
}

impl Title {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let title = raw.trim();
        if title.is_empty() {
            return Err(InvalidValue::Empty);
        }
        if title.chars().any(char::is_control) {
            return Err(InvalidValue::ControlCharacters);
        }
        if title.chars().count() > TITLE_MAX_CHARS {
            return Err(InvalidValue::TooLong(TITLE_MAX_CHARS));
        }
        Ok(Self(title.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Details {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let details = raw.trim();
        if details
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(InvalidValue::ControlCharacters);
        }
        if details.chars().count() > DETAILS_MAX_CHARS {
            return Err(InvalidValue::TooLong(DETAILS_MAX_CHARS));
        }
        Ok(Self(details.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Title {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(|e| refuse(e.code(), format_args!("`title` {e}")))
    }
}

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(|e| refuse(e.code(), format_args!("`details` {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_trimmed_bounded_and_printable() {
        assert_eq!(Title::parse("  First  ").unwrap().as_str(), "First");
        assert_eq!(Title::parse("   "), Err(InvalidValue::Empty));
        assert_eq!(
            Title::parse("a\u{0}b"),
            Err(InvalidValue::ControlCharacters)
        );
        assert!(Title::parse(&"é".repeat(TITLE_MAX_CHARS)).is_ok());
        assert_eq!(
            Title::parse(&"é".repeat(TITLE_MAX_CHARS + 1)),
            Err(InvalidValue::TooLong(TITLE_MAX_CHARS))
        );
    }

    #[test]
    fn details_keep_line_breaks_and_refuse_other_control_characters() {
        assert_eq!(Details::parse(" a\nb\tc ").unwrap().as_str(), "a\nb\tc");
        assert_eq!(Details::parse("").unwrap().as_str(), "");
        assert_eq!(
            Details::parse("a\u{7}b"),
            Err(InvalidValue::ControlCharacters)
        );
        assert_eq!(
            Details::parse(&"x".repeat(DETAILS_MAX_CHARS + 1)),
            Err(InvalidValue::TooLong(DETAILS_MAX_CHARS))
        );
    }
}
