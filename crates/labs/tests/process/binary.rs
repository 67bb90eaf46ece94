//! The real `labs` binary as a child process, over TCP: start-up, logs, signals, exit codes,
//! and the production guard rails.

use std::time::{Duration, Instant};

use crate::common::{Labs, metric, run_labs};
use labs_testkit::{BlackHole, SmtpServer, TempDatabase, shared_redis_url, unique_name};
use serde_json::Value;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_server_answers_over_tcp_and_logs_each_request_once() {
    let database = TempDatabase::new("smoke");
    let mut server = Labs::serve(&[("DATABASE_URL", &database.url)]);

    let response = client()
        .get(server.url("/api/ext/echo?token=secret-in-query"))
        .header("x-request-id", "smoke-request-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "smoke-request-1");
    assert_eq!(
        response.json::<Value>().await.unwrap()["message"],
        "Hello World"
    );

    let ready = client()
        .get(server.url("/api/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "the development database was created and migrated on start"
    );

    let line = server.wait_for_log(Duration::from_secs(5), |line| {
        line["span"]["request_id"] == "smoke-request-1" && line["message"] == "request answered"
    });
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["status"], 200);
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(line["span"]["method"], "GET");
    assert_eq!(line["span"]["route"], "/ext/echo");
    assert_eq!(line["span"]["path"], "/api/ext/echo");
    let lines_of_request = server
        .logs()
        .into_iter()
        .filter(|line| line["span"]["request_id"] == "smoke-request-1")
        .count();
    assert_eq!(lines_of_request, 1, "one line per request");
    let all_logs = serde_json::to_string(&server.logs()).unwrap();
    assert!(
        !all_logs.contains("secret-in-query"),
        "query strings are not logged"
    );

    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(10)).success());
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    // A Postgres that accepts connections and never answers makes readiness wait for its
    // whole deadline: a request that is slow for a real reason.
    let hole = BlackHole::start();
    let hanging = format!("postgres://postgres@127.0.0.1:{}/x", hole.port);
    let mut server = Labs::serve(&[
        ("DATABASE_URL", &hanging),
        ("LABS_MIGRATE_ON_START", "false"),
        ("LABS_READY_TIMEOUT", "2s"),
    ]);

    let started = Instant::now();
    let in_flight = tokio::spawn(client().get(server.url("/api/health/ready")).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.signal("TERM");

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"]["error"], "timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "it really was in flight"
    );

    let status = server.wait(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    server.wait_for_log(Duration::from_secs(1), |line| {
        line["message"] == "shutdown requested"
    });
}

#[test]
fn a_port_already_taken_is_refused_with_the_address_and_its_variable_named() {
    // What a second `labs serve` beside the development server (8080, 9090) says: which
    // address is taken and which setting moves it, for each of the two listeners.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    for variable in ["LABS_BIND", "LABS_METRICS_BIND"] {
        let (status, _, stderr) = run_labs(
            &["serve", "--role", "api"],
            &[(variable, &address), ("LABS_MIGRATE_ON_START", "false")],
        );
        assert!(!status.success(), "{variable}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot listen on {address} ({variable})")),
            "{variable}: {stderr}"
        );
    }
}

#[test]
fn production_refuses_to_start_without_its_secrets() {
    let (status, _, stderr) = run_labs(&["serve"], &[("LABS_ENV", "production")]);
    assert!(!status.success());
    assert!(stderr.contains("DATABASE_URL must be set"), "{stderr}");

    let (status, _, stderr) = run_labs(
        &["serve"],
        &[
            ("LABS_ENV", "production"),
            ("DATABASE_URL", "postgres://app:secret@db.internal/app"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("REDIS_URL is set to the development default"),
        "{stderr}"
    );
}

#[test]
fn a_production_api_refuses_to_start_without_its_credential_keys() {
    let urls = [
        ("LABS_ENV", "production"),
        ("DATABASE_URL", "postgres://app:secret@db.internal/app"),
        ("REDIS_URL", "redis://cache.internal:6379"),
    ];
    let (status, _, stderr) = run_labs(&["serve", "--role", "api"], &urls);
    assert!(!status.success());
    assert!(
        stderr.contains("LABS_JWT_SIGNING_KEY must be set"),
        "{stderr}"
    );

    let mut with_dev_key = urls.to_vec();
    with_dev_key.push((
        "LABS_JWT_SIGNING_KEY",
        labs_auth::config::DEV_JWT_SIGNING_KEY,
    ));
    let (status, _, stderr) = run_labs(&["serve", "--role", "api"], &with_dev_key);
    assert!(!status.success());
    assert!(
        stderr.contains("LABS_JWT_SIGNING_KEY is set to the development default"),
        "{stderr}"
    );

    let (status, stdout, _) = run_labs(&["keys", "generate", "jwt"], &[]);
    assert!(status.success());
    let own_key = stdout
        .split("# its public key")
        .next()
        .unwrap()
        .trim_start_matches("# LABS_JWT_SIGNING_KEY\n")
        .to_owned();
    let mut with_bad_totp = urls.to_vec();
    with_bad_totp.push(("LABS_JWT_SIGNING_KEY", &own_key));
    with_bad_totp.push(("LABS_TOTP_ENCRYPTION_KEYS", "1:c2hvcnQ="));
    with_bad_totp.push(("LABS_CODE_HASH_KEY", "c2hvcnQ="));
    let (status, _, stderr) = run_labs(&["serve", "--role", "api"], &with_bad_totp);
    assert!(!status.success());
    assert!(stderr.contains("LABS_TOTP_ENCRYPTION_KEYS"), "{stderr}");
}

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

#[test]
fn a_production_worker_refuses_to_start_without_smtp() {
    let (status, _, stderr) = run_labs(
        &["serve", "--role", "worker"],
        &[
            ("LABS_ENV", "production"),
            ("DATABASE_URL", "postgres://app:secret@db.internal/app"),
            ("REDIS_URL", "redis://cache.internal:6379"),
        ],
    );
    assert!(!status.success());
    assert!(stderr.contains("LABS_SMTP_URL must be set"), "{stderr}");
}

#[tokio::test]
async fn metrics_count_real_requests_and_jobs_on_their_own_listener() {
    let database = TempDatabase::new("metrics");
    let namespace = unique_name("metrics");
    let limits = unique_name("rl");
    let server = Labs::serve(&[
        ("DATABASE_URL", &database.url),
        ("LABS_JOBS_NAMESPACE", &namespace),
        ("LABS_RATE_LIMIT_NAMESPACE", &limits),
    ]);
    let http = client();
    for _ in 0..3 {
        assert_eq!(
            http.get(server.url("/api/ext/echo"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        http.get(server.url("/api/no/such/12345"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // Two failed logins and a refused cross-origin change, for the auth series.
    for _ in 0..2 {
        let answer = http
            .post(server.url("/api/auth/token"))
            .json(&serde_json::json!({"email": "nobody@example.com", "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
    }
    let forged = http
        .post(server.url("/api/auth/logout"))
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://evil.example")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let env = [
        ("DATABASE_URL", database.url.as_str()),
        ("LABS_JOBS_NAMESPACE", namespace.as_str()),
        ("REDIS_URL", &shared_redis_url()),
    ];
    let (status, _, stderr) = run_labs(&["email", "test", "--to", "ops@example.com"], &env);
    assert!(status.success(), "{stderr}");

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = server.metrics().await;
        let email_done = metric(
            &text,
            "labs_jobs_finished_total",
            &[("job", "send_email"), ("outcome", "succeeded")],
        );
        // The scheduler's first tick comes at the next whole second.
        let ticked = metric(
            &text,
            "labs_jobs_enqueued_total",
            &[("job", "relay_outbox")],
        );
        if email_done == Some(1.0) && ticked.is_some() {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the email job or a tick was not counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    assert_eq!(
        metric(
            &text,
            "labs_auth_logins_total",
            &[("method", "password"), ("outcome", "failure")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(metric(&text, "labs_csrf_rejected_total", &[]), Some(1.0));
    let echo = [("method", "GET"), ("route", "/ext/echo"), ("status", "200")];
    assert_eq!(
        metric(&text, "labs_http_requests_total", &echo),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "labs_http_request_duration_seconds_count", &echo),
        Some(3.0)
    );
    let not_found = [
        ("method", "GET"),
        ("route", "<unmatched>"),
        ("status", "404"),
    ];
    assert_eq!(
        metric(&text, "labs_http_requests_total", &not_found),
        Some(1.0),
        "raw paths never become labels"
    );
    assert!(!text.contains("/no/such/12345"));
    assert_eq!(
        metric(&text, "labs_http_requests_in_flight", &[]),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "labs_db_pool_max_connections", &[]),
        Some(10.0)
    );
    assert!(metric(&text, "labs_db_pool_connections", &[("state", "idle")]).is_some());
    assert_eq!(
        metric(&text, "labs_jobs_started_total", &[("job", "send_email")]),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "labs_job_duration_seconds_count",
            &[("job", "send_email")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "labs_job_queue_wait_seconds_count",
            &[("job", "send_email")]
        ),
        Some(1.0)
    );
    assert!(
        metric(
            &text,
            "labs_jobs_enqueued_total",
            &[("job", "relay_outbox")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        metric(&text, "labs_jobs_dead", &[]),
        Some(0.0),
        "queue depth sampled by the scheduler"
    );

    // Not through the public listener (and so not through the proxy).
    assert_eq!(
        http.get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(server.url("/api/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

/// The docs UI's "Authorize" button in a real browser (Debian's chromium, driven by
/// playwright-core: scripts/browser/authorize.mjs): the OAuth 2.0 password form logs in, and
/// "Try it out" on `GET /auth/me` then sends the token and gets 200 (it sent none while the
/// operations listed only `bearerAuth`).
#[tokio::test]
async fn the_docs_authorize_button_logs_in_and_try_it_out_sends_the_token() {
    const PASSWORD: &str = "correct horse battery staple";
    let database = TempDatabase::new("browser");
    let server = Labs::serve(&[("DATABASE_URL", &database.url), ("LABS_ROLES", "api")]);
    server
        .until_status("/api/health/ready", 200, Duration::from_secs(30))
        .await;
    let db = sqlx::PgPool::connect(&database.url).await.unwrap();
    crate::common::insert_user_with_password(&db, "ada@example.com", PASSWORD, false, true).await;

    // Kept out of the repository: a temporary file, named in the output.
    let screenshot = std::env::temp_dir().join(format!("{}.png", unique_name("docs-authorize")));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/browser/authorize.mjs"
    );
    let output = std::process::Command::new("node")
        .arg(script)
        .arg(server.url("/api/docs/"))
        .arg("ada@example.com")
        .arg(PASSWORD)
        .arg(&screenshot)
        .output()
        .expect("node runs (scripts/node-tools.sh installs it, with chromium and playwright-core)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser script failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(result["status"], 200, "{result}");
    let me: Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap();
    assert_eq!(me["email"], "ada@example.com", "{me}");
    assert_eq!(result["consoleErrors"], serde_json::json!([]), "{result}");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 0);
    #[expect(clippy::print_stderr, reason = "where the screenshot is")]
    {
        eprintln!(
            "docs after Authorize and Try it out: {}",
            screenshot.display()
        );
    }
}

/// Follows an emailed `link` in a real browser (scripts/browser/emailed-link.mjs): fills in the
/// page's form with `fields`, submits it, and returns what the answer showed.
fn follow_in_browser(link: &str, fields: &[(&str, &str)]) -> Value {
    // Kept out of the repository: a temporary file, named in the output.
    let screenshot = std::env::temp_dir().join(format!("{}.png", unique_name("emailed-link")));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/browser/emailed-link.mjs"
    );
    let output = std::process::Command::new("node")
        .arg(script)
        .arg(link)
        .arg(&screenshot)
        .args(fields.iter().map(|(name, value)| format!("{name}={value}")))
        .output()
        .expect("node runs (scripts/node-tools.sh installs it, with chromium and playwright-core)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser script failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 0);
    #[expect(clippy::print_stderr, reason = "where the screenshot is")]
    {
        eprintln!("{link} after its form: {}", screenshot.display());
    }
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

/// Asserts that the browser's answer to a form is `heading` with 200, that no CSP or other
/// error showed in the console, and that the token of the link went out with no other
/// request (no Referer carried it: the pages send `no-referrer`).
fn assert_browser_answer(answer: &Value, heading: &str, token: &str) {
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["heading"], heading, "{answer}");
    assert_eq!(answer["consoleErrors"], serde_json::json!([]), "{answer}");
    let requests = answer["requests"].as_array().unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r["url"].as_str().unwrap().ends_with("/pages.css")),
        "the page's stylesheet was loaded: {answer}"
    );
    for request in requests {
        assert!(
            !request.to_string().contains(token),
            "{request} carries the token"
        );
        assert_eq!(request["referer"], Value::Null, "{request}");
    }
}

/// The pages emailed links open, end to end as a person meets them: the real binary with the
/// api, worker and scheduler roles and no `LABS_APP_URL` (its default points at its own
/// pages), a real SMTP server (aiosmtpd), and Debian's chromium following the links from the
/// delivered emails. The signup's link confirms the address (then the password logs in); a
/// reset's link sets a new password (which logs in, and the old one no longer does). No log
/// line holds a link's token.
#[tokio::test]
async fn emailed_links_open_pages_that_verify_and_reset_in_a_browser() {
    const PASSWORD: &str = "correct horse battery staple";
    const NEW_PASSWORD: &str = "a new password, long enough";
    let smtp = std::sync::Arc::new(SmtpServer::start());
    let database = TempDatabase::new("pages");
    let server = Labs::serve(&[
        ("DATABASE_URL", &database.url),
        ("LABS_ROLES", "api,worker,scheduler"),
        ("LABS_SMTP_URL", &smtp.url()),
    ]);
    server
        .until_status("/api/health/ready", 200, Duration::from_secs(30))
        .await;
    let http = client();
    let login = |password: &'static str| {
        let http = http.clone();
        let url = server.url("/api/auth/token");
        async move {
            http.post(url)
                .json(&serde_json::json!({"email": "ada@example.com", "password": password}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // The `n`th email, found among those received (the maildir keeps no order).
    let email_with = |page: &'static str, count: usize| {
        let smtp = smtp.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                smtp.wait_for_messages(count, Duration::from_secs(60))
                    .iter()
                    .map(|raw| crate::common::decode_quoted_printable(raw))
                    .find(|message| message.contains(&format!("/{page}?token=")))
                    .unwrap_or_else(|| panic!("no email with a {page} link"))
            })
            .await
            .unwrap()
        }
    };
    let origin = format!("http://localhost:{}", server.address.port());

    let signup = http
        .post(server.url("/api/auth/signup"))
        .json(&serde_json::json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 202);
    let message = email_with("verify-email", 1).await;
    assert!(message.contains("To: ada@example.com"), "{message}");
    let link = crate::common::emailed_link(&message, "verify-email");
    assert!(
        link.starts_with(&format!("{origin}/api/verify-email?token=")),
        "{link}"
    );
    let verify_token = link.split_once("token=").unwrap().1.to_owned();
    assert_eq!(login(PASSWORD).await, 403, "not verified yet");

    let answer = follow_in_browser(&link, &[("password", PASSWORD)]);
    assert_browser_answer(&answer, "Address confirmed", &verify_token);
    assert_eq!(login(PASSWORD).await, 200);

    let reset = http
        .post(server.url("/api/auth/password-reset"))
        .json(&serde_json::json!({"email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 202);
    let message = email_with("reset-password", 2).await;
    let link = crate::common::emailed_link(&message, "reset-password");
    assert!(
        link.starts_with(&format!("{origin}/api/reset-password?token=")),
        "{link}"
    );
    let reset_token = link.split_once("token=").unwrap().1.to_owned();
    let answer = follow_in_browser(
        &link,
        &[
            ("newPassword", NEW_PASSWORD),
            ("confirmPassword", NEW_PASSWORD),
        ],
    );
    assert_browser_answer(&answer, "Password changed", &reset_token);
    assert_eq!(login(NEW_PASSWORD).await, 200);
    assert_eq!(login(PASSWORD).await, 401);

    // The access log has the pages' requests, by path alone.
    let logs = server.logs();
    assert!(
        logs.iter().any(|line| line["message"] == "request answered"
            && line["span"]["route"] == "/reset-password"
            && line["span"]["method"] == "POST"),
        "{logs:#?}"
    );
    for line in &logs {
        let text = line.to_string();
        assert!(
            !text.contains(&verify_token) && !text.contains(&reset_token),
            "a log line holds a link's token: {text}"
        );
    }
}

/// Readiness per role, for the real binary with Redis down (nothing listens at its URL): a
/// process of the api and hooks roles only stays in rotation and says it is degraded (limits
/// per replica, jobs in the outbox); one that runs jobs is not ready. Postgres answers.
#[tokio::test]
async fn without_redis_only_the_roles_that_run_jobs_leave_rotation() {
    let database = TempDatabase::new("roles-redis");
    let redis_down = format!("redis://127.0.0.1:{}", labs_testkit::free_port());
    let cases = [
        ("api", 200),
        ("hooks", 200),
        ("api,hooks", 200),
        ("worker", 503),
        ("scheduler", 503),
    ];
    for (roles, status) in cases {
        let server = Labs::serve(&[
            ("DATABASE_URL", &database.url),
            ("REDIS_URL", &redis_down),
            ("LABS_ROLES", roles),
        ]);
        // The first answers may come before the first Redis check has failed: wait for one
        // that has looked at Redis.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (answered, body) = loop {
            let answer = client()
                .get(server.url("/api/health/ready"))
                .send()
                .await
                .unwrap();
            let answered = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap();
            if body["checks"]["postgres"]["ok"] == true || Instant::now() > deadline {
                break (answered, body);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(answered, status, "roles {roles}: {body}");
        assert_eq!(
            body["checks"]["redis"]["ok"], false,
            "roles {roles}: {body}"
        );
        assert_eq!(
            body["checks"]["postgres"]["ok"], true,
            "roles {roles}: {body}"
        );
        // Degraded: ready without Redis.
        assert_eq!(body["degraded"], status == 200, "roles {roles}: {body}");
        assert_eq!(body["ready"], status == 200, "roles {roles}: {body}");
    }
}
