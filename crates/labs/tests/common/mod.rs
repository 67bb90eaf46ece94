//! Test harness: the real application on a per-test database and the real Redis, typed
//! request helpers, throwaway Redis servers, and the real `labs` binary as a child process.
//!
//! Over 400 lines on purpose: the one harness both test binaries include (`#[path]`), small
//! helpers side by side; its largest part, `Labs` (the binary as a child process), is one type.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a different part of the harness"
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use labs::app::{http_app, role_routes};
use labs_api::ApiState;
use labs_db::{PgPool, RedisConfig};
use labs_http::{AppState, HttpConfig};
use secrecy::SecretString;
use serde_json::Value;

use axum::body::Body;
use axum::http::Request;
use labs_testkit::{Answer, send, shared_redis_url};

/// The settings a test server uses: production defaults, short timeouts.
/// A verified account with no password, straight into the database; its id.
pub async fn insert_user(db: &PgPool, email: &str) -> labs_domain::UserId {
    let new = labs_accounts::db::users::NewUser {
        id: labs_domain::UserId::generate(),
        email,
        full_name: None,
        password_hash: None,
        is_admin: false,
        verified: true,
    };
    labs_accounts::db::users::insert(db, &new)
        .await
        .unwrap()
        .unwrap()
        .id
}

/// An account with `password`, straight into the database; its id.
pub async fn insert_user_with_password(
    db: &PgPool,
    email: &str,
    password: &str,
    admin: bool,
    verified: bool,
) -> labs_domain::UserId {
    let hash = labs_auth::PasswordHasher::default_cost()
        .unwrap()
        .hash(password)
        .unwrap();
    let new = labs_accounts::db::users::NewUser {
        id: labs_domain::UserId::generate(),
        email,
        full_name: None,
        password_hash: Some(&hash),
        is_admin: admin,
        verified,
    };
    labs_accounts::db::users::insert(db, &new)
        .await
        .unwrap()
        .unwrap()
        .id
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
    .unwrap()
}

pub fn http_config() -> HttpConfig {
    HttpConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        metrics_bind: "127.0.0.1:0".parse().unwrap(),
        root_path: "/api".to_owned(),
        request_timeout: Duration::from_secs(10),
        body_limit: 1024 * 1024,
        cors_origins: Vec::new(),
        shutdown_timeout: Duration::from_secs(5),
        header_read_timeout: Duration::from_secs(10),
        ready_timeout: Duration::from_millis(500),
        docs: true,
        hsts_max_age: Duration::from_secs(365 * 24 * 3600),
        hsts_include_subdomains: true,
        production: false,
    }
}

pub fn redis_config() -> RedisConfig {
    RedisConfig {
        redis_url: None,
        redis_response_timeout: Duration::from_millis(500),
        redis_connect_timeout: Duration::from_millis(300),
    }
}

pub fn state_with_redis(db: PgPool, redis_url: &str) -> AppState {
    let redis =
        labs_db::redis::connect_lazy(&SecretString::from(redis_url), &redis_config()).unwrap();
    AppState::new(
        db,
        redis,
        http_config().ready_timeout,
        http_config().root_path,
        true,
    )
}

/// The API role's application, exactly as `labs serve --role api` builds it.
pub fn app(db: PgPool) -> Router {
    app_with(state_with_redis(db, &shared_redis_url()), &http_config())
}

pub fn app_with(state: AppState, config: &HttpConfig) -> Router {
    let api = api_state(state.clone(), &[]);
    http_app(role_routes(state, Some(api)), config)
}

/// The origin tests' browsers are trusted from (CORS and CSRF).
pub const TRUSTED_ORIGIN: &str = "https://app.example.com";

/// The api role's state with the development keys and `settings` (auth command-line flags,
/// e.g. `["--rate-limit-per-account", "3/1m"]`), rate limits and jobs in namespaces of their
/// own so that parallel tests do not share budgets or queues.
pub fn api_state(app: AppState, settings: &[&str]) -> ApiState {
    #[derive(clap::Parser)]
    struct Settings {
        #[command(flatten)]
        auth: labs_accounts::AuthConfig,
        #[command(flatten)]
        features: labs_features::Settings,
    }
    let namespace = labs_testkit::unique_name("rl");
    let mut argv = vec!["labs", "--rate-limit-namespace", &namespace];
    argv.extend_from_slice(settings);
    let settings = <Settings as clap::Parser>::parse_from(argv);
    let secrets = labs_auth::config::ResolvedSecrets {
        jwt_signing_key: settings.auth.keys.dev_signing_key().into(),
        totp_encryption_keys: labs_auth::config::DEV_TOTP_ENCRYPTION_KEYS.into(),
        code_hash_key: labs_auth::config::DEV_CODE_HASH_KEY.into(),
    };
    let keys = labs_auth::AuthKeys::new(&settings.auth.keys, &secrets).unwrap();
    let accounts = labs_accounts::Accounts::new(
        app.db.clone(),
        app.redis.clone(),
        keys,
        settings.auth,
        &[TRUSTED_ORIGIN.to_owned()],
        "/api",
    );
    let features = labs_features::Parts::new(&app, &accounts, &settings.features).unwrap();
    ApiState::new(labs_api::ApiParts {
        app,
        accounts,
        queue: job_queue(&shared_redis_url(), &labs_testkit::unique_name("jobs")),
        features,
    })
}

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
    .unwrap()
}

/// The API application on `db` with auth `settings`.
pub fn auth_app(db: PgPool, settings: &[&str]) -> Router {
    let state = state_with_redis(db, &shared_redis_url());
    let api = api_state(state.clone(), settings);
    http_app(role_routes(state, Some(api)), &http_config())
}

/// The real `labs` binary, running as a child process with JSON logs captured.
pub struct Labs {
    child: Child,
    logs: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    pub address: SocketAddr,
    pub metrics_address: SocketAddr,
}

pub const LABS: &str = env!("CARGO_BIN_EXE_labs");

impl Labs {
    /// Starts `labs serve` on a free port with `env` set, and waits until it listens.
    pub fn serve(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(LABS);
        command
            .arg("serve")
            // Away from the repository, so that a developer's `.env` cannot leak in.
            .current_dir("/")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LABS_BIND", "127.0.0.1:0")
            .env("LABS_METRICS_BIND", "127.0.0.1:0")
            .env("LABS_LOG_FORMAT", "json")
            .env("REDIS_URL", shared_redis_url())
            // Budgets of its own: every run of the suite logs in as the same test accounts,
            // and the shared Redis keeps their counts for the window (15 minutes).
            .env("LABS_RATE_LIMIT_NAMESPACE", labs_testkit::unique_name("rl"))
            // A queue of its own: with the default one, its worker would take the jobs of a
            // development server running beside the tests (against the wrong database), and
            // that server's worker the jobs of this one.
            .env("LABS_JOBS_NAMESPACE", labs_testkit::unique_name("jobs"))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("a log line that is not JSON: {line}"));
                sink.lock().unwrap().push(value);
            }
        });
        let errors = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(errors).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let unset: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let mut server = Self {
            child,
            logs,
            stderr,
            address: unset,
            metrics_address: unset,
        };
        server.address = server.listening_on("http");
        server.metrics_address = server.listening_on("metrics");
        server
    }

    /// The address the listener `name` logged it listens on.
    fn listening_on(&mut self, name: &str) -> SocketAddr {
        let line = self.wait_for_log(Duration::from_secs(30), |line| {
            line["message"] == "listening" && line["listener"] == name
        });
        line["address"].as_str().unwrap().parse().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics_address)
    }

    /// What the metrics listener answers now (Prometheus text).
    pub async fn metrics(&self) -> String {
        reqwest::get(self.metrics_url())
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until `path` answers `status` (asserting it does within `within`).
    pub async fn until_status(&self, path: &str, status: u16, within: Duration) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let deadline = std::time::Instant::now() + within;
        loop {
            let answered = client
                .get(self.url(path))
                .send()
                .await
                .map(|r| r.status().as_u16());
            if answered.as_ref().ok() == Some(&status) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path} never answered {status} (last: {answered:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it has not exited or been restarted).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn logs(&self) -> Vec<Value> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits for a log line that matches, and returns it.
    pub fn wait_for_log(&mut self, timeout: Duration, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.logs.lock().unwrap().iter().find(|line| matches(line)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "labs exited ({status}) early; stderr: {}",
                    self.stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no such log line within {timeout:?}; logs: {:#?}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: &str) {
        labs_testkit::signal(self.pid(), signal);
    }

    /// Waits for the process to exit, failing the test after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        labs_testkit::wait_for_exit(&mut self.child, timeout)
    }
}

impl Drop for Labs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `labs` with `args` to completion: (exit status, stdout, stderr). Listeners default to
/// free ports and the job queue to a namespace of its own, so that a command never takes the
/// development server's 8080 or 9090 nor touches its queue (`cargo run -- serve` may be
/// running beside the tests).
pub fn run_labs(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let output = Command::new(LABS)
        .args(args)
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LABS_BIND", "127.0.0.1:0")
        .env("LABS_METRICS_BIND", "127.0.0.1:0")
        .env("LABS_JOBS_NAMESPACE", labs_testkit::unique_name("jobs"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `labs serve` with `settings` and returns its stderr, asserting that it refused to
/// start: a process still running after a while has started, and is stopped (so that a broken
/// guard rail fails the test instead of hanging it).
pub fn refused(settings: &[(&'static str, String)]) -> String {
    let mut child = Command::new(LABS)
        .arg("serve")
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LABS_BIND", "127.0.0.1:0")
        .env("LABS_METRICS_BIND", "127.0.0.1:0")
        .envs(settings.iter().map(|(k, v)| (k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let names: Vec<&str> = settings.iter().map(|(k, _)| *k).collect();
            panic!("labs started in production with these settings: {names:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Undoes quoted-printable (soft line breaks and `=XX`), which lettre uses for long lines.
pub fn decode_quoted_printable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::new();
    let bytes = joined.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first link in `message` (decoded) that opens `page`: `http…/<page>?token=…`.
pub fn emailed_link(message: &str, page: &str) -> String {
    let marker = format!("/{page}?token=");
    let at = message
        .find(&marker)
        .unwrap_or_else(|| panic!("no {page} link in {message}"));
    let start = message[..at]
        .rfind("http")
        .expect("a link starts with http");
    let token: String = message[at + marker.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!("{}{marker}{token}", &message[start..at])
}

/// `method path` through `app` with a JSON `body` (if any) and `headers`.
pub async fn call(
    app: &Router,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    send(app, request.body(body).unwrap()).await
}

/// The value of the series `name` whose labels include all of `labels`, in Prometheus text.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((series_name, rest)) => (series_name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let matches = series_name == name
                && labels.iter().all(|(key, value)| {
                    series_labels
                        .split(',')
                        .any(|pair| pair == format!("{key}=\"{value}\""))
                });
            matches.then(|| value.parse().ok()).flatten()
        })
}
