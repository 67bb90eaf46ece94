//! What both test binaries share beyond `labs_testapp` (the application in process): the
//! real `labs` binary as a child process, and commands run to completion.

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

use labs_testkit::shared_redis_url;
use serde_json::Value;

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
