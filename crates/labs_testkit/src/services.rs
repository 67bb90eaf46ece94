//! Where the shared test services are (the local Postgres and Redis unless told otherwise),
//! names that do not collide, free ports.

use std::net::TcpListener;

/// The Python with the test tools (aiosmtpd, pyotp, schemathesis): `LABS_TEST_PYTHON`, set
/// by `make test` from scripts/python-tools.sh.
pub fn test_python() -> String {
    std::env::var("LABS_TEST_PYTHON")
        .unwrap_or_else(|_| "/var/cache/labs-ci/venv/bin/python".to_owned())
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
