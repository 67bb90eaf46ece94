//! The middleware stack and the extractors, driven through a router of test routes wrapped
//! in exactly the layers production uses. No database: nothing here touches one. The
//! extractors' tests are in `layers/extract.rs`; the router and fixtures here serve both.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::routing::{get, post};
use labs_http::extract::{Json, Path, Query};
use labs_http::{HttpConfig, Problem, layers};
use labs_testkit::Answer;
use serde::Deserialize;

// Under tests/layers/: a module of this binary, not a test binary of its own.
#[path = "layers/extract.rs"]
mod extract;

fn config() -> HttpConfig {
    HttpConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        metrics_bind: "127.0.0.1:0".parse().unwrap(),
        root_path: "/api".to_owned(),
        request_timeout: Duration::from_millis(300),
        body_limit: 1024,
        cors_origins: vec!["https://app.example.com".to_owned()],
        shutdown_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(10),
        ready_timeout: Duration::from_secs(1),
        docs: true,
        hsts_max_age: Duration::from_secs(365 * 24 * 3600),
        hsts_include_subdomains: true,
        production: false,
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateThing {
    name: String,
    colour: Colour,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
enum Colour {
    Red,
    Blue,
}

#[derive(Debug, Deserialize)]
struct Paging {
    #[expect(dead_code, reason = "only its parsing is under test")]
    limit: u32,
    #[expect(dead_code, reason = "only its parsing is under test")]
    #[serde(default)]
    offset: u32,
}

fn app() -> Router {
    app_with(&config())
}

fn app_with(config: &HttpConfig) -> Router {
    let routes = Router::new()
        .route(
            "/things",
            post(|Json(thing): Json<CreateThing>| async move {
                format!("{} {:?}", thing.name, thing.colour)
            }),
        )
        .route(
            "/things/{id}",
            get(|Path(id): Path<u32>| async move { id.to_string() }),
        )
        .route("/list", get(|Query(_paging): Query<Paging>| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/panic",
            get(|| async {
                let words: Vec<&str> = Vec::new();
                // Indexing past the end: the kind of bug a handler really has.
                words[3]
            }),
        )
        .route("/big", get(|| async { "x".repeat(10_000) }))
        .route(
            "/own-csp",
            get(|| async {
                (
                    [(header::CONTENT_SECURITY_POLICY, "script-src 'self'")],
                    "page",
                )
            }),
        );
    layers::apply(routes, config)
}

/// The problem document of an error answer, checked against the rules every error follows.
fn problem(answer: &Answer) -> Problem {
    assert_eq!(
        answer.header("content-type"),
        "application/problem+json",
        "an error must be problem+json"
    );
    let problem: Problem = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(problem.status, answer.status.as_u16());
    assert_eq!(problem.kind, format!("urn:labs:problem:{}", problem.code));
    assert_eq!(
        problem.request_id.as_deref(),
        answer
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        "the body quotes the request id of the header"
    );
    problem
}

async fn send(request: Request<Body>) -> Answer {
    labs_testkit::send(&app(), request).await
}

async fn get_answer(uri: &str) -> Answer {
    labs_testkit::get(&app(), uri).await
}

fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn oversized_body() -> String {
    let name = "x".repeat(2048);
    format!(r#"{{"name":"{name}","colour":"red"}}"#)
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_that_keeps_allow() {
    let answer = send(Request::delete("/things/3").body(Body::empty()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(problem(&answer).code, "method-not-allowed");
    let allow = answer.headers.get(header::ALLOW).unwrap().to_str().unwrap();
    assert!(allow.contains("GET"), "{allow}");
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let answer = get_answer("/nowhere").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(problem(&answer).code, "not-found");
}

#[tokio::test]
async fn a_slow_request_is_cut_off_with_a_503_problem() {
    let started = std::time::Instant::now();
    let answer = get_answer("/slow").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem(&answer).code, "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the 5 s handler was not cut off"
    );
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_without_details() {
    let answer = get_answer("/panic").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let problem = problem(&answer);
    assert_eq!(problem.code, "internal");
    assert!(
        !problem.detail.contains("index out of bounds"),
        "{}",
        problem.detail
    );
}

#[tokio::test]
async fn a_well_formed_request_id_from_the_proxy_is_kept() {
    let request = Request::get("/nowhere")
        .header("x-request-id", "proxy-id-42")
        .body(Body::empty())
        .unwrap();
    let answer = send(request).await;
    assert_eq!(answer.headers.get("x-request-id").unwrap(), "proxy-id-42");
    assert_eq!(problem(&answer).request_id.as_deref(), Some("proxy-id-42"));
}

#[tokio::test]
async fn a_malformed_request_id_is_replaced_by_a_uuid() {
    let request = Request::get("/things/1")
        .header("x-request-id", "has spaces and {braces}")
        .body(Body::empty())
        .unwrap();
    let answer = send(request).await;
    let id = answer
        .headers
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(uuid_like(id), "{id}");
}

#[tokio::test]
async fn every_answer_gets_a_request_id() {
    let answer = get_answer("/things/1").await;
    assert_eq!(answer.status, StatusCode::OK);
    let id = answer
        .headers
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(uuid_like(id), "{id}");
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn large_answers_are_gzipped_for_clients_that_accept_it() {
    let request = Request::get("/big")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let answer = send(request).await;
    assert_eq!(
        answer.headers.get(header::CONTENT_ENCODING).unwrap(),
        "gzip"
    );
    assert!(answer.body.len() < 1000, "{} bytes", answer.body.len());
}

#[tokio::test]
async fn refusing_every_encoding_is_a_406_problem() {
    let request = Request::get("/big")
        .header(header::ACCEPT_ENCODING, "identity;q=0")
        .body(Body::empty())
        .unwrap();
    let answer = send(request).await;
    assert_eq!(answer.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(problem(&answer).code, "not-acceptable");
}

#[tokio::test]
async fn a_configured_origin_passes_cors_preflight_with_credentials() {
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri("/things")
        .header(header::ORIGIN, "https://app.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .unwrap();
    let answer = send(request).await;
    assert!(answer.status.is_success(), "{}", answer.status);
    assert_eq!(
        answer
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .unwrap(),
        "https://app.example.com"
    );
    assert_eq!(
        answer
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .unwrap(),
        "true"
    );
}

#[tokio::test]
async fn another_origin_gets_no_cors_headers() {
    let request = Request::get("/things/1")
        .header(header::ORIGIN, "https://evil.example.net")
        .body(Body::empty())
        .unwrap();
    let answer = send(request).await;
    assert!(
        answer
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
}

/// The headers every answer carries (outside production, so no HSTS).
fn assert_security_headers(answer: &Answer) {
    assert_eq!(
        answer.header("x-content-type-options"),
        "nosniff",
        "{}",
        answer.status
    );
    assert_eq!(answer.header("referrer-policy"), "no-referrer");
    assert_eq!(answer.header("x-frame-options"), "DENY");
    assert_eq!(
        answer.header("content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert!(answer.headers.get("strict-transport-security").is_none());
}

#[tokio::test]
async fn every_kind_of_answer_carries_the_security_headers() {
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/things")
        .header(header::ORIGIN, "https://app.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .unwrap();
    let refused_encoding = Request::get("/big")
        .header(header::ACCEPT_ENCODING, "identity;q=0")
        .body(Body::empty())
        .unwrap();
    let cases = [
        (
            Request::get("/things/1").body(Body::empty()).unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/nowhere").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            Request::delete("/things/3").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            post_json("/things", &oversized_body()),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (post_json("/things", "{"), StatusCode::BAD_REQUEST),
        (
            Request::get("/panic").body(Body::empty()).unwrap(),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            Request::get("/slow").body(Body::empty()).unwrap(),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (refused_encoding, StatusCode::NOT_ACCEPTABLE),
        (preflight, StatusCode::OK),
    ];
    for (request, status) in cases {
        let uri = request.uri().clone();
        let answer = send(request).await;
        assert_eq!(answer.status, status, "{uri}");
        assert_security_headers(&answer);
    }
}

#[tokio::test]
async fn hsts_is_sent_in_production_only() {
    let mut production = config();
    production.production = true;
    let answer = labs_testkit::get(&app_with(&production), "/nowhere").await;
    assert_eq!(
        answer.header("strict-transport-security"),
        "max-age=31536000; includeSubDomains"
    );

    production.hsts_include_subdomains = false;
    production.hsts_max_age = Duration::from_secs(600);
    let answer = labs_testkit::get(&app_with(&production), "/things/1").await;
    assert_eq!(answer.header("strict-transport-security"), "max-age=600");

    production.hsts_max_age = Duration::ZERO;
    let answer = labs_testkit::get(&app_with(&production), "/things/1").await;
    assert!(answer.headers.get("strict-transport-security").is_none());

    // Outside production, whatever the max-age.
    let answer = get_answer("/things/1").await;
    assert!(answer.headers.get("strict-transport-security").is_none());
}

#[tokio::test]
async fn a_page_with_a_csp_of_its_own_keeps_it() {
    let answer = get_answer("/own-csp").await;
    assert_eq!(
        answer.header("content-security-policy"),
        "script-src 'self'"
    );
    assert_eq!(answer.header("x-content-type-options"), "nosniff");
    assert_eq!(answer.header("x-frame-options"), "DENY");
}
