//! The production checks on key material: no development key in any spelling, and no key
//! too regular to be random.
//!
//! The binary runs [`production_problems`] when `LABS_ENV=production`, after
//! [`AuthKeys::new`](crate::AuthKeys::new) has accepted the keys' syntax. Comparing strings
//! is not enough: a PEM without its final newline, with CRLF line ends or indented lines, a
//! base64 key without its padding or in the URL-safe alphabet, the development TOTP key under
//! another id or as a retired key are all the development key. So each key is compared as what
//! it is once parsed, the way [`AuthKeys::new`](crate::AuthKeys::new) parses it: an Ed25519
//! key by its public key (signing key and retired keys alike), a symmetric key by its decoded
//! bytes, against every development key of every kind (a development TOTP key reused as the
//! code-hash key is still public).
//!
//! What this module does not judge: settings that are not key material (cookie flags, argon2
//! costs, token lifetimes, proxies) are the binary's production policy, next to the settings.

use std::collections::BTreeSet;

use secrecy::ExposeSecret;

use crate::config::{
    DEV_CODE_HASH_KEY, DEV_JWT_HS256_SECRET, DEV_JWT_SIGNING_KEY, DEV_TOTP_ENCRYPTION_KEYS,
    JwtAlgorithm, KeyConfig, ResolvedSecrets, decode_base64, parse_key_list,
};
use crate::error::KeyError;
use crate::jwt::{Ed25519Material, retired_ed25519_publics};

/// The fewest distinct byte values a key may have (see [`is_low_entropy`]).
const MIN_DISTINCT_BYTES: usize = 16;

/// Every reason the configured keys are unfit for production, each naming its variable;
/// empty when there is none. Keys that do not parse are skipped: [`crate::AuthKeys::new`]
/// reports those.
pub fn production_problems(config: &KeyConfig, secrets: &ResolvedSecrets) -> Vec<KeyError> {
    let dev = DevMaterial::parse();
    let mut problems = Vec::new();
    let signing = secrets.jwt_signing_key.expose_secret();
    let retired = config
        .jwt_retired_keys
        .as_ref()
        .map(|keys| keys.expose_secret().to_owned())
        .unwrap_or_default();
    match config.jwt_algorithm {
        JwtAlgorithm::Eddsa => {
            if let Ok(key) = Ed25519Material::of_private_pem(signing) {
                if dev.public.as_ref() == Some(&key.public) {
                    problems.push(development("LABS_JWT_SIGNING_KEY", "jwt"));
                } else if key.seed.as_deref().is_some_and(is_low_entropy) {
                    problems.push(low_entropy("LABS_JWT_SIGNING_KEY", "jwt"));
                }
            }
            for public in retired_ed25519_publics(&retired).unwrap_or_default() {
                if dev.public.as_ref() == Some(&public) {
                    problems.push(KeyError::new(
                        "LABS_JWT_RETIRED_KEYS",
                        "holds the development public key: anyone can sign tokens it verifies"
                            .to_owned(),
                    ));
                }
            }
        }
        JwtAlgorithm::Hs256 => {
            if let Ok(key) = decode_base64("LABS_JWT_SIGNING_KEY", signing) {
                problems.extend(dev.judge("LABS_JWT_SIGNING_KEY", "hs256", &key));
            }
            for key in retired.split(',').filter(|key| !key.trim().is_empty()) {
                if let Ok(key) = decode_base64("LABS_JWT_RETIRED_KEYS", key) {
                    problems.extend(dev.judge("LABS_JWT_RETIRED_KEYS", "hs256", &key));
                }
            }
        }
    }
    // Every TOTP key, whatever its id and whether it is current or retired: a sealed secret
    // is only as safe as the weakest key that still opens it.
    for (_, key) in parse_key_list(secrets.totp_encryption_keys.expose_secret()).unwrap_or_default()
    {
        problems.extend(dev.judge("LABS_TOTP_ENCRYPTION_KEYS", "totp", &key));
    }
    if let Ok(key) = decode_base64("LABS_CODE_HASH_KEY", secrets.code_hash_key.expose_secret()) {
        problems.extend(dev.judge("LABS_CODE_HASH_KEY", "code-hash", &key));
    }
    problems
}

/// Whether `key` is too regular to be the random bytes a key must be. Any one of:
///
/// - fewer than 16 distinct byte values (all zeros, `aaaa…`, a short alphabet);
/// - a block of at most half its length, repeated (`abcabc…`);
/// - a constant step from each byte to the next (`0, 1, 2, …`);
/// - printable ASCII only (a passphrase put through base64, not random bytes).
///
/// Never true of a generated key in practice: 32 random bytes have fewer than 16 distinct
/// values with a probability of about 3·10⁻¹⁷, are all printable with one of about 2·10⁻¹⁴,
/// and the two patterns are rarer still. An entropy *estimate* was rejected: over 32 bytes it
/// cannot tell a random key from a good-looking pattern without refusing some random keys.
pub fn is_low_entropy(key: &[u8]) -> bool {
    let distinct = key.iter().collect::<BTreeSet<_>>().len();
    let repeated = (1..=key.len() / 2).any(|period| key[period..] == key[..key.len() - period]);
    let stepped = match key {
        [first, second, ..] => {
            let step = second.wrapping_sub(*first);
            key.windows(2)
                .all(|pair| pair[1].wrapping_sub(pair[0]) == step)
        }
        _ => true,
    };
    let text = key.iter().all(|byte| (0x20..0x7f).contains(byte));
    distinct < MIN_DISTINCT_BYTES || repeated || stepped || text
}

/// The development keys, parsed the way configured keys are.
struct DevMaterial {
    /// The public key of [`DEV_JWT_SIGNING_KEY`].
    public: Option<Vec<u8>>,
    /// The bytes of every development symmetric key (HS256, TOTP, code hash).
    symmetric: Vec<Vec<u8>>,
}

impl DevMaterial {
    fn parse() -> Self {
        let mut symmetric: Vec<Vec<u8>> = [DEV_JWT_HS256_SECRET, DEV_CODE_HASH_KEY]
            .iter()
            .filter_map(|key| decode_base64("", key).ok())
            .collect();
        symmetric.extend(
            parse_key_list(DEV_TOTP_ENCRYPTION_KEYS)
                .unwrap_or_default()
                .into_iter()
                .map(|(_, key)| key.to_vec()),
        );
        Self {
            public: Ed25519Material::of_private_pem(DEV_JWT_SIGNING_KEY)
                .ok()
                .map(|key| key.public),
            symmetric,
        }
    }

    /// What is wrong with the symmetric `key` of `variable`, if anything.
    fn judge(&self, variable: &'static str, kind: &str, key: &[u8]) -> Option<KeyError> {
        if self.symmetric.iter().any(|dev| crate::same(dev, key)) {
            Some(development(variable, kind))
        } else if is_low_entropy(key) {
            Some(low_entropy(variable, kind))
        } else {
            None
        }
    }
}

fn development(variable: &'static str, kind: &str) -> KeyError {
    KeyError::new(
        variable,
        format!(
            "is a development key (perhaps spelt differently); production needs its own \
             (`labs keys generate {kind}`)"
        ),
    )
}

fn low_entropy(variable: &'static str, kind: &str) -> KeyError {
    KeyError::new(
        variable,
        format!(
            "holds a key too regular to be random (see docs/SECURITY.md); generate one with \
             `labs keys generate {kind}`"
        ),
    )
}

#[cfg(test)]
mod tests;
