//! The accounts' state ([`Accounts`]: the pool, [`Auth`], the limits), and the settings it is
//! built from.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use labs_auth::{AuthKeys, KeyConfig};
use labs_db::ratelimit::{Limiter, Quota};
use labs_db::{Db, RedisConnection};
use labs_http::csrf::TrustedOrigins;

/// Authentication settings (the keys are in [`KeyConfig`], flattened here).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Authentication")]
pub struct AuthConfig {
    #[command(flatten)]
    pub keys: KeyConfig,

    /// Lifetime of a refresh token (each use replaces it with a new one).
    #[arg(long, env = "LABS_REFRESH_TOKEN_TTL", default_value = "30d", value_parser = humantime::parse_duration)]
    pub refresh_token_ttl: Duration,

    /// Absolute lifetime of a session (a refresh-token family), counted from its login:
    /// rotating the refresh token cannot extend it, so a stolen token family dies with it.
    #[arg(long, env = "LABS_SESSION_MAX_LIFETIME", default_value = "30d", value_parser = humantime::parse_duration)]
    pub session_max_lifetime: Duration,

    /// Lifetime of the challenge between the password and the TOTP step of a login.
    #[arg(long, env = "LABS_MFA_CHALLENGE_TTL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub mfa_challenge_ttl: Duration,

    /// Lifetime of an emailed login code.
    #[arg(long, env = "LABS_EMAIL_OTP_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub email_otp_ttl: Duration,

    /// Attempts allowed against one login code, MFA challenge or verification link (each
    /// counted before it is checked, so concurrent requests cannot exceed it) before it dies.
    #[arg(long, env = "LABS_MAX_CODE_ATTEMPTS", default_value_t = 5)]
    pub max_code_attempts: i32,

    /// Lifetime of an email-verification link.
    #[arg(long, env = "LABS_VERIFY_EMAIL_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub verify_email_ttl: Duration,

    /// Lifetime of a password-reset link.
    #[arg(long, env = "LABS_RESET_PASSWORD_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub reset_password_ttl: Duration,

    /// Refuse password and code logins until the email address is verified.
    #[arg(long, env = "LABS_REQUIRE_VERIFIED_EMAIL", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_verified_email: bool,

    /// Base URL of the web app that email links point to (`<url>/verify-email?token=...`,
    /// `<url>/reset-password?token=...`). Unset: the pages this process serves itself,
    /// `http://localhost:<the port of LABS_BIND><LABS_ROOT_PATH>` (`http://localhost:8080/api`
    /// by default). A web app of your own that serves those two paths replaces them.
    #[arg(long, env = "LABS_APP_URL")]
    pub app_url: Option<String>,

    /// The issuer name authenticator apps show next to TOTP codes.
    #[arg(long, env = "LABS_TOTP_ISSUER", default_value = "labs")]
    pub totp_issuer: String,

    /// Mark auth cookies `Secure` (sent over HTTPS only; browsers also accept them on
    /// http://localhost), named with the `__Host-` prefix. Turn off only for plain-HTTP
    /// development on another host name (production refuses to start with it off).
    #[arg(long, env = "LABS_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,

    /// Peers whose `X-Forwarded-For` is believed (CIDRs, comma-separated): the reverse proxy.
    /// The client IP (for rate limits) is the right-most address not in this list.
    #[arg(
        long,
        env = "LABS_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = "127.0.0.1/32,::1/128"
    )]
    pub trusted_proxies: Vec<IpNet>,

    /// Credential attempts allowed per client IP, per endpoint family (`count/period`).
    #[arg(long, env = "LABS_RATE_LIMIT_PER_IP", default_value = "30/1m")]
    pub rate_limit_per_ip: Quota,

    /// Requests allowed per account (email), per endpoint family, on the endpoints that send
    /// email or create something (signup, reset, email codes, verification, TOTP set-up).
    #[arg(long, env = "LABS_RATE_LIMIT_PER_ACCOUNT", default_value = "10/15m")]
    pub rate_limit_per_account: Quota,

    /// Wrong passwords (or emailed codes) allowed against one account from one client (an IPv4
    /// address or IPv6 prefix). Right ones are not counted, so strangers' failures never spend
    /// the owner's budget.
    #[arg(
        long,
        env = "LABS_RATE_LIMIT_FAILURES_PER_CLIENT",
        default_value = "10/15m"
    )]
    pub rate_limit_failures_per_client: Quota,

    /// Wrong passwords (or emailed codes) allowed against one account from all clients
    /// together: the ceiling on distributed guessing. Clients that logged in to the account
    /// before (within the refresh-token lifetime) are exempt; others, the owner on a new client
    /// included, are refused while it is spent.
    #[arg(
        long,
        env = "LABS_RATE_LIMIT_FAILURES_PER_ACCOUNT",
        default_value = "100/15m"
    )]
    pub rate_limit_failures_per_account: Quota,

    /// Length of the IPv6 prefix that counts as one client (a subscriber usually gets a whole
    /// /64); 128 counts each address apart.
    #[arg(
        long,
        env = "LABS_RATE_LIMIT_IPV6_PREFIX",
        default_value_t = 64,
        value_parser = clap::value_parser!(u8).range(1..=128)
    )]
    pub rate_limit_ipv6_prefix: u8,

    /// Emails sent to one address, of every kind together (read by the worker role, which
    /// drops what is over it). Bounds what anyone can make the service send to a stranger.
    #[arg(
        long,
        env = "LABS_RATE_LIMIT_EMAILS_PER_ADDRESS",
        default_value = "5/1h"
    )]
    pub rate_limit_emails_per_address: Quota,

    /// API replicas that share the limits: while Redis does not answer, each replica enforces
    /// its share of every quota (the quota divided by this) in its own memory. Set it to the
    /// api Deployment's replica count.
    #[arg(long, env = "LABS_RATE_LIMIT_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_replicas: u32,

    /// How long a rate-limit decision waits for Redis before this replica decides it alone.
    #[arg(long, env = "LABS_RATE_LIMIT_REDIS_DEADLINE", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub rate_limit_redis_deadline: Duration,

    /// Prefix of the rate-limit keys in Redis.
    #[arg(long, env = "LABS_RATE_LIMIT_NAMESPACE", default_value = "labs:rl")]
    pub rate_limit_namespace: String,
}

/// Keys and policy, built once.
#[derive(Debug)]
pub struct Auth {
    pub keys: AuthKeys,
    pub config: AuthConfig,
    /// The base of the links emails carry: `LABS_APP_URL`, else this service's own pages
    /// ([`crate::links::local_app_url`]). Without a trailing slash.
    pub app_url: String,
    pub trusted_origins: TrustedOrigins,
    /// The names and paths of the session cookies.
    pub cookies: CookieNames,
    /// The threads that hash passwords (see [`HashPool`]).
    pub hashing: HashPool,
    /// Access tokens already verified (see [`VerifiedTokens`]).
    pub verified: VerifiedTokens,
}

impl Auth {
    pub fn new(
        keys: AuthKeys,
        config: AuthConfig,
        cors_origins: &[String],
        root_path: &str,
    ) -> Self {
        let cookie_secure = config.cookie_secure;
        // `serve` fills in the port it bound; anyone else building the state (tests, tools)
        // gets the port `LABS_BIND` has by default.
        let app_url = config.app_url.clone().map_or_else(
            || crate::links::local_app_url(crate::links::DEFAULT_PORT, root_path),
            |url| url.trim_end_matches('/').to_owned(),
        );
        Self {
            keys,
            config,
            app_url,
            trusted_origins: TrustedOrigins::new(cors_origins),
            cookies: CookieNames::new(cookie_secure, root_path),
            verified: VerifiedTokens::default(),
            hashing: HashPool::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            ),
        }
    }

    pub(crate) fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    }
}

/// The session cookies' names and the refresh cookie's path.
///
/// With `Secure` cookies (the default, and always in production) both names carry the
/// `__Host-` prefix: browsers then accept them only with `Secure`, `Path=/` and no `Domain`, so
/// a sibling subdomain cannot plant or overwrite them (cookie tossing). The price is that the
/// refresh cookie's path is `/` (the prefix demands it) instead of the auth routes alone: it is
/// `HttpOnly` and `SameSite=Lax`, and only `/auth/refresh` and `/auth/logout` read it. Without
/// `Secure` (plain-HTTP development) the prefix is not allowed, and the refresh cookie keeps
/// the narrow path.
#[derive(Debug, Clone)]
pub struct CookieNames {
    pub access: String,
    pub refresh: String,
    pub refresh_path: String,
}

impl CookieNames {
    fn new(secure: bool, root_path: &str) -> Self {
        if secure {
            Self {
                access: "__Host-labs_access".to_owned(),
                refresh: "__Host-labs_refresh".to_owned(),
                refresh_path: "/".to_owned(),
            }
        } else {
            Self {
                access: "labs_access".to_owned(),
                refresh: "labs_refresh".to_owned(),
                refresh_path: format!("{root_path}/auth"),
            }
        }
    }
}

/// What the accounts endpoints reach: the pool, the keys and policy, the limits. One `Arc`:
/// axum clones the state for every request, and cloning the parts one by one showed in
/// profiles as a few percent of a whole request. The application's state offers it by
/// `FromRef` (the extractors need only this part), so this crate never names that state.
#[derive(Debug, Clone)]
pub struct Accounts(Arc<AccountsParts>);

/// The parts of [`Accounts`].
#[derive(Debug)]
pub struct AccountsParts {
    pub db: Db,
    pub auth: Arc<Auth>,
    /// The credential endpoints' rate limits (Redis, falling back to this process).
    pub limiter: Limiter,
}

impl Accounts {
    /// The accounts' part, from its keys and settings: `serve` and the tests build it so.
    pub fn new(
        db: Db,
        redis: RedisConnection,
        keys: AuthKeys,
        config: AuthConfig,
        cors_origins: &[String],
        root_path: &str,
    ) -> Self {
        let limiter = Limiter::new(
            redis,
            config.rate_limit_redis_deadline,
            config.rate_limit_replicas,
        );
        let auth = Auth::new(keys, config, cors_origins, root_path);
        Self(Arc::new(AccountsParts {
            db,
            auth: Arc::new(auth),
            limiter,
        }))
    }
}

impl std::ops::Deref for Accounts {
    type Target = AccountsParts;

    fn deref(&self) -> &AccountsParts {
        &self.0
    }
}

type HashJob = Box<dyn FnOnce() + Send>;

/// A fixed set of threads, one per CPU, that run password hashes (argon2id: tens of
/// milliseconds of CPU and 12 MiB of memory each by default).
///
/// Why not `spawn_blocking`: its pool grows to hundreds of threads under a burst of logins, and
/// each thread's allocator arena keeps the memory of the hash it last ran, so a burst left the
/// process at 400 MiB (measured, docs/PERFORMANCE.md). Here the memory is bounded by the thread count, and
/// more concurrent hashes than CPUs would not finish any sooner anyway: the rest wait in the
/// queue (a job whose request has gone away is skipped).
pub struct HashPool {
    jobs: std::sync::mpsc::Sender<HashJob>,
    threads: usize,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("threads", &self.threads)
            .finish()
    }
}

impl HashPool {
    pub fn new(threads: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<HashJob>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for index in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("labs-hash-{index}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let next = queue
                            .lock()
                            .map_err(|_| ())
                            .and_then(|q| q.recv().map_err(|_| ()));
                        match next {
                            Ok(job) => job(),
                            Err(()) => return,
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password-hashing thread");
            }
        }
        Self { jobs, threads }
    }

    /// Runs `work` on a hashing thread and waits for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, labs_http::ApiError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: HashJob = Box::new(move || {
            if !done.is_closed() {
                let _ = done.send(work());
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| labs_http::ApiError::internal("the password-hashing threads are gone"))?;
        result
            .await
            .map_err(|_| labs_http::ApiError::internal("a password-hashing thread failed"))
    }
}

/// Access tokens whose signature and claims were checked, with their claims, until they expire.
///
/// An Ed25519 verification costs about as much as the rest of an authenticated request; a client
/// sends the same token many times in its 15 minutes. A hit skips only the signature check: the
/// session and account are still read on every request, so logout stays immediate. The key is
/// the whole token (no hash collisions), an entry is used only before its `exp` (never the
/// verifier's leeway), and keys only change with the configuration, that is on a restart, which
/// empties this. Bounded: when full, it is emptied.
#[derive(Debug, Default)]
pub struct VerifiedTokens(
    std::sync::Mutex<std::collections::HashMap<Box<str>, labs_auth::AccessClaims>>,
);

impl VerifiedTokens {
    const CAPACITY: usize = 4096;

    pub(crate) fn get(&self, token: &str, now: i64) -> Option<labs_auth::AccessClaims> {
        let cache = self.0.lock().ok()?;
        cache.get(token).filter(|claims| claims.exp > now).cloned()
    }

    pub(crate) fn insert(&self, token: &str, claims: &labs_auth::AccessClaims) {
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() >= Self::CAPACITY {
                cache.clear();
            }
            cache.insert(token.into(), claims.clone());
        }
    }
}
