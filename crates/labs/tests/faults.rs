//! Faults, against the real binary: Postgres restarted under load (its own throwaway server),
//! an exhausted connection pool, SIGTERM under load, and a client that never finishes its
//! headers. The Redis restart and the worker killed mid-job are in labs_worker's tests.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Labs, run_labs};
use labs_testkit::{PostgresServer, TempDatabase};
use serde_json::json;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Polls `path` until it answers `status`, within `within`.
async fn until_status(server: &Labs, path: &str, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let answered = client()
            .get(server.url(path))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if answered.as_ref().ok() == Some(&status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never answered {status} (last: {answered:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_postgres_restart_under_load_is_503_then_heals_without_restarting_labs() {
    let mut postgres = PostgresServer::start();
    let url = postgres.url("labs_fault");
    let (status, _, stderr) = run_labs(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(status.success(), "{stderr}");
    let mut server = Labs::serve(&[
        ("DATABASE_URL", &url),
        ("LABS_ROLES", "api"),
        ("LABS_DB_ACQUIRE_TIMEOUT", "1s"),
    ]);
    until_status(&server, "/api/health/ready", 200, Duration::from_secs(10)).await;

    // Load all along: echo never needs the database and must never fail.
    let stop = Arc::new(AtomicBool::new(false));
    let echo_failures = Arc::new(AtomicU64::new(0));
    let echo_ok = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, failures, ok, url) = (
            stop.clone(),
            echo_failures.clone(),
            echo_ok.clone(),
            server.url("/api/ext/echo"),
        );
        load.push(tokio::spawn(async move {
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(answer) if answer.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failures.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }

    postgres.stop();
    until_status(&server, "/api/health/ready", 503, Duration::from_secs(10)).await;
    // A request that needs the database gets a clear 503 problem, in bounded time.
    let started = Instant::now();
    let login = client()
        .post(server.url("/api/auth/token"))
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 503);
    assert_eq!(login.headers()["content-type"], "application/problem+json");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no hang: {:?}",
        started.elapsed()
    );

    postgres.restart();
    until_status(&server, "/api/health/ready", 200, Duration::from_secs(20)).await;
    let login = client()
        .post(server.url("/api/auth/token"))
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.status(),
        401,
        "the database answers again: an unknown account"
    );

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(echo_failures.load(Ordering::Relaxed), 0);
    assert!(echo_ok.load(Ordering::Relaxed) > 10);
    assert!(server.is_running(), "the same process healed");
}

#[tokio::test]
async fn an_exhausted_pool_answers_503_in_bounded_time() {
    let database = TempDatabase::new("pool");
    let (status, _, stderr) = run_labs(&["migrate"], &[("DATABASE_URL", &database.url)]);
    assert!(status.success(), "{stderr}");
    let server = Labs::serve(&[
        ("DATABASE_URL", &database.url),
        ("LABS_ROLES", "api"),
        ("LABS_DB_MAX_CONNECTIONS", "1"),
        ("LABS_DB_ACQUIRE_TIMEOUT", "500ms"),
        ("LABS_DB_STATEMENT_TIMEOUT", "2s"),
    ]);
    until_status(&server, "/api/health/ready", 200, Duration::from_secs(10)).await;

    // Another session locks the users table: the login's query waits on the lock while
    // holding the pool's only connection.
    let db = sqlx::PgPool::connect(&database.url).await.unwrap();
    let mut lock = db.begin().await.unwrap();
    sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();

    let login = || async {
        let started = Instant::now();
        let answer = client()
            .post(server.url("/api/auth/token"))
            .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        (
            answer.status().as_u16(),
            answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned(),
            started.elapsed(),
        )
    };
    let (first, second) = tokio::join!(login(), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        login().await
    });
    // The first waits for the lock until the statement timeout; the second for a connection
    // until the acquire timeout. Both: 503 problems, neither hangs.
    for (status, content_type, took) in [first, second] {
        assert_eq!(status, 503);
        assert_eq!(content_type, "application/problem+json");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    lock.rollback().await.unwrap();
    let after = login().await;
    assert_eq!(after.0, 401, "the pool recovers once the lock is gone");
}

#[tokio::test]
async fn sigterm_under_load_fails_no_request_that_reached_labs() {
    let database = TempDatabase::new("sigterm");
    let mut server = Labs::serve(&[("DATABASE_URL", &database.url), ("LABS_ROLES", "api")]);
    until_status(&server, "/api/health/ready", 200, Duration::from_secs(10)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let answered_ok = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (stop, ok, url) = (
            stop.clone(),
            answered_ok.clone(),
            server.url("/api/ext/echo"),
        );
        load.push(tokio::spawn(async move {
            let http = client();
            let mut other = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(answer) if answer.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(answer) => other.push(format!("status {}", answer.status())),
                    // After the shutdown began, new connections are refused: fine (a load
                    // balancer has stopped sending by then); the server-side count below
                    // proves no accepted request was lost.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            other
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(15)).success());
    stop.store(true, Ordering::Relaxed);
    let mut other = Vec::new();
    for task in load {
        other.extend(task.await.unwrap());
    }
    assert!(other.is_empty(), "answers other than 200: {other:?}");
    let answered: Vec<_> = server
        .logs()
        .into_iter()
        .filter(|line| {
            line["message"] == "request answered" && line["span"]["route"] == "/ext/echo"
        })
        .collect();
    assert!(answered.iter().all(|line| line["status"] == 200));
    assert_eq!(
        answered.len() as u64,
        answered_ok.load(Ordering::Relaxed),
        "every request labs answered reached its client as a 200"
    );
    assert!(answered.len() > 20, "there was load: {}", answered.len());
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let database = TempDatabase::new("slowloris");
    let server = Labs::serve(&[
        ("DATABASE_URL", &database.url),
        ("LABS_ROLES", "api"),
        ("LABS_HEADER_READ_TIMEOUT", "1s"),
    ]);
    until_status(&server, "/api/health/ready", 200, Duration::from_secs(10)).await;
    let address = server.address;
    let slow = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET /api/ext/echo HTTP/1.1\r\nHost: labs\r\nX-Slow: ")
            .unwrap();
        let started = Instant::now();
        // Trickle a byte now and then, never ending the headers.
        let mut answer = Vec::new();
        let mut buffer = [0_u8; 256];
        loop {
            let _ = stream.write_all(b"a");
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    });
    // Meanwhile the server serves others.
    for _ in 0..5 {
        assert_eq!(
            client()
                .get(server.url("/api/ext/echo"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let (took, answer) = slow.join().unwrap();
    assert!(took < Duration::from_secs(5), "disconnected after {took:?}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}
