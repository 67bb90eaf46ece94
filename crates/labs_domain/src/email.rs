//! Email addresses, normalised once so that one mailbox is one account, and checked once so
//! that every address we store is one the mailer can send to.
//!
//! The same [`Email::parse`] runs at the API's edge and in the mailer (labs_worker), so an
//! address is refused with a 422 at signup rather than accepted and retried for hours by a
//! worker that cannot send to it.

use serde::{Deserialize, Serialize};

/// The longest address SMTP can carry (RFC 5321: 64 octets of local part, 255 of domain, but
/// a path of at most 256 octets including the angle brackets).
const MAX_LEN: usize = 254;
/// The longest local part (RFC 5321 §4.5.3.1.1), and the longest domain label (RFC 1035).
const MAX_LOCAL_LEN: usize = 64;
const MAX_LABEL_LEN: usize = 63;

/// The characters of an RFC 5322 atom besides letters and digits.
const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

/// A valid, sendable email address, trimmed and lower-cased.
///
/// Lower-casing the local part is not what RFC 5321 says (it is case-sensitive in theory) but
/// what every mail provider does in practice; without it `Ann@x.io` and `ann@x.io` would be
/// two accounts of one person.
///
/// The grammar is the common subset of RFC 5322 and of what lettre (our mailer) parses and
/// sends to, so that nothing accepted here fails in the worker:
///
/// - local part: a dot-atom (atoms of letters, digits and ``!#$%&'*+-/=?^_`{|}~`` joined by
///   single dots: no `a..b`, no leading or trailing dot), at most 64 bytes; no quoted forms
///   (lettre would drop the quotes, sending elsewhere than what we stored);
/// - domain: at least two labels of letters, digits and inner hyphens, each 1 to 63 bytes;
///   its last label not all digits. So no IP literals (`x@[127.0.0.1]`, which lettre cannot
///   send to, nor `x@127.0.0.1`, which it can: mail to raw addresses is how a signup form
///   becomes a probe of internal hosts), and no single-label hosts (`x@localhost`).
///
/// Non-ASCII letters are allowed in both parts (internationalised addresses, RFC 6531), as
/// lettre allows them. Beyond syntax, the proof that an address works is the verification
/// email. A test (`properties::every_accepted_address_is_one_lettre_sends_to`) checks that
/// every address accepted here is one lettre parses, to the same address.
///
/// Replicated rather than delegated to lettre: lettre's parser needs its message builder, a
/// mail-transport dependency this no-I/O crate should not carry; the property test keeps the
/// two in step.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

/// Why a string is not an email address we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`email` is not a valid email address")]
pub struct InvalidEmail;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let address = raw.trim().to_lowercase();
        if address.len() > MAX_LEN || address.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidEmail);
        }
        let (local, domain) = address.split_once('@').ok_or(InvalidEmail)?;
        if is_local_part(local) && is_domain(domain) {
            Ok(Self(address))
        } else {
            Err(InvalidEmail)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A dot-atom (RFC 5322 §3.2.3) of at most 64 bytes.
fn is_local_part(local: &str) -> bool {
    let atext = |c: char| c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c) || is_intl(c);
    local.len() <= MAX_LOCAL_LEN
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atext))
}

/// Two or more host-name labels (letters, digits, inner hyphens), the last not all digits.
fn is_domain(domain: &str) -> bool {
    let letter_or_digit = |c: char| c.is_ascii_alphanumeric() || is_intl(c);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && label.starts_with(letter_or_digit)
            && label.ends_with(letter_or_digit)
            && label.chars().all(|c| letter_or_digit(c) || c == '-')
    };
    let labels: Vec<&str> = domain.split('.').collect();
    // An all-digit top-level label is an IPv4 address (or a typo of one): no TLD is numeric.
    let numeric_tld = labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()));
    labels.len() >= 2 && labels.iter().all(|label| label_ok(label)) && !numeric_tld
}

/// A non-ASCII letter or digit (internationalised addresses): lettre accepts any non-ASCII
/// character; we keep to alphanumerics, so no invisible or look-alike punctuation.
fn is_intl(c: char) -> bool {
    !c.is_ascii() && c.is_alphanumeric()
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(|e| crate::refusal::refuse("invalid-email", e))
    }
}

impl utoipa::PartialSchema for Email {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Email,
            )))
            .max_length(Some(MAX_LEN))
            .examples([serde_json::json!("ada@example.com")])
            .into()
    }
}

impl utoipa::ToSchema for Email {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@example..com",
            "ada@-example.com",
            "<ada@example.com>",
            "ada@example.com\r\nBcc: eve@example.com",
            // What lettre cannot send to, or we will not.
            "a..b@example.com",
            ".ada@example.com",
            "ada.@example.com",
            "x@[127.0.0.1]",
            "x@[ipv6:::1]",
            "x@127.0.0.1",
            "x@10.0.0.1.",
            "x@example.123",
            "x@localhost",
            "x@example.com.",
            "x@.example.com",
            "x@example-.com",
            "x@exa_mple.com",
            "\"ada\"@example.com",
            "\"a b\"@example.com",
            "a(comment)@example.com",
            "a\\b@example.com",
            "a\u{200b}b@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(InvalidEmail), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(InvalidEmail));
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(Email::parse(&long_local), Err(InvalidEmail));
        let long_label = format!("ada@{}.com", "a".repeat(64));
        assert_eq!(Email::parse(&long_label), Err(InvalidEmail));
    }

    #[test]
    fn ordinary_and_unusual_but_valid_addresses_are_accepted() {
        for good in [
            "ada@example.com",
            "ada.lovelace+labs@mail.example.co.uk",
            "o'brien@example.ie",
            "x_y-z@sub-domain.example",
            "1234@123.example",
            "a!#$%&*/=?^`{|}~@example.com",
            "jörg@bücher.de",
        ] {
            assert!(Email::parse(good).is_ok(), "{good:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Strings shaped like addresses, with the characters that make them fail (dots, brackets,
    /// quotes, digits, non-ASCII), so that many are accepted and many barely refused.
    fn address_like() -> impl Strategy<Value = String> {
        let local = "[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~\"()\\-]{0,12}|[a-zé\u{00df}\u{0130}.]{1,6}";
        let domain =
            "[a-zA-Z0-9.\\[\\]:_-]{0,16}|[a-z0-9ä-]{1,8}\\.[a-z0-9]{1,4}|\\[[0-9.]{1,15}\\]";
        (local, domain).prop_map(|(local, domain)| format!("{local}@{domain}"))
    }

    proptest! {
        /// Every address we accept, lettre (the mailer) accepts too, and as the same address:
        /// what we store is what gets sent to.
        #[test]
        fn every_accepted_address_is_one_lettre_sends_to(
            raw in prop_oneof![address_like(), ".{0,80}"]
        ) {
            if let Ok(email) = Email::parse(&raw) {
                let mailbox: Result<lettre::message::Mailbox, _> = email.as_str().parse();
                prop_assert!(mailbox.is_ok(), "lettre refuses {:?}", email.as_str());
                let mailbox = mailbox.unwrap();
                prop_assert_eq!(mailbox.name, None);
                prop_assert_eq!(mailbox.email.to_string(), email.as_str());
            }
        }

        /// Any input: an answer, never a panic; what is accepted is normalised for good.
        #[test]
        fn parsing_is_total_and_normalising(raw in ".{0,300}") {
            if let Ok(email) = Email::parse(&raw) {
                prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
                prop_assert_eq!(email.as_str(), email.as_str().to_lowercase());
                prop_assert!(!email.as_str().chars().any(char::is_control));
            }
        }
    }
}
