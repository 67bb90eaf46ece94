//! Email addresses, normalised once so that one mailbox is one account.

use serde::{Deserialize, Serialize};

/// The longest address SMTP can carry (RFC 5321: 64 octets of local part, 255 of domain, but
/// a path of at most 256 octets including the angle brackets).
const MAX_LEN: usize = 254;

/// A syntactically valid email address, trimmed and lower-cased.
///
/// Lower-casing the local part is not what RFC 5321 says (it is case-sensitive in theory) but
/// what every mail provider does in practice; without it `Ann@x.io` and `ann@x.io` would be
/// two accounts of one person. The check is deliberately modest (one `@`, a dotted domain, no
/// spaces or control characters): the real proof that an address works is the verification
/// email.
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
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && domain
                .split('.')
                .all(|label| !label.is_empty() && label.len() <= 63 && !label.starts_with('-'));
        if local.is_empty()
            || local.len() > 64
            || !domain_ok
            || address.contains(['<', '>', ',', ';'])
        {
            return Err(InvalidEmail);
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
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
        ] {
            assert_eq!(Email::parse(bad), Err(InvalidEmail), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(InvalidEmail));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
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
