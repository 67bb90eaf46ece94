//! Throwaway PostgreSQL: a cluster of its own (to stop and restart), and databases created and
//! dropped per test on the shared one.

use std::path::PathBuf;
use std::process::Command;

use crate::{database_url_named, free_port, unique_name};

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
