//! Unit tests of `material` (a file of their own, so that the module reads in one screen).

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
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
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
