//! Random secrets handed to a user (by email, or as a refresh token) and what we keep of them.
//!
//! Two kinds, two ways to store them:
//! - **Opaque tokens** (refresh, email verification, password reset, MFA challenge): 32 random
//!   bytes, so guessing is hopeless; at rest only their SHA-256, so a database dump holds no
//!   usable token. A plain hash is enough: there is nothing to brute-force.
//! - **Short codes** (6-digit email OTP, recovery codes): few enough possibilities that a plain
//!   hash of a dumped row would be reversed in seconds, so they are stored as an HMAC under a
//!   server key (`LABS_CODE_HASH_KEY`) and bound to their owner and purpose.

use aws_lc_rs::{digest, hmac};

use crate::{b64url, random_bytes, same};

/// A fresh 256-bit token, in the base64url form the user receives.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken(String);

impl std::fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaqueToken(..)")
    }
}

impl OpaqueToken {
    pub fn generate() -> Self {
        Self(b64url(&random_bytes::<32>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What is stored: SHA-256 of the token.
    pub fn hash(&self) -> Vec<u8> {
        hash_token(&self.0)
    }
}

/// The stored form of a token a client presents (whatever it is: a wrong or malformed token
/// hashes to something that matches no row).
pub fn hash_token(presented: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, presented.as_bytes())
        .as_ref()
        .to_vec()
}

/// A uniformly random 6-digit code, `000000` to `999999`.
pub fn six_digit_code() -> String {
    // Rejection sampling: 2^32 is not a multiple of 10^6, so plain `% 1_000_000` would favour
    // the low codes a little.
    const RANGE: u32 = 1_000_000;
    const LIMIT: u32 = u32::MAX - (u32::MAX % RANGE);
    loop {
        let value = u32::from_be_bytes(random_bytes::<4>());
        if value < LIMIT {
            return format!("{:06}", value % RANGE);
        }
    }
}

/// The alphabet of recovery codes: lowercase letters and digits without look-alikes
/// (no 0/o, 1/l/i), 32 symbols, 5 bits each.
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz23456789-";

/// Recovery codes as shown to the user: `xxxxx-xxxxx`, 50 random bits each.
pub fn recovery_codes(count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let bytes = random_bytes::<10>();
            // 31 usable symbols (the last one, `-`, is the separator): map each byte onto them.
            let symbol = |b: u8| char::from(RECOVERY_ALPHABET[usize::from(b) % 31]);
            let left: String = bytes[..5].iter().map(|b| symbol(*b)).collect();
            let right: String = bytes[5..].iter().map(|b| symbol(*b)).collect();
            format!("{left}-{right}")
        })
        .collect()
}

/// Normalises a recovery code as typed (case, spaces, missing dash).
pub fn normalise_recovery_code(typed: &str) -> String {
    let compact: String = typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if compact.len() == 10 {
        format!("{}-{}", &compact[..5], &compact[5..])
    } else {
        compact
    }
}

/// Keyed hashes of short codes.
#[derive(Clone)]
pub struct CodeHasher {
    key: hmac::Key,
}

impl std::fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHasher(..)")
    }
}

impl CodeHasher {
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// HMAC-SHA256 over `purpose`, `owner` and `code`, each length-prefixed so that no two
    /// different triples hash the same input.
    pub fn hash(&self, purpose: &str, owner: &[u8], code: &str) -> Vec<u8> {
        let mut context = hmac::Context::with_key(&self.key);
        for part in [purpose.as_bytes(), owner, code.as_bytes()] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        context.sign().as_ref().to_vec()
    }

    /// Whether `code` is the one `stored` was made from, in constant time.
    pub fn matches(&self, purpose: &str, owner: &[u8], code: &str, stored: &[u8]) -> bool {
        same(&self.hash(purpose, owner, code), stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_base64url_and_stored_hashed() {
        let token = OpaqueToken::generate();
        assert_eq!(token.as_str().len(), 43);
        assert!(
            token
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(token.hash(), hash_token(token.as_str()));
        assert_eq!(token.hash().len(), 32);
        assert_ne!(OpaqueToken::generate(), token);
        assert!(!format!("{token:?}").contains(token.as_str()));
    }

    #[test]
    fn codes_have_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200).map(|_| six_digit_code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(
            codes.len() > 190,
            "200 draws out of a million should almost never repeat"
        );
    }

    #[test]
    fn recovery_codes_round_trip_through_sloppy_typing() {
        let codes = recovery_codes(10);
        assert_eq!(codes.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 11);
            assert_eq!(
                &normalise_recovery_code(&code.to_uppercase().replace('-', " ")),
                code
            );
        }
    }

    #[test]
    fn code_hashes_are_keyed_and_bound_to_owner_and_purpose() {
        let hasher = CodeHasher::new(b"k1");
        let stored = hasher.hash("otp", b"user-1", "123456");
        assert!(hasher.matches("otp", b"user-1", "123456", &stored));
        assert!(!hasher.matches("otp", b"user-1", "123457", &stored));
        assert!(!hasher.matches("otp", b"user-2", "123456", &stored));
        assert!(!hasher.matches("recovery", b"user-1", "123456", &stored));
        assert!(!CodeHasher::new(b"k2").matches("otp", b"user-1", "123456", &stored));
    }
}
