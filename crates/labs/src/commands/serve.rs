//! `serve`: runs the roles asked for until shutdown; the first that fails stops the others.

use std::process::ExitCode;

use anyhow::Context;
use labs_db::redis;
use labs_http::AppState;
use labs_jobs::{JobQueue, RuntimeConfig};
use labs_worker::WorkerContext;
use labs_worker::email::{EmailCap, Mailer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::secrets::auth_keys;
use super::stores::{database_url, job_queue, migrated_pool, pool, redis_url};
use crate::app::{Roles, application};
use crate::cli::{Environment, Role, ServeArgs};

pub(super) async fn serve(
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
    // The api and hooks roles serve through a Redis outage (limits per replica, jobs in the
    // outbox): they stay in the load balancer. A process that runs jobs is not ready without it.
    let state = if roles.has(Role::Worker) || roles.has(Role::Scheduler) {
        state
    } else {
        state.ready_without_redis()
    };
    // Bound before the api state is built: the default app URL names the port actually bound
    // (also with `LABS_BIND=…:0`).
    let listener = TcpListener::bind(args.http.bind)
        .await
        .with_context(|| format!("cannot listen on {} (LABS_BIND)", args.http.bind))?;
    // Only the api role holds credential keys: the other roles run without them.
    let api = if roles.has(Role::Api) {
        let keys = auth_keys(env, &args.auth.keys)?;
        // Checked before the development default below, which production must not get.
        if env.is_production() {
            crate::production::refuse(&crate::production::api_problems(&args.auth))?;
        }
        if args.auth.app_url.is_none() {
            // Unset (development): the emailed links open this process's own pages
            // (labs_accounts::pages).
            let port = listener.local_addr()?.port();
            args.auth.app_url = Some(labs_accounts::links::local_app_url(
                port,
                &args.http.root_path,
            ));
        }
        Some(crate::app::api_state(
            &state,
            keys,
            args.auth.clone(),
            &args.http,
            queue.clone(),
            &args.features,
        )?)
    } else {
        None
    };
    // The features' webhook receivers: they need only their own secrets (no JWT or API key).
    let hooks = if roles.has(Role::Hooks) {
        Some(labs_features::hooks(
            &state,
            &args.features,
            env.is_production(),
        )?)
    } else {
        None
    };
    let app = application(state, api, hooks, &args.http);
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
