//! Credentials and the cryptography behind them, with no I/O: the API checks and issues them,
//! the database stores what this crate produces (hashes, sealed secrets), the CLI generates
//! keys with it.
//!
//! | credential | primitive | module |
//! |---|---|---|
//! | password | argon2id (OWASP parameters), PHC strings, rehash when parameters change | [`password`] |
//! | access token | JWT, EdDSA (Ed25519) with a `kid` and a JWKS, or HS256 | [`jwt`] |
//! | refresh, verification, reset, MFA-challenge tokens | 32 random bytes, SHA-256 at rest | [`token`] |
//! | email OTP, recovery codes | random short codes, HMAC-SHA256 at rest (keyed) | [`token`] |
//! | TOTP | RFC 6238 (HMAC-SHA1, 30 s, 6 digits, ±1 step, replay refused) | [`totp`] |
//! | TOTP secrets at rest | XChaCha20-Poly1305, key id prefix, user id as AAD | [`sealed`] |
//!
//! [`material`] holds the production checks on keys: no development key in any spelling, none
//! too regular to be random.
//!
//! `docs/SECURITY.md` explains each choice and how to rotate each key.

pub mod config;
mod error;
pub mod jwks;
pub mod jwt;
pub mod material;
pub mod password;
mod pem;
pub mod sealed;
pub mod token;
pub mod totp;

pub use config::{AuthKeys, KeyConfig};
pub use error::KeyError;
pub use jwt::{AccessClaims, JwtKeys, TokenError};
pub use password::{PasswordHasher, Verification};
pub use sealed::SecretBox;
pub use token::{CodeHasher, OpaqueToken};
pub use totp::TotpSecret;

/// Fills `N` bytes from the operating system's CSPRNG (through aws-lc-rs).
///
/// # Panics
/// When the operating system cannot provide randomness, which leaves nothing safe to do.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0_u8; N];
    #[expect(
        clippy::expect_used,
        reason = "no randomness means no safe credential: stop"
    )]
    aws_lc_rs::rand::fill(&mut bytes).expect("the operating system's CSPRNG failed");
    bytes
}

/// Base64url without padding (RFC 4648 §5), the encoding of every token we hand out.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Constant-time equality, for anything compared against a secret.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}
