//! Access tokens: short-lived signed JWTs.
//!
//! EdDSA (Ed25519) by default: other services can verify our tokens with the public keys we
//! publish at `/.well-known/jwks.json`, and cannot mint them. HS256 (a shared secret) is there
//! for a single service that signs and verifies alone. Each key has a `kid`; the signing key
//! is the first, retired keys keep verifying until the tokens they signed have expired.
//!
//! Verification accepts exactly the configured algorithm: `alg: none`, an HS256 token signed
//! with our *public* key (the classic algorithm-confusion attack), a token from an unknown
//! key, another issuer or audience, or an expired one are all refused.
//!
//! About 400 lines of code with its tests in `jwt/`: signing, verification and the JWKS are
//! one set of keys with one policy, kept in one reading.

use std::time::Duration;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use labs_domain::{SessionId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::b64url;
use crate::error::KeyError;
use crate::jwks::{Jwk, JwkSet};

/// Seconds of clock skew tolerated between us and a verifier.
const LEEWAY_SECONDS: u64 = 10;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user's id.
    pub sub: UserId,
    /// The session (refresh-token family) it belongs to: revoking the session revokes it.
    pub sid: SessionId,
    pub iat: i64,
    pub exp: i64,
    /// A unique id per token (for logs and deny lists).
    pub jti: Uuid,
    pub iss: String,
    pub aud: String,
    /// True only for a token issued by a credential check (password, OTP, TOTP), not by a
    /// refresh: sensitive actions (turning 2FA off) ask for a fresh one.
    pub fresh: bool,
}

/// Why a presented token is refused. All of them answer 401; the kind goes to the logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is signed with another algorithm than ours")]
    WrongAlgorithm,
    #[error("the token names no key we know")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` later than now (beyond the leeway): a token minted for later, or by a
    /// signer whose clock is wrong; either way not one to honour now.
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's signature, issuer, audience or claims are invalid")]
    Invalid,
}

/// The signing key, the verification keys, and the rules every token follows.
#[derive(Clone)]
pub struct JwtKeys {
    algorithm: Algorithm,
    kid: String,
    encoding: EncodingKey,
    decoding: Vec<(String, DecodingKey)>,
    public_jwks: Vec<Jwk>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.decoding.iter().map(|(kid, _)| kid.as_str()).collect();
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("verifies", &kids)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Who issues tokens, for whom, and for how long.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
}

impl JwtKeys {
    /// EdDSA: `signing_pem` is a PKCS#8 Ed25519 private key (`openssl genpkey -algorithm
    /// ed25519`); `retired_pem` holds the public keys (`PUBLIC KEY` blocks) of earlier signing
    /// keys, still accepted.
    pub fn ed25519(
        signing_pem: &str,
        retired_pem: &str,
        policy: TokenPolicy,
    ) -> Result<Self, KeyError> {
        let signing = Ed25519Material::of_private_pem(signing_pem)?;
        let der = signing.pkcs8;
        let mut publics = vec![signing.public];
        publics.extend(retired_ed25519_publics(retired_pem)?);
        let mut decoding = Vec::new();
        let mut public_jwks = Vec::new();
        for public in &publics {
            let x = b64url(public);
            let kid = ed25519_thumbprint(&x);
            public_jwks.push(Jwk::ed25519(x, kid.clone()));
            decoding.push((kid, DecodingKey::from_ed_der(public)));
        }
        let kid = decoding[0].0.clone();
        Ok(Self::assemble(
            Algorithm::EdDSA,
            kid,
            EncodingKey::from_ed_der(&der),
            decoding,
            public_jwks,
            policy,
        ))
    }

    /// HS256: `secret` signs and verifies; `retired` secrets still verify. Each must hold at
    /// least 32 bytes (the hash's output size, RFC 7518 §3.2).
    pub fn hs256(
        secret: &[u8],
        retired: &[Vec<u8>],
        policy: TokenPolicy,
    ) -> Result<Self, KeyError> {
        let mut decoding = Vec::new();
        for (index, key) in std::iter::once(secret)
            .chain(retired.iter().map(Vec::as_slice))
            .enumerate()
        {
            let variable = if index == 0 {
                "LABS_JWT_SIGNING_KEY"
            } else {
                "LABS_JWT_RETIRED_KEYS"
            };
            if key.len() < 32 {
                return Err(KeyError::new(
                    variable,
                    "an HS256 secret needs at least 32 bytes".to_owned(),
                ));
            }
            decoding.push((hs256_kid(key), DecodingKey::from_secret(key)));
        }
        let kid = decoding[0].0.clone();
        // Shared secrets are never published: the JWKS stays empty.
        Ok(Self::assemble(
            Algorithm::HS256,
            kid,
            EncodingKey::from_secret(secret),
            decoding,
            Vec::new(),
            policy,
        ))
    }

    fn assemble(
        algorithm: Algorithm,
        kid: String,
        encoding: EncodingKey,
        decoding: Vec<(String, DecodingKey)>,
        public_jwks: Vec<Jwk>,
        policy: TokenPolicy,
    ) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        // Checked when present; we never set `nbf`, but a token another signer (a retired key's
        // holder) minted for later is not valid before it.
        validation.validate_nbf = true;
        validation.set_issuer(&[&policy.issuer]);
        validation.set_audience(&[&policy.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        Self {
            algorithm,
            kid,
            encoding,
            decoding,
            public_jwks,
            validation,
            issuer: policy.issuer,
            audience: policy.audience,
            ttl: policy.ttl,
        }
    }

    /// How long an access token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The `kid` new tokens carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs an access token for `user` in `session`.
    pub fn issue(
        &self,
        user: UserId,
        session: SessionId,
        fresh: bool,
        now: OffsetDateTime,
    ) -> Result<(String, AccessClaims), KeyError> {
        let iat = now.unix_timestamp();
        let claims = AccessClaims {
            sub: user,
            sid: session,
            iat,
            exp: iat + self.ttl.as_secs() as i64,
            jti: Uuid::now_v7(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            fresh,
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| KeyError::new("LABS_JWT_SIGNING_KEY", e.to_string()))?;
        Ok((token, claims))
    }

    /// Checks a presented token: algorithm, key, signature, issuer, audience, expiry, and that
    /// neither `nbf` nor `iat` is in the future (beyond [`LEEWAY_SECONDS`]).
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        // An unknown `alg` (such as `none`) does not even parse as a header.
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != self.algorithm {
            return Err(TokenError::WrongAlgorithm);
        }
        let key = header
            .kid
            .and_then(|kid| self.decoding.iter().find(|(known, _)| *known == kid))
            .map(|(_, key)| key)
            .ok_or(TokenError::UnknownKey)?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidToken
                | ErrorKind::Base64(_)
                | ErrorKind::Json(_)
                | ErrorKind::Utf8(_) => TokenError::Malformed,
                _ => TokenError::Invalid,
            })?;
        // jsonwebtoken has no `iat` check. A token issued in the future would outlive its
        // `exp - iat` lifetime as seen from here, and says its signer's clock (or the signer)
        // is not to be trusted.
        if claims.iat > OffsetDateTime::now_utc().unix_timestamp() + LEEWAY_SECONDS as i64 {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    /// The JSON Web Key Set of our public keys (RFC 7517), for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.public_jwks.clone(),
        }
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key: a `kid` derived from the key itself, so two
/// processes with the same key always agree on it and nobody has to name keys.
fn ed25519_thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    b64url(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
}

/// A short id for a shared secret: a hash prefix, which reveals nothing usable about it.
fn hs256_kid(secret: &[u8]) -> String {
    let mut input = b"labs-hs256-kid:".to_vec();
    input.extend_from_slice(secret);
    let hash = digest::digest(&digest::SHA256, &input);
    format!("hs256-{}", &b64url(hash.as_ref())[..12])
}

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32-byte key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn ed25519_public_from_spki(spki: &[u8]) -> Option<Vec<u8>> {
    (spki.len() == 44 && spki[..12] == ED25519_SPKI_PREFIX).then(|| spki[12..].to_vec())
}

/// An Ed25519 private key as parsed from its PEM: what signs, and what it is made of (the
/// production checks compare the public key and look at the seed).
pub(crate) struct Ed25519Material {
    pub(crate) pkcs8: Vec<u8>,
    pub(crate) public: Vec<u8>,
    /// The 32-byte secret seed, when it could be found in the DER (always for the PKCS#8
    /// forms openssl and we write).
    pub(crate) seed: Option<Vec<u8>>,
}

impl Ed25519Material {
    /// Parses `LABS_JWT_SIGNING_KEY`: exactly one `PRIVATE KEY` block, PKCS#8 Ed25519.
    pub(crate) fn of_private_pem(pem: &str) -> Result<Self, KeyError> {
        let bad = |why: String| KeyError::new("LABS_JWT_SIGNING_KEY", why);
        let der = match crate::pem::blocks(pem, "PRIVATE KEY")
            .map_err(bad)?
            .as_slice()
        {
            [der] => der.clone(),
            _ => {
                return Err(bad(
                    "expected exactly one `PRIVATE KEY` PEM block".to_owned()
                ));
            }
        };
        let pair = Ed25519KeyPair::from_pkcs8(&der)
            .map_err(|e| bad(format!("not a PKCS#8 Ed25519 private key ({e})")))?;
        // The seed is the content of the `CurvePrivateKey` OCTET STRING (04 20 ...), itself
        // wrapped in the `privateKey` OCTET STRING (04 22): the same in PKCS#8 v1 and v2.
        let seed = der
            .windows(4)
            .position(|w| w == [0x04, 0x22, 0x04, 0x20])
            .and_then(|at| der.get(at + 4..at + 36))
            .map(<[u8]>::to_vec);
        Ok(Self {
            public: pair.public_key().as_ref().to_vec(),
            pkcs8: der,
            seed,
        })
    }
}

/// The raw public keys of the `PUBLIC KEY` blocks of `LABS_JWT_RETIRED_KEYS`.
pub(crate) fn retired_ed25519_publics(pem: &str) -> Result<Vec<Vec<u8>>, KeyError> {
    crate::pem::blocks(pem, "PUBLIC KEY")
        .map_err(|why| KeyError::new("LABS_JWT_RETIRED_KEYS", why))?
        .iter()
        .map(|spki| {
            ed25519_public_from_spki(spki).ok_or_else(|| {
                KeyError::new(
                    "LABS_JWT_RETIRED_KEYS",
                    "not an Ed25519 public key".to_owned(),
                )
            })
        })
        .collect()
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A new Ed25519 key pair as PEM: (private PKCS#8, public SPKI), the same formats `openssl
/// genpkey -algorithm ed25519` and `openssl pkey -pubout` write.
pub fn generate_ed25519_pem() -> (String, String) {
    let seed = crate::random_bytes::<32>();
    let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
    pkcs8.extend_from_slice(&seed);
    #[expect(clippy::expect_used, reason = "a well-formed key built just above")]
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).expect("a freshly built Ed25519 PKCS#8 key");
    let mut spki = ED25519_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    (pem("PRIVATE KEY", &pkcs8), pem("PUBLIC KEY", &spki))
}

/// The public key (SPKI PEM) of a private key PEM, for `LABS_JWT_RETIRED_KEYS`.
pub fn public_pem_of(private_pem: &str) -> Result<String, KeyError> {
    let keys = JwtKeys::ed25519(
        private_pem,
        "",
        TokenPolicy {
            issuer: String::new(),
            audience: String::new(),
            ttl: Duration::ZERO,
        },
    )?;
    let x = keys
        .public_jwks
        .first()
        .map(|jwk| jwk.x.clone())
        .unwrap_or_default();
    use base64::Engine;
    let public = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x)
        .map_err(|e| KeyError::new("LABS_JWT_SIGNING_KEY", e.to_string()))?;
    let mut spki = ED25519_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(&public);
    Ok(pem("PUBLIC KEY", &spki))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
