//! The production guard rails, on the real binary: `LABS_ENV=production` refuses to start
//! without the secrets its roles need (the database, Redis, the credential keys, SMTP for a
//! worker), with a development key in any spelling, a key too regular to be random, or a setting
//! production must not run with, and names the variable; with keys and settings of its own it
//! starts.

use std::time::Duration;

use crate::common::{Labs, refused, run_labs};
use labs_auth::config::{
    DEV_CODE_HASH_KEY, DEV_JWT_HS256_SECRET, DEV_JWT_SIGNING_KEY, DEV_TOTP_ENCRYPTION_KEYS,
    generate_symmetric_key,
};
use labs_auth::jwt::{generate_ed25519_pem, public_pem_of};
use labs_testkit::TempDatabase;

/// Production settings of the api role with keys of its own: each test spoils one.
fn own_settings() -> Vec<(&'static str, String)> {
    vec![
        ("LABS_ENV", "production".to_owned()),
        ("LABS_ROLES", "api".to_owned()),
        (
            "DATABASE_URL",
            "postgres://app:secret@db.internal/app".to_owned(),
        ),
        ("REDIS_URL", "redis://cache.internal:6379".to_owned()),
        ("LABS_JWT_SIGNING_KEY", generate_ed25519_pem().0),
        (
            "LABS_TOTP_ENCRYPTION_KEYS",
            format!("1:{}", generate_symmetric_key()),
        ),
        ("LABS_CODE_HASH_KEY", generate_symmetric_key()),
        ("LABS_APP_URL", "https://app.example.com/api".to_owned()),
    ]
}

fn with(
    mut settings: Vec<(&'static str, String)>,
    changes: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    for (variable, value) in changes {
        settings.retain(|(name, _)| name != variable);
        settings.push((variable, (*value).to_owned()));
    }
    settings
}

#[test]
fn production_refuses_the_development_keys_in_other_spellings_naming_the_variable() {
    let (_, dev_totp) = DEV_TOTP_ENCRYPTION_KEYS.split_once(':').unwrap();
    let dev_public = public_pem_of(DEV_JWT_SIGNING_KEY).unwrap();
    let crlf_pem = DEV_JWT_SIGNING_KEY.replace('\n', "\r\n");
    let indented_pem: String = DEV_JWT_SIGNING_KEY
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect();
    let retired_totp = format!("2:{},1:{dev_totp}", generate_symmetric_key());
    let renamed_totp = format!("7:{dev_totp}");
    let hs256_spaced = format!("{DEV_JWT_HS256_SECRET} ");
    let cases: [(&str, Vec<(&str, &str)>); 8] = [
        (
            "LABS_JWT_SIGNING_KEY",
            vec![("LABS_JWT_SIGNING_KEY", DEV_JWT_SIGNING_KEY.trim_end())],
        ),
        (
            "LABS_JWT_SIGNING_KEY",
            vec![("LABS_JWT_SIGNING_KEY", &crlf_pem)],
        ),
        (
            "LABS_JWT_SIGNING_KEY",
            vec![("LABS_JWT_SIGNING_KEY", &indented_pem)],
        ),
        (
            "LABS_JWT_RETIRED_KEYS",
            vec![("LABS_JWT_RETIRED_KEYS", &dev_public)],
        ),
        (
            "LABS_TOTP_ENCRYPTION_KEYS",
            vec![("LABS_TOTP_ENCRYPTION_KEYS", &renamed_totp)],
        ),
        (
            "LABS_TOTP_ENCRYPTION_KEYS",
            vec![("LABS_TOTP_ENCRYPTION_KEYS", &retired_totp)],
        ),
        (
            "LABS_CODE_HASH_KEY",
            vec![(
                "LABS_CODE_HASH_KEY",
                DEV_CODE_HASH_KEY.trim_end_matches('='),
            )],
        ),
        (
            "LABS_JWT_SIGNING_KEY",
            vec![
                ("LABS_JWT_ALGORITHM", "hs256"),
                ("LABS_JWT_SIGNING_KEY", &hs256_spaced),
            ],
        ),
    ];
    for (variable, changes) in cases {
        let stderr = refused(&with(own_settings(), &changes));
        assert!(
            stderr.contains(variable) && stderr.contains("development"),
            "{changes:?} should be refused naming {variable}: {stderr}"
        );
    }
}

#[test]
fn production_refuses_weak_keys_and_settings_naming_each_variable() {
    let zeros = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let stderr = refused(&with(
        own_settings(),
        &[
            ("LABS_CODE_HASH_KEY", zeros),
            ("LABS_COOKIE_SECURE", "false"),
            ("LABS_ARGON2_MEMORY_KIB", "4096"),
            ("LABS_ACCESS_TOKEN_TTL", "1d"),
            ("LABS_TRUSTED_PROXIES", "10.0.0.0/8,0.0.0.0/0"),
        ],
    ));
    assert!(stderr.contains("LABS_CODE_HASH_KEY"), "{stderr}");
    assert!(stderr.contains("too regular"), "{stderr}");
    // The settings are listed together, once the keys are fixed.
    let stderr = refused(&with(
        own_settings(),
        &[
            ("LABS_COOKIE_SECURE", "false"),
            ("LABS_ARGON2_MEMORY_KIB", "4096"),
            ("LABS_ACCESS_TOKEN_TTL", "1d"),
            ("LABS_TRUSTED_PROXIES", "10.0.0.0/8,::/0"),
        ],
    ));
    for variable in [
        "LABS_COOKIE_SECURE",
        "LABS_ARGON2_MEMORY_KIB",
        "LABS_ACCESS_TOKEN_TTL",
        "LABS_TRUSTED_PROXIES",
    ] {
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[tokio::test]
async fn production_starts_with_keys_and_settings_of_its_own() {
    let database = TempDatabase::new("production");
    let (status, _, stderr) = run_labs(&["migrate"], &[("DATABASE_URL", &database.url)]);
    assert!(status.success(), "{stderr}");
    let (_, old_public) = generate_ed25519_pem();
    let settings = with(
        own_settings(),
        &[
            ("DATABASE_URL", &database.url),
            ("LABS_JWT_RETIRED_KEYS", &old_public),
            ("LABS_TRUSTED_PROXIES", "10.0.0.0/8,fd00::/8"),
            // The local Redis, spelt otherwise than the development default.
            ("REDIS_URL", "redis://localhost:6379"),
        ],
    );
    let env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Labs::serve(&env);
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(10)).success());
}

#[test]
fn production_refuses_to_start_without_its_secrets() {
    let (status, _, stderr) = run_labs(&["serve"], &[("LABS_ENV", "production")]);
    assert!(!status.success());
    assert!(stderr.contains("DATABASE_URL must be set"), "{stderr}");

    let (status, _, stderr) = run_labs(
        &["serve"],
        &[
            ("LABS_ENV", "production"),
            ("DATABASE_URL", "postgres://app:secret@db.internal/app"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("REDIS_URL is set to the development default"),
        "{stderr}"
    );
}

#[test]
fn a_production_api_refuses_to_start_without_its_credential_keys() {
    let urls = [
        ("LABS_ENV", "production"),
        ("DATABASE_URL", "postgres://app:secret@db.internal/app"),
        ("REDIS_URL", "redis://cache.internal:6379"),
    ];
    let (status, _, stderr) = run_labs(&["serve", "--role", "api"], &urls);
    assert!(!status.success());
    assert!(
        stderr.contains("LABS_JWT_SIGNING_KEY must be set"),
        "{stderr}"
    );

    let mut with_dev_key = urls.to_vec();
    with_dev_key.push((
        "LABS_JWT_SIGNING_KEY",
        labs_auth::config::DEV_JWT_SIGNING_KEY,
    ));
    let (status, _, stderr) = run_labs(&["serve", "--role", "api"], &with_dev_key);
    assert!(!status.success());
    assert!(
        stderr.contains("LABS_JWT_SIGNING_KEY is set to the development default"),
        "{stderr}"
    );

    let (status, stdout, _) = run_labs(&["keys", "generate", "jwt"], &[]);
    assert!(status.success());
    let own_key = stdout
        .split("# its public key")
        .next()
        .unwrap()
        .trim_start_matches("# LABS_JWT_SIGNING_KEY\n")
        .to_owned();
    let mut with_bad_totp = urls.to_vec();
    with_bad_totp.push(("LABS_JWT_SIGNING_KEY", &own_key));
    with_bad_totp.push(("LABS_TOTP_ENCRYPTION_KEYS", "1:c2hvcnQ="));
    with_bad_totp.push(("LABS_CODE_HASH_KEY", "c2hvcnQ="));
    let (status, _, stderr) = run_labs(&["serve", "--role", "api"], &with_bad_totp);
    assert!(!status.success());
    assert!(stderr.contains("LABS_TOTP_ENCRYPTION_KEYS"), "{stderr}");
}

#[test]
fn a_production_worker_refuses_to_start_without_smtp() {
    let (status, _, stderr) = run_labs(
        &["serve", "--role", "worker"],
        &[
            ("LABS_ENV", "production"),
            ("DATABASE_URL", "postgres://app:secret@db.internal/app"),
            ("REDIS_URL", "redis://cache.internal:6379"),
        ],
    );
    assert!(!status.success());
    assert!(stderr.contains("LABS_SMTP_URL must be set"), "{stderr}");
}

/// Without `LABS_APP_URL`, every email would link to the development default (localhost):
/// production refuses to start and says which variable to set.
#[test]
fn a_production_api_refuses_to_start_without_the_app_url_its_emails_link_to() {
    let mut settings = own_settings();
    settings.retain(|(name, _)| *name != "LABS_APP_URL");
    let stderr = refused(&settings);
    assert!(
        stderr.contains("LABS_APP_URL must be set when LABS_ENV=production"),
        "{stderr}"
    );
}
