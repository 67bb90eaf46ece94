//! Test harness: the real application on a per-test database and the real Redis, typed
//! request helpers, throwaway Redis servers, and the real `labs` binary as a child process.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a different part of the harness"
)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use labs::app::{Roles, http_app};
use labs::cli::Role;
use labs_db::{PgPool, RedisConfig};
use labs_http::{AppState, HttpConfig};
use secrecy::SecretString;
use serde_json::Value;
use tower::ServiceExt;

/// The settings a test server uses: production defaults, short timeouts.
pub fn http_config() -> HttpConfig {
    HttpConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        root_path: "/api".to_owned(),
        request_timeout: Duration::from_secs(10),
        body_limit: 1024 * 1024,
        cors_origins: Vec::new(),
        shutdown_timeout: Duration::from_secs(5),
        ready_timeout: Duration::from_millis(500),
    }
}

/// The Redis every test shares (the local one unless `REDIS_URL` says otherwise).
pub fn shared_redis_url() -> String {
    #[expect(
        clippy::disallowed_methods,
        reason = "the test harness reads where the test services are"
    )]
    std::env::var("REDIS_URL").unwrap_or_else(|_| labs_db::redis::DEV_REDIS_URL.to_owned())
}

/// The Postgres server tests create their databases on.
pub fn admin_database_url() -> String {
    #[expect(
        clippy::disallowed_methods,
        reason = "the test harness reads where the test services are"
    )]
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The same server as [`admin_database_url`], another database.
pub fn database_url_named(name: &str) -> String {
    let admin = admin_database_url();
    let without_query = admin.split('?').next().unwrap_or(&admin);
    let server = &without_query[..without_query.rfind('/').unwrap()];
    format!("{server}/{name}")
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
    AppState {
        db,
        redis,
        ready_timeout: http_config().ready_timeout,
        root_path: http_config().root_path,
    }
}

/// The API role's application, exactly as `labs serve --role api` builds it.
pub fn app(db: PgPool) -> Router {
    app_with(state_with_redis(db, &shared_redis_url()), &http_config())
}

pub fn app_with(state: AppState, config: &HttpConfig) -> Router {
    http_app(&Roles::new(&[Role::Api]), state, config)
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn get(app: &Router, uri: &str) -> Answer {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway `redis-server` on a free port, for tests that stop and restart Redis without
/// touching the shared one.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once, as a crash or a network cut would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (see .ci/run)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP server that accepts connections and never answers: a dependency that hangs.
pub struct BlackHole {
    pub port: u16,
}

impl BlackHole {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Self { port }
    }
}

/// A database created for one test and dropped (forcibly) when the test ends.
pub struct TempDatabase {
    pub name: String,
    pub url: String,
}

impl TempDatabase {
    /// A unique name; the database itself is created by whoever connects first (in
    /// development, `labs` creates it).
    pub fn new(purpose: &str) -> Self {
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("labs_test_{purpose}_{}_{unique}", std::process::id());
        let url = database_url_named(&name);
        Self { name, url }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let url = self.url.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                use sqlx::migrate::MigrateDatabase;
                let _ = sqlx::Postgres::force_drop_database(&url).await;
            });
        })
        .join();
    }
}

/// The real `labs` binary, running as a child process with JSON logs captured.
pub struct Labs {
    child: Child,
    logs: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    pub address: SocketAddr,
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
            .env("LABS_LOG_FORMAT", "json")
            .env("REDIS_URL", shared_redis_url())
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
        let mut labs = Self {
            child,
            logs,
            stderr,
            address: "0.0.0.0:0".parse().unwrap(),
        };
        let listening = labs.wait_for_log(Duration::from_secs(30), |line| {
            line["message"] == "listening"
        });
        labs.address = listening["address"].as_str().unwrap().parse().unwrap();
        labs
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, failing the test after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "labs did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Labs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `labs` with `args` to completion: (exit status, stdout, stderr).
pub fn run_labs(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let output = Command::new(LABS)
        .args(args)
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
