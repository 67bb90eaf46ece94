//! The secrets `serve` resolves and checks before its roles start: development defaults in
//! development, set explicitly (and not the development ones) in production.

use labs_auth::config::{DEV_CODE_HASH_KEY, DEV_TOTP_ENCRYPTION_KEYS, ResolvedSecrets};
use labs_auth::{AuthKeys, KeyConfig};

use crate::cli::Environment;
use crate::settings::required_secret;
// template:begin stripe
use labs_billing::{DEV_STRIPE_WEBHOOK_SECRET, HooksConfig};
use secrecy::{ExposeSecret, SecretString};
// template:end stripe

/// The credential keys, each secret resolved like every other (development default, or set
/// explicitly in production), then checked.
pub(super) fn auth_keys(env: Environment, config: &KeyConfig) -> anyhow::Result<AuthKeys> {
    let secrets = ResolvedSecrets {
        jwt_signing_key: required_secret(
            env,
            "LABS_JWT_SIGNING_KEY",
            config.jwt_signing_key.as_ref(),
            config.dev_signing_key(),
        )?,
        totp_encryption_keys: required_secret(
            env,
            "LABS_TOTP_ENCRYPTION_KEYS",
            config.totp_encryption_keys.as_ref(),
            DEV_TOTP_ENCRYPTION_KEYS,
        )?,
        code_hash_key: required_secret(
            env,
            "LABS_CODE_HASH_KEY",
            config.code_hash_key.as_ref(),
            DEV_CODE_HASH_KEY,
        )?,
    };
    let keys = AuthKeys::new(config, &secrets)?;
    if env.is_production() {
        let problems: Vec<String> = labs_auth::material::production_problems(config, &secrets)
            .iter()
            .map(ToString::to_string)
            .collect();
        crate::production::refuse(&problems)?;
    }
    Ok(keys)
}

// template:begin stripe
/// The Stripe webhook secrets: the development secret when none is set in development; in
/// production at least one, none of them the development one.
pub(super) fn webhook_secrets(
    env: Environment,
    config: &HooksConfig,
) -> anyhow::Result<Vec<SecretString>> {
    let secrets: Vec<SecretString> = config
        .stripe_webhook_secrets
        .iter()
        .filter(|secret| !secret.expose_secret().trim().is_empty())
        .cloned()
        .collect();
    if secrets.is_empty() {
        return Ok(vec![required_secret(
            env,
            "LABS_STRIPE_WEBHOOK_SECRETS",
            None,
            DEV_STRIPE_WEBHOOK_SECRET,
        )?]);
    }
    for secret in &secrets {
        required_secret(
            env,
            "LABS_STRIPE_WEBHOOK_SECRETS",
            Some(secret),
            DEV_STRIPE_WEBHOOK_SECRET,
        )?;
        if env.is_production() && is_dev_webhook_secret(secret.expose_secret()) {
            anyhow::bail!(
                "LABS_STRIPE_WEBHOOK_SECRETS holds the development secret (spelt differently); \
                 production needs the signing secret of its Stripe endpoint"
            );
        }
    }
    Ok(secrets)
}

/// Whether `secret` is the development webhook secret up to spelling: surrounding whitespace,
/// letter case, with or without Stripe's `whsec_` prefix.
fn is_dev_webhook_secret(secret: &str) -> bool {
    let normal = |secret: &str| {
        let secret = secret.trim().to_ascii_lowercase();
        secret
            .strip_prefix("whsec_")
            .map_or(secret.clone(), str::to_owned)
    };
    normal(secret) == normal(DEV_STRIPE_WEBHOOK_SECRET)
}
// template:end stripe

#[cfg(test)]
mod tests {
    // template:begin stripe
    #[test]
    fn the_development_webhook_secret_is_recognised_in_any_spelling() {
        for spelt in [
            "whsec_development_only",
            "whsec_development_only ",
            "\twhsec_development_only\n",
            "WHSEC_DEVELOPMENT_ONLY",
            "development_only",
        ] {
            assert!(super::is_dev_webhook_secret(spelt), "{spelt:?}");
        }
        assert!(!super::is_dev_webhook_secret("whsec_9f8e7d6c5b4a"));
    }
    // template:end stripe
}
