//! From raw settings to checked values: `.env` in development, development defaults for
//! URLs, and the production rule that every secret is set explicitly.

use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::cli::Environment;

/// Reads `.env` (if there is one) into the environment, except in production, where
/// configuration comes from the orchestrator only. Variables already set win.
pub fn load_dotenv() {
    #[expect(
        clippy::disallowed_methods,
        reason = "LABS_ENV must be known before clap parses, to decide whether .env applies"
    )]
    let production =
        std::env::var("LABS_ENV").is_ok_and(|env| env.eq_ignore_ascii_case("production"));
    if !production {
        // A missing file is the normal case; a malformed one is reported by the variables
        // it fails to set.
        let _ = dotenvy::dotenv();
    }
}

/// A secret the process cannot run without: in development it falls back to the local
/// default; in production it must be set, and not to the development value.
///
/// The comparison ignores surrounding whitespace (a trailing newline from a secrets file is
/// the same secret). It is only the first line of defence: keys are also compared as parsed
/// material (`labs_auth::material`), which no respelling escapes.
pub fn required_secret(
    env: Environment,
    variable: &str,
    value: Option<&SecretString>,
    development_default: &str,
) -> anyhow::Result<SecretString> {
    match (value, env) {
        (Some(value), Environment::Production)
            if value.expose_secret().trim() == development_default.trim() =>
        {
            anyhow::bail!(
                "{variable} is set to the development default; production needs its own value"
            )
        }
        (Some(value), _) if value.expose_secret().trim().is_empty() => {
            anyhow::bail!("{variable} is empty")
        }
        (Some(value), _) => Ok(value.clone()),
        (None, Environment::Development) => Ok(SecretString::from(development_default)),
        (None, Environment::Production) => {
            anyhow::bail!("{variable} must be set when LABS_ENV=production")
        }
    }
}

/// A token cancelled at the first SIGTERM or SIGINT: every role stops taking work and drains.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(signal, "shutdown requested");
        cancel.cancel();
    });
    token
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process can still be killed; it just cannot drain.
        tracing::error!("cannot listen for SIGTERM/SIGINT; graceful shutdown is off");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "postgres://postgres@127.0.0.1:5432/labs";

    #[test]
    fn development_falls_back_to_the_local_default() {
        let url = required_secret(Environment::Development, "DATABASE_URL", None, DEV).unwrap();
        assert_eq!(url.expose_secret(), DEV);
    }

    #[test]
    fn production_names_the_missing_variable() {
        let error =
            required_secret(Environment::Production, "DATABASE_URL", None, DEV).unwrap_err();
        assert!(error.to_string().contains("DATABASE_URL"), "{error}");
    }

    #[test]
    fn production_refuses_the_development_value() {
        let dev = SecretString::from(DEV);
        let error =
            required_secret(Environment::Production, "DATABASE_URL", Some(&dev), DEV).unwrap_err();
        assert!(error.to_string().contains("DATABASE_URL"), "{error}");
        assert!(error.to_string().contains("development default"), "{error}");
    }

    #[test]
    fn production_refuses_the_development_value_with_whitespace_around_it() {
        for spelt in [
            format!("{DEV}\n"),
            format!("  {DEV} "),
            format!("{DEV}\r\n"),
        ] {
            let dev = SecretString::from(spelt);
            let error = required_secret(Environment::Production, "DATABASE_URL", Some(&dev), DEV)
                .unwrap_err();
            assert!(error.to_string().contains("development default"), "{error}");
        }
    }

    #[test]
    fn production_accepts_its_own_value() {
        let own = SecretString::from("postgres://app:s3cret@db.internal/app");
        let url =
            required_secret(Environment::Production, "DATABASE_URL", Some(&own), DEV).unwrap();
        assert_eq!(url.expose_secret(), own.expose_secret());
    }
}
