//! Test support shared by the integration tests of several crates: where the test services
//! are, throwaway `redis-server`s (to stop and restart without touching the shared one),
//! databases created and dropped per test, a TCP server that never answers, free ports.
//!
//! Only ever a dev-dependency.

#![allow(
    clippy::disallowed_methods,
    reason = "the test harness reads where the test services are"
)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A response read whole, for assertions.
#[derive(Debug)]
pub struct Answer {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header's value (panics when it is missing).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .expect("a visible-ASCII header")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` through `app` (in process, no socket) and reads the whole response.
pub async fn send(app: &axum::Router, request: axum::http::Request<axum::body::Body>) -> Answer {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a readable body")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// The Python with the test tools (aiosmtpd, pyotp, schemathesis): `LABS_TEST_PYTHON`, set
/// by `make test` from scripts/python-tools.sh.
pub fn test_python() -> String {
    std::env::var("LABS_TEST_PYTHON")
        .unwrap_or_else(|_| "/var/cache/labs-ci/venv/bin/python".to_owned())
}

/// `GET uri` through `app`.
pub async fn get(app: &axum::Router, uri: &str) -> Answer {
    let request = axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .expect("a valid request");
    send(app, request).await
}

/// The Redis every test shares (the local one unless `REDIS_URL` says otherwise).
pub fn shared_redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The Postgres server tests create their databases on (`DATABASE_URL`, as `#[sqlx::test]`).
pub fn admin_database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The same server as [`admin_database_url`], another database.
pub fn database_url_named(name: &str) -> String {
    let admin = admin_database_url();
    let without_query = admin.split('?').next().unwrap_or(&admin);
    let server = &without_query[..without_query
        .rfind('/')
        .expect("DATABASE_URL has a database name")];
    format!("{server}/{name}")
}

/// A name no other test (or test run) uses: for databases, Redis key namespaces, ...
pub fn unique_name(purpose: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("labs_test_{purpose}_{}_{nanos}", std::process::id())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A throwaway PostgreSQL cluster on a free port, for tests that stop and restart the
/// database (never the shared one). Made with the server's own `initdb` and `pg_ctl`, run as
/// the `postgres` user when the tests run as root (PostgreSQL refuses to run as root).
#[derive(Debug)]
pub struct PostgresServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PostgresServer {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .find(|bin| bin.join("initdb").exists())
            .expect("an initdb");
        let dir = std::env::temp_dir().join(unique_name("pg"));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let mut server = Self {
            port: free_port(),
            dir,
            bin,
        };
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&server.dir)
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "cannot give the scratch directory to postgres"
            );
        }
        let data = server.dir.join("data");
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(&data);
        initdb.args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
        check(initdb, "initdb");
        server.restart();
        server
    }

    /// `tool` of this PostgreSQL, run as the `postgres` user when we are root (the server
    /// refuses to run as root).
    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// `pg_ctl stop -m immediate`: like a crash, clients see their connections cut.
    fn immediate_stop(&self) -> Command {
        let mut command = self.command("pg_ctl");
        command.arg("-D").arg(self.dir.join("data"));
        command.args(["-m", "immediate", "-w", "stop"]);
        command
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server at once (`immediate`: like a crash; clients see their connections cut).
    pub fn stop(&mut self) {
        check(self.immediate_stop(), "pg_ctl stop");
    }

    /// Starts it (again) on the same port and data, and waits until it accepts connections.
    pub fn restart(&mut self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.to_string_lossy()
        );
        let mut start = self.command("pg_ctl");
        start.arg("-D").arg(self.dir.join("data"));
        start.arg("-o").arg(options);
        start.arg("-l").arg(self.dir.join("server.log"));
        start.args(["-w", "start"]);
        check(start, "pg_ctl start");
    }
}

/// Runs a PostgreSQL tool to completion; panics with its output when it fails.
fn check(mut command: Command, what: &str) {
    let output = command.output().expect("a PostgreSQL tool runs");
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.immediate_stop().output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| output.stdout.starts_with(b"0\n"))
    })
}

/// A throwaway `redis-server` on a free port.
///
/// With [`RedisServer::durable`] it keeps its data in an append-only file that is written on
/// every command, so that a stop and restart keeps the queue, as a production Redis with
/// persistence does.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    dir: Option<PathBuf>,
    child: Option<Child>,
}

impl RedisServer {
    /// In memory only: a stop loses everything.
    pub fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            dir: None,
            child: None,
        };
        server.restart();
        server
    }

    /// With an append-only file, fsynced on every write.
    pub fn durable() -> Self {
        let dir = std::env::temp_dir().join(unique_name("redis"));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let mut server = Self {
            port: free_port(),
            dir: Some(dir),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash or a network cut would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (and data) and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let mut command = Command::new("redis-server");
        command
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .stdout(Stdio::null());
        match &self.dir {
            Some(dir) => command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
            None => command.args(["--appendonly", "no"]),
        };
        self.child = Some(
            command
                .spawn()
                .expect("redis-server must be installed (make services)"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers_ping(self.port) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reply = [0_u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A throwaway certificate authority and a server certificate it signed for `localhost`, made
/// with the `openssl` command, in a scratch directory: (dir, ca.pem, server.pem, server.key).
pub fn test_certificates() -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(unique_name("certs"));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl(1)");
        assert!(status.success(), "openssl {args:?} failed");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=labs test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("the extensions file");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "server.ext",
    ]);
    (
        dir.clone(),
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// Sends `signal` (`TERM`, `KILL`, `INT`, ...) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill(1)");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Waits for `child` to exit, failing the test after `timeout`.
pub fn wait_for_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TCP server that accepts connections and never answers: a dependency that hangs.
#[derive(Debug)]
pub struct BlackHole {
    pub port: u16,
}

impl BlackHole {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("a bound port").port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Self { port }
    }
}

/// A database name for one test, dropped (forcibly) when the test ends. The database itself
/// is created by whoever connects first (in development, `labs` creates it).
#[derive(Debug)]
pub struct TempDatabase {
    pub name: String,
    pub url: String,
}

impl TempDatabase {
    pub fn new(purpose: &str) -> Self {
        let name = unique_name(purpose);
        let url = database_url_named(&name);
        Self { name, url }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let url = self.url.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                use sqlx::migrate::MigrateDatabase;
                let _ = sqlx::Postgres::force_drop_database(&url).await;
            });
        })
        .join();
    }
}

/// A real SMTP server (aiosmtpd, from PyPI) that stores what it receives in a maildir.
///
/// Its Python comes from `LABS_TEST_PYTHON` (set by `make test`, which installs aiosmtpd into
/// the tools venv), else the CI venv's.
#[derive(Debug)]
pub struct SmtpServer {
    pub port: u16,
    maildir: PathBuf,
    child: Child,
}

impl SmtpServer {
    /// Plain SMTP.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With aiosmtpd's TLS options, e.g. `["--tlscert", cert, "--tlskey", key]` (STARTTLS,
    /// required) or `["--smtpscert", cert, "--smtpskey", key]` (TLS from the first byte).
    pub fn start_with(tls: &[&str]) -> Self {
        let python = test_python();
        let port = free_port();
        let maildir = std::env::temp_dir().join(unique_name("maildir"));
        let child = Command::new(&python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .args(tls)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start aiosmtpd with {python} ({e}); `make test` installs it")
            });
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start (is it installed in {python}?)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            port,
            maildir,
            child,
        }
    }

    /// `smtp://127.0.0.1:<port>`: plain SMTP, as a local relay.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw (headers and MIME parts).
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_dir(self.maildir.join("new"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `count` messages arrived, failing after `timeout`.
    pub fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} emails arrived within {timeout:?}",
                messages.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}
