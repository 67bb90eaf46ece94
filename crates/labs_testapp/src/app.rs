//! The application under test, its worker, its drain and its leftover check.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use labs_api::ApiState;
use labs_db::Db;
use labs_http::{AppState, HttpApp, HttpConfig};
use labs_jobs::{JobQueue, QueueStats};
use labs_testkit::{SmtpServer, shared_redis_url, unique_name};
use labs_worker::WorkerContext;
use labs_worker::email::EmailCap;
use tokio_util::sync::CancellationToken;

use crate::settings::{self, ApiSettings};

/// How long [`TestApp::drain`] waits for the queue to go idle before it fails the test: far
/// above what any test's jobs take (tens of milliseconds), far below a hung test's timeout.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The real application on a per-test database, its worker running beside it. Clones share
/// one worker and one leftover check, run when the last clone is dropped (a test may hand
/// clones to concurrent tasks).
#[derive(Clone)]
pub struct TestApp {
    /// The application's pool on the test's own database (`#[sqlx::test]` made it, migrated).
    pub db: Db,
    /// The base state: database, Redis, readiness.
    pub state: AppState,
    /// The api role's state: accounts, features, queue.
    pub api: ApiState,
    /// The job queue, under a namespace of this test's own.
    pub queue: JobQueue,
    app: HttpApp,
    worker: WorkerContext,
    shared: Arc<Shared>,
}

/// What the clones of one `TestApp` share; its `Drop` is the leftover check.
struct Shared {
    db: Db,
    stop: CancellationToken,
    redis_url: String,
    namespace: String,
    smtp: Option<SmtpServer>,
    /// The messages [`TestApp::next_email`] returned already.
    seen: Mutex<Vec<String>>,
    /// Whether the worker runs and its `Drop` checks for leftovers.
    checked: bool,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("namespace", &self.shared.namespace)
            .finish_non_exhaustive()
    }
}

/// What a test changes before the application starts.
pub struct TestAppBuilder {
    db: Db,
    settings: Vec<String>,
    redis_url: Option<String>,
    http: HttpConfig,
    state: Option<Box<dyn FnOnce(AppState) -> AppState>>,
    smtp: bool,
    worker: bool,
}

impl std::fmt::Debug for TestAppBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAppBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TestAppBuilder {
    /// Command-line settings of the api role (auth and every feature's), as `labs serve`
    /// takes them, e.g. `["--rate-limit-per-account", "3/1m"]`.
    #[must_use]
    pub fn settings(mut self, settings: &[&str]) -> Self {
        self.settings
            .extend(settings.iter().map(|s| (*s).to_owned()));
        self
    }

    /// Rate limits raised above what a test makes (requests per account and per client,
    /// emails per address): for tests of something else than the limits.
    #[must_use]
    pub fn roomy(self) -> Self {
        self.settings(&[
            "--rate-limit-per-account",
            "100/1m",
            "--rate-limit-per-ip",
            "100/1m",
            "--rate-limit-emails-per-address",
            "100/1h",
        ])
    }

    /// Another Redis than the shared one (a throwaway `RedisServer` a test stops).
    #[must_use]
    pub fn redis(mut self, url: &str) -> Self {
        self.redis_url = Some(url.to_owned());
        self
    }

    /// Changes the HTTP settings (timeouts, docs, CORS origins, body limit).
    #[must_use]
    pub fn http(mut self, change: impl FnOnce(&mut HttpConfig)) -> Self {
        change(&mut self.http);
        self
    }

    /// Changes the base state before the roles are built on it (e.g. `ready_without_redis`).
    #[must_use]
    pub fn state(mut self, change: impl FnOnce(AppState) -> AppState + 'static) -> Self {
        self.state = Some(Box::new(change));
        self
    }

    /// The worker sends its email through a real SMTP server (aiosmtpd), which
    /// [`TestApp::next_email`] reads; without it, email goes to the log as in development.
    #[must_use]
    pub fn smtp(mut self) -> Self {
        self.smtp = true;
        self
    }

    /// No worker, no drain and no leftover check: for an application on a database that never
    /// answers (a closed port, a server that hangs), which they would wait on too.
    #[must_use]
    pub fn without_worker(mut self) -> Self {
        self.worker = false;
        self
    }

    /// Builds the application as `labs serve` does (api and hooks roles) and starts its
    /// worker on the test's runtime.
    pub fn spawn(self) -> TestApp {
        let redis_url = self.redis_url.unwrap_or_else(shared_redis_url);
        let namespace = unique_name("jobs");
        let state = settings::base_state(self.db.clone(), &redis_url, &self.http);
        let state = match self.state {
            Some(change) => change(state),
            None => state,
        };
        let ApiSettings { auth, features } = settings::api_settings(&self.settings);
        let queue = settings::job_queue(&redis_url, &namespace);
        let keys = settings::development_keys(&auth);
        // The worker's cap on emails to one address, as `labs serve` sets it.
        let cap = EmailCap::new(
            state.redis.clone(),
            auth.rate_limit_emails_per_address,
            &auth.rate_limit_namespace,
        );
        let api = labs::app::api_state(&state, keys, auth, &self.http, queue.clone(), &features)
            .expect("the api role's state builds");
        let hooks = labs_features::hooks(&state, &features, false).expect("the hooks build");
        let app = labs::app::application(state.clone(), Some(api.clone()), Some(hooks), &self.http);

        let smtp = self.smtp.then(SmtpServer::start);
        let mailer = settings::mailer(smtp.as_ref().map(|smtp| smtp.port));
        let worker = WorkerContext::new(self.db.clone(), queue.clone(), mailer).with_email_cap(cap);
        let stop = CancellationToken::new();
        let config = labs_jobs::RuntimeConfig {
            concurrency: 2,
            drain: Duration::from_secs(2),
        };
        if self.worker {
            tokio::spawn(labs_worker::run_worker(
                worker.clone(),
                config,
                stop.clone(),
            ));
        }
        TestApp {
            db: self.db.clone(),
            state,
            api,
            queue,
            app,
            worker,
            shared: Arc::new(Shared {
                db: self.db,
                stop,
                redis_url,
                namespace,
                smtp,
                seen: Mutex::default(),
                checked: self.worker,
            }),
        }
    }
}

impl TestApp {
    /// The application with the defaults (shared Redis, log mailer, production limits), on
    /// the database of `db` (the pool `#[sqlx::test]` hands the test) through a pool of the
    /// application's own kind ([`labs_db::Db`]).
    pub fn new(db: impl Into<Db>) -> Self {
        Self::builder(db).spawn()
    }

    /// The application with changes: see [`TestAppBuilder`].
    pub fn builder(db: impl Into<Db>) -> TestAppBuilder {
        TestAppBuilder {
            db: db.into(),
            settings: Vec::new(),
            redis_url: None,
            http: settings::http_config(),
            state: None,
            smtp: false,
            worker: true,
        }
    }

    /// The whole application, for what the request helpers do not cover
    /// (`labs_testkit::send`).
    pub fn app(&self) -> &HttpApp {
        &self.app
    }

    /// The worker's context (its database, queue and relay), to run a handler directly.
    pub fn worker(&self) -> &WorkerContext {
        &self.worker
    }

    /// Relays the outbox and waits until the worker has run every job that is due (queued,
    /// running or retrying), the jobs those jobs enqueue included. Fails the test when a job
    /// dies, or when the queue is not idle within 30 s.
    pub async fn drain(&self) {
        assert!(
            self.shared.checked,
            "a TestApp built without_worker() runs no jobs"
        );
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            labs_jobs::outbox::relay_all(&self.db, &self.queue, &self.worker.relay)
                .await
                .expect("the outbox relays");
            // The queue first, then the outbox: a job that ran before the queue looked idle
            // has committed what it wrote to the outbox, so the count below sees it.
            let stats = self.queue.stats().await.expect("the queue answers");
            let outbox = labs_jobs::outbox::pending(&self.db)
                .await
                .expect("the outbox answers");
            if stats.dead > 0 {
                let dead = self.queue.dead_jobs(5).await.unwrap_or_default();
                panic!("a job died while draining: {dead:#?}");
            }
            let busy = stats.queued + stats.in_flight + stats.retrying;
            if busy == 0 && outbox == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not idle within {DRAIN_TIMEOUT:?}: {stats:?}, {outbox} outbox rows"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Drains, then returns a message the SMTP server received that no earlier call returned,
    /// decoded. (Its maildir has no order: "new" is "not returned before", so a test reads a
    /// message before causing the next.) Needs [`TestAppBuilder::smtp`].
    pub async fn next_email(&self) -> String {
        self.drain().await;
        let smtp = self.smtp();
        // aiosmtpd writes a message before it answers the worker, so after a drain it is
        // there; the short wait covers its maildir's rename only.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let new = {
                let mut seen = self.shared.seen.lock().expect("not poisoned");
                let new = smtp.messages().into_iter().find(|m| !seen.contains(m));
                if let Some(new) = &new {
                    seen.push(new.clone());
                }
                new
            };
            if let Some(new) = new {
                return crate::text::decode_quoted_printable(&new);
            }
            assert!(Instant::now() < deadline, "no new email after a drain");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Drains, then returns every message the SMTP server received (raw, in no order).
    pub async fn emails(&self) -> Vec<String> {
        self.drain().await;
        self.smtp().messages()
    }

    fn smtp(&self) -> &SmtpServer {
        self.shared
            .smtp
            .as_ref()
            .expect("a TestApp built with .smtp()")
    }

    /// Drains, then counts every message the SMTP server received.
    pub async fn emails_sent(&self) -> usize {
        self.emails().await.len()
    }
}

/// What a test left behind: outbox rows and jobs in any state but done.
#[derive(Debug)]
struct Leftovers {
    outbox: i64,
    /// `None` when the queue's Redis is gone: a throwaway server the test stopped, whose
    /// jobs went with it (it keeps nothing on disk).
    queue: Option<QueueStats>,
}

impl Leftovers {
    fn any(&self) -> bool {
        let undone = self.queue.as_ref().map_or(0, |queue| {
            queue.queued + queue.in_flight + queue.scheduled + queue.retrying + queue.dead
        });
        self.outbox > 0 || undone > 0
    }
}

impl Drop for Shared {
    /// Stops the worker and fails the test if it left work undone. Runs its queries on a
    /// thread and runtime of its own: the test's runtime is shutting down the test's future
    /// (no `block_on` inside it), and a pooled connection belongs to that runtime.
    fn drop(&mut self) {
        self.stop.cancel();
        if std::thread::panicking() || !self.checked {
            return;
        }
        let options = (*self.db.connect_options()).clone();
        let (redis_url, namespace) = (self.redis_url.clone(), self.namespace.clone());
        let left = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                use sqlx::Connection;
                let mut connection = sqlx::PgConnection::connect_with(&options)
                    .await
                    .expect("the test's database");
                let outbox = labs_jobs::outbox::pending(&mut connection)
                    .await
                    .expect("the outbox answers");
                let queue = settings::job_queue(&redis_url, &namespace)
                    .stats()
                    .await
                    .ok();
                Leftovers { outbox, queue }
            })
        })
        .join()
        .expect("the leftover check ran");
        assert!(
            !left.any(),
            "the test left work unprocessed (call app.drain().await and assert on what it \
             did): {left:#?}"
        );
    }
}
