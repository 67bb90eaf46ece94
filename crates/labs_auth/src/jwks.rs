//! The public half of our token keys as a JSON Web Key Set (RFC 7517, with RFC 8037's `OKP`
//! keys for Ed25519), typed so that the OpenAPI document describes exactly what
//! `/.well-known/jwks.json` answers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A JSON Web Key Set: the keys that verify our access tokens (match a token's `kid`). During
/// a rotation it holds the signing key and the retired ones; with HS256 it is empty (a shared
/// secret is never published).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// One public Ed25519 key (RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    /// Key type: always `OKP`.
    #[schema(example = "OKP")]
    pub kty: String,
    /// Curve: always `Ed25519`.
    #[schema(example = "Ed25519")]
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// The key's id: its RFC 7638 thumbprint, as tokens name it in their header.
    pub kid: String,
    /// Algorithm: always `EdDSA`.
    #[schema(example = "EdDSA")]
    pub alg: String,
    /// Use: always `sig`.
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub key_use: String,
}

impl Jwk {
    /// The JWK of an Ed25519 public key given base64url (`x`) with its id.
    pub(crate) fn ed25519(x: String, kid: String) -> Self {
        Self {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x,
            kid,
            alg: "EdDSA".to_owned(),
            key_use: "sig".to_owned(),
        }
    }
}
