//! The key material and cost parameters of credentials, as settings, and [`AuthKeys`]: all
//! of it checked and ready to use.
//!
//! Secrets are `Option`s here: the binary resolves them (development default or "must be set
//! in production") before [`AuthKeys::new`] sees them, with the defaults below.

use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use crate::error::KeyError;
use crate::jwt::{JwtKeys, TokenPolicy};
use crate::{CodeHasher, PasswordHasher, SecretBox};

/// Development-only Ed25519 signing key. Production refuses to start with it.
pub const DEV_JWT_SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHxtEwnXqjFwRn5Gin32k842i/V2tlFk5a7DyNypoZ1N
-----END PRIVATE KEY-----
";
/// Development-only HS256 secret (when `LABS_JWT_ALGORITHM=hs256`).
pub const DEV_JWT_HS256_SECRET: &str = "ZGV2ZWxvcG1lbnQtb25seS1oczI1Ni1zZWNyZXQtMzJi";
/// Development-only TOTP encryption key (id 1).
pub const DEV_TOTP_ENCRYPTION_KEYS: &str = "1:sz6CKs0UN9kyL5ZZu7fet9/tCLFFgEUZV3ed5RC32jo=";
/// Development-only key of the short-code HMAC.
pub const DEV_CODE_HASH_KEY: &str = "S5cYpnaGcqDPxkcScvetB9rAbgaRuo7AZiAmBATTIO4=";

/// How access tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JwtAlgorithm {
    /// Ed25519 signatures; public keys published as a JWKS.
    Eddsa,
    /// HMAC-SHA256 with a shared secret; nothing published.
    Hs256,
}

/// Key material and cost parameters of credentials. See docs/SECURITY.md for how to generate
/// and rotate each key (`labs keys generate ...`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Credentials and keys")]
pub struct KeyConfig {
    /// Access-token signature algorithm.
    #[arg(long, env = "LABS_JWT_ALGORITHM", value_enum, default_value_t = JwtAlgorithm::Eddsa)]
    pub jwt_algorithm: JwtAlgorithm,

    /// The key that signs access tokens: a PKCS#8 PEM Ed25519 private key for `eddsa`
    /// (`labs keys generate jwt`), base64 of at least 32 random bytes for `hs256`.
    #[arg(long, env = "LABS_JWT_SIGNING_KEY", hide_env_values = true)]
    pub jwt_signing_key: Option<SecretString>,

    /// Keys that signed earlier tokens, still accepted while those tokens live: PEM public
    /// keys for `eddsa`, comma-separated base64 secrets for `hs256`.
    #[arg(long, env = "LABS_JWT_RETIRED_KEYS", hide_env_values = true)]
    pub jwt_retired_keys: Option<SecretString>,

    /// The `iss` claim of our tokens, checked on every token.
    #[arg(long, env = "LABS_JWT_ISSUER", default_value = "labs")]
    pub jwt_issuer: String,

    /// The `aud` claim of our tokens, checked on every token.
    #[arg(long, env = "LABS_JWT_AUDIENCE", default_value = "labs-api")]
    pub jwt_audience: String,

    /// Lifetime of an access token.
    #[arg(long, env = "LABS_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub access_token_ttl: Duration,

    /// Keys that encrypt TOTP secrets at rest: `id:base64key,...` (ids 0-255, 32-byte keys),
    /// the current key first (`labs keys generate totp`).
    #[arg(long, env = "LABS_TOTP_ENCRYPTION_KEYS", hide_env_values = true)]
    pub totp_encryption_keys: Option<SecretString>,

    /// Key of the HMAC that stores short codes (email OTPs, recovery codes): base64 of at least
    /// 32 random bytes (`labs keys generate code-hash`).
    #[arg(long, env = "LABS_CODE_HASH_KEY", hide_env_values = true)]
    pub code_hash_key: Option<SecretString>,

    /// argon2id memory cost in KiB (one of OWASP's settings: 12288 with 3 iterations, or 19456
    /// with 2). Changing a cost rehashes each password at its owner's next login.
    #[arg(long, env = "LABS_ARGON2_MEMORY_KIB", default_value_t = crate::password::DEFAULT_MEMORY_KIB)]
    pub argon2_memory_kib: u32,

    /// argon2id iterations.
    #[arg(long, env = "LABS_ARGON2_ITERATIONS", default_value_t = crate::password::DEFAULT_ITERATIONS)]
    pub argon2_iterations: u32,

    /// argon2id lanes.
    #[arg(long, env = "LABS_ARGON2_PARALLELISM", default_value_t = crate::password::DEFAULT_PARALLELISM)]
    pub argon2_parallelism: u32,
}

impl KeyConfig {
    /// The development default of the signing key for the configured algorithm.
    pub fn dev_signing_key(&self) -> &'static str {
        match self.jwt_algorithm {
            JwtAlgorithm::Eddsa => DEV_JWT_SIGNING_KEY,
            JwtAlgorithm::Hs256 => DEV_JWT_HS256_SECRET,
        }
    }
}

/// The resolved secrets [`AuthKeys::new`] needs.
#[derive(Debug)]
pub struct ResolvedSecrets {
    pub jwt_signing_key: SecretString,
    pub totp_encryption_keys: SecretString,
    pub code_hash_key: SecretString,
}

/// Everything that signs, hashes and seals credentials.
#[derive(Debug, Clone)]
pub struct AuthKeys {
    pub jwt: JwtKeys,
    pub passwords: PasswordHasher,
    pub secrets: SecretBox,
    pub codes: CodeHasher,
}

impl AuthKeys {
    pub fn new(config: &KeyConfig, secrets: &ResolvedSecrets) -> Result<Self, KeyError> {
        let policy = TokenPolicy {
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            ttl: config.access_token_ttl,
        };
        let signing = secrets.jwt_signing_key.expose_secret();
        let retired = config
            .jwt_retired_keys
            .as_ref()
            .map(|keys| keys.expose_secret().to_owned())
            .unwrap_or_default();
        let jwt = match config.jwt_algorithm {
            JwtAlgorithm::Eddsa => JwtKeys::ed25519(signing, &retired, policy)?,
            JwtAlgorithm::Hs256 => {
                let secret = decode_base64("LABS_JWT_SIGNING_KEY", signing)?;
                let retired = retired
                    .split(',')
                    .filter(|key| !key.trim().is_empty())
                    .map(|key| decode_base64("LABS_JWT_RETIRED_KEYS", key))
                    .collect::<Result<Vec<_>, _>>()?;
                JwtKeys::hs256(&secret, &retired, policy)?
            }
        };
        let passwords = PasswordHasher::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
        )
        .map_err(|e| KeyError::new("LABS_ARGON2_MEMORY_KIB", e.to_string()))?;
        let secrets_box = SecretBox::new(&parse_key_list(
            secrets.totp_encryption_keys.expose_secret(),
        )?)
        .map_err(|why| KeyError::new("LABS_TOTP_ENCRYPTION_KEYS", why))?;
        let code_key = decode_base64("LABS_CODE_HASH_KEY", secrets.code_hash_key.expose_secret())?;
        if code_key.len() < 32 {
            return Err(KeyError::new(
                "LABS_CODE_HASH_KEY",
                "needs at least 32 bytes".to_owned(),
            ));
        }
        Ok(Self {
            jwt,
            passwords,
            secrets: secrets_box,
            codes: CodeHasher::new(&code_key),
        })
    }
}

/// Base64 in either alphabet (standard or URL-safe), padded or not, with surrounding
/// whitespace: the spellings `openssl rand -base64`, `labs keys generate` and hand copies
/// produce. One key is one byte string however it is spelt, which the production check relies
/// on to recognise a development key written differently (rather than comparing strings).
pub(crate) fn decode_base64(variable: &'static str, text: &str) -> Result<Vec<u8>, KeyError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let standard: String = text
        .trim()
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    ANY_PADDING
        .decode(standard)
        .map_err(|e| KeyError::new(variable, format!("not base64 ({e})")))
}

/// `id:base64key,...` → [(id, key)].
pub(crate) fn parse_key_list(text: &str) -> Result<Vec<(u8, [u8; 32])>, KeyError> {
    let bad = |why: String| KeyError::new("LABS_TOTP_ENCRYPTION_KEYS", why);
    text.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let (id, key) = entry
                .trim()
                .split_once(':')
                .ok_or_else(|| bad("each key is `id:base64key`".to_owned()))?;
            let id: u8 = id
                .parse()
                .map_err(|_| bad(format!("key id `{id}` is not 0-255")))?;
            let key: [u8; 32] = decode_base64("LABS_TOTP_ENCRYPTION_KEYS", key)?
                .try_into()
                .map_err(|_| bad(format!("key {id} is not 32 bytes")))?;
            Ok((id, key))
        })
        .collect()
}

/// A new random 32-byte key, base64 (for HS256, the code-hash key, and TOTP keys).
pub fn generate_symmetric_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(crate::random_bytes::<32>())
}
