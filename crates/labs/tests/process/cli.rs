//! The `labs` commands besides serving, run as child processes: `user create-admin`, `keys
//! generate`, `migrate`, `healthcheck`, `openapi`, `serve --help`, `email test` (delivered by a
//! worker process) with `jobs stats` and `jobs retry-dead`, and a setting refused with its
//! variable named.

use std::time::Duration;

use crate::binary::client;
use crate::common::{Labs, run_labs};
use labs_testkit::{SmtpServer, TempDatabase, shared_redis_url, unique_name};
use serde_json::Value;

#[tokio::test]
async fn create_admin_makes_or_promotes_an_administrator() {
    let database = TempDatabase::new("admin");
    let env = [("DATABASE_URL", database.url.as_str())];
    let (status, _, stderr) = run_labs(&["migrate"], &env);
    assert!(status.success(), "{stderr}");

    let (status, stdout, stderr) = run_labs(
        &["user", "create-admin", "--email", "Ops@Example.com"],
        &env,
    );
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("created administrator ops@example.com"),
        "{stdout}"
    );
    let password = stdout
        .lines()
        .find_map(|line| line.strip_prefix("password (shown once): "))
        .expect("a generated password is printed");

    let db = sqlx::PgPool::connect(&database.url).await.unwrap();
    let found = labs_accounts::db::users::credentials(&db, Some("ops@example.com"), None)
        .await
        .unwrap()
        .unwrap();
    assert!(found.user.is_admin && found.user.email_verified_at.is_some());
    let hasher = labs_auth::PasswordHasher::default_cost().unwrap();
    assert_eq!(
        hasher.verify(password, found.password_hash.as_deref()),
        labs_auth::Verification::Valid {
            needs_rehash: false
        }
    );

    labs_accounts::db::users::update(
        &db,
        found.user.id,
        &labs_accounts::db::users::UserChanges {
            is_admin: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (status, stdout, _) = run_labs(
        &["user", "create-admin", "--email", "ops@example.com"],
        &env,
    );
    assert!(status.success());
    assert!(stdout.contains("is now an administrator"), "{stdout}");
    assert!(
        labs_accounts::db::users::by_id(&db, found.user.id)
            .await
            .unwrap()
            .unwrap()
            .is_admin
    );
    db.close().await;

    for kind in ["totp", "code-hash", "hs256"] {
        let (status, stdout, _) = run_labs(&["keys", "generate", kind], &[]);
        assert!(status.success(), "{kind}");
        assert!(stdout.trim().len() >= 44, "{kind}: {stdout}");
    }
}

#[test]
fn an_invalid_setting_is_refused_with_its_variable_named() {
    let (status, _, stderr) = run_labs(&["serve"], &[("LABS_ROOT_PATH", "api")]);
    assert!(!status.success());
    assert!(
        stderr.contains("LABS_ROOT_PATH") || stderr.contains("--root-path"),
        "{stderr}"
    );
}

#[tokio::test]
async fn migrate_creates_and_migrates_a_development_database() {
    let database = TempDatabase::new("migrate");
    let (status, _, stderr) = run_labs(&["migrate"], &[("DATABASE_URL", &database.url)]);
    assert!(status.success(), "{stderr}");

    let db = sqlx::PgPool::connect(&database.url).await.unwrap();
    let applied = labs_db::schema::applied_version(&db).await.unwrap();
    assert_eq!(applied, labs_db::schema::expected_version());
    db.close().await;

    // Running it again is a no-op, not an error.
    let (status, _, stderr) = run_labs(&["migrate"], &[("DATABASE_URL", &database.url)]);
    assert!(status.success(), "{stderr}");
}

#[tokio::test]
async fn healthcheck_exits_zero_when_ready_and_one_when_not() {
    let database = TempDatabase::new("healthcheck");
    let server = Labs::serve(&[("DATABASE_URL", &database.url)]);

    let (status, stdout, _) = run_labs(
        &["healthcheck", "--url", &server.url("/api/health/ready")],
        &[],
    );
    assert!(status.success(), "{stdout}");
    assert!(stdout.contains("answered 200"), "{stdout}");

    // The default URL is built from LABS_BIND.
    let bind = server.address.to_string();
    let (status, _, _) = run_labs(&["healthcheck"], &[("LABS_BIND", &bind)]);
    assert!(status.success());

    let closed = format!(
        "http://127.0.0.1:{}/health/ready",
        labs_testkit::free_port()
    );
    let (status, stdout, _) = run_labs(&["healthcheck", "--url", &closed], &[]);
    assert_eq!(status.code(), Some(1), "{stdout}");
}

#[test]
fn openapi_prints_the_committed_document() {
    let (status, stdout, stderr) = run_labs(&["openapi"], &[]);
    assert!(status.success(), "{stderr}");
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.json"
    ))
    .unwrap();
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed, serde_json::from_str::<Value>(&committed).unwrap());
}

#[test]
fn help_documents_every_setting_with_its_variable() {
    let (status, stdout, _) = run_labs(&["serve", "--help"], &[]);
    assert!(status.success());
    for variable in [
        "LABS_ENV",
        "LABS_LOG",
        "LABS_LOG_FORMAT",
        "LABS_ROLES",
        "LABS_MIGRATE_ON_START",
        "LABS_BIND",
        "LABS_METRICS_BIND",
        "LABS_ROOT_PATH",
        "LABS_REQUEST_TIMEOUT",
        "LABS_BODY_LIMIT",
        "LABS_CORS_ORIGINS",
        "LABS_SHUTDOWN_TIMEOUT",
        "LABS_READY_TIMEOUT",
        "DATABASE_URL",
        "LABS_DB_MAX_CONNECTIONS",
        "LABS_DB_ACQUIRE_TIMEOUT",
        "LABS_DB_STATEMENT_TIMEOUT",
        "REDIS_URL",
        "LABS_REDIS_RESPONSE_TIMEOUT",
        "LABS_REDIS_CONNECT_TIMEOUT",
        "LABS_JOBS_NAMESPACE",
        "LABS_WORKER_CONCURRENCY",
        "LABS_DEAD_JOB_LIMIT",
        "LABS_SMTP_URL",
        "LABS_MAIL_FROM",
        "LABS_SMTP_CA_FILE",
        "LABS_SMTP_TIMEOUT",
    ] {
        assert!(
            stdout.contains(variable),
            "{variable} missing from `labs serve --help`"
        );
    }
}

#[tokio::test]
async fn a_test_email_queued_from_the_cli_is_delivered_by_a_worker_process() {
    let smtp = SmtpServer::start();
    let database = TempDatabase::new("email");
    let namespace = unique_name("email");
    let server = Labs::serve(&[
        ("LABS_ROLES", "worker,scheduler"),
        ("DATABASE_URL", &database.url),
        ("LABS_JOBS_NAMESPACE", &namespace),
        ("LABS_SMTP_URL", &smtp.url()),
        ("LABS_MAIL_FROM", "Labs Ops <ops@labs.test>"),
    ]);

    // A worker-only process still answers its probes, and serves no API.
    let ready = client()
        .get(server.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let api = client()
        .get(server.url("/api/ext/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);

    let env = [
        ("DATABASE_URL", database.url.as_str()),
        ("LABS_JOBS_NAMESPACE", namespace.as_str()),
        ("REDIS_URL", &shared_redis_url()),
    ];
    let (status, stdout, stderr) = run_labs(
        &[
            "email",
            "test",
            "--to",
            "ops@example.com",
            "--requested-by",
            "the CLI test",
        ],
        &env,
    );
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("queued test email"), "{stdout}");

    let messages =
        tokio::task::spawn_blocking(move || smtp.wait_for_messages(1, Duration::from_secs(30)))
            .await
            .unwrap();
    assert!(
        messages[0].contains("To: ops@example.com"),
        "{}",
        messages[0]
    );
    assert!(
        messages[0].contains(r#"From: "Labs Ops" <ops@labs.test>"#),
        "{}",
        messages[0]
    );
    assert!(messages[0].contains("the CLI test"), "{}", messages[0]);

    let (status, stdout, stderr) = run_labs(&["jobs", "stats"], &env);
    assert!(status.success(), "{stderr}");
    let stats: Value = serde_json::from_str(&stdout).unwrap();
    for field in [
        "queued",
        "inFlight",
        "scheduled",
        "retrying",
        "dead",
        "outbox",
        "workers",
    ] {
        assert!(stats.get(field).is_some(), "{field} missing: {stats}");
    }
    assert_eq!(stats["dead"], 0);
    assert_eq!(stats["workers"], 1, "{stats}");

    let (status, stdout, _) = run_labs(&["jobs", "retry-dead"], &env);
    assert!(status.success());
    assert!(stdout.contains("0 dead jobs put back"), "{stdout}");
}
