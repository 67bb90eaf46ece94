//! The real `labs` binary as a child process, over TCP: start-up, logs, signals, exit codes,
//! metrics, and readiness per role without Redis. (Its commands are in `cli`, its pages in a
//! browser in `browser`, its production guard rails in `production`.)

use std::time::{Duration, Instant};

use crate::common::{Labs, run_labs};
use labs_testapp::metric;
use labs_testkit::{BlackHole, TempDatabase, shared_redis_url, unique_name};
use serde_json::Value;

pub(crate) fn client() -> reqwest::Client {
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
