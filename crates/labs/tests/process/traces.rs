//! Trace context across the real binary: a request's trace id (from the caller's
//! `traceparent`) in its log line and in the log lines of the job it enqueued, run by the
//! worker role; and spans exported over OTLP/HTTP when an endpoint is set.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::Labs;
use labs_testkit::{TempDatabase, unique_name};
use serde_json::{Value, json};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn signup(server: &Labs, email: &str) {
    let response = reqwest::Client::new()
        .post(server.url("/api/auth/signup"))
        .header("traceparent", TRACEPARENT)
        .json(&json!({"email": email, "password": "correct horse battery staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn a_request_and_the_job_it_enqueued_log_the_same_trace_id() {
    let database = TempDatabase::new("traces");
    let namespace = unique_name("traces");
    let limits = unique_name("rl");
    let mut server = Labs::serve(&[
        ("DATABASE_URL", &database.url),
        ("LABS_JOBS_NAMESPACE", &namespace),
        ("LABS_RATE_LIMIT_NAMESPACE", &limits),
    ]);
    signup(&server, "traced@example.com").await;

    let request = server.wait_for_log(Duration::from_secs(10), |line| {
        line["message"] == "request answered" && line["span"]["route"] == "/auth/signup"
    });
    assert_eq!(request["span"]["trace_id"], TRACE_ID, "{request}");

    // The verification email: written to the outbox by the request, relayed by the scheduler,
    // sent (here: logged, as no SMTP server is configured) by the worker, in the same trace.
    let email = server.wait_for_log(Duration::from_secs(30), |line| {
        line["email.template"] == "verify_email"
    });
    assert_eq!(email["span"]["name"], "job", "{email}");
    assert_eq!(email["span"]["job.name"], "send_email");
    assert_eq!(email["span"]["trace_id"], TRACE_ID, "{email}");

    // A request without `traceparent` gets a trace of its own.
    let response = reqwest::get(server.url("/api/ext/echo")).await.unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let line = server.wait_for_log(Duration::from_secs(5), |line| {
        line["span"]["request_id"] == id.as_str()
    });
    let own = line["span"]["trace_id"].as_str().unwrap();
    assert_eq!(own.len(), 32);
    assert_ne!(own, TRACE_ID);

    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(10)).success());
}

/// A minimal OTLP/HTTP receiver: answers 200 to every POST and keeps the bodies.
fn otlp_receiver() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let sink = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                sink.lock().unwrap().push(body);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

#[tokio::test]
async fn spans_are_exported_over_otlp_when_an_endpoint_is_set() {
    let (endpoint, bodies) = otlp_receiver();
    let database = TempDatabase::new("otlp");
    let namespace = unique_name("otlp");
    let limits = unique_name("rl");
    let mut server = Labs::serve(&[
        ("DATABASE_URL", &database.url),
        ("LABS_JOBS_NAMESPACE", &namespace),
        ("LABS_RATE_LIMIT_NAMESPACE", &limits),
        ("LABS_OTLP_ENDPOINT", &endpoint),
        ("LABS_OTLP_SERVICE_NAME", "labs-test"),
    ]);
    signup(&server, "exported@example.com").await;
    let line: Value = server.wait_for_log(Duration::from_secs(30), |line| {
        line["email.template"] == "verify_email"
    });
    assert_eq!(
        line["span"]["trace_id"], TRACE_ID,
        "the exported trace is the caller's"
    );

    // The batch exporter flushes at shutdown.
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(15)).success());
    let trace_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let bodies = bodies.lock().unwrap();
    assert!(!bodies.is_empty(), "nothing was exported");
    let exported: Vec<u8> = bodies.concat();
    let contains = |needle: &[u8]| exported.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(&trace_id),
        "the caller's trace id is in the exported spans"
    );
    assert!(
        contains(b"labs-test"),
        "the service name is in the exported resource"
    );
    assert!(
        contains(b"request") && contains(b"job"),
        "request and job spans"
    );
}
