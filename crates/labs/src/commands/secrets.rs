//! The secrets `serve` resolves and checks before its roles start: development defaults in
//! development, set explicitly (and not the development ones) in production.

use labs_auth::config::{DEV_CODE_HASH_KEY, DEV_TOTP_ENCRYPTION_KEYS, ResolvedSecrets};
use labs_auth::{AuthKeys, KeyConfig};

use crate::cli::Environment;
use crate::settings::required_secret;

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
