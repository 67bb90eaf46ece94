//! The API role over its real router: a fresh, migrated database per test (`#[sqlx::test]`)
//! and the real Redis.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use labs_db::PgConfig;
use labs_http::AppState;
use labs_testapp::TestApp;
use labs_testkit::{BlackHole, RedisServer};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;

/// The application on a database that cannot answer: no worker (it would wait on it too).
fn router_on(db: labs_db::Db) -> TestApp {
    TestApp::builder(db).without_worker().spawn()
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_root_describes_the_service_and_its_root_path(db: PgPool) {
    let app = TestApp::new(db);
    for path in ["/api/", "/api", "/"] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(
            answer.json(),
            json!({"message": "Welcome to the labs API", "rootPath": "/api"})
        );
    }
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn echo_answers_with_and_without_the_root_path(db: PgPool) {
    let app = TestApp::new(db);
    for path in ["/api/ext/echo", "/ext/echo"] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(answer.json(), json!({"message": "Hello World"}));
    }
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn a_path_that_only_starts_like_the_root_path_is_not_stripped(db: PgPool) {
    let answer = TestApp::new(db).get("/apiext/echo").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.header("content-type"), "application/problem+json");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_original_healthcheck_reports_real_checks(db: PgPool) {
    let before = time::OffsetDateTime::now_utc();
    let answer = TestApp::new(db).get("/api/ext/healthcheck").await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(body["allOk"], true);
    assert_eq!(body["dbOk"], true);
    assert_eq!(body["queueOk"], true);
    let at = time::OffsetDateTime::parse(
        body["timestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(at >= before, "the timestamp is computed per request");
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_original_healthcheck_says_which_dependency_is_down(_db: PgPool) {
    let unreachable = unreachable_pool();
    let answer = router_on(unreachable).get("/api/ext/healthcheck").await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the original always answered 200"
    );
    let body = answer.json();
    assert_eq!(body["dbOk"], false);
    assert_eq!(body["queueOk"], true);
    assert_eq!(body["allOk"], false);
}

/// A pool pointing at a port where nothing listens.
fn unreachable_pool() -> labs_db::Db {
    let url = SecretString::from(format!(
        "postgres://postgres@127.0.0.1:{}/nothing",
        labs_testkit::free_port()
    ));
    labs_db::pg::connect_lazy(&url, &pg_config()).unwrap()
}

fn pg_config() -> PgConfig {
    PgConfig {
        database_url: None,
        db_max_connections: 2,
        db_acquire_timeout: Duration::from_secs(2),
        db_statement_timeout: Duration::from_secs(5),
    }
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn readiness_reports_each_dependency_with_its_latency(db: PgPool) {
    let answer = TestApp::new(db).get("/api/health/ready").await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(body["ready"], true);
    for dependency in ["postgres", "redis"] {
        let check = &body["checks"][dependency];
        assert_eq!(check["ok"], true, "{dependency}: {check}");
        assert!(check["latencyMs"].as_f64().unwrap() >= 0.0);
        assert!(check.get("error").is_none());
    }
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn liveness_needs_no_dependency(_db: PgPool) {
    let answer = router_on(unreachable_pool()).get("/health/live").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({"status": "ok"}));
}

#[sqlx::test(migrations = false)]
async fn readiness_is_503_until_the_migrations_are_applied(db: PgPool) {
    let app = TestApp::new(db.clone());
    let answer = app.get("/api/health/ready").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    let error = answer.json()["checks"]["postgres"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("labs migrate"), "{error}");

    labs_db::pg::migrate(&app.db).await.unwrap();
    assert_eq!(app.get("/api/health/ready").await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn readiness_answers_503_within_its_deadline_when_postgres_hangs(_db: PgPool) {
    let hole = BlackHole::start();
    let url = SecretString::from(format!("postgres://postgres@127.0.0.1:{}/x", hole.port));
    let hanging = labs_db::pg::connect_lazy(&url, &pg_config()).unwrap();
    let started = Instant::now();
    let answer = router_on(hanging).get("/api/health/ready").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["checks"]["postgres"]["error"], "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

/// The api and hooks roles serve through a Redis outage: ready, with Redis reported degraded.
#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn an_api_only_process_stays_ready_without_redis_and_says_it_is_degraded(db: PgPool) {
    let mut redis = RedisServer::start();
    let app = TestApp::builder(db)
        .redis(&redis.url())
        .state(AppState::ready_without_redis)
        .spawn();
    let body = app.get("/api/health/ready").await.json();
    assert_eq!(
        (body["ready"].clone(), body["degraded"].clone()),
        (json!(true), json!(false))
    );

    redis.stop();
    let answer = app.get("/api/health/ready").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["ready"], true);
    assert_eq!(body["degraded"], true);
    assert_eq!(body["checks"]["redis"]["ok"], false);
}

/// A process that runs jobs (the worker or scheduler role, or all roles) needs Redis.
#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn readiness_follows_redis_down_and_back_up(db: PgPool) {
    let mut redis = RedisServer::start();
    let app = TestApp::builder(db).redis(&redis.url()).spawn();
    assert_eq!(app.get("/api/health/ready").await.status, StatusCode::OK);

    redis.stop();
    let answer = app.get("/api/health/ready").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = answer.json();
    assert_eq!(body["ready"], false);
    assert_eq!(body["checks"]["redis"]["ok"], false);
    assert_eq!(body["checks"]["postgres"]["ok"], true);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = app.get("/api/health/ready").await.status;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness did not recover after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_docs_ui_is_served_under_the_root_path(db: PgPool) {
    let app = TestApp::new(db);

    let redirect = app.get("/api/docs").await;
    assert_eq!(redirect.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        redirect.header("location"),
        "docs/",
        "relative, so that the prefix is kept"
    );

    let index = app.get("/api/docs/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(index.header("content-type").starts_with("text/html"));
    assert!(index.text().contains("swagger-ui"));

    let initializer = app.get("/api/docs/swagger-initializer.js").await;
    assert!(
        initializer.text().contains(r#""url": "/api/openapi.json""#),
        "{}",
        initializer.text()
    );

    let missing = app.get("/api/docs/no-such-file.js").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn without_a_root_path_the_docs_fetch_the_spec_at_the_top(db: PgPool) {
    let app = TestApp::builder(db)
        .http(|http| http.root_path = String::new())
        .spawn();
    let initializer = app.get("/docs/swagger-initializer.js").await;
    assert!(initializer.text().contains(r#""url": "/openapi.json""#));
    let spec = app.get("/openapi.json").await.json();
    assert_eq!(spec["servers"], json!([{"url": "/"}]));
}

#[sqlx::test(migrator = "labs_db::pg::MIGRATOR")]
async fn the_served_spec_is_the_published_document(db: PgPool) {
    let answer = TestApp::new(db).get("/api/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), "application/json");
    let published = serde_json::to_value(labs_api::openapi("/api")).unwrap();
    assert_eq!(answer.json(), published);
}

/// The committed snapshot of the document: a change to the API shows in review as a diff of
/// `docs/openapi.json`. Regenerate with `make openapi` (or `UPDATE_SNAPSHOTS=1 make test-rust`).
#[test]
fn the_openapi_document_matches_its_snapshot() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let current = labs_api::openapi("/api").to_pretty_json().unwrap() + "\n";
    #[expect(
        clippy::disallowed_methods,
        reason = "a test switch, not a setting of the service"
    )]
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    // Compared as JSON values: key order in examples depends on serde_json's features, which
    // other dependencies switch on; the document is the same either way.
    let as_json = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    assert!(
        as_json(&committed).is_some() && as_json(&committed) == as_json(&current),
        "docs/openapi.json is out of date: run `make openapi` (or UPDATE_SNAPSHOTS=1 make test-rust) and review the diff"
    );
}

#[test]
fn every_operation_is_named_after_its_handler_and_summarised_by_its_first_doc_line() {
    let document = serde_json::to_value(labs_api::openapi("/api")).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["servers"], json!([{"url": "/api"}]));
    // Every operation of the platform and the accounts: the original template's names where
    // it had them. The listed features' operations (other tags) are checked by their tests.
    let expected = [
        ("/", "get", "get_root"),
        ("/ext/echo", "get", "echo"),
        ("/ext/healthcheck", "get", "get_health"),
        ("/health/live", "get", "get_liveness"),
        ("/health/ready", "get", "get_readiness"),
        ("/.well-known/jwks.json", "get", "get_jwks"),
        ("/auth/signup", "post", "signup_user"),
        ("/auth/verification", "post", "initiate_verification_email"),
        ("/auth/verify", "post", "verify_user"),
        ("/auth/token", "post", "login_for_auth_token"),
        ("/auth/refresh", "post", "refresh_jwt_token"),
        ("/auth/logout", "post", "logout_user"),
        ("/auth/me", "get", "get_me"),
        ("/auth/otp", "post", "initiate_otp_email"),
        ("/auth/otp/verify", "post", "verify_otp"),
        ("/auth/password-reset", "post", "initiate_password_reset"),
        ("/auth/password-reset/confirm", "post", "reset_password"),
        ("/auth/password", "post", "change_password"),
        ("/auth/totp/enroll", "post", "enroll_totp"),
        ("/auth/totp/confirm", "post", "confirm_totp"),
        ("/auth/totp/disable", "post", "disable_totp"),
        (
            "/auth/totp/recovery-codes",
            "post",
            "regenerate_recovery_codes",
        ),
        ("/auth/totp/verify", "post", "verify_totp"),
        ("/users", "get", "get_users_with_limits"),
        ("/users", "post", "create_user"),
        ("/users/{id}", "get", "get_user_by_id"),
        ("/users/{id}", "patch", "update_user"),
        ("/users/{id}", "delete", "delete_user"),
        ("/admin/jobs", "get", "get_job_stats"),
    ];
    let base_tags = ["meta", "ext", "health", "auth", "users", "admin"];
    let operations: Vec<(&String, &String, &Value)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().unwrap();
            item.iter()
                .map(move |(method, operation)| (path, method, operation))
        })
        .collect();
    let of_the_base = operations
        .iter()
        .filter(|(_, _, operation)| {
            operation["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|tag| base_tags.contains(&tag.as_str().unwrap()))
        })
        .count();
    assert_eq!(
        of_the_base,
        expected.len(),
        "{:?}",
        document["paths"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );
    for (path, method, operation_id) in expected {
        let operation = &document["paths"][path][method];
        assert_eq!(operation["operationId"], operation_id, "{method} {path}");
    }
    // Every operation, the features' too: summarised, and documented with its errors.
    for (path, method, operation) in operations {
        let summary = operation["summary"].as_str().unwrap_or_default();
        assert!(
            summary.len() > 5 && summary.ends_with('.'),
            "{method} {path}: summary {summary:?}"
        );
        assert_eq!(
            operation["responses"]["default"]["$ref"], "#/components/responses/Problem",
            "{method} {path} documents its errors"
        );
    }
    assert_eq!(
        document["paths"]["/"]["get"]["summary"],
        "Describe the service."
    );
}

#[test]
fn schemas_are_camel_case() {
    let document = serde_json::to_value(labs_api::openapi("/api")).unwrap();
    let schemas = &document["components"]["schemas"];
    let health: Vec<&String> = schemas["HealthCheckResponse"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(health, ["allOk", "dbOk", "queueOk", "timestamp"]);
    assert!(schemas["Check"]["properties"].get("latencyMs").is_some());
    assert!(schemas["Problem"]["properties"].get("requestId").is_some());
    let problem = &document["components"]["responses"]["Problem"]["content"];
    assert!(problem.get("application/problem+json").is_some());
}
