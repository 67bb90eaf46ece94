//! What each subcommand does.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use labs_db::pg::{self, DEV_DATABASE_URL};
use labs_db::redis::{self, DEV_REDIS_URL};
use labs_db::{PgConfig, PgPool, RedisConfig};
use labs_http::AppState;
use labs_jobs::jobs::{Email, SendEmail};
use labs_jobs::{JobQueue, JobsConfig, RuntimeConfig};
use labs_worker::WorkerContext;
use labs_worker::email::{EmailCap, Mailer};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

// template:begin stripe
use labs_api::billing::Billing;
// template:end stripe
use labs_api::{ApiParts, ApiState, Auth};
use labs_auth::config::{DEV_CODE_HASH_KEY, DEV_TOTP_ENCRYPTION_KEYS, ResolvedSecrets};
use labs_auth::{AuthKeys, KeyConfig};
// template:begin stripe
use labs_hooks::{DEV_STRIPE_WEBHOOK_SECRET, HooksConfig, HooksState};
// template:end stripe

use crate::app::{Roles, http_app, role_routes};
use crate::cli::{
    Cli, Command, EmailCommand, Environment, HealthcheckArgs, JobsCommand, KeyKind, KeysCommand,
    MigrateArgs, OpenapiArgs, QueueArgs, Role, ServeArgs, UserCommand,
};
use crate::settings::required_secret;

/// Runs the subcommand `cli` names until it is done or `shutdown` is cancelled.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(cli.env, *args, shutdown).await,
        Command::Migrate(args) => migrate(cli.env, &args).await,
        Command::Healthcheck(args) => healthcheck(&args).await,
        Command::Openapi(args) => openapi(&args),
        Command::Jobs(command) => jobs(cli.env, command).await,
        Command::Email(command) => email(cli.env, command).await,
        Command::User(command) => user(cli.env, command).await,
        Command::Keys(command) => keys(&command),
    }
}

async fn serve(
    env: Environment,
    mut args: ServeArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<ExitCode> {
    // The HTTP layers send HSTS only in production.
    args.http.production = env.is_production();
    let roles = Roles::new(&args.roles);

    let database_url = database_url(env, &args.pg)?;
    let redis_url = redis_url(env, &args.redis)?;
    let migrate_on_start = args.migrate_on_start.unwrap_or(!env.is_production());
    let db = if migrate_on_start {
        migrated_pool(env, &database_url, &args.pg).await?
    } else {
        pool(&database_url, &args.pg)?
    };
    let redis = redis::connect_lazy(&redis_url, &args.redis)
        .context("REDIS_URL is not a valid Redis URL")?;
    let queue = job_queue(&redis_url, &args.redis, &args.jobs)?;

    // Each role is a future that runs until the shutdown token is cancelled.
    let mut roles_running: Vec<(&str, RoleFuture)> = Vec::new();

    let state = AppState::new(
        db.clone(),
        redis.clone(),
        args.http.ready_timeout,
        args.http.root_path.clone(),
        args.http.docs,
    );
    // Only the api role holds credential keys: the other roles run without them.
    let api = if roles.has(Role::Api) {
        let keys = auth_keys(env, &args.auth.keys)?;
        if env.is_production() {
            crate::production::refuse(&crate::production::api_problems(&args.auth))?;
        }
        let auth = Auth::new(
            keys,
            args.auth.clone(),
            &args.http.cors_origins,
            &args.http.root_path,
        );
        // template:begin stripe
        let billing =
            Billing::new(args.billing.clone()).context("the Stripe client cannot be built")?;
        // template:end stripe
        Some(ApiState::new(ApiParts {
            app: state.clone(),
            auth: Arc::new(auth),
            // template:begin stripe
            billing: Arc::new(billing),
            // template:end stripe
            queue: queue.clone(),
        }))
    } else {
        None
    };
    // template:begin stripe
    // The receiver needs only its webhook secrets: no JWT or Stripe API key.
    let hooks = if roles.has(Role::Hooks) {
        Some(HooksState {
            app: state.clone(),
            secrets: Arc::new(webhook_secrets(env, &args.hooks)?),
            tolerance: args.hooks.stripe_webhook_tolerance,
        })
    } else {
        None
    };
    // template:end stripe
    let routes = role_routes(state, api);
    // template:begin stripe
    let routes = match hooks {
        Some(hooks) => routes.merge(labs_hooks::router(hooks)),
        None => routes,
    };
    // template:end stripe
    let app = http_app(routes, &args.http);
    let listener = TcpListener::bind(args.http.bind)
        .await
        .with_context(|| format!("cannot listen on {} (LABS_BIND)", args.http.bind))?;
    let limits = labs_http::serve::Limits::from(&args.http);
    let http_limits = limits.clone();
    let http_shutdown = shutdown.clone();
    roles_running.push((
        "http",
        Box::pin(async move {
            Ok(labs_http::serve::serve("http", listener, app, http_shutdown, http_limits).await?)
        }),
    ));

    // Every role exposes its own metrics, on their own listener.
    let metrics = labs_http::metrics::router(labs_http::metrics::install(), db.clone());
    let metrics_listener = TcpListener::bind(args.http.metrics_bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (LABS_METRICS_BIND)",
                args.http.metrics_bind
            )
        })?;
    let metrics_shutdown = shutdown.clone();
    roles_running.push((
        "metrics",
        Box::pin(async move {
            Ok(labs_http::serve::serve(
                "metrics",
                metrics_listener,
                metrics,
                metrics_shutdown,
                limits,
            )
            .await?)
        }),
    ));

    if roles.has(Role::Worker) {
        if env.is_production() && args.mail.smtp_url.is_none() {
            anyhow::bail!(
                "LABS_SMTP_URL must be set when LABS_ENV=production (the worker sends email)"
            );
        }
        let mailer = Mailer::new(&args.mail)?;
        let cap = EmailCap::new(
            redis.clone(),
            args.auth.rate_limit_emails_per_address,
            &args.auth.rate_limit_namespace,
        );
        let mut ctx = WorkerContext::new(db.clone(), queue.clone(), mailer).with_email_cap(cap);
        ctx.purge = args.purge;
        let config = RuntimeConfig {
            concurrency: args.jobs.worker_concurrency,
            drain: args.http.shutdown_timeout,
        };
        let worker_shutdown = shutdown.clone();
        roles_running.push((
            "worker",
            Box::pin(async move {
                labs_worker::run_worker(ctx, config, worker_shutdown).await;
                Ok(())
            }),
        ));
    }

    if roles.has(Role::Scheduler) {
        let (depth_queue, depth_shutdown) = (queue.clone(), shutdown.clone());
        roles_running.push((
            "queue metrics",
            Box::pin(sample_queue_depth(depth_queue, depth_shutdown)),
        ));
        let namespace = args.jobs.jobs_namespace.clone();
        let (queue, redis, scheduler_shutdown) = (queue.clone(), redis.clone(), shutdown.clone());
        roles_running.push((
            "scheduler",
            Box::pin(async move {
                labs_worker::scheduler::run(
                    labs_worker::scheduler::schedule(),
                    queue,
                    redis,
                    &namespace,
                    scheduler_shutdown,
                )
                .await;
                Ok(())
            }),
        ));
    }

    // A role that fails stops the others: the process exits non-zero and the orchestrator
    // restarts it, instead of running half of what it was asked to.
    let outcome = Box::pin(futures_first_error(roles_running, &shutdown)).await;
    db.close().await;
    tracing::info!("stopped");
    outcome.map(|()| ExitCode::SUCCESS)
}

/// Samples the queue's depth into gauges every 10 s (in the scheduler: one process, so the
/// gauges are not multiplied by replicas). A Redis outage skips samples, it stops nothing.
async fn sample_queue_depth(queue: JobQueue, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = every.tick() => {
                if let Err(error) = queue.record_depth_metrics().await {
                    tracing::debug!(%error, "cannot sample the queue depth");
                }
            }
        }
    }
}

type RoleFuture = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>;

/// Runs every role to completion; the first error cancels the others and is returned.
async fn futures_first_error(
    roles: Vec<(&str, RoleFuture)>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut running = tokio::task::JoinSet::new();
    for (name, role) in roles {
        let name = name.to_owned();
        running.spawn(async move {
            role.await
                .with_context(|| format!("the {name} role failed"))
        });
    }
    let mut first_error = None;
    while let Some(done) = running.join_next().await {
        let result = done.context("a role panicked").and_then(|result| result);
        if let Err(error) = result {
            tracing::error!(error = format!("{error:#}"), "stopping every role");
            shutdown.cancel();
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn redis_url(env: Environment, config: &RedisConfig) -> anyhow::Result<SecretString> {
    required_secret(env, "REDIS_URL", config.redis_url.as_ref(), DEV_REDIS_URL)
}

fn job_queue(
    url: &SecretString,
    redis: &RedisConfig,
    jobs: &JobsConfig,
) -> anyhow::Result<JobQueue> {
    JobQueue::new(url, jobs, redis.redis_response_timeout)
        .context("REDIS_URL is not a valid Redis URL for the job queue")
}

/// The queue (and its settings) a `jobs` or `email` command works on.
fn command_queue(env: Environment, args: &QueueArgs) -> anyhow::Result<JobQueue> {
    job_queue(&redis_url(env, &args.redis)?, &args.redis, &args.jobs)
}

async fn jobs(env: Environment, command: JobsCommand) -> anyhow::Result<ExitCode> {
    let args = match &command {
        JobsCommand::Stats(args) | JobsCommand::RetryDead(args) => args,
        JobsCommand::Dead { queue, .. } => queue,
    };
    let queue = command_queue(env, args)?;
    let mut stdout = std::io::stdout().lock();
    match command {
        JobsCommand::Stats(args) => {
            let mut stats = serde_json::to_value(queue.stats().await?)?;
            let db = pool(&database_url(env, &args.pg)?, &args.pg)?;
            stats["outbox"] = labs_jobs::outbox::pending(&db)
                .await
                .context("cannot count the outbox")?
                .into();
            writeln!(stdout, "{}", serde_json::to_string_pretty(&stats)?)?;
        }
        JobsCommand::Dead { limit, .. } => {
            writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(&queue.dead_jobs(limit).await?)?
            )?;
        }
        JobsCommand::RetryDead(_) => {
            let revived = queue.retry_dead().await?;
            writeln!(stdout, "{revived} dead jobs put back on their queues")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn email(env: Environment, command: EmailCommand) -> anyhow::Result<ExitCode> {
    match command {
        EmailCommand::Test {
            to,
            requested_by,
            queue: args,
        } => {
            // The mailer's own rule, so that a typo fails here rather than in the worker's log.
            let to = labs_domain::Email::parse(&to)
                .context("--to is not an address the mailer can send to")?;
            let queue = command_queue(env, &args)?;
            let job = SendEmail {
                to: to.into_string(),
                email: Email::Test { requested_by },
            };
            let id = queue.enqueue(job).await?;
            writeln!(std::io::stdout().lock(), "queued test email as job {id}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

// template:begin stripe
/// The Stripe webhook secrets: the development secret when none is set in development; in
/// production at least one, none of them the development one.
fn webhook_secrets(env: Environment, config: &HooksConfig) -> anyhow::Result<Vec<SecretString>> {
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

/// The credential keys, each secret resolved like every other (development default, or set
/// explicitly in production), then checked.
fn auth_keys(env: Environment, config: &KeyConfig) -> anyhow::Result<AuthKeys> {
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

async fn user(env: Environment, command: UserCommand) -> anyhow::Result<ExitCode> {
    let UserCommand::CreateAdmin {
        email,
        password,
        pg,
        keys,
    } = command;
    let email = labs_domain::Email::parse(&email).context("--email is not a valid address")?;
    let db = pool(&database_url(env, &pg)?, &pg)?;
    let mut stdout = std::io::stdout().lock();
    let promote = labs_db::users::UserChanges {
        is_admin: Some(true),
        is_active: Some(true),
        ..Default::default()
    };
    if let Some(found) = labs_db::users::credentials(&db, Some(email.as_str()), None).await? {
        // The operator vouches for the address, not for whoever signed it up: an account
        // nobody verified loses what its signup set (a pre-hijacked account must not become
        // the attacker's admin account).
        let mut tx = db.begin().await?;
        let claimed = labs_db::users::claim(&mut tx, found.user.id, false).await?;
        labs_db::users::update(&mut *tx, found.user.id, &promote).await?;
        tx.commit().await?;
        writeln!(stdout, "{email} is now an administrator")?;
        if claimed.is_some_and(|claimed| claimed.first) {
            writeln!(
                stdout,
                "it had never been verified, so the password and sessions its signup set were \
                 discarded: choose a password with a password reset"
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (password, generated) = match password {
        Some(password) => (password.expose_secret().to_owned(), false),
        None => (
            labs_auth::token::OpaqueToken::generate()
                .as_str()
                .to_owned(),
            true,
        ),
    };
    let password = labs_domain::Password::new(password).context("LABS_ADMIN_PASSWORD")?;
    if env.is_production() {
        crate::production::refuse(&crate::production::key_setting_problems(&keys))?;
    }
    // Only the hasher's parameters matter here; no other key is needed to create an account.
    let hasher = labs_auth::PasswordHasher::new(
        keys.argon2_memory_kib,
        keys.argon2_iterations,
        keys.argon2_parallelism,
    )?;
    let hash = hasher.hash(password.expose())?;
    let new = labs_db::users::NewUser {
        id: labs_domain::UserId::generate(),
        email: email.as_str(),
        full_name: None,
        password_hash: Some(&hash),
        is_admin: true,
        verified: true,
    };
    labs_db::users::insert(&db, &new)
        .await?
        .context("the account was created concurrently; run the command again")?;
    writeln!(stdout, "created administrator {email}")?;
    if generated {
        writeln!(stdout, "password (shown once): {}", password.expose())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn keys(command: &KeysCommand) -> anyhow::Result<ExitCode> {
    let KeysCommand::Generate { kind, id } = command;
    let mut stdout = std::io::stdout().lock();
    match kind {
        KeyKind::Jwt => {
            let (private, public) = labs_auth::jwt::generate_ed25519_pem();
            writeln!(stdout, "# LABS_JWT_SIGNING_KEY\n{private}")?;
            writeln!(
                stdout,
                "# its public key, for LABS_JWT_RETIRED_KEYS after the next rotation\n{public}"
            )?;
        }
        KeyKind::Hs256 | KeyKind::CodeHash => {
            writeln!(stdout, "{}", labs_auth::config::generate_symmetric_key())?;
        }
        KeyKind::Totp => {
            writeln!(
                stdout,
                "{id}:{}",
                labs_auth::config::generate_symmetric_key()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn migrate(env: Environment, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let database_url = database_url(env, &args.pg)?;
    let db = migrated_pool(env, &database_url, &args.pg).await?;
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// A lazy pool on `url`; the only way commands open one, so the error names the variable.
fn pool(url: &SecretString, config: &PgConfig) -> anyhow::Result<PgPool> {
    pg::connect_lazy(url, config).context("DATABASE_URL is not a valid Postgres URL")
}

fn database_url(env: Environment, config: &PgConfig) -> anyhow::Result<SecretString> {
    required_secret(
        env,
        "DATABASE_URL",
        config.database_url.as_ref(),
        DEV_DATABASE_URL,
    )
}

/// Connects and applies pending migrations; in development, creates the database first if
/// it does not exist (in production it is provisioned with the server).
async fn migrated_pool(
    env: Environment,
    url: &SecretString,
    config: &PgConfig,
) -> anyhow::Result<PgPool> {
    if !env.is_production()
        && pg::create_database_if_missing(url)
            .await
            .context("cannot reach Postgres at DATABASE_URL")?
    {
        tracing::info!("created the development database");
    }
    let db = pool(url, config)?;
    pg::migrate(&db).await.context("migrations failed")?;
    tracing::info!(
        version = labs_db::schema::expected_version(),
        "database schema is up to date"
    );
    Ok(db)
}

/// A minimal HTTP/1.1 GET, so that the runtime image needs no curl: exit 0 on a 2xx.
async fn healthcheck(args: &HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let url = match &args.url {
        Some(url) => url.clone(),
        None => {
            let mut address = args.bind;
            if address.ip().is_unspecified() {
                address.set_ip(if address.is_ipv4() {
                    [127, 0, 0, 1].into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            format!("http://{address}/health/ready")
        }
    };
    let (authority, path) = split_http_url(&url)?;
    let status = tokio::time::timeout(args.timeout, get_status(authority, path))
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {url} within {:?}", args.timeout))
        .and_then(|status| status.with_context(|| format!("cannot ask {url}")));
    let mut stdout = std::io::stdout().lock();
    match status {
        Ok(status) if (200..300).contains(&status) => {
            writeln!(stdout, "ready: {url} answered {status}")?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(status) => {
            writeln!(stdout, "not ready: {url} answered {status}")?;
            Ok(ExitCode::FAILURE)
        }
        Err(error) => {
            writeln!(stdout, "not ready: {error:#}")?;
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_http_url(url: &str) -> anyhow::Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("the health check URL must start with http://, got {url}"))?;
    Ok(match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    })
}

async fn get_status(authority: &str, path: &str) -> anyhow::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(authority).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: labs-healthcheck\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // The status line is in the first bytes; the rest of the answer does not matter.
    let mut head = [0_u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..]).await?;
        anyhow::ensure!(n > 0, "the connection closed before a status line");
        read += n;
    }
    let line = std::str::from_utf8(&head[..read]).unwrap_or_default();
    line.strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP answer: {line:?}"))
}

fn openapi(args: &OpenapiArgs) -> anyhow::Result<ExitCode> {
    let document = labs_api::openapi(&args.root_path).to_pretty_json()?;
    writeln!(std::io::stdout().lock(), "{document}")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::split_http_url;

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

    #[test]
    fn health_check_urls_are_split_into_authority_and_path() {
        assert_eq!(
            split_http_url("http://127.0.0.1:8080/health/ready").unwrap(),
            ("127.0.0.1:8080", "/health/ready")
        );
        assert_eq!(
            split_http_url("http://localhost:9").unwrap(),
            ("localhost:9", "/")
        );
        assert!(split_http_url("https://example.com/").is_err());
    }
}
