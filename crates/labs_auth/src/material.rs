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
mod tests {
    use base64::Engine;

    use super::*;
    use crate::config::generate_symmetric_key;
    use crate::jwt::{generate_ed25519_pem, public_pem_of};

    /// The settings as the binary parses them (from arguments, so that the test does not
    /// depend on the environment or on fields added later).
    fn config(algorithm: JwtAlgorithm, retired: Option<&str>) -> KeyConfig {
        #[derive(clap::Parser)]
        struct Settings {
            #[command(flatten)]
            keys: KeyConfig,
        }
        let algorithm = match algorithm {
            JwtAlgorithm::Eddsa => "eddsa",
            JwtAlgorithm::Hs256 => "hs256",
        };
        let mut argv = vec!["labs".to_owned(), format!("--jwt-algorithm={algorithm}")];
        // `=`: a PEM value starts with dashes, which would read as an option.
        argv.extend(retired.map(|retired| format!("--jwt-retired-keys={retired}")));
        <Settings as clap::Parser>::parse_from(argv).keys
    }

    /// Production-grade keys of every kind, freshly generated.
    fn own_secrets(signing: &str) -> ResolvedSecrets {
        ResolvedSecrets {
            jwt_signing_key: signing.into(),
            totp_encryption_keys: format!("1:{}", generate_symmetric_key()).into(),
            code_hash_key: generate_symmetric_key().into(),
        }
    }

    fn own_eddsa() -> ResolvedSecrets {
        own_secrets(&generate_ed25519_pem().0)
    }

    /// The variables `problems` names; each problem must also parse as a key first
    /// (`AuthKeys::new` accepts it), or the test would prove nothing about re-encodings.
    fn named(config: &KeyConfig, secrets: &ResolvedSecrets) -> Vec<&'static str> {
        crate::AuthKeys::new(config, secrets).expect("the keys parse");
        production_problems(config, secrets)
            .iter()
            .map(|problem| problem.variable)
            .collect()
    }

    fn reencode_std_to_url_unpadded(key: &str) -> String {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn the_development_keys_parse_as_material() {
        let dev = DevMaterial::parse();
        assert!(dev.public.is_some());
        assert_eq!(dev.symmetric.len(), 3);
    }

    #[test]
    fn own_keys_pass() {
        assert!(named(&config(JwtAlgorithm::Eddsa, None), &own_eddsa()).is_empty());
        let (_, old_public) = generate_ed25519_pem();
        assert!(
            named(
                &config(JwtAlgorithm::Eddsa, Some(&old_public)),
                &own_eddsa()
            )
            .is_empty()
        );
        let hs256 = own_secrets(&generate_symmetric_key());
        let retired = generate_symmetric_key();
        assert!(named(&config(JwtAlgorithm::Hs256, Some(&retired)), &hs256).is_empty());
    }

    #[test]
    fn the_development_signing_pem_is_refused_in_any_layout() {
        let dev = DEV_JWT_SIGNING_KEY;
        let indented: String = dev.lines().map(|line| format!("  {line}\n")).collect();
        for variant in [
            dev.to_owned(),
            dev.trim_end().to_owned(),
            dev.replace('\n', "\r\n"),
            indented,
            format!("\n\n{dev}\n\n"),
        ] {
            let secrets = own_secrets(&variant);
            assert_eq!(
                named(&config(JwtAlgorithm::Eddsa, None), &secrets),
                ["LABS_JWT_SIGNING_KEY"],
                "{variant:?}"
            );
        }
    }

    #[test]
    fn the_development_signing_key_is_refused_as_a_pkcs8_v2_document() {
        use aws_lc_rs::signature::Ed25519KeyPair;
        let v1 = Ed25519Material::of_private_pem(DEV_JWT_SIGNING_KEY).unwrap();
        // The same key, written with its public key inside (RFC 5958), as some tools write it.
        let v2 = Ed25519KeyPair::from_pkcs8(&v1.pkcs8)
            .unwrap()
            .to_pkcs8()
            .unwrap();
        assert_ne!(v2.as_ref(), v1.pkcs8.as_slice());
        let body = base64::engine::general_purpose::STANDARD.encode(v2.as_ref());
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
        assert_eq!(
            Ed25519Material::of_private_pem(&pem).unwrap().seed,
            v1.seed,
            "the seed is found in both layouts"
        );
        assert_eq!(
            named(&config(JwtAlgorithm::Eddsa, None), &own_secrets(&pem)),
            ["LABS_JWT_SIGNING_KEY"]
        );
    }

    #[test]
    fn the_development_public_key_is_refused_as_a_retired_key() {
        let dev_public = public_pem_of(DEV_JWT_SIGNING_KEY).unwrap();
        let (_, other_public) = generate_ed25519_pem();
        for retired in [
            dev_public.clone(),
            dev_public.trim_end().replace('\n', "\r\n"),
            format!("{other_public}{dev_public}"),
        ] {
            assert_eq!(
                named(&config(JwtAlgorithm::Eddsa, Some(&retired)), &own_eddsa()),
                ["LABS_JWT_RETIRED_KEYS"],
                "{retired:?}"
            );
        }
    }

    #[test]
    fn the_development_hs256_secret_is_refused_in_any_spelling_current_or_retired() {
        let dev = DEV_JWT_HS256_SECRET;
        for variant in [
            dev.to_owned(),
            format!("{dev} "),
            format!(" {dev}\n"),
            reencode_std_to_url_unpadded(dev),
        ] {
            let secrets = own_secrets(&variant);
            assert_eq!(
                named(&config(JwtAlgorithm::Hs256, None), &secrets),
                ["LABS_JWT_SIGNING_KEY"],
                "{variant:?}"
            );
            let retired = format!("{},{variant}", generate_symmetric_key());
            let secrets = own_secrets(&generate_symmetric_key());
            assert_eq!(
                named(&config(JwtAlgorithm::Hs256, Some(&retired)), &secrets),
                ["LABS_JWT_RETIRED_KEYS"],
                "{variant:?}"
            );
        }
    }

    #[test]
    fn the_development_code_hash_key_is_refused_in_any_spelling() {
        let dev = DEV_CODE_HASH_KEY;
        for variant in [
            dev.to_owned(),
            dev.trim_end_matches('=').to_owned(),
            format!("{dev} "),
            reencode_std_to_url_unpadded(dev),
        ] {
            let mut secrets = own_eddsa();
            secrets.code_hash_key = variant.as_str().into();
            assert_eq!(
                named(&config(JwtAlgorithm::Eddsa, None), &secrets),
                ["LABS_CODE_HASH_KEY"],
                "{variant:?}"
            );
        }
    }

    #[test]
    fn the_development_totp_key_is_refused_under_any_id_current_or_retired() {
        let (_, dev_key) = DEV_TOTP_ENCRYPTION_KEYS.split_once(':').unwrap();
        let own = generate_symmetric_key();
        for variant in [
            DEV_TOTP_ENCRYPTION_KEYS.to_owned(),
            format!("7:{dev_key}"),
            format!("2:{own},1:{dev_key}"),
            format!("2:{own}, 9:{} ", dev_key.trim_end_matches('=')),
            format!("3:{own},4:{}", reencode_std_to_url_unpadded(dev_key)),
        ] {
            let mut secrets = own_eddsa();
            secrets.totp_encryption_keys = variant.as_str().into();
            assert_eq!(
                named(&config(JwtAlgorithm::Eddsa, None), &secrets),
                ["LABS_TOTP_ENCRYPTION_KEYS"],
                "{variant:?}"
            );
        }
    }

    #[test]
    fn a_development_key_of_one_kind_is_refused_in_another_slot() {
        let mut secrets = own_eddsa();
        secrets.code_hash_key = DEV_JWT_HS256_SECRET.into();
        assert_eq!(
            named(&config(JwtAlgorithm::Eddsa, None), &secrets),
            ["LABS_CODE_HASH_KEY"]
        );
    }

    #[test]
    fn low_entropy_keys_are_refused_naming_their_variable() {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let stepped: Vec<u8> = (0..32).collect();
        let text = b"my-production-hs256-secret-2026!";
        for weak in [
            [0_u8; 32].to_vec(),
            [0xff_u8; 32].to_vec(),
            b"abcabcabcabcabcabcabcabcabcabcab".to_vec(),
            b"0123456789abcdef0123456789abcdef".to_vec(),
            stepped,
            text.to_vec(),
        ] {
            assert!(is_low_entropy(&weak), "{weak:?}");
            let mut secrets = own_secrets(&b64(&weak));
            secrets.code_hash_key = b64(&weak).into();
            secrets.totp_encryption_keys =
                format!("1:{},2:{}", generate_symmetric_key(), b64(&weak)).into();
            assert_eq!(
                named(&config(JwtAlgorithm::Hs256, None), &secrets),
                [
                    "LABS_JWT_SIGNING_KEY",
                    "LABS_TOTP_ENCRYPTION_KEYS",
                    "LABS_CODE_HASH_KEY"
                ],
                "{weak:?}"
            );
        }
    }

    #[test]
    fn an_ed25519_key_with_an_all_zero_seed_is_refused() {
        let mut pkcs8 = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        pkcs8.extend_from_slice(&[0; 32]);
        let body = base64::engine::general_purpose::STANDARD.encode(pkcs8);
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
        assert_eq!(
            named(&config(JwtAlgorithm::Eddsa, None), &own_secrets(&pem)),
            ["LABS_JWT_SIGNING_KEY"]
        );
    }

    #[test]
    fn generated_keys_are_never_judged_low_entropy() {
        for _ in 0..20_000 {
            let key = generate_symmetric_key();
            let bytes = decode_base64("", &key).unwrap();
            assert!(!is_low_entropy(&bytes), "{key}");
        }
        for _ in 0..200 {
            let (private, _) = generate_ed25519_pem();
            let seed = Ed25519Material::of_private_pem(&private).unwrap().seed;
            assert!(!is_low_entropy(&seed.unwrap()));
        }
    }
}
