//! The settings a test application runs with: production defaults, short timeouts, the
//! development keys, namespaces of the test's own.

use std::time::Duration;

use labs_accounts::AuthConfig;
use labs_db::RedisConfig;
use labs_http::HttpConfig;
use secrecy::SecretString;

/// The origin tests' browsers are trusted from (CORS and CSRF).
pub const TRUSTED_ORIGIN: &str = "https://app.example.com";

/// The HTTP settings of a test application: free ports, short timeouts, docs on, the one
/// trusted origin.
pub fn http_config() -> HttpConfig {
    HttpConfig {
        bind: "127.0.0.1:0".parse().expect("an address"),
        metrics_bind: "127.0.0.1:0".parse().expect("an address"),
        root_path: "/api".to_owned(),
        request_timeout: Duration::from_secs(10),
        body_limit: 1024 * 1024,
        cors_origins: vec![TRUSTED_ORIGIN.to_owned()],
        shutdown_timeout: Duration::from_secs(5),
        header_read_timeout: Duration::from_secs(10),
        ready_timeout: Duration::from_millis(500),
        docs: true,
        hsts_max_age: Duration::from_secs(365 * 24 * 3600),
        hsts_include_subdomains: true,
        production: false,
    }
}

/// Redis timeouts short enough that a test of an outage does not wait long.
pub fn redis_config() -> RedisConfig {
    RedisConfig {
        redis_url: None,
        redis_response_timeout: Duration::from_millis(500),
        redis_connect_timeout: Duration::from_millis(300),
    }
}

/// The job queue on `redis_url` under `namespace`.
pub fn job_queue(redis_url: &str, namespace: &str) -> labs_jobs::JobQueue {
    let config = labs_jobs::JobsConfig {
        jobs_namespace: namespace.to_owned(),
        worker_concurrency: 4,
        dead_job_limit: 100,
    };
    labs_jobs::JobQueue::new(
        &SecretString::from(redis_url),
        &config,
        Duration::from_secs(2),
    )
    .expect("a valid Redis URL")
}

/// The worker's mailer: through the plain SMTP server on `smtp_port`, or, with `None`, into
/// the log (as in development).
pub fn mailer(smtp_port: Option<u16>) -> labs_worker::email::Mailer {
    labs_worker::email::Mailer::new(&labs_worker::email::MailConfig {
        smtp_url: smtp_port.map(|port| SecretString::from(format!("smtp://127.0.0.1:{port}"))),
        mail_from: "labs <noreply@labs.test>".to_owned(),
        smtp_timeout: Duration::from_secs(5),
        smtp_ca_file: None,
    })
    .expect("a valid mail configuration")
}

/// The api role's settings, parsed from command-line `settings` as `labs serve` parses them.
pub(crate) struct ApiSettings {
    pub(crate) auth: AuthConfig,
    pub(crate) features: labs_features::Settings,
}

/// Parses `settings` after a rate-limit namespace of the test's own, so that parallel tests
/// (and every run of the suite, which logs in as the same accounts) do not share budgets.
pub(crate) fn api_settings(settings: &[String]) -> ApiSettings {
    #[derive(clap::Parser)]
    struct Settings {
        #[command(flatten)]
        auth: AuthConfig,
        #[command(flatten)]
        features: labs_features::Settings,
    }
    let namespace = labs_testkit::unique_name("rl");
    let argv = ["labs", "--rate-limit-namespace", &namespace]
        .into_iter()
        .map(str::to_owned)
        .chain(settings.iter().cloned());
    let settings = <Settings as clap::Parser>::try_parse_from(argv)
        .unwrap_or_else(|error| panic!("test settings that labs would refuse: {error}"));
    ApiSettings {
        auth: settings.auth,
        features: settings.features,
    }
}

/// The development keys (what `labs serve` runs with when none are set).
pub(crate) fn development_keys(auth: &AuthConfig) -> labs_auth::AuthKeys {
    let secrets = labs_auth::config::ResolvedSecrets {
        jwt_signing_key: auth.keys.dev_signing_key().into(),
        totp_encryption_keys: labs_auth::config::DEV_TOTP_ENCRYPTION_KEYS.into(),
        code_hash_key: labs_auth::config::DEV_CODE_HASH_KEY.into(),
    };
    labs_auth::AuthKeys::new(&auth.keys, &secrets).expect("the development keys load")
}

/// The base state on `db` and the Redis at `redis_url`, with the test HTTP settings: for a
/// router without a worker (`labs::app::application`), where a `TestApp` cannot be (a
/// database that never answers).
pub fn state_with_redis(db: impl Into<labs_db::Db>, redis_url: &str) -> labs_http::AppState {
    base_state(db.into(), redis_url, &http_config())
}

/// The base state as `labs serve` builds it from `http`'s settings.
pub(crate) fn base_state(
    db: labs_db::Db,
    redis_url: &str,
    http: &HttpConfig,
) -> labs_http::AppState {
    let redis = labs_db::redis::connect_lazy(&SecretString::from(redis_url), &redis_config())
        .expect("a valid Redis URL");
    labs_http::AppState::new(
        db,
        redis,
        http.ready_timeout,
        http.root_path.clone(),
        http.docs,
    )
}

/// The hooks role's application, as `labs serve --role hooks` builds it: the health endpoints
/// and the webhook receivers `hooks`, under the middleware (no api routes, no worker).
pub fn hooks_role(state: labs_http::AppState, hooks: axum::Router) -> labs_http::HttpApp {
    labs::app::application(state, None, Some(hooks), &http_config())
}
