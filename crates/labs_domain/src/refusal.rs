//! How a value type says *why* it refused its input, so that the HTTP edge can name the rule
//! in a field error's `code` (docs/API-CONVENTIONS.md, "Validation errors").
//!
//! serde carries only a message from a `Deserialize` impl to its caller. The code travels in
//! front of it, as `[code] message`, which the edge splits again. The rejected alternative, a
//! thread-local "last refusal" beside the message, breaks where serde retries and drops
//! errors (untagged enums, `Option` fallbacks); the message itself cannot go stale. Read
//! elsewhere (a job payload in a log), the prefix still says what it is.

use std::fmt::Display;

/// A serde error for a value refused by the rule named `code` (lowercase, dashes).
pub fn refuse<E: serde::de::Error>(code: &str, detail: impl Display) -> E {
    E::custom(format_args!("[{code}] {detail}"))
}

/// Splits a message built by [`refuse`] into its code and its detail.
pub fn split(message: &str) -> Option<(&str, &str)> {
    let (code, detail) = message.strip_prefix('[')?.split_once("] ")?;
    let plain = !code.is_empty()
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    plain.then_some((code, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_splits_back_into_its_code_and_detail() {
        let error: serde_json::Error = refuse("invalid-email", "not an address");
        assert_eq!(
            split(&error.to_string()),
            Some(("invalid-email", "not an address"))
        );
        assert_eq!(split("invalid type: integer `7`, expected a string"), None);
        assert_eq!(split("[Not A Code] text"), None);
    }
}
